/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of snapshot files (snapshot.h), in a real directory: the newest comes back
 * whole; only the two newest are kept; a corrupt, truncated or foreign-version newest one is
 * refused and the older one read; a body the caller refuses makes the older one read too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "log/snapshot.h"
#include "util/error.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rc-snap-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void write_body(uint64_t covers, const char *body)
{
    char err[200];
    assert_int_equal(rc_snapshot_write(dir, covers, body, strlen(body), err, sizeof(err)), 0);
}

static void assert_newest(uint64_t covers, const char *body)
{
    rc_snapshot_t s;
    char err[200];
    assert_int_equal(rc_snapshot_read_newest(dir, NULL, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(s.covers, covers);
    assert_int_equal(s.len, strlen(body));
    assert_memory_equal(s.body, body, s.len);
    free(s.body);
}

static int count_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Flips one byte of the file of `covers` at `offset` (from its start). */
static void flip(uint64_t covers, long offset)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/snapshot-%020llu.snap", dir, (unsigned long long)covers);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, offset, SEEK_SET);
    int c = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(c ^ 0xff, f);
    fclose(f);
}

static void test_newest_kept_and_read(void **state)
{
    (void)state;
    rc_snapshot_t s;
    char err[200];
    assert_int_equal(rc_snapshot_read_newest(dir, NULL, NULL, &s, err, sizeof(err)), RC_ENOENT);
    write_body(10, "first");
    write_body(20, "second");
    write_body(30, "third");
    assert_int_equal(count_files(), RC_SNAPSHOTS_KEPT);
    assert_newest(30, "third");
}

static void test_bad_newest_falls_back(void **state)
{
    (void)state;
    write_body(10, "older");
    write_body(20, "newer");
    flip(20, 34); /* the body: CRC mismatch */
    assert_newest(10, "older");
    flip(20, 34);
    assert_newest(20, "newer");
    flip(20, 8); /* the version */
    assert_newest(10, "older");
}

static bool refuse_newer(void *ctx, const rc_snapshot_t *snap)
{
    (void)ctx;
    return snap->covers < 20;
}

static void test_caller_refuses(void **state)
{
    (void)state;
    rc_snapshot_t s;
    char err[200];
    write_body(10, "usable");
    write_body(20, "not for this build");
    assert_int_equal(rc_snapshot_read_newest(dir, refuse_newer, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(s.covers, 10);
    free(s.body);
}

static void test_truncated_is_refused(void **state)
{
    (void)state;
    char path[128];
    rc_snapshot_t s;
    char err[200];
    write_body(10, "a body that gets cut");
    snprintf(path, sizeof(path), "%s/snapshot-%020d.snap", dir, 10);
    assert_int_equal(truncate(path, 40), 0);
    assert_int_equal(rc_snapshot_read_newest(dir, NULL, NULL, &s, err, sizeof(err)), RC_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_newest_kept_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_newest_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
