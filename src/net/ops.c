/* The ops feed (ops.h): samples the metrics registry every RC_OPS_INTERVAL_MS, keeps a short
 * history to turn counters into rates and histograms into windowed quantiles, and pushes one
 * JSON snapshot per interval to every dashboard connected with `rankcast.ops.v1`. A summary
 * travels on the bus once a second so every node can show the others. */
#include "net/ops.h"
#include "api/admin_api.h"
#include "engine/experiments.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HIST_SLOTS      (RC_HIST_BUCKETS + 1)
#define HISTORY         (RC_OPS_WINDOW_TICKS + 1)
#define PUBLISH_EVERY   2    /* ticks between summaries on the bus (1 s) */
#define HELLO_MAX_BYTES 4096 /* a dashboard's first message: {"type":"hello","token":…} */
#define HELLO_TIMEOUT_S 10
#define SEND_RECENT     25 /* newest events in each snapshot */

/* ---- the process-wide event tap (see rc_ops_record_event) ---- */

typedef struct recent_event {
    uint64_t seq;
    int64_t t_ms;
    char user[12]; /* "v-" and the first 8 characters of the bus pseudonym */
    uint8_t kind;
    char item[RC_ID_MAX + 1];
    char surface[33];
} recent_event_t;

static struct {
    uint64_t seq;
    recent_event_t ring[RC_OPS_RECENT];
} tap;

static void copy_str(char *dst, size_t cap, rc_str_t s)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(dst, s.p ? s.p : "", n);
    dst[n] = '\0';
}

void rc_ops_record_event(rc_str_t pseudo, rc_event_kind_t kind, rc_str_t item, rc_str_t surface)
{
    recent_event_t *r = &tap.ring[tap.seq % RC_OPS_RECENT];
    r->seq = ++tap.seq;
    r->t_ms = rc_wall_ms();
    /* Not snprintf: this runs for every event, and printf's parsing showed in profiles. */
    memcpy(r->user, "v-", 2);
    copy_str(r->user + 2, sizeof(r->user) - 2, (rc_str_t){pseudo.p, pseudo.n < 8 ? pseudo.n : 8});
    r->kind = (uint8_t)kind;
    copy_str(r->item, sizeof(r->item), item);
    copy_str(r->surface, sizeof(r->surface), surface);
}

/* ---- the feed's state ---- */

typedef struct sample {
    uint64_t mono_us;
    uint64_t events, pushes;
    uint64_t hist[HIST_SLOTS];
    uint64_t lag[HIST_SLOTS];
} sample_t;

/* What a node says about itself: in every snapshot, and on the bus for the others. */
typedef struct node_summary {
    char node[128];
    int64_t connections, sessions;
    double events_per_s, pushes_per_s;
    double p50_us, p99_us, p999_us;
    bool profiles_ok, bus_ok;
    int64_t t_ms;        /* when its sample was taken (its wall clock) */
    uint64_t heard_mono; /* when this node received it */
    bool late;           /* it was already old when it arrived */
} node_summary_t;

typedef struct ops_pss ops_pss_t;
struct ops_pss {
    rc_ops_t *ops;
    struct lws *wsi;
    ops_pss_t *next, *prev;
    uint64_t sent_seq; /* the last snapshot written */
    uint16_t rx_len;   /* bytes of the hello received so far (it may come in fragments) */
    char *rx;          /* the hello being reassembled */
    uint8_t state;     /* PSS_* */
    const char *error; /* sent, then the connection closes with 4010 */
};

enum { PSS_AWAIT_HELLO, PSS_WELCOME, PSS_LIVE, PSS_ERROR, PSS_CLOSING };

struct rc_ops {
    const rc_config_t *cfg;
    const char *node_id;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    const rc_experiment_t *experiment;
    uv_timer_t timer;
    bool timer_started;
    uint64_t start_mono;
    sample_t history[HISTORY]; /* a ring, newest at history[ticks % HISTORY] */
    uint64_t ticks;
    node_summary_t self;
    node_summary_t peers[RC_OPS_PEERS];
    uint32_t n_peers;
    rc_wbuf_t snap; /* the newest snapshot, with LWS_PRE headroom for every dashboard */
    uint64_t snap_seq;
    ops_pss_t subscribers; /* list head of authorised dashboards */
    uint32_t n_subscribers;
};

