/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP side of the gateway: every request's framing (checked before it is routed), /healthz,
 * /readyz, /metrics, the admin API (a POST is checked, route, credential and length, before its
 * body is read under a deadline, then answered by its route in the owner's table,
 * api/router.h), and the mounts that serve the web root and the JavaScript SDK's sources. */
#include "net/gateway_int.h"
#include "api/admin_api.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- request framing ---- */

/* Behind a proxy, a request whose length two parties read differently smuggles a second
 * request past the first (RFC 9112 section 6.3, 11.2). libwebsockets 4.1.6 reads the first
 * Content-Length digits it can (atoll) and knows no chunked request bodies, so the gateway
 * refuses every ambiguity before lws acts on it: a Transfer-Encoding (411 alone, 400 with a
 * Content-Length), a Content-Length that is not one plain decimal number (400: two of them,
 * a list, a sign, junk), and a body anywhere but a POST to the admin API, the only place a
 * body is read (a POST elsewhere 404, a POST without a length 411, a body on another method
 * 400). Each such answer closes the connection: what follows on it cannot be trusted. */

#define CONTENT_LENGTH_DIGITS_MAX 18 /* fits int64_t */

typedef struct framing {
    unsigned status; /* 0: the framing is sound */
    const char *why;
    rc_http_refused_reason_t reason;
    int64_t content_length; /* -1: none */
} framing_t;

static bool framing_refuse(framing_t *f, unsigned status, rc_http_refused_reason_t reason,
                           const char *why)
{
    f->status = status;
    f->reason = reason;
    f->why = why;
    return false;
}

/* Reads the Content-Length: one header, digits only (lws drops the spaces before them). */
static bool read_content_length(struct lws *wsi, framing_t *f)
{
    char text[CONTENT_LENGTH_DIGITS_MAX + 2];
    f->content_length = -1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return true;
    int n = lws_hdr_copy_fragment(wsi, text, sizeof(text), WSI_TOKEN_HTTP_CONTENT_LENGTH, 0);
    /* A second header is a second fragment (lws joins them with a comma). */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) !=
        lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 0))
        return framing_refuse(f, HTTP_STATUS_BAD_REQUEST, RC_HTTP_REFUSED_FRAMING,
                              "more than one Content-Length");
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        text[--n] = '\0';
    if (n <= 0 || n > CONTENT_LENGTH_DIGITS_MAX)
        return framing_refuse(f, HTTP_STATUS_BAD_REQUEST, RC_HTTP_REFUSED_FRAMING,
                              "invalid Content-Length");
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return framing_refuse(f, HTTP_STATUS_BAD_REQUEST, RC_HTTP_REFUSED_FRAMING,
                                  "invalid Content-Length");
        v = v * 10 + (text[i] - '0');
    }
    f->content_length = v;
    return true;
}

/* The framing rules both kinds of request share: no Transfer-Encoding, one valid length. */
#define HTTP_STATUS_HEADERS_TOO_LARGE 431 /* RFC 6585; not in libwebsockets 4.1's list */

/* The bytes of the request's headers libwebsockets kept (the values of every header it knows:
 * the URI, cookies, Authorization, ...). */
static size_t header_bytes(struct lws *wsi)
{
    size_t total = 0;
    for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
        int n = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (n > 0)
            total += (size_t)n;
    }
    return total;
}

