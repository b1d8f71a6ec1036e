/* libwebsockets glue. Each callback reason dispatches to one small function. Frames are
 * written at the end of the loop turn that made them (or from WRITEABLE once the socket was
 * full), several in one send; the session module asks for that through
 * rc_gateway_transport_ops. */
#include "net/gateway.h"
#include "api/admin_api.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/list.h"
#include "util/log.h"
#include "util/metrics.h"
#include "net/ops.h"
#include "session/outbox.h"
#include "proto/proto.h"
#include "util/strmap.h"
#include "net/wsdeflate.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(LWS_PRE <= RC_FRAME_HEADROOM, "frames need LWS_PRE bytes of headroom");

struct rc_gateway {
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    const rc_config_t *cfg;
    rc_sessions_t *sessions;
    const rc_gateway_hooks_t *hooks;
    bool accepting;
    bool closing;
    int listen_fd;
    int port;
    uv_poll_t listen_poll;
    uv_check_t flush_check;   /* writes queued frames at the end of every loop turn */
    rc_link_t flush;          /* ws_pss_t.flush_link: connections with frames to write */
    struct ws_pss *receiving; /* whose messages lws handed over last in this turn */
    rc_wbuf_t gather;         /* several frames framed for one send (write_frames) */
    rc_deflater_t *deflater;  /* with --ws-deflate */
    rc_wbuf_t deflated;       /* one compressed message */
    bool tls;
    rc_strmap_t conns_by_ip; /* ip_entry_t*, keyed by the address bytes */
    /* Claims of the Authorization header verified at LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, for
     * LWS_CALLBACK_ESTABLISHED of the same wsi: lws calls both within one call chain, and
     * every upgrade passes CONFIRM_UPGRADE first (which resets this), so no stale claims can
     * reach another connection. */
    struct lws *claims_wsi;
    rc_jwt_claims_t claims;
};

/* Open connections of one client address, for --max-conns-per-ip. Each adopted wsi points
 * at its entry (lws opaque user data) until LWS_CALLBACK_WSI_DESTROY. */
typedef struct ip_entry {
    uint32_t count;
    uint8_t len;
    char addr[16];
} ip_entry_t;

/* Per WebSocket connection. */
typedef struct ws_pss {
    rc_conn_t *conn;
    struct lws *wsi;
    rc_link_t flush_link; /* in the gateway's flush list while frames wait */
    rc_wbuf_t rx;         /* fragments of a message being reassembled */
    bool rx_binary;
    bool refused;         /* a message was too large: ignore input until the close */
    bool closing;         /* the close handshake has been started */
    bool ping_due;        /* the session asked for a ping */
    bool inflating;       /* permessage-deflate negotiated: lws inflates what arrives */
    uint8_t deflate_bits; /* our messages are compressed with this window (9..15); 0: not */
    uint64_t rx_t0_us;
} ws_pss_t;

/* Per HTTP request of the dynamic routes. */
typedef struct http_pss {
    rc_wbuf_t body;    /* the response */
    rc_wbuf_t request; /* a POST body being received */
    bool body_ready;
    bool post_refused; /* the POST was answered before its body (auth, size) */
    char route[128];
} http_pss_t;

static rc_gateway_t *gateway_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- transport ops for the session module ---- */

/* Frames made during a loop turn are written when lws moves on to another connection's
 * messages (flush_received) or at the end of the turn (on_flush_check), straight to the
 * socket: no POLLOUT round trip (three epoll_ctl and a loop turn per write in lws on
 * libuv) unless the kernel's buffer is full. */
static void transport_want_write(void *transport)
{
    struct lws *wsi = transport;
    ws_pss_t *pss = lws_wsi_user(wsi);
    rc_gateway_t *g = gateway_of(wsi);
    if (pss == NULL || pss->conn == NULL) {
        lws_callback_on_writable(wsi);
        return;
    }
    if (!rc_list_linked(&pss->flush_link))
        rc_list_push_back(&g->flush, &pss->flush_link);
}

/* lws on libuv arms its timer for pending timeouts only after its own callbacks; a timeout
 * set from anywhere else (a tick, a bus delivery, the end-of-turn flush) would wait for
 * unrelated traffic. Waking the service arms it now. Only closes pay for this. */
static void set_timeout_now(struct lws *wsi, enum pending_timeout reason, int secs)
{
    lws_set_timeout(wsi, reason, secs);
    lws_cancel_service_pt(wsi);
}

