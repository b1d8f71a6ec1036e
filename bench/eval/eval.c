/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-eval: offline next-item evaluation of the engine against session-based
 * baselines, on any data set in a supported format (see bench/eval/README.md). Sessions are
 * replayed in time order. Train sessions are learned; in a test session every event is
 * first predicted (each method ranks with what it knows so far) and then learned from. */
#include "eval.h"
#include "engine/ranker.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* The rule baselines come last, in rules_kind_t order, and run only when asked for. */
enum {
    M_ENGINE = 0,
    M_POP,
    M_COOC,
    M_SKNN,
    M_VSKNN,
    M_STAN,
    M_VSTAN,
    M_MARKOV,
    M_SR,
    M_AR,
    M_COUNT
};
/* The default set ends before V-STAN (as costly as STAN; on request). */
#define M_DEFAULT_COUNT M_VSTAN
static const char *const method_keys[M_COUNT] = {"engine", "pop",   "cooc",   "sknn", "vsknn",
                                                 "stan",   "vstan", "markov", "sr",   "ar"};
static const char *const method_names[M_COUNT] = {"rankcast engine",
                                                  "POP",
                                                  "last-item co-occurrence",
                                                  "SKNN",
                                                  "V-SKNN",
                                                  "STAN",
                                                  "V-STAN",
                                                  "first-order Markov",
                                                  "SR (sequential rules)",
                                                  "AR (association rules)"};
/* --repeat: the engine's rc_repeat_t, by value. */
static const char *const repeat_names[RC_REPEAT_COUNT] = {"never", "not_current", "allowed"};

typedef struct view_metrics {
    uint64_t n, hit10, hit20;
    double rr_sum, ndcg_sum;
} view_metrics_t;

typedef struct method_metrics {
    /* The same lists scored over every target, over the targets new to the session, and over
     * those returning to one of its items (a third of next events in public click data). */
    view_metrics_t all, fresh, back;
    float *us; /* per prediction: engine = learn + rank, baselines = rank */
    uint64_t n_us, cap_us;
    uint8_t *shown; /* per item: appeared in a top-20 */
    /* Popularity@20 as session-rec computes it (evaluation/metrics/popularity.py): per list,
     * the mean of its items' training events over the most frequent item's, summed. */
    double pop_sum;
    uint64_t n_lists;
} method_metrics_t;

typedef struct options {
    const char *catalog, *prepared, *train, *test, *events, *results_dir, *label, *dump_ranks;
    rc_event_kind_t kind;
    double test_fraction, refresh_s, test_sample;
    int64_t session_gap_ms;
    bool methods[M_COUNT];
    bool targets_all; /* --targets all: session-rec's protocol (README, Protocol) */
    uint8_t repeat;   /* rc_repeat_t for the engine's rank spec */
    uint32_t max_items, neighbors;
    double covisit_half_life_s;
    rc_blend_t blend;
    bool blend_set, catalog_prior;
    double source_decay, backward_weight, pair_decay, repeat_recency, new_sharpness, blend_rate,
        successor_max;
    knn_params_t sknn, vsknn, stan, vstan;
    uint32_t sr_steps;
    int sr_weighting; /* SR_W_* */
} options_t;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: rankcast-eval INPUT [options]\n"
            "input (one of):\n"
            "  --prepared PATH        split<TAB>ts_ms<TAB>items (bench/eval/prepare.py)\n"
            "  --train PATH --test PATH  session-rec TSV (header SessionId, ItemId, Time in s)\n"
            "  --events PATH          rankcast JSON lines {user,kind,item,ts_ms,value?,session?}\n"
            "options:\n"
            "  --catalog PATH         catalog JSON lines (content features; closed catalog)\n"
            "  --catalog-prior        keep the catalog's popularity (default: zeroed, since a\n"
            "                         catalog may have counted it over the test period too)\n"
            "  --label TEXT           data set name for the report\n"
            "  --methods LIST         engine,pop,cooc,sknn,vsknn,stan (default), and vstan\n"
            "                         and session-rec's rule baselines markov,sr,ar\n"
            "  --event KIND           kind of each item in TSV inputs (view)\n"
            "  --test-fraction F      events input: last F of the time span is test (0.1)\n"
            "  --session-gap-s S      events input without \"session\": new session after\n"
            "                         S s of inactivity (1800)\n"
            "  --targets all|new      all: every next positive event is a target, repeats\n"
            "                         included, nothing merged, baselines rank session items\n"
            "                         as session-rec does; new: today's protocol (new)\n"
            "  --test-sample F        predict in this fraction of test sessions (1.0)\n"
            "  --refresh-s S          data seconds between engine refreshes (60)\n"
            "  --max-items N          catalog capacity (2000000)\n"
            "  --neighbors N          engine: co-visitation neighbours per item (64)\n"
            "  --covisit-half-life-s S  engine: co-visitation half-life (2592000)\n"
            "  --blend A,B,C,D[,E]    engine: covisit,content,trending,popular weights, and the\n"
            "                         successor share (0.1; where learning starts)\n"
            "  --blend-rate F         engine: the successor share's learning rate (0.01; 0:\n"
            "                         fixed)\n"
            "  --successor-max F      engine: the largest successor share learned (0.5)\n"
            "  --source-decay F       engine: weight per step back of a recent item (0.4)\n"
            "  --backward-weight F    engine: backward pair weight (0.5)\n"
            "  --pair-decay F         engine: a pair d + 1 steps apart weighs 1/(1 + F d) (1)\n"
            "  --repeat-recency F     engine: a session item's weight per step back (0.8)\n"
            "  --new-sharpness F      engine: new items' chance by score^F (1)\n"
            "  --repeat POLICY        engine: never|not_current|allowed, whether its lists may\n"
            "                         show items of the session again (never)\n"
            "  --sknn K,SAMPLE        SKNN's neighbours and sample of recent sessions (100,500)\n"
            "  --vsknn K,SAMPLE       V-SKNN's (100,1000)\n"
            "  --stan K,SAMPLE,L1,L2,L3  STAN's, with lambda_spw, lambda_snh in days and\n"
            "                         lambda_inh (100,5000,1.02,5,2.05)\n"
            "  --vstan K,SAMPLE,L1,L2,L3,IPW,IDF  V-STAN's: STAN's, lambda_ipw and lambda_idf\n"
            "                         (100,5000,1.02,5,2.05,1.02,5)\n"
            "  --stan-sample N        STAN's sample of recent sessions (5000)\n"
            "  --sr STEPS,WEIGHTING   SR's window and weighting (10,div; linear, same, log,\n"
            "                         quadratic)\n"
            "  --dump-ranks PATH      baselines' top 20 of every prediction, one line each:\n"
            "                         method, prediction number, target, items (item ids)\n"
            "  --results-dir DIR      eval-<label>-<stamp>.{md,json} (bench/eval/results;\n"
            "                         '-': none)\n");
}

