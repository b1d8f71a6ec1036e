/* SPDX-License-Identifier: Apache-2.0 */
/* Co-visitation learned online: for each item, its top neighbours by time-decayed weight of
 * being interacted with in the same session. Bounded: at most `max_neighbors` per item,
 * the weakest evicted first. */
#ifndef RC_COVISIT_H
#define RC_COVISIT_H

#include <stdint.h>

typedef struct rc_neighbor {
    uint32_t item;
    float w;
} rc_neighbor_t;

typedef struct rc_nblist {
    rc_neighbor_t *nb; /* allocated on first use, grows by doubling to max_neighbors */
    uint16_t n, cap;
} rc_nblist_t;

typedef struct rc_covisit {
    rc_nblist_t *lists; /* index-aligned with the catalog */
    uint32_t n_lists;
    uint32_t max_neighbors;
    double half_life_s;
    double epoch_s; /* weights are stored scaled by 2^((t - epoch) / half_life) */
    uint64_t pairs_added;
    /* The scale of the last weight added, and the time and epoch it was worked out for: an
     * event adds up to 20 weights at one time, and exp2() is worked out once for them. */
    double scale_now_s, scale_epoch_s;
    float scale;
} rc_covisit_t;

/** Prepares an empty model. Caller frees with rc_covisit_free(). */
void rc_covisit_init(rc_covisit_t *cv, uint32_t max_neighbors, double half_life_s, double now_s);
void rc_covisit_free(rc_covisit_t *cv);

/** Adds weight `w` to the pair (a, b) in both directions at time `now_s`.
 * Returns 0 or RC_ENOMEM. */
int rc_covisit_add(rc_covisit_t *cv, uint32_t a, uint32_t b, float w, double now_s);

/** Adds `w_ab` to b in a's list and `w_ba` to a in b's list (a weight <= 0 adds nothing):
 * what follows an item predicts the next step better than what preceded it. Returns 0 or
 * RC_ENOMEM. */
int rc_covisit_add_directed(rc_covisit_t *cv, uint32_t a, uint32_t b, float w_ab, float w_ba,
                            double now_s);

/** The neighbours of `item`, strongest first (weights comparable within one list).
 * Borrowed until the next rc_covisit_add(). */
const rc_neighbor_t *rc_covisit_neighbors(const rc_covisit_t *cv, uint32_t item, uint32_t *n);

/** Asks early for the lists of `items` (the next calls will read them): their heads first,
 * then the lines of their first `entries` neighbours, so the misses overlap rather than
 * queue. */
void rc_covisit_prefetch(const rc_covisit_t *cv, const uint32_t *items, uint32_t n,
                         uint32_t entries);

/** Heap bytes held by the model (for the memory figures in docs). */
uint64_t rc_covisit_bytes(const rc_covisit_t *cv);

/* Snapshots (log/snapshot.h): items by catalog index. */
struct msgpack_packer;
struct msgpack_object;

/** Writes the model into `pk`: a map, "epoch" and "lists" ([item, neighbour, weight,
 * neighbour, weight, ...] per item that has neighbours). */
void rc_covisit_snapshot_write(const rc_covisit_t *cv, struct msgpack_packer *pk);

/** Fills an empty model with what rc_covisit_snapshot_write() wrote. `map[i]` is the index
 * now of the item that had index i then (-1: gone), for i < n_map; a list keeps its order
 * (strongest first) and at most max_neighbors. Returns 0, RC_EPARSE or RC_ENOMEM. */
int rc_covisit_snapshot_read(rc_covisit_t *cv, const struct msgpack_object *o, const int64_t *map,
                             uint32_t n_map);

#endif
