/* SPDX-License-Identifier: Apache-2.0 */
/* A strict JSON reader (RFC 8259) that builds msgpack objects, so a client's JSON messages
 * take the same decoding path as MessagePack ones without a document tree in between.
 * Strings without escapes point into the input; decoded strings and containers live in the
 * caller's msgpack zone. Once the zone and the reader's stack have grown to the largest
 * message seen, reading allocates nothing (the event path's steady state). It accepts and
 * refuses what jansson does with JSON_REJECT_DUPLICATES (fuzz_proto checks the two agree):
 * UTF-8 only, no \u0000, no duplicate keys, integers within int64. */
#ifndef RC_JSON_READ_H
#define RC_JSON_READ_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_json_key_slot rc_json_key_slot_t;

typedef struct rc_json_reader {
    msgpack_object *stack; /* members of the containers being read */
    uint32_t len, cap;
    rc_json_key_slot_t *keys; /* the keys of this text's objects, to refuse duplicates */
    uint32_t keys_cap, n_keys, generation, n_objects;
} rc_json_reader_t;

typedef enum {
    RC_JSON_OK = 0,
    RC_JSON_MALFORMED, /* not JSON, or nested deeper than allowed */
    RC_JSON_DUPLICATE, /* an object names a key twice */
    RC_JSON_OVERFLOW,  /* a number no int64 or double holds came before anything else wrong;
                        * *out is the whole text, with such numbers as doubles (infinite
                        * when too large), if nothing else was wrong, else nil */
    RC_JSON_NOMEM,
} rc_json_status_t;

/** Prepares an empty reader (no allocation yet). Caller frees with rc_json_reader_free(). */
void rc_json_reader_init(rc_json_reader_t *r);

/** Frees the reader's stack. NULL is a no-op. */
void rc_json_reader_free(rc_json_reader_t *r);

/** Reads one JSON text whose top level is an object or an array, nested at most `max_depth`
 * containers deep. `*out` borrows from `data` and `zone` (until the zone is cleared). On
 * RC_JSON_MALFORMED, `what` (what was wrong and at which byte) is written. */
rc_json_status_t rc_json_read(rc_json_reader_t *r, const char *data, size_t len, uint32_t max_depth,
                              msgpack_zone *zone, msgpack_object *out, char *what, size_t what_len);

/** Bytes of the UTF-8 sequence at p (1-4; p < end), or 0 when it is not valid UTF-8:
 * overlong forms, surrogates and code points above U+10FFFF are refused, as jansson does. */
size_t rc_utf8_sequence(const unsigned char *p, const unsigned char *end);

#endif
