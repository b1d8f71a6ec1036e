/* SPDX-License-Identifier: Apache-2.0 */
/* What the session module's files share: the registry, sessions, views and connections, and
 * the functions one file calls in another. Not for use outside src/session/: the public
 * contract is session.h.
 *
 * Ownership: the registry owns sessions; a session owns its views; a connection points at
 * its session and at one view per subscription (a view counts those references). A
 * connection is reference-counted: the transport holds one reference until
 * rc_conn_closed(), and every event still being published holds one, so a bus
 * completion never touches freed memory when the client has gone.
 *
 * The files, one job each: conn.c (a connection's side of the protocol: hello, auth,
 * subscriptions, rate limits, the error budget, liveness, what to write next), registry.c
 * (users to sessions, pseudonyms, the registry's lifecycle and tick), views.c (live lists:
 * ranking, encoding, publishing to subscribers), events.c (an event accepted from a client:
 * de-duplication, publishing on the bus, learning), writeback.c (profile changes written
 * behind, and profiles loaded), remote.c (what the bus brings from other nodes: events,
 * erasures, application pushes), records.c (what the loop changes in the engine, as records).
 */
#ifndef RC_SESSION_INT_H
#define RC_SESSION_INT_H

#include "auth/anonid.h"
#include "engine/engine_op.h"
#include "engine/experiments.h"
#include "engine/ranker.h"
#include "engine/reasons.h"
#include "engine/shared.h"
#include "session/directory.h"
#include "session/session.h"
#include "util/list.h"
#include "util/strmap.h"

#define MAX_VIEWS         64 /* live lists per user session */
#define DEDUPE_MAX        RC_DEDUPE_MAX
#define ERROR_WINDOW_US   10000000
#define ERRORS_PER_WINDOW 20
/* Messages other than events (ping, subscribe, auth...): a flood of them costs the loop as
 * much as events do, so they have a bucket of their own (PROTOCOL.md section 6). */
#define CONTROL_PER_SEC 50.0
#define CONTROL_BURST   100.0
#define WHY_LEN         96
#define PSEUDO_LEN      RC_PSEUDO_LEN

/* The ids (hashed) of a user's latest events, for de-duplication: a ring grown on demand up
 * to DEDUPE_MAX. */
typedef struct rc_seen {
    uint64_t *ids;
    uint32_t n, cap, head;
} rc_seen_t;

typedef struct rc_view {
    char surface[RC_SURFACE_MAX + 1];
    rc_text_t surface_text; /* surface, measured when the view is made */
    rc_rank_spec_t spec;
    uint32_t refs;
    int64_t version;
    uint64_t list_hash;
    uint32_t n;
    rc_ranked_t *ranked; /* spec.k entries */
    char cause[RC_ID_MAX + 1];
    uint32_t cause_len;
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
    int16_t locale; /* a reference to the user's locale (rc_engine_locale), or -1 */
    int16_t tz_offset_min;
    /* With shared models: the hello's locale tag while no copy the loop read knew it (the
     * writer tracks it from its next batch), asked again at the next ranks. "": none. */
    char locale_pending[RC_LOCALE_MAX + 1];
    uint8_t locale_tries;
    /* Started beside a session of the user on another loop: its state is on the way
     * (rc_sessions_peer_answer), and its connections' messages wait for it (rc_conn_t.held),
     * in the registry's `awaiting_peers` list, oldest first. */
    bool awaiting_peer;
    uint64_t awaiting_since_us;
    rc_link_t awaiting_link;
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
    rc_seen_t seen;
    bool consent;               /* false: session-only personalization, nothing stored */
    uint32_t variant;           /* experiment variant (engine/experiments.h) */
    rc_profile_delta_t *delta;  /* what changed since the last profile write; NULL: nothing */
    rc_profile_seq_t delta_seq; /* the sequence numbers of the oldest and newest event in it */
} rc_session_t;

typedef enum { CONN_AWAIT_HELLO, CONN_READY, CONN_CLOSING, CONN_GONE } conn_state_t;

typedef struct rc_sub {
    char surface[RC_SURFACE_MAX + 1];
    rc_view_t *view; /* NULL: free slot */
    /* Compact lists (PROTOCOL.md, `recs_delta`): the list the client holds, as last written
     * to it (catalog indexes, room for view->spec.k), which the next one is diffed against;
     * version 0 when it holds none. Written at the moment a list leaves, so a list replaced
     * unsent in the outbox never becomes a base. */
    bool compact;
    uint32_t held_n;
    int64_t held_version;
    uint32_t *held;
} rc_sub_t;

/* What a connection with compact lists has been sent of each item: its details (name,
 * category, price) and a hash of its last reason (compact.c). */
