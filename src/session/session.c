/* Sessions, views and the protocol state machine of a connection.
 *
 * Ownership: the registry owns sessions; a session owns its views; a connection points at
 * its session and at one view per subscription (a view counts those references). A
 * connection is reference-counted: the transport holds one reference until
 * rc_conn_closed(), and every event still being published holds one, so a bus
 * completion never touches freed memory when the client has gone. */
#include "session/session.h"
#include "engine/experiments.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/list.h"
#include "util/log.h"
#include "util/metrics.h"
#include "net/ops.h"
#include "util/strmap.h"

#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#define MAX_VIEWS         64   /* live lists per user session */
#define DEDUPE_MAX        1024 /* event ids remembered per user (PROTOCOL.md section 5) */
#define ERROR_WINDOW_US   10000000
#define ERRORS_PER_WINDOW 20
/* Messages other than events (ping, subscribe, auth...): a flood of them costs the loop as
 * much as events do, so they have a bucket of their own (PROTOCOL.md section 6). */
#define CONTROL_PER_SEC 50.0
#define CONTROL_BURST   100.0
#define WHY_LEN         96
#define PSEUDO_LEN      32 /* hex characters of a pseudonym: 128 bits of HMAC-SHA256 */

typedef struct rc_view {
    char surface[RC_SURFACE_MAX + 1];
    rc_rank_spec_t spec;
    uint32_t refs;
    int64_t version;
    uint64_t list_hash;
    uint32_t n;
    rc_ranked_t *ranked; /* spec.k entries */
    char cause[RC_ID_MAX + 1];
    uint64_t cause_t0_us;
    int64_t took_us;
    rc_frame_t *frame[RC_FMT_COUNT]; /* the current list, encoded on first need */
} rc_view_t;

typedef struct rc_session {
    char user[RC_ID_MAX + 1];
    uint32_t user_len;
    char pseudo[PSEUDO_LEN + 1]; /* the user's id on the bus (privacy: never the raw id) */
    char id[32];
    /* The context every rank needs, and the history (recent items, content vector, ...)
     * only a user who did something has: NULL until the first event or stored profile, so
     * an idle session costs about a third of the memory (state_for_read/_write). */
    uint8_t device;
    int8_t locale; /* the engine's locale slot, or -1 */
    int16_t tz_offset_min;
    rc_user_state_t *state;
    rc_view_t **views; /* grown on demand up to MAX_VIEWS */
    uint32_t n_views, cap_views;
    rc_link_t conns; /* rc_conn_t.session_link */
    uint32_t n_conns;
    int64_t version;
    rc_link_t idle_link;     /* in registry idle list while no connection is open */
    rc_link_t dirty_link;    /* in registry dirty list while the profile awaits a write */
    uint64_t dirty_since_us; /* when it joined that list (the list is oldest first) */
    uint64_t idle_since_us;
    uint64_t *seen_ids; /* ring of hashed event ids, grows to DEDUPE_MAX */
    uint32_t n_seen, cap_seen, seen_head;
    bool consent;              /* false: session-only personalization, nothing stored */
    uint32_t variant;          /* experiment variant (engine/experiments.h) */
    rc_profile_delta_t *delta; /* what changed since the last profile write; NULL: nothing */
} rc_session_t;

typedef enum { CONN_AWAIT_HELLO, CONN_READY, CONN_CLOSING, CONN_GONE } conn_state_t;

typedef struct rc_sub {
    char surface[RC_SURFACE_MAX + 1];
    rc_view_t *view; /* NULL: free slot */
} rc_sub_t;

struct rc_conn {
    rc_sessions_t *reg;
    void *transport;
    rc_session_t *session;
    /* A connection awaits hello or belongs to a session, never both: one link serves. */
    union {
        rc_link_t hello_link;   /* registry list of connections awaiting hello, oldest first */
        rc_link_t session_link; /* its session's connections */
    };
    rc_link_t all_link; /* registry list of every open connection */
    rc_sub_t *subs;     /* n_subs slots, grown on demand up to max_subscriptions; the
                           index is the outbox slot */
    rc_outbox_t outbox;
    rc_wbuf_t acks; /* pending ack ids: a length byte, then the id */
    /* The 4-byte fields together: no padding between them (an idle connection is mostly
     * this struct and libwebsockets'). */
    rc_format_t fmt;
    conn_state_t state;
    uint32_t refs;
    uint32_t n_subs;
    uint32_t n_acks;
    uint32_t errors_in_window;
    int close_code;
    double tokens;
    uint64_t tokens_at_us;
    double control_tokens;
    uint64_t control_at_us;
    uint64_t window_start_us;
    uint64_t opened_us;
    const char *close_reason;
    /* Liveness: in the registry's `active` list (ordered by last input) or, once pinged,
     * in `pinged` (ordered by ping time), so the tick only looks at list heads. */
    rc_link_t activity_link;
    uint64_t last_input_us;
    uint64_t pinged_us;
    int64_t auth_exp_s; /* the token's exp (wall seconds); 0: no token */
    /* Verified from the Authorization header or hello.token: its subject is the only user
     * this connection may be. Held only until hello is answered. */
    rc_jwt_claims_t *claims;
};

/* One event on its way through the bus: keeps its connection alive and its id. */
typedef struct ticket {
    rc_conn_t *conn;
    rc_session_t *session; /* for forgetting the id if publishing fails */
    uint8_t id_len;
    char id[RC_ID_MAX];
    struct ticket *next_free;
} ticket_t;

/* A session holds a profile delta only while it has changes to write. Dropped deltas wait
 * for the next ones, up to SPARE_DELTAS (about 1.6 MB), so steady writing allocates
 * nothing. */
#define SPARE_DELTAS 4096
typedef union spare_delta {
    rc_profile_delta_t delta; /* first: a session's pointer to it converts back */
    union spare_delta *next_free;
} spare_delta_t;

struct rc_sessions {
    const rc_config_t *cfg;
    const char *node_id;
    rc_engine_t *engine;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    const rc_transport_ops_t *tops;
    rc_strmap_t by_user;
    rc_strmap_t by_pseudo;
    unsigned char pseudo_key[64];
    size_t pseudo_key_len;
    uint32_t n_sessions, n_conns;
    uint64_t next_session_id;
    rc_link_t all_conns, awaiting_hello, idle_sessions, dirty_sessions;
    rc_link_t active, pinged; /* rc_conn_t.activity_link */
    const rc_jwt_verifier_t *jwt;
    rc_proto_decoder_t decoder;
    rc_wbuf_t scratch; /* encoding scratch, reused */
    rc_ranked_t *rank_buf;
    rc_recs_item_t *recs_buf;
    char (*why_buf)[WHY_LEN];
    ticket_t *free_tickets;
    spare_delta_t *free_deltas;
    uint32_t n_free_deltas;
    rc_limits_t limits;
};

/* ---- frames ---- */

static rc_frame_t *finish_frame(rc_sessions_t *s, rc_format_t fmt)
{
    if (rc_wbuf_ok(&s->scratch) != 0)
        return NULL;
    return rc_frame_new(rc_wbuf_data(&s->scratch), s->scratch.len, fmt == RC_FMT_MSGPACK);
}

static void start_encoding(rc_sessions_t *s, rc_enc_t *e, rc_format_t fmt)
{
    rc_wbuf_reset(&s->scratch);
    rc_enc_init(e, &s->scratch, fmt);
}

/* ---- connection helpers ---- */

static void conn_unref(rc_conn_t *c)
{
    if (--c->refs > 0)
        return;
    rc_outbox_free(&c->outbox);
    rc_wbuf_free(&c->acks);
    free(c->subs);
    free(c->claims);
    free(c);
}

static void wake(rc_conn_t *c)
{
    if (c->state != CONN_GONE)
        c->reg->tops->want_write(c->transport);
}

static void conn_close_after_flush(rc_conn_t *c, int ws_code, const char *reason)
{
    if (c->state == CONN_GONE || c->close_code != 0)
        return;
    c->state = CONN_CLOSING;
    c->close_code = ws_code;
    c->close_reason = reason;
    wake(c);
}

/* Queues a frame that must arrive. A connection whose FIFO is full does not read: it is
 * closed as a slow consumer at once (PROTOCOL.md 4050), never left to grow. */
