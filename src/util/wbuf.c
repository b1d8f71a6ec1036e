/* SPDX-License-Identifier: Apache-2.0 */
/* rc_wbuf_t: appends with amortised doubling; failures are sticky so writers check once. */
#include "util/wbuf.h"
#include "util/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_wbuf_init(rc_wbuf_t *b, size_t headroom)
{
    memset(b, 0, sizeof(*b));
    b->headroom = headroom;
}

void rc_wbuf_free(rc_wbuf_t *b)
{
    if (b == NULL)
        return;
    free(b->base);
    rc_wbuf_init(b, b->headroom);
}

static int reserve(rc_wbuf_t *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (extra <= b->cap - b->len)
        return 0;
    /* A size that cannot be held (the sum or its doubling would wrap) fails like an
     * allocation would, rather than wrapping to a small buffer or doubling forever. */
    if (extra > SIZE_MAX / 4 - b->headroom - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->base, b->headroom + cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->base = p;
    b->cap = cap;
    return 0;
}

void rc_wbuf_reserve(rc_wbuf_t *b, size_t extra)
{
    (void)reserve(b, extra);
}

void rc_wbuf_put_slow(rc_wbuf_t *b, const void *data, size_t len)
{
    if (len == 0 || reserve(b, len) != 0)
        return;
    memcpy(b->base + b->headroom + b->len, data, len);
    b->len += len;
}

void rc_wbuf_puts(rc_wbuf_t *b, const char *s)
{
    rc_wbuf_put(b, s, strlen(s));
}

void rc_wbuf_printf(rc_wbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n + 1) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->base + b->headroom + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int rc_wbuf_ok(const rc_wbuf_t *b)
{
    return b->failed ? RC_ENOMEM : 0;
}
