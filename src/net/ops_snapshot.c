/* SPDX-License-Identifier: Apache-2.0 */
/* The ops feed's snapshot: one JSON object with this node's rates, latency window and
 * histogram, recent events, per-variant click-through, backends and every node it hears of
 * (proto/PROTOCOL.md, "Ops feed"). */
#include "net/ops_int.h"
#include "util/clock.h"

static void enc_num(rc_enc_t *e, const char *key, double v, int places)
{
    rc_enc_key(e, key);
    rc_enc_decimal(e, v, places);
}

static void enc_int(rc_enc_t *e, const char *key, int64_t v)
{
    rc_enc_key(e, key);
    rc_enc_int(e, v);
}

static void enc_node(rc_enc_t *e, const node_summary_t *s, bool self, uint64_t now_us)
{
    uint64_t age_ms = self ? 0 : (now_us - s->heard_mono) / 1000;
    rc_enc_map(e, 12);
    rc_enc_key(e, "node");
    rc_enc_cstr(e, s->node);
    rc_enc_key(e, "self");
    rc_enc_bool(e, self);
    enc_int(e, "age_ms", (int64_t)age_ms);
    rc_enc_key(e, "stale");
    rc_enc_bool(e, s->late || age_ms > RC_OPS_PEER_STALE_MS);
    enc_int(e, "connections", s->connections);
    enc_int(e, "sessions", s->sessions);
    enc_num(e, "events_per_s", s->events_per_s, 1);
    enc_num(e, "pushes_per_s", s->pushes_per_s, 1);
    enc_num(e, "p50_us", s->p50_us, 0);
    enc_num(e, "p99_us", s->p99_us, 0);
    rc_enc_key(e, "profiles_ok");
    rc_enc_bool(e, s->profiles_ok);
    rc_enc_key(e, "bus_ok");
    rc_enc_bool(e, s->bus_ok);
    rc_enc_end(e);
}

static void enc_latency(rc_enc_t *e, const rc_ops_t *o)
{
    uint64_t w[HIST_SLOTS], lag[HIST_SLOTS], count = 0;
    double secs, lag_secs;
    rc_ops_window_counts(o, false, w, &secs);
    rc_ops_window_counts(o, true, lag, &lag_secs);
    for (int i = 0; i < HIST_SLOTS; i++)
        count += w[i];
    rc_enc_key(e, "latency");
    rc_enc_map(e, 7);
    enc_num(e, "window_s", secs, 1);
    enc_int(e, "count", (int64_t)count);
    enc_num(e, "p50_us", rc_ops_quantile_us(w, 0.5), 0);
    enc_num(e, "p99_us", rc_ops_quantile_us(w, 0.99), 0);
    enc_num(e, "p999_us", rc_ops_quantile_us(w, 0.999), 0);
    enc_num(e, "loop_lag_p99_us", rc_ops_quantile_us(lag, 0.99), 0);
    /* The buckets: counts[i] are observations <= le_us[i] (and above le_us[i-1]); the last
     * count, one more than the bounds, is everything above the last bound. */
    rc_enc_key(e, "histogram");
    rc_enc_map(e, 2);
    rc_enc_key(e, "le_us");
    rc_enc_array(e, RC_HIST_BUCKETS);
    for (int i = 0; i < RC_HIST_BUCKETS; i++)
        rc_enc_int(e, (int64_t)rc_hist_bound_us(i));
    rc_enc_end(e);
    rc_enc_key(e, "counts");
    rc_enc_array(e, HIST_SLOTS);
    for (int i = 0; i < HIST_SLOTS; i++)
        rc_enc_int(e, (int64_t)w[i]);
    rc_enc_end(e);
    rc_enc_end(e);
    rc_enc_end(e);
}

static void enc_recent(rc_enc_t *e)
{
    recent_event_t recent[SEND_RECENT];
    uint32_t n = rc_ops_tap_newest(recent, SEND_RECENT);
    rc_enc_key(e, "recent");
    rc_enc_array(e, n);
    for (uint32_t i = 0; i < n; i++) { /* newest first */
        const recent_event_t *r = &recent[i];
        rc_enc_map(e, 6);
        enc_int(e, "seq", (int64_t)r->seq);
        enc_int(e, "t_ms", r->t_ms);
        rc_enc_key(e, "user");
        rc_enc_cstr(e, r->user);
        rc_enc_key(e, "kind");
        rc_enc_cstr(e, rc_event_kind_name(r->kind));
        rc_enc_key(e, "item");
        rc_enc_cstr(e, r->item);
        rc_enc_key(e, "surface");
        rc_enc_cstr(e, r->surface);
        rc_enc_end(e);
    }
    rc_enc_end(e);
}

/* Per-variant click-through: the experiment's counters, every loop's added up, the same
 * numbers as /metrics (engine/experiments.h: impressions of a surface, clicks on an item of
 * its current list). */