static void conn_send(rc_conn_t *c, rc_frame_t *f)
{
    if (f == NULL || c->state == CONN_GONE)
        return;
    int rc = rc_outbox_push(&c->outbox, f, (size_t)c->reg->cfg->outbox_max_bytes);
    if (rc == RC_EFULL) {
        rc_metrics_error(RC_PERR_SLOW_CONSUMER);
        RC_INFO("session", "slow consumer closed", "session=%s", c->session ? c->session->id : "-");
        c->close_code = 4050;
        c->close_reason = "slow consumer";
        c->state = CONN_CLOSING;
        c->reg->tops->kill(c->transport);
        return;
    }
    wake(c);
}

static int ws_close_code_for(int code)
{
    return code == RC_PERR_TOO_LARGE ? 1009 : code;
}

static void conn_error(rc_conn_t *c, int code, const char *message, rc_str_t id, bool fatal)
{
    rc_sessions_t *s = c->reg;
    rc_enc_t e;
    uint64_t now = rc_mono_us();

    if (c->state == CONN_GONE || c->state == CONN_CLOSING)
        return;
    rc_metrics_error(code);
    if (!fatal) {
        /* A client that only ever sends garbage is cut off instead of answered forever. */
        if (now - c->window_start_us > ERROR_WINDOW_US) {
            c->window_start_us = now;
            c->errors_in_window = 0;
        }
        if (++c->errors_in_window > ERRORS_PER_WINDOW) {
            code = RC_PERR_TOO_MANY_ERRORS;
            message = "too many errors";
            id = (rc_str_t){NULL, 0};
            fatal = true;
            rc_metrics_error(code);
        }
    }
    start_encoding(s, &e, c->fmt);
    rc_proto_encode_error(&e, code, message, id, fatal);
    rc_frame_t *f = finish_frame(s, c->fmt);
    conn_send(c, f);
    rc_frame_unref(f);
    if (fatal)
        conn_close_after_flush(c, ws_close_code_for(code), rc_proto_error_name(code));
}

static void add_ack(rc_conn_t *c, const char *id, size_t len)
{
    uint8_t n = (uint8_t)len;
    rc_wbuf_put(&c->acks, &n, 1);
    rc_wbuf_put(&c->acks, id, len);
    c->n_acks++;
    wake(c);
}

/* ---- views ---- */

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

static void view_free(rc_view_t *v)
{
    view_drop_frames(v);
    free(v->ranked);
    free(v);
}

/* A state with no history, in the session's context. */
static void state_from_context(const rc_session_t *ses, rc_user_state_t *u)
{
    rc_user_state_init(u, ses->device, ses->tz_offset_min);
    u->locale = ses->locale;
}

/* The user's state for ranking: the session's own, or, while it has none, `empty` made
 * from the context alone. */
static const rc_user_state_t *state_for_read(const rc_session_t *ses, rc_user_state_t *empty)
{
    if (ses->state != NULL)
        return ses->state;
    state_from_context(ses, empty);
    return empty;
}

/* The user's state for learning, made on first need. NULL when out of memory. */
static rc_user_state_t *state_for_write(rc_session_t *ses)
{
    if (ses->state == NULL && (ses->state = malloc(sizeof(*ses->state))) != NULL)
        state_from_context(ses, ses->state);
    return ses->state;
}

/* The newest connection's context (a phone joining a desktop session). */
static void set_context(rc_session_t *ses, int device, int tz_offset_min, int locale)
{
    ses->device = (uint8_t)device;
    ses->tz_offset_min = (int16_t)tz_offset_min;
    ses->locale = (int8_t)locale;
    if (ses->state != NULL) {
        ses->state->device = ses->device;
        ses->state->tz_offset_min = ses->tz_offset_min;
        ses->state->locale = ses->locale;
    }
}

static rc_profile_delta_t *delta_get(rc_sessions_t *s)
{
    spare_delta_t *d = s->free_deltas;
    if (d == NULL) {
        d = calloc(1, sizeof(*d));
        return d != NULL ? &d->delta : NULL;
    }
    s->free_deltas = d->next_free;
    s->n_free_deltas--;
    memset(&d->delta, 0, sizeof(d->delta));
    return &d->delta;
}

static void drop_delta(rc_sessions_t *s, rc_session_t *ses)
{
    spare_delta_t *d = (spare_delta_t *)ses->delta;
    ses->delta = NULL;
    if (d == NULL || s->n_free_deltas == SPARE_DELTAS) {
        free(d);
        return;
    }
    d->next_free = s->free_deltas;
    s->free_deltas = d;
    s->n_free_deltas++;
}

/* Encodes a view's list. `with_cause` is false for the answer to subscribe. */
static rc_frame_t *encode_view(rc_sessions_t *s, const rc_session_t *ses, const rc_view_t *v,
                               rc_format_t fmt, bool with_cause)
{
    const rc_catalog_t *cat = &s->engine->catalog;
    rc_user_state_t empty;
    const rc_user_state_t *u = state_for_read(ses, &empty);
    rc_enc_t e;
    /* The items' strings lie scattered over the heap: ask for all of them first. */
    for (uint32_t i = 0; i < v->n; i++) {
        const rc_item_label_t *l = &cat->labels[v->ranked[i].item];
        __builtin_prefetch(l->id);
        __builtin_prefetch(l->name);
    }
    for (uint32_t i = 0; i < v->n; i++) {
        const rc_ranked_t *r = &v->ranked[i];
        const rc_item_t *it = &cat->items[r->item];
        rc_engine_why(s->engine, u, r, s->why_buf[i], WHY_LEN);
        s->recs_buf[i] = (rc_recs_item_t){
            .item = rc_item_id(cat, r->item),
            .score = r->score,
            .src = rc_src_name(r->src),
            .why = s->why_buf[i],
            .name = (it->flags & RC_ITEM_LEARNED) ? NULL : rc_item_name(cat, r->item),
            .category = it->category ? cat->categories[it->category] : NULL,
            .price = it->price,
        };
    }
    rc_recs_t recs = {
        .surface = v->surface,
        .version = v->version,
        .items = s->recs_buf,
        .n_items = v->n,
        .cause =
            with_cause ? (rc_str_t){v->cause, (uint32_t)strlen(v->cause)} : (rc_str_t){NULL, 0},
        .took_us = v->took_us,
        .variant = s->engine->experiment
                       ? rc_experiment_variant_name(s->engine->experiment, ses->variant)
                       : "control",
    };
    start_encoding(s, &e, fmt);
    rc_proto_encode_recs(&e, &recs);
    rc_frame_t *f = finish_frame(s, fmt);
    if (f != NULL) {
        f->is_recs = true;
        f->cause_t0_us = with_cause ? v->cause_t0_us : 0;
    }
    return f;
}

/* Ranks a view again. Returns true when its list changed (and the version moved). */
static bool view_rerank(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v, rc_str_t cause,
                        uint64_t t0_us)
{
    uint64_t start = rc_mono_us();
    rc_user_state_t empty;
    uint32_t n =
        rc_engine_rank(s->engine, state_for_read(ses, &empty), &v->spec, rc_wall_ms(), s->rank_buf);
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
    v->cause_t0_us = t0_us;
    v->took_us = (int64_t)(done - (t0_us ? t0_us : start));
    view_drop_frames(v);
    return true;
}

/* Hands a view's new list to every connection of the session subscribed to it. */
static void view_publish(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v)
{
    for (rc_link_t *l = ses->conns.next; l != &ses->conns; l = l->next) {
        rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, session_link);
        if (c->state != CONN_READY)
            continue;
        for (uint32_t i = 0; i < c->n_subs; i++) {
            if (c->subs[i].view != v)
                continue;
            if (v->frame[c->fmt] == NULL)
                v->frame[c->fmt] = encode_view(s, ses, v, c->fmt, v->cause[0] != '\0');
            if (v->frame[c->fmt] == NULL)
                continue;
            if (rc_outbox_set_slot(&c->outbox, (uint32_t)i, v->frame[c->fmt]))
                rc_metrics.pushes_skipped++;
            wake(c);
        }
    }
    /* The outboxes hold the frames until written; an idle session keeps none. */
    view_drop_frames(v);
}

static void session_rerank(rc_sessions_t *s, rc_session_t *ses, rc_str_t cause, uint64_t t0_us)
{
    for (uint32_t i = 0; i < ses->n_views; i++)
        if (view_rerank(s, ses, ses->views[i], cause, t0_us))
            view_publish(s, ses, ses->views[i]);
}

static bool spec_equal(const rc_rank_spec_t *a, const rc_rank_spec_t *b)
{
    return a->k == b->k && a->category == b->category && a->price_min == b->price_min &&
           a->price_max == b->price_max;
}

