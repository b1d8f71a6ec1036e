/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry and its Prometheus text rendering. */
#include "util/metrics.h"
#include "auth/anonid.h"
#include "auth/jwt.h"
#include "proto/proto.h"

#include "util/error.h"

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

_Static_assert(RC_JWT_REASON_COUNT <= RC_METRICS_AUTH_REASONS, "every token reason is counted");

/* The process's registry: the main thread's, and any thread's that attached none. */
static rc_metrics_t process_metrics;
_Thread_local rc_metrics_t *rc_metrics_mine = &process_metrics;

/* The registries loops attached (live NULL: a free place), each with the copy its thread last
 * published (rc_metrics_publish): a sum reads another thread's copy, never the words it is
 * counting in. Attaching, publishing, detaching and summing are rare (a loop's start and
 * stop, its tick, a scrape, an ops tick), so one lock is enough. */
typedef struct attached {
    rc_metrics_t *live;
    rc_metrics_t published;
} attached_t;
static pthread_mutex_t attached_lock = PTHREAD_MUTEX_INITIALIZER;
static attached_t attached[RC_METRICS_THREADS];
/* The counters of registries detached since start (under the lock; no gauges). */
static rc_metrics_t retired;

int rc_metrics_attach(rc_metrics_t *m)
{
    int rc = RC_EFULL;
    pthread_mutex_lock(&attached_lock);
    for (int i = 0; i < RC_METRICS_THREADS && rc != 0; i++) {
        if (attached[i].live == NULL) {
            attached[i].live = m;
            attached[i].published = *m;
            rc_metrics_mine = m;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&attached_lock);
    return rc;
}

#define WORDS (sizeof(rc_metrics_t) / sizeof(uint64_t))

/* Whether word `w` of the registry is a process-wide gauge: what each loop may set from its
 * own view of one thing (the catalog, the store, the bus), so a sum would count it N times. */
static bool process_gauge(size_t w)
{
    static const size_t at[] = {
        offsetof(rc_metrics_t, catalog_items) / sizeof(uint64_t),
        offsetof(rc_metrics_t, catalog_learned) / sizeof(uint64_t),
        offsetof(rc_metrics_t, profile_store_up) / sizeof(uint64_t),
        offsetof(rc_metrics_t, bus_up) / sizeof(uint64_t),
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        if (at[i] == w)
            return true;
    return false;
}

/* Whether word `w` is any gauge (a level, not a count): dropped when its registry goes. */
static bool gauge_word(size_t w)
{
    static const size_t at[] = {
        offsetof(rc_metrics_t, connections) / sizeof(uint64_t),
        offsetof(rc_metrics_t, sessions) / sizeof(uint64_t),
        offsetof(rc_metrics_t, profile_buffered_bytes) / sizeof(uint64_t),
        offsetof(rc_metrics_t, bus_queued) / sizeof(uint64_t),
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        if (at[i] == w)
            return true;
    return process_gauge(w);
}

/* Adds registry `m` into `out` word by word (gauges as rc_metrics_sum says). */
static void add_registry(uint64_t *out, const rc_metrics_t *m, bool gauges)
{
    const uint64_t *in = (const uint64_t *)m;
    for (size_t w = 0; w < WORDS; w++) {
        uint64_t v = in[w];
        if (process_gauge(w))
            out[w] = gauges && (int64_t)v > (int64_t)out[w] ? v : out[w];
        else if (gauges || !gauge_word(w))
            out[w] += v; /* wraps like the signed gauges' two's complement sum */
    }
}

void rc_metrics_detach(rc_metrics_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&attached_lock);
    for (int i = 0; i < RC_METRICS_THREADS; i++)
        if (attached[i].live == m)
            attached[i].live = NULL;
    add_registry((uint64_t *)&retired, m, false);
    pthread_mutex_unlock(&attached_lock);
    if (rc_metrics_mine == m)
        rc_metrics_mine = &process_metrics;
}

void rc_metrics_sum(rc_metrics_t *out)
{
    memset(out, 0, sizeof(*out));
    /* Process-wide gauges start below any value a registry holds, so the largest wins. */
    for (size_t w = 0; w < WORDS; w++)
        if (process_gauge(w))
            ((uint64_t *)out)[w] = (uint64_t)INT64_MIN;
    pthread_mutex_lock(&attached_lock);
    add_registry((uint64_t *)out, &process_metrics, true);
    add_registry((uint64_t *)out, &retired, true);
    for (int i = 0; i < RC_METRICS_THREADS; i++)
        if (attached[i].live != NULL)
            add_registry((uint64_t *)out,
                         attached[i].live == rc_metrics_mine ? attached[i].live
                                                             : &attached[i].published,
                         true);
    pthread_mutex_unlock(&attached_lock);
}

void rc_metrics_publish(void)
{
    pthread_mutex_lock(&attached_lock);
    for (int i = 0; i < RC_METRICS_THREADS; i++)
        if (attached[i].live != NULL && attached[i].live == rc_metrics_mine)
            attached[i].published = *attached[i].live;
    pthread_mutex_unlock(&attached_lock);
}

static const uint64_t bucket_le_us[RC_HIST_BUCKETS] = {
    10,   25,   50,   75,   100,   150,   200,   300,    500,    750,    1000,
    1500, 2000, 3000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

void rc_hist_observe(rc_hist_t *h, uint64_t us)
{
    int i = 0;
    while (i < RC_HIST_BUCKETS && us > bucket_le_us[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum_us += us;
}

uint64_t rc_hist_bound_us(int i)
{
    return i >= 0 && i < RC_HIST_BUCKETS ? bucket_le_us[i] : UINT64_MAX;
}

const char *rc_metrics_refused_name(int reason)
{
    static const char *const names[RC_REFUSED_REASONS] = {"per_ip",   "origin",  "token",  "path",
                                                          "draining", "framing", "warming"};
    return reason >= 0 && reason < RC_REFUSED_REASONS ? names[reason] : NULL;
}

void rc_metrics_error(int code)
{
    if (code < 4000 || code >= 4000 + RC_METRICS_MAX_CODE)
        code = 4500;
    rc_metrics.errors[code - 4000]++;
}

void rc_metrics_http(unsigned status)
{
    unsigned cls = status / 100;
    rc_metrics.http_responses[cls >= 1 && cls <= 5 ? cls : 5]++;
}

static void header(rc_wbuf_t *o, const char *name, const char *type, const char *help)
{
    rc_wbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_hist(rc_wbuf_t *o, const char *name, const char *help, const rc_hist_t *h)
{
    uint64_t cum = 0;
    header(o, name, "histogram", help);
    for (int i = 0; i < RC_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        rc_wbuf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bucket_le_us[i] / 1e6,
                       (unsigned long long)cum);
    }
    rc_wbuf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    rc_wbuf_printf(o, "%s_sum %.6f\n%s_count %llu\n", name, (double)h->sum_us / 1e6, name,
                   (unsigned long long)h->count);
}

static void counter(rc_wbuf_t *o, const char *name, const char *help, uint64_t v)
{
    header(o, name, "counter", help);
    rc_wbuf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(rc_wbuf_t *o, const char *name, const char *help, int64_t v)
{
    header(o, name, "gauge", help);
    rc_wbuf_printf(o, "%s %lld\n", name, (long long)v);
}

/* ---- process metrics ----
 * The names and meanings of Prometheus' client libraries (process_*), so the dashboards and
 * alerts written for any exporter work here. Read from /proc at each scrape: a scrape every
 * few seconds costs a few system calls and, for the descriptor count, one directory listing
 * (about 1 ms with 10,000 connections open). A value that cannot be read is left out. */

/* Clock ticks of CPU time in user and kernel mode, the start in ticks after boot, and the
 * virtual and resident sizes (bytes, pages), from /proc/self/stat (proc(5): fields 14, 15, 22,
 * 23 and 24). The command name in field 2 may hold spaces, so parsing starts after its ')'. */
typedef struct {
    unsigned long long utime, stime, starttime, vsize;
    long long rss_pages;
} proc_stat_t;

static bool read_proc_stat(proc_stat_t *ps)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    /* After ')': field 3 (state) is the first; utime is field 14, the 12th from there. */
    return p != NULL &&
           sscanf(p + 2,
                  "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
                  "%*d %*d %*d %*d %llu %llu %lld",
                  &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss_pages) == 5;
}

/* The boot time in seconds since the epoch (/proc/stat, "btime"), or -1. */
static long long boot_time_s(void)
{
    char line[256];
    long long btime = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void render_process(rc_wbuf_t *o)
{
    proc_stat_t ps;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    if (ticks > 0 && read_proc_stat(&ps)) {
        header(o, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        rc_wbuf_printf(o, "process_cpu_seconds_total %.2f\n",
                       (double)(ps.utime + ps.stime) / ticks);
        gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
              ps.rss_pages * (long long)sysconf(_SC_PAGESIZE));
        gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
              (int64_t)ps.vsize);
        long long btime = boot_time_s();
        if (btime >= 0) {
            header(o, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.");
            rc_wbuf_printf(o, "process_start_time_seconds %.2f\n",
                           (double)btime + (double)ps.starttime / ticks);
        }
    }
    long long fds = open_fds();
    if (fds >= 0)
        gauge(o, "process_open_fds", "Number of open file descriptors.", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(o, "process_max_fds", "Maximum number of open file descriptors.",
              rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : (int64_t)rl.rlim_cur);
}

void rc_metrics_render(rc_wbuf_t *o, const char *node_id)
{
    rc_metrics_t *m = malloc(sizeof(*m)); /* 6 KB: not on the loop's stack */
    if (m == NULL) {
        rc_wbuf_printf(o, "# out of memory\n");
        return;
    }
    rc_metrics_sum(m);

    header(o, "rankcast_build_info", "gauge", "Version and node id of this process.");
    rc_wbuf_printf(o, "rankcast_build_info{version=\"%s\",node=\"%s\"} 1\n", RC_VERSION, node_id);
    gauge(o, "rankcast_connections", "Open WebSocket connections.", m->connections);
    counter(o, "rankcast_connections_accepted_total", "WebSocket connections accepted.",
            m->connections_total);
    gauge(o, "rankcast_sessions", "User sessions held in memory.", m->sessions);
    gauge(o, "rankcast_catalog_items", "Items in the catalog.", m->catalog_items);
    gauge(o, "rankcast_catalog_learned_items",
          "Items an open catalog learned from traffic, held now (--catalog-learned-max).",
          m->catalog_learned);
    counter(o, "rankcast_catalog_untrusted_events_total",
            "Events on ids an open catalog has not learned (too few users, or full): "
            "acknowledged, not learned.",
            m->catalog_untrusted_events);

    header(o, "rankcast_events_received_total", "counter", "Events accepted, by kind.");
    for (int k = 0; k < RC_EVENT_KIND_COUNT; k++)
        rc_wbuf_printf(o, "rankcast_events_received_total{kind=\"%s\"} %llu\n",
                       rc_event_kind_name(k), (unsigned long long)m->events_received[k]);
    counter(o, "rankcast_events_duplicate_total",
            "Events acknowledged again but not applied (repeated event id).", m->events_duplicate);
    header(o, "rankcast_events_server_time_total", "counter",
           "Events learned at the time they arrived, not their ts_ms, which lay too far behind "
           "(stale) or ahead (ahead) of the server's clock.");
    rc_wbuf_printf(o, "rankcast_events_server_time_total{reason=\"stale\"} %llu\n",
                   (unsigned long long)m->events_server_time[0]);
    rc_wbuf_printf(o, "rankcast_events_server_time_total{reason=\"ahead\"} %llu\n",
                   (unsigned long long)m->events_server_time[1]);
    counter(o, "rankcast_pushes_sent_total", "Recommendation lists written to clients.",
            m->pushes_sent);
    counter(o, "rankcast_pushes_coalesced_total",
            "Recommendation lists replaced by a newer one before they were written.",
            m->pushes_skipped);
    counter(o, "rankcast_messages_received_total", "Protocol messages received.",
            m->messages_received);
    counter(o, "rankcast_messages_sent_total", "Protocol messages written.", m->messages_sent);
    counter(o, "rankcast_received_bytes_total", "WebSocket payload bytes received.",
            m->bytes_received);
    counter(o, "rankcast_sent_bytes_total", "WebSocket payload bytes written.", m->bytes_sent);
    header(o, "rankcast_http_requests_total", "counter",
           "HTTP requests answered by the server's routes (probes, metrics, admin API), by "
           "status class.");
    for (int c = 1; c <= 5; c++)
        rc_wbuf_printf(o, "rankcast_http_requests_total{code=\"%dxx\"} %llu\n", c,
                       (unsigned long long)m->http_responses[c]);
    counter(o, "rankcast_reranks_total", "Surface re-rankings computed.", m->rerank_total);
    gauge(o, "rankcast_profile_store_up", "1 when the profile store is usable.",
          m->profile_store_up);
    gauge(o, "rankcast_profile_buffered_bytes",
          "Profile updates held until the store confirms them.", m->profile_buffered_bytes);
    counter(o, "rankcast_profile_updates_written_total", "Profile updates the store confirmed.",
            m->profile_updates_written);
    header(o, "rankcast_profile_evictions_total", "counter",
           "In-memory profiles dropped: not written for --memory-profiles-ttl-s (ttl), or the "
           "least recently written past --memory-profiles-max (cap).");
    rc_wbuf_printf(o, "rankcast_profile_evictions_total{reason=\"ttl\"} %llu\n",
                   (unsigned long long)m->profile_evictions[RC_EVICT_TTL]);
    rc_wbuf_printf(o, "rankcast_profile_evictions_total{reason=\"cap\"} %llu\n",
                   (unsigned long long)m->profile_evictions[RC_EVICT_CAP]);
    counter(o, "rankcast_profile_updates_dropped_total",
            "Profile updates dropped (buffer full while the store is down, or refused by it).",
            m->profile_updates_dropped);
    counter(o, "rankcast_profile_commands_total",
            "Commands sent to the profile store, retries included.", m->profile_commands);
    counter(o, "rankcast_profile_loads_total", "Profiles read from the store.", m->profile_loads);
    counter(o, "rankcast_profile_load_errors_total", "Profile reads that failed.",
            m->profile_load_errors);
    counter(o, "rankcast_profile_reconnects_total", "Reconnections to the profile store.",
            m->profile_reconnects);

    header(o, "rankcast_errors_total", "counter", "Protocol errors sent to clients, by code.");
    for (int c = 0; c < RC_METRICS_MAX_CODE; c++) {
        if (m->errors[c] != 0 || rc_proto_error_name(4000 + c) != NULL) {
            const char *name = rc_proto_error_name(4000 + c);
            rc_wbuf_printf(o, "rankcast_errors_total{code=\"%d\",name=\"%s\"} %llu\n", 4000 + c,
                           name ? name : "other", (unsigned long long)m->errors[c]);
        }
    }
    counter(o, "rankcast_auth_verified_total", "Client tokens verified.", m->auth_verified);
    header(o, "rankcast_auth_refused_total", "counter", "Client tokens refused, by reason.");
    for (int r = 1; r < RC_JWT_REASON_COUNT; r++)
        rc_wbuf_printf(o, "rankcast_auth_refused_total{reason=\"%s\"} %llu\n",
                       rc_jwt_reason_name((rc_jwt_reason_t)r),
                       (unsigned long long)m->auth_refused[r]);
    _Static_assert(RC_METRICS_ANON_SLOTS == RC_ANONID_VERDICT_COUNT + 1, "anon id slots");
    header(o, "rankcast_anonymous_ids_total", "counter",
           "Anonymous ids: issued, and presented at hello by verdict.");
    rc_wbuf_printf(o, "rankcast_anonymous_ids_total{verdict=\"issued\"} %llu\n",
                   (unsigned long long)m->anon_ids[RC_ANONID_VERDICT_COUNT]);
    for (int v = 0; v < RC_ANONID_VERDICT_COUNT; v++)
        rc_wbuf_printf(o, "rankcast_anonymous_ids_total{verdict=\"%s\"} %llu\n",
                       rc_anonid_verdict_name((rc_anonid_verdict_t)v),
                       (unsigned long long)m->anon_ids[v]);
    header(o, "rankcast_handshakes_refused_total", "counter",
           "Connections refused before the WebSocket upgrade, by reason.");
    for (int r = 0; r < RC_REFUSED_REASONS; r++)
        rc_wbuf_printf(o, "rankcast_handshakes_refused_total{reason=\"%s\"} %llu\n",
                       rc_metrics_refused_name(r), (unsigned long long)m->handshakes_refused[r]);
    static const char *const http_refused[RC_HTTP_REFUSED_REASONS] = {
        "framing", "length_required", "body_timeout", "body_too_large", "headers_too_large"};
    header(o, "rankcast_http_refused_total", "counter",
           "HTTP requests refused for their framing, their headers or their body, by reason.");
    for (int r = 0; r < RC_HTTP_REFUSED_REASONS; r++)
        rc_wbuf_printf(o, "rankcast_http_refused_total{reason=\"%s\"} %llu\n", http_refused[r],
                       (unsigned long long)m->http_refused[r]);
    counter(o, "rankcast_pings_sent_total", "WebSocket pings sent to silent connections.",
            m->pings_sent);
    counter(o, "rankcast_tls_reloads_total", "Certificate reloads applied (SIGHUP).",
            m->tls_reloads);
    counter(o, "rankcast_tls_reload_failures_total",
            "Certificate reloads refused (unreadable or mismatched files); the old one stays.",
            m->tls_reload_failures);
    render_hist(o, "rankcast_event_to_push_seconds",
                "From receiving an event to writing the list it changed.", &m->event_to_push);
    render_hist(o, "rankcast_rank_seconds", "Time to re-rank one surface.", &m->rank);
    counter(o, "rankcast_app_pushes_delivered_total",
            "Application pushes queued to client connections.", m->app_pushes_delivered);
    gauge(o, "rankcast_bus_up", "1 when the bus is usable.", m->bus_up);
    gauge(o, "rankcast_bus_queued_messages", "Messages published but not yet durable on the bus.",
          m->bus_queued);
    counter(o, "rankcast_bus_published_total", "Messages published to the bus.", m->bus_published);
    counter(o, "rankcast_bus_delivered_total", "Messages the bus confirmed durable.",
            m->bus_delivered);
    counter(o, "rankcast_bus_delivery_errors_total", "Messages the bus failed to store.",
            m->bus_delivery_errors);
    counter(o, "rankcast_bus_consumed_total", "Messages received from the bus.", m->bus_consumed);
    render_hist(o, "rankcast_bus_remote_event_lag_seconds",
                "From another node accepting an event to applying it here (wall clocks).",
                &m->bus_remote_lag);
    render_hist(o, "rankcast_loop_lag_seconds",
                "How late a 20 ms timer fired: how long the event loop was busy elsewhere.",
                &m->loop_lag);
    counter(o, "rankcast_heap_trims_total",
            "Times freed heap pages were given back to the system (--heap-trim-s).", m->heap_trims);
    header(o, "rankcast_heap_trim_seconds_total", "counter",
           "Event-loop time those heap trims took.");
    rc_wbuf_printf(o, "rankcast_heap_trim_seconds_total %.6f\n", (double)m->heap_trim_us / 1e6);
    free(m);
    render_process(o);
}
