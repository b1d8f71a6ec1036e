/* SPDX-License-Identifier: Apache-2.0 */
/* A string -> uint64 hash map (values are indexes or pointers) (open addressing, linear probing,
 * backward-shift deletion). Keys are borrowed: the caller keeps each key's bytes alive and
 * unchanged while its entry exists (the catalog and session registry point it at the id they
 * already store). */
#ifndef RC_STRMAP_H
#define RC_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_strmap_slot {
    uint64_t hash; /* 0 marks an empty slot; real hashes are forced non-zero */
    const char *key;
    uint32_t key_len;
    uint64_t value;
} rc_strmap_slot_t;

typedef struct rc_strmap {
    rc_strmap_slot_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t len;
} rc_strmap_t;

/** Prepares an empty map. Caller frees with rc_strmap_free(). */
void rc_strmap_init(rc_strmap_t *m);

/** Frees the table (never the borrowed keys). NULL is a no-op. */
void rc_strmap_free(rc_strmap_t *m);

/** Hash used by the map (XXH3, never 0); exposed so callers can reuse it. */
uint64_t rc_strhash(const char *key, size_t len);

/** Looks `key` up; on a hit stores its value in *value (if not NULL) and returns true. */
bool rc_strmap_get(const rc_strmap_t *m, const char *key, size_t len, uint64_t *value);

/** Inserts or replaces. `key` is borrowed (see above). Returns 0 or RC_ENOMEM. */
int rc_strmap_put(rc_strmap_t *m, const char *key, size_t len, uint64_t value);

/** Removes `key`; returns true if it was there. */
bool rc_strmap_del(rc_strmap_t *m, const char *key, size_t len);

#endif
