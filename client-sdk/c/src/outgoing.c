/* SPDX-License-Identifier: Apache-2.0 */
/* What the client writes, one frame per WRITEABLE callback: hello first, then (once the
 * welcome is in) unsubscribes, subscribes and batches of events. Events are paced by a
 * token bucket that mirrors the server's (welcome.limits.events_per_sec/events_burst), so
 * the client holds events back instead of drawing 4020 refusals, which would also count
 * towards 4008 too_many_errors. */
#include "client_int.h"
#include "wire.h"

#include <string.h>

/* The server counts a message's events at the time it starts reading the message, so
 * uneven delivery (two messages read closer together than they were sent) can leave its
 * bucket a fraction of a token behind ours. Refilling a tenth slower than the server
 * absorbs that; a 4020 that still happens is retried like any other. */
#define RATE_MARGIN 0.9

void rcc_outgoing_refill(rcc_client_t *c, int64_t now_us)
{
    double burst = (double)c->limits.events_burst;
    double rate = (double)c->limits.events_per_sec * RATE_MARGIN;
    double earned = (double)(now_us - c->tokens_at_us) * rate / 1e6;
    c->tokens = c->tokens + earned > burst ? burst : c->tokens + earned;
    c->tokens_at_us = now_us;
}

int64_t rcc_outgoing_us_until_token(rcc_client_t *c, int64_t now_us)
{
    rcc_outgoing_refill(c, now_us);
    if (c->tokens >= 1)
        return 0;
    double rate = (double)c->limits.events_per_sec * RATE_MARGIN;
    return (int64_t)((1 - c->tokens) * 1e6 / rate) + 1;
}

void rcc_outgoing_start(rcc_client_t *c)
{
    /* The server's bucket is per connection and starts full; so does this one. */
    c->tokens = (double)c->limits.events_burst;
    c->tokens_at_us = rcc_mono_us();
    c->max_batch =
        c->limits.max_batch > RCC_BATCH_CAP ? RCC_BATCH_CAP : (size_t)c->limits.max_batch;
}

static rcc_sub_t *first_unsent_sub(rcc_client_t *c)
{
    for (size_t i = 0; i < c->n_subs; i++)
        if (!c->subs[i].sent)
            return &c->subs[i];
    return NULL;
}

bool rcc_outgoing_pending(rcc_client_t *c)
{
    if (!c->established)
        return false;
    if (c->close_pending || !c->hello_sent)
        return true;
    if (!c->welcomed)
        return false;
    if (c->n_unsubs > 0 || first_unsent_sub(c) != NULL)
        return true;
    if (c->evq.ready == 0)
        return false;
    rcc_outgoing_refill(c, rcc_mono_us());
    return c->tokens >= 1;
}

/* Encodes `msg` (consumed) into c->tx. */
static int encode(rcc_client_t *c, json_t *msg)
{
    if (msg == NULL)
        return RCC_ENOMEM;
    rcc_buf_reset(&c->tx);
    int rc = rcc_wire_encode(c->format, msg, &c->tx);
    json_decref(msg);
    return rc;
}

static int encode_events(rcc_client_t *c, rcc_evq_entry_t **batch, size_t n)
{
    if (n == 1)
        return encode(c, rcc_msg_event(batch[0]->fields));
    json_t *fields[RCC_BATCH_CAP];
    for (size_t i = 0; i < n; i++)
        fields[i] = batch[i]->fields;
    return encode(c, rcc_msg_events(fields, n));
}

/* Takes as many ready events as the bucket and max_batch allow and encodes them, halving
 * the batch until it fits max_message_bytes. Returns 1 with the events marked in flight,
 * 0 when nothing can go now, or an error. */
static int next_events(rcc_client_t *c)
{
    rcc_evq_entry_t *batch[RCC_BATCH_CAP];
    int64_t now_us = rcc_mono_us();
    rcc_outgoing_refill(c, now_us);
    size_t n = c->max_batch;
    if ((double)n > c->tokens)
        n = (size_t)c->tokens;
    n = rcc_evq_take_ready(&c->evq, batch, n);
    while (n > 0) {
        int rc = encode_events(c, batch, n);
        if (rc != 0)
            return rc;
        if (c->tx.len <= (size_t)c->limits.max_message_bytes)
            break;
        if (n == 1) {
            /* Sending it would draw a fatal 4003: refuse this one event instead. */
            rcc_client_complete(c, batch[0], RCC_ETOOBIG);
            return 0;
        }
        n = (n + 1) / 2;
    }
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        rcc_evq_set_state(&c->evq, batch[i], RCC_EVQ_INFLIGHT, now_us);
    c->tokens -= (double)n;
    return 1;
}

static int next_unsubscribe(rcc_client_t *c)
{
    int rc = encode(c, rcc_msg_unsubscribe(c->unsubs[0]));
    if (rc != 0)
        return rc;
    c->n_unsubs--;
    memmove(c->unsubs[0], c->unsubs[1], c->n_unsubs * sizeof(c->unsubs[0]));
    return 1;
}

static int next_subscribe(rcc_client_t *c, rcc_sub_t *s)
{
    int rc = encode(c, rcc_msg_subscribe(s->surface, s->k, &s->filters));
    if (rc != 0)
        return rc;
    s->sent = true;
    return 1;
}

int rcc_outgoing_next(rcc_client_t *c)
{
    rcc_sub_t *s;
    int rc;
    if (!c->established || c->close_pending)
        return 0;
    if (!c->hello_sent) {
        if ((rc = encode(c, rcc_msg_hello(&c->hello))) != 0)
            return rc;
        c->hello_sent = true;
        return 1;
    }
    if (!c->welcomed)
        return 0;
    if (c->auth_pending) {
        if ((rc = encode(c, rcc_msg_auth(c->token))) != 0)
            return rc;
        c->auth_pending = false;
        return 1;
    }
    if (c->n_unsubs > 0)
        return next_unsubscribe(c);
    if ((s = first_unsent_sub(c)) != NULL)
        return next_subscribe(c, s);
    return c->evq.ready > 0 ? next_events(c) : 0;
}