static void transport_kill(void *transport)
{
    set_timeout_now((struct lws *)transport, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void transport_ping(void *transport)
{
    struct lws *wsi = transport;
    ws_pss_t *pss = lws_wsi_user(wsi);
    if (pss != NULL) {
        pss->ping_due = true;
        transport_want_write(wsi);
    }
}

const rc_transport_ops_t rc_gateway_transport_ops = {transport_want_write, transport_kill,
                                                     transport_ping};

/* ---- WebSocket ---- */

static int confirm_upgrade(struct lws *wsi, const char *upgrade);

static rc_format_t format_of(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    return p && strcmp(p->name, "rankcast.v1.msgpack") == 0 ? RC_FMT_MSGPACK : RC_FMT_JSON;
}

/* Whether lws accepted this client's permessage-deflate offer (lws_set_extension_option()
 * fails when the extension is not active on the connection; the level it sets is lws's own
 * compressor's, which our frames never go through), and if so the window our messages may
 * use, from the offer (still readable: lws detaches the headers after ESTABLISHED). */
static void deflate_negotiated(rc_gateway_t *g, struct lws *wsi, ws_pss_t *pss)
{
    char offer[512];
    pss->inflating = g->deflater != NULL && lws_set_extension_option(wsi, "permessage-deflate",
                                                                     "compression_level", "1") == 0;
    if (pss->inflating && lws_hdr_copy(wsi, offer, sizeof(offer), WSI_TOKEN_EXTENSIONS) > 0)
        pss->deflate_bits = (uint8_t)rc_deflate_offer_window_bits(offer);
}

static int ws_established(struct lws *wsi, ws_pss_t *pss)
{
    rc_gateway_t *g = gateway_of(wsi);
    memset(pss, 0, sizeof(*pss));
    rc_wbuf_init(&pss->rx, 0);
    rc_list_init(&pss->flush_link);
    pss->wsi = wsi;
    deflate_negotiated(g, wsi, pss);
    pss->conn = rc_conn_open(g->sessions, format_of(wsi), wsi);
    if (pss->conn == NULL)
        return -1;
    if (g->claims_wsi == wsi) {
        g->claims_wsi = NULL;
        if (rc_conn_set_claims(pss->conn, &g->claims) != 0) {
            rc_conn_closed(pss->conn);
            pss->conn = NULL;
            return -1;
        }
    }
    rc_metrics.connections++;
    rc_metrics.connections_total++;
    return 0;
}

static void flush_received(rc_gateway_t *g);

static int ws_receive(struct lws *wsi, ws_pss_t *pss, const void *in, size_t len)
{
    rc_gateway_t *g = gateway_of(wsi);
    bool first = lws_is_first_fragment(wsi) && pss->rx.len == 0;
    bool last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;

    if (g->receiving != pss) {
        flush_received(g);
        g->receiving = pss;
    }
    if (pss->conn == NULL || pss->refused || pss->closing)
        return 0;
    if (first) {
        pss->rx_t0_us = rc_mono_us();
        pss->rx_binary = lws_frame_is_binary(wsi);
    }
    if (pss->rx.len + len > (size_t)g->cfg->max_message_bytes) {
        /* Refuse before buffering: a client cannot make the server hold more than the
         * limit for it. The error goes out, then the close (1009). */
        pss->refused = true;
        rc_wbuf_free(&pss->rx);
        rc_conn_refuse(pss->conn, RC_PERR_TOO_LARGE, "message larger than max_message_bytes", true);
        return 0;
    }
    if (first && last) {
        rc_conn_receive(pss->conn, in, len, pss->rx_binary, pss->rx_t0_us);
        return 0;
    }
    rc_wbuf_put(&pss->rx, in, len);
    if (rc_wbuf_ok(&pss->rx) != 0)
        return -1;
    /* lws inflates a compressed message one receive buffer at a time, and on libuv it
     * forgets to come back for the rest once no more bytes arrive from the socket (its idle
     * handler stops after one pass). Waking its service brings the next part. */
    if (!last && pss->inflating)
        lws_cancel_service_pt(wsi);
    if (last) {
        rc_conn_receive(pss->conn, rc_wbuf_data(&pss->rx), pss->rx.len, pss->rx_binary,
                        pss->rx_t0_us);
        /* Freed, not kept: the large messages are rare (a hello with a token, a batch), and
         * an idle connection should not hold the largest one it ever sent. */
        rc_wbuf_free(&pss->rx);
    }
    return 0;
}

/* Starts the WebSocket close handshake with our code. In lws 4.1.6 a -1 returned from a
 * WRITEABLE callback, and every timeout but one, kill the socket without a close frame, so
 * the client would see 1006 instead of the code PROTOCOL.md promises. A close scheduled by
 * the keep-alive-idle timeout is the exception: lws then sends the reason set here, waits
 * (at most 5 s) for the client's close, and shuts the socket down in order. */
static void start_close(struct lws *wsi, ws_pss_t *pss, int code, const char *reason)
{
    pss->closing = true;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
    set_timeout_now(wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
}

/* Writes queued frames, from WRITEABLE or from the end-of-turn flush: at most a few per call
 * (so one busy connection cannot hold the loop), all in one send. Once lws had to buffer
 * part of them, or frames are left, POLLOUT brings the rest. Checking the buffer lws keeps
 * costs nothing; lws_send_pipe_choked() would cost a poll() per frame. Returns -1 when the
 * connection must be dropped. */
#define FRAMES_PER_TURN 16
#define GATHER_BYTES    (64u << 10)

/* The header of an unmasked (server to client), final, uncompressed frame; returns its size. */
static size_t ws_frame_header(unsigned char *p, size_t len, bool binary)
{
    p[0] = 0x80 | (binary ? 0x2 : 0x1);
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Appends one frame, header and payload, to the send buffer: compressed when the client
 * takes permessage-deflate and the message is large enough to gain from it (RFC 7692 lets
 * the sender choose per message; RSV1 marks a compressed one). */
static void gather_frame(rc_gateway_t *g, const ws_pss_t *pss, rc_frame_t *f)
{
    const unsigned char *payload = rc_frame_payload(f);
    size_t len = f->len;
    unsigned char h[10];
    size_t hlen;
    rc_wbuf_reset(&g->deflated);
    if (pss->deflate_bits != 0 && len >= (size_t)g->cfg->ws_deflate_min_bytes &&
        rc_deflate_message(g->deflater, pss->deflate_bits, payload, len, &g->deflated) > 0 &&
        g->deflated.len < len) {
        payload = (const unsigned char *)rc_wbuf_data(&g->deflated);
        len = g->deflated.len;
        hlen = ws_frame_header(h, len, f->binary);
        h[0] |= 0x40;
    } else {
        hlen = ws_frame_header(h, len, f->binary);
    }
    rc_wbuf_put(&g->gather, h, hlen);
    rc_wbuf_put(&g->gather, payload, len);
}

/* The frames leave in one send(), framed here and written raw: one system call and one
 * TCP segment for an event's ack and its list, instead of one each. lws's own
 * permessage-deflate compressor is never used: it keeps zlib state per connection and
 * compresses every message, however small. Returns 0, or -1 when the socket failed. */
static int write_frames(rc_gateway_t *g, ws_pss_t *pss, rc_frame_t **frames, int n)
{
    if (n == 1 && pss->deflate_bits == 0) { /* as it is, without a copy */
        rc_frame_t *f = frames[0];
        int w = lws_write(pss->wsi, rc_frame_payload(f), f->len,
                          f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        return w < (int)f->len ? -1 : 0;
    }
    rc_wbuf_t *b = &g->gather;
    rc_wbuf_reset(b);
    for (int i = 0; i < n; i++)
        gather_frame(g, pss, frames[i]);
    if (rc_wbuf_ok(b) != 0)
        return -1;
    int w = lws_write(pss->wsi, (unsigned char *)rc_wbuf_data(b), b->len, LWS_WRITE_RAW);
    return w < (int)b->len ? -1 : 0;
}

static int ws_flush(struct lws *wsi, ws_pss_t *pss)
{
    const char *reason;
    if (pss->conn == NULL)
        return -1;
    if (pss->ping_due && !pss->closing && !lws_partial_buffered(wsi)) {
        /* Not empty: lws 4.1.6 does not report a pong with no payload to the callback. */
        unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'r', [LWS_PRE + 1] = 'c'};
        pss->ping_due = false;
        if (lws_write(wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
        rc_metrics.pings_sent++;
    }
    rc_frame_t *frames[FRAMES_PER_TURN];
    int n = 0;
    size_t bytes = 0;
    while (n < FRAMES_PER_TURN && bytes < GATHER_BYTES && !lws_partial_buffered(wsi)) {
        rc_frame_t *f = rc_conn_next_frame(pss->conn);
        if (f == NULL)
            break;
        frames[n++] = f;
        bytes += f->len;
    }
    int rc = n > 0 ? write_frames(gateway_of(wsi), pss, frames, n) : 0;
    uint64_t now = rc_mono_us();
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc_conn_frame_written(frames[i], now);
        else
            rc_frame_unref(frames[i]);
    }
    if (rc != 0)
        return -1;
    if (rc_conn_has_pending(pss->conn) || pss->ping_due || lws_partial_buffered(wsi)) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    int code = rc_conn_close_code(pss->conn, &reason);
    if (code != 0 && !pss->closing)
        start_close(wsi, pss, code, reason);
    return 0;
}

static int ws_writeable(struct lws *wsi, ws_pss_t *pss)
{
    if (pss->wsi == NULL) /* not established (see ws_closed) */
        return 0;
    rc_list_unlink(&pss->flush_link);
    return ws_flush(wsi, pss);
}

/* Writes a connection's queued frames outside lws's WRITEABLE callback. */
static void flush_queued(ws_pss_t *pss)
{
    rc_list_unlink(&pss->flush_link);
    if (ws_flush(pss->wsi, pss) < 0)
        transport_kill(pss->wsi);
}

/* Writes the frames of the connection whose messages lws handed over last, now that it has
 * moved on to another. In a loop turn that brings many events, the first event's ack and list
 * would otherwise wait until every later event of the turn was ranked (on_flush_check): at
 * 5,000 events/s that wait made most of the server's share of the latency. Acks come from the
 * bus's completions, so the bus settles first: ack and list still leave in one send(). */
static void flush_received(rc_gateway_t *g)
{
    ws_pss_t *pss = g->receiving;
    g->receiving = NULL;
    if (pss == NULL || !rc_list_linked(&pss->flush_link))
        return;
    rc_sessions_settle(g->sessions);
    flush_queued(pss);
}

static void on_flush_check(uv_check_t *h)
{
    rc_gateway_t *g = h->data;
    g->receiving = NULL;
    while (!rc_list_empty(&g->flush))
        flush_queued(RC_CONTAINER_OF(g->flush.next, ws_pss_t, flush_link));
}

/* lws also reports the close of a connection whose upgrade failed after the protocol was
 * bound (the 101 could not be written: the peer reset it), with the state it zeroed and
 * ESTABLISHED never called. */
static void ws_closed(ws_pss_t *pss)
{
    if (pss->wsi == NULL)
        return;
    rc_gateway_t *g = gateway_of(pss->wsi);
    if (g->receiving == pss)
        g->receiving = NULL;
    rc_list_unlink(&pss->flush_link);
    if (pss->conn != NULL) {
        rc_conn_closed(pss->conn);
        pss->conn = NULL;
        rc_metrics.connections--;
    }
    rc_wbuf_free(&pss->rx);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    ws_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Adopted sockets start bound to the default protocol (JSON), so the gate is asked
         * here as well as in root_callback. */
        return confirm_upgrade(wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return ws_receive(wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(wsi, pss);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->conn != NULL)
            rc_conn_alive(pss->conn, rc_mono_us());
        return 0;
    case LWS_CALLBACK_CLOSED:
        ws_closed(pss);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- the upgrade gate ---- */

static struct lws_protocols protocols[6];

/* Answers an upgrade request with an HTTP error instead of 101, counted by reason. */
static int refuse_upgrade(struct lws *wsi, unsigned int status, rc_refused_reason_t why,
                          const char *message)
{
    rc_metrics.handshakes_refused[why]++;
    RC_DEBUG("gateway", "upgrade refused", "status=%u reason=\"%s\"", status, message);
    if (lws_return_http_status(wsi, status, message))
        return -1;
    return 1;
}

static bool origin_allowed(const char *allowed, const char *origin)
{
    size_t n = strlen(origin);
    for (const char *p = allowed; *p != '\0';) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ' ')
            end++;
        if ((size_t)(end - p) == n && n > 0 && strncasecmp(p, origin, n) == 0)
            return true;
        p = end;
    }
    return false;
}

/* Every WebSocket upgrade is checked here, before any protocol state exists: the path, the
 * node still accepting, the Origin (browsers send it; native clients do not), and a token
 * in the Authorization header (native clients), whose subject the connection then is. */
static int confirm_upgrade(struct lws *wsi, const char *upgrade)
{
    rc_gateway_t *g = gateway_of(wsi);
    char buf[RC_JWT_MAX_LEN + 8];
    g->claims_wsi = NULL;
    if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0)
        return 0;
    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_GET_URI) <= 0)
        buf[0] = '\0';
    /* The ops feed (/ops) checks its own credential in its first message (ops.h). */
    bool ops = strcmp(buf, "/ops") == 0 && protocols[4].name != NULL;
    if (strcmp(buf, "/ws") != 0 && !ops)
        return refuse_upgrade(wsi, HTTP_STATUS_NOT_FOUND, RC_REFUSED_PATH,
                              "WebSocket sessions live on /ws");
    if (!g->accepting)
        return refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, RC_REFUSED_DRAINING,
                              "draining: connect to another node");
    if (g->cfg->allowed_origins[0] != '\0' &&
        lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_ORIGIN) > 0 &&
        !origin_allowed(g->cfg->allowed_origins, buf))
        return refuse_upgrade(wsi, HTTP_STATUS_FORBIDDEN, RC_REFUSED_ORIGIN, "origin not allowed");
    int n = ops ? 0 : lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0) {
        if (n < 8 || strncasecmp(buf, "Bearer ", 7) != 0 ||
            rc_sessions_verify_token(g->sessions, buf + 7, (size_t)n - 7, &g->claims) != RC_JWT_OK)
            return refuse_upgrade(wsi, HTTP_STATUS_UNAUTHORIZED, RC_REFUSED_TOKEN, "token refused");
        g->claims_wsi = wsi;
    }
    return 0;
}

