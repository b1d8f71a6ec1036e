/* SPDX-License-Identifier: Apache-2.0 */
/* Reasons: why a ranked item is in a list, as data (a stable code and what it refers to) and
 * in plain words (`why`), the second made from the first (docs/engine.md, "Ranking one
 * list"; PROTOCOL.md, `recs`). */
#ifndef RC_REASONS_H
#define RC_REASONS_H

#include "engine/engine.h"
#include "util/text.h"

#include <stddef.h>
#include <stdint.h>

/* The reason codes, in the order of rc_reason_code_name(). Stable: they are on the wire. */
typedef enum {
    RC_REASON_CO_VISITED = 0,   /* users who acted on `item` (of the session) acted on this too */
    RC_REASON_SIMILAR,          /* like `item`, of the session, of the same `category` */
    RC_REASON_CATEGORY,         /* of `category`, which the user leans towards */
    RC_REASON_TRENDING,         /* trending with everyone */
    RC_REASON_TRENDING_CONTEXT, /* trending in the user's `segment`: device class or daypart */
    RC_REASON_TRENDING_LOCALE,  /* trending in the user's `locale` */
    RC_REASON_PINNED,           /* a business rule put it at its place */
    RC_REASON_REPEAT,           /* of the session: the user did `kind` with it `age_s` ago */
    RC_REASON_NEW_ITEM,         /* new in the catalog, given a place to gather data */
    RC_REASON_POPULAR,          /* popular (in `category` when it has one) */
    RC_REASON_COUNT
} rc_reason_code_t;

/* A reason as data. What does not apply is -1, 0 or NULL. */
typedef struct rc_reason {
    uint8_t code;        /* rc_reason_code_t */
    uint8_t kind;        /* repeat: rc_event_kind_t; RC_EVENT_KIND_COUNT when unknown */
    uint16_t category;   /* a catalog category index; 0: none */
    int64_t item;        /* a catalog item index, or -1 */
    int64_t age_s;       /* repeat: seconds since the user acted on it, or -1 */
    const char *segment; /* trending_context: "mobile", "evening", ... (static), or NULL */
    const char *locale;  /* trending_locale: the tag (borrowed from the engine), or NULL */
} rc_reason_t;

/** The wire name of a reason code ("co_visited", ...). */
const char *rc_reason_code_name(int code);

/** The reason of ranked item `r` of user `u`, as data. */
void rc_reason_of(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r,
                  rc_reason_t *out);

/** Reason `why` in plain words into `buf` (`len` bytes, NUL-terminated, cut to fit), e.g.
 * "Viewed together with Red Mug": names of items and display names of categories, never
 * ids, slugs or locale tags. Returns the words as measured text (in `buf`; its length without
 * the NUL, and whether JSON needs to escape any of it), so the encoders need not scan them. */
rc_text_t rc_reason_words(const rc_engine_t *e, const rc_reason_t *why, char *buf, size_t len);

/** Both steps: the reason of ranked item `r` of user `u` in words. */
void rc_reason_text(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                    size_t len);

#endif
