/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a connection receives: the 101 answer and its Sec-WebSocket-Accept, WebSocket
 * frames (fragments, control frames) and Engine.IO packets; epoll events are dispatched here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sys/epoll.h>

#include "loadgen.h"

/* Checks the 101 answer; returns the bytes it used, 0 if incomplete, -1 if it failed. */
static long conn_on_handshake_bytes(lg_t *lg, conn_t *c, const char *data, size_t len)
{
    const char *head_end = memmem(data, len, "\r\n\r\n", 4);
    if (!head_end) {
        if (len > LG_HANDSHAKE_MAX) {
            lg_conn_fail(lg, c, FAIL_HANDSHAKE, "handshake response too long");
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
        lg_conn_fail(lg, c, FAIL_HANDSHAKE, detail);
        return -1;
    }
    char expected[32];
    lg_ws_expected_accept(c->key, expected);
    const char *value = NULL;
    size_t value_len = 0;
    if (!lg_http_header_value(data, head_len, "Sec-WebSocket-Accept", &value, &value_len) ||
        !lg_str_equals(value, value_len, expected)) {
        lg_conn_fail(lg, c, FAIL_HANDSHAKE, "missing or wrong Sec-WebSocket-Accept");
        return -1;
    }
    if (!lg_http_header_value(data, head_len, "Sec-WebSocket-Protocol", &value, &value_len)) {
        lg->stats.no_subprotocol++;
    } else if (!lg_str_equals(value, value_len, LG_WS_SUBPROTOCOL)) {
        lg_conn_fail(lg, c, FAIL_HANDSHAKE, "server chose another subprotocol");
        return -1;
    }
    if (lg->opt.scenario == SCEN_HANDSHAKE && !lg->opt.handshake_until_welcome) {
        lg_conn_handshake_done(lg, c, lg_mono_ns());
        return -1;
    }
    c->state = CONN_OPENING;
    if (lg->opt.open_until == OPEN_UNTIL_UPGRADE) {
        /* Idle memory of a bare upgraded connection: no hello, no session. */
        c->got_welcome = c->got_first_recs = true;
        lg_conn_check_ready(lg, c, lg_mono_ns());
        return (long)head_len;
    }
    if (lg->opt.open_until == OPEN_UNTIL_WELCOME)
        c->got_first_recs = true;
    /* Socket.IO: the hello waits for the namespace to be joined (see conn_on_text). */
    if (!lg_socketio(lg))
        lg_conn_send_hello_and_subscribe(lg, c);
    return c->state == CONN_CLOSED ? -1 : (long)head_len;
}

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
    lg_count_code(lg->stats.close_codes, &lg->stats.close_kinds, code);
    /*
     * Echo the close (RFC 6455 5.5.1) with one non-blocking send: the socket is closed right
     * after, and a failure here must not turn the server's close into an I/O failure.
     */
    uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (lg_conn_queue_frame(lg, c, 0x8, echo, len >= 2 ? 2 : 0) < 0)
        return;
    ssize_t ignored = lg_conn_io_write(c, c->out.data + c->out.off, c->out.len - c->out.off);
    (void)ignored;
    char detail[96];
    snprintf(detail, sizeof(detail), "close frame %ld", code);
    lg_conn_fail(lg, c, FAIL_SERVER_CLOSE, detail);
}

/*
 * A text message. With --framing socketio it is an Engine.IO packet: 0 open (answer 40 to join
 * the main namespace), 2 ping (answer 3), 1 close, and Socket.IO packets 40 (joined: say
 * hello), 41 (disconnected) and 42["msg",{...}], whose object is a rankcast message.
 */
