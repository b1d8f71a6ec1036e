/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the ops feed's state (ops.h): quantiles from histogram buckets, the
 * constant-time token comparison, snapshots built from metric samples and recorded
 * events, errors and refusals in snapshots, the 15-minute history a dashboard gets when it
 * opens, and other nodes' summaries arriving through the bus wire format. The WebSocket
 * side is covered by tests/browser/ops.test.mjs against the real binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/admin_api.h"
#include "assert_ext.h"
#include "bus/bus.h"
#include "engine/experiments.h"
#include "net/ops.h"
#include "proto/mpack.h"
#include "util/clock.h"
#include "util/config.h"
#include "util/metrics.h"

#include <jansson.h>
#include <string.h>

/* No experiment configured: one "control" variant, as the server runs by default. */
static rc_experiment_t experiment;
/* What the loop counted of it (the session registry's counts, session.c). */
static rc_experiment_counts_t counts;

/* The node's reader of the counters (rc_variant_stats_fn). */
static uint32_t variant_stats(void *ctx, rc_variant_stats_t *out, uint32_t max)
{
    (void)ctx;
    return rc_experiment_stats(&experiment, &counts, out, max);
}

static int setup_experiment(void **state)
{
    char err[128];
    rc_blend_t base = {0};
    (void)state;
    return rc_experiment_parse(&experiment, "", &base, err, sizeof(err));
}

static rc_str_t str(const char *s)
{
    return (rc_str_t){s, (uint32_t)strlen(s)};
}

static void test_quantile_interpolates_within_a_bucket(void **state)
{
    (void)state;
    uint64_t c[RC_HIST_BUCKETS + 1] = {0};
    assert_true(rc_ops_quantile_us(c, 0.5) == 0);
    c[0] = 10; /* all <= 10 us */
    assert_dbl_ge(rc_ops_quantile_us(c, 0.5), 4.99);
    assert_dbl_le(rc_ops_quantile_us(c, 0.5), 5.01);
    memset(c, 0, sizeof(c));
    c[4] = 100; /* (75, 100] us */
    assert_dbl_ge(rc_ops_quantile_us(c, 0.5), 87.49);
    assert_dbl_le(rc_ops_quantile_us(c, 0.5), 87.51);
    /* 99 fast, 1 slow: p50 among the fast, p99.9 in the slow bucket (1.5..2 ms]. */
    memset(c, 0, sizeof(c));
    c[2] = 99;
    c[12] = 1;
    assert_dbl_le(rc_ops_quantile_us(c, 0.5), 50);
    assert_dbl_gt(rc_ops_quantile_us(c, 0.999), 1500);
    assert_dbl_le(rc_ops_quantile_us(c, 0.999), 2000);
    /* Beyond the last bound all that is known is "more than 1 s". */
    memset(c, 0, sizeof(c));
    c[RC_HIST_BUCKETS] = 3;
    assert_true(rc_ops_quantile_us(c, 0.99) == (double)rc_hist_bound_us(RC_HIST_BUCKETS - 1));
}

static void test_token_comparison(void **state)
{
    (void)state;
    assert_true(rc_api_token_equal("s3cret", 6, "s3cret"));
    assert_false(rc_api_token_equal("s3cre", 5, "s3cret"));
    assert_false(rc_api_token_equal("s3crets", 7, "s3cret"));
    assert_false(rc_api_token_equal("s3creT", 6, "s3cret"));
    assert_false(rc_api_token_equal("", 0, "s3cret"));
    /* A NUL inside the given token does not end the comparison early. */
    assert_false(rc_api_token_equal("s3c\0et", 6, "s3cret"));
}

static json_t *snapshot_json(rc_ops_t *o)
{
    rc_wbuf_t b;
    rc_wbuf_init(&b, 0);
    assert_int_equal(rc_ops_snapshot(o, &b), 0);
    json_error_t err;
    json_t *j = json_loadb(rc_wbuf_data(&b), b.len, 0, &err);
    if (j == NULL)
        print_error("snapshot is not JSON (%s): %.*s\n", err.text, (int)b.len, rc_wbuf_data(&b));
    assert_non_null(j);
    rc_wbuf_free(&b);
    return j;
}

