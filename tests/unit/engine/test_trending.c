/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of dayparts and trending (engine/trending.h): the top lists by activity, per
 * segment, locale and category, their decay, and the refresh done a few items per step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/trending.h"
#include "engine_fixture.h"

#include <stdio.h>

static void test_daypart(void **state)
{
    (void)state;
    assert_int_equal(rc_daypart(DAY0_MS, 0), 0);
    assert_int_equal(rc_daypart(DAY0_MS + 6 * HOUR_MS - 1, 0), 0);
    assert_int_equal(rc_daypart(DAY0_MS + 6 * HOUR_MS, 0), 1);
    assert_int_equal(rc_daypart(DAY0_MS + 11 * HOUR_MS + 59 * MIN_MS, 0), 1);
    assert_int_equal(rc_daypart(DAY0_MS + 12 * HOUR_MS, 0), 2);
    assert_int_equal(rc_daypart(DAY0_MS + 18 * HOUR_MS, 0), 3);
    assert_int_equal(rc_daypart(DAY0_MS + 23 * HOUR_MS + 59 * MIN_MS, 0), 3);
    assert_int_equal(rc_daypart(T0_MS, 0), 3); /* 22:13 UTC */

    /* The offset is local minus UTC: UTC+1 is 60. */
    assert_int_equal(rc_daypart(DAY0_MS + 23 * HOUR_MS + 30 * MIN_MS, 60), 0); /* 00:30 */
    assert_int_equal(rc_daypart(DAY0_MS + 3 * HOUR_MS, -300), 3);              /* 22:00 */
    assert_int_equal(rc_daypart(DAY0_MS + 20 * HOUR_MS, 840), 1);              /* 10:00 */
    assert_int_equal(rc_daypart(DAY0_MS + 5 * HOUR_MS, -840), 2);              /* 15:00 */
    assert_int_equal(rc_daypart(DAY0_MS + 5 * HOUR_MS + 30 * MIN_MS, 30), 1);  /* 06:00 */
    assert_int_equal(rc_daypart(DAY0_MS + 5 * HOUR_MS + 30 * MIN_MS, 29), 0);  /* 05:59 */
    assert_int_equal(rc_daypart(0, 0), 0);
    assert_int_equal(rc_daypart(0, -60), 3); /* 1969-12-31 23:00 */
}

/* Ten items, "a" for even and "b" for odd indexes, popularity index + 1. */
static void small_catalog(rc_catalog_t *c)
{
    char id[8];
    assert_int_equal(rc_catalog_init(c, 100, false), 0);
    for (int i = 0; i < 10; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "t%d", i);
        assert_int_equal(rc_catalog_upsert(c, id, id, i % 2 ? "b" : "a", NULL, 0, 10, i + 1, &idx),
                         0);
        assert_int_equal(idx, i);
    }
}

static void assert_top(const rc_trending_t *t, int seg, const uint32_t *want, uint32_t n)
{
    assert_int_ge(t->n_top[seg], n);
    for (uint32_t j = 0; j < n; j++) {
        if (t->top[seg][j] != want[j]) {
            print_error("segment %d, place %u: item %u, expected %u\n", seg, j, t->top[seg][j],
                        want[j]);
            fail();
        }
    }
}

static void test_trending_top_by_activity(void **state)
{
    (void)state;
    rc_catalog_t c;
    rc_trending_t t;
    const double now = T0_MS / 1000.0;
    small_catalog(&c);
    rc_trending_init(&t, 3600, now);

    /* No traffic yet: the popularity prior orders the list. */
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    assert_int_equal(t.n_top[RC_SEG_ALL], 10);
    const uint32_t cold[] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    assert_top(&t, RC_SEG_ALL, cold, 10);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 9), 0, 0);

    /* Any activity outranks the prior, most active first. */
    assert_int_equal(rc_trending_add(&t, 3, RC_DEV_OTHER, 0, -1, 0, 5, now), 0);
    assert_int_equal(rc_trending_add(&t, 7, RC_DEV_OTHER, 0, -1, 0, 3, now), 0);
    assert_int_equal(rc_trending_add(&t, 1, RC_DEV_OTHER, 0, -1, 0, 1, now), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    const uint32_t warm[] = {3, 7, 1, 9, 8, 6, 5, 4, 2, 0};
    assert_top(&t, RC_SEG_ALL, warm, 10);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 3), 1, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 7), 0.6, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 9), 0, 0);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 5000), 0, 0);

    /* A new leader between refreshes is normalised to 1, not above. */
    assert_int_equal(rc_trending_add(&t, 7, RC_DEV_OTHER, 0, -1, 0, 7, now), 0);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 7), 1, 1e-6);
    assert_dbl_le(rc_trending_norm(&t, RC_SEG_ALL, 3), 1);

    /* Items that may not be recommended leave the lists. */
    c.items[7].flags |= RC_ITEM_OUT_OF_STOCK;
    c.items[9].flags |= RC_ITEM_REMOVED;
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    assert_int_equal(t.n_top[RC_SEG_ALL], 8);
    const uint32_t avail[] = {3, 1, 8, 6, 5, 4, 2, 0};
    assert_top(&t, RC_SEG_ALL, avail, 8);
    rc_trending_free(&t);
    rc_trending_free(NULL);
    rc_catalog_free(&c);
}

