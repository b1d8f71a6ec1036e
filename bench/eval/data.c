/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-eval's input formats, all turned into sessions of events in time order:
 *   prepared   `split<TAB>ts_ms<TAB>item item ...` (bench/eval/prepare.py);
 *   session-rec TSV with a header naming SessionId, ItemId and Time (seconds), the format of
 *              Ludewig & Jannach's session-rec framework, train and test as two files;
 *   events     rankcast's own JSON lines: {"user","kind","item","ts_ms","value"?,"session"?}.
 * Sessions shorter than two events are dropped (nothing to predict). Consecutive repeats are
 * merged in the first two formats unless the dataset keeps repeats (--targets all). */
#include "eval.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void push_event(dataset_t *d, ev_t e)
{
    if (d->n_ev == d->cap_ev) {
        d->cap_ev = d->cap_ev ? d->cap_ev * 2 : 1 << 16;
        d->ev = xrealloc(d->ev, d->cap_ev * sizeof(*d->ev));
    }
    d->ev[d->n_ev++] = e;
}

/* Closes the session whose events start at `off`: kept when it has two events or more. */
static void close_session(dataset_t *d, uint64_t off, bool test)
{
    uint32_t n = (uint32_t)(d->n_ev - off);
    if (n < 2) {
        d->n_ev = off;
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->s = xrealloc(d->s, d->cap * sizeof(*d->s));
    }
    d->s[d->n++] = (session_t){.test = test,
                               .t0_ms = d->ev[off].ts_ms,
                               .t1_ms = d->ev[off + n - 1].ts_ms,
                               .off = (uint32_t)off,
                               .n = n};
}

static int64_t resolve(dataset_t *d, rc_catalog_t *c, const char *id, size_t len)
{
    int64_t idx = rc_catalog_resolve(c, id, len);
    if (idx < 0)
        d->dropped_unknown++;
    return idx;
}

/* Appends an item event unless it repeats the previous event of the session (same item,
 * same kind): a basket line entered twice, a double click. With `keep_repeats` (session-rec's
 * protocol, --targets all) every event is kept: a re-click is a next event like any other. */
static void push_item(dataset_t *d, uint64_t off, uint32_t item, rc_event_kind_t kind,
                      int64_t ts_ms)
{
    if (!d->keep_repeats && d->n_ev > off && d->ev[d->n_ev - 1].item == item &&
        d->ev[d->n_ev - 1].kind == kind)
        return;
    push_event(d, (ev_t){.item = item, .kind = (uint8_t)kind, .ts_ms = ts_ms});
}

static FILE *open_input(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fprintf(stderr, "rankcast-eval: %s: %s\n", path, strerror(errno));
    return f;
}

int dataset_load_prepared(dataset_t *d, rc_catalog_t *c, const char *path, rc_event_kind_t kind)
{
    FILE *f = open_input(path);
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (tab2 == NULL)
            continue;
        bool test = strncmp(line, "test", 4) == 0;
        int64_t ts = strtoll(tab1 + 1, NULL, 10);
        uint64_t off = d->n_ev;
        for (char *p = tab2 + 1; *p != '\0';) {
            size_t len = strcspn(p, " \n\r");
            int64_t idx = len > 0 ? resolve(d, c, p, len) : -1;
            if (idx >= 0)
                push_item(d, off, (uint32_t)idx, kind, ts);
            p += len;
            if (*p != '\0')
                p++;
        }
        close_session(d, off, test);
    }
    free(line);
    fclose(f);
    return 0;
}

typedef struct row {
    uint32_t key; /* session or user, by first appearance */
    int64_t ts_ms;
    uint64_t no; /* file order, for ties */
    ev_t ev;
    uint32_t sub; /* explicit session id (events format), by first appearance, or 0 */
} row_t;

static int by_key_time(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return (x->no > y->no) - (x->no < y->no);
}

/* Interns a key (session or user id) to a dense number; the strings live in `keys`. */
typedef struct interner {
    rc_strmap_t map;
    char **keys;
    uint32_t n, cap;
} interner_t;

