/*
 * scenario_replication.c - one partition replicated on three brokers: the
 * replica state machines (replica/replica.h) of a leader and its followers,
 * a model controller, producers with acks=all, crashes and lost messages.
 *
 * The world: three nodes, each with an in-memory log (batches as real
 * magic-2 bytes, the record ids in their timestamps) behind a replica
 * machine. A model controller holds the partition's committed state
 * (leader, leader epoch, partition epoch, ISR) and publishes it to live
 * nodes after a random delay (each node applies the newest it got); it
 * takes ISR proposals from the leader with Kafka's checks (leader and
 * partition epoch, members live, the leader in it), fences a crashed node
 * after a session timeout (it leaves the ISR unless it is the last member;
 * a leader is elected from the live ISR members) and unfences it when it
 * is back. Followers fetch from the leader they know at random intervals;
 * a request or answer is lost now and then, and each takes a random delay.
 * The leader side does what api_fetch.c does (the diverging-epoch check,
 * the follower's position, a read up to the log end), the follower side
 * what replication.c does (truncate to the agreed offset, append whole
 * batches, take the HW); the leader proposes joins and shrinks as the
 * broker's manager thread does. Producers append at whichever node leads
 * and count a batch acknowledged once that leader's HW covers it in the
 * same leader epoch (acks=all; min.insync.replicas 1 or 2 per seed). A node
 * crashes now and then (its log survives, its machine is rebuilt on
 * restart).
 *
 * Invariants:
 *   - every acknowledged record is, at its offset and with its id, in the
 *     log of every member of the committed ISR (so no clean election can
 *     lose it), checked every 256 steps and at the end;
 *   - logs match: two logs holding a batch of the same leader epoch at the
 *     same offset hold the same records there;
 *   - a leader's HW never passes the log end of a member of the ISR it
 *     uses;
 *   - after the faults stop, every node is in the ISR and all logs are
 *     identical within a bounded time.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"
#include "proto/wire.h"
#include "replica/replica.h"
#include "sim.h"

#define NODES       3
#define BATCHES_MAX 3000
#define ACKED_MAX   20000

typedef struct mbatch {
    int64_t base, last;
    int32_t epoch;
    uint8_t *bytes;
    size_t len;
} mbatch;

typedef struct mstate {
    int32_t leader, leader_epoch, partition_epoch;
    int32_t isr[NODES];
    int32_t n_isr;
    uint64_t version;
    uint64_t registered[NODES]; /* each node's registered incarnation */
} mstate;

typedef struct node {
    struct world *w;
    int id; /* 1..NODES */
    mbatch b[BATCHES_MAX];
    int n;
    int64_t end;
    replica_epoch_entry saved[REPLICA_EPOCHS_MAX];
    int n_saved;
    replica *r; /* NULL while crashed */
    bool alive;
    uint64_t incarnation;
    uint64_t applied; /* metadata version applied */
    bool fenced;      /* as the controller sees it */
    int64_t down_since;
    bool proposing;
    uint64_t fetch_seq; /* the fetch in flight */
} node;

typedef struct acked {
    int64_t offset;
    int64_t id;
} acked;

typedef struct world {
    sim *s;
    node nodes[NODES];
    mstate ctrl;
    int32_t min_isr;
    int64_t session_ms;
    uint32_t loss; /* per million */
    acked acks[ACKED_MAX];
    int n_acks;
    int64_t next_id;
    bool faults;
    bool ending;
    uint64_t fetches, appended, truncations, joins, shrinks, elections, crashes, refused;
} world;

/* ---- the in-memory log ------------------------------------------------------------------ */

static int64_t first_id(const mbatch *b) {
    batch_header h;
    batch_parse_header(b->bytes, b->len, &h);
    return h.base_timestamp;
}

static void put_batch(node *nd, const uint8_t *bytes, size_t len, int64_t base, int64_t last, int32_t epoch) {
    mbatch *b = &nd->b[nd->n++];
    b->bytes = malloc(len);
    memcpy(b->bytes, bytes, len);
    b->len = len;
    b->base = base;
    b->last = last;
    b->epoch = epoch;
    nd->end = last + 1;
}

