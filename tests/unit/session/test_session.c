/* SPDX-License-Identifier: Apache-2.0 */
/* Session module tests on a real libuv loop with the embedded backends and a fake
 * transport that records what it is asked to do. They cover what a client cannot observe
 * from outside: coalescing for a connection that does not read, the slow-consumer cut-off,
 * a connection closed while its event is still being published, profiles written behind
 * and restored after an idle session is dropped, the hello timeout, and a steady stream of
 * events allocating nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus/bus.h"
#include "engine/engine_int.h" /* white-box: the trending scores an event moved */
#include "jwt_sign.h"
#include "session/session.h"
#include "session/session_int.h" /* white-box: a session's locale reference */
#include "store/profile.h"
#include "util/clock.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/metrics.h"
#include "util/sanitizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* Heap allocations by anything in this process, counted while `counting` (outside ASan,
 * which owns malloc there): these replace glibc's entry points and call its own. */
static bool counting;
static unsigned long allocations;
#if !RC_ASAN
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

void *malloc(size_t n)
{
    allocations += counting;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    allocations += counting;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    allocations += counting;
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n) /* the engine's arrays (hugemem.c) */
{
    allocations += counting;
    return __libc_memalign(align, n);
}
#endif

typedef struct fake_transport {
    int want_write;
    int killed;
    int pinged;
} fake_transport_t;

static void fake_want_write(void *t)
{
    ((fake_transport_t *)t)->want_write++;
}

static void fake_kill(void *t)
{
    ((fake_transport_t *)t)->killed++;
}

static void fake_ping(void *t)
{
    ((fake_transport_t *)t)->pinged++;
}

static const rc_transport_ops_t fake_ops = {fake_want_write, fake_kill, fake_ping};

typedef struct world {
    uv_loop_t loop;
    rc_defer_t defer;
    rc_config_t cfg;
    rc_engine_t *engine;
    rc_shared_t *shared; /* world_setup_shared: the models, `engine` NULL */
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    rc_sessions_t *sessions;
    /* Set while a test reads a stored profile itself: the store's answer goes there. */
    void (*capture)(void *ctx, const char *user, size_t user_len, int status, const void *data,
                    size_t len);
    void *capture_ctx;
} world_t;

/* The tests' node: routes the bus's messages and the store's answers to the sessions. */
static void world_bus_deliver(void *ctx, const rc_bus_msg_t *m)
{
    world_t *w = ctx;
    bool own = m->origin_node.n == 2 && memcmp(m->origin_node.p, "t1", 2) == 0;
    if (m->kind == RC_BUS_EVENT && !own)
        rc_sessions_remote_event(w->sessions, m);
    else if (m->kind == RC_BUS_ERASE && !own)
        rc_sessions_remote_erase(w->sessions, m);
    else if (m->kind == RC_BUS_PUSH)
        rc_sessions_deliver_push(w->sessions, m);
}

static void world_profile_loaded(void *ctx, const char *user, size_t user_len, int status,
                                 const void *data, size_t len)
{
    world_t *w = ctx;
    if (w->capture != NULL)
        w->capture(w->capture_ctx, user, user_len, status, data, len);
    else
        rc_sessions_profile_loaded(w->sessions, user, user_len, status, data, len);
}

static const char *const categories[] = {"mugs", "lamps", "toys"};

/* The tests' engine: 3 categories of 20 items; popularity falls with the index, so cold
 * lists start with the first items of each category. The same calls each time, so two make
 * the two equal copies of shared models. */
