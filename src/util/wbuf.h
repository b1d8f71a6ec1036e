/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer with optional headroom in front, used to build frames (the
 * headroom is libwebsockets' LWS_PRE) and HTTP bodies. */
#ifndef RC_WBUF_H
#define RC_WBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct rc_wbuf {
    char *base;      /* allocation, headroom included */
    size_t headroom; /* bytes reserved before data */
    size_t len;      /* bytes of data after the headroom */
    size_t cap;      /* bytes available for data */
    int failed;      /* set once an allocation failed; the contents are meaningless then */
} rc_wbuf_t;

/** Prepares an empty buffer (no allocation yet). Caller frees with rc_wbuf_free(). */
void rc_wbuf_init(rc_wbuf_t *b, size_t headroom);

/** Frees the buffer's memory; the buffer may be initialised again. NULL is a no-op. */
void rc_wbuf_free(rc_wbuf_t *b);

/** Empties the buffer, keeping its memory for reuse. */
static inline void rc_wbuf_reset(rc_wbuf_t *b)
{
    b->len = 0;
    b->failed = 0;
}

/** The data (after the headroom). Borrowed until the next write to the buffer. */
static inline char *rc_wbuf_data(const rc_wbuf_t *b)
{
    return b->base ? b->base + b->headroom : NULL;
}

/** Appends bytes (`data` may be NULL when `len` is 0: an empty string view). On allocation
 * failure the buffer is marked failed (checked once, at the end, with rc_wbuf_ok()), so a
 * writer need not test every append. */
void rc_wbuf_put_slow(rc_wbuf_t *b, const void *data, size_t len);

/* Inline: the encoders append many short pieces, and most fit in the buffer as it is. */
static inline void rc_wbuf_put(rc_wbuf_t *b, const void *data, size_t len)
{
    if (len == 0) /* memcpy must not see a NULL pointer, even for no bytes */
        return;
    if (b->base != NULL && len <= b->cap - b->len) {
        memcpy(b->base + b->headroom + b->len, data, len);
        b->len += len;
    } else {
        rc_wbuf_put_slow(b, data, len);
    }
}

static inline void rc_wbuf_putc(rc_wbuf_t *b, char c)
{
    if (b->base != NULL && b->len < b->cap)
        b->base[b->headroom + b->len++] = c;
    else
        rc_wbuf_put_slow(b, &c, 1);
}
void rc_wbuf_puts(rc_wbuf_t *b, const char *s);
void rc_wbuf_printf(rc_wbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Makes room for `extra` more bytes after the data, for a writer that fills them itself
 * and then sets `len`; a failure marks the buffer failed. */
void rc_wbuf_reserve(rc_wbuf_t *b, size_t extra);

/** Returns 0, or RC_ENOMEM if any append since the last reset failed. */
int rc_wbuf_ok(const rc_wbuf_t *b);

#endif
