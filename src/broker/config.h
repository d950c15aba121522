/*
 * config.h - the broker's configuration: what sluiced reads from a
 * server.properties file, from the environment and from --override flags,
 * and how it is reported (DescribeConfigs) and documented.
 *
 * The module owns the broker key table, one row per key (config_def, see
 * config/schema.h), and broker_config, the typed struct those rows fill.
 * Everything is driven by the rows: parsing, validation, the typed fields,
 * synonym resolution, the enumeration DescribeConfigs needs and
 * docs/configuration.md (config_write_docs()). Adding a key means adding a
 * row and, if code reads it, a struct field. The topic keys, the row
 * vocabulary and the properties syntax live one layer down, in src/config
 * (which never includes broker/), so that the controller can validate topic
 * configuration without this loading code; this header includes them, so
 * broker code needs only this one.
 *
 * The files, one concept each:
 *   config_keys.c       the broker key table and its lookups; synonyms
 *   config_load.c       sources (file, environment, overrides) and the
 *                       resolution of the rows into broker_config
 *   config_listeners.c  listeners / advertised.listeners and the protocol map
 *   config_topic.c      the broker's defaults for topic keys (topic synonyms)
 *   config_describe.c   DescribeConfigs: entries, sources, synonyms
 *   config_docs.c       docs/configuration.md
 *
 * Sources and precedence, lowest first: table default < file < environment
 * (SLUICE_LOG_LEVEL for log.level only) < --override. Within one source the
 * last occurrence of a key wins. Synonyms (keys that set the same thing, e.g.
 * log.retention.hours|minutes|ms) are resolved by rank, not by order: the
 * most precise explicitly set key wins wherever it was set, as in Kafka.
 *
 * Errors: an invalid value is an error that names the key, the value and what
 * is allowed; the broker must refuse to start. An unknown key is a warning.
 *
 * Invariants after a successful config_load()/config_finish(): every typed
 * field holds a value inside its declared range, n_listeners >= 1, every
 * listener is PLAINTEXT or SSL (controller and inter-broker listeners
 * PLAINTEXT), log_dirs.n >= 1. Memory for strings and lists lives
 * in the config's own arena and is released by config_free().
 */
#ifndef SLUICE_BROKER_CONFIG_H
#define SLUICE_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/props.h"
#include "config/schema.h"
#include "config/topic_config.h"
#include "core/arena.h"
#include "core/log.h"

/* ---- limits ---------------------------------------------------------------------- */

/* (Value, list, line and message limits: config/schema.h, config/props.h.) */
#define CONFIG_FILE_MAX          (1u << 20) /* bytes in a properties file */
#define CONFIG_LISTENERS_MAX     8
#define CONFIG_LISTENER_KEYS_MAX 64 /* listener.name.<name>.<key> entries */
#define CONFIG_OVERRIDES_MAX     256
#define CONFIG_KEYS_MAX          160 /* rows in the broker table (checked at compile time) */
#define CONFIG_ARENA_LIMIT       (8u << 20)

/* Where a broker key's current text came from. All but DEFAULT are reported
 * as STATIC_BROKER_CONFIG, as Kafka does for server.properties and overrides. */
typedef enum config_origin {
    CONFIG_ORIGIN_DEFAULT = 0,
    CONFIG_ORIGIN_FILE,
    CONFIG_ORIGIN_ENV,
    CONFIG_ORIGIN_OVERRIDE,
} config_origin;

/* Bits of process.roles. */
#define CONFIG_ROLE_BROKER 0x1u
/* group.coordinator.rebalance.protocols bits. */
#define CONFIG_GROUP_PROTOCOL_CLASSIC  0x1u
#define CONFIG_GROUP_PROTOCOL_CONSUMER 0x2u
#define CONFIG_ROLE_CONTROLLER         0x2u

typedef enum config_protocol {
    CONFIG_PROTOCOL_PLAINTEXT = 0,
    CONFIG_PROTOCOL_SSL,
    CONFIG_PROTOCOL_SASL_PLAINTEXT,
    CONFIG_PROTOCOL_SASL_SSL,
} config_protocol;

#define CONFIG_LISTENER_NAME_MAX 64
#define CONFIG_HOST_MAX          256

/* One entry of listeners / advertised.listeners: NAME://host:port. */
typedef struct config_listener {
    char name[CONFIG_LISTENER_NAME_MAX]; /* upper-cased */
    config_protocol protocol;
    char host[CONFIG_HOST_MAX]; /* "" binds every interface; IPv6 without brackets */
    uint16_t port;              /* 0 lets the kernel choose (tests) */
    bool controller;            /* named in controller.listener.names: not for clients */
} config_listener;

