/* SPDX-License-Identifier: Apache-2.0 */
/* An event from a client: rate-limited by the connection, de-duplicated by id in the user's
 * window, published on the bus (its ack waits for the bus to say it is durable), counted for
 * the experiment, learned by the engine and noted for the profile. */
#include "session/session_int.h"
#include "engine/experiments.h"
#include "engine/history.h"
#include "net/ops.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int64_t rc_sessions_event_time(const rc_sessions_t *s, const rc_proto_event_t *ev,
                               int64_t received_ms, bool count)
{
    if (!ev->has_ts)
        return received_ms;
    int64_t behind = received_ms - ev->ts_ms;
    if (behind > s->cfg->event_time_past_s * 1000) {
        rc_metrics.events_server_time[0] += count;
        return received_ms;
    }
    if (-behind > s->cfg->event_time_future_s * 1000) {
        rc_metrics.events_server_time[1] += count;
        return received_ms;
    }
    return ev->ts_ms;
}

uint64_t rc_event_key(rc_str_t id)
{
    uint64_t h = XXH3_64bits(id.p, id.n);
    return h ? h : 1;
}

static bool seen_has(const rc_seen_t *r, uint64_t key)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->ids[i] == key)
            return true;
    return false;
}

static int seen_add(rc_seen_t *r, uint64_t key)
{
    if (r->n == r->cap && r->cap < DEDUPE_MAX) {
        uint64_t *p = rc_grow(r->ids, &r->cap, sizeof(*p), 16);
        if (p == NULL)
            return RC_ENOMEM;
        r->ids = p;
    }
    if (r->n < r->cap) {
        r->ids[r->n++] = key;
    } else {
        r->ids[r->head] = key; /* full: overwrite the oldest */
        r->head = (r->head + 1) % r->cap;
    }
    return 0;
}

bool rc_session_seen_event(const rc_session_t *ses, uint64_t key)
{
    return seen_has(&ses->seen, key);
}

int rc_session_remember_event(rc_session_t *ses, uint64_t key)
{
    return seen_add(&ses->seen, key);
}

void rc_session_forget_event(rc_session_t *ses, uint64_t key)
{
    for (uint32_t i = 0; i < ses->seen.n; i++)
        if (ses->seen.ids[i] == key)
            ses->seen.ids[i] = 0;
}

/* The ids remembered for a user without a session here (read back from the log, or events of
 * other nodes), oldest first in the registry's list: past --dedupe-users-max the oldest goes. */
typedef struct restored {
    char pseudo[PSEUDO_LEN]; /* the map's key */
    rc_seen_t seen;
    rc_link_t link; /* in rc_sessions_t.restored_order */
} restored_t;

static void restored_drop(rc_sessions_t *s, restored_t *r)
{
    rc_strmap_del(&s->restored, r->pseudo, PSEUDO_LEN);
    rc_list_unlink(&r->link);
    free(r->seen.ids);
    free(r);
}

/* Remembers the event `key` (rc_event_key()) of the user with pseudonym `pseudo`. */
static int restore_key(rc_sessions_t *s, rc_str_t pseudo, uint64_t key)
{
    uint64_t ptr;
    restored_t *r;
    if (pseudo.n != PSEUDO_LEN)
        return RC_EINVAL;
    if (rc_strmap_get(&s->restored, pseudo.p, pseudo.n, &ptr)) {
        r = (restored_t *)(uintptr_t)ptr;
    } else {
        if ((r = calloc(1, sizeof(*r))) == NULL)
            return RC_ENOMEM;
        memcpy(r->pseudo, pseudo.p, PSEUDO_LEN);
        if (rc_strmap_put(&s->restored, r->pseudo, PSEUDO_LEN, (uintptr_t)r) != 0) {
            free(r);
            return RC_ENOMEM;
        }
        rc_list_push_back(&s->restored_order, &r->link);
        if (s->restored.len > (size_t)s->cfg->dedupe_users_max)
            restored_drop(s, RC_CONTAINER_OF(s->restored_order.next, restored_t, link));
    }
    return key != 0 ? seen_add(&r->seen, key) : 0;
}

int rc_sessions_restore_event(rc_sessions_t *s, rc_str_t pseudo, rc_str_t id)
{
    return restore_key(s, pseudo, rc_event_key(id));
}

void rc_sessions_remember_remote(rc_sessions_t *s, rc_str_t pseudo, uint64_t key)
{
    if (restore_key(s, pseudo, key) != 0)
        RC_DEBUG("session", "event id of another node not remembered", NULL);
}

