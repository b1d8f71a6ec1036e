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
    bool loop_ready, defer_ready, handles_started;
    bool loop_unusable; /* lws failed half-way: the loop must not run again */
};

/* ---- node.c ---- */

/** The final stop: closes every handle; the loop then runs out (rc_node_run returns). */
void rc_node_stop(rc_node_t *n);

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
