/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rankcast-loadgen: an open-loop WebSocket load generator for rankcast (see bench/README.md).
 * This file sets a run up (descriptors, TLS, event slots, the send schedule), runs it and
 * tears it down; each other file of bench/loadgen/ holds one concern (see loadgen.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/resource.h>

#include <openssl/ssl.h>

#include "loadgen.h"

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

static int compare_phase(const void *a, const void *b)
{
    const schedule_entry_t *x = a, *y = b;
    return (x->phase_ns > y->phase_ns) - (x->phase_ns < y->phase_ns);
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
        lg->schedule[i].phase_ns = lg_prng_next(&lg->prng) % lg->interval_ns;
    }
    qsort(lg->schedule, n, sizeof(*lg->schedule), compare_phase);
    return 0;
}

static int setup(lg_t *lg)
{
    const options_t *o = &lg->opt;
    lg->prng = o->seed;
    lg->conn_count = lg_observing(lg) ? 2 * o->connections : o->connections + o->stalled;
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
    int rc = o->catalog_path ? lg_items_load_catalog(&lg->items, o->catalog_path)
                             : lg_items_make_synthetic(&lg->items, o->synthetic_items);
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
    struct sigaction sa = {.sa_handler = lg_on_stop_signal};
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
            lg_conn_queue_frame(lg, c, 0x8, normal_close, sizeof(normal_close)) == 0) {
            ssize_t ignored =
                lg_conn_io_write(c, c->out.data + c->out.off, c->out.len - c->out.off);
            (void)ignored;
        }
        lg_conn_release(c);
    }
}

static void teardown(lg_t *lg)
{
    if (lg->conns)
        close_all(lg);
    for (int i = 0; i < LG_HTTP_SLOTS; i++)
        lg_http_close(&lg->http[i]);
    if (lg->epoll_fd >= 0)
        close(lg->epoll_fd);
    SSL_CTX_free(lg->ssl_ctx);
    free(lg->conns);
    free(lg->slot_arena);
    free(lg->schedule);
    free(lg->scratch);
    lg_items_free(&lg->items);
}

int main(int argc, char **argv)
{
    /* Static: the histograms make the state ~110 KB, too much for some thread stacks. */
    static lg_t lg;
    lg.epoll_fd = -1;
    int rc = lg_parse_options(&lg.opt, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (setup(&lg) < 0) {
        teardown(&lg);
        return 2;
    }
    const options_t *o = &lg.opt;
    lg.rss_before_kb = lg_read_rss_kb(o->server_pid);
    if (o->server_pid > 0 && lg.rss_before_kb < 0)
        fprintf(stderr, "rankcast-loadgen: cannot read /proc/%ld/status\n", o->server_pid);
    lg.started_ns = lg_mono_ns();
    double connect_budget_s = lg.conn_count / o->connect_rate_per_s + o->connect_timeout_s;
    lg.connect_deadline_ns = lg.started_ns + (uint64_t)(connect_budget_s * 1e9);
    lg.watchdog_ns = lg.connect_deadline_ns + (uint64_t)((o->warmup_s + o->duration_s) * 1e9) +
                     (uint64_t)(o->drain_ms + LG_WATCHDOG_SLACK_MS) * NS_PER_MS;
    lg.phase = PHASE_CONNECT;
    if (o->scenario == SCEN_HANDSHAKE)
        lg_begin_handshakes(&lg, lg.started_ns);
    else if (lg_observing(&lg))
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
    rc = lg_run_loop(&lg);
    if (lg.done_ns == 0)
        lg_finish(&lg, lg_mono_ns());
    if (lg_emit_report(&lg) < 0)
        rc = -1;
    bool usable = (lg.users_at_events_start > 0 || lg.x.handshakes_done > 0) && rc == 0;
    teardown(&lg);
    return usable ? 0 : 1;
}
