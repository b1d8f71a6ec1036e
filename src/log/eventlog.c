/* SPDX-License-Identifier: Apache-2.0 */
/* The event log; see eventlog.h. */
#include "log/eventlog.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/log.h"
#include "util/wbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_BYTES 16
#define RECORD_HEAD  8
#define RECORD_MAX   (16u << 20)
static const char MAGIC[8] = {'R', 'C', 'L', 'O', 'G', 0, 0, 1};

typedef struct segment {
    uint64_t first; /* number of its first record */
    uint64_t bytes;
    int64_t mtime_s;
} segment_t;

typedef struct waiter {
    rc_eventlog_done_fn done;
    void *arg;
} waiter_t;

/* Completions waiting for one stage; grown on demand, kept for reuse. */
typedef struct waiters {
    waiter_t *w;
    uint32_t n, cap;
} waiters_t;

struct rc_eventlog {
    uv_loop_t *loop;
    rc_eventlog_config_t cfg;
    char dir[512];
    segment_t *segs; /* oldest first; the last is the one appended to */
    uint32_t n_segs, cap_segs;
    int fd;
    uint64_t next_record;
    rc_wbuf_t batch; /* records appended this turn, not yet written */
    uint64_t batch_records;
    waiters_t appended; /* their completions */
    waiters_t written;  /* written, waiting for a sync that begins after */
    waiters_t syncing;  /* covered by the sync running in the thread pool */
    waiters_t spare;    /* an empty array, for report() */
    bool unsynced;      /* bytes written since the last sync began */
    bool sync_running;
    int sync_rc;
    uv_work_t work;
    rc_defer_t *defer; /* writes the batch at the end of the loop turn */
    bool flush_due;
    uv_timer_t timer; /* RC_FSYNC_INTERVAL */
    bool closed;
    struct reader *reader; /* the read-back, until rc_eventlog_free() */
    bool timer_ready;      /* once the read-back is done */
};

int rc_fsync_parse(const char *s, rc_fsync_t *out)
{
    static const char *names[] = {"always", "interval", "never"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (rc_fsync_t)i;
            return 0;
        }
    }
    return RC_EINVAL;
}

