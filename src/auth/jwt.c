/* SPDX-License-Identifier: Apache-2.0 */
/* JWT verification on OpenSSL's EVP interface. The algorithm is fixed by the configured key,
 * never chosen by the token: a token's "alg" must name the algorithm of a key the server
 * holds, so an RS256 public key can never be used as an HS256 secret ("alg confusion") and
 * "none" is refused. Duplicate JSON keys are refused too (which "exp" would count?). */
#include "auth/jwt.h"
#include "proto/proto.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(RC_JWT_SUB_MAX == RC_ID_MAX, "the subject is a user id");

typedef enum { KEY_NONE, KEY_RSA, KEY_P256 } key_kind_t;

struct rc_jwt_verifier {
    unsigned char *secret; /* HS256, or NULL */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 or ES256, or NULL */
    key_kind_t kind;
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    int64_t leeway_s;
};

static const char *const reason_names[RC_JWT_REASON_COUNT] = {
    "ok",         "malformed",    "bad_alg",     "bad_signature", "expired", "not_yet_valid",
    "bad_issuer", "bad_audience", "bad_subject", "no_expiry",
};

const char *rc_jwt_reason_name(rc_jwt_reason_t r)
{
    return (unsigned)r < RC_JWT_REASON_COUNT ? reason_names[r] : "unknown";
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static int load_public_key(rc_jwt_verifier_t *v, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open JWT public key '%s'", path);
        return -1;
    }
    v->pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (v->pkey == NULL) {
        snprintf(err, errlen, "'%s' is not a PEM public key", path);
        return -1;
    }
    if (EVP_PKEY_is_a(v->pkey, "RSA")) {
        /* Below 2048 bits RSA signatures are forgeable with public means. */
        if (EVP_PKEY_get_bits(v->pkey) < 2048) {
            snprintf(err, errlen, "JWT RSA key '%s' is shorter than 2048 bits", path);
            return -1;
        }
        v->kind = KEY_RSA;
        return 0;
    }
    char group[64] = "";
    if (EVP_PKEY_is_a(v->pkey, "EC") &&
        EVP_PKEY_get_group_name(v->pkey, group, sizeof(group), NULL) == 1 &&
        strcmp(group, "prime256v1") == 0) {
        v->kind = KEY_P256;
        return 0;
    }
    snprintf(err, errlen, "JWT key '%s' is neither RSA (RS256) nor EC P-256 (ES256)", path);
    return -1;
}

rc_jwt_verifier_t *rc_jwt_verifier_new(const rc_jwt_config_t *cfg, char *err, size_t errlen)
{
    bool has_secret = cfg->hs256_secret != NULL && cfg->hs256_secret[0] != '\0';
    bool has_key = cfg->public_key_pem != NULL && cfg->public_key_pem[0] != '\0';
    if (!has_secret && !has_key) {
        snprintf(err, errlen, "no JWT secret or public key configured");
        return NULL;
    }
    rc_jwt_verifier_t *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    v->leeway_s = cfg->leeway_s;
    v->issuer = dup_or_null(cfg->issuer);
    v->audience = dup_or_null(cfg->audience);
    if (has_secret) {
        v->secret_len = strlen(cfg->hs256_secret);
        /* RFC 7518 3.2: an HS256 key must be at least as long as the hash (32 bytes). */
        if (v->secret_len < 32) {
            snprintf(err, errlen, "the JWT HS256 secret must be at least 32 bytes");
            rc_jwt_verifier_free(v);
            return NULL;
        }
        v->secret = (unsigned char *)strdup(cfg->hs256_secret);
    }
    if (has_key && load_public_key(v, cfg->public_key_pem, err, errlen) != 0) {
        rc_jwt_verifier_free(v);
        return NULL;
    }
    return v;
}

void rc_jwt_verifier_free(rc_jwt_verifier_t *v)
{
    if (v == NULL)
        return;
    if (v->secret != NULL)
        OPENSSL_cleanse(v->secret, v->secret_len);
    free(v->secret);
    EVP_PKEY_free(v->pkey);
    free(v->issuer);
    free(v->audience);
    free(v);
}

/* ---- base64url (RFC 4648 section 5), unpadded as JWS requires ---- */

static int b64url_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* Decodes `n` characters into `out` (room for n * 3 / 4 bytes). Returns the length, or -1
 * for a character outside the alphabet or an impossible length (n % 4 == 1). */
static long b64url_decode(const char *in, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long len = 0;
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int val = b64url_value((unsigned char)in[i]);
        if (val < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)val;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits must be zero: one token, one encoding. */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return len;
}

