/* SPDX-License-Identifier: Apache-2.0 */
/* Model changes as records (engine_op.h): how they are built from a caller's state, and how
 * one is applied to an engine. Applying reads only the record and the engine it changes. */
#include "engine/engine_op.h"
#include "engine/engine_int.h"
#include "engine/returns.h"
#include "util/error.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void rc_engine_op_event(rc_engine_op_t *op, const rc_user_state_t *u, rc_event_kind_t kind,
                        int64_t item, float weight, int64_t wall_ms)
{
    memset(op, 0, sizeof(*op));
    op->type = RC_OP_EVENT;
    rc_op_event_t *ev = &op->u.event;
    ev->wall_ms = wall_ms;
    ev->item = item;
    ev->weight = weight;
    ev->kind = (uint8_t)kind;
    ev->device = RC_DEV_OTHER;
    ev->locale = -1;
    if (u == NULL)
        return;
    ev->has_user = true;
    ev->device = u->device;
    ev->locale = u->locale;
    ev->tz_offset_min = u->tz_offset_min;
    ev->user_key = u->user_key;
    ev->n_recent = u->n_recent < RC_OP_RECENT ? u->n_recent : RC_OP_RECENT;
    for (uint8_t d = 0; d < ev->n_recent; d++) {
        ev->recent_item[d] = rc_user_recent(u, d)->item;
        ev->recent_w[d] = rc_user_recent(u, d)->w;
    }
    /* Whether the event returned to the item in view or to another of the session is asked
     * of the whole session (RC_RECENT items), not only of what co-visitation reads. */
    if (item >= 0 && weight > 0 && u->n_recent > 0 && kind != RC_EV_DISMISS &&
        kind != RC_EV_IMPRESSION) {
        ev->learn_return = true;
        ev->same = rc_user_recent(u, 0)->item == (uint32_t)item;
        for (uint8_t d = 1; d < u->n_recent && !ev->same && !ev->back; d++)
            ev->back = rc_user_recent(u, d)->item == (uint32_t)item;
    }
}

int rc_engine_op_event_by_id(rc_engine_op_t *op, const char *id, size_t len)
{
    rc_op_event_t *ev = &op->u.event;
    if (op->type != RC_OP_EVENT || ev->item >= 0 || ev->item_id != NULL)
        return RC_EINVAL;
    /* Copied whole (an id may hold a NUL byte: never strndup), with its length. */
    if (len > UINT16_MAX || (ev->item_id = malloc(len + 1)) == NULL)
        return len > UINT16_MAX ? RC_EINVAL : RC_ENOMEM;
    memcpy(ev->item_id, id, len);
    ev->item_id[len] = '\0';
    ev->item_id_len = (uint16_t)len;
    /* As rc_engine_op_event() decides for an item: an item the loop does not know is in no
     * session of it, so neither same nor back. */
    ev->learn_return = ev->n_recent > 0 && ev->weight > 0 && ev->kind != RC_EV_DISMISS &&
                       ev->kind != RC_EV_IMPRESSION;
    return 0;
}

int rc_engine_op_item_seen(rc_engine_op_t *op, const char *id, size_t len, uint32_t user_key)
{
    memset(op, 0, sizeof(*op));
    if (len == 0 || len > RC_CATALOG_ID_MAX)
        return RC_EINVAL;
    op->type = RC_OP_ITEM_SEEN;
    memcpy(op->u.item_seen.id, id, len);
    op->u.item_seen.len = (uint8_t)len;
    op->u.item_seen.user_key = user_key;
    return 0;
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = true;
    return d;
}

