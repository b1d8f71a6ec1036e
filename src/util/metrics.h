/* SPDX-License-Identifier: Apache-2.0 */
/* Process metrics: counters, gauges and latency histograms, rendered in the Prometheus text
 * format for /metrics. Each thread counts in a registry of its own, written without atomics:
 * a loop attaches one (rc_metrics_attach), any other thread counts in the process's. Readers
 * (/metrics, the ops feed) sum every registry (rc_metrics_sum) from copies their loops publish
 * (rc_metrics_publish), so no two threads ever touch the same counter at once. Call sites
 * write `rc_metrics.field++` as they did when the registry was one global: `rc_metrics`
 * names the calling thread's. */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include "util/wbuf.h"

#include <stdint.h>

/* Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf). */
#define RC_HIST_BUCKETS 22

typedef struct rc_hist {
    uint64_t counts[RC_HIST_BUCKETS + 1];
    uint64_t count;
    uint64_t sum_us;
} rc_hist_t;

#define RC_METRICS_KINDS        16
#define RC_METRICS_MAX_CODE     600 /* protocol codes 4000..4599 */
#define RC_METRICS_ANON_SLOTS   5   /* RC_ANONID_VERDICT_COUNT, then \"issued\" */
#define RC_METRICS_AUTH_REASONS 16  /* rc_jwt_reason_t values */

/* Why a connection was refused before it became a WebSocket (docs/metrics.md). */
typedef enum {
    RC_REFUSED_PER_IP = 0, /* 429: --max-conns-per-ip */
    RC_REFUSED_ORIGIN,     /* 403: Origin not in --allowed-origins */
    RC_REFUSED_TOKEN,      /* 401: Authorization header token refused */
    RC_REFUSED_PATH,       /* 404: upgrade on another path than /ws */
    RC_REFUSED_DRAINING,   /* 503: the node is draining */
    RC_REFUSED_FRAMING,    /* 400, 411: a body or Transfer-Encoding on the upgrade request */
    RC_REFUSED_WARMING,    /* 503: the node is reading its event log back */
    RC_REFUSED_REASONS
} rc_refused_reason_t;

/* Why an HTTP request was refused for its framing or its body (docs/metrics.md). */
typedef enum {
    RC_HTTP_REFUSED_FRAMING = 0,    /* 400: ambiguous or invalid Content-Length/Transfer-Encoding */
    RC_HTTP_REFUSED_LENGTH,         /* 411: a body without Content-Length (chunked included) */
    RC_HTTP_REFUSED_BODY_TIMEOUT,   /* 408: the body did not arrive in time */
    RC_HTTP_REFUSED_BODY_TOO_LARGE, /* 413: Content-Length over the limit */
    RC_HTTP_REFUSED_HEADERS,        /* 431: request headers over RC_GW_HEADERS_MAX */
    RC_HTTP_REFUSED_REASONS
} rc_http_refused_reason_t;

/* Why an in-memory profile was dropped (store/profile_memory.c). */
typedef enum { RC_EVICT_TTL = 0, RC_EVICT_CAP } rc_evict_reason_t;

