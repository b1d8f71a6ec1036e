/* SPDX-License-Identifier: Apache-2.0 */
/* The item catalog: ids, display fields and content features, indexed densely so models
 * can keep per-item state in plain arrays. Loaded from JSON lines at start; in open mode,
 * items first seen in events are added (learned) with no features, once trusted: events from
 * `learn_users` distinct users named them, and no more than `learned_max` at a time. */
#ifndef RC_CATALOG_H
#define RC_CATALOG_H

#include "util/strmap.h"
#include "util/text.h"

#include <stdbool.h>
#include <stdint.h>

#define RC_ITEM_FEATURES 12 /* category + up to 11 tags */

enum {
    RC_ITEM_REMOVED = 1 << 0,      /* deleted from the catalog: never recommended */
    RC_ITEM_OUT_OF_STOCK = 1 << 1, /* kept for models, not recommended */
    RC_ITEM_LEARNED = 1 << 2,      /* added from traffic (open catalog), no features */
};

/* What a rank reads of a candidate, in one cache line: the catalog array is 64-byte aligned
 * (hugemem), so a candidate costs one miss, not two. Its id and name, read only for the few
 * items a list shows, are in the catalog's `labels`, at the same index. */
typedef struct rc_item {
    uint16_t category; /* index into categories; 0 is "none" */
    uint8_t n_feat;
    uint8_t flags;
    float price;                     /* < 0 when unknown */
    float popularity;                /* prior from the catalog file (e.g. past orders), >= 0 */
    float feat_norm;                 /* L2 norm of the feature vector */
    uint32_t feat[RC_ITEM_FEATURES]; /* hashed feature ids: feat[0] is the category's */
} rc_item_t;

_Static_assert(sizeof(rc_item_t) == 64, "an item is one cache line");

typedef struct rc_item_label {
    char *id;   /* NUL-terminated, owned */
    char *name; /* owned; equals id for learned items */
    /* Measured when set, so the lists' encoders neither scan for the end nor for bytes to
     * escape (rc_item_id_text, rc_item_name_text). */
    uint32_t id_len, name_len;
    bool id_plain, name_plain; /* no byte needs escaping in JSON */
} rc_item_label_t;

/* The longest id traffic may name into an open catalog (rc_catalog_learn_from). */
#define RC_CATALOG_ID_MAX 64

/* An id events named that is not (yet) an item: which distinct users named it. */
#define RC_CATALOG_PENDING   1024 /* ids tracked at a time; the least recently named goes */
#define RC_CATALOG_TRUST_MAX 16   /* the most distinct users learn_users may ask for */

typedef struct rc_pending_item {
    char id[RC_CATALOG_ID_MAX + 1]; /* "" when free */
    uint8_t len, n_users;
    uint32_t users[RC_CATALOG_TRUST_MAX];
    uint16_t older, newer; /* the order of naming (free entries oldest), for eviction */
} rc_pending_item_t;

typedef struct rc_catalog {
    rc_item_t *items;
    rc_item_label_t *labels; /* labels[i] names items[i] */
    uint32_t n, cap, max;
    rc_strmap_t by_id;
    char **categories; /* categories[0] = "" */
    /* Each category's display name ("Candles & lights" for "candles-lights"), owned, or NULL
     * when the catalog gave none: the reasons in words use it (reasons.c). */
    char **category_names;
    /* The same two, measured (rc_text_t) when set; n 0 and p NULL where there is none. */
    rc_text_t *category_texts, *category_name_texts;
    uint32_t n_categories, cap_categories;
    rc_strmap_t category_by_name;
    bool open;
    uint32_t generation; /* grows with every upsert: derived indexes rebuild when it moves */
    /* Open mode: learning from traffic (rc_catalog_learn_from()). */
    uint32_t learned_max, n_learned;
    uint8_t learn_users;
    rc_pending_item_t *pending; /* RC_CATALOG_PENDING, allocated when open */
    rc_strmap_t pending_by_id;  /* id -> index in pending */
    uint16_t pending_oldest, pending_newest;
} rc_catalog_t;

/* rc_catalog_learn_from(): the id is known to traffic but not trusted (yet) as an item. */
#define RC_CATALOG_UNTRUSTED (-2)

static inline const char *rc_item_id(const rc_catalog_t *c, uint32_t i)
{
    return c->labels[i].id;
}

static inline const char *rc_item_name(const rc_catalog_t *c, uint32_t i)
{
    return c->labels[i].name;
}

/** Item `i`'s id as measured text (borrowed like rc_item_id()). */
static inline rc_text_t rc_item_id_text(const rc_catalog_t *c, uint32_t i)
{
    const rc_item_label_t *l = &c->labels[i];
    return (rc_text_t){l->id, l->id_len, l->id_plain};
}

/** Item `i`'s name as measured text (borrowed like rc_item_name()). */
static inline rc_text_t rc_item_name_text(const rc_catalog_t *c, uint32_t i)
{
    const rc_item_label_t *l = &c->labels[i];
    return (rc_text_t){l->name, l->name_len, l->name_plain};
}

/** Prepares an empty catalog holding at most `max_items`; `open` allows learning items
 * from events (rc_catalog_learn_from(): at most 10,000 learned items, each once 3 distinct
 * users named it, until rc_catalog_set_learning()). Caller frees with rc_catalog_free().
 * Returns 0 or RC_ENOMEM. */
int rc_catalog_init(rc_catalog_t *c, uint32_t max_items, bool open);