static double num(json_t *j, const char *path_a, const char *path_b)
{
    json_t *v = json_object_get(j, path_a);
    if (path_b != NULL)
        v = json_object_get(v, path_b);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_snapshot_rates_latency_events_variants(void **state)
{
    (void)state;
    rc_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    rc_ops_t *o = rc_ops_new(NULL, &cfg, "n1", NULL, NULL, variant_stats, NULL);
    assert_non_null(o);
    uint64_t t0 = rc_mono_us();
    rc_ops_sample(o, t0, 1700000000000);
    /* One second later: 100 events, 40 pushes, 40 latencies of ~120 us and one of 4 ms. */
    rc_metrics.events_received[RC_EV_CLICK] = 100;
    rc_metrics.pushes_sent = 40;
    rc_metrics.connections = 3;
    for (int i = 0; i < 40; i++)
        rc_hist_observe(&rc_metrics.event_to_push, 120);
    rc_hist_observe(&rc_metrics.event_to_push, 4000);
    rc_ops_sample(o, t0 + 500000, 1700000000500);
    rc_ops_sample(o, t0 + 1000000, 1700000001000);
    /* The session module gives the user's bus pseudonym (32 hex digits), never the id. */
    const char *pseudo = "9f86d081884c7d659a2feaa0c55ad015";
    rc_ops_record_event(str(pseudo), RC_EV_IMPRESSION, str("I1"), str("home"));
    rc_ops_record_event(str(pseudo), RC_EV_IMPRESSION, str("I2"), str("home"));
    rc_ops_record_event(str(pseudo), RC_EV_CLICK, str("I2"), str("home"));
    rc_ops_record_event(str(pseudo), RC_EV_CLICK, str("I3"), str(""));
    /* Click-through comes from the loop's counts of the experiment (what session.c counts). */
    rc_experiment_count(&counts, &experiment, 0, false);
    rc_experiment_count(&counts, &experiment, 0, false);
    rc_experiment_count(&counts, &experiment, 0, true);

    json_t *j = snapshot_json(o);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "snapshot");
    assert_string_equal(json_string_value(json_object_get(j, "node")), "n1");
    assert_true(num(j, "connections", NULL) == 3);
    assert_dbl_ge(num(j, "events_per_s", NULL), 99.9);
    assert_dbl_le(num(j, "events_per_s", NULL), 100.1);
    assert_dbl_ge(num(j, "pushes_per_s", NULL), 39.9);
    assert_true(num(j, "latency", "count") == 41);
    assert_dbl_gt(num(j, "latency", "p50_us"), 100);
    assert_dbl_le(num(j, "latency", "p50_us"), 150);
    assert_dbl_gt(num(j, "latency", "p999_us"), 3000);
    json_t *hist = json_object_get(json_object_get(j, "latency"), "histogram");
    assert_int_equal(json_array_size(json_object_get(hist, "counts")),
                     json_array_size(json_object_get(hist, "le_us")) + 1);

    /* Recent events: newest first, pseudonymous. */
    json_t *recent = json_object_get(j, "recent");
    assert_int_ge(json_array_size(recent), 4);
    json_t *first = json_array_get(recent, 0);
    assert_string_equal(json_string_value(json_object_get(first, "kind")), "click");
    assert_string_equal(json_string_value(json_object_get(first, "item")), "I3");
    assert_string_equal(json_string_value(json_object_get(first, "user")), "v-9f86d081");
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, pseudo)); /* not even the whole bus pseudonym */
    free(text);

    /* Click-through: the experiment's counters, as /metrics shows them. */
    json_t *variants = json_object_get(j, "variants");
    json_t *control = NULL;
    for (size_t i = 0; i < json_array_size(variants); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(variants, i), "variant")),
                   "control") == 0)
            control = json_array_get(variants, i);
    assert_non_null(control);
    assert_true(num(control, "impressions", NULL) == 2);
    assert_true(num(control, "clicks", NULL) == 1);
    assert_dbl_le(num(control, "ctr", NULL), 1.0);

    json_t *nodes = json_object_get(j, "nodes");
    assert_int_equal(json_array_size(nodes), 1);
    assert_true(json_is_true(json_object_get(json_array_get(nodes, 0), "self")));
    json_decref(j);
    rc_ops_free(o);
}

