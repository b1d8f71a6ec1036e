/* SPDX-License-Identifier: Apache-2.0 */
/* The left-right engine (shared.h): a lock-free queue of ops from any thread, one writer
 * thread applying them to two copies in turn, and per-reader counters telling the writer
 * when the copy it left is free. */
#include "engine/shared.h"
#include "util/mpsc.h"
#include "util/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Ops applied per publish at most: a long queue is published in steps, so readers see
 * learning a batch at a time rather than after the whole backlog. */
#define BATCH_MAX 1024

/* How long the writer sleeps after a publish before it waits for the readers that may still
 * be on the copy it left. A section lasts one client message (tens of µs), so by then they
 * have left and the wait finds nothing: no spinning on a core, no yield storm; and the ops
 * submitted meanwhile make the next batch, so at a steady rate the writer wakes about once
 * per LINGER_NS rather than once per op. Learning is seen as soon as it is published (the
 * sleep comes after the publish); it delays the second copy, rc_shared_flush() and the
 * publish of the next batch by up to this much. */
#define LINGER_NS 500000

/* A queued op, or a flush marker (flush != NULL). */
typedef struct node {
    rc_mpsc_link_t link; /* first: the queue's links are nodes */
    rc_engine_op_t op;
    bool *flush; /* set (under the mutex) once everything before it is applied */
} node_t;

/* One reader's counter, alone on its cache line so readers do not slow each other down.
 * Odd while the reader is in a section. */
struct rc_shared_reader {
    _Alignas(64) atomic_uint_fast64_t seq;
    atomic_bool used;
    rc_shared_t *owner;
};

struct rc_shared {
    rc_engine_t *copy[2];
    /* The copy read sections begin on. Every access is sequentially consistent: the
     * writer's store of it and its loads of the readers' counters, the readers' increments
     * and their loads of it, form the store-load pairs the protocol rests on (a reader
     * that counted itself in before the publish is waited for; one that did so after it
     * sees the new copy). */
    _Alignas(64) atomic_int published;
    rc_mpsc_t queue;    /* pushed by producers (on a cache line of its own) */
    pthread_mutex_t mu; /* the writer's sleep and the flushes' wake-up */
    pthread_cond_t work, flushed;
    bool stopping; /* under mu */
    pthread_t writer;
    uint32_t max_readers;
    rc_shared_reader_t *readers;
    atomic_uint_fast64_t ops, ops_failed, batches, apply_ns, wait_ns;
    atomic_uint_fast64_t ops_by_type[RC_OP_TYPE_COUNT], apply_ns_by_type[RC_OP_TYPE_COUNT];
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static node_t *next_of(const node_t *n)
{
    return (node_t *)n->link.next;
}

static void push(rc_shared_t *s, node_t *n)
{
    /* The writer sleeps only when it found the queue empty; waking it once per empty-to-full
     * turn is enough (it takes the whole queue when it wakes). */
    if (rc_mpsc_push(&s->queue, &n->link)) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
    }
}

int rc_shared_submit(rc_shared_t *s, rc_engine_op_t *op)
{
    node_t *n = malloc(sizeof(*n));
    if (n == NULL)
        return RC_ENOMEM;
    n->op = *op;
    n->flush = NULL;
    memset(op, 0, sizeof(*op)); /* moved: the writer frees it */
    push(s, n);
    return 0;
}

