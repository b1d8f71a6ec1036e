/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: one per user on this node, shared by all that user's connections; the live
 * lists (views) each subscription asks for; and each connection's side of the protocol
 * (decode, validate, apply, answer). Independent of the transport: the gateway feeds
 * messages in, takes frames out when the socket is writable, and is asked through
 * rc_transport_ops_t to wake or kill a connection. The module calls the engine, the profile
 * store and the bus through their headers and is called back by none of them: the node
 * routes the store's answers (rc_sessions_profile_loaded) and the bus's messages
 * (rc_sessions_remote_event, _remote_erase, _deliver_push) here. Its files and what each
 * does: session_int.h. */
#ifndef RC_SESSION_H
#define RC_SESSION_H

#include "auth/jwt.h"
#include "bus/bus.h"
#include "engine/engine.h"
#include "engine/engine_op.h"
#include "engine/shared.h"
#include "proto/proto.h"
#include "session/outbox.h"
#include "store/profile.h"
#include "util/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rc_sessions rc_sessions_t;
typedef struct rc_conn rc_conn_t;

typedef struct rc_transport_ops {
    /* Ask for a writable callback soon (the gateway then calls rc_conn_next_frame()). */
    void (*want_write)(void *transport);
    /* Close at once without flushing: for a connection that does not read. */
    void (*kill)(void *transport);
    /* Send a WebSocket ping soon (the connection has been silent; its pong, or anything
     * else it sends, is reported with rc_conn_alive()). */
    void (*ping)(void *transport);
} rc_transport_ops_t;

/** Creates the registry. Everything passed is borrowed and must outlive it. Returns NULL
 * when out of memory. Caller frees with rc_sessions_free(). The caller routes the profile
 * store's answers and the bus's messages to the functions below. */
rc_sessions_t *rc_sessions_new(const rc_config_t *cfg, const char *node_id, rc_engine_t *engine,
                               rc_profile_store_t *profiles, rc_bus_t *bus,
                               const rc_transport_ops_t *transport_ops);

/** Shares the models with other loops (before any client; on the loop's own thread): the
 * registry reads copies of `shared` through a reader of its own (read sections: see
 * rc_sessions_engine()), submits every change to its writer, and is loop `loop`
 * (< RC_DIRECTORY_LOOPS_MAX) of `directory`, where its sessions' users are listed. All
 * borrowed. Returns 0, or RC_EFULL when `shared` has no reader left. */
struct rc_directory;
int rc_sessions_share_engine(rc_sessions_t *s, rc_shared_t *shared, struct rc_directory *directory,
                             uint32_t loop);

/* Asks loop `peers`' (a mask of the directory's) for the state of the user `pseudo` whose
 * session starts on this loop; the answer comes through rc_sessions_peer_answer(). */
typedef void (*rc_sessions_ask_peer_fn)(void *ctx, const char *pseudo, uint64_t peers);

/** With several loops: a session that starts while the user has one on another loop asks
 * that loop for its state (`ask`) instead of loading the profile, whose changes the other
 * session writes behind. Its connections' messages wait for the answer (at most a second,
 * or 256 KB each: then it loads the profile), so that they are handled as the session
 * holding the user's history would. */
void rc_sessions_set_peer_hook(rc_sessions_t *s, rc_sessions_ask_peer_fn ask, void *ctx);

#define RC_DEDUPE_MAX 1024 /* event ids remembered per user (PROTOCOL.md section 5) */
#define RC_PSEUDO_LEN 32   /* hex characters of a pseudonym: 128 bits of HMAC-SHA256 */

/** The state of the user `pseudo`'s session here into `out`, and the ids of the events it
 * remembers into `ids` (room for RC_DEDUPE_MAX; their count in `n_ids`), for a session
 * starting on another loop. False when there is none. */
bool rc_sessions_peer_state(rc_sessions_t *s, rc_str_t pseudo, rc_user_state_t *out, uint64_t *ids,
                            uint32_t *n_ids);

