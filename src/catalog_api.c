/* Validation first, then the change: a batch with one bad item changes nothing, so a client
 * can fix and resend the whole batch. */
#include "catalog_api.h"
#include "error.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_ITEMS  "/api/v1/catalog/items"
#define ROUTE_REMOVE "/api/v1/catalog/remove"

bool rc_catalog_api_route(const char *route)
{
    return strcmp(route, ROUTE_ITEMS) == 0 || strcmp(route, ROUTE_REMOVE) == 0;
}

static unsigned answer(rc_wbuf_t *out, unsigned status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rc_wbuf_reset(out);
    if (text == NULL) {
        rc_wbuf_puts(out, "{\"error\":\"out of memory\"}\n");
        return 500;
    }
    rc_wbuf_puts(out, text);
    rc_wbuf_puts(out, "\n");
    free(text);
    return status;
}

static unsigned bad_request(rc_wbuf_t *out, const char *what, size_t index, const char *why)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%s %zu: %s", what, index, why);
    return answer(out, 400, json_pack("{s:s}", "error", msg));
}

static bool valid_id(json_t *v)
{
    const char *id = json_string_value(v);
    return id != NULL && rc_proto_valid_id(id, strlen(id));
}

/* Checks what rc_catalog_upsert_json() would refuse, and the types it would silently
 * ignore, so that a batch is applied whole or not at all. */
static const char *item_problem(json_t *it)
{
    if (!json_is_object(it))
        return "not an object";
    if (!valid_id(json_object_get(it, "id")))
        return "\"id\" must be 1..64 bytes of [A-Za-z0-9._:@-]";
    static const char *const strings[] = {"name", "category"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(it, strings[i]);
        if (v != NULL && !json_is_string(v))
            return "\"name\" and \"category\" must be strings";
    }
    json_t *tags = json_object_get(it, "tags");
    if (tags != NULL && !json_is_array(tags))
        return "\"tags\" must be an array of strings";
    json_t *price = json_object_get(it, "price"), *pop = json_object_get(it, "popularity");
    if ((price != NULL && !json_is_number(price)) || (pop != NULL && !json_is_number(pop)))
        return "\"price\" and \"popularity\" must be numbers";
    json_t *stock = json_object_get(it, "in_stock");
    if (stock != NULL && !json_is_boolean(stock))
        return "\"in_stock\" must be true or false";
    return NULL;
}

/* {"items":[...]} or one item object. */
static unsigned upsert(rc_engine_t *e, rc_sessions_t *s, json_t *body, rc_wbuf_t *out)
{
    json_t *items = json_object_get(body, "items");
    size_t n = items ? json_array_size(items) : 1;
    if (items != NULL && (!json_is_array(items) || json_object_size(body) != 1 || n == 0))
        return answer(out, 400, json_pack("{s:s}", "error", "expected {\"items\": [item, ...]}"));
    if (n > RC_CATALOG_BATCH_MAX)
        return answer(out, 400, json_pack("{s:s}", "error", "at most 1000 items per request"));
    for (size_t i = 0; i < n; i++) {
        const char *why = item_problem(items ? json_array_get(items, i) : body);
        if (why != NULL)
            return bad_request(out, "item", i, why);
    }
    uint32_t done = 0;
    for (size_t i = 0; i < n; i++) {
        char err[160];
        uint32_t idx;
        int rc = rc_catalog_upsert_json(&e->catalog, items ? json_array_get(items, i) : body, &idx,
                                        err, sizeof(err));
        if (rc != 0) {
            /* Only capacity and memory can fail here: report what was applied. */
            rc_engine_refresh(e);
            return answer(out, rc == RC_EFULL ? 507 : 500,
                          json_pack("{s:s,s:i}", "error", err, "upserted", (int)done));
        }
        done++;
    }
    rc_engine_refresh(e);
    uint32_t pushed = rc_sessions_catalog_changed(s);
    RC_INFO("catalog", "items upserted", "count=%u lists_pushed=%u", done, pushed);
    return answer(out, 200,
                  json_pack("{s:i,s:i}", "upserted", (int)done, "lists_pushed", (int)pushed));
}

/* {"ids":[...]}: unknown ids are reported, not an error (removal is idempotent). */
static unsigned remove_items(rc_engine_t *e, rc_sessions_t *s, json_t *body, rc_wbuf_t *out)
{
    json_t *ids = json_object_get(body, "ids");
    size_t n = json_array_size(ids);
    if (!json_is_array(ids) || json_object_size(body) != 1 || n == 0)
        return answer(out, 400, json_pack("{s:s}", "error", "expected {\"ids\": [id, ...]}"));
    if (n > RC_CATALOG_BATCH_MAX)
        return answer(out, 400, json_pack("{s:s}", "error", "at most 1000 ids per request"));
    for (size_t i = 0; i < n; i++)
        if (!valid_id(json_array_get(ids, i)))
            return bad_request(out, "id", i, "must be 1..64 bytes of [A-Za-z0-9._:@-]");
    json_t *unknown = json_array();
    uint32_t removed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (rc_catalog_remove(&e->catalog, id, strlen(id)) == 0)
            removed++;
        else
            json_array_append_new(unknown, json_string(id));
    }
    rc_engine_refresh(e);
    uint32_t pushed = rc_sessions_catalog_changed(s);
    RC_INFO("catalog", "items removed", "count=%u lists_pushed=%u", removed, pushed);
    return answer(out, 200,
                  json_pack("{s:i,s:o,s:i}", "removed", (int)removed, "unknown", unknown,
                            "lists_pushed", (int)pushed));
}

unsigned rc_catalog_api_handle(rc_engine_t *e, rc_sessions_t *s, const char *route, json_t *body,
                               rc_wbuf_t *out)
{
    if (strcmp(route, ROUTE_ITEMS) == 0)
        return upsert(e, s, body, out);
    return remove_items(e, s, body, out);
}
