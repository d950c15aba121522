/*
 * sim.h - the deterministic simulation harness.
 *
 * A run is one seed. Everything that varies between runs comes from the
 * run's generator (sim_rng): the scenario's shape (how many nodes, groups,
 * clients), the timing of every message and timer, and every fault (message
 * loss, duplication, reordering by delay, network partitions, crash-restart
 * of a node, disk errors and lost unsynced writes). Time is a number the
 * harness advances from event to event (sim_now); nothing reads a real
 * clock. So a run is a pure function of its seed, and any failure replays
 * exactly with SLUICE_SEED=<seed>.
 *
 * Events sit in one priority queue ordered by (time, sequence number): two
 * events at the same time run in the order they were scheduled. A scenario
 * schedules callbacks; after every event the harness calls the scenario's
 * invariant check, so a violation is caught at the step that caused it.
 *
 * The pieces:
 *   - sim_rng: xoshiro256** seeded through splitmix64;
 *   - the event queue and clock (sim_at, sim_after, sim_run);
 *   - sim_net (sim_net.c): datagrams between numbered endpoints with loss,
 *     duplication, random delay and partitions;
 *   - sim_disk (sim_disk.c): an in-memory sl_vfs in which a crash keeps what
 *     was fsynced and a random prefix of what was not (torn tails);
 *   - scenarios (scenario_*.c): a system under test, its fault schedule and
 *     its invariants.
 *
 * Failures: SIM_CHECK records the first violation with the time and the
 * step; the run stops and the campaign prints the seed and the message.
 * Everything is single-threaded.
 */
#ifndef SLUICE_TESTS_SIM_H
#define SLUICE_TESTS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/env.h"

/* ---- generator ---------------------------------------------------------- */

typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rand(sim_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sim_below(sim_rng *r, uint64_t n);
/* Uniform in [lo, hi]. */
int64_t sim_range(sim_rng *r, int64_t lo, int64_t hi);
/* True with probability per_million / 1e6. */
bool sim_chance(sim_rng *r, uint32_t per_million);

/* ---- the run -------------------------------------------------------------- */

typedef void (*sim_fn)(void *ctx, void *arg);

typedef struct sim_event {
    int64_t at;
    uint64_t seq;
    sim_fn fn;
    void *ctx, *arg;
} sim_event;

#define SIM_FAILURE_MAX 1024
#define SIM_EVENTS_MAX  (1 << 20) /* queue bound: a scenario that floods it fails */

typedef struct sim {
    uint64_t seed;
    sim_rng rng;
    int64_t now; /* milliseconds since the run began */
    uint64_t steps;
    sim_event *heap;
    size_t n_events, cap_events;
    uint64_t next_seq;
    bool failed;
    char failure[SIM_FAILURE_MAX];
    bool verbose; /* SIM_VERBOSE=1: trace lines to stderr */
    /* The scenario's invariant check, run after every event. */
    void (*check)(struct sim *s, void *ctx);
    void *check_ctx;
} sim;

void sim_init(sim *s, uint64_t seed);
void sim_free(sim *s);
/* Schedules fn(ctx, arg) at absolute time `at` (>= now) or `delay` ms from now. */
void sim_at(sim *s, int64_t at, sim_fn fn, void *ctx, void *arg);
void sim_after(sim *s, int64_t delay, sim_fn fn, void *ctx, void *arg);
/* Runs events until the queue is empty, time passes `until`, or a check
 * fails. Returns false if the run failed. */
bool sim_run(sim *s, int64_t until);

/* Records a violation (the first one wins) and stops the run. */
void sim_fail(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SIM_CHECK(s, cond, ...)         \
    do {                                \
        if (!(cond))                    \
            sim_fail((s), __VA_ARGS__); \
    } while (0)
void sim_trace(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The wall clock of every simulated node at time 0: a fixed, recent epoch,
 * so record timestamps look real and runs replay exactly. */
#define SIM_WALL_EPOCH_MS 1780000000000LL

/* An sl_env for a simulated node: the run's clock (wall = epoch + now,
 * monotonic = now) and bytes from the run's generator. vfs as given. */
typedef struct sim_env {
    sl_env env;
    sim *s;
    int64_t wall_epoch_ms;
} sim_env;
void sim_env_init(sim_env *e, sim *s, const sl_vfs *vfs, int32_t node_id);

/* ---- the network ------------------------------------------------------------- */

#define SIM_NET_NODES_MAX 64

typedef void (*sim_deliver_fn)(void *ctx, int from, int to, const uint8_t *msg, size_t len);

typedef struct sim_net_faults {
    uint32_t drop_per_million;
    uint32_t dup_per_million;
    int64_t min_delay_ms, max_delay_ms; /* uniform; a wide range reorders */
} sim_net_faults;

typedef struct sim_net {
    sim *s;
    sim_net_faults f;
    sim_deliver_fn deliver;
    void *ctx;
    bool blocked[SIM_NET_NODES_MAX][SIM_NET_NODES_MAX]; /* from -> to */
    uint64_t sent, dropped, duplicated, delivered;
} sim_net;

void sim_net_init(sim_net *n, sim *s, const sim_net_faults *f, sim_deliver_fn deliver, void *ctx);
/* Sends a copy of msg; delivered later (or never) through deliver(). */
void sim_net_send(sim_net *n, int from, int to, const uint8_t *msg, size_t len);
/* Blocks (or unblocks) traffic from -> to; both directions with _pair. */
void sim_net_block(sim_net *n, int from, int to, bool blocked);
void sim_net_block_pair(sim_net *n, int a, int b, bool blocked);
/* Splits nodes [0, n) into the side given by in_a[] and the rest. */
void sim_net_partition(sim_net *n, int nodes, const bool *in_a);
void sim_net_heal(sim_net *n);

/* ---- the disk ------------------------------------------------------------------ */

typedef struct sim_disk sim_disk;

sim_disk *sim_disk_new(sim *s);
void sim_disk_free(sim_disk *d);
const sl_vfs *sim_disk_vfs(sim_disk *d);
/* A crash: every open descriptor becomes invalid (-EBADF); each file keeps
 * its content as of its last fsync plus, when it grew since, a random
 * prefix of what was written after (a torn tail). Directory operations are
 * durable when they return (as on a journaling file system with
 * fsync_dir after each; the product calls fsync_dir where it matters). */
void sim_disk_crash(sim_disk *d);
/* Fails writes and fsyncs with -ENOSPC while full is set. */
void sim_disk_set_full(sim_disk *d, bool full);
/* Fails one in `per_million` reads, writes and fsyncs with -EIO. */
void sim_disk_set_eio(sim_disk *d, uint32_t per_million);
/* Bytes held (current content) and files. */
int64_t sim_disk_bytes(const sim_disk *d);
int sim_disk_files(const sim_disk *d);

/* ---- scenarios and campaigns ------------------------------------------------------ */

typedef struct sim_scenario {
    const char *name;
    const char *about;
    /* Runs one seed; returns false (with s->failure set) on a violation. */
    bool (*run)(sim *s);
} sim_scenario;

extern const sim_scenario sim_scenario_groups;
extern const sim_scenario sim_scenario_controller;
extern const sim_scenario sim_scenario_replica;
extern const sim_scenario sim_scenario_raft;
extern const sim_scenario sim_scenario_replication;
extern const sim_scenario sim_scenario_txn;

#endif
