/* SPDX-License-Identifier: Apache-2.0 */
/* Compact lists (PROTOCOL.md, `recs_delta`): a subscription that asks for them gets each list
 * as changes to the one the client holds (items removed, items placed where they moved or
 * came in, every score), and each item's details (name, category, price) once per
 * connection, its reason again only when it changed. The frame is made as it leaves the
 * outbox, not when the list is ranked: what the client holds is then exactly what was
 * written, even when a newer list replaced an unsent one. */
#include "session/session_int.h"
#include "engine/reasons.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* What the connection's client keeps. Items: an open-addressing set of the catalog indexes
 * whose details it was sent. It grows up to KNOWN_MAX entries; when full it is emptied (the
 * client keeps what it had and is sent the details again, which it simply overwrites), so a
 * long session costs a bounded amount. Emptied too when the catalog generation moves: an
 * upsert may have changed names and prices.
 * Reasons: each distinct reason (source, words and data) it was sent has a number, up to
 * RIDS_MAX; when a list could need more, the numbering starts again (every list carries the
 * number of each of its items, and defines the numbers it uses that the client was not
 * sent, so a number redefined is never read with its old meaning). */
#define KNOWN_MIN     64
#define KNOWN_MAX     4096
#define RIDS_MAX      256
#define RID_SLOTS_MIN 64  /* the reasons' table starts small (a power of two) */
#define RID_SLOTS_MAX 512 /* and grows to twice RIDS_MAX: at most half full */
/* The longest list (--max-k is at most 100, PROTOCOL.md `subscribe`): the diff's scratch. */
#define RC_MAX_K_LIMIT 100

typedef struct {
    uint64_t hash; /* of the reason; 0 with rid 0: free */
    uint32_t rid;  /* + 1; 0: free */
} rid_slot_t;

struct rc_known {
    uint32_t cap, n;
    uint32_t generation;
    uint32_t *items; /* catalog index + 1; 0: free */
    uint32_t n_rids, rid_cap;
    rid_slot_t *rids; /* rid_cap slots */
};

void rc_known_free(rc_known_t *k)
{
    if (k == NULL)
        return;
    free(k->items);
    free(k->rids);
    free(k);
}

static rc_known_t *known_new(void)
{
    rc_known_t *k = calloc(1, sizeof(*k));
    if (k == NULL || (k->items = calloc(KNOWN_MIN, sizeof(*k->items))) == NULL ||
        (k->rids = calloc(RID_SLOTS_MIN, sizeof(*k->rids))) == NULL) {
        if (k != NULL)
            free(k->items);
        free(k);
        return NULL;
    }
    k->cap = KNOWN_MIN;
    k->rid_cap = RID_SLOTS_MIN;
    return k;
}

static void known_clear(rc_known_t *k)
{
    memset(k->items, 0, k->cap * sizeof(*k->items));
    k->n = 0;
}

/* Where the search for `item` starts. */
static uint32_t known_home(const rc_known_t *k, uint32_t item)
{
    return (item * 2654435761u) & (k->cap - 1);
}

static uint32_t *known_slot(const rc_known_t *k, uint32_t item)
{
    uint32_t mask = k->cap - 1, i = known_home(k, item);
    while (k->items[i] != 0 && k->items[i] != item + 1)
        i = (i + 1) & mask;
    return &k->items[i];
}

/* Doubles the set (rehashing); at KNOWN_MAX, or out of memory, empties it instead. */
static void known_make_room(rc_known_t *k)
{
    if (k->n * 4 < k->cap * 3)
        return;
    uint32_t *old = k->items,
             *items = k->cap < KNOWN_MAX ? calloc(k->cap * 2, sizeof(*items)) : NULL;
    if (items == NULL) {
        known_clear(k);
        return;
    }
    uint32_t cap = k->cap;
    k->items = items;
    k->cap = cap * 2;
    for (uint32_t i = 0; i < cap; i++)
        if (old[i] != 0)
            *known_slot(k, old[i] - 1) = old[i];
    free(old);
}

/* Whether the client was sent `item`'s details; records that it is now. */
static bool known_item(rc_known_t *k, uint32_t item)
{
    known_make_room(k);
    uint32_t *slot = known_slot(k, item);
    if (*slot != 0)
        return true;
    *slot = item + 1;
    k->n++;
    return false;
}