/** The answer to the ask: the user's state on the other loop (copied: the history; the
 * context stays this session's) and the lists ranked again, its events remembered (a
 * retry on this loop is acknowledged, not applied again); or `u` NULL when that session
 * ended (then the profile is loaded from the store, as without a peer). */
void rc_sessions_peer_answer(rc_sessions_t *s, rc_str_t pseudo, const rc_user_state_t *u,
                             const uint64_t *ids, uint32_t n_ids);

/** The engine to read. With one loop, the registry's. With shared models, the copy of a
 * read section that this call begins if none is open: pointers into it are valid until
 * rc_sessions_read_end(), which the loop calls before it waits for I/O. */
rc_engine_t *rc_sessions_engine(const rc_sessions_t *s);

/** Ends the read section, if one is open (shared models; a no-op with one loop). */
void rc_sessions_read_end(rc_sessions_t *s);

/** Hands `op` (its content moved in: it is left RC_OP_NONE) to the engine. With one loop it
 * is applied at once: rc_engine_apply()'s code. With shared models it is queued for their
 * writer (shared.h), seen by the sections begun after the writer publishes it: 0, or
 * RC_ENOMEM (logged; the change is dropped). The loop writes the engine through this
 * function alone (engine_op.h): its sessions, the node's tick, the settings and the catalog
 * API. */
int rc_sessions_submit(rc_sessions_t *s, rc_engine_op_t *op);

/** Waits until every change submitted so far is applied to the shared models and published
 * (ending the read section first): what the loop reads next sees it. A no-op with one loop.
 * It blocks the loop for the writer's batch: for rare changes (the admin API), never events.
 * Returns 0 or RC_ENOMEM. */
int rc_sessions_sync(rc_sessions_t *s);

/** Saves every dirty profile, then frees all sessions and connections' state. The
 * transports must already be closed. NULL is a no-op. */
void rc_sessions_free(rc_sessions_t *s);

/** Sets the key of pseudonyms (rc_sessions_new() takes --pseudonym-key, or a random one):
 * the node's own, kept in its data directory, so that the event log's pseudonyms name the
 * same users after a restart, and (without --anon-id-key) the anonymous ids it issued are
 * still its own. Before any session exists. */
void rc_sessions_set_pseudonym_key(rc_sessions_t *s, const void *key, size_t len);

/** Sets the verifier of client tokens (borrowed; NULL: tokens are not verified and only
 * anonymous sessions can be admitted). Connections already open keep their users. */
void rc_sessions_set_verifier(rc_sessions_t *s, const rc_jwt_verifier_t *jwt);

/** Verifies a client token with the current verifier, counting failures by reason on
 * /metrics. RC_JWT_BAD_ALG when no verifier is set. */
rc_jwt_reason_t rc_sessions_verify_token(rc_sessions_t *s, const char *token, size_t len,
                                         rc_jwt_claims_t *out);

/** A new connection speaking `fmt`, awaiting hello. `transport` is an opaque handle passed
 * back to the transport ops. Returns NULL when out of memory. The connection lives until
 * rc_conn_closed(). */
rc_conn_t *rc_conn_open(rc_sessions_t *s, rc_format_t fmt, void *transport);

/** The transport verified a token before the handshake (an Authorization header): the
 * connection's user is its subject, whatever hello says. `claims` is copied. Returns 0 or
 * RC_ENOMEM (then the connection must not go on: it would be anonymous). */
int rc_conn_set_claims(rc_conn_t *c, const rc_jwt_claims_t *claims);

/** The client showed it is alive at `now_us` (rc_mono_us()) without a message: a pong. */
void rc_conn_alive(rc_conn_t *c, uint64_t now_us);

/** The client sent a WebSocket ping (answered by the transport) at `now_us`: it shows the
 * client alive and takes from the budget of messages other than events (4020 past it, and
 * those errors count towards 4008). */
void rc_conn_ws_ping(rc_conn_t *c, uint64_t now_us);

/** One whole client message (reassembled by the transport); `binary` is the frame kind;
 * `t0_us` is when it arrived (rc_mono_us()), the start of event->push latency. */
void rc_conn_receive(rc_conn_t *c, const void *data, size_t len, bool binary, uint64_t t0_us);

