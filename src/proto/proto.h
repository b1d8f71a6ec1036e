/* SPDX-License-Identifier: Apache-2.0 */
/* The wire format of protocol v1 (proto/PROTOCOL.md): client messages decoded from
 * MessagePack or JSON into C structs, server messages encoded from C structs into either.
 * Pure: no I/O, no globals, safe on any input (this is what the fuzzers drive). The general
 * writer (enc.h) and the JSON to MessagePack conversion (json_to_object.h) are included. */
#ifndef RC_PROTO_H
#define RC_PROTO_H

#include "proto/enc.h"
#include "proto/json_read.h"
#include "proto/json_to_object.h"
#include "util/wbuf.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol error codes (PROTOCOL.md section 3): stable, sent to clients. */
#define RC_PROTO_ERRORS(X)                                                                         \
    X(MALFORMED, 4000, "malformed")                                                                \
    X(UNKNOWN_TYPE, 4001, "unknown_type")                                                          \
    X(INVALID_FIELD, 4002, "invalid_field")                                                        \
    X(TOO_LARGE, 4003, "too_large")                                                                \
    X(HELLO_REQUIRED, 4004, "hello_required")                                                      \
    X(HELLO_REPEATED, 4005, "hello_repeated")                                                      \
    X(UNSUPPORTED_VERSION, 4006, "unsupported_version")                                            \
    X(WRONG_FRAME_KIND, 4007, "wrong_frame_kind")                                                  \
    X(TOO_MANY_ERRORS, 4008, "too_many_errors")                                                    \
    X(UNAUTHORIZED, 4010, "unauthorized")                                                          \
    X(TOKEN_EXPIRED, 4011, "token_expired")                                                        \
    X(UNKNOWN_ITEM, 4012, "unknown_item")                                                          \
    X(ANONYMOUS_ID_REFUSED, 4013, "anonymous_id_refused")                                          \
    X(RATE_LIMITED, 4020, "rate_limited")                                                          \
    X(TOO_MANY_SUBSCRIPTIONS, 4021, "too_many_subscriptions")                                      \
    X(BATCH_TOO_LARGE, 4022, "batch_too_large")                                                    \
    X(IDLE_TIMEOUT, 4023, "idle_timeout")                                                          \
    X(UNKNOWN_SURFACE, 4040, "unknown_surface")                                                    \
    X(SLOW_CONSUMER, 4050, "slow_consumer")                                                        \
    X(INTERNAL, 4500, "internal")                                                                  \
    X(UNAVAILABLE, 4503, "unavailable")

enum {
#define RC_PERR_ENUM(sym, code, name) RC_PERR_##sym = (code),
    RC_PROTO_ERRORS(RC_PERR_ENUM)
#undef RC_PERR_ENUM
};

/** Stable name of a protocol error code ("malformed", ...), or NULL if it is not one. */
const char *rc_proto_error_name(int code);

typedef enum {
    RC_EV_VIEW = 0,
    RC_EV_CLICK,
    RC_EV_CART,
    RC_EV_PURCHASE,
    RC_EV_RATING,
    RC_EV_DWELL,
    RC_EV_SEARCH,
    RC_EV_IMPRESSION,
    RC_EV_DISMISS,
    RC_EVENT_KIND_COUNT
} rc_event_kind_t;

typedef enum {
    RC_DEV_OTHER = 0,
    RC_DEV_DESKTOP,
    RC_DEV_MOBILE,
    RC_DEV_TABLET,
    RC_DEVICE_COUNT
} rc_device_t;

/** Wire names of the enums above. */
const char *rc_event_kind_name(int kind);
const char *rc_device_name(int device);

/** A string borrowed from a decoded message (not NUL-terminated). */
typedef struct rc_str {
    const char *p;
    uint32_t n;
} rc_str_t;

#define RC_ID_MAX      64
#define RC_SURFACE_MAX 32

/** Whether s[0..n) is a valid id (PROTOCOL.md: 1..64 bytes of A-Za-z0-9._:@-). */
bool rc_proto_valid_id(const char *s, size_t n);

/* subscribe `repeat`: whether a list may show items of the session again. The values are
 * in the order of the engine's rc_repeat_t, which takes them as they are. */
