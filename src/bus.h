/* The event bus: how an accepted event leaves this node (to be durable, and to reach the
 * other nodes) and how other nodes' events arrive. The in-process backend is the embedded
 * default; Kafka sits behind the same interface. */
#ifndef RC_BUS_H
#define RC_BUS_H

#include "proto.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rc_bus rc_bus_t;

/* An event as it travels between nodes. Strings are borrowed for the duration of a call. */
typedef struct rc_bus_event {
    rc_str_t user;
    rc_str_t origin_node;
    rc_proto_event_t ev;
    int64_t received_ms; /* when the origin node accepted it */
} rc_bus_event_t;

/* Publish outcome: 0 once the event is durable on the bus, or a negative code. */
typedef void (*rc_bus_done_fn)(void *arg, int status);

/* An event from another node. */
typedef void (*rc_bus_remote_fn)(void *ctx, const rc_bus_event_t *e);

typedef struct rc_bus_ops {
    const char *name;
    int (*publish)(rc_bus_t *b, const rc_bus_event_t *e, rc_bus_done_fn done, void *arg);
    int (*ready)(rc_bus_t *b, char *reason, size_t reason_len);
    void (*destroy)(rc_bus_t *b);
} rc_bus_ops_t;

struct rc_bus {
    const rc_bus_ops_t *ops;
    rc_bus_remote_fn on_remote; /* set by the owner */
    void *ctx;
};

/** Publishes an event; `done` runs on a later loop turn with the outcome. Returns 0, or a
 * negative code (then `done` never fires). */
int rc_bus_publish(rc_bus_t *b, const rc_bus_event_t *e, rc_bus_done_fn done, void *arg);

/** 0 when usable; otherwise a negative code and a reason. */
int rc_bus_ready(rc_bus_t *b, char *reason, size_t reason_len);

/** Frees the bus (pending completions are reported as RC_ECLOSED first). NULL is a no-op. */
void rc_bus_free(rc_bus_t *b);

/** The in-process bus: events are durable as soon as accepted and reach no other node.
 * `defer` is borrowed and must outlive the bus. NULL when out of memory. */
struct rc_defer;
rc_bus_t *rc_bus_local_new(struct rc_defer *defer);

#endif
