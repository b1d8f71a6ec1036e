/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the reasons (engine/reasons.c): each source's reason as data (its code and
 * what it refers to), the same reason in plain words, category display names, and what a
 * repeat says about what the user did and when. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/reasons.h"
#include "engine_fixture.h"

#include <stdio.h>
#include <string.h>

/* The reason of `r` for `u` as data into *why, and in words into `words`. */
static void reason(rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, rc_reason_t *why,
                   char *words, size_t len)
{
    rc_engine_reason(e, u, r, why);
    rc_text_t t = rc_reason_words(e, why, words, len);
    /* The words come measured, as the encoders take them: length and escaping known. */
    assert_ptr_equal(t.p, words);
    assert_int_equal(t.n, strlen(words));
    assert_int_equal(t.plain, rc_text_measure(words).plain);
    /* The words the lists carry (rc_engine_why) are these words. */
    char text[128];
    rc_engine_why(e, u, r, text, sizeof(text));
    assert_string_equal(text, words);
}

static void test_codes_are_stable(void **state)
{
    (void)state;
    static const char *const want[RC_REASON_COUNT] = {
        "co_visited", "similar",          "category_affinity",
        "trending",   "trending_context", "trending_locale",
        "pinned",     "repeat",           "new_item",
        "popular"};
    for (int i = 0; i < RC_REASON_COUNT; i++)
        assert_string_equal(rc_reason_code_name(i), want[i]);
    assert_string_equal(rc_reason_code_name(-1), "popular");
    assert_string_equal(rc_reason_code_name(RC_REASON_COUNT), "popular");
}

/* What each source refers to: the item, the category, the segment, the locale. */
static void test_reason_of_each_source(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_user_state_t u;
    rc_reason_t why;
    char words[128];
    rc_user_state_init(&u, RC_DEV_MOBILE, 0);
    observe(e, &u, RC_EV_VIEW, 12, T0_MS); /* cat4 */

    rc_ranked_t r = {.item = 20, .score = 1, .src = RC_SRC_COVISIT, .ref = 12};
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_CO_VISITED);
    assert_int_equal(why.item, 12);
    assert_string_equal(words, "Viewed together with Item 12");

    /* 20 and 12 share cat4: similar to the session's item of that category. */
    r = (rc_ranked_t){.item = 20, .score = 1, .src = RC_SRC_CONTENT, .ref = -1};
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_SIMILAR);
    assert_int_equal(why.item, 12);
    assert_int_equal(why.category, e->catalog.items[20].category);
    assert_string_equal(words, "Similar to Item 12");

    /* 21 is cat5, of which the session has nothing: the category alone. */
    r.item = 21;
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_CATEGORY);
    assert_int_equal(why.item, -1);
    assert_string_equal(e->catalog.categories[why.category], "cat5");
    assert_string_equal(words, "Because you like cat5");

    r = (rc_ranked_t){.item = 20, .score = 1, .src = RC_SRC_TRENDING, .ref = RC_SEG_ALL};
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_TRENDING);
    assert_null(why.segment);
    assert_string_equal(words, "Trending now");

    static const struct {
        int seg;
        const char *segment, *words;
    } contexts[] = {{RC_SEG_DEVICE(RC_DEV_MOBILE), "mobile", "Trending on mobile"},
                    {RC_SEG_DEVICE(RC_DEV_TABLET), "tablet", "Trending on tablets"},
                    {RC_SEG_DEVICE(RC_DEV_DESKTOP), "desktop", "Trending on desktop"},
                    {RC_SEG_DAYPART(0), "night", "Trending tonight"},
                    {RC_SEG_DAYPART(1), "morning", "Trending this morning"},
                    {RC_SEG_DAYPART(2), "afternoon", "Trending this afternoon"},
                    {RC_SEG_DAYPART(3), "evening", "Trending this evening"}};
    for (size_t i = 0; i < sizeof(contexts) / sizeof(contexts[0]); i++) {
        r.ref = contexts[i].seg;
        reason(e, &u, &r, &why, words, sizeof(words));
        assert_int_equal(why.code, RC_REASON_TRENDING_CONTEXT);
        assert_string_equal(why.segment, contexts[i].segment);
        assert_string_equal(words, contexts[i].words);
    }
    /* The device class "other" is no context of its own. */
    r.ref = RC_SEG_DEVICE(RC_DEV_OTHER);
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_TRENDING);

    /* A locale that earned a segment: the tag is data, the words carry no code. */
    int pt = rc_engine_locale(e, (rc_str_t){"pt_br", 5}, T0_MS);
    for (int i = 0; i < RC_LOCALE_MIN_USERS; i++) {
        rc_user_state_t buyer;
        rc_user_state_init(&buyer, RC_DEV_MOBILE, 0);
        buyer.locale = (int16_t)pt;
        buyer.user_key = 500u + (uint32_t)i;
        observe(e, &buyer, RC_EV_VIEW, 13, T0_MS);
    }
    r.ref = RC_SEG_LOCALE(0);
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_TRENDING_LOCALE);
    assert_string_equal(why.locale, "pt-BR");
    assert_string_equal(words, "Trending in your region");
    assert_null(strstr(words, "pt"));
    r.ref = RC_SEG_LOCALE(1); /* no second locale */
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_TRENDING);
    assert_null(why.locale);

    r = (rc_ranked_t){.item = 20, .score = 1, .src = RC_SRC_PINNED, .ref = -1};
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_PINNED);
    assert_string_equal(words, "Featured");

    r.src = RC_SRC_EXPLORE;
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_NEW_ITEM);
    assert_string_equal(e->catalog.categories[why.category], "cat4");
    assert_string_equal(words, "New in cat4");

    r.src = RC_SRC_POPULAR;
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.code, RC_REASON_POPULAR);
    assert_string_equal(e->catalog.categories[why.category], "cat4");
    assert_int_equal(why.item, -1);
    assert_string_equal(words, "Popular in cat4");
    free_engine(0);
}

