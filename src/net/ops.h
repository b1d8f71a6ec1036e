/* SPDX-License-Identifier: Apache-2.0 */
/* The ops feed: a JSON snapshot of this node (connections, rates, event->push latency, recent
 * events under pseudonyms, per-variant click-through, backends, and every node it hears of)
 * pushed every ~500 ms to dashboards over the WebSocket subprotocol `rankcast.ops.v1` on
 * path /ops (proto/PROTOCOL.md, "Ops feed"). Nodes share a summary through the bus, so any
 * node's dashboard shows all of them. */
#ifndef RC_OPS_H
#define RC_OPS_H

#include "bus/bus.h"
#include "engine/experiments.h"
#include "proto/proto.h"
#include "store/profile.h"
#include "util/config.h"
#include "util/wbuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct rc_ops rc_ops_t;

#define RC_OPS_SUBPROTOCOL    "rankcast.ops.v1"
#define RC_OPS_INTERVAL_MS    500   /* between snapshots */
#define RC_OPS_WINDOW_TICKS   10    /* rates and quantiles cover the last 5 s */
#define RC_OPS_RECENT         32    /* recent events kept (and sent) per node */
#define RC_OPS_PEERS          32    /* other nodes remembered */
#define RC_OPS_PEER_STALE_MS  3000  /* a node silent this long is shown as stale... */
#define RC_OPS_PEER_GONE_MS   30000 /* ...and this long, forgotten */
#define RC_OPS_HISTORY_POINTS 1800  /* 15 minutes of samples, sent to a dashboard that opens */

/** Creates the feed's state and starts its timer on `loop`. Everything passed is borrowed
 * and must outlive the feed. `variants` (NULL: none) gives the experiment's per-variant
 * counters at each snapshot, called with `variants_ctx`. Returns NULL when out of memory.
 * Caller closes with rc_ops_close() and frees with rc_ops_free() after the loop has run. */
rc_ops_t *rc_ops_new(uv_loop_t *loop, const rc_config_t *cfg, const char *node_id,
                     rc_profile_store_t *profiles, rc_bus_t *bus, rc_variant_stats_fn *variants,
                     void *variants_ctx);

/** Stops the timer (the loop must run once more before rc_ops_free()). NULL is a no-op. */
void rc_ops_close(rc_ops_t *o);

/** Frees the feed, once its dashboards' connections are closed. NULL is a no-op. */
void rc_ops_free(rc_ops_t *o);

/** Takes one sample of the metrics (what the timer does every RC_OPS_INTERVAL_MS); for
 * tests, which drive time themselves. `now_us` is rc_mono_us(), `now_ms` the wall clock. */
void rc_ops_sample(rc_ops_t *o, uint64_t now_us, int64_t now_ms);

/** Appends the current snapshot, one JSON object, to `out`. Returns 0 or RC_ENOMEM. */
int rc_ops_snapshot(rc_ops_t *o, rc_wbuf_t *out);

/** Appends the `history` message, one JSON object of the last RC_OPS_HISTORY_POINTS samples
 * (fewer since start) column by column, oldest first, to `out`. Returns 0 or RC_ENOMEM. */
int rc_ops_history(const rc_ops_t *o, rc_wbuf_t *out);

/** A bus message of kind RC_BUS_OPS: another node's summary (this node's own is ignored). */
void rc_ops_peer_message(rc_ops_t *o, const rc_bus_msg_t *m);

/** Records one accepted event for the recent-events stream. Process-wide, and safe from any
 * thread (loops in several threads record into one ring, under a lock): the session module
 * calls this without knowing the feed. `pseudo` is the user's pseudonym on the bus (an HMAC
 * of the id under --pseudonym-key), never the raw id; the feed shows "v-" and its first 8
 * characters. `item` and `surface` are copied (cut to the feed's lengths). The per-variant
 * counters are read at each snapshot through rc_ops_new()'s `variants`. */
void rc_ops_record_event(rc_str_t pseudo, rc_event_kind_t kind, rc_str_t item, rc_str_t surface);

/** Estimates the q-quantile (0..1) in microseconds from histogram bucket counts (the
 * buckets of metrics.h, RC_HIST_BUCKETS + 1 of them), interpolating within the bucket.
 * Returns 0 for an empty histogram. */
double rc_ops_quantile_us(const uint64_t *counts, double q);

/** Fills `p` with the libwebsockets protocol of the feed (`rankcast.ops.v1`, on path /ops):
 * its name, callback, per-connection size and `o` as its user pointer. `o` is borrowed and
 * must outlive the lws context. */
struct lws_protocols;
void rc_ops_protocol(rc_ops_t *o, struct lws_protocols *p);

#endif
