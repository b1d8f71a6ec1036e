/* SPDX-License-Identifier: Apache-2.0 */
/* Two nodes served by two threads of one process, on one port (SO_REUSEPORT, as --workers
 * shares it between processes), with WebSocket clients on both at once. Every module but
 * the engine (which each node still owns here) must keep no mutable state shared by the
 * threads: the test passes in every build, and the ThreadSanitizer build (scripts/test)
 * checks that no two threads touch the same memory unsynchronised. This is the transport's
 * half of several event loops in one process (docs/engine.md, "Plan: N loops"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "node.h"
#include "util/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NODES       2
#define CONNS_MAX   32 /* connections opened until both nodes answered some */
#define EVENTS_EACH 40 /* events per connection, sent while the others send theirs */
#define WAIT_MS     20000
#define ITEMS       23
#define CATALOG     RC_SOURCE_DIR "/web-demo/catalog/demo-catalog.jsonl"

static char items[ITEMS][32]; /* the first ids of the catalog */

static void read_items(void)
{
    FILE *f = fopen(CATALOG, "r");
    assert_non_null(f);
    char line[4096];
    for (int i = 0; i < ITEMS; i++) {
        assert_non_null(fgets(line, sizeof(line), f));
        const char *id = strstr(line, "\"id\": \"");
        assert_non_null(id);
        assert_int_equal(sscanf(id + 7, "%31[^\"]", items[i]), 1);
    }
    fclose(f);
}

typedef struct {
    rc_config_t cfg;
    rc_node_t *node;
    rc_metrics_t metrics; /* the thread's registry, as a loop's thread has one */
    int rc;
} node_thread_t;

typedef struct {
    int fd;
    char node[64]; /* the welcome's node id */
    char buf[1 << 16];
    size_t len;
    int acked;
    bool welcomed;
    char cause[64]; /* of the last list pushed (recs with a cause) */
} client_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A free loopback port for both nodes to share, held by `*holder` (bound with SO_REUSEPORT,
 * never listening, so it takes no connection) until they listen on it: no other process can
 * take the port in between. */
static int hold_free_port(int *holder)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *holder = fd;
    return ntohs(sa.sin_port);
}

static void *run_node(void *arg)
{
    node_thread_t *t = arg;
    assert_int_equal(rc_metrics_attach(&t->metrics), 0);
    t->rc = rc_node_run(t->node);
    rc_node_free(t->node);
    t->node = NULL;
    rc_metrics_detach(&t->metrics);
    return NULL;
}

