/* SPDX-License-Identifier: Apache-2.0 */
/* rankcast-remote-producer: writes remote events to a cluster's events topic at a fixed rate,
 * in the bus encoding a node publishes (rc_bus_msg_encode, keyed by user), so that one node's
 * remote-ingestion rate can be measured without a second node and its clients as the limit
 * (bench/run-remote-ingest.sh). Prints one JSON line: what was sent, delivered and its CPU. */
#include "bus/bus.h"
#include "util/clock.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_ITEMS     200000
#define RECENT_PER    5
#define MAX_PRODUCERS 32 /* recent items each event carries (a node sends up to RC_BUS_RECENT) */

typedef struct {
    const char *bootstrap, *topic, *catalog, *compression;
    double rate, duration_s, linger_ms;
    uint32_t users, producers;
    long batch_messages;
} options_t;

static volatile sig_atomic_t stop_requested;
static uint64_t delivered, failed;
/* Publish -> delivery report of each event (µs): how long the broker took to have it, the
 * part of a node's lag that is not the consuming node's. */
#define MAX_SAMPLES 4000000
static uint32_t *ack_us;
static size_t n_ack;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failed++;
        return;
    }
    delivered++;
    uint64_t sent_us = (uint64_t)(uintptr_t)m->_private, now = rc_mono_us();
    if (ack_us != NULL && n_ack < MAX_SAMPLES && sent_us > 0 && now >= sent_us)
        ack_us[n_ack++] = (uint32_t)(now - sent_us > UINT32_MAX ? UINT32_MAX : now - sent_us);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double ack_quantile_ms(double q)
{
    return n_ack == 0 ? -1 : ack_us[(size_t)(q * (double)(n_ack - 1))] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr, "usage: rankcast-remote-producer --bootstrap HOST:PORT --topic T --rate N\n"
                    "       [--duration S] [--users N] [--catalog FILE.jsonl] [--linger-ms MS]\n"
                    "       [--compression none|lz4|...] [--batch-messages N]\n"
                    "       [--producers N (each a node's share of the rate)]\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    *o = (options_t){.duration_s = 10,
                     .users = 10000,
                     .linger_ms = 1,
                     .compression = "none",
                     .batch_messages = 10000,
                     .producers = 1};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--bootstrap") == 0)
            o->bootstrap = v;
        else if (strcmp(k, "--topic") == 0)
            o->topic = v;
        else if (strcmp(k, "--catalog") == 0)
            o->catalog = v;
        else if (strcmp(k, "--compression") == 0)
            o->compression = v;
        else if (strcmp(k, "--rate") == 0)
            o->rate = atof(v);
        else if (strcmp(k, "--duration") == 0)
            o->duration_s = atof(v);
        else if (strcmp(k, "--linger-ms") == 0)
            o->linger_ms = atof(v);
        else if (strcmp(k, "--users") == 0)
            o->users = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--producers") == 0)
            o->producers = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--batch-messages") == 0)
            o->batch_messages = strtol(v, NULL, 10);
        else
            return -1;
    }
    if (argc % 2 == 0 || o->bootstrap == NULL || o->topic == NULL || o->rate <= 0 ||
        o->duration_s <= 0 || o->users == 0 || o->batch_messages <= 0 || o->producers == 0 ||
        o->producers > MAX_PRODUCERS)
        return -1;
    return 0;
}

/* The "id" values of a JSONL catalog (one object a line), or i0..i999 without one. */
static uint32_t load_items(const char *path, char (*ids)[65])
{
    uint32_t n = 0;
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    char line[65536];
    while (f != NULL && n < MAX_ITEMS && fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "\"id\"");
        if (p == NULL || (p = strchr(p + 4, '"')) == NULL)
            continue;
        const char *end = strchr(++p, '"');
        if (end == NULL || end == p || end - p > 64)
            continue;
        memcpy(ids[n], p, (size_t)(end - p));
        ids[n++][end - p] = '\0';
    }
    if (f != NULL)
        fclose(f);
    for (; n == 0 || (path == NULL && n < 1000); n++)
        snprintf(ids[n], sizeof(ids[n]), "i%" PRIu32, n);
    return n;
}

static rd_kafka_t *make_producer(const options_t *o)
{
    char errstr[256], linger[32], batch[32];
    snprintf(linger, sizeof(linger), "%g", o->linger_ms);
    snprintf(batch, sizeof(batch), "%ld", o->batch_messages);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", o->bootstrap},
                                 {"enable.idempotence", "true"},
                                 {"acks", "all"},
                                 {"linger.ms", linger},
                                 {"batch.num.messages", batch},
                                 {"compression.codec", o->compression},
                                 {"queue.buffering.max.messages", "1000000"},
                                 {"socket.nagle.disable", "true"}};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "remote-producer: %s=%s: %s\n", settings[i][0], settings[i][1], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "remote-producer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Event number `seq`: a user of --users, items drawn from the catalog, kinds view, click and
 * cart in turn, the user's "recent" items as a node would send them. Returns the user's number. */
