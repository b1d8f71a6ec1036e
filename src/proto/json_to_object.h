/* SPDX-License-Identifier: Apache-2.0 */
/* JSON to MessagePack objects: a jansson value (the admin API's push data) becomes a
 * msgpack_object tree. Client messages do not come this way: json_read.h reads them straight
 * into such trees. */
#ifndef RC_JSON_TO_OBJECT_H
#define RC_JSON_TO_OBJECT_H

#include <msgpack.h>

/** Converts a parsed JSON value (jansson's json_t, passed as void* to keep jansson out of
 * this header) into a MessagePack object allocated in `zone`. Returns 0 or RC_ENOMEM. */
int rc_proto_json_to_object(const void *json, msgpack_zone *zone, msgpack_object *out);

#endif
