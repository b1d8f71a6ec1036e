/* SPDX-License-Identifier: Apache-2.0 */
/* A connection's side of the protocol: hello and who the user is, auth, subscriptions, the
 * two rate limiters (events, and everything else), the error budget, liveness (pings, hello
 * and pong timeouts, expired tokens), and what the transport writes next. */
#include "session/session_int.h"
#include "engine/experiments.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_conn_unref(rc_conn_t *c)
{
    if (--c->refs > 0)
        return;
    rc_outbox_free(&c->outbox);
    for (uint32_t i = 0; i < c->n_subs; i++)
        rc_compact_sub_free(&c->subs[i]);
    free(c->subs);
    rc_known_free(c->known);
    free(c->claims);
    free(c);
}

void rc_conn_wake(rc_conn_t *c)
{
    if (c->state != CONN_GONE)
        c->reg->tops->want_write(c->transport);
}

void rc_conn_close_after_flush(rc_conn_t *c, int ws_code, const char *reason)
{
    if (c->state == CONN_GONE || c->close_code != 0)
        return;
    c->state = CONN_CLOSING;
    c->close_code = ws_code;
    c->close_reason = reason;
    rc_conn_wake(c);
}

/* Queues a frame that must arrive. A connection whose FIFO is full does not read: it is
 * closed as a slow consumer at once (PROTOCOL.md 4050), never left to grow. */
void rc_conn_send(rc_conn_t *c, rc_frame_t *f)
{
    if (f == NULL || c->state == CONN_GONE)
        return;
    int rc = rc_outbox_push(&c->outbox, f, (size_t)c->reg->cfg->outbox_max_bytes);
    if (rc == RC_EFULL) {
        rc_metrics_error(RC_PERR_SLOW_CONSUMER);
        RC_INFO("session", "slow consumer closed", "session=%s", c->session ? c->session->id : "-");
        c->close_code = 4050;
        c->close_reason = "slow consumer";
        c->state = CONN_CLOSING;
        c->reg->tops->kill(c->transport);
        return;
    }
    rc_conn_wake(c);
}

rc_enc_t *rc_conn_enc_begin(rc_conn_t *c)
{
    return rc_sessions_enc_begin(c->reg, c->fmt);
}

void rc_conn_send_encoded(rc_conn_t *c)
{
    rc_frame_t *f = rc_sessions_enc_frame(c->reg, c->fmt);
    rc_conn_send(c, f);
    rc_frame_unref(f);
}

static int ws_close_code_for(int code)
{
    return code == RC_PERR_TOO_LARGE ? 1009 : code;
}

/* What an error on `c` refuses: the message being handled on it, if any. */
static rc_error_about_t error_about(const rc_conn_t *c)
{
    const rc_msg_t *m = c->reg->handling_conn == c ? c->reg->handling : NULL;
    rc_error_about_t a = {0};
    if (m == NULL)
        return a;
    a.type = rc_proto_msg_type_name(m->type);
    if (m->type == RC_MSG_SUBSCRIBE)
        a.surface = m->u.subscribe.surface;
    else if (m->type == RC_MSG_UNSUBSCRIBE)
        a.surface = m->u.unsubscribe.surface;
    else if (m->type == RC_MSG_PING && m->u.ping.has_t) {
        a.has_t = true;
        a.t = m->u.ping.t;
    }
    return a;
}

static void conn_error(rc_conn_t *c, int code, const char *message, rc_str_t id, bool fatal,
                       rc_error_about_t about);

void rc_conn_error(rc_conn_t *c, int code, const char *message, rc_str_t id, bool fatal)
{
    conn_error(c, code, message, id, fatal, error_about(c));
}

static void conn_error(rc_conn_t *c, int code, const char *message, rc_str_t id, bool fatal,
                       rc_error_about_t about)
{
    uint64_t now = rc_mono_us();

    if (c->state == CONN_GONE || c->state == CONN_CLOSING)
        return;
    rc_metrics_error(code);
    if (!fatal) {
        /* A client that only ever sends garbage is cut off instead of answered forever. */
        if (now - c->window_start_us > ERROR_WINDOW_US) {
            c->window_start_us = now;
            c->errors_in_window = 0;
        }
        if (++c->errors_in_window > ERRORS_PER_WINDOW) {
            code = RC_PERR_TOO_MANY_ERRORS;
            message = "too many errors";
            id = (rc_str_t){NULL, 0};
            about = (rc_error_about_t){0}; /* about the connection, not one message */
            fatal = true;
            rc_metrics_error(code);
        }
    }
    rc_proto_encode_error_about(rc_conn_enc_begin(c), code, message, id, fatal, &about);
    rc_conn_send_encoded(c);
    if (fatal)
        rc_conn_close_after_flush(c, ws_close_code_for(code), rc_proto_error_name(code));
}

