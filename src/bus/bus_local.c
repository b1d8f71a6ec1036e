/* SPDX-License-Identifier: Apache-2.0 */
/* The in-process bus. Completions are collected and reported together on the next loop
 * turn: one deferred call per turn however many events arrived, no allocation per event.
 * Pushes are kept in their wire form and delivered back to this node on that turn, exactly
 * as a Kafka consumer would deliver them. With an event log (--data-dir), events, erasures,
 * catalog changes and settings go into it in their wire form, and an event's completion is
 * the log's: durable as its fsync policy says. */
#include "bus/bus.h"
#include "log/eventlog.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/grow.h"

#include <stdlib.h>
#include <string.h>

typedef struct completion {
    rc_bus_done_fn done;
    void *arg;
} completion_t;

typedef struct local_bus {
    rc_bus_t base;
    rc_defer_t *defer;
    completion_t *pending, *running;
    uint32_t n_pending, cap_pending, cap_running;
    /* Encoded pushes (a 4-byte length, then the message): one buffer fills while the other
     * is delivered, and both keep their memory, as does the zone that decodes them: no
     * allocation per event. */
    rc_wbuf_t pushes, delivering;
    msgpack_zone zone;
    bool scheduled;
    rc_eventlog_t *log; /* NULL: nothing outlives the process */
    rc_wbuf_t record;   /* one message encoded for the log */
    rc_bus_deliver_fn tap;
    void *tap_ctx;
    rc_bus_deliver_fn relay; /* every message published, for the other loops (node.c) */
    void *relay_ctx;
} local_bus_t;

static void deliver_pushes(local_bus_t *b, rc_wbuf_t *batch)
{
    for (size_t off = 0; off + 4 <= batch->len;) {
        uint32_t len;
        memcpy(&len, rc_wbuf_data(batch) + off, 4);
        rc_bus_msg_t m;
        if (rc_bus_msg_decode(rc_wbuf_data(batch) + off + 4, len, &b->zone, &m) == 0 &&
            b->base.deliver != NULL)
            b->base.deliver(b->base.ctx, &m);
        msgpack_zone_clear(&b->zone);
        off += 4 + len;
    }
}

static void complete_all(void *arg)
{
    local_bus_t *b = arg;
    /* Swap buffers so completions that publish again land in the next batch. */
    completion_t *batch = b->pending;
    uint32_t n = b->n_pending, cap = b->cap_pending;
    rc_wbuf_t pushes = b->pushes;
    b->pushes = b->delivering;
    rc_wbuf_reset(&b->pushes);
    b->pending = b->running;
    b->cap_pending = b->cap_running;
    b->n_pending = 0;
    b->running = batch;
    b->cap_running = cap;
    b->scheduled = false;
    for (uint32_t i = 0; i < n; i++)
        batch[i].done(batch[i].arg, 0);
    deliver_pushes(b, &pushes);
    b->delivering = pushes;
}

static int schedule(local_bus_t *b)
{
    if (b->scheduled)
        return 0;
    int rc = rc_defer(b->defer, complete_all, b);
    if (rc == 0)
        b->scheduled = true;
    return rc;
}

/* What the log keeps: what a restart must know again. */
static bool logged(rc_bus_kind_t kind)
{
    return kind == RC_BUS_EVENT || kind == RC_BUS_ERASE || kind == RC_BUS_CATALOG ||
           kind == RC_BUS_SETTING || kind == RC_BUS_MARK;
}

static int local_publish(rc_bus_t *base, const rc_bus_msg_t *m, rc_bus_done_fn done, void *arg)
{
    local_bus_t *b = (local_bus_t *)base;
    if (b->log != NULL && logged(m->kind)) {
        rc_wbuf_reset(&b->record);
        int rc = rc_bus_msg_encode(m, &b->record);
        if (rc == 0)
            rc = rc_eventlog_append(b->log, rc_wbuf_data(&b->record), b->record.len, done, arg);
        if (rc == 0 && b->tap != NULL)
            b->tap(b->tap_ctx, m);
        return rc;
    }
    if (b->n_pending == b->cap_pending) {
        completion_t *p = rc_grow(b->pending, &b->cap_pending, sizeof(*p), 256);
        if (p == NULL)
            return RC_ENOMEM;
        b->pending = p;
    }
    int rc = schedule(b);
    if (rc != 0)
        return rc;
    if (m->kind == RC_BUS_PUSH) {
        size_t at = b->pushes.len;
        uint32_t len = 0;
        rc_wbuf_put(&b->pushes, &len, 4);
        if ((rc = rc_bus_msg_encode(m, &b->pushes)) != 0) {
            b->pushes.len = at;
            return rc;
        }
        len = (uint32_t)(b->pushes.len - at - 4);
        memcpy(rc_wbuf_data(&b->pushes) + at, &len, 4);
    }
    if (done != NULL)
        b->pending[b->n_pending++] = (completion_t){done, arg};
    if (b->relay != NULL)
        b->relay(b->relay_ctx, m);
    return 0;
}

/* Completes now what is pending; the call already queued on the loop then finds nothing
 * (or what was published since). */
static void local_settle(rc_bus_t *base)
{
    local_bus_t *b = (local_bus_t *)base;
    if (b->scheduled)
        complete_all(b);
}

static int local_ready(rc_bus_t *b, char *reason, size_t reason_len)
{
    (void)b, (void)reason, (void)reason_len;
    return 0;
}

static size_t local_pending(const rc_bus_t *base)
{
    const local_bus_t *b = (const local_bus_t *)base;
    return b->n_pending + (b->log != NULL ? rc_eventlog_pending(b->log) : 0);
}

void rc_bus_local_set_log(rc_bus_t *base, rc_eventlog_t *log)
{
    ((local_bus_t *)base)->log = log;
}

void rc_bus_local_set_tap(rc_bus_t *base, rc_bus_deliver_fn tap, void *ctx)
{
    local_bus_t *b = (local_bus_t *)base;
    b->tap = tap;
    b->tap_ctx = ctx;
}

void rc_bus_local_set_relay(rc_bus_t *base, rc_bus_deliver_fn relay, void *ctx)
{
    local_bus_t *b = (local_bus_t *)base;
    b->relay = relay;
    b->relay_ctx = ctx;
}

static void local_destroy(rc_bus_t *base)
{
    local_bus_t *b = (local_bus_t *)base;
    for (uint32_t i = 0; i < b->n_pending; i++)
        b->pending[i].done(b->pending[i].arg, RC_ECLOSED);
    free(b->pending);
    free(b->running);
    rc_wbuf_free(&b->pushes);
    rc_wbuf_free(&b->delivering);
    rc_wbuf_free(&b->record);
    msgpack_zone_destroy(&b->zone);
    free(b);
}

static const rc_bus_ops_t local_ops = {.name = "local",
                                       .shared = false,
                                       .publish = local_publish,
                                       .ready = local_ready,
                                       .pending = local_pending,
                                       .settle = local_settle,
                                       .destroy = local_destroy};

rc_bus_t *rc_bus_local_new(struct rc_defer *defer, rc_bus_deliver_fn deliver, void *ctx)
{
    local_bus_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->base.ops = &local_ops;
    b->base.deliver = deliver;
    b->base.ctx = ctx;
    b->defer = defer;
    rc_wbuf_init(&b->pushes, 0);
    rc_wbuf_init(&b->delivering, 0);
    rc_wbuf_init(&b->record, 0);
    if (!msgpack_zone_init(&b->zone, 1024)) {
        free(b);
        return NULL;
    }
    return &b->base;
}
