/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway: one libwebsockets context on the node's libuv loop, serving the WebSocket
 * subprotocols (to the session module), the HTTP routes (/healthz, /readyz, /metrics, and
 * the admin API under /api/v1/, whose route table its owner gives), the ops feed (/ops,
 * ops.h), the static files of the web root and the JavaScript SDK's sources for the demo
 * pages (/sdk/src/, /vendor/msgpack/), all on one port. */
#ifndef RC_GATEWAY_H
#define RC_GATEWAY_H

#include "api/router.h"
#include "session/session.h"
#include "util/config.h"
#include "util/wbuf.h"

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

typedef struct rc_gateway rc_gateway_t;

/* What the gateway asks of its owner for the HTTP routes. */
typedef struct rc_gateway_hooks {
    void *ctx;
    /* Appends a JSON readiness report to `body`; returns true when ready. */
    bool (*ready)(void *ctx, rc_wbuf_t *body);
    /* Appends the Prometheus text to `body`. */
    void (*metrics)(void *ctx, rc_wbuf_t *body);
    /* The ops feed served on /ops (ops.h), or NULL for none. */
    struct rc_ops *ops;
    /* The admin API's routes under /api/v1/ (api/router.h), each behind the admin token. */
    const rc_api_router_t *api;
} rc_gateway_hooks_t;

/** The transport operations the session module uses to wake and kill connections. */
extern const rc_transport_ops_t rc_gateway_transport_ops;

/** Starts listening. `sessions` and `hooks` are borrowed and must outlive the gateway.
 * Returns NULL with a message in `err` when it cannot listen. When lws itself failed half-way
 * (*loop_unusable set), it may have left handles on `loop` that must never run: the caller
 * must not run the loop again. Otherwise, a gateway whose rc_gateway_port() is < 0 listens
 * nowhere and is closed and freed as usual. */
rc_gateway_t *rc_gateway_new(uv_loop_t *loop, const rc_config_t *cfg, rc_sessions_t *sessions,
                             const rc_gateway_hooks_t *hooks, bool *loop_unusable, char *err,
                             size_t errlen);

/** The port actually bound (useful with --port 0), or -1 when nothing listens. */
int rc_gateway_port(const rc_gateway_t *g);

/** Re-reads --tls-cert and --tls-key (SIGHUP). A pair that does not load is refused and the
 * current one stays. Returns 1 (reloaded), 0 (TLS is off) or RC_EINVAL (refused). */
int rc_gateway_reload_tls(rc_gateway_t *g);

/** While `warming` (the node reads its event log back), WebSocket upgrades (sessions, the ops
 * feed) and the admin API are answered 503; health checks and metrics are served. */
void rc_gateway_set_warming(rc_gateway_t *g, bool warming);

/** Refuses new connections from now on (draining). */
void rc_gateway_stop_accepting(rc_gateway_t *g);

/** Starts closing every connection and the listener; the loop must then run on until the
 * gateway's handles are closed. NULL is a no-op. */
void rc_gateway_close(rc_gateway_t *g);

/** Frees the gateway, after rc_gateway_close() and the loop has run dry (or instead of
 * both, if the loop never ran). NULL is a no-op. */
void rc_gateway_free(rc_gateway_t *g);

/** Makes `g` count connections per client address (--max-conns-per-ip) in `with`'s table,
 * so that the limit holds for the gateways of a process's loops together. Before `g`
 * accepts. */
void rc_gateway_share_addresses(rc_gateway_t *g, rc_gateway_t *with);

#endif
