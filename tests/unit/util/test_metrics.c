/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the metrics registry (util/metrics.h): latency buckets and their bounds,
 * protocol errors counted by code, and the rendering in the Prometheus text format, checked
 * line by line the way a scraper reads it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "proto/proto.h"
#include "util/error.h"
#include "util/metrics.h"

#include <pthread.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int zero_metrics(void **state)
{
    (void)state;
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    return 0;
}

/* An observation lands in the first bucket whose bound it does not exceed (a bound is
 * inclusive, as Prometheus' `le` says); beyond the last bound it counts in +Inf only. */
static void test_hist_buckets(void **state)
{
    (void)state;
    rc_hist_t h = {0};
    assert_int_equal(rc_hist_bound_us(0), 10);
    assert_int_equal(rc_hist_bound_us(RC_HIST_BUCKETS - 1), 1000000);
    assert_true(rc_hist_bound_us(RC_HIST_BUCKETS) == UINT64_MAX);
    assert_true(rc_hist_bound_us(-1) == UINT64_MAX);
    for (int i = 1; i < RC_HIST_BUCKETS; i++)
        assert_int_lt(rc_hist_bound_us(i - 1), rc_hist_bound_us(i));

    rc_hist_observe(&h, 0);
    rc_hist_observe(&h, 10);
    rc_hist_observe(&h, 11);
    rc_hist_observe(&h, 1000000);
    rc_hist_observe(&h, 1000001);
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.counts[RC_HIST_BUCKETS - 1], 1);
    assert_int_equal(h.counts[RC_HIST_BUCKETS], 1);
    assert_int_equal(h.count, 5);
    assert_int_equal(h.sum_us, 2000022);
}

/* Codes of the protocol's range count under their own code; any other under 4500. */
static void test_errors_by_code(void **state)
{
    (void)state;
    rc_metrics_error(4000);
    rc_metrics_error(4050);
    rc_metrics_error(4050);
    rc_metrics_error(4599);
    rc_metrics_error(3999);
    rc_metrics_error(4600);
    rc_metrics_error(-1);
    assert_int_equal(rc_metrics.errors[0], 1);
    assert_int_equal(rc_metrics.errors[50], 2);
    assert_int_equal(rc_metrics.errors[599], 1);
    assert_int_equal(rc_metrics.errors[500], 3);
}

/* HTTP answers count by class; a status outside 100..599 counts as a server error. */
static void test_http_by_class(void **state)
{
    (void)state;
    rc_metrics_http(200);
    rc_metrics_http(204);
    rc_metrics_http(404);
    rc_metrics_http(503);
    rc_metrics_http(99);
    rc_metrics_http(600);
    assert_int_equal(rc_metrics.http_responses[1], 0);
    assert_int_equal(rc_metrics.http_responses[2], 2);
    assert_int_equal(rc_metrics.http_responses[4], 1);
    assert_int_equal(rc_metrics.http_responses[5], 3);
}

/* The families declared by `# TYPE` lines so far, in order. */
typedef struct {
    char name[96];
    char type[16];
} family_t;

static family_t families[256];
static int n_families;

static int family_of_sample(const char *name, size_t len)
{
    for (int f = n_families - 1; f >= 0; f--) {
        const char *fam = families[f].name;
        size_t fl = strlen(fam);
        if (len == fl && memcmp(name, fam, fl) == 0)
            return f;
        if (strcmp(families[f].type, "histogram") != 0 || len <= fl || memcmp(name, fam, fl) != 0)
            continue;
        const char *suffix = name + fl;
        size_t sl = len - fl;
        if ((sl == 7 && memcmp(suffix, "_bucket", 7) == 0) ||
            (sl == 4 && memcmp(suffix, "_sum", 4) == 0) ||
            (sl == 6 && memcmp(suffix, "_count", 6) == 0))
            return f;
    }
    return -1;
}

/* Reads the rendering as a scraper would (text format 0.0.4): every line ends in a newline;
 * each family has one `# HELP` followed by one `# TYPE` (counter, gauge or histogram), before
 * its samples, which follow it together; a sample is a valid name, optional labels, a space
 * and a number. A histogram's buckets rise to +Inf, which equals its _count. */
