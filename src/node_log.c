/* SPDX-License-Identifier: Apache-2.0 */
/* What --data-dir keeps for a node (docs/durability.md): the event log read back at start
 * (before listening, or while warming), snapshots of what the node derived from it, the marks
 * that tell a restart which profile changes Redis has, and the files the directory keeps for
 * good (the pseudonym key, the log's id). */
#include "node_int.h"
#include "api/catalog_api.h"
#include "engine/engine_snapshot.h"
#include "engine/experiments.h"
#include "engine/history.h"
#include "log/snapshot.h"
#include "log/snapshot_job.h"
#include "proto/mpack.h"
#include "proto/mpack_read.h"
#include "store/profile_replay.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tells the log how far the profile store has confirmed every change (RC_BUS_MARK), so a
 * restart sends again only the changes after it. Only a store that outlives the process
 * needs it: the in-memory store is filled again from the whole log. */
void rc_node_log_mark(rc_node_t *n)
{
    if (n->log == NULL || n->warming || !n->profiles->ops->shared)
        return;
    uint64_t mark = rc_sessions_profile_mark(n->sessions);
    /* Records below the candidate hold changes numbered up to its sequence number: once the
     * mark passes it, they are all confirmed; then a new candidate is taken. */
    if (n->cand_set && mark > n->cand_seq) {
        n->profile_confirmed = n->cand_record;
        n->cand_set = false;
    }
    if (!n->cand_set) {
        n->cand_record = rc_eventlog_next_record(n->log);
        n->cand_seq = rc_sessions_last_seq(n->sessions);
        n->cand_set = true;
    }
    if (mark <= n->last_mark)
        return;
    rc_bus_msg_t m = {.kind = RC_BUS_MARK,
                      .origin_node = {n->node_id, (uint32_t)strlen(n->node_id)},
                      .seq = mark};
    if (rc_bus_publish(n->bus, &m, NULL, NULL) == 0)
        n->last_mark = mark;
}

struct replay;
static uint64_t replay_events(const struct replay *r);

/* While the log is read back: how far behind the node is (records estimated from the bytes
 * left). */
void rc_node_log_warming(const rc_node_t *n, rc_enc_t *e)
{
    rc_enc_key(e, "warming");
    if (!n->warming) {
        rc_enc_bool(e, false);
        return;
    }
    uint64_t left = rc_eventlog_bytes_left(n->log), behind = rc_eventlog_records_left(n->log);
    char reason[96];
    snprintf(reason, sizeof(reason), "warming (%llu events behind)", (unsigned long long)behind);
    rc_enc_map(e, 4);
    rc_enc_key(e, "reason");
    rc_enc_cstr(e, reason);
    rc_enc_key(e, "events_read");
    rc_enc_int(e, (int64_t)replay_events(n->replay));
    rc_enc_key(e, "bytes_left");
    rc_enc_int(e, (int64_t)left);
    rc_enc_key(e, "events_behind");
    rc_enc_int(e, (int64_t)behind);
    rc_enc_end(e);
}

/* ---- the event log (--data-dir) ---- */

/* Random bytes the data directory keeps for good: read, or made once (atomically). */
static int data_dir_secret(const char *dir, const char *name, unsigned char *out, size_t len,
                           char *err, size_t errlen)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return RC_EIO;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = read(fd, out, len);
        close(fd);
        if (got != (ssize_t)len) {
            snprintf(err, errlen, "%s is not %zu bytes long", path, len);
            return RC_EIO;
        }
        return 0;
    }
    char tmp[620];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (getrandom(out, len, 0) != (ssize_t)len || fd < 0 || write(fd, out, len) != (ssize_t)len ||
        fsync(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RC_EIO;
    }
    close(fd);
    return 0;
}

/* Pseudonyms name users in the log, so they must name the same users after a restart:
 * without --pseudonym-key, the node keeps a key of its own in the data directory. */
#define KEY_FILE  "pseudonym.key"
#define KEY_BYTES 32
static int node_pseudonym_key(rc_node_t *n, char *err, size_t errlen)
{
    if (n->cfg->pseudonym_key[0] != '\0')
        return 0;
    unsigned char key[KEY_BYTES];
    if (data_dir_secret(n->cfg->data_dir, KEY_FILE, key, sizeof(key), err, errlen) != 0)
        return RC_EIO;
    rc_sessions_set_pseudonym_key(n->sessions, key, sizeof(key));
    return 0;
}