static rc_view_t *view_acquire(rc_sessions_t *s, rc_session_t *ses, rc_str_t surface,
                               const rc_rank_spec_t *spec)
{
    for (uint32_t i = 0; i < ses->n_views; i++) {
        rc_view_t *v = ses->views[i];
        if (strlen(v->surface) == surface.n && memcmp(v->surface, surface.p, surface.n) == 0 &&
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
    v->spec = *spec;
    v->spec.surface = v->surface;
    v->refs = 1;
    view_rerank(s, ses, v, (rc_str_t){NULL, 0}, 0);
    ses->views[ses->n_views++] = v;
    return v;
}

static void view_release(rc_session_t *ses, rc_view_t *v)
{
    if (--v->refs > 0)
        return;
    for (uint32_t i = 0; i < ses->n_views; i++) {
        if (ses->views[i] == v) {
            ses->views[i] = ses->views[--ses->n_views];
            break;
        }
    }
    view_free(v);
}

/* ---- sessions ---- */

static void mark_dirty(rc_sessions_t *s, rc_session_t *ses)
{
    if (!rc_list_linked(&ses->dirty_link)) {
        ses->dirty_since_us = rc_mono_us();
        rc_list_push_back(&s->dirty_sessions, &ses->dirty_link);
    }
}

/* Writes what the session changed since its last write (write-behind: for every dirty
 * session every profile_flush_ms when the store is shared, when its delta is full, and when
 * the session is dropped). */
static void save_profile(rc_sessions_t *s, rc_session_t *ses)
{
    rc_list_unlink(&ses->dirty_link);
    if (!ses->consent || ses->delta == NULL || rc_profile_delta_empty(ses->delta)) {
        drop_delta(s, ses);
        return;
    }
    rc_wbuf_reset(&s->scratch);
    int rc = rc_profile_delta_encode(&s->engine->catalog, ses->delta, rc_wall_ms(), &s->scratch);
    if (rc == 0)
        rc = rc_profile_update(s->profiles, ses->user, ses->user_len, rc_wbuf_data(&s->scratch),
                               s->scratch.len);
    if (rc != 0)
        RC_WARN("session", "profile update dropped", "session=%s error=\"%s\"", ses->id,
                rc_strerror(rc));
    drop_delta(s, ses);
}

/* Adds an event to the session's unwritten profile changes. A delta that could take it only
 * by dropping something is written first, and the event starts a new one. */
static void note_profile_change(rc_sessions_t *s, rc_session_t *ses, rc_event_kind_t kind,
                                int64_t item, float w)
{
    const rc_catalog_t *c = &s->engine->catalog;
    if (ses->delta != NULL && !rc_profile_delta_add(ses->delta, c, kind, item, w))
        save_profile(s, ses); /* and drops it */
    if (ses->delta == NULL) {
        ses->delta = delta_get(s);
        if (ses->delta == NULL) {
            RC_WARN("session", "profile update dropped: out of memory", "session=%s", ses->id);
            return;
        }
        rc_profile_delta_add(ses->delta, c, kind, item, w); /* an empty delta takes any event */
    }
    mark_dirty(s, ses);
}

static void session_free(rc_sessions_t *s, rc_session_t *ses)
{
    if (rc_list_linked(&ses->dirty_link))
        save_profile(s, ses);
    rc_list_unlink(&ses->idle_link);
    rc_strmap_del(&s->by_user, ses->user, ses->user_len);
    rc_strmap_del(&s->by_pseudo, ses->pseudo, PSEUDO_LEN);
    for (uint32_t i = 0; i < ses->n_views; i++)
        view_free(ses->views[i]);
    free(ses->views);
    free(ses->seen_ids);
    free(ses->state);
    drop_delta(s, ses);
    free(ses);
    s->n_sessions--;
    rc_metrics.sessions = s->n_sessions;
}

static rc_session_t *session_find(rc_sessions_t *s, const char *user, size_t len)
{
    uint64_t ptr;
    return rc_strmap_get(&s->by_user, user, len, &ptr) ? (rc_session_t *)(uintptr_t)ptr : NULL;
}

static rc_session_t *session_find_pseudo(rc_sessions_t *s, rc_str_t pseudo)
{
    uint64_t ptr;
    return rc_strmap_get(&s->by_pseudo, pseudo.p, pseudo.n, &ptr) ? (rc_session_t *)(uintptr_t)ptr
                                                                  : NULL;
}

/* A user's id between nodes: a keyed hash (HMAC-SHA256 under --pseudonym-key, the same on
 * every node), so Kafka's topics and logs never hold a raw user id, and no one without the
 * key can tell whose events they are. */
static void pseudonym(const rc_sessions_t *s, const char *user, size_t len,
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

static rc_session_t *session_create(rc_sessions_t *s, rc_str_t user, int device, int tz,
                                    bool consent)
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
    /* Versions start at the wall clock in microseconds, so a session rebuilt after an idle
     * drop continues above every version its lists had before. */
    ses->version = rc_wall_ms() * 1000;
    pseudonym(s, ses->user, ses->user_len, ses->pseudo);
    if (s->engine->experiment != NULL)
        ses->variant = rc_experiment_assign(s->engine->experiment, ses->user, ses->user_len);
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
    ses->consent = consent;
    if (consent) {
        int rc = rc_profile_load(s->profiles, ses->user, ses->user_len);
        if (rc != 0)
            RC_WARN("session", "profile load failed", "error=\"%s\"", rc_strerror(rc));
    }
    return ses;
}

static void on_profile_loaded(void *ctx, const char *user, size_t user_len, int status,
                              const void *data, size_t len)
{
    rc_sessions_t *s = ctx;
    rc_session_t *ses = session_find(s, user, user_len);
    if (ses == NULL || status != 0 || !ses->consent || len == 0)
        return;
    rc_user_state_t *u = state_for_write(ses);
    if (u == NULL || rc_profile_merge(&s->engine->catalog, u, data, len) != 0) {
        RC_WARN("session", "profile unreadable", "session=%s", ses->id);
        return;
    }
    session_rerank(s, ses, (rc_str_t){NULL, 0}, 0);
}

static uint64_t event_key(rc_str_t id)
{
    uint64_t h = XXH3_64bits(id.p, id.n);
    return h ? h : 1;
}

static bool seen_event(const rc_session_t *ses, uint64_t key)
{
    for (uint32_t i = 0; i < ses->n_seen; i++)
        if (ses->seen_ids[i] == key)
            return true;
    return false;
}

static int remember_event(rc_session_t *ses, uint64_t key)
{
    if (ses->n_seen == ses->cap_seen && ses->cap_seen < DEDUPE_MAX) {
        uint32_t cap = ses->cap_seen ? ses->cap_seen * 2 : 16;
        uint64_t *p = realloc(ses->seen_ids, cap * sizeof(*p));
        if (p == NULL)
            return RC_ENOMEM;
        ses->seen_ids = p;
        ses->cap_seen = cap;
    }
    if (ses->n_seen < ses->cap_seen) {
        ses->seen_ids[ses->n_seen++] = key;
    } else {
        ses->seen_ids[ses->seen_head] = key; /* full: overwrite the oldest */
        ses->seen_head = (ses->seen_head + 1) % ses->cap_seen;
    }
    return 0;
}

static void forget_event(rc_session_t *ses, uint64_t key)
{
    for (uint32_t i = 0; i < ses->n_seen; i++)
        if (ses->seen_ids[i] == key)
            ses->seen_ids[i] = 0;
}

/* ---- events ---- */

static void on_published(void *arg, int status)
{
    ticket_t *t = arg;
    rc_conn_t *c = t->conn;
    rc_sessions_t *s = c->reg;
    if (status == 0) {
        /* A closing connection (drain, fatal error) still gets its acks before the close:
         * the client then need not resend what is already durable. */
        if (c->state == CONN_READY || c->state == CONN_CLOSING)
            add_ack(c, t->id, t->id_len);
    } else {
        if (c->state != CONN_GONE && c->session != NULL)
            forget_event(c->session, event_key((rc_str_t){t->id, t->id_len}));
        conn_error(c, RC_PERR_UNAVAILABLE, "the event could not be stored; retry",
                   (rc_str_t){t->id, t->id_len}, false);
    }
    t->next_free = s->free_tickets;
    s->free_tickets = t;
    conn_unref(c);
}

static ticket_t *ticket_get(rc_sessions_t *s)
{
    ticket_t *t = s->free_tickets;
    if (t != NULL) {
        s->free_tickets = t->next_free;
        return t;
    }
    return malloc(sizeof(ticket_t));
}

static bool take_control_token(rc_conn_t *c, uint64_t now_us)
{
    c->control_tokens += (double)(now_us - c->control_at_us) / 1e6 * CONTROL_PER_SEC;
    if (c->control_tokens > CONTROL_BURST)
        c->control_tokens = CONTROL_BURST;
    c->control_at_us = now_us;
    if (c->control_tokens < 1.0)
        return false;
    c->control_tokens -= 1.0;
    return true;
}

static bool take_token(rc_conn_t *c, uint64_t now_us)
{
    const rc_config_t *cfg = c->reg->cfg;
    c->tokens += (double)(now_us - c->tokens_at_us) / 1e6 * (double)cfg->events_per_sec;
    if (c->tokens > (double)cfg->events_burst)
        c->tokens = (double)cfg->events_burst;
    c->tokens_at_us = now_us;
    if (c->tokens < 1.0)
        return false;
    c->tokens -= 1.0;
    return true;
}

/* Other nodes learn co-visitation from an event only with the items the user acted on
 * before it, and trending per context only with the user's context, which only this node
 * knows when it alone holds the session. */
static void attach_context(const rc_sessions_t *s, const rc_session_t *ses, rc_bus_msg_t *m)
{
    rc_user_state_t empty;
    const rc_user_state_t *u = state_for_read(ses, &empty);
    const rc_catalog_t *c = &s->engine->catalog;
    m->device = u->device;
    m->tz_offset_min = u->tz_offset_min;
    if (u->locale >= 0) {
        const char *tag = s->engine->trending.locales[u->locale];
        m->locale = (rc_str_t){tag, (uint32_t)strlen(tag)};
    }
    for (uint8_t d = 0; d < u->n_recent && m->n_recent < RC_BUS_RECENT; d++) {
        const rc_recent_t *r = rc_user_recent(u, d);
        if (r->item >= c->n)
            continue;
        const char *id = rc_item_id(c, r->item);
        m->recent[m->n_recent] = (rc_str_t){id, (uint32_t)strlen(id)};
        m->recent_w[m->n_recent++] = r->w;
    }
}

/* Accepts one valid event: de-duplicates, publishes, applies. Returns true when it
 * changed the user's state (the caller re-ranks once per message). */
/* An impression of a surface, or a click (click, cart, purchase) naming the surface whose
 * current list holds the item, counts for the user's experiment variant. */
static void count_for_experiment(rc_sessions_t *s, const rc_session_t *ses,
                                 const rc_proto_event_t *ev, int64_t item)
{
    if (s->engine->experiment == NULL || ev->surface.n == 0)
        return;
    if (ev->kind == RC_EV_IMPRESSION) {
        rc_experiment_count(s->engine->experiment, ses->variant, false);
        return;
    }
    if ((ev->kind != RC_EV_CLICK && ev->kind != RC_EV_CART && ev->kind != RC_EV_PURCHASE) ||
        item < 0)
        return;
    for (uint32_t i = 0; i < ses->n_views; i++) {
        const rc_view_t *v = ses->views[i];
        if (strlen(v->surface) != ev->surface.n ||
            memcmp(v->surface, ev->surface.p, ev->surface.n) != 0)
            continue;
        for (uint32_t k = 0; k < v->n; k++) {
            if (v->ranked[k].item == (uint32_t)item) {
                rc_experiment_count(s->engine->experiment, ses->variant, true);
                return;
            }
        }
    }
}

static bool accept_event(rc_conn_t *c, const rc_proto_event_t *ev, uint64_t t0_us)
{
    rc_sessions_t *s = c->reg;
    rc_session_t *ses = c->session;

    if (!take_token(c, t0_us)) {
        conn_error(c, RC_PERR_RATE_LIMITED, "event rate limit exceeded; retry later", ev->id,
                   false);
        return false;
    }
    uint64_t key = event_key(ev->id);
    if (seen_event(ses, key)) {
        rc_metrics.events_duplicate++;
        add_ack(c, ev->id.p, ev->id.n);
        return false;
    }
    int64_t item = -1;
    if (ev->item.n > 0) {
        item = rc_catalog_resolve(&s->engine->catalog, ev->item.p, ev->item.n);
        if (item < 0) {
            conn_error(c, RC_PERR_UNKNOWN_ITEM, "item is not in the catalog", ev->id, false);
            return false;
        }
        rc_metrics.catalog_items = s->engine->catalog.n;
    }
    ticket_t *t = ticket_get(s);
    if (t == NULL || remember_event(ses, key) != 0) {
        free(t);
        conn_error(c, RC_PERR_INTERNAL, "out of memory", ev->id, false);
        return false;
    }
    *t = (ticket_t){.conn = c, .session = ses, .id_len = (uint8_t)ev->id.n};
    memcpy(t->id, ev->id.p, ev->id.n);
    rc_bus_msg_t be = {
        .kind = RC_BUS_EVENT,
        .user = {ses->pseudo, PSEUDO_LEN},
        .origin_node = {s->node_id, (uint32_t)strlen(s->node_id)},
        .ev = *ev,
        .received_ms = rc_wall_ms(),
    };
    if (rc_bus_shared(s->bus))
        attach_context(s, ses, &be);
    c->refs++;
    int rc = rc_bus_publish(s->bus, &be, on_published, t);
    if (rc != 0) {
        c->refs--;
        t->next_free = s->free_tickets;
        s->free_tickets = t;
        forget_event(ses, key);
        conn_error(c, RC_PERR_UNAVAILABLE, "the event could not be stored; retry", ev->id, false);
        return false;
    }
    rc_metrics.events_received[ev->kind]++;
    count_for_experiment(s, ses, ev, item);
    /* The dashboard sees the bus pseudonym, never the raw id. */
    rc_ops_record_event((rc_str_t){ses->pseudo, PSEUDO_LEN}, ev->kind, ev->item, ev->surface);
    float w = rc_event_weight(ev->kind, ev->has_value, ev->value);
    rc_user_state_t *u = state_for_write(ses);
    if (u == NULL) { /* published, so still learned by the models; not by this session */
        RC_WARN("session", "event not applied: out of memory", "session=%s", ses->id);
        return false;
    }
    bool changed = rc_engine_observe(s->engine, u, ev->kind, item, w, ev->query, be.received_ms);
    if (ses->consent && ev->kind != RC_EV_IMPRESSION)
        note_profile_change(s, ses, ev->kind, item, w);
    return changed;
}

/* ---- messages ---- */

/* Refuses a token: expired ones with 4011 (the client should fetch a fresh token), every
 * other failure with 4010. Both close the connection. */
static void refuse_token(rc_conn_t *c, rc_jwt_reason_t why)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "token refused: %s", rc_jwt_reason_name(why));
    conn_error(c, why == RC_JWT_EXPIRED ? RC_PERR_TOKEN_EXPIRED : RC_PERR_UNAUTHORIZED, msg,
               (rc_str_t){0}, true);
}

