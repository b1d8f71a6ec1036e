/* The ranker: bounded candidate generation (neighbours of recent items, trending in the
 * user's context, the top of the user's categories), a blended score, rules (excluded and
 * unavailable items, subscription filters), a per-category cap for diversity, top-K. */
#include "engine.h"
#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECENT_SOURCES  8  /* recent items whose neighbours become candidates */
#define TRENDING_TAKE   60 /* from each trending segment consulted */
#define CATEGORIES_TAKE 3  /* the user's strongest categories consulted */
#define MAX_CANDIDATES  1024

static const char *const src_names[RC_SRC_COUNT] = {"covisit", "content", "trending", "popular"};

const char *rc_src_name(int src)
{
    return src >= 0 && src < RC_SRC_COUNT ? src_names[src] : "popular";
}

static int ensure_scratch(rc_engine_t *e)
{
    uint32_t need = e->catalog.n;
    if (need <= e->scratch_cap && e->cands != NULL)
        return 0;
    uint32_t cap = e->scratch_cap ? e->scratch_cap : 1024;
    while (cap < need)
        cap *= 2;
    uint32_t *seen = realloc(e->seen, cap * sizeof(*seen));
    float *acc = seen ? realloc(e->covis_acc, cap * sizeof(*acc)) : NULL;
    int64_t *ref = acc ? realloc(e->covis_ref, cap * sizeof(*ref)) : NULL;
    if (seen)
        e->seen = seen;
    if (acc)
        e->covis_acc = acc;
    if (ref)
        e->covis_ref = ref;
    if (!seen || !acc || !ref)
        return RC_ENOMEM;
    memset(e->seen + e->scratch_cap, 0, (cap - e->scratch_cap) * sizeof(*seen));
    if (e->cands == NULL) {
        e->cands = malloc(MAX_CANDIDATES * sizeof(*e->cands));
        e->ranked = malloc(MAX_CANDIDATES * sizeof(*e->ranked));
        if (e->cands == NULL || e->ranked == NULL)
            return RC_ENOMEM;
    }
    e->scratch_cap = cap;
    return 0;
}

/* Adds a candidate once per rank (the stamp tells whether it is already in). */
static void add_candidate(rc_engine_t *e, uint32_t item)
{
    if (e->seen[item] == e->stamp || e->n_cands >= MAX_CANDIDATES)
        return;
    e->seen[item] = e->stamp;
    e->covis_acc[item] = 0;
    e->covis_ref[item] = -1;
    e->cands[e->n_cands++] = item;
}

/* Neighbours of the user's most recent items, weighted by recency and by how strongly the
 * user acted on each; remembers the source that contributed most, for the reason. */
static void gather_covisit(rc_engine_t *e, const rc_user_state_t *u)
{
    uint8_t n = u->n_recent < RECENT_SOURCES ? u->n_recent : RECENT_SOURCES;
    for (uint8_t d = 0; d < n; d++) {
        const rc_recent_t *r = &u->recent[(u->head + RC_RECENT - 1 - d) % RC_RECENT];
        if (r->w <= 0)
            continue;
        uint32_t nn;
        const rc_neighbor_t *nb = rc_covisit_neighbors(&e->covisit, r->item, &nn);
        float max = 0;
        for (uint32_t j = 0; j < nn; j++)
            if (nb[j].w > max)
                max = nb[j].w;
        if (max <= 0)
            continue;
        float source_w = logf(1.0f + r->w) * powf(0.85f, (float)d);
        for (uint32_t j = 0; j < nn; j++) {
            uint32_t c = nb[j].item;
            if (c >= e->catalog.n)
                continue;
            add_candidate(e, c);
            if (e->seen[c] != e->stamp)
                continue;
            float contrib = nb[j].w / max * source_w;
            if (e->covis_ref[c] < 0 || contrib > 0.5f * e->covis_acc[c])
                e->covis_ref[c] = r->item;
            e->covis_acc[c] += contrib;
        }
    }
}

static void gather_list(rc_engine_t *e, const uint32_t *items, uint32_t n, uint32_t take)
{
    for (uint32_t i = 0; i < n && i < take; i++)
        if (items[i] < e->catalog.n)
            add_candidate(e, items[i]);
}