static uint32_t record_crc(uint32_t len, const void *data)
{
    unsigned char lb[4] = {(unsigned char)len, (unsigned char)(len >> 8),
                           (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
    uLong c = crc32(crc32(0L, Z_NULL, 0), lb, 4);
    return (uint32_t)crc32(c, data, len);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void segment_path(const rc_eventlog_t *l, uint64_t first, char *out, size_t len)
{
    snprintf(out, len, "%s/events-%020" PRIu64 ".log", l->dir, first);
}

static int push_waiter(waiters_t *ws, rc_eventlog_done_fn done, void *arg)
{
    if (ws->n == ws->cap) {
        waiter_t *p = rc_grow(ws->w, &ws->cap, sizeof(*p), 256);
        if (p == NULL)
            return RC_ENOMEM;
        ws->w = p;
    }
    ws->w[ws->n++] = (waiter_t){done, arg};
    return 0;
}

/* Moves every completion of `from` to the end of `to` (which keeps its order). Into an empty
 * stage the arrays are swapped: no copy, and both keep their memory. */
static int move_waiters(waiters_t *from, waiters_t *to)
{
    if (to->n == 0) {
        waiters_t t = *to;
        *to = *from;
        *from = t;
        return 0;
    }
    for (uint32_t i = 0; i < from->n; i++)
        if (push_waiter(to, from->w[i].done, from->w[i].arg) != 0)
            return RC_ENOMEM;
    from->n = 0;
    return 0;
}

/* Reports a stage's completions. They may append again: those land in the stage's spare
 * array, swapped in before the calls, and the arrays trade places turn after turn, so
 * reporting allocates nothing in steady state. */
static void report(rc_eventlog_t *l, waiters_t *ws, int status)
{
    if (ws->n == 0)
        return;
    waiters_t run = *ws;
    *ws = l->spare;
    ws->n = 0;
    l->spare = (waiters_t){0};
    for (uint32_t i = 0; i < run.n; i++)
        run.w[i].done(run.w[i].arg, status);
    if (l->spare.w == NULL) {
        l->spare = run;
        l->spare.n = 0;
    } else {
        free(run.w);
    }
}

/* ---- reading back ---- */

/* The read-back in progress: a segment at a time, mapped, its records read in slices
 * (rc_eventlog_read). */
typedef struct reader {
    uint32_t seg;         /* the segment being read, or the next one to open */
    bool open;            /* seg is open and mapped */
    int fd;               /* the segment's */
    unsigned char *p;     /* its mapping (NULL when empty) */
    uint64_t size;        /* its size when opened */
    int64_t mtime_s;      /* its mtime */
    uint64_t off;         /* the first byte not read yet */
    uint64_t records;     /* good records of the segment read so far */
    uint64_t passed;      /* of which handed to `each` (from read_from on) */
    bool bad;             /* reading stopped at a bad record */
    bool done;            /* every segment read, the tail opened */
    uint64_t bytes_read;  /* of the segments finished and read, for estimates */
    uint64_t total_bytes; /* of every segment to read (not those wholly before read_from) */
    uint64_t unread;      /* records of segments wholly before read_from (not read) */
    rc_eventlog_stats_t st;
} reader_t;

/* Reads records of the open segment until its end, a bad record, or `budget` records.
 * Returns the records read. */
static uint64_t read_records(reader_t *r, uint64_t first, uint64_t read_from,
                             rc_eventlog_record_fn each, void *ctx, uint64_t budget)
{
    uint64_t n = 0;
    const unsigned char *p = r->p;
    if (r->off == 0) {
        if (r->size < HEADER_BYTES || memcmp(p, MAGIC, 8) != 0 ||
            ((uint64_t)get32(p + 8) | (uint64_t)get32(p + 12) << 32) != first) {
            r->bad = r->size > 0; /* nothing good: the segment ends at 0 */
            return 0;
        }
        r->off = HEADER_BYTES;
    }
    while (r->off < r->size && n < budget) {
        uint64_t off = r->off;
        if (r->size - off < RECORD_HEAD) {
            r->bad = true;
            break;
        }
        uint32_t len = get32(p + off), crc = get32(p + off + 4);
        if (len == 0 || len > RECORD_MAX || r->size - off - RECORD_HEAD < len ||
            record_crc(len, p + off + RECORD_HEAD) != crc) {
            r->bad = true;
            break;
        }
        if (first + r->records >= read_from) {
            if (each != NULL)
                each(ctx, first + r->records, p + off + RECORD_HEAD, len);
            r->passed++;
        }
        r->records++;
        r->off = off + RECORD_HEAD + len;
        n++;
    }
    return n;
}

static int cmp_segments(const void *a, const void *b)
{
    uint64_t x = ((const segment_t *)a)->first, y = ((const segment_t *)b)->first;
    return x < y ? -1 : x > y;
}

/* The segments in the directory, sorted. */
static int list_segments(rc_eventlog_t *l, char *err, size_t errlen)
{
    DIR *d = opendir(l->dir);
    if (d == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", l->dir, strerror(errno));
        return RC_EIO;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t first;
        char tail[8];
        if (sscanf(de->d_name, "events-%20" SCNu64 ".%7s", &first, tail) != 2 ||
            strcmp(tail, "log") != 0 || strlen(de->d_name) != 31)
            continue;
        if (l->n_segs == l->cap_segs) {
            segment_t *s = rc_grow(l->segs, &l->cap_segs, sizeof(*s), 16);
            if (s == NULL) {
                closedir(d);
                snprintf(err, errlen, "out of memory");
                return RC_ENOMEM;
            }
            l->segs = s;
        }
        l->segs[l->n_segs++] = (segment_t){.first = first};
    }
    closedir(d);
    if (l->n_segs > 1)
        qsort(l->segs, l->n_segs, sizeof(*l->segs), cmp_segments);
    return 0;
}

/* Whether segment `seg` holds only records below read_from (a snapshot has them): it is not
 * read, only counted. */
static bool wholly_before(const rc_eventlog_t *l, uint32_t seg)
{
    return seg + 1 < l->n_segs && l->segs[seg + 1].first <= l->cfg.read_from;
}

/* Opens and maps segment r->seg. A segment wholly below read_from is only counted. */
static int open_segment(rc_eventlog_t *l, reader_t *r, char *err, size_t errlen)
{
    segment_t *s = &l->segs[r->seg];
    bool last = r->seg + 1 == l->n_segs;
    char path[600];
    segment_path(l, s->first, path, sizeof(path));
    int fd = open(path, last ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RC_EIO;
    }
    *r = (reader_t){.seg = r->seg,
                    .open = true,
                    .fd = fd,
                    .size = (uint64_t)sb.st_size,
                    .mtime_s = (int64_t)sb.st_mtime,
                    .bytes_read = r->bytes_read,
                    .total_bytes = r->total_bytes,
                    .unread = r->unread,
                    .st = r->st};
    if (wholly_before(l, r->seg)) { /* before the snapshot: not read */
        r->st.skipped_records += l->segs[r->seg + 1].first - s->first;
        r->unread += l->segs[r->seg + 1].first - s->first;
        r->off = r->size;
        return 0;
    }
    if (r->size > 0) {
        void *p = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            snprintf(err, errlen, "cannot map %s: %s", path, strerror(errno));
            close(fd);
            r->open = false;
            return RC_EIO;
        }
        madvise(p, r->size, MADV_SEQUENTIAL);
        r->p = p;
    }
    return 0;
}

/* The open segment is read: a torn tail of the last one is cut, a bad record elsewhere
 * reported, and the segment's size and records counted. */
static int close_segment(rc_eventlog_t *l, reader_t *r, char *err, size_t errlen)
{
    segment_t *s = &l->segs[r->seg];
    bool last = r->seg + 1 == l->n_segs;
    char path[600];
    segment_path(l, s->first, path, sizeof(path));
    uint64_t size = r->size, good = r->p != NULL ? r->off : 0;
    if (r->p != NULL)
        munmap(r->p, r->size);
    r->p = NULL;
    int rc = 0;
    if (last && (r->bad || size < HEADER_BYTES)) {
        /* A torn tail: the process died inside a write. Cut it, so appends follow good
         * data; an empty or headless segment gets its header again. */
        if (good < HEADER_BYTES)
            good = 0;
        r->st.torn_bytes += size - good;
        if (ftruncate(r->fd, (off_t)good) != 0) {
            snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
            rc = RC_EIO;
        } else if (size > good) {
            RC_WARN("log", "torn tail cut", "segment=%s bytes=%" PRIu64, path, size - good);
        }
        size = good;
    } else if (r->bad) {
        r->st.bad_segments++;
        RC_ERROR("log", "bad record: the rest of the segment is skipped",
                 "segment=%s offset=%" PRIu64, path, good);
    }
    close(r->fd);
    r->open = false;
    s->bytes = size;
    s->mtime_s = r->mtime_s;
    r->st.records += r->passed;
    r->st.skipped_records += r->records - r->passed;
    r->st.bytes += size;
    r->st.segments++;
    if (!wholly_before(l, r->seg))
        r->bytes_read += r->size;
    if (last)
        l->next_record = s->first + r->records;
    r->seg++;
    return rc;
}

/* ---- appending ---- */

static int sync_dir(const rc_eventlog_t *l)
{
    int d = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0)
        return RC_EIO;
    int rc = fsync(d) == 0 ? 0 : RC_EIO;
    close(d);
    return rc;
}

/* Opens the last segment for appending, or starts one at `next_record` (with its header).
 * Returns 0 or RC_EIO with a reason. */
static int open_tail(rc_eventlog_t *l, bool fresh, char *err, size_t errlen)
{
    if (fresh || l->n_segs == 0) {
        if (l->n_segs == l->cap_segs) {
            segment_t *s = rc_grow(l->segs, &l->cap_segs, sizeof(*s), 16);
            if (s == NULL) {
                snprintf(err, errlen, "out of memory");
                return RC_ENOMEM;
            }
            l->segs = s;
        }
        l->segs[l->n_segs++] = (segment_t){.first = l->next_record, .mtime_s = time(NULL)};
    }
    segment_t *s = &l->segs[l->n_segs - 1];
    char path[600];
    segment_path(l, s->first, path, sizeof(path));
    /* A segment read back empty (or cut to nothing) starts over: O_TRUNC. */
    l->fd =
        open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (s->bytes == 0 ? O_TRUNC : 0), 0600);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return RC_EIO;
    }
    if (s->bytes == 0) {
        unsigned char h[HEADER_BYTES];
        memcpy(h, MAGIC, 8);
        put32(h + 8, (uint32_t)s->first);
        put32(h + 12, (uint32_t)(s->first >> 32));
        if (write(l->fd, h, sizeof(h)) != (ssize_t)sizeof(h) || fdatasync(l->fd) != 0 ||
            sync_dir(l) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return RC_EIO;
        }
        s->bytes = HEADER_BYTES;
    }
    return 0;
}

