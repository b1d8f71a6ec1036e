/* SPDX-License-Identifier: Apache-2.0 */
/* Catalog storage and the JSON-lines loader. Items are never moved once added, so an
 * index is a stable handle for every model; removal only flags the item. */
#include "engine/catalog.h"
#include "util/error.h"
#include "util/hugemem.h"
#include "util/log.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_NONE 0xffff /* no entry (rc_pending_item_t.older, .newer) */
#include <xxhash.h>

uint32_t rc_feature_id(char prefix, const char *word, size_t len)
{
    /* The prefix separates a category from a tag of the same spelling. */
    XXH64_hash_t h = XXH3_64bits_withSeed(word, len, (XXH64_hash_t)(unsigned char)prefix);
    return (uint32_t)(h ^ (h >> 32));
}

int rc_catalog_init(rc_catalog_t *c, uint32_t max_items, bool open)
{
    memset(c, 0, sizeof(*c));
    c->max = max_items;
    c->open = open;
    c->learned_max = 10000;
    c->learn_users = 3;
    rc_strmap_init(&c->by_id);
    rc_strmap_init(&c->category_by_name);
    rc_strmap_init(&c->pending_by_id);
    if (open && (c->pending = calloc(RC_CATALOG_PENDING, sizeof(*c->pending))) == NULL)
        return RC_ENOMEM;
    for (uint16_t i = 0; open && i < RC_CATALOG_PENDING; i++) {
        c->pending[i].older = i == 0 ? PENDING_NONE : (uint16_t)(i - 1);
        c->pending[i].newer = i + 1 == RC_CATALOG_PENDING ? PENDING_NONE : (uint16_t)(i + 1);
    }
    c->pending_oldest = 0;
    c->pending_newest = RC_CATALOG_PENDING - 1;
    c->categories = malloc(16 * sizeof(char *));
    c->category_names = calloc(16, sizeof(char *));
    c->category_texts = calloc(16, sizeof(rc_text_t));
    c->category_name_texts = calloc(16, sizeof(rc_text_t));
    if (c->categories == NULL || c->category_names == NULL || c->category_texts == NULL ||
        c->category_name_texts == NULL || (c->categories[0] = strdup("")) == NULL) {
        free(c->categories);
        free(c->category_names);
        free(c->category_texts);
        free(c->category_name_texts);
        c->categories = c->category_names = NULL;
        c->category_texts = c->category_name_texts = NULL;
        return RC_ENOMEM;
    }
    c->cap_categories = 16;
    c->n_categories = 1;
    return 0;
}

void rc_catalog_free(rc_catalog_t *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->labels[i].name != c->labels[i].id)
            free(c->labels[i].name);
        free(c->labels[i].id);
    }
    rc_huge_free(c->items, (size_t)c->cap * sizeof(*c->items));
    free(c->labels);
    for (uint32_t i = 0; i < c->n_categories; i++) {
        free(c->categories[i]);
        free(c->category_names[i]);
    }
    free(c->categories);
    free(c->category_names);
    free(c->category_texts);
    free(c->category_name_texts);
    rc_strmap_free(&c->by_id);
    rc_strmap_free(&c->category_by_name);
    rc_strmap_free(&c->pending_by_id);
    free(c->pending);
    memset(c, 0, sizeof(*c));
}

int64_t rc_catalog_find(const rc_catalog_t *c, const char *id, size_t len)
{
    uint64_t idx;
    return rc_strmap_get(&c->by_id, id, len, &idx) ? (int64_t)idx : -1;
}

int32_t rc_catalog_category(const rc_catalog_t *c, const char *name, size_t len)
{
    uint64_t idx;
    return rc_strmap_get(&c->category_by_name, name, len, &idx) ? (int32_t)idx : -1;
}

int rc_catalog_set_category_name(rc_catalog_t *c, uint32_t category, const char *name)
{
    if (category == 0 || category >= c->n_categories)
        return 0;
    char *copy = NULL;
    if (name != NULL && *name && (copy = strdup(name)) == NULL)
        return RC_ENOMEM;
    free(c->category_names[category]);
    c->category_names[category] = copy;
    c->category_name_texts[category] = rc_text_measure(copy);
    return 0;
}

