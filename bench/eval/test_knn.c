/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of rankcast-eval's baselines (knn.c) on sessions small enough to score by hand.
 * Items 0..9; unless a test builds its own, the index holds, in order of completion:
 *   s0 = [1 2 3]   s1 = [1 4]   s2 = [5 6]   s3 = [2 7 1 8]          */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "eval.h"

#include <math.h>

static void build(knn_index_t *x)
{
    static const uint32_t s0[] = {1, 2, 3}, s1[] = {1, 4}, s2[] = {5, 6}, s3[] = {2, 7, 1, 8};
    knn_init(x, 10, false);
    knn_add_session(x, s0, 3, 100);
    knn_add_session(x, s1, 2, 200);
    knn_add_session(x, s2, 2, 300);
    knn_add_session(x, s3, 4, 400);
}

static int position(const uint32_t *out, uint32_t n, uint32_t item)
{
    for (uint32_t i = 0; i < n; i++)
        if (out[i] == item)
            return (int)i;
    return -1;
}

/* Counts: 1 in 3 sessions, 2 in 2, the others in 1; the session's own items are left out. */
static void test_pop(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {1};
    build(&x);
    uint32_t n = knn_rank_pop(&x, cur, 1, out);
    assert_int_equal(n, 7); /* 2 3 4 5 6 7 8: never-seen items 0 and 9 are not listed */
    assert_int_equal(out[0], 2);
    assert_int_equal(position(out, n, 1), -1);
    knn_free(&x);
}

/* Sessions with the last item 2 are s0 and s3: 1 co-occurs twice (but is in the session),
 * 3, 7 and 8 once each; 4 never. */
static void test_cooc(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {1, 2};
    build(&x);
    uint32_t n = knn_rank_cooc(&x, cur, 2, out);
    assert_int_equal(n, 3);
    assert_int_not_equal(position(out, n, 3), -1);
    assert_int_not_equal(position(out, n, 7), -1);
    assert_int_not_equal(position(out, n, 8), -1);
    assert_int_equal(position(out, n, 4), -1);
    knn_free(&x);
}

/* SKNN, current [1]: cosine with s0 = 1/sqrt(3) = .577, s1 = 1/sqrt(2) = .707, s3 = 1/2.
 * Scores: 4 = .707, 2 = .577 + .5 = 1.077, 3 = .577, 7 = 8 = .5. Order: 2, 4, 3, {7, 8}. */
static void test_sknn(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t p = {.k = 100, .sample = 500};
    build(&x);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 1, 500, out);
    assert_int_equal(n, 5);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 3);
    /* 7 and 8 tie at .5: the one scored first (earlier in s3) comes first. */
    assert_int_equal(out[3], 7);
    assert_int_equal(out[4], 8);
    /* k = 1 keeps the most similar neighbour only (s1): item 4 alone. */
    p.k = 1;
    n = knn_rank_sknn(&x, &p, cur, 1, 500, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 4);
    /* A sample of 1 looks at the most recent session sharing an item (s3) only. */
    p.k = 100;
    p.sample = 1;
    n = knn_rank_sknn(&x, &p, cur, 1, 500, out);
    assert_int_equal(n, 3);
    assert_int_equal(position(out, n, 4), -1);
    knn_free(&x);
}

/* V-SKNN, current [4 2] (weights 1/2 and 2/2): s0 shares 2 -> sim 1/2; s1 shares 4 -> .5/2
 * = .25; s3 shares 2 -> .5. Decay: the newest item (2) is in s0 and s3 (step 1), only the
 * older 4 in s1 (step 2, 1/2). Scores: 1 = .5 + .125 + .5 = 1.125, 3 = .5, 7 = 8 = .5.
 * SKNN instead (cosine, no position) ranks 1 the same but gives s1 the full 1/sqrt(2·2). */
