/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway's listening socket: bind, accept in bounded batches, --max-conns-per-ip
 * (counted per client address, refused before lws sees the connection), and the hand-over
 * of each accepted socket to lws. */
#include "net/gateway_int.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The listening socket is the gateway's own, not lws's: lws 4.1.6 sets SO_REUSEPORT only
 * for multi-threaded contexts, and --workers needs it to share one port between
 * processes. Accepted connections are handed to lws (lws_adopt_socket_vhost). Binding
 * first also makes a port in use a clean error before lws touches the loop. */
int rc_gw_listener_open(const rc_config_t *cfg, int *fd_out, int *port_out, char *err,
                        size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    int one = 1;
    snprintf(port, sizeof(port), "%lld", (long long)cfg->port);
    if (getaddrinfo(cfg->listen[0] ? cfg->listen : NULL, port, &hints, &res) != 0 || !res) {
        snprintf(err, errlen, "cannot resolve listen address '%s'", cfg->listen);
        return RC_EINVAL;
    }
    /* With no address given, prefer the IPv6 wildcard (it takes IPv4 too), as lws would. */
    struct addrinfo *ai = res;
    for (struct addrinfo *x = res; x != NULL && !cfg->listen[0]; x = x->ai_next)
        if (x->ai_family == AF_INET6)
            ai = x;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return RC_EIO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Only workers and loops share a port; a lone node on a busy port fails rather than
     * joining whatever else listens there. */
    if (cfg->workers > 1 || cfg->loops > 1)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        int zero = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "cannot listen on port %s: %s", port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return RC_EIO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &salen);
    *port_out = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                               : ((struct sockaddr_in *)&sa)->sin_port);
    *fd_out = fd;
    return 0;
}

/* The address bytes of a peer; an IPv4 client on the dual-stack socket counts as IPv4. */
static uint8_t peer_key(const struct sockaddr_storage *sa, char out[16])
{
    if (sa->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(out, &a6->s6_addr[12], 4);
        return 4;
    }
    memcpy(out, a6, 16);
    return 16;
}

/* Over --max-conns-per-ip the connection gets a 429 (plaintext) or a close (TLS, where a
 * plaintext answer would be garbage) before lws ever sees it: one address cannot take
 * every file descriptor of the process. */
