/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol v1 codec. Decoding turns either encoding into one msgpack_object tree (JSON by
 * json_read.h, straight into the decoder's zone), then one table-driven validator fills the
 * C structs, so both subprotocols accept and refuse exactly the same messages. */
#include "proto/proto.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

const char *rc_proto_error_name(int code)
{
    switch (code) {
#define RC_PERR_CASE(sym, c, name)                                                                 \
    case c:                                                                                        \
        return name;
        RC_PROTO_ERRORS(RC_PERR_CASE)
#undef RC_PERR_CASE
    }
    return NULL;
}

static const char *const kind_names[RC_EVENT_KIND_COUNT] = {
    "view", "click", "cart", "purchase", "rating", "dwell", "search", "impression", "dismiss"};
static const char *const device_names[RC_DEVICE_COUNT] = {"other", "desktop", "mobile", "tablet"};

const char *rc_event_kind_name(int kind)
{
    return kind >= 0 && kind < RC_EVENT_KIND_COUNT ? kind_names[kind] : "unknown";
}

const char *rc_device_name(int device)
{
    return device >= 0 && device < RC_DEVICE_COUNT ? device_names[device] : "other";
}

/* ---- field validation ---- */

typedef enum {
    F_TYPE,    /* the `type` field itself: already checked */
    F_ID,      /* string, 1..64 bytes of A-Za-z0-9._:@- */
    F_SURFACE, /* string, 1..32 bytes of a-z0-9_- */
    F_STR,     /* UTF-8 string, min..max bytes */
    F_INT,     /* integer in min..max */
    F_NUM,     /* finite number in min..max */
    F_KIND,    /* event kind name */
    F_DEVICE,  /* device class name */
    F_REPEAT,  /* repeat policy name (subscribe) */
    F_ARRAY,   /* array, validated by the caller */
    F_BOOL,    /* true or false */
} field_kind_t;

typedef struct {
    const char *name;
    field_kind_t kind;
    bool required;
    double min, max;
    size_t offset;     /* of the rc_str_t / int64_t / double / int target in the struct */
    size_t has_offset; /* of a bool "present" flag, or (size_t)-1 */
} field_t;

#define NO_HAS ((size_t)-1)
#define INT53  9007199254740992.0

#define EVF(f) offsetof(rc_proto_event_t, f)
static const field_t event_fields[] = {
    {"id", F_ID, true, 0, 0, EVF(id), NO_HAS},
    {"kind", F_KIND, true, 0, 0, EVF(kind), NO_HAS},
    {"item", F_ID, false, 0, 0, EVF(item), NO_HAS},
    {"value", F_NUM, false, -1e300, 1e300, EVF(value), EVF(has_value)},
    {"query", F_STR, false, 1, 256, EVF(query), NO_HAS},
    {"surface", F_SURFACE, false, 0, 0, EVF(surface), NO_HAS},
    {"ts_ms", F_INT, false, 0, INT53, EVF(ts_ms), EVF(has_ts)},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

#define HF(f) offsetof(rc_msg_t, u.hello.f)
static const field_t hello_fields[] = {
    {"v", F_INT, true, -INT53, INT53, HF(v), NO_HAS},
    {"token", F_STR, false, 1, 4096, HF(token), NO_HAS},
    {"user", F_ID, false, 0, 0, HF(user), NO_HAS},
    {"device", F_DEVICE, false, 0, 0, HF(device), NO_HAS},
    {"locale", F_STR, false, 1, 16, HF(locale), NO_HAS},
    {"tz_offset_min", F_INT, false, -840, 840, HF(tz_offset_min), NO_HAS},
    {"consent", F_BOOL, false, 0, 0, HF(consent), HF(has_consent)},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

#define SF(f) offsetof(rc_msg_t, u.subscribe.f)
static const field_t subscribe_fields[] = {
    {"surface", F_SURFACE, true, 0, 0, SF(surface), NO_HAS},
    {"k", F_INT, false, 1, 100, SF(k), NO_HAS},
    {"category", F_STR, false, 1, 64, SF(category), NO_HAS},
    {"price_min", F_NUM, false, 0, 1e300, SF(price_min), SF(has_price_min)},
    {"price_max", F_NUM, false, 0, 1e300, SF(price_max), SF(has_price_max)},
    {"repeat", F_REPEAT, false, 0, 0, SF(repeat), NO_HAS},
    {"compact", F_BOOL, false, 0, 0, SF(compact), SF(has_compact)},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

static const field_t unsubscribe_fields[] = {
    {"surface", F_SURFACE, true, 0, 0, offsetof(rc_msg_t, u.unsubscribe.surface), NO_HAS},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

static const field_t ping_fields[] = {
    {"t", F_NUM, false, -1e300, 1e300, offsetof(rc_msg_t, u.ping.t),
     offsetof(rc_msg_t, u.ping.has_t)},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

static const field_t auth_fields[] = {
    {"token", F_STR, true, 1, 4096, offsetof(rc_msg_t, u.auth.token), NO_HAS},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

static const field_t events_fields[] = {
    {"events", F_ARRAY, true, 0, 0, 0, NO_HAS},
    {NULL, F_TYPE, false, 0, 0, 0, NO_HAS},
};

static int fail(rc_proto_decoder_t *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(rc_proto_decoder_t *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    va_end(ap);
    return code;
}

/* Inline: it runs for every byte of every id. Left to the compiler it stayed a call once the
 * map and string helpers came from mpack_read.h, and decoding took about 1 % more
 * instructions (callgrind, an event, a batch and a hello). */
static inline bool id_char(char c, bool surface)
{
    if (surface)
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '@' || c == '-';
}

bool rc_proto_valid_id(const char *s, size_t n)
{
    if (n == 0 || n > RC_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char(s[i], false))
            return false;
    return true;
}

/* Strict UTF-8 (rc_utf8_sequence). JSON strings were checked while read; MessagePack
 * strings are not checked by msgpack-c. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = rc_utf8_sequence(s + i, s + n)) == 0)
            return false;
    return true;
}

static int match_enum(const msgpack_object *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (rc_mp_str_is(v, names[i]))
            return i;
    return -1;
}

/* Checks one value against its field and stores it into `base`. */
static int set_field(rc_proto_decoder_t *d, const field_t *f, const msgpack_object *v, void *base)
{
    char *dst = (char *)base + f->offset;
    double num = 0; /* F_NUM: read once, by the type check, and stored below */

    if (v->type == MSGPACK_OBJECT_NIL)
        return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is null", f->name);
    switch (f->kind) {
    case F_TYPE:
    case F_ARRAY:
        if (f->kind == F_ARRAY && v->type != MSGPACK_OBJECT_ARRAY)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be an array", f->name);
        return 0;
    case F_ID:
    case F_SURFACE:
    case F_STR:
    case F_KIND:
    case F_DEVICE:
    case F_REPEAT:
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be a string", f->name);
        break;
    case F_INT:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
            v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be an integer", f->name);
        break;
    case F_NUM:
        if (!rc_mp_number(v, &num) || !isfinite(num))
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be a number", f->name);
        break;
    case F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be true or false", f->name);
        *(bool *)dst = v->via.boolean;
        *(bool *)((char *)base + f->has_offset) = true;
        return 0;
    }

    const char *s = v->via.str.ptr;
    uint32_t n = v->via.str.size;
    switch (f->kind) {
    case F_ID:
    case F_SURFACE: {
        uint32_t max = f->kind == F_ID ? RC_ID_MAX : RC_SURFACE_MAX;
        if (n == 0 || n > max)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be 1..%s bytes", f->name,
                        f->kind == F_ID ? "64" : "32");
        for (uint32_t i = 0; i < n; i++)
            if (!id_char(s[i], f->kind == F_SURFACE))
                return fail(d, RC_PERR_INVALID_FIELD, "field '%s' has a character outside %s",
                            f->name, f->kind == F_ID ? "A-Za-z0-9._:@-" : "a-z0-9_-");
        *(rc_str_t *)dst = (rc_str_t){s, n};
        return 0;
    }
    case F_STR:
        if (n < f->min || n > f->max || !utf8_valid((const unsigned char *)s, n))
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' must be UTF-8 of bounded length",
                        f->name);
        *(rc_str_t *)dst = (rc_str_t){s, n};
        return 0;
    case F_KIND: {
        int k = match_enum(v, kind_names, RC_EVENT_KIND_COUNT);
        if (k < 0)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is not a known event kind", f->name);
        *(rc_event_kind_t *)dst = (rc_event_kind_t)k;
        return 0;
    }
    case F_DEVICE: {
        int k = match_enum(v, device_names, RC_DEVICE_COUNT);
        if (k < 0)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is not a known device class",
                        f->name);
        *(rc_device_t *)dst = (rc_device_t)k;
        return 0;
    }
    case F_REPEAT: {
        static const char *const repeat_names[] = {"never", "not_current", "allowed"};
        int k = match_enum(v, repeat_names, 3);
        if (k < 0)
            return fail(d, RC_PERR_INVALID_FIELD,
                        "field '%s' must be \"never\", \"not_current\" or \"allowed\"", f->name);
        *(int32_t *)dst = k;
        return 0;
    }
    case F_INT: {
        bool neg = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if ((!neg && v->via.u64 > (uint64_t)INT53) || (neg && v->via.i64 < -(int64_t)INT53))
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is out of range", f->name);
        int64_t x = neg ? v->via.i64 : (int64_t)v->via.u64;
        if ((double)x < f->min || (double)x > f->max)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is out of range", f->name);
        /* Targets narrower than int64 are int32 (k, tz_offset_min); bounds fit them. */
        if (f->max <= 2147483647.0 && f->min >= -2147483648.0)
            *(int32_t *)dst = (int32_t)x;
        else
            *(int64_t *)dst = x;
        break;
    }
    case F_NUM:
        if (num < f->min || num > f->max)
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is out of range", f->name);
        *(double *)dst = num;
        break;
    default:
        return 0;
    }
    if (f->has_offset != NO_HAS)
        *(bool *)((char *)base + f->has_offset) = true;
    return 0;
}

/* Walks a map against a field table: unknown, repeated and missing fields are errors.
 * `type_allowed` says whether a `type` key belongs here (not inside batch elements). */
static int decode_fields(rc_proto_decoder_t *d, const msgpack_object_map *map,
                         const field_t *fields, void *base, bool type_allowed,
                         const msgpack_object **array_out)
{
    uint32_t seen = 0;
    bool seen_type = false;

    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        const msgpack_object *v = &map->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR)
            return fail(d, RC_PERR_MALFORMED, "map key is not a string");
        if (type_allowed && rc_mp_str_is(k, "type")) {
            if (seen_type)
                return fail(d, RC_PERR_INVALID_FIELD, "field 'type' appears twice");
            seen_type = true;
            continue;
        }
        int fi = -1;
        for (int j = 0; fields[j].name != NULL; j++) {
            if (rc_mp_str_is(k, fields[j].name)) {
                fi = j;
                break;
            }
        }
        if (fi < 0) {
            char name[40];
            size_t n = k->via.str.size < sizeof(name) - 1 ? k->via.str.size : sizeof(name) - 1;
            for (size_t c = 0; c < n; c++) {
                char ch = k->via.str.ptr[c];
                name[c] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? ch : '?';
            }
            name[n] = '\0';
            return fail(d, RC_PERR_INVALID_FIELD, "unknown field '%s'", name);
        }
        if (seen & (1u << fi))
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' appears twice", fields[fi].name);
        seen |= 1u << fi;
        int rc = set_field(d, &fields[fi], v, base);
        if (rc != 0)
            return rc;
        if (fields[fi].kind == F_ARRAY && array_out != NULL)
            *array_out = v;
    }
    for (int j = 0; fields[j].name != NULL; j++)
        if (fields[j].required && !(seen & (1u << j)))
            return fail(d, RC_PERR_INVALID_FIELD, "field '%s' is required", fields[j].name);
    return 0;
}

/* Rules that depend on the kind of event (PROTOCOL.md, `event`). */
static int check_event_rules(rc_proto_decoder_t *d, const rc_proto_event_t *ev)
{
    switch (ev->kind) {
    case RC_EV_SEARCH:
        if (ev->query.n == 0)
            return fail(d, RC_PERR_INVALID_FIELD, "field 'query' is required for %s", "search");
        return 0;
    case RC_EV_RATING:
        if (!ev->has_value || ev->value < 1 || ev->value > 5)
            return fail(d, RC_PERR_INVALID_FIELD, "field 'value' must be 1..5 for %s", "rating");
        break;
    case RC_EV_DWELL:
        if (!ev->has_value || ev->value < 0)
            return fail(d, RC_PERR_INVALID_FIELD, "field 'value' must be >= 0 for %s", "dwell");
        break;
    case RC_EV_PURCHASE:
    case RC_EV_CART:
        if (ev->has_value && ev->value <= 0)
            return fail(d, RC_PERR_INVALID_FIELD, "field 'value' must be > 0 for %s",
                        rc_event_kind_name(ev->kind));
        break;
    default:
        break;
    }
    if (ev->item.n == 0)
        return fail(d, RC_PERR_INVALID_FIELD, "field 'item' is required for %s",
                    rc_event_kind_name(ev->kind));
    return 0;
}

/* The event's id, if it has a valid one, whatever else is wrong with it: an error that
 * names the event lets the client drop it from its retry queue. */
static rc_str_t find_event_id(const msgpack_object_map *map)
{
    const msgpack_object *v = rc_mp_map_get(map, "id");
    if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
        v->via.str.size > RC_ID_MAX)
        return (rc_str_t){NULL, 0};
    for (uint32_t c = 0; c < v->via.str.size; c++)
        if (!id_char(v->via.str.ptr[c], false))
            return (rc_str_t){NULL, 0};
    return (rc_str_t){v->via.str.ptr, v->via.str.size};
}

static int decode_event(rc_proto_decoder_t *d, const msgpack_object_map *map, rc_proto_event_t *ev,
                        bool type_allowed)
{
    memset(ev, 0, sizeof(*ev));
    int rc = decode_fields(d, map, event_fields, ev, type_allowed, NULL);
    if (rc == 0)
        rc = check_event_rules(d, ev);
    if (rc != 0)
        d->err_id = find_event_id(map);
    return rc;
}

static int decode_batch(rc_proto_decoder_t *d, const msgpack_object *arr, rc_msg_t *out)
{
    uint32_t n = arr->via.array.size;
    if (n == 0)
        return fail(d, RC_PERR_INVALID_FIELD, "field 'events' must hold 1..%s events", "100");
    if (n > d->max_batch)
        return fail(d, RC_PERR_BATCH_TOO_LARGE, "more than %s events in one batch", "max_batch");
    rc_proto_batch_item_t *items = msgpack_zone_malloc(&d->zone, n * sizeof(*items));
    if (items == NULL)
        return fail(d, RC_PERR_INTERNAL, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *el = &arr->via.array.ptr[i];
        rc_proto_batch_item_t *it = &items[i];
        int rc;
        d->err_id = (rc_str_t){NULL, 0};
        if (el->type != MSGPACK_OBJECT_MAP) {
            memset(&it->ev, 0, sizeof(it->ev));
            rc = fail(d, RC_PERR_INVALID_FIELD, "events[] element is not a map");
        } else {
            rc = decode_event(d, &el->via.map, &it->ev, false);
        }
        it->err = rc;
        it->err_msg = NULL;
        if (rc != 0) {
            size_t len = strlen(d->err) + 1;
            char *m = msgpack_zone_malloc(&d->zone, len);
            if (m != NULL)
                memcpy(m, d->err, len);
            it->err_msg = m ? m : "invalid event";
            it->ev.id = d->err_id;
        }
    }
    d->err_id = (rc_str_t){NULL, 0};
    out->u.events.items = items;
    out->u.events.n = n;
    return 0;
}

static const struct {
    const char *name;
    rc_msg_type_t type;
    const field_t *fields;
} message_types[] = {
    {"hello", RC_MSG_HELLO, hello_fields},
    {"event", RC_MSG_EVENT, event_fields},
    {"events", RC_MSG_EVENTS, events_fields},
    {"subscribe", RC_MSG_SUBSCRIBE, subscribe_fields},
    {"unsubscribe", RC_MSG_UNSUBSCRIBE, unsubscribe_fields},
    {"ping", RC_MSG_PING, ping_fields},
    {"auth", RC_MSG_AUTH, auth_fields},
};

const char *rc_proto_msg_type_name(rc_msg_type_t type)
{
    for (size_t i = 0; i < sizeof(message_types) / sizeof(message_types[0]); i++)
        if (message_types[i].type == type)
            return message_types[i].name;
    return NULL;
}

static int decode_message(rc_proto_decoder_t *d, const msgpack_object *root, rc_msg_t *out)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return fail(d, RC_PERR_MALFORMED, "a message must be a map");
    const msgpack_object_map *map = &root->via.map;
    const msgpack_object *type = NULL;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return fail(d, RC_PERR_MALFORMED, "map key is not a string");
        if (rc_mp_str_is(k, "type"))
            type = &map->ptr[i].val;
    }
    if (type == NULL || type->type != MSGPACK_OBJECT_STR)
        return fail(d, RC_PERR_UNKNOWN_TYPE, "field 'type' must be a message type");

    for (size_t t = 0; t < sizeof(message_types) / sizeof(message_types[0]); t++) {
        if (!rc_mp_str_is(type, message_types[t].name))
            continue;
        out->type = message_types[t].type;
        if (out->type == RC_MSG_EVENT) {
            return decode_event(d, map, &out->u.event, true);
        }
        const msgpack_object *arr = NULL;
        int rc = decode_fields(d, map, message_types[t].fields, out, true, &arr);
        if (rc != 0)
            return rc;
        if (out->type == RC_MSG_HELLO && out->u.hello.v != 1)
            return fail(d, RC_PERR_UNSUPPORTED_VERSION, "protocol version must be %s", "1");
        if (out->type == RC_MSG_SUBSCRIBE) {
            if (out->u.subscribe.k == 0)
                out->u.subscribe.k = 10;
            if ((uint32_t)out->u.subscribe.k > d->max_k)
                return fail(d, RC_PERR_INVALID_FIELD, "field 'k' exceeds max_k");
        }
        if (out->type == RC_MSG_EVENTS)
            return decode_batch(d, arr, out);
        return 0;
    }
    return fail(d, RC_PERR_UNKNOWN_TYPE, "unknown message type");
}

