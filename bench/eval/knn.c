/* SPDX-License-Identifier: Apache-2.0 */
/* The baselines of rankcast-eval, written from the descriptions in Ludewig & Jannach,
 * "Evaluation of session-based recommendation algorithms" (UMUAI 2018), and Garg et al.,
 * "Sequence and Time Aware Neighborhood for Session-based Recommendations: STAN" (SIGIR
 * 2019), with the defaults of their reference implementations (session-rec):
 *   POP       items by the number of sessions containing them;
 *   COOC      last-item co-occurrence: sessions containing both the last item and the
 *             candidate;
 *   SKNN      k = 100 most similar of the 500 most recent sessions sharing an item,
 *             binary cosine, an item scores the sum of its neighbours' similarities;
 *   V-SKNN    k = 100 of 1,000; the current session's items weigh i/len by position
 *             ("div"), similarity = sum of shared weights / distinct items; a neighbour's
 *             items count 1/step, step = how far back the newest shared item is;
 *   STAN      k = 100 of the sample; position weight exp((p - len)/1.02), cosine with
 *             those weights, neighbour recency exp(-dt/5 days), and a candidate's weight
 *             exp(-|p_candidate - p_shared|/2.05) in the neighbour;
 *   V-STAN    STAN, and a neighbour weighs exp((p - len)/1.02) by the position p of the
 *             newest item of the current session it holds, and a candidate's score s
 *             gains s * idf * 5, idf = log(sessions in the pool / the item's events).
 * By default every ranker leaves out items already in the session, as the engine does; with
 * `session_items` (--targets all) they rank them like any other item, as session-rec's
 * defaults do (README, "Baselines, checked against session-rec"). Ties: neighbours
 * of equal similarity, the more recent first; items of equal score, the one scored first
 * (neighbours in rank order, items in their order in the neighbour) first. Checked list by
 * list against an independent Python implementation (reference/knn_ref.py). */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        exit(1);
    }
    return q;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        exit(1);
    }
    return p;
}

void knn_init(knn_index_t *x, uint32_t n_items, bool session_items)
{
    memset(x, 0, sizeof(*x));
    x->n_items = n_items;
    x->session_items = session_items;
    x->post = xcalloc(n_items, sizeof(*x->post));
    x->n_post = xcalloc(n_items, sizeof(uint32_t));
    x->cap_post = xcalloc(n_items, sizeof(uint32_t));
    x->count = xcalloc(n_items, sizeof(uint32_t));
    x->events = xcalloc(n_items, sizeof(uint32_t));
    x->order = xcalloc(n_items, sizeof(uint32_t));
    x->pos = xcalloc(n_items, sizeof(uint32_t));
    for (uint32_t i = 0; i < n_items; i++)
        x->order[i] = x->pos[i] = i;
    x->n_blocks = 16;
    x->block_start = xcalloc(x->n_blocks, sizeof(uint32_t));
    x->block_len = xcalloc(x->n_blocks, sizeof(uint32_t));
    x->block_len[0] = n_items;
    x->stamp_item = xcalloc(n_items, sizeof(uint32_t));
    x->acc = xcalloc(n_items, sizeof(double));
    x->wpos = xcalloc(n_items, sizeof(double));
    x->touched = xcalloc(n_items, sizeof(uint32_t));
    x->lastpos = xcalloc(n_items, sizeof(uint32_t));
    x->nb_mark = xcalloc(n_items, sizeof(uint32_t));
}

void knn_free(knn_index_t *x)
{
    for (uint32_t i = 0; i < x->n_items; i++)
        free(x->post[i]);
    free(x->post);
    free(x->n_post);
    free(x->cap_post);
    free(x->count);
    free(x->events);
    free(x->order);
    free(x->pos);
    free(x->block_start);
    free(x->block_len);
    free(x->stamp_item);
    free(x->acc);
    free(x->wpos);
    free(x->touched);
    free(x->lastpos);
    free(x->nb_mark);
    free(x->sess_off);
    free(x->sess_len);
    free(x->sess_distinct);
    free(x->sess_time_s);
    free(x->items);
    free(x->stamp_sess);
    free(x->cand);
    free(x->heap_item);
    free(x->heap_head);
    free(x->nbs);
    memset(x, 0, sizeof(*x));
}

