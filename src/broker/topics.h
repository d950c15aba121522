/*
 * topics.h - the topic registry: which topics exist, their partitions, ids
 * and configuration, and the partition logs behind them.
 *
 * Durability: every change (topic created, partitions added, config changed,
 * topic deleted) is first appended as a record to the metadata log, a
 * partition log of its own under the first log directory
 * (`__sluice_metadata-0`), and fsynced; only then is it applied in memory. On
 * start the registry verifies and replays that log (metalog.h: damage other
 * than a torn tail stops the broker), settles the directories under
 * log.dirs (logdirs.h: removed only when the log explains why, set aside
 * otherwise) and opens every partition's log. The metadata log is the single
 * source of truth, so it can later be replaced by the replicated controller
 * log without changing the registry's users.
 *
 * Concurrency: lookups take a read lock and return a counted reference; the
 * caller releases it with topic_release(). Creation, deletion and changes take
 * the write lock. A deleted topic disappears from lookups at once; its logs
 * are deleted from disk when the last reference is released, so requests in
 * flight finish safely. A partition's plog is thread-safe on its own.
 *
 * Single node for now: this broker is leader of every partition, leader epoch
 * 0, replicas = ISR = {node.id}, and the high watermark is the log end offset.
 */
#ifndef SLUICE_BROKER_TOPICS_H
#define SLUICE_BROKER_TOPICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "core/arena.h"
#include "proto/wire.h"
#include "storage/log.h"

#define TOPIC_NAME_MAX              249
#define TOPIC_PARTITIONS_MAX        10000 /* per topic */
#define TOPICS_PARTITIONS_TOTAL_MAX 100000
#define TOPIC_CONFIGS_MAX           64  /* overrides per topic */
#define TOPICS_MSG_MAX              256 /* error message buffers */

typedef struct topic topic;

typedef struct partition {
    topic *topic;
    int32_t index;
    /* NULL while the partition is offline because its log could not be
     * opened (an unusable stored config, a full disk, too many open files):
     * requests get KAFKA_STORAGE_ERROR. It is set at most once, when the
     * log opens (start-up, a config fix, a retry of the housekeeping), and
     * never reset while the topic lives, so a reader that saw it non-NULL
     * may keep using it. A log that later fails goes offline inside storage
     * (plog_is_offline) and is reopened in place. Read with partition_log. */
    _Atomic(plog *) log;
    int32_t leader_epoch;
    const char *root; /* the log.dirs entry holding it (fixed) */
    int root_index;   /* its index in log.dirs */
    /* Retries of an offline partition, by the housekeeping (topics_tick). */
    int64_t retry_at_ms;
    int32_t retry_backoff_ms;
    /* Owned by the fetch module (long-poll waiters); NULL until it sets it. */
    _Atomic(void *) fetch_state;
} partition;

/* The partition's log, or NULL while it is offline (see above). */
static inline plog *partition_log(const partition *p) {
    return atomic_load_explicit(&((partition *)p)->log, memory_order_acquire);
}

typedef struct topic_config_override {
    char *key;
    char *value;
} topic_config_override;

struct topic {
    char name[TOPIC_NAME_MAX + 1];
    kuuid id;
    /* Read both with topic_partition() / topic_partition_count(): partitions
     * can be added while requests run (the array is replaced, and the old
     * one kept until the topic is freed). */
    int32_t n_partitions;
    partition **parts;
    void *retired; /* replaced partition arrays, freed with the topic */
    int16_t replication_factor;
    /* One of the broker's own topics (topics_internal_name): created only by
     * topics_create_internal, never deleted, grown or written by clients. */
    bool internal;
    /* Of an internal topic: the overrides it was created with, which its
     * coordinator depends on; AlterConfigs may not change them. Immutable. */
    topic_config_override *pinned;
    int n_pinned;
    /* Overrides as given (for DescribeConfigs sources) and the effective
     * values derived from them and the broker's config. Read under the
     * registry's lock or from a referenced topic (changes replace both
     * atomically under the write lock; readers copy what they need). */
    topic_config_override *overrides;
    int n_overrides;
    topic_config cfg;
    /* Why the stored overrides cannot be used (written by an older version
     * that accepted them), naming the key; NULL when they can. While set,
     * cfg holds the broker defaults and the partitions stay offline, until
     * AlterConfigs fixes the key. Guarded by the registry's change mutex. */
    char *cfg_error;
    atomic_int refs;
    bool deleted;
};

