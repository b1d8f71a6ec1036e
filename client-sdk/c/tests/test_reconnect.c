/* SPDX-License-Identifier: Apache-2.0 */
/* The client across failures of the real server: killed and restarted on the same port
 * (with events queued meanwhile, and with an event in flight), drained by SIGTERM, absent
 * at the start, refusing the client for good (4010), rcc_client_reconnect_now() cutting
 * a backoff of an hour short, and a signed anonymous id kept across a restart (4013 for a
 * made-up one). */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const rcc_format_t MSGPACK = RCC_FORMAT_MSGPACK, JSON = RCC_FORMAT_JSON;
static const rcc_state_t RECONNECTING = RCC_STATE_RECONNECTING, CLOSED = RCC_STATE_CLOSED;

typedef struct fixture {
    rcct_server_t server;
    rcct_rec_t rec;
    rcc_client_t *client;
    char url[64];
    char user[RCC_ID_MAX + 1];
} fixture_t;

static rcc_format_t fmt_of(void **state)
{
    return *(const rcc_format_t *)*state;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts a server (extra arguments as given) and a client of it; `wait_open` waits for
 * OPEN and for the list of "home". */
static fixture_t *fixture_start(void **state, const char *name, const char *const *extra,
                                bool wait_open)
{
    static fixture_t f;
    rcc_options_t o;
    char err[128];
    int one = 1;
    memset(&f, 0, sizeof(f));
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        f.server.extra[i] = extra[i];
    assert_int_equal(rcct_server_start(&f.server), 0);
    rcct_options(&o, &f.rec, rcct_url(&f.server, "ws", f.url, sizeof(f.url)), fmt_of(state));
    snprintf(f.user, sizeof(f.user), "%s-%s-%d", name, fmt_of(state) == JSON ? "j" : "m",
             (int)getpid());
    o.user_id = f.user;
    f.client = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(f.client);
    assert_int_equal(rcc_subscribe(f.client, "home", 4, NULL), 0);
    if (wait_open) {
        assert_true(rcct_pump(f.client, &f.rec, 5000, rcct_opened, &one));
        assert_true(rcct_pump(f.client, &f.rec, 5000, rcct_recs_for, "home"));
    }
    return &f;
}

static void fixture_stop(fixture_t *f)
{
    rcc_client_free(f->client);
    rcct_server_stop(&f->server, SIGKILL);
}

static void track_clicks(fixture_t *f, const char *prefix, int n, char ids[][RCC_ID_MAX + 1])
{
    static const char *items[] = {"85123A", "22423", "71053", "84029E"};
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], RCC_ID_MAX + 1, "%.40s-%d", prefix, i);
        rcc_event_t ev = {.kind = RCC_KIND_CLICK, .item = items[i % 4], .id = ids[i]};
        assert_int_equal(rcc_track(f->client, &ev, rcct_on_ack, &f->rec), 0);
    }
}

/* SIGKILL, events tracked while the server is gone, a new server on the same port: the
 * client reconnects, subscribes again and its queued events are acknowledged. */
static void restart_resubscribes_and_delivers_queued_events(void **state)
{
    fixture_t *f = fixture_start(state, "rc-restart", NULL, true);
    char ids[3][RCC_ID_MAX + 1];
    int two = 2, three = 3, econnect = RCC_ECONNECT;
    rcct_server_stop(&f->server, SIGKILL);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_in_state, &RECONNECTING));
    track_clicks(f, f->user, 3, ids);
    /* Nothing listens: attempts fail (and are reported) while the backoff grows. */
    assert_true(rcct_pump(f->client, &f->rec, 3000, rcct_has_error, &econnect));
    assert_int_equal(f->rec.n_acks, 0);
    assert_int_equal(rcc_client_pending(f->client), 3);
    assert_int_equal(rcct_server_start(&f->server), 0);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_opened, &two));
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_acked, &three));
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcct_ack_status(&f->rec, ids[i]), 0);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_recs_for, "home"));
    assert_true(rcct_answers_after_open(&f->rec, "home", 2) >= 1 ||
                rcct_pump(f->client, &f->rec, 5000, rcct_recs_caused_by, ids[2]));
    fixture_stop(f);
}