/* ---- the broker configuration ---------------------------------------------------- */

typedef struct broker_config {
    /* identity and listeners */
    int32_t node_id; /* node.id, or broker.id */
    unsigned process_roles;
    const char *broker_rack; /* NULL if unset */
    config_listener listeners[CONFIG_LISTENERS_MAX];
    int n_listeners;
    config_listener advertised[CONFIG_LISTENERS_MAX]; /* defaults to listeners */
    int n_advertised;
    const char *listener_security_protocol_map;
    const char *inter_broker_listener_name; /* NULL if unset */
    config_list controller_listener_names;
    config_list controller_quorum_voters;
    config_list controller_quorum_bootstrap_servers;
    int32_t quorum_election_timeout_ms;       /* controller.quorum.election.timeout.ms */
    int32_t quorum_fetch_timeout_ms;          /* controller.quorum.fetch.timeout.ms */
    int32_t quorum_election_backoff_max_ms;   /* controller.quorum.election.backoff.max.ms */
    int32_t quorum_request_timeout_ms;        /* controller.quorum.request.timeout.ms */
    int32_t broker_heartbeat_interval_ms;     /* broker.heartbeat.interval.ms */
    int32_t broker_session_timeout_ms;        /* broker.session.timeout.ms */
    int32_t replica_fetch_max_bytes;          /* replica.fetch.max.bytes */
    int32_t replica_fetch_response_max_bytes; /* replica.fetch.response.max.bytes */
    int32_t replica_fetch_wait_max_ms;        /* replica.fetch.wait.max.ms */
    int32_t replica_fetch_min_bytes;          /* replica.fetch.min.bytes */
    int32_t replica_fetch_backoff_ms;         /* replica.fetch.backoff.ms */
    int64_t replica_lag_time_max_ms;          /* replica.lag.time.max.ms */

    /* topics and logs */
    config_list log_dirs; /* log.dirs, or log.dir */
    int32_t num_partitions;
    int32_t default_replication_factor;
    bool auto_create_topics_enable;
    bool delete_topic_enable;
    int64_t log_retention_ms;    /* -1: unlimited */
    int64_t log_retention_bytes; /* -1: unlimited */
    int32_t log_segment_bytes;
    int64_t log_roll_ms;
    int64_t log_roll_jitter_ms;
    int64_t log_flush_interval_messages;
    int64_t log_flush_interval_ms; /* log.flush.scheduler.interval.ms when null */
    int64_t log_flush_scheduler_interval_ms;
    int32_t log_flush_offset_checkpoint_interval_ms;
    int32_t log_flush_start_offset_checkpoint_interval_ms;
    int64_t log_retention_check_interval_ms;
    int64_t log_segment_delete_delay_ms;
    int32_t log_index_interval_bytes;
    int32_t log_index_size_max_bytes;
    bool log_preallocate;
    int32_t num_recovery_threads_per_data_dir;
    unsigned log_cleanup_policy;    /* CONFIG_CLEANUP_* bits */
    int log_message_timestamp_type; /* config_timestamp_type */
    int64_t log_message_timestamp_before_max_ms;
    int64_t log_message_timestamp_after_max_ms;
    bool log_cleaner_enable;
    int32_t log_cleaner_threads;
    int64_t log_cleaner_delete_retention_ms;
    double log_cleaner_min_cleanable_ratio;
    int64_t log_cleaner_min_compaction_lag_ms;
    int64_t log_cleaner_max_compaction_lag_ms;
    int64_t log_cleaner_backoff_ms;
    int64_t log_cleaner_dedupe_buffer_size;
    double log_cleaner_io_max_bytes_per_second;
    int compression_type; /* config_compression */
    int32_t compression_gzip_level;
    int32_t compression_lz4_level;
    int32_t compression_zstd_level;
    int32_t message_max_bytes;
    int32_t min_insync_replicas;
    bool unclean_leader_election_enable;
    bool auto_leader_rebalance_enable;
    int64_t leader_imbalance_check_interval_ms; /* leader.imbalance.check.interval.seconds */
    int32_t leader_imbalance_per_broker_percentage;

    /* network */
    int32_t socket_request_max_bytes;
    int32_t socket_send_buffer_bytes;
    int32_t socket_receive_buffer_bytes;
    int32_t socket_listen_backlog_size;
    int32_t num_network_threads;
    int32_t num_io_threads;
    int32_t queued_max_requests;
    int64_t queued_max_request_bytes;
    int32_t max_connections;
    int32_t max_connections_per_ip;
    const char *max_connections_per_ip_overrides; /* "" if none */
    const char *authorizer_class_name;            /* "" for none, else ACL_AUTHORIZER_CLASS */
    const char *super_users;                      /* "" if none */
    bool allow_everyone_if_no_acl_found;
    int32_t quota_window_num;          /* quota.window.num */
    int32_t quota_window_size_seconds; /* quota.window.size.seconds */
    int64_t connections_max_idle_ms;
    int32_t fetch_max_bytes;

    /* the metadata log */
    int64_t metadata_snapshot_bytes;       /* metadata.log.max.record.bytes.between.snapshots */
    int64_t metadata_snapshot_interval_ms; /* metadata.log.max.snapshot.interval.ms */
    int32_t metadata_segment_bytes;        /* metadata.log.segment.bytes */

    /* consumer groups and offsets */
    int32_t offsets_topic_num_partitions;
    int32_t offsets_topic_replication_factor;
    int32_t offsets_topic_segment_bytes;
    int64_t offsets_retention_ms;
    int32_t group_initial_rebalance_delay_ms;
    int32_t group_min_session_timeout_ms;
    int32_t group_max_session_timeout_ms;
    int32_t group_max_size;
    int32_t group_consumer_session_timeout_ms;
    int32_t group_consumer_heartbeat_interval_ms;
    int32_t group_consumer_max_size;
    config_list group_consumer_assignors;
    unsigned group_coordinator_rebalance_protocols; /* bits of group_protocol_values */

    /* transactions and idempotence */
    int32_t transaction_state_log_replication_factor;
    int32_t transaction_state_log_min_isr;
    int32_t transaction_state_log_num_partitions;
    int32_t transactional_id_expiration_ms;
    int32_t transaction_max_timeout_ms;
    int32_t transaction_abort_interval_ms;
    int32_t producer_id_expiration_ms;

    /* logging */
    int log_level; /* log_level */

    /* Sluice's own */
    bool fetch_zero_copy;
    int64_t conversion_max_bytes_per_request;
    int64_t conversion_max_bytes_per_second;
    int64_t request_work_max_ms;
    int32_t max_inflight_requests_per_connection;
    int64_t connection_max_buffered_bytes;
    int64_t request_read_timeout_ms;
    int64_t queued_max_response_bytes; /* -1: no limit */

    /* metrics and the console */
    const char *http_listeners; /* "" disables */
    int32_t http_max_connections;
    int32_t http_max_connections_per_ip;
    int32_t http_request_max_bytes;
    int32_t http_connection_timeout_ms;
    int64_t http_response_max_bytes;
    bool metrics_enable;
    int32_t metrics_topics_max;
    int32_t metrics_partition_series_max;
    int32_t metrics_group_lag_series_max;
    int64_t request_slow_log_ms; /* 0: off */

    /* ---- private: per-key state, indexed like the broker table ---- */
    struct config_slot {
        const char *text; /* current text; NULL = default (or null) */
        uint8_t origin;   /* config_origin */
    } slot_[CONFIG_KEYS_MAX];
    /* listener.name.<listener>.<key> values: the key's text for that
     * listener alone (config_listener_value). */
    struct config_listener_key {
        char listener[CONFIG_LISTENER_NAME_MAX]; /* upper-cased */
        char mech[16];                           /* lower-cased SASL mechanism, "" for none */
        int index;                               /* of the key in the broker table */
        const char *text;
    } lkeys_[CONFIG_LISTENER_KEYS_MAX];
    int n_lkeys_;
    arena mem_;
    int warnings_; /* unknown keys and similar, for tests */
    char last_warning_[256];
} broker_config;