static rc_engine_t *make_engine(void)
{
    rc_engine_t *e = rc_engine_new(1000, true, 32, 86400, 3600, 1e9);
    assert_non_null(e);
    for (int i = 0; i < 60; i++) {
        char id[16], name[32];
        const char *tags[] = {categories[i % 3]};
        uint32_t idx;
        snprintf(id, sizeof(id), "i%d", i);
        snprintf(name, sizeof(name), "Item %d", i);
        assert_int_equal(rc_catalog_upsert(rc_engine_catalog(e), id, name, categories[i % 3], tags,
                                           1, 1.0 + i, 100.0 - i, &idx),
                         0);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    return e;
}

/* The world with `settings` (name, value, ..., NULL) on top of the tests' own. */
static int world_make(void **state, const char *const *settings)
{
    world_t *w = calloc(1, sizeof(*w));
    char err[128];
    assert_int_equal(uv_loop_init(&w->loop), 0);
    assert_int_equal(rc_defer_init(&w->defer, &w->loop), 0);
    assert_int_equal(rc_config_init(&w->cfg), 0);
    assert_int_equal(rc_config_set(&w->cfg, "session-idle-s", "1", err, sizeof(err)), 0);
    assert_int_equal(rc_config_set(&w->cfg, "outbox-max-bytes", "4096", err, sizeof(err)), 0);
    assert_int_equal(rc_config_set(&w->cfg, "anonymous", "true", err, sizeof(err)), 0);
    /* The tests name their users; signed ids are the integration suites' (security.test.mjs). */
    assert_int_equal(rc_config_set(&w->cfg, "anonymous-ids", "chosen", err, sizeof(err)), 0);
    for (; settings != NULL && settings[0] != NULL; settings += 2)
        assert_int_equal(rc_config_set(&w->cfg, settings[0], settings[1], err, sizeof(err)), 0);
    w->engine = make_engine();
    w->profiles = rc_profile_memory_new(&w->defer, world_profile_loaded, w, 0, 0);
    w->bus = rc_bus_local_new(&w->defer, world_bus_deliver, w);
    w->sessions = rc_sessions_new(&w->cfg, "t1", w->engine, w->profiles, w->bus, &fake_ops);
    assert_non_null(w->sessions);
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    *state = w;
    return 0;
}

static int world_setup(void **state)
{
    return world_make(state, NULL);
}

/* No event rate limit: for tests that send events faster than any client may. */
static int world_setup_unlimited(void **state)
{
    static const char *const unlimited[] = {"events-per-sec", "1000000", "events-burst", "1000000",
                                            NULL};
    return world_make(state, unlimited);
}

/* The world's sessions on shared models, as a loop of several (--loops): the world's engine
 * and a second copy made by the same calls, one writer thread. */
static int world_setup_shared(void **state)
{
    world_make(state, NULL);
    world_t *w = *state;
    w->shared = rc_shared_new(w->engine, make_engine(), 1);
    assert_non_null(w->shared);
    w->engine = NULL; /* the shared models' */
    assert_int_equal(rc_sessions_share_engine(w->sessions, w->shared, NULL, 0), 0);
    return 0;
}

static int world_teardown(void **state)
{
    world_t *w = *state;
    /* As the node does: run what is still deferred while the sessions exist, then free. */
    rc_defer_close(&w->defer);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc_sessions_free(w->sessions);
    rc_shared_free(w->shared);
    rc_bus_free(w->bus);
    rc_profile_store_free(w->profiles);
    rc_engine_free(w->engine);
    rc_config_free(&w->cfg);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    free(w);
    return 0;
}

/* Runs deferred work (bus completions, profile answers). */
static void pump(world_t *w)
{
    for (int i = 0; i < 4; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void send_json(rc_conn_t *c, const char *text)
{
    rc_conn_receive(c, text, strlen(text), false, rc_mono_us());
}

/* Takes every pending frame as the gateway would, returning them as a JSON array. */
static json_t *drain(rc_conn_t *c)
{
    json_t *out = json_array();
    rc_frame_t *f;
    while ((f = rc_conn_next_frame(c)) != NULL) {
        json_t *m = json_loadb((const char *)rc_frame_payload(f), f->len, 0, NULL);
        assert_non_null(m);
        json_array_append_new(out, m);
        rc_conn_frame_written(f, rc_mono_us());
    }
    return out;
}

static json_t *find_type(json_t *msgs, const char *type, size_t nth)
{
    size_t i, seen = 0;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "type")), type) == 0 && seen++ == nth)
            return m;
    }
    return NULL;
}

static size_t count_type(json_t *msgs, const char *type)
{
    size_t n = 0;
    while (find_type(msgs, type, n) != NULL)
        n++;
    return n;
}

static rc_conn_t *connect_user(world_t *w, fake_transport_t *t, const char *user)
{
    char hello[128];
    rc_conn_t *c = rc_conn_open(w->sessions, RC_FMT_JSON, t);
    assert_non_null(c);
    snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"v\":1,\"user\":\"%s\"}", user);
    send_json(c, hello);
    send_json(c, "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":6}");
    json_t *msgs = drain(c);
    assert_non_null(find_type(msgs, "welcome", 0));
    assert_non_null(find_type(msgs, "recs", 0));
    json_decref(msgs);
    return c;
}

static void click(rc_conn_t *c, const char *id, int item)
{
    char ev[160];
    snprintf(ev, sizeof(ev),
             "{\"type\":\"event\",\"id\":\"%s\",\"kind\":\"click\",\"item\":\"i%d\"}", id, item);
    send_json(c, ev);
}

/* Share of category `cat` in the last recs of `msgs`. */
static int category_count(json_t *recs, const char *cat)
{
    size_t i;
    json_t *it;
    int n = 0;
    json_array_foreach(json_object_get(recs, "items"), i, it)
    {
        n += strcmp(json_string_value(json_object_get(it, "category")), cat) == 0;
    }
    return n;
}

static void test_event_is_acked_after_the_bus_and_pushed_with_its_cause(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = connect_user(w, &t, "u1");
    click(c, "e1", 1); /* i1 is a lamp */
    json_t *before_bus = drain(c);
    json_t *recs = find_type(before_bus, "recs", 0);
    assert_non_null(recs);
    assert_string_equal(json_string_value(json_object_get(recs, "cause")), "e1");
    /* The ack waits for the bus: the in-process bus completes on the next loop turn. */
    assert_null(find_type(before_bus, "ack", 0));
    pump(w);
    json_t *after_bus = drain(c);
    json_t *ack = find_type(after_bus, "ack", 0);
    assert_non_null(ack);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ack, "ids"), 0)), "e1");
    json_decref(before_bus);
    json_decref(after_bus);
    rc_conn_closed(c);
}

/* The change of item `item`'s trending score in the daypart segment of `at_ms` (time zone
 * 0) made by sending `event` (JSON) on `c`. */
