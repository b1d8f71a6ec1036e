/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the client library without a server: the codecs against the shared
 * protocol vectors, the messages the client builds, option checks, backoff, ids, the event
 * queue, and the client's handling of server messages fed in directly. */
#include "harness.h"

#include "client_int.h"
#include "evq.h"
#include "messages.h"
#include "wire.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

/* Equal as protocol values: numbers compare by value (the reference encoder writes 4.0 as
 * the integer 4), everything else structurally. */
static bool same_value(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach((json_t *)a, k, v)
        {
            const json_t *w = json_object_get(b, k);
            if (w == NULL || !same_value(v, w))
                return false;
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_value(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
        out[i] = (unsigned char)byte;
    }
    return n;
}

static json_t *load_vectors(void)
{
    json_error_t err;
    json_t *v = json_load_file(RCCT_VECTORS, 0, &err);
    if (v == NULL)
        fail_msg("cannot read %s: %s", RCCT_VECTORS, err.text);
    return v;
}

/* ---- codecs against the vectors ---- */

/* Every valid message decodes to the same value from JSON and from MessagePack. */
static void vectors_decode_alike_in_both_encodings(void **state)
{
    (void)state;
    json_t *cases = load_vectors();
    unsigned char bin[8192];
    size_t i, checked = 0;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *text = json_string_value(json_object_get(c, "json"));
        const char *hex = json_string_value(json_object_get(c, "msgpack_hex"));
        const char *why = NULL;
        if (json_object_get(c, "error") != NULL || text == NULL || hex == NULL)
            continue;
        json_t *from_json = rcc_wire_decode(RCC_FORMAT_JSON, text, strlen(text), false, &why);
        size_t n = unhex(hex, bin, sizeof(bin));
        json_t *from_mp = rcc_wire_decode(RCC_FORMAT_MSGPACK, bin, n, true, &why);
        if (from_json == NULL || from_mp == NULL || !same_value(from_json, from_mp))
            fail_msg("vector '%s' decodes differently (%s)",
                     json_string_value(json_object_get(c, "name")), why ? why : "values differ");
        /* Our encoder round-trips the value in both encodings. */
        for (int f = 0; f < 2; f++) {
            rcc_buf_t b;
            rcc_buf_init(&b, 0);
            assert_int_equal(rcc_wire_encode((rcc_format_t)f, from_json, &b), 0);
            json_t *back = rcc_wire_decode((rcc_format_t)f, rcc_buf_data(&b), b.len,
                                           f == RCC_FORMAT_MSGPACK, &why);
            assert_non_null(back);
            assert_true(same_value(from_json, back));
            json_decref(back);
            rcc_buf_free(&b);
        }
        json_decref(from_json);
        json_decref(from_mp);
        checked++;
    }
    assert_true(checked >= 40);
    json_decref(cases);
}

