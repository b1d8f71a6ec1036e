/* SPDX-License-Identifier: Apache-2.0 */
/* The chance that a user's next interaction returns to their session: how often users return
 * (learned per device class), and what the successor model, taught by other sessions, says
 * about each earlier item of the session ("after X, users go back to Y"), with the learned
 * share that evidence gets. Read by the ranker (merge_repeats) to place the session's items;
 * learned from the engine's records (engine_op.c). */
#ifndef RC_RETURNS_H
#define RC_RETURNS_H

#include "engine/covisit.h"
#include "engine/engine.h"
#include "engine/engine_op.h"

#include <stdint.h>

/* The session's items the evidence is asked of: the item in view and the ones before it.
 * Learning (an event record holds RC_OP_RECENT of them) and ranking ask of the same. */
#define RC_RETURN_SOURCES 10
/* The new items keep at least this share of a list's chances, whatever the estimates (the
 * ranker's placing and the learning of the successor model's share both hold to it). */
#define RC_RETURN_NEW_MIN 0.05f

typedef struct rc_return_evidence {
    uint32_t n;
    uint32_t item[RC_RETURN_SOURCES];
    float p[RC_RETURN_SOURCES]; /* the successor model's chance that item[i] comes next */
    float total;                /* their sum: its chance of a return to the session */
} rc_return_evidence_t;

/* The chances a list mixes the session's items in by (ranker.c, merge_repeats). An item of
 * the session other than the one in view has `habit` times its share by what the user did
 * (and by its score) plus `seq` times its chance in `evidence`; new items share what is left,
 * 1 - same - habit - seq * evidence.total. */
typedef struct rc_return_chances {
    float same;  /* the item in view again */
    float habit; /* another item of the session, by how often users return at all */
    float seq;   /* the successor model's weight: its learned share, of the chance of leaving */
    rc_return_evidence_t evidence;
} rc_return_chances_t;

/**
 * The successors of the item in view (items[0]) that are earlier items of the session
 * (items[1..n), newest first, with the weights w[] the user's events had; at most
 * RC_RETURN_SOURCES are read), each with its share of the item in view's listed successor
 * weight, into *out: the chance a first-order chain gives it to come next. An item of the
 * session that is not a listed successor has no entry. Borrows everything for the call.
 */
void rc_return_evidence(const rc_covisit_t *successor, const uint32_t *items, const float *w,
                        uint32_t n, rc_return_evidence_t *out);

/**
 * The share of a return to the session that goes to `item` by what the user did alone: the
 * weight of each of its interactions among items[1..n) (newest first; the item in view and
 * negative events left out) times `recency` per step back, over the same of every one.
 */
float rc_return_habit_split(const uint32_t *items, const float *w, uint32_t n, float recency,
                            uint32_t item);

/** The chances for the session of `u` in `e` into *out. Borrows both for the call. */
void rc_return_chances(const rc_engine_t *e, const rc_user_state_t *u, rc_return_chances_t *out);

/** The successor model's part of the chance of `item`, an item of the session (0 if none). */
float rc_return_seq_chance(const rc_return_chances_t *c, uint32_t item);

/**
 * Learns from one record of a positive event of a user with a session (ev->learn_return):
 * how often users return to the item in view and to the session (moving averages over about
 * the last thousand events, per device class), and the successor model's share, by the
 * gradient of the log of the chance the list's mixture gave what happened (the item returned
 * to, or a new one), asked before either estimate learns from the event. Reads only the
 * record and the engine.
 */
void rc_return_learn(rc_engine_t *e, const rc_op_event_t *ev);

#endif