enum { RC_PROTO_REPEAT_NEVER, RC_PROTO_REPEAT_NOT_CURRENT, RC_PROTO_REPEAT_ALLOWED };

typedef struct rc_proto_event {
    rc_str_t id, item, query, surface;
    rc_event_kind_t kind;
    bool has_value, has_ts;
    double value;
    int64_t ts_ms;
} rc_proto_event_t;

/* One element of an `events` batch: valid (err == 0) or refused with its own error. */
typedef struct rc_proto_batch_item {
    rc_proto_event_t ev;
    int err;
    const char *err_msg; /* NUL-terminated; set when err != 0 */
} rc_proto_batch_item_t;

typedef enum {
    RC_MSG_NONE = 0,
    RC_MSG_HELLO,
    RC_MSG_EVENT,
    RC_MSG_EVENTS,
    RC_MSG_SUBSCRIBE,
    RC_MSG_UNSUBSCRIBE,
    RC_MSG_PING,
    RC_MSG_AUTH,
} rc_msg_type_t;

typedef struct rc_msg {
    rc_msg_type_t type;
    union {
        struct {
            int64_t v;
            rc_str_t token, user, locale;
            rc_device_t device;
            int32_t tz_offset_min;
            bool has_consent, consent;
        } hello;
        rc_proto_event_t event;
        struct {
            rc_proto_batch_item_t *items;
            uint32_t n;
        } events;
        struct {
            rc_str_t surface, category;
            int32_t k;
            int32_t repeat;            /* RC_PROTO_REPEAT_* (0: never, also when absent) */
            bool compact, has_compact; /* lists as changes (recs_delta) rather than whole */
            bool has_price_min, has_price_max;
            double price_min, price_max;
        } subscribe;
        struct {
            rc_str_t surface;
        } unsubscribe;
        struct {
            bool has_t;
            double t;
        } ping;
        struct {
            rc_str_t token;
        } auth;
    } u;
} rc_msg_t;

/** What an error refuses beyond an event id (PROTOCOL.md, `error`): the client message's type,
 * with its surface (subscribe, unsubscribe) or its `t` (ping), so a client can tell which of
 * its messages was refused without sending one at a time. */
typedef struct rc_error_about {
    const char *type; /* "ping", "subscribe", ...; NULL: the error is about no one message */
    rc_str_t surface; /* empty: none */
    bool has_t;
    double t;
} rc_error_about_t;

/* A decoder holds the scratch memory of one message at a time; reusing it keeps the
 * steady state free of allocations for MessagePack input. */
typedef struct rc_proto_decoder {
    msgpack_zone zone;
    rc_json_reader_t json;
    uint32_t max_batch;
    uint32_t max_k;
    char err[160];   /* detail of the last error, NUL-terminated */
    rc_str_t err_id; /* the event id the last error is about, if known */
    /* The refused message's type (and valid surface or t) when the last error came after
     * its type was known; type NULL otherwise. Strings borrow as err_id does. */
    rc_error_about_t err_about;
} rc_proto_decoder_t;

/** Prepares a decoder. Limits: `max_batch` events per `events`, `max_k` per subscribe.
 * Caller frees with rc_proto_decoder_free(). Returns 0 or RC_ENOMEM. */
int rc_proto_decoder_init(rc_proto_decoder_t *d, uint32_t max_batch, uint32_t max_k);
void rc_proto_decoder_free(rc_proto_decoder_t *d);

/** Decodes one client message. Strings in `*out` borrow from `data` and from the decoder;
 * they stay valid until the next decode on `d`, so `data` must outlive that too.
 * Returns 0, or a protocol error code (RC_PERR_*, > 0) with d->err (and d->err_id when the
 * error concerns an identifiable event, d->err_about when the message's type was known). For
 * RC_MSG_EVENTS, 0 means the batch itself was valid; its items may still carry their own errors. */
int rc_proto_decode(rc_proto_decoder_t *d, rc_format_t fmt, const void *data, size_t len,
                    rc_msg_t *out);

/* ---- encoding (the writer, rc_enc_t, is enc.h) ---- */

/* Server messages. Each encodes one whole message into a fresh encoder's buffer. */

typedef struct rc_limits {
    int64_t max_message_bytes, max_batch, max_subscriptions, max_k, events_per_sec, events_burst;
} rc_limits_t;

