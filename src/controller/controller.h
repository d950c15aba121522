/*
 * controller.h - the controller's state machine: admin requests in, metadata
 * records out.
 *
 * The controller owns the rules of cluster metadata changes. It validates
 * CreateTopics, DeleteTopics, CreatePartitions and (Incremental)AlterConfigs
 * against its view of the metadata, chooses replica placements and topic
 * ids, and turns what it accepts into KRaft metadata records
 * (metadata/records.h). It never touches a log or a socket:
 *
 *   - events come in as calls, each with `now`: a request (with an opaque
 *     token), the outcome of an append it asked for, the commit of an
 *     offset, a clock tick;
 *   - actions go out through the sink: `append` (write these records as one
 *     atomic batch; the owner returns at once whether it was accepted and at
 *     which offsets) and `reply` (the answer for a token, exactly once);
 *   - ctrl_next_deadline() says when to tick next (requests whose records
 *     are not committed within the request timeout are answered
 *     REQUEST_TIMED_OUT).
 *
 * A request is answered when its records are committed, i.e. when the owner
 * reports with ctrl_commit() an offset at or past the last of them, having
 * applied them to the published image first. So a client that gets success
 * finds its topic in the next Metadata answer of every broker that has
 * caught up. On a single node the owner appends, fsyncs and commits inside
 * the sink call, and the reply comes before the request call returns.
 *
 * The view. The controller validates against the last committed image plus
 * its own uncommitted proposals (kept as encoded records and replayed onto
 * each newly committed image), so two CreateTopics for one name in flight at
 * once cannot both succeed. A refused append (disk full, not the leader)
 * drops the proposal and answers its request with the owner's error.
 *
 * Determinism: topic ids and the random start of replica placement come
 * from the seed in ctrl_config (the owner seeds it from its env), so the
 * simulation replays exactly.
 *
 * Not thread-safe: the owner serialises calls.
 */
#ifndef SLUICE_CONTROLLER_CONTROLLER_H
#define SLUICE_CONTROLLER_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "metadata/image.h"
#include "metadata/records.h"
#include "proto/wire.h"

/* Limits. */
#define CTRL_TOPIC_PARTITIONS_MAX 10000  /* per topic */
#define CTRL_PARTITIONS_MAX       100000 /* in the cluster */
#define CTRL_TOPIC_CONFIGS_MAX    64     /* overrides per topic */
#define CTRL_REQUEST_ITEMS_MAX    10000  /* topics or resources in one request */
#define CTRL_PENDING_MAX          1024   /* requests waiting for their commit */
#define CTRL_MSG_MAX              512    /* per-item error messages */
#define CTRL_NAME_MAX             249
#define CTRL_PRODUCER_ID_BLOCK    1000 /* producer ids per AllocateProducerIds */

/* What the controller needs to know about config keys, supplied by the
 * owner (who holds the config tables): the controller never parses values
 * itself. */
typedef struct ctrl_config_ops {
    void *ctx;
    /* Validates a topic's full set of overrides; 0 or a Kafka error code
     * (INVALID_CONFIG, POLICY_VIOLATION for internal topics) with msg. */
    int (*check)(void *ctx, const char *topic, const char *const *keys, const char *const *values, int n,
                 char *msg, size_t msgn);
    /* 1 for a list-valued topic key, 0 for another known key, -1 unknown. */
    int (*key_kind)(void *ctx, const char *key);
    /* The effective value of key for a topic with these overrides (the
     * override, else the broker's value, else the default) into out;
     * false when it has none (null). */
    bool (*effective)(void *ctx, const char *const *keys, const char *const *values, int n, const char *key,
                      char *out, size_t outn);
    /* Whether this broker can hold `more` new partitions (file descriptors,
     * disk); 0 or a Kafka error code with msg. NULL: no limit beyond
     * partitions_max. */
    int (*check_new_partitions)(void *ctx, int64_t more, char *msg, size_t msgn);
} ctrl_config_ops;

