/* SPDX-License-Identifier: Apache-2.0 */
/* The event log of the embedded default: what a node accepted, on its own disk, in the order
 * it accepted it. With Kafka the events topic is the log; without it this is, and an `ack`
 * waits for it (PROTOCOL.md section 3, docs/durability.md).
 *
 * Files: segments named `events-<first record number, 20 digits>.log` under one directory,
 * each a 16-byte header ("RCLOG" 0 0 1, then the number of its first record, 8 bytes little
 * endian) and records: the payload's length (4 bytes LE), a CRC-32 of the length's 4 bytes
 * and the payload (4 bytes LE), the payload. A segment is closed at `segment_bytes` and a new
 * one opened; whole segments are deleted once the log is over `retain_bytes` or older than
 * `retain_s`. A record only partly written when the process died (a torn tail) is cut off
 * when the log is opened again; a bad record anywhere else ends the reading of its segment,
 * and is counted.
 *
 * Appends are written together once per loop turn (group commit: one write() for every
 * record of the turn), then made durable as the policy says: RC_FSYNC_ALWAYS calls fdatasync()
 * in libuv's thread pool and reports each record durable once a sync that began after its
 * write has finished (records written meanwhile wait for the next sync); RC_FSYNC_INTERVAL
 * and RC_FSYNC_NEVER report a record once written (the kernel holds it: it survives the
 * process, not the machine), and the first syncs every `fsync_interval_ms`. Everything runs
 * on the loop's thread but the sync itself. */
#ifndef RC_EVENTLOG_H
#define RC_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct rc_eventlog rc_eventlog_t;

typedef enum { RC_FSYNC_ALWAYS, RC_FSYNC_INTERVAL, RC_FSYNC_NEVER } rc_fsync_t;

typedef struct rc_eventlog_config {
    const char *dir; /* created if missing */
    rc_fsync_t fsync;
    int64_t fsync_interval_ms; /* RC_FSYNC_INTERVAL */
    uint64_t segment_bytes;
    uint64_t retain_bytes; /* 0: no limit */
    int64_t retain_s;      /* 0: no limit */
    uint64_t read_from;    /* records numbered below are not read back (a snapshot has them) */
    uint64_t number_from;  /* no new record is numbered below (what a snapshot covers) */
} rc_eventlog_config_t;

/* What opening found. */
typedef struct rc_eventlog_stats {
    uint64_t records;         /* good records read back (from read_from on) */
    uint64_t bytes;           /* bytes of the segments read */
    uint32_t segments;        /* segments read */
    uint64_t torn_bytes;      /* cut from the end of the last segment */
    uint32_t bad_segments;    /* segments whose reading ended at a bad record */
    uint32_t deleted;         /* segments deleted by retention */
    uint64_t skipped_records; /* good records below read_from, not read back */
} rc_eventlog_stats_t;

/** One record read back, in order, with its number; `data` is borrowed for the call. */
typedef void (*rc_eventlog_record_fn)(void *ctx, uint64_t record, const void *data, size_t len);

/** How an append ended: 0 once durable as the policy says, or a negative code (the write or
 * the sync failed, or the log was closed first). */
typedef void (*rc_eventlog_done_fn)(void *arg, int status);

/** Opens the log in cfg->dir (creating it), reads every record back through `each(ctx, ...)`
 * (may be NULL), cuts a torn tail, applies retention, and opens a segment for appending.
 * `cfg` is copied; `defer` (borrowed) runs each turn's write. NULL with the reason in `err`. Caller
 * frees with rc_eventlog_close() then rc_eventlog_free(). */
struct rc_defer;
rc_eventlog_t *rc_eventlog_open(uv_loop_t *loop, struct rc_defer *defer,
                                const rc_eventlog_config_t *cfg, rc_eventlog_record_fn each,
                                void *ctx, rc_eventlog_stats_t *st, char *err, size_t errlen);

/** Opens the log in cfg->dir (creating it) for a read-back in slices (rc_eventlog_read()),
 * for a node that serves its health checks meanwhile. Nothing can be appended until the
 * read-back is done. NULL with the reason in `err`. Caller frees with rc_eventlog_close()
 * then rc_eventlog_free(). */
rc_eventlog_t *rc_eventlog_start(uv_loop_t *loop, struct rc_defer *defer,
                                 const rc_eventlog_config_t *cfg, char *err, size_t errlen);

/** Reads back up to `budget` more records through `each(ctx, ...)`; past the last, cuts a
 * torn tail, applies retention and opens a segment for appending. Returns 1 when done, 0
 * when there is more, or RC_EIO with the reason in `err`. */
int rc_eventlog_read(rc_eventlog_t *l, rc_eventlog_record_fn each, void *ctx, uint64_t budget,
                     char *err, size_t errlen);

/** What the read-back found so far (all of it once done). */
const rc_eventlog_stats_t *rc_eventlog_read_stats(const rc_eventlog_t *l);

/** Bytes of the log the read-back has still to read (0 once done). */
uint64_t rc_eventlog_bytes_left(const rc_eventlog_t *l);

/** Records the read-back has still to read, estimated from the bytes left at the mean size
 * of the records read so far (0 once done). */
uint64_t rc_eventlog_records_left(const rc_eventlog_t *l);

/** Adds one record (copied) to this turn's batch; `done(arg, status)` (may be NULL) runs once
 * it is durable, never inside this call. Returns 0, RC_EINVAL for an empty record or one
 * over 16 MB, RC_ECLOSED after rc_eventlog_close(), RC_EUNAVAIL while reading back, or
 * RC_ENOMEM (then `done` never runs). */
int rc_eventlog_append(rc_eventlog_t *l, const void *data, size_t len, rc_eventlog_done_fn done,
                       void *arg);

/** The number the next record appended gets: every record below it is appended. */
uint64_t rc_eventlog_next_record(const rc_eventlog_t *l);

/** Writes this turn's records now and syncs the file (blocking: a snapshot must not claim a
 * record the log could lose): rc_eventlog_flush() then rc_eventlog_sync_written(). Acks of what was
 * written are reported as the policy says (on a later turn with RC_FSYNC_ALWAYS). Returns 0, RC_EIO
 * or RC_ECLOSED. */
int rc_eventlog_sync_now(rc_eventlog_t *l);

/** Writes this turn's records now, without a sync (their acks come as the policy says).
 * Returns 0 or RC_ECLOSED. */
int rc_eventlog_flush(rc_eventlog_t *l);

/** Syncs what is written to the segment appended to (blocking). Reads only the descriptor:
 * a child process forked after rc_eventlog_flush() can call it on its copy of the log, the
 * descriptor being its own. Returns 0 or RC_EIO. */
int rc_eventlog_sync_written(const rc_eventlog_t *l);

/** Records appended and not yet reported durable. */
size_t rc_eventlog_pending(const rc_eventlog_t *l);

/** Deletes the segments retention no longer keeps (by age); call now and then. */
void rc_eventlog_maintain(rc_eventlog_t *l);

/** Writes and syncs what is appended (blocking), reports it, and closes the loop handles. The
 * loop must then run until it has nothing left (a sync still running in the thread pool
 * ends there) before rc_eventlog_free(). NULL is a no-op. */
void rc_eventlog_close(rc_eventlog_t *l);

/** Frees the log after rc_eventlog_close() and a loop run. NULL is a no-op. */
void rc_eventlog_free(rc_eventlog_t *l);

/** Parses "always", "interval" or "never". Returns 0 or RC_EINVAL. */
int rc_fsync_parse(const char *s, rc_fsync_t *out);

#endif
