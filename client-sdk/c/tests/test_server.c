/* SPDX-License-Identifier: Apache-2.0 */
/* The client against the real rankcast server, on both subprotocols: hello and welcome,
 * subscriptions and their lists, tracked events with their acks and the lists they cause,
 * refusals reaching the ack callback, limits, pushes. */
#include "harness.h"
#include "jwt_sign.h"

#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const rcc_format_t MSGPACK = RCC_FORMAT_MSGPACK, JSON = RCC_FORMAT_JSON;

static rcct_server_t open_server;   /* default settings */
static rcct_server_t closed_server; /* --catalog-open false --admin-token t0k --max-batch 2 */
static rcct_server_t paced_server;  /* --events-per-sec 20 --events-burst 5 */
static rcct_server_t token_server;  /* tokens only: --jwt-secret TOKEN_SECRET */

#define TOKEN_SECRET "c-sdk-test-secret-0123456789abcdef0123"

static rcc_format_t fmt_of(void **state)
{
    return *(const rcc_format_t *)*state;
}

/* A user id per test and subprotocol: the server pushes a list only when an event changes
 * it, so a second run with the same user and clicks would wait in vain. */
static const char *uid(void **state, const char *base)
{
    static char buf[RCC_ID_MAX + 1];
    snprintf(buf, sizeof(buf), "%s-%s-%d", base, fmt_of(state) == RCC_FORMAT_JSON ? "j" : "m",
             (int)getpid());
    return buf;
}

/* A connected client of `s`: OPEN before it is returned. */
static rcc_client_t *connect_client(const rcct_server_t *s, rcc_format_t fmt, rcct_rec_t *r,
                                    const char *user_id, rcc_options_t *o_out)
{
    static char url[64];
    rcc_options_t o;
    char err[128];
    int one = 1;
    rcct_options(&o, r, rcct_url(s, "ws", url, sizeof(url)), fmt);
    o.user_id = user_id;
    o.device = RCC_DEVICE_MOBILE;
    o.tz_offset_min = 60;
    if (o_out != NULL) {
        /* Options the test set beforehand (limits, queue) win over the defaults above. */
        o.max_queue = o_out->max_queue;
        o.consent = o_out->consent;
    }
    rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(c);
    assert_true(rcct_pump(c, r, 5000, rcct_opened, &one));
    return c;
}

static void connect_gets_welcome(void **state)
{
    rcct_rec_t r;
    rcc_limits_t l;
    rcc_client_t *c =
        connect_client(&open_server, fmt_of(state), &r, uid(state, "it-welcome"), NULL);
    assert_int_equal(rcc_client_state(c), RCC_STATE_OPEN);
    assert_string_equal(rcc_client_user_id(c), uid(state, "it-welcome"));
    rcc_client_limits(c, &l);
    assert_int_equal(l.max_batch, 100);
    assert_int_equal(l.max_subscriptions, 16);
    assert_int_equal(l.max_message_bytes, 65536);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(r.states[0], RCC_STATE_OPEN);
    rcc_client_free(c);
}

static void anonymous_user_gets_an_id(void **state)
{
    rcct_rec_t r;
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, NULL, NULL);
    assert_non_null(rcc_client_user_id(c));
    assert_memory_equal(rcc_client_user_id(c), "anon-", 5);
    rcc_client_free(c);
}

static void subscribe_gets_the_list(void **state)
{
    rcct_rec_t r;
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, uid(state, "it-sub"), NULL);
    rcc_filter_t f = {.category = "kitchen"};
    assert_int_equal(rcc_subscribe(c, "home", 5, NULL), 0);
    assert_int_equal(rcc_subscribe(c, "kitchen", 3, &f), 0);
    assert_int_equal(rcc_subscribe(c, "long", 100, NULL), 0); /* ~20 KB: several fragments */
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "home"));
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "kitchen"));
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "long"));
    for (int i = 0; i < r.n_recs; i++) {
        assert_string_equal(r.recs[i].cause, "");
        /* Every item carries its reason as data. */
        assert_int_equal(r.recs[i].n_reasons, r.recs[i].n_items);
        if (strcmp(r.recs[i].surface, "home") == 0)
            assert_int_equal(r.recs[i].n_items, 5);
        else if (strcmp(r.recs[i].surface, "long") == 0)
            assert_int_equal(r.recs[i].n_items, 100);
        else
            assert_string_equal(r.recs[i].first_category, "kitchen");
    }
    assert_int_equal(r.n_errors, 0);
    rcc_client_free(c);
}

