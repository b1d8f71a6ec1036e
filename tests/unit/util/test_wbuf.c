/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the growable write buffer (util/wbuf.h): appends of every kind keep their
 * bytes across growth, headroom stays reserved in front of the data, reset keeps the memory,
 * printf appends exactly what it formats, and an allocation failure is sticky until reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "util/error.h"
#include "util/wbuf.h"

#include <stdio.h>
#include <string.h>

/* The failure test asks for more memory than any machine has; under AddressSanitizer such a
 * request aborts the program unless the allocator is told to return NULL, as libc does. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

/* The byte at offset `i` of the patterned stream the tests append. */
static char pattern_at(size_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

static void assert_pattern(const rc_wbuf_t *b, size_t from, size_t len)
{
    const char *d = rc_wbuf_data(b);
    for (size_t i = 0; i < len; i++) {
        if (d[i] != pattern_at(from + i)) {
            print_error("byte %zu: '%c', expected '%c'\n", i, d[i], pattern_at(from + i));
            fail();
        }
    }
}

static void test_empty_buffer(void **state)
{
    (void)state;
    rc_wbuf_t b;
    rc_wbuf_init(&b, 16);
    assert_null(rc_wbuf_data(&b));
    assert_int_equal(b.len, 0);
    assert_int_equal(rc_wbuf_ok(&b), 0);
    rc_wbuf_put(&b, "x", 0); /* nothing to append: still no allocation */
    assert_null(rc_wbuf_data(&b));
    rc_wbuf_free(&b);
    rc_wbuf_free(&b); /* freed twice: the buffer was left initialised */
    rc_wbuf_free(NULL);
}

/* Pieces of every size through every append function, growing the buffer from nothing past
 * 100 kB: the bytes come out in order, and the capacity grows by doubling, not piece by piece
 * (it never holds more than twice what it needs). */
static void test_appends_survive_growth(void **state)
{
    (void)state;
    rc_wbuf_t b;
    char piece[128];
    size_t written = 0;
    rc_wbuf_init(&b, 0);
    for (int round = 0; written < 100000; round++) {
        size_t n = (size_t)(round * 13) % sizeof(piece);
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern_at(written + i);
        switch (round % 3) {
        case 0:
            rc_wbuf_put(&b, piece, n);
            break;
        case 1:
            piece[n] = '\0';
            rc_wbuf_puts(&b, piece);
            break;
        default:
            for (size_t i = 0; i < n; i++)
                rc_wbuf_putc(&b, piece[i]);
        }
        written += n;
        assert_int_equal(b.len, written);
        assert_int_ge(b.cap, b.len);
    }
    assert_int_equal(rc_wbuf_ok(&b), 0);
    assert_pattern(&b, 0, written);
    assert_int_le(b.cap, 2 * written);

    /* One append far larger than the buffer grows it in one go. */
    rc_wbuf_t big;
    static char block[300000];
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = pattern_at(i);
    rc_wbuf_init(&big, 0);
    rc_wbuf_put(&big, block, sizeof(block));
    assert_int_equal(big.len, sizeof(block));
    assert_int_equal(rc_wbuf_ok(&big), 0);
    assert_pattern(&big, 0, sizeof(block));
    rc_wbuf_free(&big);
    rc_wbuf_free(&b);
}

/* The headroom (libwebsockets' LWS_PRE) stays in front of the data through every growth, and
 * a frame header written into it leaves the data alone; the sanitizer build also checks that
 * the allocation holds headroom and data both. */
static void test_headroom_in_front(void **state)
{
    (void)state;
    enum { HEADROOM = 16 };
    rc_wbuf_t b;
    rc_wbuf_init(&b, HEADROOM);
    for (size_t i = 0; i < 5000; i++) {
        rc_wbuf_putc(&b, pattern_at(i));
        char *d = rc_wbuf_data(&b);
        assert_ptr_equal(d, b.base + HEADROOM);
        if (b.len == b.cap) { /* full: the last data byte ends the allocation */
            memset(d - HEADROOM, 0xAA, HEADROOM);
            assert_int_equal(d[b.len - 1], pattern_at(i));
        }
    }
    assert_pattern(&b, 0, b.len);
    rc_wbuf_free(&b);
    assert_null(rc_wbuf_data(&b));
    rc_wbuf_putc(&b, 'z'); /* freed, it is empty with the same headroom */
    assert_ptr_equal(rc_wbuf_data(&b), b.base + HEADROOM);
    assert_int_equal(rc_wbuf_data(&b)[0], 'z');
    rc_wbuf_free(&b);
}

static void test_reset_keeps_memory(void **state)
{
    (void)state;
    rc_wbuf_t b;
    rc_wbuf_init(&b, 4);
    rc_wbuf_puts(&b, "first contents");
    char *base = b.base;
    size_t cap = b.cap;
    rc_wbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.base, base);
    assert_int_equal(b.cap, cap);
    rc_wbuf_puts(&b, "next");
    assert_int_equal(b.len, 4);
    assert_memory_equal(rc_wbuf_data(&b), "next", 4);
    rc_wbuf_free(&b);
}

