/* SPDX-License-Identifier: Apache-2.0 */
/* Several event loops in one process (--loops N, docs/engine.md "Loops in one node"): each
 * loop is a node of its own (a thread, a uv loop, a gateway on the shared port, sessions),
 * and they share what a process has once: the models (engine/shared.h: one writer, every
 * loop a reader), the in-memory profiles, the directory of which loops hold a user's
 * sessions, the settings. A connection is served whole by the loop that accepted it; what
 * another loop must hear goes to its mailbox:
 *  - an event, to the loops that hold another session of its user (they move that
 *    session's lists; the models learned it once, from the loop that took it);
 *  - a session starting beside one of its user on another loop: the question, and that
 *    session's state as the answer;
 *  - erasures and application pushes, to every loop;
 *  - a change of the catalog or of the settings, after the writer published it (every
 *    loop ranks its lists again, and lets go of the experiment it replaced);
 *  - drain, stop and reload, from the first loop, which takes the signals.
 * A loop that stops tells every loop; a loop closes its mailbox when it heard all of them
 * stop, since none posts after its own word. */
#include "node_int.h"
#include "engine/shared.h"
#include "session/directory.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef enum {
    MAIL_BUS = 1,  /* a bus message another loop published (encoded) */
    MAIL_CATALOG,  /* the catalog changed */
    MAIL_SETTINGS, /* the settings changed; `retired` the experiment they replaced, or NULL */
    MAIL_DRAIN,
    MAIL_STOP_NOW,
    MAIL_RELOAD,
    MAIL_STATE_ASK, /* a session of user `pseudo` starts on loop `from` */
    MAIL_STATE,     /* the answer: `found`, then a peer_state_t in `data` */
    MAIL_STOPPED    /* a loop stopped: it posts nothing more */
} mail_kind_t;

/* An experiment replaced while other loops' lists may still blend with it: freed by the
 * last of them to rank again. */
typedef struct retired {
    rc_experiment_t *x;
    atomic_uint refs;
} retired_t;

typedef struct mail {
    rc_mail_t link;
    mail_kind_t kind;
    retired_t *retired;
    char pseudo[RC_PSEUDO_LEN + 1]; /* MAIL_STATE_ASK, MAIL_STATE */
    uint32_t from;
    bool found;
    uint32_t len;
    unsigned char data[]; /* MAIL_BUS: the message, rc_bus_msg_encode()'s */
} mail_t;

/* A user's session on one loop, for a session of the user starting on another. */
typedef struct peer_state {
    rc_user_state_t state;
    uint32_t n_ids;
    uint64_t ids[RC_DEDUPE_MAX];
} peer_state_t;

struct rc_node_group {
    uint32_t n;      /* loops, the first included */
    rc_config_t cfg; /* the other loops': the first loop's port, now bound */
    rc_node_t *nodes[RC_DIRECTORY_LOOPS_MAX];
    pthread_t threads[RC_DIRECTORY_LOOPS_MAX];
    uint32_t n_threads;
    rc_shared_t *shared;
    rc_directory_t *directory;
    unsigned char pseudo_key[32];  /* without --pseudonym-key: one for every loop */
    pthread_mutex_t settings_lock; /* the first loop's settings, for any loop's call */
    rc_node_t *caller;             /* the loop holding settings_lock */
    pthread_mutex_t counts_lock;   /* counts[]: a leaf lock, held for a copy */
    rc_experiment_counts_t counts[RC_DIRECTORY_LOOPS_MAX];
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    uint32_t reported; /* other loops that finished building, or failed to */
    bool go, aborted;  /* the first loop's word once all reported */
    char err[320];     /* the first failure: "loop N: " and a loop's message */
};

typedef struct {
    rc_node_group_t *g;
    uint32_t index;
} loop_arg_t;

static mail_t *mail_new(mail_kind_t kind, size_t len)
{
    mail_t *m = calloc(1, sizeof(*m) + len);
    if (m != NULL) {
        m->kind = kind;
        m->len = (uint32_t)len;
    }
    return m;
}

static void post(rc_node_t *to, mail_t *m)
{
    rc_mailbox_post(&to->mailbox, &m->link);
}

/* One loop is done with a retired experiment: the last frees it. */
static void release(retired_t *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1) {
        free(r->x);
        free(r);
    }
}