static void refuse_per_ip(rc_gateway_t *g, int fd)
{
    static const char resp[] =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        "Content-Length: 52\r\nConnection: close\r\n\r\n"
        "{\"error\":\"too many connections from this address\"}\n";
    rc_metrics.handshakes_refused[RC_REFUSED_PER_IP]++;
    if (!g->tls && send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        RC_DEBUG("gateway", "429 not sent", "error=\"%s\"", strerror(errno));
    close(fd);
}

/* The entry of the peer's address, counting one more connection (under the table's lock):
 * NULL when out of memory, or when the address has `max` (> 0) open already. */
static rc_gw_ip_entry_t *ip_acquire(rc_gateway_t *g, const struct sockaddr_storage *sa,
                                    uint32_t max, bool *over)
{
    char key[16];
    uint8_t len = peer_key(sa, key);
    uint64_t v;
    rc_gw_addrs_t *t = g->addrs;
    rc_gw_ip_entry_t *e = NULL;
    *over = false;
    pthread_mutex_lock(&t->lock);
    if (rc_strmap_get(&t->by_addr, key, len, &v)) {
        e = (rc_gw_ip_entry_t *)(uintptr_t)v;
    } else if ((e = calloc(1, sizeof(*e))) != NULL) {
        memcpy(e->addr, key, len);
        e->len = len;
        if (rc_strmap_put(&t->by_addr, e->addr, len, (uint64_t)(uintptr_t)e) != 0) {
            free(e);
            e = NULL;
        }
    }
    if (e != NULL && max > 0 && e->count >= max) {
        *over = true;
        if (e->count == 0) { /* a fresh entry: nothing else counts on it */
            rc_strmap_del(&t->by_addr, e->addr, e->len);
            free(e);
        }
        e = NULL;
    } else if (e != NULL) {
        e->count++;
    }
    pthread_mutex_unlock(&t->lock);
    return e;
}

void rc_gw_ip_release(rc_gateway_t *g, rc_gw_ip_entry_t *e)
{
    if (e == NULL)
        return;
    rc_gw_addrs_t *t = g->addrs;
    pthread_mutex_lock(&t->lock);
    if (--e->count == 0) {
        rc_strmap_del(&t->by_addr, e->addr, e->len);
        free(e);
    }
    pthread_mutex_unlock(&t->lock);
}

static void accept_one(rc_gateway_t *g, int fd, const struct sockaddr_storage *sa)
{
    bool over;
    rc_gw_ip_entry_t *e = ip_acquire(g, sa, (uint32_t)g->cfg->max_conns_per_ip, &over);
    if (over) {
        refuse_per_ip(g, fd);
        return;
    }
    if (e == NULL) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct lws *wsi = lws_adopt_socket_vhost(g->vhost, fd);
    if (wsi == NULL) {
        /* lws refused it (out of memory, or TLS failed on bytes already there) and closes the
         * descriptor itself, with libuv after this turn of the loop. Closing it here too would
         * free its number for the next accept, and lws's close would then end that connection
         * behind libuv's back (libuv aborts on the EBADF). */
        rc_gw_ip_release(g, e);
        return;
    }
    lws_set_opaque_user_data(wsi, e);
}

static void on_listener_readable(uv_poll_t *h, int status, int events)
{
    rc_gateway_t *g = h->data;
    (void)events;
    if (status < 0)
        return;
    /* A bounded batch per turn, so a connection storm cannot hold the loop. */
    for (int i = 0; i < 256 && g->accepting; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd =
            accept4(g->listen_fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                RC_WARN("gateway", "accept failed", "error=\"%s\"", strerror(errno));
            return;
        }
        accept_one(g, fd, &sa);
    }
}

int rc_gw_listener_start(rc_gateway_t *g, uv_loop_t *loop)
{
    int rc = uv_poll_init(loop, &g->listen_poll, g->listen_fd);
    if (rc != 0)
        return rc;
    g->listen_poll.data = g;
    uv_poll_start(&g->listen_poll, UV_READABLE, on_listener_readable);
    return 0;
}

void rc_gw_listener_close(rc_gateway_t *g)
{
    if (g->listen_fd < 0)
        return;
    uv_poll_stop(&g->listen_poll);
    uv_close((uv_handle_t *)&g->listen_poll, NULL);
    close(g->listen_fd);
    g->listen_fd = -1;
}

int rc_gw_ips_new(rc_gateway_t *g)
{
    rc_gw_addrs_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return RC_ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    rc_strmap_init(&t->by_addr);
    t->refs = 1;
    g->addrs = t;
    return 0;
}

void rc_gateway_share_addresses(rc_gateway_t *g, rc_gateway_t *with)
{
    rc_gw_ips_free(g);
    g->addrs = with->addrs;
    pthread_mutex_lock(&g->addrs->lock);
    g->addrs->refs++;
    pthread_mutex_unlock(&g->addrs->lock);
}

void rc_gw_ips_free(rc_gateway_t *g)
{
    rc_gw_addrs_t *t = g->addrs;
    if (t == NULL)
        return;
    g->addrs = NULL;
    pthread_mutex_lock(&t->lock);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->lock);
    if (!last)
        return;
    /* Entries of connections lws never reported destroyed (a context not fully gone). */
    for (size_t i = 0; i < t->by_addr.cap; i++)
        if (t->by_addr.slots[i].hash != 0)
            free((void *)(uintptr_t)t->by_addr.slots[i].value);
    rc_strmap_free(&t->by_addr);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
