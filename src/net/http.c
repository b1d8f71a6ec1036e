/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP side of the gateway: /healthz, /readyz, /metrics, the admin API (a POST is
 * checked, route and credential, before its body is read, then answered by its route in the
 * owner's table, api/router.h), and the mounts that serve the web root and the JavaScript
 * SDK's sources. */
#include "net/gateway_int.h"
#include "api/admin_api.h"
#include "util/error.h"
#include "util/metrics.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- HTTP routes ---- */

/* Sends the status line and headers now and the body (pss->body) from WRITEABLE. */
static int http_respond(struct lws *wsi, rc_gw_http_pss_t *pss, unsigned int status,
                        const char *ctype)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    if (rc_wbuf_ok(&pss->body) != 0)
        return -1;
    rc_metrics_http(status);
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
        status = rc_api_get(g->hooks->api, route, &pss->body);
    } else if (strncmp(uri, "/api/", 5) == 0) {
        return http_error(wsi, pss, HTTP_STATUS_METHOD_NOT_ALLOWED, "use POST");
    } else {
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    }
    return http_respond(wsi, pss, status, ctype);
}

/* A POST is checked (route, credential) before its body is read; the body follows in
 * LWS_CALLBACK_HTTP_BODY and is answered at LWS_CALLBACK_HTTP_BODY_COMPLETION. */
static int http_post_begin(struct lws *wsi, rc_gw_http_pss_t *pss, const char *uri)
{
    rc_gateway_t *g = rc_gw_of(wsi);
    rc_wbuf_init(&pss->request, 0);
    pss->post_refused = true;
    const rc_api_route_t *route = api_route(g, uri);
    if (route == NULL || (route->post == NULL && route->post_object == NULL))
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
    snprintf(pss->route, sizeof(pss->route), "%s", uri);
    unsigned status = admin_gate(wsi, g);
    if (status != HTTP_STATUS_OK)
        return admin_refused(wsi, pss, status);
    pss->post_refused = false;
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
    if (pss->body_ready)
        return 0; /* already answered */
    if (pss->post_refused)
        return http_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "body too large");
    if (rc_wbuf_ok(&pss->request) != 0)
        return -1;
    const rc_api_route_t *route = api_route(g, pss->route);
    if (route == NULL)
        return http_error(wsi, pss, HTTP_STATUS_NOT_FOUND, "not found");
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

static int http_writeable(struct lws *wsi, rc_gw_http_pss_t *pss)
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

const struct lws_http_mount *rc_gw_http_mounts(const rc_config_t *cfg)
{
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
    return mount_sdk(cfg, &mounts[4]);
}
