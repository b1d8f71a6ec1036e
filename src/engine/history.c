/* SPDX-License-Identifier: Apache-2.0 */
/* Learning from history (history.h). Users in session are kept in a pool of slots found by
 * id; a queue ordered by each user's last event time (event time only moves forward, so the
 * queue stays in order) lets the oldest sessions end as soon as they fall silent, so memory
 * follows the users active at once, not every user of the file. */
#include "engine/history.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/list.h"
#include "util/strmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct user_slot {
    char id[RC_ID_MAX + 1];
    uint32_t id_len;
    int64_t last_ms;
    rc_link_t by_time; /* in rc_history.active, oldest first; unlinked while free */
    rc_user_state_t state;
} user_slot_t;

struct rc_history {
    rc_engine_t *engine;
    int64_t gap_ms;
    int64_t newest_ms;
    rc_strmap_t by_id; /* user id -> slot index */
    user_slot_t **slots;
    uint32_t n_slots, cap_slots;
    uint32_t *free; /* indexes of slots whose session ended */
    uint32_t n_free, cap_free;
    rc_link_t active;
    uint64_t sessions;
    bool from_clients; /* rc_history_from_clients() */
};

rc_history_t *rc_history_new(rc_engine_t *e, int64_t session_gap_ms)
{
    rc_history_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->engine = e;
    h->gap_ms = session_gap_ms;
    h->newest_ms = INT64_MIN;
    rc_strmap_init(&h->by_id);
    rc_list_init(&h->active);
    return h;
}

void rc_history_from_clients(rc_history_t *h)
{
    h->from_clients = true;
}

void rc_history_free(rc_history_t *h)
{
    if (h == NULL)
        return;
    for (uint32_t i = 0; i < h->n_slots; i++)
        free(h->slots[i]);
    free(h->slots);
    free(h->free);
    rc_strmap_free(&h->by_id);
    free(h);
}

/* Sessions silent for the gap end: their slots are reused by the users who come next. */
static int end_silent_sessions(rc_history_t *h, int64_t now_ms)
{
    while (!rc_list_empty(&h->active)) {
        user_slot_t *u = RC_CONTAINER_OF(h->active.next, user_slot_t, by_time);
        if (now_ms - u->last_ms <= h->gap_ms)
            break;
        uint64_t index;
        rc_strmap_get(&h->by_id, u->id, u->id_len, &index);
        rc_strmap_del(&h->by_id, u->id, u->id_len);
        rc_list_unlink(&u->by_time);
        if (h->n_free == h->cap_free) {
            uint32_t *p = rc_grow(h->free, &h->cap_free, sizeof(*p), 64);
            if (p == NULL)
                return RC_ENOMEM;
            h->free = p;
        }
        h->free[h->n_free++] = (uint32_t)index;
    }
    return 0;
}

/* The slot of `user`, a new session when they have none. NULL when out of memory. */
static user_slot_t *session_of(rc_history_t *h, const char *user, size_t len)
{
    uint64_t index;
    if (rc_strmap_get(&h->by_id, user, len, &index))
        return h->slots[index];
    bool reused = h->n_free > 0;
    user_slot_t *u;
    if (reused) {
        index = h->free[h->n_free - 1];
        u = h->slots[index];
    } else {
        if (h->n_slots == h->cap_slots) {
            user_slot_t **p = rc_grow(h->slots, &h->cap_slots, sizeof(*p), 256);
            if (p == NULL)
                return NULL;
            h->slots = p;
        }
        if ((u = malloc(sizeof(*u))) == NULL)
            return NULL;
        index = h->n_slots;
    }
    memcpy(u->id, user, len);
    u->id[len] = '\0';
    u->id_len = (uint32_t)len;
    if (rc_strmap_put(&h->by_id, u->id, u->id_len, index) != 0) {
        if (!reused)
            free(u);
        return NULL;
    }
    if (reused)
        h->n_free--;
    else
        h->slots[h->n_slots++] = u;
    rc_list_init(&u->by_time);
    rc_user_state_init(&u->state, RC_DEV_OTHER, 0);
    h->sessions++;
    return u;
}

