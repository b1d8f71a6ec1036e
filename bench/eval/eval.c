/* rankcast-eval: offline next-item evaluation of the engine on real sessions (one invoice of
 * the UCI Online Retail data set is one session; see bench/eval/README.md for the protocol).
 * It replays the train sessions through the engine, then ranks the next item of every test
 * session position against two baselines (popularity and item co-occurrence). */
#include "engine/engine.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define TOP_K     20
#define METHOD_N  3
#define MAX_ITEMS 200000

enum { M_ENGINE = 0, M_POP, M_COOC };
static const char *const method_names[METHOD_N] = {"rankcast engine", "POP (train+online counts)",
                                                   "item co-occurrence (SKNN-style)"};

typedef struct session {
    bool test;
    int64_t ts_ms;
    uint32_t off, n;
} session_t;

typedef struct sessions {
    session_t *s;
    uint32_t n, cap;
    uint32_t *items;
    uint64_t n_items, cap_items;
    uint64_t dropped_unknown; /* items not in the catalog */
} sessions_t;

typedef struct metrics {
    uint64_t n, hit10, hit20;
    double rr_sum;
    double rank_ns;
} metrics_t;

typedef struct options {
    const char *catalog, *sessions, *results_dir;
    rc_event_kind_t kind;
    double test_sample;
    uint32_t refresh_every;
    double covisit_half_life_s, trending_half_life_s;
    bool catalog_prior;
    bool no_cooc;
} options_t;

/* Baseline state: counts over completed sessions and the session being ranked. */
typedef struct baselines {
    uint32_t n;
    double *pop;       /* sessions containing the item */
    uint32_t *order;   /* items by pop, descending */
    float *cooc;       /* n x n co-occurrence counts (sessions containing both), or NULL */
    float *acc;        /* co-occurrence scores of the current session */
    uint32_t *in_sess; /* == stamp: item is in the current session */
    uint32_t stamp;
} baselines_t;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        exit(1);
    }
    return q;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: rankcast-eval [options]\n"
        "  --catalog PATH          demo catalog (web-demo/catalog/demo-catalog.jsonl)\n"
        "  --sessions PATH         sessions from prepare.py (/tmp/rankcast-eval/sessions.tsv)\n"
        "  --results-dir DIR       where eval-<stamp>.md goes (bench/results; '-': none)\n"
        "  --event view|click|cart the event kind each basket item is replayed as (click)\n"
        "  --test-sample F         rank in this fraction of test sessions (1.0); the others\n"
        "                          are still learned from\n"
        "  --refresh-every N       train sessions between engine refreshes (10)\n"
        "  --covisit-half-life-s S (86400)   --trending-half-life-s S (3600)\n"
        "  --catalog-prior         keep the catalog's popularity prior (counted over the whole\n"
        "                          data set, test included); default: train counts\n"
        "  --no-cooc               skip the co-occurrence baseline\n");
}

static int parse_args(int argc, char **argv, options_t *o)
{
    *o = (options_t){.catalog = "web-demo/catalog/demo-catalog.jsonl",
                     .sessions = "/tmp/rankcast-eval/sessions.tsv",
                     .results_dir = "bench/results",
                     .kind = RC_EV_CLICK,
                     .test_sample = 1.0,
                     .refresh_every = 10,
                     .covisit_half_life_s = 86400,
                     .trending_half_life_s = 3600};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--catalog-prior") == 0) {
            o->catalog_prior = true;
            takes = false;
        } else if (strcmp(a, "--no-cooc") == 0) {
            o->no_cooc = true;
            takes = false;
        } else if (v == NULL) {
            usage();
            return -1;
        } else if (strcmp(a, "--catalog") == 0) {
            o->catalog = v;
        } else if (strcmp(a, "--sessions") == 0) {
            o->sessions = v;
        } else if (strcmp(a, "--results-dir") == 0) {
            o->results_dir = v;
        } else if (strcmp(a, "--event") == 0) {
            if (strcmp(v, "view") == 0)
                o->kind = RC_EV_VIEW;
            else if (strcmp(v, "click") == 0)
                o->kind = RC_EV_CLICK;
            else if (strcmp(v, "cart") == 0)
                o->kind = RC_EV_CART;
            else {
                usage();
                return -1;
            }
        } else if (strcmp(a, "--test-sample") == 0) {
            o->test_sample = atof(v);
        } else if (strcmp(a, "--refresh-every") == 0) {
            o->refresh_every = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--covisit-half-life-s") == 0) {
            o->covisit_half_life_s = atof(v);
        } else if (strcmp(a, "--trending-half-life-s") == 0) {
            o->trending_half_life_s = atof(v);
        } else {
            usage();
            return -1;
        }
        if (takes)
            i++;
    }
    if (o->refresh_every == 0)
        o->refresh_every = 1;
    return 0;
}

