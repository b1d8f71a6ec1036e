/* Deferred calls: run a function on the next turn of the loop. Backends whose work is
 * immediate (the in-memory profile store, the in-process bus) use it to keep the promise
 * every asynchronous API here makes: a callback never runs inside the call that asked
 * for it. */
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
    rc_defer_call_t *calls, *running;
    uint32_t len, cap, running_cap;
} rc_defer_t;

/** Attaches to `loop`. Caller frees with rc_defer_close() (before closing the loop). */
int rc_defer_init(rc_defer_t *d, uv_loop_t *loop);

/** Queues fn(arg) for the next loop turn. Returns 0 or RC_ENOMEM (then fn never runs). */
int rc_defer(rc_defer_t *d, rc_defer_fn fn, void *arg);

/** Runs whatever is still queued, then closes the handle (the loop must run once more to
 * finish closing it). */
void rc_defer_close(rc_defer_t *d);

#endif
