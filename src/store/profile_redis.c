/* SPDX-License-Identifier: Apache-2.0 */
/* Profiles in Redis, on hiredis' async API attached to the node's libuv loop: nothing here
 * ever blocks the loop.
 *
 * Updates are deltas merged by a Lua script (MERGE_SCRIPT), so each user's update is
 * atomic and concurrent nodes add up instead of overwriting each other. Updates and
 * erasures wait in one FIFO until Redis confirms them; the FIFO is bounded by
 * redis-buffer-bytes, and when it is full the newest update is refused (counted, logged).
 * Updates leave in batches (one script call for up to 64 users). After a disconnect, every
 * unconfirmed command is sent again. A delta carries a sequence number per writer (the
 * node, or the node's event log: rc_profile_seq_t), and the script records the last one
 * applied from each writer, so a delta whose reply was lost, or that a restart sends again
 * from the event log, is applied exactly once even though it is sent twice. */
#include "store/profile.h"
#include "util/clock.h"
#include "util/config.h"
#include "util/error.h"
#include "util/list.h"
#include "util/log.h"
#include "util/metrics.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define WATCHDOG_MS        500
#define CONNECT_TIMEOUT_US 2000000
#define PING_TIMEOUT_US    2000000
#define MAX_QUEUED_LOADS   100000
#define NODES_REMEMBERED   8

/* KEYS: profile keys; ARGV[1] ttl ms, ARGV[2] node id, then for each key its delta and its
 * sequence. Merges each delta into its profile unless this node's sequence for that profile
 * was applied already (a retry); returns how many were applied. One call carries many users'
 * deltas; each user's merge is atomic (the whole script is). Mirrors rc_profile_apply_delta()
 * (profile.c), which the in-memory store uses. */
#define HALF_LIFE_MS "2592000000"
_Static_assert(RC_PROFILE_HALF_LIFE_MS == 2592000000LL, "HALF_LIFE_MS is the script's copy");
_Static_assert(RC_PROFILE_CATS == 16 && RC_PROFILE_FEATS == 16, "the script keeps 16 of each");
static const char MERGE_SCRIPT[] =
    "local ttl, node, applied = ARGV[1], ARGV[2], 0\n"
    "for i, key in ipairs(KEYS) do\n"
    "  local cur = redis.call('GET', key)\n"
    "  local p = cur and cmsgpack.unpack(cur) or {}\n"
    "  if type(p) ~= 'table' then p = {} end\n"
    "  local q = type(p.q) == 'table' and p.q or {}\n"
    "  local seq = tonumber(ARGV[2 + 2 * i])\n"
    "  if not (q[node] and seq <= q[node]) then\n"
    "    local d = cmsgpack.unpack(ARGV[1 + 2 * i])\n"
    "    p.v = 1\n"
    "    p.n = (tonumber(p.n) or 0) + (tonumber(d.n) or 0)\n"
    "    local pt, dt = tonumber(p.t) or 0, tonumber(d.t) or 0\n"
    "    local fade = (pt > 0 and dt > pt) and 2 ^ ((pt - dt) / " HALF_LIFE_MS ") or 1\n"
    "    local function merged(stored, add)\n"
    "      local m = type(stored) == 'table' and stored or {}\n"
    "      for k, w in pairs(m) do m[k] = w * fade end\n"
    "      for k, w in pairs(type(add) == 'table' and add or {}) do m[k] = (m[k] or 0) + w end\n"
    "      local all = {}\n"
    "      for k, w in pairs(m) do all[#all + 1] = {k, w} end\n"
    "      if #all > 16 then\n"
    "        table.sort(all, function(a, b) return a[2] > b[2] end)\n"
    "        m = {}\n"
    "        for j = 1, 16 do m[all[j][1]] = all[j][2] end\n"
    "      end\n"
    "      return m\n"
    "    end\n"
    "    p.c = merged(p.c, d.c)\n"
    "    p.f = merged(p.f, d.f)\n"
    "    local r = type(p.r) == 'table' and p.r or {}\n"
    "    for _, id in ipairs(type(d.r) == 'table' and d.r or {}) do\n"
    "      for j = #r, 1, -1 do if r[j] == id then table.remove(r, j) end end\n"
    "      r[#r + 1] = id\n"
    "    end\n"
    "    while #r > 16 do table.remove(r, 1) end\n"
    "    p.r = r\n"
    "    local x = type(p.x) == 'table' and p.x or {}\n"
    "    for _, id in ipairs(type(d.x) == 'table' and d.x or {}) do\n"
    "      local seen = false\n"
    "      for j = 1, #x do if x[j] == id then seen = true break end end\n"
    "      if not seen then x[#x + 1] = id end\n"
    "    end\n"
    "    while #x > 32 do table.remove(x, 1) end\n"
    "    p.x = x\n"
    "    if (tonumber(d.t) or 0) > (tonumber(p.t) or 0) then p.t = d.t end\n"
    "    q[node] = seq\n"
    "    local nodes = {}\n"
    "    for k, v in pairs(q) do nodes[#nodes + 1] = {k, v} end\n"
    "    if #nodes > 8 then\n"
    "      table.sort(nodes, function(a, b) return a[2] > b[2] end)\n"
    "      q = {}\n"
    "      for j = 1, 8 do q[nodes[j][1]] = nodes[j][2] end\n"
    "    end\n"
    "    p.q = q\n"
    "    redis.call('SET', key, cmsgpack.pack(p), 'PX', ttl)\n"
    "    applied = applied + 1\n"
    "  end\n"
    "end\n"
    "return applied\n";

