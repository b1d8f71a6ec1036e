/* SPDX-License-Identifier: Apache-2.0 */
/* Time decay without touching every weight: a weight added at time t is stored multiplied
 * by 2^((t - epoch) / half_life), so older contributions are relatively smaller by exactly
 * the decay they would have had. When the multiplier grows large, every weight is rescaled
 * once and the epoch moves (rare: every ~40 half-lives). */
#include "engine/covisit.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"
#include "util/hugemem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESCALE_EXPONENT 40.0

void rc_covisit_init(rc_covisit_t *cv, uint32_t max_neighbors, double half_life_s, double now_s)
{
    memset(cv, 0, sizeof(*cv));
    cv->max_neighbors = max_neighbors > UINT16_MAX ? UINT16_MAX : max_neighbors;
    cv->half_life_s = half_life_s;
    cv->epoch_s = now_s;
}

void rc_covisit_free(rc_covisit_t *cv)
{
    if (cv == NULL)
        return;
    for (uint32_t i = 0; i < cv->n_lists; i++)
        free(cv->lists[i].nb);
    rc_huge_free(cv->lists, (size_t)cv->n_lists * sizeof(*cv->lists));
    memset(cv, 0, sizeof(*cv));
}

static int ensure_lists(rc_covisit_t *cv, uint32_t item)
{
    if (item < cv->n_lists)
        return 0;
    uint32_t n = cv->n_lists ? cv->n_lists : 1024;
    while (n <= item)
        n *= 2;
    rc_nblist_t *p =
        rc_huge_realloc(cv->lists, (size_t)cv->n_lists * sizeof(*p), (size_t)n * sizeof(*p));
    if (p == NULL)
        return RC_ENOMEM;
    memset(p + cv->n_lists, 0, (n - cv->n_lists) * sizeof(*p));
    cv->lists = p;
    cv->n_lists = n;
    return 0;
}

static void rescale(rc_covisit_t *cv, double now_s)
{
    float f = (float)exp2(-(now_s - cv->epoch_s) / cv->half_life_s);
    for (uint32_t i = 0; i < cv->n_lists; i++)
        for (uint16_t j = 0; j < cv->lists[i].n; j++)
            cv->lists[i].nb[j].w *= f;
    cv->epoch_s = now_s;
}

/* Keeps the list strongest first after nb[j] grew: weights only ever grow (decay is the
 * epoch's, applied to all alike), so an entry only moves towards the front, and rarely far. */
static void move_up(rc_nblist_t *l, uint16_t j)
{
    rc_neighbor_t x = l->nb[j];
    for (; j > 0 && l->nb[j - 1].w < x.w; j--)
        l->nb[j] = l->nb[j - 1];
    l->nb[j] = x;
}

static int add_one(rc_covisit_t *cv, uint32_t a, uint32_t b, float w)
{
    rc_nblist_t *l = &cv->lists[a];
    for (uint16_t j = 0; j < l->n; j++) {
        if (l->nb[j].item == b) {
            l->nb[j].w += w;
            move_up(l, j);
            return 0;
        }
    }
    if (l->n == l->cap && l->cap < cv->max_neighbors) {
        /* Doubled in 32 bits: past 32768 a 16-bit doubling would wrap to 0. */
        uint32_t cap = l->cap ? 2u * l->cap : 4u;
        if (cap > cv->max_neighbors)
            cap = cv->max_neighbors;
        rc_neighbor_t *p = realloc(l->nb, cap * sizeof(*p));
        if (p == NULL)
            return RC_ENOMEM;
        l->nb = p;
        l->cap = (uint16_t)cap;
    }
    if (l->n < l->cap) {
        l->nb[l->n++] = (rc_neighbor_t){b, w};
        move_up(l, (uint16_t)(l->n - 1));
        return 0;
    }
    /* Full: the weakest neighbour (the last) makes room, but only for a stronger newcomer,
     * so one stray pair cannot push out an established one. */
    if (w > l->nb[l->n - 1].w * 0.5f) {
        l->nb[l->n - 1] = (rc_neighbor_t){b, w};
        move_up(l, (uint16_t)(l->n - 1));
    }
    return 0;
}

int rc_covisit_add_directed(rc_covisit_t *cv, uint32_t a, uint32_t b, float w_ab, float w_ba,
                            double now_s)
{
    if (a == b)
        return 0;
    double exponent = (now_s - cv->epoch_s) / cv->half_life_s;
    if (exponent > RESCALE_EXPONENT) {
        rescale(cv, now_s);
        exponent = 0;
    }
    if (cv->scale == 0 || now_s != cv->scale_now_s || cv->epoch_s != cv->scale_epoch_s) {
        cv->scale = (float)exp2(exponent);
        cv->scale_now_s = now_s;
        cv->scale_epoch_s = cv->epoch_s;
    }
    float scale = cv->scale;
    int rc = ensure_lists(cv, a > b ? a : b);
    if (rc == 0 && w_ab > 0)
        rc = add_one(cv, a, b, w_ab * scale);
    if (rc == 0 && w_ba > 0)
        rc = add_one(cv, b, a, w_ba * scale);
    if (rc == 0)
        cv->pairs_added++;
    return rc;
}

