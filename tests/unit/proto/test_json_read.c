/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the JSON reader (json_read.h): values as msgpack objects (strings borrowed
 * from the input unless escaped), what it refuses and with which status, in the order jansson
 * reports faults (the fuzzer compares the two on random texts; these pin the cases named). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "proto/json_read.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    rc_json_reader_t r;
    msgpack_zone zone;
    msgpack_object out;
    char what[96];
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    rc_json_reader_init(&f.r);
    assert_true(msgpack_zone_init(&f.zone, 256));
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    rc_json_reader_free(&f->r);
    msgpack_zone_destroy(&f->zone);
    return 0;
}

static rc_json_status_t read_text(fixture_t *f, const char *text)
{
    msgpack_zone_clear(&f->zone);
    f->what[0] = '\0';
    return rc_json_read(&f->r, text, strlen(text), 32, &f->zone, &f->out, f->what, sizeof(f->what));
}

static const msgpack_object *member(const msgpack_object *map, const char *key)
{
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    fail_msg("no key %s", key);
    return NULL;
}

static void assert_str(const msgpack_object *o, const char *want)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

static void test_values(void **state)
{
    fixture_t *f = *state;
    const char *text = " {\"s\":\"plain\", \"e\":\"a\\\"b\\\\\\/\\n\\u00e9\\ud83d\\ude00\","
                       "\"i\":-42,\"u\":9223372036854775807,\"m\":-9223372036854775808,"
                       "\"z\":-0,\"d\":2.5e-3,\"t\":true,\"f\":false,\"n\":null,"
                       "\"a\":[1,[],{}]} \n";
    assert_int_equal(read_text(f, text), RC_JSON_OK);
    const msgpack_object *s = member(&f->out, "s");
    assert_str(s, "plain");
    assert_true(s->via.str.ptr > text && s->via.str.ptr < text + strlen(text)); /* borrowed */
    assert_str(member(&f->out, "e"), "a\"b\\/\n\xc3\xa9\xf0\x9f\x98\x80");
    assert_int_equal(member(&f->out, "i")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(member(&f->out, "i")->via.i64, -42);
    assert_int_equal(member(&f->out, "u")->via.u64, INT64_MAX);
    assert_true(member(&f->out, "m")->via.i64 == INT64_MIN);
    assert_int_equal(member(&f->out, "z")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(member(&f->out, "d")->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(member(&f->out, "d")->via.f64 == 2.5e-3);
    assert_true(member(&f->out, "t")->via.boolean);
    assert_false(member(&f->out, "f")->via.boolean);
    assert_int_equal(member(&f->out, "n")->type, MSGPACK_OBJECT_NIL);
    const msgpack_object *a = member(&f->out, "a");
    assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(a->via.array.size, 3);
    assert_int_equal(a->via.array.ptr[1].type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(a->via.array.ptr[1].via.array.size, 0);
    assert_int_equal(a->via.array.ptr[2].via.map.size, 0);
}

static void test_malformed(void **state)
{
    fixture_t *f = *state;
    static const char *const bad[] = {
        "",
        "   ",
        "\"top\"",
        "1",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,]",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[+1]",
        "[-]",
        "[tru]",
        "[nul]",
        "[1] x",
        "{a:1}",
        "[\"\x01\"]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\ud800\"]",
        "[\"\\udc00\"]",
        "[\"\\u0000\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"abc",
        "[1 2]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc_json_status_t st = read_text(f, bad[i]);
        if (st != RC_JSON_MALFORMED)
            fail_msg("%s: status %d, expected malformed", bad[i], st);
        assert_non_null(strstr(f->what, " at byte "));
    }
}

static void test_depth(void **state)
{
    fixture_t *f = *state;
    char deep[80];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    assert_int_equal(read_text(f, deep), RC_JSON_MALFORMED);
    assert_non_null(strstr(f->what, "nested too deeply"));
    assert_int_equal(read_text(f, deep + 1), RC_JSON_MALFORMED); /* 32 '[' but 33 ']' */
    deep[65] = '\0';
    assert_int_equal(read_text(f, deep + 1), RC_JSON_OK); /* 32 levels */
}

static void test_duplicates(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(read_text(f, "{\"a\":1,\"b\":2,\"a\":3}"), RC_JSON_DUPLICATE);
    /* The same key in different objects, and an escaped spelling of a key. */
    assert_int_equal(read_text(f, "{\"a\":{\"a\":1},\"b\":[{\"a\":2}]}"), RC_JSON_OK);
    assert_int_equal(read_text(f, "{\"ab\":1,\"a\\u0062\":2}"), RC_JSON_DUPLICATE);
    /* Found when the key is read, before the text turns out malformed (as jansson). */
    assert_int_equal(read_text(f, "{\"id\":\"x\",\"id\" oops"), RC_JSON_DUPLICATE);
    /* An object with many keys: the last repeats the first. */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof(big), "{");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "\"k%d\":%d,", i, i);
    snprintf(big + n, sizeof(big) - n, "\"k499\":0}");
    assert_int_equal(read_text(f, big), RC_JSON_DUPLICATE);
    big[n - 1] = '}';
    big[n] = '\0';
    assert_int_equal(read_text(f, big), RC_JSON_OK);
    assert_int_equal(f->out.via.map.size, 500);
}

static void test_overflow(void **state)
{
    fixture_t *f = *state;
    /* Out of range and otherwise well formed: the whole message, the number as a double. */
    assert_int_equal(
        read_text(f, "{\"type\":\"event\",\"id\":\"e1\",\"value\":9223372036854775808}"),
        RC_JSON_OVERFLOW);
    assert_int_equal(f->out.type, MSGPACK_OBJECT_MAP);
    assert_str(member(&f->out, "id"), "e1");
    assert_int_equal(member(&f->out, "value")->type, MSGPACK_OBJECT_FLOAT64);
    assert_int_equal(read_text(f, "[1e999]"), RC_JSON_OVERFLOW);
    /* A fault after the number: still out of range (jansson stops at the number), no tree. */
    assert_int_equal(read_text(f, "{\"t\":100000000000000000000"), RC_JSON_OVERFLOW);
    assert_int_equal(f->out.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(read_text(f, "{\"t\":1} 100000000000000000000"), RC_JSON_OVERFLOW);
    assert_int_equal(read_text(f, "100000000000000000000"), RC_JSON_OVERFLOW);
    /* A fault before it, or bad UTF-8 right after it, comes first. */
    assert_int_equal(read_text(f, "{\"t\" 1,\"u\":100000000000000000000}"), RC_JSON_MALFORMED);
    assert_int_equal(read_text(f, "[100000000000000000000\xff]"), RC_JSON_MALFORMED);
    /* Underflow is not overflow. */
    assert_int_equal(read_text(f, "[1e-999]"), RC_JSON_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_depth),    cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
