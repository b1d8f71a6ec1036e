/* SPDX-License-Identifier: Apache-2.0 */
/* MessagePack writing into an rc_wbuf_t: the packer glue and string helpers shared by the
 * protocol codec, the profile documents and the bus messages. */
#ifndef RC_MPACK_H
#define RC_MPACK_H

#include "util/wbuf.h"

#include <msgpack.h>
#include <string.h>

static inline int rc_mp_write(void *data, const char *buf, size_t len)
{
    rc_wbuf_put(data, buf, len);
    return 0;
}

/** Packs into `out` (borrowed while the packer is used; failures show in rc_wbuf_ok()). */
static inline void rc_mp_init(msgpack_packer *pk, rc_wbuf_t *out)
{
    msgpack_packer_init(pk, out, rc_mp_write);
}

static inline void rc_mp_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static inline void rc_mp_cstr(msgpack_packer *pk, const char *s)
{
    rc_mp_str(pk, s, strlen(s));
}

/** Checks, without allocating, that `data` holds exactly one MessagePack value whose every
 * declared length fits in the bytes given and whose nesting is at most `max_depth`. Run it
 * before msgpack_unpack() on untrusted bytes: msgpack-c allocates for the element count a
 * container header claims before reading the elements, so a 6-byte header can ask for
 * gigabytes. Returns 0 or RC_EPARSE. */
int rc_mp_check(const void *data, size_t len, int max_depth);

#endif
