/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast native client: a small C library that speaks the rankcast wire protocol
 * (proto/PROTOCOL.md) over libwebsockets' client API, ws:// and wss://. It connects,
 * subscribes to live lists and tracks events with callbacks, and keeps the connection up.
 *
 * Threading: a client is not thread-safe. Create it, call every function on it and receive
 * every callback on one thread: the thread that calls rcc_client_service(). The one
 * exception is rcc_client_wake(), which any thread may call.
 *
 * Callbacks run inside rcc_client_service() (and, for the ack callbacks of events never
 * acknowledged, inside rcc_client_free()). From a callback an application may call
 * rcc_subscribe(), rcc_unsubscribe(), rcc_track(), rcc_client_close() and the getters, but
 * not rcc_client_free() or rcc_client_service(). Strings and arrays handed to a callback are
 * borrowed until it returns. */
#ifndef RANKCAST_CLIENT_H
#define RANKCAST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Longest id (event, item, user) the protocol allows, in bytes, without the NUL. */
#define RCC_ID_MAX 64
/** Longest surface name, in bytes, without the NUL. */
#define RCC_SURFACE_MAX 32

/* Error codes of the library: 0 is success, the library's own failures are negative.
 * Errors from the server keep their positive protocol code (4000..4503, PROTOCOL.md
 * section 3); rcc_strerror() names both kinds. */
enum {
    RCC_OK = 0,
    RCC_EINVAL = -1,    /* a bad argument or option; nothing was queued or sent */
    RCC_ENOMEM = -2,    /* out of memory */
    RCC_EFULL = -3,     /* the event queue holds max_queue unacknowledged events */
    RCC_ELIMIT = -4,    /* more than welcome.limits allow (subscriptions, k) */
    RCC_ENOENT = -5,    /* unsubscribe of a surface the client does not hold */
    RCC_ECLOSED = -6,   /* the client was closed, or gave up (4006, 4010) */
    RCC_ECANCELED = -7, /* the client was freed before the server acknowledged the event */
    RCC_ECONNECT = -8,  /* a connection attempt failed (refused, DNS, TLS, handshake) */
    RCC_EPROTO = -9,    /* the server sent something this library cannot read */
    RCC_ETOOBIG = -10,  /* a message larger than the limits (ours or the server's) */
    RCC_EIO = -11,      /* libwebsockets failed */
};

/** Encoding of the connection: subprotocol rankcast.v1.msgpack (binary) or rankcast.v1.json. */
typedef enum { RCC_FORMAT_MSGPACK = 0, RCC_FORMAT_JSON = 1 } rcc_format_t;

/** Device class sent in hello; UNSET leaves the field out (the server assumes "other"). */
typedef enum {
    RCC_DEVICE_UNSET = 0,
    RCC_DEVICE_DESKTOP,
    RCC_DEVICE_MOBILE,
    RCC_DEVICE_TABLET,
    RCC_DEVICE_OTHER
} rcc_device_t;

/** Consent sent in hello; DEFAULT leaves the field out (the server's --consent-default). */
typedef enum { RCC_CONSENT_DEFAULT = 0, RCC_CONSENT_YES, RCC_CONSENT_NO } rcc_consent_t;

/** Connection state, reported through on_state. */
typedef enum {
    RCC_STATE_CONNECTING = 0, /* a connection attempt and its hello are under way */
    RCC_STATE_OPEN,           /* welcome received: subscriptions and events flow */
    RCC_STATE_RECONNECTING,   /* the connection was lost; waiting to try again */
    RCC_STATE_CLOSED          /* rcc_client_close(), or a failure that retrying cannot fix */
} rcc_state_t;

/** Kind of an event (PROTOCOL.md section 2.1). */
typedef enum {
    RCC_KIND_VIEW = 0,
    RCC_KIND_CLICK,
    RCC_KIND_CART,
    RCC_KIND_PURCHASE,
    RCC_KIND_RATING,
    RCC_KIND_DWELL,
    RCC_KIND_SEARCH,
    RCC_KIND_IMPRESSION,
    RCC_KIND_DISMISS
} rcc_kind_t;

typedef struct rcc_client rcc_client_t;

/** Why an item is in a list, as data (PROTOCOL.md, `recs` item `reason`): a stable code and
 * what it refers to. Strings are NULL when the server left the field out. */
