/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's part of a snapshot (log/snapshot.h): what the models learned, by item id, so
 * that a catalog changed between two runs (a new file, items added or removed) still finds
 * each item's counts: co-visitation, trending with its locale segments, the items learned
 * from traffic, the online repeat estimates, and the running experiment's counters. */
#ifndef RC_ENGINE_SNAPSHOT_H
#define RC_ENGINE_SNAPSHOT_H

#include "engine/engine.h"

#include <msgpack.h>

struct rc_experiment_counts;
/** Writes the models into `pk` as one map, with `counts` (borrowed; NULL: none), the running
 * experiment's counters added up over the loops. */
void rc_engine_snapshot_write(const rc_engine_t *e, const struct rc_experiment_counts *counts,
                              msgpack_packer *pk);

/** Restores into an engine that has learned nothing yet (its catalog loaded, the settings
 * applied) what rc_engine_snapshot_write() wrote; items learned from traffic are learned
 * again (an open catalog). Then refreshes. The experiment's counters come back in `counts`
 * (NULL: dropped) when the snapshot counted the experiment the engine runs now (by name;
 * zeros otherwise): the caller gives them to a loop. Returns 0, or RC_EPARSE / RC_ENOMEM
 * with the reason in `err` (the engine is then unusable: the caller starts over without the
 * snapshot). */
int rc_engine_snapshot_read(rc_engine_t *e, const msgpack_object *o,
                            struct rc_experiment_counts *counts, char *err, size_t errlen);

#endif
