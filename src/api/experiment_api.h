/* SPDX-License-Identifier: Apache-2.0 */
/* The experiments API: POST /api/v1/experiment starts an experiment from its JSON
 * description (replacing the running one; counters start from zero), POST
 * /api/v1/experiment/stop ends it (every user back to the engine's blend), GET
 * /api/v1/experiment describes the running one with its counters. A change is applied by
 * the node that takes it and published on the bus: every node runs the same experiment,
 * and one that starts later gets it from the bus (it overrides --experiment). See
 * docs/api.md. */
#ifndef RC_EXPERIMENT_API_H
#define RC_EXPERIMENT_API_H

#include "engine/experiments.h"
#include "util/wbuf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define RC_EXPERIMENT_SPEC_MAX 1024 /* the text form (rc_experiment_parse) */

/** The experiment a request to `route` asks for, as the text form of rc_experiment_parse()
 * into `spec` ("" to stop), checked by parsing it into `x` (with `base` for "no
 * experiment"). Body of /api/v1/experiment:
 *   {"name": N, "salt"?: S, "variants": [{"name": V, "share"?: 1..1000,
 *     "blend": {"covisit": w, "content": w, "trending": w, "popular": w}}, ...]}
 * and of /api/v1/experiment/stop: {}. Unknown fields are refused. Returns 0, or RC_EINVAL
 * with the reason in `err`. */
int rc_experiment_api_spec(const char *route, json_t *body, const rc_blend_t *base,
                           rc_experiment_t *x, char *spec, size_t len, char *err, size_t errlen);

/** The JSON description of `x` with its counters `c` (every loop's added up; NULL: zeros)
 * (what GET answers; caller owns it, NULL when out of memory). */
json_t *rc_experiment_api_describe(const rc_experiment_t *x, const rc_experiment_counts_t *c);

#endif
