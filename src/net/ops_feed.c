/* SPDX-License-Identifier: Apache-2.0 */
/* The ops feed's WebSocket side: the `rankcast.ops.v1` subprotocol on /ops. A dashboard
 * says hello with the admin token (or nothing, in demo mode), then gets every snapshot. */
#include "net/ops_int.h"
#include "api/admin_api.h"
#include "util/log.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

void rc_ops_broadcast(rc_ops_t *o)
{
    if (o->n_subscribers == 0)
        return;
    rc_wbuf_reset(&o->snap);
    if (rc_ops_snapshot(o, &o->snap) != 0)
        return;
    o->snap_seq = o->ticks;
    for (ops_pss_t *p = o->subscribers.next; p != &o->subscribers; p = p->next)
        lws_callback_on_writable(p->wsi);
}

/* The feed is open in demo mode without an admin token, closed without either, and needs
 * the token whenever one is set. Returns NULL when allowed, else the reason. */
static const char *check_hello(const rc_ops_t *o, const char *msg, size_t len)
{
    const rc_config_t *cfg = o->cfg;
    json_t *j = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *token = json_object_get(j, "token");
    const char *why = NULL;
    if (type == NULL || strcmp(type, "hello") != 0)
        why = "the first message must be {\"type\":\"hello\",\"token\":...}";
    else if (cfg->admin_token[0] != '\0')
        why =
            json_is_string(token) && rc_api_token_equal(json_string_value(token),
                                                        json_string_length(token), cfg->admin_token)
                ? NULL
                : "a valid admin token is required";
    else if (!cfg->demo)
        why = "the ops feed is off: start the server with --admin-token";
    json_decref(j);
    return why;
}

static void subscribe_pss(rc_ops_t *o, ops_pss_t *p)
{
    p->next = o->subscribers.next;
    p->prev = &o->subscribers;
    o->subscribers.next->prev = p;
    o->subscribers.next = p;
    o->n_subscribers++;
}

static void unsubscribe_pss(ops_pss_t *p)
{
    if (p->next == NULL)
        return;
    p->prev->next = p->next;
    p->next->prev = p->prev;
    p->next = p->prev = NULL;
    if (p->ops != NULL)
        p->ops->n_subscribers--;
}

static int ops_filter(struct lws *wsi)
{
    char uri[16];
    /* The feed lives on /ops only, as the client protocol lives on /ws only. */
    return lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0 && strcmp(uri, "/ops") == 0
               ? 0
               : 1;
}

static int ops_established(struct lws *wsi, ops_pss_t *p)
{
    memset(p, 0, sizeof(*p));
    p->ops = lws_get_protocol(wsi)->user;
    p->wsi = wsi;
    p->state = PSS_AWAIT_HELLO;
    if (p->ops == NULL)
        return -1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_AWAITING_CLIENT_HS_SEND, HELLO_TIMEOUT_S);
    return 0;
}

static int ops_receive(struct lws *wsi, ops_pss_t *p, const void *in, size_t len)
{
    if (p->ops == NULL || p->state != PSS_AWAIT_HELLO)
        return 0; /* after the hello the feed only talks */
    if (p->rx_len + len > HELLO_MAX_BYTES) {
        p->state = PSS_ERROR;
        p->error = "the hello is too large";
    } else {
        char *grown = realloc(p->rx, p->rx_len + len);
        if (grown == NULL)
            return -1;
        p->rx = grown;
        memcpy(p->rx + p->rx_len, in, len);
        p->rx_len = (uint16_t)(p->rx_len + len);
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
            return 0;
        p->error = check_hello(p->ops, p->rx, p->rx_len);
        p->state = p->error ? PSS_ERROR : PSS_WELCOME;
    }
    free(p->rx);
    p->rx = NULL;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (p->state == PSS_WELCOME)
        subscribe_pss(p->ops, p);
    else
        RC_WARN("ops", "dashboard refused", "reason=\"%s\"", p->error);
    lws_callback_on_writable(wsi);
    return 0;
}

static int write_text(struct lws *wsi, rc_wbuf_t *b)
{
    int n = lws_write(wsi, (unsigned char *)rc_wbuf_data(b), b->len, LWS_WRITE_TEXT);
    return n < (int)b->len ? -1 : 0;
}

