/* SPDX-License-Identifier: Apache-2.0 */
/* The experiment and the business rules, set through the admin API or the bus. */
#include "api/settings.h"
#include "api/admin_api.h"
#include "engine/engine_op.h"
#include "engine/rules.h"
#include "util/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The default weights of the blend: an experiment's variants are changes to them. */
static const rc_blend_t *blend(rc_settings_t *st)
{
    return rc_engine_blend(rc_sessions_engine(st->sessions));
}

/* Makes `x` (owned, never changed after) the experiment the engine runs. Returns the one it
 * ran, which the caller frees once nothing runs it. */
static rc_experiment_t *run_experiment(rc_settings_t *st, rc_experiment_t *x)
{
    rc_engine_op_t op;
    rc_engine_op_experiment(&op, x);
    rc_sessions_submit(st->sessions, &op);
    rc_sessions_sync(st->sessions); /* with shared models: in force when lists are ranked */
    rc_experiment_t *old = st->experiment;
    st->experiment = x;
    return old;
}

int rc_settings_init(rc_settings_t *st, rc_sessions_t *sessions, rc_bus_t *bus, const char *node_id,
                     const char *experiment_spec, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    st->sessions = sessions;
    st->bus = bus;
    st->node_id = node_id;
    rc_experiment_t *x = malloc(sizeof(*x));
    if (x == NULL) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    if (rc_experiment_parse(x, experiment_spec, blend(st), err, errlen) != 0) {
        free(x);
        return RC_EINVAL;
    }
    snprintf(st->experiment_spec, sizeof(st->experiment_spec), "%s", experiment_spec);
    run_experiment(st, x);
    return 0;
}

void rc_settings_free(rc_settings_t *st)
{
    if (st == NULL)
        return;
    free(st->rules_text);
    st->rules_text = NULL;
    free(st->experiment); /* the engine, if it outlives the settings, must not rank again */
    st->experiment = NULL;
}

/* Runs the experiment `spec` (its text form; "" for none) unless it runs already: counters
 * start from zero (the loops' counts are of the old one's serial), users get their variant
 * of it, lists are ranked again. The running experiment is never changed in place: ranks
 * read it (engine.h), so a new one replaces it. */
static void set_experiment(rc_settings_t *st, const rc_experiment_t *x, const char *spec)
{
    if (strcmp(st->experiment_spec, spec) == 0)
        return;
    rc_experiment_t *nx = malloc(sizeof(*nx));
    if (nx == NULL) {
        RC_WARN("node", "experiment not set: out of memory", NULL);
        return;
    }
    *nx = *x;
    rc_experiment_t *old = run_experiment(st, nx);
    snprintf(st->experiment_spec, sizeof(st->experiment_spec), "%s", spec);
    /* Every list's blend moves to the new experiment's variants: then nothing points into
     * the old one (with one loop; with several, after every loop did so and both copies
     * of the engine dropped it). */
    uint32_t pushed = rc_sessions_settings_changed(st->sessions);
    if (st->retire != NULL)
        st->retire(st->ctx, old);
    else
        free(old);
    RC_INFO("node", "experiment set", "name=\"%s\" variants=%u lists_pushed=%u",
            x->name[0] ? x->name : "none", x->n_variants, pushed);
}

/* Replaces the business rules with `r` (moved in; its canonical JSON is `text`) unless the
 * same rules hold already: resolved against the catalog, every list ranked again. */
static void set_rules(rc_settings_t *st, rc_rules_t *r, const char *text)
{
    if (st->rules_text != NULL && strcmp(st->rules_text, text) == 0) {
        rc_rules_free(r);
        return;
    }
    char *copy = strdup(text);
    if (copy == NULL) {
        rc_rules_free(r);
        return;
    }
    free(st->rules_text);
    st->rules_text = copy;
    uint32_t n_boosts = r->n_boosts, n_pins = r->n_pins;
    /* As a record of their canonical JSON (parsed again where applied: the same rules). */
    rc_engine_op_t op;
    if (rc_engine_op_rules(&op, text) == 0)
        rc_sessions_submit(st->sessions, &op);
    rc_sessions_sync(st->sessions);
    rc_rules_free(r);
    uint32_t pushed = rc_sessions_settings_changed(st->sessions);
    RC_INFO("node", "rules set", "boosts=%u pins=%u lists_pushed=%u", n_boosts, n_pins, pushed);
}

