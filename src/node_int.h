/* SPDX-License-Identifier: Apache-2.0 */
/* The node's state, for node.c (wiring and lifecycle) and node_log.c (what --data-dir keeps:
 * the event log read back, snapshots, marks, warming). Everyone else uses node.h. */
#ifndef RC_NODE_INT_H
#define RC_NODE_INT_H

#include "node.h"
#include "api/router.h"
#include "api/settings.h"
#include "auth/jwt.h"
#include "bus/bus.h"
#include "engine/engine.h"
#include "log/eventlog.h"
#include "log/snapshot_job.h"
#include "net/gateway.h"
#include "net/ops.h"
#include "proto/enc.h"
#include "session/session.h"
#include "store/profile.h"
#include "util/defer.h"
#include "util/mailbox.h"
#include "util/metrics.h"
#include "util/strmap.h"
#include "util/wbuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct rc_node {
    const rc_config_t *cfg;
    char node_id[128];
    uv_loop_t loop;
    rc_defer_t defer;
    rc_engine_t *engine;
    rc_settings_t settings; /* the experiment and the rules */
    bool settings_ready;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    rc_eventlog_t *log; /* with --data-dir */
    char log_id[40];    /* the log's own id (LOG_ID_FILE), naming its changes in profiles */
    uint64_t last_mark; /* the newest RC_BUS_MARK written to the log */
    /* Every profile change in a log record below profile_confirmed is confirmed by a shared
     * store; found by watching the marks pass a candidate (write_profile_mark). */
    uint64_t profile_confirmed, cand_record, cand_seq;
    bool cand_set;
    rc_strmap_t changes;        /* "c:<item>" / "s:<setting>" -> change_t: kept by snapshots */
    uint64_t snapshot_covers;   /* what the newest snapshot covers (0: none) */
    rc_snapshot_job_t snapshot; /* the one being written (rc_node_log_snapshot) */
    const char *snapshot_why;   /* why it is written: "interval" or "stop" (static) */
    rc_wbuf_t scratch;
    struct replay *replay; /* the read-back in progress */
    bool warming;          /* reading the log back while listening (on_warm) */
    uv_timer_t warm_timer;
    uint32_t ticks;
    rc_sessions_t *sessions;
    rc_ops_t *ops;
    rc_gateway_t *gateway;
    rc_gateway_hooks_t hooks;
    rc_api_router_t api;
    uv_timer_t tick, drain_timer, lag_timer, flush_timer;
    uint64_t lag_expected_us;
    uv_signal_t sigint, sigterm, sighup;
    rc_jwt_verifier_t *jwt;
    bool draining, stopped;
    bool catalog_changed;             /* changes from the bus not yet settled (on_tick) */
    uint64_t churn_seen, churn_at_us; /* connections opened + closed, and when that last moved */
    uint64_t trim_churn, trim_at_us;  /* the same at the last heap trim, and when it ended */
    uint64_t drain_deadline_us;
    bool loop_ready, defer_ready, handles_started, signals_started;
    bool loop_unusable; /* lws failed half-way: the loop must not run again */
    /* With --loops > 1 (node_loops.c): the process's loops, this one's place among them (0:
     * the first, which takes the signals and owns the settings), its mailbox, and how many
     * loops it heard have stopped (it closes its mailbox when all have: none posts again). */
    struct rc_node_group *group;
    uint32_t loop_index;
    rc_mailbox_t mailbox;
    bool mailbox_ready;
    uint32_t loops_stopped;
    uv_prepare_t before_poll; /* ends the read section before the loop waits */
    uint64_t published_us;    /* when before_poll last published what the loop counted */
    rc_experiment_t *retired; /* replaced by this loop's last settings call, or NULL */
};

/* ---- node.c ---- */

/** The final stop: closes every handle; the loop then runs out (rc_node_run returns). */
void rc_node_stop(rc_node_t *n);

/** Starts draining (SIGINT/SIGTERM on the first loop, or its word on the others): clients
 * get `drain`, the loop stops when they left or at the deadline. */
void rc_node_drain(rc_node_t *n, int signum);

/** Re-reads what rotates without a restart (SIGHUP): the TLS certificate, the token key. */
void rc_node_reload(rc_node_t *n);

/** The loop's bus messages, routed by kind (also those another loop relays: m->sibling). */
void rc_node_bus_deliver(void *ctx, const rc_bus_msg_t *m);

/** Another loop of the group (node_loops.c): built on the calling thread, serving the
 * first loop's port. NULL with a message in `err`. */
rc_node_t *rc_node_loop_new(struct rc_node_group *g, uint32_t index, char *err, size_t errlen);

