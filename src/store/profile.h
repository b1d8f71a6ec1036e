/* SPDX-License-Identifier: Apache-2.0 */
/* Long-term user profiles: the store interface (in-memory or Redis behind it), the profile
 * document, and the deltas that update it.
 *
 * Stores never overwrite a profile with a node's view of it: a node sends what changed
 * (a delta: events counted, category weight added, items seen or excluded) and the store
 * merges it atomically, so two nodes updating one user never lose each other's changes.
 * Documents and deltas are MessagePack (see docs/profiles.md for the schema). */
#ifndef RC_PROFILE_H
#define RC_PROFILE_H

#include "engine/engine.h"
#include "util/wbuf.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define RC_PROFILE_CATS     16       /* category affinities kept per profile */
#define RC_PROFILE_RECENT   16       /* recent items kept per profile */
#define RC_PROFILE_EXCLUDED 32       /* purchased or dismissed items kept per profile */
#define RC_PROFILE_FEATS    RC_LTVEC /* content feature affinities kept per profile */
/* Long-term affinities (categories, content features) fade by half in 30 days without
 * activity: a stored weight is multiplied by 2^(-elapsed / half-life) at each update. */
#define RC_PROFILE_HALF_LIFE_MS (30LL * 86400 * 1000)

typedef struct rc_profile_store rc_profile_store_t;

/* Where a change stands in the node's order of profile changes: `first` and `last` are the
 * sequence numbers of the oldest and newest event it holds (strictly increasing on one node,
 * and across its restarts: the microsecond clock, never behind the event log's newest). A
 * store that keeps them (Redis) applies a change only if `last` is above the newest it applied
 * from this node, so a change sent twice, by a retry or by a restart finishing what the store
 * had not confirmed, counts once. {0, 0}: the store numbers the change itself. */
typedef struct rc_profile_seq {
    uint64_t first, last;
} rc_profile_seq_t;

/* Result of rc_profile_load(): status 0 with the document (borrowed for the call),
 * RC_ENOENT when the user has no profile, or another negative code (the store cannot
 * answer now). `user` is borrowed too. */
typedef void (*rc_profile_loaded_fn)(void *ctx, const char *user, size_t user_len, int status,
                                     const void *data, size_t len);

typedef struct rc_profile_ops {
    const char *name;
    int (*load)(rc_profile_store_t *s, const char *user, size_t user_len);
    int (*update)(rc_profile_store_t *s, const char *user, size_t user_len, const void *delta,
                  size_t len, rc_profile_seq_t seq);
    int (*erase)(rc_profile_store_t *s, const char *user, size_t user_len, rc_profile_seq_t seq);
    uint64_t (*oldest_unconfirmed)(const rc_profile_store_t *s); /* NULL: all confirmed */
    /* A store that lives in the process (NULL otherwise): its part of a snapshot. */
    void (*snapshot_write)(const rc_profile_store_t *s, msgpack_packer *pk);
    int (*snapshot_read)(rc_profile_store_t *s, const msgpack_object *o);
    int (*ready)(rc_profile_store_t *s, char *reason, size_t reason_len);
    size_t (*pending)(const rc_profile_store_t *s);
    void (*close)(rc_profile_store_t *s);
    void (*destroy)(rc_profile_store_t *s);
    /* Whether anyone but this process's next session of a user reads the store (Redis: other
     * nodes, and this one after a restart). Sessions write to such a store every
     * profile_flush_ms; to one that is not (the in-memory store) when they end, or when
     * their delta is full. */
    bool shared;
} rc_profile_ops_t;

struct rc_profile_store {
    const rc_profile_ops_t *ops;
    rc_profile_loaded_fn on_loaded; /* given at creation */
    void *ctx;
};

/** Asks for a user's profile; the answer comes through s->on_loaded on a later loop turn,
 * never inside this call. Returns 0, or a negative code (then on_loaded never fires). */
int rc_profile_load(rc_profile_store_t *s, const char *user, size_t user_len);

/** Merges a delta (from rc_profile_delta_encode(); bytes copied) into the user's profile,
 * now or once the store is reachable. Returns 0, or RC_EFULL when the store's buffer of
 * unwritten updates is full (the delta is dropped and counted). */
int rc_profile_update(rc_profile_store_t *s, const char *user, size_t user_len, const void *delta,
                      size_t len, rc_profile_seq_t seq);

/** Deletes a user's profile, after every update queued before it. Returns 0 (also when
 * there was none) or a negative code. */
int rc_profile_erase(rc_profile_store_t *s, const char *user, size_t user_len,
                     rc_profile_seq_t seq);

/** The smallest rc_profile_seq_t.first of the changes the store took and has not confirmed
 * (numbered ones only); UINT64_MAX when there are none. */
uint64_t rc_profile_oldest_unconfirmed(const rc_profile_store_t *s);

/** 0 when usable; otherwise a negative code and a reason. */
int rc_profile_ready(rc_profile_store_t *s, char *reason, size_t reason_len);

/** A store in the process writes its profiles into `pk` (a snapshot's part, log/snapshot.h);
 * another writes nil: its profiles outlive the process without it. */
void rc_profile_snapshot_write(const rc_profile_store_t *s, msgpack_packer *pk);

/** Restores, before any session, what rc_profile_snapshot_write() wrote (nil: nothing).
 * Returns 0, RC_EPARSE or RC_ENOMEM. */
