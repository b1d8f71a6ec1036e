/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of snapshots written by a child process (snapshot_job.h), in a real directory:
 * the snapshot holds the memory as it was at the start, whatever the parent changes while
 * the child writes; one job at a time; a failing or dying writer is reported with its reason
 * and leaves no file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "log/snapshot.h"
#include "log/snapshot_job.h"
#include "util/error.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char state[64];         /* what the "node" holds: the child packs its copy */
static int gate[2] = {-1, -1}; /* the child waits here until the parent has moved on */

static int setup(void **unused)
{
    (void)unused;
    snprintf(dir, sizeof(dir), "/tmp/rc-snapjob-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(pipe(gate), 0);
    return 0;
}

static int teardown(void **unused)
{
    (void)unused;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    close(gate[0]);
    close(gate[1]);
    return 0;
}

/* Packs `state` once the parent opens the gate: by then the parent has changed its own. */
static int pack_after_gate(void *ctx, uint64_t covers, rc_wbuf_t *body, char *err, size_t len)
{
    (void)ctx, (void)covers, (void)err, (void)len;
    char c;
    if (read(gate[0], &c, 1) != 1)
        return RC_EIO;
    rc_wbuf_put(body, state, strlen(state));
    return 0;
}

static int pack_fails(void *ctx, uint64_t covers, rc_wbuf_t *body, char *err, size_t len)
{
    (void)ctx, (void)covers, (void)body;
    snprintf(err, len, "the log cannot be synced");
    return RC_EIO;
}

static int pack_dies(void *ctx, uint64_t covers, rc_wbuf_t *body, char *err, size_t len)
{
    (void)ctx, (void)covers, (void)body, (void)err, (void)len;
    raise(SIGKILL);
    return 0;
}

static bool newest(rc_snapshot_t *s)
{
    char err[200];
    return rc_snapshot_read_newest(dir, NULL, NULL, s, err, sizeof(err)) == 0;
}

static void snapshot_is_the_memory_at_the_start(void **unused)
{
    (void)unused;
    rc_snapshot_job_t j = {0};
    rc_snapshot_result_t r;
    char err[200];
    assert_false(rc_snapshot_job_poll(&j, true, &r)); /* none running */
    snprintf(state, sizeof(state), "as of the fork");
    assert_int_equal(rc_snapshot_job_start(&j, dir, 42, pack_after_gate, NULL, err, sizeof(err)),
                     0);
    /* One at a time. */
    assert_int_equal(rc_snapshot_job_start(&j, dir, 43, pack_after_gate, NULL, err, sizeof(err)),
                     RC_EEXIST);
    /* The parent goes on and changes what it holds; the child still packs its own copy. */
    snprintf(state, sizeof(state), "changed after the fork");
    assert_false(rc_snapshot_job_poll(&j, false, &r));
    assert_int_equal(write(gate[1], "x", 1), 1);
    assert_true(rc_snapshot_job_poll(&j, true, &r));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.covers, 42);
    assert_int_equal(r.bytes, strlen("as of the fork"));
    assert_true(r.seconds > 0 && r.fork_ms >= 0);
    rc_snapshot_t s;
    assert_true(newest(&s));
    assert_int_equal(s.covers, 42);
    assert_int_equal(s.len, strlen("as of the fork"));
    assert_memory_equal(s.body, "as of the fork", s.len);
    free(s.body);
    assert_false(rc_snapshot_job_poll(&j, true, &r)); /* reported once */
}

static void failing_writer_is_reported(void **unused)
{
    (void)unused;
    rc_snapshot_job_t j = {0};
    rc_snapshot_result_t r;
    char err[200];
    assert_int_equal(rc_snapshot_job_start(&j, dir, 7, pack_fails, NULL, err, sizeof(err)), 0);
    assert_true(rc_snapshot_job_poll(&j, true, &r));
    assert_int_equal(r.rc, RC_EIO);
    assert_string_equal(r.err, "the log cannot be synced");
    rc_snapshot_t s;
    assert_false(newest(&s));
    /* A writer that dies says so, and a new job can start after it. */
    assert_int_equal(rc_snapshot_job_start(&j, dir, 8, pack_dies, NULL, err, sizeof(err)), 0);
    assert_true(rc_snapshot_job_poll(&j, true, &r));
    assert_int_not_equal(r.rc, 0);
    assert_string_equal(r.err, "the writer died of signal 9");
    assert_false(newest(&s));
    assert_int_equal(j.pid, 0);
}

static int pack_state(void *ctx, uint64_t covers, rc_wbuf_t *body, char *err, size_t len)
{
    (void)ctx, (void)covers, (void)err, (void)len;
    rc_wbuf_put(body, state, strlen(state));
    return 0;
}

/* Without a child (the fork refused), the same snapshot is written by the caller. */
static void write_now_is_the_same_snapshot(void **unused)
{
    (void)unused;
    rc_snapshot_result_t r;
    snprintf(state, sizeof(state), "written here");
    rc_snapshot_write_now(dir, 9, pack_state, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.covers, 9);
    assert_int_equal(r.bytes, strlen("written here"));
    rc_snapshot_t s;
    assert_true(newest(&s));
    assert_int_equal(s.covers, 9);
    assert_memory_equal(s.body, "written here", s.len);
    free(s.body);
    rc_snapshot_write_now(dir, 10, pack_fails, NULL, &r);
    assert_int_equal(r.rc, RC_EIO);
    assert_string_equal(r.err, "the log cannot be synced");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(snapshot_is_the_memory_at_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_writer_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(write_now_is_the_same_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
