/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the profile document and its deltas (profile.h): what a session writes,
 * how stored affinities fade and merge, and what a returning user's session gets back,
 * down to the ranker's long-term content vector; and the in-memory store's bounds (a cap
 * that drops the least recently written profile, a TTL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/engine.h"
#include "engine/ranker.h"
#include "proto/mpack.h"
#include "store/profile.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define T0_MS  1700000000000LL
#define DAY_MS 86400000LL

static rc_engine_t *engine;
static rc_ranker_t *ranker;   /* the rank scratch (the caller's: engine.h) */
static rc_catalog_t *catalog; /* the engine's */

static int free_engine(void **state)
{
    (void)state;
    rc_engine_free(engine);
    engine = NULL;
    rc_ranker_free(ranker);
    ranker = NULL;
    return 0;
}

/* 40 items: "i<n>", category "cat<n % 4>", tags "t<n % 5>" and "u<n % 3>", popularity
 * 100 - n. */
static void setup_engine(void)
{
    char id[8], cat[8], t1[8], t2[8];
    const char *tags[] = {t1, t2};
    engine = rc_engine_new(1000, false, 16, 86400, 3600, T0_MS / 1000.0);
    assert_non_null(engine);
    ranker = rc_ranker_new();
    assert_non_null(ranker);
    catalog = rc_engine_catalog(engine);
    for (int i = 0; i < 40; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "i%d", i);
        snprintf(cat, sizeof(cat), "cat%d", i % 4);
        snprintf(t1, sizeof(t1), "t%d", i % 5);
        snprintf(t2, sizeof(t2), "u%d", i % 3);
        assert_int_equal(rc_catalog_upsert(catalog, id, id, cat, tags, 2, 10, 100 - i, &idx), 0);
    }
    assert_int_equal(rc_engine_refresh(engine), 0);
}

static float ltvec_weight(const rc_user_state_t *u, uint32_t feat)
{
    for (uint8_t i = 0; i < u->n_ltvec; i++)
        if (u->ltvec_feat[i] == feat)
            return u->ltvec_w[i];
    return 0;
}

/* Applies one session's delta (views of `items`, written at `t_ms`) to `doc`. */
static void write_session(rc_wbuf_t *doc, const uint32_t *items, size_t n, int64_t t_ms)
{
    rc_profile_delta_t d;
    rc_wbuf_t delta, out;
    msgpack_zone zone;
    assert_true(msgpack_zone_init(&zone, RC_PROFILE_ZONE));
    memset(&d, 0, sizeof(d));
    for (size_t i = 0; i < n; i++)
        rc_profile_delta_add(&d, catalog, RC_EV_VIEW, items[i], 1.0f);
    rc_wbuf_init(&delta, 0);
    rc_wbuf_init(&out, 0);
    assert_int_equal(rc_profile_delta_encode(catalog, &d, t_ms, &delta), 0);
    assert_int_equal(rc_profile_apply_delta(&zone, doc->len ? rc_wbuf_data(doc) : NULL, doc->len,
                                            rc_wbuf_data(&delta), delta.len, &out),
                     0);
    msgpack_zone_destroy(&zone);
    rc_wbuf_reset(doc);
    rc_wbuf_put(doc, rc_wbuf_data(&out), out.len);
    rc_wbuf_free(&delta);
    rc_wbuf_free(&out);
}

/* A session's views become feature affinities in the stored document; a returning user's
 * session gets them as its long-term vector, and its own content vector starts empty. */
static void test_features_are_stored_and_restored(void **state)
{
    (void)state;
    setup_engine();
    rc_wbuf_t doc;
    rc_wbuf_init(&doc, 0);
    const uint32_t cat1[] = {1, 5, 9, 13};
    write_session(&doc, cat1, 4, T0_MS);

    rc_user_state_t u;
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    assert_int_equal(rc_profile_merge(catalog, &u, rc_wbuf_data(&doc), doc.len), 0);
    assert_int_equal(u.n_svec, 0);
    assert_int_gt(u.n_ltvec, 0);
    assert_int_le(u.n_ltvec, RC_LTVEC);
    const rc_item_t *it = &catalog->items[1];
    /* The category (weight 2 per item) leads every tag. */
    float cat_w = ltvec_weight(&u, it->feat[0]);
    assert_dbl_gt(cat_w, 0);
    for (uint8_t i = 0; i < u.n_ltvec; i++)
        assert_dbl_le(u.ltvec_w[i], cat_w);
    assert_int_equal(u.n_recent, 4);
    rc_wbuf_free(&doc);
}

