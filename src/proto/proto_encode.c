/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol v1: the messages the server sends, in either encoding (enc.h writes JSON or
 * MessagePack from the same calls). Decoding is proto.c's. */
#include "proto/proto.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Keys written in this file need no escaping: each goes out as one copy of its quoted form,
 * inline (rc_enc_plain_key, enc.h). */
#define KEY(e, lit)       rc_enc_plain_key((e), "\"" lit "\":", sizeof(lit) - 1)
#define KV_STR(e, lit, v) (KEY(e, lit), rc_enc_cstr((e), (v)))
#define KV_INT(e, lit, v) (KEY(e, lit), rc_enc_int((e), (v)))
/* A value fixed in the source (a message's type): no escaping, its length known. */
#define KV_LIT(e, lit, v) (KEY(e, lit), rc_enc_text((e), (rc_text_t){v, sizeof(v) - 1, true}))

void rc_proto_encode_welcome(rc_enc_t *e, const char *session, rc_str_t user, const char *node,
                             int64_t server_time_ms, const rc_limits_t *l)
{
    rc_enc_map(e, 7);
    KV_LIT(e, "type", "welcome");
    KV_INT(e, "v", 1);
    KV_STR(e, "session", session);
    KEY(e, "user");
    rc_enc_str(e, user.p, user.n);
    KV_STR(e, "node", node);
    KV_INT(e, "server_time_ms", server_time_ms);
    KEY(e, "limits");
    rc_enc_map(e, 6);
    KV_INT(e, "max_message_bytes", l->max_message_bytes);
    KV_INT(e, "max_batch", l->max_batch);
    KV_INT(e, "max_subscriptions", l->max_subscriptions);
    KV_INT(e, "max_k", l->max_k);
    KV_INT(e, "events_per_sec", l->events_per_sec);
    KV_INT(e, "events_burst", l->events_burst);
    rc_enc_end(e);
    rc_enc_end(e);
}

void rc_proto_encode_ack(rc_enc_t *e, const rc_str_t *ids, uint32_t n)
{
    rc_enc_map(e, 2);
    KV_LIT(e, "type", "ack");
    KEY(e, "ids");
    rc_enc_array(e, n);
    for (uint32_t i = 0; i < n; i++)
        rc_enc_str(e, ids[i].p, ids[i].n);
    rc_enc_end(e);
    rc_enc_end(e);
}

void rc_proto_encode_error(rc_enc_t *e, int code, const char *message, rc_str_t id, bool fatal)
{
    rc_proto_encode_error_about(e, code, message, id, fatal, NULL);
}

void rc_proto_encode_error_about(rc_enc_t *e, int code, const char *message, rc_str_t id,
                                 bool fatal, const rc_error_about_t *about)
{
    const char *name = rc_proto_error_name(code);
    bool has_about = about != NULL && about->type != NULL;
    bool has_surface = has_about && about->surface.n > 0;
    bool has_t = has_about && about->has_t;
    rc_enc_map(e, 5u + (id.n > 0) + has_about + has_surface + has_t);
    KV_LIT(e, "type", "error");
    KV_INT(e, "code", code);
    KV_STR(e, "name", name ? name : "internal");
    KV_STR(e, "message", message);
    if (id.n) {
        KEY(e, "id");
        rc_enc_str(e, id.p, id.n);
    }
    if (has_about)
        KV_STR(e, "about", about->type);
    if (has_surface) {
        KEY(e, "surface");
        rc_enc_str(e, about->surface.p, about->surface.n);
    }
    if (has_t) {
        KEY(e, "t");
        rc_enc_double(e, about->t);
    }
    KEY(e, "fatal");
    rc_enc_bool(e, fatal);
    rc_enc_end(e);
}

void rc_proto_encode_pong(rc_enc_t *e, bool has_t, double t, int64_t server_time_ms)
{
    rc_enc_map(e, has_t ? 3 : 2);
    KV_LIT(e, "type", "pong");
    if (has_t) {
        KEY(e, "t");
        rc_enc_double(e, t);
    }
    KV_INT(e, "server_time_ms", server_time_ms);
    rc_enc_end(e);
}

