/* SPDX-License-Identifier: Apache-2.0 */
/* libwebsockets glue of the client: the context, connection attempts, the timers, and one
 * small function per callback reason. Frames are written only from the WRITEABLE callback,
 * one per callback; rcc_conn_want_write() asks for the next one. */
#include "client_int.h"
#include "wire.h"

#include <openssl/ssl.h>
#include <string.h>

static rcc_client_t *client_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- connection attempts ---- */

static void connect_now(lws_sorted_usec_list_t *sul)
{
    rcc_client_t *c = lws_container_of(sul, rcc_client_t, sul_connect);
    struct lws_client_connect_info i;
    if (c->stopped || c->conn_live)
        return;
    memset(&i, 0, sizeof(i));
    i.context = c->ctx;
    i.address = c->host;
    i.port = c->port;
    i.path = c->path;
    i.host = c->host_header;
    i.origin = c->host_header;
    i.protocol = rcc_wire_subprotocol(c->format); /* the one subprotocol offered */
    i.local_protocol_name = "rankcast-client";
    i.pwsi = &c->wsi;
    i.retry_and_idle_policy = &c->idle_policy;
    if (c->tls) {
        i.ssl_connection = LCCSCF_USE_SSL;
        if (c->tls_insecure)
            i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    c->conn_live = true;
    c->peer_close_code = c->fatal_code = 0;
    rcc_client_set_state(c, RCC_STATE_CONNECTING, 0);
    /* A failure inside the call returns NULL without a CONNECTION_ERROR callback. */
    if (lws_client_connect_via_info(&i) == NULL && c->conn_live) {
        rcc_client_report(c, RCC_ECONNECT, "the connection could not be started", NULL);
        rcc_incoming_conn_lost(c, RCC_ECONNECT);
    }
}

void rcc_conn_schedule_connect(rcc_client_t *c, int64_t delay_ms)
{
    lws_sul_schedule(c->ctx, 0, &c->sul_connect, connect_now, delay_ms * LWS_US_PER_MS);
}

void rcc_conn_want_write(rcc_client_t *c)
{
    if (c->wsi != NULL && c->established)
        lws_callback_on_writable(c->wsi);
}

void rcc_conn_drop(rcc_client_t *c)
{
    if (c->wsi == NULL)
        return;
    if (c->established) {
        c->close_pending = true;
        lws_callback_on_writable(c->wsi);
    } else {
        /* No WebSocket yet: abandon the attempt; CONNECTION_ERROR or CLOSED follows. */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

void rcc_conn_abandon(rcc_client_t *c)
{
    if (c->wsi != NULL)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* ---- timers ---- */

static void tick(lws_sorted_usec_list_t *sul)
{
    rcc_client_t *c = lws_container_of(sul, rcc_client_t, sul_tick);
    rcc_conn_plan_tick(c);
    if (c->welcomed && rcc_outgoing_pending(c))
        rcc_conn_want_write(c);
}

void rcc_conn_plan_tick(rcc_client_t *c)
{
    int64_t now_us = rcc_mono_us();
    int64_t next_us = rcc_evq_promote(&c->evq, now_us, c->ack_timeout_us);
    if (c->welcomed && c->evq.ready > 0) {
        int64_t wait_us = rcc_outgoing_us_until_token(c, now_us);
        if (wait_us > 0) {
            /* Wake when the bucket holds a whole token again. */
            if (next_us == 0 || now_us + wait_us < next_us)
                next_us = now_us + wait_us;
        } else {
            rcc_conn_want_write(c);
        }
    }
    if (!c->welcomed || next_us == 0) {
        lws_sul_cancel(&c->sul_tick);
        return;
    }
    lws_sul_schedule(c->ctx, 0, &c->sul_tick, tick, next_us - now_us);
}

static void drain_due(lws_sorted_usec_list_t *sul)
{
    rcc_client_t *c = lws_container_of(sul, rcc_client_t, sul_drain);
    rcc_conn_drop(c); /* the server has not closed yet: leave now, reconnect at once */
}

void rcc_conn_plan_drain(rcc_client_t *c, int64_t deadline_us)
{
    int64_t now_us = rcc_mono_us();
    c->drain_deadline_us = deadline_us;
    lws_sul_schedule(c->ctx, 0, &c->sul_drain, drain_due,
                     deadline_us > now_us ? deadline_us - now_us : 0);
}

/* ---- callback reasons ---- */

static int on_connection_error(rcc_client_t *c, struct lws *wsi, const char *why)
{
    if (wsi != c->wsi)
        return 0;
    rcc_client_report(c, RCC_ECONNECT, why ? why : "connection failed", NULL);
    rcc_incoming_conn_lost(c, RCC_ECONNECT);
    return 0;
}

static int on_established(rcc_client_t *c, struct lws *wsi)
{
    if (wsi != c->wsi)
        return -1;
    c->established = true;
    rcc_buf_reset(&c->rx);
    /* A peer that upgrades but never says welcome (not a rankcast server, or a stuck one)
     * would otherwise hold the client here; lws closes the connection at the deadline and
     * the client reconnects. rcc_conn_welcomed() lifts it. */
    lws_set_timeout(wsi, (enum pending_timeout)RCC_WELCOME_TIMEOUT_REASON, RCC_WELCOME_TIMEOUT_S);
    lws_callback_on_writable(wsi); /* hello */
    return 0;
}

void rcc_conn_welcomed(rcc_client_t *c)
{
    if (c->wsi != NULL)
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
}

static int on_receive(rcc_client_t *c, struct lws *wsi, const void *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi) && c->rx.len == 0;
    bool last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (wsi != c->wsi || c->close_pending)
        return 0;
    if (first)
        c->rx_binary = lws_frame_is_binary(wsi);
    if (first && last) {
        rcc_incoming_message(c, in, len, c->rx_binary);
        return 0;
    }
    if (c->rx.len + len > RCC_RX_MAX_BYTES) {
        rcc_client_report(c, RCC_ETOOBIG, "the server sent a message over 8 MiB", NULL);
        rcc_buf_free(&c->rx);
        rcc_conn_drop(c);
        return 0;
    }
    if (rcc_buf_append(&c->rx, in, len) != 0)
        return -1;
    if (last) {
        rcc_incoming_message(c, rcc_buf_data(&c->rx), c->rx.len, c->rx_binary);
        rcc_buf_reset(&c->rx);
    }
    return 0;
}

static int on_writeable(rcc_client_t *c, struct lws *wsi)
{
    if (wsi != c->wsi)
        return -1;
    if (c->close_pending) {
        /* Returning non-zero after lws_close_reason() makes lws send the close frame. */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
        return -1;
    }
    int rc = rcc_outgoing_next(c);
    if (rc < 0) {
        /* Out of memory while encoding: asking again would spin. Drop the connection; the
         * next one starts afresh after a backoff (nothing queued is lost). */
        rcc_client_report(c, rc, "a message could not be encoded", NULL);
        return -1;
    }
    if (rc == 1) {
        enum lws_write_protocol kind =
            c->format == RCC_FORMAT_MSGPACK ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
        if (lws_write(wsi, rcc_buf_data(&c->tx), c->tx.len, kind) < (int)c->tx.len)
            return -1;
    }
    if (rcc_outgoing_pending(c))
        lws_callback_on_writable(wsi);
    else
        rcc_conn_plan_tick(c);
    return 0;
}

static void on_peer_close(rcc_client_t *c, struct lws *wsi, const unsigned char *in, size_t len)
{
    if (wsi == c->wsi && len >= 2)
        c->peer_close_code = (in[0] << 8) | in[1];
}

static int on_closed(rcc_client_t *c, struct lws *wsi)
{
    /* The reason reported: the peer's close code, 1000 for a close of ours, else 1006
     * (the connection dropped without a close frame). */
    int code = c->peer_close_code ? c->peer_close_code : c->close_pending ? 1000 : 1006;
    if (wsi == c->wsi)
        rcc_incoming_conn_lost(c, code);
    return 0;
}

/* The client's SSL_CTX is being made. Without a ca_file, trust what the system trusts:
 * OpenSSL's default store (its CA file and directory, e.g. /etc/ssl/certs on Debian, or
 * SSL_CERT_FILE / SSL_CERT_DIR when set), rather than only libwebsockets' compile-time path. */
static int on_load_client_verify_certs(rcc_client_t *c, void *ssl_ctx)
{
    if (c->ca_file == NULL && ssl_ctx != NULL && SSL_CTX_set_default_verify_paths(ssl_ctx) != 1)
        lwsl_warn("rankcast client: the system's trust store could not be loaded\n");
    return 0;
}

static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    rcc_client_t *c = client_of(wsi);
    if (c == NULL)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        return on_connection_error(c, wsi, in);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        return on_established(c, wsi);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        on_peer_close(c, wsi, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        return on_closed(c, wsi);
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS:
        return on_load_client_verify_certs(c, user);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"rankcast-client", client_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* 4.1.6 has no LWS_PROTOCOL_LIST_TERM */
};

/* ---- context ---- */

int rcc_conn_create_context(rcc_client_t *c, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = c;
    /* One connection at a time, plus lws's own event pipe: a few fds are enough, and the
     * per-context tables stay small (lws sizes them by this, not by the process limit). */
    info.fd_limit_per_thread = 8;
    info.timeout_secs = 10;
    info.connect_timeout_secs = 10;
    if (c->tls) {
        /* The trust store is ours to choose, whatever libwebsockets was built with: its own
         * loading of the OS store is off, and on_load_client_verify_certs() loads it only
         * when no ca_file is given (a ca_file is trusted instead of the system store). */
        info.options |=
            LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
        info.client_ssl_ca_filepath = c->ca_file;
    }
    c->ctx = lws_create_context(&info);
    if (c->ctx == NULL) {
        snprintf(err, errlen, "libwebsockets could not start%s",
                 c->ca_file ? " (is ca_file a readable PEM file?)" : "");
        return RCC_EIO;
    }
    return 0;
}
