/* SPDX-License-Identifier: Apache-2.0 */
/* Doubling arrays: the one growth step that the registries, queues and stacks here share. */
#ifndef RC_GROW_H
#define RC_GROW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/** Reallocates `array` (of `*cap` elements of `elem_size` bytes; NULL when *cap is 0) to
 * twice its capacity, or `min_cap` elements when it had none, and updates *cap. Returns the
 * new array, or NULL when out of memory (then `array` and *cap are unchanged). */
static inline void *rc_grow(void *array, uint32_t *cap, size_t elem_size, uint32_t min_cap)
{
    uint32_t n = *cap ? *cap * 2 : min_cap;
    void *p = realloc(array, (size_t)n * elem_size);
    if (p != NULL)
        *cap = n;
    return p;
}

#endif
