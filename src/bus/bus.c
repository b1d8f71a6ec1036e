/* SPDX-License-Identifier: Apache-2.0 */
/* Dispatch of the bus interface, and the wire form of bus messages.
 *
 * Wire form (MessagePack map, short keys):
 *   "k": "ev" | "erase" | "push"   kind          "o": origin node    "u": user id
 *   events: "i" id, "t" kind name, "it" item, "v" value, "q" query, "s" surface,
 *           "ts" client ts_ms, "r" received_ms, "p" [[item, weight], ...] recent items,
 *           "dv" device class, "tz" time-zone offset (min), "lc" locale: the user's context
 *   pushes: "id" push id, "tp" topic, "g" segment, "d" payload (any MessagePack value)
 *   ops:    "d" the node's summary (a map, see ops.c)
 *   catalog ("k": "cat"): "id" item id, "j" the item's JSON object text, or "rm": true
 *   setting ("k": "set"): "n" its name, "x" its text
 *   events and erasures in the event log only: "pu" the profile's user id, "sq" sequence
 *   mark ("k": "mark", the event log only): "sq" */
#include "bus/bus.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"

#include <string.h>

int rc_bus_publish(rc_bus_t *b, const rc_bus_msg_t *m, rc_bus_done_fn done, void *arg)
{
    return b->ops->publish(b, m, done, arg);
}

int rc_bus_ready(rc_bus_t *b, char *reason, size_t reason_len)
{
    return b->ops->ready(b, reason, reason_len);
}

size_t rc_bus_pending(const rc_bus_t *b)
{
    return b->ops->pending ? b->ops->pending(b) : 0;
}

bool rc_bus_shared(const rc_bus_t *b)
{
    return b->ops->shared;
}

void rc_bus_settle(rc_bus_t *b)
{
    if (b->ops->settle != NULL)
        b->ops->settle(b);
}

void rc_bus_close(rc_bus_t *b)
{
    if (b != NULL && b->ops->close != NULL)
        b->ops->close(b);
}

void rc_bus_free(rc_bus_t *b)
{
    if (b != NULL)
        b->ops->destroy(b);
}

static void pack_kv(msgpack_packer *pk, const char *k, rc_str_t v)
{
    rc_mp_str(pk, k, strlen(k));
    rc_mp_str(pk, v.p ? v.p : "", v.n);
}

/* The fields an event or an erasure carries for the event log (rc_bus_msg_t.profile_user). */
static uint32_t profile_fields(const rc_bus_msg_t *m)
{
    return (m->profile_user.n > 0) + (m->seq > 0);
}

static void pack_profile_fields(msgpack_packer *pk, const rc_bus_msg_t *m)
{
    if (m->profile_user.n > 0)
        pack_kv(pk, "pu", m->profile_user);
    if (m->seq > 0) {
        rc_mp_str(pk, "sq", 2);
        msgpack_pack_uint64(pk, m->seq);
    }
}

