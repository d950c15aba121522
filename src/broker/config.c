/*
 * config.c - see config.h. The two tables below are the single source of
 * truth for keys, types, defaults, bounds and documentation; the code after
 * them is generic over a row.
 *
 * Defaults follow Apache Kafka 4.0 where Kafka has one; the rows flagged
 * CONFIG_F_DEVIATES say in their doc line why Sluice differs.
 */
#include "broker/config.h"
#include "net/server.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/log.h"

#define I32MAX        INT32_MAX
#define I64MAX        INT64_MAX
#define LONG_MAX_TEXT "9223372036854775807"
#define INT_MAX_TEXT  "2147483647"
#define HOUR_MS       3600000
#define MINUTE_MS     60000

/* Defaults owned by a lower layer are printed from its macros, so the table
 * (and the docs generated from it) cannot drift from the code. */
#define DFLT_(x) #x
#define DFLT(x)  DFLT_(x)

#define B(f) offsetof(broker_config, f)
#define T(f) offsetof(topic_config, f)

static const char *const bool_values[] = {"true", "false", NULL};
static const char *const roles_values[] = {"broker", "controller", NULL};
static const char *const cleanup_values[] = {"delete", "compact", NULL};
static const char *const timestamp_values[] = {"CreateTime", "LogAppendTime", NULL};
/* Order matches config_compression. */
static const char *const compression_values[] = {"uncompressed", "gzip",     "snappy", "lz4",
                                                 "zstd",         "producer", NULL};
/* Order matches log_level. */
static const char *const level_values[] = {"error", "warn", "info", "debug", "trace", NULL};

static int check_listeners(const char *v, char *why, size_t whyn);
static int check_protocol_map(const char *v, char *why, size_t whyn);
static int check_gzip_level(const char *v, char *why, size_t whyn);
static int check_ip_overrides(const char *v, char *why, size_t whyn);

/* Row builders: the struct is wide, most rows use few of its fields. */
#define ROW(n, ty, d, lo, hi, fld, fl, dc)                                                               \
    {                                                                                                    \
        .name = (n), .type = (ty), .dflt = (d), .min = (lo), .max = (hi), .field = (fld), .flags = (fl), \
        .doc = (dc)                                                                                      \
    }
#define INT(n, d, lo, hi, fld, fl, dc)  ROW(n, CONFIG_INT, d, lo, hi, fld, fl, dc)
#define LONG(n, d, lo, hi, fld, fl, dc) ROW(n, CONFIG_LONG, d, lo, hi, fld, fl, dc)
#define BOOL(n, d, fld, fl, dc)         ROW(n, CONFIG_BOOL, d, 0, 0, fld, fl, dc)
#define STR(n, d, fld, fl, dc)          ROW(n, CONFIG_STRING, d, 0, 0, fld, fl, dc)
#define DUR(n, d, lo, hi, unit, rk, fld, fl, dc)                                                        \
    {                                                                                                   \
        .name = (n), .type = CONFIG_DURATION, .dflt = (d), .min = (lo), .max = (hi), .unit_ms = (unit), \
        .rank = (rk), .field = (fld), .flags = (fl), .doc = (dc)                                        \
    }
#define ENUM(n, d, vals, fld, fl, dc)                                                                    \
    {                                                                                                    \
        .name = (n), .type = CONFIG_ENUM, .dflt = (d), .allowed = (vals), .field = (fld), .flags = (fl), \
        .doc = (dc)                                                                                      \
    }
#define LIST(n, d, vals, fld, fl, dc)                                                                    \
    {                                                                                                    \
        .name = (n), .type = CONFIG_LIST, .dflt = (d), .allowed = (vals), .field = (fld), .flags = (fl), \
        .doc = (dc)                                                                                      \
    }

