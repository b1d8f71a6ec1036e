/* SPDX-License-Identifier: Apache-2.0 */
/* Signed anonymous ids (anonid.h): issuing, and checking one a client presents. */
#include "auth/anonid.h"
#include "util/error.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/random.h>

#define PREFIX     "anon-"
#define PREFIX_LEN 5
#define SEP_AT     (PREFIX_LEN + RC_ANONID_RANDOM_HEX)

/* The label a key is derived under. It holds spaces, which no user id may, so the pseudonym
 * of a user (HMAC under the same secret, of the user's id) never equals a derived key. */
static const char KEY_LABEL[] = "rankcast anonymous id key v1";

static const char HEX[] = "0123456789abcdef";

static void derive(unsigned char out[RC_ANONID_KEY_BYTES], const void *secret, size_t len)
{
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)KEY_LABEL, sizeof(KEY_LABEL) - 1,
         out, &n);
}

void rc_anonid_keys_init(rc_anonid_keys_t *k, const void *cur, size_t cur_len, const void *prev,
                         size_t prev_len)
{
    memset(k, 0, sizeof(*k));
    derive(k->current, cur, cur_len);
    if (prev != NULL && prev_len > 0) {
        derive(k->previous, prev, prev_len);
        k->has_previous = true;
    }
}

/* The tag of the id's signed part ("anon-" and the random digits), in hex. */
static void tag_hex(const unsigned char key[RC_ANONID_KEY_BYTES], const char *signed_part,
                    char out[RC_ANONID_TAG_HEX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, RC_ANONID_KEY_BYTES, (const unsigned char *)signed_part, SEP_AT, mac,
         &n);
    for (int i = 0; i < RC_ANONID_TAG_HEX / 2; i++) {
        out[2 * i] = HEX[mac[i] >> 4];
        out[2 * i + 1] = HEX[mac[i] & 15];
    }
}

int rc_anonid_issue(const rc_anonid_keys_t *k, char out[RC_ANONID_LEN + 1])
{
    unsigned char r[RC_ANONID_RANDOM_HEX / 2];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return RC_EIO;
    memcpy(out, PREFIX, PREFIX_LEN);
    for (size_t i = 0; i < sizeof(r); i++) {
        out[PREFIX_LEN + 2 * i] = HEX[r[i] >> 4];
        out[PREFIX_LEN + 2 * i + 1] = HEX[r[i] & 15];
    }
    out[SEP_AT] = '.';
    tag_hex(k->current, out, out + SEP_AT + 1);
    out[RC_ANONID_LEN] = '\0';
    return 0;
}

static bool lower_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

rc_anonid_verdict_t rc_anonid_verify(const rc_anonid_keys_t *k, const char *id, size_t len)
{
    /* The form is public (every issued id shows it), so checking it first leaks nothing. */
    if (len != RC_ANONID_LEN || memcmp(id, PREFIX, PREFIX_LEN) != 0 || id[SEP_AT] != '.' ||
        !lower_hex(id + PREFIX_LEN, RC_ANONID_RANDOM_HEX) ||
        !lower_hex(id + SEP_AT + 1, RC_ANONID_TAG_HEX))
        return RC_ANONID_UNSIGNED;
    char want[RC_ANONID_TAG_HEX];
    tag_hex(k->current, id, want);
    if (CRYPTO_memcmp(want, id + SEP_AT + 1, RC_ANONID_TAG_HEX) == 0)
        return RC_ANONID_OK;
    if (k->has_previous) {
        tag_hex(k->previous, id, want);
        if (CRYPTO_memcmp(want, id + SEP_AT + 1, RC_ANONID_TAG_HEX) == 0)
            return RC_ANONID_OK_PREVIOUS;
    }
    return RC_ANONID_BAD_TAG;
}

const char *rc_anonid_verdict_name(rc_anonid_verdict_t v)
{
    switch (v) {
    case RC_ANONID_OK:
        return "ok";
    case RC_ANONID_OK_PREVIOUS:
        return "ok_previous_key";
    case RC_ANONID_UNSIGNED:
        return "unsigned";
    case RC_ANONID_BAD_TAG:
        return "bad_tag";
    case RC_ANONID_VERDICT_COUNT:
        break;
    }
    return "unknown";
}
