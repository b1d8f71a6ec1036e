/* SPDX-License-Identifier: Apache-2.0 */
/* The settings table and its parsers. Every setting is declared once in `settings[]`; the
 * file, environment and flag parsers only look names up there, so a new setting is one
 * line here plus a field in rc_config_t. */
#include "util/config.h"
#include "util/error.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_INT, T_DOUBLE, T_BOOL, T_STR } setting_type_t;

typedef struct {
    const char *name; /* canonical, with dashes: the flag is --name */
    setting_type_t type;
    size_t offset;
    const char *def;
    double min, max; /* numeric bounds, inclusive */
    const char *help;
} setting_t;

#define OFF(f) offsetof(rc_config_t, f)

static const setting_t settings[] = {
    {"port", T_INT, OFF(port), "8080", 0, 65535, "TCP port for WebSocket and HTTP (0: any free)"},
    {"listen", T_STR, OFF(listen), "", 0, 0, "interface address to bind; empty: all"},
    {"node-id", T_STR, OFF(node_id), "", 0, 0, "this node's id; empty: <hostname>-<pid>"},
    {"web-root", T_STR, OFF(web_root), RC_DEFAULT_WEB_ROOT, 0, 0, "directory of static files"},
    {"sdk-root", T_STR, OFF(sdk_root), RC_DEFAULT_SDK_ROOT, 0, 0,
     "the JavaScript SDK (client-sdk/js) the demo pages import, served under /sdk/src/src/; empty: "
     "none"},
    {"redis", T_STR, OFF(redis), "", 0, 0,
     "Redis for profiles: redis://[:password@]host:port[/db] or unix:///path[?db=N]; "
     "empty: in-memory"},
    {"redis-prefix", T_STR, OFF(redis_prefix), "rc:", 0, 0, "prefix of every Redis key"},
    {"redis-ttl-s", T_INT, OFF(redis_ttl_s), "2592000", 60, 315360000,
     "a profile not updated for this long expires"},
    {"memory-profiles-max", T_INT, OFF(memory_profiles_max), "1000000", 0, 100000000,
     "without --redis, profiles kept in memory at most; past it the least recently written "
     "goes; 0: no limit"},
    {"memory-profiles-ttl-s", T_INT, OFF(memory_profiles_ttl_s), "2592000", 0, 315360000,
     "without --redis, a profile not updated for this long expires; 0: never"},
    {"redis-buffer-bytes", T_INT, OFF(redis_buffer_bytes), "16777216", 4096, 4294967296,
     "profile updates held while Redis is unreachable; past it the newest are dropped"},
    {"kafka", T_STR, OFF(kafka), "", 0, 0, "Kafka brokers HOST:PORT[,..]; empty: in-process bus"},
    {"kafka-topic-prefix", T_STR, OFF(kafka_topic_prefix), "rankcast.", 0, 0,
     "topics are <prefix>events, <prefix>pushes and <prefix>catalog"},
    {"kafka-partitions", T_INT, OFF(kafka_partitions), "8", 1, 1024,
     "partitions of the topics a node creates"},
    {"kafka-buffer-messages", T_INT, OFF(kafka_buffer_messages), "100000", 100, 10000000,
     "messages held while Kafka is unreachable; past it events are refused (4503, retry)"},
    {"kafka-replay-h", T_INT, OFF(kafka_replay_h), "168", 0, 87600,
     "a node that starts learns this much of the events topic's history (bounded by the "
     "topic's retention) before it is ready, so it ranks as the others do; 0: from now on"},
    {"kafka-linger-ms", T_DOUBLE, OFF(kafka_linger_ms), "1", 0, 1000,
     "how long the producer waits to batch messages (latency against throughput)"},
    {"workers", T_INT, OFF(workers), "1", 1, 64,
     "share-nothing worker processes on one port (SO_REUSEPORT); >1 needs --kafka"},
    {"loops", T_INT, OFF(loops), "1", 1, 64,
     "event loops (threads) in this process on one port, sharing the models; >1 is "
     "refused with --data-dir and --kafka (docs/engine.md, \"Loops in one node\")"},
    {"catalog", T_STR, OFF(catalog), "", 0, 0, "catalog file (JSON lines) loaded at start"},
    {"import", T_STR, OFF(import), "", 0, 0,
     "events to learn from at start, before serving: lines ts_ms<TAB>user<TAB>kind<TAB>item"
     "[<TAB>value], sorted by time (docs/engine.md, \"History\")"},
    {"import-session-gap-s", T_INT, OFF(import_session_gap_s), "1800", 1, 86400,
     "in --import, a user silent this long (event time) starts a new session"},
    {"data-dir", T_STR, OFF(data_dir), "", 0, 0,
     "directory of the event log: an ack waits for it, and a restart reads it back "
     "(docs/durability.md); empty: nothing survives a restart"},
    {"fsync", T_STR, OFF(fsync), "always", 0, 0,
     "with --data-dir, when an event is durable: always (synced to disk before its ack, "
     "grouped), interval (written before its ack, synced every --fsync-interval-ms), never "
     "(written before its ack; the kernel syncs)"},
    {"fsync-interval-ms", T_INT, OFF(fsync_interval_ms), "1000", 1, 60000,
     "with --fsync interval, how often the log is synced"},
    {"log-segment-mb", T_INT, OFF(log_segment_mb), "64", 1, 4096,
     "the event log is kept in files of this size"},
    {"log-retain-mb", T_INT, OFF(log_retain_mb), "4096", 0, 1048576,
     "the oldest files of the event log are deleted past this size; 0: no limit"},
    {"log-retain-h", T_INT, OFF(log_retain_h), "168", 0, 87600,
     "files of the event log older than this are deleted (erased users' events are gone from "
     "disk by then); 0: no limit"},
    {"warm-listen-mb", T_INT, OFF(warm_listen_mb), "64", 0, 1048576,
     "with --data-dir, a read-back of more of the log than this lets the node listen "
     "meanwhile: /readyz answers 503 \"warming\", sessions and the admin API 503, until it is "
     "read; less is read before the node listens"},
    {"warm-slice-records", T_INT, OFF(warm_slice_records), "20000", 1, 10000000,
     "while warming, records read back per loop turn (about 1 µs each): fewer keep health "
     "checks and metrics quicker, more warm sooner"},
    {"dedupe-users-max", T_INT, OFF(dedupe_users_max), "200000", 0, 100000000,
     "users without a session here whose latest event ids a node keeps (read back from its "
     "log, or taken by other nodes), so that their retries are recognised; the oldest goes"},
    {"snapshot-interval-s", T_INT, OFF(snapshot_interval_s), "300", 0, 86400,
     "with --data-dir, how often what the node learned is written to a snapshot, so that a "
     "restart reads only the log after it (also on a clean stop); 0: only on a clean stop"},
    {"dedupe-restore-s", T_INT, OFF(dedupe_restore_s), "3600", 0, 604800,
     "after a restart, retries of events acknowledged this long before it are still "
     "recognised (read back from the event log)"},
    {"catalog-open", T_BOOL, OFF(catalog_open), "false", 0, 0,
     "learn items from events that name ids not in the catalog (--demo turns it on); off, such "
     "events get 4012"},
    {"catalog-learned-max", T_INT, OFF(catalog_learned_max), "10000", 0, 50000000,
     "in an open catalog, items learned from traffic held at a time (below --max-items: the "
     "admin API keeps the rest); past it new ids are not learned"},
    {"catalog-learn-users", T_INT, OFF(catalog_learn_users), "3", 1, 16,
     "in an open catalog, an id is learned (and can reach other users' lists) once events of "
     "this many distinct users named it; until then its events are acknowledged, not learned"},
    {"max-items", T_INT, OFF(max_items), "1000000", 1, 50000000, "catalog capacity"},
    {"demo", T_BOOL, OFF(demo), "false", 0, 0,
     "demo mode: the demo catalog unless --catalog is given, anonymous sessions"},
    {"anonymous", T_BOOL, OFF(anonymous), "false", 0, 0,
     "allow sessions without a token (--demo turns it on), under anonymous ids the server "
     "issues (see --anonymous-ids)"},
    {"consent-default", T_BOOL, OFF(consent_default), "true", 0, 0,
     "consent assumed when hello says nothing; without consent nothing is stored"},
    {"admin-token", T_STR, OFF(admin_token), "", 0, 0,
     "bearer token of the HTTP admin API (/api/v1/...); empty: the admin API is off"},
    {"jwt-secret", T_STR, OFF(jwt_secret), "", 0, 0,
     "HS256 secret (at least 32 bytes) that client tokens are signed with; empty: HS256 off"},
    {"jwt-public-key", T_STR, OFF(jwt_public_key), "", 0, 0,
     "PEM public key file for client tokens: RSA (RS256) or P-256 (ES256); re-read on SIGHUP"},
    {"jwt-issuer", T_STR, OFF(jwt_issuer), "", 0, 0, "required `iss` of client tokens; empty: any"},
    {"jwt-audience", T_STR, OFF(jwt_audience), "", 0, 0,
     "required `aud` of client tokens; empty: any"},
    {"jwt-leeway-s", T_INT, OFF(jwt_leeway_s), "30", 0, 600,
     "clock skew tolerated on `exp` and `nbf`"},
    {"tls-cert", T_STR, OFF(tls_cert), "", 0, 0,
     "PEM certificate chain: serve wss:// and https:// only (TLS 1.2+); re-read on SIGHUP"},
    {"tls-key", T_STR, OFF(tls_key), "", 0, 0, "PEM private key of --tls-cert"},
    {"allowed-origins", T_STR, OFF(allowed_origins), "", 0, 0,
     "comma-separated Origin values that may open WebSockets (https://shop.example); "
     "empty: any. Clients sending no Origin (native apps) are not affected"},
    {"max-conns-per-ip", T_INT, OFF(max_conns_per_ip), "1000", 0, 1000000,
     "open connections per client address; over it the handshake gets 429; 0: no limit"},
    {"ping-interval-s", T_INT, OFF(ping_interval_s), "30", 0, 86400,
     "a connection silent this long is sent a WebSocket ping; 0: never"},
    {"pong-timeout-s", T_INT, OFF(pong_timeout_s), "15", 1, 86400,
     "a pinged connection still silent after this long is closed (4023 idle_timeout)"},
    {"pseudonym-key", T_STR, OFF(pseudonym_key), "", 0, 0,
     "secret of the keyed hash that replaces user ids on Kafka (the same on every node); "
     "empty: a random key per process (one node only)"},
    {"anonymous-ids", T_STR, OFF(anonymous_ids), "signed", 0, 0,
     "signed: an anonymous session's id is one the server issued (anon-, a random part and an "
     "HMAC), any other gets 4013; chosen: any id a client names is taken (--demo does this; for "
     "tests, load generators and replays: the id is then a bearer credential)"},
    {"anon-id-key", T_STR, OFF(anon_id_key), "", 0, 0,
     "secret (at least 32 bytes) that issued anonymous ids are signed under, the same on every "
     "node; empty: derived from the pseudonym key (kept in --data-dir without --pseudonym-key)"},
    {"anon-id-key-previous", T_STR, OFF(anon_id_key_previous), "", 0, 0,
     "during a rotation of --anon-id-key, the previous secret: ids it signed are still accepted "
     "(the --pseudonym-key value here accepts ids issued before --anon-id-key was set)"},
    {"experiment", T_STR, OFF(experiment), "", 0, 0,
     "A/B test of ranker blends: NAME[:SALT];VARIANT=COVISIT,CONTENT,TRENDING,POPULAR[@SHARE];..."},
    {"max-message-bytes", T_INT, OFF(max_message_bytes), "65536", 1024, 16777216,
     "largest client message accepted"},
    {"max-batch", T_INT, OFF(max_batch), "100", 1, 1000, "most events in one `events` message"},
    {"max-subscriptions", T_INT, OFF(max_subscriptions), "16", 1, 64, "surfaces per connection"},
    {"max-k", T_INT, OFF(max_k), "100", 1, 100, "longest list a subscription may ask for"},
    {"events-per-sec", T_INT, OFF(events_per_sec), "200", 1, 1000000,
     "events per second per connection (token bucket rate)"},
    {"events-burst", T_INT, OFF(events_burst), "400", 1, 1000000,
     "events a client may send at once (the bucket holds one more second of --events-per-sec for "
     "network jitter)"},
    {"hello-timeout-ms", T_INT, OFF(hello_timeout_ms), "10000", 100, 600000,
     "time a connection has to send hello"},
    {"outbox-max-bytes", T_INT, OFF(outbox_max_bytes), "262144", 4096, 67108864,
     "queued bytes per connection before it is closed as a slow consumer"},
    {"rx-buffer-bytes", T_INT, OFF(rx_buffer_bytes), "256", 128, 1048576,
     "receive buffer per connection (memory per connection); larger messages are reassembled"},
    {"ws-deflate", T_BOOL, OFF(ws_deflate), "false", 0, 0,
     "offer permessage-deflate (RFC 7692): fewer bytes on the wire for more CPU"},
    {"ws-deflate-min-bytes", T_INT, OFF(ws_deflate_min_bytes), "256", 0, 1048576,
     "with --ws-deflate, smaller messages (acks, pongs) are sent uncompressed"},
    {"session-idle-s", T_INT, OFF(session_idle_s), "300", 1, 86400,
     "a session with no connection is dropped after this long"},
    {"event-time-past-s", T_INT, OFF(event_time_past_s), "86400", 0, 315360000,
     "an event's ts_ms up to this far behind the server's clock is its time for learning (an "
     "offline queue sent late); an older one is learned at the time it arrives"},
    {"event-time-future-s", T_INT, OFF(event_time_future_s), "300", 0, 86400,
     "an event's ts_ms up to this far ahead of the server's clock (client clock skew) is its "
     "time for learning; a later one is learned at the time it arrives"},
    {"covisit-neighbors", T_INT, OFF(covisit_neighbors), "64", 4, 256,
     "co-visitation neighbours kept per item"},
    {"covisit-half-life-s", T_DOUBLE, OFF(covisit_half_life_s), "2592000", 1, 1e9,
     "half-life of co-visitation weights"},
    {"trending-half-life-s", T_DOUBLE, OFF(trending_half_life_s), "3600", 1, 1e9,
     "half-life of trending scores"},
    {"profile-flush-ms", T_INT, OFF(profile_flush_ms), "100", 1, 60000,
     "longest delay of a Redis profile write (in memory: when the session ends)"},
    {"drain-ms", T_INT, OFF(drain_ms), "2000", 0, 600000,
     "on SIGTERM/SIGINT: time clients get after `drain` before the server exits"},
    {"heap-trim-s", T_INT, OFF(heap_trim_s), "10", 0, 3600,
     "after connections came or went, give freed heap pages back to the system at most this "
     "often (0: never)"},
    {"log-level", T_STR, OFF(log_level), "info", 0, 0, "debug, info, warn, error or off"},
    {"config", T_STR, OFF(config), "", 0, 0, "config file of `name = value` lines"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static const setting_t *find_setting(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *a = settings[i].name, *b = name;
        /* Dashes and underscores are the same letter, so file keys may use either. */
        while (*a && *b && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return &settings[i];
    }
    return NULL;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off")) {
        *out = false;
        return 0;
    }
    return RC_EINVAL;
}

static int set_value(rc_config_t *cfg, const setting_t *s, const char *value, char *err,
                     size_t errlen)
{
    char *field = (char *)cfg + s->offset;
    char *end;

    switch (s->type) {
    case T_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, errlen, "%s: '%s' is not an integer", s->name, value);
            return RC_EINVAL;
        }
        if ((double)v < s->min || (double)v > s->max) {
            snprintf(err, errlen, "%s: %lld is outside %.0f..%.0f", s->name, v, s->min, s->max);
            return RC_ERANGE;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case T_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            snprintf(err, errlen, "%s: '%s' is not a number", s->name, value);
            return RC_EINVAL;
        }
        if (v < s->min || v > s->max) {
            snprintf(err, errlen, "%s: %g is outside %g..%g", s->name, v, s->min, s->max);
            return RC_ERANGE;
        }
        *(double *)field = v;
        return 0;
    }
    case T_BOOL:
        if (parse_bool(value, (bool *)field) != 0) {
            snprintf(err, errlen, "%s: '%s' is not true/false", s->name, value);
            return RC_EINVAL;
        }
        return 0;
    case T_STR: {
        char *copy = strdup(value);
        if (copy == NULL)
            return RC_ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    }
    return RC_EINVAL;
}

