/* SPDX-License-Identifier: Apache-2.0 */
/* Reasons: a ranked item's `why`, in words (docs/engine.md, "Ranking one list"). */
#ifndef RC_REASONS_H
#define RC_REASONS_H

#include "engine/engine.h"

#include <stddef.h>

/** The reason of ranked item `r` of user `u` into `buf` (`len` bytes, NUL-terminated, cut
 * to fit), e.g. "Viewed together with Red Mug". */
void rc_reason_text(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                    size_t len);

#endif
