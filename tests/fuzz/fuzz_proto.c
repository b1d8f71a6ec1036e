/* libFuzzer target: the protocol decoder, both encodings (the first input byte picks one),
 * and on success the encoder writing the decoded message's echo (an error frame naming it),
 * so every value that decodes also round-trips through the writer. Seeds: the vectors. */
#include "proto.h"
#include "wbuf.h"

#include <stddef.h>
#include <stdint.h>

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
    int code = rc_proto_decode(&d, fmt, data + 1, size - 1, &m);
    rc_wbuf_t out;
    rc_enc_t e;
    rc_wbuf_init(&out, 0);
    rc_enc_init(&e, &out, fmt);
    rc_proto_encode_error(&e, code ? code : 4500, d.err, d.err_id, false);
    rc_wbuf_free(&out);
    return 0;
}
