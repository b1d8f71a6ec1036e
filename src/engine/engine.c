/* SPDX-License-Identifier: Apache-2.0 */
/* The engine: its lifecycle and accessors, how one event moves the global models and the
 * user's state, and the refresh of what depends on the catalog. Ranking is ranker.c's. */
#include "engine/engine_int.h"
#include "engine/engine_op.h"
#include "engine/reasons.h"
#include "util/error.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SVEC_DECAY 0.92f
#define CATS_DECAY 0.92f

rc_engine_t *rc_engine_new(uint32_t max_items, bool catalog_open, uint32_t covisit_neighbors,
                           double covisit_half_life_s, double trending_half_life_s, double now_s)
{
    rc_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    rc_covisit_init(&e->covisit, covisit_neighbors, covisit_half_life_s, now_s);
    rc_covisit_init(&e->successor, RC_SUCCESSOR_NEIGHBORS, covisit_half_life_s, now_s);
    rc_trending_init(&e->trending, trending_half_life_s, now_s);
    if (rc_catalog_init(&e->catalog, max_items, catalog_open) != 0) {
        rc_engine_free(e);
        return NULL;
    }
    /* Defaults chosen on two data sets of different shape (Online Retail baskets and the
     * synthetic generator's browsing sessions; bench/eval/README.md): the session's own
     * neighbourhood predicts the next item far better than content or trending, which
     * mainly order items when the neighbourhood is thin (cold start, new items). */
    e->blend = (rc_blend_t){
        .covisit = 0.80f, .content = 0.10f, .trending = 0.07f, .popular = 0.03f, .successor = 0.1f};
    /* The successor share starts small, the newer model earning its place, and traffic
     * moves it (learn_blend) within [blend_floor, successor_max]. */
    e->blend_rate = 0.01f;
    e->blend_floor = 0.01f;
    e->successor_max = 0.5f;
    e->source_decay = 0.4f;
    e->backward_weight = 0.5f;
    e->pair_decay = 1.0f;
    e->repeat_recency = 0.8f;
    e->new_sharpness = 1.0f;
    e->explore_new = true;
    e->established = UINT32_MAX;
    /* Until traffic says otherwise, what click sessions show (issue Q's measurement on public
     * click data: a quarter of next events re-click the item in view, a third in all return
     * to the session). */
    for (int d = 0; d < RC_DEVICE_COUNT; d++) {
        e->repeat_same[d] = 0.25f;
        e->repeat_back[d] = 0.08f;
    }
    e->repeat_successor = 0.1f;
    return e;
}

void rc_engine_free(rc_engine_t *e)
{
    if (e == NULL)
        return;
    rc_catalog_free(&e->catalog);
    rc_covisit_free(&e->covisit);
    rc_covisit_free(&e->successor);
    rc_trending_free(&e->trending);
    rc_features_free(&e->features);
    rc_rules_free(&e->rules);
    free(e);
}

static const char *const src_names[RC_SRC_REPEAT + 1] = {
    "covisit", "content", "trending", "popular", "explore", "pinned", "repeat"};

const char *rc_src_name(int src)
{
    return src >= 0 && src <= RC_SRC_REPEAT ? src_names[src] : "popular";
}

rc_catalog_t *rc_engine_catalog(rc_engine_t *e)
{
    return &e->catalog;
}

const rc_blend_t *rc_engine_blend(const rc_engine_t *e)
{
    return &e->blend;
}

const struct rc_experiment *rc_engine_experiment(const rc_engine_t *e)
{
    return e->experiment;
}

void rc_engine_set_experiment(rc_engine_t *e, const struct rc_experiment *x)
{
    e->experiment = x;
}

const char *rc_engine_locale_tag(const rc_engine_t *e, int ref)
{
    return rc_trending_locale_tag(&e->trending, ref);
}

uint32_t rc_engine_rank(const rc_engine_t *e, rc_ranker_t *scratch, const rc_user_state_t *u,
                        const rc_rank_spec_t *spec, int64_t wall_ms, rc_ranked_t *out)
{
    return rc_ranker_rank(scratch, e, u, spec, wall_ms, out);
}

void rc_engine_why(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                   size_t len)
{
    rc_reason_text(e, u, r, buf, len);
}

void rc_engine_reason(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r,
                      rc_reason_t *out)
{
    rc_reason_of(e, u, r, out);
}

void rc_engine_set_rules(rc_engine_t *e, rc_rules_t *r)
{
    rc_rules_free(&e->rules);
    e->rules = *r;
    memset(r, 0, sizeof(*r));
    rc_rules_resolve(&e->rules, &e->catalog, true);
}

void rc_user_state_init(rc_user_state_t *u, int device, int tz_offset_min)
{
    memset(u, 0, sizeof(*u));
    u->device = (uint8_t)(device >= 0 && device < RC_DEVICE_COUNT ? device : RC_DEV_OTHER);
    u->tz_offset_min = (int16_t)tz_offset_min;
    u->locale = -1;
}

