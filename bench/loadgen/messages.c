/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rankcast messages a connection receives (ack, error, recs or recs_delta, push, welcome) and
 * how each answers one of the events sent: the latencies are recorded here.
 */
#include "loadgen.h"

/* Finds the ring slot of event id "<conn>-<seq>", or NULL when it is not ours any more. */
static event_slot_t *slot_for_event_id(lg_t *lg, const char *id, size_t len)
{
    uint64_t conn = 0, seq = 0;
    size_t i = 0;
    if (len == 0 || len > 24)
        return NULL;
    while (i < len && id[i] >= '0' && id[i] <= '9')
        conn = conn * 10 + (uint64_t)(id[i++] - '0');
    if (i == 0 || i >= len || id[i] != '-')
        return NULL;
    size_t seq_start = ++i;
    while (i < len && id[i] >= '0' && id[i] <= '9')
        seq = seq * 10 + (uint64_t)(id[i++] - '0');
    if (i != len || i == seq_start || conn >= lg->opt.connections || seq > UINT32_MAX)
        return NULL;
    event_slot_t *slot = &lg->conns[conn].slots[seq & lg->slot_mask];
    if (slot->sent_ns == 0 || slot->seq != (uint32_t)seq)
        return NULL;
    return slot;
}

/* The first ack or error for a measured event answers it; the drain waits for answers. */
static void slot_mark_answered(lg_t *lg, event_slot_t *slot, uint64_t now_ns)
{
    if (slot->flags & SLOT_ANSWERED)
        return;
    slot->flags |= SLOT_ANSWERED;
    if (slot->flags & SLOT_MEASURED) {
        lg->measured_unanswered--;
        lg->last_answer_ns = now_ns;
    }
}

static void on_ack_id(lg_t *lg, const char *id, size_t len, uint64_t now_ns)
{
    lg->stats.ack_ids++;
    event_slot_t *slot = slot_for_event_id(lg, id, len);
    if (!slot || (slot->flags & SLOT_ANSWERED))
        return;
    if (slot->flags & SLOT_MEASURED) {
        lg->stats.events_acked_measured++;
        lg_hist_record(&lg->ack_latency, now_ns - slot->sent_ns);
    }
    slot_mark_answered(lg, slot, now_ns);
}

static void on_ack(lg_t *lg, const char *msg, size_t len, uint64_t now_ns)
{
    lg->stats.ack_messages++;
    const char *end = msg + len;
    const char *p = lg_json_find_value(msg, len, "ids");
    if (!p || p >= end || *p != '[')
        return;
    p = lg_skip_ws(p + 1, end);
    while (p < end && *p != ']') {
        const char *id = NULL;
        size_t id_len = 0;
        p = lg_json_read_plain_string(p, end, &id, &id_len);
        if (!p)
            return;
        on_ack_id(lg, id, id_len, now_ns);
        p = lg_skip_ws(p, end);
        if (p < end && *p == ',')
            p = lg_skip_ws(p + 1, end);
    }
}

static void on_error(lg_t *lg, const char *msg, size_t len, uint64_t now_ns)
{
    long code = 0;
    lg->stats.errors_total++;
    lg_count_code(lg->stats.errors, &lg->stats.error_kinds,
                  lg_json_find_int(msg, len, "code", &code) == 0 ? code : -1);
    const char *id = NULL;
    size_t id_len = 0;
    if (lg_json_find_string(msg, len, "id", &id, &id_len) < 0)
        return;
    event_slot_t *slot = slot_for_event_id(lg, id, id_len);
    if (!slot || (slot->flags & SLOT_ANSWERED))
        return;
    if (slot->flags & SLOT_MEASURED)
        lg->stats.events_errored_measured++;
    slot_mark_answered(lg, slot, now_ns);
}

/* In cross-node mode, the sender's own recs: measured, but apart from the cross-node ones. */
static void on_local_recs(lg_t *lg, event_slot_t *slot, uint64_t now_ns)
{
    if (slot->flags & SLOT_MATCHED) {
        lg->stats.recs_duplicate++;
        return;
    }
    slot->flags |= SLOT_MATCHED;
    if (slot->flags & SLOT_MEASURED) {
        lg->stats.local_pushes_matched++;
        lg_hist_record(&lg->local_latency, now_ns - slot->sent_ns);
        lg->last_answer_ns = now_ns;
    }
}

