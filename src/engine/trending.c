/* SPDX-License-Identifier: Apache-2.0 */
/* Scores use the same scaled-time trick as co-visitation (see covisit.c). The top lists
 * blend recent activity with the catalog's popularity prior, so a cold server with no
 * traffic still recommends what sold well historically. */
#include "engine/trending.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"
#include "util/hugemem.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESCALE_EXPONENT 40.0

void rc_trending_init(rc_trending_t *t, double half_life_s, double now_s)
{
    memset(t, 0, sizeof(*t));
    t->half_life_s = half_life_s;
    t->epoch_s = now_s;
    t->n_segments = RC_SEG_LOCALE(0);
    for (int i = 0; i < RC_LOCALES; i++)
        t->slot_entry[i] = -1;
    for (int i = 0; i < RC_LOCALE_TAGS; i++)
        t->locale_tab[i].slot = -1;
}

void rc_trending_free(rc_trending_t *t)
{
    if (t == NULL)
        return;
    rc_huge_free(t->score, (size_t)t->n_items * t->n_segments * sizeof(float));
    free(t->by_category);
    free(t->n_by_category);
    free(t->heap);
    free(t->seg_heap);
    free(t->pass_cat_n);
    memset(t, 0, sizeof(*t));
}

static int ensure_items(rc_trending_t *t, uint32_t n)
{
    if (n <= t->n_items)
        return 0;
    uint32_t cap = t->n_items ? t->n_items : 1024;
    while (cap < n)
        cap *= 2;
    size_t stride = t->n_segments;
    float *p = rc_huge_realloc(t->score, t->n_items * stride * sizeof(float),
                               cap * stride * sizeof(float));
    if (p == NULL)
        return RC_ENOMEM;
    memset(p + t->n_items * stride, 0, (cap - t->n_items) * stride * sizeof(float));
    t->score = p;
    t->n_items = cap;
    return 0;
}

static void rescale(rc_trending_t *t, double now_s)
{
    float f = (float)exp2(-(now_s - t->epoch_s) / t->half_life_s);
    for (size_t i = 0; i < (size_t)t->n_items * t->n_segments; i++)
        t->score[i] *= f;
    for (uint32_t s = 0; s < t->n_segments; s++)
        t->top_max[s] *= f;
    t->epoch_s = now_s;
    t->pass_active = false; /* its partial heaps are on the old scale: start again */
}

/* Writes the canonical form of tag `s` (BCP 47 case: "EN_gb" is "en-GB", "zh-hant-tw" is
 * "zh-Hant-TW") into `tag`; false when it is not a tag. */
static bool canonical_locale(const char *s, size_t n, char tag[RC_LOCALE_MAX + 1])
{
    if (n == 0 || n > RC_LOCALE_MAX)
        return false;
    size_t sub = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = i < n ? (unsigned char)s[i] : '-';
        if (ch == '-' || ch == '_') {
            if (i == start)
                return false;
            for (size_t j = start; sub > 0 && j < i; j++)
                if ((i - start == 2) || (i - start == 4 && j == start))
                    tag[j] = (char)toupper((unsigned char)tag[j]);
            tag[i] = '-';
            sub++;
            start = i + 1;
        } else if (isalnum(ch)) {
            tag[i] = (char)tolower(ch);
        } else {
            return false;
        }
    }
    tag[n] = '\0';
    return true;
}

/* References: the entry's index in the low 6 bits, its generation above (9 bits). */
#define REF_INDEX_BITS 6
#define REF_GEN_MASK   0x1ff
_Static_assert(RC_LOCALE_TAGS <= 1 << REF_INDEX_BITS, "locale references hold the index");

static int locale_ref(const rc_trending_t *t, int index)
{
    return (int)(t->locale_tab[index].gen & REF_GEN_MASK) << REF_INDEX_BITS | index;
}

static rc_locale_entry_t *locale_entry(const rc_trending_t *t, int ref)
{
    if (ref < 0)
        return NULL;
    int index = ref & ((1 << REF_INDEX_BITS) - 1);
    const rc_locale_entry_t *e = &t->locale_tab[index];
    if (index >= RC_LOCALE_TAGS || e->tag[0] == '\0' ||
        (e->gen & REF_GEN_MASK) != (unsigned)(ref >> REF_INDEX_BITS))
        return NULL;
    return (rc_locale_entry_t *)e;
}