typedef struct topic_registry topic_registry;

/* Opens the registry: replays the metadata log under cfg->log_dirs, opens
 * every partition log (recovering those not shut down cleanly) with storage
 * context storage (which must outlive the registry). A partition whose log
 * cannot be opened stays offline (logged; retried by topics_tick with
 * backoff, or when its config is fixed) and never stops the start. Returns
 * NULL and logs why when the metadata log cannot be trusted or the log dirs
 * cannot be used. */
topic_registry *topics_open(const broker_config *cfg, storage_ctx *storage);
/* Closes every log (flushing) and frees. A log dir is marked clean only if
 * every log under it was closed cleanly (and, if it was not clean at start,
 * every partition in it was recovered). Returns how many log dirs were not
 * marked clean (0 after a clean shutdown); NULL reg returns 0. */
int topics_close(topic_registry *reg);

/* The cluster id, kept in meta.properties of each log dir (22 chars). */
const char *topics_cluster_id(const topic_registry *reg);

/* Lookups: a counted reference, or NULL if no such (live) topic. */
topic *topics_get(topic_registry *reg, kstr name);
topic *topics_get_by_id(topic_registry *reg, kuuid id);
void topic_release(topic_registry *reg, topic *t);
/* A partition of a referenced topic, or NULL if index is out of range. */
partition *topic_partition(topic *t, int32_t index);
int32_t topic_partition_count(topic *t);
/* Whether the topic has been deleted (it lives on while referenced); safe
 * to call from any thread holding a reference. */
bool topic_is_deleted(topic *t);
/* The checks Fetch, ListOffsets and OffsetForLeaderEpoch make before they
 * touch a partition's log: KAFKA_STORAGE_ERROR while the partition is
 * offline (partition_log is NULL; once it passes, the log stays), then the
 * leader epoch - a client's current_leader_epoch of -1 skips it; an older
 * epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH. Returns 0
 * if fine. */
int16_t partition_check_leader_epoch(const partition *p, int32_t current_leader_epoch);
/* Copies a referenced topic's config overrides into arena a under the
 * registry's read lock (an AlterConfigs may replace and free them at any
 * time). *keys and *values get n NUL-terminated strings each. Returns 0, or
 * -1 when the arena ran out (then *n = 0). */
int topics_copy_overrides(topic_registry *reg, topic *t, arena *a, const char ***keys, const char ***values,
                          int *n);

/* Every live topic, referenced, sorted by name; *n set. The caller releases
 * each and frees the array with free(). NULL with *n = 0 when empty or on
 * allocation failure. */
topic **topics_list(topic_registry *reg, int *n);

/* Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], not "." or "..".
 * Returns 0 or KAFKA_ERR_INVALID_TOPIC_EXCEPTION with msg filled. */
int topics_validate_name(kstr name, char *msg, size_t msgn);

/* Names the broker keeps for itself.
 *   - The metadata logs' names (`__sluice_metadata`, and `__cluster_metadata`
 *     for the controller log to come): partition 0 of a topic so named would
 *     be the metadata log's own directory. No topic ever has them.
 *   - Internal topics (`__consumer_offsets`, `__transaction_state`,
 *     `__share_group_state`): the broker creates them for its coordinators
 *     (topics_create_internal); a client may not.
 *   - Names ending in TOPICS_STRAY_SUFFIX, the suffix of set-aside
 *     directories, so that a log-dirs listing is never ambiguous.
 * Other names starting with "__" are ordinary topics, as in Kafka. */