static uint32_t add_item(const char *id, const char *cat, const char *tag_prefix, int n_tags)
{
    char tags[RC_ITEM_FEATURES][24];
    const char *t[RC_ITEM_FEATURES];
    uint32_t idx;
    for (int i = 0; i < n_tags; i++) {
        snprintf(tags[i], sizeof(tags[i]), "%s%d", tag_prefix, i);
        t[i] = tags[i];
    }
    assert_int_equal(rc_catalog_upsert(catalog, id, id, cat, t, (uint32_t)n_tags, 10, 1, &idx), 0);
    return idx;
}

/* Refused: an event the delta could take only by dropping what it holds. */
static void assert_refused(rc_profile_delta_t *d, rc_event_kind_t kind, uint32_t item)
{
    rc_profile_delta_t before, empty;
    memcpy(&before, d, sizeof(before));
    assert_false(rc_profile_delta_add(d, catalog, kind, item, 1.0f));
    assert_memory_equal(&before, d, sizeof(before));
    memset(&empty, 0, sizeof(empty));
    assert_true(rc_profile_delta_add(&empty, catalog, kind, item, 1.0f));
}

/* A delta takes an event only if it can without dropping a category, a content feature or
 * an excluded item it holds; a session writes a delta that refuses one and starts another
 * (test_session), so a long session's profile loses nothing. */
static void test_full_delta_refuses_what_it_would_drop(void **state)
{
    (void)state;
    setup_engine();
    rc_profile_delta_t d;
    char id[16], cat[16];

    memset(&d, 0, sizeof(d)); /* categories: RC_CATS */
    uint32_t k[RC_CATS + 1];
    for (int i = 0; i <= RC_CATS; i++) {
        snprintf(id, sizeof(id), "k%d", i);
        snprintf(cat, sizeof(cat), "kc%d", i);
        k[i] = add_item(id, cat, "", 0);
    }
    for (int i = 0; i < RC_CATS; i++)
        assert_true(rc_profile_delta_add(&d, catalog, RC_EV_VIEW, k[i], 1.0f));
    assert_refused(&d, RC_EV_VIEW, k[RC_CATS]);
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_VIEW, k[0], 1.0f));
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_DISMISS, k[RC_CATS], 1.0f));

    memset(&d, 0, sizeof(d)); /* features: RC_PROFILE_FEATS */
    uint32_t f1 = add_item("f1", "cat0", "a", RC_ITEM_FEATURES - 1);
    uint32_t f2 = add_item("f2", "cat0", "b", RC_ITEM_FEATURES - 1);
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_VIEW, f1, 1.0f));
    assert_int_equal(d.n_feats, RC_ITEM_FEATURES);
    assert_refused(&d, RC_EV_VIEW, f2);
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_CLICK, f1, 1.0f));

    memset(&d, 0, sizeof(d)); /* excluded items: RC_PROFILE_EXCLUDED */
    for (uint32_t i = 0; i < RC_PROFILE_EXCLUDED; i++)
        assert_true(rc_profile_delta_add(&d, catalog, RC_EV_PURCHASE, i, 1.0f));
    assert_refused(&d, RC_EV_PURCHASE, RC_PROFILE_EXCLUDED);
    assert_refused(&d, RC_EV_DISMISS, RC_PROFILE_EXCLUDED);
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_PURCHASE, 0, 1.0f));
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_VIEW, RC_PROFILE_EXCLUDED, 1.0f));
    assert_true(rc_profile_delta_add(&d, catalog, RC_EV_IMPRESSION, 39, 1.0f));
    assert_int_equal(d.events, RC_PROFILE_EXCLUDED + 2);
}

/* Stored affinities fade by half in RC_PROFILE_HALF_LIFE_MS: after 30 days, a new session's
 * category outweighs the old one's although both had the same activity. */
