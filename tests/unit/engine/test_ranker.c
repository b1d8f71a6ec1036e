/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the ranker (engine/ranker.c), through rc_engine_rank() and rc_engine_why():
 * cold and learned lists, filters, diversity, determinism, the exact bound on scoring, the
 * exploration of new items, and the reasons given for each item. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine_fixture.h"

#include <stdio.h>
#include <string.h>

static void test_rank_cold_user_by_popularity(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[10];
    char why[128];
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(out[i].item, i); /* popularity 1000 - i */
        assert_int_equal(out[i].src, RC_SRC_POPULAR);
        assert_int_equal(out[i].ref, -1);
    }
    assert_string_equal(rc_src_name(out[0].src), "popular");
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Popular in cat0");

    /* k = 0 asks for nothing. */
    rc_rank_spec_t none = {.k = 0, .category = -1, .price_min = -1, .price_max = -1};
    assert_int_equal(rc_engine_rank(e, scratch(), &u, &none, T0_MS, out), 0);
    free_engine(0);
}

static void test_rank_category_share_rises(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[10];
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    uint16_t cat3 = category_of(e, "cat3");

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    uint32_t before = count_category(e, out, n, cat3);

    const uint32_t clicked[] = {3, 11, 19, 27, 35};
    for (int i = 0; i < 5; i++)
        observe(e, &u, RC_EV_CLICK, clicked[i], T0_MS + i * 1000);
    assert_int_equal(rc_engine_refresh(e), 0);

    n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    uint32_t after = count_category(e, out, n, cat3);
    assert_int_gt(after, before);
    assert_int_ge(after, 4);
    assert_int_le(after, 6); /* the diversity cap still holds */
    /* What the user just clicked is not offered back. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(place_of(out, n, clicked[i]), -1);
    free_engine(0);
}

/* A search moves the session towards items tagged with the query's words. */
static void test_rank_search_moves_towards_tags(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[10];
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    assert_true(rc_engine_observe(e, &u, RC_EV_SEARCH, -1, 2, (rc_str_t){"Color5!", 7}, T0_MS));
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    uint32_t tagged = 0;
    for (uint32_t i = 0; i < n; i++)
        tagged += out[i].item % 7 == 5;
    assert_int_ge(tagged, 6);
    assert_int_equal(out[0].item % 7, 5);
    assert_int_equal(out[0].src, RC_SRC_CONTENT);
    free_engine(0);
}

/* Other users viewed 150 then 181 (three of them) or 150 then 190 (one); a new user who
 * views 150 is offered both, 181 first, explained by 150. */
static void test_rank_covisit_from_other_users(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t others[4], u;
    rc_ranked_t out[10];
    char why[128];
    e = engine_with_items(0, false);
    for (int i = 0; i < 4; i++) {
        rc_user_state_init(&others[i], RC_DEV_MOBILE, 0);
        observe(e, &others[i], RC_EV_VIEW, 150, T0_MS - 60000 + i);
        observe(e, &others[i], RC_EV_VIEW, i < 3 ? 181 : 190, T0_MS - 50000 + i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 150, T0_MS);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p181 = place_of(out, n, 181), p190 = place_of(out, n, 190);
    assert_int_ge(p181, 0);
    assert_int_ge(p190, 0);
    assert_int_lt(p181, p190);
    assert_int_equal(place_of(out, n, 150), -1);

    const rc_ranked_t *r = &out[p181];
    assert_int_equal(r->src, RC_SRC_COVISIT);
    assert_int_equal(r->ref, 150);
    assert_string_equal(rc_src_name(r->src), "covisit");
    rc_engine_why(e, &u, r, why, sizeof(why));
    assert_string_equal(why, "Viewed together with Item 150");
    free_engine(0);
}

/* Shoppers in de-DE made item 150 trend, those in en-GB item 160 a little more. A cold
 * user in de-DE gets 150 first, with the reason naming the locale; one in en-GB, and one
 * with no locale, get 160 first. */
static void test_rank_trending_by_locale(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t shopper, u;
    rc_ranked_t out[10];
    char why[128];
    e = engine_with_items(0, false);
    int de = rc_engine_locale(e, (rc_str_t){"de-DE", 5}, T0_MS);
    int gb = rc_engine_locale(e, (rc_str_t){"en-GB", 5}, T0_MS);
    assert_int_ge(de, 0);
    assert_int_ge(gb, 0);
    assert_int_equal(rc_engine_locale(e, (rc_str_t){"de_de", 5}, T0_MS), de);
    assert_int_equal(rc_engine_locale(e, (rc_str_t){"", 0}, T0_MS), -1);
    /* Each locale earns its segment with its RC_LOCALE_MIN_USERS-th distinct user; the
     * shoppers after that count in it. */
    for (int i = 0; i < 2 * (RC_LOCALE_MIN_USERS + 2); i++) {
        bool in_de = i % 2 == 0;
        rc_user_state_init(&shopper, RC_DEV_DESKTOP, 0);
        shopper.locale = (int16_t)(in_de ? de : gb);
        shopper.user_key = (uint32_t)i + 1;
        observe(e, &shopper, RC_EV_VIEW, in_de ? 150 : 160, T0_MS - 1000 + i);
    }
    /* Two more en-GB shoppers: 160 leads overall, so a user with no locale gets it first. */
    for (int i = 0; i < 2; i++) {
        rc_user_state_init(&shopper, RC_DEV_DESKTOP, 0);
        shopper.locale = (int16_t)gb;
        shopper.user_key = 100u + (uint32_t)i;
        observe(e, &shopper, RC_EV_VIEW, 160, T0_MS - 500 + i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    assert_int_equal(u.locale, -1);
    u.locale = (int16_t)de;
    assert_int_equal(rank_k(e, &u, 10, -1, -1, -1, out), 10);
    assert_int_equal(out[0].item, 150);
    assert_int_equal(out[0].src, RC_SRC_TRENDING);
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Trending in your region"); /* in words, no tag: reasons.c */
    assert_int_equal(place_of(out, 10, 160), 1);

    u.locale = (int16_t)gb;
    rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(out[0].item, 160);
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Trending in your region");
    u.locale = -1;
    rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(out[0].item, 160);
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "Trending on desktop");
    free_engine(0);
}

/* Others went 150 -> 181 and 160 -> 190 equally often. A user who viewed 160 and then 150
 * gets 181 (what follows the newest item) above 190 (what follows an older one): recent
 * sources weigh more (source_decay). And what followed an item predicts better than what
 * preceded it: others went 170 -> 185 (185 follows 170) and 178 -> 170 (178 precedes 170)
 * equally often, so after 170, 185 ranks above 178 (backward_weight < 1), although 178 is
 * more popular and shares 170's category. */
static void test_rank_newest_source_and_direction(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t o, u;
    rc_ranked_t out[10];
    e = engine_with_items(0, false);
    for (int i = 0; i < 3; i++) {
        const int64_t pairs[4][2] = {{150, 181}, {160, 190}, {170, 185}, {178, 170}};
        for (int p = 0; p < 4; p++) {
            rc_user_state_init(&o, RC_DEV_MOBILE, 0);
            observe(e, &o, RC_EV_VIEW, pairs[p][0], T0_MS - 60000);
            observe(e, &o, RC_EV_VIEW, pairs[p][1], T0_MS - 50000);
        }
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 160, T0_MS);
    observe(e, &u, RC_EV_VIEW, 150, T0_MS + 1000);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p181 = place_of(out, n, 181), p190 = place_of(out, n, 190);
    assert_int_ge(p181, 0);
    assert_int_ge(p190, 0);
    assert_int_lt(p181, p190);

    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 170, T0_MS);
    n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p185 = place_of(out, n, 185), p178 = place_of(out, n, 178);
    assert_int_ge(p185, 0);
    assert_int_ge(p178, 0);
    assert_int_lt(p185, p178);
    free_engine(0);
}

/* Other users made 150 an equally strong neighbour of 100 and of 101. A user who viewed
 * 101 and then 100 gets 150 mostly through 100 (the more recent source, equal neighbour
 * weight), so 100 is the item that explains it (ranker.c: the reason names "the source
 * that contributed most"). */
static void test_rank_covisit_ref_is_strongest_source(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t other, u;
    rc_ranked_t out[10];
    char why[128];
    e = engine_with_items(0, false);
    for (int i = 0; i < 6; i++) {
        rc_user_state_init(&other, RC_DEV_OTHER, 0);
        observe(e, &other, RC_EV_VIEW, i % 2 ? 100 : 101, T0_MS - 60000 + i);
        observe(e, &other, RC_EV_VIEW, 150, T0_MS - 50000 + i);
    }
    assert_int_equal(rc_engine_refresh(e), 0);

    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    observe(e, &u, RC_EV_VIEW, 101, T0_MS);
    observe(e, &u, RC_EV_VIEW, 100, T0_MS + 1000);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    int32_t p = place_of(out, n, 150);
    rc_ranked_t r = p >= 0 ? out[p] : (rc_ranked_t){0, 0, RC_SRC_COUNT, RC_EVENT_KIND_COUNT, -1};
    if (p >= 0)
        rc_engine_why(e, &u, &r, why, sizeof(why));
    /* Freed before the checks, so a failure here reports only itself under LSan. */
    free_engine(0);
    assert_int_ge(p, 0);
    assert_int_equal(r.src, RC_SRC_COVISIT);
    assert_int_equal(r.ref, 100);
    assert_string_equal(why, "Viewed together with Item 100");
}

static void test_rank_excluded_never_appear(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[100];
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);

    /* Dismissing the most popular item: the cold list moves up by one. */
    observe(e, &u, RC_EV_DISMISS, 0, T0_MS);
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(out[i].item, i + 1);

    /* A purchase, then enough other views that it is no longer among the recent items:
     * it must stay out all the same, as must the dismissed one, at any k. */
    observe(e, &u, RC_EV_PURCHASE, 1, T0_MS + 1000);
    for (int i = 0; i < 40; i++)
        observe(e, &u, RC_EV_VIEW, 100 + i, T0_MS + 2000 + i);
    assert_int_equal(rc_engine_refresh(e), 0);
    assert_true(rc_user_is_excluded(&u, 0));
    assert_true(rc_user_is_excluded(&u, 1));
    for (uint32_t k = 1; k <= 100; k += 33) {
        n = rank_k(e, &u, k, -1, -1, -1, out);
        assert_int_gt(n, 0);
        assert_int_equal(place_of(out, n, 0), -1);
        assert_int_equal(place_of(out, n, 1), -1);
    }
    /* The purchase made item 1 trending: another user does get it. */
    rc_user_state_t other;
    rc_user_state_init(&other, RC_DEV_OTHER, 0);
    n = rank_k(e, &other, 100, -1, -1, -1, out);
    assert_int_ge(place_of(out, n, 1), 0);
    free_engine(0);
}

static void test_rank_category_filter(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[20];
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    uint16_t cat5 = category_of(e, "cat5");

    uint32_t n = rank_k(e, &u, 20, cat5, -1, -1, out);
    assert_int_equal(n, 20);
    assert_int_equal(count_category(e, out, n, cat5), n);
    assert_int_equal(out[0].item, 5); /* the most popular of cat5 */

    /* With a history in another category, the filter still holds. */
    observe(e, &u, RC_EV_CLICK, 2, T0_MS);
    observe(e, &u, RC_EV_CLICK, 10, T0_MS + 1);
    n = rank_k(e, &u, 10, cat5, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, cat5), n);
    free_engine(0);
}

