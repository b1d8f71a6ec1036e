/*
 * rankcast-loadgen: an open-loop WebSocket load generator for rankcast (see bench/README.md).
 * It holds N client connections on one epoll loop, sends events at a fixed rate on each, and
 * measures the time from writing an event to reading the `recs` list whose `cause` names it.
 * With --observe-port, each user also holds a second, silent connection to another node, and
 * the latency is measured to that node's `recs`: the time an event takes to cross the bus.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/*
 * The machine allows 20,000 open files per process; 19,000 connections leave room for the
 * epoll fd, stdio and the files we open, and stop a typo from exhausting the descriptor table.
 */
#define LG_MAX_CONNECTIONS   19000
#define LG_FD_RESERVE        64
#define LG_MAX_SOURCES       254
#define LG_DRAIN_MAX_MS      3000
#define LG_HANDSHAKE_MAX     8192
#define LG_MESSAGE_MAX       (1u << 20)
#define LG_OUTBUF_MAX        (1u << 20)
#define LG_READ_CHUNK        (256u * 1024u)
#define LG_READ_ROUNDS       4
#define LG_EPOLL_BATCH       1024
#define LG_LOOP_MAX_WAIT_MS  100
#define LG_SENDS_PER_ROUND   4096
#define LG_DRAIN_QUIET_MS    500
#define LG_MAX_CODES         32
#define LG_ID_MAX            64
#define LG_INBUF_KEEP_BYTES  16384
#define LG_WATCHDOG_SLACK_MS 5000

#define NS_PER_MS  1000000ull
#define NS_PER_SEC 1000000000ull

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char WS_SUBPROTOCOL[] = "rankcast.v1.json";
static const char SOCKETIO_PATH[] = "/socket.io/?EIO=4&transport=websocket";
#define LG_HTTP_SLOTS    64
#define LG_HTTP_TAG      0x80000000u
#define LG_HTTP_RESP_MAX 4096
static const char *const EVENT_KINDS[] = {"view", "click", "cart"};

/* ---------------------------------------------------------------------------------------- */
/* Clock, random numbers                                                                    */
/* ---------------------------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * xorshift64*: fast and good enough for phases, item choice and frame masks. RFC 6455 asks
 * for unpredictable masks to protect proxies from cache poisoning; there is no proxy between
 * a loopback benchmark and its server, so a fast generator is the right trade here.
 */
static uint64_t prng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---------------------------------------------------------------------------------------- */
/* Log-bucketed latency histogram                                                           */
/* ---------------------------------------------------------------------------------------- */

/*
 * Values (nanoseconds) below 256 are counted exactly; above, each power of two is split into
 * 128 buckets, so a bucket is at most 1/128 of its lower bound wide and reporting its middle
 * is off by at most 0.4 %: inside the 1 % the report promises, in constant memory.
 */
#define HIST_SUB_BITS  7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 40
#define HIST_BUCKETS   ((HIST_MAX_SHIFT + 2) * HIST_SUB_COUNT)

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
    uint64_t sum_ns;
} hist_t;

static size_t hist_index(uint64_t value_ns)
{
    if (value_ns < 2 * HIST_SUB_COUNT)
        return (size_t)value_ns;
    int msb = 63 - __builtin_clzll(value_ns);
    int shift = msb - HIST_SUB_BITS;
    if (shift > HIST_MAX_SHIFT)
        return HIST_BUCKETS - 1;
    return (size_t)shift * HIST_SUB_COUNT + (size_t)(value_ns >> shift);
}

static uint64_t hist_bucket_middle_ns(size_t index)
{
    if (index < 2 * HIST_SUB_COUNT)
        return index;
    size_t shift = index / HIST_SUB_COUNT - 1;
    uint64_t mantissa = index - shift * HIST_SUB_COUNT;
    return (mantissa << shift) + ((1ull << shift) >> 1);
}

static void hist_record(hist_t *h, uint64_t value_ns)
{
    h->counts[hist_index(value_ns)]++;
    h->total++;
    h->sum_ns += value_ns;
    if (value_ns > h->max_ns)
        h->max_ns = value_ns;
}

/* The smallest recorded value v such that at least `fraction` of all values are <= v. */
static uint64_t hist_quantile_ns(const hist_t *h, double fraction)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(fraction * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t middle = hist_bucket_middle_ns(i);
            return middle < h->max_ns ? middle : h->max_ns;
        }
    }
    return h->max_ns;
}

/* ---------------------------------------------------------------------------------------- */
/* Byte buffers                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* A growable byte buffer; bytes [off, len) are pending. */
typedef struct {
    char *data;
    size_t len;
    size_t off;
    size_t cap;
} buf_t;

static void buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Makes room for `extra` more bytes, compacting first; fails beyond `limit` pending bytes. */
static int buf_reserve(buf_t *b, size_t extra, size_t limit)
{
    if (b->off > 0 && (b->off == b->len || b->off > b->cap / 2)) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len - b->off + extra > limit)
        return -1;
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_append(buf_t *b, const void *bytes, size_t n, size_t limit)
{
    if (buf_reserve(b, n, limit) < 0)
        return -1;
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Minimal JSON scanning                                                                    */
/* ---------------------------------------------------------------------------------------- */

/*
 * The generator must not become the bottleneck it measures, so it does not parse whole
 * messages: it finds `"key"` followed by a colon and reads the scalar after it. Server
 * messages are flat at the top level for the keys we need (type, cause, code, id, ids), and
 * item maps inside `recs` use other key names, so the first match is the top-level one.
 */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Returns a pointer just past the colon that follows `"key"`, or NULL. */
static const char *json_find_value(const char *js, size_t len, const char *key)
{
    char needle[40];
    int needle_len = snprintf(needle, sizeof(needle), "\"%s\"", key);
    if (needle_len < 0 || (size_t)needle_len >= sizeof(needle))
        return NULL;
    const char *end = js + len;
    const char *p = js;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), needle, (size_t)needle_len);
        if (!hit)
            return NULL;
        const char *after = skip_ws(hit + needle_len, end);
        bool escaped = hit > js && hit[-1] == '\\';
        if (!escaped && after < end && *after == ':')
            return skip_ws(after + 1, end);
        p = hit + 1;
    }
    return NULL;
}

/* Reads a JSON string without escapes starting at `p` (at its quote); returns end or NULL. */
static const char *json_read_plain_string(const char *p, const char *end, const char **out,
                                          size_t *out_len)
{
    if (p >= end || *p != '"')
        return NULL;
    const char *start = p + 1;
    const char *q = start;
    while (q < end && *q != '"') {
        if (*q == '\\')
            return NULL;
        q++;
    }
    if (q >= end)
        return NULL;
    *out = start;
    *out_len = (size_t)(q - start);
    return q + 1;
}

static int json_find_string(const char *js, size_t len, const char *key, const char **out,
                            size_t *out_len)
{
    const char *p = json_find_value(js, len, key);
    if (!p)
        return -1;
    return json_read_plain_string(p, js + len, out, out_len) ? 0 : -1;
}

static int json_find_int(const char *js, size_t len, const char *key, long *out)
{
    const char *p = json_find_value(js, len, key);
    const char *end = js + len;
    if (!p || p >= end)
        return -1;
    bool negative = *p == '-';
    if (negative)
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    long value = 0;
    while (p < end && *p >= '0' && *p <= '9' && value < 100000000L)
        value = value * 10 + (*p++ - '0');
    *out = negative ? -value : value;
    return 0;
}

static bool str_equals(const char *s, size_t len, const char *literal)
{
    return strlen(literal) == len && memcmp(s, literal, len) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char host[64];
    struct in_addr target;
    uint16_t port;
    /* Cross-node mode when observe_port != 0: every user's observer connects here. */
    char observe_host[64];
    struct in_addr observe_target;
    uint16_t observe_port;
    char path[128];
    uint32_t connections;
    uint32_t sources;
    double connect_rate_per_s;
    double rate_per_s;
    double warmup_s;
    double duration_s;
    double connect_timeout_s;
    uint32_t drain_ms;
    const char *catalog_path;
    uint32_t synthetic_items;
    char surface[33];
    uint32_t k;
    long server_pid;
    const char *json_out_path;
    uint64_t seed;
    /* Scenarios beyond the event->push latency run (see usage()). */
    int scenario;
    int framing;
    bool tls;
    const char *tls_ca_path;
    uint32_t stalled;
    uint32_t stalled_k;
    uint32_t stalled_rcvbuf;
    uint32_t source_offset;
    bool handshake_until_welcome;
    int open_until; /* OPEN_UNTIL_*: what makes a connection "open" (idle memory by stage) */
    double push_rate_per_s;
    char push_segment[64];
    char admin_token[128];
    const char *ready_file;
} options_t;

typedef enum { SCEN_LATENCY, SCEN_IDLE, SCEN_HANDSHAKE, SCEN_FANOUT } scenario_t;
static const char *const SCENARIO_NAMES[] = {"latency", "idle", "handshake", "fanout"};
typedef enum { FRAMING_RANKCAST, FRAMING_SOCKETIO } framing_t;
typedef enum { OPEN_UNTIL_RECS, OPEN_UNTIL_WELCOME, OPEN_UNTIL_UPGRADE } open_until_t;
static const char *const OPEN_UNTIL_NAMES[] = {"recs", "welcome", "upgrade"};

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
        v = parse_name("scenario", arg, SCENARIO_NAMES, 4);
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
    case OPT_OPEN_UNTIL:
        v = parse_name("open-until", arg, OPEN_UNTIL_NAMES, 3);
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
static int parse_options(options_t *o, int argc, char **argv)
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
    o->seed = mono_ns() ^ ((uint64_t)getpid() << 32);
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