/* ---- node_loops.c: several event loops in one process (--loops) ---- */

typedef struct rc_node_group rc_node_group_t;

/** Makes `first` the first loop of a group of cfg->loops: its engine `e` and a second copy
 * `e2`, built by the same calls, become the shared models (both owned from here on, freed
 * on failure too). Returns 0, or a negative code with `err`. */
int rc_node_group_new(rc_node_t *first, rc_engine_t *e, rc_engine_t *e2, char *err, size_t errlen);

/** Starts the other loops (`first` listens, its sessions joined), each on a thread of its
 * own serving first's port, and waits until each is built. Returns 0, or a negative code
 * with `err` (then none serves: each frees itself, rc_node_group_finish() waits for them). */
int rc_node_group_start(rc_node_t *first, char *err, size_t errlen);

/** The settings' retire hook with several loops (ctx: the first loop): the calling loop's
 * lists left `old`; the others let go of it when they hear of the change. */
void rc_node_retire_experiment(void *ctx, rc_experiment_t *old);

/** Makes `n`'s sessions share the group's models (on `n`'s thread, before any client), and
 * opens its mailbox. Returns 0 or a negative code with `err`. */
int rc_node_group_join(rc_node_t *n, char *err, size_t errlen);

/** Loop `i` of the group (0: the first); the other loops' config; the loop whose call holds
 * the settings. */
rc_node_t *rc_node_group_loop(const rc_node_group_t *g, uint32_t i);
const rc_config_t *rc_node_group_config(const rc_node_group_t *g);
rc_node_t *rc_node_settings_caller(const rc_node_group_t *g);

/** The settings of the process, locked for `n`'s call (their changes rank `n`'s lists); the
 * read section of `n` ends first (the settings may wait for the shared models' writer). */
rc_settings_t *rc_node_settings_begin(rc_node_t *n);

/** Unlocks the settings and tells the other loops that they changed (`changed`). */
void rc_node_settings_end(rc_node_t *n, bool changed);

/** Tells the other loops that the catalog changed (their lists are ranked again). */
void rc_node_group_catalog_changed(rc_node_t *n);

/** Every loop's counts of experiment `x` added up (one loop: its own). */
void rc_node_experiment_counts(rc_node_t *n, const rc_experiment_t *x, rc_experiment_counts_t *sum);

/** Appends the loops' and the models' writer's metrics (several loops; else nothing). */
void rc_node_group_render(rc_node_t *n, rc_wbuf_t *o);

/** Tells the other loops to drain (`now`: to stop at once). */
void rc_node_group_drain(rc_node_t *n, bool now);

/** Tells the other loops to reload (SIGHUP). */
void rc_node_group_reload(rc_node_t *n);

/** After `n` stopped: tells every loop; `n`'s mailbox closes when every loop has stopped. */
void rc_node_group_stopped(rc_node_t *n);

/** On the first loop, after its loop ran out: waits for the other loops' threads, then
 * frees the group and the shared models (every reader gone). NULL group: a no-op. */
void rc_node_group_finish(rc_node_t *first);

/* ---- node_log.c ---- */

/** Reads (or makes once) the log's own id in --data-dir into n->log_id. Returns 0 or RC_EIO
 * with `err`. */
int rc_node_log_id(rc_node_t *n, char *err, size_t errlen);

/** Opens the event log of --data-dir and reads it back (after the newest snapshot): before
 * the node listens when it is small, else while warming (n->warming, rc_node_log_on_warm on
 * n->warm_timer). Without --data-dir, warns that nothing survives a restart. Returns 0 or a
 * negative code with `err`. */
int rc_node_log_open(rc_node_t *n, char *err, size_t errlen);

/** The warm timer's callback: reads the next slice of the log back. */
void rc_node_log_on_warm(uv_timer_t *t);

/** Appends a mark (RC_BUS_MARK) when the profile store confirmed more (once a second). */
void rc_node_log_mark(rc_node_t *n);

/** Starts writing a snapshot of what the node derived, if the log moved since the last one
 * and none is being written; `why` is static. A child process writes it (snapshot_job.h). */
void rc_node_log_snapshot(rc_node_t *n, const char *why);

/** Reports the snapshot being written once it is (from the tick), or waits for it
 * (`wait`: at the stop). */
void rc_node_log_snapshot_poll(rc_node_t *n, bool wait);

/** Writes /readyz's "warming" part. */
void rc_node_log_warming(const rc_node_t *n, rc_enc_t *e);

/** Frees what node_log.c holds (NULL parts are fine). */
void rc_node_log_free(rc_node_t *n);

#endif
