/* SPDX-License-Identifier: Apache-2.0 */
/* The chance of a return to the session (returns.h): ranking and learning ask the successor
 * model of the same items, so that the share its evidence gets is learned on what ranking
 * uses. */
#include "engine/returns.h"
#include "engine/engine_int.h"

#include <stddef.h>

/* REPEAT_RATE makes the estimates follow about the last thousand events. */
#define REPEAT_RATE 0.001f
/* The successor model's share stays within [REPEAT_SUCCESSOR_FLOOR, 1]: never quite 0, so
 * that evidence which starts to foretell returns can win it back. */
#define REPEAT_SUCCESSOR_FLOOR 0.01f
/* A step of the share moves at most REPEAT_RATE times this: one return that only the
 * successor model foretold says much (the gradient is 1 / the share), not everything. */
#define REPEAT_GRAD_MAX 10.0f

_Static_assert(RC_OP_RECENT >= RC_RETURN_SOURCES, "a record holds the items learning reads");

void rc_return_evidence(const rc_covisit_t *successor, const uint32_t *items, const float *w,
                        uint32_t n, rc_return_evidence_t *out)
{
    out->n = 0;
    out->total = 0;
    n = n < RC_RETURN_SOURCES ? n : RC_RETURN_SOURCES;
    uint32_t nn = 0;
    const rc_neighbor_t *nb = n >= 2 && items[0] < successor->n_lists
                                  ? rc_covisit_neighbors(successor, items[0], &nn)
                                  : NULL;
    float sum = 0;
    for (uint32_t j = 0; j < nn; j++) {
        sum += nb[j].w;
        for (uint32_t d = 1; d < n; d++) {
            if (items[d] != nb[j].item || w[d] <= 0)
                continue;
            out->item[out->n] = nb[j].item;
            out->p[out->n++] = nb[j].w; /* a successor list holds an item once */
            break;
        }
    }
    for (uint32_t i = 0; i < out->n; i++) {
        out->p[i] /= sum;
        out->total += out->p[i];
    }
    out->total = out->total < 1 ? out->total : 1;
}

float rc_return_habit_split(const uint32_t *items, const float *w, uint32_t n, float recency,
                            uint32_t item)
{
    n = n < RC_RETURN_SOURCES ? n : RC_RETURN_SOURCES;
    float of_item = 0, all = 0, r = 1;
    for (uint32_t d = 1; d < n; d++) {
        r *= recency;
        if (items[d] == items[0] || w[d] <= 0)
            continue;
        all += w[d] * r;
        of_item += items[d] == item ? w[d] * r : 0;
    }
    return all > 0 ? of_item / all : 0;
}

static int device_of(uint8_t device)
{
    return device < RC_DEVICE_COUNT ? device : RC_DEV_OTHER;
}

void rc_return_chances(const rc_engine_t *e, const rc_user_state_t *u, rc_return_chances_t *out)
{
    int dev = device_of(u->device);
    out->same = e->repeat_same[dev];
    out->habit = e->repeat_back[dev];
    out->seq = (1 - out->same) * e->repeat_successor;
    uint32_t items[RC_RETURN_SOURCES];
    float w[RC_RETURN_SOURCES];
    uint32_t n = u->n_recent < RC_RETURN_SOURCES ? u->n_recent : RC_RETURN_SOURCES;
    for (uint32_t d = 0; d < n; d++) {
        items[d] = rc_user_recent(u, d)->item;
        w[d] = rc_user_recent(u, d)->w;
    }
    rc_return_evidence(&e->successor, items, w, n, &out->evidence);
}

float rc_return_seq_chance(const rc_return_chances_t *c, uint32_t item)
{
    for (uint32_t i = 0; i < c->evidence.n; i++)
        if (c->evidence.item[i] == item)
            return c->seq * c->evidence.p[i];
    return 0;
}

/* The step of the successor model's share for an event that left the item in view: d/ds of
 * the log of the chance the mixture gave it. A return to an item: its habit part is
 * repeat_back times its share by what the user did (the ranker also weighs that part by the
 * item's score, which a record does not hold); a new item: what the returns left. */
static float share_gradient(const rc_engine_t *e, const rc_op_event_t *ev, int dev)
{
    rc_return_evidence_t seq;
    rc_return_evidence(&e->successor, ev->recent_item, ev->recent_w, ev->n_recent, &seq);
    float s = e->repeat_successor, leave = 1 - e->repeat_same[dev];
    if (!ev->back) {
        float p_new = leave - e->repeat_back[dev] - s * leave * seq.total;
        return -leave * seq.total / (p_new > RC_RETURN_NEW_MIN ? p_new : RC_RETURN_NEW_MIN);
    }
    float p_seq = 0;
    for (uint32_t i = 0; i < seq.n; i++)
        p_seq += seq.item[i] == (uint32_t)ev->item ? leave * seq.p[i] : 0;
    if (p_seq <= 0)
        return 0; /* a return the successor model did not foretell: no say in its share */
    float p_habit =
        e->repeat_back[dev] * rc_return_habit_split(ev->recent_item, ev->recent_w, ev->n_recent,
                                                    e->repeat_recency, (uint32_t)ev->item);
    return p_seq / (p_habit + s * p_seq);
}

void rc_return_learn(rc_engine_t *e, const rc_op_event_t *ev)
{
    int dev = device_of(ev->device);
    if (!ev->same && e->repeat_same[dev] < 1) {
        float g = share_gradient(e, ev, dev);
        g = g < -REPEAT_GRAD_MAX ? -REPEAT_GRAD_MAX : g > REPEAT_GRAD_MAX ? REPEAT_GRAD_MAX : g;
        float s = e->repeat_successor + REPEAT_RATE * g;
        e->repeat_successor = s < REPEAT_SUCCESSOR_FLOOR ? REPEAT_SUCCESSOR_FLOOR : s > 1 ? 1 : s;
    }
    e->repeat_same[dev] += REPEAT_RATE * ((ev->same ? 1.0f : 0.0f) - e->repeat_same[dev]);
    e->repeat_back[dev] += REPEAT_RATE * ((ev->back ? 1.0f : 0.0f) - e->repeat_back[dev]);
}