static void click_is_acked_and_causes_a_list(void **state)
{
    rcct_rec_t r;
    int one = 1;
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, uid(state, "it-click"), NULL);
    assert_int_equal(rcc_subscribe(c, "home", 5, NULL), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "home"));
    rcc_event_t ev = {.kind = RCC_KIND_CLICK,
                      .item = "85123A",
                      .surface = "home",
                      .id = fmt_of(state) == JSON ? "it-click-j1" : "it-click-m1"};
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    assert_int_equal(rcc_client_pending(c), 1);
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &one));
    assert_int_equal(rcct_ack_status(&r, ev.id), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_caused_by, ev.id));
    assert_int_equal(rcc_client_pending(c), 0);
    /* The versions of one surface only grow: older lists are dropped before on_recs. */
    for (int i = 1; i < r.n_recs; i++)
        assert_true(r.recs[i].version > r.recs[i - 1].version);
    rcc_client_free(c);
}

/* A compact subscription (recs_delta) delivers the very lists a plain subscription of the
 * same user gets, version by version, every field of every item. */
static void compact_lists_match_whole_lists(void **state)
{
    rcct_rec_t *pr = calloc(1, sizeof(*pr)), *cr = calloc(1, sizeof(*cr));
    assert_non_null(pr);
    assert_non_null(cr);
    const char *user = uid(state, "it-compact");
    rcc_client_t *plain = connect_client(&open_server, fmt_of(state), pr, user, NULL);
    rcc_client_t *compact = connect_client(&open_server, fmt_of(state), cr, user, NULL);
    rcc_filter_t f = {.compact = true};
    assert_int_equal(rcc_subscribe(plain, "home", 20, NULL), 0);
    assert_int_equal(rcc_subscribe(compact, "home", 20, &f), 0);
    assert_true(rcct_pump(plain, pr, 5000, rcct_recs_for, "home"));
    assert_true(rcct_pump(compact, cr, 5000, rcct_recs_for, "home"));
    for (int i = 0; i < 6; i++) {
        /* The first item shown leaves the list once clicked (repeat "never"): a new list. */
        char id[32], item[RCC_ID_MAX + 1];
        snprintf(id, sizeof(id), "it-cmp-%c%d-%d", fmt_of(state) == JSON ? 'j' : 'm', i,
                 (int)getpid());
        snprintf(item, sizeof(item), "%s", cr->recs[cr->n_recs - 1].first_item);
        rcc_event_t ev = {.kind = RCC_KIND_CLICK, .item = item, .surface = "home", .id = id};
        assert_int_equal(rcc_track(plain, &ev, rcct_on_ack, pr), 0);
        assert_true(rcct_pump(plain, pr, 5000, rcct_recs_caused_by, id));
        assert_true(rcct_pump(compact, cr, 5000, rcct_recs_caused_by, id));
    }
    int compared = 0;
    for (int i = 0; i < cr->n_recs; i++) {
        assert_int_equal(cr->recs[i].n_items, 20);
        assert_int_equal(cr->recs[i].n_reasons, 20);
        for (int j = 0; j < pr->n_recs; j++) {
            if (pr->recs[j].version != cr->recs[i].version)
                continue;
            assert_true(pr->recs[j].sig == cr->recs[i].sig);
            assert_string_equal(pr->recs[j].cause, cr->recs[i].cause);
            compared++;
        }
    }
    assert_true(compared >= 6);
    assert_int_equal(cr->n_errors, 0);
    rcc_client_free(plain);
    rcc_client_free(compact);
    free(pr);
    free(cr);
}

/* Events tracked in one turn go out together; each is acknowledged exactly once. */
static void batch_of_events_is_acked(void **state)
{
    rcct_rec_t r;
    int want = 20;
    char ids[20][40];
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, uid(state, "it-batch"), NULL);
    for (int i = 0; i < want; i++) {
        rcc_event_t ev = {.kind = i % 2 ? RCC_KIND_VIEW : RCC_KIND_RATING,
                          .item = "22423",
                          .value = 4,
                          .has_value = i % 2 == 0};
        assert_int_equal(rcc_make_event_id(ids[i], sizeof(ids[i])), 0);
        ev.id = ids[i];
        assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    }
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &want));
    for (int i = 0; i < want; i++)
        assert_int_equal(rcct_ack_count(&r, ids[i]), 1);
    assert_int_equal(r.n_errors, 0);
    rcc_client_free(c);
}

/* A server whose max_batch is 2: the client keeps to welcome.limits, so none of its batches
 * is refused with 4022. */
