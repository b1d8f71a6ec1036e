/* SPDX-License-Identifier: Apache-2.0 */
/* The ranker against a slow reference written here from docs/engine.md ("Ranking one
 * list"): every candidate gathered into plain arrays as long as the catalog, every one
 * scored, a full qsort, the greedy diversity pass. A seeded catalog of 3,000 items and a
 * fixed random stream of events from 300 users; after each event the user's list is ranked
 * by rc_engine_rank() and by the reference, and the two must be the same list. The ranker's
 * shortcuts (a small hash table instead of catalog-long arrays, candidates left unscored
 * when their bound cannot reach the list, partial selection instead of a sort) must not
 * change a single list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/engine_int.h"
#include "engine/ranker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0_MS 1700000000000LL

/* The sizes of docs/engine.md, "Ranking one list". */
#define REF_SOURCES       5
#define REF_FLOOR         0.02f
#define REF_TRENDING      15
#define REF_CATEGORY      12
#define REF_CATEGORIES    3
#define REF_FEATURES      4
#define REF_LT_FEATURES   2
#define REF_PER_FEATURE   10
#define REF_MAX_CANDIDATE 1024
static const uint32_t ref_source_take[REF_SOURCES] = {64, 64, 32, 32, 16};

/* ------------------------------------------------------------------------------------ */
/* The reference ranker. */

typedef struct {
    const rc_engine_t *e;
    const rc_user_state_t *u;
    const rc_rank_spec_t *spec;
    int daypart;
    /* Per catalog item. */
    bool *cand, *blocked;
    float *acc, *best, *succ;
    int32_t *ref;
    uint32_t *order; /* candidates in the order they came */
    float succ_max;  /* the weight of the item in view's strongest successor */
    uint32_t n;
    rc_ranked_t *scored;
} ref_t;

static void ref_add(ref_t *r, uint32_t item)
{
    if (item >= r->e->catalog.n || r->blocked[item] || r->cand[item] || r->n >= REF_MAX_CANDIDATE)
        return;
    r->cand[item] = true;
    r->ref[item] = -1;
    r->order[r->n++] = item;
}

static void ref_list(ref_t *r, const uint32_t *items, uint32_t n, uint32_t take)
{
    for (uint32_t i = 0; i < n && i < take; i++)
        ref_add(r, items[i]);
}

static void ref_covisit(ref_t *r)
{
    const rc_engine_t *e = r->e;
    const rc_user_state_t *u = r->u;
    for (uint32_t d = 0; d < u->n_recent && d < REF_SOURCES; d++) {
        const rc_recent_t *src = rc_user_recent(u, d);
        uint32_t nn;
        const rc_neighbor_t *nb = rc_covisit_neighbors(&e->covisit, src->item, &nn);
        if (src->w <= 0 || nn == 0 || nb[0].w <= 0)
            continue;
        float source_w = logf(1.0f + src->w) * powf(e->source_decay, (float)d);
        for (uint32_t j = 0; j < nn && j < ref_source_take[d]; j++) {
            if (nb[j].w < nb[0].w * REF_FLOOR)
                break;
            uint32_t c = nb[j].item;
            ref_add(r, c);
            if (c >= e->catalog.n || !r->cand[c])
                continue;
            float contrib = nb[j].w / nb[0].w * source_w;
            if (contrib > r->best[c]) {
                r->best[c] = contrib;
                r->ref[c] = (int32_t)src->item;
            }
            r->acc[c] += contrib;
        }
    }
    /* What directly followed the item in view (the successor model): every successor, by its
     * weight, explained by the item in view when nothing else does. */
    const rc_recent_t *cur = rc_user_recent(u, 0);
    uint32_t nn;
    const rc_neighbor_t *nb = rc_covisit_neighbors(&e->successor, cur->item, &nn);
    if (u->n_recent == 0 || cur->w <= 0)
        return;
    r->succ_max = nn > 0 ? nb[0].w : 0;
    for (uint32_t j = 0; j < nn; j++) {
        uint32_t c = nb[j].item;
        ref_add(r, c);
        if (c >= e->catalog.n || !r->cand[c])
            continue;
        r->succ[c] = nb[j].w;
        if (r->ref[c] < 0)
            r->ref[c] = (int32_t)cur->item;
    }
}

