/* SPDX-License-Identifier: Apache-2.0 */
/* Push and erase: the bodies are parsed by admin_api.c, the work is the sessions'. */
#include "api/users_api.h"
#include "api/admin_api.h"
#include "util/error.h"
#include "util/log.h"

#include <string.h>

unsigned rc_users_api_push(rc_sessions_t *s, const char *body, size_t len, rc_wbuf_t *out)
{
    rc_api_push_t p;
    char err[128], id[40];
    int rc = rc_api_push_parse(&p, body, len, err, sizeof(err));
    if (rc != 0)
        return rc_api_error(out, rc == RC_EINVAL ? 400 : 500,
                            rc == RC_EINVAL ? err : "out of memory");
    rc = rc_sessions_push(s, p.user, p.segment, p.topic, &p.data, id, sizeof(id));
    rc_api_push_free(&p);
    if (rc != 0)
        return rc_api_error(out, 503, "the bus cannot take the push now; retry");
    return rc_api_answer(out, 202, json_pack("{s:s}", "id", id));
}

unsigned rc_users_api_erase(rc_sessions_t *s, const char *body, size_t len, rc_wbuf_t *out)
{
    char user[RC_ID_MAX + 1], err[128];
    if (rc_api_erase_parse(body, len, user, err, sizeof(err)) != 0)
        return rc_api_error(out, 400, err);
    RC_INFO("api", "user erased", "user_len=%zu", strlen(user));
    if (rc_sessions_erase_user(s, user, strlen(user)) != 0)
        return rc_api_error(out, 503, "profile store refused");
    return rc_api_answer(out, 200, json_pack("{s:b}", "erased", 1));
}