/* Deletes whole segments, oldest first, while the log is over its size or they are over
 * its age; never the one appended to. */
static uint32_t apply_retention(rc_eventlog_t *l)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < l->n_segs; i++)
        total += l->segs[i].bytes;
    int64_t now = time(NULL);
    uint32_t drop = 0;
    while (drop + 1 < l->n_segs) {
        const segment_t *s = &l->segs[drop];
        bool over_size = l->cfg.retain_bytes > 0 && total > l->cfg.retain_bytes;
        bool over_age = l->cfg.retain_s > 0 && now - s->mtime_s > l->cfg.retain_s;
        if (!over_size && !over_age)
            break;
        char path[600];
        segment_path(l, s->first, path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT) {
            RC_WARN("log", "cannot delete an old segment", "segment=%s error=\"%s\"", path,
                    strerror(errno));
            break;
        }
        total -= s->bytes;
        drop++;
    }
    if (drop > 0) {
        memmove(l->segs, l->segs + drop, (l->n_segs - drop) * sizeof(*l->segs));
        l->n_segs -= drop;
    }
    return drop;
}

static void start_sync(rc_eventlog_t *l);

static void sync_work(uv_work_t *w)
{
    rc_eventlog_t *l = w->data;
    l->sync_rc = fdatasync(l->fd) == 0 ? 0 : RC_EIO;
}

