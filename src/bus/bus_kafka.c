/* SPDX-License-Identifier: Apache-2.0 */
/* The Kafka bus (librdkafka 2.0, Kafka 3.9 brokers).
 *
 * Producer: idempotent (acks=all); a message is durable when its delivery report says so,
 * and that is when the client's `ack` goes out. message.timeout.ms=0 keeps messages while
 * the broker is away rather than failing them; queue.buffering.max.messages bounds how many
 * (past it a publish is refused and the client told to retry).
 * Consumer: every node must see every message, so each node assigns itself every partition
 * of the events and pushes topics (no consumer-group rebalancing on the critical path): the
 * pushes from the end (a push is for who is there now); the events from --kafka-replay-h
 * back, so that a node that starts learns the history the others learned and is ready once
 * it read as far as the end it saw at start; and the catalog topic from the beginning: a node
 * starts with every live catalog change.
 * Both handles keep their own threads; their queues wake the loop through a pipe
 * (rd_kafka_queue_io_event_enable) watched by uv_poll, and are served on the loop thread:
 * nothing here blocks the loop in steady state. */
#include "bus/bus.h"
#include "util/clock.h"
#include "util/config.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STARTUP_TIMEOUT_MS 8000

typedef struct pub {
    rc_bus_done_fn done;
    void *arg;
    struct pub *next_free;
    bool summary; /* a node summary (RC_BUS_OPS): best effort, not counted as traffic */
} pub_t;

typedef struct kafka_bus {
    rc_bus_t base;
    uv_loop_t *loop;
    const rc_config_t *cfg;
    char node_id[128];
    char events_topic[160], pushes_topic[160], catalog_topic[160];
    rd_kafka_t *producer, *consumer;
    rd_kafka_queue_t *pq, *cq;
    int pfd[2], cfd[2];
    uv_poll_t ppoll, cpoll;
    bool polls_started, closing;
    bool up;
    /* The catalog topic's end when this node started: not ready before it read that far. */
    int64_t catalog_end;
    bool catalog_caught_up;
    /* The events topic's history (--kafka-replay-h): each partition's end at start, and how
     * far it was read; ready once every one is read to its end. */
    int64_t *history_end, *history_next;
    int n_history;
    uint64_t history_left; /* events still to read */
    bool history_caught_up;
    char last_error[200];
    size_t queued; /* published, delivery report not yet served */
    msgpack_zone zone;
    rc_wbuf_t scratch;
    pub_t *free_pubs;
} kafka_bus_t;

/* ---- callbacks served on the loop thread ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kafka_bus_t *b = opaque;
    pub_t *p = m->_private;
    (void)rk;
    if (p != NULL && p->summary) {
        p->next_free = b->free_pubs;
        b->free_pubs = p;
        return;
    }
    b->queued--;
    rc_metrics.bus_queued = (int64_t)b->queued;
    int status = 0;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc_metrics.bus_delivery_errors++;
        RC_WARN("kafka", "delivery failed", "error=\"%s\"", rd_kafka_err2str(m->err));
        status = RC_EIO;
    } else {
        rc_metrics.bus_delivered++;
        b->up = true;
        rc_metrics.bus_up = 1;
    }
    if (p == NULL)
        return;
    if (p->done != NULL)
        p->done(p->arg, status);
    p->next_free = b->free_pubs;
    b->free_pubs = p;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_bus_t *b = opaque;
    (void)rk;
    snprintf(b->last_error, sizeof(b->last_error), "%s", reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__FATAL) {
        if (b->up)
            RC_WARN("kafka", "no broker reachable", "reason=\"%s\" queued=%zu", reason, b->queued);
        b->up = false;
        rc_metrics.bus_up = 0;
    } else {
        RC_DEBUG("kafka", "client error", "reason=\"%s\"", reason);
    }
}

/* librdkafka reports "all brokers down" but never "back up": the statistics it emits every
 * second say which brokers are connected. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    kafka_bus_t *b = opaque;
    (void)rk;
    json_t *j = json_loadb(json, len, 0, NULL);
    json_t *brokers = json_object_get(j, "brokers");
    const char *name;
    json_t *br;
    bool any_up = false;
    json_object_foreach(brokers, name, br)
    {
        const char *state = json_string_value(json_object_get(br, "state"));
        json_int_t nodeid = json_integer_value(json_object_get(br, "nodeid"));
        if (state != NULL && strcmp(state, "UP") == 0 && nodeid >= 0)
            any_up = true;
    }
    json_decref(j);
    if (any_up && !b->up)
        RC_INFO("kafka", "broker reachable", "queued=%zu", b->queued);
    b->up = any_up;
    rc_metrics.bus_up = any_up;
    return 0; /* the JSON buffer stays librdkafka's */
}