int rc_profile_snapshot_read(rc_profile_store_t *s, const msgpack_object *o);

/** Updates and erasures accepted but not yet confirmed by the store. */
size_t rc_profile_pending(const rc_profile_store_t *s);

/** Stops the store's network activity and closes its loop handles; the loop must run once
 * more before rc_profile_store_free(). Updates still unconfirmed are lost (and logged):
 * wait for rc_profile_pending() to reach 0 first. NULL is a no-op. */
void rc_profile_close(rc_profile_store_t *s);

/** Frees the store, after rc_profile_close() and a loop run. NULL is a no-op. */
void rc_profile_store_free(rc_profile_store_t *s);

/** The Redis store (profile_redis.c): `url` is redis://[[user]:password@]host[:port][/db]
 * or unix:///path[?db=N]. Connects in the background on `loop` and reconnects with
 * backoff; `cfg` and `writer` are borrowed. `writer` names this node's order of changes in
 * each profile (rc_profile_seq_t): the node id, or with an event log the log's own id, which
 * outlives restarts. NULL with a message in `err` for a bad URL. */
struct rc_config;
rc_profile_store_t *rc_profile_redis_new(uv_loop_t *loop, const struct rc_config *cfg,
                                         const char *writer, rc_profile_loaded_fn on_loaded,
                                         void *ctx, char *err, size_t errlen);

/** The in-memory store (the embedded default). Deferred answers run on `defer`'s loop
 * turns; `defer` is borrowed and must outlive the store. At most `max_users` profiles are
 * kept (0: no cap; past it the least recently written goes), and a profile not written for
 * `ttl_ms` expires (0: never). NULL when out of memory. Both stores answer loads through
 * `on_loaded(ctx, ...)`. */
struct rc_defer;
rc_profile_store_t *rc_profile_memory_new(struct rc_defer *defer, rc_profile_loaded_fn on_loaded,
                                          void *ctx, uint32_t max_users, int64_t ttl_ms);

/** Another handle on the profiles of the in-memory store `store` (borrowed), for an event
 * loop in another thread: its answers run on `defer`'s loop through `on_loaded(ctx, ...)`.
 * Every handle may be used from its own thread at once; the profiles go with the last
 * handle freed (rc_profile_store_free). NULL when `store` is not an in-memory store or out
 * of memory. */
rc_profile_store_t *rc_profile_memory_share(rc_profile_store_t *store, struct rc_defer *defer,
                                            rc_profile_loaded_fn on_loaded, void *ctx);

/* What one session changed since its last write (376 bytes); a session holds one while it
 * has changes to write. */
typedef struct rc_profile_delta {
    uint32_t events;
    uint8_t n_cats, n_recent, n_excluded, n_feats;
    uint16_t cats[RC_CATS];
    float cats_w[RC_CATS];
    uint32_t feats[RC_PROFILE_FEATS]; /* content features, as rc_user_state_t.ltvec */
    float feats_w[RC_PROFILE_FEATS];
    uint32_t recent[RC_PROFILE_RECENT]; /* oldest first */
    uint32_t excluded[RC_PROFILE_EXCLUDED];
} rc_profile_delta_t;

/** Records one applied event of weight `w` on catalog item `item` (-1: none). Returns false,
 * and changes nothing, when the delta could take it only by dropping a category, a feature
 * or an excluded item it holds: write the delta and add the event to an empty one, which
 * takes any event. */
bool rc_profile_delta_add(rc_profile_delta_t *d, const rc_catalog_t *c, rc_event_kind_t kind,
                          int64_t item, float w);

static inline bool rc_profile_delta_empty(const rc_profile_delta_t *d)
{
    return d->events == 0 && d->n_excluded == 0;
}

/** Encodes a delta (items by id) into `out`. Returns 0 or RC_ENOMEM. */
int rc_profile_delta_encode(const rc_catalog_t *c, const rc_profile_delta_t *d, int64_t now_ms,
                            rc_wbuf_t *out);

/* A msgpack zone's first chunk that holds the decoded objects of any document or delta the
 * server writes: a zone made with it and reused allocates nothing. */
#define RC_PROFILE_ZONE 8192

/** Merges an encoded delta into a stored document (`doc` may be NULL: no profile yet) and
 * writes the new document to `out`. The same rules as the Redis script (profile_redis.c):
 * counts add; the stored category and feature weights fade with the time since the last
 * update (RC_PROFILE_HALF_LIFE_MS), then the delta's add (the 16 strongest of each kept);
 * recent items move to the end (16 kept), excluded items are added once (32 kept). `zone`
 * is the decoding scratch, cleared here (see RC_PROFILE_ZONE). Returns 0, RC_EPARSE or
 * RC_ENOMEM. */
int rc_profile_apply_delta(msgpack_zone *zone, const void *doc, size_t doc_len, const void *delta,
                           size_t delta_len, rc_wbuf_t *out);

/** Merges a stored document into `u`: its items come before the session's own recent ones,
 * its categories count at half weight, and its feature affinities become the long-term
 * content vector (a document from before they were stored: built from its recent items).
 * Unknown items are skipped: a profile is not a source an open catalog learns from (its
 * items may be ids no other user ever named), and the catalog is only read. Returns 0,
 * RC_EPARSE or RC_ENOMEM. */
int rc_profile_merge(const rc_catalog_t *c, rc_user_state_t *u, const void *data, size_t len);

#endif