static bool parse_methods(const char *list, bool *on)
{
    memset(on, 0, M_COUNT * sizeof(bool));
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int m = 0;
        while (m < M_COUNT && strcmp(tok, method_keys[m]) != 0)
            m++;
        if (m == M_COUNT)
            return false;
        on[m] = true;
    }
    return true;
}

/* "K,SAMPLE" or, for STAN, "K,SAMPLE,L1,L2_DAYS,L3" into a baseline's parameters. */
static bool parse_knn(const char *v, knn_params_t *p)
{
    unsigned k, sample;
    double l1, l2_days, l3, ipw, idf;
    if (p->vstan) {
        if (sscanf(v, "%u,%u,%lf,%lf,%lf,%lf,%lf", &k, &sample, &l1, &l2_days, &l3, &ipw, &idf) !=
                7 ||
            k == 0 || sample == 0 || !(l1 > 0 && l2_days > 0 && l3 > 0 && ipw > 0 && idf >= 0))
            return false;
        p->lambda_spw = l1;
        p->lambda_snh_s = l2_days * 86400.0;
        p->lambda_inh = l3;
        p->lambda_ipw = ipw;
        p->lambda_idf = idf;
    } else if (!p->stan) {
        if (sscanf(v, "%u,%u", &k, &sample) != 2 || k == 0 || sample == 0)
            return false;
    } else if (sscanf(v, "%u,%u,%lf,%lf,%lf", &k, &sample, &l1, &l2_days, &l3) != 5 || k == 0 ||
               sample == 0 || !(l1 > 0 && l2_days > 0 && l3 > 0)) {
        return false;
    } else {
        p->lambda_spw = l1;
        p->lambda_snh_s = l2_days * 86400.0;
        p->lambda_inh = l3;
    }
    p->k = k;
    p->sample = sample;
    return true;
}

/* "STEPS,WEIGHTING" for SR. */
static bool parse_sr(const char *v, options_t *o)
{
    unsigned steps;
    char name[32];
    if (sscanf(v, "%u,%31s", &steps, name) != 2 || steps == 0)
        return false;
    int w = rules_weighting_parse(name);
    if (w < 0)
        return false;
    o->sr_steps = steps;
    o->sr_weighting = w;
    return true;
}

