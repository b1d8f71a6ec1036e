/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-eval internals shared by its files: the replayed data set (sessions of events,
 * items as engine catalog indexes) and the baselines' session index. The tool is a single
 * process run from the command line, so allocation failures end it (xrealloc). */
#ifndef RC_EVAL_H
#define RC_EVAL_H

#include "engine/engine_int.h" /* the evaluator tunes the engine's knobs */

#include <stdbool.h>
#include <stdint.h>

#define EVAL_K 20

typedef struct ev {
    uint32_t item; /* engine catalog index */
    uint8_t kind;  /* rc_event_kind_t */
    bool has_value;
    float value;
    int64_t ts_ms;
} ev_t;

typedef struct session {
    bool test;
    int64_t t0_ms, t1_ms; /* first and last event */
    uint32_t off, n;      /* events ev[off .. off + n) */
} session_t;

typedef struct dataset {
    session_t *s;
    uint32_t n, cap;
    ev_t *ev;
    uint64_t n_ev, cap_ev;
    uint64_t dropped_unknown; /* events on items a closed catalog does not know */
    bool keep_repeats;        /* set before loading: no merging of consecutive repeats */
    const char *description;  /* one line for the report */
} dataset_t;

/** Growing realloc that ends the program when memory runs out (the tool only). */
void *xrealloc(void *p, size_t n);

/** Loaders. Each appends sessions to `d` and resolves items through the engine's catalog
 * (open: unknown ids are learned; closed: their events are dropped). Return 0 or -1 with a
 * message on stderr. Sessions end up sorted by first event time (stable). */
int dataset_load_prepared(dataset_t *d, rc_catalog_t *c, const char *path, rc_event_kind_t kind);
int dataset_load_sessionrec(dataset_t *d, rc_catalog_t *c, const char *path, bool test,
                            rc_event_kind_t kind);
int dataset_load_events(dataset_t *d, rc_catalog_t *c, const char *path, double test_fraction,
                        int64_t session_gap_ms);
void dataset_sort(dataset_t *d);
void dataset_free(dataset_t *d);

/* The baselines' memory of completed sessions: items of each session in order, the
 * sessions holding each item (in completion order, so the most recent are last), and
 * per-item session counts kept sorted for POP. */
typedef struct knn_nb {
    double sim;
    uint32_t sid;
} knn_nb_t;

typedef struct knn_index {
    uint32_t n_items;
    /* session-rec's defaults (--targets all): the rankers may return items of the current
     * session, scored like any other, and POP counts events instead of sessions. */
    bool session_items;
    uint32_t *sess_off, *sess_len; /* per session: items[off .. off + len) */
    uint32_t *sess_distinct;       /* distinct items per session */
    double *sess_time_s;           /* last event time */
    uint32_t n_sess, cap_sess;
    uint32_t *items;
    uint64_t n_it, cap_it;
    uint32_t **post; /* per item: sessions containing it, ascending */
    uint32_t *n_post, *cap_post;
    /* POP: order[] sorted by count descending; pos[] its inverse; block_start[c] is the
     * first position holding count c (a count's items are contiguous). */
    uint32_t *count, *order, *pos;
    uint32_t *events; /* per item: events in the pool's sessions (V-STAN's idf) */
    uint32_t *block_start, *block_len;
    uint32_t n_blocks;
    /* Scratch, stamped per call. Scores are doubles: STAN multiplies exponentials of
     * time and position gaps whose products fall below float's range in a year of data. */
    uint32_t *stamp_item, stamp;
    double *acc;
    double *wpos;
    uint32_t *touched;
    uint32_t *stamp_sess, sess_stamp;
    uint32_t *cand;
    uint32_t cap_cand;
    uint32_t *heap_item, *heap_head; /* sampling: a max-heap of posting lists by next sid */
    uint32_t cap_heap;
    uint32_t *lastpos;            /* STAN: last position of an item in the neighbour at hand */
    uint32_t *nb_mark, nb_serial; /* == nb_serial: item seen in the neighbour at hand */
    knn_nb_t *nbs;
    uint32_t cap_nbs;
} knn_index_t;

/** `session_items`: rank the session's own items as session-rec does (see knn_index_t). */
void knn_init(knn_index_t *x, uint32_t n_items, bool session_items);
void knn_free(knn_index_t *x);
/** Remembers a completed session (items in order; repeats kept). */
void knn_add_session(knn_index_t *x, const uint32_t *items, uint32_t n, double time_s);

/* Each ranker writes up to EVAL_K items (best first) and returns how many; none is in `cur`
 * unless the index ranks session items. `cur` is the current session so far, oldest first. */
uint32_t knn_rank_pop(knn_index_t *x, const uint32_t *cur, uint32_t n, uint32_t *out);
uint32_t knn_rank_cooc(knn_index_t *x, const uint32_t *cur, uint32_t n, uint32_t *out);

typedef struct knn_params {
    uint32_t k, sample;
    /* V-SKNN */
    bool vsknn;
    /* STAN (lambda_snh in seconds) */
    bool stan;
    double lambda_spw, lambda_snh_s, lambda_inh;
    /* V-STAN (Ludewig et al. 2021, session-rec's knn/vstan.py): STAN (`stan` is set too) whose
     * neighbours also weigh exp((p - len)/lambda_ipw) by the position p of the newest item
     * of the current session they hold, and whose candidates gain
     * `score * idf * lambda_idf`, idf = log(sessions / the item's events). */
    bool vstan;
    double lambda_ipw, lambda_idf;
} knn_params_t;

uint32_t knn_rank_sknn(knn_index_t *x, const knn_params_t *p, const uint32_t *cur, uint32_t n,
                       double now_s, uint32_t *out);

/* The rule baselines of session-rec (rules.c): per item, the items that followed it in
 * completed sessions, with a weight. */
typedef enum { RULES_MARKOV = 0, RULES_SR, RULES_AR } rules_kind_t;
/* SR's weighting of the distance between two events (sr.py). */
enum { SR_W_LINEAR = 0, SR_W_SAME, SR_W_DIV, SR_W_LOG, SR_W_QUADRATIC, SR_W_COUNT };

typedef struct rules_rule {
    uint32_t dst;
    double w;
} rules_rule_t;

typedef struct rules {
    rules_kind_t kind;
    bool session_items; /* as knn_index_t's: rank the session's own items */
    uint32_t steps;     /* SR */
    int weighting;      /* SR: SR_W_* */
    uint32_t n_items;
    rules_rule_t **succ; /* per source item: its rules, in the order they were made */
    uint32_t *n_succ, *cap_succ;
    uint64_t *keys; /* (src, dst) + 1 -> slots[]: the rule's index in succ[src] */
    uint32_t *slots;
    uint64_t cap, n;
    uint32_t *mark, serial; /* == serial: an item of the current session */
} rules_t;

/** `steps` and `weighting` are SR's; the others ignore them. Free with rules_free(). */
void rules_init(rules_t *r, rules_kind_t kind, uint32_t n_items, bool session_items, uint32_t steps,
                int weighting);
void rules_free(rules_t *r);
/** Learns a completed session (items in order, repeats kept). */
void rules_add_session(rules_t *r, const uint32_t *items, uint32_t n);
/** Up to EVAL_K items following the session's last item, strongest first (ties: the older
 * rule first); without `session_items`, none of `cur`. Returns how many. */
uint32_t rules_rank(rules_t *r, const uint32_t *cur, uint32_t n, uint32_t *out);
/** SR_W_* of a name ("div"), or -1; and back. */
int rules_weighting_parse(const char *name);
const char *rules_weighting_name(int weighting);

#endif
