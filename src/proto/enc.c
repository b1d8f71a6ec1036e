/* SPDX-License-Identifier: Apache-2.0 */
/* The general writer (enc.h): nested maps and arrays, strings, numbers and any MessagePack
 * value, in MessagePack or JSON with one set of calls. The protocol's server messages, the
 * node's HTTP answers and the ops feed all write through it. */
#include "proto/enc.h"
#include "proto/mpack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_enc_init(rc_enc_t *e, rc_wbuf_t *out, rc_format_t fmt)
{
    memset(e, 0, sizeof(*e));
    e->out = out;
    e->fmt = fmt;
    rc_mp_init(&e->pk, out);
}

/* JSON separators: a comma before every element but the first of its container; a value
 * that follows a key needs none (the key wrote it). The comma before a key is
 * rc_enc_json_before_key() (enc.h). */
static void json_before_value(rc_enc_t *e)
{
    if (e->depth > 0 && !e->is_map[rc_enc_level(e)]) {
        if (e->count[rc_enc_level(e)]++ > 0)
            rc_wbuf_putc(e->out, ',');
    }
}

static void open_container(rc_enc_t *e, bool map, uint32_t n)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        if (map)
            msgpack_pack_map(&e->pk, n);
        else
            msgpack_pack_array(&e->pk, n);
        return;
    }
    json_before_value(e);
    rc_wbuf_putc(e->out, map ? '{' : '[');
    if (e->depth < RC_ENC_MAX_DEPTH) {
        e->is_map[e->depth] = map;
        e->count[e->depth] = 0;
    }
    e->depth++;
}

void rc_enc_map(rc_enc_t *e, uint32_t n_pairs)
{
    open_container(e, true, n_pairs);
}

void rc_enc_array(rc_enc_t *e, uint32_t n)
{
    open_container(e, false, n);
}

void rc_enc_end(rc_enc_t *e)
{
    if (e->fmt == RC_FMT_MSGPACK || e->depth == 0)
        return;
    bool map = e->is_map[rc_enc_level(e)];
    e->depth--;
    rc_wbuf_putc(e->out, map ? '}' : ']');
}

/* Plain runs are copied whole; each byte between them is escaped. */
static void json_put_string(rc_wbuf_t *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    rc_wbuf_putc(o, '"');
    for (size_t i = 0;;) {
        size_t run = rc_json_plain_prefix(s + i, n - i);
        rc_wbuf_put(o, s + i, run);
        i += run;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            rc_wbuf_put(o, esc, 2);
        } else if (c == '\n') {
            rc_wbuf_put(o, "\\n", 2);
        } else {
            rc_wbuf_put(o, esc, 6);
        }
    }
    rc_wbuf_putc(o, '"');
}

void rc_enc_key(rc_enc_t *e, const char *key)
{
    rc_enc_keyn(e, key, strlen(key));
}

void rc_enc_keyn(rc_enc_t *e, const char *key, size_t n)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_str(&e->pk, n);
        msgpack_pack_str_body(&e->pk, key, n);
        return;
    }
    rc_enc_json_before_key(e);
    json_put_string(e->out, key, n);
    rc_wbuf_putc(e->out, ':');
}

void rc_enc_str(rc_enc_t *e, const char *s, size_t n)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_str(&e->pk, n);
        msgpack_pack_str_body(&e->pk, s, n);
        return;
    }
    json_before_value(e);
    json_put_string(e->out, s, n);
}

void rc_enc_cstr(rc_enc_t *e, const char *s)
{
    rc_enc_str(e, s, strlen(s));
}

/* A plain text between quotes, written in place: one bounds check, one copy. */
static void json_put_plain(rc_wbuf_t *o, const char *s, size_t n)
{
    if (o->base == NULL || n + 2 > o->cap - o->len) {
        rc_wbuf_reserve(o, n + 2);
        if (o->failed)
            return;
    }
    char *at = o->base + o->headroom + o->len;
    at[0] = '"';
    memcpy(at + 1, s, n);
    at[n + 1] = '"';
    o->len += n + 2;
}

void rc_enc_text(rc_enc_t *e, rc_text_t t)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_str(&e->pk, t.n);
        msgpack_pack_str_body(&e->pk, t.p, t.n);
        return;
    }
    json_before_value(e);
    if (t.plain)
        json_put_plain(e->out, t.p, t.n);
    else
        json_put_string(e->out, t.p, t.n);
}

void rc_enc_text_key(rc_enc_t *e, rc_text_t t)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_str(&e->pk, t.n);
        msgpack_pack_str_body(&e->pk, t.p, t.n);
        return;
    }
    rc_enc_json_before_key(e);
    if (t.plain)
        json_put_plain(e->out, t.p, t.n);
    else
        json_put_string(e->out, t.p, t.n);
    rc_wbuf_putc(e->out, ':');
}