/* ---- loading (config_load.c) ----------------------------------------------------- */

/* Prepares c with every key at its default. Must be paired with config_free(). */
void config_init(broker_config *c);
/* Releases c's memory. Safe to call twice. */
void config_free(broker_config *c);

/* The usual sequence for sluiced: config_init, the file (if path is not NULL),
 * SLUICE_LOG_LEVEL, each "key=value" override, config_finish, then applies
 * log.level with log_set_level(). Returns 0, or -1 with err filled (naming the
 * file and line or the override, the key, the value and what is allowed).
 * The caller calls config_free() either way. */
int config_load(broker_config *c, const char *path, const char *const *overrides, size_t n_overrides,
                char err[CONFIG_ERR_MAX]);

/* Reads a properties file into c (origin FILE). */
int config_load_file(broker_config *c, const char *path, char err[CONFIG_ERR_MAX]);
/* Parses properties text into c; name is used in messages. */
int config_load_text(broker_config *c, const char *name, const char *text, size_t len,
                     char err[CONFIG_ERR_MAX]);
/* Applies one "key=value" override (origin OVERRIDE). */
int config_apply_override(broker_config *c, const char *kv, char err[CONFIG_ERR_MAX]);
/* Sets one key from text after validating it. An unknown key is a warning
 * (logged, counted) and returns 0. value NULL resets the key to its default. */
