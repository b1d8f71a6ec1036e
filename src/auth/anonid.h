/* SPDX-License-Identifier: Apache-2.0 */
/* Anonymous user ids the server issues and can recognise again: `anon-`, 96 random bits and an
 * HMAC-SHA256 tag (128 bits) under a key of the server's, so a visitor's id cannot be guessed
 * from others' and cannot be made up. A client that comes back presents its id and the server
 * checks the tag (in constant time) before it gives it that visitor's session. Pure: no I/O
 * but the random bytes of rc_anonid_issue(). PROTOCOL.md (hello, 4013) and docs/security.md
 * say what a client sees. */
#ifndef RC_ANONID_H
#define RC_ANONID_H

#include <stdbool.h>
#include <stddef.h>

/* "anon-" + 24 hex digits (the random part) + "." + 32 hex digits (the tag): 62 bytes, within
 * the protocol's 64-byte ids and of their alphabet. */
#define RC_ANONID_RANDOM_HEX 24
#define RC_ANONID_TAG_HEX    32
#define RC_ANONID_LEN        (5 + RC_ANONID_RANDOM_HEX + 1 + RC_ANONID_TAG_HEX)
#define RC_ANONID_KEY_BYTES  32

/** The keys ids are signed with: the current one signs and verifies, a previous one (during a
 * key rotation) only verifies. Derived from secrets by rc_anonid_keys_init(), never used raw,
 * so the pseudonym key can serve as the secret without its hashes of user ids ever equalling a
 * key or a tag. Plain data, caller-allocated. */
typedef struct rc_anonid_keys {
    unsigned char current[RC_ANONID_KEY_BYTES];
    unsigned char previous[RC_ANONID_KEY_BYTES];
    bool has_previous;
} rc_anonid_keys_t;

/** How a presented id fared. Stable: tests and logs name them. */
typedef enum {
    RC_ANONID_OK = 0,      /* signed by the current key */
    RC_ANONID_OK_PREVIOUS, /* signed by the previous key (accepted during a rotation) */
    RC_ANONID_UNSIGNED,    /* not of the issued form at all (made up, or an old-style id) */
    RC_ANONID_BAD_TAG,     /* of the form, but the tag is no key's: forged, or a retired key */
    RC_ANONID_VERDICT_COUNT
} rc_anonid_verdict_t;

/** Derives the keys from secret `cur` (`cur_len` bytes, borrowed for the call) and, when
 * `prev` is not NULL and `prev_len` > 0, from the previous secret. The same secret always
 * gives the same key, so ids survive restarts that keep the secret. */
void rc_anonid_keys_init(rc_anonid_keys_t *k, const void *cur, size_t cur_len, const void *prev,
                         size_t prev_len);

/** Writes a fresh id signed by the current key into `out` (RC_ANONID_LEN bytes and a NUL).
 * Returns 0, or RC_EIO when the system has no random bytes to give (no id is written). */
int rc_anonid_issue(const rc_anonid_keys_t *k, char out[RC_ANONID_LEN + 1]);

/** Checks id `id` (`len` bytes, borrowed). Every tag comparison takes the same time whatever
 * the bytes, so timing tells a forger nothing about the right tag. */
rc_anonid_verdict_t rc_anonid_verify(const rc_anonid_keys_t *k, const char *id, size_t len);

/** Stable name of a verdict ("ok", "unsigned", ...). */
const char *rc_anonid_verdict_name(rc_anonid_verdict_t v);

#endif
