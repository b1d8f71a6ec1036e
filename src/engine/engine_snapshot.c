/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's part of a snapshot (engine_snapshot.h). The models are written by catalog
 * index, with the catalog's ids in index order ("ids") to map them on reading. */
#include "engine/engine_snapshot.h"
#include "engine/engine_int.h"
#include "engine/experiments.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_engine_snapshot_write(const rc_engine_t *e, const rc_experiment_counts_t *counts,
                              msgpack_packer *pk)
{
    const rc_catalog_t *c = &e->catalog;
    msgpack_pack_map(pk, 9);
    rc_mp_cstr(pk, "ids");
    msgpack_pack_array(pk, c->n);
    for (uint32_t i = 0; i < c->n; i++)
        rc_mp_cstr(pk, rc_item_id(c, i));
    rc_mp_cstr(pk, "learned"); /* indexes of the items learned from traffic */
    msgpack_pack_array(pk, c->n_learned);
    for (uint32_t i = 0; i < c->n; i++)
        if (c->items[i].flags & RC_ITEM_LEARNED)
            msgpack_pack_uint32(pk, i);
    rc_mp_cstr(pk, "covisit");
    rc_covisit_snapshot_write(&e->covisit, pk);
    rc_mp_cstr(pk, "successor");
    rc_covisit_snapshot_write(&e->successor, pk);
    rc_mp_cstr(pk, "blend"); /* covisit, content, trending, popular, successor */
    msgpack_pack_array(pk, 5);
    msgpack_pack_float(pk, e->blend.covisit);
    msgpack_pack_float(pk, e->blend.content);
    msgpack_pack_float(pk, e->blend.trending);
    msgpack_pack_float(pk, e->blend.popular);
    msgpack_pack_float(pk, e->blend.successor);
    rc_mp_cstr(pk, "trending");
    rc_trending_snapshot_write(&e->trending, pk);
    rc_mp_cstr(pk, "repeat"); /* same, then back, per device class */
    msgpack_pack_array(pk, 2 * RC_DEVICE_COUNT);
    for (int d = 0; d < RC_DEVICE_COUNT; d++)
        msgpack_pack_float(pk, e->repeat_same[d]);
    for (int d = 0; d < RC_DEVICE_COUNT; d++)
        msgpack_pack_float(pk, e->repeat_back[d]);
    rc_mp_cstr(pk, "repeat_successor");
    msgpack_pack_float(pk, e->repeat_successor);
    rc_mp_cstr(pk, "experiment"); /* its name, then [variant, impressions, clicks] ... */
    const rc_experiment_t *x = e->experiment;
    uint32_t nv = x != NULL ? x->n_variants : 0;
    msgpack_pack_array(pk, 1 + nv);
    rc_mp_cstr(pk, x != NULL ? x->name : "");
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    if (x != NULL)
        rc_experiment_stats(x, counts, st, RC_VARIANTS_MAX);
    for (uint32_t v = 0; v < nv; v++) {
        msgpack_pack_array(pk, 3);
        rc_mp_cstr(pk, x->variants[v].name);
        msgpack_pack_uint64(pk, st[v].impressions);
        msgpack_pack_uint64(pk, st[v].clicks);
    }
}

/* map[i]: the index now of the item that had index i, or -1. Items learned from traffic are
 * learned again first, in their order. */
static int64_t *map_items(rc_engine_t *e, const msgpack_object *ids, const msgpack_object *learned)
{
    rc_catalog_t *c = &e->catalog;
    uint32_t n = ids->via.array.size;
    int64_t *map = malloc((n > 0 ? n : 1) * sizeof(*map));
    if (map == NULL)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *id = &ids->via.array.ptr[i];
        map[i] = id->type == MSGPACK_OBJECT_STR
                     ? rc_catalog_find(c, id->via.str.ptr, id->via.str.size)
                     : -1;
    }
    for (uint32_t i = 0; i < learned->via.array.size; i++) {
        const msgpack_object *at = &learned->via.array.ptr[i];
        if (at->type != MSGPACK_OBJECT_POSITIVE_INTEGER || at->via.u64 >= n ||
            map[at->via.u64] >= 0)
            continue;
        const msgpack_object *id = &ids->via.array.ptr[at->via.u64];
        if (id->type != MSGPACK_OBJECT_STR)
            continue;
        /* An open catalog learns it (flagged as learned from traffic), a closed one not. */
        int64_t idx = rc_catalog_resolve(c, id->via.str.ptr, id->via.str.size);
        map[at->via.u64] = idx;
    }
    return map;
}