/* A string field of a wire reason and the library's copy: both absent, or equal. */
static void assert_same_string(const json_t *wire, const char *key, const char *got)
{
    const char *want = json_string_value(json_object_get(wire, key));
    if (want == NULL)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

/* The library read wire reason `wire` (NULL: the item had none) into `r`, field by field. */
static void assert_reason_read(const json_t *wire, const rcc_reason_t *r)
{
    assert_same_string(wire, "code", r->code);
    assert_same_string(wire, "item", r->item);
    assert_same_string(wire, "item_name", r->item_name);
    assert_same_string(wire, "category", r->category);
    assert_same_string(wire, "category_name", r->category_name);
    assert_same_string(wire, "segment", r->segment);
    assert_same_string(wire, "locale", r->locale);
    assert_same_string(wire, "kind", r->kind);
    const json_t *age = json_object_get(wire, "age_s");
    assert_int_equal(r->age_s, age ? json_integer_value(age) : -1);
}

/* Every server message of the vectors is read by the client's readers. */
static void vectors_server_messages_are_read(void **state)
{
    (void)state;
    json_t *cases = load_vectors();
    size_t i, seen = 0;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *dir = json_string_value(json_object_get(c, "dir"));
        const char *text = json_string_value(json_object_get(c, "json"));
        const char *why;
        if (strcmp(dir, "s2c") != 0)
            continue;
        json_t *m = rcc_wire_decode(RCC_FORMAT_JSON, text, strlen(text), false, &why);
        assert_non_null(m);
        const char *type = rcc_msg_type(m);
        if (strcmp(type, "welcome") == 0) {
            const char *user;
            rcc_limits_t l;
            assert_int_equal(rcc_msg_read_welcome(m, &user, &l), 0);
            assert_int_equal(l.max_batch, 100);
        } else if (strcmp(type, "recs") == 0) {
            rcc_recs_t r;
            rcc_item_t *items;
            assert_int_equal(rcc_msg_read_recs(m, &r, &items), 0);
            assert_int_equal(r.n_items, json_array_size(json_object_get(m, "items")));
            for (size_t k = 0; k < r.n_items; k++)
                assert_reason_read(
                    json_object_get(json_array_get(json_object_get(m, "items"), k), "reason"),
                    &items[k].reason);
            free(items);
        } else if (strcmp(type, "error") == 0) {
            rcc_error_t e;
            assert_int_equal(rcc_msg_read_error(m, &e), 0);
            assert_true(e.code >= 4000);
            /* What it refuses, as the vector says (NULL / absent alike). */
            const char *about = json_string_value(json_object_get(m, "about"));
            const char *surface = json_string_value(json_object_get(m, "surface"));
            assert_true(about == NULL ? e.about == NULL : strcmp(about, e.about) == 0);
            assert_true(surface == NULL ? e.surface == NULL : strcmp(surface, e.surface) == 0);
            const json_t *t = json_object_get(m, "t");
            assert_int_equal(e.has_t, t != NULL);
            if (t != NULL)
                assert_true(e.t == json_number_value(t));
        }
        json_decref(m);
        seen++;
    }
    assert_true(seen >= 10);
    json_decref(cases);
}

/* Reasons are read leniently: a bad part is left out, a reason without a code is none, and
 * the item is read all the same. */
static void reasons_are_read_leniently(void **state)
{
    (void)state;
    static const struct {
        const char *reason; /* the JSON of an item's reason */
        const char *code, *kind;
        int64_t age_s;
    } cases[] = {
        {"{\"code\":\"repeat\",\"kind\":\"cart\",\"age_s\":61}", "repeat", "cart", 61},
        {"{\"code\":\"repeat\",\"kind\":3,\"age_s\":-5,\"later\":1}", "repeat", NULL, -1},
        {"{\"code\":\"repeat\",\"age_s\":1.5}", "repeat", NULL, -1},
        {"{\"kind\":\"view\"}", NULL, NULL, -1},
        {"{\"code\":7}", NULL, NULL, -1},
        {"\"repeat\"", NULL, NULL, -1},
        {"null", NULL, NULL, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        const char *why;
        snprintf(text, sizeof(text),
                 "{\"type\":\"recs\",\"surface\":\"s\",\"version\":1,\"items\":[{\"item\":"
                 "\"a\",\"why\":\"w\",\"reason\":%s}]}",
                 cases[i].reason);
        json_t *m = rcc_wire_decode(RCC_FORMAT_JSON, text, strlen(text), false, &why);
        assert_non_null(m);
        rcc_recs_t r;
        rcc_item_t *items;
        assert_int_equal(rcc_msg_read_recs(m, &r, &items), 0);
        assert_int_equal(r.n_items, 1);
        assert_string_equal(items[0].why, "w");
        if (cases[i].code == NULL)
            assert_null(items[0].reason.code);
        else
            assert_string_equal(items[0].reason.code, cases[i].code);
        if (cases[i].kind == NULL)
            assert_null(items[0].reason.kind);
        else
            assert_string_equal(items[0].reason.kind, cases[i].kind);
        assert_int_equal(items[0].reason.age_s, cases[i].age_s);
        assert_null(items[0].reason.item);
        free(items);
        json_decref(m);
    }
}

/* The vector of `name` decoded from JSON (caller frees). */
static json_t *vector_message(json_t *cases, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) != 0)
            continue;
        const char *text = json_string_value(json_object_get(c, "json")), *why;
        return rcc_wire_decode(RCC_FORMAT_JSON, text, strlen(text), false, &why);
    }
    fail_msg("no vector %s", name);
    return NULL;
}

/* The vectors' recs_delta applied in turn are whole lists; one that does not apply is refused
 * and changes nothing held; a new connection starts from nothing. */
