/* SPDX-License-Identifier: Apache-2.0 */
/* The random source of the client library (event ids, backoff jitter), built once per source
 * this platform has (getrandom, arc4random, getentropy: see RCC_RANDOM in CMakeLists.txt):
 * the one configured is the one used, and its bytes look random (every byte value appears,
 * the mean is near 127.5, no two 32-byte draws are equal). */
#include "util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void the_configured_source_is_used(void **state)
{
    (void)state;
    assert_string_equal(rcc_random_source(), RCCT_EXPECT_SOURCE);
}

static void bytes_look_random(void **state)
{
    (void)state;
    enum { DRAWS = 2000, LEN = 32 };
    static unsigned char draws[DRAWS][LEN];
    unsigned counts[256] = {0};
    double sum = 0;
    for (int i = 0; i < DRAWS; i++) {
        memset(draws[i], 0, LEN);
        rcc_random_bytes(draws[i], LEN);
        for (int j = 0; j < LEN; j++) {
            counts[draws[i][j]]++;
            sum += draws[i][j];
        }
    }
    for (int v = 0; v < 256; v++)
        assert_true(counts[v] > 0); /* 64,000 bytes: each value expected 250 times */
    double mean = sum / (DRAWS * LEN);
    assert_true(mean > 125.0 && mean < 130.0);
    for (int i = 1; i < DRAWS; i++)
        assert_memory_not_equal(draws[i], draws[i - 1], LEN);
    /* More than getentropy()'s 256-byte limit in one call. */
    static unsigned char big[4096];
    rcc_random_bytes(big, sizeof(big));
    unsigned zeros = 0;
    for (size_t i = 0; i < sizeof(big); i++)
        zeros += big[i] == 0;
    assert_true(zeros < 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_configured_source_is_used),
        cmocka_unit_test(bytes_look_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
