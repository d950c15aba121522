/*
 * txns.h - the broker side of the transaction coordinator: one state
 * machine (txn/coordinator.h) per partition of `__transaction_state`, each
 * behind its own mutex, wired to that partition's log, to the partitions
 * its transactions write markers to, and to the group coordinator for the
 * offsets of transactions (TxnOffsetCommit).
 *
 * The topic is created on the first transactional request (FindCoordinator
 * of a transactional id, InitProducerId with one), through the controller,
 * with transaction.state.log.num.partitions partitions, compacted, retention
 * off. A transactional id lives on partition abs(javaHashCode(id)) % n, as
 * groups do.
 *
 * Leadership and loading as groups.h: on a single node every shard leads
 * and loads its partition when the topic appears; a quorum member follows
 * the image about once a second (shards of partitions it leads load, the
 * others unload).
 *
 * Markers (WriteTxnMarkers): for each partition of a completing
 * transaction the COMMIT or ABORT control batch is appended through the
 * partition's replica (replica_write_marker) when this broker leads it and
 * is its only replica; every other partition's marker goes to its leader
 * (txn_markers.h; this broker included, so that the answer waits for the
 * ISR). Until every marker is acknowledged the transaction stays in
 * PrepareCommit/PrepareAbort (its producer gets the retriable
 * CONCURRENT_TRANSACTIONS meanwhile); it is finished as soon as the sender
 * reports the last delivery, and retried every second after a failure. For
 * a `__consumer_offsets` partition the marker, wherever it is written, also
 * makes the transaction's pending offsets of the groups on it visible
 * (commit) or drops them (abort).
 *
 * Pending offsets (TxnOffsetCommit) are held in memory, per producer id,
 * at most TXNS_PENDING_MAX entries broker-wide; a restart loses them (the
 * transaction is then aborted by its timeout or fenced by the producer's
 * next InitProducerId; a commit completed after a restart commits without
 * them).
 *
 * Durability: a shard's appends return once its partition's leader has the
 * record; the request that made the change waits (parked, as acks=all)
 * until the ISR has it (txns_durable_point), and a transaction's markers
 * go out only once its Prepare record is in the ISR, so a coordinator that
 * dies never leaves markers behind for a decision its successor does not
 * know.
 *
 * Driving: txns_step runs as a driver task: loading, the machines' ticks.
 */
#ifndef SLUICE_BROKER_TXNS_H
#define SLUICE_BROKER_TXNS_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "txn/coordinator.h"

#define TXNS_TOPIC       "__transaction_state"
#define TXNS_TICK_MS     100
#define TXNS_PENDING_MAX 100000
#define TXNS_LOAD_CHUNK  (4 << 20)
/* How long a WriteTxnMarkers answer waits for the ISR to have the markers. */
#define TXNS_MARKER_ISR_WAIT_MS 5000

typedef struct txns_mgr txns_mgr;

typedef struct txns_shard {
    pthread_mutex_t mu;
    tcoord *sm;
    struct rpart *part; /* referenced; NULL when this broker holds no replica */
    txns_mgr *mgr;
    int32_t index;
    int64_t load_off; /* next offset to read; -1: not started */
    int64_t load_records;
    int64_t next_try;
    /* The end of this shard's last append: a request whose change was
     * appended is answered, and markers go out, only once the partition's
     * high watermark has reached it (its ISR has the record). */
    int64_t await_off;
} txns_shard;

/* Registers the driver task (the topic and shards come on first use).
 * 0, or -1 (logged). */
int txns_mgr_start(broker *b);
void txns_mgr_shutdown(broker *b);
void txns_mgr_destroy(broker *b);

/* Makes sure the topic exists (creating it) and the shards are set up.
 * 0 when the shards exist, else COORDINATOR_NOT_AVAILABLE. */
int16_t txns_ensure(broker *b);
/* The shard of a transactional id, locked; NULL when none (not started,
 * no topic yet). Unlock with txns_unlock. */
txns_shard *txns_lock(broker *b, kstr txn_id);
txns_shard *txns_lock_index(broker *b, int32_t index);
void txns_unlock(txns_shard *s);
int32_t txns_shard_count(broker *b);
int32_t txns_partition_for(broker *b, kstr txn_id);

/* Produce with a transactional id: whether the producer's ongoing
 * transaction includes the partition. 0; INVALID_TXN_STATE (not added, or
 * no transaction), INVALID_PRODUCER_EPOCH (an older epoch), or
 * INVALID_PRODUCER_ID_MAPPING, with *why. A transactional id coordinated
 * by another broker is not checked here (0). */
int16_t txns_verify_produce(broker *b, kstr txn_id, kbytes records, kstr topic, int32_t partition,
                            const char **why);

/* TxnOffsetCommit's offsets, held until the transaction's marker reaches
 * the group's __consumer_offsets partition. 0, or
 * COORDINATOR_NOT_AVAILABLE when the pending store is full. */
typedef struct txns_offset {
    kstr topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    kstr metadata;
} txns_offset;
/* TxnOffsetCommit on the group's coordinator: the offsets are written to
 * the group's `__consumer_offsets` partition as a transactional batch of
 * the producer (so they survive this broker; loading applies them at the
 * transaction's COMMIT marker) and held pending in memory until the marker
 * arrives. 0 with *wait_p (referenced) and *need, the high watermark that
 * makes the batch durable; or NOT_COORDINATOR, INVALID_PRODUCER_EPOCH,
 * COORDINATOR_NOT_AVAILABLE, an append's error. */
int16_t txns_write_offsets(broker *b, kstr group_id, int64_t pid, int16_t epoch, const txns_offset *o, int n,
                           struct rpart **wait_p, int64_t *need);

/* For the metrics page. */
typedef struct txns_stats {
    int32_t shards_serving;  /* __transaction_state partitions this broker coordinates */
    int32_t markers_pending; /* to other brokers: queued or in flight */
    uint64_t markers_delivered, markers_failed;
    int32_t pending_offsets; /* TxnOffsetCommit entries waiting for their marker */
} txns_stats;
void txns_get_stats(broker *b, txns_stats *st);

/* Calls fn for each partition of group_id with offsets of an open
 * transaction (OffsetFetch's require_stable), under the pending store's
 * lock: fn must not call back in. */
void txns_pending_each(broker *b, kstr group_id, void (*fn)(void *ctx, kstr topic, int32_t partition),
                       void *ctx);

/* Writes the marker of (pid, epoch, commit) to p, which this broker leads,
 * and, for a `__consumer_offsets` partition, settles the producer's pending
 * offsets of the groups there. *offset: the marker's. */
int16_t txns_write_marker(broker *b, struct rpart *p, int64_t pid, int16_t epoch, bool commit,
                          int32_t coordinator_epoch, int64_t now, int64_t *offset);

/* After a request changed txn_id's shard: its partition (referenced, for
 * rpart_release) and *need, the high watermark that makes the change
 * durable, when the ISR does not have it yet; NULL when it does (or the
 * shard is gone). */
struct rpart *txns_durable_point(broker *b, kstr txn_id, int64_t *need);

int16_t txns_add_pending_offsets(broker *b, kstr group_id, int64_t pid, int16_t epoch, const txns_offset *o,
                                 int n);

#endif
