/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the left-right engine (engine/shared.c): reader threads rank fixed users
 * while the writer learns a seeded stream of events, catalog upserts and removals, ids named
 * by traffic (learned by an open catalog once trusted) with events on them by id, locales
 * met, and refreshes (whole and in slices); both
 * copies must end equal to one engine fed the same ops serially, and no reader may see an
 * item after its removal was published. Run under ThreadSanitizer too (-DRC_TSAN=ON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/engine_op.h"
#include "engine/shared.h"
#include "engine_fixture.h"

#include <pthread.h>
#include <stdatomic.h>

#define N_READERS    3
#define N_FIXED      6
#define N_TRAFFIC    32
#define N_OPS        12000
#define N_REMOVED    6
#define RANK_K       20
#define CATALOG_MAX  1000
#define REFRESH_EACH 500

/* The same 200 items as the fixture's, in a new engine that no fixture slot holds (the
 * shared engine owns its copies); its catalog is open, so traffic may teach it items. */
static rc_engine_t *items_engine(void)
{
    rc_engine_t *e = rc_engine_new(CATALOG_MAX, true, 32, 86400, 3600, T0_MS / 1000.0);
    assert_non_null(e);
    add_fixture_items(e);
    return e;
}

static uint64_t next_random(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 17;
}

/* What the readers share with the test's thread. */
typedef struct world {
    rc_shared_t *shared;
    rc_user_state_t fixed[N_FIXED]; /* read only while readers run */
    /* The most popular items, removed one by one: flagged once the removal is published. */
    atomic_bool removed[N_REMOVED];
    atomic_bool stop;
    atomic_uint_fast64_t ranks, violations;
} world_t;

static void rank_spec(rc_rank_spec_t *spec, int which)
{
    *spec = (rc_rank_spec_t){.k = RANK_K, .category = -1, .price_min = -1, .price_max = -1};
    if (which == 1)
        spec->category = 3;
    if (which == 2)
        spec->repeat = RC_REPEAT_ALLOWED;
}

/* A list is one some state could give: valid items, none twice, none removed before the
 * section began. (The section's copy must also stay still: reader_main checks that.) */
static bool list_plausible(const rc_engine_t *e, const rc_ranked_t *out, uint32_t n,
                           const bool *gone)
{
    for (uint32_t i = 0; i < n; i++) {
        if (out[i].item >= e->catalog.n)
            return false;
        if (out[i].item < N_REMOVED && gone[out[i].item])
            return false;
        for (uint32_t j = 0; j < i; j++)
            if (out[j].item == out[i].item)
                return false;
    }
    return true;
}

static void *reader_main(void *arg)
{
    world_t *w = arg;
    rc_shared_reader_t *r = rc_shared_reader_register(w->shared);
    rc_ranker_t *rk = rc_ranker_new();
    if (r == NULL || rk == NULL) {
        atomic_fetch_add(&w->violations, 1);
        rc_ranker_free(rk);
        return NULL;
    }
    rc_ranked_t out[RANK_K];
    char why[128];
    for (uint32_t round = 0; !atomic_load(&w->stop); round++) {
        bool gone[N_REMOVED];
        for (int i = 0; i < N_REMOVED; i++)
            gone[i] = atomic_load(&w->removed[i]);
        const rc_user_state_t *u = &w->fixed[round % N_FIXED];
        rc_rank_spec_t spec;
        rank_spec(&spec, (int)(round / N_FIXED % 3));
        /* A section: one rank and what encoding reads (reasons in words). */
        const rc_engine_t *e = rc_shared_read_begin(r);
        /* What nearly every event op moves: it must not move during the section. */
        uint32_t items = e->catalog.n;
        float same[RC_DEVICE_COUNT];
        memcpy(same, e->repeat_same, sizeof(same));
        uint32_t n = rc_engine_rank(e, rk, u, &spec, T0_MS + 3600000, out);
        for (uint32_t i = 0; i < n; i++)
            rc_engine_why(e, u, &out[i], why, sizeof(why));
        bool ok = list_plausible(e, out, n, gone) && e->catalog.n == items &&
                  memcmp(same, e->repeat_same, sizeof(same)) == 0;
        rc_shared_read_end(r);
        if (!ok)
            atomic_fetch_add(&w->violations, 1);
        atomic_fetch_add_explicit(&w->ranks, 1, memory_order_relaxed);
    }
    rc_ranker_free(rk);
    rc_shared_reader_unregister(r);
    return NULL;
}

/* Applies `op` to the serial engine, then hands it to the shared one. */
static void both(rc_engine_t *serial, rc_shared_t *sh, rc_engine_op_t *op)
{
    rc_engine_apply(serial, op);
    assert_int_equal(rc_shared_submit(sh, op), 0);
    assert_int_equal(op->type, RC_OP_NONE);
}

/* Returns how many ops it submitted (N_OPS and the ids seen). */
static int feed(world_t *w, rc_engine_t *serial)
{
    static rc_user_state_t traffic[N_TRAFFIC];
    static const rc_event_kind_t kinds[] = {RC_EV_VIEW, RC_EV_CLICK, RC_EV_CART, RC_EV_PURCHASE,
                                            RC_EV_DISMISS};
    for (int i = 0; i < N_TRAFFIC; i++) {
        rc_user_state_init(&traffic[i], i % RC_DEVICE_COUNT, 60 * (i % 3));
        traffic[i].user_key = (uint32_t)i + 1;
    }
    uint64_t rnd = 20261207;
    rc_engine_op_t op;
    int n_new = 0, n_removed = 0, n_seen = 0;
    for (int i = 0; i < N_OPS; i++) {
        int64_t at_ms = T0_MS + i * 250;
        /* Many small batches: each publish is a turn of the protocol under test. */
        if (i % 200 == 0)
            assert_int_equal(rc_shared_flush(w->shared), 0);
        if (i % REFRESH_EACH == REFRESH_EACH - 1) {
            rc_engine_op_refresh(&op, at_ms);
            both(serial, w->shared, &op);
        } else if (i % 97 == 50) {
            rc_engine_op_refresh_step(&op, 50, at_ms); /* the tick's way: a slice at a time */
            both(serial, w->shared, &op);
        } else if (i % 400 == 123) {
            char id[16], name[16];
            const char *tags[] = {"color1", "fresh"};
            snprintf(id, sizeof(id), "n%03d", n_new);
            snprintf(name, sizeof(name), "New %d", n_new++);
            assert_int_equal(rc_engine_op_upsert(&op, id, name, "cat3", tags, 2, 9, 2000), 0);
            both(serial, w->shared, &op);
        } else if (i % 150 == 77) {
            /* An id named by traffic, as a loop whose copy does not know it submits it: the
             * id seen by the user, then the event by id (resolved when applied: the third
             * distinct user makes it an item). */
            rc_user_state_t *u = &traffic[next_random(&rnd) % N_TRAFFIC];
            char id[16];
            int len = snprintf(id, sizeof(id), "t%02d", (i / 150) % 12);
            int64_t known = rc_catalog_find(&serial->catalog, id, (size_t)len);
            if (known < 0) {
                assert_int_equal(rc_engine_op_item_seen(&op, id, (size_t)len, u->user_key), 0);
                both(serial, w->shared, &op);
                n_seen++;
            }
            rc_engine_op_event(&op, u, RC_EV_VIEW, known, 1, at_ms);
            if (known < 0)
                assert_int_equal(rc_engine_op_event_by_id(&op, id, (size_t)len), 0);
            both(serial, w->shared, &op);
            rc_user_observe(serial, u, RC_EV_VIEW, known, 1, no_query(), at_ms);
        } else if (i % 700 == 350) {
            static const char *const tags[] = {"de-DE", "pt_br", "en-GB", "fr-FR"};
            const char *tag = tags[(i / 700) % 4];
            rc_engine_op_locale(&op, (rc_str_t){tag, (uint32_t)strlen(tag)}, at_ms);
            both(serial, w->shared, &op);
            traffic[(i / 700) % N_TRAFFIC].locale =
                (int16_t)rc_engine_locale_find(serial, (rc_str_t){tag, (uint32_t)strlen(tag)});
        } else if (i % 2000 == 1000 && n_removed < N_REMOVED) {
            char id[16];
            int len = snprintf(id, sizeof(id), "i%03d", n_removed);
            assert_int_equal(rc_engine_op_remove(&op, id, (size_t)len), 0);
            both(serial, w->shared, &op);
            /* Published once flushed: from then on no section may show it. */
            assert_int_equal(rc_shared_flush(w->shared), 0);
            atomic_store(&w->removed[n_removed++], true);
        } else {
            rc_user_state_t *u = &traffic[next_random(&rnd) % N_TRAFFIC];
            uint32_t n_items = serial->catalog.n;
            int64_t item = (int64_t)(next_random(&rnd) % n_items);
            rc_event_kind_t kind = kinds[next_random(&rnd) % 20 < 16 ? next_random(&rnd) % 3
                                                                     : 3 + next_random(&rnd) % 2];
            float weight = rc_event_weight(kind, false, 0);
            rc_engine_op_event(&op, u, kind, item, weight, at_ms);
            both(serial, w->shared, &op);
            /* The user's half on the producer's side, as the loop owning the session does. */
            rc_user_observe(serial, u, kind, item, weight, no_query(), at_ms);
        }
    }
    assert_int_equal(n_removed, N_REMOVED);
    return N_OPS + n_seen;
}

static void assert_same_lists(const rc_engine_t *a, const rc_engine_t *b, const world_t *w)
{
    rc_ranker_t *rk = scratch();
    rc_ranked_t x[RANK_K], y[RANK_K];
    for (int u = 0; u < N_FIXED; u++) {
        for (int which = 0; which < 3; which++) {
            rc_rank_spec_t spec;
            rank_spec(&spec, which);
            uint32_t nx = rc_engine_rank(a, rk, &w->fixed[u], &spec, T0_MS + 3600000, x);
            uint32_t ny = rc_engine_rank(b, rk, &w->fixed[u], &spec, T0_MS + 3600000, y);
            assert_int_equal(nx, ny);
            for (uint32_t i = 0; i < nx; i++) {
                assert_int_equal(x[i].item, y[i].item);
                assert_memory_equal(&x[i].score, &y[i].score, sizeof(float));
                assert_int_equal(x[i].src, y[i].src);
                assert_int_equal(x[i].ref, y[i].ref);
            }
        }
    }
    assert_memory_equal(a->repeat_same, b->repeat_same, sizeof(a->repeat_same));
    assert_int_equal(a->catalog.n, b->catalog.n);
    assert_int_equal(a->catalog.n_learned, b->catalog.n_learned);
}

static void test_readers_rank_while_the_writer_learns(void **state)
{
    (void)state;
    static world_t w;
    memset(&w, 0, sizeof(w));
    rc_engine_t *serial = items_engine();
    engines[0] = serial; /* freed by the teardown */
    w.shared = rc_shared_new(items_engine(), items_engine(), N_READERS);
    assert_non_null(w.shared);
    /* Fixed users: a cold one (popularity: the removed items lead its list), and users with
     * short histories among the popular items and elsewhere. */
    for (int u = 0; u < N_FIXED; u++) {
        rc_user_state_init(&w.fixed[u], u % RC_DEVICE_COUNT, 0);
        for (int j = 0; j < u * 3; j++)
            rc_user_push_recent(&w.fixed[u], (uint32_t)((u * 37 + j * 11) % N_ITEMS), 1.0f,
                                (uint32_t)(T0_MS / 1000), RC_EV_VIEW);
    }
    pthread_t readers[N_READERS];
    for (int i = 0; i < N_READERS; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, reader_main, &w), 0);
    int submitted = feed(&w, serial);
    assert_int_equal(rc_shared_flush(w.shared), 0);
    atomic_store(&w.stop, true);
    for (int i = 0; i < N_READERS; i++)
        pthread_join(readers[i], NULL);

    rc_shared_stats_t st;
    rc_shared_stats(w.shared, &st);
    print_message("ranks %llu, ops %llu in %llu batches, failed %llu\n",
                  (unsigned long long)atomic_load(&w.ranks), (unsigned long long)st.ops,
                  (unsigned long long)st.batches, (unsigned long long)st.ops_failed);
    assert_int_equal(atomic_load(&w.violations), 0);
    assert_int_equal(st.ops, submitted);
    assert_int_equal(st.ops_failed, 0);
    assert_int_gt(atomic_load(&w.ranks), N_READERS);
    assert_same_lists(rc_shared_copy(w.shared, 0), serial, &w);
    assert_same_lists(rc_shared_copy(w.shared, 1), serial, &w);
    /* Ids named by traffic became items (by their records alone), and the events that went
     * by id were learned with them. */
    assert_int_ge(serial->catalog.n_learned, 10);
    int64_t learned = rc_catalog_find(&serial->catalog, "t00", 3);
    assert_int_ge(learned, 0);
    assert_dbl_gt(rc_trending_norm(&serial->trending, RC_SEG_ALL, (uint32_t)learned), 0);
    rc_shared_free(w.shared);
}

