/* SPDX-License-Identifier: Apache-2.0 */
/* Settings of a rankcast node. One table (config.c) declares every setting once: its name,
 * type, default, bounds, environment variable and help. Values are merged in this order,
 * later wins: defaults, config file (--config / RANKCAST_CONFIG), environment, flags. */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_config {
    /* network */
    int64_t port;
    char *listen;
    char *node_id;
    char *web_root;
    char *sdk_root;
    /* backends: empty means the embedded default */
    char *redis;
    char *redis_prefix;
    int64_t redis_ttl_s;
    int64_t redis_buffer_bytes;
    int64_t memory_profiles_max;
    int64_t memory_profiles_ttl_s;
    char *kafka;
    char *kafka_topic_prefix;
    int64_t kafka_partitions;
    int64_t kafka_buffer_messages;
    double kafka_linger_ms;
    int64_t workers;
    int64_t loops;
    /* catalog and demo */
    char *catalog;
    bool catalog_open;
    int64_t catalog_learned_max;
    int64_t catalog_learn_users;
    int64_t max_items;
    bool demo;
    bool anonymous;
    bool consent_default;
    char *admin_token;
    /* security */
    char *jwt_secret;
    char *jwt_public_key;
    char *jwt_issuer;
    char *jwt_audience;
    int64_t jwt_leeway_s;
    char *tls_cert;
    char *tls_key;
    char *allowed_origins;
    int64_t max_conns_per_ip;
    int64_t ping_interval_s;
    int64_t pong_timeout_s;
    char *pseudonym_key;
    char *anonymous_ids; /* signed | chosen */
    char *anon_id_key;
    char *anon_id_key_previous;
    char *experiment;
    /* protocol limits */
    int64_t max_message_bytes;
    int64_t max_batch;
    int64_t max_subscriptions;
    int64_t max_k;
    int64_t events_per_sec;
    int64_t events_burst;
    int64_t hello_timeout_ms;
    int64_t outbox_max_bytes;
    int64_t rx_buffer_bytes;
    bool ws_deflate;
    int64_t ws_deflate_min_bytes;
    /* sessions and engine */
    int64_t session_idle_s;
    char *import; /* history learned at start; empty: none */
    int64_t import_session_gap_s;
    /* durability */
    char *data_dir; /* the event log; empty: none */
    char *fsync;    /* always | interval | never */
    int64_t fsync_interval_ms;
    int64_t log_segment_mb;
    int64_t log_retain_mb;
    int64_t log_retain_h;
    int64_t dedupe_restore_s;
    int64_t snapshot_interval_s;
    int64_t dedupe_users_max;
    int64_t kafka_replay_h;
    int64_t warm_listen_mb;
    int64_t warm_slice_records;
    int64_t event_time_past_s;
    int64_t event_time_future_s;
    int64_t covisit_neighbors;
    double covisit_half_life_s;
    double trending_half_life_s;
    int64_t profile_flush_ms;
    /* lifecycle and logs */
    int64_t drain_ms;
    int64_t heap_trim_s;
    char *log_level;
    char *config; /* the file read, if any */
} rc_config_t;

/** Fills `cfg` with every default. Caller frees with rc_config_free(). Returns 0 or RC_ENOMEM. */
int rc_config_init(rc_config_t *cfg);

/** Frees the strings held by `cfg` (not `cfg` itself). rc_config_free(NULL) is a no-op. */
void rc_config_free(rc_config_t *cfg);

/** Sets one setting by name ("port", "node-id" and "node_id" are both accepted) from text,
 * checking type and bounds. Returns 0, RC_ENOENT (no such setting) or RC_EINVAL/RC_ERANGE
 * with a message in `err` (borrowed buffer of `errlen` bytes). */
int rc_config_set(rc_config_t *cfg, const char *name, const char *value, char *err, size_t errlen);

/** Reads a config file of `name = value` lines (INI; `#`/`;` comments; sections ignored). */
int rc_config_load_file(rc_config_t *cfg, const char *path, char *err, size_t errlen);

/** Applies every RANKCAST_<NAME> environment variable that is set. */
int rc_config_load_env(rc_config_t *cfg, char *err, size_t errlen);

/** The whole merge for a command line: defaults are expected in `cfg` already; reads the
 * config file named by --config or RANKCAST_CONFIG, then the environment, then the flags
 * (`--name value`, `--name=value`, bare `--flag` for booleans). Sets *want_help or
 * *want_version when those flags appear. Returns 0 or a negative code with `err` set. */
int rc_config_from_args(rc_config_t *cfg, int argc, char **argv, bool *want_help,
                        bool *want_version, char *err, size_t errlen);

/** Prints the settings table (flag, environment variable, default, help) to `out`. */
void rc_config_print_help(void *out);

#endif