int rc_engine_op_upsert(rc_engine_op_t *op, const char *id, const char *name, const char *category,
                        const char *const *tags, uint32_t n_tags, double price, double popularity)
{
    bool failed = false;
    memset(op, 0, sizeof(*op));
    op->type = RC_OP_UPSERT;
    op->u.upsert.id = dup_or_null(id, &failed);
    op->u.upsert.name = dup_or_null(name, &failed);
    op->u.upsert.category = dup_or_null(category, &failed);
    op->u.upsert.price = price;
    op->u.upsert.popularity = popularity;
    if (tags != NULL && n_tags > 0) {
        op->u.upsert.tags = calloc(n_tags, sizeof(char *));
        failed |= op->u.upsert.tags == NULL;
        for (uint32_t i = 0; op->u.upsert.tags != NULL && i < n_tags; i++, op->u.upsert.n_tags++)
            op->u.upsert.tags[i] = dup_or_null(tags[i], &failed);
    }
    if (failed || id == NULL) {
        rc_engine_op_clear(op);
        return id == NULL ? RC_EINVAL : RC_ENOMEM;
    }
    return 0;
}

/* A record of `type` whose one field, `*slot` (inside `op`), holds a copy of s[0..len).
 * Out of memory, it is left empty (RC_OP_NONE). */
static int op_with_copy(rc_engine_op_t *op, rc_engine_op_type_t type, char **slot, const char *s,
                        size_t len)
{
    memset(op, 0, sizeof(*op));
    if ((*slot = strndup(s, len)) == NULL)
        return RC_ENOMEM;
    op->type = (uint8_t)type;
    return 0;
}

int rc_engine_op_remove(rc_engine_op_t *op, const char *id, size_t len)
{
    return op_with_copy(op, RC_OP_REMOVE, &op->u.remove.id, id, len);
}

int rc_engine_op_rules(rc_engine_op_t *op, const char *json)
{
    return op_with_copy(op, RC_OP_RULES, &op->u.rules.json, json, strlen(json));
}

int rc_engine_op_item_json(rc_engine_op_t *op, const char *json)
{
    return op_with_copy(op, RC_OP_ITEM_JSON, &op->u.item_json.json, json, strlen(json));
}

void rc_engine_op_experiment(rc_engine_op_t *op, const struct rc_experiment *x)
{
    memset(op, 0, sizeof(*op));
    op->type = RC_OP_EXPERIMENT;
    op->u.experiment.x = x;
}

void rc_engine_op_locale(rc_engine_op_t *op, rc_str_t tag, int64_t wall_ms)
{
    memset(op, 0, sizeof(*op));
    op->type = RC_OP_LOCALE;
    op->u.locale.wall_ms = wall_ms;
    /* A tag too long to be one is kept empty: rc_engine_locale() refuses both. */
    if (tag.n <= RC_LOCALE_MAX)
        memcpy(op->u.locale.tag, tag.p, tag.n);
}

void rc_engine_op_refresh(rc_engine_op_t *op, int64_t at_ms)
{
    memset(op, 0, sizeof(*op));
    op->type = RC_OP_REFRESH;
    op->u.refresh.at_ms = at_ms;
}

void rc_engine_op_refresh_step(rc_engine_op_t *op, uint32_t max_items, int64_t at_ms)
{
    memset(op, 0, sizeof(*op));
    op->type = RC_OP_REFRESH_STEP;
    op->u.refresh.at_ms = at_ms;
    op->u.refresh.max_items = max_items;
}

void rc_engine_op_clear(rc_engine_op_t *op)
{
    if (op == NULL)
        return;
    switch (op->type) {
    case RC_OP_EVENT:
        free(op->u.event.item_id);
        break;
    case RC_OP_UPSERT:
        free(op->u.upsert.id);
        free(op->u.upsert.name);
        free(op->u.upsert.category);
        for (uint32_t i = 0; i < op->u.upsert.n_tags; i++)
            free(op->u.upsert.tags[i]);
        free(op->u.upsert.tags);
        break;
    case RC_OP_REMOVE:
        free(op->u.remove.id);
        break;
    case RC_OP_RULES:
        free(op->u.rules.json);
        break;
    case RC_OP_ITEM_JSON:
        free(op->u.item_json.json);
        break;
    default:
        break;
    }
    memset(op, 0, sizeof(*op));
}