static void test_affinities_fade(void **state)
{
    (void)state;
    setup_engine();
    rc_wbuf_t doc;
    rc_wbuf_init(&doc, 0);
    const uint32_t cat1[] = {1, 5}, cat2[] = {2, 6};
    write_session(&doc, cat1, 2, T0_MS);
    rc_user_state_t before;
    rc_user_state_init(&before, RC_DEV_DESKTOP, 0);
    assert_int_equal(rc_profile_merge(catalog, &before, rc_wbuf_data(&doc), doc.len), 0);
    uint32_t f1 = catalog->items[1].feat[0], f2 = catalog->items[2].feat[0];
    float w1 = ltvec_weight(&before, f1);

    write_session(&doc, cat2, 2, T0_MS + 30 * DAY_MS);
    rc_user_state_t after;
    rc_user_state_init(&after, RC_DEV_DESKTOP, 0);
    assert_int_equal(rc_profile_merge(catalog, &after, rc_wbuf_data(&doc), doc.len), 0);
    assert_float_equal(ltvec_weight(&after, f1), w1 / 2, 1e-4);
    assert_float_equal(ltvec_weight(&after, f2), w1, 1e-4);
    /* Category affinities fade alike: cat2 leads cat1 two to one. */
    int32_t c1 = rc_catalog_category(catalog, "cat1", 4);
    int32_t c2 = rc_catalog_category(catalog, "cat2", 4);
    float a1 = 0, a2 = 0;
    for (uint8_t i = 0; i < after.n_cats; i++) {
        if (after.cats[i] == c1)
            a1 = after.cats_w[i];
        if (after.cats[i] == c2)
            a2 = after.cats_w[i];
    }
    assert_float_equal(a2, 2 * a1, 1e-4);
    rc_wbuf_free(&doc);
}

/* A document written before feature affinities were stored ("f" absent) still gives a
 * long-term vector: from its recent items. */
static void test_older_document_builds_vector_from_items(void **state)
{
    (void)state;
    setup_engine();
    rc_wbuf_t doc;
    msgpack_packer pk;
    rc_wbuf_init(&doc, 0);
    rc_mp_init(&pk, &doc);
    msgpack_pack_map(&pk, 3);
    rc_mp_cstr(&pk, "n");
    msgpack_pack_int(&pk, 2);
    rc_mp_cstr(&pk, "r");
    msgpack_pack_array(&pk, 2);
    rc_mp_cstr(&pk, "i3");
    rc_mp_cstr(&pk, "i7");
    rc_mp_cstr(&pk, "t");
    msgpack_pack_int64(&pk, T0_MS);
    rc_user_state_t u;
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    assert_int_equal(rc_profile_merge(catalog, &u, rc_wbuf_data(&doc), doc.len), 0);
    assert_int_equal(u.n_svec, 0);
    assert_dbl_gt(ltvec_weight(&u, catalog->items[3].feat[0]), 0);
    rc_wbuf_free(&doc);
}

/* A returning user with no event yet in this session: the long-term vector alone brings
 * the content of their past sessions to the top, explained as content. */
static void test_longterm_vector_ranks_content(void **state)
{
    (void)state;
    setup_engine();
    rc_wbuf_t doc;
    rc_wbuf_init(&doc, 0);
    const uint32_t cat3[] = {3, 7, 11, 15, 19};
    write_session(&doc, cat3, 5, T0_MS);
    rc_user_state_t cold, back;
    rc_user_state_init(&cold, RC_DEV_DESKTOP, 0);
    rc_user_state_init(&back, RC_DEV_DESKTOP, 0);
    assert_int_equal(rc_profile_merge(catalog, &back, rc_wbuf_data(&doc), doc.len), 0);
    /* Drop what the profile's recent items and categories bring: the vector alone. */
    back.n_recent = back.head = 0;
    back.n_cats = 0;

    rc_rank_spec_t spec = {.k = 5, .category = -1, .price_min = -1, .price_max = -1};
    rc_ranked_t out[5];
    uint32_t c3 = (uint32_t)rc_catalog_category(catalog, "cat3", 4);
    assert_int_equal(rc_engine_rank(engine, ranker, &cold, &spec, T0_MS, out), 5);
    uint32_t cold_c3 = 0;
    for (int i = 0; i < 5; i++)
        cold_c3 += catalog->items[out[i].item].category == c3;
    assert_int_equal(rc_engine_rank(engine, ranker, &back, &spec, T0_MS, out), 5);
    uint32_t back_c3 = 0;
    for (int i = 0; i < 5; i++)
        back_c3 += catalog->items[out[i].item].category == c3;
    assert_int_le(cold_c3, 2);
    assert_int_ge(back_c3, 3); /* the diversity cap allows 3 of 5 */
    assert_int_equal(catalog->items[out[0].item].category, c3);
    assert_int_equal(out[0].src, RC_SRC_CONTENT);
    rc_wbuf_free(&doc);
}

/* ---- the in-memory store ---- */