/* One more session holds `item`: it swaps with the first item of its count's block, which
 * then becomes the last item of the next count's block, so order[] stays sorted in O(1). */
static void pop_increment(knn_index_t *x, uint32_t item)
{
    uint32_t c = x->count[item];
    if (c + 2 > x->n_blocks) {
        uint32_t nb = x->n_blocks * 2;
        x->block_start = xrealloc(x->block_start, nb * sizeof(uint32_t));
        x->block_len = xrealloc(x->block_len, nb * sizeof(uint32_t));
        memset(x->block_start + x->n_blocks, 0, (nb - x->n_blocks) * sizeof(uint32_t));
        memset(x->block_len + x->n_blocks, 0, (nb - x->n_blocks) * sizeof(uint32_t));
        x->n_blocks = nb;
    }
    uint32_t s = x->block_start[c], p = x->pos[item], other = x->order[s];
    x->order[s] = item;
    x->pos[item] = s;
    x->order[p] = other;
    x->pos[other] = p;
    x->block_start[c]++;
    x->block_len[c]--;
    if (x->block_len[c + 1] == 0)
        x->block_start[c + 1] = s;
    x->block_len[c + 1]++;
    x->count[item] = c + 1;
}

void knn_add_session(knn_index_t *x, const uint32_t *items, uint32_t n, double time_s)
{
    if (x->n_sess == x->cap_sess) {
        x->cap_sess = x->cap_sess ? x->cap_sess * 2 : 4096;
        x->sess_off = xrealloc(x->sess_off, x->cap_sess * sizeof(uint32_t));
        x->sess_len = xrealloc(x->sess_len, x->cap_sess * sizeof(uint32_t));
        x->sess_distinct = xrealloc(x->sess_distinct, x->cap_sess * sizeof(uint32_t));
        x->sess_time_s = xrealloc(x->sess_time_s, x->cap_sess * sizeof(double));
        x->stamp_sess = xrealloc(x->stamp_sess, x->cap_sess * sizeof(uint32_t));
        memset(x->stamp_sess + x->n_sess, 0, (x->cap_sess - x->n_sess) * sizeof(uint32_t));
    }
    while (x->n_it + n > x->cap_it) {
        x->cap_it = x->cap_it ? x->cap_it * 2 : 1 << 16;
        x->items = xrealloc(x->items, x->cap_it * sizeof(uint32_t));
    }
    uint32_t sid = x->n_sess++;
    x->sess_off[sid] = (uint32_t)x->n_it;
    x->sess_len[sid] = n;
    x->sess_time_s[sid] = time_s;
    memcpy(x->items + x->n_it, items, n * sizeof(uint32_t));
    x->n_it += n;
    x->stamp++;
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t it = items[i];
        x->events[it]++;
        if (x->stamp_item[it] == x->stamp) {
            if (x->session_items) /* session-rec's POP counts events (pop.py, grp.size()) */
                pop_increment(x, it);
            continue;
        }
        x->stamp_item[it] = x->stamp;
        distinct++;
        if (x->n_post[it] == x->cap_post[it]) {
            x->cap_post[it] = x->cap_post[it] ? x->cap_post[it] * 2 : 4;
            x->post[it] = xrealloc(x->post[it], x->cap_post[it] * sizeof(uint32_t));
        }
        x->post[it][x->n_post[it]++] = sid;
        pop_increment(x, it);
    }
    x->sess_distinct[sid] = distinct;
}

