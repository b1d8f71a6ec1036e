/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the parts of a snapshot read back at start (engine_snapshot.h, the
 * in-memory profile store's part). A snapshot's CRC keeps out a torn or corrupt file, not a
 * crafted one (or one from a build with a bug): whatever MessagePack its body holds must be
 * refused or restored without a crash. The first byte chooses the part (the engine's, the
 * profiles', the sessions' context for the read-back); the rest is the part's MessagePack. */
#include "engine/engine.h"
#include "engine/engine_snapshot.h"
#include "engine/experiments.h"
#include "engine/history.h"
#include "proto/mpack.h"
#include "store/profile.h"
#include "util/defer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static void fuzz_engine(const msgpack_object *o)
{
    const char *tags[] = {"red"};
    uint32_t idx;
    char err[200];
    rc_engine_t *e = rc_engine_new(1000, true, 8, 86400, 3600, 1e9);
    if (e == NULL)
        return;
    rc_catalog_upsert(rc_engine_catalog(e), "a", "A", "mugs", tags, 1, 1, 1, &idx);
    rc_catalog_upsert(rc_engine_catalog(e), "b", "B", "lamps", tags, 1, 2, 1, &idx);
    rc_engine_refresh(e);
    /* An experiment runs, so that the snapshot's counters are read for it. */
    static rc_experiment_t x;
    static const rc_blend_t base = {1, 0, 0, 0, 0};
    if (x.serial == 0 &&
        rc_experiment_parse(&x, "ab;a=1,0,0,0;b=0,1,0,0", &base, err, sizeof(err)) != 0)
        abort();
    rc_engine_set_experiment(e, &x);
    rc_experiment_counts_t counts;
    rc_engine_snapshot_read(e, o, &counts, err, sizeof(err));
    rc_engine_free(e);
}

static void fuzz_context(const msgpack_object *o)
{
    const char *tags[] = {"red"};
    uint32_t idx;
    rc_engine_t *e = rc_engine_new(1000, true, 8, 86400, 3600, 1e9);
    rc_history_t *h = e != NULL ? rc_history_new(e, 1800000) : NULL;
    if (h != NULL) {
        rc_catalog_upsert(rc_engine_catalog(e), "a", "A", "mugs", tags, 1, 1, 1, &idx);
        if (rc_history_snapshot_read(h, o) == 0) /* then sessions go on from it */
            rc_history_learn(h, "u", 1, RC_EV_VIEW, "a", 1, false, 0, 1796000000000);
    }
    rc_history_free(h);
    rc_engine_free(e);
}

static void fuzz_profiles(const msgpack_object *o)
{
    static uv_loop_t loop;
    static rc_defer_t defer;
    static bool ready;
    if (!ready) {
        uv_loop_init(&loop);
        rc_defer_init(&defer, &loop);
        ready = true;
    }
    rc_profile_store_t *s = rc_profile_memory_new(&defer, NULL, NULL, 16, 0);
    if (s == NULL)
        return;
    rc_profile_snapshot_read(s, o);
    rc_profile_store_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    if (!msgpack_zone_init(&zone, 4096))
        return 0;
    /* As the node reads a snapshot: checked first (msgpack-c allocates what a header says). */
    if (rc_mp_check(data + 1, size - 1, 64) == 0 &&
        msgpack_unpack((const char *)data + 1, size - 1, &off, &zone, &o) ==
            MSGPACK_UNPACK_SUCCESS) {
        if (data[0] % 3 == 1)
            fuzz_profiles(&o);
        else if (data[0] % 3 == 2)
            fuzz_context(&o);
        else
            fuzz_engine(&o);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
