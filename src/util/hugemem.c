/* SPDX-License-Identifier: Apache-2.0 */
/* Mappings of their own for large arrays; see hugemem.h. */
#include "util/hugemem.h"
#include "util/sanitizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE  ((size_t)2 << 20)
#define CACHE_LINE ((size_t)64)

static bool is_mapped(size_t bytes)
{
    return !RC_ASAN && bytes >= RC_HUGE_MIN;
}

static size_t mapped_size(size_t bytes)
{
    return (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

/* A mapping of `bytes` (rounded up to whole huge pages) at a 2 MB boundary: map one huge
 * page more than needed and give back the ends. */
static void *map_aligned(size_t bytes)
{
    size_t size = mapped_size(bytes), span = size + HUGE_PAGE;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    size_t head = start - (uintptr_t)p;
    if (head > 0)
        munmap(p, head);
    munmap((char *)start + size, span - head - size);
    /* Advice only: without transparent huge pages the mapping still works, with 4 KB pages. */
    madvise((void *)start, size, MADV_HUGEPAGE);
    return (void *)start;
}

/* The heap, at a cache-line boundary (realloc() would give 16 bytes); aligned_alloc() wants
 * a size that is a multiple of the alignment, and never 0 here. */
static void *line_aligned(size_t bytes)
{
    return aligned_alloc(CACHE_LINE, ((bytes ? bytes : 1) + CACHE_LINE - 1) & ~(CACHE_LINE - 1));
}

void *rc_huge_realloc(void *p, size_t old_bytes, size_t new_bytes)
{
    if (p == NULL)
        old_bytes = 0;
    if (is_mapped(new_bytes) && is_mapped(old_bytes) &&
        mapped_size(new_bytes) == mapped_size(old_bytes))
        return p;
    void *q = is_mapped(new_bytes) ? map_aligned(new_bytes) : line_aligned(new_bytes);
    if (q == NULL)
        return NULL;
    if (p != NULL)
        memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
    rc_huge_free(p, old_bytes);
    return q;
}

void rc_huge_free(void *p, size_t bytes)
{
    if (p == NULL)
        return;
    if (is_mapped(bytes))
        munmap(p, mapped_size(bytes));
    else
        free(p);
}