void rc_conn_add_ack(rc_conn_t *c, const char *id, size_t len)
{
    if (rc_outbox_add_ack(&c->outbox, id, len) != 0)
        RC_WARN("session", "ack dropped: out of memory", "session=%s",
                c->session ? c->session->id : "-");
    rc_conn_wake(c);
}

static bool take_control_token(rc_conn_t *c, uint64_t now_us)
{
    c->control_tokens += (double)(now_us - c->control_at_us) / 1e6 * CONTROL_PER_SEC;
    if (c->control_tokens > CONTROL_BURST)
        c->control_tokens = CONTROL_BURST;
    c->control_at_us = now_us;
    if (c->control_tokens < 1.0)
        return false;
    c->control_tokens -= 1.0;
    return true;
}

/* Refuses a token: expired ones with 4011 (the client should fetch a fresh token), every
 * other failure with 4010. Both close the connection. */
static void refuse_token(rc_conn_t *c, rc_jwt_reason_t why)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "token refused: %s", rc_jwt_reason_name(why));
    rc_conn_error(c, why == RC_JWT_EXPIRED ? RC_PERR_TOKEN_EXPIRED : RC_PERR_UNAUTHORIZED, msg,
                  (rc_str_t){0}, true);
}

static bool is_anonymous_id(rc_str_t id)
{
    return id.n > 5 && memcmp(id.p, "anon-", 5) == 0;
}

/* Refuses an anonymous id the server did not issue (or no longer recognises): the client is
 * told to forget it and come back without one, which gets it a fresh id. Fatal, so a client
 * that does not know 4013 cannot go on as someone it is not. */
static void refuse_anonymous_id(rc_conn_t *c, rc_anonid_verdict_t v)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "hello.user is not an anonymous id this server issued (%s): connect without "
             "hello.user to be given one",
             rc_anonid_verdict_name(v));
    rc_conn_error(c, RC_PERR_ANONYMOUS_ID_REFUSED, msg, (rc_str_t){0}, true);
}

/* Decides who the connection is: the subject of a verified token (from the handshake or
 * hello), or, where the server admits them, an anonymous user. An anonymous user is the id
 * the server issued (signed: only its holder can come back as that visitor); an id a client
 * made up is taken only in demo mode (or --anonymous-ids chosen), and then, with a verifier
 * configured, only under anon-..., so no one can claim a token holder's id without the token.
 * Returns false after refusing the connection. */
