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

/* What the connection's client keeps of an item: an open-addressing table from catalog index
 * to the hash of the reason it was last sent. It grows up to KNOWN_MAX entries; when full
 * it is emptied (the client keeps what it had and is sent the details again, which it
 * simply overwrites), so a long session costs a bounded amount. The catalog generation it
 * was filled under: an upsert may have changed names and prices, so it starts afresh. */
#define KNOWN_MIN 64
/* The longest list (--max-k is at most 100, PROTOCOL.md `subscribe`): the diff's scratch. */
#define RC_MAX_K_LIMIT 100
#define KNOWN_MAX      4096

typedef struct {
    uint32_t key; /* catalog index + 1; 0: free */
    uint32_t reason_hash;
} known_entry_t;

struct rc_known {
    uint32_t cap, n;
    uint32_t generation;
    known_entry_t *e;
};

void rc_known_free(rc_known_t *k)
{
    if (k == NULL)
        return;
    free(k->e);
    free(k);
}

static rc_known_t *known_new(void)
{
    rc_known_t *k = calloc(1, sizeof(*k));
    if (k == NULL || (k->e = calloc(KNOWN_MIN, sizeof(*k->e))) == NULL) {
        free(k);
        return NULL;
    }
    k->cap = KNOWN_MIN;
    return k;
}

static void known_clear(rc_known_t *k)
{
    memset(k->e, 0, k->cap * sizeof(*k->e));
    k->n = 0;
}

static known_entry_t *known_slot(const rc_known_t *k, uint32_t item)
{
    uint32_t mask = k->cap - 1, i = (item * 2654435761u) & mask;
    while (k->e[i].key != 0 && k->e[i].key != item + 1)
        i = (i + 1) & mask;
    return &k->e[i];
}

/* Doubles the table (rehashing); at KNOWN_MAX, or out of memory, empties it instead. */
static void known_make_room(rc_known_t *k)
{
    if (k->n * 4 < k->cap * 3)
        return;
    known_entry_t *old = k->e, *e = k->cap < KNOWN_MAX ? calloc(k->cap * 2, sizeof(*e)) : NULL;
    if (e == NULL) {
        known_clear(k);
        return;
    }
    uint32_t cap = k->cap;
    k->e = e;
    k->cap = cap * 2;
    for (uint32_t i = 0; i < cap; i++)
        if (old[i].key != 0)
            *known_slot(k, old[i].key - 1) = old[i];
    free(old);
}

int rc_compact_subscribe(rc_conn_t *c, rc_sub_t *sub, bool compact)
{
    rc_compact_sub_free(sub);
    if (!compact)
        return 0;
    if (c->known == NULL && (c->known = known_new()) == NULL)
        return RC_ENOMEM;
    sub->held = calloc((size_t)c->reg->cfg->max_k, sizeof(*sub->held));
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
static uint32_t reason_hash(const rc_recs_item_t *it)
{
    const rc_recs_reason_t *r = it->reason;
    const char *parts[] = {it->src,     it->why,          r->code,    r->item,   r->item_name,
                           r->category, r->category_name, r->segment, r->locale, r->kind};
    XXH32_hash_t h = (XXH32_hash_t)r->age_s;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        h = XXH32(parts[i] ? parts[i] : "", parts[i] ? strlen(parts[i]) + 1 : 0, h);
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
    const rc_catalog_t *cat = rc_engine_catalog(s->engine);
    rc_known_t *known = c->known;
    uint32_t n = v->n;
    const char *remove[RC_MAX_K_LIMIT];
    rc_recs_place_t place[RC_MAX_K_LIMIT];
    rc_recs_detail_t details[RC_MAX_K_LIMIT];
    double scores[RC_MAX_K_LIMIT];
    uint32_t kept_pos[RC_MAX_K_LIMIT], n_remove = 0, n_place = 0, n_details = 0, n_kept = 0;
    bool stays[RC_MAX_K_LIMIT] = {false};

    if (known->generation != cat->generation) {
        known_clear(known);
        known->generation = cat->generation;
    }
    rc_view_fill_items(s, ses, v);
    /* Removed: held, and not in the new list. Kept: their new places, in the held order. */
    for (uint32_t h = 0; h < sub->held_n; h++) {
        uint32_t at = 0;
        while (at < n && v->ranked[at].item != sub->held[h])
            at++;
        if (at == n)
            remove[n_remove++] = rc_item_id(cat, sub->held[h]);
        else
            kept_pos[n_kept++] = at;
    }
    longest_increasing(kept_pos, n_kept, stays);
    for (uint32_t i = 0; i < n; i++) {
        const rc_recs_item_t *it = &s->recs_buf[i];
        scores[i] = it->score;
        if (!stays[i])
            place[n_place++] = (rc_recs_place_t){i, it->item};
        known_make_room(known);
        known_entry_t *e = known_slot(known, v->ranked[i].item);
        uint32_t h = reason_hash(it);
        bool is_new = e->key == 0;
        if (is_new || e->reason_hash != h)
            details[n_details++] = (rc_recs_detail_t){it, is_new, true};
        if (is_new)
            known->n++;
        *e = (known_entry_t){v->ranked[i].item + 1, h};
    }
    bool with_cause = sub->held_version != 0 && v->cause[0] != '\0';
    rc_recs_delta_t d = {
        .surface = v->surface,
        .version = v->version,
        .base = sub->held_version,
        .remove = remove,
        .n_remove = n_remove,
        .place = place,
        .n_place = n_place,
        .scores = scores,
        .n_scores = n,
        .details = details,
        .n_details = n_details,
        .cause =
            with_cause ? (rc_str_t){v->cause, (uint32_t)strlen(v->cause)} : (rc_str_t){NULL, 0},
        .took_us = v->took_us,
        .variant = rc_view_variant(s, ses),
    };
    rc_proto_encode_recs_delta(rc_sessions_enc_begin(s, c->fmt), &d);
    rc_frame_t *f = rc_sessions_enc_frame(s, c->fmt);
    if (f == NULL) {
        /* Not sent: the client still holds the old list, but the details recorded above
         * were not sent either. Forget them all: the next list sends them again. */
        known_clear(known);
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
