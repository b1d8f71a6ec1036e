/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol codec tests, driven by the shared vectors in proto/vectors/vectors.json (the same
 * file the JavaScript SDK tests read):
 *  - every client message decodes to the same struct from JSON and from MessagePack, or is
 *    refused by both with the code the vector names;
 *  - every server message the C codec produces is encoded, in both formats, to a value equal
 *    to the vector's;
 *  - truncations and byte flips of every vector decode without crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/proto.h"
#include "util/wbuf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *vectors;

static int load_vectors(void **state)
{
    json_error_t err;
    (void)state;
    vectors = json_load_file(RC_SOURCE_DIR "/proto/vectors/vectors.json", 0, &err);
    if (vectors == NULL)
        fprintf(stderr, "vectors.json: %s (line %d)\n", err.text, err.line);
    return vectors && json_is_array(vectors) ? 0 : -1;
}

static int free_vectors(void **state)
{
    (void)state;
    json_decref(vectors);
    return 0;
}

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned int b;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
        out[i] = (unsigned char)b;
    }
    return n;
}

/* A canonical text of a decoded message, so two decodes can be compared whole. */
static void put_str(rc_wbuf_t *o, const char *k, rc_str_t s)
{
    rc_wbuf_printf(o, "%s=%.*s;", k, (int)s.n, s.p ? s.p : "");
}

static void dump_event(rc_wbuf_t *o, const rc_proto_event_t *e)
{
    put_str(o, "id", e->id);
    put_str(o, "item", e->item);
    put_str(o, "query", e->query);
    put_str(o, "surface", e->surface);
    rc_wbuf_printf(o, "kind=%d;value=%d:%.17g;ts=%d:%lld;", e->kind, e->has_value, e->value,
                   e->has_ts, (long long)e->ts_ms);
}

static void dump_msg(rc_wbuf_t *o, const rc_msg_t *m)
{
    rc_wbuf_printf(o, "type=%d;", m->type);
    switch (m->type) {
    case RC_MSG_HELLO:
        rc_wbuf_printf(o, "v=%lld;device=%d;tz=%d;", (long long)m->u.hello.v, m->u.hello.device,
                       m->u.hello.tz_offset_min);
        put_str(o, "token", m->u.hello.token);
        put_str(o, "user", m->u.hello.user);
        put_str(o, "locale", m->u.hello.locale);
        break;
    case RC_MSG_EVENT:
        dump_event(o, &m->u.event);
        break;
    case RC_MSG_EVENTS:
        for (uint32_t i = 0; i < m->u.events.n; i++) {
            rc_wbuf_printf(o, "[%u err=%d ", i, m->u.events.items[i].err);
            dump_event(o, &m->u.events.items[i].ev);
            rc_wbuf_puts(o, "]");
        }
        break;
    case RC_MSG_SUBSCRIBE:
        put_str(o, "surface", m->u.subscribe.surface);
        put_str(o, "category", m->u.subscribe.category);
        rc_wbuf_printf(o, "k=%d;min=%d:%g;max=%d:%g;", m->u.subscribe.k,
                       m->u.subscribe.has_price_min, m->u.subscribe.price_min,
                       m->u.subscribe.has_price_max, m->u.subscribe.price_max);
        break;
    case RC_MSG_UNSUBSCRIBE:
        put_str(o, "surface", m->u.unsubscribe.surface);
        break;
    case RC_MSG_PING:
        rc_wbuf_printf(o, "t=%d:%.17g;", m->u.ping.has_t, m->u.ping.t);
        break;
    case RC_MSG_AUTH:
        put_str(o, "token", m->u.auth.token);
        break;
    case RC_MSG_NONE:
        break;
    }
}

/* Decodes one encoding of a case; returns the code and appends the dump on success. */
static int decode_case(rc_proto_decoder_t *d, rc_format_t fmt, const void *data, size_t len,
                       rc_wbuf_t *dump)
{
    rc_msg_t m;
    int code = rc_proto_decode(d, fmt, data, len, &m);
    if (code == 0) {
        dump_msg(dump, &m);
        /* A valid batch whose every element is refused counts as the element's code. */
        if (m.type == RC_MSG_EVENTS) {
            for (uint32_t i = 0; i < m.u.events.n; i++)
                if (m.u.events.items[i].err != 0)
                    return m.u.events.items[i].err;
        }
    }
    return code;
}