static void compact_lists_apply_the_vectors(void **state)
{
    (void)state;
    json_t *cases = load_vectors();
    json_t *whole = vector_message(cases, "recs_delta whole list (compact, from nothing)");
    json_t *changes = vector_message(cases, "recs_delta changes");
    json_t *same = vector_message(cases, "recs_delta with no change of order");
    rcc_client_t c;
    rcc_sub_t sub;
    memset(&c, 0, sizeof(c));
    memset(&sub, 0, sizeof(sub));
    c.subs = &sub;
    c.n_subs = 1;
    rcc_recs_t r;
    rcc_item_t *items;
    /* Nothing held yet. */
    assert_int_equal(rcc_compact_apply(&c, &sub, changes, &r, &items), RCC_EPROTO);
    assert_int_equal(rcc_compact_apply(&c, &sub, whole, &r, &items), 0);
    assert_int_equal(r.n_items, 3);
    assert_string_equal(items[0].item, "22423");
    assert_true(items[0].score == 0.91);
    assert_string_equal(items[0].src, "trending");
    assert_string_equal(items[0].why, "Trending on mobile");
    assert_string_equal(items[0].name, "REGENCY CAKESTAND 3 TIER");
    assert_true(items[0].has_price && items[0].price == 12.75);
    assert_string_equal(items[0].reason.code, "trending_context");
    assert_string_equal(items[0].reason.segment, "mobile");
    assert_string_equal(items[2].item, "x-unknown");
    assert_null(items[2].name);
    assert_false(items[2].has_price);
    assert_string_equal(items[2].reason.code, "new_item");
    free(items);
    assert_int_equal(rcc_compact_apply(&c, &sub, changes, &r, &items), 0);
    assert_string_equal(r.cause, "e-0001");
    static const char *const order[] = {"84406B", "85123A", "22423"};
    static const double scores[] = {1.75, 0.5, 0.25};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(items[i].item, order[i]);
        assert_true(items[i].score == scores[i]);
    }
    assert_string_equal(items[2].name, "REGENCY CAKESTAND 3 TIER"); /* kept from the first */
    assert_string_equal(items[0].reason.code, "co_visited");
    assert_string_equal(items[0].reason.item, "85123A");
    free(items);
    /* The same delta again: its base is no longer held. */
    int64_t held = sub.held_version;
    assert_int_equal(rcc_compact_apply(&c, &sub, changes, &r, &items), RCC_EPROTO);
    assert_int_equal(sub.held_version, held);
    /* A reason never defined; a place beyond the list. */
    json_t *bad = json_deep_copy(same);
    json_object_set_new(bad, "r", json_pack("[i,i,i]", 3, 1, 99));
    assert_int_equal(rcc_compact_apply(&c, &sub, bad, &r, &items), RCC_EPROTO);
    json_object_set_new(bad, "r", json_pack("[i,i,i]", 3, 1, 0));
    json_object_set_new(bad, "place", json_pack("[[i,s]]", 7, "22423"));
    assert_int_equal(rcc_compact_apply(&c, &sub, bad, &r, &items), RCC_EPROTO);
    json_object_set_new(bad, "scores_e4", json_pack("[f,i,i]", 1.5, 1, 2));
    assert_int_equal(rcc_compact_apply(&c, &sub, bad, &r, &items), RCC_EPROTO);
    json_decref(bad);
    assert_int_equal(sub.held_version, held);
    assert_int_equal(rcc_compact_apply(&c, &sub, same, &r, &items), 0);
    assert_string_equal(items[0].item, "84406B");
    assert_true(items[0].score == 1.5);
    free(items);
    /* Subscribed again, or a new connection: changes still in flight for the old
     * subscription are dropped (1) until the whole list comes. */
    rcc_compact_reset(&c);
    assert_null(sub.held);
    assert_int_equal(rcc_compact_apply(&c, &sub, same, &r, &items), 1);
    assert_int_equal(rcc_compact_apply(&c, &sub, whole, &r, &items), 0);
    free(items);
    assert_int_equal(rcc_compact_apply(&c, &sub, same, &r, &items), RCC_EPROTO);
    rcc_compact_reset(&c);
    json_decref(whole);
    json_decref(changes);
    json_decref(same);
    json_decref(cases);
}