void rc_proto_encode_auth_ok(rc_enc_t *e, int64_t exp_ms)
{
    rc_enc_map(e, 2);
    KV_LIT(e, "type", "auth_ok");
    KV_INT(e, "exp_ms", exp_ms);
    rc_enc_end(e);
}

void rc_proto_encode_drain(rc_enc_t *e, const char *reason, int64_t reconnect_after_ms)
{
    rc_enc_map(e, 3);
    KV_LIT(e, "type", "drain");
    KV_STR(e, "reason", reason);
    KV_INT(e, "reconnect_after_ms", reconnect_after_ms);
    rc_enc_end(e);
}

#define KV_TEXT(e, lit, v) (KEY(e, lit), rc_enc_text((e), (v)))

static void encode_recs_reason(rc_enc_t *e, const rc_recs_reason_t *r)
{
    rc_enc_map(e, 1 + (r->item.p != NULL) + (r->item_name.p != NULL) + (r->category.p != NULL) +
                      (r->category_name.p != NULL) + (r->segment.p != NULL) +
                      (r->locale.p != NULL) + (r->kind.p != NULL) + (r->age_s >= 0));
    KV_TEXT(e, "code", r->code);
    if (r->item.p != NULL)
        KV_TEXT(e, "item", r->item);
    if (r->item_name.p != NULL)
        KV_TEXT(e, "item_name", r->item_name);
    if (r->category.p != NULL)
        KV_TEXT(e, "category", r->category);
    if (r->category_name.p != NULL)
        KV_TEXT(e, "category_name", r->category_name);
    if (r->segment.p != NULL)
        KV_TEXT(e, "segment", r->segment);
    if (r->locale.p != NULL)
        KV_TEXT(e, "locale", r->locale);
    if (r->kind.p != NULL)
        KV_TEXT(e, "kind", r->kind);
    if (r->age_s >= 0)
        KV_INT(e, "age_s", r->age_s);
    rc_enc_end(e);
}

static void encode_recs_item(rc_enc_t *e, const rc_recs_item_t *it)
{
    uint32_t n = 4 + (it->reason != NULL) + (it->name.p != NULL) + (it->category.p != NULL) +
                 (it->price >= 0);
    rc_enc_map(e, n);
    KV_TEXT(e, "item", it->item);
    KEY(e, "score");
    /* Four decimals are all a client can use; rounding keeps JSON frames short. */
    rc_enc_decimal(e, round(it->score * 10000.0) / 10000.0, 4);
    KV_TEXT(e, "src", it->src);
    KV_TEXT(e, "why", it->why);
    if (it->reason != NULL) {
        KEY(e, "reason");
        encode_recs_reason(e, it->reason);
    }
    if (it->name.p != NULL)
        KV_TEXT(e, "name", it->name);
    if (it->category.p != NULL)
        KV_TEXT(e, "category", it->category);
    if (it->price >= 0) {
        KEY(e, "price");
        rc_enc_decimal(e, it->price, 4);
    }
    rc_enc_end(e);
}

/* An item's details, `{name?, category?, price?}` under its id (left out when it has none). */
static void encode_detail(rc_enc_t *e, const rc_recs_item_t *it)
{
    bool price = it->price >= 0;
    rc_enc_text_key(e, it->item);
    rc_enc_map(e, (uint32_t)(it->name.p != NULL) + (it->category.p != NULL) + price);
    if (it->name.p != NULL)
        KV_TEXT(e, "name", it->name);
    if (it->category.p != NULL)
        KV_TEXT(e, "category", it->category);
    if (price) {
        KEY(e, "price");
        rc_enc_decimal(e, it->price, 4);
    }
    rc_enc_end(e);
}

/* A reason definition, `{src, why, reason?}` under its number (as a string: map keys are). */
static void encode_reason_def(rc_enc_t *e, const rc_recs_reason_def_t *r)
{
    char key[12];
    int n = snprintf(key, sizeof(key), "%u", r->rid);
    rc_enc_keyn(e, key, (size_t)n);
    rc_enc_map(e, 2 + (r->it->reason != NULL));
    KV_TEXT(e, "src", r->it->src);
    KV_TEXT(e, "why", r->it->why);
    if (r->it->reason != NULL) {
        KEY(e, "reason");
        encode_recs_reason(e, r->it->reason);
    }
    rc_enc_end(e);
}

