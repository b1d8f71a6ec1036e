/* SPDX-License-Identifier: Apache-2.0 */
/* Assertion helpers for the unit tests that cmocka lacks: ordered comparisons and substring
 * checks that print both sides when they fail, so a failure says what was seen, not only
 * that a condition was false. Include after <cmocka.h>. */
#ifndef RC_TEST_ASSERT_EXT_H
#define RC_TEST_ASSERT_EXT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each operand is evaluated once, into a temporary of `type`, then compared with `op`. */
#define RC_ASSERT_CMP(a, op, b, type, fmt)                                                         \
    do {                                                                                           \
        type rc_a_ = (a), rc_b_ = (b);                                                             \
        if (!(rc_a_ op rc_b_)) {                                                                   \
            print_error("%s " #op " %s failed: " fmt " vs " fmt "\n", #a, #b, rc_a_, rc_b_);       \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_int_lt(a, b) RC_ASSERT_CMP(a, <, b, long long, "%lld")
#define assert_int_le(a, b) RC_ASSERT_CMP(a, <=, b, long long, "%lld")
#define assert_int_gt(a, b) RC_ASSERT_CMP(a, >, b, long long, "%lld")
#define assert_int_ge(a, b) RC_ASSERT_CMP(a, >=, b, long long, "%lld")
#define assert_dbl_lt(a, b) RC_ASSERT_CMP(a, <, b, double, "%.9g")
#define assert_dbl_le(a, b) RC_ASSERT_CMP(a, <=, b, double, "%.9g")
#define assert_dbl_gt(a, b) RC_ASSERT_CMP(a, >, b, double, "%.9g")
#define assert_dbl_ge(a, b) RC_ASSERT_CMP(a, >=, b, double, "%.9g")

/* `haystack` contains `needle` (both NUL-terminated). */
#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *rc_h_ = (haystack), *rc_n_ = (needle);                                         \
        if (rc_h_ == NULL || strstr(rc_h_, rc_n_) == NULL) {                                       \
            print_error("expected \"%s\" to contain \"%s\"\n", rc_h_ ? rc_h_ : "(null)", rc_n_);   \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Writes `text` to a new temporary file whose name ends in `suffix` and stores its path in
 * `path` (at least 64 bytes). The caller unlinks it. */
static inline void rc_test_write_temp(char *path, size_t pathlen, const char *suffix,
                                      const char *text)
{
    snprintf(path, pathlen, "/tmp/rankcast-test-XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) {
        print_error("mkstemps(%s) failed\n", path);
        fail();
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        print_error("short write to %s\n", path);
        fail();
    }
    close(fd);
}

#endif
