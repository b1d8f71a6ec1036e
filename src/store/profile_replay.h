/* SPDX-License-Identifier: Apache-2.0 */
/* Profiles from the event log, at start: what the profile store lacks of the logged changes
 * is sent to it again.
 *
 * A store that outlives the process (Redis) has every change numbered below the log's newest
 * mark (RC_BUS_MARK): only the changes after it are sent again, each event as its own delta
 * numbered as it was live (rc_profile_seq_t), so the store skips those it applied before the
 * crash and applies the others once. A store that starts empty (in memory) gets every change
 * in the log, applied as it is read: its profiles hold what the log still holds. Erasures are
 * replayed in their place among the changes. */
#ifndef RC_PROFILE_REPLAY_H
#define RC_PROFILE_REPLAY_H

#include "engine/catalog.h"
#include "engine/engine.h"
#include "store/profile.h"

typedef struct rc_profile_replay rc_profile_replay_t;

typedef struct rc_profile_replay_stats {
    uint64_t events_sent;   /* events sent to the store */
    uint64_t erasures_sent; /* erasures sent to the store */
    uint64_t skipped;       /* changes the newest mark says the store has */
    uint64_t refused;       /* changes the store refused (full buffer, out of memory) */
} rc_profile_replay_stats_t;

/** Starts a replay into `store`; `store` and `catalog` are borrowed and must outlive it.
 * NULL when out of memory. Caller frees with rc_profile_replay_free(). */
rc_profile_replay_t *rc_profile_replay_new(rc_profile_store_t *store, const rc_catalog_t *catalog);

/** An event of `user` (borrowed for the call), numbered `seq`, learned at `at_ms`. */
void rc_profile_replay_event(rc_profile_replay_t *r, rc_str_t user, rc_event_kind_t kind,
                             rc_str_t item, bool has_value, double value, int64_t at_ms,
                             uint64_t seq);

/** The erasure of `user` (borrowed for the call), numbered `seq`. */
void rc_profile_replay_erase(rc_profile_replay_t *r, rc_str_t user, uint64_t seq);

/** A mark: the store had confirmed every change numbered below `mark`. */
void rc_profile_replay_mark(rc_profile_replay_t *r, uint64_t mark);

/** Sends the store what it may lack (into its queue: a store not yet connected sends it once
 * it is) and reports what was done. */
void rc_profile_replay_finish(rc_profile_replay_t *r, rc_profile_replay_stats_t *st);

/** NULL is a no-op. */
void rc_profile_replay_free(rc_profile_replay_t *r);

#endif
