/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the string map (strmap.h): lookups, replacement, deletion, borrowed keys,
 * and the probe-run invariant that backward-shift deletion must keep at every size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "util/error.h"
#include "util/strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every occupied slot must be reachable from its home slot without crossing an empty one,
 * and `len` must count the occupied slots; a deletion that leaves a hole inside a probe run
 * breaks the first rule and makes keys after the hole unfindable. */
static void check_invariants(const rc_strmap_t *m)
{
    size_t used = 0;
    if (m->cap == 0) {
        assert_int_equal(m->len, 0);
        return;
    }
    assert_int_equal(m->cap & (m->cap - 1), 0);
    size_t mask = m->cap - 1;
    for (size_t j = 0; j < m->cap; j++) {
        const rc_strmap_slot_t *s = &m->slots[j];
        if (s->hash == 0)
            continue;
        used++;
        assert_int_equal(s->hash, rc_strhash(s->key, s->key_len));
        for (size_t i = s->hash & mask; i != j; i = (i + 1) & mask) {
            if (m->slots[i].hash == 0) {
                print_error("slot %zu (home %zu) sits behind the empty slot %zu\n", j,
                            (size_t)(s->hash & mask), i);
                fail();
            }
        }
    }
    assert_int_equal(used, m->len);
    /* The table never fills up, or a miss would probe forever. */
    assert_int_lt(m->len, m->cap);
}

static void test_empty_map(void **state)
{
    (void)state;
    rc_strmap_t m;
    uint64_t v = 77;
    rc_strmap_init(&m);
    assert_int_equal(m.len, 0);
    assert_false(rc_strmap_get(&m, "a", 1, &v));
    assert_int_equal(v, 77);
    assert_false(rc_strmap_del(&m, "a", 1));
    rc_strmap_free(&m);
    rc_strmap_free(NULL);
}

static void test_put_get_replace_del(void **state)
{
    (void)state;
    rc_strmap_t m;
    uint64_t v = 0;
    rc_strmap_init(&m);

    assert_int_equal(rc_strmap_put(&m, "apple", 5, 1), 0);
    assert_int_equal(rc_strmap_put(&m, "banana", 6, 2), 0);
    assert_int_equal(m.len, 2);
    assert_true(rc_strmap_get(&m, "apple", 5, &v));
    assert_int_equal(v, 1);
    assert_true(rc_strmap_get(&m, "banana", 6, &v));
    assert_int_equal(v, 2);
    assert_true(rc_strmap_get(&m, "apple", 5, NULL));
    assert_false(rc_strmap_get(&m, "cherry", 6, &v));

    /* Replacing keeps one entry. */
    assert_int_equal(rc_strmap_put(&m, "apple", 5, 10), 0);
    assert_int_equal(m.len, 2);
    assert_true(rc_strmap_get(&m, "apple", 5, &v));
    assert_int_equal(v, 10);

    assert_true(rc_strmap_del(&m, "apple", 5));
    assert_int_equal(m.len, 1);
    assert_false(rc_strmap_get(&m, "apple", 5, &v));
    assert_false(rc_strmap_del(&m, "apple", 5));
    assert_true(rc_strmap_get(&m, "banana", 6, &v));
    assert_int_equal(v, 2);

    /* A deleted key can come back. */
    assert_int_equal(rc_strmap_put(&m, "apple", 5, 11), 0);
    assert_true(rc_strmap_get(&m, "apple", 5, &v));
    assert_int_equal(v, 11);
    check_invariants(&m);
    rc_strmap_free(&m);
}

/* The length is part of the key: prefixes and embedded NULs are distinct keys. */
static void test_length_is_part_of_key(void **state)
{
    (void)state;
    rc_strmap_t m;
    uint64_t v = 0;
    static const char bytes[] = "abc\0abd";
    rc_strmap_init(&m);
    assert_int_equal(rc_strmap_put(&m, bytes, 2, 2), 0);
    assert_int_equal(rc_strmap_put(&m, bytes, 3, 3), 0);
    assert_int_equal(rc_strmap_put(&m, bytes, 0, 100), 0);
    assert_int_equal(rc_strmap_put(&m, bytes, 7, 7), 0);
    assert_int_equal(m.len, 4);
    assert_true(rc_strmap_get(&m, "ab", 2, &v));
    assert_int_equal(v, 2);
    assert_true(rc_strmap_get(&m, "abc", 3, &v));
    assert_int_equal(v, 3);
    assert_true(rc_strmap_get(&m, "", 0, &v));
    assert_int_equal(v, 100);
    assert_true(rc_strmap_get(&m, "abc\0abd", 7, &v));
    assert_int_equal(v, 7);
    assert_false(rc_strmap_get(&m, "abc\0abe", 7, &v));
    assert_false(rc_strmap_get(&m, "a", 1, &v));
    rc_strmap_free(&m);
}

