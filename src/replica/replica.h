/*
 * replica.h - one partition's replica as a state machine: its role (leader,
 * follower, offline), leader epoch, high watermark, leader-epoch cache, and
 * (as replication lands) the ISR and the followers' positions.
 *
 * Everything a request does to a partition goes through here, so the rules
 * live in one place: NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH and
 * UNKNOWN_LEADER_EPOCH are answered by replica_check_epoch() only; reads by
 * consumers stop at the high watermark, reads by followers at the log end;
 * DeleteRecords may not go past the high watermark.
 *
 * No I/O inside. The partition's log is reached through the port, a table
 * of functions the owner supplies (the broker adapts a storage plog; the
 * simulation an in-memory log): append, truncate, read, offset for time,
 * delete records, the log's offsets, and writing the leader-epoch
 * checkpoint. The port answers synchronously with Kafka error codes (the
 * owner maps storage errors, in one place). Events carry `now`; the
 * machine's actions are those port calls plus `changed` (HW, log start,
 * role or epoch moved), which the owner routes to the purgatory (waiting
 * fetches and produces).
 *
 * The high watermark: the smallest log end offset among the ISR (the leader
 * included). With an ISR of one, as on a single node, it is the log end
 * offset after every append.
 *
 * The leader-epoch cache: (epoch, first offset) for every leader epoch the
 * log holds, in increasing order of both; updated when a batch of a newer
 * epoch is appended, cut back on truncation, saved through the port in
 * Kafka's leader-epoch-checkpoint layout (the owner writes the file).
 * end_offset_for_epoch(e) is the first offset of the next higher epoch, or
 * the log end for the latest: what OffsetForLeaderEpoch answers and what a
 * returning follower truncates to.
 *
 * Invariants (asserted at entry and exit): log_start <= hw <= leo; epochs
 * strictly increasing in epoch and in start offset, the last one's start at
 * most leo; a leader's own id is in its ISR.
 *
 * Not thread-safe: the owner serialises calls (one mutex per replica).
 */
#ifndef SLUICE_REPLICA_REPLICA_H
#define SLUICE_REPLICA_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/log.h"
#include "storage/producer_state.h"

#define REPLICA_EPOCHS_MAX 1024 /* leader-epoch cache entries; the oldest go first */
#define REPLICA_ISR_MAX    512

typedef enum replica_role {
    REPLICA_OFFLINE = 0, /* the log cannot be used (disk error, unusable config) */
    REPLICA_LEADER,
    REPLICA_FOLLOWER,
} replica_role;

typedef struct replica_epoch_entry {
    int32_t epoch;
    int64_t start_offset;
} replica_epoch_entry;

typedef struct replica replica;

typedef struct replica_port {
    void *ctx;
    /* Appends batches: as leader (offsets and epoch assigned, producer
     * rules checked) or as follower (offsets and epochs as given). */
    int16_t (*append)(void *ctx, uint8_t *buf, size_t len, bool as_leader, int32_t leader_epoch, int64_t now,
                      plog_append_info *info);
    int16_t (*truncate)(void *ctx, int64_t offset);
    int16_t (*read)(void *ctx, int64_t offset, int64_t max_bytes, int64_t max_offset, plog_read_result *res);
    int16_t (*offset_for_time)(void *ctx, int64_t ts, int64_t *offset, int64_t *timestamp);
    int16_t (*delete_records)(void *ctx, int64_t offset, int64_t *new_start);
    void (*offsets)(void *ctx, int64_t *log_start, int64_t *log_end);
    int16_t (*save_epochs)(void *ctx, const replica_epoch_entry *entries, int n);
    /* Action: something a waiting request depends on changed (the high
     * watermark, the log start, the role or leader epoch): wake whoever
     * waits on this replica. */
    void (*changed)(void *ctx, replica *r);
    /* Appends the broker's own control batch (a transaction marker) as
     * leader; NULL: markers are refused. */
    int16_t (*append_marker)(void *ctx, uint8_t *buf, size_t len, int32_t leader_epoch, int64_t now,
                             plog_append_info *info);
} replica_port;

typedef struct replica_state {
    replica_role role;
    int32_t n_pending; /* a proposed ISR awaiting commit (0: none) */
    int32_t node_id;
    int32_t leader_id; /* -1: none known */
    int32_t leader_epoch;
    int32_t partition_epoch;
    int64_t hw;
    int64_t leo;
    int64_t log_start;
    int32_t n_isr;
    int32_t isr[REPLICA_ISR_MAX];
} replica_state;

/* A replica of a partition this node holds, offline until told its role.
 * epochs are the leader-epoch cache as loaded from the checkpoint (n may be
 * 0); hw starts at the recovered log end on a single node, else at the
 * checkpointed value (clamped into [log start, log end]). NULL on OOM. */
replica *replica_create(int32_t node_id, const replica_port *port, const replica_epoch_entry *epochs,
                        int n_epochs, int64_t hw);