static uint32_t fill_event(uint64_t seq, uint32_t users, char (*items)[65], uint32_t n_items,
                           uint64_t *rng, char *user, char *id, rc_bus_msg_t *m)
{
    static const rc_event_kind_t kinds[] = {RC_EV_VIEW, RC_EV_CLICK, RC_EV_CART};
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    uint32_t u = (uint32_t)(*rng % users);
    snprintf(user, 32, "bench-u%" PRIu32, u);
    snprintf(id, 32, "rp-%" PRIu64, seq);
    const char *item = items[(*rng >> 20) % n_items];
    *m = (rc_bus_msg_t){.kind = RC_BUS_EVENT,
                        .origin_node = {"bench-producer", 14},
                        .user = {user, (uint32_t)strlen(user)},
                        .ev = {.id = {id, (uint32_t)strlen(id)},
                               .item = {item, (uint32_t)strlen(item)},
                               .kind = kinds[seq % 3]},
                        .received_ms = rc_wall_ms(),
                        .n_recent = RECENT_PER};
    for (int i = 0; i < RECENT_PER; i++) {
        const char *r = items[(*rng >> (8 + i * 8)) % n_items];
        m->recent[i] = (rc_str_t){r, (uint32_t)strlen(r)};
        m->recent_w[i] = 1.0f;
    }
    return u;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_options(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    static char items[MAX_ITEMS][65];
    uint32_t n_items = load_items(o.catalog, items);
    /* Several producers stand for several nodes, each publishing its share: a node's batches
     * hold only its own events, and that is what the broker sees. */
    rd_kafka_t *rk[MAX_PRODUCERS];
    for (uint32_t i = 0; i < o.producers; i++)
        if ((rk[i] = make_producer(&o)) == NULL)
            return 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc_wbuf_t buf;
    rc_wbuf_init(&buf, 0);
    uint64_t rng = 0x9e3779b97f4a7c15ull, sent = 0, refused = 0;
    char user[32], id[32];
    /* Before the clock starts, each producer gets its idempotent producer id and the topic's
     * metadata (seconds on a broker that just started): one event each, delivered. Otherwise
     * the first second's events would wait in the producers and count as the node's lag. */
    for (uint32_t i = 0; i < o.producers; i++) {
        char warm_id[32];
        snprintf(warm_id, sizeof(warm_id), "rp-warmup-%" PRIu32, i);
        snprintf(user, sizeof(user), "bench-u%" PRIu32, i);
        rc_bus_msg_t m = {.kind = RC_BUS_EVENT,
                          .origin_node = {"bench-producer", 14},
                          .user = {user, (uint32_t)strlen(user)},
                          .ev = {.id = {warm_id, (uint32_t)strlen(warm_id)}, .kind = RC_EV_VIEW},
                          .received_ms = rc_wall_ms()};
        rc_wbuf_reset(&buf);
        if (rc_bus_msg_encode(&m, &buf) != 0 ||
            rd_kafka_producev(rk[i], RD_KAFKA_V_TOPIC(o.topic), RD_KAFKA_V_KEY(user, m.user.n),
                              RD_KAFKA_V_VALUE(rc_wbuf_data(&buf), buf.len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            rd_kafka_flush(rk[i], 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "remote-producer: the broker did not take a first event\n");
            return 1;
        }
    }
    uint64_t t0 = rc_mono_us(), end = t0 + (uint64_t)(o.duration_s * 1e6);
    double cpu0 = cpu_s();
    ack_us = malloc(MAX_SAMPLES * sizeof(*ack_us));
    n_ack = 0; /* the warm-up's reports are not measured */
    /* Open loop: every millisecond, whatever the schedule says is due by now. */
    for (uint64_t now = t0; now < end && !stop_requested; now = rc_mono_us()) {
        uint64_t due = (uint64_t)((double)(now - t0) * o.rate / 1e6);
        while (sent + refused < due) {
            rc_bus_msg_t m;
            uint32_t u = fill_event(sent + refused, o.users, items, n_items, &rng, user, id, &m);
            rc_wbuf_reset(&buf);
            if (rc_bus_msg_encode(&m, &buf) != 0)
                return 1;
            if (rd_kafka_producev(rk[u % o.producers], RD_KAFKA_V_TOPIC(o.topic),
                                  RD_KAFKA_V_KEY(user, m.user.n),
                                  RD_KAFKA_V_VALUE(rc_wbuf_data(&buf), buf.len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE((void *)(uintptr_t)rc_mono_us()),
                                  RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR)
                sent++;
            else
                refused++;
        }
        for (uint32_t i = 0; i < o.producers; i++)
            rd_kafka_poll(rk[i], 0);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    double elapsed_s = (double)(rc_mono_us() - t0) / 1e6;
    for (uint32_t i = 0; i < o.producers; i++)
        rd_kafka_flush(rk[i], 15000);
    double cpu = cpu_s() - cpu0;
    if (ack_us != NULL)
        qsort(ack_us, n_ack, sizeof(*ack_us), cmp_u32);
    printf("{\"target_per_s\":%g,\"producers\":%" PRIu32 ",\"sent\":%" PRIu64
           ",\"refused\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64
           ",\"seconds\":%.3f,\"sent_per_s\":%.1f,\"cpu_s\":%.3f,\"items\":%" PRIu32
           ",\"ack_p50_ms\":%.2f,\"ack_p99_ms\":%.2f}\n",
           o.rate, o.producers, sent, refused, delivered, failed, elapsed_s,
           (double)sent / elapsed_s, cpu, n_items, ack_quantile_ms(0.5), ack_quantile_ms(0.99));
    for (uint32_t i = 0; i < o.producers; i++)
        rd_kafka_destroy(rk[i]);
    rc_wbuf_free(&buf);
    free(ack_us);
    return failed == 0 && refused == 0 ? 0 : 1;
}