static void test_client_vectors(void **state)
{
    rc_proto_decoder_t d;
    unsigned char bin[16384];
    size_t i;
    json_t *c;
    int checked = 0;
    (void)state;
    assert_int_equal(rc_proto_decoder_init(&d, 100, 100), 0);
    json_array_foreach(vectors, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "dir")), "c2s") != 0)
            continue;
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *js = json_string_value(json_object_get(c, "json"));
        const char *hex = json_string_value(json_object_get(c, "msgpack_hex"));
        int expect = (int)json_integer_value(json_object_get(c, "error"));
        rc_wbuf_t dj, dm;
        rc_wbuf_init(&dj, 0);
        rc_wbuf_init(&dm, 0);
        int cj = -1, cm = -1;
        if (js != NULL) {
            cj = decode_case(&d, RC_FMT_JSON, js, strlen(js), &dj);
            if (cj != expect)
                fail_msg("%s (json): code %d, expected %d (%s)", name, cj, expect, d.err);
        }
        if (hex != NULL) {
            size_t n = unhex(hex, bin, sizeof(bin));
            cm = decode_case(&d, RC_FMT_MSGPACK, bin, n, &dm);
            if (cm != expect)
                fail_msg("%s (msgpack): code %d, expected %d (%s)", name, cm, expect, d.err);
        }
        if (js != NULL && hex != NULL && expect == 0) {
            rc_wbuf_putc(&dj, '\0');
            rc_wbuf_putc(&dm, '\0');
            if (strcmp(rc_wbuf_data(&dj), rc_wbuf_data(&dm)) != 0)
                fail_msg("%s: JSON and MessagePack decode differently:\n  %s\n  %s", name,
                         rc_wbuf_data(&dj), rc_wbuf_data(&dm));
        }
        rc_wbuf_free(&dj);
        rc_wbuf_free(&dm);
        checked++;
    }
    rc_proto_decoder_free(&d);
    assert_true(checked >= 60);
}

/* ---- server messages ---- */

/* Numbers compare by value (an encoder may write 3 or 3.0); everything else exactly. */
static int values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return fabs(json_number_value(a) - json_number_value(b)) <=
               1e-9 * fmax(1.0, fabs(json_number_value(a)));
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (w == NULL || !values_equal(v, w))
                return 0;
        }
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static json_t *obj_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(a, obj_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
            json_object_set_new(m, key, obj_to_json(&kv->val));
        }
        return m;
    }
    default:
        return json_null();
    }
}