/* An event written to a server that never answers (stopped, then killed) is sent again on
 * the next connection and acknowledged there: at-least-once. */
static void inflight_event_is_resent_after_restart(void **state)
{
    fixture_t *f = fixture_start(state, "rc-inflight", NULL, true);
    char ids[1][RCC_ID_MAX + 1];
    int one = 1, two = 2;
    kill(f->server.pid, SIGSTOP);
    track_clicks(f, f->user, 1, ids);
    assert_false(rcct_pump(f->client, &f->rec, 300, rcct_acked, &one)); /* written, no ack */
    assert_int_equal(rcc_client_pending(f->client), 1);
    rcct_server_stop(&f->server, SIGKILL);
    assert_int_equal(rcct_server_start(&f->server), 0);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_opened, &two));
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_acked, &one));
    assert_int_equal(rcct_ack_status(&f->rec, ids[0]), 0);
    assert_int_equal(rcct_ack_count(&f->rec, ids[0]), 1);
    fixture_stop(f);
}

/* SIGTERM: the server sends drain (reconnect_after_ms 1000) and closes with 1001. The
 * client waits about that long before it reconnects, to the next server on the port. */
static void drain_waits_the_hint_then_reconnects(void **state)
{
    fixture_t *f = fixture_start(state, "rc-drain", NULL, true);
    int two = 2;
    kill(f->server.pid, SIGTERM);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_in_state, &RECONNECTING));
    int64_t lost_ms = now_ms();
    assert_int_equal(f->rec.reasons[f->rec.n_states - 1], 1001);
    int status = rcct_server_stop(&f->server, 0); /* waits for the drained exit */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(rcct_server_start(&f->server), 0);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_opened, &two));
    assert_true(now_ms() - lost_ms >= 800); /* the hint, less the time drain->close took */
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_recs_for, "home"));
    assert_true(rcct_answers_after_open(&f->rec, "home", 2) >= 1 ||
                rcct_pump(f->client, &f->rec, 3000, rcct_recs_for, "home"));
    fixture_stop(f);
}

static bool answer_after_second_open(const rcct_rec_t *r, const void *arg)
{
    (void)arg;
    return rcct_answers_after_open(r, "home", 2) >= 1;
}

/* Re-subscription is checked on its own: the first list after the second OPEN. */
static void reconnect_renews_subscriptions(void **state)
{
    fixture_t *f = fixture_start(state, "rc-resub", NULL, true);
    int two = 2;
    rcct_server_stop(&f->server, SIGKILL);
    assert_int_equal(rcct_server_start(&f->server), 0);
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_opened, &two));
    assert_true(rcct_pump(f->client, &f->rec, 5000, answer_after_second_open, NULL));
    fixture_stop(f);
}

/* The client starts while nothing listens: it reports the failures and connects when the
 * server comes up. */
static void client_waits_for_a_late_server(void **state)
{
    rcct_server_t s = {0};
    rcct_rec_t r;
    rcc_options_t o;
    char url[64], err[128];
    int one = 1, econnect = RCC_ECONNECT;
    s.port = rcct_free_port();
    rcct_options(&o, &r, rcct_url(&s, "ws", url, sizeof(url)), fmt_of(state));
    rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(c);
    assert_true(rcct_pump(c, &r, 3000, rcct_has_error, &econnect));
    assert_true(rcct_pump(c, &r, 3000, rcct_in_state, &RECONNECTING));
    assert_int_equal(rcct_server_start(&s), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_opened, &one));
    rcc_client_free(c);
    rcct_server_stop(&s, SIGKILL);
}

/* A server that allows no anonymous sessions refuses a client without a token (4010): the
 * client gives up (CLOSED, reason 4010) instead of retrying forever. */