int config_set(broker_config *c, const char *key, const char *value, config_origin origin,
               char err[CONFIG_ERR_MAX]);
/* Resolves synonyms, fills the typed fields, parses the listeners and runs
 * the checks that involve several keys. Call after the last config_set. */
int config_finish(broker_config *c, char err[CONFIG_ERR_MAX]);

/* Warnings issued so far (unknown keys) and the text of the last one. */
int config_warning_count(const broker_config *c);
const char *config_last_warning(const broker_config *c);

/* ---- listeners (config_listeners.c) ---------------------------------------------- */

/* Parses a listeners value ("NAME://host:port,...") with the given
 * listener.security.protocol.map (NULL skips protocol mapping and the
 * PLAINTEXT-only check). Returns 0, or -1 with why filled. */
int config_parse_listeners(const char *text, const char *protocol_map, config_listener *out, int max, int *n,
                           char *why, size_t whyn);
const char *config_protocol_name(config_protocol p);
/* The text of a broker key for one listener: its listener.name.<listener>.<key>
 * value if set, else the key's own (NULL for null). key must be a broker key. */
const char *config_listener_value(const broker_config *c, const char *listener, const char *key);
/* The same for keys Kafka sets per listener and SASL mechanism,
 * listener.name.<listener>.<mechanism>.<key> (sasl.jaas.config); NULL if
 * unset. mech in any case ("PLAIN", "scram-sha-256"). */
const char *config_listener_mech_value(const broker_config *c, const char *listener, const char *mech,
                                       const char *key);

/* ---- the broker table (config_keys.c) -------------------------------------------- */

/* (The topic keys: config/topic_config.h.) */
const config_def *config_broker_defs(size_t *n);
/* NULL for a name that is not a broker key. */
const config_def *config_find_broker(const char *name);

/* ---- topic keys on this broker (config_topic.c) ---------------------------------- */

/* For a topic key, the broker key that supplies its default (the most
 * precise of its synonyms, e.g. log.retention.ms for retention.ms). */
const config_def *config_topic_broker_synonym(const config_def *topic_def);

/* A topic's effective configuration with no overrides: the broker's values. */
void topic_config_init(topic_config *tc, const broker_config *bc);

/* topic_config_init plus every override in order, then the checks that
 * involve several keys (min.compaction.lag.ms <= max.compaction.lag.ms):
 * topic_config_overlay() over the broker's base.
 * Returns 0 or CONFIG_KAFKA_INVALID_CONFIG with msg filled. */
int topic_config_build(topic_config *tc, const broker_config *bc, const char *const *keys,
                       const char *const *values, size_t n, char *msg, size_t msgn);

/* ---- enumeration: DescribeConfigs (config_describe.c) ---------------------------- */

typedef struct config_entry {
    const char *name;
    const char *value; /* current value as text; NULL = null */
    const char *dflt;  /* the table default as text; NULL = null */
    config_source source;
    config_kafka_type type;
    bool read_only; /* no dynamic configuration yet: every broker key is read-only */
    bool sensitive;
    const config_def *def;
} config_entry;

/* Return non-zero to stop the walk. */
typedef int (*config_visit_fn)(void *ctx, const config_entry *e);

/* Visits every broker key in table order. */
void config_describe_broker(const broker_config *c, config_visit_fn fn, void *ctx);
/* One broker key's entry; returns -1 if the key is unknown. */
int config_broker_entry(const broker_config *c, const char *name, config_entry *out);

/* Visits every topic key: an override's value (DYNAMIC_TOPIC_CONFIG), else
 * the broker synonym's explicit value converted to the topic key's unit
 * (STATIC_BROKER_CONFIG), else the default (DEFAULT_CONFIG). The value text
 * is built in a buffer valid only during the callback. */
void config_describe_topic(const broker_config *bc, const char *const *keys, const char *const *values,
                           size_t n, config_visit_fn fn, void *ctx);

/* Synonyms of a key in precedence order, the key itself first for topic keys:
 * for topic "retention.ms": retention.ms, log.retention.ms,
 * log.retention.minutes, log.retention.hours. For a broker key: the keys that
 * share its setting, most precise first. Returns the count (<= max). */
size_t config_synonyms(const char *name, bool topic, const config_def **out, size_t max);

/* ---- documentation (config_docs.c) ----------------------------------------------- */

/* Writes docs/configuration.md's content, generated from the tables. */
int config_write_docs(FILE *out);

#endif