static void decoder_refuses_bad_input(void **state)
{
    (void)state;
    const char *why;
    static const unsigned char not_map[] = {0x93, 1, 2, 3};
    static const unsigned char int_key[] = {0x81, 0x01, 0x02};
    static const unsigned char trailing[] = {0x80, 0x00};
    static const unsigned char binval[] = {0x81, 0xa1, 'x', 0xc4, 0x01, 0x00};
    assert_null(rcc_wire_decode(RCC_FORMAT_MSGPACK, not_map, sizeof(not_map), true, &why));
    assert_null(rcc_wire_decode(RCC_FORMAT_MSGPACK, int_key, sizeof(int_key), true, &why));
    assert_null(rcc_wire_decode(RCC_FORMAT_MSGPACK, trailing, sizeof(trailing), true, &why));
    assert_null(rcc_wire_decode(RCC_FORMAT_MSGPACK, binval, sizeof(binval), true, &why));
    assert_null(rcc_wire_decode(RCC_FORMAT_MSGPACK, "\x80", 1, false, &why)); /* text frame */
    assert_null(rcc_wire_decode(RCC_FORMAT_JSON, "{}", 2, true, &why));       /* binary frame */
    assert_null(rcc_wire_decode(RCC_FORMAT_JSON, "[1]", 3, false, &why));
    assert_null(rcc_wire_decode(RCC_FORMAT_JSON, "{\"a\":1,\"a\":2}", 13, false, &why));
    assert_null(rcc_wire_decode(RCC_FORMAT_JSON, "{\"a\":", 5, false, &why));
}

/* ---- messages the client builds ---- */

static void assert_json(json_t *msg, const char *expected)
{
    json_error_t err;
    json_t *want = json_loads(expected, 0, &err);
    assert_non_null(msg);
    assert_non_null(want);
    if (!same_value(msg, want)) {
        char *got = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("built %s, expected %s", got, expected);
    }
    json_decref(want);
    json_decref(msg);
}

static void builds_protocol_messages(void **state)
{
    (void)state;
    const char *why;
    json_t *fields;
    rcc_hello_t h = {NULL, "u42", RCC_DEVICE_MOBILE, "en-GB", 60, RCC_CONSENT_NO};
    assert_json(rcc_msg_hello(&h), "{\"type\":\"hello\",\"v\":1,\"user\":\"u42\",\"device\":"
                                   "\"mobile\",\"locale\":\"en-GB\",\"tz_offset_min\":60,"
                                   "\"consent\":false}");
    rcc_hello_t bare = {0};
    assert_json(rcc_msg_hello(&bare), "{\"type\":\"hello\",\"v\":1}");
    rcc_event_t ev = {.kind = RCC_KIND_RATING,
                      .item = "22423",
                      .value = 4,
                      .has_value = true,
                      .surface = "home",
                      .ts_ms = 1763800000000};
    assert_int_equal(rcc_msg_event_fields(&ev, "e-1", 5, &fields, &why), 0);
    assert_json(rcc_msg_event(fields),
                "{\"type\":\"event\",\"id\":\"e-1\",\"kind\":\"rating\",\"item\":\"22423\","
                "\"value\":4,\"surface\":\"home\",\"ts_ms\":1763800000000}");
    json_t *two[2] = {fields, fields};
    assert_json(rcc_msg_events(two, 2),
                "{\"type\":\"events\",\"events\":[{\"id\":\"e-1\",\"kind\":\"rating\",\"item\":"
                "\"22423\",\"value\":4,\"surface\":\"home\",\"ts_ms\":1763800000000},{\"id\":"
                "\"e-1\",\"kind\":\"rating\",\"item\":\"22423\",\"value\":4,\"surface\":\"home\","
                "\"ts_ms\":1763800000000}]}");
    json_decref(fields);
    rcc_event_t search = {.kind = RCC_KIND_SEARCH, .query = "red mug", .ts_ms = -1};
    assert_int_equal(rcc_msg_event_fields(&search, "e-2", 5, &fields, &why), 0);
    assert_json(fields, "{\"id\":\"e-2\",\"kind\":\"search\",\"query\":\"red mug\"}");
    rcc_event_t now = {.kind = RCC_KIND_VIEW, .item = "x"};
    assert_int_equal(rcc_msg_event_fields(&now, "e-3", 77, &fields, &why), 0);
    assert_json(fields, "{\"id\":\"e-3\",\"kind\":\"view\",\"item\":\"x\",\"ts_ms\":77}");
    rcc_filter_t f = {.category = "kitchen", .price_max = 9.5, .has_price_max = true};
    assert_json(rcc_msg_subscribe("home", 5, &f),
                "{\"type\":\"subscribe\",\"surface\":\"home\",\"k\":5,\"category\":\"kitchen\","
                "\"price_max\":9.5}");
    assert_json(rcc_msg_subscribe("pdp", 0, NULL), "{\"type\":\"subscribe\",\"surface\":\"pdp\"}");
    rcc_filter_t again = {.repeat = RCC_REPEAT_NOT_CURRENT};
    assert_json(rcc_msg_subscribe("pdp", 8, &again),
                "{\"type\":\"subscribe\",\"surface\":\"pdp\",\"k\":8,\"repeat\":\"not_current\"}");
    rcc_filter_t bad = {.repeat = (rcc_repeat_t)7};
    assert_int_equal(rcc_msg_check_subscribe("pdp", 8, &bad), RCC_EINVAL);
    assert_json(rcc_msg_unsubscribe("pdp"), "{\"type\":\"unsubscribe\",\"surface\":\"pdp\"}");
}

