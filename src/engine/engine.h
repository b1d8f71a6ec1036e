/* SPDX-License-Identifier: Apache-2.0 */
/* The recommendation engine: the catalog, the global models learned online from every
 * event (co-visitation, trending) and the ranker that turns one user's state into a list.
 * Ranking, reasons and lookups take a const engine and write nothing in it (the caller owns
 * the rank scratch), so threads may read one engine at once; changes come from one thread
 * (shared.h runs two copies for that). A rank touches no allocator in steady state.
 * The engine is opaque: callers go through the functions below. Its parts have headers of
 * their own (catalog.h, covisit.h, trending.h, features.h, rules.h, experiments.h,
 * ranker.h); engine_int.h holds the struct, for the engine's files and white-box tests. */
#ifndef RC_ENGINE_H
#define RC_ENGINE_H

#include "engine/catalog.h"
#include "engine/covisit.h"
#include "engine/rules.h"
#include "engine/trending.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <stdint.h>

#define RC_RECENT   32 /* items remembered per user session */
#define RC_SVEC     48 /* content features kept per user session */
#define RC_CATS     8  /* categories kept per user session */
#define RC_EXCLUDED 64 /* purchased or dismissed items kept per user session */
#define RC_LTVEC    16 /* content features of the long-term profile */

typedef struct rc_recent {
    uint32_t item;
    float w;
    uint32_t at_s; /* when (Unix seconds of the event's time), 0 when unknown */
    uint8_t kind;  /* what the user did (rc_event_kind_t); RC_EVENT_KIND_COUNT when unknown */
} rc_recent_t;

/* A user's state as the ranker sees it: what they did recently, the content they lean
 * towards, and what must not be shown. Embedded in the session; about 1.3 KB. */
typedef struct rc_user_state {
    rc_recent_t recent[RC_RECENT]; /* ring, newest at (head - 1) */
    uint8_t n_recent, head;
    uint8_t n_svec, n_cats;
    uint8_t n_excluded, excluded_head;
    uint8_t device;
    int16_t locale; /* a reference to the user's locale (rc_engine_locale), or -1 */
    int16_t tz_offset_min;
    uint32_t user_key; /* a hash of the user (0: unknown): locales earn segments by users */
    uint32_t svec_feat[RC_SVEC];
    float svec_w[RC_SVEC];
    uint16_t cats[RC_CATS];
    float cats_w[RC_CATS];
    uint32_t excluded[RC_EXCLUDED]; /* ring */
    uint32_t events;
    /* The long-term content vector, from the stored profile (decayed feature affinities of
     * every past session); the session's own is svec. */
    uint8_t n_ltvec;
    uint32_t ltvec_feat[RC_LTVEC];
    float ltvec_w[RC_LTVEC];
} rc_user_state_t;

/* Blend weights of the score components. The first is the sequential part's: what the
 * user's recent items predict, a mixture of two models, co-visitation and what directly
 * followed the item in view, `successor` (0..1) being the second's share (a list names both
 * "covisit"). The share is the engine's own (learned); in a variant's blend it is unused. */
typedef struct rc_blend {
    float covisit, content, trending, popular;
    float successor;
} rc_blend_t;

/* Whether a list may show items of the user's session again (PROTOCOL.md, subscribe
 * `repeat`). Purchased and dismissed items never come back. */
typedef enum {
    RC_REPEAT_NEVER = 0,   /* no item of the session: a discovery rail */
    RC_REPEAT_NOT_CURRENT, /* items of the session, but not the one in view */
    RC_REPEAT_ALLOWED,     /* items of the session, the one in view too */
    RC_REPEAT_COUNT
} rc_repeat_t;

/* What a subscription asks of the ranker. */
typedef struct rc_rank_spec {
    uint32_t k;
    int32_t category;            /* -1: any */
    double price_min, price_max; /* < 0: unbounded */
    const rc_blend_t *blend;     /* an experiment variant's blend (borrowed); NULL: the engine's */
    const char *surface;         /* for the pins of one surface (borrowed); NULL: none */
    uint8_t repeat;              /* rc_repeat_t */
} rc_rank_spec_t;