/* A profile in Redis records the newest change it applied from each writer
 * (rc_profile_seq_t). With a log, the writer is the log, which outlives the node's id (host
 * and pid): a restart then sends again what the store lacks, and the store knows what it has. */
#define LOG_ID_FILE  "log.id"
#define LOG_ID_BYTES 8
int rc_node_log_id(rc_node_t *n, char *err, size_t errlen)
{
    unsigned char id[LOG_ID_BYTES];
    if (data_dir_secret(n->cfg->data_dir, LOG_ID_FILE, id, sizeof(id), err, errlen) != 0)
        return RC_EIO;
    int at = snprintf(n->log_id, sizeof(n->log_id), "log-");
    for (size_t i = 0; i < sizeof(id); i++)
        at += snprintf(n->log_id + at, sizeof(n->log_id) - (size_t)at, "%02x", id[i]);
    return 0;
}

/* ---- snapshots (--data-dir) ---- */

/* The newest catalog change of an item, or a setting, as the log holds it (bus wire form): the
 * admin API's part of a snapshot, since retention may delete the log before it. */
typedef struct change {
    uint32_t key_len, len;
    char data[]; /* the key, then the record */
} change_t;

static void drop_change(rc_node_t *n, const char *key, size_t len)
{
    uint64_t old;
    if (rc_strmap_get(&n->changes, key, len, &old)) {
        rc_strmap_del(&n->changes, key, len);
        free((change_t *)(uintptr_t)old);
    }
}

static void keep_change(rc_node_t *n, const rc_bus_msg_t *m)
{
    char key[RC_ID_MAX + RC_SETTING_NAME_MAX + 3];
    rc_str_t name = m->kind == RC_BUS_CATALOG ? m->item_id : m->setting;
    if ((m->kind != RC_BUS_CATALOG && m->kind != RC_BUS_SETTING) || name.n > RC_ID_MAX)
        return;
    int klen = snprintf(key, sizeof(key), "%c:%.*s", m->kind == RC_BUS_CATALOG ? 'c' : 's',
                        (int)name.n, name.p);
    rc_wbuf_reset(&n->scratch);
    if (rc_bus_msg_encode(m, &n->scratch) != 0)
        return;
    change_t *c = malloc(sizeof(*c) + (size_t)klen + n->scratch.len);
    if (c == NULL)
        return;
    c->key_len = (uint32_t)klen;
    c->len = (uint32_t)n->scratch.len;
    memcpy(c->data, key, (size_t)klen);
    memcpy(c->data + klen, rc_wbuf_data(&n->scratch), n->scratch.len);
    drop_change(n, key, (size_t)klen);
    if (rc_strmap_put(&n->changes, c->data, c->key_len, (uintptr_t)c) != 0)
        free(c);
}

/* What the in-process bus appends to the log passes here. */
static void node_log_tap(void *ctx, const rc_bus_msg_t *m)
{
    keep_change(ctx, m);
}

static void free_changes(rc_node_t *n)
{
    for (size_t i = 0; i < n->changes.cap; i++)
        if (n->changes.slots[i].hash != 0)
            free((change_t *)(uintptr_t)n->changes.slots[i].value);
    rc_strmap_free(&n->changes);
}

typedef struct replay {
    rc_node_t *node;
    rc_history_t *history;
    rc_profile_replay_t *profiles;
    msgpack_zone zone;
    int64_t restore_from_ms; /* events accepted since are remembered for de-duplication */
    uint64_t covers;         /* records below are in the snapshot: only profiles read them */
    uint64_t events, undecodable;
    uint64_t t0_us; /* when the read-back began */
} replay_t;

/* A record a snapshot covers: only what the profile store may lack is taken from it. */
static void replay_profile_only(replay_t *r, const rc_bus_msg_t *m)
{
    if (m->kind == RC_BUS_EVENT)
        rc_profile_replay_event(
            r->profiles, m->profile_user, m->ev.kind, m->ev.item, m->ev.has_value, m->ev.value,
            rc_sessions_event_time(r->node->sessions, &m->ev, m->received_ms, false), m->seq);
    else if (m->kind == RC_BUS_ERASE)
        rc_profile_replay_erase(r->profiles, m->profile_user, m->seq);
    else if (m->kind == RC_BUS_MARK)
        rc_profile_replay_mark(r->profiles, m->seq);
}