static void test_rank_price_filter(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[20];
    uint32_t idx;
    e = engine_with_items(0, false);
    /* Very popular items with no known price. */
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "np1", "No Price 1", "cat1", NULL, 0, -1, 5000, &idx), 0);
    uint32_t np1 = idx;
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "np2", "No Price 2", "cat2", NULL, 0, -1, 4000, &idx), 0);
    uint32_t np2 = idx;
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(out[0].item, np1);
    assert_int_equal(out[1].item, np2);

    n = rank_k(e, &u, 10, -1, 10, 20, out);
    assert_int_equal(n, 10);
    for (uint32_t i = 0; i < n; i++) {
        float p = e->catalog.items[out[i].item].price;
        assert_dbl_ge(p, 10);
        assert_dbl_le(p, 20);
    }
    n = rank_k(e, &u, 10, -1, 45, -1, out);
    assert_int_gt(n, 0);
    for (uint32_t i = 0; i < n; i++)
        assert_dbl_ge(e->catalog.items[out[i].item].price, 45);
    n = rank_k(e, &u, 10, -1, -1, 3, out);
    assert_int_gt(n, 0);
    for (uint32_t i = 0; i < n; i++) {
        assert_dbl_le(e->catalog.items[out[i].item].price, 3);
        assert_dbl_ge(e->catalog.items[out[i].item].price, 0);
    }
    /* Category and price together. */
    uint16_t cat4 = category_of(e, "cat4");
    n = rank_k(e, &u, 10, cat4, 5, 30, out);
    assert_int_gt(n, 0);
    for (uint32_t i = 0; i < n; i++) {
        const rc_item_t *it = &e->catalog.items[out[i].item];
        assert_int_equal(it->category, cat4);
        assert_dbl_ge(it->price, 5);
        assert_dbl_le(it->price, 30);
    }
    /* An empty price range gives an empty list, not a wrong one. */
    n = rank_k(e, &u, 10, -1, 30, 20, out);
    assert_int_equal(n, 0);
    free_engine(0);
}