static bool resolve_user(rc_conn_t *c, const rc_msg_t *m, rc_str_t *user,
                         char anon[RC_ANONID_LEN + 1])
{
    rc_sessions_t *s = c->reg;
    rc_str_t asked = m->u.hello.user;
    if (m->u.hello.token.n > 0 && s->jwt != NULL) {
        rc_jwt_claims_t claims;
        rc_jwt_reason_t why =
            rc_sessions_verify_token(s, m->u.hello.token.p, m->u.hello.token.n, &claims);
        if (why != RC_JWT_OK) {
            refuse_token(c, why);
            return false;
        }
        if (rc_conn_set_claims(c, &claims) != 0) {
            rc_conn_error(c, RC_PERR_INTERNAL, "out of memory", (rc_str_t){0}, true);
            return false;
        }
    }
    if (c->claims != NULL) {
        if (asked.n > 0 &&
            (asked.n != c->claims->sub_len || memcmp(asked.p, c->claims->sub, asked.n) != 0)) {
            rc_conn_error(c, RC_PERR_UNAUTHORIZED, "hello.user is not the token's subject",
                          (rc_str_t){0}, true);
            return false;
        }
        *user = (rc_str_t){c->claims->sub, c->claims->sub_len};
        c->auth_exp_s = c->claims->exp_s;
        return true;
    }
    if (!s->cfg->anonymous && !s->cfg->demo) {
        rc_conn_error(c, RC_PERR_UNAUTHORIZED,
                      s->jwt != NULL
                          ? "a token is required"
                          : "this server admits no anonymous sessions and verifies no tokens",
                      (rc_str_t){0}, true);
        return false;
    }
    if (s->jwt != NULL && asked.n > 0 && !is_anonymous_id(asked)) {
        rc_conn_error(c, RC_PERR_UNAUTHORIZED, "without a token, a user id must start with anon-",
                      (rc_str_t){0}, true);
        return false;
    }
    if (asked.n > 0) {
        if (!s->anon_ids_chosen) {
            rc_anonid_verdict_t v = rc_anonid_verify(&s->anon_keys, asked.p, asked.n);
            rc_metrics.anon_ids[v]++;
            if (v != RC_ANONID_OK && v != RC_ANONID_OK_PREVIOUS) {
                refuse_anonymous_id(c, v);
                return false;
            }
        }
        *user = asked;
        return true;
    }
    if (rc_anonid_issue(&s->anon_keys, anon) != 0) {
        rc_conn_error(c, RC_PERR_INTERNAL, "no random bytes for an anonymous id", (rc_str_t){0},
                      true);
        return false;
    }
    rc_metrics.anon_ids[RC_ANONID_VERDICT_COUNT]++;
    *user = (rc_str_t){anon, RC_ANONID_LEN};
    return true;
}

static void handle_hello(rc_conn_t *c, const rc_msg_t *m)
{
    rc_sessions_t *s = c->reg;
    char anon[RC_ANONID_LEN + 1];
    rc_str_t user;

    if (c->state != CONN_AWAIT_HELLO) {
        rc_conn_error(c, RC_PERR_HELLO_REPEATED, "hello was already received", (rc_str_t){0},
                      false);
        return;
    }
    if (!resolve_user(c, m, &user, anon))
        return;
    bool consent = m->u.hello.has_consent ? m->u.hello.consent : s->cfg->consent_default;
    rc_session_t *ses = rc_session_find(s, user.p, user.n);
    if (ses == NULL)
        ses = rc_session_create(s, user, m->u.hello.device, m->u.hello.tz_offset_min, consent);
    if (ses == NULL) {
        rc_conn_error(c, RC_PERR_INTERNAL, "out of memory", (rc_str_t){0}, true);
        return;
    }
    /* The newest connection sets the context (a phone joining a desktop session) and the
     * consent: withdrawn, nothing more is written, and nothing unwritten is kept. */
    if (!consent) {
        ses->consent = false;
        rc_session_drop_delta(s, ses);
    }
    rc_session_set_context(ses, m->u.hello.device, m->u.hello.tz_offset_min,
                           rc_sessions_locale(s, m->u.hello.locale, rc_wall_ms()));
    rc_session_await_locale(s, ses, m->u.hello.locale);
    rc_list_unlink(&ses->idle_link);
    rc_list_unlink(&c->hello_link);
    c->session = ses;
    rc_list_push_back(&ses->conns, &c->session_link);
    ses->n_conns++;
    c->state = CONN_READY;

    rc_proto_encode_welcome(rc_conn_enc_begin(c), ses->id, (rc_str_t){ses->user, ses->user_len},
                            s->node_id, rc_wall_ms(), &s->limits);
    rc_conn_send_encoded(c);
    free(c->claims); /* `user` pointed into them; the session holds its own copy */
    c->claims = NULL;
}

/* A free subscription slot, growing the table (and the outbox's list slots with it) when
 * all are taken: most connections hold one or two lists, so none pays for sixteen. */
static int free_sub_slot(rc_conn_t *c)
{
    uint32_t max = (uint32_t)c->reg->cfg->max_subscriptions;
    for (uint32_t i = 0; i < c->n_subs; i++)
        if (c->subs[i].view == NULL)
            return (int)i;
    if (c->n_subs >= max)
        return -1;
    uint32_t n = c->n_subs == 0 ? 2 : c->n_subs * 2;
    n = n > max ? max : n;
    rc_sub_t *subs = realloc(c->subs, n * sizeof(*subs));
    if (subs == NULL)
        return -1;
    memset(subs + c->n_subs, 0, (n - c->n_subs) * sizeof(*subs));
    c->subs = subs;
    if (rc_outbox_grow_slots(&c->outbox, n) != 0)
        return -1;
    int slot = (int)c->n_subs;
    c->n_subs = n;
    return slot;
}