static void config_node(rc_config_t *cfg, int port, int index)
{
    char err[256], text[32];
    const char *settings[][2] = {
        {"listen", "127.0.0.1"},     {"log-level", "error"}, {"anonymous", "true"},
        {"anonymous-ids", "chosen"}, {"drain-ms", "200"},    {"max-conns-per-ip", "0"},
        {"catalog", CATALOG},
    };
    assert_int_equal(rc_config_init(cfg), 0);
    snprintf(text, sizeof(text), "%d", port);
    assert_int_equal(rc_config_set(cfg, "port", text, err, sizeof(err)), 0);
    snprintf(text, sizeof(text), "thread-%d", index);
    assert_int_equal(rc_config_set(cfg, "node-id", text, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        assert_int_equal(rc_config_set(cfg, settings[i][0], settings[i][1], err, sizeof(err)), 0);
    /* As each worker of --workers is: a node sharing its port (here with a thread). */
    cfg->workers = NODES;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

/* One masked text frame (clients must mask, RFC 6455 5.3). */
static void send_text(int fd, const char *text)
{
    size_t n = strlen(text), h = 0;
    unsigned char frame[512];
    assert_true(n <= 400);
    frame[h++] = 0x81;
    if (n < 126) {
        frame[h++] = (unsigned char)(0x80 | n);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(n >> 8);
        frame[h++] = (unsigned char)n;
    }
    const unsigned char mask[4] = {0x5a, 0x17, 0xc3, 0x9e};
    memcpy(frame + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        frame[h + i] = (unsigned char)text[i] ^ mask[i % 4];
    send_all(fd, frame, h + n);
}

static void open_client(client_t *c, int port)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rankcast.v1.json\r\n\r\n");
    send_all(c->fd, req, (size_t)n);
    c->len = 0;
    c->acked = 0;
    c->node[0] = '\0';
    c->welcomed = false;
    c->cause[0] = '\0';
}

/* Reads what is there (waiting up to `wait_ms` for something) into c->buf. */
static void read_some(client_t *c, int wait_ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0)
        return;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    assert_true(r > 0);
    c->len += (size_t)r;
}

static void consume(client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Takes the 101 response off the front, once it is whole. */
static bool take_upgrade(client_t *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    assert_true(c->len > 12 && memcmp(c->buf, "HTTP/1.1 101", 12) == 0);
    consume(c, (size_t)(end + 4 - c->buf));
    return true;
}

/* Handles every whole message received: the welcome's node id, and acks counted by id. */
static void take_messages(client_t *c)
{
    for (;;) {
        if (c->len < 2)
            return;
        const unsigned char *b = (const unsigned char *)c->buf;
        size_t h = 2, n = b[1] & 0x7f;
        if (n == 126) {
            if (c->len < 4)
                return;
            n = (size_t)b[2] << 8 | b[3];
            h = 4;
        } else if (n == 127) {
            if (c->len < 10)
                return;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | b[2 + i];
            h = 10;
        }
        if (c->len < h + n)
            return;
        char msg[1 << 15];
        size_t m = n < sizeof(msg) - 1 ? n : sizeof(msg) - 1;
        memcpy(msg, c->buf + h, m);
        msg[m] = '\0';
        const char *node = strstr(msg, "\"node\":\"");
        if (strstr(msg, "\"type\":\"welcome\"") != NULL && node != NULL) {
            sscanf(node + 8, "%63[^\"]", c->node);
            c->welcomed = true;
        }
        const char *cause = strstr(msg, "\"cause\":\"");
        if (strstr(msg, "\"type\":\"recs\"") != NULL && cause != NULL)
            sscanf(cause + 9, "%63[^\"]", c->cause);
        if (strstr(msg, "\"type\":\"ack\"") != NULL)
            for (const char *p = strstr(msg, "\"ids\":["); p != NULL && (p = strstr(p, "\"e-"));
                 p += 3)
                c->acked++;
        if (strstr(msg, "\"type\":\"error\"") != NULL)
            fail_msg("an error: %s", msg);
        consume(c, h + n);
    }
}

static void test_two_nodes_in_threads_serve_one_port(void **state)
{
    (void)state;
    read_items();
    int holder;
    int port = hold_free_port(&holder);
    node_thread_t nodes[NODES];
    pthread_t threads[NODES];
    for (int i = 0; i < NODES; i++) {
        char err[512] = "";
        memset(&nodes[i].metrics, 0, sizeof(nodes[i].metrics));
        config_node(&nodes[i].cfg, port, i);
        nodes[i].node = rc_node_new(&nodes[i].cfg, err, sizeof(err));
        if (nodes[i].node == NULL)
            print_error("rc_node_new: %s\n", err);
        assert_non_null(nodes[i].node);
    }
    close(holder); /* both nodes listen on the port now */
    for (int i = 0; i < NODES; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, run_node, &nodes[i]), 0);

    /* Connections until each node has welcomed some (the kernel spreads them). */
    static client_t clients[CONNS_MAX];
    int n = 0, per_node[NODES] = {0};
    int64_t deadline = now_ms() + WAIT_MS;
    while (n < CONNS_MAX && (n < 4 || per_node[0] == 0 || per_node[1] == 0)) {
        client_t *c = &clients[n];
        open_client(c, port);
        while (!take_upgrade(c) && now_ms() < deadline)
            read_some(c, 100);
        char hello[128];
        snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"v\":1,\"user\":\"user-%d\"}", n);
        send_text(c->fd, hello);
        send_text(c->fd, "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":5}");
        while (c->node[0] == '\0' && now_ms() < deadline) {
            read_some(c, 100);
            take_messages(c);
        }
        assert_true(c->node[0] != '\0');
        per_node[strcmp(c->node, "thread-1") == 0]++;
        n++;
    }
    assert_true(per_node[0] > 0 && per_node[1] > 0);

    /* Events on every connection in turn, so that both loops work at the same time. */
    for (int e = 0; e < EVENTS_EACH; e++) {
        for (int i = 0; i < n; i++) {
            char ev[160];
            snprintf(ev, sizeof(ev),
                     "{\"type\":\"event\",\"id\":\"e-%d-%d\",\"kind\":\"%s\",\"item\":\"%s\"}", i,
                     e, e % 3 == 0 ? "click" : "view", items[(i + e) % ITEMS]);
            send_text(clients[i].fd, ev);
        }
        for (int i = 0; i < n; i++) {
            read_some(&clients[i], 0);
            take_messages(&clients[i]);
        }
    }
    for (int i = 0; i < n; i++) {
        while (clients[i].acked < EVENTS_EACH && now_ms() < deadline) {
            read_some(&clients[i], 100);
            take_messages(&clients[i]);
        }
        assert_int_equal(clients[i].acked, EVENTS_EACH);
    }

    /* SIGTERM drains both nodes (libuv's handler, whichever thread takes it, wakes every
     * loop watching the signal); each loop returns 0 after a clean stop. */
    kill(getpid(), SIGTERM);
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(nodes[i].rc, 0);
        rc_config_free(&nodes[i].cfg);
    }
    for (int i = 0; i < n; i++)
        close(clients[i].fd);
}