void replica_destroy(replica *r);
const replica_state *replica_get_state(const replica *r);

/* ---- role changes (from the metadata image) ----------------------------------- */

/* Leader at epoch with this ISR (must contain node_id). An epoch older than
 * the current one is ignored (returns FENCED_LEADER_EPOCH). */
int16_t replica_become_leader(replica *r, int32_t leader_epoch, int32_t partition_epoch, const int32_t *isr,
                              int32_t n_isr, int64_t now);
int16_t replica_become_follower(replica *r, int32_t leader_id, int32_t leader_epoch, int32_t partition_epoch,
                                int64_t now);
/* The log cannot be used: every request gets KAFKA_STORAGE_ERROR. */
void replica_go_offline(replica *r);

/* ---- checks ------------------------------------------------------------------------ */

/* The leader-epoch check of Fetch, ListOffsets, OffsetForLeaderEpoch and
 * (as leader) Produce: not the leader (when leader_only) ->
 * NOT_LEADER_OR_FOLLOWER; offline -> KAFKA_STORAGE_ERROR; current_epoch -1
 * skips the epoch check; older -> FENCED_LEADER_EPOCH, newer ->
 * UNKNOWN_LEADER_EPOCH. 0 when fine. */
int16_t replica_check_epoch(const replica *r, int32_t current_leader_epoch, bool leader_only);

/* ---- the data path ------------------------------------------------------------------- */

typedef struct replica_append_result {
    int64_t base_offset;
    int64_t last_offset;
    int64_t log_append_time;
    int64_t log_start_offset;
    int64_t hw; /* after the append */
    /* A retry of one of the producer's last batches: nothing was
     * appended, the offsets are the original's. */
    bool duplicate;
    /* What storage said about the append, also on a refusal: which batch
     * and record it refused and why (plog_append_info's error fields). */
    plog_append_info info;
} replica_append_result;

/* Produce as leader: appends (buf is modified in place, as plog_append
 * does) and moves LEO, the epoch cache and, with an ISR of one, the HW.
 * A batch with a producer id is held to the producer rules first
 * (storage/producer_state.h): a retry of a recent batch is answered as a
 * success with its original offsets (out->duplicate) and appends nothing;
 * an older epoch gets INVALID_PRODUCER_EPOCH, a sequence gap or a new epoch
 * not starting at 0 OUT_OF_ORDER_SEQUENCE_NUMBER, an unknown producer whose
 * batch does not start at 0 UNKNOWN_PRODUCER_ID (info.error_msg says why).
 * An idempotent batch must be the only one of its append. */
int16_t replica_append(replica *r, uint8_t *buf, size_t len, int64_t now, replica_append_result *out);

/* Follower append of batches fetched from the leader (offsets as given). */
int16_t replica_append_as_follower(replica *r, uint8_t *buf, size_t len, int64_t now,
                                   replica_append_result *out);

/* Reads for a consumer (up to the HW; read_committed stops at the last
 * stable offset, equal to the HW without transactions) or a follower (up
 * to the log end). res as plog_read fills it (release with
 * plog_read_release). */
int16_t replica_read(replica *r, int64_t offset, int64_t max_bytes, bool follower, bool read_committed,
                     plog_read_result *res);

/* The offsets a Fetch answer reports. */
typedef struct replica_offsets {
    int64_t hw, last_stable, log_start, leo;
} replica_offsets;
void replica_get_offsets(replica *r, replica_offsets *out);

/* ListOffsets: ts is a timestamp or PLOG_TS_LATEST / EARLIEST / MAX. For
 * LATEST the answer is the HW (consumers never see past it). *epoch is the
 * leader epoch of the returned offset (from the cache), -1 when none. */
int16_t replica_list_offset(replica *r, int64_t ts, int64_t *offset, int64_t *timestamp, int32_t *epoch);

/* OffsetForLeaderEpoch: the largest cached epoch <= epoch and where it
 * ends (the next epoch's start, or the log end). (-1, -1) when the log has
 * no such epoch. */
void replica_end_offset_for_epoch(const replica *r, int32_t epoch, int32_t *out_epoch, int64_t *end_offset);

/* DeleteRecords as leader: offset -1 means the HW; past the HW is
 * OFFSET_OUT_OF_RANGE. *low gets the new log start offset. */
int16_t replica_delete_records(replica *r, int64_t offset, int64_t *low);

/* Follower truncation to offset (a diverging epoch): the log and the epoch
 * cache are cut there; the HW is capped. */
int16_t replica_truncate(replica *r, int64_t offset);

/* The partition's producer state (owned by the replica; the owner loads
 * and snapshots it, under the same serialisation as every other call). */
pstate *replica_producers(replica *r);
/* Records a batch already in the log (recovery from the log tail;
 * follower appends call it for each batch). bytes (the whole batch, may be
 * NULL) are read for a control batch's marker type. */