/* Posts a mail of `kind` to every other loop; out of memory, a loop misses it (logged). */
static void tell_others(rc_node_t *n, mail_kind_t kind, retired_t *r)
{
    rc_node_group_t *g = n->group;
    for (uint32_t i = 0; i < g->n; i++) {
        if (i == n->loop_index)
            continue;
        mail_t *m = mail_new(kind, 0);
        if (m == NULL) {
            RC_WARN("node", "a loop missed a word: out of memory", "kind=%d loop=%u", (int)kind, i);
            release(r);
            continue;
        }
        m->retired = r;
        post(g->nodes[i], m);
    }
}

/* What the loop's bus took that other loops need: events to the loops holding another
 * session of the user (the directory), erasures and pushes to every loop. Encoded once,
 * copied per loop. */
static void relay(void *ctx, const rc_bus_msg_t *m)
{
    rc_node_t *n = ctx;
    rc_node_group_t *g = n->group;
    uint64_t to;
    if (m->kind == RC_BUS_EVENT || (m->kind == RC_BUS_PUSH && m->user.n > 0))
        to = rc_directory_loops(g->directory, m->user.p, m->user.n);
    else if (m->kind == RC_BUS_ERASE || m->kind == RC_BUS_PUSH)
        to = UINT64_MAX;
    else
        return;
    to &= ~(1ull << n->loop_index);
    if (g->n < 64)
        to &= (1ull << g->n) - 1;
    if (to == 0)
        return;
    rc_wbuf_reset(&n->scratch);
    if (rc_bus_msg_encode(m, &n->scratch) != 0) {
        RC_WARN("node", "not relayed to the other loops", "kind=%d", (int)m->kind);
        return;
    }
    for (uint32_t i = 0; to != 0; i++, to >>= 1) {
        if ((to & 1) == 0)
            continue;
        mail_t *mail = mail_new(MAIL_BUS, n->scratch.len);
        if (mail == NULL) {
            RC_WARN("node", "not relayed to a loop: out of memory", "loop=%u", i);
            continue;
        }
        memcpy(mail->data, rc_wbuf_data(&n->scratch), n->scratch.len);
        post(g->nodes[i], mail);
    }
}

/* The sessions' hook: a session of `pseudo` starts here while loops `peers` hold one; the
 * first of them is asked for its state. */
static void ask_peer(void *ctx, const char *pseudo, uint64_t peers)
{
    rc_node_t *n = ctx;
    uint32_t to = (uint32_t)__builtin_ctzll(peers);
    mail_t *m = mail_new(MAIL_STATE_ASK, 0);
    if (m == NULL) {
        rc_sessions_peer_answer(n->sessions, (rc_str_t){pseudo, RC_PSEUDO_LEN}, NULL, NULL, 0);
        return;
    }
    memcpy(m->pseudo, pseudo, RC_PSEUDO_LEN);
    m->from = n->loop_index;
    post(n->group->nodes[to], m);
}

/* Answers an ask (always: the asking session's messages wait for it). */
static void answer_peer(rc_node_t *n, const mail_t *ask)
{
    mail_t *m = mail_new(MAIL_STATE, sizeof(peer_state_t));
    rc_str_t pseudo = {ask->pseudo, RC_PSEUDO_LEN};
    if (m == NULL) {
        RC_WARN("node", "a session's state not handed over: out of memory", NULL);
        m = mail_new(MAIL_STATE, 0);
        if (m == NULL)
            return; /* the asking session stops waiting after a second (PEER_WAIT_US) */
    } else {
        peer_state_t *p = (peer_state_t *)m->data;
        m->found = rc_sessions_peer_state(n->sessions, pseudo, &p->state, p->ids, &p->n_ids);
    }
    memcpy(m->pseudo, ask->pseudo, RC_PSEUDO_LEN);
    post(n->group->nodes[ask->from], m);
}

static void take_answer(rc_node_t *n, const mail_t *m)
{
    const peer_state_t *p = (const peer_state_t *)m->data;
    rc_str_t pseudo = {m->pseudo, RC_PSEUDO_LEN};
    if (m->found)
        rc_sessions_peer_answer(n->sessions, pseudo, &p->state, p->ids, p->n_ids);
    else
        rc_sessions_peer_answer(n->sessions, pseudo, NULL, NULL, 0);
}

static void deliver_bus(rc_node_t *n, const mail_t *mail)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return;
    rc_bus_msg_t m;
    if (rc_bus_msg_decode(mail->data, mail->len, &zone, &m) == 0) {
        m.sibling = true;
        rc_node_bus_deliver(n, &m);
    }
    msgpack_zone_destroy(&zone);
}

