/* SPDX-License-Identifier: Apache-2.0 */
/* Business rules, set at run time through the admin API: boosts multiply the score of the
 * items they match (one item, a category, or a tag) and bring them into the candidates;
 * pins put an item at a fixed place of the lists of a surface (or of every surface),
 * whenever the item may be shown to that user at all (available, not excluded, within the
 * subscription's filters). Rules name items, categories and tags as the catalog does and
 * are resolved against it when it changes. */
#ifndef RC_RULES_H
#define RC_RULES_H

#include "engine/catalog.h"
#include "proto/proto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define RC_BOOSTS_MAX      64
#define RC_PINS_MAX        16
#define RC_BOOST_MAX       10.0 /* the largest factor */
#define RC_PIN_SURFACE_MAX 32

typedef enum { RC_BOOST_ITEM = 0, RC_BOOST_CATEGORY, RC_BOOST_TAG } rc_boost_kind_t;

typedef struct rc_boost {
    rc_boost_kind_t kind;
    char key[RC_ID_MAX + 1]; /* item id, category name, or tag */
    float factor;            /* > 0: below 1 buries, above 1 lifts */
} rc_boost_t;

typedef struct rc_pin {
    char item[RC_ID_MAX + 1];
    char surface[RC_PIN_SURFACE_MAX + 1]; /* "" for every surface */
    uint32_t position;                    /* 1-based */
    int64_t idx;                          /* resolved catalog index, or -1 */
} rc_pin_t;

typedef struct rc_rules {
    rc_boost_t boosts[RC_BOOSTS_MAX];
    uint32_t n_boosts;
    rc_pin_t pins[RC_PINS_MAX];
    uint32_t n_pins;
    /* Resolved (rc_rules_resolve): the product of the matching boosts per catalog item
     * (NULL when no boost), and the items boosts lift, for the candidates. */
    float *item_boost;
    uint32_t boost_cap;
    float boost_max; /* the largest of item_boost and 1 (items added since have 1) */
    uint32_t lifted[RC_BOOSTS_MAX];
    uint32_t n_lifted;
    int32_t lifted_categories[RC_BOOSTS_MAX];
    uint32_t n_lifted_categories;
    uint32_t lifted_tags[RC_BOOSTS_MAX]; /* feature ids */
    uint32_t n_lifted_tags;
    uint32_t generation; /* the catalog generation resolved against */
    bool resolved;
} rc_rules_t;

/** Reads rules from their JSON form into `r` (emptied first):
 *   {"boosts": [{"item"|"category"|"tag": S, "factor": 0 < x <= 10}, ...],
 *    "pins": [{"item": S, "position": 1..100, "surface"?: S}, ...]}
 * Both arrays are optional; unknown fields are refused. Nothing is resolved. Returns 0, or
 * RC_EINVAL with the reason in `err`. */
int rc_rules_from_json(rc_rules_t *r, json_t *j, char *err, size_t errlen);

/** The canonical JSON of `r` (what the API answers and the bus carries); caller frees. */
char *rc_rules_to_json(const rc_rules_t *r);

/** Resolves names against the catalog (when its generation moved since the last time, or
 * `force`). Returns 0 or RC_ENOMEM (then boosts are off until the next resolve). */
int rc_rules_resolve(rc_rules_t *r, const rc_catalog_t *c, bool force);

/** The largest boost of any item (at least 1). */
static inline float rc_rules_boost_max(const rc_rules_t *r)
{
    return r->item_boost != NULL ? r->boost_max : 1.0f;
}

/** The boost of catalog item `item` (1 when none). */
static inline float rc_rules_boost(const rc_rules_t *r, uint32_t item)
{
    return r->item_boost != NULL && item < r->boost_cap ? r->item_boost[item] : 1.0f;
}

void rc_rules_free(rc_rules_t *r);

#endif
