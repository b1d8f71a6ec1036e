/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway's insides, shared by its four files: gateway.c (the lws context, its protocol
 * table, the upgrade gate, TLS), listener.c (the listening socket, accept, per-address
 * limits), websocket.c (the session subprotocols: frames in and out) and http.c (the HTTP
 * routes and mounts). Only src/net/ includes it; gateway.h is the contract. */
#ifndef RC_GATEWAY_INT_H
#define RC_GATEWAY_INT_H

#include "net/gateway.h"
#include "net/wsdeflate.h"
#include "util/list.h"
#include "util/strmap.h"
#include "util/wbuf.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define RC_GW_HEADERS_MAX 16384 /* request headers served (their values' bytes) */
#define RC_GW_HEADER_BUFFER                                                                        \
    65535 /* request headers read (lws counts in 16 bits), so that up to here get their 431 */

struct rc_gateway {
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    const rc_config_t *cfg;
    rc_sessions_t *sessions;
    const rc_gateway_hooks_t *hooks;
    bool accepting;
    bool warming; /* rc_gateway_set_warming() */
    bool closing;
    int listen_fd;
    int port;
    uv_poll_t listen_poll;
    uv_check_t flush_check; /* writes queued frames at the end of every loop turn */
    rc_link_t flush;        /* rc_gw_ws_pss_t.flush_link: connections with frames to write */
    struct rc_gw_ws_pss *receiving; /* whose messages lws handed over last in this turn */
    rc_wbuf_t gather;               /* several frames framed for one send (write_frames) */
    rc_deflater_t *deflater;        /* with --ws-deflate */
    rc_wbuf_t deflated;             /* one compressed message */
    rc_inflater_t *inflater;        /* with --ws-deflate */
    rc_wbuf_t inflated;             /* one received message, inflated */
    bool tls;
    struct rc_gw_addrs *addrs; /* connections per client address (listener.c) */
    /* Claims of the Authorization header verified at LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, for
     * LWS_CALLBACK_ESTABLISHED of the same wsi: lws calls both within one call chain, and
     * every upgrade passes CONFIRM_UPGRADE first (which resets this), so no stale claims can
     * reach another connection. */
    struct lws *claims_wsi;
    rc_jwt_claims_t claims;
    /* Kept for the context's life, one set per gateway, so that gateways on loops in
     * several threads share no mutable state: the protocols (their buffer sizes come from
     * the settings, the ops feed's entry from the hooks) and the HTTP mounts (http.c). */
    struct lws_protocols protocols[6];
    struct lws_http_mount mounts[7];
    char sdk_dir[4096], msgpack_dir[4096];
};

/* The open connections by client address: one table per gateway, or one for the gateways of
 * a process's loops (rc_gateway_share_addresses), so the limit holds for the process. */
typedef struct rc_gw_addrs {
    pthread_mutex_t lock;
    rc_strmap_t by_addr; /* rc_gw_ip_entry_t*, keyed by the address bytes */
    uint32_t refs;       /* gateways using it (under the lock) */
} rc_gw_addrs_t;

/* Open connections of one client address, for --max-conns-per-ip. Each adopted wsi points
 * at its entry (lws opaque user data) until LWS_CALLBACK_WSI_DESTROY. */
typedef struct rc_gw_ip_entry {
    uint32_t count;
    uint8_t len;
    char addr[16];
} rc_gw_ip_entry_t;

/* Per WebSocket connection. */
typedef struct rc_gw_ws_pss {
    rc_conn_t *conn;
    struct lws *wsi;
    rc_link_t flush_link; /* in the gateway's flush list while frames wait */
    rc_wbuf_t rx;         /* fragments of a message being reassembled */
    bool rx_binary;
    bool refused;         /* a message was refused: ignore input until the close */
    bool closing;         /* the close handshake has been started */
    bool ping_due;        /* the session asked for a ping */
    bool writeable_asked; /* a WRITEABLE callback was asked for (want_writeable()) */
    bool inflating;       /* permessage-deflate negotiated: messages may come compressed */
    bool rx_compressed;   /* the message being received is (RSV1 on its first frame) */
    bool rx_frame_open;   /* the last part received did not end its frame */
    uint8_t deflate_bits; /* our messages are compressed with this window (9..15); 0: not */
    uint64_t rx_t0_us;
} rc_gw_ws_pss_t;

/* How long a request may take from its first byte to the end of its headers (lws's own
 * timeout, which is also its time between two parts of a body), and from the end of its
 * headers to the end of its body: a total, not a time between bytes, so a body trickled a
 * byte at a time is cut like a silent one. The body's is half a second shorter so that it
 * always fires before lws's, which closes without an answer: lws sets its own from wherever
 * it stands in parsing the request, and on a loaded machine the two, if equal, raced (the
 * client got no 408 in about one case in four). */