typedef enum { OP_UPDATE, OP_ERASE } op_kind_t;

typedef struct op {
    rc_link_t link; /* in redis_store_t.ops, oldest first */
    op_kind_t kind;
    bool in_flight;
    uint64_t seq;       /* the caller's, or 0 until first sent; then kept for every retry */
    uint64_t first_seq; /* the caller's rc_profile_seq_t.first (0: none) */
    size_t key_len, len;
    char *key;   /* points into data */
    char data[]; /* the key, then the delta */
} op_t;

/* Up to BATCH_MAX updates sent as one script call; they succeed or are retried together. */
#define BATCH_MAX 64

typedef struct batch {
    uint32_t n;
    op_t *ops[BATCH_MAX];
} batch_t;

typedef struct load {
    rc_link_t link; /* in redis_store_t.loads while waiting for a connection */
    struct redis_store *store;
    size_t user_len, key_len;
    char *user, *key; /* point into data */
    char data[];
} load_t;

typedef struct redis_store {
    rc_profile_store_t base;
    uv_loop_t *loop;
    const rc_config_t *cfg;
    char writer[128]; /* names this node's sequence in each profile (rc_profile_seq_t) */
    char host[256], unix_path[256], user[128], password[256];
    int port, db;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool ready;            /* connected, authenticated, script loaded */
    bool closing;
    char sha[41];
    rc_link_t ops, loads;
    size_t n_ops, n_loads, buffered;
    uint64_t last_seq;
    uv_timer_t reconnect;
    uv_timer_t watchdog;
    uv_timer_t flush_soon; /* updates of one loop turn go out together on the next */
    bool flush_scheduled;
    uint64_t connect_started_us, ping_sent_us; /* 0: none outstanding */
    uint32_t backoff_ms, attempts;
    char last_error[160];
    uint64_t dropped_logged_us;
} redis_store_t;

static void schedule_reconnect(redis_store_t *r);
static void flush(redis_store_t *r);

/* ---- URL ---- */

static int parse_url(redis_store_t *r, const char *url, char *err, size_t errlen)
{
    r->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || n >= sizeof(r->unix_path))
            goto bad;
        memcpy(r->unix_path, path, n);
        if (q != NULL && sscanf(q, "?db=%d", &r->db) != 1)
            goto bad;
        return 0;
    }
    if (strncmp(url, "redis://", 8) == 0)
        url += 8;
    const char *at = strrchr(url, '@');
    if (at != NULL) {
        const char *colon = memchr(url, ':', (size_t)(at - url));
        if (colon == NULL || (size_t)(colon - url) >= sizeof(r->user) ||
            (size_t)(at - colon - 1) >= sizeof(r->password))
            goto bad;
        memcpy(r->user, url, (size_t)(colon - url));
        memcpy(r->password, colon + 1, (size_t)(at - colon - 1));
        url = at + 1;
    }
    const char *slash = strchr(url, '/');
    size_t hostport = slash ? (size_t)(slash - url) : strlen(url);
    const char *colon = memchr(url, ':', hostport);
    size_t hostlen = colon ? (size_t)(colon - url) : hostport;
    if (hostlen == 0 || hostlen >= sizeof(r->host))
        goto bad;
    memcpy(r->host, url, hostlen);
    if (colon != NULL && (sscanf(colon + 1, "%d", &r->port) != 1 || r->port < 1 || r->port > 65535))
        goto bad;
    if (slash != NULL && slash[1] != '\0' && sscanf(slash + 1, "%d", &r->db) != 1)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen,
             "--redis: expected redis://[[user]:password@]host[:port][/db] or "
             "unix:///path[?db=N]");
    return RC_EINVAL;
}