/* One record of the log, read back at start: events are learned at their own time by the
 * models (the path of --import), remembered for de-duplication, and given to the profile
 * store if it may lack them (profile_replay.h); erasures, catalog changes and settings are
 * applied again, in the order they were taken. */
static void replay_record(void *ctx, uint64_t record, const void *data, size_t len)
{
    replay_t *r = ctx;
    rc_node_t *n = r->node;
    rc_bus_msg_t m;
    if (rc_bus_msg_decode(data, len, &r->zone, &m) != 0) {
        r->undecodable++;
        msgpack_zone_clear(&r->zone);
        return;
    }
    if (record < r->covers) {
        /* In the snapshot, but the profile store may lack it (profile_replay.h). */
        replay_profile_only(r, &m);
        msgpack_zone_clear(&r->zone);
        return;
    }
    switch (m.kind) {
    case RC_BUS_EVENT: {
        rc_str_t what = m.ev.item.n > 0 ? m.ev.item : m.ev.query;
        int64_t at = rc_sessions_event_time(n->sessions, &m.ev, m.received_ms, false);
        if (rc_history_learn(r->history, m.user.p, m.user.n, m.ev.kind, what.p, what.n,
                             m.ev.has_value, m.ev.value, at) == 0)
            r->events++;
        if (m.received_ms >= r->restore_from_ms)
            rc_sessions_restore_event(n->sessions, m.user, m.ev.id);
        rc_sessions_restore_seq(n->sessions, m.seq);
        rc_profile_replay_event(r->profiles, m.profile_user, m.ev.kind, m.ev.item, m.ev.has_value,
                                m.ev.value, at, m.seq);
        break;
    }
    case RC_BUS_ERASE:
        rc_sessions_restore_erase(n->sessions, m.user);
        rc_sessions_restore_seq(n->sessions, m.seq);
        rc_profile_replay_erase(r->profiles, m.profile_user, m.seq);
        break;
    case RC_BUS_MARK:
        rc_profile_replay_mark(r->profiles, m.seq);
        n->last_mark = m.seq;
        break;
    case RC_BUS_CATALOG:
        n->catalog_changed |= rc_catalog_api_apply(n->sessions, &m) == 0;
        keep_change(n, &m);
        break;
    case RC_BUS_SETTING:
        rc_settings_apply(&n->settings, &m);
        keep_change(n, &m);
        break;
    default:
        break;
    }
    msgpack_zone_clear(&r->zone);
}

/* A snapshot's body: what the node derived from the log records below `covers`. In the
 * child process of a snapshot job (snapshot_job.h), on its copy of the node. */
static int pack_snapshot(void *ctx, uint64_t covers, rc_wbuf_t *body, char *err, size_t errlen)
{
    const rc_node_t *n = ctx;
    /* A snapshot must not claim a record the log could lose: the parent wrote them all
     * (rc_eventlog_flush) before the fork; this syncs them. */
    if (rc_eventlog_sync_written(n->log) != 0) {
        snprintf(err, errlen, "the log cannot be synced");
        return RC_EIO;
    }
    msgpack_packer pk;
    rc_mp_init(&pk, body);
    msgpack_pack_map(&pk, 8);
    rc_mp_cstr(&pk, "node");
    rc_mp_cstr(&pk, n->node_id);
    rc_mp_cstr(&pk, "profile_from"); /* records from here on may hold unconfirmed changes */
    msgpack_pack_uint64(&pk, n->profiles->ops->shared ? n->profile_confirmed : covers);
    rc_mp_cstr(&pk, "mark");
    msgpack_pack_uint64(&pk, n->last_mark);
    rc_mp_cstr(&pk, "changes");
    msgpack_pack_array(&pk, (uint32_t)n->changes.len);
    for (size_t i = 0; i < n->changes.cap; i++) {
        if (n->changes.slots[i].hash == 0)
            continue;
        const change_t *c = (const change_t *)(uintptr_t)n->changes.slots[i].value;
        msgpack_pack_bin(&pk, c->len);
        msgpack_pack_bin_body(&pk, c->data + c->key_len, c->len);
    }
    rc_mp_cstr(&pk, "engine");
    rc_experiment_counts_t counts = {0};
    rc_sessions_experiment_counts(n->sessions, rc_engine_experiment(n->engine), &counts);
    rc_engine_snapshot_write(n->engine, &counts, &pk);
    rc_mp_cstr(&pk, "sessions");
    rc_sessions_snapshot_write(n->sessions, &pk);
    rc_mp_cstr(&pk, "context"); /* for the read-back after it: rc_history_snapshot_read() */
    rc_sessions_snapshot_write_context(n->sessions, &pk);
    rc_mp_cstr(&pk, "profiles");
    rc_profile_snapshot_write(n->profiles, &pk);
    return 0;
}