static json_t *msgpack_to_json(const void *data, size_t len)
{
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_init(&z, 1024);
    assert_int_equal(msgpack_unpack(data, len, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    json_t *j = obj_to_json(&o);
    msgpack_zone_destroy(&z);
    return j;
}

static rc_str_t jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return (rc_str_t){s, s ? (uint32_t)strlen(s) : 0};
}

/* A vector's string as the server's texts are: measured (length, needs escaping or not). */
static rc_text_t jtext(const json_t *obj, const char *key)
{
    return rc_text_measure(json_string_value(json_object_get(obj, key)));
}

static int64_t jint(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* Builds the C-side description of a server message from the vector and encodes it.
 * Returns false for message types the C codec does not produce (push comes with the push
 * API). */
/* A recs_delta vector through rc_proto_encode_recs_delta(): items carry their details and
 * reason definitions by reference, as the server builds them. */
static void encode_delta_from_vector(const json_t *v, rc_enc_t *e)
{
    static rc_text_t remove[128];
    static rc_recs_place_t place[128];
    static double scores[128];
    static uint32_t rids[128];
    static rc_recs_item_t details_buf[128], reason_items[128];
    static const rc_recs_item_t *details[128];
    static rc_recs_reason_def_t reasons[128];
    static rc_recs_reason_t reason_data[128];
    const json_t *x;
    const char *key;
    size_t i, n_remove = 0, n_place = 0, n_items = 0, n_details = 0, n_reasons = 0;
    json_array_foreach(json_object_get(v, "remove"), i, x) remove[n_remove++] =
        rc_text_measure(json_string_value(x));
    json_array_foreach(json_object_get(v, "place"), i, x)
    {
        place[n_place++] =
            (rc_recs_place_t){(uint32_t)json_integer_value(json_array_get(x, 0)),
                              rc_text_measure(json_string_value(json_array_get(x, 1)))};
    }
    json_int_t sum = 0;
    json_array_foreach(json_object_get(v, "scores_e4"), i, x)
    {
        sum += json_integer_value(x);
        scores[n_items++] = (double)sum / 10000.0;
    }
    json_array_foreach(json_object_get(v, "r"), i, x) rids[i] = (uint32_t)json_integer_value(x);
    json_t *val;
    json_object_foreach((json_t *)json_object_get(v, "items"), key, val)
    {
        json_t *price = json_object_get(val, "price");
        details_buf[n_details] = (rc_recs_item_t){.item = rc_text_measure(key),
                                                  .name = jtext(val, "name"),
                                                  .category = jtext(val, "category"),
                                                  .price = price ? json_number_value(price) : -1};
        details[n_details] = &details_buf[n_details];
        n_details++;
    }
    json_object_foreach((json_t *)json_object_get(v, "reasons"), key, val)
    {
        const json_t *why = json_object_get(val, "reason");
        const json_t *age = json_object_get(why, "age_s");
        reason_data[n_reasons] = (rc_recs_reason_t){
            .code = jtext(why, "code"),
            .item = jtext(why, "item"),
            .item_name = jtext(why, "item_name"),
            .category = jtext(why, "category"),
            .category_name = jtext(why, "category_name"),
            .segment = jtext(why, "segment"),
            .locale = jtext(why, "locale"),
            .kind = jtext(why, "kind"),
            .age_s = age ? json_integer_value(age) : -1,
        };
        reason_items[n_reasons] = (rc_recs_item_t){
            .src = jtext(val, "src"),
            .why = jtext(val, "why"),
            .reason = why != NULL ? &reason_data[n_reasons] : NULL,
        };
        reasons[n_reasons] =
            (rc_recs_reason_def_t){(uint32_t)strtoul(key, NULL, 10), &reason_items[n_reasons]};
        n_reasons++;
    }
    rc_recs_delta_t d = {
        .surface = jtext(v, "surface"),
        .version = jint(v, "version"),
        .base = jint(v, "base"),
        .remove = remove,
        .n_remove = (uint32_t)n_remove,
        .place = place,
        .n_place = (uint32_t)n_place,
        .scores = scores,
        .rids = rids,
        .n_items = (uint32_t)n_items,
        .details = details,
        .n_details = (uint32_t)n_details,
        .reasons = reasons,
        .n_reasons = (uint32_t)n_reasons,
        .cause = jstr(v, "cause"),
        .took_us = jint(v, "took_us"),
        .variant = json_object_get(v, "variant") ? jtext(v, "variant") : rc_text_measure("control"),
    };
    rc_proto_encode_recs_delta(e, &d);
}

static bool encode_from_vector(const json_t *v, rc_enc_t *e)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (strcmp(type, "welcome") == 0) {
        const json_t *l = json_object_get(v, "limits");
        rc_limits_t lim = {jint(l, "max_message_bytes"), jint(l, "max_batch"),
                           jint(l, "max_subscriptions"), jint(l, "max_k"),
                           jint(l, "events_per_sec"),    jint(l, "events_burst")};
        rc_proto_encode_welcome(e, jstr(v, "session").p, jstr(v, "user"), jstr(v, "node").p,
                                jint(v, "server_time_ms"), &lim);
    } else if (strcmp(type, "ack") == 0) {
        const json_t *ids = json_object_get(v, "ids");
        rc_str_t s[128];
        size_t n = json_array_size(ids);
        for (size_t i = 0; i < n; i++)
            s[i] = (rc_str_t){json_string_value(json_array_get(ids, i)),
                              (uint32_t)json_string_length(json_array_get(ids, i))};
        rc_proto_encode_ack(e, s, (uint32_t)n);
    } else if (strcmp(type, "error") == 0) {
        json_t *t = json_object_get(v, "t");
        rc_error_about_t about = {jstr(v, "about").p, jstr(v, "surface"), t != NULL,
                                  t ? json_number_value(t) : 0};
        rc_proto_encode_error_about(e, (int)jint(v, "code"), jstr(v, "message").p, jstr(v, "id"),
                                    json_is_true(json_object_get(v, "fatal")), &about);
    } else if (strcmp(type, "pong") == 0) {
        json_t *t = json_object_get(v, "t");
        rc_proto_encode_pong(e, t != NULL, t ? json_number_value(t) : 0, jint(v, "server_time_ms"));
    } else if (strcmp(type, "drain") == 0) {
        rc_proto_encode_drain(e, jstr(v, "reason").p, jint(v, "reconnect_after_ms"));
    } else if (strcmp(type, "auth_ok") == 0) {
        rc_proto_encode_auth_ok(e, jint(v, "exp_ms"));
    } else if (strcmp(type, "recs") == 0) {
        static rc_recs_item_t items[128];
        static rc_recs_reason_t reasons[128];
        const json_t *arr = json_object_get(v, "items");
        size_t n = json_array_size(arr);
        for (size_t i = 0; i < n; i++) {
            const json_t *it = json_array_get(arr, i);
            json_t *price = json_object_get(it, "price");
            const json_t *why = json_object_get(it, "reason");
            const json_t *age = json_object_get(why, "age_s");
            reasons[i] = (rc_recs_reason_t){
                .code = jtext(why, "code"),
                .item = jtext(why, "item"),
                .item_name = jtext(why, "item_name"),
                .category = jtext(why, "category"),
                .category_name = jtext(why, "category_name"),
                .segment = jtext(why, "segment"),
                .locale = jtext(why, "locale"),
                .kind = jtext(why, "kind"),
                .age_s = age ? json_integer_value(age) : -1,
            };
            items[i] = (rc_recs_item_t){.item = jtext(it, "item"),
                                        .score = json_number_value(json_object_get(it, "score")),
                                        .src = jtext(it, "src"),
                                        .why = jtext(it, "why"),
                                        .reason = why != NULL ? &reasons[i] : NULL,
                                        .name = jtext(it, "name"),
                                        .category = jtext(it, "category"),
                                        .price = price ? json_number_value(price) : -1};
        }
        rc_recs_t r = {jtext(v, "surface"), jint(v, "version"), items,
                       (uint32_t)n,         jstr(v, "cause"),   jint(v, "took_us"),
                       jtext(v, "variant")};
        rc_proto_encode_recs(e, &r);
    } else if (strcmp(type, "recs_delta") == 0) {
        encode_delta_from_vector(v, e);
    } else {
        return false;
    }
    return true;
}

static void test_server_vectors(void **state)
{
    unsigned char bin[16384];
    size_t i;
    json_t *c;
    int encoded = 0;
    (void)state;
    json_array_foreach(vectors, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "dir")), "s2c") != 0)
            continue;
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *want = json_loads(json_string_value(json_object_get(c, "json")), 0, NULL);
        assert_non_null(want);
        for (int fmt = 0; fmt < RC_FMT_COUNT; fmt++) {
            rc_wbuf_t out;
            rc_enc_t e;
            rc_wbuf_init(&out, 0);
            rc_enc_init(&e, &out, (rc_format_t)fmt);
            if (!encode_from_vector(want, &e)) {
                rc_wbuf_free(&out);
                break;
            }
            assert_int_equal(rc_wbuf_ok(&out), 0);
            json_t *got = fmt == RC_FMT_JSON ? json_loadb(rc_wbuf_data(&out), out.len,
                                                          JSON_REJECT_DUPLICATES, NULL)
                                             : msgpack_to_json(rc_wbuf_data(&out), out.len);
            if (got == NULL || !values_equal(got, want)) {
                char *g = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
                fail_msg("%s (%s): encoded %s", name, fmt == RC_FMT_JSON ? "json" : "msgpack",
                         g ? g : "(unparseable)");
            }
            if (fmt == RC_FMT_MSGPACK) {
                /* The reference encoding decodes to the same value too. */
                const char *hex = json_string_value(json_object_get(c, "msgpack_hex"));
                size_t n = unhex(hex, bin, sizeof(bin));
                json_t *ref = msgpack_to_json(bin, n);
                assert_true(values_equal(ref, want));
                json_decref(ref);
                encoded++;
            }
            json_decref(got);
            rc_wbuf_free(&out);
        }
        json_decref(want);
    }
    assert_true(encoded >= 10);
}

