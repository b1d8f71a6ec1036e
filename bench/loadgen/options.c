/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command line: usage text, defaults, parsing and checks of every option into an
 * options_t. Targets outside 127.0.0.0/8 are refused here.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "loadgen.h"

static const char SOCKETIO_PATH[] = "/socket.io/?EIO=4&transport=websocket";

const char *const LG_SCENARIO_NAMES[] = {"latency", "idle", "handshake", "fanout"};

const char *const LG_OPEN_UNTIL_NAMES[] = {"recs", "welcome", "upgrade"};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: rankcast-loadgen [options]\n"
        "  --host ADDR            server address in 127.0.0.0/8 (default 127.0.0.1)\n"
        "  --port PORT            server port (default 8080)\n"
        "  --path PATH            WebSocket path (default /ws)\n"
        "  --observe-port PORT    cross-node mode: each user also listens on PORT with the\n"
        "                         same user id; latency is measured to the recs there\n"
        "  --observe-host ADDR    address of the observed node (default: --host)\n"
        "  -n, --connections N    connections to open, 1..%d (default 100); with\n"
        "                         --observe-port: users, two connections each\n"
        "  --sources K            spread over source addresses 127.0.0.1..127.0.0.K "
        "(default 1)\n"
        "  --connect-rate R       new connections per second (default 1000)\n"
        "  --connect-timeout S    give up on connections not ready after S s (default 30)\n"
        "  --rate R               events per second per connection (default 1)\n"
        "  --warmup S             seconds of events before measuring (default 5)\n"
        "  --duration S           seconds of measured events (default 20)\n"
        "  --drain-ms MS          wait at most MS for late answers, <= %d (default %d)\n"
        "  --catalog FILE         JSONL catalog; events use its \"id\" values\n"
        "  --items N              synthetic item ids i0..iN-1 (default 1000)\n"
        "  --surface NAME         surface to subscribe to (default home)\n"
        "  --k N                  list length to subscribe with (default 10)\n"
        "  --compact              subscribe with compact:true (lists come as recs_delta)\n"
        "  --server-pid PID       sample the server's VmRSS from /proc/PID/status\n"
        "  --json-out FILE        also write the JSON report to FILE\n"
        "  --seed N               random seed (default: from time and pid)\n"
        "scenarios (--scenario NAME, default latency):\n"
        "  latency                events at --rate per connection, event->recs latency\n"
        "  idle                   open -n connections, send nothing, hold them --duration s\n"
        "                         (server RSS per connection, failures, losses)\n"
        "  handshake              -n concurrent slots, each connects, upgrades (and with\n"
        "                         --handshake-until welcome: hello/welcome), closes, repeats;\n"
        "                         handshakes/s over --duration\n"
        "  fanout                 open -n connections, POST /api/v1/push to --push-segment at\n"
        "                         --push-rate per second; deliveries/s counted client-side\n"
        "  --stalled M            (latency) M more connections sharing the users of the first M\n"
        "                         that stop reading once the load starts\n"
        "  --stalled-k N          list length of the stalled connections (default 100)\n"
        "  --stalled-rcvbuf B     SO_RCVBUF of stalled connections (default 4096)\n"
        "  --framing NAME         rankcast (default) or socketio (Engine.IO v4 over websocket,\n"
        "                         messages as 42[\"msg\",{...}])\n"
        "  --tls                  wss: TLS over every connection (no certificate check unless\n"
        "                         --tls-ca FILE)\n"
        "  --handshake-until W    upgrade (default) or welcome\n"
        "  --push-rate R          fanout: pushes per second (default 10)\n"
        "  --push-segment S       fanout: segment (default all)\n"
        "  --admin-token T        fanout: bearer token of the push API\n"
        "  --source-offset K      first source address is 127.0.0.(1+K) (several processes)\n"
        "  --ready-file FILE      written once the connections are open (multi-process runs)\n"
        "  --open-until STAGE     idle: a connection is open after recs (default: upgrade,\n"
        "                         hello, subscribe), welcome (no subscription) or upgrade\n"
        "  -h, --help             this text\n",
        LG_MAX_CONNECTIONS, LG_DRAIN_MAX_MS, LG_DRAIN_MAX_MS);
}

