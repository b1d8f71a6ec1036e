/* SPDX-License-Identifier: Apache-2.0 */
/* What a loop changes in the engine, always as records (engine_op.h): ids named by events,
 * events' model halves, locales met. With one loop each record is applied at once to the
 * engine the registry holds; with several, the same records go to the shared engine's
 * writer (shared.h) while the loop only looks things up on its copy. And the loop's own
 * counts of the experiment, which counting never writes into. */
#include "session/session_int.h"
#include "engine/engine_op.h"
#include "util/log.h"

int rc_sessions_submit(rc_sessions_t *s, rc_engine_op_t *op)
{
    return rc_engine_apply_owned(s->engine, op);
}

int64_t rc_sessions_event_item(rc_sessions_t *s, rc_str_t id, uint32_t user_key)
{
    const rc_catalog_t *cat = rc_engine_catalog(s->engine);
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
    return u != NULL && rc_user_observe(s->engine, u, kind, item, weight, query, wall_ms);
}

int rc_sessions_locale(rc_sessions_t *s, rc_str_t tag, int64_t wall_ms)
{
    if (tag.n == 0)
        return -1;
    rc_engine_op_t op;
    rc_engine_op_locale(&op, tag, wall_ms);
    rc_sessions_submit(s, &op);
    int ref = rc_engine_locale_find(s->engine, tag);
    return ref >= 0 ? ref : -1;
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