/* Every prefix and a sample of single-byte corruptions of every vector must decode to a
 * result (a message or a code), never a crash; run under ASan this catches overreads. */
static void test_truncated_and_corrupted_input(void **state)
{
    rc_proto_decoder_t d;
    unsigned char bin[16384], buf[16384];
    size_t i;
    json_t *c;
    (void)state;
    assert_int_equal(rc_proto_decoder_init(&d, 100, 100), 0);
    json_array_foreach(vectors, i, c)
    {
        const char *hex = json_string_value(json_object_get(c, "msgpack_hex"));
        const char *js = json_string_value(json_object_get(c, "json"));
        rc_msg_t m;
        if (hex != NULL) {
            size_t n = unhex(hex, bin, sizeof(bin));
            for (size_t cut = 0; cut < n; cut++) {
                memcpy(buf, bin, cut); /* exact-size copies let ASan see overreads */
                unsigned char *exact = malloc(cut ? cut : 1);
                memcpy(exact, bin, cut);
                int code = rc_proto_decode(&d, RC_FMT_MSGPACK, exact, cut, &m);
                free(exact);
                assert_true(code == 0 || rc_proto_error_name(code) != NULL);
            }
            for (size_t k = 0; k < n; k += 3) {
                memcpy(buf, bin, n);
                buf[k] ^= 0xA5;
                int code = rc_proto_decode(&d, RC_FMT_MSGPACK, buf, n, &m);
                assert_true(code == 0 || rc_proto_error_name(code) != NULL);
            }
        }
        if (js != NULL) {
            size_t n = strlen(js);
            for (size_t cut = 0; cut < n; cut += 2) {
                int code = rc_proto_decode(&d, RC_FMT_JSON, js, cut, &m);
                assert_true(code == 0 || rc_proto_error_name(code) != NULL);
            }
        }
    }
    rc_proto_decoder_free(&d);
}

