/* SPDX-License-Identifier: Apache-2.0 */
/* Profiles from the event log, at start (profile_replay.h). For a store that outlives the
 * process, the changes after the newest mark wait in a queue (records in one buffer, in log
 * order, strictly increasing sequence numbers) until the read-back ends; a mark drops the
 * queue's front. For a store that starts empty, each user's events gather in one delta, as a
 * live session's do, and go to the store when it is full, when the user is erased, when too
 * many users wait, or at the end: one merge per event made the read-back eight times slower
 * (1,000,000 events: 1.2 s, then 9 s). */
#include "store/profile_replay.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/log.h"
#include "util/strmap.h"

#include <stdlib.h>
#include <string.h>

/* A change waiting for the end of the read-back. Its user and item follow it in the buffer. */
typedef struct pending {
    uint64_t seq;
    int64_t at_ms;
    double value;
    uint32_t user_len, item_len;
    uint8_t kind; /* rc_event_kind_t, or ERASURE */
    bool has_value;
} pending_t;

#define ERASURE 0xff

/* A queue past this many bytes is trimmed from its front (warned once): a log without marks,
 * from before they were written, holds every change, and the store's buffer could not take
 * them all anyway. */
#define QUEUE_MAX_BYTES (256u << 20)

/* One user's events gathering for a store that starts empty. */
typedef struct group {
    char *user; /* the map's key */
    uint32_t user_len;
    rc_profile_delta_t delta;
    rc_profile_seq_t seq;
    int64_t at_ms; /* the newest event's */
} group_t;

#define GROUPS_MAX 4096 /* users gathering at once: about 1.6 MB */

struct rc_profile_replay {
    rc_profile_store_t *store;
    const rc_catalog_t *catalog;
    bool everything; /* the store starts empty: apply every change as it is read */
    rc_wbuf_t queue; /* pending_t, user, item; ... */
    size_t front;    /* offset of the first change still queued */
    rc_wbuf_t delta; /* one encoded delta */
    bool trimmed;
    rc_strmap_t by_user; /* user -> index in groups */
    group_t *groups;
    uint32_t n_groups;
    rc_profile_replay_stats_t st;
};