typedef struct loads {
    char user[16];
    int status;
    int n;
} loads_t;

static void on_loaded(void *ctx, const char *user, size_t user_len, int status, const void *data,
                      size_t len)
{
    (void)data, (void)len;
    loads_t *l = ctx;
    snprintf(l->user, sizeof(l->user), "%.*s", (int)user_len, user);
    l->status = status;
    l->n++;
}

/* One view of item i1, as a session writes it. */
static void write_one(rc_profile_store_t *s, const char *user)
{
    rc_profile_delta_t d;
    rc_wbuf_t delta;
    memset(&d, 0, sizeof(d));
    rc_profile_delta_add(&d, catalog, RC_EV_VIEW, 1, 1.0f);
    rc_wbuf_init(&delta, 0);
    assert_int_equal(rc_profile_delta_encode(catalog, &d, T0_MS, &delta), 0);
    assert_int_equal(rc_profile_update(s, user, strlen(user), rc_wbuf_data(&delta), delta.len,
                                       (rc_profile_seq_t){0, 0}),
                     0);
    rc_wbuf_free(&delta);
}

/* The status a load of `user` gets (0: found, RC_ENOENT: not). */
static int load_status(uv_loop_t *loop, rc_profile_store_t *s, loads_t *l, const char *user)
{
    int before = l->n;
    assert_int_equal(rc_profile_load(s, user, strlen(user)), 0);
    while (l->n == before)
        uv_run(loop, UV_RUN_NOWAIT);
    assert_string_equal(l->user, user);
    return l->status;
}