static float daypart_gain(world_t *w, rc_conn_t *c, const char *event, int item, int64_t at_ms)
{
    const float *sc = rc_trending_scores(&w->engine->trending, (uint32_t)item);
    int seg = RC_SEG_DAYPART(rc_daypart(at_ms, 0));
    float before = sc != NULL ? sc[seg] : 0;
    send_json(c, event);
    sc = rc_trending_scores(&w->engine->trending, (uint32_t)item);
    assert_non_null(sc);
    return sc[seg] - before;
}

/* An event is learned at its own time (ts_ms) when that lies within the bounds of the
 * server's clock, here in another part of the day than now; outside them, at the time it
 * arrived, counted on /metrics. */
static void test_events_are_learned_at_their_own_time_within_bounds(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = connect_user(w, &t, "u1");
    char ev[200];
    int64_t now = rc_wall_ms(), six_hours_ago = now - 6 * 3600 * 1000LL;
    snprintf(ev, sizeof(ev),
             "{\"type\":\"event\",\"id\":\"e1\",\"kind\":\"click\",\"item\":\"i7\","
             "\"ts_ms\":%lld}",
             (long long)six_hours_ago);
    assert_true(rc_daypart(six_hours_ago, 0) != rc_daypart(now, 0));
    /* Learned six hours ago: the segment of then gains, the segment of now does not. */
    const float *sc = rc_trending_scores(&w->engine->trending, 7);
    float now_before = sc != NULL ? sc[RC_SEG_DAYPART(rc_daypart(now, 0))] : 0;
    assert_true(daypart_gain(w, c, ev, 7, six_hours_ago) > 0);
    sc = rc_trending_scores(&w->engine->trending, 7);
    assert_true(sc[RC_SEG_DAYPART(rc_daypart(now, 0))] == now_before);
    assert_int_equal(rc_metrics.events_server_time[0] + rc_metrics.events_server_time[1], 0);

    /* Two days behind (past --event-time-past-s) and an hour ahead (past
     * --event-time-future-s): learned now, and counted. */
    int64_t stale = now - 2 * 86400 * 1000LL, ahead = now + 3600 * 1000LL;
    snprintf(ev, sizeof(ev),
             "{\"type\":\"event\",\"id\":\"e2\",\"kind\":\"click\",\"item\":\"i8\","
             "\"ts_ms\":%lld}",
             (long long)stale);
    assert_true(daypart_gain(w, c, ev, 8, rc_wall_ms()) > 0);
    assert_int_equal(rc_metrics.events_server_time[0], 1);
    snprintf(ev, sizeof(ev),
             "{\"type\":\"event\",\"id\":\"e3\",\"kind\":\"click\",\"item\":\"i9\","
             "\"ts_ms\":%lld}",
             (long long)ahead);
    assert_true(daypart_gain(w, c, ev, 9, rc_wall_ms()) > 0);
    assert_int_equal(rc_metrics.events_server_time[1], 1);
    rc_conn_closed(c);
}

static void test_both_connections_of_a_user_share_one_encoded_list(void **state)
{
    world_t *w = *state;
    fake_transport_t ta = {0}, tb = {0};
    rc_conn_t *a = connect_user(w, &ta, "u2");
    rc_conn_t *b = connect_user(w, &tb, "u2");
    int b_wakes = tb.want_write;
    click(a, "e1", 2);
    assert_true(tb.want_write > b_wakes);
    rc_frame_t *fa = rc_conn_next_frame(a), *fb = rc_conn_next_frame(b);
    assert_non_null(fa);
    /* Encoded once: the very same frame goes to both connections. */
    assert_ptr_equal(fa, fb);
    rc_conn_frame_written(fa, rc_mono_us());
    rc_conn_frame_written(fb, rc_mono_us());
    rc_conn_closed(a);
    rc_conn_closed(b);
}

static void test_a_connection_that_does_not_read_gets_only_the_newest_list(void **state)
{
    world_t *w = *state;
    fake_transport_t ta = {0}, tb = {0};
    rc_conn_t *a = connect_user(w, &ta, "u3");
    rc_conn_t *b = connect_user(w, &tb, "u3");
    for (int i = 0; i < 8; i++) {
        char id[8];
        snprintf(id, sizeof(id), "e%d", i);
        click(a, id, 3 * i + 1); /* lamps */
        json_decref(drain(a));
    }
    json_t *msgs = drain(b);
    assert_int_equal(count_type(msgs, "recs"), 1);
    json_t *recs = find_type(msgs, "recs", 0);
    assert_true(category_count(recs, "lamps") >= 3);
    assert_true(rc_metrics.pushes_skipped >= 1);
    json_decref(msgs);
    rc_conn_closed(a);
    rc_conn_closed(b);
}

/* A client's side of compact lists (PROTOCOL.md `recs_delta`), from the page: the list held,
 * the item details and the reasons by number; applies `d` and returns the whole list as the
 * items of a `recs` would be (a new array), or NULL when it does not apply. */
typedef struct {
    json_t *held, *details, *reasons;
    int64_t version;
    size_t redefined; /* reason numbers defined again (the numbering started over) */
} compact_client_t;

