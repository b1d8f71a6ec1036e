/* SPDX-License-Identifier: Apache-2.0 */
/* Wiring and lifecycle. Start-up order follows the dependencies (engine, backends,
 * sessions, the event log of --data-dir (node_log.c), gateway); shutdown reverses it, and a
 * drain first gives clients `drain` and time to leave while pending profile writes are
 * flushed. */
#include "node_int.h"
#include "api/catalog_api.h"
#include "api/router.h"
#include "api/settings.h"
#include "api/users_api.h"
#include "auth/jwt.h"
#include "bus/bus.h"
#include "engine/engine.h"
#include "engine/engine_op.h"
#include "engine/experiments.h"
#include "engine/history.h"
#include "log/eventlog.h"
#include "net/gateway.h"
#include "net/ops.h"
#include "proto/proto.h"
#include "session/session.h"
#include "store/profile.h"
#include "util/clock.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define TICK_MS        100
#define LAG_PROBE_MS   20
#define FLUSH_EVERY_MS 10 /* write-behind in small slices (rc_sessions_flush_due) */
/* Trending lists are rebuilt a slice of the catalog per tick: about 0.2 ms of loop time
 * each, so a 100k-item catalog is rescanned every 2 s without a 4 ms stall. */
#define REFRESH_SLICE_ITEMS 5000
#define DRAIN_POLL_MS       20
#define TRIM_QUIET_US       1000000 /* connections unchanged this long: trim the heap */
#define RECONNECT_HINT_MS   1000
#define MARK_EVERY_MS       1000 /* how often the log learns what the profile store confirmed */

static void ready_part(rc_enc_t *e, const char *key, const char *backend, int rc,
                       const char *reason)
{
    rc_enc_key(e, key);
    rc_enc_map(e, 3);
    rc_enc_key(e, "backend");
    rc_enc_cstr(e, backend);
    rc_enc_key(e, "ok");
    rc_enc_bool(e, rc == 0);
    rc_enc_key(e, "reason");
    rc_enc_cstr(e, reason);
    rc_enc_end(e);
}

/* The backends' reasons are free text (error strings of hiredis, librdkafka): the JSON
 * encoder escapes them. */
static bool node_ready(void *ctx, rc_wbuf_t *body)
{
    rc_node_t *n = ctx;
    char preason[160] = "", breason[160] = "";
    int prc = rc_profile_ready(n->profiles, preason, sizeof(preason));
    int brc = rc_bus_ready(n->bus, breason, sizeof(breason));
    bool ready = prc == 0 && brc == 0 && !n->draining && !n->warming;
    rc_enc_t e;
    rc_enc_init(&e, body, RC_FMT_JSON);
    rc_enc_map(&e, 6);
    rc_enc_key(&e, "status");
    rc_enc_cstr(&e, ready ? "ready" : n->warming ? "warming" : "unavailable");
    rc_enc_key(&e, "node");
    rc_enc_cstr(&e, n->node_id);
    rc_enc_key(&e, "draining");
    rc_enc_bool(&e, n->draining);
    rc_node_log_warming(n, &e);
    ready_part(&e, "profiles", n->profiles->ops->name, prc, preason);
    ready_part(&e, "bus", n->bus->ops->name, brc, breason);
    rc_enc_end(&e);
    rc_wbuf_putc(body, '\n');
    return ready;
}

static void node_metrics(void *ctx, rc_wbuf_t *body)
{
    rc_node_t *n = ctx;
    char reason[160];
    const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(n->sessions));
    rc_metrics.catalog_items = cat->n;
    rc_metrics.catalog_learned = cat->n_learned;
    /* The store's own answer, as /readyz gives it: every store, the in-memory one too. */
    rc_metrics.profile_store_up = rc_profile_ready(n->profiles, reason, sizeof(reason)) == 0;
    rc_metrics_render(body, n->node_id);
    rc_settings_t *st = rc_node_settings_begin(n);
    rc_experiment_counts_t counts = {0};
    rc_node_experiment_counts(n, st->experiment, &counts);
    rc_experiment_render(st->experiment, &counts, body);
    rc_node_settings_end(n, false);
    rc_node_group_render(n, body);
}

/* The settings' counts with several loops: every loop's, added up. */
static void node_settings_counts(void *ctx, const rc_experiment_t *x, rc_experiment_counts_t *sum)
{
    rc_node_t *first = ctx;
    rc_node_experiment_counts(rc_node_settings_caller(first->group), x, sum);
}

/* The dashboard's per-variant click-through: the running experiment, with every loop's
 * counts added up (rc_variant_stats_fn). */
