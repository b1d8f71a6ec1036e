/* SPDX-License-Identifier: Apache-2.0 */
/* The two encodings of the protocol (PROTOCOL.md section 1): a message is a jansson value in
 * memory and either JSON text or MessagePack bytes on the wire. Keeping one in-memory form
 * means the messages are built and read once, whatever the subprotocol. Private. */
#ifndef RCC_WIRE_H
#define RCC_WIRE_H

#include "rankcast/client.h"
#include "util.h"

#include <jansson.h>

/** Nesting deeper than this in a received message is refused (RCC_EPROTO). */
#define RCC_WIRE_MAX_DEPTH 32

/** The subprotocol name of a format. */
const char *rcc_wire_subprotocol(rcc_format_t fmt);

/**
 * Appends the encoding of `msg` (borrowed) to `out`. Integers stay integers, reals become
 * float64 in MessagePack. Returns 0, RCC_ENOMEM, or RCC_EINVAL for a value that has no
 * encoding (a real that is not finite).
 */
int rcc_wire_encode(rcc_format_t fmt, const json_t *msg, rcc_buf_t *out);

/**
 * Decodes one received message. `binary` is the WebSocket frame kind, which must match the
 * format. Returns a new reference the caller releases with json_decref(), or NULL with a
 * reason in `err` (static text) when the bytes are not one well-formed map.
 */
json_t *rcc_wire_decode(rcc_format_t fmt, const void *data, size_t len, bool binary,
                        const char **err);

#endif