static json_t *compact_apply(compact_client_t *cc, const json_t *d)
{
    int64_t base = json_integer_value(json_object_get(d, "base"));
    if (base != 0 && base != cc->version)
        return NULL;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(d, "items"), key, v) json_object_set(cc->details, key, v);
    json_object_foreach(json_object_get(d, "reasons"), key, v)
    {
        cc->redefined += json_object_get(cc->reasons, key) != NULL;
        json_object_set(cc->reasons, key, v);
    }
    const json_t *scores = json_object_get(d, "scores_e4"), *place = json_object_get(d, "place");
    size_t n = json_array_size(scores), k = 0, i;
    const char *ids[100] = {NULL};
    json_t *p, *removed = json_object_get(d, "remove");
    json_array_foreach(place, i, p) ids[json_integer_value(json_array_get(p, 0))] =
        json_string_value(json_array_get(p, 1));
    json_t *order = json_array();
    for (size_t pos = 0; pos < n; pos++) {
        while (ids[pos] == NULL && base != 0 && k < json_array_size(cc->held)) {
            const char *id = json_string_value(json_array_get(cc->held, k++));
            bool gone = false;
            json_array_foreach(removed, i, p) gone |= strcmp(json_string_value(p), id) == 0;
            json_array_foreach(place, i, p) gone |=
                strcmp(json_string_value(json_array_get(p, 1)), id) == 0;
            if (!gone)
                ids[pos] = id;
        }
        if (ids[pos] == NULL) {
            json_decref(order);
            return NULL;
        }
        json_array_append_new(order, json_string(ids[pos]));
    }
    json_t *items = json_array();
    json_int_t sum = 0; /* scores_e4: the first, then differences */
    json_array_foreach(order, i, p)
    {
        char rid[16];
        snprintf(rid, sizeof(rid), "%lld",
                 (long long)json_integer_value(json_array_get(json_object_get(d, "r"), i)));
        json_t *why = json_object_get(cc->reasons, rid);
        assert_non_null(why);
        json_t *it = json_deep_copy(why);
        json_object_set(it, "item", p);
        sum += json_integer_value(json_array_get(scores, i));
        json_object_set_new(it, "score_e4", json_integer(sum));
        json_object_update(it, json_object_get(cc->details, json_string_value(p)));
        json_array_append_new(items, it);
    }
    json_decref(cc->held);
    cc->held = order;
    cc->version = json_integer_value(json_object_get(d, "version"));
    return items;
}

/* Compact lists, long enough for the reason numbering to start over (every repeat's age, in
 * events of distinct times, is a reason of its own): every delta applies to the list held,
 * and gives, field by field, the list a plain subscriber of the same user got. */
static void test_compact_lists_equal_whole_lists_past_the_reason_limit(void **state)
{
    world_t *w = *state;
    fake_transport_t ta = {0}, tb = {0};
    rc_conn_t *a = connect_user(w, &ta, "u-cmp");
    rc_conn_t *b = connect_user(w, &tb, "u-cmp");
    send_json(a, "{\"type\":\"subscribe\",\"surface\":\"again\",\"k\":20,\"repeat\":\"allowed\"}");
    send_json(b, "{\"type\":\"subscribe\",\"surface\":\"again\",\"k\":20,\"repeat\":\"allowed\","
                 "\"compact\":true}");
    json_decref(drain(a));
    compact_client_t cc = {NULL, json_object(), json_object(), 0, 0};
    json_t *msgs = drain(b);
    json_t *first = find_type(msgs, "recs_delta", 0);
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "base")), 0);
    json_decref(compact_apply(&cc, first));
    json_decref(msgs);
    int64_t now_ms = rc_wall_ms();
    size_t compared = 0;
    for (int e = 0; e < 400; e++) {
        char ev[200];
        /* Seconds apart, within the last day: each interaction's age is its own. */
        snprintf(ev, sizeof(ev),
                 "{\"type\":\"event\",\"id\":\"c%d\",\"kind\":\"%s\",\"item\":\"i%d\","
                 "\"ts_ms\":%lld}",
                 e, e % 5 == 0 ? "cart" : "view", (e * 7) % 60,
                 (long long)(now_ms - (400 - e) * 1000LL));
        send_json(a, ev);
        pump(w);
        json_t *whole = drain(a), *delta = drain(b);
        json_t *full = NULL, *d = find_type(delta, "recs_delta", 0), *m;
        for (size_t n = 0; (m = find_type(whole, "recs", n)) != NULL; n++)
            if (strcmp(json_string_value(json_object_get(m, "surface")), "again") == 0)
                full = m;
        assert_int_equal(full == NULL, d == NULL);
        if (d != NULL) {
            assert_int_equal(json_integer_value(json_object_get(d, "version")),
                             json_integer_value(json_object_get(full, "version")));
            json_t *got = compact_apply(&cc, d);
            assert_non_null(got);
            json_t *want = json_object_get(full, "items");
            assert_int_equal(json_array_size(got), json_array_size(want));
            size_t i;
            json_t *it;
            json_array_foreach(want, i, it)
            {
                json_t *g = json_array_get(got, i);
                /* The score as the delta carries it, in ten-thousandths. */
                assert_int_equal(json_integer_value(json_object_get(g, "score_e4")),
                                 llround(json_number_value(json_object_get(it, "score")) * 1e4));
                json_object_del(g, "score_e4");
                json_t *w2 = json_deep_copy(it);
                json_object_del(w2, "score");
                if (!json_equal(g, w2)) {
                    char *gs = json_dumps(g, JSON_SORT_KEYS), *ws = json_dumps(w2, JSON_SORT_KEYS);
                    fail_msg("event %d item %zu: %s != %s", e, i, gs, ws);
                }
                json_decref(w2);
            }
            json_decref(got);
            compared++;
        }
        json_decref(whole);
        json_decref(delta);
    }
    assert_true(compared > 300);
    assert_true(cc.redefined > 0); /* the numbering started over, and lists stayed right */
    json_decref(cc.held);
    json_decref(cc.details);
    json_decref(cc.reasons);
    rc_conn_closed(a);
    rc_conn_closed(b);
}

