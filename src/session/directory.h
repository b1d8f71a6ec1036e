/* SPDX-License-Identifier: Apache-2.0 */
/* Which event loops of the process hold a session of a user, by the user's pseudonym: for
 * loops in several threads, so that an event accepted on one reaches the user's sessions on
 * the others (as events reach a user's sessions on other nodes). Touched when a session
 * starts or ends, never per event: each session keeps the mask of its peers. Safe from any
 * thread (a lock per shard). */
#ifndef RC_DIRECTORY_H
#define RC_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#define RC_DIRECTORY_LOOPS_MAX 64 /* loops are bits of a 64-bit mask */

typedef struct rc_directory rc_directory_t;

/** An empty directory. NULL when out of memory. Caller frees with rc_directory_free(). */
rc_directory_t *rc_directory_new(void);

/** Frees the directory. NULL is a no-op. */
void rc_directory_free(rc_directory_t *d);

/** Records that `loop` (< RC_DIRECTORY_LOOPS_MAX) holds a session of `pseudo` (copied).
 * Returns the mask of the other loops that held one before, or UINT64_MAX when out of
 * memory (then nothing is recorded). */
uint64_t rc_directory_join(rc_directory_t *d, const char *pseudo, size_t len, uint32_t loop);

/** Records that `loop` holds none any more. Returns the mask of the loops that still do. */
uint64_t rc_directory_leave(rc_directory_t *d, const char *pseudo, size_t len, uint32_t loop);

/** The mask of the loops holding a session of `pseudo` (0: none). */
uint64_t rc_directory_loops(rc_directory_t *d, const char *pseudo, size_t len);

#endif
