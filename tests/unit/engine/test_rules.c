/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the merchandising rules (engine/rules.h): parsing and printing them as JSON,
 * and the boosts and pins as the engine's rank applies them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/rules.h"
#include "engine_fixture.h"
#include "util/error.h"

#include <stdlib.h>

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
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[10];
    char why[64], err[160];
    e = engine_with_items(0, false);
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
    n = rc_engine_rank(e, scratch(), &u, &home, T0_MS, out);
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
    n = rc_engine_rank(e, scratch(), &u, &other, T0_MS, out);
    assert_int_equal(out[0].item, 151);
    assert_int_equal(place_of(out, n, 150), -1);
    /* Never an item the user may not see, nor outside the subscription's filter. */
    rc_user_exclude(&u, 151);
    n = rc_engine_rank(e, scratch(), &u, &home, T0_MS, out);
    assert_int_equal(place_of(out, n, 151), -1);
    assert_int_equal(out[1].item, 150);
    rc_rank_spec_t cat3 = home;
    cat3.category = category_of(e, "cat3");
    n = rc_engine_rank(e, scratch(), &u, &cat3, T0_MS, out);
    assert_int_equal(place_of(out, n, 150), -1); /* 150 is in cat6 */
    /* A short list: the pin still takes its place, and K is respected. */
    rc_rank_spec_t two = home;
    two.k = 2;
    n = rc_engine_rank(e, scratch(), &u, &two, T0_MS, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[1].item, 150);
    free_engine(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_json),
        cmocka_unit_test_teardown(test_rules_boosts_and_pins, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
