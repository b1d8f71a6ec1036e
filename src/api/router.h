/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API's routes, in one table: every path under /api/v1/ with its handlers. The
 * node builds the table (it knows which module owns each path); the gateway authenticates a
 * request, reads its body and hands it here; the handler writes the JSON answer. */
#ifndef RC_API_ROUTER_H
#define RC_API_ROUTER_H

#include "util/wbuf.h"

#include <jansson.h>
#include <stddef.h>

/* A handler writes its JSON answer to `out` and returns the HTTP status. `path` is the
 * route's own path; `ctx` is the router's. */
typedef unsigned (*rc_api_get_fn)(void *ctx, const char *path, rc_wbuf_t *out);
/* POST with the raw body (`len` bytes, at most RC_API_BODY_MAX; borrowed for the call). */
typedef unsigned (*rc_api_post_fn)(void *ctx, const char *path, const char *body, size_t len,
                                   rc_wbuf_t *out);
/* POST whose body must be one JSON object (rc_api_load_object); borrowed for the call. */
typedef unsigned (*rc_api_post_object_fn)(void *ctx, const char *path, json_t *body,
                                          rc_wbuf_t *out);

typedef struct rc_api_route {
    const char *path;
    rc_api_get_fn get;                 /* NULL: GET is refused with 405 */
    rc_api_post_fn post;               /* at most one of post and post_object */
    rc_api_post_object_fn post_object; /* both NULL: POST is refused with 405 */
} rc_api_route_t;

typedef struct rc_api_router {
    const rc_api_route_t *routes; /* borrowed; must outlive the router */
    size_t n_routes;
    void *ctx; /* passed to every handler */
} rc_api_router_t;

/** The route of `path` (an exact match), or NULL. */
const rc_api_route_t *rc_api_find(const rc_api_router_t *r, const char *path);

/** Answers a GET of `route` into `out`: the handler's status, or 405 when it has none. */
unsigned rc_api_get(const rc_api_router_t *r, const rc_api_route_t *route, rc_wbuf_t *out);

/** Answers a POST of `route` with `body` into `out`: the handler's status; 400 when the
 * route takes a JSON object and the body is not one; 405 when the route takes no POST. */
unsigned rc_api_post(const rc_api_router_t *r, const rc_api_route_t *route, const char *body,
                     size_t len, rc_wbuf_t *out);

#endif
