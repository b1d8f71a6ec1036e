/* SPDX-License-Identifier: Apache-2.0 */
/* Changes to the global models as self-contained records: an event's model half, an id named
 * by traffic, catalog upserts and removals, rules, the experiment, a locale met, a refresh.
 * Applying the same records in the same order to any copy of an engine gives the same
 * models, bit for bit: nothing is read from the clock or from a user's session while
 * applying (shared.h keeps two copies that way). */
#ifndef RC_ENGINE_OP_H
#define RC_ENGINE_OP_H

#include "engine/engine.h"

#include <stdbool.h>
#include <stdint.h>

/* How far back in the user's session co-visitation pairs reach: what an event op carries of
 * the user's recent items. */
#define RC_OP_RECENT 10

typedef enum {
    RC_OP_NONE = 0,     /* an empty record: applying it does nothing */
    RC_OP_EVENT,        /* an event's model half: trending, co-visitation, repeat estimates */
    RC_OP_UPSERT,       /* a catalog item added or replaced */
    RC_OP_REMOVE,       /* a catalog item removed */
    RC_OP_RULES,        /* the business rules replaced (their JSON form) */
    RC_OP_EXPERIMENT,   /* the running experiment replaced */
    RC_OP_LOCALE,       /* a locale tag met (tracked from then on: trending.h) */
    RC_OP_REFRESH,      /* trending top lists, feature index, exploration pool rebuilt */
    RC_OP_ITEM_JSON,    /* a catalog item added or replaced from its JSON form (the admin API's) */
    RC_OP_REFRESH_STEP, /* a slice of a refresh (rc_engine_refresh_step), as the loop's tick */
    RC_OP_ITEM_SEEN,    /* an id an event named, by a user: learned once trusted (open catalog) */
    RC_OP_TYPE_COUNT
} rc_engine_op_type_t;

/* What the models learn from one event, with the parts of its user's state they read, taken
 * when the event happened (before the user's own state moved on). */
typedef struct rc_op_event {
    int64_t wall_ms; /* the event's time: every decay is computed to it */
    int64_t item;    /* a catalog index, or -1 (a search) */
    float weight;
    uint32_t user_key; /* 0 without a user */
    uint8_t kind;      /* rc_event_kind_t */
    bool has_user;     /* false for events of users held nowhere (no session) */
    uint8_t device;
    uint8_t n_recent; /* recent[0] is the newest */
    int16_t locale;   /* a locale reference (rc_engine_locale), or -1 */
    int16_t tz_offset_min;
    bool learn_return; /* the event counts for the repeat estimates; then same/back say how */
    bool same, back;
    uint32_t recent_item[RC_OP_RECENT];
    float recent_w[RC_OP_RECENT];
    /* Owned, or NULL: the item's id when the copy the record was made on did not know it
     * (item is then -1; rc_engine_op_event_by_id). Applying looks it up and learns the
     * event with it if the applied copy knows it by then, without it otherwise. */
    char *item_id;
    uint16_t item_id_len;
} rc_op_event_t;

typedef struct rc_engine_op {
    uint8_t type; /* rc_engine_op_type_t */
    union {
        rc_op_event_t event;
        struct {
            char *id, *name, *category; /* owned */
            char **tags;                /* owned, n_tags of them */
            uint32_t n_tags;
            double price, popularity;
        } upsert;
        struct {
            char *id; /* owned */
        } remove;
        struct {
            char *json; /* owned: rc_rules_from_json()'s form */
        } rules;
        struct {
            char *json; /* owned: rc_catalog_upsert_json()'s object */
        } item_json;
        struct {
            const struct rc_experiment *x; /* borrowed, immutable: it must outlive every copy
                                            * running it */
        } experiment;
        struct {
            char tag[RC_LOCALE_MAX + 1];
            int64_t wall_ms;
        } locale;
        struct {
            char id[RC_CATALOG_ID_MAX + 1]; /* NUL-terminated */
            uint8_t len;                    /* of id, 1..RC_CATALOG_ID_MAX */
            uint32_t user_key;              /* who named it (rc_engine_user_key), 0: unknown */
        } item_seen;
        struct {
            int64_t at_ms;      /* when it was asked for (the rebuild itself reads no clock) */
            uint32_t max_items; /* RC_OP_REFRESH_STEP: the slice */
        } refresh;
    } u;
} rc_engine_op_t;

/** Fills `op` with the model half of an event of user `u` (borrowed for the call; NULL for
 * users held nowhere): what rc_engine_observe() does to the models. Call it before the
 * user's half (rc_user_observe()), which moves the state it reads. */
void rc_engine_op_event(rc_engine_op_t *op, const rc_user_state_t *u, rc_event_kind_t kind,
                        int64_t item, float weight, int64_t wall_ms);

