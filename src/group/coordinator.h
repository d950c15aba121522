/*
 * coordinator.h - the group coordinator's state machine for the groups of one
 * `__consumer_offsets` partition (a "shard"): classic consumer groups
 * (join/sync/heartbeat/leave, generations, static membership), their
 * committed offsets, and the loading of both from the partition's records.
 *
 * No I/O inside. Every entry point is an event and takes the clock reading
 * `now` (wall-clock milliseconds); the machine answers through the sink:
 *   - join_done, sync_done, commit_done, delete_group_done and
 *     delete_offsets_done answer a parked request, either before the entry
 *     point returns or later, from another event (a join that completes the
 *     rebalance, a timer, a leave, the completion of an append);
 *   - append asks the owner to append records to the shard's partition. It
 *     returns an append id (> 0), or 0 with *err set when the owner refuses
 *     at once (nothing was written). The owner reports the outcome of every
 *     accepted append exactly once with gcoord_append_done(id, err, now):
 *     later, from its own event, or already inside the append call (a single
 *     node that writes synchronously). Either order works: an outcome reported
 *     inside a sink call is processed when the machine's current event ends.
 *     Outcomes are processed in the order the appends were issued (a log
 *     commits in order); one reported early waits for those before it.
 *     A snapshot append replaces everything written before it (the owner may
 *     drop older records once it is done); it includes the records of
 *     appends still in flight, so dropping them loses nothing;
 *   - timers are deadlines kept inside: gcoord_next_deadline() says when the
 *     owner must next call gcoord_tick();
 *   - event (optional) tells the owner what an operator should see: a
 *     rebalance starting (with its reason) and ending (generation, members,
 *     protocol, leader).
 * Heartbeat and LeaveGroup are answered by the return value of their entry
 * point (neither waits for a write: LeaveGroup's rebalance may write, but
 * its answer does not depend on it, as in Kafka).
 *
 * What waits for a durable write (the append's outcome): OffsetCommit (the
 * offsets become visible to OffsetFetch only then, so a fetch never shows an
 * offset that a crash or a failed write could lose), the leader's SyncGroup
 * (every member's SyncGroup is answered once the generation and its
 * assignment are stored), a static member's JoinGroup that replaces its
 * member id without a rebalance, DeleteGroups and OffsetDelete. A failed
 * write answers with Kafka's mapping of the append error (e.g.
 * NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR become NOT_COORDINATOR) and
 * leaves the in-memory state as the log has it: a failed commit stays
 * invisible, a failed generation store sends the group back to rebalancing, a
 * failed delete leaves the group Empty. At most GCOORD_APPENDS_MAX appends
 * are outstanding at the owner; beyond that requests that must write are
 * answered COORDINATOR_NOT_AVAILABLE (retriable) and timers retry later.
 *
 * Leadership: a machine starts unloaded (every request: NOT_COORDINATOR).
 * gcoord_load_begin(epoch) when this broker becomes leader of the partition
 * (requests: COORDINATOR_LOAD_IN_PROGRESS), gcoord_load_record for each
 * record of the partition, gcoord_load_end; gcoord_unload(epoch) when it
 * stops being leader: parked requests are answered NOT_COORDINATOR, the
 * groups are dropped, outcomes of appends still in flight are ignored, and
 * later requests get NOT_COORDINATOR until the next load. Events of an older
 * leader epoch than the current one are ignored.
 *
 * Group states and transitions are Kafka's: Empty -> PreparingRebalance
 * (a member joins) -> CompletingRebalance (every member rejoined, or the
 * rebalance timeout passed; join responses sent, the leader gets the member
 * list) -> Stable (the leader's SyncGroup brought the assignment and it was
 * stored) -> PreparingRebalance (join, leave, expiry, metadata change) ...;
 * Dead while the tombstones of a deleted or expired group are being written
 * (requests get COORDINATOR_NOT_AVAILABLE or GROUP_ID_NOT_FOUND), then gone.
 * The first rebalance of an empty group waits
 * group.initial.rebalance.delay.ms (extended while members keep arriving, at
 * most up to the rebalance timeout).
 *
 * Ownership: the machine owns copies of everything it keeps (ids, protocol
 * metadata, assignments, offsets, the records of appends in flight); results
 * passed to the sink point into that memory or into the request and are
 * valid only during the callback. Tokens are opaque to the machine: each
 * parked request's token is handed to exactly one answer callback, including
 * at gcoord_unload() and gcoord_shutdown().
 *
 * Not thread-safe: the owner serialises calls (one mutex per shard). Sink
 * callbacks must not call back into the machine, except append calling
 * gcoord_append_done.
 */
