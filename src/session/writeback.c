/* SPDX-License-Identifier: Apache-2.0 */
/* Profile write-behind: what a session changed since its last write is kept in a delta
 * (from a pool, so steady writing allocates nothing) and written to the profile store when
 * due, when the delta is full, or when the session ends; and profiles the store loaded are
 * merged into their sessions. */
#include "session/session_int.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

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

void rc_session_drop_delta(rc_sessions_t *s, rc_session_t *ses)
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
void rc_session_save_profile(rc_sessions_t *s, rc_session_t *ses)
{
    rc_list_unlink(&ses->dirty_link);
    if (!ses->consent || ses->delta == NULL || rc_profile_delta_empty(ses->delta)) {
        rc_session_drop_delta(s, ses);
        return;
    }
    rc_wbuf_reset(&s->scratch);
    int rc = rc_profile_delta_encode(rc_engine_catalog(rc_sessions_engine(s)), ses->delta,
                                     rc_wall_ms(), &s->scratch);
    /* The event log, if any, holds every event of the delta by now: it writes at the end of
     * the loop turn that took them (rc_defer), and the store sends on a later turn. So a
     * restart after a crash finds in the log whatever the store may have applied. */
    if (rc == 0)
        rc = rc_profile_update(s->profiles, ses->user, ses->user_len, rc_wbuf_data(&s->scratch),
                               s->scratch.len, ses->delta_seq);
    if (rc != 0)
        RC_WARN("session", "profile update dropped", "session=%s error=\"%s\"", ses->id,
                rc_strerror(rc));
    rc_session_drop_delta(s, ses);
}

/* Adds an event to the session's unwritten profile changes. A delta that could take it only
 * by dropping something is written first, and the event starts a new one. */
void rc_session_note_profile_change(rc_sessions_t *s, rc_session_t *ses, rc_event_kind_t kind,
                                    int64_t item, float w, uint64_t seq)
{
    const rc_catalog_t *c = rc_engine_catalog(rc_sessions_engine(s));
    if (ses->delta != NULL && !rc_profile_delta_add(ses->delta, c, kind, item, w))
        rc_session_save_profile(s, ses); /* and drops it */
    if (ses->delta == NULL) {
        ses->delta = delta_get(s);
        if (ses->delta == NULL) {
            RC_WARN("session", "profile update dropped: out of memory", "session=%s", ses->id);
            return;
        }
        rc_profile_delta_add(ses->delta, c, kind, item, w); /* an empty delta takes any event */
        ses->delta_seq.first = seq;
    }
    ses->delta_seq.last = seq;
    mark_dirty(s, ses);
}

void rc_sessions_profile_loaded(rc_sessions_t *s, const char *user, size_t user_len, int status,
                                const void *data, size_t len)
{
    rc_session_t *ses = rc_session_find(s, user, user_len);
    if (ses == NULL || status != 0 || !ses->consent || len == 0)
        return;
    rc_user_state_t *u = rc_session_state_write(ses);
    if (u == NULL ||
        rc_profile_merge(rc_engine_catalog(rc_sessions_engine(s)), u, data, len) != 0) {
        RC_WARN("session", "profile unreadable", "session=%s", ses->id);
        return;
    }
    rc_session_rerank(s, ses, (rc_str_t){NULL, 0}, 0);
}

/* Sessions join the dirty list when their delta takes its first event, so the list's head
 * holds the oldest unwritten change. */
uint64_t rc_sessions_profile_mark(const rc_sessions_t *s)
{
    uint64_t mark = s->last_seq + 1;
    if (!rc_list_empty(&s->dirty_sessions)) {
        const rc_session_t *ses = RC_CONTAINER_OF(s->dirty_sessions.next, rc_session_t, dirty_link);
        if (ses->delta_seq.first != 0 && ses->delta_seq.first < mark)
            mark = ses->delta_seq.first;
    }
    uint64_t store = rc_profile_oldest_unconfirmed(s->profiles);
    return store < mark ? store : mark;
}

uint64_t rc_sessions_next_seq(rc_sessions_t *s)
{
    if (rc_bus_shared(s->bus))
        return 0;
    uint64_t now = (uint64_t)rc_wall_ms() * 1000 + rc_mono_us() % 1000;
    s->last_seq = now > s->last_seq ? now : s->last_seq + 1;
    return s->last_seq;
}

uint64_t rc_sessions_last_seq(const rc_sessions_t *s)
{
    return s->last_seq;
}

void rc_sessions_restore_seq(rc_sessions_t *s, uint64_t seq)
{
    if (seq > s->last_seq)
        s->last_seq = seq;
}

void rc_sessions_flush_profiles(rc_sessions_t *s)
{
    while (!rc_list_empty(&s->dirty_sessions))
        rc_session_save_profile(s,
                                RC_CONTAINER_OF(s->dirty_sessions.next, rc_session_t, dirty_link));
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
        rc_session_save_profile(s, ses);
        if (n % 8 == 0 && rc_mono_us() - start >= budget_us)
            break;
    }
}
