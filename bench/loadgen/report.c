/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The report: the JSON document on stdout (and --json-out) with every figure and the raw
 * histogram buckets, and the short summary on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>

#include "loadgen.h"

static const char *const FAIL_NAMES[FAIL_REASONS] = {
    "connect", "handshake", "protocol", "server_close", "timeout", "io",
};

static double ns_to_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void json_latency(FILE *f, const char *name, const hist_t *h)
{
    double mean_ms = h->total ? ns_to_ms(h->sum_ns / h->total) : 0;
    fprintf(f,
            "  \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
            "\"p999\": %.3f, \"max\": %.3f, \"mean\": %.3f},\n",
            name, h->total, ns_to_ms(lg_hist_quantile_ns(h, 0.50)),
            ns_to_ms(lg_hist_quantile_ns(h, 0.90)), ns_to_ms(lg_hist_quantile_ns(h, 0.99)),
            ns_to_ms(lg_hist_quantile_ns(h, 0.999)), ns_to_ms(h->max_ns), mean_ms);
}

static void json_code_table(FILE *f, const code_count_t *table, size_t kinds)
{
    fputc('{', f);
    for (size_t i = 0; i < kinds; i++)
        fprintf(f, "%s\"%ld\": %" PRIu64, i ? ", " : "", table[i].code, table[i].count);
    fputc('}', f);
}

static void json_reason_table(FILE *f, const uint64_t *counts)
{
    fputc('{', f);
    bool first = true;
    for (int r = 0; r < FAIL_REASONS; r++) {
        if (!counts[r])
            continue;
        fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", FAIL_NAMES[r], counts[r]);
        first = false;
    }
    fputc('}', f);
}

/* Failure details are fixed strings or strerror text, so they need no JSON escaping. */
static void json_failure_examples(FILE *f, const stats_t *s)
{
    fputc('{', f);
    bool first = true;
    for (int r = 0; r < FAIL_REASONS; r++) {
        if (!s->first_failure[r][0])
            continue;
        fprintf(f, "%s\"%s\": \"", first ? "" : ", ", FAIL_NAMES[r]);
        for (const char *p = s->first_failure[r]; *p; p++)
            fputc(*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p, f);
        fputc('"', f);
        first = false;
    }
    fputc('}', f);
}

static double measured_seconds(const lg_t *lg)
{
    if (lg->measure_end_ns <= lg->measure_start_ns)
        return 0;
    return (double)(lg->measure_end_ns - lg->measure_start_ns) / 1e9;
}

static void json_rss(FILE *f, const lg_t *lg)
{
    if (lg->opt.server_pid <= 0) {
        fprintf(f, "  \"server\": null,\n");
        return;
    }
    /* Connections to the --server-pid node only: in cross-node mode the observers are elsewhere. */
    uint32_t open = lg->actors_at_events_start;
    double per_conn_open = -1, per_conn_end = -1, cpu_s = -1, seconds = measured_seconds(lg);
    if (lg->server_cpu_started && lg->server_cpu_start_s >= 0 && lg->server_cpu_end_s >= 0)
        cpu_s = lg->server_cpu_end_s - lg->server_cpu_start_s;
    if (open && lg->rss_before_kb >= 0 && lg->rss_open_kb >= 0)
        per_conn_open = (double)(lg->rss_open_kb - lg->rss_before_kb) / open;
    if (open && lg->rss_before_kb >= 0 && lg->rss_end_kb >= 0)
        per_conn_end = (double)(lg->rss_end_kb - lg->rss_before_kb) / open;
    fprintf(f,
            "  \"server\": {\"pid\": %ld, \"rss_kb_before\": %ld, \"rss_kb_open\": %ld, "
            "\"rss_kb_end\": %ld, \"rss_per_conn_kb_open\": %.3f, "
            "\"rss_per_conn_kb_end\": %.3f, \"cpu_s_measured\": %.3f, "
            "\"cpu_cores_measured\": %.3f},\n",
            lg->opt.server_pid, lg->rss_before_kb, lg->rss_open_kb, lg->rss_end_kb, per_conn_open,
            per_conn_end, cpu_s, cpu_s >= 0 && seconds > 0 ? cpu_s / seconds : -1);
}