#ifndef SLUICE_GROUP_COORDINATOR_H
#define SLUICE_GROUP_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "group/cgroup.h"
#include "proto/wire.h"

/* Limits. */
#define GCOORD_GROUP_ID_MAX  4096      /* bytes of a group id */
#define GCOORD_ID_MAX        1024      /* member, instance, client ids, hosts */
#define GCOORD_PROTOCOLS_MAX 64        /* protocols per member */
#define GCOORD_METADATA_MAX  (1 << 20) /* bytes of one protocol's metadata or an assignment */
#define GCOORD_MEMBERS_MAX   10000     /* members (and pending members) per group */
#define GCOORD_GROUPS_MAX    1000000   /* groups per shard */
#define GCOORD_OFFSETS_MAX   10000000  /* committed offsets per shard */
#define GCOORD_APPENDS_MAX   1024      /* appends outstanding at the owner per shard */
/* Removing a deleted topic's offsets: per step (one in gcoord_remove_topic,
 * the rest in gcoord_tick) at most so many groups visited and offsets
 * examined (a group is done whole, so one large group may exceed it); at
 * most so many topics waiting. */
#define GCOORD_REMOVE_STEP_GROUPS  10000
#define GCOORD_REMOVE_STEP_OFFSETS 10000
#define GCOORD_REMOVED_TOPICS_MAX  100000

typedef enum gcoord_state {
    GCOORD_EMPTY = 0,
    GCOORD_PREPARING_REBALANCE,
    GCOORD_COMPLETING_REBALANCE,
    GCOORD_STABLE,
    GCOORD_DEAD,
} gcoord_state;

/* Kafka's names: "Empty", "PreparingRebalance", ... */
const char *gcoord_state_name(gcoord_state s);
/* Parses a name (case-insensitive); -1 if unknown. */
int gcoord_state_parse(kstr name);

typedef struct gcoord_config {
    int32_t initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
    int32_t min_session_timeout_ms;     /* group.min.session.timeout.ms */
    int32_t max_session_timeout_ms;     /* group.max.session.timeout.ms */
    int32_t max_size;                   /* group.max.size */
    int64_t offsets_retention_ms;       /* offsets.retention.minutes, in ms */
    int64_t retention_check_interval_ms;
    int32_t max_metadata_bytes;   /* offset.metadata.max.bytes */
    int32_t snapshot_min_records; /* appended records before a snapshot is considered */
    uint64_t id_seed;             /* member ids are client id + '-' + hex from this */
    cg_config cg;                 /* consumer groups of the KIP-848 protocol */
} gcoord_config;

void gcoord_config_default(gcoord_config *c);

/* ---- what the machine keeps (read-only for the owner) ------------------- */

typedef struct gcoord_protocol {
    char *name;
    uint8_t *metadata;
    int32_t metadata_len;
} gcoord_protocol;

typedef struct gcoord_member {
    char *member_id;
    char *instance_id; /* NULL: dynamic member */
    char *client_id;
    char *client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    gcoord_protocol *protocols;
    int n_protocols;
    uint8_t *assignment;
    int32_t assignment_len;
    void *join_token; /* parked JoinGroup, or NULL */
    void *sync_token; /* parked SyncGroup, or NULL */
    int64_t hb_deadline;
    bool synced; /* sent SyncGroup for the current generation */
} gcoord_member;

typedef struct gcoord_pending {
    char *member_id;
    int64_t deadline;
} gcoord_pending;

typedef struct gcoord_offset_entry gcoord_offset_entry;

