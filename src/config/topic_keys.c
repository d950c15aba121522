/*
 * config/topic_keys.c - the topic keys: one row per key a topic can
 * override (see schema.h for what a row says), and the lookups over them.
 *
 * Defaults follow Apache Kafka 4.0. A topic row states its own bounds even
 * where they equal its broker synonym's (src/broker/config_keys.c), so each
 * table reads on its own; test_config checks that a topic key and a broker
 * synonym in the same unit accept the same values. The bounds that protect
 * the partition logs are storage's own (storage/log.h's PLOG_* limits).
 */
#include "config/topic_config.h"

#include <stddef.h>
#include <string.h>

#include "config/rows.h"
#include "storage/log.h"

#define T(f) offsetof(topic_config, f)

/* clang-format off */
static const config_def topic_defs[] = {
    LIST("cleanup.policy", "delete", config_cleanup_values, T(cleanup_policy), CONFIG_F_ACTIVE,
         "delete, compact or both (compact,delete): what happens to this topic's old segments."),
    GZIP_LEVEL_ROW(T(compression_gzip_level),
                   "gzip level when the broker compresses for this topic: 1 to 9, or -1 for zlib's default."),
    INT("compression.lz4.level", "9", 1, 17, T(compression_lz4_level), 0,
        "lz4 level when the broker compresses for this topic."),
    INT("compression.zstd.level", "3", -131072, 22, T(compression_zstd_level), 0,
        "zstd level when the broker compresses for this topic."),
    ENUM("compression.type", "producer", config_compression_values, T(compression_type), 0,
         "Codec this topic's batches are stored with; producer keeps the producer's."),
    LONG("delete.retention.ms", "86400000", 0, I64MAX, T(delete_retention_ms), CONFIG_F_ACTIVE,
         "How long tombstones stay in a compacted topic."),
    LONG("file.delete.delay.ms", "60000", 0, I64MAX, T(file_delete_delay_ms), 0,
         "Delay between dropping a segment and deleting its files."),
    LONG("flush.messages", LONG_MAX_TEXT, PLOG_FLUSH_MESSAGES_MIN, I64MAX, T(flush_messages), CONFIG_F_ACTIVE,
         "fsync after this many appended records."),
    LONG("flush.ms", LONG_MAX_TEXT, PLOG_FLUSH_MS_MIN, I64MAX, T(flush_ms), CONFIG_F_ACTIVE,
         "fsync when the oldest unflushed record is this old."),
    INT("index.interval.bytes", "4096", PLOG_INDEX_INTERVAL_MIN, I32MAX, T(index_interval_bytes), CONFIG_F_ACTIVE,
        "Bytes of records between offset index entries."),
    LONG("max.compaction.lag.ms", LONG_MAX_TEXT, 1, I64MAX, T(max_compaction_lag_ms), CONFIG_F_ACTIVE,
         "Longest a record may stay uncompacted."),
    INT("max.message.bytes", "1048588", PLOG_MAX_MESSAGE_BYTES_MIN, I32MAX, T(max_message_bytes), CONFIG_F_ACTIVE,
        "Largest record batch accepted for this topic."),
    LONG("message.timestamp.after.max.ms", "3600000", 0, I64MAX, T(message_timestamp_after_max_ms),
         CONFIG_F_ACTIVE, "With CreateTime, how far ahead of the broker's clock a record timestamp may be."),
    LONG("message.timestamp.before.max.ms", LONG_MAX_TEXT, 0, I64MAX, T(message_timestamp_before_max_ms),
         CONFIG_F_ACTIVE, "With CreateTime, how far behind the broker's clock a record timestamp may be."),
    ENUM("message.timestamp.type", "CreateTime", config_timestamp_values, T(message_timestamp_type), CONFIG_F_ACTIVE,
         "CreateTime keeps producer timestamps; LogAppendTime stamps batches with the broker's clock."),
    {.name = "min.cleanable.dirty.ratio", .type = CONFIG_DOUBLE, .dflt = "0.5", .min = 0, .max = 1,
     .field = T(min_cleanable_dirty_ratio), .flags = CONFIG_F_ACTIVE,
     .doc = "Uncompacted share of the log that makes it eligible for compaction."},
    LONG("min.compaction.lag.ms", "0", 0, I64MAX, T(min_compaction_lag_ms), CONFIG_F_ACTIVE,
         "Records younger than this are not compacted."),
    INT("min.insync.replicas", "1", 1, I32MAX, T(min_insync_replicas), 0,
        "With acks=all, fewest in-sync replicas needed to acknowledge a write."),
    BOOL("preallocate", "false", T(preallocate), 0, "Reserve disk space for a whole segment on creation."),
    LONG("retention.bytes", "-1", PLOG_RETENTION_MIN, I64MAX, T(retention_bytes), CONFIG_F_ACTIVE,
         "Per-partition size above which the oldest segments are deleted; -1 for no limit."),
    LONG("retention.ms", "604800000", PLOG_RETENTION_MIN, I64MAX, T(retention_ms), CONFIG_F_ACTIVE,
         "Age after which segments are deleted; -1 keeps data forever."),
    INT("segment.bytes", "1073741824", PLOG_SEGMENT_BYTES_MIN, PLOG_SEGMENT_BYTES_MAX, T(segment_bytes), CONFIG_F_ACTIVE, "Segment size that triggers a roll."),
    INT("segment.index.bytes", "10485760", PLOG_SEGMENT_INDEX_BYTES_MIN, I32MAX, T(segment_index_bytes), CONFIG_F_ACTIVE,
        "Largest size of an index file."),
    LONG("segment.jitter.ms", "0", 0, I64MAX, T(segment_jitter_ms), 0,
         "Largest random reduction of the roll age."),
    LONG("segment.ms", "604800000", PLOG_SEGMENT_MS_MIN, I64MAX, T(segment_ms), CONFIG_F_ACTIVE,
         "Segment age that triggers a roll."),
    BOOL("unclean.leader.election.enable", "false", T(unclean_leader_election_enable), 0,
         "Allow an out-of-sync replica to become leader, losing acknowledged records."),
};
/* clang-format on */

#define N_TOPIC (sizeof topic_defs / sizeof topic_defs[0])

const config_def *config_topic_defs(size_t *n) {
    *n = N_TOPIC;
    return topic_defs;
}

const config_def *config_find_topic(const char *name) {
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < N_TOPIC; i++)
        if (strcmp(topic_defs[i].name, name) == 0)
            return &topic_defs[i];
    return NULL;
}
