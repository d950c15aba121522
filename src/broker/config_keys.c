/*
 * config_keys.c - the broker keys: one row per key sluiced reads from its
 * file and flags (see config/schema.h for what a row says), and the lookups
 * over them: by name, by index (a key's index is its slot in broker_config)
 * and by setting (the synonyms that share one field).
 *
 * Defaults follow Apache Kafka 4.0 where Kafka has one; the rows flagged
 * CONFIG_F_DEVIATES say in their doc line why Sluice differs. The bounds
 * that protect the partition logs are storage's own (storage/log.h). The
 * topic keys are in config/topic_keys.c; which broker key each takes its
 * default from is in config_topic.c.
 */
#include "broker/config.h"

#include <stddef.h>
#include <string.h>

#include "broker/config_internal.h"
#include "config/rows.h"
#include "config/text.h"
#include "net/server.h"
#include "obs/http.h"
#include "security/acl.h"
#include "storage/log.h"

#define B(f) offsetof(broker_config, f)

#define HOUR_MS   CONFIG_HOUR_MS
#define MINUTE_MS CONFIG_MINUTE_MS

/* Defaults owned by a lower layer are printed from its macros, so the table
 * (and the docs generated from it) cannot drift from the code. */
#define DFLT_(x) #x
#define DFLT(x)  DFLT_(x)

static const char *const roles_values[] = {"broker", "controller", NULL};
static const char *const group_protocol_values[] = {"classic", "consumer", "share", "streams", NULL};
/* Order matches log_level. */
static const char *const level_values[] = {"error", "warn", "info", "debug", "trace", NULL};

static const char *const pem_values[] = {"PEM", NULL};
static const char *const client_auth_values[] = {"none", "requested", "required", NULL};

/* ssl.enabled.protocols: TLS versions OpenSSL can be limited to. */
static int check_tls_protocols(const char *v, char *why, size_t whyn) {
    config_span items[CONFIG_LIST_MAX];
    int n = config_split_list(v, items, CONFIG_LIST_MAX, why, whyn);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!config_span_eq(items[i], "TLSv1.2", true) && !config_span_eq(items[i], "TLSv1.3", true)) {
            config_fmt(why, whyn, "unknown or unsupported protocol '%.*s' (expected TLSv1.2, TLSv1.3)",
                       (int)(items[i].n > 32 ? 32 : items[i].n), items[i].p);
            return -1;
        }
    }
    if (n == 0) {
        config_fmt(why, whyn, "at least one protocol is required");
        return -1;
    }
    return 0;
}

/* authorizer.class.name: none, or Kafka's standard (KRaft) authorizer. */
static int check_authorizer(const char *v, char *why, size_t whyn) {
    if (v[0] == '\0' || strcmp(v, ACL_AUTHORIZER_CLASS) == 0)
        return 0;
    config_fmt(why, whyn, "unknown authorizer '%.*s' (Sluice has " ACL_AUTHORIZER_CLASS ")",
               (int)(strlen(v) > 128 ? 128 : strlen(v)), v);
    return -1;
}

/* sasl.enabled.mechanisms: the mechanisms Sluice has. */
static int check_sasl_mechanisms(const char *v, char *why, size_t whyn) {
    config_span items[CONFIG_LIST_MAX];
    int n = config_split_list(v, items, CONFIG_LIST_MAX, why, whyn);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!config_span_eq(items[i], "PLAIN", false) && !config_span_eq(items[i], "SCRAM-SHA-256", false) &&
            !config_span_eq(items[i], "SCRAM-SHA-512", false)) {
            config_fmt(why, whyn,
                       "unsupported mechanism '%.*s' (expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
                       (int)(items[i].n > 32 ? 32 : items[i].n), items[i].p);
            return -1;
        }
    }
    return 0;
}

static int check_ip_overrides(const char *v, char *why, size_t whyn) {
    return net_ip_overrides_check(v, why, whyn);
}