/* CPU use during the measured window, in cores (CPU seconds per second); -1 if unknown. */
typedef struct {
    double busy;
    double steal;
    double server;
    double loadgen;
    double other;
} window_cpu_t;

static window_cpu_t window_cpu(const lg_t *lg)
{
    window_cpu_t w = {-1, -1, -1, -1, -1};
    double seconds = measured_seconds(lg);
    if (!lg->server_cpu_started || seconds <= 0 || !lg->machine_start.valid ||
        !lg->machine_end.valid)
        return w;
    w.busy = (lg->machine_end.busy_s - lg->machine_start.busy_s) / seconds;
    w.steal = (lg->machine_end.steal_s - lg->machine_start.steal_s) / seconds;
    w.loadgen = (lg->self_cpu_end_s - lg->self_cpu_start_s) / seconds;
    if (lg->server_cpu_start_s >= 0 && lg->server_cpu_end_s >= 0)
        w.server = (lg->server_cpu_end_s - lg->server_cpu_start_s) / seconds;
    w.other = w.busy - w.loadgen - (w.server > 0 ? w.server : 0);
    if (w.other < 0)
        w.other = 0; /* the three samples are not atomic: clamp rounding noise */
    return w;
}

static void json_machine(FILE *f, const lg_t *lg)
{
    window_cpu_t w = window_cpu(lg);
    fprintf(f,
            "  \"machine\": {\"cpus\": %ld, \"busy_cores_measured\": %.3f, "
            "\"loadgen_cores_measured\": %.3f, \"other_cores_measured\": %.3f, "
            "\"steal_cores_measured\": %.3f},\n",
            sysconf(_SC_NPROCESSORS_ONLN), w.busy, w.loadgen, w.other, w.steal);
}

static void json_config(FILE *f, const lg_t *lg)
{
    const options_t *o = &lg->opt;
    fprintf(f,
            "  \"config\": {\"host\": \"%s\", \"port\": %u, \"path\": \"%s\", "
            "\"connections\": %" PRIu32 ", \"sources\": %" PRIu32
            ", \"connect_rate_per_s\": %g, \"rate_per_conn_per_s\": %g, \"warmup_s\": %g, "
            "\"duration_s\": %g, \"drain_max_ms\": %" PRIu32 ", \"surface\": \"%s\", "
            "\"k\": %" PRIu32 ", \"items\": %zu, \"item_source\": \"%s\", \"seed\": %" PRIu64
            "},\n",
            o->host, (unsigned)o->port, o->path, o->connections, o->sources, o->connect_rate_per_s,
            o->rate_per_s, o->warmup_s, o->duration_s, o->drain_ms, o->surface, o->k,
            lg->items.count, o->catalog_path ? "catalog" : "synthetic", o->seed);
}

/* Cross-node mode only: the observed node (config.connections then counts users). */
static void json_observe(FILE *f, const lg_t *lg)
{
    if (!lg_observing(lg)) {
        fprintf(f, "  \"observe\": null,\n");
        return;
    }
    fprintf(f, "  \"observe\": {\"host\": \"%s\", \"port\": %u},\n", lg->opt.observe_host,
            (unsigned)lg->opt.observe_port);
}

