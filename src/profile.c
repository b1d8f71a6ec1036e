/* The profile interface's dispatch and the profile document codec.
 *
 * Document (MessagePack map, short keys to keep profiles small; the session's content vector
 * is not stored but rebuilt from the recent items on merge):
 *   "v": 1            format version
 *   "n": int          events seen for this user
 *   "c": {cat: float} category affinities
 *   "r": [id, ...]    recent items, oldest first (at most 16)
 *   "x": [id, ...]    purchased or dismissed items (at most 32)
 *   "t": int          last update, ms since the epoch */
#include "profile.h"
#include "error.h"

#include <msgpack.h>
#include <string.h>

#define PROFILE_RECENT   16
#define PROFILE_EXCLUDED 32

int rc_profile_load(rc_profile_store_t *s, const char *user, size_t user_len)
{
    return s->ops->load(s, user, user_len);
}

int rc_profile_save(rc_profile_store_t *s, const char *user, size_t user_len, const void *data,
                    size_t len)
{
    return s->ops->save(s, user, user_len, data, len);
}

int rc_profile_erase(rc_profile_store_t *s, const char *user, size_t user_len)
{
    return s->ops->erase(s, user, user_len);
}

int rc_profile_ready(rc_profile_store_t *s, char *reason, size_t reason_len)
{
    return s->ops->ready(s, reason, reason_len);
}

void rc_profile_store_free(rc_profile_store_t *s)
{
    if (s != NULL)
        s->ops->destroy(s);
}

static int wbuf_write(void *data, const char *buf, size_t len)
{
    rc_wbuf_put(data, buf, len);
    return 0;
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int rc_profile_encode(const rc_catalog_t *c, const rc_user_state_t *u, int64_t updated_ms,
                      rc_wbuf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, wbuf_write);
    msgpack_pack_map(&pk, 6); /* v, n, c, r, x, t */
    pack_cstr(&pk, "v");
    msgpack_pack_int(&pk, 1);
    pack_cstr(&pk, "n");
    msgpack_pack_uint32(&pk, u->events);

    pack_cstr(&pk, "c");
    uint32_t n_cats = 0;
    for (uint8_t i = 0; i < u->n_cats; i++)
        n_cats += u->cats[i] < c->n_categories && u->cats_w[i] > 0;
    msgpack_pack_map(&pk, n_cats);
    for (uint8_t i = 0; i < u->n_cats; i++) {
        if (u->cats[i] < c->n_categories && u->cats_w[i] > 0) {
            pack_cstr(&pk, c->categories[u->cats[i]]);
            msgpack_pack_float(&pk, u->cats_w[i]);
        }
    }

    pack_cstr(&pk, "r");
    uint8_t n_recent = u->n_recent < PROFILE_RECENT ? u->n_recent : PROFILE_RECENT;
    msgpack_pack_array(&pk, n_recent);
    for (int d = n_recent - 1; d >= 0; d--) {
        uint32_t item = u->recent[(u->head + RC_RECENT - 1 - d) % RC_RECENT].item;
        pack_cstr(&pk, item < c->n ? c->items[item].id : "");
    }

    pack_cstr(&pk, "x");
    uint8_t n_ex = u->n_excluded < PROFILE_EXCLUDED ? u->n_excluded : PROFILE_EXCLUDED;
    msgpack_pack_array(&pk, n_ex);
    for (uint8_t i = 0; i < n_ex; i++) {
        uint32_t item = u->excluded[(u->excluded_head + RC_EXCLUDED - 1 - i) % RC_EXCLUDED];
        pack_cstr(&pk, item < c->n ? c->items[item].id : "");
    }
    pack_cstr(&pk, "t");
    msgpack_pack_int64(&pk, updated_ms);
    return rc_wbuf_ok(out);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static int64_t resolve_str(rc_catalog_t *c, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > 64)
        return -1;
    return rc_catalog_resolve(c, o->via.str.ptr, o->via.str.size);
}

static void merge_recent(rc_catalog_t *c, rc_user_state_t *u, const msgpack_object *r)
{
    /* Rebuild the ring: the profile's items first (older), the session's own after. */
    rc_recent_t own[RC_RECENT];
    uint8_t n_own = u->n_recent;
    for (uint8_t d = 0; d < n_own; d++)
        own[n_own - 1 - d] = u->recent[(u->head + RC_RECENT - 1 - d) % RC_RECENT];
    u->n_recent = u->head = 0;
    for (uint32_t i = 0; i < r->via.array.size; i++) {
        int64_t idx = resolve_str(c, &r->via.array.ptr[i]);
        if (idx < 0)
            continue;
        /* The content vector is not stored: it is rebuilt from the items it came from. */
        rc_user_push_recent(u, (uint32_t)idx, 1.0f);
        rc_user_learn_content(c, u, (uint32_t)idx, 1.0f);
    }
    for (uint8_t i = 0; i < n_own; i++)
        rc_user_push_recent(u, own[i].item, own[i].w);
}

int rc_profile_merge(rc_catalog_t *c, rc_user_state_t *u, const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_object root;
    size_t off = 0;
    int rc = RC_EPARSE;

    if (!msgpack_zone_init(&zone, 1024))
        return RC_ENOMEM;
    if (msgpack_unpack(data, len, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS ||
        root.type != MSGPACK_OBJECT_MAP)
        goto out;
    const msgpack_object *v = map_get(&root, "v");
    if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != 1)
        goto out;
    const msgpack_object *cats = map_get(&root, "c");
    for (uint32_t i = 0; cats && cats->type == MSGPACK_OBJECT_MAP && i < cats->via.map.size; i++) {
        const msgpack_object_kv *kv = &cats->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR ||
            (kv->val.type != MSGPACK_OBJECT_FLOAT32 && kv->val.type != MSGPACK_OBJECT_FLOAT64))
            continue;
        int32_t cat = rc_catalog_category(c, kv->key.via.str.ptr, kv->key.via.str.size);
        if (cat > 0)
            rc_user_add_category(u, (uint16_t)cat, 0.5f * (float)kv->val.via.f64);
    }
    const msgpack_object *r = map_get(&root, "r");
    if (r != NULL && r->type == MSGPACK_OBJECT_ARRAY)
        merge_recent(c, u, r);
    const msgpack_object *x = map_get(&root, "x");
    for (uint32_t i = 0; x && x->type == MSGPACK_OBJECT_ARRAY && i < x->via.array.size; i++) {
        int64_t idx = resolve_str(c, &x->via.array.ptr[i]);
        if (idx >= 0)
            rc_user_exclude(u, (uint32_t)idx);
    }
    const msgpack_object *n = map_get(&root, "n");
    if (n != NULL && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        u->events += (uint32_t)n->via.u64;
    rc = 0;
out:
    msgpack_zone_destroy(&zone);
    return rc;
}
