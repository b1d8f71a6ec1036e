/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: a segment of the event log as a crash or a bad disk may leave it, read
 * back by rc_eventlog_open(): records come back whole or not at all, a torn tail is cut, and
 * the log then takes appends. The input follows a good segment header (so that records are
 * reached), or replaces it when its first byte is odd; the first byte is not written. */
#include "log/eventlog.h"
#include "util/defer.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void each(void *ctx, uint64_t record, const void *data, size_t len)
{
    (void)record;
    (void)data;
    if (len == 0 || len > (16u << 20))
        abort();
    (*(uint64_t *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64];
    static uv_loop_t loop;
    static rc_defer_t defer;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/rc-fuzz-log-XXXXXX");
        if (mkdtemp(dir) == NULL || uv_loop_init(&loop) != 0 || rc_defer_init(&defer, &loop) != 0)
            abort();
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/events-%020d.log", dir, 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    static const unsigned char header[16] = {'R', 'C', 'L', 'O', 'G', 0, 0, 1};
    if (size == 0)
        return 0;
    if (fd < 0 || ((data[0] & 1) == 0 && write(fd, header, 16) != 16) ||
        (ssize_t)(size - 1) != write(fd, data + 1, size - 1))
        abort();
    close(fd);
    rc_eventlog_config_t cfg = {.dir = dir, .fsync = RC_FSYNC_NEVER, .segment_bytes = 1 << 20};
    rc_eventlog_stats_t st;
    uint64_t records = 0;
    char err[256];
    rc_eventlog_t *l = rc_eventlog_open(&loop, &defer, &cfg, each, &records, &st, err, sizeof(err));
    if (l == NULL || records != st.records)
        abort();
    if (rc_eventlog_append(l, "after", 5, NULL, NULL) != 0)
        abort();
    rc_eventlog_close(l);
    uv_run(&loop, UV_RUN_NOWAIT);
    rc_eventlog_free(l);
    /* The segment now reads back whole: what was good, then the append. */
    records = 0;
    l = rc_eventlog_open(&loop, &defer, &cfg, each, &records, &st, err, sizeof(err));
    if (l == NULL || st.torn_bytes != 0 || records != st.records || records == 0)
        abort();
    rc_eventlog_close(l);
    uv_run(&loop, UV_RUN_NOWAIT);
    rc_eventlog_free(l);
    unlink(path);
    return 0;
}