/* "big" holds the 20 most popular items; a cold list of 10 still shows at most 6 of them
 * while other categories have candidates, and all 10 when only "big" is asked for. */
static void test_rank_diversity_cap(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    rc_ranked_t out[10];
    char id[16];
    e = new_engine(0, 1000, false);
    for (int i = 0; i < 40; i++) {
        uint32_t idx;
        const char *cat = i < 20 ? "big" : i < 30 ? "small1" : "small2";
        double pop = i < 20 ? 1000 - i : i < 30 ? 500 - i : 400 - i;
        snprintf(id, sizeof(id), "d%d", i);
        assert_int_equal(rc_catalog_upsert(&e->catalog, id, id, cat, NULL, 0, 1, pop, &idx), 0);
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    uint16_t big = category_of(e, "big");

    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, big), 6);
    for (uint32_t i = 0; i < n; i++)
        assert_true(out[i].item < 6 || (out[i].item >= 20 && out[i].item < 24));

    n = rank_k(e, &u, 5, -1, -1, -1, out);
    assert_int_equal(n, 5);
    assert_int_equal(count_category(e, out, n, big), 3);
    n = rank_k(e, &u, 3, -1, -1, -1, out);
    assert_int_equal(n, 3);
    assert_int_equal(count_category(e, out, n, big), 2);

    n = rank_k(e, &u, 10, big, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(count_category(e, out, n, big), 10);
    free_engine(0);
}