int rc_proto_decoder_init(rc_proto_decoder_t *d, uint32_t max_batch, uint32_t max_k)
{
    memset(d, 0, sizeof(*d));
    if (!msgpack_zone_init(&d->zone, 4096))
        return RC_ENOMEM;
    d->max_batch = max_batch;
    d->max_k = max_k;
    return 0;
}

void rc_proto_decoder_free(rc_proto_decoder_t *d)
{
    if (d == NULL)
        return;
    msgpack_zone_destroy(&d->zone);
    rc_json_reader_free(&d->json);
}

/* Is `o` a map whose "type" is "event"? */
static bool is_event(const msgpack_object *o)
{
    const msgpack_object *v =
        o->type == MSGPACK_OBJECT_MAP ? rc_mp_map_get(&o->via.map, "type") : NULL;
    return v != NULL && rc_mp_str_is(v, "event");
}

/* The depth both readers allow a client message (MessagePack: rc_mp_check). */
#define MAX_DEPTH 32

static int decode_json_root(rc_proto_decoder_t *d, const void *data, size_t len,
                            msgpack_object *root)
{
    char what[96];
    switch (rc_json_read(&d->json, data, len, MAX_DEPTH, &d->zone, root, what, sizeof(what))) {
    case RC_JSON_OK:
        return 0;
    case RC_JSON_DUPLICATE:
        return fail(d, RC_PERR_INVALID_FIELD, "a field appears twice");
    case RC_JSON_OVERFLOW:
        /* Valid JSON whose number no field can hold: out of range, not malformed. The
         * message is whole (such numbers read as doubles), so an event can be named. */
        if (is_event(root))
            d->err_id = find_event_id(&root->via.map);
        return fail(d, RC_PERR_INVALID_FIELD, "a number is out of range");
    case RC_JSON_NOMEM:
        return fail(d, RC_PERR_INTERNAL, "out of memory");
    default:
        return fail(d, RC_PERR_MALFORMED, "invalid JSON: %s", what);
    }
}

