/* SPDX-License-Identifier: Apache-2.0 */
/* The registry: users to sessions (and pseudonyms to sessions, for what the bus brings),
 * the user's state a session keeps for ranking and learning, the registry's lifecycle, and
 * its periodic work. */
#include "session/session_int.h"
#include "engine/experiments.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

rc_enc_t *rc_sessions_enc_begin(rc_sessions_t *s, rc_format_t fmt)
{
    rc_wbuf_reset(&s->scratch);
    rc_enc_init(&s->enc, &s->scratch, fmt);
    return &s->enc;
}

rc_frame_t *rc_sessions_enc_frame(rc_sessions_t *s, rc_format_t fmt)
{
    if (rc_wbuf_ok(&s->scratch) != 0)
        return NULL;
    return rc_frame_new(rc_wbuf_data(&s->scratch), s->scratch.len, fmt == RC_FMT_MSGPACK);
}

/* A state with no history, in the session's context. */
static void state_from_context(const rc_session_t *ses, rc_user_state_t *u)
{
    rc_user_state_init(u, ses->device, ses->tz_offset_min);
    u->locale = ses->locale;
    u->user_key = rc_engine_user_key((rc_str_t){ses->pseudo, (uint32_t)strlen(ses->pseudo)});
}

/* The user's state for ranking: the session's own, or, while it has none, `empty` made
 * from the context alone. */
const rc_user_state_t *rc_session_state_read(const rc_session_t *ses, rc_user_state_t *empty)
{
    if (ses->state != NULL)
        return ses->state;
    state_from_context(ses, empty);
    return empty;
}

/* The user's state for learning, made on first need. NULL when out of memory. */
rc_user_state_t *rc_session_state_write(rc_session_t *ses)
{
    if (ses->state == NULL && (ses->state = malloc(sizeof(*ses->state))) != NULL)
        state_from_context(ses, ses->state);
    return ses->state;
}

/* The newest connection's context (a phone joining a desktop session). */
void rc_session_set_context(rc_session_t *ses, int device, int tz_offset_min, int locale)
{
    ses->device = (uint8_t)device;
    ses->tz_offset_min = (int16_t)tz_offset_min;
    ses->locale = (int16_t)locale;
    if (ses->state != NULL) {
        ses->state->device = ses->device;
        ses->state->tz_offset_min = ses->tz_offset_min;
        ses->state->locale = ses->locale;
    }
}

void rc_session_free(rc_sessions_t *s, rc_session_t *ses)
{
    if (rc_list_linked(&ses->dirty_link))
        rc_session_save_profile(s, ses);
    rc_list_unlink(&ses->idle_link);
    rc_list_unlink(&ses->awaiting_link);
    rc_strmap_del(&s->by_user, ses->user, ses->user_len);
    rc_strmap_del(&s->by_pseudo, ses->pseudo, PSEUDO_LEN);
    if (s->directory != NULL)
        rc_directory_leave(s->directory, ses->pseudo, PSEUDO_LEN, s->loop_index);
    for (uint32_t i = 0; i < ses->n_views; i++)
        rc_view_free(ses->views[i]);
    free(ses->views);
    free(ses->seen.ids);
    free(ses->state);
    rc_session_drop_delta(s, ses);
    free(ses);
    s->n_sessions--;
    rc_metrics.sessions = s->n_sessions;
}

rc_session_t *rc_session_find(rc_sessions_t *s, const char *user, size_t len)
{
    uint64_t ptr;
    return rc_strmap_get(&s->by_user, user, len, &ptr) ? (rc_session_t *)(uintptr_t)ptr : NULL;
}

rc_session_t *rc_session_find_pseudo(rc_sessions_t *s, rc_str_t pseudo)
{
    uint64_t ptr;
    return rc_strmap_get(&s->by_pseudo, pseudo.p, pseudo.n, &ptr) ? (rc_session_t *)(uintptr_t)ptr
                                                                  : NULL;
}

/* A user's id between nodes: a keyed hash (HMAC-SHA256 under --pseudonym-key, the same on
 * every node), so Kafka's topics and logs never hold a raw user id, and no one without the
 * key can tell whose events they are. */
void rc_sessions_pseudonym(const rc_sessions_t *s, const char *user, size_t len,
                           char out[PSEUDO_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), s->pseudo_key, (int)s->pseudo_key_len, (const unsigned char *)user, len, mac,
         &mac_len);
    for (int i = 0; i < PSEUDO_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[PSEUDO_LEN] = '\0';
}