/* Drives one engine through a fixed history of several users. */
static void scripted_history(rc_engine_t *e, rc_user_state_t *users, int n_users)
{
    for (int i = 0; i < n_users; i++)
        rc_user_state_init(&users[i], i % RC_DEVICE_COUNT, (i % 5) * 60 - 120);
    for (int step = 0; step < 300; step++) {
        rc_user_state_t *u = &users[step % n_users];
        uint32_t item = (uint32_t)((step * 37 + (step % n_users) * 11) % N_ITEMS);
        rc_event_kind_t kind = step % 11 == 0 ? RC_EV_CART : step % 3 ? RC_EV_VIEW : RC_EV_CLICK;
        observe(e, u, kind, item, T0_MS + step * 1000);
        if (step % 50 == 49)
            assert_int_equal(rc_engine_refresh(e), 0);
    }
}

static void test_rank_no_duplicates(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t users[6], cold;
    rc_ranked_t out[100];
    e = engine_with_items(0, false);
    scripted_history(e, users, 6);
    rc_user_state_init(&cold, RC_DEV_TABLET, 0);
    for (int i = 0; i < 6; i++) {
        for (uint32_t k = 1; k <= 100; k += 9)
            rank_k(e, &users[i], k, -1, -1, -1, out); /* rank_k checks for duplicates */
        rank_k(e, &users[i], 100, category_of(e, "cat2"), -1, -1, out);
    }
    uint32_t n = rank_k(e, &cold, 100, -1, -1, -1, out);
    assert_int_gt(n, 10);
    free_engine(0);
}

static void assert_same_ranking(const rc_ranked_t *a, uint32_t na, const rc_ranked_t *b,
                                uint32_t nb)
{
    assert_int_equal(na, nb);
    for (uint32_t i = 0; i < na; i++) {
        assert_int_equal(a[i].item, b[i].item);
        assert_float_equal(a[i].score, b[i].score, 0);
        assert_int_equal(a[i].src, b[i].src);
        assert_int_equal(a[i].ref, b[i].ref);
    }
}

/* The same state ranks the same, whether ranked again, after other users' ranks reused
 * the scratch, or in a second engine that saw the same events. */
static void test_rank_deterministic(void **state)
{
    (void)state;
    rc_engine_t *e1, *e2;
    rc_user_state_t u1[5], u2[5];
    rc_ranked_t a[30], b[30], c[30], d[30];
    e1 = engine_with_items(0, false);
    e2 = engine_with_items(1, false);
    scripted_history(e1, u1, 5);
    scripted_history(e2, u2, 5);

    for (int i = 0; i < 5; i++) {
        uint32_t na = rank_k(e1, &u1[i], 30, -1, -1, -1, a);
        uint32_t nb = rank_k(e1, &u1[i], 30, -1, -1, -1, b);
        assert_same_ranking(a, na, b, nb);
        rank_k(e1, &u1[(i + 1) % 5], 30, -1, -1, -1, c);
        rank_k(e1, &u1[(i + 2) % 5], 7, category_of(e1, "cat1"), 2, 40, c);
        uint32_t nc = rank_k(e1, &u1[i], 30, -1, -1, -1, c);
        assert_same_ranking(a, na, c, nc);
        uint32_t nd = rank_k(e2, &u2[i], 30, -1, -1, -1, d);
        assert_same_ranking(a, na, d, nd);
    }
    free_engine(0);
    free_engine(1);
}

/* Ranks every user with every list length, filter and blend, once scoring every candidate
 * and once scoring only those whose bound can reach the best 4k; the lists must be the
 * same. Returns how many of the bounded ranks left candidates unscored. */