/* What a refused message was, for its error (PROTOCOL.md, error `about`): its type, and the
 * surface or `t` it carried when those are valid themselves (never an echo of bad input). */
static void note_refused(rc_proto_decoder_t *d, const msgpack_object *root, rc_msg_type_t type)
{
    d->err_about = (rc_error_about_t){.type = rc_proto_msg_type_name(type)};
    const msgpack_object_map *map = &root->via.map;
    if (type == RC_MSG_SUBSCRIBE || type == RC_MSG_UNSUBSCRIBE) {
        const msgpack_object *v = rc_mp_map_get(map, "surface");
        if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
            v->via.str.size > RC_SURFACE_MAX)
            return;
        for (uint32_t c = 0; c < v->via.str.size; c++)
            if (!id_char(v->via.str.ptr[c], true))
                return;
        d->err_about.surface = (rc_str_t){v->via.str.ptr, v->via.str.size};
    } else if (type == RC_MSG_PING) {
        const msgpack_object *v = rc_mp_map_get(map, "t");
        if (v == NULL)
            return;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            d->err_about.t = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            d->err_about.t = (double)v->via.i64;
        else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            d->err_about.t = v->via.f64;
        else
            return;
        d->err_about.has_t = isfinite(d->err_about.t);
    }
}

int rc_proto_decode(rc_proto_decoder_t *d, rc_format_t fmt, const void *data, size_t len,
                    rc_msg_t *out)
{
    msgpack_object root;
    int rc;

    msgpack_zone_clear(&d->zone);
    d->err[0] = '\0';
    d->err_id = (rc_str_t){NULL, 0};
    d->err_about = (rc_error_about_t){0};
    memset(out, 0, sizeof(*out));

    if (fmt == RC_FMT_JSON) {
        if ((rc = decode_json_root(d, data, len, &root)) != 0)
            return rc;
    } else {
        size_t off = 0;
        if (rc_mp_check(data, len, MAX_DEPTH) != 0)
            return fail(d, RC_PERR_MALFORMED, "invalid MessagePack");
        msgpack_unpack_return ur = msgpack_unpack(data, len, &off, &d->zone, &root);
        if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
            return fail(d, RC_PERR_INTERNAL, "out of memory");
        if (ur != MSGPACK_UNPACK_SUCCESS)
            return fail(d, RC_PERR_MALFORMED, "invalid MessagePack%s%s",
                        ur == MSGPACK_UNPACK_EXTRA_BYTES ? " (trailing bytes)" : "", "");
    }
    rc = decode_message(d, &root, out);
    if (rc != 0 && out->type != RC_MSG_NONE)
        note_refused(d, &root, out->type);
    return rc;
}