/* Asks the store for the user's profile (with consent; the answer comes later). */
static void load_profile(rc_sessions_t *s, rc_session_t *ses)
{
    if (!ses->consent)
        return;
    int rc = rc_profile_load(s->profiles, ses->user, ses->user_len);
    if (rc != 0)
        RC_WARN("session", "profile load failed", "error=\"%s\"", rc_strerror(rc));
}

rc_session_t *rc_session_create(rc_sessions_t *s, rc_str_t user, int device, int tz, bool consent)
{
    rc_session_t *ses = calloc(1, sizeof(*ses));
    if (ses == NULL)
        return NULL;
    memcpy(ses->user, user.p, user.n);
    ses->user_len = user.n;
    snprintf(ses->id, sizeof(ses->id), "s-%llx", (unsigned long long)++s->next_session_id);
    ses->device = (uint8_t)device;
    ses->tz_offset_min = (int16_t)tz;
    ses->locale = -1;
    rc_list_init(&ses->conns);
    rc_list_init(&ses->idle_link);
    rc_list_init(&ses->dirty_link);
    rc_list_init(&ses->awaiting_link);
    /* Versions start at the wall clock in microseconds, so a session rebuilt after an idle
     * drop continues above every version its lists had before. */
    ses->version = rc_wall_ms() * 1000;
    rc_sessions_pseudonym(s, ses->user, ses->user_len, ses->pseudo);
    const rc_experiment_t *x = rc_engine_experiment(rc_sessions_engine(s));
    if (x != NULL)
        ses->variant = rc_experiment_assign(x, ses->user, ses->user_len);
    if (rc_strmap_put(&s->by_user, ses->user, ses->user_len, (uintptr_t)ses) != 0) {
        free(ses);
        return NULL;
    }
    if (rc_strmap_put(&s->by_pseudo, ses->pseudo, PSEUDO_LEN, (uintptr_t)ses) != 0) {
        rc_strmap_del(&s->by_user, ses->user, ses->user_len);
        free(ses);
        return NULL;
    }
    s->n_sessions++;
    rc_metrics.sessions = s->n_sessions;
    /* Out of memory in the directory: the user's sessions on other loops do not see this
     * one's events, as if it were on another node without a bus (logged). */
    uint64_t peers = 0;
    if (s->directory != NULL && (peers = rc_directory_join(s->directory, ses->pseudo, PSEUDO_LEN,
                                                           s->loop_index)) == UINT64_MAX) {
        RC_WARN("session", "not in the loops' directory: out of memory", NULL);
        peers = 0;
    }
    rc_session_adopt_restored(s, ses);
    ses->consent = consent;
    /* A session of the user on another loop knows more than the store (its changes are
     * written behind): its state is asked for instead (rc_sessions_peer_answer). */
    if (peers != 0 && s->ask_peer != NULL) {
        ses->awaiting_peer = true;
        ses->awaiting_since_us = rc_mono_us();
        rc_list_push_back(&s->awaiting_peers, &ses->awaiting_link);
        s->ask_peer(s->peer_ctx, ses->pseudo, peers);
    } else {
        load_profile(s, ses);
    }
    return ses;
}

void rc_sessions_set_peer_hook(rc_sessions_t *s, rc_sessions_ask_peer_fn ask, void *ctx)
{
    s->ask_peer = ask;
    s->peer_ctx = ctx;
}

bool rc_sessions_peer_state(rc_sessions_t *s, rc_str_t pseudo, rc_user_state_t *out, uint64_t *ids,
                            uint32_t *n_ids)
{
    rc_session_t *ses = rc_session_find_pseudo(s, pseudo);
    if (ses == NULL)
        return false;
    *out = *rc_session_state_read(ses, out);
    *n_ids = ses->seen.n;
    if (ses->seen.n > 0)
        memcpy(ids, ses->seen.ids, ses->seen.n * sizeof(*ids));
    return true;
}

/* The session has what it waited for (or waits no more): its connections' held messages
 * are handled now. */
static void done_awaiting(rc_session_t *ses)
{
    ses->awaiting_peer = false;
    rc_list_unlink(&ses->awaiting_link);
    for (rc_link_t *l = ses->conns.next, *next; l != &ses->conns; l = next) {
        next = l->next;
        rc_conn_handle_held(RC_CONTAINER_OF(l, rc_conn_t, session_link));
    }
}

void rc_sessions_stop_awaiting(rc_sessions_t *s, rc_session_t *ses)
{
    if (!ses->awaiting_peer)
        return;
    RC_WARN("session", "a session's state from another loop did not come in time", "session=%s",
            ses->id);
    ses->awaiting_peer = false; /* its answer, if it comes, is too late: ignored */
    rc_list_unlink(&ses->awaiting_link);
    load_profile(s, ses);
    done_awaiting(ses);
}

