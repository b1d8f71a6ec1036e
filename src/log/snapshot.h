/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshot files of the data directory: what a node derived from its event log (models,
 * de-duplication windows, in-memory profiles, catalog changes and settings), so that a
 * restart reads only the log after the newest snapshot (docs/durability.md).
 *
 * A file is `snapshot-<covers, 20 digits>.snap`: a 32-byte header ("RCSNAP" 0 0, the format
 * version 4 bytes LE, a CRC-32 of the body 4 bytes LE, `covers` 8 bytes LE: the number of the
 * first log record the snapshot does not hold, the body's length 8 bytes LE), then the body
 * (the caller's bytes). Written atomically: a temporary file, fsync, rename, fsync of the
 * directory; the RC_SNAPSHOTS_KEPT newest are kept, so a bad newest one has one to fall back
 * on. */
#ifndef RC_SNAPSHOT_H
#define RC_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_SNAPSHOT_VERSION 1
#define RC_SNAPSHOTS_KEPT   2

/** Writes a snapshot of `body` (borrowed) covering the log records below `covers` into
 * `dir`, then deletes all but the RC_SNAPSHOTS_KEPT newest. Returns 0, or RC_EIO with the
 * reason in `err`. Blocking. */
int rc_snapshot_write(const char *dir, uint64_t covers, const void *body, size_t len, char *err,
                      size_t errlen);

/* One snapshot read back: `body` (caller frees with free()) and what it covers. */
typedef struct rc_snapshot {
    void *body;
    size_t len;
    uint64_t covers;
    char path[600];
} rc_snapshot_t;

/** Reads the newest snapshot in `dir` whose header, version and CRC are good; every one
 * refused on the way is logged with its reason (a torn write, a corrupt body, a version this
 * build cannot read) and the next older one tried. `accept(ctx, snap)` (may be NULL) can
 * refuse a snapshot whose body it cannot use (return false; it says why): the next older
 * one is tried then. Returns 0 with *out filled, RC_ENOENT when there is none to use, or
 * RC_EIO with the reason in `err` (the directory cannot be read). */
int rc_snapshot_read_newest(const char *dir, bool (*accept)(void *ctx, const rc_snapshot_t *snap),
                            void *ctx, rc_snapshot_t *out, char *err, size_t errlen);

#endif
