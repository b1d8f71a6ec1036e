/* SPDX-License-Identifier: Apache-2.0 */
/* Compact lists (PROTOCOL.md `recs_delta`): what one connection keeps to turn each list's
 * changes back into the whole list on_recs sees. Per connection, the item details and the
 * reasons by number the server sent once; per subscription, the ids of the list held and its
 * version. A new connection starts empty, a subscription sent again starts from nothing; a
 * delta that does not apply is refused (the caller then subscribes again, and the server
 * answers with the whole list). */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest list (PROTOCOL.md `subscribe` k). */
#define MAX_ITEMS 100

void rcc_compact_forget(rcc_sub_t *s)
{
    json_decref(s->held);
    s->held = NULL;
    s->held_version = -1; /* awaiting the whole list */
}

void rcc_compact_reset(rcc_client_t *c)
{
    json_decref(c->compact_details);
    json_decref(c->compact_reasons);
    c->compact_details = c->compact_reasons = NULL;
    for (size_t i = 0; i < c->n_subs; i++)
        rcc_compact_forget(&c->subs[i]);
}

static bool in_array(const json_t *a, const char *id)
{
    for (size_t i = 0; i < json_array_size(a); i++)
        if (strcmp(json_string_value(json_array_get(a, i)), id) == 0)
            return true;
    return false;
}

/* Whether `a` is an array of at most MAX_ITEMS elements all satisfying `ok`. */
static bool array_of(const json_t *a, int (*ok)(const json_t *))
{
    if (!json_is_array(a) || json_array_size(a) > MAX_ITEMS)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!ok(json_array_get(a, i)))
            return false;
    return true;
}

static int is_string(const json_t *j)
{
    return json_is_string(j);
}

static int is_integer(const json_t *j)
{
    return json_is_integer(j);
}

static int is_natural(const json_t *j)
{
    return json_is_integer(j) && json_integer_value(j) >= 0;
}

static int is_place(const json_t *j)
{
    return json_is_array(j) && json_array_size(j) == 2 && is_natural(json_array_get(j, 0)) &&
           json_is_string(json_array_get(j, 1));
}

/* Whether `key` is a reason number as the page writes it (decimal, no sign, no leading 0). */
static bool is_number_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 9 || (key[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < '0' || key[i] > '9')
            return false;
    return true;
}

/* Merges the message's item details and reason definitions into the connection's tables
 * (they stay valid whatever else the message says). */
static int merge_tables(rcc_client_t *c, const json_t *msg)
{
    const json_t *items = json_object_get(msg, "items"), *reasons = json_object_get(msg, "reasons");
    const char *key;
    json_t *v;
    if ((items != NULL && !json_is_object(items)) || (reasons != NULL && !json_is_object(reasons)))
        return RCC_EPROTO;
    if (c->compact_details == NULL && (c->compact_details = json_object()) == NULL)
        return RCC_ENOMEM;
    if (c->compact_reasons == NULL && (c->compact_reasons = json_object()) == NULL)
        return RCC_ENOMEM;
    json_object_foreach((json_t *)items, key, v)
    {
        if (json_object_set(c->compact_details, key, v) != 0)
            return RCC_ENOMEM;
    }
    json_object_foreach((json_t *)reasons, key, v)
    {
        if (!is_number_key(key) || !json_is_object(v))
            return RCC_EPROTO;
        if (json_object_set(c->compact_reasons, key, v) != 0)
            return RCC_ENOMEM;
    }
    return 0;
}

/* The ids of the new list into `ids` (n of them): placed ones at their positions, the held
 * ones neither removed nor placed in their order in between. */
static int new_order(const rcc_sub_t *s, const json_t *remove, const json_t *place, size_t n,
                     const char **ids)
{
    memset(ids, 0, n * sizeof(*ids));
    for (size_t i = 0; i < json_array_size(place); i++) {
        const json_t *p = json_array_get(place, i);
        json_int_t pos = json_integer_value(json_array_get(p, 0));
        if (pos >= (json_int_t)n || ids[pos] != NULL)
            return RCC_EPROTO;
        ids[pos] = json_string_value(json_array_get(p, 1));
    }
    size_t at = 0;
    for (size_t h = 0; h < json_array_size(s->held); h++) {
        const char *id = json_string_value(json_array_get(s->held, h));
        bool placed = false;
        for (size_t i = 0; i < json_array_size(place) && !placed; i++)
            placed =
                strcmp(json_string_value(json_array_get(json_array_get(place, i), 1)), id) == 0;
        if (placed || in_array(remove, id))
            continue;
        while (at < n && ids[at] != NULL)
            at++;
        if (at == n)
            return RCC_EPROTO;
        ids[at++] = id;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] == NULL)
            return RCC_EPROTO;
    return 0;
}

