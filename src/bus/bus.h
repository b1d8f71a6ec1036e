/* SPDX-License-Identifier: Apache-2.0 */
/* The bus: how what one node accepts reaches every node. Three kinds of message travel on
 * it: events (durable once published: that is what an `ack` promises), erasures (a user
 * forgotten on every node), and application pushes (delivered to a user's connections, or
 * to a segment, wherever they are). The in-process backend is the embedded default (one
 * node); Kafka sits behind the same interface. */
#ifndef RC_BUS_H
#define RC_BUS_H

#include "proto/proto.h"
#include "util/wbuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct rc_bus rc_bus_t;

#define RC_SETTING_NAME_MAX 32

/* RC_BUS_OPS: a node's summary for the others' dashboards (ops.h), in `data`.
 * RC_BUS_CATALOG: one catalog item upserted or removed through the catalog API of any node;
 * every node applies every one (its own too), in the order of the bus, and a node that
 * starts replays them all (the Kafka topic is compacted by item id).
 * RC_BUS_SETTING: a cluster-wide setting made through the admin API, every node's the same:
 * `setting` names it ("experiment": rc_experiment_parse's text form, empty for none;
 * "rules": the business rules' JSON), `spec` holds it; it rides with catalog changes.
 * RC_BUS_MARK: in the event log only (--data-dir): every change to a profile whose `seq` is
 * below `seq` is confirmed by the profile store (docs/durability.md). */
typedef enum {
    RC_BUS_EVENT = 1,
    RC_BUS_ERASE,
    RC_BUS_PUSH,
    RC_BUS_OPS,
    RC_BUS_CATALOG,
    RC_BUS_SETTING,
    RC_BUS_MARK
} rc_bus_kind_t;

#define RC_BUS_RECENT 10 /* the user's recent items an event carries, for co-visitation */

/* One message. Strings are borrowed for the duration of a call (publish, or the remote
 * callback). */
typedef struct rc_bus_msg {
    rc_bus_kind_t kind;
    rc_str_t origin_node;
    rc_str_t user; /* empty for a segment push */
    /* RC_BUS_EVENT */
    rc_proto_event_t ev;
    int64_t received_ms; /* when the origin node accepted it */
    uint32_t n_recent;   /* the user's recent items at the origin before it, newest first */
    rc_str_t recent[RC_BUS_RECENT];
    float recent_w[RC_BUS_RECENT];
    int device; /* the user's context at the origin, for trending per segment */
    int tz_offset_min;
    rc_str_t locale; /* canonical tag, or empty */
    /* RC_BUS_EVENT and RC_BUS_ERASE on the in-process bus, for the event log: the user's
     * profile key when the change reaches their profile (consent given; not an impression),
     * and the change's place in the node's order of profile changes (rc_profile_seq_t), so
     * that a restart can finish what the profile store had not confirmed. Empty and 0 on
     * Kafka: another node can do nothing with a user id it must not learn. */
    rc_str_t profile_user;
    uint64_t seq;
    /* Delivered by the Kafka bus from the history a starting node learns (--kafka-replay-h):
     * its own events count too, as this node did not learn them in this run. */
    bool history;
    /* Set by a node that takes the message from another event loop of its own process (not
     * encoded): an event whose model half that loop already gave the shared models. */
    bool sibling;
    /* RC_BUS_CATALOG: the item's id, and the item as its JSON object text (empty: removed) */
    rc_str_t item_id, item_json;
    /* RC_BUS_SETTING */
    rc_str_t setting, spec;
    /* RC_BUS_PUSH */
    rc_str_t push_id, topic, segment;
    const msgpack_object *data; /* the application payload, any value; RC_BUS_OPS: a map */
} rc_bus_msg_t;

/* Publish outcome: 0 once the message is durable on the bus, or a negative code. */
typedef void (*rc_bus_done_fn)(void *arg, int status);

/* A message for this node: from another node (events, erasures) or from any node,
 * including this one (pushes, which are delivered where the connections are). */
typedef void (*rc_bus_deliver_fn)(void *ctx, const rc_bus_msg_t *m);

