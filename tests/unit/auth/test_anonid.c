/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of signed anonymous ids (anonid.h): issued ids have the documented form and
 * verify under their key, and every other id is refused: made up, old-style, tampered with in
 * any digit, signed by another key; a previous key verifies only while it is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "auth/anonid.h"

#include <string.h>

#define SECRET_A "0123456789abcdef0123456789abcdef-key-a"
#define SECRET_B "0123456789abcdef0123456789abcdef-key-b"

static void test_issued_ids_have_the_form_and_verify(void **state)
{
    (void)state;
    rc_anonid_keys_t k;
    rc_anonid_keys_init(&k, SECRET_A, strlen(SECRET_A), NULL, 0);
    char a[RC_ANONID_LEN + 1], b[RC_ANONID_LEN + 1];
    assert_int_equal(rc_anonid_issue(&k, a), 0);
    assert_int_equal(rc_anonid_issue(&k, b), 0);
    assert_int_equal(strlen(a), RC_ANONID_LEN);
    assert_true(RC_ANONID_LEN <= 64); /* a protocol id */
    assert_memory_equal(a, "anon-", 5);
    assert_int_equal(a[5 + RC_ANONID_RANDOM_HEX], '.');
    assert_string_not_equal(a, b); /* random parts differ */
    assert_int_equal(rc_anonid_verify(&k, a, strlen(a)), RC_ANONID_OK);
    assert_int_equal(rc_anonid_verify(&k, b, strlen(b)), RC_ANONID_OK);
    assert_string_equal(rc_anonid_verdict_name(RC_ANONID_OK), "ok");
}

static void test_made_up_and_old_style_ids_are_unsigned(void **state)
{
    (void)state;
    rc_anonid_keys_t k;
    rc_anonid_keys_init(&k, SECRET_A, strlen(SECRET_A), NULL, 0);
    const char *ids[] = {
        "alice",
        "anon-0123456789abcdef", /* what servers issued before ids were signed */
        "anon-0123456789abcdef01234567.0123456789abcdef0123456789abcde",   /* one short */
        "anon-0123456789abcdef01234567.0123456789abcdef0123456789abcdef0", /* one long */
        "anon-0123456789ABCDEF01234567.0123456789abcdef0123456789abcdef",  /* upper case */
        "anon-0123456789abcdef01234567-0123456789abcdef0123456789abcdef",  /* separator */
        "Anon-0123456789abcdef01234567.0123456789abcdef0123456789abcdef",
        "",
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_int_equal(rc_anonid_verify(&k, ids[i], strlen(ids[i])), RC_ANONID_UNSIGNED);
}

static void test_any_changed_digit_or_other_key_is_refused(void **state)
{
    (void)state;
    rc_anonid_keys_t k, other;
    rc_anonid_keys_init(&k, SECRET_A, strlen(SECRET_A), NULL, 0);
    rc_anonid_keys_init(&other, SECRET_B, strlen(SECRET_B), NULL, 0);
    char id[RC_ANONID_LEN + 1];
    assert_int_equal(rc_anonid_issue(&k, id), 0);
    for (size_t i = 5; i < RC_ANONID_LEN; i++) {
        if (id[i] == '.')
            continue;
        char forged[RC_ANONID_LEN + 1];
        memcpy(forged, id, sizeof(forged));
        forged[i] = forged[i] == '0' ? '1' : '0';
        assert_int_equal(rc_anonid_verify(&k, forged, RC_ANONID_LEN), RC_ANONID_BAD_TAG);
    }
    assert_int_equal(rc_anonid_verify(&other, id, RC_ANONID_LEN), RC_ANONID_BAD_TAG);
    /* The same secret gives the same key: a restart that keeps it knows its ids. */
    rc_anonid_keys_t again;
    rc_anonid_keys_init(&again, SECRET_A, strlen(SECRET_A), NULL, 0);
    assert_int_equal(rc_anonid_verify(&again, id, RC_ANONID_LEN), RC_ANONID_OK);
}

static void test_a_previous_key_verifies_during_a_rotation(void **state)
{
    (void)state;
    rc_anonid_keys_t old, rotated, retired;
    rc_anonid_keys_init(&old, SECRET_A, strlen(SECRET_A), NULL, 0);
    rc_anonid_keys_init(&rotated, SECRET_B, strlen(SECRET_B), SECRET_A, strlen(SECRET_A));
    rc_anonid_keys_init(&retired, SECRET_B, strlen(SECRET_B), NULL, 0);
    char id_old[RC_ANONID_LEN + 1], id_new[RC_ANONID_LEN + 1];
    assert_int_equal(rc_anonid_issue(&old, id_old), 0);
    assert_int_equal(rc_anonid_issue(&rotated, id_new), 0);
    assert_int_equal(rc_anonid_verify(&rotated, id_old, RC_ANONID_LEN), RC_ANONID_OK_PREVIOUS);
    assert_int_equal(rc_anonid_verify(&rotated, id_new, RC_ANONID_LEN), RC_ANONID_OK);
    assert_int_equal(rc_anonid_verify(&retired, id_old, RC_ANONID_LEN), RC_ANONID_BAD_TAG);
    assert_int_equal(rc_anonid_verify(&retired, id_new, RC_ANONID_LEN), RC_ANONID_OK);
    /* New ids are signed by the current key only. */
    assert_int_equal(rc_anonid_verify(&old, id_new, RC_ANONID_LEN), RC_ANONID_BAD_TAG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issued_ids_have_the_form_and_verify),
        cmocka_unit_test(test_made_up_and_old_style_ids_are_unsigned),
        cmocka_unit_test(test_any_changed_digit_or_other_key_is_refused),
        cmocka_unit_test(test_a_previous_key_verifies_during_a_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
