/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-enginebench: the engine's own time per event, without sockets or encoding. Random
 * traffic (a random user of --users, a uniformly random catalog item, kinds view, click, cart
 * in turn per user, as rankcast-loadgen sends) goes through what the server does per event:
 * rc_engine_observe() and, when the user's lists may have changed, rc_engine_rank() of one
 * k = --k list. The models first learn --warmup events (not timed); the trending refresh runs
 * as the server's tick does (5,000 items per 100 ms of event time), outside the timed part.
 * Reports p50/p99/p99.9 of the learn + rank time per event, and of each part, and a hash of
 * every list ranked: two builds that rank the same lists print the same hash. */
#include "engine/engine_int.h"
#include "engine/ranker.h"
#include "util/error.h"

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
    uint64_t seed;
    double rate; /* events per second of event time */
    bool json;
} options_t;

static void usage(void)
{
    fprintf(stderr, "usage: rankcast-enginebench --catalog FILE [--users 1000] [--warmup 1000000]\n"
                    "           [--events 200000] [--k 20] [--rate 5000] [--seed 1] [--json]\n");
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
        else if (strcmp(a, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (o->catalog == NULL || o->users == 0 || o->events == 0 || o->k == 0 || o->k > 200 ||
        o->rate <= 0)
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

int main(int argc, char **argv)
{
    options_t o;
    parse_options(argc, argv, &o);
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