/* ---------------------------------------------------------------------------------------- */
/* Item ids                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char **ids;
    size_t count;
} items_t;

static bool is_protocol_id(const char *s, size_t n)
{
    if (n < 1 || n > LG_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '@' ||
                  ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int items_push(items_t *items, size_t *cap, const char *id, size_t n)
{
    if (items->count == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 1024;
        char **ids = realloc(items->ids, new_cap * sizeof(*ids));
        if (!ids)
            return -1;
        items->ids = ids;
        *cap = new_cap;
    }
    char *copy = strndup(id, n);
    if (!copy)
        return -1;
    items->ids[items->count++] = copy;
    return 0;
}

/* Takes the "id" of every catalog line; lines without a valid id are skipped and counted. */
static int items_load_catalog(items_t *items, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "rankcast-loadgen: cannot open catalog %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t line_cap = 0, cap = 0, skipped = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &line_cap, f)) >= 0) {
        const char *id = NULL;
        size_t id_len = 0;
        if (json_find_string(line, (size_t)n, "id", &id, &id_len) < 0 ||
            !is_protocol_id(id, id_len)) {
            skipped += n > 1;
            continue;
        }
        if (items_push(items, &cap, id, id_len) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (skipped)
        fprintf(stderr, "rankcast-loadgen: skipped %zu catalog lines without a usable id\n",
                skipped);
    if (rc == 0 && items->count == 0) {
        fprintf(stderr, "rankcast-loadgen: no item ids in %s\n", path);
        return -1;
    }
    return rc;
}

static int items_make_synthetic(items_t *items, uint32_t count)
{
    size_t cap = 0;
    char id[24];
    for (uint32_t i = 0; i < count; i++) {
        int n = snprintf(id, sizeof(id), "i%" PRIu32, i);
        if (items_push(items, &cap, id, (size_t)n) < 0)
            return -1;
    }
    return 0;
}

static void items_free(items_t *items)
{
    for (size_t i = 0; i < items->count; i++)
        free(items->ids[i]);
    free(items->ids);
    items->ids = NULL;
    items->count = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Generator state                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    CONN_IDLE,
    CONN_CONNECTING,  /* TCP connect in flight */
    CONN_TLS,         /* TLS handshake in flight (--tls) */
    CONN_HANDSHAKING, /* upgrade request sent, waiting for 101 */
    CONN_OPENING,     /* hello and subscribe sent, waiting for welcome and the first recs */
    CONN_READY,
    CONN_CLOSED,
} conn_state_t;

typedef enum {
    FAIL_CONNECT,
    FAIL_HANDSHAKE,
    FAIL_PROTOCOL,
    FAIL_SERVER_CLOSE,
    FAIL_TIMEOUT,
    FAIL_IO,
    FAIL_REASONS,
} fail_reason_t;

static const char *const FAIL_NAMES[FAIL_REASONS] = {
    "connect", "handshake", "protocol", "server_close", "timeout", "io",
};

/* MATCHED: the sender's own recs arrived; OBSERVED: the observer's recs (cross-node mode). */
enum { SLOT_MEASURED = 1, SLOT_ANSWERED = 2, SLOT_MATCHED = 4, SLOT_OBSERVED = 8 };

/* One sent event, kept until its ring slot is reused, so answers can find their send time. */
typedef struct {
    uint64_t sent_ns;
    uint32_t seq;
    uint32_t flags;
} event_slot_t;

typedef struct {
    int fd;
    uint8_t state;
    bool got_welcome;
    bool got_first_recs;
    bool in_fragmented_message;
    bool want_write;
    uint8_t fragmented_opcode;
    bool stalled_now; /* a --stalled connection that has stopped reading */
    uint8_t key[16];
    uint32_t next_seq;
    uint64_t started_ns;
    buf_t out;
    buf_t in;
    buf_t message;
    event_slot_t *slots;
    SSL *ssl;
} conn_t;

/* One POST /api/v1/push in flight (fanout): a plaintext connection per request. */
typedef struct {
    int fd;
    bool busy;
    bool connected;
    bool measured;
    uint64_t sent_ns;
    size_t req_len;
    size_t req_off;
    size_t resp_len;
    char req[768];
    char resp[LG_HTTP_RESP_MAX];
} http_slot_t;

typedef struct {
    uint64_t posted;
    uint64_t posted_measured;
    uint64_t accepted;
    uint64_t accepted_measured;
    uint64_t refused;
    uint64_t failed;
    uint64_t skipped_busy;
    uint64_t deliveries_total;
    uint64_t deliveries_measured;
    uint64_t deliveries_unmatched;
    uint64_t handshakes_done;
    uint64_t handshakes_measured;
    uint64_t handshake_failures;
    uint64_t handshake_failures_measured;
    uint64_t stalled_open;
    uint64_t stalled_closed;
    uint64_t sio_pings;
    long http_status_first_bad;
} extra_stats_t;

typedef struct {
    uint64_t phase_ns;
    uint32_t conn;
} schedule_entry_t;

typedef struct {
    long code;
    uint64_t count;
} code_count_t;

typedef enum { PHASE_CONNECT, PHASE_EVENTS, PHASE_DRAIN, PHASE_DONE } phase_t;

/* CPU seconds of the whole machine, from the first line of /proc/stat. */
typedef struct {
    double busy_s;
    double steal_s;
    bool valid;
} machine_cpu_t;

typedef struct {
    uint64_t events_sent_total;
    uint64_t events_sent_measured;
    uint64_t events_acked_measured;
    uint64_t events_errored_measured;
    uint64_t events_unanswered_overwritten;
    uint64_t ack_messages;
    uint64_t ack_ids;
    uint64_t pushes_matched;
    uint64_t local_pushes_matched;
    uint64_t recs_total;
    uint64_t recs_unmatched;
    uint64_t recs_duplicate;
    uint64_t recs_other_user;
    uint64_t errors_total;
    uint64_t pongs;
    uint64_t pushes_app;
    uint64_t drains;
    uint64_t other_messages;
    uint64_t binary_messages;
    uint64_t pings_answered;
    uint64_t no_subprotocol;
    uint64_t sends_skipped_not_ready;
    uint64_t connections_failed;
    uint64_t connections_lost;
    uint64_t fail_reasons[FAIL_REASONS];
    uint64_t lost_reasons[FAIL_REASONS];
    char first_failure[FAIL_REASONS][96];
    code_count_t errors[LG_MAX_CODES];
    size_t error_kinds;
    code_count_t close_codes[LG_MAX_CODES];
    size_t close_kinds;
} stats_t;

/*
 * Connections 0..users-1 send events (the actors). In cross-node mode, connection users + i
 * is the observer of user i: same user id, another node, sends nothing after subscribing.
 */
typedef struct {
    options_t opt;
    items_t items;
    conn_t *conns;
    uint32_t conn_count;
    event_slot_t *slot_arena;
    uint32_t slot_mask;
    schedule_entry_t *schedule;
    int epoll_fd;
    char *scratch;
    uint64_t prng;

    phase_t phase;
    uint64_t started_ns;
    uint64_t connect_deadline_ns;
    uint64_t watchdog_ns;
    uint32_t conns_started;
    uint32_t conns_ready;
    uint32_t conns_pending;
    uint32_t open_at_events_start;
    uint32_t actors_at_events_start;
    uint32_t users_at_events_start;
    uint64_t events_start_ns;
    uint64_t measure_start_ns;
    uint64_t measure_end_ns;
    uint64_t drain_end_ns;
    uint64_t interval_ns;
    uint64_t send_cursor;
    uint64_t measured_unanswered;
    uint64_t last_answer_ns;
    uint64_t done_ns;

    long rss_before_kb;
    long rss_open_kb;
    long rss_end_kb;
    double server_cpu_start_s;
    double server_cpu_end_s;
    bool server_cpu_started;
    machine_cpu_t machine_start;
    machine_cpu_t machine_end;
    double self_cpu_start_s;
    double self_cpu_end_s;

    hist_t push_latency;  /* to the observer's recs in cross-node mode, else the sender's */
    hist_t local_latency; /* to the sender's own recs, kept apart in cross-node mode only */
    hist_t ack_latency;
    hist_t server_took;
    hist_t connect_latency;
    stats_t stats;

    SSL_CTX *ssl_ctx;
    http_slot_t http[LG_HTTP_SLOTS];
    uint64_t push_cursor;
    uint64_t push_seq;
    hist_t delivery_latency;
    hist_t handshake_latency;
    extra_stats_t x;
    uint64_t conn_attempts;
} lg_t;

static volatile sig_atomic_t g_stop_requested;

static bool observing(const lg_t *lg)
{
    return lg->opt.observe_port != 0;
}

static bool conn_is_observer(const lg_t *lg, const conn_t *c)
{
    return observing(lg) && (uint32_t)(c - lg->conns) >= lg->opt.connections;
}

/* Connections past -n are --stalled ones when not observing: same users as the first M. */
static bool conn_is_stalled(const lg_t *lg, const conn_t *c)
{
    return lg->opt.stalled && (uint32_t)(c - lg->conns) >= lg->opt.connections;
}

static bool socketio(const lg_t *lg)
{
    return lg->opt.framing == FRAMING_SOCKETIO;
}

static uint32_t conn_user(const lg_t *lg, const conn_t *c)
{
    return (uint32_t)(c - lg->conns) % lg->opt.connections;
}

/* A user sends only while all its connections are ready: otherwise no answer could match. */
static bool user_ready(const lg_t *lg, uint32_t user)
{
    if (lg->conns[user].state != CONN_READY)
        return false;
    return !observing(lg) || lg->conns[lg->opt.connections + user].state == CONN_READY;
}

static void on_stop_signal(int signo)
{
    (void)signo;
    g_stop_requested = 1;
}

static void count_code(code_count_t *table, size_t *kinds, long code)
{
    for (size_t i = 0; i < *kinds; i++) {
        if (table[i].code == code) {
            table[i].count++;
            return;
        }
    }
    if (*kinds < LG_MAX_CODES) {
        table[*kinds].code = code;
        table[*kinds].count = 1;
        (*kinds)++;
    }
}

/* Reads VmRSS in KiB from /proc/PID/status, or -1 when there is no such process. */
static long read_rss_kb(long pid)
{
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long rss_kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            rss_kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return rss_kb;
}

/*
 * Reads the user + system CPU seconds the process has used from /proc/PID/stat, or -1. The
 * command name (field 2) may hold spaces and parentheses, so parsing starts after the last ')'.
 */
static double read_cpu_s(long pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    unsigned long long utime = 0, stime = 0;
    /* After ')': state, then fields 4..13, then utime (14) and stime (15). */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return -1;
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    return ticks_per_s > 0 ? (double)(utime + stime) / (double)ticks_per_s : -1;
}

/*
 * The machine is shared (by the server, by us, by whatever else runs): the busy time of all
 * CPUs during the measurement tells a noisy run from a clean one. Guest time is already
 * inside user time; iowait counts as idle.
 */
static machine_cpu_t read_machine_cpu(void)
{
    machine_cpu_t m = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return m;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    if (n != 8 || ticks_per_s <= 0)
        return m;
    m.busy_s = (double)(user + nice + sys + irq + softirq) / (double)ticks_per_s;
    m.steal_s = (double)steal / (double)ticks_per_s;
    m.valid = true;
    return m;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------------------------------- */
/* Connection lifecycle                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void conn_release(conn_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        /* close() also removes the fd from the epoll set: it is never duplicated. */
        close(c->fd);
        c->fd = -1;
    }
    buf_free(&c->out);
    buf_free(&c->in);
    buf_free(&c->message);
}

/*
 * Events of a closed connection will never be answered; the drain must not wait for them.
 * They still count as unanswered in the report.
 */
static void conn_abandon_events(lg_t *lg, conn_t *c)
{
    if (!c->slots)
        return; /* an observer: it sends no events */
    for (uint32_t i = 0; i <= lg->slot_mask; i++) {
        event_slot_t *slot = &c->slots[i];
        if ((slot->flags & (SLOT_MEASURED | SLOT_ANSWERED)) == SLOT_MEASURED)
            lg->measured_unanswered--;
        slot->flags |= SLOT_ANSWERED;
    }
}

/*
 * Ends a connection for `reason`. One that was never ready counts as failed; one that was
 * ready counts as lost, because it stops sending in the middle of the run.
 */
static void conn_fail(lg_t *lg, conn_t *c, fail_reason_t reason, const char *detail)
{
    if (c->state == CONN_CLOSED || c->state == CONN_IDLE)
        return;
    stats_t *s = &lg->stats;
    if (c->state == CONN_READY) {
        lg->conns_ready--;
        s->connections_lost++;
        s->lost_reasons[reason]++;
    } else {
        lg->conns_pending--;
        s->connections_failed++;
        s->fail_reasons[reason]++;
    }
    if (s->first_failure[reason][0] == '\0' && detail)
        snprintf(s->first_failure[reason], sizeof(s->first_failure[reason]), "%s", detail);
    c->state = CONN_CLOSED;
    conn_release(c);
    conn_abandon_events(lg, c);
}

static void conn_fail_errno(lg_t *lg, conn_t *c, fail_reason_t reason, const char *what, int err)
{
    char detail[96];
    snprintf(detail, sizeof(detail), "%s: %s", what, strerror(err));
    conn_fail(lg, c, reason, detail);
}