typedef struct rc_bus_ops {
    const char *name;
    /* Other nodes read what is published: an event must carry the user's context (recent
     * items, device, locale) for them to learn from it. The in-process bus has none. */
    bool shared;
    int (*publish)(rc_bus_t *b, const rc_bus_msg_t *m, rc_bus_done_fn done, void *arg);
    int (*ready)(rc_bus_t *b, char *reason, size_t reason_len);
    size_t (*pending)(const rc_bus_t *b);
    void (*settle)(rc_bus_t *b);
    void (*close)(rc_bus_t *b);
    void (*destroy)(rc_bus_t *b);
} rc_bus_ops_t;

struct rc_bus {
    const rc_bus_ops_t *ops;
    rc_bus_deliver_fn deliver; /* given at creation; NULL: messages are dropped */
    void *ctx;
};

/** Publishes a message; `done` (may be NULL) runs with the outcome after this call returns,
 * never inside it: on a later loop turn, or in rc_bus_settle(). Returns 0, or a negative code
 * (then `done` never fires): RC_EFULL when the bus's buffer is full. */
int rc_bus_publish(rc_bus_t *b, const rc_bus_msg_t *m, rc_bus_done_fn done, void *arg);

/** 0 when usable; otherwise a negative code and a reason. */
int rc_bus_ready(rc_bus_t *b, char *reason, size_t reason_len);

/** Messages published but not yet durable. */
size_t rc_bus_pending(const rc_bus_t *b);

/** Whether other nodes read what is published (rc_bus_ops_t.shared). */
bool rc_bus_shared(const rc_bus_t *b);

/** Reports now, rather than on the next loop turn, the outcomes the bus already knows: the
 * in-process bus's for every publish so far (its pushes are delivered too); Kafka's come
 * from the broker and are not hastened. Never call it from a bus callback. */
void rc_bus_settle(rc_bus_t *b);

/** Stops network activity and closes loop handles (the loop must run once more before
 * rc_bus_free()); publishes still pending are reported as RC_ECLOSED. NULL is a no-op. */
void rc_bus_close(rc_bus_t *b);

/** Frees the bus, after rc_bus_close() and a loop run. NULL is a no-op. */
void rc_bus_free(rc_bus_t *b);

/** The in-process bus: events are durable as soon as accepted and reach no other node;
 * pushes come back to this node, through `deliver(ctx, ...)` (never inside a call to the
 * bus). `defer` is borrowed and must outlive the bus. */
struct rc_defer;
rc_bus_t *rc_bus_local_new(struct rc_defer *defer, rc_bus_deliver_fn deliver, void *ctx);

/** Gives the in-process bus an event log (borrowed; it must outlive the bus's use): from then
 * on events, erasures, catalog changes and settings are appended to it, and an event is
 * durable once the log says so. */
struct rc_eventlog;
void rc_bus_local_set_log(rc_bus_t *b, struct rc_eventlog *log);

/** Shows `tap(ctx, m)` every message the in-process bus's event log takes, once it is
 * appended (the node keeps the catalog changes and settings for its snapshots). */
void rc_bus_local_set_tap(rc_bus_t *b, rc_bus_deliver_fn tap, void *ctx);

/** Shows `relay(ctx, m)` every message the in-process bus takes (without an event log),
 * inside rc_bus_publish(): what the other event loops of the process must hear (node.c). */
void rc_bus_local_set_relay(rc_bus_t *b, rc_bus_deliver_fn relay, void *ctx);

/** The Kafka bus (bus_kafka.c). Creates the topics, starts producer and consumer on
 * `loop`; what the consumer reads goes to `deliver(ctx, ...)`. `cfg` and `node_id` are
 * borrowed. NULL with a message in `err`. */
struct rc_config;
rc_bus_t *rc_bus_kafka_new(uv_loop_t *loop, const struct rc_config *cfg, const char *node_id,
                           rc_bus_deliver_fn deliver, void *ctx, char *err, size_t errlen);

/* The wire form of a message between nodes (MessagePack; see docs/cluster.md). */

/** Encodes `m` into `out`. Returns 0 or RC_ENOMEM. */
int rc_bus_msg_encode(const rc_bus_msg_t *m, rc_wbuf_t *out);

/** Decodes a message; its strings borrow from `data` and `zone`. Returns 0 or RC_EPARSE. */
int rc_bus_msg_decode(const void *data, size_t len, msgpack_zone *zone, rc_bus_msg_t *m);

#endif