static int intern_category(rc_catalog_t *c, const char *name, uint16_t *out)
{
    size_t len = strlen(name);
    int32_t found = rc_catalog_category(c, name, len);
    if (len == 0) {
        *out = 0;
        return 0;
    }
    if (found >= 0) {
        *out = (uint16_t)found;
        return 0;
    }
    if (c->n_categories >= UINT16_MAX)
        return RC_EFULL;
    if (c->n_categories == c->cap_categories) {
        char **p = realloc(c->categories, 2 * c->cap_categories * sizeof(char *));
        if (p == NULL)
            return RC_ENOMEM;
        c->categories = p;
        p = realloc(c->category_names, 2 * c->cap_categories * sizeof(char *));
        if (p == NULL)
            return RC_ENOMEM;
        memset(p + c->cap_categories, 0, c->cap_categories * sizeof(char *));
        c->category_names = p;
        for (int t = 0; t < 2; t++) {
            rc_text_t **texts = t == 0 ? &c->category_texts : &c->category_name_texts;
            rc_text_t *q = realloc(*texts, 2 * c->cap_categories * sizeof(rc_text_t));
            if (q == NULL)
                return RC_ENOMEM;
            memset(q + c->cap_categories, 0, c->cap_categories * sizeof(rc_text_t));
            *texts = q;
        }
        c->cap_categories *= 2;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return RC_ENOMEM;
    if (rc_strmap_put(&c->category_by_name, copy, len, c->n_categories) != 0) {
        free(copy);
        return RC_ENOMEM;
    }
    c->categories[c->n_categories] = copy;
    c->category_texts[c->n_categories] = rc_text_measure_n(copy, len);
    *out = (uint16_t)c->n_categories++;
    return 0;
}

static int new_slot(rc_catalog_t *c, const char *id, size_t len, uint32_t *idx)
{
    if (c->n >= c->max)
        return RC_EFULL;
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 1024;
        rc_item_label_t *l = realloc(c->labels, cap * sizeof(*l));
        if (l == NULL)
            return RC_ENOMEM;
        c->labels = l;
        rc_item_t *p = rc_huge_realloc(c->items, (size_t)c->cap * sizeof(*p), cap * sizeof(*p));
        if (p == NULL)
            return RC_ENOMEM;
        c->items = p;
        c->cap = cap;
    }
    rc_item_t *it = &c->items[c->n];
    rc_item_label_t *l = &c->labels[c->n];
    memset(it, 0, sizeof(*it));
    /* All `len` bytes, whatever they hold: an id read back from a snapshot is not checked
     * for NUL bytes, and strndup() would stop at the first one, leaving id_len past the
     * copy. */
    if ((l->id = malloc(len + 1)) == NULL)
        return RC_ENOMEM;
    memcpy(l->id, id, len);
    l->id[len] = '\0';
    l->name = l->id;
    l->id_len = l->name_len = (uint32_t)len;
    l->id_plain = l->name_plain = rc_text_measure_n(l->id, len).plain;
    it->price = -1;
    if (rc_strmap_put(&c->by_id, l->id, len, c->n) != 0) {
        free(l->id);
        return RC_ENOMEM;
    }
    *idx = c->n++;
    return 0;
}

/* Category weighs 2 (sqrt 4) and each tag 1: two items of one category are similar even
 * with no tag in common, and shared tags separate them within it. */
static void set_features(rc_item_t *it, const char *category, const char *const *tags,
                         uint32_t n_tags)
{
    uint32_t n = 0;
    float sq = 0;
    if (it->category != 0) {
        it->feat[n++] = rc_feature_id('c', category, strlen(category));
        sq += 4;
    }
    for (uint32_t i = 0; i < n_tags && n < RC_ITEM_FEATURES; i++) {
        if (tags[i] == NULL || tags[i][0] == '\0')
            continue;
        it->feat[n++] = rc_feature_id('t', tags[i], strlen(tags[i]));
        sq += 1;
    }
    it->n_feat = (uint8_t)n;
    it->feat_norm = sqrtf(sq);
}

