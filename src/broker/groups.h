/*
 * groups.h - the broker side of the group coordinator: one state machine
 * (group/coordinator.h) per partition of `__consumer_offsets`, each behind its
 * own mutex, wired to that partition's log and ticked by groups_tick().
 *
 * What it owns: references to the `__consumer_offsets` partitions (the
 * topic is created at start when absent, through the controller, with
 * offsets.topic.num.partitions partitions, retention off: the machines'
 * snapshots keep it small), the shards, and the driver task (driver.h) that
 * runs groups_tick.
 *
 * Leadership: a shard serves only while this broker leads its partition.
 * groups_partition_leader(index, epoch) makes the shard load from the
 * partition (until it is done the shard answers COORDINATOR_LOAD_IN_PROGRESS;
 * a shard whose partition is offline waits so, and is tried every
 * GROUPS_RELOAD_MS); groups_partition_follower(index, epoch) unloads it
 * (parked requests are answered NOT_COORDINATOR, its state is dropped, later
 * requests get NOT_COORDINATOR). Calls of an older epoch than the shard's
 * are ignored. The replica manager will call both; on a single node
 * groups_mgr_start makes every shard leader at its partition's epoch.
 *
 * Driving: groups_tick(now) does the work that is due (a bounded chunk of
 * loading per loading shard, the machines' deadlines: session, rebalance,
 * initial delay, retention, topic removals) and groups_next_deadline() says
 * when it is next needed. The broker's driver thread runs them as a task
 * (sleeping at most GROUPS_TICK_MS), kicked when work arrives.
 *
 * Appends: the machines ask for records to be appended; this module builds
 * a magic-2 batch (batch_build.h) and appends it through the partition's
 * replica (replica_append) while the shard's lock is held, so the log order is the order of the machine's
 * decisions, and reports the outcome at once through gcoord_append_done
 * (a single node's log is durable when plog_append returns; a replicated
 * one will report it when the high watermark passes). A snapshot append
 * first rolls the log, and after the snapshot is written moves the log
 * start offset to it (replica_delete_records), so retention deletes the
 * older segments.
 *
 * Deleted topics: groups_topic_deleted() tells every shard, which removes
 * the topic's committed offsets (gcoord_remove_topic).
 *
 * Shutdown: groups_mgr_shutdown() answers parked requests with
 * NOT_COORDINATOR (clients look the coordinator up again) and stops the
 * task; call it before the network layer drains in-flight requests.
 */
#ifndef SLUICE_BROKER_GROUPS_H
#define SLUICE_BROKER_GROUPS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/partitions.h"
#include "group/coordinator.h"

#define GROUPS_TICK_MS       50
#define GROUPS_RELOAD_MS     1000 /* how often shards of offline partitions are tried */
#define GROUPS_OFFSETS_TOPIC "__consumer_offsets"
#define GROUPS_BATCH_RECORDS 1000        /* records per appended batch */
#define GROUPS_BATCH_BYTES   (512 << 10) /* target bytes per appended batch */
#define GROUPS_LOAD_CHUNK    (4 << 20)   /* bytes read per loading step of a shard */
#define GROUPS_TXN_LOAD_MAX  100000      /* transactional offset records held while loading */

typedef struct groups_mgr groups_mgr;

typedef struct groups_shard {
    pthread_mutex_t mu;
    gcoord *sm;
    rpart *part; /* referenced; NULL when this broker holds no replica */
    groups_mgr *mgr;
    int32_t index;
    /* Under mu: where loading is (the machine says whether it loads). */
    int64_t load_off;     /* next offset to read; -1: not started */
    int64_t load_records; /* applied so far */
    int64_t next_try;     /* an offline partition: when to look again */
    bool offline_logged;
    uint64_t next_append_id;
    /* Under mu: appends written to the leader's log but not yet below its
     * high watermark (a replicated __consumer_offsets), oldest first; each
     * is reported to the machine when the HW passes its end (groups_tick,
     * kicked by groups_partition_changed), or dropped when the load they
     * belong to ends. A snapshot's trim of the log waits for it too. */
    struct groups_pending {
        uint64_t id;
        int64_t end;     /* offset after the append's last record */
        int64_t trim_to; /* a snapshot: the log start to set once committed; -1 none */
        int32_t epoch;   /* the load (leader epoch) it belongs to */
    } * pend;
    int32_t pend_head, pend_n;
    /* Under mu, while loading: offsets of transactions (TxnOffsetCommit,
     * written as transactional batches) read before their COMMIT or ABORT
     * marker, in log order. A marker applies or drops its producer's; those
     * left at the end of the load go back to the broker's pending offsets
     * (txns.h), for the marker still to come. At most GROUPS_TXN_LOAD_MAX. */
    struct groups_txn_rec *txn_head, *txn_tail;
    int32_t n_txn;
} groups_shard;

/* Creates b->groups (the topic, the shards; every shard leader of its
 * partition, so loading starts at the first tick) without a driver task.
 * 0, or -1 (logged). */
int groups_mgr_init(broker *b);
/* groups_mgr_init, then the driver task (b->driver) that runs groups_tick. */
int groups_mgr_start(broker *b);
/* Answers parked requests, stops the task; later requests get
 * NOT_COORDINATOR. Idempotent. */
void groups_mgr_shutdown(broker *b);
/* Frees b->groups (after groups_mgr_shutdown; releases the topic). */
void groups_mgr_destroy(broker *b);

/* The shard of a group, locked; NULL when the coordinator is not running.
 * Unlock with groups_unlock(). */
groups_shard *groups_lock(broker *b, kstr group_id);
groups_shard *groups_lock_index(broker *b, int32_t index);
void groups_unlock(groups_shard *s);
int32_t groups_shard_count(broker *b);
/* Creates __consumer_offsets if it does not exist (through the active
 * controller on a quorum member). 0, or -1 (logged). */
int groups_ensure_offsets_topic(broker *b);

/* Leadership of partition `index` of __consumer_offsets (see above). */
void groups_partition_leader(broker *b, int32_t index, int32_t epoch);
void groups_partition_follower(broker *b, int32_t index, int32_t epoch);

/* Does what is due at `now` (wall ms); the earliest time it is needed next
 * (<= now: at once). */
void groups_tick(broker *b, int64_t now);
int64_t groups_next_deadline(broker *b);

/* A topic was deleted: its committed offsets go from every group. */
/* A partition's HW (or role) moved (called under the partition's lock, from
 * the partitions' change hook): when it is one of __consumer_offsets, the
 * ticking task runs soon to report appends that are now committed. */
void groups_partition_changed(broker *b, const rpart *p);
void groups_topic_deleted(broker *b, kstr name);

/* The machines' answers to parked requests (api_groups.c): token is the
 * breq; they fill its response and complete it. */
void groups_api_join_done(void *ctx, void *token, const gcoord_join_result *res);
void groups_api_sync_done(void *ctx, void *token, const gcoord_sync_result *res);
void groups_api_commit_done(void *ctx, void *token, const int16_t *errors, int n);
void groups_api_delete_group_done(void *ctx, void *token, int16_t error);
void groups_api_delete_offsets_done(void *ctx, void *token, int16_t error, const int16_t *errors, int n);
void groups_api_cg_heartbeat_done(void *ctx, void *token, const gcoord_cg_result *res);

/* The token of gcoord_commit_txn_offsets calls (no request waits). */
extern char groups_txn_commit_token;
#define GROUPS_TXN_COMMIT_TOKEN ((void *)&groups_txn_commit_token)

/* Wall clock in milliseconds (the machines' clock). */
int64_t groups_now_ms(void);

#endif
