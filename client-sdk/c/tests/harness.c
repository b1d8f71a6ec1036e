/* SPDX-License-Identifier: Apache-2.0 */
/* Test harness of the client library (see harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *rcct_server_bin(void)
{
    const char *bin = getenv("RANKCAST_BIN");
    if (bin == NULL || bin[0] == '\0')
        bin = RCCT_DEFAULT_SERVER_BIN;
    if (access(bin, X_OK) != 0) {
        fprintf(stderr,
                "SKIP: rankcast server binary not found at %s: build the server "
                "(cmake --build build) or set RANKCAST_BIN\n",
                bin);
        return NULL;
    }
    return bin;
}

int rcct_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool port_accepts(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The server reads RANKCAST_* settings from its environment: the child gets none of them,
 * so the test's own environment cannot configure it behind the test's back. */
static void scrub_environment(void)
{
    for (char **e = environ; *e != NULL;) {
        if (strncmp(*e, "RANKCAST_", 9) == 0) {
            char name[128];
            size_t n = strcspn(*e, "=");
            snprintf(name, sizeof(name), "%.*s", (int)n, *e);
            unsetenv(name);
        } else {
            e++;
        }
    }
}

int rcct_server_start(rcct_server_t *s)
{
    const char *bin = rcct_server_bin();
    char port[16];
    const char *argv[40];
    int argc = 0;
    if (bin == NULL)
        return -1;
    if (s->port == 0)
        s->port = rcct_free_port();
    snprintf(port, sizeof(port), "%d", s->port);
    argv[argc++] = bin;
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--catalog";
    argv[argc++] = RCCT_CATALOG;
    argv[argc++] = "--log-level";
    argv[argc++] = "warn";
    argv[argc++] = "--anonymous";
    argv[argc++] = "--anonymous-ids"; /* the tests name their users; extra args may say signed */
    argv[argc++] = "chosen";
    for (int i = 0; i < 16 && s->extra[i] != NULL; i++)
        argv[argc++] = s->extra[i];
    argv[argc] = NULL;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        scrub_environment();
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "rankcast exited during start (status %d)\n", status);
            s->pid = 0;
            return -1;
        }
        if (port_accepts(s->port))
            return 0;
        sleep_ms(25);
    }
    rcct_server_stop(s, SIGKILL);
    return -1;
}

int rcct_server_stop(rcct_server_t *s, int sig)
{
    int status = -1;
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    return status;
}

const char *rcct_url(const rcct_server_t *s, const char *scheme, char *buf, size_t len)
{
    snprintf(buf, len, "%s://127.0.0.1:%d/ws", scheme, s->port);
    return buf;
}

int rcct_http(int port, const char *method, const char *path, const char *token, const char *body,
              char *resp, size_t resp_len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[2048], auth[160] = "";
    size_t got = 0;
    int status = -1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (token != NULL)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, auth, body ? strlen(body) : 0, body ? body : "");
    if (n > 0 && (size_t)n < sizeof(req) && write(fd, req, (size_t)n) == n) {
        ssize_t r;
        while (got + 1 < resp_len && (r = read(fd, resp + got, resp_len - 1 - got)) > 0)
            got += (size_t)r;
        resp[got] = '\0';
        sscanf(resp, "HTTP/1.1 %d", &status);
    }
    close(fd);
    return status;
}

/* ---- recorder ---- */

static void on_state(rcc_client_t *c, rcc_state_t state, int reason, void *user)
{
    rcct_rec_t *r = user;
    (void)c;
    if (r->n_states < RCCT_MAX) {
        r->states[r->n_states] = state;
        r->reasons[r->n_states++] = reason;
    }
    r->opens += state == RCC_STATE_OPEN;
    r->reconnects += state == RCC_STATE_RECONNECTING;
}