static void ip_release(rc_gateway_t *g, ip_entry_t *e)
{
    if (e == NULL || --e->count > 0)
        return;
    rc_strmap_del(&g->conns_by_ip, e->addr, e->len);
    free(e);
}

/* protocols[0]: lws's file serving, plus the upgrade gate and the end of every wsi. */
static int root_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(wsi, in);
    case LWS_CALLBACK_WSI_DESTROY:
        if (gateway_of(wsi)->claims_wsi == wsi) /* its upgrade never completed */
            gateway_of(wsi)->claims_wsi = NULL;
        ip_release(gateway_of(wsi), lws_get_opaque_user_data(wsi));
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- HTTP routes ---- */

/* Sends the status line and headers now and the body (pss->body) from WRITEABLE. */
static int http_respond(struct lws *wsi, http_pss_t *pss, unsigned int status, const char *ctype)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    if (rc_wbuf_ok(&pss->body) != 0)
        return -1;
    if (lws_add_http_common_headers(wsi, status, ctype, pss->body.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (status == HTTP_STATUS_UNAUTHORIZED &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                     (const unsigned char *)"Bearer", 6, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    pss->body_ready = true;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_error(struct lws *wsi, http_pss_t *pss, unsigned int status, const char *message)
{
    /* Messages may quote what they expected: encoded, never pasted into the JSON. */
    status = rc_api_answer(&pss->body, status, json_pack("{s:s}", "error", message));
    return http_respond(wsi, pss, status, "application/json");
}

/* The admin credential, compared in constant time so its bytes cannot be timed out. */
static bool admin_authorized(struct lws *wsi, const char *token)
{
    char auth[512];
    int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
    return n >= 7 && strncmp(auth, "Bearer ", 7) == 0 &&
           rc_api_token_equal(auth + 7, (size_t)n - 7, token);
}

/* 200 when the admin API is on and the request carries its token; 403 or 401 otherwise. */
static unsigned admin_gate(struct lws *wsi, const rc_gateway_t *g)
{
    if (g->cfg->admin_token[0] == '\0')
        return HTTP_STATUS_FORBIDDEN;
    return admin_authorized(wsi, g->cfg->admin_token) ? HTTP_STATUS_OK : HTTP_STATUS_UNAUTHORIZED;
}

static int admin_refused(struct lws *wsi, http_pss_t *pss, unsigned status)
{
    return http_error(wsi, pss, status,
                      status == HTTP_STATUS_FORBIDDEN
                          ? "the admin API is off: start the server with --admin-token"
                          : "a valid admin bearer token is required");
}

static int http_get(struct lws *wsi, http_pss_t *pss, const char *uri)
{
    rc_gateway_t *g = gateway_of(wsi);
    unsigned int status = HTTP_STATUS_OK;
    const char *ctype = "application/json";
    if (strcmp(uri, "/healthz") == 0) {
        rc_wbuf_puts(&pss->body, "{\"status\":\"ok\"}\n");
    } else if (strcmp(uri, "/readyz") == 0) {
        if (!g->hooks->ready(g->hooks->ctx, &pss->body))
            status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    } else if (strcmp(uri, "/metrics") == 0) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        g->hooks->metrics(g->hooks->ctx, &pss->body);
    } else if (g->hooks->extra_route && g->hooks->extra_route(uri) && g->hooks->extra_get &&
               (status = admin_gate(wsi, g)) == HTTP_STATUS_OK) {
        if ((status = g->hooks->extra_get(g->hooks->ctx, uri, &pss->body)) == 0)
            return http_error(wsi, pss, HTTP_STATUS_METHOD_NOT_ALLOWED, "use POST");
    } else if (status != HTTP_STATUS_OK) {
        return admin_refused(wsi, pss, status);
    } else if (strncmp(uri, "/api/", 5) == 0) {
        return http_error(wsi, pss, HTTP_STATUS_METHOD_NOT_ALLOWED, "use POST");
    } else {
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    }
    return http_respond(wsi, pss, status, ctype);
}

/* A POST is checked (route, credential) before its body is read; the body follows in
 * LWS_CALLBACK_HTTP_BODY and is answered at LWS_CALLBACK_HTTP_BODY_COMPLETION. */
static int http_post_begin(struct lws *wsi, http_pss_t *pss, const char *uri)
{
    rc_gateway_t *g = gateway_of(wsi);
    rc_wbuf_init(&pss->request, 0);
    pss->post_refused = true;
    if (strcmp(uri, "/api/v1/users/erase") != 0 && strcmp(uri, "/api/v1/push") != 0 &&
        !(g->hooks->extra_route && g->hooks->extra_route(uri)))
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    snprintf(pss->route, sizeof(pss->route), "%s", uri);
    unsigned status = admin_gate(wsi, g);
    if (status != HTTP_STATUS_OK)
        return admin_refused(wsi, pss, status);
    pss->post_refused = false;
    return 0;
}

static int http_body(http_pss_t *pss, const void *in, size_t len)
{
    if (pss->post_refused)
        return 0;
    if (pss->request.len + len > RC_API_BODY_MAX) {
        pss->post_refused = true; /* answered at completion */
        rc_wbuf_free(&pss->request);
        return 0;
    }
    rc_wbuf_put(&pss->request, in, len);
    return 0;
}

/* POST /api/v1/push {"user"|"segment", "topic"?, "data"}: 202 {"id"} once published. */
static int api_push(struct lws *wsi, http_pss_t *pss)
{
    rc_gateway_t *g = gateway_of(wsi);
    rc_api_push_t p;
    char err[128], id[40];
    int rc = rc_api_push_parse(&p, rc_wbuf_data(&pss->request), pss->request.len, err, sizeof(err));
    if (rc == RC_EINVAL)
        return http_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, err);
    if (rc != 0)
        return -1;
    rc = g->hooks->push(g->hooks->ctx, p.user, p.segment, p.topic, &p.data, id, sizeof(id));
    rc_api_push_free(&p);
    if (rc != 0)
        return http_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE,
                          "the bus cannot take the push now; retry");
    rc_wbuf_reset(&pss->body);
    rc_wbuf_printf(&pss->body, "{\"id\":\"%s\"}\n", id);
    return http_respond(wsi, pss, 202 /* Accepted */, "application/json");
}

