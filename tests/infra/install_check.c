/* SPDX-License-Identifier: Apache-2.0 */
/* Built by tests/infra/install.sh against an installed rankcast-client (pkg-config), not the
 * source tree: connects to the installed server, subscribes to "home" and prints the number of
 * items of the first list it receives. Exits 0 on a list, 1 after 10 s without one. */
#include <rankcast/client.h>

#include <stdio.h>
#include <time.h>

static int items = -1;

static void on_recs(rcc_client_t *c, const rcc_recs_t *recs, void *user)
{
    (void)c;
    (void)user;
    items = (int)recs->n_items;
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc != 2) {
        fprintf(stderr, "usage: install_check ws://HOST:PORT/ws\n");
        return 2;
    }
    rcc_options_t opts = {0};
    opts.url = argv[1];
    opts.callbacks.on_recs = on_recs;
    rcc_client_t *c = rcc_client_new(&opts, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "rcc_client_new: %s\n", err);
        return 1;
    }
    if (rcc_subscribe(c, "home", 5, NULL) != 0) {
        fprintf(stderr, "rcc_subscribe failed\n");
        rcc_client_free(c);
        return 1;
    }
    time_t deadline = time(NULL) + 10;
    while (items < 0 && time(NULL) < deadline)
        rcc_client_service(c, 100);
    printf("state=%s items=%d\n", rcc_client_state(c) == RCC_STATE_OPEN ? "open" : "other", items);
    rcc_client_free(c);
    return items > 0 ? 0 : 1;
}