void rc_settings_apply(rc_settings_t *st, const rc_bus_msg_t *m)
{
    char err[200];
    char *spec = strndup(m->spec.p ? m->spec.p : "", m->spec.n);
    if (spec == NULL)
        return;
    int rc = RC_EINVAL;
    if (m->setting.n == 10 && memcmp(m->setting.p, "experiment", 10) == 0) {
        rc_experiment_t x;
        if ((rc = rc_experiment_parse(&x, spec, blend(st), err, sizeof(err))) == 0)
            set_experiment(st, &x, spec);
    } else if (m->setting.n == 5 && memcmp(m->setting.p, "rules", 5) == 0) {
        json_error_t jerr;
        json_t *j = json_loads(spec, 0, &jerr);
        rc_rules_t r = {0};
        if (j != NULL && (rc = rc_rules_from_json(&r, j, err, sizeof(err))) == 0)
            set_rules(st, &r, spec);
        else if (j == NULL)
            snprintf(err, sizeof(err), "%s", jerr.text);
        json_decref(j);
    } else {
        snprintf(err, sizeof(err), "unknown setting");
    }
    if (rc != 0)
        RC_WARN("node", "setting from the bus not applied", "setting=\"%.*s\" error=\"%s\"",
                (int)m->setting.n, m->setting.p, err);
    free(spec);
}

/* A setting applied here goes to the other nodes: 200, or, when the bus refuses it, the 503
 * answer written to `out` that asks the client to send it again (settings are idempotent). */
static unsigned publish(rc_settings_t *st, const char *name, const char *spec, rc_wbuf_t *out)
{
    rc_bus_msg_t m = {.kind = RC_BUS_SETTING,
                      .origin_node = {st->node_id, (uint32_t)strlen(st->node_id)},
                      .setting = {name, (uint32_t)strlen(name)},
                      .spec = {spec, (uint32_t)strlen(spec)}};
    if (rc_bus_publish(st->bus, &m, NULL, NULL) == 0)
        return 200;
    return rc_api_error(out, 503,
                        "applied on this node, but not published to the cluster; retry the "
                        "request");
}

unsigned rc_settings_experiment_get(rc_settings_t *st, rc_wbuf_t *out)
{
    rc_experiment_counts_t counts = {0};
    if (st->counts != NULL)
        st->counts(st->ctx, st->experiment, &counts);
    else
        rc_sessions_experiment_counts(st->sessions, st->experiment, &counts);
    return rc_api_answer(out, 200, rc_experiment_api_describe(st->experiment, &counts));
}

unsigned rc_settings_experiment_post(rc_settings_t *st, const char *route, json_t *body,
                                     rc_wbuf_t *out)
{
    char spec[RC_EXPERIMENT_SPEC_MAX], err[200];
    rc_experiment_t x;
    if (rc_experiment_api_spec(route, body, blend(st), &x, spec, sizeof(spec), err, sizeof(err)) !=
        0)
        return rc_api_error(out, 400, err);
    set_experiment(st, &x, spec);
    unsigned status = publish(st, "experiment", spec, out);
    return status != 200 ? status : rc_settings_experiment_get(st, out);
}

unsigned rc_settings_rules_get(rc_settings_t *st, rc_wbuf_t *out)
{
    rc_wbuf_reset(out);
    rc_wbuf_puts(out, st->rules_text ? st->rules_text : "{\"boosts\":[],\"pins\":[]}");
    rc_wbuf_putc(out, '\n');
    return 200;
}

unsigned rc_settings_rules_post(rc_settings_t *st, json_t *body, rc_wbuf_t *out)
{
    char err[200];
    rc_rules_t r = {0};
    if (rc_rules_from_json(&r, body, err, sizeof(err)) != 0)
        return rc_api_error(out, 400, err);
    char *text = rc_rules_to_json(&r);
    if (text == NULL) {
        rc_rules_free(&r);
        return rc_api_error(out, 500, "out of memory");
    }
    set_rules(st, &r, text);
    unsigned status = publish(st, "rules", text, out);
    if (status == 200) {
        rc_wbuf_reset(out);
        rc_wbuf_puts(out, text);
        rc_wbuf_putc(out, '\n');
    }
    free(text);
    return status;
}