static void on_mail(void *ctx, rc_mail_t *link)
{
    rc_node_t *n = ctx;
    mail_t *m = (mail_t *)link;
    bool serving = !n->stopped;
    switch (m->kind) {
    case MAIL_BUS:
        if (serving)
            deliver_bus(n, m);
        break;
    case MAIL_CATALOG:
        if (serving)
            rc_sessions_catalog_changed(n->sessions);
        break;
    case MAIL_SETTINGS:
        if (serving)
            rc_sessions_settings_changed(n->sessions);
        release(m->retired); /* this loop's lists have left it */
        break;
    case MAIL_DRAIN:
        if (serving)
            rc_node_drain(n, 0);
        break;
    case MAIL_STOP_NOW:
        rc_node_stop(n);
        break;
    case MAIL_RELOAD:
        if (serving)
            rc_node_reload(n);
        break;
    case MAIL_STATE_ASK:
        if (serving) /* a loop that stopped posts nothing: the process is stopping */
            answer_peer(n, m);
        break;
    case MAIL_STATE:
        if (serving)
            take_answer(n, m);
        break;
    case MAIL_STOPPED:
        /* Each loop's word is its last post: when every loop's has come, none is left. */
        if (++n->loops_stopped == n->group->n) {
            uv_close((uv_handle_t *)&n->before_poll, NULL);
            rc_mailbox_close(&n->mailbox);
        }
        break;
    }
    free(m);
}

/* Publishes the loop's metrics and experiment counts for the other loops' readers (a copy
 * under a lock each). */
static void publish(rc_node_t *n)
{
    rc_node_group_t *g = n->group;
    rc_metrics_publish();
    rc_experiment_counts_t mine;
    rc_sessions_experiment_mine(n->sessions, &mine);
    pthread_mutex_lock(&g->counts_lock);
    g->counts[n->loop_index] = mine;
    pthread_mutex_unlock(&g->counts_lock);
}

/* Before the loop waits for I/O: ends its read section (the writer never waits on a loop
 * that sleeps), and publishes what it counted: whenever it is about to sleep, so that what
 * another loop's /metrics reads is as of this loop's last turn, and at most every
 * PUBLISH_BUSY_US while it is busy. */
#define PUBLISH_BUSY_US 1000
static void on_before_poll(uv_prepare_t *h)
{
    rc_node_t *n = h->data;
    rc_sessions_read_end(n->sessions);
    uint64_t now = rc_mono_us();
    if (uv_backend_timeout(&n->loop) != 0 || now - n->published_us >= PUBLISH_BUSY_US) {
        n->published_us = now;
        publish(n);
    }
}

int rc_node_group_new(rc_node_t *first, rc_engine_t *e, rc_engine_t *e2, char *err, size_t errlen)
{
    rc_node_group_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        rc_engine_free(e);
        rc_engine_free(e2);
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    g->n = (uint32_t)first->cfg->loops;
    g->cfg = *first->cfg;
    /* What the process holds for Redis while it is away, split between the loops' stores. */
    g->cfg.redis_buffer_bytes = first->cfg->redis_buffer_bytes / g->n;
    g->nodes[0] = first;
    pthread_mutex_init(&g->settings_lock, NULL);
    pthread_mutex_init(&g->counts_lock, NULL);
    pthread_mutex_init(&g->start_lock, NULL);
    pthread_cond_init(&g->start_cond, NULL);
    first->group = g;
    g->shared = rc_shared_new(e, e2, g->n);
    g->directory = rc_directory_new();
    if (g->shared == NULL) {
        rc_engine_free(e);
        rc_engine_free(e2);
    }
    if (g->shared == NULL || g->directory == NULL ||
        getrandom(g->pseudo_key, sizeof(g->pseudo_key), 0) != sizeof(g->pseudo_key)) {
        snprintf(err, errlen, "cannot share the models between loops (out of memory)");
        return RC_ENOMEM;
    }
    return 0;
}