void rc_sessions_peer_answer(rc_sessions_t *s, rc_str_t pseudo, const rc_user_state_t *u,
                             const uint64_t *ids, uint32_t n_ids)
{
    rc_session_t *ses = rc_session_find_pseudo(s, pseudo);
    if (ses == NULL || !ses->awaiting_peer)
        return;
    if (u == NULL) { /* the peer's session ended: its changes are in the store by now */
        load_profile(s, ses);
        done_awaiting(ses);
        return;
    }
    for (uint32_t i = 0; i < n_ids; i++)
        if (ids[i] != 0 && !rc_session_seen_event(ses, ids[i]))
            rc_session_remember_event(ses, ids[i]);
    rc_user_state_t *mine = rc_session_state_write(ses);
    if (mine == NULL) {
        done_awaiting(ses);
        return;
    }
    /* The history is the user's; the context (device, time zone, locale) this session's. */
    *mine = *u;
    rc_session_set_context(ses, ses->device, ses->tz_offset_min, ses->locale);
    rc_session_rerank(s, ses, (rc_str_t){NULL, 0}, 0);
    done_awaiting(ses);
}

/* Anonymous ids are signed under --anon-id-key or, without one, under the pseudonym key: a
 * cluster shares it (--kafka requires it) and --data-dir keeps it, so an issued id is known on
 * every node and after a restart exactly where pseudonyms are. */
static void set_anonid_keys(rc_sessions_t *s)
{
    const rc_config_t *cfg = s->cfg;
    const char *prev = cfg->anon_id_key_previous;
    if (cfg->anon_id_key[0] != '\0')
        rc_anonid_keys_init(&s->anon_keys, cfg->anon_id_key, strlen(cfg->anon_id_key), prev,
                            strlen(prev));
    else
        rc_anonid_keys_init(&s->anon_keys, s->pseudo_key, s->pseudo_key_len, prev, strlen(prev));
}

rc_sessions_t *rc_sessions_new(const rc_config_t *cfg, const char *node_id, rc_engine_t *engine,
                               rc_profile_store_t *profiles, rc_bus_t *bus,
                               const rc_transport_ops_t *tops)
{
    rc_sessions_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->node_id = node_id;
    s->engine = engine;
    s->profiles = profiles;
    s->bus = bus;
    s->tops = tops;
    rc_strmap_init(&s->by_user);
    rc_strmap_init(&s->by_pseudo);
    rc_strmap_init(&s->restored);
    rc_list_init(&s->restored_order);
    /* Without a configured key (one node, in-process bus) a random one does: pseudonyms
     * then only have to agree within this process. */
    s->pseudo_key_len = strlen(cfg->pseudonym_key);
    if (s->pseudo_key_len > sizeof(s->pseudo_key))
        s->pseudo_key_len = sizeof(s->pseudo_key);
    memcpy(s->pseudo_key, cfg->pseudonym_key, s->pseudo_key_len);
    if (s->pseudo_key_len == 0 && getrandom(s->pseudo_key, 32, 0) == 32)
        s->pseudo_key_len = 32;
    set_anonid_keys(s);
    s->anon_ids_chosen = cfg->demo || strcmp(cfg->anonymous_ids, "chosen") == 0;
    rc_list_init(&s->all_conns);
    rc_list_init(&s->awaiting_hello);
    rc_list_init(&s->idle_sessions);
    rc_list_init(&s->dirty_sessions);
    rc_list_init(&s->awaiting_peers);
    rc_list_init(&s->active);
    rc_list_init(&s->pinged);
    rc_wbuf_init(&s->scratch, 0);
    s->limits =
        (rc_limits_t){cfg->max_message_bytes, cfg->max_batch,   cfg->max_subscriptions, cfg->max_k,
                      cfg->events_per_sec,    cfg->events_burst};
    s->rank_buf = calloc((size_t)cfg->max_k, sizeof(*s->rank_buf));
    s->recs_buf = calloc((size_t)cfg->max_k, sizeof(*s->recs_buf));
    s->reason_buf = calloc((size_t)cfg->max_k, sizeof(*s->reason_buf));
    s->why_buf = calloc((size_t)cfg->max_k, WHY_LEN);
    s->compact_marker = rc_frame_new("", 0, false);
    s->ranker = rc_ranker_new();
    rc_view_measure_names(s);
    if (s->ranker == NULL || s->rank_buf == NULL || s->recs_buf == NULL || s->reason_buf == NULL ||
        s->why_buf == NULL || s->compact_marker == NULL ||
        rc_proto_decoder_init(&s->decoder, (uint32_t)cfg->max_batch, (uint32_t)cfg->max_k) != 0) {
        free(s->rank_buf);
        free(s->recs_buf);
        free(s->reason_buf);
        free(s->why_buf);
        rc_ranker_free(s->ranker);
        rc_frame_unref(s->compact_marker);
        free(s);
        return NULL;
    }
    return s;
}

