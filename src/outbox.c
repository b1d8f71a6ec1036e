/* Frames and outboxes; see outbox.h for the coalescing rule. */
#include "outbox.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

rc_frame_t *rc_frame_new(const void *payload, size_t len, bool binary)
{
    rc_frame_t *f = malloc(sizeof(*f) + RC_FRAME_HEADROOM + len);
    if (f == NULL)
        return NULL;
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
    if (f != NULL && --f->refs == 0)
        free(f);
}

int rc_outbox_init(rc_outbox_t *o, uint32_t n_slots)
{
    memset(o, 0, sizeof(*o));
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
            return f;
        }
    }
    return NULL;
}

bool rc_outbox_empty(const rc_outbox_t *o)
{
    if (o->len > 0)
        return false;
    for (uint32_t i = 0; i < o->n_slots; i++)
        if (o->slots[i] != NULL)
            return false;
    return true;
}
