/* SPDX-License-Identifier: Apache-2.0 */
/* The ops feed (ops.h): samples the metrics registry every RC_OPS_INTERVAL_MS, keeps a short
 * history to turn counters into rates and histograms into windowed quantiles, and sends a
 * summary on the bus once a second so every node can show the others. The snapshot is
 * encoded by ops_snapshot.c and pushed to dashboards by ops_feed.c. */
#include "net/ops_int.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/clock.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the process-wide event tap (see rc_ops_record_event) ---- */

/* Loops in several threads of one process record into the one ring; the feed's snapshot
 * copies from it. An uncontended lock is a few tens of ns per event. */
static pthread_mutex_t tap_lock = PTHREAD_MUTEX_INITIALIZER;
static rc_ops_tap_t rc_ops_tap;

void rc_ops_copy_str(char *dst, size_t cap, rc_str_t s)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(dst, s.p ? s.p : "", n);
    dst[n] = '\0';
}

void rc_ops_record_event(rc_str_t pseudo, rc_event_kind_t kind, rc_str_t item, rc_str_t surface)
{
    pthread_mutex_lock(&tap_lock);
    recent_event_t *r = &rc_ops_tap.ring[rc_ops_tap.seq % RC_OPS_RECENT];
    r->seq = ++rc_ops_tap.seq;
    r->t_ms = rc_wall_ms();
    /* Not snprintf: this runs for every event, and printf's parsing showed in profiles. */
    memcpy(r->user, "v-", 2);
    rc_ops_copy_str(r->user + 2, sizeof(r->user) - 2,
                    (rc_str_t){pseudo.p, pseudo.n < 8 ? pseudo.n : 8});
    r->kind = (uint8_t)kind;
    rc_ops_copy_str(r->item, sizeof(r->item), item);
    rc_ops_copy_str(r->surface, sizeof(r->surface), surface);
    pthread_mutex_unlock(&tap_lock);
}

uint32_t rc_ops_tap_newest(recent_event_t *out, uint32_t max)
{
    pthread_mutex_lock(&tap_lock);
    uint32_t n = rc_ops_tap.seq < max ? (uint32_t)rc_ops_tap.seq : max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = rc_ops_tap.ring[(rc_ops_tap.seq - 1 - i) % RC_OPS_RECENT];
    pthread_mutex_unlock(&tap_lock);
    return n;
}

/* ---- samples, rates and quantiles ---- */

static uint64_t sum_events(const rc_metrics_t *m)
{
    uint64_t n = 0;
    for (int k = 0; k < RC_METRICS_KINDS; k++)
        n += m->events_received[k];
    return n;
}

/* Errors by code and refusals by reason, and their sums. The per-code counts are kept as 32
 * bits: only their differences over a window are read, and those survive the wrap. */
static void sample_problems(sample_t *s, const rc_metrics_t *m)
{
    s->errors = s->refused = 0;
    for (int c = 0; c < RC_METRICS_MAX_CODE; c++) {
        s->errors += m->errors[c];
        s->by_code[c] = (uint32_t)m->errors[c];
    }
    for (int r = 0; r < RC_REFUSED_REASONS; r++) {
        s->refused += m->handshakes_refused[r];
        s->by_reason[r] = (uint32_t)m->handshakes_refused[r];
    }
    s->slow = m->errors[RC_PERR_SLOW_CONSUMER - 4000];
}

const sample_t *rc_ops_sample_ago(const rc_ops_t *o, uint64_t ticks_back)
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
void rc_ops_window_counts(const rc_ops_t *o, bool lag, uint64_t *out, double *seconds)
{
    const sample_t *now = rc_ops_sample_ago(o, 0),
                   *then = rc_ops_sample_ago(o, RC_OPS_WINDOW_TICKS);
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
    const sample_t *now = rc_ops_sample_ago(o, 0), *then = rc_ops_sample_ago(o, 2);
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
    rc_ops_window_counts(o, false, w, &secs);
    node_summary_t *s = &o->self;
    snprintf(s->node, sizeof(s->node), "%s", o->node_id);
    s->connections = o->total.connections;
    s->sessions = o->total.sessions;
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
    rc_ops_copy_str(p->node, sizeof(p->node), node);
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

/* ---- sampling and the timer ---- */

/* The newest sample as a point of the long history (after update_self: its rates and
 * quantiles). Counts are of the last interval, so a point says when a problem happened. */
static void record_point(rc_ops_t *o)
{
    const sample_t *now = rc_ops_sample_ago(o, 0), *prev = rc_ops_sample_ago(o, 1);
    ops_point_t *p = &o->points[(o->ticks - 1) % RC_OPS_HISTORY_POINTS];
    p->t_ms = o->self.t_ms;
    p->events_per_s = (float)o->self.events_per_s;
    p->pushes_per_s = (float)o->self.pushes_per_s;
    p->p50_us = (float)o->self.p50_us;
    p->p99_us = (float)o->self.p99_us;
    p->p999_us = (float)o->self.p999_us;
    p->connections = o->self.connections > 0 ? (uint32_t)o->self.connections : 0;
    p->errors = (uint32_t)(now->errors - prev->errors);
    p->refused = (uint32_t)(now->refused - prev->refused);
    p->slow = (uint32_t)(now->slow - prev->slow);
}

void rc_ops_sample(rc_ops_t *o, uint64_t now_us, int64_t now_ms)
{
    sample_t *s = &o->history[o->ticks % HISTORY];
    s->mono_us = now_us;
    rc_metrics_sum(&o->total);
    s->events = sum_events(&o->total);
    s->pushes = o->total.pushes_sent;
    memcpy(s->hist, o->total.event_to_push.counts, sizeof(s->hist));
    memcpy(s->lag, o->total.loop_lag.counts, sizeof(s->lag));
    sample_problems(s, &o->total);
    o->ticks++;
    update_self(o, now_ms);
    record_point(o);
    forget_silent_peers(o, now_us);
}

static void on_tick(uv_timer_t *t)
{
    rc_ops_t *o = t->data;
    rc_ops_sample(o, rc_mono_us(), rc_wall_ms());
    if (o->ticks % PUBLISH_EVERY == 0)
        publish_summary(o);
    rc_ops_broadcast(o);
}

rc_ops_t *rc_ops_new(uv_loop_t *loop, const rc_config_t *cfg, const char *node_id,
                     rc_profile_store_t *profiles, rc_bus_t *bus, rc_variant_stats_fn *variants,
                     void *variants_ctx)
{
    rc_ops_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->cfg = cfg;
    o->node_id = node_id;
    o->profiles = profiles;
    o->bus = bus;
    o->variants = variants;
    o->variants_ctx = variants_ctx;
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