static void batches_respect_max_batch(void **state)
{
    rcct_rec_t r;
    int want = 7;
    rcc_limits_t l;
    rcc_client_t *c =
        connect_client(&closed_server, fmt_of(state), &r, uid(state, "it-maxb"), NULL);
    rcc_client_limits(c, &l);
    assert_int_equal(l.max_batch, 2);
    for (int i = 0; i < want; i++) {
        rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "85123A"};
        assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    }
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &want));
    for (int i = 0; i < want; i++)
        assert_int_equal(r.ack_status[i], 0);
    assert_int_equal(r.n_errors, 0);
    rcc_client_free(c);
}

/* With a closed catalog an unknown item is refused with 4012: the code reaches the ack
 * callback, not on_error, and the event leaves the queue. */
static void unknown_item_error_reaches_ack_callback(void **state)
{
    rcct_rec_t r;
    int two = 2;
    rcc_client_t *c =
        connect_client(&closed_server, fmt_of(state), &r, uid(state, "it-4012"), NULL);
    rcc_event_t bad = {.kind = RCC_KIND_CLICK, .item = "NO-SUCH-ITEM", .id = "it-bad-1"};
    rcc_event_t good = {.kind = RCC_KIND_CLICK, .item = "85123A", .id = "it-good-1"};
    assert_int_equal(rcc_track(c, &bad, rcct_on_ack, &r), 0);
    assert_int_equal(rcc_track(c, &good, rcct_on_ack, &r), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &two));
    assert_int_equal(rcct_ack_status(&r, "it-bad-1"), 4012);
    assert_int_equal(rcct_ack_status(&r, "it-good-1"), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(rcc_client_pending(c), 0);
    assert_string_equal(rcc_strerror(4012), "unknown_item");
    rcc_client_free(c);
}

static void local_checks_refuse_without_callback(void **state)
{
    rcct_rec_t r;
    rcc_options_t o = {.max_queue = 2};
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, uid(state, "it-local"), &o);
    rcc_event_t no_item = {.kind = RCC_KIND_CLICK};
    rcc_event_t bad_rating = {
        .kind = RCC_KIND_RATING, .item = "22423", .value = 9, .has_value = true};
    rcc_event_t search = {.kind = RCC_KIND_SEARCH, .query = "mug"};
    rcc_event_t bad_surface = {.kind = RCC_KIND_VIEW, .item = "22423", .surface = "Home"};
    rcc_event_t bad_id = {.kind = RCC_KIND_VIEW, .item = "22423", .id = "has space"};
    assert_int_equal(rcc_track(c, &no_item, rcct_on_ack, &r), RCC_EINVAL);
    assert_int_equal(rcc_track(c, &bad_rating, rcct_on_ack, &r), RCC_EINVAL);
    assert_int_equal(rcc_track(c, &bad_surface, rcct_on_ack, &r), RCC_EINVAL);
    assert_int_equal(rcc_track(c, &bad_id, rcct_on_ack, &r), RCC_EINVAL);
    /* The queue holds two: the third is refused until one is acknowledged. */
    assert_int_equal(rcc_track(c, &search, rcct_on_ack, &r), 0);
    assert_int_equal(rcc_track(c, &search, rcct_on_ack, &r), 0);
    assert_int_equal(rcc_track(c, &search, rcct_on_ack, &r), RCC_EFULL);
    int two = 2;
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &two));
    assert_int_equal(r.n_acks, 2); /* refused calls never fire their callback */
    assert_int_equal(rcc_subscribe(c, "Home", 5, NULL), RCC_EINVAL);
    assert_int_equal(rcc_subscribe(c, "home", 101, NULL), RCC_EINVAL);
    assert_int_equal(rcc_unsubscribe(c, "nothing"), RCC_ENOENT);
    for (int i = 0; i < 16; i++) {
        char surface[16];
        snprintf(surface, sizeof(surface), "s%d", i);
        assert_int_equal(rcc_subscribe(c, surface, 1, NULL), 0);
    }
    assert_int_equal(rcc_subscribe(c, "s16", 1, NULL), RCC_ELIMIT); /* max_subscriptions */
    assert_int_equal(rcc_subscribe(c, "s3", 2, NULL), 0);           /* a replacement */
    rcc_client_free(c);
}

static bool has_recs_after(const rcct_rec_t *r, const void *index)
{
    return r->n_recs > *(const int *)index;
}

