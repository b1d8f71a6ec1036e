/* permessage-deflate (RFC 7692) for the frames the server sends. libwebsockets negotiates
 * the extension and inflates what clients compress; the server compresses its own frames
 * here, each message on its own, with one zlib stream per window size shared by every
 * connection, so a connection holds no compressor state. */
#ifndef RC_WSDEFLATE_H
#define RC_WSDEFLATE_H

#include "util/wbuf.h"

#include <stddef.h>

typedef struct rc_deflater rc_deflater_t;

/** A compressor at zlib level `level` (1..9). Caller frees with rc_deflater_free().
 * Returns NULL when out of memory. */
rc_deflater_t *rc_deflater_new(int level);

/** Frees every stream. NULL is a no-op. */
void rc_deflater_free(rc_deflater_t *d);

/** Appends to `out` the payload of a compressed message holding `in` (raw deflate, flushed,
 * without the 00 00 ff ff tail RFC 7692 removes), using a window of 2^window_bits bytes
 * (9..15). No earlier message is referenced, which every decompressor accepts whatever
 * context takeover was negotiated. Returns the bytes appended, or a negative RC_E* code
 * (then `out` holds what it held before). */
long rc_deflate_message(rc_deflater_t *d, int window_bits, const void *in, size_t len,
                        rc_wbuf_t *out);

/** The largest compression window the client's Sec-WebSocket-Extensions offers allow for
 * the server's messages: the smallest server_max_window_bits of its permessage-deflate
 * offers, 15 when none limits it, 0 when the server must not compress (no such offer, or a
 * limit below 9, which zlib cannot honour). */
int rc_deflate_offer_window_bits(const char *extensions);

#endif