typedef struct gcoord_group {
    char *id;
    uint32_t hash;
    struct gcoord_group *next; /* hash chain */
    gcoord_state state;
    int64_t state_ts; /* when the state last changed (Empty: when it became empty) */
    int32_t generation;
    char *protocol_type; /* NULL: none (a group of simple consumers) */
    char *protocol;      /* selected protocol, NULL outside a generation */
    char *leader;        /* a member id, or NULL */
    gcoord_member **members;
    int n_members, cap_members;
    gcoord_pending *pending; /* dynamic members told MEMBER_ID_REQUIRED */
    int n_pending, cap_pending;
    int64_t join_deadline;     /* PreparingRebalance: when the join phase ends */
    int64_t initial_delay_end; /* > 0 while the initial delay runs: its hard end */
    int64_t sync_deadline;     /* CompletingRebalance: when the leader must have synced */
    bool new_member_added;     /* a member arrived during the initial delay */
    /* offsets: chained hash on (topic, partition) */
    gcoord_offset_entry **obuckets;
    int32_t n_obuckets;
    int32_t n_offsets;
    /* the last group metadata value known durable (for snapshots); NULL if none */
    uint8_t *meta_value;
    int32_t meta_value_len;
    uint64_t meta_seq;     /* the append that wrote it (0: loaded) */
    int32_t n_inflight;    /* appends in flight about this group: it stays while > 0 */
    bool sync_store;       /* CompletingRebalance: the leader's assignment is being stored */
    uint32_t topic_epoch;  /* topic removals up to this one are applied to its offsets */
    cgroup *cg;            /* a consumer group of the KIP-848 protocol; NULL: classic */
    bool cg_stale;         /* a write of cg's records failed: rebuild it from the store */
    int16_t cg_poison;     /* while stale: the error later writes of cg are answered with */
    bool cg_wait_snapshot; /* a failed write of cg is in the snapshot in flight: durable if it is */
} gcoord_group;

struct gcoord_offset_entry {
    gcoord_offset_entry *next;
    uint32_t hash;
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;
    int64_t commit_ts;
    int64_t expire_ts; /* -1: the default retention applies */
    uint64_t seq;      /* the append that wrote it (0: loaded) */
    uint64_t mark;     /* scratch: duplicate detection inside one call */
};

/* ---- actions --------------------------------------------------------------- */

typedef struct gcoord_join_member {
    kstr member_id;
    kstr instance_id;
    kbytes metadata;
} gcoord_join_member;

typedef struct gcoord_join_result {
    int16_t error;
    int32_t generation; /* -1 on error */
    kstr protocol_type; /* may be null */
    kstr protocol_name; /* may be null */
    kstr leader;
    kstr member_id;
    bool skip_assignment;
    const gcoord_join_member *members; /* only for the leader */
    int n_members;
} gcoord_join_result;

typedef struct gcoord_sync_result {
    int16_t error;
    kstr protocol_type; /* may be null */
    kstr protocol_name; /* may be null */
    kbytes assignment;
} gcoord_sync_result;

/* ConsumerGroupHeartbeat's answer. */
typedef struct gcoord_cg_result {
    int16_t error;
    const char *message; /* may be NULL */
    kstr member_id;      /* may be null */
    int32_t member_epoch;
    int32_t heartbeat_interval_ms;
    bool has_assignment;
    const asg_parts *assignment; /* when has_assignment */
} gcoord_cg_result;

typedef struct gcoord_record {
    kbytes key;
    kbytes value; /* len -1: tombstone */
} gcoord_record;

/* What an operator wants to know about a group (the owner logs it). */
typedef enum gcoord_event_kind {
    GCOORD_EV_REBALANCE_START = 1, /* the group enters PreparingRebalance */
    GCOORD_EV_REBALANCE_DONE = 2,  /* the join phase ended: a new generation (or Empty) */
} gcoord_event_kind;