static void json_connections(FILE *f, const lg_t *lg)
{
    const stats_t *s = &lg->stats;
    fprintf(f,
            "  \"connections\": {\"requested\": %" PRIu32 ", \"open\": %" PRIu32
            ", \"failed\": %" PRIu64 ", \"open_at_end\": %" PRIu32 ", \"lost_during_run\": %" PRIu64
            ", \"failed_by_reason\": ",
            lg->conn_count, lg->open_at_events_start, s->connections_failed, lg->conns_ready,
            s->connections_lost);
    json_reason_table(f, s->fail_reasons);
    fprintf(f, ", \"lost_by_reason\": ");
    json_reason_table(f, s->lost_reasons);
    fprintf(f, ", \"first_failure\": ");
    json_failure_examples(f, s);
    fprintf(f, ", \"close_codes\": ");
    json_code_table(f, s->close_codes, s->close_kinds);
    fprintf(f, ", \"handshakes_without_subprotocol\": %" PRIu64, s->no_subprotocol);
    if (lg_observing(lg))
        fprintf(f,
                ", \"users\": %" PRIu32 ", \"senders_open\": %" PRIu32 ", \"users_open\": %" PRIu32,
                lg->opt.connections, lg->actors_at_events_start, lg->users_at_events_start);
    fprintf(f, "},\n");
}

static void json_events(FILE *f, const lg_t *lg)
{
    const stats_t *s = &lg->stats;
    double seconds = measured_seconds(lg);
    double matched_ratio =
        s->events_sent_measured ? (double)s->pushes_matched / (double)s->events_sent_measured : 0;
    fprintf(f,
            "  \"events\": {\"sent\": %" PRIu64 ", \"sent_including_warmup\": %" PRIu64
            ", \"acked\": %" PRIu64 ", \"errored\": %" PRIu64 ", \"unanswered\": %" PRIu64
            ", \"pushes_matched\": %" PRIu64 ", \"pushes_matched_ratio\": %.4f"
            ", \"skipped_not_ready\": %" PRIu64 ", \"errors_by_code\": ",
            s->events_sent_measured, s->events_sent_total, s->events_acked_measured,
            s->events_errored_measured,
            s->events_sent_measured - s->events_acked_measured - s->events_errored_measured,
            s->pushes_matched, matched_ratio, s->sends_skipped_not_ready);
    json_code_table(f, s->errors, s->error_kinds);
    if (lg_observing(lg))
        fprintf(f, ", \"local_pushes_matched\": %" PRIu64 ", \"local_pushes_matched_ratio\": %.4f",
                s->local_pushes_matched,
                s->events_sent_measured
                    ? (double)s->local_pushes_matched / (double)s->events_sent_measured
                    : 0);
    fprintf(f, "},\n");
    fprintf(f,
            "  \"messages\": {\"ack\": %" PRIu64 ", \"ack_ids\": %" PRIu64 ", \"recs\": %" PRIu64
            ", \"recs_unmatched\": %" PRIu64 ", \"recs_duplicate\": %" PRIu64
            ", \"recs_other_user\": %" PRIu64 ", \"error\": %" PRIu64 ", \"pong\": %" PRIu64
            ", \"push\": %" PRIu64 ", \"drain\": %" PRIu64 ", \"other\": %" PRIu64
            ", \"binary\": %" PRIu64 ", \"pings_answered\": %" PRIu64 "},\n",
            s->ack_messages, s->ack_ids, s->recs_total, s->recs_unmatched, s->recs_duplicate,
            s->recs_other_user, s->errors_total, s->pongs, s->pushes_app, s->drains,
            s->other_messages, s->binary_messages, s->pings_answered);
    fprintf(f,
            "  \"rate\": {\"target_events_per_s\": %.1f, \"achieved_events_per_s\": %.1f, "
            "\"measured_s\": %.3f},\n",
            lg->opt.rate_per_s * lg->users_at_events_start,
            seconds > 0 ? (double)s->events_sent_measured / seconds : 0, seconds);
    /* Both directions over the measured window, per event sent in it (answers in flight at
     * the window's edges balance out at a steady rate). */
    double sent = s->events_sent_measured ? (double)s->events_sent_measured : 1;
    fprintf(f,
            "  \"wire\": {\"in_bytes_measured\": %" PRIu64 ", \"out_bytes_measured\": %" PRIu64
            ", \"in_bytes_per_event\": %.1f, \"out_bytes_per_event\": %.1f},\n",
            lg->x.wire_in_bytes_measured, lg->x.wire_out_bytes_measured,
            (double)lg->x.wire_in_bytes_measured / sent,
            (double)lg->x.wire_out_bytes_measured / sent);
}

