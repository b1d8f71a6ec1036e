/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the engine's own part (engine/engine.h): what each event kind weighs, what
 * rc_engine_observe() returns and records for a user, the successor model and the learned
 * share of the sequential part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/engine_op.h"
#include "engine/engine_snapshot.h"
#include "engine/experiments.h"
#include "engine_fixture.h"
#include "proto/mpack.h"
#include "util/error.h"

#include <jansson.h>
#include <string.h>

static void test_event_weights(void **state)
{
    (void)state;
    assert_float_equal(rc_event_weight(RC_EV_VIEW, false, 0), 1, 0);
    assert_float_equal(rc_event_weight(RC_EV_CLICK, false, 0), 2, 0);
    assert_float_equal(rc_event_weight(RC_EV_CART, false, 0), 4, 0);
    assert_float_equal(rc_event_weight(RC_EV_PURCHASE, false, 0), 6, 0);
    assert_dbl_gt(rc_event_weight(RC_EV_RATING, true, 5), 0);
    assert_float_equal(rc_event_weight(RC_EV_RATING, true, 3), 0, 1e-6);
    assert_dbl_lt(rc_event_weight(RC_EV_RATING, true, 1), 0);
    assert_float_equal(rc_event_weight(RC_EV_RATING, false, 0), 0, 0);
    assert_float_equal(rc_event_weight(RC_EV_DWELL, true, 10000), 1, 1e-6);
    assert_float_equal(rc_event_weight(RC_EV_DWELL, true, 600000), 3, 1e-6);
    assert_float_equal(rc_event_weight(RC_EV_IMPRESSION, false, 0), 0, 0);
    assert_float_equal(rc_event_weight(RC_EV_DISMISS, false, 0), 0, 0);
}

static void test_observe_return_values(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_MOBILE, 60);
    assert_int_equal(u.device, RC_DEV_MOBILE);
    assert_int_equal(u.tz_offset_min, 60);

    assert_false(rc_engine_observe(e, &u, RC_EV_IMPRESSION, 3, 0, no_query(), T0_MS));
    assert_int_equal(u.events, 0);
    assert_true(rc_engine_observe(e, &u, RC_EV_VIEW, 3, 1, no_query(), T0_MS));
    assert_int_equal(u.n_recent, 1);
    assert_true(rc_engine_observe(e, &u, RC_EV_DISMISS, 4, 0, no_query(), T0_MS));
    assert_true(rc_user_is_excluded(&u, 4));
    assert_true(rc_engine_observe(e, &u, RC_EV_SEARCH, -1, 2, (rc_str_t){"red mug", 7}, T0_MS));
    assert_true(rc_engine_observe(e, &u, RC_EV_PURCHASE, 5, 6, no_query(), T0_MS));
    assert_true(rc_user_is_excluded(&u, 5));
    assert_int_equal(u.events, 4);
    /* Events of users held elsewhere feed the global models only. */
    assert_false(rc_engine_observe(e, NULL, RC_EV_VIEW, 6, 1, no_query(), T0_MS));
    assert_dbl_gt(rc_trending_norm(&e->trending, RC_SEG_ALL, 6), 0);

    /* An unknown device falls back to "other". */
    rc_user_state_init(&u, 99, 0);
    assert_int_equal(u.device, RC_DEV_OTHER);
    rc_user_state_init(&u, -1, 0);
    assert_int_equal(u.device, RC_DEV_OTHER);
    free_engine(0);
    rc_engine_free(NULL);
}

/* The model half of events as records (engine_op.h), applied to a second engine that never
 * sees a user, with catalog, rules, locale and refresh records between them, gives the same
 * models as rc_engine_observe() and direct calls on the first: the same lists, the same
 * repeat estimates. */
