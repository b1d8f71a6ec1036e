/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the admin API's route table (api/router.h): lookup by exact path, GET and
 * POST reaching their handlers with the router's context, 405 for a method a route does
 * not take, and object bodies parsed once for every route that takes one (400 otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/router.h"
#include "assert_ext.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    int gets, posts, objects;
    const char *last_path;
    char last_body[64];
    int last_n; /* the "n" field of the last object */
} calls_t;

static unsigned on_get(void *ctx, const char *path, rc_wbuf_t *out)
{
    calls_t *c = ctx;
    c->gets++;
    c->last_path = path;
    rc_wbuf_puts(out, "{\"got\":true}\n");
    return 200;
}

static unsigned on_post(void *ctx, const char *path, const char *body, size_t len, rc_wbuf_t *out)
{
    calls_t *c = ctx;
    c->posts++;
    c->last_path = path;
    snprintf(c->last_body, sizeof(c->last_body), "%.*s", (int)len, body);
    (void)out;
    return 202;
}

static unsigned on_object(void *ctx, const char *path, json_t *body, rc_wbuf_t *out)
{
    calls_t *c = ctx;
    c->objects++;
    c->last_path = path;
    c->last_n = (int)json_integer_value(json_object_get(body, "n"));
    (void)out;
    return 201;
}

static const rc_api_route_t routes[] = {
    {"/api/v1/raw", NULL, on_post, NULL},
    {"/api/v1/object", on_get, NULL, on_object},
    {"/api/v1/read-only", on_get, NULL, NULL},
};

/* The answer as a C string (answers end in a newline, not a NUL). */
static const char *text(rc_wbuf_t *b)
{
    rc_wbuf_putc(b, '\0');
    return rc_wbuf_data(b);
}

static rc_api_router_t router_of(calls_t *c)
{
    return (rc_api_router_t){routes, sizeof(routes) / sizeof(routes[0]), c};
}

static void test_find_is_exact(void **state)
{
    (void)state;
    calls_t c = {0};
    rc_api_router_t r = router_of(&c);
    assert_ptr_equal(rc_api_find(&r, "/api/v1/raw"), &routes[0]);
    assert_ptr_equal(rc_api_find(&r, "/api/v1/object"), &routes[1]);
    assert_null(rc_api_find(&r, "/api/v1/ra"));
    assert_null(rc_api_find(&r, "/api/v1/raw/"));
    assert_null(rc_api_find(&r, "/api/v1/object/x"));
    assert_null(rc_api_find(&r, ""));
}

static void test_handlers_get_the_context_and_path(void **state)
{
    (void)state;
    calls_t c = {0};
    rc_api_router_t r = router_of(&c);
    rc_wbuf_t out;
    rc_wbuf_init(&out, 0);
    assert_int_equal(rc_api_get(&r, &routes[1], &out), 200);
    assert_int_equal(c.gets, 1);
    assert_string_equal(c.last_path, "/api/v1/object");
    assert_int_equal(rc_api_post(&r, &routes[0], "raw bytes", 9, &out), 202);
    assert_int_equal(c.posts, 1);
    assert_string_equal(c.last_body, "raw bytes"); /* not parsed: the route reads it itself */
    assert_int_equal(rc_api_post(&r, &routes[1], "{\"n\":7}", 7, &out), 201);
    assert_int_equal(c.objects, 1);
    assert_int_equal(c.last_n, 7);
    rc_wbuf_free(&out);
}

static void test_a_method_the_route_does_not_take_is_405(void **state)
{
    (void)state;
    calls_t c = {0};
    rc_api_router_t r = router_of(&c);
    rc_wbuf_t out;
    rc_wbuf_init(&out, 0);
    assert_int_equal(rc_api_get(&r, &routes[0], &out), 405);
    assert_contains(text(&out), "\"error\":\"use POST\"");
    assert_int_equal(rc_api_post(&r, &routes[2], "{}", 2, &out), 405);
    assert_contains(text(&out), "\"error\":\"use GET\"");
    assert_int_equal(c.gets + c.posts + c.objects, 0);
    rc_wbuf_free(&out);
}

/* The object routes share one reader: anything but one JSON object (and duplicate keys) is
 * refused before the handler runs. */
static void test_object_routes_refuse_what_is_not_one_object(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "[]", "{\"n\":1", "{\"n\":1,\"n\":2}", "7", "{} {}"};
    calls_t c = {0};
    rc_api_router_t r = router_of(&c);
    rc_wbuf_t out;
    rc_wbuf_init(&out, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(rc_api_post(&r, &routes[1], bad[i], strlen(bad[i]), &out), 400);
        assert_contains(text(&out), "\"error\":");
    }
    assert_int_equal(c.objects, 0);
    rc_wbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_is_exact),
        cmocka_unit_test(test_handlers_get_the_context_and_path),
        cmocka_unit_test(test_a_method_the_route_does_not_take_is_405),
        cmocka_unit_test(test_object_routes_refuse_what_is_not_one_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