/* A loop is a producer and a reader: its events' model halves go to the writer, their
 * user's halves and its ranks read the published copy. */
typedef struct producer {
    world_t *w;
    uint32_t id;
    pthread_t thread;
    bool failed;
} producer_t;

#define PRODUCER_OPS 3000

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    rc_shared_reader_t *r = rc_shared_reader_register(p->w->shared);
    rc_ranker_t *rk = rc_ranker_new();
    rc_user_state_t users[4];
    rc_ranked_t out[RANK_K];
    rc_rank_spec_t spec;
    rank_spec(&spec, 0);
    p->failed = r == NULL || rk == NULL;
    for (int i = 0; i < 4; i++)
        rc_user_state_init(&users[i], i, 0);
    uint64_t rnd = 7 + p->id;
    char id[8];
    snprintf(id, sizeof(id), "p%u", p->id);
    for (int i = 0; i < PRODUCER_OPS && !p->failed; i++) {
        rc_engine_op_t op;
        int64_t at_ms = T0_MS + i * 100;
        if (i % 10 == 0) {
            /* The same item again and again: the last price submitted must win. */
            p->failed |= rc_engine_op_upsert(&op, id, id, "cat1", NULL, 0, i, 1) != 0;
            p->failed |= rc_shared_submit(p->w->shared, &op) != 0;
            continue;
        }
        rc_user_state_t *u = &users[next_random(&rnd) % 4];
        int64_t item = (int64_t)(next_random(&rnd) % N_ITEMS);
        rc_engine_op_event(&op, u, RC_EV_CLICK, item, 2, at_ms);
        p->failed |= rc_shared_submit(p->w->shared, &op) != 0;
        const rc_engine_t *e = rc_shared_read_begin(r);
        rc_user_observe(e, u, RC_EV_CLICK, item, 2, no_query(), at_ms);
        rc_engine_rank(e, rk, u, &spec, at_ms, out);
        rc_shared_read_end(r);
    }
    rc_ranker_free(rk);
    rc_shared_reader_unregister(r);
    return NULL;
}

