/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of experiments (engine/experiments.h): parsing variants, assigning users to
 * them, a variant's blend changing the rank, and the counters rendered as metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/experiments.h"
#include "engine_fixture.h"
#include "util/error.h"

#include <stdio.h>

static void test_experiment_parse(void **state)
{
    (void)state;
    rc_experiment_t x;
    char err[128];
    rc_blend_t base = {0.8f, 0.1f, 0.07f, 0.03f, 0};
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
    rc_blend_t base = {1, 0, 0, 0, 0};
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
    rc_engine_t *e;
    rc_user_state_t o, u;
    rc_ranked_t out[10];
    e = engine_with_items(0, false);
    for (int i = 0; i < 3; i++) {
        rc_user_state_init(&o, RC_DEV_MOBILE, 0);
        observe(e, &o, RC_EV_VIEW, 150, T0_MS - 60000);
        observe(e, &o, RC_EV_VIEW, 181, T0_MS - 50000);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 150, T0_MS);
    rc_blend_t covisit_only = {1, 0, 0, 0, 0}, content_only = {0, 1, 0, 0, 0};
    rc_rank_spec_t spec = {.k = 5, .category = -1, .price_min = -1, .price_max = -1};
    spec.blend = &covisit_only;
    assert_int_gt(rc_engine_rank(e, scratch(), &u, &spec, T0_MS, out), 0);
    assert_int_equal(out[0].item, 181);
    spec.blend = &content_only;
    assert_int_gt(rc_engine_rank(e, scratch(), &u, &spec, T0_MS, out), 0);
    assert_int_not_equal(out[0].item, 181);
    assert_int_equal(e->catalog.items[out[0].item].category, e->catalog.items[150].category);
    free_engine(0);
}

/* Each loop counts in its own counts, never in the experiment (which ranks on every thread
 * read, immutable); readers add the loops' counts up. */
static void test_experiment_counters_and_metrics(void **state)
{
    (void)state;
    rc_experiment_t x;
    char err[128];
    rc_blend_t base = {1, 0, 0, 0, 0};
    assert_int_equal(rc_experiment_parse(&x, "ab;a=1,0,0,0;b=0,1,0,0", &base, err, sizeof(err)), 0);
    const rc_experiment_t published = x;
    rc_experiment_counts_t loop1 = {0}, loop2 = {0};
    for (int i = 0; i < 3; i++)
        rc_experiment_count(&loop1, &x, 0, false);
    rc_experiment_count(&loop2, &x, 0, false);
    rc_experiment_count(&loop1, &x, 0, true);
    rc_experiment_count(&loop2, &x, 1, true);
    rc_experiment_count(&loop2, &x, 7, true); /* out of range: ignored */
    assert_memory_equal(&published, &x, sizeof(x));
    assert_int_equal(loop1.impressions[0], 3);
    assert_int_equal(loop2.impressions[0], 1);
    rc_experiment_counts_t sum = {0};
    rc_experiment_counts_add(&sum, &x, &loop1);
    rc_experiment_counts_add(&sum, &x, &loop2);
    rc_experiment_counts_add(&sum, &x, NULL);
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    assert_int_equal(rc_experiment_stats(&x, &sum, st, RC_VARIANTS_MAX), 2);
    assert_string_equal(st[0].experiment, "ab");
    assert_string_equal(st[0].variant, "a");
    assert_int_equal(st[0].impressions, 4);
    assert_int_equal(st[0].clicks, 1);
    assert_float_equal(st[0].ctr, 0.25, 1e-9);
    assert_int_equal(st[1].impressions, 0);
    assert_float_equal(st[1].ctr, 0, 1e-9);
    rc_wbuf_t b;
    rc_wbuf_init(&b, 0);
    rc_experiment_render(&x, &sum, &b);
    rc_wbuf_putc(&b, '\0');
    const char *text = rc_wbuf_data(&b);
    assert_contains(text,
                    "rankcast_experiment_impressions_total{experiment=\"ab\",variant=\"a\"} 4\n");
    assert_contains(text, "rankcast_experiment_clicks_total{experiment=\"ab\",variant=\"b\"} 1\n");
    assert_contains(text, "rankcast_experiment_ctr{experiment=\"ab\",variant=\"a\"} 0.250000\n");
    assert_contains(text, "# TYPE rankcast_experiment_ctr gauge");
    rc_wbuf_free(&b);

    /* A new experiment (even of the same text, even where the old one was) starts from zero:
     * counts of another serial are neither added nor read, and a loop's are dropped at its
     * first count of the new one. */
    rc_experiment_t y;
    assert_int_equal(rc_experiment_parse(&y, "ab;a=1,0,0,0;b=0,1,0,0", &base, err, sizeof(err)), 0);
    assert_int_not_equal(y.serial, x.serial);
    assert_int_not_equal(y.serial, 0);
    assert_int_equal(rc_experiment_stats(&y, &sum, st, RC_VARIANTS_MAX), 2);
    assert_int_equal(st[0].impressions, 0);
    rc_experiment_counts_t ysum = {0};
    rc_experiment_counts_add(&ysum, &y, &loop1);
    assert_int_equal(ysum.impressions[0], 0);
    rc_experiment_count(&loop1, &y, 1, false);
    assert_int_equal(loop1.serial, y.serial);
    assert_int_equal(loop1.impressions[0], 0);
    assert_int_equal(loop1.clicks[0], 0);
    assert_int_equal(loop1.impressions[1], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiment_parse),
        cmocka_unit_test(test_experiment_assignment),
        cmocka_unit_test_teardown(test_experiment_blend_changes_rank, free_engines),
        cmocka_unit_test(test_experiment_counters_and_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