/* Keys are compared by bytes, never by pointer; a replacement borrows the new key. */
static void test_keys_borrowed_by_bytes(void **state)
{
    (void)state;
    rc_strmap_t m;
    uint64_t v = 0;
    char stored[16] = "session-42";
    char probe[16] = "session-42";
    char replacement[16] = "session-42";
    rc_strmap_init(&m);

    assert_int_equal(rc_strmap_put(&m, stored, strlen(stored), 42), 0);
    assert_ptr_not_equal(stored, probe);
    assert_true(rc_strmap_get(&m, probe, strlen(probe), &v));
    assert_int_equal(v, 42);

    /* Replace through another buffer holding the same bytes, then retire the first one:
     * the entry must now live on the replacement's bytes. */
    assert_int_equal(rc_strmap_put(&m, replacement, strlen(replacement), 43), 0);
    assert_int_equal(m.len, 1);
    memset(stored, 'x', sizeof(stored) - 1);
    assert_true(rc_strmap_get(&m, probe, strlen(probe), &v));
    assert_int_equal(v, 43);
    assert_true(rc_strmap_del(&m, probe, strlen(probe)));
    assert_int_equal(m.len, 0);
    rc_strmap_free(&m);
}

static void test_hash_nonzero_and_stable(void **state)
{
    (void)state;
    char buf[32];
    assert_int_not_equal(rc_strhash("", 0), 0);
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(buf, sizeof(buf), "k%d", i);
        uint64_t h = rc_strhash(buf, (size_t)n);
        assert_int_not_equal(h, 0);
        assert_int_equal(h, rc_strhash(buf, (size_t)n));
    }
}

#define MANY     100000
#define KEY_SIZE 16

static char (*make_keys(size_t n))[KEY_SIZE]
{
    char(*keys)[KEY_SIZE] = malloc(n * KEY_SIZE);
    assert_non_null(keys);
    for (size_t i = 0; i < n; i++)
        snprintf(keys[i], KEY_SIZE, "item-%zu", i * 7919);
    return keys;
}

/* 100k keys with deletions interleaved with the inserts (every third key is deleted a
 * little after it went in), so deletions happen at every table size and inside long
 * probe runs; afterwards every survivor is found with its value and no victim is. */
static void test_many_keys_interleaved_deletes(void **state)
{
    (void)state;
    char(*keys)[KEY_SIZE] = make_keys(MANY);
    rc_strmap_t m;
    uint64_t v;
    rc_strmap_init(&m);

    size_t live = 0;
    for (size_t i = 0; i < MANY; i++) {
        assert_int_equal(rc_strmap_put(&m, keys[i], strlen(keys[i]), i), 0);
        live++;
        if (i >= 50 && (i - 50) % 3 == 0) {
            size_t victim = i - 50;
            assert_true(rc_strmap_del(&m, keys[victim], strlen(keys[victim])));
            live--;
        }
        if (i % 9973 == 0)
            check_invariants(&m);
    }
    assert_int_equal(m.len, live);
    check_invariants(&m);

    for (size_t i = 0; i < MANY; i++) {
        bool deleted = i + 50 < MANY && i % 3 == 0;
        bool found = rc_strmap_get(&m, keys[i], strlen(keys[i]), &v);
        if (found != !deleted) {
            print_error("key %s (#%zu): found=%d, deleted=%d\n", keys[i], i, found, deleted);
            fail();
        }
        if (found)
            assert_int_equal(v, i);
    }

    /* Deleting the survivors empties the map; each is still found right before it goes. */
    for (size_t i = 0; i < MANY; i++) {
        bool deleted = i + 50 < MANY && i % 3 == 0;
        assert_int_equal(rc_strmap_del(&m, keys[i], strlen(keys[i])), !deleted);
    }
    assert_int_equal(m.len, 0);
    check_invariants(&m);
    rc_strmap_free(&m);
    free(keys);
}

/* Random operations on a small key space against a plain array as the model. A small
 * table keeps probe runs long and wrapping round the table's end, where backward shift
 * has to compare positions modulo the capacity. */
static void test_random_ops_against_model(void **state)
{
    (void)state;
    enum { KEYS = 3000, OPS = 300000 };
    char(*keys)[KEY_SIZE] = make_keys(KEYS);
    uint64_t model[KEYS];
    bool present[KEYS] = {false};
    rc_strmap_t m;
    uint64_t v;
    uint32_t seed = 12345;
    rc_strmap_init(&m);

    for (uint32_t op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        /* Vary the live key range so the table grows, drains and regrows. */
        uint32_t range = (op / 20000) % 2 ? KEYS : 40;
        uint32_t k = (seed >> 8) % range;
        size_t len = strlen(keys[k]);
        switch ((seed >> 4) % 3) {
        case 0:
            assert_int_equal(rc_strmap_put(&m, keys[k], len, op), 0);
            model[k] = op;
            present[k] = true;
            break;
        case 1:
            assert_int_equal(rc_strmap_del(&m, keys[k], len), present[k]);
            present[k] = false;
            break;
        default:
            assert_int_equal(rc_strmap_get(&m, keys[k], len, &v), present[k]);
            if (present[k])
                assert_int_equal(v, model[k]);
        }
        if (op % 5000 == 0) {
            check_invariants(&m);
            for (uint32_t j = 0; j < KEYS; j++) {
                assert_int_equal(rc_strmap_get(&m, keys[j], strlen(keys[j]), &v), present[j]);
                if (present[j])
                    assert_int_equal(v, model[j]);
            }
        }
    }
    rc_strmap_free(&m);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_put_get_replace_del),
        cmocka_unit_test(test_length_is_part_of_key),
        cmocka_unit_test(test_keys_borrowed_by_bytes),
        cmocka_unit_test(test_hash_nonzero_and_stable),
        cmocka_unit_test(test_many_keys_interleaved_deletes),
        cmocka_unit_test(test_random_ops_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
