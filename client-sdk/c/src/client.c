/* SPDX-License-Identifier: Apache-2.0 */
/* The public API of the client (rankcast/client.h): options, lifecycle, subscriptions and
 * tracking. The connection itself lives in conn.c, the messages in incoming.c and
 * outgoing.c. */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_RECONNECT_BASE_MS 500
#define DEFAULT_RECONNECT_CAP_MS  30000
#define DEFAULT_RETRY_BASE_MS     250
#define DEFAULT_RETRY_CAP_MS      30000
#define DEFAULT_ACK_TIMEOUT_MS    10000
#define DEFAULT_MAX_QUEUE         1000
#define DEFAULT_PING_INTERVAL_S   20
/* How long rcc_client_free() services the connection for its close handshake. */
#define FREE_CLOSE_WAIT_MS 200

/* ---- options ---- */

/* The Host header: the host, with the port unless it is the scheme's default. libwebsockets
 * strips a ":port" before it checks the certificate's name, so TLS sees the bare host. An
 * IPv6 literal stays bare: lws would cut it at its first colon. */
static int set_host_header(rcc_client_t *c)
{
    size_t len = strlen(c->host) + 8;
    bool default_port = c->port == (c->tls ? 443 : 80);
    c->host_header = malloc(len);
    if (c->host_header == NULL)
        return RCC_ENOMEM;
    if (default_port || strchr(c->host, ':') != NULL)
        snprintf(c->host_header, len, "%s", c->host);
    else
        snprintf(c->host_header, len, "%s:%d", c->host, c->port);
    return 0;
}

/* Splits ws[s]://host[:port][/path] into the client's fields. An empty path, or "/", is
 * /ws, the endpoint of PROTOCOL.md section 1. IPv6 literals go in brackets. */
static int parse_url(rcc_client_t *c, const char *url, const char **why)
{
    const char *p, *host_end, *path;
    size_t host_len;
    *why = "url must be ws://host[:port][/path] or wss://...";
    if (url == NULL)
        return RCC_EINVAL;
    if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        p = url + 6;
        c->tls = true;
    } else {
        return RCC_EINVAL;
    }
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL)
            return RCC_EINVAL;
        p++;
        host_len = (size_t)(host_end - p);
        host_end++;
    } else {
        host_end = p + strcspn(p, ":/?#");
        host_len = (size_t)(host_end - p);
    }
    c->port = c->tls ? 443 : 80;
    if (*host_end == ':') {
        char *end;
        long port = strtol(host_end + 1, &end, 10);
        if (end == host_end + 1 || port < 1 || port > 65535)
            return RCC_EINVAL;
        c->port = (int)port;
        host_end = end;
    }
    path = (*host_end == '\0' || strcmp(host_end, "/") == 0) ? "/ws" : host_end;
    if (host_len == 0 || *path != '/')
        return RCC_EINVAL;
    c->host = strndup(p, host_len);
    c->path = strdup(path);
    if (c->host == NULL || c->path == NULL)
        return RCC_ENOMEM;
    return set_host_header(c) == 0 ? 0 : RCC_ENOMEM;
}

static int64_t or_default(int value, int64_t fallback)
{
    return value > 0 ? value : fallback;
}

