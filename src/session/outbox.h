/* SPDX-License-Identifier: Apache-2.0 */
/* Encoded frames and the per-connection outbox. A frame is encoded once and shared, by
 * reference count, among every connection that sends it (all tabs of one user). The
 * outbox keeps one FIFO for messages that must all arrive (welcome, ack, error, push) and
 * one slot per subscription for lists, where a newer list replaces an unsent older one:
 * a slow reader gets the newest list, never a backlog of stale ones. Event ids waiting for
 * their `ack` are kept here too, as ids rather than frames: all that are pending when the
 * connection writes leave in one ack, after everything else. So the outbox alone says
 * whether a connection has anything to write and whether it may close. */
#ifndef RC_OUTBOX_H
#define RC_OUTBOX_H

#include "proto/proto.h"
#include "util/wbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes reserved in front of every frame for the WebSocket header (libwebsockets' LWS_PRE;
 * the gateway checks at compile time that this is enough). */
#define RC_FRAME_HEADROOM 16

typedef struct rc_frame {
    uint32_t refs;
    uint32_t len;
    bool binary;
    bool is_recs;
    uint8_t size_class;   /* of the frame pool (outbox.c); 0xff: allocated on its own */
    uint64_t cause_t0_us; /* recs caused by an event: when the event arrived (0 otherwise) */
    unsigned char data[]; /* RC_FRAME_HEADROOM bytes, then len bytes of payload */
} rc_frame_t;

/** A new frame holding a copy of `payload` (refs = 1). Returns NULL when out of memory.
 * Caller releases with rc_frame_unref(). Frames come from a pool of a few sizes, so that
 * sending allocates nothing once the pool holds what a busy moment needed; like every
 * session object they belong to the loop's thread. */
rc_frame_t *rc_frame_new(const void *payload, size_t len, bool binary);

static inline unsigned char *rc_frame_payload(rc_frame_t *f)
{
    return f->data + RC_FRAME_HEADROOM;
}

static inline rc_frame_t *rc_frame_ref(rc_frame_t *f)
{
    f->refs++;
    return f;
}

/** Drops one reference; frees at zero. NULL is a no-op. */
void rc_frame_unref(rc_frame_t *f);

/** Frees the frames the calling thread's pool keeps for reuse. Each thread has its own pool,
 * so a frame must be released on the thread that made it (its loop's: references are not
 * atomic). A thread that ran a loop calls this before it ends. */
void rc_frame_pool_release(void);

typedef struct rc_outbox {
    rc_frame_t **fifo; /* ring */
    uint32_t head, len, cap;
    size_t fifo_bytes;
    rc_frame_t **slots; /* one per subscription index; NULL when nothing is pending */
    uint32_t n_slots;
    uint32_t next_slot; /* round-robin start, so no surface starves the others */
    uint32_t n_acks;
    rc_wbuf_t acks; /* ids awaiting their ack: a length byte, then the id */
} rc_outbox_t;

/** Prepares an outbox with `n_slots` list slots (0 is fine: see rc_outbox_grow_slots()).
 * Caller frees with rc_outbox_free(). Returns 0 or RC_ENOMEM. */
int rc_outbox_init(rc_outbox_t *o, uint32_t n_slots);

/** Makes room for `n_slots` list slots (never shrinks); pending frames keep their slots.
 * Returns 0 or RC_ENOMEM (the outbox is unchanged). */
int rc_outbox_grow_slots(rc_outbox_t *o, uint32_t n_slots);

/** Drops every pending frame and frees the outbox. NULL is a no-op. */
void rc_outbox_free(rc_outbox_t *o);

/** Queues `f` (takes a reference of its own) at the FIFO's tail. Returns 0, RC_ENOMEM, or
 * RC_EFULL when the FIFO already holds `max_bytes` or more (the frame is not queued). */
int rc_outbox_push(rc_outbox_t *o, rc_frame_t *f, size_t max_bytes);

/** Puts `f` (takes a reference) in list slot `slot`, replacing an unsent frame there.
 * Returns true when it replaced one (a coalesced list). */
bool rc_outbox_set_slot(rc_outbox_t *o, uint32_t slot, rc_frame_t *f);

/** Drops whatever is pending in `slot` (the subscription ended). */
void rc_outbox_clear_slot(rc_outbox_t *o, uint32_t slot);

/** Takes the next frame to write: FIFO first, then list slots round-robin. The caller owns
 * the returned reference. NULL when no frame is pending (acks may be: rc_outbox_peek_acks). */
rc_frame_t *rc_outbox_take(rc_outbox_t *o);

/** The same, saying where the frame came from: *slot is its list slot, or -1 for the FIFO. */
rc_frame_t *rc_outbox_take_from(rc_outbox_t *o, int32_t *slot);

/** Queues the id of an event to acknowledge (`len` <= 255 bytes; copied). Returns 0 or
 * RC_ENOMEM. */
int rc_outbox_add_ack(rc_outbox_t *o, const char *id, size_t len);

/** Points `ids` at up to `max` pending ack ids, oldest first; they are borrowed from the
 * outbox until rc_outbox_drop_acks() or the next rc_outbox_add_ack(). Returns how many. */
uint32_t rc_outbox_peek_acks(const rc_outbox_t *o, rc_str_t *ids, uint32_t max);

/** Forgets the `n` oldest pending ack ids (those just encoded). */
void rc_outbox_drop_acks(rc_outbox_t *o, uint32_t n);

/** Whether nothing at all is pending: no frame and no ack. */
bool rc_outbox_empty(const rc_outbox_t *o);

#endif
