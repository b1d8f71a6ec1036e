/* SPDX-License-Identifier: Apache-2.0 */
/* The rule baselines of rankcast-eval, as session-rec implements them
 * (algorithms/baselines/{markov,sr,ar}.py at 5dcd583):
 *   Markov  first order: how often an item followed the current one, event by event;
 *   SR      sequential rules: an item following another within `steps` events adds a weight
 *           of the distance i (div: 1/i by default);
 *   AR      association rules: every two events of a session, in either order, add 1.
 * A prediction ranks the items that followed the session's last item by their weight. Repeats
 * are events like any other, so a re-click makes a rule from an item to itself. session-rec
 * prunes each item's rules to its 20 strongest; a top 20 is the same list without pruning.
 * Unlike session-rec, which fits them on the training data only, rules here learn every
 * session when it ends (the protocol of every method of the tool). */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const weighting_names[SR_W_COUNT] = {"linear", "same", "div", "log",
                                                        "quadratic"};

int rules_weighting_parse(const char *name)
{
    for (int w = 0; w < SR_W_COUNT; w++)
        if (strcmp(name, weighting_names[w]) == 0)
            return w;
    return -1;
}

const char *rules_weighting_name(int weighting)
{
    return weighting >= 0 && weighting < SR_W_COUNT ? weighting_names[weighting] : "?";
}

/* sr.py's weighting functions of the distance i >= 1, as written there (linear goes below
 * zero past 10 steps, and so do its rules). */
static double sr_weight(int weighting, uint32_t i)
{
    double d = (double)i;
    switch (weighting) {
    case SR_W_LINEAR:
        return i <= 100 ? 1.0 - 0.1 * d : 0.0;
    case SR_W_SAME:
        return 1.0;
    case SR_W_LOG:
        return 1.0 / log10(d + 1.7);
    case SR_W_QUADRATIC:
        return 1.0 / (d * d);
    default:
        return 1.0 / d;
    }
}

void rules_init(rules_t *r, rules_kind_t kind, uint32_t n_items, bool session_items, uint32_t steps,
                int weighting)
{
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->n_items = n_items;
    r->session_items = session_items;
    r->steps = steps;
    r->weighting = weighting;
    size_t n = n_items ? n_items : 1;
    r->succ = calloc(n, sizeof(*r->succ));
    r->n_succ = calloc(n, sizeof(uint32_t));
    r->cap_succ = calloc(n, sizeof(uint32_t));
    r->mark = calloc(n, sizeof(uint32_t));
    if (r->succ == NULL || r->n_succ == NULL || r->cap_succ == NULL || r->mark == NULL) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        exit(1);
    }
}

void rules_free(rules_t *r)
{
    for (uint32_t i = 0; i < r->n_items && r->succ != NULL; i++)
        free(r->succ[i]);
    free(r->succ);
    free(r->n_succ);
    free(r->cap_succ);
    free(r->mark);
    free(r->keys);
    free(r->slots);
    memset(r, 0, sizeof(*r));
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Open addressing over (src, dst) pairs; a slot holds the pair + 1 (0: empty) and the rule's
 * index in succ[src]. Kept at most half full. */
static void table_grow(rules_t *r)
{
    uint64_t cap = r->cap ? r->cap * 2 : 1 << 16;
    uint64_t *keys = calloc(cap, sizeof(uint64_t));
    uint32_t *slots = malloc(cap * sizeof(uint32_t));
    if (keys == NULL || slots == NULL) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        exit(1);
    }
    for (uint64_t i = 0; i < r->cap; i++) {
        if (r->keys[i] == 0)
            continue;
        uint64_t h = mix64(r->keys[i]) & (cap - 1);
        while (keys[h] != 0)
            h = (h + 1) & (cap - 1);
        keys[h] = r->keys[i];
        slots[h] = r->slots[i];
    }
    free(r->keys);
    free(r->slots);
    r->keys = keys;
    r->slots = slots;
    r->cap = cap;
}

/* Adds `w` to the rule src -> dst, creating it (after src's existing rules) if new. */
static void rule_add(rules_t *r, uint32_t src, uint32_t dst, double w)
{
    if (2 * (r->n + 1) > r->cap)
        table_grow(r);
    uint64_t key = (((uint64_t)src << 32) | dst) + 1;
    uint64_t h = mix64(key) & (r->cap - 1);
    while (r->keys[h] != 0 && r->keys[h] != key)
        h = (h + 1) & (r->cap - 1);
    if (r->keys[h] == key) {
        r->succ[src][r->slots[h]].w += w;
        return;
    }
    if (r->n_succ[src] == r->cap_succ[src]) {
        r->cap_succ[src] = r->cap_succ[src] ? r->cap_succ[src] * 2 : 4;
        r->succ[src] = xrealloc(r->succ[src], r->cap_succ[src] * sizeof(rules_rule_t));
    }
    r->keys[h] = key;
    r->slots[h] = r->n_succ[src];
    r->succ[src][r->n_succ[src]++] = (rules_rule_t){.dst = dst, .w = w};
    r->n++;
}

void rules_add_session(rules_t *r, const uint32_t *items, uint32_t n)
{
    for (uint32_t q = 1; q < n; q++) {
        if (r->kind == RULES_MARKOV) {
            rule_add(r, items[q - 1], items[q], 1.0);
        } else if (r->kind == RULES_SR) {
            for (uint32_t i = 1; i <= r->steps && i <= q; i++)
                rule_add(r, items[q - i], items[q], sr_weight(r->weighting, i));
        } else {
            /* ar.py: the earlier item's rule first, then the reverse; an item met twice pairs
             * with itself, one rule counted twice. */
            for (uint32_t p = 0; p < q; p++) {
                rule_add(r, items[p], items[q], 1.0);
                rule_add(r, items[q], items[p], 1.0);
            }
        }
    }
}

uint32_t rules_rank(rules_t *r, const uint32_t *cur, uint32_t n, uint32_t *out)
{
    if (n == 0)
        return 0;
    r->serial++;
    for (uint32_t i = 0; i < n; i++)
        r->mark[cur[i]] = r->serial;
    const rules_rule_t *succ = r->succ[cur[n - 1]];
    double top_w[EVAL_K];
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n_succ[cur[n - 1]]; i++) {
        double w = succ[i].w;
        if (w <= 0 || (!r->session_items && r->mark[succ[i].dst] == r->serial))
            continue;
        if (k == EVAL_K && !(w > top_w[k - 1]))
            continue;
        /* Insertion keeps equal weights in the order the rules were made. */
        uint32_t p = k < EVAL_K ? k++ : EVAL_K - 1;
        while (p > 0 && w > top_w[p - 1]) {
            out[p] = out[p - 1];
            top_w[p] = top_w[p - 1];
            p--;
        }
        out[p] = succ[i].dst;
        top_w[p] = w;
    }
    return k;
}
