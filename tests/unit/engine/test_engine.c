/* Unit tests of the recommendation engine: co-visitation (engine/covisit.h), trending and
 * dayparts (engine/trending.h), and the ranker and learning of engine/engine.h, driven
 * through the public API the session layer uses (observe, refresh, rank, why). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/engine.h"
#include "engine/experiments.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2023-11-14 22:13:20 UTC; DAY0_MS is that day's midnight. */
#define T0_MS   1700000000000LL
#define DAY0_MS 1699920000000LL
#define HOUR_MS 3600000LL
#define MIN_MS  60000LL

/* ---------------------------------------------------------------------------------------
 * Co-visitation
 */

static float weight_of(const rc_covisit_t *cv, uint32_t item, uint32_t neighbor)
{
    uint32_t n;
    const rc_neighbor_t *nb = rc_covisit_neighbors(cv, item, &n);
    for (uint32_t j = 0; j < n; j++)
        if (nb[j].item == neighbor)
            return nb[j].w;
    return 0;
}

static void test_covisit_symmetric(void **state)
{
    (void)state;
    rc_covisit_t cv;
    uint32_t n = 99;
    rc_covisit_init(&cv, 8, 3600, 1000);
    assert_null(rc_covisit_neighbors(&cv, 5, &n));
    assert_int_equal(n, 0);

    assert_int_equal(rc_covisit_add(&cv, 1, 2000, 1.5f, 1000), 0);
    assert_float_equal(weight_of(&cv, 1, 2000), 1.5, 1e-6);
    assert_float_equal(weight_of(&cv, 2000, 1), 1.5, 1e-6);
    assert_int_equal(rc_covisit_add(&cv, 2000, 1, 0.5f, 1000), 0);
    assert_float_equal(weight_of(&cv, 1, 2000), 2.0, 1e-6);
    assert_float_equal(weight_of(&cv, 2000, 1), 2.0, 1e-6);
    rc_covisit_neighbors(&cv, 1, &n);
    assert_int_equal(n, 1);
    rc_covisit_neighbors(&cv, 2, &n);
    assert_int_equal(n, 0);

    /* An item is not its own neighbour. */
    assert_int_equal(rc_covisit_add(&cv, 7, 7, 1, 1000), 0);
    rc_covisit_neighbors(&cv, 7, &n);
    assert_int_equal(n, 0);
    assert_int_gt(rc_covisit_bytes(&cv), 0);
    rc_covisit_free(&cv);
    rc_covisit_free(NULL);
}

/* The directed form learns each direction with its own weight; a weight of 0 adds nothing,
 * so the list of the later item stays empty. */
static void test_covisit_directed(void **state)
{
    (void)state;
    rc_covisit_t cv;
    uint32_t n = 99;
    rc_covisit_init(&cv, 8, 3600, 1000);
    assert_int_equal(rc_covisit_add_directed(&cv, 3, 4, 2.0f, 0.5f, 1000), 0);
    assert_float_equal(weight_of(&cv, 3, 4), 2.0, 1e-6);
    assert_float_equal(weight_of(&cv, 4, 3), 0.5, 1e-6);
    assert_int_equal(rc_covisit_add_directed(&cv, 5, 6, 1.0f, 0.0f, 1000), 0);
    assert_float_equal(weight_of(&cv, 5, 6), 1.0, 1e-6);
    rc_covisit_neighbors(&cv, 6, &n);
    assert_int_equal(n, 0);
    rc_covisit_free(&cv);
}

static void assert_strongest_first(const rc_covisit_t *cv, uint32_t item)
{
    uint32_t n;
    const rc_neighbor_t *nb = rc_covisit_neighbors(cv, item, &n);
    for (uint32_t j = 1; j < n; j++)
        assert_dbl_ge(nb[j - 1].w, nb[j].w);
}

/* Lists stay strongest first (the ranker takes a prefix of each) as weights grow in any
 * order, and a full list gives its weakest place to a newcomer only if it is strong enough. */
static void test_covisit_strongest_first(void **state)
{
    (void)state;
    rc_covisit_t cv;
    uint32_t n;
    rc_covisit_init(&cv, 8, 3600, 0);
    static const uint32_t order[] = {5, 3, 9, 1, 5, 7, 3, 3, 2, 8, 1, 5, 5, 6};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        assert_int_equal(rc_covisit_add_directed(&cv, 0, order[i], 1.0f + (float)i / 10, 0, 0), 0);
        assert_strongest_first(&cv, 0);
    }
    const rc_neighbor_t *nb = rc_covisit_neighbors(&cv, 0, &n);
    assert_int_equal(n, 8);
    assert_int_equal(nb[0].item, 5); /* added four times */
    assert_int_equal(nb[1].item, 3); /* three times */
    float weakest = nb[7].w;
    uint32_t weakest_item = nb[7].item;
    /* Too weak to enter: nothing changes. */
    assert_int_equal(rc_covisit_add_directed(&cv, 0, 40, weakest * 0.4f, 0, 0), 0);
    assert_float_equal(weight_of(&cv, 0, 40), 0, 0);
    /* Strong enough: takes the weakest place, and its rank. */
    assert_int_equal(rc_covisit_add_directed(&cv, 0, 41, weakest * 3, 0, 0), 0);
    assert_float_equal(weight_of(&cv, 0, weakest_item), 0, 0);
    assert_float_equal(weight_of(&cv, 0, 41), weakest * 3, 1e-6);
    assert_strongest_first(&cv, 0);
    rc_covisit_free(&cv);
}

/* Pairs of rising weight against one item: the list stays at max_neighbors and keeps the
 * strongest. */
static void test_covisit_bounded_keeps_strongest(void **state)
{
    (void)state;
    rc_covisit_t cv;
    uint32_t n;
    rc_covisit_init(&cv, 4, 3600, 0);
    for (uint32_t b = 1; b <= 20; b++) {
        assert_int_equal(rc_covisit_add(&cv, 0, b, (float)b, 0), 0);
        rc_covisit_neighbors(&cv, 0, &n);
        assert_int_le(n, 4);
    }
    const rc_neighbor_t *nb = rc_covisit_neighbors(&cv, 0, &n);
    assert_int_equal(n, 4);
    for (uint32_t j = 0; j < n; j++)
        assert_int_ge(nb[j].item, 17);
    /* The other side of each pair has its own list of one. */
    rc_covisit_neighbors(&cv, 20, &n);
    assert_int_equal(n, 1);
    rc_covisit_free(&cv);
}

/* An established neighbour is not pushed out by one weak stray pair. */
static void test_covisit_weak_newcomer_does_not_evict(void **state)
{
    (void)state;
    rc_covisit_t cv;
    uint32_t n;
    rc_covisit_init(&cv, 4, 3600, 0);
    for (uint32_t b = 1; b <= 4; b++)
        assert_int_equal(rc_covisit_add(&cv, 0, b, 10, 0), 0);
    assert_int_equal(rc_covisit_add(&cv, 0, 5, 1, 0), 0);
    rc_covisit_neighbors(&cv, 0, &n);
    assert_int_equal(n, 4);
    for (uint32_t b = 1; b <= 4; b++)
        assert_float_equal(weight_of(&cv, 0, b), 10, 1e-6);
    assert_float_equal(weight_of(&cv, 0, 5), 0, 0);
    rc_covisit_free(&cv);
}

static void test_covisit_stronger_outranks_weaker(void **state)
{
    (void)state;
    rc_covisit_t cv;
    rc_covisit_init(&cv, 32, 3600, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rc_covisit_add(&cv, 10, 11, 1, 0), 0);
    assert_int_equal(rc_covisit_add(&cv, 10, 12, 1, 0), 0);
    assert_int_equal(rc_covisit_add(&cv, 10, 13, 2, 0), 0);
    assert_dbl_gt(weight_of(&cv, 10, 11), weight_of(&cv, 10, 13));
    assert_dbl_gt(weight_of(&cv, 10, 13), weight_of(&cv, 10, 12));
    assert_dbl_gt(weight_of(&cv, 11, 10), weight_of(&cv, 12, 10));
    rc_covisit_free(&cv);
}