static void learn_covisit(rc_engine_t *e, const rc_op_event_t *ev, uint32_t item, double now_s)
{
    uint8_t n = ev->n_recent;
    uint32_t lists[RC_OP_RECENT + 1] = {item};
    memcpy(lists + 1, ev->recent_item, n * sizeof(*lists));
    rc_covisit_prefetch(&e->covisit, lists, n + 1u, UINT32_MAX); /* each is searched whole */
    for (uint8_t d = 0; d < n; d++) {
        if (ev->recent_item[d] == item || ev->recent_w[d] <= 0)
            continue;
        float pair = sqrtf(ev->weight * ev->recent_w[d]) / (1.0f + e->pair_decay * (float)d);
        rc_covisit_add_directed(&e->covisit, ev->recent_item[d], item, pair,
                                pair * e->backward_weight, now_s);
        if (d == 0) /* an adjacent transition, counted as a first-order chain counts it */
            rc_covisit_add_directed(&e->successor, ev->recent_item[0], item,
                                    sqrtf(ev->weight * ev->recent_w[0]), 0, now_s);
    }
}

/* 1 / the place of `item` in `a`'s list (strongest first), 0 when it is not there. */
static float reciprocal_rank(const rc_covisit_t *cv, uint32_t a, uint32_t item)
{
    uint32_t n;
    const rc_neighbor_t *nb = rc_covisit_neighbors(cv, a, &n);
    for (uint32_t j = 0; j < n; j++)
        if (nb[j].item == item)
            return 1.0f / (float)(j + 1);
    return 0;
}

/* Moves the successor share towards the model that ranked the item the user acted on higher
 * among the neighbours of the item in view (`current`): Hedge (Freund and Schapire) over the
 * two sequential models, each losing 1 - its reciprocal rank of the item: a <- a e^(-rate (1 -
 * rr_s)), 1 - a <- (1 - a) e^(-rate (1 - rr_c)), normalised, within [blend_floor,
 * successor_max].
 * So the share follows whichever orders next items better, as the lists are judged (MRR),
 * rather than whichever spreads its probability more safely: on data made by a first-order
 * chain the successor model, on baskets whose next line follows any of the last few
 * co-visitation. An event neither model listed moves nothing. */
static void learn_blend(rc_engine_t *e, uint32_t current, uint32_t item)
{
    float rr_c = reciprocal_rank(&e->covisit, current, item);
    float rr_s = reciprocal_rank(&e->successor, current, item);
    if (rr_c <= 0 && rr_s <= 0)
        return;
    float a = e->blend.successor;
    float keep_s = a * expf(-e->blend_rate * (1 - rr_s));
    float keep_c = (1 - a) * expf(-e->blend_rate * (1 - rr_c));
    a = keep_s / (keep_s + keep_c);
    float lo = e->blend_floor, hi = e->successor_max;
    e->blend.successor = a < lo ? lo : a > hi ? hi : a;
    e->blend_updates++;
}

static int apply_event(rc_engine_t *e, const rc_op_event_t *ev)
{
    int64_t item = ev->item;
    if (item < 0 && ev->item_id != NULL) /* made on a copy that did not know it yet */
        item = rc_catalog_find(&e->catalog, ev->item_id, ev->item_id_len);
    if (ev->kind == RC_EV_IMPRESSION || item < 0)
        return 0;
    if ((uint64_t)item >= e->catalog.n)
        return RC_EINVAL;
    uint32_t idx = (uint32_t)item;
    if (ev->learn_return) {
        rc_return_learn(e, ev);
        /* An item new to the session (same and back are asked of the whole session) judges
         * the two sequential models, before either learns from it. */
        if (e->blend_rate > 0 && !ev->same && !ev->back)
            learn_blend(e, ev->recent_item[0], idx);
    }
    if (ev->kind == RC_EV_DISMISS || ev->weight <= 0)
        return 0;
    double now_s = (double)ev->wall_ms / 1000.0;
    int daypart = rc_daypart(ev->wall_ms, ev->tz_offset_min);
    int rc = rc_trending_add(&e->trending, idx, ev->device, daypart, ev->locale, ev->user_key,
                             ev->weight, now_s);
    if (ev->has_user)
        learn_covisit(e, ev, idx, now_s);
    return rc;
}

