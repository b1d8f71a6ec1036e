/* SPDX-License-Identifier: Apache-2.0 */
/* The event queue: every tracked event from rcc_track() until the server acknowledges or
 * refuses it for good. PROTOCOL.md section 5 makes events at-least-once, so an event
 * stays here while in flight and goes back to READY when its connection is lost or its
 * ack is late; a retryable refusal parks it (WAITING) until its backoff ends. Private. */
#ifndef RCC_EVQ_H
#define RCC_EVQ_H

#include "rankcast/client.h"

#include <jansson.h>

typedef enum {
    RCC_EVQ_READY,    /* to be sent on the current connection */
    RCC_EVQ_INFLIGHT, /* sent; waiting for ack or error */
    RCC_EVQ_WAITING   /* refused for now; READY again at `at_us` */
} rcc_evq_state_t;

typedef struct rcc_evq_entry {
    struct rcc_evq_entry *prev, *next;
    char id[RCC_ID_MAX + 1];
    json_t *fields; /* the event map without `type`; owned */
    rcc_ack_cb cb;
    void *arg;
    rcc_evq_state_t state;
    int64_t at_us;    /* INFLIGHT: when sent; WAITING: when due */
    unsigned retries; /* retryable refusals so far, for the backoff */
} rcc_evq_entry_t;

/* A list in the order of rcc_track(), so events go out in that order. Lookups by id are
 * linear: the queue is bounded (max_queue, default 1,000), and acks name few ids. */
typedef struct rcc_evq {
    rcc_evq_entry_t *head, *tail;
    size_t count;
    size_t max;
    size_t ready; /* entries in READY */
} rcc_evq_t;

void rcc_evq_init(rcc_evq_t *q, size_t max);

/**
 * Appends an event. Takes ownership of `fields` whatever the result. Returns 0, RCC_EFULL
 * when the queue holds `max` events, RCC_EINVAL when an event with this id is queued, or
 * RCC_ENOMEM.
 */
int rcc_evq_push(rcc_evq_t *q, const char *id, json_t *fields, rcc_ack_cb cb, void *arg);

/** The queued event with this id, or NULL. Borrowed: valid until it is removed. */
rcc_evq_entry_t *rcc_evq_find(const rcc_evq_t *q, const char *id);

/** Unlinks `e`; the caller then owns it and frees it with rcc_evq_entry_free(). */
void rcc_evq_remove(rcc_evq_t *q, rcc_evq_entry_t *e);

/** Frees an unlinked entry (and its fields). NULL is a no-op. */
void rcc_evq_entry_free(rcc_evq_entry_t *e);

/** Moves an entry to another state, keeping the READY count. */
void rcc_evq_set_state(rcc_evq_t *q, rcc_evq_entry_t *e, rcc_evq_state_t state, int64_t at_us);

/**
 * Makes READY what is due at `now_us`: WAITING entries whose time came, and INFLIGHT entries
 * sent more than `ack_timeout_us` ago. Returns the earliest time (>= now) something else
 * becomes due, or 0 if nothing waits.
 */
int64_t rcc_evq_promote(rcc_evq_t *q, int64_t now_us, int64_t ack_timeout_us);

/** Collects up to `max` READY entries, oldest first, into `out`; returns how many. */
size_t rcc_evq_take_ready(const rcc_evq_t *q, rcc_evq_entry_t **out, size_t max);

/** The connection is gone: everything in flight is sent again on the next one. */
void rcc_evq_requeue_inflight(rcc_evq_t *q);

#endif
