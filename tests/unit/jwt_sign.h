/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper: signs JWTs the way an identity provider would (HS256 with a secret, RS256 and
 * ES256 with a private key), so the tests exercise verification against independent tokens. */
#ifndef RC_TEST_JWT_SIGN_H
#define RC_TEST_JWT_SIGN_H

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <string.h>

static inline size_t jwt_b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Returns `header`.`claims`.signature in a static buffer (valid until the next call).
 * `alg` "HS256" uses `secret`; "RS256"/"ES256" use `key`; "none" signs nothing. */
static inline char *jwt_sign(const char *alg, const char *secret, EVP_PKEY *key, const char *header,
                             const char *claims)
{
    static char tok[8192];
    unsigned char sig[512];
    size_t sig_len = sizeof(sig);
    size_t n = jwt_b64url((const unsigned char *)header, strlen(header), tok);
    tok[n++] = '.';
    n += jwt_b64url((const unsigned char *)claims, strlen(claims), tok + n);
    if (strcmp(alg, "HS256") == 0) {
        unsigned int l = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)tok, n, sig, &l);
        sig_len = l;
    } else if (strcmp(alg, "none") == 0) {
        sig_len = 0;
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(md, sig, &sig_len, (unsigned char *)tok, n) != 1)
            sig_len = 0;
        EVP_MD_CTX_free(md);
        if (strcmp(alg, "ES256") == 0 && sig_len > 0) { /* DER -> r || s (RFC 7518 3.4) */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sig_len = 64;
        }
    }
    tok[n++] = '.';
    jwt_b64url(sig, sig_len, tok + n);
    return tok;
}

#endif