static void describe(const redis_store_t *r, char *buf, size_t len)
{
    if (r->unix_path[0])
        snprintf(buf, len, "unix:%s", r->unix_path);
    else
        snprintf(buf, len, "%s:%d", r->host, r->port);
}

/* ---- commands ---- */

static void update_gauges(const redis_store_t *r)
{
    rc_metrics.profile_buffered_bytes = (int64_t)r->buffered;
    rc_metrics.profile_store_up = r->ready;
}

static void op_free(redis_store_t *r, op_t *op)
{
    rc_list_unlink(&op->link);
    r->n_ops--;
    r->buffered -= op->len + op->key_len;
    free(op);
    update_gauges(r);
}

/* A reply (or none, after a disconnect) settles the command's ops: confirmed ones leave the
 * queue; unanswered ones stay and are sent again after the reconnect. */
static void settle(redis_store_t *r, op_t **ops, uint32_t n, redisReply *reply)
{
    for (uint32_t i = 0; i < n; i++)
        ops[i]->in_flight = false;
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOSCRIPT", 8) == 0)
            return; /* the script cache was flushed: the reconnect path loads it again */
        RC_WARN("redis", "profile update refused", "error=\"%.120s\" updates=%u", reply->str, n);
        rc_metrics.profile_updates_dropped += n;
    } else {
        for (uint32_t i = 0; i < n; i++)
            rc_metrics.profile_updates_written += ops[i]->kind == OP_UPDATE;
    }
    for (uint32_t i = 0; i < n; i++)
        op_free(r, ops[i]);
}

static void on_op_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_store_t *r = ac->data;
    op_t *op = privdata;
    if (!r->closing)
        settle(r, &op, 1, reply);
}

static void on_batch_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_store_t *r = ac->data;
    batch_t *b = privdata;
    if (!r->closing)
        settle(r, b->ops, b->n, reply);
    free(b);
}

static uint64_t next_seq(redis_store_t *r)
{
    uint64_t now = (uint64_t)rc_wall_ms() * 1000 + (rc_mono_us() % 1000);
    r->last_seq = now > r->last_seq ? now : r->last_seq + 1;
    return r->last_seq;
}

static void send_erase(redis_store_t *r, op_t *op)
{
    const char *argv[] = {"DEL", op->key};
    size_t lens[] = {3, op->key_len};
    if (redisAsyncCommandArgv(r->ac, on_op_reply, op, 2, argv, lens) == REDIS_OK) {
        op->in_flight = true;
        rc_metrics.profile_commands++;
    }
}

/* One EVALSHA for the updates ops[0..n): keys, then ttl and node, then delta and sequence
 * per key. */