/* Takes the entry out of the map; the caller frees it. NULL when there is none. */
static restored_t *restored_take(rc_sessions_t *s, const char *pseudo, size_t len)
{
    uint64_t ptr;
    if (!rc_strmap_get(&s->restored, pseudo, len, &ptr))
        return NULL;
    restored_t *r = (restored_t *)(uintptr_t)ptr;
    rc_strmap_del(&s->restored, pseudo, len);
    rc_list_unlink(&r->link);
    return r;
}

void rc_sessions_restore_erase(rc_sessions_t *s, rc_str_t pseudo)
{
    restored_t *r = restored_take(s, pseudo.p, pseudo.n);
    if (r != NULL)
        free(r->seen.ids);
    free(r);
}

void rc_session_adopt_restored(rc_sessions_t *s, rc_session_t *ses)
{
    restored_t *r = restored_take(s, ses->pseudo, PSEUDO_LEN);
    if (r == NULL)
        return;
    free(ses->seen.ids);
    ses->seen = r->seen;
    free(r);
}

void rc_sessions_restored_free(rc_sessions_t *s)
{
    for (size_t i = 0; i < s->restored.cap; i++) {
        rc_strmap_slot_t *slot = &s->restored.slots[i];
        if (slot->hash != 0) {
            restored_t *r = (restored_t *)(uintptr_t)slot->value;
            free(r->seen.ids);
            free(r);
        }
    }
    rc_strmap_free(&s->restored);
}

static void on_published(void *arg, int status)
{
    ticket_t *t = arg;
    rc_conn_t *c = t->conn;
    rc_sessions_t *s = c->reg;
    if (status == 0) {
        /* A closing connection (drain, fatal error) still gets its acks before the close:
         * the client then need not resend what is already durable. */
        if (c->state == CONN_READY || c->state == CONN_CLOSING)
            rc_conn_add_ack(c, t->id, t->id_len);
    } else {
        if (c->state != CONN_GONE && c->session != NULL)
            rc_session_forget_event(c->session, rc_event_key((rc_str_t){t->id, t->id_len}));
        rc_conn_error(c, RC_PERR_UNAVAILABLE, "the event could not be stored; retry",
                      (rc_str_t){t->id, t->id_len}, false);
    }
    t->next_free = s->free_tickets;
    s->free_tickets = t;
    rc_conn_unref(c);
}

static ticket_t *ticket_get(rc_sessions_t *s)
{
    ticket_t *t = s->free_tickets;
    if (t != NULL) {
        s->free_tickets = t->next_free;
        return t;
    }
    return malloc(sizeof(ticket_t));
}

/* The bucket holds events_burst and one more second of events_per_sec. The server counts a
 * message's events when it reads them, so two messages a client sent 50 ms apart by its own
 * bucket can be read together after a stall of either side or of the network: a client
 * pacing itself exactly by welcome.limits drew 4020 in CI (client_c.server under ASan). The
 * second of slack absorbs such jitter; a flood is still held to events_per_sec. */
double rc_event_bucket_depth(const rc_config_t *cfg)
{
    return (double)cfg->events_burst + (double)cfg->events_per_sec;
}

static bool take_token(rc_conn_t *c, uint64_t now_us)
{
    const rc_config_t *cfg = c->reg->cfg;
    double depth = rc_event_bucket_depth(cfg);
    c->tokens += (double)(now_us - c->tokens_at_us) / 1e6 * (double)cfg->events_per_sec;
    if (c->tokens > depth)
        c->tokens = depth;
    c->tokens_at_us = now_us;
    if (c->tokens < 1.0)
        return false;
    c->tokens -= 1.0;
    return true;
}

/* Other nodes learn co-visitation from an event only with the items the user acted on
 * before it, and trending per context only with the user's context, which only this node
 * knows when it alone holds the session. */
static void attach_context(const rc_sessions_t *s, const rc_session_t *ses, rc_bus_msg_t *m)
{
    rc_user_state_t empty;
    const rc_user_state_t *u = rc_session_state_read(ses, &empty);
    const rc_catalog_t *c = rc_engine_catalog(rc_sessions_engine(s));
    m->device = u->device;
    m->tz_offset_min = u->tz_offset_min;
    /* NULL when the reference went stale: 64 newer tags pushed its tag out (trending.h). */
    const char *tag =
        u->locale >= 0 ? rc_engine_locale_tag(rc_sessions_engine(s), u->locale) : NULL;
    if (tag != NULL)
        m->locale = (rc_str_t){tag, (uint32_t)strlen(tag)};
    for (uint8_t d = 0; d < u->n_recent && m->n_recent < RC_BUS_RECENT; d++) {
        const rc_recent_t *r = rc_user_recent(u, d);
        if (r->item >= c->n)
            continue;
        const char *id = rc_item_id(c, r->item);
        m->recent[m->n_recent] = (rc_str_t){id, (uint32_t)strlen(id)};
        m->recent_w[m->n_recent++] = r->w;
    }
}