static void sync_done(uv_work_t *w, int status)
{
    rc_eventlog_t *l = w->data;
    l->sync_running = false;
    int rc = status == 0 ? l->sync_rc : RC_EIO;
    if (rc != 0)
        RC_ERROR("log", "fdatasync failed: the events it covered are refused", NULL);
    report(l, &l->syncing, rc);
    if (!l->closed && l->written.n > 0)
        start_sync(l);
}

static void start_sync(rc_eventlog_t *l)
{
    if (l->sync_running || l->fd < 0)
        return;
    if (move_waiters(&l->written, &l->syncing) != 0) {
        report(l, &l->written, RC_ENOMEM);
        return;
    }
    l->unsynced = false;
    l->sync_running = true;
    l->work.data = l;
    if (uv_queue_work(l->loop, &l->work, sync_work, sync_done) != 0) {
        l->sync_running = false;
        l->sync_rc = fdatasync(l->fd) == 0 ? 0 : RC_EIO;
        report(l, &l->syncing, l->sync_rc);
    }
}

/* Closes the segment appended to and starts the next one: synced first, so that whatever
 * waits for a sync is durable (rare: once per segment_bytes). Only between syncs. */
static void roll(rc_eventlog_t *l)
{
    char err[256];
    int rc = l->cfg.fsync == RC_FSYNC_NEVER || fdatasync(l->fd) == 0 ? 0 : RC_EIO;
    report(l, &l->written, rc);
    close(l->fd);
    l->fd = -1;
    l->unsynced = false;
    if (open_tail(l, true, err, sizeof(err)) != 0)
        RC_ERROR("log", "cannot start a new segment", "error=\"%s\"", err);
    apply_retention(l);
}

/* The turn's records in one write. A failed or short write is undone (the segment cut back
 * to where it was), and its records are refused. */
