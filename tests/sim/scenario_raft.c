/*
 * scenario_raft.c - KRaft's Raft (src/raft) on 3 or 5 voters over a faulty
 * network, with crash-restarts, slow fsyncs and snapshots.
 *
 * The world: each voter has a log in memory (every record's epoch and
 * value, a prefix hash, the offset up to which it is fsynced), a durable
 * quorum-state file (written when the machine's persist action returns), a
 * kept high watermark and a snapshot point. fsyncs complete after a
 * per-node delay (0: inside the append; up to 800 ms for slow disks) and a
 * truncation invalidates the ones in flight. A crash destroys the machine,
 * keeps the fsynced records plus a random prefix of the rest (a torn
 * tail), and the node restarts 0.1-5 s later from what survived. The
 * network loses, duplicates and delays messages (a wide delay range
 * reorders them); messages to a node that restarted since they were sent
 * are dropped (its connections broke). Full partitions, one-way blocks and
 * isolated nodes come and go; leaders resign gracefully now and then;
 * nodes snapshot their committed prefix, so a follower that falls behind
 * the leader's log start loads the leader's snapshot. Clients propose
 * unique values to whichever node they think leads. The last part of each
 * run is quiet: healed, lossless, every node up.
 *
 * Checked after every step (and inside the actions, where the violation
 * happens):
 *   - at most one leader per epoch;
 *   - log matching: two logs with a record of the same epoch at the same
 *     offset hold the same prefix up to it (a registry of prefix hashes
 *     by (offset, epoch));
 *   - a committed record is never lost or changed: every node's committed
 *     prefix equals the model of everything ever reported committed, each
 *     value is committed at most once, a follower never truncates a record
 *     it holds that is committed, and a new leader's log holds the whole
 *     model;
 *   - a node's high watermark never goes down, except across a restart,
 *     and then not below the value it had kept;
 *   - the machine's log end and high watermark agree with the log's;
 *   - liveness: within LIVENESS_MS of the quiet period's start a leader
 *     that every node follows, and at the end every node has committed
 *     every record of that leader's log.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "raft/observer.h"
#include "raft/raft.h"
#include "sim.h"

#define NODES_MAX   7 /* 3 or 5 voters, up to 2 observers */
#define LIVENESS_MS 25000
#define DRAIN_MS    10000
#define NEVER       INT64_MAX

typedef struct entry {
    int32_t epoch;
    uint64_t value; /* 0: a LeaderChangeMessage */
    uint64_t hash;  /* of the prefix up to and including this record */
} entry;

typedef struct world world;

typedef struct node {
    world *w;
    int idx;
    int32_t id;
    raft *r;
    robs *o; /* an observer (a broker-only node) instead of a voter */
    bool observer;
    bool up;
    uint32_t incarnation;
    entry *log;
    int64_t n_log, cap_log;
    int64_t log_start;
    int32_t snapshot_epoch;
    int64_t durable;
    raft_quorum_state qs;
    bool has_qs;
    int64_t hw, hw_kept;
    int64_t fsync_max; /* 0: synchronous, inside the append */
    bool fsync_inflight;
    uint64_t fsync_gen;
    int64_t scheduled;
    raft_role role;
    int32_t epoch;
    int64_t busy_at;
    int busy;
    uint8_t scratch[8 * 512];
} node;

typedef struct slot {
    int n, cap;
    struct {
        int32_t epoch;
        uint64_t hash;
    } * v;
} slot;

struct world {
    sim *s;
    sim_net net;
    int n;     /* voters: nodes[0..n) */
    int n_obs; /* observers: nodes[n..n+n_obs) */
    node nodes[NODES_MAX];
    int32_t *epoch_leader;
    int cap_epochs;
    slot *reg;
    int64_t cap_reg;
    entry *model;
    int64_t n_model, cap_model;
    uint8_t *committed_value;
    uint64_t next_value, cap_values;
    int hint;
    bool quiet, ending;
    int64_t quiet_at, end, stable_at;
    raft_config base;
    uint32_t persist_crash_ppm;
    int64_t fault_gap_max;
    /* > 0: the owner also ticks every node at random moments up to this
     * many ms apart, as a real owner does when other work wakes it (the
     * machine must not act differently for a tick before its deadline). */
    int64_t spurious_max;
    uint64_t proposals, accepted, crashes, elections, snapshots, loads, truncations, resigns;
};

typedef struct wire_msg {
    uint32_t dest_incarnation;
    raft_msg m;
    uint8_t records[];
} wire_msg;

