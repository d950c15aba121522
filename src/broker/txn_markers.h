/*
 * txn_markers.h - delivery of transaction markers to the brokers that lead
 * a completing transaction's partitions (WriteTxnMarkers between brokers).
 *
 * The transaction coordinator (txns.c) asks, each time it tries to finish a
 * transaction, whether the marker of (producer id, epoch, COMMIT|ABORT) for
 * one partition has reached that partition's leader: txn_markers_deliver()
 * answers 0 once the leader has acknowledged it (the leader answers only
 * when the marker is in its ISR, so an acknowledged marker survives the
 * leader's loss), and otherwise queues it (or leaves it queued or in
 * flight) and answers a retriable error. One thread sends the queued
 * markers, one WriteTxnMarkers request per leader at a time; when a
 * request comes back with markers delivered it calls the owner's `done`
 * with the transactional id, so the coordinator finishes the transaction
 * at once instead of at its next retry.
 *
 * A marker that failed (leader unreachable, NOT_LEADER_OR_FOLLOWER) is
 * kept with its error; the next txn_markers_deliver() for it reports the
 * error and queues it again, to the leader the caller names then (the
 * coordinator retries every TCOORD_MARKER_RETRY_MS, which is the backoff).
 * Markers are idempotent for readers, so sending one twice is harmless.
 *
 * Bounds: at most TXN_MARKERS_MAX markers remembered (more: the caller gets
 * COORDINATOR_NOT_AVAILABLE and retries); at most TXN_MARKERS_PER_REQUEST per
 * request; entries nobody asks about for TXN_MARKERS_FORGET_MS are dropped.
 *
 * Thread-safe. Lock order: a coordinator shard's mutex, then this module's
 * (txn_markers_deliver is called with the shard locked); `done` is called
 * with no lock of this module held.
 */
#ifndef SLUICE_BROKER_TXN_MARKERS_H
#define SLUICE_BROKER_TXN_MARKERS_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"

struct broker;

#define TXN_MARKERS_MAX         8192
#define TXN_MARKERS_PER_REQUEST 512
#define TXN_MARKERS_FORGET_MS   60000

typedef struct txn_markers txn_markers;

/* Called from the sender thread for each transactional id that had a
 * marker delivered. */
typedef void (*txn_markers_done_fn)(void *ctx, kstr txn_id);

/* Starts the sender thread. NULL on failure. */
txn_markers *txn_markers_start(struct broker *b, txn_markers_done_fn done, void *ctx);
/* Stops and joins the thread (requests in flight end within 100 ms). */
void txn_markers_stop(txn_markers *mk);
void txn_markers_destroy(txn_markers *mk);

/* The marker of (pid, epoch, commit) with the coordinator's epoch for
 * topic-partition, led by broker `leader`. 0: delivered (remembered until
 * txn_markers_forget);
 * else a retriable error: CONCURRENT_TRANSACTIONS (queued or in flight),
 * the leader's or the transport's last error (queued again), or
 * COORDINATOR_NOT_AVAILABLE (no room). */
int16_t txn_markers_deliver(txn_markers *mk, kstr txn_id, int32_t leader, kstr topic, int32_t partition,
                            int64_t pid, int16_t epoch, bool commit, int32_t coordinator_epoch);

/* The transaction of (pid, epoch, commit) is finished (every marker was
 * delivered): its entries are dropped, so that the producer's next
 * transaction, whose markers look the same, starts afresh (the answer to
 * one still in flight is then ignored). */
void txn_markers_forget(txn_markers *mk, int64_t pid, int16_t epoch, bool commit);

/* Markers queued or in flight (for tests and metrics). */
int32_t txn_markers_pending(txn_markers *mk);
/* The same, and markers acknowledged / refused or unanswered since start. */
void txn_markers_stats(txn_markers *mk, int32_t *pending, uint64_t *delivered, uint64_t *failed);

#endif