typedef struct ctrl_config {
    int32_t node_id;
    int32_t default_partitions;         /* num.partitions */
    int16_t default_replication_factor; /* default.replication.factor */
    bool delete_topic_enable;           /* delete.topic.enable */
    int64_t request_timeout_ms;         /* a commit that takes longer times the request out */
    int64_t partitions_max;             /* in the cluster (<= CTRL_PARTITIONS_MAX): owner's budget */
    uint64_t seed;                      /* topic ids, placement */
    /* broker.session.timeout.ms: a registered broker (other than this
     * node) that has not heartbeaten for this long is fenced, and the
     * partitions it leads get a new leader from their ISR (or none). */
    int64_t broker_session_timeout_ms;
    /* Finalize metadata.version at CTRL_METADATA_VERSION_LATEST on the
     * first tick when the log has none yet (a new cluster; off in the
     * machine's own tests, which count records). */
    bool bootstrap_features;
    /* auto.leader.rebalance.enable and friends: every interval, a broker
     * whose preferred partitions (it is the first replica) are led by
     * another broker for more than imbalance_pct percent of them gets the
     * leadership of those back where it is live and in the ISR. */
    bool auto_leader_rebalance;
    int64_t leader_imbalance_check_ms;
    int32_t leader_imbalance_pct;
    ctrl_config_ops configs;
} ctrl_config;

void ctrl_config_default(ctrl_config *c);

/* ---- requests ------------------------------------------------------------ */

typedef struct ctrl_kv {
    kstr key;
    kstr value; /* null: delete (alter) / invalid (create) */
} ctrl_kv;

typedef struct ctrl_assignment {
    int32_t partition; /* CreateTopics: the index given; CreatePartitions: ignored (in order) */
    const int32_t *brokers;
    int32_t n;
} ctrl_assignment;

typedef struct ctrl_new_topic {
    kstr name;
    int32_t partitions;         /* -1: default */
    int16_t replication_factor; /* -1: default */
    const ctrl_assignment *assignments;
    int32_t n_assignments; /* > 0 replaces partitions and replication_factor (both must be -1) */
    const ctrl_kv *configs;
    int32_t n_configs;
    bool internal; /* set by the broker for its own topics only; clients never */
} ctrl_new_topic;

typedef struct ctrl_topic_ref {
    kstr name; /* null when by id */
    kuuid id;  /* zero when by name */
} ctrl_topic_ref;

typedef struct ctrl_new_partitions {
    kstr name;
    int32_t count; /* the new total */
    const ctrl_assignment *assignments;
    int32_t n_assignments; /* -1: none given */
} ctrl_new_partitions;

/* IncrementalAlterConfigs operations (Kafka's codes). */
typedef enum ctrl_alter_op {
    CTRL_SET = 0,
    CTRL_DELETE = 1,
    CTRL_APPEND = 2,
    CTRL_SUBTRACT = 3
} ctrl_alter_op;

typedef struct ctrl_alter {
    kstr key;
    int8_t op;  /* incremental only */
    kstr value; /* null with DELETE, or a null value in AlterConfigs (refused) */
} ctrl_alter;

typedef struct ctrl_resource {
    int8_t type; /* MD_RESOURCE_TOPIC or MD_RESOURCE_BROKER */
    kstr name;
    const ctrl_alter *alters;
    int32_t n;
} ctrl_resource;

/* ---- results ----------------------------------------------------------------- */

/* One item's outcome (a topic or a resource, in request order). */
typedef struct ctrl_item_result {
    int16_t error;
    char message[CTRL_MSG_MAX]; /* "" when none */
    kuuid topic_id;             /* created or deleted topic */
    int32_t partitions;         /* CreateTopics: the count it has (or would have) */
    int16_t replication_factor;
    char name[CTRL_NAME_MAX + 1]; /* DeleteTopics by id: the name it had */
    int64_t producer_id_start;    /* AllocateProducerIds: the block's first id */
} ctrl_item_result;

typedef enum ctrl_kind {
    CTRL_CREATE_TOPICS = 1,
    CTRL_DELETE_TOPICS,
    CTRL_CREATE_PARTITIONS,
    CTRL_ALTER_CONFIGS,
    CTRL_REGISTER_BROKER,
    CTRL_ALLOCATE_PRODUCER_IDS,
    CTRL_ELECT_LEADERS,
    CTRL_UNREGISTER_BROKER,
    CTRL_ALTER_PARTITION,
    CTRL_ALTER_SCRAM,
    CTRL_UPDATE_FEATURES,
    CTRL_ALTER_ACLS,
    CTRL_ALTER_QUOTAS,
} ctrl_kind;