/** Refuses something the transport detected (e.g. a message over the size limit) with a
 * protocol error; `fatal` closes the connection after the error is sent. */
void rc_conn_refuse(rc_conn_t *c, int code, const char *message, bool fatal);

/** The next frame to write, or NULL. The caller owns the reference and reports it with
 * rc_conn_frame_written() (which counts it and releases it) after writing it. */
rc_frame_t *rc_conn_next_frame(rc_conn_t *c);
void rc_conn_frame_written(rc_frame_t *f, uint64_t now_us);

/** Whether frames or acks still wait (the transport asks for another writable turn). */
bool rc_conn_has_pending(const rc_conn_t *c);

/** Whether the server wants this connection closed once its frames are written, and with
 * which WebSocket close code (0: no) and reason (static text). */
int rc_conn_close_code(const rc_conn_t *c, const char **reason);

/** The transport is gone. The connection must not be used after this call. */
void rc_conn_closed(rc_conn_t *c);

/** Periodic work (call every ~100 ms): hello timeouts, pings to silent connections and
 * closing those that stay silent, expired tokens, dropping idle sessions, and writing dirty
 * profiles (write-behind). */
void rc_sessions_tick(rc_sessions_t *s, uint64_t now_us);

/** Makes the bus report the outcomes it already knows (rc_bus_settle()): with the in-process
 * bus, the acks of every event accepted so far are queued on their connections. For a
 * transport about to write a connection's frames before the end of the loop turn. */
void rc_sessions_settle(rc_sessions_t *s);

/** Tells every connection to reconnect elsewhere (`drain`), then to close with 1001. */
void rc_sessions_drain(rc_sessions_t *s, int64_t reconnect_after_ms);

/* Loop time one call of rc_sessions_flush_due() may spend writing profiles. */
#define RC_FLUSH_BUDGET_US 250

/** Writes the profiles dirty for at least profile_flush_ms, oldest first, until about
 * `budget_us` of loop time is spent (call every few ms; rc_sessions_tick() calls it too). */
void rc_sessions_flush_due(rc_sessions_t *s, uint64_t now_us, uint64_t budget_us);

/** Writes every dirty profile now. */
void rc_sessions_flush_profiles(rc_sessions_t *s);

/** Erases a user (GDPR) on every node: the in-memory session state here (connected clients
 * get lists computed from nothing), the stored profile (after any update queued before), and
 * through the bus the session state on every other node. Returns 0 or the first error. */
int rc_sessions_erase_user(rc_sessions_t *s, const char *user, size_t len);

/** Publishes an application push to one user (`user` non-empty) or a segment ("all",
 * "device:<class>") on every node, as {"type":"push","id","topic","data"}. Writes the push
 * id into `id_out`. Returns 0, or the bus's error (RC_EFULL when its buffer is full). */
int rc_sessions_push(rc_sessions_t *s, rc_str_t user, rc_str_t segment, rc_str_t topic,
                     const msgpack_object *data, char *id_out, size_t id_len);

/** After the catalog changed (items removed or out of stock): every live list showing an
 * item that may no longer be recommended is ranked again and pushed. Returns how many lists
 * were pushed. */
uint32_t rc_sessions_catalog_changed(rc_sessions_t *s);

/** After the experiment or the business rules changed: every session gets its variant of
 * the experiment (rc_engine_experiment(engine)), and every live list is ranked again with it and
 * pushed if it changed. Returns how many lists were pushed. */
uint32_t rc_sessions_settings_changed(rc_sessions_t *s);

struct rc_experiment_counts;
/** Adds this loop's impressions and clicks of experiment `x` (borrowed) to `sum`
 * (rc_experiment_counts_add): a reader adds up every loop's. */
void rc_sessions_experiment_counts(const rc_sessions_t *s, const struct rc_experiment *x,
                                   struct rc_experiment_counts *sum);

/** A copy of this loop's counts of the experiment (of its serial), for other threads. */
void rc_sessions_experiment_mine(const rc_sessions_t *s, struct rc_experiment_counts *out);

