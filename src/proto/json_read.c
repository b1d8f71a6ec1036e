/* SPDX-License-Identifier: Apache-2.0 */
/* Strict JSON into msgpack objects; see json_read.h. Recursive descent, bounded by
 * max_depth; members of open containers wait on the reader's stack and are copied into the
 * zone when their container closes, when their count is known. */
#include "proto/json_read.h"
#include "util/grow.h"

#include <xxhash.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(msgpack_object_kv) == 2 * sizeof(msgpack_object),
               "a map's pairs are copied from the stack as key, value, key, value...");

/* Digits and signs of a real number copied for strtod() without the zone. */
#define NUMBER_BUF 64

typedef struct parser {
    rc_json_reader_t *r;
    msgpack_zone *zone;
    const unsigned char *start, *p, *end;
    uint32_t depth, max_depth;
    bool overflow;
    const char *error; /* RC_JSON_MALFORMED: what */
} parser_t;

void rc_json_reader_init(rc_json_reader_t *r)
{
    memset(r, 0, sizeof(*r));
}

void rc_json_reader_free(rc_json_reader_t *r)
{
    if (r == NULL)
        return;
    free(r->stack);
    free(r->keys);
    rc_json_reader_init(r);
}

static rc_json_status_t malformed(parser_t *ps, const char *what)
{
    ps->error = what;
    return RC_JSON_MALFORMED;
}

static void skip_space(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static rc_json_status_t push(parser_t *ps, const msgpack_object *o)
{
    rc_json_reader_t *r = ps->r;
    if (r->len == r->cap) {
        msgpack_object *s = rc_grow(r->stack, &r->cap, sizeof(*s), 64);
        if (s == NULL)
            return RC_JSON_NOMEM;
        r->stack = s;
    }
    r->stack[r->len++] = *o;
    return RC_JSON_OK;
}

size_t rc_utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The escapes of s[0..n) (checked for form by the caller) decoded into the zone. Never
 * longer than the escaped text: \uXXXX is 6 bytes for at most 3, a pair 12 for 4. */
static rc_json_status_t unescape(parser_t *ps, const unsigned char *s, size_t n, msgpack_object *o)
{
    char *out = msgpack_zone_malloc(ps->zone, n), *q = out;
    if (out == NULL)
        return RC_JSON_NOMEM;
    const unsigned char *x = s, *e = s + n;
    while (x < e) {
        if (*x != '\\') {
            *q++ = (char)*x++;
            continue;
        }
        unsigned char c = x[1];
        x += 2;
        static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
        const char *k = c != 'u' ? strchr(simple_in, c) : NULL;
        if (k != NULL && c != '\0') {
            *q++ = simple_out[k - simple_in];
            continue;
        }
        if (c != 'u' || e - x < 4)
            return malformed(ps, "invalid escape in a string");
        int cp = hex4(x);
        x += 4;
        if (cp < 0)
            return malformed(ps, "invalid \\u escape");
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return malformed(ps, "a lone low surrogate");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            int low = e - x >= 6 && x[0] == '\\' && x[1] == 'u' ? hex4(x + 2) : -1;
            if (low < 0xdc00 || low > 0xdfff)
                return malformed(ps, "a high surrogate without its low half");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            x += 6;
        }
        if (cp == 0)
            return malformed(ps, "\\u0000 is not allowed");
        q += utf8_encode((uint32_t)cp, q);
    }
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = out;
    o->via.str.size = (uint32_t)(q - out);
    return RC_JSON_OK;
}

static rc_json_status_t read_string(parser_t *ps, msgpack_object *o)
{
    const unsigned char *s = ++ps->p; /* after the opening quote */
    bool escaped = false;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = *ps->p;
        if (c == '\\') {
            escaped = true;
            ps->p += ps->end - ps->p >= 2 ? 2 : 1;
        } else if (c < 0x20) {
            return malformed(ps, "a control character in a string");
        } else {
            size_t n = rc_utf8_sequence(ps->p, ps->end);
            if (n == 0)
                return malformed(ps, "invalid UTF-8");
            ps->p += n;
        }
    }
    if (ps->p >= ps->end)
        return malformed(ps, "an unterminated string");
    size_t n = (size_t)(ps->p - s);
    ps->p++; /* the closing quote */
    if (n > UINT32_MAX)
        return malformed(ps, "a string too long");
    if (escaped)
        return unescape(ps, s, n, o);
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = (const char *)s;
    o->via.str.size = (uint32_t)n;
    return RC_JSON_OK;
}