int rc_bus_msg_encode(const rc_bus_msg_t *m, rc_wbuf_t *out)
{
    msgpack_packer pk;
    rc_mp_init(&pk, out);
    if (m->kind == RC_BUS_EVENT) {
        const rc_proto_event_t *e = &m->ev;
        uint32_t n = 9 + (e->item.n > 0) + e->has_value + (e->query.n > 0) + (e->surface.n > 0) +
                     e->has_ts + (m->locale.n > 0) + profile_fields(m);
        msgpack_pack_map(&pk, n);
        pack_kv(&pk, "k", (rc_str_t){"ev", 2});
        pack_kv(&pk, "o", m->origin_node);
        pack_kv(&pk, "u", m->user);
        pack_kv(&pk, "i", e->id);
        const char *kind = rc_event_kind_name(e->kind);
        pack_kv(&pk, "t", (rc_str_t){kind, (uint32_t)strlen(kind)});
        if (e->item.n > 0)
            pack_kv(&pk, "it", e->item);
        if (e->has_value) {
            rc_mp_str(&pk, "v", 1);
            msgpack_pack_double(&pk, e->value);
        }
        if (e->query.n > 0)
            pack_kv(&pk, "q", e->query);
        if (e->surface.n > 0)
            pack_kv(&pk, "s", e->surface);
        if (e->has_ts) {
            rc_mp_str(&pk, "ts", 2);
            msgpack_pack_int64(&pk, e->ts_ms);
        }
        rc_mp_str(&pk, "r", 1);
        msgpack_pack_int64(&pk, m->received_ms);
        rc_mp_str(&pk, "dv", 2);
        msgpack_pack_int(&pk, m->device);
        rc_mp_str(&pk, "tz", 2);
        msgpack_pack_int(&pk, m->tz_offset_min);
        if (m->locale.n > 0)
            pack_kv(&pk, "lc", m->locale);
        rc_mp_str(&pk, "p", 1);
        msgpack_pack_array(&pk, m->n_recent);
        for (uint32_t i = 0; i < m->n_recent; i++) {
            msgpack_pack_array(&pk, 2);
            rc_mp_str(&pk, m->recent[i].p, m->recent[i].n);
            msgpack_pack_float(&pk, m->recent_w[i]);
        }
        pack_profile_fields(&pk, m);
    } else if (m->kind == RC_BUS_ERASE) {
        msgpack_pack_map(&pk, 3 + profile_fields(m));
        pack_kv(&pk, "k", (rc_str_t){"erase", 5});
        pack_kv(&pk, "o", m->origin_node);
        pack_kv(&pk, "u", m->user);
        pack_profile_fields(&pk, m);
    } else if (m->kind == RC_BUS_MARK) {
        msgpack_pack_map(&pk, 3);
        pack_kv(&pk, "k", (rc_str_t){"mark", 4});
        pack_kv(&pk, "o", m->origin_node);
        rc_mp_str(&pk, "sq", 2);
        msgpack_pack_uint64(&pk, m->seq);
    } else if (m->kind == RC_BUS_CATALOG) {
        msgpack_pack_map(&pk, 4);
        pack_kv(&pk, "k", (rc_str_t){"cat", 3});
        pack_kv(&pk, "o", m->origin_node);
        pack_kv(&pk, "id", m->item_id);
        if (m->item_json.n > 0) {
            pack_kv(&pk, "j", m->item_json);
        } else {
            rc_mp_str(&pk, "rm", 2);
            msgpack_pack_true(&pk);
        }
    } else if (m->kind == RC_BUS_SETTING) {
        msgpack_pack_map(&pk, 4);
        pack_kv(&pk, "k", (rc_str_t){"set", 3});
        pack_kv(&pk, "o", m->origin_node);
        pack_kv(&pk, "n", m->setting);
        pack_kv(&pk, "x", m->spec);
    } else if (m->kind == RC_BUS_OPS) {
        msgpack_pack_map(&pk, 3);
        pack_kv(&pk, "k", (rc_str_t){"ops", 3});
        pack_kv(&pk, "o", m->origin_node);
        rc_mp_str(&pk, "d", 1);
        if (m->data != NULL)
            msgpack_pack_object(&pk, *m->data);
        else
            msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_map(&pk, 7);
        pack_kv(&pk, "k", (rc_str_t){"push", 4});
        pack_kv(&pk, "o", m->origin_node);
        pack_kv(&pk, "u", m->user);
        pack_kv(&pk, "g", m->segment);
        pack_kv(&pk, "id", m->push_id);
        pack_kv(&pk, "tp", m->topic);
        rc_mp_str(&pk, "d", 1);
        if (m->data != NULL)
            msgpack_pack_object(&pk, *m->data);
        else
            msgpack_pack_nil(&pk);
    }
    return rc_wbuf_ok(out);
}

static bool get_str(const msgpack_object *v, rc_str_t *out)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return false;
    *out = (rc_str_t){v->via.str.ptr, v->via.str.size};
    return true;
}

static int kind_of(rc_str_t s)
{
    for (int k = 0; k < RC_EVENT_KIND_COUNT; k++) {
        const char *name = rc_event_kind_name(k);
        if (strlen(name) == s.n && memcmp(name, s.p, s.n) == 0)
            return k;
    }
    return -1;
}

static void decode_recent(const msgpack_object *v, rc_bus_msg_t *m)
{
    for (uint32_t i = 0;
         v->type == MSGPACK_OBJECT_ARRAY && i < v->via.array.size && m->n_recent < RC_BUS_RECENT;
         i++) {
        const msgpack_object *pair = &v->via.array.ptr[i];
        if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
            !get_str(&pair->via.array.ptr[0], &m->recent[m->n_recent]))
            continue;
        const msgpack_object *w = &pair->via.array.ptr[1];
        m->recent_w[m->n_recent++] =
            (w->type == MSGPACK_OBJECT_FLOAT32 || w->type == MSGPACK_OBJECT_FLOAT64)
                ? (float)w->via.f64
                : 1.0f;
    }
}

