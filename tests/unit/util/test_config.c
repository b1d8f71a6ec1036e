/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the settings (config.h): defaults, setting by name, type and bound errors,
 * the config file, the environment, and the whole merge of a command line with its order
 * default < file < environment < flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "util/config.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* Every test starts from an environment without RANKCAST_* variables, so the results do
 * not depend on the shell that runs ctest. */
static int clean_env(void **state)
{
    (void)state;
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e != NULL; e++) {
            if (strncmp(*e, "RANKCAST_", 9) == 0) {
                size_t n = strcspn(*e, "=");
                if (n < sizeof(name)) {
                    memcpy(name, *e, n);
                    name[n] = '\0';
                }
                break;
            }
        }
        if (name[0] == '\0')
            return 0;
        unsetenv(name);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    rc_config_t cfg;
    assert_int_equal(rc_config_init(&cfg), 0);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.listen, "");
    assert_string_equal(cfg.node_id, "");
    assert_string_equal(cfg.web_root, RC_DEFAULT_WEB_ROOT);
    assert_string_equal(cfg.redis, "");
    assert_string_equal(cfg.kafka, "");
    assert_string_equal(cfg.catalog, "");
    assert_false(cfg.catalog_open); /* issue S: clients create no items unless asked to */
    assert_int_equal(cfg.catalog_learned_max, 10000);
    assert_int_equal(cfg.catalog_learn_users, 3);
    assert_int_equal(cfg.max_items, 1000000);
    assert_false(cfg.demo);
    assert_false(cfg.anonymous); /* only the demo, or when configured */
    assert_int_equal(cfg.max_message_bytes, 65536);
    assert_int_equal(cfg.max_batch, 100);
    assert_int_equal(cfg.max_subscriptions, 16);
    assert_int_equal(cfg.max_k, 100);
    assert_int_equal(cfg.events_per_sec, 200);
    assert_int_equal(cfg.events_burst, 400);
    assert_int_equal(cfg.hello_timeout_ms, 10000);
    assert_int_equal(cfg.outbox_max_bytes, 262144);
    assert_int_equal(cfg.rx_buffer_bytes, 256);
    assert_false(cfg.ws_deflate);
    assert_int_equal(cfg.ws_deflate_min_bytes, 256);
    assert_int_equal(cfg.session_idle_s, 300);
    assert_int_equal(cfg.covisit_neighbors, 64);
    assert_float_equal(cfg.covisit_half_life_s, 2592000, 1e-9);
    assert_float_equal(cfg.trending_half_life_s, 3600, 1e-9);
    assert_int_equal(cfg.profile_flush_ms, 100);
    assert_int_equal(cfg.drain_ms, 2000);
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.config, "");
    rc_config_free(&cfg);
    rc_config_free(NULL);
}

