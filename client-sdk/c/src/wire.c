/* SPDX-License-Identifier: Apache-2.0 */
/* JSON and MessagePack encodings of messages held as jansson values (see wire.h). */
#include "wire.h"

#include <math.h>
#include <msgpack.h>
#include <string.h>

const char *rcc_wire_subprotocol(rcc_format_t fmt)
{
    return fmt == RCC_FORMAT_JSON ? "rankcast.v1.json" : "rankcast.v1.msgpack";
}

/* ---- encoding ---- */

static int buf_write(void *data, const char *bytes, size_t len)
{
    return rcc_buf_append(data, bytes, len) == 0 ? 0 : -1;
}

static int pack_string(msgpack_packer *pk, const char *s, size_t len)
{
    if (msgpack_pack_str(pk, len) != 0)
        return RCC_ENOMEM;
    return msgpack_pack_str_body(pk, s, len) == 0 ? 0 : RCC_ENOMEM;
}

static int pack_value(msgpack_packer *pk, const json_t *v);

static int pack_object(msgpack_packer *pk, const json_t *v)
{
    const char *key;
    json_t *item;
    if (msgpack_pack_map(pk, json_object_size(v)) != 0)
        return RCC_ENOMEM;
    json_object_foreach((json_t *)v, key, item)
    {
        int rc = pack_string(pk, key, strlen(key));
        if (rc == 0)
            rc = pack_value(pk, item);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int pack_array(msgpack_packer *pk, const json_t *v)
{
    if (msgpack_pack_array(pk, json_array_size(v)) != 0)
        return RCC_ENOMEM;
    for (size_t i = 0; i < json_array_size(v); i++) {
        int rc = pack_value(pk, json_array_get(v, i));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int pack_value(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return pack_object(pk, v);
    case JSON_ARRAY:
        return pack_array(pk, v);
    case JSON_STRING:
        return pack_string(pk, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v)) == 0 ? 0 : RCC_ENOMEM;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return RCC_EINVAL;
        return msgpack_pack_double(pk, json_real_value(v)) == 0 ? 0 : RCC_ENOMEM;
    case JSON_TRUE:
        return msgpack_pack_true(pk) == 0 ? 0 : RCC_ENOMEM;
    case JSON_FALSE:
        return msgpack_pack_false(pk) == 0 ? 0 : RCC_ENOMEM;
    case JSON_NULL:
    default:
        return msgpack_pack_nil(pk) == 0 ? 0 : RCC_ENOMEM;
    }
}

static int json_write(const char *bytes, size_t len, void *data)
{
    return rcc_buf_append(data, bytes, len) == 0 ? 0 : -1;
}

int rcc_wire_encode(rcc_format_t fmt, const json_t *msg, rcc_buf_t *out)
{
    if (fmt == RCC_FORMAT_JSON) {
        /* jansson refuses to hold a non-finite real, so every value it holds encodes. */
        if (json_dump_callback(msg, json_write, out, JSON_COMPACT) != 0)
            return out->failed ? RCC_ENOMEM : RCC_EINVAL;
        return 0;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    int rc = pack_value(&pk, msg);
    return out->failed ? RCC_ENOMEM : rc;
}

/* ---- decoding ---- */

static json_t *unpack_value(const msgpack_object *o, int depth, const char **err);

static json_t *unpack_map(const msgpack_object *o, int depth, const char **err)
{
    json_t *map = json_object();
    if (map == NULL) {
        *err = "out of memory";
        return NULL;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        char key[256];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size >= sizeof(key) ||
            memchr(kv->key.via.str.ptr, '\0', kv->key.via.str.size) != NULL) {
            *err = "a map key is not a short string";
            json_decref(map);
            return NULL;
        }
        memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
        key[kv->key.via.str.size] = '\0';
        json_t *v = unpack_value(&kv->val, depth + 1, err);
        if (v == NULL || json_object_set_new(map, key, v) != 0) {
            if (v != NULL)
                *err = "a map key is not valid UTF-8";
            json_decref(map);
            return NULL;
        }
    }
    return map;
}

static json_t *unpack_array(const msgpack_object *o, int depth, const char **err)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        *err = "out of memory";
        return NULL;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        json_t *v = unpack_value(&o->via.array.ptr[i], depth + 1, err);
        if (v == NULL || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *unpack_scalar(const msgpack_object *o, const char **err)
{
    json_t *v = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        v = json_null();
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        v = json_boolean(o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* Past int64 there is no jansson integer; the protocol caps ints at 2^53 anyway. */
        v = o->via.u64 <= INT64_MAX ? json_integer((json_int_t)o->via.u64)
                                    : json_real((double)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v = json_integer((json_int_t)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v = json_real(o->via.f64); /* NULL for NaN or infinity */
        if (v == NULL)
            *err = "a number is not finite";
        return v;
    case MSGPACK_OBJECT_STR:
        v = json_stringn(o->via.str.ptr, o->via.str.size); /* NULL if not UTF-8 */
        if (v == NULL)
            *err = "a string is not valid UTF-8";
        return v;
    default:
        *err = "binary or extension values are not part of the protocol";
        return NULL;
    }
    if (v == NULL)
        *err = "out of memory";
    return v;
}

static json_t *unpack_value(const msgpack_object *o, int depth, const char **err)
{
    if (depth > RCC_WIRE_MAX_DEPTH) {
        *err = "nested too deep";
        return NULL;
    }
    if (o->type == MSGPACK_OBJECT_MAP)
        return unpack_map(o, depth, err);
    if (o->type == MSGPACK_OBJECT_ARRAY)
        return unpack_array(o, depth, err);
    return unpack_scalar(o, err);
}

static json_t *decode_msgpack(const void *data, size_t len, const char **err)
{
    msgpack_unpacked result;
    size_t off = 0;
    json_t *msg = NULL;
    msgpack_unpacked_init(&result);
    msgpack_unpack_return ur = msgpack_unpack_next(&result, data, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS)
        *err = "not valid MessagePack";
    else if (off != len)
        *err = "trailing bytes after the message";
    else if (result.data.type != MSGPACK_OBJECT_MAP)
        *err = "the message is not a map";
    else
        msg = unpack_value(&result.data, 0, err);
    msgpack_unpacked_destroy(&result);
    return msg;
}

static json_t *decode_json(const void *data, size_t len, const char **err)
{
    json_error_t jerr;
    json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (msg == NULL) {
        *err = "not valid JSON";
        return NULL;
    }
    if (!json_is_object(msg)) {
        json_decref(msg);
        *err = "the message is not an object";
        return NULL;
    }
    return msg;
}

json_t *rcc_wire_decode(rcc_format_t fmt, const void *data, size_t len, bool binary,
                        const char **err)
{
    if (binary != (fmt == RCC_FORMAT_MSGPACK)) {
        *err = binary ? "a binary frame on the JSON subprotocol"
                      : "a text frame on the MessagePack subprotocol";
        return NULL;
    }
    return fmt == RCC_FORMAT_JSON ? decode_json(data, len, err) : decode_msgpack(data, len, err);
}