/* Equal weights added one half-life apart: the older one counts half. Across the rescale
 * (after ~40 half-lives) the ratio must hold just the same. */
static void test_covisit_decay(void **state)
{
    (void)state;
    const double hl = 3600;
    rc_covisit_t cv;
    rc_covisit_init(&cv, 32, hl, 1000);
    assert_int_equal(rc_covisit_add(&cv, 0, 1, 1, 1000), 0);
    assert_int_equal(rc_covisit_add(&cv, 0, 2, 1, 1000 + hl), 0);
    assert_float_equal(weight_of(&cv, 0, 2) / weight_of(&cv, 0, 1), 2.0, 1e-4);
    assert_float_equal(weight_of(&cv, 1, 0) / weight_of(&cv, 2, 0), 0.5, 1e-4);

    /* A pair seen long ago weighs less than one seen now, even with more weight then. */
    assert_int_equal(rc_covisit_add(&cv, 0, 3, 3, 1000), 0);
    assert_int_equal(rc_covisit_add(&cv, 0, 4, 1, 1000 + 2 * hl), 0);
    assert_dbl_gt(weight_of(&cv, 0, 4), weight_of(&cv, 0, 3));

    assert_int_equal(rc_covisit_add(&cv, 5, 6, 1, 1000 + 39 * hl), 0);
    assert_int_equal(rc_covisit_add(&cv, 5, 7, 1, 1000 + 41 * hl), 0);
    float older = weight_of(&cv, 5, 6), newer = weight_of(&cv, 5, 7);
    assert_true(isfinite(older) && isfinite(newer));
    assert_float_equal(older / newer, 0.25, 1e-4);
    /* Weights from before the rescale stay comparable with each other. */
    assert_float_equal(weight_of(&cv, 0, 2) / weight_of(&cv, 0, 1), 2.0, 1e-4);

    /* Far in the future, weights stay finite and the newest pair leads. */
    assert_int_equal(rc_covisit_add(&cv, 5, 8, 1, 1000 + 500 * hl), 0);
    assert_true(isfinite(weight_of(&cv, 5, 8)));
    assert_dbl_gt(weight_of(&cv, 5, 8), weight_of(&cv, 5, 7));
    rc_covisit_free(&cv);
}

/* rc_covisit_init() accepts up to UINT16_MAX neighbours per item; a list must be able to
 * grow past 32768 entries when asked to (its capacity doubling must not wrap to 0). */
static void test_covisit_large_max_neighbors(void **state)
{
    (void)state;
    enum { LIMIT = 32800 };
    rc_covisit_t cv;
    uint32_t n;
    rc_covisit_init(&cv, LIMIT, 3600, 0);
    for (uint32_t b = 1; b <= 32769; b++) {
        int rc = rc_covisit_add(&cv, 0, b, 1, 0);
        if (rc != 0) {
            print_error("rc_covisit_add of neighbour #%u: %s\n", b, rc_strerror(rc));
            fail();
        }
    }
    rc_covisit_neighbors(&cv, 0, &n);
    assert_int_equal(n, 32769);
    assert_float_equal(weight_of(&cv, 0, 32769), 1, 1e-6);
    rc_covisit_free(&cv);
}

/* ---------------------------------------------------------------------------------------
 * Trending and dayparts
 */

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
    assert_int_equal(rc_trending_add(&t, 3, RC_DEV_OTHER, 0, -1, 5, now), 0);
    assert_int_equal(rc_trending_add(&t, 7, RC_DEV_OTHER, 0, -1, 3, now), 0);
    assert_int_equal(rc_trending_add(&t, 1, RC_DEV_OTHER, 0, -1, 1, now), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    const uint32_t warm[] = {3, 7, 1, 9, 8, 6, 5, 4, 2, 0};
    assert_top(&t, RC_SEG_ALL, warm, 10);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 3), 1, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 7), 0.6, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 9), 0, 0);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 5000), 0, 0);

    /* A new leader between refreshes is normalised to 1, not above. */
    assert_int_equal(rc_trending_add(&t, 7, RC_DEV_OTHER, 0, -1, 7, now), 0);
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
    assert_int_equal(rc_trending_add(&t, 2, RC_DEV_MOBILE, 1, -1, 10, now), 0);
    assert_int_equal(rc_trending_add(&t, 4, RC_DEV_DESKTOP, 1, -1, 5, now), 0);
    assert_int_equal(rc_trending_add(&t, 6, RC_DEV_DESKTOP, 3, -1, 1, now), 0);
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

/* Locale tags get a segment each, in canonical case, up to RC_LOCALES; malformed tags and
 * those past the limit get none. Each locale's top list holds its own activity. */
static void test_trending_locales(void **state)
{
    (void)state;
    rc_catalog_t c;
    rc_trending_t t;
    const double now = T0_MS / 1000.0;
    small_catalog(&c);
    rc_trending_init(&t, 3600, now);
    assert_int_equal(rc_trending_locale(&t, "EN_gb", 5), 0);
    assert_string_equal(t.locales[0], "en-GB");
    assert_int_equal(rc_trending_locale(&t, "en-GB", 5), 0);
    assert_int_equal(rc_trending_locale(&t, "zh-hant-tw", 10), 1);
    assert_string_equal(t.locales[1], "zh-Hant-TW");
    static const char *const bad[] = {"",        "en--GB",           "-en", "en-", "e n",
                                      "en-GB\n", "abcdefghijklmnopq"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rc_trending_locale(&t, bad[i], strlen(bad[i])), -1);
    assert_int_equal(rc_trending_add(&t, 2, RC_DEV_OTHER, 0, 0, 10, now), 0);
    assert_int_equal(rc_trending_add(&t, 4, RC_DEV_OTHER, 0, 1, 5, now), 0);
    /* A locale met after activity started counts from then on. */
    assert_int_equal(rc_trending_locale(&t, "de", 2), 2);
    assert_int_equal(rc_trending_add(&t, 6, RC_DEV_OTHER, 0, 2, 1, now), 0);
    char tag[8];
    for (int i = 3; i < RC_LOCALES; i++) {
        snprintf(tag, sizeof(tag), "x%d", i);
        assert_int_equal(rc_trending_locale(&t, tag, strlen(tag)), i);
    }
    assert_int_equal(rc_trending_locale(&t, "fr-FR", 5), -1);
    assert_int_equal(t.n_segments, RC_SEGMENTS);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);

    const uint32_t all[] = {2, 4, 6, 9};
    assert_top(&t, RC_SEG_ALL, all, 4);
    const uint32_t gb[] = {2, 9, 8}, tw[] = {4, 9, 8}, de[] = {6, 9, 8}, x3[] = {9, 8};
    assert_top(&t, RC_SEG_LOCALE(0), gb, 3);
    assert_top(&t, RC_SEG_LOCALE(1), tw, 3);
    assert_top(&t, RC_SEG_LOCALE(2), de, 3);
    assert_top(&t, RC_SEG_LOCALE(3), x3, 2);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_LOCALE(0), 2), 1, 1e-6);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_LOCALE(0), 4), 0, 0);
    rc_trending_free(&t);
    rc_catalog_free(&c);
}

