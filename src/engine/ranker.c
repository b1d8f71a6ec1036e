/* SPDX-License-Identifier: Apache-2.0 */
/* The ranker: bounded candidate generation (neighbours of recent items, trending in the
 * user's context, the top of the user's categories), a blended score, rules (excluded and
 * unavailable items, subscription filters), a per-category cap for diversity, top-K. */
#include "engine/ranker.h"
#include "engine/engine_int.h"
#include "engine/returns.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RECENT_SOURCES   RC_COVISIT_SOURCES /* recent items whose neighbours become candidates */
#define TRENDING_TAKE    15                 /* from each trending segment consulted */
#define CATEGORY_TAKE    12                 /* from the top of each category consulted */
#define CATEGORIES_TAKE  3                  /* the user's strongest categories consulted */
#define FEATURES_TAKE    4                  /* the session's strongest content features consulted */
#define LT_FEATURES_TAKE 2  /* the long-term profile's strongest content features consulted */
#define FEATURE_TAKE     10 /* items taken per feature */
#define MAX_CANDIDATES   1024
#define RC_SVEC_SLOTS    128 /* power of two, well above RC_SVEC + RC_LTVEC */
/* Neighbours taken from each recent item, newest first, strongest first: an older item's
 * are weighed down by source_decay^d, so its weak ones hardly ever reach a list, and those
 * under COVISIT_FLOOR of the strongest never do. Against taking every neighbour: a rank
 * with full lists (64 each) costs 20 % less server CPU per event; HR@20 moved by -0.0008 on
 * Online Retail, -0.0005 / -0.0002 / +0.0003 on the three synthetic sets (bench/eval). */
#define COVISIT_FLOOR RC_COVISIT_FLOOR
/* Scoring reads each candidate's item and trending scores, scattered over the catalog: the
 * lines of the candidate this far ahead are asked for early. With full lists (about 300
 * candidates a rank) server CPU per event fell 18 % (median of 6 alternated pairs). */
#define PREFETCH_AHEAD 8
/* The best keep_of(k) scored candidates are the ones a diverse top k is first sought among
 * (top_k); the fewer, the more candidates score_candidates() can leave unscored. A diverse
 * top k is found among them unless more than keep - k of them are over the category cap. */
static uint32_t keep_of(uint32_t k)
{
    return k + (k + 1) / 2;
}
#define source_take(d) rc_covisit_take(d)

/* What one rank knows of an item it met: a candidate, or an item it must leave out. The
 * rank's items live in a small open-addressing table (CAND_SLOTS, under 100 KB, so it stays
 * in the core's cache between ranks) rather than in an array as long as the catalog, where
 * each of a rank's few hundred items cost a cache miss. A stamp marks the slots of this rank,
 * so nothing is cleared between ranks. */
#define CAND_BITS  12
#define CAND_SLOTS (1u << CAND_BITS) /* > 3 * (MAX_CANDIDATES + RC_EXCLUDED + RC_RECENT) */
struct rc_scratch {
    uint32_t stamp; /* == rk->stamp: the slot holds `item` in this rank */
    uint32_t item;
    float covis_acc;
    float covis_best; /* the largest single contribution, whose source is covis_ref */
    float succ;       /* its weight among the successors of the item in view */
    int32_t covis_ref;
    bool blocked;   /* excluded or recently seen by this rank's user */
    uint8_t src;    /* once scored: the part that contributed most (rc_src_t) */
    int8_t seg_ref; /* once scored: the trending segment that added most */
};

/* A scored candidate: what choosing the list sorts and moves, a third of an rc_ranked_t.
 * The source of its score and the item that explains it stay in its slot. */
typedef struct {
    float score;
    uint32_t item;
} scored_t;

struct rc_ranker {
    const rc_engine_t *e; /* the models of the rank under way */
    /* A stamp marks the entries of this rank, so nothing is cleared between ranks. */
    uint32_t stamp;
    struct rc_scratch *scratch; /* CAND_SLOTS */
    uint32_t *cands;            /* slots of scratch */
    uint32_t n_cands;
    /* Candidates with co-visitation are the first n_covis of cands while covis_first holds
     * (gathering adds them first; scoring reorders them). */
    uint32_t n_covis;
    bool covis_first;
    float succ_max; /* the weight of the item in view's strongest successor */
    /* What the rank gathers from, for the candidates gathered late (gather_rest). */
    const rc_user_state_t *u;
    const rc_rank_spec_t *spec;
    int daypart;
    /* The first pass's candidates without co-visitation (trending, categories, features,
     * lifted) are not gathered yet: score_candidates() found that none could reach the
     * list, or has not looked yet. */
    bool rest_pending;
    scored_t *scored;    /* the candidates scored in this rank */
    rc_ranked_t *ranked; /* merge_repeats()'s list */
    rc_ranked_t *wide;   /* the longer first list of a rank that may show the session */
    uint32_t *deferred;  /* slots of candidates whose bound kept them from being scored */
    uint32_t n_deferred;
    bool exhaustive; /* score every candidate (tests compare the ranker with it) */
    /* The user's content vectors (session and long-term) as one small hash table, rebuilt
     * per rank, so scoring a candidate costs one probe per item feature. */
    uint32_t svec_key[RC_SVEC_SLOTS];
    float svec_val[RC_SVEC_SLOTS];
    float ltvec_val[RC_SVEC_SLOTS];
    uint32_t svec_stamp[RC_SVEC_SLOTS];
    uint64_t svec_bits[16]; /* 1,024-bit filter: most item features are not the user's */
};

rc_ranker_t *rc_ranker_new(void)
{
    rc_ranker_t *rk = calloc(1, sizeof(*rk));
    if (rk == NULL)
        return NULL;
    rk->scratch = calloc(CAND_SLOTS, sizeof(*rk->scratch));
    rk->cands = malloc(MAX_CANDIDATES * sizeof(*rk->cands));
    rk->scored = malloc(MAX_CANDIDATES * sizeof(*rk->scored));
    /* merge_repeats() lists up to a whole first list and every session item. */
    rk->ranked = malloc((MAX_CANDIDATES + RC_RECENT) * sizeof(*rk->ranked));
    rk->wide = malloc(MAX_CANDIDATES * sizeof(*rk->wide));
    rk->deferred = malloc(MAX_CANDIDATES * sizeof(*rk->deferred));
    if (rk->scratch == NULL || rk->cands == NULL || rk->scored == NULL || rk->ranked == NULL ||
        rk->wide == NULL || rk->deferred == NULL) {
        rc_ranker_free(rk);
        return NULL;
    }
    return rk;
}