/* The items of the `rounds` strongest features of a weighted set. */
static void ref_features(ref_t *r, const uint32_t *feat, const float *w, uint8_t n, int rounds,
                         uint32_t take)
{
    bool taken[64] = {false};
    for (int round = 0; round < rounds; round++) {
        int b = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && w[i] > 0 && (b < 0 || w[i] > w[b]))
                b = i;
        if (b < 0)
            return;
        taken[b] = true;
        uint32_t count;
        const uint32_t *items = rc_engine_feature_items(r->e, feat[b], &count);
        ref_list(r, items, count, take);
    }
}

static void ref_category(ref_t *r, uint32_t cat, uint32_t take)
{
    const rc_trending_t *t = &r->e->trending;
    if (cat < t->n_categories)
        ref_list(r, t->by_category + (size_t)cat * RC_TRENDING_PER_CAT, t->n_by_category[cat],
                 take);
}

static void ref_gather(ref_t *r, bool wide)
{
    const rc_engine_t *e = r->e;
    const rc_user_state_t *u = r->u;
    const rc_trending_t *t = &e->trending;
    if (!wide)
        ref_covisit(r);
    int loc = rc_trending_locale_segment(t, u->locale);
    int segs[4] = {RC_SEG_DEVICE(u->device), RC_SEG_DAYPART(r->daypart), RC_SEG_ALL, loc};
    for (int i = 0; i < (loc >= 0 ? 4 : 3); i++)
        ref_list(r, t->top[segs[i]], t->n_top[segs[i]], wide ? RC_TRENDING_TOP : REF_TRENDING);
    uint32_t per_feature = wide ? RC_FEATURE_LIST : REF_PER_FEATURE;
    ref_features(r, u->svec_feat, u->svec_w, u->n_svec, REF_FEATURES, per_feature);
    ref_features(r, u->ltvec_feat, u->ltvec_w, u->n_ltvec, REF_LT_FEATURES, per_feature);
    uint32_t category_take = wide ? RC_TRENDING_PER_CAT : REF_CATEGORY;
    bool taken[RC_CATS] = {false};
    uint16_t best[REF_CATEGORIES];
    int n_best = 0;
    for (; n_best < REF_CATEGORIES && n_best < u->n_cats; n_best++) {
        int b = -1;
        for (int i = 0; i < u->n_cats; i++)
            if (!taken[i] && (b < 0 || u->cats_w[i] > u->cats_w[b]))
                b = i;
        taken[b] = true;
        best[n_best] = u->cats[b];
    }
    for (int i = 0; i < n_best; i++)
        ref_category(r, best[i], category_take);
    if (r->spec->category > 0)
        ref_category(r, (uint32_t)r->spec->category, RC_TRENDING_PER_CAT);
    const rc_rules_t *rules = &e->rules;
    ref_list(r, rules->lifted, rules->n_lifted, rules->n_lifted);
    for (uint32_t i = 0; i < rules->n_lifted_categories; i++)
        ref_category(r, (uint32_t)rules->lifted_categories[i], category_take);
    for (uint32_t i = 0; i < rules->n_lifted_tags; i++) {
        uint32_t n;
        const uint32_t *items = rc_engine_feature_items(e, rules->lifted_tags[i], &n);
        ref_list(r, items, n, REF_PER_FEATURE);
    }
}

static bool ref_passes(const rc_item_t *it, const rc_rank_spec_t *s)
{
    return rc_item_recommendable(it) && (s->category < 0 || it->category == s->category) &&
           (s->price_min < 0 || (it->price >= 0 && it->price >= s->price_min)) &&
           (s->price_max < 0 || (it->price >= 0 && it->price <= s->price_max));
}

static float ref_norm(const float *w, uint8_t n)
{
    float sq = 0;
    for (uint8_t i = 0; i < n; i++)
        sq += w[i] * w[i];
    return sqrtf(sq);
}

/* The weight of `feat` in a weighted set, by a linear search. */
static float ref_weight(const uint32_t *keys, const float *w, uint8_t n, uint32_t feat)
{
    for (uint8_t i = 0; i < n; i++)
        if (keys[i] == feat)
            return w[i];
    return 0;
}

