/*
 * replication.h - partition replication between brokers: the I/O around the
 * replica machines (replica/replica.h) of the partitions this broker holds.
 *
 * Followers. For every leader broker that leads a partition this broker
 * follows there is one fetcher thread. Each round it sends that leader one
 * Fetch (v17, ReplicaState with this broker's id and epoch, no fetch
 * session) naming every partition it follows from it, at the replica's log
 * end with the epoch of its last batch (last_fetched_epoch), and takes the
 * answer partition by partition under the partition's lock:
 *   - records are appended with the follower append (offsets as the leader
 *     gave them; a partial batch at the end is left for the next round);
 *   - the leader's high watermark becomes the follower's (capped at its log
 *     end);
 *   - a diverging epoch (the leader's log and this one disagree past its
 *     end) truncates the log to where they agree, and the next round
 *     fetches from there;
 *   - OFFSET_OUT_OF_RANGE below the leader's log start empties the log and
 *     restarts it there; above the leader's log end truncates to the
 *     leader's HW;
 *   - a leadership error (NOT_LEADER_OR_FOLLOWER, FENCED / UNKNOWN leader
 *     epoch, unknown topic) leaves the partition alone until its metadata
 *     changes.
 * A leader that cannot be reached is retried after replica.fetch.backoff.ms.
 * Bounds: replica.fetch.max.bytes per partition, replica.fetch.response.max.bytes
 * per answer, at most BREPL_FETCH_PARTITIONS_MAX partitions per request
 * (more are fetched in turns), at most BREPL_FETCHERS_MAX leaders.
 *
 * Leaders. The Fetch handler (api_fetch.c) hands each follower's position to
 * the replica machine, which moves the high watermark; a follower that
 * caught up and is outside the ISR is queued here (brepl_isr_join). The
 * manager thread turns those, and ISR members that have not caught up for
 * replica.lag.time.max.ms, into ISR proposals, marks each on its replica
 * (replica_set_pending_isr: the HW counts both ISRs until the metadata
 * decides) and sends them to the active controller in one AlterPartition
 * (v3, with the members' broker epochs). The new ISR arrives with the
 * metadata like every partition change; a refused or unanswered proposal
 * is dropped (the HW goes back to the committed ISR) and proposed again
 * when still wanted.
 *
 * Threads: the manager and the fetchers; every partition is touched under
 * its own lock only. Stopped before the logs close.
 */
#ifndef SLUICE_BROKER_REPLICATION_H
#define SLUICE_BROKER_REPLICATION_H

#include <stdint.h>

#include "broker/broker.h"
#include "broker/partitions.h"

#define BREPL_FETCHERS_MAX         256   /* leader brokers fetched from at once */
#define BREPL_FETCH_PARTITIONS_MAX 4096  /* partitions in one follower Fetch */
#define BREPL_JOIN_QUEUE_MAX       4096  /* followers waiting to join an ISR */
#define BREPL_PROPOSALS_MAX        1000  /* ISR changes in one AlterPartition */
#define BREPL_PENDING_TIMEOUT_MS   10000 /* a proposal the metadata has not decided by then is dropped */

int brepl_start(broker *b);
/* Ends the threads (before the logs close); the Fetch handlers may still
 * call brepl_isr_join, which then does nothing. */
void brepl_stop(broker *b);
/* After the network layer is gone. */
void brepl_free(broker *b);
/* Follower `id` caught up on p (led here) and may join its ISR. */
void brepl_isr_join(broker *b, rpart *p, int32_t id);

#endif