void rc_ranker_free(rc_ranker_t *rk)
{
    if (rk == NULL)
        return;
    free(rk->scratch);
    free(rk->cands);
    free(rk->scored);
    free(rk->ranked);
    free(rk->wide);
    free(rk->deferred);
    free(rk);
}

void rc_ranker_set_exhaustive(rc_ranker_t *rk, bool exhaustive)
{
    rk->exhaustive = exhaustive;
}

uint32_t rc_ranker_deferred(const rc_ranker_t *rk)
{
    return rk->n_deferred + (rk->rest_pending ? 1 : 0);
}

/* The slot of `item` in this rank, or the empty slot where it would go. */
static struct rc_scratch *slot_of(const rc_ranker_t *rk, uint32_t item)
{
    uint32_t i = (item * 2654435761u) >> (32 - CAND_BITS);
    while (rk->scratch[i].stamp == rk->stamp && rk->scratch[i].item != item)
        i = (i + 1) & (CAND_SLOTS - 1);
    return &rk->scratch[i];
}

static bool is_blocked(const rc_ranker_t *rk, uint32_t item)
{
    const struct rc_scratch *x = slot_of(rk, item);
    return x->stamp == rk->stamp && x->blocked;
}

/* Adds a candidate once per rank; items the user must not be shown never become
 * candidates. Returns its slot, or NULL when it is not one. */
static struct rc_scratch *add_candidate(rc_ranker_t *rk, uint32_t item)
{
    struct rc_scratch *x = slot_of(rk, item);
    if (x->stamp == rk->stamp)
        return x->blocked ? NULL : x;
    if (rk->n_cands >= MAX_CANDIDATES)
        return NULL;
    *x = (struct rc_scratch){.stamp = rk->stamp, .item = item, .covis_ref = -1};
    rk->cands[rk->n_cands++] = (uint32_t)(x - rk->scratch);
    return x;
}

/* Marks the items this rank must leave out: purchased, dismissed, and those the user
 * interacted with in this session. */
static void block(rc_ranker_t *rk, uint32_t item)
{
    struct rc_scratch *x = slot_of(rk, item);
    *x = (struct rc_scratch){.stamp = rk->stamp, .item = item, .covis_ref = -1, .blocked = true};
}

/* Under a repeat policy the session's items the list may show again stay candidates: the
 * evidence that makes a new item likely next (what followed the item in view) counts for
 * them too, and merge_repeats() adds their chance of a return. */
static void block_items(rc_ranker_t *rk, const rc_user_state_t *u, const rc_rank_spec_t *spec)
{
    for (uint8_t i = 0; i < u->n_excluded; i++)
        block(rk, u->excluded[i]);
    uint32_t current = u->n_recent > 0 ? rc_user_recent(u, 0)->item : UINT32_MAX;
    for (uint8_t i = 0; i < u->n_recent; i++) {
        const rc_recent_t *r = &u->recent[i];
        bool may_return = spec->repeat == RC_REPEAT_ALLOWED ||
                          (spec->repeat == RC_REPEAT_NOT_CURRENT && r->item != current);
        if (!may_return || r->w <= 0)
            block(rk, r->item);
    }
}

/* One slot per feature of either vector, holding its weight in each. */
static uint32_t svec_slot(rc_ranker_t *rk, uint32_t feat)
{
    rk->svec_bits[(feat >> 6) & 15] |= 1ull << (feat & 63);
    uint32_t slot = (feat * 2654435761u) & (RC_SVEC_SLOTS - 1);
    while (rk->svec_stamp[slot] == rk->stamp) {
        if (rk->svec_key[slot] == feat)
            return slot;
        slot = (slot + 1) & (RC_SVEC_SLOTS - 1);
    }
    rk->svec_stamp[slot] = rk->stamp;
    rk->svec_key[slot] = feat;
    rk->svec_val[slot] = rk->ltvec_val[slot] = 0;
    return slot;
}

static void index_svec(rc_ranker_t *rk, const rc_user_state_t *u)
{
    memset(rk->svec_bits, 0, sizeof(rk->svec_bits));
    for (uint8_t i = 0; i < u->n_svec; i++)
        rk->svec_val[svec_slot(rk, u->svec_feat[i])] = u->svec_w[i];
    for (uint8_t i = 0; i < u->n_ltvec; i++)
        rk->ltvec_val[svec_slot(rk, u->ltvec_feat[i])] = u->ltvec_w[i];
}

/* The slot of `feat`, or -1 when neither vector has it. */
static int svec_find(const rc_ranker_t *rk, uint32_t feat)
{
    if (!(rk->svec_bits[(feat >> 6) & 15] & (1ull << (feat & 63))))
        return -1;
    uint32_t slot = (feat * 2654435761u) & (RC_SVEC_SLOTS - 1);
    while (rk->svec_stamp[slot] == rk->stamp) {
        if (rk->svec_key[slot] == feat)
            return (int)slot;
        slot = (slot + 1) & (RC_SVEC_SLOTS - 1);
    }
    return -1;
}

/* What directly followed the item in view (the successor model): candidates of the
 * sequential part like co-visitation's, explained by the item in view. */
static void gather_successors(rc_ranker_t *rk, const rc_user_state_t *u)
{
    const rc_engine_t *e = rk->e;
    const rc_recent_t *r = rc_user_recent(u, 0);
    rk->succ_max = 0;
    if (u->n_recent == 0 || r->w <= 0)
        return;
    uint32_t nn;
    const rc_neighbor_t *nb = rc_covisit_neighbors(&e->successor, r->item, &nn);
    if (nn > 0)
        rk->succ_max = nb[0].w; /* strongest first */
    for (uint32_t j = 0; j < nn; j++) {
        uint32_t c = nb[j].item;
        struct rc_scratch *x = c < e->catalog.n ? add_candidate(rk, c) : NULL;
        if (x == NULL)
            continue;
        x->succ = nb[j].w;
        if (x->covis_ref < 0)
            x->covis_ref = (int32_t)r->item;
    }
}

/* Neighbours of the user's most recent items, weighted by recency and by how strongly the
 * user acted on each; remembers the source that contributed most, for the reason. */
