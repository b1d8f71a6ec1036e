/* SPDX-License-Identifier: Apache-2.0 */
/* The profile interface's dispatch, deltas, and the profile document codec.
 *
 * Document (MessagePack map, short keys to keep profiles small; see docs/profiles.md):
 *   "v": 1            format version
 *   "n": int          events counted for this user
 *   "c": {cat: num}   category affinities (the 16 strongest)
 *   "f": {hex: num}   content feature affinities (the 16 strongest), keyed by the feature
 *                     id as 8 lower-case hex digits: the long-term content vector
 *   "r": [id, ...]    recent items, oldest first (16)
 *   "x": [id, ...]    purchased or dismissed items (32)
 *   "t": int          last update, ms since the epoch
 *   "q": {node: int}  Redis only: the last delta sequence applied from each node
 * A delta has the same keys (its "n", "c", "f" are increments; stored "c" and "f" fade with
 * the time since "t", RC_PROFILE_HALF_LIFE_MS, before they are added). Documents written by Redis'
 * Lua (cmsgpack) may hold integers where weights are expected, and an empty array for an empty map;
 * the readers here accept both. */
#include "store/profile.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"

#include <math.h>
#include <msgpack.h>
#include <string.h>

int rc_profile_load(rc_profile_store_t *s, const char *user, size_t user_len)
{
    return s->ops->load(s, user, user_len);
}

int rc_profile_update(rc_profile_store_t *s, const char *user, size_t user_len, const void *delta,
                      size_t len, rc_profile_seq_t seq)
{
    return s->ops->update(s, user, user_len, delta, len, seq);
}

int rc_profile_erase(rc_profile_store_t *s, const char *user, size_t user_len, rc_profile_seq_t seq)
{
    return s->ops->erase(s, user, user_len, seq);
}

void rc_profile_snapshot_write(const rc_profile_store_t *s, msgpack_packer *pk)
{
    if (s->ops->snapshot_write != NULL)
        s->ops->snapshot_write(s, pk);
    else
        msgpack_pack_nil(pk);
}

int rc_profile_snapshot_read(rc_profile_store_t *s, const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_NIL || s->ops->snapshot_read == NULL)
        return 0;
    return s->ops->snapshot_read(s, o);
}

uint64_t rc_profile_oldest_unconfirmed(const rc_profile_store_t *s)
{
    return s->ops->oldest_unconfirmed != NULL ? s->ops->oldest_unconfirmed(s) : UINT64_MAX;
}

int rc_profile_ready(rc_profile_store_t *s, char *reason, size_t reason_len)
{
    return s->ops->ready(s, reason, reason_len);
}

size_t rc_profile_pending(const rc_profile_store_t *s)
{
    return s->ops->pending(s);
}

void rc_profile_close(rc_profile_store_t *s)
{
    if (s != NULL && s->ops->close != NULL)
        s->ops->close(s);
}

void rc_profile_store_free(rc_profile_store_t *s)
{
    if (s != NULL)
        s->ops->destroy(s);
}

/* ---- deltas ---- */

