/* SPDX-License-Identifier: Apache-2.0 */
/* What the bus brings from other nodes (and pushes from any node): events a user's other
 * sessions accepted, erasures, application pushes to a user or a segment; and publishing
 * erasures and pushes taken by this node's admin API. The node routes each kind here. */
#include "session/session_int.h"
#include "util/clock.h"
#include "util/metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* An event another loop of this process accepted, for a user who has a session here too:
 * the shared models learned it there; here the session takes it and its lists move. */
static void sibling_event(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    uint64_t t0 = rc_mono_us();
    rc_session_t *ses = rc_session_find_pseudo(s, m->user);
    uint64_t key = rc_event_key(m->ev.id);
    if (ses == NULL || rc_session_seen_event(ses, key))
        return;
    rc_session_remember_event(ses, key);
    rc_engine_t *e = rc_sessions_engine(s);
    int64_t item = -1;
    if (m->ev.item.n > 0) {
        const rc_catalog_t *cat = rc_engine_catalog(e);
        item = rc_catalog_find(cat, m->ev.item.p, m->ev.item.n);
        if (item < 0 && !rc_catalog_may_learn(cat, m->ev.item.n))
            return; /* a closed catalog that does not know it */
    }
    float w = rc_event_weight(m->ev.kind, m->ev.has_value, m->ev.value);
    int64_t learn_ms = rc_sessions_event_time(s, &m->ev, m->received_ms, false);
    rc_user_state_t *u = rc_session_state_write(ses);
    if (u != NULL && rc_user_observe(e, u, m->ev.kind, item, w, m->ev.query, learn_ms))
        rc_session_rerank(s, ses, m->ev.id, t0);
}

/* An event another node accepted. If this node holds the user's session (a second device,
 * a second tab on another node), it is applied and pushed here too; either way the global
 * models learn from it. The origin node alone writes it to the profile. */
void rc_sessions_remote_event(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    if (m->sibling) {
        sibling_event(s, m);
        return;
    }
    rc_engine_t *e = rc_sessions_engine(s);
    uint64_t t0 = rc_mono_us();
    int64_t item = -1;
    if (m->ev.item.n > 0) {
        const rc_catalog_t *cat = rc_engine_catalog(e);
        item = rc_sessions_event_item(s, m->ev.item, rc_engine_user_key(m->user));
        if (item == -1)
            return; /* a closed catalog that does not know it */
        if (item == RC_CATALOG_UNTRUSTED)
            item = -1; /* not learned yet: the rest of the event still is */
        rc_metrics.catalog_learned = cat->n_learned;
    }
    int64_t now_ms = rc_wall_ms();
    if (m->received_ms > 0 && now_ms >= m->received_ms)
        rc_hist_observe(&rc_metrics.bus_remote_lag, (uint64_t)(now_ms - m->received_ms) * 1000);
    float w = rc_event_weight(m->ev.kind, m->ev.has_value, m->ev.value);
    int64_t learn_ms =
        rc_sessions_event_time(s, &m->ev, m->received_ms > 0 ? m->received_ms : now_ms, false);
    rc_session_t *ses = rc_session_find_pseudo(s, m->user);
    if (ses != NULL) {
        uint64_t key = rc_event_key(m->ev.id);
        if (rc_session_seen_event(ses, key))
            return;
        rc_session_remember_event(ses, key);
        rc_user_state_t *u = rc_session_state_write(ses);
        if (u != NULL &&
            rc_sessions_observe(s, u, m->ev.kind, item, m->ev.item, w, m->ev.query, learn_ms))
            rc_session_rerank(s, ses, m->ev.id, t0);
        if (u != NULL)
            return;
        /* Out of memory for the session: the models still learn, below. */
    }
    /* No session here: remember the id (a retry may reach this node after a failover), and
     * learn what the origin's session knew. */
    if (ses == NULL)
        rc_sessions_remember_remote(s, m->user, rc_event_key(m->ev.id));
    rc_user_state_t u;
    rc_user_state_init(&u, m->device, m->tz_offset_min);
    u.locale = (int16_t)rc_sessions_locale(s, m->locale, learn_ms);
    u.user_key = rc_engine_user_key(m->user);
    for (int i = (int)m->n_recent - 1; i >= 0; i--) {
        int64_t r = rc_catalog_find(rc_engine_catalog(e), m->recent[i].p, m->recent[i].n);
        if (r >= 0)
            rc_user_push_recent(&u, (uint32_t)r, m->recent_w[i], 0, RC_EVENT_KIND_COUNT);
    }
    rc_sessions_observe(s, &u, m->ev.kind, item, m->ev.item, w, m->ev.query, learn_ms);
}

static bool segment_matches(const rc_session_t *ses, rc_str_t seg)
{
    if (seg.n == 3 && memcmp(seg.p, "all", 3) == 0)
        return true;
    if (seg.n > 7 && memcmp(seg.p, "device:", 7) == 0) {
        const char *dev = rc_device_name(ses->device);
        return strlen(dev) == seg.n - 7 && memcmp(dev, seg.p + 7, seg.n - 7) == 0;
    }
    return false;
}

