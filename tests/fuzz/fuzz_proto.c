/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the protocol decoder, both encodings (the first input byte picks one),
 * and on success the encoder writing the decoded message's echo (an error frame naming it),
 * so every value that decodes also round-trips through the writer. JSON input is also read
 * by jansson (JSON_REJECT_DUPLICATES), which the server used before json_read.h: both must
 * accept and refuse the same texts, for the same reason, and read the same values. Seeds:
 * the vectors. */
#include "proto/json_read.h"
#include "proto/proto.h"
#include "util/wbuf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Aborts (a crash for libFuzzer) when json_read and jansson disagree on `text`. */
static void compare_with_jansson(const char *text, size_t len)
{
    static rc_json_reader_t r;
    static msgpack_zone zone, zone2;
    static int ready;
    if (!ready) {
        if (!msgpack_zone_init(&zone, 4096) || !msgpack_zone_init(&zone2, 4096))
            abort();
        rc_json_reader_init(&r);
        ready = 1;
    }
    /* jansson's reader drops a NUL byte that follows a token it had to read past (it keeps
     * its look-ahead in a NUL-terminated buffer); JSON allows none outside strings, and
     * json_read refuses them. */
    if (memchr(text, '\0', len) != NULL)
        return;
    msgpack_zone_clear(&zone);
    msgpack_zone_clear(&zone2);
    msgpack_object ours, theirs;
    char what[96];
    rc_json_status_t st = rc_json_read(&r, text, len, 32, &zone, &ours, what, sizeof(what));
    if (st == RC_JSON_MALFORMED && strstr(what, "nested too deeply") != NULL)
        return; /* jansson allows 2048 levels; the server 32 */
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    rc_json_status_t want = RC_JSON_OK;
    if (j == NULL)
        want = json_error_code(&err) == json_error_duplicate_key      ? RC_JSON_DUPLICATE
               : json_error_code(&err) == json_error_numeric_overflow ? RC_JSON_OVERFLOW
                                                                      : RC_JSON_MALFORMED;
    if (st != want)
        abort();
    if (j != NULL) {
        if (rc_proto_json_to_object(j, &zone2, &theirs) != 0 || !msgpack_object_equal(ours, theirs))
            abort();
        json_decref(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rc_proto_decoder_t d;
    static int ready;
    rc_msg_t m;
    if (!ready) {
        if (rc_proto_decoder_init(&d, 100, 100) != 0)
            return 0;
        ready = 1;
    }
    if (size < 1)
        return 0;
    rc_format_t fmt = (data[0] & 1) ? RC_FMT_JSON : RC_FMT_MSGPACK;
    if (fmt == RC_FMT_JSON)
        compare_with_jansson((const char *)data + 1, size - 1);
    int code = rc_proto_decode(&d, fmt, data + 1, size - 1, &m);
    rc_wbuf_t out;
    rc_enc_t e;
    rc_wbuf_init(&out, 0);
    rc_enc_init(&e, &out, fmt);
    /* What the server sends back: the error with what it refuses (type, surface, t). */
    rc_proto_encode_error_about(&e, code ? code : 4500, d.err, d.err_id, false, &d.err_about);
    rc_wbuf_free(&out);
    return 0;
}
