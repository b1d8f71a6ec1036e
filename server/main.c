/* The rankcast executable: parses the command line into a config and runs one node. */
#include "config.h"
#include "log.h"
#include "node.h"

#include <stdbool.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    rc_config_t cfg;
    char err[512];
    bool help, version;
    int rc = 1;

    if (rc_config_init(&cfg) != 0) {
        fprintf(stderr, "rankcast: out of memory\n");
        return 1;
    }
    if (rc_config_from_args(&cfg, argc, argv, &help, &version, err, sizeof(err)) != 0) {
        fprintf(stderr, "rankcast: %s\n", err);
        goto out;
    }
    if (help) {
        printf("rankcast %s: real-time personalization push server\n\n", RC_VERSION);
        rc_config_print_help(stdout);
        rc = 0;
        goto out;
    }
    if (version) {
        printf("rankcast %s\n", RC_VERSION);
        rc = 0;
        goto out;
    }
    if (rc_log_level_parse(cfg.log_level, &rc_log_level) != 0) {
        fprintf(stderr, "rankcast: --log-level: '%s' is not debug, info, warn, error or off\n",
                cfg.log_level);
        goto out;
    }
    rc_node_t *node = rc_node_new(&cfg, err, sizeof(err));
    if (node == NULL) {
        RC_ERROR("main", "cannot start", "error=\"%s\"", err);
        goto out;
    }
    rc = rc_node_run(node);
    rc_node_free(node);
out:
    rc_config_free(&cfg);
    return rc;
}
