/* SPDX-License-Identifier: Apache-2.0 */
/* Scores use the same scaled-time trick as co-visitation (see covisit.c). The top lists
 * blend recent activity with the catalog's popularity prior, so a cold server with no
 * traffic still recommends what sold well historically. */
#include "engine/trending.h"
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

int rc_trending_locale(rc_trending_t *t, const char *s, size_t n)
{
    char tag[RC_LOCALE_MAX + 1];
    if (n == 0 || n > RC_LOCALE_MAX)
        return -1;
    /* Canonical case (BCP 47): "EN_gb" is "en-GB", "zh-hant-tw" is "zh-Hant-TW". */
    size_t sub = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = i < n ? (unsigned char)s[i] : '-';
        if (ch == '-' || ch == '_') {
            if (i == start)
                return -1;
            for (size_t j = start; sub > 0 && j < i; j++)
                if ((i - start == 2) || (i - start == 4 && j == start))
                    tag[j] = (char)toupper((unsigned char)tag[j]);
            tag[i] = '-';
            sub++;
            start = i + 1;
        } else if (isalnum(ch)) {
            tag[i] = (char)tolower(ch);
        } else {
            return -1;
        }
    }
    tag[n] = '\0';
    uint32_t n_loc = t->n_segments - RC_SEG_LOCALE(0);
    for (uint32_t l = 0; l < n_loc; l++)
        if (strcmp(t->locales[l], tag) == 0)
            return (int)l;
    if (n_loc == RC_LOCALES)
        return -1;
    /* The new segment's counts start at zero; its top list fills from the next pass. Every
     * item's scores move to the wider stride (at most RC_LOCALES times in a process). */
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
    memcpy(t->locales[n_loc], tag, n + 1);
    t->n_segments++;
    return (int)n_loc;
}

int rc_trending_add(rc_trending_t *t, uint32_t item, int device, int daypart, int locale, float w,
                    double now_s)
{
    int rc = ensure_items(t, item + 1);
    if (rc != 0)
        return rc;
    double exponent = (now_s - t->epoch_s) / t->half_life_s;
    if (exponent > RESCALE_EXPONENT) {
        rescale(t, now_s);
        exponent = 0;
    }
    float scaled = w * (float)exp2(exponent);
    int segs[4] = {RC_SEG_ALL, RC_SEG_DEVICE(device), RC_SEG_DAYPART(daypart),
                   RC_SEG_LOCALE(locale)};
    int n_segs = locale >= 0 && RC_SEG_LOCALE(locale) < (int)t->n_segments ? 4 : 3;
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