static void gather_covisit(rc_ranker_t *rk, const rc_user_state_t *u)
{
    const rc_engine_t *e = rk->e;
    uint8_t n = u->n_recent < RECENT_SOURCES ? u->n_recent : RECENT_SOURCES;
    uint32_t sources[RECENT_SOURCES] = {0};
    for (uint8_t d = 0; d < n; d++)
        sources[d] = rc_user_recent(u, d)->item;
    rc_covisit_prefetch(&e->covisit, sources, n, source_take(0));
    rc_covisit_prefetch(&e->successor, sources, n > 0 ? 1 : 0, RC_SUCCESSOR_NEIGHBORS);
    for (uint8_t d = 0; d < n; d++) {
        const rc_recent_t *r = rc_user_recent(u, d);
        if (r->w <= 0)
            continue;
        uint32_t nn;
        const rc_neighbor_t *nb = rc_covisit_neighbors(&e->covisit, r->item, &nn);
        if (nn == 0 || nb[0].w <= 0)
            continue;
        float max = nb[0].w; /* strongest first */
        float source_w = logf(1.0f + r->w) * powf(e->source_decay, (float)d);
        float floor = max * COVISIT_FLOOR;
        if (nn > source_take(d))
            nn = source_take(d);
        for (uint32_t j = 0; j < nn && nb[j].w >= floor; j++) {
            uint32_t c = nb[j].item;
            struct rc_scratch *x = c < e->catalog.n ? add_candidate(rk, c) : NULL;
            if (x == NULL)
                continue;
            float contrib = nb[j].w / max * source_w;
            if (contrib > x->covis_best) {
                x->covis_best = contrib;
                x->covis_ref = (int32_t)r->item;
            }
            x->covis_acc += contrib;
        }
    }
    gather_successors(rk, u);
}

static void gather_list(rc_ranker_t *rk, const uint32_t *items, uint32_t n, uint32_t take)
{
    const rc_engine_t *e = rk->e;
    for (uint32_t i = 0; i < n && i < take; i++)
        if (items[i] < e->catalog.n)
            add_candidate(rk, items[i]);
}

/* Items carrying the `rounds` strongest of `n` weighted features. */
static void gather_strongest(rc_ranker_t *rk, const uint32_t *feat, const float *w, uint8_t n,
                             int rounds, uint32_t per_feature)
{
    const rc_engine_t *e = rk->e;
    bool taken[RC_SVEC] = {false};
    for (int round = 0; round < rounds; round++) {
        int b = -1;
        for (uint8_t i = 0; i < n; i++)
            if (!taken[i] && w[i] > 0 && (b < 0 || w[i] > w[b]))
                b = i;
        if (b < 0)
            return;
        taken[b] = true;
        uint32_t count;
        const uint32_t *items = rc_features_items(&e->features, feat[b], &count);
        gather_list(rk, items, count, per_feature);
    }
}

/* Items carrying the user's strongest content features (a search's words, the tags and
 * categories of what they did in this session, then over time): what the content model
 * can recommend. */
static void gather_features(rc_ranker_t *rk, const rc_user_state_t *u, uint32_t per_feature)
{
    gather_strongest(rk, u->svec_feat, u->svec_w, u->n_svec, FEATURES_TAKE, per_feature);
    gather_strongest(rk, u->ltvec_feat, u->ltvec_w, u->n_ltvec, LT_FEATURES_TAKE, per_feature);
}

/* What boosts lift (rules.h): the items, the top of the categories, the items of the tags. */
static void gather_lifted(rc_ranker_t *rk, uint32_t category_take)
{
    const rc_engine_t *e = rk->e;
    const rc_rules_t *r = &e->rules;
    const rc_trending_t *t = &e->trending;
    gather_list(rk, r->lifted, r->n_lifted, r->n_lifted);
    for (uint32_t i = 0; i < r->n_lifted_categories; i++) {
        uint32_t cat = (uint32_t)r->lifted_categories[i];
        if (cat < t->n_categories)
            gather_list(rk, t->by_category + (size_t)cat * RC_TRENDING_PER_CAT,
                        t->n_by_category[cat], category_take);
    }
    for (uint32_t i = 0; i < r->n_lifted_tags; i++) {
        uint32_t n;
        const uint32_t *items = rc_features_items(&e->features, r->lifted_tags[i], &n);
        gather_list(rk, items, n, FEATURE_TAKE);
    }
}

/* The segment of the user's locale, or -1 while it has none (trending.h). */
static int locale_segment(const rc_trending_t *t, const rc_user_state_t *u)
{
    return rc_trending_locale_segment(t, u->locale);
}

/* The candidates that owe nothing to co-visitation: the trending lists of the user's
 * context, the items of the user's strongest content features, the top of the user's
 * categories and of the subscription's, what boosts lift. `wide`: a second pass when filters
 * left fewer than K candidates: whole top lists. */
static void gather_others(rc_ranker_t *rk, bool wide)
{
    const rc_engine_t *e = rk->e;
    const rc_user_state_t *u = rk->u;
    const rc_rank_spec_t *s = rk->spec;
    const rc_trending_t *t = &e->trending;
    uint32_t trending_take = wide ? RC_TRENDING_TOP : TRENDING_TAKE;
    uint32_t category_take = wide ? RC_TRENDING_PER_CAT : CATEGORY_TAKE;
    int daypart = rk->daypart;
    int loc = locale_segment(t, u);
    int segs[4] = {RC_SEG_DEVICE(u->device), RC_SEG_DAYPART(daypart), RC_SEG_ALL, loc};
    for (int i = 0; i < (loc >= 0 ? 4 : 3); i++)
        gather_list(rk, t->top[segs[i]], t->n_top[segs[i]], trending_take);
    gather_features(rk, u, wide ? RC_FEATURE_LIST : FEATURE_TAKE);

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
            gather_list(rk, t->by_category + (size_t)best[i] * RC_TRENDING_PER_CAT,
                        t->n_by_category[best[i]], category_take);
    if (s->category > 0 && (uint32_t)s->category < t->n_categories)
        gather_list(rk, t->by_category + (size_t)s->category * RC_TRENDING_PER_CAT,
                    t->n_by_category[s->category], RC_TRENDING_PER_CAT);
    gather_lifted(rk, category_take);
}

/* Gathers the first pass's other candidates if they are still pending; returns where the
 * new ones start in rk->cands. They come after every candidate with co-visitation, as if
 * gathered at once: the same set, in the same order where MAX_CANDIDATES cuts it. */
