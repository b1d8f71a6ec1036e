/* SPDX-License-Identifier: Apache-2.0 */
/* Rules arrive as JSON (admin API, bus) and are kept by name; resolving turns names into
 * catalog indexes and a per-item factor, so that ranking pays one multiplication per
 * candidate and one check per pin. */
#include "engine/rules.h"
#include "api/admin_api.h"
#include "proto/proto.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int invalid(char *err, size_t errlen, const char *what, size_t i, const char *why)
{
    snprintf(err, errlen, "%s %zu: %s", what, i, why);
    return RC_EINVAL;
}

static bool copy_name(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= cap)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

static int read_boost(rc_boost_t *b, json_t *j, size_t i, char *err, size_t errlen)
{
    static const char *const fields[] = {"item", "category", "tag", "factor", NULL};
    static const char *const kinds[] = {"item", "category", "tag"};
    if (!json_is_object(j) || !rc_api_only_fields(j, fields))
        return invalid(err, errlen, "boost", i,
                       "expected {\"item\"|\"category\"|\"tag\": name, \"factor\": number}");
    int named = 0;
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(j, kinds[k]);
        if (v == NULL)
            continue;
        named++;
        b->kind = (rc_boost_kind_t)k;
        if (!copy_name(b->key, sizeof(b->key), v))
            return invalid(err, errlen, "boost", i, "names are strings of 1..64 bytes");
        if (k == RC_BOOST_ITEM && !rc_proto_valid_id(b->key, strlen(b->key)))
            return invalid(err, errlen, "boost", i, "\"item\" is not a valid item id");
    }
    if (named != 1)
        return invalid(err, errlen, "boost", i, "name exactly one of item, category, tag");
    json_t *f = json_object_get(j, "factor");
    double x = json_number_value(f);
    if (!json_is_number(f) || !(x > 0 && x <= RC_BOOST_MAX))
        return invalid(err, errlen, "boost", i, "\"factor\" must be > 0 and <= 10");
    b->factor = (float)x;
    return 0;
}

static int read_pin(rc_pin_t *p, json_t *j, size_t i, char *err, size_t errlen)
{
    static const char *const fields[] = {"item", "position", "surface", NULL};
    json_t *pos = json_object_get(j, "position"), *surface = json_object_get(j, "surface");
    if (!json_is_object(j) || !rc_api_only_fields(j, fields) ||
        !copy_name(p->item, sizeof(p->item), json_object_get(j, "item")) ||
        !rc_proto_valid_id(p->item, strlen(p->item)))
        return invalid(err, errlen, "pin", i,
                       "expected {\"item\": id, \"position\": 1..100, \"surface\"?: name}");
    if (!json_is_integer(pos) || json_integer_value(pos) < 1 || json_integer_value(pos) > 100)
        return invalid(err, errlen, "pin", i, "\"position\" must be an integer 1..100");
    p->position = (uint32_t)json_integer_value(pos);
    p->surface[0] = '\0';
    if (surface != NULL && (!copy_name(p->surface, sizeof(p->surface), surface) ||
                            !rc_proto_valid_id(p->surface, strlen(p->surface))))
        return invalid(err, errlen, "pin", i, "\"surface\" must be a surface name (1..32 bytes)");
    p->idx = -1;
    return 0;
}

int rc_rules_from_json(rc_rules_t *r, json_t *j, char *err, size_t errlen)
{
    static const char *const fields[] = {"boosts", "pins", NULL};
    rc_rules_free(r);
    json_t *boosts = json_object_get(j, "boosts"), *pins = json_object_get(j, "pins");
    if (!json_is_object(j) || !rc_api_only_fields(j, fields) ||
        (boosts && !json_is_array(boosts)) || (pins && !json_is_array(pins)))
        return invalid(err, errlen, "rules", 0, "expected {\"boosts\"?: [...], \"pins\"?: [...]}");
    if (json_array_size(boosts) > RC_BOOSTS_MAX || json_array_size(pins) > RC_PINS_MAX)
        return invalid(err, errlen, "rules", 0, "at most 64 boosts and 16 pins");
    for (size_t i = 0; i < json_array_size(boosts); i++) {
        int rc = read_boost(&r->boosts[i], json_array_get(boosts, i), i, err, errlen);
        if (rc != 0) {
            rc_rules_free(r);
            return rc;
        }
        r->n_boosts++;
    }
    for (size_t i = 0; i < json_array_size(pins); i++) {
        int rc = read_pin(&r->pins[i], json_array_get(pins, i), i, err, errlen);
        if (rc != 0) {
            rc_rules_free(r);
            return rc;
        }
        for (uint32_t k = 0; k < r->n_pins; k++) {
            if (r->pins[k].position == r->pins[i].position &&
                strcmp(r->pins[k].surface, r->pins[i].surface) == 0) {
                rc_rules_free(r);
                return invalid(err, errlen, "pin", i, "two pins at one place of one surface");
            }
        }
        r->n_pins++;
    }
    return 0;
}