typedef enum {
    RC_SRC_COVISIT = 0,
    RC_SRC_CONTENT,
    RC_SRC_TRENDING,
    RC_SRC_POPULAR,
    RC_SRC_COUNT,                  /* the parts of the blended score; what follows is not one */
    RC_SRC_EXPLORE = RC_SRC_COUNT, /* a new item given a place to gather data */
    RC_SRC_PINNED,                 /* put at its place by a pin (rules.h) */
    RC_SRC_REPEAT                  /* an item of the session, again (rc_repeat_t) */
} rc_src_t;

#define RC_EXPLORE_POOL 64 /* new items without data that may get an exploration place */

typedef struct rc_ranked {
    uint32_t item;
    float score;
    uint8_t src;
    uint8_t kind; /* repeat: what the user last did with it (rc_event_kind_t), else
                   * RC_EVENT_KIND_COUNT (unknown) */
    int64_t ref;  /* the item that explains it (covisit), the trending segment that carried it
                   * (trending), how many seconds ago the user last acted on it (repeat), or -1 */
} rc_ranked_t;

typedef struct rc_engine rc_engine_t;
struct rc_experiment;

/** A new engine with an empty catalog of at most `max_items` (`catalog_open`: events may
 * add items). NULL when out of memory. Caller frees with rc_engine_free(). */
rc_engine_t *rc_engine_new(uint32_t max_items, bool catalog_open, uint32_t covisit_neighbors,
                           double covisit_half_life_s, double trending_half_life_s, double now_s);

/** Frees the engine and everything it holds. NULL is a no-op. */
void rc_engine_free(rc_engine_t *e);

/** The catalog (borrowed for the engine's life). Items are added and removed through
 * catalog.h; rc_engine_refresh() then rebuilds what depends on them. */
rc_catalog_t *rc_engine_catalog(rc_engine_t *e);

/** The engine's own blend weights (what users outside any experiment get). */
const rc_blend_t *rc_engine_blend(const rc_engine_t *e);

/** The running experiment (borrowed), or NULL. Immutable while the engine runs it
 * (experiments.h): what a rank needs (variants, blends) and what counting needs to know;
 * its impressions and clicks are counted per loop, apart from it. */
const struct rc_experiment *rc_engine_experiment(const rc_engine_t *e);

/** Runs experiment `x` (borrowed; it must not change, and must outlive its use here: a
 * change is a new experiment, the old one freed once no copy runs it), or none with NULL. */
void rc_engine_set_experiment(rc_engine_t *e, const struct rc_experiment *x);

/** The canonical tag of locale reference `ref` (rc_engine_locale), e.g. "en-GB", or NULL
 * (borrowed until the next rc_engine_locale()). */
const char *rc_engine_locale_tag(const rc_engine_t *e, int ref);

/** Replaces the business rules with `r`'s (moved in: `r` is left empty) and resolves them
 * against the catalog. */
void rc_engine_set_rules(rc_engine_t *e, rc_rules_t *r);

/** Resets a user state (no history) with a context; no locale. */
void rc_user_state_init(rc_user_state_t *u, int device, int tz_offset_min);

/** A reference to a locale tag such as "en-GB" for rc_user_state_t.locale (trending per
 * locale, once the locale has earned a segment: trending.h), met at `wall_ms`; -1 when none
 * is given or it is malformed. */
int rc_engine_locale(rc_engine_t *e, rc_str_t tag, int64_t wall_ms);

/** The reference of locale tag `tag` if the engine tracks it (a copy that applied the
 * tag's RC_OP_LOCALE record, engine_op.h), without tracking it: read only, for a loop that
 * submits the record and ranks on a copy. Returns the reference, RC_ENOENT when the tag is
 * not tracked (yet: ask again at the next rank), or RC_EINVAL when it is empty or malformed
 * (it never will be). */
int rc_engine_locale_find(const rc_engine_t *e, rc_str_t tag);

/** The key rc_user_state_t.user_key holds for a user known by `id` (its pseudonym, so every
 * node computes the same one). */
uint32_t rc_engine_user_key(rc_str_t id);

/** What an event means to the models: its weight, and whether it is about an item. */
float rc_event_weight(rc_event_kind_t kind, bool has_value, double value);

