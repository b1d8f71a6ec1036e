/* The in-process bus. Completions are collected and reported together on the next loop
 * turn: one deferred call per turn however many events arrived, no allocation per event. */
#include "bus.h"
#include "defer.h"
#include "error.h"

#include <stdlib.h>

typedef struct completion {
    rc_bus_done_fn done;
    void *arg;
} completion_t;

typedef struct local_bus {
    rc_bus_t base;
    rc_defer_t *defer;
    completion_t *pending, *running;
    uint32_t n_pending, cap_pending, cap_running;
    bool scheduled;
} local_bus_t;

static void complete_all(void *arg)
{
    local_bus_t *b = arg;
    /* Swap buffers so completions that publish again land in the next batch. */
    completion_t *batch = b->pending;
    uint32_t n = b->n_pending, cap = b->cap_pending;
    b->pending = b->running;
    b->cap_pending = b->cap_running;
    b->n_pending = 0;
    b->running = batch;
    b->cap_running = cap;
    b->scheduled = false;
    for (uint32_t i = 0; i < n; i++)
        batch[i].done(batch[i].arg, 0);
}

static int local_publish(rc_bus_t *base, const rc_bus_event_t *e, rc_bus_done_fn done, void *arg)
{
    local_bus_t *b = (local_bus_t *)base;
    (void)e;
    if (b->n_pending == b->cap_pending) {
        uint32_t cap = b->cap_pending ? b->cap_pending * 2 : 256;
        completion_t *p = realloc(b->pending, cap * sizeof(*p));
        if (p == NULL)
            return RC_ENOMEM;
        b->pending = p;
        b->cap_pending = cap;
    }
    if (!b->scheduled) {
        int rc = rc_defer(b->defer, complete_all, b);
        if (rc != 0)
            return rc;
        b->scheduled = true;
    }
    b->pending[b->n_pending++] = (completion_t){done, arg};
    return 0;
}

static int local_ready(rc_bus_t *b, char *reason, size_t reason_len)
{
    (void)b, (void)reason, (void)reason_len;
    return 0;
}

static void local_destroy(rc_bus_t *base)
{
    local_bus_t *b = (local_bus_t *)base;
    for (uint32_t i = 0; i < b->n_pending; i++)
        b->pending[i].done(b->pending[i].arg, RC_ECLOSED);
    free(b->pending);
    free(b->running);
    free(b);
}

static const rc_bus_ops_t local_ops = {"local", local_publish, local_ready, local_destroy};

rc_bus_t *rc_bus_local_new(struct rc_defer *defer)
{
    local_bus_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->base.ops = &local_ops;
    b->defer = defer;
    return &b->base;
}
