/*
 * partitions.h - the broker's replicas: one object per partition this
 * broker holds, tying the replica state machine (replica/replica.h) to the
 * partition's storage log, as the metadata image says they should be.
 *
 * Source of truth. The set of partitions, their leaders and epochs and
 * their topic configs come only from the metadata image: parts_apply(prev,
 * next) is called with every newly published image and makes the local
 * state follow it - a new partition gets its log (created by the log
 * manager), a changed leader or epoch reaches its replica machine, a
 * changed topic config reaches its log, a removed topic's partitions are
 * dropped and their logs deleted once the last request using them is done.
 * Unchanged topics share their md_topic between images, so an apply costs
 * one pointer comparison per unchanged topic.
 *
 * Offline. A partition whose log cannot be used - the directory could not be
 * created or opened, a disk error took the log offline, or the topic's
 * stored config is one storage cannot use - answers KAFKA_STORAGE_ERROR
 * (through its replica's OFFLINE role) and is retried by parts_tick() with
 * backoff (1 s doubling to 30 s); a config fix brings it back at once. Log
 * lines say which partition, why, and for a config which key to fix.
 *
 * The port. The replica machine reaches the log through a port this module
 * implements over the plog, mapping storage errors to Kafka codes in the
 * one place (broker/errors.h). The machine's `changed` action (HW, log
 * start, role, epoch) is passed to the owner's callback (the purgatory of
 * waiting fetches).
 *
 * Lifetime and threads. parts_get() returns a counted reference (release
 * with rpart_release); a partition dropped by an apply lives until the last
 * reference goes, then its log is deleted (or closed at shutdown). Each
 * rpart has a mutex that serialises its replica machine and its log's
 * role changes: hold it (rpart_lock) around replica_* calls. The table is
 * guarded by a read-write lock; apply and tick run on one thread at a time.
 */
#ifndef SLUICE_BROKER_PARTITIONS_H
#define SLUICE_BROKER_PARTITIONS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "metadata/image.h"
#include "replica/replica.h"
#include "storage/log_manager.h"

#define PARTS_RETRY_MIN_MS 1000
#define PARTS_RETRY_MAX_MS 30000

typedef struct parts parts;

typedef struct rpart {
    atomic_int refs;
    parts *owner;
    kuuid topic_id;
    char topic[250];
    int32_t index;
    pthread_mutex_t mu;
    replica *r;           /* under mu */
    _Atomic(plog *) log;  /* NULL while offline (never opened) */
    int root;             /* index of the log.dirs root, -1 until opened */
    topic_config cfg;     /* effective (broker defaults + the topic's overrides) */
    char *cfg_error;      /* the stored config storage cannot use, or NULL */
    const void *cfg_seen; /* the md_resource the config was built from */
    int32_t leader, leader_epoch, partition_epoch;
    /* The partition's replicas and ISR as the image has them (under mu). */
    int32_t *replicas, n_replicas;
    int32_t *isr, n_isr;
    int64_t isr_pending_ms; /* when the replica's pending ISR was proposed (replication.c) */
    /* A follower that failed to take what its leader sent (the leader's
     * error, or its own append failed) fetches it again from then (monotonic
     * ms, replication.c, under mu): replica.fetch.backoff.ms, not a loop. */
    int64_t fetch_after_ms;
    bool internal;
    _Atomic bool removed; /* no longer in the metadata */
    int64_t retry_at_ms;
    int32_t backoff_ms;
    int64_t snap_offset; /* of the newest producer-state snapshot, -1 none (mu) */
    struct rpart *next;  /* hash chain (table lock) */
    atomic_int waiters;  /* long-poll waiters watching it (the fetch module counts them) */
} rpart;

typedef struct parts_config {
    const broker_config *bc;
    logmgr *lm;
    int32_t node_id;
    /* Called (under the rpart's mutex) when a waiting request may be
     * answerable now: HW, log start, role or epoch moved, or the partition
     * went away. */
    void (*changed)(void *ctx, rpart *p);
    void *ctx;
    /* This process's broker registration: a partition with several
     * replicas is led here only once the image holds this registration
     * (the controller then has moved or re-epoched what this broker led
     * before it restarted; see ctrl_register_broker). */
    kuuid incarnation;
} parts_config;

parts *parts_create(const parts_config *cfg);
/* Closes every log (flushing). unclean[root] is set for each root whose
 * logs did not close cleanly (or never recovered). Frees the table. */
void parts_close(parts *ps, bool *unclean);

/* Makes the local partitions follow `next` (prev: the image they follow now,
 * NULL at start). now: wall clock ms. starting: the first apply at start
 * (directories were settled; created directories are synced once). */
void parts_apply(parts *ps, const md_image *prev, const md_image *next, int64_t now, bool starting);

/* A counted reference to a partition, or NULL. */
rpart *parts_get(parts *ps, kuuid topic_id, int32_t index);
void rpart_release(rpart *p);

/* acks=all's question for records (or a marker) appended to p as leader up
 * to offset need-1: true once it is decided - the high watermark covers
 * them (*err 0), or it no longer can: leadership lost
 * (NOT_LEADER_OR_FOLLOWER) or the partition removed. While undecided *err
 * says what a timeout answers: NOT_ENOUGH_REPLICAS_AFTER_APPEND with the
 * ISR below min.insync.replicas, else REQUEST_TIMED_OUT. Takes p's lock. */
bool rpart_acked(rpart *p, int64_t need, int16_t *err);
static inline void rpart_lock(rpart *p) { pthread_mutex_lock(&p->mu); }
static inline void rpart_unlock(rpart *p) { pthread_mutex_unlock(&p->mu); }
/* The partition's log when online (NULL offline). For the group
 * coordinator's adapter and DescribeLogDirs only; requests go through the
 * replica. */
plog *rpart_log(rpart *p);

/* Whether the partition's log is open and online (Metadata's
 * KAFKA_STORAGE_ERROR), and its size on disk (DescribeLogDirs; 0 offline)
 * with the log.dirs root holding it (-1 until opened). */
bool rpart_online(rpart *p);
/* Whether broker id is one of the partition's replicas (mu held). */
bool rpart_has_replica(const rpart *p, int32_t id);
/* The topic's max.message.bytes as the partition uses it now. */
int64_t rpart_max_message_bytes(rpart *p);
int64_t rpart_size(rpart *p, int *root);

/* Partitions held (for limits and metrics). */
int64_t parts_count(parts *ps);
/* Visits every partition (references held during the call); fn returns
 * false to stop. */
void parts_each(parts *ps, bool (*fn)(void *ctx, rpart *p), void *ctx);

/* Housekeeping: roll, flush, retention of every log; retries of offline
 * ones. */
void parts_tick(parts *ps, int64_t now);

/* The effective topic config for these overrides, or -1 with msg (the
 * config storage cannot use). */
int parts_topic_config(const broker_config *bc, const md_resource *res, topic_config *out, char *msg,
                       size_t msgn);
void parts_plog_config(const topic_config *tc, plog_config *pc);

#endif
