/* SPDX-License-Identifier: Apache-2.0 */
/* Assignment hashes the user id with the salt (XXH3), so it needs no state, is the same on
 * every node and survives restarts; changing the salt reshuffles users for a new
 * experiment. Counters are plain integers in each loop's own counts (experiments.h). */
#include "engine/experiments.h"
#include "util/error.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > RC_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int fail(char *err, size_t errlen, const char *why, const char *at)
{
    snprintf(err, errlen, "experiment: %s at \"%.40s\"", why, at);
    return RC_EPARSE;
}

/* VARIANT=C,N,T,P[@SHARE] */
static int parse_variant(rc_variant_t *v, const char *s, char *err, size_t errlen)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL || !valid_name(s, (size_t)(eq - s)))
        return fail(err, errlen, "expected VARIANT=COVISIT,CONTENT,TRENDING,POPULAR", s);
    memset(v, 0, sizeof(*v));
    memcpy(v->name, s, (size_t)(eq - s));
    int used = 0;
    rc_blend_t *b = &v->blend;
    if (sscanf(eq + 1, "%f,%f,%f,%f%n", &b->covisit, &b->content, &b->trending, &b->popular,
               &used) != 4)
        return fail(err, errlen, "expected four weights", eq + 1);
    const char *rest = eq + 1 + used;
    v->share = 1;
    if (*rest == '@') {
        char *end;
        unsigned long share = strtoul(rest + 1, &end, 10);
        if (end == rest + 1 || share < 1 || share > 1000)
            return fail(err, errlen, "share must be 1..1000", rest);
        v->share = (uint32_t)share;
        rest = end;
    }
    if (*rest != '\0')
        return fail(err, errlen, "unexpected text", rest);
    if (b->covisit < 0 || b->content < 0 || b->trending < 0 || b->popular < 0 ||
        b->covisit + b->content + b->trending + b->popular <= 0)
        return fail(err, errlen, "weights must be >= 0 and not all 0", eq + 1);
    return 0;
}

static atomic_uint_fast64_t last_serial;