static bool is_anonymous_id(rc_str_t id)
{
    return id.n > 5 && memcmp(id.p, "anon-", 5) == 0;
}

/* Decides who the connection is: the subject of a verified token (from the handshake or
 * hello), or, where the server admits them, an anonymous user. With a verifier configured,
 * anonymous ids are confined to anon-..., so no one can claim a token holder's id without
 * the token. Returns false after refusing the connection. */
static bool resolve_user(rc_conn_t *c, const rc_msg_t *m, rc_str_t *user, char *anon,
                         size_t anon_len)
{
    rc_sessions_t *s = c->reg;
    rc_str_t asked = m->u.hello.user;
    if (m->u.hello.token.n > 0 && s->jwt != NULL) {
        rc_jwt_claims_t claims;
        rc_jwt_reason_t why =
            rc_sessions_verify_token(s, m->u.hello.token.p, m->u.hello.token.n, &claims);
        if (why != RC_JWT_OK) {
            refuse_token(c, why);
            return false;
        }
        if (rc_conn_set_claims(c, &claims) != 0) {
            conn_error(c, RC_PERR_INTERNAL, "out of memory", (rc_str_t){0}, true);
            return false;
        }
    }
    if (c->claims != NULL) {
        if (asked.n > 0 &&
            (asked.n != c->claims->sub_len || memcmp(asked.p, c->claims->sub, asked.n) != 0)) {
            conn_error(c, RC_PERR_UNAUTHORIZED, "hello.user is not the token's subject",
                       (rc_str_t){0}, true);
            return false;
        }
        *user = (rc_str_t){c->claims->sub, c->claims->sub_len};
        c->auth_exp_s = c->claims->exp_s;
        return true;
    }
    if (!s->cfg->anonymous && !s->cfg->demo) {
        conn_error(c, RC_PERR_UNAUTHORIZED,
                   s->jwt != NULL
                       ? "a token is required"
                       : "this server admits no anonymous sessions and verifies no tokens",
                   (rc_str_t){0}, true);
        return false;
    }
    if (s->jwt != NULL && asked.n > 0 && !is_anonymous_id(asked)) {
        conn_error(c, RC_PERR_UNAUTHORIZED, "without a token, a user id must start with anon-",
                   (rc_str_t){0}, true);
        return false;
    }
    *user = asked;
    if (user->n == 0) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
            r = XXH3_64bits_withSeed(&c, sizeof(c), rc_mono_us());
        snprintf(anon, anon_len, "anon-%016llx", (unsigned long long)r);
        *user = (rc_str_t){anon, (uint32_t)strlen(anon)};
    }
    return true;
}