/* items is NULL with n == 0 when the controller ran out of memory: every
 * item failed (UNKNOWN_SERVER_ERROR). */
typedef struct ctrl_result {
    ctrl_kind kind;
    const ctrl_item_result *items;
    int32_t n;
    int64_t last_offset; /* of the records it wrote; -1 when none */
} ctrl_result;

/* ---- the sink ------------------------------------------------------------------ */

typedef struct ctrl_append_result {
    int16_t error;       /* 0, or the Kafka error to answer with */
    int64_t last_offset; /* offset of the last record, when accepted */
} ctrl_append_result;

typedef struct ctrl_sink {
    void *ctx;
    /* Append recs[0..n) as one atomic batch. May call ctrl_commit before
     * returning (single node). */
    ctrl_append_result (*append)(void *ctx, const mdrec *recs, int n);
    /* The answer to a request: called exactly once per token. */
    void (*reply)(void *ctx, void *token, const ctrl_result *res);
} ctrl_sink;

typedef struct controller controller;

/* A controller whose view starts at `committed` (referenced). NULL on OOM. */
controller *ctrl_create(const ctrl_config *cfg, const ctrl_sink *sink, md_image *committed);

/* One change of AlterUserScramCredentials: a deletion, or an upsertion
 * whose keys the caller derived from the salted password (the mechanism's
 * lengths, checked by the caller). */
typedef struct ctrl_scram_op {
    kstr name;
    int8_t mechanism; /* 1 SCRAM-SHA-256, 2 SCRAM-SHA-512 */
    bool remove;
    int32_t iterations;
    kbytes salt, stored_key, server_key;
} ctrl_scram_op;
/* Answers every waiting request with `error` and frees the controller. */
void ctrl_destroy(controller *c, int16_t error);

/* ---- events --------------------------------------------------------------------- */

void ctrl_create_topics(controller *c, const ctrl_new_topic *topics, int32_t n, bool validate_only,
                        void *token, int64_t now);
void ctrl_delete_topics(controller *c, const ctrl_topic_ref *topics, int32_t n, void *token, int64_t now);
void ctrl_create_partitions(controller *c, const ctrl_new_partitions *topics, int32_t n, bool validate_only,
                            void *token, int64_t now);
/* incremental: IncrementalAlterConfigs (per-key ops); otherwise AlterConfigs
 * (the resource's overrides become exactly the given set). */
void ctrl_alter_configs(controller *c, const ctrl_resource *res, int32_t n, bool incremental,
                        bool validate_only, void *token, int64_t now);

/* A broker's registration (the local node at start on a single node). */
typedef struct ctrl_broker_reg {
    int32_t id;
    kuuid incarnation;
    const char *listener_name;
    const char *host;
    uint16_t port;
    const char *rack; /* NULL: none */
} ctrl_broker_reg;
void ctrl_register_broker(controller *c, const ctrl_broker_reg *reg, void *token, int64_t now);
/* One item per op, in order: RESOURCE_NOT_FOUND for the deletion of a
 * credential that does not exist. */
void ctrl_alter_scram(controller *c, const ctrl_scram_op *ops, int32_t n, void *token, int64_t now);

/* One change of CreateAcls or DeleteAcls: a binding to create (the
 * controller picks its id; a binding that exists already is a success
 * without a record, as in Kafka), or the removal of the binding with id
 * (one that is gone by now is a success too: another deletion won). */
typedef struct ctrl_acl_op {
    bool remove;
    kuuid id;         /* remove */
    acl_spec binding; /* create */
} ctrl_acl_op;
/* One item per op, in order: INVALID_REQUEST for a binding that
 * acl_binding_invalid refuses, with its reason. */
void ctrl_alter_acls(controller *c, const ctrl_acl_op *ops, int32_t n, void *token, int64_t now);

/* One entry of AlterClientQuotas: an entity (one or two components, a
 * null name for the default) and the keys to set or remove. The handler
 * has checked the keys and values; the controller writes one
 * ClientQuotaRecord per op that changes something. */