/** How an open catalog learns: at most `learned_max` learned items at a time (an upsert
 * makes one a catalog item), each once `learn_users` (1..RC_CATALOG_TRUST_MAX) distinct users
 * named it. */
void rc_catalog_set_learning(rc_catalog_t *c, uint32_t learned_max, uint32_t learn_users);
void rc_catalog_free(rc_catalog_t *c);

/** Loads JSON lines `{"id","name","category","category_name"?,"tags":[..],"price",
 * "popularity"?}` (only `id` required; `category_name` names the item's category for all
 * its items, so once per category is enough). Returns 0 or a negative code with a message in `err`.
 */
int rc_catalog_load(rc_catalog_t *c, const char *path, char *err, size_t errlen);

/** Adds or replaces an item from its fields (borrowed; copied). `tags` may be NULL.
 * On success stores its index in *idx. Returns 0, RC_EFULL or RC_ENOMEM. */
int rc_catalog_upsert(rc_catalog_t *c, const char *id, const char *name, const char *category,
                      const char *const *tags, uint32_t n_tags, double price, double popularity,
                      uint32_t *idx);

/** Adds or replaces one item from a JSON object `{"id","name"?,"category"?,"category_name"?,
 * "tags"?,"price"?,"popularity"?,"in_stock"?}` (borrowed); a `category_name` (1..64 bytes)
 * becomes its category's display name. The id is 1..64 bytes. On success stores its index
 * in *idx; otherwise returns RC_EPARSE (with the reason in `err`), RC_EFULL or RC_ENOMEM. */
struct json_t;
int rc_catalog_upsert_json(rc_catalog_t *c, const struct json_t *obj, uint32_t *idx, char *err,
                           size_t errlen);

/** Removes an item: it stays indexed (models keep their arrays) but is never recommended
 * again, until an upsert brings it back. Returns 0 or RC_ENOENT. */
int rc_catalog_remove(rc_catalog_t *c, const char *id, size_t len);

/** Index of an item by id, or -1. */
int64_t rc_catalog_find(const rc_catalog_t *c, const char *id, size_t len);

/** Finds an item, learning it at once when the catalog is open: for sources the operator
 * trusts (--import). Returns its index, or -1 when it is unknown and the catalog is closed
 * (or full). */
int64_t rc_catalog_resolve(rc_catalog_t *c, const char *id, size_t len);

/** Finds an item named by traffic (an event of the user `user_key`, a hash, 0: unknown).
 * In an open catalog an unknown id is learned once `learn_users` distinct users named it and
 * fewer than `learned_max` learned items exist; until then (or with user_key 0) it is
 * RC_CATALOG_UNTRUSTED. Returns its index, RC_CATALOG_UNTRUSTED, or -1 (a closed catalog, an
 * id too long, out of memory). Learned items are counted in n_learned. */
int64_t rc_catalog_learn_from(rc_catalog_t *c, const char *id, size_t len, uint32_t user_key);

/** Whether an id of `len` bytes that rc_catalog_find() does not know may still become an
 * item through rc_catalog_learn_from() (an open catalog, an id of 1..RC_CATALOG_ID_MAX
 * bytes): false where rc_catalog_learn_from() would return -1 without looking at the id.
 * Read only: a loop asks it of its copy before it submits the id (RC_OP_ITEM_SEEN). */
static inline bool rc_catalog_may_learn(const rc_catalog_t *c, size_t len)
{
    return c->open && c->pending != NULL && len > 0 && len <= RC_CATALOG_ID_MAX;
}

/** Sets the display name of category `category` (an index; 0 and unknown ones are
 * ignored) to `name` (borrowed; copied); NULL or "" forgets it. Returns 0 or RC_ENOMEM. */
int rc_catalog_set_category_name(rc_catalog_t *c, uint32_t category, const char *name);

/** The display name of category `category` (an index), or its name when the catalog gave
 * none; "" for 0 (borrowed until the category's name changes). */
static inline const char *rc_catalog_category_display(const rc_catalog_t *c, uint32_t category)
{
    if (category >= c->n_categories)
        return "";
    return c->category_names[category] != NULL ? c->category_names[category]
                                               : c->categories[category];
}

/** Category `category`'s name (its slug) as measured text; absent (p NULL) for 0 and
 * unknown ones. Borrowed until the catalog is freed. */
static inline rc_text_t rc_catalog_category_text(const rc_catalog_t *c, uint32_t category)
{
    if (category == 0 || category >= c->n_categories)
        return (rc_text_t){NULL, 0, false};
    return c->category_texts[category];
}

/** Category `category`'s display name as measured text; absent when the catalog gave none
 * (and for 0 and unknown ones). Borrowed until the category's name changes. */
static inline rc_text_t rc_catalog_category_name_text(const rc_catalog_t *c, uint32_t category)
{
    if (category == 0 || category >= c->n_categories)
        return (rc_text_t){NULL, 0, false};
    return c->category_name_texts[category];
}

/** Index of a category by name, or -1. */
int32_t rc_catalog_category(const rc_catalog_t *c, const char *name, size_t len);

/** Feature id of a category or a tag (the same hash the catalog uses for items). */
uint32_t rc_feature_id(char prefix, const char *word, size_t len);

/** Whether an item may be recommended (not removed, in stock). */
static inline bool rc_item_recommendable(const rc_item_t *it)
{
    return (it->flags & (RC_ITEM_REMOVED | RC_ITEM_OUT_OF_STOCK)) == 0;
}

#endif
