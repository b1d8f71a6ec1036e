/* SPDX-License-Identifier: Apache-2.0 */
/* The server's messages (PROTOCOL.md section 2.2), and what a lost connection means for
 * the client's state: events in flight are sent again, subscriptions are renewed, and the
 * next attempt waits a full-jitter backoff (or the drain's delay). */
#include "client_int.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

/* A drain's reconnect_after_ms beyond this is taken as this (a server cannot park a client
 * for hours by mistake). */
#define DRAIN_MAX_MS 600000

static void on_welcome(rcc_client_t *c, const json_t *msg)
{
    const char *user;
    if (rcc_msg_read_welcome(msg, &user, &c->limits) != 0) {
        rcc_client_report(c, RCC_EPROTO, "welcome without a valid user id", NULL);
        rcc_conn_drop(c);
        return;
    }
    rcc_copy_str(c->welcome_user, sizeof(c->welcome_user), user);
    /* An anonymous client presents the id the server issued on every reconnect: the same
     * session, and de-duplication of re-sent events, continue. (With a token the user is
     * the token's subject, whatever hello says.) */
    if (c->hello.token == NULL && (c->user_id == NULL || c->user_refused))
        c->hello.user_id = c->welcome_user;
    c->welcomed = true;
    rcc_compact_reset(c); /* a new connection: compact lists start afresh */
    c->reconnect_attempt = 0;
    rcc_conn_welcomed(c);
    rcc_outgoing_start(c);
    rcc_client_set_state(c, RCC_STATE_OPEN, 0);
    rcc_conn_want_write(c);
}

static void on_ack(rcc_client_t *c, const json_t *msg)
{
    const json_t *ids = json_object_get(msg, "ids");
    if (!json_is_array(ids)) {
        rcc_client_report(c, RCC_EPROTO, "ack without ids", NULL);
        return;
    }
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        rcc_evq_entry_t *e = id ? rcc_evq_find(&c->evq, id) : NULL;
        /* An id that is not queued was acknowledged before (a re-sent event): nothing to do. */
        if (e != NULL)
            rcc_client_complete(c, e, 0);
    }
    rcc_conn_plan_tick(c);
}

static void on_recs(rcc_client_t *c, const json_t *msg)
{
    rcc_recs_t recs;
    rcc_item_t *items;
    int rc = rcc_msg_read_recs(msg, &recs, &items);
    if (rc != 0) {
        rcc_client_report(c, rc, "recs message without surface, version or items", NULL);
    } else {
        rcc_sub_t *s = rcc_client_find_sub(c, recs.surface);
        /* Lists are state: a list of a surface no longer held, or older than the one
         * delivered, is dropped (PROTOCOL.md section 5). */
        if (s != NULL && recs.version > s->version) {
            s->version = recs.version;
            if (c->cb.on_recs && !c->freeing)
                c->cb.on_recs(c, &recs, c->user_data);
        }
    }
    free(items);
}

/* A compact list: applied to the list held and delivered whole. One that does not apply is
 * reported and its subscription sent again (the server answers with the whole list). */
static void on_recs_delta(rcc_client_t *c, const json_t *msg)
{
    rcc_sub_t *s = rcc_client_find_sub(c, json_string_value(json_object_get(msg, "surface")));
    if (s == NULL)
        return; /* a surface no longer held */
    rcc_recs_t recs;
    rcc_item_t *items;
    int rc = rcc_compact_apply(c, s, msg, &recs, &items);
    if (rc == 1)
        return; /* changes of the subscription before it was sent again */
    if (rc != 0) {
        rcc_client_report(c, rc, "recs_delta that does not apply: subscribing again", NULL);
        rcc_compact_forget(s);
        s->sent = false;
        s->version = 0;
        rcc_conn_want_write(c);
        return;
    }
    if (recs.version > s->version) {
        s->version = recs.version;
        if (c->cb.on_recs && !c->freeing)
            c->cb.on_recs(c, &recs, c->user_data);
    }
    free(items);
}

static void on_push(rcc_client_t *c, const json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "id"));
    const char *topic = json_string_value(json_object_get(msg, "topic"));
    const json_t *data = json_object_get(msg, "data");
    if (id == NULL || topic == NULL || data == NULL) {
        rcc_client_report(c, RCC_EPROTO, "push without id, topic or data", NULL);
        return;
    }
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        rcc_client_report(c, RCC_ENOMEM, "push payload could not be converted to JSON", NULL);
        return;
    }
    if (c->cb.on_push && !c->freeing)
        c->cb.on_push(c, id, topic, text, c->user_data);
    free(text);
}

/* An error about a queued event settles it, or parks it for a retry; any other goes to
 * on_error. Returns whether it was about a queued event. */
static bool settle_event_error(rcc_client_t *c, const rcc_error_t *err)
{
    rcc_evq_entry_t *e = err->event_id ? rcc_evq_find(&c->evq, err->event_id) : NULL;
    if (e == NULL)
        return false;
    if (!rcc_msg_code_retryable(err->code)) {
        rcc_client_complete(c, e, err->code);
        return true;
    }
    int64_t now_us = rcc_mono_us();
    int64_t delay_ms = rcc_backoff_ms(e->retries++, c->retry_base_ms, c->retry_cap_ms);
    rcc_evq_set_state(&c->evq, e, RCC_EVQ_WAITING, now_us + (delay_ms + 1) * 1000);
    if (err->code == 4020)
        c->tokens = 0; /* the server's bucket is empty: so is ours */
    rcc_conn_plan_tick(c);
    return true;
}

