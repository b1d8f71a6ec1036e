/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's struct: the models side by side, for the engine's own files and for tests and
 * tools that look inside it (the unit tests, bench/eval). Everyone else uses engine.h. */
#ifndef RC_ENGINE_INT_H
#define RC_ENGINE_INT_H

#include "engine/engine.h"
#include "engine/features.h"
#include "engine/ranker.h"

/* Neighbours kept per item in the successor model; a rank reads those of the item in view. */
#define RC_SUCCESSOR_NEIGHBORS 32
/* Recent items whose co-visitation neighbours a rank gathers, how many of each (newest
 * first), and the least share of an item's strongest neighbour that counts. */
#define RC_COVISIT_SOURCES 5
#define RC_COVISIT_FLOOR   0.02f
static inline uint32_t rc_covisit_take(uint32_t d)
{
    static const uint32_t take[RC_COVISIT_SOURCES] = {64, 64, 32, 32, 16};
    return take[d];
}

struct rc_engine {
    rc_catalog_t catalog;
    rc_covisit_t covisit;
    /* Adjacent transitions: for each item, what came directly after it in a session (the
     * counts a first-order Markov chain keeps), forward only, at most RC_SUCCESSOR_NEIGHBORS
     * per item, decayed with co-visitation's half-life. */
    rc_covisit_t successor;
    rc_trending_t trending;
    rc_feature_index_t features;
    /* The blend users outside an experiment get. Its successor share (how the sequential
     * part divides between the co-visitation and the successor models) is learned online
     * unless blend_rate is 0 (learn_blend in engine_op.c). */
    rc_blend_t blend;
    float blend_rate;
    float blend_floor; /* the successor share stays within [floor, successor_max] */
    float successor_max;
    uint64_t blend_updates;                 /* events that moved it */
    const struct rc_experiment *experiment; /* the running one (borrowed, immutable), or NULL */
    rc_rules_t rules;                       /* boosts and pins (resolved at each refresh) */
    /* How much a recent item's neighbours count per step back in the session (the newest
     * item counts 1). */
    float source_decay;
    /* Weight of a pair in the backward direction (the later item's list learns the earlier
     * one), relative to the forward direction. */
    float backward_weight;
    /* How a co-visitation pair weakens with the distance between its events: a pair d + 1
     * steps apart weighs 1 / (1 + pair_decay * d). */
    float pair_decay;
    /* Items of the session, for a list that may show them again: each interaction counts
     * its weight times this factor per step back. */
    float repeat_recency;
    /* A list that may show the session's items places a new item by the chance
     * p_new * score^new_sharpness / sum over the new items of the same. */
    float new_sharpness;
    /* Exploration: catalog items added after the first refresh (live upserts; not items
     * learned from traffic, which have data from their first event) that nobody has
     * interacted with yet, at most RC_EXPLORE_POOL, rebuilt at each refresh. The last place
     * of a list of 5 or more goes to the one closest to the user's interests. */
    bool explore_new;
    uint32_t established; /* catalog size at the first refresh; UINT32_MAX before */
    uint32_t explore_pool[RC_EXPLORE_POOL];
    uint32_t n_explore;
    /* How often a user's next interaction returns to their session, learned online per
     * device class (exponential moving averages over positive events): to the item in view
     * (same) or to another item of the session (back). The ranker weighs the session's
     * items against new ones with them (rc_repeat_t). */
    float repeat_same[RC_DEVICE_COUNT], repeat_back[RC_DEVICE_COUNT];
    /* How far the chance of a return follows the successor model's evidence (returns.h)
     * rather than how often users return at all: the successor model's weight in a mixture
     * of the two, learned online (engine_op.c, learn_return) within [repeat_successor_floor,
     * 1 - repeat_successor_floor]. */
    float repeat_successor;
    /* No rank scratch here: rankers belong to callers (one per thread), so that a rank writes
     * nothing in the engine. */
};

#endif