int rc_shared_flush(rc_shared_t *s)
{
    bool done = false;
    node_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return RC_ENOMEM;
    n->flush = &done;
    push(s, n);
    pthread_mutex_lock(&s->mu);
    while (!done)
        pthread_cond_wait(&s->flushed, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

rc_shared_reader_t *rc_shared_reader_register(rc_shared_t *s)
{
    for (uint32_t i = 0; i < s->max_readers; i++) {
        bool expected = false;
        if (atomic_compare_exchange_strong(&s->readers[i].used, &expected, true))
            return &s->readers[i];
    }
    return NULL;
}

void rc_shared_reader_unregister(rc_shared_reader_t *r)
{
    if (r != NULL)
        atomic_store(&r->used, false);
}

const rc_engine_t *rc_shared_read_begin(rc_shared_reader_t *r)
{
    atomic_fetch_add(&r->seq, 1); /* seq_cst: before the load below, for the writer */
    return r->owner->copy[atomic_load(&r->owner->published)];
}

void rc_shared_read_end(rc_shared_reader_t *r)
{
    /* Release: what the section read happens before the writer's next change to its copy. */
    atomic_fetch_add_explicit(&r->seq, 1, memory_order_release);
}

/* Waits until no reader is in a section begun before the publish just made. A reader whose
 * counter is odd now may be on the old copy: its counter moving on means it left (a section
 * it begins afterwards sees the new copy). */
static void wait_for_readers(rc_shared_t *s)
{
#ifdef RC_SHARED_SKIP_READER_WAIT
    /* Breaks the protocol on purpose (tests/unit/engine/test_shared.c's check that the
     * ThreadSanitizer build reports the races); never in a real build. */
    (void)s;
#else
    for (uint32_t i = 0; i < s->max_readers; i++) {
        rc_shared_reader_t *r = &s->readers[i];
        if (!atomic_load(&r->used))
            continue;
        uint_fast64_t seen = atomic_load(&r->seq);
        if ((seen & 1) == 0)
            continue;
        for (uint32_t spins = 0; atomic_load(&r->seq) == seen; spins++)
            if (spins > 64)
                sched_yield(); /* more threads than cores: let the reader finish */
    }
#endif
}

/* How far ahead of the op being applied the writer asks for memory: the list heads and
 * trending lines (stage 0), then the neighbour lists (stage 1). */
#define AHEAD_HEADS 4
#define AHEAD_LISTS 2

static void apply_all(rc_shared_t *s, rc_engine_t *e, node_t *first, node_t *end, bool count)
{
    uint64_t failed = 0, n = 0;
    node_t *heads = first, *lists = first;
    for (int i = 0; i < AHEAD_HEADS && heads != end; i++, heads = next_of(heads))
        rc_engine_op_prefetch(e, &heads->op, 0);
    for (int i = 0; i < AHEAD_LISTS && lists != end; i++, lists = next_of(lists))
        rc_engine_op_prefetch(e, &lists->op, 1);
    for (node_t *it = first; it != end; it = next_of(it)) {
        uint64_t t0 = mono_ns(); /* the prefetches count in the op's time */
        if (heads != end) {
            rc_engine_op_prefetch(e, &heads->op, 0);
            heads = next_of(heads);
        }
        if (lists != end) {
            rc_engine_op_prefetch(e, &lists->op, 1);
            lists = next_of(lists);
        }
        if (it->flush != NULL)
            continue;
        failed += rc_engine_apply(e, &it->op) != 0;
        uint64_t dt = mono_ns() - t0;
        int type = it->op.type < RC_OP_TYPE_COUNT ? it->op.type : RC_OP_NONE;
        atomic_fetch_add_explicit(&s->apply_ns_by_type[type], dt, memory_order_relaxed);
        if (count)
            atomic_fetch_add_explicit(&s->ops_by_type[type], 1, memory_order_relaxed);
        n++;
    }
    if (count) {
        atomic_fetch_add_explicit(&s->ops, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->ops_failed, failed, memory_order_relaxed);
    }
}

/* One batch (first .. end, oldest first): the free copy, publish, wait, the other copy. */
static void apply_batch(rc_shared_t *s, node_t *first, node_t *end)
{
    int pub = atomic_load_explicit(&s->published, memory_order_relaxed); /* only we store */
    uint64_t t0 = mono_ns();
    apply_all(s, s->copy[1 - pub], first, end, true);
    uint64_t t1 = mono_ns();
    atomic_store(&s->published, 1 - pub);
    struct timespec linger = {0, LINGER_NS};
    nanosleep(&linger, NULL);
    wait_for_readers(s);
    uint64_t t2 = mono_ns();
    apply_all(s, s->copy[pub], first, end, false);
    uint64_t t3 = mono_ns();
    atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->apply_ns, (t1 - t0) + (t3 - t2), memory_order_relaxed);
    atomic_fetch_add_explicit(&s->wait_ns, t2 - t1, memory_order_relaxed);
}

/* Frees a finished batch, waking the flushes it carried. */
static void release_batch(rc_shared_t *s, node_t *first, node_t *end)
{
    bool woke = false;
    while (first != end) {
        node_t *next = next_of(first);
        if (first->flush != NULL) {
            pthread_mutex_lock(&s->mu);
            *first->flush = true;
            pthread_mutex_unlock(&s->mu);
            woke = true;
        } else {
            rc_engine_op_clear(&first->op);
        }
        free(first);
        first = next;
    }
    if (woke) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->flushed);
        pthread_mutex_unlock(&s->mu);
    }
}