static void test_vsknn(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {4, 2};
    knn_params_t p = {.k = 100, .sample = 1000, .vsknn = true};
    build(&x);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 2, 500, out);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 1);
    for (uint32_t i = 1; i < n; i++)
        assert_true(out[i] == 3 || out[i] == 7 || out[i] == 8);
    knn_free(&x);
}

/* STAN, current [1]: in s3 = [2 7 1 8] the shared item 1 sits at 3, so 7 and 8 (distance 1)
 * outweigh 2 (distance 2) from that neighbour; with the neighbour recency of s3 (newest)
 * above s0's, 8 beats 3 although both appear once. */
static void test_stan(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t p = {.k = 100,
                      .sample = 5000,
                      .stan = true,
                      .lambda_spw = 1.02,
                      .lambda_snh_s = 100, /* seconds: recency matters at this scale */
                      .lambda_inh = 2.05};
    build(&x);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 1, 500, out);
    assert_int_equal(n, 5);
    int p8 = position(out, n, 8), p3 = position(out, n, 3), p7 = position(out, n, 7);
    assert_int_ge(p8, 0);
    assert_int_ge(p3, 0);
    assert_int_lt(p8, p3);
    assert_int_lt(p7, p3);
    knn_free(&x);
}

/* V-SKNN's score decay: current [1 2 3 4 5] (weights .2 .. 1). n1 = [1 2 3 9] is the more
 * similar (1.2 / 5 = .24) but its newest shared item is 3, three steps back: 9 gets .08.
 * n2 = [5 8] is less similar (.2) but shares the newest item: 8 gets .2 and leads. Without
 * the decay 9 would lead. */
static void test_vsknn_decay(void **state)
{
    (void)state;
    knn_index_t x;
    static const uint32_t n1[] = {1, 2, 3, 9}, n2[] = {5, 8};
    uint32_t out[EVAL_K], cur[] = {1, 2, 3, 4, 5};
    knn_params_t p = {.k = 100, .sample = 1000, .vsknn = true};
    knn_init(&x, 10, false);
    knn_add_session(&x, n1, 4, 100);
    knn_add_session(&x, n2, 2, 200);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 5, 300, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 8);
    assert_int_equal(out[1], 9);
    knn_free(&x);
}

/* STAN's in-neighbour position: in [8 6 7 1], with the shared item 1 last, 7 (one step away)
 * beats 6 (two) beats 8 (three). */
static void test_stan_position_in_neighbor(void **state)
{
    (void)state;
    knn_index_t x;
    static const uint32_t nb[] = {8, 6, 7, 1};
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t p = {.k = 100,
                      .sample = 5000,
                      .stan = true,
                      .lambda_spw = 1.02,
                      .lambda_snh_s = 5 * 86400.0,
                      .lambda_inh = 2.05};
    knn_init(&x, 10, false);
    knn_add_session(&x, nb, 4, 100);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 1, 200, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 7);
    assert_int_equal(out[1], 6);
    assert_int_equal(out[2], 8);
    knn_free(&x);
}

/* V-STAN's neighbour weight by the position of the newest item of the current session it
 * holds (lambda_ipw): current [1 2 3], position weights nearly flat (lambda_spw 100).
 * nA = [1 2 9] is the more similar (2/3 against 1/sqrt(6)) but its newest shared item is 2,
 * one step back (x exp(-1/1.02) = .375); nB = [3 8] shares the item in view. STAN ranks 9
 * first (.41 against .25), V-STAN 8 (.25 against .15). */
static void test_vstan_item_position(void **state)
{
    (void)state;
    knn_index_t x;
    static const uint32_t na[] = {1, 2, 9}, nb[] = {3, 8};
    uint32_t out[EVAL_K], cur[] = {1, 2, 3};
    knn_params_t stan = {.k = 100,
                         .sample = 5000,
                         .stan = true,
                         .lambda_spw = 100,
                         .lambda_snh_s = 5 * 86400.0,
                         .lambda_inh = 2.05};
    knn_params_t vstan = stan;
    vstan.vstan = true;
    vstan.lambda_ipw = 1.02;
    vstan.lambda_idf = 0;
    knn_init(&x, 10, false);
    knn_add_session(&x, na, 3, 100);
    knn_add_session(&x, nb, 2, 200);
    uint32_t n = knn_rank_sknn(&x, &stan, cur, 3, 300, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 9);
    n = knn_rank_sknn(&x, &vstan, cur, 3, 300, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 8);
    assert_int_equal(out[1], 9);
    knn_free(&x);
}