/* POST /api/v1/users/erase {"user"}: 200 {"erased": true}. */
static int api_erase(struct lws *wsi, http_pss_t *pss)
{
    rc_gateway_t *g = gateway_of(wsi);
    char user[RC_ID_MAX + 1], err[128];
    if (rc_api_erase_parse(rc_wbuf_data(&pss->request), pss->request.len, user, err, sizeof(err)) !=
        0)
        return http_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, err);
    if (g->hooks->erase_user(g->hooks->ctx, user, strlen(user)) != 0)
        return http_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, "profile store refused");
    rc_wbuf_reset(&pss->body);
    rc_wbuf_printf(&pss->body, "{\"erased\":true}\n");
    return http_respond(wsi, pss, HTTP_STATUS_OK, "application/json");
}

/* Routes owned outside the gateway (the live catalog): the body must be one JSON object,
 * duplicate keys refused as on the other routes; the owner writes the answer. */
static int api_extra(struct lws *wsi, http_pss_t *pss)
{
    rc_gateway_t *g = gateway_of(wsi);
    char err[128];
    json_t *j = rc_api_load_object(rc_wbuf_data(&pss->request), pss->request.len, err, sizeof(err));
    if (j == NULL)
        return http_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, err);
    unsigned status = g->hooks->extra_post(g->hooks->ctx, pss->route, j, &pss->body);
    json_decref(j);
    return http_respond(wsi, pss, status, "application/json");
}

