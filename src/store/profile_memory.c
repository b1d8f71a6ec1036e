/* SPDX-License-Identifier: Apache-2.0 */
/* The in-memory profile store: the embedded default for a single node. Answers are deferred
 * to the next loop turn like a network store's. Memory is bounded as Redis bounds it: a
 * profile not written for the TTL expires, and past the cap the least recently written one
 * makes room (both counted in rankcast_profile_evictions_total). The blobs are kept in order
 * of last write in a list threaded through their slots, so both are found at its head.
 * Event loops in several threads of one process share the profiles through a handle each
 * (rc_profile_memory_share): the profiles are locked for every call, which come when a
 * session starts, writes or ends, not per event. */
#include "store/profile.h"
#include "proto/mpack.h"
#include "util/clock.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/metrics.h"
#include "util/strmap.h"
#include "util/wbuf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NONE         UINT32_MAX
#define EXPIRE_BATCH 8 /* expired profiles freed per write, at most */

typedef struct blob {
    char *user;
    size_t user_len;
    void *data;
    size_t len, cap;
    int64_t written_ms;
    uint32_t prev, next; /* slots, in order of last write; NONE at the ends */
} blob_t;

typedef struct pending_load {
    struct memory_store *store;
    size_t user_len;
    char user[];
} pending_load_t;

/* The profiles, shared by every handle. */
typedef struct profiles {
    pthread_mutex_t lock; /* held for every call of any handle */
    uint32_t handles;     /* freed with the last */
    rc_strmap_t index;    /* user -> slot in blobs */
    blob_t *blobs;
    uint32_t n_blobs, cap_blobs;
    uint32_t *free_slots;
    uint32_t n_free;
    uint32_t oldest, newest; /* the ends of the write order */
    uint32_t n_live, max_users;
    int64_t ttl_ms;
    msgpack_zone zone; /* a merge's decoding scratch, reused */
    rc_wbuf_t merged;  /* the document a merge writes, reused */
    rc_wbuf_t loaded;  /* a copy of the profile a load answers with, outside the lock */
} profiles_t;

/* A handle: its answers run on its loop (`defer`), through its owner's on_loaded. */
typedef struct memory_store {
    rc_profile_store_t base;
    rc_defer_t *defer;
    profiles_t *p;
} memory_store_t;

static void unlink_slot(profiles_t *m, uint32_t slot)
{
    blob_t *b = &m->blobs[slot];
    if (b->prev != NONE)
        m->blobs[b->prev].next = b->next;
    else
        m->oldest = b->next;
    if (b->next != NONE)
        m->blobs[b->next].prev = b->prev;
    else
        m->newest = b->prev;
    b->prev = b->next = NONE;
}

static void append_slot(profiles_t *m, uint32_t slot)
{
    blob_t *b = &m->blobs[slot];
    b->prev = m->newest;
    b->next = NONE;
    if (m->newest != NONE)
        m->blobs[m->newest].next = slot;
    else
        m->oldest = slot;
    m->newest = slot;
}

static void free_slot(profiles_t *m, uint32_t slot)
{
    unlink_slot(m, slot);
    rc_strmap_del(&m->index, m->blobs[slot].user, m->blobs[slot].user_len);
    free(m->blobs[slot].user);
    free(m->blobs[slot].data);
    memset(&m->blobs[slot], 0, sizeof(blob_t));
    m->free_slots[m->n_free++] = slot;
    m->n_live--;
}

static bool expired(const profiles_t *m, uint32_t slot, int64_t now_ms)
{
    return m->ttl_ms > 0 && now_ms - m->blobs[slot].written_ms > m->ttl_ms;
}

/* Frees a few expired profiles, oldest first: every write pays a little, none a lot. */
static void expire_some(profiles_t *m, int64_t now_ms)
{
    for (int i = 0; i < EXPIRE_BATCH && m->oldest != NONE && expired(m, m->oldest, now_ms); i++) {
        free_slot(m, m->oldest);
        rc_metrics.profile_evictions[RC_EVICT_TTL]++;
    }
}

