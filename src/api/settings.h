/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster-wide settings made through the admin API: the running experiment (GET and POST
 * /api/v1/experiment, POST /api/v1/experiment/stop) and the business rules (GET and POST
 * /api/v1/rules). A change is applied by the node that takes it, then published on the bus;
 * every node applies every setting from the bus, its own too, and the last one set wins,
 * so a node that starts later gets them from the bus (over --experiment). Each change
 * ranks every live list again. See docs/api.md. */
#ifndef RC_SETTINGS_H
#define RC_SETTINGS_H

#include "api/experiment_api.h"
#include "bus/bus.h"
#include "engine/engine.h"
#include "engine/experiments.h"
#include "session/session.h"
#include "util/wbuf.h"

#include <jansson.h>

typedef struct rc_settings {
    rc_sessions_t *sessions; /* the loop whose call changes them: ranks its lists again */
    rc_bus_t *bus;
    const char *node_id;
    /* The running one, owned; immutable while the engine runs it (a change is a new one,
     * given to the engine as a record, the old one freed once nothing runs it). */
    rc_experiment_t *experiment;
    char experiment_spec[RC_EXPERIMENT_SPEC_MAX]; /* its text form, "" for none */
    char *rules_text; /* the business rules' canonical JSON, or NULL: none */
    /* With several loops (node.c): `retire` takes an experiment replaced once this loop's
     * lists left it (the other loops' may not have yet), `counts` adds every loop's counts
     * of the experiment up. NULL (one loop): freed at once, this loop's counts. */
    void (*retire)(void *ctx, rc_experiment_t *old);
    void (*counts)(void *ctx, const rc_experiment_t *x, rc_experiment_counts_t *sum);
    void *ctx;
} rc_settings_t;

/** Prepares the settings and runs `experiment_spec` (--experiment's text form; "" for none)
 * on the engine. Changes reach the engine as records (engine_op.h: RC_OP_EXPERIMENT,
 * RC_OP_RULES) through the sessions (rc_sessions_submit). Everything passed is borrowed and must
 * outlive the settings. Returns 0, or RC_EINVAL with the reason in `err` (or RC_ENOMEM). Caller
 * frees with rc_settings_free(). */
int rc_settings_init(rc_settings_t *st, rc_sessions_t *sessions, rc_bus_t *bus, const char *node_id,
                     const char *experiment_spec, char *err, size_t errlen);

/** Frees what the settings hold. NULL is a no-op. */
void rc_settings_free(rc_settings_t *st);

/** Applies a setting from the bus (RC_BUS_SETTING, any node's); one that does not parse is
 * logged and ignored. */
void rc_settings_apply(rc_settings_t *st, const rc_bus_msg_t *m);

/** The admin API's handlers (router.h): each writes the JSON answer to `out` and returns
 * the HTTP status. `route` tells /api/v1/experiment from /api/v1/experiment/stop. */
unsigned rc_settings_experiment_get(rc_settings_t *st, rc_wbuf_t *out);
unsigned rc_settings_experiment_post(rc_settings_t *st, const char *route, json_t *body,
                                     rc_wbuf_t *out);
unsigned rc_settings_rules_get(rc_settings_t *st, rc_wbuf_t *out);
unsigned rc_settings_rules_post(rc_settings_t *st, json_t *body, rc_wbuf_t *out);

#endif
