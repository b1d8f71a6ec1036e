/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the bus message decoder (what arrives from Kafka), then the encoder on
 * whatever decoded, as a node re-publishing it would. */
#include "bus/bus.h"
#include "util/wbuf.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    rc_bus_msg_t m;
    if (!msgpack_zone_init(&zone, 1024))
        return 0;
    if (rc_bus_msg_decode(data, size, &zone, &m) == 0) {
        rc_wbuf_t out;
        rc_wbuf_init(&out, 0);
        rc_bus_msg_encode(&m, &out);
        rc_wbuf_free(&out);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