static void push_item(sessions_t *ss, uint32_t item)
{
    if (ss->n_items == ss->cap_items) {
        ss->cap_items = ss->cap_items ? ss->cap_items * 2 : 1 << 16;
        ss->items = xrealloc(ss->items, ss->cap_items * sizeof(*ss->items));
    }
    ss->items[ss->n_items++] = item;
}

/* Parses one `split<TAB>ts_ms<TAB>items` line. Items the catalog does not know are dropped,
 * consecutive repeats that this leaves are merged, and a session left with fewer than two
 * items is not kept. */
static void parse_session(sessions_t *ss, const rc_catalog_t *c, char *line)
{
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (tab2 == NULL)
        return;
    session_t s = {.test = strncmp(line, "test", 4) == 0,
                   .ts_ms = strtoll(tab1 + 1, NULL, 10),
                   .off = (uint32_t)ss->n_items};
    for (char *p = tab2 + 1; *p != '\0';) {
        size_t len = strcspn(p, " \n");
        if (len > 0) {
            int64_t idx = rc_catalog_find(c, p, len);
            if (idx < 0)
                ss->dropped_unknown++;
            else if (s.n == 0 || ss->items[ss->n_items - 1] != (uint32_t)idx) {
                push_item(ss, (uint32_t)idx);
                s.n++;
            }
        }
        p += len;
        if (*p != '\0')
            p++;
    }
    if (s.n < 2) {
        ss->n_items = s.off;
        return;
    }
    if (ss->n == ss->cap) {
        ss->cap = ss->cap ? ss->cap * 2 : 1024;
        ss->s = xrealloc(ss->s, ss->cap * sizeof(*ss->s));
    }
    ss->s[ss->n++] = s;
}

static int load_sessions(sessions_t *ss, const rc_catalog_t *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "rankcast-eval: %s: %s (run bench/eval/prepare.py first)\n", path,
                strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0)
        parse_session(ss, c, line);
    free(line);
    fclose(f);
    return 0;
}

static const double *pop_for_sort;

static int by_pop_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (pop_for_sort[x] != pop_for_sort[y])
        return pop_for_sort[x] > pop_for_sort[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void baselines_sort(baselines_t *b)
{
    pop_for_sort = b->pop;
    qsort(b->order, b->n, sizeof(*b->order), by_pop_desc);
}

static int baselines_init(baselines_t *b, uint32_t n, bool cooc)
{
    *b = (baselines_t){.n = n};
    b->pop = calloc(n, sizeof(*b->pop));
    b->order = calloc(n, sizeof(*b->order));
    b->acc = calloc(n, sizeof(*b->acc));
    b->in_sess = calloc(n, sizeof(*b->in_sess));
    if (cooc)
        b->cooc = calloc((size_t)n * n, sizeof(*b->cooc));
    if (!b->pop || !b->order || !b->acc || !b->in_sess || (cooc && !b->cooc))
        return -1;
    for (uint32_t i = 0; i < n; i++)
        b->order[i] = i;
    return 0;
}

static void baselines_free(baselines_t *b)
{
    free(b->pop);
    free(b->order);
    free(b->cooc);
    free(b->acc);
    free(b->in_sess);
}

/* Counts a completed session: once per distinct item, and once per pair of distinct items. */
static void baselines_learn(baselines_t *b, const uint32_t *items, uint32_t n, uint32_t *uniq)
{
    b->stamp++;
    uint32_t u = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (b->in_sess[items[i]] == b->stamp)
            continue;
        b->in_sess[items[i]] = b->stamp;
        uniq[u++] = items[i];
        b->pop[items[i]] += 1;
    }
    if (b->cooc == NULL)
        return;
    for (uint32_t i = 0; i < u; i++) {
        float *row = b->cooc + (size_t)uniq[i] * b->n;
        for (uint32_t j = 0; j < u; j++)
            if (j != i)
                row[uniq[j]] += 1.0f;
    }
}