static bool holds(const uint32_t *ids, uint8_t n, uint32_t id)
{
    for (uint8_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static int cat_slot(const rc_profile_delta_t *d, uint16_t cat)
{
    for (uint8_t i = 0; i < d->n_cats; i++)
        if (d->cats[i] == cat)
            return i;
    return -1;
}

/* Whether an event on item `idx` fits the delta without dropping anything it holds. Recent
 * items need no room: the profile keeps the newest ones, as the delta does. The lists are
 * searched only when they are too full to take the event whatever it holds. */
static bool delta_fits(const rc_profile_delta_t *d, const rc_catalog_t *c, rc_event_kind_t kind,
                       uint32_t idx, float w)
{
    if ((kind == RC_EV_PURCHASE || kind == RC_EV_DISMISS) && d->n_excluded == RC_PROFILE_EXCLUDED &&
        !holds(d->excluded, d->n_excluded, idx))
        return false;
    if (kind == RC_EV_DISMISS || w <= 0)
        return true;
    const rc_item_t *it = &c->items[idx];
    if (it->category != 0 && d->n_cats == RC_CATS && cat_slot(d, it->category) < 0)
        return false;
    uint32_t room = RC_PROFILE_FEATS - d->n_feats;
    if (it->n_feat <= room)
        return true;
    for (uint8_t f = 0; f < it->n_feat; f++)
        if (!holds(d->feats, d->n_feats, it->feat[f]) && room-- == 0)
            return false;
    return true;
}

static void delta_add_category(rc_profile_delta_t *d, uint16_t cat, float w)
{
    int at = cat_slot(d, cat);
    if (at >= 0) {
        d->cats_w[at] += w;
        return;
    }
    d->cats[d->n_cats] = cat;
    d->cats_w[d->n_cats++] = w;
}

bool rc_profile_delta_add(rc_profile_delta_t *d, const rc_catalog_t *c, rc_event_kind_t kind,
                          int64_t item, float w)
{
    if (kind == RC_EV_IMPRESSION)
        return true;
    bool known = item >= 0 && (uint64_t)item < c->n;
    uint32_t idx = known ? (uint32_t)item : 0;
    if (known && !delta_fits(d, c, kind, idx, w))
        return false;
    d->events++;
    if (!known)
        return true;
    if ((kind == RC_EV_PURCHASE || kind == RC_EV_DISMISS) &&
        !holds(d->excluded, d->n_excluded, idx))
        d->excluded[d->n_excluded++] = idx;
    if (kind == RC_EV_DISMISS || w <= 0)
        return true;
    if (c->items[idx].category != 0)
        delta_add_category(d, c->items[idx].category, w);
    rc_weights_add_item(c, d->feats, d->feats_w, &d->n_feats, RC_PROFILE_FEATS, idx, w);
    /* The newest item goes last; an item seen again moves to the end. */
    uint8_t j = 0;
    for (uint8_t i = 0; i < d->n_recent; i++)
        if (d->recent[i] != idx)
            d->recent[j++] = d->recent[i];
    d->n_recent = j;
    if (d->n_recent == RC_PROFILE_RECENT) {
        memmove(d->recent, d->recent + 1, (RC_PROFILE_RECENT - 1) * sizeof(uint32_t));
        d->n_recent--;
    }
    d->recent[d->n_recent++] = idx;
    return true;
}

static void pack_features(msgpack_packer *pk, const uint32_t *feats, const double *w, uint32_t n)
{
    static const char digits[] = "0123456789abcdef";
    char hex[8];
    rc_mp_cstr(pk, "f");
    msgpack_pack_map(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        /* "%08x" by hand: a delta is encoded for every event, and printf was 1 % of its CPU. */
        for (int d = 0; d < 8; d++)
            hex[d] = digits[feats[i] >> (28 - 4 * d) & 15];
        rc_mp_str(pk, hex, 8);
        msgpack_pack_double(pk, w[i]);
    }
}

int rc_profile_delta_encode(const rc_catalog_t *c, const rc_profile_delta_t *d, int64_t now_ms,
                            rc_wbuf_t *out)
{
    msgpack_packer pk;
    rc_mp_init(&pk, out);
    double feats_w[RC_PROFILE_FEATS];
    for (uint8_t i = 0; i < d->n_feats; i++)
        feats_w[i] = d->feats_w[i];
    msgpack_pack_map(&pk, 6);
    rc_mp_cstr(&pk, "n");
    msgpack_pack_uint32(&pk, d->events);
    pack_features(&pk, d->feats, feats_w, d->n_feats);
    rc_mp_cstr(&pk, "c");
    msgpack_pack_map(&pk, d->n_cats);
    for (uint8_t i = 0; i < d->n_cats; i++) {
        rc_mp_cstr(&pk, c->categories[d->cats[i]]);
        msgpack_pack_double(&pk, d->cats_w[i]);
    }
    rc_mp_cstr(&pk, "r");
    msgpack_pack_array(&pk, d->n_recent);
    for (uint8_t i = 0; i < d->n_recent; i++)
        rc_mp_cstr(&pk, rc_item_id(c, d->recent[i]));
    rc_mp_cstr(&pk, "x");
    msgpack_pack_array(&pk, d->n_excluded);
    for (uint8_t i = 0; i < d->n_excluded; i++)
        rc_mp_cstr(&pk, rc_item_id(c, d->excluded[i]));
    rc_mp_cstr(&pk, "t");
    msgpack_pack_int64(&pk, now_ms);
    return rc_wbuf_ok(out);
}

/* ---- documents ---- */

typedef struct {
    char s[RC_ID_MAX + 1];
} name_t;

/* A document or a delta, decoded. Big (≈4 KB) but short-lived, on the stack. */
typedef struct {
    int64_t n, t;
    uint32_t n_cats, n_recent, n_excluded, n_feats;
    bool has_feats; /* documents from before feature affinities were stored have none */
    name_t cats[RC_PROFILE_CATS + RC_CATS];
    double cats_w[RC_PROFILE_CATS + RC_CATS];
    uint32_t feats[2 * RC_PROFILE_FEATS];
    double feats_w[2 * RC_PROFILE_FEATS];
    name_t recent[RC_PROFILE_RECENT];
    name_t excluded[RC_PROFILE_EXCLUDED];
} doc_t;

static bool obj_name(const msgpack_object *o, name_t *out)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > RC_ID_MAX)
        return false;
    memcpy(out->s, o->via.str.ptr, o->via.str.size);
    out->s[o->via.str.size] = '\0';
    return true;
}

