/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What each scenario sends: the latency scenario's open-loop event schedule, stalled
 * clients, the handshake scenario's slots and the fanout scenario's POSTs to the push API.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "loadgen.h"

static const char *const EVENT_KINDS[] = {"view", "click", "cart"};

static void conn_send_event(lg_t *lg, conn_t *c, bool measured)
{
    uint32_t index = (uint32_t)(c - lg->conns);
    uint32_t seq = c->next_seq++;
    const char *item = lg->items.ids[lg_prng_next(&lg->prng) % lg->items.count];
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
    slot->sent_ns = lg_mono_ns();
    lg->stats.events_sent_total++;
    if (measured) {
        lg->stats.events_sent_measured++;
        lg->measured_unanswered++;
    }
    if (lg_conn_queue_app(lg, c, text, (size_t)n) == 0)
        lg_conn_flush(lg, c);
}

/*
 * Sends every event whose time has come. Each connection sends every interval_ns at its own
 * random phase; with the connections sorted by phase, the global send order is a simple
 * round robin, so one cursor replaces a timer per connection. Open loop: a late send goes
 * out as soon as possible and keeps its place, it never shifts the later schedule.
 */
void lg_send_due_events(lg_t *lg, uint64_t now_ns)
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
        if (!lg_user_ready(lg, e->conn)) {
            lg->stats.sends_skipped_not_ready += due_ns >= lg->measure_start_ns;
            continue;
        }
        conn_send_event(lg, c, due_ns >= lg->measure_start_ns);
    }
}

uint64_t lg_next_send_due_ns(const lg_t *lg)
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
void lg_send_overdue_events(lg_t *lg, uint64_t now_ns)
{
    while (lg_next_send_due_ns(lg) < lg->measure_end_ns && lg_next_send_due_ns(lg) <= now_ns)
        lg_send_due_events(lg, now_ns);
}

/* --stalled: once the load starts, those connections stop reading for good. */
void lg_stall_connections(lg_t *lg)
{
    if (!lg->opt.stalled)
        return;
    for (uint32_t i = lg->opt.connections; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (c->state == CONN_READY && lg_conn_set_events(lg, c, EPOLLRDHUP) == 0) {
            c->stalled_now = true;
            lg->x.stalled_open++;
        }
    }
}

/*
 * --ready-file: a driver running several generators samples the server once every one of
 * them has its connections open. Written whole and renamed, so it is never read half-done.
 */
void lg_write_ready_file(const lg_t *lg)
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
uint64_t lg_next_handshake_due_ns(const lg_t *lg)
{
    return lg->started_ns +
           (uint64_t)((double)lg->conn_attempts / lg->opt.connect_rate_per_s * 1e9);
}

static bool conn_in_flight(const conn_t *c)
{
    return c->state == CONN_CONNECTING || c->state == CONN_TLS || c->state == CONN_HANDSHAKING ||
           c->state == CONN_OPENING;
}

void lg_refill_handshakes(lg_t *lg, uint64_t now_ns)
{
    uint64_t timeout_ns = (uint64_t)(lg->opt.connect_timeout_s * 1e9);
    for (uint32_t i = 0; i < lg->conn_count; i++) {
        conn_t *c = &lg->conns[i];
        if (conn_in_flight(c) && now_ns - c->started_ns > timeout_ns)
            lg_conn_fail(lg, c, FAIL_TIMEOUT, "handshake not done within --connect-timeout");
        if ((c->state == CONN_IDLE || c->state == CONN_CLOSED) && now_ns < lg->measure_end_ns &&
            lg_next_handshake_due_ns(lg) <= now_ns)
            lg_conn_start(lg, i, now_ns);
    }
}

void lg_begin_handshakes(lg_t *lg, uint64_t now_ns)
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
uint64_t lg_next_push_due_ns(const lg_t *lg)
{
    return lg->events_start_ns +
           (uint64_t)((double)lg->push_cursor * 1e9 / lg->opt.push_rate_per_s);
}

void lg_http_close(http_slot_t *h)
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
        lg_http_close(h);
        return;
    }
    h->busy = true;
    lg->x.posted++;
    lg->x.posted_measured += h->measured;
}

void lg_post_due_pushes(lg_t *lg, uint64_t now_ns)
{
    for (int i = 0; i < LG_SENDS_PER_ROUND; i++) {
        uint64_t due_ns = lg_next_push_due_ns(lg);
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
    if (!lg_http_header_value(h->resp, head_len, "Content-Length", &value, &value_len))
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
    lg_http_close(h);
}

void lg_http_on_epoll(lg_t *lg, http_slot_t *h, uint32_t events)
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
            lg_http_close(h);
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
            lg_http_close(h);
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
