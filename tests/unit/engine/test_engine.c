/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the engine's own part (engine/engine.h): what each event kind weighs, and
 * what rc_engine_observe() returns and records for a user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_weights),
        cmocka_unit_test_teardown(test_observe_return_values, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
