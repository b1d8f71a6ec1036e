/* SPDX-License-Identifier: Apache-2.0 */
/* The wss tests' TLS terminator (see tls_proxy.h). */
#include "tls_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int connect_upstream(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Copies one chunk from TLS to the server; false at the end of either side. */
static bool tls_to_plain(SSL *ssl, int up)
{
    char buf[16384];
    do {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0 || write(up, buf, (size_t)n) != n)
            return false;
    } while (SSL_pending(ssl) > 0);
    return true;
}

static bool plain_to_tls(int up, SSL *ssl)
{
    char buf[16384];
    ssize_t n = read(up, buf, sizeof(buf));
    return n > 0 && SSL_write(ssl, buf, (int)n) == (int)n;
}

static void relay(rcct_tls_proxy_t *p, SSL *ssl, int fd, int up)
{
    while (!atomic_load(&p->stop)) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {up, POLLIN, 0}};
        if (poll(pf, 2, 100) < 0)
            return;
        if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) && !tls_to_plain(ssl, up))
            return;
        if ((pf[1].revents & (POLLIN | POLLHUP | POLLERR)) && !plain_to_tls(up, ssl))
            return;
    }
}

static void serve_one(rcct_tls_proxy_t *p, int fd)
{
    SSL *ssl = SSL_new(p->ssl_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        atomic_fetch_add(&p->handshakes_failed, 1);
        ERR_clear_error();
    } else {
        atomic_fetch_add(&p->handshakes_ok, 1);
        int up = connect_upstream(p->upstream_port);
        if (up >= 0) {
            relay(p, ssl, fd, up);
            close(up);
        }
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
}

static void *proxy_main(void *arg)
{
    rcct_tls_proxy_t *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = {p->listen_fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int fd = accept(p->listen_fd, NULL, NULL);
        if (fd >= 0)
            serve_one(p, fd);
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int rcct_tls_proxy_start(rcct_tls_proxy_t *p, const char *cert_pem, const char *key_pem,
                         int upstream_port)
{
    memset(p, 0, sizeof(*p));
    p->upstream_port = upstream_port;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return -1;
    }
    p->ssl_ctx = ctx;
    p->listen_fd = listen_loopback(&p->port);
    if (p->listen_fd < 0 || pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        if (p->listen_fd >= 0)
            close(p->listen_fd);
        SSL_CTX_free(ctx);
        return -1;
    }
    return 0;
}

void rcct_tls_proxy_stop(rcct_tls_proxy_t *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    SSL_CTX_free(p->ssl_ctx);
}