static void send_updates(redis_store_t *r, op_t **ops, uint32_t n)
{
    enum { FIXED = 5 };
    const char *argv[FIXED + 3 * BATCH_MAX];
    size_t lens[FIXED + 3 * BATCH_MAX];
    char seqs[BATCH_MAX][24], ttl[24], nkeys[8];
    batch_t *b = malloc(sizeof(*b));
    if (b == NULL)
        return;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)r->cfg->redis_ttl_s * 1000);
    snprintf(nkeys, sizeof(nkeys), "%u", n);
    argv[0] = "EVALSHA", lens[0] = 7;
    argv[1] = r->sha, lens[1] = 40;
    argv[2] = nkeys, lens[2] = strlen(nkeys);
    for (uint32_t i = 0; i < n; i++)
        argv[3 + i] = ops[i]->key, lens[3 + i] = ops[i]->key_len;
    argv[3 + n] = ttl, lens[3 + n] = strlen(ttl);
    argv[4 + n] = r->writer, lens[4 + n] = strlen(r->writer);
    for (uint32_t i = 0; i < n; i++) {
        if (ops[i]->seq == 0)
            ops[i]->seq = next_seq(r);
        snprintf(seqs[i], sizeof(seqs[i]), "%llu", (unsigned long long)ops[i]->seq);
        argv[FIXED + n + 2 * i] = ops[i]->data + ops[i]->key_len;
        lens[FIXED + n + 2 * i] = ops[i]->len;
        argv[FIXED + n + 2 * i + 1] = seqs[i];
        lens[FIXED + n + 2 * i + 1] = strlen(seqs[i]);
    }
    b->n = n;
    memcpy(b->ops, ops, n * sizeof(op_t *));
    if (redisAsyncCommandArgv(r->ac, on_batch_reply, b, (int)(FIXED + 3 * n), argv, lens) !=
        REDIS_OK) {
        free(b);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        ops[i]->in_flight = true;
    rc_metrics.profile_commands++;
}

static void on_load_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redis_store_t *r = ac->data;
    redisReply *reply = reply_;
    load_t *l = privdata;
    if (r->closing) {
        free(l);
        return;
    }
    if (reply == NULL) {
        /* Disconnected before the answer: ask again after the reconnect. */
        rc_list_push_back(&r->loads, &l->link);
        r->n_loads++;
        return;
    }
    rc_metrics.profile_loads++;
    if (r->base.on_loaded == NULL) {
        free(l);
        return;
    }
    if (reply->type == REDIS_REPLY_STRING) {
        r->base.on_loaded(r->base.ctx, l->user, l->user_len, 0, reply->str, reply->len);
    } else if (reply->type == REDIS_REPLY_NIL) {
        r->base.on_loaded(r->base.ctx, l->user, l->user_len, RC_ENOENT, NULL, 0);
    } else {
        rc_metrics.profile_load_errors++;
        r->base.on_loaded(r->base.ctx, l->user, l->user_len, RC_EIO, NULL, 0);
    }
    free(l);
}

static void send_load(redis_store_t *r, load_t *l)
{
    const char *argv[] = {"GET", l->key};
    size_t lens[] = {3, l->key_len};
    if (redisAsyncCommandArgv(r->ac, on_load_reply, l, 2, argv, lens) == REDIS_OK) {
        rc_metrics.profile_commands++;
    } else {
        rc_list_push_back(&r->loads, &l->link);
        r->n_loads++;
    }
}

/* Sends everything waiting, oldest first, in one pipeline (hiredis writes the commands
 * issued in one loop turn together): runs of updates as batches, erasures in their place. */
static void flush(redis_store_t *r)
{
    op_t *run[BATCH_MAX];
    uint32_t n = 0;
    if (!r->ready)
        return;
    for (rc_link_t *l = r->ops.next; l != &r->ops; l = l->next) {
        op_t *op = RC_CONTAINER_OF(l, op_t, link);
        if (op->in_flight)
            continue;
        if (op->kind == OP_ERASE) {
            if (n > 0)
                send_updates(r, run, n);
            n = 0;
            send_erase(r, op);
            continue;
        }
        run[n++] = op;
        if (n == BATCH_MAX) {
            send_updates(r, run, n);
            n = 0;
        }
    }
    if (n > 0)
        send_updates(r, run, n);
    while (!rc_list_empty(&r->loads)) {
        load_t *ld = RC_CONTAINER_OF(r->loads.next, load_t, link);
        rc_list_unlink(&ld->link);
        r->n_loads--;
        send_load(r, ld);
    }
}

static void on_flush_soon(uv_timer_t *t)
{
    redis_store_t *r = t->data;
    r->flush_scheduled = false;
    if (!r->closing)
        flush(r);
}

/* Updates issued in one loop turn (a write-behind tick writes every dirty session) leave
 * together on the next one, in as few commands as possible. */
static void schedule_flush(redis_store_t *r)
{
    if (r->flush_scheduled || !r->ready)
        return;
    r->flush_scheduled = true;
    uv_timer_start(&r->flush_soon, on_flush_soon, 0, 0);
}

/* ---- connection ---- */

static void fail_connection(redis_store_t *r, const char *why)
{
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    r->ready = false;
    update_gauges(r);
}