/* A limit lower than the protocol's default applies (the server passes its settings). */
static void test_configured_limits(void **state)
{
    rc_proto_decoder_t d;
    rc_msg_t m;
    (void)state;
    assert_int_equal(rc_proto_decoder_init(&d, 2, 5), 0);
    const char *batch3 =
        "{\"type\":\"events\",\"events\":[{\"id\":\"a\",\"kind\":\"view\",\"item\":"
        "\"x\"},{\"id\":\"b\",\"kind\":\"view\",\"item\":\"x\"},{\"id\":\"c\","
        "\"kind\":\"view\",\"item\":\"x\"}]}";
    assert_int_equal(rc_proto_decode(&d, RC_FMT_JSON, batch3, strlen(batch3), &m),
                     RC_PERR_BATCH_TOO_LARGE);
    const char *k6 = "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":6}";
    assert_int_equal(rc_proto_decode(&d, RC_FMT_JSON, k6, strlen(k6), &m), RC_PERR_INVALID_FIELD);
    const char *k5 = "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":5}";
    assert_int_equal(rc_proto_decode(&d, RC_FMT_JSON, k5, strlen(k5), &m), 0);
    assert_int_equal(m.u.subscribe.k, 5);
    rc_proto_decoder_free(&d);
}

/* A container header claiming more elements than bytes remain is refused before msgpack-c
 * would allocate for it (found by fuzz_proto: 37 bytes asked for 256 GB). */
static void test_msgpack_size_claims_are_checked(void **state)
{
    rc_proto_decoder_t d;
    rc_msg_t m;
    (void)state;
    assert_int_equal(rc_proto_decoder_init(&d, 100, 100), 0);
    /* {"type":"event","id":"e 0106", <map32 claiming 0xdfdfdfdf pairs>} */
    const unsigned char crash[] = {0x84, 0xa4, 't',  'y',  'p',  'e',  0xa5, 'e',  'v',  'e',
                                   'n',  't',  0xa2, 'i',  'd',  0xa6, 'e',  ' ',  '0',  '1',
                                   '0',  '6',  0xa4, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf};
    assert_int_equal(rc_proto_decode(&d, RC_FMT_MSGPACK, crash, sizeof(crash), &m),
                     RC_PERR_MALFORMED);
    /* An array32 header alone claiming a billion elements. */
    const unsigned char big[] = {0xdd, 0x40, 0x00, 0x00, 0x00, 0x01};
    assert_int_equal(rc_proto_decode(&d, RC_FMT_MSGPACK, big, sizeof(big), &m), RC_PERR_MALFORMED);
    /* A str32 claiming more bytes than present. */
    const unsigned char str[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0x00, 0x01, 0x00, 0x00, 'x'};
    assert_int_equal(rc_proto_decode(&d, RC_FMT_MSGPACK, str, sizeof(str), &m), RC_PERR_MALFORMED);
    /* Nesting beyond 32 levels. */
    unsigned char deep[40];
    memset(deep, 0x91, sizeof(deep));
    deep[sizeof(deep) - 1] = 0x00;
    assert_int_equal(rc_proto_decode(&d, RC_FMT_MSGPACK, deep, sizeof(deep), &m),
                     RC_PERR_MALFORMED);
    rc_proto_decoder_free(&d);
}

