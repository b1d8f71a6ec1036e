/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Growable byte buffers for the generator's per-connection input, output and
 * fragmented messages.
 */
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

void lg_buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Makes room for `extra` more bytes, compacting first; fails beyond `limit` pending bytes. */
int lg_buf_reserve(buf_t *b, size_t extra, size_t limit)
{
    if (b->off > 0 && (b->off == b->len || b->off > b->cap / 2)) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len - b->off + extra > limit)
        return -1;
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int lg_buf_append(buf_t *b, const void *bytes, size_t n, size_t limit)
{
    if (lg_buf_reserve(b, n, limit) < 0)
        return -1;
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 0;
}