static void on_script_loaded(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redis_store_t *r = ac->data;
    redisReply *reply = reply_;
    char where[300];
    (void)privdata;
    if (r->closing || reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        fail_connection(r, reply->type == REDIS_REPLY_ERROR ? reply->str : "SCRIPT LOAD failed");
        redisAsyncDisconnect(ac);
        return;
    }
    memcpy(r->sha, reply->str, 40);
    r->sha[40] = '\0';
    r->ready = true;
    r->backoff_ms = 0;
    r->last_error[0] = '\0';
    update_gauges(r);
    describe(r, where, sizeof(where));
    RC_INFO("redis", "connected", "redis=%s db=%d queued_updates=%zu queued_loads=%zu", where,
            r->db, r->n_ops, r->n_loads);
    flush(r);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    redis_store_t *r = ac->data;
    redisReply *reply = reply_;
    (void)privdata;
    if (r->closing || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        fail_connection(r, reply->str);
        RC_WARN("redis", "setup refused", "error=\"%.120s\"", reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_store_t *r = ac->data;
    if (r->closing || status == REDIS_OK)
        return;
    /* hiredis frees the context after this callback. */
    fail_connection(r, ac->errstr);
    r->ac = NULL;
    schedule_reconnect(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_store_t *r = ac->data;
    char where[300];
    if (r->closing)
        return;
    fail_connection(r, status == REDIS_OK ? "disconnected" : ac->errstr);
    r->ac = NULL;
    describe(r, where, sizeof(where));
    RC_WARN("redis", "disconnected", "redis=%s error=\"%s\" queued_updates=%zu", where,
            r->last_error, r->n_ops);
    schedule_reconnect(r);
}

/* Gives up on the current connection: outstanding callbacks get no reply (their commands
 * are sent again later) and a reconnect is scheduled. */
static void drop_connection(redis_store_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    char where[300];
    describe(r, where, sizeof(where));
    RC_WARN("redis", "connection dropped", "redis=%s reason=\"%s\"", where, why);
    r->ac = NULL;
    fail_connection(r, why);
    if (ac != NULL) {
        ac->onDisconnect = NULL; /* this is the disconnect; do not report it twice */
        redisAsyncFree(ac);
    }
    schedule_reconnect(r);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_store_t *r = ac->data;
    (void)privdata;
    if (!r->closing && reply != NULL)
        r->ping_sent_us = 0;
}

/* hiredis' libuv adapter ignores poll errors (libuv reports POLLERR as an error status), so
 * a refused connect or a reset connection would go unnoticed: this timer bounds how long a
 * connect may take and, while connected, checks with a PING that Redis answers. */
static void on_watchdog(uv_timer_t *t)
{
    redis_store_t *r = t->data;
    uint64_t now = rc_mono_us();
    if (r->closing || r->ac == NULL)
        return;
    if (!r->ready) {
        if (now - r->connect_started_us > CONNECT_TIMEOUT_US)
            drop_connection(r, r->last_error[0] ? r->last_error : "connect timed out");
        return;
    }
    if (r->ping_sent_us != 0) {
        if (now - r->ping_sent_us > PING_TIMEOUT_US)
            drop_connection(r, "no answer to PING");
        return;
    }
    if (redisAsyncCommand(r->ac, on_pong, NULL, "PING") == REDIS_OK)
        r->ping_sent_us = now;
}

/* Connecting is asynchronous; the setup commands (AUTH, SELECT, SCRIPT LOAD) are queued at
 * once and go out when the socket is up. */
static void connect_now(redis_store_t *r)
{
    redisAsyncContext *ac =
        r->unix_path[0] ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->host, r->port);
    if (ac == NULL || ac->err) {
        fail_connection(r, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->connect_started_us = rc_mono_us();
    r->ping_sent_us = 0;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        fail_connection(r, "cannot attach to the loop");
        schedule_reconnect(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->attempts++;
    if (r->password[0]) {
        if (r->user[0])
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", r->user, r->password);
        else
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", r->password);
    }
    if (r->db != 0)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", r->db);
    redisAsyncCommand(ac, on_script_loaded, NULL, "SCRIPT LOAD %s", MERGE_SCRIPT);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    redis_store_t *r = t->data;
    if (r->closing)
        return;
    rc_metrics.profile_reconnects++;
    connect_now(r);
}

/* Full-jitter exponential backoff: a fleet of nodes does not hammer a Redis coming back. */
static void schedule_reconnect(redis_store_t *r)
{
    uint32_t rnd = 0;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (uint32_t)rc_mono_us();
    uv_timer_start(&r->reconnect, on_reconnect_timer, BACKOFF_MIN_MS / 2 + rnd % r->backoff_ms, 0);
}

/* ---- the interface ---- */

static size_t make_key(const redis_store_t *r, const char *user, size_t user_len, char *out)
{
    size_t p = strlen(r->cfg->redis_prefix);
    memcpy(out, r->cfg->redis_prefix, p);
    memcpy(out + p, "p:", 2);
    memcpy(out + p + 2, user, user_len);
    return p + 2 + user_len;
}

static int redis_load(rc_profile_store_t *s, const char *user, size_t user_len)
{
    redis_store_t *r = (redis_store_t *)s;
    size_t key_max = strlen(r->cfg->redis_prefix) + 2 + user_len;
    if (!r->ready && r->n_loads >= MAX_QUEUED_LOADS)
        return RC_EFULL;
    load_t *l = malloc(sizeof(*l) + user_len + key_max);
    if (l == NULL)
        return RC_ENOMEM;
    l->store = r;
    l->user = l->data;
    l->user_len = user_len;
    memcpy(l->user, user, user_len);
    l->key = l->data + user_len;
    l->key_len = make_key(r, user, user_len, l->key);
    if (r->ready) {
        send_load(r, l);
    } else {
        rc_list_push_back(&r->loads, &l->link);
        r->n_loads++;
    }
    return 0;
}

static op_t *op_new(redis_store_t *r, op_kind_t kind, const char *user, size_t user_len,
                    const void *delta, size_t len, rc_profile_seq_t seq)
{
    size_t key_max = strlen(r->cfg->redis_prefix) + 2 + user_len;
    op_t *op = malloc(sizeof(*op) + key_max + len);
    if (op == NULL)
        return NULL;
    op->kind = kind;
    op->in_flight = false;
    op->seq = seq.last;
    op->first_seq = seq.first;
    op->key = op->data;
    op->key_len = make_key(r, user, user_len, op->key);
    op->len = len;
    memcpy(op->data + op->key_len, delta, len);
    rc_list_push_back(&r->ops, &op->link);
    r->n_ops++;
    r->buffered += op->len + op->key_len;
    update_gauges(r);
    return op;
}

static int redis_update(rc_profile_store_t *s, const char *user, size_t user_len, const void *delta,
                        size_t len, rc_profile_seq_t seq)
{
    redis_store_t *r = (redis_store_t *)s;
    /* Counted as op_new() will count it: the delta and the whole key. */
    size_t key_len = strlen(r->cfg->redis_prefix) + 2 + user_len;
    if (r->buffered + len + key_len > (size_t)r->cfg->redis_buffer_bytes) {
        rc_metrics.profile_updates_dropped++;
        uint64_t now = rc_mono_us();
        if (now - r->dropped_logged_us > 1000000) { /* at most one line a second */
            r->dropped_logged_us = now;
            RC_WARN("redis", "profile buffer full: dropping the newest updates",
                    "buffered_bytes=%zu dropped_total=%llu", r->buffered,
                    (unsigned long long)rc_metrics.profile_updates_dropped);
        }
        return RC_EFULL;
    }
    if (op_new(r, OP_UPDATE, user, user_len, delta, len, seq) == NULL)
        return RC_ENOMEM;
    schedule_flush(r);
    return 0;
}

static int redis_erase(rc_profile_store_t *s, const char *user, size_t user_len,
                       rc_profile_seq_t seq)
{
    redis_store_t *r = (redis_store_t *)s;
    char key[512];
    if (strlen(r->cfg->redis_prefix) + 2 + user_len > sizeof(key))
        return RC_EINVAL;
    size_t key_len = make_key(r, user, user_len, key);
    /* Updates of this user not yet sent would write the profile again: drop them. Those in
     * flight are ahead of the DEL in the pipeline and are deleted by it. */
    for (rc_link_t *l = r->ops.next, *next; l != &r->ops; l = next) {
        next = l->next;
        op_t *op = RC_CONTAINER_OF(l, op_t, link);
        if (!op->in_flight && op->key_len == key_len && memcmp(op->key, key, key_len) == 0)
            op_free(r, op);
    }
    if (op_new(r, OP_ERASE, user, user_len, "", 0, seq) == NULL)
        return RC_ENOMEM;
    schedule_flush(r);
    return 0;
}

static int redis_ready(rc_profile_store_t *s, char *reason, size_t reason_len)
{
    redis_store_t *r = (redis_store_t *)s;
    char where[300];
    if (r->ready)
        return 0;
    describe(r, where, sizeof(where));
    snprintf(reason, reason_len, "redis %s unreachable: %s (attempt %u)", where,
             r->last_error[0] ? r->last_error : "connecting", r->attempts);
    return RC_EUNAVAIL;
}

static size_t redis_pending(const rc_profile_store_t *s)
{
    return ((const redis_store_t *)s)->n_ops;
}

/* A scan: the queue is short while Redis keeps up, and this runs once a second. */
static uint64_t redis_oldest_unconfirmed(const rc_profile_store_t *s)
{
    const redis_store_t *r = (const redis_store_t *)s;
    uint64_t oldest = UINT64_MAX;
    for (const rc_link_t *l = r->ops.next; l != &r->ops; l = l->next) {
        const op_t *op = RC_CONTAINER_OF(l, op_t, link);
        if (op->first_seq != 0 && op->first_seq < oldest)
            oldest = op->first_seq;
    }
    return oldest;
}

static void redis_close(rc_profile_store_t *s)
{
    redis_store_t *r = (redis_store_t *)s;
    if (r->closing)
        return;
    if (r->n_ops > 0)
        RC_WARN("redis", "closing with unconfirmed profile updates", "updates=%zu", r->n_ops);
    r->closing = true;
    r->ready = false;
    uv_timer_stop(&r->reconnect);
    uv_close((uv_handle_t *)&r->reconnect, NULL);
    uv_timer_stop(&r->watchdog);
    uv_close((uv_handle_t *)&r->watchdog, NULL);
    uv_timer_stop(&r->flush_soon);
    uv_close((uv_handle_t *)&r->flush_soon, NULL);
    /* Calls every outstanding callback with no reply (they return at once: closing). */
    if (r->ac != NULL)
        redisAsyncFree(r->ac);
    r->ac = NULL;
    update_gauges(r);
}

static void redis_destroy(rc_profile_store_t *s)
{
    redis_store_t *r = (redis_store_t *)s;
    while (!rc_list_empty(&r->ops))
        op_free(r, RC_CONTAINER_OF(r->ops.next, op_t, link));
    while (!rc_list_empty(&r->loads)) {
        load_t *l = RC_CONTAINER_OF(r->loads.next, load_t, link);
        rc_list_unlink(&l->link);
        free(l);
    }
    free(r);
}

static const rc_profile_ops_t redis_ops = {.name = "redis",
                                           .load = redis_load,
                                           .update = redis_update,
                                           .erase = redis_erase,
                                           .oldest_unconfirmed = redis_oldest_unconfirmed,
                                           .ready = redis_ready,
                                           .pending = redis_pending,
                                           .close = redis_close,
                                           .destroy = redis_destroy,
                                           .shared = true};

rc_profile_store_t *rc_profile_redis_new(uv_loop_t *loop, const rc_config_t *cfg,
                                         const char *writer, rc_profile_loaded_fn on_loaded,
                                         void *ctx, char *err, size_t errlen)
{
    redis_store_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_url(r, cfg->redis, err, errlen) != 0) {
        free(r);
        return NULL;
    }
    r->base.ops = &redis_ops;
    r->base.on_loaded = on_loaded;
    r->base.ctx = ctx;
    r->loop = loop;
    r->cfg = cfg;
    snprintf(r->writer, sizeof(r->writer), "%s", writer);
    rc_list_init(&r->ops);
    rc_list_init(&r->loads);
    uv_timer_init(loop, &r->reconnect);
    r->reconnect.data = r;
    uv_timer_init(loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_init(loop, &r->flush_soon);
    r->flush_soon.data = r;
    uv_timer_start(&r->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    update_gauges(r);
    connect_now(r);
    return &r->base;
}