/* An impression of a surface, or a click (click, cart, purchase) naming the surface whose
 * current list holds the item, counts for the user's experiment variant. */
static void count_for_experiment(rc_sessions_t *s, const rc_session_t *ses,
                                 const rc_proto_event_t *ev, int64_t item)
{
    if (rc_engine_experiment(rc_sessions_engine(s)) == NULL || ev->surface.n == 0)
        return;
    if (ev->kind == RC_EV_IMPRESSION) {
        rc_experiment_count(&s->xcounts, rc_engine_experiment(rc_sessions_engine(s)), ses->variant,
                            false);
        return;
    }
    if ((ev->kind != RC_EV_CLICK && ev->kind != RC_EV_CART && ev->kind != RC_EV_PURCHASE) ||
        item < 0)
        return;
    for (uint32_t i = 0; i < ses->n_views; i++) {
        const rc_view_t *v = ses->views[i];
        if (v->surface_text.n != ev->surface.n ||
            memcmp(v->surface, ev->surface.p, ev->surface.n) != 0)
            continue;
        for (uint32_t k = 0; k < v->n; k++) {
            if (v->ranked[k].item == (uint32_t)item) {
                rc_experiment_count(&s->xcounts, rc_engine_experiment(rc_sessions_engine(s)),
                                    ses->variant, true);
                return;
            }
        }
    }
}

bool rc_conn_accept_event(rc_conn_t *c, const rc_proto_event_t *ev, uint64_t t0_us)
{
    rc_sessions_t *s = c->reg;
    rc_session_t *ses = c->session;

    if (!take_token(c, t0_us)) {
        rc_conn_error(c, RC_PERR_RATE_LIMITED, "event rate limit exceeded; retry later", ev->id,
                      false);
        return false;
    }
    uint64_t key = rc_event_key(ev->id);
    if (rc_session_seen_event(ses, key)) {
        rc_metrics.events_duplicate++;
        rc_conn_add_ack(c, ev->id.p, ev->id.n);
        return false;
    }
    int64_t item = -1;
    if (ev->item.n > 0) {
        const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
        item = rc_sessions_event_item(s, ev->item,
                                      rc_engine_user_key((rc_str_t){ses->pseudo, PSEUDO_LEN}));
        if (item == RC_CATALOG_UNTRUSTED) {
            /* Accepted and published (other nodes count its users too), but the models learn
             * nothing of an item not trusted yet. */
            rc_metrics.catalog_untrusted_events++;
            item = -1;
        } else if (item < 0) {
            rc_conn_error(c, RC_PERR_UNKNOWN_ITEM, "item is not in the catalog", ev->id, false);
            return false;
        }
        rc_metrics.catalog_items = cat->n;
        rc_metrics.catalog_learned = cat->n_learned;
    }
    ticket_t *t = ticket_get(s);
    if (t == NULL || rc_session_remember_event(ses, key) != 0) {
        free(t);
        rc_conn_error(c, RC_PERR_INTERNAL, "out of memory", ev->id, false);
        return false;
    }
    *t = (ticket_t){.conn = c, .session = ses, .id_len = (uint8_t)ev->id.n};
    memcpy(t->id, ev->id.p, ev->id.n);
    bool to_profile = ses->consent && ev->kind != RC_EV_IMPRESSION;
    uint64_t seq = to_profile ? rc_sessions_next_seq(s) : 0;
    rc_bus_msg_t be = {
        .kind = RC_BUS_EVENT,
        .user = {ses->pseudo, PSEUDO_LEN},
        .origin_node = {s->node_id, (uint32_t)strlen(s->node_id)},
        .ev = *ev,
        .received_ms = rc_wall_ms(),
        /* With an event log, a restart finishes the profile writes the store had not
         * confirmed: the log must name the profile (docs/durability.md). */
        .profile_user = {seq != 0 ? ses->user : NULL, seq != 0 ? ses->user_len : 0},
        .seq = seq,
    };
    if (rc_bus_shared(s->bus))
        attach_context(s, ses, &be);
    c->refs++;
    int rc = rc_bus_publish(s->bus, &be, on_published, t);
    if (rc != 0) {
        c->refs--;
        t->next_free = s->free_tickets;
        s->free_tickets = t;
        rc_session_forget_event(ses, key);
        rc_conn_error(c, RC_PERR_UNAVAILABLE, "the event could not be stored; retry", ev->id,
                      false);
        return false;
    }
    rc_metrics.events_received[ev->kind]++;
    count_for_experiment(s, ses, ev, item);
    /* The dashboard sees the bus pseudonym, never the raw id. */
    rc_ops_record_event((rc_str_t){ses->pseudo, PSEUDO_LEN}, ev->kind, ev->item, ev->surface);
    float w = rc_event_weight(ev->kind, ev->has_value, ev->value);
    rc_user_state_t *u = rc_session_state_write(ses);
    if (u == NULL) { /* published, so still learned by the models; not by this session */
        RC_WARN("session", "event not applied: out of memory", "session=%s", ses->id);
        return false;
    }
    int64_t learn_ms = rc_sessions_event_time(s, ev, be.received_ms, true);
    bool changed = rc_sessions_observe(s, u, ev->kind, item, ev->item, w, ev->query, learn_ms);
    if (to_profile)
        rc_session_note_profile_change(s, ses, ev->kind, item, w, seq);
    return changed;
}