static int copy_options(rcc_client_t *c, const rcc_options_t *o, const char **why)
{
    int rc = parse_url(c, o->url, why);
    if (rc != 0)
        return rc;
    *why = "format must be RCC_FORMAT_MSGPACK or RCC_FORMAT_JSON";
    if (o->format != RCC_FORMAT_MSGPACK && o->format != RCC_FORMAT_JSON)
        return RCC_EINVAL;
    c->format = o->format;
    rcc_hello_t h = {o->token, o->user_id, o->device, o->locale, o->tz_offset_min, o->consent};
    if ((rc = rcc_msg_check_hello(&h, why)) != 0)
        return rc;
    *why = "max_queue, backoffs and timeouts must not be negative; caps not below bases";
    if (o->max_queue < 0 || o->reconnect_base_ms < 0 || o->reconnect_cap_ms < 0 ||
        o->retry_base_ms < 0 || o->retry_cap_ms < 0 || o->ack_timeout_ms < 0)
        return RCC_EINVAL;
    c->reconnect_base_ms = or_default(o->reconnect_base_ms, DEFAULT_RECONNECT_BASE_MS);
    c->reconnect_cap_ms = or_default(o->reconnect_cap_ms, DEFAULT_RECONNECT_CAP_MS);
    c->retry_base_ms = or_default(o->retry_base_ms, DEFAULT_RETRY_BASE_MS);
    c->retry_cap_ms = or_default(o->retry_cap_ms, DEFAULT_RETRY_CAP_MS);
    if (c->reconnect_cap_ms < c->reconnect_base_ms || c->retry_cap_ms < c->retry_base_ms)
        return RCC_EINVAL;
    c->ack_timeout_us = or_default(o->ack_timeout_ms, DEFAULT_ACK_TIMEOUT_MS) * 1000;
    rcc_evq_init(&c->evq, (size_t)or_default(o->max_queue, DEFAULT_MAX_QUEUE));
    int ping_s = o->ping_interval_s == 0 ? DEFAULT_PING_INTERVAL_S : o->ping_interval_s;
    if (ping_s > 0 && ping_s <= 30000) {
        c->idle_policy.secs_since_valid_ping = (uint16_t)ping_s;
        c->idle_policy.secs_since_valid_hangup = (uint16_t)(2 * ping_s);
    }
    *why = "ca_file is not readable";
    if (o->ca_file != NULL && access(o->ca_file, R_OK) != 0)
        return RCC_EINVAL;
    c->tls_insecure = o->tls_insecure;
    c->cb = o->callbacks;
    c->user_data = o->user_data;
    c->token = rcc_strdup_or_null(o->token);
    c->user_id = rcc_strdup_or_null(o->user_id);
    c->locale = rcc_strdup_or_null(o->locale);
    c->ca_file = rcc_strdup_or_null(o->ca_file);
    *why = "out of memory";
    if ((o->token && !c->token) || (o->user_id && !c->user_id) || (o->locale && !c->locale) ||
        (o->ca_file && !c->ca_file))
        return RCC_ENOMEM;
    c->hello =
        (rcc_hello_t){c->token, c->user_id, o->device, c->locale, o->tz_offset_min, o->consent};
    return 0;
}

/* ---- lifecycle ---- */

static void free_members(rcc_client_t *c)
{
    for (size_t i = 0; i < c->n_subs; i++)
        free(c->subs[i].category);
    rcc_compact_reset(c);
    free(c->subs);
    free(c->unsubs);
    rcc_buf_free(&c->rx);
    rcc_buf_free(&c->tx);
    free(c->host);
    free(c->host_header);
    free(c->path);
    free(c->token);
    free(c->user_id);
    free(c->locale);
    free(c->ca_file);
    free(c);
}

rcc_client_t *rcc_client_new(const rcc_options_t *opts, char *err, size_t errlen)
{
    char dummy[1];
    const char *why = "out of memory";
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (opts == NULL) {
        snprintf(err, errlen, "options are required");
        return NULL;
    }
    rcc_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    rcc_buf_init(&c->rx, 0);
    rcc_buf_init(&c->tx, LWS_PRE);
    rcc_msg_default_limits(&c->limits);
    c->subs = calloc(RCC_SUBS_CAP, sizeof(*c->subs));
    c->unsubs = calloc(RCC_SUBS_CAP, sizeof(*c->unsubs));
    if (c->subs == NULL || c->unsubs == NULL || copy_options(c, opts, &why) != 0) {
        snprintf(err, errlen, "%s", why);
        free_members(c);
        return NULL;
    }
    if (rcc_conn_create_context(c, err, errlen) != 0) {
        free_members(c);
        return NULL;
    }
    c->state = RCC_STATE_CONNECTING;
    rcc_conn_schedule_connect(c, 0);
    return c;
}

/* Lets the close handshake finish, so the server sees 1000 rather than a dropped socket. */
static void close_gracefully(rcc_client_t *c)
{
    int64_t deadline_us = rcc_mono_us() + FREE_CLOSE_WAIT_MS * 1000;
    if (!c->stopped)
        rcc_client_close(c);
    while (c->conn_live && rcc_mono_us() < deadline_us)
        if (rcc_client_service(c, 20) == RCC_EIO)
            break;
}