typedef struct rcc_reason {
    /* co_visited, similar, category_affinity, trending, trending_context, trending_locale,
     * pinned, repeat, new_item, popular, or newer; NULL when the item carries no reason (an
     * older server, or one the library could not read) */
    const char *code;
    const char *item;          /* co_visited, similar: the item of the session that explains it */
    const char *item_name;     /* that item's name */
    const char *category;      /* as rcc_item_t.category */
    const char *category_name; /* its display name, when the catalog gives one */
    const char *segment;       /* trending_context: mobile, tablet, desktop, night, morning, ... */
    const char *locale;        /* trending_locale: a BCP 47 tag, e.g. "de-DE" */
    const char *kind;          /* repeat: what the user last did with it (an event kind) */
    int64_t age_s;             /* repeat: seconds since then; -1 when not given */
} rcc_reason_t;

/** One recommended item. Strings may be NULL when the server left the field out. */
typedef struct rcc_item {
    const char *item; /* the item id; never NULL */
    double score;
    const char *src; /* covisit, content, trending, popular, explore, pinned, repeat, or newer */
    const char *why; /* the reason in plain words */
    const char *name;
    const char *category;
    double price;
    bool has_price;
    rcc_reason_t reason; /* the same reason as data; reason.code is NULL when there is none */
} rcc_item_t;

/** A list pushed by the server for one surface. */
typedef struct rcc_recs {
    const char *surface;
    int64_t version; /* older lists are dropped by the library before this callback */
    const rcc_item_t *items;
    size_t n_items;
    const char *cause; /* the event id that caused the list; NULL for a subscribe answer */
    int64_t took_us;
    const char *variant; /* NULL when the server left it out */
} rcc_recs_t;

/** An error: from the server (code > 0) or found by the library (code < 0). */
typedef struct rcc_error {
    int code;
    const char *name;     /* the stable name of the code */
    const char *message;  /* human-readable detail; never NULL */
    const char *event_id; /* the event the error is about, or NULL */
    bool fatal;           /* the connection closes after it */
    /* What the server says the error refuses (PROTOCOL.md, error): the client message's type
     * ("ping", "subscribe", ...), or NULL; with "subscribe"/"unsubscribe" its surface; with
     * "ping" its t (has_t). */
    const char *about;
    const char *surface;
    bool has_t;
    double t;
} rcc_error_t;

/** Limits in force on the connection (welcome.limits, PROTOCOL.md section 6). */
typedef struct rcc_limits {
    int64_t max_message_bytes;
    int64_t max_batch;
    int64_t max_subscriptions;
    int64_t max_k;
    int64_t events_per_sec;
    int64_t events_burst;
} rcc_limits_t;

/** Callbacks of a client; every one is optional. `user` is rcc_options_t.user_data. */
typedef struct rcc_callbacks {
    /** The state changed. `reason`: 0, a close code of PROTOCOL.md section 4, or an error
     * code (negative, or a server code such as 4010 for CLOSED after a refusal). */
    void (*on_state)(rcc_client_t *c, rcc_state_t state, int reason, void *user);
    /** A newer list for a subscribed surface. `recs` is borrowed until the return. */
    void (*on_recs)(rcc_client_t *c, const rcc_recs_t *recs, void *user);
    /** An application push. `data_json` is the payload as compact JSON text, borrowed. */
    void (*on_push)(rcc_client_t *c, const char *id, const char *topic, const char *data_json,
                    void *user);
    /** An error that is not about a queued event (those go to their ack callback), or a
     * failed connection attempt (RCC_ECONNECT). `err` is borrowed until the return. */
    void (*on_error)(rcc_client_t *c, const rcc_error_t *err, void *user);
} rcc_callbacks_t;

/** Settings of a client. Zero-initialise, then set what differs from the defaults.
 * Strings are copied by rcc_client_new(); the caller keeps ownership of its own. */
