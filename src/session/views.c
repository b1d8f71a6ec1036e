/* SPDX-License-Identifier: Apache-2.0 */
/* Views: the live lists a session's subscriptions ask for. A view is ranked again when the
 * user's state changes, encoded once per format, and handed to every subscribed connection's
 * outbox slot, where a newer list replaces one not yet written. */
#include "session/session_int.h"
#include "engine/experiments.h"
#include "engine/reasons.h"
#include "util/clock.h"
#include "util/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint64_t list_hash(const rc_ranked_t *r, uint32_t n)
{
    uint64_t h = XXH3_64bits(r, 0);
    for (uint32_t i = 0; i < n; i++)
        h = XXH3_64bits_withSeed(&r[i].item, sizeof(r[i].item), h);
    return h ^ n;
}

static void view_drop_frames(rc_view_t *v)
{
    for (int f = 0; f < RC_FMT_COUNT; f++) {
        rc_frame_unref(v->frame[f]);
        v->frame[f] = NULL;
    }
}

void rc_view_free(rc_view_t *v)
{
    view_drop_frames(v);
    free(v->ranked);
    free(v);
}

void rc_view_measure_names(rc_sessions_t *s)
{
    for (int i = 0; i <= RC_SRC_REPEAT; i++)
        s->src_texts[i] = rc_text_measure(rc_src_name(i));
    for (int i = 0; i < RC_REASON_COUNT; i++)
        s->code_texts[i] = rc_text_measure(rc_reason_code_name(i));
    for (int i = 0; i < RC_EVENT_KIND_COUNT; i++)
        s->kind_texts[i] = rc_text_measure(rc_event_kind_name(i));
}

/* A reason as the wire carries it: ids and names instead of catalog indexes. */
static void wire_reason(const rc_sessions_t *s, const rc_catalog_t *cat, const rc_reason_t *why,
                        rc_recs_reason_t *out)
{
    static const rc_text_t absent = {NULL, 0, false};
    bool has_item = why->item >= 0 && (uint64_t)why->item < cat->n;
    uint32_t ref = has_item ? (uint32_t)why->item : 0;
    bool has_cat = why->category != 0 && why->category < cat->n_categories;
    *out = (rc_recs_reason_t){
        .code = why->code < RC_REASON_COUNT ? s->code_texts[why->code]
                                            : rc_text_measure(rc_reason_code_name(why->code)),
        .item = has_item ? rc_item_id_text(cat, ref) : absent,
        .item_name = has_item && !(cat->items[ref].flags & RC_ITEM_LEARNED)
                         ? rc_item_name_text(cat, ref)
                         : absent,
        .category = has_cat ? rc_catalog_category_text(cat, why->category) : absent,
        .category_name = has_cat ? rc_catalog_category_name_text(cat, why->category) : absent,
        .segment = rc_text_measure(why->segment),
        .locale = rc_text_measure(why->locale),
        .kind = why->kind < RC_EVENT_KIND_COUNT ? s->kind_texts[why->kind] : absent,
        .age_s = why->code == RC_REASON_REPEAT ? why->age_s : -1,
    };
}

void rc_view_fill_items(rc_sessions_t *s, const rc_session_t *ses, const rc_view_t *v)
{
    static const rc_text_t absent = {NULL, 0, false};
    const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
    rc_user_state_t empty;
    const rc_user_state_t *u = rc_session_state_read(ses, &empty);
    /* The items' strings lie scattered over the heap: ask for all of them first. */
    for (uint32_t i = 0; i < v->n; i++) {
        const rc_item_label_t *l = &cat->labels[v->ranked[i].item];
        __builtin_prefetch(l->id);
        __builtin_prefetch(l->name);
    }
    for (uint32_t i = 0; i < v->n; i++) {
        const rc_ranked_t *r = &v->ranked[i];
        const rc_item_t *it = &cat->items[r->item];
        rc_reason_t why;
        rc_engine_reason(rc_sessions_engine(s), u, r, &why);
        rc_text_t words = rc_reason_words(rc_sessions_engine(s), &why, s->why_buf[i], WHY_LEN);
        wire_reason(s, cat, &why, &s->reason_buf[i]);
        s->recs_buf[i] = (rc_recs_item_t){
            .item = rc_item_id_text(cat, r->item),
            .score = r->score,
            .src = r->src <= RC_SRC_REPEAT ? s->src_texts[r->src]
                                           : rc_text_measure(rc_src_name(r->src)),
            .why = words,
            .reason = &s->reason_buf[i],
            .name = (it->flags & RC_ITEM_LEARNED) ? absent : rc_item_name_text(cat, r->item),
            .category = rc_catalog_category_text(cat, it->category),
            .price = it->price,
        };
    }
}