static int parse_double(const char *name, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !(value >= lo && value <= hi)) {
        fprintf(stderr, "rankcast-loadgen: --%s must be a number in [%g, %g], got '%s'\n", name, lo,
                hi, text);
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_u32(const char *name, const char *text, uint32_t lo, uint32_t hi, uint32_t *out)
{
    double value = 0;
    if (parse_double(name, text, lo, hi, &value) < 0)
        return -1;
    if (value != (double)(uint32_t)value) {
        fprintf(stderr, "rankcast-loadgen: --%s must be a whole number, got '%s'\n", name, text);
        return -1;
    }
    *out = (uint32_t)value;
    return 0;
}

/*
 * Only loopback targets are allowed: the generator can open thousands of connections per
 * second, and a typo must not point that at another machine.
 */
static int resolve_loopback(const char *flag, const char *host, struct in_addr *out)
{
    const char *literal = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, literal, out) != 1) {
        fprintf(stderr, "rankcast-loadgen: --%s must be an IPv4 address, got '%s'\n", flag, host);
        return -1;
    }
    if ((ntohl(out->s_addr) >> 24) != 127) {
        fprintf(stderr, "rankcast-loadgen: refusing target %s outside 127.0.0.0/8\n", host);
        return -1;
    }
    return 0;
}

/*
 * Checks the targets, and in cross-node mode that two connections per user fit under the
 * per-process cap (-n counts users there).
 */
static int resolve_targets(options_t *o)
{
    if (resolve_loopback("host", o->host, &o->target) < 0)
        return -1;
    if (o->observe_port == 0)
        return 0;
    if (o->observe_host[0] == '\0')
        memcpy(o->observe_host, o->host, sizeof(o->host));
    if (resolve_loopback("observe-host", o->observe_host, &o->observe_target) < 0)
        return -1;
    if (o->observe_target.s_addr == o->target.s_addr && o->observe_port == o->port) {
        fprintf(stderr, "rankcast-loadgen: --observe-port must name another node than --port\n");
        return -1;
    }
    if ((uint64_t)o->connections * 2 > LG_MAX_CONNECTIONS) {
        fprintf(stderr,
                "rankcast-loadgen: %" PRIu32 " users need %" PRIu64
                " connections with --observe-port, more than %d\n",
                o->connections, (uint64_t)o->connections * 2, LG_MAX_CONNECTIONS);
        return -1;
    }
    return 0;
}

static bool is_surface_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

enum {
    OPT_HOST = 1000,
    OPT_PORT,
    OPT_PATH,
    OPT_SOURCES,
    OPT_CONNECT_RATE,
    OPT_CONNECT_TIMEOUT,
    OPT_RATE,
    OPT_WARMUP,
    OPT_DURATION,
    OPT_DRAIN_MS,
    OPT_CATALOG,
    OPT_ITEMS,
    OPT_SURFACE,
    OPT_K,
    OPT_SERVER_PID,
    OPT_JSON_OUT,
    OPT_SEED,
    OPT_OBSERVE_PORT,
    OPT_OBSERVE_HOST,
    OPT_SCENARIO,
    OPT_FRAMING,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_STALLED,
    OPT_STALLED_K,
    OPT_STALLED_RCVBUF,
    OPT_SOURCE_OFFSET,
    OPT_HANDSHAKE_UNTIL,
    OPT_PUSH_RATE,
    OPT_PUSH_SEGMENT,
    OPT_ADMIN_TOKEN,
    OPT_READY_FILE,
    OPT_OPEN_UNTIL,
    OPT_COMPACT,
};

