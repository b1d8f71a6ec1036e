/* SPDX-License-Identifier: Apache-2.0 */
/* The rankcast executable: parses the command line into a config and runs one node, or,
 * with --workers N, supervises N share-nothing node processes on one port. */
#include "util/config.h"
#include "util/log.h"
#include "node.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS      64
#define RESTARTS_PER_MIN 5

static int run_node(rc_config_t *cfg)
{
    char err[512];
    rc_node_t *node = rc_node_new(cfg, err, sizeof(err));
    if (node == NULL) {
        RC_ERROR("main", "cannot start", "error=\"%s\"", err);
        return 1;
    }
    int rc = rc_node_run(node);
    rc_node_free(node);
    return rc;
}

/* ---- --workers: a supervisor that forks node processes ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static pid_t start_worker(rc_config_t *cfg, int index, const char *base_id)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* the parent, or -1 */
    /* The child is a node like any other; it names itself after the worker slot so its
     * messages on the bus and its metrics can be told apart. */
    char id[160], err[256];
    if (base_id[0] != '\0')
        snprintf(id, sizeof(id), "%s-w%d", base_id, index);
    else
        snprintf(id, sizeof(id), "w%d-%d", index, (int)getpid());
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc_config_set(cfg, "node-id", id, err, sizeof(err)) != 0)
        _exit(1);
    _exit(run_node(cfg));
}

static int find_slot(const pid_t *pids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return i;
    return -1;
}

/* Forwards SIGINT/SIGTERM to every worker (each drains), restarts a worker that dies on its
 * own (up to RESTARTS_PER_MIN a minute), and returns 0 when all stopped cleanly. */
static int supervise(rc_config_t *cfg)
{
    pid_t pids[MAX_WORKERS] = {0};
    int n = (int)cfg->workers, alive = 0, failures = 0, restarts = 0;
    char base_id[128];
    time_t window = time(NULL);
    struct sigaction sa;

    snprintf(base_id, sizeof(base_id), "%s", cfg->node_id);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: waitpid must wake up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 0; i < n; i++) {
        if ((pids[i] = start_worker(cfg, i, base_id)) < 0) {
            RC_ERROR("main", "cannot fork a worker", "error=\"%s\"", strerror(errno));
            stop_signal = SIGTERM;
            break;
        }
        alive++;
    }
    RC_INFO("main", "workers started", "workers=%d port=%lld", alive, (long long)cfg->port);
    bool forwarded = false;
    while (alive > 0) {
        if (stop_signal && !forwarded) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGTERM);
            forwarded = true;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        int slot = find_slot(pids, n, pid);
        if (slot < 0)
            continue;
        alive--;
        pids[slot] = 0;
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (stop_signal) {
            failures += !clean;
            continue;
        }
        /* A worker died without being asked: restart it, unless they keep dying. */
        RC_ERROR("main", "worker died", "worker=%d status=%d", slot, status);
        if (time(NULL) - window > 60) {
            window = time(NULL);
            restarts = 0;
        }
        if (++restarts > RESTARTS_PER_MIN) {
            RC_ERROR("main", "workers keep dying: stopping", NULL);
            stop_signal = SIGTERM;
            failures++;
            continue;
        }
        sleep(1);
        if ((pids[slot] = start_worker(cfg, slot, base_id)) > 0)
            alive++;
    }
    return failures == 0 ? 0 : 1;
}

/* An installed rankcast finds the demo pages and the JavaScript SDK beside itself: under
 * RC_INSTALL_DATA_REL (share/rankcast, relative to the binary's own directory, so a tree
 * installed under any prefix or moved whole still works). A binary in a build tree has no
 * such directory and keeps the defaults compiled in, the source tree's. A config file, the
 * environment and flags still override both. */
static void use_installed_data(rc_config_t *cfg)
{
    char exe[4096], dir[4096 + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    static const char *const roots[][2] = {{"web-root", "web-demo"}, {"sdk-root", "sdk/js"}};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        char err[128];
        snprintf(dir, sizeof(dir), "%s/%s/%s", exe, RC_INSTALL_DATA_REL, roots[i][1]);
        char *found = realpath(dir, NULL); /* NULL when it does not exist */
        if (found != NULL && access(found, R_OK | X_OK) == 0)
            rc_config_set(cfg, roots[i][0], found, err, sizeof(err));
        free(found);
    }
}

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
    use_installed_data(&cfg);
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
    if (cfg.workers > 1) {
        /* Workers share nothing but the port: without Kafka a user's two connections on
         * two workers would never see each other's events. */
        if (cfg.kafka[0] == '\0' || cfg.port == 0) {
            fprintf(stderr, "rankcast: --workers > 1 needs --kafka (workers meet only through "
                            "it) and a fixed --port\n");
            goto out;
        }
        /* Workers must hash user ids alike; without a configured key they share one made
         * here (other nodes of the cluster then cannot reach this machine's users). */
        if (cfg.pseudonym_key[0] == '\0') {
            unsigned char raw[32];
            char hex[65], kerr[128];
            if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
                goto out;
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", raw[i]);
            rc_config_set(&cfg, "pseudonym-key", hex, kerr, sizeof(kerr));
            RC_WARN("main",
                    "no --pseudonym-key: the workers share a random one; give every "
                    "node of a cluster the same key",
                    NULL);
        }
        rc = supervise(&cfg);
        goto out;
    }
    rc = run_node(&cfg);
out:
    rc_config_free(&cfg);
    return rc;
}