static void test_a_full_outbox_closes_the_connection_as_a_slow_consumer(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = connect_user(w, &t, "u4");
    for (int i = 0; i < 200 && t.killed == 0; i++)
        send_json(c, "{\"type\":\"ping\",\"t\":1}");
    assert_int_equal(t.killed, 1);
    assert_true(rc_metrics.errors[4050 - 4000] >= 1);
    /* Once closing, further input is ignored, not answered. */
    send_json(c, "{\"type\":\"ping\"}");
    rc_conn_closed(c);
}

static void test_closing_while_an_event_is_in_flight_is_safe(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = connect_user(w, &t, "u5");
    click(c, "e1", 4);
    rc_conn_closed(c); /* the bus completion still holds the connection */
    pump(w);           /* completes it: no ack, no crash (ASan checks the memory) */
    assert_int_equal(rc_sessions_conn_count(w->sessions), 0);
}

static void test_profile_is_written_behind_and_restores_a_returning_user(void **state)
{
    world_t *w = *state;
    fake_transport_t t1 = {0}, t2 = {0};
    rc_conn_t *c = connect_user(w, &t1, "u6");
    for (int i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof(id), "e%d", i);
        click(c, id, 3 * i + 2); /* toys */
    }
    pump(w);
    json_decref(drain(c));
    rc_conn_closed(c);
    /* Two seconds later the idle session (session-idle-s = 1) is dropped: its profile must
     * have been written, since nothing else remembers this user now. */
    rc_sessions_tick(w->sessions, rc_mono_us() + 2000000);
    assert_int_equal(rc_sessions_count(w->sessions), 0);

    c = connect_user(w, &t2, "u6");
    pump(w); /* the profile arrives and the list is pushed again */
    json_t *msgs = drain(c);
    json_t *recs = find_type(msgs, "recs", count_type(msgs, "recs") - 1);
    assert_non_null(recs);
    assert_true(category_count(recs, "toys") >= 3);
    json_decref(msgs);
    rc_conn_closed(c);
}

typedef struct {
    int status;
    size_t len;
    char doc[4096];
} loaded_t;

static void keep_loaded(void *ctx, const char *user, size_t user_len, int status, const void *data,
                        size_t len)
{
    loaded_t *l = ctx;
    (void)user, (void)user_len;
    l->status = status == 0 && len > sizeof(l->doc) ? RC_EFULL : status; /* too big: fails */
    l->len = l->status == 0 ? len : 0;
    if (l->len > 0)
        memcpy(l->doc, data, l->len);
}

/* The user's stored profile, read from the store as a new session would, into *u. */
static void stored_profile(world_t *w, const char *user, rc_user_state_t *u)
{
    loaded_t l = {.status = 1};
    w->capture = keep_loaded;
    w->capture_ctx = &l;
    assert_int_equal(rc_profile_load(w->profiles, user, strlen(user)), 0);
    pump(w);
    w->capture = NULL;
    assert_int_equal(l.status, 0);
    rc_user_state_init(u, RC_DEV_DESKTOP, 0);
    assert_int_equal(rc_profile_merge(rc_engine_catalog(w->engine), u, l.doc, l.len), 0);
}

/* The in-memory store is read only by this node's next session of a user, so a session
 * writes to it when it ends, not every profile_flush_ms; a delta that fills up (the 33rd
 * excluded item) is written at once, so the profile loses nothing. */
static void test_memory_profile_is_written_when_the_session_ends(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = connect_user(w, &t, "u10");
    for (int i = 0; i < 40; i++) {
        char ev[160];
        snprintf(ev, sizeof(ev),
                 "{\"type\":\"event\",\"id\":\"p%d\",\"kind\":\"purchase\",\"item\":\"i%d\"}", i,
                 i);
        send_json(c, ev);
        pump(w);
        json_decref(drain(c));
        if (i == 31) { /* an hour later, still nothing written: the delta holds 32 items */
            rc_sessions_flush_due(w->sessions, rc_mono_us() + 3600000000ULL, UINT64_MAX);
            assert_int_equal(rc_metrics.profile_updates_written, 0);
        }
    }
    assert_int_equal(rc_metrics.profile_updates_written, 1); /* the full one, at the 33rd */
    rc_conn_closed(c);
    rc_sessions_tick(w->sessions, rc_mono_us() + 2000000); /* the idle session is dropped */
    assert_int_equal(rc_sessions_count(w->sessions), 0);
    assert_int_equal(rc_metrics.profile_updates_written, 2);

    rc_user_state_t u;
    stored_profile(w, "u10", &u);
    assert_int_equal(u.events, 40);
    /* The profile keeps the 32 newest exclusions: i8..i39. */
    for (int i = 0; i < 40; i++) {
        char id[8];
        snprintf(id, sizeof(id), "i%d", i);
        int64_t idx = rc_catalog_find(rc_engine_catalog(w->engine), id, strlen(id));
        assert_true(idx >= 0);
        assert_int_equal(rc_user_is_excluded(&u, (uint32_t)idx), i >= 8);
    }
}