/* Decodes one part into a JSON object; NULL if it is not one. */
static json_t *decode_json_part(const char *in, size_t n)
{
    unsigned char buf[RC_JWT_MAX_LEN];
    long len = b64url_decode(in, n, buf);
    if (len <= 0)
        return NULL;
    json_t *j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- signatures ---- */

static bool verify_hs256(const rc_jwt_verifier_t *v, const char *input, size_t n,
                         const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (sig_len != 32 || HMAC(EVP_sha256(), v->secret, (int)v->secret_len,
                              (const unsigned char *)input, n, mac, &mac_len) == NULL)
        return false;
    return mac_len == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
}

static bool verify_digest(EVP_PKEY *pkey, const char *input, size_t n, const unsigned char *sig,
                          size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* JWS carries an ES256 signature as r || s, 32 bytes each (RFC 7518 3.4); OpenSSL wants
 * the DER ECDSA-Sig-Value. */
static bool verify_es256(EVP_PKEY *pkey, const char *input, size_t n, const unsigned char *sig,
                         size_t sig_len)
{
    unsigned char der[80], *p = der;
    if (sig_len != 64)
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return false;
    }
    int der_len = i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der) ? i2d_ECDSA_SIG(es, &p) : -1;
    ECDSA_SIG_free(es);
    return der_len > 0 && verify_digest(pkey, input, n, der, (size_t)der_len);
}

/* Picks the check for the token's alg; false when the server holds no key for it. */
static bool verify_signature(const rc_jwt_verifier_t *v, const char *alg, const char *input,
                             size_t n, const unsigned char *sig, size_t sig_len,
                             rc_jwt_reason_t *why)
{
    *why = RC_JWT_BAD_ALG;
    if (strcmp(alg, "HS256") == 0 && v->secret != NULL) {
        *why = RC_JWT_BAD_SIGNATURE;
        return verify_hs256(v, input, n, sig, sig_len);
    }
    if (strcmp(alg, "RS256") == 0 && v->kind == KEY_RSA) {
        *why = RC_JWT_BAD_SIGNATURE;
        return verify_digest(v->pkey, input, n, sig, sig_len);
    }
    if (strcmp(alg, "ES256") == 0 && v->kind == KEY_P256) {
        *why = RC_JWT_BAD_SIGNATURE;
        return verify_es256(v->pkey, input, n, sig, sig_len);
    }
    return false;
}

/* ---- claims ---- */

static bool claim_time(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *j = json_object_get(claims, name);
    if (json_is_integer(j)) {
        *out = (int64_t)json_integer_value(j);
        return true;
    }
    /* NumericDate may carry a fraction; whole seconds are enough here. */
    if (json_is_real(j) && json_real_value(j) > -9.2e18 && json_real_value(j) < 9.2e18) {
        *out = (int64_t)json_real_value(j);
        return true;
    }
    return false;
}

static bool audience_matches(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
        const char *s = json_string_value(json_array_get(aud, i));
        if (s != NULL && strcmp(s, want) == 0)
            return true;
    }
    return false;
}

static rc_jwt_reason_t check_claims(const rc_jwt_verifier_t *v, const json_t *claims, int64_t now_s,
                                    rc_jwt_claims_t *out)
{
    int64_t exp, nbf;
    if (!claim_time(claims, "exp", &exp))
        return RC_JWT_NO_EXPIRY;
    if (now_s >= exp + v->leeway_s)
        return RC_JWT_EXPIRED;
    if (json_object_get(claims, "nbf") != NULL &&
        (!claim_time(claims, "nbf", &nbf) || now_s + v->leeway_s < nbf))
        return RC_JWT_NOT_YET_VALID;
    if (v->issuer != NULL) {
        const char *iss = json_string_value(json_object_get(claims, "iss"));
        if (iss == NULL || strcmp(iss, v->issuer) != 0)
            return RC_JWT_BAD_ISSUER;
    }
    if (v->audience != NULL && !audience_matches(json_object_get(claims, "aud"), v->audience))
        return RC_JWT_BAD_AUDIENCE;
    const json_t *sub = json_object_get(claims, "sub");
    size_t sub_len = json_string_length(sub);
    if (!json_is_string(sub) || sub_len > RC_JWT_SUB_MAX ||
        !rc_proto_valid_id(json_string_value(sub), sub_len))
        return RC_JWT_BAD_SUBJECT;
    memcpy(out->sub, json_string_value(sub), sub_len);
    out->sub[sub_len] = '\0';
    out->sub_len = (uint32_t)sub_len;
    out->exp_s = exp;
    return RC_JWT_OK;
}

rc_jwt_reason_t rc_jwt_verify(const rc_jwt_verifier_t *v, const char *token, size_t len,
                              int64_t now_s, rc_jwt_claims_t *out)
{
    const char *dot1, *dot2;
    if (len == 0 || len > RC_JWT_MAX_LEN || (dot1 = memchr(token, '.', len)) == NULL ||
        (dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return RC_JWT_MALFORMED;

    json_t *header = decode_json_part(token, (size_t)(dot1 - token));
    json_t *claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    unsigned char sig[RC_JWT_MAX_LEN];
    long sig_len = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig);
    rc_jwt_reason_t why = RC_JWT_MALFORMED;
    if (header == NULL || claims == NULL || sig_len <= 0)
        goto done;
    const char *alg = json_string_value(json_object_get(header, "alg"));
    /* Extensions we do not implement must not be ignored (RFC 7515 4.1.11). */
    if (alg == NULL || json_object_get(header, "crit") != NULL) {
        why = RC_JWT_BAD_ALG;
        goto done;
    }
    if (!verify_signature(v, alg, token, (size_t)(dot2 - token), sig, (size_t)sig_len, &why))
        goto done;
    why = check_claims(v, claims, now_s, out);
done:
    json_decref(header);
    json_decref(claims);
    return why;
}