static void event_checks_follow_the_protocol(void **state)
{
    (void)state;
    const char *why;
    json_t *fields;
    char long_query[300];
    memset(long_query, 'q', sizeof(long_query) - 1);
    long_query[sizeof(long_query) - 1] = '\0';
    const rcc_event_t bad[] = {
        {.kind = RCC_KIND_CLICK},                       /* no item */
        {.kind = RCC_KIND_SEARCH},                      /* no query */
        {.kind = RCC_KIND_SEARCH, .query = long_query}, /* query > 256 */
        {.kind = RCC_KIND_RATING, .item = "a"},         /* no value */
        {.kind = RCC_KIND_RATING, .item = "a", .value = 0.5, .has_value = true},
        {.kind = RCC_KIND_DWELL, .item = "a", .value = -1, .has_value = true},
        {.kind = RCC_KIND_PURCHASE, .item = "a", .value = 0, .has_value = true},
        {.kind = RCC_KIND_VIEW, .item = "a", .value = NAN, .has_value = true},
        {.kind = RCC_KIND_VIEW, .item = "a b"},                  /* bad id chars */
        {.kind = RCC_KIND_VIEW, .item = "a", .surface = "Home"}, /* uppercase */
        {.kind = (rcc_kind_t)42, .item = "a"},
        {.kind = RCC_KIND_VIEW, .item = "a", .ts_ms = (int64_t)1 << 60},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rcc_msg_event_fields(&bad[i], "e-1", 1, &fields, &why) != RCC_EINVAL)
            fail_msg("bad event %zu was accepted", i);
        assert_null(fields);
    }
    rcc_event_t ok = {.kind = RCC_KIND_DWELL, .item = "a", .value = 0, .has_value = true};
    assert_int_equal(rcc_msg_event_fields(&ok, "e-1", 1, &fields, &why), 0);
    json_decref(fields);
    char id65[66];
    memset(id65, 'a', 65);
    id65[65] = '\0';
    assert_int_equal(rcc_msg_event_fields(&ok, id65, 1, &fields, &why), RCC_EINVAL);
    assert_false(rcc_valid_surface("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 bytes */
    assert_true(rcc_valid_surface("abcdefghijklmnopqrstuvwxyz012345"));
}

/* ---- options ---- */

static void options_are_checked(void **state)
{
    (void)state;
    char err[128];
    rcc_options_t o = {0};
    const char *bad_urls[] = {NULL,           "http://h/ws", "ws://",     "ws://h:0/ws",
                              "ws://h:70000", "ws://h:x",    "ws://[::1", "wss://h:443ws"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        o.url = bad_urls[i];
        rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
        if (c != NULL)
            fail_msg("url %s was accepted", bad_urls[i] ? bad_urls[i] : "(null)");
        assert_non_null(strstr(err, "url"));
    }
    o.url = "ws://127.0.0.1:1";
    o.user_id = "bad user";
    assert_null(rcc_client_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "user_id"));
    o.user_id = NULL;
    o.tz_offset_min = 900;
    assert_null(rcc_client_new(&o, err, sizeof(err)));
    o.tz_offset_min = 0;
    o.format = (rcc_format_t)7;
    assert_null(rcc_client_new(&o, err, sizeof(err)));
    o.format = RCC_FORMAT_JSON;
    o.reconnect_base_ms = 1000;
    o.reconnect_cap_ms = 10;
    assert_null(rcc_client_new(&o, err, sizeof(err)));
    o.reconnect_cap_ms = 0;
    assert_null(rcc_client_new(NULL, err, sizeof(err)));

    /* Accepted forms: default path, "/" as /ws, IPv6 literal, default ports. */
    const char *good[] = {"ws://127.0.0.1:1", "ws://h/", "ws://[::1]:8080/ws", "wss://h/x/y"};
    const char *paths[] = {"/ws", "/ws", "/ws", "/x/y"};
    const int ports[] = {1, 80, 8080, 443};
    const char *hosts[] = {"127.0.0.1:1", "h", "::1", "h"};
    for (size_t i = 0; i < 4; i++) {
        o.url = good[i];
        rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
        assert_non_null(c);
        assert_string_equal(c->path, paths[i]);
        assert_int_equal(c->port, ports[i]);
        assert_string_equal(c->host_header, hosts[i]);
        assert_int_equal(rcc_client_state(c), RCC_STATE_CONNECTING);
        rcc_client_free(c);
    }
    rcc_client_free(NULL);
}

