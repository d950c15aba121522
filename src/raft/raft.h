/*
 * raft.h - KRaft's Raft (KIP-595, with KIP-996 pre-vote and the snapshot id
 * of KIP-630) for one voter of the `__cluster_metadata` quorum, as a state
 * machine with no I/O.
 *
 * The machine owns the election and replication rules: roles and epochs,
 * who voted for whom, the epoch cache of the local log (which leader epoch
 * wrote which offsets), the followers' positions, the high watermark. The
 * owner owns everything else: the log itself, the quorum-state file, the
 * sockets, the clock. Every entry point is an event that carries `now`
 * (milliseconds of a monotonic clock); the machine answers through the sink:
 *
 *   - send: a message to a voter (the owner encodes it with the generated
 *     Kafka codecs; the structs below name their fields as Kafka's
 *     VoteRequest, BeginQuorumEpochRequest, EndQuorumEpochRequest and
 *     FetchRequest/Response do, so the mapping is mechanical). Delivery may
 *     fail, repeat or reorder; responses are matched to requests by
 *     correlation_id and stale ones are ignored;
 *   - append: write these batches at the end of the local log (as leader:
 *     a proposal or the LeaderChangeMessage control batch of a new epoch;
 *     as follower: records fetched from the leader). The write need not be
 *     durable when the call returns: the owner reports the fsync later with
 *     raft_log_flushed(), and only flushed offsets count toward a majority
 *     (a leader's own match, a follower's next FetchOffset);
 *   - truncate: cut the log to an offset (a follower's divergence found
 *     through Fetch's DivergingEpoch). Never below the high watermark
 *     (asserted). The truncation must be durable before a later flush is
 *     reported;
 *   - persist: write the quorum-state file (epoch, voted-for, leader). It
 *     must be durable when the call returns; the machine calls it before
 *     sending anything that depends on it (a vote grant, a candidacy, a
 *     leadership). A write that fails must stop the node (as Kafka does):
 *     a voter that cannot record its vote cannot take part;
 *   - read: the leader asks for the records of [offset, max_offset) (whole
 *     batches, at least one even when larger than max_bytes) to answer a
 *     Fetch; the bytes must stay valid until the send() that carries them
 *     returns. The machine keeps one epoch per answer, so a FetchResponse's
 *     records all have records_epoch (on the wire the codec adapter reads
 *     it and records_end_offset from the batch headers);
 *   - committed: the high watermark moved up; the owner applies the records
 *     below it through the metadata apply path (in order, once);
 *   - role: the node became leader, follower, candidate, ..., or resigned;
 *   - snapshot_needed (follower): the leader's log starts past our fetch
 *     position; fetch the snapshot (FetchSnapshot) and report it with
 *     raft_snapshot_loaded().
 * raft_next_deadline() says when the owner must next call raft_tick().
 *
 * Elections (KIP-595 + KIP-996). A follower that has not fetched
 * successfully within fetch_timeout_ms, or an unattached node whose
 * randomized election timeout (election_timeout_ms plus up to as much
 * again, from the machine's generator seeded by cfg.seed) passes, becomes
 * prospective: it asks for pre-votes for epoch + 1 without changing its
 * epoch or persisting anything. A voter grants a pre-vote when the
 * candidate's log is at least as up to date as its own and it has not
 * heard from a leader within fetch_timeout_ms, so a node rejoining after a
 * partition cannot unseat a healthy leader. A majority of pre-votes makes
 * it a candidate: epoch + 1, voted for itself, persisted, then VoteRequests.
 * A voter grants one real vote per epoch (persisted before the answer goes
 * out) to a candidate whose (last epoch, end offset) is at least its own.
 * A majority makes the candidate leader: it persists, appends a
 * LeaderChangeMessage in its epoch and sends BeginQuorumEpoch to the others
 * (resent every request_timeout_ms until each has acknowledged it, and as
 * a heartbeat to a voter that has not fetched for half the fetch timeout,
 * so a voter lost at a newer epoch answers with it and the leader steps
 * down rather than that voter asking for refused pre-votes forever).
 *
 * Replication (pull, as KRaft). Followers send Fetch(FetchOffset,
 * LastFetchedEpoch) to the leader, one at a time, the next only once
 * everything written is flushed (so FetchOffset is an acknowledgement of
 * durable records). The leader checks the pair against its epoch cache: a
 * position that does not match gets DivergingEpoch (the largest epoch of
 * the leader's log <= LastFetchedEpoch and where it ends), one before the
 * log start gets SnapshotId, a good one records the follower's position and
 * gets records of one epoch (or waits up to fetch_max_wait_ms for some, at
 * most one parked Fetch per voter). The high watermark is the offset a
 * majority (the leader's flushed end included) has reached, and it moves
 * only past the first offset of the leader's current epoch (Raft's commit
 * rule, section 5.4.2). It never goes down. A leader that has not heard
 * from a majority within fetch_timeout_ms resigns (check quorum), and
 * raft_resign() resigns gracefully: EndQuorumEpoch to the others with the
 * preferred candidates (the most caught up first), so the next election
 * starts at once.
 *
 * Invariants (asserted at every entry and exit; the walks over the epoch
 * cache and the voters under SLUICE_DEEP_CHECKS): log_start <= hw <= log_end;
 * flushed <= log_end; the epoch cache strictly increasing in epoch and
 * start offset, every start in [log_start, log_end], no epoch above the
 * current one; a leader or candidate has voted for itself; a leader's epoch
 * start offset lies in its log; followers' positions never exceed the
 * leader's log end.
 *
 * Observers (brokers that fetch but do not vote: raft/observer.h) are
 * served by the leader like voters, at most RAFT_OBSERVERS_MAX per epoch,
 * and never count toward the high watermark; a non-leader answers their
 * Fetch with the leader it knows.
 *
 * Not done here: dynamic voters (KIP-853), the FetchSnapshot transfer
 * itself.
 *
 * Memory: the machine allocates at raft_create and when its epoch cache
 * grows (by doubling, at a new leader epoch), never per message; it aborts
 * if that growth fails or passes RAFT_EPOCHS_MAX epochs between snapshots.
 *
 * Not thread-safe: the owner serialises calls. Sink callbacks must not call
 * back into the machine, except that append may report raft_log_flushed()
 * (a synchronous log), which the machine processes when the current event
 * ends.
 */