/* Says how a snapshot went; a written one is what the node's snapshots now cover. */
static void snapshot_done(rc_node_t *n, const rc_snapshot_result_t *r)
{
    if (r->rc == 0) {
        n->snapshot_covers = r->covers;
        RC_INFO("snapshot", "snapshot written",
                "why=%s covers=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f loop_ms=%.1f",
                n->snapshot_why, r->covers, r->bytes, r->seconds, r->fork_ms);
    } else {
        RC_ERROR("snapshot", "snapshot not written", "why=%s error=\"%s\"", n->snapshot_why,
                 r->err);
    }
}

/* Starts writing what the node derived from the log up to now: a snapshot covering every
 * record appended so far, serialised and written by a child process while the loop goes on
 * (rc_node_log_snapshot_poll reports it). The loop pays for the fork only. */
void rc_node_log_snapshot(rc_node_t *n, const char *why)
{
    uint64_t covers = n->log != NULL ? rc_eventlog_next_record(n->log) : 0;
    if (n->log == NULL || n->warming || covers == n->snapshot_covers || n->snapshot.pid != 0)
        return;
    if (!n->profiles->ops->shared) /* the in-memory store must hold every change covered */
        rc_sessions_flush_profiles(n->sessions);
    char err[300];
    n->snapshot_why = why;
    int rc = rc_eventlog_flush(n->log);
    if (rc == 0)
        rc = rc_snapshot_job_start(&n->snapshot, n->cfg->data_dir, covers, pack_snapshot, n, err,
                                   sizeof(err));
    else
        snprintf(err, sizeof(err), "the log cannot be written");
    if (rc == RC_EIO && strcmp(why, "stop") == 0) {
        /* No child (the kernel refused the fork's memory): at a stop the loop has nothing
         * left to serve, so the snapshot is written here, as before there were children. */
        RC_WARN("snapshot", "written on the loop", "why=%s error=\"%s\"", why, err);
        rc_snapshot_result_t r;
        rc_snapshot_write_now(n->cfg->data_dir, covers, pack_snapshot, n, &r);
        snapshot_done(n, &r);
        return;
    }
    if (rc != 0)
        RC_ERROR("snapshot", "snapshot not written", "why=%s error=\"%s\"", why, err);
}

void rc_node_log_snapshot_poll(rc_node_t *n, bool wait)
{
    rc_snapshot_result_t r;
    if (rc_snapshot_job_poll(&n->snapshot, wait, &r))
        snapshot_done(n, &r);
}

/* A snapshot's body nests a few levels (body, part, list, entry): a deeper one is not ours. */
#define SNAPSHOT_DEPTH 8

/* The snapshot's body, decoded: the parts apply_snapshot() restores. */
typedef struct snapshot_parts {
    const msgpack_object *from, *mark, *changes, *engine, *sessions, *profiles;
    const msgpack_object *context; /* NULL in a snapshot of a build before it */
} snapshot_parts_t;

