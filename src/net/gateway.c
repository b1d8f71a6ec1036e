/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway: one libwebsockets context on the node's libuv loop, its protocol table (files,
 * the HTTP routes, the two session subprotocols, the ops feed), the upgrade gate every
 * WebSocket passes, TLS, and the wiring of listener.c, websocket.c and http.c. */
#include "net/gateway_int.h"
#include "net/ops.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the upgrade gate ---- */

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
int rc_gw_confirm_upgrade(struct lws *wsi, const char *upgrade)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    char buf[RC_JWT_MAX_LEN + 8];
    g->claims_wsi = NULL;
    if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0)
        return 0;
    const char *why;
    unsigned status = rc_gw_upgrade_framing(wsi, &why);
    if (status != 0)
        return refuse_upgrade(wsi, status, RC_REFUSED_FRAMING, why);
    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_GET_URI) <= 0)
        buf[0] = '\0';
    /* The ops feed (/ops) checks its own credential in its first message (ops.h). */
    bool ops = strcmp(buf, "/ops") == 0 && g->hooks->ops != NULL;
    if (strcmp(buf, "/ws") != 0 && !ops)
        return refuse_upgrade(wsi, HTTP_STATUS_NOT_FOUND, RC_REFUSED_PATH,
                              "WebSocket sessions live on /ws");
    if (!g->accepting)
        return refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, RC_REFUSED_DRAINING,
                              "draining: connect to another node");
    if (g->warming)
        return refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, RC_REFUSED_WARMING,
                              "warming: the node is reading its event log back; retry shortly");
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

/* protocols[0]: lws's file serving, plus the upgrade gate and the end of every wsi. */
static int root_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return rc_gw_confirm_upgrade(wsi, in);
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return rc_gw_http_filter(wsi);
    case LWS_CALLBACK_WSI_DESTROY:
        if (rc_gw_of(wsi)->claims_wsi == wsi) /* its upgrade never completed */
            rc_gw_of(wsi)->claims_wsi = NULL;
        rc_gw_ip_release(rc_gw_of(wsi), lws_get_opaque_user_data(wsi));
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* protocols[0] serves files; "rc-http" the dynamic routes; [4] is the ops feed when there is
 * one (else it ends the list). Each gateway copies it: the WebSocket entries get their
 * receive buffer size from the settings, and the feed its state. */
