/* SPDX-License-Identifier: Apache-2.0 */
/* Builds the client's messages and reads the server's (see messages.h). The checks here
 * mirror PROTOCOL.md section 2.1, so a bad argument fails in the caller's rcc_track() or
 * rcc_subscribe() instead of as an error from the server later. */
#include "messages.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX    4096
#define LOCALE_MAX   16
#define QUERY_MAX    256
#define CATEGORY_MAX 64
#define TZ_MAX_MIN   840
#define K_MAX        100
#define INT53_MAX    9007199254740992ll /* 2^53 */

static const char *const kind_names[] = {"view",  "click",  "cart",       "purchase", "rating",
                                         "dwell", "search", "impression", "dismiss"};

const char *rcc_kind_name(rcc_kind_t kind)
{
    if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
        return NULL;
    return kind_names[kind];
}

static const char *device_name(rcc_device_t d)
{
    switch (d) {
    case RCC_DEVICE_DESKTOP:
        return "desktop";
    case RCC_DEVICE_MOBILE:
        return "mobile";
    case RCC_DEVICE_TABLET:
        return "tablet";
    case RCC_DEVICE_OTHER:
        return "other";
    default:
        return NULL;
    }
}

/* A json_object_set_new() that remembers a failure, so a builder checks once at the end. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *ok = false;
}

static json_t *finish(json_t *obj, bool ok)
{
    if (obj != NULL && ok)
        return obj;
    json_decref(obj);
    return NULL;
}

/* ---- hello ---- */

int rcc_msg_check_hello(const rcc_hello_t *h, const char **why)
{
    if (h->token != NULL && (h->token[0] == '\0' || strlen(h->token) > TOKEN_MAX))
        *why = "token must be 1..4096 bytes";
    else if (h->user_id != NULL && !rcc_valid_id(h->user_id))
        *why = "user_id must be 1..64 bytes of A-Z a-z 0-9 . _ : @ -";
    else if (h->device != RCC_DEVICE_UNSET && device_name(h->device) == NULL)
        *why = "device is not one of rcc_device_t";
    else if (h->locale != NULL && (h->locale[0] == '\0' || strlen(h->locale) > LOCALE_MAX))
        *why = "locale must be 1..16 bytes";
    else if (h->tz_offset_min < -TZ_MAX_MIN || h->tz_offset_min > TZ_MAX_MIN)
        *why = "tz_offset_min must be -840..840";
    else if (h->consent != RCC_CONSENT_DEFAULT && h->consent != RCC_CONSENT_YES &&
             h->consent != RCC_CONSENT_NO)
        *why = "consent is not one of rcc_consent_t";
    else
        return 0;
    return RCC_EINVAL;
}

json_t *rcc_msg_hello(const rcc_hello_t *h)
{
    json_t *m = json_object();
    bool ok = m != NULL;
    if (!ok)
        return NULL;
    put(m, "type", json_string("hello"), &ok);
    put(m, "v", json_integer(1), &ok);
    if (h->token)
        put(m, "token", json_string(h->token), &ok);
    if (h->user_id)
        put(m, "user", json_string(h->user_id), &ok);
    if (h->device != RCC_DEVICE_UNSET)
        put(m, "device", json_string(device_name(h->device)), &ok);
    if (h->locale)
        put(m, "locale", json_string(h->locale), &ok);
    if (h->tz_offset_min != 0)
        put(m, "tz_offset_min", json_integer(h->tz_offset_min), &ok);
    if (h->consent != RCC_CONSENT_DEFAULT)
        put(m, "consent", json_boolean(h->consent == RCC_CONSENT_YES), &ok);
    return finish(m, ok);
}

/* ---- events ---- */