int rc_history_learn(rc_history_t *h, const char *user, size_t user_len, rc_event_kind_t kind,
                     const char *item, size_t item_len, bool has_value, double value, int64_t ts_ms)
{
    if (user_len == 0 || user_len > RC_ID_MAX || item_len > RC_ID_MAX * 4)
        return RC_EINVAL;
    if (ts_ms > h->newest_ms) {
        h->newest_ms = ts_ms;
        if (end_silent_sessions(h, ts_ms) != 0)
            return RC_ENOMEM;
    }
    int64_t idx = -1;
    rc_str_t query = {NULL, 0};
    if (kind == RC_EV_SEARCH) {
        query = (rc_str_t){item, (uint32_t)item_len};
    } else {
        if (item_len == 0)
            return RC_EINVAL;
        rc_catalog_t *cat = rc_engine_catalog(h->engine);
        if (h->from_clients) {
            /* As live traffic: an unknown id becomes an item only once enough users named it,
             * and until then the event is learned without it. */
            idx = rc_catalog_learn_from(cat, item, item_len,
                                        rc_engine_user_key((rc_str_t){user, (uint32_t)user_len}));
            if (idx == RC_CATALOG_UNTRUSTED)
                idx = -1;
            else if (idx < 0)
                return RC_ENOENT;
        } else if ((idx = rc_catalog_resolve(cat, item, item_len)) < 0) {
            return RC_ENOENT;
        }
    }
    user_slot_t *u = session_of(h, user, user_len);
    if (u == NULL)
        return RC_ENOMEM;
    if (ts_ms > u->last_ms || !rc_list_linked(&u->by_time)) {
        u->last_ms = ts_ms;
        rc_list_unlink(&u->by_time);
        rc_list_push_back(&h->active, &u->by_time);
    }
    rc_engine_observe(h->engine, &u->state, kind, idx, rc_event_weight(kind, has_value, value),
                      query, ts_ms);
    return 0;
}

/* ---- the file ---- */

static int kind_of(const char *s, size_t n)
{
    for (int k = 0; k < RC_EVENT_KIND_COUNT; k++) {
        const char *name = rc_event_kind_name(k);
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return k;
    }
    return -1;
}

static bool parse_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* One line: split at tabs, then learned. Returns 0, or the code of the line's problem. */
static int learn_line(rc_history_t *h, const char *p, size_t n, int64_t *prev_ms,
                      rc_history_stats_t *st)
{
    const char *field[5] = {NULL};
    size_t len[5] = {0};
    int nf = 0;
    const char *end = p + n;
    while (nf < 5) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        field[nf] = p;
        len[nf++] = (size_t)((tab ? tab : end) - p);
        if (tab == NULL)
            break;
        p = tab + 1;
    }
    int64_t ts = 0;
    int kind = nf >= 4 ? kind_of(field[2], len[2]) : -1;
    if (kind < 0 || !parse_i64(field[0], len[0], &ts))
        return RC_EINVAL;
    double value = 0;
    bool has_value = nf == 5 && len[4] > 0;
    if (has_value) {
        char num[32];
        char *stop;
        if (len[4] >= sizeof(num))
            return RC_EINVAL;
        memcpy(num, field[4], len[4]);
        num[len[4]] = '\0';
        value = strtod(num, &stop);
        if (*stop != '\0')
            return RC_EINVAL;
    }
    st->out_of_order += ts < *prev_ms;
    *prev_ms = ts;
    return rc_history_learn(h, field[1], len[1], (rc_event_kind_t)kind, field[3], len[3], has_value,
                            value, ts);
}

int rc_history_import_file(rc_history_t *h, const char *path, rc_history_stats_t *st, char *err,
                           size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return RC_EIO;
    }
    uint64_t sessions_before = h->sessions;
    int64_t prev_ms = INT64_MIN;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        st->lines++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        int lrc = learn_line(h, line, (size_t)n, &prev_ms, st);
        if (lrc == RC_ENOMEM) {
            snprintf(err, errlen, "out of memory at line %llu", (unsigned long long)st->lines);
            rc = RC_ENOMEM;
            break;
        }
        st->learned += lrc == 0;
        st->unknown_item += lrc == RC_ENOENT;
        st->malformed += lrc == RC_EINVAL;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = RC_EIO;
    }
    free(line);
    fclose(f);
    st->sessions += h->sessions - sessions_before;
    return rc;
}

/* ---- snapshots: the sessions' context ---- */

bool rc_history_session_packable(const rc_user_state_t *u)
{
    return u->n_recent > 0;
}