static void unsubscribe_stops_the_list(void **state)
{
    rcct_rec_t r;
    int one = 1;
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, uid(state, "it-unsub"), NULL);
    assert_int_equal(rcc_subscribe(c, "home", 3, NULL), 0);
    assert_int_equal(rcc_subscribe(c, "pdp", 3, NULL), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "home"));
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "pdp"));
    assert_int_equal(rcc_unsubscribe(c, "pdp"), 0);
    int before = r.n_recs;
    rcc_event_t ev = {.kind = RCC_KIND_PURCHASE, .item = "22752", .id = "it-unsub-1"};
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &one));
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_caused_by, "it-unsub-1"));
    rcct_pump(c, &r, 300, has_recs_after, &(int){before + 2}); /* let a stray list arrive */
    for (int i = before; i < r.n_recs; i++)
        assert_string_equal(r.recs[i].surface, "home");
    assert_int_equal(r.n_errors, 0); /* no 4040: the server held "pdp" */
    rcc_client_free(c);
}

static bool pushed(const rcct_rec_t *r, const void *arg)
{
    (void)arg;
    return r->n_pushes > 0;
}

static void push_reaches_on_push(void **state)
{
    rcct_rec_t r;
    const char *user = fmt_of(state) == JSON ? "it-push-j" : "it-push-m";
    char body[256];
    rcc_client_t *c = connect_client(&closed_server, fmt_of(state), &r, user, NULL);
    snprintf(body, sizeof(body),
             "{\"user\":\"%s\",\"topic\":\"coupon\",\"data\":{\"pct\":10,\"tags\":[\"a\",true]}}",
             user);
    char resp[1024];
    assert_int_equal(
        rcct_http(closed_server.port, "POST", "/api/v1/push", "t0k", body, resp, sizeof(resp)),
        202);
    assert_true(rcct_pump(c, &r, 5000, pushed, NULL));
    assert_string_equal(r.push_topic, "coupon");
    assert_string_equal(r.push_data, "{\"pct\":10,\"tags\":[\"a\",true]}");
    rcc_client_free(c);
}

/* rankcast_errors_total{code="4020",...} of the server's /metrics, 0 when absent. */
static long rate_limited_total(int port)
{
    static char resp[65536];
    long n = 0;
    assert_int_equal(rcct_http(port, "GET", "/metrics", NULL, NULL, resp, sizeof(resp)), 200);
    const char *line = strstr(resp, "rankcast_errors_total{code=\"4020\"");
    if (line != NULL)
        sscanf(strchr(line, '}') + 1, "%ld", &n);
    return n;
}

/* The client paces events by welcome.limits (20/s, burst 5): 15 events take about half a
 * second, and the server never has to refuse one with 4020. */
static void events_are_paced_by_the_rate_limit(void **state)
{
    rcct_rec_t r;
    int want = 15;
    struct timespec t0, t1;
    rcc_client_t *c = connect_client(&paced_server, fmt_of(state), &r, uid(state, "it-pace"), NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < want; i++) {
        rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "22423"};
        assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    }
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &want));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took_s >= 0.4); /* (15 - 5) / 20 s, less scheduling slack */
    for (int i = 0; i < want; i++)
        assert_int_equal(r.ack_status[i], 0);
    assert_int_equal(rate_limited_total(paced_server.port), 0);
    rcc_client_free(c);
}

static bool never(const rcct_rec_t *r, const void *arg)
{
    (void)r;
    (void)arg;
    return false;
}

/* Events the client paced apart but the server reads together (here the server is stopped
 * while the client sends: the burst and three paced events wait in the socket) are not
 * refused: the server's bucket allows a second of jitter on top of welcome.limits. */
static void paced_events_read_together_are_not_refused(void **state)
{
    rcct_rec_t r;
    int want = 8;
    rcc_client_t *c =
        connect_client(&paced_server, fmt_of(state), &r, uid(state, "it-stall"), NULL);
    long refused_before = rate_limited_total(paced_server.port);
    assert_int_equal(kill(paced_server.pid, SIGSTOP), 0);
    for (int i = 0; i < want; i++) {
        rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "22423"};
        assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    }
    rcct_pump(c, &r, 300, never, NULL); /* (8 - 5) / 18 s: the client sends all of them */
    assert_int_equal(kill(paced_server.pid, SIGCONT), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &want));
    assert_int_equal(rate_limited_total(paced_server.port), refused_before);
    rcc_client_free(c);
}