static void unauthorized_is_final(void **state)
{
    static const char *args[] = {"--anonymous", "false", NULL};
    fixture_t *f = fixture_start(state, "rc-4010", args, false);
    int e4010 = 4010;
    assert_true(rcct_pump(f->client, &f->rec, 5000, rcct_in_state, &CLOSED));
    assert_true(rcct_has_error(&f->rec, &e4010));
    assert_int_equal(f->rec.reasons[f->rec.n_states - 1], 4010);
    assert_int_equal(rcc_client_service(f->client, 10), RCC_ECLOSED);
    rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "22423"};
    assert_int_equal(rcc_track(f->client, &ev, NULL, NULL), RCC_ECLOSED);
    assert_int_equal(f->rec.opens, 0);
    fixture_stop(f);
}

static bool opened_as_other_than(const rcct_rec_t *r, const void *arg)
{
    (void)r;
    const rcc_client_t *c = ((const void *const *)arg)[0];
    const char *refused = ((const void *const *)arg)[1];
    return rcc_client_state(c) == RCC_STATE_OPEN && rcc_client_user_id(c) != NULL &&
           strcmp(rcc_client_user_id(c), refused) != 0;
}

/* A server that signs anonymous ids (the default outside --demo), with a data directory that
 * keeps its key: a client without user_id is issued an id, presents it again after the
 * server is killed and restarted, and is the same user; a made-up id is refused (4013) and
 * the client comes back at once without it, under a fresh id, despite an hour of backoff. */
