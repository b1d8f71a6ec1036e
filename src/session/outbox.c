/* SPDX-License-Identifier: Apache-2.0 */
/* Frames and outboxes; see outbox.h for the coalescing rule. */
#include "session/outbox.h"
#include "util/error.h"
#include "util/sanitizer.h"

#include <stdlib.h>
#include <string.h>

/* Freed frames kept for reuse, per size class (the whole allocation: header, headroom,
 * payload). An ack or a pong fits the first class, a list of 10 to 20 items the second or
 * third; larger frames (long lists, pushes) are allocated each time. Each class keeps at
 * most POOL_KEEP_BYTES, so the pool never holds more than a burst's worth. */
#define N_CLASSES       4
#define POOL_KEEP_BYTES (256u << 10)
#define UNPOOLED        0xff
static const size_t class_bytes[N_CLASSES] = {256, 1024, 4096, 16384};

typedef struct pooled {
    struct pooled *next;
} pooled_t;

/* One pool per thread: a frame is made and released on its loop's thread (outbox.h), so
 * event loops in threads of one process never share a free list. */
static _Thread_local struct {
    pooled_t *free[N_CLASSES];
    uint32_t n_free[N_CLASSES];
} pool;

/* Under AddressSanitizer the pool is off: every frame is its own allocation, so a use after
 * the last unref shows. */
static uint8_t size_class(size_t bytes)
{
#if RC_ASAN
    (void)bytes;
    return UNPOOLED;
#endif
    for (uint8_t c = 0; c < N_CLASSES; c++)
        if (bytes <= class_bytes[c])
            return c;
    return UNPOOLED;
}

rc_frame_t *rc_frame_new(const void *payload, size_t len, bool binary)
{
    size_t bytes = sizeof(rc_frame_t) + RC_FRAME_HEADROOM + len;
    uint8_t c = size_class(bytes);
    rc_frame_t *f;
    if (c != UNPOOLED && pool.free[c] != NULL) {
        f = (rc_frame_t *)(void *)pool.free[c];
        pool.free[c] = pool.free[c]->next;
        pool.n_free[c]--;
    } else {
        f = malloc(c != UNPOOLED ? class_bytes[c] : bytes);
        if (f == NULL)
            return NULL;
    }
    f->size_class = c;
    f->refs = 1;
    f->len = (uint32_t)len;
    f->binary = binary;
    f->is_recs = false;
    f->cause_t0_us = 0;
    memcpy(f->data + RC_FRAME_HEADROOM, payload, len);
    return f;
}

void rc_frame_unref(rc_frame_t *f)
{
    if (f == NULL || --f->refs > 0)
        return;
    uint8_t c = f->size_class;
    if (c == UNPOOLED || (pool.n_free[c] + 1) * class_bytes[c] > POOL_KEEP_BYTES) {
        free(f);
        return;
    }
    pooled_t *p = (pooled_t *)(void *)f;
    p->next = pool.free[c];
    pool.free[c] = p;
    pool.n_free[c]++;
}

int rc_outbox_init(rc_outbox_t *o, uint32_t n_slots)
{
    memset(o, 0, sizeof(*o));
    rc_wbuf_init(&o->acks, 0);
    return rc_outbox_grow_slots(o, n_slots);
}

int rc_outbox_grow_slots(rc_outbox_t *o, uint32_t n_slots)
{
    if (n_slots <= o->n_slots)
        return 0;
    rc_frame_t **slots = realloc(o->slots, n_slots * sizeof(*slots));
    if (slots == NULL)
        return RC_ENOMEM;
    memset(slots + o->n_slots, 0, (n_slots - o->n_slots) * sizeof(*slots));
    o->slots = slots;
    o->n_slots = n_slots;
    return 0;
}

void rc_outbox_free(rc_outbox_t *o)
{
    if (o == NULL)
        return;
    rc_frame_t *f;
    while (o->len > 0 && (f = rc_outbox_take(o)) != NULL)
        rc_frame_unref(f);
    for (uint32_t i = 0; i < o->n_slots; i++)
        rc_frame_unref(o->slots[i]);
    free(o->fifo);
    free(o->slots);
    rc_wbuf_free(&o->acks);
    memset(o, 0, sizeof(*o));
}