int rc_engine_locale(rc_engine_t *e, rc_str_t tag, int64_t wall_ms)
{
    return tag.n > 0 ? rc_trending_locale(&e->trending, tag.p, tag.n, (double)wall_ms / 1000.0)
                     : -1;
}

int rc_engine_locale_find(const rc_engine_t *e, rc_str_t tag)
{
    return rc_trending_locale_find(&e->trending, tag.p, tag.n);
}

uint32_t rc_engine_user_key(rc_str_t id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < id.n; i++)
        h = (h ^ (unsigned char)id.p[i]) * 16777619u;
    return h != 0 ? h : 1;
}

float rc_event_weight(rc_event_kind_t kind, bool has_value, double value)
{
    switch (kind) {
    case RC_EV_VIEW:
        return 1.0f;
    case RC_EV_CLICK:
        return 2.0f;
    case RC_EV_CART:
        return 4.0f;
    case RC_EV_PURCHASE:
        return 6.0f;
    case RC_EV_RATING:
        /* 5 stars is a strong like, 3 neutral, 1 a dislike. */
        return has_value ? (float)(value - 3.0) * 1.5f : 0.0f;
    case RC_EV_DWELL:
        /* Ten seconds on an item is worth a view; the effect saturates at thirty. */
        return has_value ? (float)fmin(value / 10000.0, 3.0) : 0.0f;
    case RC_EV_SEARCH:
        return 2.0f;
    case RC_EV_IMPRESSION:
    case RC_EV_DISMISS:
    case RC_EVENT_KIND_COUNT:
        break;
    }
    return 0.0f;
}

bool rc_user_is_excluded(const rc_user_state_t *u, uint32_t item)
{
    for (uint8_t i = 0; i < u->n_excluded; i++)
        if (u->excluded[i] == item)
            return true;
    return false;
}

void rc_user_exclude(rc_user_state_t *u, uint32_t item)
{
    if (rc_user_is_excluded(u, item))
        return;
    u->excluded[u->excluded_head] = item;
    u->excluded_head = (uint8_t)((u->excluded_head + 1) % RC_EXCLUDED);
    if (u->n_excluded < RC_EXCLUDED)
        u->n_excluded++;
}

void rc_user_push_recent(rc_user_state_t *u, uint32_t item, float w, uint32_t at_s, uint8_t kind)
{
    u->recent[u->head] = (rc_recent_t){item, w, at_s, kind};
    u->head = (uint8_t)((u->head + 1) % RC_RECENT);
    if (u->n_recent < RC_RECENT)
        u->n_recent++;
}

void rc_weights_add(uint32_t *keys, float *w, uint8_t *n, uint8_t cap, uint32_t key, float add)
{
    /* The key first (usually there, or the set not full): the weakest is looked for only when
     * a newcomer must take its place. */
    for (uint8_t i = 0; i < *n; i++) {
        if (keys[i] == key) {
            w[i] += add;
            return;
        }
    }
    uint8_t weakest = 0;
    if (*n < cap) {
        weakest = (*n)++;
    } else {
        for (uint8_t i = 1; i < *n; i++)
            if (fabsf(w[i]) < fabsf(w[weakest]))
                weakest = i;
        if (fabsf(w[weakest]) >= fabsf(add))
            return;
    }
    keys[weakest] = key;
    w[weakest] = add;
}

void rc_weights_add_item(const rc_catalog_t *c, uint32_t *keys, float *w, uint8_t *n, uint8_t cap,
                         uint32_t item, float weight)
{
    const rc_item_t *it = &c->items[item];
    if (it->n_feat == 0 || it->feat_norm <= 0)
        return;
    float per = weight / it->feat_norm;
    for (uint8_t f = 0; f < it->n_feat; f++)
        rc_weights_add(keys, w, n, cap, it->feat[f], f == 0 && it->category ? 2 * per : per);
}

void rc_user_add_category(rc_user_state_t *u, uint16_t category, float w)
{
    uint8_t weakest = 0;
    if (category == 0)
        return;
    for (uint8_t i = 0; i < u->n_cats; i++) {
        if (u->cats[i] == category) {
            u->cats_w[i] += w;
            return;
        }
        if (u->cats_w[i] < u->cats_w[weakest])
            weakest = i;
    }
    if (u->n_cats < RC_CATS) {
        u->cats[u->n_cats] = category;
        u->cats_w[u->n_cats++] = w;
    } else if (w > u->cats_w[weakest]) {
        u->cats[weakest] = category;
        u->cats_w[weakest] = w;
    }
}

/* The session moves towards the item's content; older interests fade a little with every
 * event so the lists follow what the user does now. */