void rc_proto_encode_recs_delta(rc_enc_t *e, const rc_recs_delta_t *d)
{
    bool control = d->variant.n == 7 && memcmp(d->variant.p, "control", 7) == 0; /* left out */
    rc_enc_map(e, 7 + (d->n_remove > 0) + (d->n_place > 0) + (d->n_details > 0) +
                      (d->n_reasons > 0) + (d->cause.n > 0) + !control);
    KV_LIT(e, "type", "recs_delta");
    KV_TEXT(e, "surface", d->surface);
    KV_INT(e, "version", d->version);
    KV_INT(e, "base", d->base);
    if (d->n_remove > 0) {
        KEY(e, "remove");
        rc_enc_array(e, d->n_remove);
        for (uint32_t i = 0; i < d->n_remove; i++)
            rc_enc_text(e, d->remove[i]);
        rc_enc_end(e);
    }
    if (d->n_place > 0) {
        KEY(e, "place");
        rc_enc_array(e, d->n_place);
        for (uint32_t i = 0; i < d->n_place; i++) {
            rc_enc_array(e, 2);
            rc_enc_int(e, d->place[i].pos);
            rc_enc_text(e, d->place[i].item);
            rc_enc_end(e);
        }
        rc_enc_end(e);
    }
    /* Scores in ten-thousandths, as integers (the four decimals a recs carries), the first as it
     * is and each next as its difference from the one before: a list is sorted by score, so
     * most are small numbers, one byte of MessagePack instead of the 9 of a float. */
    KEY(e, "scores_e4");
    rc_enc_array(e, d->n_items);
    int64_t prev = 0;
    for (uint32_t i = 0; i < d->n_items; i++) {
        int64_t s = (int64_t)llround(d->scores[i] * 10000.0);
        rc_enc_int(e, s - prev);
        prev = s;
    }
    rc_enc_end(e);
    KEY(e, "r");
    rc_enc_array(e, d->n_items);
    for (uint32_t i = 0; i < d->n_items; i++)
        rc_enc_int(e, d->rids[i]);
    rc_enc_end(e);
    if (d->n_details > 0) {
        KEY(e, "items");
        rc_enc_map(e, d->n_details);
        for (uint32_t i = 0; i < d->n_details; i++)
            encode_detail(e, d->details[i]);
        rc_enc_end(e);
    }
    if (d->n_reasons > 0) {
        KEY(e, "reasons");
        rc_enc_map(e, d->n_reasons);
        for (uint32_t i = 0; i < d->n_reasons; i++)
            encode_reason_def(e, &d->reasons[i]);
        rc_enc_end(e);
    }
    if (d->cause.n) {
        KEY(e, "cause");
        rc_enc_str(e, d->cause.p, d->cause.n);
    }
    KV_INT(e, "took_us", d->took_us);
    if (!control)
        KV_TEXT(e, "variant", d->variant);
    rc_enc_end(e);
}

void rc_proto_encode_push(rc_enc_t *e, rc_str_t id, rc_str_t topic, const msgpack_object *data)
{
    rc_enc_map(e, 4);
    KV_LIT(e, "type", "push");
    KEY(e, "id");
    rc_enc_str(e, id.p, id.n);
    KEY(e, "topic");
    rc_enc_str(e, topic.p, topic.n);
    KEY(e, "data");
    if (data != NULL)
        rc_enc_object(e, data);
    else
        rc_enc_nil(e);
    rc_enc_end(e);
}

void rc_proto_encode_recs(rc_enc_t *e, const rc_recs_t *r)
{
    rc_enc_map(e, r->cause.n ? 7 : 6);
    KV_LIT(e, "type", "recs");
    KV_TEXT(e, "surface", r->surface);
    KV_INT(e, "version", r->version);
    KEY(e, "items");
    rc_enc_array(e, r->n_items);
    for (uint32_t i = 0; i < r->n_items; i++)
        encode_recs_item(e, &r->items[i]);
    rc_enc_end(e);
    if (r->cause.n) {
        KEY(e, "cause");
        rc_enc_str(e, r->cause.p, r->cause.n);
    }
    KV_INT(e, "took_us", r->took_us);
    KV_TEXT(e, "variant", r->variant);
    rc_enc_end(e);
}