static uint32_t node_variant_stats(void *ctx, rc_variant_stats_t *out, uint32_t max)
{
    rc_node_t *n = ctx;
    const rc_experiment_t *x = rc_engine_experiment(rc_sessions_engine(n->sessions));
    if (x == NULL)
        return 0;
    rc_experiment_counts_t counts = {0};
    rc_node_experiment_counts(n, x, &counts);
    return rc_experiment_stats(x, &counts, out, max);
}

static bool from_this_node(const rc_node_t *n, const rc_bus_msg_t *m)
{
    return m->origin_node.n == strlen(n->node_id) &&
           memcmp(m->origin_node.p, n->node_id, m->origin_node.n) == 0;
}

/* The bus's messages, routed by kind: events and erasures of other nodes (or of other loops
 * of this one: m->sibling), and pushes of any node, to the sessions; node summaries to the
 * ops feed; catalog changes to the catalog; settings (experiment, rules) here. The bus may
 * deliver before the sessions exist or after they are gone (start-up, shutdown): what is
 * for them is then dropped, as no session could take it. */
void rc_node_bus_deliver(void *ctx, const rc_bus_msg_t *m)
{
    rc_node_t *n = ctx;
    switch (m->kind) {
    case RC_BUS_EVENT:
        /* History (a node learning the events topic at start) counts whoever published it:
         * this node did not learn it in this run, even under the same --node-id. */
        if (n->sessions != NULL && (m->sibling || m->history || !from_this_node(n, m)))
            rc_sessions_remote_event(n->sessions, m);
        break;
    case RC_BUS_ERASE:
        if (n->sessions != NULL && (m->sibling || !from_this_node(n, m)))
            rc_sessions_remote_erase(n->sessions, m);
        break;
    case RC_BUS_PUSH:
        if (n->sessions != NULL)
            rc_sessions_deliver_push(n->sessions, m);
        break;
    case RC_BUS_OPS:
        if (n->ops != NULL)
            rc_ops_peer_message(n->ops, m);
        break;
    case RC_BUS_CATALOG:
        n->catalog_changed |= rc_catalog_api_apply(n->sessions, m) == 0;
        break;
    case RC_BUS_SETTING:
        if (n->settings_ready)
            rc_settings_apply(&n->settings, m);
        break;
    case RC_BUS_MARK: /* for the event log only */
        break;
    }
}

/* The profile store's answers go to the sessions, which asked. */
static void node_profile_loaded(void *ctx, const char *user, size_t user_len, int status,
                                const void *data, size_t len)
{
    rc_node_t *n = ctx;
    if (n->sessions != NULL)
        rc_sessions_profile_loaded(n->sessions, user, user_len, status, data, len);
}

/* glibc gives freed memory back on its own only from the top of the heap. Connections leave
 * holes below it: a TLS handshake's temporaries are freed between the allocations its
 * connection keeps, and closed connections free whole runs of pages. malloc_trim() returns
 * those pages (bench/run-memory-return.sh: 4 s after 10,000 sessions left, 41 MB of RSS
 * instead of the 69 MB of their peak; 19.6 instead of 22.6 KB per idle wss connection). It
 * walks the allocator's free lists (about 2 ms with 10,000 wss connections open), so it runs
 * only after connections came or went: once they have stopped changing for TRIM_QUIET_US,
 * and at most every --heap-trim-s while they keep changing. */
static void maybe_trim_heap(rc_node_t *n, uint64_t now_us)
{
    uint64_t churn = rc_metrics.connections_total * 2 - (uint64_t)rc_metrics.connections;
    if (churn != n->churn_seen) {
        n->churn_seen = churn;
        n->churn_at_us = now_us;
    }
    if (n->cfg->heap_trim_s == 0 || churn == n->trim_churn)
        return;
    if (now_us - n->churn_at_us < TRIM_QUIET_US &&
        now_us - n->trim_at_us < (uint64_t)n->cfg->heap_trim_s * 1000000)
        return;
    n->trim_churn = churn;
    malloc_trim(0);
    n->trim_at_us = rc_mono_us();
    rc_metrics.heap_trims++;
    rc_metrics.heap_trim_us += n->trim_at_us - now_us;
}