/* ---- backoff, ids, names ---- */

static void backoff_is_full_jitter_and_capped(void **state)
{
    (void)state;
    int64_t max0 = 0, max20 = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d0 = rcc_backoff_ms(0, 100, 5000), d3 = rcc_backoff_ms(3, 100, 5000);
        int64_t d20 = rcc_backoff_ms(20, 100, 5000);
        assert_true(d0 >= 0 && d0 <= 100);
        assert_true(d3 >= 0 && d3 <= 800);
        assert_true(d20 >= 0 && d20 <= 5000);
        max0 = d0 > max0 ? d0 : max0;
        max20 = d20 > max20 ? d20 : max20;
    }
    assert_true(max0 > 50);    /* spread over the window, not fixed */
    assert_true(max20 > 4000); /* reaches the cap's neighbourhood */
    assert_int_equal(rcc_backoff_ms(1000, 100, 5000) <= 5000, 1);
}

static void event_ids_are_valid_and_unique(void **state)
{
    (void)state;
    static char ids[1000][40];
    char small[8];
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rcc_make_event_id(ids[i], sizeof(ids[i])), 0);
        assert_true(rcc_valid_id(ids[i]));
        assert_int_equal(strlen(ids[i]), 34);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    assert_int_equal(rcc_make_event_id(small, sizeof(small)), RCC_EINVAL);
    assert_string_equal(rcc_kind_name(RCC_KIND_IMPRESSION), "impression");
    assert_null(rcc_kind_name((rcc_kind_t)99));
    assert_string_equal(rcc_strerror(RCC_EFULL), "event queue full");
    assert_string_equal(rcc_strerror(4503), "unavailable");
}

/* ---- event queue ---- */

static void evq_keeps_order_states_and_bounds(void **state)
{
    (void)state;
    rcc_evq_t q;
    rcc_evq_entry_t *out[4];
    rcc_evq_init(&q, 3);
    assert_int_equal(rcc_evq_push(&q, "a", json_object(), NULL, NULL), 0);
    assert_int_equal(rcc_evq_push(&q, "b", json_object(), NULL, NULL), 0);
    assert_int_equal(rcc_evq_push(&q, "a", json_object(), NULL, NULL), RCC_EINVAL);
    assert_int_equal(rcc_evq_push(&q, "c", json_object(), NULL, NULL), 0);
    assert_int_equal(rcc_evq_push(&q, "d", json_object(), NULL, NULL), RCC_EFULL);
    assert_int_equal(rcc_evq_take_ready(&q, out, 2), 2);
    assert_string_equal(out[0]->id, "a");
    assert_string_equal(out[1]->id, "b");
    rcc_evq_set_state(&q, out[0], RCC_EVQ_INFLIGHT, 1000);
    rcc_evq_set_state(&q, out[1], RCC_EVQ_WAITING, 5000);
    assert_int_equal(q.ready, 1);
    /* At 2000 with a 10,000 us ack timeout: b is due at 5000, a at 11000. */
    assert_int_equal(rcc_evq_promote(&q, 2000, 10000), 5000);
    assert_int_equal(rcc_evq_promote(&q, 6000, 10000), 11000);
    assert_int_equal(q.ready, 2);
    rcc_evq_requeue_inflight(&q);
    assert_int_equal(q.ready, 3);
    rcc_evq_entry_t *b = rcc_evq_find(&q, "b");
    rcc_evq_remove(&q, b);
    rcc_evq_entry_free(b);
    assert_null(rcc_evq_find(&q, "b"));
    assert_int_equal(q.count, 2);
    while (q.head) {
        rcc_evq_entry_t *e = q.head;
        rcc_evq_remove(&q, e);
        rcc_evq_entry_free(e);
    }
    assert_int_equal(q.ready, 0);
}