#ifndef SLUICE_RAFT_RAFT_H
#define SLUICE_RAFT_RAFT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"

/* Limits. */
#define RAFT_VOTERS_MAX    16        /* controller.quorum.voters */
#define RAFT_OBSERVERS_MAX 256       /* brokers fetching the log without voting, per leader epoch */
#define RAFT_EPOCHS_MAX    (1 << 20) /* leader epochs in the log between snapshots (the epoch cache) */
#define RAFT_RETRY_MS      50        /* backoff after an error answer to a Fetch */

typedef enum raft_role {
    RAFT_UNATTACHED = 0, /* an epoch without a known leader (maybe with a vote cast) */
    RAFT_FOLLOWER,       /* fetching from the leader of the epoch */
    RAFT_PROSPECTIVE,    /* asking for pre-votes (KIP-996), epoch unchanged */
    RAFT_CANDIDATE,      /* asking for votes at its own new epoch */
    RAFT_LEADER,
    RAFT_RESIGNED, /* was leader of the epoch; waits for the next election */
} raft_role;

const char *raft_role_name(raft_role r);

/* The quorum-state file's contents (Kafka's quorum-state: leaderId,
 * leaderEpoch, votedId). */
typedef struct raft_quorum_state {
    int32_t leader_epoch; /* 0 before the first election */
    int32_t leader_id;    /* -1: none known */
    int32_t voted_id;     /* -1: no vote cast in leader_epoch */
} raft_quorum_state;

typedef struct raft_epoch_entry {
    int32_t epoch;
    int64_t start_offset;
} raft_epoch_entry;

typedef struct raft_config {
    int32_t node_id;
    int32_t voters[RAFT_VOTERS_MAX]; /* controller.quorum.voters (ids), node_id among them */
    int n_voters;
    int32_t election_timeout_ms;     /* controller.quorum.election.timeout.ms */
    int32_t fetch_timeout_ms;        /* controller.quorum.fetch.timeout.ms */
    int32_t election_backoff_max_ms; /* controller.quorum.election.backoff.max.ms */
    int32_t request_timeout_ms;      /* controller.quorum.request.timeout.ms */
    int32_t fetch_max_wait_ms;       /* how long the leader holds a Fetch with nothing to send */
    int32_t fetch_max_bytes;         /* PartitionMaxBytes of a follower's Fetch */
    uint64_t seed;                   /* election timeouts and backoffs */
} raft_config;