static void gather_candidates(rc_engine_t *e, const rc_user_state_t *u, const rc_rank_spec_t *s,
                              int daypart)
{
    const rc_trending_t *t = &e->trending;
    gather_covisit(e, u);
    int segs[3] = {RC_SEG_DEVICE(u->device), RC_SEG_DAYPART(daypart), RC_SEG_ALL};
    for (int i = 0; i < 3; i++)
        gather_list(e, t->top[segs[i]], t->n_top[segs[i]], TRENDING_TAKE);

    /* The user's strongest categories, and the one a subscription filters on. */
    uint16_t best[CATEGORIES_TAKE];
    uint8_t n_best = 0;
    bool taken[RC_CATS] = {false};
    for (; n_best < CATEGORIES_TAKE && n_best < u->n_cats; n_best++) {
        int b = -1;
        for (uint8_t i = 0; i < u->n_cats; i++)
            if (!taken[i] && (b < 0 || u->cats_w[i] > u->cats_w[b]))
                b = i;
        taken[b] = true;
        best[n_best] = u->cats[b];
    }
    for (uint8_t i = 0; i < n_best; i++)
        if (best[i] < t->n_categories)
            gather_list(e, t->by_category + (size_t)best[i] * RC_TRENDING_PER_CAT,
                        t->n_by_category[best[i]], RC_TRENDING_PER_CAT);
    if (s->category > 0 && (uint32_t)s->category < t->n_categories)
        gather_list(e, t->by_category + (size_t)s->category * RC_TRENDING_PER_CAT,
                    t->n_by_category[s->category], RC_TRENDING_PER_CAT);
}

static float svec_norm(const rc_user_state_t *u)
{
    float sq = 0;
    for (uint8_t i = 0; i < u->n_svec; i++)
        sq += u->svec_w[i] * u->svec_w[i];
    return sqrtf(sq);
}

/* Cosine of the item's feature vector with the user's content vector. */
static float content_score(const rc_item_t *it, const rc_user_state_t *u, float unorm)
{
    if (it->n_feat == 0 || unorm <= 0)
        return 0;
    float dot = 0;
    for (uint8_t f = 0; f < it->n_feat; f++) {
        float iw = (f == 0 && it->category) ? 2.0f : 1.0f;
        for (uint8_t i = 0; i < u->n_svec; i++)
            if (u->svec_feat[i] == it->feat[f]) {
                dot += iw * u->svec_w[i];
                break;
            }
    }
    float c = dot / (it->feat_norm * unorm);
    return c > 0 ? c : 0;
}

static bool recently_seen(const rc_user_state_t *u, uint32_t item)
{
    for (uint8_t i = 0; i < u->n_recent; i++)
        if (u->recent[i].item == item)
            return true;
    return false;
}

static bool passes_rules(const rc_item_t *it, uint32_t item, const rc_user_state_t *u,
                         const rc_rank_spec_t *s)
{
    if (!rc_item_recommendable(it) || rc_user_is_excluded(u, item) || recently_seen(u, item))
        return false;
    if (s->category >= 0 && it->category != (uint32_t)s->category)
        return false;
    if (s->price_min >= 0 && !(it->price >= 0 && it->price >= s->price_min))
        return false;
    if (s->price_max >= 0 && !(it->price >= 0 && it->price <= s->price_max))
        return false;
    return true;
}

static int by_score_desc(const void *a, const void *b)
{
    float x = ((const rc_ranked_t *)a)->score, y = ((const rc_ranked_t *)b)->score;
    if (x != y)
        return (x < y) - (x > y);
    /* Ties break by item index so equal scores give one stable order. */
    uint32_t i = ((const rc_ranked_t *)a)->item, j = ((const rc_ranked_t *)b)->item;
    return (i > j) - (i < j);
}

/* Scores every candidate that passes the rules into e->ranked; returns how many. */
static uint32_t score_candidates(rc_engine_t *e, const rc_user_state_t *u, const rc_rank_spec_t *s,
                                 int daypart)
{
    const rc_trending_t *t = &e->trending;
    const rc_blend_t *b = &e->blend;
    float unorm = svec_norm(u);
    float covis_max = 0;
    for (uint32_t i = 0; i < e->n_cands; i++)
        if (e->covis_acc[e->cands[i]] > covis_max)
            covis_max = e->covis_acc[e->cands[i]];

    uint32_t n = 0;
    for (uint32_t i = 0; i < e->n_cands; i++) {
        uint32_t c = e->cands[i];
        const rc_item_t *it = &e->catalog.items[c];
        if (!passes_rules(it, c, u, s))
            continue;
        float part[RC_SRC_COUNT];
        part[RC_SRC_COVISIT] = covis_max > 0 ? b->covisit * e->covis_acc[c] / covis_max : 0;
        part[RC_SRC_CONTENT] = b->content * content_score(it, u, unorm);
        part[RC_SRC_TRENDING] =
            b->trending * (0.5f * rc_trending_norm(t, RC_SEG_DEVICE(u->device), c) +
                           0.2f * rc_trending_norm(t, RC_SEG_DAYPART(daypart), c) +
                           0.3f * rc_trending_norm(t, RC_SEG_ALL, c));
        part[RC_SRC_POPULAR] =
            t->popularity_max > 0 ? b->popular * it->popularity / t->popularity_max : 0;
        uint8_t src = RC_SRC_POPULAR;
        float score = 0;
        for (int p = 0; p < RC_SRC_COUNT; p++) {
            score += part[p];
            if (part[p] > part[src])
                src = (uint8_t)p;
        }
        int64_t ref = src == RC_SRC_COVISIT ? e->covis_ref[c] : -1;
        e->ranked[n++] = (rc_ranked_t){c, score, src, ref};
    }
    return n;
}