static void json_self_usage(FILE *f, const lg_t *lg)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(f,
            "  \"loadgen\": {\"pid\": %ld, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, "
            "\"max_rss_kb\": %ld, \"elapsed_s\": %.3f}\n",
            (long)getpid(), (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
            (double)(lg->done_ns - lg->started_ns) / 1e9);
}

/*
 * Raw histogram buckets (non-empty ones, as [index, count]) so that reports of several
 * generator processes merge exactly (`bench/lgmulti.py merge`): index i covers the values
 * whose lg_hist_index() is i, 2^HIST_SUB_BITS buckets per power of two, in nanoseconds.
 */
static void json_raw_hist(FILE *f, const char *name, const hist_t *h, bool last)
{
    fprintf(f,
            "    \"%s\": {\"sub_bits\": %d, \"total\": %" PRIu64 ", \"max_ns\": %" PRIu64
            ", \"sum_ns\": %" PRIu64 ", \"buckets\": [",
            name, HIST_SUB_BITS, h->total, h->max_ns, h->sum_ns);
    bool first = true;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (!h->counts[i])
            continue;
        fprintf(f, "%s[%zu, %" PRIu64 "]", first ? "" : ", ", i, h->counts[i]);
        first = false;
    }
    fprintf(f, "]}%s\n", last ? "" : ",");
}

static void json_scenario(FILE *f, const lg_t *lg)
{
    const extra_stats_t *x = &lg->x;
    double seconds = measured_seconds(lg);
    static const char *const framings[] = {"rankcast", "socketio"};
    fprintf(f,
            "  \"scenario\": \"%s\", \"framing\": \"%s\", \"tls\": %s, \"open_until\": \"%s\",\n",
            LG_SCENARIO_NAMES[lg->opt.scenario], framings[lg->opt.framing],
            lg->opt.tls ? "true" : "false", LG_OPEN_UNTIL_NAMES[lg->opt.open_until]);
    fprintf(f,
            "  \"handshakes\": {\"until\": \"%s\", \"slots\": %" PRIu32 ", \"done\": %" PRIu64
            ", \"measured\": %" PRIu64 ", \"per_s\": %.1f, \"failed\": %" PRIu64 "},\n",
            lg->opt.handshake_until_welcome ? "welcome" : "upgrade",
            lg->opt.scenario == SCEN_HANDSHAKE ? lg->conn_count : 0, x->handshakes_done,
            x->handshakes_measured, seconds > 0 ? (double)x->handshakes_measured / seconds : 0,
            lg->opt.scenario == SCEN_HANDSHAKE ? lg->stats.connections_failed : 0);
    uint64_t expected = x->accepted_measured * (uint64_t)lg->open_at_events_start;
    fprintf(f,
            "  \"fanout\": {\"segment\": \"%s\", \"push_rate_per_s\": %g, \"posted\": %" PRIu64
            ", \"posted_measured\": %" PRIu64 ", \"accepted\": %" PRIu64
            ", \"accepted_measured\": %" PRIu64 ", \"refused\": %" PRIu64
            ", \"first_bad_status\": %ld, \"post_failed\": %" PRIu64 ", \"skipped_busy\": %" PRIu64
            ", \"deliveries_total\": %" PRIu64 ", \"deliveries_measured\": %" PRIu64
            ", \"deliveries_expected\": %" PRIu64
            ", \"delivered_ratio\": %.4f, \"deliveries_per_s\": %.1f},\n",
            lg->opt.push_segment, lg->opt.scenario == SCEN_FANOUT ? lg->opt.push_rate_per_s : 0,
            x->posted, x->posted_measured, x->accepted, x->accepted_measured, x->refused,
            x->http_status_first_bad, x->failed, x->skipped_busy, x->deliveries_total,
            x->deliveries_measured, expected,
            expected ? (double)x->deliveries_measured / (double)expected : 0,
            seconds > 0 ? (double)x->deliveries_measured / seconds : 0);
    fprintf(f,
            "  \"stalled\": {\"requested\": %" PRIu32 ", \"k\": %" PRIu32 ", \"rcvbuf\": %" PRIu32
            ", \"stalled\": %" PRIu64 ", \"closed_by_server\": %" PRIu64 "},\n",
            lg->opt.stalled, lg->opt.stalled_k, lg->opt.stalled_rcvbuf, x->stalled_open,
            x->stalled_closed);
    json_latency(f, "delivery_latency_ms", &lg->delivery_latency);
    json_latency(f, "handshake_ms", &lg->handshake_latency);
    fprintf(f, "  \"histograms\": {\n");
    json_raw_hist(f, "latency_ms", &lg->push_latency, false);
    json_raw_hist(f, "ack_latency_ms", &lg->ack_latency, false);
    json_raw_hist(f, "server_took_ms", &lg->server_took, false);
    json_raw_hist(f, "connect_ms", &lg->connect_latency, false);
    json_raw_hist(f, "delivery_latency_ms", &lg->delivery_latency, false);
    json_raw_hist(f, "handshake_ms", &lg->handshake_latency, true);
    fprintf(f, "  },\n");
}

