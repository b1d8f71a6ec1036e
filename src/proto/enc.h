/* SPDX-License-Identifier: Apache-2.0 */
/* The general writer of both wire formats, MessagePack and JSON (rc_enc_t): the protocol's
 * server messages (proto.h) are written with it, and so are the node's HTTP answers and the
 * ops feed's snapshots. */
#ifndef RC_ENC_H
#define RC_ENC_H

#include "util/text.h"
#include "util/wbuf.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { RC_FMT_MSGPACK = 0, RC_FMT_JSON = 1, RC_FMT_COUNT } rc_format_t;

/* An encoder writes nested maps and arrays in either format with one set of calls. JSON
 * needs no counts and MessagePack needs no ends, so both are given and each side ignores
 * what it does not need. */
#define RC_ENC_MAX_DEPTH 16

typedef struct rc_enc {
    rc_wbuf_t *out;
    rc_format_t fmt;
    msgpack_packer pk;
    int depth;
    uint32_t count[RC_ENC_MAX_DEPTH]; /* JSON: elements written at each level */
    bool is_map[RC_ENC_MAX_DEPTH];
} rc_enc_t;

/** Starts encoding into `out` (borrowed for the encoder's lifetime). */
void rc_enc_init(rc_enc_t *e, rc_wbuf_t *out, rc_format_t fmt);
void rc_enc_map(rc_enc_t *e, uint32_t n_pairs);
void rc_enc_array(rc_enc_t *e, uint32_t n);
void rc_enc_end(rc_enc_t *e);
void rc_enc_key(rc_enc_t *e, const char *key);
void rc_enc_keyn(rc_enc_t *e, const char *key, size_t n);
void rc_enc_str(rc_enc_t *e, const char *s, size_t n);
void rc_enc_cstr(rc_enc_t *e, const char *s);
/** A measured text as a string value (JSON: one copy between quotes when it is plain). */
void rc_enc_text(rc_enc_t *e, rc_text_t t);
/** A measured text as a map key. */
void rc_enc_text_key(rc_enc_t *e, rc_text_t t);
void rc_enc_int(rc_enc_t *e, int64_t v);
void rc_enc_double(rc_enc_t *e, double v);
/** A number known to need at most `places` (<= 6) decimals, such as a score or a price:
 * written exactly that way in JSON (no %g), as a double in MessagePack. */
void rc_enc_decimal(rc_enc_t *e, double v, int places);
void rc_enc_bool(rc_enc_t *e, bool v);
void rc_enc_nil(rc_enc_t *e);
/** Any MessagePack value (an application payload), in either format. Binary strings become
 * base64 text in JSON; extension types become null. */
void rc_enc_object(rc_enc_t *e, const msgpack_object *o);

/* ---- inline, for writers of keys fixed in the source (server messages, proto_encode.c) ---- */

/* The level whose separator state applies. Deeper than RC_ENC_MAX_DEPTH the last level's
 * state is reused: the output may lose commas but memory stays in bounds (callers bound
 * the nesting of what they encode; see the push API). */
static inline int rc_enc_level(const rc_enc_t *e)
{
    return (e->depth < RC_ENC_MAX_DEPTH ? e->depth : RC_ENC_MAX_DEPTH) - 1;
}

/* JSON: the comma before every key of a map but the first. */
static inline void rc_enc_json_before_key(rc_enc_t *e)
{
    if (e->depth > 0 && e->count[rc_enc_level(e)]++ > 0)
        rc_wbuf_putc(e->out, ',');
}

/** A key fixed in the source: its length `n` is known and (JSON) it needs no escaping, so it
 * goes out as one copy of its quoted form `quoted`, `"key":` (n + 3 bytes, borrowed for the
 * call). Inline: as a call it showed as its own 1 % in a profile of the recs encoder. */
static inline void rc_enc_plain_key(rc_enc_t *e, const char *quoted, size_t n)
{
    if (e->fmt == RC_FMT_MSGPACK) {
        msgpack_pack_str(&e->pk, n);
        msgpack_pack_str_body(&e->pk, quoted + 1, n);
        return;
    }
    rc_enc_json_before_key(e);
    rc_wbuf_put(e->out, quoted, n + 3);
}

#endif