void raft_config_default(raft_config *c);

/* What the owner recovered from disk at start. */
typedef struct raft_log_info {
    int64_t log_start;              /* the newest snapshot's end offset (0: none) */
    int32_t snapshot_epoch;         /* the epoch of the record before log_start (0: none) */
    int64_t log_end;                /* everything below is durable (recovered) */
    const raft_epoch_entry *epochs; /* for [log_start, log_end), increasing */
    int n_epochs;
    int64_t hw; /* a high watermark the owner kept (or log_start); capped at log_end */
} raft_log_info;

/* ---- messages --------------------------------------------------------------- */

typedef enum raft_msg_kind {
    RAFT_VOTE_REQUEST = 1,
    RAFT_VOTE_RESPONSE,
    RAFT_BEGIN_QUORUM_EPOCH_REQUEST,
    RAFT_BEGIN_QUORUM_EPOCH_RESPONSE,
    RAFT_END_QUORUM_EPOCH_REQUEST,
    RAFT_END_QUORUM_EPOCH_RESPONSE,
    RAFT_FETCH_REQUEST,
    RAFT_FETCH_RESPONSE,
} raft_msg_kind;

typedef struct raft_vote_request {
    int32_t voter_id;        /* the addressee */
    int32_t candidate_epoch; /* pre-vote: the sender's epoch + 1 */
    int32_t candidate_id;
    int32_t last_offset_epoch;
    int64_t last_offset; /* the candidate's log end offset */
    bool pre_vote;       /* KIP-996 (VoteRequest v2) */
} raft_vote_request;

typedef struct raft_vote_response {
    int16_t error_code;
    int32_t leader_id; /* the responder's view: -1 none */
    int32_t leader_epoch;
    bool vote_granted;
} raft_vote_response;

typedef struct raft_begin_quorum_epoch_request {
    int32_t voter_id;
    int32_t leader_id;
    int32_t leader_epoch;
} raft_begin_quorum_epoch_request;

typedef struct raft_end_quorum_epoch_request {
    int32_t leader_id;
    int32_t leader_epoch;
    int32_t preferred_candidates[RAFT_VOTERS_MAX]; /* PreferredCandidates[].CandidateId */
    int n_preferred;
} raft_end_quorum_epoch_request;

/* BeginQuorumEpochResponse and EndQuorumEpochResponse. */
typedef struct raft_quorum_epoch_response {
    int16_t error_code;
    int32_t leader_id;
    int32_t leader_epoch;
} raft_quorum_epoch_response;

typedef struct raft_fetch_request {
    int32_t replica_id; /* ReplicaState.ReplicaId */
    int32_t max_wait_ms;
    int32_t current_leader_epoch;
    int64_t fetch_offset;
    int32_t last_fetched_epoch;
    int64_t log_start_offset;
    int32_t partition_max_bytes;
} raft_fetch_request;

typedef struct raft_fetch_response {
    int16_t error_code;
    int64_t high_watermark;
    int64_t log_start_offset;
    int32_t diverging_epoch_epoch; /* DivergingEpoch: -1 when absent */
    int64_t diverging_epoch_end_offset;
    int32_t current_leader_id; /* CurrentLeader */
    int32_t current_leader_epoch;
    int64_t snapshot_id_end_offset; /* SnapshotId: -1 when absent */
    int32_t snapshot_id_epoch;
    kbytes records;             /* batches, or len 0 */
    int64_t fetch_offset;       /* where records start (the request's FetchOffset) */
    int64_t records_end_offset; /* last offset + 1 of the records */
    int32_t records_epoch;      /* partitionLeaderEpoch of every batch */
} raft_fetch_response;

typedef struct raft_msg {
    raft_msg_kind kind;
    int32_t correlation_id; /* a response carries its request's */
    union {
        raft_vote_request vote_req;
        raft_vote_response vote_resp;
        raft_begin_quorum_epoch_request begin_req;
        raft_end_quorum_epoch_request end_req;
        raft_quorum_epoch_response epoch_resp;
        raft_fetch_request fetch_req;
        raft_fetch_response fetch_resp;
    } u;
} raft_msg;

/* ---- actions ------------------------------------------------------------------ */