/* clang-format off */
static const config_def broker_defs[] = {
    /* ---- identity and listeners ---- */
    {.name = "node.id", .type = CONFIG_INT, .dflt = "1", .min = 0, .max = I32MAX, .rank = 1,
     .field = B(node_id), .flags = CONFIG_F_DEVIATES | CONFIG_F_ACTIVE, .section = "Identity and listeners",
     .doc = "This node's id, unique in the cluster. Kafka requires it; Sluice defaults to 1 so a single node "
            "runs without a file."},
    {.name = "broker.id", .type = CONFIG_INT, .dflt = NULL, .min = 0, .max = I32MAX, .rank = 0,
     .field = B(node_id), .flags = CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
     .doc = "Older name of node.id, accepted so existing files keep working. If both are set they must be equal."},
    LIST("process.roles", "broker,controller", roles_values, B(process_roles), CONFIG_F_DEVIATES,
         "Roles this node plays. Kafka has no default; Sluice runs both roles in one process by default."),
    STR("broker.rack", NULL, B(broker_rack), CONFIG_F_NULLABLE,
        "Rack (or zone) label of this node, for rack-aware replica placement."),
    {.name = "listeners", .type = CONFIG_STRING, .dflt = "PLAINTEXT://localhost:9092",
     .field = CONFIG_NO_FIELD, .check = check_listeners, .flags = CONFIG_F_DEVIATES | CONFIG_F_ACTIVE,
     .doc = "Comma-separated NAME://host:port addresses to accept connections on; an empty host binds every "
            "interface, IPv6 hosts go in brackets. Only PLAINTEXT is supported so far. Kafka's default binds "
            "every interface; Sluice binds localhost unless told otherwise."},
    {.name = "advertised.listeners", .type = CONFIG_STRING, .dflt = NULL, .field = CONFIG_NO_FIELD,
     .check = check_listeners, .flags = CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
     .doc = "Addresses given to clients in metadata, same syntax as listeners. When unset, the listeners "
            "(except controller ones) are used, with an empty or wildcard host replaced by this machine's "
            "host name."},
    {.name = "listener.security.protocol.map", .type = CONFIG_STRING,
     .dflt = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
     .field = B(listener_security_protocol_map), .check = check_protocol_map,
     .doc = "Maps each listener name to its security protocol, as NAME:PROTOCOL pairs."},
    STR("inter.broker.listener.name", NULL, B(inter_broker_listener_name), CONFIG_F_NULLABLE,
        "Listener that other brokers use to reach this one; must name one of listeners."),
    LIST("controller.listener.names", "", NULL, B(controller_listener_names), 0,
         "Listener names reserved for controller traffic; such listeners are not advertised to clients."),
    LIST("controller.quorum.voters", "", NULL, B(controller_quorum_voters), 0,
         "Static controller quorum as id@host:port entries."),
    LIST("controller.quorum.bootstrap.servers", "", NULL, B(controller_quorum_bootstrap_servers), 0,
         "host:port addresses used to discover the controller quorum."),

    /* ---- topics and logs ---- */
    {.name = "log.dirs", .type = CONFIG_LIST, .dflt = NULL, .rank = 1, .field = B(log_dirs),
     .flags = CONFIG_F_NULLABLE | CONFIG_F_ACTIVE, .section = "Topics and logs",
     .doc = "Comma-separated directories that hold partition data. When unset, log.dir is used."},
    {.name = "log.dir", .type = CONFIG_LIST, .dflt = "./data", .rank = 0, .field = B(log_dirs),
     .flags = CONFIG_F_DEVIATES | CONFIG_F_ACTIVE,
     .doc = "Single data directory, used when log.dirs is unset. Kafka's default is /tmp/kafka-logs; Sluice "
            "uses ./data relative to the working directory."},
    INT("num.partitions", "1", 1, I32MAX, B(num_partitions), CONFIG_F_ACTIVE,
        "Partition count of topics created without an explicit count (auto-created topics included)."),
    INT("default.replication.factor", "1", 1, I32MAX, B(default_replication_factor), CONFIG_F_ACTIVE,
        "Replication factor of topics created without an explicit one."),
    BOOL("auto.create.topics.enable", "true", B(auto_create_topics_enable), CONFIG_F_ACTIVE,
         "Create a topic when a client asks for metadata of, or produces to, a topic that does not exist."),
    BOOL("delete.topic.enable", "true", B(delete_topic_enable), CONFIG_F_ACTIVE,
         "Allow DeleteTopics; when false the request fails."),
    DUR("log.retention.hours", "168", -1, I32MAX, HOUR_MS, 0, B(log_retention_ms), CONFIG_F_ACTIVE,
        "How long to keep a segment after its newest record, in hours; -1 keeps data forever. Overridden by "
        "log.retention.minutes and log.retention.ms."),
    DUR("log.retention.minutes", NULL, -1, I32MAX, MINUTE_MS, 1, B(log_retention_ms), CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "Retention time in minutes; wins over log.retention.hours."),
    DUR("log.retention.ms", NULL, -1, I64MAX, 1, 2, B(log_retention_ms), CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "Retention time in milliseconds; wins over the minutes and hours forms. -1 keeps data forever; the "
        "resolved time may not be 0."),
    LONG("log.retention.bytes", "-1", PLOG_RETENTION_MIN, I64MAX, B(log_retention_bytes), CONFIG_F_ACTIVE,
         "Largest size a partition may reach before its oldest segments are deleted; -1 means no limit."),
    INT("log.segment.bytes", "1073741824", PLOG_SEGMENT_BYTES_MIN, PLOG_SEGMENT_BYTES_MAX, B(log_segment_bytes), CONFIG_F_DEVIATES | CONFIG_F_ACTIVE,
        "Size at which the active segment is closed and a new one started. Kafka 4.0 raised the minimum to "
        "1 MiB; Sluice accepts down to 64 bytes (the smallest its storage opens) so tests can roll segments "
        "quickly."),
    DUR("log.roll.hours", "168", 1, I32MAX, HOUR_MS, 0, B(log_roll_ms), CONFIG_F_ACTIVE,
        "Age, in hours, after which the active segment is rolled even if not full."),
    DUR("log.roll.ms", NULL, PLOG_SEGMENT_MS_MIN, I64MAX, 1, 1, B(log_roll_ms), CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "Segment roll age in milliseconds; wins over log.roll.hours."),
    DUR("log.roll.jitter.hours", "0", 0, I32MAX, HOUR_MS, 0, B(log_roll_jitter_ms), 0,
        "Largest random amount, in hours, subtracted from the roll age so segments do not all roll at once."),
    DUR("log.roll.jitter.ms", NULL, 0, I64MAX, 1, 1, B(log_roll_jitter_ms), CONFIG_F_NULLABLE,
        "Roll jitter in milliseconds; wins over log.roll.jitter.hours."),
    LONG("log.flush.interval.messages", LONG_MAX_TEXT, PLOG_FLUSH_MESSAGES_MIN, I64MAX, B(log_flush_interval_messages), CONFIG_F_ACTIVE,
         "fsync a partition after this many records have been appended since the last fsync. The default "
         "leaves durability to replication and the page cache."),
    LONG("log.flush.interval.ms", NULL, PLOG_FLUSH_MS_MIN, I64MAX, B(log_flush_interval_ms), CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
         "fsync a partition whose oldest unflushed record is older than this. When unset, "
         "log.flush.scheduler.interval.ms applies."),
    LONG("log.flush.scheduler.interval.ms", LONG_MAX_TEXT, 0, I64MAX, B(log_flush_scheduler_interval_ms), CONFIG_F_ACTIVE,
         "How often the flusher checks whether a partition is due for an fsync."),
    INT("log.flush.offset.checkpoint.interval.ms", "60000", 0, I32MAX,
        B(log_flush_offset_checkpoint_interval_ms), 0,
        "How often the recovery checkpoint (last flushed offset per partition) is written."),
    INT("log.flush.start.offset.checkpoint.interval.ms", "60000", 0, I32MAX,
        B(log_flush_start_offset_checkpoint_interval_ms), 0,
        "How often the log start offset of every partition is checkpointed."),
    LONG("log.retention.check.interval.ms", "300000", 1, I64MAX, B(log_retention_check_interval_ms), 0,
         "How often partitions are checked for segments that retention allows to delete."),
    LONG("log.segment.delete.delay.ms", "60000", 0, I64MAX, B(log_segment_delete_delay_ms), 0,
         "Time between removing a segment from a log and deleting its files."),
    INT("log.index.interval.bytes", "4096", PLOG_INDEX_INTERVAL_MIN, I32MAX, B(log_index_interval_bytes), CONFIG_F_ACTIVE,
        "Bytes of records between two entries of the sparse offset index."),
    INT("log.index.size.max.bytes", "10485760", PLOG_SEGMENT_INDEX_BYTES_MIN, I32MAX, B(log_index_size_max_bytes), CONFIG_F_ACTIVE,
        "Largest size of an offset or time index file; a full index rolls the segment."),
    BOOL("log.preallocate", "false", B(log_preallocate), 0,
         "Reserve the full segment size on disk when a segment is created."),
    INT("num.recovery.threads.per.data.dir", "2", 1, I32MAX, B(num_recovery_threads_per_data_dir), 0,
        "Threads per data directory used to recover logs at start-up and flush them at shutdown."),
    LIST("log.cleanup.policy", "delete", cleanup_values, B(log_cleanup_policy), 0,
         "What happens to old segments: delete them (retention), compact them (keep the last record per "
         "key), or both."),
    ENUM("log.message.timestamp.type", "CreateTime", timestamp_values, B(log_message_timestamp_type), CONFIG_F_ACTIVE,
         "Record timestamps as set by the producer (CreateTime) or by the broker on append (LogAppendTime)."),
    LONG("log.message.timestamp.before.max.ms", LONG_MAX_TEXT, 0, I64MAX,
         B(log_message_timestamp_before_max_ms), CONFIG_F_ACTIVE,
         "With CreateTime, reject a batch holding a record whose timestamp is further than this behind the "
         "broker's clock (INVALID_TIMESTAMP)."),
    LONG("log.message.timestamp.after.max.ms", "3600000", 0, I64MAX, B(log_message_timestamp_after_max_ms),
         CONFIG_F_ACTIVE,
         "With CreateTime, reject a batch holding a record whose timestamp is further than this ahead of the "
         "broker's clock (INVALID_TIMESTAMP)."),
    BOOL("log.cleaner.enable", "true", B(log_cleaner_enable), 0,
         "Run the background cleaner that compacts topics with the compact policy."),
    INT("log.cleaner.threads", "1", 0, I32MAX, B(log_cleaner_threads), 0, "Number of cleaner threads."),
    LONG("log.cleaner.delete.retention.ms", "86400000", 0, I64MAX, B(log_cleaner_delete_retention_ms), 0,
         "How long tombstones survive in a compacted topic, so slow readers still see deletions."),
    {.name = "log.cleaner.min.cleanable.ratio", .type = CONFIG_DOUBLE, .dflt = "0.5", .min = 0, .max = 1,
     .field = B(log_cleaner_min_cleanable_ratio),
     .doc = "Share of a log that must be uncompacted before the cleaner works on it."},
    LONG("log.cleaner.min.compaction.lag.ms", "0", 0, I64MAX, B(log_cleaner_min_compaction_lag_ms), 0,
         "Records younger than this are never compacted."),
    LONG("log.cleaner.max.compaction.lag.ms", LONG_MAX_TEXT, 1, I64MAX, B(log_cleaner_max_compaction_lag_ms), 0,
         "Records older than this make their log eligible for compaction regardless of the dirty ratio."),
    LONG("log.cleaner.backoff.ms", "15000", 0, I64MAX, B(log_cleaner_backoff_ms), 0,
         "Pause of the cleaner when there is nothing to clean."),
    LONG("log.cleaner.dedupe.buffer.size", "134217728", 0, I64MAX, B(log_cleaner_dedupe_buffer_size), 0,
         "Memory, across all cleaner threads, for the key map used during compaction."),
    ENUM("compression.type", "producer", compression_values, B(compression_type), 0,
         "Codec batches are stored with: producer keeps whatever the producer used; any other value makes the "
         "broker recompress to that codec."),
    {.name = "compression.gzip.level", .type = CONFIG_INT, .dflt = "-1", .min = -1, .max = 9,
     .field = B(compression_gzip_level), .check = check_gzip_level,
     .doc = "gzip level used when the broker compresses: 1 to 9, or -1 for zlib's default."},
    INT("compression.lz4.level", "9", 1, 17, B(compression_lz4_level), 0,
        "lz4 level used when the broker compresses."),
    INT("compression.zstd.level", "3", -131072, 22, B(compression_zstd_level), 0,
        "zstd level used when the broker compresses."),
    INT("message.max.bytes", "1048588", PLOG_MAX_MESSAGE_BYTES_MIN, I32MAX, B(message_max_bytes), CONFIG_F_ACTIVE,
        "Largest record batch, after compression, that a producer may send."),
    INT("min.insync.replicas", "1", 1, I32MAX, B(min_insync_replicas), 0,
        "With acks=all, the fewest in-sync replicas that must have a write before it is acknowledged."),
    BOOL("unclean.leader.election.enable", "false", B(unclean_leader_election_enable), 0,
         "Allow an out-of-sync replica to become leader when no in-sync one is left, at the cost of losing "
         "acknowledged records."),

    /* ---- network ---- */
    {.name = "socket.request.max.bytes", .flags = CONFIG_F_ACTIVE, .type = CONFIG_INT, .dflt = "104857600", .min = 1, .max = I32MAX,
     .field = B(socket_request_max_bytes), .section = "Network",
     .doc = "Largest request frame accepted; a bigger size prefix closes the connection."},
    INT("socket.send.buffer.bytes", "102400", -1, I32MAX, B(socket_send_buffer_bytes), 0,
        "SO_SNDBUF of client sockets; -1 keeps the operating system's default."),
    INT("socket.receive.buffer.bytes", "102400", -1, I32MAX, B(socket_receive_buffer_bytes), 0,
        "SO_RCVBUF of client sockets; -1 keeps the operating system's default."),
    INT("socket.listen.backlog.size", "50", 1, I32MAX, B(socket_listen_backlog_size), 0,
        "Backlog passed to listen()."),
    INT("num.network.threads", "3", 1, 256, B(num_network_threads), CONFIG_F_ACTIVE,
        "Threads running the socket event loops. Kafka's default is 3; when the key is not set Sluice uses "
        "3 or the number of online CPUs, whichever is smaller. At most 256."),
    INT("num.io.threads", "8", 1, 256, B(num_io_threads), CONFIG_F_ACTIVE,
        "Threads that execute requests, including disk I/O. At most 256."),
    INT("queued.max.requests", "500", 1, I32MAX, B(queued_max_requests), CONFIG_F_ACTIVE,
        "Requests that may wait for an I/O thread before the network threads stop reading from sockets."),
    LONG("queued.max.request.bytes", DFLT(NET_DEFAULT_MAX_REQUEST_BYTES_INFLIGHT), -1, I64MAX,
         B(queued_max_request_bytes), CONFIG_F_ACTIVE | CONFIG_F_DEVIATES,
         "Bytes of request frames held at once, across connections, counted as the bytes arrive; reading "
         "pauses while the limit is reached. One client address may hold at most half of it. -1 means no "
         "limit. Kafka's default is -1; Sluice keeps 512 MiB so clients cannot take all of the memory."),
    INT("max.connections", INT_MAX_TEXT, 0, I32MAX, B(max_connections), CONFIG_F_ACTIVE,
        "Most client connections the broker holds at once; new ones are accepted and closed beyond it. "
        "Kafka's default. The broker lowers it to a quarter of the open-file limit (RLIMIT_NOFILE), "
        "so connections never take the descriptors that partitions need (logged at start)."),
    INT("max.connections.per.ip", INT_MAX_TEXT, 0, I32MAX, B(max_connections_per_ip), CONFIG_F_ACTIVE,
        "Most connections from one IP address; new ones beyond it are accepted and closed. 0 admits only the "
        "addresses listed in max.connections.per.ip.overrides."),
    {.name = "max.connections.per.ip.overrides", .type = CONFIG_STRING, .dflt = "",
     .field = B(max_connections_per_ip_overrides), .check = check_ip_overrides, .flags = CONFIG_F_ACTIVE,
     .doc = "Per-address exceptions to max.connections.per.ip, as comma-separated host:count entries (IPv6 "
            "addresses in brackets); host names are resolved at start."},
    LONG("connections.max.idle.ms", "600000", -1, I64MAX, B(connections_max_idle_ms), CONFIG_F_ACTIVE,
         "Close a connection that has had no request, or whose pending response could not be written any "
         "further, for this long; -1 never closes idle connections."),
    INT("fetch.max.bytes", "57671680", 1024, I32MAX, B(fetch_max_bytes), CONFIG_F_ACTIVE,
        "Upper bound on the bytes one Fetch response returns, whatever the client asks for."),

    /* ---- consumer groups and offsets ---- */
    {.name = "offsets.topic.num.partitions", .type = CONFIG_INT, .dflt = "50", .min = 1, .max = I32MAX,
     .field = B(offsets_topic_num_partitions), .flags = CONFIG_F_ACTIVE, .section = "Consumer groups and offsets",
     .doc = "Partitions of the internal committed-offsets topic; fixed once the topic exists."},
    INT("offsets.topic.replication.factor", "1", 1, 32767, B(offsets_topic_replication_factor),
        CONFIG_F_SHORT | CONFIG_F_DEVIATES,
        "Replication factor of the committed-offsets topic. Kafka's default is 3; Sluice uses 1 so a single "
        "node works out of the box."),
    INT("offsets.topic.segment.bytes", "104857600", 1, I32MAX, B(offsets_topic_segment_bytes), CONFIG_F_ACTIVE,
        "Segment size of the committed-offsets topic, kept small for fast compaction and loading."),
    DUR("offsets.retention.minutes", "10080", 1, I32MAX, MINUTE_MS, 0, B(offsets_retention_ms), CONFIG_F_ACTIVE,
        "How long committed offsets of an empty group are kept."),
    INT("group.initial.rebalance.delay.ms", "3000", 0, I32MAX, B(group_initial_rebalance_delay_ms), CONFIG_F_ACTIVE,
        "How long a new group waits for more members before its first rebalance."),
    INT("group.min.session.timeout.ms", "6000", 0, I32MAX, B(group_min_session_timeout_ms), CONFIG_F_ACTIVE,
        "Smallest session timeout a group member may ask for."),
    INT("group.max.session.timeout.ms", "1800000", 0, I32MAX, B(group_max_session_timeout_ms), CONFIG_F_ACTIVE,
        "Largest session timeout a group member may ask for; at least group.min.session.timeout.ms."),
    INT("group.max.size", INT_MAX_TEXT, 1, I32MAX, B(group_max_size), CONFIG_F_ACTIVE,
        "Most members one consumer group may have."),
    INT("share.coordinator.state.topic.replication.factor", "1", 1, 32767, CONFIG_NO_FIELD,
        CONFIG_F_SHORT | CONFIG_F_DEVIATES,
        "Replication factor of the internal share-group state topic. Accepted so Kafka 4.0 files load; Kafka's "
        "default is 3, Sluice's 1."),
    INT("share.coordinator.state.topic.min.isr", "1", 1, I32MAX, CONFIG_NO_FIELD, CONFIG_F_DEVIATES,
        "min.insync.replicas of the share-group state topic. Kafka's default is 2, Sluice's 1."),

    /* ---- transactions and idempotence ---- */
    {.name = "transaction.state.log.replication.factor", .type = CONFIG_INT, .dflt = "1", .min = 1,
     .max = 32767, .field = B(transaction_state_log_replication_factor),
     .flags = CONFIG_F_SHORT | CONFIG_F_DEVIATES, .section = "Transactions and idempotence",
     .doc = "Replication factor of the internal transaction state topic. Kafka's default is 3; Sluice uses 1."},
    INT("transaction.state.log.min.isr", "1", 1, I32MAX, B(transaction_state_log_min_isr), CONFIG_F_DEVIATES,
        "min.insync.replicas of the transaction state topic. Kafka's default is 2; Sluice uses 1."),
    INT("transaction.state.log.num.partitions", "50", 1, I32MAX, B(transaction_state_log_num_partitions), 0,
        "Partitions of the transaction state topic."),
    INT("transactional.id.expiration.ms", "604800000", 1, I32MAX, B(transactional_id_expiration_ms), 0,
        "A transactional id with no transaction for this long is forgotten."),
    INT("transaction.max.timeout.ms", "900000", 1, I32MAX, B(transaction_max_timeout_ms), 0,
        "Largest transaction timeout a producer may ask for."),
    INT("producer.id.expiration.ms", "86400000", 1, I32MAX, B(producer_id_expiration_ms), 0,
        "A producer id that has not written for this long is forgotten, with its sequence state."),

    /* ---- logging ---- */
    {.name = "log.level", .type = CONFIG_ENUM, .dflt = "info", .allowed = level_values,
     .field = B(log_level), .flags = CONFIG_F_ACTIVE | CONFIG_F_ICASE | CONFIG_F_SLUICE, .section = "Logging",
     .doc = "Least severe level written to stderr. The environment variable SLUICE_LOG_LEVEL wins over the "
            "file; --override wins over both. Kafka configures logging through log4j instead."},

    /* ---- Sluice's own ---- */
    {.name = "sluice.fetch.zero.copy", .type = CONFIG_BOOL, .dflt = "true", .field = B(fetch_zero_copy),
     .flags = CONFIG_F_SLUICE | CONFIG_F_ACTIVE, .section = "Sluice-specific",
     .doc = "Serve fetched record bytes with sendfile() from segment files (true) or by reading them into a "
            "buffer and writing that (false). Zero copy saves CPU on a real network interface; on loopback "
            "the copying path can be faster. The default may change with the fetch benchmark."},
    LONG("sluice.conversion.max.bytes.per.request", "134217728", 1048576, (int64_t)1 << 40,
         B(conversion_max_bytes_per_request), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Work one Fetch v0-3 request may cause converting batches to the old message formats: bytes "
         "read, decompressed and written. When it is used up the response carries what is converted so "
         "far. No batch is decompressed past this (or 64 MiB): a larger one is answered CORRUPT_MESSAGE."),
    LONG("sluice.conversion.max.bytes.per.second", "268435456", 1048576, (int64_t)1 << 40,
         B(conversion_max_bytes_per_second), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Record-format conversion work the whole broker does per second for old clients: Fetch v0-3 "
         "down-conversion (as above) and the decompression of Produce v0-2 message sets. When it is used "
         "up, Fetch v0-3 requests are held (at most a second) and answered with throttle_time_ms, and "
         "Produce v0-2 partitions that need decompressing get REQUEST_TIMED_OUT (producers retry), so "
         "conversion cannot take every I/O thread."),
    LONG("sluice.request.work.max.ms", "5000", 1, 3600000, B(request_work_max_ms),
         CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Longest a request handler keeps working on one request (Fetch down-conversion) before it "
         "answers with what it has. Shutdown stops such work at once."),
    INT("sluice.max.inflight.requests.per.connection", "100", 1, 10000,
        B(max_inflight_requests_per_connection), CONFIG_F_SLUICE,
        "Pipelined requests read from one connection before earlier ones are answered; beyond it the "
        "connection is not read."),
    LONG("sluice.connection.max.buffered.bytes", "16777216", 65536, (int64_t)1 << 34,
         B(connection_max_buffered_bytes), CONFIG_F_SLUICE,
         "Response bytes queued for one connection above which no more requests are read from it, so a slow "
         "reader holds bounded memory."),
    LONG("sluice.request.read.timeout.ms", DFLT(NET_DEFAULT_REQUEST_READ_TIMEOUT_MS), 1, I32MAX,
         B(request_read_timeout_ms), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "A request must arrive whole within this many milliseconds of its first byte, or the connection is "
         "closed (logged): a client that sends a frame slowly cannot hold its memory and connection for "
         "long. The default matches clients' request.timeout.ms, after which they give up anyway."),
    LONG("sluice.queued.max.response.bytes", DFLT(NET_DEFAULT_MAX_RESPONSE_BYTES_HELD), -1, I64MAX,
         B(queued_max_response_bytes), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Bytes of responses held in memory until their clients read them, across connections (record bytes "
         "sent from segment files do not count). Beyond it, Fetch v0-3 answers carry fewer down-converted "
         "records (possibly none; the client fetches again). -1 means no limit."),
};

static const config_def topic_defs[] = {
    LIST("cleanup.policy", "delete", cleanup_values, T(cleanup_policy), CONFIG_F_ACTIVE,
         "delete, compact or both (compact,delete): what happens to this topic's old segments."),
    {.name = "compression.gzip.level", .type = CONFIG_INT, .dflt = "-1", .min = -1, .max = 9,
     .field = T(compression_gzip_level), .check = check_gzip_level,
     .doc = "gzip level when the broker compresses for this topic: 1 to 9, or -1 for zlib's default."},
    INT("compression.lz4.level", "9", 1, 17, T(compression_lz4_level), 0,
        "lz4 level when the broker compresses for this topic."),
    INT("compression.zstd.level", "3", -131072, 22, T(compression_zstd_level), 0,
        "zstd level when the broker compresses for this topic."),
    ENUM("compression.type", "producer", compression_values, T(compression_type), 0,
         "Codec this topic's batches are stored with; producer keeps the producer's."),
    LONG("delete.retention.ms", "86400000", 0, I64MAX, T(delete_retention_ms), 0,
         "How long tombstones stay in a compacted topic."),
    LONG("file.delete.delay.ms", "60000", 0, I64MAX, T(file_delete_delay_ms), 0,
         "Delay between dropping a segment and deleting its files."),
    LONG("flush.messages", LONG_MAX_TEXT, PLOG_FLUSH_MESSAGES_MIN, I64MAX, T(flush_messages), CONFIG_F_ACTIVE,
         "fsync after this many appended records."),
    LONG("flush.ms", LONG_MAX_TEXT, PLOG_FLUSH_MS_MIN, I64MAX, T(flush_ms), CONFIG_F_ACTIVE,
         "fsync when the oldest unflushed record is this old."),
    INT("index.interval.bytes", "4096", PLOG_INDEX_INTERVAL_MIN, I32MAX, T(index_interval_bytes), CONFIG_F_ACTIVE,
        "Bytes of records between offset index entries."),
    LONG("max.compaction.lag.ms", LONG_MAX_TEXT, 1, I64MAX, T(max_compaction_lag_ms), 0,
         "Longest a record may stay uncompacted."),
    INT("max.message.bytes", "1048588", PLOG_MAX_MESSAGE_BYTES_MIN, I32MAX, T(max_message_bytes), CONFIG_F_ACTIVE,
        "Largest record batch accepted for this topic."),
    LONG("message.timestamp.after.max.ms", "3600000", 0, I64MAX, T(message_timestamp_after_max_ms),
         CONFIG_F_ACTIVE, "With CreateTime, how far ahead of the broker's clock a record timestamp may be."),
    LONG("message.timestamp.before.max.ms", LONG_MAX_TEXT, 0, I64MAX, T(message_timestamp_before_max_ms),
         CONFIG_F_ACTIVE, "With CreateTime, how far behind the broker's clock a record timestamp may be."),
    ENUM("message.timestamp.type", "CreateTime", timestamp_values, T(message_timestamp_type), CONFIG_F_ACTIVE,
         "CreateTime keeps producer timestamps; LogAppendTime stamps batches with the broker's clock."),
    {.name = "min.cleanable.dirty.ratio", .type = CONFIG_DOUBLE, .dflt = "0.5", .min = 0, .max = 1,
     .field = T(min_cleanable_dirty_ratio),
     .doc = "Uncompacted share of the log that makes it eligible for compaction."},
    LONG("min.compaction.lag.ms", "0", 0, I64MAX, T(min_compaction_lag_ms), 0,
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

/* The broker key each topic key takes its default from, by topic key name.
 * Kept beside the table rather than in every row to keep rows short. */
static const struct {
    const char *topic, *broker;
} topic_synonyms[] = {
    {"cleanup.policy", "log.cleanup.policy"},
    {"compression.gzip.level", "compression.gzip.level"},
    {"compression.lz4.level", "compression.lz4.level"},
    {"compression.zstd.level", "compression.zstd.level"},
    {"compression.type", "compression.type"},
    {"delete.retention.ms", "log.cleaner.delete.retention.ms"},
    {"file.delete.delay.ms", "log.segment.delete.delay.ms"},
    {"flush.messages", "log.flush.interval.messages"},
    {"flush.ms", "log.flush.interval.ms"},
    {"index.interval.bytes", "log.index.interval.bytes"},
    {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"},
    {"max.message.bytes", "message.max.bytes"},
    {"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms"},
    {"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms"},
    {"message.timestamp.type", "log.message.timestamp.type"},
    {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"},
    {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"},
    {"min.insync.replicas", "min.insync.replicas"},
    {"preallocate", "log.preallocate"},
    {"retention.bytes", "log.retention.bytes"},
    {"retention.ms", "log.retention.ms"},
    {"segment.bytes", "log.segment.bytes"},
    {"segment.index.bytes", "log.index.size.max.bytes"},
    {"segment.jitter.ms", "log.roll.jitter.ms"},
    {"segment.ms", "log.roll.ms"},
    {"unclean.leader.election.enable", "unclean.leader.election.enable"},
};

#define N_BROKER (sizeof broker_defs / sizeof broker_defs[0])
#define N_TOPIC  (sizeof topic_defs / sizeof topic_defs[0])
_Static_assert(N_BROKER <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX");
_Static_assert(N_TOPIC == sizeof topic_synonyms / sizeof topic_synonyms[0],
               "every topic key needs a synonym");

/* ---- small helpers -------------------------------------------------------------- */

/* snprintf that never fails loudly: messages are best effort and bounded. */
static void fmt(char *buf, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t n, const char *f, ...) {
    va_list ap;
    if (n == 0)
        return;
    va_start(ap, f);
    vsnprintf(buf, n, f, ap);
    va_end(ap);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\r' || c == '\n'; }

/* A trimmed view of s: [*start, *start + *len). */
static void trim_span(const char *s, size_t n, const char **start, size_t *len) {
    while (n > 0 && is_ws(*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_ws(s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

static int index_of(const config_def *defs, size_t n, const char *name) {
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i].name, name) == 0)
            return (int)i;
    return -1;
}

const config_def *config_broker_defs(size_t *n) {
    *n = N_BROKER;
    return broker_defs;
}

const config_def *config_topic_defs(size_t *n) {
    *n = N_TOPIC;
    return topic_defs;
}

const config_def *config_find_broker(const char *name) {
    int i = index_of(broker_defs, N_BROKER, name);
    return i < 0 ? NULL : &broker_defs[i];
}

const config_def *config_find_topic(const char *name) {
    int i = index_of(topic_defs, N_TOPIC, name);
    return i < 0 ? NULL : &topic_defs[i];
}

const config_def *config_topic_broker_synonym(const config_def *td) {
    if (td < topic_defs || td >= topic_defs + N_TOPIC)
        return NULL;
    const config_def *bd = config_find_broker(topic_synonyms[td - topic_defs].broker);
    assert(strcmp(topic_synonyms[td - topic_defs].topic, td->name) == 0);
    assert(bd != NULL);
    return bd;
}

config_kafka_type config_def_kafka_type(const config_def *d) {
    switch (d->type) {
    case CONFIG_INT:
        return (d->flags & CONFIG_F_SHORT) ? CONFIG_KTYPE_SHORT : CONFIG_KTYPE_INT;
    case CONFIG_LONG:
        return CONFIG_KTYPE_LONG;
    case CONFIG_BOOL:
        return CONFIG_KTYPE_BOOLEAN;
    case CONFIG_DOUBLE:
        return CONFIG_KTYPE_DOUBLE;
    case CONFIG_STRING:
    case CONFIG_ENUM:
        return CONFIG_KTYPE_STRING;
    case CONFIG_LIST:
        return CONFIG_KTYPE_LIST;
    case CONFIG_DURATION:
        /* Kafka declares the hours and minutes forms as int, the ms form as long. */
        return d->unit_ms == 1 ? CONFIG_KTYPE_LONG : CONFIG_KTYPE_INT;
    }
    return CONFIG_KTYPE_UNKNOWN;
}

/* ---- value parsing ---------------------------------------------------------------- */

/* A parsed scalar. Which member is meaningful depends on the row's type. */
typedef struct cvalue {
    int64_t i;      /* INT, LONG, DURATION (in the key's unit) */
    double d;       /* DOUBLE */
    bool b;         /* BOOL */
    int idx;        /* ENUM */
    unsigned flags; /* LIST with allowed values */
} cvalue;

typedef struct span {
    const char *p;
    size_t n;
} span;

/* Splits a list on commas, trimming each item. An empty (or all-blank)
 * value is the empty list. Returns the count, or -1 with why filled. */
static int split_list(const char *v, span *out, int max, char *why, size_t whyn) {
    const char *s;
    size_t n;
    int count = 0;
    trim_span(v, strlen(v), &s, &n);
    if (n == 0)
        return 0;
    for (;;) {
        const char *comma = memchr(s, ',', n);
        size_t len = comma ? (size_t)(comma - s) : n;
        span item;
        trim_span(s, len, &item.p, &item.n);
        if (item.n == 0) {
            fmt(why, whyn, "empty list item");
            return -1;
        }
        if (count == max) {
            fmt(why, whyn, "more than %d list items", max);
            return -1;
        }
        out[count++] = item;
        if (comma == NULL)
            break;
        n -= len + 1;
        s = comma + 1;
    }
    return count;
}

static bool span_eq(span s, const char *lit, bool icase) {
    size_t n = strlen(lit);
    return s.n == n && (icase ? strncasecmp(s.p, lit, n) == 0 : memcmp(s.p, lit, n) == 0);
}

/* Writes "a, b, c" for a NULL-terminated list. */
static void join_allowed(const char *const *allowed, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; allowed[i] != NULL && used < n; i++) {
        int r = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", allowed[i]);
        if (r < 0)
            break;
        used += (size_t)r;
    }
}

static int parse_i64(const char *v, int64_t *out) {
    char *end;
    if (*v == '\0' || is_ws(*v))
        return -1;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

/* Describes the range of a numeric row. Docs say "at least N" when the
 * upper bound is just the type's limit; error messages always give both
 * bounds so a 32-bit overflow is explained too. */
static void range_text(const config_def *d, bool docs, char *buf, size_t n) {
    bool is32 = d->type == CONFIG_INT || (d->type == CONFIG_DURATION && d->unit_ms != 1);
    if (d->max == I64MAX || (docs && is32 && d->max == I32MAX))
        fmt(buf, n, "at least %lld", (long long)d->min);
    else
        fmt(buf, n, "from %lld to %lld", (long long)d->min, (long long)d->max);
}

/* Parses text (already trimmed) against d. out may be NULL to validate only. */
static int parse_value(const config_def *d, const char *v, cvalue *out, char *why, size_t whyn) {
    cvalue tmp = {0};
    char buf[256];
    span items[CONFIG_LIST_MAX];

    if (strlen(v) > CONFIG_VALUE_MAX) {
        fmt(why, whyn, "value longer than %d bytes", CONFIG_VALUE_MAX);
        return -1;
    }
    switch (d->type) {
    case CONFIG_INT:
    case CONFIG_LONG:
    case CONFIG_DURATION: {
        bool is32 = d->type == CONFIG_INT || (d->type == CONFIG_DURATION && d->unit_ms != 1);
        range_text(d, false, buf, sizeof buf);
        if (parse_i64(v, &tmp.i) != 0 || (is32 && (tmp.i < INT32_MIN || tmp.i > INT32_MAX))) {
            fmt(why, whyn, "expected an integer %s", buf);
            return -1;
        }
        if (tmp.i < d->min || tmp.i > d->max) {
            fmt(why, whyn, "out of range: expected an integer %s", buf);
            return -1;
        }
        break;
    }
    case CONFIG_DOUBLE: {
        char *end;
        errno = 0;
        tmp.d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(tmp.d)) {
            fmt(why, whyn, "expected a number from %lld to %lld", (long long)d->min, (long long)d->max);
            return -1;
        }
        if (tmp.d < (double)d->min || tmp.d > (double)d->max) {
            fmt(why, whyn, "out of range: expected a number from %lld to %lld", (long long)d->min,
                (long long)d->max);
            return -1;
        }
        break;
    }
    case CONFIG_BOOL:
        if (strcasecmp(v, "true") == 0) {
            tmp.b = true;
        } else if (strcasecmp(v, "false") == 0) {
            tmp.b = false;
        } else {
            fmt(why, whyn, "expected true or false");
            return -1;
        }
        break;
    case CONFIG_ENUM: {
        int i;
        for (i = 0; d->allowed[i] != NULL; i++) {
            if ((d->flags & CONFIG_F_ICASE) ? strcasecmp(v, d->allowed[i]) == 0
                                            : strcmp(v, d->allowed[i]) == 0)
                break;
        }
        if (d->allowed[i] == NULL) {
            join_allowed(d->allowed, buf, sizeof buf);
            fmt(why, whyn, "expected one of: %s", buf);
            return -1;
        }
        tmp.idx = i;
        break;
    }
    case CONFIG_LIST: {
        int n = split_list(v, items, CONFIG_LIST_MAX, why, whyn);
        if (n < 0)
            return -1;
        for (int k = 0; d->allowed != NULL && k < n; k++) {
            int i;
            for (i = 0; d->allowed[i] != NULL; i++)
                if (span_eq(items[k], d->allowed[i], false))
                    break;
            if (d->allowed[i] == NULL) {
                join_allowed(d->allowed, buf, sizeof buf);
                fmt(why, whyn, "list item '%.*s' is not one of: %s", (int)(items[k].n > 64 ? 64 : items[k].n),
                    items[k].p, buf);
                return -1;
            }
            tmp.flags |= 1u << i;
        }
        if (d->allowed != NULL && n == 0) {
            join_allowed(d->allowed, buf, sizeof buf);
            fmt(why, whyn, "expected one or more of: %s", buf);
            return -1;
        }
        break;
    }
    case CONFIG_STRING:
        break;
    }
    if (d->check != NULL && d->check(v, why, whyn) != 0)
        return -1;
    if (out != NULL)
        *out = tmp;
    return 0;
}

int config_validate_value(const config_def *d, const char *value, char *why, size_t whyn) {
    const char *s;
    size_t n;
    char buf[CONFIG_VALUE_MAX + 1];
    if (value == NULL) {
        fmt(why, whyn, "a value is required");
        return -1;
    }
    trim_span(value, strlen(value), &s, &n);
    if (n > CONFIG_VALUE_MAX) {
        fmt(why, whyn, "value longer than %d bytes", CONFIG_VALUE_MAX);
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return parse_value(d, buf, NULL, why, whyn);
}

static int check_ip_overrides(const char *v, char *why, size_t whyn) {
    return net_ip_overrides_check(v, why, whyn);
}

static int check_gzip_level(const char *v, char *why, size_t whyn) {
    if (strcmp(v, "0") == 0) {
        fmt(why, whyn, "expected -1 or a level from 1 to 9");
        return -1;
    }
    return 0;
}

/* ---- listeners ------------------------------------------------------------------------ */

static const char *const protocol_names[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", NULL};

const char *config_protocol_name(config_protocol p) {
    return (unsigned)p < 4 ? protocol_names[p] : "UNKNOWN";
}

static int protocol_from(span s, config_protocol *out) {
    for (int i = 0; protocol_names[i] != NULL; i++) {
        if (span_eq(s, protocol_names[i], true)) {
            *out = (config_protocol)i;
            return 0;
        }
    }
    return -1;
}

static bool valid_listener_name(span s) {
    if (s.n == 0 || s.n >= CONFIG_LISTENER_NAME_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!isalnum((unsigned char)s.p[i]) && s.p[i] != '_' && s.p[i] != '-')
            return false;
    return true;
}

/* Looks name up in a NAME:PROTO,... map. Returns 0 on a hit. */
static int map_lookup(const char *map, const char *name, config_protocol *out, char *why, size_t whyn) {
    span items[CONFIG_LIST_MAX];
    int n = split_list(map, items, CONFIG_LIST_MAX, why, whyn);
    for (int i = 0; i < n; i++) {
        const char *colon = memchr(items[i].p, ':', items[i].n);
        if (colon == NULL)
            continue;
        span k = {items[i].p, (size_t)(colon - items[i].p)};
        span v = {colon + 1, items[i].n - k.n - 1};
        trim_span(k.p, k.n, &k.p, &k.n);
        trim_span(v.p, v.n, &v.p, &v.n);
        if (span_eq(k, name, true))
            return protocol_from(v, out) == 0 ? 0 : -1;
    }
    return -1;
}

static int check_protocol_map(const char *v, char *why, size_t whyn) {
    span items[CONFIG_LIST_MAX];
    int n = split_list(v, items, CONFIG_LIST_MAX, why, whyn);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *colon = memchr(items[i].p, ':', items[i].n);
        config_protocol p;
        int shown = (int)(items[i].n > 64 ? 64 : items[i].n);
        if (colon == NULL) {
            fmt(why, whyn, "entry '%.*s' is not of the form NAME:PROTOCOL", shown, items[i].p);
            return -1;
        }
        span k = {items[i].p, (size_t)(colon - items[i].p)};
        span pv = {colon + 1, items[i].n - k.n - 1};
        trim_span(k.p, k.n, &k.p, &k.n);
        trim_span(pv.p, pv.n, &pv.p, &pv.n);
        if (!valid_listener_name(k) || protocol_from(pv, &p) != 0) {
            fmt(why, whyn,
                "entry '%.*s': expected NAME:PROTOCOL with PROTOCOL one of PLAINTEXT, SSL, "
                "SASL_PLAINTEXT, SASL_SSL",
                shown, items[i].p);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            const char *c2 = memchr(items[j].p, ':', items[j].n);
            span k2 = {items[j].p, (size_t)(c2 - items[j].p)};
            trim_span(k2.p, k2.n, &k2.p, &k2.n);
            if (k2.n == k.n && strncasecmp(k2.p, k.p, k.n) == 0) {
                fmt(why, whyn, "listener name '%.*s' is mapped twice", (int)k.n, k.p);
                return -1;
            }
        }
    }
    return 0;
}

int config_parse_listeners(const char *text, const char *map, config_listener *out, int max, int *n,
                           char *why, size_t whyn) {
    span items[CONFIG_LIST_MAX];
    int count;
    *n = 0;
    count = split_list(text, items, CONFIG_LIST_MAX, why, whyn);
    if (count < 0)
        return -1;
    if (count == 0) {
        fmt(why, whyn, "at least one listener is required");
        return -1;
    }
    if (count > max) {
        fmt(why, whyn, "more than %d listeners", max);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        span it = items[i];
        config_listener *l = &out[i];
        int shown = (int)(it.n > 96 ? 96 : it.n);
        const char *sep = NULL;
        for (size_t k = 0; k + 3 <= it.n; k++) {
            if (memcmp(it.p + k, "://", 3) == 0) {
                sep = it.p + k;
                break;
            }
        }
        memset(l, 0, sizeof *l);
        if (sep == NULL) {
            fmt(why, whyn, "'%.*s' is not of the form NAME://host:port", shown, it.p);
            return -1;
        }
        span name = {it.p, (size_t)(sep - it.p)};
        if (!valid_listener_name(name)) {
            fmt(why, whyn, "'%.*s': listener name must be letters, digits, '_' or '-'", shown, it.p);
            return -1;
        }
        for (size_t k = 0; k < name.n; k++)
            l->name[k] = (char)toupper((unsigned char)name.p[k]);
        const char *hp = sep + 3, *end = it.p + it.n, *colon;
        span host;
        if (hp < end && *hp == '[') {
            const char *rb = memchr(hp, ']', (size_t)(end - hp));
            if (rb == NULL || rb + 1 >= end || rb[1] != ':') {
                fmt(why, whyn, "'%.*s': expected [ipv6-address]:port", shown, it.p);
                return -1;
            }
            host = (span){hp + 1, (size_t)(rb - hp - 1)};
            colon = rb + 1;
        } else {
            colon = NULL;
            for (const char *q = hp; q < end; q++)
                if (*q == ':')
                    colon = q;
            if (colon == NULL) {
                fmt(why, whyn, "'%.*s': missing :port", shown, it.p);
                return -1;
            }
            host = (span){hp, (size_t)(colon - hp)};
            if (memchr(host.p, ':', host.n) != NULL) {
                fmt(why, whyn, "'%.*s': IPv6 addresses must be written in brackets", shown, it.p);
                return -1;
            }
        }
        if (host.n >= CONFIG_HOST_MAX) {
            fmt(why, whyn, "'%.*s': host name too long", shown, it.p);
            return -1;
        }
        for (size_t k = 0; k < host.n; k++) {
            unsigned char c = (unsigned char)host.p[k];
            if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '%') {
                fmt(why, whyn, "'%.*s': invalid character in host", shown, it.p);
                return -1;
            }
        }
        memcpy(l->host, host.p, host.n);
        const char *pp = colon + 1;
        size_t plen = (size_t)(end - pp);
        unsigned port = 0;
        if (plen == 0 || plen > 5) {
            fmt(why, whyn, "'%.*s': port must be a number from 0 to 65535", shown, it.p);
            return -1;
        }
        for (size_t k = 0; k < plen; k++) {
            if (!isdigit((unsigned char)pp[k])) {
                fmt(why, whyn, "'%.*s': port must be a number from 0 to 65535", shown, it.p);
                return -1;
            }
            port = port * 10 + (unsigned)(pp[k] - '0');
        }
        if (port > 65535) {
            fmt(why, whyn, "'%.*s': port must be a number from 0 to 65535", shown, it.p);
            return -1;
        }
        l->port = (uint16_t)port;
        for (int j = 0; j < i; j++) {
            if (strcmp(out[j].name, l->name) == 0) {
                fmt(why, whyn, "listener name %s is used twice", l->name);
                return -1;
            }
        }
        l->protocol = CONFIG_PROTOCOL_PLAINTEXT;
        if (map != NULL) {
            if (map_lookup(map, l->name, &l->protocol, why, whyn) != 0) {
                fmt(why, whyn, "listener name %s has no entry in listener.security.protocol.map", l->name);
                return -1;
            }
            if (l->protocol != CONFIG_PROTOCOL_PLAINTEXT) {
                fmt(why, whyn, "listener %s uses %s, which Sluice does not support yet (only PLAINTEXT)",
                    l->name, config_protocol_name(l->protocol));
                return -1;
            }
        }
    }
    *n = count;
    return 0;
}

static int check_listeners(const char *v, char *why, size_t whyn) {
    config_listener tmp[CONFIG_LISTENERS_MAX];
    int n;
    return config_parse_listeners(v, NULL, tmp, CONFIG_LISTENERS_MAX, &n, why, whyn);
}

/* ---- the properties syntax ----------------------------------------------------------------- */

/* Appends the UTF-8 form of code point cp. */
static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* Decodes the escape at L[*i] == '\\' into o; advances *i past it. The
 * output is never longer than the escape, so buffers sized like the input
 * suffice. Returns bytes written, or -1 for a malformed \uXXXX. */
static int unescape(const char *L, size_t n, size_t *i, char *o) {
    assert(L[*i] == '\\');
    if (*i + 1 >= n) {
        (*i)++; /* a lone trailing backslash disappears */
        return 0;
    }
    char c = L[*i + 1];
    *i += 2;
    switch (c) {
    case 't':
        *o = '\t';
        return 1;
    case 'n':
        *o = '\n';
        return 1;
    case 'r':
        *o = '\r';
        return 1;
    case 'f':
        *o = '\f';
        return 1;
    case 'u': {
        unsigned cp = 0;
        if (*i + 4 > n)
            return -1;
        for (int k = 0; k < 4; k++) {
            char h = L[*i + (size_t)k];
            if (!isxdigit((unsigned char)h))
                return -1;
            cp = cp * 16 +
                 (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
        }
        *i += 4;
        return (int)put_utf8(o, cp);
    }
    default:
        *o = c;
        return 1;
    }
}

static bool is_line_ws(char c) { return c == ' ' || c == '\t' || c == '\f'; }

/* The next physical line at *pos: sets [*s, *s + *len) without its line end
 * and advances *pos past it. */
static void next_line(const char *text, size_t textlen, size_t *pos, const char **s, size_t *len) {
    const char *p = text + *pos;
    const char *nl = memchr(p, '\n', textlen - *pos);
    size_t n = nl ? (size_t)(nl - p) : textlen - *pos;
    *pos += nl ? n + 1 : n;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    *s = p;
    *len = n;
}

int config_props_parse(const char *text, size_t len, config_props_fn fn, void *ctx,
                       char err[CONFIG_ERR_MAX]) {
    /* One heap block for the logical line, the key and the value: each is at
     * most CONFIG_LINE_MAX bytes, and unescaping never grows text. */
    char *logical = malloc(3 * (CONFIG_LINE_MAX + 1));
    char *key = logical + CONFIG_LINE_MAX + 1;
    char *val = key + CONFIG_LINE_MAX + 1;
    size_t pos = 0;
    int lineno = 0, rc = 0;

    if (logical == NULL) {
        fmt(err, CONFIG_ERR_MAX, "out of memory");
        return -1;
    }
    while (pos < len) {
        const char *s;
        size_t n, ln = 0;
        next_line(text, len, &pos, &s, &n);
        lineno++;
        while (n > 0 && is_line_ws(*s)) {
            s++;
            n--;
        }
        if (n == 0 || *s == '#' || *s == '!')
            continue;
        int start = lineno;
        for (;;) {
            size_t bs = 0;
            while (bs < n && s[n - 1 - bs] == '\\')
                bs++;
            bool cont = bs % 2 == 1;
            size_t take = cont ? n - 1 : n;
            if (ln + take > CONFIG_LINE_MAX) {
                fmt(err, CONFIG_ERR_MAX, "line %d: longer than %d bytes", start, CONFIG_LINE_MAX);
                rc = -1;
                goto out;
            }
            memcpy(logical + ln, s, take);
            ln += take;
            if (!cont || pos >= len)
                break;
            next_line(text, len, &pos, &s, &n);
            lineno++;
            while (n > 0 && is_line_ws(*s)) {
                s++;
                n--;
            }
        }
        logical[ln] = '\0';

        /* Key: up to the first unescaped '=', ':' or blank. */
        size_t i = 0, k = 0, v = 0;
        while (i < ln) {
            char c = logical[i];
            if (c == '\\') {
                int w = unescape(logical, ln, &i, key + k);
                if (w < 0)
                    goto bad_escape;
                k += (size_t)w;
                continue;
            }
            if (c == '=' || c == ':' || is_line_ws(c))
                break;
            key[k++] = c;
            i++;
        }
        key[k] = '\0';
        while (i < ln && is_line_ws(logical[i]))
            i++;
        if (i < ln && (logical[i] == '=' || logical[i] == ':'))
            i++;
        while (i < ln && is_line_ws(logical[i]))
            i++;
        while (i < ln) {
            if (logical[i] == '\\') {
                int w = unescape(logical, ln, &i, val + v);
                if (w < 0)
                    goto bad_escape;
                v += (size_t)w;
                continue;
            }
            val[v++] = logical[i++];
        }
        /* Kafka trims values before interpreting them; do it once here. */
        while (v > 0 && is_ws(val[v - 1]))
            v--;
        val[v] = '\0';
        assert(k <= CONFIG_LINE_MAX && v <= CONFIG_LINE_MAX);
        rc = fn(ctx, key, val, start);
        if (rc != 0)
            goto out;
        continue;
    bad_escape:
        fmt(err, CONFIG_ERR_MAX, "line %d: malformed \\uXXXX escape", start);
        rc = -1;
        goto out;
    }
out:
    free(logical);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------ */

void config_init(broker_config *c) {
    char err[CONFIG_ERR_MAX];
    memset(c, 0, sizeof *c);
    arena_init(&c->mem_, CONFIG_ARENA_LIMIT);
    /* The defaults are valid by construction (a unit test proves it), so
     * finishing an empty configuration cannot fail. */
    int rc = config_finish(c, err);
    assert(rc == 0);
    (void)rc;
}

void config_free(broker_config *c) {
    arena_reset(&c->mem_);
    memset(c->slot_, 0, sizeof c->slot_);
}

int config_warning_count(const broker_config *c) { return c->warnings_; }
const char *config_last_warning(const broker_config *c) { return c->last_warning_; }

static const char *arena_strndup(arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void warn(broker_config *c, const char *where, const char *key) {
    c->warnings_++;
    fmt(c->last_warning_, sizeof c->last_warning_, "%s: unknown configuration key '%.128s' ignored", where,
        key);
    LOG_WARN("config", "%s", c->last_warning_);
}

/* where: "file:line", "--override" or the environment variable's name. */
static int set_at(broker_config *c, const char *key, const char *value, config_origin origin,
                  const char *where, char err[CONFIG_ERR_MAX]) {
    char why[256];
    const char *s;
    size_t n;
    int i = index_of(broker_defs, N_BROKER, key);
    if (i < 0) {
        warn(c, where, key);
        return 0;
    }
    if (value == NULL) {
        c->slot_[i].text = NULL;
        c->slot_[i].origin = CONFIG_ORIGIN_DEFAULT;
        return 0;
    }
    trim_span(value, strlen(value), &s, &n);
    if (n > CONFIG_VALUE_MAX) {
        fmt(err, CONFIG_ERR_MAX, "%s: value of %s is longer than %d bytes", where, key, CONFIG_VALUE_MAX);
        return -1;
    }
    const char *copy = arena_strndup(&c->mem_, s, n);
    if (copy == NULL) {
        fmt(err, CONFIG_ERR_MAX, "%s: configuration exceeds %u bytes of memory", where, CONFIG_ARENA_LIMIT);
        return -1;
    }
    if (parse_value(&broker_defs[i], copy, NULL, why, sizeof why) != 0) {
        fmt(err, CONFIG_ERR_MAX, "%s: invalid value '%.96s' for %s: %s", where, copy, key, why);
        return -1;
    }
    c->slot_[i].text = copy;
    c->slot_[i].origin = (uint8_t)origin;
    return 0;
}

int config_set(broker_config *c, const char *key, const char *value, config_origin origin,
               char err[CONFIG_ERR_MAX]) {
    const char *where = origin == CONFIG_ORIGIN_OVERRIDE ? "--override"
                        : origin == CONFIG_ORIGIN_ENV    ? "environment"
                                                         : "config";
    return set_at(c, key, value, origin, where, err);
}

struct file_ctx {
    broker_config *c;
    const char *name;
    char *err;
};

static int file_pair(void *ctx, const char *key, const char *value, int line) {
    struct file_ctx *f = ctx;
    char where[160];
    fmt(where, sizeof where, "%.128s:%d", f->name, line);
    if (key[0] == '\0') {
        fmt(f->err, CONFIG_ERR_MAX, "%s: missing key before the value", where);
        return 1;
    }
    /* 1, not -1: config_props_parse keeps -1 for its own syntax errors. */
    return set_at(f->c, key, value, CONFIG_ORIGIN_FILE, where, f->err) == 0 ? 0 : 1;
}

int config_load_text(broker_config *c, const char *name, const char *text, size_t len,
                     char err[CONFIG_ERR_MAX]) {
    struct file_ctx f = {c, name, err};
    char perr[CONFIG_ERR_MAX];
    int rc = config_props_parse(text, len, file_pair, &f, perr);
    if (rc == -1)
        fmt(err, CONFIG_ERR_MAX, "%.128s: %s", name, perr);
    return rc == 0 ? 0 : -1;
}

int config_load_file(broker_config *c, const char *path, char err[CONFIG_ERR_MAX]) {
    char *buf = NULL;
    struct stat st;
    size_t got = 0;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fmt(err, CONFIG_ERR_MAX, "cannot open configuration file %.256s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fmt(err, CONFIG_ERR_MAX, "%.256s is not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)CONFIG_FILE_MAX) {
        fmt(err, CONFIG_ERR_MAX, "%.256s is larger than %u bytes", path, CONFIG_FILE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fmt(err, CONFIG_ERR_MAX, "out of memory reading %.256s", path);
        goto out;
    }
    /* Bounded by the size seen at fstat; a file that grows meanwhile is cut. */
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fmt(err, CONFIG_ERR_MAX, "cannot read %.256s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    err[0] = '\0';
    rc = config_load_text(c, path, buf, got, err);
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

int config_apply_override(broker_config *c, const char *kv, char err[CONFIG_ERR_MAX]) {
    const char *eq = strchr(kv, '=');
    const char *k;
    size_t kn;
    char key[256];
    if (eq == NULL) {
        fmt(err, CONFIG_ERR_MAX, "--override '%.128s': expected key=value", kv);
        return -1;
    }
    trim_span(kv, (size_t)(eq - kv), &k, &kn);
    if (kn == 0 || kn >= sizeof key) {
        fmt(err, CONFIG_ERR_MAX, "--override '%.128s': expected key=value", kv);
        return -1;
    }
    memcpy(key, k, kn);
    key[kn] = '\0';
    return set_at(c, key, eq + 1, CONFIG_ORIGIN_OVERRIDE, "--override", err);
}

int config_load(broker_config *c, const char *path, const char *const *overrides, size_t n_overrides,
                char err[CONFIG_ERR_MAX]) {
    const char *env = getenv(LOG_ENV_LEVEL);
    err[0] = '\0';
    if (n_overrides > CONFIG_OVERRIDES_MAX) {
        fmt(err, CONFIG_ERR_MAX, "more than %d --override flags", CONFIG_OVERRIDES_MAX);
        return -1;
    }
    if (path != NULL && config_load_file(c, path, err) != 0)
        return -1;
    if (env != NULL && env[0] != '\0' &&
        set_at(c, "log.level", env, CONFIG_ORIGIN_ENV, LOG_ENV_LEVEL, err) != 0)
        return -1;
    for (size_t i = 0; i < n_overrides; i++)
        if (config_apply_override(c, overrides[i], err) != 0)
            return -1;
    if (config_finish(c, err) != 0)
        return -1;
    log_set_level((log_level)c->log_level);
    return 0;
}

/* ---- resolution into typed fields ------------------------------------------------------------ */

typedef enum fkind { FK_I32, FK_I64, FK_BOOL, FK_DBL, FK_STR, FK_IDX, FK_FLAGS, FK_LIST } fkind;

static fkind field_kind(const config_def *d) {
    switch (d->type) {
    case CONFIG_INT:
        return FK_I32;
    case CONFIG_LONG:
    case CONFIG_DURATION:
        return FK_I64;
    case CONFIG_BOOL:
        return FK_BOOL;
    case CONFIG_DOUBLE:
        return FK_DBL;
    case CONFIG_STRING:
        return FK_STR;
    case CONFIG_ENUM:
        return FK_IDX;
    case CONFIG_LIST:
        return d->allowed ? FK_FLAGS : FK_LIST;
    }
    return FK_STR;
}

/* Stores validated text (NULL for null) into d's field of base. Strings are
 * not copied: text is either a static default or already in the arena.
 * Returns -1 only if the arena is exhausted. */
static int store(void *base, const config_def *d, const char *text, arena *a) {
    void *f = (char *)base + d->field;
    cvalue v = {0};
    char why[64];
    assert(d->field != CONFIG_NO_FIELD);
    if (text != NULL) {
        int rc = parse_value(d, text, &v, why, sizeof why);
        assert(rc == 0); /* callers validate before storing */
        (void)rc;
    }
    switch (field_kind(d)) {
    case FK_I32:
        *(int32_t *)f = (int32_t)v.i;
        break;
    case FK_I64:
        if (d->type == CONFIG_DURATION && text != NULL) {
            assert(d->unit_ms >= 1);
            /* Negative durations mean "unlimited" (-1), as in Kafka. */
            v.i = v.i < 0 ? -1 : v.i > INT64_MAX / d->unit_ms ? INT64_MAX : v.i * d->unit_ms;
        }
        *(int64_t *)f = v.i;
        break;
    case FK_BOOL:
        *(bool *)f = v.b;
        break;
    case FK_DBL:
        *(double *)f = v.d;
        break;
    case FK_IDX:
        *(int *)f = v.idx;
        break;
    case FK_FLAGS:
        *(unsigned *)f = v.flags;
        break;
    case FK_STR:
        *(const char **)f = text;
        break;
    case FK_LIST: {
        config_list *l = f;
        span items[CONFIG_LIST_MAX];
        int n = text ? split_list(text, items, CONFIG_LIST_MAX, why, sizeof why) : 0;
        assert(n >= 0);
        l->n = 0;
        for (int i = 0; i < n; i++) {
            l->items[i] = arena_strndup(a, items[i].p, items[i].n);
            if (l->items[i] == NULL)
                return -1;
        }
        l->n = n;
        break;
    }
    }
    return 0;
}

static bool is_set(const broker_config *c, const char *name) {
    int i = index_of(broker_defs, N_BROKER, name);
    assert(i >= 0);
    return c->slot_[i].text != NULL;
}

static const char *text_of(const broker_config *c, const char *name) {
    int i = index_of(broker_defs, N_BROKER, name);
    assert(i >= 0);
    return c->slot_[i].text ? c->slot_[i].text : broker_defs[i].dflt;
}

static bool wildcard_host(const char *h) {
    return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

static int resolve_listeners(broker_config *c, char err[CONFIG_ERR_MAX]) {
    char why[256];
    const char *map = c->listener_security_protocol_map;
    const char *adv = text_of(c, "advertised.listeners");

    if (config_parse_listeners(text_of(c, "listeners"), map, c->listeners, CONFIG_LISTENERS_MAX,
                               &c->n_listeners, why, sizeof why) != 0) {
        fmt(err, CONFIG_ERR_MAX, "invalid listeners '%.128s': %s", text_of(c, "listeners"), why);
        return -1;
    }
    for (int i = 0; i < c->n_listeners; i++) {
        config_listener *l = &c->listeners[i];
        for (int k = 0; k < c->controller_listener_names.n; k++)
            if (strcasecmp(c->controller_listener_names.items[k], l->name) == 0)
                l->controller = true;
        for (int j = 0; j < i && l->port != 0; j++) {
            if (c->listeners[j].port == l->port) {
                fmt(err, CONFIG_ERR_MAX, "invalid listeners: %s and %s both use port %u",
                    c->listeners[j].name, l->name, l->port);
                return -1;
            }
        }
    }

    if (adv != NULL) {
        if (config_parse_listeners(adv, map, c->advertised, CONFIG_LISTENERS_MAX, &c->n_advertised, why,
                                   sizeof why) != 0) {
            fmt(err, CONFIG_ERR_MAX, "invalid advertised.listeners '%.128s': %s", adv, why);
            return -1;
        }
        for (int i = 0; i < c->n_advertised; i++) {
            const char *h = c->advertised[i].host;
            if (h[0] != '\0' && wildcard_host(h)) {
                fmt(err, CONFIG_ERR_MAX,
                    "invalid advertised.listeners: %s advertises the wildcard address %s, which clients "
                    "cannot connect to",
                    c->advertised[i].name, h);
                return -1;
            }
        }
        /* Kafka 4.0 files advertise the controller listener too; mark it so
         * client metadata can leave it out. */
        for (int i = 0; i < c->n_advertised; i++)
            for (int k = 0; k < c->controller_listener_names.n; k++)
                if (strcasecmp(c->controller_listener_names.items[k], c->advertised[i].name) == 0)
                    c->advertised[i].controller = true;
    } else {
        c->n_advertised = 0;
        for (int i = 0; i < c->n_listeners; i++)
            if (!c->listeners[i].controller)
                c->advertised[c->n_advertised++] = c->listeners[i];
    }
    /* A wildcard bind address is no use to a client: advertise our name. */
    for (int i = 0; i < c->n_advertised; i++) {
        config_listener *l = &c->advertised[i];
        if (wildcard_host(l->host)) {
            if (gethostname(l->host, sizeof l->host) != 0 || l->host[0] == '\0')
                fmt(l->host, sizeof l->host, "localhost");
            l->host[sizeof l->host - 1] = '\0';
        }
    }
    if (c->process_roles & CONFIG_ROLE_BROKER) {
        bool client_listener = false;
        for (int i = 0; i < c->n_listeners; i++)
            client_listener = client_listener || !c->listeners[i].controller;
        if (!client_listener) {
            fmt(err, CONFIG_ERR_MAX,
                "listeners: every listener is a controller listener, but process.roles includes broker and "
                "clients need one");
            return -1;
        }
    }
    if (c->inter_broker_listener_name != NULL) {
        bool found = false;
        for (int i = 0; i < c->n_listeners; i++)
            found = found || strcasecmp(c->listeners[i].name, c->inter_broker_listener_name) == 0;
        if (!found) {
            fmt(err, CONFIG_ERR_MAX, "inter.broker.listener.name '%.64s' does not name one of listeners",
                c->inter_broker_listener_name);
            return -1;
        }
    }
    return 0;
}

int config_finish(broker_config *c, char err[CONFIG_ERR_MAX]) {
    bool done[N_BROKER] = {false};

    err[0] = '\0';
    for (size_t i = 0; i < N_BROKER; i++) {
        const config_def *d = &broker_defs[i];
        int win = -1, dflt = -1;
        if (d->field == CONFIG_NO_FIELD || done[i])
            continue;
        /* Every key sharing this field is a synonym: the highest-ranked one
         * that was set wins; if none was, the highest-ranked default. */
        for (size_t j = i; j < N_BROKER; j++) {
            const config_def *e = &broker_defs[j];
            if (e->field != d->field)
                continue;
            assert(field_kind(e) == field_kind(d));
            done[j] = true;
            if (c->slot_[j].text != NULL && (win < 0 || e->rank > broker_defs[win].rank))
                win = (int)j;
            if (e->dflt != NULL && (dflt < 0 || e->rank > broker_defs[dflt].rank))
                dflt = (int)j;
        }
        const config_def *wd = win >= 0 ? &broker_defs[win] : dflt >= 0 ? &broker_defs[dflt] : d;
        const char *text = win >= 0 ? c->slot_[win].text : wd->dflt;
        if (store(c, wd, text, &c->mem_) != 0) {
            fmt(err, CONFIG_ERR_MAX, "configuration exceeds %u bytes of memory", CONFIG_ARENA_LIMIT);
            return -1;
        }
    }

    /* Checks that involve more than one key, or a resolved value. */
    if (!is_set(c, "log.flush.interval.ms"))
        c->log_flush_interval_ms = c->log_flush_scheduler_interval_ms;
    if (is_set(c, "node.id") && is_set(c, "broker.id") &&
        strtoll(text_of(c, "node.id"), NULL, 10) != strtoll(text_of(c, "broker.id"), NULL, 10)) {
        fmt(err, CONFIG_ERR_MAX, "node.id=%s and broker.id=%s disagree; set only node.id",
            text_of(c, "node.id"), text_of(c, "broker.id"));
        return -1;
    }
    if (c->log_retention_ms == 0) {
        fmt(err, CONFIG_ERR_MAX,
            "log.retention.hours/minutes/ms resolve to 0 ms; use -1 for unlimited retention or at least 1 "
            "ms");
        return -1;
    }
    if (c->log_dirs.n == 0) {
        fmt(err, CONFIG_ERR_MAX, "log.dirs is empty: at least one data directory is required");
        return -1;
    }
    if (c->group_min_session_timeout_ms > c->group_max_session_timeout_ms) {
        fmt(err, CONFIG_ERR_MAX,
            "group.min.session.timeout.ms (%d) is larger than group.max.session.timeout.ms (%d)",
            (int)c->group_min_session_timeout_ms, (int)c->group_max_session_timeout_ms);
        return -1;
    }
    if (c->log_cleaner_min_compaction_lag_ms > c->log_cleaner_max_compaction_lag_ms) {
        fmt(err, CONFIG_ERR_MAX,
            "log.cleaner.min.compaction.lag.ms is larger than log.cleaner.max.compaction.lag.ms");
        return -1;
    }
    if (resolve_listeners(c, err) != 0)
        return -1;
    /* Three event-loop threads on a one- or two-CPU machine only compete
     * with the I/O threads; use no more than there are CPUs unless told. */
    if (!is_set(c, "num.network.threads")) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu >= 1 && ncpu < c->num_network_threads)
            c->num_network_threads = (int32_t)ncpu;
    }
    assert(c->n_listeners >= 1 && c->log_dirs.n >= 1);
    return 0;
}

/* ---- enumeration --------------------------------------------------------------------------- */

int config_broker_entry(const broker_config *c, const char *name, config_entry *out) {
    int i = index_of(broker_defs, N_BROKER, name);
    if (i < 0)
        return -1;
    const config_def *d = &broker_defs[i];
    out->name = d->name;
    out->value = c->slot_[i].text ? c->slot_[i].text : d->dflt;
    out->dflt = d->dflt;
    out->source = c->slot_[i].text ? CONFIG_SOURCE_STATIC_BROKER_CONFIG : CONFIG_SOURCE_DEFAULT_CONFIG;
    out->type = config_def_kafka_type(d);
    out->read_only = true;
    out->sensitive = (d->flags & CONFIG_F_SENSITIVE) != 0;
    if (out->sensitive)
        out->value = NULL;
    out->def = d;
    return 0;
}

void config_describe_broker(const broker_config *c, config_visit_fn fn, void *ctx) {
    for (size_t i = 0; i < N_BROKER; i++) {
        config_entry e;
        int rc = config_broker_entry(c, broker_defs[i].name, &e);
        assert(rc == 0);
        (void)rc;
        if (fn(ctx, &e) != 0)
            return;
    }
}

/* The broker keys that share d's setting, highest rank first. */
static size_t broker_chain(const config_def *d, const config_def **out, size_t max) {
    size_t n = 0;
    if (max == 0)
        return 0;
    if (d->field == CONFIG_NO_FIELD) {
        out[0] = d;
        return 1;
    }
    for (size_t i = 0; i < N_BROKER && n < max; i++) {
        const config_def *e = &broker_defs[i];
        if (e->field != d->field)
            continue;
        size_t k = n++;
        while (k > 0 && out[k - 1]->rank < e->rank) {
            out[k] = out[k - 1];
            k--;
        }
        out[k] = e;
    }
    return n;
}

size_t config_synonyms(const char *name, bool topic, const config_def **out, size_t max) {
    if (max == 0)
        return 0;
    if (!topic) {
        const config_def *d = config_find_broker(name);
        return d ? broker_chain(d, out, max) : 0;
    }
    const config_def *td = config_find_topic(name);
    if (td == NULL)
        return 0;
    out[0] = td;
    return 1 + broker_chain(config_topic_broker_synonym(td), out + 1, max - 1);
}

/* Formats the field of base described by d as a client would see it. */
static void format_field(const void *base, const config_def *d, char *buf, size_t n) {
    const void *f = (const char *)base + d->field;
    switch (field_kind(d)) {
    case FK_I32:
        fmt(buf, n, "%d", (int)*(const int32_t *)f);
        break;
    case FK_I64:
        fmt(buf, n, "%lld", (long long)*(const int64_t *)f);
        break;
    case FK_BOOL:
        fmt(buf, n, "%s", *(const bool *)f ? "true" : "false");
        break;
    case FK_DBL:
        fmt(buf, n, "%g", *(const double *)f);
        break;
    case FK_IDX:
        fmt(buf, n, "%s", d->allowed[*(const int *)f]);
        break;
    case FK_FLAGS: {
        size_t used = 0;
        buf[0] = '\0';
        for (int i = 0; d->allowed[i] != NULL; i++) {
            if ((*(const unsigned *)f & (1u << i)) && used < n) {
                int r = snprintf(buf + used, n - used, "%s%s", used ? "," : "", d->allowed[i]);
                used += r > 0 ? (size_t)r : 0;
            }
        }
        break;
    }
    case FK_STR:
    case FK_LIST:
        /* No topic key has these kinds. */
        assert(0);
        buf[0] = '\0';
        break;
    }
}

/* ---- topic configuration ---------------------------------------------------------------------- */

void topic_config_init(topic_config *tc, const broker_config *bc) {
    memset(tc, 0, sizeof *tc);
    for (size_t i = 0; i < N_TOPIC; i++) {
        const config_def *td = &topic_defs[i];
        const config_def *bd = config_topic_broker_synonym(td);
        fkind k = field_kind(td);
        assert(k == field_kind(bd));
        const char *src = (const char *)bc + bd->field;
        char *dst = (char *)tc + td->field;
        size_t size = k == FK_I32    ? sizeof(int32_t)
                      : k == FK_I64  ? sizeof(int64_t)
                      : k == FK_BOOL ? sizeof(bool)
                      : k == FK_DBL  ? sizeof(double)
                      : k == FK_IDX  ? sizeof(int)
                                     : sizeof(unsigned);
        memcpy(dst, src, size);
    }
}

int topic_config_validate(const char *key, const char *value, char *msg, size_t msgn) {
    char why[256];
    const config_def *td = config_find_topic(key);
    if (td == NULL) {
        fmt(msg, msgn, "Unknown topic config name: %.128s", key ? key : "(null)");
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    if (value == NULL) {
        fmt(msg, msgn, "Null value not supported for topic config %s", key);
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    if (config_validate_value(td, value, why, sizeof why) != 0) {
        fmt(msg, msgn, "Invalid value %.96s for configuration %s: %s", value, key, why);
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    return 0;
}

int topic_config_set(topic_config *tc, const char *key, const char *value, char *msg, size_t msgn) {
    char buf[CONFIG_VALUE_MAX + 1];
    const char *s;
    size_t n;
    int rc = topic_config_validate(key, value, msg, msgn);
    if (rc != 0)
        return rc;
    trim_span(value, strlen(value), &s, &n);
    assert(n <= CONFIG_VALUE_MAX);
    memcpy(buf, s, n);
    buf[n] = '\0';
    rc = store(tc, config_find_topic(key), buf, NULL);
    assert(rc == 0);
    return rc;
}

int topic_config_build(topic_config *tc, const broker_config *bc, const char *const *keys,
                       const char *const *values, size_t n, char *msg, size_t msgn) {
    topic_config_init(tc, bc);
    for (size_t i = 0; i < n; i++) {
        int rc = topic_config_set(tc, keys[i], values[i], msg, msgn);
        if (rc != 0)
            return rc;
    }
    if (tc->min_compaction_lag_ms > tc->max_compaction_lag_ms) {
        fmt(msg, msgn, "min.compaction.lag.ms (%lld) is larger than max.compaction.lag.ms (%lld)",
            (long long)tc->min_compaction_lag_ms, (long long)tc->max_compaction_lag_ms);
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    return 0;
}

void config_describe_topic(const broker_config *bc, const char *const *keys, const char *const *values,
                           size_t n, config_visit_fn fn, void *ctx) {
    for (size_t i = 0; i < N_TOPIC; i++) {
        const config_def *td = &topic_defs[i];
        const config_def *chain[8];
        char buf[128];
        config_entry e = {.name = td->name, .dflt = td->dflt, .type = config_def_kafka_type(td), .def = td};
        const char *ov = NULL;
        for (size_t k = 0; k < n; k++)
            if (keys[k] != NULL && values[k] != NULL && strcmp(keys[k], td->name) == 0)
                ov = values[k]; /* the last one wins, as topic_config_build applies them */
        if (ov != NULL) {
            e.value = ov;
            e.source = CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
        } else {
            const config_def *bd = config_topic_broker_synonym(td);
            size_t cn = broker_chain(bd, chain, 8);
            e.source = CONFIG_SOURCE_DEFAULT_CONFIG;
            for (size_t k = 0; k < cn; k++)
                if (bc->slot_[chain[k] - broker_defs].text != NULL)
                    e.source = CONFIG_SOURCE_STATIC_BROKER_CONFIG;
            format_field(bc, bd, buf, sizeof buf);
            e.value = buf;
        }
        if (fn(ctx, &e) != 0)
            return;
    }
}

/* ---- documentation ------------------------------------------------------------------------------ */

/* Writes s as a markdown table cell, escaping the column separator. */
static void cell(FILE *out, const char *s) {
    fputs("| ", out);
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc(' ', out);
}

static void type_text(const config_def *d, char *buf, size_t n) {
    static const char *const names[] = {"int", "long", "boolean", "double", "string", "string", "list", ""};
    if (d->type == CONFIG_DURATION)
        fmt(buf, n, "%s (%s)", d->unit_ms == 1 ? "long" : "int",
            d->unit_ms == HOUR_MS     ? "hours"
            : d->unit_ms == MINUTE_MS ? "minutes"
                                      : "ms");
    else if (d->flags & CONFIG_F_SHORT)
        fmt(buf, n, "short");
    else
        fmt(buf, n, "%s", names[d->type]);
}

static void valid_text(const config_def *d, char *buf, size_t n) {
    char list[256];
    switch (d->type) {
    case CONFIG_INT:
    case CONFIG_LONG:
    case CONFIG_DURATION:
    case CONFIG_DOUBLE:
        range_text(d, true, buf, n);
        if (d->check == check_gzip_level)
            fmt(buf, n, "-1, or 1 to 9");
        break;
    case CONFIG_BOOL:
        join_allowed(bool_values, buf, n);
        break;
    case CONFIG_ENUM:
        join_allowed(d->allowed, list, sizeof list);
        fmt(buf, n, "%s%s", list, (d->flags & CONFIG_F_ICASE) ? " (any case)" : "");
        break;
    case CONFIG_LIST:
        if (d->allowed) {
            join_allowed(d->allowed, list, sizeof list);
            fmt(buf, n, "one or more of: %s", list);
        } else {
            fmt(buf, n, "comma-separated list");
        }
        break;
    case CONFIG_STRING:
        if (d->check == check_listeners)
            fmt(buf, n, "NAME://host:port, ...");
        else if (d->check == check_protocol_map)
            fmt(buf, n, "NAME:PROTOCOL, ...");
        else
            fmt(buf, n, "any string");
        break;
    }
}

static void default_text(const config_def *d, char *buf, size_t n) {
    if (d->dflt == NULL)
        fmt(buf, n, "null");
    else if (d->dflt[0] == '\0')
        fmt(buf, n, "(empty)");
    else
        fmt(buf, n, "`%s`", d->dflt);
}

static const char docs_intro[] =
    "# Sluice configuration reference\n"
    "\n"
    "<!-- Generated from the key tables in src/broker/config.c by config_write_docs(); do not edit.\n"
    "     Regenerate with: build/rel/config_docs > docs/configuration.md\n"
    "     The unit test test_config fails when this file and the tables disagree. -->\n"
    "\n"
    "`sluiced` reads a `server.properties` file that uses Kafka's key names, so an existing Kafka file\n"
    "mostly carries over. Without a file the broker starts as a single node listening on\n"
    "`localhost:9092` with its data in `./data`.\n"
    "\n"
    "## How values are read\n"
    "\n"
    "- File syntax is Java properties: `key=value`, `key: value` or `key value`; lines starting with `#`\n"
    "  or `!` are comments; blank lines are skipped; whitespace around keys and values is removed; a line\n"
    "  ending in a backslash continues on the next one; `\\t`, `\\n`, `\\uXXXX` and `\\<char>` escapes\n"
    "  are understood. If a key appears twice, the later line wins.\n"
    "- Precedence, lowest first: built-in default, the file, the environment (`SLUICE_LOG_LEVEL`, for\n"
    "  `log.level` only), then each `--override key=value` on the command line in order.\n"
    "- Some settings have several keys (synonyms), for example `log.retention.hours`,\n"
    "  `log.retention.minutes` and `log.retention.ms`. The most precise key that is set wins, wherever it\n"
    "  was set: an hours value on the command line does not beat a milliseconds value in the file.\n"
    "- An unknown key is logged as a warning and ignored. A value of the wrong type, out of range or not\n"
    "  among the allowed values is an error naming the key, the value and what is allowed, and the broker\n"
    "  does not start.\n"
    "- Topic-level keys (at the end) can be given when a topic is created or altered; a topic without an\n"
    "  override uses the broker key named in the \"Broker default from\" column.\n"
    "\n"
    "## Status\n"
    "\n"
    "Sluice is being built. Every key below is *parsed and validated*; the Status column says\n"
    "*in effect* once the broker acts on the key. Defaults are Apache Kafka 4.0's unless the description\n"
    "says why Sluice differs.\n";

int config_write_docs(FILE *out) {
    char type[64], valid[256], dflt[128];
    const config_def *chain[8];

    fputs(docs_intro, out);
    fputs("\n## Broker keys\n", out);
    for (size_t i = 0; i < N_BROKER; i++) {
        const config_def *d = &broker_defs[i];
        if (d->section != NULL) {
            fprintf(out, "\n### %s\n\n", d->section);
            fputs("| Key | Type | Default | Valid values | Status | Description |\n", out);
            fputs("|---|---|---|---|---|---|\n", out);
        }
        assert(i > 0 || d->section != NULL);
        type_text(d, type, sizeof type);
        valid_text(d, valid, sizeof valid);
        default_text(d, dflt, sizeof dflt);
        fprintf(out, "| `%s` ", d->name);
        cell(out, type);
        cell(out, dflt);
        cell(out, valid);
        cell(out, (d->flags & CONFIG_F_ACTIVE) ? "in effect" : "parsed and validated");
        fputs("| ", out);
        fputs(d->doc, out);
        size_t cn = broker_chain(d, chain, 8);
        if (cn > 1) {
            fputs(" Synonyms, most precise first:", out);
            for (size_t k = 0; k < cn; k++)
                fprintf(out, "%s `%s`", k ? "," : "", chain[k]->name);
            fputs(".", out);
        }
        fputs(" |\n", out);
    }

    fputs("\n## Topic keys\n\n", out);
    fputs("| Key | Type | Default | Valid values | Broker default from | Description |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < N_TOPIC; i++) {
        const config_def *d = &topic_defs[i];
        type_text(d, type, sizeof type);
        valid_text(d, valid, sizeof valid);
        default_text(d, dflt, sizeof dflt);
        fprintf(out, "| `%s` ", d->name);
        cell(out, type);
        cell(out, dflt);
        cell(out, valid);
        fputs("| ", out);
        size_t cn = broker_chain(config_topic_broker_synonym(d), chain, 8);
        for (size_t k = 0; k < cn; k++)
            fprintf(out, "%s`%s`", k ? ", " : "", chain[k]->name);
        fputs(" | ", out);
        fputs(d->doc, out);
        fputs(" |\n", out);
    }
    return ferror(out) ? -1 : 0;
}