rc_text_t rc_view_variant(const rc_sessions_t *s, const rc_session_t *ses)
{
    const rc_experiment_t *x = rc_engine_experiment(rc_sessions_engine(s));
    return x ? rc_text_measure(rc_experiment_variant_name(x, ses->variant))
             : (rc_text_t){"control", 7, true};
}

/* Encodes a view's list. `with_cause` is false for the answer to subscribe. */
rc_frame_t *rc_view_encode(rc_sessions_t *s, const rc_session_t *ses, const rc_view_t *v,
                           rc_format_t fmt, bool with_cause)
{
    rc_view_fill_items(s, ses, v);
    rc_recs_t recs = {
        .surface = v->surface_text,
        .version = v->version,
        .items = s->recs_buf,
        .n_items = v->n,
        .cause = with_cause ? (rc_str_t){v->cause, v->cause_len} : (rc_str_t){NULL, 0},
        .took_us = v->took_us,
        .variant = rc_view_variant(s, ses),
    };
    rc_proto_encode_recs(rc_sessions_enc_begin(s, fmt), &recs);
    rc_frame_t *f = rc_sessions_enc_frame(s, fmt);
    if (f != NULL) {
        f->is_recs = true;
        f->cause_t0_us = with_cause ? v->cause_t0_us : 0;
    }
    return f;
}

/* Ranks a view again. Returns true when its list changed (and the version moved). */
bool rc_view_rerank(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v, rc_str_t cause,
                    uint64_t t0_us)
{
    uint64_t start = rc_mono_us();
    rc_session_resolve_locale(s, ses);
    rc_user_state_t empty;
    uint32_t n =
        rc_engine_rank(rc_sessions_engine(s), s->ranker, rc_session_state_read(ses, &empty),
                       &v->spec, rc_wall_ms(), s->rank_buf);
    uint64_t done = rc_mono_us();
    rc_hist_observe(&rc_metrics.rank, done - start);
    rc_metrics.rerank_total++;
    uint64_t h = list_hash(s->rank_buf, n);
    if (h == v->list_hash && v->version != 0)
        return false;
    memcpy(v->ranked, s->rank_buf, n * sizeof(*v->ranked));
    v->n = n;
    v->list_hash = h;
    v->version = ++ses->version;
    size_t clen = cause.n < RC_ID_MAX ? cause.n : RC_ID_MAX;
    memcpy(v->cause, cause.p ? cause.p : "", clen);
    v->cause[clen] = '\0';
    v->cause_len = (uint32_t)clen;
    v->cause_t0_us = t0_us;
    v->took_us = (int64_t)(done - (t0_us ? t0_us : start));
    view_drop_frames(v);
    return true;
}

/* Hands a view's new list to every connection of the session subscribed to it. */
void rc_view_publish(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v)
{
    for (rc_link_t *l = ses->conns.next; l != &ses->conns; l = l->next) {
        rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, session_link);
        if (c->state != CONN_READY)
            continue;
        for (uint32_t i = 0; i < c->n_subs; i++) {
            if (c->subs[i].view != v)
                continue;
            if (c->subs[i].compact) {
                /* Encoded as it leaves, against what the client holds then. */
                if (rc_outbox_set_slot(&c->outbox, (uint32_t)i, s->compact_marker))
                    rc_metrics.pushes_skipped++;
                rc_conn_wake(c);
                continue;
            }
            if (v->frame[c->fmt] == NULL)
                v->frame[c->fmt] = rc_view_encode(s, ses, v, c->fmt, v->cause[0] != '\0');
            if (v->frame[c->fmt] == NULL)
                continue;
            if (rc_outbox_set_slot(&c->outbox, (uint32_t)i, v->frame[c->fmt]))
                rc_metrics.pushes_skipped++;
            rc_conn_wake(c);
        }
    }
    /* The outboxes hold the frames until written; an idle session keeps none. */
    view_drop_frames(v);
}

