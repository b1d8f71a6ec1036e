/* Scores use the same scaled-time trick as co-visitation (see covisit.c). The top lists
 * blend recent activity with the catalog's popularity prior, so a cold server with no
 * traffic still recommends what sold well historically. */
#include "trending.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESCALE_EXPONENT 40.0

void rc_trending_init(rc_trending_t *t, double half_life_s, double now_s)
{
    memset(t, 0, sizeof(*t));
    t->half_life_s = half_life_s;
    t->epoch_s = now_s;
}

void rc_trending_free(rc_trending_t *t)
{
    if (t == NULL)
        return;
    for (int s = 0; s < RC_SEGMENTS; s++)
        free(t->score[s]);
    free(t->by_category);
    free(t->n_by_category);
    free(t->heap);
    memset(t, 0, sizeof(*t));
}

static int ensure_items(rc_trending_t *t, uint32_t n)
{
    if (n <= t->n_items)
        return 0;
    uint32_t cap = t->n_items ? t->n_items : 1024;
    while (cap < n)
        cap *= 2;
    for (int s = 0; s < RC_SEGMENTS; s++) {
        float *p = realloc(t->score[s], cap * sizeof(float));
        if (p == NULL)
            return RC_ENOMEM;
        memset(p + t->n_items, 0, (cap - t->n_items) * sizeof(float));
        t->score[s] = p;
    }
    t->n_items = cap;
    return 0;
}

static void rescale(rc_trending_t *t, double now_s)
{
    float f = (float)exp2(-(now_s - t->epoch_s) / t->half_life_s);
    for (int s = 0; s < RC_SEGMENTS; s++) {
        for (uint32_t i = 0; i < t->n_items; i++)
            t->score[s][i] *= f;
        t->top_max[s] *= f;
    }
    t->epoch_s = now_s;
}

int rc_trending_add(rc_trending_t *t, uint32_t item, int device, int daypart, float w, double now_s)
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
    int segs[3] = {RC_SEG_ALL, RC_SEG_DEVICE(device), RC_SEG_DAYPART(daypart)};
    for (int i = 0; i < 3; i++) {
        float *v = &t->score[segs[i]][item];
        *v += scaled;
        /* Keep the normaliser current between refreshes so a new leader is not > 1. */
        if (*v > t->top_max[segs[i]])
            t->top_max[segs[i]] = *v;
    }
    return 0;
}

float rc_trending_norm(const rc_trending_t *t, int segment, uint32_t item)
{
    if (item >= t->n_items || t->top_max[segment] <= 0)
        return 0;
    return t->score[segment][item] / t->top_max[segment];
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

static void refresh_segment(rc_trending_t *t, const rc_catalog_t *c, int s, float pop_max)
{
    scored_t *heap = t->heap; /* the first category's heap doubles as scratch here */
    uint32_t n = 0;
    float best = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (!rc_item_recommendable(&c->items[i]))
            continue;
        float v = t->score[s][i];
        if (v > best)
            best = v;
        /* The prior orders items nobody touched yet; any activity outranks it. */
        float prior = pop_max > 0 ? c->items[i].popularity / pop_max * 1e-9f : 0;
        heap_push(heap, &n, RC_TRENDING_TOP, (scored_t){v + prior, i});
    }
    qsort(heap, n, sizeof(scored_t), by_score_desc);
    for (uint32_t j = 0; j < n; j++)
        t->top[s][j] = heap[j].item;
    t->n_top[s] = n;
    t->top_max[s] = best;
}

/* Per category, in one pass over the catalog: recent activity (all segments) first, the
 * popularity prior second. */
static void refresh_categories(rc_trending_t *t, const rc_catalog_t *c, float pop_max)
{
    scored_t *heaps = t->heap;
    memset(t->n_by_category, 0, t->n_categories * sizeof(uint16_t));
    for (uint32_t i = 0; i < c->n; i++) {
        const rc_item_t *it = &c->items[i];
        if (it->category == 0 || !rc_item_recommendable(it))
            continue;
        float recent = t->top_max[0] > 0 ? t->score[0][i] / t->top_max[0] : 0;
        float prior = pop_max > 0 ? it->popularity / pop_max : 0;
        uint32_t n = t->n_by_category[it->category];
        heap_push(heaps + (size_t)it->category * RC_TRENDING_PER_CAT, &n, RC_TRENDING_PER_CAT,
                  (scored_t){recent + 0.25f * prior, i});
        t->n_by_category[it->category] = (uint16_t)n;
    }
    for (uint32_t cat = 1; cat < c->n_categories; cat++) {
        scored_t *h = heaps + (size_t)cat * RC_TRENDING_PER_CAT;
        uint32_t n = t->n_by_category[cat];
        qsort(h, n, sizeof(scored_t), by_score_desc);
        for (uint32_t j = 0; j < n; j++)
            t->by_category[(size_t)cat * RC_TRENDING_PER_CAT + j] = h[j].item;
    }
}

int rc_trending_refresh(rc_trending_t *t, const rc_catalog_t *c)
{
    int rc = ensure_items(t, c->n ? c->n : 1);
    if (rc == 0)
        rc = ensure_categories(t, c->n_categories);
    if (rc != 0)
        return rc;
    float pop_max = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->items[i].popularity > pop_max)
            pop_max = c->items[i].popularity;
    t->popularity_max = pop_max;
    for (int s = 0; s < RC_SEGMENTS; s++)
        refresh_segment(t, c, s, pop_max);
    refresh_categories(t, c, pop_max);
    return 0;
}