typedef struct rcc_options {
    const char *url;     /* required: ws://host[:port][/path] or wss://...; path default /ws */
    rcc_format_t format; /* default msgpack */

    /* hello (PROTOCOL.md section 2.1) */
    const char *token; /* credential, or NULL */
    /* An anonymous id the server issued before (rcc_client_user_id(), stored by the app), or
     * NULL to be issued one; either way the client presents the issued id again on every
     * reconnect, and after 4013 (an id the server did not issue) it comes back at once
     * without one. With a token: the token's subject, or NULL. */
    const char *user_id;
    rcc_device_t device;
    const char *locale; /* e.g. "en-GB", or NULL */
    int tz_offset_min;  /* -840..840; 0 is also the server's default */
    rcc_consent_t consent;

    rcc_callbacks_t callbacks;
    void *user_data; /* passed to every callback; borrowed */

    /* TLS (wss:// only). ca_file: PEM file of the CA(s) to trust instead of the system
     * store; without it the system's store is used (OpenSSL's default paths, which honour
     * SSL_CERT_FILE and SSL_CERT_DIR). tls_insecure: accept self-signed, expired and wrongly named
     * certificates (testing only: it gives up on authenticating the server). */
    const char *ca_file;
    bool tls_insecure;

    /* Reconnect backoff: full jitter, the delay is uniform in [0, min(cap, base * 2^n)]
     * for the n-th attempt in a row. Defaults 500 ms and 30,000 ms. */
    int reconnect_base_ms;
    int reconnect_cap_ms;
    /* Backoff of an event the server refused for now (4020, 4500, 4503). Defaults 250 ms
     * and 30,000 ms. */
    int retry_base_ms;
    int retry_cap_ms;
    /* An event sent but not acknowledged within this is sent again. Default 10,000 ms. */
    int ack_timeout_ms;
    /* Most unacknowledged events held; rcc_track() fails with RCC_EFULL past it. Default
     * 1,000. */
    int max_queue;
    /* Idle seconds before a WebSocket ping; no valid traffic for twice as long closes the
     * connection (then it reconnects). Default 20; negative turns pings off. */
    int ping_interval_s;
} rcc_options_t;

/* Whether a list may show items of the session again (PROTOCOL.md, subscribe `repeat`). */
typedef enum {
    RCC_REPEAT_DEFAULT = 0, /* not sent: the server's default, never */
    RCC_REPEAT_NEVER,       /* only items the user has not acted on in this session */
    RCC_REPEAT_NOT_CURRENT, /* the session's items too, but not the one in view */
    RCC_REPEAT_ALLOWED      /* the session's items, the one in view too */
} rcc_repeat_t;

/** Filters of a subscription; pass NULL to rcc_subscribe() for none. */
typedef struct rcc_filter {
    const char *category; /* only items of this category, or NULL */
    double price_min;     /* used when has_price_min */
    double price_max;     /* used when has_price_max */
    bool has_price_min;
    bool has_price_max;
    rcc_repeat_t repeat;
    /* Receive the lists as changes to the one held (PROTOCOL.md `recs_delta`), item details
     * and reasons once per connection: about a tenth of the bytes at k = 20. on_recs still
     * gets whole lists, the same as without it. */
    bool compact;
} rcc_filter_t;

/** An interaction to track. Fields a kind does not use must be NULL / unset. */
typedef struct rcc_event {
    rcc_kind_t kind;
    const char *item;    /* required for every kind but SEARCH */
    double value;        /* rating 1-5, dwell ms, quantity; used when has_value */
    bool has_value;      /* required for RATING and DWELL */
    const char *query;   /* required for SEARCH */
    const char *surface; /* the list the interaction came from, or NULL */
    int64_t ts_ms;       /* client time; 0: now; negative: left out */
    const char *id;      /* event id, or NULL to have one generated (see rcc_make_event_id) */
} rcc_event_t;

/** Called once per tracked event: status 0 when the server acknowledged it, the server's
 * error code (> 0, e.g. 4012 unknown_item) when it refused it for good, RCC_ETOOBIG when the
 * event alone exceeds welcome.limits.max_message_bytes, or RCC_ECANCELED when the client was
 * freed first. Refusals that say "retry" (4020, 4500, 4503) are retried, not reported.
 * `event_id` is borrowed until the return. */
typedef void (*rcc_ack_cb)(rcc_client_t *c, const char *event_id, int status, void *arg);

/**
 * Creates a client and schedules its first connection attempt, which starts on the first
 * rcc_client_service(). Returns NULL on bad options or when libwebsockets cannot start; then
 * `err` (if not NULL) holds the reason. The caller frees the client with rcc_client_free().
 * `opts` is borrowed for the call only.
 */
rcc_client_t *rcc_client_new(const rcc_options_t *opts, char *err, size_t errlen);

/**
 * Closes the connection (if any) and frees the client. Ack callbacks of events still queued
 * fire with RCC_ECANCELED before it returns; they must not use the client. rcc_client_free(NULL)
 * is a no-op. Waits at most about 200 ms for the server to answer the close.
 */
void rcc_client_free(rcc_client_t *c);