static int parse_args(int argc, char **argv, options_t *o)
{
    *o = (options_t){.results_dir = "bench/eval/results",
                     .label = "dataset",
                     .kind = RC_EV_VIEW,
                     .test_fraction = 0.1,
                     .refresh_s = 60,
                     .test_sample = 1.0,
                     .session_gap_ms = 1800 * 1000,
                     .max_items = 2000000,
                     .neighbors = 64,
                     .covisit_half_life_s = 2592000,
                     .sknn = {.k = 100, .sample = 500},
                     .vsknn = {.k = 100, .sample = 1000, .vsknn = true},
                     .stan = {.k = 100,
                              .sample = 5000,
                              .stan = true,
                              .lambda_spw = 1.02,
                              .lambda_snh_s = 5 * 86400.0,
                              .lambda_inh = 2.05},
                     .vstan = {.k = 100,
                               .sample = 5000,
                               .stan = true,
                               .vstan = true,
                               .lambda_spw = 1.02,
                               .lambda_snh_s = 5 * 86400.0,
                               .lambda_inh = 2.05,
                               .lambda_ipw = 1.02,
                               .lambda_idf = 5},
                     .pair_decay = -1,
                     .blend_rate = -1,
                     .successor_max = -1,
                     .sr_steps = 10,
                     .sr_weighting = SR_W_DIV};
    for (int m = 0; m < M_DEFAULT_COUNT; m++)
        o->methods[m] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--catalog-prior") == 0) {
            o->catalog_prior = true;
            continue;
        }
        if (v == NULL) {
            usage();
            return -1;
        }
        if (strcmp(a, "--prepared") == 0)
            o->prepared = v;
        else if (strcmp(a, "--train") == 0)
            o->train = v;
        else if (strcmp(a, "--test") == 0)
            o->test = v;
        else if (strcmp(a, "--events") == 0)
            o->events = v;
        else if (strcmp(a, "--catalog") == 0)
            o->catalog = v;
        else if (strcmp(a, "--label") == 0)
            o->label = v;
        else if (strcmp(a, "--results-dir") == 0)
            o->results_dir = v;
        else if (strcmp(a, "--dump-ranks") == 0)
            o->dump_ranks = v;
        else if (strcmp(a, "--test-fraction") == 0)
            o->test_fraction = atof(v);
        else if (strcmp(a, "--session-gap-s") == 0)
            o->session_gap_ms = (int64_t)(atof(v) * 1000);
        else if (strcmp(a, "--test-sample") == 0)
            o->test_sample = atof(v);
        else if (strcmp(a, "--refresh-s") == 0)
            o->refresh_s = atof(v);
        else if (strcmp(a, "--max-items") == 0)
            o->max_items = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--backward-weight") == 0)
            o->backward_weight = atof(v);
        else if (strcmp(a, "--source-decay") == 0)
            o->source_decay = atof(v);
        else if (strcmp(a, "--pair-decay") == 0)
            o->pair_decay = atof(v);
        else if (strcmp(a, "--repeat-recency") == 0)
            o->repeat_recency = atof(v);
        else if (strcmp(a, "--new-sharpness") == 0)
            o->new_sharpness = atof(v);
        else if (strcmp(a, "--neighbors") == 0)
            o->neighbors = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--covisit-half-life-s") == 0)
            o->covisit_half_life_s = atof(v);
        else if (strcmp(a, "--blend") == 0 &&
                 sscanf(v, "%f,%f,%f,%f,%f", &o->blend.covisit, &o->blend.content,
                        &o->blend.trending, &o->blend.popular, &o->blend.successor) >= 4)
            o->blend_set = true;
        else if (strcmp(a, "--blend-rate") == 0)
            o->blend_rate = atof(v);
        else if (strcmp(a, "--successor-max") == 0)
            o->successor_max = atof(v);
        else if (strcmp(a, "--stan-sample") == 0)
            o->stan.sample = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--methods") == 0 && parse_methods(v, o->methods))
            ;
        else if (strcmp(a, "--sknn") == 0 && parse_knn(v, &o->sknn))
            ;
        else if (strcmp(a, "--vsknn") == 0 && parse_knn(v, &o->vsknn))
            ;
        else if (strcmp(a, "--stan") == 0 && parse_knn(v, &o->stan))
            ;
        else if (strcmp(a, "--vstan") == 0 && parse_knn(v, &o->vstan))
            ;
        else if (strcmp(a, "--sr") == 0 && parse_sr(v, o))
            ;
        else if (strcmp(a, "--targets") == 0 && (strcmp(v, "all") == 0 || strcmp(v, "new") == 0))
            o->targets_all = strcmp(v, "all") == 0;
        else if (strcmp(a, "--repeat") == 0) {
            int p = 0;
            while (p < RC_REPEAT_COUNT && strcmp(v, repeat_names[p]) != 0)
                p++;
            if (p == RC_REPEAT_COUNT) {
                usage();
                return -1;
            }
            o->repeat = (uint8_t)p;
        } else if (strcmp(a, "--event") == 0) {
            int k = 0;
            while (k < RC_EVENT_KIND_COUNT && strcmp(v, rc_event_kind_name(k)) != 0)
                k++;
            if (k == RC_EVENT_KIND_COUNT) {
                usage();
                return -1;
            }
            o->kind = (rc_event_kind_t)k;
        } else {
            usage();
            return -1;
        }
        i++;
    }
    if (!o->prepared && !o->events && !(o->train && o->test)) {
        usage();
        return -1;
    }
    return 0;
}

static int load(dataset_t *d, rc_engine_t *e, const options_t *o)
{
    int rc;
    d->keep_repeats = o->targets_all;
    if (o->prepared)
        rc = dataset_load_prepared(d, &e->catalog, o->prepared, o->kind);
    else if (o->events)
        rc = dataset_load_events(d, &e->catalog, o->events, o->test_fraction, o->session_gap_ms);
    else
        rc = dataset_load_sessionrec(d, &e->catalog, o->train, false, o->kind) != 0
                 ? -1
                 : dataset_load_sessionrec(d, &e->catalog, o->test, true, o->kind);
    if (rc == 0)
        dataset_sort(d);
    return rc;
}

/* One target into a view; `rank` is its 0-based place in the list, or -1 when missed. */
static void view_add(view_metrics_t *v, int rank)
{
    v->n++;
    if (rank < 0)
        return;
    v->hit10 += rank < 10;
    v->hit20 += rank < 20;
    v->rr_sum += 1.0 / (double)(rank + 1);
    v->ndcg_sum += 1.0 / log2((double)rank + 2.0);
}

/* `repeat`: the target is an item of the session so far. `pop_norm`: per item, its events
 * in the train split over the most frequent item's (for Popularity@20). */
