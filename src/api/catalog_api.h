/* SPDX-License-Identifier: Apache-2.0 */
/* The live catalog API: POST /api/v1/catalog/items upserts one item or a batch, POST
 * /api/v1/catalog/remove removes items. A change reaches the ranker at once (the engine is
 * refreshed) and every live list that showed a removed item is ranked again and pushed.
 * Each change also goes on the bus, and every other node applies it the same way.
 * Runs on the loop thread, like everything that touches sessions. See docs/api.md. */
#ifndef RC_CATALOG_API_H
#define RC_CATALOG_API_H

#include "bus/bus.h"
#include "engine/engine.h"
#include "session/session.h"
#include "util/wbuf.h"

#include <jansson.h>

#define RC_CATALOG_BATCH_MAX 1000 /* items or ids per request */

/** Handles one authenticated request to `route` with the JSON object `body` (borrowed).
 * Writes the JSON answer to `out` and returns the HTTP status. Each change goes to `e` as a
 * record (engine_op.h: RC_OP_ITEM_JSON, RC_OP_REMOVE; applied at once with one loop, submitted to
 * the shared models' writer with several: rc_sessions_submit()) and is also published on `bus` (as
 * `node_id`'s) for the other nodes. */
unsigned rc_catalog_api_handle(rc_sessions_t *s, rc_bus_t *bus, const char *node_id,
                               const char *route, json_t *body, rc_wbuf_t *out);

/** Applies one catalog change from the bus (RC_BUS_CATALOG, any node's, this one's too: all
 * apply them in the bus's order), as a record like the API's. Returns 0 when applied, or a
 * negative code for a change that does not apply here (malformed: logged and skipped). The
 * caller then refreshes the engine and re-pushes lists (rc_catalog_api_settle), once for
 * many changes. */
int rc_catalog_api_apply(rc_sessions_t *s, const rc_bus_msg_t *m);

/** After changes: the ranker's indexes rebuilt (RC_OP_REFRESH), and every live list showing
 * an item that can no longer be recommended ranked again and pushed. Returns how many lists
 * were pushed. */
uint32_t rc_catalog_api_settle(rc_sessions_t *s);

#endif