static int conn_set_events(lg_t *lg, conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - lg->conns)};
    return epoll_ctl(lg->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * One write on the plain socket or through TLS. Returns the bytes written, or -1 with errno
 * (EAGAIN when TLS or the socket wants to wait). SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a
 * retried SSL_write come from a compacted buffer.
 */
static ssize_t conn_io_write(conn_t *c, const void *data, size_t len)
{
    if (!c->ssl)
        return send(c->fd, data, len, MSG_NOSIGNAL);
    ERR_clear_error();
    int n = SSL_write(c->ssl, data, len > (1u << 30) ? (int)(1u << 30) : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
    return -1;
}

/* One read; > 0 bytes, 0 at the end of the stream, -1 with errno (EAGAIN: nothing yet). */
static ssize_t conn_io_read(conn_t *c, void *data, size_t len)
{
    if (!c->ssl)
        return recv(c->fd, data, len, 0);
    ERR_clear_error();
    int n = SSL_read(c->ssl, data, len > (1u << 30) ? (int)(1u << 30) : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EIO;
    return -1;
}

/* Writes what the output buffer holds; waits for EPOLLOUT only while bytes remain. */
static int conn_flush(lg_t *lg, conn_t *c)
{
    buf_t *b = &c->out;
    while (b->off < b->len) {
        ssize_t n = conn_io_write(c, b->data + b->off, b->len - b->off);
        if (n > 0) {
            b->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_write && conn_set_events(lg, c, EPOLLIN | EPOLLOUT) == 0)
                c->want_write = true;
            return 0;
        }
        conn_fail_errno(lg, c, FAIL_IO, "send", n < 0 ? errno : EPIPE);
        return -1;
    }
    b->off = b->len = 0;
    if (c->want_write && conn_set_events(lg, c, EPOLLIN) == 0)
        c->want_write = false;
    return 0;
}

/* Appends one masked frame (client frames must be masked, RFC 6455 5.3). */
static int conn_queue_frame(lg_t *lg, conn_t *c, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t header[14];
    size_t header_len = 2;
    header[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        header[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        header[1] = 0x80 | 126;
        header[2] = (uint8_t)(len >> 8);
        header[3] = (uint8_t)len;
        header_len = 4;
    } else {
        header[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            header[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        header_len = 10;
    }
    uint32_t mask = (uint32_t)prng_next(&lg->prng);
    memcpy(header + header_len, &mask, 4);
    const uint8_t *mask_bytes = header + header_len;
    header_len += 4;

    if (buf_reserve(&c->out, header_len + len, LG_OUTBUF_MAX) < 0) {
        conn_fail(lg, c, FAIL_IO, "output buffer full: the server stopped reading");
        return -1;
    }
    uint8_t *dst = (uint8_t *)c->out.data + c->out.len;
    memcpy(dst, header, header_len);
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        dst[header_len + i] = src[i] ^ mask_bytes[i & 3];
    c->out.len += header_len + len;
    return 0;
}

static int conn_send_text(lg_t *lg, conn_t *c, const char *text, size_t len)
{
    if (conn_queue_frame(lg, c, 0x1, text, len) < 0)
        return -1;
    return conn_flush(lg, c);
}

/*
 * Queues one protocol message (a JSON object). With --framing socketio it travels as the
 * Socket.IO event "msg" on the main namespace: 42["msg",{...}].
 */
static int conn_queue_app(lg_t *lg, conn_t *c, const char *json, size_t len)
{
    if (!socketio(lg))
        return conn_queue_frame(lg, c, 0x1, json, len);
    static const char prefix[] = "42[\"msg\",";
    char wrapped[1024];
    size_t prefix_len = sizeof(prefix) - 1;
    if (prefix_len + len + 1 > sizeof(wrapped)) {
        conn_fail(lg, c, FAIL_IO, "message too long to wrap");
        return -1;
    }
    memcpy(wrapped, prefix, prefix_len);
    memcpy(wrapped + prefix_len, json, len);
    wrapped[prefix_len + len] = ']';
    return conn_queue_frame(lg, c, 0x1, wrapped, prefix_len + len + 1);
}

static void base64_encode(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static void ws_expected_accept(const uint8_t key[16], char accept[32])
{
    char material[64];
    base64_encode(key, 16, material);
    strcat(material, WS_GUID);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_Digest(material, strlen(material), digest, &digest_len, EVP_sha1(), NULL);
    base64_encode(digest, digest_len, accept);
}

static void conn_send_upgrade(lg_t *lg, conn_t *c)
{
    for (size_t i = 0; i < sizeof(c->key); i += 8) {
        uint64_t r = prng_next(&lg->prng);
        memcpy(c->key + i, &r, 8);
    }
    char key_b64[32];
    base64_encode(c->key, sizeof(c->key), key_b64);
    bool observer = conn_is_observer(lg, c);
    char protocol_line[64] = "";
    if (!socketio(lg))
        snprintf(protocol_line, sizeof(protocol_line), "Sec-WebSocket-Protocol: %s\r\n",
                 WS_SUBPROTOCOL);
    char request[512];
    int n = snprintf(request, sizeof(request),
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s"
                     "\r\n",
                     lg->opt.path, observer ? lg->opt.observe_host : lg->opt.host,
                     (unsigned)(observer ? lg->opt.observe_port : lg->opt.port), key_b64,
                     protocol_line);
    c->state = CONN_HANDSHAKING;
    if (buf_append(&c->out, request, (size_t)n, LG_OUTBUF_MAX) < 0) {
        conn_fail(lg, c, FAIL_IO, "out of memory");
        return;
    }
    conn_flush(lg, c);
}

static void conn_start(lg_t *lg, uint32_t index, uint64_t now_ns)
{
    conn_t *c = &lg->conns[index];
    /* Handshake runs reuse slots: forget what the previous connection of this slot saw. */
    c->got_welcome = c->got_first_recs = c->in_fragmented_message = false;
    c->want_write = c->stalled_now = false;
    c->state = CONN_CONNECTING;
    c->started_ns = now_ns;
    lg->conns_pending++;
    uint64_t attempt = lg->conn_attempts++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail_errno(lg, c, FAIL_CONNECT, "socket", errno);
        return;
    }
    /*
     * Without IP_BIND_ADDRESS_NO_PORT, bind() picks the ephemeral port before the
     * destination is known and each source address runs out after ~28k sockets in total.
     * TCP_NODELAY: events are small frames and Nagle would add up to 40 ms to the latency.
     */
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (conn_is_stalled(lg, c)) {
        /* A small receive buffer makes a client that stops reading back up the server soon. */
        int rcvbuf = (int)lg->opt.stalled_rcvbuf;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    uint64_t spread = lg->opt.scenario == SCEN_HANDSHAKE ? attempt : index;
    struct sockaddr_in source = {.sin_family = AF_INET};
    source.sin_addr.s_addr =
        htonl(0x7F000001u + lg->opt.source_offset + (uint32_t)(spread % lg->opt.sources));
    if (bind(c->fd, (struct sockaddr *)&source, sizeof(source)) < 0) {
        conn_fail_errno(lg, c, FAIL_CONNECT, "bind", errno);
        return;
    }
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(lg->opt.port)};
    target.sin_addr = lg->opt.target;
    if (conn_is_observer(lg, c)) {
        target.sin_port = htons(lg->opt.observe_port);
        target.sin_addr = lg->opt.observe_target;
    }
    if (connect(c->fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
        conn_fail_errno(lg, c, FAIL_CONNECT, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = index};
    if (epoll_ctl(lg->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail_errno(lg, c, FAIL_CONNECT, "epoll_ctl", errno);
        return;
    }
    c->want_write = true;
}

static void conn_tls_step(lg_t *lg, conn_t *c);

static void conn_on_connected(lg_t *lg, conn_t *c)
{
    int err = 0;
    socklen_t err_len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
        err = errno;
    if (err) {
        conn_fail_errno(lg, c, FAIL_CONNECT, "connect", err);
        return;
    }
    if (!lg->ssl_ctx) {
        conn_send_upgrade(lg, c);
        return;
    }
    c->ssl = SSL_new(lg->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail(lg, c, FAIL_HANDSHAKE, "tls: cannot set up the connection");
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = CONN_TLS;
    conn_tls_step(lg, c);
}

/* Advances the TLS handshake; sends the upgrade request once it is done. */
static void conn_tls_step(lg_t *lg, conn_t *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        conn_send_upgrade(lg, c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        bool want_write = e == SSL_ERROR_WANT_WRITE;
        if (want_write != c->want_write &&
            conn_set_events(lg, c, want_write ? EPOLLIN | EPOLLOUT : EPOLLIN) == 0)
            c->want_write = want_write;
        return;
    }
    unsigned long err = ERR_get_error();
    char detail[96];
    snprintf(detail, sizeof(detail), "tls: %s",
             err ? ERR_reason_error_string(err) : "handshake failed");
    conn_fail(lg, c, FAIL_HANDSHAKE, detail);
}

static void conn_check_ready(lg_t *lg, conn_t *c, uint64_t now_ns)
{
    if (c->state != CONN_OPENING || !c->got_welcome || !c->got_first_recs)
        return;
    c->state = CONN_READY;
    lg->conns_pending--;
    lg->conns_ready++;
    hist_record(&lg->connect_latency, now_ns - c->started_ns);
}

/* In the handshake scenario the session is the point: hello only, no subscription. */
static void conn_send_hello_and_subscribe(lg_t *lg, conn_t *c)
{
    char text[160];
    int n = snprintf(text, sizeof(text), "{\"type\":\"hello\",\"v\":1,\"user\":\"lg-%ld-%u\"}",
                     (long)getpid(), (unsigned)conn_user(lg, c));
    if (conn_queue_app(lg, c, text, (size_t)n) < 0)
        return;
    if (lg->opt.scenario != SCEN_HANDSHAKE && lg->opt.open_until == OPEN_UNTIL_RECS) {
        uint32_t k = conn_is_stalled(lg, c) ? lg->opt.stalled_k : lg->opt.k;
        n = snprintf(text, sizeof(text), "{\"type\":\"subscribe\",\"surface\":\"%s\",\"k\":%u}",
                     lg->opt.surface, (unsigned)k);
        if (conn_queue_app(lg, c, text, (size_t)n) < 0)
            return;
    }
    conn_flush(lg, c);
}

/*
 * A handshake-scenario connection is done (101, or welcome with --handshake-until welcome):
 * count it, close it (a close frame, best effort) and free the slot for the next one.
 */
static void conn_handshake_done(lg_t *lg, conn_t *c, uint64_t now_ns)
{
    lg->x.handshakes_done++;
    if (c->started_ns >= lg->measure_start_ns && c->started_ns < lg->measure_end_ns) {
        lg->x.handshakes_measured++;
        hist_record(&lg->handshake_latency, now_ns - c->started_ns);
    }
    static const uint8_t normal_close[2] = {0x03, 0xE8};
    if (conn_queue_frame(lg, c, 0x8, normal_close, sizeof(normal_close)) == 0) {
        ssize_t ignored = conn_io_write(c, c->out.data + c->out.off, c->out.len - c->out.off);
        (void)ignored;
    }
    lg->conns_pending--;
    c->state = CONN_IDLE;
    conn_release(c);
}

/* ---------------------------------------------------------------------------------------- */
/* Handshake response                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Finds header `name` (case-insensitive) in an HTTP head; returns its trimmed value. */
static bool http_header_value(const char *head, size_t len, const char *name, const char **value,
                              size_t *value_len)
{
    size_t name_len = strlen(name);
    const char *end = head + len;
    const char *line = memchr(head, '\n', len);
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            return false;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = skip_ws(line + name_len + 1, eol);
            const char *v_end = eol;
            while (v_end > v && (v_end[-1] == '\r' || v_end[-1] == ' ' || v_end[-1] == '\t'))
                v_end--;
            *value = v;
            *value_len = (size_t)(v_end - v);
            return true;
        }
        line = eol;
    }
    return false;
}

/* Checks the 101 answer; returns the bytes it used, 0 if incomplete, -1 if it failed. */
static long conn_on_handshake_bytes(lg_t *lg, conn_t *c, const char *data, size_t len)
{
    const char *head_end = memmem(data, len, "\r\n\r\n", 4);
    if (!head_end) {
        if (len > LG_HANDSHAKE_MAX) {
            conn_fail(lg, c, FAIL_HANDSHAKE, "handshake response too long");
            return -1;
        }
        return 0;
    }
    size_t head_len = (size_t)(head_end - data) + 4;
    if (head_len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
        char detail[96];
        const char *eol = memchr(data, '\r', head_len);
        int status_len = (int)(eol ? eol - data : 40);
        snprintf(detail, sizeof(detail), "refused: %.*s", status_len > 60 ? 60 : status_len, data);
        conn_fail(lg, c, FAIL_HANDSHAKE, detail);
        return -1;
    }
    char expected[32];
    ws_expected_accept(c->key, expected);
    const char *value = NULL;
    size_t value_len = 0;
    if (!http_header_value(data, head_len, "Sec-WebSocket-Accept", &value, &value_len) ||
        !str_equals(value, value_len, expected)) {
        conn_fail(lg, c, FAIL_HANDSHAKE, "missing or wrong Sec-WebSocket-Accept");
        return -1;
    }
    if (!http_header_value(data, head_len, "Sec-WebSocket-Protocol", &value, &value_len)) {
        lg->stats.no_subprotocol++;
    } else if (!str_equals(value, value_len, WS_SUBPROTOCOL)) {
        conn_fail(lg, c, FAIL_HANDSHAKE, "server chose another subprotocol");
        return -1;
    }
    if (lg->opt.scenario == SCEN_HANDSHAKE && !lg->opt.handshake_until_welcome) {
        conn_handshake_done(lg, c, mono_ns());
        return -1;
    }
    c->state = CONN_OPENING;
    if (lg->opt.open_until == OPEN_UNTIL_UPGRADE) {
        /* Idle memory of a bare upgraded connection: no hello, no session. */
        c->got_welcome = c->got_first_recs = true;
        conn_check_ready(lg, c, mono_ns());
        return (long)head_len;
    }
    if (lg->opt.open_until == OPEN_UNTIL_WELCOME)
        c->got_first_recs = true;
    /* Socket.IO: the hello waits for the namespace to be joined (see conn_on_text). */
    if (!socketio(lg))
        conn_send_hello_and_subscribe(lg, c);
    return c->state == CONN_CLOSED ? -1 : (long)head_len;
}

/* ---------------------------------------------------------------------------------------- */
/* Incoming messages                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* Finds the ring slot of event id "<conn>-<seq>", or NULL when it is not ours any more. */
static event_slot_t *slot_for_event_id(lg_t *lg, const char *id, size_t len)
{
    uint64_t conn = 0, seq = 0;
    size_t i = 0;
    if (len == 0 || len > 24)
        return NULL;
    while (i < len && id[i] >= '0' && id[i] <= '9')
        conn = conn * 10 + (uint64_t)(id[i++] - '0');
    if (i == 0 || i >= len || id[i] != '-')
        return NULL;
    size_t seq_start = ++i;
    while (i < len && id[i] >= '0' && id[i] <= '9')
        seq = seq * 10 + (uint64_t)(id[i++] - '0');
    if (i != len || i == seq_start || conn >= lg->opt.connections || seq > UINT32_MAX)
        return NULL;
    event_slot_t *slot = &lg->conns[conn].slots[seq & lg->slot_mask];
    if (slot->sent_ns == 0 || slot->seq != (uint32_t)seq)
        return NULL;
    return slot;
}

/* The first ack or error for a measured event answers it; the drain waits for answers. */
static void slot_mark_answered(lg_t *lg, event_slot_t *slot, uint64_t now_ns)
{
    if (slot->flags & SLOT_ANSWERED)
        return;
    slot->flags |= SLOT_ANSWERED;
    if (slot->flags & SLOT_MEASURED) {
        lg->measured_unanswered--;
        lg->last_answer_ns = now_ns;
    }
}

static void on_ack_id(lg_t *lg, const char *id, size_t len, uint64_t now_ns)
{
    lg->stats.ack_ids++;
    event_slot_t *slot = slot_for_event_id(lg, id, len);
    if (!slot || (slot->flags & SLOT_ANSWERED))
        return;
    if (slot->flags & SLOT_MEASURED) {
        lg->stats.events_acked_measured++;
        hist_record(&lg->ack_latency, now_ns - slot->sent_ns);
    }
    slot_mark_answered(lg, slot, now_ns);
}

static void on_ack(lg_t *lg, const char *msg, size_t len, uint64_t now_ns)
{
    lg->stats.ack_messages++;
    const char *end = msg + len;
    const char *p = json_find_value(msg, len, "ids");
    if (!p || p >= end || *p != '[')
        return;
    p = skip_ws(p + 1, end);
    while (p < end && *p != ']') {
        const char *id = NULL;
        size_t id_len = 0;
        p = json_read_plain_string(p, end, &id, &id_len);
        if (!p)
            return;
        on_ack_id(lg, id, id_len, now_ns);
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
}

static void on_error(lg_t *lg, const char *msg, size_t len, uint64_t now_ns)
{
    long code = 0;
    lg->stats.errors_total++;
    count_code(lg->stats.errors, &lg->stats.error_kinds,
               json_find_int(msg, len, "code", &code) == 0 ? code : -1);
    const char *id = NULL;
    size_t id_len = 0;
    if (json_find_string(msg, len, "id", &id, &id_len) < 0)
        return;
    event_slot_t *slot = slot_for_event_id(lg, id, id_len);
    if (!slot || (slot->flags & SLOT_ANSWERED))
        return;
    if (slot->flags & SLOT_MEASURED)
        lg->stats.events_errored_measured++;
    slot_mark_answered(lg, slot, now_ns);
}

/* In cross-node mode, the sender's own recs: measured, but apart from the cross-node ones. */
static void on_local_recs(lg_t *lg, event_slot_t *slot, uint64_t now_ns)
{
    if (slot->flags & SLOT_MATCHED) {
        lg->stats.recs_duplicate++;
        return;
    }
    slot->flags |= SLOT_MATCHED;
    if (slot->flags & SLOT_MEASURED) {
        lg->stats.local_pushes_matched++;
        hist_record(&lg->local_latency, now_ns - slot->sent_ns);
        lg->last_answer_ns = now_ns;
    }
}

/*
 * A `recs` with a cause answers one of our events. Its latency goes to push_latency when it
 * came to the connection being measured: the sender's own, or in cross-node mode the
 * observer's (and server_took then is the observing node's re-ranking time).
 */
static void on_recs(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns)
{
    lg->stats.recs_total++;
    if (conn_is_stalled(lg, c) && c->state == CONN_READY)
        return; /* a stalled connection's lists are not measured */
    const char *cause = NULL;
    size_t cause_len = 0;
    if (json_find_string(msg, len, "cause", &cause, &cause_len) < 0) {
        /* The list sent in answer to subscribe carries no cause. */
        c->got_first_recs = true;
        conn_check_ready(lg, c, now_ns);
        return;
    }
    event_slot_t *slot = slot_for_event_id(lg, cause, cause_len);
    if (!slot) {
        lg->stats.recs_unmatched++;
        return;
    }
    const event_slot_t *own = lg->conns[conn_user(lg, c)].slots;
    if (slot < own || slot > own + lg->slot_mask) {
        /* Caused by another user's event: the server mixed up sessions. */
        lg->stats.recs_other_user++;
        return;
    }
    if (observing(lg) && !conn_is_observer(lg, c)) {
        on_local_recs(lg, slot, now_ns);
        return;
    }
    uint32_t flag = observing(lg) ? SLOT_OBSERVED : SLOT_MATCHED;
    if (slot->flags & flag) {
        lg->stats.recs_duplicate++;
        return;
    }
    slot->flags |= flag;
    if (slot->flags & SLOT_MEASURED) {
        lg->stats.pushes_matched++;
        hist_record(&lg->push_latency, now_ns - slot->sent_ns);
        lg->last_answer_ns = now_ns;
        long took_us = 0;
        if (json_find_int(msg, len, "took_us", &took_us) == 0 && took_us >= 0)
            hist_record(&lg->server_took, (uint64_t)took_us * 1000u);
    }
}

/* Reads an unsigned integer after `"key":`; for nanosecond stamps past json_find_int's cap. */
static int json_find_u64(const char *js, size_t len, const char *key, uint64_t *out)
{
    const char *p = json_find_value(js, len, key);
    const char *end = js + len;
    if (!p || p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t value = 0;
    while (p < end && *p >= '0' && *p <= '9' && value < UINT64_MAX / 10)
        value = value * 10 + (uint64_t)(*p++ - '0');
    *out = value;
    return 0;
}

/*
 * A push-API message (fanout). The generator posted it with its own CLOCK_MONOTONIC stamp in
 * data.lg_ns, so the delivery latency needs no clock shared with the server.
 */
static void on_push(lg_t *lg, const char *msg, size_t len, uint64_t now_ns)
{
    uint64_t posted_ns = 0;
    lg->x.deliveries_total++;
    if (json_find_u64(msg, len, "lg_ns", &posted_ns) < 0 || posted_ns > now_ns) {
        lg->x.deliveries_unmatched++;
        return;
    }
    if (posted_ns >= lg->measure_start_ns && posted_ns < lg->measure_end_ns) {
        lg->x.deliveries_measured++;
        hist_record(&lg->delivery_latency, now_ns - posted_ns);
        lg->last_answer_ns = now_ns;
    }
}

static void on_text_message(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns)
{
    const char *type = NULL;
    size_t type_len = 0;
    if (json_find_string(msg, len, "type", &type, &type_len) < 0) {
        lg->stats.other_messages++;
        return;
    }
    if (str_equals(type, type_len, "recs")) {
        on_recs(lg, c, msg, len, now_ns);
    } else if (str_equals(type, type_len, "ack")) {
        on_ack(lg, msg, len, now_ns);
    } else if (str_equals(type, type_len, "welcome")) {
        c->got_welcome = true;
        if (lg->opt.scenario == SCEN_HANDSHAKE && c->state == CONN_OPENING)
            conn_handshake_done(lg, c, now_ns);
        else
            conn_check_ready(lg, c, now_ns);
    } else if (str_equals(type, type_len, "error")) {
        on_error(lg, msg, len, now_ns);
    } else if (str_equals(type, type_len, "pong")) {
        lg->stats.pongs++;
    } else if (str_equals(type, type_len, "push")) {
        lg->stats.pushes_app++;
        on_push(lg, msg, len, now_ns);
    } else if (str_equals(type, type_len, "drain")) {
        lg->stats.drains++;
    } else {
        lg->stats.other_messages++;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Incoming frames                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    bool fin;
    bool masked;
    uint8_t opcode;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len;
} frame_header_t;

/* Returns 1 with a parsed header, 0 when more bytes are needed, -1 on a malformed one. */
static int frame_parse_header(const uint8_t *p, size_t len, frame_header_t *h)
{
    if (len < 2)
        return 0;
    if (p[0] & 0x70)
        return -1; /* no extension was negotiated, so RSV bits must be clear */
    h->fin = (p[0] & 0x80) != 0;
    h->opcode = p[0] & 0x0F;
    h->masked = (p[1] & 0x80) != 0;
    uint64_t payload_len = p[1] & 0x7F;
    size_t need = 2;
    if (payload_len == 126) {
        need = 4;
        if (len < need)
            return 0;
        payload_len = ((uint64_t)p[2] << 8) | p[3];
    } else if (payload_len == 127) {
        need = 10;
        if (len < need)
            return 0;
        payload_len = 0;
        for (int i = 0; i < 8; i++)
            payload_len = (payload_len << 8) | p[2 + i];
    }
    if (h->masked) {
        if (len < need + 4)
            return 0;
        memcpy(h->mask, p + need, 4);
        need += 4;
    }
    if (payload_len > LG_MESSAGE_MAX)
        return -1;
    h->payload_len = payload_len;
    h->header_len = need;
    return 1;
}

static void conn_on_close_frame(lg_t *lg, conn_t *c, const uint8_t *payload, size_t len)
{
    long code = len >= 2 ? ((long)payload[0] << 8) | payload[1] : 1005;
    count_code(lg->stats.close_codes, &lg->stats.close_kinds, code);
    /*
     * Echo the close (RFC 6455 5.5.1) with one non-blocking send: the socket is closed right
     * after, and a failure here must not turn the server's close into an I/O failure.
     */
    uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (conn_queue_frame(lg, c, 0x8, echo, len >= 2 ? 2 : 0) < 0)
        return;
    ssize_t ignored = conn_io_write(c, c->out.data + c->out.off, c->out.len - c->out.off);
    (void)ignored;
    char detail[96];
    snprintf(detail, sizeof(detail), "close frame %ld", code);
    conn_fail(lg, c, FAIL_SERVER_CLOSE, detail);
}

/*
 * A text message. With --framing socketio it is an Engine.IO packet: 0 open (answer 40 to join
 * the main namespace), 2 ping (answer 3), 1 close, and Socket.IO packets 40 (joined: say
 * hello), 41 (disconnected) and 42["msg",{...}], whose object is a rankcast message.
 */
static void conn_on_text(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns)
{
    if (!socketio(lg)) {
        on_text_message(lg, c, msg, len, now_ns);
        return;
    }
    if (len == 0) {
        lg->stats.other_messages++;
        return;
    }
    if (msg[0] == '0') {
        conn_send_text(lg, c, "40", 2);
        return;
    }
    if (msg[0] == '2') {
        lg->x.sio_pings++;
        conn_send_text(lg, c, "3", 1);
        return;
    }
    if (msg[0] == '1' || (len >= 2 && msg[0] == '4' && msg[1] == '1')) {
        conn_fail(lg, c, FAIL_SERVER_CLOSE, "socket.io close or disconnect");
        return;
    }
    if (len >= 2 && msg[0] == '4' && msg[1] == '0') {
        if (c->state == CONN_OPENING)
            conn_send_hello_and_subscribe(lg, c);
        return;
    }
    if (len >= 2 && msg[0] == '4' && msg[1] == '2') {
        on_text_message(lg, c, msg + 2, len - 2, now_ns);
        return;
    }
    lg->stats.other_messages++;
}

/* Handles a data frame; a fragmented message is collected until its last fragment. */
static int conn_on_data_frame(lg_t *lg, conn_t *c, const frame_header_t *h, const char *payload,
                              size_t len, uint64_t now_ns)
{
    uint8_t opcode = h->opcode;
    if (opcode != 0 && c->in_fragmented_message)
        return -1;
    if (opcode == 0 && !c->in_fragmented_message)
        return -1;
    if (opcode != 0 && h->fin) {
        if (opcode == 0x1)
            conn_on_text(lg, c, payload, len, now_ns);
        else
            lg->stats.binary_messages++;
        return 0;
    }
    if (opcode != 0) {
        c->in_fragmented_message = true;
        c->fragmented_opcode = opcode;
        c->message.len = c->message.off = 0;
    }
    if (buf_append(&c->message, payload, len, LG_MESSAGE_MAX) < 0)
        return -1;
    if (!h->fin)
        return 0;
    c->in_fragmented_message = false;
    if (c->fragmented_opcode == 0x1)
        conn_on_text(lg, c, c->message.data, c->message.len, now_ns);
    else
        lg->stats.binary_messages++;
    buf_free(&c->message);
    return 0;
}

/* Handles one complete frame; returns -1 when the connection has been closed. */
static int conn_on_frame(lg_t *lg, conn_t *c, const frame_header_t *h, char *payload, size_t len,
                         uint64_t now_ns)
{
    if (h->masked) {
        /* Servers must not mask (RFC 6455 5.1); tolerate it rather than lose the sample. */
        for (size_t i = 0; i < len; i++)
            payload[i] = (char)(payload[i] ^ h->mask[i & 3]);
    }
    if (h->opcode >= 0x8 && (!h->fin || len > 125)) {
        conn_fail(lg, c, FAIL_PROTOCOL, "bad control frame");
        return -1;
    }
    switch (h->opcode) {
    case 0x8:
        conn_on_close_frame(lg, c, (const uint8_t *)payload, len);
        return -1;
    case 0x9:
        lg->stats.pings_answered++;
        if (conn_queue_frame(lg, c, 0xA, payload, len) < 0)
            return -1;
        return conn_flush(lg, c);
    case 0xA:
        return 0;
    case 0x0:
    case 0x1:
    case 0x2:
        if (conn_on_data_frame(lg, c, h, payload, len, now_ns) == 0)
            return 0;
        conn_fail(lg, c, FAIL_PROTOCOL, "bad fragment sequence or message too large");
        return -1;
    default:
        conn_fail(lg, c, FAIL_PROTOCOL, "unknown opcode");
        return -1;
    }
}

/* Consumes complete frames from `data`; returns the bytes used or -1 if the conn closed. */
static long conn_on_frame_bytes(lg_t *lg, conn_t *c, char *data, size_t len, uint64_t now_ns)
{
    size_t pos = 0;
    while (pos < len) {
        frame_header_t h;
        int r = frame_parse_header((const uint8_t *)data + pos, len - pos, &h);
        if (r == 0)
            break;
        if (r < 0) {
            conn_fail(lg, c, FAIL_PROTOCOL, "malformed frame header");
            return -1;
        }
        if (len - pos - h.header_len < h.payload_len)
            break;
        char *payload = data + pos + h.header_len;
        if (conn_on_frame(lg, c, &h, payload, (size_t)h.payload_len, now_ns) < 0)
            return -1;
        pos += h.header_len + (size_t)h.payload_len;
        if (c->state == CONN_CLOSED)
            return -1;
    }
    return (long)pos;
}

static long conn_consume(lg_t *lg, conn_t *c, char *data, size_t len, uint64_t now_ns)
{
    size_t used = 0;
    if (c->state == CONN_HANDSHAKING) {
        long head = conn_on_handshake_bytes(lg, c, data, len);
        if (head <= 0)
            return head;
        used = (size_t)head;
    }
    long frames = conn_on_frame_bytes(lg, c, data + used, len - used, now_ns);
    return frames < 0 ? -1 : (long)used + frames;
}

/*
 * Reads into the shared scratch buffer and parses from there; only an incomplete tail is
 * copied into the connection's own buffer, so idle connections hold no input memory.
 */
static void conn_on_readable(lg_t *lg, conn_t *c)
{
    /* TLS hands out one record per read: keep reading until it would block. */
    int rounds = c->ssl ? 4 * LG_READ_ROUNDS : LG_READ_ROUNDS;
    for (int round = 0; round < rounds; round++) {
        ssize_t n = conn_io_read(c, lg->scratch, LG_READ_CHUNK);
        if (n == 0) {
            conn_fail(lg, c, FAIL_SERVER_CLOSE, "connection closed without a close frame");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_fail_errno(lg, c, FAIL_IO, "recv", errno);
            return;
        }
        uint64_t now_ns = mono_ns();
        bool from_scratch = c->in.len == c->in.off;
        char *data = lg->scratch;
        size_t len = (size_t)n;
        if (!from_scratch) {
            if (buf_append(&c->in, lg->scratch, len, LG_MESSAGE_MAX + LG_HANDSHAKE_MAX) < 0) {
                conn_fail(lg, c, FAIL_PROTOCOL, "input buffer overflow");
                return;
            }
            data = c->in.data + c->in.off;
            len = c->in.len - c->in.off;
        }
        long used = conn_consume(lg, c, data, len, now_ns);
        if (used < 0)
            return;
        if (from_scratch) {
            c->in.len = c->in.off = 0;
            if ((size_t)used < len &&
                buf_append(&c->in, data + used, len - (size_t)used, LG_READ_CHUNK) < 0) {
                conn_fail(lg, c, FAIL_IO, "out of memory");
                return;
            }
        } else {
            c->in.off += (size_t)used;
        }
        if (c->in.off == c->in.len && c->in.cap > LG_INBUF_KEEP_BYTES)
            buf_free(&c->in);
        if ((size_t)n < LG_READ_CHUNK && !c->ssl)
            return;
    }
}

static void http_on_epoll(lg_t *lg, http_slot_t *h, uint32_t events);

static void conn_on_epoll(lg_t *lg, uint32_t index, uint32_t events)
{
    if (index & LG_HTTP_TAG) {
        http_on_epoll(lg, &lg->http[index & ~LG_HTTP_TAG], events);
        return;
    }
    conn_t *c = &lg->conns[index];
    if (c->fd < 0)
        return;
    if (c->stalled_now) {
        /* It reads nothing; it only learns that the server gave up on it. */
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            lg->x.stalled_closed++;
            lg->conns_ready--;
            c->state = CONN_CLOSED;
            conn_release(c);
        }
        return;
    }
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_on_connected(lg, c);
        return;
    }
    if (c->state == CONN_TLS) {
        conn_tls_step(lg, c);
        return;
    }
    if ((events & EPOLLOUT) && conn_flush(lg, c) < 0)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_on_readable(lg, c);
}

/* ---------------------------------------------------------------------------------------- */
/* Sending events                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void conn_send_event(lg_t *lg, conn_t *c, bool measured)
{
    uint32_t index = (uint32_t)(c - lg->conns);
    uint32_t seq = c->next_seq++;
    const char *item = lg->items.ids[prng_next(&lg->prng) % lg->items.count];
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "{\"type\":\"event\",\"id\":\"%" PRIu32 "-%" PRIu32
                     "\",\"kind\":\"%s\",\"item\":\"%s\"}",
                     index, seq, EVENT_KINDS[seq % 3], item);
    event_slot_t *slot = &c->slots[seq & lg->slot_mask];
    if ((slot->flags & (SLOT_MEASURED | SLOT_ANSWERED)) == SLOT_MEASURED) {
        /* Its answer would now find the slot reused; stop waiting for it in the drain. */
        lg->stats.events_unanswered_overwritten++;
        lg->measured_unanswered--;
    }
    slot->seq = seq;
    slot->flags = measured ? SLOT_MEASURED : 0;
    slot->sent_ns = mono_ns();
    lg->stats.events_sent_total++;
    if (measured) {
        lg->stats.events_sent_measured++;
        lg->measured_unanswered++;
    }
    if (conn_queue_app(lg, c, text, (size_t)n) == 0)
        conn_flush(lg, c);
}

/*
 * Sends every event whose time has come. Each connection sends every interval_ns at its own
 * random phase; with the connections sorted by phase, the global send order is a simple
 * round robin, so one cursor replaces a timer per connection. Open loop: a late send goes
 * out as soon as possible and keeps its place, it never shifts the later schedule.
 */
static void send_due_events(lg_t *lg, uint64_t now_ns)
{
    uint32_t n = lg->opt.connections;
    for (int sent = 0; sent < LG_SENDS_PER_ROUND; sent++) {
        uint64_t round = lg->send_cursor / n;
        const schedule_entry_t *e = &lg->schedule[lg->send_cursor % n];
        uint64_t due_ns = lg->events_start_ns + round * lg->interval_ns + e->phase_ns;
        if (due_ns > now_ns || due_ns >= lg->measure_end_ns)
            return;
        lg->send_cursor++;
        conn_t *c = &lg->conns[e->conn];
        if (!user_ready(lg, e->conn)) {
            lg->stats.sends_skipped_not_ready += due_ns >= lg->measure_start_ns;
            continue;
        }
        conn_send_event(lg, c, due_ns >= lg->measure_start_ns);
    }
}

static uint64_t next_send_due_ns(const lg_t *lg)
{
    uint32_t n = lg->opt.connections;
    const schedule_entry_t *e = &lg->schedule[lg->send_cursor % n];
    return lg->events_start_ns + (lg->send_cursor / n) * lg->interval_ns + e->phase_ns;
}

/*
 * At the end of the window: events due in it that a late loop (a stall on a busy machine)
 * has not written yet still go out, late, as the open-loop schedule promises; otherwise a
 * stall at the very end would silently shrink the offered load.
 */
static void send_overdue_events(lg_t *lg, uint64_t now_ns)
{
    while (next_send_due_ns(lg) < lg->measure_end_ns && next_send_due_ns(lg) <= now_ns)
        send_due_events(lg, now_ns);
}

static int compare_phase(const void *a, const void *b)
{
    const schedule_entry_t *x = a, *y = b;
    return (x->phase_ns > y->phase_ns) - (x->phase_ns < y->phase_ns);
}

/* ---------------------------------------------------------------------------------------- */
/* Scenarios: idle, handshake, fanout, stalled clients                                      */
/* ---------------------------------------------------------------------------------------- */

/* --stalled: once the load starts, those connections stop reading for good. */
static void stall_connections(lg_t *lg)
{
    if (!lg->opt.stalled)
        return;
    for (uint32_t i = lg->opt.connections; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (c->state == CONN_READY && conn_set_events(lg, c, EPOLLRDHUP) == 0) {
            c->stalled_now = true;
            lg->x.stalled_open++;
        }
    }
}

/*
 * --ready-file: a driver running several generators samples the server once every one of
 * them has its connections open. Written whole and renamed, so it is never read half-done.
 */
static void write_ready_file(const lg_t *lg)
{
    if (!lg->opt.ready_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", lg->opt.ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "{\"pid\": %ld, \"open\": %" PRIu32 ", \"failed\": %" PRIu64 "}\n", (long)getpid(),
            lg->conns_ready, lg->stats.connections_failed);
    if (fclose(f) == 0)
        rename(tmp, lg->opt.ready_file);
}

/* Handshake scenario: slots start again as soon as they are free, at most --connect-rate/s. */
static uint64_t next_handshake_due_ns(const lg_t *lg)
{
    return lg->started_ns +
           (uint64_t)((double)lg->conn_attempts / lg->opt.connect_rate_per_s * 1e9);
}

static bool conn_in_flight(const conn_t *c)
{
    return c->state == CONN_CONNECTING || c->state == CONN_TLS || c->state == CONN_HANDSHAKING ||
           c->state == CONN_OPENING;
}

static void refill_handshakes(lg_t *lg, uint64_t now_ns)
{
    uint64_t timeout_ns = (uint64_t)(lg->opt.connect_timeout_s * 1e9);
    for (uint32_t i = 0; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (conn_in_flight(c) && now_ns - c->started_ns > timeout_ns)
            conn_fail(lg, c, FAIL_TIMEOUT, "handshake not done within --connect-timeout");
        if ((c->state == CONN_IDLE || c->state == CONN_CLOSED) && now_ns < lg->measure_end_ns &&
            next_handshake_due_ns(lg) <= now_ns)
            conn_start(lg, i, now_ns);
    }
}

static void begin_handshakes(lg_t *lg, uint64_t now_ns)
{
    lg->events_start_ns = now_ns;
    lg->measure_start_ns = now_ns + (uint64_t)(lg->opt.warmup_s * 1e9);
    lg->measure_end_ns = lg->measure_start_ns + (uint64_t)(lg->opt.duration_s * 1e9);
    lg->watchdog_ns = lg->measure_end_ns + (uint64_t)(lg->opt.connect_timeout_s * 1e9) +
                      (uint64_t)(lg->opt.drain_ms + LG_WATCHDOG_SLACK_MS) * NS_PER_MS;
    lg->phase = PHASE_EVENTS;
    fprintf(stderr,
            "rankcast-loadgen: handshakes on %" PRIu32 " slots until %s, %.0f s warmup + %.0f s "
            "measured\n",
            lg->conn_count, lg->opt.handshake_until_welcome ? "welcome" : "the 101",
            lg->opt.warmup_s, lg->opt.duration_s);
}

/* Fanout: POST /api/v1/push at --push-rate, each on its own plaintext connection. */
static uint64_t next_push_due_ns(const lg_t *lg)
{
    return lg->events_start_ns +
           (uint64_t)((double)lg->push_cursor * 1e9 / lg->opt.push_rate_per_s);
}

static void http_close(http_slot_t *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    h->busy = false;
}

static void http_post_push(lg_t *lg, uint64_t now_ns)
{
    http_slot_t *h = NULL;
    uint32_t slot = 0;
    for (; slot < LG_HTTP_SLOTS; slot++) {
        if (!lg->http[slot].busy) {
            h = &lg->http[slot];
            break;
        }
    }
    if (!h) {
        lg->x.skipped_busy++;
        return;
    }
    h->measured = now_ns >= lg->measure_start_ns && now_ns < lg->measure_end_ns;
    char body[256];
    int body_len = snprintf(body, sizeof(body),
                            "{\"segment\":\"%s\",\"topic\":\"bench\",\"data\":{\"lg_ns\":%" PRIu64
                            ",\"seq\":%" PRIu64 "}}",
                            lg->opt.push_segment, now_ns, lg->push_seq++);
    char request[sizeof(h->req)];
    int n = snprintf(request, sizeof(request),
                     "POST /api/v1/push HTTP/1.1\r\nHost: %s:%u\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     lg->opt.host, (unsigned)lg->opt.port, lg->opt.admin_token, body_len, body);
    if (n < 0 || (size_t)n >= sizeof(request)) {
        lg->x.failed++;
        return;
    }
    memcpy(h->req, request, (size_t)n);
    h->req_len = (size_t)n;
    h->req_off = h->resp_len = 0;
    h->connected = false;
    h->sent_ns = now_ns;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(lg->opt.port)};
    target.sin_addr = lg->opt.target;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = LG_HTTP_TAG | slot};
    if (h->fd < 0 ||
        (connect(h->fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) ||
        epoll_ctl(lg->epoll_fd, EPOLL_CTL_ADD, h->fd, &ev) < 0) {
        lg->x.failed++;
        http_close(h);
        return;
    }
    h->busy = true;
    lg->x.posted++;
    lg->x.posted_measured += h->measured;
}

static void post_due_pushes(lg_t *lg, uint64_t now_ns)
{
    for (int i = 0; i < LG_SENDS_PER_ROUND; i++) {
        uint64_t due_ns = next_push_due_ns(lg);
        if (due_ns > now_ns || due_ns >= lg->measure_end_ns)
            return;
        lg->push_cursor++;
        http_post_push(lg, now_ns);
    }
}

/* A response is complete once its head and Content-Length bytes of body are in. */
static bool http_response_complete(const http_slot_t *h)
{
    const char *head_end = memmem(h->resp, h->resp_len, "\r\n\r\n", 4);
    if (!head_end)
        return false;
    size_t head_len = (size_t)(head_end - h->resp) + 4;
    const char *value = NULL;
    size_t value_len = 0;
    if (!http_header_value(h->resp, head_len, "Content-Length", &value, &value_len))
        return false; /* wait for the end of the stream */
    return h->resp_len - head_len >= (size_t)strtoul(value, NULL, 10);
}

static void http_finish(lg_t *lg, http_slot_t *h)
{
    h->resp[h->resp_len] = '\0';
    long status = h->resp_len > 12 ? strtol(h->resp + 9, NULL, 10) : 0;
    if (status >= 200 && status < 300) {
        lg->x.accepted++;
        lg->x.accepted_measured += h->measured;
    } else {
        lg->x.refused++;
        if (!lg->x.http_status_first_bad)
            lg->x.http_status_first_bad = status ? status : -1;
    }
    http_close(h);
}

static void http_on_epoll(lg_t *lg, http_slot_t *h, uint32_t events)
{
    if (h->fd < 0)
        return;
    if (!h->connected) {
        int err = 0;
        socklen_t err_len = sizeof(err);
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0 || err) {
            lg->x.failed++;
            http_close(h);
            return;
        }
        h->connected = true;
    }
    if (h->req_off < h->req_len) {
        while (h->req_off < h->req_len) {
            ssize_t n = send(h->fd, h->req + h->req_off, h->req_len - h->req_off, MSG_NOSIGNAL);
            if (n > 0) {
                h->req_off += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
            lg->x.failed++;
            http_close(h);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN,
                                 .data.u32 = LG_HTTP_TAG | (uint32_t)(h - lg->http)};
        epoll_ctl(lg->epoll_fd, EPOLL_CTL_MOD, h->fd, &ev);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    while (h->resp_len < sizeof(h->resp) - 1) {
        ssize_t n = recv(h->fd, h->resp + h->resp_len, sizeof(h->resp) - 1 - h->resp_len, 0);
        if (n > 0) {
            h->resp_len += (size_t)n;
            if (http_response_complete(h))
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        break; /* end of stream or an error: judge what arrived */
    }
    http_finish(lg, h);
}

/* ---------------------------------------------------------------------------------------- */
/* Phases                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* In cross-node mode a user's two connections start one after the other. */
static uint32_t conn_index_in_start_order(const lg_t *lg, uint32_t k)
{
    if (!observing(lg))
        return k;
    return k / 2 + (k % 2) * lg->opt.connections;
}

static void start_connections_due(lg_t *lg, uint64_t now_ns)
{
    double elapsed_s = (double)(now_ns - lg->started_ns) / 1e9;
    uint64_t allowed = (uint64_t)(elapsed_s * lg->opt.connect_rate_per_s) + 1;
    while (lg->conns_started < lg->conn_count && lg->conns_started < allowed)
        conn_start(lg, conn_index_in_start_order(lg, lg->conns_started++), now_ns);
}

static void fail_pending_connections(lg_t *lg)
{
    for (uint32_t i = 0; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKING || c->state == CONN_OPENING)
            conn_fail(lg, c, FAIL_TIMEOUT, "not ready before --connect-timeout");
    }
}

static void begin_events(lg_t *lg, uint64_t now_ns)
{
    fail_pending_connections(lg);
    lg->rss_open_kb = read_rss_kb(lg->opt.server_pid);
    lg->open_at_events_start = lg->conns_ready;
    for (uint32_t user = 0; user < lg->opt.connections; user++) {
        lg->actors_at_events_start += lg->conns[user].state == CONN_READY;
        lg->users_at_events_start += user_ready(lg, user);
    }
    lg->events_start_ns = now_ns;
    lg->measure_start_ns = now_ns + (uint64_t)(lg->opt.warmup_s * 1e9);
    lg->measure_end_ns = lg->measure_start_ns + (uint64_t)(lg->opt.duration_s * 1e9);
    lg->phase = PHASE_EVENTS;
    stall_connections(lg);
    write_ready_file(lg);
    fprintf(stderr,
            "rankcast-loadgen: %" PRIu32 " of %" PRIu32 " connections ready after %.2f s; "
            "%" PRIu32 " users sending %.2f events/s each for %.0f s warmup + %.0f s measured "
            "(scenario %s)\n",
            lg->conns_ready, lg->conn_count, (double)(now_ns - lg->started_ns) / 1e9,
            lg->users_at_events_start, lg->opt.scenario == SCEN_LATENCY ? lg->opt.rate_per_s : 0,
            lg->opt.warmup_s, lg->opt.duration_s, SCENARIO_NAMES[lg->opt.scenario]);
}

static void begin_drain(lg_t *lg, uint64_t now_ns)
{
    lg->server_cpu_end_s = read_cpu_s(lg->opt.server_pid);
    lg->machine_end = read_machine_cpu();
    lg->self_cpu_end_s = self_cpu_s();
    lg->phase = PHASE_DRAIN;
    lg->drain_end_ns = now_ns + (uint64_t)lg->opt.drain_ms * NS_PER_MS;
    if (lg->last_answer_ns < now_ns)
        lg->last_answer_ns = now_ns;
}

static void finish(lg_t *lg, uint64_t now_ns)
{
    lg->done_ns = now_ns;
    lg->rss_end_kb = read_rss_kb(lg->opt.server_pid);
    lg->phase = PHASE_DONE;
}

/*
 * The drain ends early once every measured event has its ack (or error) and nothing has
 * arrived for LG_DRAIN_QUIET_MS: a recs may follow its ack, but not by that long on loopback.
 */
static bool drain_settled(const lg_t *lg, uint64_t now_ns)
{
    if (now_ns >= lg->drain_end_ns)
        return true;
    return lg->measured_unanswered == 0 &&
           now_ns - lg->last_answer_ns >= LG_DRAIN_QUIET_MS * NS_PER_MS;
}

static void advance_phase(lg_t *lg, uint64_t now_ns)
{
    if (g_stop_requested && lg->phase != PHASE_DONE) {
        g_stop_requested = 0;
        fprintf(stderr, "rankcast-loadgen: interrupted, reporting what was measured\n");
        if (lg->phase == PHASE_CONNECT)
            begin_events(lg, now_ns);
        lg->measure_end_ns = now_ns < lg->measure_end_ns ? now_ns : lg->measure_end_ns;
        begin_drain(lg, now_ns);
    }
    if (now_ns >= lg->watchdog_ns && lg->phase != PHASE_DONE) {
        fprintf(stderr, "rankcast-loadgen: watchdog expired, stopping\n");
        finish(lg, now_ns);
        return;
    }
    switch (lg->phase) {
    case PHASE_CONNECT:
        if ((lg->conns_started == lg->conn_count && lg->conns_pending == 0) ||
            now_ns >= lg->connect_deadline_ns)
            begin_events(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->users_at_events_start == 0) {
            lg->measure_end_ns = now_ns;
            finish(lg, now_ns);
        }
        break;
    case PHASE_EVENTS:
        if (!lg->server_cpu_started && now_ns >= lg->measure_start_ns) {
            lg->server_cpu_start_s = read_cpu_s(lg->opt.server_pid);
            lg->machine_start = read_machine_cpu();
            lg->self_cpu_start_s = self_cpu_s();
            lg->server_cpu_started = true;
        }
        if (now_ns >= lg->measure_end_ns) {
            if (lg->opt.scenario == SCEN_LATENCY)
                send_overdue_events(lg, now_ns);
            begin_drain(lg, now_ns);
        }
        break;
    case PHASE_DRAIN:
        if (drain_settled(lg, now_ns))
            finish(lg, now_ns);
        break;
    case PHASE_DONE:
        break;
    }
}

static uint64_t next_deadline_ns(const lg_t *lg)
{
    uint64_t deadline = lg->watchdog_ns;
    uint64_t candidate = UINT64_MAX;
    switch (lg->phase) {
    case PHASE_CONNECT:
        candidate = lg->connect_deadline_ns;
        if (lg->conns_started < lg->conn_count) {
            double next_s = (double)lg->conns_started / lg->opt.connect_rate_per_s;
            uint64_t next_ns = lg->started_ns + (uint64_t)(next_s * 1e9);
            candidate = next_ns < candidate ? next_ns : candidate;
        }
        break;
    case PHASE_EVENTS:
        if (lg->opt.scenario == SCEN_LATENCY)
            candidate = next_send_due_ns(lg);
        else if (lg->opt.scenario == SCEN_FANOUT)
            candidate = next_push_due_ns(lg);
        else if (lg->opt.scenario == SCEN_HANDSHAKE)
            candidate = lg->conns_pending < lg->conn_count ? next_handshake_due_ns(lg) : UINT64_MAX;
        candidate = lg->measure_end_ns < candidate ? lg->measure_end_ns : candidate;
        break;
    case PHASE_DRAIN:
        candidate = lg->drain_end_ns;
        if (lg->measured_unanswered == 0)
            candidate = lg->last_answer_ns + LG_DRAIN_QUIET_MS * NS_PER_MS;
        break;
    case PHASE_DONE:
        candidate = 0;
        break;
    }
    return candidate < deadline ? candidate : deadline;
}

/* epoll_wait counts in milliseconds: round up so a timer never fires early and spins. */
static int wait_timeout_ms(const lg_t *lg, uint64_t now_ns)
{
    uint64_t deadline = next_deadline_ns(lg);
    if (deadline <= now_ns)
        return 0;
    uint64_t wait_ms = (deadline - now_ns + NS_PER_MS - 1) / NS_PER_MS;
    return wait_ms > LG_LOOP_MAX_WAIT_MS ? LG_LOOP_MAX_WAIT_MS : (int)wait_ms;
}

static int run_loop(lg_t *lg)
{
    struct epoll_event events[LG_EPOLL_BATCH];
    while (lg->phase != PHASE_DONE) {
        uint64_t now_ns = mono_ns();
        advance_phase(lg, now_ns);
        if (lg->phase == PHASE_DONE)
            break;
        if (lg->phase == PHASE_CONNECT)
            start_connections_due(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->opt.scenario == SCEN_LATENCY)
            send_due_events(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->opt.scenario == SCEN_FANOUT)
            post_due_pushes(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->opt.scenario == SCEN_HANDSHAKE)
            refill_handshakes(lg, now_ns);
        int n = epoll_wait(lg->epoll_fd, events, LG_EPOLL_BATCH, wait_timeout_ms(lg, mono_ns()));
        if (n < 0 && errno != EINTR) {
            perror("rankcast-loadgen: epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++)
            conn_on_epoll(lg, events[i].data.u32, events[i].events);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Report                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static double ns_to_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void json_latency(FILE *f, const char *name, const hist_t *h)
{
    double mean_ms = h->total ? ns_to_ms(h->sum_ns / h->total) : 0;
    fprintf(f,
            "  \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
            "\"p999\": %.3f, \"max\": %.3f, \"mean\": %.3f},\n",
            name, h->total, ns_to_ms(hist_quantile_ns(h, 0.50)),
            ns_to_ms(hist_quantile_ns(h, 0.90)), ns_to_ms(hist_quantile_ns(h, 0.99)),
            ns_to_ms(hist_quantile_ns(h, 0.999)), ns_to_ms(h->max_ns), mean_ms);
}

static void json_code_table(FILE *f, const code_count_t *table, size_t kinds)
{
    fputc('{', f);
    for (size_t i = 0; i < kinds; i++)
        fprintf(f, "%s\"%ld\": %" PRIu64, i ? ", " : "", table[i].code, table[i].count);
    fputc('}', f);
}

static void json_reason_table(FILE *f, const uint64_t *counts)
{
    fputc('{', f);
    bool first = true;
    for (int r = 0; r < FAIL_REASONS; r++) {
        if (!counts[r])
            continue;
        fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", FAIL_NAMES[r], counts[r]);
        first = false;
    }
    fputc('}', f);
}

/* Failure details are fixed strings or strerror text, so they need no JSON escaping. */
static void json_failure_examples(FILE *f, const stats_t *s)
{
    fputc('{', f);
    bool first = true;
    for (int r = 0; r < FAIL_REASONS; r++) {
        if (!s->first_failure[r][0])
            continue;
        fprintf(f, "%s\"%s\": \"", first ? "" : ", ", FAIL_NAMES[r]);
        for (const char *p = s->first_failure[r]; *p; p++)
            fputc(*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p, f);
        fputc('"', f);
        first = false;
    }
    fputc('}', f);
}

static double measured_seconds(const lg_t *lg)
{
    if (lg->measure_end_ns <= lg->measure_start_ns)
        return 0;
    return (double)(lg->measure_end_ns - lg->measure_start_ns) / 1e9;
}

static void json_rss(FILE *f, const lg_t *lg)
{
    if (lg->opt.server_pid <= 0) {
        fprintf(f, "  \"server\": null,\n");
        return;
    }
    /* Connections to the --server-pid node only: in cross-node mode the observers are elsewhere. */
    uint32_t open = lg->actors_at_events_start;
    double per_conn_open = -1, per_conn_end = -1, cpu_s = -1, seconds = measured_seconds(lg);
    if (lg->server_cpu_started && lg->server_cpu_start_s >= 0 && lg->server_cpu_end_s >= 0)
        cpu_s = lg->server_cpu_end_s - lg->server_cpu_start_s;
    if (open && lg->rss_before_kb >= 0 && lg->rss_open_kb >= 0)
        per_conn_open = (double)(lg->rss_open_kb - lg->rss_before_kb) / open;
    if (open && lg->rss_before_kb >= 0 && lg->rss_end_kb >= 0)
        per_conn_end = (double)(lg->rss_end_kb - lg->rss_before_kb) / open;
    fprintf(f,
            "  \"server\": {\"pid\": %ld, \"rss_kb_before\": %ld, \"rss_kb_open\": %ld, "
            "\"rss_kb_end\": %ld, \"rss_per_conn_kb_open\": %.3f, "
            "\"rss_per_conn_kb_end\": %.3f, \"cpu_s_measured\": %.3f, "
            "\"cpu_cores_measured\": %.3f},\n",
            lg->opt.server_pid, lg->rss_before_kb, lg->rss_open_kb, lg->rss_end_kb, per_conn_open,
            per_conn_end, cpu_s, cpu_s >= 0 && seconds > 0 ? cpu_s / seconds : -1);
}

/* CPU use during the measured window, in cores (CPU seconds per second); -1 if unknown. */
typedef struct {
    double busy;
    double steal;
    double server;
    double loadgen;
    double other;
} window_cpu_t;

static window_cpu_t window_cpu(const lg_t *lg)
{
    window_cpu_t w = {-1, -1, -1, -1, -1};
    double seconds = measured_seconds(lg);
    if (!lg->server_cpu_started || seconds <= 0 || !lg->machine_start.valid ||
        !lg->machine_end.valid)
        return w;
    w.busy = (lg->machine_end.busy_s - lg->machine_start.busy_s) / seconds;
    w.steal = (lg->machine_end.steal_s - lg->machine_start.steal_s) / seconds;
    w.loadgen = (lg->self_cpu_end_s - lg->self_cpu_start_s) / seconds;
    if (lg->server_cpu_start_s >= 0 && lg->server_cpu_end_s >= 0)
        w.server = (lg->server_cpu_end_s - lg->server_cpu_start_s) / seconds;
    w.other = w.busy - w.loadgen - (w.server > 0 ? w.server : 0);
    if (w.other < 0)
        w.other = 0; /* the three samples are not atomic: clamp rounding noise */
    return w;
}

static void json_machine(FILE *f, const lg_t *lg)
{
    window_cpu_t w = window_cpu(lg);
    fprintf(f,
            "  \"machine\": {\"cpus\": %ld, \"busy_cores_measured\": %.3f, "
            "\"loadgen_cores_measured\": %.3f, \"other_cores_measured\": %.3f, "
            "\"steal_cores_measured\": %.3f},\n",
            sysconf(_SC_NPROCESSORS_ONLN), w.busy, w.loadgen, w.other, w.steal);
}

static void json_config(FILE *f, const lg_t *lg)
{
    const options_t *o = &lg->opt;
    fprintf(f,
            "  \"config\": {\"host\": \"%s\", \"port\": %u, \"path\": \"%s\", "
            "\"connections\": %" PRIu32 ", \"sources\": %" PRIu32
            ", \"connect_rate_per_s\": %g, \"rate_per_conn_per_s\": %g, \"warmup_s\": %g, "
            "\"duration_s\": %g, \"drain_max_ms\": %" PRIu32 ", \"surface\": \"%s\", "
            "\"k\": %" PRIu32 ", \"items\": %zu, \"item_source\": \"%s\", \"seed\": %" PRIu64
            "},\n",
            o->host, (unsigned)o->port, o->path, o->connections, o->sources, o->connect_rate_per_s,
            o->rate_per_s, o->warmup_s, o->duration_s, o->drain_ms, o->surface, o->k,
            lg->items.count, o->catalog_path ? "catalog" : "synthetic", o->seed);
}

/* Cross-node mode only: the observed node (config.connections then counts users). */
static void json_observe(FILE *f, const lg_t *lg)
{
    if (!observing(lg)) {
        fprintf(f, "  \"observe\": null,\n");
        return;
    }
    fprintf(f, "  \"observe\": {\"host\": \"%s\", \"port\": %u},\n", lg->opt.observe_host,
            (unsigned)lg->opt.observe_port);
}

static void json_connections(FILE *f, const lg_t *lg)
{
    const stats_t *s = &lg->stats;
    fprintf(f,
            "  \"connections\": {\"requested\": %" PRIu32 ", \"open\": %" PRIu32
            ", \"failed\": %" PRIu64 ", \"open_at_end\": %" PRIu32 ", \"lost_during_run\": %" PRIu64
            ", \"failed_by_reason\": ",
            lg->conn_count, lg->open_at_events_start, s->connections_failed, lg->conns_ready,
            s->connections_lost);
    json_reason_table(f, s->fail_reasons);
    fprintf(f, ", \"lost_by_reason\": ");
    json_reason_table(f, s->lost_reasons);
    fprintf(f, ", \"first_failure\": ");
    json_failure_examples(f, s);
    fprintf(f, ", \"close_codes\": ");
    json_code_table(f, s->close_codes, s->close_kinds);
    fprintf(f, ", \"handshakes_without_subprotocol\": %" PRIu64, s->no_subprotocol);
    if (observing(lg))
        fprintf(f,
                ", \"users\": %" PRIu32 ", \"senders_open\": %" PRIu32 ", \"users_open\": %" PRIu32,
                lg->opt.connections, lg->actors_at_events_start, lg->users_at_events_start);
    fprintf(f, "},\n");
}

static void json_events(FILE *f, const lg_t *lg)
{
    const stats_t *s = &lg->stats;
    double seconds = measured_seconds(lg);
    double matched_ratio =
        s->events_sent_measured ? (double)s->pushes_matched / (double)s->events_sent_measured : 0;
    fprintf(f,
            "  \"events\": {\"sent\": %" PRIu64 ", \"sent_including_warmup\": %" PRIu64
            ", \"acked\": %" PRIu64 ", \"errored\": %" PRIu64 ", \"unanswered\": %" PRIu64
            ", \"pushes_matched\": %" PRIu64 ", \"pushes_matched_ratio\": %.4f"
            ", \"skipped_not_ready\": %" PRIu64 ", \"errors_by_code\": ",
            s->events_sent_measured, s->events_sent_total, s->events_acked_measured,
            s->events_errored_measured,
            s->events_sent_measured - s->events_acked_measured - s->events_errored_measured,
            s->pushes_matched, matched_ratio, s->sends_skipped_not_ready);
    json_code_table(f, s->errors, s->error_kinds);
    if (observing(lg))
        fprintf(f, ", \"local_pushes_matched\": %" PRIu64 ", \"local_pushes_matched_ratio\": %.4f",
                s->local_pushes_matched,
                s->events_sent_measured
                    ? (double)s->local_pushes_matched / (double)s->events_sent_measured
                    : 0);
    fprintf(f, "},\n");
    fprintf(f,
            "  \"messages\": {\"ack\": %" PRIu64 ", \"ack_ids\": %" PRIu64 ", \"recs\": %" PRIu64
            ", \"recs_unmatched\": %" PRIu64 ", \"recs_duplicate\": %" PRIu64
            ", \"recs_other_user\": %" PRIu64 ", \"error\": %" PRIu64 ", \"pong\": %" PRIu64
            ", \"push\": %" PRIu64 ", \"drain\": %" PRIu64 ", \"other\": %" PRIu64
            ", \"binary\": %" PRIu64 ", \"pings_answered\": %" PRIu64 "},\n",
            s->ack_messages, s->ack_ids, s->recs_total, s->recs_unmatched, s->recs_duplicate,
            s->recs_other_user, s->errors_total, s->pongs, s->pushes_app, s->drains,
            s->other_messages, s->binary_messages, s->pings_answered);
    fprintf(f,
            "  \"rate\": {\"target_events_per_s\": %.1f, \"achieved_events_per_s\": %.1f, "
            "\"measured_s\": %.3f},\n",
            lg->opt.rate_per_s * lg->users_at_events_start,
            seconds > 0 ? (double)s->events_sent_measured / seconds : 0, seconds);
}

static void json_self_usage(FILE *f, const lg_t *lg)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(f,
            "  \"loadgen\": {\"pid\": %ld, \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, "
            "\"max_rss_kb\": %ld, \"elapsed_s\": %.3f}\n",
            (long)getpid(), (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
            (double)(lg->done_ns - lg->started_ns) / 1e9);
}

/*
 * Raw histogram buckets (non-empty ones, as [index, count]) so that reports of several
 * generator processes merge exactly (bench/lgmerge.py): index i covers the values whose
 * hist_index() is i, 2^HIST_SUB_BITS buckets per power of two, in nanoseconds.
 */
static void json_raw_hist(FILE *f, const char *name, const hist_t *h, bool last)
{
    fprintf(f,
            "    \"%s\": {\"sub_bits\": %d, \"total\": %" PRIu64 ", \"max_ns\": %" PRIu64
            ", \"sum_ns\": %" PRIu64 ", \"buckets\": [",
            name, HIST_SUB_BITS, h->total, h->max_ns, h->sum_ns);
    bool first = true;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (!h->counts[i])
            continue;
        fprintf(f, "%s[%zu, %" PRIu64 "]", first ? "" : ", ", i, h->counts[i]);
        first = false;
    }
    fprintf(f, "]}%s\n", last ? "" : ",");
}

static void json_scenario(FILE *f, const lg_t *lg)
{
    const extra_stats_t *x = &lg->x;
    double seconds = measured_seconds(lg);
    static const char *const framings[] = {"rankcast", "socketio"};
    fprintf(f,
            "  \"scenario\": \"%s\", \"framing\": \"%s\", \"tls\": %s, \"open_until\": \"%s\",\n",
            SCENARIO_NAMES[lg->opt.scenario], framings[lg->opt.framing],
            lg->opt.tls ? "true" : "false", OPEN_UNTIL_NAMES[lg->opt.open_until]);
    fprintf(f,
            "  \"handshakes\": {\"until\": \"%s\", \"slots\": %" PRIu32 ", \"done\": %" PRIu64
            ", \"measured\": %" PRIu64 ", \"per_s\": %.1f, \"failed\": %" PRIu64 "},\n",
            lg->opt.handshake_until_welcome ? "welcome" : "upgrade",
            lg->opt.scenario == SCEN_HANDSHAKE ? lg->conn_count : 0, x->handshakes_done,
            x->handshakes_measured, seconds > 0 ? (double)x->handshakes_measured / seconds : 0,
            lg->opt.scenario == SCEN_HANDSHAKE ? lg->stats.connections_failed : 0);
    uint64_t expected = x->accepted_measured * (uint64_t)lg->open_at_events_start;
    fprintf(f,
            "  \"fanout\": {\"segment\": \"%s\", \"push_rate_per_s\": %g, \"posted\": %" PRIu64
            ", \"posted_measured\": %" PRIu64 ", \"accepted\": %" PRIu64
            ", \"accepted_measured\": %" PRIu64 ", \"refused\": %" PRIu64
            ", \"first_bad_status\": %ld, \"post_failed\": %" PRIu64 ", \"skipped_busy\": %" PRIu64
            ", \"deliveries_total\": %" PRIu64 ", \"deliveries_measured\": %" PRIu64
            ", \"deliveries_expected\": %" PRIu64
            ", \"delivered_ratio\": %.4f, \"deliveries_per_s\": %.1f},\n",
            lg->opt.push_segment, lg->opt.scenario == SCEN_FANOUT ? lg->opt.push_rate_per_s : 0,
            x->posted, x->posted_measured, x->accepted, x->accepted_measured, x->refused,
            x->http_status_first_bad, x->failed, x->skipped_busy, x->deliveries_total,
            x->deliveries_measured, expected,
            expected ? (double)x->deliveries_measured / (double)expected : 0,
            seconds > 0 ? (double)x->deliveries_measured / seconds : 0);
    fprintf(f,
            "  \"stalled\": {\"requested\": %" PRIu32 ", \"k\": %" PRIu32 ", \"rcvbuf\": %" PRIu32
            ", \"stalled\": %" PRIu64 ", \"closed_by_server\": %" PRIu64 "},\n",
            lg->opt.stalled, lg->opt.stalled_k, lg->opt.stalled_rcvbuf, x->stalled_open,
            x->stalled_closed);
    json_latency(f, "delivery_latency_ms", &lg->delivery_latency);
    json_latency(f, "handshake_ms", &lg->handshake_latency);
    fprintf(f, "  \"histograms\": {\n");
    json_raw_hist(f, "latency_ms", &lg->push_latency, false);
    json_raw_hist(f, "ack_latency_ms", &lg->ack_latency, false);
    json_raw_hist(f, "server_took_ms", &lg->server_took, false);
    json_raw_hist(f, "connect_ms", &lg->connect_latency, false);
    json_raw_hist(f, "delivery_latency_ms", &lg->delivery_latency, false);
    json_raw_hist(f, "handshake_ms", &lg->handshake_latency, true);
    fprintf(f, "  },\n");
}

static void write_json_report(FILE *f, const lg_t *lg)
{
    fprintf(f, "{\n  \"tool\": \"rankcast-loadgen\",\n  \"report_version\": 1,\n");
    fprintf(f, "  \"mode\": \"%s\",\n", observing(lg) ? "cross_node" : "single_node");
    json_config(f, lg);
    json_observe(f, lg);
    json_connections(f, lg);
    json_events(f, lg);
    json_latency(f, "latency_ms", &lg->push_latency);
    if (observing(lg))
        json_latency(f, "local_latency_ms", &lg->local_latency);
    json_latency(f, "ack_latency_ms", &lg->ack_latency);
    json_latency(f, "server_took_ms", &lg->server_took);
    json_latency(f, "connect_ms", &lg->connect_latency);
    json_scenario(f, lg);
    json_rss(f, lg);
    json_machine(f, lg);
    json_self_usage(f, lg);
    fprintf(f, "}\n");
}

static void print_latency_line(const char *what, const hist_t *h)
{
    fprintf(stderr, "%s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", what,
            ns_to_ms(hist_quantile_ns(h, 0.50)), ns_to_ms(hist_quantile_ns(h, 0.90)),
            ns_to_ms(hist_quantile_ns(h, 0.99)), ns_to_ms(hist_quantile_ns(h, 0.999)),
            ns_to_ms(h->max_ns));
}

static void write_human_summary(const lg_t *lg)
{
    const stats_t *s = &lg->stats;
    const hist_t *h = &lg->push_latency;
    double seconds = measured_seconds(lg);
    fprintf(stderr,
            "connections: %" PRIu32 " requested, %" PRIu32 " open, %" PRIu64 " failed, %" PRIu64
            " lost during the run\n",
            lg->conn_count, lg->open_at_events_start, s->connections_failed, s->connections_lost);
    if (observing(lg))
        fprintf(stderr, "users: %" PRIu32 ", %" PRIu32 " with both connections open\n",
                lg->opt.connections, lg->users_at_events_start);
    for (int r = 0; r < FAIL_REASONS; r++)
        if (s->first_failure[r][0])
            fprintf(stderr, "  first %s failure: %s\n", FAIL_NAMES[r], s->first_failure[r]);
    fprintf(stderr,
            "events: %" PRIu64 " sent in %.1f s (%.1f/s), %" PRIu64 " acked, %" PRIu64
            " errors, %" PRIu64 " got a recs push (%.1f %%)\n",
            s->events_sent_measured, seconds,
            seconds > 0 ? (double)s->events_sent_measured / seconds : 0, s->events_acked_measured,
            s->errors_total, s->pushes_matched,
            s->events_sent_measured
                ? 100.0 * (double)s->pushes_matched / (double)s->events_sent_measured
                : 0);
    if (lg->opt.scenario == SCEN_HANDSHAKE)
        fprintf(stderr, "handshakes: %" PRIu64 " measured (%.1f/s), %" PRIu64 " failed\n",
                lg->x.handshakes_measured,
                seconds > 0 ? (double)lg->x.handshakes_measured / seconds : 0,
                s->connections_failed);
    if (lg->opt.scenario == SCEN_HANDSHAKE)
        print_latency_line("handshake", &lg->handshake_latency);
    if (lg->opt.scenario == SCEN_FANOUT) {
        fprintf(stderr,
                "fanout: %" PRIu64 " pushes posted, %" PRIu64 " accepted, %" PRIu64
                " refused; %" PRIu64 " deliveries measured (%.1f/s)\n",
                lg->x.posted_measured, lg->x.accepted_measured, lg->x.refused,
                lg->x.deliveries_measured,
                seconds > 0 ? (double)lg->x.deliveries_measured / seconds : 0);
        print_latency_line("push->delivery", &lg->delivery_latency);
    }
    if (lg->opt.stalled)
        fprintf(stderr, "stalled: %" PRIu64 " stopped reading, %" PRIu64 " closed by the server\n",
                lg->x.stalled_open, lg->x.stalled_closed);
    print_latency_line(observing(lg) ? "cross-node event->recs" : "event->recs", h);
    if (observing(lg)) {
        fprintf(stderr, "local recs (sending node): %" PRIu64 " (%.1f %%)\n",
                s->local_pushes_matched,
                s->events_sent_measured
                    ? 100.0 * (double)s->local_pushes_matched / (double)s->events_sent_measured
                    : 0);
        print_latency_line("local event->recs", &lg->local_latency);
    }
    fprintf(stderr, "server took_us of those lists, ms: p50 %.3f  p99 %.3f  max %.3f\n",
            ns_to_ms(hist_quantile_ns(&lg->server_took, 0.50)),
            ns_to_ms(hist_quantile_ns(&lg->server_took, 0.99)), ns_to_ms(lg->server_took.max_ns));
    if (lg->opt.server_pid > 0 && lg->actors_at_events_start && lg->rss_before_kb >= 0 &&
        lg->rss_open_kb >= 0)
        fprintf(stderr,
                "server RSS: %ld KB before, %ld KB open, %ld KB end; %.2f KB per connection\n",
                lg->rss_before_kb, lg->rss_open_kb, lg->rss_end_kb,
                (double)(lg->rss_open_kb - lg->rss_before_kb) / lg->actors_at_events_start);
    window_cpu_t w = window_cpu(lg);
    if (w.busy >= 0)
        fprintf(stderr,
                "CPU while measuring, in cores of %ld: server %.2f, loadgen %.2f, other "
                "%.2f, steal %.2f\n",
                sysconf(_SC_NPROCESSORS_ONLN), w.server, w.loadgen, w.other, w.steal);
}

static int emit_report(const lg_t *lg)
{
    write_human_summary(lg);
    write_json_report(stdout, lg);
    fflush(stdout);
    if (!lg->opt.json_out_path)
        return 0;
    FILE *f = fopen(lg->opt.json_out_path, "w");
    if (!f) {
        fprintf(stderr, "rankcast-loadgen: cannot write %s: %s\n", lg->opt.json_out_path,
                strerror(errno));
        return -1;
    }
    write_json_report(f, lg);
    return fclose(f) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Setup and teardown                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Raises the soft descriptor limit to the hard one; refuses runs that could not fit. */
static int ensure_fd_budget(uint32_t connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)connections + LG_FD_RESERVE > rl.rlim_cur) {
        fprintf(stderr,
                "rankcast-loadgen: %" PRIu32 " connections need %" PRIu32
                " descriptors, the limit is %llu\n",
                connections, connections + LG_FD_RESERVE, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

/*
 * Ring slots per connection: enough to hold ~8 s of events, so an answer that takes up to
 * that long still finds its send time; a power of two so the slot is `seq & mask`.
 */
static uint32_t slots_per_connection(double rate_per_s)
{
    double wanted = rate_per_s * 8.0;
    uint32_t slots = 16;
    while (slots < wanted && slots < 4096)
        slots *= 2;
    return slots;
}

static int setup_schedule(lg_t *lg)
{
    uint32_t n = lg->opt.connections;
    lg->interval_ns = (uint64_t)(1e9 / lg->opt.rate_per_s + 0.5);
    lg->schedule = calloc(n, sizeof(*lg->schedule));
    if (!lg->schedule)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        lg->schedule[i].conn = i;
        lg->schedule[i].phase_ns = prng_next(&lg->prng) % lg->interval_ns;
    }
    qsort(lg->schedule, n, sizeof(*lg->schedule), compare_phase);
    return 0;
}

static int setup(lg_t *lg)
{
    const options_t *o = &lg->opt;
    lg->prng = o->seed;
    lg->conn_count = observing(lg) ? 2 * o->connections : o->connections + o->stalled;
    for (int i = 0; i < LG_HTTP_SLOTS; i++)
        lg->http[i].fd = -1;
    if (o->tls) {
        lg->ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!lg->ssl_ctx)
            return -1;
        /* Full handshakes every time (no resumption); an unverified peer unless --tls-ca. */
        SSL_CTX_set_session_cache_mode(lg->ssl_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(lg->ssl_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_mode(lg->ssl_ctx,
                         SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (o->tls_ca_path) {
            if (SSL_CTX_load_verify_locations(lg->ssl_ctx, o->tls_ca_path, NULL) != 1) {
                fprintf(stderr, "rankcast-loadgen: cannot load --tls-ca %s\n", o->tls_ca_path);
                return -1;
            }
            SSL_CTX_set_verify(lg->ssl_ctx, SSL_VERIFY_PEER, NULL);
        }
    }
    int rc = o->catalog_path ? items_load_catalog(&lg->items, o->catalog_path)
                             : items_make_synthetic(&lg->items, o->synthetic_items);
    if (rc < 0 || ensure_fd_budget(lg->conn_count) < 0)
        return -1;
    uint32_t slots = slots_per_connection(o->rate_per_s);
    lg->slot_mask = slots - 1;
    lg->conns = calloc(lg->conn_count, sizeof(*lg->conns));
    lg->slot_arena = calloc((size_t)o->connections * slots, sizeof(*lg->slot_arena));
    lg->scratch = malloc(LG_READ_CHUNK);
    lg->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!lg->conns || !lg->slot_arena || !lg->scratch || lg->epoll_fd < 0 ||
        setup_schedule(lg) < 0) {
        fprintf(stderr, "rankcast-loadgen: setup failed: %s\n", strerror(errno));
        return -1;
    }
    /* Only the senders need event slots; observers' slots stay NULL. */
    for (uint32_t i = 0; i < lg->conn_count; i++) {
        lg->conns[i].fd = -1;
        if (i < o->connections)
            lg->conns[i].slots = lg->slot_arena + (size_t)i * slots;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Closes every connection with a close frame (best effort) so the server frees it promptly. */
static void close_all(lg_t *lg)
{
    static const uint8_t normal_close[2] = {0x03, 0xE8};
    for (uint32_t i = 0; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (c->fd >= 0 && c->state == CONN_READY && !c->stalled_now && c->out.len == c->out.off &&
            conn_queue_frame(lg, c, 0x8, normal_close, sizeof(normal_close)) == 0) {
            ssize_t ignored = conn_io_write(c, c->out.data + c->out.off, c->out.len - c->out.off);
            (void)ignored;
        }
        conn_release(c);
    }
}

static void teardown(lg_t *lg)
{
    if (lg->conns)
        close_all(lg);
    for (int i = 0; i < LG_HTTP_SLOTS; i++)
        http_close(&lg->http[i]);
    if (lg->epoll_fd >= 0)
        close(lg->epoll_fd);
    SSL_CTX_free(lg->ssl_ctx);
    free(lg->conns);
    free(lg->slot_arena);
    free(lg->schedule);
    free(lg->scratch);
    items_free(&lg->items);
}

int main(int argc, char **argv)
{
    /* Static: the histograms make the state ~110 KB, too much for some thread stacks. */
    static lg_t lg;
    lg.epoll_fd = -1;
    int rc = parse_options(&lg.opt, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (setup(&lg) < 0) {
        teardown(&lg);
        return 2;
    }
    const options_t *o = &lg.opt;
    lg.rss_before_kb = read_rss_kb(o->server_pid);
    if (o->server_pid > 0 && lg.rss_before_kb < 0)
        fprintf(stderr, "rankcast-loadgen: cannot read /proc/%ld/status\n", o->server_pid);
    lg.started_ns = mono_ns();
    double connect_budget_s = lg.conn_count / o->connect_rate_per_s + o->connect_timeout_s;
    lg.connect_deadline_ns = lg.started_ns + (uint64_t)(connect_budget_s * 1e9);
    lg.watchdog_ns = lg.connect_deadline_ns + (uint64_t)((o->warmup_s + o->duration_s) * 1e9) +
                     (uint64_t)(o->drain_ms + LG_WATCHDOG_SLACK_MS) * NS_PER_MS;
    lg.phase = PHASE_CONNECT;
    if (o->scenario == SCEN_HANDSHAKE)
        begin_handshakes(&lg, lg.started_ns);
    else if (observing(&lg))
        fprintf(stderr,
                "rankcast-loadgen: %" PRIu32 " users, each sending on ws://%s:%u%s and "
                "observing on ws://%s:%u%s, from %" PRIu32 " source address(es), %zu item ids\n",
                o->connections, o->host, (unsigned)o->port, o->path, o->observe_host,
                (unsigned)o->observe_port, o->path, o->sources, lg.items.count);
    else
        fprintf(stderr,
                "rankcast-loadgen: %" PRIu32 " connections to ws://%s:%u%s from %" PRIu32
                " source address(es), %zu item ids\n",
                o->connections, o->host, (unsigned)o->port, o->path, o->sources, lg.items.count);
    rc = run_loop(&lg);
    if (lg.done_ns == 0)
        finish(&lg, mono_ns());
    if (emit_report(&lg) < 0)
        rc = -1;
    bool usable = (lg.users_at_events_start > 0 || lg.x.handshakes_done > 0) && rc == 0;
    teardown(&lg);
    return usable ? 0 : 1;
}
