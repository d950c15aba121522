/*
 * config/topic_config.h - topic configuration: the topic keys (the rows,
 * config/topic_keys.c) and a topic's effective configuration, topic_config,
 * built by laying a topic's overrides over a base (config/topic_config.c).
 *
 * The base is the configuration of a topic with no overrides. On a broker
 * it comes from the broker's keys (topic_config_init in broker/config.h:
 * each topic key takes the value of its broker synonym, e.g. retention.ms
 * from log.retention.hours/minutes/ms); anyone else (the controller, a test)
 * may build one however it likes. Nothing here needs the broker.
 *
 * Validation is the same everywhere a topic key is accepted (CreateTopics,
 * AlterConfigs, IncrementalAlterConfigs, replay of stored overrides): an
 * unknown key, a null value, a value of the wrong type, out of range or not
 * allowed is CONFIG_KAFKA_INVALID_CONFIG with a message naming the key.
 * The rows' bounds are storage's (storage/log.h): a value accepted here
 * never stops a partition log from opening.
 *
 * Invariant: every field of a topic_config that topic_config_overlay
 * returned 0 for holds a value its row accepts, and min.compaction.lag.ms
 * <= max.compaction.lag.ms.
 */
#ifndef SLUICE_CONFIG_TOPIC_CONFIG_H
#define SLUICE_CONFIG_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/schema.h"

typedef struct topic_config {
    unsigned cleanup_policy; /* CONFIG_CLEANUP_* bits */
    int compression_type;    /* config_compression */
    int32_t compression_gzip_level;
    int32_t compression_lz4_level;
    int32_t compression_zstd_level;
    int64_t delete_retention_ms;
    int64_t file_delete_delay_ms;
    int64_t flush_messages;
    int64_t flush_ms;
    int32_t index_interval_bytes;
    int32_t max_message_bytes;
    int64_t max_compaction_lag_ms;
    int64_t min_compaction_lag_ms;
    double min_cleanable_dirty_ratio;
    int32_t min_insync_replicas;
    int message_timestamp_type; /* config_timestamp_type */
    int64_t message_timestamp_before_max_ms;
    int64_t message_timestamp_after_max_ms;
    bool preallocate;
    int64_t retention_bytes;
    int64_t retention_ms;
    int32_t segment_bytes;
    int32_t segment_index_bytes;
    int64_t segment_jitter_ms;
    int64_t segment_ms;
    bool unclean_leader_election_enable;
} topic_config;

/* ---- the topic keys (config/topic_keys.c) ----------------------------------- */

const config_def *config_topic_defs(size_t *n);
/* NULL for a name that is not a topic key. */
const config_def *config_find_topic(const char *name);

/* ---- a topic's configuration (config/topic_config.c) ------------------------- */

/* Validates one topic config pair as CreateTopics/AlterConfigs receive it.
 * Returns 0, or CONFIG_KAFKA_INVALID_CONFIG with msg filled (unknown key,
 * null value, bad type, out of range, value not allowed). */
int topic_config_validate(const char *key, const char *value, char *msg, size_t msgn);

/* Validates and applies one override to tc. Same return as validate. */
int topic_config_set(topic_config *tc, const char *key, const char *value, char *msg, size_t msgn);

/* tc = base with every override applied in order (a key given twice: the
 * last wins), then the checks that involve several keys
 * (min.compaction.lag.ms <= max.compaction.lag.ms). Returns 0 or
 * CONFIG_KAFKA_INVALID_CONFIG with msg filled; tc is unspecified then. */
int topic_config_overlay(topic_config *tc, const topic_config *base, const char *const *keys,
                         const char *const *values, size_t n, char *msg, size_t msgn);

#endif
