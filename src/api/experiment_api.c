/* SPDX-License-Identifier: Apache-2.0 */
/* JSON in, the experiment's text form out: the text form is what --experiment takes and
 * what travels on the bus, so every node parses the same thing the same way. */
#include "api/experiment_api.h"
#include "api/admin_api.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE      "/api/v1/experiment"
#define ROUTE_STOP "/api/v1/experiment/stop"

static int invalid(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return RC_EINVAL;
}

/* One variant as VARIANT=C,N,T,P@SHARE; the names are checked by the parser. */
static int variant_spec(json_t *v, rc_wbuf_t *out, char *err, size_t errlen)
{
    static const char *const fields[] = {"name", "share", "blend", NULL};
    static const char *const parts[] = {"covisit", "content", "trending", "popular", NULL};
    json_t *blend = json_object_get(v, "blend"), *share = json_object_get(v, "share");
    const char *name = json_string_value(json_object_get(v, "name"));
    if (!json_is_object(v) || !rc_api_only_fields(v, fields) || name == NULL ||
        !json_is_object(blend) || !rc_api_only_fields(blend, parts) ||
        (share != NULL && !json_is_integer(share)))
        return invalid(err, errlen,
                       "a variant is {\"name\", \"blend\": {\"covisit\", \"content\", "
                       "\"trending\", \"popular\"}, \"share\"?}");
    if (strchr(name, ';') || strchr(name, '=') || strchr(name, '@'))
        return invalid(err, errlen, "variant names are 1..32 bytes of [A-Za-z0-9_-]");
    rc_wbuf_printf(out, ";%s=", name);
    for (int i = 0; parts[i]; i++) {
        json_t *w = json_object_get(blend, parts[i]);
        if (w != NULL && !json_is_number(w))
            return invalid(err, errlen, "blend weights are numbers");
        rc_wbuf_printf(out, "%s%.9g", i ? "," : "", w ? json_number_value(w) : 0.0);
    }
    if (share != NULL)
        rc_wbuf_printf(out, "@%lld", (long long)json_integer_value(share));
    return 0;
}

int rc_experiment_api_spec(const char *route, json_t *body, const rc_blend_t *base,
                           rc_experiment_t *x, char *spec, size_t len, char *err, size_t errlen)
{
    if (strcmp(route, ROUTE_STOP) == 0) {
        if (json_object_size(body) != 0)
            return invalid(err, errlen, "expected {}");
        spec[0] = '\0';
        return rc_experiment_parse(x, "", base, err, errlen);
    }
    static const char *const fields[] = {"name", "salt", "variants", NULL};
    const char *name = json_string_value(json_object_get(body, "name"));
    json_t *salt = json_object_get(body, "salt"), *variants = json_object_get(body, "variants");
    if (!rc_api_only_fields(body, fields) || name == NULL || (salt && !json_is_string(salt)) ||
        !json_is_array(variants) || json_array_size(variants) == 0)
        return invalid(err, errlen, "expected {\"name\", \"salt\"?, \"variants\": [variant, ...]}");
    if (strchr(name, ';') || strchr(name, ':') ||
        (salt && (strchr(json_string_value(salt), ';') || strchr(json_string_value(salt), ':'))))
        return invalid(err, errlen, "names and salts are 1..32 bytes of [A-Za-z0-9_-]");
    rc_wbuf_t text;
    rc_wbuf_init(&text, 0);
    rc_wbuf_puts(&text, name);
    if (salt != NULL)
        rc_wbuf_printf(&text, ":%s", json_string_value(salt));
    int rc = 0;
    for (size_t i = 0; i < json_array_size(variants) && rc == 0; i++)
        rc = variant_spec(json_array_get(variants, i), &text, err, errlen);
    if (rc == 0 && (rc_wbuf_ok(&text) != 0 || text.len >= len))
        rc = invalid(err, errlen, "the experiment is too long");
    if (rc == 0) {
        memcpy(spec, rc_wbuf_data(&text), text.len);
        spec[text.len] = '\0';
        rc = rc_experiment_parse(x, spec, base, err, errlen) == 0 ? 0 : RC_EINVAL;
    }
    rc_wbuf_free(&text);
    return rc;
}

json_t *rc_experiment_api_describe(const rc_experiment_t *x, const rc_experiment_counts_t *c)
{
    json_t *variants = json_array();
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    rc_experiment_stats(x, c, st, RC_VARIANTS_MAX);
    for (uint32_t i = 0; i < x->n_variants; i++) {
        const rc_variant_t *v = &x->variants[i];
        json_array_append_new(
            variants,
            json_pack("{s:s,s:i,s:{s:f,s:f,s:f,s:f},s:I,s:I,s:f}", "name", v->name, "share",
                      (int)v->share, "blend", "covisit", (double)v->blend.covisit, "content",
                      (double)v->blend.content, "trending", (double)v->blend.trending, "popular",
                      (double)v->blend.popular, "impressions", (json_int_t)st[i].impressions,
                      "clicks", (json_int_t)st[i].clicks, "ctr", st[i].ctr));
    }
    return x->name[0]
               ? json_pack("{s:s,s:s,s:o}", "name", x->name, "salt", x->salt, "variants", variants)
               : json_pack("{s:n,s:o}", "name", "variants", variants);
}
