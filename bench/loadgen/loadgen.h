/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rankcast-loadgen's internal header: the limits, the generator's state (lg_t and what it
 * holds) and the functions its files share. Only the files of bench/loadgen/ include it.
 *
 * The generator holds N client connections on one epoll loop, sends events at a fixed rate on
 * each, and measures the time from writing an event to reading the `recs` list whose `cause`
 * names it. With --observe-port, each user also holds a second, silent connection to another
 * node, and the latency is measured to that node's `recs`: the time an event takes to cross the
 * bus. Everything runs on one thread: no function here is thread-safe, none needs to be.
 */

#ifndef RANKCAST_LOADGEN_H
#define RANKCAST_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <netinet/in.h>
#include <sys/types.h>

#include <openssl/ssl.h>

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

#define LG_HTTP_SLOTS    64
#define LG_HTTP_TAG      0x80000000u
#define LG_HTTP_RESP_MAX 4096

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

/* A growable byte buffer; bytes [off, len) are pending. */
typedef struct {
    char *data;
    size_t len;
    size_t off;
    size_t cap;
} buf_t;

typedef enum { SCEN_LATENCY, SCEN_IDLE, SCEN_HANDSHAKE, SCEN_FANOUT } scenario_t;

typedef enum { FRAMING_RANKCAST, FRAMING_SOCKETIO } framing_t;

typedef enum { OPEN_UNTIL_RECS, OPEN_UNTIL_WELCOME, OPEN_UNTIL_UPGRADE } open_until_t;

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
    bool compact; /* subscribe with compact:true: lists come as recs_delta */
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

typedef struct {
    char **ids;
    size_t count;
} items_t;

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
    /* WebSocket bytes (frames with their headers; no TCP/IP) read and written while measuring */
    uint64_t wire_in_bytes_measured;
    uint64_t wire_out_bytes_measured;
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
    bool measuring; /* between measure_start_ns and measure_end_ns: wire bytes count */
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

extern const char *const LG_SCENARIO_NAMES[];   /* indexed by scenario_t */
extern const char *const LG_OPEN_UNTIL_NAMES[]; /* indexed by open_until_t */
extern const char LG_WS_SUBPROTOCOL[];          /* the one the generator asks for */

/* Small helpers of the hot paths, inline so that splitting the files costs nothing. */

static inline uint64_t lg_mono_ns(void)
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
static inline uint64_t lg_prng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline size_t lg_hist_index(uint64_t value_ns)
{
    if (value_ns < 2 * HIST_SUB_COUNT)
        return (size_t)value_ns;
    int msb = 63 - __builtin_clzll(value_ns);
    int shift = msb - HIST_SUB_BITS;
    if (shift > HIST_MAX_SHIFT)
        return HIST_BUCKETS - 1;
    return (size_t)shift * HIST_SUB_COUNT + (size_t)(value_ns >> shift);
}

static inline void lg_hist_record(hist_t *h, uint64_t value_ns)
{
    h->counts[lg_hist_index(value_ns)]++;
    h->total++;
    h->sum_ns += value_ns;
    if (value_ns > h->max_ns)
        h->max_ns = value_ns;
}

static inline bool lg_observing(const lg_t *lg)
{
    return lg->opt.observe_port != 0;
}

static inline bool lg_conn_is_observer(const lg_t *lg, const conn_t *c)
{
    return lg_observing(lg) && (uint32_t)(c - lg->conns) >= lg->opt.connections;
}

/* Connections past -n are --stalled ones when not observing: same users as the first M. */
static inline bool lg_conn_is_stalled(const lg_t *lg, const conn_t *c)
{
    return lg->opt.stalled && (uint32_t)(c - lg->conns) >= lg->opt.connections;
}

static inline bool lg_socketio(const lg_t *lg)
{
    return lg->opt.framing == FRAMING_SOCKETIO;
}

static inline uint32_t lg_conn_user(const lg_t *lg, const conn_t *c)
{
    return (uint32_t)(c - lg->conns) % lg->opt.connections;
}

/* A user sends only while all its connections are ready: otherwise no answer could match. */
static inline bool lg_user_ready(const lg_t *lg, uint32_t user)
{
    if (lg->conns[user].state != CONN_READY)
        return false;
    return !lg_observing(lg) || lg->conns[lg->opt.connections + user].state == CONN_READY;
}

/* buf.c: growable byte buffers. */

/* Frees the bytes and zeroes the buffer, which can be used again. */
void lg_buf_free(buf_t *b);
/* Makes room for `extra` more bytes; -1 beyond `limit` pending bytes, or out of memory. */
int lg_buf_reserve(buf_t *b, size_t extra, size_t limit);
/* Appends `n` bytes; -1 (nothing appended) beyond `limit` pending bytes, or out of memory. */
int lg_buf_append(buf_t *b, const void *bytes, size_t n, size_t limit);