static void enc_variants(const rc_ops_t *o, rc_enc_t *e)
{
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    uint32_t n = o->variants != NULL ? o->variants(o->variants_ctx, st, RC_VARIANTS_MAX) : 0;
    rc_enc_key(e, "variants");
    rc_enc_array(e, n);
    for (uint32_t i = 0; i < n; i++) {
        rc_enc_map(e, 5);
        rc_enc_key(e, "experiment");
        rc_enc_cstr(e, st[i].experiment);
        rc_enc_key(e, "variant");
        rc_enc_cstr(e, st[i].variant);
        enc_int(e, "impressions", (int64_t)st[i].impressions);
        enc_int(e, "clicks", (int64_t)st[i].clicks);
        enc_num(e, "ctr", st[i].ctr, 4);
        rc_enc_end(e);
    }
    rc_enc_end(e);
}

static void enc_backend(rc_enc_t *e, const char *key, const char *name, int rc, const char *reason,
                        const char *gauge, int64_t value)
{
    rc_enc_key(e, key);
    rc_enc_map(e, 4);
    rc_enc_key(e, "backend");
    rc_enc_cstr(e, name);
    rc_enc_key(e, "ok");
    rc_enc_bool(e, rc == 0);
    rc_enc_key(e, "reason");
    rc_enc_cstr(e, reason);
    enc_int(e, gauge, value);
    rc_enc_end(e);
}

static void enc_backends(rc_enc_t *e, rc_ops_t *o)
{
    char preason[160] = "", breason[160] = "";
    int prc = o->profiles ? rc_profile_ready(o->profiles, preason, sizeof(preason)) : 0;
    int brc = o->bus ? rc_bus_ready(o->bus, breason, sizeof(breason)) : 0;
    rc_enc_key(e, "backends");
    rc_enc_map(e, 2);
    enc_backend(e, "profiles", o->profiles ? o->profiles->ops->name : "none", prc, preason,
                "buffered_bytes", o->total.profile_buffered_bytes);
    enc_backend(e, "bus", o->bus ? o->bus->ops->name : "none", brc, breason, "queued",
                o->total.bus_queued);
    rc_enc_end(e);
}

/* A count since start and within the latency window (the last 5 s). */
static void enc_count(rc_enc_t *e, const char *key, uint64_t total, uint64_t window)
{
    rc_enc_key(e, key);
    rc_enc_map(e, 2);
    enc_int(e, "total", (int64_t)total);
    enc_int(e, "window", (int64_t)window);
    rc_enc_end(e);
}

/* What went wrong: protocol errors by code, upgrades refused by reason, slow consumers
 * closed; the same counters as rankcast_errors_total and rankcast_handshakes_refused_total. */
static void enc_problems(rc_enc_t *e, const rc_ops_t *o)
{
    const sample_t *now = rc_ops_sample_ago(o, 0),
                   *then = rc_ops_sample_ago(o, RC_OPS_WINDOW_TICKS);
    static const sample_t none;
    if (now == NULL)
        now = then = &none;
    uint32_t codes = 0, reasons = 0;
    for (int c = 0; c < RC_METRICS_MAX_CODE; c++)
        codes += o->total.errors[c] != 0;
    for (int r = 0; r < RC_REFUSED_REASONS; r++)
        reasons += o->total.handshakes_refused[r] != 0;
    rc_enc_key(e, "problems");
    rc_enc_map(e, 6);
    enc_num(e, "window_s", (double)(now->mono_us - then->mono_us) / 1e6, 1);
    enc_count(e, "errors", now->errors, now->errors - then->errors);
    enc_count(e, "refused", now->refused, now->refused - then->refused);
    enc_count(e, "slow_consumers", now->slow, now->slow - then->slow);
    rc_enc_key(e, "error_codes"); /* the codes seen since start only */
    rc_enc_array(e, codes);
    for (int c = 0; c < RC_METRICS_MAX_CODE; c++) {
        if (o->total.errors[c] == 0)
            continue;
        const char *name = rc_proto_error_name(4000 + c);
        rc_enc_map(e, 4);
        enc_int(e, "code", 4000 + c);
        rc_enc_key(e, "name");
        rc_enc_cstr(e, name ? name : "other");
        enc_int(e, "total", (int64_t)o->total.errors[c]);
        enc_int(e, "window", (int64_t)(uint32_t)(now->by_code[c] - then->by_code[c]));
        rc_enc_end(e);
    }
    rc_enc_end(e);
    rc_enc_key(e, "refused_reasons"); /* the reasons seen since start only */
    rc_enc_array(e, reasons);
    for (int r = 0; r < RC_REFUSED_REASONS; r++) {
        if (o->total.handshakes_refused[r] == 0)
            continue;
        rc_enc_map(e, 3);
        rc_enc_key(e, "reason");
        rc_enc_cstr(e, rc_metrics_refused_name(r));
        enc_int(e, "total", (int64_t)o->total.handshakes_refused[r]);
        enc_int(e, "window", (int64_t)(uint32_t)(now->by_reason[r] - then->by_reason[r]));
        rc_enc_end(e);
    }
    rc_enc_end(e);
    rc_enc_end(e);
}