static int16_t p_append(void *ctx, uint8_t *buf, size_t len, bool as_leader, int32_t epoch, int64_t now,
                        plog_append_info *info) {
    (void)now;
    node *nd = ctx;
    batch_cursor cur;
    batch_cursor_init(&cur, buf, len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    int64_t first = nd->end;
    int batches = 0;
    /* Checked first, then written: all or nothing, as plog. */
    int64_t at = nd->end;
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        if (!as_leader && h.base_offset != at)
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR; /* STORAGE_UNEXPECTED_OFFSET */
        at += h.last_offset_delta + 1;
        batches++;
    }
    if (nd->n + batches > BATCHES_MAX)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    batch_cursor_init(&cur, buf, len);
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        int32_t e = h.partition_leader_epoch;
        if (as_leader) {
            wire_put_be64((uint8_t *)bp, (uint64_t)nd->end);
            wire_put_be32((uint8_t *)bp + 12, (uint32_t)epoch);
            e = epoch;
        }
        put_batch(nd, bp, bsize, nd->end, nd->end + h.last_offset_delta, e);
    }
    memset(info, 0, sizeof *info);
    info->base_offset = first;
    info->last_offset = nd->end - 1;
    info->log_append_time = -1;
    info->batches = batches;
    info->records = nd->end - first;
    return 0;
}

static int16_t p_truncate(void *ctx, int64_t offset) {
    node *nd = ctx;
    while (nd->n > 0 && nd->b[nd->n - 1].last >= offset) {
        free(nd->b[nd->n - 1].bytes);
        nd->n--;
    }
    nd->end = nd->n > 0 ? nd->b[nd->n - 1].last + 1 : 0;
    return 0;
}

static int16_t p_read(void *ctx, int64_t offset, int64_t max_bytes, int64_t max_offset,
                      plog_read_result *res) {
    (void)max_bytes;
    node *nd = ctx;
    memset(res, 0, sizeof *res);
    if (offset < 0 || offset > nd->end)
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    for (int i = 0; i < nd->n && res->n < PLOG_MAX_RANGES; i++) {
        const mbatch *b = &nd->b[i];
        if (b->last < offset)
            continue;
        if (max_offset >= 0 && b->last >= max_offset)
            break;
        res->r[res->n++] = (plog_range){NULL, -1, i, (int64_t)b->len};
        res->bytes += (int64_t)b->len;
    }
    res->log_end_offset = nd->end;
    return 0;
}

static int16_t p_time(void *ctx, int64_t ts, int64_t *offset, int64_t *timestamp) {
    (void)ctx;
    (void)ts;
    *offset = -1;
    *timestamp = -1;
    return 0;
}

static int16_t p_delete(void *ctx, int64_t offset, int64_t *low) {
    (void)ctx;
    *low = offset;
    return KAFKA_ERR_INVALID_REQUEST;
}

static void p_offsets(void *ctx, int64_t *start, int64_t *end) {
    node *nd = ctx;
    *start = 0;
    *end = nd->end;
}

static int16_t p_save(void *ctx, const replica_epoch_entry *e, int n) {
    node *nd = ctx;
    memcpy(nd->saved, e, (size_t)n * sizeof *e);
    nd->n_saved = n;
    return 0;
}

static void p_changed(void *ctx, replica *r) {
    (void)ctx;
    (void)r;
}

static void start_replica(node *nd) {
    replica_port port = {nd,       p_append,  p_truncate, p_read,    p_time,
                         p_delete, p_offsets, p_save,     p_changed, NULL};
    nd->r = replica_create(nd->id, &port, nd->saved, nd->n_saved, 0);
    nd->alive = true;
    nd->incarnation++;
    nd->applied = 0;
    nd->proposing = false;
}

/* ---- the model controller ------------------------------------------------------------------ */

static void publish(world *w);

static void apply_meta(void *ctx, void *arg) {
    node *nd = ctx;
    world *w = nd->w;
    uint64_t inc = (uint64_t)(uintptr_t)arg;
    if (w->ending || !nd->alive || inc != nd->incarnation || nd->applied >= w->ctrl.version)
        return;
    const mstate *m = &w->ctrl; /* the newest state (delivered late, in order) */
    nd->applied = m->version;
    /* As partitions.c: not led here before this start's registration. */
    if (m->leader == nd->id && m->registered[nd->id - 1] != nd->incarnation)
        replica_become_follower(nd->r, -1, m->leader_epoch, m->partition_epoch, w->s->now);
    else if (m->leader == nd->id)
        replica_become_leader(nd->r, m->leader_epoch, m->partition_epoch, m->isr, m->n_isr, w->s->now);
    else
        replica_become_follower(nd->r, m->leader, m->leader_epoch, m->partition_epoch, w->s->now);
}