static bool read_framing(struct lws *wsi, framing_t *f)
{
    f->status = 0;
    if (header_bytes(wsi) > RC_GW_HEADERS_MAX)
        return framing_refuse(f, HTTP_STATUS_HEADERS_TOO_LARGE, RC_HTTP_REFUSED_HEADERS,
                              "request headers over 16 KB");
    bool te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    if (te && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        return framing_refuse(f, HTTP_STATUS_BAD_REQUEST, RC_HTTP_REFUSED_FRAMING,
                              "Content-Length with Transfer-Encoding");
    if (te)
        return framing_refuse(f, HTTP_STATUS_LENGTH_REQUIRED, RC_HTTP_REFUSED_LENGTH,
                              "chunked request bodies are not read: send Content-Length");
    return read_content_length(wsi, f);
}

static bool has_token(struct lws *wsi, enum lws_token_indexes t)
{
    return lws_hdr_total_length(wsi, t) > 0;
}

static void check_request_framing(struct lws *wsi, framing_t *f)
{
    if (!read_framing(wsi, f))
        return;
    bool post = has_token(wsi, WSI_TOKEN_POST_URI);
    bool unsized = has_token(wsi, WSI_TOKEN_PUT_URI) || has_token(wsi, WSI_TOKEN_PATCH_URI);
    if ((post || unsized) && f->content_length < 0) {
        framing_refuse(f, HTTP_STATUS_LENGTH_REQUIRED, RC_HTTP_REFUSED_LENGTH,
                       "Content-Length required");
    } else if (post) {
        /* Every route of the admin API is under /api/; elsewhere a POST would be served as a
         * file (the web root's mount) with its body left to lws. */
        char uri[128]; /* longer: no route of ours */
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_POST_URI) <= 0 ||
            strncmp(uri, "/api/", 5) != 0)
            framing_refuse(f, HTTP_STATUS_NOT_FOUND, RC_HTTP_REFUSED_FRAMING, "not found");
    } else if (f->content_length > 0) {
        framing_refuse(f, HTTP_STATUS_BAD_REQUEST, RC_HTTP_REFUSED_FRAMING,
                       "no request body is read here");
    }
}

/* Writes a whole JSON error answer now, announcing the close: the caller returns nonzero so
 * lws closes the connection (what follows on it is not trusted). From a protocol that has no
 * per-request state of ours, so the answer is built on the stack. */
static int refuse_request_now(struct lws *wsi, const framing_t *f)
{
    unsigned char buf[LWS_PRE + 768], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    rc_wbuf_t body;
    rc_metrics.http_refused[f->reason]++;
    rc_wbuf_init(&body, 0);
    unsigned status = rc_api_error(&body, f->status, f->why);
    rc_metrics_http(status);
    if (rc_wbuf_ok(&body) == 0 && body.len < 256 &&
        lws_add_http_header_status(wsi, status, &p, end) == 0 &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) == 0 &&
        lws_add_http_header_content_length(wsi, body.len, &p, end) == 0 &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                     &p, end) == 0 &&
        lws_finalize_http_header(wsi, &p, end) == 0 && (size_t)(end - p) >= body.len) {
        memcpy(p, rc_wbuf_data(&body), body.len);
        p += body.len;
        (void)lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP);
    }
    rc_wbuf_free(&body);
    return 1;
}

int rc_gw_http_filter(struct lws *wsi)
{
    framing_t f;
    check_request_framing(wsi, &f);
    if (f.status == 0)
        return 0;
    RC_DEBUG("gateway", "request refused", "status=%u reason=\"%s\"", f.status, f.why);
    return refuse_request_now(wsi, &f);
}

unsigned rc_gw_upgrade_framing(struct lws *wsi, const char **why)
{
    framing_t f;
    if (read_framing(wsi, &f) && f.content_length > 0)
        framing_refuse(&f, HTTP_STATUS_BAD_REQUEST, RC_HTTP_REFUSED_FRAMING,
                       "an upgrade request carries no body");
    if (f.status != 0)
        *why = f.why;
    return f.status;
}

/* ---- HTTP routes ---- */

/* Writes the whole answer (status line, headers, pss->body) now, in one write (lws keeps what
 * the socket does not take and sends it before anything else), and ends the transaction.
 * Answering at once matters: until the transaction ends, lws parses whatever follows on the
 * connection as the next request, so a pipelined request answered before this one's body was
 * written would interleave the two answers (a proxy's responses out of step with its
 * requests). Returns 0, or -1 when the connection is to close (pss->close_after, an error). */
