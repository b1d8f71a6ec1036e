/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One client connection from socket() to ready: connect, TLS, the upgrade request,
 * hello and subscribe; its output (masked frames, flushes) and its end (failed or lost).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "loadgen.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const char LG_WS_SUBPROTOCOL[] = "rankcast.v1.json";

void lg_conn_release(conn_t *c)
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
    lg_buf_free(&c->out);
    lg_buf_free(&c->in);
    lg_buf_free(&c->message);
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
void lg_conn_fail(lg_t *lg, conn_t *c, fail_reason_t reason, const char *detail)
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
    lg_conn_release(c);
    conn_abandon_events(lg, c);
}

void lg_conn_fail_errno(lg_t *lg, conn_t *c, fail_reason_t reason, const char *what, int err)
{
    char detail[96];
    snprintf(detail, sizeof(detail), "%s: %s", what, strerror(err));
    lg_conn_fail(lg, c, reason, detail);
}

int lg_conn_set_events(lg_t *lg, conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - lg->conns)};
    return epoll_ctl(lg->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * One write on the plain socket or through TLS. Returns the bytes written, or -1 with errno
 * (EAGAIN when TLS or the socket wants to wait). SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a
 * retried SSL_write come from a compacted buffer.
 */
ssize_t lg_conn_io_write(conn_t *c, const void *data, size_t len)
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
ssize_t lg_conn_io_read(conn_t *c, void *data, size_t len)
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
int lg_conn_flush(lg_t *lg, conn_t *c)
{
    buf_t *b = &c->out;
    while (b->off < b->len) {
        ssize_t n = lg_conn_io_write(c, b->data + b->off, b->len - b->off);
        if (n > 0) {
            b->off += (size_t)n;
            if (lg->measuring)
                lg->x.wire_out_bytes_measured += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_write && lg_conn_set_events(lg, c, EPOLLIN | EPOLLOUT) == 0)
                c->want_write = true;
            return 0;
        }
        lg_conn_fail_errno(lg, c, FAIL_IO, "send", n < 0 ? errno : EPIPE);
        return -1;
    }
    b->off = b->len = 0;
    if (c->want_write && lg_conn_set_events(lg, c, EPOLLIN) == 0)
        c->want_write = false;
    return 0;
}

/* Appends one masked frame (client frames must be masked, RFC 6455 5.3). */
int lg_conn_queue_frame(lg_t *lg, conn_t *c, uint8_t opcode, const void *payload, size_t len)
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
    uint32_t mask = (uint32_t)lg_prng_next(&lg->prng);
    memcpy(header + header_len, &mask, 4);
    const uint8_t *mask_bytes = header + header_len;
    header_len += 4;

    if (lg_buf_reserve(&c->out, header_len + len, LG_OUTBUF_MAX) < 0) {
        lg_conn_fail(lg, c, FAIL_IO, "output buffer full: the server stopped reading");
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

int lg_conn_send_text(lg_t *lg, conn_t *c, const char *text, size_t len)
{
    if (lg_conn_queue_frame(lg, c, 0x1, text, len) < 0)
        return -1;
    return lg_conn_flush(lg, c);
}

/*
 * Queues one protocol message (a JSON object). With --framing socketio it travels as the
 * Socket.IO event "msg" on the main namespace: 42["msg",{...}].
 */
int lg_conn_queue_app(lg_t *lg, conn_t *c, const char *json, size_t len)
{
    if (!lg_socketio(lg))
        return lg_conn_queue_frame(lg, c, 0x1, json, len);
    static const char prefix[] = "42[\"msg\",";
    char wrapped[1024];
    size_t prefix_len = sizeof(prefix) - 1;
    if (prefix_len + len + 1 > sizeof(wrapped)) {
        lg_conn_fail(lg, c, FAIL_IO, "message too long to wrap");
        return -1;
    }
    memcpy(wrapped, prefix, prefix_len);
    memcpy(wrapped + prefix_len, json, len);
    wrapped[prefix_len + len] = ']';
    return lg_conn_queue_frame(lg, c, 0x1, wrapped, prefix_len + len + 1);
}

static void base64_encode(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

void lg_ws_expected_accept(const uint8_t key[16], char accept[32])
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
        uint64_t r = lg_prng_next(&lg->prng);
        memcpy(c->key + i, &r, 8);
    }
    char key_b64[32];
    base64_encode(c->key, sizeof(c->key), key_b64);
    bool observer = lg_conn_is_observer(lg, c);
    char protocol_line[64] = "";
    if (!lg_socketio(lg))
        snprintf(protocol_line, sizeof(protocol_line), "Sec-WebSocket-Protocol: %s\r\n",
                 LG_WS_SUBPROTOCOL);
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
    if (lg_buf_append(&c->out, request, (size_t)n, LG_OUTBUF_MAX) < 0) {
        lg_conn_fail(lg, c, FAIL_IO, "out of memory");
        return;
    }
    lg_conn_flush(lg, c);
}