/* The answer is copied out under the lock and given outside it: the owner's callback may
 * call the store again. */
static void answer_load(void *arg)
{
    pending_load_t *pl = arg;
    memory_store_t *h = pl->store;
    profiles_t *m = h->p;
    uint64_t slot;
    int status = RC_ENOENT;
    pthread_mutex_lock(&m->lock);
    if (rc_strmap_get(&m->index, pl->user, pl->user_len, &slot) &&
        expired(m, (uint32_t)slot, rc_wall_ms())) {
        free_slot(m, (uint32_t)slot);
        rc_metrics.profile_evictions[RC_EVICT_TTL]++;
    }
    rc_wbuf_t *out = &m->loaded;
    rc_wbuf_t copy;
    rc_wbuf_init(&copy, 0);
    if (h->base.on_loaded != NULL && /* NULL: the owner has gone */
        rc_strmap_get(&m->index, pl->user, pl->user_len, &slot)) {
        /* One handle (one loop, the usual case) reuses the store's buffer. */
        if (m->handles > 1)
            out = &copy;
        rc_wbuf_reset(out);
        rc_wbuf_put(out, m->blobs[slot].data, m->blobs[slot].len);
        status = out->failed ? RC_ENOMEM : 0;
    }
    pthread_mutex_unlock(&m->lock);
    if (h->base.on_loaded != NULL)
        h->base.on_loaded(h->base.ctx, pl->user, pl->user_len, status,
                          status == 0 ? rc_wbuf_data(out) : NULL, status == 0 ? out->len : 0);
    rc_wbuf_free(&copy);
    free(pl);
}

static int mem_load(rc_profile_store_t *s, const char *user, size_t user_len)
{
    memory_store_t *h = (memory_store_t *)s;
    pending_load_t *pl = malloc(sizeof(*pl) + user_len);
    if (pl == NULL)
        return RC_ENOMEM;
    pl->store = h;
    pl->user_len = user_len;
    memcpy(pl->user, user, user_len);
    int rc = rc_defer(h->defer, answer_load, pl);
    if (rc != 0)
        free(pl);
    return rc;
}

static int new_slot(profiles_t *m, uint32_t *slot)
{
    if (m->n_free > 0) {
        *slot = m->free_slots[--m->n_free];
        return 0;
    }
    if (m->n_blobs == m->cap_blobs) {
        uint32_t cap = m->cap_blobs ? m->cap_blobs * 2 : 64;
        blob_t *b = realloc(m->blobs, cap * sizeof(*b));
        if (b == NULL)
            return RC_ENOMEM;
        uint32_t *f = realloc(m->free_slots, cap * sizeof(*f));
        if (f == NULL) {
            m->blobs = b;
            return RC_ENOMEM;
        }
        m->blobs = b;
        m->free_slots = f;
        m->cap_blobs = cap;
    }
    *slot = m->n_blobs++;
    return 0;
}

/* A document's room: its length rounded up, so that one growing by a few bytes (a longer
 * item id among the recent ones) usually still fits where it is. */
static size_t doc_room(size_t len)
{
    return (len + 127) & ~(size_t)127;
}