/* Greedy top-K with at most `cap` items per category; when too few categories are
 * available, the capped items fill the remaining places in score order. */
static uint32_t diversify(rc_engine_t *e, uint32_t n, uint32_t k, rc_ranked_t *out)
{
    uint32_t cap = (k * 6 + 9) / 10;
    if (cap < 2)
        cap = 2;
    uint32_t taken = 0;
    uint16_t counts[64] = {0}; /* hashed category buckets: a collision only tightens the cap */
    bool used[MAX_CANDIDATES];
    memset(used, 0, n * sizeof(bool));
    for (uint32_t i = 0; i < n && taken < k; i++) {
        uint16_t bucket = e->catalog.items[e->ranked[i].item].category % 64;
        if (e->catalog.items[e->ranked[i].item].category != 0 && counts[bucket] >= cap)
            continue;
        counts[bucket]++;
        used[i] = true;
        out[taken++] = e->ranked[i];
    }
    for (uint32_t i = 0; i < n && taken < k; i++)
        if (!used[i])
            out[taken++] = e->ranked[i];
    return taken;
}

uint32_t rc_engine_rank(rc_engine_t *e, const rc_user_state_t *u, const rc_rank_spec_t *spec,
                        int64_t wall_ms, rc_ranked_t *out)
{
    if (ensure_scratch(e) != 0 || spec->k == 0)
        return 0;
    if (++e->stamp == 0) {
        memset(e->seen, 0, e->scratch_cap * sizeof(*e->seen));
        e->stamp = 1;
    }
    e->n_cands = 0;
    int daypart = rc_daypart(wall_ms, u->tz_offset_min);
    gather_candidates(e, u, spec, daypart);
    uint32_t n = score_candidates(e, u, spec, daypart);
    qsort(e->ranked, n, sizeof(*e->ranked), by_score_desc);
    /* Sorting again after diversity keeps best-first order within the chosen K. */
    uint32_t k = diversify(e, n, spec->k, out);
    qsort(out, k, sizeof(*out), by_score_desc);
    return k;
}

static const char *device_phrase(int device)
{
    switch (device) {
    case RC_DEV_MOBILE:
        return "Trending on mobile";
    case RC_DEV_TABLET:
        return "Trending on tablets";
    case RC_DEV_DESKTOP:
        return "Trending on desktop";
    }
    return "Trending now";
}

void rc_engine_why(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                   size_t len)
{
    const rc_catalog_t *c = &e->catalog;
    const rc_item_t *it = &c->items[r->item];
    switch (r->src) {
    case RC_SRC_COVISIT:
        if (r->ref >= 0 && (uint64_t)r->ref < c->n) {
            snprintf(buf, len, "Viewed together with %s", c->items[r->ref].name);
            return;
        }
        break;
    case RC_SRC_CONTENT:
        /* Name the most recent item of the same category, if there is one. */
        for (uint8_t d = 0; d < u->n_recent; d++) {
            uint32_t ri = u->recent[(u->head + RC_RECENT - 1 - d) % RC_RECENT].item;
            if (ri < c->n && it->category != 0 && c->items[ri].category == it->category) {
                snprintf(buf, len, "Similar to %s", c->items[ri].name);
                return;
            }
        }
        if (it->category != 0) {
            snprintf(buf, len, "Because you like %s", c->categories[it->category]);
            return;
        }
        break;
    case RC_SRC_TRENDING:
        snprintf(buf, len, "%s", device_phrase(u->device));
        return;
    default:
        break;
    }
    if (it->category != 0)
        snprintf(buf, len, "Popular in %s", c->categories[it->category]);
    else
        snprintf(buf, len, "Popular");
}