static int config_check_http_listener(const char *v, char *why, size_t whyn) {
    char host[256];
    uint16_t port;
    if (v == NULL || v[0] == 0)
        return 0;
    return obs_http_parse_url(v, host, sizeof host, &port, why, whyn);
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
     .field = CONFIG_NO_FIELD, .check = config_check_listeners, .valid = "NAME://host:port, ...",
     .flags = CONFIG_F_DEVIATES | CONFIG_F_ACTIVE,
     .doc = "Comma-separated NAME://host:port addresses to accept connections on; an empty host binds every "
            "interface, IPv6 hosts go in brackets. Clients are served on the first listener that is not a "
            "controller listener, with its protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL; see "
            "docs/security.md). Kafka's default binds every interface; Sluice binds localhost unless told otherwise."},
    {.name = "advertised.listeners", .type = CONFIG_STRING, .dflt = NULL, .field = CONFIG_NO_FIELD,
     .check = config_check_listeners, .valid = "NAME://host:port, ...", .flags = CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
     .doc = "Addresses given to clients in metadata, same syntax as listeners. When unset, the listeners "
            "(except controller ones) are used, with an empty or wildcard host replaced by this machine's "
            "host name."},
    {.name = "listener.security.protocol.map", .type = CONFIG_STRING,
     .dflt = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
     .field = B(listener_security_protocol_map), .check = config_check_protocol_map, .valid = "NAME:PROTOCOL, ...",
     .doc = "Maps each listener name to its security protocol, as NAME:PROTOCOL pairs."},
    STR("inter.broker.listener.name", NULL, B(inter_broker_listener_name), CONFIG_F_NULLABLE,
        "Listener that other brokers use to reach this one; must name one of listeners."),
    LIST("controller.listener.names", "", NULL, B(controller_listener_names), 0,
         "Listener names reserved for controller traffic; such listeners are not advertised to clients."),
    LIST("controller.quorum.voters", "", NULL, B(controller_quorum_voters), 0,
         "Static controller quorum as id@host:port entries."),
    LIST("controller.quorum.bootstrap.servers", "", NULL, B(controller_quorum_bootstrap_servers), 0,
         "host:port addresses used to discover the controller quorum."),
    INT("controller.quorum.election.timeout.ms", "1000", 1, I32MAX, B(quorum_election_timeout_ms), CONFIG_F_ACTIVE,
        "How long a voter without a leader waits (plus a random part as long again) before it asks for "
        "pre-votes to become a candidate."),
    INT("controller.quorum.fetch.timeout.ms", "2000", 1, I32MAX, B(quorum_fetch_timeout_ms), CONFIG_F_ACTIVE,
        "A follower that has not fetched from its leader for this long starts an election; a leader that "
        "has not heard from a majority for this long resigns."),
    INT("controller.quorum.election.backoff.max.ms", "1000", 1, I32MAX, B(quorum_election_backoff_max_ms),
        CONFIG_F_ACTIVE, "Longest random back-off before a failed candidate tries again."),
    INT("controller.quorum.request.timeout.ms", "2000", 1, I32MAX, B(quorum_request_timeout_ms), CONFIG_F_ACTIVE,
        "How long a quorum RPC (and a request forwarded to the active controller) may take."),
    INT("broker.heartbeat.interval.ms", "2000", 1, I32MAX, B(broker_heartbeat_interval_ms), CONFIG_F_ACTIVE,
        "How often a broker that is not the active controller sends it a heartbeat (the broker's "
        "housekeeping runs about once a second, so shorter values act as one second)."),
    INT("broker.session.timeout.ms", "9000", 1, I32MAX, B(broker_session_timeout_ms), CONFIG_F_ACTIVE,
        "A broker whose heartbeats stop for this long is fenced by the active controller: it leaves client "
        "metadata and the partitions it leads get another leader from their ISR, or none."),
    INT("replica.fetch.max.bytes", "1048576", 1024, I32MAX, B(replica_fetch_max_bytes), CONFIG_F_ACTIVE,
        "Record bytes a follower asks for per partition in one fetch from its leader (the first batch comes "
        "whole even when larger)."),
    INT("replica.fetch.response.max.bytes", "10485760", 1024, I32MAX, B(replica_fetch_response_max_bytes),
        CONFIG_F_ACTIVE, "Record bytes a follower asks for in one fetch from its leader, over all partitions."),
    INT("replica.fetch.wait.max.ms", "500", 0, I32MAX, B(replica_fetch_wait_max_ms), CONFIG_F_ACTIVE,
        "How long a leader holds a follower's fetch that finds nothing new."),
    INT("replica.fetch.min.bytes", "1", 1, I32MAX, B(replica_fetch_min_bytes), CONFIG_F_ACTIVE,
        "Bytes a follower's fetch waits for before the leader answers it."),
    INT("replica.fetch.backoff.ms", "1000", 0, I32MAX, B(replica_fetch_backoff_ms), CONFIG_F_ACTIVE,
        "How long a follower waits before fetching again after its leader could not be reached or refused."),
    LONG("replica.lag.time.max.ms", "30000", 1, I64MAX, B(replica_lag_time_max_ms), CONFIG_F_ACTIVE,
         "A follower that has not caught up with its leader for this long is removed from the ISR (through "
         "the controller); one that catches up is added back."),
    INT("num.replica.fetchers", "1", 1, 256, CONFIG_NO_FIELD, 0,
        "Accepted for Kafka's files: Sluice runs one fetcher thread per leader broker."),

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
    LIST("log.cleanup.policy", "delete", config_cleanup_values, B(log_cleanup_policy), 0,
         "What happens to old segments: delete them (retention), compact them (keep the last record per "
         "key), or both."),
    ENUM("log.message.timestamp.type", "CreateTime", config_timestamp_values, B(log_message_timestamp_type), CONFIG_F_ACTIVE,
         "Record timestamps as set by the producer (CreateTime) or by the broker on append (LogAppendTime)."),
    LONG("log.message.timestamp.before.max.ms", LONG_MAX_TEXT, 0, I64MAX,
         B(log_message_timestamp_before_max_ms), CONFIG_F_ACTIVE,
         "With CreateTime, reject a batch holding a record whose timestamp is further than this behind the "
         "broker's clock (INVALID_TIMESTAMP)."),
    LONG("log.message.timestamp.after.max.ms", "3600000", 0, I64MAX, B(log_message_timestamp_after_max_ms),
         CONFIG_F_ACTIVE,
         "With CreateTime, reject a batch holding a record whose timestamp is further than this ahead of the "
         "broker's clock (INVALID_TIMESTAMP)."),
    BOOL("log.cleaner.enable", "true", B(log_cleaner_enable), CONFIG_F_ACTIVE,
         "Run the background cleaner that compacts topics with the compact policy."),
    INT("log.cleaner.threads", "1", 0, I32MAX, B(log_cleaner_threads), CONFIG_F_ACTIVE, "Number of cleaner threads."),
    LONG("log.cleaner.delete.retention.ms", "86400000", 0, I64MAX, B(log_cleaner_delete_retention_ms), CONFIG_F_ACTIVE,
         "How long tombstones survive in a compacted topic, so slow readers still see deletions."),
    {.name = "log.cleaner.min.cleanable.ratio", .type = CONFIG_DOUBLE, .dflt = "0.5", .min = 0, .max = 1,
     .field = B(log_cleaner_min_cleanable_ratio), .flags = CONFIG_F_ACTIVE,
     .doc = "Share of a log that must be uncompacted before the cleaner works on it."},
    LONG("log.cleaner.min.compaction.lag.ms", "0", 0, I64MAX, B(log_cleaner_min_compaction_lag_ms), CONFIG_F_ACTIVE,
         "Records younger than this are never compacted."),
    LONG("log.cleaner.max.compaction.lag.ms", LONG_MAX_TEXT, 1, I64MAX, B(log_cleaner_max_compaction_lag_ms), CONFIG_F_ACTIVE,
         "Records older than this make their log eligible for compaction regardless of the dirty ratio."),
    LONG("log.cleaner.backoff.ms", "15000", 0, I64MAX, B(log_cleaner_backoff_ms), CONFIG_F_ACTIVE,
         "Pause of the cleaner when there is nothing to clean."),
    LONG("log.cleaner.dedupe.buffer.size", "134217728", 0, I64MAX, B(log_cleaner_dedupe_buffer_size), CONFIG_F_ACTIVE,
         "Memory, across all cleaner threads, for the key map used during compaction."),
    {.name = "log.cleaner.io.max.bytes.per.second", .type = CONFIG_DOUBLE, .dflt = "1.0E18", .min = 0,
     .max = I64MAX, .field = B(log_cleaner_io_max_bytes_per_second),
     .flags = CONFIG_F_ACTIVE, .doc = "Bytes per second the cleaner threads read and write together, at most (the default: no limit)."},
    ENUM("compression.type", "producer", config_compression_values, B(compression_type), 0,
         "Codec batches are stored with: producer keeps whatever the producer used; any other value makes the "
         "broker recompress to that codec."),
    GZIP_LEVEL_ROW(B(compression_gzip_level),
                   "gzip level used when the broker compresses: 1 to 9, or -1 for zlib's default."),
    INT("compression.lz4.level", "9", 1, 17, B(compression_lz4_level), 0,
        "lz4 level used when the broker compresses."),
    INT("compression.zstd.level", "3", -131072, 22, B(compression_zstd_level), 0,
        "zstd level used when the broker compresses."),
    INT("message.max.bytes", "1048588", PLOG_MAX_MESSAGE_BYTES_MIN, I32MAX, B(message_max_bytes), CONFIG_F_ACTIVE,
        "Largest record batch, after compression, that a producer may send."),
    INT("min.insync.replicas", "1", 1, I32MAX, B(min_insync_replicas), CONFIG_F_ACTIVE,
        "With acks=all, the fewest in-sync replicas that must have a write before it is acknowledged."),
    BOOL("unclean.leader.election.enable", "false", B(unclean_leader_election_enable), 0,
         "Allow an out-of-sync replica to become leader when no in-sync one is left, at the cost of losing "
         "acknowledged records."),
    BOOL("auto.leader.rebalance.enable", "true", B(auto_leader_rebalance_enable), CONFIG_F_ACTIVE,
         "The active controller moves leadership back to each partition's preferred replica (the first of its "
         "replicas) when it is live and in sync, for brokers whose imbalance is over "
         "leader.imbalance.per.broker.percentage, checked every leader.imbalance.check.interval.seconds."),
    DUR("leader.imbalance.check.interval.seconds", "300", 1, I32MAX, 1000, 0,
        B(leader_imbalance_check_interval_ms), CONFIG_F_ACTIVE,
        "How often the active controller checks for leaders that are not the preferred replica."),
    INT("leader.imbalance.per.broker.percentage", "10", 0, 100, B(leader_imbalance_per_broker_percentage),
        CONFIG_F_ACTIVE,
        "A broker's preferred partitions led elsewhere, in percent of all its preferred partitions, above "
        "which the check moves them back."),

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
        CONFIG_F_SHORT | CONFIG_F_DEVIATES | CONFIG_F_ACTIVE,
        "Replication factor of the committed-offsets topic when it is created; until that many brokers are "
        "registered, FindCoordinator answers COORDINATOR_NOT_AVAILABLE. With more than one, an offset commit "
        "is answered once the partition's ISR has it. Kafka's default is 3; Sluice uses 1 so a single node "
        "works out of the box (make run-cluster uses 3)."),
    LONG("metadata.log.max.record.bytes.between.snapshots", "20971520", 1, I64MAX, B(metadata_snapshot_bytes),
         CONFIG_F_ACTIVE,
         "Bytes appended to the metadata log after which a snapshot of the metadata image is written and the log "
         "before it trimmed, so a start replays the image plus a bounded tail."),
    LONG("metadata.log.max.snapshot.interval.ms", "3600000", 0, I64MAX, B(metadata_snapshot_interval_ms),
         CONFIG_F_ACTIVE, "Time after which a snapshot is written if any record was appended since the last one "
                          "(0: never by time)."),
    INT("metadata.log.segment.bytes", "67108864", 1 << 20, I32MAX, B(metadata_segment_bytes),
        CONFIG_F_ACTIVE | CONFIG_F_DEVIATES,
        "Segment size of the metadata log (Kafka's default is 1 GiB; Sluice's 64 MiB, as snapshots trim it)."),
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
    INT("group.consumer.session.timeout.ms", "45000", 1, I32MAX, B(group_consumer_session_timeout_ms),
        CONFIG_F_ACTIVE,
        "Session timeout of members of consumer-protocol groups (KIP-848): a member that does not heartbeat "
        "for this long leaves the group."),
    INT("group.consumer.heartbeat.interval.ms", "5000", 1, I32MAX, B(group_consumer_heartbeat_interval_ms),
        CONFIG_F_ACTIVE, "How often members of consumer-protocol groups are told to heartbeat."),
    INT("group.consumer.max.size", INT_MAX_TEXT, 1, I32MAX, B(group_consumer_max_size), CONFIG_F_ACTIVE,
        "Most members one consumer-protocol group may have."),
    LIST("group.coordinator.rebalance.protocols", "classic,consumer", group_protocol_values,
         B(group_coordinator_rebalance_protocols), CONFIG_F_ACTIVE,
         "Group protocols the coordinator serves: without consumer, ConsumerGroupHeartbeat is answered "
         "UNSUPPORTED_VERSION. classic is always served; share and streams are accepted and not served yet."),
    LIST("group.consumer.assignors", "uniform,range", NULL, B(group_consumer_assignors), CONFIG_F_ACTIVE,
         "Server-side assignors of consumer-protocol groups, the default first: uniform, range (or Kafka's "
         "class names for them)."),
    INT("share.coordinator.state.topic.replication.factor", "1", 1, 32767, CONFIG_NO_FIELD,
        CONFIG_F_SHORT | CONFIG_F_DEVIATES,
        "Replication factor of the internal share-group state topic. Accepted so Kafka 4.0 files load; Kafka's "
        "default is 3, Sluice's 1."),
    INT("share.coordinator.state.topic.min.isr", "1", 1, I32MAX, CONFIG_NO_FIELD, CONFIG_F_DEVIATES,
        "min.insync.replicas of the share-group state topic. Kafka's default is 2, Sluice's 1."),

    /* ---- transactions and idempotence ---- */
    {.name = "transaction.state.log.replication.factor", .type = CONFIG_INT, .dflt = "1", .min = 1,
     .max = 32767, .field = B(transaction_state_log_replication_factor),
     .flags = CONFIG_F_SHORT | CONFIG_F_DEVIATES | CONFIG_F_ACTIVE, .section = "Transactions and idempotence",
     .doc = "Replication factor of the internal transaction state topic when it is created (on the first "
            "transactional request; until that many brokers are registered the request gets "
            "COORDINATOR_NOT_AVAILABLE). With more than one, a coordinator change is answered once the "
            "partition's ISR has it. Kafka's default is 3; Sluice uses 1 so a single node works out of the box "
            "(make run-cluster uses 3)."},
    INT("transaction.state.log.min.isr", "1", 1, I32MAX, B(transaction_state_log_min_isr),
        CONFIG_F_DEVIATES | CONFIG_F_ACTIVE,
        "min.insync.replicas of the transaction state topic, set on it when it is created: with fewer in-sync "
        "replicas the coordinator's writes fail and clients get COORDINATOR_NOT_AVAILABLE (retriable). Kafka's "
        "default is 2; Sluice uses 1."),
    INT("transaction.state.log.num.partitions", "50", 1, I32MAX, B(transaction_state_log_num_partitions),
        CONFIG_F_ACTIVE,
        "Partitions of the transaction state topic (created on the first transactional request); fixed once "
        "the topic exists. A transactional id lives on partition abs(hash(id)) % this."),
    INT("transactional.id.expiration.ms", "604800000", 1, I32MAX, B(transactional_id_expiration_ms),
        CONFIG_F_ACTIVE,
        "A transactional id with no transaction for this long is forgotten (a tombstone in the transaction state "
        "topic)."),
    INT("transaction.max.timeout.ms", "900000", 1, I32MAX, B(transaction_max_timeout_ms), CONFIG_F_ACTIVE,
        "Largest transaction timeout (transaction.timeout.ms) a producer may ask for; InitProducerId with more "
        "is answered INVALID_TRANSACTION_TIMEOUT."),
    INT("transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000", 1, I32MAX,
        B(transaction_abort_interval_ms), CONFIG_F_ACTIVE,
        "How often the transaction coordinator looks for transactions past their timeout and aborts them "
        "(fencing their producer)."),
    INT("producer.id.expiration.ms", "86400000", 1, I32MAX, B(producer_id_expiration_ms), CONFIG_F_ACTIVE,
        "A producer id that has not written to a partition for this long is forgotten there, with its "
        "sequence state (checked about once a second)."),

    /* ---- security: TLS ---- */
    {.name = "ssl.keystore.type", .type = CONFIG_ENUM, .dflt = "PEM", .allowed = pem_values,
     .field = CONFIG_NO_FIELD, .flags = CONFIG_F_ACTIVE | CONFIG_F_ICASE | CONFIG_F_DEVIATES, .section = "Security",
     .doc = "Format of the key store of SSL listeners. Sluice reads PEM only (Kafka's default is JKS); convert a "
            "JKS or PKCS12 store with keytool and openssl. Like every ssl.* key it may be set for one listener "
            "as listener.name.<name>.ssl.keystore.type."},
    STR("ssl.keystore.location", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "PEM file holding the listener's private key and its certificate chain (leaf first). Checked for "
        "changes every sluice.ssl.reload.check.ms: new connections use the new key and certificate."),
    STR("ssl.keystore.certificate.chain", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "The certificate chain in PEM, inline (line breaks may be lost, as in a one-line properties value); "
        "used with ssl.keystore.key when ssl.keystore.location is unset."),
    STR("ssl.keystore.key", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE | CONFIG_F_SENSITIVE,
        "The private key in PEM (PKCS#8, encrypted or not), inline."),
    STR("ssl.key.password", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE | CONFIG_F_SENSITIVE,
        "Password of an encrypted private key."),
    {.name = "ssl.truststore.type", .type = CONFIG_ENUM, .dflt = "PEM", .allowed = pem_values,
     .field = CONFIG_NO_FIELD, .flags = CONFIG_F_ACTIVE | CONFIG_F_ICASE | CONFIG_F_DEVIATES,
     .doc = "Format of the trust store. Sluice reads PEM only (Kafka's default is JKS)."},
    STR("ssl.truststore.location", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "PEM file of the CA certificates that client certificates are checked against (ssl.client.auth). "
        "Reloaded like the key store."),
    STR("ssl.truststore.certificates", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE,
        "The trusted CA certificates in PEM, inline; used when ssl.truststore.location is unset."),
    {.name = "ssl.client.auth", .type = CONFIG_ENUM, .dflt = "none", .allowed = client_auth_values,
     .field = CONFIG_NO_FIELD, .flags = CONFIG_F_ACTIVE | CONFIG_F_ICASE,
     .doc = "Client certificates on SSL listeners: none (not asked for), requested (checked if sent), "
            "required (a client without a valid one is refused in the handshake)."},
    {.name = "ssl.enabled.protocols", .type = CONFIG_STRING, .dflt = "TLSv1.2,TLSv1.3", .field = CONFIG_NO_FIELD,
     .check = check_tls_protocols, .valid = "TLSv1.2, TLSv1.3", .flags = CONFIG_F_ACTIVE,
     .doc = "TLS versions SSL listeners accept."},
    STR("ssl.cipher.suites", "", CONFIG_NO_FIELD, CONFIG_F_ACTIVE,
        "Comma-separated cipher suites, by IANA name (as Kafka takes them, e.g. "
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) or OpenSSL's; empty: OpenSSL's defaults. TLS 1.3 suites "
        "(TLS_AES_...) and older ones narrow their own protocol version only."),
    INT("sluice.ssl.reload.check.ms", "1000", 0, I32MAX, CONFIG_NO_FIELD, CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "How often the key and trust store files of SSL listeners are checked for changes (mtime, size), at "
        "the next accepted connection; 0 never reloads. Kafka reloads through a dynamic config update instead."),

    /* ---- security: SASL ---- */
    {.name = "sasl.enabled.mechanisms", .type = CONFIG_STRING, .dflt = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
     .field = CONFIG_NO_FIELD, .check = check_sasl_mechanisms, .valid = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
     .flags = CONFIG_F_ACTIVE | CONFIG_F_DEVIATES,
     .doc = "SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer (per listener: "
            "listener.name.<name>.sasl.enabled.mechanisms). Kafka's default is GSSAPI, which Sluice does not "
            "have."},
    STR("sasl.jaas.config", NULL, CONFIG_NO_FIELD, CONFIG_F_NULLABLE | CONFIG_F_ACTIVE | CONFIG_F_SENSITIVE,
        "JAAS configuration of a SASL mechanism, set per listener and mechanism as Kafka has it: "
        "listener.name.<name>.plain.sasl.jaas.config='org.apache.kafka.common.security.plain.PlainLoginModule "
        "required user_<user>=\"<password>\" ...;' gives PLAIN its users. SCRAM users live in the metadata "
        "log (AlterUserScramCredentials)."),
    INT("connections.max.reauth.ms", "0", 0, I32MAX, CONFIG_NO_FIELD, CONFIG_F_ACTIVE,
        "Lifetime of a SASL session (KIP-368), told to clients in SaslAuthenticate v1+; a client must "
        "re-authenticate before it ends or its next request closes the connection. 0: no limit."),

    /* ---- security: authorization ---- */
    {.name = "authorizer.class.name", .type = CONFIG_STRING, .dflt = "", .field = B(authorizer_class_name),
     .check = check_authorizer, .valid = "\"\" or " ACL_AUTHORIZER_CLASS, .flags = CONFIG_F_ACTIVE,
     .doc = "The authorizer: empty for none (every request is allowed and the ACL APIs answer "
            "SECURITY_DISABLED), or " ACL_AUTHORIZER_CLASS " for ACLs kept in the metadata log "
            "(docs/security.md). Any other class is a start-up error."},
    STR("super.users", "", B(super_users), CONFIG_F_ACTIVE,
        "Semicolon-separated principals (User:admin;User:CN=broker1,O=example) the authorizer allows "
        "everything without ACLs. With a PLAINTEXT inter-broker or controller listener the brokers are "
        "User:ANONYMOUS: see docs/security.md."),
    BOOL("allow.everyone.if.no.acl.found", "false", B(allow_everyone_if_no_acl_found), CONFIG_F_ACTIVE,
         "Whether the authorizer allows a request on a resource that has no ACL at all."),

    /* ---- client quotas ---- */
    INT("quota.window.num", "11", 1, 100, B(quota_window_num), CONFIG_F_ACTIVE,
        "Samples a client quota's rate is measured over (producer_byte_rate, consumer_byte_rate, "
        "request_percentage, controller_mutation_rate; docs/security.md)."),
    INT("quota.window.size.seconds", "1", 1, 3600, B(quota_window_size_seconds), CONFIG_F_ACTIVE,
        "Length of one sample of a client quota's rate."),

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

    /* ---- metrics and the console (broker/observe.c) ---- */
    {.name = "sluice.http.listeners", .type = CONFIG_STRING, .dflt = "http://127.0.0.1:9644",
     .field = B(http_listeners), .check = config_check_http_listener, .valid = "http://host:port, or empty",
     .flags = CONFIG_F_SLUICE | CONFIG_F_ACTIVE, .section = "Metrics and console",
     .doc = "Address of the HTTP listener serving /metrics (Prometheus), /health, /ready and the web console; "
            "empty disables it. Binds localhost by default. If the default port is taken the broker starts "
            "without it (logged); an address set explicitly that cannot be bound stops the start."},
    INT("sluice.http.max.connections", "64", 1, 10000, B(http_max_connections), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "Most HTTP connections held at once; more are refused."),
    INT("sluice.http.max.connections.per.ip", "16", 1, 10000, B(http_max_connections_per_ip),
        CONFIG_F_SLUICE | CONFIG_F_ACTIVE, "Most HTTP connections from one address."),
    INT("sluice.http.request.max.bytes", "16384", 4096, 1048576, B(http_request_max_bytes),
        CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "Memory one HTTP connection may use for its request line, headers and body; a larger request is "
        "refused."),
    INT("sluice.http.connection.timeout.ms", "30000", 1000, 3600000, B(http_connection_timeout_ms),
        CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "An HTTP connection with no traffic for this long is closed (rounded up to whole seconds)."),
    LONG("sluice.http.response.max.bytes", "67108864", 65536, (int64_t)1 << 32, B(http_response_max_bytes),
         CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Largest /metrics or JSON answer; series beyond it are left out and sluice_metrics_truncated is 1."),
    BOOL("sluice.metrics.enable", "true", B(metrics_enable), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Count requests, latencies and per-topic traffic. false leaves only the gauges read at scrape time "
         "(the overhead benchmark compares the two)."),
    INT("sluice.metrics.topics.max", "10000", 0, 1000000, B(metrics_topics_max), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "Topics with their own traffic counters; traffic of further topics is counted only in the broker-wide "
        "totals."),
    INT("sluice.metrics.partition.series.max", "10000", 0, I32MAX, B(metrics_partition_series_max),
        CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "Partitions whose per-partition series (log size, segments, offsets) /metrics writes; 0 turns them "
        "off. Beyond it partitions are left out and counted in sluice_metrics_series_dropped."),
    LONG("sluice.request.slow.log.ms", "1000", 0, 3600000, B(request_slow_log_ms), CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
         "Log a line (rate-limited) for a request the broker itself spent longer than this on: time waiting "
         "for a handler plus handler time, not a long poll's wait. The line names the API, version, client, "
         "address and the time in each stage. 0 turns it off."),
    INT("sluice.metrics.group.lag.series.max", "10000", 0, I32MAX, B(metrics_group_lag_series_max),
        CONFIG_F_SLUICE | CONFIG_F_ACTIVE,
        "Committed offsets whose consumer lag /metrics writes (one series each); 0 turns them off."),
};
/* clang-format on */

#define N_BROKER (sizeof broker_defs / sizeof broker_defs[0])
_Static_assert(N_BROKER <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX");

const config_def *config_broker_defs(size_t *n) {
    *n = N_BROKER;
    return broker_defs;
}

int config_broker_index(const char *name) {
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < N_BROKER; i++)
        if (strcmp(broker_defs[i].name, name) == 0)
            return (int)i;
    return -1;
}

const config_def *config_find_broker(const char *name) {
    int i = config_broker_index(name);
    return i < 0 ? NULL : &broker_defs[i];
}

size_t config_broker_chain(const config_def *d, const config_def **out, size_t max) {
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
