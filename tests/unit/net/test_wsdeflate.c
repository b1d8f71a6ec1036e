/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of permessage-deflate (wsdeflate.h). Sending: every message inflates on its own,
 * as a client with a fresh decompressor sees it; the window asked for holds (checked with
 * content whose only repeats lie beyond it); offers are read as RFC 7692 writes them.
 * Receiving: messages come back whole whatever the sender's window and last block, the size
 * limit stops inflating one byte past it, and invalid data is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "net/wsdeflate.h"
#include "util/error.h"

#include <stdbool.h>
#include <stdlib.h>
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

/* Compresses as a client does: raw deflate, the 00 00 ff ff tail of a sync flush removed, or
 * ending in a final block (`finish`). Returns the bytes written to `out`. */
static size_t client_deflate(const void *in, size_t len, int bits, bool finish, unsigned char *out,
                             size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, finish ? Z_FINISH : Z_SYNC_FLUSH), finish ? Z_STREAM_END : Z_OK);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (!finish) {
        assert_true(n >= 4 && memcmp(out + n - 4, "\0\0\xff\xff", 4) == 0);
        n -= 4;
    }
    return n;
}

static void test_inflate_messages(void **state)
{
    (void)state;
    rc_inflater_t *inf = rc_inflater_new();
    rc_deflater_t *d = rc_deflater_new(1);
    rc_wbuf_t z, out;
    rc_wbuf_init(&z, 0);
    rc_wbuf_init(&out, 0);
    unsigned char msg[1400], packed[4096];
    size_t len = far_repeat(msg);
    /* One inflater, many messages: each starts afresh. */
    for (int bits = 9; bits <= 15; bits += 3) {
        rc_wbuf_reset(&z);
        assert_int_gt(rc_deflate_message(d, bits, msg, len, &z), 0);
        assert_int_equal(rc_inflate_message(inf, rc_wbuf_data(&z), z.len, 65536, &out), (long)len);
        assert_memory_equal(rc_wbuf_data(&out), msg, len);
        for (int finish = 0; finish <= 1; finish++) {
            size_t n = client_deflate(msg, len, bits, finish, packed, sizeof(packed));
            assert_int_equal(rc_inflate_message(inf, packed, n, 65536, &out), (long)len);
            assert_memory_equal(rc_wbuf_data(&out), msg, len);
        }
    }
    /* The eight bytes that aborted lws 4.1.6's inflater: 517 times "a". */
    static const unsigned char crafted[] = {0x4b, 0x4c, 0x1c, 0x05, 0x23, 0x3e, 0x04, 0x00};
    assert_int_equal(rc_inflate_message(inf, crafted, sizeof(crafted), 65536, &out), 517);
    assert_int_equal(rc_wbuf_data(&out)[516], 'a');
    /* An empty message. */
    size_t n = client_deflate("", 0, 15, false, packed, sizeof(packed));
    assert_int_equal(rc_inflate_message(inf, packed, n, 65536, &out), 0);
    rc_wbuf_free(&z);
    rc_wbuf_free(&out);
    rc_deflater_free(d);
    rc_inflater_free(inf);
}

static void test_inflate_limits(void **state)
{
    (void)state;
    rc_inflater_t *inf = rc_inflater_new();
    rc_wbuf_t out;
    rc_wbuf_init(&out, 0);
    size_t big = 16u << 20;
    unsigned char *zeros = calloc(1, big), packed[32768];
    assert_non_null(zeros);
    /* 16 MB in about 16 KB: refused after one byte more than the limit, and nothing kept. */
    size_t n = client_deflate(zeros, big, 15, false, packed, sizeof(packed));
    assert_int_equal(rc_inflate_message(inf, packed, n, 65536, &out), RC_EFULL);
    assert_int_equal(out.len, 0);
    assert_true(out.cap <= 4 * 65536); /* memory bounded by the limit, not the message */
    /* The limit itself is allowed. */
    n = client_deflate(zeros, 4096, 15, false, packed, sizeof(packed));
    assert_int_equal(rc_inflate_message(inf, packed, n, 4096, &out), 4096);
    assert_int_equal(rc_inflate_message(inf, packed, n, 4095, &out), RC_EFULL);
    /* Not deflate data; data after a final block; a reference before the message's start. */
    static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(rc_inflate_message(inf, junk, sizeof(junk), 65536, &out), RC_EINVAL);
    n = client_deflate("abc", 3, 15, true, packed, sizeof(packed));
    packed[n++] = 0x00;
    assert_int_equal(rc_inflate_message(inf, packed, n, 65536, &out), RC_EINVAL);
    static const unsigned char far_back[] = {0x03, 0x00, 0x00}; /* fixed block, distance 1 */
    assert_int_lt(rc_inflate_message(inf, far_back, sizeof(far_back), 65536, &out), 0);
    /* And it still works after all that. */
    n = client_deflate("{}", 2, 15, false, packed, sizeof(packed));
    assert_int_equal(rc_inflate_message(inf, packed, n, 65536, &out), 2);
    free(zeros);
    rc_wbuf_free(&out);
    rc_inflater_free(inf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_inflate_on_their_own),
        cmocka_unit_test(test_window_is_kept),
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_inflate_messages),
        cmocka_unit_test(test_inflate_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
