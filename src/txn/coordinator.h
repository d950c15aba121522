/*
 * coordinator.h - the transaction coordinator's state machine for the
 * transactional ids of one `__transaction_state` partition (a "shard"),
 * Kafka's transaction protocol v1: InitProducerId with a transactional id,
 * AddPartitionsToTxn, AddOffsetsToTxn (the owner turns the group into its
 * `__consumer_offsets` partition and calls tcoord_add_partitions), EndTxn,
 * the timeout abort, the expiry of idle ids, and loading from the log.
 *
 * Per transactional id: producer id and epoch, state (Kafka's: Empty,
 * Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead,
 * PrepareEpochFence), the partitions of the ongoing transaction, its timeout
 * and start, the last update.
 *
 * No I/O inside. Every entry point is an event and takes the clock reading
 * `now` (wall-clock ms); the machine acts through the sink:
 *   - append(key, value) writes one record to the shard's partition and
 *     answers when it is durable (0) or failed (a Kafka error: nothing
 *     changes in the machine; the request gets the mapped error);
 *   - write_markers(pid, epoch, commit, partitions) writes the COMMIT or
 *     ABORT control batch of the producer to each partition (and makes the
 *     transaction's pending offsets visible or drops them). 0 when every
 *     marker is written; an error (a failure, or markers still on their
 *     way to other brokers) leaves the transaction in PrepareCommit /
 *     PrepareAbort, and tcoord_tick tries again every TCOORD_MARKER_RETRY_MS,
 *     or tcoord_markers_progress at once (requests for the id meanwhile get
 *     CONCURRENT_TRANSACTIONS, which clients retry);
 *   - new_producer_id hands out a producer id.
 * A commit or abort is: the Prepare record, the markers, the Complete
 * record; EndTxn is answered once the Prepare record is durable (as
 * Kafka's), so a failed marker write does not fail it.
 *
 * Timers: tcoord_next_deadline() says when tcoord_tick() is due next: the
 * timeout abort of Ongoing transactions (checked every
 * abort_check_interval_ms, transaction.abort.timed.out.transaction.cleanup.interval.ms),
 * marker retries, and the expiry of ids idle for id_expiration_ms
 * (transactional.id.expiration.ms; a tombstone is written).
 *
 * Leadership: a machine starts unloaded (NOT_COORDINATOR).
 * tcoord_load_begin(epoch) (COORDINATOR_LOAD_IN_PROGRESS), tcoord_load_record
 * for each record, tcoord_load_end; a transaction left in Prepare* is
 * completed at the next tick (its markers are written again: markers are
 * idempotent for a reader). tcoord_unload drops everything.
 *
 * Bounds: at most max_ids ids per shard (new ones then get
 * COORDINATOR_NOT_AVAILABLE), max_partitions per transaction.
 *
 * Invariants (asserted at entry and exit): every id has a state in range;
 * partitions are held only in Ongoing, Prepare* (and are cleared in Empty
 * and Complete*); n_ids equals the entries in the table.
 *
 * Not thread-safe: the owner serialises calls (one mutex per shard).
 */
#ifndef SLUICE_TXN_COORDINATOR_H
#define SLUICE_TXN_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"
#include "txn/records.h"

#define TCOORD_MARKER_RETRY_MS 1000
#define TCOORD_EPOCH_MAX       32766 /* after it: a new producer id */

typedef struct tcoord tcoord;

typedef struct tcoord_config {
    int32_t max_timeout_ms;          /* transaction.max.timeout.ms */
    int64_t id_expiration_ms;        /* transactional.id.expiration.ms */
    int64_t abort_check_interval_ms; /* transaction.abort.timed.out.transaction.cleanup.interval.ms */
    int32_t max_ids;
    int32_t max_partitions;
} tcoord_config;

void tcoord_config_default(tcoord_config *c);

