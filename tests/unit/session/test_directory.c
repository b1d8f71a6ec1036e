/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the directory of users' loops (session/directory.h): what joining and
 * leaving return, and loops in threads joining and leaving the same users at once (run
 * under ThreadSanitizer by scripts/test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "session/directory.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_join_and_leave_say_who_else_holds_the_user(void **state)
{
    (void)state;
    rc_directory_t *d = rc_directory_new();
    assert_non_null(d);
    assert_int_equal(rc_directory_join(d, "u1", 2, 3), 0); /* the first */
    assert_int_equal(rc_directory_join(d, "u1", 2, 5), 1u << 3);
    assert_int_equal(rc_directory_join(d, "u1", 2, 3), 1u << 5); /* again: no change */
    assert_int_equal(rc_directory_loops(d, "u1", 2), (1u << 3) | (1u << 5));
    assert_int_equal(rc_directory_loops(d, "u2", 2), 0);
    assert_int_equal(rc_directory_leave(d, "u1", 2, 3), 1u << 5);
    assert_int_equal(rc_directory_leave(d, "u1", 2, 5), 0);
    assert_int_equal(rc_directory_loops(d, "u1", 2), 0);
    assert_int_equal(rc_directory_leave(d, "u1", 2, 5), 0); /* not there: nothing */
    assert_int_equal(rc_directory_join(d, "u3", 2, 63), 0);
    rc_directory_free(d); /* u3 still in it: freed with it */
}

#define THREADS 4
#define USERS   200
#define ROUNDS  50

typedef struct {
    rc_directory_t *d;
    uint32_t loop;
    int bad;
} worker_t;

static void *join_and_leave(void *arg)
{
    worker_t *w = arg;
    char user[16];
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < USERS; i++) {
            int n = snprintf(user, sizeof(user), "u%d", i);
            uint64_t before = rc_directory_join(w->d, user, (size_t)n, w->loop);
            if (before & (1ull << w->loop))
                w->bad++; /* it never said this loop held the user */
            if (!(rc_directory_loops(w->d, user, (size_t)n) & (1ull << w->loop)))
                w->bad++;
            if (rc_directory_leave(w->d, user, (size_t)n, w->loop) & (1ull << w->loop))
                w->bad++;
        }
    return NULL;
}

static void test_loops_in_threads_join_and_leave_at_once(void **state)
{
    (void)state;
    rc_directory_t *d = rc_directory_new();
    pthread_t t[THREADS];
    worker_t w[THREADS];
    for (uint32_t i = 0; i < THREADS; i++) {
        w[i] = (worker_t){d, i * 7, 0};
        assert_int_equal(pthread_create(&t[i], NULL, join_and_leave, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    char user[16];
    for (int i = 0; i < USERS; i++) { /* every loop left every user */
        int n = snprintf(user, sizeof(user), "u%d", i);
        assert_int_equal(rc_directory_loops(d, user, (size_t)n), 0);
    }
    rc_directory_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_and_leave_say_who_else_holds_the_user),
        cmocka_unit_test(test_loops_in_threads_join_and_leave_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