static bool parse_hex32(const char *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    if (n != 8)
        return false;
    for (size_t i = 0; i < n; i++) {
        int h = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                                             : -1;
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* Reads the lists of a document; `cap_*` bound what is kept (the oldest recent items and
 * the oldest exclusions are dropped first). */
static int doc_read(msgpack_zone *zone, const void *data, size_t len, doc_t *d)
{
    msgpack_object root;
    size_t off = 0;
    double x;

    memset(d, 0, sizeof(*d));
    if (rc_mp_check(data, len, 8) != 0)
        return RC_EPARSE;
    msgpack_zone_clear(zone);
    switch (msgpack_unpack(data, len, &off, zone, &root)) {
    case MSGPACK_UNPACK_SUCCESS:
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        return RC_ENOMEM;
    default:
        return RC_EPARSE;
    }
    if (root.type != MSGPACK_OBJECT_MAP)
        return RC_EPARSE;
    const msgpack_object *o;
    if ((o = rc_mp_map_get(&root.via.map, "n")) != NULL && rc_mp_number(o, &x))
        d->n = (int64_t)x;
    if ((o = rc_mp_map_get(&root.via.map, "t")) != NULL && rc_mp_number(o, &x))
        d->t = (int64_t)x;
    o = rc_mp_map_get(&root.via.map, "c");
    for (uint32_t i = 0; o && o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size; i++) {
        if (d->n_cats < RC_PROFILE_CATS + RC_CATS &&
            obj_name(&o->via.map.ptr[i].key, &d->cats[d->n_cats]) &&
            rc_mp_number(&o->via.map.ptr[i].val, &d->cats_w[d->n_cats]))
            d->n_cats++;
    }
    o = rc_mp_map_get(&root.via.map, "f");
    d->has_feats = o != NULL;
    for (uint32_t i = 0; o && o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        uint32_t feat;
        if (d->n_feats < 2 * RC_PROFILE_FEATS && k->type == MSGPACK_OBJECT_STR &&
            parse_hex32(k->via.str.ptr, k->via.str.size, &feat) &&
            rc_mp_number(&o->via.map.ptr[i].val, &x) && x > 0) {
            d->feats[d->n_feats] = feat;
            d->feats_w[d->n_feats++] = x;
        }
    }
    o = rc_mp_map_get(&root.via.map, "r");
    for (uint32_t i = 0; o && o->type == MSGPACK_OBJECT_ARRAY && i < o->via.array.size; i++) {
        name_t nm;
        if (!obj_name(&o->via.array.ptr[i], &nm))
            continue;
        if (d->n_recent == RC_PROFILE_RECENT) {
            memmove(d->recent, d->recent + 1, (RC_PROFILE_RECENT - 1) * sizeof(name_t));
            d->n_recent--;
        }
        d->recent[d->n_recent++] = nm;
    }
    o = rc_mp_map_get(&root.via.map, "x");
    for (uint32_t i = 0; o && o->type == MSGPACK_OBJECT_ARRAY && i < o->via.array.size; i++) {
        name_t nm;
        if (!obj_name(&o->via.array.ptr[i], &nm))
            continue;
        if (d->n_excluded == RC_PROFILE_EXCLUDED) {
            memmove(d->excluded, d->excluded + 1, (RC_PROFILE_EXCLUDED - 1) * sizeof(name_t));
            d->n_excluded--;
        }
        d->excluded[d->n_excluded++] = nm;
    }
    return 0;
}

static int find_name(const name_t *names, uint32_t n, const char *s)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(names[i].s, s) == 0)
            return (int)i;
    return -1;
}