static void on_tick(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    rc_metrics_publish(); /* for the sums of loops in other threads (metrics.h) */
    rc_sessions_tick(n->sessions, rc_mono_us());
    /* Catalog changes from the bus are settled once per tick, however many came. */
    if (n->catalog_changed) {
        n->catalog_changed = false;
        rc_catalog_api_settle(n->sessions);
    }
    if (n->loop_index != 0)
        return; /* the rest is the process's, done by its first loop */
    /* A slice of the refresh, as a record (engine_op.h): with several loops it goes to the
     * writer, which publishes between slices. */
    rc_engine_op_t slice;
    rc_engine_op_refresh_step(&slice, REFRESH_SLICE_ITEMS, rc_wall_ms());
    rc_sessions_submit(n->sessions, &slice);
    maybe_trim_heap(n, rc_mono_us());
    if (++n->ticks % (60000 / TICK_MS) == 0)
        rc_eventlog_maintain(n->log);
    if (n->ticks % (MARK_EVERY_MS / TICK_MS) == 0)
        rc_node_log_mark(n);
    if (n->cfg->snapshot_interval_s > 0 &&
        n->ticks % (uint32_t)(n->cfg->snapshot_interval_s * 1000 / TICK_MS) == 0)
        rc_node_log_snapshot(n, "interval");
    rc_node_log_snapshot_poll(n, false);
}

static void on_flush_timer(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    rc_sessions_flush_due(n->sessions, rc_mono_us(), RC_FLUSH_BUDGET_US);
}

/* Event-loop lag: every client waits behind whatever the loop is doing, so how late a
 * short timer fires is the server-side floor of every latency. */
