/* The live catalog API: POST /api/v1/catalog/items upserts one item or a batch, POST
 * /api/v1/catalog/remove removes items. A change reaches the ranker at once (the engine is
 * refreshed) and every live list that showed a removed item is ranked again and pushed.
 * Runs on the loop thread, like everything that touches sessions. See docs/api.md. */
#ifndef RC_CATALOG_API_H
#define RC_CATALOG_API_H

#include "engine/engine.h"
#include "session.h"
#include "wbuf.h"

#include <jansson.h>

#define RC_CATALOG_BATCH_MAX 1000 /* items or ids per request */

/** Whether `route` is one of the catalog API's (the gateway dispatches on it). */
bool rc_catalog_api_route(const char *route);

/** Handles one authenticated request to `route` with the JSON object `body` (borrowed).
 * Writes the JSON answer to `out` and returns the HTTP status. */
unsigned rc_catalog_api_handle(rc_engine_t *e, rc_sessions_t *s, const char *route, json_t *body,
                               rc_wbuf_t *out);

#endif