static json_t *history_json(rc_ops_t *o)
{
    rc_wbuf_t b;
    rc_wbuf_init(&b, 0);
    assert_int_equal(rc_ops_history(o, &b), 0);
    json_error_t err;
    json_t *j = json_loadb(rc_wbuf_data(&b), b.len, 0, &err);
    if (j == NULL)
        print_error("history is not JSON (%s): %.*s\n", err.text, (int)b.len, rc_wbuf_data(&b));
    assert_non_null(j);
    rc_wbuf_free(&b);
    return j;
}

/* The entry of `array` whose `key` is the string `value`, or NULL. */
static json_t *find_by(json_t *array, const char *key, const char *value)
{
    for (size_t i = 0; i < json_array_size(array); i++) {
        const char *v = json_string_value(json_object_get(json_array_get(array, i), key));
        if (v != NULL && strcmp(v, value) == 0)
            return json_array_get(array, i);
    }
    return NULL;
}

static void test_problems_by_code_and_reason_in_the_window(void **state)
{
    (void)state;
    rc_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    rc_ops_t *o = rc_ops_new(NULL, &cfg, "n1", NULL, NULL, variant_stats, NULL);
    assert_non_null(o);
    uint64_t t0 = rc_mono_us();
    int64_t ms = 1700000000000;
    rc_ops_sample(o, t0, ms);
    rc_metrics_error(RC_PERR_INVALID_FIELD);
    rc_metrics_error(RC_PERR_INVALID_FIELD);
    rc_metrics_error(RC_PERR_SLOW_CONSUMER);
    rc_metrics.handshakes_refused[RC_REFUSED_ORIGIN]++;
    rc_ops_sample(o, t0 + 500000, ms + 500);

    json_t *j = snapshot_json(o);
    json_t *pr = json_object_get(j, "problems");
    assert_true(num(pr, "errors", "total") == 3);
    assert_true(num(pr, "errors", "window") == 3);
    assert_true(num(pr, "slow_consumers", "window") == 1);
    assert_true(num(pr, "refused", "total") == 1);
    json_t *code = json_array_get(json_object_get(pr, "error_codes"), 0);
    assert_true(num(code, "code", NULL) == 4002);
    assert_string_equal(json_string_value(json_object_get(code, "name")), "invalid_field");
    assert_true(num(code, "total", NULL) == 2);
    assert_true(num(code, "window", NULL) == 2);
    assert_int_equal(json_array_size(json_object_get(pr, "error_codes")), 2); /* 4002, 4050 */
    json_t *origin = find_by(json_object_get(pr, "refused_reasons"), "reason", "origin");
    assert_non_null(origin);
    assert_true(num(origin, "window", NULL) == 1);
    json_decref(j);

    /* Five seconds later, nothing new: out of the window, still in the totals. */
    for (int i = 2; i <= 12; i++)
        rc_ops_sample(o, t0 + (uint64_t)i * 500000, ms + i * 500);
    j = snapshot_json(o);
    pr = json_object_get(j, "problems");
    assert_true(num(pr, "errors", "window") == 0);
    assert_true(num(pr, "errors", "total") == 3);
    assert_true(num(json_array_get(json_object_get(pr, "error_codes"), 0), "window", NULL) == 0);
    assert_true(num(find_by(json_object_get(pr, "refused_reasons"), "reason", "origin"), "total",
                    NULL) == 1);
    json_decref(j);

    /* The history says when: the problems are counted in the interval they happened in. */
    j = history_json(o);
    json_t *errors = json_object_get(j, "errors");
    assert_int_equal(json_array_size(errors), 14); /* rc_ops_new's sample, then 13 */
    assert_true(json_integer_value(json_array_get(errors, 1)) == 0);
    assert_true(json_integer_value(json_array_get(errors, 2)) == 3);
    assert_true(json_integer_value(json_array_get(json_object_get(j, "slow_consumers"), 2)) == 1);
    assert_true(json_integer_value(json_array_get(json_object_get(j, "refused"), 2)) == 1);
    assert_true(json_integer_value(json_array_get(errors, 3)) == 0);
    json_decref(j);
    rc_ops_free(o);
}