static void write_batch(rc_eventlog_t *l)
{
    if (l->batch.len == 0)
        return;
    segment_t *s = &l->segs[l->n_segs - 1];
    const char *p = rc_wbuf_data(&l->batch);
    size_t total = l->batch.len, left = total;
    int rc = rc_wbuf_ok(&l->batch);
    while (rc == 0 && left > 0) {
        ssize_t w = l->fd < 0 ? -1 : write(l->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            RC_ERROR("log", "write failed: events refused", "error=\"%s\"",
                     l->fd < 0 ? "no segment open" : strerror(errno));
            if (l->fd >= 0 && ftruncate(l->fd, (off_t)s->bytes) != 0)
                RC_ERROR("log", "cannot undo a failed write", NULL);
            rc = RC_EIO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    rc_wbuf_reset(&l->batch);
    uint64_t records = l->batch_records;
    l->batch_records = 0;
    if (rc != 0) {
        l->next_record -= records;
        report(l, &l->appended, rc);
        return;
    }
    s->bytes += total;
    s->mtime_s = time(NULL);
    l->unsynced = true;
    if (l->cfg.fsync == RC_FSYNC_ALWAYS) {
        if (move_waiters(&l->appended, &l->written) != 0)
            report(l, &l->appended, RC_ENOMEM);
    } else {
        report(l, &l->appended, 0);
    }
    if (l->closed) /* rc_eventlog_close() syncs */
        return;
    if (s->bytes >= l->cfg.segment_bytes && !l->sync_running)
        roll(l);
    else if (l->cfg.fsync == RC_FSYNC_ALWAYS)
        start_sync(l);
}

static void on_flush(void *arg)
{
    rc_eventlog_t *l = arg;
    l->flush_due = false;
    write_batch(l);
}

static void on_timer(uv_timer_t *t)
{
    rc_eventlog_t *l = t->data;
    if (l->unsynced)
        start_sync(l);
}

int rc_eventlog_append(rc_eventlog_t *l, const void *data, size_t len, rc_eventlog_done_fn done,
                       void *arg)
{
    if (l->closed)
        return RC_ECLOSED;
    if (!l->reader->done)
        return RC_EUNAVAIL;
    if (len == 0 || len > RECORD_MAX)
        return RC_EINVAL;
    if (!l->flush_due) {
        if (rc_defer(l->defer, on_flush, l) != 0)
            return RC_ENOMEM;
        l->flush_due = true;
    }
    if (done != NULL && push_waiter(&l->appended, done, arg) != 0)
        return RC_ENOMEM;
    unsigned char head[RECORD_HEAD];
    put32(head, (uint32_t)len);
    put32(head + 4, record_crc((uint32_t)len, data));
    rc_wbuf_put(&l->batch, head, sizeof(head));
    rc_wbuf_put(&l->batch, data, len);
    l->next_record++;
    l->batch_records++;
    return 0;
}

uint64_t rc_eventlog_next_record(const rc_eventlog_t *l)
{
    return l->next_record;
}

size_t rc_eventlog_pending(const rc_eventlog_t *l)
{
    return l->appended.n + l->written.n + l->syncing.n;
}

void rc_eventlog_maintain(rc_eventlog_t *l)
{
    if (l != NULL && !l->closed && l->reader->done)
        apply_retention(l);
}

static int make_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return RC_EIO;
}

/* Every segment read: appends go on after the last good record. A snapshot that covers
 * records the log lost (a directory restored from a backup, a torn tail) moves numbering on
 * past it, in a new segment, so no new record takes a number the snapshot claims. */
static int finish_reading(rc_eventlog_t *l, char *err, size_t errlen)
{
    bool behind = l->next_record < l->cfg.number_from;
    if (behind) {
        RC_WARN("log", "the log ends before the snapshot: numbering resumes after it",
                "log_end=%" PRIu64 " snapshot=%" PRIu64, l->next_record, l->cfg.number_from);
        l->next_record = l->cfg.number_from;
    }
    int rc = open_tail(l, behind, err, errlen);
    if (rc != 0)
        return rc;
    l->reader->st.deleted = apply_retention(l);
    uv_timer_init(l->loop, &l->timer);
    l->timer.data = l;
    l->timer_ready = true;
    if (l->cfg.fsync == RC_FSYNC_INTERVAL)
        uv_timer_start(&l->timer, on_timer, (uint64_t)l->cfg.fsync_interval_ms,
                       (uint64_t)l->cfg.fsync_interval_ms);
    l->reader->done = true;
    return 0;
}

rc_eventlog_t *rc_eventlog_start(uv_loop_t *loop, struct rc_defer *defer,
                                 const rc_eventlog_config_t *cfg, char *err, size_t errlen)
{
    rc_eventlog_t *l = calloc(1, sizeof(*l));
    reader_t *r = calloc(1, sizeof(*r));
    if (l == NULL || r == NULL) {
        free(l);
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->loop = loop;
    l->defer = defer;
    l->cfg = *cfg;
    l->fd = -1;
    l->reader = r;
    snprintf(l->dir, sizeof(l->dir), "%s", cfg->dir);
    l->cfg.dir = l->dir;
    rc_wbuf_init(&l->batch, 0);
    if (make_dir(l->dir, err, errlen) != 0 || list_segments(l, err, errlen) != 0) {
        free(l->segs);
        free(r);
        free(l);
        return NULL;
    }
    for (uint32_t i = 0; i < l->n_segs; i++) {
        char path[600];
        struct stat sb;
        segment_path(l, l->segs[i].first, path, sizeof(path));
        if (!wholly_before(l, i) && stat(path, &sb) == 0)
            r->total_bytes += (uint64_t)sb.st_size;
    }
    return l;
}

int rc_eventlog_read(rc_eventlog_t *l, rc_eventlog_record_fn each, void *ctx, uint64_t budget,
                     char *err, size_t errlen)
{
    reader_t *r = l->reader;
    while (!r->done) {
        if (r->seg == l->n_segs)
            return finish_reading(l, err, errlen) == 0 ? 1 : RC_EIO;
        if (!r->open && open_segment(l, r, err, errlen) != 0)
            return RC_EIO;
        if (budget == 0)
            return 0;
        if (r->off < r->size && r->p != NULL && !r->bad)
            budget -= read_records(r, l->segs[r->seg].first, l->cfg.read_from, each, ctx, budget);
        if ((r->off >= r->size || r->bad || r->p == NULL) && close_segment(l, r, err, errlen) != 0)
            return RC_EIO;
    }
    return 1;
}

const rc_eventlog_stats_t *rc_eventlog_read_stats(const rc_eventlog_t *l)
{
    return &l->reader->st;
}

uint64_t rc_eventlog_bytes_left(const rc_eventlog_t *l)
{
    const reader_t *r = l->reader;
    if (r->done)
        return 0;
    uint64_t done = r->bytes_read + (r->open ? r->off : 0);
    return r->total_bytes > done ? r->total_bytes - done : 0;
}

uint64_t rc_eventlog_records_left(const rc_eventlog_t *l)
{
    const reader_t *r = l->reader;
    uint64_t left = rc_eventlog_bytes_left(l);
    uint64_t records =
        r->st.records + r->st.skipped_records - r->unread + (r->open ? r->records : 0);
    uint64_t bytes = r->bytes_read + (r->open ? r->off : 0);
    if (left == 0 || records == 0 || bytes == 0)
        return left > 0 ? left / 100 : 0; /* nothing read yet: a typical event's size */
    return (uint64_t)((double)left * (double)records / (double)bytes);
}

rc_eventlog_t *rc_eventlog_open(uv_loop_t *loop, struct rc_defer *defer,
                                const rc_eventlog_config_t *cfg, rc_eventlog_record_fn each,
                                void *ctx, rc_eventlog_stats_t *st, char *err, size_t errlen)
{
    rc_eventlog_t *l = rc_eventlog_start(loop, defer, cfg, err, errlen);
    if (l == NULL)
        return NULL;
    int rc = rc_eventlog_read(l, each, ctx, UINT64_MAX, err, errlen);
    if (rc != 1) {
        rc_eventlog_close(l); /* no loop handle yet: nothing to run */
        rc_eventlog_free(l);
        return NULL;
    }
    *st = l->reader->st;
    return l;
}

int rc_eventlog_flush(rc_eventlog_t *l)
{
    if (l->closed || !l->reader->done)
        return RC_ECLOSED;
    write_batch(l);
    return 0;
}

int rc_eventlog_sync_written(const rc_eventlog_t *l)
{
    return l->fd >= 0 && fdatasync(l->fd) == 0 ? 0 : RC_EIO;
}

int rc_eventlog_sync_now(rc_eventlog_t *l)
{
    int rc = rc_eventlog_flush(l);
    return rc != 0 ? rc : rc_eventlog_sync_written(l);
}

void rc_eventlog_close(rc_eventlog_t *l)
{
    if (l == NULL || l->closed)
        return;
    l->closed = true;
    write_batch(l);
    /* A sync may be running in the pool on the same descriptor: this one is its own call,
     * covers what that one covers too, and the descriptor stays open until
     * rc_eventlog_free(). */
    int rc = l->fd >= 0 && l->cfg.fsync != RC_FSYNC_NEVER && fdatasync(l->fd) != 0 ? RC_EIO : 0;
    report(l, &l->syncing, rc);
    report(l, &l->written, rc);
    report(l, &l->appended, RC_ECLOSED);
    if (l->timer_ready)
        uv_close((uv_handle_t *)&l->timer, NULL);
}

void rc_eventlog_free(rc_eventlog_t *l)
{
    if (l == NULL)
        return;
    reader_t *r = l->reader;
    if (r->open) { /* stopped while reading back */
        if (r->p != NULL)
            munmap(r->p, r->size);
        close(r->fd);
    }
    free(r);
    if (l->fd >= 0)
        close(l->fd);
    rc_wbuf_free(&l->batch);
    free(l->appended.w);
    free(l->written.w);
    free(l->syncing.w);
    free(l->spare.w);
    free(l->segs);
    free(l);
}