/*
 * A `recs` with a cause answers one of our events. Its latency goes to push_latency when it
 * came to the connection being measured: the sender's own, or in cross-node mode the
 * observer's (and server_took then is the observing node's re-ranking time).
 */
static void on_recs(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns)
{
    lg->stats.recs_total++;
    if (lg_conn_is_stalled(lg, c) && c->state == CONN_READY)
        return; /* a stalled connection's lists are not measured */
    const char *cause = NULL;
    size_t cause_len = 0;
    if (lg_json_find_string(msg, len, "cause", &cause, &cause_len) < 0) {
        /* The list sent in answer to subscribe carries no cause. */
        c->got_first_recs = true;
        lg_conn_check_ready(lg, c, now_ns);
        return;
    }
    event_slot_t *slot = slot_for_event_id(lg, cause, cause_len);
    if (!slot) {
        lg->stats.recs_unmatched++;
        return;
    }
    const event_slot_t *own = lg->conns[lg_conn_user(lg, c)].slots;
    if (slot < own || slot > own + lg->slot_mask) {
        /* Caused by another user's event: the server mixed up sessions. */
        lg->stats.recs_other_user++;
        return;
    }
    if (lg_observing(lg) && !lg_conn_is_observer(lg, c)) {
        on_local_recs(lg, slot, now_ns);
        return;
    }
    uint32_t flag = lg_observing(lg) ? SLOT_OBSERVED : SLOT_MATCHED;
    if (slot->flags & flag) {
        lg->stats.recs_duplicate++;
        return;
    }
    slot->flags |= flag;
    if (slot->flags & SLOT_MEASURED) {
        lg->stats.pushes_matched++;
        lg_hist_record(&lg->push_latency, now_ns - slot->sent_ns);
        lg->last_answer_ns = now_ns;
        long took_us = 0;
        if (lg_json_find_int(msg, len, "took_us", &took_us) == 0 && took_us >= 0)
            lg_hist_record(&lg->server_took, (uint64_t)took_us * 1000u);
    }
}

/*
 * A push-API message (fanout). The generator posted it with its own CLOCK_MONOTONIC stamp in
 * data.lg_ns, so the delivery latency needs no clock shared with the server.
 */
static void on_push(lg_t *lg, const char *msg, size_t len, uint64_t now_ns)
{
    uint64_t posted_ns = 0;
    lg->x.deliveries_total++;
    if (lg_json_find_u64(msg, len, "lg_ns", &posted_ns) < 0 || posted_ns > now_ns) {
        lg->x.deliveries_unmatched++;
        return;
    }
    if (posted_ns >= lg->measure_start_ns && posted_ns < lg->measure_end_ns) {
        lg->x.deliveries_measured++;
        lg_hist_record(&lg->delivery_latency, now_ns - posted_ns);
        lg->last_answer_ns = now_ns;
    }
}

void lg_on_text_message(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns)
{
    const char *type = NULL;
    size_t type_len = 0;
    if (lg_json_find_string(msg, len, "type", &type, &type_len) < 0) {
        lg->stats.other_messages++;
        return;
    }
    if (lg_str_equals(type, type_len, "recs") || lg_str_equals(type, type_len, "recs_delta")) {
        on_recs(lg, c, msg, len, now_ns);
    } else if (lg_str_equals(type, type_len, "ack")) {
        on_ack(lg, msg, len, now_ns);
    } else if (lg_str_equals(type, type_len, "welcome")) {
        c->got_welcome = true;
        if (lg->opt.scenario == SCEN_HANDSHAKE && c->state == CONN_OPENING)
            lg_conn_handshake_done(lg, c, now_ns);
        else
            lg_conn_check_ready(lg, c, now_ns);
    } else if (lg_str_equals(type, type_len, "error")) {
        on_error(lg, msg, len, now_ns);
    } else if (lg_str_equals(type, type_len, "pong")) {
        lg->stats.pongs++;
    } else if (lg_str_equals(type, type_len, "push")) {
        lg->stats.pushes_app++;
        on_push(lg, msg, len, now_ns);
    } else if (lg_str_equals(type, type_len, "drain")) {
        lg->stats.drains++;
    } else {
        lg->stats.other_messages++;
    }
}