/*
 * scan.c: scanning server text. The first `"key":` in a message is taken as the top-level
 * one (scan.c says why that holds). Results point into the scanned text: they are borrowed.
 */

/* The first byte of [p, end) that is not JSON whitespace, or `end`. */
const char *lg_skip_ws(const char *p, const char *end);
/* The value after the first `"key":`, whitespace skipped, or NULL. */
const char *lg_json_find_value(const char *js, size_t len, const char *key);
/* Reads the string whose quote is at `p` if it has no escapes; returns the byte after its
 * closing quote, or NULL. */
const char *lg_json_read_plain_string(const char *p, const char *end, const char **out,
                                      size_t *out_len);
/* The string value of `key` when it has no escapes: 0, or -1. */
int lg_json_find_string(const char *js, size_t len, const char *key, const char **out,
                        size_t *out_len);
/* The integer value of `key` (codes, took_us: at most 9 digits are read): 0, or -1. */
int lg_json_find_int(const char *js, size_t len, const char *key, long *out);
/* The unsigned value of `key`, the full 64 bits (nanosecond stamps): 0, or -1. */
int lg_json_find_u64(const char *js, size_t len, const char *key, uint64_t *out);
/* Whether the `len` bytes at `s` are exactly `literal`. */
bool lg_str_equals(const char *s, size_t len, const char *literal);
/* Finds header `name` (case-insensitive) in an HTTP head; false when it is absent. */
bool lg_http_header_value(const char *head, size_t len, const char *name, const char **value,
                          size_t *value_len);

/* stats.c: histograms, code counts, /proc samples. */

/* The smallest recorded value v with at least `fraction` of all values <= v (its bucket's
 * middle, at most the exact max); 0 when the histogram is empty. */
uint64_t lg_hist_quantile_ns(const hist_t *h, double fraction);
/* Counts `code` in a table of at most LG_MAX_CODES codes; codes beyond that are dropped. */
void lg_count_code(code_count_t *table, size_t *kinds, long code);
/* VmRSS of process `pid` in KiB, or -1 (no pid given, or no such process). */
long lg_read_rss_kb(long pid);
/* User + system CPU seconds process `pid` has used, or -1. */
double lg_read_cpu_s(long pid);
/* Busy and steal CPU seconds of the whole machine since boot; `valid` false if unknown. */
machine_cpu_t lg_read_machine_cpu(void);
/* The generator's own user + system CPU seconds, or -1. */
double lg_self_cpu_s(void);

/* options.c: the command line. */

/*
 * Fills `o` from the command line, defaults first; says what is wrong on stderr. Returns 0
 * to run, 1 after --help, -1 on a bad command line. `o` borrows strings from `argv`.
 */
int lg_parse_options(options_t *o, int argc, char **argv);

/* items.c: item ids. The caller frees them with lg_items_free(). */

/* Adds the "id" of every line of the JSONL file at `path` (lines without a usable id are
 * skipped and counted on stderr); -1 when it cannot be read or holds no id. */
int lg_items_load_catalog(items_t *items, const char *path);
/* Adds the ids i0..i<count-1>; -1 out of memory. */
int lg_items_make_synthetic(items_t *items, uint32_t count);
/* Frees every id; the set is empty afterwards. */
void lg_items_free(items_t *items);

/*
 * conn.c: a connection's set-up, output and end. A function that fails a connection
 * (lg_conn_fail) has closed it before it returns -1: the caller only stops using it.
 */

/* Frees the connection's TLS state, socket (which leaves the epoll set) and buffers; the
 * caller sets its state. */
void lg_conn_release(conn_t *c);
/*
 * Ends a connection for `reason`: failed when it was never ready, lost when it was. Its
 * events stop being waited for. The first `detail` of each reason is copied into the
 * report. A no-op on an idle or closed connection.
 */
void lg_conn_fail(lg_t *lg, conn_t *c, fail_reason_t reason, const char *detail);
/* lg_conn_fail() with "what: strerror(err)" as the detail. */
void lg_conn_fail_errno(lg_t *lg, conn_t *c, fail_reason_t reason, const char *what, int err);
/* Sets the epoll events of the connection; epoll_ctl()'s result. */
int lg_conn_set_events(lg_t *lg, conn_t *c, uint32_t events);
/* One write, plain or through TLS: the bytes written, or -1 with errno (EAGAIN: later). */
ssize_t lg_conn_io_write(conn_t *c, const void *data, size_t len);
/* One read: > 0 bytes, 0 at the end of the stream, -1 with errno (EAGAIN: nothing yet). */
ssize_t lg_conn_io_read(conn_t *c, void *data, size_t len);
/* Writes what the output buffer holds, waiting for EPOLLOUT while bytes remain; -1 if the
 * connection failed. */