static void score(method_metrics_t *m, const uint32_t *list, uint32_t n, uint32_t target,
                  bool repeat, double ns, const float *pop_norm)
{
    if (m->n_us == m->cap_us) {
        m->cap_us = m->cap_us ? m->cap_us * 2 : 1 << 16;
        m->us = xrealloc(m->us, m->cap_us * sizeof(float));
    }
    m->us[m->n_us++] = (float)(ns / 1000.0);
    int rank = -1;
    double pop = 0;
    for (uint32_t i = 0; i < n; i++) {
        pop += pop_norm[list[i]];
        m->shown[list[i]] = 1;
        if (list[i] == target && rank < 0)
            rank = (int)i;
    }
    view_add(&m->all, rank);
    view_add(repeat ? &m->back : &m->fresh, rank);
    /* Lists hold distinct items, so this is session-rec's mean over the list's unique items;
     * an empty list counts as popularity 0. */
    m->pop_sum += n ? pop / (double)n : 0.0;
    m->n_lists++;
}

/* Deterministic sampling of test sessions: a hash of the session's index against F. */
static bool sampled(uint32_t i, double fraction)
{
    if (fraction >= 1.0)
        return true;
    uint32_t h = i * 2654435761u;
    h ^= h >> 16;
    return (double)h / 4294967296.0 < fraction;
}

typedef struct replay {
    rc_engine_t *e;
    rc_ranker_t *ranker; /* the rank scratch (the caller's: engine.h) */
    knn_index_t knn;
    rules_t rules[M_COUNT - M_MARKOV]; /* Markov, SR, AR: initialised when asked for */
    const options_t *o;
    method_metrics_t m[M_COUNT];
    float *pop_norm; /* per item: train-split events over the most frequent item's */
    /* The session's positive items so far, for the baselines: every one with --targets all,
     * else with consecutive repeats merged. */
    uint32_t *cur;
    uint32_t cap_cur;
    FILE *dump; /* --dump-ranks, or NULL */
    double last_refresh_s;
    uint64_t train_sessions, test_sessions, predictions;
    uint64_t repeat_targets;  /* targets that are items of the session so far */
    uint64_t current_repeats; /* of which the session's latest item again (a re-click) */
} replay_t;

static void maybe_refresh(replay_t *r, double now_s)
{
    if (now_s - r->last_refresh_s >= r->o->refresh_s) {
        rc_engine_refresh(r->e);
        r->last_refresh_s = now_s;
    }
}

/* One line per baseline and prediction, for checking the baselines list by list against
 * another implementation (bench/eval/reference/knn_ref.py writes the same format). */
static void dump_ranks(replay_t *r, int m, const uint32_t *list, uint32_t n, uint32_t target)
{
    fprintf(r->dump, "%s\t%llu\t%s\t", method_keys[m], (unsigned long long)r->predictions,
            rc_item_id(&r->e->catalog, target));
    for (uint32_t i = 0; i < n; i++)
        fprintf(r->dump, "%s%s", i ? " " : "", rc_item_id(&r->e->catalog, list[i]));
    fputc('\n', r->dump);
}

static void rank_baselines(replay_t *r, uint32_t n_cur, double now_s, uint32_t target, bool repeat)
{
    uint32_t list[EVAL_K], n = 0;
    for (int m = M_POP; m < M_COUNT; m++) {
        if (!r->o->methods[m])
            continue;
        double t0 = now_ns();
        if (m == M_POP)
            n = knn_rank_pop(&r->knn, r->cur, n_cur, list);
        else if (m == M_COOC)
            n = knn_rank_cooc(&r->knn, r->cur, n_cur, list);
        else if (m >= M_MARKOV)
            n = rules_rank(&r->rules[m - M_MARKOV], r->cur, n_cur, list);
        else
            n = knn_rank_sknn(&r->knn,
                              m == M_SKNN    ? &r->o->sknn
                              : m == M_VSKNN ? &r->o->vsknn
                              : m == M_STAN  ? &r->o->stan
                                             : &r->o->vstan,
                              r->cur, n_cur, now_s, list);
        score(&r->m[m], list, n, target, repeat, now_ns() - t0, r->pop_norm);
        if (r->dump != NULL)
            dump_ranks(r, m, list, n, target);
    }
}

/* One session: every event is learned by the engine; in a test session each next item is
 * first predicted by every method. Baselines learn the session when it ends. */
static void replay_session(replay_t *r, const dataset_t *d, const session_t *s, bool predict)
{
    rc_rank_spec_t spec = {
        .k = EVAL_K, .category = -1, .price_min = -1, .price_max = -1, .repeat = r->o->repeat};
    rc_ranked_t ranked[EVAL_K];
    uint32_t list[EVAL_K], n_cur = 0;
    rc_user_state_t u;
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    if (r->cap_cur < s->n) {
        r->cap_cur = s->n;
        r->cur = xrealloc(r->cur, s->n * sizeof(uint32_t));
    }
    for (uint32_t t = 0; t < s->n; t++) {
        const ev_t *ev = &d->ev[s->off + t];
        maybe_refresh(r, (double)ev->ts_ms / 1000.0);
        float w = rc_event_weight(ev->kind, ev->has_value, ev->value);
        double t0 = now_ns();
        rc_engine_observe(r->e, &u, ev->kind, ev->item, w, (rc_str_t){NULL, 0}, ev->ts_ms);
        double learn_ns = now_ns() - t0;
        if (w > 0 && (r->o->targets_all || n_cur == 0 || r->cur[n_cur - 1] != ev->item))
            r->cur[n_cur++] = ev->item;
        if (!predict || t + 1 >= s->n || n_cur == 0)
            continue;
        const ev_t *next = &d->ev[s->off + t + 1];
        if (rc_event_weight(next->kind, next->has_value, next->value) <= 0)
            continue; /* not a positive event (impression, dismiss): never a target */
        if (!r->o->targets_all && next->item == ev->item)
            continue; /* --targets new: the same item again (a cart after a view) */
        r->predictions++;
        bool repeat = false;
        for (uint32_t i = 0; i < n_cur && !repeat; i++)
            repeat = r->cur[i] == next->item;
        r->repeat_targets += repeat;
        r->current_repeats += next->item == r->cur[n_cur - 1];
        if (r->o->methods[M_ENGINE]) {
            t0 = now_ns();
            uint32_t n = rc_engine_rank(r->e, r->ranker, &u, &spec, ev->ts_ms, ranked);
            double rank_ns = now_ns() - t0;
            for (uint32_t i = 0; i < n; i++)
                list[i] = ranked[i].item;
            score(&r->m[M_ENGINE], list, n, next->item, repeat, learn_ns + rank_ns, r->pop_norm);
        }
        rank_baselines(r, n_cur, (double)ev->ts_ms / 1000.0, next->item, repeat);
    }
    if (n_cur > 0)
        knn_add_session(&r->knn, r->cur, n_cur, (double)s->t1_ms / 1000.0);
    for (int m = M_MARKOV; m < M_COUNT; m++)
        if (r->o->methods[m])
            rules_add_session(&r->rules[m - M_MARKOV], r->cur, n_cur);
}