static bool snapshot_parts(const msgpack_object *root, snapshot_parts_t *p)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return false;
    const msgpack_object_map *m = &root->via.map;
    *p = (snapshot_parts_t){rc_mp_map_get(m, "profile_from"), rc_mp_map_get(m, "mark"),
                            rc_mp_map_get(m, "changes"),      rc_mp_map_get(m, "engine"),
                            rc_mp_map_get(m, "sessions"),     rc_mp_map_get(m, "profiles"),
                            rc_mp_map_get(m, "context")};
    return p->from != NULL && p->from->type == MSGPACK_OBJECT_POSITIVE_INTEGER && p->mark != NULL &&
           p->mark->type == MSGPACK_OBJECT_POSITIVE_INTEGER && p->changes != NULL &&
           p->changes->type == MSGPACK_OBJECT_ARRAY && p->engine != NULL && p->sessions != NULL &&
           p->profiles != NULL;
}

/* The admin API's changes a snapshot kept, applied again. */
static void apply_changes(rc_node_t *n, const msgpack_object *changes)
{
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096))
        return;
    for (uint32_t i = 0; i < changes->via.array.size; i++) {
        const msgpack_object *c = &changes->via.array.ptr[i];
        rc_bus_msg_t m;
        if (c->type == MSGPACK_OBJECT_BIN &&
            rc_bus_msg_decode(c->via.bin.ptr, c->via.bin.size, &z, &m) == 0) {
            if (m.kind == RC_BUS_CATALOG)
                rc_catalog_api_apply(n->sessions, &m);
            else if (m.kind == RC_BUS_SETTING)
                rc_settings_apply(&n->settings, &m);
            keep_change(n, &m);
        }
        msgpack_zone_clear(&z);
    }
    msgpack_zone_destroy(&z);
}

/* A snapshot's body decoded once: by snapshot_usable() while choosing the snapshot, then
 * restored from by apply_snapshot() (a large body takes seconds to decode). */
typedef struct decoded {
    msgpack_zone zone;
    bool ready; /* zone initialised */
    snapshot_parts_t parts;
} decoded_t;

static void decoded_free(decoded_t *d)
{
    if (d->ready)
        msgpack_zone_destroy(&d->zone);
    d->ready = false;
}

/* Restores the snapshot decoded in `d` into a node that has learned nothing yet. Returns 0,
 * or a negative code with the reason in `err`: the node then stops (a half-restored engine
 * must not serve; moving the snapshot away starts it from the log alone). */
static int apply_snapshot(rc_node_t *n, const rc_snapshot_t *snap, const decoded_t *d,
                          uint64_t *profile_from, char *err, size_t errlen)
{
    const snapshot_parts_t *p = &d->parts;
    *profile_from = p->from->via.u64 < snap->covers ? p->from->via.u64 : snap->covers;
    n->last_mark = p->mark->via.u64;
    apply_changes(n, p->changes);
    char why[200] = "";
    rc_experiment_counts_t counts = {0};
    int rc = rc_engine_snapshot_read(n->engine, p->engine, &counts, why, sizeof(why));
    if (rc == 0)
        rc_sessions_experiment_restore(n->sessions, &counts);
    if (rc == 0 && (rc = rc_sessions_snapshot_read(n->sessions, p->sessions)) != 0)
        snprintf(why, sizeof(why), "the sessions' part: %s", rc_strerror(rc));
    if (rc == 0 && (rc = rc_profile_snapshot_read(n->profiles, p->profiles)) != 0)
        snprintf(why, sizeof(why), "the profiles' part: %s", rc_strerror(rc));
    if (rc == 0 && p->context != NULL &&
        (rc = rc_history_snapshot_read(n->replay->history, p->context)) != 0)
        snprintf(why, sizeof(why), "the sessions' context: %s", rc_strerror(rc));
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", snap->path, why);
    return rc;
}

/* A snapshot is usable if its body decodes with every part this build reads; the decoded
 * body stays in `ctx` (a decoded_t) for apply_snapshot(). */
static bool snapshot_usable(void *ctx, const rc_snapshot_t *snap)
{
    decoded_t *d = ctx;
    msgpack_object root;
    size_t off = 0;
    decoded_free(d);
    if (!msgpack_zone_init(&d->zone, 1 << 16))
        return false;
    d->ready = true;
    bool ok =
        rc_mp_check(snap->body, snap->len, SNAPSHOT_DEPTH) == 0 &&
        msgpack_unpack(snap->body, snap->len, &off, &d->zone, &root) == MSGPACK_UNPACK_SUCCESS &&
        snapshot_parts(&root, &d->parts);
    if (!ok) {
        decoded_free(d);
        RC_ERROR("snapshot", "snapshot refused: an older one, or the log, is used instead",
                 "file=\"%s\" reason=\"not the layout this build writes\"", snap->path);
    }
    return ok;
}

