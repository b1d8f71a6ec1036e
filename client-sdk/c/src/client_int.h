/* SPDX-License-Identifier: Apache-2.0 */
/* The client object and the functions its source files share: client.c (public API,
 * options, lifecycle), conn.c (libwebsockets glue, timers, reconnects), incoming.c (the
 * server's messages) and outgoing.c (what to write next). Private. */
#ifndef RCC_CLIENT_INT_H
#define RCC_CLIENT_INT_H

#include "evq.h"
#include "messages.h"
#include "rankcast/client.h"
#include "util.h"

#include <libwebsockets.h>

/* Largest received message accepted; a server list of 100 items is far below it. */
#define RCC_RX_MAX_BYTES (8u * 1024 * 1024)
/* Most events in one `events` message, whatever welcome.limits.max_batch says. */
#define RCC_BATCH_CAP 256
/* Most surfaces held, whatever welcome.limits.max_subscriptions says. */
#define RCC_SUBS_CAP 256
/* Seconds from the WebSocket upgrade to welcome before the connection is given up (the
 * server's own hello timeout is 10 s), and the lws timeout reason that marks it. */
#define RCC_WELCOME_TIMEOUT_S      10
#define RCC_WELCOME_TIMEOUT_REASON (PENDING_TIMEOUT_USER_REASON_BASE + 1)

/* One live list the application asked for. It outlives connections: after a reconnect
 * every subscription is sent again. */
typedef struct rcc_sub {
    char surface[RCC_SURFACE_MAX + 1];
    int k;
    char *category;       /* owned, or NULL */
    rcc_filter_t filters; /* category points at the field above */
    bool sent;            /* subscribe written on the current connection */
    int64_t version;      /* newest version delivered on the current connection */
    /* Compact lists: the ids of the list held (a JSON array, owned) and its version, which
     * the next recs_delta applies to; NULL until a list arrives on this subscription (then a
     * version of -1: subscribed again, awaiting the whole list). */
    json_t *held;
    int64_t held_version;
} rcc_sub_t;

struct rcc_client {
    /* settings (copied from rcc_options_t) */
    char *host, *path; /* from the url */
    char *host_header; /* host[:port] for the Host header */
    int port;
    bool tls;
    rcc_format_t format;
    char *token, *user_id, *locale, *ca_file;
    rcc_hello_t hello; /* points into the copies above */
    rcc_callbacks_t cb;
    void *user_data;
    bool tls_insecure;
    int64_t reconnect_base_ms, reconnect_cap_ms, retry_base_ms, retry_cap_ms;
    int64_t ack_timeout_us;
    lws_retry_bo_t idle_policy; /* pings and idle hang-up of a connection */

    /* libwebsockets */
    struct lws_context *ctx;
    struct lws *wsi; /* the current connection, or NULL */
    lws_sorted_usec_list_t sul_connect, sul_wake, sul_tick, sul_drain;

    /* connection state */
    rcc_state_t state;
    bool conn_live;   /* a connection (or an attempt) exists; cleared by conn_lost() */
    bool established; /* the WebSocket handshake completed */
    bool hello_sent;
    bool welcomed;
    bool auth_pending;  /* rcc_set_token() on a live session: send `auth` */
    bool close_pending; /* write a close frame at the next WRITEABLE */
    bool reconnect_now; /* rcc_client_reconnect_now(): the next attempt follows the loss at once */
    bool stopped;       /* no more reconnects: rcc_client_close() or a final refusal */
    bool freeing;       /* inside rcc_client_free(): no callbacks but acks */
    int peer_close_code;
    int fatal_code; /* code of a fatal error received on this connection */
    unsigned reconnect_attempt;
    int64_t drain_deadline_us; /* 0, or when to reconnect after a drain */

    char welcome_user[RCC_ID_MAX + 1];
    bool user_refused; /* 4013: the configured user_id is dropped for the issued one */
    rcc_limits_t limits;

    /* event pacing: a token bucket mirroring the server's (welcome.limits) */
    double tokens;
    int64_t tokens_at_us;
    size_t max_batch; /* welcome.limits.max_batch, halved after an unexpected 4022 */