static void write_json_report(FILE *f, const lg_t *lg)
{
    fprintf(f, "{\n  \"tool\": \"rankcast-loadgen\",\n  \"report_version\": 1,\n");
    fprintf(f, "  \"mode\": \"%s\",\n", lg_observing(lg) ? "cross_node" : "single_node");
    json_config(f, lg);
    json_observe(f, lg);
    json_connections(f, lg);
    json_events(f, lg);
    json_latency(f, "latency_ms", &lg->push_latency);
    if (lg_observing(lg))
        json_latency(f, "local_latency_ms", &lg->local_latency);
    json_latency(f, "ack_latency_ms", &lg->ack_latency);
    json_latency(f, "server_took_ms", &lg->server_took);
    json_latency(f, "connect_ms", &lg->connect_latency);
    json_scenario(f, lg);
    json_rss(f, lg);
    json_machine(f, lg);
    json_self_usage(f, lg);
    fprintf(f, "}\n");
}

static void print_latency_line(const char *what, const hist_t *h)
{
    fprintf(stderr, "%s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", what,
            ns_to_ms(lg_hist_quantile_ns(h, 0.50)), ns_to_ms(lg_hist_quantile_ns(h, 0.90)),
            ns_to_ms(lg_hist_quantile_ns(h, 0.99)), ns_to_ms(lg_hist_quantile_ns(h, 0.999)),
            ns_to_ms(h->max_ns));
}