#define RC_GW_REQUEST_TIMEOUT_S 10
#define RC_GW_BODY_TIMEOUT_MS   9500

/* Per HTTP request of the dynamic routes. */
typedef struct rc_gw_http_pss {
    rc_wbuf_t body;    /* the response */
    rc_wbuf_t request; /* a POST body being received */
    struct lws *wsi;
    lws_sorted_usec_list_t body_deadline; /* scheduled while a POST body is being read */
    bool answered;     /* a response is queued or sent: nothing else answers this request */
    bool close_after;  /* the connection closes once the response is written */
    bool post_refused; /* the POST was answered before its body (auth, size, deadline) */
    char route[128];
} rc_gw_http_pss_t;

/* The gateway a connection belongs to (the context's user pointer). */
static inline rc_gateway_t *rc_gw_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- gateway.c ---- */

/** The upgrade gate, for LWS_CALLBACK_HTTP_CONFIRM_UPGRADE of any protocol: 0 lets the
 * upgrade go on, 1 when it was refused with an HTTP answer, -1 to drop the connection.
 * `upgrade` is the callback's `in` (borrowed for the call). */
int rc_gw_confirm_upgrade(struct lws *wsi, const char *upgrade);

/* ---- listener.c ---- */

/** Binds and listens on --listen/--port; writes the socket and the port bound. Returns 0, or
 * RC_EINVAL or RC_EIO with a message in `err`. `cfg` is borrowed for the call. */
int rc_gw_listener_open(const rc_config_t *cfg, int *fd_out, int *port_out, char *err,
                        size_t errlen);

/** Starts accepting on g->listen_fd from `loop` (borrowed; it outlives the gateway). Returns
 * 0, or libuv's error with nothing started. */
int rc_gw_listener_start(rc_gateway_t *g, uv_loop_t *loop);

/** Stops accepting and closes the listening socket; a no-op once closed. */
void rc_gw_listener_close(rc_gateway_t *g);

/** Drops one connection from its address's count (at LWS_CALLBACK_WSI_DESTROY); the entry is
 * freed with its last connection. NULL is a no-op. */
void rc_gw_ip_release(rc_gateway_t *g, rc_gw_ip_entry_t *e);

/** The gateway's own table of addresses (rc_gateway_new). Returns 0 or RC_ENOMEM. */
int rc_gw_ips_new(rc_gateway_t *g);

/** Lets go of the gateway's table; the last gateway using it frees the entries still
 * counted and the map (from rc_gateway_free). */
void rc_gw_ips_free(rc_gateway_t *g);

/* ---- websocket.c ---- */

/** The callback of the two session subprotocols (rankcast.v1.msgpack, rankcast.v1.json);
 * `user` is the connection's rc_gw_ws_pss_t. */
int rc_gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len);

/** permessage-deflate as lws sees it, with --ws-deflate: it takes part in the negotiation only;
 * payloads reach rc_gw_ws_callback() as they came, and wsdeflate.h does the rest. */
int rc_gw_deflate_extension(struct lws_context *ctx, const struct lws_extension *ext,
                            struct lws *wsi, enum lws_extension_callback_reasons reason, void *user,
                            void *in, size_t len);

/** The end-of-turn flush, a uv_check_t callback whose data is the gateway: writes the
 * frames every connection has queued. */
void rc_gw_on_flush_check(uv_check_t *h);

/* ---- http.c ---- */

/** The callback of "rc-http", the dynamic routes; `user` is the request's rc_gw_http_pss_t. */
int rc_gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);

/** The request's framing, for LWS_CALLBACK_FILTER_HTTP_CONNECTION (every request that is not
 * an upgrade, before it is routed or any credential is read): 0 lets it go on; otherwise the
 * request has been answered (400, 404, 411) and the connection must close (return nonzero). */
int rc_gw_http_filter(struct lws *wsi);

/** The same framing rules for an upgrade request (which carries no body): 0 when they hold,
 * else the HTTP status to refuse it with and `*why` (a static string). */
unsigned rc_gw_upgrade_framing(struct lws *wsi, const char **why);

/** lws's file operations for the mounts (info.fops): a file is served only if its resolved
 * path is inside its mount's root, so symlinks never lead out of it. */
extern const struct lws_plat_file_ops rc_gw_file_fops;

/** Fills `g`'s mount list (the web root, the dynamic routes, the SDK's sources) and returns
 * its head, or NULL when out of memory. The list points into `g` and its config, which must
 * outlive the lws context; its file roots join the process's set the link check uses. */
const struct lws_http_mount *rc_gw_http_mounts(rc_gateway_t *g);

#endif