static void baselines_begin(baselines_t *b)
{
    b->stamp++;
    if (b->cooc != NULL)
        memset(b->acc, 0, b->n * sizeof(*b->acc));
}

static void baselines_see(baselines_t *b, uint32_t item)
{
    if (b->in_sess[item] == b->stamp)
        return;
    b->in_sess[item] = b->stamp;
    if (b->cooc == NULL)
        return;
    const float *row = b->cooc + (size_t)item * b->n;
    for (uint32_t j = 0; j < b->n; j++)
        b->acc[j] += row[j];
}

static uint32_t rank_pop(const baselines_t *b, uint32_t *out)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < b->n && k < TOP_K; i++)
        if (b->in_sess[b->order[i]] != b->stamp)
            out[k++] = b->order[i];
    return k;
}

static bool cooc_better(const baselines_t *b, uint32_t x, uint32_t y)
{
    if (b->acc[x] != b->acc[y])
        return b->acc[x] > b->acc[y];
    if (b->pop[x] != b->pop[y])
        return b->pop[x] > b->pop[y];
    return x < y;
}

/* Top K by summed co-occurrence with the session's items; ties (and items that never
 * co-occurred) fall back to popularity. */
static uint32_t rank_cooc(const baselines_t *b, uint32_t *out)
{
    uint32_t k = 0;
    for (uint32_t j = 0; j < b->n; j++) {
        if (b->in_sess[j] == b->stamp)
            continue;
        if (k == TOP_K && !cooc_better(b, j, out[k - 1]))
            continue;
        uint32_t pos = k < TOP_K ? k++ : TOP_K - 1;
        while (pos > 0 && cooc_better(b, j, out[pos - 1])) {
            out[pos] = out[pos - 1];
            pos--;
        }
        out[pos] = j;
    }
    return k;
}

static void score(metrics_t *m, const uint32_t *list, uint32_t n, uint32_t target, double ns)
{
    m->n++;
    m->rank_ns += ns;
    for (uint32_t i = 0; i < n; i++) {
        if (list[i] != target)
            continue;
        m->hit10 += i < 10;
        m->hit20 += i < 20;
        m->rr_sum += 1.0 / (double)(i + 1);
        return;
    }
}

static void train_engine(rc_engine_t *e, const options_t *o, const sessions_t *ss, baselines_t *b,
                         uint32_t *uniq, uint64_t *n_train)
{
    float w = rc_event_weight(o->kind, false, 0);
    rc_user_state_t u;
    uint32_t since_refresh = 0;
    for (uint32_t i = 0; i < ss->n; i++) {
        const session_t *s = &ss->s[i];
        if (s->test)
            continue;
        rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
        for (uint32_t t = 0; t < s->n; t++)
            rc_engine_observe(e, &u, o->kind, ss->items[s->off + t], w, (rc_str_t){NULL, 0},
                              s->ts_ms);
        baselines_learn(b, ss->items + s->off, s->n, uniq);
        (*n_train)++;
        if (++since_refresh >= o->refresh_every) {
            rc_engine_refresh(e);
            since_refresh = 0;
        }
    }
}

/* Deterministic sampling of test sessions: a hash of the session index against F. */
static bool sampled(uint32_t i, double fraction)
{
    if (fraction >= 1.0)
        return true;
    uint32_t h = i * 2654435761u;
    h ^= h >> 16;
    return (double)h / 4294967296.0 < fraction;
}