static void test_history_keeps_fifteen_minutes_oldest_first(void **state)
{
    (void)state;
    rc_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    rc_ops_t *o = rc_ops_new(NULL, &cfg, "n1", NULL, NULL, variant_stats, NULL);
    assert_non_null(o);
    uint64_t t0 = rc_mono_us();
    int64_t ms = 1700000000000;
    const int samples = RC_OPS_HISTORY_POINTS + 200;
    for (int i = 1; i <= samples; i++) {
        rc_metrics.events_received[RC_EV_VIEW] += 10; /* 20 events/s */
        if (i == samples - 5)
            for (int k = 0; k < 10; k++)
                rc_hist_observe(&rc_metrics.event_to_push, 300);
        rc_ops_sample(o, t0 + (uint64_t)i * 500000, ms + i * 500);
    }
    json_t *j = history_json(o);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "history");
    assert_true(num(j, "interval_ms", NULL) == RC_OPS_INTERVAL_MS);
    /* rc_ops_new took the first sample: the newest is the (samples + 1)th, the first
     * snapshot's seq. */
    assert_true(num(j, "last_seq", NULL) == samples + 1);
    json_t *t = json_object_get(j, "t_ms");
    assert_int_equal(json_array_size(t), RC_OPS_HISTORY_POINTS);
    /* Oldest first, one per sample, ending with the newest: 15 minutes. */
    assert_true(json_integer_value(json_array_get(t, RC_OPS_HISTORY_POINTS - 1)) ==
                ms + samples * 500);
    assert_true(json_integer_value(json_array_get(t, 0)) ==
                ms + (samples - RC_OPS_HISTORY_POINTS + 1) * 500);
    static const char *const columns[] = {"events_per_s", "pushes_per_s", "p50_us",
                                          "p99_us",       "p999_us",      "connections",
                                          "errors",       "refused",      "slow_consumers"};
    for (size_t c = 0; c < sizeof(columns) / sizeof(columns[0]); c++)
        assert_int_equal(json_array_size(json_object_get(j, columns[c])), RC_OPS_HISTORY_POINTS);
    json_t *rate = json_object_get(j, "events_per_s");
    assert_dbl_ge(json_number_value(json_array_get(rate, 100)), 19.9);
    assert_dbl_le(json_number_value(json_array_get(rate, 100)), 20.1);
    /* Latency: 0 (no push) in windows without one, the quantile in those with. */
    json_t *p50 = json_object_get(j, "p50_us");
    assert_true(json_number_value(json_array_get(p50, 100)) == 0);
    assert_dbl_gt(json_number_value(json_array_get(p50, RC_OPS_HISTORY_POINTS - 1)), 200);
    json_decref(j);
    rc_ops_free(o);
}