static void conn_on_text(lg_t *lg, conn_t *c, const char *msg, size_t len, uint64_t now_ns)
{
    if (!lg_socketio(lg)) {
        lg_on_text_message(lg, c, msg, len, now_ns);
        return;
    }
    if (len == 0) {
        lg->stats.other_messages++;
        return;
    }
    if (msg[0] == '0') {
        lg_conn_send_text(lg, c, "40", 2);
        return;
    }
    if (msg[0] == '2') {
        lg->x.sio_pings++;
        lg_conn_send_text(lg, c, "3", 1);
        return;
    }
    if (msg[0] == '1' || (len >= 2 && msg[0] == '4' && msg[1] == '1')) {
        lg_conn_fail(lg, c, FAIL_SERVER_CLOSE, "socket.io close or disconnect");
        return;
    }
    if (len >= 2 && msg[0] == '4' && msg[1] == '0') {
        if (c->state == CONN_OPENING)
            lg_conn_send_hello_and_subscribe(lg, c);
        return;
    }
    if (len >= 2 && msg[0] == '4' && msg[1] == '2') {
        lg_on_text_message(lg, c, msg + 2, len - 2, now_ns);
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
    if (lg_buf_append(&c->message, payload, len, LG_MESSAGE_MAX) < 0)
        return -1;
    if (!h->fin)
        return 0;
    c->in_fragmented_message = false;
    if (c->fragmented_opcode == 0x1)
        conn_on_text(lg, c, c->message.data, c->message.len, now_ns);
    else
        lg->stats.binary_messages++;
    lg_buf_free(&c->message);
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
        lg_conn_fail(lg, c, FAIL_PROTOCOL, "bad control frame");
        return -1;
    }
    switch (h->opcode) {
    case 0x8:
        conn_on_close_frame(lg, c, (const uint8_t *)payload, len);
        return -1;
    case 0x9:
        lg->stats.pings_answered++;
        if (lg_conn_queue_frame(lg, c, 0xA, payload, len) < 0)
            return -1;
        return lg_conn_flush(lg, c);
    case 0xA:
        return 0;
    case 0x0:
    case 0x1:
    case 0x2:
        if (conn_on_data_frame(lg, c, h, payload, len, now_ns) == 0)
            return 0;
        lg_conn_fail(lg, c, FAIL_PROTOCOL, "bad fragment sequence or message too large");
        return -1;
    default:
        lg_conn_fail(lg, c, FAIL_PROTOCOL, "unknown opcode");
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
            lg_conn_fail(lg, c, FAIL_PROTOCOL, "malformed frame header");
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
        ssize_t n = lg_conn_io_read(c, lg->scratch, LG_READ_CHUNK);
        if (n == 0) {
            lg_conn_fail(lg, c, FAIL_SERVER_CLOSE, "connection closed without a close frame");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lg_conn_fail_errno(lg, c, FAIL_IO, "recv", errno);
            return;
        }
        uint64_t now_ns = lg_mono_ns();
        if (lg->measuring)
            lg->x.wire_in_bytes_measured += (uint64_t)n;
        bool from_scratch = c->in.len == c->in.off;
        char *data = lg->scratch;
        size_t len = (size_t)n;
        if (!from_scratch) {
            if (lg_buf_append(&c->in, lg->scratch, len, LG_MESSAGE_MAX + LG_HANDSHAKE_MAX) < 0) {
                lg_conn_fail(lg, c, FAIL_PROTOCOL, "input buffer overflow");
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
                lg_buf_append(&c->in, data + used, len - (size_t)used, LG_READ_CHUNK) < 0) {
                lg_conn_fail(lg, c, FAIL_IO, "out of memory");
                return;
            }
        } else {
            c->in.off += (size_t)used;
        }
        if (c->in.off == c->in.len && c->in.cap > LG_INBUF_KEEP_BYTES)
            lg_buf_free(&c->in);
        if ((size_t)n < LG_READ_CHUNK && !c->ssl)
            return;
    }
}

void lg_conn_on_epoll(lg_t *lg, uint32_t index, uint32_t events)
{
    if (index & LG_HTTP_TAG) {
        lg_http_on_epoll(lg, &lg->http[index & ~LG_HTTP_TAG], events);
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
            lg_conn_release(c);
        }
        return;
    }
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            lg_conn_on_connected(lg, c);
        return;
    }
    if (c->state == CONN_TLS) {
        lg_conn_tls_step(lg, c);
        return;
    }
    if ((events & EPOLLOUT) && lg_conn_flush(lg, c) < 0)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_on_readable(lg, c);
}