/* The rules that depend on the kind (PROTOCOL.md, `event`), as the server applies them. */
static const char *check_event_kind_rules(const rcc_event_t *ev)
{
    switch (ev->kind) {
    case RCC_KIND_SEARCH:
        return ev->query == NULL ? "query is required for search" : NULL;
    case RCC_KIND_RATING:
        if (!ev->has_value || ev->value < 1 || ev->value > 5)
            return "value must be 1..5 for rating";
        break;
    case RCC_KIND_DWELL:
        if (!ev->has_value || ev->value < 0)
            return "value must be >= 0 for dwell";
        break;
    case RCC_KIND_PURCHASE:
    case RCC_KIND_CART:
        if (ev->has_value && ev->value <= 0)
            return "value (a quantity) must be > 0";
        break;
    default:
        break;
    }
    return ev->item == NULL ? "item is required for this kind" : NULL;
}

static const char *check_event(const rcc_event_t *ev, const char *id)
{
    size_t qlen = ev->query ? strlen(ev->query) : 0;
    if (rcc_kind_name(ev->kind) == NULL)
        return "kind is not one of rcc_kind_t";
    if (!rcc_valid_id(id))
        return "id must be 1..64 bytes of A-Z a-z 0-9 . _ : @ -";
    if (ev->item != NULL && !rcc_valid_id(ev->item))
        return "item must be 1..64 bytes of A-Z a-z 0-9 . _ : @ -";
    if (ev->has_value && !isfinite(ev->value))
        return "value must be a finite number";
    if (ev->query != NULL && (qlen == 0 || qlen > QUERY_MAX))
        return "query must be 1..256 bytes";
    if (ev->surface != NULL && !rcc_valid_surface(ev->surface))
        return "surface must be 1..32 bytes of a-z 0-9 _ -";
    if (ev->ts_ms > INT53_MAX)
        return "ts_ms is beyond 2^53";
    return check_event_kind_rules(ev);
}

int rcc_msg_event_fields(const rcc_event_t *ev, const char *id, int64_t now_ms, json_t **out,
                         const char **why)
{
    *out = NULL;
    if ((*why = check_event(ev, id)) != NULL)
        return RCC_EINVAL;
    json_t *m = json_object();
    bool ok = m != NULL;
    if (!ok)
        return RCC_ENOMEM;
    put(m, "id", json_string(id), &ok);
    put(m, "kind", json_string(rcc_kind_name(ev->kind)), &ok);
    if (ev->item)
        put(m, "item", json_string(ev->item), &ok);
    if (ev->has_value)
        put(m, "value", json_real(ev->value), &ok);
    /* jansson takes the query as UTF-8; invalid text is refused here, not by the server. */
    if (ev->query && ok && json_object_set_new(m, "query", json_string(ev->query)) != 0) {
        json_decref(m);
        *why = "query must be valid UTF-8";
        return RCC_EINVAL;
    }
    if (ev->surface)
        put(m, "surface", json_string(ev->surface), &ok);
    if (ev->ts_ms >= 0)
        put(m, "ts_ms", json_integer(ev->ts_ms == 0 ? now_ms : ev->ts_ms), &ok);
    *out = finish(m, ok);
    return *out ? 0 : RCC_ENOMEM;
}

json_t *rcc_msg_event(json_t *fields)
{
    json_t *m = json_object();
    bool ok = m != NULL;
    if (!ok)
        return NULL;
    put(m, "type", json_string("event"), &ok);
    if (ok && json_object_update(m, fields) != 0)
        ok = false;
    return finish(m, ok);
}

json_t *rcc_msg_events(json_t *const *fields, size_t n)
{
    json_t *m = json_object(), *arr = json_array();
    bool ok = m != NULL && arr != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append(arr, fields[i]) == 0;
    if (!ok) {
        json_decref(arr);
        json_decref(m);
        return NULL;
    }
    put(m, "type", json_string("events"), &ok);
    put(m, "events", arr, &ok);
    return finish(m, ok);
}

/* ---- subscriptions ---- */