typedef struct gcoord_event {
    gcoord_event_kind kind;
    kstr group_id;
    int32_t generation; /* START: the one ending; DONE: the new one */
    int n_members;      /* START: members now (the change included); DONE: of the new generation */
    kstr protocol_type; /* may be null */
    kstr protocol;      /* DONE: the protocol chosen; null when Empty */
    kstr leader;        /* DONE: null when Empty */
    const char *reason; /* START: why, e.g. "member joined" */
    gcoord_state from;  /* START: the state before */
} gcoord_event;

typedef struct gcoord_sink {
    void *ctx;
    void (*join_done)(void *ctx, void *token, const gcoord_join_result *res);
    void (*sync_done)(void *ctx, void *token, const gcoord_sync_result *res);
    /* OffsetCommit: errors[i] is entry i's result. errors is NULL when the
     * machine ran out of memory: every entry failed (UNKNOWN_SERVER_ERROR). */
    void (*commit_done)(void *ctx, void *token, const int16_t *errors, int n);
    /* DeleteGroups, for one group. */
    void (*delete_group_done)(void *ctx, void *token, int16_t error);
    /* OffsetDelete: a group-level error (then errors is NULL) or 0 with the
     * per-partition results; errors NULL with error 0 as for commit_done. */
    void (*delete_offsets_done)(void *ctx, void *token, int16_t error, const int16_t *errors, int n);
    /* Append recs[0..n) (keys, values; value len -1 = tombstone), in this
     * order after everything appended before. Returns an id > 0 (unique for
     * the machine's lifetime) whose outcome the owner reports with
     * gcoord_append_done, possibly before returning; or 0 with *err set to a
     * Kafka error code (NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR, ...)
     * when nothing was written. */
    uint64_t (*append)(void *ctx, const gcoord_record *recs, int n, bool snapshot, int16_t *err);
    /* Optional (may be NULL). Called during the event that caused it; the
     * event's strings are valid only during the call. */
    void (*event)(void *ctx, const gcoord_event *ev);
    /* ConsumerGroupHeartbeat, answered once its records are written. */
    void (*cg_heartbeat_done)(void *ctx, void *token, const gcoord_cg_result *res);
} gcoord_sink;

typedef struct gcoord gcoord;

/* An unloaded machine (every group request gets NOT_COORDINATOR until
 * gcoord_load_begin). NULL on OOM. */
gcoord *gcoord_create(const gcoord_config *cfg, const gcoord_sink *sink);
/* Frees everything. Parked requests must have been answered (gcoord_unload
 * or gcoord_shutdown). */
void gcoord_destroy(gcoord *c);
/* Unloads (answering every parked request with `error`, e.g. NOT_COORDINATOR)
 * and makes every later request fail with it, loads included. */
void gcoord_shutdown(gcoord *c, int16_t error);

/* ---- appends -------------------------------------------------------------- */

/* The outcome of the append `id`: 0, or the Kafka error the owner saw
 * (NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR, REQUEST_TIMED_OUT,
 * NOT_ENOUGH_REPLICAS, MESSAGE_TOO_LARGE, ...). Unknown ids (appends of an
 * earlier load) and repeated reports are ignored. Inside a sink call `now`
 * is not used (the event in progress has its own). */
void gcoord_append_done(gcoord *c, uint64_t id, int16_t err, int64_t now);
/* Appends whose outcome the owner has not reported yet. */
int gcoord_appends_outstanding(const gcoord *c);

/* ---- leadership and loading ------------------------------------------------ */

/* This broker became leader of the partition at `epoch`: the machine drops
 * whatever it had (as gcoord_unload) and starts loading. False (nothing
 * changes) when epoch is older than the current one, when it is already
 * loading or loaded at this epoch, or after gcoord_shutdown. */
bool gcoord_load_begin(gcoord *c, int32_t epoch, int64_t now);
/* Applies one record read from the partition (key, value or tombstone).
 * Returns 0, or -1 for a record that does not parse (skipped) or when the
 * machine is not loading. */
int gcoord_load_record(gcoord *c, kbytes key, kbytes value);
/* Ends loading: groups with members become Stable (members must heartbeat
 * within their session timeout), others Empty. */