/* The newest usable snapshot, restored: *covers and *profile_from say where the log must be
 * read from (both 0 without one). With --import the history is learned again at every start,
 * so a snapshot (which holds it) is not read. Returns 0 or a negative code with `err`. */
static int load_snapshot(rc_node_t *n, uint64_t *covers, uint64_t *profile_from, char *err,
                         size_t errlen)
{
    rc_snapshot_t snap;
    *covers = *profile_from = 0;
    if (n->cfg->import[0] != '\0')
        return 0;
    uint64_t t0 = rc_mono_us();
    decoded_t d = {.ready = false};
    int rc = rc_snapshot_read_newest(n->cfg->data_dir, snapshot_usable, &d, &snap, err, errlen);
    if (rc != 0) {
        decoded_free(&d);
        return rc == RC_ENOENT ? 0 : rc;
    }
    rc = apply_snapshot(n, &snap, &d, profile_from, err, errlen);
    decoded_free(&d);
    free(snap.body);
    if (rc != 0)
        return rc;
    *covers = n->snapshot_covers = snap.covers;
    RC_INFO("snapshot", "snapshot read", "file=\"%s\" covers=%" PRIu64 " bytes=%zu seconds=%.3f",
            snap.path, snap.covers, snap.len, (double)(rc_mono_us() - t0) / 1e6);
    return 0;
}

static uint64_t replay_events(const replay_t *r)
{
    return r != NULL ? r->events : 0;
}

static void replay_free(replay_t *r)
{
    if (r == NULL)
        return;
    rc_history_free(r->history);
    rc_profile_replay_free(r->profiles);
    msgpack_zone_destroy(&r->zone);
    free(r);
}

/* The read-back is over: the profile store gets what it may lack, the log takes appends, and
 * the node says what it read. */
static int finish_event_log(rc_node_t *n)
{
    replay_t *r = n->replay;
    rc_profile_replay_stats_t ps = {0};
    rc_profile_replay_finish(r->profiles, &ps);
    const rc_eventlog_stats_t *st = rc_eventlog_read_stats(n->log);
    double secs = (double)(rc_mono_us() - r->t0_us) / 1e6;
    RC_INFO("node", "profiles given what the store may lack",
            "store=%s events=%llu erasures=%llu skipped_by_mark=%llu refused=%llu",
            n->profiles->ops->name, (unsigned long long)ps.events_sent,
            (unsigned long long)ps.erasures_sent, (unsigned long long)ps.skipped,
            (unsigned long long)ps.refused);
    RC_INFO("node", "event log read back",
            "dir=\"%s\" fsync=%s records=%llu in_snapshot=%llu events_learned=%llu segments=%u "
            "bytes=%llu torn_bytes=%llu bad_segments=%u undecodable=%llu deleted_segments=%u "
            "seconds=%.3f records_per_s=%.0f",
            n->cfg->data_dir, n->cfg->fsync, (unsigned long long)st->records,
            (unsigned long long)st->skipped_records, (unsigned long long)r->events, st->segments,
            (unsigned long long)st->bytes, (unsigned long long)st->torn_bytes, st->bad_segments,
            (unsigned long long)r->undecodable, st->deleted, secs,
            secs > 0 ? (double)st->records / secs : 0);
    replay_free(r);
    n->replay = NULL;
    rc_bus_local_set_log(n->bus, n->log);
    rc_bus_local_set_tap(n->bus, node_log_tap, n);
    rc_metrics.catalog_items = rc_engine_catalog(n->engine)->n;
    if (n->catalog_changed) {
        n->catalog_changed = false;
        rc_catalog_api_settle(n->sessions);
    }
    return rc_engine_refresh(n->engine);
}

/* Reads up to `budget` records of the log back; at its end, finishes. Returns 1 when done,
 * 0 when there is more, or a negative code with `err`. */
