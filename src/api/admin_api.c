/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API's request bodies: JSON objects with exactly the documented fields. */
#include "api/admin_api.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

#define PUSH_MAX_DEPTH 8

/* Depth of a JSON value, stopping early once past `limit` (so a deep body costs little). */
static int json_depth(const json_t *j, int limit)
{
    int deepest = 0;
    if (limit < 0)
        return 1;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            int d = json_depth(v, limit - 1);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    for (size_t i = 0; json_is_array(j) && i < json_array_size(j); i++) {
        int d = json_depth(json_array_get(j, i), limit - 1);
        deepest = d > deepest ? d : deepest;
    }
    return json_is_array(j) ? deepest + 1 : 0;
}

unsigned rc_api_answer(rc_wbuf_t *out, unsigned status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(j);
    rc_wbuf_reset(out);
    if (text == NULL) {
        rc_wbuf_puts(out, "{\"error\":\"out of memory\"}\n");
        return 500;
    }
    rc_wbuf_puts(out, text);
    rc_wbuf_putc(out, '\n');
    free(text);
    return status;
}

unsigned rc_api_error(rc_wbuf_t *out, unsigned status, const char *message)
{
    return rc_api_answer(out, status, json_pack("{s:s}", "error", message));
}

bool rc_api_only_fields(json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known)
            return false;
    }
    return true;
}

static bool valid_segment(const char *s)
{
    return strcmp(s, "all") == 0 || strcmp(s, "device:desktop") == 0 ||
           strcmp(s, "device:mobile") == 0 || strcmp(s, "device:tablet") == 0 ||
           strcmp(s, "device:other") == 0;
}

json_t *rc_api_load_object(const char *body, size_t len, char *err, size_t errlen)
{
    json_t *j = len <= RC_API_BODY_MAX ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(err, errlen, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

static int refuse(json_t *j, char *err, size_t errlen, const char *why)
{
    json_decref(j);
    snprintf(err, errlen, "%s", why);
    return RC_EINVAL;
}

int rc_api_push_parse(rc_api_push_t *p, const char *body, size_t len, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    json_t *j = rc_api_load_object(body, len, err, errlen);
    if (j == NULL)
        return RC_EINVAL;
    const char *user = json_string_value(json_object_get(j, "user"));
    const char *segment = json_string_value(json_object_get(j, "segment"));
    json_t *jtopic = json_object_get(j, "topic");
    const char *topic = jtopic ? json_string_value(jtopic) : "message";
    json_t *data = json_object_get(j, "data");
    size_t known = (user != NULL) + (segment != NULL) + (jtopic != NULL) + (data != NULL);
    if ((user == NULL) == (segment == NULL) || data == NULL || known != json_object_size(j))
        return refuse(j, err, errlen, "expected {user or segment, topic?, data} and nothing else");
    if (user != NULL && !rc_proto_valid_id(user, strlen(user)))
        return refuse(j, err, errlen, "bad user id");
    if (segment != NULL && !valid_segment(segment))
        return refuse(j, err, errlen, "segment must be all or device:desktop|mobile|tablet|other");
    if (topic == NULL || strlen(topic) == 0 || strlen(topic) > 64)
        return refuse(j, err, errlen, "topic must be 1..64 bytes");
    if (json_depth(data, PUSH_MAX_DEPTH) > PUSH_MAX_DEPTH)
        return refuse(j, err, errlen, "data nested too deep (max 8)");
    if (!msgpack_zone_init(&p->zone, 1024)) {
        json_decref(j);
        return RC_ENOMEM;
    }
    if (rc_proto_json_to_object(data, &p->zone, &p->data) != 0) {
        msgpack_zone_destroy(&p->zone);
        json_decref(j);
        return RC_ENOMEM;
    }
    p->root = j;
    p->user = (rc_str_t){user ? user : "", user ? (uint32_t)strlen(user) : 0};
    p->segment = (rc_str_t){segment ? segment : "", segment ? (uint32_t)strlen(segment) : 0};
    p->topic = (rc_str_t){topic, (uint32_t)strlen(topic)};
    return 0;
}

void rc_api_push_free(rc_api_push_t *p)
{
    if (p->root == NULL)
        return;
    msgpack_zone_destroy(&p->zone);
    json_decref(p->root);
    p->root = NULL;
}

bool rc_api_token_equal(const char *given, size_t given_len, const char *expected)
{
    size_t n = strlen(expected);
    unsigned char diff = given_len != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < given_len ? given[i] : 0) ^ expected[i]);
    return diff == 0;
}

int rc_api_erase_parse(const char *body, size_t len, char *user, char *err, size_t errlen)
{
    json_t *j = rc_api_load_object(body, len, err, errlen);
    if (j == NULL)
        return RC_EINVAL;
    const char *u = json_string_value(json_object_get(j, "user"));
    if (u == NULL || !rc_proto_valid_id(u, strlen(u)) || json_object_size(j) != 1)
        return refuse(j, err, errlen, "expected {\"user\": \"<id>\"}");
    snprintf(user, RC_ID_MAX + 1, "%s", u);
    json_decref(j);
    return 0;
}