static void test_no_hello_in_time_closes_with_4004(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    const char *reason;
    rc_conn_t *c = rc_conn_open(w->sessions, RC_FMT_JSON, &t);
    rc_sessions_tick(w->sessions, rc_mono_us() + 1000000);
    assert_int_equal(rc_conn_close_code(c, &reason), 0);
    rc_sessions_tick(w->sessions, rc_mono_us() + 11000000);
    assert_int_equal(rc_conn_close_code(c, &reason), 4004);
    rc_conn_closed(c);
}

static void test_drain_tells_every_client_then_closes_with_1001(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    const char *reason;
    rc_conn_t *c = connect_user(w, &t, "u7");
    rc_sessions_drain(w->sessions, 1000);
    json_t *msgs = drain(c);
    json_t *d = find_type(msgs, "drain", 0);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "reconnect_after_ms")), 1000);
    assert_int_equal(rc_conn_close_code(c, &reason), 1001);
    json_decref(msgs);
    rc_conn_closed(c);
}

static void test_a_silent_connection_is_pinged_then_closed_with_4023(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0}, talker = {0};
    const char *reason;
    rc_conn_t *c = connect_user(w, &t, "u8");
    rc_conn_t *d = connect_user(w, &talker, "u9");
    uint64_t t0 = rc_mono_us();
    /* Defaults: ping after 30 s of silence, close 15 s after an unanswered ping. */
    rc_sessions_tick(w->sessions, t0 + 29000000);
    assert_int_equal(t.pinged, 0);
    rc_sessions_tick(w->sessions, t0 + 31000000);
    assert_int_equal(t.pinged, 1);
    assert_int_equal(talker.pinged, 1);
    /* One answers (a pong), the other stays silent. */
    rc_conn_alive(d, t0 + 32000000);
    rc_sessions_tick(w->sessions, t0 + 45000000);
    assert_int_equal(rc_conn_close_code(c, &reason), 0);
    rc_sessions_tick(w->sessions, t0 + 47000000);
    json_t *msgs = drain(c);
    json_t *e = find_type(msgs, "error", 0);
    assert_non_null(e);
    assert_int_equal(json_integer_value(json_object_get(e, "code")), 4023);
    json_decref(msgs);
    assert_int_equal(rc_conn_close_code(c, &reason), 4023);
    assert_int_equal(rc_conn_close_code(d, &reason), 0);
    assert_int_equal(talker.pinged, 1); /* its pong was recent: not pinged again yet */
    rc_conn_closed(c);
    rc_conn_closed(d);
}

#define TEST_SECRET "session-test-secret-session-test-secret!"

static char *hs256_token(const char *sub, int64_t exp_s)
{
    char claims[160];
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%lld}", sub, (long long)exp_s);
    return jwt_sign("HS256", TEST_SECRET, NULL, "{\"alg\":\"HS256\"}", claims);
}

static rc_jwt_verifier_t *use_tokens(world_t *w)
{
    char err[128];
    rc_jwt_config_t jc = {TEST_SECRET, NULL, NULL, NULL, 0};
    rc_jwt_verifier_t *v = rc_jwt_verifier_new(&jc, err, sizeof(err));
    assert_non_null(v);
    assert_int_equal(rc_config_set(&w->cfg, "jwt-leeway-s", "0", err, sizeof(err)), 0);
    rc_sessions_set_verifier(w->sessions, v);
    return v;
}

/* Sends hello with `token` (and `user` if not NULL); returns the first reply's error code
 * (0 for welcome) and the user welcome named. */
static int hello_with(rc_conn_t *c, const char *token, const char *user, char *who, size_t wlen)
{
    char hello[1024];
    int n = snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"v\":1");
    if (token != NULL)
        n += snprintf(hello + n, sizeof(hello) - (size_t)n, ",\"token\":\"%s\"", token);
    if (user != NULL)
        n += snprintf(hello + n, sizeof(hello) - (size_t)n, ",\"user\":\"%s\"", user);
    snprintf(hello + n, sizeof(hello) - (size_t)n, "}");
    send_json(c, hello);
    json_t *msgs = drain(c);
    json_t *first = json_array_get(msgs, 0);
    assert_non_null(first);
    int code = (int)json_integer_value(json_object_get(first, "code"));
    if (who != NULL)
        snprintf(who, wlen, "%s", json_string_value(json_object_get(first, "user")) ?: "");
    json_decref(msgs);
    return code;
}

/* Sends `auth` with a fresh token on a live session. */
static void send_auth(rc_conn_t *c, const char *token)
{
    char msg[1200];
    snprintf(msg, sizeof(msg), "{\"type\":\"auth\",\"token\":\"%.1100s\"}", token);
    send_json(c, msg);
}