static void publish(world *w) {
    w->ctrl.version++;
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        if (nd->alive)
            sim_after(w->s, sim_range(&w->s->rng, 1, 80), apply_meta, nd, (void *)(uintptr_t)nd->incarnation);
    }
}

/* Fencing, unfencing and elections, as the controller's tick does. */
static void ctrl_tick(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    mstate *m = &w->ctrl;
    bool changed = false;
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        if (!nd->alive && !nd->fenced && w->s->now - nd->down_since >= w->session_ms) {
            nd->fenced = true;
            changed = true;
        } else if (nd->alive && nd->fenced && w->ctrl.registered[i] == nd->incarnation) {
            nd->fenced = false; /* it heartbeats again */
        }
    }
    if (changed || (m->leader >= 0 && w->nodes[m->leader - 1].fenced) || m->leader < 0) {
        int32_t keep[NODES], nk = 0;
        for (int32_t i = 0; i < m->n_isr; i++)
            if (!w->nodes[m->isr[i] - 1].fenced)
                keep[nk++] = m->isr[i];
        bool leader_ok = m->leader >= 0 && !w->nodes[m->leader - 1].fenced;
        int32_t next = leader_ok ? m->leader : nk > 0 ? keep[0] : -1;
        bool isr_changes = nk > 0 && nk != m->n_isr;
        if (next != m->leader || isr_changes) {
            if (next != m->leader) {
                m->leader = next;
                m->leader_epoch++;
                w->elections++;
            }
            if (isr_changes) {
                memcpy(m->isr, keep, (size_t)nk * sizeof *keep);
                m->n_isr = nk;
            }
            m->partition_epoch++;
            sim_trace(w->s, "ctrl: leader %d epoch %d isr n=%d [%d %d %d]", m->leader, m->leader_epoch,
                      m->n_isr, m->isr[0], m->n_isr > 1 ? m->isr[1] : 0, m->n_isr > 2 ? m->isr[2] : 0);
            publish(w);
        }
    }
    sim_after(w->s, 50, ctrl_tick, w, NULL);
}

typedef struct proposal {
    int32_t from;
    int32_t leader_epoch, partition_epoch;
    int32_t isr[NODES];
    int32_t n;
    uint64_t inc;
    int verdict; /* 0 committed, 1 stale epochs (the metadata is on its way), 2 refused for good */
} proposal;

static void proposal_answered(void *ctx, void *arg) {
    proposal *p = arg;
    world *w = ctx;
    node *nd = &w->nodes[p->from - 1];
    if (!w->ending && nd->alive && nd->incarnation == p->inc) {
        nd->proposing = false;
        /* As replication.c: only a refusal for good stops the HW counting
         * the proposed ISR; otherwise the metadata (or a resend) decides. */
        if (p->verdict == 2)
            replica_set_pending_isr(nd->r, NULL, 0);
    }
    free(p);
}

static void proposal_arrives(void *ctx, void *arg) {
    proposal *p = arg;
    world *w = ctx;
    mstate *m = &w->ctrl;
    if (w->ending) {
        free(p);
        return;
    }
    bool fresh = p->from == m->leader && p->leader_epoch == m->leader_epoch &&
                 p->partition_epoch == m->partition_epoch;
    bool eligible = false;
    for (int32_t i = 0; i < p->n; i++)
        eligible = eligible || p->isr[i] == p->from;
    for (int32_t i = 0; i < p->n; i++)
        eligible = eligible && !w->nodes[p->isr[i] - 1].fenced;
    p->verdict = !fresh ? 1 : !eligible ? 2 : 0;
    sim_trace(w->s, "proposal from %d (le %d pe %d) isr n=%d [%d %d %d]: verdict %d", p->from,
              p->leader_epoch, p->partition_epoch, p->n, p->isr[0], p->n > 1 ? p->isr[1] : 0,
              p->n > 2 ? p->isr[2] : 0, p->verdict);
    if (p->verdict == 0) {
        memcpy(m->isr, p->isr, (size_t)p->n * sizeof *p->isr);
        m->n_isr = p->n;
        m->partition_epoch++;
        publish(w);
    } else {
        w->refused++;
    }
    /* A lost answer: the leader hears nothing and sends the proposal again. */
    int64_t delay = sim_chance(&w->s->rng, w->loss) ? 500 : sim_range(&w->s->rng, 1, 50);
    if (delay == 500)
        p->verdict = 1;
    sim_after(w->s, delay, proposal_answered, w, p);
}