static void on_lag_probe(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    uint64_t now = rc_mono_us();
    if (n->lag_expected_us != 0)
        rc_hist_observe(&rc_metrics.loop_lag,
                        now > n->lag_expected_us ? now - n->lag_expected_us : 0);
    n->lag_expected_us = now + LAG_PROBE_MS * 1000;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* The admin API: one route table, each path to the module that owns it (router.h). */
static unsigned api_push(void *ctx, const char *path, const char *body, size_t len, rc_wbuf_t *out)
{
    (void)path;
    return rc_users_api_push(((rc_node_t *)ctx)->sessions, body, len, out);
}

static unsigned api_erase(void *ctx, const char *path, const char *body, size_t len, rc_wbuf_t *out)
{
    (void)path;
    return rc_users_api_erase(((rc_node_t *)ctx)->sessions, body, len, out);
}

static unsigned api_catalog(void *ctx, const char *path, json_t *body, rc_wbuf_t *out)
{
    rc_node_t *n = ctx;
    unsigned status = rc_catalog_api_handle(n->sessions, n->bus, n->node_id, path, body, out);
    if (status != 400)
        rc_node_group_catalog_changed(n); /* after the writer published it (the settle) */
    return status;
}

/* The settings are the process's: with several loops, locked for the call (node_loops.c). */
static unsigned api_experiment_get(void *ctx, const char *path, rc_wbuf_t *out)
{
    (void)path;
    rc_node_t *n = ctx;
    unsigned status = rc_settings_experiment_get(rc_node_settings_begin(n), out);
    rc_node_settings_end(n, false);
    return status;
}

static unsigned api_experiment(void *ctx, const char *path, json_t *body, rc_wbuf_t *out)
{
    rc_node_t *n = ctx;
    unsigned status = rc_settings_experiment_post(rc_node_settings_begin(n), path, body, out);
    rc_node_settings_end(n, status != 400);
    return status;
}

static unsigned api_rules_get(void *ctx, const char *path, rc_wbuf_t *out)
{
    (void)path;
    rc_node_t *n = ctx;
    unsigned status = rc_settings_rules_get(rc_node_settings_begin(n), out);
    rc_node_settings_end(n, false);
    return status;
}

static unsigned api_rules(void *ctx, const char *path, json_t *body, rc_wbuf_t *out)
{
    (void)path;
    rc_node_t *n = ctx;
    unsigned status = rc_settings_rules_post(rc_node_settings_begin(n), body, out);
    rc_node_settings_end(n, status != 400);
    return status;
}

static const rc_api_route_t api_routes[] = {
    {"/api/v1/push", NULL, api_push, NULL},
    {"/api/v1/users/erase", NULL, api_erase, NULL},
    {"/api/v1/catalog/items", NULL, NULL, api_catalog},
    {"/api/v1/catalog/remove", NULL, NULL, api_catalog},
    {"/api/v1/experiment", api_experiment_get, NULL, api_experiment},
    {"/api/v1/experiment/stop", NULL, NULL, api_experiment},
    {"/api/v1/rules", api_rules_get, NULL, api_rules},
};

/* Final stop: the gateway closes the remaining connections, the loop then runs out of
 * handles and rc_node_run() returns. */
void rc_node_stop(rc_node_t *n)
{
    if (n->stopped)
        return;
    n->stopped = true;
    rc_sessions_flush_profiles(n->sessions);
    rc_node_log_mark(n); /* after a drain: everything (rc_eventlog_close() writes it) */
    rc_node_log_snapshot_poll(n, true); /* one begun before, then this one */
    rc_node_log_snapshot(n, "stop");
    rc_node_log_snapshot_poll(n, true);
    uv_timer_stop(&n->tick);
    uv_timer_stop(&n->drain_timer);
    uv_timer_stop(&n->lag_timer);
    uv_close((uv_handle_t *)&n->lag_timer, on_handle_closed);
    uv_timer_stop(&n->flush_timer);
    uv_close((uv_handle_t *)&n->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->tick, on_handle_closed);
    uv_close((uv_handle_t *)&n->drain_timer, on_handle_closed);
    uv_timer_stop(&n->warm_timer);
    uv_close((uv_handle_t *)&n->warm_timer, on_handle_closed);
    if (n->signals_started) {
        uv_close((uv_handle_t *)&n->sigint, on_handle_closed);
        uv_close((uv_handle_t *)&n->sigterm, on_handle_closed);
        uv_close((uv_handle_t *)&n->sighup, on_handle_closed);
    }
    rc_ops_close(n->ops);
    rc_gateway_close(n->gateway);
    rc_profile_close(n->profiles);
    rc_eventlog_close(n->log);
    rc_bus_close(n->bus);
    rc_defer_close(&n->defer);
    n->defer_ready = false;
    rc_node_group_stopped(n);
    RC_INFO("node", "stopped", "node=%s loop=%u", n->node_id, n->loop_index);
}

/* The drain ends when every client has gone, the profile store has confirmed every update
 * and the bus every message, or at the deadline. */
static void on_drain_poll(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    rc_sessions_flush_profiles(n->sessions);
    bool done = rc_sessions_conn_count(n->sessions) == 0 && rc_profile_pending(n->profiles) == 0 &&
                rc_bus_pending(n->bus) == 0;
    if (done || rc_mono_us() >= n->drain_deadline_us)
        rc_node_stop(n);
}

void rc_node_drain(rc_node_t *n, int signum)
{
    if (n->draining)
        return;
    n->draining = true;
    RC_INFO("node", "draining", "signal=%d loop=%u connections=%u drain_ms=%lld", signum,
            n->loop_index, rc_sessions_conn_count(n->sessions), (long long)n->cfg->drain_ms);
    rc_gateway_stop_accepting(n->gateway);
    rc_sessions_drain(n->sessions, RECONNECT_HINT_MS);
    rc_sessions_flush_profiles(n->sessions);
    n->drain_deadline_us = rc_mono_us() + (uint64_t)n->cfg->drain_ms * 1000;
    uv_timer_start(&n->drain_timer, on_drain_poll, 0, DRAIN_POLL_MS);
}

/* The first loop takes the signals for every loop of the process. */
static void on_signal(uv_signal_t *h, int signum)
{
    rc_node_t *n = h->data;
    if (n->draining) {
        RC_WARN("node", "second signal: stopping now", "signal=%d", signum);
        rc_node_group_drain(n, true);
        rc_node_stop(n);
        return;
    }
    rc_node_group_drain(n, false);
    rc_node_drain(n, signum);
}

/* Client tokens are verified only when a secret or a public key is configured. */
static int load_verifier(rc_node_t *n, rc_jwt_verifier_t **out, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    *out = NULL;
    if (cfg->jwt_secret[0] == '\0' && cfg->jwt_public_key[0] == '\0')
        return 0;
    rc_jwt_config_t jc = {cfg->jwt_secret, cfg->jwt_public_key, cfg->jwt_issuer, cfg->jwt_audience,
                          cfg->jwt_leeway_s};
    *out = rc_jwt_verifier_new(&jc, err, errlen);
    return *out != NULL ? 0 : RC_EINVAL;
}

/* SIGHUP: re-read what rotates without a restart (the TLS certificate, the token key).
 * Whatever fails to load leaves the current one in force. */
void rc_node_reload(rc_node_t *n)
{
    char err[512];
    rc_jwt_verifier_t *v;
    /* Counted once per signal, by the first loop: every loop's gateway reloads the pair. */
    int tls = rc_gateway_reload_tls(n->gateway);
    if (n->loop_index == 0) {
        rc_metrics.tls_reloads += tls == 1;
        rc_metrics.tls_reload_failures += tls < 0;
    }
    if (load_verifier(n, &v, err, sizeof(err)) != 0) {
        RC_WARN("node", "token key reload refused; the current one stays", "error=\"%s\"", err);
        return;
    }
    if (v != NULL) {
        rc_sessions_set_verifier(n->sessions, v);
        rc_jwt_verifier_free(n->jwt);
        n->jwt = v;
        RC_INFO("node", "token key reloaded", NULL);
    }
}

static void on_reload(uv_signal_t *h, int signum)
{
    (void)signum;
    rc_node_group_reload(h->data); /* each loop has its own gateway and verifier */
    rc_node_reload(h->data);
}

/* The catalog file into `e`; said in the log for the first copy only (`say`). */
static int load_catalog(rc_node_t *n, rc_engine_t *e, bool say, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    char path[4096];
    const char *file = cfg->catalog;
    if (file[0] == '\0' && cfg->demo) {
        snprintf(path, sizeof(path), "%s/catalog/demo-catalog.jsonl", cfg->web_root);
        file = path;
    }
    if (file[0] != '\0') {
        int rc = rc_catalog_load(rc_engine_catalog(e), file, err, errlen);
        if (rc != 0)
            return rc;
    }
    rc_metrics.catalog_items = rc_engine_catalog(e)->n;
    if (say)
        RC_INFO("node", "catalog loaded", "file=\"%s\" items=%u categories=%u open=%s", file,
                rc_engine_catalog(e)->n, rc_engine_catalog(e)->n_categories - 1,
                rc_engine_catalog(e)->open ? "true" : "false");
    return rc_engine_refresh(e);
}

/* History (--import) is learned before the node serves, in the events' own time, through
 * the learning path of live events; the rate is logged (the target is 500,000 events/s on
 * one core: bench/run-import.sh). */
static int import_history(rc_node_t *n, rc_engine_t *e, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    if (cfg->import[0] == '\0')
        return 0;
    rc_history_t *h = rc_history_new(e, cfg->import_session_gap_s * 1000);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    rc_history_stats_t st = {0};
    uint64_t t0 = rc_mono_us();
    int rc = rc_history_import_file(h, cfg->import, &st, err, errlen);
    rc_history_free(h);
    double secs = (double)(rc_mono_us() - t0) / 1e6;
    if (rc != 0)
        return rc;
    RC_INFO("node", "history imported",
            "file=\"%s\" events=%llu sessions=%llu malformed=%llu unknown_item=%llu "
            "out_of_order=%llu seconds=%.3f events_per_s=%.0f",
            cfg->import, (unsigned long long)st.learned, (unsigned long long)st.sessions,
            (unsigned long long)st.malformed, (unsigned long long)st.unknown_item,
            (unsigned long long)st.out_of_order, secs, secs > 0 ? (double)st.learned / secs : 0);
    rc_metrics.catalog_items = rc_engine_catalog(e)->n;
    return rc_engine_refresh(e);
}

/* The models as the node starts: the catalog, then the history. With several loops this
 * runs twice, for the shared models' two copies (the same calls make the same state). */
static rc_engine_t *build_engine(rc_node_t *n, bool say, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    double now_s = (double)rc_wall_ms() / 1000.0;
    bool catalog_open = cfg->catalog_open || cfg->demo;
    rc_engine_t *e =
        rc_engine_new((uint32_t)cfg->max_items, catalog_open, (uint32_t)cfg->covisit_neighbors,
                      cfg->covisit_half_life_s, cfg->trending_half_life_s, now_s);
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rc_catalog_set_learning(rc_engine_catalog(e), (uint32_t)cfg->catalog_learned_max,
                            (uint32_t)cfg->catalog_learn_users);
    if (load_catalog(n, e, say, err, errlen) != 0 || import_history(n, e, err, errlen) != 0) {
        rc_engine_free(e);
        return NULL;
    }
    return e;
}

static int create_backends(rc_node_t *n, char *err, size_t errlen)
{
    /* Redis applies each writer's updates of a profile in its order (profile_redis.c): the
     * loops of a node number theirs apart, so each is a writer of its own. */
    char writer[sizeof(n->node_id) + 16];
    snprintf(writer, sizeof(writer), "%s", n->log_id[0] ? n->log_id : n->node_id);
    if (n->loop_index > 0)
        snprintf(writer, sizeof(writer), "%s/%u", n->node_id, n->loop_index);
    if (n->cfg->redis[0] != '\0')
        n->profiles = rc_profile_redis_new(
            &n->loop, n->group != NULL ? rc_node_group_config(n->group) : n->cfg, writer,
            node_profile_loaded, n, err, errlen);
    else
        n->profiles = n->loop_index > 0
                          ? rc_profile_memory_share(rc_node_group_loop(n->group, 0)->profiles,
                                                    &n->defer, node_profile_loaded, n)
                          : rc_profile_memory_new(&n->defer, node_profile_loaded, n,
                                                  (uint32_t)n->cfg->memory_profiles_max,
                                                  n->cfg->memory_profiles_ttl_s * 1000);
    if (n->profiles == NULL)
        return RC_EINVAL;
    if (n->cfg->kafka[0] != '\0') {
        n->bus =
            rc_bus_kafka_new(&n->loop, n->cfg, n->node_id, rc_node_bus_deliver, n, err, errlen);
    } else {
        n->bus = rc_bus_local_new(&n->defer, rc_node_bus_deliver, n);
        rc_metrics.bus_up = 1;
        if (n->bus == NULL)
            snprintf(err, errlen, "out of memory");
    }
    return n->bus != NULL ? 0 : RC_EINVAL;
}

static int start_loop_handles(rc_node_t *n, bool signals)
{
    uv_timer_init(&n->loop, &n->tick);
    uv_timer_init(&n->loop, &n->drain_timer);
    uv_timer_init(&n->loop, &n->lag_timer);
    n->lag_timer.data = n;
    uv_timer_start(&n->lag_timer, on_lag_probe, LAG_PROBE_MS, LAG_PROBE_MS);
    uv_timer_init(&n->loop, &n->flush_timer);
    n->flush_timer.data = n;
    uv_timer_start(&n->flush_timer, on_flush_timer, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    n->tick.data = n->drain_timer.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_init(&n->loop, &n->warm_timer);
    n->warm_timer.data = n;
    if (n->warming) {
        rc_gateway_set_warming(n->gateway, true);
        uv_timer_start(&n->warm_timer, rc_node_log_on_warm, 0, 1);
    }
    n->handles_started = true;
    if (!signals)
        return 0;
    uv_signal_init(&n->loop, &n->sigint);
    uv_signal_init(&n->loop, &n->sigterm);
    uv_signal_init(&n->loop, &n->sighup);
    n->sigint.data = n->sigterm.data = n->sighup.data = n;
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);
    uv_signal_start(&n->sighup, on_reload, SIGHUP);
    n->signals_started = true;
    return 0;
}

/* Anonymous ids are issued and signed (src/auth/anonid.h) unless the operator asks to take
 * the ids clients choose, which makes each a bearer credential: said loudly at start. */
static int check_anonymous_ids(const rc_config_t *cfg, char *err, size_t errlen)
{
    bool chosen = strcmp(cfg->anonymous_ids, "chosen") == 0;
    if (!chosen && strcmp(cfg->anonymous_ids, "signed") != 0) {
        snprintf(err, errlen, "--anonymous-ids must be signed or chosen");
        return RC_EINVAL;
    }
    if (cfg->anon_id_key[0] != '\0' && strlen(cfg->anon_id_key) < 32) {
        snprintf(err, errlen, "--anon-id-key must be at least 32 bytes");
        return RC_EINVAL;
    }
    if (chosen && !cfg->demo && cfg->anonymous)
        RC_WARN("node",
                "--anonymous-ids chosen: clients name their own anonymous ids, so whoever knows "
                "one acts as that visitor (for tests and replays, not for production)",
                NULL);
    return 0;
}

/* A node's loop and what every loop has of its own; NULL with `err`. */
static rc_node_t *node_alloc(const rc_config_t *cfg, const char *node_id, char *err, size_t errlen)
{
    rc_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->cfg = cfg;
    rc_strmap_init(&n->changes);
    rc_wbuf_init(&n->scratch, 0);
    if (node_id != NULL) {
        snprintf(n->node_id, sizeof(n->node_id), "%s", node_id);
    } else if (cfg->node_id[0] != '\0') {
        snprintf(n->node_id, sizeof(n->node_id), "%s", cfg->node_id);
    } else {
        char host[64] = "node";
        gethostname(host, sizeof(host) - 1);
        snprintf(n->node_id, sizeof(n->node_id), "%s-%d", host, (int)getpid());
    }
    if (uv_loop_init(&n->loop) != 0) {
        snprintf(err, errlen, "cannot create the event loop");
        free(n);
        return NULL;
    }
    n->loop_ready = true;
    rc_defer_init(&n->defer, &n->loop);
    n->defer_ready = true;
    return n;
}

/* What the first version of several loops leaves out (docs/engine.md, "Loops in one node"). */
static int check_loops(const rc_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->loops <= 1)
        return 0;
    const char *with = cfg->data_dir[0]   ? "--data-dir"
                       : cfg->kafka[0]    ? "--kafka"
                       : cfg->workers > 1 ? "--workers"
                                          : NULL;
    if (with == NULL)
        return 0;
    snprintf(err, errlen,
             "--loops %lld cannot be used with %s yet: several loops keep no event log and "
             "share the in-process bus only (docs/engine.md, \"Loops in one node\")",
             (long long)cfg->loops, with);
    return RC_EINVAL;
}