void replica_learn_batch(replica *r, const batch_header *h, const uint8_t *bytes, size_t size, int64_t now);

/* ---- transactions ------------------------------------------------------------------- */

/* The last stable offset: the HW, or the first offset of the earliest open
 * transaction when lower (what read_committed reads stop at and what
 * ListOffsets answers for latest with read_committed). */
int64_t replica_last_stable(replica *r);
/* Aborted transactions meeting [from, to), up to max; the count. */
int32_t replica_aborted(const replica *r, int64_t from, int64_t to, pstate_aborted *out, int32_t max);
/* As leader: appends the COMMIT or ABORT control batch of the producer (the
 * transaction coordinator's WriteTxnMarkers), closing its open transaction
 * on this partition; *offset gets the marker's offset. Produce requests
 * may not carry control batches (INVALID_RECORD). */
int16_t replica_write_marker(replica *r, int64_t producer_id, int16_t epoch, bool commit,
                             int32_t coordinator_epoch, int64_t now, int64_t *offset);
/* ---- replication (leader side) ------------------------------------------------------ */

/* A follower's position as its leader tracks it. leo is the follower's log
 * end as its last fetch said (-1: it has not fetched in this leadership);
 * caught_up_ms is when it last had everything the leader had (a fetch at
 * the leader's log end, or at the log end the leader had at the follower's
 * previous fetch), the clock replica.lag.time.max.ms is measured against. */
typedef struct replica_follower {
    int32_t id;
    int64_t leo;
    int64_t caught_up_ms;
    int64_t prev_fetch_ms;
    int64_t prev_fetch_leader_leo;
} replica_follower;

/* The leader's check of a follower's fetch (KIP-595's rule): with the
 * epoch of the follower's last batch, whether its log diverges from this
 * one at fetch_offset, and if so the (epoch, end offset) to answer, where
 * the logs last agree. False (nothing to report) when the follower's
 * position is consistent with this log, or it sent no epoch (-1). */
bool replica_diverging(const replica *r, int32_t last_fetched_epoch, int64_t fetch_offset, int32_t *epoch,
                       int64_t *end_offset);
/* The follower's side: where to truncate given the leader's diverging
 * (epoch, end offset): the leader's end, or this log's own end of that
 * epoch when smaller. */
int64_t replica_agreed_offset(const replica *r, int32_t epoch, int64_t leader_end);

/* A fetch from follower `id` (a replica of the partition: the owner checks
 * against the metadata) at fetch_offset: its position moves there (it has
 * every record below it), the HW may advance, and *join says that it is
 * outside the ISR and has caught up far enough to join it (its log end is
 * at least the HW and the start of the current leader epoch): the owner
 * proposes the larger ISR to the controller. NOT_LEADER_OR_FOLLOWER when
 * this replica does not lead. */
int16_t replica_follower_fetch(replica *r, int32_t id, int64_t fetch_offset, int64_t now, bool *join);

/* ISR members (other than the leader) that have not caught up for longer
 * than lag_max_ms: at most max ids into out; the count. */
int32_t replica_lagging(const replica *r, int64_t now, int64_t lag_max_ms, int32_t *out, int32_t max);

/* The ISR change the owner has proposed to the controller and not yet seen
 * committed (NULL, 0: none). Until the metadata brings the new ISR, the HW
 * is computed over both the committed ISR and the proposed one (Kafka's
 * "maximal ISR"): a member being added counts before it is committed, so no
 * record is committed without it, and a member being removed counts until
 * its removal is committed. A new partition epoch or leadership clears it;
 * the owner clears it only when the controller refused the proposal for
 * good (never when the outcome is unknown: a lost answer may hide a
 * committed change, and dropping the proposed member from the HW before the
 * metadata arrives could commit records it lacks). */
void replica_set_pending_isr(replica *r, const int32_t *isr, int32_t n);
/* The proposed ISR (its count; 0 when none). */
int32_t replica_pending_isr(const replica *r, const int32_t **isr);
bool replica_in_isr(const replica *r, int32_t id);

/* ---- replication (follower side) ------------------------------------------------------ */

/* The leader's HW as its Fetch answer gave it: the follower's HW becomes
 * the smaller of that and its own log end (never below its log start). */
void replica_follower_hw(replica *r, int64_t leader_hw);
/* The leader's log start offset as its Fetch answer gave it: a follower's
 * log start moves up to it (DeleteRecords and the leader's retention reach
 * the followers, so a follower that leads later does not serve records the
 * leader had deleted), never past the follower's own HW. Storage errors are
 * returned (the follower fetches on; the next answer tries again). */
int16_t replica_follower_log_start(replica *r, int64_t leader_log_start);

/* The leader-epoch cache (for tests and the checkpoint). */
int replica_epochs(const replica *r, const replica_epoch_entry **out);

#endif