/* The entry's activity decayed to `now_s`. */
static double activity_at(const rc_trending_t *t, const rc_locale_entry_t *e, double now_s)
{
    double age = now_s - e->used_s;
    return age > 0 ? e->activity * exp2(-age / t->half_life_s) : e->activity;
}

int rc_trending_locale(rc_trending_t *t, const char *s, size_t n, double now_s)
{
    char tag[RC_LOCALE_MAX + 1];
    if (!canonical_locale(s, n, tag))
        return -1;
    int free_index = -1, lru = -1;
    for (int i = 0; i < RC_LOCALE_TAGS; i++) {
        rc_locale_entry_t *e = &t->locale_tab[i];
        if (e->tag[0] == '\0') {
            if (free_index < 0)
                free_index = i;
        } else if (strcmp(e->tag, tag) == 0) {
            return locale_ref(t, i);
        } else if (e->slot < 0 && (lru < 0 || e->used_s < t->locale_tab[lru].used_s)) {
            lru = i;
        }
    }
    /* A locale holding a segment is never untracked here: it gives its segment up only to
     * a more active one (promote()). */
    int i = free_index >= 0 ? free_index : lru;
    if (i < 0)
        return -1;
    rc_locale_entry_t *e = &t->locale_tab[i];
    uint16_t gen = (uint16_t)(e->gen + 1);
    memset(e, 0, sizeof(*e));
    e->gen = gen;
    e->slot = -1;
    e->used_s = now_s;
    memcpy(e->tag, tag, n + 1);
    return locale_ref(t, i);
}

int rc_trending_locale_find(const rc_trending_t *t, const char *s, size_t n)
{
    char tag[RC_LOCALE_MAX + 1];
    if (!canonical_locale(s, n, tag))
        return RC_EINVAL;
    for (int i = 0; i < RC_LOCALE_TAGS; i++)
        if (t->locale_tab[i].tag[0] != '\0' && strcmp(t->locale_tab[i].tag, tag) == 0)
            return locale_ref(t, i);
    return RC_ENOENT;
}

int rc_trending_locale_segment(const rc_trending_t *t, int ref)
{
    const rc_locale_entry_t *e = locale_entry(t, ref);
    return e != NULL && e->slot >= 0 ? RC_SEG_LOCALE(e->slot) : -1;
}

const char *rc_trending_locale_tag(const rc_trending_t *t, int ref)
{
    const rc_locale_entry_t *e = locale_entry(t, ref);
    return e != NULL ? e->tag : NULL;
}

/* Opens one more segment: every item's scores move to the wider stride (at most RC_LOCALES
 * times in a process). Returns its slot, or -1 when out of memory. */
static int open_slot(rc_trending_t *t)
{
    if (t->n_items > 0) {
        uint32_t old = t->n_segments, wide = old + 1;
        float *p = rc_huge_realloc(NULL, 0, (size_t)t->n_items * wide * sizeof(float));
        if (p == NULL)
            return -1;
        for (size_t i = 0; i < t->n_items; i++) {
            memcpy(p + i * wide, t->score + i * old, old * sizeof(float));
            p[i * wide + old] = 0;
        }
        rc_huge_free(t->score, (size_t)t->n_items * old * sizeof(float));
        t->score = p;
    }
    return (int)(t->n_segments++ - RC_SEG_LOCALE(0));
}

/* Empties slot `slot`'s segment for its next locale: scores, top list, normaliser; a refresh
 * pass in progress starts again (its heap of that segment is the old locale's). */
static void clear_slot(rc_trending_t *t, int slot)
{
    uint32_t seg = (uint32_t)RC_SEG_LOCALE(slot);
    for (size_t i = 0; i < t->n_items; i++)
        t->score[i * t->n_segments + seg] = 0;
    t->n_top[seg] = 0;
    t->top_max[seg] = 0;
    t->pass_active = false;
}

/* A locale that has earned a segment gets one: a slot never used, else the slot of the least
 * active locale if this one is more active. */