static int http_respond(struct lws *wsi, rc_gw_http_pss_t *pss, unsigned int status,
                        const char *ctype)
{
    unsigned char hdr[512], *p = hdr, *end = hdr + sizeof(hdr);
    if (rc_wbuf_ok(&pss->body) != 0)
        return -1;
    rc_metrics_http(status);
    pss->answered = true;
    if (lws_add_http_common_headers(wsi, status, ctype, pss->body.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (pss->close_after &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                     &p, end))
        return -1;
    if (status == HTTP_STATUS_UNAUTHORIZED &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                     (const unsigned char *)"Bearer", 6, &p, end))
        return -1;
    if (lws_finalize_http_header(wsi, &p, end))
        return -1;
    rc_wbuf_t out;
    rc_wbuf_init(&out, LWS_PRE);
    rc_wbuf_put(&out, hdr, (size_t)(p - hdr));
    rc_wbuf_put(&out, rc_wbuf_data(&pss->body), pss->body.len);
    rc_wbuf_free(&pss->body);
    int n = rc_wbuf_ok(&out) == 0
                ? lws_write(wsi, (unsigned char *)rc_wbuf_data(&out), out.len, LWS_WRITE_HTTP_FINAL)
                : -1;
    bool written = n == (int)out.len;
    rc_wbuf_free(&out);
    if (!written || pss->close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_error(struct lws *wsi, rc_gw_http_pss_t *pss, unsigned int status,
                      const char *message)
{
    status = rc_api_error(&pss->body, status, message);
    return http_respond(wsi, pss, status, "application/json");
}

/* The admin credential, compared in constant time so its bytes cannot be timed out. */
static bool admin_authorized(struct lws *wsi, const char *token)
{
    char auth[512];
    int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
    /* The scheme is case-insensitive (RFC 9110, 11.1), as the WebSocket upgrade reads it. */
    return n >= 7 && strncasecmp(auth, "Bearer ", 7) == 0 &&
           rc_api_token_equal(auth + 7, (size_t)n - 7, token);
}

/* 200 when the admin API is on and the request carries its token; 403 or 401 otherwise. */
static unsigned admin_gate(struct lws *wsi, const rc_gateway_t *g)
{
    if (g->cfg->admin_token[0] == '\0')
        return HTTP_STATUS_FORBIDDEN;
    return admin_authorized(wsi, g->cfg->admin_token) ? HTTP_STATUS_OK : HTTP_STATUS_UNAUTHORIZED;
}

static int admin_refused(struct lws *wsi, rc_gw_http_pss_t *pss, unsigned status)
{
    return http_error(wsi, pss, status,
                      status == HTTP_STATUS_FORBIDDEN
                          ? "the admin API is off: start the server with --admin-token"
                          : "a valid admin bearer token is required");
}

/* What the admin API answers while the node reads its log back (rc_gateway_set_warming()). */
#define WARMING "warming: the node is reading its event log back; retry shortly"

static const rc_api_route_t *api_route(const rc_gateway_t *g, const char *uri)
{
    return g->hooks->api != NULL ? rc_api_find(g->hooks->api, uri) : NULL;
}

static int http_get(struct lws *wsi, rc_gw_http_pss_t *pss, const char *uri)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    unsigned int status = HTTP_STATUS_OK;
    const char *ctype = "application/json";
    const rc_api_route_t *route;
    if (strcmp(uri, "/healthz") == 0) {
        rc_wbuf_puts(&pss->body, "{\"status\":\"ok\"}\n");
    } else if (strcmp(uri, "/readyz") == 0) {
        if (!g->hooks->ready(g->hooks->ctx, &pss->body))
            status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    } else if (strcmp(uri, "/metrics") == 0) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        g->hooks->metrics(g->hooks->ctx, &pss->body);
    } else if ((route = api_route(g, uri)) != NULL && route->get != NULL) {
        if ((status = admin_gate(wsi, g)) != HTTP_STATUS_OK)
            return admin_refused(wsi, pss, status);
        if (g->warming)
            return http_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, WARMING);
        status = rc_api_get(g->hooks->api, route, &pss->body);
    } else if (strncmp(uri, "/api/", 5) == 0) {
        return http_error(wsi, pss, HTTP_STATUS_METHOD_NOT_ALLOWED, "use POST");
    } else {
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    }
    return http_respond(wsi, pss, status, ctype);
}