/* The JSON encoder escapes what it must and nests correctly. */
static void test_json_escaping(void **state)
{
    rc_wbuf_t out;
    rc_enc_t e;
    (void)state;
    rc_wbuf_init(&out, 0);
    rc_enc_init(&e, &out, RC_FMT_JSON);
    rc_proto_encode_error(&e, 4002, "bad \"quote\" \\ and\nnewline\x01", (rc_str_t){"id1", 3},
                          false);
    json_t *j = json_loadb(rc_wbuf_data(&out), out.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "message")),
                        "bad \"quote\" \\ and\nnewline\x01");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "invalid_field");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "id1");
    json_decref(j);
    rc_wbuf_free(&out);
}

/* What JSON needs of a string, one byte at a time: the reference the encoder's
 * eight-bytes-at-a-time scan must agree with. */
static size_t reference_json_string(char *out, const unsigned char *s, size_t n)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            out[o++] = '\\';
            out[o++] = (char)s[i];
        } else if (s[i] == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (s[i] < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", s[i]);
        } else {
            out[o++] = (char)s[i];
        }
    }
    out[o++] = '"';
    return o;
}

static void assert_json_string(const unsigned char *s, size_t n)
{
    char want[6 * 80 + 2];
    size_t want_len = reference_json_string(want, s, n);
    rc_wbuf_t out;
    rc_enc_t e;
    rc_wbuf_init(&out, 0);
    rc_enc_init(&e, &out, RC_FMT_JSON);
    rc_enc_str(&e, (const char *)s, n);
    assert_int_equal(out.len, want_len);
    assert_memory_equal(rc_wbuf_data(&out), want, want_len);
    /* Measured text (the catalog's names): plain exactly when nothing needed escaping, and
     * written the same either way. */
    rc_text_t t = rc_text_measure_n((const char *)s, n);
    assert_int_equal(t.plain, want_len == n + 2);
    rc_wbuf_reset(&out);
    rc_enc_text(&e, t);
    assert_int_equal(out.len, want_len);
    assert_memory_equal(rc_wbuf_data(&out), want, want_len);
    rc_wbuf_free(&out);
}

/* Strings are scanned eight bytes at a time for what needs escaping: every such byte, and
 * the plain bytes next to them in value ('!', '#', '[', ']', ' ', DEL, UTF-8), at every
 * position of strings shorter and longer than a word, and random bytes. */
static void test_json_escaping_at_every_position(void **state)
{
    static const unsigned char probes[] = {0x00, 0x01, 0x0a, 0x1f, '"',  '\\', ' ',  '!',
                                           '#',  '[',  ']',  0x7f, 0x80, 0xc3, 0xff, 'a'};
    unsigned char s[80];
    (void)state;
    for (size_t n = 0; n <= 40; n++) {
        for (size_t pos = 0; pos < n; pos++) {
            for (size_t p = 0; p < sizeof(probes); p++) {
                memset(s, 'a', n);
                s[pos] = probes[p];
                assert_json_string(s, n);
                s[n - 1 - pos] = '"'; /* a second one, from the other end */
                assert_json_string(s, n);
            }
        }
    }
    uint32_t x = 12345;
    for (int round = 0; round < 5000; round++) {
        size_t n = (x = x * 1103515245u + 12345u) >> 16 & 63;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            /* Mostly plain bytes, as ids and names are; some of anything. */
            s[i] =
                (x >> 16 & 7) ? (unsigned char)(0x20 + (x >> 20) % 0x60) : (unsigned char)(x >> 20);
        }
        assert_json_string(s, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_vectors),
        cmocka_unit_test(test_server_vectors),
        cmocka_unit_test(test_truncated_and_corrupted_input),
        cmocka_unit_test(test_configured_limits),
        cmocka_unit_test(test_msgpack_size_claims_are_checked),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_json_escaping_at_every_position),
    };
    return cmocka_run_group_tests(tests, load_vectors, free_vectors);
}
