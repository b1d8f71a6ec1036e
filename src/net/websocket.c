/* SPDX-License-Identifier: Apache-2.0 */
/* The WebSocket side of the gateway, libwebsockets glue for the session subprotocols: each
 * callback reason dispatches to one small function. Frames are written at the end of the loop
 * turn that made them (or from WRITEABLE once the socket was full), several in one send; the
 * session module asks for that through rc_gateway_transport_ops. */
#include "net/gateway_int.h"
#include "proto/json_read.h"
#include "proto/proto.h"
#include "session/outbox.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <libwebsockets.h>
#include <string.h>

_Static_assert(LWS_PRE <= RC_FRAME_HEADROOM, "frames need LWS_PRE bytes of headroom");

/* ---- transport ops for the session module ---- */

/* Every WRITEABLE callback we ask for is asked through here; one we did not ask for is lws
 * telling us it wrote something of its own, which for an open connection is the pong to a
 * client's ping: lws 4.1.6 answers pings itself, never shows them to the protocol, and leaves
 * POLLOUT on after the pong, which reaches us as an unasked WRITEABLE on the next turn. That
 * is the only trace a ping leaves, and it is what ws_writeable() counts. (lws answers one
 * ping per turn and drops those that arrive while a pong waits, so counting pongs counts the
 * pings that cost a write.) */
static void want_writeable(struct lws *wsi, rc_gw_ws_pss_t *pss)
{
    if (pss != NULL)
        pss->writeable_asked = true;
    lws_callback_on_writable(wsi);
}

/* Frames made during a loop turn are written when lws moves on to another connection's
 * messages (flush_received) or at the end of the turn (rc_gw_on_flush_check), straight to the
 * socket: no POLLOUT round trip (three epoll_ctl and a loop turn per write in lws on
 * libuv) unless the kernel's buffer is full. */