static uint32_t compare_bounded(rc_engine_t *e, rc_user_state_t *users, int n_users)
{
    static const uint32_t ks[] = {1, 3, 5, 10, 20, 40};
    static const rc_blend_t blends[] = {
        {.covisit = 0.25f, .content = 0.25f, .trending = 0.25f, .popular = 0.25f},
        {.covisit = 0.3f, .content = 0.6f, .popular = 0.1f},
        {.covisit = 0.4f, .trending = 0.1f, .popular = 0.5f}};
    rc_ranked_t a[40], b[40];
    uint32_t bounded = 0;
    for (int i = 0; i < n_users; i++) {
        for (size_t j = 0; j < sizeof(ks) / sizeof(ks[0]); j++) {
            for (int f = 0; f < 12; f++) {
                rc_rank_spec_t spec = {.k = ks[j],
                                       .category = f % 3 == 1 ? category_of(e, "cat3") : -1,
                                       .price_min = f % 3 == 2 ? 5 : -1,
                                       .price_max = f % 3 == 2 ? 30 : -1,
                                       .blend = f < 3 ? NULL : &blends[f / 3 - 1]};
                rc_ranker_set_exhaustive(scratch(), true);
                uint32_t na = rc_engine_rank(e, scratch(), &users[i], &spec, T0_MS, a);
                rc_ranker_set_exhaustive(scratch(), false);
                uint32_t nb = rc_engine_rank(e, scratch(), &users[i], &spec, T0_MS, b);
                bounded += rc_ranker_deferred(scratch()) > 0;
                assert_same_ranking(a, na, b, nb);
            }
        }
    }
    return bounded;
}

/* The ranker leaves unscored the candidates whose score cannot reach the best 4k
 * (score_candidates); the lists must be those of scoring them all, with and without boosts
 * that lift and bury. */
static void test_rank_bound_exact(void **state)
{
    (void)state;
    rc_engine_t *e;
    static const rc_event_kind_t kinds[] = {RC_EV_VIEW, RC_EV_VIEW, RC_EV_CLICK, RC_EV_CART};
    rc_user_state_t users[40];
    char err[160];
    e = engine_with_items(0, false);
    uint32_t seed = 7;
    for (int i = 0; i < 40; i++) {
        rc_user_state_init(&users[i], i % 4, 60 * (i % 5));
        for (int j = 0; j < 30; j++) {
            seed = seed * 1103515245u + 12345u;
            /* Each user keeps to a third of the catalog, so neighbours weigh unevenly. */
            uint32_t item = (uint32_t)(i % 3) * 60 + (seed >> 8) % 80;
            observe(e, &users[i], kinds[(seed >> 4) % 4], item % N_ITEMS,
                    T0_MS + (i * 30 + j) * MIN_MS);
        }
    }
    assert_int_equal(rc_engine_refresh(e), 0);
    uint32_t bounded = compare_bounded(e, users, 40);

    json_t *j = json_loads("{\"boosts\":[{\"category\":\"cat5\",\"factor\":3},{\"item\":"
                           "\"i010\",\"factor\":9},{\"tag\":\"color2\",\"factor\":0.2}]}",
                           0, NULL);
    assert_int_equal(rc_rules_from_json(&e->rules, j, err, sizeof(err)), 0);
    json_decref(j);
    assert_int_equal(rc_engine_refresh(e), 0);
    bounded += compare_bounded(e, users, 40);
    /* The bound was used, not merely allowed. */
    assert_int_gt(bounded, 100);
    free_engine(0);
}

/* The open catalog learns items from traffic after ranks already ran: the ranker must
 * follow the catalog's growth, and learned items (no features) rank without harm. */
static void test_rank_after_catalog_grows(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t walker, u;
    rc_ranked_t out[20];
    char id[32];
    e = engine_with_items(0, true);
    rc_user_state_init(&u, RC_DEV_OTHER, 0);
    rank_k(e, &u, 20, -1, -1, -1, out);

    rc_user_state_init(&walker, RC_DEV_MOBILE, 0);
    int64_t last = -1;
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "learned-%d", i);
        int64_t idx = rc_catalog_resolve(&e->catalog, id, strlen(id));
        assert_int_ge(idx, N_ITEMS);
        if (i % 100 == 0)
            observe(e, &walker, RC_EV_VIEW, 7, T0_MS + i);
        observe(e, &walker, RC_EV_VIEW, idx, T0_MS + i);
        last = idx;
    }
    assert_int_equal(e->catalog.n, N_ITEMS + 3000);
    assert_true(e->catalog.items[last].flags & RC_ITEM_LEARNED);
    assert_int_equal(rc_engine_refresh(e), 0);

    /* A user on the item most co-visited with the newest learned ones. */
    observe(e, &u, RC_EV_VIEW, 7, T0_MS + 5000);
    uint32_t n = rank_k(e, &u, 20, -1, -1, -1, out);
    assert_int_equal(n, 20);
    uint32_t learned = 0;
    for (uint32_t i = 0; i < n; i++)
        learned += out[i].item >= N_ITEMS;
    assert_int_gt(learned, 0);
    free_engine(0);
}