/** Makes the event record `op` (rc_engine_op_event() with item -1) go by the id `id[0..len)`
 * (borrowed, copied) of an item the caller's copy of the engine does not know (yet): applying
 * resolves it with rc_catalog_find() on the copy applied to, and learns the event without an
 * item when that copy does not know it either. Since no session holds an item its loop does
 * not know, the event counts for the repeat estimates as new to the session. Returns 0,
 * RC_EINVAL (not an event record, an item already set, an id over 65,535 bytes) or
 * RC_ENOMEM (`op` unchanged). */
int rc_engine_op_event_by_id(rc_engine_op_t *op, const char *id, size_t len);

/** Fills `op` with id `id[0..len)` (borrowed, copied) named by an event of the user
 * `user_key` (rc_engine_user_key(); 0: unknown): applied, it is rc_catalog_learn_from(), so
 * an open catalog learns the id once enough distinct users named it. A loop submits it when
 * its copy does not find the id (rc_catalog_find) and rc_catalog_may_learn() says the id may
 * be learned. Returns 0, or RC_EINVAL for an id of 0 or more than RC_CATALOG_ID_MAX bytes
 * (`op` is then left RC_OP_NONE). */
int rc_engine_op_item_seen(rc_engine_op_t *op, const char *id, size_t len, uint32_t user_key);

/** Fills `op` with a catalog upsert (rc_catalog_upsert()'s fields, borrowed and copied;
 * `tags` may be NULL). Returns 0 or RC_ENOMEM. Release with rc_engine_op_clear(). */
int rc_engine_op_upsert(rc_engine_op_t *op, const char *id, const char *name, const char *category,
                        const char *const *tags, uint32_t n_tags, double price, double popularity);

/** Fills `op` with an item in its JSON form (borrowed, copied; parsed when applied, with
 * the admin API's checks: an item refused leaves the catalog as it was). Returns 0 or
 * RC_ENOMEM. */
int rc_engine_op_item_json(rc_engine_op_t *op, const char *json);

/** Fills `op` with the removal of item `id` (borrowed, copied). Returns 0 or RC_ENOMEM. */
int rc_engine_op_remove(rc_engine_op_t *op, const char *id, size_t len);

/** Fills `op` with rules in their JSON form (borrowed, copied; parsed when applied: rules
 * that do not parse leave the engine's as they were). Returns 0 or RC_ENOMEM. */
int rc_engine_op_rules(rc_engine_op_t *op, const char *json);

/** Fills `op` with experiment `x` (borrowed, never changed after: a change is a new one;
 * NULL: none). */
void rc_engine_op_experiment(rc_engine_op_t *op, const struct rc_experiment *x);

/** Fills `op` with locale tag `tag` met at `wall_ms` (copied; longer tags are refused when
 * applied, as rc_engine_locale() refuses them). Applied, it is rc_engine_locale(): the tag is
 * tracked from then on, and rc_engine_locale_find() on that copy gives its reference. */
void rc_engine_op_locale(rc_engine_op_t *op, rc_str_t tag, int64_t wall_ms);

/** Fills `op` with a full refresh asked for at `at_ms` (rc_engine_refresh()). */
void rc_engine_op_refresh(rc_engine_op_t *op, int64_t at_ms);

/** Fills `op` with a slice of at most `max_items` catalog items of a refresh, asked for at
 * `at_ms` (rc_engine_refresh_step()): a refresh of a large catalog in steps, so the writer
 * publishes between them. */
void rc_engine_op_refresh_step(rc_engine_op_t *op, uint32_t max_items, int64_t at_ms);

/** Frees what `op` owns and leaves it RC_OP_NONE. NULL is a no-op. */
void rc_engine_op_clear(rc_engine_op_t *op);

/** Applies `op` to `e`, then frees what it owns (rc_engine_op_clear): what a loop does with
 * its records while it alone holds the engine (with several loops they go to the shared
 * engine's writer instead, shared.h). Returns rc_engine_apply()'s code. */
int rc_engine_apply_owned(rc_engine_t *e, rc_engine_op_t *op);

/** Applies `op` (borrowed) to `e`. Deterministic: the same ops in the same order give the
 * same models on any copy. Returns 0 or a negative code (RC_ENOMEM, RC_EFULL, RC_ENOENT,
 * RC_EINVAL); a failed op leaves `e` as another copy that failed it identically. */
int rc_engine_apply(rc_engine_t *e, const rc_engine_op_t *op);

/** Asks for the memory `op` will touch when applied to `e` (read only; no effect on what
 * applying does): stage 0 the heads of its items' neighbour lists and their trending
 * scores, stage 1 the neighbour lists themselves (their heads should be in cache by then).
 * The writer calls it a few ops ahead, since an event op is mostly cache misses. */
void rc_engine_op_prefetch(const rc_engine_t *e, const rc_engine_op_t *op, int stage);

/** The user's half of an event (rc_engine_observe() without the models): moves `u`
 * (borrowed; NULL does nothing) with the catalog of `e` (read only). Returns true when the
 * user's lists may have changed. */
bool rc_user_observe(const rc_engine_t *e, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                     float weight, rc_str_t query, int64_t wall_ms);

#endif
