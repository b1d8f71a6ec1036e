/* SPDX-License-Identifier: Apache-2.0 */
/* Fixtures of the engine's unit tests (test_engine, test_ranker, test_rules,
 * test_experiments): the clock they run at and a world of 200 items to rank, with the
 * helpers that drive it through the public API the session layer uses. Each test is one
 * program of one file, so these are static: every test has its own copy. */
#ifndef RC_TEST_ENGINE_FIXTURE_H
#define RC_TEST_ENGINE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/engine_int.h" /* white-box: the tests read and tune the models */
#include "engine/ranker.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* 2023-11-14 22:13:20 UTC; DAY0_MS is that day's midnight. */
#define T0_MS   1700000000000LL
#define DAY0_MS 1699920000000LL
#define HOUR_MS 3600000LL
#define MIN_MS  60000LL

/* The engines of the ranking tests are held here, not only by a test's variables, so the
 * teardown frees them even when an assertion ends the test early (the sanitizer build
 * reports only the failure, not a leak behind it). */
static rc_engine_t *engines[2];

/* The tests' rank scratch (callers own one: engine.h), made at first use and freed by the
 * teardown. */
static rc_ranker_t *fixture_ranker;

static inline rc_ranker_t *scratch(void)
{
    if (fixture_ranker == NULL)
        fixture_ranker = rc_ranker_new();
    assert_non_null(fixture_ranker);
    return fixture_ranker;
}

/* Frees engine `i` (a test's own end, and the teardown's: the second is a no-op). */
static inline void free_engine(int i)
{
    rc_engine_free(engines[i]);
    engines[i] = NULL;
}

static inline int free_engines(void **state)
{
    (void)state;
    free_engine(0);
    free_engine(1);
    rc_ranker_free(fixture_ranker);
    fixture_ranker = NULL;
    return 0;
}

/* A new engine with an empty catalog, held as engines[i]. */
static inline rc_engine_t *new_engine(int i, uint32_t max_items, bool open)
{
    engines[i] = rc_engine_new(max_items, open, 32, 86400, 3600, T0_MS / 1000.0);
    assert_non_null(engines[i]);
    return engines[i];
}

#define N_ITEMS 200
#define N_CATS  8

/* 200 items in 8 categories (item i in "cat<i % 8>"), named "Item <i>", tagged
 * "color<i % 7>" and "size<i % 3>", priced 1 + i % 50, popularity 1000 - i: the most
 * popular items are the lowest indexes and they alternate categories. */
/* Adds those items to the empty catalog of `e` (item i at index i) and refreshes it. */
static inline void add_fixture_items(rc_engine_t *e)
{
    char id[16], name[32], cat[16], color[16], size[16];
    const char *tags[] = {color, size};
    for (int i = 0; i < N_ITEMS; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "i%03d", i);
        snprintf(name, sizeof(name), "Item %d", i);
        snprintf(cat, sizeof(cat), "cat%d", i % N_CATS);
        snprintf(color, sizeof(color), "color%d", i % 7);
        snprintf(size, sizeof(size), "size%d", i % 3);
        assert_int_equal(
            rc_catalog_upsert(&e->catalog, id, name, cat, tags, 2, 1 + i % 50, 1000 - i, &idx), 0);
        assert_int_equal(idx, i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
}

/* Engine `slot` (engines[slot]) with those items. */
static inline rc_engine_t *engine_with_items(int slot, bool open)
{
    rc_engine_t *e = new_engine(slot, 100000, open);
    add_fixture_items(e);
    return e;
}

static inline rc_str_t no_query(void)
{
    return (rc_str_t){"", 0};
}

static inline void observe(rc_engine_t *e, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                           int64_t wall_ms)
{
    rc_engine_observe(e, u, kind, item, rc_event_weight(kind, false, 0), no_query(), wall_ms);
}

static inline uint32_t rank_k(rc_engine_t *e, const rc_user_state_t *u, uint32_t k,
                              int32_t category, double price_min, double price_max,
                              rc_ranked_t *out)
{
    rc_rank_spec_t spec = {
        .k = k, .category = category, .price_min = price_min, .price_max = price_max};
    uint32_t n = rc_engine_rank(e, scratch(), u, &spec, T0_MS, out);
    assert_int_le(n, k);
    /* Best first, never the same item twice, every index a catalog item. */
    for (uint32_t i = 0; i < n; i++) {
        assert_int_lt(out[i].item, e->catalog.n);
        if (i > 0)
            assert_dbl_ge(out[i - 1].score, out[i].score);
        for (uint32_t j = 0; j < i; j++) {
            if (out[j].item == out[i].item) {
                print_error("item %u at places %u and %u\n", out[i].item, j, i);
                fail();
            }
        }
    }
    return n;
}

static inline uint32_t count_category(const rc_engine_t *e, const rc_ranked_t *out, uint32_t n,
                                      uint16_t category)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++)
        count += e->catalog.items[out[i].item].category == category;
    return count;
}

static inline int32_t place_of(const rc_ranked_t *out, uint32_t n, uint32_t item)
{
    for (uint32_t i = 0; i < n; i++)
        if (out[i].item == item)
            return (int32_t)i;
    return -1;
}

static inline uint16_t category_of(const rc_engine_t *e, const char *name)
{
    int32_t c = rc_catalog_category(&e->catalog, name, strlen(name));
    assert_int_gt(c, 0);
    return (uint16_t)c;
}

#endif