/* V-STAN's idf (lambda_idf): current [1], neighbours [1 5] and [1 6] equally similar (the
 * second a little more recent, so STAN scores 6 first); 6 is also in [6 7] twice, so its idf
 * log(4 / 3) is below 5's log(4 / 1) and V-STAN ranks 5 first. */
static void test_vstan_idf(void **state)
{
    (void)state;
    knn_index_t x;
    static const uint32_t s0[] = {1, 5}, s1[] = {1, 6}, s2[] = {6, 7};
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t stan = {.k = 100,
                         .sample = 5000,
                         .stan = true,
                         .lambda_spw = 1.02,
                         .lambda_snh_s = 5 * 86400.0,
                         .lambda_inh = 2.05};
    knn_params_t vstan = stan;
    vstan.vstan = true;
    vstan.lambda_ipw = 1.02;
    vstan.lambda_idf = 5;
    knn_init(&x, 10, false);
    knn_add_session(&x, s2, 2, 50);
    knn_add_session(&x, s2, 2, 60);
    knn_add_session(&x, s0, 2, 100);
    knn_add_session(&x, s1, 2, 200);
    uint32_t n = knn_rank_sknn(&x, &stan, cur, 1, 300, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 6);
    n = knn_rank_sknn(&x, &vstan, cur, 1, 300, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 6);
    knn_free(&x);
}

/* Neighbours of equal similarity: the more recent wins. s0 = [1 5] and s1 = [1 6] are both
 * 1/sqrt(2) from the current [1]; with k = 1 only s1 (completed later) is a neighbour. */
static void test_neighbor_tie_recent_first(void **state)
{
    (void)state;
    knn_index_t x;
    static const uint32_t s0[] = {1, 5}, s1[] = {1, 6};
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t p = {.k = 1, .sample = 500};
    knn_init(&x, 10, false);
    knn_add_session(&x, s0, 2, 100);
    knn_add_session(&x, s1, 2, 200);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 1, 300, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 6);
    knn_free(&x);
}

/* The sample draws on every item of the session, however long (session-rec unions the
 * sessions of all of them). Current [0 1 .. 64], 65 distinct items; past sessions
 * a = [0 200] (shares only the oldest item) and b = [1 .. 64]. Every item of b is in the
 * session, so 200 is the only item to recommend, through a: SKNN scores it
 * 1/sqrt(65 * 2) = .088; V-SKNN (1/65) / 65 at step 65; STAN with weight exp(-64/1.02).
 * A sample drawn from the newest 64 items' sessions only finds b and recommends nothing. */
static void test_sample_covers_long_session(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t a[] = {0, 200}, b[64], cur[65], out[EVAL_K];
    for (uint32_t i = 0; i < 64; i++)
        b[i] = i + 1;
    for (uint32_t i = 0; i < 65; i++)
        cur[i] = i;
    const knn_params_t params[] = {
        {.k = 100, .sample = 500},
        {.k = 100, .sample = 1000, .vsknn = true},
        {.k = 100,
         .sample = 5000,
         .stan = true,
         .lambda_spw = 1.02,
         .lambda_snh_s = 5 * 86400.0,
         .lambda_inh = 2.05},
    };
    knn_init(&x, 256, false);
    knn_add_session(&x, a, 2, 100);
    knn_add_session(&x, b, 64, 200);
    for (uint32_t m = 0; m < 3; m++) {
        uint32_t n = knn_rank_sknn(&x, &params[m], cur, 65, 300, out);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], 200);
    }
    knn_free(&x);
}