static void test_tokens_decide_the_user(void **state)
{
    world_t *w = *state;
    rc_jwt_verifier_t *v = use_tokens(w);
    int64_t now = rc_wall_ms() / 1000;
    char who[80];
    fake_transport_t t[6] = {0};
    rc_conn_t *c[6];
    for (int i = 0; i < 6; i++)
        c[i] = rc_conn_open(w->sessions, RC_FMT_JSON, &t[i]);

    assert_int_equal(hello_with(c[0], hs256_token("alice", now + 60), NULL, who, sizeof(who)), 0);
    assert_string_equal(who, "alice");
    /* Claiming another user with alice's token. */
    assert_int_equal(hello_with(c[1], hs256_token("alice", now + 60), "bob", NULL, 0), 4010);
    /* An expired token: 4011, so the client knows to fetch a fresh one. */
    assert_int_equal(hello_with(c[2], hs256_token("alice", now - 5), NULL, NULL, 0), 4011);
    /* A forged one. */
    char forged[1024];
    snprintf(forged, sizeof(forged), "%.1000sx", hs256_token("alice", now + 60));
    assert_int_equal(hello_with(c[3], forged, NULL, NULL, 0), 4010);
    /* Anonymous sessions are on in this world, but confined to anon- ids once tokens are. */
    assert_int_equal(hello_with(c[4], NULL, "alice", NULL, 0), 4010);
    assert_int_equal(hello_with(c[5], NULL, "anon-42", who, sizeof(who)), 0);
    assert_string_equal(who, "anon-42");
    const char *reason;
    assert_int_equal(rc_conn_close_code(c[1], &reason), 4010);
    assert_int_equal(rc_conn_close_code(c[2], &reason), 4011);
    assert_true(rc_metrics.auth_refused[RC_JWT_EXPIRED] >= 1);
    assert_true(rc_metrics.auth_refused[RC_JWT_BAD_SIGNATURE] >= 1);
    for (int i = 0; i < 6; i++)
        rc_conn_closed(c[i]);
    rc_sessions_set_verifier(w->sessions, NULL);
    rc_jwt_verifier_free(v);
}

static void test_a_token_is_refreshed_on_a_live_session_and_expiry_closes_it(void **state)
{
    world_t *w = *state;
    rc_jwt_verifier_t *v = use_tokens(w);
    int64_t now = rc_wall_ms() / 1000;
    fake_transport_t t = {0}, t2 = {0};
    const char *reason;
    rc_conn_t *c = rc_conn_open(w->sessions, RC_FMT_JSON, &t);
    assert_int_equal(hello_with(c, hs256_token("carol", now + 1), NULL, NULL, 0), 0);

    /* A token for someone else is refused, and ends the connection. */
    rc_conn_t *c2 = rc_conn_open(w->sessions, RC_FMT_JSON, &t2);
    assert_int_equal(hello_with(c2, hs256_token("carol", now + 60), NULL, NULL, 0), 0);
    send_auth(c2, hs256_token("mallory", now + 600));
    json_decref(drain(c2));
    assert_int_equal(rc_conn_close_code(c2, &reason), 4010);

    /* The same subject, later expiry: auth_ok with the new exp. */
    send_auth(c, hs256_token("carol", now + 600));
    json_t *msgs = drain(c);
    json_t *ok = find_type(msgs, "auth_ok", 0);
    assert_non_null(ok);
    assert_int_equal(json_integer_value(json_object_get(ok, "exp_ms")), (now + 600) * 1000);
    json_decref(msgs);

    /* A connection that never refreshes is closed with 4011 at its next message. */
    rc_conn_t *c3 = rc_conn_open(w->sessions, RC_FMT_JSON, &t2);
    assert_int_equal(hello_with(c3, hs256_token("carol", now + 1), NULL, NULL, 0), 0);
    while (rc_wall_ms() / 1000 < now + 1)
        uv_sleep(50);
    send_json(c3, "{\"type\":\"ping\"}");
    msgs = drain(c3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(msgs, 0), "code")), 4011);
    json_decref(msgs);
    assert_int_equal(rc_conn_close_code(c3, &reason), 4011);
    /* The refreshed one lives on. */
    send_json(c, "{\"type\":\"ping\"}");
    msgs = drain(c);
    assert_non_null(find_type(msgs, "pong", 0));
    json_decref(msgs);
    rc_conn_closed(c);
    rc_conn_closed(c2);
    rc_conn_closed(c3);
    rc_sessions_set_verifier(w->sessions, NULL);
    rc_jwt_verifier_free(v);
}

/* A refresh may not bring an earlier expiry back (4010), and a token with no expiry is
 * refused as invalid (4010), not as expired (4011): no fresh token would be better. */