void lg_conn_start(lg_t *lg, uint32_t index, uint64_t now_ns)
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
        lg_conn_fail_errno(lg, c, FAIL_CONNECT, "socket", errno);
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
    if (lg_conn_is_stalled(lg, c)) {
        /* A small receive buffer makes a client that stops reading back up the server soon. */
        int rcvbuf = (int)lg->opt.stalled_rcvbuf;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    uint64_t spread = lg->opt.scenario == SCEN_HANDSHAKE ? attempt : index;
    struct sockaddr_in source = {.sin_family = AF_INET};
    source.sin_addr.s_addr =
        htonl(0x7F000001u + lg->opt.source_offset + (uint32_t)(spread % lg->opt.sources));
    if (bind(c->fd, (struct sockaddr *)&source, sizeof(source)) < 0) {
        lg_conn_fail_errno(lg, c, FAIL_CONNECT, "bind", errno);
        return;
    }
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(lg->opt.port)};
    target.sin_addr = lg->opt.target;
    if (lg_conn_is_observer(lg, c)) {
        target.sin_port = htons(lg->opt.observe_port);
        target.sin_addr = lg->opt.observe_target;
    }
    if (connect(c->fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
        lg_conn_fail_errno(lg, c, FAIL_CONNECT, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = index};
    if (epoll_ctl(lg->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        lg_conn_fail_errno(lg, c, FAIL_CONNECT, "epoll_ctl", errno);
        return;
    }
    c->want_write = true;
}

void lg_conn_on_connected(lg_t *lg, conn_t *c)
{
    int err = 0;
    socklen_t err_len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
        err = errno;
    if (err) {
        lg_conn_fail_errno(lg, c, FAIL_CONNECT, "connect", err);
        return;
    }
    if (!lg->ssl_ctx) {
        conn_send_upgrade(lg, c);
        return;
    }
    c->ssl = SSL_new(lg->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        lg_conn_fail(lg, c, FAIL_HANDSHAKE, "tls: cannot set up the connection");
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = CONN_TLS;
    lg_conn_tls_step(lg, c);
}

/* Advances the TLS handshake; sends the upgrade request once it is done. */
void lg_conn_tls_step(lg_t *lg, conn_t *c)
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
            lg_conn_set_events(lg, c, want_write ? EPOLLIN | EPOLLOUT : EPOLLIN) == 0)
            c->want_write = want_write;
        return;
    }
    unsigned long err = ERR_get_error();
    char detail[96];
    snprintf(detail, sizeof(detail), "tls: %s",
             err ? ERR_reason_error_string(err) : "handshake failed");
    lg_conn_fail(lg, c, FAIL_HANDSHAKE, detail);
}

void lg_conn_check_ready(lg_t *lg, conn_t *c, uint64_t now_ns)
{
    if (c->state != CONN_OPENING || !c->got_welcome || !c->got_first_recs)
        return;
    c->state = CONN_READY;
    lg->conns_pending--;
    lg->conns_ready++;
    lg_hist_record(&lg->connect_latency, now_ns - c->started_ns);
}

/* In the handshake scenario the session is the point: hello only, no subscription. */
void lg_conn_send_hello_and_subscribe(lg_t *lg, conn_t *c)
{
    char text[160];
    int n = snprintf(text, sizeof(text), "{\"type\":\"hello\",\"v\":1,\"user\":\"lg-%ld-%u\"}",
                     (long)getpid(), (unsigned)lg_conn_user(lg, c));
    if (lg_conn_queue_app(lg, c, text, (size_t)n) < 0)
        return;
    if (lg->opt.scenario != SCEN_HANDSHAKE && lg->opt.open_until == OPEN_UNTIL_RECS) {
        uint32_t k = lg_conn_is_stalled(lg, c) ? lg->opt.stalled_k : lg->opt.k;
        n = snprintf(text, sizeof(text), "{\"type\":\"subscribe\",\"surface\":\"%s\",\"k\":%u%s}",
                     lg->opt.surface, (unsigned)k, lg->opt.compact ? ",\"compact\":true" : "");
        if (lg_conn_queue_app(lg, c, text, (size_t)n) < 0)
            return;
    }
    lg_conn_flush(lg, c);
}

/*
 * A handshake-scenario connection is done (101, or welcome with --handshake-until welcome):
 * count it, close it (a close frame, best effort) and free the slot for the next one.
 */
void lg_conn_handshake_done(lg_t *lg, conn_t *c, uint64_t now_ns)
{
    lg->x.handshakes_done++;
    if (c->started_ns >= lg->measure_start_ns && c->started_ns < lg->measure_end_ns) {
        lg->x.handshakes_measured++;
        lg_hist_record(&lg->handshake_latency, now_ns - c->started_ns);
    }
    static const uint8_t normal_close[2] = {0x03, 0xE8};
    if (lg_conn_queue_frame(lg, c, 0x8, normal_close, sizeof(normal_close)) == 0) {
        ssize_t ignored = lg_conn_io_write(c, c->out.data + c->out.off, c->out.len - c->out.off);
        (void)ignored;
    }
    lg->conns_pending--;
    c->state = CONN_IDLE;
    lg_conn_release(c);
}