static int by_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double quantile(float *v, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static void machine_line(char *buf, size_t len)
{
    char model[128] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof(line), f) != NULL) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) != 0 || colon == NULL)
                continue;
            snprintf(model, sizeof(model), "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
        fclose(f);
    }
    struct utsname un;
    if (uname(&un) != 0)
        snprintf(un.release, sizeof(un.release), "?");
    char commit[64] = "unknown";
    FILE *g = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (g != NULL) {
        if (fgets(commit, sizeof(commit), g) == NULL)
            snprintf(commit, sizeof(commit), "unknown");
        commit[strcspn(commit, "\n")] = '\0';
        pclose(g);
    }
    snprintf(buf, len, "%ld CPUs, %s, Linux %s; commit %s", sysconf(_SC_NPROCESSORS_ONLN), model,
             un.release, commit);
}

typedef struct view_summary {
    double hr10, hr20, mrr20, ndcg20;
} view_summary_t;

typedef struct summary {
    view_summary_t all, fresh, back;
    double coverage, popularity, p50_us, p99_us, mean_us;
} summary_t;

static view_summary_t summarize_view(const view_metrics_t *v)
{
    double n = v->n ? (double)v->n : 1.0;
    return (view_summary_t){.hr10 = (double)v->hit10 / n,
                            .hr20 = (double)v->hit20 / n,
                            .mrr20 = v->rr_sum / n,
                            .ndcg20 = v->ndcg_sum / n};
}

static summary_t summarize(method_metrics_t *m, uint32_t n_items)
{
    summary_t s = {.all = summarize_view(&m->all),
                   .fresh = summarize_view(&m->fresh),
                   .back = summarize_view(&m->back)};
    double n = m->n_us ? (double)m->n_us : 1.0;
    uint64_t shown = 0;
    for (uint32_t i = 0; i < n_items; i++)
        shown += m->shown[i];
    s.coverage = n_items ? (double)shown / n_items : 0;
    s.popularity = m->n_lists ? m->pop_sum / (double)m->n_lists : 0;
    double sum = 0;
    for (uint64_t i = 0; i < m->n_us; i++)
        sum += m->us[i];
    s.mean_us = sum / n;
    if (m->n_us > 0) /* methods not run have no samples (and no array) */
        qsort(m->us, m->n_us, sizeof(float), by_float);
    s.p50_us = quantile(m->us, m->n_us, 0.50);
    s.p99_us = quantile(m->us, m->n_us, 0.99);
    return s;
}

typedef struct run_info {
    char stamp[32], machine[512];
    double seconds;
    uint32_t n_items;
    uint64_t events;
    uint64_t covisit_bytes, items_with_neighbors, neighbors;
    rc_blend_t blend; /* the engine's blend at the end (learned, unless --blend-rate 0) */
    uint64_t blend_updates;
    float repeat_successor; /* the successor model's share of the chance of a return */
} run_info_t;

/* What the engine's co-visitation model holds after the replay: the bounded state that
 * grows with traffic (trending is 9 floats per item, fixed). */
static void measure_engine(const rc_engine_t *e, run_info_t *ri)
{
    ri->covisit_bytes = rc_covisit_bytes(&e->covisit);
    ri->blend = e->blend;
    ri->blend_updates = e->blend_updates;
    ri->repeat_successor = e->repeat_successor;
    for (uint32_t i = 0; i < e->covisit.n_lists; i++) {
        ri->items_with_neighbors += e->covisit.lists[i].n > 0;
        ri->neighbors += e->covisit.lists[i].n;
    }
}

static const char *input_path(const options_t *o)
{
    return o->prepared ? o->prepared : o->events ? o->events : o->train;
}

/* The protocol in one paragraph: which events were targets and how many return to an item of
 * the session. */