int lg_conn_flush(lg_t *lg, conn_t *c);
/* Appends one masked frame to the output buffer, unwritten; -1 if the connection failed
 * (the server stopped reading and the buffer is full). */
int lg_conn_queue_frame(lg_t *lg, conn_t *c, uint8_t opcode, const void *payload, size_t len);
/* Queues a text frame and flushes; -1 if the connection failed. */
int lg_conn_send_text(lg_t *lg, conn_t *c, const char *text, size_t len);
/* Queues one rankcast message (a JSON object), as a Socket.IO event with --framing socketio;
 * -1 if the connection failed. */
int lg_conn_queue_app(lg_t *lg, conn_t *c, const char *json, size_t len);
/* The Sec-WebSocket-Accept value a server must answer to `key`, NUL-terminated. */
void lg_ws_expected_accept(const uint8_t key[16], char accept[32]);
/* Starts connection `index`: socket, source address, non-blocking connect, epoll. A failure
 * is counted on the connection, not returned. */
void lg_conn_start(lg_t *lg, uint32_t index, uint64_t now_ns);
/* The TCP connect has finished: starts TLS (--tls) or sends the upgrade request. */
void lg_conn_on_connected(lg_t *lg, conn_t *c);
/* Advances the TLS handshake; sends the upgrade request once it is done. */
void lg_conn_tls_step(lg_t *lg, conn_t *c);
/* An opening connection with its welcome and its first recs becomes ready. */
void lg_conn_check_ready(lg_t *lg, conn_t *c, uint64_t now_ns);
/* Sends hello and, when the run waits for a list, subscribe. */
void lg_conn_send_hello_and_subscribe(lg_t *lg, conn_t *c);
/* A handshake-scenario connection got its 101 (or welcome): counts it, closes it and frees
 * its slot for the next one. */
void lg_conn_handshake_done(lg_t *lg, conn_t *c, uint64_t now_ns);

/* receive.c: input from the server. */

/* Handles one epoll event: `index` names a connection, or an HTTP slot with LG_HTTP_TAG. */
void lg_conn_on_epoll(lg_t *lg, uint32_t index, uint32_t events);

/* messages.c: rankcast messages. */

/* Handles one rankcast message (the JSON object, unwrapped) that `c` read at `now_ns`. */
void lg_on_text_message(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns);

/* scenarios.c: what the scenarios send. */

/* Latency scenario: sends the events whose time has come, open loop (see scenarios.c). */
void lg_send_due_events(lg_t *lg, uint64_t now_ns);
/* When the next event is due. */
uint64_t lg_next_send_due_ns(const lg_t *lg);
/* At the end of the measured window: sends the events still due in it, late. */
void lg_send_overdue_events(lg_t *lg, uint64_t now_ns);
/* --stalled: from now on those connections read nothing. */
void lg_stall_connections(lg_t *lg);
/* --ready-file: writes it, whole, once the connections are open. */
void lg_write_ready_file(const lg_t *lg);
/* Handshake scenario: when the next connection may start (--connect-rate). */
uint64_t lg_next_handshake_due_ns(const lg_t *lg);
/* Handshake scenario: fails handshakes past --connect-timeout and restarts free slots. */
void lg_refill_handshakes(lg_t *lg, uint64_t now_ns);
/* Handshake scenario: opens the warmup and measured windows at once (no connect phase). */
void lg_begin_handshakes(lg_t *lg, uint64_t now_ns);
/* Fanout scenario: when the next POST is due. */
uint64_t lg_next_push_due_ns(const lg_t *lg);
/* Closes an HTTP slot and frees it; a no-op on a closed one. */
void lg_http_close(http_slot_t *h);
/* Fanout scenario: posts the pushes whose time has come. */
void lg_post_due_pushes(lg_t *lg, uint64_t now_ns);
/* Advances one POST: connect, request, response, and counts its answer. */
void lg_http_on_epoll(lg_t *lg, http_slot_t *h, uint32_t events);

/* loop.c: phases and the event loop. */

/* The SIGINT and SIGTERM handler: the run stops at the loop's next turn and still reports. */
void lg_on_stop_signal(int signo);
/* Ends the run at `now_ns` (the last RSS sample). */
void lg_finish(lg_t *lg, uint64_t now_ns);
/* Runs the phases until the run is done; -1 if epoll_wait() fails. */
int lg_run_loop(lg_t *lg);

/* report.c: the report. */

/* Writes the summary to stderr and the JSON report to stdout and --json-out; -1 if the file
 * could not be written. */
int lg_emit_report(const lg_t *lg);

#endif