static void check_exposition(const char *text)
{
    n_families = 0;
    uint64_t last_bucket = 0;
    bool in_buckets = false;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL) {
            print_error("last line has no newline: %s\n", line);
            fail();
        }
        char buf[512];
        size_t len = (size_t)(end - line);
        assert_int_lt(len, sizeof(buf));
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = end + 1;

        char name[96], type[16];
        if (strncmp(buf, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(buf, "# HELP %95s", name), 1);
            char want[128];
            snprintf(want, sizeof(want), "# TYPE %s ", name);
            if (strncmp(line, want, strlen(want)) != 0) {
                print_error("'%s' is not followed by its TYPE line\n", buf);
                fail();
            }
            continue;
        }
        if (strncmp(buf, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(buf, "# TYPE %95s %15s", name, type), 2);
            if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0 &&
                strcmp(type, "histogram") != 0) {
                print_error("%s: type '%s'\n", name, type);
                fail();
            }
            for (int f = 0; f < n_families; f++) {
                if (strcmp(families[f].name, name) == 0) {
                    print_error("family %s declared twice\n", name);
                    fail();
                }
            }
            assert_int_lt(n_families, 256);
            strcpy(families[n_families].name, name);
            strcpy(families[n_families].type, type);
            n_families++;
            in_buckets = false;
            continue;
        }
        assert_int_not_equal(buf[0], '#');

        size_t nl = strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
        assert_int_gt(nl, 0);
        int f = family_of_sample(buf, nl);
        if (f != n_families - 1 || f < 0) {
            print_error("sample '%s' is not under its family's TYPE line\n", buf);
            fail();
        }
        const char *rest = buf + nl;
        if (*rest == '{') {
            rest = strchr(rest, '}');
            assert_non_null(rest);
            rest++;
        }
        if (*rest != ' ') {
            print_error("sample '%s': no space before the value\n", buf);
            fail();
        }
        char *num_end;
        double v = strtod(rest + 1, &num_end);
        if (num_end == rest + 1 || *num_end != '\0') {
            print_error("sample '%s': the value is not a number\n", buf);
            fail();
        }
        if (strstr(buf, "_bucket{") != NULL) {
            if (in_buckets)
                assert_dbl_ge(v, (double)last_bucket);
            last_bucket = (uint64_t)v;
            in_buckets = true;
        } else if (in_buckets && strstr(buf, "_count ") != NULL) {
            assert_int_equal((uint64_t)v, last_bucket); /* +Inf, the last bucket, is all */
        }
    }
}

static char *render(rc_wbuf_t *b)
{
    rc_wbuf_init(b, 0);
    rc_metrics_render(b, "node-7");
    rc_wbuf_putc(b, '\0');
    assert_int_equal(rc_wbuf_ok(b), 0);
    return rc_wbuf_data(b);
}

/* A counter, a gauge, a histogram and the labelled families, in Prometheus text form. */
static void test_render_prometheus_text(void **state)
{
    (void)state;
    rc_wbuf_t b;
    rc_metrics.pushes_sent = 7;
    rc_metrics.connections = 3;
    rc_metrics.events_received[RC_EV_CLICK] = 5;
    rc_hist_observe(&rc_metrics.rank, 10);      /* 10 us: the first bucket */
    rc_hist_observe(&rc_metrics.rank, 1500);    /* 1.5 ms */
    rc_hist_observe(&rc_metrics.rank, 2000000); /* 2 s: beyond the last bound */
    rc_metrics_error(4050);
    rc_metrics_error(4099); /* in range, but no name */
    const char *text = render(&b);
    check_exposition(text);

    assert_contains(text, "rankcast_build_info{version=\"" RC_VERSION "\",node=\"node-7\"} 1\n");
    assert_contains(text, "# HELP rankcast_pushes_sent_total Recommendation lists written to "
                          "clients.\n# TYPE rankcast_pushes_sent_total counter\n"
                          "rankcast_pushes_sent_total 7\n");
    assert_contains(text, "# TYPE rankcast_connections gauge\nrankcast_connections 3\n");
    assert_contains(text, "rankcast_events_received_total{kind=\"click\"} 5\n");

    assert_contains(text, "# TYPE rankcast_rank_seconds histogram\n"
                          "rankcast_rank_seconds_bucket{le=\"1e-05\"} 1\n"
                          "rankcast_rank_seconds_bucket{le=\"2.5e-05\"} 1\n");
    assert_contains(text, "rankcast_rank_seconds_bucket{le=\"0.001\"} 1\n"
                          "rankcast_rank_seconds_bucket{le=\"0.0015\"} 2\n");
    assert_contains(text, "rankcast_rank_seconds_bucket{le=\"1\"} 2\n"
                          "rankcast_rank_seconds_bucket{le=\"+Inf\"} 3\n"
                          "rankcast_rank_seconds_sum 2.001510\n"
                          "rankcast_rank_seconds_count 3\n");

    assert_contains(text, "rankcast_errors_total{code=\"4050\",name=\"slow_consumer\"} 1\n");
    assert_contains(text, "rankcast_errors_total{code=\"4001\",name=\"unknown_type\"} 0\n");
    assert_contains(text, "rankcast_errors_total{code=\"4099\",name=\"other\"} 1\n");
    assert_null(strstr(text, "code=\"4098\"")); /* no name and never sent: not listed */
    rc_wbuf_free(&b);
}