/* ---- the client's handling of server messages, fed in directly ---- */

static rcc_client_t *offline_client(rcct_rec_t *r, rcc_format_t fmt)
{
    rcc_options_t o;
    char err[128];
    rcct_options(&o, r, "ws://127.0.0.1:1/ws", fmt);
    rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(c);
    return c;
}

static void feed(rcc_client_t *c, const char *json_text)
{
    rcc_incoming_message(c, json_text, strlen(json_text), false);
}

static void older_lists_and_unknown_surfaces_are_dropped(void **state)
{
    (void)state;
    rcct_rec_t r;
    rcc_client_t *c = offline_client(&r, RCC_FORMAT_JSON);
    assert_int_equal(rcc_subscribe(c, "home", 3, NULL), 0);
    feed(c, "{\"type\":\"recs\",\"surface\":\"home\",\"version\":5,\"items\":[{\"item\":\"a\","
            "\"score\":1,\"price\":2.5}]}");
    feed(c, "{\"type\":\"recs\",\"surface\":\"home\",\"version\":3,\"items\":[]}");
    feed(c, "{\"type\":\"recs\",\"surface\":\"home\",\"version\":5,\"items\":[]}");
    feed(c, "{\"type\":\"recs\",\"surface\":\"other\",\"version\":9,\"items\":[]}");
    feed(c,
         "{\"type\":\"recs\",\"surface\":\"home\",\"version\":6,\"items\":[],\"cause\":\"e-9\"}");
    assert_int_equal(r.n_recs, 2);
    assert_int_equal(r.recs[0].version, 5);
    assert_string_equal(r.recs[0].first_item, "a");
    assert_int_equal(r.recs[1].version, 6);
    assert_string_equal(r.recs[1].cause, "e-9");
    /* Subscribing again forgets the version: the answer to the new parameters is shown. */
    assert_int_equal(rcc_subscribe(c, "home", 4, NULL), 0);
    feed(c, "{\"type\":\"recs\",\"surface\":\"home\",\"version\":6,\"items\":[]}");
    assert_int_equal(r.n_recs, 3);
    assert_int_equal(r.n_errors, 0);
    rcc_client_free(c);
}

static void errors_settle_or_retry_events(void **state)
{
    (void)state;
    rcct_rec_t r;
    rcc_client_t *c = offline_client(&r, RCC_FORMAT_JSON);
    rcc_event_t ev = {.kind = RCC_KIND_VIEW, .item = "a"};
    ev.id = "e-retry";
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    ev.id = "e-final";
    assert_int_equal(rcc_track(c, &ev, rcct_on_ack, &r), 0);
    /* Retryable: the event stays queued, waiting for its backoff; no callback. */
    feed(c, "{\"type\":\"error\",\"code\":4503,\"name\":\"unavailable\",\"message\":\"m\","
            "\"id\":\"e-retry\",\"fatal\":false}");
    assert_int_equal(r.n_acks, 0);
    assert_int_equal(rcc_client_pending(c), 2);
    assert_int_equal(rcc_evq_find(&c->evq, "e-retry")->state, RCC_EVQ_WAITING);
    /* Final: the ack callback gets the code, on_error does not. */
    feed(c, "{\"type\":\"error\",\"code\":4012,\"name\":\"unknown_item\",\"message\":\"m\","
            "\"id\":\"e-final\",\"fatal\":false}");
    assert_int_equal(rcct_ack_status(&r, "e-final"), 4012);
    assert_int_equal(r.n_errors, 0);
    /* The ack of the retried event settles it once; a repeated ack is ignored. */
    feed(c, "{\"type\":\"ack\",\"ids\":[\"e-retry\",\"e-unknown\"]}");
    feed(c, "{\"type\":\"ack\",\"ids\":[\"e-retry\"]}");
    assert_int_equal(rcct_ack_count(&r, "e-retry"), 1);
    assert_int_equal(rcct_ack_status(&r, "e-retry"), 0);
    assert_int_equal(rcc_client_pending(c), 0);
    /* An error about no queued event goes to on_error. */
    feed(c, "{\"type\":\"error\",\"code\":4040,\"name\":\"unknown_surface\",\"message\":\"m\","
            "\"fatal\":false}");
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0], 4040);
    rcc_client_free(c);
}