static void test_trending_decay(void **state)
{
    (void)state;
    const double hl = 3600, now = T0_MS / 1000.0;
    rc_catalog_t c;
    rc_trending_t t;
    small_catalog(&c);
    rc_trending_init(&t, hl, now);
    assert_int_equal(rc_trending_add(&t, 5, RC_DEV_OTHER, 0, -1, 1, now), 0);
    assert_int_equal(rc_trending_add(&t, 0, RC_DEV_OTHER, 0, -1, 1, now + hl), 0);
    assert_int_equal(rc_trending_refresh(&t, &c), 0);
    const uint32_t order[] = {0, 5, 9};
    assert_top(&t, RC_SEG_ALL, order, 3);
    assert_float_equal(rc_trending_norm(&t, RC_SEG_ALL, 5), 0.5, 1e-4);

    /* Across the rescale after ~40 half-lives. */
    assert_int_equal(rc_trending_add(&t, 1, RC_DEV_OTHER, 0, -1, 1, now + 39 * hl), 0);
    assert_int_equal(rc_trending_add(&t, 2, RC_DEV_OTHER, 0, -1, 1, now + 41 * hl), 0);
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
    assert_int_equal(rc_trending_add(&t, 0, RC_DEV_OTHER, 0, -1, 4, now), 0);
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
        assert_int_equal(rc_trending_add(&t, i, RC_DEV_OTHER, 0, -1, w, now), 0);
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
        assert_int_equal(rc_trending_add(&whole, i, (int)(i % 3), (int)(i % 4), -1, w, now), 0);
        assert_int_equal(rc_trending_add(&steps, i, (int)(i % 3), (int)(i % 4), -1, w, now), 0);
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
    assert_int_equal(rc_trending_add(&steps, 3, RC_DEV_OTHER, 0, -1, 5000.0f, now), 0);
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

/* ---------------------------------------------------------------------------------------
 * Engine: learning and ranking
 */

/* The engines of the ranking tests live here, not on a test's stack, so the teardown frees
 * them even when an assertion ends the test early (the sanitizer build reports only the
 * failure, not a leak behind it). rc_engine_free() leaves a zeroed engine: freeing twice
 * is harmless. */
static rc_engine_t engines[2];

static int free_engines(void **state)
{
    (void)state;
    rc_engine_free(&engines[0]);
    rc_engine_free(&engines[1]);
    return 0;
}

#define N_ITEMS 200
#define N_CATS  8

/* 200 items in 8 categories (item i in "cat<i % 8>"), named "Item <i>", tagged
 * "color<i % 7>" and "size<i % 3>", priced 1 + i % 50, popularity 1000 - i: the most
 * popular items are the lowest indexes and they alternate categories. */
static void engine_with_items(rc_engine_t *e, bool open)
{
    char id[16], name[32], cat[16], color[16], size[16];
    const char *tags[] = {color, size};
    assert_int_equal(rc_engine_init(e, 100000, open, 32, 86400, 3600, T0_MS / 1000.0), 0);
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

static rc_str_t no_query(void)
{
    return (rc_str_t){"", 0};
}

static void observe(rc_engine_t *e, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                    int64_t wall_ms)
{
    rc_engine_observe(e, u, kind, item, rc_event_weight(kind, false, 0), no_query(), wall_ms);
}

static uint32_t rank_k(rc_engine_t *e, const rc_user_state_t *u, uint32_t k, int32_t category,
                       double price_min, double price_max, rc_ranked_t *out)
{
    rc_rank_spec_t spec = {
        .k = k, .category = category, .price_min = price_min, .price_max = price_max};
    uint32_t n = rc_engine_rank(e, u, &spec, T0_MS, out);
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

static uint32_t count_category(const rc_engine_t *e, const rc_ranked_t *out, uint32_t n,
                               uint16_t category)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++)
        count += e->catalog.items[out[i].item].category == category;
    return count;
}

static int32_t place_of(const rc_ranked_t *out, uint32_t n, uint32_t item)
{
    for (uint32_t i = 0; i < n; i++)
        if (out[i].item == item)
            return (int32_t)i;
    return -1;
}

static uint16_t category_of(const rc_engine_t *e, const char *name)
{
    int32_t c = rc_catalog_category(&e->catalog, name, strlen(name));
    assert_int_gt(c, 0);
    return (uint16_t)c;
}

static void test_event_weights(void **state)
{
    (void)state;
    assert_float_equal(rc_event_weight(RC_EV_VIEW, false, 0), 1, 0);
    assert_float_equal(rc_event_weight(RC_EV_CLICK, false, 0), 2, 0);
    assert_float_equal(rc_event_weight(RC_EV_CART, false, 0), 4, 0);
    assert_float_equal(rc_event_weight(RC_EV_PURCHASE, false, 0), 6, 0);
    assert_dbl_gt(rc_event_weight(RC_EV_RATING, true, 5), 0);
    assert_float_equal(rc_event_weight(RC_EV_RATING, true, 3), 0, 1e-6);
    assert_dbl_lt(rc_event_weight(RC_EV_RATING, true, 1), 0);
    assert_float_equal(rc_event_weight(RC_EV_RATING, false, 0), 0, 0);
    assert_float_equal(rc_event_weight(RC_EV_DWELL, true, 10000), 1, 1e-6);
    assert_float_equal(rc_event_weight(RC_EV_DWELL, true, 600000), 3, 1e-6);
    assert_float_equal(rc_event_weight(RC_EV_IMPRESSION, false, 0), 0, 0);
    assert_float_equal(rc_event_weight(RC_EV_DISMISS, false, 0), 0, 0);
}

static void test_observe_return_values(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_MOBILE, 60);
    assert_int_equal(u.device, RC_DEV_MOBILE);
    assert_int_equal(u.tz_offset_min, 60);

    assert_false(rc_engine_observe(e, &u, RC_EV_IMPRESSION, 3, 0, no_query(), T0_MS));
    assert_int_equal(u.events, 0);
    assert_true(rc_engine_observe(e, &u, RC_EV_VIEW, 3, 1, no_query(), T0_MS));
    assert_int_equal(u.n_recent, 1);
    assert_true(rc_engine_observe(e, &u, RC_EV_DISMISS, 4, 0, no_query(), T0_MS));
    assert_true(rc_user_is_excluded(&u, 4));
    assert_true(rc_engine_observe(e, &u, RC_EV_SEARCH, -1, 2, (rc_str_t){"red mug", 7}, T0_MS));
    assert_true(rc_engine_observe(e, &u, RC_EV_PURCHASE, 5, 6, no_query(), T0_MS));
    assert_true(rc_user_is_excluded(&u, 5));
    assert_int_equal(u.events, 4);
    /* Events of users held elsewhere feed the global models only. */
    assert_false(rc_engine_observe(e, NULL, RC_EV_VIEW, 6, 1, no_query(), T0_MS));
    assert_dbl_gt(rc_trending_norm(&e->trending, RC_SEG_ALL, 6), 0);

    /* An unknown device falls back to "other". */
    rc_user_state_init(&u, 99, 0);
    assert_int_equal(u.device, RC_DEV_OTHER);
    rc_user_state_init(&u, -1, 0);
    assert_int_equal(u.device, RC_DEV_OTHER);
    rc_engine_free(e);
    rc_engine_free(NULL);
}

static void test_rank_cold_user_by_popularity(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[10];
    char why[128];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(out[i].item, i); /* popularity 1000 - i */
        assert_int_equal(out[i].src, RC_SRC_POPULAR);
        assert_int_equal(out[i].ref, -1);
    }
    assert_string_equal(rc_src_name(out[0].src), "popular");
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Popular in cat0");

    /* k = 0 asks for nothing. */
    rc_rank_spec_t none = {.k = 0, .category = -1, .price_min = -1, .price_max = -1};
    assert_int_equal(rc_engine_rank(e, &u, &none, T0_MS, out), 0);
    rc_engine_free(e);
}