static void report_targets(FILE *f, const options_t *o, const replay_t *r)
{
    double share = r->predictions ? (double)r->repeat_targets / (double)r->predictions : 0.0;
    if (o->targets_all)
        fprintf(f,
                "Targets (`--targets all`, session-rec's next-item protocol): every next positive "
                "event of a test session, repeats included, no repeated event merged. %llu of "
                "them (%.1f%%) return to an item of the session (%llu re-click its latest item), "
                "%llu are new to it. Baselines rank the session's items like any other, as "
                "session-rec's defaults do (README, Baselines).\n\n",
                (unsigned long long)r->repeat_targets, 100.0 * share,
                (unsigned long long)r->current_repeats,
                (unsigned long long)(r->predictions - r->repeat_targets));
    else
        fprintf(f,
                "Targets (`--targets new`): the next positive event on another item than the "
                "current one, consecutive repeats merged in TSV and prepared inputs. %llu of them "
                "(%.1f%%) repeat an earlier item of the session: the baselines leave the "
                "session's items out and cannot hit them.\n\n",
                (unsigned long long)r->repeat_targets, 100.0 * share);
}

static void report_md(FILE *f, const run_info_t *ri, const options_t *o, const replay_t *r,
                      const dataset_t *d, const summary_t *s)
{
    fprintf(f, "# rankcast-eval: %s, %s\n\n", o->label, ri->stamp);
    fprintf(f,
            "Input: `%s`. %u items, %llu events; %llu train sessions, %llu test sessions, "
            "%llu predictions (test-then-learn, every method ranks top %d before the event is "
            "learned). Events on items a closed catalog does not know: %llu.\n\n",
            input_path(o), ri->n_items, (unsigned long long)ri->events,
            (unsigned long long)r->train_sessions, (unsigned long long)r->test_sessions,
            (unsigned long long)r->predictions, EVAL_K, (unsigned long long)d->dropped_unknown);
    report_targets(f, o, r);
    fprintf(f, "Machine: %s. Run time %.1f s.\n\n", ri->machine, ri->seconds);
    fprintf(f, "Engine repeat policy (`--repeat`): %s.\n\n", repeat_names[o->repeat]);
    fprintf(f,
            "Baselines: SKNN k = %u of %u recent sessions; V-SKNN k = %u of %u; STAN k = %u of "
            "%u, lambda_spw %g, lambda_snh %g days, lambda_inh %g; V-STAN k = %u of %u, "
            "lambda_spw %g, lambda_snh %g days, lambda_inh %g, lambda_ipw %g, lambda_idf %g; "
            "SR %u steps, weighting %s.\n\n",
            o->sknn.k, o->sknn.sample, o->vsknn.k, o->vsknn.sample, o->stan.k, o->stan.sample,
            o->stan.lambda_spw, o->stan.lambda_snh_s / 86400.0, o->stan.lambda_inh, o->vstan.k,
            o->vstan.sample, o->vstan.lambda_spw, o->vstan.lambda_snh_s / 86400.0,
            o->vstan.lambda_inh, o->vstan.lambda_ipw, o->vstan.lambda_idf, o->sr_steps,
            rules_weighting_name(o->sr_weighting));
    fprintf(f,
            "Engine state after the replay: co-visitation %.1f MB for %llu items with "
            "neighbours (%.1f neighbours each on average, %.0f bytes per item with lists "
            "included); user state %zu bytes per session.\n\n",
            (double)ri->covisit_bytes / 1e6, (unsigned long long)ri->items_with_neighbors,
            ri->items_with_neighbors ? (double)ri->neighbors / (double)ri->items_with_neighbors
                                     : 0.0,
            ri->items_with_neighbors ? (double)ri->covisit_bytes / (double)ri->n_items : 0.0,
            sizeof(rc_user_state_t));
    fprintf(f,
            "Engine blend at the end (%llu events moved it): covisit %.3f, successor %.3f, "
            "content %.3f, trending %.3f, popular %.3f; the successor model's share of the "
            "chance of a return %.3f.\n\n",
            (unsigned long long)ri->blend_updates, ri->blend.covisit, ri->blend.successor,
            ri->blend.content, ri->blend.trending, ri->blend.popular, ri->repeat_successor);
    if (o->targets_all) {
        fprintf(f, "| method | HR@10 | HR@20 | MRR@20 | NDCG@20 | HR@20 new | MRR@20 new | "
                   "coverage@20 | popularity@20 | p50 µs | p99 µs |\n");
        fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|\n");
    } else {
        fprintf(
            f,
            "| method | HR@10 | HR@20 | MRR@20 | NDCG@20 | coverage@20 | popularity@20 | p50 µs | "
            "p99 µs |\n");
        fprintf(f, "|---|---|---|---|---|---|---|---|---|\n");
    }
    for (int m = 0; m < M_COUNT; m++) {
        if (!o->methods[m])
            continue;
        fprintf(f, "| %s | %.4f | %.4f | %.4f | %.4f | ", method_names[m], s[m].all.hr10,
                s[m].all.hr20, s[m].all.mrr20, s[m].all.ndcg20);
        if (o->targets_all)
            fprintf(f, "%.4f | %.4f | ", s[m].fresh.hr20, s[m].fresh.mrr20);
        fprintf(f, "%.3f | %.4f | %.1f | %.1f |\n", s[m].coverage, s[m].popularity, s[m].p50_us,
                s[m].p99_us);
    }
    if (o->targets_all) {
        fprintf(f,
                "\nThe same lists over the %llu targets new to the session, and over the %llu "
                "returning to one of its items:\n\n",
                (unsigned long long)(r->predictions - r->repeat_targets),
                (unsigned long long)r->repeat_targets);
        fprintf(f, "| method | new: HR@10 | HR@20 | MRR@20 | NDCG@20 | returning: HR@10 | HR@20 | "
                   "MRR@20 | NDCG@20 |\n");
        fprintf(f, "|---|---|---|---|---|---|---|---|---|\n");
        for (int m = 0; m < M_COUNT; m++) {
            if (!o->methods[m])
                continue;
            fprintf(f, "| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n",
                    method_names[m], s[m].fresh.hr10, s[m].fresh.hr20, s[m].fresh.mrr20,
                    s[m].fresh.ndcg20, s[m].back.hr10, s[m].back.hr20, s[m].back.mrr20,
                    s[m].back.ndcg20);
        }
    }
    fprintf(f, "\nTimes: the engine's is per event (learn + rank, one thread); the baselines' "
               "is their rank only (they learn a session when it ends).\n");
}

