/* SPDX-License-Identifier: Apache-2.0 */
/* The content model's candidate source: for each content feature (a category or a tag),
 * the items carrying it, the most popular first. Rebuilt from the catalog when it changes,
 * not on the event path. */
#include "engine/features.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

void rc_features_free(rc_feature_index_t *x)
{
    free(x->keys);
    free(x->first);
    free(x->count);
    free(x->items);
    memset(x, 0, sizeof(*x));
}

typedef struct {
    uint32_t feat, item;
    float popularity;
} feat_pair_t;

static int by_feature_then_popularity(const void *a, const void *b)
{
    const feat_pair_t *x = a, *y = b;
    if (x->feat != y->feat)
        return x->feat < y->feat ? -1 : 1;
    if (x->popularity != y->popularity)
        return x->popularity > y->popularity ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* One sort of every (feature, item) pair, then the first RC_FEATURE_LIST of each feature. */
int rc_features_build(rc_feature_index_t *x, const rc_catalog_t *c)
{
    size_t n = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (rc_item_recommendable(&c->items[i]))
            n += c->items[i].n_feat;
    feat_pair_t *pairs = malloc((n ? n : 1) * sizeof(*pairs));
    if (pairs == NULL)
        return RC_ENOMEM;
    n = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        const rc_item_t *it = &c->items[i];
        if (!rc_item_recommendable(it))
            continue;
        for (uint8_t f = 0; f < it->n_feat; f++)
            pairs[n++] = (feat_pair_t){it->feat[f], i, it->popularity};
    }
    qsort(pairs, n, sizeof(*pairs), by_feature_then_popularity);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || pairs[i].feat != pairs[i - 1].feat;
    uint32_t cap = 16;
    while (cap < distinct * 2)
        cap *= 2;
    rc_feature_index_t nx = {0};
    nx.cap = cap;
    nx.keys = calloc(cap, sizeof(uint32_t));
    nx.first = calloc(cap, sizeof(uint32_t));
    nx.count = calloc(cap, sizeof(uint8_t));
    nx.items = malloc((distinct ? distinct : 1) * RC_FEATURE_LIST * sizeof(uint32_t));
    if (!nx.keys || !nx.first || !nx.count || !nx.items) {
        rc_features_free(&nx);
        free(pairs);
        return RC_ENOMEM;
    }
    uint32_t used = 0;
    for (size_t i = 0; i < n;) {
        uint32_t feat = pairs[i].feat, slot = (feat * 2654435761u) & (cap - 1);
        while (nx.count[slot] != 0)
            slot = (slot + 1) & (cap - 1);
        nx.keys[slot] = feat;
        nx.first[slot] = used;
        for (; i < n && pairs[i].feat == feat; i++)
            if (nx.count[slot] < RC_FEATURE_LIST)
                nx.items[used + nx.count[slot]++] = pairs[i].item;
        used += nx.count[slot];
    }
    free(pairs);
    nx.generation = c->generation;
    rc_features_free(x);
    *x = nx;
    return 0;
}

const uint32_t *rc_features_items(const rc_feature_index_t *x, uint32_t feat, uint32_t *n)
{
    *n = 0;
    if (x->cap == 0)
        return NULL;
    for (uint32_t slot = (feat * 2654435761u) & (x->cap - 1); x->count[slot] != 0;
         slot = (slot + 1) & (x->cap - 1)) {
        if (x->keys[slot] == feat) {
            *n = x->count[slot];
            return x->items + x->first[slot];
        }
    }
    return NULL;
}