static uint32_t intern(interner_t *in, const char *s, size_t len)
{
    uint64_t v;
    if (rc_strmap_get(&in->map, s, len, &v))
        return (uint32_t)v;
    if (in->n == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 1024;
        in->keys = xrealloc(in->keys, in->cap * sizeof(char *));
    }
    char *copy = strndup(s, len);
    if (copy == NULL || rc_strmap_put(&in->map, copy, len, in->n) != 0) {
        fprintf(stderr, "rankcast-eval: out of memory\n");
        exit(1);
    }
    in->keys[in->n] = copy;
    return in->n++;
}

static void interner_free(interner_t *in)
{
    rc_strmap_free(&in->map);
    for (uint32_t i = 0; i < in->n; i++)
        free(in->keys[i]);
    free(in->keys);
}

static int column(char **names, int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0)
            return i;
    return -1;
}

int dataset_load_sessionrec(dataset_t *d, rc_catalog_t *c, const char *path, bool test,
                            rc_event_kind_t kind)
{
    FILE *f = open_input(path);
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int cs = -1, ci = -1, ct = -1;
    row_t *rows = NULL;
    uint64_t n_rows = 0, cap_rows = 0, no = 0;
    interner_t sessions = {0};
    rc_strmap_init(&sessions.map);
    if (getline(&line, &cap, f) > 0) {
        char *names[32];
        int n = 0;
        for (char *tok = strtok(line, "\t\r\n"); tok && n < 32; tok = strtok(NULL, "\t\r\n"))
            names[n++] = tok;
        cs = column(names, n, "SessionId");
        ci = column(names, n, "ItemId");
        ct = column(names, n, "Time");
    }
    if (cs < 0 || ci < 0 || ct < 0) {
        fprintf(stderr, "rankcast-eval: %s: the header must name SessionId, ItemId, Time\n", path);
        free(line);
        fclose(f);
        interner_free(&sessions);
        return -1;
    }
    while (getline(&line, &cap, f) > 0) {
        char *fields[32];
        int n = 0;
        for (char *p = line; n < 32;) {
            fields[n++] = p;
            char *tab = strchr(p, '\t');
            if (tab == NULL)
                break;
            *tab = '\0';
            p = tab + 1;
        }
        if (n <= cs || n <= ci || n <= ct)
            continue;
        fields[n - 1][strcspn(fields[n - 1], "\r\n")] = '\0';
        int64_t idx = resolve(d, c, fields[ci], strlen(fields[ci]));
        if (idx < 0)
            continue;
        if (n_rows == cap_rows) {
            cap_rows = cap_rows ? cap_rows * 2 : 1 << 16;
            rows = xrealloc(rows, cap_rows * sizeof(*rows));
        }
        int64_t ts = (int64_t)(strtod(fields[ct], NULL) * 1000.0);
        rows[n_rows++] = (row_t){.key = intern(&sessions, fields[cs], strlen(fields[cs])),
                                 .ts_ms = ts,
                                 .no = no++,
                                 .ev = {.item = (uint32_t)idx, .kind = (uint8_t)kind, .ts_ms = ts}};
    }
    qsort(rows, n_rows, sizeof(*rows), by_key_time);
    for (uint64_t i = 0; i < n_rows;) {
        uint64_t off = d->n_ev;
        uint32_t key = rows[i].key;
        for (; i < n_rows && rows[i].key == key; i++)
            push_item(d, off, rows[i].ev.item, kind, rows[i].ts_ms);
        close_session(d, off, test);
    }
    free(rows);
    free(line);
    fclose(f);
    interner_free(&sessions);
    return 0;
}

static bool parse_kind(const char *s, rc_event_kind_t *kind)
{
    for (int k = 0; k < RC_EVENT_KIND_COUNT; k++) {
        if (strcmp(s, rc_event_kind_name(k)) == 0) {
            *kind = (rc_event_kind_t)k;
            return true;
        }
    }
    return false;
}