static void test_trending_segments_separate(void **state)
{
    (void)state;
    rc_catalog_t c;
    rc_trending_t t;
    const double now = T0_MS / 1000.0;
    small_catalog(&c);
    rc_trending_init(&t, 3600, now);
    assert_int_equal(rc_trending_add(&t, 2, RC_DEV_MOBILE, 1, -1, 0, 10, now), 0);
    assert_int_equal(rc_trending_add(&t, 4, RC_DEV_DESKTOP, 1, -1, 0, 5, now), 0);
    assert_int_equal(rc_trending_add(&t, 6, RC_DEV_DESKTOP, 3, -1, 0, 1, now), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);

    const uint32_t all[] = {2, 4, 6, 9};
    assert_top(&t, RC_SEG_ALL, all, 4);
    const uint32_t mobile[] = {2, 9, 8};
    assert_top(&t, RC_SEG_DEVICE(RC_DEV_MOBILE), mobile, 3);
    const uint32_t desktop[] = {4, 6, 9, 8};
    assert_top(&t, RC_SEG_DEVICE(RC_DEV_DESKTOP), desktop, 4);
    const uint32_t tablet[] = {9, 8, 7};
    assert_top(&t, RC_SEG_DEVICE(RC_DEV_TABLET), tablet, 3);
    const uint32_t morning[] = {2, 4, 9};
    assert_top(&t, RC_SEG_DAYPART(1), morning, 3);
    const uint32_t evening[] = {6, 9};
    assert_top(&t, RC_SEG_DAYPART(3), evening, 2);
    const uint32_t night[] = {9, 8};
    assert_top(&t, RC_SEG_DAYPART(0), night, 2);

    assert_float_equal(rc_trending_norm(&t, RC_SEG_DEVICE(RC_DEV_MOBILE), 2), 1, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_DEVICE(RC_DEV_MOBILE), 4), 0, 0);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_DEVICE(RC_DEV_DESKTOP), 2), 0, 0);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_DEVICE(RC_DEV_DESKTOP), 4), 1, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_DEVICE(RC_DEV_DESKTOP), 6), 0.2, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 4), 0.5, 1e-6);
    rc_trending_free(&t);
    rc_catalog_free(&c);
}

/* Locale tags are tracked in canonical case; malformed ones are not. A locale gets a segment
 * only once RC_LOCALE_MIN_USERS distinct users sent events in it, and its counts start then;
 * each locale's top list holds its own activity. */
static void test_trending_locales(void **state)
{
    (void)state;
    rc_catalog_t c;
    rc_trending_t t;
    const double now = T0_MS / 1000.0;
    small_catalog(&c);
    rc_trending_init(&t, 3600, now);
    int gb = rc_trending_locale(&t, "EN_gb", 5, now);
    assert_int_ge(gb, 0);
    assert_string_equal(rc_trending_locale_tag(&t, gb), "en-GB");
    assert_int_equal(rc_trending_locale(&t, "en-GB", 5, now), gb);
    int tw = rc_trending_locale(&t, "zh-hant-tw", 10, now);
    assert_string_equal(rc_trending_locale_tag(&t, tw), "zh-Hant-TW");
    static const char *const bad[] = {"",        "en--GB",           "-en", "en-", "e n",
                                      "en-GB\n", "abcdefghijklmnopq"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rc_trending_locale(&t, bad[i], strlen(bad[i]), now), -1);

    /* One user, however active, earns en-GB nothing. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(rc_trending_add(&t, 2, RC_DEV_OTHER, 0, gb, 7, 10, now), 0);
    assert_int_equal(rc_trending_locale_segment(&t, gb), -1);
    assert_int_equal(t.n_segments, RC_SEG_LOCALE(0));
    /* The RC_LOCALE_MIN_USERS-th distinct user does; that event counts in it. */
    for (uint32_t u = 1; u < RC_LOCALE_MIN_USERS; u++)
        assert_int_equal(rc_trending_add(&t, 2, RC_DEV_OTHER, 0, gb, 100 + u, 10, now), 0);
    assert_int_equal(rc_trending_locale_segment(&t, gb), RC_SEG_LOCALE(0));
    assert_string_equal(t.locales[0], "en-GB");
    for (uint32_t u = 0; u < RC_LOCALE_MIN_USERS; u++)
        assert_int_equal(rc_trending_add(&t, 4, RC_DEV_OTHER, 0, tw, 200 + u, 5, now), 0);
    assert_int_equal(rc_trending_locale_segment(&t, tw), RC_SEG_LOCALE(1));
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    const uint32_t gb_top[] = {2, 9, 8}, tw_top[] = {4, 9, 8};
    assert_top(&t, RC_SEG_LOCALE(0), gb_top, 3);
    assert_top(&t, RC_SEG_LOCALE(1), tw_top, 3);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_LOCALE(0), 2), 1, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_LOCALE(0), 4), 0, 0);
    rc_trending_free(&t);
    rc_catalog_free(&c);
}