/* Freeing a client with events never acknowledged fires their callbacks with ECANCELED. */
static void free_cancels_pending_events(void **state)
{
    rcct_rec_t r;
    rcc_client_t *c = connect_client(&open_server, fmt_of(state), &r, uid(state, "it-free"), NULL);
    rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "22423", .id = "it-free-1"};
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    rcc_client_free(c); /* no service turn: the event never left */
    assert_int_equal(r.n_acks, 1);
    assert_int_equal(rcct_ack_status(&r, "it-free-1"), RCC_ECANCELED);
}

static const char *hs256(const char *sub, int64_t exp_s)
{
    char claims[160];
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%lld}", sub, (long long)exp_s);
    return jwt_sign("HS256", TOKEN_SECRET, NULL, "{\"alg\":\"HS256\"}", claims);
}

/* A token's subject is the user; rcc_set_token() on a live session keeps it alive past the
 * first token's expiry without reconnecting; a token for someone else ends it (4010). */
static void set_token_refreshes_a_live_session(void **state)
{
    rcct_rec_t r;
    rcc_options_t o;
    char url[64], err[128];
    int one = 1, acks = 1, code = 4010;
    rcc_state_t closed = RCC_STATE_CLOSED;
    const char *user = uid(state, "it-token");
    char first[8192];
    snprintf(first, sizeof(first), "%s", hs256(user, (int64_t)time(NULL) + 2));
    rcct_options(&o, &r, rcct_url(&token_server, "ws", url, sizeof(url)), fmt_of(state));
    o.token = first;
    rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(c);
    assert_true(rcct_pump(c, &r, 5000, rcct_opened, &one));
    assert_string_equal(rcc_client_user_id(c), user);
    assert_int_equal(rcc_set_token(c, hs256(user, (int64_t)time(NULL) + 600)), 0);
    rcct_pump(c, &r, 2500, never, NULL); /* past the first token's expiry */
    rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "22423"};
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &acks));
    assert_int_equal(r.ack_status[0], 0);
    assert_int_equal(r.opens, 1); /* never reconnected */
    assert_int_equal(rcc_set_token(c, hs256("someone-else", (int64_t)time(NULL) + 600)), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_in_state, &closed));
    assert_true(rcct_has_error(&r, &code));
    rcc_client_free(c);
}

static int start_servers(void **state)
{
    (void)state;
    static const char *closed_args[] = {
        "--catalog-open", "false", "--admin-token", "t0k", "--max-batch", "2", NULL};
    static const char *paced_args[] = {"--events-per-sec", "20", "--events-burst", "5", NULL};
    memcpy(closed_server.extra, closed_args, sizeof(closed_args));
    memcpy(paced_server.extra, paced_args, sizeof(paced_args));
    static const char *token_args[] = {
        "--anonymous", "false", "--jwt-secret", TOKEN_SECRET, "--jwt-leeway-s", "0", NULL};
    memcpy(token_server.extra, token_args, sizeof(token_args));
    signal(SIGPIPE, SIG_IGN);
    if (rcct_server_start(&open_server) != 0 || rcct_server_start(&closed_server) != 0 ||
        rcct_server_start(&paced_server) != 0 || rcct_server_start(&token_server) != 0)
        return -1;
    return 0;
}

static int stop_servers(void **state)
{
    (void)state;
    rcct_server_stop(&open_server, SIGKILL);
    rcct_server_stop(&closed_server, SIGKILL);
    rcct_server_stop(&paced_server, SIGKILL);
    rcct_server_stop(&token_server, SIGKILL);
    return 0;
}

#define BOTH(f)                                                                                    \
    cmocka_unit_test_prestate(f, (void *)&MSGPACK), cmocka_unit_test_prestate(f, (void *)&JSON)

int main(void)
{
    if (rcct_server_bin() == NULL)
        return RCCT_SKIP;
    const struct CMUnitTest tests[] = {
        BOTH(connect_gets_welcome),
        BOTH(anonymous_user_gets_an_id),
        BOTH(subscribe_gets_the_list),
        BOTH(click_is_acked_and_causes_a_list),
        BOTH(compact_lists_match_whole_lists),
        BOTH(batch_of_events_is_acked),
        BOTH(batches_respect_max_batch),
        BOTH(unknown_item_error_reaches_ack_callback),
        BOTH(local_checks_refuse_without_callback),
        BOTH(unsubscribe_stops_the_list),
        BOTH(push_reaches_on_push),
        BOTH(events_are_paced_by_the_rate_limit),
        BOTH(paced_events_read_together_are_not_refused),
        BOTH(free_cancels_pending_events),
        BOTH(set_token_refreshes_a_live_session),
    };
    return cmocka_run_group_tests(tests, start_servers, stop_servers);
}