/* Keeps the `keep` entries of largest weight among `n` (keys of `size` bytes, weights
 * alongside), in place: a selection sort, on a few dozen entries. Returns the new count. */
static uint32_t keep_strongest(void *keys, size_t size, double *w, uint32_t n, uint32_t keep)
{
    unsigned char tmp[sizeof(name_t)], *k = keys;
    for (uint32_t i = 0; i < n && i < keep; i++) {
        uint32_t best = i;
        for (uint32_t j = i + 1; j < n; j++)
            if (w[j] > w[best])
                best = j;
        double tw = w[i];
        w[i] = w[best];
        w[best] = tw;
        memcpy(tmp, k + i * size, size);
        memcpy(k + i * size, k + best * size, size);
        memcpy(k + best * size, tmp, size);
    }
    return n < keep ? n : keep;
}

static void doc_apply(doc_t *p, const doc_t *d)
{
    p->n += d->n;
    /* What was stored fades with the time since its last update. */
    if (p->t > 0 && d->t > p->t) {
        double fade = exp2(-(double)(d->t - p->t) / (double)RC_PROFILE_HALF_LIFE_MS);
        for (uint32_t i = 0; i < p->n_cats; i++)
            p->cats_w[i] *= fade;
        for (uint32_t i = 0; i < p->n_feats; i++)
            p->feats_w[i] *= fade;
    }
    if (d->t > p->t)
        p->t = d->t;
    for (uint32_t i = 0; i < d->n_feats; i++) {
        uint32_t at = 0;
        while (at < p->n_feats && p->feats[at] != d->feats[i])
            at++;
        if (at < p->n_feats) {
            p->feats_w[at] += d->feats_w[i];
        } else if (p->n_feats < 2 * RC_PROFILE_FEATS) {
            p->feats[p->n_feats] = d->feats[i];
            p->feats_w[p->n_feats++] = d->feats_w[i];
        }
    }
    p->n_feats =
        keep_strongest(p->feats, sizeof(p->feats[0]), p->feats_w, p->n_feats, RC_PROFILE_FEATS);
    for (uint32_t i = 0; i < d->n_cats; i++) {
        int at = find_name(p->cats, p->n_cats, d->cats[i].s);
        if (at >= 0) {
            p->cats_w[at] += d->cats_w[i];
        } else if (p->n_cats < RC_PROFILE_CATS + RC_CATS) {
            p->cats[p->n_cats] = d->cats[i];
            p->cats_w[p->n_cats++] = d->cats_w[i];
        }
    }
    p->n_cats = keep_strongest(p->cats, sizeof(p->cats[0]), p->cats_w, p->n_cats, RC_PROFILE_CATS);
    for (uint32_t i = 0; i < d->n_recent; i++) {
        int at = find_name(p->recent, p->n_recent, d->recent[i].s);
        if (at >= 0) {
            memmove(p->recent + at, p->recent + at + 1, (p->n_recent - at - 1) * sizeof(name_t));
            p->n_recent--;
        }
        if (p->n_recent == RC_PROFILE_RECENT) {
            memmove(p->recent, p->recent + 1, (RC_PROFILE_RECENT - 1) * sizeof(name_t));
            p->n_recent--;
        }
        p->recent[p->n_recent++] = d->recent[i];
    }
    for (uint32_t i = 0; i < d->n_excluded; i++) {
        if (find_name(p->excluded, p->n_excluded, d->excluded[i].s) >= 0)
            continue;
        if (p->n_excluded == RC_PROFILE_EXCLUDED) {
            memmove(p->excluded, p->excluded + 1, (RC_PROFILE_EXCLUDED - 1) * sizeof(name_t));
            p->n_excluded--;
        }
        p->excluded[p->n_excluded++] = d->excluded[i];
    }
}

