/* SPDX-License-Identifier: Apache-2.0 */
/* A lock-free multi-producer, single-consumer queue of intrusive links: producers on any
 * thread push (a compare-and-swap on the head), the one consumer takes everything at once
 * (an exchange) and gets it oldest first. Each producer's items come out in the order it
 * pushed them. */
#ifndef RC_MPSC_H
#define RC_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct rc_mpsc_link {
    struct rc_mpsc_link *next;
} rc_mpsc_link_t;

typedef struct rc_mpsc {
    _Alignas(64) _Atomic(rc_mpsc_link_t *) head; /* newest first */
} rc_mpsc_t;

static inline void rc_mpsc_init(rc_mpsc_t *q)
{
    atomic_init(&q->head, NULL);
}

/** Pushes `n` (any thread). Returns true when the queue was empty before: the consumer may
 * be asleep and needs waking (once per empty-to-non-empty turn is enough, as it takes the
 * whole queue). */
static inline bool rc_mpsc_push(rc_mpsc_t *q, rc_mpsc_link_t *n)
{
    rc_mpsc_link_t *old = atomic_load_explicit(&q->head, memory_order_relaxed);
    do
        n->next = old;
    while (!atomic_compare_exchange_weak_explicit(&q->head, &old, n, memory_order_release,
                                                  memory_order_relaxed));
    return old == NULL;
}

/** Takes every item (the consumer only), oldest first; NULL when empty. */
static inline rc_mpsc_link_t *rc_mpsc_take_all(rc_mpsc_t *q)
{
    rc_mpsc_link_t *n = atomic_exchange_explicit(&q->head, NULL, memory_order_acquire);
    rc_mpsc_link_t *fifo = NULL;
    while (n != NULL) {
        rc_mpsc_link_t *next = n->next;
        n->next = fifo;
        fifo = n;
        n = next;
    }
    return fifo;
}

static inline bool rc_mpsc_empty(rc_mpsc_t *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire) == NULL;
}

#endif