static int find_sub(const rc_conn_t *c, rc_str_t surface)
{
    for (uint32_t i = 0; i < c->n_subs; i++)
        if (c->subs[i].view != NULL && strlen(c->subs[i].surface) == surface.n &&
            memcmp(c->subs[i].surface, surface.p, surface.n) == 0)
            return (int)i;
    return -1;
}

static void handle_subscribe(rc_conn_t *c, const rc_msg_t *m)
{
    rc_sessions_t *s = c->reg;
    rc_session_t *ses = c->session;
    rc_rank_spec_t spec = {
        .k = (uint32_t)m->u.subscribe.k,
        .category = -1,
        .price_min = m->u.subscribe.has_price_min ? m->u.subscribe.price_min : -1,
        .price_max = m->u.subscribe.has_price_max ? m->u.subscribe.price_max : -1,
        .repeat = (uint8_t)m->u.subscribe.repeat,
        .blend =
            rc_engine_experiment(rc_sessions_engine(s))
                ? rc_experiment_blend(rc_engine_experiment(rc_sessions_engine(s)), ses->variant)
                : NULL};
    if (m->u.subscribe.category.n > 0) {
        int32_t cat = rc_catalog_category(rc_engine_catalog(rc_sessions_engine(s)),
                                          m->u.subscribe.category.p, m->u.subscribe.category.n);
        /* An unknown category matches nothing (yet): an empty list, not an error, since
         * the catalog may learn it later. */
        spec.category = cat > 0 ? cat : INT32_MAX;
    }
    int slot = find_sub(c, m->u.subscribe.surface);
    if (slot < 0)
        slot = free_sub_slot(c);
    if (slot < 0) {
        rc_conn_error(c, RC_PERR_TOO_MANY_SUBSCRIPTIONS, "too many subscriptions", (rc_str_t){0},
                      false);
        return;
    }
    rc_view_t *v = rc_view_acquire(s, ses, m->u.subscribe.surface, &spec);
    if (v == NULL) {
        rc_conn_error(c, RC_PERR_TOO_MANY_SUBSCRIPTIONS, "too many live lists for this user",
                      (rc_str_t){0}, false);
        return;
    }
    rc_sub_t *sub = &c->subs[slot];
    if (sub->view != NULL)
        rc_view_release(ses, sub->view);
    sub->view = NULL;
    rc_outbox_clear_slot(&c->outbox, (uint32_t)slot);
    if (rc_compact_subscribe(c, sub, m->u.subscribe.compact, spec.k) != 0) {
        rc_view_release(ses, v);
        rc_conn_error(c, RC_PERR_INTERNAL, "out of memory", (rc_str_t){0}, false);
        return;
    }
    memcpy(sub->surface, m->u.subscribe.surface.p, m->u.subscribe.surface.n);
    sub->surface[m->u.subscribe.surface.n] = '\0';
    sub->view = v;
    if (sub->compact) {
        /* The whole list, encoded as it leaves (compact.c). */
        rc_outbox_set_slot(&c->outbox, (uint32_t)slot, s->compact_marker);
        rc_conn_wake(c);
        return;
    }
    rc_frame_t *f = rc_view_encode(s, ses, v, c->fmt, false);
    if (f != NULL) {
        rc_outbox_set_slot(&c->outbox, (uint32_t)slot, f);
        rc_frame_unref(f);
        rc_conn_wake(c);
    }
}

static void handle_unsubscribe(rc_conn_t *c, const rc_msg_t *m)
{
    int slot = find_sub(c, m->u.unsubscribe.surface);
    if (slot < 0) {
        rc_conn_error(c, RC_PERR_UNKNOWN_SURFACE, "no subscription to that surface", (rc_str_t){0},
                      false);
        return;
    }
    rc_view_release(c->session, c->subs[slot].view);
    c->subs[slot].view = NULL;
    rc_compact_sub_free(&c->subs[slot]);
    rc_outbox_clear_slot(&c->outbox, (uint32_t)slot);
}