/* librdkafka's own log lines, routed into ours. With log.queue they are served by the poll
 * calls, on the loop thread. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    rc_log_level_t l = level <= 3 ? RC_LOG_ERROR : level == 4 ? RC_LOG_WARN : RC_LOG_DEBUG;
    if (l >= rc_log_level)
        rc_log_write(l, "kafka", "librdkafka", "client=%s facility=%s detail=\"%s\"",
                     rd_kafka_name(rk), fac, buf);
}

static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void on_producer_events(uv_poll_t *h, int status, int events)
{
    kafka_bus_t *b = h->data;
    (void)status, (void)events;
    drain_pipe(b->pfd[0]);
    while (rd_kafka_poll(b->producer, 0) > 0) {
    }
}

/* An event of the events topic while the history is read: whether it is history (before
 * the partition's end at start), and whether the whole history is now read. */
static bool history_read(kafka_bus_t *b, const rd_kafka_message_t *msg)
{
    int p = (int)msg->partition;
    if (strcmp(rd_kafka_topic_name(msg->rkt), b->events_topic) != 0 || p < 0 || p >= b->n_history ||
        msg->offset >= b->history_end[p])
        return false;
    if (msg->offset >= b->history_next[p]) {
        uint64_t read = (uint64_t)(msg->offset + 1 - b->history_next[p]);
        b->history_left = b->history_left > read ? b->history_left - read : 0;
        b->history_next[p] = msg->offset + 1;
    }
    bool all = true;
    for (int i = 0; i < b->n_history && all; i++)
        all = b->history_next[i] >= b->history_end[i];
    if (all) {
        b->history_caught_up = true;
        RC_INFO("kafka", "events history learned", "hours=%lld", (long long)b->cfg->kafka_replay_h);
    }
    return true;
}

static void deliver_message(kafka_bus_t *b, const rd_kafka_message_t *msg)
{
    rc_bus_msg_t m;
    msgpack_zone_clear(&b->zone);
    if (rc_bus_msg_decode(msg->payload, msg->len, &b->zone, &m) != 0) {
        RC_WARN("kafka", "undecodable message skipped", "topic=%s partition=%d offset=%lld",
                rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset);
        return;
    }
    rc_metrics.bus_consumed++;
    if (m.kind == RC_BUS_EVENT && !b->history_caught_up)
        m.history = history_read(b, msg);
    if (b->base.deliver != NULL)
        b->base.deliver(b->base.ctx, &m);
    if (!b->catalog_caught_up && (m.kind == RC_BUS_CATALOG || m.kind == RC_BUS_SETTING) &&
        msg->offset + 1 >= b->catalog_end) {
        b->catalog_caught_up = true;
        RC_INFO("kafka", "catalog changes replayed", "messages=%lld", (long long)b->catalog_end);
    }
}

/* Messages taken from the consumer queue at once, and one loop turn's share of the consume
 * path: batches until the queue is empty or CONSUME_TURN_BUDGET_US has passed, then the loop
 * serves its other work (connections, timers) and comes back. The budget is checked between
 * batches, so a turn lasts at most the budget plus one batch: a remote event of a user held
 * here re-ranks their lists (tens of µs), which is why the batch is small. A backlog (a history
 * replay, the broker back after an outage) is served in such slices. */
#define CONSUME_BATCH          64
#define CONSUME_TURN_BUDGET_US 2000

