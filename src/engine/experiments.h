/* SPDX-License-Identifier: Apache-2.0 */
/* Experiments: users are split deterministically between variants of the ranker (a hash of
 * the user id and the experiment's salt), and impressions and clicks are counted per
 * variant so that their click-through rates can be compared (on /metrics and through
 * rc_experiment_stats() for the dashboard). A variant is a blend of the score components.
 *
 * An experiment is immutable once the engine runs it (a change is a new one, engine_op.h's
 * RC_OP_EXPERIMENT), so ranks on any thread may read it. Its counters are apart from it,
 * one rc_experiment_counts_t per loop (the session registry's), so that no two threads write
 * one counter; readers add them up (rc_experiment_counts_add). */
#ifndef RC_EXPERIMENTS_H
#define RC_EXPERIMENTS_H

#include "engine/engine.h"
#include "util/wbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_VARIANTS_MAX 8
#define RC_NAME_MAX     32

typedef struct rc_variant {
    char name[RC_NAME_MAX + 1];
    rc_blend_t blend;
    uint32_t share; /* relative traffic share, >= 1 */
} rc_variant_t;

typedef struct rc_experiment {
    char name[RC_NAME_MAX + 1]; /* "" when no experiment runs: every user is "control" */
    char salt[RC_NAME_MAX + 1];
    uint32_t n_variants, total_share;
    rc_variant_t variants[RC_VARIANTS_MAX];
    /* Unique to each rc_experiment_parse() in the process (never 0): counts belong to the
     * experiment of this serial, even when a new one is allocated where an old one was. */
    uint64_t serial;
} rc_experiment_t;

/* Impressions and clicks per variant of one experiment, counted by one loop (or added up
 * over loops by a reader). */
typedef struct rc_experiment_counts {
    uint64_t serial; /* of the experiment counted; 0: none yet */
    uint64_t impressions[RC_VARIANTS_MAX], clicks[RC_VARIANTS_MAX];
} rc_experiment_counts_t;

/** What the dashboard reads: one variant's counters (a copy). */
typedef struct rc_variant_stats {
    const char *experiment, *variant; /* borrowed from the experiment */
    uint64_t impressions, clicks;
    double ctr; /* clicks / impressions, 0 without impressions */
} rc_variant_stats_t;

/** Parses an experiment from its setting:
 *   NAME[:SALT];VARIANT=COVISIT,CONTENT,TRENDING,POPULAR[@SHARE];VARIANT=...
 * e.g. "blend1;control=0.8,0.1,0.07,0.03;content=0.5,0.4,0.07,0.03@1". An empty spec means
 * no experiment (one "control" variant with `base`, the engine's blend). The salt defaults
 * to the name. Names are 1..32 bytes of [A-Za-z0-9_-]. Returns 0, or RC_EPARSE with the
 * reason in `err`. */
int rc_experiment_parse(rc_experiment_t *x, const char *spec, const rc_blend_t *base, char *err,
                        size_t errlen);

/** The variant of a user: the same user always gets the same variant for one salt. */
uint32_t rc_experiment_assign(const rc_experiment_t *x, const char *user, size_t len);

/** A variant's name and blend (index from rc_experiment_assign()). */
const char *rc_experiment_variant_name(const rc_experiment_t *x, uint32_t variant);
const rc_blend_t *rc_experiment_blend(const rc_experiment_t *x, uint32_t variant);

/** Counts an impression or a click for a variant of `x` (borrowed) in `c`, the calling
 * loop's counts: counts of another experiment (another serial) are dropped first, so a new
 * experiment starts from zero. */
void rc_experiment_count(rc_experiment_counts_t *c, const rc_experiment_t *x, uint32_t variant,
                         bool click);

/** Adds `c` (one loop's counts; NULL adds nothing) to `sum` if they count `x`: `sum` then
 * counts `x` (start it zeroed). */
void rc_experiment_counts_add(rc_experiment_counts_t *sum, const rc_experiment_t *x,
                              const rc_experiment_counts_t *c);

/** Copies up to `max` variants' counters into `out` (strings borrowed from `x`, valid while
 * it lives), from `c` (the loops' counts added up; NULL or counts of another experiment:
 * zeros), and returns how many. For the ops dashboard. */
uint32_t rc_experiment_stats(const rc_experiment_t *x, const rc_experiment_counts_t *c,
                             rc_variant_stats_t *out, uint32_t max);

/** Appends the Prometheus text of the counters `c` of `x` (impressions, clicks, CTR; as
 * rc_experiment_stats() reads them) to `out`. */
void rc_experiment_render(const rc_experiment_t *x, const rc_experiment_counts_t *c,
                          rc_wbuf_t *out);

/** What a reader of the counters calls (the node's: the running experiment, every loop's
 * counts added up): rc_experiment_stats() into `out`, up to `max`; returns how many. */
typedef uint32_t rc_variant_stats_fn(void *ctx, rc_variant_stats_t *out, uint32_t max);

#endif
