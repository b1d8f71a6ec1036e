/* SPDX-License-Identifier: Apache-2.0 */
/* What a loop changes in the engine, always as records (engine_op.h): ids named by events,
 * events' model halves, locales met. With one loop each record is applied at once to the
 * engine the registry holds; with several, the same records go to the shared engine's
 * writer (shared.h) while the loop only looks things up on its copy. And the loop's own
 * counts of the experiment, which counting never writes into. */
#include "session/session_int.h"
#include "engine/engine_op.h"
#include "util/error.h"
#include "util/log.h"

#include <string.h>

int rc_sessions_submit(rc_sessions_t *s, rc_engine_op_t *op)
{
    if (s->shared == NULL)
        return rc_engine_apply_owned(s->engine, op);
    int rc = rc_shared_submit(s->shared, op);
    if (rc != 0) {
        rc_engine_op_clear(op);
        RC_WARN("session", "a change to the models was dropped", "error=\"%s\"", rc_strerror(rc));
    }
    return rc;
}

int rc_sessions_share_engine(rc_sessions_t *s, rc_shared_t *shared, rc_directory_t *directory,
                             uint32_t loop)
{
    s->reader = rc_shared_reader_register(shared);
    if (s->reader == NULL)
        return RC_EFULL;
    s->shared = shared;
    s->engine = NULL;
    s->directory = directory;
    s->loop_index = loop;
    s->next_session_id = (uint64_t)loop << 48; /* session ids stay the node's own */
    return 0;
}

rc_engine_t *rc_sessions_engine(const rc_sessions_t *s)
{
    if (s->engine != NULL)
        return s->engine;
    /* The section is a view the registry caches, not its state: begun by whoever reads. */
    rc_sessions_t *m = (rc_sessions_t *)s;
    m->engine = (rc_engine_t *)rc_shared_read_begin(m->reader);
    return m->engine;
}

void rc_sessions_read_end(rc_sessions_t *s)
{
    if (s->shared != NULL && s->engine != NULL) {
        rc_shared_read_end(s->reader);
        s->engine = NULL;
    }
}

int rc_sessions_sync(rc_sessions_t *s)
{
    if (s->shared == NULL)
        return 0;
    rc_sessions_read_end(s); /* the writer waits for readers of the copy it is to change */
    return rc_shared_flush(s->shared);
}

int64_t rc_sessions_event_item(rc_sessions_t *s, rc_str_t id, uint32_t user_key)
{
    const rc_catalog_t *cat = rc_engine_catalog(rc_sessions_engine(s));
    int64_t item = rc_catalog_find(cat, id.p, id.n);
    if (item >= 0)
        return item;
    if (!rc_catalog_may_learn(cat, id.n))
        return -1;
    rc_engine_op_t op;
    if (rc_engine_op_item_seen(&op, id.p, id.n, user_key) == 0)
        rc_sessions_submit(s, &op);
    /* Known at once with one loop when this event made the id trusted (so the event that
     * does is learned with it, by the models and by the session, as before records); with
     * several, from the section after the writer publishes it. */
    item = rc_catalog_find(cat, id.p, id.n);
    return item >= 0 ? item : RC_CATALOG_UNTRUSTED;
}

bool rc_sessions_observe(rc_sessions_t *s, rc_user_state_t *u, rc_event_kind_t kind, int64_t item,
                         rc_str_t item_id, float weight, rc_str_t query, int64_t wall_ms)
{
    rc_engine_op_t op;
    rc_engine_op_event(&op, u, kind, item, weight, wall_ms);
    if (item < 0 && item_id.n > 0 && rc_engine_op_event_by_id(&op, item_id.p, item_id.n) != 0)
        RC_DEBUG("session", "event learned without its item: out of memory", NULL);
    rc_sessions_submit(s, &op);
    return u != NULL &&
           rc_user_observe(rc_sessions_engine(s), u, kind, item, weight, query, wall_ms);
}

int rc_sessions_locale(rc_sessions_t *s, rc_str_t tag, int64_t wall_ms)
{
    if (tag.n == 0)
        return -1;
    rc_engine_op_t op;
    rc_engine_op_locale(&op, tag, wall_ms);
    rc_sessions_submit(s, &op);
    int ref = rc_engine_locale_find(rc_sessions_engine(s), tag);
    return ref >= 0 ? ref : -1;
}

/* Ranks that ask again for a locale the loop's copy did not know: the writer publishes
 * within one batch, so the first rank after the hello's usually finds it. */
#define LOCALE_TRIES 8

void rc_session_await_locale(rc_sessions_t *s, rc_session_t *ses, rc_str_t tag)
{
    ses->locale_pending[0] = '\0';
    if (s->shared == NULL || ses->locale >= 0 || tag.n == 0 || tag.n > RC_LOCALE_MAX)
        return;
    memcpy(ses->locale_pending, tag.p, tag.n);
    ses->locale_pending[tag.n] = '\0';
    ses->locale_tries = 0;
}

void rc_session_resolve_locale(rc_sessions_t *s, rc_session_t *ses)
{
    if (ses->locale_pending[0] == '\0')
        return;
    rc_str_t tag = {ses->locale_pending, (uint32_t)strlen(ses->locale_pending)};
    int ref = rc_engine_locale_find(rc_sessions_engine(s), tag);
    if (ref >= 0)
        rc_session_set_context(ses, ses->device, ses->tz_offset_min, ref);
    if (ref >= 0 || ++ses->locale_tries >= LOCALE_TRIES)
        ses->locale_pending[0] = '\0';
}

void rc_sessions_experiment_counts(const rc_sessions_t *s, const rc_experiment_t *x,
                                   rc_experiment_counts_t *sum)
{
    rc_experiment_counts_add(sum, x, &s->xcounts);
}

void rc_sessions_experiment_restore(rc_sessions_t *s, const rc_experiment_counts_t *c)
{
    s->xcounts = *c;
}

void rc_sessions_experiment_mine(const rc_sessions_t *s, rc_experiment_counts_t *out)
{
    *out = s->xcounts;
}