/* The leader proposes its committed ISR minus laggers plus a joiner, or
 * sends its undecided proposal again. */
static void propose(world *w, node *nd, int32_t joiner) {
    const replica_state *st = replica_get_state(nd->r);
    if (st->role != REPLICA_LEADER || nd->proposing)
        return;
    proposal *p = calloc(1, sizeof *p);
    p->from = nd->id;
    p->inc = nd->incarnation;
    p->leader_epoch = st->leader_epoch;
    p->partition_epoch = st->partition_epoch;
    if (st->n_pending > 0) {
        const int32_t *pend;
        p->n = replica_pending_isr(nd->r, &pend);
        memcpy(p->isr, pend, (size_t)p->n * sizeof *pend);
    } else {
        int32_t lag[NODES];
        int32_t nl = replica_lagging(nd->r, w->s->now, 1000, lag, NODES);
        for (int32_t i = 0; i < st->n_isr; i++) {
            bool drop = false;
            for (int32_t k = 0; k < nl; k++)
                drop = drop || lag[k] == st->isr[i];
            if (!drop)
                p->isr[p->n++] = st->isr[i];
        }
        bool add = joiner > 0 && !replica_in_isr(nd->r, joiner);
        if (add)
            p->isr[p->n++] = joiner;
        if (nl == 0 && !add) {
            free(p);
            return;
        }
        if (add)
            w->joins++;
        if (nl > 0)
            w->shrinks++;
        replica_set_pending_isr(nd->r, p->isr, p->n);
    }
    nd->proposing = true;
    sim_after(w->s, sim_range(&w->s->rng, 1, 50), proposal_arrives, w, p);
}

/* ---- replication -------------------------------------------------------------------------- */

typedef struct fetch_msg {
    int32_t from, to;
    uint64_t from_inc, to_inc;
    int32_t current_epoch;
    int64_t offset;
    int32_t last_epoch;
    /* the answer */
    int16_t err;
    bool diverged;
    int32_t div_epoch;
    int64_t div_end;
    int64_t hw;
    uint8_t *bytes;
    size_t len;
    int64_t deadline; /* the leader holds a fetch that finds nothing until then (a long poll) */
    uint64_t seq;
} fetch_msg;

static void follower_fetch(void *ctx, void *arg);

static void follower_takes(void *ctx, void *arg) {
    world *w = ctx;
    fetch_msg *f = arg;
    node *nd = &w->nodes[f->from - 1];
    if (!w->ending && nd->alive && nd->incarnation == f->from_inc) {
        const replica_state *st = replica_get_state(nd->r);
        sim_trace(w->s,
                  "node %d takes answer from %d: err=%d div=%d (%d,%lld) off=%lld leo=%lld len=%zu hw=%lld",
                  nd->id, f->to, f->err, f->diverged, f->div_epoch, (long long)f->div_end,
                  (long long)f->offset, (long long)st->leo, f->len, (long long)f->hw);
        if (st->role == REPLICA_FOLLOWER && st->leader_id == f->to && f->err == 0) {
            if (f->diverged) {
                int64_t at = replica_agreed_offset(nd->r, f->div_epoch, f->div_end);
                /* Also at the log end: the epoch cache loses the epochs the
                 * leader's log does not have (an epoch this node led without
                 * writing), or the next fetch would name one again. */
                if (at < st->leo) {
                    sim_trace(w->s, "node %d truncates %lld -> %lld", nd->id, (long long)st->leo,
                              (long long)at);
                    w->truncations++;
                }
                replica_truncate(nd->r, at);
            } else {
                if (f->len > 0 && f->offset == st->leo) {
                    replica_append_result ar;
                    int16_t e = replica_append_as_follower(nd->r, f->bytes, f->len, w->s->now, &ar);
                    SIM_CHECK(w->s, e == 0, "node %d: follower append at %lld failed: %s", nd->id,
                              (long long)f->offset, kafka_error_name(e));
                    w->appended++;
                }
                replica_follower_hw(nd->r, f->hw);
            }
        }
    }
    if (!w->ending && nd->alive && nd->incarnation == f->from_inc && f->seq == nd->fetch_seq)
        sim_after(w->s, sim_range(&w->s->rng, 0, 10), follower_fetch, nd, (void *)(uintptr_t)nd->incarnation);
    free(f->bytes);
    free(f);
}

