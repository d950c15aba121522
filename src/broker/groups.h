/*
 * groups.h - the broker side of the group coordinator: one state machine
 * (group/coordinator.h) per partition of `__consumer_offsets`, each behind its
 * own mutex, wired to that partition's log and to a ticking thread.
 *
 * What it owns: the `__consumer_offsets` topic reference (the topic is
 * created at start when absent, with offsets.topic.num.partitions
 * partitions, retention off: the machines' snapshots keep it small), the
 * shards, and the groups thread. The thread first loads every shard from its
 * partition (until then the shard answers COORDINATOR_LOAD_IN_PROGRESS; a
 * shard whose partition is offline waits so, and is tried every
 * GROUPS_RELOAD_MS),
 * then ticks the machines every GROUPS_TICK_MS so their deadlines (session,
 * rebalance, initial delay, retention) fire on time.
 *
 * Appends: the machines ask for records to be appended; this module builds
 * a magic-2 batch (batch_build.h) and appends it to the shard's plog while
 * the shard's lock is held, so the log order is the order of the machine's
 * decisions. A snapshot append first rolls the log, and after the snapshot
 * is written moves the log start offset to it (plog_delete_records), so
 * retention deletes the older segments.
 *
 * Shutdown: groups_mgr_shutdown() answers parked JoinGroup/SyncGroup requests
 * with NOT_COORDINATOR (clients look the coordinator up again) and stops the
 * thread; call it before the network layer drains in-flight requests.
 */
#ifndef SLUICE_BROKER_GROUPS_H
#define SLUICE_BROKER_GROUPS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "group/coordinator.h"

#define GROUPS_TICK_MS       50
#define GROUPS_RELOAD_MS     1000 /* how often shards of offline partitions are tried */
#define GROUPS_OFFSETS_TOPIC "__consumer_offsets"
#define GROUPS_BATCH_RECORDS 1000        /* records per appended batch */
#define GROUPS_BATCH_BYTES   (512 << 10) /* target bytes per appended batch */

typedef struct groups_mgr groups_mgr;

typedef struct groups_shard {
    pthread_mutex_t mu;
    gcoord *sm;
    partition *part;
    groups_mgr *mgr;
    int32_t index;
    /* The groups thread's own: loaded from the partition (which is online). */
    bool loaded, offline_logged;
} groups_shard;

/* Creates b->groups (the topic, the shards) and starts the thread that loads
 * and ticks them. 0, or -1 (logged). */
int groups_mgr_start(broker *b);
/* Answers parked requests, stops the thread; later requests get
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

/* The machines' answers to parked requests (api_groups.c): token is the
 * breq; they fill its response and complete it. */
void groups_api_join_done(void *ctx, void *token, const gcoord_join_result *res);
void groups_api_sync_done(void *ctx, void *token, const gcoord_sync_result *res);

/* Wall clock in milliseconds (the machines' clock). */
int64_t groups_now_ms(void);

#endif
