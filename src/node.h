/* SPDX-License-Identifier: Apache-2.0 */
/* A node: one process's whole server, wired from a config. Start, serve until SIGINT or
 * SIGTERM, drain, stop. server/main.c only parses the command line and runs a node. */
#ifndef RC_NODE_H
#define RC_NODE_H

#include "util/config.h"

#include <stddef.h>

typedef struct rc_node rc_node_t;

/** Builds a node: loads the catalog, creates the backends, binds the port. `cfg` is
 * borrowed and must outlive the node. Returns NULL with a message in `err`. */
rc_node_t *rc_node_new(const rc_config_t *cfg, char *err, size_t errlen);

/** The port the node listens on (the one bound when --port is 0). */
int rc_node_port(const rc_node_t *n);

/** Serves until a SIGINT/SIGTERM drain completes. Returns 0 after a clean stop. */
int rc_node_run(rc_node_t *n);

/** Frees the node (after rc_node_run returned, or instead of it). NULL is a no-op. */
void rc_node_free(rc_node_t *n);

#endif