/* Copies `doc` into the user's slot, in place when it fits, or adds a slot for a new user. */
static int store_doc(profiles_t *m, const char *user, size_t user_len, const void *doc, size_t len,
                     int64_t now_ms)
{
    uint64_t found;
    if (rc_strmap_get(&m->index, user, user_len, &found)) {
        blob_t *b = &m->blobs[found];
        if (len > b->cap) {
            void *grown = realloc(b->data, doc_room(len));
            if (grown == NULL)
                return RC_ENOMEM;
            b->data = grown;
            b->cap = doc_room(len);
        }
        memcpy(b->data, doc, len);
        b->len = len;
        b->written_ms = now_ms;
        unlink_slot(m, (uint32_t)found);
        append_slot(m, (uint32_t)found);
        return 0;
    }
    if (m->max_users > 0 && m->n_live >= m->max_users && m->oldest != NONE) {
        free_slot(m, m->oldest);
        rc_metrics.profile_evictions[RC_EVICT_CAP]++;
    }
    uint32_t slot;
    char *ucopy = malloc(user_len + 1);
    void *copy = malloc(doc_room(len));
    int rc = ucopy && copy ? new_slot(m, &slot) : RC_ENOMEM;
    if (rc == 0) {
        memcpy(ucopy, user, user_len);
        ucopy[user_len] = '\0';
        memcpy(copy, doc, len);
        m->blobs[slot] = (blob_t){ucopy, user_len, copy, len, doc_room(len), now_ms, NONE, NONE};
        rc = rc_strmap_put(&m->index, ucopy, user_len, slot);
        if (rc != 0) {
            m->free_slots[m->n_free++] = slot;
        } else {
            append_slot(m, slot);
            m->n_live++;
        }
    }
    if (rc != 0) {
        free(ucopy);
        free(copy);
    }
    return rc;
}

/* The merge is the same as Redis' script (rc_profile_apply_delta), done in place: a single
 * node in one process has no concurrent writer and no lost reply to guard against, and a
 * restart starts it empty (the event log, if any, fills it again), so `seq` is not kept. */