static void assert_last_price(const rc_engine_t *e, const char *id)
{
    int64_t idx = rc_catalog_find(&e->catalog, id, strlen(id));
    assert_int_ge(idx, 0);
    float last = (float)((PRODUCER_OPS - 1) / 10 * 10);
    assert_float_equal(e->catalog.items[idx].price, last, 0);
}

/* Two loops submitting at once (the lock-free queue under TSan): each one's ops apply in its
 * order, and both copies end the same. */
static void test_producers_submit_at_once(void **state)
{
    (void)state;
    static world_t w;
    memset(&w, 0, sizeof(w));
    w.shared = rc_shared_new(items_engine(), items_engine(), 4);
    assert_non_null(w.shared);
    for (int u = 0; u < N_FIXED; u++)
        rc_user_state_init(&w.fixed[u], u % RC_DEVICE_COUNT, 0);
    pthread_t readers[2];
    producer_t producers[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, reader_main, &w), 0);
    for (uint32_t i = 0; i < 2; i++) {
        producers[i] = (producer_t){.w = &w, .id = i};
        assert_int_equal(pthread_create(&producers[i].thread, NULL, producer_main, &producers[i]),
                         0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(producers[i].thread, NULL);
        assert_false(producers[i].failed);
    }
    assert_int_equal(rc_shared_flush(w.shared), 0);
    atomic_store(&w.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(readers[i], NULL);
    assert_int_equal(atomic_load(&w.violations), 0);
    rc_shared_stats_t st;
    rc_shared_stats(w.shared, &st);
    assert_int_equal(st.ops, 2 * PRODUCER_OPS);
    assert_int_equal(st.ops_failed, 0);
    for (int c = 0; c < 2; c++) {
        assert_last_price(rc_shared_copy(w.shared, c), "p0");
        assert_last_price(rc_shared_copy(w.shared, c), "p1");
    }
    assert_same_lists(rc_shared_copy(w.shared, 0), rc_shared_copy(w.shared, 1), &w);
    rc_shared_free(w.shared);
}

/* Reader handles are limited and given back. */
static void test_reader_slots(void **state)
{
    (void)state;
    rc_shared_t *s = rc_shared_new(items_engine(), items_engine(), 2);
    assert_non_null(s);
    rc_shared_reader_t *a = rc_shared_reader_register(s), *b = rc_shared_reader_register(s);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(rc_shared_reader_register(s));
    rc_shared_reader_unregister(a);
    a = rc_shared_reader_register(s);
    assert_non_null(a);
    /* A section sees the other copy once an op is published, and both copies stay equal. */
    const rc_engine_t *before = rc_shared_read_begin(a);
    rc_shared_read_end(a);
    rc_engine_op_t op;
    rc_engine_op_refresh(&op, T0_MS);
    assert_int_equal(rc_shared_submit(s, &op), 0);
    assert_int_equal(rc_shared_flush(s), 0);
    const rc_engine_t *after = rc_shared_read_begin(a);
    rc_shared_read_end(a);
    assert_ptr_not_equal(before, after);
    rc_shared_reader_unregister(a);
    rc_shared_reader_unregister(b);
    rc_shared_reader_unregister(NULL);
    rc_shared_free(s);
    rc_shared_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_readers_rank_while_the_writer_learns, free_engines),
        cmocka_unit_test_teardown(test_producers_submit_at_once, free_engines),
        cmocka_unit_test_teardown(test_reader_slots, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
