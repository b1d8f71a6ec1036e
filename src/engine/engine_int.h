/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's struct: the models side by side, for the engine's own files and for tests and
 * tools that look inside it (the unit tests, bench/eval). Everyone else uses engine.h. */
#ifndef RC_ENGINE_INT_H
#define RC_ENGINE_INT_H

#include "engine/engine.h"
#include "engine/features.h"
#include "engine/ranker.h"

struct rc_engine {
    rc_catalog_t catalog;
    rc_covisit_t covisit;
    rc_trending_t trending;
    rc_feature_index_t features;
    rc_blend_t blend;
    struct rc_experiment *experiment; /* the running experiment (borrowed), or NULL */
    rc_rules_t rules;                 /* boosts and pins (resolved at each refresh) */
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
    /* No rank scratch here: rankers belong to callers (one per thread), so that a rank writes
     * nothing in the engine. */
};

#endif