static int copy_option(char *dst, size_t cap, const char *name, const char *value);

static int parse_name(const char *flag, const char *arg, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(arg, names[i]) == 0)
            return i;
    fprintf(stderr, "rankcast-loadgen: unknown --%s '%s'\n", flag, arg);
    return -1;
}

/* Options of the scenarios added after the latency run; 1 when `opt` is not one of them. */
static int apply_scenario_option(options_t *o, int opt, const char *arg)
{
    static const char *const framings[] = {"rankcast", "socketio"};
    static const char *const untils[] = {"upgrade", "welcome"};
    int v;
    switch (opt) {
    case OPT_SCENARIO:
        v = parse_name("scenario", arg, LG_SCENARIO_NAMES, 4);
        o->scenario = v;
        return v < 0 ? -1 : 0;
    case OPT_FRAMING:
        v = parse_name("framing", arg, framings, 2);
        o->framing = v;
        return v < 0 ? -1 : 0;
    case OPT_TLS:
        o->tls = true;
        return 0;
    case OPT_TLS_CA:
        o->tls_ca_path = arg;
        return 0;
    case OPT_STALLED:
        return parse_u32("stalled", arg, 0, LG_MAX_CONNECTIONS, &o->stalled);
    case OPT_STALLED_K:
        return parse_u32("stalled-k", arg, 1, 100, &o->stalled_k);
    case OPT_STALLED_RCVBUF:
        return parse_u32("stalled-rcvbuf", arg, 1024, 1u << 24, &o->stalled_rcvbuf);
    case OPT_SOURCE_OFFSET:
        return parse_u32("source-offset", arg, 0, LG_MAX_SOURCES - 1, &o->source_offset);
    case OPT_HANDSHAKE_UNTIL:
        v = parse_name("handshake-until", arg, untils, 2);
        o->handshake_until_welcome = v == 1;
        return v < 0 ? -1 : 0;
    case OPT_PUSH_RATE:
        return parse_double("push-rate", arg, 0.1, 100000, &o->push_rate_per_s);
    case OPT_PUSH_SEGMENT:
        if (strpbrk(arg, "\"\\ \t\r\n")) {
            fprintf(stderr, "rankcast-loadgen: --push-segment has no quotes or spaces\n");
            return -1;
        }
        return copy_option(o->push_segment, sizeof(o->push_segment), "push-segment", arg);
    case OPT_ADMIN_TOKEN:
        if (strpbrk(arg, "\"\\ \t\r\n")) {
            fprintf(stderr, "rankcast-loadgen: --admin-token has no quotes or spaces\n");
            return -1;
        }
        return copy_option(o->admin_token, sizeof(o->admin_token), "admin-token", arg);
    case OPT_READY_FILE:
        o->ready_file = arg;
        return 0;
    case OPT_COMPACT:
        o->compact = true;
        return 0;
    case OPT_OPEN_UNTIL:
        v = parse_name("open-until", arg, LG_OPEN_UNTIL_NAMES, 3);
        o->open_until = v;
        return v < 0 ? -1 : 0;
    default:
        return 1;
    }
}

