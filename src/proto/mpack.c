/* SPDX-License-Identifier: Apache-2.0 */
/* The MessagePack pre-check (see mpack.h): a walk over the bytes with a small stack of
 * "elements still expected" per open container. Every element takes at least one byte, so
 * a container may not claim more elements than bytes remain. */
#include "proto/mpack.h"
#include "util/error.h"

#include <stdint.h>

#define MP_MAX_DEPTH 64

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Size of the value at p (header and payload, not counting container elements), and the
 * number of elements it opens (*children). 0 when the bytes are too few or invalid. */
static size_t value_size(const unsigned char *p, size_t left, uint64_t *children)
{
    unsigned char b = p[0];
    size_t head = 1;
    uint64_t payload = 0;
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 1;
    if (b >= 0x80 && b <= 0x8f) {
        *children = 2u * (b & 0x0f);
        return 1;
    }
    if (b >= 0x90 && b <= 0x9f) {
        *children = b & 0x0f;
        return 1;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        payload = b & 0x1f;
    } else {
        static const unsigned char fixed[] = {
            [0xca - 0xc4] = 4, [0xcb - 0xc4] = 8, [0xcc - 0xc4] = 1, [0xcd - 0xc4] = 2,
            [0xce - 0xc4] = 4, [0xcf - 0xc4] = 8, [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2,
            [0xd2 - 0xc4] = 4, [0xd3 - 0xc4] = 8, [0xd4 - 0xc4] = 2, [0xd5 - 0xc4] = 3,
            [0xd6 - 0xc4] = 5, [0xd7 - 0xc4] = 9, [0xd8 - 0xc4] = 17};
        int lenbytes = 0, extra = 0;
        switch (b) {
        case 0xc4:
        case 0xd9:
            lenbytes = 1;
            break;
        case 0xc5:
        case 0xda:
            lenbytes = 2;
            break;
        case 0xc6:
        case 0xdb:
            lenbytes = 4;
            break;
        case 0xc7:
            lenbytes = 1, extra = 1;
            break;
        case 0xc8:
            lenbytes = 2, extra = 1;
            break;
        case 0xc9:
            lenbytes = 4, extra = 1;
            break;
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
            int n = (b == 0xdc || b == 0xde) ? 2 : 4;
            if (left < 1u + (size_t)n)
                return 0;
            uint64_t count = be(p + 1, n);
            *children = (b >= 0xde) ? 2 * count : count;
            return 1 + (size_t)n;
        }
        default:
            if (b < 0xc4 || b > 0xd8 || fixed[b - 0xc4] == 0)
                return 0; /* 0xc1: never used */
            payload = fixed[b - 0xc4];
        }
        if (lenbytes > 0) {
            if (left < 1u + (size_t)lenbytes)
                return 0;
            payload = be(p + 1, lenbytes) + (uint64_t)extra;
            head += (size_t)lenbytes;
        }
    }
    if (payload > left - head)
        return 0;
    return head + (size_t)payload;
}

int rc_mp_check(const void *data, size_t len, int max_depth)
{
    const unsigned char *p = data;
    uint64_t pending[MP_MAX_DEPTH + 1];
    int depth = 0;
    size_t off = 0;
    if (max_depth > MP_MAX_DEPTH)
        max_depth = MP_MAX_DEPTH;
    pending[0] = 1; /* the one top-level value */
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        if (off >= len)
            return RC_EPARSE;
        uint64_t children;
        size_t n = value_size(p + off, len - off, &children);
        if (n == 0)
            return RC_EPARSE;
        off += n;
        pending[depth]--;
        if (children > 0) {
            if (children > len - off || depth + 1 > max_depth)
                return RC_EPARSE;
            pending[++depth] = children;
        }
    }
    return off == len ? 0 : RC_EPARSE;
}
