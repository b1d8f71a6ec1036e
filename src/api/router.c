/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API's route table: lookup and the two ways a request reaches its handler. */
#include "api/router.h"
#include "api/admin_api.h"

#include <string.h>

const rc_api_route_t *rc_api_find(const rc_api_router_t *r, const char *path)
{
    for (size_t i = 0; i < r->n_routes; i++)
        if (strcmp(r->routes[i].path, path) == 0)
            return &r->routes[i];
    return NULL;
}

unsigned rc_api_get(const rc_api_router_t *r, const rc_api_route_t *route, rc_wbuf_t *out)
{
    if (route->get == NULL)
        return rc_api_error(out, 405, "use POST");
    return route->get(r->ctx, route->path, out);
}

unsigned rc_api_post(const rc_api_router_t *r, const rc_api_route_t *route, const char *body,
                     size_t len, rc_wbuf_t *out)
{
    if (route->post != NULL)
        return route->post(r->ctx, route->path, body, len, out);
    if (route->post_object == NULL)
        return rc_api_error(out, 405, "use GET");
    /* Every object body is read the same way: duplicate keys refused, depth bounded. */
    char err[128];
    json_t *j = rc_api_load_object(body, len, err, sizeof(err));
    if (j == NULL)
        return rc_api_error(out, 400, err);
    unsigned status = route->post_object(r->ctx, route->path, j, out);
    json_decref(j);
    return status;
}