static int http_body_done(struct lws *wsi, http_pss_t *pss)
{
    if (pss->body_ready)
        return 0; /* already answered */
    if (pss->post_refused)
        return http_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "body too large");
    if (rc_wbuf_ok(&pss->request) != 0)
        return -1;
    if (strcmp(pss->route, "/api/v1/push") == 0)
        return api_push(wsi, pss);
    if (strcmp(pss->route, "/api/v1/users/erase") == 0)
        return api_erase(wsi, pss);
    return api_extra(wsi, pss);
}

static int http_begin(struct lws *wsi, http_pss_t *pss)
{
    char uri[128];
    rc_metrics.http_requests++;
    rc_wbuf_init(&pss->body, LWS_PRE);
    rc_wbuf_init(&pss->request, 0);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_POST_URI) > 0)
        return http_post_begin(wsi, pss, uri);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0)
        return http_get(wsi, pss, uri);
    return http_error(wsi, pss, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
}

static int http_writeable(struct lws *wsi, http_pss_t *pss)
{
    if (!pss->body_ready)
        return 0;
    pss->body_ready = false;
    if (lws_write(wsi, (unsigned char *)rc_wbuf_data(&pss->body), pss->body.len,
                  LWS_WRITE_HTTP_FINAL) != (int)pss->body.len)
        return -1;
    rc_wbuf_free(&pss->body);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    http_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_begin(wsi, pss);
    case LWS_CALLBACK_HTTP_BODY:
        return http_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_body_done(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(wsi, pss);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss != NULL) {
            rc_wbuf_free(&pss->body);
            rc_wbuf_free(&pss->request);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* protocols[0] serves files; "rc-http" the dynamic routes; [4] is the ops feed when there is
 * one (else it ends the list). Not const: the WebSocket entries get their receive buffer
 * size from the settings, and the feed its state. */
static struct lws_protocols protocols[6] = {
    {"http", root_callback, 0, 0, 0, NULL, 0},
    {"rc-http", http_callback, sizeof(http_pss_t), 0, 0, NULL, 0},
    {"rankcast.v1.msgpack", ws_callback, sizeof(ws_pss_t), 0, 0, NULL, 0},
    {"rankcast.v1.json", ws_callback, sizeof(ws_pss_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* permessage-deflate, with --ws-deflate: lws negotiates it and inflates what clients
 * compress; write_frames() compresses ours (wsdeflate.h). zlib level 1: lists are small,
 * and higher levels cost CPU for a few percent of bytes. */
#define DEFLATE_LEVEL 1
static const struct lws_extension deflate_extension[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate, "permessage-deflate"},
    {NULL, NULL, NULL},
};

/* A client that offers no subprotocol gets JSON (PROTOCOL.md section 1). */
static const struct lws_protocol_vhost_options pvo_json_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_json_default, "rankcast.v1.json",
                                                      ""};

/* lws knows the usual types; the demo also serves JSON lines, ES modules and the catalog's
 * attribution (Markdown, linked from the shop's footer). */
static const struct lws_protocol_vhost_options mime_md = {NULL, NULL, ".md",
                                                          "text/plain; charset=utf-8"};
static const struct lws_protocol_vhost_options mime_mjs = {&mime_md, NULL, ".mjs",
                                                           "text/javascript"};
static const struct lws_protocol_vhost_options mime_jsonl = {&mime_mjs, NULL, ".jsonl",
                                                             "application/x-ndjson"};
static const struct lws_protocol_vhost_options mime_json = {&mime_jsonl, NULL, ".json",
                                                            "application/json"};

static void log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        RC_ERROR("lws", "libwebsockets", "detail=\"%.*s\"", (int)n, line);
    else
        RC_WARN("lws", "libwebsockets", "detail=\"%.*s\"", (int)n, line);
}

static void set_route(struct lws_http_mount *m, const struct lws_http_mount *next, const char *path)
{
    memset(m, 0, sizeof(*m));
    m->mount_next = next;
    m->mountpoint = path;
    m->mountpoint_len = (unsigned char)strlen(path);
    m->origin = "rc-http";
    m->origin_protocol = LWSMPRO_CALLBACK;
}

/* Mounts live as long as the context; one static set per process is enough. */
static struct lws_http_mount mounts[7];
static char sdk_dir[4096], msgpack_dir[4096];

/* The demo pages import the JavaScript SDK from its own sources (no copy, no CDN), and the
 * SDK's one dependency from its ESM build installed by scripts/setup. Returns the mount
 * list's head. */
static const struct lws_http_mount *mount_sdk(const rc_config_t *cfg,
                                              const struct lws_http_mount *next)
{
    if (cfg->sdk_root[0] == '\0')
        return next;
    snprintf(sdk_dir, sizeof(sdk_dir), "%s/src", cfg->sdk_root);
    snprintf(msgpack_dir, sizeof(msgpack_dir), "%s/node_modules/@msgpack/msgpack/dist.esm",
             cfg->sdk_root);
    const char *points[2] = {"/sdk/src", "/vendor/msgpack"}, *dirs[2] = {sdk_dir, msgpack_dir};
    for (int i = 0; i < 2; i++) {
        struct lws_http_mount *m = &mounts[5 + i];
        memset(m, 0, sizeof(*m));
        m->mount_next = next;
        m->mountpoint = points[i];
        m->mountpoint_len = (unsigned char)strlen(points[i]);
        m->origin = dirs[i];
        m->origin_protocol = LWSMPRO_FILE;
        m->extra_mimetypes = &mime_json;
        next = m;
    }
    return next;
}

/* Loads a certificate chain and its key into a scratch context: a clear message at start,
 * and on reload a bad pair is refused before it can replace the good one. */
static int check_tls_files(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *what = ctx == NULL                                          ? "no memory"
                       : SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ? "certificate"
                       : SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ? "key"
                       : SSL_CTX_check_private_key(ctx) != 1
                           ? "key (it does not match the certificate)"
                           : NULL;
    SSL_CTX_free(ctx);
    if (what == NULL)
        return 0;
    snprintf(err, errlen, "TLS: cannot use the %s (--tls-cert '%s', --tls-key '%s')", what, cert,
             key);
    return RC_EINVAL;
}

/* The listening socket is the gateway's own, not lws's: lws 4.1.6 sets SO_REUSEPORT only
 * for multi-threaded contexts, and --workers needs it to share one port between
 * processes. Accepted connections are handed to lws (lws_adopt_socket_vhost). Binding
 * first also makes a port in use a clean error before lws touches the loop. */
static int open_listener(const rc_config_t *cfg, int *fd_out, int *port_out, char *err,
                         size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    int one = 1;
    snprintf(port, sizeof(port), "%lld", (long long)cfg->port);
    if (getaddrinfo(cfg->listen[0] ? cfg->listen : NULL, port, &hints, &res) != 0 || !res) {
        snprintf(err, errlen, "cannot resolve listen address '%s'", cfg->listen);
        return RC_EINVAL;
    }
    /* With no address given, prefer the IPv6 wildcard (it takes IPv4 too), as lws would. */
    struct addrinfo *ai = res;
    for (struct addrinfo *x = res; x != NULL && !cfg->listen[0]; x = x->ai_next)
        if (x->ai_family == AF_INET6)
            ai = x;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return RC_EIO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Only workers share a port; a lone node on a busy port fails rather than joining
     * whatever else listens there. */
    if (cfg->workers > 1)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        int zero = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "cannot listen on port %s: %s", port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return RC_EIO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &salen);
    *port_out = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                               : ((struct sockaddr_in *)&sa)->sin_port);
    *fd_out = fd;
    return 0;
}