int rc_node_group_join(rc_node_t *n, char *err, size_t errlen)
{
    rc_node_group_t *g = n->group;
    if (rc_sessions_share_engine(n->sessions, g->shared, g->directory, n->loop_index) != 0 ||
        rc_mailbox_init(&n->mailbox, &n->loop, on_mail, n) != 0) {
        snprintf(err, errlen, "loop %u cannot join the others", n->loop_index);
        return RC_EIO;
    }
    if (n->cfg->pseudonym_key[0] == '\0')
        rc_sessions_set_pseudonym_key(n->sessions, g->pseudo_key, sizeof(g->pseudo_key));
    rc_bus_local_set_relay(n->bus, relay, n);
    rc_sessions_set_peer_hook(n->sessions, ask_peer, n);
    uv_prepare_init(&n->loop, &n->before_poll);
    n->before_poll.data = n;
    uv_prepare_start(&n->before_poll, on_before_poll);
    n->mailbox_ready = true;
    return 0;
}

rc_node_t *rc_node_group_loop(const rc_node_group_t *g, uint32_t i)
{
    return g->nodes[i];
}

const rc_config_t *rc_node_group_config(const rc_node_group_t *g)
{
    return &g->cfg;
}

rc_node_t *rc_node_settings_caller(const rc_node_group_t *g)
{
    return g->caller;
}

static void *loop_main(void *arg)
{
    loop_arg_t a = *(loop_arg_t *)arg;
    free(arg);
    char name[16];
    snprintf(name, sizeof(name), "rc-loop%u", a.index);
    pthread_setname_np(pthread_self(), name);
    rc_node_group_t *g = a.g;
    rc_metrics_t *metrics = calloc(1, sizeof(*metrics));
    if (metrics != NULL && rc_metrics_attach(metrics) != 0) {
        free(metrics);
        metrics = NULL;
    }
    char err[256] = "out of memory";
    rc_node_t *n = metrics != NULL ? rc_node_loop_new(g, a.index, err, sizeof(err)) : NULL;
    pthread_mutex_lock(&g->start_lock);
    g->nodes[a.index] = n;
    if (n == NULL && g->err[0] == '\0')
        snprintf(g->err, sizeof(g->err), "loop %u: %s", a.index, err);
    g->reported++;
    pthread_cond_broadcast(&g->start_cond);
    while (!g->go)
        pthread_cond_wait(&g->start_cond, &g->start_lock);
    bool aborted = g->aborted;
    pthread_mutex_unlock(&g->start_lock);
    if (n != NULL && !aborted)
        rc_node_run(n);
    rc_node_free(n);
    if (metrics != NULL) {
        rc_metrics_detach(metrics);
        free(metrics);
    }
    return NULL;
}

int rc_node_group_start(rc_node_t *first, char *err, size_t errlen)
{
    rc_node_group_t *g = first->group;
    g->cfg.port = rc_gateway_port(first->gateway);
    for (uint32_t i = 1; i < g->n; i++) {
        loop_arg_t *a = malloc(sizeof(*a));
        if (a == NULL)
            break;
        *a = (loop_arg_t){g, i};
        if (pthread_create(&g->threads[g->n_threads], NULL, loop_main, a) != 0) {
            free(a);
            break;
        }
        g->n_threads++;
    }
    pthread_mutex_lock(&g->start_lock);
    while (g->reported < g->n_threads)
        pthread_cond_wait(&g->start_cond, &g->start_lock);
    g->aborted = g->n_threads != g->n - 1 || g->err[0] != '\0';
    g->go = true;
    pthread_cond_broadcast(&g->start_cond);
    pthread_mutex_unlock(&g->start_lock);
    if (!g->aborted)
        return 0;
    snprintf(err, errlen, "%s", g->err[0] ? g->err : "cannot start the loops' threads");
    return RC_EIO;
}

rc_settings_t *rc_node_settings_begin(rc_node_t *n)
{
    rc_node_group_t *g = n->group;
    if (g == NULL)
        return &n->settings;
    /* No read section while waiting: the holder may be waiting for the writer, which waits
     * for sections to end. */
    rc_sessions_read_end(n->sessions);
    pthread_mutex_lock(&g->settings_lock);
    rc_settings_t *st = &g->nodes[0]->settings;
    st->sessions = n->sessions;
    g->caller = n;
    n->retired = NULL;
    return st;
}