static json_t *view_json(const view_summary_t *v)
{
    return json_pack("{s:f,s:f,s:f,s:f}", "hr10", v->hr10, "hr20", v->hr20, "mrr20", v->mrr20,
                     "ndcg20", v->ndcg20);
}

static json_t *report_json(const run_info_t *ri, const options_t *o, const replay_t *r,
                           const summary_t *s)
{
    json_t *methods = json_object();
    for (int m = 0; m < M_COUNT; m++) {
        if (!o->methods[m])
            continue;
        json_object_set_new(methods, method_keys[m],
                            json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:o,s:o}", "name",
                                      method_names[m], "hr10", s[m].all.hr10, "hr20", s[m].all.hr20,
                                      "mrr20", s[m].all.mrr20, "ndcg20", s[m].all.ndcg20,
                                      "coverage20", s[m].coverage, "popularity20", s[m].popularity,
                                      "p50_us", s[m].p50_us, "p99_us", s[m].p99_us, "mean_us",
                                      s[m].mean_us, "new", view_json(&s[m].fresh), "returning",
                                      view_json(&s[m].back)));
    }
    json_t *memory =
        json_pack("{s:I,s:I,s:I,s:i}", "covisit_bytes", (json_int_t)ri->covisit_bytes,
                  "items_with_neighbors", (json_int_t)ri->items_with_neighbors, "neighbors",
                  (json_int_t)ri->neighbors, "user_state_bytes", (int)sizeof(rc_user_state_t));
    json_t *baselines = json_pack(
        "{s:{s:i,s:i},s:{s:i,s:i},s:{s:i,s:i,s:f,s:f,s:f},s:{s:i,s:i,s:f,s:f,s:f,s:f,s:f},s:{s:i,s:"
        "s}}",
        "sknn", "k", (int)o->sknn.k, "sample", (int)o->sknn.sample, "vsknn", "k", (int)o->vsknn.k,
        "sample", (int)o->vsknn.sample, "stan", "k", (int)o->stan.k, "sample", (int)o->stan.sample,
        "lambda_spw", o->stan.lambda_spw, "lambda_snh_days", o->stan.lambda_snh_s / 86400.0,
        "lambda_inh", o->stan.lambda_inh, "vstan", "k", (int)o->vstan.k, "sample",
        (int)o->vstan.sample, "lambda_spw", o->vstan.lambda_spw, "lambda_snh_days",
        o->vstan.lambda_snh_s / 86400.0, "lambda_inh", o->vstan.lambda_inh, "lambda_ipw",
        o->vstan.lambda_ipw, "lambda_idf", o->vstan.lambda_idf, "sr", "steps", (int)o->sr_steps,
        "weighting", rules_weighting_name(o->sr_weighting));
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:o,s:o,s:o}", "label", o->label,
        "stamp", ri->stamp, "machine", ri->machine, "targets", o->targets_all ? "all" : "new",
        "repeat", repeat_names[o->repeat], "items", (int)ri->n_items, "events",
        (json_int_t)ri->events, "train_sessions", (json_int_t)r->train_sessions, "test_sessions",
        (json_int_t)r->test_sessions, "predictions", (json_int_t)r->predictions, "repeat_targets",
        (json_int_t)r->repeat_targets, "current_item_repeats", (json_int_t)r->current_repeats,
        "seconds", ri->seconds, "methods", methods, "baselines", baselines, "memory", memory);
    return j;
}

static void write_results(const run_info_t *ri, const options_t *o, const replay_t *r,
                          const dataset_t *d, const summary_t *s)
{
    report_md(stdout, ri, o, r, d, s);
    json_t *j = report_json(ri, o, r, s);
    if (strcmp(o->results_dir, "-") != 0) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/eval-%s-%s.md", o->results_dir, o->label, ri->stamp);
        FILE *f = fopen(path, "w");
        if (f != NULL) {
            report_md(f, ri, o, r, d, s);
            fclose(f);
        }
        snprintf(path, sizeof(path), "%s/eval-%s-%s.json", o->results_dir, o->label, ri->stamp);
        if (json_dump_file(j, path, JSON_INDENT(2)) != 0)
            fprintf(stderr, "rankcast-eval: %s: cannot write\n", path);
        else
            fprintf(stderr, "rankcast-eval: wrote %s and .md\n", path);
    }
    json_decref(j);
}

/* Per item, its positive events in the train split over the most frequent item's: the
 * popularity session-rec's Popularity@20 averages (pop.py counts events of the training data,
 * normalised by the maximum). Items never seen in training count 0. Caller frees. */
