/* SPDX-License-Identifier: Apache-2.0 */
/* A TLS terminator for the wss tests: accepts TLS on 127.0.0.1 with a given certificate and
 * relays the plain bytes to a rankcast server, so wss:// is exercised end to end while the
 * server itself has no TLS. One connection at a time, on its own thread. */
#ifndef RCCT_TLS_PROXY_H
#define RCCT_TLS_PROXY_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct rcct_tls_proxy {
    int port;          /* where it listens (picked by the kernel) */
    int upstream_port; /* the plain server */
    int listen_fd;
    void *ssl_ctx; /* SSL_CTX */
    pthread_t thread;
    atomic_bool stop;
    atomic_int handshakes_ok;
    atomic_int handshakes_failed;
} rcct_tls_proxy_t;

/** Starts the proxy with a PEM certificate chain and key. Returns 0 or -1. */
int rcct_tls_proxy_start(rcct_tls_proxy_t *p, const char *cert_pem, const char *key_pem,
                         int upstream_port);

/** Stops the thread and frees everything. */
void rcct_tls_proxy_stop(rcct_tls_proxy_t *p);

#endif