static void handle_ping(rc_conn_t *c, const rc_msg_t *m)
{
    rc_proto_encode_pong(rc_conn_enc_begin(c), m->u.ping.has_t, m->u.ping.t, rc_wall_ms());
    rc_conn_send_encoded(c);
}

/* A fresh token on a live session: same subject, later expiry. */
static void handle_auth(rc_conn_t *c, const rc_msg_t *m)
{
    rc_sessions_t *s = c->reg;
    rc_jwt_claims_t claims;
    if (s->jwt == NULL) {
        rc_conn_error(c, RC_PERR_UNAUTHORIZED, "this server verifies no tokens", (rc_str_t){0},
                      true);
        return;
    }
    rc_jwt_reason_t why =
        rc_sessions_verify_token(s, m->u.auth.token.p, m->u.auth.token.n, &claims);
    if (why != RC_JWT_OK) {
        refuse_token(c, why);
        return;
    }
    if (claims.sub_len != c->session->user_len ||
        memcmp(claims.sub, c->session->user, claims.sub_len) != 0) {
        rc_conn_error(c, RC_PERR_UNAUTHORIZED, "the token is for another user", (rc_str_t){0},
                      true);
        return;
    }
    /* A refresh extends the session; an older token taken back would shorten it (or let a
     * leaked one that was replaced live again). */
    if (claims.exp_s < c->auth_exp_s) {
        rc_conn_error(c, RC_PERR_UNAUTHORIZED, "the token expires before the current one",
                      (rc_str_t){0}, true);
        return;
    }
    c->auth_exp_s = claims.exp_s;
    rc_proto_encode_auth_ok(rc_conn_enc_begin(c), claims.exp_s * 1000);
    rc_conn_send_encoded(c);
}

static bool token_expired(const rc_conn_t *c, int64_t now_s)
{
    return c->auth_exp_s != 0 && now_s >= c->auth_exp_s + c->reg->cfg->jwt_leeway_s;
}

static void note_input(rc_conn_t *c, uint64_t now_us)
{
    c->last_input_us = now_us;
    c->pinged_us = 0;
    rc_list_unlink(&c->activity_link);
    rc_list_push_back(&c->reg->active, &c->activity_link);
}

void rc_conn_alive(rc_conn_t *c, uint64_t now_us)
{
    if (c->state != CONN_GONE && c->state != CONN_CLOSING)
        note_input(c, now_us);
}

/* A WebSocket ping costs what a protocol ping costs (lws answers it, we cannot refuse it), so
 * it takes from the same budget; over it the client is told, and the errors lead to 4008 as
 * for any other flood. */
void rc_conn_ws_ping(rc_conn_t *c, uint64_t now_us)
{
    if (c->state == CONN_GONE || c->state == CONN_CLOSING)
        return;
    note_input(c, now_us);
    if (!take_control_token(c, now_us))
        rc_conn_error(c, RC_PERR_RATE_LIMITED, "WebSocket ping rate limit exceeded", (rc_str_t){0},
                      false);
}

static void handle_events(rc_conn_t *c, const rc_msg_t *m, uint64_t t0_us)
{
    bool changed = false;
    rc_str_t cause = {NULL, 0};
    if (m->type == RC_MSG_EVENT) {
        changed = rc_conn_accept_event(c, &m->u.event, t0_us);
        cause = m->u.event.id;
    } else {
        for (uint32_t i = 0; i < m->u.events.n && c->state == CONN_READY; i++) {
            const rc_proto_batch_item_t *it = &m->u.events.items[i];
            if (it->err != 0) {
                rc_conn_error(c, it->err, it->err_msg, it->ev.id, false);
                continue;
            }
            if (rc_conn_accept_event(c, &it->ev, t0_us)) {
                changed = true;
                cause = it->ev.id; /* a batch re-ranks once, caused by its last event */
            }
        }
    }
    if (changed)
        rc_session_rerank(c->reg, c->session, cause, t0_us);
}

static void dispatch_message(rc_conn_t *c, const rc_msg_t *m, uint64_t t0_us);

/* Messages held per connection while its session awaits a peer's state: past this, the
 * session stops waiting (rc_sessions_peer_answer with nothing). */
#define HELD_MAX_BYTES (256 * 1024)