int rcc_msg_check_subscribe(const char *surface, int k, const rcc_filter_t *f)
{
    if (!rcc_valid_surface(surface) || k < 0 || k > K_MAX)
        return RCC_EINVAL;
    if (f == NULL)
        return 0;
    if (f->category != NULL && (strlen(f->category) > CATEGORY_MAX))
        return RCC_EINVAL;
    if (f->has_price_min && !(isfinite(f->price_min) && f->price_min >= 0))
        return RCC_EINVAL;
    if (f->has_price_max && !(isfinite(f->price_max) && f->price_max >= 0))
        return RCC_EINVAL;
    if ((unsigned)f->repeat > RCC_REPEAT_ALLOWED)
        return RCC_EINVAL;
    return 0;
}

json_t *rcc_msg_subscribe(const char *surface, int k, const rcc_filter_t *f)
{
    json_t *m = json_object();
    bool ok = m != NULL;
    if (!ok)
        return NULL;
    put(m, "type", json_string("subscribe"), &ok);
    put(m, "surface", json_string(surface), &ok);
    if (k > 0)
        put(m, "k", json_integer(k), &ok);
    if (f != NULL && f->category != NULL)
        put(m, "category", json_string(f->category), &ok);
    if (f != NULL && f->has_price_min)
        put(m, "price_min", json_real(f->price_min), &ok);
    if (f != NULL && f->has_price_max)
        put(m, "price_max", json_real(f->price_max), &ok);
    static const char *const repeats[] = {NULL, "never", "not_current", "allowed"};
    if (f != NULL && f->repeat > RCC_REPEAT_DEFAULT && f->repeat <= RCC_REPEAT_ALLOWED)
        put(m, "repeat", json_string(repeats[f->repeat]), &ok);
    if (f != NULL && f->compact)
        put(m, "compact", json_true(), &ok);
    return finish(m, ok);
}

