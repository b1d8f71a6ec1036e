/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of co-visitation (engine/covisit.h): symmetric and directed pairs, lists
 * bounded and kept strongest first, decay, and the largest neighbour count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/covisit.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