static void on_consumer_events(uv_poll_t *h, int status, int events)
{
    kafka_bus_t *b = h->data;
    rd_kafka_message_t *msgs[CONSUME_BATCH];
    (void)status, (void)events;
    drain_pipe(b->cfd[0]);
    uint64_t t0 = rc_mono_us();
    do {
        /* One call takes what is queued (up to the batch) under one lock, where polling took
         * one message per call; logs and errors queued with them are served by their
         * callbacks inside it. */
        ssize_t n = rd_kafka_consume_batch_queue(b->cq, 0, msgs, CONSUME_BATCH);
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR)
                deliver_message(b, msgs[i]);
            else if (msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                RC_DEBUG("kafka", "consumer error", "error=\"%s\"",
                         rd_kafka_message_errstr(msgs[i]));
            rd_kafka_message_destroy(msgs[i]);
        }
        if (n < CONSUME_BATCH)
            break;
    } while (rc_mono_us() - t0 < CONSUME_TURN_BUDGET_US);
    /* The queue writes the io-event fd only when it goes from empty to non-empty: what is
     * left after this slice must wake the loop again. */
    if (rd_kafka_queue_length(b->cq) > 0 && write(b->cfd[1], "1", 1) < 0) {
        /* A full pipe already wakes the loop. */
    }
}

/* ---- the interface ---- */

static int kafka_publish(rc_bus_t *base, const rc_bus_msg_t *m, rc_bus_done_fn done, void *arg)
{
    kafka_bus_t *b = (kafka_bus_t *)base;
    if (b->closing)
        return RC_ECLOSED;
    /* A summary is replaced a second later: never queue one behind an outage, where it
     * would take buffer space events need and arrive stale. */
    if (m->kind == RC_BUS_OPS && !b->up)
        return RC_EUNAVAIL;
    rc_wbuf_reset(&b->scratch);
    if (rc_bus_msg_encode(m, &b->scratch) != 0)
        return RC_ENOMEM;
    pub_t *p = b->free_pubs;
    if (p != NULL)
        b->free_pubs = p->next_free;
    else if ((p = malloc(sizeof(*p))) == NULL)
        return RC_ENOMEM;
    p->done = done;
    p->arg = arg;
    p->summary = m->kind == RC_BUS_OPS;
    /* Node summaries (RC_BUS_OPS) ride with pushes: every node reads both, and they must
     * not be replayed as events. */
    const char *topic =
        m->kind == RC_BUS_PUSH || m->kind == RC_BUS_OPS ? b->pushes_topic : b->events_topic;
    /* Keyed by user: one user's events stay in order on one partition. Catalog changes are
     * keyed by item: compaction keeps each item's last change. */
    rc_str_t key = m->user;
    char setting_key[RC_SETTING_NAME_MAX + 2];
    if (m->kind == RC_BUS_CATALOG) {
        topic = b->catalog_topic;
        key = m->item_id;
    } else if (m->kind == RC_BUS_SETTING) {
        /* "!name": no item id has a '!'; compaction keeps each setting's last value. */
        topic = b->catalog_topic;
        int n =
            snprintf(setting_key, sizeof(setting_key), "!%.*s", (int)m->setting.n, m->setting.p);
        key = (rc_str_t){setting_key, (uint32_t)n};
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        b->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((key.n ? key.p : NULL), key.n),
        RD_KAFKA_V_VALUE(rc_wbuf_data(&b->scratch), b->scratch.len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->next_free = b->free_pubs;
        b->free_pubs = p;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return RC_EFULL;
        RC_WARN("kafka", "produce failed", "error=\"%s\"", rd_kafka_err2str(err));
        return RC_EIO;
    }
    if (p->summary)
        return 0; /* not traffic: neither counted nor waited for by a drain */
    b->queued++;
    rc_metrics.bus_queued = (int64_t)b->queued;
    rc_metrics.bus_published++;
    return 0;
}

static int kafka_ready(rc_bus_t *base, char *reason, size_t reason_len)
{
    kafka_bus_t *b = (kafka_bus_t *)base;
    if (b->up && b->catalog_caught_up && b->history_caught_up)
        return 0;
    if (b->up && !b->catalog_caught_up)
        snprintf(reason, reason_len, "replaying the catalog changes of %s (%lld)", b->catalog_topic,
                 (long long)b->catalog_end);
    else if (b->up)
        snprintf(reason, reason_len, "warming (%llu events behind): learning the history of %s",
                 (unsigned long long)b->history_left, b->events_topic);
    else
        snprintf(reason, reason_len, "kafka %s unreachable: %s; %zu messages waiting",
                 b->cfg->kafka, b->last_error[0] ? b->last_error : "connecting", b->queued);
    return RC_EUNAVAIL;
}

static size_t kafka_pending(const rc_bus_t *base)
{
    return ((const kafka_bus_t *)base)->queued;
}

static void kafka_close(rc_bus_t *base)
{
    kafka_bus_t *b = (kafka_bus_t *)base;
    if (b->closing)
        return;
    b->closing = true;
    if (b->queued > 0)
        RC_WARN("kafka", "closing with undelivered messages", "messages=%zu", b->queued);
    if (b->polls_started) {
        uv_poll_stop(&b->ppoll);
        uv_poll_stop(&b->cpoll);
        uv_close((uv_handle_t *)&b->ppoll, NULL);
        uv_close((uv_handle_t *)&b->cpoll, NULL);
    }
    if (b->consumer != NULL)
        rd_kafka_consumer_close(b->consumer);
    /* What is still queued will not be delivered: report it (the callbacks release their
     * connections) before the handle goes. */
    if (b->producer != NULL) {
        rd_kafka_purge(b->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(b->producer, 0);
    }
}

static void kafka_destroy(rc_bus_t *base)
{
    kafka_bus_t *b = (kafka_bus_t *)base;
    if (b->pq != NULL)
        rd_kafka_queue_destroy(b->pq);
    if (b->cq != NULL)
        rd_kafka_queue_destroy(b->cq);
    if (b->consumer != NULL)
        rd_kafka_destroy(b->consumer);
    if (b->producer != NULL)
        rd_kafka_destroy(b->producer);
    for (int i = 0; i < 2; i++) {
        if (b->pfd[i] >= 0)
            close(b->pfd[i]);
        if (b->cfd[i] >= 0)
            close(b->cfd[i]);
    }
    while (b->free_pubs != NULL) {
        pub_t *p = b->free_pubs;
        b->free_pubs = p->next_free;
        free(p);
    }
    msgpack_zone_destroy(&b->zone);
    rc_wbuf_free(&b->scratch);
    free(b->history_end);
    free(b->history_next);
    free(b);
}

static const rc_bus_ops_t kafka_ops = {.name = "kafka",
                                       .shared = true,
                                       .publish = kafka_publish,
                                       .ready = kafka_ready,
                                       .pending = kafka_pending,
                                       .close = kafka_close,
                                       .destroy = kafka_destroy};

/* ---- start-up ---- */

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                    size_t errlen)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka setting %s=%s: %s", name, value, errstr);
        return RC_EINVAL;
    }
    return 0;
}