/* The cosine of the item's features (the category counting twice) with the session's and
 * the long-term content vectors, blended 0.65 / 0.35 when both exist. */
static float ref_content(const rc_user_state_t *u, const rc_item_t *it)
{
    float ns = ref_norm(u->svec_w, u->n_svec), nl = ref_norm(u->ltvec_w, u->n_ltvec);
    if (it->n_feat == 0 || (ns <= 0 && nl <= 0))
        return 0;
    float dot_s = 0, dot_l = 0;
    for (uint8_t f = 0; f < it->n_feat; f++) {
        float fw = (f == 0 && it->category) ? 2.0f : 1.0f;
        dot_s += fw * ref_weight(u->svec_feat, u->svec_w, u->n_svec, it->feat[f]);
        dot_l += fw * ref_weight(u->ltvec_feat, u->ltvec_w, u->n_ltvec, it->feat[f]);
    }
    float cs = ns > 0 ? dot_s / (it->feat_norm * ns) : 0;
    float cl = nl > 0 ? dot_l / (it->feat_norm * nl) : 0;
    float c = ns <= 0 ? cl : nl <= 0 ? cs : 0.65f * cs + 0.35f * cl;
    return c > 0 ? (c < 1 ? c : 1) : 0;
}

/* The sequential part of candidate c before its blend weight: each model's evidence over its
 * best (the best candidate's co-visitation, the strongest successor of the item in view),
 * mixed by the engine's successor share (docs/engine.md). */
static float ref_seq(const ref_t *r, float covis_max, uint32_t c)
{
    float a = r->e->blend.successor; /* the engine's, whatever the list's blend */
    float k_covis = covis_max > 0 ? (1 - a) / covis_max : 0;
    float k_succ = r->succ_max > 0 ? a / r->succ_max : 0;
    return k_covis * r->acc[c] + k_succ * r->succ[c];
}

static bool ref_score(const ref_t *r, uint32_t c, float covis_max, rc_ranked_t *out)
{
    const rc_engine_t *e = r->e;
    const rc_trending_t *t = &e->trending;
    const rc_blend_t *b = r->spec->blend ? r->spec->blend : &e->blend;
    const rc_item_t *it = &e->catalog.items[c];
    if (!ref_passes(it, r->spec))
        return false;
    float part[RC_SRC_COUNT];
    part[RC_SRC_COVISIT] = b->covisit * ref_seq(r, covis_max, c);
    part[RC_SRC_CONTENT] = b->content * ref_content(r->u, it);
    int loc = rc_trending_locale_segment(t, r->u->locale);
    int segs[4] = {RC_SEG_DEVICE(r->u->device), RC_SEG_DAYPART(r->daypart), RC_SEG_ALL,
                   loc >= 0 ? loc : RC_SEG_ALL};
    static const float share[2][4] = {{0.5f, 0.2f, 0.3f, 0}, {0.3f, 0.15f, 0.2f, 0.35f}};
    float trend = 0, seg_best = 0;
    int seg_ref = RC_SEG_ALL;
    const float *sc = rc_trending_scores(t, c);
    for (int j = 0; sc != NULL && j < 4; j++) {
        float w = t->top_max[segs[j]] > 0 ? share[loc >= 0][j] / t->top_max[segs[j]] : 0;
        float v = w * sc[segs[j]];
        trend += v;
        if (v > seg_best) {
            seg_best = v;
            seg_ref = segs[j];
        }
    }
    part[RC_SRC_TRENDING] = b->trending * (trend < 1 ? trend : 1);
    float pop_scale = t->popularity_max > 0 ? b->popular / t->popularity_max : 0;
    float pop = pop_scale * it->popularity;
    part[RC_SRC_POPULAR] = pop < b->popular ? pop : b->popular;
    uint8_t src = RC_SRC_POPULAR;
    float score = 0;
    for (int p = 0; p < RC_SRC_COUNT; p++) {
        score += part[p];
        if (part[p] > part[src])
            src = (uint8_t)p;
    }
    score *= rc_rules_boost(&e->rules, c);
    int64_t ref = src == RC_SRC_COVISIT ? r->ref[c] : src == RC_SRC_TRENDING ? seg_ref : -1;
    *out = (rc_ranked_t){c, score, src, RC_EVENT_KIND_COUNT, ref};
    return true;
}