typedef struct ctrl_quota_op {
    kstr key;
    double value;
    bool remove;
} ctrl_quota_op;
typedef struct ctrl_quota_entry {
    md_quota_comp entity[2];
    int32_t n_entity;
    const ctrl_quota_op *ops;
    int32_t n_ops;
} ctrl_quota_entry;
/* One item per entry, in order: INVALID_REQUEST for an entity or key the
 * quota set refuses, with its reason. */
void ctrl_alter_quotas(controller *c, const ctrl_quota_entry *entries, int32_t n, void *token, int64_t now);

/* AllocateProducerIds: a block of CTRL_PRODUCER_ID_BLOCK producer ids for
 * a broker, recorded with a ProducerIdsRecord so that no id is handed out
 * twice, across restarts and controller changes; answered on commit with
 * the block's first id in items[0].producer_id_start. broker_epoch -1 (the
 * local node) skips the epoch check; otherwise a broker that is not
 * registered gets BROKER_ID_NOT_REGISTERED, a stale epoch STALE_BROKER_EPOCH. */
void ctrl_allocate_producer_ids(controller *c, int32_t broker_id, int64_t broker_epoch, void *token,
                                int64_t now);

/* A broker's heartbeat (BrokerHeartbeat). Fills *fenced with its
 * committed state; a fenced broker that heartbeats with its current epoch
 * is unfenced (an UnfenceBrokerRecord is proposed). want_shut_down is the
 * controlled shutdown of a broker that is stopping: it is fenced at once
 * (its leaderships move on the next tick) instead of after its session,
 * and *shut_down says once that is committed. Returns 0,
 * BROKER_ID_NOT_REGISTERED or STALE_BROKER_EPOCH. */
int16_t ctrl_broker_heartbeat(controller *c, int32_t id, int64_t broker_epoch, bool want_shut_down,
                              int64_t now, bool *fenced, bool *shut_down);

/* ElectLeaders (Kafka's election types). PREFERRED moves leadership to a
 * partition's first replica when it is live and in the ISR
 * (ELECTION_NOT_NEEDED when it leads already, PREFERRED_LEADER_NOT_AVAILABLE
 * otherwise). UNCLEAN gives a leaderless partition (or one led by a fenced
 * broker) a leader: from the ISR if a member is live, else any live replica,
 * which becomes the whole ISR (records past its log end are lost: that is
 * what unclean means); ELECTION_NOT_NEEDED when a live leader exists,
 * ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is live. One result per
 * item, in order. */
#define CTRL_ELECT_PREFERRED 0
#define CTRL_ELECT_UNCLEAN   1
typedef struct ctrl_partition_ref {
    kstr topic;
    int32_t partition;
} ctrl_partition_ref;
void ctrl_elect_leaders(controller *c, int8_t type, const ctrl_partition_ref *parts, int32_t n, void *token,
                        int64_t now);

/* UnregisterBroker: the broker's registration is removed (an
 * UnregisterBrokerRecord); the partitions it led get new leaders from their
 * ISR on the next tick. BROKER_ID_NOT_REGISTERED when it has none; this
 * node cannot unregister itself (INVALID_REQUEST). A broker that is still
 * running registers again at its next heartbeat. */
void ctrl_unregister_broker(controller *c, int32_t id, void *token, int64_t now);

/* ---- features (metadata.version) ---------------------------------------------------------------
 *
 * The one feature Sluice knows is metadata.version, with Kafka's feature
 * levels (7 is 3.3-IV3, 21 3.9-IV0, 25 4.0-IV3). Sluice's record layouts do
 * not change with the level: the level is recorded (FeatureLevelRecord) and
 * reported (ApiVersions) so Kafka's tools and upgrade procedures see what
 * they expect. Level 1 is what a log migrated from Sluice's first metadata
 * log holds. */
#define CTRL_METADATA_VERSION_MIN    1
#define CTRL_METADATA_VERSION_LATEST 25 /* 4.0-IV3 */

typedef struct ctrl_feature_update {
    kstr name;
    int16_t level;       /* 0: remove the feature */
    int8_t upgrade_type; /* 1 upgrade, 2 safe downgrade, 3 unsafe downgrade (UpdateFeatures v1) */
} ctrl_feature_update;

