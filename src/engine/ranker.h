/* SPDX-License-Identifier: Apache-2.0 */
/* The ranker: turns one user's state into a list, from the engine's models. Bounded
 * candidate generation, a blended score, rules, a per-category cap for diversity, top-K,
 * the session's items by the repeat model, exploration places and pins (each item's reason
 * in words is reasons.h's). A ranker holds one rank's scratch memory (about 130 KB), reused
 * by every rank, so ranking allocates nothing. Callers own them, one per thread
 * (rc_engine_rank takes one), so a rank writes nothing in the engine it reads. */
#ifndef RC_RANKER_H
#define RC_RANKER_H

#include "engine/engine.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rc_ranker rc_ranker_t; /* also named struct rc_ranker in engine.h */

/** A ranker with its scratch memory. NULL when out of memory. Caller frees with
 * rc_ranker_free(). */
rc_ranker_t *rc_ranker_new(void);

/** Frees the ranker. NULL is a no-op. */
void rc_ranker_free(rc_ranker_t *rk);

/** Ranks for `u` under `spec` with the models of `e` (read only). Writes up to spec->k
 * entries to `out` (caller's array of at least spec->k) and returns how many. */
uint32_t rc_ranker_rank(rc_ranker_t *rk, const rc_engine_t *e, const rc_user_state_t *u,
                        const rc_rank_spec_t *spec, int64_t wall_ms, rc_ranked_t *out);

/** Scores every candidate instead of skipping those whose bound cannot reach the list (the
 * tests compare the two: the lists must be the same). */
void rc_ranker_set_exhaustive(rc_ranker_t *rk, bool exhaustive);

/** How many candidates the last rank left unscored because their bound could not reach
 * the list (0 when it scored them all in the end). For tests of that bound. */
uint32_t rc_ranker_deferred(const rc_ranker_t *rk);

#endif