static bool is_digit(const parser_t *ps)
{
    return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static void skip_digits(parser_t *ps)
{
    while (is_digit(ps))
        ps->p++;
}

/* A real number of n bytes at s (grammar already checked): strtod on a NUL-ended copy. */
static rc_json_status_t read_real(parser_t *ps, const unsigned char *s, size_t n, msgpack_object *o)
{
    char small[NUMBER_BUF];
    char *buf = n < sizeof(small) ? small : msgpack_zone_malloc(ps->zone, n + 1);
    if (buf == NULL)
        return RC_JSON_NOMEM;
    memcpy(buf, s, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (isinf(v))
        ps->overflow = true;
    o->type = MSGPACK_OBJECT_FLOAT64;
    o->via.f64 = v;
    return RC_JSON_OK;
}

static rc_json_status_t read_number(parser_t *ps, msgpack_object *o)
{
    const unsigned char *s = ps->p;
    bool negative = *ps->p == '-', integer = true;
    if (negative)
        ps->p++;
    if (!is_digit(ps))
        return malformed(ps, "an invalid number");
    if (*ps->p == '0') {
        ps->p++;
        if (is_digit(ps))
            return malformed(ps, "a number with a leading zero");
    } else {
        skip_digits(ps);
    }
    if (ps->p < ps->end && *ps->p == '.') {
        integer = false;
        ps->p++;
        if (!is_digit(ps))
            return malformed(ps, "an invalid number");
        skip_digits(ps);
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integer = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (!is_digit(ps))
            return malformed(ps, "an invalid number");
        skip_digits(ps);
    }
    /* jansson decodes the character after a number before it converts the number: bad
     * UTF-8 there is malformed even when the number is also out of range. */
    if (ps->p < ps->end && *ps->p >= 0x80 && rc_utf8_sequence(ps->p, ps->end) == 0)
        return malformed(ps, "invalid UTF-8");
    if (!integer)
        return read_real(ps, s, (size_t)(ps->p - s), o);
    /* Within int64, as jansson's json_int_t: larger integers overflow. */
    uint64_t v = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (const unsigned char *d = s + negative; d < ps->p; d++) {
        unsigned digit = (unsigned)(*d - '0');
        if (v > (limit - digit) / 10) {
            ps->overflow = true;
            return read_real(ps, s, (size_t)(ps->p - s), o);
        }
        v = v * 10 + digit;
    }
    if (negative && v != 0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = v;
    }
    return RC_JSON_OK;
}

/* Something else was due at ps->p. jansson reads the token there before it finds it out of
 * place, so a number there too large for any type is reported as such. */
static rc_json_status_t expected(parser_t *ps, const char *what)
{
    const unsigned char *at = ps->p;
    msgpack_object number;
    if (ps->p < ps->end && (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')))
        read_number(ps, &number);
    ps->p = at;
    return malformed(ps, what);
}

static bool literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

/* A key of an object of the text being read: duplicates are found as each key is read,
 * as jansson finds them (so a text both malformed and repeating a key gets the same error
 * from both), in constant time per key whatever the object's size. Slots of an earlier text
 * are told apart by their generation; slots of closed objects never match (object ids are
 * not reused within a text), so `at`, an index into the stack, is only followed for keys
 * of the open object, which are all still there. */
struct rc_json_key_slot {
    uint64_t hash;
    uint32_t generation, object, at;
};

static uint64_t key_hash(const msgpack_object *key, uint32_t object)
{
    return XXH3_64bits_withSeed(key->via.str.ptr, key->via.str.size, object);
}

static bool key_slot_insert(rc_json_reader_t *r, uint64_t hash, uint32_t object, uint32_t at)
{
    uint32_t mask = r->keys_cap - 1, i = (uint32_t)hash & mask;
    for (; r->keys[i].generation == r->generation; i = (i + 1) & mask) {
        const rc_json_key_slot_t *k = &r->keys[i];
        if (k->hash == hash && k->object == object) {
            const msgpack_object *a = &r->stack[k->at], *b = &r->stack[at];
            if (a->via.str.size == b->via.str.size &&
                memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0)
                return false;
        }
    }
    r->keys[i] = (rc_json_key_slot_t){hash, r->generation, object, at};
    r->n_keys++;
    return true;
}

/* Grows the table to keep it at most half full. */
static rc_json_status_t reserve_key(rc_json_reader_t *r)
{
    if ((r->n_keys + 1) * 2 <= r->keys_cap)
        return RC_JSON_OK;
    uint32_t cap = r->keys_cap ? r->keys_cap * 2 : 64;
    rc_json_key_slot_t *old = r->keys, *keys = calloc(cap, sizeof(*keys));
    if (keys == NULL)
        return RC_JSON_NOMEM;
    uint32_t old_cap = r->keys_cap, gen = r->generation;
    r->keys = keys;
    r->keys_cap = cap;
    r->n_keys = 0;
    r->generation = 1;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].generation == gen)
            key_slot_insert(r, old[i].hash, old[i].object, old[i].at);
    free(old);
    return RC_JSON_OK;
}

/* The key just pushed at stack[at], of object `object`: RC_JSON_DUPLICATE if it repeats. */
static rc_json_status_t check_key(parser_t *ps, uint32_t object, uint32_t at)
{
    rc_json_reader_t *r = ps->r;
    rc_json_status_t rc = reserve_key(r);
    if (rc != RC_JSON_OK)
        return rc;
    return key_slot_insert(r, key_hash(&r->stack[at], object), object, at) ? RC_JSON_OK
                                                                           : RC_JSON_DUPLICATE;
}

static rc_json_status_t read_value(parser_t *ps, msgpack_object *o);

/* The members pushed since `base` become the container's, copied into the zone. */
static rc_json_status_t close_container(parser_t *ps, uint32_t base, bool map, msgpack_object *o)
{
    uint32_t n = ps->r->len - base;
    size_t bytes = (n ? n : 1) * sizeof(msgpack_object);
    void *items = msgpack_zone_malloc(ps->zone, bytes);
    if (items == NULL)
        return RC_JSON_NOMEM;
    if (n > 0)
        memcpy(items, ps->r->stack + base, n * sizeof(msgpack_object));
    ps->r->len = base;
    ps->depth--;
    if (map) {
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = n / 2;
        o->via.map.ptr = items;
    } else {
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = n;
        o->via.array.ptr = items;
    }
    return RC_JSON_OK;
}

static rc_json_status_t read_container(parser_t *ps, msgpack_object *o)
{
    bool map = *ps->p == '{';
    char close = map ? '}' : ']';
    rc_json_status_t rc;
    if (++ps->depth > ps->max_depth)
        return malformed(ps, "nested too deeply");
    uint32_t base = ps->r->len, object = map ? ps->r->n_objects++ : 0;
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return close_container(ps, base, map, o);
    }
    for (;;) {
        msgpack_object m;
        skip_space(ps);
        if (map) {
            if (ps->p >= ps->end || *ps->p != '"')
                return expected(ps, "a string (an object's key) expected");
            if ((rc = read_string(ps, &m)) != RC_JSON_OK || (rc = push(ps, &m)) != RC_JSON_OK ||
                (rc = check_key(ps, object, ps->r->len - 1)) != RC_JSON_OK)
                return rc;
            skip_space(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return expected(ps, "':' expected");
            ps->p++;
            skip_space(ps);
        }
        if ((rc = read_value(ps, &m)) != RC_JSON_OK || (rc = push(ps, &m)) != RC_JSON_OK)
            return rc;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        return expected(ps, map ? "',' or '}' expected" : "',' or ']' expected");
    }
    return close_container(ps, base, map, o);
}

static rc_json_status_t read_value(parser_t *ps, msgpack_object *o)
{
    if (ps->p >= ps->end)
        return malformed(ps, "a value expected");
    switch (*ps->p) {
    case '{':
    case '[':
        return read_container(ps, o);
    case '"':
        return read_string(ps, o);
    case 't':
    case 'f': {
        bool value = *ps->p == 't';
        if (!literal(ps, value ? "true" : "false"))
            return malformed(ps, "an invalid literal");
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = value;
        return RC_JSON_OK;
    }
    case 'n':
        if (!literal(ps, "null"))
            return malformed(ps, "an invalid literal");
        o->type = MSGPACK_OBJECT_NIL;
        return RC_JSON_OK;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return read_number(ps, o);
        return malformed(ps, "a value expected");
    }
}

rc_json_status_t rc_json_read(rc_json_reader_t *r, const char *data, size_t len, uint32_t max_depth,
                              msgpack_zone *zone, msgpack_object *out, char *what, size_t what_len)
{
    parser_t ps = {.r = r,
                   .zone = zone,
                   .start = (const unsigned char *)data,
                   .p = (const unsigned char *)data,
                   .end = (const unsigned char *)data + len,
                   .max_depth = max_depth};
    rc_json_status_t rc;
    r->len = 0;
    r->n_keys = 0;
    r->n_objects = 0;
    if (++r->generation == 0) { /* wrapped: forget every slot */
        memset(r->keys, 0, r->keys_cap * sizeof(*r->keys));
        r->generation = 1;
    }
    skip_space(&ps);
    if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '[')) {
        rc = expected(&ps, "'{' or '[' expected");
    } else if ((rc = read_container(&ps, out)) == RC_JSON_OK) {
        skip_space(&ps);
        if (ps.p != ps.end)
            rc = expected(&ps, "the end expected");
    }
    if (ps.overflow) {
        /* The number came first (reading stops at the first fault): jansson reports it
         * whatever follows. The rest is usable only if nothing else was wrong. */
        if (rc != RC_JSON_OK)
            out->type = MSGPACK_OBJECT_NIL;
        return rc == RC_JSON_NOMEM ? rc : RC_JSON_OVERFLOW;
    }
    if (rc == RC_JSON_MALFORMED && what_len > 0)
        snprintf(what, what_len, "%s at byte %zu", ps.error, (size_t)(ps.p - ps.start));
    return rc;
}