static uint64_t mix(uint64_t h, int32_t epoch, uint64_t value) {
    uint64_t z = h ^ ((uint64_t)(uint32_t)epoch * 0x9e3779b97f4a7c15ULL) ^ (value * 0xc2b2ae3d27d4eb4fULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void *grow(void *p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap)
        return p;
    int64_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(p, (size_t)ncap * size);
    assert(q != NULL);
    memset((char *)q + (size_t)*cap * size, 0, (size_t)(ncap - *cap) * size);
    *cap = ncap;
    return q;
}

/* ---- a node's machine: a voter's or an observer's ------------------------------------ */

static void m_flushed(node *nd, int64_t end, int64_t now) {
    if (nd->observer)
        robs_log_flushed(nd->o, end, now);
    else
        raft_log_flushed(nd->r, end, now);
}
static void m_receive(node *nd, int32_t from, const raft_msg *m, int64_t now) {
    if (nd->observer)
        robs_receive(nd->o, from, m, now);
    else
        raft_receive(nd->r, from, m, now);
}
static void m_tick(node *nd, int64_t now) {
    if (nd->observer)
        robs_tick(nd->o, now);
    else
        raft_tick(nd->r, now);
}
static int64_t m_deadline(const node *nd) {
    return nd->observer ? robs_next_deadline(nd->o) : raft_next_deadline(nd->r);
}
static void m_snapshot_loaded(node *nd, int64_t end, int32_t epoch, int64_t now) {
    if (nd->observer)
        robs_snapshot_loaded(nd->o, end, epoch, now);
    else
        raft_snapshot_loaded(nd->r, end, epoch, now);
}
static void m_state(const node *nd, raft_state *st) {
    if (nd->observer)
        robs_get_state(nd->o, st);
    else
        raft_get_state(nd->r, st);
}
static void m_destroy(node *nd) {
    raft_destroy(nd->r);
    robs_destroy(nd->o);
    nd->r = NULL;
    nd->o = NULL;
}

/* ---- the registry of (offset, epoch) -> prefix hash -------------------------------- */

static void register_entry(world *w, node *nd, int64_t off) {
    w->reg = grow(w->reg, &w->cap_reg, off + 1, sizeof *w->reg);
    slot *sl = &w->reg[off];
    const entry *e = &nd->log[off];
    for (int i = 0; i < sl->n; i++) {
        if (sl->v[i].epoch == e->epoch) {
            SIM_CHECK(w->s, sl->v[i].hash == e->hash,
                      "log matching: node %d offset %lld epoch %d has a different prefix than another log's",
                      nd->id, (long long)off, e->epoch);
            return;
        }
    }
    if (sl->n == sl->cap) {
        sl->cap = sl->cap ? sl->cap * 2 : 2;
        sl->v = realloc(sl->v, (size_t)sl->cap * sizeof *sl->v);
        assert(sl->v != NULL);
    }
    sl->v[sl->n].epoch = e->epoch;
    sl->v[sl->n].hash = e->hash;
    sl->n++;
}

/* How many records of the node's log agree with the committed model. */
static int64_t model_prefix(world *w, node *nd) {
    int64_t k = nd->n_log < w->n_model ? nd->n_log : w->n_model;
    if (k == 0)
        return 0;
    if (nd->log[k - 1].hash == w->model[k - 1].hash)
        return k;
    int64_t lo = 0, hi = k - 1; /* the first offset that differs is in [lo, hi] */
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (nd->log[mid].hash == w->model[mid].hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- the log ------------------------------------------------------------------------ */

static void schedule_wake(node *nd);
static void start_fsync(node *nd);

static void log_push(node *nd, int32_t epoch, uint64_t value) {
    nd->log = grow(nd->log, &nd->cap_log, nd->n_log + 1, sizeof *nd->log);
    uint64_t prev = nd->n_log > 0 ? nd->log[nd->n_log - 1].hash : 0;
    nd->log[nd->n_log] = (entry){epoch, value, mix(prev, epoch, value)};
    register_entry(nd->w, nd, nd->n_log);
    nd->n_log++;
}

static void fsync_done(void *ctx, void *arg) {
    node *nd = ctx;
    uint64_t gen = (uint64_t)(uintptr_t)arg;
    if (!nd->up || gen != nd->fsync_gen)
        return;
    nd->fsync_inflight = false;
    nd->durable = nd->n_log;
    m_flushed(nd, nd->durable, nd->w->s->now);
    schedule_wake(nd);
}

static void start_fsync(node *nd) {
    if (nd->fsync_inflight || nd->durable == nd->n_log)
        return;
    nd->fsync_inflight = true;
    /* Completion covers what is in the log now (appends after it wait for
     * the next one: the log end is read at issue, as fdatasync would). */
    int64_t d = sim_range(&nd->w->s->rng, 0, nd->fsync_max);
    sim_after(nd->w->s, d, fsync_done, nd, (void *)(uintptr_t)nd->fsync_gen);
}

/* ---- the sink ---------------------------------------------------------------------------- */

static void on_send(void *ctx, int32_t to, const raft_msg *m) {
    node *nd = ctx;
    world *w = nd->w;
    int dst = to - 1;
    assert(dst >= 0 && dst < w->n + w->n_obs && dst != nd->idx);
    size_t rl = m->kind == RAFT_FETCH_RESPONSE && m->u.fetch_resp.records.len > 0
                    ? (size_t)m->u.fetch_resp.records.len
                    : 0;
    size_t len = sizeof(wire_msg) + rl;
    wire_msg *wm = malloc(len);
    assert(wm != NULL);
    wm->dest_incarnation = w->nodes[dst].incarnation;
    wm->m = *m;
    if (rl)
        memcpy(wm->records, m->u.fetch_resp.records.ptr, rl);
    sim_net_send(&w->net, nd->idx, dst, (const uint8_t *)wm, len);
    free(wm);
}

static void on_deliver(void *ctx, int from, int to, const uint8_t *msg, size_t len) {
    world *w = ctx;
    node *nd = &w->nodes[to];
    wire_msg wm;
    memcpy(&wm, msg, sizeof wm);
    if (!nd->up || wm.dest_incarnation != nd->incarnation)
        return;
    if (wm.m.kind == RAFT_FETCH_RESPONSE) {
        size_t rl = len - sizeof(wire_msg);
        wm.m.u.fetch_resp.records = (kbytes){rl ? msg + sizeof(wire_msg) : NULL, (int32_t)rl};
    }
    if (w->s->verbose) {
        const raft_fetch_response *f = &wm.m.u.fetch_resp;
        if (wm.m.kind == RAFT_FETCH_RESPONSE)
            sim_trace(w->s, "%d -> %d fetch answer err %d at %lld..%lld e%d hw %lld div %d/%lld snap %lld",
                      from + 1, nd->id, f->error_code, (long long)f->fetch_offset,
                      (long long)f->records_end_offset, f->records_epoch, (long long)f->high_watermark,
                      f->diverging_epoch_epoch, (long long)f->diverging_epoch_end_offset,
                      (long long)f->snapshot_id_end_offset);
        else if (wm.m.kind == RAFT_FETCH_REQUEST)
            sim_trace(w->s, "%d -> %d fetch %lld e%d", from + 1, nd->id,
                      (long long)wm.m.u.fetch_req.fetch_offset, wm.m.u.fetch_req.last_fetched_epoch);
        else
            sim_trace(w->s, "%d -> %d msg %d", from + 1, nd->id, wm.m.kind);
    }
    m_receive(nd, from + 1, &wm.m, w->s->now);
    schedule_wake(nd);
}

static void on_append(void *ctx, const raft_append *a) {
    node *nd = ctx;
    world *w = nd->w;
    SIM_CHECK(w->s, a->base_offset == nd->n_log, "node %d: append at %lld, the log ends at %lld", nd->id,
              (long long)a->base_offset, (long long)nd->n_log);
    int64_t n = a->end_offset - a->base_offset;
    if (a->leader_change) {
        SIM_CHECK(w->s, n == 1 && a->as_leader, "node %d: a LeaderChangeMessage of %lld records", nd->id,
                  (long long)n);
        log_push(nd, a->epoch, 0);
    } else {
        SIM_CHECK(w->s, a->records.len == n * 8, "node %d: %lld records in %d bytes", nd->id, (long long)n,
                  a->records.len);
        for (int64_t i = 0; i < n && !w->s->failed; i++) {
            uint64_t v;
            memcpy(&v, a->records.ptr + i * 8, 8);
            log_push(nd, a->epoch, v);
        }
    }
    if (nd->fsync_max == 0) {
        nd->durable = nd->n_log;
        m_flushed(nd, nd->durable, w->s->now); /* inside the event */
    } else {
        start_fsync(nd);
    }
}

static void on_truncate(void *ctx, int64_t offset) {
    node *nd = ctx;
    world *w = nd->w;
    SIM_CHECK(w->s, offset >= nd->log_start && offset < nd->n_log,
              "node %d: truncate to %lld of [%lld, %lld)", nd->id, (long long)offset,
              (long long)nd->log_start, (long long)nd->n_log);
    int64_t p = model_prefix(w, nd);
    SIM_CHECK(w->s, offset >= p, "node %d truncates committed records: to %lld, it holds %lld committed",
              nd->id, (long long)offset, (long long)p);
    w->truncations++;
    nd->n_log = offset;
    if (nd->durable > offset)
        nd->durable = offset;
    nd->fsync_gen++; /* fsyncs in flight covered the old tail */
    nd->fsync_inflight = false;
}

static void crash_soon(void *ctx, void *arg);

static void on_persist(void *ctx, const raft_quorum_state *qs) {
    node *nd = ctx;
    world *w = nd->w;
    /* Crashes right after a durable write (a vote, a candidacy) are the
     * ones that test what the write must hold. */
    if (!w->quiet && sim_chance(&w->s->rng, w->persist_crash_ppm))
        sim_after(w->s, sim_range(&w->s->rng, 0, 20), crash_soon, w, nd);
    SIM_CHECK(nd->w->s, !nd->has_qs || qs->leader_epoch >= nd->qs.leader_epoch,
              "node %d persists epoch %d after %d", nd->id, qs->leader_epoch, nd->qs.leader_epoch);
    nd->qs = *qs;
    nd->has_qs = true;
}

static int16_t on_read(void *ctx, int64_t offset, int64_t max_offset, int32_t max_bytes, kbytes *records,
                       int64_t *end_offset) {
    node *nd = ctx;
    world *w = nd->w;
    SIM_CHECK(w->s, offset >= nd->log_start && offset < max_offset && max_offset <= nd->n_log,
              "node %d: read [%lld, %lld) of [%lld, %lld)", nd->id, (long long)offset, (long long)max_offset,
              (long long)nd->log_start, (long long)nd->n_log);
    if (w->s->failed)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    int64_t k = (int64_t)sim_range(&w->s->rng, 1, 512);
    if (max_bytes / 8 < k)
        k = max_bytes / 8 > 0 ? max_bytes / 8 : 1;
    if (offset + k > max_offset)
        k = max_offset - offset;
    for (int64_t i = 0; i < k; i++) {
        SIM_CHECK(w->s, nd->log[offset + i].epoch == nd->log[offset].epoch,
                  "node %d: a read of [%lld, %lld) spans epochs", nd->id, (long long)offset,
                  (long long)max_offset);
        memcpy(nd->scratch + i * 8, &nd->log[offset + i].value, 8);
    }
    *records = (kbytes){nd->scratch, (int32_t)(k * 8)};
    *end_offset = offset + k;
    return 0;
}

static void on_committed(void *ctx, int64_t hw) {
    node *nd = ctx;
    world *w = nd->w;
    SIM_CHECK(w->s, hw > nd->hw && hw <= nd->n_log, "node %d: high watermark %lld after %lld (log end %lld)",
              nd->id, (long long)hw, (long long)nd->hw, (long long)nd->n_log);
    /* An observer learns of commits from the leader, which applied them
     * first: it never commits past what a voter committed. */
    SIM_CHECK(w->s, !nd->observer || hw <= w->n_model,
              "observer %d commits to %lld, past the %lld the voters committed", nd->id, (long long)hw,
              (long long)w->n_model);
    for (int64_t o = nd->hw; o < hw && !w->s->failed; o++) {
        const entry *e = &nd->log[o];
        if (o < w->n_model) {
            SIM_CHECK(
                w->s, w->model[o].hash == e->hash,
                "node %d commits offset %lld (epoch %d value %llu), committed before as epoch %d value %llu",
                nd->id, (long long)o, e->epoch, (unsigned long long)e->value, w->model[o].epoch,
                (unsigned long long)w->model[o].value);
        } else {
            w->model = grow(w->model, &w->cap_model, o + 1, sizeof *w->model);
            w->model[w->n_model++] = *e;
            if (e->value != 0) {
                SIM_CHECK(w->s, e->value < w->next_value && !w->committed_value[e->value],
                          "value %llu committed twice (offset %lld)", (unsigned long long)e->value,
                          (long long)o);
                w->committed_value[e->value] = 1;
            }
        }
    }
    nd->hw = hw;
    if (sim_chance(&w->s->rng, 300000))
        nd->hw_kept = hw; /* the owner keeps it (as with the applied offset) */
}

static void on_role(void *ctx, raft_role role, int32_t epoch, int32_t leader) {
    node *nd = ctx;
    world *w = nd->w;
    sim_trace(w->s, "node %d: %s epoch %d leader %d (log %lld hw %lld)", nd->id, raft_role_name(role), epoch,
              leader, (long long)nd->n_log, (long long)nd->hw);
    nd->role = role;
    nd->epoch = epoch;
    if (role != RAFT_LEADER)
        return;
    w->elections++;
    if (epoch >= w->cap_epochs) {
        int nc = w->cap_epochs ? w->cap_epochs : 64;
        while (nc <= epoch)
            nc *= 2;
        w->epoch_leader = realloc(w->epoch_leader, (size_t)nc * sizeof *w->epoch_leader);
        for (int i = w->cap_epochs; i < nc; i++)
            w->epoch_leader[i] = -1;
        w->cap_epochs = nc;
    }
    SIM_CHECK(w->s, w->epoch_leader[epoch] == -1 || w->epoch_leader[epoch] == nd->id,
              "two leaders in epoch %d: node %d and node %d", epoch, w->epoch_leader[epoch], nd->id);
    w->epoch_leader[epoch] = nd->id;
    SIM_CHECK(w->s, model_prefix(w, nd) == w->n_model,
              "leader %d of epoch %d lacks committed records: holds %lld of %lld", nd->id, epoch,
              (long long)model_prefix(w, nd), (long long)w->n_model);
    w->hint = nd->idx;
}

static void snapshot_transfer(void *ctx, void *arg);

typedef struct snap_req {
    node *nd;
    uint32_t incarnation;
    int64_t end;
    int32_t epoch;
} snap_req;

static void on_snapshot_needed(void *ctx, int32_t leader, int64_t end_offset, int32_t epoch) {
    node *nd = ctx;
    (void)leader;
    snap_req *q = malloc(sizeof *q);
    assert(q != NULL);
    *q = (snap_req){nd, nd->incarnation, end_offset, epoch};
    sim_after(nd->w->s, sim_range(&nd->w->s->rng, 5, 200), snapshot_transfer, nd->w, q);
}

/* FetchSnapshot, done by the harness: a leader's snapshot is a committed
 * prefix, i.e. a prefix of the model. */
static void snapshot_transfer(void *ctx, void *arg) {
    world *w = ctx;
    snap_req *q = arg;
    node *nd = q->nd;
    if (nd->up && nd->incarnation == q->incarnation && q->end > nd->log_start) {
        SIM_CHECK(w->s, q->end <= w->n_model && w->model[q->end - 1].epoch == q->epoch,
                  "snapshot id (%lld, %d) is not a committed prefix (%lld committed)", (long long)q->end,
                  q->epoch, (long long)w->n_model);
        if (!w->s->failed) {
            w->loads++;
            bool keep_tail = nd->n_log >= q->end && nd->log[q->end - 1].epoch == q->epoch;
            if (!keep_tail) {
                nd->n_log = 0;
                for (int64_t o = 0; o < q->end; o++)
                    log_push(nd, w->model[o].epoch, w->model[o].value);
                nd->fsync_gen++;
                nd->fsync_inflight = false;
                nd->durable = q->end; /* the old log is gone, the snapshot is durable */
            }
            nd->log_start = q->end;
            nd->snapshot_epoch = q->epoch;
            if (nd->durable < q->end)
                nd->durable = q->end;
            m_snapshot_loaded(nd, q->end, q->epoch, w->s->now);
            start_fsync(nd);
            schedule_wake(nd);
        }
    }
    free(q);
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static void wake(void *ctx, void *arg) {
    node *nd = ctx;
    world *w = nd->w;
    if (!nd->up || (uint32_t)(uintptr_t)arg != nd->incarnation || w->s->now != nd->scheduled)
        return;
    nd->scheduled = NEVER;
    if (w->s->now == nd->busy_at) {
        SIM_CHECK(w->s, ++nd->busy < 1000, "node %d ticks without end at one instant", nd->id);
    } else {
        nd->busy_at = w->s->now;
        nd->busy = 0;
    }
    m_tick(nd, w->s->now);
    schedule_wake(nd);
}

static void schedule_wake(node *nd) {
    if (!nd->up || nd->w->s->failed)
        return;
    int64_t d = m_deadline(nd);
    if (d == NEVER || d >= nd->scheduled)
        return;
    if (d < nd->w->s->now)
        d = nd->w->s->now;
    nd->scheduled = d;
    sim_at(nd->w->s, d, wake, nd, (void *)(uintptr_t)nd->incarnation);
}

static const raft_sink SINK = {NULL,    on_send,      on_append, on_truncate,       on_persist,
                               on_read, on_committed, on_role,   on_snapshot_needed};

static void spurious_tick(void *ctx, void *arg);

static void start_node(world *w, node *nd) {
    raft_config c = w->base;
    c.node_id = nd->id;
    c.seed = sim_rand(&w->s->rng);
    raft_epoch_entry *ep = malloc((size_t)(nd->n_log - nd->log_start + 1) * sizeof *ep);
    int ne = 0;
    for (int64_t o = nd->log_start; o < nd->n_log; o++)
        if (ne == 0 || ep[ne - 1].epoch != nd->log[o].epoch)
            ep[ne++] = (raft_epoch_entry){nd->log[o].epoch, o};
    raft_log_info li = {nd->log_start, nd->snapshot_epoch, nd->n_log, ep, ne, nd->hw_kept};
    raft_sink sk = SINK;
    sk.ctx = nd;
    if (nd->observer)
        nd->o = robs_create(&c, &sk, &li, w->s->now);
    else
        nd->r = raft_create(&c, &sk, nd->has_qs ? &nd->qs : NULL, &li, w->s->now);
    free(ep);
    SIM_CHECK(w->s, nd->r != NULL || nd->o != NULL, "node %d does not start from its files", nd->id);
    if (nd->r == NULL && nd->o == NULL)
        return;
    raft_state st;
    m_state(nd, &st);
    int64_t floor = nd->hw_kept < nd->n_log ? nd->hw_kept : nd->n_log;
    SIM_CHECK(w->s, st.hw >= floor, "node %d restarts with high watermark %lld below the %lld it kept",
              nd->id, (long long)st.hw, (long long)floor);
    nd->hw = st.hw;
    nd->role = st.role;
    nd->epoch = st.epoch;
    nd->up = true;
    nd->scheduled = NEVER;
    schedule_wake(nd);
    if (w->spurious_max > 0)
        sim_after(w->s, sim_range(&w->s->rng, 1, w->spurious_max), spurious_tick, nd,
                  (void *)(uintptr_t)nd->incarnation);
}

/* A tick the machine did not ask for. */
static void spurious_tick(void *ctx, void *arg) {
    node *nd = ctx;
    world *w = nd->w;
    if (w->ending || w->s->failed)
        return;
    if (nd->up && (uint32_t)(uintptr_t)arg == nd->incarnation) {
        m_tick(nd, w->s->now);
        schedule_wake(nd);
    }
    if (nd->up)
        sim_after(w->s, sim_range(&w->s->rng, 1, w->spurious_max), spurious_tick, nd,
                  (void *)(uintptr_t)nd->incarnation);
}

static void restart(void *ctx, void *arg) {
    node *nd = arg;
    (void)ctx;
    if (!nd->up && !nd->w->ending)
        start_node(nd->w, nd);
}

static void crash(world *w, node *nd) {
    if (!nd->up)
        return;
    w->crashes++;
    m_destroy(nd);
    nd->up = false;
    nd->incarnation++;
    nd->fsync_gen++;
    nd->fsync_inflight = false;
    /* What was fsynced survives, and a random prefix of the rest. */
    int64_t keep = nd->durable + (int64_t)sim_range(&w->s->rng, 0, nd->n_log - nd->durable);
    if (sim_chance(&w->s->rng, 500000))
        keep = nd->durable;
    nd->n_log = keep;
    nd->durable = keep;
    nd->role = RAFT_UNATTACHED;
    sim_trace(w->s, "node %d crashes (log %lld kept, epoch %d voted %d)", nd->id, (long long)keep,
              nd->qs.leader_epoch, nd->qs.voted_id);
}

static void crash_soon(void *ctx, void *arg) {
    world *w = ctx;
    node *nd = arg;
    if (w->quiet || !nd->up)
        return;
    crash(w, nd);
    sim_after(w->s, sim_range(&w->s->rng, 10, 200), restart, w, nd);
}

/* ---- clients and faults --------------------------------------------------------------------------- */

static void client(void *ctx, void *arg) {
    world *w = ctx;
    (void)arg;
    sim *s = w->s;
    if (s->now < w->end - DRAIN_MS && !w->ending) {
        node *nd = &w->nodes[w->hint];
        if (nd->up) {
            int n = (int)sim_range(&s->rng, 1, 3);
            uint8_t buf[24];
            if (w->next_value + 4 >= w->cap_values) {
                int64_t cap = (int64_t)w->cap_values;
                w->committed_value = grow(w->committed_value, &cap, (int64_t)w->next_value + 8, 1);
                w->cap_values = (uint64_t)cap;
            }
            for (int i = 0; i < n; i++) {
                uint64_t v = w->next_value++;
                memcpy(buf + i * 8, &v, 8);
            }
            int64_t base;
            w->proposals++;
            int16_t err = raft_propose(nd->r, (kbytes){buf, n * 8}, n, s->now, &base);
            if (err == 0)
                w->accepted++;
            else
                w->hint = (int)sim_below(&s->rng, (uint64_t)w->n);
            schedule_wake(nd);
        } else {
            w->hint = (int)sim_below(&s->rng, (uint64_t)w->n);
        }
        sim_after(s, sim_range(&s->rng, 5, 150), client, w, NULL);
    }
}

static void fault(void *ctx, void *arg) {
    world *w = ctx;
    (void)arg;
    sim *s = w->s;
    if (w->quiet || w->ending)
        return;
    int kind = (int)sim_below(&s->rng, 10);
    int all = w->n + w->n_obs;
    node *nd = &w->nodes[sim_below(&s->rng, (uint64_t)all)];
    switch (kind) {
    case 0:
    case 1:
        sim_net_heal(&w->net);
        break;
    case 2: { /* a full partition */
        bool side[NODES_MAX];
        for (int i = 0; i < all; i++)
            side[i] = sim_chance(&s->rng, 500000);
        sim_net_partition(&w->net, all, side);
        break;
    }
    case 3: { /* one-way */
        int a = (int)sim_below(&s->rng, (uint64_t)all), b = (int)sim_below(&s->rng, (uint64_t)all);
        if (a != b)
            sim_net_block(&w->net, a, b, true);
        break;
    }
    case 4: /* isolate one node */
        for (int i = 0; i < all; i++)
            if (i != nd->idx)
                sim_net_block_pair(&w->net, i, nd->idx, true);
        break;
    case 5:
    case 6:
        if (nd->up) {
            crash(w, nd);
            sim_after(
                s, sim_chance(&s->rng, 500000) ? sim_range(&s->rng, 10, 300) : sim_range(&s->rng, 300, 5000),
                restart, w, nd);
        }
        break;
    case 7: /* the owner snapshots its committed prefix */
        if (nd->up && nd->hw > nd->log_start && sim_chance(&s->rng, 700000)) {
            int64_t at = nd->hw;
            w->snapshots++;
            nd->log_start = at;
            nd->snapshot_epoch = nd->log[at - 1].epoch;
            if (nd->durable < at)
                nd->durable = at;
            m_snapshot_loaded(nd, at, nd->snapshot_epoch, s->now);
            schedule_wake(nd);
        }
        break;
    case 8:
        for (int i = 0; i < w->n; i++)
            if (w->nodes[i].up && w->nodes[i].role == RAFT_LEADER && sim_chance(&s->rng, 500000)) {
                w->resigns++;
                raft_resign(w->nodes[i].r, s->now);
                schedule_wake(&w->nodes[i]);
            }
        break;
    default:
        break;
    }
    sim_after(s, sim_range(&s->rng, 50, w->fault_gap_max), fault, w, NULL);
}

static void go_quiet(void *ctx, void *arg) {
    world *w = ctx;
    (void)arg;
    if (w->ending)
        return;
    w->quiet = true;
    sim_net_heal(&w->net);
    w->net.f.drop_per_million = 0;
    w->net.f.dup_per_million = 0;
    w->net.f.min_delay_ms = 1;
    w->net.f.max_delay_ms = 10;
    for (int i = 0; i < w->n + w->n_obs; i++)
        if (!w->nodes[i].up)
            start_node(w, &w->nodes[i]);
    sim_trace(w->s, "quiet");
}

/* A leader that every node follows, at its epoch. */
static node *stable_leader(world *w) {
    node *l = NULL;
    for (int i = 0; i < w->n; i++)
        if (w->nodes[i].up && w->nodes[i].role == RAFT_LEADER)
            l = &w->nodes[i];
    if (l == NULL)
        return NULL;
    for (int i = 0; i < w->n; i++) {
        node *nd = &w->nodes[i];
        if (nd == l)
            continue;
        raft_state st;
        if (!nd->up)
            return NULL;
        raft_get_state(nd->r, &st);
        if (st.role != RAFT_FOLLOWER || st.leader_id != l->id || st.epoch != l->epoch)
            return NULL;
    }
    return l;
}

static void check(sim *s, void *ctx) {
    world *w = ctx;
    for (int i = 0; i < w->n + w->n_obs; i++) {
        node *nd = &w->nodes[i];
        if (!nd->up)
            continue;
        raft_state st;
        m_state(nd, &st);
        SIM_CHECK(s, st.log_end == nd->n_log && st.hw == nd->hw && st.log_start == nd->log_start,
                  "node %d: the machine has log [%lld, %lld) hw %lld, the log [%lld, %lld) hw %lld", nd->id,
                  (long long)st.log_start, (long long)st.log_end, (long long)st.hw, (long long)nd->log_start,
                  (long long)nd->n_log, (long long)nd->hw);
        SIM_CHECK(s, st.flushed <= nd->durable || nd->fsync_max == 0,
                  "node %d: the machine counts %lld flushed, the disk has %lld", nd->id,
                  (long long)st.flushed, (long long)nd->durable);
    }
    if (w->quiet && w->stable_at < 0) {
        if (stable_leader(w))
            w->stable_at = s->now;
        else
            SIM_CHECK(s, s->now <= w->quiet_at + LIVENESS_MS,
                      "no stable leader %d ms after the network healed", LIVENESS_MS);
    }
}

static bool run(sim *s) {
    world *w = calloc(1, sizeof *w);
    assert(w != NULL);
    w->s = s;
    w->n = sim_chance(&s->rng, 500000) ? 3 : 5;
    raft_config_default(&w->base);
    w->base.n_voters = w->n;
    for (int i = 0; i < w->n; i++)
        w->base.voters[i] = i + 1;
    w->base.election_timeout_ms = (int32_t)sim_range(&s->rng, 200, 1000);
    w->base.fetch_timeout_ms = w->base.election_timeout_ms * 2;
    w->base.election_backoff_max_ms = (int32_t)sim_range(&s->rng, 100, 1000);
    if (sim_chance(&s->rng, 500000))
        w->spurious_max = sim_range(&s->rng, 5, 60);
    w->base.request_timeout_ms = (int32_t)sim_range(&s->rng, 300, 2000);
    w->base.fetch_max_wait_ms = (int32_t)sim_range(&s->rng, 50, 500);
    w->base.fetch_max_bytes = (int32_t)sim_range(&s->rng, 1024, 8192);
    static const uint32_t persist_crash[] = {0, 20000, 100000, 500000};
    w->persist_crash_ppm = persist_crash[sim_below(&s->rng, 4)];
    w->fault_gap_max = sim_chance(&s->rng, 500000) ? 1000 : 4000;
    static const int64_t delays[] = {10, 50, 200, 600};
    sim_net_faults f = {(uint32_t)sim_range(&s->rng, 0, 200000), (uint32_t)sim_range(&s->rng, 0, 100000),
                        sim_range(&s->rng, 0, 5), delays[sim_below(&s->rng, 4)]};
    sim_net_init(&w->net, s, &f, on_deliver, w);
    w->next_value = 1;
    w->cap_values = 0;
    w->stable_at = -1;
    static const int64_t fsyncs[] = {0, 5, 50, 800};
    w->n_obs = (int)sim_below(&s->rng, 3);
    for (int i = 0; i < w->n + w->n_obs; i++) {
        node *nd = &w->nodes[i];
        nd->w = w;
        nd->idx = i;
        nd->id = i + 1;
        nd->observer = i >= w->n;
        nd->hw_kept = 0;
        /* A disk slower than the fetch timeout would time its own
         * follower out: at most a third of it. */
        nd->fsync_max = fsyncs[sim_below(&s->rng, 4)];
        if (nd->fsync_max > w->base.fetch_timeout_ms / 3)
            nd->fsync_max = w->base.fetch_timeout_ms / 3;
        nd->busy_at = -1;
    }
    s->check = check;
    s->check_ctx = w;
    for (int i = 0; i < w->n + w->n_obs; i++)
        start_node(w, &w->nodes[i]);
    w->quiet_at = sim_range(&s->rng, 10000, 40000);
    w->end = w->quiet_at + LIVENESS_MS + DRAIN_MS;
    sim_after(s, 1, client, w, NULL);
    sim_after(s, sim_range(&s->rng, 100, 3000), fault, w, NULL);
    sim_at(s, w->quiet_at, go_quiet, w, NULL);
    bool ok = sim_run(s, w->end);
    if (ok) {
        node *l = stable_leader(w);
        SIM_CHECK(s, l != NULL, "no stable leader at the end");
        if (l) {
            for (int i = 0; i < w->n + w->n_obs; i++)
                SIM_CHECK(
                    s, w->nodes[i].hw == l->n_log,
                    "node %d has committed %lld of the leader's %lld records %d ms after the clients stopped",
                    w->nodes[i].id, (long long)w->nodes[i].hw, (long long)l->n_log, DRAIN_MS);
        }
        SIM_CHECK(s, w->n_model > 0, "nothing was ever committed");
        ok = !s->failed;
    }
    sim_trace(s,
              "voters=%d observers=%d proposals=%llu accepted=%llu committed=%lld elections=%llu "
              "crashes=%llu snapshots=%llu "
              "loads=%llu truncations=%llu resigns=%llu stable_at=%lld",
              w->n, w->n_obs, (unsigned long long)w->proposals, (unsigned long long)w->accepted,
              (long long)w->n_model, (unsigned long long)w->elections, (unsigned long long)w->crashes,
              (unsigned long long)w->snapshots, (unsigned long long)w->loads,
              (unsigned long long)w->truncations, (unsigned long long)w->resigns, (long long)w->stable_at);
    /* Drain the queue (messages, timers) without the checks. */
    s->check = NULL;
    w->ending = true;
    for (int i = 0; i < w->n + w->n_obs; i++)
        if (w->nodes[i].up) {
            m_destroy(&w->nodes[i]);
            w->nodes[i].up = false;
        }
    bool failed = s->failed;
    s->failed = false;
    sim_run(s, INT64_MAX);
    s->failed = failed;
    for (int i = 0; i < w->n + w->n_obs; i++)
        free(w->nodes[i].log);
    for (int64_t o = 0; o < w->cap_reg; o++)
        free(w->reg[o].v);
    free(w->reg);
    free(w->model);
    free(w->epoch_leader);
    free(w->committed_value);
    free(w);
    return ok;
}

const sim_scenario sim_scenario_raft = {
    "raft",
    "KRaft Raft on 3/5 voters: loss, duplication, reordering, partitions, crashes, slow fsync, snapshots",
    run,
};
