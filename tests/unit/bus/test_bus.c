/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the bus's wire form (bus.h): what one node publishes, another decodes to
 * the same message, a message of an older node (fewer fields) still decodes, and a
 * malformed one is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus/bus.h"
#include "proto/mpack.h"

#include <string.h>

static rc_str_t str(const char *s)
{
    return (rc_str_t){s, (uint32_t)strlen(s)};
}

static void assert_str(rc_str_t s, const char *want)
{
    assert_int_equal(s.n, strlen(want));
    assert_memory_equal(s.p, want, s.n);
}

/* Encodes `m` and decodes it into `back` (strings borrow from `wire` and `zone`). */
static void round_trip(const rc_bus_msg_t *m, rc_wbuf_t *wire, msgpack_zone *zone,
                       rc_bus_msg_t *back)
{
    rc_wbuf_init(wire, 0);
    assert_true(msgpack_zone_init(zone, 512));
    assert_int_equal(rc_bus_msg_encode(m, wire), 0);
    assert_int_equal(rc_bus_msg_decode(rc_wbuf_data(wire), wire->len, zone, back), 0);
    assert_int_equal(back->kind, m->kind);
    assert_str(back->origin_node, "node-a");
}

/* An event carries the user's context (device, time zone, locale) and recent items, so
 * other nodes learn trending per segment and co-visitation from it. */
static void test_event_carries_context(void **state)
{
    (void)state;
    rc_bus_msg_t m = {.kind = RC_BUS_EVENT,
                      .origin_node = str("node-a"),
                      .user = str("pseudo-1"),
                      .ev = {.id = str("e1"), .kind = RC_EV_CART, .item = str("sku-9")},
                      .received_ms = 1700000000123,
                      .n_recent = 2,
                      .recent = {str("sku-1"), str("sku-2")},
                      .recent_w = {1.0f, 4.0f},
                      .device = RC_DEV_TABLET,
                      .tz_offset_min = -300,
                      .locale = str("pt-BR")};
    rc_wbuf_t wire;
    msgpack_zone zone;
    rc_bus_msg_t back;
    round_trip(&m, &wire, &zone, &back);
    assert_str(back.user, "pseudo-1");
    assert_str(back.ev.id, "e1");
    assert_int_equal(back.ev.kind, RC_EV_CART);
    assert_str(back.ev.item, "sku-9");
    assert_int_equal(back.received_ms, 1700000000123);
    assert_int_equal(back.n_recent, 2);
    assert_str(back.recent[1], "sku-2");
    assert_float_equal(back.recent_w[1], 4.0, 0);
    assert_int_equal(back.device, RC_DEV_TABLET);
    assert_int_equal(back.tz_offset_min, -300);
    assert_str(back.locale, "pt-BR");
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);

    /* No locale: none on the wire either. */
    m.locale = (rc_str_t){NULL, 0};
    m.tz_offset_min = 330;
    round_trip(&m, &wire, &zone, &back);
    assert_int_equal(back.locale.n, 0);
    assert_int_equal(back.tz_offset_min, 330);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);
}

/* An event from a node that sent no context (or a device class this node does not know)
 * decodes with the neutral context. */
static void test_event_without_context(void **state)
{
    (void)state;
    rc_wbuf_t wire;
    msgpack_packer pk;
    rc_wbuf_init(&wire, 0);
    rc_mp_init(&pk, &wire);
    msgpack_pack_map(&pk, 7);
    rc_mp_cstr(&pk, "k");
    rc_mp_cstr(&pk, "ev");
    rc_mp_cstr(&pk, "o");
    rc_mp_cstr(&pk, "node-old");
    rc_mp_cstr(&pk, "u");
    rc_mp_cstr(&pk, "p1");
    rc_mp_cstr(&pk, "i");
    rc_mp_cstr(&pk, "e1");
    rc_mp_cstr(&pk, "t");
    rc_mp_cstr(&pk, "view");
    rc_mp_cstr(&pk, "dv");
    msgpack_pack_int(&pk, 99);
    rc_mp_cstr(&pk, "tz");
    msgpack_pack_int(&pk, 100000);
    msgpack_zone zone;
    rc_bus_msg_t back;
    assert_true(msgpack_zone_init(&zone, 512));
    assert_int_equal(rc_bus_msg_decode(rc_wbuf_data(&wire), wire.len, &zone, &back), 0);
    assert_int_equal(back.kind, RC_BUS_EVENT);
    assert_int_equal(back.device, RC_DEV_OTHER);
    assert_int_equal(back.tz_offset_min, 0);
    assert_int_equal(back.locale.n, 0);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);
}

/* A catalog change carries the item's JSON text, or its removal; a message with both, or
 * neither, or no id, is refused. */
static void test_catalog_change(void **state)
{
    (void)state;
    const char *json = "{\"id\":\"sku-9\",\"name\":\"Mug\"}";
    rc_bus_msg_t m = {.kind = RC_BUS_CATALOG,
                      .origin_node = str("node-a"),
                      .item_id = str("sku-9"),
                      .item_json = str(json)};
    rc_wbuf_t wire;
    msgpack_zone zone;
    rc_bus_msg_t back;
    round_trip(&m, &wire, &zone, &back);
    assert_str(back.item_id, "sku-9");
    assert_str(back.item_json, json);
    assert_int_equal(back.push_id.n, 0);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);

    m.item_json = (rc_str_t){NULL, 0};
    round_trip(&m, &wire, &zone, &back);
    assert_str(back.item_id, "sku-9");
    assert_int_equal(back.item_json.n, 0);
    msgpack_zone_destroy(&zone);
    rc_wbuf_free(&wire);

    static const struct {
        bool id, json, rm;
    } bad[] = {{true, true, true}, {true, false, false}, {false, true, false}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msgpack_packer pk;
        rc_wbuf_init(&wire, 0);
        rc_mp_init(&pk, &wire);
        msgpack_pack_map(&pk, 2 + bad[i].id + bad[i].json + bad[i].rm);
        rc_mp_cstr(&pk, "k");
        rc_mp_cstr(&pk, "cat");
        rc_mp_cstr(&pk, "o");
        rc_mp_cstr(&pk, "node-a");
        if (bad[i].id) {
            rc_mp_cstr(&pk, "id");
            rc_mp_cstr(&pk, "sku-9");
        }
        if (bad[i].json) {
            rc_mp_cstr(&pk, "j");
            rc_mp_cstr(&pk, json);
        }
        if (bad[i].rm) {
            rc_mp_cstr(&pk, "rm");
            msgpack_pack_true(&pk);
        }
        assert_true(msgpack_zone_init(&zone, 512));
        assert_int_not_equal(rc_bus_msg_decode(rc_wbuf_data(&wire), wire.len, &zone, &back), 0);
        msgpack_zone_destroy(&zone);
        rc_wbuf_free(&wire);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_carries_context),
        cmocka_unit_test(test_event_without_context),
        cmocka_unit_test(test_catalog_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
