/*
 * observer.h - a node that follows the KRaft metadata log without voting
 * (a broker-only node: process.roles=broker), as a state machine with no
 * I/O in the shape of raft.h and with the same messages and sink.
 *
 * It fetches from the leader as a follower does (Fetch with FetchOffset and
 * LastFetchedEpoch, one at a time, the next once everything written is
 * flushed), truncates on a DivergingEpoch, reports SnapshotId through
 * snapshot_needed, and reports the leader's high watermark (capped at its
 * own log end) as committed. It never votes, never campaigns and is never
 * counted by the leader. It finds the leader by asking the voters in turn:
 * a voter that does not lead answers with the leader it knows, which the
 * observer then follows; a leader that has not answered for
 * fetch_timeout_ms is forgotten and the search starts again.
 *
 * Sink actions used: send (Fetch requests only), append (never as leader),
 * truncate (never below the high watermark), committed, role (FOLLOWER when
 * following a leader, UNATTACHED while searching), snapshot_needed. persist
 * and read are never called: an observer has no vote, and serves no one.
 *
 * Invariants (asserted at entry and exit): log_start <= hw <= log_end,
 * flushed <= log_end, the epoch cache increasing in epoch and start.
 * Not thread-safe: the owner serialises calls, as for raft.h.
 */
#ifndef SLUICE_RAFT_OBSERVER_H
#define SLUICE_RAFT_OBSERVER_H

#include "raft/raft.h"

typedef struct robs robs;

/* cfg.node_id must not be among cfg.voters. NULL on OOM or a bad config. */
robs *robs_create(const raft_config *cfg, const raft_sink *sink, const raft_log_info *log, int64_t now);
void robs_destroy(robs *o);

/* Fetch responses from voters; anything else is ignored. */
void robs_receive(robs *o, int32_t from, const raft_msg *m, int64_t now);
void robs_tick(robs *o, int64_t now);
int64_t robs_next_deadline(const robs *o);
void robs_log_flushed(robs *o, int64_t end_offset, int64_t now);
/* As raft_snapshot_loaded. */
void robs_snapshot_loaded(robs *o, int64_t end_offset, int32_t epoch, int64_t now);
/* role is FOLLOWER or UNATTACHED; voted_id is -1. */
void robs_get_state(const robs *o, raft_state *out);

#endif