/* Issue S: made-up locales must not hold the segments. Locales with a few users each fill
 * the slots; a real market more active than the least active of them takes that one's slot
 * (and a reference to the evicted locale then resolves to no segment); one less active than
 * all of them waits. Junk tags beyond the table push out only tags without a segment. */
static void test_trending_locale_reclaim(void **state)
{
    (void)state;
    rc_trending_t t;
    const double now = T0_MS / 1000.0;
    rc_trending_init(&t, 3600, now);
    int fake[RC_LOCALES];
    char tag[8];
    for (int l = 0; l < RC_LOCALES; l++) {
        snprintf(tag, sizeof(tag), "x%d", l);
        fake[l] = rc_trending_locale(&t, tag, strlen(tag), now);
        for (uint32_t u = 0; u < 4 * RC_LOCALE_MIN_USERS; u++) /* 4 events per user */
            rc_trending_add(&t, 1, RC_DEV_OTHER, 0, fake[l],
                            1000u * (uint32_t)l + u % RC_LOCALE_MIN_USERS + 1, 1, now);
        assert_int_equal(rc_trending_locale_segment(&t, fake[l]), RC_SEG_LOCALE(l));
    }
    /* x0 keeps some traffic; the others go quiet. */
    for (int i = 0; i < 20; i++)
        rc_trending_add(&t, 1, RC_DEV_OTHER, 0, fake[0], 1, 1, now + 600);
    /* A real market an hour later (one half-life: each quiet one's activity is down to 10):
     * its 5 users, 3 events each. */
    int de = rc_trending_locale(&t, "de-DE", 5, now + 3600);
    for (int i = 0; i < 3 * RC_LOCALE_MIN_USERS; i++)
        rc_trending_add(&t, 3, RC_DEV_OTHER, 0, de, 50u + (uint32_t)(i % RC_LOCALE_MIN_USERS), 1,
                        now + 3600);
    int seg = rc_trending_locale_segment(&t, de);
    assert_int_ge(seg, RC_SEG_LOCALE(1)); /* not x0's: it was used more */
    assert_int_equal(rc_trending_locale_segment(&t, fake[0]), RC_SEG_LOCALE(0));
    int evicted = seg - RC_SEG_LOCALE(0);
    assert_int_equal(rc_trending_locale_segment(&t, fake[evicted]), -1);
    assert_string_equal(t.locales[evicted], "de-DE");
    /* Its segment starts empty: the old locale's counts are gone. */
    assert_float_equal(rc_trending_scores(&t, 1)[seg], 0, 0);
    assert_int_equal(t.n_segments, RC_SEGMENTS);

    /* A locale whose users are less active than every holder waits (5 events < 10). */
    int fr = rc_trending_locale(&t, "fr-FR", 5, now + 3600);
    for (uint32_t u = 0; u < RC_LOCALE_MIN_USERS; u++)
        rc_trending_add(&t, 3, RC_DEV_OTHER, 0, fr, 70u + u, 1, now + 3600);
    assert_int_equal(rc_trending_locale_segment(&t, fr), -1);

    /* Junk tags fill the table: tags holding a segment stay, the oldest others go, and a
     * stale reference to a reused entry resolves to nothing. */
    for (int i = 0; i < 3 * RC_LOCALE_TAGS; i++) {
        snprintf(tag, sizeof(tag), "j%d", i);
        assert_int_ge(rc_trending_locale(&t, tag, strlen(tag), now + 4000 + i), 0);
    }
    assert_int_equal(rc_trending_locale_segment(&t, de), seg);
    assert_string_equal(rc_trending_locale_tag(&t, de), "de-DE");
    assert_int_equal(rc_trending_locale_segment(&t, fake[0]), RC_SEG_LOCALE(0));
    assert_null(rc_trending_locale_tag(&t, fr));
    assert_null(rc_trending_locale_tag(&t, fake[evicted]));
    rc_trending_free(&t);
}

