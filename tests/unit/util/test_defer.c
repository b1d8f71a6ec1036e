/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of deferred calls (util/defer.h) on a real libuv loop: a call never runs inside
 * the callback that queued it, runs in order in the same loop turn before the gateway's
 * end-of-turn flush (or the next turn, never later), does not let calls it queues extend
 * the turn, does not keep the loop alive once done, and still runs when the queue closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "util/defer.h"

#include <stdbool.h>
#include <string.h>
#include <uv.h>

/* The loop, the queue and the handles a test adds (static, so a test that fails early leaves
 * nothing on a dead stack for the teardown's loop run), and what ran, in order: each call
 * appends its id. */
typedef struct {
    uv_loop_t loop;
    rc_defer_t defer;
    bool defer_closed;
    uv_timer_t timer;
    uv_check_t flush;
    uv_prepare_t prepare;
    int ran[64];
    int n_ran;
    int requeue_left; /* for calls that queue another */
} world_t;

static world_t w;

static void record(int id)
{
    assert_int_lt(w.n_ran, 64);
    w.ran[w.n_ran++] = id;
}

static void assert_ran(const int *want, int n)
{
    assert_int_equal(w.n_ran, n);
    for (int i = 0; i < n; i++) {
        if (w.ran[i] != want[i]) {
            print_error("call %d: ran %d, expected %d\n", i, w.ran[i], want[i]);
            fail();
        }
    }
}

static void call_1(void *arg)
{
    assert_ptr_equal(arg, &w);
    record(1);
}

static void call_2(void *arg)
{
    (void)arg;
    record(2);
}

static void call_3(void *arg)
{
    (void)arg;
    record(3);
}