static void leader_answers(void *ctx, void *arg) {
    world *w = ctx;
    fetch_msg *f = arg;
    node *ld = &w->nodes[f->to - 1];
    if (w->ending || !ld->alive) {
        free(f);
        return;
    }
    f->to_inc = ld->incarnation;
    int16_t err = replica_check_epoch(ld->r, f->current_epoch, true);
    bool join = false;
    if (err == 0) {
        f->diverged = replica_diverging(ld->r, f->last_epoch, f->offset, &f->div_epoch, &f->div_end);
        if (!f->diverged)
            err = replica_follower_fetch(ld->r, f->from, f->offset, w->s->now, &join);
    }
    if (err == 0 && !f->diverged) {
        plog_read_result res;
        err = replica_read(ld->r, f->offset, 1 << 20, true, false, &res);
        if (err == KAFKA_ERR_OFFSET_OUT_OF_RANGE)
            err = 0; /* past the end after a truncation here: nothing to send */
        if (err == 0 && res.n == 0 && w->s->now < f->deadline && !join) {
            /* Nothing new: held, as a long poll, and looked at again. */
            sim_after(w->s, sim_range(&w->s->rng, 1, 10), leader_answers, w, f);
            return;
        }
        if (err == 0) {
            size_t len = 0;
            for (int i = 0; i < res.n; i++)
                len += ld->b[res.r[i].pos].len;
            f->bytes = len ? malloc(len) : NULL;
            for (int i = 0; i < res.n; i++) {
                const mbatch *b = &ld->b[res.r[i].pos];
                memcpy(f->bytes + f->len, b->bytes, b->len);
                f->len += b->len;
            }
            /* The first batch may start before the offset (a follower
             * mid-batch cannot happen: it truncates to batch bounds). */
        }
    }
    replica_offsets o;
    replica_get_offsets(ld->r, &o);
    f->hw = o.hw;
    f->err = err;
    w->fetches++;
    if (join)
        propose(w, ld, f->from);
    if (sim_chance(&w->s->rng, w->loss)) {
        free(f->bytes);
        free(f);
        return;
    }
    sim_after(w->s, sim_range(&w->s->rng, 1, 30), follower_takes, w, f);
}

/* A fetch unanswered for 400 ms counts as lost: another goes. */
static void fetch_timeout(void *ctx, void *arg) {
    node *nd = ctx;
    if (nd->w->ending || !nd->alive || (uint64_t)(uintptr_t)arg != nd->fetch_seq)
        return;
    follower_fetch(nd, (void *)(uintptr_t)nd->incarnation);
}

/* The fetcher's loop: one fetch in flight, the next when it is answered
 * (follower_takes) or lost; a node that does not follow looks again later. */
static void follower_fetch(void *ctx, void *arg) {
    node *nd = ctx;
    world *w = nd->w;
    if (w->ending || !nd->alive || (uint64_t)(uintptr_t)arg != nd->incarnation)
        return;
    const replica_state *st = replica_get_state(nd->r);
    if (st->role != REPLICA_FOLLOWER || st->leader_id <= 0 || st->leader_id == nd->id) {
        sim_after(w->s, 50, follower_fetch, nd, (void *)(uintptr_t)nd->incarnation);
        return;
    }
    fetch_msg *f = calloc(1, sizeof *f);
    f->from = nd->id;
    f->to = st->leader_id;
    f->from_inc = nd->incarnation;
    f->current_epoch = st->leader_epoch;
    f->offset = st->leo;
    f->seq = ++nd->fetch_seq;
    const replica_epoch_entry *e;
    int ne = replica_epochs(nd->r, &e);
    f->last_epoch = ne > 0 ? e[ne - 1].epoch : -1;
    f->deadline = w->s->now + sim_range(&w->s->rng, 0, 200);
    if (sim_chance(&w->s->rng, w->loss))
        free(f);
    else
        sim_after(w->s, sim_range(&w->s->rng, 1, 30), leader_answers, w, f);
    sim_after(w->s, 400, fetch_timeout, nd, (void *)(uintptr_t)nd->fetch_seq);
}

static void lag_scan(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        if (nd->alive && replica_get_state(nd->r)->role == REPLICA_LEADER)
            propose(w, nd, -1);
    }
    sim_after(w->s, 200, lag_scan, w, NULL);
}

/* ---- producers -------------------------------------------------------------------------------- */