static const struct lws_protocols protocol_table[6] = {
    {"http", root_callback, 0, 0, 0, NULL, 0},
    {"rc-http", rc_gw_http_callback, sizeof(rc_gw_http_pss_t), 0, 0, NULL, 0},
    {"rankcast.v1.msgpack", rc_gw_ws_callback, sizeof(rc_gw_ws_pss_t), 0, 0, NULL, 0},
    {"rankcast.v1.json", rc_gw_ws_callback, sizeof(rc_gw_ws_pss_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* permessage-deflate, with --ws-deflate: lws negotiates it (rc_gw_deflate_extension); the
 * gateway compresses ours and inflates the clients' messages (wsdeflate.h). zlib level 1: lists
 * are small, and higher levels cost CPU for a few percent of bytes. */
#define DEFLATE_LEVEL 1
static const struct lws_extension deflate_extension[] = {
    {"permessage-deflate", rc_gw_deflate_extension, "permessage-deflate"},
    {NULL, NULL, NULL},
};

/* A client that offers no subprotocol gets JSON (PROTOCOL.md section 1). */
static const struct lws_protocol_vhost_options pvo_json_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_json_default, "rankcast.v1.json",
                                                      ""};

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

/* lws's log level and sink are process-wide: set once, whichever gateway starts first. */
static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;

static void set_lws_log(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, log_emit);
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

rc_gateway_t *rc_gateway_new(uv_loop_t *loop, const rc_config_t *cfg, rc_sessions_t *sessions,
                             const rc_gateway_hooks_t *hooks, bool *loop_unusable, char *err,
                             size_t errlen)
{
    int listen_fd, port;
    *loop_unusable = false;
    bool tls = cfg->tls_cert[0] != '\0' || cfg->tls_key[0] != '\0';
    if (tls && check_tls_files(cfg->tls_cert, cfg->tls_key, err, errlen) != 0)
        return NULL;
    if (rc_gw_listener_open(cfg, &listen_fd, &port, err, errlen) != 0)
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
    rc_list_init(&g->flush);
    rc_wbuf_init(&g->gather, LWS_PRE);
    rc_wbuf_init(&g->deflated, 0);
    rc_wbuf_init(&g->inflated, 0);
    const struct lws_http_mount *mounts = NULL;
    if ((cfg->ws_deflate && ((g->deflater = rc_deflater_new(DEFLATE_LEVEL)) == NULL ||
                             (g->inflater = rc_inflater_new()) == NULL)) ||
        (mounts = rc_gw_http_mounts(g)) == NULL || rc_gw_ips_new(g) != 0) {
        close(listen_fd);
        rc_gw_ips_free(g);
        rc_deflater_free(g->deflater);
        rc_inflater_free(g->inflater);
        free(g);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    struct lws_protocols *protocols = g->protocols;
    memcpy(protocols, protocol_table, sizeof(protocol_table));
    if (hooks->ops != NULL)
        rc_ops_protocol(hooks->ops, &protocols[4]);

    /* The receive buffer is most of an idle connection's memory; messages larger than it
     * arrive in several callbacks and are reassembled in ws_receive() (websocket.c). */
    protocols[2].rx_buffer_size = protocols[3].rx_buffer_size = (size_t)cfg->rx_buffer_bytes;
    /* Without it lws sends at most rx_buffer_size bytes per send(): a list longer than the
     * (small) receive buffer would go out in several loop turns. */
    protocols[2].tx_packet_size = protocols[3].tx_packet_size = 1u << 20;
    pthread_once(&lws_log_once, set_lws_log);
    memset(&info, 0, sizeof(info));
    /* Text messages are checked for UTF-8 whole, after inflating (ws_message()), not by lws,
     * which would check compressed bytes. */
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = foreign;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we accept; lws serves */
    info.protocols = protocols;
    info.pvo = &pvo;
    info.mounts = mounts;
    info.fops = &rc_gw_file_fops;
    if (cfg->ws_deflate)
        info.extensions = deflate_extension;
    info.user = g;
    info.pcontext = &g->ctx; /* lws writes NULL here once the context is really freed */
    info.vhost_name = "rankcast";
    info.timeout_secs = RC_GW_REQUEST_TIMEOUT_S;
    info.pt_serv_buf_size = 16384;
    /* Request headers up to RC_GW_HEADERS_MAX (issue S: a site's cookies, a long token in the
     * Authorization header) are served; up to RC_GW_HEADER_BUFFER they are read, so that a
     * larger request gets its 431 (rc_gw_http_filter); past it libwebsockets drops the
     * connection, having no hook to answer. The buffers are pooled per request being parsed,
     * not kept by an open WebSocket. */
    info.max_http_header_data = RC_GW_HEADER_BUFFER;
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
        rc_gw_ips_free(g);
        rc_deflater_free(g->deflater);
        rc_inflater_free(g->inflater);
        free(g);
        *loop_unusable = true;
        return NULL;
    }
    g->vhost = lws_get_vhost_by_name(g->ctx, "rankcast");
    uv_check_init(loop, &g->flush_check);
    g->flush_check.data = g;
    uv_check_start(&g->flush_check, rc_gw_on_flush_check);
    if (g->vhost == NULL || rc_gw_listener_start(g, loop) != 0) {
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

void rc_gateway_set_warming(rc_gateway_t *g, bool warming)
{
    g->warming = warming;
}

/* Draining: the listening socket closes, so new connections go to the other workers or
 * nodes on this port (or are refused); the connections already here are served. */
void rc_gateway_stop_accepting(rc_gateway_t *g)
{
    g->accepting = false;
    rc_gw_listener_close(g);
}

void rc_gateway_close(rc_gateway_t *g)
{
    if (g == NULL)
        return;
    rc_gw_listener_close(g);
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
    rc_gw_ips_free(g);
    rc_wbuf_free(&g->gather);
    rc_wbuf_free(&g->deflated);
    rc_deflater_free(g->deflater);
    rc_wbuf_free(&g->inflated);
    rc_inflater_free(g->inflater);
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
        RC_WARN("gateway", "TLS reload refused; the current certificate stays", "error=\"%s\"",
                err);
        return RC_EINVAL;
    }
    RC_INFO("gateway", "TLS certificate reloaded", "cert=\"%s\"", g->cfg->tls_cert);
    return 1;
}
