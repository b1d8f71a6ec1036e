/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshot files (snapshot.h). */
#include "log/snapshot.h"
#include "util/error.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC        "RCSNAP\0\0"
#define HEADER_BYTES 32
#define NAME_LEN     34 /* "snapshot-" + 20 digits + ".snap" */
#define LIST_MAX     64 /* snapshot files considered (more are left alone) */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t body_crc(const void *body, size_t len)
{
    uLong crc = crc32_z(0L, Z_NULL, 0);
    return (uint32_t)crc32_z(crc, body, len);
}

static int write_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t w = write(fd, c, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        len -= (size_t)w;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0)
        return -1;
    int rc = fsync(d);
    close(d);
    return rc;
}

/* The snapshots in `dir`, newest first. Returns how many (at most LIST_MAX), or -1. */
static int list_snapshots(const char *dir, uint64_t *covers)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < LIST_MAX) {
        uint64_t c;
        char tail[8];
        if (strlen(de->d_name) == NAME_LEN &&
            sscanf(de->d_name, "snapshot-%20" SCNu64 ".%7s", &c, tail) == 2 &&
            strcmp(tail, "snap") == 0)
            covers[n++] = c;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, newest first: a handful of files */
        for (int j = i; j > 0 && covers[j] > covers[j - 1]; j--) {
            uint64_t t = covers[j];
            covers[j] = covers[j - 1];
            covers[j - 1] = t;
        }
    return n;
}

static void snapshot_path(const char *dir, uint64_t covers, char *out, size_t len)
{
    snprintf(out, len, "%s/snapshot-%020" PRIu64 ".snap", dir, covers);
}

int rc_snapshot_write(const char *dir, uint64_t covers, const void *body, size_t len, char *err,
                      size_t errlen)
{
    char path[600], tmp[620];
    snapshot_path(dir, covers, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unsigned char h[HEADER_BYTES];
    memcpy(h, MAGIC, 8);
    put32(h + 8, RC_SNAPSHOT_VERSION);
    put32(h + 12, body_crc(body, len));
    put64(h + 16, covers);
    put64(h + 24, len);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, h, sizeof(h)) != 0 || write_all(fd, body, len) != 0 ||
        fdatasync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0 || sync_dir(dir) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return RC_EIO;
    }
    uint64_t all[LIST_MAX];
    int n = list_snapshots(dir, all);
    for (int i = RC_SNAPSHOTS_KEPT; i < n; i++) {
        snapshot_path(dir, all[i], path, sizeof(path));
        unlink(path);
    }
    return 0;
}

/* Reads and checks one file. Returns 0, or a negative code with the reason in `why`. */
static int read_one(const char *path, uint64_t covers, rc_snapshot_t *out, char *why, size_t wlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(why, wlen, "cannot open: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return RC_EIO;
    }
    unsigned char h[HEADER_BYTES];
    uint64_t size = (uint64_t)sb.st_size;
    if (size < HEADER_BYTES || read(fd, h, sizeof(h)) != (ssize_t)sizeof(h) ||
        memcmp(h, MAGIC, 8) != 0) {
        close(fd);
        snprintf(why, wlen, "not a snapshot (no header)");
        return RC_EPARSE;
    }
    uint32_t version = get32(h + 8);
    if (version != RC_SNAPSHOT_VERSION) {
        close(fd);
        snprintf(why, wlen, "format version %u; this build reads version %d", version,
                 RC_SNAPSHOT_VERSION);
        return RC_EPARSE;
    }
    uint64_t len = get64(h + 24);
    if (get64(h + 16) != covers || len != size - HEADER_BYTES) {
        close(fd);
        snprintf(why, wlen,
                 "truncated or renamed (%" PRIu64 " bytes of body, %" PRIu64 " in the file)", len,
                 size - HEADER_BYTES);
        return RC_EPARSE;
    }
    void *body = malloc(len > 0 ? len : 1);
    ssize_t got = body != NULL ? read(fd, body, len) : -1;
    close(fd);
    if (got != (ssize_t)len) {
        free(body);
        snprintf(why, wlen, "cannot read its body");
        return RC_EIO;
    }
    if (body_crc(body, len) != get32(h + 12)) {
        free(body);
        snprintf(why, wlen, "corrupt (CRC mismatch)");
        return RC_EPARSE;
    }
    *out = (rc_snapshot_t){.body = body, .len = len, .covers = covers};
    snprintf(out->path, sizeof(out->path), "%s", path);
    return 0;
}

int rc_snapshot_read_newest(const char *dir, bool (*accept)(void *ctx, const rc_snapshot_t *snap),
                            void *ctx, rc_snapshot_t *out, char *err, size_t errlen)
{
    uint64_t all[LIST_MAX];
    int n = list_snapshots(dir, all);
    if (n < 0) {
        snprintf(err, errlen, "cannot read %s: %s", dir, strerror(errno));
        return RC_EIO;
    }
    for (int i = 0; i < n; i++) {
        char path[600], why[160];
        snapshot_path(dir, all[i], path, sizeof(path));
        if (read_one(path, all[i], out, why, sizeof(why)) != 0) {
            RC_ERROR("snapshot", "snapshot refused: an older one, or the log, is used instead",
                     "file=\"%s\" reason=\"%s\"", path, why);
            continue;
        }
        if (accept == NULL || accept(ctx, out))
            return 0;
        free(out->body);
        out->body = NULL;
    }
    return RC_ENOENT;
}