void rc_session_rerank(rc_sessions_t *s, rc_session_t *ses, rc_str_t cause, uint64_t t0_us)
{
    for (uint32_t i = 0; i < ses->n_views; i++)
        if (rc_view_rerank(s, ses, ses->views[i], cause, t0_us))
            rc_view_publish(s, ses, ses->views[i]);
}

static bool spec_equal(const rc_rank_spec_t *a, const rc_rank_spec_t *b)
{
    return a->k == b->k && a->category == b->category && a->price_min == b->price_min &&
           a->price_max == b->price_max && a->repeat == b->repeat;
}

rc_view_t *rc_view_acquire(rc_sessions_t *s, rc_session_t *ses, rc_str_t surface,
                           const rc_rank_spec_t *spec)
{
    for (uint32_t i = 0; i < ses->n_views; i++) {
        rc_view_t *v = ses->views[i];
        if (v->surface_text.n == surface.n && memcmp(v->surface, surface.p, surface.n) == 0 &&
            spec_equal(&v->spec, spec)) {
            v->refs++;
            return v;
        }
    }
    if (ses->n_views >= MAX_VIEWS)
        return NULL;
    if (ses->n_views == ses->cap_views) {
        uint32_t cap = ses->cap_views == 0 ? 2 : ses->cap_views * 2;
        rc_view_t **views =
            realloc(ses->views, (cap > MAX_VIEWS ? MAX_VIEWS : cap) * sizeof(*views));
        if (views == NULL)
            return NULL;
        ses->views = views;
        ses->cap_views = cap > MAX_VIEWS ? MAX_VIEWS : cap;
    }
    rc_view_t *v = calloc(1, sizeof(*v));
    if (v == NULL || (v->ranked = calloc(spec->k, sizeof(*v->ranked))) == NULL) {
        free(v);
        return NULL;
    }
    memcpy(v->surface, surface.p, surface.n);
    v->surface_text = rc_text_measure_n(v->surface, surface.n);
    v->spec = *spec;
    v->spec.surface = v->surface;
    v->refs = 1;
    rc_view_rerank(s, ses, v, (rc_str_t){NULL, 0}, 0);
    ses->views[ses->n_views++] = v;
    return v;
}

void rc_view_release(rc_session_t *ses, rc_view_t *v)
{
    if (--v->refs > 0)
        return;
    for (uint32_t i = 0; i < ses->n_views; i++) {
        if (ses->views[i] == v) {
            ses->views[i] = ses->views[--ses->n_views];
            break;
        }
    }
    rc_view_free(v);
}

/* Ranks a view again for a change that is not the user's, and pushes it if its list
 * changed. Returns 1 when it was pushed. */
static uint32_t rerank_for_change(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v)
{
    if (!rc_view_rerank(s, ses, v, (rc_str_t){NULL, 0}, 0))
        return 0;
    rc_view_publish(s, ses, v);
    return 1;
}

uint32_t rc_sessions_settings_changed(rc_sessions_t *s)
{
    const rc_experiment_t *x = rc_engine_experiment(rc_sessions_engine(s));
    uint32_t pushed = 0;
    rc_session_t *ses;
    for (size_t cursor = 0; (ses = rc_sessions_next(s, &cursor)) != NULL;) {
        ses->variant = x ? rc_experiment_assign(x, ses->user, ses->user_len) : 0;
        for (uint32_t j = 0; j < ses->n_views; j++) {
            ses->views[j]->spec.blend = x ? rc_experiment_blend(x, ses->variant) : NULL;
            pushed += rerank_for_change(s, ses, ses->views[j]);
        }
    }
    return pushed;
}

/* Only lists that show an item the catalog no longer recommends are ranked again: the others
 * follow the user's own events, and re-ranking every list of every user at once would stall
 * the loop on a large node. */
uint32_t rc_sessions_catalog_changed(rc_sessions_t *s)
{
    const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
    uint32_t pushed = 0;
    rc_session_t *ses;
    for (size_t cursor = 0; (ses = rc_sessions_next(s, &cursor)) != NULL;) {
        for (uint32_t j = 0; j < ses->n_views; j++) {
            const rc_view_t *v = ses->views[j];
            bool stale = false;
            for (uint32_t k = 0; k < v->n && !stale; k++)
                stale = !rc_item_recommendable(&cat->items[v->ranked[k].item]);
            if (stale)
                pushed += rerank_for_change(s, ses, ses->views[j]);
        }
    }
    return pushed;
}
