/* SPDX-License-Identifier: Apache-2.0 */
/* Validation first, then the change: a batch with one bad item changes nothing, so a client
 * can fix and resend the whole batch. Changes reach the engine as records (engine_op.h),
 * applied at once with one loop; validation only reads. */
#include "api/catalog_api.h"
#include "api/admin_api.h"
#include "engine/engine_op.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_ITEMS  "/api/v1/catalog/items"
#define ROUTE_REMOVE "/api/v1/catalog/remove"

static unsigned bad_request(rc_wbuf_t *out, const char *what, size_t index, const char *why)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%s %zu: %s", what, index, why);
    return rc_api_error(out, 400, msg);
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

/* Adds or replaces an item (validated: item_problem()) from its JSON text. With shared
 * models the writer applies it later: a full catalog is then logged there, not answered. */
static int submit_item(rc_sessions_t *s, const char *text)
{
    rc_engine_op_t op;
    int rc = rc_engine_op_item_json(&op, text);
    return rc != 0 ? rc : rc_sessions_submit(s, &op);
}

/* Removes item `id` (NUL-terminated); RC_ENOENT when unknown (to the copy read now: the same
 * answer the change gets where it is applied, as changes are applied in order). */
static int submit_removal(rc_sessions_t *s, const char *id)
{
    if (rc_catalog_find(rc_engine_catalog(rc_sessions_engine(s)), id, strlen(id)) < 0)
        return RC_ENOENT;
    rc_engine_op_t op;
    int rc = rc_engine_op_remove(&op, id, strlen(id));
    return rc != 0 ? rc : rc_sessions_submit(s, &op);
}

uint32_t rc_catalog_api_settle(rc_sessions_t *s)
{
    rc_engine_op_t op;
    rc_engine_op_refresh(&op, rc_wall_ms());
    rc_sessions_submit(s, &op);
    rc_sessions_sync(s); /* lists are ranked again on models that hold the changes */
    return rc_sessions_catalog_changed(s);
}

typedef struct {
    rc_bus_t *bus;
    const char *node_id;
    uint32_t failed; /* changes the bus refused */
} publisher_t;

/* One change for the other nodes: the item's JSON text, or its removal (`item` NULL). */
static void publish(publisher_t *p, const char *id, json_t *item)
{
    char *text = item ? json_dumps(item, JSON_COMPACT) : NULL;
    rc_bus_msg_t m = {.kind = RC_BUS_CATALOG,
                      .origin_node = {p->node_id, (uint32_t)strlen(p->node_id)},
                      .item_id = {id, (uint32_t)strlen(id)},
                      .item_json = {text, text ? (uint32_t)strlen(text) : 0}};
    if ((item != NULL && text == NULL) || rc_bus_publish(p->bus, &m, NULL, NULL) != 0)
        p->failed++;
    free(text);
}

/* Every change was applied here; the ones the bus refused have not reached the other
 * nodes: the request is answered 503 so that the client retries (changes are idempotent). */
static unsigned published(publisher_t *p, unsigned status, json_t *j, rc_wbuf_t *out)
{
    if (p->failed == 0)
        return rc_api_answer(out, status, j);
    RC_WARN("catalog", "changes not published", "count=%u", p->failed);
    json_object_set_new(j, "error",
                        json_string("applied on this node, but not published to the cluster; "
                                    "retry the request"));
    json_object_set_new(j, "unpublished", json_integer(p->failed));
    return rc_api_answer(out, 503, j);
}

int rc_catalog_api_apply(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    char id[RC_ID_MAX + 1], err[160];
    if (m->item_id.n == 0 || m->item_id.n > RC_ID_MAX)
        return RC_EPARSE;
    memcpy(id, m->item_id.p, m->item_id.n);
    id[m->item_id.n] = '\0';
    if (m->item_json.n == 0) {
        submit_removal(s, id);
        return 0; /* removing an unknown item is a no-op, as through the API */
    }
    json_error_t jerr;
    json_t *item = json_loadb(m->item_json.p, m->item_json.n, 0, &jerr);
    const char *why = item ? item_problem(item) : jerr.text;
    const char *item_id = item ? json_string_value(json_object_get(item, "id")) : NULL;
    if (why == NULL && strcmp(item_id, id) != 0)
        why = "\"id\" differs from the message's";
    char *text = why == NULL ? json_dumps(item, JSON_COMPACT) : NULL;
    int rc = why != NULL ? RC_EPARSE : text == NULL ? RC_ENOMEM : submit_item(s, text);
    if (why == NULL && rc != 0)
        snprintf(err, sizeof(err), "%s", rc_strerror(rc));
    if (why != NULL || rc != 0)
        RC_WARN("catalog", "change from the bus not applied", "error=\"%s\"", why ? why : err);
    free(text);
    json_decref(item);
    return rc;
}

