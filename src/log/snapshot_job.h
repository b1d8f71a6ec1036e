/* SPDX-License-Identifier: Apache-2.0 */
/* A snapshot written by a child process, as Redis' BGSAVE does: fork() gives the child a
 * copy of the node's memory as it is at that moment (copy-on-write), the child serialises and
 * writes it (snapshot.h) while the parent's loop goes on serving, and the parent reaps the
 * child from its timer. The loop pays only for the fork (copying the page tables: about
 * 10 ms per GB of memory), not for the serialisation and the write (seconds for a large
 * state: docs/durability.md). Linux: the child dies with its parent (PR_SET_PDEATHSIG), so
 * that a killed node leaves no writer behind in its data directory. */
#ifndef RC_SNAPSHOT_JOB_H
#define RC_SNAPSHOT_JOB_H

#include "util/wbuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/** Runs in the child: makes the body of a snapshot covering the log records below `covers`
 * from the child's copy of the memory (anything blocking it needs first, such as syncing the
 * event log, too). Returns 0, or a negative code with the reason in `err`. */
typedef int (*rc_snapshot_pack_fn)(void *ctx, uint64_t covers, rc_wbuf_t *body, char *err,
                                   size_t errlen);

/* A snapshot being written (caller-allocated; zeroed = none). */
typedef struct rc_snapshot_job {
    pid_t pid; /* 0: none running */
    int fd;    /* the child's report */
    uint64_t covers;
    uint64_t started_us, fork_us; /* when it began; how long the fork held the caller */
} rc_snapshot_job_t;

/* How a job ended. */
typedef struct rc_snapshot_result {
    int rc; /* 0: written */
    uint64_t covers, bytes;
    double seconds; /* from the start to the child's end */
    double fork_ms; /* the part the caller's thread was held */
    char err[200];  /* the reason when rc != 0 */
} rc_snapshot_result_t;

/** Starts writing a snapshot covering the log records below `covers` into `dir` (borrowed;
 * it must outlive the job): a child process calls pack(ctx, ...) on its copy of the memory,
 * then rc_snapshot_write(). At most one job runs per `j`. Returns 0, RC_EEXIST while one runs,
 * or RC_EIO with the reason in `err` (the fork failed: nothing runs). */
int rc_snapshot_job_start(rc_snapshot_job_t *j, const char *dir, uint64_t covers,
                          rc_snapshot_pack_fn pack, void *ctx, char *err, size_t errlen);

/** Packs and writes a snapshot here, blocking the caller for all of it (what the child does):
 * for when no child can be had. *out says how it went, as rc_snapshot_job_poll() would. */
void rc_snapshot_write_now(const char *dir, uint64_t covers, rc_snapshot_pack_fn pack, void *ctx,
                           rc_snapshot_result_t *out);

/** Whether the running job ended: true once, with *out, when the child has exited (it is
 * reaped then); false while it runs or when none does. With `wait` it blocks until the
 * child exits. */
bool rc_snapshot_job_poll(rc_snapshot_job_t *j, bool wait, rc_snapshot_result_t *out);

#endif
