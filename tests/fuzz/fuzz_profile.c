/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: stored profile documents and deltas (what comes back from Redis): the
 * input is split in two at its first byte's position; both halves go through the merge, and
 * the first is merged into a session state against a small catalog. */
#include "engine/engine.h"
#include "store/profile.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rc_catalog_t *catalog;
    if (catalog == NULL) {
        const char *tags[] = {"red"};
        uint32_t idx;
        rc_engine_t *e = rc_engine_new(1000, true, 32, 86400, 3600, 1e9);
        if (e == NULL)
            return 0;
        catalog = rc_engine_catalog(e); /* the engine lives as long as the fuzzer */
        rc_catalog_upsert(catalog, "a", "A", "mugs", tags, 1, 1, 1, &idx);
        rc_catalog_upsert(catalog, "b", "B", "lamps", tags, 1, 2, 1, &idx);
    }
    if (size < 1)
        return 0;
    size_t cut = data[0] % size;
    const uint8_t *doc = data + 1;
    size_t doc_len = cut > 0 ? cut - 1 : 0, delta_len = size - 1 - doc_len;
    rc_wbuf_t out;
    msgpack_zone zone;
    rc_wbuf_init(&out, 0);
    if (msgpack_zone_init(&zone, RC_PROFILE_ZONE)) {
        rc_profile_apply_delta(&zone, doc_len ? doc : NULL, doc_len, doc + doc_len, delta_len,
                               &out);
        msgpack_zone_destroy(&zone);
    }
    rc_wbuf_free(&out);
    rc_user_state_t u;
    rc_user_state_init(&u, 0, 0);
    rc_profile_merge(catalog, &u, doc, doc_len);
    return 0;
}