static int read_event_log(rc_node_t *n, uint64_t budget, char *err, size_t errlen)
{
    int rc = rc_eventlog_read(n->log, replay_record, n->replay, budget, err, errlen);
    if (rc == 1 && finish_event_log(n) != 0) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    return rc;
}

/* A long read-back runs in slices on the loop (--warm-slice-records a turn), the node
 * listening meanwhile: health checks are answered (/readyz says "warming"); sessions and the
 * admin API are refused until the node knows what it knew (a retry taken before its id is
 * read back would count twice). */
void rc_node_log_on_warm(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    char err[300];
    int rc = read_event_log(n, (uint64_t)n->cfg->warm_slice_records, err, sizeof(err));
    if (rc == 0)
        return;
    uv_timer_stop(t);
    if (rc < 0) {
        RC_ERROR("node", "reading the event log back failed: stopping", "error=\"%s\"", err);
        rc_node_stop(n);
        return;
    }
    n->warming = false;
    rc_gateway_set_warming(n->gateway, false);
    RC_INFO("node", "warm: serving sessions", "node=%s", n->node_id);
}

/* Opens the log and reads it back: before listening when it is small, else in slices once
 * the node listens (--warm-listen-mb). Without a data directory the node says, loudly, what a
 * restart loses. */
int rc_node_log_open(rc_node_t *n, char *err, size_t errlen)
{
    const rc_config_t *cfg = n->cfg;
    if (cfg->data_dir[0] == '\0') {
        if (cfg->kafka[0] == '\0')
            RC_WARN("node",
                    "no --data-dir: nothing survives a restart (acknowledged events, what the "
                    "models learned, de-duplication of retries); see docs/durability.md",
                    NULL);
        return 0;
    }
    if (cfg->kafka[0] != '\0') {
        snprintf(err, errlen,
                 "--data-dir is for the in-process bus: with --kafka the events "
                 "topic is the log");
        return RC_EINVAL;
    }
    rc_eventlog_config_t lc = {.dir = cfg->data_dir,
                               .fsync_interval_ms = cfg->fsync_interval_ms,
                               .segment_bytes = (uint64_t)cfg->log_segment_mb << 20,
                               .retain_bytes = (uint64_t)cfg->log_retain_mb << 20,
                               .retain_s = cfg->log_retain_h * 3600};
    if (rc_fsync_parse(cfg->fsync, &lc.fsync) != 0) {
        snprintf(err, errlen, "--fsync must be always, interval or never");
        return RC_EINVAL;
    }
    if (node_pseudonym_key(n, err, errlen) != 0)
        return RC_EIO;
    replay_t *r = calloc(1, sizeof(*r));
    if (r == NULL || !msgpack_zone_init(&r->zone, 4096)) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    n->replay = r;
    *r = (replay_t){.node = n,
                    .zone = r->zone,
                    .history = rc_history_new(n->engine, cfg->import_session_gap_s * 1000),
                    .profiles = rc_profile_replay_new(n->profiles, rc_engine_catalog(n->engine)),
                    .restore_from_ms = rc_wall_ms() - cfg->dedupe_restore_s * 1000,
                    .t0_us = rc_mono_us()};
    if (r->history == NULL || r->profiles == NULL) {
        snprintf(err, errlen, "out of memory");
        return RC_ENOMEM;
    }
    rc_history_from_clients(r->history);
    if (load_snapshot(n, &r->covers, &lc.read_from, err, errlen) != 0)
        return RC_EIO;
    lc.number_from = r->covers;
    n->profile_confirmed = lc.read_from;
    if ((n->log = rc_eventlog_start(&n->loop, &n->defer, &lc, err, errlen)) == NULL)
        return RC_EIO;
    uint64_t left = rc_eventlog_bytes_left(n->log);
    if (left > (uint64_t)cfg->warm_listen_mb << 20) {
        RC_INFO("node", "warming: the event log is read back while the node listens", "bytes=%llu",
                (unsigned long long)left);
        n->warming = true;
        return 0;
    }
    return read_event_log(n, UINT64_MAX, err, errlen) == 1 ? 0 : RC_EIO;
}

void rc_node_log_free(rc_node_t *n)
{
    rc_node_log_snapshot_poll(n, true); /* a stop that never came: no writer left behind */
    free_changes(n);
    replay_free(n->replay);
    n->replay = NULL;
}
