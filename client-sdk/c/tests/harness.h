/* SPDX-License-Identifier: Apache-2.0 */
/* Test harness of the client library: starts and stops the real rankcast server binary on
 * a free port, and records what a client's callbacks saw so tests can wait for it. */
#ifndef RCCT_HARNESS_H
#define RCCT_HARNESS_H

#include <rankcast/client.h>

#include <stdbool.h>
#include <sys/types.h>

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ctest's SKIP_RETURN_CODE: the server binary is missing. */
#define RCCT_SKIP 77

typedef struct rcct_server {
    pid_t pid;
    int port;
    const char *extra[16]; /* extra arguments, NULL-terminated */
} rcct_server_t;

/** The server binary: $RANKCAST_BIN, else the tree's build/server/rankcast; NULL (with a
 * message on stderr) when it is not executable. */
const char *rcct_server_bin(void);

/** A TCP port nothing listens on now (the kernel's pick). */
int rcct_free_port(void);

/** Starts the server on s->port (picked if 0) with s->extra and the demo catalog, and waits
 * until it accepts connections. Returns 0 or -1. */
int rcct_server_start(rcct_server_t *s);

/** Sends `sig` and waits for the exit; returns the wait status. */
int rcct_server_stop(rcct_server_t *s, int sig);

/** "ws://127.0.0.1:PORT/ws" into buf. */
const char *rcct_url(const rcct_server_t *s, const char *scheme, char *buf, size_t len);

/** One HTTP/1.1 request to 127.0.0.1:port (Connection: close). `token` (or NULL) goes in
 * Authorization: Bearer, `body` (or NULL) is sent as JSON. The response, headers and body,
 * lands in `resp`. Returns the status code or -1. */
int rcct_http(int port, const char *method, const char *path, const char *token, const char *body,
              char *resp, size_t resp_len);

/* ---- recorder ---- */

#define RCCT_MAX 512

typedef struct rcct_recs {
    char surface[RCC_SURFACE_MAX + 1];
    int64_t version;
    char cause[RCC_ID_MAX + 1]; /* "" for a subscribe answer */
    size_t n_items;
    char first_item[RCC_ID_MAX + 1];
    char first_category[65];
    char first_reason[32]; /* the first item's reason code, "" when it has none */
    size_t n_reasons;      /* items with a reason code */
    uint64_t sig;          /* a hash of every field of every item, in order */
    int opens_before;      /* how many OPEN states had been seen when it arrived */
} rcct_recs_t;

typedef struct rcct_rec {
    rcc_state_t states[RCCT_MAX];
    int reasons[RCCT_MAX];
    int n_states, opens, reconnects;
    rcct_recs_t recs[RCCT_MAX];
    int n_recs;
    char ack_ids[RCCT_MAX][RCC_ID_MAX + 1];
    int ack_status[RCCT_MAX];
    int n_acks;
    int errors[RCCT_MAX];
    char last_error[256];
    int n_errors;
    char push_topic[65];
    char push_data[1024];
    int n_pushes;
} rcct_rec_t;

/** Sets the recorder's callbacks and user_data in `o` (and zeroes the recorder). */
void rcct_rec_attach(rcct_rec_t *r, rcc_options_t *o);

/** Ack callback recording into the rcct_rec_t passed as `arg`. */
void rcct_on_ack(rcc_client_t *c, const char *event_id, int status, void *arg);

/** Services `c` until `done(r, arg)` holds or `timeout_ms` passes; returns done's value. */
bool rcct_pump(rcc_client_t *c, rcct_rec_t *r, int timeout_ms,
               bool (*done)(const rcct_rec_t *r, const void *arg), const void *arg);

/* Common conditions for rcct_pump(); `arg` as noted. */
bool rcct_opened(const rcct_rec_t *r, const void *n_opens);          /* const int * */
bool rcct_in_state(const rcct_rec_t *r, const void *state);          /* const rcc_state_t * */
bool rcct_acked(const rcct_rec_t *r, const void *n_acks);            /* const int * */
bool rcct_recs_for(const rcct_rec_t *r, const void *surface);        /* const char * */
bool rcct_recs_caused_by(const rcct_rec_t *r, const void *event_id); /* const char * */
bool rcct_has_error(const rcct_rec_t *r, const void *code);          /* const int * */

/** The status the ack callback got for `id`, or INT32_MIN if it did not fire. */
int rcct_ack_status(const rcct_rec_t *r, const char *id);
/** How many times the ack callback fired for `id`. */
int rcct_ack_count(const rcct_rec_t *r, const char *id);
/** How many subscribe answers (no cause) for `surface` arrived after the `opens`-th OPEN. */
int rcct_answers_after_open(const rcct_rec_t *r, const char *surface, int opens);

/** Options for a test client: recorder attached, fast reconnects, quiet logs. */
void rcct_options(rcc_options_t *o, rcct_rec_t *r, const char *url, rcc_format_t fmt);

#endif