void rcc_client_free(rcc_client_t *c)
{
    if (c == NULL)
        return;
    c->freeing = true;
    close_gracefully(c);
    lws_sul_cancel(&c->sul_connect);
    lws_sul_cancel(&c->sul_wake);
    lws_sul_cancel(&c->sul_tick);
    lws_sul_cancel(&c->sul_drain);
    lws_context_destroy(c->ctx); /* closes what is left; callbacks see c->freeing */
    c->ctx = NULL;
    c->wsi = NULL;
    while (c->evq.head != NULL)
        rcc_client_complete(c, c->evq.head, RCC_ECANCELED);
    free_members(c);
}

static void wake_due(lws_sorted_usec_list_t *sul)
{
    (void)sul; /* only there to end the poll() of rcc_client_service() */
}

int rcc_client_service(rcc_client_t *c, int timeout_ms)
{
    if (c->stopped && !c->conn_live)
        return RCC_ECLOSED;
    /* lws 4.1.6 ignores the timeout of lws_service() (it waits for the next timer), so a
     * timer bounds the wait; -1 asks it not to wait at all. */
    if (timeout_ms > 0)
        lws_sul_schedule(c->ctx, 0, &c->sul_wake, wake_due, (lws_usec_t)timeout_ms * 1000);
    int n = lws_service(c->ctx, timeout_ms > 0 ? 0 : -1);
    lws_sul_cancel(&c->sul_wake);
    return n < 0 ? RCC_EIO : 0;
}

void rcc_client_wake(rcc_client_t *c)
{
    lws_cancel_service(c->ctx);
}

int rcc_client_close(rcc_client_t *c)
{
    if (c->stopped)
        return RCC_ECLOSED;
    c->stopped = true;
    lws_sul_cancel(&c->sul_connect);
    if (c->conn_live && c->wsi != NULL)
        rcc_conn_drop(c); /* CLOSED is reported when the connection is gone */
    else
        rcc_client_set_state(c, RCC_STATE_CLOSED, 0);
    return 0;
}

int rcc_client_reconnect_now(rcc_client_t *c)
{
    if (c->stopped)
        return RCC_ECLOSED;
    c->reconnect_attempt = 0;
    c->drain_deadline_us = 0;
    lws_sul_cancel(&c->sul_drain);
    if (c->conn_live) {
        /* The loss of this connection schedules the next attempt with no delay. */
        c->reconnect_now = true;
        rcc_conn_abandon(c);
    } else {
        rcc_conn_schedule_connect(c, 0); /* replaces the backoff wait */
    }
    return 0;
}

/* ---- subscriptions ---- */

rcc_sub_t *rcc_client_find_sub(rcc_client_t *c, const char *surface)
{
    for (size_t i = 0; i < c->n_subs; i++)
        if (strcmp(c->subs[i].surface, surface) == 0)
            return &c->subs[i];
    return NULL;
}

int rcc_subscribe(rcc_client_t *c, const char *surface, int k, const rcc_filter_t *filters)
{
    if (c->stopped)
        return RCC_ECLOSED;
    if (rcc_msg_check_subscribe(surface, k, filters) != 0)
        return RCC_EINVAL;
    if (k > c->limits.max_k)
        return RCC_ELIMIT;
    char *category = filters && filters->category ? strdup(filters->category) : NULL;
    if (filters && filters->category && category == NULL)
        return RCC_ENOMEM;
    rcc_sub_t *s = rcc_client_find_sub(c, surface);
    if (s == NULL) {
        size_t max = (size_t)c->limits.max_subscriptions;
        if (c->n_subs >= (max < RCC_SUBS_CAP ? max : RCC_SUBS_CAP)) {
            free(category);
            return RCC_ELIMIT;
        }
        s = &c->subs[c->n_subs++];
        rcc_copy_str(s->surface, sizeof(s->surface), surface);
    }
    /* Subscribing again replaces the parameters; the server sends the list again, which
     * may carry the version already seen, so the version is forgotten too. */
    free(s->category);
    s->category = category;
    s->k = k;
    if (filters)
        s->filters = *filters;
    else
        memset(&s->filters, 0, sizeof(s->filters));
    s->filters.category = category;
    s->sent = false;
    s->version = 0;
    rcc_compact_forget(s); /* the next list comes whole */
    rcc_conn_want_write(c);
    return 0;
}