int rc_covisit_add(rc_covisit_t *cv, uint32_t a, uint32_t b, float w, double now_s)
{
    return rc_covisit_add_directed(cv, a, b, w, w, now_s);
}

const rc_neighbor_t *rc_covisit_neighbors(const rc_covisit_t *cv, uint32_t item, uint32_t *n)
{
    if (item >= cv->n_lists) {
        *n = 0;
        return NULL;
    }
    *n = cv->lists[item].n;
    return cv->lists[item].nb;
}

void rc_covisit_prefetch(const rc_covisit_t *cv, const uint32_t *items, uint32_t n,
                         uint32_t entries)
{
    for (uint32_t i = 0; i < n; i++)
        if (items[i] < cv->n_lists)
            __builtin_prefetch(&cv->lists[items[i]]);
    /* A line holds 8 neighbours. */
    for (uint32_t i = 0; i < n; i++) {
        if (items[i] >= cv->n_lists)
            continue;
        const rc_nblist_t *l = &cv->lists[items[i]];
        uint32_t upto = l->n < entries ? l->n : entries;
        for (uint32_t j = 0; j < upto; j += 8)
            __builtin_prefetch(l->nb + j);
    }
}

uint64_t rc_covisit_bytes(const rc_covisit_t *cv)
{
    uint64_t bytes = (uint64_t)cv->n_lists * sizeof(rc_nblist_t);
    for (uint32_t i = 0; i < cv->n_lists; i++)
        bytes += (uint64_t)cv->lists[i].cap * sizeof(rc_neighbor_t);
    return bytes;
}

/* ---- snapshots ---- */

void rc_covisit_snapshot_write(const rc_covisit_t *cv, msgpack_packer *pk)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < cv->n_lists; i++)
        n += cv->lists[i].n > 0;
    msgpack_pack_map(pk, 2);
    rc_mp_cstr(pk, "epoch");
    msgpack_pack_double(pk, cv->epoch_s);
    rc_mp_cstr(pk, "lists");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < cv->n_lists; i++) {
        const rc_nblist_t *l = &cv->lists[i];
        if (l->n == 0)
            continue;
        msgpack_pack_array(pk, 1 + 2u * l->n);
        msgpack_pack_uint32(pk, i);
        for (uint16_t j = 0; j < l->n; j++) {
            msgpack_pack_uint32(pk, l->nb[j].item);
            msgpack_pack_float(pk, l->nb[j].w);
        }
    }
}

static int64_t mapped(const msgpack_object *o, const int64_t *map, uint32_t n_map)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 >= n_map)
        return -1;
    return map[o->via.u64];
}

int rc_covisit_snapshot_read(rc_covisit_t *cv, const msgpack_object *o, const int64_t *map,
                             uint32_t n_map)
{
    double epoch;
    const msgpack_object *e =
        o->type == MSGPACK_OBJECT_MAP ? rc_mp_map_get(&o->via.map, "epoch") : NULL;
    const msgpack_object *lists = e != NULL ? rc_mp_map_get(&o->via.map, "lists") : NULL;
    if (e == NULL || !rc_mp_number(e, &epoch) || lists == NULL ||
        lists->type != MSGPACK_OBJECT_ARRAY)
        return RC_EPARSE;
    cv->epoch_s = epoch; /* the weights are on that epoch's scale */
    for (uint32_t i = 0; i < lists->via.array.size; i++) {
        const msgpack_object *a = &lists->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size % 2 != 1)
            return RC_EPARSE;
        int64_t item = mapped(&a->via.array.ptr[0], map, n_map);
        if (item < 0)
            continue;
        uint32_t want = (a->via.array.size - 1) / 2;
        if (want > cv->max_neighbors)
            want = cv->max_neighbors;
        if (want == 0 || ensure_lists(cv, (uint32_t)item) != 0)
            continue;
        rc_nblist_t *l = &cv->lists[item];
        rc_neighbor_t *nb = realloc(l->nb, want * sizeof(*nb));
        if (nb == NULL)
            return RC_ENOMEM;
        l->nb = nb;
        l->cap = (uint16_t)want;
        l->n = 0;
        for (uint32_t j = 1; j + 1 < a->via.array.size && l->n < want; j += 2) {
            int64_t b = mapped(&a->via.array.ptr[j], map, n_map);
            double w;
            if (b < 0 || !rc_mp_number(&a->via.array.ptr[j + 1], &w))
                continue;
            if (ensure_lists(cv, (uint32_t)b) != 0)
                return RC_ENOMEM;
            l = &cv->lists[item]; /* ensure_lists may move the lists */
            l->nb[l->n++] = (rc_neighbor_t){(uint32_t)b, (float)w};
        }
    }
    return 0;
}