    rcc_evq_t evq;
    rcc_sub_t *subs;
    size_t n_subs;
    /* Compact lists, per connection (compact.c): item details by id and reasons by number,
     * as the server sent them once (JSON objects, owned; NULL until the first). */
    json_t *compact_details, *compact_reasons;
    char (*unsubs)[RCC_SURFACE_MAX + 1]; /* unsubscribes to write, RCC_SUBS_CAP slots */
    size_t n_unsubs;

    rcc_buf_t rx; /* fragments of a message being received */
    bool rx_binary;
    rcc_buf_t tx; /* the frame being written, with LWS_PRE headroom */
};

/* conn.c */
int rcc_conn_create_context(rcc_client_t *c, char *err, size_t errlen);
void rcc_conn_schedule_connect(rcc_client_t *c, int64_t delay_ms);
/** Asks for a WRITEABLE callback if the connection is up. */
void rcc_conn_want_write(rcc_client_t *c);
/** Ends the current connection: a close frame if it is open, else the attempt is dropped. */
void rcc_conn_drop(rcc_client_t *c);
/** Ends the current connection or attempt at once, without a close handshake (the path may be
 * dead); CLOSED or CONNECTION_ERROR follows. */
void rcc_conn_abandon(rcc_client_t *c);
/** (Re)arms the timer that re-sends late or retried events and waits for the rate limit. */
void rcc_conn_plan_tick(rcc_client_t *c);
/** The welcome arrived: lifts the welcome timeout. */
void rcc_conn_welcomed(rcc_client_t *c);
/** Arms the drain timer: reconnect at `deadline_us` even if the server has not closed. */
void rcc_conn_plan_drain(rcc_client_t *c, int64_t deadline_us);

/* client.c */
void rcc_client_set_state(rcc_client_t *c, rcc_state_t state, int reason);
void rcc_client_report(rcc_client_t *c, int code, const char *message, const char *event_id);
/** Removes a queued event and fires its ack callback with `status`. */
void rcc_client_complete(rcc_client_t *c, rcc_evq_entry_t *e, int status);
rcc_sub_t *rcc_client_find_sub(rcc_client_t *c, const char *surface);

/* ---- compact.c ---- */

/* A recs_delta for `s`: the whole list it stands for into *out (strings borrowed from the
 * message, the held list and the tables, until the next message), items in *items (caller
 * frees), and `s` then holds it. 1 (nothing delivered) for changes that were in flight when
 * `s` was subscribed again (rcc_compact_forget), until its whole list comes. RCC_EPROTO when it
 * does not apply (a base not held, a reason never defined, places that do not fill the list):
 * nothing held changes. */
int rcc_compact_apply(rcc_client_t *c, rcc_sub_t *s, const json_t *msg, rcc_recs_t *out,
                      rcc_item_t **items);
/* A new connection, or a subscription sent again: what compact lists kept is forgotten. */
void rcc_compact_reset(rcc_client_t *c);
void rcc_compact_forget(rcc_sub_t *s);

/* incoming.c */
/** Handles one received message (borrowed). */
void rcc_incoming_message(rcc_client_t *c, const void *data, size_t len, bool binary);
/** The connection ended: reset what was per connection and plan the next attempt. */
void rcc_incoming_conn_lost(rcc_client_t *c, int reason);

/* outgoing.c */
/**
 * Encodes the next frame to write into c->tx: a close request, hello, an unsubscribe, a
 * subscribe or a batch of events, in that order of priority. Returns 1 when c->tx holds a
 * frame, 0 when there is nothing to write now, or a negative error.
 */
int rcc_outgoing_next(rcc_client_t *c);
/** Whether rcc_outgoing_next() would produce a frame now. */
bool rcc_outgoing_pending(rcc_client_t *c);
/** Refills the token bucket to `now_us`. */
void rcc_outgoing_refill(rcc_client_t *c, int64_t now_us);
/** Microseconds until the bucket holds a whole token (0: it does now). */
int64_t rcc_outgoing_us_until_token(rcc_client_t *c, int64_t now_us);
/** The welcome arrived: set the limits and the bucket for this connection. */
void rcc_outgoing_start(rcc_client_t *c);

#endif
