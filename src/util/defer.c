/* SPDX-License-Identifier: Apache-2.0 */
/* The queue is swapped out before running it, so calls queued by a running call wait for
 * the next turn instead of extending this one without bound. */
#include "util/defer.h"
#include "util/error.h"
#include "util/grow.h"

#include <stdlib.h>
#include <string.h>

static void run_queued(rc_defer_t *d)
{
    while (d->len > 0) {
        rc_defer_call_t *batch = d->calls;
        uint32_t n = d->len, batch_cap = d->cap;
        d->calls = d->running;
        d->cap = d->running_cap;
        d->len = 0;
        d->running = batch;
        d->running_cap = batch_cap;
        for (uint32_t i = 0; i < n; i++)
            batch[i].fn(batch[i].arg);
        if (d->idle.data == NULL) /* closing: drain everything now */
            continue;
        break;
    }
}

static void stop_when_empty(rc_defer_t *d)
{
    if (d->len == 0) {
        uv_idle_stop(&d->idle);
        uv_check_stop(&d->check);
    }
}

static void on_idle(uv_idle_t *h)
{
    rc_defer_t *d = h->data;
    run_queued(d);
    stop_when_empty(d);
}

static void on_check(uv_check_t *h)
{
    rc_defer_t *d = h->data;
    run_queued(d);
    stop_when_empty(d);
}

int rc_defer_init(rc_defer_t *d, uv_loop_t *loop)
{
    memset(d, 0, sizeof(*d));
    int rc = uv_idle_init(loop, &d->idle);
    if (rc == 0)
        rc = uv_check_init(loop, &d->check);
    d->idle.data = d;
    d->check.data = d;
    return rc == 0 ? 0 : RC_EIO;
}

int rc_defer(rc_defer_t *d, rc_defer_fn fn, void *arg)
{
    if (d->len == d->cap) {
        rc_defer_call_t *p = rc_grow(d->calls, &d->cap, sizeof(*p), 64);
        if (p == NULL)
            return RC_ENOMEM;
        d->calls = p;
    }
    d->calls[d->len++] = (rc_defer_call_t){fn, arg};
    if (d->idle.data != NULL) {
        uv_idle_start(&d->idle, on_idle);
        uv_check_start(&d->check, on_check);
    }
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

void rc_defer_close(rc_defer_t *d)
{
    d->idle.data = NULL;
    run_queued(d);
    uv_close((uv_handle_t *)&d->idle, on_closed);
    uv_close((uv_handle_t *)&d->check, on_closed);
    free(d->calls);
    free(d->running);
    d->calls = d->running = NULL;
    d->len = d->cap = d->running_cap = 0;
}