static void handle_hello(rc_conn_t *c, const rc_msg_t *m)
{
    rc_sessions_t *s = c->reg;
    char anon[40];
    rc_str_t user;

    if (c->state != CONN_AWAIT_HELLO) {
        conn_error(c, RC_PERR_HELLO_REPEATED, "hello was already received", (rc_str_t){0}, false);
        return;
    }
    if (!resolve_user(c, m, &user, anon, sizeof(anon)))
        return;
    bool consent = m->u.hello.has_consent ? m->u.hello.consent : s->cfg->consent_default;
    rc_session_t *ses = session_find(s, user.p, user.n);
    if (ses == NULL)
        ses = session_create(s, user, m->u.hello.device, m->u.hello.tz_offset_min, consent);
    if (ses == NULL) {
        conn_error(c, RC_PERR_INTERNAL, "out of memory", (rc_str_t){0}, true);
        return;
    }
    /* The newest connection sets the context (a phone joining a desktop session) and the
     * consent: withdrawn, nothing more is written, and nothing unwritten is kept. */
    if (!consent) {
        ses->consent = false;
        drop_delta(s, ses);
    }
    set_context(ses, m->u.hello.device, m->u.hello.tz_offset_min,
                rc_engine_locale(s->engine, m->u.hello.locale));
    rc_list_unlink(&ses->idle_link);
    rc_list_unlink(&c->hello_link);
    c->session = ses;
    rc_list_push_back(&ses->conns, &c->session_link);
    ses->n_conns++;
    c->state = CONN_READY;

    rc_enc_t e;
    start_encoding(s, &e, c->fmt);
    rc_proto_encode_welcome(&e, ses->id, (rc_str_t){ses->user, ses->user_len}, s->node_id,
                            rc_wall_ms(), &s->limits);
    rc_frame_t *f = finish_frame(s, c->fmt);
    conn_send(c, f);
    rc_frame_unref(f);
    free(c->claims); /* `user` pointed into them; the session holds its own copy */
    c->claims = NULL;
}

/* A free subscription slot, growing the table (and the outbox's list slots with it) when
 * all are taken: most connections hold one or two lists, so none pays for sixteen. */
static int free_sub_slot(rc_conn_t *c)
{
    uint32_t max = (uint32_t)c->reg->cfg->max_subscriptions;
    for (uint32_t i = 0; i < c->n_subs; i++)
        if (c->subs[i].view == NULL)
            return (int)i;
    if (c->n_subs >= max)
        return -1;
    uint32_t n = c->n_subs == 0 ? 2 : c->n_subs * 2;
    n = n > max ? max : n;
    rc_sub_t *subs = realloc(c->subs, n * sizeof(*subs));
    if (subs == NULL)
        return -1;
    memset(subs + c->n_subs, 0, (n - c->n_subs) * sizeof(*subs));
    c->subs = subs;
    if (rc_outbox_grow_slots(&c->outbox, n) != 0)
        return -1;
    int slot = (int)c->n_subs;
    c->n_subs = n;
    return slot;
}

static int find_sub(const rc_conn_t *c, rc_str_t surface)
{
    for (uint32_t i = 0; i < c->n_subs; i++)
        if (c->subs[i].view != NULL && strlen(c->subs[i].surface) == surface.n &&
            memcmp(c->subs[i].surface, surface.p, surface.n) == 0)
            return (int)i;
    return -1;
}

static void handle_subscribe(rc_conn_t *c, const rc_msg_t *m)
{
    rc_sessions_t *s = c->reg;
    rc_session_t *ses = c->session;
    rc_rank_spec_t spec = {
        .k = (uint32_t)m->u.subscribe.k,
        .category = -1,
        .price_min = m->u.subscribe.has_price_min ? m->u.subscribe.price_min : -1,
        .price_max = m->u.subscribe.has_price_max ? m->u.subscribe.price_max : -1,
        .blend = s->engine->experiment ? rc_experiment_blend(s->engine->experiment, ses->variant)
                                       : NULL};
    if (m->u.subscribe.category.n > 0) {
        int32_t cat = rc_catalog_category(&s->engine->catalog, m->u.subscribe.category.p,
                                          m->u.subscribe.category.n);
        /* An unknown category matches nothing (yet): an empty list, not an error, since
         * the catalog may learn it later. */
        spec.category = cat > 0 ? cat : INT32_MAX;
    }
    int slot = find_sub(c, m->u.subscribe.surface);
    if (slot < 0)
        slot = free_sub_slot(c);
    if (slot < 0) {
        conn_error(c, RC_PERR_TOO_MANY_SUBSCRIPTIONS, "too many subscriptions", (rc_str_t){0},
                   false);
        return;
    }
    rc_view_t *v = view_acquire(s, ses, m->u.subscribe.surface, &spec);
    if (v == NULL) {
        conn_error(c, RC_PERR_TOO_MANY_SUBSCRIPTIONS, "too many live lists for this user",
                   (rc_str_t){0}, false);
        return;
    }
    rc_sub_t *sub = &c->subs[slot];
    if (sub->view != NULL)
        view_release(ses, sub->view);
    rc_outbox_clear_slot(&c->outbox, (uint32_t)slot);
    memcpy(sub->surface, m->u.subscribe.surface.p, m->u.subscribe.surface.n);
    sub->surface[m->u.subscribe.surface.n] = '\0';
    sub->view = v;
    rc_frame_t *f = encode_view(s, ses, v, c->fmt, false);
    if (f != NULL) {
        rc_outbox_set_slot(&c->outbox, (uint32_t)slot, f);
        rc_frame_unref(f);
        wake(c);
    }
}

static void handle_unsubscribe(rc_conn_t *c, const rc_msg_t *m)
{
    int slot = find_sub(c, m->u.unsubscribe.surface);
    if (slot < 0) {
        conn_error(c, RC_PERR_UNKNOWN_SURFACE, "no subscription to that surface", (rc_str_t){0},
                   false);
        return;
    }
    view_release(c->session, c->subs[slot].view);
    c->subs[slot].view = NULL;
    rc_outbox_clear_slot(&c->outbox, (uint32_t)slot);
}

static void handle_ping(rc_conn_t *c, const rc_msg_t *m)
{
    rc_enc_t e;
    start_encoding(c->reg, &e, c->fmt);
    rc_proto_encode_pong(&e, m->u.ping.has_t, m->u.ping.t, rc_wall_ms());
    rc_frame_t *f = finish_frame(c->reg, c->fmt);
    conn_send(c, f);
    rc_frame_unref(f);
}

/* A fresh token on a live session: same subject, later expiry. */
static void handle_auth(rc_conn_t *c, const rc_msg_t *m)
{
    rc_sessions_t *s = c->reg;
    rc_jwt_claims_t claims;
    if (s->jwt == NULL) {
        conn_error(c, RC_PERR_UNAUTHORIZED, "this server verifies no tokens", (rc_str_t){0}, true);
        return;
    }
    rc_jwt_reason_t why =
        rc_sessions_verify_token(s, m->u.auth.token.p, m->u.auth.token.n, &claims);
    if (why != RC_JWT_OK) {
        refuse_token(c, why);
        return;
    }
    if (claims.sub_len != c->session->user_len ||
        memcmp(claims.sub, c->session->user, claims.sub_len) != 0) {
        conn_error(c, RC_PERR_UNAUTHORIZED, "the token is for another user", (rc_str_t){0}, true);
        return;
    }
    c->auth_exp_s = claims.exp_s;
    rc_enc_t e;
    start_encoding(s, &e, c->fmt);
    rc_proto_encode_auth_ok(&e, claims.exp_s * 1000);
    rc_frame_t *f = finish_frame(s, c->fmt);
    conn_send(c, f);
    rc_frame_unref(f);
}