static void on_error(rcc_client_t *c, const json_t *msg)
{
    rcc_error_t err;
    if (rcc_msg_read_error(msg, &err) != 0) {
        rcc_client_report(c, RCC_EPROTO, "error message without a valid code", NULL);
        return;
    }
    if (err.fatal)
        c->fatal_code = err.code;
    if (err.code == 4022 && err.event_id == NULL && c->max_batch > 1) {
        /* The server's batch limit is below what welcome said: halve and send again. */
        c->max_batch /= 2;
        rcc_evq_requeue_inflight(&c->evq);
        rcc_conn_want_write(c);
    }
    if (!settle_event_error(c, &err) && c->cb.on_error && !c->freeing)
        c->cb.on_error(c, &err, c->user_data);
    /* An error before welcome that leaves the connection open still means no welcome. */
    if (!c->welcomed && !err.fatal)
        rcc_conn_drop(c);
}

static void on_drain(rcc_client_t *c, const json_t *msg)
{
    json_int_t after_ms = json_integer_value(json_object_get(msg, "reconnect_after_ms"));
    if (after_ms < 0)
        after_ms = 0;
    if (after_ms > DRAIN_MAX_MS)
        after_ms = DRAIN_MAX_MS;
    /* The jitter spreads the clients of a draining node over the window after its delay. */
    int64_t delay_ms = (int64_t)after_ms + rcc_random_upto(c->reconnect_base_ms);
    rcc_conn_plan_drain(c, rcc_mono_us() + delay_ms * 1000);
}

void rcc_incoming_message(rcc_client_t *c, const void *data, size_t len, bool binary)
{
    const char *why = NULL;
    json_t *msg = rcc_wire_decode(c->format, data, len, binary, &why);
    if (msg == NULL) {
        rcc_client_report(c, RCC_EPROTO, why, NULL);
        return;
    }
    const char *type = rcc_msg_type(msg);
    if (type == NULL)
        rcc_client_report(c, RCC_EPROTO, "a message without a type", NULL);
    else if (strcmp(type, "recs") == 0)
        on_recs(c, msg);
    else if (strcmp(type, "recs_delta") == 0)
        on_recs_delta(c, msg);
    else if (strcmp(type, "ack") == 0)
        on_ack(c, msg);
    else if (strcmp(type, "welcome") == 0)
        on_welcome(c, msg);
    else if (strcmp(type, "push") == 0)
        on_push(c, msg);
    else if (strcmp(type, "error") == 0)
        on_error(c, msg);
    else if (strcmp(type, "drain") == 0)
        on_drain(c, msg);
    else if (strcmp(type, "pong") != 0 && strcmp(type, "auth_ok") != 0)
        rcc_client_report(c, RCC_EPROTO, "a message of an unknown type", NULL);
    json_decref(msg);
}

/* 4006 (wrong version) and 4010 (unauthorized) would be refused again on every attempt:
 * the client gives up and reports CLOSED with the code. */
static bool final_refusal(int code)
{
    return code == 4006 || code == 4010;
}

static void reset_connection_state(rcc_client_t *c)
{
    c->conn_live = c->established = c->hello_sent = c->welcomed = c->close_pending = false;
    c->auth_pending = false; /* the next hello carries the token */
    c->wsi = NULL;
    rcc_evq_requeue_inflight(&c->evq);
    for (size_t i = 0; i < c->n_subs; i++) {
        c->subs[i].sent = false;
        c->subs[i].version = 0;
    }
    c->n_unsubs = 0; /* the server forgets subscriptions with the connection */
    rcc_buf_free(&c->rx);
    lws_sul_cancel(&c->sul_drain);
    lws_sul_cancel(&c->sul_tick);
}

void rcc_incoming_conn_lost(rcc_client_t *c, int reason)
{
    int code = c->fatal_code ? c->fatal_code : reason;
    if (!c->conn_live)
        return;
    reset_connection_state(c);
    c->fatal_code = c->peer_close_code = 0;
    if (c->freeing)
        return;
    if (!c->stopped && final_refusal(code))
        c->stopped = true;
    if (code == 4013) {
        /* Not an anonymous id the server issued (made up, or signed by a key it no longer
         * holds): forget it and come back at once without one, to be issued a fresh id. */
        c->hello.user_id = NULL;
        c->user_refused = true;
        c->reconnect_now = true;
    }
    if (c->stopped) {
        rcc_client_set_state(c, RCC_STATE_CLOSED, code);
        return;
    }
    int64_t delay_ms;
    if (c->reconnect_now) {
        delay_ms = 0;
        c->reconnect_now = false;
        c->drain_deadline_us = 0;
    } else if (c->drain_deadline_us != 0) {
        delay_ms = (c->drain_deadline_us - rcc_mono_us()) / 1000;
        delay_ms = delay_ms < 0 ? 0 : delay_ms;
        c->drain_deadline_us = 0;
    } else {
        delay_ms =
            rcc_backoff_ms(c->reconnect_attempt++, c->reconnect_base_ms, c->reconnect_cap_ms);
    }
    rcc_client_set_state(c, RCC_STATE_RECONNECTING, code);
    rcc_conn_schedule_connect(c, delay_ms);
}