/* ---- snapshots ---- */

static void pack_seen(msgpack_packer *pk, const char *pseudo, const rc_seen_t *seen)
{
    msgpack_pack_array(pk, 2);
    rc_mp_str(pk, pseudo, PSEUDO_LEN);
    msgpack_pack_array(pk, seen->n);
    /* Oldest first, so that reading them back in order rebuilds the ring as it was. */
    for (uint32_t i = 0; i < seen->n; i++)
        msgpack_pack_uint64(pk, seen->ids[(seen->head + i) % seen->n]);
}

void rc_sessions_snapshot_write(const rc_sessions_t *s, msgpack_packer *pk)
{
    uint32_t n = 0;
    for (size_t i = 0; i < s->restored.cap; i++)
        n += s->restored.slots[i].hash != 0;
    for (size_t i = 0; i < s->by_pseudo.cap; i++)
        n += s->by_pseudo.slots[i].hash != 0;
    msgpack_pack_map(pk, 2);
    rc_mp_cstr(pk, "seq");
    msgpack_pack_uint64(pk, s->last_seq);
    rc_mp_cstr(pk, "seen");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < s->restored.cap; i++) {
        if (s->restored.slots[i].hash == 0)
            continue;
        const restored_t *r = (const restored_t *)(uintptr_t)s->restored.slots[i].value;
        pack_seen(pk, r->pseudo, &r->seen);
    }
    for (size_t i = 0; i < s->by_pseudo.cap; i++) {
        if (s->by_pseudo.slots[i].hash == 0)
            continue;
        const rc_session_t *ses = (const rc_session_t *)(uintptr_t)s->by_pseudo.slots[i].value;
        pack_seen(pk, ses->pseudo, &ses->seen);
    }
}

void rc_sessions_snapshot_write_context(const rc_sessions_t *s, msgpack_packer *pk)
{
    rc_user_state_t empty;
    uint32_t n = 0;
    for (size_t i = 0; i < s->by_pseudo.cap; i++) {
        if (s->by_pseudo.slots[i].hash == 0)
            continue;
        const rc_session_t *ses = (const rc_session_t *)(uintptr_t)s->by_pseudo.slots[i].value;
        n += rc_history_session_packable(rc_session_state_read(ses, &empty));
    }
    msgpack_pack_array(pk, n);
    const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
    for (size_t i = 0; i < s->by_pseudo.cap; i++) {
        if (s->by_pseudo.slots[i].hash == 0)
            continue;
        const rc_session_t *ses = (const rc_session_t *)(uintptr_t)s->by_pseudo.slots[i].value;
        rc_history_pack_session(pk, cat, ses->pseudo, PSEUDO_LEN,
                                rc_session_state_read(ses, &empty));
    }
}

int rc_sessions_snapshot_read(rc_sessions_t *s, const msgpack_object *o)
{
    const msgpack_object *seq = NULL, *seen = NULL;
    if (o->type == MSGPACK_OBJECT_MAP) {
        seq = rc_mp_map_get(&o->via.map, "seq");
        seen = rc_mp_map_get(&o->via.map, "seen");
    }
    if (seq == NULL || seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER || seen == NULL ||
        seen->type != MSGPACK_OBJECT_ARRAY)
        return RC_EPARSE;
    rc_sessions_restore_seq(s, seq->via.u64);
    for (uint32_t i = 0; i < seen->via.array.size; i++) {
        const msgpack_object *u = &seen->via.array.ptr[i];
        if (u->type != MSGPACK_OBJECT_ARRAY || u->via.array.size != 2 ||
            u->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            u->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
            return RC_EPARSE;
        rc_str_t pseudo = {u->via.array.ptr[0].via.str.ptr, u->via.array.ptr[0].via.str.size};
        const msgpack_object_array *ids = &u->via.array.ptr[1].via.array;
        for (uint32_t k = 0; k < ids->size; k++) {
            if (ids->ptr[k].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return RC_EPARSE;
            int rc = restore_key(s, pseudo, ids->ptr[k].via.u64);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}