/* Keeps a message until the session has the state of the user's session on another loop,
 * so that it is handled as it would be by the session holding the user's history. */
static void hold(rc_conn_t *c, const void *data, size_t len, bool binary)
{
    if (c->held == NULL && (c->held = calloc(1, sizeof(*c->held))) != NULL)
        rc_wbuf_init(c->held, 0);
    if (c->held == NULL || c->held->len + len + 5 > HELD_MAX_BYTES) {
        rc_sessions_stop_awaiting(c->reg, c->session);
        rc_conn_receive(c, data, len, binary, rc_mono_us());
        return;
    }
    uint32_t n = (uint32_t)len;
    uint8_t kind = binary;
    rc_wbuf_put(c->held, &n, 4);
    rc_wbuf_put(c->held, &kind, 1);
    rc_wbuf_put(c->held, data, len);
}

void rc_conn_handle_held(rc_conn_t *c)
{
    rc_wbuf_t *h = c->held;
    c->held = NULL;
    if (h == NULL)
        return;
    for (size_t off = 0; off + 5 <= h->len;) {
        uint32_t n;
        memcpy(&n, rc_wbuf_data(h) + off, 4);
        bool binary = rc_wbuf_data(h)[off + 4] != 0;
        rc_conn_receive(c, rc_wbuf_data(h) + off + 5, n, binary, rc_mono_us());
        off += 5 + n;
    }
    rc_wbuf_free(h);
    free(h);
}

void rc_conn_receive(rc_conn_t *c, const void *data, size_t len, bool binary, uint64_t t0_us)
{
    rc_sessions_t *s = c->reg;
    rc_msg_t m;

    if (c->state == CONN_CLOSING || c->state == CONN_GONE)
        return;
    if (c->session != NULL && c->session->awaiting_peer) {
        hold(c, data, len, binary);
        return;
    }
    rc_metrics.messages_received++;
    rc_metrics.bytes_received += len;
    note_input(c, t0_us);
    if (binary != (c->fmt == RC_FMT_MSGPACK)) {
        rc_conn_error(c, RC_PERR_WRONG_FRAME_KIND,
                      binary ? "binary frame on the JSON subprotocol"
                             : "text frame on the MessagePack subprotocol",
                      (rc_str_t){0}, false);
        return;
    }
    int code = rc_proto_decode(&s->decoder, c->fmt, data, len, &m);
    if (code != 0) {
        bool fatal = code == RC_PERR_UNSUPPORTED_VERSION;
        conn_error(c, code, s->decoder.err, s->decoder.err_id, fatal, s->decoder.err_about);
        return;
    }
    s->handling = &m;
    s->handling_conn = c;
    dispatch_message(c, &m, t0_us);
    s->handling = NULL;
    s->handling_conn = NULL;
    rc_sessions_read_end(s); /* shared models: a section lasts one message (shared.h) */
}

/* One decoded message: the hello gate, the rate limit of everything but events, an expired
 * token, then the message's handler. */
static void dispatch_message(rc_conn_t *c, const rc_msg_t *m, uint64_t t0_us)
{
    if (c->state == CONN_AWAIT_HELLO && m->type != RC_MSG_HELLO && m->type != RC_MSG_PING) {
        rc_conn_error(c, RC_PERR_HELLO_REQUIRED, "send hello first", (rc_str_t){0}, false);
        return;
    }
    if (m->type != RC_MSG_EVENT && m->type != RC_MSG_EVENTS && !take_control_token(c, t0_us)) {
        /* The error names the message (`about`, and a ping's `t`): a client pinging to
         * measure latency can tell which ping was refused. */
        char msg[64];
        snprintf(msg, sizeof(msg), "rate limit of %s messages exceeded",
                 rc_proto_msg_type_name(m->type));
        rc_conn_error(c, RC_PERR_RATE_LIMITED, msg, (rc_str_t){0}, false);
        return;
    }
    /* An expired token ends the session at its next message, unless that message is the
     * fresh token. */
    if (m->type != RC_MSG_AUTH && token_expired(c, rc_wall_ms() / 1000)) {
        rc_conn_error(c, RC_PERR_TOKEN_EXPIRED, "the token expired; reconnect with a fresh one",
                      (rc_str_t){0}, true);
        return;
    }
    switch (m->type) {
    case RC_MSG_HELLO:
        handle_hello(c, m);
        break;
    case RC_MSG_EVENT:
    case RC_MSG_EVENTS:
        handle_events(c, m, t0_us);
        break;
    case RC_MSG_SUBSCRIBE:
        handle_subscribe(c, m);
        break;
    case RC_MSG_UNSUBSCRIBE:
        handle_unsubscribe(c, m);
        break;
    case RC_MSG_PING:
        handle_ping(c, m);
        break;
    case RC_MSG_AUTH:
        handle_auth(c, m);
        break;
    case RC_MSG_NONE:
        break;
    }
}