static uint32_t gather_rest(rc_ranker_t *rk)
{
    uint32_t from = rk->n_cands;
    if (rk->rest_pending) {
        rk->rest_pending = false;
        gather_others(rk, false);
    }
    return from;
}

/* The first pass gathers the neighbours of the user's recent items, and the rest only when
 * scoring finds that they may reach the list (score_candidates); the wide pass gathers the
 * rest first, then whole top lists. */
static void gather_candidates(rc_ranker_t *rk, bool wide)
{
    if (!wide) {
        gather_covisit(rk, rk->u);
        rk->n_covis = rk->n_cands;
        rk->covis_first = true;
        rk->rest_pending = true;
        return;
    }
    gather_rest(rk);
    gather_others(rk, true);
}

typedef struct {
    float session, longterm; /* L2 norms of the user's two content vectors */
} norms_t;

static float norm_of(const float *w, uint8_t n)
{
    float sq = 0;
    for (uint8_t i = 0; i < n; i++)
        sq += w[i] * w[i];
    return sqrtf(sq);
}

static norms_t user_norms(const rc_user_state_t *u)
{
    return (norms_t){norm_of(u->svec_w, u->n_svec), norm_of(u->ltvec_w, u->n_ltvec)};
}

/* Cosine of the item's feature vector with the user's content vectors (indexed): the
 * session's counts most; the long-term profile's alone speaks for a new session. */
static float content_score(const rc_ranker_t *rk, const rc_item_t *it, norms_t un)
{
    if (it->n_feat == 0 || (un.session <= 0 && un.longterm <= 0))
        return 0;
    float dot_s = 0, dot_l = 0;
    for (uint8_t f = 0; f < it->n_feat; f++) {
        int slot = svec_find(rk, it->feat[f]);
        if (slot < 0)
            continue;
        float fw = (f == 0 && it->category) ? 2.0f : 1.0f;
        dot_s += fw * rk->svec_val[slot];
        dot_l += fw * rk->ltvec_val[slot];
    }
    float cs = un.session > 0 ? dot_s / (it->feat_norm * un.session) : 0;
    float cl = un.longterm > 0 ? dot_l / (it->feat_norm * un.longterm) : 0;
    float c = un.session <= 0 ? cl : un.longterm <= 0 ? cs : 0.65f * cs + 0.35f * cl;
    return c > 0 ? (c < 1 ? c : 1) : 0; /* a cosine; 1 also bounds an item with a feature twice */
}

static bool passes_rules(const rc_item_t *it, const rc_rank_spec_t *s)
{
    if (!rc_item_recommendable(it))
        return false;
    if (s->category >= 0 && it->category != (uint32_t)s->category)
        return false;
    if (s->price_min >= 0 && !(it->price >= 0 && it->price >= s->price_min))
        return false;
    if (s->price_max >= 0 && !(it->price >= 0 && it->price <= s->price_max))
        return false;
    return true;
}

static bool better(const rc_ranked_t *a, const rc_ranked_t *b)
{
    return a->score > b->score || (a->score == b->score && a->item < b->item);
}

static bool better_scored(const scored_t *a, const scored_t *b)
{
    return a->score > b->score || (a->score == b->score && a->item < b->item);
}

/* Best first, in place. Shell sort (Ciura's gaps) rather than qsort(): glibc's qsort is a
 * merge sort that mallocs its buffer, and the arrays here are at most MAX_CANDIDATES. One
 * body for both kinds of entries, each with its own order (the same: score, then item). */
