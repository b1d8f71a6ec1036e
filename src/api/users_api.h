/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API's calls about users: POST /api/v1/push publishes an application message to
 * a user's or a segment's connections on every node; POST /api/v1/users/erase forgets a user
 * on every node and in the profile store (GDPR). See docs/api.md. */
#ifndef RC_USERS_API_H
#define RC_USERS_API_H

#include "session/session.h"
#include "util/wbuf.h"

#include <stddef.h>

/** POST /api/v1/push {"user"|"segment", "topic"?, "data"}: 202 {"id"} once handed to the
 * bus; 400 for a bad body; 503 when the bus cannot take it now. Writes the answer to `out`
 * and returns the status. */
unsigned rc_users_api_push(rc_sessions_t *s, const char *body, size_t len, rc_wbuf_t *out);

/** POST /api/v1/users/erase {"user"}: 200 {"erased": true}; 400 for a bad body; 503 when
 * the profile store or the bus refused. */
unsigned rc_users_api_erase(rc_sessions_t *s, const char *body, size_t len, rc_wbuf_t *out);

#endif