void rc_conn_refuse(rc_conn_t *c, int code, const char *message, bool fatal)
{
    rc_conn_error(c, code, message, (rc_str_t){0}, fatal);
}

/* Every ack id pending goes in one message (up to 256; the rest in the next one). */
static rc_frame_t *take_acks(rc_conn_t *c)
{
    rc_str_t ids[256];
    uint32_t n = rc_outbox_peek_acks(&c->outbox, ids, 256);
    rc_proto_encode_ack(rc_conn_enc_begin(c), ids, n);
    rc_frame_t *f = rc_sessions_enc_frame(c->reg, c->fmt);
    rc_outbox_drop_acks(&c->outbox, n);
    return f;
}

/* Acks leave only when no frame is pending: a list an event changed is put in its slot while
 * the event is handled, before its ack can be queued, so the ack is written after it (or
 * after the newer list that replaced it). PROTOCOL.md section 5 promises this order: it is
 * how a client knows that no list is coming for an event. */
rc_frame_t *rc_conn_next_frame(rc_conn_t *c)
{
    if (c->state == CONN_GONE)
        return NULL;
    int32_t slot;
    rc_frame_t *f;
    while ((f = rc_outbox_take_from(&c->outbox, &slot)) == c->reg->compact_marker) {
        /* A compact list: made now, against the list the client holds now (out of memory:
         * none, and the next list goes against the same base). */
        rc_frame_unref(f);
        if (slot >= 0 && (uint32_t)slot < c->n_subs && c->subs[slot].view != NULL &&
            (f = rc_compact_frame(c, &c->subs[slot])) != NULL) {
            rc_sessions_read_end(c->reg); /* the section lasts one frame */
            return f;
        }
    }
    if (f == NULL && c->outbox.n_acks > 0)
        f = take_acks(c);
    return f;
}

void rc_conn_frame_written(rc_frame_t *f, uint64_t now_us)
{
    rc_metrics.messages_sent++;
    rc_metrics.bytes_sent += f->len;
    if (f->is_recs) {
        rc_metrics.pushes_sent++;
        if (f->cause_t0_us != 0)
            rc_hist_observe(&rc_metrics.event_to_push, now_us - f->cause_t0_us);
    }
    rc_frame_unref(f);
}

bool rc_conn_has_pending(const rc_conn_t *c)
{
    return !rc_outbox_empty(&c->outbox);
}

int rc_conn_close_code(const rc_conn_t *c, const char **reason)
{
    if (c->close_code == 0 || !rc_outbox_empty(&c->outbox))
        return 0;
    *reason = c->close_reason ? c->close_reason : "";
    return c->close_code;
}

rc_conn_t *rc_conn_open(rc_sessions_t *s, rc_format_t fmt, void *transport)
{
    rc_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (rc_outbox_init(&c->outbox, 0) != 0) {
        free(c);
        return NULL;
    }
    c->reg = s;
    c->transport = transport;
    c->fmt = fmt;
    c->refs = 1;
    c->state = CONN_AWAIT_HELLO;
    c->opened_us = c->tokens_at_us = c->window_start_us = rc_mono_us();
    c->tokens = rc_event_bucket_depth(s->cfg);
    c->control_tokens = CONTROL_BURST;
    c->control_at_us = c->opened_us;
    c->last_input_us = c->opened_us;
    rc_list_push_back(&s->active, &c->activity_link);
    rc_list_push_back(&s->all_conns, &c->all_link);
    rc_list_push_back(&s->awaiting_hello, &c->hello_link);
    s->n_conns++;
    return c;
}

