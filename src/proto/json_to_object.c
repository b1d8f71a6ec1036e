/* SPDX-License-Identifier: Apache-2.0 */
/* JSON to MessagePack objects: a jansson value (an admin API body, a push's data) becomes a
 * msgpack_object tree in a zone, so it can be published and encoded like a value that
 * arrived as MessagePack. */
#include "proto/json_to_object.h"
#include "util/error.h"

#include <jansson.h>
#include <string.h>

static int json_to_obj(const json_t *j, msgpack_zone *z, msgpack_object *o);

static int json_str_to_obj(const char *s, size_t n, msgpack_zone *z, msgpack_object *o)
{
    char *copy = msgpack_zone_malloc(z, n ? n : 1);
    if (copy == NULL)
        return RC_ENOMEM;
    memcpy(copy, s, n);
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = copy;
    o->via.str.size = (uint32_t)n;
    return 0;
}

static int json_object_to_obj(const json_t *j, msgpack_zone *z, msgpack_object *o)
{
    size_t n = json_object_size(j);
    msgpack_object_kv *kv = msgpack_zone_malloc(z, (n ? n : 1) * sizeof(*kv));
    const char *key;
    json_t *val;
    size_t i = 0;
    if (kv == NULL)
        return RC_ENOMEM;
    json_object_foreach((json_t *)j, key, val)
    {
        int rc = json_str_to_obj(key, strlen(key), z, &kv[i].key);
        if (rc == 0)
            rc = json_to_obj(val, z, &kv[i].val);
        if (rc != 0)
            return rc;
        i++;
    }
    o->type = MSGPACK_OBJECT_MAP;
    o->via.map.size = (uint32_t)n;
    o->via.map.ptr = kv;
    return 0;
}

static int json_array_to_obj(const json_t *j, msgpack_zone *z, msgpack_object *o)
{
    size_t n = json_array_size(j);
    msgpack_object *items = msgpack_zone_malloc(z, (n ? n : 1) * sizeof(*items));
    if (items == NULL)
        return RC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = json_to_obj(json_array_get(j, i), z, &items[i]);
        if (rc != 0)
            return rc;
    }
    o->type = MSGPACK_OBJECT_ARRAY;
    o->via.array.size = (uint32_t)n;
    o->via.array.ptr = items;
    return 0;
}

static int json_to_obj(const json_t *j, msgpack_zone *z, msgpack_object *o)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return json_object_to_obj(j, z, o);
    case JSON_ARRAY:
        return json_array_to_obj(j, z, o);
    case JSON_STRING:
        return json_str_to_obj(json_string_value(j), json_string_length(j), z, o);
    case JSON_INTEGER: {
        json_int_t v = json_integer_value(j);
        if (v >= 0) {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = (uint64_t)v;
        } else {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = v;
        }
        return 0;
    }
    case JSON_REAL:
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = json_real_value(j);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = json_is_true(j);
        return 0;
    case JSON_NULL:
        o->type = MSGPACK_OBJECT_NIL;
        return 0;
    }
    return RC_EPARSE;
}

int rc_proto_json_to_object(const void *json, msgpack_zone *zone, msgpack_object *out)
{
    return json_to_obj(json, zone, out) == 0 ? 0 : RC_ENOMEM;
}
