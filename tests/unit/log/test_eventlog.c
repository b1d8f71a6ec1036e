/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the event log (eventlog.h), on a real directory and a real loop: records come
 * back in order after a reopen, each durable only once the policy says; a torn tail is cut
 * and appends follow good data; a corrupt record ends its segment's reading and the other
 * segments still count; segments roll and retention deletes the oldest; a failed append
 * leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "log/eventlog.h"
#include "util/defer.h"
#include "util/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    uv_loop_t loop;
    rc_defer_t defer;
    char dir[64];
} fixture_t;

typedef struct seen {
    char rec[64][32];
    uint64_t numbers[64];
    int n;
} seen_t;

static void collect(void *ctx, uint64_t record, const void *data, size_t len)
{
    seen_t *s = ctx;
    if (s->n < 64)
        s->numbers[s->n] = record;
    if (s->n < 64 && len < 32) {
        memcpy(s->rec[s->n], data, len);
        s->rec[s->n][len] = '\0';
    }
    s->n++;
}

static void count_done(void *arg, int status)
{
    int *done = arg;
    *done += status == 0 ? 1 : 1000;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(rc_defer_init(&f->defer, &f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rc-log-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    rc_defer_close(&f->defer);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static rc_eventlog_t *open_log(fixture_t *f, rc_fsync_t policy, uint64_t segment_bytes,
                               uint64_t retain_bytes, seen_t *seen, rc_eventlog_stats_t *st)
{
    char err[256] = "";
    rc_eventlog_config_t cfg = {.dir = f->dir,
                                .fsync = policy,
                                .fsync_interval_ms = 10,
                                .segment_bytes = segment_bytes,
                                .retain_bytes = retain_bytes};
    rc_eventlog_t *l =
        rc_eventlog_open(&f->loop, &f->defer, &cfg, collect, seen, st, err, sizeof(err));
    if (l == NULL)
        fail_msg("open: %s", err);
    return l;
}

/* Opens the log reading back from record `read_from`, numbering from `number_from` on. */
static rc_eventlog_t *open_from(fixture_t *f, uint64_t read_from, uint64_t number_from,
                                seen_t *seen, rc_eventlog_stats_t *st)
{
    char err[256] = "";
    rc_eventlog_config_t cfg = {.dir = f->dir,
                                .fsync = RC_FSYNC_ALWAYS,
                                .segment_bytes = 1 << 20,
                                .read_from = read_from,
                                .number_from = number_from};
    rc_eventlog_t *l =
        rc_eventlog_open(&f->loop, &f->defer, &cfg, collect, seen, st, err, sizeof(err));
    if (l == NULL)
        fail_msg("open: %s", err);
    return l;
}

static void close_log(fixture_t *f, rc_eventlog_t *l)
{
    rc_eventlog_close(l);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    rc_eventlog_free(l);
}

/* Runs the loop until `*done` reaches `want` (at most about 2 s). */
static void run_until(fixture_t *f, const int *done, int want)
{
    for (int i = 0; i < 2000 && *done < want; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (*done < want)
            usleep(1000);
    }
    assert_int_equal(*done, want);
}

static void append_str(rc_eventlog_t *l, const char *s, int *done)
{
    assert_int_equal(rc_eventlog_append(l, s, strlen(s), count_done, done), 0);
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "events-", 7) == 0;
    closedir(d);
    return n;
}

static void first_segment(const char *dir, char *out, size_t len)
{
    snprintf(out, len, "%s/events-%020d.log", dir, 0);
}

static void test_round_trip_each_policy(void **state)
{
    fixture_t *f = *state;
    for (int p = RC_FSYNC_ALWAYS; p <= RC_FSYNC_NEVER; p++) {
        seen_t seen = {0};
        rc_eventlog_stats_t st;
        rc_eventlog_t *l = open_log(f, (rc_fsync_t)p, 1 << 20, 0, &seen, &st);
        assert_int_equal(seen.n, p * 3); /* what the previous rounds appended */
        int done = 0;
        append_str(l, "alpha", &done);
        append_str(l, "beta", &done);
        /* Never inside the call: reported once the loop has written (and synced) them. */
        assert_int_equal(done, 0);
        assert_int_equal(rc_eventlog_pending(l), 2);
        run_until(f, &done, 2);
        assert_int_equal(rc_eventlog_pending(l), 0);
        append_str(l, "gamma", &done);
        close_log(f, l); /* close writes and syncs what is appended */
        assert_int_equal(done, 3);
    }
    seen_t seen = {0};
    rc_eventlog_stats_t st;
    rc_eventlog_t *l = open_log(f, RC_FSYNC_NEVER, 1 << 20, 0, &seen, &st);
    assert_int_equal(seen.n, 9);
    assert_string_equal(seen.rec[0], "alpha");
    assert_string_equal(seen.rec[7], "beta");
    assert_string_equal(seen.rec[8], "gamma");
    assert_int_equal(st.records, 9);
    assert_int_equal(st.torn_bytes, 0);
    assert_int_equal(st.bad_segments, 0);
    int done = 0;
    assert_int_equal(rc_eventlog_append(l, "", 0, count_done, &done), RC_EINVAL);
    close_log(f, l);
    assert_int_equal(rc_eventlog_append(l = open_log(f, RC_FSYNC_NEVER, 1 << 20, 0, &seen, &st),
                                        "x", 1, NULL, NULL),
                     0);
    rc_eventlog_close(l);
    assert_int_equal(rc_eventlog_append(l, "y", 1, NULL, NULL), RC_ECLOSED);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    rc_eventlog_free(l);
}

static void test_torn_tail_is_cut(void **state)
{
    fixture_t *f = *state;
    seen_t seen = {0};
    rc_eventlog_stats_t st;
    rc_eventlog_t *l = open_log(f, RC_FSYNC_ALWAYS, 1 << 20, 0, &seen, &st);
    int done = 0;
    append_str(l, "one", &done);
    append_str(l, "two", &done);
    close_log(f, l);
    /* The process died inside a write: half a record at the end. */
    char path[128];
    first_segment(f->dir, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND);
    static const unsigned char half[] = {40, 0, 0, 0, 1, 2, 3, 4, 't', 'h'};
    assert_int_equal(write(fd, half, sizeof(half)), (int)sizeof(half));
    close(fd);
    l = open_log(f, RC_FSYNC_ALWAYS, 1 << 20, 0, &seen, &st);
    assert_int_equal(seen.n, 2);
    assert_int_equal(st.torn_bytes, sizeof(half));
    append_str(l, "three", &done);
    close_log(f, l);
    memset(&seen, 0, sizeof(seen));
    l = open_log(f, RC_FSYNC_ALWAYS, 1 << 20, 0, &seen, &st);
    assert_int_equal(seen.n, 3); /* the append follows good data */
    assert_string_equal(seen.rec[2], "three");
    assert_int_equal(st.torn_bytes, 0);
    close_log(f, l);
}

static void test_corrupt_record_ends_its_segment(void **state)
{
    fixture_t *f = *state;
    seen_t seen = {0};
    rc_eventlog_stats_t st;
    /* Small segments: every few records a new one. */
    rc_eventlog_t *l = open_log(f, RC_FSYNC_NEVER, 64, 0, &seen, &st);
    int done = 0;
    char rec[32];
    for (int i = 0; i < 12; i++) {
        snprintf(rec, sizeof(rec), "record-%02d-padding", i);
        append_str(l, rec, &done);
        run_until(f, &done, i + 1); /* one write per turn: a segment rolls between turns */
    }
    close_log(f, l);
    int segments = count_segments(f->dir);
    assert_int_gt(segments, 3);
    /* Flip a payload byte of the first record of the first segment. */
    char path[128];
    first_segment(f->dir, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_int_equal(pwrite(fd, "X", 1, 16 + 8 + 3), 1);
    close(fd);
    l = open_log(f, RC_FSYNC_NEVER, 64, 0, &seen, &st);
    assert_int_equal(st.bad_segments, 1);
    assert_int_equal(st.segments, (uint64_t)segments);
    assert_int_lt(seen.n, 12);
    assert_int_gt(seen.n, 12 - 4);
    assert_string_equal(seen.rec[seen.n - 1], "record-11-padding");
    close_log(f, l);
}

static void test_retention_by_size(void **state)
{
    fixture_t *f = *state;
    seen_t seen = {0};
    rc_eventlog_stats_t st;
    rc_eventlog_t *l = open_log(f, RC_FSYNC_NEVER, 64, 200, &seen, &st);
    int done = 0;
    for (int i = 0; i < 30; i++) {
        append_str(l, "0123456789012345678901234567890123456789", &done);
        run_until(f, &done, i + 1);
    }
    close_log(f, l);
    /* Each segment holds one record (16 + 8 + 40 bytes): at most 200 bytes kept. */
    assert_int_lt(count_segments(f->dir), 5);
    memset(&seen, 0, sizeof(seen));
    l = open_log(f, RC_FSYNC_NEVER, 64, 200, &seen, &st);
    assert_int_lt(seen.n, 5);
    assert_int_gt(seen.n, 0);
    assert_int_equal(st.bad_segments, 0);
    close_log(f, l);
}

/* A snapshot covers the records below its number: they are not read back (their segments
 * not even opened), what follows comes with its number, and a log that ends before the
 * snapshot numbers new records after it, in a new segment. sync_now makes appends durable at
 * once, before the snapshot claims them. */
static void test_read_from_a_snapshot(void **state)
{
    fixture_t *f = *state;
    seen_t seen = {0};
    rc_eventlog_stats_t st;
    int done = 0;
    char text[16];
    rc_eventlog_t *l = open_from(f, 0, 0, &seen, &st);
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "r%d", i);
        append_str(l, text, &done);
    }
    assert_int_equal(rc_eventlog_next_record(l), 10);
    assert_int_equal(rc_eventlog_sync_now(l), 0);
    run_until(f, &done, 10);
    close_log(f, l);

    l = open_from(f, 6, 6, &seen, &st);
    assert_int_equal(seen.n, 4);
    assert_string_equal(seen.rec[0], "r6");
    assert_int_equal(seen.numbers[0], 6);
    assert_int_equal(seen.numbers[3], 9);
    assert_int_equal(st.records, 4);
    assert_int_equal(st.skipped_records, 6);
    assert_int_equal(rc_eventlog_next_record(l), 10);
    close_log(f, l);

    memset(&seen, 0, sizeof(seen));
    l = open_from(f, 30, 30, &seen, &st); /* the log lost what the snapshot covers */
    assert_int_equal(seen.n, 0);
    assert_int_equal(rc_eventlog_next_record(l), 30);
    done = 0;
    append_str(l, "after", &done);
    run_until(f, &done, 1);
    close_log(f, l);
    assert_int_equal(count_segments(f->dir), 2);

    memset(&seen, 0, sizeof(seen));
    l = open_from(f, 0, 0, &seen, &st);
    assert_int_equal(seen.n, 11);
    assert_string_equal(seen.rec[10], "after");
    assert_int_equal(seen.numbers[10], 30);
    close_log(f, l);

    /* Read in slices from the snapshot: a segment wholly before it is not to be read, so it
     * is not in the bytes left (a node decides to warm by them). */
    char err[256] = "", path[600];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/events-%020d.log", f->dir, 30);
    assert_int_equal(stat(path, &sb), 0);
    rc_eventlog_config_t cfg = {.dir = f->dir,
                                .fsync = RC_FSYNC_ALWAYS,
                                .segment_bytes = 1 << 20,
                                .read_from = 30,
                                .number_from = 30};
    l = rc_eventlog_start(&f->loop, &f->defer, &cfg, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(rc_eventlog_bytes_left(l), (uint64_t)sb.st_size);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rc_eventlog_read(l, collect, &seen, UINT64_MAX, err, sizeof(err)), 1);
    assert_int_equal(seen.n, 1);
    assert_int_equal(rc_eventlog_read_stats(l)->skipped_records, 30); /* up to the snapshot */
    assert_int_equal(rc_eventlog_bytes_left(l), 0);
    close_log(f, l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_from_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_each_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_record_ends_its_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