void gcoord_load_end(gcoord *c, int64_t now);
/* This broker stopped being leader at `epoch` (-1: whatever the epoch):
 * parked requests are answered NOT_COORDINATOR, everything is dropped, later
 * requests get NOT_COORDINATOR. False when unloaded already or when epoch
 * is older than the epoch of the current load. */
bool gcoord_unload(gcoord *c, int32_t epoch, int64_t now);
bool gcoord_loading(const gcoord *c);
/* Loaded and serving. */
bool gcoord_active(const gcoord *c);
/* The epoch of the last gcoord_load_begin; -1 before the first. */
int32_t gcoord_epoch(const gcoord *c);

/* ---- the consumer group protocol ---------------------------------------- */

typedef struct gcoord_join_req {
    kstr group_id;
    kstr member_id;   /* "" when unknown */
    kstr instance_id; /* null when dynamic */
    kstr protocol_type;
    kstr client_id;
    kstr client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    const kstr *protocol_names;
    const kbytes *protocol_metadata;
    int n_protocols;
    bool require_known_member_id; /* JoinGroup v4+ */
} gcoord_join_req;

/* JoinGroup: the answer goes to sink->join_done(token) now or later. */
void gcoord_join(gcoord *c, const gcoord_join_req *req, void *token, int64_t now);

typedef struct gcoord_sync_req {
    kstr group_id;
    kstr member_id;
    kstr instance_id;
    int32_t generation;
    kstr protocol_type; /* null: not checked (before v5) */
    kstr protocol_name; /* null: not checked */
    const kstr *assign_member;
    const kbytes *assign_bytes;
    int n_assign;
} gcoord_sync_req;

/* SyncGroup: the answer goes to sink->sync_done(token) now or later. */
void gcoord_sync(gcoord *c, const gcoord_sync_req *req, void *token, int64_t now);

/* Heartbeat: returns the error code. */
int16_t gcoord_heartbeat(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int32_t generation,
                         int64_t now);

/* LeaveGroup for one member (member_id "" with an instance id: the static
 * member of that instance). Returns the member's error code; *group_err gets
 * a group-level one (loading, invalid group id) that applies to all. */
int16_t gcoord_leave(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int16_t *group_err,
                     int64_t now);

/* ---- the consumer group protocol of KIP-848 ----------------------------- */

/* ConsumerGroupHeartbeat (group/cgroup.h has the rules). The first
 * heartbeat of a new member creates the group; an Empty classic group
 * becomes a consumer group (its classic metadata gets a tombstone), a
 * classic group with members answers GROUP_ID_NOT_FOUND. The answer goes
 * to sink->cg_heartbeat_done(token) once the records the heartbeat caused
 * are written (at once when it caused none). topics (the cluster's topics,
 * read during the call only) resolves subscriptions and regexes; the
 * heartbeat's strings are read during the call only. token must not be
 * NULL. */
void gcoord_cg_heartbeat(gcoord *c, kstr group_id, const cg_heartbeat_req *req, const cg_topics *topics,
                         void *token, int64_t now);

/* ---- offsets ------------------------------------------------------------ */

typedef struct gcoord_commit {
    kstr topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    kstr metadata; /* null = "" */
    int16_t error; /* preset error (e.g. unknown topic): the entry is answered with it, not written */
} gcoord_commit;

/* OffsetCommit. generation -1 and member "" commit for a group without
 * members (simple consumers). retention_ms >= 0 sets an explicit expiry
 * (v2-4); commit_ts < 0 means now. The answer (each entry's error) goes to
 * sink->commit_done(token), once the append is done or at once; entries are
 * read during the call only. */
void gcoord_commit_offsets(gcoord *c, kstr group_id, int32_t generation, kstr member_id, kstr instance_id,
                           int64_t retention_ms, int64_t commit_ts, const gcoord_commit *entries, int n,
                           void *token, int64_t now);

/* The offsets of a committed transaction (TxnOffsetCommit, held by the
 * broker until the transaction's COMMIT marker reaches this shard's
 * partition): written and made visible like an OffsetCommit, without the
 * membership checks (they were made when the offsets were sent); a group
 * that does not exist is created. Answered through commit_done. */