int rc_experiment_parse(rc_experiment_t *x, const char *spec, const rc_blend_t *base, char *err,
                        size_t errlen)
{
    memset(x, 0, sizeof(*x));
    x->serial = (uint64_t)atomic_fetch_add(&last_serial, 1) + 1;
    if (spec == NULL || *spec == '\0') {
        snprintf(x->variants[0].name, sizeof(x->variants[0].name), "control");
        x->variants[0].blend = *base;
        x->variants[0].share = 1;
        x->n_variants = 1;
        x->total_share = 1;
        return 0;
    }
    char buf[1024];
    if (strlen(spec) >= sizeof(buf))
        return fail(err, errlen, "too long", spec);
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL, *head = strtok_r(buf, ";", &save);
    char *colon = head ? strchr(head, ':') : NULL;
    size_t name_len = colon ? (size_t)(colon - head) : (head ? strlen(head) : 0);
    if (head == NULL || !valid_name(head, name_len) ||
        (colon && !valid_name(colon + 1, strlen(colon + 1))))
        return fail(err, errlen, "expected NAME[:SALT] first", spec);
    memcpy(x->name, head, name_len);
    snprintf(x->salt, sizeof(x->salt), "%s", colon ? colon + 1 : x->name);
    for (char *tok = strtok_r(NULL, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        if (x->n_variants == RC_VARIANTS_MAX)
            return fail(err, errlen, "at most 8 variants", tok);
        int rc = parse_variant(&x->variants[x->n_variants], tok, err, errlen);
        if (rc != 0)
            return rc;
        for (uint32_t i = 0; i < x->n_variants; i++)
            if (strcmp(x->variants[i].name, x->variants[x->n_variants].name) == 0)
                return fail(err, errlen, "variant named twice", tok);
        x->total_share += x->variants[x->n_variants++].share;
    }
    if (x->n_variants == 0)
        return fail(err, errlen, "no variant", spec);
    return 0;
}

uint32_t rc_experiment_assign(const rc_experiment_t *x, const char *user, size_t len)
{
    if (x->n_variants <= 1)
        return 0;
    uint64_t seed = XXH3_64bits(x->salt, strlen(x->salt));
    uint64_t point = XXH3_64bits_withSeed(user, len, seed) % x->total_share;
    for (uint32_t i = 0; i < x->n_variants; i++) {
        if (point < x->variants[i].share)
            return i;
        point -= x->variants[i].share;
    }
    return x->n_variants - 1;
}

const char *rc_experiment_variant_name(const rc_experiment_t *x, uint32_t variant)
{
    return variant < x->n_variants ? x->variants[variant].name : "control";
}

const rc_blend_t *rc_experiment_blend(const rc_experiment_t *x, uint32_t variant)
{
    return variant < x->n_variants ? &x->variants[variant].blend : NULL;
}

void rc_experiment_count(rc_experiment_counts_t *c, const rc_experiment_t *x, uint32_t variant,
                         bool click)
{
    if (c->serial != x->serial)
        *c = (rc_experiment_counts_t){.serial = x->serial};
    if (variant >= x->n_variants)
        return;
    if (click)
        c->clicks[variant]++;
    else
        c->impressions[variant]++;
}

void rc_experiment_counts_add(rc_experiment_counts_t *sum, const rc_experiment_t *x,
                              const rc_experiment_counts_t *c)
{
    if (sum->serial != x->serial)
        *sum = (rc_experiment_counts_t){.serial = x->serial};
    if (c == NULL || c->serial != x->serial)
        return;
    for (uint32_t v = 0; v < RC_VARIANTS_MAX; v++) {
        sum->impressions[v] += c->impressions[v];
        sum->clicks[v] += c->clicks[v];
    }
}

uint32_t rc_experiment_stats(const rc_experiment_t *x, const rc_experiment_counts_t *c,
                             rc_variant_stats_t *out, uint32_t max)
{
    uint32_t n = x->n_variants < max ? x->n_variants : max;
    bool counted = c != NULL && c->serial == x->serial;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t imp = counted ? c->impressions[i] : 0, clk = counted ? c->clicks[i] : 0;
        out[i] = (rc_variant_stats_t){
            .experiment = x->name[0] ? x->name : "none",
            .variant = x->variants[i].name,
            .impressions = imp,
            .clicks = clk,
            .ctr = imp ? (double)clk / (double)imp : 0,
        };
    }
    return n;
}

void rc_experiment_render(const rc_experiment_t *x, const rc_experiment_counts_t *c, rc_wbuf_t *out)
{
    rc_variant_stats_t st[RC_VARIANTS_MAX];
    uint32_t n = rc_experiment_stats(x, c, st, RC_VARIANTS_MAX);
    static const char *const kinds[3][3] = {
        {"rankcast_experiment_impressions_total", "counter",
         "recommended lists shown (impression events), by variant"},
        {"rankcast_experiment_clicks_total", "counter",
         "click, cart or purchase events on an item of the list of the surface they name"},
        {"rankcast_experiment_ctr", "gauge", "clicks / impressions since start"},
    };
    for (int k = 0; k < 3; k++) {
        rc_wbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", kinds[k][0], kinds[k][2], kinds[k][0],
                       kinds[k][1]);
        for (uint32_t i = 0; i < n; i++) {
            rc_wbuf_printf(out, "%s{experiment=\"%s\",variant=\"%s\"} ", kinds[k][0],
                           st[i].experiment, st[i].variant);
            if (k == 0)
                rc_wbuf_printf(out, "%llu\n", (unsigned long long)st[i].impressions);
            else if (k == 1)
                rc_wbuf_printf(out, "%llu\n", (unsigned long long)st[i].clicks);
            else
                rc_wbuf_printf(out, "%.6f\n", st[i].ctr);
        }
    }
}