static rd_kafka_t *make_producer(kafka_bus_t *b, char *err, size_t errlen)
{
    char num[32], errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(num, sizeof(num), "%lld", (long long)b->cfg->kafka_buffer_messages);
    char linger[32];
    snprintf(linger, sizeof(linger), "%g", b->cfg->kafka_linger_ms);
    if (conf_set(conf, "bootstrap.servers", b->cfg->kafka, err, errlen) ||
        conf_set(conf, "client.id", b->node_id, err, errlen) ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) ||
        conf_set(conf, "acks", "all", err, errlen) ||
        conf_set(conf, "linger.ms", linger, err, errlen) ||
        conf_set(conf, "message.timeout.ms", "0", err, errlen) ||
        conf_set(conf, "queue.buffering.max.messages", num, err, errlen) ||
        conf_set(conf, "socket.nagle.disable", "true", err, errlen) ||
        conf_set(conf, "statistics.interval.ms", "1000", err, errlen) ||
        conf_set(conf, "reconnect.backoff.max.ms", "2000", err, errlen) ||
        conf_set(conf, "log.queue", "true", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, b);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static rd_kafka_t *make_consumer(kafka_bus_t *b, char *err, size_t errlen)
{
    char group[200], errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "%s%s", b->cfg->kafka_topic_prefix, b->node_id);
    if (conf_set(conf, "bootstrap.servers", b->cfg->kafka, err, errlen) ||
        conf_set(conf, "client.id", b->node_id, err, errlen) ||
        conf_set(conf, "group.id", group, err, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        conf_set(conf, "enable.partition.eof", "false", err, errlen) ||
        /* A fetch is answered as soon as anything arrived (min.bytes 1), or after 100 ms
         * of nothing: a larger min.bytes with a short wait took 40 % of the node's CPU per
         * event off at 20,000/s, but added up to the wait to every cross-node event at low
         * rates, and the short wait's empty fetches cost an idle broker 0.07 cores per node
         * (bench/run-remote-ingest.sh, docs/scaling.md). The producers' linger batches the
         * fetches instead. The prefetch is bounded at 16 MiB (about 100,000 events) rather
         * than librdkafka's 64 MiB: a history replay drains it faster than the broker fills
         * it. */
        conf_set(conf, "fetch.wait.max.ms", "100", err, errlen) ||
        conf_set(conf, "fetch.min.bytes", "1", err, errlen) ||
        conf_set(conf, "queued.max.messages.kbytes", "16384", err, errlen) ||
        conf_set(conf, "fetch.error.backoff.ms", "100", err, errlen) ||
        conf_set(conf, "socket.nagle.disable", "true", err, errlen) ||
        conf_set(conf, "reconnect.backoff.max.ms", "2000", err, errlen) ||
        conf_set(conf, "log.queue", "true", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, b);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Creates the topics (an existing topic is fine). Blocking, but only at start-up, before
 * the loop serves anyone. Returns false when the broker did not answer. The catalog topic
 * has one partition (one order of changes for every node) and is compacted: it keeps the
 * last change of each item for as long as the cluster lives. */
static bool create_topics(kafka_bus_t *b)
{
    char errstr[256];
    rd_kafka_NewTopic_t *topics[3];
    const char *names[3] = {b->events_topic, b->pushes_topic, b->catalog_topic};
    for (int i = 0; i < 3; i++)
        topics[i] = rd_kafka_NewTopic_new(names[i], i < 2 ? (int)b->cfg->kafka_partitions : 1, 1,
                                          errstr, sizeof(errstr));
    rd_kafka_NewTopic_set_config(topics[2], "cleanup.policy", "compact");
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(b->producer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opts, STARTUP_TIMEOUT_MS, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(b->producer);
    rd_kafka_CreateTopics(b->producer, topics, 3, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, STARTUP_TIMEOUT_MS + 1000);
    bool ok = false;
    if (ev != NULL) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        ok = res != NULL;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                RC_WARN("kafka", "topic not created", "topic=%s error=\"%s\"",
                        rd_kafka_topic_result_name(tr[i]), rd_kafka_err2str(e));
                ok = false;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy_array(topics, 3);
    return ok;
}

/* Waits (at start-up only, bounded) until the producer knows a leader for every partition
 * of `topic`: a topic just created has none for a moment, and the first event published
 * then would wait for the producer's next metadata refresh. Returns whether it does. */
static bool await_leaders(kafka_bus_t *b, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(b->producer, topic, NULL);
    bool ok = false;
    for (int attempt = 0; t != NULL && !ok && attempt < 40; attempt++) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(b->producer, 0, t, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ok = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                 md->topics[0].partition_cnt > 0;
            for (int p = 0; ok && p < md->topics[0].partition_cnt; p++)
                ok = md->topics[0].partitions[p].leader >= 0;
            rd_kafka_metadata_destroy(md);
        }
        if (!ok)
            usleep(100000);
    }
    if (t != NULL)
        rd_kafka_topic_destroy(t);
    return ok;
}

/* The partition count of a topic as the broker has it (it may predate this node's
 * --kafka-partitions), or the configured count when it cannot be read. */
static int partitions_of(kafka_bus_t *b, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(b->consumer, topic, NULL);
    int n = (int)b->cfg->kafka_partitions;
    if (t != NULL && rd_kafka_metadata(b->consumer, 0, t, &md, STARTUP_TIMEOUT_MS) ==
                         RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topics[0].partition_cnt > 0)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (t != NULL)
        rd_kafka_topic_destroy(t);
    return n;
}

/* The low and high watermarks of a partition. A topic created a moment ago may have no leader yet
 * (the query then fails at once): asked again for up to 4 s. */
static bool partition_end(kafka_bus_t *b, const char *topic, int partition, int64_t *lo,
                          int64_t *hi)
{
    for (int attempt = 0; attempt < 40; attempt++) {
        if (rd_kafka_query_watermark_offsets(b->consumer, topic, partition, lo, hi,
                                             STARTUP_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
            return true;
        usleep(100000);
    }
    return false;
}

/* Where each events partition's history begins (the first event of the last
 * --kafka-replay-h, by the broker's timestamps) and where it ends (the high watermark now).
 * Without an answer, a partition has no history: it is read from its end. */
static void plan_history(kafka_bus_t *b, int n, bool broker_up)
{
    b->history_end = calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
    b->history_next = calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
    b->n_history = b->history_end != NULL && b->history_next != NULL ? n : 0;
    b->history_left = 0;
    rd_kafka_topic_partition_list_t *when = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    int64_t since_ms = rc_wall_ms() - b->cfg->kafka_replay_h * 3600 * 1000;
    for (int p = 0; p < b->n_history; p++)
        rd_kafka_topic_partition_list_add(when, b->events_topic, p)->offset = since_ms;
    bool timed = broker_up && b->cfg->kafka_replay_h > 0 && b->n_history > 0 &&
                 rd_kafka_offsets_for_times(b->consumer, when, STARTUP_TIMEOUT_MS) ==
                     RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int p = 0; p < b->n_history; p++) {
        int64_t lo = 0, hi = 0;
        if (!broker_up || !partition_end(b, b->events_topic, p, &lo, &hi)) {
            b->history_end[p] = b->history_next[p] = RD_KAFKA_OFFSET_END;
            continue;
        }
        int64_t start = timed ? when->elems[p].offset : hi;
        if (start < 0 || start > hi) /* no event since then */
            start = hi;
        if (start < lo)
            start = lo;
        b->history_end[p] = hi;
        b->history_next[p] = start;
        b->history_left += (uint64_t)(hi - start);
    }
    rd_kafka_topic_partition_list_destroy(when);
    b->history_caught_up = b->history_left == 0;
    if (!b->history_caught_up)
        RC_INFO("kafka", "learning the events history before serving", "events=%llu hours=%lld",
                (unsigned long long)b->history_left, (long long)b->cfg->kafka_replay_h);
}

/* Every partition of the events topic from its history's start (plan_history), and of the
 * pushes topic from its current end. The end is read now (the high watermark) rather than left
 * to the logical END offset, which librdkafka resolves later: an event another node publishes
 * just after this node started is not skipped. With no broker answering, the logical END is
 * the fallback. */
static int assign_everything(kafka_bus_t *b, bool broker_up, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    int n_events = broker_up ? partitions_of(b, b->events_topic) : (int)b->cfg->kafka_partitions;
    plan_history(b, n_events, broker_up);
    for (int p = 0; p < n_events; p++)
        rd_kafka_topic_partition_list_add(parts, b->events_topic, p)->offset =
            p < b->n_history ? b->history_next[p] : RD_KAFKA_OFFSET_END;
    int n = broker_up ? partitions_of(b, b->pushes_topic) : (int)b->cfg->kafka_partitions;
    for (int p = 0; p < n; p++) {
        int64_t lo, hi, start = RD_KAFKA_OFFSET_END;
        if (broker_up && partition_end(b, b->pushes_topic, p, &lo, &hi))
            start = hi;
        else if (broker_up)
            RC_WARN("kafka", "partition end unknown: reading from the logical end",
                    "topic=%s partition=%d", b->pushes_topic, p);
        rd_kafka_topic_partition_list_add(parts, b->pushes_topic, p)->offset = start;
    }
    /* The catalog's changes from the beginning: a node starting now gets the live catalog,
     * and is ready once it has read as far as the end it sees now (with no broker, it cannot
     * tell: it serves with what it has, and applies the changes when they come). */
    int64_t lo = 0, hi = 0;
    b->catalog_caught_up =
        !broker_up || !partition_end(b, b->catalog_topic, 0, &lo, &hi) || hi <= lo;
    b->catalog_end = hi;
    rd_kafka_topic_partition_list_add(parts, b->catalog_topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(b->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka assign: %s", rd_kafka_err2str(e));
        return RC_EIO;
    }
    return 0;
}

static int watch_queue(kafka_bus_t *b, rd_kafka_queue_t *q, int fds[2], uv_poll_t *poll,
                       uv_poll_cb cb)
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return RC_EIO;
    rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
    if (uv_poll_init(b->loop, poll, fds[0]) != 0)
        return RC_EIO;
    poll->data = b;
    uv_poll_start(poll, UV_READABLE, cb);
    return 0;
}

rc_bus_t *rc_bus_kafka_new(uv_loop_t *loop, const rc_config_t *cfg, const char *node_id,
                           rc_bus_deliver_fn deliver, void *ctx, char *err, size_t errlen)
{
    kafka_bus_t *b = calloc(1, sizeof(*b));
    if (b == NULL || !msgpack_zone_init(&b->zone, 4096)) {
        free(b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->base.ops = &kafka_ops;
    b->base.deliver = deliver;
    b->base.ctx = ctx;
    b->loop = loop;
    b->cfg = cfg;
    b->pfd[0] = b->pfd[1] = b->cfd[0] = b->cfd[1] = -1;
    rc_wbuf_init(&b->scratch, 0);
    snprintf(b->node_id, sizeof(b->node_id), "%s", node_id);
    snprintf(b->events_topic, sizeof(b->events_topic), "%sevents", cfg->kafka_topic_prefix);
    snprintf(b->pushes_topic, sizeof(b->pushes_topic), "%spushes", cfg->kafka_topic_prefix);
    snprintf(b->catalog_topic, sizeof(b->catalog_topic), "%scatalog", cfg->kafka_topic_prefix);
    if ((b->producer = make_producer(b, err, errlen)) == NULL ||
        (b->consumer = make_consumer(b, err, errlen)) == NULL)
        goto fail;
    /* The queues signal their pipe only when they go from empty to non-empty, so the pipes
     * are wired before anything can be queued (logs, statistics, the first fetches); a queue
     * filled before would never signal again. */
    rd_kafka_set_log_queue(b->producer, NULL);
    rd_kafka_set_log_queue(b->consumer, NULL);
    rd_kafka_poll_set_consumer(b->consumer);
    b->pq = rd_kafka_queue_get_main(b->producer);
    b->cq = rd_kafka_queue_get_consumer(b->consumer);
    if (watch_queue(b, b->pq, b->pfd, &b->ppoll, on_producer_events) != 0 ||
        watch_queue(b, b->cq, b->cfd, &b->cpoll, on_consumer_events) != 0) {
        snprintf(err, errlen, "kafka: cannot watch the client queues");
        goto fail;
    }
    b->polls_started = true;
    b->up = create_topics(b) && await_leaders(b, b->events_topic) &&
            await_leaders(b, b->pushes_topic) && await_leaders(b, b->catalog_topic);
    if (!b->up)
        RC_WARN("kafka", "broker not answering at start: serving, and retrying in the background",
                "brokers=%s", cfg->kafka);
    rc_metrics.bus_up = b->up;
    /* Past this point the loop watches the queues: no failure path may free the bus. An
     * assignment refused (invalid arguments only) leaves a node that publishes but hears
     * nothing, and says so. */
    char aerr[200];
    if (assign_everything(b, b->up, aerr, sizeof(aerr)) != 0)
        RC_ERROR("kafka", "not consuming", "error=\"%s\"", aerr);
    /* Whatever start-up queued is served on the loop's first turn. */
    if (write(b->pfd[1], "1", 1) < 0 || write(b->cfd[1], "1", 1) < 0)
        RC_WARN("kafka", "cannot wake the loop", NULL);
    RC_INFO("kafka", "bus ready", "brokers=%s events=%s pushes=%s catalog=%s", cfg->kafka,
            b->events_topic, b->pushes_topic, b->catalog_topic);
    return &b->base;
fail:
    kafka_destroy(&b->base);
    return NULL;
}