/* A writer that fills the bytes itself: reserve, write after the data, then set len. */
static void test_reserve_for_a_writer(void **state)
{
    (void)state;
    rc_wbuf_t b;
    rc_wbuf_init(&b, 8);
    rc_wbuf_puts(&b, "head:");
    rc_wbuf_reserve(&b, 1000);
    assert_int_equal(rc_wbuf_ok(&b), 0);
    assert_int_ge(b.cap - b.len, 1000);
    memset(rc_wbuf_data(&b) + b.len, 'q', 1000);
    b.len += 1000;
    rc_wbuf_reserve(&b, 0);
    assert_int_equal(b.len, 1005);
    assert_memory_equal(rc_wbuf_data(&b), "head:qqq", 8);
    assert_int_equal(rc_wbuf_data(&b)[1004], 'q');
    rc_wbuf_free(&b);
}

/* printf appends exactly what it formats (its terminating NUL is not data), also when the
 * text ends exactly at the capacity and when it is longer than the whole buffer. */
static void test_printf_appends(void **state)
{
    (void)state;
    rc_wbuf_t b;
    char want[1200];
    rc_wbuf_init(&b, 0);
    rc_wbuf_puts(&b, "n=");
    rc_wbuf_printf(&b, "%d,%s,%.2f", -42, "x", 1.5);
    rc_wbuf_printf(&b, "%s", "");
    assert_int_equal(b.len, strlen("n=-42,x,1.50"));
    assert_memory_equal(rc_wbuf_data(&b), "n=-42,x,1.50", b.len);

    /* Text that fills the buffer to its last byte: the NUL needs one more, so it grows. */
    size_t room = b.cap - b.len;
    rc_wbuf_printf(&b, "%0*d", (int)room, 7);
    assert_int_equal(b.len, 12 + room);
    assert_int_equal(rc_wbuf_data(&b)[b.len - 1], '7');
    assert_int_equal(rc_wbuf_data(&b)[12], '0');

    rc_wbuf_reset(&b);
    memset(want, 'w', sizeof(want) - 1);
    want[sizeof(want) - 1] = '\0';
    rc_wbuf_printf(&b, "[%s]", want);
    assert_int_equal(b.len, sizeof(want) + 1);
    assert_int_equal(rc_wbuf_data(&b)[0], '[');
    assert_memory_equal(rc_wbuf_data(&b) + 1, want, sizeof(want) - 1);
    assert_int_equal(rc_wbuf_data(&b)[b.len - 1], ']');
    assert_int_equal(rc_wbuf_ok(&b), 0);
    rc_wbuf_free(&b);
}

/* A failed allocation is reported once, at the end, by rc_wbuf_ok(): later appends that
 * succeed do not clear it, only a reset does. */
static void test_failure_is_sticky(void **state)
{
    (void)state;
    rc_wbuf_t b;
    rc_wbuf_init(&b, 0);
    rc_wbuf_puts(&b, "before");
    assert_int_equal(rc_wbuf_ok(&b), 0);
    rc_wbuf_reserve(&b, SIZE_MAX / 4); /* no machine has this much */
    assert_int_equal(rc_wbuf_ok(&b), RC_ENOMEM);
    rc_wbuf_putc(&b, '.');
    rc_wbuf_puts(&b, "after");
    rc_wbuf_printf(&b, "%d", 1);
    assert_int_equal(rc_wbuf_ok(&b), RC_ENOMEM);

    rc_wbuf_reset(&b);
    assert_int_equal(rc_wbuf_ok(&b), 0);
    rc_wbuf_puts(&b, "again");
    assert_int_equal(rc_wbuf_ok(&b), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(rc_wbuf_data(&b), "again", 5);
    rc_wbuf_free(&b);
}

/* A size no buffer can hold fails at once: the sum with what is there must not wrap to a
 * small number that seems to fit, nor the doubling go on forever. */
static void test_sizes_that_would_wrap_fail(void **state)
{
    (void)state;
    rc_wbuf_t b;
    rc_wbuf_init(&b, 16);
    rc_wbuf_puts(&b, "before");
    rc_wbuf_reserve(&b, SIZE_MAX - 2); /* len + extra wraps to 3 */
    assert_int_equal(rc_wbuf_ok(&b), RC_ENOMEM);
    rc_wbuf_reset(&b);
    rc_wbuf_reserve(&b, SIZE_MAX / 2 + 1); /* fits size_t, but doubling to it would wrap */
    assert_int_equal(rc_wbuf_ok(&b), RC_ENOMEM);
    rc_wbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_buffer),
        cmocka_unit_test(test_appends_survive_growth),
        cmocka_unit_test(test_headroom_in_front),
        cmocka_unit_test(test_reset_keeps_memory),
        cmocka_unit_test(test_reserve_for_a_writer),
        cmocka_unit_test(test_printf_appends),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_sizes_that_would_wrap_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