int rcc_set_token(rcc_client_t *c, const char *token)
{
    if (c->stopped)
        return RCC_ECLOSED;
    if (token == NULL || token[0] == '\0' || strlen(token) > 4096)
        return RCC_EINVAL;
    char *copy = strdup(token);
    if (copy == NULL)
        return RCC_ENOMEM;
    free(c->token);
    c->token = copy;
    c->hello.token = copy;
    /* A live session gets it now; a connection being made uses it in its hello. */
    if (c->welcomed) {
        c->auth_pending = true;
        rcc_conn_want_write(c);
    }
    return 0;
}

int rcc_unsubscribe(rcc_client_t *c, const char *surface)
{
    if (c->stopped)
        return RCC_ECLOSED;
    if (!rcc_valid_surface(surface))
        return RCC_EINVAL;
    rcc_sub_t *s = rcc_client_find_sub(c, surface);
    if (s == NULL)
        return RCC_ENOENT;
    /* Only a subscription the server holds needs an unsubscribe; one not yet sent on this
     * connection is simply forgotten. */
    if (s->sent && c->welcomed) {
        if (c->n_unsubs >= RCC_SUBS_CAP)
            return RCC_ELIMIT;
        rcc_copy_str(c->unsubs[c->n_unsubs++], sizeof(c->unsubs[0]), surface);
    }
    free(s->category);
    rcc_compact_forget(s);
    size_t idx = (size_t)(s - c->subs);
    memmove(&c->subs[idx], &c->subs[idx + 1], (c->n_subs - idx - 1) * sizeof(*s));
    c->n_subs--;
    /* The moved subscriptions' filters point at their own category copies: still valid. */
    rcc_conn_want_write(c);
    return 0;
}

/* ---- events ---- */

int rcc_track(rcc_client_t *c, const rcc_event_t *ev, rcc_ack_cb cb, void *arg)
{
    char id[RCC_ID_MAX + 1];
    const char *why;
    json_t *fields;
    if (c->stopped)
        return RCC_ECLOSED;
    if (ev == NULL || (ev->id != NULL && !rcc_copy_str(id, sizeof(id), ev->id)))
        return RCC_EINVAL;
    if (ev->id == NULL)
        rcc_make_event_id(id, sizeof(id));
    int rc = rcc_msg_event_fields(ev, id, rcc_wall_ms(), &fields, &why);
    if (rc != 0)
        return rc;
    if (c->evq.count >= c->evq.max) {
        json_decref(fields);
        return RCC_EFULL;
    }
    if ((rc = rcc_evq_push(&c->evq, id, fields, cb, arg)) != 0)
        return rc;
    if (c->welcomed)
        rcc_conn_plan_tick(c); /* asks for WRITEABLE if the rate limit allows */
    return 0;
}

void rcc_client_complete(rcc_client_t *c, rcc_evq_entry_t *e, int status)
{
    rcc_evq_remove(&c->evq, e);
    /* Unlinked first: the callback may track new events, or look at the queue. */
    if (e->cb)
        e->cb(c, e->id, status, e->arg);
    rcc_evq_entry_free(e);
}

/* ---- state and reports ---- */

void rcc_client_set_state(rcc_client_t *c, rcc_state_t state, int reason)
{
    if (c->state == state)
        return;
    c->state = state;
    if (c->cb.on_state && !c->freeing)
        c->cb.on_state(c, state, reason, c->user_data);
}

void rcc_client_report(rcc_client_t *c, int code, const char *message, const char *event_id)
{
    rcc_error_t err = {.code = code,
                       .name = rcc_strerror(code),
                       .message = message ? message : "",
                       .event_id = event_id};
    if (c->cb.on_error && !c->freeing)
        c->cb.on_error(c, &err, c->user_data);
}

rcc_state_t rcc_client_state(const rcc_client_t *c)
{
    return c->state;
}

const char *rcc_client_user_id(const rcc_client_t *c)
{
    return c->welcome_user[0] ? c->welcome_user : NULL;
}

void rcc_client_limits(const rcc_client_t *c, rcc_limits_t *out)
{
    *out = c->limits;
}

size_t rcc_client_pending(const rcc_client_t *c)
{
    return c->evq.count;
}

void rcc_set_log_level(int level)
{
    static const int masks[] = {0, LLL_ERR, LLL_ERR | LLL_WARN, LLL_ERR | LLL_WARN | LLL_NOTICE};
    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    lws_set_log_level(masks[level], NULL);
}