static int doc_write(const doc_t *p, rc_wbuf_t *out)
{
    msgpack_packer pk;
    rc_mp_init(&pk, out);
    msgpack_pack_map(&pk, 7);
    rc_mp_cstr(&pk, "v");
    msgpack_pack_int(&pk, 1);
    rc_mp_cstr(&pk, "n");
    msgpack_pack_int64(&pk, p->n);
    pack_features(&pk, p->feats, p->feats_w, p->n_feats);
    rc_mp_cstr(&pk, "c");
    msgpack_pack_map(&pk, p->n_cats);
    for (uint32_t i = 0; i < p->n_cats; i++) {
        rc_mp_cstr(&pk, p->cats[i].s);
        msgpack_pack_double(&pk, p->cats_w[i]);
    }
    rc_mp_cstr(&pk, "r");
    msgpack_pack_array(&pk, p->n_recent);
    for (uint32_t i = 0; i < p->n_recent; i++)
        rc_mp_cstr(&pk, p->recent[i].s);
    rc_mp_cstr(&pk, "x");
    msgpack_pack_array(&pk, p->n_excluded);
    for (uint32_t i = 0; i < p->n_excluded; i++)
        rc_mp_cstr(&pk, p->excluded[i].s);
    rc_mp_cstr(&pk, "t");
    msgpack_pack_int64(&pk, p->t);
    return rc_wbuf_ok(out);
}

int rc_profile_apply_delta(msgpack_zone *zone, const void *doc, size_t doc_len, const void *delta,
                           size_t delta_len, rc_wbuf_t *out)
{
    doc_t p, d;
    int rc;
    if (doc != NULL) {
        if ((rc = doc_read(zone, doc, doc_len, &p)) != 0)
            return rc;
    } else {
        memset(&p, 0, sizeof(p));
    }
    if ((rc = doc_read(zone, delta, delta_len, &d)) != 0)
        return rc;
    doc_apply(&p, &d);
    return doc_write(&p, out);
}

/* ---- merging into a session ---- */

static void merge_recent(const rc_catalog_t *c, rc_user_state_t *u, const doc_t *d)
{
    /* Rebuild the ring: the profile's items first (older), the session's own after. The
     * session's content vector stays its own. */
    rc_recent_t own[RC_RECENT];
    uint8_t n_own = u->n_recent;
    for (uint8_t k = 0; k < n_own; k++)
        own[n_own - 1 - k] = *rc_user_recent(u, k);
    u->n_recent = u->head = 0;
    for (uint32_t i = 0; i < d->n_recent; i++) {
        int64_t idx = rc_catalog_find(c, d->recent[i].s, strlen(d->recent[i].s));
        if (idx < 0)
            continue;
        /* The content vector is not stored: it is rebuilt from the items it came from. */
        rc_user_push_recent(u, (uint32_t)idx, 1.0f, 0, RC_EVENT_KIND_COUNT);
        if (!d->has_feats)
            rc_weights_add_item(c, u->ltvec_feat, u->ltvec_w, &u->n_ltvec, RC_LTVEC, (uint32_t)idx,
                                1.0f);
    }
    for (uint8_t i = 0; i < n_own; i++)
        rc_user_push_recent(u, own[i].item, own[i].w, own[i].at_s, own[i].kind);
}

int rc_profile_merge(const rc_catalog_t *c, rc_user_state_t *u, const void *data, size_t len)
{
    doc_t d;
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, RC_PROFILE_ZONE))
        return RC_ENOMEM;
    int rc = doc_read(&zone, data, len, &d);
    msgpack_zone_destroy(&zone);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < d.n_cats; i++) {
        int32_t cat = rc_catalog_category(c, d.cats[i].s, strlen(d.cats[i].s));
        if (cat > 0)
            rc_user_add_category(u, (uint16_t)cat, 0.5f * (float)d.cats_w[i]);
    }
    for (uint32_t i = 0; i < d.n_feats; i++)
        rc_weights_add(u->ltvec_feat, u->ltvec_w, &u->n_ltvec, RC_LTVEC, d.feats[i],
                       (float)d.feats_w[i]);
    merge_recent(c, u, &d);
    for (uint32_t i = 0; i < d.n_excluded; i++) {
        int64_t idx = rc_catalog_find(c, d.excluded[i].s, strlen(d.excluded[i].s));
        if (idx >= 0)
            rc_user_exclude(u, (uint32_t)idx);
    }
    u->events += (uint32_t)(d.n > 0 ? d.n : 0);
    return 0;
}