/* Marks the current session's items with a fresh stamp; returns how many are distinct. */
static uint32_t mark_current(knn_index_t *x, const uint32_t *cur, uint32_t n)
{
    uint32_t distinct = 0;
    x->stamp++;
    for (uint32_t i = 0; i < n; i++) {
        if (x->stamp_item[cur[i]] != x->stamp)
            distinct++;
        x->stamp_item[cur[i]] = x->stamp;
    }
    return distinct;
}

uint32_t knn_rank_pop(knn_index_t *x, const uint32_t *cur, uint32_t n, uint32_t *out)
{
    mark_current(x, cur, n);
    uint32_t k = 0;
    for (uint32_t i = 0; i < x->n_items && k < EVAL_K; i++)
        if ((x->session_items || x->stamp_item[x->order[i]] != x->stamp) &&
            x->count[x->order[i]] > 0)
            out[k++] = x->order[i];
    return k;
}

static void touch(knn_index_t *x, uint32_t *n_touched, uint32_t item, double w)
{
    if (x->acc[item] == 0 && w != 0)
        x->touched[(*n_touched)++] = item;
    x->acc[item] += w;
}

/* The best EVAL_K touched items, without the current session's unless the index ranks them;
 * clears acc. */
static uint32_t top_touched(knn_index_t *x, uint32_t n_touched, uint32_t *out)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n_touched; i++) {
        uint32_t it = x->touched[i];
        double s = x->acc[it];
        if ((!x->session_items && x->stamp_item[it] == x->stamp) || s <= 0)
            continue;
        if (k == EVAL_K && !(s > x->acc[out[k - 1]]))
            continue;
        uint32_t p = k < EVAL_K ? k++ : EVAL_K - 1;
        while (p > 0 && s > x->acc[out[p - 1]]) {
            out[p] = out[p - 1];
            p--;
        }
        out[p] = it;
    }
    for (uint32_t i = 0; i < n_touched; i++)
        x->acc[x->touched[i]] = 0;
    return k;
}

/* How many of the sessions containing the last item also contain each other item; the
 * most recent 10,000 such sessions are counted (a bound no item in our data sets reaches
 * except the very top sellers). The last item itself co-occurs with itself only in sessions
 * holding it twice (two events, as session-rec's association rules count pairs of events);
 * it can be listed only when the index ranks session items. */
uint32_t knn_rank_cooc(knn_index_t *x, const uint32_t *cur, uint32_t n, uint32_t *out)
{
    if (n == 0)
        return 0;
    uint32_t last = cur[n - 1], n_touched = 0;
    uint32_t np = x->n_post[last], from = np > 10000 ? np - 10000 : 0;
    for (uint32_t j = from; j < np; j++) {
        uint32_t sid = x->post[last][j], len = x->sess_len[sid];
        const uint32_t *it = x->items + x->sess_off[sid];
        uint32_t n_last = 0;
        for (uint32_t i = 0; i < len && x->session_items && n_last < 2; i++)
            n_last += it[i] == last;
        x->nb_serial++;
        for (uint32_t i = 0; i < len; i++) {
            if (x->nb_mark[it[i]] == x->nb_serial)
                continue;
            x->nb_mark[it[i]] = x->nb_serial;
            if (it[i] != last || n_last >= 2)
                touch(x, &n_touched, it[i], 1.0);
        }
    }
    mark_current(x, cur, n);
    return top_touched(x, n_touched, out);
}

/* Sampling keeps a max-heap with one entry per distinct item of the current session that has
 * sessions left to take: heap_item[i] is the item and heap_head[i] how many of its sessions
 * (ascending ids) are not taken yet, so the entry's next session is the most recent left. */
static uint32_t heap_sid(const knn_index_t *x, uint32_t i)
{
    return x->post[x->heap_item[i]][x->heap_head[i] - 1];
}

