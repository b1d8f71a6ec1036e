/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-enginebench: the engine's own time per event, without sockets or encoding. Random
 * traffic (a random user of --users, a uniformly random catalog item, kinds view, click, cart
 * in turn per user, as rankcast-loadgen sends) goes through what the server does per event:
 * rc_engine_observe() and, when the user's lists may have changed, rc_engine_rank() of one
 * k = --k list. The models first learn --warmup events (not timed); the trending refresh runs
 * as the server's tick does (5,000 items per 100 ms of event time), outside the timed part.
 * Reports p50/p99/p99.9 of the learn + rank time per event, and of each part, and a hash of
 * every list ranked: two builds that rank the same lists print the same hash.
 * With --readers N, the engine shared by threads (engine/shared.h): N reader threads, each
 * owning a shard of the users, send --events events each (the event's model half submitted
 * to the writer, the user's half and the rank on the published copy), while the writer
 * thread learns them all, applying each op to both copies. Reports each reader's time per
 * event and per rank, and the writer's time per op. With --apply-cost, what applying an event
 * op costs one copy in CPU time, with and without the writer's look-ahead prefetch. */
#include "engine/engine_int.h"
#include "engine/engine_op.h"
#include "engine/ranker.h"
#include "engine/shared.h"
#include "util/error.h"

#include <pthread.h>
#include <stdatomic.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define REFRESH_SLICE_ITEMS 5000 /* as src/node.c */
#define REFRESH_EVERY_MS    100

typedef struct {
    const char *catalog;
    uint32_t users, warmup, events, k;
    uint32_t readers; /* 0: one thread, the engine alone; N: the shared engine, N readers */
    uint64_t seed;
    double rate; /* events per second of event time */
    bool json;
    bool apply_cost; /* --apply-cost: the writer's cost per op alone */
} options_t;

static void usage(void)
{
    fprintf(stderr, "usage: rankcast-enginebench --catalog FILE [--users 1000] [--warmup 1000000]\n"
                    "           [--events 200000] [--k 20] [--rate 5000] [--seed 1] [--json]\n"
                    "           [--readers N | --apply-cost]\n");
    exit(2);
}

static int parse_options(int argc, char **argv, options_t *o)
{
    *o = (options_t){
        .users = 1000, .warmup = 1000000, .events = 200000, .k = 20, .seed = 1, .rate = 5000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--apply-cost") == 0) {
            o->apply_cost = true;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--catalog") == 0)
            o->catalog = v;
        else if (strcmp(a, "--users") == 0)
            o->users = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--events") == 0)
            o->events = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--k") == 0)
            o->k = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--rate") == 0)
            o->rate = strtod(v, NULL);
        else if (strcmp(a, "--readers") == 0)
            o->readers = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (o->catalog == NULL || o->users == 0 || o->readers > 64 || o->users < o->readers ||
        o->events == 0 || o->k == 0 || o->k > 200 || o->rate <= 0)
        usage();
    return 0;
}

/* xorshift64*: the same stream for the same seed on every machine. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Quantile q of sorted ns values, in µs. */
static double quantile_us(const uint32_t *v, uint32_t n, double q)
{
    if (n == 0)
        return 0;
    uint32_t i = (uint32_t)(q * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

typedef struct {
    const char *name;
    uint32_t *ns;
    uint32_t n;
} series_t;

static void report(const options_t *o, const rc_engine_t *e, series_t *s, int n_series,
                   uint64_t lists_hash, uint32_t ranks)
{
    for (int i = 0; i < n_series; i++)
        qsort(s[i].ns, s[i].n, sizeof(uint32_t), cmp_u32);
    if (o->json) {
        printf("{\"catalog\":\"%s\",\"items\":%u,\"users\":%u,\"warmup\":%u,\"events\":%u,"
               "\"k\":%u,\"seed\":%" PRIu64 ",\"ranks\":%u,\"lists_hash\":\"%016" PRIx64 "\"",
               o->catalog, e->catalog.n, o->users, o->warmup, o->events, o->k, o->seed, ranks,
               lists_hash);
        for (int i = 0; i < n_series; i++)
            printf(",\"%s\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f}", s[i].name,
                   quantile_us(s[i].ns, s[i].n, 0.5), quantile_us(s[i].ns, s[i].n, 0.99),
                   quantile_us(s[i].ns, s[i].n, 0.999));
        printf("}\n");
        return;
    }
    printf("catalog %s: %u items, %u users, %u events timed after %u, k = %u, %u ranks\n",
           o->catalog, e->catalog.n, o->users, o->events, o->warmup, o->k, ranks);
    printf("%-8s %9s %9s %9s  (µs per event)\n", "part", "p50", "p99", "p99.9");
    for (int i = 0; i < n_series; i++)
        printf("%-8s %9.2f %9.2f %9.2f\n", s[i].name, quantile_us(s[i].ns, s[i].n, 0.5),
               quantile_us(s[i].ns, s[i].n, 0.99), quantile_us(s[i].ns, s[i].n, 0.999));
    printf("lists hash %016" PRIx64 "\n", lists_hash);
}

/* --- --readers N: the engine shared by threads ------------------------------------------ */

/* An engine with the catalog, refreshed; NULL with a message when it cannot be made. */
static rc_engine_t *loaded_engine(const options_t *o, int64_t wall_ms)
{
    rc_engine_t *e = rc_engine_new(1000000, false, 64, 604800, 3600, (double)wall_ms / 1000.0);
    char err[256];
    if (e == NULL || rc_catalog_load(rc_engine_catalog(e), o->catalog, err, sizeof(err)) != 0) {
        fprintf(stderr, "rankcast-enginebench: %s\n", e ? err : "out of memory");
        rc_engine_free(e);
        return NULL;
    }
    if (rc_engine_catalog(e)->n == 0 || rc_engine_refresh(e) != 0) {
        fprintf(stderr, "rankcast-enginebench: empty catalog or refresh failed\n");
        rc_engine_free(e);
        return NULL;
    }
    return e;
}

typedef struct traffic {
    const options_t *o;
    rc_user_state_t *users;
    uint8_t *turn;
    uint32_t n_items;
    int64_t wall_ms;
    double step_ms;
    uint64_t refresh_every;     /* events between full refreshes (as the tick's slices add up) */
    atomic_uint_fast64_t clock; /* events so far, all threads: the event time */
} traffic_t;

typedef struct reader {
    traffic_t *t;
    rc_shared_t *sh;
    uint32_t id, n;
    series_t event, rank;
    uint32_t ranks;
    bool failed;
    pthread_t thread;
} reader_t;

/* The next event of a user of shard `id` of `n`. */
static void next_event(traffic_t *t, uint64_t *rnd, uint32_t id, uint32_t n, uint32_t *user,
                       uint32_t *item, rc_event_kind_t *kind, int64_t *at_ms, uint64_t *tick)
{
    static const rc_event_kind_t kinds[] = {RC_EV_VIEW, RC_EV_CLICK, RC_EV_CART};
    uint32_t per_shard = t->o->users / n;
    *user = (uint32_t)(next_random(rnd) % per_shard) * n + id;
    *item = (uint32_t)(next_random(rnd) % t->n_items);
    *kind = kinds[t->turn[*user]];
    t->turn[*user] = (uint8_t)((t->turn[*user] + 1) % 3);
    *tick = atomic_fetch_add_explicit(&t->clock, 1, memory_order_relaxed);
    *at_ms = t->wall_ms + (int64_t)((double)*tick * t->step_ms);
}

/* One loop's part: its users' events, their model halves to the writer, the user's half and
 * a rank in one read section. */
static void *reader_main(void *arg)
{
    reader_t *r = arg;
    traffic_t *t = r->t;
    rc_shared_reader_t *h = rc_shared_reader_register(r->sh);
    rc_ranker_t *ranker = rc_ranker_new();
    rc_ranked_t *out = calloc(t->o->k, sizeof(*out));
    if (h == NULL || ranker == NULL || out == NULL) {
        r->failed = true;
        goto done;
    }
    rc_rank_spec_t spec = {.k = t->o->k, .category = -1, .price_min = -1, .price_max = -1};
    uint64_t rnd = (t->o->seed + 1000 * (r->id + 1)) * 0x9E3779B97F4A7C15ull + 1;
    for (uint32_t i = 0; i < t->o->events; i++) {
        uint32_t user, item;
        rc_event_kind_t kind;
        int64_t at_ms;
        uint64_t tick;
        next_event(t, &rnd, r->id, r->n, &user, &item, &kind, &at_ms, &tick);
        rc_user_state_t *u = &t->users[user];
        float w = rc_event_weight(kind, false, 0);
        uint64_t t0 = now_ns();
        rc_engine_op_t op;
        rc_engine_op_event(&op, u, kind, item, w, at_ms);
        if (rc_shared_submit(r->sh, &op) != 0) {
            r->failed = true;
            break;
        }
        uint64_t t1 = now_ns();
        const rc_engine_t *e = rc_shared_read_begin(h);
        bool changed = rc_user_observe(e, u, kind, item, w, (rc_str_t){"", 0}, at_ms);
        if (changed)
            rc_engine_rank(e, ranker, u, &spec, at_ms, out);
        rc_shared_read_end(h);
        uint64_t t2 = now_ns();
        r->event.ns[r->event.n++] = (uint32_t)(t2 - t0);
        if (changed) {
            r->rank.ns[r->rank.n++] = (uint32_t)(t2 - t1);
            r->ranks++;
        }
        /* A full refresh as often as the server's tick completes one, submitted by
         * whichever loop's event carries the turn. */
        if (tick % t->refresh_every == 0) {
            rc_engine_op_refresh(&op, at_ms);
            rc_shared_submit(r->sh, &op);
        }
    }
done:
    free(out);
    rc_ranker_free(ranker);
    rc_shared_reader_unregister(h);
    return NULL;
}

/* The warmup on both copies at once, by the same ops in the same order. */
static void warm_up(traffic_t *t, rc_engine_t *a, rc_engine_t *b)
{
    uint64_t rnd = t->o->seed * 0x9E3779B97F4A7C15ull + 1;
    for (uint32_t i = 0; i < t->o->warmup; i++) {
        uint32_t user, item;
        rc_event_kind_t kind;
        int64_t at_ms;
        uint64_t tick;
        next_event(t, &rnd, 0, 1, &user, &item, &kind, &at_ms, &tick);
        float w = rc_event_weight(kind, false, 0);
        rc_engine_op_t op;
        rc_engine_op_event(&op, &t->users[user], kind, item, w, at_ms);
        rc_engine_apply(a, &op);
        rc_engine_apply(b, &op);
        rc_user_observe(a, &t->users[user], kind, item, w, (rc_str_t){"", 0}, at_ms);
        if ((i + 1) % t->refresh_every == 0) {
            rc_engine_refresh(a);
            rc_engine_refresh(b);
        }
    }
}

static void report_readers(const options_t *o, reader_t *rd, const rc_shared_stats_t *st,
                           double wall_s, uint32_t n_items)
{
    double per_op_us = st->ops ? st->apply_ns / 1000.0 / (double)st->ops : 0;
    uint64_t n_ev = st->ops_by_type[RC_OP_EVENT], n_rf = st->ops_by_type[RC_OP_REFRESH];
    double event_us = n_ev ? st->apply_ns_by_type[RC_OP_EVENT] / 1000.0 / (double)n_ev : 0;
    double refresh_ms = n_rf ? st->apply_ns_by_type[RC_OP_REFRESH] / 1e6 / (double)n_rf : 0;
    double wait_us = st->batches ? st->wait_ns / 1000.0 / (double)st->batches : 0;
    uint64_t events = (uint64_t)o->events * o->readers;
    for (uint32_t i = 0; i < o->readers; i++) {
        qsort(rd[i].event.ns, rd[i].event.n, sizeof(uint32_t), cmp_u32);
        qsort(rd[i].rank.ns, rd[i].rank.n, sizeof(uint32_t), cmp_u32);
    }
    if (o->json) {
        printf("{\"catalog\":\"%s\",\"items\":%u,\"users\":%u,\"warmup\":%u,\"events\":%u,"
               "\"k\":%u,\"seed\":%" PRIu64 ",\"readers\":%u,\"wall_s\":%.3f,"
               "\"events_per_s\":%.0f,\"writer\":{\"ops\":%" PRIu64 ",\"batches\":%" PRIu64
               ",\"apply_us_per_op\":%.3f,\"event_us\":%.3f,\"refreshes\":%" PRIu64
               ",\"refresh_ms\":%.2f,\"wait_us_per_batch\":%.1f,\"busy\":%.3f},"
               "\"threads\":[",
               o->catalog, n_items, o->users, o->warmup, o->events, o->k, o->seed, o->readers,
               wall_s, (double)events / wall_s, st->ops, st->batches, per_op_us, event_us, n_rf,
               refresh_ms, wait_us, (st->apply_ns + st->wait_ns) / 1e9 / wall_s);
        for (uint32_t i = 0; i < o->readers; i++)
            printf("%s{\"event\":{\"p50\":%.2f,\"p99\":%.2f},\"rank\":{\"p50\":%.2f,\"p99\":%.2f}}",
                   i ? "," : "", quantile_us(rd[i].event.ns, rd[i].event.n, 0.5),
                   quantile_us(rd[i].event.ns, rd[i].event.n, 0.99),
                   quantile_us(rd[i].rank.ns, rd[i].rank.n, 0.5),
                   quantile_us(rd[i].rank.ns, rd[i].rank.n, 0.99));
        printf("]}\n");
        return;
    }
    printf("catalog %s: %u items, %u users, %u readers x %u events after %u, k = %u\n", o->catalog,
           n_items, o->users, o->readers, o->events, o->warmup, o->k);
    printf("%-8s %9s %9s %9s %9s  (µs per event / per rank)\n", "reader", "event p50", "p99",
           "rank p50", "p99");
    for (uint32_t i = 0; i < o->readers; i++)
        printf("%-8u %9.2f %9.2f %9.2f %9.2f\n", i, quantile_us(rd[i].event.ns, rd[i].event.n, 0.5),
               quantile_us(rd[i].event.ns, rd[i].event.n, 0.99),
               quantile_us(rd[i].rank.ns, rd[i].rank.n, 0.5),
               quantile_us(rd[i].rank.ns, rd[i].rank.n, 0.99));
    printf("writer: %" PRIu64 " ops in %" PRIu64 " batches, %.3f µs per op (both copies), "
           "%.1f µs waiting per batch, busy %.0f %%: one writer learns %.0f events/s\n",
           st->ops, st->batches, per_op_us, wait_us,
           100.0 * (st->apply_ns + st->wait_ns) / 1e9 / wall_s,
           per_op_us > 0 ? 1e6 / per_op_us : 0);
    printf("writer: an event op %.3f µs (both copies), %" PRIu64 " full refreshes of %.2f ms "
           "(both copies)\n",
           event_us, n_rf, refresh_ms);
    printf("%.0f events/s in all over %.2f s\n", (double)events / wall_s, wall_s);
}

static int run_readers(const options_t *o)
{
    int64_t wall_ms = 1765000000000LL;
    rc_engine_t *a = loaded_engine(o, wall_ms), *b = a ? loaded_engine(o, wall_ms) : NULL;
    if (b == NULL)
        return 1;
    traffic_t t = {.o = o,
                   .users = calloc(o->users, sizeof(rc_user_state_t)),
                   .turn = calloc(o->users, 1),
                   .n_items = a->catalog.n,
                   .wall_ms = wall_ms,
                   .step_ms = 1000.0 / o->rate};
    /* The tick refreshes REFRESH_SLICE_ITEMS items every REFRESH_EVERY_MS: a full pass takes
     * this many events of event time. */
    t.refresh_every = (uint64_t)((double)(t.n_items / REFRESH_SLICE_ITEMS + 1) * REFRESH_EVERY_MS *
                                 o->rate / 1000.0);
    if (t.refresh_every == 0)
        t.refresh_every = 1;
    atomic_init(&t.clock, 0);
    reader_t *rd = calloc(o->readers, sizeof(*rd));
    if (t.users == NULL || t.turn == NULL || rd == NULL) {
        fprintf(stderr, "rankcast-enginebench: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < o->users; i++) {
        rc_user_state_init(&t.users[i], (int)(i % RC_DEVICE_COUNT), 60 * (int)(i % 5));
        char id[32];
        int n = snprintf(id, sizeof(id), "bench-%u", i);
        t.users[i].user_key = rc_engine_user_key((rc_str_t){id, (uint32_t)n});
    }
    warm_up(&t, a, b);
    rc_shared_t *sh = rc_shared_new(a, b, o->readers);
    if (sh == NULL) {
        fprintf(stderr, "rankcast-enginebench: cannot start the writer\n");
        return 1;
    }
    uint64_t start = now_ns();
    bool failed = false;
    for (uint32_t i = 0; i < o->readers && !failed; i++) {
        rd[i] = (reader_t){.t = &t, .sh = sh, .id = i, .n = o->readers};
        rd[i].event = (series_t){"event", calloc(o->events, 4), 0};
        rd[i].rank = (series_t){"rank", calloc(o->events, 4), 0};
        failed = rd[i].event.ns == NULL || rd[i].rank.ns == NULL ||
                 pthread_create(&rd[i].thread, NULL, reader_main, &rd[i]) != 0;
    }
    for (uint32_t i = 0; i < o->readers; i++) {
        if (rd[i].event.ns != NULL && rd[i].rank.ns != NULL)
            pthread_join(rd[i].thread, NULL);
        failed |= rd[i].failed;
    }
    rc_shared_flush(sh); /* the writer's backlog counts in the wall time */
    double wall_s = (now_ns() - start) / 1e9;
    rc_shared_stats_t st;
    rc_shared_stats(sh, &st);
    if (!failed)
        report_readers(o, rd, &st, wall_s, t.n_items);
    for (uint32_t i = 0; i < o->readers; i++) {
        free(rd[i].event.ns);
        free(rd[i].rank.ns);
    }
    free(rd);
    free(t.users);
    free(t.turn);
    rc_shared_free(sh);
    return failed ? 1 : 0;
}

/* --- --apply-cost: the writer's work alone ------------------------------------------------ */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define APPLY_CHUNK 1000

/* What applying an event op costs one copy, in this thread's CPU time (so a busy machine's
 * preemptions do not count), with and without the writer's look-ahead prefetch
 * (rc_engine_op_prefetch, 4 ops ahead for list heads, 2 for lists), alternating chunks of
 * APPLY_CHUNK ops on one engine after --warmup events. */
static int run_apply_cost(const options_t *o)
{
    int64_t wall_ms = 1765000000000LL;
    rc_engine_t *e = loaded_engine(o, wall_ms);
    traffic_t t = {.o = o,
                   .users = calloc(o->users, sizeof(rc_user_state_t)),
                   .turn = calloc(o->users, 1),
                   .wall_ms = wall_ms,
                   .step_ms = 1000.0 / o->rate};
    uint32_t n_ops = (o->events + APPLY_CHUNK - 1) / APPLY_CHUNK * APPLY_CHUNK;
    rc_engine_op_t *ops = calloc(n_ops, sizeof(*ops));
    if (e == NULL || t.users == NULL || t.turn == NULL || ops == NULL) {
        fprintf(stderr, "rankcast-enginebench: out of memory\n");
        return 1;
    }
    t.n_items = e->catalog.n;
    atomic_init(&t.clock, 0);
    for (uint32_t i = 0; i < o->users; i++) {
        rc_user_state_init(&t.users[i], (int)(i % RC_DEVICE_COUNT), 60 * (int)(i % 5));
        t.users[i].user_key = i + 1;
    }
    uint64_t rnd = o->seed * 0x9E3779B97F4A7C15ull + 1;
    for (uint64_t i = 0; i < (uint64_t)o->warmup + n_ops; i++) {
        uint32_t user, item;
        rc_event_kind_t kind;
        int64_t at_ms;
        uint64_t tick;
        next_event(&t, &rnd, 0, 1, &user, &item, &kind, &at_ms, &tick);
        float w = rc_event_weight(kind, false, 0);
        rc_engine_op_t op;
        rc_engine_op_event(&op, &t.users[user], kind, item, w, at_ms);
        if (i < o->warmup)
            rc_engine_apply(e, &op);
        else
            ops[i - o->warmup] = op;
        rc_user_observe(e, &t.users[user], kind, item, w, (rc_str_t){"", 0}, at_ms);
    }
    uint64_t ns[2] = {0, 0};
    for (uint32_t c = 0; c < n_ops / APPLY_CHUNK; c++) {
        int ahead = c % 2;
        const rc_engine_op_t *b = ops + (size_t)c * APPLY_CHUNK;
        uint64_t t0 = thread_cpu_ns();
        for (uint32_t i = 0; i < APPLY_CHUNK; i++) {
            if (ahead && i + 4 < APPLY_CHUNK)
                rc_engine_op_prefetch(e, &b[i + 4], 0);
            if (ahead && i + 2 < APPLY_CHUNK)
                rc_engine_op_prefetch(e, &b[i + 2], 1);
            rc_engine_apply(e, &b[i]);
        }
        ns[ahead] += thread_cpu_ns() - t0;
    }
    double half = n_ops / 2.0;
    printf("apply cost, one copy: %.3f µs per event op, %.3f µs with look-ahead prefetch "
           "(%u ops after %u, CPU time)\n",
           ns[0] / 1e3 / half, ns[1] / 1e3 / half, n_ops, o->warmup);
    free(ops);
    free(t.users);
    free(t.turn);
    rc_engine_free(e);
    return 0;
}

int main(int argc, char **argv)
{
    options_t o;
    parse_options(argc, argv, &o);
    if (o.apply_cost)
        return run_apply_cost(&o);
    if (o.readers > 0)
        return run_readers(&o);
    /* Event time starts at a fixed instant, so runs learn and decay the same way. */
    int64_t wall_ms = 1765000000000LL;
    rc_engine_t *e = rc_engine_new(1000000, false, 64, 604800, 3600, (double)wall_ms / 1000.0);
    char err[256];
    if (e == NULL || rc_catalog_load(rc_engine_catalog(e), o.catalog, err, sizeof(err)) != 0) {
        fprintf(stderr, "rankcast-enginebench: %s\n", e ? err : "out of memory");
        return 1;
    }
    uint32_t n_items = rc_engine_catalog(e)->n;
    if (n_items == 0 || rc_engine_refresh(e) != 0) {
        fprintf(stderr, "rankcast-enginebench: empty catalog or refresh failed\n");
        return 1;
    }
    rc_user_state_t *users = calloc(o.users, sizeof(*users));
    uint8_t *turn = calloc(o.users, 1);
    series_t s[3] = {{"engine", calloc(o.events, 4), 0},
                     {"observe", calloc(o.events, 4), 0},
                     {"rank", calloc(o.events, 4), 0}};
    rc_ranked_t *out = calloc(o.k, sizeof(*out));
    rc_ranker_t *ranker = rc_ranker_new(); /* the rank scratch (the caller's: engine.h) */
    if (ranker == NULL || users == NULL || turn == NULL || s[0].ns == NULL || s[1].ns == NULL ||
        s[2].ns == NULL || out == NULL) {
        fprintf(stderr, "rankcast-enginebench: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < o.users; i++) {
        rc_user_state_init(&users[i], (int)(i % RC_DEVICE_COUNT), 60 * (int)(i % 5));
        char id[32];
        int n = snprintf(id, sizeof(id), "bench-%u", i);
        users[i].user_key = rc_engine_user_key((rc_str_t){id, (uint32_t)n});
    }
    static const rc_event_kind_t kinds[] = {RC_EV_VIEW, RC_EV_CLICK, RC_EV_CART};
    rc_rank_spec_t spec = {.k = o.k, .category = -1, .price_min = -1, .price_max = -1};
    uint64_t rnd = o.seed * 0x9E3779B97F4A7C15ull + 1, lists_hash = 0;
    double step_ms = 1000.0 / o.rate, t_ms = 0, next_refresh_ms = REFRESH_EVERY_MS;
    uint32_t ranks = 0;
    for (uint64_t i = 0; i < (uint64_t)o.warmup + o.events; i++) {
        bool timed = i >= o.warmup;
        uint32_t user = (uint32_t)(next_random(&rnd) % o.users);
        uint32_t item = (uint32_t)(next_random(&rnd) % n_items);
        rc_event_kind_t kind = kinds[turn[user]];
        turn[user] = (uint8_t)((turn[user] + 1) % 3);
        int64_t at_ms = wall_ms + (int64_t)t_ms;
        t_ms += step_ms;
        if (t_ms >= next_refresh_ms) {
            rc_engine_refresh_step(e, REFRESH_SLICE_ITEMS);
            next_refresh_ms += REFRESH_EVERY_MS;
        }
        uint64_t t0 = now_ns();
        bool changed = rc_engine_observe(e, &users[user], kind, item,
                                         rc_event_weight(kind, false, 0), (rc_str_t){"", 0}, at_ms);
        uint64_t t1 = now_ns();
        uint32_t n = 0;
        /* The warmup learns only: the timed events rank too, as the server does. */
        if (changed && timed)
            n = rc_engine_rank(e, ranker, &users[user], &spec, at_ms, out);
        uint64_t t2 = now_ns();
        if (!timed)
            continue;
        s[0].ns[s[0].n++] = (uint32_t)(t2 - t0);
        s[1].ns[s[1].n++] = (uint32_t)(t1 - t0);
        if (changed) {
            s[2].ns[s[2].n++] = (uint32_t)(t2 - t1);
            ranks++;
            for (uint32_t j = 0; j < n; j++)
                lists_hash = XXH3_64bits_withSeed(&out[j].item, sizeof(out[j].item), lists_hash);
            lists_hash = XXH3_64bits_withSeed(&n, sizeof(n), lists_hash);
        }
    }
    report(&o, e, s, 3, lists_hash, ranks);
    for (int i = 0; i < 3; i++)
        free(s[i].ns);
    free(out);
    free(turn);
    free(users);
    rc_ranker_free(ranker);
    rc_engine_free(e);
    return 0;
}