void rc_conn_closed(rc_conn_t *c)
{
    rc_sessions_t *s = c->reg;
    rc_session_t *ses = c->session;
    rc_list_unlink(&c->all_link);
    rc_list_unlink(&c->activity_link);
    if (ses == NULL) {
        rc_list_unlink(&c->hello_link);
    } else {
        for (uint32_t i = 0; i < c->n_subs; i++)
            if (c->subs[i].view != NULL)
                rc_view_release(ses, c->subs[i].view);
        rc_list_unlink(&c->session_link);
        if (--ses->n_conns == 0) {
            ses->idle_since_us = rc_mono_us();
            rc_list_push_back(&s->idle_sessions, &ses->idle_link);
        }
    }
    if (c->held != NULL) {
        rc_wbuf_free(c->held);
        free(c->held);
        c->held = NULL;
    }
    for (uint32_t i = 0; i < c->n_subs; i++)
        rc_compact_sub_free(&c->subs[i]);
    if (c->n_subs > 0)
        memset(c->subs, 0, c->n_subs * sizeof(*c->subs));
    c->state = CONN_GONE;
    c->session = NULL;
    c->transport = NULL;
    s->n_conns--;
    rc_conn_unref(c);
}

/* Silent connections get a ping; those still silent pong_timeout_s later are closed (a
 * peer gone without a FIN would otherwise hold its memory forever). Tokens that expired
 * on connections that send nothing are caught here too, within ping_interval_s. */
static void check_silent_conns(rc_sessions_t *s, uint64_t now_us)
{
    if (s->cfg->ping_interval_s == 0)
        return;
    uint64_t ping_us = (uint64_t)s->cfg->ping_interval_s * 1000000;
    uint64_t pong_us = (uint64_t)s->cfg->pong_timeout_s * 1000000;
    int64_t now_s = rc_wall_ms() / 1000;
    while (!rc_list_empty(&s->active)) {
        rc_conn_t *c = RC_CONTAINER_OF(s->active.next, rc_conn_t, activity_link);
        if (now_us - c->last_input_us < ping_us)
            break;
        rc_list_unlink(&c->activity_link);
        if (token_expired(c, now_s)) {
            rc_conn_error(c, RC_PERR_TOKEN_EXPIRED, "the token expired; reconnect with a fresh one",
                          (rc_str_t){0}, true);
            continue;
        }
        c->pinged_us = now_us;
        rc_list_push_back(&s->pinged, &c->activity_link);
        s->tops->ping(c->transport);
    }
    while (!rc_list_empty(&s->pinged)) {
        rc_conn_t *c = RC_CONTAINER_OF(s->pinged.next, rc_conn_t, activity_link);
        if (now_us - c->pinged_us < pong_us)
            break;
        rc_list_unlink(&c->activity_link);
        rc_conn_error(c, RC_PERR_IDLE_TIMEOUT, "no answer to ping", (rc_str_t){0}, true);
    }
}

void rc_sessions_check_conns(rc_sessions_t *s, uint64_t now_us)
{
    check_silent_conns(s, now_us);
    uint64_t hello_us = (uint64_t)s->cfg->hello_timeout_ms * 1000;
    while (!rc_list_empty(&s->awaiting_hello)) {
        rc_conn_t *c = RC_CONTAINER_OF(s->awaiting_hello.next, rc_conn_t, hello_link);
        if (now_us - c->opened_us < hello_us)
            break;
        rc_list_unlink(&c->hello_link);
        rc_conn_close_after_flush(c, RC_PERR_HELLO_REQUIRED, "no hello in time");
    }
}

int rc_conn_set_claims(rc_conn_t *c, const rc_jwt_claims_t *claims)
{
    if (c->claims == NULL && (c->claims = malloc(sizeof(*c->claims))) == NULL)
        return RC_ENOMEM;
    *c->claims = *claims;
    return 0;
}

void rc_sessions_drain(rc_sessions_t *s, int64_t reconnect_after_ms)
{
    for (rc_link_t *l = s->all_conns.next; l != &s->all_conns; l = l->next) {
        rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, all_link);
        if (c->state == CONN_GONE || c->state == CONN_CLOSING)
            continue;
        rc_proto_encode_drain(rc_conn_enc_begin(c), "shutdown", reconnect_after_ms);
        rc_conn_send_encoded(c);
        rc_conn_close_after_flush(c, 1001, "server going away");
    }
}
