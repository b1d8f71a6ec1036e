/* SPDX-License-Identifier: Apache-2.0 */
/* The engine shared by threads, "left-right": two copies of the engine, one writer thread
 * applying model changes (engine_op.h) that any thread submits, and readers (the loops'
 * ranks) that never wait for learning. The writer applies a batch to the copy no reader is
 * on, publishes it, waits until every reader has left the other copy, then applies the same
 * batch there.
 *
 * Guarantees:
 *  - A read section (rc_shared_read_begin .. rc_shared_read_end) sees one copy that does not
 *    change while it lasts, and that copy holds every batch published before the section
 *    began: every op whose rc_shared_submit() returned before rc_shared_flush() was called
 *    is seen by every section begun after that flush returned.
 *  - Ops of one producer thread are applied in the order it submitted them; ops of several
 *    producers are interleaved in one order, the same on both copies, so both copies go
 *    through the same states (rc_engine_apply() is deterministic).
 *  - read_begin and read_end are wait-free (one atomic add and one load; one atomic add).
 *    The writer waits only for sections begun before its publish, never the other way.
 *  - Memory: twice the models (both copies), plus the queued ops.
 *
 * Hazards: a thread must not nest sections, nor keep one open longer than one rank and its
 * encoding (the writer waits for it); pointers into the engine are valid only inside the
 * section. One reader handle per thread. */
#ifndef RC_SHARED_H
#define RC_SHARED_H

#include "engine/engine.h"
#include "engine/engine_op.h"

#include <stdint.h>

typedef struct rc_shared rc_shared_t;
typedef struct rc_shared_reader rc_shared_reader_t;

/* What the writer did so far (counters since rc_shared_new). */
typedef struct rc_shared_stats {
    uint64_t ops;        /* ops applied (to both copies) */
    uint64_t ops_failed; /* of which rc_engine_apply() refused (the same on both copies) */
    uint64_t batches;    /* publishes */
    uint64_t apply_ns;   /* time applying, both copies */
    /* The same by op type (rc_engine_op_type_t): what learning an event costs apart from
     * the refreshes, which rebuild lists over the whole catalog. */
    uint64_t ops_by_type[RC_OP_TYPE_COUNT], apply_ns_by_type[RC_OP_TYPE_COUNT];
    uint64_t wait_ns; /* time waiting for readers to leave the old copy */
} rc_shared_stats_t;

/** Shares copies `a` and `b` (takes ownership of both: they must be equal, built by the same
 * calls, and nobody else may touch them) between up to `max_readers` reader threads, and
 * starts the writer thread. Returns NULL (and frees neither) when out of memory or when the
 * thread cannot start. Caller frees with rc_shared_free(). */
rc_shared_t *rc_shared_new(rc_engine_t *a, rc_engine_t *b, uint32_t max_readers);

/** Applies everything submitted so far, stops the writer, frees both copies. Every reader
 * must have unregistered. NULL is a no-op. */
void rc_shared_free(rc_shared_t *s);

/** Queues `op` for the writer (any thread; lock-free). Moves what `op` owns in: `op` is left
 * RC_OP_NONE, the writer frees its content once applied to both copies. Returns 0, or
 * RC_ENOMEM (then `op` is left as it was). */
int rc_shared_submit(rc_shared_t *s, rc_engine_op_t *op);

/** Blocks until every op submitted before the call has been applied to both copies and
 * published. Returns 0 or RC_ENOMEM. Not for a loop thread in steady state (tests, tools,
 * a shutdown). */
int rc_shared_flush(rc_shared_t *s);

/** A reader handle for the calling thread, or NULL when `max_readers` are registered.
 * Caller unregisters with rc_shared_reader_unregister(), outside any section. */
rc_shared_reader_t *rc_shared_reader_register(rc_shared_t *s);

/** Gives the handle back. NULL is a no-op. */
void rc_shared_reader_unregister(rc_shared_reader_t *r);

/** Begins a read section: the copy to rank on (borrowed until rc_shared_read_end()). */
const rc_engine_t *rc_shared_read_begin(rc_shared_reader_t *r);

/** Ends the read section: the copy must not be used any more. */
void rc_shared_read_end(rc_shared_reader_t *r);

/** The writer's counters (a copy). */
void rc_shared_stats(const rc_shared_t *s, rc_shared_stats_t *out);

/** Copy `i` (0 or 1), for tests that compare both after rc_shared_flush() with no reader in
 * a section and nothing submitted meanwhile (borrowed until rc_shared_free()). */
const rc_engine_t *rc_shared_copy(const rc_shared_t *s, int i);

#endif