/* The welcome or the error: small messages built on the spot. */
static int write_small(struct lws *wsi, ops_pss_t *p)
{
    rc_wbuf_t b;
    rc_enc_t e;
    rc_wbuf_init(&b, LWS_PRE);
    rc_enc_init(&e, &b, RC_FMT_JSON);
    if (p->state == PSS_WELCOME) {
        rc_enc_map(&e, 4);
        rc_enc_key(&e, "type");
        rc_enc_cstr(&e, "welcome");
        rc_enc_key(&e, "node");
        rc_enc_cstr(&e, p->ops->node_id);
        rc_enc_key(&e, "interval_ms");
        rc_enc_int(&e, RC_OPS_INTERVAL_MS);
        rc_enc_key(&e, "auth");
        rc_enc_cstr(&e, p->ops->cfg->admin_token[0] ? "token" : "open");
    } else {
        rc_enc_map(&e, 4);
        rc_enc_key(&e, "type");
        rc_enc_cstr(&e, "error");
        rc_enc_key(&e, "code");
        rc_enc_int(&e, RC_PERR_UNAUTHORIZED);
        rc_enc_key(&e, "name");
        rc_enc_cstr(&e, "unauthorized");
        rc_enc_key(&e, "message");
        rc_enc_cstr(&e, p->error);
    }
    rc_enc_end(&e);
    int rc = rc_wbuf_ok(&b) == 0 ? write_text(wsi, &b) : -1;
    rc_wbuf_free(&b);
    return rc;
}

/* Once per dashboard, on its own buffer: the history is large (up to ~100 KB) and the
 * shared snapshot buffer must not be replaced under dashboards that have not written it. */
static int write_history(struct lws *wsi, const rc_ops_t *o)
{
    rc_wbuf_t b;
    rc_wbuf_init(&b, LWS_PRE);
    int rc = rc_ops_history(o, &b) == 0 ? write_text(wsi, &b) : -1;
    rc_wbuf_free(&b);
    return rc;
}

static int ops_writeable(struct lws *wsi, ops_pss_t *p)
{
    if (p->ops == NULL || p->state == PSS_CLOSING || p->state == PSS_AWAIT_HELLO)
        return 0;
    if (p->state == PSS_ERROR) {
        if (write_small(wsi, p) != 0)
            return -1;
        /* As in the gateway: a close through the keep-alive timeout sends our code. */
        p->state = PSS_CLOSING;
        lws_close_reason(wsi, (enum lws_close_status)RC_PERR_UNAUTHORIZED,
                         (unsigned char *)"unauthorized", 12);
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
        return 0;
    }
    if (p->state == PSS_WELCOME) {
        if (write_small(wsi, p) != 0)
            return -1;
        p->state = PSS_HISTORY;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (p->state == PSS_HISTORY) {
        /* The last 15 minutes, so a dashboard opens with charts instead of an empty page. */
        if (write_history(wsi, p->ops) != 0)
            return -1;
        p->state = PSS_LIVE;
        /* The newest snapshot at once, so a dashboard has numbers before the next tick. */
        rc_wbuf_reset(&p->ops->snap);
        if (rc_ops_snapshot(p->ops, &p->ops->snap) != 0)
            return -1;
        p->ops->snap_seq = p->ops->ticks;
        lws_callback_on_writable(wsi);
        return 0;
    }
    /* Newest wins: a dashboard that reads slowly skips snapshots instead of queueing them. */
    if (p->sent_seq == p->ops->snap_seq || p->ops->snap.len == 0)
        return 0;
    if (lws_send_pipe_choked(wsi)) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    p->sent_seq = p->ops->snap_seq;
    return write_text(wsi, &p->ops->snap);
}

static void ops_closed(ops_pss_t *p)
{
    unsubscribe_pss(p);
    free(p->rx);
    p->rx = NULL;
}

static int ops_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    ops_pss_t *p = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ops_filter(wsi);
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return 1; /* no permessage-deflate: only the session protocols inflate (websocket.c) */
    case LWS_CALLBACK_ESTABLISHED:
        return ops_established(wsi, p);
    case LWS_CALLBACK_RECEIVE:
        return ops_receive(wsi, p, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ops_writeable(wsi, p);
    case LWS_CALLBACK_CLOSED:
        ops_closed(p);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

void rc_ops_protocol(rc_ops_t *o, struct lws_protocols *p)
{
    memset(p, 0, sizeof(*p));
    p->name = RC_OPS_SUBPROTOCOL;
    p->callback = ops_callback;
    p->per_session_data_size = sizeof(ops_pss_t);
    p->user = o;
}