/* The gateway, once the sessions and the ops feed exist: listening on the port. */
static int open_gateway(rc_node_t *n, const rc_config_t *cfg, char *err, size_t errlen)
{
    n->ops = rc_ops_new(&n->loop, cfg, n->node_id, n->profiles, n->bus, node_variant_stats, n);
    if (n->ops == NULL) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    n->api = (rc_api_router_t){api_routes, sizeof(api_routes) / sizeof(api_routes[0]), n};
    n->hooks = (rc_gateway_hooks_t){
        .ctx = n, .ready = node_ready, .metrics = node_metrics, .ops = n->ops, .api = &n->api};
    n->gateway =
        rc_gateway_new(&n->loop, cfg, n->sessions, &n->hooks, &n->loop_unusable, err, errlen);
    if (n->gateway == NULL)
        return RC_EIO;
    if (rc_gateway_port(n->gateway) < 0) {
        snprintf(err, errlen, "cannot listen on port %lld (in use, or not permitted?)",
                 (long long)cfg->port);
        return RC_EIO;
    }
    return 0;
}

rc_node_t *rc_node_new(const rc_config_t *cfg, char *err, size_t errlen)
{
    rc_node_t *n = node_alloc(cfg, NULL, err, errlen);
    if (n == NULL)
        return NULL;
    bool catalog_open = cfg->catalog_open || cfg->demo;
    if (catalog_open && cfg->catalog_learned_max >= cfg->max_items) {
        snprintf(err, errlen,
                 "--catalog-learned-max (%lld) must be below --max-items (%lld): the admin API "
                 "keeps the rest of the catalog",
                 (long long)cfg->catalog_learned_max, (long long)cfg->max_items);
        goto fail;
    }
    if (cfg->kafka[0] != '\0' && cfg->pseudonym_key[0] == '\0') {
        snprintf(err, errlen,
                 "--kafka needs --pseudonym-key: the secret, the same on every "
                 "node, under which user ids are hashed on the bus");
        goto fail;
    }
    if (check_anonymous_ids(cfg, err, errlen) != 0 || check_loops(cfg, err, errlen) != 0)
        goto fail;
    if (cfg->data_dir[0] != '\0' && cfg->kafka[0] == '\0' && rc_node_log_id(n, err, errlen) != 0)
        goto fail;
    if (load_verifier(n, &n->jwt, err, errlen) != 0 ||
        (n->engine = build_engine(n, true, err, errlen)) == NULL)
        goto fail;
    if (cfg->loops > 1) {
        rc_engine_t *e2 = build_engine(n, false, err, errlen);
        rc_engine_t *e = n->engine;
        n->engine = NULL; /* the group's from here on, even when it fails */
        if (e2 == NULL) {
            rc_engine_free(e);
            goto fail;
        }
        if (rc_node_group_new(n, e, e2, err, errlen) != 0)
            goto fail;
    }
    if (create_backends(n, err, errlen) != 0)
        goto fail;
    n->sessions =
        rc_sessions_new(cfg, n->node_id, n->engine, n->profiles, n->bus, &rc_gateway_transport_ops);
    if (n->sessions == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc_sessions_set_verifier(n->sessions, n->jwt);
    if (n->group != NULL && rc_node_group_join(n, err, errlen) != 0)
        goto fail;
    if (rc_settings_init(&n->settings, n->sessions, n->bus, n->node_id, cfg->experiment, err,
                         errlen) != 0)
        goto fail;
    n->settings_ready = true;
    if (n->group != NULL) {
        n->settings.retire = rc_node_retire_experiment;
        n->settings.counts = node_settings_counts;
        n->settings.ctx = n;
    }
    if (rc_node_log_open(n, err, errlen) != 0)
        goto fail;
    if (n->jwt == NULL && !cfg->anonymous && !cfg->demo)
        RC_WARN("node",
                "no client can start a session: configure --jwt-secret or "
                "--jwt-public-key, or allow --anonymous",
                NULL);
    if (open_gateway(n, cfg, err, errlen) != 0)
        goto fail;
    start_loop_handles(n, true);
    if (n->group != NULL && rc_node_group_start(n, err, errlen) != 0)
        goto fail;
    RC_INFO("node", "listening",
            "node=%s port=%d loops=%lld tls=%s tokens=%s anonymous=%s web_root=\"%s\" "
            "profiles=%s bus=%s",
            n->node_id, rc_gateway_port(n->gateway), (long long)cfg->loops,
            cfg->tls_cert[0] ? "on" : "off", n->jwt ? "on" : "off",
            cfg->anonymous || cfg->demo ? "on" : "off", cfg->web_root, n->profiles->ops->name,
            n->bus->ops->name);
    return n;
fail:
    rc_node_free(n);
    return NULL;
}

rc_node_t *rc_node_loop_new(rc_node_group_t *g, uint32_t index, char *err, size_t errlen)
{
    const rc_node_t *first = rc_node_group_loop(g, 0);
    const rc_config_t *cfg = rc_node_group_config(g);
    rc_node_t *n = node_alloc(cfg, first->node_id, err, errlen);
    if (n == NULL)
        return NULL;
    n->group = g;
    n->loop_index = index;
    if (load_verifier(n, &n->jwt, err, errlen) != 0 || create_backends(n, err, errlen) != 0)
        goto fail;
    n->sessions =
        rc_sessions_new(cfg, n->node_id, NULL, n->profiles, n->bus, &rc_gateway_transport_ops);
    if (n->sessions == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc_sessions_set_verifier(n->sessions, n->jwt);
    if (rc_node_group_join(n, err, errlen) != 0 || open_gateway(n, cfg, err, errlen) != 0)
        goto fail;
    rc_gateway_share_addresses(n->gateway, rc_node_group_loop(g, 0)->gateway);
    start_loop_handles(n, false);
    return n;
fail:
    rc_node_free(n);
    return NULL;
}

int rc_node_port(const rc_node_t *n)
{
    return rc_gateway_port(n->gateway);
}

int rc_node_run(rc_node_t *n)
{
    /* With several loops each counts in a registry of its own, the first too (on the thread
     * that runs it), so that no sum reads the words a loop is counting in (metrics.h). */
    rc_metrics_t *mine = n->group != NULL && n->loop_index == 0 ? calloc(1, sizeof(*mine)) : NULL;
    if (mine != NULL && rc_metrics_attach(mine) != 0) {
        free(mine);
        mine = NULL;
    }
    uv_run(&n->loop, UV_RUN_DEFAULT);
    if (mine != NULL) {
        rc_metrics_detach(mine);
        free(mine);
    }
    return 0;
}

void rc_node_free(rc_node_t *n)
{
    if (n == NULL)
        return;
    /* Every owner closes its own handles (lws closes its own); the loop then runs until
     * the last close callback, and only then can the loop and lws be freed. */
    if (n->handles_started) {
        rc_node_stop(n);
    } else {
        rc_ops_close(n->ops);
        rc_gateway_close(n->gateway);
        rc_profile_close(n->profiles);
        rc_eventlog_close(n->log);
        rc_bus_close(n->bus);
        if (n->defer_ready)
            rc_defer_close(&n->defer);
        rc_node_group_stopped(n);
    }
    if (n->loop_ready && !n->loop_unusable)
        uv_run(&n->loop, UV_RUN_DEFAULT);
    rc_gateway_free(n->gateway);
    rc_ops_free(n->ops);
    n->ops = NULL;
    n->settings_ready = false; /* they re-push lists through the sessions */
    rc_sessions_free(n->sessions);
    n->sessions = NULL;
    if (n->loop_index == 0)
        rc_node_group_finish(n); /* the other loops are gone: then the shared models */
    rc_frame_pool_release();     /* the thread may end next (a node run in a thread of its own) */
    rc_bus_free(n->bus);
    rc_eventlog_free(n->log);
    rc_profile_store_free(n->profiles);
    rc_jwt_verifier_free(n->jwt);
    rc_engine_free(n->engine);
    rc_settings_free(&n->settings);
    rc_node_log_free(n);
    rc_wbuf_free(&n->scratch);
    if (n->loop_ready && !n->loop_unusable && uv_loop_close(&n->loop) != 0)
        RC_WARN("node", "event loop closed with handles open", NULL);
    free(n);
}
