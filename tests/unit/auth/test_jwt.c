/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of JWT verification (jwt.h): tokens signed here with keys generated for the
 * run (HS256, RS256, ES256), then every way a token must be refused: tampering, alg
 * confusion and "none", time claims, issuer, audience, subject, and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "auth/jwt.h"
#include "jwt_sign.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW    1800000000
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

static EVP_PKEY *rsa_key, *ec_key;
static char rsa_pem[64], ec_pem[64];

static char *make_token(const char *alg, const char *header, const char *claims)
{
    return jwt_sign(alg, SECRET, strcmp(alg, "RS256") == 0 ? rsa_key : ec_key, header, claims);
}

static char *token(const char *alg, const char *claims)
{
    char header[64];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return make_token(alg, header, claims);
}

static void write_pubkey(EVP_PKEY *k, char *path)
{
    strcpy(path, "/tmp/rc-jwt-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
}

static int setup_keys(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (rsa_key == NULL || ec_key == NULL)
        return -1;
    write_pubkey(rsa_key, rsa_pem);
    write_pubkey(ec_key, ec_pem);
    return 0;
}

static int teardown_keys(void **state)
{
    (void)state;
    unlink(rsa_pem);
    unlink(ec_pem);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

static rc_jwt_verifier_t *verifier(const char *secret, const char *pem, const char *iss,
                                   const char *aud)
{
    char err[256] = "";
    rc_jwt_config_t cfg = {secret, pem, iss, aud, 30};
    rc_jwt_verifier_t *v = rc_jwt_verifier_new(&cfg, err, sizeof(err));
    if (v == NULL)
        print_error("verifier: %s\n", err);
    assert_non_null(v);
    return v;
}

static rc_jwt_reason_t check(const rc_jwt_verifier_t *v, const char *tok, rc_jwt_claims_t *c)
{
    return rc_jwt_verify(v, tok, strlen(tok), NOW, c);
}

#define CLAIMS "{\"sub\":\"u42\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":\"shop\"}"

static void test_each_algorithm_verifies_and_yields_the_subject(void **state)
{
    (void)state;
    const char *algs[] = {"HS256", "RS256", "ES256"};
    rc_jwt_verifier_t *vs[] = {verifier(SECRET, NULL, "idp", "shop"),
                               verifier(NULL, rsa_pem, "idp", "shop"),
                               verifier(NULL, ec_pem, "idp", "shop")};
    for (int i = 0; i < 3; i++) {
        rc_jwt_claims_t c = {0};
        assert_int_equal(check(vs[i], token(algs[i], CLAIMS), &c), RC_JWT_OK);
        assert_string_equal(c.sub, "u42");
        assert_int_equal(c.sub_len, 3);
        assert_int_equal(c.exp_s, 1800000600);
        rc_jwt_verifier_free(vs[i]);
    }
}

static void test_tampering_breaks_the_signature(void **state)
{
    (void)state;
    const char *algs[] = {"HS256", "RS256", "ES256"};
    rc_jwt_verifier_t *vs[] = {verifier(SECRET, NULL, NULL, NULL),
                               verifier(NULL, rsa_pem, NULL, NULL),
                               verifier(NULL, ec_pem, NULL, NULL)};
    for (int i = 0; i < 3; i++) {
        rc_jwt_claims_t c;
        char tok[8192];
        strcpy(tok, token(algs[i], CLAIMS));
        /* Another subject under the same signature. */
        char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
        char forged[8192], payload[512];
        const char *evil = "{\"sub\":\"admin\",\"exp\":1800000600}";
        size_t n = jwt_b64url((const unsigned char *)evil, strlen(evil), payload);
        snprintf(forged, sizeof(forged), "%.*s.%.*s%s", (int)(dot1 - tok), tok, (int)n, payload,
                 dot2);
        assert_int_equal(check(vs[i], forged, &c), RC_JWT_BAD_SIGNATURE);
        /* One character inside the signature changed. */
        char *flip = strrchr(tok, '.') + 5;
        *flip = *flip == 'A' ? 'B' : 'A';
        assert_int_equal(check(vs[i], tok, &c), RC_JWT_BAD_SIGNATURE);
        rc_jwt_verifier_free(vs[i]);
    }
}

/* The key decides the algorithm: an RS256 public key (known to everyone) used as an HS256
 * secret must not verify, and neither must "none" or an algorithm without a key. */
static void test_alg_is_decided_by_the_key_not_the_token(void **state)
{
    (void)state;
    rc_jwt_claims_t c;
    rc_jwt_verifier_t *rsa = verifier(NULL, rsa_pem, NULL, NULL);
    rc_jwt_verifier_t *hs = verifier(SECRET, NULL, NULL, NULL);
    assert_int_equal(check(rsa, token("HS256", CLAIMS), &c), RC_JWT_BAD_ALG);
    assert_int_equal(check(rsa, token("ES256", CLAIMS), &c), RC_JWT_BAD_ALG);
    assert_int_equal(check(hs, token("RS256", CLAIMS), &c), RC_JWT_BAD_ALG);
    /* "none" with an empty signature, and with a signature part copied from a valid one. */
    char tok[8192];
    strcpy(tok, token("none", CLAIMS));
    assert_int_equal(check(hs, tok, &c), RC_JWT_MALFORMED);
    char *good = token("HS256", CLAIMS);
    char *sig = strrchr(good, '.');
    strcat(tok, sig + 1);
    assert_int_equal(check(hs, tok, &c), RC_JWT_BAD_ALG);
    assert_int_equal(
        check(hs, make_token("HS256", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", CLAIMS), &c),
        RC_JWT_BAD_ALG);
    rc_jwt_verifier_free(rsa);
    rc_jwt_verifier_free(hs);
}

static void test_time_claims_with_leeway(void **state)
{
    (void)state;
    rc_jwt_claims_t c;
    rc_jwt_verifier_t *v = verifier(SECRET, NULL, NULL, NULL);
    /* Leeway is 30 s: expired 29 s ago still passes, 30 s ago does not. */
    assert_int_equal(check(v, token("HS256", "{\"sub\":\"u\",\"exp\":1799999971}"), &c), RC_JWT_OK);
    assert_int_equal(check(v, token("HS256", "{\"sub\":\"u\",\"exp\":1799999970}"), &c),
                     RC_JWT_EXPIRED);
    /* Without a usable exp the token is not expired but unacceptable: a fresh one from the
     * same issuer would be no better (4010, not 4011). */
    assert_int_equal(check(v, token("HS256", "{\"sub\":\"u\"}"), &c), RC_JWT_NO_EXPIRY);
    assert_int_equal(check(v, token("HS256", "{\"sub\":\"u\",\"exp\":\"tomorrow\"}"), &c),
                     RC_JWT_NO_EXPIRY);
    assert_int_equal(
        check(v, token("HS256", "{\"sub\":\"u\",\"exp\":1800000600,\"nbf\":1800000031}"), &c),
        RC_JWT_NOT_YET_VALID);
    assert_int_equal(
        check(v, token("HS256", "{\"sub\":\"u\",\"exp\":1800000600,\"nbf\":1800000030}"), &c),
        RC_JWT_OK);
    assert_int_equal(check(v, token("HS256", "{\"sub\":\"u\",\"exp\":1800000600.5}"), &c),
                     RC_JWT_OK);
    rc_jwt_verifier_free(v);
}

static void test_issuer_audience_and_subject(void **state)
{
    (void)state;
    rc_jwt_claims_t c;
    rc_jwt_verifier_t *v = verifier(SECRET, NULL, "idp", "shop");
    assert_int_equal(
        check(
            v,
            token("HS256", "{\"sub\":\"u\",\"exp\":1800000600,\"iss\":\"evil\",\"aud\":\"shop\"}"),
            &c),
        RC_JWT_BAD_ISSUER);
    assert_int_equal(
        check(v, token("HS256", "{\"sub\":\"u\",\"exp\":1800000600,\"aud\":\"shop\"}"), &c),
        RC_JWT_BAD_ISSUER);
    assert_int_equal(
        check(v,
              token("HS256", "{\"sub\":\"u\",\"exp\":1800000600,\"iss\":\"idp\",\"aud\":\"blog\"}"),
              &c),
        RC_JWT_BAD_AUDIENCE);
    assert_int_equal(check(v,
                           token("HS256", "{\"sub\":\"u\",\"exp\":1800000600,\"iss\":\"idp\","
                                          "\"aud\":[\"blog\",\"shop\"]}"),
                           &c),
                     RC_JWT_OK);
    assert_int_equal(
        check(v, token("HS256", "{\"exp\":1800000600,\"iss\":\"idp\",\"aud\":\"shop\"}"), &c),
        RC_JWT_BAD_SUBJECT);
    assert_int_equal(check(v,
                           token("HS256", "{\"sub\":\"has space\",\"exp\":1800000600,\"iss\":"
                                          "\"idp\",\"aud\":\"shop\"}"),
                           &c),
                     RC_JWT_BAD_SUBJECT);
    /* Two "sub" claims: which one would the server believe? Neither. */
    assert_int_equal(check(v,
                           token("HS256", "{\"sub\":\"u\",\"sub\":\"admin\",\"exp\":1800000600,"
                                          "\"iss\":\"idp\",\"aud\":\"shop\"}"),
                           &c),
                     RC_JWT_MALFORMED);
    rc_jwt_verifier_free(v);
}

static void test_malformed_input_is_refused(void **state)
{
    (void)state;
    rc_jwt_claims_t c;
    rc_jwt_verifier_t *v = verifier(SECRET, NULL, NULL, NULL);
    const char *bad[] = {"",
                         ".",
                         "..",
                         "a.b.c",
                         "a.b",
                         "a.b.c.d",
                         "e30.e30.",
                         "!!!.e30.AAAA",
                         "e30=.e30.AAAA",
                         "W10.e30.AAAA" /* header is an array */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(check(v, bad[i], &c), RC_JWT_MALFORMED);
    char *big = malloc(RC_JWT_MAX_LEN + 2);
    memset(big, 'A', RC_JWT_MAX_LEN + 1);
    big[10] = big[20] = '.';
    big[RC_JWT_MAX_LEN + 1] = '\0';
    assert_int_equal(check(v, big, &c), RC_JWT_MALFORMED);
    free(big);
    /* Not NUL-terminated: the length bounds the read. */
    char *tok = token("HS256", CLAIMS);
    rc_jwt_reason_t r = rc_jwt_verify(v, tok, strlen(tok) - 1, NOW, &c);
    assert_true(r == RC_JWT_MALFORMED || r == RC_JWT_BAD_SIGNATURE);
    rc_jwt_verifier_free(v);
}

static void test_weak_or_wrong_keys_are_refused_at_start(void **state)
{
    (void)state;
    char err[256];
    rc_jwt_config_t none = {NULL, NULL, NULL, NULL, 0};
    assert_null(rc_jwt_verifier_new(&none, err, sizeof(err)));
    rc_jwt_config_t shortsecret = {"too-short", NULL, NULL, NULL, 0};
    assert_null(rc_jwt_verifier_new(&shortsecret, err, sizeof(err)));
    assert_non_null(strstr(err, "32 bytes"));
    rc_jwt_config_t missing = {NULL, "/nonexistent/key.pem", NULL, NULL, 0};
    assert_null(rc_jwt_verifier_new(&missing, err, sizeof(err)));
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char path[64];
    write_pubkey(small, path);
    rc_jwt_config_t weak = {NULL, path, NULL, NULL, 0};
    assert_null(rc_jwt_verifier_new(&weak, err, sizeof(err)));
    assert_non_null(strstr(err, "2048"));
    unlink(path);
    EVP_PKEY_free(small);
    assert_string_equal(rc_jwt_reason_name(RC_JWT_EXPIRED), "expired");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_algorithm_verifies_and_yields_the_subject),
        cmocka_unit_test(test_tampering_breaks_the_signature),
        cmocka_unit_test(test_alg_is_decided_by_the_key_not_the_token),
        cmocka_unit_test(test_time_claims_with_leeway),
        cmocka_unit_test(test_issuer_audience_and_subject),
        cmocka_unit_test(test_malformed_input_is_refused),
        cmocka_unit_test(test_weak_or_wrong_keys_are_refused_at_start),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