bool rc_history_pack_session(msgpack_packer *pk, const rc_catalog_t *c, const char *user,
                             size_t user_len, const rc_user_state_t *u)
{
    if (!rc_history_session_packable(u))
        return false;
    msgpack_pack_array(pk, 4);
    rc_mp_str(pk, user, user_len);
    msgpack_pack_int(pk, u->device);
    msgpack_pack_int(pk, u->tz_offset_min);
    msgpack_pack_array(pk, u->n_recent);
    for (uint32_t i = 0; i < u->n_recent; i++) {
        const rc_recent_t *r = &u->recent[(u->head + RC_RECENT - u->n_recent + i) % RC_RECENT];
        msgpack_pack_array(pk, 4);
        rc_mp_cstr(pk, rc_item_id(c, r->item));
        msgpack_pack_float(pk, r->w);
        msgpack_pack_uint32(pk, r->at_s);
        msgpack_pack_uint8(pk, r->kind);
    }
    return true;
}

/* One session of a snapshot, to start in time order. */
typedef struct kept {
    const msgpack_object *o;
    int64_t last_ms; /* its newest item's time */
} kept_t;

static int by_last_ms(const void *a, const void *b)
{
    int64_t x = ((const kept_t *)a)->last_ms, y = ((const kept_t *)b)->last_ms;
    return (x > y) - (x < y);
}

static bool session_shape(const msgpack_object *s, int64_t *last_ms)
{
    if (s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size != 4)
        return false;
    const msgpack_object *f = s->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size == 0 ||
        f[0].via.str.size > RC_ID_MAX || f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[1].via.u64 >= RC_DEVICE_COUNT ||
        (f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
         f[2].type != MSGPACK_OBJECT_NEGATIVE_INTEGER) ||
        f[2].via.i64 < -1440 || f[2].via.i64 > 1440 || f[3].type != MSGPACK_OBJECT_ARRAY ||
        f[3].via.array.size > RC_RECENT)
        return false;
    *last_ms = 0;
    for (uint32_t i = 0; i < f[3].via.array.size; i++) {
        const msgpack_object *r = &f[3].via.array.ptr[i];
        double w;
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 4 ||
            r->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            !rc_mp_number(&r->via.array.ptr[1], &w) ||
            r->via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            r->via.array.ptr[2].via.u64 > UINT32_MAX ||
            r->via.array.ptr[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            r->via.array.ptr[3].via.u64 > RC_EVENT_KIND_COUNT)
            return false;
        int64_t at_ms = (int64_t)r->via.array.ptr[2].via.u64 * 1000;
        if (at_ms > *last_ms)
            *last_ms = at_ms;
    }
    return true;
}

int rc_history_snapshot_read(rc_history_t *h, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return RC_EPARSE;
    uint32_t n = o->via.array.size;
    kept_t *k = malloc((n > 0 ? n : 1) * sizeof(*k));
    if (k == NULL)
        return RC_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        k[i].o = &o->via.array.ptr[i];
        if (!session_shape(k[i].o, &k[i].last_ms)) {
            free(k);
            return RC_EPARSE;
        }
    }
    /* The list of active sessions is kept oldest first (end_silent_sessions). */
    qsort(k, n, sizeof(*k), by_last_ms);
    const rc_catalog_t *cat = rc_engine_catalog(h->engine);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *f = k[i].o->via.array.ptr;
        user_slot_t *u = session_of(h, f[0].via.str.ptr, f[0].via.str.size);
        if (u == NULL) {
            free(k);
            return RC_ENOMEM;
        }
        rc_user_state_init(&u->state, (int)f[1].via.u64, (int)f[2].via.i64);
        for (uint32_t j = 0; j < f[3].via.array.size; j++) {
            const msgpack_object *r = f[3].via.array.ptr[j].via.array.ptr;
            double w = 0;
            rc_mp_number(&r[1], &w); /* checked by session_shape() */
            int64_t item = rc_catalog_find(cat, r[0].via.str.ptr, r[0].via.str.size);
            if (item >= 0)
                rc_user_push_recent(&u->state, (uint32_t)item, (float)w, (uint32_t)r[2].via.u64,
                                    (uint8_t)r[3].via.u64);
        }
        u->last_ms = k[i].last_ms;
        rc_list_unlink(&u->by_time);
        rc_list_push_back(&h->active, &u->by_time);
        if (k[i].last_ms > h->newest_ms)
            h->newest_ms = k[i].last_ms;
    }
    free(k);
    return 0;
}