static uint64_t sum_events(void)
{
    uint64_t n = 0;
    for (int k = 0; k < RC_METRICS_KINDS; k++)
        n += rc_metrics.events_received[k];
    return n;
}

static const sample_t *sample_ago(const rc_ops_t *o, uint64_t ticks_back)
{
    uint64_t have = o->ticks < HISTORY ? o->ticks : HISTORY;
    if (have == 0)
        return NULL;
    if (ticks_back >= have)
        ticks_back = have - 1;
    return &o->history[(o->ticks - 1 - ticks_back) % HISTORY];
}

/* Counts of the window ending at the newest sample: the difference of two cumulative
 * histograms. */
static void window_counts(const rc_ops_t *o, bool lag, uint64_t *out, double *seconds)
{
    const sample_t *now = sample_ago(o, 0), *then = sample_ago(o, RC_OPS_WINDOW_TICKS);
    memset(out, 0, HIST_SLOTS * sizeof(*out));
    *seconds = 0;
    if (now == NULL)
        return;
    for (int i = 0; i < HIST_SLOTS; i++)
        out[i] = lag ? now->lag[i] - then->lag[i] : now->hist[i] - then->hist[i];
    *seconds = (double)(now->mono_us - then->mono_us) / 1e6;
}

double rc_ops_quantile_us(const uint64_t *counts, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < HIST_SLOTS; i++)
        total += counts[i];
    if (total == 0)
        return 0;
    double rank = q * (double)total, cum = 0;
    for (int i = 0; i < HIST_SLOTS; i++) {
        if (counts[i] == 0 || cum + (double)counts[i] < rank) {
            cum += (double)counts[i];
            continue;
        }
        double lo = i == 0 ? 0 : (double)rc_hist_bound_us(i - 1);
        if (i == RC_HIST_BUCKETS)
            return lo; /* beyond the last bound: all that is known is "more than" */
        double hi = (double)rc_hist_bound_us(i);
        return lo + (hi - lo) * ((rank - cum) / (double)counts[i]);
    }
    return (double)rc_hist_bound_us(RC_HIST_BUCKETS - 1);
}

/* A rate over the last second (two samples): recent enough to move with a click, smooth
 * enough not to flicker between 0 and 2/interval. */
static double rate_per_s(const rc_ops_t *o, bool events)
{
    const sample_t *now = sample_ago(o, 0), *then = sample_ago(o, 2);
    if (now == NULL || now == then || now->mono_us <= then->mono_us)
        return 0;
    uint64_t d = events ? now->events - then->events : now->pushes - then->pushes;
    return (double)d * 1e6 / (double)(now->mono_us - then->mono_us);
}

static void update_self(rc_ops_t *o, int64_t now_ms)
{
    char reason[160];
    uint64_t w[HIST_SLOTS];
    double secs;
    window_counts(o, false, w, &secs);
    node_summary_t *s = &o->self;
    snprintf(s->node, sizeof(s->node), "%s", o->node_id);
    s->connections = rc_metrics.connections;
    s->sessions = rc_metrics.sessions;
    s->events_per_s = rate_per_s(o, true);
    s->pushes_per_s = rate_per_s(o, false);
    s->p50_us = rc_ops_quantile_us(w, 0.5);
    s->p99_us = rc_ops_quantile_us(w, 0.99);
    s->p999_us = rc_ops_quantile_us(w, 0.999);
    s->profiles_ok =
        o->profiles == NULL || rc_profile_ready(o->profiles, reason, sizeof(reason)) == 0;
    s->bus_ok = o->bus == NULL || rc_bus_ready(o->bus, reason, sizeof(reason)) == 0;
    s->t_ms = now_ms;
}

/* ---- summaries on the bus ---- */

static void pack_double(msgpack_packer *pk, const char *k, double v)
{
    rc_mp_cstr(pk, k);
    msgpack_pack_double(pk, v);
}