/* The address bytes of a peer; an IPv4 client on the dual-stack socket counts as IPv4. */
static uint8_t peer_key(const struct sockaddr_storage *sa, char out[16])
{
    if (sa->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(out, &a6->s6_addr[12], 4);
        return 4;
    }
    memcpy(out, a6, 16);
    return 16;
}

/* Over --max-conns-per-ip the connection gets a 429 (plaintext) or a close (TLS, where a
 * plaintext answer would be garbage) before lws ever sees it: one address cannot take
 * every file descriptor of the process. */
static void refuse_per_ip(rc_gateway_t *g, int fd)
{
    static const char resp[] =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        "Content-Length: 52\r\nConnection: close\r\n\r\n"
        "{\"error\":\"too many connections from this address\"}\n";
    rc_metrics.handshakes_refused[RC_REFUSED_PER_IP]++;
    if (!g->tls && send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        RC_DEBUG("gateway", "429 not sent", "error=\"%s\"", strerror(errno));
    close(fd);
}

static ip_entry_t *ip_acquire(rc_gateway_t *g, const struct sockaddr_storage *sa)
{
    char key[16];
    uint8_t len = peer_key(sa, key);
    uint64_t v;
    if (rc_strmap_get(&g->conns_by_ip, key, len, &v))
        return (ip_entry_t *)(uintptr_t)v;
    ip_entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    memcpy(e->addr, key, len);
    e->len = len;
    if (rc_strmap_put(&g->conns_by_ip, e->addr, len, (uint64_t)(uintptr_t)e) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

static void accept_one(rc_gateway_t *g, int fd, const struct sockaddr_storage *sa)
{
    ip_entry_t *e = ip_acquire(g, sa);
    if (e == NULL) {
        close(fd);
        return;
    }
    if (g->cfg->max_conns_per_ip > 0 && e->count >= (uint64_t)g->cfg->max_conns_per_ip) {
        e->count++; /* so the release below frees a fresh entry */
        ip_release(g, e);
        refuse_per_ip(g, fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct lws *wsi = lws_adopt_socket_vhost(g->vhost, fd);
    if (wsi == NULL) {
        /* lws refused it (out of memory, or TLS failed on bytes already there) and closes the
         * descriptor itself, with libuv after this turn of the loop. Closing it here too would
         * free its number for the next accept, and lws's close would then end that connection
         * behind libuv's back (libuv aborts on the EBADF). */
        e->count++;
        ip_release(g, e);
        return;
    }
    e->count++;
    lws_set_opaque_user_data(wsi, e);
}

static void on_listener_readable(uv_poll_t *h, int status, int events)
{
    rc_gateway_t *g = h->data;
    (void)events;
    if (status < 0)
        return;
    /* A bounded batch per turn, so a connection storm cannot hold the loop. */
    for (int i = 0; i < 256 && g->accepting; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd =
            accept4(g->listen_fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                RC_WARN("gateway", "accept failed", "error=\"%s\"", strerror(errno));
            return;
        }
        accept_one(g, fd, &sa);
    }
}

static void close_listener(rc_gateway_t *g)
{
    if (g->listen_fd < 0)
        return;
    uv_poll_stop(&g->listen_poll);
    uv_close((uv_handle_t *)&g->listen_poll, NULL);
    close(g->listen_fd);
    g->listen_fd = -1;
}

rc_gateway_t *rc_gateway_new(uv_loop_t *loop, const rc_config_t *cfg, rc_sessions_t *sessions,
                             const rc_gateway_hooks_t *hooks, bool *loop_unusable, char *err,
                             size_t errlen)
{
    int listen_fd, port;
    *loop_unusable = false;
    bool tls = cfg->tls_cert[0] != '\0' || cfg->tls_key[0] != '\0';
    if (tls && check_tls_files(cfg->tls_cert, cfg->tls_key, err, errlen) != 0)
        return NULL;
    if (open_listener(cfg, &listen_fd, &port, err, errlen) != 0)
        return NULL;
    struct lws_context_creation_info info;
    void *foreign[1] = {loop};
    rc_gateway_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        close(listen_fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->listen_fd = listen_fd;
    g->port = port;
    g->cfg = cfg;
    g->sessions = sessions;
    g->hooks = hooks;
    g->accepting = true;
    g->tls = tls;
    rc_strmap_init(&g->conns_by_ip);
    rc_list_init(&g->flush);
    rc_wbuf_init(&g->gather, LWS_PRE);
    rc_wbuf_init(&g->deflated, 0);
    if (cfg->ws_deflate && (g->deflater = rc_deflater_new(DEFLATE_LEVEL)) == NULL) {
        close(listen_fd);
        free(g);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    memset(&mounts[0], 0, sizeof(mounts[0]));
    mounts[0].mountpoint = "/";
    mounts[0].mountpoint_len = 1;
    mounts[0].origin = cfg->web_root;
    mounts[0].def = "index.html";
    mounts[0].origin_protocol = LWSMPRO_FILE;
    mounts[0].extra_mimetypes = &mime_json;
    set_route(&mounts[1], &mounts[0], "/healthz");
    set_route(&mounts[2], &mounts[1], "/readyz");
    set_route(&mounts[3], &mounts[2], "/metrics");
    set_route(&mounts[4], &mounts[3], "/api");
    if (hooks->ops != NULL)
        rc_ops_protocol(hooks->ops, &protocols[4]);
    else
        memset(&protocols[4], 0, sizeof(protocols[4])); /* ends the list */

    /* The receive buffer is most of an idle connection's memory; messages larger than it
     * arrive in several callbacks and are reassembled in ws_receive(). */
    protocols[2].rx_buffer_size = protocols[3].rx_buffer_size = (size_t)cfg->rx_buffer_bytes;
    /* Without it lws sends at most rx_buffer_size bytes per send(): a list longer than the
     * (small) receive buffer would go out in several loop turns. */
    protocols[2].tx_packet_size = protocols[3].tx_packet_size = 1u << 20;
    lws_set_log_level(LLL_ERR | LLL_WARN, log_emit);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = foreign;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we accept; lws serves */
    info.protocols = protocols;
    info.pvo = &pvo;
    info.mounts = mount_sdk(cfg, &mounts[4]);
    if (cfg->ws_deflate)
        info.extensions = deflate_extension;
    info.user = g;
    info.pcontext = &g->ctx; /* lws writes NULL here once the context is really freed */
    info.vhost_name = "rankcast";
    info.timeout_secs = 10;
    info.pt_serv_buf_size = 16384;
    if (g->tls) {
        /* TLS 1.2 and 1.3 only; for 1.2, forward-secret AEAD suites only (Mozilla's
         * "intermediate" list). No client-initiated renegotiation (a CPU sink). */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.ssl_cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                               "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                               "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
        info.ssl_options_set =
            (long)(SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_RENEGOTIATION);
    }
    g->ctx = lws_create_context(&info);
    if (g->ctx == NULL) {
        snprintf(err, errlen, "libwebsockets could not start");
        close(listen_fd);
        rc_deflater_free(g->deflater);
        free(g);
        *loop_unusable = true;
        return NULL;
    }
    g->vhost = lws_get_vhost_by_name(g->ctx, "rankcast");
    uv_check_init(loop, &g->flush_check);
    g->flush_check.data = g;
    uv_check_start(&g->flush_check, on_flush_check);
    if (g->vhost != NULL && uv_poll_init(loop, &g->listen_poll, listen_fd) == 0) {
        g->listen_poll.data = g;
        uv_poll_start(&g->listen_poll, UV_READABLE, on_listener_readable);
    } else {
        g->port = -1; /* the caller sees a gateway that listens nowhere and closes it */
        close(listen_fd);
        g->listen_fd = -1;
    }
    return g;
}

int rc_gateway_port(const rc_gateway_t *g)
{
    return g->port > 0 ? g->port : -1;
}

/* Draining: the listening socket closes, so new connections go to the other workers or
 * nodes on this port (or are refused); the connections already here are served. */
void rc_gateway_stop_accepting(rc_gateway_t *g)
{
    g->accepting = false;
    close_listener(g);
}

void rc_gateway_close(rc_gateway_t *g)
{
    if (g == NULL)
        return;
    close_listener(g);
    if (!uv_is_closing((uv_handle_t *)&g->flush_check)) {
        uv_check_stop(&g->flush_check);
        uv_close((uv_handle_t *)&g->flush_check, NULL);
    }
    if (g->ctx != NULL && !g->closing) {
        g->closing = true;
        lws_context_destroy(g->ctx);
    }
}

/* On a foreign libuv loop, lws 4.1.6 finishes a context only when lws_context_destroy() is
 * called again after its handles have closed (its own close callbacks never do it), and
 * sets the pointer registered as info.pcontext to NULL when it has. */
void rc_gateway_free(rc_gateway_t *g)
{
    if (g == NULL)
        return;
    if (g->ctx != NULL)
        lws_context_destroy(g->ctx);
    if (g->ctx != NULL)
        RC_WARN("gateway", "libwebsockets context not fully destroyed", NULL);
    /* Entries of connections lws never reported destroyed (a context not fully gone). */
    for (size_t i = 0; i < g->conns_by_ip.cap; i++)
        if (g->conns_by_ip.slots[i].hash != 0)
            free((void *)(uintptr_t)g->conns_by_ip.slots[i].value);
    rc_strmap_free(&g->conns_by_ip);
    rc_wbuf_free(&g->gather);
    rc_wbuf_free(&g->deflated);
    rc_deflater_free(g->deflater);
    free(g);
}

/* New connections use the new pair; connections already open keep the one they
 * negotiated with (an SSL object holds its own reference to its certificate). */
int rc_gateway_reload_tls(rc_gateway_t *g)
{
    char err[512];
    if (!g->tls || g->ctx == NULL)
        return 0;
    if (check_tls_files(g->cfg->tls_cert, g->cfg->tls_key, err, sizeof(err)) != 0 ||
        lws_tls_cert_updated(g->ctx, g->cfg->tls_cert, g->cfg->tls_key, NULL, 0, NULL, 0) != 0) {
        rc_metrics.tls_reload_failures++;
        RC_WARN("gateway", "TLS reload refused; the current certificate stays", "error=\"%s\"",
                err);
        return RC_EINVAL;
    }
    rc_metrics.tls_reloads++;
    RC_INFO("gateway", "TLS certificate reloaded", "cert=\"%s\"", g->cfg->tls_cert);
    return 0;
}