static void promote(rc_trending_t *t, rc_locale_entry_t *e, double now_s)
{
    int slot = -1;
    for (int s = 0; s < (int)t->n_segments - RC_SEG_LOCALE(0) && slot < 0; s++)
        if (t->slot_entry[s] < 0)
            slot = s;
    if (slot < 0 && t->n_segments < RC_SEGMENTS)
        slot = open_slot(t);
    if (slot < 0) {
        int weakest = -1;
        double weakest_activity = 0;
        for (int s = 0; s < RC_LOCALES; s++) {
            double a = activity_at(t, &t->locale_tab[t->slot_entry[s]], now_s);
            if (weakest < 0 || a < weakest_activity) {
                weakest = s;
                weakest_activity = a;
            }
        }
        if (weakest < 0 || activity_at(t, e, now_s) <= weakest_activity)
            return;
        t->locale_tab[t->slot_entry[weakest]].slot = -1;
        clear_slot(t, weakest);
        slot = weakest;
    }
    e->slot = (int8_t)slot;
    t->slot_entry[slot] = (int8_t)(e - t->locale_tab);
    memcpy(t->locales[slot], e->tag, sizeof(e->tag));
}

/* An event of `user_key` in locale `e`: its activity and distinct users, and a segment once
 * earned. */
static void locale_used(rc_trending_t *t, rc_locale_entry_t *e, uint32_t user_key, double now_s)
{
    e->activity = activity_at(t, e, now_s) + 1.0;
    if (now_s > e->used_s)
        e->used_s = now_s;
    if (user_key != 0 && e->n_users < RC_LOCALE_MIN_USERS) {
        bool seen = false;
        for (uint8_t i = 0; i < e->n_users && !seen; i++)
            seen = e->users[i] == user_key;
        if (!seen)
            e->users[e->n_users++] = user_key;
    }
    if (e->slot < 0 && e->n_users >= RC_LOCALE_MIN_USERS)
        promote(t, e, now_s);
}

int rc_trending_add(rc_trending_t *t, uint32_t item, int device, int daypart, int locale,
                    uint32_t user_key, float w, double now_s)
{
    int rc = ensure_items(t, item + 1);
    if (rc != 0)
        return rc;
    rc_locale_entry_t *loc = locale_entry(t, locale);
    if (loc != NULL)
        locale_used(t, loc, user_key, now_s);
    double exponent = (now_s - t->epoch_s) / t->half_life_s;
    if (exponent > RESCALE_EXPONENT) {
        rescale(t, now_s);
        exponent = 0;
    }
    float scaled = w * (float)exp2(exponent);
    int n_segs = loc != NULL && loc->slot >= 0 ? 4 : 3;
    int segs[4] = {RC_SEG_ALL, RC_SEG_DEVICE(device), RC_SEG_DAYPART(daypart),
                   n_segs == 4 ? RC_SEG_LOCALE(loc->slot) : RC_SEG_ALL};
    for (int i = 0; i < n_segs; i++) {
        float *v = &t->score[(size_t)item * t->n_segments + (uint32_t)segs[i]];
        *v += scaled;
        /* Keep the normaliser current between refreshes so a new leader is not > 1. */
        if (*v > t->top_max[segs[i]])
            t->top_max[segs[i]] = *v;
        if (t->pass_active && *v > t->pass_raised[segs[i]])
            t->pass_raised[segs[i]] = *v;
    }
    return 0;
}

float rc_trending_norm(const rc_trending_t *t, int segment, uint32_t item)
{
    if (item >= t->n_items || segment >= (int)t->n_segments || t->top_max[segment] <= 0)
        return 0;
    return rc_trending_scores(t, item)[segment] / t->top_max[segment];
}

int rc_daypart(int64_t wall_ms, int tz_offset_min)
{
    int64_t local_min = wall_ms / 60000 + tz_offset_min;
    int64_t minute_of_day = ((local_min % 1440) + 1440) % 1440;
    return (int)(minute_of_day / 360);
}

/* Keeps the `cap` best (score, item) pairs in a min-heap; returns the count, best first
 * after heap_sort_desc(). */
typedef struct {
    float s;
    uint32_t item;
} scored_t;

static void heap_push(scored_t *h, uint32_t *n, uint32_t cap, scored_t x)
{
    if (*n < cap) {
        uint32_t i = (*n)++;
        h[i] = x;
        while (i > 0 && h[(i - 1) / 2].s > h[i].s) {
            scored_t tmp = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
        return;
    }
    if (x.s <= h[0].s)
        return;
    h[0] = x;
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l].s < h[m].s)
            m = l;
        if (r < *n && h[r].s < h[m].s)
            m = r;
        if (m == i)
            break;
        scored_t tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static int by_score_desc(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return (x < y) - (x > y);
}