/* A category's display name replaces its name in words; the data keeps the category. */
static void test_category_display_names(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_user_state_t u;
    rc_reason_t why;
    char words[128], err[128];
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    json_t *line = json_loads("{\"id\":\"lamp\",\"name\":\"Desk Lamp\",\"category\":\"cat4\","
                              "\"category_name\":\"Candles & lights\"}",
                              0, NULL);
    uint32_t lamp;
    assert_int_equal(rc_catalog_upsert_json(&e->catalog, line, &lamp, err, sizeof(err)), 0);
    json_decref(line);
    uint16_t cat4 = e->catalog.items[lamp].category;
    assert_string_equal(rc_catalog_category_display(&e->catalog, cat4), "Candles & lights");
    /* It names the category for every item of it, 20 too. */
    rc_ranked_t r = {.item = 20, .score = 1, .src = RC_SRC_POPULAR, .ref = -1};
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_int_equal(why.category, cat4);
    assert_string_equal(words, "Popular in Candles & lights");
    r.src = RC_SRC_CONTENT;
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_string_equal(words, "Because you like Candles & lights");
    /* An upsert without one keeps it; categories without one read as their names. */
    assert_int_equal(
        rc_catalog_upsert(&e->catalog, "lamp", "Desk Lamp", "cat4", NULL, 0, 3, 0, &lamp), 0);
    assert_string_equal(rc_catalog_category_display(&e->catalog, cat4), "Candles & lights");
    assert_string_equal(rc_catalog_category_display(&e->catalog, e->catalog.items[21].category),
                        "cat5");
    assert_string_equal(rc_catalog_category_display(&e->catalog, 0), "");
    assert_string_equal(rc_catalog_category_display(&e->catalog, 60000), "");
    /* A name that JSON must escape makes words that are not plain (checked in reason()). */
    assert_int_equal(rc_catalog_set_category_name(&e->catalog, cat4, "Candles \"&\" lights"), 0);
    r.src = RC_SRC_POPULAR;
    reason(e, &u, &r, &why, words, sizeof(words));
    assert_string_equal(words, "Popular in Candles \"&\" lights");
    assert_false(rc_reason_words(e, &why, words, sizeof(words)).plain);
    free_engine(0);
}

/* A repeat says what the user last did with the item and how long ago, as data and in words. */
static void test_repeat_kind_and_age(void **state)
{
    (void)state;
    rc_engine_t *e = engine_with_items(0, false);
    rc_user_state_t u;
    rc_reason_t why;
    char words[128];
    rc_ranked_t out[128]; /* the whole catalog: every item of the session is listed */
    rc_user_state_init(&u, RC_DEV_DESKTOP, 0);
    observe(e, &u, RC_EV_VIEW, 10, T0_MS - 3 * HOUR_MS);
    observe(e, &u, RC_EV_CART, 11, T0_MS - 5 * MIN_MS);
    observe(e, &u, RC_EV_VIEW, 12, T0_MS - 30 * 1000);
    rc_rank_spec_t spec = {
        .k = 128, .category = -1, .price_min = -1, .price_max = -1, .repeat = RC_REPEAT_ALLOWED};
    uint32_t n = rc_engine_rank(e, scratch(), &u, &spec, T0_MS, out);
    int seen = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (out[i].src != RC_SRC_REPEAT)
            continue;
        reason(e, &u, &out[i], &why, words, sizeof(words));
        assert_int_equal(why.code, RC_REASON_REPEAT);
        if (out[i].item == 11) {
            assert_int_equal(why.kind, RC_EV_CART);
            assert_int_equal(why.age_s, 300);
            assert_string_equal(words, "You added this to your cart 5 minutes ago");
        } else if (out[i].item == 12) {
            assert_int_equal(why.kind, RC_EV_VIEW);
            assert_int_equal(why.age_s, 30);
            assert_string_equal(words, "You viewed this just now");
        } else {
            assert_int_equal(out[i].item, 10);
            assert_int_equal(why.age_s, 3 * 3600);
            assert_string_equal(words, "You viewed this 3 hours ago");
        }
        seen++;
    }
    assert_int_equal(seen, 3);

    /* Built by hand: the rest of the phrases, and an interaction of unknown kind and time (a
     * stored profile's). */
    static const struct {
        uint8_t kind;
        int64_t age_s;
        const char *words;
    } cases[] = {{RC_EV_RATING, 60, "You rated this 1 minute ago"},
                 {RC_EV_CLICK, 3600, "You viewed this 1 hour ago"},
                 {RC_EV_PURCHASE, 86400 * 3, "You bought this earlier"},
                 {RC_EVENT_KIND_COUNT, -1, "You viewed this earlier"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc_ranked_t r = {.item = 20,
                         .score = 1,
                         .src = RC_SRC_REPEAT,
                         .kind = cases[i].kind,
                         .ref = cases[i].age_s};
        reason(e, &u, &r, &why, words, sizeof(words));
        assert_int_equal(why.kind, cases[i].kind);
        assert_int_equal(why.age_s, cases[i].age_s);
        assert_string_equal(words, cases[i].words);
    }
    /* A short buffer is cut, never overrun. */
    char tiny[8];
    rc_reason_words(e, &why, tiny, sizeof(tiny));
    assert_string_equal(tiny, "You vie");
    free_engine(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_are_stable),
        cmocka_unit_test_teardown(test_reason_of_each_source, free_engines),
        cmocka_unit_test_teardown(test_category_display_names, free_engines),
        cmocka_unit_test_teardown(test_repeat_kind_and_age, free_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