static void test_a_refresh_expiring_earlier_and_a_token_without_exp_are_4010(void **state)
{
    world_t *w = *state;
    rc_jwt_verifier_t *v = use_tokens(w);
    int64_t now = rc_wall_ms() / 1000;
    fake_transport_t t = {0}, t2 = {0};
    const char *reason;
    rc_conn_t *c = rc_conn_open(w->sessions, RC_FMT_JSON, &t);
    assert_int_equal(hello_with(c, hs256_token("dave", now + 600), NULL, NULL, 0), 0);
    send_auth(c, hs256_token("dave", now + 60));
    json_decref(drain(c));
    assert_int_equal(rc_conn_close_code(c, &reason), 4010);

    rc_conn_t *c2 = rc_conn_open(w->sessions, RC_FMT_JSON, &t2);
    char *no_exp =
        jwt_sign("HS256", TEST_SECRET, NULL, "{\"alg\":\"HS256\"}", "{\"sub\":\"dave\"}");
    assert_int_equal(hello_with(c2, no_exp, NULL, NULL, 0), 4010);
    assert_int_equal(rc_conn_close_code(c2, &reason), 4010);
    rc_conn_closed(c);
    rc_conn_closed(c2);
    rc_sessions_set_verifier(w->sessions, NULL);
    rc_jwt_verifier_free(v);
}

/* Takes every pending frame as the gateway would, without decoding it. */
static void discard(rc_conn_t *c)
{
    rc_frame_t *f;
    while ((f = rc_conn_next_frame(c)) != NULL)
        rc_conn_frame_written(f, rc_mono_us());
}

/* One event through the whole path: decoded, learned, published on the bus and acked,
 * re-ranked, encoded and pushed, and its profile change merged into the stored document. */
static void event_written_through(world_t *w, rc_conn_t *c, int n)
{
    char id[16];
    snprintf(id, sizeof(id), "e%d", n);
    click(c, id, (n * 7) % 60);
    pump(w);
    rc_sessions_flush_profiles(w->sessions);
    pump(w);
    discard(c);
}

static void test_steady_events_allocate_nothing(void **state)
{
    if (RC_ASAN)
        skip(); /* nothing is counted there */
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = connect_user(w, &t, "u9");
    /* Until the models, the event-id ring (1,024) and the stored profile are full. */
    int n = 0;
    for (; n < 1500; n++)
        event_written_through(w, c, n);
    uint64_t writes = rc_metrics.profile_updates_written;
    counting = true;
    for (; n < 2000; n++)
        event_written_through(w, c, n);
    counting = false;
    assert_int_equal(allocations, 0);
    assert_true(rc_metrics.profile_updates_written >= writes + 500);
    rc_conn_closed(c);
}

/* With shared models the hello's locale tag reaches the writer as a record, and the loop's
 * copy knows it only once the writer published it: the session keeps the tag and takes
 * the locale at a rank after that, rather than ranking without it for its whole life. */
static void test_shared_models_a_locale_first_met_is_taken_at_a_later_rank(void **state)
{
    world_t *w = *state;
    fake_transport_t t = {0};
    rc_conn_t *c = rc_conn_open(w->sessions, RC_FMT_JSON, &t);
    assert_non_null(c);
    send_json(c, "{\"type\":\"hello\",\"v\":1,\"user\":\"u-fr\",\"locale\":\"fr-FR\"}");
    rc_session_t *ses = rc_session_find(w->sessions, "u-fr", 4);
    assert_non_null(ses);
    assert_int_equal(ses->locale, -1); /* the copy read at the hello did not know the tag */
    assert_int_equal(rc_shared_flush(w->shared), 0);
    send_json(c, "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":6}");
    json_t *msgs = drain(c);
    assert_non_null(find_type(msgs, "recs", 0));
    json_decref(msgs);
    int ref = rc_engine_locale_find(rc_sessions_engine(w->sessions), (rc_str_t){"fr-FR", 5});
    assert_true(ref >= 0);
    assert_int_equal(ses->locale, ref);
    rc_conn_closed(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_event_is_acked_after_the_bus_and_pushed_with_its_cause,
                                        world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_both_connections_of_a_user_share_one_encoded_list,
                                        world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_connection_that_does_not_read_gets_only_the_newest_list, world_setup,
            world_teardown),
        cmocka_unit_test_setup_teardown(test_a_full_outbox_closes_the_connection_as_a_slow_consumer,
                                        world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_closing_while_an_event_is_in_flight_is_safe,
                                        world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(
            test_profile_is_written_behind_and_restores_a_returning_user, world_setup,
            world_teardown),
        cmocka_unit_test_setup_teardown(test_memory_profile_is_written_when_the_session_ends,
                                        world_setup_unlimited, world_teardown),
        cmocka_unit_test_setup_teardown(test_no_hello_in_time_closes_with_4004, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_a_silent_connection_is_pinged_then_closed_with_4023,
                                        world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_decide_the_user, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_token_is_refreshed_on_a_live_session_and_expiry_closes_it, world_setup,
            world_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_refresh_expiring_earlier_and_a_token_without_exp_are_4010, world_setup,
            world_teardown),
        cmocka_unit_test_setup_teardown(test_compact_lists_equal_whole_lists_past_the_reason_limit,
                                        world_setup_unlimited, world_teardown),
        cmocka_unit_test_setup_teardown(test_drain_tells_every_client_then_closes_with_1001,
                                        world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_steady_events_allocate_nothing, world_setup_unlimited,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(
            test_shared_models_a_locale_first_met_is_taken_at_a_later_rank, world_setup_shared,
            world_teardown),
        cmocka_unit_test_setup_teardown(test_events_are_learned_at_their_own_time_within_bounds,
                                        world_setup, world_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