static const uint32_t shell_gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
#define SHELL_SORT(type, r, n, better_fn)                                                          \
    do {                                                                                           \
        for (size_t g = 0; g < sizeof(shell_gaps) / sizeof(shell_gaps[0]); g++) {                  \
            uint32_t gap = shell_gaps[g];                                                          \
            for (uint32_t i = gap; i < (n); i++) {                                                 \
                type x = (r)[i];                                                                   \
                uint32_t j = i;                                                                    \
                while (j >= gap && better_fn(&x, &(r)[j - gap])) {                                 \
                    (r)[j] = (r)[j - gap];                                                         \
                    j -= gap;                                                                      \
                }                                                                                  \
                (r)[j] = x;                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void sort_ranked(rc_ranked_t *r, uint32_t n)
{
    SHELL_SORT(rc_ranked_t, r, n, better);
}

static void sort_scored(scored_t *r, uint32_t n)
{
    SHELL_SORT(scored_t, r, n, better_scored);
}

/* Moves the `m` best of r[0..n) to its front, in no order (quickselect, O(n) on average). */
static void select_best(scored_t *r, uint32_t n, uint32_t m)
{
    uint32_t lo = 0, hi = n;
    while (hi - lo > 1) {
        scored_t pivot = r[lo + (hi - lo) / 2];
        uint32_t i = lo, j = hi - 1;
        while (i <= j) {
            while (better_scored(&r[i], &pivot))
                i++;
            while (better_scored(&pivot, &r[j]))
                j--;
            if (i <= j) {
                scored_t t = r[i];
                r[i] = r[j];
                r[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (m <= j)
            hi = j + 1;
        else if (m >= i)
            lo = i;
        else
            return;
    }
}

/* What scoring a candidate needs of the user and the models, worked out once a rank. */
typedef struct {
    const rc_blend_t *b;
    norms_t unorm;
    /* The sequential part of a candidate is k_covis * covis_acc + k_succ * succ: each model's
     * evidence over its best (co-visitation's best candidate, the strongest successor of the
     * item in view), mixed by blend.successor, the successor model's share. */
    float k_covis, k_succ;
    int segs[4];
    int seg_hi; /* the highest of segs[] (RC_SEG_ALL, the lowest, is segs[2]) */
    float w_seg[4];
    float pop_scale;
    const rc_rank_spec_t *spec;
} scoring_t;

static void scoring_begin(const rc_ranker_t *rk, const rc_user_state_t *u, const rc_rank_spec_t *s,
                          int daypart, scoring_t *x)
{
    const rc_engine_t *e = rk->e;
    const rc_trending_t *t = &e->trending;
    x->b = s->blend ? s->blend : &e->blend;
    x->spec = s;
    x->unorm = user_norms(u);
    float covis_max = 0;
    for (uint32_t i = 0; i < rk->n_cands; i++)
        if (rk->scratch[rk->cands[i]].covis_acc > covis_max)
            covis_max = rk->scratch[rk->cands[i]].covis_acc;
    /* The share is the engine's, learned from traffic (engine_op.c, learn_blend), whatever
     * blend the list has: an experiment variant sets the four parts' weights, not how the
     * sequential part divides. */
    float a = e->blend.successor;
    x->k_covis = covis_max > 0 ? (1 - a) / covis_max : 0;
    x->k_succ = rk->succ_max > 0 ? a / rk->succ_max : 0;
    /* Each trending part is a segment's score over its leader's: the divisions are done
     * once here, not per candidate. With a locale, the market counts most. */
    int loc_seg = locale_segment(t, u);
    bool loc = loc_seg >= 0;
    int segs[4] = {RC_SEG_DEVICE(u->device), RC_SEG_DAYPART(daypart), RC_SEG_ALL,
                   loc ? loc_seg : RC_SEG_ALL};
    static const float share[2][4] = {{0.5f, 0.2f, 0.3f, 0}, {0.3f, 0.15f, 0.2f, 0.35f}};
    x->seg_hi = RC_SEG_ALL;
    for (int i = 0; i < 4; i++) {
        x->segs[i] = segs[i];
        if (segs[i] > x->seg_hi)
            x->seg_hi = segs[i];
        x->w_seg[i] = t->top_max[segs[i]] > 0 ? share[loc][i] / t->top_max[segs[i]] : 0;
    }
    x->pop_scale = t->popularity_max > 0 ? x->b->popular / t->popularity_max : 0;
}

/* The sequential part (co-visitation and successors): known when a candidate is gathered,
 * so it is a candidate's bound (score_candidates). */
static float covisit_part(const scoring_t *x, const struct rc_scratch *cand)
{
    return x->b->covisit * (x->k_covis * cand->covis_acc + x->k_succ * cand->succ);
}

/* The score of a candidate (its slot) into *r; false when the rules leave it out. Content,
 * trending and popularity are each at most 1 before their blend weight, so a candidate's
 * score is bounded by what gathering already knows (score_candidates). Inlined into the
 * loop that scores every candidate of a rank. */
static inline __attribute__((always_inline)) bool
score_one(const rc_ranker_t *rk, const scoring_t *x, struct rc_scratch *cand, scored_t *r)
{
    const rc_engine_t *e = rk->e;
    uint32_t c = cand->item;
    const rc_trending_t *t = &e->trending;
    const rc_blend_t *b = x->b;
    const rc_item_t *it = &e->catalog.items[c];
    if (!passes_rules(it, x->spec))
        return false;
    float part[RC_SRC_COUNT];
    part[RC_SRC_COVISIT] = covisit_part(x, cand);
    part[RC_SRC_CONTENT] = b->content * content_score(rk, it, x->unorm);
    /* The segment adding most to the trending part is the one its reason names. */
    float trend = 0, seg_best = 0;
    int seg_ref = RC_SEG_ALL;
    const float *sc = rc_trending_scores(t, c);
    for (int j = 0; sc != NULL && j < 4; j++) {
        float v = x->w_seg[j] * sc[x->segs[j]];
        trend += v;
        if (v > seg_best) {
            seg_best = v;
            seg_ref = x->segs[j];
        }
    }
    part[RC_SRC_TRENDING] = b->trending * (trend < 1 ? trend : 1);
    float pop = x->pop_scale * it->popularity; /* an item upserted since the refresh may lead */
    part[RC_SRC_POPULAR] = pop < b->popular ? pop : b->popular;
    uint8_t src = RC_SRC_POPULAR;
    float score = 0;
    for (int p = 0; p < RC_SRC_COUNT; p++) {
        score += part[p];
        if (part[p] > part[src])
            src = (uint8_t)p;
    }
    score *= rc_rules_boost(&e->rules, c);
    cand->src = src;
    cand->seg_ref = (int8_t)seg_ref;
    *r = (scored_t){score, c};
    return true;
}

/* Asks early for what scoring the candidate in `slot` reads: its item, scattered over the
 * catalog, and its trending scores (which may straddle two lines: both ends of those read).
 * Inlined by force: gcc takes a function whose only effect is a prefetch for a pure one,
 * and drops the calls whose result is unused (all of them). */
static inline __attribute__((always_inline)) void
prefetch_candidate(const rc_ranker_t *rk, const scoring_t *x, uint32_t slot)
{
    const rc_engine_t *e = rk->e;
    uint32_t item = rk->scratch[slot].item;
    __builtin_prefetch(&e->catalog.items[item]);
    const float *sc = rc_trending_scores(&e->trending, item);
    if (sc != NULL) {
        __builtin_prefetch(sc);
        __builtin_prefetch(sc + x->seg_hi);
    }
}

/* Moves the `m` candidates of strongest co-visitation to the front of rk->cands, in no
 * order (quickselect, O(n) on average): their scores are likely the best, so the least of
 * them is a high threshold for the rest (score_candidates). Only those with co-visitation
 * compete: gathering adds them first (rk->n_covis), until this reorders them. The order of
 * candidates changes nothing else: ties between scores are broken by item. */
static void strongest_first(rc_ranker_t *rk, const scoring_t *x, uint32_t m)
{
    uint32_t *c = rk->cands, lo = 0, hi = rk->covis_first ? rk->n_covis : rk->n_cands;
    rk->covis_first = false;
    if (hi <= m)
        return;
    float acc[MAX_CANDIDATES]; /* the keys side by side, not one slot apart */
    for (uint32_t i = 0; i < hi; i++)
        acc[i] = covisit_part(x, &rk->scratch[c[i]]);
    while (hi - lo > 1) {
        float pivot = acc[lo + (hi - lo) / 2];
        uint32_t i = lo, j = hi - 1;
        while (i <= j) {
            while (acc[i] > pivot)
                i++;
            while (pivot > acc[j])
                j--;
            if (i <= j) {
                float ta = acc[i];
                acc[i] = acc[j];
                acc[j] = ta;
                uint32_t tc = c[i];
                c[i] = c[j];
                c[j] = tc;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (m <= j)
            hi = j + 1;
        else if (m >= i)
            lo = i;
        else
            return;
    }
}

/* Scores the candidates that pass the rules into rk->scored; returns how many. Only the
 * best keep_of(k) can reach a list (top_k), so once that many are scored, a candidate whose
 * bound is under the least of those first ones cannot, and is only put aside in
 * rk->deferred (top_k scores those when it needs every candidate): its item and trending
 * scores, scattered over the catalog, are not read, nor its content compared. The
 * candidates of strongest co-visitation are scored first, so the first ones are strong:
 * with random traffic on 100k items, 60 % of the candidates go unscored (most of them never
 * gathered). The list is the same as scoring them all (test_rank_bound_exact,
 * unit.ranker_reference). The threshold is not raised as better scores come: keeping the
 * best in a heap cost more than it saved (bench/eval engine time), and so did scoring the
 * strongest 3 k first to take the best 1.5 k of them (bench/run-engine.sh). */
static uint32_t score_candidates(rc_ranker_t *rk, const scoring_t *x)
{
    const rc_engine_t *e = rk->e;
    const rc_blend_t *b = x->b;
    uint32_t keep = keep_of(x->spec->k);
    bool bound = !rk->exhaustive;
    if (bound)
        strongest_first(rk, x, keep);
    else
        gather_rest(rk);
    /* A margin over float rounding: the bound must never be below the score. */
    float rest = b->content + b->trending + b->popular;
    float boost_hi = rc_rules_boost_max(&e->rules) * 1.0001f;
    float least = 0; /* the least of the first `keep` scores */
    uint32_t n = 0, i = 0;
    rk->n_deferred = 0;
    /* The first `keep` that pass the rules (every candidate without the bound), gathering
     * the rest when those with co-visitation are too few. */
    uint32_t first = bound ? keep : UINT32_MAX;
    for (uint32_t j = 0; j < PREFETCH_AHEAD && j < rk->n_cands; j++)
        prefetch_candidate(rk, x, rk->cands[j]);
    for (; n < first; i++) {
        if (i == rk->n_cands && (!rk->rest_pending || gather_rest(rk) == rk->n_cands))
            break;
        if (i + PREFETCH_AHEAD < rk->n_cands)
            prefetch_candidate(rk, x, rk->cands[i + PREFETCH_AHEAD]);
        if (!score_one(rk, x, &rk->scratch[rk->cands[i]], &rk->scored[n]))
            continue;
        if (n == 0 || rk->scored[n].score < least)
            least = rk->scored[n].score;
        n++;
    }
    /* A candidate without co-visitation scores at most `rest` (times the largest boost):
     * when that cannot reach the least of the first `keep`, none of them is even gathered. */
    if (rk->rest_pending && !((0.0f + rest) * boost_hi < least))
        gather_rest(rk);
    if (i == rk->n_cands)
        return n;
    /* The rest: those whose bound reaches `least` to the front of what is left of
     * rk->cands, the others put aside (and after them, so rk->cands keeps every candidate).
     * Only the lines of the candidates scored are asked for. */
    uint32_t to = i;
    for (uint32_t j = i; j < rk->n_cands; j++) {
        uint32_t slot = rk->cands[j];
        if ((covisit_part(x, &rk->scratch[slot]) + rest) * boost_hi < least)
            rk->deferred[rk->n_deferred++] = slot;
        else
            rk->cands[to++] = slot;
    }
    memcpy(rk->cands + to, rk->deferred, rk->n_deferred * sizeof(*rk->cands));
    for (uint32_t j = i; j < i + PREFETCH_AHEAD && j < to; j++)
        prefetch_candidate(rk, x, rk->cands[j]);
    for (; i < to; i++) {
        if (i + PREFETCH_AHEAD < to)
            prefetch_candidate(rk, x, rk->cands[i + PREFETCH_AHEAD]);
        n += score_one(rk, x, &rk->scratch[rk->cands[i]], &rk->scored[n]);
    }
    return n;
}

/* Scores the candidates score_candidates() put aside, and those it did not gather, after
 * the n scored; returns the new count. */
static uint32_t score_deferred(rc_ranker_t *rk, const scoring_t *x, uint32_t n)
{
    for (uint32_t j = gather_rest(rk); j < rk->n_cands; j++)
        rk->deferred[rk->n_deferred++] = rk->cands[j];
    for (uint32_t i = 0; i < rk->n_deferred; i++)
        n += score_one(rk, x, &rk->scratch[rk->deferred[i]], &rk->scored[n]);
    rk->n_deferred = 0;
    return n;
}

/* A scored candidate as a list shows it: with the source of its score and the item or
 * segment that explains it (from its slot). */
static rc_ranked_t ranked_of(const rc_ranker_t *rk, const scored_t *s)
{
    const struct rc_scratch *x = slot_of(rk, s->item);
    int64_t ref = x->src == RC_SRC_COVISIT    ? x->covis_ref
                  : x->src == RC_SRC_TRENDING ? x->seg_ref
                                              : -1;
    return (rc_ranked_t){s->item, s->score, x->src, RC_EVENT_KIND_COUNT, ref};
}

/* Greedy top-K over r[0..n) (best first) with at most `cap` items per category; when too
 * few categories are available, the capped items fill the remaining places in score order.
 * Sets *filled when the greedy pass alone found K items: then the K are those of the first
 * items of r, and no item after them could have changed the list. */
static uint32_t diversify(const rc_ranker_t *rk, const scored_t *r, uint32_t n, uint32_t k,
                          rc_ranked_t *out, bool *filled, bool *overfull)
{
    const rc_engine_t *e = rk->e;
    uint32_t cap = (k * 6 + 9) / 10;
    if (cap < 2)
        cap = 2;
    uint32_t taken = 0;
    uint16_t counts[64] = {0}; /* hashed category buckets: a collision only tightens the cap */
    bool used[MAX_CANDIDATES];
    memset(used, 0, n * sizeof(bool));
    for (uint32_t i = 0; i < n && taken < k; i++) {
        uint16_t cat = e->catalog.items[r[i].item].category;
        if (cat != 0 && counts[cat % 64] >= cap)
            continue;
        counts[cat % 64]++;
        used[i] = true;
        out[taken++] = ranked_of(rk, &r[i]);
    }
    *filled = taken == k;
    *overfull = false;
    for (uint32_t i = 0; i < n && taken < k; i++) {
        if (!used[i]) {
            out[taken++] = ranked_of(rk, &r[i]);
            *overfull = true;
        }
    }
    return taken;
}

/* Gives the last place of a list of `spec->k` (or a free place) to the new item closest to
 * the user's content vector (ties: the newest), so new items gather the data the other
 * models need, at a bounded cost: one place per list of 5 or more. The item keeps the score
 * of the place it takes, so the list stays best first. */
static uint32_t explore(rc_ranker_t *rk, const rc_user_state_t *u, const rc_rank_spec_t *spec,
                        rc_ranked_t *out, uint32_t k)
{
    const rc_engine_t *e = rk->e;
    if (!e->explore_new || e->n_explore == 0 || spec->k < 5)
        return k;
    norms_t unorm = user_norms(u);
    int best = -1;
    float best_sim = -1;
    for (uint32_t i = 0; i < e->n_explore; i++) {
        uint32_t item = e->explore_pool[i];
        const rc_item_t *it = &e->catalog.items[item];
        if (item >= e->catalog.n || is_blocked(rk, item) || !passes_rules(it, spec))
            continue;
        bool listed = false;
        for (uint32_t j = 0; j < k && !listed; j++)
            listed = out[j].item == item;
        float sim = content_score(rk, it, unorm);
        if (!listed && sim > best_sim) {
            best = (int)item;
            best_sim = sim;
        }
    }
    if (best < 0)
        return k;
    uint32_t place;
    float score;
    if (k < spec->k) { /* a free place after the last: the list gets longer */
        place = k++;
        score = place > 0 ? out[place - 1].score : 0;
    } else { /* the last place, at its score */
        place = k - 1;
        score = out[place].score;
    }
    out[place] = (rc_ranked_t){(uint32_t)best, score, RC_SRC_EXPLORE, RC_EVENT_KIND_COUNT, -1};
    return k;
}

static bool pin_applies(const rc_ranker_t *rk, const rc_pin_t *p, const rc_rank_spec_t *spec)
{
    const rc_engine_t *e = rk->e;
    if (p->idx < 0 || (uint64_t)p->idx >= e->catalog.n || p->position > spec->k ||
        (p->surface[0] && (spec->surface == NULL || strcmp(p->surface, spec->surface) != 0)))
        return false;
    /* Only where the item could be shown at all: available, not excluded or already seen
     * by this user, within the subscription's filters. */
    return !is_blocked(rk, (uint32_t)p->idx) && passes_rules(&e->catalog.items[p->idx], spec);
}

/* Puts the pinned items of this surface at their places (pins are few, and checked in the
 * order of their places). Each takes the score of the place it takes, so the list stays
 * best first; a list that was full drops its last item. */
static uint32_t pin(const rc_ranker_t *rk, const rc_rank_spec_t *spec, rc_ranked_t *out, uint32_t k)
{
    const rc_engine_t *e = rk->e;
    const rc_rules_t *r = &e->rules;
    bool applies[RC_PINS_MAX];
    for (uint32_t i = 0; i < r->n_pins; i++) {
        applies[i] = pin_applies(rk, &r->pins[i], spec);
        /* Out of wherever the ranker put it, first. */
        for (uint32_t j = 0; applies[i] && j < k; j++) {
            if (out[j].item == (uint32_t)r->pins[i].idx) {
                memmove(out + j, out + j + 1, (k - j - 1) * sizeof(*out));
                k--;
                break;
            }
        }
    }
    for (uint32_t place = 1; place <= spec->k; place++) {
        for (uint32_t i = 0; i < r->n_pins; i++) {
            if (!applies[i] || r->pins[i].position != place)
                continue;
            uint32_t at = place - 1 < k ? place - 1 : k;
            float score = at < k ? out[at].score : at > 0 ? out[at - 1].score : 0;
            if (k == spec->k)
                k--;
            memmove(out + at + 1, out + at, (k - at) * sizeof(*out));
            out[at] = (rc_ranked_t){(uint32_t)r->pins[i].idx, score, RC_SRC_PINNED,
                                    RC_EVENT_KIND_COUNT, -1};
            k++;
        }
    }
    return k;
}

/* The diverse top K of the n scored candidates, best first. Usually the best keep_of(K)
 * hold a diverse top K, and only those need sorting. When the category cap leaves the greedy
 * pass short of K there, the answer lies further down: the candidates put aside are scored
 * (all below those best ones), and the sorted front of the list doubles until the greedy
 * pass fills K in it, or it holds every candidate. `overfull`: the cap could not be kept
 * (too few categories). */
static uint32_t top_k(rc_ranker_t *rk, const scoring_t *x, uint32_t n, rc_ranked_t *out,
                      bool *overfull)
{
    const rc_rank_spec_t *spec = x->spec;
    uint32_t keep = keep_of(spec->k);
    bool filled = false;
    uint32_t k = 0, sorted = 0; /* rk->scored[0..sorted) are the best, in order */
    if (n >= keep) {
        if (n > keep)
            select_best(rk->scored, n, keep);
        sort_scored(rk->scored, keep);
        sorted = keep;
        k = diversify(rk, rk->scored, keep, spec->k, out, &filled, overfull);
    }
    if (!filled)
        n = score_deferred(rk, x, n);
    while (!filled && sorted < n) {
        uint32_t next = sorted == 0 || sorted * 2 >= n ? n : sorted * 2;
        if (next < n)
            select_best(rk->scored + sorted, n - sorted, next - sorted);
        sort_scored(rk->scored + sorted, next - sorted);
        sorted = next;
        k = diversify(rk, rk->scored, sorted, spec->k, out, &filled, overfull);
    }
    /* Sorting again after diversity keeps best-first order within the chosen K. */
    sort_ranked(out, k);
    if (spec->category >= 0)
        *overfull = false; /* one category asked for: the cap cannot hold, nor should it */
    return k;
}

typedef struct {
    uint32_t item;
    float value;
    uint32_t at_s;
    uint8_t kind; /* of the newest interaction with it, as at_s */
} session_item_t;

/* The items of the user's session the list may show again (spec->repeat) with what the user
 * did with each: into `si`, at most RC_RECENT; the item in view, if it may come back, first
 * with *has_current. Returns how many. */
static uint32_t session_items(const rc_ranker_t *rk, const rc_user_state_t *u,
                              const rc_rank_spec_t *spec, session_item_t *si, bool *has_current)
{
    const rc_engine_t *e = rk->e;
    uint32_t current = rc_user_recent(u, 0)->item, n = 0;
    *has_current = false;
    float recency = 1.0f; /* e->repeat_recency^d */
    for (uint8_t d = 0; d < u->n_recent; d++, recency *= e->repeat_recency) {
        const rc_recent_t *r = rc_user_recent(u, d);
        if (r->item >= e->catalog.n || r->w <= 0 || rc_user_is_excluded(u, r->item) ||
            !passes_rules(&e->catalog.items[r->item], spec))
            continue;
        if (r->item == current && (d > 0 || spec->repeat != RC_REPEAT_ALLOWED))
            continue; /* the item in view: its own chance, below, or none */
        uint32_t i = 0;
        while (i < n && si[i].item != r->item)
            i++;
        if (i == n)
            si[n++] = (session_item_t){r->item, 0, r->at_s, r->kind};
        si[i].value += r->w * recency;
        *has_current |= d == 0;
    }
    return n;
}

/* Places the items of the user's session (spec->repeat) and the new items of wide[0..k) in
 * one list by the chance that each is the user's next interaction, into out (at most
 * spec->k). The session's share is learned online (the engine's repeat_same and repeat_back
 * for the device): the item in view gets repeat_same; the other items of the session split
 * repeat_back by what the user did with them (weight and recency) times how likely each is
 * to come next by the same evidence as a new item (its score in `wide`, where block_items()
 * left it a candidate; the weakest listed score for one that is not listed), a product of
 * the two experts; plus, where other sessions show it as a successor of the item in view,
 * the successor model's chance for it times its learned share (returns.h); the new items
 * share the rest in proportion to score^new_sharpness. So a session item that usually
 * follows the item in view leads the returns, and where users are seen to go back to it,
 * comes before new items, while how often users return at all stays what traffic says
 * (rarely on baskets, a third of clicks). The list's scores become those chances. Returns
 * its length. */
static uint32_t merge_repeats(rc_ranker_t *rk, const rc_user_state_t *u, const rc_rank_spec_t *spec,
                              int64_t wall_ms, const rc_ranked_t *wide, uint32_t k,
                              rc_ranked_t *out)
{
    const rc_engine_t *e = rk->e;
    session_item_t si[RC_RECENT];
    float seq[RC_RECENT] = {0};
    bool has_current = false;
    uint32_t n_si = u->n_recent > 0 ? session_items(rk, u, spec, si, &has_current) : 0;
    rc_return_chances_t ch;
    rc_return_chances(e, u, &ch);
    float p_same = ch.same, p_back = ch.habit;
    float p_new = 1.0f - p_same - p_back - ch.seq * ch.evidence.total;
    p_new = p_new < RC_RETURN_NEW_MIN ? RC_RETURN_NEW_MIN : p_new;
    float new_total = 0, back_total = 0, floor = 0;
    uint32_t n = 0;
    for (uint32_t j = 0; j < k; j++) {
        float score = wide[j].score > 0 ? wide[j].score : 0;
        if (score > 0 && (floor == 0 || score < floor))
            floor = score;
        uint32_t i = 0;
        while (i < n_si && si[i].item != wide[j].item)
            i++;
        if (i < n_si) {
            seq[i] = score;
            continue;
        }
        rk->ranked[n] = wide[j];
        rk->ranked[n].score = score > 0 ? powf(score, e->new_sharpness) : 0;
        new_total += rk->ranked[n++].score;
    }
    if (floor == 0)
        floor = 1.0f;
    for (uint32_t j = 0; j < n; j++)
        rk->ranked[j].score = new_total > 0 ? p_new * rk->ranked[j].score / new_total : 0;
    for (uint32_t i = has_current ? 1 : 0; i < n_si; i++) {
        si[i].value *= floor + seq[i];
        back_total += si[i].value;
    }
    int64_t now_s = wall_ms / 1000;
    for (uint32_t i = 0; i < n_si; i++) {
        float p = has_current && i == 0 ? p_same
                  : back_total > 0      ? p_back * si[i].value / back_total
                                        : 0;
        p += has_current && i == 0 ? 0 : rc_return_seq_chance(&ch, si[i].item);
        int64_t age_s = si[i].at_s > 0 && now_s >= si[i].at_s ? now_s - si[i].at_s : -1;
        rk->ranked[n++] = (rc_ranked_t){si[i].item, p, RC_SRC_REPEAT, si[i].kind, age_s};
    }
    sort_ranked(rk->ranked, n);
    n = n < spec->k ? n : spec->k;
    memcpy(out, rk->ranked, n * sizeof(*out));
    return n;
}

uint32_t rc_ranker_rank(rc_ranker_t *rk, const rc_engine_t *e, const rc_user_state_t *u,
                        const rc_rank_spec_t *spec, int64_t wall_ms, rc_ranked_t *out)
{
    if (spec->k == 0)
        return 0;
    rk->e = e;
    if (++rk->stamp == 0) {
        memset(rk->scratch, 0, CAND_SLOTS * sizeof(*rk->scratch));
        memset(rk->svec_stamp, 0, sizeof(rk->svec_stamp));
        rk->stamp = 1;
    }
    rk->n_cands = 0;
    rk->u = u;
    /* A list that may show the session again is first made longer by the session's length,
     * so that session items among the candidates do not take the places of new ones. */
    rc_rank_spec_t wide_spec = *spec;
    const uint32_t k_asked = spec->k;
    rc_ranked_t *list = out;
    if (spec->repeat != RC_REPEAT_NEVER) {
        uint32_t k_wide = spec->k + u->n_recent;
        wide_spec.k = k_wide < MAX_CANDIDATES ? k_wide : MAX_CANDIDATES;
        list = rk->wide;
    }
    spec = &wide_spec;
    rk->spec = spec;
    rk->daypart = rc_daypart(wall_ms, u->tz_offset_min);
    int daypart = rk->daypart;
    block_items(rk, u, spec);
    index_svec(rk, u);
    gather_candidates(rk, false);
    scoring_t x;
    scoring_begin(rk, u, spec, daypart, &x);
    uint32_t n = score_candidates(rk, &x);
    bool overfull = false;
    /* Too few for the list asked for, not for the longer first list: a session item among
     * the candidates costs a new item's place only when candidates are that scarce. */
    uint32_t k = n < k_asked ? 0 : top_k(rk, &x, n, list, &overfull);
    if (n < k_asked || overfull) {
        /* Filters (or a small catalog) left too few, or too few categories to respect the
         * diversity cap: look further down every list. The candidates of the first pass
         * stay; scoring runs again over all of them. */
        gather_candidates(rk, true);
        scoring_begin(rk, u, spec, daypart, &x);
        n = score_candidates(rk, &x);
        k = top_k(rk, &x, n, list, &overfull);
    }
    if (list != out) {
        wide_spec.k = k_asked;
        k = merge_repeats(rk, u, spec, wall_ms, list, k, out);
    }
    return pin(rk, spec, out, explore(rk, u, spec, out, k));
}