typedef struct rc_known rc_known_t;

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
    rc_known_t *known;  /* compact lists only: what the client keeps of each item */
    rc_outbox_t outbox; /* frames and acks to write */
    /* The 4-byte fields together: no padding between them (an idle connection is mostly
     * this struct and libwebsockets'). */
    rc_format_t fmt;
    conn_state_t state;
    uint32_t refs;
    uint32_t n_subs;
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
    /* Messages received while the session awaited a peer's state, handled once it came:
     * each a 4-byte length, a byte for the frame kind, the message. NULL: none. */
    rc_wbuf_t *held;
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
    /* The engine: with one loop the registry's own, always set; with several (shared) the
     * copy of the read section in progress, NULL between sections (rc_sessions_engine()
     * begins one, rc_sessions_read_end() ends it before the loop waits for I/O). */
    rc_engine_t *engine;
    rc_shared_t *shared;
    rc_shared_reader_t *reader;
    rc_directory_t *directory; /* which loops hold a user's sessions (with several loops) */
    uint32_t loop_index;
    rc_sessions_ask_peer_fn ask_peer; /* NULL: one loop */
    void *peer_ctx;
    rc_profile_store_t *profiles;
    rc_bus_t *bus;
    const rc_transport_ops_t *tops;
    rc_strmap_t by_user;
    rc_strmap_t by_pseudo;
    unsigned char pseudo_key[64];
    size_t pseudo_key_len;
    /* The client message being handled, and its connection: errors raised meanwhile on that
     * connection say what they refuse (rc_conn_error). Kept here, not per connection: one
     * message is handled at a time. */
    const rc_msg_t *handling;
    const rc_conn_t *handling_conn;
    rc_anonid_keys_t anon_keys; /* issued anonymous ids (auth/anonid.h) */
    bool anon_ids_chosen;       /* --demo or --anonymous-ids chosen: any hello.user is taken */
    uint32_t n_sessions, n_conns;
    uint64_t next_session_id;
    rc_link_t all_conns, awaiting_hello, idle_sessions, dirty_sessions, awaiting_peers;
    rc_link_t active, pinged; /* rc_conn_t.activity_link */
    const rc_jwt_verifier_t *jwt;
    rc_proto_decoder_t decoder;
    rc_wbuf_t scratch;   /* encoding scratch, reused */
    rc_enc_t enc;        /* the encoder writing into it (rc_sessions_enc_begin) */
    rc_ranker_t *ranker; /* this loop's rank scratch: the engine holds none (engine.h) */
    /* This loop's impressions and clicks of the running experiment: the experiment itself
     * is immutable, and readers add every loop's counts up (experiments.h). */
    rc_experiment_counts_t xcounts;
    rc_ranked_t *rank_buf;
    rc_frame_t *compact_marker; /* stands in an outbox slot for a compact list (compact.c) */
    rc_recs_item_t *recs_buf;
    rc_recs_reason_t *reason_buf; /* recs_buf[i].reason points at reason_buf[i] */
    char (*why_buf)[WHY_LEN];
    /* The names lists carry, measured once (rc_view_measure_names): src, reason code, kind. */
    rc_text_t src_texts[RC_SRC_REPEAT + 1];
    rc_text_t code_texts[RC_REASON_COUNT];
    rc_text_t kind_texts[RC_EVENT_KIND_COUNT];
    ticket_t *free_tickets;
    spare_delta_t *free_deltas;
    uint32_t n_free_deltas;
    rc_limits_t limits;
    /* Event ids of users without a session here, read back from the event log at start
     * (rc_seen_t* by pseudonym): a session created for one of them takes its ring. */
    rc_strmap_t restored;
    rc_link_t restored_order; /* restored_t, oldest first (events.c) */
    /* The newest sequence number given to a change of a profile (rc_profile_seq_t); 0 with
     * a shared bus, where the store numbers changes itself. */
    uint64_t last_seq;
};

/* ---- compact.c ---- */

/** Makes `sub` of `c` compact (or not) for lists of up to `k` items: the client holds no list,
 * so the next one goes whole; the connection's record of what it was sent is created on
 * first need. Returns 0 or RC_ENOMEM. */
int rc_compact_subscribe(rc_conn_t *c, rc_sub_t *sub, bool compact, uint32_t k);
/** Forgets `sub`'s held list (unsubscribe, close). */
void rc_compact_sub_free(rc_sub_t *sub);
/** Frees the connection's record. NULL is a no-op. */
void rc_known_free(rc_known_t *k);
/** The frame of `sub`'s list for `c` as it leaves: changes to the list the client holds,
 * which then becomes this one. NULL when out of memory. Caller owns the reference. */
rc_frame_t *rc_compact_frame(rc_conn_t *c, rc_sub_t *sub);

/* ---- views.c (what compact.c shares) ---- */