int rc_catalog_upsert(rc_catalog_t *c, const char *id, const char *name, const char *category,
                      const char *const *tags, uint32_t n_tags, double price, double popularity,
                      uint32_t *idx)
{
    size_t len = strlen(id);
    int64_t found = rc_catalog_find(c, id, len);
    uint32_t i;
    int rc;

    if (found >= 0) {
        i = (uint32_t)found;
    } else if ((rc = new_slot(c, id, len, &i)) != 0) {
        return rc;
    }
    rc_item_t *it = &c->items[i];
    rc_item_label_t *l = &c->labels[i];
    uint16_t cat = 0;
    if (category != NULL && (rc = intern_category(c, category, &cat)) != 0)
        return rc;
    if (name != NULL && *name) {
        char *copy = strdup(name);
        if (copy == NULL)
            return RC_ENOMEM;
        if (l->name != l->id)
            free(l->name);
        l->name = copy;
        rc_text_t t = rc_text_measure(copy);
        l->name_len = t.n;
        l->name_plain = t.plain;
    }
    if (it->flags & RC_ITEM_LEARNED)
        c->n_learned--; /* the operator's item now */
    it->category = cat;
    it->price = price >= 0 ? price : -1.0;
    it->popularity = popularity > 0 ? (float)popularity : 0.0f;
    it->flags = 0;
    set_features(it, category ? category : "", tags, n_tags);
    c->generation++;
    *idx = i;
    return 0;
}

static int64_t learn(rc_catalog_t *c, const char *id, size_t len)
{
    uint32_t idx;
    if (new_slot(c, id, len, &idx) != 0)
        return -1;
    c->items[idx].flags = RC_ITEM_LEARNED;
    c->n_learned++;
    return idx;
}

int64_t rc_catalog_resolve(rc_catalog_t *c, const char *id, size_t len)
{
    int64_t found = rc_catalog_find(c, id, len);
    if (found >= 0 || !c->open)
        return found;
    return learn(c, id, len);
}

void rc_catalog_set_learning(rc_catalog_t *c, uint32_t learned_max, uint32_t learn_users)
{
    c->learned_max = learned_max;
    c->learn_users = (uint8_t)(learn_users < 1                      ? 1
                               : learn_users > RC_CATALOG_TRUST_MAX ? RC_CATALOG_TRUST_MAX
                                                                    : learn_users);
}

/* Pending entries are kept in the order they were last named, free ones oldest: the entry a
 * new id takes is always the oldest, found at once. (A scan of the 1,024 entries for each new
 * id cost 60% of reading back a log of 5,000 made-up ids.) */
static void pending_unlink(rc_catalog_t *c, uint16_t i)
{
    rc_pending_item_t *p = &c->pending[i];
    if (p->older != PENDING_NONE)
        c->pending[p->older].newer = p->newer;
    else
        c->pending_oldest = p->newer;
    if (p->newer != PENDING_NONE)
        c->pending[p->newer].older = p->older;
    else
        c->pending_newest = p->older;
}

static void pending_make_newest(rc_catalog_t *c, uint16_t i)
{
    pending_unlink(c, i);
    c->pending[i].older = c->pending_newest;
    c->pending[i].newer = PENDING_NONE;
    c->pending[c->pending_newest].newer = i; /* there are other entries: never empty */
    c->pending_newest = i;
}

static void pending_make_oldest(rc_catalog_t *c, uint16_t i)
{
    pending_unlink(c, i);
    c->pending[i].newer = c->pending_oldest;
    c->pending[i].older = PENDING_NONE;
    c->pending[c->pending_oldest].older = i;
    c->pending_oldest = i;
}

/* The pending entry of `id`, made (in a free entry, or the least recently named one's)
 * when it has none; it becomes the most recently named. */
static rc_pending_item_t *pending_entry(rc_catalog_t *c, const char *id, size_t len)
{
    uint64_t at;
    if (rc_strmap_get(&c->pending_by_id, id, len, &at)) {
        pending_make_newest(c, (uint16_t)at);
        return &c->pending[at];
    }
    uint16_t pick = c->pending_oldest;
    rc_pending_item_t *p = &c->pending[pick];
    if (p->len > 0)
        rc_strmap_del(&c->pending_by_id, p->id, p->len);
    uint16_t older = p->older, newer = p->newer;
    memset(p, 0, sizeof(*p));
    p->older = older, p->newer = newer;
    pending_make_newest(c, pick);
    memcpy(p->id, id, len);
    p->len = (uint8_t)len;
    /* The map's key is the entry's own copy, stable while the entry holds it. */
    if (rc_strmap_put(&c->pending_by_id, p->id, len, pick) != 0) {
        p->len = 0;
        pending_make_oldest(c, pick);
        return NULL;
    }
    return p;
}