void gcoord_commit_txn_offsets(gcoord *c, kstr group_id, const gcoord_commit *entries, int n, void *token,
                               int64_t now);

/* OffsetFetch of one partition: 0 with the values (offset -1 when none),
 * COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR. metadata points into the
 * machine. */
int16_t gcoord_fetch_offset(gcoord *c, kstr group_id, kstr topic, int32_t partition, int64_t *offset,
                            int32_t *leader_epoch, kstr *metadata);

/* OffsetFetch v9+ names a member of a consumer group: its epoch is checked
 * (cg_check_fetch); 0 for classic groups and groups not found. */
int16_t gcoord_check_fetch(const gcoord *c, kstr group_id, kstr member_id, int32_t member_epoch);

/* Every committed offset of a group, for OffsetFetch with null topics; fn
 * returns false to stop. Returns 0, COORDINATOR_LOAD_IN_PROGRESS or
 * NOT_COORDINATOR. */
typedef bool (*gcoord_offset_fn)(void *ctx, const gcoord_offset_entry *e);
int16_t gcoord_each_offset(gcoord *c, kstr group_id, gcoord_offset_fn fn, void *ctx);

/* OffsetDelete of n partitions (duplicates allowed): the answer goes to
 * sink->delete_offsets_done(token) once the tombstones are written, or at
 * once. O(n) plus the group's subscriptions. */
void gcoord_delete_offsets(gcoord *c, kstr group_id, const kstr *topics, const int32_t *partitions, int n,
                           void *token, int64_t now);

/* A topic was deleted: its committed offsets go from every group of the
 * shard, as in Kafka (a topic re-created under the name starts with none).
 * They leave OffsetFetch at once; their tombstones are appended in bounded
 * steps (GCOORD_REMOVE_STEP_*): one now, the rest from gcoord_tick, which
 * the deadline asks for at once; a commit or OffsetDelete for a group not
 * yet visited writes that group's tombstones first, so the log never
 * deletes a later commit. A tombstone append that fails is not retried (as
 * in Kafka): those offsets return after a reload. Returns 0,
 * NOT_COORDINATOR when unloaded (there is nothing to remove), or
 * COORDINATOR_NOT_AVAILABLE when GCOORD_REMOVED_TOPICS_MAX removals are
 * waiting. */
int16_t gcoord_remove_topic(gcoord *c, kstr topic, int64_t now);

/* ---- admin --------------------------------------------------------------- */

/* The group (possibly Dead: being deleted), or NULL. For DescribeGroups
 * (copy what you need). */
const gcoord_group *gcoord_find(const gcoord *c, kstr group_id);
/* Visits every group but Dead ones (ListGroups); fn returns false to stop. */
typedef bool (*gcoord_group_fn)(void *ctx, const gcoord_group *g);
void gcoord_each_group(const gcoord *c, gcoord_group_fn fn, void *ctx);
/* DeleteGroups for one group ("" is a valid id, null is INVALID_GROUP_ID):
 * the answer goes to sink->delete_group_done(token) once the tombstones are
 * written, or at once: 0, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP,
 * COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, or a mapped append error.
 * While the tombstones are in flight the group is Dead. */
void gcoord_delete_group(gcoord *c, kstr group_id, void *token, int64_t now);
/* The configuration the machine was made with. */
const gcoord_config *gcoord_get_config(const gcoord *c);
/* Number of live groups. */
int gcoord_group_count(const gcoord *c);

/* ---- time ------------------------------------------------------------------- */

/* Fires every deadline <= now: session expiries, rebalance and initial-delay
 * timeouts, sync timeouts, offset retention, steps of topic removals,
 * snapshots. */
void gcoord_tick(gcoord *c, int64_t now);
/* The earliest pending deadline (INT64_MAX when none). */
int64_t gcoord_next_deadline(const gcoord *c);

/* Java's String.hashCode over the UTF-16 code units of a UTF-8 string, and
 * the partition Kafka picks for a group: abs(hash) % n (abs of INT32_MIN is 0). */
int32_t gcoord_java_hash(kstr s);
int32_t gcoord_partition_for(kstr group_id, int32_t n_partitions);

#endif