static void pack_int(msgpack_packer *pk, const char *k, int64_t v)
{
    rc_mp_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

static void publish_summary(rc_ops_t *o)
{
    rc_wbuf_t buf;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object data;
    size_t off = 0;
    const node_summary_t *s = &o->self;

    if (o->bus == NULL)
        return;
    rc_wbuf_init(&buf, 0);
    rc_mp_init(&pk, &buf);
    msgpack_pack_map(&pk, 10);
    pack_int(&pk, "c", s->connections);
    pack_int(&pk, "s", s->sessions);
    pack_double(&pk, "e", s->events_per_s);
    pack_double(&pk, "p", s->pushes_per_s);
    pack_double(&pk, "q50", s->p50_us);
    pack_double(&pk, "q99", s->p99_us);
    pack_double(&pk, "q999", s->p999_us);
    rc_mp_cstr(&pk, "po");
    s->profiles_ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    rc_mp_cstr(&pk, "bo");
    s->bus_ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    pack_int(&pk, "t", s->t_ms);
    if (rc_wbuf_ok(&buf) == 0 && msgpack_zone_init(&zone, 512)) {
        if (msgpack_unpack(rc_wbuf_data(&buf), buf.len, &off, &zone, &data) ==
            MSGPACK_UNPACK_SUCCESS) {
            rc_bus_msg_t m = {.kind = RC_BUS_OPS,
                              .origin_node = {o->node_id, (uint32_t)strlen(o->node_id)},
                              .data = &data};
            /* Best effort: a summary the bus cannot take now is replaced in a second. */
            (void)rc_bus_publish(o->bus, &m, NULL, NULL);
        }
        msgpack_zone_destroy(&zone);
    }
    rc_wbuf_free(&buf);
}

static node_summary_t *peer_slot(rc_ops_t *o, rc_str_t node)
{
    node_summary_t *oldest = NULL;
    for (uint32_t i = 0; i < o->n_peers; i++) {
        node_summary_t *p = &o->peers[i];
        if (strlen(p->node) == node.n && memcmp(p->node, node.p, node.n) == 0)
            return p;
        if (oldest == NULL || p->heard_mono < oldest->heard_mono)
            oldest = p;
    }
    node_summary_t *p = o->n_peers < RC_OPS_PEERS ? &o->peers[o->n_peers++] : oldest;
    memset(p, 0, sizeof(*p));
    copy_str(p->node, sizeof(p->node), node);
    return p;
}

#define PEER_MAX_AGE_MS 10000 /* an older summary (delayed on the bus) is not news */

void rc_ops_peer_message(rc_ops_t *o, const rc_bus_msg_t *m)
{
    if (m->kind != RC_BUS_OPS || m->data == NULL || m->data->type != MSGPACK_OBJECT_MAP ||
        m->origin_node.n == 0 || m->origin_node.n >= sizeof(o->self.node) ||
        (m->origin_node.n == strlen(o->node_id) &&
         memcmp(m->origin_node.p, o->node_id, m->origin_node.n) == 0))
        return;
    node_summary_t *p = peer_slot(o, m->origin_node);
    for (uint32_t i = 0; i < m->data->via.map.size; i++) {
        const msgpack_object *k = &m->data->via.map.ptr[i].key, *v = &m->data->via.map.ptr[i].val;
        double x = 0;
        rc_mp_number(v, &x); /* 0 for anything but a number */
        bool yes = rc_mp_is_true(v);
        if (rc_mp_str_is(k, "c"))
            p->connections = (int64_t)x;
        else if (rc_mp_str_is(k, "s"))
            p->sessions = (int64_t)x;
        else if (rc_mp_str_is(k, "e"))
            p->events_per_s = x;
        else if (rc_mp_str_is(k, "p"))
            p->pushes_per_s = x;
        else if (rc_mp_str_is(k, "q50"))
            p->p50_us = x;
        else if (rc_mp_str_is(k, "q99"))
            p->p99_us = x;
        else if (rc_mp_str_is(k, "q999"))
            p->p999_us = x;
        else if (rc_mp_str_is(k, "po"))
            p->profiles_ok = yes;
        else if (rc_mp_str_is(k, "bo"))
            p->bus_ok = yes;
        else if (rc_mp_str_is(k, "t"))
            p->t_ms = (int64_t)x;
    }
    p->heard_mono = rc_mono_us();
    /* Judged by the sender's clock: nodes of one cluster are assumed to keep time. */
    p->late = p->t_ms > 0 && rc_wall_ms() - p->t_ms > PEER_MAX_AGE_MS;
}

static void forget_silent_peers(rc_ops_t *o, uint64_t now_us)
{
    for (uint32_t i = 0; i < o->n_peers;) {
        if (now_us - o->peers[i].heard_mono > (uint64_t)RC_OPS_PEER_GONE_MS * 1000)
            o->peers[i] = o->peers[--o->n_peers];
        else
            i++;
    }
}

/* ---- the snapshot ---- */

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
    window_counts(o, false, w, &secs);
    window_counts(o, true, lag, &lag_secs);
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
    uint32_t n = tap.seq < SEND_RECENT ? (uint32_t)tap.seq : SEND_RECENT;
    rc_enc_key(e, "recent");
    rc_enc_array(e, n);
    for (uint32_t i = 0; i < n; i++) { /* newest first */
        const recent_event_t *r = &tap.ring[(tap.seq - 1 - i) % RC_OPS_RECENT];
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

/* Per-variant click-through: the experiment's own counters, the same numbers as /metrics
 * (engine/experiments.h: impressions of a surface, clicks on an item of its current list). */
static void enc_variants(const rc_ops_t *o, rc_enc_t *e)
{
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    uint32_t n =
        o->experiment != NULL ? rc_experiment_stats(o->experiment, st, RC_VARIANTS_MAX) : 0;
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
                "buffered_bytes", rc_metrics.profile_buffered_bytes);
    enc_backend(e, "bus", o->bus ? o->bus->ops->name : "none", brc, breason, "queued",
                rc_metrics.bus_queued);
    rc_enc_end(e);
}

int rc_ops_snapshot(rc_ops_t *o, rc_wbuf_t *out)
{
    uint64_t now_us = rc_mono_us();
    rc_enc_t e;
    rc_enc_init(&e, out, RC_FMT_JSON);
    rc_enc_map(&e, 18);
    rc_enc_key(&e, "type");
    rc_enc_cstr(&e, "snapshot");
    enc_int(&e, "seq", (int64_t)o->ticks);
    rc_enc_key(&e, "node");
    rc_enc_cstr(&e, o->node_id);
    enc_int(&e, "t_ms", o->self.t_ms);
    enc_num(&e, "uptime_s", (double)(now_us - o->start_mono) / 1e6, 1);
    enc_int(&e, "interval_ms", RC_OPS_INTERVAL_MS);
    enc_int(&e, "connections", rc_metrics.connections);
    enc_int(&e, "sessions", rc_metrics.sessions);
    enc_int(&e, "dashboards", o->n_subscribers);
    const sample_t *s = sample_ago(o, 0);
    enc_int(&e, "events_total", s ? (int64_t)s->events : 0);
    enc_int(&e, "pushes_total", s ? (int64_t)s->pushes : 0);
    enc_num(&e, "events_per_s", o->self.events_per_s, 1);
    enc_num(&e, "pushes_per_s", o->self.pushes_per_s, 1);
    enc_latency(&e, o);
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

/* ---- sampling and the timer ---- */

void rc_ops_sample(rc_ops_t *o, uint64_t now_us, int64_t now_ms)
{
    sample_t *s = &o->history[o->ticks % HISTORY];
    s->mono_us = now_us;
    s->events = sum_events();
    s->pushes = rc_metrics.pushes_sent;
    memcpy(s->hist, rc_metrics.event_to_push.counts, sizeof(s->hist));
    memcpy(s->lag, rc_metrics.loop_lag.counts, sizeof(s->lag));
    o->ticks++;
    update_self(o, now_ms);
    forget_silent_peers(o, now_us);
}

static void broadcast(rc_ops_t *o)
{
    if (o->n_subscribers == 0)
        return;
    rc_wbuf_reset(&o->snap);
    if (rc_ops_snapshot(o, &o->snap) != 0)
        return;
    o->snap_seq = o->ticks;
    for (ops_pss_t *p = o->subscribers.next; p != &o->subscribers; p = p->next)
        lws_callback_on_writable(p->wsi);
}

static void on_tick(uv_timer_t *t)
{
    rc_ops_t *o = t->data;
    rc_ops_sample(o, rc_mono_us(), rc_wall_ms());
    if (o->ticks % PUBLISH_EVERY == 0)
        publish_summary(o);
    broadcast(o);
}

rc_ops_t *rc_ops_new(uv_loop_t *loop, const rc_config_t *cfg, const char *node_id,
                     rc_profile_store_t *profiles, rc_bus_t *bus,
                     const struct rc_experiment *experiment)
{
    rc_ops_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->cfg = cfg;
    o->node_id = node_id;
    o->profiles = profiles;
    o->bus = bus;
    o->experiment = experiment;
    o->start_mono = rc_mono_us();
    o->subscribers.next = o->subscribers.prev = &o->subscribers;
    rc_wbuf_init(&o->snap, LWS_PRE);
    rc_ops_sample(o, o->start_mono, rc_wall_ms());
    if (loop != NULL && uv_timer_init(loop, &o->timer) == 0) {
        o->timer.data = o;
        uv_timer_start(&o->timer, on_tick, RC_OPS_INTERVAL_MS, RC_OPS_INTERVAL_MS);
        o->timer_started = true;
    }
    return o;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void rc_ops_close(rc_ops_t *o)
{
    if (o == NULL || !o->timer_started)
        return;
    uv_timer_stop(&o->timer);
    uv_close((uv_handle_t *)&o->timer, on_timer_closed);
    o->timer_started = false;
}

void rc_ops_free(rc_ops_t *o)
{
    if (o == NULL)
        return;
    /* Dashboards still listed (their close callbacks have not come) must not point here,
     * nor at each other through the list head freed below. */
    for (ops_pss_t *p = o->subscribers.next, *next; p != &o->subscribers; p = next) {
        next = p->next;
        p->ops = NULL;
        p->next = p->prev = NULL;
    }
    rc_wbuf_free(&o->snap);
    free(o);
}

/* ---- the WebSocket side ---- */

/* The feed is open in demo mode without an admin token, closed without either, and needs
 * the token whenever one is set. Returns NULL when allowed, else the reason. */
static const char *check_hello(const rc_ops_t *o, const char *msg, size_t len)
{
    const rc_config_t *cfg = o->cfg;
    json_t *j = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *token = json_object_get(j, "token");
    const char *why = NULL;
    if (type == NULL || strcmp(type, "hello") != 0)
        why = "the first message must be {\"type\":\"hello\",\"token\":...}";
    else if (cfg->admin_token[0] != '\0')
        why =
            json_is_string(token) && rc_api_token_equal(json_string_value(token),
                                                        json_string_length(token), cfg->admin_token)
                ? NULL
                : "a valid admin token is required";
    else if (!cfg->demo)
        why = "the ops feed is off: start the server with --admin-token";
    json_decref(j);
    return why;
}

static void subscribe_pss(rc_ops_t *o, ops_pss_t *p)
{
    p->next = o->subscribers.next;
    p->prev = &o->subscribers;
    o->subscribers.next->prev = p;
    o->subscribers.next = p;
    o->n_subscribers++;
}

static void unsubscribe_pss(ops_pss_t *p)
{
    if (p->next == NULL)
        return;
    p->prev->next = p->next;
    p->next->prev = p->prev;
    p->next = p->prev = NULL;
    if (p->ops != NULL)
        p->ops->n_subscribers--;
}

static int ops_filter(struct lws *wsi)
{
    char uri[16];
    /* The feed lives on /ops only, as the client protocol lives on /ws only. */
    return lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0 && strcmp(uri, "/ops") == 0
               ? 0
               : 1;
}

static int ops_established(struct lws *wsi, ops_pss_t *p)
{
    memset(p, 0, sizeof(*p));
    p->ops = lws_get_protocol(wsi)->user;
    p->wsi = wsi;
    p->state = PSS_AWAIT_HELLO;
    if (p->ops == NULL)
        return -1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_AWAITING_CLIENT_HS_SEND, HELLO_TIMEOUT_S);
    return 0;
}

static int ops_receive(struct lws *wsi, ops_pss_t *p, const void *in, size_t len)
{
    if (p->ops == NULL || p->state != PSS_AWAIT_HELLO)
        return 0; /* after the hello the feed only talks */
    if (p->rx_len + len > HELLO_MAX_BYTES) {
        p->state = PSS_ERROR;
        p->error = "the hello is too large";
    } else {
        char *grown = realloc(p->rx, p->rx_len + len);
        if (grown == NULL)
            return -1;
        p->rx = grown;
        memcpy(p->rx + p->rx_len, in, len);
        p->rx_len = (uint16_t)(p->rx_len + len);
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
            return 0;
        p->error = check_hello(p->ops, p->rx, p->rx_len);
        p->state = p->error ? PSS_ERROR : PSS_WELCOME;
    }
    free(p->rx);
    p->rx = NULL;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (p->state == PSS_WELCOME)
        subscribe_pss(p->ops, p);
    else
        RC_WARN("ops", "dashboard refused", "reason=\"%s\"", p->error);
    lws_callback_on_writable(wsi);
    return 0;
}

static int write_text(struct lws *wsi, rc_wbuf_t *b)
{
    int n = lws_write(wsi, (unsigned char *)rc_wbuf_data(b), b->len, LWS_WRITE_TEXT);
    return n < (int)b->len ? -1 : 0;
}

/* The welcome or the error: small messages built on the spot. */
static int write_small(struct lws *wsi, ops_pss_t *p)
{
    rc_wbuf_t b;
    rc_enc_t e;
    rc_wbuf_init(&b, LWS_PRE);
    rc_enc_init(&e, &b, RC_FMT_JSON);
    if (p->state == PSS_WELCOME) {
        rc_enc_map(&e, 4);
        rc_enc_key(&e, "type");
        rc_enc_cstr(&e, "welcome");
        rc_enc_key(&e, "node");
        rc_enc_cstr(&e, p->ops->node_id);
        enc_int(&e, "interval_ms", RC_OPS_INTERVAL_MS);
        rc_enc_key(&e, "auth");
        rc_enc_cstr(&e, p->ops->cfg->admin_token[0] ? "token" : "open");
    } else {
        rc_enc_map(&e, 4);
        rc_enc_key(&e, "type");
        rc_enc_cstr(&e, "error");
        enc_int(&e, "code", RC_PERR_UNAUTHORIZED);
        rc_enc_key(&e, "name");
        rc_enc_cstr(&e, "unauthorized");
        rc_enc_key(&e, "message");
        rc_enc_cstr(&e, p->error);
    }
    rc_enc_end(&e);
    int rc = rc_wbuf_ok(&b) == 0 ? write_text(wsi, &b) : -1;
    rc_wbuf_free(&b);
    return rc;
}

static int ops_writeable(struct lws *wsi, ops_pss_t *p)
{
    if (p->ops == NULL || p->state == PSS_CLOSING || p->state == PSS_AWAIT_HELLO)
        return 0;
    if (p->state == PSS_ERROR) {
        if (write_small(wsi, p) != 0)
            return -1;
        /* As in the gateway: a close through the keep-alive timeout sends our code. */
        p->state = PSS_CLOSING;
        lws_close_reason(wsi, (enum lws_close_status)RC_PERR_UNAUTHORIZED,
                         (unsigned char *)"unauthorized", 12);
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
        return 0;
    }
    if (p->state == PSS_WELCOME) {
        if (write_small(wsi, p) != 0)
            return -1;
        p->state = PSS_LIVE;
        /* The newest snapshot at once, so a dashboard has numbers before the next tick. */
        rc_wbuf_reset(&p->ops->snap);
        if (rc_ops_snapshot(p->ops, &p->ops->snap) != 0)
            return -1;
        p->ops->snap_seq = p->ops->ticks;
        lws_callback_on_writable(wsi);
        return 0;
    }
    /* Newest wins: a dashboard that reads slowly skips snapshots instead of queueing them. */
    if (p->sent_seq == p->ops->snap_seq || p->ops->snap.len == 0)
        return 0;
    if (lws_send_pipe_choked(wsi)) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    p->sent_seq = p->ops->snap_seq;
    return write_text(wsi, &p->ops->snap);
}

static void ops_closed(ops_pss_t *p)
{
    unsubscribe_pss(p);
    free(p->rx);
    p->rx = NULL;
}

static int ops_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    ops_pss_t *p = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ops_filter(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return ops_established(wsi, p);
    case LWS_CALLBACK_RECEIVE:
        return ops_receive(wsi, p, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ops_writeable(wsi, p);
    case LWS_CALLBACK_CLOSED:
        ops_closed(p);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

void rc_ops_protocol(rc_ops_t *o, struct lws_protocols *p)
{
    memset(p, 0, sizeof(*p));
    p->name = RC_OPS_SUBPROTOCOL;
    p->callback = ops_callback;
    p->per_session_data_size = sizeof(ops_pss_t);
    p->user = o;
}