void rc_engine_op_prefetch(const rc_engine_t *e, const rc_engine_op_t *op, int stage)
{
    const rc_op_event_t *ev = &op->u.event;
    if (op->type != RC_OP_EVENT || ev->item < 0 || (uint64_t)ev->item >= e->catalog.n ||
        ev->weight <= 0 || ev->kind == RC_EV_DISMISS)
        return;
    uint32_t item = (uint32_t)ev->item;
    if (stage == 0) {
        const float *sc = rc_trending_scores(&e->trending, item);
        if (sc != NULL)
            __builtin_prefetch(sc, 1);
        if (item < e->covisit.n_lists)
            __builtin_prefetch(&e->covisit.lists[item], 1);
        for (uint8_t d = 0; ev->has_user && d < ev->n_recent; d++)
            if (ev->recent_item[d] < e->covisit.n_lists)
                __builtin_prefetch(&e->covisit.lists[ev->recent_item[d]], 1);
        return;
    }
    uint32_t lists[RC_OP_RECENT + 1] = {item};
    uint32_t n = ev->has_user ? ev->n_recent : 0;
    memcpy(lists + 1, ev->recent_item, n * sizeof(*lists));
    rc_covisit_prefetch(&e->covisit, lists, n + 1, UINT32_MAX);
}

static int apply_rules(rc_engine_t *e, const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    rc_rules_t r = {0};
    char err[128];
    int rc = j != NULL ? rc_rules_from_json(&r, j, err, sizeof(err)) : RC_EINVAL;
    json_decref(j);
    if (rc == 0)
        rc_engine_set_rules(e, &r);
    rc_rules_free(&r);
    return rc;
}

static int apply_item_json(rc_engine_t *e, const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    uint32_t idx;
    char err[128];
    int rc = j != NULL ? rc_catalog_upsert_json(&e->catalog, j, &idx, err, sizeof(err)) : RC_EPARSE;
    json_decref(j);
    return rc;
}

int rc_engine_apply(rc_engine_t *e, const rc_engine_op_t *op)
{
    uint32_t idx;
    switch (op->type) {
    case RC_OP_EVENT:
        return apply_event(e, &op->u.event);
    case RC_OP_UPSERT:
        return rc_catalog_upsert(&e->catalog, op->u.upsert.id, op->u.upsert.name,
                                 op->u.upsert.category, (const char *const *)op->u.upsert.tags,
                                 op->u.upsert.n_tags, op->u.upsert.price, op->u.upsert.popularity,
                                 &idx);
    case RC_OP_REMOVE:
        return rc_catalog_remove(&e->catalog, op->u.remove.id, strlen(op->u.remove.id));
    case RC_OP_RULES:
        return apply_rules(e, op->u.rules.json);
    case RC_OP_EXPERIMENT:
        rc_engine_set_experiment(e, op->u.experiment.x);
        return 0;
    case RC_OP_LOCALE: {
        rc_str_t tag = {op->u.locale.tag, (uint32_t)strlen(op->u.locale.tag)};
        return rc_engine_locale(e, tag, op->u.locale.wall_ms) >= 0 || tag.n == 0 ? 0 : RC_EINVAL;
    }
    case RC_OP_REFRESH:
        return rc_engine_refresh(e);
    case RC_OP_ITEM_JSON:
        return apply_item_json(e, op->u.item_json.json);
    case RC_OP_REFRESH_STEP: {
        /* 1 (a pass completed) and 0 (it goes on) are both success here. */
        int rc = rc_engine_refresh_step(e, op->u.refresh.max_items);
        return rc < 0 ? rc : 0;
    }
    case RC_OP_ITEM_SEEN: {
        /* Learned or not trusted yet are both success: the id was counted. -1 is a closed
         * catalog, or no room to track the id. */
        int64_t r = rc_catalog_learn_from(&e->catalog, op->u.item_seen.id, op->u.item_seen.len,
                                          op->u.item_seen.user_key);
        return r == -1 ? RC_EINVAL : 0;
    }
    default:
        return 0;
    }
}

int rc_engine_apply_owned(rc_engine_t *e, rc_engine_op_t *op)
{
    int rc = rc_engine_apply(e, op);
    rc_engine_op_clear(op);
    return rc;
}
