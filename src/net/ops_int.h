/* SPDX-License-Identifier: Apache-2.0 */
/* What the ops feed's files share (ops.c: the event tap, sampling, summaries on the bus, the
 * timer; ops_snapshot.c: the JSON snapshot; ops_feed.c: the WebSocket side). Not for use
 * outside src/net/ops*.c: the contract is ops.h. */
#ifndef RC_OPS_INT_H
#define RC_OPS_INT_H

#include "engine/experiments.h"
#include "net/ops.h"
#include "util/metrics.h"

#include <stdbool.h>
#include <stdint.h>

#define HIST_SLOTS      (RC_HIST_BUCKETS + 1)
#define HISTORY         (RC_OPS_WINDOW_TICKS + 1)
#define PUBLISH_EVERY   2    /* ticks between summaries on the bus (1 s) */
#define HELLO_MAX_BYTES 4096 /* a dashboard's first message: {"type":"hello","token":…} */
#define HELLO_TIMEOUT_S 10
#define SEND_RECENT     25 /* newest events in each snapshot */

typedef struct recent_event {
    uint64_t seq;
    int64_t t_ms;
    char user[12]; /* "v-" and the first 8 characters of the bus pseudonym */
    uint8_t kind;
    char item[RC_ID_MAX + 1];
    char surface[33];
} recent_event_t;

/* The process-wide tap of recent events (rc_ops_record_event), read by the snapshot. */
typedef struct rc_ops_tap {
    uint64_t seq;
    recent_event_t ring[RC_OPS_RECENT];
} rc_ops_tap_t;

/* Copies the newest events of the tap, up to `max`, newest first; returns how many. */
uint32_t rc_ops_tap_newest(recent_event_t *out, uint32_t max);

typedef struct sample {
    uint64_t mono_us;
    uint64_t events, pushes;
    uint64_t errors, refused, slow;         /* protocol errors, upgrades refused, 4050 closes */
    uint32_t by_code[RC_METRICS_MAX_CODE];  /* errors by code (rc_metrics.errors, cut) */
    uint32_t by_reason[RC_REFUSED_REASONS]; /* upgrades refused by reason */
    uint64_t hist[HIST_SLOTS];
    uint64_t lag[HIST_SLOTS];
} sample_t;

/* One point of the long history a dashboard gets when it opens: what its charts and
 * problem counts show, small enough to keep RC_OPS_HISTORY_POINTS of them. */
typedef struct ops_point {
    int64_t t_ms;
    float events_per_s, pushes_per_s;
    float p50_us, p99_us, p999_us; /* 0: no push in the window */
    uint32_t connections;
    uint32_t errors, refused, slow; /* during this sample's interval */
} ops_point_t;

/* What a node says about itself: in every snapshot, and on the bus for the others. */
typedef struct node_summary {
    char node[128];
    int64_t connections, sessions;
    double events_per_s, pushes_per_s;
    double p50_us, p99_us, p999_us;
    bool profiles_ok, bus_ok;
    int64_t t_ms;        /* when its sample was taken (its wall clock) */
    uint64_t heard_mono; /* when this node received it */
    bool late;           /* it was already old when it arrived */
} node_summary_t;

typedef struct ops_pss ops_pss_t;
struct ops_pss {
    rc_ops_t *ops;
    struct lws *wsi;
    ops_pss_t *next, *prev;
    uint64_t sent_seq; /* the last snapshot written */
    uint16_t rx_len;   /* bytes of the hello received so far (it may come in fragments) */
    char *rx;          /* the hello being reassembled */
    uint8_t state;     /* PSS_* */
    const char *error; /* sent, then the connection closes with 4010 */
};

enum { PSS_AWAIT_HELLO, PSS_WELCOME, PSS_HISTORY, PSS_LIVE, PSS_ERROR, PSS_CLOSING };

struct rc_ops {
    /* The metrics registries' sum (rc_metrics_sum), taken at each sample and snapshot: what
     * the feed reads of every loop's counters. */
    rc_metrics_t total;
    const rc_config_t *cfg;
    const char *node_id;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    rc_variant_stats_fn *variants; /* the experiment's counters, or NULL */
    void *variants_ctx;
    uv_timer_t timer;
    bool timer_started;
    uint64_t start_mono;
    sample_t history[HISTORY]; /* a ring, newest at history[ticks % HISTORY] */
    uint64_t ticks;
    ops_point_t points[RC_OPS_HISTORY_POINTS]; /* a ring, newest at points[(ticks-1) % N] */
    node_summary_t self;
    node_summary_t peers[RC_OPS_PEERS];
    uint32_t n_peers;
    rc_wbuf_t snap; /* the newest snapshot, with LWS_PRE headroom for every dashboard */
    uint64_t snap_seq;
    ops_pss_t subscribers; /* list head of authorised dashboards */
    uint32_t n_subscribers;
};

/** Copies `s` into `dst` (`cap` bytes), cut to fit, NUL-terminated. */
void rc_ops_copy_str(char *dst, size_t cap, rc_str_t s);

/** The sample `ticks_back` ticks before the newest (the oldest kept when fewer), or NULL
 * before the first. */
const sample_t *rc_ops_sample_ago(const rc_ops_t *o, uint64_t ticks_back);

/** The histogram counts of the window ending at the newest sample (event->push latency, or
 * loop lag with `lag`), and the window's length. */
void rc_ops_window_counts(const rc_ops_t *o, bool lag, uint64_t *out, double *seconds);

/** Encodes a fresh snapshot and asks every subscribed dashboard to write it. */
void rc_ops_broadcast(rc_ops_t *o);

#endif