/* A request answered before its body was read is answered with a close: its body is not
 * read (lws would otherwise discard it, for as long as the client cares to trickle it). */
static int http_refuse_unread(struct lws *wsi, rc_gw_http_pss_t *pss, unsigned status,
                              const char *message)
{
    pss->post_refused = true;
    pss->close_after = true;
    rc_wbuf_free(&pss->request);
    return http_error(wsi, pss, status, message);
}

/* The body's deadline: RC_GW_BODY_TIMEOUT_MS after the headers, however it trickles in. */
static void on_body_deadline(lws_sorted_usec_list_t *sul)
{
    rc_gw_http_pss_t *pss = lws_container_of(sul, rc_gw_http_pss_t, body_deadline);
    if (pss->answered)
        return;
    rc_metrics.http_refused[RC_HTTP_REFUSED_BODY_TIMEOUT]++;
    /* Not inside a callback of this wsi: it is closed at the next service, after the answer
     * (lws flushes what it holds before it closes). */
    http_refuse_unread(pss->wsi, pss, HTTP_STATUS_REQUEST_TIMEOUT,
                       "the request body did not arrive in time");
    lws_set_timeout(pss->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* A POST is checked (route, credential, length) before its body is read; the body follows in
 * LWS_CALLBACK_HTTP_BODY and is answered at LWS_CALLBACK_HTTP_BODY_COMPLETION, unless its
 * deadline passes first (408). rc_gw_http_filter() has made sure it has one Content-Length. */
static int http_post_begin(struct lws *wsi, rc_gw_http_pss_t *pss, const char *uri)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    char length[24];
    rc_wbuf_init(&pss->request, 0);
    const rc_api_route_t *route = api_route(g, uri);
    if (route == NULL || (route->post == NULL && route->post_object == NULL))
        return http_refuse_unread(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    snprintf(pss->route, sizeof(pss->route), "%s", uri);
    unsigned status = admin_gate(wsi, g);
    if (status != HTTP_STATUS_OK) {
        pss->post_refused = pss->close_after = true;
        return admin_refused(wsi, pss, status);
    }
    if (lws_hdr_copy(wsi, length, sizeof(length), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        strtoull(length, NULL, 10) > RC_API_BODY_MAX) {
        rc_metrics.http_refused[RC_HTTP_REFUSED_BODY_TOO_LARGE]++;
        return http_refuse_unread(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "body too large");
    }
    pss->wsi = wsi;
    lws_sul_schedule(lws_get_context(wsi), 0, &pss->body_deadline, on_body_deadline,
                     (lws_usec_t)RC_GW_BODY_TIMEOUT_MS * 1000);
    /* lws's own timeout, RC_GW_REQUEST_TIMEOUT_S from the last byte received (it sets it
     * again after every part of the body), closes without an answer: ours must fire first. */
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, RC_GW_REQUEST_TIMEOUT_S + 5);
    return 0;
}

static int http_body(rc_gw_http_pss_t *pss, const void *in, size_t len)
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

/* The whole body is here: its route (found again by the path kept at the start) answers. */
static int http_body_done(struct lws *wsi, rc_gw_http_pss_t *pss)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    lws_sul_cancel(&pss->body_deadline);
    if (pss->answered)
        return 0; /* already answered */
    if (pss->post_refused)
        return http_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "body too large");
    if (rc_wbuf_ok(&pss->request) != 0)
        return -1;
    const rc_api_route_t *route = api_route(g, pss->route);
    if (route == NULL)
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    if (g->warming)
        return http_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, WARMING);
    unsigned status = rc_api_post(g->hooks->api, route, rc_wbuf_data(&pss->request),
                                  pss->request.len, &pss->body);
    return http_respond(wsi, pss, status, "application/json");
}