rc_profile_replay_t *rc_profile_replay_new(rc_profile_store_t *store, const rc_catalog_t *catalog)
{
    rc_profile_replay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->store = store;
    r->catalog = catalog;
    r->everything = !store->ops->shared;
    rc_wbuf_init(&r->queue, 0);
    rc_wbuf_init(&r->delta, 0);
    rc_strmap_init(&r->by_user);
    if (r->everything && (r->groups = calloc(GROUPS_MAX, sizeof(group_t))) == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

static void count(rc_profile_replay_t *r, int rc, bool erasure)
{
    if (rc != 0)
        r->st.refused++;
    else if (erasure)
        r->st.erasures_sent++;
    else
        r->st.events_sent++;
}

static void send_delta(rc_profile_replay_t *r, rc_str_t user, const rc_profile_delta_t *d,
                       int64_t at_ms, rc_profile_seq_t seq, uint64_t events)
{
    rc_wbuf_reset(&r->delta);
    int rc = rc_profile_delta_encode(r->catalog, d, at_ms, &r->delta);
    if (rc == 0)
        rc =
            rc_profile_update(r->store, user.p, user.n, rc_wbuf_data(&r->delta), r->delta.len, seq);
    if (rc != 0)
        r->st.refused += events;
    else
        r->st.events_sent += events;
}

static int64_t item_index(const rc_profile_replay_t *r, rc_str_t item)
{
    return item.n > 0 ? rc_catalog_find(r->catalog, item.p, item.n) : -1;
}

/* One event as its own delta, numbered as it was live. */
static void send_event(rc_profile_replay_t *r, rc_str_t user, rc_event_kind_t kind, rc_str_t item,
                       bool has_value, double value, int64_t at_ms, uint64_t seq)
{
    rc_profile_delta_t d;
    memset(&d, 0, sizeof(d));
    rc_profile_delta_add(&d, r->catalog, kind, item_index(r, item),
                         rc_event_weight(kind, has_value, value));
    send_delta(r, user, &d, at_ms, (rc_profile_seq_t){seq, seq}, 1);
}

static void send_group(rc_profile_replay_t *r, group_t *g)
{
    if (g->delta.events > 0 || g->delta.n_excluded > 0)
        send_delta(r, (rc_str_t){g->user, g->user_len}, &g->delta, g->at_ms, g->seq,
                   g->delta.events);
    memset(&g->delta, 0, sizeof(g->delta));
}

static void send_groups(rc_profile_replay_t *r)
{
    for (uint32_t i = 0; i < r->n_groups; i++) {
        send_group(r, &r->groups[i]);
        free(r->groups[i].user);
    }
    r->n_groups = 0;
    rc_strmap_free(&r->by_user);
    rc_strmap_init(&r->by_user);
}

/* The user's gathering delta, NULL when out of memory (the caller sends the event alone). */
static group_t *group_of(rc_profile_replay_t *r, rc_str_t user)
{
    uint64_t at;
    if (rc_strmap_get(&r->by_user, user.p, user.n, &at))
        return &r->groups[at];
    if (r->n_groups == GROUPS_MAX)
        send_groups(r);
    group_t *g = &r->groups[r->n_groups];
    memset(g, 0, sizeof(*g));
    if ((g->user = malloc(user.n)) == NULL)
        return NULL;
    memcpy(g->user, user.p, user.n);
    g->user_len = user.n;
    if (rc_strmap_put(&r->by_user, g->user, user.n, r->n_groups) != 0) {
        free(g->user);
        return NULL;
    }
    r->n_groups++;
    return g;
}

static void gather_event(rc_profile_replay_t *r, rc_str_t user, rc_event_kind_t kind, rc_str_t item,
                         bool has_value, double value, int64_t at_ms, uint64_t seq)
{
    group_t *g = group_of(r, user);
    if (g == NULL) {
        send_event(r, user, kind, item, has_value, value, at_ms, seq);
        return;
    }
    int64_t idx = item_index(r, item);
    float w = rc_event_weight(kind, has_value, value);
    if (!rc_profile_delta_add(&g->delta, r->catalog, kind, idx, w)) {
        send_group(r, g);
        rc_profile_delta_add(&g->delta, r->catalog, kind, idx, w); /* an empty delta takes it */
    }
    if (g->delta.events == 1 || g->seq.first == 0)
        g->seq.first = seq;
    g->seq.last = seq;
    g->at_ms = at_ms;
}

static void send_erasure(rc_profile_replay_t *r, rc_str_t user, uint64_t seq)
{
    count(r, rc_profile_erase(r->store, user.p, user.n, (rc_profile_seq_t){seq, seq}), true);
}

static size_t entry_size(const pending_t *p)
{
    return sizeof(*p) + p->user_len + p->item_len;
}

/* Drops the queued changes numbered below `mark`: a prefix, the queue being in order. */
static void drop_below(rc_profile_replay_t *r, uint64_t mark)
{
    while (r->front < r->queue.len) {
        pending_t p;
        memcpy(&p, rc_wbuf_data(&r->queue) + r->front, sizeof(p));
        if (p.seq >= mark)
            break;
        r->front += entry_size(&p);
        r->st.skipped++;
    }
    if (r->front == r->queue.len) {
        rc_wbuf_reset(&r->queue);
        r->front = 0;
    } else if (r->front > r->queue.len / 2 && r->front > (1u << 20)) {
        size_t left = r->queue.len - r->front;
        memmove(rc_wbuf_data(&r->queue), rc_wbuf_data(&r->queue) + r->front, left);
        r->queue.len = left;
        r->front = 0;
    }
}

static void enqueue(rc_profile_replay_t *r, const pending_t *p, rc_str_t user, rc_str_t item)
{
    if (r->queue.len - r->front + entry_size(p) > QUEUE_MAX_BYTES) {
        pending_t first;
        memcpy(&first, rc_wbuf_data(&r->queue) + r->front, sizeof(first));
        if (!r->trimmed)
            RC_WARN("log",
                    "profile changes after the newest mark exceed the replay queue: the oldest "
                    "are not sent to the store again",
                    "queue_bytes=%u", QUEUE_MAX_BYTES);
        r->trimmed = true;
        drop_below(r, first.seq + 1);
    }
    rc_wbuf_put(&r->queue, p, sizeof(*p));
    rc_wbuf_put(&r->queue, user.p, user.n);
    rc_wbuf_put(&r->queue, item.p, item.n); /* an erasure has none */
}

void rc_profile_replay_event(rc_profile_replay_t *r, rc_str_t user, rc_event_kind_t kind,
                             rc_str_t item, bool has_value, double value, int64_t at_ms,
                             uint64_t seq)
{
    if (user.n == 0 || seq == 0)
        return;
    if (r->everything) {
        gather_event(r, user, kind, item, has_value, value, at_ms, seq);
        return;
    }
    pending_t p = {.seq = seq,
                   .at_ms = at_ms,
                   .value = value,
                   .user_len = user.n,
                   .item_len = item.n,
                   .kind = (uint8_t)kind,
                   .has_value = has_value};
    enqueue(r, &p, user, item);
}

void rc_profile_replay_erase(rc_profile_replay_t *r, rc_str_t user, uint64_t seq)
{
    if (user.n == 0 || seq == 0)
        return;
    if (r->everything) {
        uint64_t at;
        if (rc_strmap_get(&r->by_user, user.p, user.n, &at))
            memset(&r->groups[at].delta, 0, sizeof(r->groups[at].delta)); /* erased with it */
        send_erasure(r, user, seq);
        return;
    }
    pending_t p = {.seq = seq, .user_len = user.n, .kind = ERASURE};
    enqueue(r, &p, user, (rc_str_t){NULL, 0});
}

void rc_profile_replay_mark(rc_profile_replay_t *r, uint64_t mark)
{
    if (!r->everything)
        drop_below(r, mark);
}

void rc_profile_replay_finish(rc_profile_replay_t *r, rc_profile_replay_stats_t *st)
{
    send_groups(r);
    const char *q = rc_wbuf_data(&r->queue);
    for (size_t off = r->front; off < r->queue.len;) {
        pending_t p;
        memcpy(&p, q + off, sizeof(p));
        rc_str_t user = {q + off + sizeof(p), p.user_len};
        rc_str_t item = {user.p + p.user_len, p.item_len};
        if (p.kind == ERASURE)
            send_erasure(r, user, p.seq);
        else
            send_event(r, user, (rc_event_kind_t)p.kind, item, p.has_value, p.value, p.at_ms,
                       p.seq);
        off += entry_size(&p);
    }
    rc_wbuf_reset(&r->queue);
    r->front = 0;
    *st = r->st;
}

void rc_profile_replay_free(rc_profile_replay_t *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->n_groups; i++)
        free(r->groups[i].user);
    rc_wbuf_free(&r->queue);
    rc_wbuf_free(&r->delta);
    rc_strmap_free(&r->by_user);
    free(r->groups);
    free(r);
}
