/* SPDX-License-Identifier: Apache-2.0 */
/* rc_strerror(): the one table that names the library's error codes. */
#include "util/error.h"

const char *rc_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define RC_ERR_CASE(name, value, text)                                                             \
    case value:                                                                                    \
        return text;
        RC_ERRNO_MAP(RC_ERR_CASE)
#undef RC_ERR_CASE
    }
    return "unknown error";
}