/** Makes `c` (copied; rc_engine_snapshot_read()'s, before any client) this loop's counts. */
void rc_sessions_experiment_restore(rc_sessions_t *s, const struct rc_experiment_counts *c);

/** A profile the store loaded (rc_profile_load() was called by a new session): merged into
 * the user's session, if it is still here and may keep it, whose lists are then ranked
 * again. `status` and the data are the store's answer (profile.h). */
void rc_sessions_profile_loaded(rc_sessions_t *s, const char *user, size_t user_len, int status,
                                const void *data, size_t len);

/** An event another node accepted (RC_BUS_EVENT from another origin): applied to the user's
 * session here, if any, whose lists are then pushed again; learned by the models either way. */
void rc_sessions_remote_event(rc_sessions_t *s, const rc_bus_msg_t *m);

/** An erasure taken by another node (RC_BUS_ERASE from another origin): the user's session
 * state here is forgotten, if this node holds it. */
void rc_sessions_remote_erase(rc_sessions_t *s, const rc_bus_msg_t *m);

/** An application push (RC_BUS_PUSH from any node, this one too): delivered to the user's,
 * or the segment's, connections on this node. */
void rc_sessions_deliver_push(rc_sessions_t *s, const rc_bus_msg_t *m);

/** The time an event is learned at (PROTOCOL.md, `ts_ms`): its own when it lies within
 * --event-time-past-s behind and --event-time-future-s ahead of `received_ms`, the clock of
 * the node that accepted it; `received_ms` otherwise (and when it has none). Every node
 * applies the same rule to the same message, so all learn the event at the same time. With
 * `count`, an event outside the bounds is counted on /metrics (the accepting node does). */
int64_t rc_sessions_event_time(const rc_sessions_t *s, const rc_proto_event_t *ev,
                               int64_t received_ms, bool count);

/** Read back from the event log at start, before any client: the event `id` of the user with
 * pseudonym `pseudo` is remembered, so a retry of it after the restart is acknowledged and
 * not applied again (the last DEDUPE_MAX of each user). Returns 0, RC_EINVAL for a malformed
 * pseudonym, or RC_ENOMEM. */
int rc_sessions_restore_event(rc_sessions_t *s, rc_str_t pseudo, rc_str_t id);

/** Read back from the log: the user was erased; what was remembered of them is dropped. */
void rc_sessions_restore_erase(rc_sessions_t *s, rc_str_t pseudo);

/** Read back from the log: a profile change numbered `seq` was taken; later ones are numbered
 * above it, even if the clock went back. */
void rc_sessions_restore_seq(rc_sessions_t *s, uint64_t seq);

/** The sessions' part of a snapshot (log/snapshot.h): each user's window of event ids
 * (sessions here, and users the log remembered who have not come back), by pseudonym, and
 * the newest sequence number. Written into `pk` as one map. */
void rc_sessions_snapshot_write(const rc_sessions_t *s, msgpack_packer *pk);

/** The sessions' context for a snapshot: the recent items of each session here, by
 * pseudonym (rc_history_pack_session()'s array, for rc_history_snapshot_read()), so that the
 * read-back after the snapshot pairs a session's next events with its items before it. */
void rc_sessions_snapshot_write_context(const rc_sessions_t *s, msgpack_packer *pk);

/** Restores, before any client, what rc_sessions_snapshot_write() wrote. Returns 0 or
 * RC_EPARSE / RC_ENOMEM. */
int rc_sessions_snapshot_read(rc_sessions_t *s, const msgpack_object *o);

/** The newest sequence number given to a profile change (0: none yet). */
uint64_t rc_sessions_last_seq(const rc_sessions_t *s);

/** Every profile change numbered below the returned value is confirmed by the profile store:
 * none waits in a session or in the store. The node writes it to its event log now and then
 * (RC_BUS_MARK), so that a restart sends the store again only what came after. */
uint64_t rc_sessions_profile_mark(const rc_sessions_t *s);

/** Open connections and sessions in memory. */
uint32_t rc_sessions_conn_count(const rc_sessions_t *s);
uint32_t rc_sessions_count(const rc_sessions_t *s);

#endif