/* STAN's neighbour recency can go below float's range: [1 2] ended 110 time constants
 * (lambda_snh) ago weighs exp(-110) = 1.7e-48 times its cosine .707. That is still a
 * neighbour (session-rec computes in double), so 2 is recommended; rounded to a float it
 * would be 0 and the neighbour dropped. */
static void test_stan_old_neighbor_counts(void **state)
{
    (void)state;
    knn_index_t x;
    static const uint32_t s0[] = {1, 2};
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t p = {.k = 100,
                      .sample = 5000,
                      .stan = true,
                      .lambda_spw = 1.02,
                      .lambda_snh_s = 100,
                      .lambda_inh = 2.05};
    knn_init(&x, 10, false);
    knn_add_session(&x, s0, 2, 0);
    uint32_t n = knn_rank_sknn(&x, &p, cur, 1, 11000, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 2);
    knn_free(&x);
}

/* session-rec's handling of session items (--targets all), on sessions with repeats:
 *   s0 = [1 2 1 1 3]   s1 = [1 4]   s2 = [2 5]   s3 = [2 6]   s4 = [4 1 4 1]
 * Item 1 is in 3 sessions and 6 events, 2 in 3 sessions and 3 events, 4 in 2 and 3. */
static void build_repeats(knn_index_t *x, bool session_items)
{
    static const uint32_t s0[] = {1, 2, 1, 1, 3}, s1[] = {1, 4}, s2[] = {2, 5}, s3[] = {2, 6},
                          s4[] = {4, 1, 4, 1};
    knn_init(x, 10, session_items);
    knn_add_session(x, s0, 5, 100);
    knn_add_session(x, s1, 2, 200);
    knn_add_session(x, s2, 2, 300);
    knn_add_session(x, s3, 2, 400);
    knn_add_session(x, s4, 4, 500);
}

/* POP as session-rec's (pop.py: events per item, nothing filtered): 1 (6 events) before
 * 2 and 4 (3 each), 1 listed although it is the current item. By sessions, 1 and 2 tie. */
static void test_pop_session_items(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {1};
    build_repeats(&x, true);
    uint32_t n = knn_rank_pop(&x, cur, 1, out);
    assert_int_equal(n, 6);
    assert_int_equal(out[0], 1);
    assert_true(x.count[1] == 6 && x.count[2] == 3 && x.count[4] == 3 && x.count[3] == 1);
    knn_free(&x);
    build_repeats(&x, false);
    n = knn_rank_pop(&x, cur, 1, out);
    assert_int_equal(n, 5);
    assert_int_equal(position(out, n, 1), -1);
    assert_true(x.count[1] == 3 && x.count[2] == 3 && x.count[4] == 2);
    knn_free(&x);
}

/* Co-occurrence with the last item 1 (sessions s0, s1, s4): 1 co-occurs with itself where it
 * occurs twice (s0, s4): 2; 4 in s1 and s4: 2; 2 and 3 in s0: 1. Ties: first scored first
 * (1 in s0 before 4 in s1). Without session items: 4, then 3 (2 is in the session). With
 * the last item 4 (s1, s4), 4 counts once (s4 only), 1 twice. */
static void test_cooc_session_items(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {2, 1}, cur4[] = {4};
    build_repeats(&x, true);
    uint32_t n = knn_rank_cooc(&x, cur, 2, out);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 2);
    assert_int_equal(out[3], 3);
    n = knn_rank_cooc(&x, cur4, 1, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 4);
    knn_free(&x);
    build_repeats(&x, false);
    n = knn_rank_cooc(&x, cur, 2, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 3);
    knn_free(&x);
}

/* SKNN, current [1]: neighbours s0 {1 2 3} (1/sqrt(3) = .577), s1 and s4 {1 4} (.707 each).
 * Scores 1 = 1.992 (every neighbour holds it), 4 = 1.414, 2 = 3 = .577: session-rec ranks
 * the current item first (sknn.py score_items, remind off). STAN, current [1], neighbour
 * s4 = [4 1 4 1]: 1 sits at p* itself (weight 1), 4 one step away (exp(-1/2.05)). */