/* One JSON line into a row; returns false (and counts nothing) for lines that are not an
 * item event. */
static bool parse_event_line(dataset_t *d, rc_catalog_t *c, const char *line, size_t len,
                             interner_t *users, interner_t *subs, row_t *r)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    bool ok = false;
    const char *user = json_string_value(json_object_get(j, "user"));
    const char *item = json_string_value(json_object_get(j, "item"));
    const char *kind = json_string_value(json_object_get(j, "kind"));
    json_t *ts = json_object_get(j, "ts_ms");
    rc_event_kind_t k;
    if (user != NULL && item != NULL && kind != NULL && json_is_number(ts) &&
        parse_kind(kind, &k)) {
        int64_t idx = resolve(d, c, item, strlen(item));
        json_t *v = json_object_get(j, "value");
        const char *sub = json_string_value(json_object_get(j, "session"));
        if (idx >= 0) {
            r->key = intern(users, user, strlen(user));
            r->sub = sub ? intern(subs, sub, strlen(sub)) + 1 : 0;
            r->ts_ms = (int64_t)json_number_value(ts);
            r->ev = (ev_t){.item = (uint32_t)idx,
                           .kind = (uint8_t)k,
                           .has_value = json_is_number(v),
                           .value = json_is_number(v) ? (float)json_number_value(v) : 0,
                           .ts_ms = r->ts_ms};
            ok = true;
        }
    }
    json_decref(j);
    return ok;
}

int dataset_load_events(dataset_t *d, rc_catalog_t *c, const char *path, double test_fraction,
                        int64_t session_gap_ms)
{
    FILE *f = open_input(path);
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    row_t *rows = NULL;
    uint64_t n_rows = 0, cap_rows = 0;
    interner_t users = {0}, subs = {0};
    rc_strmap_init(&users.map);
    rc_strmap_init(&subs.map);
    int64_t t_min = INT64_MAX, t_max = INT64_MIN;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (n_rows == cap_rows) {
            cap_rows = cap_rows ? cap_rows * 2 : 1 << 16;
            rows = xrealloc(rows, cap_rows * sizeof(*rows));
        }
        row_t *r = &rows[n_rows];
        if (!parse_event_line(d, c, line, (size_t)len, &users, &subs, r))
            continue;
        r->no = n_rows++;
        t_min = r->ts_ms < t_min ? r->ts_ms : t_min;
        t_max = r->ts_ms > t_max ? r->ts_ms : t_max;
    }
    qsort(rows, n_rows, sizeof(*rows), by_key_time);
    /* Test: sessions starting in the last `test_fraction` of the time span. */
    int64_t cut = t_max - (int64_t)((double)(t_max - t_min) * test_fraction);
    for (uint64_t i = 0; i < n_rows;) {
        uint64_t off = d->n_ev;
        uint64_t first = i;
        push_event(d, rows[i++].ev);
        while (i < n_rows && rows[i].key == rows[first].key &&
               (rows[i].sub != 0 ? rows[i].sub == rows[i - 1].sub
                                 : rows[i].ts_ms - rows[i - 1].ts_ms <= session_gap_ms))
            push_event(d, rows[i++].ev);
        close_session(d, off, rows[first].ts_ms >= cut);
    }
    free(rows);
    free(line);
    fclose(f);
    interner_free(&users);
    interner_free(&subs);
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const session_t *x = a, *y = b;
    if (x->t0_ms != y->t0_ms)
        return x->t0_ms < y->t0_ms ? -1 : 1;
    /* Train before test at equal times; then load order (the offset), so the sort is
     * stable. */
    if (x->test != y->test)
        return x->test ? 1 : -1;
    return (x->off > y->off) - (x->off < y->off);
}

void dataset_sort(dataset_t *d)
{
    qsort(d->s, d->n, sizeof(*d->s), by_start);
}

void dataset_free(dataset_t *d)
{
    free(d->s);
    free(d->ev);
    memset(d, 0, sizeof(*d));
}