static void heap_sift_down(knn_index_t *x, uint32_t n_heap, uint32_t i)
{
    for (;;) {
        uint32_t best = i, left = 2 * i + 1, right = left + 1;
        if (left < n_heap && heap_sid(x, left) > heap_sid(x, best))
            best = left;
        if (right < n_heap && heap_sid(x, right) > heap_sid(x, best))
            best = right;
        if (best == i)
            return;
        uint32_t item = x->heap_item[i], head = x->heap_head[i];
        x->heap_item[i] = x->heap_item[best];
        x->heap_head[i] = x->heap_head[best];
        x->heap_item[best] = item;
        x->heap_head[best] = head;
        i = best;
    }
}

/* The `sample` most recent sessions sharing an item with the current one (session-rec's
 * sampling "recent" over the sessions of every item of the session, however long): a merge
 * from the tails of the items' session lists, de-duplicated by stamp. */
static uint32_t sample_sessions(knn_index_t *x, const uint32_t *cur, uint32_t n, uint32_t sample)
{
    if (x->cap_heap < n) {
        x->cap_heap = n;
        x->heap_item = xrealloc(x->heap_item, n * sizeof(uint32_t));
        x->heap_head = xrealloc(x->heap_head, n * sizeof(uint32_t));
    }
    uint32_t n_heap = 0;
    x->nb_serial++;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t it = cur[i];
        if (x->nb_mark[it] == x->nb_serial || x->n_post[it] == 0)
            continue;
        x->nb_mark[it] = x->nb_serial;
        x->heap_item[n_heap] = it;
        x->heap_head[n_heap++] = x->n_post[it];
    }
    for (uint32_t i = n_heap / 2; i-- > 0;)
        heap_sift_down(x, n_heap, i);
    if (x->cap_cand < sample) {
        x->cap_cand = sample;
        x->cand = xrealloc(x->cand, sample * sizeof(uint32_t));
    }
    x->sess_stamp++;
    uint32_t got = 0;
    while (got < sample && n_heap > 0) {
        uint32_t sid = heap_sid(x, 0);
        if (--x->heap_head[0] == 0) {
            n_heap--;
            x->heap_item[0] = x->heap_item[n_heap];
            x->heap_head[0] = x->heap_head[n_heap];
        }
        heap_sift_down(x, n_heap, 0);
        if (x->stamp_sess[sid] == x->sess_stamp)
            continue;
        x->stamp_sess[sid] = x->sess_stamp;
        x->cand[got++] = sid;
    }
    return got;
}

static int by_sim_desc(const void *a, const void *b)
{
    double x = ((const knn_nb_t *)a)->sim, y = ((const knn_nb_t *)b)->sim;
    if (x != y)
        return (x < y) - (x > y);
    /* Equal similarity: the more recent session first. */
    uint32_t i = ((const knn_nb_t *)a)->sid, j = ((const knn_nb_t *)b)->sid;
    return (i < j) - (i > j);
}

/* Per-item weights of the current session used in the similarity (last occurrence wins, as
 * in the reference code). */
static void position_weights(knn_index_t *x, const knn_params_t *p, const uint32_t *cur, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        double pos = (double)(i + 1);
        if (p->stan)
            x->wpos[cur[i]] = exp((pos - (double)n) / p->lambda_spw);
        else if (p->vsknn)
            x->wpos[cur[i]] = pos / (double)n;
        else
            x->wpos[cur[i]] = 1.0;
    }
}

static double similarity(knn_index_t *x, const knn_params_t *p, uint32_t sid, uint32_t distinct,
                         double cur_norm, double now_s)
{
    const uint32_t *it = x->items + x->sess_off[sid];
    double dot = 0;
    x->nb_serial++;
    for (uint32_t i = 0; i < x->sess_len[sid]; i++) {
        uint32_t v = it[i];
        if (x->nb_mark[v] == x->nb_serial)
            continue;
        x->nb_mark[v] = x->nb_serial;
        if (x->stamp_item[v] == x->stamp)
            dot += x->wpos[v];
    }
    if (p->vsknn)
        return dot / (double)distinct;
    double sim = dot / (cur_norm * sqrt((double)x->sess_distinct[sid]));
    if (p->stan)
        sim *= exp(-(now_s - x->sess_time_s[sid]) / p->lambda_snh_s);
    return sim;
}