static void test_rank_category_share_rises(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[10];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    uint16_t cat3 = category_of(e, "cat3");

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    uint32_t before = count_category(e, out, n, cat3);

    const uint32_t clicked[] = {3, 11, 19, 27, 35};
    for (int i = 0; i < 5; i++)
        observe(e, &u, RC_EV_CLICK, clicked[i], T0_MS + i * 1000);
    assert_int_equal(rc_engine_refresh(e), 0);

    n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    uint32_t after = count_category(e, out, n, cat3);
    assert_int_gt(after, before);
    assert_int_ge(after, 4);
    assert_int_le(after, 6); /* the diversity cap still holds */
    /* What the user just clicked is not offered back. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(place_of(out, n, clicked[i]), -1);
    rc_engine_free(e);
}

/* A search moves the session towards items tagged with the query's words. */
static void test_rank_search_moves_towards_tags(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[10];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    assert_true(rc_engine_observe(e, &u, RC_EV_SEARCH, -1, 2, (rc_str_t){"Color5!", 7}, T0_MS));
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    uint32_t tagged = 0;
    for (uint32_t i = 0; i < n; i++)
        tagged += out[i].item % 7 == 5;
    assert_int_ge(tagged, 6);
    assert_int_equal(out[0].item % 7, 5);
    assert_int_equal(out[0].src, RC_SRC_CONTENT);
    rc_engine_free(e);
}

/* Other users viewed 150 then 181 (three of them) or 150 then 190 (one); a new user who
 * views 150 is offered both, 181 first, explained by 150. */
static void test_rank_covisit_from_other_users(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t others[4], u;
    rc_ranked_t out[10];
    char why[128];
    engine_with_items(e, false);
    for (int i = 0; i < 4; i++) {
        rc_user_state_init(&others[i], RC_DEV_MOBILE, 0);
        observe(e, &others[i], RC_EV_VIEW, 150, T0_MS - 60000 + i);
        observe(e, &others[i], RC_EV_VIEW, i < 3 ? 181 : 190, T0_MS - 50000 + i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 150, T0_MS);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p181 = place_of(out, n, 181), p190 = place_of(out, n, 190);
    assert_int_ge(p181, 0);
    assert_int_ge(p190, 0);
    assert_int_lt(p181, p190);
    assert_int_equal(place_of(out, n, 150), -1);

    const rc_ranked_t *r = &out[p181];
    assert_int_equal(r->src, RC_SRC_COVISIT);
    assert_int_equal(r->ref, 150);
    assert_string_equal(rc_src_name(r->src), "covisit");
    rc_engine_why(e, &u, r, why, sizeof(why));
    assert_string_equal(why, "Viewed together with Item 150");
    rc_engine_free(e);
}

/* Shoppers in de-DE made item 150 trend, those in en-GB item 160 a little more. A cold
 * user in de-DE gets 150 first, with the reason naming the locale; one in en-GB, and one
 * with no locale, get 160 first. */
static void test_rank_trending_by_locale(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t shopper, u;
    rc_ranked_t out[10];
    char why[128];
    engine_with_items(e, false);
    int de = rc_engine_locale(e, (rc_str_t){"de-DE", 5});
    int gb = rc_engine_locale(e, (rc_str_t){"en-GB", 5});
    assert_int_ge(de, 0);
    assert_int_ge(gb, 0);
    assert_int_equal(rc_engine_locale(e, (rc_str_t){"de_de", 5}), de);
    assert_int_equal(rc_engine_locale(e, (rc_str_t){"", 0}), -1);
    for (int i = 0; i < 12; i++) {
        rc_user_state_init(&shopper, RC_DEV_DESKTOP, 0);
        shopper.locale = (int8_t)(i < 5 ? de : gb);
        observe(e, &shopper, RC_EV_VIEW, i < 5 ? 150 : 160, T0_MS - 1000 + i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    assert_int_equal(u.locale, -1);
    u.locale = (int8_t)de;
    assert_int_equal(rank_k(e, &u, 10, -1, -1, -1, out), 10);
    assert_int_equal(out[0].item, 150);
    assert_int_equal(out[0].src, RC_SRC_TRENDING);
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Trending in de-DE");
    assert_int_equal(place_of(out, 10, 160), 1);

    u.locale = (int8_t)gb;
    rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(out[0].item, 160);
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Trending in en-GB");
    u.locale = -1;
    rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(out[0].item, 160);
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Trending on desktop");
    rc_engine_free(e);
}

/* Others went 150 -> 181 and 160 -> 190 equally often. A user who viewed 160 and then 150
 * gets 181 (what follows the newest item) above 190 (what follows an older one): recent
 * sources weigh more (source_decay). And what followed an item predicts better than what
 * preceded it: others went 170 -> 185 (185 follows 170) and 178 -> 170 (178 precedes 170)
 * equally often, so after 170, 185 ranks above 178 (backward_weight < 1), although 178 is
 * more popular and shares 170's category. */
static void test_rank_newest_source_and_direction(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t o, u;
    rc_ranked_t out[10];
    engine_with_items(e, false);
    for (int i = 0; i < 3; i++) {
        const int64_t pairs[4][2] = {{150, 181}, {160, 190}, {170, 185}, {178, 170}};
        for (int p = 0; p < 4; p++) {
            rc_user_state_init(&o, RC_DEV_MOBILE, 0);
            observe(e, &o, RC_EV_VIEW, pairs[p][0], T0_MS - 60000);
            observe(e, &o, RC_EV_VIEW, pairs[p][1], T0_MS - 50000);
        }
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 160, T0_MS);
    observe(e, &u, RC_EV_VIEW, 150, T0_MS + 1000);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p181 = place_of(out, n, 181), p190 = place_of(out, n, 190);
    assert_int_ge(p181, 0);
    assert_int_ge(p190, 0);
    assert_int_lt(p181, p190);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 170, T0_MS);
    n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p185 = place_of(out, n, 185), p178 = place_of(out, n, 178);
    assert_int_ge(p185, 0);
    assert_int_ge(p178, 0);
    assert_int_lt(p185, p178);
    rc_engine_free(e);
}

/* Other users made 150 an equally strong neighbour of 100 and of 101. A user who viewed
 * 101 and then 100 gets 150 mostly through 100 (the more recent source, equal neighbour
 * weight), so 100 is the item that explains it (ranker.c: the reason names "the source
 * that contributed most"). */
static void test_rank_covisit_ref_is_strongest_source(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t other, u;
    rc_ranked_t out[10];
    char why[128];
    engine_with_items(e, false);
    for (int i = 0; i < 6; i++) {
        rc_user_state_init(&other, RC_DEV_OTHER, 0);
        observe(e, &other, RC_EV_VIEW, i % 2 ? 100 : 101, T0_MS - 60000 + i);
        observe(e, &other, RC_EV_VIEW, 150, T0_MS - 50000 + i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    observe(e, &u, RC_EV_VIEW, 101, T0_MS);
    observe(e, &u, RC_EV_VIEW, 100, T0_MS + 1000);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p = place_of(out, n, 150);
    rc_ranked_t r = p >= 0 ? out[p] : (rc_ranked_t){0, 0, RC_SRC_COUNT, -1};
    if (p >= 0)
        rc_engine_why(e, &u, &r, why, sizeof(why));
    /* Freed before the checks, so a failure here reports only itself under LSan. */
    rc_engine_free(e);
    assert_int_ge(p, 0);
    assert_int_equal(r.src, RC_SRC_COVISIT);
    assert_int_equal(r.ref, 100);
    assert_string_equal(why, "Viewed together with Item 100");
}

static void test_rank_excluded_never_appear(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[100];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);

    /* Dismissing the most popular item: the cold list moves up by one. */
    observe(e, &u, RC_EV_DISMISS, 0, T0_MS);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(out[i].item, i + 1);

    /* A purchase, then enough other views that it is no longer among the recent items:
     * it must stay out all the same, as must the dismissed one, at any k. */
    observe(e, &u, RC_EV_PURCHASE, 1, T0_MS + 1000);
    for (int i = 0; i < 40; i++)
        observe(e, &u, RC_EV_VIEW, 100 + i, T0_MS + 2000 + i);
    assert_int_equal(rc_engine_refresh(e), 0);
    assert_true(rc_user_is_excluded(&u, 0));
    assert_true(rc_user_is_excluded(&u, 1));
    for (uint32_t k = 1; k <= 100; k += 33) {
        n = rank_k(e, &u, k, -1, -1, -1, out);
        assert_int_gt(n, 0);
        assert_int_equal(place_of(out, n, 0), -1);
        assert_int_equal(place_of(out, n, 1), -1);
    }
    /* The purchase made item 1 trending: another user does get it. */
    rc_user_state_t other;
    rc_user_state_init(&other, RC_DEV_OTHER, 0);
    n = rank_k(e, &other, 100, -1, -1, -1, out);
    assert_int_ge(place_of(out, n, 1), 0);
    rc_engine_free(e);
}

static void test_rank_category_filter(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[20];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    uint16_t cat5 = category_of(e, "cat5");

    uint32_t n = rank_k(e, &u, 20, cat5, -1, -1, out);
    assert_int_equal(n, 20);
    assert_int_equal(count_category(e, out, n, cat5), n);
    assert_int_equal(out[0].item, 5); /* the most popular of cat5 */

    /* With a history in another category, the filter still holds. */
    observe(e, &u, RC_EV_CLICK, 2, T0_MS);
    observe(e, &u, RC_EV_CLICK, 10, T0_MS + 1);
    n = rank_k(e, &u, 10, cat5, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, cat5), n);
    rc_engine_free(e);
}

static void test_rank_price_filter(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[20];
    uint32_t idx;
    engine_with_items(e, false);
    /* Very popular items with no known price. */
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "np1", "No Price 1", "cat1", NULL, 0, -1, 5000, &idx), 0);
    uint32_t np1 = idx;
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "np2", "No Price 2", "cat2", NULL, 0, -1, 4000, &idx), 0);
    uint32_t np2 = idx;
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(out[0].item, np1);
    assert_int_equal(out[1].item, np2);

    n = rank_k(e, &u, 10, -1, 10, 20, out);
    assert_int_equal(n, 10);
    for (uint32_t i = 0; i < n; i++) {
        float p = e->catalog.items[out[i].item].price;
        assert_dbl_ge(p, 10);
        assert_dbl_le(p, 20);
    }
    n = rank_k(e, &u, 10, -1, 45, -1, out);
    assert_int_gt(n, 0);
    for (uint32_t i = 0; i < n; i++)
        assert_dbl_ge(e->catalog.items[out[i].item].price, 45);
    n = rank_k(e, &u, 10, -1, -1, 3, out);
    assert_int_gt(n, 0);
    for (uint32_t i = 0; i < n; i++) {
        assert_dbl_le(e->catalog.items[out[i].item].price, 3);
        assert_dbl_ge(e->catalog.items[out[i].item].price, 0);
    }
    /* Category and price together. */
    uint16_t cat4 = category_of(e, "cat4");
    n = rank_k(e, &u, 10, cat4, 5, 30, out);
    assert_int_gt(n, 0);
    for (uint32_t i = 0; i < n; i++) {
        const rc_item_t *it = &e->catalog.items[out[i].item];
        assert_int_equal(it->category, cat4);
        assert_dbl_ge(it->price, 5);
        assert_dbl_le(it->price, 30);
    }
    /* An empty price range gives an empty list, not a wrong one. */
    n = rank_k(e, &u, 10, -1, 30, 20, out);
    assert_int_equal(n, 0);
    rc_engine_free(e);
}