static void test_trending_decay(void **state)
{
    (void)state;
    const double hl = 3600, now = T0_MS / 1000.0;
    rc_catalog_t c;
    rc_trending_t t;
    small_catalog(&c);
    rc_trending_init(&t, hl, now);
    assert_int_equal(rc_trending_add(&t, 5, RC_DEV_OTHER, 0, -1, 0, 1, now), 0);
    assert_int_equal(rc_trending_add(&t, 0, RC_DEV_OTHER, 0, -1, 0, 1, now + hl), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    const uint32_t order[] = {0, 5, 9};
    assert_top(&t, RC_SEG_ALL, order, 3);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 5), 0.5, 1e-4);

    /* Across the rescale after ~40 half-lives. */
    assert_int_equal(rc_trending_add(&t, 1, RC_DEV_OTHER, 0, -1, 0, 1, now + 39 * hl), 0);
    assert_int_equal(rc_trending_add(&t, 2, RC_DEV_OTHER, 0, -1, 0, 1, now + 41 * hl), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    const uint32_t later[] = {2, 1};
    assert_top(&t, RC_SEG_ALL, later, 2);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 1), 0.25, 1e-4);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 2), 1, 1e-6);
    rc_trending_free(&t);
    rc_catalog_free(&c);
}

static void test_trending_by_category(void **state)
{
    (void)state;
    const double now = T0_MS / 1000.0;
    rc_catalog_t c;
    rc_trending_t t;
    small_catalog(&c);
    rc_trending_init(&t, 3600, now);
    assert_int_equal(rc_trending_add(&t, 0, RC_DEV_OTHER, 0, -1, 0, 4, now), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    int32_t a = rc_catalog_category(&c, "a", 1), b = rc_catalog_category(&c, "b", 1);
    assert_int_gt(a, 0);
    assert_int_gt(b, 0);
    assert_int_equal(t.n_by_category[a], 5);
    assert_int_equal(t.n_by_category[b], 5);
    const uint32_t want_a[] = {0, 8, 6, 4, 2}, want_b[] = {9, 7, 5, 3, 1};
    for (int j = 0; j < 5; j++) {
        assert_int_equal(t.by_category[a * RC_TRENDING_PER_CAT + j], want_a[j]);
        assert_int_equal(t.by_category[b * RC_TRENDING_PER_CAT + j], want_b[j]);
    }
    rc_trending_free(&t);
    rc_catalog_free(&c);
}

/* A catalog far larger than the lists: the top 100 overall and the top 40 of each category
 * must be exactly the best by activity, in order (the bounded heaps evict correctly). */
static void test_trending_top_matches_full_sort(void **state)
{
    (void)state;
    enum { N = 1000, CATS = 5 };
    const double now = T0_MS / 1000.0;
    rc_catalog_t c;
    rc_trending_t t;
    char id[16], cat[8];
    static uint32_t by_weight[N];
    assert_int_equal(rc_catalog_init(&c, N, false), 0);
    rc_trending_init(&t, 3600, now);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "h%u", i);
        snprintf(cat, sizeof(cat), "k%u", i % CATS);
        assert_int_equal(rc_catalog_upsert(&c, id, id, cat, NULL, 0, 1, 0, &idx), 0);
        /* Distinct weights in a scrambled order: 7919 is prime to N. */
        float w = 1.0f + (float)((i * 7919u) % N);
        assert_int_equal(rc_trending_add(&t, i, RC_DEV_OTHER, 0, -1, 0, w, now), 0);
        by_weight[N - 1 - (i * 7919u) % N] = i;
    }
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    assert_int_equal(t.n_top[RC_SEG_ALL], RC_TRENDING_TOP);
    assert_top(&t, RC_SEG_ALL, by_weight, RC_TRENDING_TOP);

    for (uint32_t k = 0; k < CATS; k++) {
        snprintf(cat, sizeof(cat), "k%u", k);
        int32_t ci = rc_catalog_category(&c, cat, strlen(cat));
        assert_int_gt(ci, 0);
        assert_int_equal(t.n_by_category[ci], RC_TRENDING_PER_CAT);
        uint32_t j = 0;
        for (uint32_t r = 0; r < N && j < RC_TRENDING_PER_CAT; r++) {
            if (by_weight[r] % CATS != k)
                continue;
            assert_int_equal(t.by_category[(size_t)ci * RC_TRENDING_PER_CAT + j], by_weight[r]);
            j++;
        }
    }
    rc_trending_free(&t);
    rc_catalog_free(&c);
}

