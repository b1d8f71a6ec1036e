/* SPDX-License-Identifier: Apache-2.0 */
/* wss:// and its settings. The server has no TLS yet, so: a wss client against the plain
 * server fails cleanly (reported, retried, freed without leaks); and a TLS terminator in the
 * test (tls_proxy.c, with a CA and certificates made by the openssl tool in a temporary
 * directory) carries wss to the real server, to check ca_file and tls_insecure. */
#include "harness.h"
#include "tls_proxy.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static rcct_server_t server;
static char dir[64]; /* from mkdtemp("/tmp/rcc-tls-XXXXXX") */
static char ca_pem[96], good_pem[96], good_key[96];
static char wrong_pem[96], wrong_key[96];

static int run(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof(full), "cd '%s' && %s >/dev/null 2>&1", dir, cmd);
    return system(full) == 0 ? 0 : -1;
}

static int write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* A CA, a certificate for 127.0.0.1 and one for another name, both signed by the CA. */
static int make_certificates(void)
{
    if (write_file("good.ext", "subjectAltName=IP:127.0.0.1\n") != 0 ||
        write_file("wrong.ext", "subjectAltName=DNS:wrong.example\n") != 0)
        return -1;
    static const char *const steps[] = {
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=rankcast-test-ca "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout good.key -out good.csr -subj /CN=127.0.0.1",
        "openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out good.pem -days 2 -extfile good.ext",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout wrong.key -out wrong.csr -subj /CN=wrong.example",
        "openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out wrong.pem -days 2 -extfile wrong.ext",
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (run(steps[i]) != 0) {
            fprintf(stderr, "openssl step failed: %s\n", steps[i]);
            return -1;
        }
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
    snprintf(good_pem, sizeof(good_pem), "%s/good.pem", dir);
    snprintf(good_key, sizeof(good_key), "%s/good.key", dir);
    snprintf(wrong_pem, sizeof(wrong_pem), "%s/wrong.pem", dir);
    snprintf(wrong_key, sizeof(wrong_key), "%s/wrong.key", dir);
    return 0;
}

static rcc_client_t *new_client(rcct_rec_t *r, int port, const char *ca, bool insecure)
{
    static char url[64];
    rcc_options_t o;
    char err[160];
    snprintf(url, sizeof(url), "wss://127.0.0.1:%d/ws", port);
    rcct_options(&o, r, url, RCC_FORMAT_MSGPACK);
    o.ca_file = ca;
    o.tls_insecure = insecure;
    o.user_id = "tls-user";
    rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
    if (c == NULL)
        fail_msg("rcc_client_new: %s", err);
    return c;
}

static bool attempts_failed(const rcct_rec_t *r, const void *n)
{
    int failures = 0;
    for (int i = 0; i < r->n_errors; i++)
        failures += r->errors[i] == RCC_ECONNECT;
    return failures >= *(const int *)n && r->reconnects >= *(const int *)n;
}

/* TLS to a plain WebSocket server: every attempt fails, is reported, and is retried. */
static void wss_to_plain_server_fails_cleanly(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        rcct_rec_t r;
        int three = 3;
        rcc_client_t *c = new_client(&r, server.port, variant ? ca_pem : NULL, !variant);
        rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "22423", .id = "tls-e1"};
        assert_int_equal(rcc_subscribe(c, "home", 3, NULL), 0);
        assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
        assert_true(rcct_pump(c, &r, 5000, attempts_failed, &three));
        assert_int_equal(r.opens, 0);
        assert_int_equal(r.n_recs, 0);
        assert_int_equal(rcc_client_state(c), RCC_STATE_RECONNECTING);
        rcc_client_free(c);
        assert_int_equal(rcct_ack_status(&r, "tls-e1"), RCC_ECANCELED);
    }
}

static void missing_ca_file_is_refused(void **state)
{
    (void)state;
    rcc_options_t o = {.url = "wss://127.0.0.1:1/ws", .ca_file = "/nonexistent/ca.pem"};
    char err[160];
    assert_null(rcc_client_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "ca_file"));
}