static bool token_expired(const rc_conn_t *c, int64_t now_s)
{
    return c->auth_exp_s != 0 && now_s >= c->auth_exp_s + c->reg->cfg->jwt_leeway_s;
}

static void note_input(rc_conn_t *c, uint64_t now_us)
{
    c->last_input_us = now_us;
    c->pinged_us = 0;
    rc_list_unlink(&c->activity_link);
    rc_list_push_back(&c->reg->active, &c->activity_link);
}

void rc_conn_alive(rc_conn_t *c, uint64_t now_us)
{
    if (c->state != CONN_GONE && c->state != CONN_CLOSING)
        note_input(c, now_us);
}

static void handle_events(rc_conn_t *c, const rc_msg_t *m, uint64_t t0_us)
{
    bool changed = false;
    rc_str_t cause = {NULL, 0};
    if (m->type == RC_MSG_EVENT) {
        changed = accept_event(c, &m->u.event, t0_us);
        cause = m->u.event.id;
    } else {
        for (uint32_t i = 0; i < m->u.events.n && c->state == CONN_READY; i++) {
            const rc_proto_batch_item_t *it = &m->u.events.items[i];
            if (it->err != 0) {
                conn_error(c, it->err, it->err_msg, it->ev.id, false);
                continue;
            }
            if (accept_event(c, &it->ev, t0_us)) {
                changed = true;
                cause = it->ev.id; /* a batch re-ranks once, caused by its last event */
            }
        }
    }
    if (changed)
        session_rerank(c->reg, c->session, cause, t0_us);
}

void rc_conn_receive(rc_conn_t *c, const void *data, size_t len, bool binary, uint64_t t0_us)
{
    rc_sessions_t *s = c->reg;
    rc_msg_t m;

    if (c->state == CONN_CLOSING || c->state == CONN_GONE)
        return;
    rc_metrics.messages_received++;
    rc_metrics.bytes_received += len;
    note_input(c, t0_us);
    if (binary != (c->fmt == RC_FMT_MSGPACK)) {
        conn_error(c, RC_PERR_WRONG_FRAME_KIND,
                   binary ? "binary frame on the JSON subprotocol"
                          : "text frame on the MessagePack subprotocol",
                   (rc_str_t){0}, false);
        return;
    }
    int code = rc_proto_decode(&s->decoder, c->fmt, data, len, &m);
    if (code != 0) {
        bool fatal = code == RC_PERR_UNSUPPORTED_VERSION;
        conn_error(c, code, s->decoder.err, s->decoder.err_id, fatal);
        return;
    }
    if (c->state == CONN_AWAIT_HELLO && m.type != RC_MSG_HELLO && m.type != RC_MSG_PING) {
        conn_error(c, RC_PERR_HELLO_REQUIRED, "send hello first", (rc_str_t){0}, false);
        return;
    }
    if (m.type != RC_MSG_EVENT && m.type != RC_MSG_EVENTS && !take_control_token(c, t0_us)) {
        conn_error(c, RC_PERR_RATE_LIMITED, "message rate limit exceeded", (rc_str_t){0}, false);
        return;
    }
    /* An expired token ends the session at its next message, unless that message is the
     * fresh token. */
    if (m.type != RC_MSG_AUTH && token_expired(c, rc_wall_ms() / 1000)) {
        conn_error(c, RC_PERR_TOKEN_EXPIRED, "the token expired; reconnect with a fresh one",
                   (rc_str_t){0}, true);
        return;
    }
    switch (m.type) {
    case RC_MSG_HELLO:
        handle_hello(c, &m);
        break;
    case RC_MSG_EVENT:
    case RC_MSG_EVENTS:
        handle_events(c, &m, t0_us);
        break;
    case RC_MSG_SUBSCRIBE:
        handle_subscribe(c, &m);
        break;
    case RC_MSG_UNSUBSCRIBE:
        handle_unsubscribe(c, &m);
        break;
    case RC_MSG_PING:
        handle_ping(c, &m);
        break;
    case RC_MSG_AUTH:
        handle_auth(c, &m);
        break;
    case RC_MSG_NONE:
        break;
    }
}

void rc_conn_refuse(rc_conn_t *c, int code, const char *message, bool fatal)
{
    conn_error(c, code, message, (rc_str_t){0}, fatal);
}

/* ---- writing ---- */

static rc_frame_t *take_acks(rc_conn_t *c)
{
    rc_sessions_t *s = c->reg;
    rc_str_t ids[256];
    uint32_t n = 0;
    size_t off = 0;
    const char *buf = rc_wbuf_data(&c->acks);
    while (off < c->acks.len && n < 256) {
        uint8_t len = (uint8_t)buf[off];
        ids[n++] = (rc_str_t){buf + off + 1, len};
        off += 1u + len;
    }
    rc_enc_t e;
    start_encoding(s, &e, c->fmt);
    rc_proto_encode_ack(&e, ids, n);
    rc_frame_t *f = finish_frame(s, c->fmt);
    /* Whatever did not fit in this ack goes in the next one. */
    memmove(c->acks.base + c->acks.headroom, buf + off, c->acks.len - off);
    c->acks.len -= off;
    c->n_acks -= n;
    return f;
}

rc_frame_t *rc_conn_next_frame(rc_conn_t *c)
{
    if (c->state == CONN_GONE)
        return NULL;
    rc_frame_t *f = rc_outbox_take(&c->outbox);
    if (f == NULL && c->n_acks > 0)
        f = take_acks(c);
    return f;
}

void rc_conn_frame_written(rc_frame_t *f, uint64_t now_us)
{
    rc_metrics.messages_sent++;
    rc_metrics.bytes_sent += f->len;
    if (f->is_recs) {
        rc_metrics.pushes_sent++;
        if (f->cause_t0_us != 0)
            rc_hist_observe(&rc_metrics.event_to_push, now_us - f->cause_t0_us);
    }
    rc_frame_unref(f);
}

bool rc_conn_has_pending(const rc_conn_t *c)
{
    return !rc_outbox_empty(&c->outbox) || c->n_acks > 0;
}

int rc_conn_close_code(const rc_conn_t *c, const char **reason)
{
    if (c->close_code == 0 || !rc_outbox_empty(&c->outbox) || c->n_acks > 0)
        return 0;
    *reason = c->close_reason ? c->close_reason : "";
    return c->close_code;
}

/* ---- messages from the bus ---- */

static int erase_local(rc_sessions_t *s, const char *user, size_t len);

/* An event another node accepted. If this node holds the user's session (a second device,
 * a second tab on another node), it is applied and pushed here too; either way the global
 * models learn from it. The origin node alone writes it to the profile. */
static void apply_remote_event(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    rc_engine_t *e = s->engine;
    uint64_t t0 = rc_mono_us();
    int64_t item = -1;
    if (m->ev.item.n > 0 &&
        (item = rc_catalog_resolve(&e->catalog, m->ev.item.p, m->ev.item.n)) < 0)
        return; /* a closed catalog that does not know it */
    int64_t now_ms = rc_wall_ms();
    if (m->received_ms > 0 && now_ms >= m->received_ms)
        rc_hist_observe(&rc_metrics.bus_remote_lag, (uint64_t)(now_ms - m->received_ms) * 1000);
    float w = rc_event_weight(m->ev.kind, m->ev.has_value, m->ev.value);
    rc_session_t *ses = session_find_pseudo(s, m->user);
    if (ses != NULL) {
        uint64_t key = event_key(m->ev.id);
        if (seen_event(ses, key))
            return;
        remember_event(ses, key);
        rc_user_state_t *u = state_for_write(ses);
        if (u != NULL && rc_engine_observe(e, u, m->ev.kind, item, w, m->ev.query, now_ms))
            session_rerank(s, ses, m->ev.id, t0);
        if (u != NULL)
            return;
        /* Out of memory for the session: the models still learn, below. */
    }
    /* No session here: learn what the origin's session knew. */
    rc_user_state_t u;
    rc_user_state_init(&u, m->device, m->tz_offset_min);
    u.locale = (int8_t)rc_engine_locale(e, m->locale);
    for (int i = (int)m->n_recent - 1; i >= 0; i--) {
        int64_t r = rc_catalog_resolve(&e->catalog, m->recent[i].p, m->recent[i].n);
        if (r >= 0)
            rc_user_push_recent(&u, (uint32_t)r, m->recent_w[i]);
    }
    rc_engine_observe(e, &u, m->ev.kind, item, w, m->ev.query, now_ms);
}

