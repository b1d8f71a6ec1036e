/* SPDX-License-Identifier: Apache-2.0 */
/* Wiring and lifecycle. Start-up order follows the dependencies (engine, backends,
 * sessions, gateway); shutdown reverses it, and a drain first gives clients `drain` and
 * time to leave while pending profile writes are flushed. */
#include "node.h"
#include "api/catalog_api.h"
#include "api/router.h"
#include "api/settings.h"
#include "api/users_api.h"
#include "auth/jwt.h"
#include "bus/bus.h"
#include "engine/engine.h"
#include "util/strmap.h"
#include "proto/mpack_read.h"
#include "proto/mpack.h"
#include "log/snapshot.h"
#include "engine/engine_snapshot.h"
#include "engine/experiments.h"
#include "engine/history.h"
#include "log/eventlog.h"
#include "net/gateway.h"
#include "net/ops.h"
#include "proto/proto.h"
#include "session/session.h"
#include "store/profile.h"
#include "store/profile_replay.h"
#include "util/clock.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
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

struct rc_node {
    const rc_config_t *cfg;
    char node_id[128];
    uv_loop_t loop;
    rc_defer_t defer;
    rc_engine_t *engine;
    rc_settings_t settings; /* the experiment and the rules */
    bool settings_ready;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    rc_eventlog_t *log; /* with --data-dir */
    char log_id[40];    /* the log's own id (LOG_ID_FILE), naming its changes in profiles */
    uint64_t last_mark; /* the newest RC_BUS_MARK written to the log */
    /* Every profile change in a log record below profile_confirmed is confirmed by a shared
     * store; found by watching the marks pass a candidate (write_profile_mark). */
    uint64_t profile_confirmed, cand_record, cand_seq;
    bool cand_set;
    rc_strmap_t changes;      /* "c:<item>" / "s:<setting>" -> change_t: kept by snapshots */
    uint64_t snapshot_covers; /* what the newest snapshot covers (0: none) */
    rc_wbuf_t scratch;
    struct replay *replay; /* the read-back in progress */
    bool warming;          /* reading the log back while listening (on_warm) */
    uv_timer_t warm_timer;
    uint32_t ticks;
    rc_sessions_t *sessions;
    rc_ops_t *ops;
    rc_gateway_t *gateway;
    rc_gateway_hooks_t hooks;
    rc_api_router_t api;
    uv_timer_t tick, drain_timer, lag_timer, flush_timer;
    uint64_t lag_expected_us;
    uv_signal_t sigint, sigterm, sighup;
    rc_jwt_verifier_t *jwt;
    bool draining, stopped;
    bool catalog_changed;             /* changes from the bus not yet settled (on_tick) */
    uint64_t churn_seen, churn_at_us; /* connections opened + closed, and when that last moved */
    uint64_t trim_churn, trim_at_us;  /* the same at the last heap trim, and when it ended */
    uint64_t drain_deadline_us;
    bool loop_ready, defer_ready, handles_started;
    bool loop_unusable; /* lws failed half-way: the loop must not run again */
};

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

struct replay;
static uint64_t replay_events(const struct replay *r);

/* While the log is read back: how far behind the node is (records estimated from the bytes
 * left). */
static void warming_part(const rc_node_t *n, rc_enc_t *e)
{
    rc_enc_key(e, "warming");
    if (!n->warming) {
        rc_enc_bool(e, false);
        return;
    }
    uint64_t left = rc_eventlog_bytes_left(n->log), behind = rc_eventlog_records_left(n->log);
    char reason[96];
    snprintf(reason, sizeof(reason), "warming (%llu events behind)", (unsigned long long)behind);
    rc_enc_map(e, 4);
    rc_enc_key(e, "reason");
    rc_enc_cstr(e, reason);
    rc_enc_key(e, "events_read");
    rc_enc_int(e, (int64_t)replay_events(n->replay));
    rc_enc_key(e, "bytes_left");
    rc_enc_int(e, (int64_t)left);
    rc_enc_key(e, "events_behind");
    rc_enc_int(e, (int64_t)behind);
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
    warming_part(n, &e);
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
    rc_metrics.catalog_items = rc_engine_catalog(n->engine)->n;
    rc_metrics.catalog_learned = rc_engine_catalog(n->engine)->n_learned;
    /* The store's own answer, as /readyz gives it: every store, the in-memory one too. */
    rc_metrics.profile_store_up = rc_profile_ready(n->profiles, reason, sizeof(reason)) == 0;
    rc_metrics_render(body, n->node_id);
    rc_experiment_render(&n->settings.experiment, body);
}

static bool from_this_node(const rc_node_t *n, const rc_bus_msg_t *m)
{
    return m->origin_node.n == strlen(n->node_id) &&
           memcmp(m->origin_node.p, n->node_id, m->origin_node.n) == 0;
}

/* The bus's messages, routed by kind: events and erasures of other nodes, and pushes of any
 * node, to the sessions; node summaries to the ops feed; catalog changes to the catalog;
 * settings (experiment, rules) here. The bus may deliver before the sessions exist or after
 * they are gone (start-up, shutdown): what is for them is then dropped, as no session could
 * take it. */