json_t *rcc_msg_auth(const char *token)
{
    json_t *m = json_object();
    bool ok = m != NULL;
    if (!ok)
        return NULL;
    put(m, "type", json_string("auth"), &ok);
    put(m, "token", json_string(token), &ok);
    if (!ok) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *rcc_msg_unsubscribe(const char *surface)
{
    json_t *m = json_object();
    bool ok = m != NULL;
    if (!ok)
        return NULL;
    put(m, "type", json_string("unsubscribe"), &ok);
    put(m, "surface", json_string(surface), &ok);
    return finish(m, ok);
}

/* ---- received messages ---- */

const char *rcc_msg_type(const json_t *msg)
{
    return json_string_value(json_object_get(msg, "type"));
}

void rcc_msg_default_limits(rcc_limits_t *l)
{
    l->max_message_bytes = 65536;
    l->max_batch = 100;
    l->max_subscriptions = 16;
    l->max_k = 100;
    l->events_per_sec = 200;
    l->events_burst = 400;
}

/* A positive limit from welcome.limits, or the default when missing or nonsensical. */
static void read_limit(const json_t *limits, const char *key, int64_t *value)
{
    json_t *v = json_object_get(limits, key);
    if (json_is_integer(v) && json_integer_value(v) > 0)
        *value = json_integer_value(v);
}

int rcc_msg_read_welcome(const json_t *msg, const char **user_id, rcc_limits_t *l)
{
    const json_t *limits = json_object_get(msg, "limits");
    *user_id = json_string_value(json_object_get(msg, "user"));
    if (*user_id == NULL || !rcc_valid_id(*user_id))
        return RCC_EPROTO;
    rcc_msg_default_limits(l);
    read_limit(limits, "max_message_bytes", &l->max_message_bytes);
    read_limit(limits, "max_batch", &l->max_batch);
    read_limit(limits, "max_subscriptions", &l->max_subscriptions);
    read_limit(limits, "max_k", &l->max_k);
    read_limit(limits, "events_per_sec", &l->events_per_sec);
    read_limit(limits, "events_burst", &l->events_burst);
    return 0;
}

/* An item's reason, leniently: a reason is an extra, never worth refusing a list for. Without
 * a string code there is none; a field of the wrong type is left out. */
void rcc_msg_read_reason(const json_t *j, rcc_reason_t *r)
{
    const json_t *age = json_object_get(j, "age_s");
    memset(r, 0, sizeof(*r));
    r->age_s = -1;
    if (!json_is_object(j) || (r->code = json_string_value(json_object_get(j, "code"))) == NULL)
        return;
    r->item = json_string_value(json_object_get(j, "item"));
    r->item_name = json_string_value(json_object_get(j, "item_name"));
    r->category = json_string_value(json_object_get(j, "category"));
    r->category_name = json_string_value(json_object_get(j, "category_name"));
    r->segment = json_string_value(json_object_get(j, "segment"));
    r->locale = json_string_value(json_object_get(j, "locale"));
    r->kind = json_string_value(json_object_get(j, "kind"));
    if (json_is_integer(age) && json_integer_value(age) >= 0)
        r->age_s = json_integer_value(age);
}

static int read_item(const json_t *j, rcc_item_t *it)
{
    const json_t *price = json_object_get(j, "price");
    memset(it, 0, sizeof(*it));
    it->item = json_string_value(json_object_get(j, "item"));
    if (!json_is_object(j) || it->item == NULL)
        return RCC_EPROTO;
    it->score = json_number_value(json_object_get(j, "score"));
    it->src = json_string_value(json_object_get(j, "src"));
    it->why = json_string_value(json_object_get(j, "why"));
    it->name = json_string_value(json_object_get(j, "name"));
    it->category = json_string_value(json_object_get(j, "category"));
    it->has_price = json_is_number(price);
    it->price = json_number_value(price);
    rcc_msg_read_reason(json_object_get(j, "reason"), &it->reason);
    return 0;
}

int rcc_msg_read_recs(const json_t *msg, rcc_recs_t *out, rcc_item_t **items)
{
    const json_t *arr = json_object_get(msg, "items");
    const json_t *version = json_object_get(msg, "version");
    memset(out, 0, sizeof(*out));
    *items = NULL;
    out->surface = json_string_value(json_object_get(msg, "surface"));
    if (out->surface == NULL || !json_is_integer(version) || !json_is_array(arr))
        return RCC_EPROTO;
    out->version = json_integer_value(version);
    out->cause = json_string_value(json_object_get(msg, "cause"));
    out->took_us = json_integer_value(json_object_get(msg, "took_us"));
    out->variant = json_string_value(json_object_get(msg, "variant"));
    out->n_items = json_array_size(arr);
    if (out->n_items == 0)
        return 0;
    *items = calloc(out->n_items, sizeof(**items));
    if (*items == NULL)
        return RCC_ENOMEM;
    for (size_t i = 0; i < out->n_items; i++)
        if (read_item(json_array_get(arr, i), &(*items)[i]) != 0)
            return RCC_EPROTO;
    out->items = *items;
    return 0;
}

int rcc_msg_read_error(const json_t *msg, rcc_error_t *out)
{
    const json_t *code = json_object_get(msg, "code");
    memset(out, 0, sizeof(*out));
    if (!json_is_integer(code) || json_integer_value(code) <= 0 || json_integer_value(code) > 65535)
        return RCC_EPROTO;
    out->code = (int)json_integer_value(code);
    out->name = json_string_value(json_object_get(msg, "name"));
    if (out->name == NULL)
        out->name = rcc_strerror(out->code);
    out->message = json_string_value(json_object_get(msg, "message"));
    if (out->message == NULL)
        out->message = "";
    out->event_id = json_string_value(json_object_get(msg, "id"));
    out->fatal = json_is_true(json_object_get(msg, "fatal"));
    out->about = json_string_value(json_object_get(msg, "about"));
    out->surface = json_string_value(json_object_get(msg, "surface"));
    const json_t *t = json_object_get(msg, "t");
    out->has_t = json_is_number(t);
    out->t = out->has_t ? json_number_value(t) : 0;
    return 0;
}

bool rcc_msg_code_retryable(int code)
{
    return code == 4020 || code == 4500 || code == 4503;
}