void rc_node_settings_end(rc_node_t *n, bool changed)
{
    rc_node_group_t *g = n->group;
    if (g == NULL)
        return;
    rc_settings_t *st = &g->nodes[0]->settings;
    st->sessions = g->nodes[0]->sessions;
    retired_t *r = NULL;
    if (n->retired != NULL && (r = malloc(sizeof(*r))) == NULL) {
        /* It cannot be known when every loop has left it: kept until the process ends. */
        RC_WARN("node", "a replaced experiment is kept: out of memory", NULL);
    } else if (r != NULL) {
        r->x = n->retired;
        atomic_init(&r->refs, g->n - 1);
    }
    n->retired = NULL;
    pthread_mutex_unlock(&g->settings_lock);
    if (changed || r != NULL)
        tell_others(n, MAIL_SETTINGS, r);
}

/* The settings' retire hook with several loops: the calling loop's lists have left `old`
 * (rc_sessions_settings_changed ran); the others' leave it when they hear of the change. */
void rc_node_retire_experiment(void *ctx, rc_experiment_t *old)
{
    rc_node_t *first = ctx;
    first->group->caller->retired = old;
}

void rc_node_group_catalog_changed(rc_node_t *n)
{
    if (n->group != NULL)
        tell_others(n, MAIL_CATALOG, NULL);
}

void rc_node_experiment_counts(rc_node_t *n, const rc_experiment_t *x, rc_experiment_counts_t *sum)
{
    rc_sessions_experiment_counts(n->sessions, x, sum);
    rc_node_group_t *g = n->group;
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->counts_lock);
    for (uint32_t i = 0; i < g->n; i++)
        if (i != n->loop_index)
            rc_experiment_counts_add(sum, x, &g->counts[i]);
    pthread_mutex_unlock(&g->counts_lock);
}

void rc_node_group_render(rc_node_t *n, rc_wbuf_t *o)
{
    rc_node_group_t *g = n->group;
    if (g == NULL)
        return;
    rc_shared_stats_t st;
    rc_shared_stats(g->shared, &st);
    const struct {
        const char *name, *type, *help;
        double v;
    } rows[] = {
        {"rankcast_loops", "gauge", "Event loops (threads) of this process (--loops).", g->n},
        {"rankcast_models_ops_total", "counter",
         "Changes the models' writer applied (to both copies).", (double)st.ops},
        {"rankcast_models_ops_refused_total", "counter",
         "Changes the models refused where applied (a full catalog, say).", (double)st.ops_failed},
        {"rankcast_models_publishes_total", "counter", "Batches the writer published.",
         (double)st.batches},
        {"rankcast_models_apply_seconds_total", "counter",
         "The writer's time applying changes, both copies.", (double)st.apply_ns / 1e9},
        {"rankcast_models_apply_event_seconds_total", "counter", "Of which events' model halves.",
         (double)st.apply_ns_by_type[RC_OP_EVENT] / 1e9},
        {"rankcast_models_wait_seconds_total", "counter",
         "The writer's time waiting for loops to leave the copy it changes next.",
         (double)st.wait_ns / 1e9},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        rc_wbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %.9g\n", rows[i].name, rows[i].help,
                       rows[i].name, rows[i].type, rows[i].name, rows[i].v);
}

void rc_node_group_drain(rc_node_t *n, bool now)
{
    if (n->group != NULL)
        tell_others(n, now ? MAIL_STOP_NOW : MAIL_DRAIN, NULL);
}

void rc_node_group_reload(rc_node_t *n)
{
    if (n->group != NULL)
        tell_others(n, MAIL_RELOAD, NULL);
}

void rc_node_group_stopped(rc_node_t *n)
{
    rc_node_group_t *g = n->group;
    if (g == NULL || !n->mailbox_ready)
        return;
    if (!g->go || g->aborted) { /* no loop served: none posts */
        uv_close((uv_handle_t *)&n->before_poll, NULL);
        rc_mailbox_close(&n->mailbox);
        return;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        mail_t *m = mail_new(MAIL_STOPPED, 0);
        if (m == NULL)
            abort(); /* a loop would wait for this word forever */
        post(g->nodes[i], m);
    }
}

void rc_node_group_finish(rc_node_t *first)
{
    rc_node_group_t *g = first->group;
    if (g == NULL)
        return;
    for (uint32_t i = 0; i < g->n_threads; i++)
        pthread_join(g->threads[i], NULL);
    rc_shared_free(g->shared);
    rc_directory_free(g->directory);
    pthread_mutex_destroy(&g->settings_lock);
    pthread_mutex_destroy(&g->counts_lock);
    pthread_mutex_destroy(&g->start_lock);
    pthread_cond_destroy(&g->start_cond);
    free(g);
    first->group = NULL;
}