/* {"items":[...]} or one item object. */
static unsigned upsert(rc_sessions_t *s, publisher_t *p, json_t *body, rc_wbuf_t *out)
{
    json_t *items = json_object_get(body, "items");
    size_t n = items ? json_array_size(items) : 1;
    if (items != NULL && (!json_is_array(items) || json_object_size(body) != 1 || n == 0))
        return rc_api_error(out, 400, "expected {\"items\": [item, ...]}");
    if (n > RC_CATALOG_BATCH_MAX)
        return rc_api_error(out, 400, "at most 1000 items per request");
    for (size_t i = 0; i < n; i++) {
        const char *why = item_problem(items ? json_array_get(items, i) : body);
        if (why != NULL)
            return bad_request(out, "item", i, why);
    }
    uint32_t done = 0, fresh = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *item = items ? json_array_get(items, i) : body;
        /* With shared models the writer applies the change later: a full catalog is told
         * from the copy read now, counting the new ids submitted before (as applying them
         * one by one would). */
        const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
        const char *id = json_string_value(json_object_get(item, "id"));
        bool is_new = rc_catalog_find(cat, id, strlen(id)) < 0;
        char *text = json_dumps(item, JSON_COMPACT);
        int rc = text == NULL                           ? RC_ENOMEM
                 : is_new && cat->n + fresh >= cat->max ? RC_EFULL
                                                        : submit_item(s, text);
        fresh += is_new && rc == 0;
        free(text);
        if (rc != 0) {
            /* Only capacity and memory can fail here: report what was applied. */
            rc_catalog_api_settle(s);
            return rc_api_answer(
                out, rc == RC_EFULL ? 507 : 500,
                json_pack("{s:s,s:i}", "error", rc_strerror(rc), "upserted", (int)done));
        }
        publish(p, json_string_value(json_object_get(item, "id")), item);
        done++;
    }
    uint32_t pushed = rc_catalog_api_settle(s);
    RC_INFO("catalog", "items upserted", "count=%u lists_pushed=%u", done, pushed);
    return published(
        p, 200, json_pack("{s:i,s:i}", "upserted", (int)done, "lists_pushed", (int)pushed), out);
}

/* {"ids":[...]}: unknown ids are reported, not an error (removal is idempotent). */
static unsigned remove_items(rc_sessions_t *s, publisher_t *p, json_t *body, rc_wbuf_t *out)
{
    json_t *ids = json_object_get(body, "ids");
    size_t n = json_array_size(ids);
    if (!json_is_array(ids) || json_object_size(body) != 1 || n == 0)
        return rc_api_error(out, 400, "expected {\"ids\": [id, ...]}");
    if (n > RC_CATALOG_BATCH_MAX)
        return rc_api_error(out, 400, "at most 1000 ids per request");
    for (size_t i = 0; i < n; i++)
        if (!valid_id(json_array_get(ids, i)))
            return bad_request(out, "id", i, "must be 1..64 bytes of [A-Za-z0-9._:@-]");
    json_t *unknown = json_array();
    uint32_t removed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (submit_removal(s, id) == 0)
            removed++;
        else
            json_array_append_new(unknown, json_string(id));
        /* Unknown here may be known to a node that got the item before this one. */
        publish(p, id, NULL);
    }
    uint32_t pushed = rc_catalog_api_settle(s);
    RC_INFO("catalog", "items removed", "count=%u lists_pushed=%u", removed, pushed);
    return published(p, 200,
                     json_pack("{s:i,s:o,s:i}", "removed", (int)removed, "unknown", unknown,
                               "lists_pushed", (int)pushed),
                     out);
}

unsigned rc_catalog_api_handle(rc_sessions_t *s, rc_bus_t *bus, const char *node_id,
                               const char *route, json_t *body, rc_wbuf_t *out)
{
    publisher_t p = {bus, node_id, 0};
    if (strcmp(route, ROUTE_ITEMS) == 0)
        return upsert(s, &p, body, out);
    return remove_items(s, &p, body, out);
}