void rc_user_learn_content(const rc_catalog_t *c, rc_user_state_t *u, uint32_t item, float w)
{
    const rc_item_t *it = &c->items[item];
    for (uint8_t i = 0; i < u->n_svec; i++)
        u->svec_w[i] *= SVEC_DECAY;
    for (uint8_t i = 0; i < u->n_cats; i++)
        u->cats_w[i] *= CATS_DECAY;
    if (it->n_feat == 0)
        return;
    rc_weights_add_item(c, u->svec_feat, u->svec_w, &u->n_svec, RC_SVEC, item, w);
    rc_user_add_category(u, it->category, w);
}

/* A search moves the session towards items tagged with the query's words. */
static void learn_query(rc_user_state_t *u, rc_str_t q, float w)
{
    size_t i = 0;
    while (i < q.n) {
        while (i < q.n && !isalnum((unsigned char)q.p[i]))
            i++;
        size_t start = i;
        char word[32];
        size_t n = 0;
        while (i < q.n && isalnum((unsigned char)q.p[i])) {
            if (n < sizeof(word))
                word[n++] = (char)tolower((unsigned char)q.p[i]);
            i++;
        }
        if (i - start >= 2 && n <= sizeof(word))
            rc_weights_add(u->svec_feat, u->svec_w, &u->n_svec, RC_SVEC,
                           rc_feature_id('t', word, n), w);
    }
}

bool rc_user_observe(const rc_engine_t *e, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                     float weight, rc_str_t query, int64_t wall_ms)
{
    if (kind == RC_EV_IMPRESSION || u == NULL)
        return false;
    u->events++;
    if (kind == RC_EV_SEARCH && query.n > 0) {
        for (uint8_t i = 0; i < u->n_svec; i++)
            u->svec_w[i] *= SVEC_DECAY;
        learn_query(u, query, weight);
    }
    if (item < 0)
        return kind == RC_EV_SEARCH;
    uint32_t idx = (uint32_t)item;
    if (kind == RC_EV_DISMISS) {
        rc_user_exclude(u, idx);
        return true;
    }
    rc_user_learn_content(&e->catalog, u, idx, weight);
    if (kind == RC_EV_PURCHASE)
        rc_user_exclude(u, idx);
    rc_user_push_recent(u, idx, weight, wall_ms > 0 ? (uint32_t)(wall_ms / 1000) : 0,
                        (uint8_t)kind);
    return true;
}

/* The models' half first: it reads the user's state as it was before this event. */
bool rc_engine_observe(rc_engine_t *e, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                       float weight, rc_str_t query, int64_t wall_ms)
{
    rc_engine_op_t op;
    rc_engine_op_event(&op, u, kind, item, weight, wall_ms);
    rc_engine_apply(e, &op);
    return rc_user_observe(e, u, kind, item, weight, query, wall_ms);
}

const uint32_t *rc_engine_feature_items(const rc_engine_t *e, uint32_t feat, uint32_t *n)
{
    return rc_features_items(&e->features, feat, n);
}

/* The newest items first: they are the ones without data. The scan is bounded so a refresh
 * stays cheap on a large catalog. */
static void explore_pool_build(rc_engine_t *e)
{
    const rc_catalog_t *c = &e->catalog;
    if (e->established == UINT32_MAX)
        e->established = c->n;
    e->n_explore = 0;
    uint32_t scanned = 0;
    for (uint32_t i = c->n;
         i-- > e->established && e->n_explore < RC_EXPLORE_POOL && scanned < 4096; scanned++) {
        const rc_item_t *it = &c->items[i];
        uint32_t n_nb;
        rc_covisit_neighbors(&e->covisit, i, &n_nb);
        const float *sc = rc_trending_scores(&e->trending, i);
        bool touched = sc != NULL && sc[RC_SEG_ALL] > 0;
        if (rc_item_recommendable(it) && !(it->flags & RC_ITEM_LEARNED) && n_nb == 0 && !touched)
            e->explore_pool[e->n_explore++] = i;
    }
}

/* What depends on the catalog's content: the feature index and the rules' resolution,
 * rebuilt when the catalog changed. */
static int rebuild_indexes(rc_engine_t *e)
{
    explore_pool_build(e);
    if (e->features.cap == 0 || e->features.generation != e->catalog.generation) {
        int rc = rc_features_build(&e->features, &e->catalog);
        if (rc != 0)
            return rc;
    }
    return rc_rules_resolve(&e->rules, &e->catalog, false);
}

int rc_engine_refresh(rc_engine_t *e)
{
    int rc = rebuild_indexes(e);
    return rc != 0 ? rc : rc_trending_refresh(&e->trending, &e->catalog);
}

int rc_engine_refresh_step(rc_engine_t *e, uint32_t max_items)
{
    int done = rc_trending_refresh_step(&e->trending, &e->catalog, max_items);
    return done != 1 ? done : rebuild_indexes(e);
}