static int open_world(void **state)
{
    (void)state;
    memset(&w, 0, sizeof(w));
    assert_int_equal(uv_loop_init(&w.loop), 0);
    assert_int_equal(rc_defer_init(&w.defer, &w.loop), 0);
    return 0;
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes the queue (unless the test did), whatever handles the test left open, and the loop,
 * which must then have nothing left. */
static int close_world(void **state)
{
    (void)state;
    if (!w.defer_closed)
        rc_defer_close(&w.defer);
    uv_walk(&w.loop, close_handle, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    return 0;
}

/* Runs loop turns until nothing is left to run, at most `turns` of them. */
static void run_turns(int turns)
{
    for (int n = 0; n < turns && uv_run(&w.loop, UV_RUN_NOWAIT) != 0; n++)
        ;
}

static void queue_three_from_timer(uv_timer_t *t)
{
    (void)t;
    assert_int_equal(rc_defer(&w.defer, call_1, &w), 0);
    assert_int_equal(rc_defer(&w.defer, call_2, NULL), 0);
    assert_int_equal(rc_defer(&w.defer, call_3, NULL), 0);
    /* Not inside the call that queued them, nor before the callback returns. */
    assert_int_equal(w.n_ran, 0);
}

/* Calls queued by a loop callback run after it returns, in the order queued; then the loop
 * has nothing left to do (the queue's handles are active only while calls wait). */
static void test_runs_after_the_callback_in_order(void **state)
{
    (void)state;
    uv_timer_init(&w.loop, &w.timer);
    uv_timer_start(&w.timer, queue_three_from_timer, 0, 0);
    assert_int_equal(w.n_ran, 0);
    run_turns(10);
    const int want[] = {1, 2, 3};
    assert_ran(want, 3);
    uv_close((uv_handle_t *)&w.timer, NULL);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_false(uv_loop_alive(&w.loop));

    /* The same again, queued outside any callback: still only once the loop runs. */
    assert_int_equal(rc_defer(&w.defer, call_3, NULL), 0);
    assert_int_equal(w.n_ran, 3);
    assert_true(uv_loop_alive(&w.loop));
    run_turns(10);
    const int again[] = {1, 2, 3, 3};
    assert_ran(again, 4);
    assert_false(uv_loop_alive(&w.loop));
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    record(99);
}

/* A loop with nothing else to do runs a queued call at once: it does not sit waiting for I/O
 * first (the guard, a 3 s timer that does not keep the loop alive, bounds that wait). */
static void test_a_quiet_loop_does_not_wait(void **state)
{
    (void)state;
    uv_timer_init(&w.loop, &w.timer);
    uv_timer_start(&w.timer, on_guard, 3000, 0);
    uv_unref((uv_handle_t *)&w.timer);
    assert_int_equal(rc_defer(&w.defer, call_2, NULL), 0);
    uint64_t start_ns = uv_hrtime();
    assert_int_equal(uv_run(&w.loop, UV_RUN_DEFAULT), 0);
    const int want[] = {2};
    assert_ran(want, 1);
    assert_int_lt((uv_hrtime() - start_ns) / 1000000, 1500);
}

static void on_flush_check(uv_check_t *h)
{
    (void)h;
    record(100);
}

static void queue_from_prepare(uv_prepare_t *p)
{
    (void)p;
    assert_int_equal(rc_defer(&w.defer, call_2, NULL), 0);
}

/* A call queued late in a turn (here in the prepare phase, after the idle handles ran; the
 * gateway's callbacks run later still, in the poll phase) runs in that same turn, before a
 * check handle started long before it: the gateway's flush, which then writes what the call
 * changed. Two turns, so the second batch is queued after the first one's handles stopped. */
static void test_runs_before_the_turns_flush(void **state)
{
    (void)state;
    uv_check_init(&w.loop, &w.flush);
    uv_check_start(&w.flush, on_flush_check);
    uv_prepare_init(&w.loop, &w.prepare);
    uv_prepare_start(&w.prepare, queue_from_prepare);

    uv_run(&w.loop, UV_RUN_NOWAIT);
    const int one[] = {2, 100};
    assert_ran(one, 2);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    const int two[] = {2, 100, 2, 100};
    assert_ran(two, 4);
}

static void requeue_self(void *arg)
{
    (void)arg;
    record(7);
    if (--w.requeue_left > 0)
        assert_int_equal(rc_defer(&w.defer, requeue_self, NULL), 0);
}

static void queue_call_3_then_record(void *arg)
{
    (void)arg;
    assert_int_equal(rc_defer(&w.defer, call_3, NULL), 0);
    record(1);
}

/* A call queued by a running call does not run inside it, and does not extend the turn
 * without bound: a call that queues itself again runs at most twice per loop turn (once
 * when the idle handles run, once when the check handles do), and at least once. */
static void test_calls_queued_by_calls_wait(void **state)
{
    (void)state;
    assert_int_equal(rc_defer(&w.defer, queue_call_3_then_record, NULL), 0);
    run_turns(10);
    const int want[] = {1, 3};
    assert_ran(want, 2);

    w.n_ran = 0;
    w.requeue_left = 50;
    assert_int_equal(rc_defer(&w.defer, requeue_self, NULL), 0);
    for (int turn = 0; w.n_ran < 50; turn++) {
        int before = w.n_ran;
        assert_int_lt(turn, 50);
        uv_run(&w.loop, UV_RUN_NOWAIT);
        assert_int_ge(w.n_ran - before, 1);
        assert_int_le(w.n_ran - before, 2);
    }
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(w.n_ran, 50);
    assert_false(uv_loop_alive(&w.loop));
}

static void queue_more_while_closing(void *arg)
{
    (void)arg;
    record(1);
    assert_int_equal(rc_defer(&w.defer, call_2, NULL), 0);
}

/* Closing runs whatever is still queued, calls queued meanwhile included, without the loop;
 * the loop must then run once more before it can be closed. */
static void test_close_runs_what_is_queued(void **state)
{
    (void)state;
    assert_int_equal(rc_defer(&w.defer, queue_more_while_closing, NULL), 0);
    assert_int_equal(rc_defer(&w.defer, call_3, NULL), 0);
    rc_defer_close(&w.defer);
    w.defer_closed = true;
    const int want[] = {1, 3, 2};
    assert_ran(want, 3);
    assert_int_equal(uv_loop_close(&w.loop), UV_EBUSY); /* its handles are still closing */
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_ran(want, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_after_the_callback_in_order, open_world,
                                        close_world),
        cmocka_unit_test_setup_teardown(test_a_quiet_loop_does_not_wait, open_world, close_world),
        cmocka_unit_test_setup_teardown(test_runs_before_the_turns_flush, open_world, close_world),
        cmocka_unit_test_setup_teardown(test_calls_queued_by_calls_wait, open_world, close_world),
        cmocka_unit_test_setup_teardown(test_close_runs_what_is_queued, open_world, close_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
