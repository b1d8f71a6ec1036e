/* SPDX-License-Identifier: Apache-2.0 */
/* permessage-deflate (RFC 7692), both ways. libwebsockets only negotiates the extension; the
 * server compresses its own frames and inflates the clients' here, each message on its own:
 * one zlib stream per window size for sending and one for receiving, shared by every
 * connection, so a connection holds no zlib state. Receiving needs the client to reset its
 * context after each message: the server's answer to the offer says client_no_context_takeover
 * (RFC 7692 section 7.1.1.1 lets it, whatever the client offered). */
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

typedef struct rc_inflater rc_inflater_t;

/** A decompressor for client messages. Caller frees with rc_inflater_free(). Returns NULL when
 * out of memory. */
rc_inflater_t *rc_inflater_new(void);

/** Frees it. NULL is a no-op. */
void rc_inflater_free(rc_inflater_t *inf);

/** Replaces `out`'s contents with the message whose compressed payload (without the
 * 00 00 ff ff tail) is `in`, inflating at most `max_out` bytes: the work is bounded by the
 * limit, whatever the payload expands to. Any window up to 15 bits is accepted; a message that
 * refers to an earlier one (context takeover) is invalid data. Returns the message's length,
 * RC_EFULL when it is longer than `max_out`, RC_EINVAL when `in` is not valid deflate data, or
 * RC_ENOMEM. */
long rc_inflate_message(rc_inflater_t *inf, const void *in, size_t len, size_t max_out,
                        rc_wbuf_t *out);

/** The largest compression window the client's Sec-WebSocket-Extensions offers allow for
 * the server's messages: the smallest server_max_window_bits of its permessage-deflate
 * offers, 15 when none limits it, 0 when the server must not compress (no such offer, or a
 * limit below 9, which zlib cannot honour). */
int rc_deflate_offer_window_bits(const char *extensions);

#endif