typedef struct raft_append {
    int64_t base_offset; /* == the log end before the append */
    int64_t end_offset;  /* last offset + 1 */
    int32_t epoch;       /* partitionLeaderEpoch of the batches */
    kbytes records;      /* valid during the call; len 0 with leader_change */
    bool leader_change;  /* write a LeaderChangeMessage control batch (one record) */
    bool as_leader;
} raft_append;

typedef struct raft_sink {
    void *ctx;
    void (*send)(void *ctx, int32_t to, const raft_msg *m);
    void (*append)(void *ctx, const raft_append *a);
    void (*truncate)(void *ctx, int64_t offset);
    void (*persist)(void *ctx, const raft_quorum_state *qs);
    /* 0 with *records and *end_offset (> offset) set, or a Kafka error
     * (KAFKA_STORAGE_ERROR): the Fetch is answered with it. */
    int16_t (*read)(void *ctx, int64_t offset, int64_t max_offset, int32_t max_bytes, kbytes *records,
                    int64_t *end_offset);
    void (*committed)(void *ctx, int64_t hw);
    void (*role)(void *ctx, raft_role role, int32_t epoch, int32_t leader_id);
    /* Optional. */
    void (*snapshot_needed)(void *ctx, int32_t leader_id, int64_t end_offset, int32_t epoch);
} raft_sink;

typedef struct raft raft;

/* A voter starting from its quorum state and recovered log (qs NULL: a
 * fresh node, epoch 0). A node that was leader starts resigned; one that
 * knew a leader follows it; otherwise it is unattached (keeping its vote).
 * Sends nothing until the first raft_tick, and reports no role: the
 * starting one is in raft_get_state. NULL on OOM or a bad config
 * (node not among the voters, more than RAFT_VOTERS_MAX, timeouts <= 0). */
raft *raft_create(const raft_config *cfg, const raft_sink *sink, const raft_quorum_state *qs,
                  const raft_log_info *log, int64_t now);
void raft_destroy(raft *r);

/* ---- events ------------------------------------------------------------------------ */

/* A message from voter `from`. Messages from non-voters and malformed
 * ones are ignored (requests get INCONSISTENT_VOTER_SET). */
void raft_receive(raft *r, int32_t from, const raft_msg *m, int64_t now);
/* Fires timers due at `now`. */
void raft_tick(raft *r, int64_t now);
int64_t raft_next_deadline(const raft *r);

/* The active controller's records (n_records >= 1, as one batch). As
 * leader: the append action goes out, *base_offset gets the first offset,
 * and 0 is returned; otherwise NOT_LEADER_OR_FOLLOWER (nothing written). */
int16_t raft_propose(raft *r, kbytes records, int32_t n_records, int64_t now, int64_t *base_offset);

/* The owner's log is durable up to end_offset (values below what the
 * machine knows, or past its log end, are clamped). */
void raft_log_flushed(raft *r, int64_t end_offset, int64_t now);

/* The log now starts at end_offset, whose previous record has `epoch`:
 * the owner took a snapshot at or below the high watermark and removed
 * the log before it, or (after snapshot_needed) loaded the leader's
 * snapshot and emptied the log. */
void raft_snapshot_loaded(raft *r, int64_t end_offset, int32_t epoch, int64_t now);

/* Graceful resignation (shutdown of the leader): EndQuorumEpoch to the
 * others; a no-op unless leader. */
void raft_resign(raft *r, int64_t now);

/* ---- state (for the owner, DescribeQuorum, tests) ---------------------------------- */

typedef struct raft_state {
    raft_role role;
    int32_t epoch;
    int32_t leader_id;
    int32_t voted_id;
    int64_t log_start, log_end, flushed, hw;
    int32_t last_epoch;         /* epoch of the record before log_end */
    int64_t epoch_start_offset; /* leader: where its epoch starts */
} raft_state;

void raft_get_state(const raft *r, raft_state *out);
/* The largest epoch <= epoch in the log and where it ends (the next
 * epoch's start, or the log end); the snapshot's (epoch, log_start) when
 * epoch predates every epoch of the log (for an empty log: (0, 0)). */
void raft_end_offset_for_epoch(const raft *r, int32_t epoch, int32_t *out_epoch, int64_t *end_offset);
/* A leader's view of voter `id`'s flushed position (-1 unknown). */
int64_t raft_voter_offset(const raft *r, int32_t id);
/* A leader's observers this epoch (ids and fetch positions), at most max. */
int raft_observers(const raft *r, int32_t *ids, int64_t *offsets, int max);

#endif