void rc_enc_int(rc_enc_t *e, int64_t v)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_int64(&e->pk, v);
        return;
    }
    json_before_value(e);
    /* Digits from the end: no printf on the path of every list (its version, took_us). */
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    rc_wbuf_put(e->out, p, (size_t)(tmp + sizeof(tmp) - p));
}

void rc_enc_double(rc_enc_t *e, double v)
{
    if (!isfinite(v))
        v = 0;
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_double(&e->pk, v);
        return;
    }
    json_before_value(e);
    /* The shortest form that reads back as the same double: 0.91 stays "0.91", and an
     * echoed client value (a ping's t) loses no digit. */
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    rc_wbuf_put(e->out, tmp, (size_t)n);
}

/* Writes |v| rounded to `places` (<= 6) decimals without trailing zeros: 2.5, 0.9137, 12.
 * Much cheaper than printf's %g for the scores and prices every list carries. */
static inline __attribute__((always_inline)) size_t fixed_decimal(char *out, double v, int places)
{
    static const uint64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    char digits[32];
    size_t n = 0, k = 0;
    if (v < 0) {
        out[n++] = '-';
        v = -v;
    }
    uint64_t x = (uint64_t)(v * (double)scale[places] + 0.5);
    uint64_t ip = x / scale[places], fp = x % scale[places];
    do {
        digits[k++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip > 0);
    while (k > 0)
        out[n++] = digits[--k];
    if (fp != 0) {
        out[n++] = '.';
        for (int i = places - 1; i >= 0; i--)
            digits[i] = (char)('0' + fp % 10), fp /= 10;
        int last = places - 1;
        while (digits[last] == '0')
            last--;
        for (int i = 0; i <= last; i++)
            out[n++] = digits[i];
    }
    return n;
}

void rc_enc_decimal(rc_enc_t *e, double v, int places)
{
    if (!isfinite(v) || fabs(v) >= 1e12 || places > 6) {
        rc_enc_double(e, v);
        return;
    }
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_double(&e->pk, v);
        return;
    }
    char tmp[48];
    json_before_value(e);
    /* Every list's scores and prices have four places: with the constant, the divisions by
     * the scale become multiplications. */
    size_t n = places == 4 ? fixed_decimal(tmp, v, 4) : fixed_decimal(tmp, v, places);
    rc_wbuf_put(e->out, tmp, n);
}

void rc_enc_bool(rc_enc_t *e, bool v)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        if (v)
            msgpack_pack_true(&e->pk);
        else
            msgpack_pack_false(&e->pk);
        return;
    }
    json_before_value(e);
    rc_wbuf_puts(e->out, v ? "true" : "false");
}

void rc_enc_nil(rc_enc_t *e)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_nil(&e->pk);
        return;
    }
    json_before_value(e);
    rc_wbuf_puts(e->out, "null");
}

static void enc_base64(rc_enc_t *e, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    json_before_value(e);
    rc_wbuf_putc(e->out, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tbl[v >> 18 & 63], tbl[v >> 12 & 63], i + 1 < n ? tbl[v >> 6 & 63] : '=',
                     i + 2 < n ? tbl[v & 63] : '='};
        rc_wbuf_put(e->out, q, 4);
    }
    rc_wbuf_putc(e->out, '"');
}

void rc_enc_object(rc_enc_t *e, const msgpack_object *o)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_object(&e->pk, *o);
        return;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        rc_enc_nil(e);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        rc_enc_bool(e, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            rc_enc_double(e, (double)o->via.u64);
        else
            rc_enc_int(e, (int64_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        rc_enc_int(e, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        rc_enc_double(e, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        rc_enc_str(e, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        enc_base64(e, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        rc_enc_array(e, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            rc_enc_object(e, &o->via.array.ptr[i]);
        rc_enc_end(e);
        break;
    case MSGPACK_OBJECT_MAP:
        rc_enc_map(e, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            /* JSON keys are strings: a number key is written as its digits, anything else
             * (a map or array as a key) as "?". */
            char num[32];
            if (k->type == MSGPACK_OBJECT_STR)
                rc_enc_keyn(e, k->via.str.ptr, k->via.str.size);
            else if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                rc_enc_keyn(
                    e, num,
                    (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)k->via.u64));
            else if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                rc_enc_keyn(e, num,
                            (size_t)snprintf(num, sizeof(num), "%lld", (long long)k->via.i64));
            else
                rc_enc_keyn(e, "?", 1);
            rc_enc_object(e, &o->via.map.ptr[i].val);
        }
        rc_enc_end(e);
        break;
    default:
        rc_enc_nil(e);
        break;
    }
}