static void transport_want_write(void *transport)
{
    struct lws *wsi = transport;
    rc_gw_ws_pss_t *pss = lws_wsi_user(wsi);
    rc_gateway_t *g = rc_gw_of(wsi);
    if (pss == NULL || pss->conn == NULL) {
        want_writeable(wsi, pss);
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
    rc_gw_ws_pss_t *pss = lws_wsi_user(wsi);
    if (pss != NULL) {
        pss->ping_due = true;
        transport_want_write(wsi);
    }
}

const rc_transport_ops_t rc_gateway_transport_ops = {transport_want_write, transport_kill,
                                                     transport_ping};

/* ---- WebSocket ---- */

static rc_format_t format_of(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    return p && strcmp(p->name, "rankcast.v1.msgpack") == 0 ? RC_FMT_MSGPACK : RC_FMT_JSON;
}

/* Whether lws accepted this client's permessage-deflate offer (lws_set_extension_option()
 * fails when the extension is not active on the connection; the level it sets is lws's own
 * compressor's, which our frames never go through), and if so the window our messages may
 * use, from the offer (still readable: lws detaches the headers after ESTABLISHED). */
static void deflate_negotiated(rc_gateway_t *g, struct lws *wsi, rc_gw_ws_pss_t *pss)
{
    char offer[512];
    pss->inflating = g->inflater != NULL && lws_set_extension_option(wsi, "permessage-deflate",
                                                                     "compression_level", "1") == 0;
    if (pss->inflating && lws_hdr_copy(wsi, offer, sizeof(offer), WSI_TOKEN_EXTENSIONS) > 0)
        pss->deflate_bits = (uint8_t)rc_deflate_offer_window_bits(offer);
}

static int ws_established(struct lws *wsi, rc_gw_ws_pss_t *pss)
{
    rc_gateway_t *g = rc_gw_of(wsi);
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
static void start_close(struct lws *wsi, rc_gw_ws_pss_t *pss, int code, const char *reason);

/* ---- permessage-deflate, received ---- */

/* lws 4.1.6's own permessage-deflate is not used for what clients send: its inflater aborts
 * the whole process on an assertion that eight crafted bytes reach (tests/integration/
 * deflate.test.mjs), keeps a zlib stream per connection, and goes on inflating a message the
 * server has already refused. This extension only takes part in the negotiation: lws hands
 * over each payload as it came, and complete messages are inflated in ws_message(), bounded
 * by the message size limit. PMD_PASS_THROUGH is lws 4.1.6's PMDR_NOTHING_WE_SHOULD_DO (from
 * a private header): "deliver the payload as it is". */
#define PMD_PASS_THROUGH 5
static const struct lws_ext_options deflate_options[] = {
    {"server_no_context_takeover", EXTARG_NONE},
    {"client_no_context_takeover", EXTARG_NONE},
    {"server_max_window_bits", EXTARG_OPT_DEC},
    {"client_max_window_bits", EXTARG_OPT_DEC},
    {NULL, EXTARG_NONE},
};

int rc_gw_deflate_extension(struct lws_context *ctx, const struct lws_extension *ext,
                            struct lws *wsi, enum lws_extension_callback_reasons reason, void *user,
                            void *in, size_t len)
{
    (void)ctx, (void)ext, (void)wsi, (void)user, (void)len;
    switch (reason) {
    case LWS_EXT_CB_CONSTRUCT: /* no per-connection state: `user` stays NULL */
        if (in != NULL)
            *(const struct lws_ext_options **)in = deflate_options;
        return 0;
    case LWS_EXT_CB_PAYLOAD_RX:
        return PMD_PASS_THROUGH;
    default: /* options accepted; PAYLOAD_TX leaves the payload as it is */
        return 0;
    }
}

/* Our answer to the offer tells the client to compress each message on its own
 * (client_no_context_takeover, which RFC 7692 section 7.1.1.1 lets a server add): one shared
 * inflater then serves every connection. lws has written the accepted extension as the last
 * header line; this reopens that line to add the parameter. */
#define NO_CLIENT_TAKEOVER "; client_no_context_takeover"
static int ws_add_headers(struct lws_process_html_args *args)
{
    static const char line[] = "\nSec-WebSocket-Extensions: permessage-deflate";
    char *end = args->p - 2, *start = end;
    if (end[0] != '\r' || end[1] != '\n')
        return 0;
    while (start[-1] != '\n')
        start--;
    start--;
    if (strncmp(start, line, sizeof(line) - 1) != 0 ||
        memmem(start, (size_t)(end - start), "client_no_context_takeover", 26) != NULL ||
        args->max_len < (int)sizeof(NO_CLIENT_TAKEOVER))
        return 0;
    memcpy(end, NO_CLIENT_TAKEOVER "\r\n", sizeof(NO_CLIENT_TAKEOVER) + 1);
    args->p = end + sizeof(NO_CLIENT_TAKEOVER) + 1;
    args->max_len -= (int)sizeof(NO_CLIENT_TAKEOVER) - 1;
    return 0;
}

/* Whether a text message is UTF-8 (RFC 6455 section 8.1); ASCII goes eight bytes a step. */
static bool valid_utf8(const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    while (p < end) {
        uint64_t w;
        while (end - p >= 8 && (memcpy(&w, p, 8), (w & 0x8080808080808080ull) == 0))
            p += 8;
        if (p == end)
            break;
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = rc_utf8_sequence(p, end);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* A whole message has arrived: inflated if it came compressed, its text checked, then handed
 * to the session; a message refused here closes the connection in order. Returns 0. */
static int ws_message(struct lws *wsi, rc_gw_ws_pss_t *pss, const void *in, size_t len)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    if (pss->rx_compressed) {
        long n = rc_inflate_message(g->inflater, in, len, (size_t)g->cfg->max_message_bytes,
                                    &g->inflated);
        if (n == RC_EFULL) {
            pss->refused = true;
            rc_conn_refuse(pss->conn, RC_PERR_TOO_LARGE, "message larger than max_message_bytes",
                           true);
            return 0;
        }
        if (n < 0) { /* RFC 7692 section 8: invalid compressed data fails the connection */
            pss->refused = true;
            start_close(wsi, pss, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid compressed data");
            return 0;
        }
        in = rc_wbuf_data(&g->inflated);
        len = (size_t)n;
    }
    if (!pss->rx_binary && !valid_utf8(in, len)) {
        pss->refused = true;
        start_close(wsi, pss, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8");
        return 0;
    }
    rc_conn_receive(pss->conn, in, len, pss->rx_binary, pss->rx_t0_us);
    return 0;
}

/* One part of a message: a frame, or as much of one as the receive buffer holds. Refused
 * input is dropped unread, compressed or not: the close it caused costs nothing more. */
static int ws_receive(struct lws *wsi, rc_gw_ws_pss_t *pss, const void *in, size_t len)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    bool first = lws_is_first_fragment(wsi) && pss->rx.len == 0;
    bool last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    bool rsv1 = (lws_get_reserved_bits(wsi) & 0x40) != 0;
    bool new_frame = !pss->rx_frame_open;
    pss->rx_frame_open = lws_remaining_packet_payload(wsi) != 0;

    if (g->receiving != pss) {
        flush_received(g);
        g->receiving = pss;
    }
    if (pss->conn == NULL || pss->refused || pss->closing)
        return 0;
    if (first) {
        pss->rx_t0_us = rc_mono_us();
        pss->rx_binary = lws_frame_is_binary(wsi);
        pss->rx_compressed = rsv1 && pss->inflating;
    } else if (rsv1 && new_frame) {
        /* RSV1 marks the first frame of a compressed message only (RFC 7692 section 6) */
        pss->refused = true;
        start_close(wsi, pss, LWS_CLOSE_STATUS_PROTOCOL_ERR, "RSV1 on a continuation frame");
        return 0;
    }
    if (pss->rx.len + len > (size_t)g->cfg->max_message_bytes) {
        /* Refuse before buffering: a client cannot make the server hold more than the
         * limit for it. The error goes out, then the close (1009). */
        pss->refused = true;
        rc_wbuf_free(&pss->rx);
        rc_conn_refuse(pss->conn, RC_PERR_TOO_LARGE, "message larger than max_message_bytes", true);
        return 0;
    }
    if (first && last)
        return ws_message(wsi, pss, in, len);
    rc_wbuf_put(&pss->rx, in, len);
    if (rc_wbuf_ok(&pss->rx) != 0)
        return -1;
    if (!last)
        return 0;
    int rc = ws_message(wsi, pss, rc_wbuf_data(&pss->rx), pss->rx.len);
    /* Freed, not kept: the large messages are rare (a hello with a token, a batch), and an
     * idle connection should not hold the largest one it ever sent. */
    rc_wbuf_free(&pss->rx);
    return rc;
}

/* Starts the WebSocket close handshake with our code. In lws 4.1.6 a -1 returned from a
 * WRITEABLE callback, and every timeout but one, kill the socket without a close frame, so
 * the client would see 1006 instead of the code PROTOCOL.md promises. A close scheduled by
 * the keep-alive-idle timeout is the exception: lws then sends the reason set here, waits
 * (at most 5 s) for the client's close, and shuts the socket down in order. */
static void start_close(struct lws *wsi, rc_gw_ws_pss_t *pss, int code, const char *reason)
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
static void gather_frame(rc_gateway_t *g, const rc_gw_ws_pss_t *pss, rc_frame_t *f)
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
static int write_frames(rc_gateway_t *g, rc_gw_ws_pss_t *pss, rc_frame_t **frames, int n)
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

static int ws_flush(struct lws *wsi, rc_gw_ws_pss_t *pss)
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
    int rc = n > 0 ? write_frames(rc_gw_of(wsi), pss, frames, n) : 0;
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
        want_writeable(wsi, pss);
        return 0;
    }
    int code = rc_conn_close_code(pss->conn, &reason);
    if (code != 0 && !pss->closing)
        start_close(wsi, pss, code, reason);
    return 0;
}

static int ws_writeable(struct lws *wsi, rc_gw_ws_pss_t *pss)
{
    if (pss->wsi == NULL) /* not established (see ws_closed) */
        return 0;
    if (!pss->writeable_asked && pss->conn != NULL && !pss->closing)
        rc_conn_ws_ping(pss->conn, rc_mono_us()); /* see want_writeable() */
    pss->writeable_asked = false;
    rc_list_unlink(&pss->flush_link);
    return ws_flush(wsi, pss);
}

/* Writes a connection's queued frames outside lws's WRITEABLE callback. */
static void flush_queued(rc_gw_ws_pss_t *pss)
{
    rc_list_unlink(&pss->flush_link);
    if (ws_flush(pss->wsi, pss) < 0)
        transport_kill(pss->wsi);
}

/* Writes the frames of the connection whose messages lws handed over last, now that it has
 * moved on to another. In a loop turn that brings many events, the first event's ack and list
 * would otherwise wait until every later event of the turn was ranked (rc_gw_on_flush_check): at
 * 5,000 events/s that wait made most of the server's share of the latency. Acks come from the
 * bus's completions, so the bus settles first: ack and list still leave in one send(). */
static void flush_received(rc_gateway_t *g)
{
    rc_gw_ws_pss_t *pss = g->receiving;
    g->receiving = NULL;
    if (pss == NULL || !rc_list_linked(&pss->flush_link))
        return;
    rc_sessions_settle(g->sessions);
    flush_queued(pss);
}

void rc_gw_on_flush_check(uv_check_t *h)
{
    rc_gateway_t *g = h->data;
    g->receiving = NULL;
    while (!rc_list_empty(&g->flush))
        flush_queued(RC_CONTAINER_OF(g->flush.next, rc_gw_ws_pss_t, flush_link));
}

/* The client's close frame (RFC 6455 section 5.5.1, 7.4). lws 4.1.6 answers codes below 1000
 * and 1004-2999 but those it knows as assigned with 1002 itself, and echoes everything else:
 * codes of 5000 and above (65535 included), a 1-byte payload (a code cut in half) and a reason
 * that is not UTF-8. Those fail the connection here: 1002 for the frame, 1007 for the reason.
 * Returning nonzero stops lws's echo; the reason set here is what it sends instead. */
static int ws_peer_close(struct lws *wsi, rc_gw_ws_pss_t *pss, const unsigned char *in, size_t len)
{
    int code = 0;
    const char *why = NULL;
    unsigned status = len >= 2 ? (unsigned)in[0] << 8 | in[1] : 0;
    if (len == 1 || (len >= 2 && (status < 1000 || status >= 5000))) {
        code = LWS_CLOSE_STATUS_PROTOCOL_ERR;
        why = "invalid close frame";
    } else if (len > 2 && !valid_utf8(in + 2, len - 2)) {
        code = LWS_CLOSE_STATUS_INVALID_PAYLOAD;
        why = "close reason is not UTF-8";
    }
    if (code == 0)
        return 0;
    RC_DEBUG("gateway", "close frame refused", "code=%d len=%zu", code, len);
    pss->closing = true;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
    return -1;
}

/* lws also reports the close of a connection whose upgrade failed after the protocol was
 * bound (the 101 could not be written: the peer reset it), with the state it zeroed and
 * ESTABLISHED never called. */
static void ws_closed(rc_gw_ws_pss_t *pss)
{
    if (pss->wsi == NULL)
        return;
    rc_gateway_t *g = rc_gw_of(pss->wsi);
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

int rc_gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    rc_gw_ws_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Adopted sockets start bound to the default protocol (JSON), so the gate is asked
         * here as well as in root_callback. */
        return rc_gw_confirm_upgrade(wsi, in);
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        /* Likewise for a plain request's first one on a connection (later ones on a kept-alive
         * connection reach root_callback). */
        return rc_gw_http_filter(wsi);
    case LWS_CALLBACK_ADD_HEADERS:
        return ws_add_headers(in);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return ws_receive(wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(wsi, pss);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return ws_peer_close(wsi, pss, in, len);
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