static int ensure_categories(rc_trending_t *t, uint32_t n)
{
    if (n <= t->n_categories)
        return 0;
    uint32_t *p = realloc(t->by_category, (size_t)n * RC_TRENDING_PER_CAT * sizeof(uint32_t));
    if (p == NULL)
        return RC_ENOMEM;
    t->by_category = p;
    uint16_t *q = realloc(t->n_by_category, n * sizeof(uint16_t));
    if (q == NULL)
        return RC_ENOMEM;
    t->n_by_category = q;
    /* One heap per category; the segment pass reuses it as scratch, so it is never
     * smaller than RC_TRENDING_TOP. */
    size_t slots = (size_t)n * RC_TRENDING_PER_CAT;
    if (slots < RC_TRENDING_TOP)
        slots = RC_TRENDING_TOP;
    void *h = realloc(t->heap, slots * sizeof(scored_t));
    if (h == NULL)
        return RC_ENOMEM;
    t->heap = h;
    t->n_categories = n;
    return 0;
}

static int start_pass(rc_trending_t *t, const rc_catalog_t *c)
{
    int rc = ensure_items(t, c->n ? c->n : 1);
    if (rc == 0)
        rc = ensure_categories(t, c->n_categories);
    if (rc == 0 && t->seg_heap == NULL &&
        (t->seg_heap = malloc(RC_SEGMENTS * RC_TRENDING_TOP * sizeof(scored_t))) == NULL)
        rc = RC_ENOMEM;
    if (rc == 0) {
        uint16_t *n = realloc(t->pass_cat_n, (t->n_categories ? t->n_categories : 1) * sizeof(*n));
        if (n == NULL)
            return RC_ENOMEM;
        t->pass_cat_n = n;
    }
    if (rc != 0)
        return rc;
    t->pass_active = true;
    t->pass_cursor = 0;
    t->pass_items = c->n;
    t->pass_categories = c->n_categories;
    t->pass_pop_max = t->popularity_max;
    t->pass_pop_seen = 0;
    t->pass_norm0 = t->top_max[RC_SEG_ALL];
    memset(t->pass_best, 0, sizeof(t->pass_best));
    memset(t->pass_raised, 0, sizeof(t->pass_raised));
    memset(t->seg_n, 0, sizeof(t->seg_n));
    memset(t->pass_cat_n, 0, t->pass_categories * sizeof(uint16_t));
    return 0;
}

/* One item into every segment's heap and its category's: recent activity first, the
 * popularity prior (scaled by the previous pass's largest popularity) second. */
static void scan_item(rc_trending_t *t, const rc_item_t *it, uint32_t i)
{
    float pop_max = t->pass_pop_max;
    float prior = pop_max > 0 ? it->popularity / pop_max : 0;
    scored_t *seg_heap = t->seg_heap;
    const float *sc = rc_trending_scores(t, i);
    for (uint32_t s = 0; s < t->n_segments; s++) {
        float v = sc[s];
        if (v > t->pass_best[s])
            t->pass_best[s] = v;
        /* The prior orders items nobody touched yet; any activity outranks it. */
        heap_push(seg_heap + s * RC_TRENDING_TOP, &t->seg_n[s], RC_TRENDING_TOP,
                  (scored_t){v + prior * 1e-9f, i});
    }
    if (it->category == 0 || it->category >= t->pass_categories)
        return;
    float recent = t->pass_norm0 > 0 ? sc[RC_SEG_ALL] / t->pass_norm0 : 0;
    uint32_t n = t->pass_cat_n[it->category];
    heap_push((scored_t *)t->heap + (size_t)it->category * RC_TRENDING_PER_CAT, &n,
              RC_TRENDING_PER_CAT, (scored_t){recent + 0.25f * prior, i});
    t->pass_cat_n[it->category] = (uint16_t)n;
}