static bool segment_matches(const rc_session_t *ses, rc_str_t seg)
{
    if (seg.n == 3 && memcmp(seg.p, "all", 3) == 0)
        return true;
    if (seg.n > 7 && memcmp(seg.p, "device:", 7) == 0) {
        const char *dev = rc_device_name(ses->device);
        return strlen(dev) == seg.n - 7 && memcmp(dev, seg.p + 7, seg.n - 7) == 0;
    }
    return false;
}

static void push_to_session(rc_sessions_t *s, rc_session_t *ses, const rc_bus_msg_t *m,
                            rc_frame_t **frames)
{
    for (rc_link_t *l = ses->conns.next; l != &ses->conns; l = l->next) {
        rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, session_link);
        if (c->state != CONN_READY)
            continue;
        if (frames[c->fmt] == NULL) {
            rc_enc_t e;
            start_encoding(s, &e, c->fmt);
            rc_proto_encode_push(&e, m->push_id, m->topic, m->data);
            frames[c->fmt] = finish_frame(s, c->fmt);
            if (frames[c->fmt] == NULL)
                continue;
        }
        /* Pushes queue in the FIFO: past outbox-max-bytes the reader is a slow consumer. */
        conn_send(c, frames[c->fmt]);
        rc_metrics.app_pushes_delivered++;
    }
}

/* An application push: to every connection of one user, or of every user of a segment,
 * on this node. Each format is encoded once per push. */
static void deliver_push(rc_sessions_t *s, const rc_bus_msg_t *m)
{
    rc_frame_t *frames[RC_FMT_COUNT] = {NULL};
    if (m->user.n > 0) {
        rc_session_t *ses = session_find_pseudo(s, m->user);
        if (ses != NULL)
            push_to_session(s, ses, m, frames);
    } else {
        for (rc_link_t *l = s->all_conns.next; l != &s->all_conns; l = l->next) {
            rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, all_link);
            /* Each session once: through its first connection. */
            if (c->session != NULL && c->session->conns.next == &c->session_link &&
                segment_matches(c->session, m->segment))
                push_to_session(s, c->session, m, frames);
        }
    }
    for (int f = 0; f < RC_FMT_COUNT; f++)
        rc_frame_unref(frames[f]);
}

static void on_bus_deliver(void *ctx, const rc_bus_msg_t *m)
{
    rc_sessions_t *s = ctx;
    bool own = m->origin_node.n == strlen(s->node_id) &&
               memcmp(m->origin_node.p, s->node_id, m->origin_node.n) == 0;
    switch (m->kind) {
    case RC_BUS_EVENT:
        if (!own)
            apply_remote_event(s, m);
        break;
    case RC_BUS_ERASE: {
        /* Only a node holding the user's session can tell who the pseudonym is; the
         * shared profile store was erased by the node that took the request. */
        rc_session_t *ses = own ? NULL : session_find_pseudo(s, m->user);
        if (ses != NULL)
            erase_local(s, ses->user, ses->user_len);
        break;
    }
    case RC_BUS_PUSH:
        deliver_push(s, m);
        break;
    case RC_BUS_OPS:     /* the node routes these to the ops feed */
    case RC_BUS_CATALOG: /* and these to the catalog (catalog_api.c) */
    case RC_BUS_SETTING:
        break;
    }
}

/* ---- lifecycle ---- */

rc_conn_t *rc_conn_open(rc_sessions_t *s, rc_format_t fmt, void *transport)
{
    rc_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (rc_outbox_init(&c->outbox, 0) != 0) {
        free(c);
        return NULL;
    }
    c->reg = s;
    c->transport = transport;
    c->fmt = fmt;
    c->refs = 1;
    c->state = CONN_AWAIT_HELLO;
    c->opened_us = c->tokens_at_us = c->window_start_us = rc_mono_us();
    c->tokens = (double)s->cfg->events_burst;
    c->control_tokens = CONTROL_BURST;
    c->control_at_us = c->opened_us;
    c->last_input_us = c->opened_us;
    rc_list_push_back(&s->active, &c->activity_link);
    rc_wbuf_init(&c->acks, 0);
    rc_list_push_back(&s->all_conns, &c->all_link);
    rc_list_push_back(&s->awaiting_hello, &c->hello_link);
    s->n_conns++;
    return c;
}

void rc_conn_closed(rc_conn_t *c)
{
    rc_sessions_t *s = c->reg;
    rc_session_t *ses = c->session;
    rc_list_unlink(&c->all_link);
    rc_list_unlink(&c->activity_link);
    if (ses == NULL) {
        rc_list_unlink(&c->hello_link);
    } else {
        for (uint32_t i = 0; i < c->n_subs; i++)
            if (c->subs[i].view != NULL)
                view_release(ses, c->subs[i].view);
        rc_list_unlink(&c->session_link);
        if (--ses->n_conns == 0) {
            ses->idle_since_us = rc_mono_us();
            rc_list_push_back(&s->idle_sessions, &ses->idle_link);
        }
    }
    if (c->n_subs > 0)
        memset(c->subs, 0, c->n_subs * sizeof(*c->subs));
    c->state = CONN_GONE;
    c->session = NULL;
    c->transport = NULL;
    s->n_conns--;
    conn_unref(c);
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
    /* Without a configured key (one node, in-process bus) a random one does: pseudonyms
     * then only have to agree within this process. */
    s->pseudo_key_len = strlen(cfg->pseudonym_key);
    if (s->pseudo_key_len > sizeof(s->pseudo_key))
        s->pseudo_key_len = sizeof(s->pseudo_key);
    memcpy(s->pseudo_key, cfg->pseudonym_key, s->pseudo_key_len);
    if (s->pseudo_key_len == 0 && getrandom(s->pseudo_key, 32, 0) == 32)
        s->pseudo_key_len = 32;
    rc_list_init(&s->all_conns);
    rc_list_init(&s->awaiting_hello);
    rc_list_init(&s->idle_sessions);
    rc_list_init(&s->dirty_sessions);
    rc_list_init(&s->active);
    rc_list_init(&s->pinged);
    rc_wbuf_init(&s->scratch, 0);
    s->limits =
        (rc_limits_t){cfg->max_message_bytes, cfg->max_batch,   cfg->max_subscriptions, cfg->max_k,
                      cfg->events_per_sec,    cfg->events_burst};
    s->rank_buf = calloc((size_t)cfg->max_k, sizeof(*s->rank_buf));
    s->recs_buf = calloc((size_t)cfg->max_k, sizeof(*s->recs_buf));
    s->why_buf = calloc((size_t)cfg->max_k, WHY_LEN);
    if (s->rank_buf == NULL || s->recs_buf == NULL || s->why_buf == NULL ||
        rc_proto_decoder_init(&s->decoder, (uint32_t)cfg->max_batch, (uint32_t)cfg->max_k) != 0) {
        free(s->rank_buf);
        free(s->recs_buf);
        free(s->why_buf);
        free(s);
        return NULL;
    }
    profiles->on_loaded = on_profile_loaded;
    profiles->ctx = s;
    bus->deliver = on_bus_deliver;
    bus->ctx = s;
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
        session_free(s, RC_CONTAINER_OF(s->idle_sessions.next, rc_session_t, idle_link));
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
    /* A store or bus answering late must find no one rather than freed memory. */
    s->profiles->on_loaded = NULL;
    s->bus->deliver = NULL;
    rc_strmap_free(&s->by_user);
    rc_strmap_free(&s->by_pseudo);
    rc_proto_decoder_free(&s->decoder);
    rc_wbuf_free(&s->scratch);
    free(s->rank_buf);
    free(s->recs_buf);
    free(s->why_buf);
    free(s);
}

void rc_sessions_flush_profiles(rc_sessions_t *s)
{
    while (!rc_list_empty(&s->dirty_sessions))
        save_profile(s, RC_CONTAINER_OF(s->dirty_sessions.next, rc_session_t, dirty_link));
}

/* Silent connections get a ping; those still silent pong_timeout_s later are closed (a
 * peer gone without a FIN would otherwise hold its memory forever). Tokens that expired
 * on connections that send nothing are caught here too, within ping_interval_s. */
