/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the engine's own part (engine/engine.h): what each event kind weighs, and
 * what rc_engine_observe() returns and records for a user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/engine_op.h"
#include "engine_fixture.h"

#include <jansson.h>

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
    rc_engine_t *e;
    rc_user_state_t u;
    e = engine_with_items(0, false);
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
    free_engine(0);
    rc_engine_free(NULL);
}

/* The model half of events as records (engine_op.h), applied to a second engine that never
 * sees a user, with catalog, rules, locale and refresh records between them, gives the same
 * models as rc_engine_observe() and direct calls on the first: the same lists, the same
 * repeat estimates. */
static void test_ops_replay_the_models(void **state)
{
    (void)state;
    rc_engine_t *direct = engine_with_items(0, false), *replayed = engine_with_items(1, false);
    rc_user_state_t a, b, shadow;
    rc_user_state_init(&a, RC_DEV_MOBILE, 60);
    rc_user_state_init(&b, RC_DEV_DESKTOP, 0);
    a.user_key = 7;
    b.user_key = 9;
    rc_engine_op_t op;
    uint64_t rnd = 42;
    for (int i = 0; i < 400; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        rc_user_state_t *u = (rnd >> 40) % 2 ? &a : &b;
        int64_t item = (int64_t)((rnd >> 20) % N_ITEMS);
        rc_event_kind_t kind = (rc_event_kind_t)((rnd >> 50) % RC_EV_IMPRESSION);
        int64_t at_ms = T0_MS + i * 1000;
        float w = rc_event_weight(kind, true, 4);
        shadow = *u;
        rc_engine_op_event(&op, &shadow, kind, item, w, at_ms);
        assert_int_equal(rc_engine_apply(replayed, &op), 0);
        rc_user_observe(replayed, &shadow, kind, item, w, no_query(), at_ms);
        rc_engine_observe(direct, u, kind, item, w, no_query(), at_ms);
        assert_memory_equal(&shadow, u, sizeof(*u));
        if (i == 100) {
            const char *tags[] = {"color1"};
            uint32_t idx;
            assert_int_equal(rc_engine_op_upsert(&op, "new1", "New", "cat1", tags, 1, 3, 5), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            assert_int_equal(
                rc_catalog_upsert(&direct->catalog, "new1", "New", "cat1", tags, 1, 3, 5, &idx), 0);
            const char *item_text = "{\"id\": \"new2\", \"category\": \"cat4\", \"category_name\": "
                                    "\"Four\", \"tags\": [\"color2\"], \"price\": 4}";
            assert_int_equal(rc_engine_op_item_json(&op, item_text), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            json_t *jitem = json_loads(item_text, 0, NULL);
            char ierr[64];
            assert_int_equal(
                rc_catalog_upsert_json(&direct->catalog, jitem, &idx, ierr, sizeof(ierr)), 0);
            json_decref(jitem);
            assert_int_equal(rc_engine_op_item_json(&op, "{\"name\": \"no id\"}"), 0);
            assert_int_not_equal(rc_engine_apply(replayed, &op), 0); /* refused, nothing moves */
            rc_engine_op_clear(&op);
            assert_int_equal(rc_engine_op_remove(&op, "i001", 4), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            assert_int_equal(rc_catalog_remove(&direct->catalog, "i001", 4), 0);
            const char *rules = "{\"boosts\": [{\"category\": \"cat2\", \"factor\": 2}]}";
            assert_int_equal(rc_engine_op_rules(&op, rules), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            assert_int_equal(rc_engine_op_rules(&op, "{\"boosts\": 3}"), 0);
            assert_int_not_equal(rc_engine_apply(replayed, &op), 0); /* refused, nothing moves */
            rc_engine_op_clear(&op);
            rc_rules_t r = {0};
            char err[64];
            json_t *j = json_loads(rules, 0, NULL);
            assert_int_equal(rc_rules_from_json(&r, j, err, sizeof(err)), 0);
            json_decref(j);
            rc_engine_set_rules(direct, &r);
            rc_engine_op_locale(&op, (rc_str_t){"de-DE", 5}, at_ms);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            a.locale = (int16_t)rc_engine_locale(direct, (rc_str_t){"de-DE", 5}, at_ms);
        }
        if (i % 50 == 49) {
            rc_engine_op_refresh(&op, at_ms);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            assert_int_equal(rc_engine_refresh(direct), 0);
        } else if (i % 10 == 5) {
            /* A refresh in slices of 64 items, as the loop's tick runs it. */
            rc_engine_op_refresh_step(&op, 64, at_ms);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            assert_int_ge(rc_engine_refresh_step(direct, 64), 0);
        }
    }
    assert_memory_equal(direct->repeat_same, replayed->repeat_same, sizeof(direct->repeat_same));
    assert_memory_equal(direct->repeat_back, replayed->repeat_back, sizeof(direct->repeat_back));
    assert_int_equal(direct->catalog.n, replayed->catalog.n);
    assert_int_equal(direct->catalog.n_categories, replayed->catalog.n_categories);
    rc_ranked_t x[20], y[20];
    for (int k = 0; k < 2; k++) {
        const rc_user_state_t *u = k ? &a : &b;
        uint32_t nx = rank_k(direct, u, 20, -1, -1, -1, x);
        uint32_t ny = rank_k(replayed, u, 20, -1, -1, -1, y);
        assert_int_equal(nx, ny);
        for (uint32_t i = 0; i < nx; i++) {
            assert_int_equal(x[i].item, y[i].item);
            assert_float_equal(x[i].score, y[i].score, 0);
            assert_int_not_equal(x[i].item, 1); /* removed */
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_weights),
        cmocka_unit_test_teardown(test_observe_return_values, free_engines),
        cmocka_unit_test_teardown(test_ops_replay_the_models, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