/* "big" holds the 20 most popular items; a cold list of 10 still shows at most 6 of them
 * while other categories have candidates, and all 10 when only "big" is asked for. */
static void test_rank_diversity_cap(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[10];
    char id[16];
    assert_int_equal(rc_engine_init(e, 1000, false, 32, 86400, 3600, T0_MS / 1000.0), 0);
    for (int i = 0; i < 40; i++) {
        uint32_t idx;
        const char *cat = i < 20 ? "big" : i < 30 ? "small1" : "small2";
        double pop = i < 20 ? 1000 - i : i < 30 ? 500 - i : 400 - i;
        snprintf(id, sizeof(id), "d%d", i);
        assert_int_equal(rc_catalog_upsert(&e->catalog, id, id, cat, NULL, 0, 1, pop, &idx), 0);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    uint16_t big = category_of(e, "big");

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, big), 6);
    for (uint32_t i = 0; i < n; i++)
        assert_true(out[i].item < 6 || (out[i].item >= 20 && out[i].item < 24));

    n = rank_k(e, &u, 5, -1, -1, -1, out);
    assert_int_equal(n, 5);
    assert_int_equal(count_category(e, out, n, big), 3);
    n = rank_k(e, &u, 3, -1, -1, -1, out);
    assert_int_equal(n, 3);
    assert_int_equal(count_category(e, out, n, big), 2);

    n = rank_k(e, &u, 10, big, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, big), 10);
    rc_engine_free(e);
}

/* Drives one engine through a fixed history of several users. */
static void scripted_history(rc_engine_t *e, rc_user_state_t *users, int n_users)
{
    for (int i = 0; i < n_users; i++)
        rc_user_state_init(&users[i], i % RC_DEVICE_COUNT, (i % 5) * 60 - 120);
    for (int step = 0; step < 300; step++) {
        rc_user_state_t *u = &users[step % n_users];
        uint32_t item = (uint32_t)((step * 37 + (step % n_users) * 11) % N_ITEMS);
        rc_event_kind_t kind = step % 11 == 0 ? RC_EV_CART : step % 3 ? RC_EV_VIEW : RC_EV_CLICK;
        observe(e, u, kind, item, T0_MS + step * 1000);
        if (step % 50 == 49)
            assert_int_equal(rc_engine_refresh(e), 0);
    }
}

static void test_rank_no_duplicates(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t users[6], cold;
    rc_ranked_t out[100];
    engine_with_items(e, false);
    scripted_history(e, users, 6);
    rc_user_state_init(&cold, RC_DEV_TABLET, 0);
    for (int i = 0; i < 6; i++) {
        for (uint32_t k = 1; k <= 100; k += 9)
            rank_k(e, &users[i], k, -1, -1, -1, out); /* rank_k checks for duplicates */
        rank_k(e, &users[i], 100, category_of(e, "cat2"), -1, -1, out);
    }
    uint32_t n = rank_k(e, &cold, 100, -1, -1, -1, out);
    assert_int_gt(n, 10);
    rc_engine_free(e);
}

static void assert_same_ranking(const rc_ranked_t *a, uint32_t na, const rc_ranked_t *b,
                                uint32_t nb)
{
    assert_int_equal(na, nb);
    for (uint32_t i = 0; i < na; i++) {
        assert_int_equal(a[i].item, b[i].item);
        assert_float_equal(a[i].score, b[i].score, 0);
        assert_int_equal(a[i].src, b[i].src);
        assert_int_equal(a[i].ref, b[i].ref);
    }
}

/* The same state ranks the same, whether ranked again, after other users' ranks reused
 * the scratch, or in a second engine that saw the same events. */
static void test_rank_deterministic(void **state)
{
    (void)state;
    rc_engine_t *e1 = &engines[0], *e2 = &engines[1];
    rc_user_state_t u1[5], u2[5];
    rc_ranked_t a[30], b[30], c[30], d[30];
    engine_with_items(e1, false);
    engine_with_items(e2, false);
    scripted_history(e1, u1, 5);
    scripted_history(e2, u2, 5);

    for (int i = 0; i < 5; i++) {
        uint32_t na = rank_k(e1, &u1[i], 30, -1, -1, -1, a);
        uint32_t nb = rank_k(e1, &u1[i], 30, -1, -1, -1, b);
        assert_same_ranking(a, na, b, nb);
        rank_k(e1, &u1[(i + 1) % 5], 30, -1, -1, -1, c);
        rank_k(e1, &u1[(i + 2) % 5], 7, category_of(e1, "cat1"), 2, 40, c);
        uint32_t nc = rank_k(e1, &u1[i], 30, -1, -1, -1, c);
        assert_same_ranking(a, na, c, nc);
        uint32_t nd = rank_k(e2, &u2[i], 30, -1, -1, -1, d);
        assert_same_ranking(a, na, d, nd);
    }
    rc_engine_free(e1);
    rc_engine_free(e2);
}