/* FNV-1a over `s` (NULL hashes apart from ""), continuing from `h`. */
static uint64_t hash_str(uint64_t h, const char *s)
{
    h = (h ^ (s == NULL)) * 1099511628211ULL;
    for (; s != NULL && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

/* What the application sees of a list, hashed: two lists alike in every field match. */
static uint64_t list_signature(const rcc_recs_t *recs)
{
    uint64_t h = 14695981039346656037ULL;
    char num[64];
    for (size_t i = 0; i < recs->n_items; i++) {
        const rcc_item_t *it = &recs->items[i];
        const rcc_reason_t *r = &it->reason;
        snprintf(num, sizeof(num), "%.4f %d %.4f %lld", it->score, it->has_price,
                 it->has_price ? it->price : 0.0, (long long)r->age_s);
        const char *parts[] = {it->item,     it->src,     it->why,          it->name,
                               it->category, num,         r->code,          r->item,
                               r->item_name, r->category, r->category_name, r->segment,
                               r->locale,    r->kind};
        for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++)
            h = hash_str(h, parts[k]);
    }
    return h;
}

static void on_recs(rcc_client_t *c, const rcc_recs_t *recs, void *user)
{
    rcct_rec_t *r = user;
    (void)c;
    if (r->n_recs >= RCCT_MAX)
        return;
    rcct_recs_t *x = &r->recs[r->n_recs++];
    snprintf(x->surface, sizeof(x->surface), "%s", recs->surface);
    snprintf(x->cause, sizeof(x->cause), "%s", recs->cause ? recs->cause : "");
    x->version = recs->version;
    x->n_items = recs->n_items;
    x->opens_before = r->opens;
    if (recs->n_items > 0) {
        snprintf(x->first_item, sizeof(x->first_item), "%s", recs->items[0].item);
        snprintf(x->first_category, sizeof(x->first_category), "%s",
                 recs->items[0].category ? recs->items[0].category : "");
        snprintf(x->first_reason, sizeof(x->first_reason), "%s",
                 recs->items[0].reason.code ? recs->items[0].reason.code : "");
    }
    for (size_t i = 0; i < recs->n_items; i++)
        x->n_reasons += recs->items[i].reason.code != NULL;
    x->sig = list_signature(recs);
}

static void on_push(rcc_client_t *c, const char *id, const char *topic, const char *data,
                    void *user)
{
    rcct_rec_t *r = user;
    (void)c;
    (void)id;
    snprintf(r->push_topic, sizeof(r->push_topic), "%s", topic);
    snprintf(r->push_data, sizeof(r->push_data), "%s", data);
    r->n_pushes++;
}

static void on_error(rcc_client_t *c, const rcc_error_t *err, void *user)
{
    rcct_rec_t *r = user;
    (void)c;
    if (r->n_errors < RCCT_MAX)
        r->errors[r->n_errors++] = err->code;
    snprintf(r->last_error, sizeof(r->last_error), "%d %s: %s", err->code, err->name, err->message);
}

void rcct_rec_attach(rcct_rec_t *r, rcc_options_t *o)
{
    memset(r, 0, sizeof(*r));
    o->callbacks.on_state = on_state;
    o->callbacks.on_recs = on_recs;
    o->callbacks.on_push = on_push;
    o->callbacks.on_error = on_error;
    o->user_data = r;
}

void rcct_on_ack(rcc_client_t *c, const char *event_id, int status, void *arg)
{
    rcct_rec_t *r = arg;
    (void)c;
    if (r->n_acks >= RCCT_MAX)
        return;
    snprintf(r->ack_ids[r->n_acks], sizeof(r->ack_ids[0]), "%s", event_id);
    r->ack_status[r->n_acks++] = status;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool rcct_pump(rcc_client_t *c, rcct_rec_t *r, int timeout_ms,
               bool (*done)(const rcct_rec_t *r, const void *arg), const void *arg)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!done(r, arg)) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return false;
        int rc = rcc_client_service(c, left > 50 ? 50 : (int)left);
        if (rc == RCC_ECLOSED)
            return done(r, arg);
        assert_int_equal(rc, 0);
    }
    return true;
}

bool rcct_opened(const rcct_rec_t *r, const void *n_opens)
{
    return r->opens >= *(const int *)n_opens;
}

bool rcct_in_state(const rcct_rec_t *r, const void *state)
{
    return r->n_states > 0 && r->states[r->n_states - 1] == *(const rcc_state_t *)state;
}

bool rcct_acked(const rcct_rec_t *r, const void *n_acks)
{
    return r->n_acks >= *(const int *)n_acks;
}

bool rcct_recs_for(const rcct_rec_t *r, const void *surface)
{
    for (int i = 0; i < r->n_recs; i++)
        if (strcmp(r->recs[i].surface, surface) == 0)
            return true;
    return false;
}

bool rcct_recs_caused_by(const rcct_rec_t *r, const void *event_id)
{
    for (int i = 0; i < r->n_recs; i++)
        if (strcmp(r->recs[i].cause, event_id) == 0)
            return true;
    return false;
}

bool rcct_has_error(const rcct_rec_t *r, const void *code)
{
    for (int i = 0; i < r->n_errors; i++)
        if (r->errors[i] == *(const int *)code)
            return true;
    return false;
}

int rcct_ack_status(const rcct_rec_t *r, const char *id)
{
    for (int i = 0; i < r->n_acks; i++)
        if (strcmp(r->ack_ids[i], id) == 0)
            return r->ack_status[i];
    return INT32_MIN;
}

int rcct_ack_count(const rcct_rec_t *r, const char *id)
{
    int n = 0;
    for (int i = 0; i < r->n_acks; i++)
        n += strcmp(r->ack_ids[i], id) == 0;
    return n;
}

int rcct_answers_after_open(const rcct_rec_t *r, const char *surface, int opens)
{
    int n = 0;
    for (int i = 0; i < r->n_recs; i++)
        n += r->recs[i].opens_before >= opens && r->recs[i].cause[0] == '\0' &&
             strcmp(r->recs[i].surface, surface) == 0;
    return n;
}

void rcct_options(rcc_options_t *o, rcct_rec_t *r, const char *url, rcc_format_t fmt)
{
    memset(o, 0, sizeof(*o));
    rcct_rec_attach(r, o);
    o->url = url;
    o->format = fmt;
    o->reconnect_base_ms = 50;
    o->reconnect_cap_ms = 400;
    o->retry_base_ms = 50;
    o->retry_cap_ms = 400;
    /* RCCT_LWS_LOG=1..3 shows libwebsockets' own log when a test needs explaining. */
    rcc_set_log_level(getenv("RCCT_LWS_LOG") ? atoi(getenv("RCCT_LWS_LOG")) : 0);
}
