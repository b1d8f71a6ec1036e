/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of learning from history (engine/history.h): a user's events within a session
 * teach co-visitation and a silence longer than the gap ends the session; events are
 * learned at their own time; a file of events is read with its bad lines counted, not
 * learned. */
#include "engine/history.h"
#include "engine_fixture.h"
#include "util/error.h"

#include <stdlib.h>
#include <unistd.h>

#define GAP_MS (30 * MIN_MS)

/* Whether `b` is among `a`'s co-visitation neighbours. */
static bool neighbours(const rc_engine_t *e, uint32_t a, uint32_t b)
{
    uint32_t n;
    const rc_neighbor_t *nb = rc_covisit_neighbors(&e->covisit, a, &n);
    for (uint32_t i = 0; i < n; i++)
        if (nb[i].item == b && nb[i].w > 0)
            return true;
    return false;
}

static void learn(rc_history_t *h, const char *user, rc_event_kind_t kind, const char *item,
                  int64_t ts_ms)
{
    assert_int_equal(
        rc_history_learn(h, user, strlen(user), kind, item, strlen(item), false, 0, ts_ms), 0);
}

static void test_a_session_teaches_covisitation_and_a_gap_ends_it(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_history_t *h = rc_history_new(e, GAP_MS);
    assert_non_null(h);
    learn(h, "u1", RC_EV_VIEW, "i010", T0_MS);
    learn(h, "u2", RC_EV_VIEW, "i020", T0_MS + MIN_MS); /* another user between: no pair */
    learn(h, "u1", RC_EV_CLICK, "i011", T0_MS + 2 * MIN_MS);
    assert_true(neighbours(e, 10, 11));
    assert_false(neighbours(e, 20, 11));
    assert_false(neighbours(e, 10, 20));
    /* u2 comes back after the gap: a new session, which pairs nothing with i020. */
    learn(h, "u2", RC_EV_VIEW, "i030", T0_MS + 2 * MIN_MS + GAP_MS + MIN_MS);
    assert_false(neighbours(e, 20, 30));
    /* Within the gap it would have. */
    learn(h, "u3", RC_EV_VIEW, "i040", T0_MS + 3 * GAP_MS);
    learn(h, "u3", RC_EV_VIEW, "i041", T0_MS + 4 * GAP_MS - MIN_MS);
    assert_true(neighbours(e, 40, 41));
    assert_int_equal(rc_history_learn(h, "u4", 2, RC_EV_VIEW, "nope", 4, false, 0, T0_MS),
                     RC_ENOENT); /* a closed catalog keeps its items */
    assert_int_equal(rc_history_learn(h, "", 0, RC_EV_VIEW, "i001", 4, false, 0, T0_MS), RC_EINVAL);
    rc_history_free(h);
    free_engine(0);
}

/* Trending learns the event in the part of the day it happened, not when it is read. */
static void test_events_are_learned_at_their_own_time(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_history_t *h = rc_history_new(e, GAP_MS);
    int64_t morning = DAY0_MS + 8 * HOUR_MS, evening = DAY0_MS + 20 * HOUR_MS;
    learn(h, "u1", RC_EV_PURCHASE, "i050", morning);
    const float *sc = rc_trending_scores(&e->trending, 50);
    assert_non_null(sc);
    assert_true(sc[RC_SEG_DAYPART(rc_daypart(morning, 0))] > 0);
    assert_true(sc[RC_SEG_DAYPART(rc_daypart(evening, 0))] == 0);
    rc_history_free(h);
    free_engine(0);
}

static void test_a_file_is_learned_and_its_bad_lines_counted(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_history_t *h = rc_history_new(e, GAP_MS);
    char path[] = "/tmp/rankcast-history-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# ts_ms\tuser\tkind\titem\tvalue\n"
               "1700000000000\tu1\tview\ti060\n"
               "1700000060000\tu1\tclick\ti061\r\n"
               "1700000120000\tu1\trating\ti062\t5\n"
               "1700000130000\tu2\tsearch\tred mugs\n"
               "\n"
               "1700000100000\tu3\tview\ti063\n" /* older than the line before: learned */
               "1700000140000\tu1\tteleport\ti064\n"
               "17000001x0000\tu1\tview\ti064\n"
               "1700000150000\tu1\tview\n"
               "1700000160000\tu1\tview\tnot-an-item\n"
               "1700000170000\tu1\trating\ti065\tfive\n");
    fclose(f);
    rc_history_stats_t st = {0};
    char err[256] = "";
    assert_int_equal(rc_history_import_file(h, path, &st, err, sizeof(err)), 0);
    unlink(path);
    assert_int_equal(st.lines, 12);
    assert_int_equal(st.learned, 5);
    assert_int_equal(st.malformed, 4);
    assert_int_equal(st.unknown_item, 1);
    assert_int_equal(st.out_of_order, 1);
    assert_int_equal(st.sessions, 3);
    assert_true(neighbours(e, 60, 61));
    assert_true(neighbours(e, 61, 62));
    assert_int_equal(rc_history_import_file(h, "/nonexistent/history.tsv", &st, err, sizeof(err)),
                     RC_EIO);
    assert_contains(err, "/nonexistent/history.tsv");
    rc_history_free(h);
    rc_history_free(NULL);
    free_engine(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_a_session_teaches_covisitation_and_a_gap_ends_it,
                                  free_engines),
        cmocka_unit_test_teardown(test_events_are_learned_at_their_own_time, free_engines),
        cmocka_unit_test_teardown(test_a_file_is_learned_and_its_bad_lines_counted, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