typedef struct pending_ack {
    int32_t node;
    uint64_t inc;
    int32_t epoch;
    int64_t base, last;
    int64_t id0;
} pending_ack;

static void ack_check(void *ctx, void *arg) {
    world *w = ctx;
    pending_ack *p = arg;
    node *nd = &w->nodes[p->node - 1];
    if (w->ending || !nd->alive || nd->incarnation != p->inc) {
        free(p);
        return;
    }
    const replica_state *st = replica_get_state(nd->r);
    if (st->role != REPLICA_LEADER || st->leader_epoch != p->epoch) {
        free(p); /* not acknowledged: the producer would retry */
        return;
    }
    if (st->hw > p->last) {
        sim_trace(w->s, "acked %lld-%lld by leader %d epoch %d (hw %lld)", (long long)p->base,
                  (long long)p->last, nd->id, p->epoch, (long long)st->hw);
        for (int64_t o = p->base; o <= p->last && w->n_acks < ACKED_MAX; o++)
            w->acks[w->n_acks++] = (acked){o, p->id0 + (o - p->base)};
        free(p);
        return;
    }
    sim_after(w->s, 10, ack_check, w, p);
}

static void produce(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending || !w->faults)
        return; /* producers stop with the faults: the replicas then converge */
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        if (!nd->alive || nd->n >= BATCHES_MAX - 10)
            continue;
        const replica_state *st = replica_get_state(nd->r);
        if (st->role != REPLICA_LEADER || st->n_isr < w->min_isr)
            continue;
        int n = (int)sim_range(&w->s->rng, 1, 4);
        arena a;
        arena_init(&a, 1 << 16);
        batch_build_record recs[4];
        int64_t id0 = (w->next_id += 8);
        for (int k = 0; k < n; k++)
            recs[k] = (batch_build_record){{NULL, -1}, {(const uint8_t *)"v", 1}, id0 + k, 0, NULL, 0};
        batch_build_opts o = batch_build_defaults();
        uint8_t *buf;
        size_t len;
        if (batch_build(&o, recs, n, &a, &buf, &len) == BATCH_OK) {
            replica_append_result ar;
            if (replica_append(nd->r, buf, len, w->s->now, &ar) == 0) {
                pending_ack *p = calloc(1, sizeof *p);
                *p = (pending_ack){nd->id,         nd->incarnation, st->leader_epoch,
                                   ar.base_offset, ar.last_offset,  id0};
                sim_after(w->s, 1, ack_check, w, p);
            }
        }
        arena_reset(&a);
    }
    sim_after(w->s, sim_range(&w->s->rng, 1, 40), produce, w, NULL);
}

/* ---- faults ---------------------------------------------------------------------------------- */

/* A restarted node's registration, as ctrl_register_broker handles it:
 * it leaves the ISR if another live member remains (and the leadership
 * moves), or, alone in sync, leads again in a new epoch. */
static void registers(void *ctx, void *arg) {
    node *nd = ctx;
    world *w = nd->w;
    mstate *m = &w->ctrl;
    if (w->ending || !nd->alive || (uint64_t)(uintptr_t)arg != nd->incarnation)
        return;
    m->registered[nd->id - 1] = nd->incarnation;
    nd->fenced = false;
    int32_t keep[NODES], nk = 0;
    bool member = false;
    for (int32_t i = 0; i < m->n_isr; i++) {
        if (m->isr[i] == nd->id)
            member = true;
        else if (!w->nodes[m->isr[i] - 1].fenced)
            keep[nk++] = m->isr[i];
    }
    if (member && nk > 0) {
        memcpy(m->isr, keep, (size_t)nk * sizeof *keep);
        m->n_isr = nk;
        if (m->leader == nd->id || m->leader < 0 || w->nodes[m->leader - 1].fenced) {
            m->leader = keep[0];
            m->leader_epoch++;
        }
    } else if (m->leader == nd->id) {
        m->leader_epoch++;
    }
    m->partition_epoch++;
    sim_trace(w->s, "node %d registers: leader %d epoch %d isr n=%d", nd->id, m->leader, m->leader_epoch,
              m->n_isr);
    publish(w);
}

static void restart(void *ctx, void *arg) {
    (void)arg;
    node *nd = ctx;
    world *w = nd->w;
    if (w->ending || nd->alive)
        return;
    start_replica(nd);
    sim_after(w->s, sim_range(&w->s->rng, 1, 80), apply_meta, nd, (void *)(uintptr_t)nd->incarnation);
    sim_after(w->s, sim_range(&w->s->rng, 1, 300), registers, nd, (void *)(uintptr_t)nd->incarnation);
    sim_after(w->s, 1, follower_fetch, nd, (void *)(uintptr_t)nd->incarnation);
}