/* Through the terminator with the test CA as ca_file: wss works end to end. */
static void wss_with_ca_file_reaches_the_server(void **state)
{
    (void)state;
    rcct_tls_proxy_t p;
    rcct_rec_t r;
    int one = 1;
    assert_int_equal(rcct_tls_proxy_start(&p, good_pem, good_key, server.port), 0);
    rcc_client_t *c = new_client(&r, p.port, ca_pem, false);
    assert_int_equal(rcc_subscribe(c, "home", 3, NULL), 0);
    rcc_event_t ev = {.kind = RCC_KIND_CLICK, .item = "85123A", .id = "tls-click-1"};
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    if (!rcct_pump(c, &r, 5000, rcct_opened, &one))
        fail_msg("no welcome over wss: %s", r.last_error);
    assert_true(rcct_pump(c, &r, 5000, rcct_acked, &one));
    assert_int_equal(rcct_ack_status(&r, "tls-click-1"), 0);
    assert_true(rcct_pump(c, &r, 5000, rcct_recs_for, "home"));
    rcc_client_free(c);
    rcct_tls_proxy_stop(&p);
}

/* Without the CA (system trust store only) the certificate is not trusted: no connection. */
static void untrusted_certificate_is_refused(void **state)
{
    (void)state;
    rcct_tls_proxy_t p;
    rcct_rec_t r;
    int two = 2;
    assert_int_equal(rcct_tls_proxy_start(&p, good_pem, good_key, server.port), 0);
    rcc_client_t *c = new_client(&r, p.port, NULL, false);
    assert_true(rcct_pump(c, &r, 5000, attempts_failed, &two));
    assert_int_equal(r.opens, 0);
    rcc_client_free(c);
    rcct_tls_proxy_stop(&p);
}

/* Without a ca_file the system's trust store decides: OpenSSL's default paths, which honour
 * SSL_CERT_FILE. Pointed at the test CA, it lets the client in; without it, the same
 * certificate is refused (untrusted_certificate_is_refused). */
static void system_trust_store_is_the_default(void **state)
{
    (void)state;
    rcct_tls_proxy_t p;
    rcct_rec_t r;
    int one = 1;
    assert_int_equal(rcct_tls_proxy_start(&p, good_pem, good_key, server.port), 0);
    setenv("SSL_CERT_FILE", ca_pem, 1);
    rcc_client_t *c = new_client(&r, p.port, NULL, false);
    unsetenv("SSL_CERT_FILE");
    assert_true(rcct_pump(c, &r, 5000, rcct_opened, &one));
    assert_true(rcct_pump(c, &r, 5000, rcct_in_state, &(rcc_state_t){RCC_STATE_OPEN}));
    rcc_client_free(c);
    rcct_tls_proxy_stop(&p);
}

/* A trusted certificate for another name is refused, unless tls_insecure is set. */
static void wrong_name_needs_insecure(void **state)
{
    (void)state;
    rcct_tls_proxy_t p;
    rcct_rec_t r;
    int one = 1, two = 2;
    assert_int_equal(rcct_tls_proxy_start(&p, wrong_pem, wrong_key, server.port), 0);
    rcc_client_t *c = new_client(&r, p.port, ca_pem, false);
    assert_true(rcct_pump(c, &r, 5000, attempts_failed, &two));
    assert_int_equal(r.opens, 0);
    rcc_client_free(c);
    c = new_client(&r, p.port, NULL, true);
    assert_true(rcct_pump(c, &r, 5000, rcct_opened, &one));
    rcc_client_free(c);
    rcct_tls_proxy_stop(&p);
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/rcc-tls-XXXXXX";
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(dir, sizeof(dir), "%s", tmpl);
    if (make_certificates() != 0)
        return -1;
    return rcct_server_start(&server);
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    rcct_server_stop(&server, SIGKILL);
    if (getenv("RCCT_KEEP_TMP") != NULL) {
        fprintf(stderr, "kept %s\n", dir);
        return 0;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (rcct_server_bin() == NULL)
        return RCCT_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wss_to_plain_server_fails_cleanly),
        cmocka_unit_test(missing_ca_file_is_refused),
        cmocka_unit_test(wss_with_ca_file_reaches_the_server),
        cmocka_unit_test(untrusted_certificate_is_refused),
        cmocka_unit_test(wrong_name_needs_insecure),
        cmocka_unit_test(system_trust_store_is_the_default),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