static void check_silent_conns(rc_sessions_t *s, uint64_t now_us)
{
    if (s->cfg->ping_interval_s == 0)
        return;
    uint64_t ping_us = (uint64_t)s->cfg->ping_interval_s * 1000000;
    uint64_t pong_us = (uint64_t)s->cfg->pong_timeout_s * 1000000;
    int64_t now_s = rc_wall_ms() / 1000;
    while (!rc_list_empty(&s->active)) {
        rc_conn_t *c = RC_CONTAINER_OF(s->active.next, rc_conn_t, activity_link);
        if (now_us - c->last_input_us < ping_us)
            break;
        rc_list_unlink(&c->activity_link);
        if (token_expired(c, now_s)) {
            conn_error(c, RC_PERR_TOKEN_EXPIRED, "the token expired; reconnect with a fresh one",
                       (rc_str_t){0}, true);
            continue;
        }
        c->pinged_us = now_us;
        rc_list_push_back(&s->pinged, &c->activity_link);
        s->tops->ping(c->transport);
    }
    while (!rc_list_empty(&s->pinged)) {
        rc_conn_t *c = RC_CONTAINER_OF(s->pinged.next, rc_conn_t, activity_link);
        if (now_us - c->pinged_us < pong_us)
            break;
        rc_list_unlink(&c->activity_link);
        conn_error(c, RC_PERR_IDLE_TIMEOUT, "no answer to ping", (rc_str_t){0}, true);
    }
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

int rc_conn_set_claims(rc_conn_t *c, const rc_jwt_claims_t *claims)
{
    if (c->claims == NULL && (c->claims = malloc(sizeof(*c->claims))) == NULL)
        return RC_ENOMEM;
    *c->claims = *claims;
    return 0;
}

void rc_sessions_settle(rc_sessions_t *s)
{
    rc_bus_settle(s->bus);
}

void rc_sessions_tick(rc_sessions_t *s, uint64_t now_us)
{
    check_silent_conns(s, now_us);
    uint64_t hello_us = (uint64_t)s->cfg->hello_timeout_ms * 1000;
    while (!rc_list_empty(&s->awaiting_hello)) {
        rc_conn_t *c = RC_CONTAINER_OF(s->awaiting_hello.next, rc_conn_t, hello_link);
        if (now_us - c->opened_us < hello_us)
            break;
        rc_list_unlink(&c->hello_link);
        conn_close_after_flush(c, RC_PERR_HELLO_REQUIRED, "no hello in time");
    }
    uint64_t idle_us = (uint64_t)s->cfg->session_idle_s * 1000000;
    while (!rc_list_empty(&s->idle_sessions)) {
        rc_session_t *ses = RC_CONTAINER_OF(s->idle_sessions.next, rc_session_t, idle_link);
        if (now_us - ses->idle_since_us < idle_us)
            break;
        session_free(s, ses);
    }
    rc_sessions_flush_due(s, now_us, RC_FLUSH_BUDGET_US);
}

/* Write-behind without bursts: sessions are written once they have been dirty for
 * profile_flush_ms, oldest first, within a time budget per call; the node calls this often
 * (every few ms), so thousands of sessions made dirty in one tick no longer stall the loop
 * for milliseconds at once. A backlog past the budget is written on the next calls. */
void rc_sessions_flush_due(rc_sessions_t *s, uint64_t now_us, uint64_t budget_us)
{
    if (!s->profiles->ops->shared)
        return; /* written when sessions end (note_profile_change, session_free) */
    uint64_t due_us = (uint64_t)s->cfg->profile_flush_ms * 1000;
    uint64_t start = rc_mono_us();
    for (int n = 1; !rc_list_empty(&s->dirty_sessions); n++) {
        rc_session_t *ses = RC_CONTAINER_OF(s->dirty_sessions.next, rc_session_t, dirty_link);
        if (now_us - ses->dirty_since_us < due_us)
            break;
        save_profile(s, ses);
        if (n % 8 == 0 && rc_mono_us() - start >= budget_us)
            break;
    }
}

void rc_sessions_drain(rc_sessions_t *s, int64_t reconnect_after_ms)
{
    for (rc_link_t *l = s->all_conns.next; l != &s->all_conns; l = l->next) {
        rc_conn_t *c = RC_CONTAINER_OF(l, rc_conn_t, all_link);
        if (c->state == CONN_GONE || c->state == CONN_CLOSING)
            continue;
        rc_enc_t e;
        start_encoding(s, &e, c->fmt);
        rc_proto_encode_drain(&e, "shutdown", reconnect_after_ms);
        rc_frame_t *f = finish_frame(s, c->fmt);
        conn_send(c, f);
        rc_frame_unref(f);
        conn_close_after_flush(c, 1001, "server going away");
    }
}

/* Forgets a user on this node: session state, unwritten profile changes, and the stored
 * profile (the store erases after any update of this node queued before). */
static int erase_local(rc_sessions_t *s, const char *user, size_t len)
{
    rc_session_t *ses = session_find(s, user, len);
    if (ses != NULL) {
        /* Live connections keep their subscriptions and get lists computed from nothing. */
        free(ses->state);
        ses->state = NULL;
        drop_delta(s, ses);
        rc_list_unlink(&ses->dirty_link);
        ses->n_seen = ses->seen_head = 0;
        session_rerank(s, ses, (rc_str_t){NULL, 0}, 0);
    }
    return rc_profile_erase(s->profiles, user, len);
}

int rc_sessions_erase_user(rc_sessions_t *s, const char *user, size_t len)
{
    char pseudo[PSEUDO_LEN + 1];
    int rc = erase_local(s, user, len);
    pseudonym(s, user, len, pseudo);
    rc_bus_msg_t m = {
        .kind = RC_BUS_ERASE,
        .origin_node = {s->node_id, (uint32_t)strlen(s->node_id)},
        .user = {pseudo, PSEUDO_LEN},
    };
    int brc = rc_bus_publish(s->bus, &m, NULL, NULL);
    return rc != 0 ? rc : brc;
}

int rc_sessions_push(rc_sessions_t *s, rc_str_t user, rc_str_t segment, rc_str_t topic,
                     const msgpack_object *data, char *id_out, size_t id_len)
{
    uint64_t r = 0;
    char pseudo[PSEUDO_LEN + 1] = "";
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = rc_mono_us();
    snprintf(id_out, id_len, "p-%016llx", (unsigned long long)r);
    if (user.n > 0)
        pseudonym(s, user.p, user.n, pseudo);
    rc_bus_msg_t m = {
        .kind = RC_BUS_PUSH,
        .origin_node = {s->node_id, (uint32_t)strlen(s->node_id)},
        .user = {pseudo, user.n > 0 ? PSEUDO_LEN : 0},
        .segment = segment,
        .push_id = {id_out, (uint32_t)strlen(id_out)},
        .topic = topic,
        .data = data,
    };
    return rc_bus_publish(s->bus, &m, NULL, NULL);
}

uint32_t rc_sessions_conn_count(const rc_sessions_t *s)
{
    return s->n_conns;
}

uint32_t rc_sessions_count(const rc_sessions_t *s)
{
    return s->n_sessions;
}

/* Only lists that show an item the catalog no longer recommends are ranked again: the others
 * follow the user's own events, and re-ranking every list of every user at once would stall
 * the loop on a large node. */
uint32_t rc_sessions_settings_changed(rc_sessions_t *s)
{
    const rc_experiment_t *x = s->engine->experiment;
    uint32_t pushed = 0;
    for (size_t i = 0; i < s->by_user.cap; i++) {
        if (s->by_user.slots[i].hash == 0)
            continue;
        rc_session_t *ses = (rc_session_t *)(uintptr_t)s->by_user.slots[i].value;
        ses->variant = x ? rc_experiment_assign(x, ses->user, ses->user_len) : 0;
        for (uint32_t j = 0; j < ses->n_views; j++) {
            rc_view_t *v = ses->views[j];
            v->spec.blend = x ? rc_experiment_blend(x, ses->variant) : NULL;
            if (view_rerank(s, ses, v, (rc_str_t){NULL, 0}, 0)) {
                view_publish(s, ses, v);
                pushed++;
            }
        }
    }
    return pushed;
}

uint32_t rc_sessions_catalog_changed(rc_sessions_t *s)
{
    const rc_catalog_t *cat = &s->engine->catalog;
    uint32_t pushed = 0;
    for (size_t i = 0; i < s->by_user.cap; i++) {
        if (s->by_user.slots[i].hash == 0)
            continue;
        rc_session_t *ses = (rc_session_t *)(uintptr_t)s->by_user.slots[i].value;
        for (uint32_t j = 0; j < ses->n_views; j++) {
            rc_view_t *v = ses->views[j];
            bool stale = false;
            for (uint32_t k = 0; k < v->n && !stale; k++)
                stale = !rc_item_recommendable(&cat->items[v->ranked[k].item]);
            if (stale && view_rerank(s, ses, v, (rc_str_t){NULL, 0}, 0)) {
                view_publish(s, ses, v);
                pushed++;
            }
        }
    }
    return pushed;
}
