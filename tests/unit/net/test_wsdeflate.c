/* Unit tests of the permessage-deflate sender (wsdeflate.h): every message inflates on its
 * own, as a client with a fresh decompressor sees it; the window asked for holds (checked
 * with content whose only repeats lie beyond it); offers are read as RFC 7692 writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "net/wsdeflate.h"
#include "util/error.h"

#include <string.h>
#include <zlib.h>

/* Inflates one message as a client does (the removed 00 00 ff ff put back) with a window of
 * 2^bits; returns the bytes out, or -1 when the data is not valid for that window. Output
 * goes 64 bytes per call: zlib checks distances against its window only for what lies
 * before the current call's output, as a client with a ring buffer of that size would. */
static long inflate_message(const unsigned char *in, size_t len, int bits, unsigned char *out,
                            size_t cap)
{
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    unsigned char buf[1 << 16];
    assert_true(len + 4 <= sizeof(buf));
    memcpy(buf, in, len);
    memcpy(buf + len, tail, 4);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, -bits), Z_OK);
    z.next_in = buf;
    z.avail_in = (uInt)(len + 4);
    z.next_out = out;
    int rc = Z_OK;
    size_t done = 0;
    while (rc == Z_OK && z.avail_in > 0 && done < cap) {
        z.avail_out = (uInt)(cap - done < 64 ? cap - done : 64);
        rc = inflate(&z, Z_SYNC_FLUSH);
        done = (size_t)(z.next_out - out);
    }
    long n = (rc == Z_OK || rc == Z_STREAM_END) && z.avail_in == 0 ? (long)done : -1;
    inflateEnd(&z);
    return n;
}

/* 700 pseudo-random bytes, then the same 700 again: the only repeat is 700 bytes back. */
static size_t far_repeat(unsigned char *out)
{
    uint32_t x = 2463534242u;
    for (int i = 0; i < 700; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out[i] = (unsigned char)x;
    }
    memcpy(out + 700, out, 700);
    return 1400;
}

static void test_messages_inflate_on_their_own(void **state)
{
    (void)state;
    rc_deflater_t *d = rc_deflater_new(1);
    assert_non_null(d);
    const char *msgs[] = {"{\"type\":\"recs\",\"items\":[{\"item\":\"a\"},{\"item\":\"a\"}]}",
                          "{\"type\":\"recs\",\"items\":[{\"item\":\"b\"},{\"item\":\"b\"}]}"};
    rc_wbuf_t out;
    rc_wbuf_init(&out, 0);
    for (int i = 0; i < 2; i++) {
        rc_wbuf_reset(&out);
        long n = rc_deflate_message(d, 15, msgs[i], strlen(msgs[i]), &out);
        assert_int_gt(n, 0);
        assert_int_equal(out.len, n);
        unsigned char back[256];
        long m =
            inflate_message((unsigned char *)rc_wbuf_data(&out), out.len, 15, back, sizeof(back));
        assert_int_equal(m, strlen(msgs[i]));
        assert_memory_equal(back, msgs[i], strlen(msgs[i]));
    }
    rc_wbuf_free(&out);
    rc_deflater_free(d);
}

static void test_window_is_kept(void **state)
{
    (void)state;
    rc_deflater_t *d = rc_deflater_new(9);
    unsigned char msg[1400], back[2048];
    size_t len = far_repeat(msg);
    rc_wbuf_t out;
    rc_wbuf_init(&out, 0);
    /* A 32 KB window finds the repeat; a 512-byte decoder cannot follow it. */
    assert_int_gt(rc_deflate_message(d, 15, msg, len, &out), 0);
    assert_int_lt(out.len, 1000);
    assert_int_equal(
        inflate_message((unsigned char *)rc_wbuf_data(&out), out.len, 9, back, sizeof(back)), -1);
    /* With the window a client asked for, it decodes in that window. */
    rc_wbuf_reset(&out);
    assert_int_gt(rc_deflate_message(d, 9, msg, len, &out), 0);
    assert_int_equal(
        inflate_message((unsigned char *)rc_wbuf_data(&out), out.len, 9, back, sizeof(back)),
        (long)len);
    assert_memory_equal(back, msg, len);
    /* Appends after what the buffer holds. */
    rc_wbuf_reset(&out);
    rc_wbuf_put(&out, "hdr", 3);
    long n = rc_deflate_message(d, 12, msg, len, &out);
    assert_int_equal(out.len, 3 + n);
    assert_memory_equal(rc_wbuf_data(&out), "hdr", 3);
    assert_int_equal(rc_deflate_message(d, 8, msg, len, &out), RC_EINVAL);
    assert_int_equal(rc_deflate_message(d, 16, msg, len, &out), RC_EINVAL);
    assert_int_equal(out.len, 3 + n);
    rc_wbuf_free(&out);
    rc_deflater_free(d);
    rc_deflater_free(NULL);
}

static void test_offers(void **state)
{
    (void)state;
    assert_int_equal(rc_deflate_offer_window_bits("permessage-deflate"), 15);
    assert_int_equal(rc_deflate_offer_window_bits("permessage-deflate; client_max_window_bits"),
                     15);
    assert_int_equal(rc_deflate_offer_window_bits("Permessage-Deflate;server_max_window_bits=10"),
                     10);
    assert_int_equal(
        rc_deflate_offer_window_bits("permessage-deflate; server_max_window_bits=\"12\""), 12);
    /* Several offers: the smallest limit holds whichever lws takes. */
    assert_int_equal(rc_deflate_offer_window_bits("permessage-deflate; server_max_window_bits=11, "
                                                  "permessage-deflate"),
                     11);
    assert_int_equal(rc_deflate_offer_window_bits("x-webkit-deflate-frame, permessage-deflate; "
                                                  "client_no_context_takeover"),
                     15);
    /* zlib has no 256-byte window, and a limit without a value is malformed: no compression. */
    assert_int_equal(rc_deflate_offer_window_bits("permessage-deflate; server_max_window_bits=8"),
                     0);
    assert_int_equal(rc_deflate_offer_window_bits("permessage-deflate; server_max_window_bits"), 0);
    assert_int_equal(rc_deflate_offer_window_bits("x-webkit-deflate-frame"), 0);
    assert_int_equal(rc_deflate_offer_window_bits(""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_inflate_on_their_own),
        cmocka_unit_test(test_window_is_kept),
        cmocka_unit_test(test_offers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