/* Reads every client until `done(c)` holds for each, or the deadline. */
static void read_until(client_t *clients, int n, bool (*done)(const client_t *), int64_t deadline)
{
    for (int i = 0; i < n; i++)
        while (!done(&clients[i]) && now_ms() < deadline) {
            read_some(&clients[i], 50);
            take_messages(&clients[i]);
        }
}

static bool welcomed(const client_t *c)
{
    return c->welcomed;
}

static bool shared_event_pushed(const client_t *c)
{
    return strcmp(c->cause, "e-shared") == 0;
}

static bool all_acked(const client_t *c)
{
    return c->acked >= EVENTS_EACH;
}

static void *run_loops(void *arg)
{
    node_thread_t *t = arg;
    t->rc = rc_node_run(t->node);
    return NULL;
}

/* --loops 2: one node, two event loops in two threads on its port, sharing the models. One
 * user holds LOOP_CONNS connections, which the kernel spreads over both loops (all on one
 * with odds 2^-(LOOP_CONNS-1)): an event on one moves the lists of all, on either loop. Then
 * every connection, a user each, sends events at once, so that both loops rank on the
 * shared models while the writer applies what they learn (the ThreadSanitizer build checks
 * the read sections). One SIGTERM drains both loops. */
#define LOOP_CONNS 24
static void test_loops_share_models_and_users(void **state)
{
    (void)state;
    read_items();
    node_thread_t t;
    char err[512] = "";
    config_node(&t.cfg, 0, 0);
    t.cfg.workers = 1;
    t.cfg.loops = 2;
    t.node = rc_node_new(&t.cfg, err, sizeof(err));
    if (t.node == NULL)
        print_error("rc_node_new: %s\n", err);
    assert_non_null(t.node);
    int port = rc_node_port(t.node);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, run_loops, &t), 0);

    static client_t clients[LOOP_CONNS];
    int64_t deadline = now_ms() + WAIT_MS;
    for (int i = 0; i < LOOP_CONNS; i++) {
        open_client(&clients[i], port);
        while (!take_upgrade(&clients[i]) && now_ms() < deadline)
            read_some(&clients[i], 100);
        send_text(clients[i].fd, "{\"type\":\"hello\",\"v\":1,\"user\":\"one-user\"}");
        send_text(clients[i].fd, "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":5}");
    }
    read_until(clients, LOOP_CONNS, welcomed, deadline);
    char ev[160];
    snprintf(ev, sizeof(ev),
             "{\"type\":\"event\",\"id\":\"e-shared\",\"kind\":\"click\",\"item\":\"%s\"}",
             items[0]);
    send_text(clients[0].fd, ev);
    read_until(clients, LOOP_CONNS, shared_event_pushed, deadline);
    for (int i = 0; i < LOOP_CONNS; i++)
        assert_string_equal(clients[i].cause, "e-shared");

    /* Every connection a user of its own, all sending at once. */
    for (int i = 0; i < LOOP_CONNS; i++) {
        close(clients[i].fd);
        open_client(&clients[i], port);
        while (!take_upgrade(&clients[i]) && now_ms() < deadline)
            read_some(&clients[i], 100);
        char hello[128];
        snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"v\":1,\"user\":\"user-%d\"}", i);
        send_text(clients[i].fd, hello);
        send_text(clients[i].fd, "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":5}");
    }
    for (int e = 0; e < EVENTS_EACH; e++)
        for (int i = 0; i < LOOP_CONNS; i++) {
            snprintf(ev, sizeof(ev),
                     "{\"type\":\"event\",\"id\":\"e-%d-%d\",\"kind\":\"%s\",\"item\":\"%s\"}", i,
                     e, e % 3 == 0 ? "click" : "view", items[(i + e) % ITEMS]);
            send_text(clients[i].fd, ev);
            read_some(&clients[i], 0);
            take_messages(&clients[i]);
        }
    read_until(clients, LOOP_CONNS, all_acked, deadline);
    for (int i = 0; i < LOOP_CONNS; i++)
        assert_int_equal(clients[i].acked, EVENTS_EACH);

    kill(getpid(), SIGTERM);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(t.rc, 0);
    rc_node_free(t.node);
    rc_config_free(&t.cfg);
    for (int i = 0; i < LOOP_CONNS; i++)
        close(clients[i].fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_nodes_in_threads_serve_one_port),
        cmocka_unit_test(test_loops_share_models_and_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