static int ref_better_first(const void *pa, const void *pb)
{
    const rc_ranked_t *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

/* Every candidate scored and sorted, then the greedy pass: at most ceil(0.6 k) (at least 2)
 * of a category, the capped ones filling what is left in score order. */
static uint32_t ref_top(ref_t *r, rc_ranked_t *out, bool *overfull, uint32_t *n_scored)
{
    const rc_engine_t *e = r->e;
    float covis_max = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->acc[r->order[i]] > covis_max)
            covis_max = r->acc[r->order[i]];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n; i++)
        n += ref_score(r, r->order[i], covis_max, &r->scored[n]);
    qsort(r->scored, n, sizeof(*r->scored), ref_better_first);
    uint32_t k = r->spec->k, cap = (k * 6 + 9) / 10 < 2 ? 2 : (k * 6 + 9) / 10;
    uint16_t counts[64] = {0}; /* the ranker's hashed buckets (a collision tightens the cap) */
    bool *used = calloc(n + 1, sizeof(bool));
    assert_non_null(used);
    uint32_t taken = 0;
    for (uint32_t i = 0; i < n && taken < k; i++) {
        uint16_t cat = e->catalog.items[r->scored[i].item].category;
        if (cat != 0 && counts[cat % 64] >= cap)
            continue;
        counts[cat % 64]++;
        used[i] = true;
        out[taken++] = r->scored[i];
    }
    *overfull = false;
    for (uint32_t i = 0; i < n && taken < k; i++) {
        if (!used[i]) {
            out[taken++] = r->scored[i];
            *overfull = true;
        }
    }
    free(used);
    qsort(out, taken, sizeof(*out), ref_better_first);
    if (r->spec->category >= 0)
        *overfull = false;
    *n_scored = n;
    return taken;
}

static uint32_t ref_rank(const rc_engine_t *e, const rc_user_state_t *u, const rc_rank_spec_t *spec,
                         int64_t wall_ms, rc_ranked_t *out)
{
    uint32_t n_items = e->catalog.n;
    ref_t r = {
        .e = e,
        .u = u,
        .spec = spec,
        .daypart = rc_daypart(wall_ms, u->tz_offset_min),
        .cand = calloc(n_items, sizeof(bool)),
        .blocked = calloc(n_items, sizeof(bool)),
        .acc = calloc(n_items, sizeof(float)),
        .best = calloc(n_items, sizeof(float)),
        .succ = calloc(n_items, sizeof(float)),
        .ref = calloc(n_items, sizeof(int32_t)),
        .order = calloc(REF_MAX_CANDIDATE, sizeof(uint32_t)),
        .scored = calloc(REF_MAX_CANDIDATE, sizeof(rc_ranked_t)),
    };
    assert_true(r.cand && r.blocked && r.acc && r.best && r.succ && r.ref && r.order && r.scored);
    for (uint32_t i = 0; i < u->n_excluded; i++)
        r.blocked[u->excluded[i]] = true;
    for (uint32_t i = 0; i < u->n_recent; i++)
        r.blocked[u->recent[i].item] = true;
    bool overfull = false;
    uint32_t n_scored;
    ref_gather(&r, false);
    uint32_t k = ref_top(&r, out, &overfull, &n_scored);
    if (n_scored < spec->k || overfull) { /* too few, or too few categories: whole top lists */
        ref_gather(&r, true);
        k = ref_top(&r, out, &overfull, &n_scored);
    }
    free(r.cand);
    free(r.blocked);
    free(r.acc);
    free(r.succ);
    free(r.best);
    free(r.ref);
    free(r.order);
    free(r.scored);
    return k;
}

/* ------------------------------------------------------------------------------------ */
/* The world: a seeded catalog and a stream of events. */

#define N_ITEMS 3000
#define N_CATS  14
#define N_TAGS  40
#define N_USERS 300