#define THREAD_EVENTS 100000

typedef struct counting_thread {
    rc_metrics_t registry; /* the loop's own */
    int64_t catalog_items;
    bool own; /* what it counted landed in its registry */
} counting_thread_t;

/* A loop's thread: attaches its registry and counts as the event path does. */
static void *count_as_a_loop(void *arg)
{
    counting_thread_t *t = arg;
    if (rc_metrics_attach(&t->registry) != 0)
        return NULL;
    for (int i = 0; i < THREAD_EVENTS; i++) {
        rc_metrics.events_received[RC_EV_VIEW]++;
        rc_hist_observe(&rc_metrics.rank, 100);
    }
    rc_metrics.connections += 2;
    rc_metrics.catalog_items = t->catalog_items;
    rc_metrics_error(4050);
    t->own =
        &rc_metrics == &t->registry && t->registry.events_received[RC_EV_VIEW] == THREAD_EVENTS;
    rc_metrics_publish();                      /* as a loop does on its tick */
    rc_metrics.events_received[RC_EV_CLICK]++; /* after it: not in others' sums yet */
    return NULL;
}

/* Each loop counts in its own registry (no two threads write one counter, so none is lost);
 * readers sum what they published: counters and histograms added, gauges added but the process-wide
 * ones (the catalog's size: each loop sets it from its copy) taken once. A registry given back
 * keeps its counts in the totals and drops its gauges. */
static void test_registries_per_thread(void **state)
{
    (void)state;
    static counting_thread_t t[2];
    memset(t, 0, sizeof(t));
    t[0].catalog_items = 100;
    t[1].catalog_items = 101; /* one copy a publish ahead */
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, count_as_a_loop, &t[i]), 0);
    rc_metrics.events_received[RC_EV_VIEW]++; /* the main thread counts in the process's */
    rc_metrics.connections = 1;
    rc_metrics.catalog_items = 100;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(t[0].own);
    assert_true(t[1].own);
    assert_int_equal(rc_metrics.events_received[RC_EV_VIEW], 1);
    assert_int_equal(rc_metrics.rank.count, 0);

    rc_metrics_t *sum = malloc(sizeof(*sum));
    assert_non_null(sum);
    rc_metrics_sum(sum);
    assert_int_equal(sum->events_received[RC_EV_VIEW], 2 * THREAD_EVENTS + 1);
    assert_int_equal(sum->rank.count, 2 * THREAD_EVENTS);
    assert_int_equal(sum->rank.sum_us, 2 * THREAD_EVENTS * 100);
    assert_int_equal(sum->errors[50], 2);
    assert_int_equal(sum->connections, 5);
    assert_int_equal(sum->catalog_items, 101);
    assert_int_equal(sum->events_received[RC_EV_CLICK], 0); /* counted after the publish */
    rc_wbuf_t b;
    const char *text = render(&b);
    assert_contains(text, "rankcast_events_received_total{kind=\"view\"} 200001\n");
    assert_contains(text, "rankcast_connections 5\n");
    assert_contains(text, "rankcast_catalog_items 101\n");
    assert_contains(text, "rankcast_rank_seconds_count 200000\n");
    rc_wbuf_free(&b);

    rc_metrics_detach(&t[1].registry); /* its thread has ended: its last counts are kept */
    rc_metrics_sum(sum);
    assert_int_equal(sum->events_received[RC_EV_VIEW], 2 * THREAD_EVENTS + 1);
    assert_int_equal(sum->events_received[RC_EV_CLICK], 1);
    assert_int_equal(sum->connections, 3);
    assert_int_equal(sum->catalog_items, 100);
    rc_metrics_detach(&t[0].registry);
    rc_metrics_detach(NULL);
    assert_true(&rc_metrics != &t[0].registry);

    /* At most RC_METRICS_THREADS at once; past that a thread counts in the process's. */
    static rc_metrics_t many[RC_METRICS_THREADS + 1];
    for (int i = 0; i < RC_METRICS_THREADS; i++)
        assert_int_equal(rc_metrics_attach(&many[i]), 0);
    assert_int_equal(rc_metrics_attach(&many[RC_METRICS_THREADS]), RC_EFULL);
    for (int i = RC_METRICS_THREADS - 1; i >= 0; i--)
        rc_metrics_detach(&many[i]);
    free(sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets),
        cmocka_unit_test_setup(test_errors_by_code, zero_metrics),
        cmocka_unit_test_setup(test_http_by_class, zero_metrics),
        cmocka_unit_test_setup(test_render_prometheus_text, zero_metrics),
        cmocka_unit_test_setup(test_registries_per_thread, zero_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