typedef struct test_counts {
    uint64_t sessions, ranked_sessions, repeat_targets;
} test_counts_t;

static void test_session(rc_engine_t *e, const options_t *o, const sessions_t *ss,
                         const session_t *s, bool rank, baselines_t *b, metrics_t *m,
                         test_counts_t *tc)
{
    float w = rc_event_weight(o->kind, false, 0);
    rc_rank_spec_t spec = {.k = TOP_K, .category = -1, .price_min = -1, .price_max = -1};
    rc_ranked_t ranked[TOP_K];
    uint32_t list[TOP_K];
    rc_user_state_t u;

    rc_engine_refresh(e);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    baselines_begin(b);
    for (uint32_t t = 0; t < s->n; t++) {
        uint32_t item = ss->items[s->off + t];
        rc_engine_observe(e, &u, o->kind, item, w, (rc_str_t){NULL, 0}, s->ts_ms);
        baselines_see(b, item);
        if (!rank || t + 1 >= s->n)
            continue;
        uint32_t target = ss->items[s->off + t + 1];
        tc->repeat_targets += b->in_sess[target] == b->stamp;

        double t0 = now_ns();
        uint32_t n = rc_engine_rank(e, &u, &spec, s->ts_ms, ranked);
        double t1 = now_ns();
        for (uint32_t i = 0; i < n; i++)
            list[i] = ranked[i].item;
        score(&m[M_ENGINE], list, n, target, t1 - t0);

        t0 = now_ns();
        n = rank_pop(b, list);
        t1 = now_ns();
        score(&m[M_POP], list, n, target, t1 - t0);

        if (b->cooc != NULL) {
            t0 = now_ns();
            n = rank_cooc(b, list);
            t1 = now_ns();
            score(&m[M_COOC], list, n, target, t1 - t0);
        }
    }
}