/* Item `it` from its id, score, reason number and the connection's tables. */
static int fill_item(rcc_client_t *c, const char *id, json_int_t score_e4, const json_t *rid,
                     rcc_item_t *it)
{
    char key[24];
    snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(rid));
    const json_t *def = json_object_get(c->compact_reasons, key);
    if (!json_is_object(def))
        return RCC_EPROTO;
    const json_t *det = json_object_get(c->compact_details, id);
    const json_t *price = json_object_get(det, "price");
    memset(it, 0, sizeof(*it));
    it->item = id;
    it->score = (double)score_e4 / 10000.0;
    it->src = json_string_value(json_object_get(def, "src"));
    it->why = json_string_value(json_object_get(def, "why"));
    it->name = json_string_value(json_object_get(det, "name"));
    it->category = json_string_value(json_object_get(det, "category"));
    it->has_price = json_is_number(price);
    it->price = json_number_value(price);
    rcc_msg_read_reason(json_object_get(def, "reason"), &it->reason);
    return 0;
}

int rcc_compact_apply(rcc_client_t *c, rcc_sub_t *s, const json_t *msg, rcc_recs_t *out,
                      rcc_item_t **items)
{
    const json_t *version = json_object_get(msg, "version"), *base = json_object_get(msg, "base");
    const json_t *scores = json_object_get(msg, "scores_e4"), *r = json_object_get(msg, "r");
    const json_t *remove = json_object_get(msg, "remove"), *place = json_object_get(msg, "place");
    const char *ids[MAX_ITEMS];
    *items = NULL;
    memset(out, 0, sizeof(*out));
    out->surface = json_string_value(json_object_get(msg, "surface"));
    if (out->surface == NULL || !is_natural(version) || !is_natural(base) ||
        !array_of(scores, is_integer) || !array_of(r, is_natural) ||
        json_array_size(r) != json_array_size(scores) ||
        (remove != NULL && !array_of(remove, is_string)) ||
        (place != NULL && !array_of(place, is_place)))
        return RCC_EPROTO;
    json_int_t b = json_integer_value(base);
    if (b != 0 && s->held == NULL && s->held_version < 0)
        return 1; /* changes of a subscription replaced since: dropped */
    if (b != 0 && (s->held == NULL || s->held_version != b))
        return RCC_EPROTO;
    int rc = merge_tables(c, msg);
    if (rc != 0)
        return rc;
    size_t n = json_array_size(scores);
    json_t *held = json_array();
    if (held == NULL)
        return RCC_ENOMEM;
    /* The base list, emptied for a whole list (base 0). */
    json_t *old = s->held;
    json_t *none = json_array();
    s->held = b == 0 ? none : old;
    rc = none == NULL ? RCC_ENOMEM : new_order(s, remove, place, n, ids);
    s->held = old;
    json_decref(none);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (json_array_append_new(held, json_string(ids[i])) != 0)
            rc = RCC_ENOMEM;
    if (rc == 0 && n > 0 && (*items = calloc(n, sizeof(**items))) == NULL)
        rc = RCC_ENOMEM;
    json_int_t sum = 0; /* scores_e4: the first, then differences */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sum += json_integer_value(json_array_get(scores, i));
        rc = fill_item(c, json_string_value(json_array_get(held, i)), sum, json_array_get(r, i),
                       &(*items)[i]);
    }
    if (rc != 0) {
        json_decref(held);
        free(*items);
        *items = NULL;
        return rc;
    }
    out->version = json_integer_value(version);
    out->items = *items;
    out->n_items = n;
    out->cause = json_string_value(json_object_get(msg, "cause"));
    out->took_us = json_integer_value(json_object_get(msg, "took_us"));
    out->variant = json_string_value(json_object_get(msg, "variant"));
    if (out->variant == NULL)
        out->variant = "control"; /* left out when it is */
    json_decref(s->held);
    s->held = held;
    s->held_version = out->version;
    return 0;
}