/* Another node's summary, through the bus wire format as Kafka would carry it. */
static void peer_summary(rc_ops_t *o, const char *node, double events_per_s, int64_t t_ms)
{
    rc_wbuf_t data, wire;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    rc_wbuf_init(&data, 0);
    rc_mp_init(&pk, &data);
    msgpack_pack_map(&pk, 3);
    rc_mp_cstr(&pk, "c");
    msgpack_pack_int64(&pk, 7);
    rc_mp_cstr(&pk, "e");
    msgpack_pack_double(&pk, events_per_s);
    rc_mp_cstr(&pk, "t");
    msgpack_pack_int64(&pk, t_ms);
    assert_true(msgpack_zone_init(&zone, 256));
    assert_int_equal(msgpack_unpack(rc_wbuf_data(&data), data.len, &off, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    rc_bus_msg_t m = {.kind = RC_BUS_OPS, .origin_node = str(node), .data = &obj};
    rc_wbuf_init(&wire, 0);
    assert_int_equal(rc_bus_msg_encode(&m, &wire), 0);
    rc_bus_msg_t back;
    msgpack_zone z2;
    assert_true(msgpack_zone_init(&z2, 256));
    assert_int_equal(rc_bus_msg_decode(rc_wbuf_data(&wire), wire.len, &z2, &back), 0);
    assert_int_equal(back.kind, RC_BUS_OPS);
    rc_ops_peer_message(o, &back);
    msgpack_zone_destroy(&z2);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);
    rc_wbuf_free(&data);
}

static void test_other_nodes_appear_and_own_summary_is_ignored(void **state)
{
    (void)state;
    rc_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    rc_ops_t *o = rc_ops_new(NULL, &cfg, "n1", NULL, NULL, variant_stats, NULL);
    assert_non_null(o);
    int64_t now = 1700000000000;
    rc_ops_sample(o, rc_mono_us(), now);
    peer_summary(o, "n2", 12.5, INT64_C(0)); /* no time stamp: taken as fresh */
    peer_summary(o, "n2", 42.0, INT64_C(0)); /* the same node again: replaced */
    peer_summary(o, "n1", 99.0, INT64_C(0)); /* this node's own: ignored */
    json_t *j = snapshot_json(o);
    json_t *nodes = json_object_get(j, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    json_t *n2 = json_array_get(nodes, 1);
    assert_string_equal(json_string_value(json_object_get(n2, "node")), "n2");
    assert_true(json_is_false(json_object_get(n2, "self")));
    assert_true(json_is_false(json_object_get(n2, "stale")));
    assert_true(num(n2, "connections", NULL) == 7);
    assert_dbl_ge(num(n2, "events_per_s", NULL), 41.9);
    json_decref(j);

    /* A summary from long ago (held up on the bus) shows as stale. */
    peer_summary(o, "n3", 1.0, INT64_C(1000));
    j = snapshot_json(o);
    nodes = json_object_get(j, "nodes");
    assert_int_equal(json_array_size(nodes), 3);
    assert_true(json_is_true(json_object_get(json_array_get(nodes, 2), "stale")));
    json_decref(j);
    rc_ops_free(o);
}

static void test_bus_refuses_a_summary_without_a_map(void **state)
{
    (void)state;
    rc_wbuf_t wire;
    msgpack_packer pk;
    msgpack_zone zone;
    rc_bus_msg_t m;
    rc_wbuf_init(&wire, 0);
    rc_mp_init(&pk, &wire);
    msgpack_pack_map(&pk, 3);
    rc_mp_cstr(&pk, "k");
    rc_mp_cstr(&pk, "ops");
    rc_mp_cstr(&pk, "o");
    rc_mp_cstr(&pk, "n9");
    rc_mp_cstr(&pk, "d");
    msgpack_pack_int64(&pk, 5);
    assert_true(msgpack_zone_init(&zone, 256));
    assert_int_not_equal(rc_bus_msg_decode(rc_wbuf_data(&wire), wire.len, &zone, &m), 0);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_interpolates_within_a_bucket),
        cmocka_unit_test(test_token_comparison),
        cmocka_unit_test(test_snapshot_rates_latency_events_variants),
        cmocka_unit_test(test_problems_by_code_and_reason_in_the_window),
        cmocka_unit_test(test_history_keeps_fifteen_minutes_oldest_first),
        cmocka_unit_test(test_other_nodes_appear_and_own_summary_is_ignored),
        cmocka_unit_test(test_bus_refuses_a_summary_without_a_map),
    };
    return cmocka_run_group_tests(tests, setup_experiment, NULL);
}