static void test_knn_session_items(void **state)
{
    (void)state;
    knn_index_t x;
    uint32_t out[EVAL_K], cur[] = {1};
    knn_params_t sknn = {.k = 100, .sample = 500};
    knn_params_t stan = {.k = 1,
                         .sample = 5000,
                         .stan = true,
                         .lambda_spw = 1.02,
                         .lambda_snh_s = 5 * 86400.0,
                         .lambda_inh = 2.05};
    build_repeats(&x, true);
    uint32_t n = knn_rank_sknn(&x, &sknn, cur, 1, 600, out);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 2);
    assert_int_equal(out[3], 3);
    n = knn_rank_sknn(&x, &stan, cur, 1, 600, out); /* k = 1: s4, the most recent of s1, s4 */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 4);
    knn_free(&x);
}

/* The rule baselines (rules.c) on s0 = [1 2 3], s1 = [1 3], s2 = [2 2 4], current [2]:
 *   Markov  2->3, 2->2, 2->4 once each (made in that order): 3 2 4; without session items 3 4.
 *   SR      (10 steps, 1/i) 1->2 = 1, 1->3 = .5 + 1; 2->3 = 1, 2->2 = 1, 2->4 = 1 + .5:
 *           from [1]: 3 2; from [2]: 4 3 2.
 *   AR      2->1 = 1, 2->3 = 1, 2->2 = 2 (two events of 2 pair both ways), 2->4 = 2: 2 4 1 3. */
static void test_rules(void **state)
{
    (void)state;
    static const uint32_t s0[] = {1, 2, 3}, s1[] = {1, 3}, s2[] = {2, 2, 4};
    static const uint32_t want_markov[] = {3, 2, 4}, want_sr[] = {4, 3, 2},
                          want_ar[] = {2, 4, 1, 3};
    const uint32_t *want[] = {want_markov, want_sr, want_ar};
    const uint32_t n_want[] = {3, 3, 4};
    uint32_t out[EVAL_K], cur[] = {2}, cur1[] = {1};
    for (int kind = RULES_MARKOV; kind <= RULES_AR; kind++) {
        for (int session_items = 1; session_items >= 0; session_items--) {
            rules_t r;
            rules_init(&r, (rules_kind_t)kind, 10, session_items, 10, SR_W_DIV);
            rules_add_session(&r, s0, 3);
            rules_add_session(&r, s1, 2);
            rules_add_session(&r, s2, 3);
            uint32_t n = rules_rank(&r, cur, 1, out);
            uint32_t j = 0;
            for (uint32_t i = 0; i < n_want[kind]; i++) {
                if (!session_items && want[kind][i] == 2)
                    continue;
                assert_true(j < n);
                assert_int_equal(out[j++], want[kind][i]);
            }
            assert_int_equal(n, j);
            if (kind == RULES_SR) {
                n = rules_rank(&r, cur1, 1, out);
                assert_int_equal(n, 2);
                assert_int_equal(out[0], 3);
                assert_int_equal(out[1], 2);
            }
            rules_free(&r);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop),
        cmocka_unit_test(test_cooc),
        cmocka_unit_test(test_sknn),
        cmocka_unit_test(test_vsknn),
        cmocka_unit_test(test_stan),
        cmocka_unit_test(test_vsknn_decay),
        cmocka_unit_test(test_stan_position_in_neighbor),
        cmocka_unit_test(test_vstan_item_position),
        cmocka_unit_test(test_vstan_idf),
        cmocka_unit_test(test_neighbor_tie_recent_first),
        cmocka_unit_test(test_sample_covers_long_session),
        cmocka_unit_test(test_stan_old_neighbor_counts),
        cmocka_unit_test(test_pop_session_items),
        cmocka_unit_test(test_cooc_session_items),
        cmocka_unit_test(test_knn_session_items),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