static int http_begin(struct lws *wsi, rc_gw_http_pss_t *pss)
{
    char uri[128];
    rc_wbuf_init(&pss->body, LWS_PRE);
    rc_wbuf_init(&pss->request, 0);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_POST_URI) > 0)
        return http_post_begin(wsi, pss, uri);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0)
        return http_get(wsi, pss, uri);
    return http_error(wsi, pss, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
}

int rc_gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    rc_gw_http_pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_begin(wsi, pss);
    case LWS_CALLBACK_HTTP_BODY:
        return http_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_body_done(wsi, pss);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss != NULL) {
            lws_sul_cancel(&pss->body_deadline);
            rc_wbuf_free(&pss->body);
            rc_wbuf_free(&pss->request);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- mounts ---- */

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

static void set_route(struct lws_http_mount *m, const struct lws_http_mount *next, const char *path)
{
    memset(m, 0, sizeof(*m));
    m->mount_next = next;
    m->mountpoint = path;
    m->mountpoint_len = (unsigned char)strlen(path);
    m->origin = "rc-http";
    m->origin_protocol = LWSMPRO_CALLBACK;
}

/* ---- files stay inside their roots ---- */

/* lws serves a mount's files by opening "<origin>/<uri>" and follows any symlink on the way, so
 * a link under the web root (or the SDK's) would publish whatever it points at. Every open of
 * lws's file serving passes through rc_gw_file_fops: a path under one of the mounts' roots is
 * resolved (realpath) and opened only if it is still inside that root, and then by its
 * resolved name, so no link is followed between the check and the open. Links that stay
 * inside are served. Refused: lws answers 404, as for a file that does not exist. */

/* The file mounts' origins of every gateway of the process (a web root, the SDK's two), for
 * open_inside_root, which lws calls without saying for which context. Gateways on loops in
 * several threads add theirs under the lock; a root is kept once and for the process's life
 * (a process serves one config's few). */
static pthread_mutex_t roots_lock = PTHREAD_MUTEX_INITIALIZER;
static char **file_roots;
static size_t n_file_roots;

/* Returns 0, or RC_ENOMEM: the gateway then refuses to start rather than serve a root
 * without its check. */
static int add_file_root(const char *root)
{
    int rc = 0;
    pthread_mutex_lock(&roots_lock);
    size_t i = 0;
    while (i < n_file_roots && strcmp(file_roots[i], root) != 0)
        i++;
    if (i == n_file_roots) {
        char **grown = realloc(file_roots, (n_file_roots + 1) * sizeof(*grown));
        char *copy = strdup(root);
        if (grown != NULL)
            file_roots = grown;
        if (grown != NULL && copy != NULL)
            file_roots[n_file_roots++] = copy;
        else {
            free(copy);
            rc = RC_ENOMEM;
        }
    }
    pthread_mutex_unlock(&roots_lock);
    return rc;
}

/* `real` lies in the directory `root_real` (both resolved). */
static bool path_inside(const char *real, const char *root_real)
{
    size_t n = strlen(root_real);
    if (n == 1 && root_real[0] == '/')
        return true;
    return strncmp(real, root_real, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

/* Copies into `out` the longest root `path` is spelt under; false when there is none. */
static bool root_of(const char *path, char *out, size_t cap)
{
    const char *best = NULL;
    pthread_mutex_lock(&roots_lock);
    for (size_t i = 0; i < n_file_roots; i++) {
        const char *r = file_roots[i];
        size_t n = strlen(r);
        if (n > 0 && strncmp(path, r, n) == 0 && path[n] == '/' &&
            (best == NULL || n > strlen(best)))
            best = r;
    }
    bool found = best != NULL && strlen(best) < cap;
    if (found)
        strcpy(out, best);
    pthread_mutex_unlock(&roots_lock);
    return found;
}

/* `fops` is the head of lws's list, its platform operations, which do the real open. */
static lws_fop_fd_t open_inside_root(const struct lws_plat_file_ops *fops, const char *filename,
                                     const char *vpath, lws_fop_flags_t *flags)
{
    char real[PATH_MAX], root_real[PATH_MAX], root[PATH_MAX];
    if (!root_of(filename, root, sizeof(root)))
        return fops->LWS_FOP_OPEN(fops, filename, vpath, flags);
    if (realpath(root, root_real) == NULL || realpath(filename, real) == NULL ||
        !path_inside(real, root_real)) {
        RC_DEBUG("gateway", "file outside its root refused", "root=\"%s\"", root);
        errno = ENOENT;
        return NULL;
    }
    return fops->LWS_FOP_OPEN(fops, real, vpath, flags);
}

/* lws picks a file-operations entry by a signature in the path ending at a '/'; a
 * one-character signature compares nothing before that '/', so this entry takes every path
 * with a '/' after its first character, which every "<origin>/<uri>" has. */
const struct lws_plat_file_ops rc_gw_file_fops = {
    .LWS_FOP_OPEN = open_inside_root,
    .fi = {{"/", 1}},
};

/* The demo pages import the JavaScript SDK from its own sources (no copy, no CDN), and the
 * SDK's one dependency from its ESM build installed by scripts/setup. Returns the mount
 * list's head. */
static const struct lws_http_mount *mount_sdk(rc_gateway_t *g, const struct lws_http_mount *next)
{
    const rc_config_t *cfg = g->cfg;
    if (cfg->sdk_root[0] == '\0')
        return next;
    snprintf(g->sdk_dir, sizeof(g->sdk_dir), "%s/src", cfg->sdk_root);
    snprintf(g->msgpack_dir, sizeof(g->msgpack_dir), "%s/node_modules/@msgpack/msgpack/dist.esm",
             cfg->sdk_root);
    const char *points[2] = {"/sdk/src", "/vendor/msgpack"},
               *dirs[2] = {g->sdk_dir, g->msgpack_dir};
    for (int i = 0; i < 2; i++) {
        struct lws_http_mount *m = &g->mounts[5 + i];
        memset(m, 0, sizeof(*m));
        m->mount_next = next;
        m->mountpoint = points[i];
        m->mountpoint_len = (unsigned char)strlen(points[i]);
        m->origin = dirs[i];
        if (add_file_root(dirs[i]) != 0)
            return NULL;
        m->origin_protocol = LWSMPRO_FILE;
        m->extra_mimetypes = &mime_json;
        next = m;
    }
    return next;
}

const struct lws_http_mount *rc_gw_http_mounts(rc_gateway_t *g)
{
    const rc_config_t *cfg = g->cfg;
    struct lws_http_mount *mounts = g->mounts;
    memset(&mounts[0], 0, sizeof(mounts[0]));
    mounts[0].mountpoint = "/";
    mounts[0].mountpoint_len = 1;
    mounts[0].origin = cfg->web_root;
    if (add_file_root(cfg->web_root) != 0)
        return NULL;
    mounts[0].def = "index.html";
    mounts[0].origin_protocol = LWSMPRO_FILE;
    mounts[0].extra_mimetypes = &mime_json;
    set_route(&mounts[1], &mounts[0], "/healthz");
    set_route(&mounts[2], &mounts[1], "/readyz");
    set_route(&mounts[3], &mounts[2], "/metrics");
    set_route(&mounts[4], &mounts[3], "/api");
    return mount_sdk(g, &mounts[4]);
}