static int copy_option(char *dst, size_t cap, const char *name, const char *value)
{
    if (strlen(value) >= cap) {
        fprintf(stderr, "rankcast-loadgen: --%s is too long\n", name);
        return -1;
    }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

static int apply_option(options_t *o, int opt, const char *arg)
{
    uint32_t u = 0;
    double d = 0;
    int scenario_rc = apply_scenario_option(o, opt, arg);
    if (scenario_rc <= 0)
        return scenario_rc;
    switch (opt) {
    case OPT_HOST:
        return copy_option(o->host, sizeof(o->host), "host", arg);
    case OPT_PORT:
        if (parse_u32("port", arg, 1, 65535, &u) < 0)
            return -1;
        o->port = (uint16_t)u;
        return 0;
    case OPT_OBSERVE_HOST:
        return copy_option(o->observe_host, sizeof(o->observe_host), "observe-host", arg);
    case OPT_OBSERVE_PORT:
        if (parse_u32("observe-port", arg, 1, 65535, &u) < 0)
            return -1;
        o->observe_port = (uint16_t)u;
        return 0;
    case OPT_PATH:
        /* The path goes verbatim into the request line and the JSON report. */
        if (arg[0] != '/' || strpbrk(arg, " \t\r\n\"\\")) {
            fprintf(stderr, "rankcast-loadgen: --path must start with / and have no spaces, "
                            "quotes or backslashes\n");
            return -1;
        }
        return copy_option(o->path, sizeof(o->path), "path", arg);
    case 'n':
        return parse_u32("connections", arg, 1, LG_MAX_CONNECTIONS, &o->connections);
    case OPT_SOURCES:
        return parse_u32("sources", arg, 1, LG_MAX_SOURCES, &o->sources);
    case OPT_CONNECT_RATE:
        return parse_double("connect-rate", arg, 1, 100000, &o->connect_rate_per_s);
    case OPT_CONNECT_TIMEOUT:
        return parse_double("connect-timeout", arg, 1, 600, &o->connect_timeout_s);
    case OPT_RATE:
        return parse_double("rate", arg, 0.01, 1000, &o->rate_per_s);
    case OPT_WARMUP:
        return parse_double("warmup", arg, 0, 3600, &o->warmup_s);
    case OPT_DURATION:
        return parse_double("duration", arg, 0.1, 3600, &o->duration_s);
    case OPT_DRAIN_MS:
        return parse_u32("drain-ms", arg, 0, LG_DRAIN_MAX_MS, &o->drain_ms);
    case OPT_CATALOG:
        o->catalog_path = arg;
        return 0;
    case OPT_ITEMS:
        return parse_u32("items", arg, 1, 10000000, &o->synthetic_items);
    case OPT_SURFACE:
        if (!is_surface_name(arg)) {
            fprintf(stderr, "rankcast-loadgen: --surface must be 1-32 of [a-z0-9_-]\n");
            return -1;
        }
        return copy_option(o->surface, sizeof(o->surface), "surface", arg);
    case OPT_K:
        return parse_u32("k", arg, 1, 100, &o->k);
    case OPT_SERVER_PID:
        if (parse_double("server-pid", arg, 1, 4194304, &d) < 0)
            return -1;
        o->server_pid = (long)d;
        return 0;
    case OPT_JSON_OUT:
        o->json_out_path = arg;
        return 0;
    case OPT_SEED:
        if (parse_double("seed", arg, 0, 9007199254740992.0, &d) < 0)
            return -1;
        o->seed = (uint64_t)d;
        return 0;
    default:
        return -1;
    }
}

/* Returns 0 to run, 1 after --help, -1 on a bad command line. */
int lg_parse_options(options_t *o, int argc, char **argv)
{
    static const struct option long_options[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"path", required_argument, NULL, OPT_PATH},
        {"observe-port", required_argument, NULL, OPT_OBSERVE_PORT},
        {"observe-host", required_argument, NULL, OPT_OBSERVE_HOST},
        {"connections", required_argument, NULL, 'n'},
        {"sources", required_argument, NULL, OPT_SOURCES},
        {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"drain-ms", required_argument, NULL, OPT_DRAIN_MS},
        {"catalog", required_argument, NULL, OPT_CATALOG},
        {"items", required_argument, NULL, OPT_ITEMS},
        {"surface", required_argument, NULL, OPT_SURFACE},
        {"k", required_argument, NULL, OPT_K},
        {"server-pid", required_argument, NULL, OPT_SERVER_PID},
        {"json-out", required_argument, NULL, OPT_JSON_OUT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"scenario", required_argument, NULL, OPT_SCENARIO},
        {"framing", required_argument, NULL, OPT_FRAMING},
        {"tls", no_argument, NULL, OPT_TLS},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"stalled", required_argument, NULL, OPT_STALLED},
        {"stalled-k", required_argument, NULL, OPT_STALLED_K},
        {"stalled-rcvbuf", required_argument, NULL, OPT_STALLED_RCVBUF},
        {"source-offset", required_argument, NULL, OPT_SOURCE_OFFSET},
        {"handshake-until", required_argument, NULL, OPT_HANDSHAKE_UNTIL},
        {"push-rate", required_argument, NULL, OPT_PUSH_RATE},
        {"push-segment", required_argument, NULL, OPT_PUSH_SEGMENT},
        {"admin-token", required_argument, NULL, OPT_ADMIN_TOKEN},
        {"ready-file", required_argument, NULL, OPT_READY_FILE},
        {"open-until", required_argument, NULL, OPT_OPEN_UNTIL},
        {"compact", no_argument, NULL, OPT_COMPACT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    snprintf(o->path, sizeof(o->path), "/ws");
    snprintf(o->surface, sizeof(o->surface), "home");
    o->port = 8080;
    o->connections = 100;
    o->sources = 1;
    o->connect_rate_per_s = 1000;
    o->connect_timeout_s = 30;
    o->rate_per_s = 1;
    o->warmup_s = 5;
    o->duration_s = 20;
    o->drain_ms = LG_DRAIN_MAX_MS;
    o->synthetic_items = 1000;
    o->k = 10;
    o->seed = lg_mono_ns() ^ ((uint64_t)getpid() << 32);
    o->stalled_k = 100;
    o->stalled_rcvbuf = 4096;
    o->push_rate_per_s = 10;
    snprintf(o->push_segment, sizeof(o->push_segment), "all");
    bool path_given = false;
    for (int i = 1; i < argc; i++)
        path_given |= strcmp(argv[i], "--path") == 0 || strncmp(argv[i], "--path=", 7) == 0;

    int opt;
    while ((opt = getopt_long(argc, argv, "n:h", long_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == '?' || apply_option(o, opt, optarg) < 0) {
            fprintf(stderr, "rankcast-loadgen: try --help\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rankcast-loadgen: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->seed == 0)
        o->seed = 0x9E3779B97F4A7C15ull;
    if (o->framing == FRAMING_SOCKETIO && !path_given)
        snprintf(o->path, sizeof(o->path), "%s", SOCKETIO_PATH);
    if (o->stalled &&
        (o->observe_port || o->scenario != SCEN_LATENCY || o->stalled > o->connections ||
         (uint64_t)o->connections + o->stalled > LG_MAX_CONNECTIONS)) {
        fprintf(stderr,
                "rankcast-loadgen: --stalled needs the latency scenario, no "
                "--observe-port, at most -n of them and at most %d connections in all\n",
                LG_MAX_CONNECTIONS);
        return -1;
    }
    if (o->open_until != OPEN_UNTIL_RECS && o->scenario != SCEN_IDLE) {
        fprintf(stderr, "rankcast-loadgen: --open-until is for the idle scenario\n");
        return -1;
    }
    if (o->scenario != SCEN_LATENCY && o->observe_port) {
        fprintf(stderr, "rankcast-loadgen: --observe-port needs the latency scenario\n");
        return -1;
    }
    if (o->scenario == SCEN_FANOUT && (o->admin_token[0] == '\0' || o->tls)) {
        fprintf(stderr, "rankcast-loadgen: fanout needs --admin-token (and posts in plaintext: "
                        "no --tls)\n");
        return -1;
    }
    if (o->sources + o->source_offset > LG_MAX_SOURCES) {
        fprintf(stderr, "rankcast-loadgen: --sources + --source-offset must be <= %d\n",
                LG_MAX_SOURCES);
        return -1;
    }
    return resolve_targets(o);
}