static void reasons_clear(rc_known_t *k)
{
    memset(k->rids, 0, k->rid_cap * sizeof(*k->rids));
    k->n_rids = 0;
}

/* Room for `more` reasons: the table doubles (rehashing) while it would be over half full;
 * past RIDS_MAX numbers, or out of memory, the numbering starts over. */
static void reasons_make_room(rc_known_t *k, uint32_t more)
{
    if (k->n_rids + more > RIDS_MAX) {
        reasons_clear(k);
        return;
    }
    while ((k->n_rids + more) * 2 > k->rid_cap && k->rid_cap < RID_SLOTS_MAX) {
        rid_slot_t *old = k->rids, *rids = calloc(k->rid_cap * 2, sizeof(*rids));
        if (rids == NULL) {
            reasons_clear(k);
            return;
        }
        uint32_t cap = k->rid_cap;
        k->rids = rids;
        k->rid_cap = cap * 2;
        for (uint32_t i = 0; i < cap; i++) {
            if (old[i].rid == 0)
                continue;
            uint32_t j = (uint32_t)old[i].hash & (k->rid_cap - 1);
            while (k->rids[j].rid != 0)
                j = (j + 1) & (k->rid_cap - 1);
            k->rids[j] = old[i];
        }
        free(old);
    }
}

/* The number of the reason of hash `h`; *is_new when the client has not had it. */
static uint32_t known_reason(rc_known_t *k, uint64_t h, bool *is_new)
{
    uint32_t i = (uint32_t)h & (k->rid_cap - 1);
    while (k->rids[i].rid != 0 && k->rids[i].hash != h)
        i = (i + 1) & (k->rid_cap - 1);
    *is_new = k->rids[i].rid == 0;
    if (*is_new)
        k->rids[i] = (rid_slot_t){h, ++k->n_rids};
    return k->rids[i].rid - 1;
}

int rc_compact_subscribe(rc_conn_t *c, rc_sub_t *sub, bool compact, uint32_t k)
{
    rc_compact_sub_free(sub);
    if (!compact)
        return 0;
    if (c->known == NULL && (c->known = known_new()) == NULL)
        return RC_ENOMEM;
    sub->held = calloc(k > 0 ? k : 1, sizeof(*sub->held));
    if (sub->held == NULL)
        return RC_ENOMEM;
    sub->compact = true;
    return 0;
}

void rc_compact_sub_free(rc_sub_t *sub)
{
    free(sub->held);
    sub->held = NULL;
    sub->held_n = 0;
    sub->held_version = 0;
    sub->compact = false;
}

/* A hash of what the client shows of an item's reason: its source, words and data. */
static uint64_t reason_hash(const rc_recs_item_t *it)
{
    const rc_recs_reason_t *r = it->reason;
    const rc_text_t *parts[] = {&it->src,      &it->why,     &r->code,          &r->item,
                                &r->item_name, &r->category, &r->category_name, &r->segment,
                                &r->locale,    &r->kind};
    XXH64_hash_t h = (XXH64_hash_t)r->age_s;
    /* Each present part with its terminating NUL, as before the texts carried their lengths:
     * the hashes, and so the reason numbers, stay what they were. */
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        h = parts[i]->p ? XXH3_64bits_withSeed(parts[i]->p, parts[i]->n + 1, h)
                        : XXH3_64bits_withSeed("", 0, h);
    return h;
}

/* The longest run of `pos` (positions in the new list of the items kept, in the held order)
 * that increases: those items keep their order and need no place of their own. Marks them
 * in `stays`. Quadratic: lists hold at most max_k (100) items. */
