/* SPDX-License-Identifier: Apache-2.0 */
/* The protocol's messages (PROTOCOL.md section 2): builds those a client sends, with the
 * checks that keep the server from refusing them, and reads those it receives into the
 * public structs. Private. */
#ifndef RCC_MESSAGES_H
#define RCC_MESSAGES_H

#include "rankcast/client.h"

#include <jansson.h>

/** The fields of hello; strings are borrowed. */
typedef struct rcc_hello {
    const char *token;
    const char *user_id;
    rcc_device_t device;
    const char *locale;
    int tz_offset_min;
    rcc_consent_t consent;
} rcc_hello_t;

/** Checks hello's fields; returns 0 or RCC_EINVAL with a reason in `why` (static text). */
int rcc_msg_check_hello(const rcc_hello_t *h, const char **why);

/** A new hello message (caller releases with json_decref()), or NULL when out of memory. */
json_t *rcc_msg_hello(const rcc_hello_t *h);

/**
 * Builds the map of one event (without `type`) from `ev` and the event id `id` (both
 * borrowed). `now_ms` fills ts_ms when ev->ts_ms is 0. Returns 0 and a new reference in
 * `*out`, RCC_EINVAL (with a reason in `why`) or RCC_ENOMEM.
 */
int rcc_msg_event_fields(const rcc_event_t *ev, const char *id, int64_t now_ms, json_t **out,
                         const char **why);

/** `event` around one event map (borrowed), or `events` around `n` of them; new references. */
json_t *rcc_msg_event(json_t *fields);
json_t *rcc_msg_events(json_t *const *fields, size_t n);

/** Checks a subscription; returns 0 or RCC_EINVAL. */
int rcc_msg_check_subscribe(const char *surface, int k, const rcc_filter_t *filters);

/** `subscribe` and `unsubscribe` messages; new references, or NULL when out of memory. */
json_t *rcc_msg_subscribe(const char *surface, int k, const rcc_filter_t *filters);
json_t *rcc_msg_unsubscribe(const char *surface);
/** The `auth` message: a fresh token for the live session. */
json_t *rcc_msg_auth(const char *token);

/** The `type` of a received message, or NULL. */
const char *rcc_msg_type(const json_t *msg);

/**
 * Reads a welcome: the user id (borrowed from `msg`) and the limits; a limit the server
 * left out keeps its default. Returns 0 or RCC_EPROTO.
 */
int rcc_msg_read_welcome(const json_t *msg, const char **user_id, rcc_limits_t *limits);

/** The protocol's default limits (PROTOCOL.md section 6). */
void rcc_msg_default_limits(rcc_limits_t *limits);

/**
 * Reads a recs message into `out`, whose strings are borrowed from `msg`. The items array is
 * allocated: the caller frees `*items` with free() (also on failure). Returns 0, RCC_EPROTO
 * or RCC_ENOMEM.
 */
int rcc_msg_read_recs(const json_t *msg, rcc_recs_t *out, rcc_item_t **items);

/* An item's reason (PROTOCOL.md `recs`), leniently: r->code is NULL when `j` is none. The
 * strings borrow from `j`. */
void rcc_msg_read_reason(const json_t *j, rcc_reason_t *r);

/** Reads an error message into `out` (strings borrowed from `msg`). Returns 0 or RCC_EPROTO. */
int rcc_msg_read_error(const json_t *msg, rcc_error_t *out);

/** Whether an event refused with `code` is to be sent again later (4020, 4500, 4503). */
bool rcc_msg_code_retryable(int code);

#endif