/* Ranks every user with every list length, filter and blend, once scoring every candidate
 * and once scoring only those whose bound can reach the best 4k; the lists must be the
 * same. Returns how many of the bounded ranks left candidates unscored. */
static uint32_t compare_bounded(rc_engine_t *e, rc_user_state_t *users, int n_users)
{
    static const uint32_t ks[] = {1, 3, 5, 10, 20, 40};
    static const rc_blend_t blends[] = {
        {.covisit = 0.25f, .content = 0.25f, .trending = 0.25f, .popular = 0.25f},
        {.covisit = 0.3f, .content = 0.6f, .popular = 0.1f},
        {.covisit = 0.4f, .trending = 0.1f, .popular = 0.5f}};
    rc_ranked_t a[40], b[40];
    uint32_t bounded = 0;
    for (int i = 0; i < n_users; i++) {
        for (size_t j = 0; j < sizeof(ks) / sizeof(ks[0]); j++) {
            for (int f = 0; f < 12; f++) {
                rc_rank_spec_t spec = {.k = ks[j],
                                       .category = f % 3 == 1 ? category_of(e, "cat3") : -1,
                                       .price_min = f % 3 == 2 ? 5 : -1,
                                       .price_max = f % 3 == 2 ? 30 : -1,
                                       .blend = f < 3 ? NULL : &blends[f / 3 - 1]};
                e->exhaustive = true;
                uint32_t na = rc_engine_rank(e, &users[i], &spec, T0_MS, a);
                e->exhaustive = false;
                uint32_t nb = rc_engine_rank(e, &users[i], &spec, T0_MS, b);
                bounded += e->n_deferred > 0;
                assert_same_ranking(a, na, b, nb);
            }
        }
    }
    return bounded;
}

/* The ranker leaves unscored the candidates whose score cannot reach the best 4k
 * (score_candidates); the lists must be those of scoring them all, with and without boosts
 * that lift and bury. */
static void test_rank_bound_exact(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    static const rc_event_kind_t kinds[] = {RC_EV_VIEW, RC_EV_VIEW, RC_EV_CLICK, RC_EV_CART};
    rc_user_state_t users[40];
    char err[160];
    engine_with_items(e, false);
    uint32_t seed = 7;
    for (int i = 0; i < 40; i++) {
        rc_user_state_init(&users[i], i % 4, 60 * (i % 5));
        for (int j = 0; j < 30; j++) {
            seed = seed * 1103515245u + 12345u;
            /* Each user keeps to a third of the catalog, so neighbours weigh unevenly. */
            uint32_t item = (uint32_t)(i % 3) * 60 + (seed >> 8) % 80;
            observe(e, &users[i], kinds[(seed >> 4) % 4], item % N_ITEMS,
                    T0_MS + (i * 30 + j) * MIN_MS);
        }
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    uint32_t bounded = compare_bounded(e, users, 40);

    json_t *j = json_loads("{\"boosts\":[{\"category\":\"cat5\",\"factor\":3},{\"item\":"
                           "\"i010\",\"factor\":9},{\"tag\":\"color2\",\"factor\":0.2}]}",
                           0, NULL);
    assert_int_equal(rc_rules_from_json(&e->rules, j, err, sizeof(err)), 0);
    json_decref(j);
    assert_int_equal(rc_engine_refresh(e), 0);
    bounded += compare_bounded(e, users, 40);
    /* The bound was used, not merely allowed. */
    assert_int_gt(bounded, 100);
    rc_engine_free(e);
}

/* The open catalog learns items from traffic after ranks already ran: the ranker must
 * follow the catalog's growth, and learned items (no features) rank without harm. */
static void test_rank_after_catalog_grows(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t walker, u;
    rc_ranked_t out[20];
    char id[32];
    engine_with_items(e, true);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    rank_k(e, &u, 20, -1, -1, -1, out);

    rc_user_state_init(&walker, RC_DEV_MOBILE, 0);
    int64_t last = -1;
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "learned-%d", i);
        int64_t idx = rc_catalog_resolve(&e->catalog, id, strlen(id));
        assert_int_ge(idx, N_ITEMS);
        if (i % 100 == 0)
            observe(e, &walker, RC_EV_VIEW, 7, T0_MS + i);
        observe(e, &walker, RC_EV_VIEW, idx, T0_MS + i);
        last = idx;
    }
    assert_int_equal(e->catalog.n, N_ITEMS + 3000);
    assert_true(e->catalog.items[last].flags & RC_ITEM_LEARNED);
    assert_int_equal(rc_engine_refresh(e), 0);

    /* A user on the item most co-visited with the newest learned ones. */
    observe(e, &u, RC_EV_VIEW, 7, T0_MS + 5000);
    uint32_t n = rank_k(e, &u, 20, -1, -1, -1, out);
    assert_int_equal(n, 20);
    uint32_t learned = 0;
    for (uint32_t i = 0; i < n; i++)
        learned += out[i].item >= N_ITEMS;
    assert_int_gt(learned, 0);
    rc_engine_free(e);
}

static void test_why_phrases(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    char why[128];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_MOBILE, 0);
    observe(e, &u, RC_EV_VIEW, 12, T0_MS);

    /* A trending item's reason names the segment that carried it. */
    rc_ranked_t r = {.item = 20, .score = 1, .src = RC_SRC_TRENDING, .ref = -1};
    static const struct {
        int seg;
        const char *why;
    } trending[] = {{RC_SEG_DEVICE(RC_DEV_MOBILE), "Trending on mobile"},
                    {RC_SEG_DEVICE(RC_DEV_OTHER), "Trending now"},
                    {RC_SEG_DAYPART(0), "Trending tonight"},
                    {RC_SEG_DAYPART(3), "Trending this evening"},
                    {RC_SEG_ALL, "Trending now"},
                    {RC_SEG_LOCALE(0), "Trending in pt-BR"},
                    {RC_SEG_LOCALE(1), "Trending now"}, /* no second locale */
                    {-1, "Trending now"}};
    assert_int_equal(rc_engine_locale(e, (rc_str_t){"pt_br", 5}), 0);
    for (size_t i = 0; i < sizeof(trending) / sizeof(trending[0]); i++) {
        r.ref = trending[i].seg;
        rc_engine_why(e, &u, &r, why, sizeof(why));
        assert_string_equal(why, trending[i].why);
    }
    /* 20 and 12 share cat4. */
    r.src = RC_SRC_CONTENT;
    rc_engine_why(e, &u, &r, why, sizeof(why));
    assert_string_equal(why, "Similar to Item 12");
    r.src = RC_SRC_COVISIT;
    r.ref = 12;
    rc_engine_why(e, &u, &r, why, sizeof(why));
    assert_string_equal(why, "Viewed together with Item 12");
    r.src = RC_SRC_POPULAR;
    r.ref = -1;
    rc_engine_why(e, &u, &r, why, sizeof(why));
    assert_string_equal(why, "Popular in cat4");
    /* A short buffer is truncated, never overrun. */
    char tiny[8];
    r.src = RC_SRC_COVISIT;
    r.ref = 12;
    rc_engine_why(e, &u, &r, tiny, sizeof(tiny));
    assert_string_equal(tiny, "Viewed ");
    assert_string_equal(rc_src_name(RC_SRC_CONTENT), "content");
    assert_string_equal(rc_src_name(RC_SRC_TRENDING), "trending");
    rc_engine_free(e);
}