static int mem_update(rc_profile_store_t *s, const char *user, size_t user_len, const void *delta,
                      size_t len, rc_profile_seq_t seq)
{
    (void)seq;
    profiles_t *m = ((memory_store_t *)s)->p;
    pthread_mutex_lock(&m->lock);
    const void *doc = NULL;
    size_t doc_len = 0;
    uint64_t found;
    int64_t now_ms = rc_wall_ms();
    expire_some(m, now_ms);
    if (rc_strmap_get(&m->index, user, user_len, &found) && !expired(m, (uint32_t)found, now_ms)) {
        doc = m->blobs[found].data;
        doc_len = m->blobs[found].len;
    }
    rc_wbuf_reset(&m->merged);
    int rc = rc_profile_apply_delta(&m->zone, doc, doc_len, delta, len, &m->merged);
    if (rc == 0)
        rc = store_doc(m, user, user_len, rc_wbuf_data(&m->merged), m->merged.len, now_ms);
    rc_metrics.profile_updates_written += rc == 0;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int mem_erase(rc_profile_store_t *s, const char *user, size_t user_len, rc_profile_seq_t seq)
{
    (void)seq;
    profiles_t *m = ((memory_store_t *)s)->p;
    uint64_t slot;
    pthread_mutex_lock(&m->lock);
    if (rc_strmap_get(&m->index, user, user_len, &slot))
        free_slot(m, (uint32_t)slot);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_ready(rc_profile_store_t *s, char *reason, size_t reason_len)
{
    (void)s, (void)reason, (void)reason_len;
    return 0;
}

static size_t mem_pending(const rc_profile_store_t *s)
{
    (void)s;
    return 0;
}

static void mem_destroy(rc_profile_store_t *s)
{
    memory_store_t *h = (memory_store_t *)s;
    profiles_t *m = h->p;
    free(h);
    pthread_mutex_lock(&m->lock);
    bool last = --m->handles == 0;
    pthread_mutex_unlock(&m->lock);
    if (!last)
        return;
    for (uint32_t i = 0; i < m->n_blobs; i++) {
        free(m->blobs[i].user);
        free(m->blobs[i].data);
    }
    free(m->blobs);
    free(m->free_slots);
    rc_strmap_free(&m->index);
    rc_wbuf_free(&m->merged);
    rc_wbuf_free(&m->loaded);
    msgpack_zone_destroy(&m->zone);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Not shared: only this process's next session of a user reads a profile here, and a
 * session ends by writing its changes, so sessions write once, not every profile_flush_ms. */
/* Profiles oldest written first, [user, document, written_ms] each: read back in order, the
 * write order (the cap's eviction order) comes back with them. */
static void mem_snapshot_write(const rc_profile_store_t *s, msgpack_packer *pk)
{
    profiles_t *m = ((const memory_store_t *)s)->p;
    pthread_mutex_lock(&m->lock);
    msgpack_pack_array(pk, m->n_live);
    for (uint32_t slot = m->oldest; slot != NONE; slot = m->blobs[slot].next) {
        const blob_t *b = &m->blobs[slot];
        msgpack_pack_array(pk, 3);
        rc_mp_str(pk, b->user, b->user_len);
        msgpack_pack_bin(pk, b->len);
        msgpack_pack_bin_body(pk, b->data, b->len);
        msgpack_pack_int64(pk, b->written_ms);
    }
    pthread_mutex_unlock(&m->lock);
}

static int snapshot_read(profiles_t *m, const msgpack_object *o)
{
    int64_t now_ms = rc_wall_ms();
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return RC_EPARSE;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *p = &o->via.array.ptr[i];
        const msgpack_object *f = p->via.array.ptr;
        if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 3 ||
            f[0].type != MSGPACK_OBJECT_STR || f[1].type != MSGPACK_OBJECT_BIN ||
            (f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
             f[2].type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
            return RC_EPARSE;
        int64_t written_ms = f[2].via.i64;
        if (m->ttl_ms > 0 && now_ms - written_ms >= m->ttl_ms)
            continue; /* expired meanwhile */
        int rc = store_doc(m, f[0].via.str.ptr, f[0].via.str.size, f[1].via.bin.ptr,
                           f[1].via.bin.size, written_ms);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int mem_snapshot_read(rc_profile_store_t *s, const msgpack_object *o)
{
    profiles_t *m = ((memory_store_t *)s)->p;
    pthread_mutex_lock(&m->lock);
    int rc = snapshot_read(m, o);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static const rc_profile_ops_t memory_ops = {.name = "memory",
                                            .load = mem_load,
                                            .update = mem_update,
                                            .erase = mem_erase,
                                            .snapshot_write = mem_snapshot_write,
                                            .snapshot_read = mem_snapshot_read,
                                            .ready = mem_ready,
                                            .pending = mem_pending,
                                            .destroy = mem_destroy,
                                            .shared = false};

static memory_store_t *handle_new(profiles_t *p, struct rc_defer *defer,
                                  rc_profile_loaded_fn on_loaded, void *ctx)
{
    memory_store_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->base.ops = &memory_ops;
    h->base.on_loaded = on_loaded;
    h->base.ctx = ctx;
    h->defer = defer;
    h->p = p;
    return h;
}

rc_profile_store_t *rc_profile_memory_new(struct rc_defer *defer, rc_profile_loaded_fn on_loaded,
                                          void *ctx, uint32_t max_users, int64_t ttl_ms)
{
    profiles_t *m = calloc(1, sizeof(*m));
    if (m == NULL || !msgpack_zone_init(&m->zone, RC_PROFILE_ZONE)) {
        free(m);
        return NULL;
    }
    memory_store_t *h = handle_new(m, defer, on_loaded, ctx);
    if (h == NULL) {
        msgpack_zone_destroy(&m->zone);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->handles = 1;
    m->oldest = m->newest = NONE;
    m->max_users = max_users;
    m->ttl_ms = ttl_ms;
    rc_strmap_init(&m->index);
    rc_wbuf_init(&m->merged, 0);
    rc_wbuf_init(&m->loaded, 0);
    return &h->base;
}

rc_profile_store_t *rc_profile_memory_share(rc_profile_store_t *store, struct rc_defer *defer,
                                            rc_profile_loaded_fn on_loaded, void *ctx)
{
    if (store->ops != &memory_ops)
        return NULL;
    profiles_t *m = ((memory_store_t *)store)->p;
    memory_store_t *h = handle_new(m, defer, on_loaded, ctx);
    if (h == NULL)
        return NULL;
    pthread_mutex_lock(&m->lock);
    m->handles++;
    pthread_mutex_unlock(&m->lock);
    return &h->base;
}