static void pending_drop(rc_catalog_t *c, rc_pending_item_t *p)
{
    rc_strmap_del(&c->pending_by_id, p->id, p->len);
    p->len = p->n_users = 0;
    p->id[0] = '\0';
    pending_make_oldest(c, (uint16_t)(p - c->pending));
}

int64_t rc_catalog_learn_from(rc_catalog_t *c, const char *id, size_t len, uint32_t user_key)
{
    int64_t found = rc_catalog_find(c, id, len);
    if (found >= 0 || !c->open)
        return found;
    if (len == 0 || len >= sizeof(c->pending[0].id) || c->pending == NULL)
        return -1;
    if (user_key == 0)
        return RC_CATALOG_UNTRUSTED;
    rc_pending_item_t *p = pending_entry(c, id, len);
    if (p == NULL)
        return -1;
    bool seen = false;
    for (uint8_t i = 0; i < p->n_users && !seen; i++)
        seen = p->users[i] == user_key;
    if (!seen && p->n_users < RC_CATALOG_TRUST_MAX)
        p->users[p->n_users++] = user_key;
    if (p->n_users < c->learn_users || c->n_learned >= c->learned_max)
        return RC_CATALOG_UNTRUSTED;
    int64_t idx = learn(c, id, len);
    if (idx >= 0)
        pending_drop(c, p);
    return idx >= 0 ? idx : RC_CATALOG_UNTRUSTED;
}

int rc_catalog_upsert_json(rc_catalog_t *c, const json_t *obj, uint32_t *idx, char *err,
                           size_t errlen)
{
    json_t *j = (json_t *)obj; /* jansson's getters take no const */
    if (!json_is_object(j)) {
        snprintf(err, errlen, "not an object");
        return RC_EPARSE;
    }
    const char *id = json_string_value(json_object_get(j, "id"));
    if (id == NULL || *id == '\0' || strlen(id) > 64) {
        snprintf(err, errlen, "missing or bad \"id\"");
        return RC_EPARSE;
    }
    const char *tags[RC_ITEM_FEATURES];
    uint32_t n_tags = 0;
    json_t *jt = json_object_get(j, "tags");
    for (size_t i = 0; json_is_array(jt) && i < json_array_size(jt) && n_tags < RC_ITEM_FEATURES;
         i++) {
        const char *t = json_string_value(json_array_get(jt, i));
        if (t != NULL)
            tags[n_tags++] = t;
    }
    json_t *jp = json_object_get(j, "price");
    json_t *jpop = json_object_get(j, "popularity");
    int rc = rc_catalog_upsert(c, id, json_string_value(json_object_get(j, "name")),
                               json_string_value(json_object_get(j, "category")), tags, n_tags,
                               json_is_number(jp) ? json_number_value(jp) : -1,
                               json_is_number(jpop) ? json_number_value(jpop) : 0, idx);
    if (rc == 0 && json_is_false(json_object_get(j, "in_stock")))
        c->items[*idx].flags |= RC_ITEM_OUT_OF_STOCK;
    const char *cname = json_string_value(json_object_get(j, "category_name"));
    if (rc == 0 && cname != NULL && *cname != '\0' && strlen(cname) <= 64)
        rc = rc_catalog_set_category_name(c, c->items[*idx].category, cname);
    if (rc != 0)
        snprintf(err, errlen, "%s", rc_strerror(rc));
    return rc;
}

int rc_catalog_remove(rc_catalog_t *c, const char *id, size_t len)
{
    int64_t idx = rc_catalog_find(c, id, len);
    if (idx < 0)
        return RC_ENOENT;
    c->items[idx].flags |= RC_ITEM_REMOVED;
    c->generation++;
    return 0;
}

static int load_line(rc_catalog_t *c, const char *line, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    uint32_t idx;
    if (j == NULL) {
        snprintf(err, errlen, "%s", jerr.text);
        return RC_EPARSE;
    }
    int rc = rc_catalog_upsert_json(c, j, &idx, err, errlen);
    json_decref(j);
    return rc;
}

int rc_catalog_load(rc_catalog_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "catalog %s: cannot open", path);
        return RC_EIO;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        char inner[160];
        if ((rc = load_line(c, line, (size_t)n, inner, sizeof(inner))) != 0) {
            snprintf(err, errlen, "catalog %s:%d: %s", path, lineno, inner);
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}
