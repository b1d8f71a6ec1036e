/* SPDX-License-Identifier: Apache-2.0 */
/* permessage-deflate, both ways; see wsdeflate.h. */
#include "net/wsdeflate.h"
#include "util/error.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MIN_BITS 9
#define MAX_BITS 15
/* A small hash table: messages are a few KB, and deflateReset() clears the table each time
 * (64 KB at zlib's default memLevel 8, 2 KB at 4). */
#define MEM_LEVEL 4

struct rc_deflater {
    int level;
    bool ready[MAX_BITS - MIN_BITS + 1];
    z_stream z[MAX_BITS - MIN_BITS + 1];
};

rc_deflater_t *rc_deflater_new(int level)
{
    rc_deflater_t *d = calloc(1, sizeof(*d));
    if (d != NULL)
        d->level = level < 1 ? 1 : level > 9 ? 9 : level;
    return d;
}

void rc_deflater_free(rc_deflater_t *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i <= MAX_BITS - MIN_BITS; i++)
        if (d->ready[i])
            deflateEnd(&d->z[i]);
    free(d);
}

static z_stream *stream_for(rc_deflater_t *d, int bits)
{
    int i = bits - MIN_BITS;
    if (d->ready[i])
        return deflateReset(&d->z[i]) == Z_OK ? &d->z[i] : NULL;
    memset(&d->z[i], 0, sizeof(d->z[i]));
    if (deflateInit2(&d->z[i], d->level, Z_DEFLATED, -bits, MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    d->ready[i] = true;
    return &d->z[i];
}

long rc_deflate_message(rc_deflater_t *d, int window_bits, const void *in, size_t len,
                        rc_wbuf_t *out)
{
    if (window_bits < MIN_BITS || window_bits > MAX_BITS || len > UINT32_MAX)
        return RC_EINVAL;
    z_stream *z = stream_for(d, window_bits);
    if (z == NULL)
        return RC_ENOMEM;
    /* deflateBound() covers a finished stream; a sync flush adds at most its 5-byte empty
     * stored block. */
    size_t bound = deflateBound(z, (uLong)len) + 8, start = out->len;
    rc_wbuf_reserve(out, bound);
    if (rc_wbuf_ok(out) != 0)
        return RC_ENOMEM;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)rc_wbuf_data(out) + start;
    z->avail_out = (uInt)bound;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0)
        return RC_EINVAL;
    size_t n = bound - z->avail_out;
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    if (n >= 4 && memcmp(rc_wbuf_data(out) + start + n - 4, tail, 4) == 0)
        n -= 4;
    out->len = start + n;
    return (long)n;
}

struct rc_inflater {
    z_stream z;
};

rc_inflater_t *rc_inflater_new(void)
{
    rc_inflater_t *inf = calloc(1, sizeof(*inf));
    if (inf != NULL && inflateInit2(&inf->z, -MAX_BITS) != Z_OK) {
        free(inf);
        return NULL;
    }
    return inf;
}

void rc_inflater_free(rc_inflater_t *inf)
{
    if (inf == NULL)
        return;
    inflateEnd(&inf->z);
    free(inf);
}

/* Feeds `in` to the stream, appending to `out` up to `max_out` bytes in all (one more shows
 * that the message is longer). Returns 0, 1 when the stream ended (a final block: nothing may
 * follow it), or an RC_E* code. */
static int inflate_into(z_stream *z, const void *in, size_t len, size_t max_out, rc_wbuf_t *out)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    for (;;) {
        if (out->len > max_out)
            return RC_EFULL;
        size_t room = len < 4096 ? 4096 : len;
        if (room > max_out + 1 - out->len)
            room = max_out + 1 - out->len;
        rc_wbuf_reserve(out, room);
        if (rc_wbuf_ok(out) != 0)
            return RC_ENOMEM;
        z->next_out = (Bytef *)rc_wbuf_data(out) + out->len;
        z->avail_out = (uInt)room;
        int rc = inflate(z, Z_SYNC_FLUSH);
        out->len += room - z->avail_out;
        if (rc == Z_STREAM_END)
            return z->avail_in == 0 ? 1 : RC_EINVAL;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return RC_EINVAL;
        /* Done once the input is used up and zlib had room to spare (so holds no output). */
        if (z->avail_in == 0 && z->avail_out != 0)
            return out->len > max_out ? RC_EFULL : 0;
        if (rc == Z_BUF_ERROR && z->avail_out != 0)
            return RC_EINVAL; /* no progress with room left */
    }
}

long rc_inflate_message(rc_inflater_t *inf, const void *in, size_t len, size_t max_out,
                        rc_wbuf_t *out)
{
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    if (len > UINT32_MAX || max_out >= UINT32_MAX)
        return RC_EINVAL;
    rc_wbuf_reset(out);
    if (inflateReset(&inf->z) != Z_OK)
        return RC_ENOMEM;
    int rc = inflate_into(&inf->z, in, len, max_out, out);
    if (rc == 0) /* the tail the sender removed; a message ending in a final block has none */
        rc = inflate_into(&inf->z, tail, sizeof(tail), max_out, out);
    if (rc < 0) {
        rc_wbuf_reset(out);
        return rc;
    }
    return (long)out->len;
}

/* Case-insensitive: does [p, p+n) equal `word`? */
static bool token_is(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* One offer: "permessage-deflate; param[=value]; ...", up to the next ',' or the end.
 * Returns the window its server_max_window_bits allows (15 when absent), 0 for a limit
 * zlib cannot honour, or -1 when the offer is not permessage-deflate. */
static int offer_bits(const char *p, const char **end)
{
    const char *e = strchr(p, ',');
    *end = e ? e : p + strlen(p);
    p = skip_space(p);
    size_t n = strcspn(p, ";, \t");
    if (!token_is(p, n, "permessage-deflate"))
        return -1;
    int bits = MAX_BITS;
    for (p += n; p < *end && *p == ';';) {
        p = skip_space(p + 1);
        size_t k = strcspn(p, "=;, \t");
        bool limit = token_is(p, k, "server_max_window_bits");
        p = skip_space(p + k);
        if (*p == '=') {
            p = skip_space(p + 1);
            const char *v = p + (*p == '"');
            int value = isdigit((unsigned char)*v) ? atoi(v) : 0;
            if (limit)
                bits = value < MIN_BITS ? 0 : value < bits ? value : bits;
            p += strcspn(p, ";,");
        } else if (limit) {
            bits = 0; /* a limit without a value is malformed: do not compress */
        }
        p = skip_space(p);
    }
    return bits;
}

int rc_deflate_offer_window_bits(const char *extensions)
{
    int best = -1;
    for (const char *p = extensions, *end; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
        int bits = offer_bits(p, &end);
        if (bits >= 0 && (best < 0 || bits < best))
            best = bits;
    }
    return best < 0 ? 0 : best;
}
