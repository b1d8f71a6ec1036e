/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the chance of a return (engine/returns.h): the successor model's evidence for
 * the session's items, the split by what the user did, and the share the evidence learns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine_fixture.h"
#include "engine/returns.h"

/* Only the successors of the item in view that are earlier items of the session have
 * evidence, each its share of the item in view's successor weight. */
static void test_return_evidence_of_session_items(void **state)
{
    (void)state;
    rc_covisit_t cv;
    rc_covisit_init(&cv, 8, 3600, 1000);
    assert_int_equal(rc_covisit_add_directed(&cv, 5, 1, 3, 0, 1000), 0);
    assert_int_equal(rc_covisit_add_directed(&cv, 5, 2, 1, 0, 1000), 0);
    assert_int_equal(rc_covisit_add_directed(&cv, 5, 9, 4, 0, 1000), 0);
    assert_int_equal(rc_covisit_add_directed(&cv, 1, 5, 7, 0, 1000), 0); /* not out of 5 */
    uint32_t items[] = {5, 7, 1, 2};
    float w[] = {1, 1, 1, -1}; /* 2 was dismissed: no evidence */
    rc_return_evidence_t ev;
    rc_return_evidence(&cv, items, w, 4, &ev);
    assert_int_equal(ev.n, 1);
    assert_int_equal(ev.item[0], 1);
    assert_float_equal(ev.p[0], 3.0 / 8.0, 1e-6);
    assert_float_equal(ev.total, 3.0 / 8.0, 1e-6);
    rc_return_evidence(&cv, items, w, 1, &ev); /* no session before the item in view */
    assert_int_equal(ev.n, 0);
    assert_float_equal(ev.total, 0, 0);
    rc_covisit_free(&cv);
}

/* By weight and recency, the item in view and negative events left out. */
static void test_return_habit_split(void **state)
{
    (void)state;
    uint32_t items[] = {5, 1, 2, 5, 1};
    float w[] = {1, 1, 2, 1, -1};
    float s1 = rc_return_habit_split(items, w, 5, 0.5f, 1);
    float s2 = rc_return_habit_split(items, w, 5, 0.5f, 2);
    assert_float_equal(s1, 0.5 / (0.5 + 2 * 0.25), 1e-6);
    assert_float_equal(s1 + s2, 1, 1e-6);
    assert_float_equal(rc_return_habit_split(items, w, 5, 0.5f, 5), 0, 0);
}

/* Sessions of one user event after another: `n` of them, each 10 then 20 then `third`. */
static void sessions(rc_engine_t *e, int n, uint32_t third, int64_t t0_ms)
{
    for (int s = 0; s < n; s++) {
        rc_user_state_t v;
        rc_user_state_init(&v, RC_DEV_DESKTOP, 0);
        int64_t t = t0_ms + s * 1000;
        observe(e, &v, RC_EV_VIEW, 10, t);
        observe(e, &v, RC_EV_VIEW, 20, t + 300);
        observe(e, &v, RC_EV_VIEW, third, t + 600);
    }
}

/* Returns the successor model foretells raise its share; once users stop going back while it
 * still says they will, the share falls. */
static void test_return_share_follows_evidence(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    float start = e->repeat_successor;
    sessions(e, 100, 10, T0_MS); /* 10, 20, 10: back to 10, which follows 20 */
    float risen = e->repeat_successor;
    assert_true(risen > start);
    sessions(e, 2000, 30, T0_MS + HOUR_MS); /* 10, 20, 30: 10 still follows 20, nobody returns */
    assert_true(e->repeat_successor < risen);
    assert_true(e->repeat_successor < start);
    free_engine(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_return_evidence_of_session_items),
        cmocka_unit_test(test_return_habit_split),
        cmocka_unit_test_teardown(test_return_share_follows_evidence, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
