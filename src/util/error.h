/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes of the rankcast library: every fallible function returns 0 or one of these
 * negative codes, and rc_strerror() names it. Protocol error codes sent to clients are a
 * separate, positive table in proto.h. */
#ifndef RC_ERROR_H
#define RC_ERROR_H

#define RC_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(ERANGE, -3, "value out of range")                                                            \
    X(ENOENT, -4, "not found")                                                                     \
    X(EEXIST, -5, "already exists")                                                                \
    X(EIO, -6, "input/output error")                                                               \
    X(EPARSE, -7, "parse error")                                                                   \
    X(EFULL, -8, "capacity reached")                                                               \
    X(ECLOSED, -9, "closed")                                                                       \
    X(EUNAVAIL, -10, "backend unavailable")

enum {
#define RC_ERR_ENUM(name, value, text) RC_##name = (value),
    RC_ERRNO_MAP(RC_ERR_ENUM)
#undef RC_ERR_ENUM
};

/** Returns a static description of a code returned by any rc_ function (0 is "ok"). */
const char *rc_strerror(int err);

#endif
