/* SPDX-License-Identifier: Apache-2.0 */
/* logfmt writer behind the RC_LOG macros. One fprintf per record keeps lines whole even
 * when several worker processes share a terminal. */
#include "util/log.h"
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

rc_log_level_t rc_log_level = RC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int rc_log_level_parse(const char *name, rc_log_level_t *out)
{
    for (int i = 0; i <= RC_LOG_OFF; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (rc_log_level_t)i;
            return 0;
        }
    }
    return RC_EINVAL;
}

void rc_log_write(rc_log_level_t level, const char *mod, const char *msg, const char *kv_fmt, ...)
{
    char kv[1024] = "";
    struct timespec ts;
    struct tm tm;
    char stamp[32];

    if (kv_fmt != NULL) {
        va_list ap;
        kv[0] = ' ';
        va_start(ap, kv_fmt);
        vsnprintf(kv + 1, sizeof(kv) - 1, kv_fmt, ap);
        va_end(ap);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "ts=%s.%03ldZ level=%s mod=%s msg=\"%s\"%s\n", stamp, ts.tv_nsec / 1000000,
            level_names[level], mod, msg, kv);
}
