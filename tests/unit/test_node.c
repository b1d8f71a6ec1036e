/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the node's wiring (node.h): a node is built from a config and freed
 * without running, every part it made is released (the sanitizer build checks for leaks),
 * and a config it cannot serve is refused with a reason instead of a half-built node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "node.h"
#include "util/log.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A config that listens on loopback on `port` (0: any free port), quiet, with `settings`
 * (name, value, ..., NULL) on top. */
static void config_with(rc_config_t *cfg, int port, const char *const *settings)
{
    char err[256], text[16];
    assert_int_equal(rc_config_init(cfg), 0);
    snprintf(text, sizeof(text), "%d", port);
    assert_int_equal(rc_config_set(cfg, "port", text, err, sizeof(err)), 0);
    assert_int_equal(rc_config_set(cfg, "listen", "127.0.0.1", err, sizeof(err)), 0);
    assert_int_equal(rc_config_set(cfg, "log-level", "error", err, sizeof(err)), 0);
    assert_int_equal(rc_config_set(cfg, "anonymous", "true", err, sizeof(err)), 0);
    for (; settings != NULL && settings[0] != NULL; settings += 2)
        assert_int_equal(rc_config_set(cfg, settings[0], settings[1], err, sizeof(err)), 0);
}

/* Builds a node from `settings` and expects it refused with a message containing `why`. */
static void expect_refused(const char *const *settings, const char *why)
{
    rc_config_t cfg;
    char err[512] = "";
    config_with(&cfg, 0, settings);
    rc_node_t *n = rc_node_new(&cfg, err, sizeof(err));
    if (n != NULL)
        rc_node_free(n);
    assert_null(n);
    assert_contains(err, why);
    rc_config_free(&cfg);
}

static void test_a_node_is_built_and_freed_without_running(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512] = "";
    config_with(&cfg, 0, NULL);
    rc_node_t *n = rc_node_new(&cfg, err, sizeof(err));
    if (n == NULL)
        print_error("rc_node_new: %s\n", err);
    assert_non_null(n);
    rc_node_free(n);
    rc_node_free(NULL);
    rc_config_free(&cfg);
}

static void test_kafka_without_a_pseudonym_key_is_refused(void **state)
{
    (void)state;
    static const char *const kafka[] = {"kafka", "127.0.0.1:1", NULL};
    expect_refused(kafka, "--kafka needs --pseudonym-key");
}

static void test_a_malformed_experiment_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"experiment", "x;control=nope", NULL};
    expect_refused(bad, "expected four weights");
    static const char *const names[] = {"experiment", "bad name!;a=1,0,0,0", NULL};
    expect_refused(names, "expected NAME");
}

/* A port another socket holds: the node says so rather than serving nowhere. */
static void test_a_taken_port_is_refused(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    rc_config_t cfg;
    char err[512] = "";
    config_with(&cfg, ntohs(a.sin_port), NULL);
    rc_node_t *n = rc_node_new(&cfg, err, sizeof(err));
    if (n != NULL)
        rc_node_free(n);
    close(fd);
    assert_null(n);
    assert_contains(err, "cannot listen on port");
    rc_config_free(&cfg);
}

int main(void)
{
    rc_log_level = RC_LOG_ERROR; /* the nodes built here would log their start-up */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_node_is_built_and_freed_without_running),
        cmocka_unit_test(test_kafka_without_a_pseudonym_key_is_refused),
        cmocka_unit_test(test_a_malformed_experiment_is_refused),
        cmocka_unit_test(test_a_taken_port_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