static void push_to_session(rc_sessions_t *s, rc_session_t *ses, const rc_bus_msg_t *m,
                            rc_frame_t **frames)
{
    for (rc_link_t *l = ses->conns.next; l != &ses->conns; l = l->next) {
        rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, session_link);
        if (c->state != CONN_READY)
            continue;
        if (frames[c->fmt] == NULL) {
            rc_proto_encode_push(rc_sessions_enc_begin(s, c->fmt), m->push_id, m->topic, m->data);
            frames[c->fmt] = rc_sessions_enc_frame(s, c->fmt);
            if (frames[c->fmt] == NULL)
                continue;
        }
        /* Pushes queue in the FIFO: past outbox-max-bytes the reader is a slow consumer. */
        rc_conn_send(c, frames[c->fmt]);
        rc_metrics.app_pushes_delivered++;
    }
}

/* An application push: to every connection of one user, or of every user of a segment,
 * on this node. Each format is encoded once per push. */
void rc_sessions_deliver_push(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    rc_frame_t *frames[RC_FMT_COUNT] = {NULL};
    if (m->user.n > 0) {
        rc_session_t *ses = rc_session_find_pseudo(s, m->user);
        if (ses != NULL)
            push_to_session(s, ses, m, frames);
    } else {
        for (rc_link_t *l = s->all_conns.next; l != &s->all_conns; l = l->next) {
            rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, all_link);
            /* Each session once: through its first connection. */
            if (c->session != NULL && c->session->conns.next == &c->session_link &&
                segment_matches(c->session, m->segment))
                push_to_session(s, c->session, m, frames);
        }
    }
    for (int f = 0; f < RC_FMT_COUNT; f++)
        rc_frame_unref(frames[f]);
}

/* Forgets a user on this node: session state, unwritten profile changes, and the stored
 * profile (the store erases after any update of this node queued before). */
int rc_sessions_erase_local(rc_sessions_t *s, const char *user, size_t len, uint64_t seq)
{
    rc_session_t *ses = rc_session_find(s, user, len);
    if (ses != NULL) {
        /* Live connections keep their subscriptions and get lists computed from nothing. */
        free(ses->state);
        ses->state = NULL;
        rc_session_drop_delta(s, ses);
        rc_list_unlink(&ses->dirty_link);
        ses->seen.n = ses->seen.head = 0;
        rc_session_rerank(s, ses, (rc_str_t){NULL, 0}, 0);
    }
    return rc_profile_erase(s->profiles, user, len, (rc_profile_seq_t){seq, seq});
}

void rc_sessions_remote_erase(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    /* Only a node holding the user's session can tell who the pseudonym is; the shared
     * profile store was erased by the node that took the request. */
    rc_session_t *ses = rc_session_find_pseudo(s, m->user);
    if (ses != NULL)
        rc_sessions_erase_local(s, ses->user, ses->user_len, 0);
}

int rc_sessions_erase_user(rc_sessions_t *s, const char *user, size_t len)
{
    char pseudo[PSEUDO_LEN + 1];
    uint64_t seq = rc_sessions_next_seq(s);
    int rc = rc_sessions_erase_local(s, user, len, seq);
    rc_sessions_pseudonym(s, user, len, pseudo);
    rc_bus_msg_t m = {
        .kind = RC_BUS_ERASE,
        .origin_node = {s->node_id, (uint32_t)strlen(s->node_id)},
        .user = {pseudo, PSEUDO_LEN},
        /* Read back after a crash, the log finishes an erasure the store had not confirmed. */
        .profile_user = {seq != 0 ? user : NULL, seq != 0 ? (uint32_t)len : 0},
        .seq = seq,
    };
    int brc = rc_bus_publish(s->bus, &m, NULL, NULL);
    return rc != 0 ? rc : brc;
}

int rc_sessions_push(rc_sessions_t *s, rc_str_t user, rc_str_t segment, rc_str_t topic,
                     const msgpack_object *data, char *id_out, size_t id_len)
{
    uint64_t r = 0;
    char pseudo[PSEUDO_LEN + 1] = "";
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = rc_mono_us();
    snprintf(id_out, id_len, "p-%016llx", (unsigned long long)r);
    if (user.n > 0)
        rc_sessions_pseudonym(s, user.p, user.n, pseudo);
    rc_bus_msg_t m = {
        .kind = RC_BUS_PUSH,
        .origin_node = {s->node_id, (uint32_t)strlen(s->node_id)},
        .user = {pseudo, user.n > 0 ? PSEUDO_LEN : 0},
        .segment = segment,
        .push_id = {id_out, (uint32_t)strlen(id_out)},
        .topic = topic,
        .data = data,
    };
    return rc_bus_publish(s->bus, &m, NULL, NULL);
}