/**
 * Runs the client: waits up to `timeout_ms` (0: do not wait) for network activity or a
 * timer, and handles what is ready, calling callbacks. Call it in a loop. Returns 0, or
 * RCC_ECLOSED once the client is CLOSED (nothing more will happen), or RCC_EIO.
 */
int rcc_client_service(rcc_client_t *c, int timeout_ms);

/**
 * Makes a blocking rcc_client_service() return early. The only function that may be called
 * from another thread (e.g. a signal-driven shutdown path); `c` must stay alive.
 */
void rcc_client_wake(rcc_client_t *c);

/**
 * Closes the connection with code 1000 and stops reconnecting: the state becomes CLOSED.
 * Queued events stay queued (their callbacks fire at rcc_client_free()). Returns 0, or
 * RCC_ECLOSED if already closed.
 */
int rcc_client_close(rcc_client_t *c);

/**
 * Drops the current connection (or attempt) without a close handshake, or ends the wait of the
 * backoff, and connects again at once; the backoff starts afresh. Call it when the network
 * comes back or changes (a new path makes the old socket useless) or the app returns to the
 * foreground. Subscriptions and queued events carry over as on any reconnect. Returns 0, or
 * RCC_ECLOSED once the client is closed.
 */
int rcc_client_reconnect_now(rcc_client_t *c);

/**
 * Subscribes to the live list `surface` (1-32 bytes of a-z 0-9 _ -) of length `k` (1-100,
 * 0 for the server's default of 10). The server answers with the list (on_recs), now or as
 * soon as the connection is open, and again after every reconnect. Subscribing again
 * replaces the parameters. `filters` may be NULL and is copied.
 * Returns 0, RCC_EINVAL, RCC_ELIMIT (more surfaces or a longer list than welcome.limits
 * allow), RCC_ENOMEM or RCC_ECLOSED.
 */
int rcc_subscribe(rcc_client_t *c, const char *surface, int k, const rcc_filter_t *filters);

/** Stops the live list `surface`. Returns 0, RCC_ENOENT, RCC_EINVAL or RCC_ECLOSED. */
int rcc_unsubscribe(rcc_client_t *c, const char *surface);

/** Replaces the token (copied): sent at once with `auth` on a live session, so it outlives
 * its first token without reconnecting, and used in every later hello. A refused one ends
 * the connection with 4010 (on_state CLOSED). Returns 0, RCC_EINVAL (empty or over 4,096
 * bytes), RCC_ENOMEM or RCC_ECLOSED. */
int rcc_set_token(rcc_client_t *c, const char *token);

/**
 * Queues an event. It goes out on the next service turn (batched with the other events of
 * that turn, paced by welcome.limits) and is sent again after a reconnect or a retryable
 * refusal until the server acknowledges it. `cb` (may be NULL) fires exactly once, with
 * `arg`, unless this call fails: then it never fires. `ev` is copied.
 * Returns 0, RCC_EINVAL (a field the protocol would refuse), RCC_EFULL, RCC_ENOMEM or
 * RCC_ECLOSED.
 */
int rcc_track(rcc_client_t *c, const rcc_event_t *ev, rcc_ack_cb cb, void *arg);

/** The current state. */
rcc_state_t rcc_client_state(const rcc_client_t *c);

/** The user id of the last welcome (assigned by the server when none was given), or NULL
 * before the first welcome. Borrowed: valid until the next welcome or rcc_client_free(). */
const char *rcc_client_user_id(const rcc_client_t *c);

/** The limits in force: those of the last welcome, or the protocol's defaults before it. */
void rcc_client_limits(const rcc_client_t *c, rcc_limits_t *out);

/** Events queued and not yet acknowledged (or refused). */
size_t rcc_client_pending(const rcc_client_t *c);

/** Writes a fresh random event id ("e-" and 32 hex digits) into `buf` (at least 35 bytes).
 * Returns 0, or RCC_EINVAL if `buflen` is too small. */
int rcc_make_event_id(char *buf, size_t buflen);

/** The wire name of an event kind ("click"...), or NULL for a value out of range. */
const char *rcc_kind_name(rcc_kind_t kind);

/** A static description of an error code (negative: the library's; positive: the server's
 * protocol name, e.g. "unknown_item"). */
const char *rcc_strerror(int code);

/** libwebsockets log verbosity, process-wide: 0 silences it, 1 errors, 2 also warnings,
 * 3 also notices (libwebsockets' own default). */
void rcc_set_log_level(int level);

#ifdef __cplusplus
}
#endif
#endif
