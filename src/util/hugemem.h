/* SPDX-License-Identifier: Apache-2.0 */
/* Large arrays that ranking reads at random (the catalog's items, trending scores, the heads
 * of the co-visitation lists): from RC_HUGE_MIN bytes each lives in a mapping of its own,
 * aligned to 2 MB and advised to use transparent huge pages. A rank reads a few hundred
 * items scattered over megabytes, and with 4 KB pages such reads also miss the TLB (server
 * CPU per event fell 6 % with huge pages, docs/engine.md). Smaller arrays (and every array
 * under AddressSanitizer) stay on the heap. Either way an array starts at a 64-byte boundary,
 * so records of 64 bytes (the catalog's items) each fill one cache line. */
#ifndef RC_HUGEMEM_H
#define RC_HUGEMEM_H

#include <stddef.h>

#define RC_HUGE_MIN ((size_t)1 << 20)

/** Resizes the array at `p` (NULL for a new one) from `old_bytes` to `new_bytes`, keeping
 * its contents up to the smaller size; the bytes beyond are unspecified. Returns the new
 * array, or NULL (then `p` is untouched). The sizes given must be those the array was made
 * with: they tell where it lives. */
void *rc_huge_realloc(void *p, size_t old_bytes, size_t new_bytes);

/** Frees an array of `bytes` made by rc_huge_realloc(). */
void rc_huge_free(void *p, size_t bytes);

#endif