/* UpdateFeatures: per item INVALID_UPDATE_VERSION for an unknown feature, a
 * level outside what Sluice supports, removing metadata.version, or a
 * downgrade (metadata.version cannot go down, as in Kafka 4); otherwise a
 * FeatureLevelRecord (none for the level already finalized). validate_only
 * checks without writing. */
void ctrl_update_features(controller *c, const ctrl_feature_update *u, int32_t n, bool validate_only,
                          void *token, int64_t now);

/* AlterPartition from a partition leader: ISR changes (Kafka's checks:
 * STALE_BROKER_EPOCH for every item when broker_epoch is not the broker's
 * registered one; per item UNKNOWN_TOPIC_ID / UNKNOWN_TOPIC_OR_PARTITION,
 * NOT_LEADER_OR_FOLLOWER when broker_id does not lead it, FENCED_LEADER_EPOCH
 * for another leader epoch, INVALID_UPDATE_VERSION for another partition
 * epoch, INVALID_REQUEST for an ISR without the leader, with repeats or
 * beyond the replicas, INELIGIBLE_REPLICA for a member that is fenced, in
 * controlled shutdown, unregistered, or (broker_epochs given, v3) of
 * another broker epoch). An accepted change writes a PartitionChangeRecord
 * (a new partition epoch) unless the ISR is already the one asked for; the
 * owner answers with the partition's committed state. */
typedef struct ctrl_isr_change {
    kuuid topic_id;
    int32_t partition;
    int32_t leader_epoch;
    int32_t partition_epoch;
    const int32_t *isr;
    const int64_t *broker_epochs; /* NULL, or per member (-1: unchecked) */
    int32_t n_isr;
    int8_t leader_recovery_state; /* 0 recovered, 1 recovering */
} ctrl_isr_change;
void ctrl_alter_partition(controller *c, int32_t broker_id, int64_t broker_epoch, const ctrl_isr_change *ch,
                          int32_t n, void *token, int64_t now);

/* Records up to `offset` are committed and `image` (referenced by the
 * controller from now on) is the image with them applied. Answers the
 * requests they complete. */
void ctrl_commit(controller *c, md_image *image, int64_t now);

/* Request timeouts; brokers whose session expired are fenced; fenced or
 * unregistered brokers leave the ISRs they are in (unless no member would
 * be left live: then the ISR stays as it was, each member holding every
 * committed record); partitions whose leader is fenced or gone, or that
 * have none, get one from their ISR's live brokers, or, when the topic's
 * unclean.leader.election.enable is true and no ISR member is live, any
 * live replica as the whole ISR (only while no proposal of this controller
 * is in flight, so decisions are taken on the committed image).
 *
 * Until followers replicate (the replication work), a new partition's ISR
 * is its leader alone: no other replica holds its records. */
void ctrl_tick(controller *c, int64_t now);
int64_t ctrl_next_deadline(const controller *c);

/* ---- pure helpers (also used by handlers that answer without the controller) -- */

/* Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], not "." or "..".
 * Returns 0 or INVALID_TOPIC_EXCEPTION with msg filled. */
int ctrl_validate_topic_name(kstr name, char *msg, size_t msgn);

/* The broker's internal topics (__consumer_offsets, __transaction_state,
 * __share_group_state): only the broker creates them, nobody deletes them
 * or adds partitions. */
bool ctrl_internal_topic(kstr name);
/* Names no client topic may have: the metadata logs' names, the internal
 * topics', and names ending in the set-aside suffix of log directories. */
bool ctrl_reserved_topic_name(kstr name);
#define CTRL_STRAY_SUFFIX "-stray"

/* Replica placement as Kafka does it: brokers[] (ids, with racks or NULL)
 * in a rack-alternating order, round robin from a random start with a
 * shifting follower offset, so leaders and followers spread evenly; with
 * racks, no two replicas of a partition share a rack while racks remain.
 * Writes n_partitions * rf ids to out (partition-major). Returns 0, or -1
 * when rf exceeds the brokers. */
int ctrl_place_replicas(const int32_t *brokers, const char *const *racks, int32_t n_brokers,
                        int32_t n_partitions, int32_t rf, int32_t first_partition, uint64_t *rng,
                        int32_t *out);

#endif
