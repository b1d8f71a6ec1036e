/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-logfill: writes a history of events (bench/make-history.py's lines: ts_ms, user,
 * kind, item) into a data directory's event log as a node would have accepted them, at each
 * event's own time, so that bench/run-restart.sh can measure a restart over millions of events
 * without sending them all through a server first. The records are the node's own encoding
 * (rc_bus_msg_encode, as bus_local.c appends them); the users' pseudonyms are a hash of their
 * ids, not the node's keyed one (a read-back never recomputes them). */
#include "bus/bus.h"
#include "log/eventlog.h"
#include "util/clock.h"
#include "util/defer.h"
#include "util/error.h"
#include "util/wbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define APPENDS_PER_TURN 4096 /* records handed to the log per loop turn (one write each) */

typedef struct {
    FILE *in;
    rc_eventlog_t *log;
    rc_wbuf_t rec;
    uint64_t written, failed, seq;
    bool eof;
    uv_idle_t idle;
} fill_t;

static int parse_kind(const char *s, rc_event_kind_t *out)
{
    static const struct {
        const char *name;
        rc_event_kind_t kind;
    } kinds[] = {{"view", RC_EV_VIEW},
                 {"click", RC_EV_CLICK},
                 {"cart", RC_EV_CART},
                 {"purchase", RC_EV_PURCHASE}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(s, kinds[i].name) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    }
    return RC_EINVAL;
}

static void on_durable(void *arg, int status)
{
    if (status != 0)
        ((fill_t *)arg)->failed++;
}

/* One history line as the node's log record of an accepted event. Returns 0, 1 to skip a
 * line that is not an event, or a negative code. */
static int append_line(fill_t *f, char *line)
{
    char *save = NULL;
    char *ts = strtok_r(line, "\t\n", &save), *user = strtok_r(NULL, "\t\n", &save);
    char *kind = strtok_r(NULL, "\t\n", &save), *item = strtok_r(NULL, "\t\n", &save);
    rc_event_kind_t k;
    if (ts == NULL || user == NULL || kind == NULL || item == NULL || parse_kind(kind, &k) != 0)
        return 1;
    char id[24], pseudo[33];
    int id_len = snprintf(id, sizeof(id), "h%" PRIu64, f->written);
    XXH128_hash_t h = XXH3_128bits(user, strlen(user));
    snprintf(pseudo, sizeof(pseudo), "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
    int64_t ts_ms = strtoll(ts, NULL, 10);
    rc_bus_msg_t m = {
        .kind = RC_BUS_EVENT,
        .user = {pseudo, 32},
        .origin_node = {"logfill", 7},
        .ev = {.id = {id, (uint32_t)id_len},
               .item = {item, (uint32_t)strlen(item)},
               .kind = k,
               .has_ts = true,
               .ts_ms = ts_ms},
        .received_ms = ts_ms,
        .profile_user = {user, (uint32_t)strlen(user)},
        .seq = ++f->seq,
    };
    rc_wbuf_reset(&f->rec);
    int rc = rc_bus_msg_encode(&m, &f->rec);
    if (rc == 0)
        rc = rc_eventlog_append(f->log, rc_wbuf_data(&f->rec), f->rec.len, on_durable, f);
    if (rc == 0)
        f->written++;
    return rc;
}

/* Each loop turn hands the log a bounded batch, which it writes at the end of the turn. */
static void on_idle(uv_idle_t *h)
{
    fill_t *f = h->data;
    char line[512];
    for (int i = 0; i < APPENDS_PER_TURN; i++) {
        if (fgets(line, sizeof(line), f->in) == NULL) {
            f->eof = true;
            uv_idle_stop(h);
            uv_close((uv_handle_t *)h, NULL);
            rc_eventlog_close(f->log);
            return;
        }
        int rc = append_line(f, line);
        if (rc < 0) {
            fprintf(stderr, "logfill: %s\n", rc_strerror(rc));
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: rankcast-logfill DATA_DIR HISTORY_FILE\n");
        return 2;
    }
    fill_t f = {.in = fopen(argv[2], "r")};
    if (f.in == NULL) {
        perror(argv[2]);
        return 1;
    }
    uv_loop_t loop;
    rc_defer_t defer;
    uv_loop_init(&loop);
    rc_defer_init(&defer, &loop);
    /* A node's defaults, without retention: everything given is kept. */
    rc_eventlog_config_t cfg = {
        .dir = argv[1], .fsync = RC_FSYNC_NEVER, .segment_bytes = 64u << 20};
    rc_eventlog_stats_t st;
    char err[300];
    f.log = rc_eventlog_open(&loop, &defer, &cfg, NULL, NULL, &st, err, sizeof(err));
    if (f.log == NULL) {
        fprintf(stderr, "logfill: %s\n", err);
        return 1;
    }
    /* Numbers continue after what a node appended before (its own seq runs on its clock). */
    f.seq = (uint64_t)rc_wall_ms() * 1000;
    rc_wbuf_init(&f.rec, 256);
    uv_idle_init(&loop, &f.idle);
    f.idle.data = &f;
    uv_idle_start(&f.idle, on_idle);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc_defer_close(&defer);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc_eventlog_free(f.log);
    printf("records=%" PRIu64 " before=%" PRIu64 " failed=%" PRIu64 "\n", f.written, st.records,
           f.failed);
    rc_wbuf_free(&f.rec);
    fclose(f.in);
    return f.failed == 0 ? 0 : 1;
}