/* The pass is complete: sort the heaps and publish the lists. */
static void finish_pass(rc_trending_t *t)
{
    scored_t *seg_heap = t->seg_heap;
    for (uint32_t s = 0; s < t->n_segments; s++) {
        scored_t *h = seg_heap + s * RC_TRENDING_TOP;
        qsort(h, t->seg_n[s], sizeof(scored_t), by_score_desc);
        for (uint32_t j = 0; j < t->seg_n[s]; j++)
            t->top[s][j] = h[j].item;
        t->n_top[s] = t->seg_n[s];
        /* The best recommendable score, or a higher one an event made after its item was
         * scanned (rc_trending_add keeps normalised scores at most 1). */
        t->top_max[s] = t->pass_best[s] > t->pass_raised[s] ? t->pass_best[s] : t->pass_raised[s];
    }
    for (uint32_t cat = 1; cat < t->pass_categories; cat++) {
        scored_t *h = (scored_t *)t->heap + (size_t)cat * RC_TRENDING_PER_CAT;
        uint32_t n = t->pass_cat_n[cat];
        qsort(h, n, sizeof(scored_t), by_score_desc);
        for (uint32_t j = 0; j < n; j++)
            t->by_category[(size_t)cat * RC_TRENDING_PER_CAT + j] = h[j].item;
        t->n_by_category[cat] = (uint16_t)n;
    }
    t->popularity_max = t->pass_pop_seen;
    t->pass_active = false;
}

int rc_trending_refresh_step(rc_trending_t *t, const rc_catalog_t *c, uint32_t max_items)
{
    if (!t->pass_active) {
        int rc = start_pass(t, c);
        if (rc != 0)
            return rc;
    }
    uint32_t end =
        t->pass_items - t->pass_cursor > max_items ? t->pass_cursor + max_items : t->pass_items;
    for (uint32_t i = t->pass_cursor; i < end; i++) {
        const rc_item_t *it = &c->items[i];
        if (it->popularity > t->pass_pop_seen)
            t->pass_pop_seen = it->popularity;
        if (rc_item_recommendable(it))
            scan_item(t, it, i);
    }
    t->pass_cursor = end;
    if (end < t->pass_items)
        return 0;
    finish_pass(t);
    return 1;
}

/* A whole rebuild now. The prior needs the catalog's largest popularity before the scan:
 * found first, so a fresh model does not wait a pass for it. */
int rc_trending_refresh(rc_trending_t *t, const rc_catalog_t *c)
{
    float pop_max = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->items[i].popularity > pop_max)
            pop_max = c->items[i].popularity;
    t->popularity_max = pop_max;
    t->pass_active = false;
    int rc = rc_trending_refresh_step(t, c, UINT32_MAX);
    return rc < 0 ? rc : 0;
}

/* ---- snapshots ---- */

void rc_trending_snapshot_write(const rc_trending_t *t, msgpack_packer *pk)
{
    uint32_t n = 0, stride = t->n_segments;
    for (uint32_t i = 0; i < t->n_items; i++)
        for (uint32_t s = 0; s < stride; s++)
            if (t->score[(size_t)i * stride + s] != 0) {
                n++;
                break;
            }
    msgpack_pack_map(pk, 5);
    rc_mp_cstr(pk, "epoch");
    msgpack_pack_double(pk, t->epoch_s);
    rc_mp_cstr(pk, "segments");
    msgpack_pack_uint32(pk, stride);
    rc_mp_cstr(pk, "scores"); /* [item, its `segments` scores as floats, LE] per item counted */
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < t->n_items; i++) {
        const float *row = t->score + (size_t)i * stride;
        bool any = false;
        for (uint32_t s = 0; s < stride && !any; s++)
            any = row[s] != 0;
        if (!any)
            continue;
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, i);
        msgpack_pack_bin(pk, stride * sizeof(float));
        msgpack_pack_bin_body(pk, row, stride * sizeof(float));
    }
    rc_mp_cstr(pk, "locales"); /* the table, entry by entry: free ones too, for the indexes */
    msgpack_pack_array(pk, RC_LOCALE_TAGS);
    for (int i = 0; i < RC_LOCALE_TAGS; i++) {
        const rc_locale_entry_t *e = &t->locale_tab[i];
        msgpack_pack_array(pk, 6);
        rc_mp_cstr(pk, e->tag);
        msgpack_pack_uint16(pk, e->gen);
        msgpack_pack_int8(pk, e->slot);
        msgpack_pack_array(pk, e->n_users);
        for (uint8_t u = 0; u < e->n_users; u++)
            msgpack_pack_uint32(pk, e->users[u]);
        msgpack_pack_double(pk, e->activity);
        msgpack_pack_double(pk, e->used_s);
    }
    rc_mp_cstr(pk, "slots");
    msgpack_pack_array(pk, RC_LOCALES);
    for (int s = 0; s < RC_LOCALES; s++)
        msgpack_pack_int8(pk, t->slot_entry[s]);
}

