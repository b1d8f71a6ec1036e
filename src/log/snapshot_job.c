/* SPDX-License-Identifier: Apache-2.0 */
/* A snapshot written by a child process (snapshot_job.h): the fork, the child's work and its
 * report through a pipe, the parent's reaping. */
#include "log/snapshot_job.h"
#include "log/snapshot.h"
#include "util/clock.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the child writes to the pipe before it exits: under PIPE_BUF, so written whole. */
typedef struct report {
    int rc;
    uint64_t bytes, ended_us;
    char err[200];
} report_t;

/* The child: only memory work, its own file writes and _exit() — no loop, no sockets, no
 * stdio buffers of the parent (the parent's threads do not exist here). */
/* Packs and writes the snapshot: what the child does, and rc_snapshot_write_now(). */
static int pack_and_write(const char *dir, uint64_t covers, rc_snapshot_pack_fn pack, void *ctx,
                          uint64_t *bytes, char *err, size_t errlen)
{
    rc_wbuf_t body;
    rc_wbuf_init(&body, 0);
    int rc = pack(ctx, covers, &body, err, errlen);
    if (rc == 0 && (rc = rc_wbuf_ok(&body)) != 0)
        snprintf(err, errlen, "out of memory");
    if (rc == 0)
        rc = rc_snapshot_write(dir, covers, rc_wbuf_data(&body), body.len, err, errlen);
    *bytes = body.len;
    rc_wbuf_free(&body);
    return rc;
}

/* The child: only memory work, its own file writes and _exit() — no loop, no sockets, no
 * stdio buffers of the parent (the parent's threads do not exist here). */
static void child(const char *dir, uint64_t covers, pid_t parent, rc_snapshot_pack_fn pack,
                  void *ctx, int fd)
{
    /* A node killed meanwhile takes its writer with it; one killed before this line is seen
     * by the parent's id changing. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(1);
    /* The signals the node handles on its loop (libuv's handlers) end this process as they
     * would end any. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    report_t r = {0};
    r.rc = pack_and_write(dir, covers, pack, ctx, &r.bytes, r.err, sizeof(r.err));
    r.ended_us = rc_mono_us();
    ssize_t w = write(fd, &r, sizeof(r));
    _exit(w == (ssize_t)sizeof(r) && r.rc == 0 ? 0 : 1);
}

void rc_snapshot_write_now(const char *dir, uint64_t covers, rc_snapshot_pack_fn pack, void *ctx,
                           rc_snapshot_result_t *out)
{
    uint64_t t0 = rc_mono_us();
    *out = (rc_snapshot_result_t){.covers = covers};
    out->rc = pack_and_write(dir, covers, pack, ctx, &out->bytes, out->err, sizeof(out->err));
    out->seconds = (double)(rc_mono_us() - t0) / 1e6;
    out->fork_ms = out->seconds * 1e3; /* all of it held the caller */
}

int rc_snapshot_job_start(rc_snapshot_job_t *j, const char *dir, uint64_t covers,
                          rc_snapshot_pack_fn pack, void *ctx, char *err, size_t errlen)
{
    if (j->pid != 0)
        return RC_EEXIST;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return RC_EIO;
    }
    /* The read end never blocks: the report is there once the child has exited. */
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return RC_EIO;
    }
    uint64_t t0 = rc_mono_us();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return RC_EIO;
    }
    if (pid == 0) {
        close(p[0]);
        child(dir, covers, parent, pack, ctx, p[1]);
    }
    close(p[1]);
    *j = (rc_snapshot_job_t){
        .pid = pid, .fd = p[0], .covers = covers, .started_us = t0, .fork_us = rc_mono_us() - t0};
    return 0;
}

bool rc_snapshot_job_poll(rc_snapshot_job_t *j, bool wait, rc_snapshot_result_t *out)
{
    if (j->pid == 0)
        return false;
    int status;
    pid_t got;
    do
        got = waitpid(j->pid, &status, wait ? 0 : WNOHANG);
    while (got < 0 && errno == EINTR);
    if (got == 0)
        return false;
    report_t r;
    ssize_t n;
    do
        n = read(j->fd, &r, sizeof(r));
    while (n < 0 && errno == EINTR);
    *out = (rc_snapshot_result_t){.covers = j->covers, .fork_ms = (double)j->fork_us / 1e3};
    if (n == (ssize_t)sizeof(r)) {
        out->rc = r.rc;
        out->bytes = r.bytes;
        out->seconds = (double)(r.ended_us - j->started_us) / 1e6;
        memcpy(out->err, r.err, sizeof(out->err));
        out->err[sizeof(out->err) - 1] = '\0';
    } else {
        out->rc = RC_EIO;
        out->seconds = (double)(rc_mono_us() - j->started_us) / 1e6;
        if (got > 0 && WIFSIGNALED(status))
            snprintf(out->err, sizeof(out->err), "the writer died of signal %d", WTERMSIG(status));
        else
            snprintf(out->err, sizeof(out->err), "the writer ended without a report");
    }
    close(j->fd);
    *j = (rc_snapshot_job_t){0};
    return true;
}
