/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the profile replay (profile_replay.h): a store that outlives the process gets,
 * at the end, exactly the changes after the newest mark, in log order, each numbered as it was
 * live; a store that starts empty gets every change as it is read. A recording store stands in
 * for Redis and for memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/engine.h"
#include "store/profile_replay.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#define T0_MS     1700000000000LL
#define MAX_CALLS 32

/* What the store was sent: 'u' update or 'e' erasure, the user, the change's numbers, and
 * the events of an update (its "n"). */
typedef struct call {
    char what;
    char user[16];
    uint64_t first, seq;
    uint32_t events;
} call_t;

typedef struct recorder {
    rc_profile_store_t base;
    call_t calls[MAX_CALLS];
    int n;
} recorder_t;

static void record(rc_profile_store_t *s, char what, const char *user, size_t len,
                   rc_profile_seq_t seq, uint32_t events)
{
    recorder_t *r = (recorder_t *)s;
    assert_true(r->n < MAX_CALLS);
    r->calls[r->n] = (call_t){.what = what, .first = seq.first, .seq = seq.last, .events = events};
    snprintf(r->calls[r->n].user, sizeof(r->calls[r->n].user), "%.*s", (int)len, user);
    r->n++;
}

static int rec_update(rc_profile_store_t *s, const char *user, size_t user_len, const void *delta,
                      size_t len, rc_profile_seq_t seq)
{
    /* The delta's "n": the events it counts. */
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    uint32_t events = 0;
    msgpack_zone_init(&z, 1024);
    assert_int_equal(msgpack_unpack(delta, len, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    for (uint32_t i = 0; i < o.via.map.size; i++)
        if (o.via.map.ptr[i].key.via.str.size == 1 && o.via.map.ptr[i].key.via.str.ptr[0] == 'n')
            events = (uint32_t)o.via.map.ptr[i].val.via.u64;
    msgpack_zone_destroy(&z);
    record(s, 'u', user, user_len, seq, events);
    return 0;
}

static int rec_erase(rc_profile_store_t *s, const char *user, size_t user_len, rc_profile_seq_t seq)
{
    record(s, 'e', user, user_len, seq, 0);
    return 0;
}

static const rc_profile_ops_t shared_ops = {
    .name = "shared", .update = rec_update, .erase = rec_erase, .shared = true};
static const rc_profile_ops_t empty_ops = {
    .name = "empty", .update = rec_update, .erase = rec_erase, .shared = false};

static rc_engine_t *engine;

static int setup(void **state)
{
    (void)state;
    uint32_t idx;
    engine = rc_engine_new(100, false, 16, 86400, 3600, T0_MS / 1000.0);
    assert_non_null(engine);
    assert_int_equal(
        rc_catalog_upsert(rc_engine_catalog(engine), "i1", "one", "cat", NULL, 0, 1, 1, &idx), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_engine_free(engine);
    return 0;
}

static rc_str_t str(const char *s)
{
    return (rc_str_t){s, (uint32_t)strlen(s)};
}

static void event(rc_profile_replay_t *r, const char *user, uint64_t seq)
{
    rc_profile_replay_event(r, str(user), RC_EV_CLICK, str("i1"), false, 0, T0_MS, seq);
}

static void assert_call(const call_t *c, char what, const char *user, uint64_t first, uint64_t seq)
{
    assert_int_equal(c->what, what);
    assert_string_equal(c->user, user);
    assert_int_equal(c->first, first);
    assert_int_equal(c->seq, seq);
}

/* Marks drop what the store confirmed; what follows the newest goes out at the end, in
 * order, erasures in their place. */
static void shared_store_gets_what_follows_the_newest_mark(void **state)
{
    (void)state;
    recorder_t rec = {.base.ops = &shared_ops};
    rc_profile_replay_t *r = rc_profile_replay_new(&rec.base, rc_engine_catalog(engine));
    assert_non_null(r);
    event(r, "a", 10);
    event(r, "b", 11);
    rc_profile_replay_mark(r, 11); /* 10 confirmed, 11 not yet */
    event(r, "a", 12);
    rc_profile_replay_erase(r, str("a"), 13);
    event(r, "a", 14);
    rc_profile_replay_event(r, (rc_str_t){NULL, 0}, RC_EV_VIEW, str("i1"), false, 0, T0_MS, 15);
    assert_int_equal(rec.n, 0); /* nothing before the end: a later mark may drop it */
    rc_profile_replay_mark(r, 12);
    rc_profile_replay_stats_t st;
    rc_profile_replay_finish(r, &st);
    assert_int_equal(rec.n, 3);
    assert_call(&rec.calls[0], 'u', "a", 12, 12);
    assert_call(&rec.calls[1], 'e', "a", 13, 13);
    assert_call(&rec.calls[2], 'u', "a", 14, 14);
    for (int i = 0; i < 3; i += 2)
        assert_int_equal(rec.calls[i].events, 1); /* each event alone: Redis skips by number */
    assert_int_equal(st.events_sent, 2);
    assert_int_equal(st.erasures_sent, 1);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.refused, 0);
    rc_profile_replay_free(r);
}

/* A store that starts empty needs everything: each user's events gather in one delta (as a
 * live session's do); an erasure drops what gathered before it and goes out in its place;
 * marks change nothing. */
static void empty_store_gets_every_change_gathered(void **state)
{
    (void)state;
    recorder_t rec = {.base.ops = &empty_ops};
    rc_profile_replay_t *r = rc_profile_replay_new(&rec.base, rc_engine_catalog(engine));
    event(r, "a", 10);
    event(r, "b", 11);
    event(r, "a", 12);
    rc_profile_replay_mark(r, 20);
    event(r, "c", 21);
    rc_profile_replay_erase(r, str("c"), 22);
    event(r, "c", 23);
    assert_int_equal(rec.n, 1); /* the erasure, at once */
    assert_call(&rec.calls[0], 'e', "c", 22, 22);
    rc_profile_replay_stats_t st;
    rc_profile_replay_finish(r, &st);
    assert_int_equal(rec.n, 4);
    assert_call(&rec.calls[1], 'u', "a", 10, 12);
    assert_int_equal(rec.calls[1].events, 2);
    assert_call(&rec.calls[2], 'u', "b", 11, 11);
    assert_call(&rec.calls[3], 'u', "c", 23, 23); /* 21 went with the erasure */
    assert_int_equal(rec.calls[3].events, 1);
    assert_int_equal(st.events_sent, 4);
    assert_int_equal(st.erasures_sent, 1);
    assert_int_equal(st.skipped, 0);
    rc_profile_replay_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_store_gets_what_follows_the_newest_mark),
        cmocka_unit_test(empty_store_gets_every_change_gathered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
