/* SPDX-License-Identifier: Apache-2.0 */
/* Measured text (rc_text_t): a string whose length, and whether JSON must escape any of its
 * bytes, were found once, ahead of the encoders (when the catalog loaded an item, or from a
 * table of names), so a list's ids, names and categories go out with no scan on the way. */
#ifndef RC_TEXT_H
#define RC_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct rc_text {
    const char *p; /* borrowed; NULL: absent */
    uint32_t n;
    bool plain; /* true only when no byte needs escaping in JSON; false: look when writing */
} rc_text_t;

/* True when one of the eight bytes in x must be escaped in a JSON string: a control
 * character, '"' or '\\'. Bytes from 0x80 (UTF-8) need none. The word tricks only tell
 * whether some byte matches, not which: the caller then looks byte by byte. */
static inline bool rc_json_escape_in8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = ones * 0x80;
    uint64_t quote = x ^ (ones * '"'), bslash = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash)) &
           high;
}

/* How many bytes from the start of s need no escaping in JSON. Ids, names and reasons almost
 * never do: their strings are then copied whole, not looked at one byte at a time. */
static inline size_t rc_json_plain_prefix(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (rc_json_escape_in8(x))
            break;
    }
    while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

/** Measures `n` bytes at `s` (borrowed, kept in the result): NULL gives an absent text. */
static inline rc_text_t rc_text_measure_n(const char *s, size_t n)
{
    if (s == NULL)
        return (rc_text_t){NULL, 0, false};
    return (rc_text_t){s, (uint32_t)n, rc_json_plain_prefix(s, n) == n};
}

/** Measures NUL-terminated `s` (borrowed, kept in the result); NULL gives an absent text. */
static inline rc_text_t rc_text_measure(const char *s)
{
    return rc_text_measure_n(s, s ? strlen(s) : 0);
}

#endif