int rc_config_set(rc_config_t *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const setting_t *s = find_setting(name);
    if (s == NULL) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return RC_ENOENT;
    }
    return set_value(cfg, s, value, err, errlen);
}

int rc_config_init(rc_config_t *cfg)
{
    char err[128];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        int rc = set_value(cfg, &settings[i], settings[i].def, err, sizeof(err));
        if (rc != 0) {
            rc_config_free(cfg);
            return rc;
        }
    }
    return 0;
}

void rc_config_free(rc_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].type == T_STR) {
            char **p = (char **)((char *)cfg + settings[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

typedef struct {
    rc_config_t *cfg;
    char *err;
    size_t errlen;
    int rc;
} file_ctx_t;

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    file_ctx_t *ctx = user;
    (void)section;
    if (ctx->rc != 0)
        return 0;
    if (strcmp(name, "config") == 0) {
        snprintf(ctx->err, ctx->errlen, "a config file cannot name another config file");
        ctx->rc = RC_EINVAL;
        return 0;
    }
    ctx->rc = rc_config_set(ctx->cfg, name, value, ctx->err, ctx->errlen);
    return ctx->rc == 0;
}

int rc_config_load_file(rc_config_t *cfg, const char *path, char *err, size_t errlen)
{
    file_ctx_t ctx = {cfg, err, errlen, 0};
    char inner[256] = "";
    ctx.err = inner;
    ctx.errlen = sizeof(inner);
    int line = ini_parse(path, on_ini_line, &ctx);
    if (line == -1) {
        snprintf(err, errlen, "config file %s: cannot open", path);
        return RC_EIO;
    }
    if (line != 0 || ctx.rc != 0) {
        snprintf(err, errlen, "config file %s:%d: %s", path, line,
                 inner[0] ? inner : "syntax error");
        return ctx.rc != 0 ? ctx.rc : RC_EPARSE;
    }
    return 0;
}

/* RANKCAST_ + the name upper-cased with dashes as underscores: node-id -> RANKCAST_NODE_ID. */
static void env_name(const char *name, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "RANKCAST_");
    for (; *name && n + 1 < outlen; name++)
        out[n++] = *name == '-' ? '_' : (char)(*name >= 'a' && *name <= 'z' ? *name - 32 : *name);
    out[n] = '\0';
}

int rc_config_load_env(rc_config_t *cfg, char *err, size_t errlen)
{
    char env[64];
    for (size_t i = 0; i < N_SETTINGS; i++) {
        env_name(settings[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (v == NULL || strcmp(settings[i].name, "config") == 0)
            continue;
        char inner[200];
        int rc = set_value(cfg, &settings[i], v, inner, sizeof(inner));
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", env, inner);
            return rc;
        }
    }
    return 0;
}

/* Finds the value of --config / RANKCAST_CONFIG before anything else, so that the file sits
 * below the environment and the flags in precedence. */
static const char *find_config_path(int argc, char **argv)
{
    const char *path = getenv("RANKCAST_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    return path;
}

int rc_config_from_args(rc_config_t *cfg, int argc, char **argv, bool *want_help,
                        bool *want_version, char *err, size_t errlen)
{
    const char *path = find_config_path(argc, argv);
    int rc;

    *want_help = *want_version = false;
    if (path != NULL && *path) {
        if ((rc = rc_config_load_file(cfg, path, err, errlen)) != 0)
            return rc;
        if ((rc = rc_config_set(cfg, "config", path, err, errlen)) != 0)
            return rc;
    }
    if ((rc = rc_config_load_env(cfg, err, errlen)) != 0)
        return rc;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *want_help = true;
            continue;
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
            *want_version = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return RC_EINVAL;
        }
        char name[64];
        const char *eq = strchr(arg + 2, '=');
        size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen == 0 || nlen >= sizeof(name)) {
            snprintf(err, errlen, "bad flag '%s'", arg);
            return RC_EINVAL;
        }
        memcpy(name, arg + 2, nlen);
        name[nlen] = '\0';
        const setting_t *s = find_setting(name);
        if (s == NULL) {
            snprintf(err, errlen, "unknown flag '--%s' (see --help)", name);
            return RC_ENOENT;
        }
        const char *value;
        if (eq != NULL)
            value = eq + 1;
        else if (s->type == T_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            value = "true"; /* a bare boolean flag switches it on */
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, errlen, "flag '--%s' needs a value", name);
            return RC_EINVAL;
        }
        if ((rc = set_value(cfg, s, value, err, errlen)) != 0)
            return rc;
    }
    return 0;
}

void rc_config_print_help(void *out)
{
    FILE *f = out;
    char env[64];
    fprintf(f, "usage: rankcast [--name value | --name=value | --flag] ...\n\n"
               "Settings (later wins: default < config file < environment < flag):\n\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        env_name(settings[i].name, env, sizeof(env));
        fprintf(f, "  --%-22s %s\n  %-24s env %s, default '%s'\n", settings[i].name,
                settings[i].help, "", env, settings[i].def);
    }
    fprintf(f, "\n  --help, --version\n");
}
