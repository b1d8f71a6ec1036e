/* SPDX-License-Identifier: Apache-2.0 */
/* Items by content feature (category or tag), the most popular first: the content model's
 * candidate source. Rebuilt from the catalog when it changes (rc_engine_refresh), not on the
 * event path; read by the ranker. */
#ifndef RC_FEATURES_H
#define RC_FEATURES_H

#include "engine/catalog.h"

#include <stdint.h>

#define RC_FEATURE_LIST 32 /* items kept per feature */

typedef struct rc_feature_index {
    uint32_t *keys; /* open addressing on feature ids; slot used when count > 0 */
    uint32_t *first;
    uint8_t *count;
    uint32_t cap; /* power of two, or 0 */
    uint32_t *items;
    uint32_t generation; /* the catalog generation it was built from */
} rc_feature_index_t;

/** Rebuilds `x` from the catalog's recommendable items. Returns 0, or RC_ENOMEM (then `x`
 * is unchanged). Caller frees with rc_features_free(). */
int rc_features_build(rc_feature_index_t *x, const rc_catalog_t *c);

/** The items carrying feature `feat`, most popular first (at most RC_FEATURE_LIST, `*n` of
 * them); borrowed until the next build. NULL with *n = 0 when none. */
const uint32_t *rc_features_items(const rc_feature_index_t *x, uint32_t feat, uint32_t *n);

/** Frees what `x` holds and leaves it empty (a zeroed index is empty too). */
void rc_features_free(rc_feature_index_t *x);

#endif