int rc_outbox_push(rc_outbox_t *o, rc_frame_t *f, size_t max_bytes)
{
    if (o->fifo_bytes >= max_bytes)
        return RC_EFULL;
    if (o->len == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 8;
        rc_frame_t **p = malloc(cap * sizeof(*p));
        if (p == NULL)
            return RC_ENOMEM;
        for (uint32_t i = 0; i < o->len; i++)
            p[i] = o->fifo[(o->head + i) % o->cap];
        free(o->fifo);
        o->fifo = p;
        o->head = 0;
        o->cap = cap;
    }
    o->fifo[(o->head + o->len++) % o->cap] = rc_frame_ref(f);
    o->fifo_bytes += f->len;
    return 0;
}

bool rc_outbox_set_slot(rc_outbox_t *o, uint32_t slot, rc_frame_t *f)
{
    if (slot >= o->n_slots)
        return false;
    bool replaced = o->slots[slot] != NULL;
    rc_frame_unref(o->slots[slot]);
    o->slots[slot] = rc_frame_ref(f);
    return replaced;
}

void rc_outbox_clear_slot(rc_outbox_t *o, uint32_t slot)
{
    if (slot < o->n_slots) {
        rc_frame_unref(o->slots[slot]);
        o->slots[slot] = NULL;
    }
}

rc_frame_t *rc_outbox_take(rc_outbox_t *o)
{
    int32_t slot;
    return rc_outbox_take_from(o, &slot);
}

rc_frame_t *rc_outbox_take_from(rc_outbox_t *o, int32_t *slot)
{
    *slot = -1;
    if (o->len > 0) {
        rc_frame_t *f = o->fifo[o->head];
        o->head = (o->head + 1) % o->cap;
        o->len--;
        o->fifo_bytes -= f->len;
        return f;
    }
    for (uint32_t i = 0; i < o->n_slots; i++) {
        uint32_t s = (o->next_slot + i) % o->n_slots;
        if (o->slots[s] != NULL) {
            rc_frame_t *f = o->slots[s];
            o->slots[s] = NULL;
            o->next_slot = (s + 1) % o->n_slots;
            *slot = (int32_t)s;
            return f;
        }
    }
    return NULL;
}

int rc_outbox_add_ack(rc_outbox_t *o, const char *id, size_t len)
{
    uint8_t n = (uint8_t)len;
    rc_wbuf_put(&o->acks, &n, 1);
    rc_wbuf_put(&o->acks, id, n);
    if (rc_wbuf_ok(&o->acks) != 0)
        return RC_ENOMEM;
    o->n_acks++;
    return 0;
}

uint32_t rc_outbox_peek_acks(const rc_outbox_t *o, rc_str_t *ids, uint32_t max)
{
    const char *buf = rc_wbuf_data(&o->acks);
    uint32_t n = 0;
    for (size_t off = 0; off < o->acks.len && n < max; n++) {
        uint8_t len = (uint8_t)buf[off];
        ids[n] = (rc_str_t){buf + off + 1, len};
        off += 1u + len;
    }
    return n;
}

void rc_outbox_drop_acks(rc_outbox_t *o, uint32_t n)
{
    const char *buf = rc_wbuf_data(&o->acks);
    size_t off = 0;
    for (uint32_t i = 0; i < n && off < o->acks.len; i++)
        off += 1u + (uint8_t)buf[off];
    memmove(o->acks.base + o->acks.headroom, buf + off, o->acks.len - off);
    o->acks.len -= off;
    o->n_acks -= n < o->n_acks ? n : o->n_acks;
}

bool rc_outbox_empty(const rc_outbox_t *o)
{
    if (o->len > 0 || o->n_acks > 0)
        return false;
    for (uint32_t i = 0; i < o->n_slots; i++)
        if (o->slots[i] != NULL)
            return false;
    return true;
}

void rc_frame_pool_release(void)
{
    for (int c = 0; c < N_CLASSES; c++) {
        while (pool.free[c] != NULL) {
            pooled_t *p = pool.free[c];
            pool.free[c] = p->next;
            free(p);
        }
        pool.n_free[c] = 0;
    }
}