typedef struct rc_metrics {
    int64_t connections;        /* gauge: open WebSocket connections */
    uint64_t connections_total; /* accepted since start */
    int64_t sessions;           /* gauge: user sessions in memory */
    uint64_t events_received[RC_METRICS_KINDS];
    uint64_t events_duplicate;
    uint64_t events_server_time[2]; /* ts_ms too far behind [0] or ahead [1] of the clock */
    uint64_t pushes_sent;           /* recs messages written to sockets */
    uint64_t pushes_skipped;        /* recs replaced before they could be written (coalesced) */
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t errors[RC_METRICS_MAX_CODE];
    uint64_t http_responses[6]; /* HTTP answers of the server's routes, by status / 100 */
    uint64_t auth_verified;     /* client tokens accepted */
    uint64_t auth_refused[RC_METRICS_AUTH_REASONS]; /* by rc_jwt_reason_t */
    /* Anonymous ids presented at hello, by rc_anonid_verdict_t, then those issued. */
    uint64_t anon_ids[RC_METRICS_ANON_SLOTS];
    uint64_t handshakes_refused[RC_REFUSED_REASONS];
    uint64_t http_refused[RC_HTTP_REFUSED_REASONS];
    uint64_t pings_sent;
    uint64_t tls_reloads, tls_reload_failures;
    int64_t catalog_items;
    int64_t catalog_learned;           /* gauge: items learned from traffic, held now */
    uint64_t catalog_untrusted_events; /* events on ids an open catalog has not learned */
    uint64_t rerank_total;
    /* profile store */
    int64_t profile_store_up;         /* gauge: 1 when the store is usable */
    int64_t profile_buffered_bytes;   /* gauge: updates held, not yet confirmed */
    uint64_t profile_updates_written; /* deltas the store confirmed */
    uint64_t profile_evictions[2];    /* RC_EVICT_*: in-memory profiles dropped */
    uint64_t profile_updates_dropped; /* deltas refused: buffer full, or store error */
    uint64_t profile_commands;        /* commands sent to the store (retries included) */
    uint64_t profile_loads;           /* profiles read */
    uint64_t profile_load_errors;
    uint64_t profile_reconnects;
    rc_hist_t event_to_push;  /* event received -> its recs written to the socket */
    rc_hist_t rank;           /* one re-rank of one surface */
    rc_hist_t loop_lag;       /* how late a 20 ms timer fires: time the loop was busy */
    rc_hist_t bus_remote_lag; /* another node accepted an event -> applied here (wall clocks) */
    uint64_t app_pushes_delivered; /* application pushes queued to connections */
    int64_t bus_up;                /* gauge */
    int64_t bus_queued;            /* gauge: published, not yet durable */
    uint64_t bus_published, bus_delivered, bus_delivery_errors, bus_consumed;
    uint64_t heap_trims;   /* malloc_trim() calls (node.c) */
    uint64_t heap_trim_us; /* the loop time they took */
} rc_metrics_t;

/* Every field is a 64-bit word (rc_metrics_sum adds them word by word). */
_Static_assert(sizeof(rc_metrics_t) % sizeof(uint64_t) == 0, "the registry is 64-bit words");

/* The calling thread's registry: its loop's (rc_metrics_attach), else the process's. One
 * thread-local load per use (initial-exec TLS in the executable: no call). */
extern _Thread_local rc_metrics_t *rc_metrics_mine;
#define rc_metrics (*rc_metrics_mine)

/* Registries attached at once, the process's not counted. */
#define RC_METRICS_THREADS 64

/** Makes `m` (the caller's, zeroed; borrowed until rc_metrics_detach()) the calling thread's
 * registry, and one rc_metrics_sum() reads. Returns 0, or RC_EFULL when RC_METRICS_THREADS
 * are attached (the thread then keeps counting in the process's). */
int rc_metrics_attach(rc_metrics_t *m);

/** Gives `m` back (the thread that attached it, or any after that thread stopped): its
 * counters and histograms are kept in the sums (totals never go back); its gauges are
 * dropped. The calling thread counts in the process's registry again. NULL is a
 * no-op. */
void rc_metrics_detach(rc_metrics_t *m);

/** Writes into `out` the sum of every registry: counters and histograms added, gauges added
 * too (connections, sessions: each loop holds its own), except the process-wide ones
 * (catalog items, learned items, store and bus up), which are the largest any registry holds
 * (each loop may set them from its copy). The calling thread's registry is read as it is;
 * another loop's as that loop last published it (rc_metrics_publish), never while it counts;
 * the process's registry as it is (only threads without a registry of their own count there,
 * and none does while loops run). */
void rc_metrics_sum(rc_metrics_t *out);

/** Publishes the calling thread's registry for other threads' sums (a loop calls it on its
 * tick: their sums are then at most a tick behind). A thread without one attached: no-op. */
void rc_metrics_publish(void);

/** Adds one observation in microseconds. */
void rc_hist_observe(rc_hist_t *h, uint64_t us);

/** The upper bound of latency bucket `i` (0 <= i < RC_HIST_BUCKETS) in microseconds. */
uint64_t rc_hist_bound_us(int i);

/** Counts one protocol error by its code (4000..4599; others are counted as 4500). */
void rc_metrics_error(int code);

/** The label of a refusal reason on /metrics and the ops feed ("per_ip", "origin", …); NULL
 * for a value out of range. */
const char *rc_metrics_refused_name(int reason);

/** Counts one HTTP answer of the server's own routes by its status class (1xx..5xx; any
 * other status counts as 5xx). */
void rc_metrics_http(unsigned status);

/** Appends the sum of the registries (rc_metrics_sum) in Prometheus text format (version 0.0.4) to
 * `out`, then the standard process metrics (CPU, memory, descriptors, start time) read from /proc.
 * `node_id` labels the build-info line. */
void rc_metrics_render(rc_wbuf_t *out, const char *node_id);

#endif