/* Rules from JSON: what is accepted, what is refused, and the canonical form round-trips. */
static void test_rules_json(void **state)
{
    (void)state;
    rc_rules_t r = {0};
    char err[160];
    static const char *const bad[] = {
        "[]",
        "{\"boosts\":{}}",
        "{\"boosts\":[{\"category\":\"a\"}]}",
        "{\"boosts\":[{\"category\":\"a\",\"factor\":0}]}",
        "{\"boosts\":[{\"category\":\"a\",\"factor\":11}]}",
        "{\"boosts\":[{\"category\":\"a\",\"tag\":\"b\",\"factor\":2}]}",
        "{\"boosts\":[{\"item\":\"bad id\",\"factor\":2}]}",
        "{\"pins\":[{\"item\":\"i1\",\"position\":0}]}",
        "{\"pins\":[{\"item\":\"i1\",\"position\":1.5}]}",
        "{\"pins\":[{\"item\":\"i1\",\"position\":1},{\"item\":\"i2\",\"position\":1}]}",
        "{\"pins\":[{\"item\":\"i1\",\"position\":1,\"where\":\"x\"}]}",
        "{\"extra\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        if (rc_rules_from_json(&r, j, err, sizeof(err)) != RC_EINVAL) {
            print_error("accepted: %s\n", bad[i]);
            fail();
        }
        assert_int_equal(r.n_boosts + r.n_pins, 0);
        json_decref(j);
    }
    const char *good = "{\"boosts\":[{\"category\":\"cat3\",\"factor\":1.5},{\"item\":\"i007\","
                       "\"factor\":0.5},{\"tag\":\"color2\",\"factor\":2.0}],\"pins\":[{\"item\":"
                       "\"i150\",\"position\":1,\"surface\":\"home\"},{\"item\":\"i151\","
                       "\"position\":1,\"surface\":\"cart\"},{\"item\":\"i152\",\"position\":3}]}";
    json_t *j = json_loads(good, 0, NULL);
    assert_int_equal(rc_rules_from_json(&r, j, err, sizeof(err)), 0);
    json_decref(j);
    assert_int_equal(r.n_boosts, 3);
    assert_int_equal(r.n_pins, 3);
    char *text = rc_rules_to_json(&r);
    assert_string_equal(text, good);
    free(text);
    rc_rules_free(&r);
}

/* Boosts lift or bury what they match (a category, an item, a tag); pins put an item at its
 * place on its surface, but never one the user may not see; lists stay best first. */
static void test_rules_boosts_and_pins(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u;
    rc_ranked_t out[10];
    char why[64], err[160];
    engine_with_items(e, false);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    uint16_t cat7 = category_of(e, "cat7");
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_le(count_category(e, out, n, cat7), 2);
    assert_int_equal(out[0].item, 0);

    json_t *j = json_loads("{\"boosts\":[{\"category\":\"cat7\",\"factor\":10},{\"item\":"
                           "\"i000\",\"factor\":0.01}],\"pins\":[{\"item\":\"i150\","
                           "\"position\":2,\"surface\":\"home\"},{\"item\":\"i151\","
                           "\"position\":1}]}",
                           0, NULL);
    assert_int_equal(rc_rules_from_json(&e->rules, j, err, sizeof(err)), 0);
    json_decref(j);
    assert_int_equal(rc_engine_refresh(e), 0);

    /* cat7 fills what the diversity cap allows (6 of 10) and the pinned 151 is cat7 too;
     * i000, the most popular item, is buried. */
    rc_rank_spec_t home = {
        .k = 10, .category = -1, .price_min = -1, .price_max = -1, .surface = "home"};
    n = rc_engine_rank(e, &u, &home, T0_MS, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, cat7), 7);
    assert_int_equal(place_of(out, n, 0), -1);
    /* The pins: 151 everywhere at place 1, 150 at place 2 of "home" only. */
    assert_int_equal(out[0].item, 151);
    assert_int_equal(out[0].src, RC_SRC_PINNED);
    assert_int_equal(out[1].item, 150);
    rc_engine_why(e, &u, &out[1], why, sizeof(why));
    assert_string_equal(why, "Featured");
    assert_string_equal(rc_src_name(RC_SRC_PINNED), "pinned");
    for (uint32_t i = 1; i < n; i++)
        assert_dbl_ge(out[i - 1].score, out[i].score);
    rc_rank_spec_t other = home;
    other.surface = "cart";
    n = rc_engine_rank(e, &u, &other, T0_MS, out);
    assert_int_equal(out[0].item, 151);
    assert_int_equal(place_of(out, n, 150), -1);
    /* Never an item the user may not see, nor outside the subscription's filter. */
    rc_user_exclude(&u, 151);
    n = rc_engine_rank(e, &u, &home, T0_MS, out);
    assert_int_equal(place_of(out, n, 151), -1);
    assert_int_equal(out[1].item, 150);
    rc_rank_spec_t cat3 = home;
    cat3.category = category_of(e, "cat3");
    n = rc_engine_rank(e, &u, &cat3, T0_MS, out);
    assert_int_equal(place_of(out, n, 150), -1); /* 150 is in cat6 */
    /* A short list: the pin still takes its place, and K is respected. */
    rc_rank_spec_t two = home;
    two.k = 2;
    n = rc_engine_rank(e, &u, &two, T0_MS, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[1].item, 150);
    rc_engine_free(e);
}

/* An item upserted after the start, with no data yet, takes the last place of a list of 5
 * or more (the user's category first among new items), with the reason "New in ..."; never
 * in a shorter list; and not any more once users interacted with it. */
static void test_rank_explores_new_items(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t u, o;
    rc_ranked_t out[10];
    char why[64];
    uint32_t fresh_other, fresh_mine;
    engine_with_items(e, false); /* refreshed: these 200 items are established */
    const char *tags[] = {"color1"};
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "new-a", "New A", "cat5", tags, 1, 3, 0, &fresh_other), 0);
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "new-b", "New B", "cat2", tags, 1, 3, 0, &fresh_mine), 0);
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 2, T0_MS);  /* cat2 */
    observe(e, &u, RC_EV_VIEW, 10, T0_MS); /* cat2 */
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(out[9].item, fresh_mine);
    assert_int_equal(out[9].src, RC_SRC_EXPLORE);
    assert_string_equal(rc_src_name(out[9].src), "explore");
    rc_engine_why(e, &u, &out[9], why, sizeof(why));
    assert_string_equal(why, "New in cat2");
    assert_int_equal(place_of(out, 9, fresh_other), -1);

    n = rank_k(e, &u, 4, -1, -1, -1, out);
    assert_int_equal(place_of(out, n, fresh_mine), -1);
    assert_int_equal(place_of(out, n, fresh_other), -1);

    /* Others view it: it has data now, and leaves the pool at the next refresh. */
    rc_user_state_init(&o, RC_DEV_MOBILE, 0);
    observe(e, &o, RC_EV_VIEW, 50, T0_MS);
    observe(e, &o, RC_EV_VIEW, fresh_mine, T0_MS);
    assert_int_equal(rc_engine_refresh(e), 0);
    n = rank_k(e, &u, 10, -1, -1, -1, out);
    for (uint32_t i = 0; i < n; i++)
        if (out[i].item == fresh_mine)
            assert_int_not_equal(out[i].src, RC_SRC_EXPLORE);
    assert_int_equal(out[9].item, fresh_other);
    rc_engine_free(e);
}

/* ---------------------------------------------------------------------------------------
 * Experiments
 */

static void test_experiment_parse(void **state)
{
    (void)state;
    rc_experiment_t x;
    char err[128];
    rc_blend_t base = {0.8f, 0.1f, 0.07f, 0.03f};
    assert_int_equal(rc_experiment_parse(&x, "", &base, err, sizeof(err)), 0);
    assert_int_equal(x.n_variants, 1);
    assert_string_equal(rc_experiment_variant_name(&x, 0), "control");
    assert_float_equal(rc_experiment_blend(&x, 0)->covisit, 0.8, 1e-6);
    assert_int_equal(rc_experiment_assign(&x, "anyone", 6), 0);

    assert_int_equal(
        rc_experiment_parse(&x, "ab1:s2;control=0.8,0.1,0.07,0.03;content=0.2,0.7,0.07,0.03@3",
                            &base, err, sizeof(err)),
        0);
    assert_string_equal(x.name, "ab1");
    assert_string_equal(x.salt, "s2");
    assert_int_equal(x.n_variants, 2);
    assert_int_equal(x.total_share, 4);
    assert_string_equal(rc_experiment_variant_name(&x, 1), "content");
    assert_float_equal(rc_experiment_blend(&x, 1)->content, 0.7, 1e-6);

    const char *bad[] = {"ab1",
                         "ab1;control",
                         "ab1;control=1,2,3",
                         "ab1;control=1,0,0,0@0",
                         "ab1;control=1,0,0,0;control=0,1,0,0",
                         "ab1;control=0,0,0,0",
                         "ab 1;control=1,0,0,0",
                         "ab1;control=1,0,0,0x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (rc_experiment_parse(&x, bad[i], &base, err, sizeof(err)) != RC_EPARSE) {
            print_error("accepted '%s'\n", bad[i]);
            fail();
        }
        assert_contains(err, "experiment");
    }
}

