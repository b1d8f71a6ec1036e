/* SPDX-License-Identifier: Apache-2.0 */
/* Deferred calls: run a function once the current callback has returned, at the end of
 * this loop turn (before the gateway writes the turn's frames) or at the latest on the
 * next one. Backends whose work is immediate (the in-memory profile store, the in-process
 * bus) use it to keep the promise every asynchronous API here makes: a callback never runs
 * inside the call that asked for it. So an event's `ack`, completed by the in-process bus,
 * leaves in the same write as the list the event changed. */
#ifndef RC_DEFER_H
#define RC_DEFER_H

#include <uv.h>

typedef void (*rc_defer_fn)(void *arg);

typedef struct rc_defer_call {
    rc_defer_fn fn;
    void *arg;
} rc_defer_call_t;

typedef struct rc_defer {
    uv_idle_t idle; /* active only while calls are queued, so the loop never spins idle */
    /* Started afresh for each batch, so it runs before check handles started earlier (libuv
     * runs the newest first): the gateway's end-of-turn flush among them. */
    uv_check_t check;
    rc_defer_call_t *calls, *running;
    uint32_t len, cap, running_cap;
} rc_defer_t;

/** Attaches to `loop`. Caller frees with rc_defer_close() (before closing the loop). */
int rc_defer_init(rc_defer_t *d, uv_loop_t *loop);

/** Queues fn(arg) for the end of this loop turn or the next one. Returns 0 or RC_ENOMEM
 * (then fn never runs). */
int rc_defer(rc_defer_t *d, rc_defer_fn fn, void *arg);

/** Runs whatever is still queued, then closes the handle (the loop must run once more to
 * finish closing it). */
void rc_defer_close(rc_defer_t *d);

#endif
