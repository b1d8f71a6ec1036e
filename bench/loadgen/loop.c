/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The run's phases (connect, events, drain, done), their deadlines and the epoll loop
 * that drives them; SIGINT and SIGTERM end a run early through here.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include <sys/epoll.h>

#include "loadgen.h"

static volatile sig_atomic_t g_stop_requested;

void lg_on_stop_signal(int signo)
{
    (void)signo;
    g_stop_requested = 1;
}

/* In cross-node mode a user's two connections start one after the other. */
static uint32_t conn_index_in_start_order(const lg_t *lg, uint32_t k)
{
    if (!lg_observing(lg))
        return k;
    return k / 2 + (k % 2) * lg->opt.connections;
}

static void start_connections_due(lg_t *lg, uint64_t now_ns)
{
    double elapsed_s = (double)(now_ns - lg->started_ns) / 1e9;
    uint64_t allowed = (uint64_t)(elapsed_s * lg->opt.connect_rate_per_s) + 1;
    while (lg->conns_started < lg->conn_count && lg->conns_started < allowed)
        lg_conn_start(lg, conn_index_in_start_order(lg, lg->conns_started++), now_ns);
}

static void fail_pending_connections(lg_t *lg)
{
    for (uint32_t i = 0; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKING || c->state == CONN_OPENING)
            lg_conn_fail(lg, c, FAIL_TIMEOUT, "not ready before --connect-timeout");
    }
}

static void begin_events(lg_t *lg, uint64_t now_ns)
{
    fail_pending_connections(lg);
    lg->rss_open_kb = lg_read_rss_kb(lg->opt.server_pid);
    lg->open_at_events_start = lg->conns_ready;
    for (uint32_t user = 0; user < lg->opt.connections; user++) {
        lg->actors_at_events_start += lg->conns[user].state == CONN_READY;
        lg->users_at_events_start += lg_user_ready(lg, user);
    }
    lg->events_start_ns = now_ns;
    lg->measure_start_ns = now_ns + (uint64_t)(lg->opt.warmup_s * 1e9);
    lg->measure_end_ns = lg->measure_start_ns + (uint64_t)(lg->opt.duration_s * 1e9);
    lg->phase = PHASE_EVENTS;
    lg_stall_connections(lg);
    lg_write_ready_file(lg);
    fprintf(stderr,
            "rankcast-loadgen: %" PRIu32 " of %" PRIu32 " connections ready after %.2f s; "
            "%" PRIu32 " users sending %.2f events/s each for %.0f s warmup + %.0f s measured "
            "(scenario %s)\n",
            lg->conns_ready, lg->conn_count, (double)(now_ns - lg->started_ns) / 1e9,
            lg->users_at_events_start, lg->opt.scenario == SCEN_LATENCY ? lg->opt.rate_per_s : 0,
            lg->opt.warmup_s, lg->opt.duration_s, LG_SCENARIO_NAMES[lg->opt.scenario]);
}

static void begin_drain(lg_t *lg, uint64_t now_ns)
{
    lg->server_cpu_end_s = lg_read_cpu_s(lg->opt.server_pid);
    lg->measuring = false;
    lg->machine_end = lg_read_machine_cpu();
    lg->self_cpu_end_s = lg_self_cpu_s();
    lg->phase = PHASE_DRAIN;
    lg->drain_end_ns = now_ns + (uint64_t)lg->opt.drain_ms * NS_PER_MS;
    if (lg->last_answer_ns < now_ns)
        lg->last_answer_ns = now_ns;
}

void lg_finish(lg_t *lg, uint64_t now_ns)
{
    lg->done_ns = now_ns;
    lg->rss_end_kb = lg_read_rss_kb(lg->opt.server_pid);
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
        lg_finish(lg, now_ns);
        return;
    }
    switch (lg->phase) {
    case PHASE_CONNECT:
        if ((lg->conns_started == lg->conn_count && lg->conns_pending == 0) ||
            now_ns >= lg->connect_deadline_ns)
            begin_events(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->users_at_events_start == 0) {
            lg->measure_end_ns = now_ns;
            lg_finish(lg, now_ns);
        }
        break;
    case PHASE_EVENTS:
        if (!lg->server_cpu_started && now_ns >= lg->measure_start_ns) {
            lg->server_cpu_start_s = lg_read_cpu_s(lg->opt.server_pid);
            lg->machine_start = lg_read_machine_cpu();
            lg->self_cpu_start_s = lg_self_cpu_s();
            lg->server_cpu_started = true;
            lg->measuring = true;
        }
        if (now_ns >= lg->measure_end_ns) {
            if (lg->opt.scenario == SCEN_LATENCY)
                lg_send_overdue_events(lg, now_ns);
            begin_drain(lg, now_ns);
        }
        break;
    case PHASE_DRAIN:
        if (drain_settled(lg, now_ns))
            lg_finish(lg, now_ns);
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
            candidate = lg_next_send_due_ns(lg);
        else if (lg->opt.scenario == SCEN_FANOUT)
            candidate = lg_next_push_due_ns(lg);
        else if (lg->opt.scenario == SCEN_HANDSHAKE)
            candidate =
                lg->conns_pending < lg->conn_count ? lg_next_handshake_due_ns(lg) : UINT64_MAX;
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

int lg_run_loop(lg_t *lg)
{
    struct epoll_event events[LG_EPOLL_BATCH];
    while (lg->phase != PHASE_DONE) {
        uint64_t now_ns = lg_mono_ns();
        advance_phase(lg, now_ns);
        if (lg->phase == PHASE_DONE)
            break;
        if (lg->phase == PHASE_CONNECT)
            start_connections_due(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->opt.scenario == SCEN_LATENCY)
            lg_send_due_events(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->opt.scenario == SCEN_FANOUT)
            lg_post_due_pushes(lg, now_ns);
        if (lg->phase == PHASE_EVENTS && lg->opt.scenario == SCEN_HANDSHAKE)
            lg_refill_handshakes(lg, now_ns);
        int n = epoll_wait(lg->epoll_fd, events, LG_EPOLL_BATCH, wait_timeout_ms(lg, lg_mono_ns()));
        if (n < 0 && errno != EINTR) {
            perror("rankcast-loadgen: epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++)
            lg_conn_on_epoll(lg, events[i].data.u32, events[i].events);
    }
    return 0;
}