int rc_bus_msg_decode(const void *data, size_t len, msgpack_zone *zone, rc_bus_msg_t *m)
{
    msgpack_object root;
    size_t off = 0;
    rc_str_t kind = {NULL, 0}, tname = {NULL, 0};
    bool removed = false, has_spec = false;

    memset(m, 0, sizeof(*m));
    if (rc_mp_check(data, len, 32) != 0 ||
        msgpack_unpack(data, len, &off, zone, &root) != MSGPACK_UNPACK_SUCCESS ||
        root.type != MSGPACK_OBJECT_MAP)
        return RC_EPARSE;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr[i].key, *v = &root.via.map.ptr[i].val;
        if (rc_mp_str_is(k, "k"))
            get_str(v, &kind);
        else if (rc_mp_str_is(k, "o"))
            get_str(v, &m->origin_node);
        else if (rc_mp_str_is(k, "u"))
            get_str(v, &m->user);
        else if (rc_mp_str_is(k, "i"))
            get_str(v, &m->ev.id);
        else if (rc_mp_str_is(k, "t"))
            get_str(v, &tname);
        else if (rc_mp_str_is(k, "it"))
            get_str(v, &m->ev.item);
        else if (rc_mp_str_is(k, "q"))
            get_str(v, &m->ev.query);
        else if (rc_mp_str_is(k, "s"))
            get_str(v, &m->ev.surface);
        else if (rc_mp_str_is(k, "id"))
            get_str(v, &m->push_id);
        else if (rc_mp_str_is(k, "j"))
            get_str(v, &m->item_json);
        else if (rc_mp_str_is(k, "x"))
            has_spec = get_str(v, &m->spec);
        else if (rc_mp_str_is(k, "n"))
            get_str(v, &m->setting);
        else if (rc_mp_str_is(k, "rm"))
            removed = rc_mp_is_true(v);
        else if (rc_mp_str_is(k, "tp"))
            get_str(v, &m->topic);
        else if (rc_mp_str_is(k, "g"))
            get_str(v, &m->segment);
        else if (rc_mp_str_is(k, "p"))
            decode_recent(v, m);
        else if (rc_mp_str_is(k, "v") &&
                 (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)) {
            m->ev.has_value = true;
            m->ev.value = v->via.f64;
        } else if (rc_mp_str_is(k, "r") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            m->received_ms = (int64_t)v->via.u64;
        } else if (rc_mp_str_is(k, "ts") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            m->ev.has_ts = true;
            m->ev.ts_ms = (int64_t)v->via.u64;
        } else if (rc_mp_str_is(k, "dv") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                   v->via.u64 < RC_DEVICE_COUNT) {
            m->device = (int)v->via.u64;
        } else if (rc_mp_str_is(k, "tz") && (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                                             v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
            /* Time zones are within a day of UTC (the protocol checks at hello). */
            if (v->via.i64 >= -1440 && v->via.i64 <= 1440)
                m->tz_offset_min = (int)v->via.i64;
        } else if (rc_mp_str_is(k, "lc")) {
            get_str(v, &m->locale);
        } else if (rc_mp_str_is(k, "pu")) {
            get_str(v, &m->profile_user);
        } else if (rc_mp_str_is(k, "sq") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            m->seq = v->via.u64;
        } else if (rc_mp_str_is(k, "d")) {
            m->data = v;
        }
    }
    if (kind.n == 2 && memcmp(kind.p, "ev", 2) == 0) {
        int kd = kind_of(tname);
        if (kd < 0 || m->ev.id.n == 0 || m->user.n == 0)
            return RC_EPARSE;
        m->kind = RC_BUS_EVENT;
        m->ev.kind = (rc_event_kind_t)kd;
        return 0;
    }
    if (kind.n == 5 && memcmp(kind.p, "erase", 5) == 0 && m->user.n > 0) {
        m->kind = RC_BUS_ERASE;
        return 0;
    }
    if (kind.n == 4 && memcmp(kind.p, "mark", 4) == 0 && m->seq > 0) {
        m->kind = RC_BUS_MARK;
        return 0;
    }
    if (kind.n == 4 && memcmp(kind.p, "push", 4) == 0 && m->data != NULL) {
        m->kind = RC_BUS_PUSH;
        return 0;
    }
    /* "id" is read as a push id; for a catalog change it is the item's. Exactly one of an
     * item and a removal. */
    if (kind.n == 3 && memcmp(kind.p, "cat", 3) == 0 && m->push_id.n > 0 &&
        (m->item_json.n > 0) != removed) {
        m->kind = RC_BUS_CATALOG;
        m->item_id = m->push_id;
        m->push_id = (rc_str_t){NULL, 0};
        return 0;
    }
    if (kind.n == 3 && memcmp(kind.p, "set", 3) == 0 && has_spec && m->setting.n > 0 &&
        m->setting.n <= RC_SETTING_NAME_MAX) {
        m->kind = RC_BUS_SETTING;
        return 0;
    }
    if (kind.n == 3 && memcmp(kind.p, "ops", 3) == 0 && m->data != NULL &&
        m->data->type == MSGPACK_OBJECT_MAP && m->origin_node.n > 0) {
        m->kind = RC_BUS_OPS;
        return 0;
    }
    return RC_EPARSE;
}