static void test_set_by_name_dashes_and_underscores(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[256] = "";
    assert_int_equal(rc_config_init(&cfg), 0);

    assert_int_equal(rc_config_set(&cfg, "port", "9090", err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 9090);
    assert_int_equal(rc_config_set(&cfg, "node-id", "alpha", err, sizeof(err)), 0);
    assert_string_equal(cfg.node_id, "alpha");
    assert_int_equal(rc_config_set(&cfg, "node_id", "beta", err, sizeof(err)), 0);
    assert_string_equal(cfg.node_id, "beta");
    assert_int_equal(rc_config_set(&cfg, "max_message_bytes", "2048", err, sizeof(err)), 0);
    assert_int_equal(cfg.max_message_bytes, 2048);
    assert_int_equal(rc_config_set(&cfg, "covisit-half-life-s", "12.5", err, sizeof(err)), 0);
    assert_float_equal(cfg.covisit_half_life_s, 12.5, 1e-9);
    assert_int_equal(rc_config_set(&cfg, "log-level", "debug", err, sizeof(err)), 0);
    assert_string_equal(cfg.log_level, "debug");
    /* A string may be set to empty. */
    assert_int_equal(rc_config_set(&cfg, "log-level", "", err, sizeof(err)), 0);
    assert_string_equal(cfg.log_level, "");

    /* Bounds are inclusive. */
    assert_int_equal(rc_config_set(&cfg, "port", "0", err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 0);
    assert_int_equal(rc_config_set(&cfg, "port", "65535", err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 65535);

    /* Unknown names, including near misses. */
    assert_int_equal(rc_config_set(&cfg, "nope", "1", err, sizeof(err)), RC_ENOENT);
    assert_contains(err, "nope");
    assert_int_equal(rc_config_set(&cfg, "por", "1", err, sizeof(err)), RC_ENOENT);
    assert_int_equal(rc_config_set(&cfg, "ports", "1", err, sizeof(err)), RC_ENOENT);
    assert_int_equal(rc_config_set(&cfg, "", "1", err, sizeof(err)), RC_ENOENT);
    assert_int_equal(cfg.port, 65535);
    rc_config_free(&cfg);
}

static void test_bools(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[256] = "";
    static const char *const yes[] = {"true", "TRUE", "1", "yes", "On"};
    static const char *const no[] = {"false", "False", "0", "no", "OFF"};
    assert_int_equal(rc_config_init(&cfg), 0);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(rc_config_set(&cfg, "demo", yes[i], err, sizeof(err)), 0);
        assert_true(cfg.demo);
        assert_int_equal(rc_config_set(&cfg, "demo", no[i], err, sizeof(err)), 0);
        assert_false(cfg.demo);
    }
    assert_int_equal(rc_config_set(&cfg, "demo", "maybe", err, sizeof(err)), RC_EINVAL);
    assert_contains(err, "demo");
    assert_contains(err, "maybe");
    assert_false(cfg.demo);
    assert_int_equal(rc_config_set(&cfg, "catalog_open", "", err, sizeof(err)), RC_EINVAL);
    assert_false(cfg.catalog_open);
    rc_config_free(&cfg);
}

/* A refused value leaves the setting as it was and says why, naming setting and value. */
static void test_range_errors(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[256];
    assert_int_equal(rc_config_init(&cfg), 0);

    err[0] = '\0';
    assert_int_equal(rc_config_set(&cfg, "port", "70000", err, sizeof(err)), RC_ERANGE);
    assert_contains(err, "port");
    assert_contains(err, "70000");
    assert_contains(err, "65535");
    assert_int_equal(cfg.port, 8080);

    assert_int_equal(rc_config_set(&cfg, "port", "-1", err, sizeof(err)), RC_ERANGE);
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(rc_config_set(&cfg, "max-k", "101", err, sizeof(err)), RC_ERANGE);
    assert_int_equal(rc_config_set(&cfg, "max_items", "0", err, sizeof(err)), RC_ERANGE);
    assert_int_equal(cfg.max_items, 1000000);

    err[0] = '\0';
    assert_int_equal(rc_config_set(&cfg, "trending-half-life-s", "0.5", err, sizeof(err)),
                     RC_ERANGE);
    assert_contains(err, "trending-half-life-s");
    assert_float_equal(cfg.trending_half_life_s, 3600, 1e-9);

    /* Beyond int64: still an error, never a wrapped value. */
    err[0] = '\0';
    int rc = rc_config_set(&cfg, "port", "99999999999999999999999", err, sizeof(err));
    assert_true(rc == RC_ERANGE || rc == RC_EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(cfg.port, 8080);
    rc_config_free(&cfg);
}

static void test_type_errors(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[256];
    static const char *const not_ints[] = {"abc", "12x", "", " ", "1.5", "0x10z"};
    static const char *const not_numbers[] = {"fast", "nan", "inf", "-inf", "", "3s"};
    assert_int_equal(rc_config_init(&cfg), 0);

    for (size_t i = 0; i < sizeof(not_ints) / sizeof(not_ints[0]); i++) {
        err[0] = '\0';
        assert_int_equal(rc_config_set(&cfg, "port", not_ints[i], err, sizeof(err)), RC_EINVAL);
        assert_contains(err, "port");
        assert_contains(err, "not an integer");
        assert_int_equal(cfg.port, 8080);
    }
    for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
        err[0] = '\0';
        int rc = rc_config_set(&cfg, "covisit_half_life_s", not_numbers[i], err, sizeof(err));
        if (rc != RC_EINVAL) {
            print_error("value '%s': rc %d (%s), expected RC_EINVAL\n", not_numbers[i], rc,
                        rc_strerror(rc));
            fail();
        }
        assert_contains(err, "covisit-half-life-s");
        assert_float_equal(cfg.covisit_half_life_s, 2592000, 1e-9);
    }
    /* A tiny error buffer is never overrun (the sanitizer build checks the bytes). */
    char tiny[4];
    assert_int_equal(rc_config_set(&cfg, "port", "abc", tiny, sizeof(tiny)), RC_EINVAL);
    assert_int_equal(strlen(tiny), 3);
    rc_config_free(&cfg);
}

static void test_config_file(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512] = "";
    char path[128];
    rc_test_write_temp(path, sizeof(path), ".ini",
                       "# rankcast test settings\n"
                       "; another comment style\n"
                       "\n"
                       "port = 9001\n"
                       "node_id = file-node\n"
                       "[engine]\n"
                       "covisit-neighbors=64\n"
                       "catalog-open = true\n"
                       "log_level = warn\n");
    assert_int_equal(rc_config_init(&cfg), 0);
    assert_int_equal(rc_config_load_file(&cfg, path, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 9001);
    assert_string_equal(cfg.node_id, "file-node");
    assert_int_equal(cfg.covisit_neighbors, 64);
    assert_true(cfg.catalog_open);
    assert_string_equal(cfg.log_level, "warn");
    assert_int_equal(cfg.max_batch, 100); /* untouched */
    rc_config_free(&cfg);
    unlink(path);
}

/* A bad value in a file names the file, the line and the setting. */
static void test_config_file_errors(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512];
    char path[128];
    assert_int_equal(rc_config_init(&cfg), 0);

    rc_test_write_temp(path, sizeof(path), ".ini", "# ok\nport = 9001\nmax-k = 500\n");
    err[0] = '\0';
    assert_int_equal(rc_config_load_file(&cfg, path, err, sizeof(err)), RC_ERANGE);
    assert_contains(err, path);
    assert_contains(err, ":3:");
    assert_contains(err, "max-k");
    unlink(path);

    rc_test_write_temp(path, sizeof(path), ".ini", "port = 1\nmax_batch = lots\n");
    err[0] = '\0';
    assert_int_equal(rc_config_load_file(&cfg, path, err, sizeof(err)), RC_EINVAL);
    assert_contains(err, ":2:");
    assert_contains(err, "max-batch");
    unlink(path);

    rc_test_write_temp(path, sizeof(path), ".ini", "port = 1\n\nno_such_thing = 1\n");
    err[0] = '\0';
    assert_int_equal(rc_config_load_file(&cfg, path, err, sizeof(err)), RC_ENOENT);
    assert_contains(err, ":3:");
    assert_contains(err, "no_such_thing");
    unlink(path);

    rc_test_write_temp(path, sizeof(path), ".ini", "port = 1\nthis line has no equals\n");
    err[0] = '\0';
    assert_int_equal(rc_config_load_file(&cfg, path, err, sizeof(err)), RC_EPARSE);
    assert_contains(err, ":2:");
    unlink(path);

    /* A file may not chain to another file. */
    rc_test_write_temp(path, sizeof(path), ".ini", "config = /etc/other.ini\n");
    err[0] = '\0';
    assert_int_equal(rc_config_load_file(&cfg, path, err, sizeof(err)), RC_EINVAL);
    assert_contains(err, ":1:");
    unlink(path);

    err[0] = '\0';
    assert_int_equal(rc_config_load_file(&cfg, "/nonexistent/rankcast.ini", err, sizeof(err)),
                     RC_EIO);
    assert_contains(err, "/nonexistent/rankcast.ini");
    rc_config_free(&cfg);
}

static void test_env(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[256] = "";
    assert_int_equal(rc_config_init(&cfg), 0);
    setenv("RANKCAST_PORT", "7000", 1);
    setenv("RANKCAST_NODE_ID", "env-node", 1);
    setenv("RANKCAST_COVISIT_HALF_LIFE_S", "60", 1);
    setenv("RANKCAST_DEMO", "yes", 1);
    assert_int_equal(rc_config_load_env(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 7000);
    assert_string_equal(cfg.node_id, "env-node");
    assert_float_equal(cfg.covisit_half_life_s, 60, 1e-9);
    assert_true(cfg.demo);
    assert_int_equal(cfg.max_batch, 100);

    setenv("RANKCAST_MAX_BATCH", "5000", 1);
    err[0] = '\0';
    assert_int_equal(rc_config_load_env(&cfg, err, sizeof(err)), RC_ERANGE);
    assert_contains(err, "RANKCAST_MAX_BATCH");
    assert_int_equal(cfg.max_batch, 100);
    unsetenv("RANKCAST_MAX_BATCH");

    setenv("RANKCAST_PORT", "http", 1);
    err[0] = '\0';
    assert_int_equal(rc_config_load_env(&cfg, err, sizeof(err)), RC_EINVAL);
    assert_contains(err, "RANKCAST_PORT");
    rc_config_free(&cfg);
    clean_env(NULL);
}

/* The same setting from all four places: the flag wins, then the environment, then the
 * file; settings named in only one place come from there. */
static void test_precedence(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512] = "";
    char path[128];
    bool help = true, version = true;
    rc_test_write_temp(path, sizeof(path), ".ini",
                       "port = 9001\n"
                       "node-id = from-file\n"
                       "log-level = from-file\n"
                       "max-batch = 50\n");
    setenv("RANKCAST_PORT", "9002", 1);
    setenv("RANKCAST_NODE_ID", "from-env", 1);
    setenv("RANKCAST_MAX_K", "42", 1);
    char *argv[] = {"rankcast", "--config", path, "--port", "9003", "--max-k=7", NULL};

    assert_int_equal(rc_config_init(&cfg), 0);
    int rc = rc_config_from_args(&cfg, 6, argv, &help, &version, err, sizeof(err));
    if (rc != 0)
        print_error("rc_config_from_args: %s\n", err);
    assert_int_equal(rc, 0);
    assert_false(help);
    assert_false(version);
    assert_int_equal(cfg.port, 9003);                /* flag > env > file */
    assert_int_equal(cfg.max_k, 7);                  /* flag > env */
    assert_string_equal(cfg.node_id, "from-env");    /* env > file */
    assert_string_equal(cfg.log_level, "from-file"); /* file > default */
    assert_int_equal(cfg.max_batch, 50);
    assert_int_equal(cfg.max_subscriptions, 16); /* default */
    assert_string_equal(cfg.config, path);
    rc_config_free(&cfg);
    clean_env(NULL);

    /* RANKCAST_CONFIG names the file when no flag does, and still sits below the env. */
    setenv("RANKCAST_CONFIG", path, 1);
    setenv("RANKCAST_NODE_ID", "from-env", 1);
    char *argv2[] = {"rankcast", NULL};
    assert_int_equal(rc_config_init(&cfg), 0);
    assert_int_equal(rc_config_from_args(&cfg, 1, argv2, &help, &version, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 9001);
    assert_string_equal(cfg.node_id, "from-env");
    assert_string_equal(cfg.config, path);
    rc_config_free(&cfg);
    clean_env(NULL);
    unlink(path);
}

/* A file that fails to load stops the merge with its error. */
static void test_args_bad_config_file(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512] = "";
    bool help, version;
    char *argv[] = {"rankcast", "--config=/nonexistent/rankcast.ini", NULL};
    assert_int_equal(rc_config_init(&cfg), 0);
    assert_int_equal(rc_config_from_args(&cfg, 2, argv, &help, &version, err, sizeof(err)), RC_EIO);
    assert_contains(err, "/nonexistent/rankcast.ini");
    rc_config_free(&cfg);
}

static void test_flag_forms(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512] = "";
    bool help, version;
    char *argv[] = {"rankcast",    "--port=1234", "--demo",
                    "--anonymous", "true",        "--catalog-open",
                    "--node_id",   "n-7",         "--log-level=",
                    "--listen",    "127.0.0.1",   "--trending-half-life-s",
                    "90.5",        NULL};
    assert_int_equal(rc_config_init(&cfg), 0);
    int rc = rc_config_from_args(&cfg, 13, argv, &help, &version, err, sizeof(err));
    if (rc != 0)
        print_error("rc_config_from_args: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg.port, 1234);
    assert_true(cfg.demo);         /* bare, followed by another flag */
    assert_true(cfg.anonymous);    /* boolean with a separate value */
    assert_true(cfg.catalog_open); /* bare */
    assert_string_equal(cfg.node_id, "n-7");
    assert_string_equal(cfg.log_level, "");
    assert_string_equal(cfg.listen, "127.0.0.1");
    assert_float_equal(cfg.trending_half_life_s, 90.5, 1e-9);
    rc_config_free(&cfg);

    /* A bare boolean as the last argument, and an explicit false with `=`. */
    char *argv2[] = {"rankcast", "--catalog-open=false", "--demo", NULL};
    assert_int_equal(rc_config_init(&cfg), 0);
    assert_int_equal(rc_config_from_args(&cfg, 3, argv2, &help, &version, err, sizeof(err)), 0);
    assert_false(cfg.catalog_open);
    assert_true(cfg.demo);
    rc_config_free(&cfg);
}

static void test_flag_errors(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[512];
    bool help, version;
    assert_int_equal(rc_config_init(&cfg), 0);

    char *unknown[] = {"rankcast", "--port", "1", "--nope", "3", NULL};
    err[0] = '\0';
    assert_int_equal(rc_config_from_args(&cfg, 5, unknown, &help, &version, err, sizeof(err)),
                     RC_ENOENT);
    assert_contains(err, "--nope");

    char *positional[] = {"rankcast", "serve", NULL};
    err[0] = '\0';
    assert_int_equal(rc_config_from_args(&cfg, 2, positional, &help, &version, err, sizeof(err)),
                     RC_EINVAL);
    assert_contains(err, "serve");

    char *missing[] = {"rankcast", "--port", NULL};
    err[0] = '\0';
    assert_int_equal(rc_config_from_args(&cfg, 2, missing, &help, &version, err, sizeof(err)),
                     RC_EINVAL);
    assert_contains(err, "port");

    char *range[] = {"rankcast", "--port=99999", NULL};
    err[0] = '\0';
    assert_int_equal(rc_config_from_args(&cfg, 2, range, &help, &version, err, sizeof(err)),
                     RC_ERANGE);
    assert_contains(err, "99999");

    char *badbool[] = {"rankcast", "--demo=perhaps", NULL};
    assert_int_equal(rc_config_from_args(&cfg, 2, badbool, &help, &version, err, sizeof(err)),
                     RC_EINVAL);

    char *empty[] = {"rankcast", "--", NULL};
    assert_int_equal(rc_config_from_args(&cfg, 2, empty, &help, &version, err, sizeof(err)),
                     RC_EINVAL);

    char *huge[] = {"rankcast",
                    "--a-flag-name-far-longer-than-any-setting-could-ever-be-in-rankcast-xx", NULL};
    assert_int_not_equal(rc_config_from_args(&cfg, 2, huge, &help, &version, err, sizeof(err)), 0);
    rc_config_free(&cfg);
}

static void test_help_and_version(void **state)
{
    (void)state;
    rc_config_t cfg;
    char err[256] = "";
    bool help = false, version = false;
    assert_int_equal(rc_config_init(&cfg), 0);

    char *a[] = {"rankcast", "--help", NULL};
    assert_int_equal(rc_config_from_args(&cfg, 2, a, &help, &version, err, sizeof(err)), 0);
    assert_true(help);
    assert_false(version);

    char *b[] = {"rankcast", "--port", "1", "--version", NULL};
    assert_int_equal(rc_config_from_args(&cfg, 4, b, &help, &version, err, sizeof(err)), 0);
    assert_false(help);
    assert_true(version);
    assert_int_equal(cfg.port, 1);

    char *c[] = {"rankcast", "-h", "-V", NULL};
    assert_int_equal(rc_config_from_args(&cfg, 3, c, &help, &version, err, sizeof(err)), 0);
    assert_true(help);
    assert_true(version);
    rc_config_free(&cfg);

    /* The help text lists every flag with its environment variable. */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    rc_config_print_help(out);
    fclose(out);
    assert_contains(text, "--port");
    assert_contains(text, "RANKCAST_PORT");
    assert_contains(text, "--covisit-half-life-s");
    assert_contains(text, "RANKCAST_COVISIT_HALF_LIFE_S");
    assert_contains(text, "--help");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_set_by_name_dashes_and_underscores, clean_env),
        cmocka_unit_test_setup(test_bools, clean_env),
        cmocka_unit_test_setup(test_range_errors, clean_env),
        cmocka_unit_test_setup(test_type_errors, clean_env),
        cmocka_unit_test_setup(test_config_file, clean_env),
        cmocka_unit_test_setup(test_config_file_errors, clean_env),
        cmocka_unit_test_setup(test_env, clean_env),
        cmocka_unit_test_setup(test_precedence, clean_env),
        cmocka_unit_test_setup(test_args_bad_config_file, clean_env),
        cmocka_unit_test_setup(test_flag_forms, clean_env),
        cmocka_unit_test_setup(test_flag_errors, clean_env),
        cmocka_unit_test_setup(test_help_and_version, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
