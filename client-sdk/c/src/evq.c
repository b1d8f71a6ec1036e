/* SPDX-License-Identifier: Apache-2.0 */
/* The event queue (see evq.h). */
#include "evq.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void rcc_evq_init(rcc_evq_t *q, size_t max)
{
    memset(q, 0, sizeof(*q));
    q->max = max;
}

int rcc_evq_push(rcc_evq_t *q, const char *id, json_t *fields, rcc_ack_cb cb, void *arg)
{
    if (q->count >= q->max) {
        json_decref(fields);
        return RCC_EFULL;
    }
    if (rcc_evq_find(q, id) != NULL) {
        json_decref(fields);
        return RCC_EINVAL;
    }
    rcc_evq_entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        json_decref(fields);
        return RCC_ENOMEM;
    }
    rcc_copy_str(e->id, sizeof(e->id), id);
    e->fields = fields;
    e->cb = cb;
    e->arg = arg;
    e->state = RCC_EVQ_READY;
    e->prev = q->tail;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->count++;
    q->ready++;
    return 0;
}

rcc_evq_entry_t *rcc_evq_find(const rcc_evq_t *q, const char *id)
{
    for (rcc_evq_entry_t *e = q->head; e != NULL; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

void rcc_evq_remove(rcc_evq_t *q, rcc_evq_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    e->prev = e->next = NULL;
    if (e->state == RCC_EVQ_READY)
        q->ready--;
    q->count--;
}

void rcc_evq_entry_free(rcc_evq_entry_t *e)
{
    if (e == NULL)
        return;
    json_decref(e->fields);
    free(e);
}

void rcc_evq_set_state(rcc_evq_t *q, rcc_evq_entry_t *e, rcc_evq_state_t state, int64_t at_us)
{
    if (e->state == RCC_EVQ_READY)
        q->ready--;
    if (state == RCC_EVQ_READY)
        q->ready++;
    e->state = state;
    e->at_us = at_us;
}

int64_t rcc_evq_promote(rcc_evq_t *q, int64_t now_us, int64_t ack_timeout_us)
{
    int64_t next = 0;
    for (rcc_evq_entry_t *e = q->head; e != NULL; e = e->next) {
        int64_t due;
        if (e->state == RCC_EVQ_WAITING)
            due = e->at_us;
        else if (e->state == RCC_EVQ_INFLIGHT)
            due = e->at_us + ack_timeout_us;
        else
            continue;
        if (due <= now_us)
            rcc_evq_set_state(q, e, RCC_EVQ_READY, 0);
        else if (next == 0 || due < next)
            next = due;
    }
    return next;
}

size_t rcc_evq_take_ready(const rcc_evq_t *q, rcc_evq_entry_t **out, size_t max)
{
    size_t n = 0;
    for (rcc_evq_entry_t *e = q->head; e != NULL && n < max; e = e->next)
        if (e->state == RCC_EVQ_READY)
            out[n++] = e;
    return n;
}

void rcc_evq_requeue_inflight(rcc_evq_t *q)
{
    for (rcc_evq_entry_t *e = q->head; e != NULL; e = e->next)
        if (e->state == RCC_EVQ_INFLIGHT)
            rcc_evq_set_state(q, e, RCC_EVQ_READY, 0);
}
