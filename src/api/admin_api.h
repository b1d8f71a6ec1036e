/* SPDX-License-Identifier: Apache-2.0 */
/* Bodies of the HTTP admin API (docs/api.md), parsed and validated from untrusted bytes.
 * Pure: no I/O, safe on any input (a fuzzer drives it); the gateway only routes. */
#ifndef RC_ADMIN_API_H
#define RC_ADMIN_API_H

#include "proto/proto.h"
#include "util/wbuf.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define RC_API_BODY_MAX 65536

/* POST /api/v1/push: {"user"|"segment", "topic"?, "data"}. */
typedef struct rc_api_push {
    json_t *root;           /* owns the strings below */
    rc_str_t user, segment; /* exactly one is non-empty */
    rc_str_t topic;         /* "message" when not given */
    msgpack_zone zone;      /* owns `data` */
    msgpack_object data;    /* the payload, any JSON value */
} rc_api_push_t;

/** Parses a push body. Returns 0 (release with rc_api_push_free()), or RC_EINVAL with the
 * reason in `err` (nothing to release), or RC_ENOMEM. */
int rc_api_push_parse(rc_api_push_t *p, const char *body, size_t len, char *err, size_t errlen);

/** Releases a parsed push. */
void rc_api_push_free(rc_api_push_t *p);

/** Parses a body that must be one JSON object (duplicate keys refused, at most
 * RC_API_BODY_MAX bytes). Returns it (caller json_decref()s), or NULL with the reason in
 * `err`. The routes owned outside the gateway (the live catalog) parse with it too. */
json_t *rc_api_load_object(const char *body, size_t len, char *err, size_t errlen);

/** Writes the JSON answer `j` (taken over; NULL: out of memory) to `out`, one line, and
 * returns `status`, or 500 when it could not be written. Every admin route answers so. */
unsigned rc_api_answer(rc_wbuf_t *out, unsigned status, json_t *j);

/** Writes the answer {"error": `message`} to `out` (the message is JSON-encoded, never
 * pasted) and returns `status` (500 when out of memory), as rc_api_answer(). */
unsigned rc_api_error(rc_wbuf_t *out, unsigned status, const char *message);

/** Whether every field of the JSON object `obj` is named in `allowed` (NULL-terminated):
 * the admin API refuses unknown fields. */
bool rc_api_only_fields(json_t *obj, const char *const *allowed);

/** Whether `given` (`given_len` bytes) equals the admin credential `expected`, compared in
 * constant time (no early exit on the first differing byte, nor on a length mismatch). */
bool rc_api_token_equal(const char *given, size_t given_len, const char *expected);

/** Parses POST /api/v1/users/erase: {"user"}. Copies the id into `user` (RC_ID_MAX + 1
 * bytes). Returns 0 or RC_EINVAL with the reason in `err`. */
int rc_api_erase_parse(const char *body, size_t len, char *user, char *err, size_t errlen);

#endif