static void test_memory_store_is_bounded(void **state)
{
    (void)state;
    setup_engine();
    uv_loop_t loop;
    rc_defer_t defer;
    loads_t l = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(rc_defer_init(&defer, &loop), 0);

    /* A cap of 3: a fourth user makes room by dropping the least recently written. */
    uint64_t cap0 = rc_metrics.profile_evictions[RC_EVICT_CAP];
    rc_profile_store_t *s = rc_profile_memory_new(&defer, on_loaded, &l, 3, 0);
    write_one(s, "u1");
    write_one(s, "u2");
    write_one(s, "u3");
    write_one(s, "u1"); /* u1 written again: u2 is now the oldest */
    write_one(s, "u4");
    assert_int_equal(rc_metrics.profile_evictions[RC_EVICT_CAP] - cap0, 1);
    assert_int_equal(load_status(&loop, s, &l, "u2"), RC_ENOENT);
    assert_int_equal(load_status(&loop, s, &l, "u1"), 0);
    assert_int_equal(load_status(&loop, s, &l, "u3"), 0);
    assert_int_equal(load_status(&loop, s, &l, "u4"), 0);
    /* An erased user leaves room without an eviction. */
    assert_int_equal(rc_profile_erase(s, "u3", 2, (rc_profile_seq_t){0, 0}), 0);
    write_one(s, "u5");
    assert_int_equal(rc_metrics.profile_evictions[RC_EVICT_CAP] - cap0, 1);
    assert_int_equal(load_status(&loop, s, &l, "u1"), 0);
    rc_profile_store_free(s);

    /* A TTL of 50 ms: a profile not written since expires, on a later write or on its load. */
    uint64_t ttl0 = rc_metrics.profile_evictions[RC_EVICT_TTL];
    s = rc_profile_memory_new(&defer, on_loaded, &l, 0, 50);
    write_one(s, "a");
    write_one(s, "b");
    usleep(120 * 1000);
    write_one(s, "c"); /* frees the expired a and b on its way */
    assert_int_equal(rc_metrics.profile_evictions[RC_EVICT_TTL] - ttl0, 2);
    assert_int_equal(load_status(&loop, s, &l, "a"), RC_ENOENT);
    assert_int_equal(load_status(&loop, s, &l, "c"), 0);
    usleep(120 * 1000);
    assert_int_equal(load_status(&loop, s, &l, "c"), RC_ENOENT);
    assert_int_equal(rc_metrics.profile_evictions[RC_EVICT_TTL] - ttl0, 3);
    rc_profile_store_free(s);

    rc_defer_close(&defer);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Two event loops in two threads, each with its own handle on one in-memory store, write
 * and load at once: every profile either wrote is there for both, and each handle answers
 * on its own loop's thread. (scripts/test also runs this under ThreadSanitizer.) */
#define SHARED_USERS  16
#define SHARED_ROUNDS 40

typedef struct loop_thread {
    rc_profile_store_t *h;
    uv_loop_t loop;
    rc_defer_t defer;
    pthread_t thread, self; /* self: the thread running the loop, set by that thread */
    const char *prefix;
    int found, not_found, wrong_thread;
} loop_thread_t;

static void on_loaded_in(void *ctx, const char *user, size_t user_len, int status, const void *data,
                         size_t len)
{
    (void)user, (void)user_len, (void)data, (void)len;
    loop_thread_t *t = ctx;
    if (!pthread_equal(pthread_self(), t->self))
        t->wrong_thread++;
    if (status == 0)
        t->found++;
    else
        t->not_found++;
}

/* Runs `t`'s loop until it has had `n` answers. */
static void await_answers(loop_thread_t *t, int n)
{
    while (t->found + t->not_found < n)
        uv_run(&t->loop, UV_RUN_NOWAIT);
}

static void *write_and_load(void *arg)
{
    loop_thread_t *t = arg;
    t->self = pthread_self();
    char user[32];
    for (int r = 0; r < SHARED_ROUNDS; r++) {
        for (int i = 0; i < SHARED_USERS; i++) {
            snprintf(user, sizeof(user), "%s%d", t->prefix, i);
            write_one(t->h, user);
            snprintf(user, sizeof(user), "both%d", i);
            write_one(t->h, user);
            assert_int_equal(rc_profile_load(t->h, user, strlen(user)), 0);
        }
        uv_run(&t->loop, UV_RUN_NOWAIT);
    }
    await_answers(t, SHARED_ROUNDS * SHARED_USERS);
    return NULL;
}

static void test_memory_store_is_shared_by_threads(void **state)
{
    (void)state;
    setup_engine();
    loop_thread_t t[2] = {{.prefix = "a"}, {.prefix = "b"}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(uv_loop_init(&t[i].loop), 0);
        assert_int_equal(rc_defer_init(&t[i].defer, &t[i].loop), 0);
    }
    t[0].h = rc_profile_memory_new(&t[0].defer, on_loaded_in, &t[0], 0, 0);
    assert_non_null(t[0].h);
    t[1].h = rc_profile_memory_share(t[0].h, &t[1].defer, on_loaded_in, &t[1]);
    assert_non_null(t[1].h);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i].thread, NULL, write_and_load, &t[i]), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i].thread, NULL), 0);
        /* Each loaded a user it had just written: found every time, on its own thread. */
        assert_int_equal(t[i].found, SHARED_ROUNDS * SHARED_USERS);
        assert_int_equal(t[i].wrong_thread, 0);
    }
    /* Each handle finds what the other wrote (their loops now run on this thread). */
    char user[32];
    for (int i = 0; i < 2; i++) {
        t[i].self = pthread_self();
        t[i].found = t[i].not_found = 0;
    }
    for (int i = 0; i < SHARED_USERS; i++) {
        snprintf(user, sizeof(user), "b%d", i);
        assert_int_equal(rc_profile_load(t[0].h, user, strlen(user)), 0);
        snprintf(user, sizeof(user), "a%d", i);
        assert_int_equal(rc_profile_load(t[1].h, user, strlen(user)), 0);
    }
    for (int i = 0; i < 2; i++) {
        await_answers(&t[i], SHARED_USERS);
        assert_int_equal(t[i].found, SHARED_USERS);
    }
    /* The profiles outlive the first handle freed. */
    rc_profile_store_free(t[0].h);
    assert_int_equal(rc_profile_load(t[1].h, "a0", 2), 0);
    await_answers(&t[1], SHARED_USERS + 1);
    assert_int_equal(t[1].found, SHARED_USERS + 1);
    rc_profile_store_free(t[1].h);
    for (int i = 0; i < 2; i++) {
        rc_defer_close(&t[i].defer);
        uv_run(&t[i].loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&t[i].loop), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_features_are_stored_and_restored, free_engine),
        cmocka_unit_test_teardown(test_full_delta_refuses_what_it_would_drop, free_engine),
        cmocka_unit_test_teardown(test_affinities_fade, free_engine),
        cmocka_unit_test_teardown(test_older_document_builds_vector_from_items, free_engine),
        cmocka_unit_test_teardown(test_longterm_vector_ranks_content, free_engine),
        cmocka_unit_test_teardown(test_memory_store_is_bounded, free_engine),
        cmocka_unit_test_teardown(test_memory_store_is_shared_by_threads, free_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