static void test_why_phrases(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u;
    char why[128];
    e = engine_with_items(0, false);
    rc_user_state_init(&u, RC_DEV_MOBILE, 0);
    observe(e, &u, RC_EV_VIEW, 12, T0_MS);

    /* A trending item's reason names the segment that carried it. */
    rc_ranked_t r = {.item = 20, .score = 1, .src = RC_SRC_TRENDING, .ref = -1};
    static const struct {
        int seg;
        const char *why;
    } trending[] = {{RC_SEG_DEVICE(RC_DEV_MOBILE), "Trending on mobile"},
                    {RC_SEG_DEVICE(RC_DEV_OTHER), "Trending now"},
                    {RC_SEG_DAYPART(0), "Trending tonight"},
                    {RC_SEG_DAYPART(3), "Trending this evening"},
                    {RC_SEG_ALL, "Trending now"},
                    {RC_SEG_LOCALE(0), "Trending in your region"},
                    {RC_SEG_LOCALE(1), "Trending now"}, /* no second locale */
                    {-1, "Trending now"}};
    int pt = rc_engine_locale(e, (rc_str_t){"pt_br", 5}, T0_MS);
    for (int i = 0; i < RC_LOCALE_MIN_USERS; i++) { /* pt-BR earns slot 0 */
        rc_user_state_t buyer;
        rc_user_state_init(&buyer, RC_DEV_MOBILE, 0);
        buyer.locale = (int16_t)pt;
        buyer.user_key = 500u + (uint32_t)i;
        observe(e, &buyer, RC_EV_VIEW, 13, T0_MS);
    }
    for (size_t i = 0; i < sizeof(trending) / sizeof(trending[0]); i++) {
        r.ref = trending[i].seg;
        rc_engine_why(e, &u, &r, why, sizeof(why));
        assert_string_equal(why, trending[i].why);
    }
    /* 20 and 12 share cat4. */
    r.src = RC_SRC_CONTENT;
    rc_engine_why(e, &u, &r, why, sizeof(why));
    assert_string_equal(why, "Similar to Item 12");
    r.src = RC_SRC_COVISIT;
    r.ref = 12;
    rc_engine_why(e, &u, &r, why, sizeof(why));
    assert_string_equal(why, "Viewed together with Item 12");
    r.src = RC_SRC_POPULAR;
    r.ref = -1;
    rc_engine_why(e, &u, &r, why, sizeof(why));
    assert_string_equal(why, "Popular in cat4");
    /* A short buffer is truncated, never overrun. */
    char tiny[8];
    r.src = RC_SRC_COVISIT;
    r.ref = 12;
    rc_engine_why(e, &u, &r, tiny, sizeof(tiny));
    assert_string_equal(tiny, "Viewed ");
    assert_string_equal(rc_src_name(RC_SRC_CONTENT), "content");
    assert_string_equal(rc_src_name(RC_SRC_TRENDING), "trending");
    free_engine(0);
}

/* An item upserted after the start, with no data yet, takes the last place of a list of 5
 * or more (the user's category first among new items), with the reason "New in ..."; never
 * in a shorter list; and not any more once users interacted with it. */
static void test_rank_explores_new_items(void **state)
{
    (void)state;
    rc_engine_t *e;
    rc_user_state_t u, o;
    rc_ranked_t out[10];
    char why[64];
    uint32_t fresh_other, fresh_mine;
    e = engine_with_items(0, false); /* refreshed: these 200 items are established */
    const char *tags[] = {"color1"};
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "new-a", "New A", "cat5", tags, 1, 3, 0, &fresh_other), 0);
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "new-b", "New B", "cat2", tags, 1, 3, 0, &fresh_mine), 0);
    assert_int_equal(rc_engine_refresh(e), 0);
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 2, T0_MS);  /* cat2 */
    observe(e, &u, RC_EV_VIEW, 10, T0_MS); /* cat2 */
    uint32_t n = rank_k(e, &u, 10, -1, -1, -1, out);
    assert_int_equal(n, 10);
    assert_int_equal(out[9].item, fresh_mine);
    assert_int_equal(out[9].src, RC_SRC_EXPLORE);
    assert_string_equal(rc_src_name(out[9].src), "explore");
    rc_engine_why(e, &u, &out[9], why, sizeof(why));
    assert_string_equal(why, "New in cat2");
    assert_int_equal(place_of(out, 9, fresh_other), -1);

    n = rank_k(e, &u, 4, -1, -1, -1, out);
    assert_int_equal(place_of(out, n, fresh_mine), -1);
    assert_int_equal(place_of(out, n, fresh_other), -1);

    /* Others view it: it has data now, and leaves the pool at the next refresh. */
    rc_user_state_init(&o, RC_DEV_MOBILE, 0);
    observe(e, &o, RC_EV_VIEW, 50, T0_MS);
    observe(e, &o, RC_EV_VIEW, fresh_mine, T0_MS);
    assert_int_equal(rc_engine_refresh(e), 0);
    n = rank_k(e, &u, 10, -1, -1, -1, out);
    for (uint32_t i = 0; i < n; i++)
        if (out[i].item == fresh_mine)
            assert_int_not_equal(out[i].src, RC_SRC_EXPLORE);
    assert_int_equal(out[9].item, fresh_other);
    free_engine(0);
}