static void issued_anonymous_id_is_kept_across_a_restart(void **state)
{
    static char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/rcct-anon-XXXXXX");
    assert_non_null(mkdtemp(dir));
    static const char *args[] = {"--anonymous-ids", "signed", "--data-dir", dir, NULL};
    static fixture_t f;
    rcc_options_t o;
    char err[128], issued[RCC_ID_MAX + 1];
    int one = 1, two = 2, e4013 = 4013;
    memset(&f, 0, sizeof(f));
    for (int i = 0; args[i] != NULL; i++)
        f.server.extra[i] = args[i];
    assert_int_equal(rcct_server_start(&f.server), 0);
    rcct_options(&o, &f.rec, rcct_url(&f.server, "ws", f.url, sizeof(f.url)), fmt_of(state));
    f.client = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(f.client);
    assert_true(rcct_pump(f.client, &f.rec, 5000, rcct_opened, &one));
    snprintf(issued, sizeof(issued), "%s", rcc_client_user_id(f.client));
    assert_int_equal(strlen(issued), 62);
    assert_memory_equal(issued, "anon-", 5);

    rcct_server_stop(&f.server, SIGKILL);
    assert_int_equal(rcct_server_start(&f.server), 0);
    assert_true(rcct_pump(f.client, &f.rec, 8000, rcct_opened, &two));
    assert_string_equal(rcc_client_user_id(f.client), issued);
    assert_false(rcct_has_error(&f.rec, &e4013));
    rcc_client_free(f.client);

    /* A made-up id: 4013, then a fresh issued id at once. */
    rcct_rec_t r2;
    rcct_options(&o, &r2, f.url, fmt_of(state));
    o.user_id = "anon-made-up-by-the-client";
    o.reconnect_base_ms = 3600 * 1000;
    o.reconnect_cap_ms = 3600 * 1000;
    rcc_client_t *c2 = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(c2);
    const void *arg[2] = {c2, o.user_id};
    assert_true(rcct_pump(c2, &r2, 5000, opened_as_other_than, arg));
    assert_true(rcct_has_error(&r2, &e4013));
    assert_int_equal(strlen(rcc_client_user_id(c2)), 62);
    assert_string_not_equal(rcc_client_user_id(c2), issued);
    rcc_client_free(c2);
    rcct_server_stop(&f.server, SIGKILL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* rcc_client_close(): CLOSED once the close handshake is done; no reconnect follows. */
static void close_stops_reconnecting(void **state)
{
    fixture_t *f = fixture_start(state, "rc-close", NULL, true);
    assert_int_equal(rcc_client_close(f->client), 0);
    assert_int_equal(rcc_client_close(f->client), RCC_ECLOSED);
    assert_true(rcct_pump(f->client, &f->rec, 3000, rcct_in_state, &CLOSED));
    assert_int_equal(f->rec.reasons[f->rec.n_states - 1], 1000);
    assert_int_equal(rcc_client_service(f->client, 10), RCC_ECLOSED);
    assert_int_equal(f->rec.reconnects, 0);
    fixture_stop(f);
}

/* A server restarted while the client waits out a backoff of up to an hour: only
 * rcc_client_reconnect_now() brings it back at once. On an open connection it drops the
 * socket and connects again, with the subscription and a queued event carried over. */
static void reconnect_now_skips_the_backoff(void **state)
{
    static fixture_t f;
    rcc_options_t o;
    char err[128];
    int one = 1, two = 2, three = 3, econnect = RCC_ECONNECT;
    memset(&f, 0, sizeof(f));
    assert_int_equal(rcct_server_start(&f.server), 0);
    rcct_options(&o, &f.rec, rcct_url(&f.server, "ws", f.url, sizeof(f.url)), fmt_of(state));
    o.reconnect_base_ms = 3600 * 1000;
    o.reconnect_cap_ms = 3600 * 1000;
    snprintf(f.user, sizeof(f.user), "rc-now-%s-%d", fmt_of(state) == JSON ? "j" : "m",
             (int)getpid());
    o.user_id = f.user;
    f.client = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(f.client);
    assert_int_equal(rcc_subscribe(f.client, "home", 4, NULL), 0);
    assert_true(rcct_pump(f.client, &f.rec, 5000, rcct_opened, &one));

    /* The server goes; the client's first retry is uniform in [0, 1 h): it fails (nothing
     * listens), and the next waits up to an hour. */
    rcct_server_stop(&f.server, SIGKILL);
    assert_true(rcct_pump(f.client, &f.rec, 5000, rcct_in_state, &RECONNECTING));
    rcct_pump(f.client, &f.rec, 300, rcct_has_error, &econnect);
    assert_int_equal(rcct_server_start(&f.server), 0);
    assert_false(rcct_pump(f.client, &f.rec, 500, rcct_opened, &two)); /* still waiting */
    int64_t t0 = now_ms();
    assert_int_equal(rcc_client_reconnect_now(f.client), 0);
    assert_true(rcct_pump(f.client, &f.rec, 3000, rcct_opened, &two));
    assert_true(now_ms() - t0 < 3000);

    /* On a live connection: a new one at once; the list and a queued event follow. */
    char ids[1][RCC_ID_MAX + 1];
    track_clicks(&f, "rc-now-ev", 1, ids);
    assert_int_equal(rcc_client_reconnect_now(f.client), 0);
    assert_true(rcct_pump(f.client, &f.rec, 3000, rcct_opened, &three));
    assert_true(rcct_pump(f.client, &f.rec, 5000, rcct_acked, &one));
    assert_int_equal(rcct_ack_status(&f.rec, ids[0]), 0);
    assert_true(rcct_answers_after_open(&f.rec, "home", 3) >= 1 ||
                rcct_pump(f.client, &f.rec, 3000, rcct_recs_for, "home"));
    assert_int_equal(rcc_client_close(f.client), 0);
    assert_int_equal(rcc_client_reconnect_now(f.client), RCC_ECLOSED);
    fixture_stop(&f);
}

#define BOTH(f)                                                                                    \
    cmocka_unit_test_prestate(f, (void *)&MSGPACK), cmocka_unit_test_prestate(f, (void *)&JSON)

int main(void)
{
    if (rcct_server_bin() == NULL)
        return RCCT_SKIP;
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        BOTH(restart_resubscribes_and_delivers_queued_events),
        BOTH(inflight_event_is_resent_after_restart),
        BOTH(drain_waits_the_hint_then_reconnects),
        BOTH(reconnect_renews_subscriptions),
        BOTH(client_waits_for_a_late_server),
        BOTH(unauthorized_is_final),
        BOTH(close_stops_reconnecting),
        BOTH(reconnect_now_skips_the_backoff),
        BOTH(issued_anonymous_id_is_kept_across_a_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
