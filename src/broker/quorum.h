/*
 * quorum.h - this node's seat in the KRaft metadata quorum: the owner of the
 * Raft machine (raft/raft.h). It executes the machine's actions:
 *
 *   - the log is the metadata log (metadata/mdlog.h): a leader's proposals
 *     and LeaderChangeMessage, a follower's fetched batches, a diverging
 *     follower's truncation, the leader's reads for Fetch answers; every
 *     write is fsynced before the machine hears it is durable;
 *   - the quorum-state file (`quorum-state` in the log's directory: leader,
 *     epoch, vote, and a committed offset) is written to a temporary file,
 *     fsynced and renamed before anything that depends on it goes out;
 *   - messages travel as Kafka's KRaft RPCs (raft/codec.h). Requests to the
 *     other voters go out on two connections per voter (one for Fetch,
 *     which a leader may hold, one for the rest), each with its own thread
 *     and a short queue; requests from them arrive through the broker's
 *     request path (api handlers call bquorum_handle) and are answered when
 *     the machine answers (a leader holds a Fetch up to its wait);
 *   - a timer thread ticks the machine at its deadlines.
 *
 * Every call into the machine, and every hook, runs with the owner's mutex
 * (cfg.mu) held, so the metadata layer sees commits and role changes in
 * the same order as its own proposals.
 *
 * A node whose node.id is not among the voters observes (raft/observer.h):
 * it fetches the log from the leader, votes never and serves no one.
 *
 * A write to the log or the quorum-state file that fails stops the node
 * (SIGTERM to itself, after a log line naming the file): a voter that
 * cannot record its vote or its log cannot take part, as in Kafka.
 */
#ifndef SLUICE_BROKER_QUORUM_H
#define SLUICE_BROKER_QUORUM_H

#include <pthread.h>
#include <stdint.h>

#include "broker/request.h"
#include "core/env.h"
#include "metadata/mdlog.h"
#include "metadata/records.h"
#include "raft/raft.h"

#define BQUORUM_PENDING_MAX 64 /* requests from other voters waiting for the machine's answer */
#define BQUORUM_QUEUE_MAX   16 /* requests queued per connection to a voter */

typedef struct bquorum_voter {
    int32_t id;
    char host[256];
    uint16_t port;
} bquorum_voter;

typedef struct bquorum_config {
    int32_t node_id;
    bquorum_voter voters[RAFT_VOTERS_MAX];
    int n_voters;
    int32_t election_timeout_ms;     /* controller.quorum.election.timeout.ms */
    int32_t fetch_timeout_ms;        /* controller.quorum.fetch.timeout.ms */
    int32_t election_backoff_max_ms; /* controller.quorum.election.backoff.max.ms */
    int32_t request_timeout_ms;      /* controller.quorum.request.timeout.ms */
    const char *cluster_id;
    const char *dir; /* the metadata log's directory */
    mdlog *log;
    pthread_mutex_t *mu;
    const sl_env *env;
} bquorum_config;

typedef struct bquorum_hooks {
    void *ctx;
    /* Records below hw are committed (mu held). */
    void (*committed)(void *ctx, int64_t hw);
    /* The node's role changed (mu held). */
    void (*role)(void *ctx, raft_role role, int32_t epoch, int32_t leader_id);
    /* A snapshot fetched from the leader is in tmp_path: install it (the
     * log restarts empty at end, the image is the snapshot's). 0 or -1
     * (logged). mu held. */
    int (*install)(void *ctx, const char *tmp_path, int64_t end, int32_t epoch);
} bquorum_hooks;

typedef struct bquorum bquorum;

/* Reads the quorum-state file and the log's epochs, and creates the
 * machine. *committed gets the committed offset the file recorded (a lower
 * bound: what the owner may apply at once). NULL with err on failure. */
bquorum *bquorum_open(const bquorum_config *cfg, const bquorum_hooks *hooks, char *err, size_t errn);
/* The committed offset recorded in the quorum-state file of dir (0: none):
 * read before the log is opened, to know how much of it to apply. */
int64_t bquorum_recorded_commit(const char *dir);
/* Starts the timer and connection threads. 0 or -1. */
int bquorum_start(bquorum *q);
/* Resigns if leader (EndQuorumEpoch), stops the threads, answers held
 * requests, frees. */
void bquorum_close(bquorum *q);

/* For the api handlers of Vote, BeginQuorumEpoch, EndQuorumEpoch,
 * DescribeQuorum and Fetch of the metadata partition (without mu). */
breq_status bquorum_handle(bquorum *q, breq *r);

/* mu held. As leader: writes recs as one batch at the current epoch and
 * returns 0 with *last its last offset; else NOT_CONTROLLER, or
 * KAFKA_STORAGE_ERROR. */
int16_t bquorum_propose(bquorum *q, const mdrec *recs, int n, int64_t now_wall_ms, int64_t *last);
/* mu held. */
void bquorum_state(bquorum *q, raft_state *out);

const bquorum_voter *bquorum_voter_of(const bquorum *q, int32_t id);
/* Shutdown, before the listeners drain: requests the machine holds are
 * dropped (their connections close) and new ones are refused, so the drain
 * does not wait for them. */
void bquorum_quiesce(bquorum *q);

/* Wakes the timer thread (after a proposal: the machine may send). */
void bquorum_kick(bquorum *q);
/* mu held: the owner's own snapshot moved the log start to start (the
 * record before it has epoch). */
void bquorum_log_trimmed(bquorum *q, int64_t start, int32_t epoch);

#define BQUORUM_SNAPSHOT_MAX   (1LL << 30) /* bytes of a snapshot fetched from the leader */
#define BQUORUM_SNAPSHOT_CHUNK (1 << 20)   /* bytes per FetchSnapshot answer */

#endif