void rc_proto_encode_welcome(rc_enc_t *e, const char *session, rc_str_t user, const char *node,
                             int64_t server_time_ms, const rc_limits_t *limits);
void rc_proto_encode_ack(rc_enc_t *e, const rc_str_t *ids, uint32_t n);
void rc_proto_encode_error(rc_enc_t *e, int code, const char *message, rc_str_t id, bool fatal);

/** rc_proto_encode_error() with `about` (borrowed; NULL or a NULL type: nothing more). */
void rc_proto_encode_error_about(rc_enc_t *e, int code, const char *message, rc_str_t id,
                                 bool fatal, const rc_error_about_t *about);

/** The wire name of a client message type ("hello", "ping", ...), or NULL for RC_MSG_NONE. */
const char *rc_proto_msg_type_name(rc_msg_type_t type);
void rc_proto_encode_pong(rc_enc_t *e, bool has_t, double t, int64_t server_time_ms);
void rc_proto_encode_drain(rc_enc_t *e, const char *reason, int64_t reconnect_after_ms);
/** The answer to `auth` (a token refreshed on a live session): the new expiry. */
void rc_proto_encode_auth_ok(rc_enc_t *e, int64_t exp_ms);

/* An item's reason as data (PROTOCOL.md, `recs`): a code and what it refers to. Every text
 * but `code` may be absent (p NULL: left out); `age_s` < 0 is left out. The texts are
 * measured (rc_text_t): the encoder neither looks for their ends nor for bytes to escape. */
typedef struct rc_recs_reason {
    rc_text_t code; /* borrowed, as the rest */
    rc_text_t item, item_name;
    rc_text_t category, category_name;
    rc_text_t segment;
    rc_text_t locale;
    rc_text_t kind;
    int64_t age_s;
} rc_recs_reason_t;

typedef struct rc_recs_item {
    rc_text_t item; /* ids and texts, borrowed */
    double score;
    rc_text_t src;
    rc_text_t why;
    const rc_recs_reason_t *reason; /* NULL: none (left out) */
    rc_text_t name;                 /* absent when the catalog does not know the item */
    rc_text_t category;             /* absent when unknown */
    double price;                   /* < 0 when unknown */
} rc_recs_item_t;

typedef struct rc_recs {
    rc_text_t surface;
    int64_t version;
    const rc_recs_item_t *items;
    uint32_t n_items;
    rc_str_t cause; /* n == 0: no cause (the list sent on subscribe) */
    int64_t took_us;
    rc_text_t variant;
} rc_recs_t;

void rc_proto_encode_recs(rc_enc_t *e, const rc_recs_t *r);

/* A list as changes to the one the client holds (PROTOCOL.md, `recs_delta`): what to remove,
 * where to place items that moved or are new, every score and reason (by a number the
 * connection defined once), the details of items new to the connection, and the reasons it
 * has not had yet. */
typedef struct rc_recs_place {
    uint32_t pos;
    rc_text_t item;
} rc_recs_place_t;

/* A reason new to the connection: number `rid` stands for `it`'s src, why and reason. */
typedef struct rc_recs_reason_def {
    uint32_t rid;
    const rc_recs_item_t *it;
} rc_recs_reason_def_t;

typedef struct rc_recs_delta {
    rc_text_t surface;
    int64_t version;
    int64_t base;            /* 0: the empty list (a whole list) */
    const rc_text_t *remove; /* ids */
    uint32_t n_remove;
    const rc_recs_place_t *place;
    uint32_t n_place;
    const double *scores; /* n_items, the new list's order */
    const uint32_t *rids; /* n_items: each item's reason number */
    uint32_t n_items;
    const rc_recs_item_t *const *details; /* items whose name, category, price go */
    uint32_t n_details;
    const rc_recs_reason_def_t *reasons;
    uint32_t n_reasons;
    rc_str_t cause;
    int64_t took_us;
    rc_text_t variant;
} rc_recs_delta_t;

void rc_proto_encode_recs_delta(rc_enc_t *e, const rc_recs_delta_t *d);
void rc_proto_encode_push(rc_enc_t *e, rc_str_t id, rc_str_t topic, const msgpack_object *data);

#endif
