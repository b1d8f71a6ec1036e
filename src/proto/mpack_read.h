/* SPDX-License-Identifier: Apache-2.0 */
/* MessagePack reading: the small questions every walk over a decoded msgpack_object tree
 * asks (a key's value in a map, a string equal to a name, a number in any of its encodings,
 * a boolean), answered once for the protocol codec and the ops feed. Inline: the codec asks
 * them for every field of every client message. */
#ifndef RC_MPACK_READ_H
#define RC_MPACK_READ_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* These two are forced inline: a decoder compares every key against a chain of literals, and
 * a compiler that keeps them out of line (large decoders) measures each literal with strlen()
 * at every call; inlined, the length is a constant (7% of reading the event log back). */

/** Whether `o` is the string s[0..n). */
__attribute__((always_inline)) static inline bool rc_mp_str_eqn(const msgpack_object *o,
                                                                const char *s, size_t n)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/** Whether `o` is the string `s` (NUL-terminated): a map key, a name from a table. */
__attribute__((always_inline)) static inline bool rc_mp_str_is(const msgpack_object *o,
                                                               const char *s)
{
    return rc_mp_str_eqn(o, s, strlen(s));
}

/** The value of the first string key `key` of `map`, or NULL. The value is borrowed from the
 * map. */
static inline const msgpack_object *rc_mp_map_get(const msgpack_object_map *map, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->size; i++)
        if (rc_mp_str_eqn(&map->ptr[i].key, key, n))
            return &map->ptr[i].val;
    return NULL;
}

/** Whether `o` is a number (an integer of either sign, or a float); if so, its value is
 * written to `*out` (else `*out` is left as it was). */
static inline bool rc_mp_number(const msgpack_object *o, double *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return true;
    default:
        return false;
    }
}

/** Whether `o` is the boolean true; anything else, a truthy number included, is not. */
static inline bool rc_mp_is_true(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

#endif