/* One column of the history: a field of every point, oldest first (`places` < 0: an int). */
#define ENC_COLUMN(e, o, first, n, key, expr, places)                                              \
    do {                                                                                           \
        rc_enc_key(e, key);                                                                        \
        rc_enc_array(e, n);                                                                        \
        for (uint32_t i_ = 0; i_ < (n); i_++) {                                                    \
            const ops_point_t *p = &(o)->points[((first) + i_) % RC_OPS_HISTORY_POINTS];           \
            if ((places) < 0)                                                                      \
                rc_enc_int(e, (int64_t)(expr));                                                    \
            else                                                                                   \
                rc_enc_decimal(e, (double)(expr), places);                                         \
        }                                                                                          \
        rc_enc_end(e);                                                                             \
    } while (0)

int rc_ops_history(const rc_ops_t *o, rc_wbuf_t *out)
{
    uint32_t n = o->ticks < RC_OPS_HISTORY_POINTS ? (uint32_t)o->ticks : RC_OPS_HISTORY_POINTS;
    uint64_t first = o->ticks - n; /* the oldest point kept, as a tick */
    rc_enc_t e;
    rc_enc_init(&e, out, RC_FMT_JSON);
    rc_enc_map(&e, 14);
    rc_enc_key(&e, "type");
    rc_enc_cstr(&e, "history");
    rc_enc_key(&e, "node");
    rc_enc_cstr(&e, o->node_id);
    enc_int(&e, "interval_ms", RC_OPS_INTERVAL_MS);
    enc_int(&e, "last_seq", (int64_t)o->ticks); /* the points are the samples up to this seq */
    ENC_COLUMN(&e, o, first, n, "t_ms", p->t_ms, -1);
    ENC_COLUMN(&e, o, first, n, "events_per_s", p->events_per_s, 1);
    ENC_COLUMN(&e, o, first, n, "pushes_per_s", p->pushes_per_s, 1);
    ENC_COLUMN(&e, o, first, n, "p50_us", p->p50_us, 0);
    ENC_COLUMN(&e, o, first, n, "p99_us", p->p99_us, 0);
    ENC_COLUMN(&e, o, first, n, "p999_us", p->p999_us, 0);
    ENC_COLUMN(&e, o, first, n, "connections", p->connections, -1);
    ENC_COLUMN(&e, o, first, n, "errors", p->errors, -1);
    ENC_COLUMN(&e, o, first, n, "refused", p->refused, -1);
    ENC_COLUMN(&e, o, first, n, "slow_consumers", p->slow, -1);
    rc_enc_end(&e);
    return rc_wbuf_ok(out);
}

int rc_ops_snapshot(rc_ops_t *o, rc_wbuf_t *out)
{
    uint64_t now_us = rc_mono_us();
    rc_metrics_sum(&o->total); /* every loop's counters, as of now */
    rc_enc_t e;
    rc_enc_init(&e, out, RC_FMT_JSON);
    rc_enc_map(&e, 19);
    rc_enc_key(&e, "type");
    rc_enc_cstr(&e, "snapshot");
    enc_int(&e, "seq", (int64_t)o->ticks);
    rc_enc_key(&e, "node");
    rc_enc_cstr(&e, o->node_id);
    enc_int(&e, "t_ms", o->self.t_ms);
    enc_num(&e, "uptime_s", (double)(now_us - o->start_mono) / 1e6, 1);
    enc_int(&e, "interval_ms", RC_OPS_INTERVAL_MS);
    enc_int(&e, "connections", o->total.connections);
    enc_int(&e, "sessions", o->total.sessions);
    enc_int(&e, "dashboards", o->n_subscribers);
    const sample_t *s = rc_ops_sample_ago(o, 0);
    enc_int(&e, "events_total", s ? (int64_t)s->events : 0);
    enc_int(&e, "pushes_total", s ? (int64_t)s->pushes : 0);
    enc_num(&e, "events_per_s", o->self.events_per_s, 1);
    enc_num(&e, "pushes_per_s", o->self.pushes_per_s, 1);
    enc_latency(&e, o);
    enc_problems(&e, o);
    enc_recent(&e);
    enc_variants(o, &e);
    enc_backends(&e, o);
    rc_enc_key(&e, "nodes");
    rc_enc_array(&e, 1 + o->n_peers);
    enc_node(&e, &o->self, true, now_us);
    for (uint32_t i = 0; i < o->n_peers; i++)
        enc_node(&e, &o->peers[i], false, now_us);
    rc_enc_end(&e);
    rc_enc_end(&e);
    return rc_wbuf_ok(out);
}
