/* SPDX-License-Identifier: Apache-2.0 */
/* Structured logs: one logfmt line per record on stderr,
 *   ts=2026-11-22T08:00:00.123Z level=info mod=gateway msg="listening" port=8080
 * The macros test the level before evaluating their arguments, so a disabled debug line
 * costs one comparison on the hot path. */
#ifndef RC_LOG_H
#define RC_LOG_H

typedef enum {
    RC_LOG_DEBUG = 0,
    RC_LOG_INFO,
    RC_LOG_WARN,
    RC_LOG_ERROR,
    RC_LOG_OFF
} rc_log_level_t;

extern rc_log_level_t rc_log_level;

/** Parses "debug", "info", "warn", "error" or "off"; returns 0 or RC_EINVAL. */
int rc_log_level_parse(const char *name, rc_log_level_t *out);

/** Writes one record. `msg` is a short constant event name; `kv_fmt` (may be NULL) formats
 * the remaining key=value pairs. Use the macros below instead. */
void rc_log_write(rc_log_level_t level, const char *mod, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define RC_LOG(level, mod, msg, ...)                                                               \
    do {                                                                                           \
        if ((level) >= rc_log_level)                                                               \
            rc_log_write((level), (mod), (msg), __VA_ARGS__);                                      \
    } while (0)
#define RC_DEBUG(mod, msg, ...) RC_LOG(RC_LOG_DEBUG, mod, msg, __VA_ARGS__)
#define RC_INFO(mod, msg, ...)  RC_LOG(RC_LOG_INFO, mod, msg, __VA_ARGS__)
#define RC_WARN(mod, msg, ...)  RC_LOG(RC_LOG_WARN, mod, msg, __VA_ARGS__)
#define RC_ERROR(mod, msg, ...) RC_LOG(RC_LOG_ERROR, mod, msg, __VA_ARGS__)

#endif
