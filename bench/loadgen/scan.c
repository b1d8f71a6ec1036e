/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scanning, not parsing, what servers send: a key's scalar in a flat JSON message and a
 * header in an HTTP head.
 *
 * The generator must not become the bottleneck it measures, so it does not parse whole
 * messages: it finds `"key"` followed by a colon and reads the scalar after it. Server
 * messages are flat at the top level for the keys we need (type, cause, code, id, ids), and
 * item maps inside `recs` use other key names, so the first match is the top-level one.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

const char *lg_skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Returns a pointer just past the colon that follows `"key"`, or NULL. */
const char *lg_json_find_value(const char *js, size_t len, const char *key)
{
    char needle[40];
    int needle_len = snprintf(needle, sizeof(needle), "\"%s\"", key);
    if (needle_len < 0 || (size_t)needle_len >= sizeof(needle))
        return NULL;
    const char *end = js + len;
    const char *p = js;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), needle, (size_t)needle_len);
        if (!hit)
            return NULL;
        const char *after = lg_skip_ws(hit + needle_len, end);
        bool escaped = hit > js && hit[-1] == '\\';
        if (!escaped && after < end && *after == ':')
            return lg_skip_ws(after + 1, end);
        p = hit + 1;
    }
    return NULL;
}

/* Reads a JSON string without escapes starting at `p` (at its quote); returns end or NULL. */
const char *lg_json_read_plain_string(const char *p, const char *end, const char **out,
                                      size_t *out_len)
{
    if (p >= end || *p != '"')
        return NULL;
    const char *start = p + 1;
    const char *q = start;
    while (q < end && *q != '"') {
        if (*q == '\\')
            return NULL;
        q++;
    }
    if (q >= end)
        return NULL;
    *out = start;
    *out_len = (size_t)(q - start);
    return q + 1;
}

int lg_json_find_string(const char *js, size_t len, const char *key, const char **out,
                        size_t *out_len)
{
    const char *p = lg_json_find_value(js, len, key);
    if (!p)
        return -1;
    return lg_json_read_plain_string(p, js + len, out, out_len) ? 0 : -1;
}

int lg_json_find_int(const char *js, size_t len, const char *key, long *out)
{
    const char *p = lg_json_find_value(js, len, key);
    const char *end = js + len;
    if (!p || p >= end)
        return -1;
    bool negative = *p == '-';
    if (negative)
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    long value = 0;
    while (p < end && *p >= '0' && *p <= '9' && value < 100000000L)
        value = value * 10 + (*p++ - '0');
    *out = negative ? -value : value;
    return 0;
}

/* Reads an unsigned integer after `"key":`; for nanosecond stamps past lg_json_find_int's cap. */
int lg_json_find_u64(const char *js, size_t len, const char *key, uint64_t *out)
{
    const char *p = lg_json_find_value(js, len, key);
    const char *end = js + len;
    if (!p || p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t value = 0;
    while (p < end && *p >= '0' && *p <= '9' && value < UINT64_MAX / 10)
        value = value * 10 + (uint64_t)(*p++ - '0');
    *out = value;
    return 0;
}

bool lg_str_equals(const char *s, size_t len, const char *literal)
{
    return strlen(literal) == len && memcmp(s, literal, len) == 0;
}

/* Finds header `name` (case-insensitive) in an HTTP head; returns its trimmed value. */
bool lg_http_header_value(const char *head, size_t len, const char *name, const char **value,
                          size_t *value_len)
{
    size_t name_len = strlen(name);
    const char *end = head + len;
    const char *line = memchr(head, '\n', len);
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            return false;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = lg_skip_ws(line + name_len + 1, eol);
            const char *v_end = eol;
            while (v_end > v && (v_end[-1] == '\r' || v_end[-1] == ' ' || v_end[-1] == '\t'))
                v_end--;
            *value = v;
            *value_len = (size_t)(v_end - v);
            return true;
        }
        line = eol;
    }
    return false;
}