static void write_human_summary(const lg_t *lg)
{
    const stats_t *s = &lg->stats;
    const hist_t *h = &lg->push_latency;
    double seconds = measured_seconds(lg);
    fprintf(stderr,
            "connections: %" PRIu32 " requested, %" PRIu32 " open, %" PRIu64 " failed, %" PRIu64
            " lost during the run\n",
            lg->conn_count, lg->open_at_events_start, s->connections_failed, s->connections_lost);
    if (lg_observing(lg))
        fprintf(stderr, "users: %" PRIu32 ", %" PRIu32 " with both connections open\n",
                lg->opt.connections, lg->users_at_events_start);
    for (int r = 0; r < FAIL_REASONS; r++)
        if (s->first_failure[r][0])
            fprintf(stderr, "  first %s failure: %s\n", FAIL_NAMES[r], s->first_failure[r]);
    fprintf(stderr,
            "events: %" PRIu64 " sent in %.1f s (%.1f/s), %" PRIu64 " acked, %" PRIu64
            " errors, %" PRIu64 " got a recs push (%.1f %%)\n",
            s->events_sent_measured, seconds,
            seconds > 0 ? (double)s->events_sent_measured / seconds : 0, s->events_acked_measured,
            s->errors_total, s->pushes_matched,
            s->events_sent_measured
                ? 100.0 * (double)s->pushes_matched / (double)s->events_sent_measured
                : 0);
    if (lg->opt.scenario == SCEN_HANDSHAKE)
        fprintf(stderr, "handshakes: %" PRIu64 " measured (%.1f/s), %" PRIu64 " failed\n",
                lg->x.handshakes_measured,
                seconds > 0 ? (double)lg->x.handshakes_measured / seconds : 0,
                s->connections_failed);
    if (lg->opt.scenario == SCEN_HANDSHAKE)
        print_latency_line("handshake", &lg->handshake_latency);
    if (lg->opt.scenario == SCEN_FANOUT) {
        fprintf(stderr,
                "fanout: %" PRIu64 " pushes posted, %" PRIu64 " accepted, %" PRIu64
                " refused; %" PRIu64 " deliveries measured (%.1f/s)\n",
                lg->x.posted_measured, lg->x.accepted_measured, lg->x.refused,
                lg->x.deliveries_measured,
                seconds > 0 ? (double)lg->x.deliveries_measured / seconds : 0);
        print_latency_line("push->delivery", &lg->delivery_latency);
    }
    if (lg->opt.stalled)
        fprintf(stderr, "stalled: %" PRIu64 " stopped reading, %" PRIu64 " closed by the server\n",
                lg->x.stalled_open, lg->x.stalled_closed);
    print_latency_line(lg_observing(lg) ? "cross-node event->recs" : "event->recs", h);
    if (lg_observing(lg)) {
        fprintf(stderr, "local recs (sending node): %" PRIu64 " (%.1f %%)\n",
                s->local_pushes_matched,
                s->events_sent_measured
                    ? 100.0 * (double)s->local_pushes_matched / (double)s->events_sent_measured
                    : 0);
        print_latency_line("local event->recs", &lg->local_latency);
    }
    fprintf(stderr, "server took_us of those lists, ms: p50 %.3f  p99 %.3f  max %.3f\n",
            ns_to_ms(lg_hist_quantile_ns(&lg->server_took, 0.50)),
            ns_to_ms(lg_hist_quantile_ns(&lg->server_took, 0.99)),
            ns_to_ms(lg->server_took.max_ns));
    if (lg->opt.server_pid > 0 && lg->actors_at_events_start && lg->rss_before_kb >= 0 &&
        lg->rss_open_kb >= 0)
        fprintf(stderr,
                "server RSS: %ld KB before, %ld KB open, %ld KB end; %.2f KB per connection\n",
                lg->rss_before_kb, lg->rss_open_kb, lg->rss_end_kb,
                (double)(lg->rss_open_kb - lg->rss_before_kb) / lg->actors_at_events_start);
    window_cpu_t w = window_cpu(lg);
    if (w.busy >= 0)
        fprintf(stderr,
                "CPU while measuring, in cores of %ld: server %.2f, loadgen %.2f, other "
                "%.2f, steal %.2f\n",
                sysconf(_SC_NPROCESSORS_ONLN), w.server, w.loadgen, w.other, w.steal);
}

int lg_emit_report(const lg_t *lg)
{
    write_human_summary(lg);
    write_json_report(stdout, lg);
    fflush(stdout);
    if (!lg->opt.json_out_path)
        return 0;
    FILE *f = fopen(lg->opt.json_out_path, "w");
    if (!f) {
        fprintf(stderr, "rankcast-loadgen: cannot write %s: %s\n", lg->opt.json_out_path,
                strerror(errno));
        return -1;
    }
    write_json_report(f, lg);
    return fclose(f) == 0 ? 0 : -1;
}