typedef struct tcoord_sink {
    void *ctx;
    int16_t (*append)(void *ctx, kbytes key, kbytes value);
    int16_t (*write_markers)(void *ctx, kstr txn_id, int64_t producer_id, int16_t epoch, bool commit,
                             const trec_tp *parts, int32_t n);
    int16_t (*new_producer_id)(void *ctx, int64_t *producer_id);
} tcoord_sink;

/* What describe and list see of one id (strings point into the machine). */
typedef struct tcoord_info {
    kstr txn_id;
    int64_t producer_id;
    int16_t epoch;
    int8_t state; /* trec_status */
    int32_t timeout_ms;
    int64_t start_ms; /* -1: no transaction */
    int64_t update_ms;
    const trec_tp *parts;
    int32_t n_parts;
} tcoord_info;

tcoord *tcoord_create(const tcoord_config *cfg, const tcoord_sink *sink);
void tcoord_destroy(tcoord *c);

/* ---- leadership ------------------------------------------------------- */
/* true when loading starts (epoch newer than the current one, or unloaded). */
bool tcoord_load_begin(tcoord *c, int32_t epoch, int64_t now);
/* A record read from the partition (value len < 0: tombstone). 0, or -1 for
 * a record that does not decode (skipped). */
int tcoord_load_record(tcoord *c, kbytes key, kbytes value);
void tcoord_load_end(tcoord *c, int64_t now);
/* epoch -1: any. true when it was serving or loading. */
bool tcoord_unload(tcoord *c, int32_t epoch);
bool tcoord_loading(const tcoord *c);
bool tcoord_active(const tcoord *c);
int32_t tcoord_epoch(const tcoord *c);

/* ---- requests --------------------------------------------------------- */

/* InitProducerId with a transactional id. req_pid/req_epoch: the client's
 * current ones (KIP-360, -1 when none). An ongoing transaction of the id is
 * aborted first (its producer fenced: the epoch is bumped). Answers 0 with
 * the producer id and epoch, or INVALID_TRANSACTION_TIMEOUT,
 * CONCURRENT_TRANSACTIONS (markers still pending), PRODUCER_FENCED,
 * INVALID_PRODUCER_ID_MAPPING, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
 * COORDINATOR_NOT_AVAILABLE, an append's error. */
int16_t tcoord_init_producer(tcoord *c, kstr txn_id, int32_t timeout_ms, int64_t req_pid, int16_t req_epoch,
                             int64_t now, int64_t *pid, int16_t *epoch);

/* AddPartitionsToTxn (and AddOffsetsToTxn's partition): 0, or
 * INVALID_PRODUCER_ID_MAPPING (unknown id or another producer id),
 * PRODUCER_FENCED (another epoch), CONCURRENT_TRANSACTIONS (completing),
 * INVALID_TXN_STATE, or an append's error. With verify_only the partitions
 * are not added: 0 when all are in the transaction already. */
int16_t tcoord_add_partitions(tcoord *c, kstr txn_id, int64_t pid, int16_t epoch, const trec_tp *parts,
                              int32_t n, int64_t now);

/* EndTxn. A retry of a completed commit (abort) is answered 0; the other
 * outcome INVALID_TXN_STATE. */
int16_t tcoord_end_txn(tcoord *c, kstr txn_id, int64_t pid, int16_t epoch, bool commit, int64_t now);

/* Describe one id: 0, TRANSACTIONAL_ID_NOT_FOUND, or a phase error. */
int16_t tcoord_describe(const tcoord *c, kstr txn_id, tcoord_info *out);
/* Every id; fn returns false to stop. A phase error or 0. */
int16_t tcoord_each(const tcoord *c, bool (*fn)(void *ctx, const tcoord_info *i), void *ctx);

/* ---- time ------------------------------------------------------------- */
void tcoord_tick(tcoord *c, int64_t now);
int64_t tcoord_next_deadline(const tcoord *c);
/* Some of the markers of txn_id's completing transaction were delivered
 * (asynchronously, by the owner): the machine tries to finish it now
 * instead of at its next retry. */
void tcoord_markers_progress(tcoord *c, kstr txn_id, int64_t now);

int32_t tcoord_count(const tcoord *c);

#endif