static float *train_popularity(const dataset_t *d, uint32_t n_items)
{
    uint32_t *count = xrealloc(NULL, (n_items ? n_items : 1) * sizeof(uint32_t));
    float *norm = xrealloc(NULL, (n_items ? n_items : 1) * sizeof(float));
    memset(count, 0, (n_items ? n_items : 1) * sizeof(uint32_t));
    uint32_t max = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        const session_t *s = &d->s[i];
        for (uint32_t t = 0; t < s->n && !s->test; t++) {
            const ev_t *ev = &d->ev[s->off + t];
            if (ev->item >= n_items || rc_event_weight(ev->kind, ev->has_value, ev->value) <= 0)
                continue;
            if (++count[ev->item] > max)
                max = count[ev->item];
        }
    }
    for (uint32_t i = 0; i < n_items; i++)
        norm[i] = max ? (float)count[i] / (float)max : 0.0f;
    free(count);
    return norm;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    char err[256] = "";
    /* A given catalog is closed (items outside it are dropped, as live); without one, items
     * are learned from the data with no content features. */
    rc_engine_t *e =
        rc_engine_new(o.max_items, o.catalog == NULL, o.neighbors, o.covisit_half_life_s, 3600, 0);
    if (e == NULL ||
        (o.catalog && rc_catalog_load(&e->catalog, o.catalog, err, sizeof(err)) != 0)) {
        fprintf(stderr, "rankcast-eval: %s: %s\n", o.catalog ? o.catalog : "engine", err);
        return 1;
    }
    if (o.blend_set)
        e->blend = o.blend;
    /* The demo catalog's popularity counts invoices of the whole data set, test days
     * included: left in, the engine would see the future. Trending learns it online. */
    for (uint32_t i = 0; i < e->catalog.n && !o.catalog_prior; i++)
        e->catalog.items[i].popularity = 0;
    if (o.backward_weight > 0)
        e->backward_weight = (float)o.backward_weight;
    if (o.source_decay > 0)
        e->source_decay = (float)o.source_decay;
    if (o.pair_decay >= 0)
        e->pair_decay = (float)o.pair_decay;
    if (o.repeat_recency > 0)
        e->repeat_recency = (float)o.repeat_recency;
    if (o.blend_rate >= 0)
        e->blend_rate = (float)o.blend_rate;
    if (o.successor_max >= 0)
        e->successor_max = (float)o.successor_max;
    if (o.new_sharpness > 0)
        e->new_sharpness = (float)o.new_sharpness;
    dataset_t d = {0};
    double t_start = now_ns();
    if (load(&d, e, &o) != 0)
        return 1;
    fprintf(stderr, "rankcast-eval: %u sessions, %llu events, %u items loaded in %.1f s\n", d.n,
            (unsigned long long)d.n_ev, e->catalog.n, (now_ns() - t_start) / 1e9);

    run_info_t ri = {0};
    /* The commit checked out when the run starts (the binary should be built from it). */
    machine_line(ri.machine, sizeof(ri.machine));
    replay_t r = {.e = e, .ranker = rc_ranker_new(), .o = &o, .last_refresh_s = -1e18};
    if (r.ranker == NULL) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        return 1;
    }
    if (o.dump_ranks != NULL && (r.dump = fopen(o.dump_ranks, "w")) == NULL) {
        fprintf(stderr, "rankcast-eval: %s: %s\n", o.dump_ranks, strerror(errno));
        return 1;
    }
    knn_init(&r.knn, e->catalog.n, o.targets_all);
    for (int m = M_MARKOV; m < M_COUNT; m++)
        if (o.methods[m])
            rules_init(&r.rules[m - M_MARKOV], (rules_kind_t)(m - M_MARKOV), e->catalog.n,
                       o.targets_all, o.sr_steps, o.sr_weighting);
    for (int m = 0; m < M_COUNT; m++)
        r.m[m].shown = calloc(e->catalog.n ? e->catalog.n : 1, 1);
    r.pop_norm = train_popularity(&d, e->catalog.n);
    for (uint32_t i = 0; i < d.n; i++) {
        const session_t *s = &d.s[i];
        if (s->test)
            r.test_sessions++;
        else
            r.train_sessions++;
        replay_session(&r, &d, s, s->test && sampled(i, o.test_sample));
    }
    ri.n_items = e->catalog.n;
    ri.events = d.n_ev;
    measure_engine(e, &ri);
    ri.seconds = (now_ns() - t_start) / 1e9;
    time_t now = time(NULL);
    struct tm tm_utc;
    gmtime_r(&now, &tm_utc);
    strftime(ri.stamp, sizeof(ri.stamp), "%Y%m%dT%H%M%SZ", &tm_utc);
    summary_t s[M_COUNT];
    for (int m = 0; m < M_COUNT; m++)
        s[m] = summarize(&r.m[m], e->catalog.n);
    write_results(&ri, &o, &r, &d, s);

    for (int m = 0; m < M_COUNT; m++) {
        free(r.m[m].us);
        free(r.m[m].shown);
    }
    free(r.cur);
    free(r.pop_norm);
    if (r.dump != NULL)
        fclose(r.dump);
    knn_free(&r.knn);
    for (int m = M_MARKOV; m < M_COUNT; m++)
        if (o.methods[m])
            rules_free(&r.rules[m - M_MARKOV]);
    dataset_free(&d);
    rc_ranker_free(r.ranker);
    rc_engine_free(e);
    return 0;
}