/* The ranks under `repeat` of a user who viewed i010, clicked i011, then viewed i020 (in
 * view), and purchased i030 before. */
static uint32_t rank_with_repeat(rc_engine_t *e, rc_user_state_t *u, uint8_t repeat,
                                 rc_ranked_t *out)
{
    rc_rank_spec_t spec = {
        .k = 10, .category = -1, .price_min = -1, .price_max = -1, .repeat = repeat};
    return rc_engine_rank(e, scratch(), u, &spec, T0_MS + 5 * MIN_MS, out);
}

static void session_of_four(rc_engine_t *e, rc_user_state_t *u)
{
    rc_user_state_init(u, RC_DEV_DESKTOP, 0);
    observe(e, u, RC_EV_PURCHASE, 30, T0_MS);
    observe(e, u, RC_EV_VIEW, 10, T0_MS + MIN_MS);
    observe(e, u, RC_EV_CLICK, 11, T0_MS + 2 * MIN_MS);
    observe(e, u, RC_EV_VIEW, 20, T0_MS + 3 * MIN_MS);
}

/* never: no item of the session; not_current: the session's items but the one in view;
 * allowed: that one too, and first while re-clicks are common. Purchases never return. */
static void test_rank_repeat_policy(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_user_state_t u;
    rc_ranked_t out[10];
    session_of_four(e, &u);
    uint32_t n = rank_with_repeat(e, &u, RC_REPEAT_NEVER, out);
    for (uint32_t item = 10; item <= 30; item++)
        if (item == 10 || item == 11 || item == 20 || item == 30)
            assert_int_equal(place_of(out, n, item), -1);

    n = rank_with_repeat(e, &u, RC_REPEAT_NOT_CURRENT, out);
    assert_int_equal(place_of(out, n, 20), -1);
    assert_int_equal(place_of(out, n, 30), -1);
    int32_t at11 = place_of(out, n, 11);
    assert_int_ge(at11, 0);
    assert_int_equal(out[at11].src, RC_SRC_REPEAT);
    /* i011 was clicked (more weight) and later than i010: it comes first. */
    int32_t at10 = place_of(out, n, 10);
    assert_true(at10 < 0 || at10 > at11);

    n = rank_with_repeat(e, &u, RC_REPEAT_ALLOWED, out);
    assert_int_equal(place_of(out, n, 20), 0); /* a quarter of next events re-click it */
    assert_int_equal(out[0].src, RC_SRC_REPEAT);
    assert_int_equal(place_of(out, n, 30), -1);
    for (uint32_t i = 1; i < n; i++)
        assert_true(out[i - 1].score >= out[i].score);
    char why[96];
    rc_engine_why(e, &u, &out[0], why, sizeof(why));
    assert_string_equal(why, "You viewed this 2 minutes ago");
    free_engine(0);
}

/* The chance of returning is learned: after many sessions that never go back, the item in
 * view falls below new items. */
static void test_rank_repeat_chance_is_learned(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_user_state_t u;
    rc_ranked_t out[10];
    for (int s = 0; s < 400; s++) {
        rc_user_state_t v;
        rc_user_state_init(&v, RC_DEV_DESKTOP, 0);
        for (int t = 0; t < 10; t++)
            observe(e, &v, RC_EV_VIEW, (s * 7 + t * 13) % N_ITEMS, T0_MS + t * 1000);
    }
    session_of_four(e, &u);
    uint32_t n = rank_with_repeat(e, &u, RC_REPEAT_ALLOWED, out);
    int32_t at20 = place_of(out, n, 20);
    assert_true(at20 != 0);
    free_engine(0);
}

/* Among the session's items, the one that usually follows the item in view comes first:
 * after many sessions 10, 20, 10, a user who viewed 10, 11 and 20 is shown 10 before the
 * more recent 11 (block_items() keeps it a candidate, merge_repeats() weighs its share of
 * the returns by that evidence). */