#define TOPICS_STRAY_SUFFIX "-stray"
bool topics_metadata_name(kstr name);
bool topics_internal_name(kstr name);
/* Whether a client may not create a topic of this name (any of the above). */
bool topics_name_reserved(kstr name);

/* Creates a topic for a client. partitions/replication_factor of -1 take the
 * broker defaults (num.partitions, default.replication.factor). Config
 * overrides are validated first. With validate_only nothing changes. Returns
 * a Kafka error code (TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION,
 * INVALID_REQUEST for a reserved name, INVALID_PARTITIONS,
 * INVALID_REPLICATION_FACTOR, INVALID_CONFIG, KAFKA_STORAGE_ERROR ...) with
 * msg filled on error. On success *out (if not NULL) gets a reference. */
int topics_create(topic_registry *reg, kstr name, int32_t partitions, int16_t replication_factor,
                  const char *const *cfg_keys, const char *const *cfg_values, int n_cfg, bool validate_only,
                  topic **out, char *msg, size_t msgn);
/* Creates one of the broker's internal topics (name must satisfy
 * topics_internal_name); its overrides are pinned. Same returns. */
int topics_create_internal(topic_registry *reg, kstr name, int32_t partitions, const char *const *cfg_keys,
                           const char *const *cfg_values, int n_cfg, topic **out, char *msg, size_t msgn);

/* Deletes a topic (its logs go when the last reference is released).
 * UNKNOWN_TOPIC_OR_PARTITION if absent; TOPIC_DELETION_DISABLED if
 * delete.topic.enable is false; INVALID_TOPIC_EXCEPTION for internal topics. */
int topics_delete(topic_registry *reg, topic *t, char *msg, size_t msgn);

/* Grows a topic to new_total partitions (INVALID_PARTITIONS if not larger;
 * INVALID_TOPIC_EXCEPTION for an internal topic, whose coordinator maps keys
 * to partitions by their count). */
int topics_add_partitions(topic_registry *reg, topic *t, int32_t new_total, bool validate_only, char *msg,
                          size_t msgn);

/* Replaces a topic's overrides with the given set (AlterConfigs semantics when
 * replace_all; IncrementalAlterConfigs when not: values NULL delete a key,
 * others set it). Validates everything first; all or nothing. An internal
 * topic's pinned overrides may not change (INVALID_CONFIG). */
int topics_alter_config(topic_registry *reg, topic *t, const char *const *keys, const char *const *values,
                        int n, bool replace_all, bool validate_only, char *msg, size_t msgn);

/* A directory set aside because the metadata log does not account for it
 * (logdirs.h): reported at every start and by DescribeLogDirs. */
typedef struct topics_stray {
    int root;          /* index into log.dirs */
    char name[256];    /* the directory's (new) name under that root */
    bool owner_known;  /* partition.metadata named an id */
    kuuid owner;       /* that id */
    int32_t partition; /* the partition index its name says, -1 if none */
    int64_t bytes;     /* of its files when it was found */
} topics_stray;

/* Copies up to max set-aside directories into out; returns how many were
 * copied and sets *total to how many there are (a bounded list). */
int topics_strays(topic_registry *reg, topics_stray *out, int max, int *total);

/* Background work for every partition: roll, flush, retention; and retries
 * of what is offline (partitions, the metadata log), each with its own
 * backoff from TOPICS_RETRY_MIN_MS doubling to TOPICS_RETRY_MAX_MS. Called
 * about once a second by the broker's housekeeping thread (one thread). */
#define TOPICS_RETRY_MIN_MS 1000
#define TOPICS_RETRY_MAX_MS 60000
void topics_tick(topic_registry *reg, int64_t now_ms);

/* Total partitions (for limits and metrics). */
int topics_partition_count(topic_registry *reg);

#endif