static void node_bus_deliver(void *ctx, const rc_bus_msg_t *m)
{
    rc_node_t *n = ctx;
    switch (m->kind) {
    case RC_BUS_EVENT:
        /* History (a node learning the events topic at start) counts whoever published it:
         * this node did not learn it in this run, even under the same --node-id. */
        if (n->sessions != NULL && (m->history || !from_this_node(n, m)))
            rc_sessions_remote_event(n->sessions, m);
        break;
    case RC_BUS_ERASE:
        if (n->sessions != NULL && !from_this_node(n, m))
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
        n->catalog_changed |= rc_catalog_api_apply(n->engine, m) == 0;
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

static void write_snapshot(rc_node_t *n, const char *why);

/* Tells the log how far the profile store has confirmed every change (RC_BUS_MARK), so a
 * restart sends again only the changes after it. Only a store that outlives the process
 * needs it: the in-memory store is filled again from the whole log. */
static void write_profile_mark(rc_node_t *n)
{
    if (n->log == NULL || n->warming || !n->profiles->ops->shared)
        return;
    uint64_t mark = rc_sessions_profile_mark(n->sessions);
    /* Records below the candidate hold changes numbered up to its sequence number: once the
     * mark passes it, they are all confirmed; then a new candidate is taken. */
    if (n->cand_set && mark > n->cand_seq) {
        n->profile_confirmed = n->cand_record;
        n->cand_set = false;
    }
    if (!n->cand_set) {
        n->cand_record = rc_eventlog_next_record(n->log);
        n->cand_seq = rc_sessions_last_seq(n->sessions);
        n->cand_set = true;
    }
    if (mark <= n->last_mark)
        return;
    rc_bus_msg_t m = {.kind = RC_BUS_MARK,
                      .origin_node = {n->node_id, (uint32_t)strlen(n->node_id)},
                      .seq = mark};
    if (rc_bus_publish(n->bus, &m, NULL, NULL) == 0)
        n->last_mark = mark;
}

static void on_tick(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    rc_sessions_tick(n->sessions, rc_mono_us());
    /* Catalog changes from the bus are settled once per tick, however many came. */
    if (n->catalog_changed) {
        n->catalog_changed = false;
        rc_catalog_api_settle(n->engine, n->sessions);
    }
    rc_engine_refresh_step(n->engine, REFRESH_SLICE_ITEMS);
    maybe_trim_heap(n, rc_mono_us());
    if (++n->ticks % (60000 / TICK_MS) == 0)
        rc_eventlog_maintain(n->log);
    if (n->ticks % (MARK_EVERY_MS / TICK_MS) == 0)
        write_profile_mark(n);
    if (n->cfg->snapshot_interval_s > 0 &&
        n->ticks % (uint32_t)(n->cfg->snapshot_interval_s * 1000 / TICK_MS) == 0)
        write_snapshot(n, "interval");
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
    return rc_catalog_api_handle(n->engine, n->sessions, n->bus, n->node_id, path, body, out);
}

static unsigned api_experiment_get(void *ctx, const char *path, rc_wbuf_t *out)
{
    (void)path;
    return rc_settings_experiment_get(&((rc_node_t *)ctx)->settings, out);
}

static unsigned api_experiment(void *ctx, const char *path, json_t *body, rc_wbuf_t *out)
{
    return rc_settings_experiment_post(&((rc_node_t *)ctx)->settings, path, body, out);
}

static unsigned api_rules_get(void *ctx, const char *path, rc_wbuf_t *out)
{
    (void)path;
    return rc_settings_rules_get(&((rc_node_t *)ctx)->settings, out);
}

static unsigned api_rules(void *ctx, const char *path, json_t *body, rc_wbuf_t *out)
{
    (void)path;
    return rc_settings_rules_post(&((rc_node_t *)ctx)->settings, body, out);
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
static void node_stop(rc_node_t *n)
{
    if (n->stopped)
        return;
    n->stopped = true;
    rc_sessions_flush_profiles(n->sessions);
    write_profile_mark(n); /* after a drain: everything (rc_eventlog_close() writes it) */
    write_snapshot(n, "stop");
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
    uv_close((uv_handle_t *)&n->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&n->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&n->sighup, on_handle_closed);
    rc_ops_close(n->ops);
    rc_gateway_close(n->gateway);
    rc_profile_close(n->profiles);
    rc_eventlog_close(n->log);
    rc_bus_close(n->bus);
    rc_defer_close(&n->defer);
    n->defer_ready = false;
    RC_INFO("node", "stopped", "node=%s", n->node_id);
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
        node_stop(n);
}

static void on_signal(uv_signal_t *h, int signum)
{
    rc_node_t *n = h->data;
    if (n->draining) {
        RC_WARN("node", "second signal: stopping now", "signal=%d", signum);
        node_stop(n);
        return;
    }
    n->draining = true;
    RC_INFO("node", "draining", "signal=%d connections=%u drain_ms=%lld", signum,
            rc_sessions_conn_count(n->sessions), (long long)n->cfg->drain_ms);
    rc_gateway_stop_accepting(n->gateway);
    rc_sessions_drain(n->sessions, RECONNECT_HINT_MS);
    rc_sessions_flush_profiles(n->sessions);
    n->drain_deadline_us = rc_mono_us() + (uint64_t)n->cfg->drain_ms * 1000;
    uv_timer_start(&n->drain_timer, on_drain_poll, 0, DRAIN_POLL_MS);
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
static void on_reload(uv_signal_t *h, int signum)
{
    rc_node_t *n = h->data;
    char err[512];
    rc_jwt_verifier_t *v;
    (void)signum;
    rc_gateway_reload_tls(n->gateway);
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

static int load_catalog(rc_node_t *n, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    char path[4096];
    const char *file = cfg->catalog;
    if (file[0] == '\0' && cfg->demo) {
        snprintf(path, sizeof(path), "%s/catalog/demo-catalog.jsonl", cfg->web_root);
        file = path;
    }
    if (file[0] != '\0') {
        int rc = rc_catalog_load(rc_engine_catalog(n->engine), file, err, errlen);
        if (rc != 0)
            return rc;
    }
    rc_metrics.catalog_items = rc_engine_catalog(n->engine)->n;
    RC_INFO("node", "catalog loaded", "file=\"%s\" items=%u categories=%u open=%s", file,
            rc_engine_catalog(n->engine)->n, rc_engine_catalog(n->engine)->n_categories - 1,
            rc_engine_catalog(n->engine)->open ? "true" : "false");
    return rc_engine_refresh(n->engine);
}

/* History (--import) is learned before the node serves, in the events' own time, through
 * the learning path of live events; the rate is logged (the target is 500,000 events/s on
 * one core: bench/run-import.sh). */
static int import_history(rc_node_t *n, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    if (cfg->import[0] == '\0')
        return 0;
    rc_history_t *h = rc_history_new(n->engine, cfg->import_session_gap_s * 1000);
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
    rc_metrics.catalog_items = rc_engine_catalog(n->engine)->n;
    return rc_engine_refresh(n->engine);
}

/* ---- the event log (--data-dir) ---- */

/* Random bytes the data directory keeps for good: read, or made once (atomically). */
static int data_dir_secret(const char *dir, const char *name, unsigned char *out, size_t len,
                           char *err, size_t errlen)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return RC_EIO;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = read(fd, out, len);
        close(fd);
        if (got != (ssize_t)len) {
            snprintf(err, errlen, "%s is not %zu bytes long", path, len);
            return RC_EIO;
        }
        return 0;
    }
    char tmp[620];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (getrandom(out, len, 0) != (ssize_t)len || fd < 0 || write(fd, out, len) != (ssize_t)len ||
        fsync(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RC_EIO;
    }
    close(fd);
    return 0;
}

/* Pseudonyms name users in the log, so they must name the same users after a restart:
 * without --pseudonym-key, the node keeps a key of its own in the data directory. */
#define KEY_FILE  "pseudonym.key"
#define KEY_BYTES 32
static int node_pseudonym_key(rc_node_t *n, char *err, size_t errlen)
{
    if (n->cfg->pseudonym_key[0] != '\0')
        return 0;
    unsigned char key[KEY_BYTES];
    if (data_dir_secret(n->cfg->data_dir, KEY_FILE, key, sizeof(key), err, errlen) != 0)
        return RC_EIO;
    rc_sessions_set_pseudonym_key(n->sessions, key, sizeof(key));
    return 0;
}

/* A profile in Redis records the newest change it applied from each writer
 * (rc_profile_seq_t). With a log, the writer is the log, which outlives the node's id (host
 * and pid): a restart then sends again what the store lacks, and the store knows what it has. */
#define LOG_ID_FILE  "log.id"
#define LOG_ID_BYTES 8
static int node_log_id(rc_node_t *n, char *err, size_t errlen)
{
    unsigned char id[LOG_ID_BYTES];
    if (data_dir_secret(n->cfg->data_dir, LOG_ID_FILE, id, sizeof(id), err, errlen) != 0)
        return RC_EIO;
    int at = snprintf(n->log_id, sizeof(n->log_id), "log-");
    for (size_t i = 0; i < sizeof(id); i++)
        at += snprintf(n->log_id + at, sizeof(n->log_id) - (size_t)at, "%02x", id[i]);
    return 0;
}

/* ---- snapshots (--data-dir) ---- */

/* The newest catalog change of an item, or a setting, as the log holds it (bus wire form): the
 * admin API's part of a snapshot, since retention may delete the log before it. */
typedef struct change {
    uint32_t key_len, len;
    char data[]; /* the key, then the record */
} change_t;

static void drop_change(rc_node_t *n, const char *key, size_t len)
{
    uint64_t old;
    if (rc_strmap_get(&n->changes, key, len, &old)) {
        rc_strmap_del(&n->changes, key, len);
        free((change_t *)(uintptr_t)old);
    }
}

static void keep_change(rc_node_t *n, const rc_bus_msg_t *m)
{
    char key[RC_ID_MAX + RC_SETTING_NAME_MAX + 3];
    rc_str_t name = m->kind == RC_BUS_CATALOG ? m->item_id : m->setting;
    if ((m->kind != RC_BUS_CATALOG && m->kind != RC_BUS_SETTING) || name.n > RC_ID_MAX)
        return;
    int klen = snprintf(key, sizeof(key), "%c:%.*s", m->kind == RC_BUS_CATALOG ? 'c' : 's',
                        (int)name.n, name.p);
    rc_wbuf_reset(&n->scratch);
    if (rc_bus_msg_encode(m, &n->scratch) != 0)
        return;
    change_t *c = malloc(sizeof(*c) + (size_t)klen + n->scratch.len);
    if (c == NULL)
        return;
    c->key_len = (uint32_t)klen;
    c->len = (uint32_t)n->scratch.len;
    memcpy(c->data, key, (size_t)klen);
    memcpy(c->data + klen, rc_wbuf_data(&n->scratch), n->scratch.len);
    drop_change(n, key, (size_t)klen);
    if (rc_strmap_put(&n->changes, c->data, c->key_len, (uintptr_t)c) != 0)
        free(c);
}

/* What the in-process bus appends to the log passes here. */
static void node_log_tap(void *ctx, const rc_bus_msg_t *m)
{
    keep_change(ctx, m);
}

static void free_changes(rc_node_t *n)
{
    for (size_t i = 0; i < n->changes.cap; i++)
        if (n->changes.slots[i].hash != 0)
            free((change_t *)(uintptr_t)n->changes.slots[i].value);
    rc_strmap_free(&n->changes);
}

typedef struct replay {
    rc_node_t *node;
    rc_history_t *history;
    rc_profile_replay_t *profiles;
    msgpack_zone zone;
    int64_t restore_from_ms; /* events accepted since are remembered for de-duplication */
    uint64_t covers;         /* records below are in the snapshot: only profiles read them */
    uint64_t events, undecodable;
    uint64_t t0_us; /* when the read-back began */
} replay_t;

/* A record a snapshot covers: only what the profile store may lack is taken from it. */
static void replay_profile_only(replay_t *r, const rc_bus_msg_t *m)
{
    if (m->kind == RC_BUS_EVENT)
        rc_profile_replay_event(
            r->profiles, m->profile_user, m->ev.kind, m->ev.item, m->ev.has_value, m->ev.value,
            rc_sessions_event_time(r->node->sessions, &m->ev, m->received_ms, false), m->seq);
    else if (m->kind == RC_BUS_ERASE)
        rc_profile_replay_erase(r->profiles, m->profile_user, m->seq);
    else if (m->kind == RC_BUS_MARK)
        rc_profile_replay_mark(r->profiles, m->seq);
}

/* One record of the log, read back at start: events are learned at their own time by the
 * models (the path of --import), remembered for de-duplication, and given to the profile
 * store if it may lack them (profile_replay.h); erasures, catalog changes and settings are
 * applied again, in the order they were taken. */
static void replay_record(void *ctx, uint64_t record, const void *data, size_t len)
{
    replay_t *r = ctx;
    rc_node_t *n = r->node;
    rc_bus_msg_t m;
    if (rc_bus_msg_decode(data, len, &r->zone, &m) != 0) {
        r->undecodable++;
        msgpack_zone_clear(&r->zone);
        return;
    }
    if (record < r->covers) {
        /* In the snapshot, but the profile store may lack it (profile_replay.h). */
        replay_profile_only(r, &m);
        msgpack_zone_clear(&r->zone);
        return;
    }
    switch (m.kind) {
    case RC_BUS_EVENT: {
        rc_str_t what = m.ev.item.n > 0 ? m.ev.item : m.ev.query;
        int64_t at = rc_sessions_event_time(n->sessions, &m.ev, m.received_ms, false);
        if (rc_history_learn(r->history, m.user.p, m.user.n, m.ev.kind, what.p, what.n,
                             m.ev.has_value, m.ev.value, at) == 0)
            r->events++;
        if (m.received_ms >= r->restore_from_ms)
            rc_sessions_restore_event(n->sessions, m.user, m.ev.id);
        rc_sessions_restore_seq(n->sessions, m.seq);
        rc_profile_replay_event(r->profiles, m.profile_user, m.ev.kind, m.ev.item, m.ev.has_value,
                                m.ev.value, at, m.seq);
        break;
    }
    case RC_BUS_ERASE:
        rc_sessions_restore_erase(n->sessions, m.user);
        rc_sessions_restore_seq(n->sessions, m.seq);
        rc_profile_replay_erase(r->profiles, m.profile_user, m.seq);
        break;
    case RC_BUS_MARK:
        rc_profile_replay_mark(r->profiles, m.seq);
        n->last_mark = m.seq;
        break;
    case RC_BUS_CATALOG:
        n->catalog_changed |= rc_catalog_api_apply(n->engine, &m) == 0;
        keep_change(n, &m);
        break;
    case RC_BUS_SETTING:
        rc_settings_apply(&n->settings, &m);
        keep_change(n, &m);
        break;
    default:
        break;
    }
    msgpack_zone_clear(&r->zone);
}

/* Writes what the node derived from the log up to now: a snapshot covering every record
 * appended so far (the log is synced first: a snapshot must not claim a record the log could
 * lose). Blocking: the models are serialised on the loop. */
static void write_snapshot(rc_node_t *n, const char *why)
{
    uint64_t covers = n->log != NULL ? rc_eventlog_next_record(n->log) : 0;
    if (n->log == NULL || n->warming || covers == n->snapshot_covers)
        return;
    uint64_t t0 = rc_mono_us();
    bool shared = n->profiles->ops->shared;
    if (!shared) /* the in-memory store must hold every change the snapshot covers */
        rc_sessions_flush_profiles(n->sessions);
    if (rc_eventlog_sync_now(n->log) != 0) {
        RC_ERROR("snapshot", "not written: the log cannot be synced", NULL);
        return;
    }
    rc_wbuf_t body;
    msgpack_packer pk;
    rc_wbuf_init(&body, 0);
    rc_mp_init(&pk, &body);
    msgpack_pack_map(&pk, 7);
    rc_mp_cstr(&pk, "node");
    rc_mp_cstr(&pk, n->node_id);
    rc_mp_cstr(&pk, "profile_from"); /* records from here on may hold unconfirmed changes */
    msgpack_pack_uint64(&pk, shared ? n->profile_confirmed : covers);
    rc_mp_cstr(&pk, "mark");
    msgpack_pack_uint64(&pk, n->last_mark);
    rc_mp_cstr(&pk, "changes");
    msgpack_pack_array(&pk, (uint32_t)n->changes.len);
    for (size_t i = 0; i < n->changes.cap; i++) {
        if (n->changes.slots[i].hash == 0)
            continue;
        const change_t *c = (const change_t *)(uintptr_t)n->changes.slots[i].value;
        msgpack_pack_bin(&pk, c->len);
        msgpack_pack_bin_body(&pk, c->data + c->key_len, c->len);
    }
    rc_mp_cstr(&pk, "engine");
    rc_engine_snapshot_write(n->engine, &pk);
    rc_mp_cstr(&pk, "sessions");
    rc_sessions_snapshot_write(n->sessions, &pk);
    rc_mp_cstr(&pk, "profiles");
    rc_profile_snapshot_write(n->profiles, &pk);
    char err[300];
    int rc = rc_wbuf_ok(&body);
    if (rc == 0)
        rc = rc_snapshot_write(n->cfg->data_dir, covers, rc_wbuf_data(&body), body.len, err,
                               sizeof(err));
    else
        snprintf(err, sizeof(err), "out of memory");
    if (rc == 0) {
        n->snapshot_covers = covers;
        RC_INFO("snapshot", "snapshot written", "why=%s covers=%" PRIu64 " bytes=%zu seconds=%.3f",
                why, covers, body.len, (double)(rc_mono_us() - t0) / 1e6);
    } else {
        RC_ERROR("snapshot", "snapshot not written", "error=\"%s\"", err);
    }
    rc_wbuf_free(&body);
}

/* A snapshot's body nests a few levels (body, part, list, entry): a deeper one is not ours. */
#define SNAPSHOT_DEPTH 8

/* The snapshot's body, decoded: the parts apply_snapshot() restores. */
typedef struct snapshot_parts {
    const msgpack_object *from, *mark, *changes, *engine, *sessions, *profiles;
} snapshot_parts_t;

static bool snapshot_parts(const msgpack_object *root, snapshot_parts_t *p)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return false;
    const msgpack_object_map *m = &root->via.map;
    *p = (snapshot_parts_t){rc_mp_map_get(m, "profile_from"), rc_mp_map_get(m, "mark"),
                            rc_mp_map_get(m, "changes"),      rc_mp_map_get(m, "engine"),
                            rc_mp_map_get(m, "sessions"),     rc_mp_map_get(m, "profiles")};
    return p->from != NULL && p->from->type == MSGPACK_OBJECT_POSITIVE_INTEGER && p->mark != NULL &&
           p->mark->type == MSGPACK_OBJECT_POSITIVE_INTEGER && p->changes != NULL &&
           p->changes->type == MSGPACK_OBJECT_ARRAY && p->engine != NULL && p->sessions != NULL &&
           p->profiles != NULL;
}

/* The admin API's changes a snapshot kept, applied again. */
static void apply_changes(rc_node_t *n, const msgpack_object *changes)
{
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096))
        return;
    for (uint32_t i = 0; i < changes->via.array.size; i++) {
        const msgpack_object *c = &changes->via.array.ptr[i];
        rc_bus_msg_t m;
        if (c->type == MSGPACK_OBJECT_BIN &&
            rc_bus_msg_decode(c->via.bin.ptr, c->via.bin.size, &z, &m) == 0) {
            if (m.kind == RC_BUS_CATALOG)
                rc_catalog_api_apply(n->engine, &m);
            else if (m.kind == RC_BUS_SETTING)
                rc_settings_apply(&n->settings, &m);
            keep_change(n, &m);
        }
        msgpack_zone_clear(&z);
    }
    msgpack_zone_destroy(&z);
}

/* Restores a snapshot into a node that has learned nothing yet. Returns 0, or a negative
 * code with the reason in `err`: the node then stops (a half-restored engine must not
 * serve; moving the snapshot away starts it from the log alone). */
static int apply_snapshot(rc_node_t *n, const rc_snapshot_t *snap, uint64_t *profile_from,
                          char *err, size_t errlen)
{
    msgpack_zone zone;
    msgpack_object root;
    snapshot_parts_t p;
    size_t off = 0;
    if (!msgpack_zone_init(&zone, 1 << 16)) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    if (rc_mp_check(snap->body, snap->len, SNAPSHOT_DEPTH) != 0 ||
        msgpack_unpack(snap->body, snap->len, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS ||
        !snapshot_parts(&root, &p)) {
        msgpack_zone_destroy(&zone);
        snprintf(err, errlen, "%s: not the layout this build writes", snap->path);
        return RC_EPARSE;
    }
    *profile_from = p.from->via.u64 < snap->covers ? p.from->via.u64 : snap->covers;
    n->last_mark = p.mark->via.u64;
    apply_changes(n, p.changes);
    char why[200] = "";
    int rc = rc_engine_snapshot_read(n->engine, p.engine, why, sizeof(why));
    if (rc == 0 && (rc = rc_sessions_snapshot_read(n->sessions, p.sessions)) != 0)
        snprintf(why, sizeof(why), "the sessions' part: %s", rc_strerror(rc));
    if (rc == 0 && (rc = rc_profile_snapshot_read(n->profiles, p.profiles)) != 0)
        snprintf(why, sizeof(why), "the profiles' part: %s", rc_strerror(rc));
    msgpack_zone_destroy(&zone);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", snap->path, why);
    return rc;
}

/* A snapshot is usable if its body decodes with every part this build reads. */
static bool snapshot_usable(void *ctx, const rc_snapshot_t *snap)
{
    (void)ctx;
    msgpack_zone zone;
    msgpack_object root;
    snapshot_parts_t p;
    size_t off = 0;
    if (!msgpack_zone_init(&zone, 1 << 16))
        return false;
    bool ok = rc_mp_check(snap->body, snap->len, SNAPSHOT_DEPTH) == 0 &&
              msgpack_unpack(snap->body, snap->len, &off, &zone, &root) == MSGPACK_UNPACK_SUCCESS &&
              snapshot_parts(&root, &p);
    msgpack_zone_destroy(&zone);
    if (!ok)
        RC_ERROR("snapshot", "snapshot refused: an older one, or the log, is used instead",
                 "file=\"%s\" reason=\"not the layout this build writes\"", snap->path);
    return ok;
}

/* The newest usable snapshot, restored: *covers and *profile_from say where the log must be
 * read from (both 0 without one). With --import the history is learned again at every start,
 * so a snapshot (which holds it) is not read. Returns 0 or a negative code with `err`. */
static int load_snapshot(rc_node_t *n, uint64_t *covers, uint64_t *profile_from, char *err,
                         size_t errlen)
{
    rc_snapshot_t snap;
    *covers = *profile_from = 0;
    if (n->cfg->import[0] != '\0')
        return 0;
    uint64_t t0 = rc_mono_us();
    int rc = rc_snapshot_read_newest(n->cfg->data_dir, snapshot_usable, n, &snap, err, errlen);
    if (rc == RC_ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    rc = apply_snapshot(n, &snap, profile_from, err, errlen);
    free(snap.body);
    if (rc != 0)
        return rc;
    *covers = n->snapshot_covers = snap.covers;
    RC_INFO("snapshot", "snapshot read", "file=\"%s\" covers=%" PRIu64 " bytes=%zu seconds=%.3f",
            snap.path, snap.covers, snap.len, (double)(rc_mono_us() - t0) / 1e6);
    return 0;
}

static uint64_t replay_events(const replay_t *r)
{
    return r != NULL ? r->events : 0;
}

static void replay_free(replay_t *r)
{
    if (r == NULL)
        return;
    rc_history_free(r->history);
    rc_profile_replay_free(r->profiles);
    msgpack_zone_destroy(&r->zone);
    free(r);
}

/* The read-back is over: the profile store gets what it may lack, the log takes appends, and
 * the node says what it read. */
static int finish_event_log(rc_node_t *n)
{
    replay_t *r = n->replay;
    rc_profile_replay_stats_t ps = {0};
    rc_profile_replay_finish(r->profiles, &ps);
    const rc_eventlog_stats_t *st = rc_eventlog_read_stats(n->log);
    double secs = (double)(rc_mono_us() - r->t0_us) / 1e6;
    RC_INFO("node", "profiles given what the store may lack",
            "store=%s events=%llu erasures=%llu skipped_by_mark=%llu refused=%llu",
            n->profiles->ops->name, (unsigned long long)ps.events_sent,
            (unsigned long long)ps.erasures_sent, (unsigned long long)ps.skipped,
            (unsigned long long)ps.refused);
    RC_INFO("node", "event log read back",
            "dir=\"%s\" fsync=%s records=%llu in_snapshot=%llu events_learned=%llu segments=%u "
            "bytes=%llu torn_bytes=%llu bad_segments=%u undecodable=%llu deleted_segments=%u "
            "seconds=%.3f records_per_s=%.0f",
            n->cfg->data_dir, n->cfg->fsync, (unsigned long long)st->records,
            (unsigned long long)st->skipped_records, (unsigned long long)r->events, st->segments,
            (unsigned long long)st->bytes, (unsigned long long)st->torn_bytes, st->bad_segments,
            (unsigned long long)r->undecodable, st->deleted, secs,
            secs > 0 ? (double)st->records / secs : 0);
    replay_free(r);
    n->replay = NULL;
    rc_bus_local_set_log(n->bus, n->log);
    rc_bus_local_set_tap(n->bus, node_log_tap, n);
    rc_metrics.catalog_items = rc_engine_catalog(n->engine)->n;
    if (n->catalog_changed) {
        n->catalog_changed = false;
        rc_catalog_api_settle(n->engine, n->sessions);
    }
    return rc_engine_refresh(n->engine);
}

/* Reads up to `budget` records of the log back; at its end, finishes. Returns 1 when done,
 * 0 when there is more, or a negative code with `err`. */
static int read_event_log(rc_node_t *n, uint64_t budget, char *err, size_t errlen)
{
    int rc = rc_eventlog_read(n->log, replay_record, n->replay, budget, err, errlen);
    if (rc == 1 && finish_event_log(n) != 0) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    return rc;
}

/* A long read-back runs in slices on the loop (--warm-slice-records a turn), the node
 * listening meanwhile: health checks are answered (/readyz says "warming"); sessions and the
 * admin API are refused until the node knows what it knew (a retry taken before its id is
 * read back would count twice). */
static void on_warm(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    char err[300];
    int rc = read_event_log(n, (uint64_t)n->cfg->warm_slice_records, err, sizeof(err));
    if (rc == 0)
        return;
    uv_timer_stop(t);
    if (rc < 0) {
        RC_ERROR("node", "reading the event log back failed: stopping", "error=\"%s\"", err);
        node_stop(n);
        return;
    }
    n->warming = false;
    rc_gateway_set_warming(n->gateway, false);
    RC_INFO("node", "warm: serving sessions", "node=%s", n->node_id);
}

/* Opens the log and reads it back: before listening when it is small, else in slices once
 * the node listens (--warm-listen-mb). Without a data directory the node says, loudly, what a
 * restart loses. */
static int open_event_log(rc_node_t *n, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    if (cfg->data_dir[0] == '\0') {
        if (cfg->kafka[0] == '\0')
            RC_WARN("node",
                    "no --data-dir: nothing survives a restart (acknowledged events, what the "
                    "models learned, de-duplication of retries); see docs/durability.md",
                    NULL);
        return 0;
    }
    if (cfg->kafka[0] != '\0') {
        snprintf(err, errlen,
                 "--data-dir is for the in-process bus: with --kafka the events "
                 "topic is the log");
        return RC_EINVAL;
    }
    rc_eventlog_config_t lc = {.dir = cfg->data_dir,
                               .fsync_interval_ms = cfg->fsync_interval_ms,
                               .segment_bytes = (uint64_t)cfg->log_segment_mb << 20,
                               .retain_bytes = (uint64_t)cfg->log_retain_mb << 20,
                               .retain_s = cfg->log_retain_h * 3600};
    if (rc_fsync_parse(cfg->fsync, &lc.fsync) != 0) {
        snprintf(err, errlen, "--fsync must be always, interval or never");
        return RC_EINVAL;
    }
    if (node_pseudonym_key(n, err, errlen) != 0)
        return RC_EIO;
    replay_t *r = calloc(1, sizeof(*r));
    if (r == NULL || !msgpack_zone_init(&r->zone, 4096)) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    n->replay = r;
    *r = (replay_t){.node = n,
                    .zone = r->zone,
                    .history = rc_history_new(n->engine, cfg->import_session_gap_s * 1000),
                    .profiles = rc_profile_replay_new(n->profiles, rc_engine_catalog(n->engine)),
                    .restore_from_ms = rc_wall_ms() - cfg->dedupe_restore_s * 1000,
                    .t0_us = rc_mono_us()};
    if (r->history == NULL || r->profiles == NULL) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    rc_history_from_clients(r->history);
    if (load_snapshot(n, &r->covers, &lc.read_from, err, errlen) != 0)
        return RC_EIO;
    lc.number_from = r->covers;
    n->profile_confirmed = lc.read_from;
    if ((n->log = rc_eventlog_start(&n->loop, &n->defer, &lc, err, errlen)) == NULL)
        return RC_EIO;
    uint64_t left = rc_eventlog_bytes_left(n->log);
    if (left > (uint64_t)cfg->warm_listen_mb << 20) {
        RC_INFO("node", "warming: the event log is read back while the node listens", "bytes=%llu",
                (unsigned long long)left);
        n->warming = true;
        return 0;
    }
    return read_event_log(n, UINT64_MAX, err, errlen) == 1 ? 0 : RC_EIO;
}

static int create_backends(rc_node_t *n, char *err, size_t errlen)
{
    if (n->cfg->redis[0] != '\0')
        n->profiles = rc_profile_redis_new(&n->loop, n->cfg, n->log_id[0] ? n->log_id : n->node_id,
                                           node_profile_loaded, n, err, errlen);
    else
        n->profiles = rc_profile_memory_new(&n->defer, node_profile_loaded, n,
                                            (uint32_t)n->cfg->memory_profiles_max,
                                            n->cfg->memory_profiles_ttl_s * 1000);
    if (n->profiles == NULL)
        return RC_EINVAL;
    if (n->cfg->kafka[0] != '\0') {
        n->bus = rc_bus_kafka_new(&n->loop, n->cfg, n->node_id, node_bus_deliver, n, err, errlen);
    } else {
        n->bus = rc_bus_local_new(&n->defer, node_bus_deliver, n);
        rc_metrics.bus_up = 1;
        if (n->bus == NULL)
            snprintf(err, errlen, "out of memory");
    }
    return n->bus != NULL ? 0 : RC_EINVAL;
}

static int start_loop_handles(rc_node_t *n)
{
    uv_timer_init(&n->loop, &n->tick);
    uv_timer_init(&n->loop, &n->drain_timer);
    uv_timer_init(&n->loop, &n->lag_timer);
    n->lag_timer.data = n;
    uv_timer_start(&n->lag_timer, on_lag_probe, LAG_PROBE_MS, LAG_PROBE_MS);
    uv_timer_init(&n->loop, &n->flush_timer);
    n->flush_timer.data = n;
    uv_timer_start(&n->flush_timer, on_flush_timer, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    uv_signal_init(&n->loop, &n->sigint);
    uv_signal_init(&n->loop, &n->sigterm);
    uv_signal_init(&n->loop, &n->sighup);
    n->tick.data = n->drain_timer.data = n->sigint.data = n->sigterm.data = n->sighup.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_init(&n->loop, &n->warm_timer);
    n->warm_timer.data = n;
    if (n->warming) {
        rc_gateway_set_warming(n->gateway, true);
        uv_timer_start(&n->warm_timer, on_warm, 0, 1);
    }
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);
    uv_signal_start(&n->sighup, on_reload, SIGHUP);
    n->handles_started = true;
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

rc_node_t *rc_node_new(const rc_config_t *cfg, char *err, size_t errlen)
{
    rc_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->cfg = cfg;
    rc_strmap_init(&n->changes);
    rc_wbuf_init(&n->scratch, 0);
    if (cfg->node_id[0] != '\0') {
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
    double now_s = (double)rc_wall_ms() / 1000.0;
    bool catalog_open = cfg->catalog_open || cfg->demo;
    if (catalog_open && cfg->catalog_learned_max >= cfg->max_items) {
        snprintf(err, errlen,
                 "--catalog-learned-max (%lld) must be below --max-items (%lld): the admin API "
                 "keeps the rest of the catalog",
                 (long long)cfg->catalog_learned_max, (long long)cfg->max_items);
        goto fail;
    }
    n->engine =
        rc_engine_new((uint32_t)cfg->max_items, catalog_open, (uint32_t)cfg->covisit_neighbors,
                      cfg->covisit_half_life_s, cfg->trending_half_life_s, now_s);
    if (n->engine == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc_catalog_set_learning(rc_engine_catalog(n->engine), (uint32_t)cfg->catalog_learned_max,
                            (uint32_t)cfg->catalog_learn_users);
    if (cfg->kafka[0] != '\0' && cfg->pseudonym_key[0] == '\0') {
        snprintf(err, errlen,
                 "--kafka needs --pseudonym-key: the secret, the same on every "
                 "node, under which user ids are hashed on the bus");
        goto fail;
    }
    if (check_anonymous_ids(cfg, err, errlen) != 0)
        goto fail;
    if (cfg->data_dir[0] != '\0' && cfg->kafka[0] == '\0' && node_log_id(n, err, errlen) != 0)
        goto fail;
    if (load_verifier(n, &n->jwt, err, errlen) != 0 || load_catalog(n, err, errlen) != 0 ||
        import_history(n, err, errlen) != 0 || create_backends(n, err, errlen) != 0)
        goto fail;
    n->sessions =
        rc_sessions_new(cfg, n->node_id, n->engine, n->profiles, n->bus, &rc_gateway_transport_ops);
    if (n->sessions == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc_sessions_set_verifier(n->sessions, n->jwt);
    if (rc_settings_init(&n->settings, n->engine, n->sessions, n->bus, n->node_id, cfg->experiment,
                         err, errlen) != 0)
        goto fail;
    n->settings_ready = true;
    if (open_event_log(n, err, errlen) != 0)
        goto fail;
    if (n->jwt == NULL && !cfg->anonymous && !cfg->demo)
        RC_WARN("node",
                "no client can start a session: configure --jwt-secret or "
                "--jwt-public-key, or allow --anonymous",
                NULL);
    n->ops =
        rc_ops_new(&n->loop, cfg, n->node_id, n->profiles, n->bus, rc_engine_experiment(n->engine));
    if (n->ops == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    n->api = (rc_api_router_t){api_routes, sizeof(api_routes) / sizeof(api_routes[0]), n};
    n->hooks = (rc_gateway_hooks_t){
        .ctx = n, .ready = node_ready, .metrics = node_metrics, .ops = n->ops, .api = &n->api};
    n->gateway =
        rc_gateway_new(&n->loop, cfg, n->sessions, &n->hooks, &n->loop_unusable, err, errlen);
    if (n->gateway == NULL)
        goto fail;
    if (rc_gateway_port(n->gateway) < 0) {
        snprintf(err, errlen, "cannot listen on port %lld (in use, or not permitted?)",
                 (long long)cfg->port);
        goto fail;
    }
    start_loop_handles(n);
    RC_INFO("node", "listening",
            "node=%s port=%d tls=%s tokens=%s anonymous=%s web_root=\"%s\" profiles=%s bus=%s",
            n->node_id, rc_gateway_port(n->gateway), cfg->tls_cert[0] ? "on" : "off",
            n->jwt ? "on" : "off", cfg->anonymous || cfg->demo ? "on" : "off", cfg->web_root,
            n->profiles->ops->name, n->bus->ops->name);
    return n;
fail:
    rc_node_free(n);
    return NULL;
}

int rc_node_run(rc_node_t *n)
{
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return 0;
}

void rc_node_free(rc_node_t *n)
{
    if (n == NULL)
        return;
    /* Every owner closes its own handles (lws closes its own); the loop then runs until
     * the last close callback, and only then can the loop and lws be freed. */
    if (n->handles_started) {
        node_stop(n);
    } else {
        rc_ops_close(n->ops);
        rc_gateway_close(n->gateway);
        rc_profile_close(n->profiles);
        rc_eventlog_close(n->log);
        rc_bus_close(n->bus);
        if (n->defer_ready)
            rc_defer_close(&n->defer);
    }
    if (n->loop_ready && !n->loop_unusable)
        uv_run(&n->loop, UV_RUN_DEFAULT);
    rc_gateway_free(n->gateway);
    rc_ops_free(n->ops);
    n->ops = NULL;
    n->settings_ready = false; /* they re-push lists through the sessions */
    rc_sessions_free(n->sessions);
    n->sessions = NULL;
    rc_bus_free(n->bus);
    rc_eventlog_free(n->log);
    rc_profile_store_free(n->profiles);
    rc_jwt_verifier_free(n->jwt);
    rc_engine_free(n->engine);
    rc_settings_free(&n->settings);
    free_changes(n);
    replay_free(n->replay);
    rc_wbuf_free(&n->scratch);
    if (n->loop_ready && !n->loop_unusable && uv_loop_close(&n->loop) != 0)
        RC_WARN("node", "event loop closed with handles open", NULL);
    free(n);
}