static void longest_increasing(const uint32_t *pos, uint32_t n, bool *stays)
{
    uint32_t len[RC_MAX_K_LIMIT], prev[RC_MAX_K_LIMIT], best = 0, end = 0;
    for (uint32_t i = 0; i < n; i++) {
        len[i] = 1;
        prev[i] = UINT32_MAX;
        for (uint32_t j = 0; j < i; j++)
            if (pos[j] < pos[i] && len[j] + 1 > len[i]) {
                len[i] = len[j] + 1;
                prev[i] = j;
            }
        if (len[i] > best) {
            best = len[i];
            end = i;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        stays[pos[i]] = false;
    for (uint32_t i = end; n > 0 && i != UINT32_MAX; i = prev[i])
        stays[pos[i]] = true;
}

rc_frame_t *rc_compact_frame(rc_conn_t *c, rc_sub_t *sub)
{
    rc_sessions_t *s = c->reg;
    const rc_session_t *ses = c->session;
    const rc_view_t *v = sub->view;
    const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
    rc_known_t *known = c->known;
    uint32_t n = v->n;
    rc_text_t remove[RC_MAX_K_LIMIT];
    rc_recs_place_t place[RC_MAX_K_LIMIT];
    const rc_recs_item_t *details[RC_MAX_K_LIMIT];
    rc_recs_reason_def_t reasons[RC_MAX_K_LIMIT];
    double scores[RC_MAX_K_LIMIT];
    uint32_t rids[RC_MAX_K_LIMIT], kept_pos[RC_MAX_K_LIMIT];
    uint32_t n_remove = 0, n_place = 0, n_details = 0, n_reasons = 0, n_kept = 0;
    bool stays[RC_MAX_K_LIMIT] = {false};

    if (known->generation != cat->generation) {
        known_clear(known);
        known->generation = cat->generation;
    }
    reasons_make_room(known, n);
    /* The set's slots of this list's items are cache misses on a busy node (a table per
     * connection, read once per list): ask for them all first, so that they arrive while
     * the items are filled in below instead of one after another. */
    for (uint32_t i = 0; i < n; i++)
        __builtin_prefetch(&known->items[known_home(known, v->ranked[i].item)]);
    rc_view_fill_items(s, ses, v);
    uint64_t hashes[RC_MAX_K_LIMIT];
    for (uint32_t i = 0; i < n; i++) { /* the reasons' slots: the same, once hashed */
        hashes[i] = reason_hash(&s->recs_buf[i]);
        __builtin_prefetch(&known->rids[(uint32_t)hashes[i] & (known->rid_cap - 1)]);
    }
    /* Removed: held, and not in the new list. Kept: their new places, in the held order. */
    for (uint32_t h = 0; h < sub->held_n; h++) {
        uint32_t at = 0;
        while (at < n && v->ranked[at].item != sub->held[h])
            at++;
        if (at == n)
            remove[n_remove++] = rc_item_id_text(cat, sub->held[h]);
        else
            kept_pos[n_kept++] = at;
    }
    longest_increasing(kept_pos, n_kept, stays);
    for (uint32_t i = 0; i < n; i++) {
        const rc_recs_item_t *it = &s->recs_buf[i];
        bool is_new;
        scores[i] = it->score;
        if (!stays[i])
            place[n_place++] = (rc_recs_place_t){i, it->item};
        if (!known_item(known, v->ranked[i].item) &&
            (it->name.p != NULL || it->category.p != NULL || it->price >= 0))
            details[n_details++] = it;
        rids[i] = known_reason(known, hashes[i], &is_new);
        if (is_new)
            reasons[n_reasons++] = (rc_recs_reason_def_t){rids[i], it};
    }
    bool with_cause = sub->held_version != 0 && v->cause[0] != '\0';
    rc_recs_delta_t d = {
        .surface = v->surface_text,
        .version = v->version,
        .base = sub->held_version,
        .remove = remove,
        .n_remove = n_remove,
        .place = place,
        .n_place = n_place,
        .scores = scores,
        .rids = rids,
        .n_items = n,
        .details = details,
        .n_details = n_details,
        .reasons = reasons,
        .n_reasons = n_reasons,
        .cause = with_cause ? (rc_str_t){v->cause, v->cause_len} : (rc_str_t){NULL, 0},
        .took_us = v->took_us,
        .variant = rc_view_variant(s, ses),
    };
    rc_proto_encode_recs_delta(rc_sessions_enc_begin(s, c->fmt), &d);
    rc_frame_t *f = rc_sessions_enc_frame(s, c->fmt);
    if (f == NULL) {
        /* Not sent: the client still holds the old list, but the details and reasons recorded
         * above were not sent either. Forget them all: the next list sends them again. */
        known_clear(known);
        reasons_clear(known);
        return NULL;
    }
    f->is_recs = true;
    f->cause_t0_us = with_cause ? v->cause_t0_us : 0;
    for (uint32_t i = 0; i < n; i++)
        sub->held[i] = v->ranked[i].item;
    sub->held_n = n;
    sub->held_version = v->version;
    return f;
}
