/* Session module tests on a real libuv loop with the embedded backends and a fake
 * transport that records what it is asked to do. They cover what a client cannot observe
 * from outside: coalescing for a connection that does not read, the slow-consumer cut-off,
 * a connection closed while its event is still being published, profiles written behind
 * and restored after an idle session is dropped, and the hello timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "defer.h"
#include "metrics.h"
#include "profile.h"
#include "session.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

typedef struct fake_transport {
    int want_write;
    int killed;
} fake_transport_t;

static void fake_want_write(void *t)
{
    ((fake_transport_t *)t)->want_write++;
}

static void fake_kill(void *t)
{
    ((fake_transport_t *)t)->killed++;
}

static const rc_transport_ops_t fake_ops = {fake_want_write, fake_kill};

typedef struct world {
    uv_loop_t loop;
    rc_defer_t defer;
    rc_config_t cfg;
    rc_engine_t engine;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    rc_sessions_t *sessions;
} world_t;

static const char *const categories[] = {"mugs", "lamps", "toys"};

static int world_setup(void **state)
{
    world_t *w = calloc(1, sizeof(*w));
    char err[128];
    assert_int_equal(uv_loop_init(&w->loop), 0);
    assert_int_equal(rc_defer_init(&w->defer, &w->loop), 0);
    assert_int_equal(rc_config_init(&w->cfg), 0);
    assert_int_equal(rc_config_set(&w->cfg, "session-idle-s", "1", err, sizeof(err)), 0);
    assert_int_equal(rc_config_set(&w->cfg, "outbox-max-bytes", "4096", err, sizeof(err)), 0);
    assert_int_equal(rc_engine_init(&w->engine, 1000, true, 32, 86400, 3600, 1e9), 0);
    /* 3 categories of 20 items; popularity falls with the index, so cold lists start with
     * the first items of each category. */
    for (int i = 0; i < 60; i++) {
        char id[16], name[32];
        const char *tags[] = {categories[i % 3]};
        uint32_t idx;
        snprintf(id, sizeof(id), "i%d", i);
        snprintf(name, sizeof(name), "Item %d", i);
        assert_int_equal(rc_catalog_upsert(&w->engine.catalog, id, name, categories[i % 3], tags, 1,
                                           1.0 + i, 100.0 - i, &idx),
                         0);
    }
    assert_int_equal(rc_engine_refresh(&w->engine), 0);
    w->profiles = rc_profile_memory_new(&w->defer);
    w->bus = rc_bus_local_new(&w->defer);
    w->sessions = rc_sessions_new(&w->cfg, "t1", &w->engine, w->profiles, w->bus, &fake_ops);
    assert_non_null(w->sessions);
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world_t *w = *state;
    /* As the node does: run what is still deferred while the sessions exist, then free. */
    rc_defer_close(&w->defer);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc_sessions_free(w->sessions);
    rc_bus_free(w->bus);
    rc_profile_store_free(w->profiles);
    rc_engine_free(&w->engine);
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
        cmocka_unit_test_setup_teardown(test_no_hello_in_time_closes_with_4004, world_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_drain_tells_every_client_then_closes_with_1001,
                                        world_setup, world_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