static void test_ops_replay_the_models(void **state)
{
    (void)state;
    rc_engine_t *direct = engine_with_items(0, false), *replayed = engine_with_items(1, false);
    rc_user_state_t a, b, shadow;
    rc_user_state_init(&a, RC_DEV_MOBILE, 60);
    rc_user_state_init(&b, RC_DEV_DESKTOP, 0);
    a.user_key = 7;
    b.user_key = 9;
    rc_engine_op_t op;
    uint64_t rnd = 42;
    for (int i = 0; i < 400; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        rc_user_state_t *u = (rnd >> 40) % 2 ? &a : &b;
        int64_t item = (int64_t)((rnd >> 20) % N_ITEMS);
        rc_event_kind_t kind = (rc_event_kind_t)((rnd >> 50) % RC_EV_IMPRESSION);
        int64_t at_ms = T0_MS + i * 1000;
        float w = rc_event_weight(kind, true, 4);
        shadow = *u;
        rc_engine_op_event(&op, &shadow, kind, item, w, at_ms);
        assert_int_equal(rc_engine_apply(replayed, &op), 0);
        rc_user_observe(replayed, &shadow, kind, item, w, no_query(), at_ms);
        rc_engine_observe(direct, u, kind, item, w, no_query(), at_ms);
        assert_memory_equal(&shadow, u, sizeof(*u));
        if (i == 100) {
            const char *tags[] = {"color1"};
            uint32_t idx;
            assert_int_equal(rc_engine_op_upsert(&op, "new1", "New", "cat1", tags, 1, 3, 5), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            assert_int_equal(
                rc_catalog_upsert(&direct->catalog, "new1", "New", "cat1", tags, 1, 3, 5, &idx), 0);
            const char *item_text = "{\"id\": \"new2\", \"category\": \"cat4\", \"category_name\": "
                                    "\"Four\", \"tags\": [\"color2\"], \"price\": 4}";
            assert_int_equal(rc_engine_op_item_json(&op, item_text), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            json_t *jitem = json_loads(item_text, 0, NULL);
            char ierr[64];
            assert_int_equal(
                rc_catalog_upsert_json(&direct->catalog, jitem, &idx, ierr, sizeof(ierr)), 0);
            json_decref(jitem);
            assert_int_equal(rc_engine_op_item_json(&op, "{\"name\": \"no id\"}"), 0);
            assert_int_not_equal(rc_engine_apply(replayed, &op), 0); /* refused, nothing moves */
            rc_engine_op_clear(&op);
            assert_int_equal(rc_engine_op_remove(&op, "i001", 4), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            assert_int_equal(rc_catalog_remove(&direct->catalog, "i001", 4), 0);
            const char *rules = "{\"boosts\": [{\"category\": \"cat2\", \"factor\": 2}]}";
            assert_int_equal(rc_engine_op_rules(&op, rules), 0);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            rc_engine_op_clear(&op);
            assert_int_equal(rc_engine_op_rules(&op, "{\"boosts\": 3}"), 0);
            assert_int_not_equal(rc_engine_apply(replayed, &op), 0); /* refused, nothing moves */
            rc_engine_op_clear(&op);
            rc_rules_t r = {0};
            char err[64];
            json_t *j = json_loads(rules, 0, NULL);
            assert_int_equal(rc_rules_from_json(&r, j, err, sizeof(err)), 0);
            json_decref(j);
            rc_engine_set_rules(direct, &r);
            rc_engine_op_locale(&op, (rc_str_t){"de-DE", 5}, at_ms);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            a.locale = (int16_t)rc_engine_locale(direct, (rc_str_t){"de-DE", 5}, at_ms);
        }
        if (i % 50 == 49) {
            rc_engine_op_refresh(&op, at_ms);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            assert_int_equal(rc_engine_refresh(direct), 0);
        } else if (i % 10 == 5) {
            /* A refresh in slices of 64 items, as the loop's tick runs it. */
            rc_engine_op_refresh_step(&op, 64, at_ms);
            assert_int_equal(rc_engine_apply(replayed, &op), 0);
            assert_int_ge(rc_engine_refresh_step(direct, 64), 0);
        }
    }
    assert_memory_equal(direct->repeat_same, replayed->repeat_same, sizeof(direct->repeat_same));
    assert_memory_equal(direct->repeat_back, replayed->repeat_back, sizeof(direct->repeat_back));
    assert_memory_equal(&direct->repeat_successor, &replayed->repeat_successor, sizeof(float));
    assert_int_equal(direct->catalog.n, replayed->catalog.n);
    assert_int_equal(direct->catalog.n_categories, replayed->catalog.n_categories);
    rc_ranked_t x[20], y[20];
    for (int k = 0; k < 2; k++) {
        const rc_user_state_t *u = k ? &a : &b;
        uint32_t nx = rank_k(direct, u, 20, -1, -1, -1, x);
        uint32_t ny = rank_k(replayed, u, 20, -1, -1, -1, y);
        assert_int_equal(nx, ny);
        for (uint32_t i = 0; i < nx; i++) {
            assert_int_equal(x[i].item, y[i].item);
            assert_float_equal(x[i].score, y[i].score, 0);
            assert_int_not_equal(x[i].item, 1); /* removed */
        }
    }
}

/* What a loop does with an event naming an item, as records (src/session/records.c): the id
 * is looked up on the loop's copy; unknown there, an RC_OP_ITEM_SEEN record is submitted
 * (open catalog), and the event's record goes by id when the copy still does not know it.
 * `loop` is the copy the records are made on, `applied` the one they are applied to (the same
 * engine with one loop). Returns the index the user's half learns with, or -1. */
static int64_t loop_event(rc_engine_t *loop, rc_engine_t *applied, rc_user_state_t *u,
                          const char *id, int64_t at_ms)
{
    rc_engine_op_t op;
    size_t len = strlen(id);
    int64_t item = rc_catalog_find(&loop->catalog, id, len);
    if (item < 0 && rc_catalog_may_learn(&loop->catalog, len)) {
        assert_int_equal(rc_engine_op_item_seen(&op, id, len, u->user_key), 0);
        assert_int_equal(rc_engine_apply(applied, &op), 0);
        rc_engine_op_clear(&op);
        item = rc_catalog_find(&loop->catalog, id, len);
    }
    rc_engine_op_event(&op, u, RC_EV_VIEW, item, 1, at_ms);
    if (item < 0)
        assert_int_equal(rc_engine_op_event_by_id(&op, id, len), 0);
    assert_int_equal(rc_engine_apply(applied, &op), 0);
    rc_engine_op_clear(&op);
    rc_user_observe(loop, u, RC_EV_VIEW, item, 1, no_query(), at_ms);
    return item;
}

/* The same, the way the loop learned before records: rc_catalog_learn_from() on the event
 * path, then rc_engine_observe(). */
static int64_t direct_event(rc_engine_t *e, rc_user_state_t *u, const char *id, int64_t at_ms)
{
    int64_t item = rc_catalog_learn_from(&e->catalog, id, strlen(id), u->user_key);
    if (item == RC_CATALOG_UNTRUSTED)
        item = -1;
    rc_engine_observe(e, u, RC_EV_VIEW, item, 1, no_query(), at_ms);
    return item;
}

static void assert_models_equal(const rc_engine_t *x, const rc_engine_t *y, uint32_t around)
{
    assert_int_equal(x->catalog.n, y->catalog.n);
    assert_int_equal(x->catalog.n_learned, y->catalog.n_learned);
    assert_memory_equal(x->repeat_same, y->repeat_same, sizeof(x->repeat_same));
    assert_memory_equal(x->repeat_back, y->repeat_back, sizeof(x->repeat_back));
    assert_float_equal(x->blend.successor, y->blend.successor, 0);
    for (uint32_t i = 0; i < x->catalog.n; i++)
        for (int seg = 0; seg < RC_SEG_DAYPART(0); seg++)
            assert_float_equal(rc_trending_norm(&x->trending, seg, i),
                               rc_trending_norm(&y->trending, seg, i), 0);
    uint32_t nx, ny;
    const rc_neighbor_t *a = rc_covisit_neighbors(&x->covisit, around, &nx);
    const rc_neighbor_t *b = rc_covisit_neighbors(&y->covisit, around, &ny);
    assert_int_equal(nx, ny);
    for (uint32_t j = 0; j < nx; j++) {
        assert_int_equal(a[j].item, b[j].item);
        assert_float_equal(a[j].w, b[j].w, 0);
    }
}

/* Catalog learning from traffic as records, one loop (the copy applied to is the loop's):
 * the same ids learned by the same events as rc_catalog_learn_from() on the event path, the
 * same models and user states, and an id trusted by a record is found after it is applied. */
static void test_item_seen_one_loop(void **state)
{
    (void)state;
    rc_engine_t *direct = engine_with_items(0, true), *rec = engine_with_items(1, true);
    rc_user_state_t ud[5], ur[5];
    for (int k = 0; k < 5; k++) {
        rc_user_state_init(&ud[k], RC_DEV_MOBILE, 0);
        ud[k].user_key = 100 + (uint32_t)k;
        ur[k] = ud[k];
    }
    static const char *const ids[] = {"i005", "n1", "i007", "n2", "n1", "i009", "n3"};
    int64_t at_ms = T0_MS;
    for (int round = 0; round < 4; round++) {
        for (int k = 0; k < 5; k++) {
            for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                at_ms += 1000;
                int64_t a = direct_event(direct, &ud[k], ids[i], at_ms);
                int64_t b = loop_event(rec, rec, &ur[k], ids[i], at_ms);
                assert_int_equal(a, b);
                assert_memory_equal(&ud[k], &ur[k], sizeof(ud[k]));
            }
        }
    }
    /* Three distinct users trust an id (the default): all three were learned. */
    assert_int_equal(rec->catalog.n_learned, 3);
    assert_int_ge(rc_catalog_find(&rec->catalog, "n2", 2), N_ITEMS);
    assert_models_equal(direct, rec, 5);
    assert_int_equal(rc_engine_refresh(direct), 0);
    assert_int_equal(rc_engine_refresh(rec), 0);
    rc_ranked_t x[20], y[20];
    uint32_t nx = rank_k(direct, &ud[0], 20, -1, -1, -1, x);
    uint32_t ny = rank_k(rec, &ur[0], 20, -1, -1, -1, y);
    assert_int_equal(nx, ny);
    for (uint32_t i = 0; i < nx; i++) {
        assert_int_equal(x[i].item, y[i].item);
        assert_float_equal(x[i].score, y[i].score, 0);
    }
}

/* With several loops, records are made on a copy that learns late (here: never): an event
 * on an id that copy does not know goes by id and is resolved where it is applied. The
 * applied copy learns the id and every event on it from the one that made it trusted, as the
 * event path learned them before: the same models as rc_catalog_learn_from() there. */
static void test_item_seen_by_id_resolved_when_applied(void **state)
{
    (void)state;
    rc_engine_t *direct = engine_with_items(0, true), *applied = engine_with_items(1, true);
    rc_engine_t *loop = rc_engine_new(100000, true, 32, 86400, 3600, T0_MS / 1000.0);
    assert_non_null(loop);
    add_fixture_items(loop);
    int64_t at_ms = T0_MS;
    for (uint32_t k = 0; k < 5; k++) {
        rc_user_state_t ud, ul;
        rc_user_state_init(&ud, RC_DEV_DESKTOP, 0);
        ud.user_key = 200 + k;
        ul = ud;
        at_ms += 1000;
        direct_event(direct, &ud, "i005", at_ms);
        assert_int_equal(loop_event(loop, applied, &ul, "i005", at_ms), 5);
        at_ms += 1000;
        direct_event(direct, &ud, "fresh", at_ms);
        /* The loop's copy never knows it: its user's half goes without it. */
        assert_int_equal(loop_event(loop, applied, &ul, "fresh", at_ms), -1);
    }
    assert_int_equal(rc_catalog_find(&loop->catalog, "fresh", 5), -1);
    int64_t fresh = rc_catalog_find(&applied->catalog, "fresh", 5);
    assert_int_equal(fresh, N_ITEMS);
    assert_int_equal(rc_catalog_find(&direct->catalog, "fresh", 5), fresh);
    /* Learned from the third user's event on (the first two were not trusted yet). */
    assert_float_equal(rc_trending_norm(&applied->trending, RC_SEG_ALL, (uint32_t)fresh),
                       rc_trending_norm(&direct->trending, RC_SEG_ALL, (uint32_t)fresh), 0);
    assert_dbl_gt(rc_trending_norm(&applied->trending, RC_SEG_ALL, (uint32_t)fresh), 0);
    assert_models_equal(direct, applied, 5);
    /* What cannot be an item is refused before any record. */
    rc_engine_op_t op;
    assert_int_equal(rc_engine_op_item_seen(&op, "", 0, 1), RC_EINVAL);
    assert_int_equal(op.type, RC_OP_NONE);
    char long_id[RC_CATALOG_ID_MAX + 1];
    memset(long_id, 'x', sizeof(long_id));
    assert_false(rc_catalog_may_learn(&loop->catalog, sizeof(long_id)));
    assert_int_equal(rc_engine_op_item_seen(&op, long_id, sizeof(long_id), 1), RC_EINVAL);
    assert_true(rc_catalog_may_learn(&loop->catalog, RC_CATALOG_ID_MAX));
    rc_catalog_t closed;
    assert_int_equal(rc_catalog_init(&closed, 10, false), 0);
    assert_false(rc_catalog_may_learn(&closed, 4));
    rc_catalog_free(&closed);
    /* An event record already holding an item takes no id. */
    rc_engine_op_event(&op, NULL, RC_EV_VIEW, 3, 1, at_ms);
    assert_int_equal(rc_engine_op_event_by_id(&op, "x", 1), RC_EINVAL);
    rc_engine_free(loop);
}

/* A locale as a record: the loop submits RC_OP_LOCALE and looks its reference up on its copy
 * (rc_engine_locale_find, read only), which then is what rc_engine_locale() gives on an engine
 * fed the same calls; before the record it is not tracked, and a malformed tag never is. */
static void test_locale_record(void **state)
{
    (void)state;
    rc_engine_t *direct = engine_with_items(0, false), *rec = engine_with_items(1, false);
    rc_str_t de = {"de_de", 5}, pt = {"pt-BR", 5};
    assert_int_equal(rc_engine_locale_find(rec, de), RC_ENOENT);
    assert_int_equal(rc_engine_locale_find(rec, (rc_str_t){"de de", 5}), RC_EINVAL);
    assert_int_equal(rc_engine_locale_find(rec, (rc_str_t){"", 0}), RC_EINVAL);
    rc_engine_op_t op;
    rc_engine_op_locale(&op, pt, T0_MS);
    assert_int_equal(rc_engine_apply(rec, &op), 0);
    rc_engine_op_locale(&op, de, T0_MS + 1000);
    assert_int_equal(rc_engine_apply(rec, &op), 0);
    int pt_ref = rc_engine_locale(direct, pt, T0_MS);
    int de_ref = rc_engine_locale(direct, de, T0_MS + 1000);
    assert_int_ge(de_ref, 0);
    assert_int_equal(rc_engine_locale_find(rec, de), de_ref);
    assert_int_equal(rc_engine_locale_find(rec, (rc_str_t){"DE-de", 5}), de_ref);
    assert_int_equal(rc_engine_locale_find(rec, pt), pt_ref);
    assert_string_equal(rc_engine_locale_tag(rec, de_ref), "de-DE");
    /* Finding tracks nothing: an engine that never applied the record still does not know
     * the tag, and a second record of a tracked tag changes nothing. */
    assert_int_equal(rc_engine_locale_find(rec, (rc_str_t){"fr-FR", 5}), RC_ENOENT);
    assert_int_equal(rc_engine_apply(rec, &op), 0);
    assert_int_equal(rc_engine_locale_find(rec, de), de_ref);
    assert_memory_equal(direct->trending.locale_tab, rec->trending.locale_tab,
                        sizeof(direct->trending.locale_tab));
}

/* A session of views by a fresh user, a second apart from `at_ms`. */
static void session(rc_engine_t *e, const int64_t *items, int n, int64_t at_ms)
{
    rc_user_state_t u;
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    for (int i = 0; i < n; i++)
        observe(e, &u, RC_EV_VIEW, items[i], at_ms + i * 1000);
}

static float successor_weight(const rc_engine_t *e, uint32_t a, uint32_t b)
{
    uint32_t n;
    const rc_neighbor_t *nb = rc_covisit_neighbors(&e->successor, a, &n);
    for (uint32_t j = 0; j < n; j++)
        if (nb[j].item == b)
            return nb[j].w;
    return 0;
}

/* The successor model counts what came directly after an item, forward only, and nothing
 * two steps on (co-visitation learns those). */
static void test_successor_counts_adjacent(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    const int64_t abc[] = {1, 2, 3};
    session(e, abc, 3, T0_MS);
    session(e, abc, 2, T0_MS + 10000);
    assert_float_equal(successor_weight(e, 1, 2), 2, 1e-4);
    assert_float_equal(successor_weight(e, 2, 3), 1, 1e-4);
    assert_float_equal(successor_weight(e, 1, 3), 0, 0);
    assert_float_equal(successor_weight(e, 2, 1), 0, 0);
    uint32_t n;
    rc_covisit_neighbors(&e->covisit, 1, &n);
    assert_int_equal(n, 2); /* 2 and 3 */
    free_engine(0);
}

/* Views of item 1 then `target` by `n` fresh users, after the two models were set to list
 * `target` and 2 after item 1 with the weights given (large, so that these sessions do not
 * reorder them). */
static void judge_models(rc_engine_t *e, float covisit_target, float covisit_other,
                         float successor_target, float successor_other, int n)
{
    rc_covisit_add_directed(&e->covisit, 1, 3, covisit_target, 0, T0_MS / 1000.0);
    rc_covisit_add_directed(&e->covisit, 1, 2, covisit_other, 0, T0_MS / 1000.0);
    rc_covisit_add_directed(&e->successor, 1, 3, successor_target, 0, T0_MS / 1000.0);
    rc_covisit_add_directed(&e->successor, 1, 2, successor_other, 0, T0_MS / 1000.0);
    for (int i = 0; i < n; i++) {
        const int64_t s[] = {1, 3};
        session(e, s, 2, T0_MS + i * 10000LL);
    }
}

/* The successor share follows whichever sequential model ranks the next item higher among
 * the neighbours of the item in view: up when the successor model lists it first and
 * co-visitation second, down the other way round, unmoved when both list it first. */
static void test_successor_share_learned(void **state)
{
    (void)state;
    rc_engine_t *chain = engine_with_items(0, false);
    rc_engine_t *skip = engine_with_items(1, false);
    float start = chain->blend.successor;
    assert_dbl_gt(chain->blend_rate, 0);
    judge_models(chain, 5000, 100000, 100000, 10, 100);
    judge_models(skip, 100000, 10, 5000, 100000, 100);
    assert_dbl_gt(chain->blend.successor, start + 0.02);
    assert_dbl_lt(skip->blend.successor, start - 0.02);
    assert_int_equal(chain->blend_updates, 100);
    /* On to its bounds, and the rest of the blend as set. */
    judge_models(chain, 0, 0, 0, 0, 1900);
    judge_models(skip, 0, 0, 0, 0, 1900);
    assert_float_equal(chain->blend.successor, chain->successor_max, 1e-6);
    assert_float_equal(skip->blend.successor, skip->blend_floor, 1e-6);
    assert_float_equal(chain->blend.covisit, 0.8f, 0);

    free_engines(NULL);
    rc_engine_t *tie = engine_with_items(0, false);
    judge_models(tie, 1000, 10, 1000, 10, 50);
    assert_float_equal(tie->blend.successor, start, 1e-6);

    /* With a rate of 0 it stays as set. */
    rc_engine_t *fixed = engine_with_items(1, false);
    fixed->blend_rate = 0;
    judge_models(fixed, 5000, 100000, 100000, 10, 50);
    assert_float_equal(fixed->blend.successor, start, 0);
    assert_int_equal(fixed->blend_updates, 0);
    free_engines(NULL);
}

/* The ranker scores the mixture: with the share on the successor model, what directly
 * followed the item in view leads a list that co-visitation alone would lead with an item
 * seen before it. */
static void test_rank_mixes_successors(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    e->blend_rate = 0;
    for (int i = 0; i < 12; i++) { /* 5 comes before 1 often (1's list: 5, backward) */
        const int64_t s[] = {5, 1};
        session(e, s, 2, T0_MS + i * 10000LL);
    }
    for (int i = 0; i < 4; i++) { /* 1 is followed by 7 a few times */
        const int64_t s[] = {1, 7};
        session(e, s, 2, T0_MS + 200000 + i * 10000LL);
    }
    rc_user_state_t u;
    rc_ranked_t out[10];
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 1, T0_MS + 400000);
    e->blend.successor = 0;
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_ge(n, 2);
    assert_int_equal(out[0].item, 5);
    e->blend.successor = 0.9f;
    n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_ge(n, 2);
    assert_int_equal(out[0].item, 7);
    assert_int_equal(out[0].src, RC_SRC_COVISIT);
    assert_int_equal(out[0].ref, 1);
    /* A list with an experiment variant's blend (four weights, no share of its own) mixes by
     * the engine's share too: the server gives every list one, "control" without an
     * experiment. */
    const rc_blend_t variant = {0.8f, 0.1f, 0.07f, 0.03f, 0};
    rc_rank_spec_t spec = {
        .k = 10, .category = -1, .price_min = -1, .price_max = -1, .blend = &variant};
    n = rc_engine_rank(e, scratch(), &u, &spec, T0_MS + 400000, out);
    assert_int_ge(n, 2);
    assert_int_equal(out[0].item, 7);
    free_engine(0);
}

/* A snapshot keeps the successor model, the learned share and the successor model's share
 * of the chance of a return; a share set by hand (rate 0) is not overwritten by one read
 * back. */
static void test_successor_snapshot(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    const int64_t abc[] = {1, 2, 3};
    session(e, abc, 3, T0_MS);
    e->blend.successor = 0.37f;
    e->repeat_successor = 0.42f;
    /* The experiment's counters are the loops' (experiments.h): written from their sum,
     * given back for the experiment the engine runs when read. */
    rc_experiment_t x;
    char xerr[64];
    assert_int_equal(
        rc_experiment_parse(&x, "ab;a=1,0,0,0;b=0,1,0,0", rc_engine_blend(e), xerr, sizeof(xerr)),
        0);
    rc_engine_set_experiment(e, &x);
    rc_experiment_counts_t counts = {0}, read_back;
    rc_experiment_count(&counts, &x, 1, false);
    rc_experiment_count(&counts, &x, 1, true);
    rc_wbuf_t buf;
    msgpack_packer pk;
    rc_wbuf_init(&buf, 0);
    rc_mp_init(&pk, &buf);
    rc_engine_snapshot_write(e, &counts, &pk);
    assert_int_equal(rc_wbuf_ok(&buf), 0);
    msgpack_zone zone;
    msgpack_object root;
    size_t off = 0;
    assert_true(msgpack_zone_init(&zone, 4096));
    assert_int_equal(msgpack_unpack(rc_wbuf_data(&buf), buf.len, &off, &zone, &root),
                     MSGPACK_UNPACK_SUCCESS);
    char err[128];
    rc_engine_t *back = engine_with_items(1, false);
    rc_engine_set_experiment(back, &x);
    assert_int_equal(rc_engine_snapshot_read(back, &root, &read_back, err, sizeof(err)), 0);
    assert_memory_equal(&read_back, &counts, sizeof(counts));
    assert_float_equal(successor_weight(back, 1, 2), 1, 1e-4);
    assert_float_equal(successor_weight(back, 2, 3), 1, 1e-4);
    assert_float_equal(back->blend.successor, 0.37f, 1e-6);
    assert_float_equal(back->repeat_successor, 0.42f, 1e-6);
    free_engine(1);
    back = engine_with_items(1, false);
    back->blend_rate = 0;
    float set = back->blend.successor;
    assert_int_equal(rc_engine_snapshot_read(back, &root, NULL, err, sizeof(err)), 0);
    assert_float_equal(back->blend.successor, set, 0);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&buf);
    free_engines(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_weights),
        cmocka_unit_test_teardown(test_observe_return_values, free_engines),
        cmocka_unit_test_teardown(test_ops_replay_the_models, free_engines),
        cmocka_unit_test_teardown(test_item_seen_one_loop, free_engines),
        cmocka_unit_test_teardown(test_item_seen_by_id_resolved_when_applied, free_engines),
        cmocka_unit_test_teardown(test_locale_record, free_engines),
        cmocka_unit_test_teardown(test_successor_counts_adjacent, free_engines),
        cmocka_unit_test_teardown(test_successor_share_learned, free_engines),
        cmocka_unit_test_teardown(test_rank_mixes_successors, free_engines),
        cmocka_unit_test_teardown(test_successor_snapshot, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