static void fault(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending || !w->faults)
        return;
    node *nd = &w->nodes[sim_below(&w->s->rng, NODES)];
    int alive = 0;
    for (int i = 0; i < NODES; i++)
        alive += w->nodes[i].alive;
    if (nd->alive && alive > 1) {
        sim_trace(w->s, "node %d crashes (leo %lld)", nd->id, (long long)nd->end);
        replica_destroy(nd->r);
        nd->r = NULL;
        nd->alive = false;
        nd->down_since = w->s->now;
        w->crashes++;
        sim_after(w->s, sim_range(&w->s->rng, 100, 3000), restart, nd, NULL);
    }
    sim_after(w->s, sim_range(&w->s->rng, 300, 4000), fault, w, NULL);
}

/* ---- invariants ----------------------------------------------------------------------------------- */

/* The id of the record at offset in nd's log, or -1. */
static int64_t id_at(const node *nd, int64_t offset) {
    int lo = 0, hi = nd->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const mbatch *b = &nd->b[mid];
        if (offset < b->base)
            hi = mid - 1;
        else if (offset > b->last)
            lo = mid + 1;
        else
            return first_id(b) + (offset - b->base);
    }
    return -1;
}

static void check_acked(world *w) {
    const mstate *m = &w->ctrl;
    for (int32_t k = 0; k < m->n_isr && !w->s->failed; k++) {
        const node *nd = &w->nodes[m->isr[k] - 1];
        for (int i = 0; i < w->n_acks; i++) {
            int64_t got = id_at(nd, w->acks[i].offset);
            if (got != w->acks[i].id) {
                sim_fail(w->s, "acknowledged record %lld at offset %lld is %s on node %d (an ISR member)",
                         (long long)w->acks[i].id, (long long)w->acks[i].offset,
                         got < 0 ? "missing" : "another record", nd->id);
                return;
            }
        }
    }
}

static void check_matching(world *w) {
    for (int a = 0; a < NODES; a++)
        for (int b = a + 1; b < NODES; b++) {
            const node *x = &w->nodes[a], *y = &w->nodes[b];
            int i = 0, j = 0;
            while (i < x->n && j < y->n) {
                const mbatch *p = &x->b[i], *q = &y->b[j];
                if (p->base < q->base) {
                    i++;
                } else if (q->base < p->base) {
                    j++;
                } else {
                    if (p->epoch == q->epoch)
                        SIM_CHECK(w->s, p->last == q->last && first_id(p) == first_id(q),
                                  "nodes %d and %d hold different batches of epoch %d at offset %lld", x->id,
                                  y->id, p->epoch, (long long)p->base);
                    i++;
                    j++;
                }
            }
        }
}

static void check(sim *s, void *ctx) {
    world *w = ctx;
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        if (!nd->alive)
            continue;
        const replica_state *st = replica_get_state(nd->r);
        SIM_CHECK(s, st->hw <= st->leo, "node %d: HW %lld past its log end %lld", nd->id, (long long)st->hw,
                  (long long)st->leo);
        if (st->role == REPLICA_LEADER)
            for (int32_t k = 0; k < st->n_isr; k++) {
                const node *m = &w->nodes[st->isr[k] - 1];
                SIM_CHECK(s, st->hw <= m->end, "leader %d: HW %lld past ISR member %d's log end %lld", nd->id,
                          (long long)st->hw, m->id, (long long)m->end);
            }
    }
    if (s->steps % 256 == 0) {
        check_acked(w);
        check_matching(w);
    }
}

static bool converged(world *w) {
    const node *a = &w->nodes[0];
    if (w->ctrl.n_isr != NODES || w->ctrl.leader < 0)
        return false;
    for (int i = 0; i < NODES; i++) {
        const node *nd = &w->nodes[i];
        if (!nd->alive || nd->n != a->n || nd->end != a->end)
            return false;
        for (int k = 0; k < nd->n; k++)
            if (nd->b[k].len != a->b[k].len || memcmp(nd->b[k].bytes, a->b[k].bytes, a->b[k].len) != 0)
                return false;
    }
    return true;
}