static void pushes_and_bad_messages_are_reported(void **state)
{
    (void)state;
    rcct_rec_t r;
    rcc_client_t *c = offline_client(&r, RCC_FORMAT_MSGPACK);
    /* {"type":"push","id":"p1","topic":"t","data":[1,2.5,null]} in MessagePack */
    static const unsigned char push[] = {
        0x84, 0xa4, 't',  'y',  'p',  'e',  0xa4, 'p', 'u', 's',  'h', 0xa2, 'i', 'd',
        0xa2, 'p',  '1',  0xa5, 't',  'o',  'p',  'i', 'c', 0xa1, 't', 0xa4, 'd', 'a',
        't',  'a',  0x93, 0x01, 0xcb, 0x40, 0x04, 0,   0,   0,    0,   0,    0,   0xc0};
    rcc_incoming_message(c, push, sizeof(push), true);
    assert_int_equal(r.n_pushes, 1);
    assert_string_equal(r.push_topic, "t");
    assert_string_equal(r.push_data, "[1,2.5,null]");
    rcc_incoming_message(c, "{}", 2, false);  /* text frame on msgpack */
    rcc_incoming_message(c, "\xc1", 1, true); /* never-used byte */
    static const unsigned char unknown[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'x', 'y', 'z'};
    rcc_incoming_message(c, unknown, sizeof(unknown), true);
    assert_int_equal(r.n_errors, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r.errors[i], RCC_EPROTO);
    rcc_client_free(c);
}

/* ---- rcc_client_wake() ---- */

static void *wake_later(void *arg)
{
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    rcc_client_wake(arg);
    return NULL;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A listener that never answers keeps the client waiting for its handshake, with nothing
 * to do for seconds: a blocking rcc_client_service() ends at its timeout, or at once when
 * another thread calls rcc_client_wake(). */
static void wake_ends_a_blocking_service(void **state)
{
    (void)state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char url[64], err[128];
    rcct_rec_t r;
    rcc_options_t o;
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", ntohs(sa.sin_port));
    rcct_options(&o, &r, url, RCC_FORMAT_JSON);
    rcc_client_t *c = rcc_client_new(&o, err, sizeof(err));
    assert_non_null(c);
    for (int i = 0; i < 5; i++) /* the connection attempt and the upgrade request go out */
        assert_int_equal(rcc_client_service(c, 20), 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(rcc_client_service(c, 300), 0);
    double idle_s = seconds_since(&t0);
    assert_true(idle_s >= 0.25 && idle_s < 1.5); /* the timeout bounds the wait */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wake_later, c), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(rcc_client_service(c, 5000), 0);
    double woken_s = seconds_since(&t0);
    pthread_join(t, NULL);
    assert_true(woken_s < 1.0); /* about 0.2 s; without the wake it would be 5 s */
    assert_int_equal(r.opens, 0);
    rcc_client_free(c);
    close(fd);
}

int main(void)
{
    rcc_set_log_level(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_decode_alike_in_both_encodings),
        cmocka_unit_test(vectors_server_messages_are_read),
        cmocka_unit_test(reasons_are_read_leniently),
        cmocka_unit_test(compact_lists_apply_the_vectors),
        cmocka_unit_test(decoder_refuses_bad_input),
        cmocka_unit_test(builds_protocol_messages),
        cmocka_unit_test(event_checks_follow_the_protocol),
        cmocka_unit_test(options_are_checked),
        cmocka_unit_test(backoff_is_full_jitter_and_capped),
        cmocka_unit_test(event_ids_are_valid_and_unique),
        cmocka_unit_test(evq_keeps_order_states_and_bounds),
        cmocka_unit_test(older_lists_and_unknown_surfaces_are_dropped),
        cmocka_unit_test(errors_settle_or_retry_events),
        cmocka_unit_test(pushes_and_bad_messages_are_reported),
        cmocka_unit_test(wake_ends_a_blocking_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