/** Measures the names of sources, reason codes and event kinds into `s`'s tables, once. */
void rc_view_measure_names(rc_sessions_t *s);

/** Fills s->recs_buf[0..v->n) (and the reasons and words they point at) with `v`'s list. */
void rc_view_fill_items(rc_sessions_t *s, const rc_session_t *ses, const rc_view_t *v);
/** The experiment variant name of `ses`'s lists. */
rc_text_t rc_view_variant(const rc_sessions_t *s, const rc_session_t *ses);

/* ---- conn.c ---- */

/** Drops a reference; frees the connection at zero. */
void rc_conn_unref(rc_conn_t *c);
/** Asks the transport for a writable turn (not once the connection is gone). */
void rc_conn_wake(rc_conn_t *c);
/** Closes with `ws_code` once everything queued is written. */
void rc_conn_close_after_flush(rc_conn_t *c, int ws_code, const char *reason);
/** Queues a frame that must arrive (takes a reference of its own; NULL is a no-op). */
void rc_conn_send(rc_conn_t *c, rc_frame_t *f);
/** Starts encoding a message for `c` (in its format) into the registry's scratch buffer;
 * rc_conn_send_encoded() then queues it. Nothing else may encode in between. */
rc_enc_t *rc_conn_enc_begin(rc_conn_t *c);
void rc_conn_send_encoded(rc_conn_t *c);
/** Sends an error; `fatal` closes the connection after it. Counts against the error budget. */
void rc_conn_error(rc_conn_t *c, int code, const char *message, rc_str_t id, bool fatal);
/** Queues an ack of event `id`. */
void rc_conn_add_ack(rc_conn_t *c, const char *id, size_t len);
/** Hello timeouts, pings to silent connections, closing those that stay silent, expired
 * tokens of connections that send nothing. */
void rc_sessions_check_conns(rc_sessions_t *s, uint64_t now_us);

/* ---- registry.c ---- */

/** Starts encoding a message in `fmt` into the registry's scratch buffer. */
rc_enc_t *rc_sessions_enc_begin(rc_sessions_t *s, rc_format_t fmt);
/** The message encoded since rc_sessions_enc_begin() as a new frame (caller unrefs), or NULL
 * when out of memory. */
rc_frame_t *rc_sessions_enc_frame(rc_sessions_t *s, rc_format_t fmt);
/** The user's state for ranking: the session's own, or, while it has none, `empty` made
 * from the context alone. */
const rc_user_state_t *rc_session_state_read(const rc_session_t *ses, rc_user_state_t *empty);
/** The user's state for learning, made on first need. NULL when out of memory. */
rc_user_state_t *rc_session_state_write(rc_session_t *ses);
void rc_session_set_context(rc_session_t *ses, int device, int tz_offset_min, int locale);
rc_session_t *rc_session_find(rc_sessions_t *s, const char *user, size_t len);
rc_session_t *rc_session_find_pseudo(rc_sessions_t *s, rc_str_t pseudo);
/** A new session (its profile is asked for when `consent`). NULL when out of memory. */
rc_session_t *rc_session_create(rc_sessions_t *s, rc_str_t user, int device, int tz, bool consent);
/** The next session of the registry from `*cursor` on (start at 0), or NULL after the last.
 * Sessions must not be created or freed during the walk. */
rc_session_t *rc_sessions_next(rc_sessions_t *s, size_t *cursor);
/** Writes what is dirty, then frees the session and its views. */
void rc_session_free(rc_sessions_t *s, rc_session_t *ses);
/** The user's id between nodes (see registry.c). */
void rc_sessions_pseudonym(const rc_sessions_t *s, const char *user, size_t len,
                           char out[PSEUDO_LEN + 1]);

/* ---- views.c ---- */

/** A view of `surface` ranked by `spec`, shared with the session's other subscriptions to
 * the same; NULL at MAX_VIEWS or out of memory. Release with rc_view_release(). */
rc_view_t *rc_view_acquire(rc_sessions_t *s, rc_session_t *ses, rc_str_t surface,
                           const rc_rank_spec_t *spec);
void rc_view_release(rc_session_t *ses, rc_view_t *v);
void rc_view_free(rc_view_t *v);
/** Encodes a view's list (a new frame, caller unrefs). `with_cause` is false for the answer
 * to subscribe. */
rc_frame_t *rc_view_encode(rc_sessions_t *s, const rc_session_t *ses, const rc_view_t *v,
                           rc_format_t fmt, bool with_cause);
/** Ranks a view again. Returns true when its list changed (and the version moved). */
bool rc_view_rerank(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v, rc_str_t cause,
                    uint64_t t0_us);
/** Hands a view's new list to every connection of the session subscribed to it. */
void rc_view_publish(rc_sessions_t *s, rc_session_t *ses, rc_view_t *v);
/** Ranks every view of the session again and publishes those that changed. */
void rc_session_rerank(rc_sessions_t *s, rc_session_t *ses, rc_str_t cause, uint64_t t0_us);