static void test_rank_repeat_follows_sequence(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    for (int s = 0; s < 50; s++) {
        rc_user_state_t v;
        rc_user_state_init(&v, RC_DEV_DESKTOP, 0);
        observe(e, &v, RC_EV_VIEW, 10, T0_MS + s * 1000);
        observe(e, &v, RC_EV_VIEW, 20, T0_MS + s * 1000 + 300);
        observe(e, &v, RC_EV_VIEW, 10, T0_MS + s * 1000 + 600);
    }
    rc_user_state_t u;
    rc_ranked_t out[10];
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 10, T0_MS + MIN_MS);
    observe(e, &u, RC_EV_VIEW, 11, T0_MS + 2 * MIN_MS);
    observe(e, &u, RC_EV_VIEW, 20, T0_MS + 3 * MIN_MS);
    for (uint8_t repeat = RC_REPEAT_NOT_CURRENT; repeat <= RC_REPEAT_ALLOWED; repeat++) {
        uint32_t n = rank_with_repeat(e, &u, repeat, out);
        int32_t at10 = place_of(out, n, 10), at11 = place_of(out, n, 11);
        assert_int_ge(at10, 0);
        assert_true(at11 < 0 || at10 < at11);
        assert_int_equal(out[at10].src, RC_SRC_REPEAT);
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t j = i + 1; j < n; j++)
                assert_int_not_equal(out[i].item, out[j].item);
    }
    /* A list that never shows the session keeps them out however strong the evidence. */
    uint32_t n = rank_with_repeat(e, &u, RC_REPEAT_NEVER, out);
    assert_int_equal(place_of(out, n, 10), -1);
    assert_int_equal(place_of(out, n, 11), -1);
    free_engine(0);
}

/* Where other sessions show that users go back from the item in view to one they saw
 * before, that item of the session comes before every new one, the strongest new successor
 * included. After many sessions 10, 20, 10 (returns the successor model foretells, which
 * raise its share of the chance of a return) and 50, 20, 40 (40 a new item after 20), a
 * user who viewed 10, 11 and 20 is shown 10 first (after 20 itself, where it may come back,
 * by its own chance): without the successor model's part, the
 * returns by habit alone (a few per cent of next events) leave it under 40. */
static void test_rank_repeat_successor_evidence(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    for (int s = 0; s < 60; s++) {
        rc_user_state_t v;
        rc_user_state_init(&v, RC_DEV_DESKTOP, 0);
        int64_t t = T0_MS + s * 1000;
        bool back = s % 3 != 2;
        observe(e, &v, RC_EV_VIEW, back ? 10 : 50, t);
        observe(e, &v, RC_EV_VIEW, 20, t + 300);
        observe(e, &v, RC_EV_VIEW, back ? 10 : 40, t + 600);
    }
    assert_true(e->repeat_successor > 0.15f); /* from 0.1 */
    rc_user_state_t u;
    rc_ranked_t out[10];
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 10, T0_MS + MIN_MS);
    observe(e, &u, RC_EV_VIEW, 11, T0_MS + 2 * MIN_MS);
    observe(e, &u, RC_EV_VIEW, 20, T0_MS + 3 * MIN_MS);
    for (uint8_t repeat = RC_REPEAT_NOT_CURRENT; repeat <= RC_REPEAT_ALLOWED; repeat++) {
        uint32_t n = rank_with_repeat(e, &u, repeat, out);
        int32_t at10 = place_of(out, n, 10), at40 = place_of(out, n, 40);
        /* first, or second after the item in view, which has its own chance */
        assert_int_equal(at10, repeat == RC_REPEAT_ALLOWED && out[0].item == 20 ? 1 : 0);
        assert_int_equal(out[at10].src, RC_SRC_REPEAT);
        assert_int_gt(at40, at10);
    }
    free_engine(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rank_cold_user_by_popularity, free_engines),
        cmocka_unit_test_teardown(test_rank_repeat_follows_sequence, free_engines),
        cmocka_unit_test_teardown(test_rank_repeat_successor_evidence, free_engines),
        cmocka_unit_test_teardown(test_rank_category_share_rises, free_engines),
        cmocka_unit_test_teardown(test_rank_search_moves_towards_tags, free_engines),
        cmocka_unit_test_teardown(test_rank_covisit_from_other_users, free_engines),
        cmocka_unit_test_teardown(test_rank_trending_by_locale, free_engines),
        cmocka_unit_test_teardown(test_rank_covisit_ref_is_strongest_source, free_engines),
        cmocka_unit_test_teardown(test_rank_excluded_never_appear, free_engines),
        cmocka_unit_test_teardown(test_rank_category_filter, free_engines),
        cmocka_unit_test_teardown(test_rank_price_filter, free_engines),
        cmocka_unit_test_teardown(test_rank_diversity_cap, free_engines),
        cmocka_unit_test_teardown(test_rank_no_duplicates, free_engines),
        cmocka_unit_test_teardown(test_rank_deterministic, free_engines),
        cmocka_unit_test_teardown(test_rank_bound_exact, free_engines),
        cmocka_unit_test_teardown(test_rank_after_catalog_grows, free_engines),
        cmocka_unit_test_teardown(test_why_phrases, free_engines),
        cmocka_unit_test_teardown(test_rank_newest_source_and_direction, free_engines),
        cmocka_unit_test_teardown(test_rank_explores_new_items, free_engines),
        cmocka_unit_test_teardown(test_rank_repeat_policy, free_engines),
        cmocka_unit_test_teardown(test_rank_repeat_chance_is_learned, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