/* Adds one neighbour's items to the scores. */
static void score_neighbor(knn_index_t *x, const knn_params_t *p, const knn_nb_t *nb,
                           const uint32_t *cur, uint32_t n, uint32_t *n_touched)
{
    const uint32_t *it = x->items + x->sess_off[nb->sid];
    uint32_t len = x->sess_len[nb->sid];
    double w = nb->sim;
    uint32_t pos_star = 0;
    x->nb_serial++;
    for (uint32_t i = 0; i < len; i++) {
        x->nb_mark[it[i]] = x->nb_serial;
        x->lastpos[it[i]] = i + 1;
        if (x->stamp_item[it[i]] == x->stamp)
            pos_star = i + 1;
    }
    if (p->vsknn) {
        double decay = 0;
        for (uint32_t step = 1; step <= n; step++) {
            if (x->nb_mark[cur[n - step]] == x->nb_serial) {
                decay = 1.0 / (double)step;
                break;
            }
        }
        w *= decay;
    }
    if (p->vstan) {
        /* vstan.py: the last position of the current session whose item the neighbour
         * holds sets the neighbour's weight. */
        double ipw = 0;
        for (uint32_t i = n; i-- > 0;) {
            if (x->nb_mark[cur[i]] == x->nb_serial) {
                ipw = exp(((double)(i + 1) - (double)n) / p->lambda_ipw);
                break;
            }
        }
        w *= ipw;
    }
    x->nb_serial++;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t v = it[i];
        if (x->nb_mark[v] == x->nb_serial)
            continue;
        x->nb_mark[v] = x->nb_serial;
        double s = w;
        if (p->stan)
            s = w * exp(-fabs((double)x->lastpos[v] - (double)pos_star) / p->lambda_inh);
        if (p->vstan && p->lambda_idf > 0)
            s += s * log((double)x->n_sess / (double)x->events[v]) * p->lambda_idf;
        touch(x, n_touched, v, s);
    }
}

uint32_t knn_rank_sknn(knn_index_t *x, const knn_params_t *p, const uint32_t *cur, uint32_t n,
                       double now_s, uint32_t *out)
{
    if (n == 0)
        return 0;
    uint32_t got = sample_sessions(x, cur, n, p->sample);
    uint32_t distinct = mark_current(x, cur, n);
    position_weights(x, p, cur, n);
    double cur_norm = 0;
    x->nb_serial++;
    for (uint32_t i = 0; i < n; i++) {
        if (x->nb_mark[cur[i]] == x->nb_serial)
            continue;
        x->nb_mark[cur[i]] = x->nb_serial;
        cur_norm += x->wpos[cur[i]] * x->wpos[cur[i]];
    }
    cur_norm = sqrt(cur_norm);
    if (x->cap_nbs < got) {
        x->cap_nbs = got;
        x->nbs = xrealloc(x->nbs, got * sizeof(*x->nbs));
    }
    knn_nb_t *nbs = x->nbs;
    uint32_t m = 0;
    for (uint32_t i = 0; i < got; i++) {
        double s = similarity(x, p, x->cand[i], distinct, cur_norm, now_s);
        if (s > 0)
            nbs[m++] = (knn_nb_t){s, x->cand[i]};
    }
    qsort(nbs, m, sizeof(knn_nb_t), by_sim_desc);
    if (m > p->k)
        m = p->k;
    uint32_t n_touched = 0;
    for (uint32_t i = 0; i < m; i++)
        score_neighbor(x, p, &nbs[i], cur, n, &n_touched);
    return top_touched(x, n_touched, out);
}
