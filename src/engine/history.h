/* SPDX-License-Identifier: Apache-2.0 */
/* Learning from history: the events of many users, in time order, through the same learning
 * as live traffic (rc_engine_observe, at each event's own time), so a shop can start a node
 * from its logs and the models hold what live traffic would have taught them. Each user's
 * state (recent items, for co-visitation) is kept while their session lasts, that is until
 * they are silent for `session_gap_ms` of event time; only the models keep what is learned
 * (no profile is written). Runs on the loop thread, or before the loop starts. */
#ifndef RC_HISTORY_H
#define RC_HISTORY_H

#include "engine/engine.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_history rc_history_t;

typedef struct rc_history_stats {
    uint64_t lines;        /* lines read, comments and blank lines included */
    uint64_t learned;      /* events learned */
    uint64_t malformed;    /* lines that are not an event (skipped) */
    uint64_t unknown_item; /* events on items a closed catalog does not hold (skipped) */
    uint64_t out_of_order; /* events older than the one before them (learned all the same) */
    uint64_t sessions;     /* user sessions met (a user silent for the gap starts a new one) */
} rc_history_stats_t;

/** A learner feeding `e` (borrowed; it must outlive the learner). NULL when out of memory.
 * Caller frees with rc_history_free(). */
rc_history_t *rc_history_new(rc_engine_t *e, int64_t session_gap_ms);

/** The events come from clients, not from the operator (the event log read back at start):
 * an item an open catalog does not hold is learned as live traffic learns it
 * (rc_catalog_learn_from(): once enough distinct users named it), not at once as --import
 * trusts it. */
void rc_history_from_clients(rc_history_t *h);

/** Frees the learner (the models keep what it taught them). NULL is a no-op. */
void rc_history_free(rc_history_t *h);

/** Learns one event of `user` at `ts_ms` (Unix ms). `item` is the item's id, or the query
 * for `search`. Returns 0, RC_EINVAL for an id out of bounds, RC_ENOENT for an item a closed
 * catalog does not hold, or RC_ENOMEM. */
int rc_history_learn(rc_history_t *h, const char *user, size_t user_len, rc_event_kind_t kind,
                     const char *item, size_t item_len, bool has_value, double value,
                     int64_t ts_ms);

/** Learns every event of a file of lines `ts_ms<TAB>user<TAB>kind<TAB>item[<TAB>value]` (for
 * `search`, the query in place of the item; `#` starts a comment line), sorted by time.
 * Lines that are not an event are counted and skipped. Adds to `*st` (caller zeroes it).
 * Returns 0, or RC_EIO with the reason in `err` when the file cannot be read. */
int rc_history_import_file(rc_history_t *h, const char *path, rc_history_stats_t *st, char *err,
                           size_t errlen);

/** Packs what a read-back after a snapshot needs of one user's session to go on learning as
 * the live node did: `user` (as the log names them: their pseudonym), their context and their
 * recent items by id, oldest first, each with its time; `c` names the items. Nothing is packed
 * for a session without recent items (returns false): the caller counts the true ones for the
 * array rc_history_snapshot_read() takes. */
bool rc_history_pack_session(msgpack_packer *pk, const rc_catalog_t *c, const char *user,
                             size_t user_len, const rc_user_state_t *u);

/** Whether rc_history_pack_session() packs something for `u`. */
bool rc_history_session_packable(const rc_user_state_t *u);

/** Goes on with the sessions a snapshot kept (an array of rc_history_pack_session()'s): the
 * events after the snapshot pair with the items before it, as they did live. Items the
 * catalog no longer holds are left out. Call before the first rc_history_learn(). Returns 0,
 * RC_EPARSE or RC_ENOMEM. */
int rc_history_snapshot_read(rc_history_t *h, const msgpack_object *o);

#endif