void rc_sessions_free(rc_sessions_t *s)
{
    if (s == NULL)
        return;
    /* Connections still listed were not closed by the transport; release them here. */
    while (!rc_list_empty(&s->all_conns))
        rc_conn_closed(RC_CONTAINER_OF(s->all_conns.next, rc_conn_t, all_link));
    while (!rc_list_empty(&s->idle_sessions))
        rc_session_free(s, RC_CONTAINER_OF(s->idle_sessions.next, rc_session_t, idle_link));
    while (s->free_tickets != NULL) {
        ticket_t *t = s->free_tickets;
        s->free_tickets = t->next_free;
        free(t);
    }
    while (s->free_deltas != NULL) {
        spare_delta_t *d = s->free_deltas;
        s->free_deltas = d->next_free;
        free(d);
    }
    rc_strmap_free(&s->by_user);
    rc_strmap_free(&s->by_pseudo);
    rc_sessions_restored_free(s);
    rc_proto_decoder_free(&s->decoder);
    rc_wbuf_free(&s->scratch);
    rc_ranker_free(s->ranker);
    free(s->rank_buf);
    free(s->recs_buf);
    free(s->reason_buf);
    free(s->why_buf);
    rc_frame_unref(s->compact_marker);
    rc_sessions_read_end(s);
    rc_shared_reader_unregister(s->reader);
    free(s);
}

void rc_sessions_set_pseudonym_key(rc_sessions_t *s, const void *key, size_t len)
{
    s->pseudo_key_len = len < sizeof(s->pseudo_key) ? len : sizeof(s->pseudo_key);
    memcpy(s->pseudo_key, key, s->pseudo_key_len);
    set_anonid_keys(s);
}

void rc_sessions_set_verifier(rc_sessions_t *s, const rc_jwt_verifier_t *jwt)
{
    s->jwt = jwt;
}

rc_jwt_reason_t rc_sessions_verify_token(rc_sessions_t *s, const char *token, size_t len,
                                         rc_jwt_claims_t *out)
{
    rc_jwt_reason_t why = s->jwt != NULL
                              ? rc_jwt_verify(s->jwt, token, len, rc_wall_ms() / 1000, out)
                              : RC_JWT_BAD_ALG;
    rc_metrics.auth_refused[why < RC_METRICS_AUTH_REASONS ? why : 0] += why != RC_JWT_OK;
    rc_metrics.auth_verified += why == RC_JWT_OK;
    return why;
}

void rc_sessions_settle(rc_sessions_t *s)
{
    rc_bus_settle(s->bus);
}

/* How long a session waits for the state of the user's session on another loop: the answer
 * takes microseconds; a loop that does not answer is stopping. */
#define PEER_WAIT_US 1000000

void rc_sessions_tick(rc_sessions_t *s, uint64_t now_us)
{
    rc_sessions_check_conns(s, now_us);
    while (!rc_list_empty(&s->awaiting_peers)) {
        rc_session_t *ses = RC_CONTAINER_OF(s->awaiting_peers.next, rc_session_t, awaiting_link);
        if (now_us - ses->awaiting_since_us < PEER_WAIT_US)
            break;
        rc_sessions_stop_awaiting(s, ses);
    }
    uint64_t idle_us = (uint64_t)s->cfg->session_idle_s * 1000000;
    while (!rc_list_empty(&s->idle_sessions)) {
        rc_session_t *ses = RC_CONTAINER_OF(s->idle_sessions.next, rc_session_t, idle_link);
        if (now_us - ses->idle_since_us < idle_us)
            break;
        rc_session_free(s, ses);
    }
    rc_sessions_flush_due(s, now_us, RC_FLUSH_BUDGET_US);
}

rc_session_t *rc_sessions_next(rc_sessions_t *s, size_t *cursor)
{
    for (; *cursor < s->by_user.cap; (*cursor)++)
        if (s->by_user.slots[*cursor].hash != 0)
            return (rc_session_t *)(uintptr_t)s->by_user.slots[(*cursor)++].value;
    return NULL;
}

uint32_t rc_sessions_conn_count(const rc_sessions_t *s)
{
    return s->n_conns;
}

uint32_t rc_sessions_count(const rc_sessions_t *s)
{
    return s->n_sessions;
}