static void read_repeat(rc_engine_t *e, const msgpack_object *o)
{
    double v;
    if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 * RC_DEVICE_COUNT)
        return;
    for (int d = 0; d < RC_DEVICE_COUNT; d++) {
        if (rc_mp_number(&o->via.array.ptr[d], &v))
            e->repeat_same[d] = (float)v;
        if (rc_mp_number(&o->via.array.ptr[RC_DEVICE_COUNT + d], &v))
            e->repeat_back[d] = (float)v;
    }
}

/* The learned successor share, when the snapshot has one (older ones do not) and the engine
 * learns it: a share set by hand (blend_rate 0) stays as set, and so do the four weights,
 * which are the engine's settings, not learned. */
static void read_blend(rc_engine_t *e, const msgpack_object *o)
{
    double share;
    if (e->blend_rate <= 0 || o == NULL || o->type != MSGPACK_OBJECT_ARRAY ||
        o->via.array.size != 5 || !rc_mp_number(&o->via.array.ptr[4], &share) ||
        !(share >= 0 && share <= 1))
        return;
    e->blend.successor = (float)share;
}

/* The counters come back only for the experiment that runs now, variant by name. */
static void read_experiment(const rc_engine_t *e, const msgpack_object *o,
                            rc_experiment_counts_t *counts)
{
    const rc_experiment_t *x = e->experiment;
    if (counts == NULL || x == NULL)
        return;
    *counts = (rc_experiment_counts_t){.serial = x->serial};
    if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 ||
        !rc_mp_str_is(&o->via.array.ptr[0], x->name))
        return;
    for (uint32_t i = 1; i < o->via.array.size; i++) {
        const msgpack_object *v = &o->via.array.ptr[i];
        double imp, clk;
        if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 3 ||
            !rc_mp_number(&v->via.array.ptr[1], &imp) || !rc_mp_number(&v->via.array.ptr[2], &clk))
            continue;
        for (uint32_t k = 0; k < x->n_variants; k++)
            if (rc_mp_str_is(&v->via.array.ptr[0], x->variants[k].name)) {
                counts->impressions[k] = (uint64_t)imp;
                counts->clicks[k] = (uint64_t)clk;
            }
    }
}

int rc_engine_snapshot_read(rc_engine_t *e, const msgpack_object *o, rc_experiment_counts_t *counts,
                            char *err, size_t errlen)
{
    const msgpack_object *ids = NULL, *learned = NULL, *cv = NULL, *tr = NULL;
    if (o->type == MSGPACK_OBJECT_MAP) {
        ids = rc_mp_map_get(&o->via.map, "ids");
        learned = rc_mp_map_get(&o->via.map, "learned");
        cv = rc_mp_map_get(&o->via.map, "covisit");
        tr = rc_mp_map_get(&o->via.map, "trending");
    }
    if (ids == NULL || ids->type != MSGPACK_OBJECT_ARRAY || learned == NULL ||
        learned->type != MSGPACK_OBJECT_ARRAY || cv == NULL || tr == NULL) {
        snprintf(err, errlen, "the engine's part is incomplete");
        return RC_EPARSE;
    }
    int64_t *map = map_items(e, ids, learned);
    if (map == NULL) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    int rc = rc_covisit_snapshot_read(&e->covisit, cv, map, ids->via.array.size);
    const msgpack_object *succ = rc_mp_map_get(&o->via.map, "successor");
    if (rc == 0 && succ != NULL) /* older snapshots have none: the model starts empty */
        rc = rc_covisit_snapshot_read(&e->successor, succ, map, ids->via.array.size);
    if (rc == 0)
        rc = rc_trending_snapshot_read(&e->trending, tr, map, ids->via.array.size);
    free(map);
    if (rc != 0) {
        snprintf(err, errlen, "%s in the %s", rc_strerror(rc),
                 rc == RC_ENOMEM ? "engine" : "models' part");
        return rc;
    }
    read_repeat(e, rc_mp_map_get(&o->via.map, "repeat"));
    read_blend(e, rc_mp_map_get(&o->via.map, "blend"));
    const msgpack_object *rs = rc_mp_map_get(&o->via.map, "repeat_successor");
    double share;
    if (rs != NULL && rc_mp_number(rs, &share) && share >= 0 && share <= 1)
        e->repeat_successor = (float)share; /* older snapshots have none: the default stays */
    read_experiment(e, rc_mp_map_get(&o->via.map, "experiment"), counts);
    return rc_engine_refresh(e);
}