static void machine_line(char *buf, size_t len)
{
    char model[128] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "model name", 10) != 0)
                continue;
            char *colon = strchr(line, ':');
            if (colon != NULL) {
                snprintf(model, sizeof(model), "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
            }
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

static void report(FILE *f, const char *stamp, const options_t *o, const sessions_t *ss,
                   uint64_t n_train, const test_counts_t *tc, const metrics_t *m, int n_methods)
{
    static const char *const kinds[] = {"view", "click", "cart"};
    char machine[512];
    machine_line(machine, sizeof(machine));
    fprintf(f, "# rankcast offline next-item evaluation, %s\n\n", stamp);
    fprintf(f,
            "Data: UCI Online Retail (CC BY 4.0; Chen, Sain & Guo 2012), one invoice = one "
            "session, time split (last 10%% of days = test), from `%s`. Train sessions: "
            "%llu; test sessions: %llu (ranked in %llu, sample %.2f); items not in the catalog "
            "dropped: %llu.\n\n",
            o->sessions, (unsigned long long)n_train, (unsigned long long)tc->sessions,
            (unsigned long long)tc->ranked_sessions, o->test_sample,
            (unsigned long long)ss->dropped_unknown);
    fprintf(f,
            "Replay: each basket item as a `%s` event, a fresh user state per session, wall "
            "clock = invoice time; all models keep learning from the test sessions in time "
            "order (online). Engine: covisit half-life %.0f s, trending half-life %.0f s, "
            "popularity prior = %s. Next items already in the session (no method can rank "
            "them): %llu of %llu.\n\n",
            o->kind <= RC_EV_CART ? kinds[o->kind] : "?", o->covisit_half_life_s,
            o->trending_half_life_s,
            o->catalog_prior ? "catalog file (whole data set: leaks test)" : "train counts",
            (unsigned long long)tc->repeat_targets, (unsigned long long)m[M_ENGINE].n);
    fprintf(f, "Machine: %s.\n\n", machine);
    fprintf(f, "| method | HR@10 | HR@20 | MRR@20 | test predictions | ms per rank |\n");
    fprintf(f, "|---|---|---|---|---|---|\n");
    for (int i = 0; i < n_methods; i++) {
        double n = m[i].n ? (double)m[i].n : 1.0;
        fprintf(f, "| %s | %.4f | %.4f | %.4f | %llu | %.4f |\n", method_names[i],
                (double)m[i].hit10 / n, (double)m[i].hit20 / n, m[i].rr_sum / n,
                (unsigned long long)m[i].n, m[i].rank_ns / n / 1e6);
    }
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;

    rc_engine_t e;
    char err[256] = "";
    if (rc_engine_init(&e, MAX_ITEMS, false, 32, o.covisit_half_life_s, o.trending_half_life_s,
                       0) != 0 ||
        rc_catalog_load(&e.catalog, o.catalog, err, sizeof(err)) != 0) {
        fprintf(stderr, "rankcast-eval: %s: %s\n", o.catalog, err);
        return 1;
    }
    sessions_t ss = {0};
    if (load_sessions(&ss, &e.catalog, o.sessions) != 0)
        return 1;

    baselines_t b;
    uint32_t *uniq = calloc(e.catalog.n, sizeof(*uniq));
    if (uniq == NULL || baselines_init(&b, e.catalog.n, !o.no_cooc) != 0) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        return 1;
    }
    double t_start = now_ns();
    uint64_t n_train = 0;
    if (!o.catalog_prior) {
        /* The demo catalog's prior counts invoices over the whole data set, test days too;
         * replace it with train counts so the prior does not see the future. */
        for (uint32_t i = 0; i < ss.n; i++)
            if (!ss.s[i].test) {
                b.stamp++;
                for (uint32_t t = 0; t < ss.s[i].n; t++) {
                    uint32_t it = ss.items[ss.s[i].off + t];
                    if (b.in_sess[it] != b.stamp) {
                        b.in_sess[it] = b.stamp;
                        b.acc[it] += 1.0f;
                    }
                }
            }
        for (uint32_t i = 0; i < e.catalog.n; i++)
            e.catalog.items[i].popularity = b.acc[i];
        memset(b.acc, 0, e.catalog.n * sizeof(*b.acc));
    }
    train_engine(&e, &o, &ss, &b, uniq, &n_train);
    rc_engine_refresh(&e);
    baselines_sort(&b);
    fprintf(stderr, "rankcast-eval: trained on %llu sessions in %.1f s\n",
            (unsigned long long)n_train, (now_ns() - t_start) / 1e9);

    metrics_t m[METHOD_N] = {{0}};
    test_counts_t tc = {0};
    for (uint32_t i = 0; i < ss.n; i++) {
        const session_t *s = &ss.s[i];
        if (!s->test)
            continue;
        bool rank = sampled(i, o.test_sample);
        tc.sessions++;
        tc.ranked_sessions += rank;
        test_session(&e, &o, &ss, s, rank, &b, m, &tc);
        baselines_learn(&b, ss.items + s->off, s->n, uniq);
        baselines_sort(&b);
    }
    fprintf(stderr, "rankcast-eval: done in %.1f s\n", (now_ns() - t_start) / 1e9);

    char stamp[32];
    time_t now = time(NULL);
    struct tm tm_utc;
    gmtime_r(&now, &tm_utc);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm_utc);
    int n_methods = o.no_cooc ? 2 : 3;
    report(stdout, stamp, &o, &ss, n_train, &tc, m, n_methods);
    if (strcmp(o.results_dir, "-") != 0) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/eval-%s.md", o.results_dir, stamp);
        FILE *f = fopen(path, "w");
        if (f == NULL) {
            fprintf(stderr, "rankcast-eval: %s: %s\n", path, strerror(errno));
        } else {
            report(f, stamp, &o, &ss, n_train, &tc, m, n_methods);
            fclose(f);
            fprintf(stderr, "rankcast-eval: wrote %s\n", path);
        }
    }
    baselines_free(&b);
    free(uniq);
    free(ss.s);
    free(ss.items);
    rc_engine_free(&e);
    return 0;
}