/* The loop's refresh, a few items per step, publishes exactly what a whole refresh does,
 * keeps the old lists until its pass ends, and counts an event made mid-pass in the
 * normaliser (no normalised score above 1); the item it raised leads from the next pass. */
static void test_trending_refresh_in_steps(void **state)
{
    (void)state;
    enum { N = 700, CATS = 4 };
    const double now = T0_MS / 1000.0;
    rc_catalog_t c;
    rc_trending_t whole, steps;
    char id[16], cat[8];
    assert_int_equal(rc_catalog_init(&c, N, false), 0);
    rc_trending_init(&whole, 3600, now);
    rc_trending_init(&steps, 3600, now);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "s%u", i);
        snprintf(cat, sizeof(cat), "k%u", i % CATS);
        assert_int_equal(rc_catalog_upsert(&c, id, id, cat, NULL, 0, 1, (double)(i % 13), &idx), 0);
        float w = 1.0f + (float)((i * 389u) % N);
        assert_int_equal(rc_trending_add(&whole, i, (int)(i % 3), (int)(i % 4), -1, 0, w, now), 0);
        assert_int_equal(rc_trending_add(&steps, i, (int)(i % 3), (int)(i % 4), -1, 0, w, now), 0);
    }
    assert_int_equal(rc_trending_refresh(&whole, &c), 0);
    /* The first pass sets the popularity scale the prior uses; the second is compared. */
    assert_int_equal(rc_trending_refresh(&steps, &c), 0);
    int done = 0, calls = 0;
    while (done == 0) {
        done = rc_trending_refresh_step(&steps, &c, 64);
        calls++;
        if (done == 0) /* mid-pass, the published lists are still the previous pass's */
            assert_int_equal(steps.n_top[RC_SEG_ALL], RC_TRENDING_TOP);
    }
    assert_int_equal(done, 1);
    assert_int_equal(calls, (N + 63) / 64);
    for (int seg = 0; seg < RC_SEGMENTS; seg++) {
        assert_int_equal(steps.n_top[seg], whole.n_top[seg]);
        assert_memory_equal(steps.top[seg], whole.top[seg], whole.n_top[seg] * sizeof(uint32_t));
    }
    for (uint32_t k = 1; k < c.n_categories; k++) {
        assert_int_equal(steps.n_by_category[k], whole.n_by_category[k]);
        assert_memory_equal(steps.by_category + (size_t)k * RC_TRENDING_PER_CAT,
                            whole.by_category + (size_t)k * RC_TRENDING_PER_CAT,
                            whole.n_by_category[k] * sizeof(uint32_t));
    }
    /* An item already scanned becomes the leader mid-pass. */
    assert_int_equal(rc_trending_refresh_step(&steps, &c, 10), 0);
    assert_int_equal(rc_trending_add(&steps, 3, RC_DEV_OTHER, 0, -1, 0, 5000.0f, now), 0);
    while (rc_trending_refresh_step(&steps, &c, 100) == 0)
        ;
    /* This pass ranked it by the score it had when scanned; the normaliser has its new one. */
    assert_true(rc_trending_norm(&steps, RC_SEG_ALL, 3) <= 1.0f);
    assert_true(rc_trending_norm(&steps, RC_SEG_ALL, 3) > 0.99f);
    while (rc_trending_refresh_step(&steps, &c, 100) == 0)
        ;
    assert_int_equal(steps.top[RC_SEG_ALL][0], 3); /* the next pass ranks it first */
    rc_trending_free(&whole);
    rc_trending_free(&steps);
    rc_catalog_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daypart),
        cmocka_unit_test(test_trending_top_by_activity),
        cmocka_unit_test(test_trending_segments_separate),
        cmocka_unit_test(test_trending_locales),
        cmocka_unit_test(test_trending_locale_reclaim),
        cmocka_unit_test(test_trending_decay),
        cmocka_unit_test(test_trending_by_category),
        cmocka_unit_test(test_trending_top_matches_full_sort),
        cmocka_unit_test(test_trending_refresh_in_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
