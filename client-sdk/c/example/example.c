/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-client-example: connects to a rankcast server, subscribes to the "home" list,
 * clicks the items named on the command line, and prints every list the server pushes.
 * Exits when every click is acknowledged and its list has arrived (or after 15 s).
 *
 *   rankcast-client-example [--json] [--user ID] ws://127.0.0.1:8080/ws ITEM...
 */
#include <rankcast/client.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct app {
    int clicks_pending;  /* tracked and not yet acknowledged (or refused) */
    int lists_after_ack; /* lists caused by a click, seen since the start */
    int failures;
} app_t;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static const char *state_name(rcc_state_t s)
{
    switch (s) {
    case RCC_STATE_CONNECTING:
        return "connecting";
    case RCC_STATE_OPEN:
        return "open";
    case RCC_STATE_RECONNECTING:
        return "reconnecting";
    default:
        return "closed";
    }
}

static void on_state(rcc_client_t *c, rcc_state_t state, int reason, void *user)
{
    (void)user;
    printf("state: %s", state_name(state));
    if (state == RCC_STATE_OPEN)
        printf(" as user %s", rcc_client_user_id(c));
    if (reason != 0)
        printf(" (%d %s)", reason, rcc_strerror(reason));
    printf("\n");
}

static void on_recs(rcc_client_t *c, const rcc_recs_t *recs, void *user)
{
    app_t *app = user;
    (void)c;
    printf("list %s v%lld%s%s:\n", recs->surface, (long long)recs->version,
           recs->cause ? " after " : "", recs->cause ? recs->cause : "");
    for (size_t i = 0; i < recs->n_items; i++) {
        const rcc_item_t *it = &recs->items[i];
        printf("  %2zu. %-8s %-40s %s\n", i + 1, it->item, it->name ? it->name : "",
               it->why ? it->why : "");
    }
    if (recs->cause != NULL)
        app->lists_after_ack++;
}

static void on_error(rcc_client_t *c, const rcc_error_t *err, void *user)
{
    (void)c;
    (void)user;
    fprintf(stderr, "error %d %s: %s\n", err->code, err->name, err->message);
}

static void on_ack(rcc_client_t *c, const char *event_id, int status, void *arg)
{
    app_t *app = arg;
    (void)c;
    app->clicks_pending--;
    if (status == 0) {
        printf("click %s acknowledged\n", event_id);
    } else {
        printf("click %s refused: %d %s\n", event_id, status, rcc_strerror(status));
        app->failures++;
    }
}

int main(int argc, char **argv)
{
    rcc_options_t opts = {0};
    app_t app = {0};
    char err[256];
    int argi = 1;

    for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
        if (strcmp(argv[argi], "--json") == 0)
            opts.format = RCC_FORMAT_JSON;
        else if (strcmp(argv[argi], "--user") == 0 && argi + 1 < argc)
            opts.user_id = argv[++argi];
        else
            break;
    }
    if (argi >= argc) {
        fprintf(stderr, "usage: %s [--json] [--user ID] ws://host:port/ws [ITEM...]\n", argv[0]);
        return 2;
    }
    opts.url = argv[argi++];
    opts.device = RCC_DEVICE_DESKTOP;
    opts.callbacks.on_state = on_state;
    opts.callbacks.on_recs = on_recs;
    opts.callbacks.on_error = on_error;
    opts.user_data = &app;

    rcc_set_log_level(1); /* libwebsockets: errors only */
    rcc_client_t *c = rcc_client_new(&opts, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "cannot create the client: %s\n", err);
        return 1;
    }
    /* Both calls only queue: the subscription and the clicks go out once connected. */
    rcc_subscribe(c, "home", 5, NULL);
    for (; argi < argc; argi++) {
        rcc_event_t click = {.kind = RCC_KIND_CLICK, .item = argv[argi], .surface = "home"};
        int rc = rcc_track(c, &click, on_ack, &app);
        if (rc != 0)
            fprintf(stderr, "cannot track %s: %s\n", argv[argi], rcc_strerror(rc));
        else
            app.clicks_pending++;
    }
    int clicks = app.clicks_pending;

    signal(SIGINT, on_sigint);
    time_t deadline = time(NULL) + 15;
    while (!interrupted && time(NULL) < deadline) {
        if (rcc_client_service(c, 100) != 0)
            break;
        if (app.clicks_pending == 0 && app.lists_after_ack >= (clicks > 0 ? 1 : 0) &&
            rcc_client_state(c) == RCC_STATE_OPEN)
            break;
    }
    int pending = app.clicks_pending;
    rcc_client_free(c); /* fires the callbacks of clicks never acknowledged */
    return pending == 0 && app.failures == 0 ? 0 : 1;
}
