/* SPDX-License-Identifier: Apache-2.0 */
/* JSON Web Tokens (RFC 7519) as rankcast uses them: compact JWS, verified with a shared
 * secret (HS256) or a public key (RS256 for RSA keys, ES256 for P-256 keys), then the
 * registered claims checked (exp required; nbf, iss and aud when configured). The subject
 * (`sub`) is the user id. Everything here is pure: no I/O after rc_jwt_verifier_new(). */
#ifndef RC_JWT_H
#define RC_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest token accepted (PROTOCOL.md: hello.token ≤ 4096 bytes). */
#define RC_JWT_MAX_LEN 4096
#define RC_JWT_SUB_MAX 64 /* RC_ID_MAX: the subject is a user id */

typedef struct rc_jwt_verifier rc_jwt_verifier_t;

/** Why a token was refused. Stable: tests and metrics name them. */
typedef enum {
    RC_JWT_OK = 0,
    RC_JWT_MALFORMED,     /* not three base64url parts of JSON objects, or too long */
    RC_JWT_BAD_ALG,       /* alg missing, "none", or not the configured key's algorithm */
    RC_JWT_BAD_SIGNATURE, /* the signature does not verify */
    RC_JWT_EXPIRED,       /* now >= exp + leeway */
    RC_JWT_NOT_YET_VALID, /* now < nbf - leeway */
    RC_JWT_BAD_ISSUER,    /* iss differs from the configured issuer */
    RC_JWT_BAD_AUDIENCE,  /* the configured audience is not in aud */
    RC_JWT_BAD_SUBJECT,   /* sub missing or not a valid user id */
    RC_JWT_NO_EXPIRY,     /* exp missing or not a NumericDate: no fresh token can fix it */
    RC_JWT_REASON_COUNT
} rc_jwt_reason_t;

/** The verified claims a session needs. */
typedef struct rc_jwt_claims {
    char sub[RC_JWT_SUB_MAX + 1];
    uint32_t sub_len;
    int64_t exp_s; /* seconds since the epoch */
} rc_jwt_claims_t;

/** What to verify with. Strings are borrowed for the call only. */
typedef struct rc_jwt_config {
    const char *hs256_secret;   /* NULL or "": HS256 off */
    const char *public_key_pem; /* path of a PEM public key (RSA: RS256, P-256: ES256), or NULL */
    const char *issuer;         /* NULL or "": iss not checked */
    const char *audience;       /* NULL or "": aud not checked */
    int64_t leeway_s;           /* clock skew tolerated on exp and nbf */
} rc_jwt_config_t;

/** Builds a verifier. Returns NULL with a message in `err` when neither a secret nor a key
 * is given, or the key file cannot be read or is of another type. Caller frees with
 * rc_jwt_verifier_free(). */
rc_jwt_verifier_t *rc_jwt_verifier_new(const rc_jwt_config_t *cfg, char *err, size_t errlen);

/** Frees a verifier. NULL is a no-op. */
void rc_jwt_verifier_free(rc_jwt_verifier_t *v);

/** Verifies `token` (`len` bytes, not necessarily NUL-terminated) at `now_s` and fills
 * `out` on success. Never reads past `len`; any input is safe. */
rc_jwt_reason_t rc_jwt_verify(const rc_jwt_verifier_t *v, const char *token, size_t len,
                              int64_t now_s, rc_jwt_claims_t *out);

/** A stable name for a reason ("expired", "bad_signature", ...). */
const char *rc_jwt_reason_name(rc_jwt_reason_t r);

#endif