static void stop_faults(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    w->faults = false;
    w->loss = 0;
    for (int i = 0; i < NODES; i++)
        if (!w->nodes[i].alive)
            restart(&w->nodes[i], NULL);
}

static bool run(sim *s) {
    world *w = calloc(1, sizeof *w);
    w->s = s;
    w->min_isr = (int32_t)sim_range(&s->rng, 1, 2);
    w->session_ms = sim_range(&s->rng, 100, 1500);
    w->loss = (uint32_t)sim_range(&s->rng, 0, 50000);
    w->faults = true;
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        nd->w = w;
        nd->id = i + 1;
        start_replica(nd);
    }
    /* The partition starts led by node 1 with the leader alone in sync. */
    w->ctrl = (mstate){1, 0, 0, {1}, 1, 0, {0}};
    for (int i = 0; i < NODES; i++)
        w->ctrl.registered[i] = w->nodes[i].incarnation;
    publish(w);
    for (int i = 0; i < NODES; i++)
        sim_after(s, 1, follower_fetch, &w->nodes[i], (void *)(uintptr_t)w->nodes[i].incarnation);
    s->check = check;
    s->check_ctx = w;
    sim_after(s, 1, ctrl_tick, w, NULL);
    sim_after(s, 1, lag_scan, w, NULL);
    int producers = (int)sim_range(&s->rng, 1, 3);
    for (int i = 0; i < producers; i++)
        sim_after(s, sim_range(&s->rng, 1, 50), produce, w, NULL);
    sim_after(s, sim_range(&s->rng, 200, 2000), fault, w, NULL);
    int64_t end = sim_range(&s->rng, 8000, 30000);
    sim_at(s, end, stop_faults, w, NULL);
    bool ok = sim_run(s, end);
    /* Healing: within 10 s every node is back in the ISR, logs identical. */
    int64_t heal_by = end + 10000;
    while (ok && !converged(w) && s->now < heal_by)
        ok = sim_run(s, s->now + 100);
    if (ok) {
        check_acked(w);
        check_matching(w);
        for (int i = 0; i < NODES && !converged(w); i++) {
            const node *nd = &w->nodes[i];
            const replica_state *st = nd->alive ? replica_get_state(nd->r) : NULL;
            fprintf(stderr,
                    "node %d alive=%d fenced=%d role=%d leader=%d epoch=%d pe=%d leo=%lld hw=%lld isr=%d "
                    "pending=%d proposing=%d\n",
                    nd->id, nd->alive, nd->fenced, st ? (int)st->role : -1, st ? st->leader_id : -1,
                    st ? st->leader_epoch : -1, st ? st->partition_epoch : -1, (long long)nd->end,
                    st ? (long long)st->hw : -1LL, st ? st->n_isr : -1, st ? st->n_pending : -1,
                    nd->proposing);
        }
        if (!converged(w))
            fprintf(stderr, "ctrl leader=%d epoch=%d pe=%d isr=%d\n", w->ctrl.leader, w->ctrl.leader_epoch,
                    w->ctrl.partition_epoch, w->ctrl.n_isr);
        SIM_CHECK(s, converged(w), "not healed 10 s after the faults stopped (ISR of %d, leader %d)",
                  w->ctrl.n_isr, w->ctrl.leader);
        SIM_CHECK(s, w->n_acks > 0, "no record was ever acknowledged");
    }
    ok = !s->failed;
    sim_trace(s,
              "acked=%d fetches=%llu appended=%llu truncations=%llu joins=%llu shrinks=%llu elections=%llu "
              "crashes=%llu refused=%llu",
              w->n_acks, (unsigned long long)w->fetches, (unsigned long long)w->appended,
              (unsigned long long)w->truncations, (unsigned long long)w->joins,
              (unsigned long long)w->shrinks, (unsigned long long)w->elections,
              (unsigned long long)w->crashes, (unsigned long long)w->refused);
    s->check = NULL;
    w->ending = true;
    s->failed = false;
    sim_run(s, INT64_MAX);
    s->failed = !ok;
    for (int i = 0; i < NODES; i++) {
        node *nd = &w->nodes[i];
        replica_destroy(nd->r);
        for (int k = 0; k < nd->n; k++)
            free(nd->b[k].bytes);
    }
    free(w);
    return ok;
}

const sim_scenario sim_scenario_replication = {
    "replication",
    "one partition on 3 replicas: follower fetches, ISR joins and shrinks through a model controller, "
    "acks=all "
    "producers, crashes, lost messages",
    run,
};