/** Applies one event of user `u` (may be NULL for events of users not held here) to the
 * global models and to `u`. `item` is a catalog index or -1 (search). `query` may be empty.
 * Returns true when the user's lists may have changed. The same as the event's model half as
 * a record applied at once (rc_engine_op_event, rc_engine_apply) then the user's half
 * (rc_user_observe): engine_op.h. */
bool rc_engine_observe(rc_engine_t *e, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                       float weight, rc_str_t query, int64_t wall_ms);

struct rc_ranker;
/** Ranks for `u` under `spec` (ranker.h) with `scratch`, the caller's rank scratch memory
 * (rc_ranker_new(); one per thread, borrowed for the call). Writes up to spec->k entries to
 * `out` (caller's array of at least spec->k) and returns how many. Reads the engine only, so
 * any number of threads may rank on one engine at once while nobody changes it. */
uint32_t rc_engine_rank(const rc_engine_t *e, struct rc_ranker *scratch, const rc_user_state_t *u,
                        const rc_rank_spec_t *spec, int64_t wall_ms, rc_ranked_t *out);

/** The reason of a ranked item in words, e.g. "Viewed together with Red Mug". */
void rc_engine_why(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                   size_t len);

struct rc_reason;
/** The reason of a ranked item as data (reasons.h): what rc_engine_why() puts in words. */
void rc_engine_reason(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r,
                      struct rc_reason *out);

/** The items carrying content feature `feat`, most popular first (at most RC_FEATURE_LIST);
 * borrowed until the next refresh. */
const uint32_t *rc_engine_feature_items(const rc_engine_t *e, uint32_t feat, uint32_t *n);

/** Wire name of a source ("covisit", ...). */
const char *rc_src_name(int src);

/** Rebuilds the trending top lists (call from a timer, e.g. every 500 ms), and the feature
 * index when the catalog changed since it was built. */
int rc_engine_refresh(rc_engine_t *e);

/** The same, a slice of at most `max_items` catalog items per call (rc_trending_refresh_step):
 * the event loop's way, never holding it for long. Returns 1 when a pass completed, 0 while
 * it goes on, or RC_ENOMEM. */
int rc_engine_refresh_step(rc_engine_t *e, uint32_t max_items);

/** Adds weight `add` to key `key` of a small weighted set (keys[0..*n), at most `cap`);
 * when it is full, the weakest entry (by magnitude) gives way to a stronger newcomer. */
void rc_weights_add(uint32_t *keys, float *w, uint8_t *n, uint8_t cap, uint32_t key, float add);

/** Adds the content features of `item`, with weight `w`, to a weighted set (as the content
 * vector learns them: the category twice a tag, normalised by the item's norm). */
void rc_weights_add_item(const rc_catalog_t *c, uint32_t *keys, float *w, uint8_t *n, uint8_t cap,
                         uint32_t item, float weight);

/** Adds `category`'s weight `w` to the user's category affinities and `item`'s features to
 * the content vector (used when merging a long-term profile). */
void rc_user_add_category(rc_user_state_t *u, uint16_t category, float w);
void rc_user_exclude(rc_user_state_t *u, uint32_t item);
/** Moves the user's content vector and categories towards `item` by weight `w` (older
 * interests fade a little); the models are not touched. */
void rc_user_learn_content(const rc_catalog_t *c, rc_user_state_t *u, uint32_t item, float w);
/** Remembers an interaction of kind `kind` (rc_event_kind_t, RC_EVENT_KIND_COUNT when not
 * known) with `item`, of weight `w`, at `at_s` (Unix seconds; 0 when not known). */
void rc_user_push_recent(rc_user_state_t *u, uint32_t item, float w, uint32_t at_s, uint8_t kind);

/** The user's `d`-th most recent interaction (0: the newest); `d` < n_recent. */
static inline const rc_recent_t *rc_user_recent(const rc_user_state_t *u, uint32_t d)
{
    return &u->recent[(u->head + RC_RECENT - 1 - d) % RC_RECENT];
}
bool rc_user_is_excluded(const rc_user_state_t *u, uint32_t item);

#endif