char *rc_rules_to_json(const rc_rules_t *r)
{
    static const char *const kinds[] = {"item", "category", "tag"};
    json_t *boosts = json_array(), *pins = json_array();
    for (uint32_t i = 0; i < r->n_boosts; i++)
        json_array_append_new(boosts,
                              json_pack("{s:s,s:f}", kinds[r->boosts[i].kind], r->boosts[i].key,
                                        "factor", (double)r->boosts[i].factor));
    for (uint32_t i = 0; i < r->n_pins; i++) {
        json_t *p =
            json_pack("{s:s,s:i}", "item", r->pins[i].item, "position", (int)r->pins[i].position);
        if (p != NULL && r->pins[i].surface[0])
            json_object_set_new(p, "surface", json_string(r->pins[i].surface));
        json_array_append_new(pins, p);
    }
    json_t *j = json_pack("{s:o,s:o}", "boosts", boosts, "pins", pins);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(j);
    return text;
}

int rc_rules_resolve(rc_rules_t *r, const rc_catalog_t *c, bool force)
{
    if (r->resolved && !force && r->generation == c->generation)
        return 0;
    r->resolved = true;
    r->generation = c->generation;
    r->n_lifted = r->n_lifted_categories = r->n_lifted_tags = 0;
    for (uint32_t i = 0; i < r->n_pins; i++)
        r->pins[i].idx = rc_catalog_find(c, r->pins[i].item, strlen(r->pins[i].item));
    if (r->n_boosts == 0) {
        free(r->item_boost);
        r->item_boost = NULL;
        r->boost_cap = 0;
        return 0;
    }
    if (r->boost_cap < c->n || r->item_boost == NULL) {
        float *p = realloc(r->item_boost, (c->n ? c->n : 1) * sizeof(float));
        if (p == NULL) {
            free(r->item_boost);
            r->item_boost = NULL;
            r->boost_cap = 0;
            return RC_ENOMEM;
        }
        r->item_boost = p;
    }
    r->boost_cap = c->n;
    for (uint32_t i = 0; i < c->n; i++)
        r->item_boost[i] = 1.0f;
    for (uint32_t b = 0; b < r->n_boosts; b++) {
        const rc_boost_t *x = &r->boosts[b];
        bool lifts = x->factor > 1;
        if (x->kind == RC_BOOST_ITEM) {
            int64_t idx = rc_catalog_find(c, x->key, strlen(x->key));
            if (idx < 0)
                continue;
            r->item_boost[idx] *= x->factor;
            if (lifts)
                r->lifted[r->n_lifted++] = (uint32_t)idx;
        } else if (x->kind == RC_BOOST_CATEGORY) {
            int32_t cat = rc_catalog_category(c, x->key, strlen(x->key));
            if (cat <= 0)
                continue;
            for (uint32_t i = 0; i < c->n; i++)
                if (c->items[i].category == (uint32_t)cat)
                    r->item_boost[i] *= x->factor;
            if (lifts)
                r->lifted_categories[r->n_lifted_categories++] = cat;
        } else {
            uint32_t feat = rc_feature_id('t', x->key, strlen(x->key));
            for (uint32_t i = 0; i < c->n; i++)
                for (uint8_t f = c->items[i].category ? 1 : 0; f < c->items[i].n_feat; f++)
                    if (c->items[i].feat[f] == feat)
                        r->item_boost[i] *= x->factor;
            if (lifts)
                r->lifted_tags[r->n_lifted_tags++] = feat;
        }
    }
    r->boost_max = 1.0f;
    for (uint32_t i = 0; i < c->n; i++)
        if (r->item_boost[i] > r->boost_max)
            r->boost_max = r->item_boost[i];
    return 0;
}

void rc_rules_free(rc_rules_t *r)
{
    free(r->item_boost);
    memset(r, 0, sizeof(*r));
}