static int read_locale(rc_locale_entry_t *e, const msgpack_object *o)
{
    double activity, used, gen, slot, user;
    const msgpack_object *f = o->via.array.ptr;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6 ||
        f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size > RC_LOCALE_MAX ||
        !rc_mp_number(&f[1], &gen) || !rc_mp_number(&f[2], &slot) || slot < -1 ||
        slot >= RC_LOCALES || f[3].type != MSGPACK_OBJECT_ARRAY ||
        f[3].via.array.size > RC_LOCALE_MIN_USERS || !rc_mp_number(&f[4], &activity) ||
        !rc_mp_number(&f[5], &used))
        return RC_EPARSE;
    memset(e, 0, sizeof(*e));
    memcpy(e->tag, f[0].via.str.ptr, f[0].via.str.size);
    e->gen = (uint16_t)gen;
    e->slot = (int8_t)slot;
    for (uint32_t u = 0; u < f[3].via.array.size; u++) {
        if (!rc_mp_number(&f[3].via.array.ptr[u], &user))
            return RC_EPARSE;
        e->users[e->n_users++] = (uint32_t)user;
    }
    e->activity = activity;
    e->used_s = used;
    return 0;
}

int rc_trending_snapshot_read(rc_trending_t *t, const msgpack_object *o, const int64_t *map,
                              uint32_t n_map)
{
    double epoch, segments, entry;
    if (o->type != MSGPACK_OBJECT_MAP)
        return RC_EPARSE;
    const msgpack_object *e = rc_mp_map_get(&o->via.map, "epoch"),
                         *sg = rc_mp_map_get(&o->via.map, "segments"),
                         *sc = rc_mp_map_get(&o->via.map, "scores"),
                         *lc = rc_mp_map_get(&o->via.map, "locales"),
                         *sl = rc_mp_map_get(&o->via.map, "slots");
    if (e == NULL || !rc_mp_number(e, &epoch) || sg == NULL || !rc_mp_number(sg, &segments) ||
        segments < RC_SEG_LOCALE(0) || segments > RC_SEGMENTS || sc == NULL ||
        sc->type != MSGPACK_OBJECT_ARRAY || lc == NULL || lc->type != MSGPACK_OBJECT_ARRAY ||
        lc->via.array.size != RC_LOCALE_TAGS || sl == NULL || sl->type != MSGPACK_OBJECT_ARRAY ||
        sl->via.array.size != RC_LOCALES)
        return RC_EPARSE;
    /* Nothing counted yet (a refresh may have sized the scores): they start over at the
     * snapshot's width. */
    rc_huge_free(t->score, (size_t)t->n_items * t->n_segments * sizeof(float));
    t->score = NULL;
    t->n_items = 0;
    t->pass_active = false;
    for (int i = 0; i < RC_LOCALE_TAGS; i++)
        if (read_locale(&t->locale_tab[i], &lc->via.array.ptr[i]) != 0)
            return RC_EPARSE;
    for (int s = 0; s < RC_LOCALES; s++) {
        if (!rc_mp_number(&sl->via.array.ptr[s], &entry) || entry < -1 || entry >= RC_LOCALE_TAGS)
            return RC_EPARSE;
        t->slot_entry[s] = (int8_t)entry;
        if (entry >= 0)
            memcpy(t->locales[s], t->locale_tab[(int)entry].tag, RC_LOCALE_MAX + 1);
    }
    t->epoch_s = epoch; /* the scores are on that epoch's scale */
    t->n_segments = (uint32_t)segments;
    uint32_t stride = t->n_segments;
    for (uint32_t i = 0; i < sc->via.array.size; i++) {
        const msgpack_object *a = &sc->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 2 ||
            a->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            a->via.array.ptr[1].type != MSGPACK_OBJECT_BIN ||
            a->via.array.ptr[1].via.bin.size != stride * sizeof(float))
            return RC_EPARSE;
        uint64_t was = a->via.array.ptr[0].via.u64;
        int64_t item = was < n_map ? map[was] : -1;
        if (item < 0)
            continue;
        if (ensure_items(t, (uint32_t)item + 1) != 0)
            return RC_ENOMEM;
        memcpy(t->score + (size_t)item * stride, a->via.array.ptr[1].via.bin.ptr,
               stride * sizeof(float));
    }
    return 0;
}