/* The same user always lands in the same variant; users split by share (1:3 here, within a
 * few percent over 20,000 users); another salt reshuffles them. */
static void test_experiment_assignment(void **state)
{
    (void)state;
    rc_experiment_t x, y;
    char err[128], user[32];
    rc_blend_t base = {1, 0, 0, 0};
    assert_int_equal(rc_experiment_parse(&x, "ab;a=1,0,0,0;b=0,1,0,0@3", &base, err, sizeof(err)),
                     0);
    assert_int_equal(
        rc_experiment_parse(&y, "ab:other;a=1,0,0,0;b=0,1,0,0@3", &base, err, sizeof(err)), 0);
    uint32_t in_b = 0, moved = 0;
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(user, sizeof(user), "user-%d", i);
        uint32_t v = rc_experiment_assign(&x, user, (size_t)n);
        assert_int_equal(v, rc_experiment_assign(&x, user, (size_t)n));
        in_b += v == 1;
        moved += v != rc_experiment_assign(&y, user, (size_t)n);
    }
    assert_int_ge(in_b, 14500);
    assert_int_le(in_b, 15500);
    assert_int_ge(moved, 4000); /* independent draws differ for 2 * 0.25 * 0.75 = 37.5% */
}

/* A variant's blend changes the ranking: with content only, the item of the user's category
 * leads; with covisit only, the co-visited item does. */
static void test_experiment_blend_changes_rank(void **state)
{
    (void)state;
    rc_engine_t *e = &engines[0];
    rc_user_state_t o, u;
    rc_ranked_t out[10];
    engine_with_items(e, false);
    for (int i = 0; i < 3; i++) {
        rc_user_state_init(&o, RC_DEV_MOBILE, 0);
        observe(e, &o, RC_EV_VIEW, 150, T0_MS - 60000);
        observe(e, &o, RC_EV_VIEW, 181, T0_MS - 50000);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 150, T0_MS);
    rc_blend_t covisit_only = {1, 0, 0, 0}, content_only = {0, 1, 0, 0};
    rc_rank_spec_t spec = {.k = 5, .category = -1, .price_min = -1, .price_max = -1};
    spec.blend = &covisit_only;
    assert_int_gt(rc_engine_rank(e, &u, &spec, T0_MS, out), 0);
    assert_int_equal(out[0].item, 181);
    spec.blend = &content_only;
    assert_int_gt(rc_engine_rank(e, &u, &spec, T0_MS, out), 0);
    assert_int_not_equal(out[0].item, 181);
    assert_int_equal(e->catalog.items[out[0].item].category, e->catalog.items[150].category);
    rc_engine_free(e);
}

static void test_experiment_counters_and_metrics(void **state)
{
    (void)state;
    rc_experiment_t x;
    char err[128];
    rc_blend_t base = {1, 0, 0, 0};
    assert_int_equal(rc_experiment_parse(&x, "ab;a=1,0,0,0;b=0,1,0,0", &base, err, sizeof(err)), 0);
    for (int i = 0; i < 4; i++)
        rc_experiment_count(&x, 0, false);
    rc_experiment_count(&x, 0, true);
    rc_experiment_count(&x, 1, true);
    rc_experiment_count(&x, 7, true); /* out of range: ignored */
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    assert_int_equal(rc_experiment_stats(&x, st, RC_VARIANTS_MAX), 2);
    assert_string_equal(st[0].experiment, "ab");
    assert_string_equal(st[0].variant, "a");
    assert_int_equal(st[0].impressions, 4);
    assert_int_equal(st[0].clicks, 1);
    assert_float_equal(st[0].ctr, 0.25, 1e-9);
    assert_int_equal(st[1].impressions, 0);
    assert_float_equal(st[1].ctr, 0, 1e-9);
    rc_wbuf_t b;
    rc_wbuf_init(&b, 0);
    rc_experiment_render(&x, &b);
    rc_wbuf_putc(&b, '\0');
    const char *text = rc_wbuf_data(&b);
    assert_contains(text,
                    "rankcast_experiment_impressions_total{experiment=\"ab\",variant=\"a\"} 4\n");
    assert_contains(text, "rankcast_experiment_clicks_total{experiment=\"ab\",variant=\"b\"} 1\n");
    assert_contains(text, "rankcast_experiment_ctr{experiment=\"ab\",variant=\"a\"} 0.250000\n");
    assert_contains(text, "# TYPE rankcast_experiment_ctr gauge");
    rc_wbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_covisit_symmetric),
        cmocka_unit_test(test_covisit_directed),
        cmocka_unit_test(test_covisit_bounded_keeps_strongest),
        cmocka_unit_test(test_covisit_strongest_first),
        cmocka_unit_test(test_covisit_weak_newcomer_does_not_evict),
        cmocka_unit_test(test_covisit_stronger_outranks_weaker),
        cmocka_unit_test(test_covisit_decay),
        cmocka_unit_test(test_covisit_large_max_neighbors),
        cmocka_unit_test(test_daypart),
        cmocka_unit_test(test_trending_top_by_activity),
        cmocka_unit_test(test_trending_segments_separate),
        cmocka_unit_test(test_trending_locales),
        cmocka_unit_test(test_trending_decay),
        cmocka_unit_test(test_trending_by_category),
        cmocka_unit_test(test_trending_top_matches_full_sort),
        cmocka_unit_test(test_trending_refresh_in_steps),
        cmocka_unit_test(test_event_weights),
        cmocka_unit_test_teardown(test_observe_return_values, free_engines),
        cmocka_unit_test_teardown(test_rank_cold_user_by_popularity, free_engines),
        cmocka_unit_test_teardown(test_rank_category_share_rises, free_engines),
        cmocka_unit_test_teardown(test_rank_search_moves_towards_tags, free_engines),
        cmocka_unit_test_teardown(test_rank_covisit_from_other_users, free_engines),
        cmocka_unit_test_teardown(test_rank_trending_by_locale, free_engines),
        cmocka_unit_test_teardown(test_rank_covisit_ref_is_strongest_source, free_engines),
        cmocka_unit_test_teardown(test_rank_excluded_never_appear, free_engines),
        cmocka_unit_test_teardown(test_rank_category_filter, free_engines),
        cmocka_unit_test_teardown(test_rank_price_filter, free_engines),
        cmocka_unit_test_teardown(test_rank_diversity_cap, free_engines),
        cmocka_unit_test_teardown(test_rank_no_duplicates, free_engines),
        cmocka_unit_test_teardown(test_rank_deterministic, free_engines),
        cmocka_unit_test_teardown(test_rank_bound_exact, free_engines),
        cmocka_unit_test_teardown(test_rank_after_catalog_grows, free_engines),
        cmocka_unit_test_teardown(test_why_phrases, free_engines),
        cmocka_unit_test_teardown(test_rank_newest_source_and_direction, free_engines),
        cmocka_unit_test_teardown(test_rank_explores_new_items, free_engines),
        cmocka_unit_test(test_rules_json),
        cmocka_unit_test_teardown(test_rules_boosts_and_pins, free_engines),
        cmocka_unit_test(test_experiment_parse),
        cmocka_unit_test(test_experiment_assignment),
        cmocka_unit_test_teardown(test_experiment_blend_changes_rank, free_engines),
        cmocka_unit_test(test_experiment_counters_and_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