/* ---- events.c ---- */

/** Accepts one valid event from a client: de-duplicates, publishes, applies. Returns true
 * when it changed the user's state (the caller re-ranks once per message). */
bool rc_conn_accept_event(rc_conn_t *c, const rc_proto_event_t *ev, uint64_t t0_us);
/** How many events a connection's bucket holds (a new connection starts full). */
double rc_event_bucket_depth(const rc_config_t *cfg);
/** De-duplication by event id: a 64-bit hash of the id, never 0. */
uint64_t rc_event_key(rc_str_t id);
bool rc_session_seen_event(const rc_session_t *ses, uint64_t key);
int rc_session_remember_event(rc_session_t *ses, uint64_t key);
void rc_session_forget_event(rc_session_t *ses, uint64_t key);
/** Gives a new session the event ids the log remembered for its user, if any. */
void rc_session_adopt_restored(rc_sessions_t *s, rc_session_t *ses);
/** Remembers the event `key` of a user without a session here (another node took it): a
 * retry that reaches this node after a failover is recognised. */
void rc_sessions_remember_remote(rc_sessions_t *s, rc_str_t pseudo, uint64_t key);
/** Frees the remembered ids of users who never came back. */
void rc_sessions_restored_free(rc_sessions_t *s);

/* ---- writeback.c ---- */

/** Adds an event (numbered `seq`, or 0) to the session's unwritten profile changes. */
void rc_session_note_profile_change(rc_sessions_t *s, rc_session_t *ses, rc_event_kind_t kind,
                                    int64_t item, float w, uint64_t seq);
/** Writes the session's unwritten profile changes now. */
void rc_session_save_profile(rc_sessions_t *s, rc_session_t *ses);
/** Forgets the session's unwritten profile changes. */
void rc_session_drop_delta(rc_sessions_t *s, rc_session_t *ses);

/* ---- remote.c ---- */

/** Forgets a user on this node: session state, unwritten changes, the stored profile (the
 * erasure numbered `seq`, or 0). */
int rc_sessions_erase_local(rc_sessions_t *s, const char *user, size_t len, uint64_t seq);
/** The next sequence number of a profile change on the in-process bus (the microsecond
 * clock, strictly increasing, never below what the event log held); 0 on a shared bus. */
uint64_t rc_sessions_next_seq(rc_sessions_t *s);

/* ---- records.c ---- */

/** The catalog index of item `id` (borrowed) named by an event of user `user_key`: found on
 * the loop's copy, else the id is submitted (RC_OP_ITEM_SEEN) for an open catalog to learn
 * once trusted. Returns the index, RC_CATALOG_UNTRUSTED (the copy does not know it: the
 * event goes without it, by id, rc_sessions_observe), or -1 when it can never be an item
 * (a closed catalog, an id too long): rc_catalog_learn_from()'s answers. */
/** Stops `ses` waiting for a peer's state (too long, or too much held): it loads its profile
 * from the store, as a session without a peer, and handles what its connections held. */
void rc_sessions_stop_awaiting(rc_sessions_t *s, rc_session_t *ses);

/** Handles, in order, the messages `c` received while its session awaited a peer's state. */
void rc_conn_handle_held(rc_conn_t *c);

/** The hello's locale tag `tag` for `ses`, whose locale is set already (rc_sessions_locale):
 * with shared models, a tag the loop's copy did not know yet is kept to be asked again. */
void rc_session_await_locale(rc_sessions_t *s, rc_session_t *ses, rc_str_t tag);

/** Before a rank of `ses`: its locale, if the tag kept by rc_session_await_locale() is
 * known now (asked at most a few times). */
void rc_session_resolve_locale(rc_sessions_t *s, rc_session_t *ses);

int64_t rc_sessions_event_item(rc_sessions_t *s, rc_str_t id, uint32_t user_key);
/** Learns one event of user `u` (borrowed; NULL for a user held nowhere): its model half as
 * a record (rc_engine_op_event; by `item_id`, borrowed, when `item` is -1 and it is not
 * empty: resolved where the record is applied), submitted, then the user's half
 * (rc_user_observe). Returns true when the user's lists may have changed. */
bool rc_sessions_observe(rc_sessions_t *s, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                         rc_str_t item_id, float weight, rc_str_t query, int64_t wall_ms);
/** Submits locale tag `tag` (borrowed; RC_OP_LOCALE) met at `wall_ms`, and returns its
 * reference on the loop's copy (rc_engine_locale_find), or -1 (empty, malformed, or not
 * tracked yet on this copy). */
int rc_sessions_locale(rc_sessions_t *s, rc_str_t tag, int64_t wall_ms);

#endif