static uint32_t next_random(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static rc_engine_t *engine;
static rc_ranker_t *ranker; /* the rank scratch (the caller's: engine.h) */

static int free_world(void **state)
{
    (void)state;
    rc_engine_free(engine);
    engine = NULL;
    rc_ranker_free(ranker);
    ranker = NULL;
    return 0;
}

/* Categories of uneven size (the first ones large, so the diversity cap bites), three or
 * four tags each, prices, a popularity prior that falls steeply. */
static rc_engine_t *seeded_engine(uint64_t *rnd)
{
    rc_engine_t *e = rc_engine_new(N_ITEMS, false, 64, 604800, 3600, T0_MS / 1000.0);
    assert_non_null(e);
    char id[16], cat[16], tag_buf[4][16];
    const char *tags[4];
    for (uint32_t i = 0; i < N_ITEMS; i++) {
        uint32_t c = next_random(rnd) % (N_CATS * N_CATS);
        snprintf(cat, sizeof(cat), "cat%u", (uint32_t)sqrt((double)c)); /* skewed */
        uint32_t n_tags = 3 + next_random(rnd) % 2;
        for (uint32_t t = 0; t < n_tags; t++) {
            snprintf(tag_buf[t], sizeof(tag_buf[t]), "tag%u", next_random(rnd) % N_TAGS);
            tags[t] = tag_buf[t];
        }
        snprintf(id, sizeof(id), "it%u", i);
        double price = i % 97 == 0 ? -1.0 : 1.0 + next_random(rnd) % 100;
        double popularity = 10000.0 / (1 + i % 500) + next_random(rnd) % 20;
        uint32_t idx;
        assert_int_equal(
            rc_catalog_upsert(&e->catalog, id, id, cat, tags, n_tags, price, popularity, &idx), 0);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    return e;
}

/* An item a user of `theme` (a slice of the catalog) is likely to touch, so neighbours
 * form; sometimes anything. */
static uint32_t pick_item(uint64_t *rnd, uint32_t theme)
{
    if (next_random(rnd) % 4 == 0)
        return next_random(rnd) % N_ITEMS;
    return (theme * 211 + next_random(rnd) % 150) % N_ITEMS;
}

static void assert_same_list(const rc_ranked_t *got, uint32_t n_got, const rc_ranked_t *want,
                             uint32_t n_want, uint32_t event)
{
    bool same = n_got == n_want;
    for (uint32_t i = 0; same && i < n_got; i++)
        same = got[i].item == want[i].item && got[i].src == want[i].src &&
               got[i].ref == want[i].ref && got[i].score == want[i].score;
    if (same)
        return;
    print_error("event %u: the ranker's list differs from the reference's\n", event);
    for (uint32_t i = 0; i < n_got || i < n_want; i++)
        print_error("  %2u: ranker %5d %.9g src %u | reference %5d %.9g src %u\n", i,
                    i < n_got ? (int)got[i].item : -1, i < n_got ? got[i].score : 0,
                    i < n_got ? got[i].src : 0, i < n_want ? (int)want[i].item : -1,
                    i < n_want ? want[i].score : 0, i < n_want ? want[i].src : 0);
    fail();
}

/* The specs lists are ranked with: mostly k = 20, the rest shorter and longer lists, a
 * category filter, a price range and another blend. */
static rc_rank_spec_t spec_for(uint32_t i, const rc_blend_t *blend)
{
    rc_rank_spec_t s = {.k = 20, .category = -1, .price_min = -1, .price_max = -1};
    switch (i % 8) {
    case 1:
        s.k = 5;
        break;
    case 2:
        s.k = 40;
        break;
    case 3:
        s.category = (int32_t)(1 + i / 8 % N_CATS);
        break;
    case 4:
        s.price_min = 20;
        s.price_max = 45;
        break;
    case 5:
        s.blend = blend;
        break;
    default:
        break;
    }
    return s;
}

static void test_rank_matches_reference(void **state)
{
    (void)state;
    uint64_t rnd = 20261207;
    engine = seeded_engine(&rnd);
    rc_engine_t *e = engine;
    ranker = rc_ranker_new();
    assert_non_null(ranker);
    static rc_user_state_t users[N_USERS];
    static const char *const locales[] = {"de-DE", "fr-FR", "en-GB"};
    for (uint32_t i = 0; i < N_USERS; i++) {
        rc_user_state_init(&users[i], (int)(i % RC_DEVICE_COUNT), 60 * (int)(i % 7) - 180);
        char id[16];
        int n = snprintf(id, sizeof(id), "u%u", i);
        users[i].user_key = rc_engine_user_key((rc_str_t){id, (uint32_t)n});
        if (i % 4 == 0) {
            const char *tag = locales[i / 4 % 3];
            users[i].locale =
                (int16_t)rc_engine_locale(e, (rc_str_t){tag, (uint32_t)strlen(tag)}, T0_MS);
        }
        if (i % 5 == 0) { /* a returning user: a long-term vector */
            rc_weights_add_item(&e->catalog, users[i].ltvec_feat, users[i].ltvec_w,
                                &users[i].n_ltvec, RC_LTVEC, i * 7 % N_ITEMS, 3.0f);
            rc_user_add_category(&users[i], e->catalog.items[i * 7 % N_ITEMS].category, 1.0f);
        }
    }
    static const rc_event_kind_t kinds[] = {
        RC_EV_VIEW, RC_EV_VIEW,     RC_EV_VIEW,    RC_EV_CLICK, RC_EV_CLICK,  RC_EV_CART,
        RC_EV_VIEW, RC_EV_PURCHASE, RC_EV_DISMISS, RC_EV_DWELL, RC_EV_RATING, RC_EV_SEARCH};
    const rc_blend_t other = {.covisit = 0.3f, .content = 0.4f, .trending = 0.2f, .popular = 0.1f};
    rc_ranked_t got[40], want[40];
    uint32_t deferred = 0, compared = 0;
    const rc_blend_t start = e->blend;
    for (uint32_t ev = 0; ev < 24000; ev++) {
        uint32_t ui = next_random(&rnd) % N_USERS;
        rc_user_state_t *u = &users[ui];
        int64_t at_ms = T0_MS + (int64_t)ev * 700; /* ~4.7 hours: every part of the day */
        rc_event_kind_t kind = kinds[next_random(&rnd) % 12];
        uint32_t item = pick_item(&rnd, ui % 13);
        double value = kind == RC_EV_RATING  ? 1 + next_random(&rnd) % 5
                       : kind == RC_EV_DWELL ? next_random(&rnd) % 40000
                                             : 0;
        char query[16];
        int qn = snprintf(query, sizeof(query), "tag%u", next_random(&rnd) % N_TAGS);
        bool has_value = kind == RC_EV_RATING || kind == RC_EV_DWELL;
        rc_engine_observe(
            e, u, kind, kind == RC_EV_SEARCH ? -1 : (int64_t)item,
            rc_event_weight(kind, has_value, value),
            kind == RC_EV_SEARCH ? (rc_str_t){query, (uint32_t)qn} : (rc_str_t){"", 0}, at_ms);
        if (ev % 500 == 499)
            assert_int_equal(rc_engine_refresh(e), 0);
        if (ev == 12000)
            assert_true(e->blend.successor != start.successor); /* the share is learned */
        if (ev == 12000) { /* the second half with boosts that lift and bury */
            char err[160];
            json_t *j = json_loads("{\"boosts\":[{\"category\":\"cat5\",\"factor\":2.5},"
                                   "{\"item\":\"it42\",\"factor\":8},"
                                   "{\"tag\":\"tag3\",\"factor\":0.3}]}",
                                   0, NULL);
            assert_non_null(j);
            rc_rules_t rules = {0};
            assert_int_equal(rc_rules_from_json(&rules, j, err, sizeof(err)), 0);
            json_decref(j);
            rc_engine_set_rules(e, &rules);
        }
        assert_int_equal(e->n_explore, 0); /* no new items: no exploration place */
        rc_rank_spec_t spec = spec_for(ev, &other);
        uint32_t n_got = rc_engine_rank(e, ranker, u, &spec, at_ms, got);
        deferred += rc_ranker_deferred(ranker) > 0;
        uint32_t n_want = ref_rank(e, u, &spec, at_ms, want);
        assert_same_list(got, n_got, want, n_want, ev);
        compared += n_got > 0;
    }
    /* The shortcuts were taken, not merely allowed, and the lists were not empty. */
    print_message("%u lists compared, %u ranked with candidates left unscored\n", compared,
                  deferred);
    assert_int_gt(compared, 20000);
    assert_int_gt(deferred, 500); /* 852 (979 before the successor model) */
    free_world(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rank_matches_reference, free_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