/* Takes the whole queue, oldest first. */
static node_t *take_all(rc_shared_t *s)
{
    return (node_t *)rc_mpsc_take_all(&s->queue);
}

static void *writer_main(void *arg)
{
    rc_shared_t *s = arg;
    pthread_setname_np(pthread_self(), "rc-writer"); /* for top -H, perf, /proc */
    for (;;) {
        node_t *list = take_all(s);
        if (list == NULL) {
            pthread_mutex_lock(&s->mu);
            bool stop = s->stopping;
            while (!s->stopping && rc_mpsc_empty(&s->queue))
                pthread_cond_wait(&s->work, &s->mu);
            pthread_mutex_unlock(&s->mu);
            if (stop && rc_mpsc_empty(&s->queue))
                return NULL;
            continue;
        }
        while (list != NULL) {
            node_t *end = list;
            uint32_t n_ops = 0;
            for (uint32_t i = 0; end != NULL && i < BATCH_MAX; i++, end = next_of(end))
                n_ops += end->flush == NULL;
            /* Flush markers alone change nothing: no publish, the copies stay where they are. */
            if (n_ops > 0)
                apply_batch(s, list, end);
            release_batch(s, list, end);
            list = end;
        }
    }
}

rc_shared_t *rc_shared_new(rc_engine_t *a, rc_engine_t *b, uint32_t max_readers)
{
    /* Aligned as its members ask (the published index and the queue's head each on a line
     * of their own); calloc() only promises 16 bytes. */
    rc_shared_t *s = aligned_alloc(64, sizeof(*s));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->readers = aligned_alloc(64, sizeof(*s->readers) * (max_readers ? max_readers : 1));
    if (s->readers == NULL) {
        free(s);
        return NULL;
    }
    s->max_readers = max_readers;
    for (uint32_t i = 0; i < max_readers; i++) {
        atomic_init(&s->readers[i].seq, 0);
        atomic_init(&s->readers[i].used, false);
        s->readers[i].owner = s;
    }
    s->copy[0] = a;
    s->copy[1] = b;
    atomic_init(&s->published, 0);
    rc_mpsc_init(&s->queue);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->flushed, NULL);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->flushed);
        free(s->readers);
        free(s);
        return NULL;
    }
    return s;
}

void rc_shared_free(rc_shared_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->flushed);
    rc_engine_free(s->copy[0]);
    rc_engine_free(s->copy[1]);
    free(s->readers);
    free(s);
}

void rc_shared_stats(const rc_shared_t *s, rc_shared_stats_t *out)
{
    rc_shared_t *m = (rc_shared_t *)s; /* atomic loads of counters only */
    out->ops = atomic_load_explicit(&m->ops, memory_order_relaxed);
    out->ops_failed = atomic_load_explicit(&m->ops_failed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&m->batches, memory_order_relaxed);
    out->apply_ns = atomic_load_explicit(&m->apply_ns, memory_order_relaxed);
    out->wait_ns = atomic_load_explicit(&m->wait_ns, memory_order_relaxed);
    for (int t = 0; t < RC_OP_TYPE_COUNT; t++) {
        out->ops_by_type[t] = atomic_load_explicit(&m->ops_by_type[t], memory_order_relaxed);
        out->apply_ns_by_type[t] =
            atomic_load_explicit(&m->apply_ns_by_type[t], memory_order_relaxed);
    }
}

const rc_engine_t *rc_shared_copy(const rc_shared_t *s, int i)
{
    return s->copy[i & 1];
}
