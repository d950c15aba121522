/*
 * scenario_txn.c - the transaction coordinator (src/txn/coordinator.c)
 * driven as the broker drives it (src/broker/txns.c, txn_markers.c), under
 * coordinator crashes, lost responses, failing and slow marker deliveries,
 * and producers that are fenced and replaced.
 *
 * The world: one coordinator machine over a simulated log of its
 * `__transaction_state` partition, whose appends become durable (in the
 * ISR) 0-40 ms later; 2-5 data partitions, each a log of producers' data
 * and markers; 1-3 producers, each a transactional id running
 * transactions of 1-3 partitions that it commits or aborts at random. As in
 * the broker:
 *   - a request that changed the machine is answered only once the log is
 *     durable up to its append (a crash before loses the answer: the
 *     producer times out and sends it again);
 *   - markers go out only when the whole log is durable; each partition's
 *     marker is delivered asynchronously (1-40 ms; some deliveries fail,
 *     some fail after writing the marker - an ambiguous answer), remembered
 *     per (producer, epoch, outcome, partition, coordinator epoch) until
 *     every marker of the transaction is delivered, and each delivery calls
 *     tcoord_markers_progress;
 *   - a crash keeps the durable log and a random part of the rest, loses
 *     the marker table and every answer not yet sent, and the machine is
 *     rebuilt from the log at the next coordinator epoch after 50-1000 ms
 *     (requests meanwhile: NOT_COORDINATOR).
 * A producer writes a transaction's data only after AddPartitionsToTxn
 * was answered 0; any fencing error replaces it with a new instance
 * (InitProducerId again, which bumps the epoch and aborts what was open),
 * and so does, now and then, an EndTxn that got no answer.
 * The last quarter of a run has no faults, and producers stop starting
 * transactions.
 *
 * Invariants:
 *   - a marker closes the producer's open data on its partition; every
 *     transaction's data is closed with one outcome everywhere (never
 *     COMMIT on one partition and ABORT on another);
 *   - a transaction whose EndTxn(commit) was answered 0 is never aborted
 *     anywhere, and one whose EndTxn(abort) was answered 0 never committed;
 *   - at the end: every transaction's data is closed (with the outcome its
 *     producer was told, when it was told), and no id is left in
 *     PrepareCommit / PrepareAbort.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "sim.h"
#include "txn/coordinator.h"

#define LOG_MAX       20000
#define PARTS_MAX     5
#define PRODUCERS_MAX 3
#define DATA_MAX      20000
#define TXNS_MAX      4000
#define MARKERS_MAX   256
#define REQ_TIMEOUT   500

typedef struct crec {
    uint8_t *key, *val;
    int32_t klen, vlen;
} crec;

typedef enum outcome { O_NONE = 0, O_COMMIT, O_ABORT } outcome;

typedef struct txn_model {
    int producer;
    int64_t pid;
    int16_t epoch;
    bool parts[PARTS_MAX];
    outcome decided; /* what a marker closed it with */
    outcome told;    /* what EndTxn answered 0 for */
} txn_model;

/* Open data of a producer id on a partition: the transactions it belongs to. */
typedef struct open_data {
    int64_t pid;
    int txn;
} open_data;

typedef struct mark {
    bool used;
    int state; /* 1 in flight, 2 delivered, 3 failed */
    int64_t pid;
    int16_t epoch;
    bool commit;
    int part;
    int32_t coord_epoch;
    char txn_id[16];
    uint64_t gen; /* the marker table's generation: a crash starts a new one */
} mark;

typedef enum pstate_e { P_INIT, P_IDLE, P_ADD, P_END, P_DONE } pstate_e;

typedef struct producer {
    int idx;
    char id[16];
    pstate_e st;
    int64_t pid;
    int16_t epoch;
    int txn;      /* the current transaction (model index), -1 none */
    bool commit;  /* EndTxn's outcome */
    uint64_t req; /* the request in flight (0 none): its answer must match */
    int instance;
} producer;

typedef struct answer {
    bool used;
    int producer;
    uint64_t req;
    int64_t need; /* log length that must be durable */
    int16_t err;
    int64_t pid;
    int16_t epoch;
} answer;

typedef struct world {
    sim *s;
    tcoord *c;
    tcoord_config cfg;
    bool up;
    int32_t coord_epoch;
    crec log[LOG_MAX];
    int64_t n, dur;
    bool sync_durable;
    int n_parts, n_prod;
    open_data open[PARTS_MAX][DATA_MAX / PARTS_MAX];
    int n_open[PARTS_MAX];
    txn_model txns[TXNS_MAX];
    int n_txns;
    mark marks[MARKERS_MAX];
    uint64_t mark_gen;
    producer prod[PRODUCERS_MAX];
    answer answers[64];
    uint64_t next_req;
    int64_t next_pid;
    int64_t end_faults, end;
    int crashes;
    uint32_t fail_per_million;
} world;

static world W;

static const char *const TOPIC = "t";

/* ---- the coordinator's sink -------------------------------------------------- */

static int16_t s_append(void *ctx, kbytes key, kbytes value) {
    world *w = ctx;
    if (w->n >= LOG_MAX)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    if (sim_chance(&w->s->rng, w->fail_per_million))
        return KAFKA_ERR_NOT_ENOUGH_REPLICAS;
    crec *r = &w->log[w->n];
    r->key = malloc((size_t)key.len);
    memcpy(r->key, key.ptr, (size_t)key.len);
    r->klen = key.len;
    r->vlen = value.len;
    r->val = NULL;
    if (value.len >= 0) {
        r->val = malloc((size_t)value.len + 1);
        memcpy(r->val, value.ptr, (size_t)value.len);
    }
    w->n++;
    if (w->sync_durable)
        w->dur = w->n;
    return 0;
}

static int16_t s_pid(void *ctx, int64_t *pid) {
    world *w = ctx;
    *pid = w->next_pid++;
    return 0;
}

static void progress_ev(void *ctx, void *arg);

/* The owner's txn_markers_deliver and forget, over the simulated network. */
static void deliver_ev(void *ctx, void *arg) {
    world *w = ctx;
    mark *m = &w->marks[(intptr_t)arg];
    (void)m;
    mark copy = w->marks[(intptr_t)arg];
    if (!copy.used || copy.state != 1)
        return;
    /* The leader's answer: it may fail before or after writing the marker. */
    int r = (int)sim_below(&w->s->rng, 100);
    bool written = r >= 8;
    bool ok = r >= 15;
    if (written) {
        int p = copy.part;
        for (int i = 0; i < w->n_open[p];) {
            open_data *o = &w->open[p][i];
            if (o->pid != copy.pid) {
                i++;
                continue;
            }
            txn_model *t = &w->txns[o->txn];
            outcome got = copy.commit ? O_COMMIT : O_ABORT;
            SIM_CHECK(w->s, t->decided == O_NONE || t->decided == got,
                      "transaction %d (producer %lld) closed with %s on partition %d after %s elsewhere",
                      o->txn, (long long)copy.pid, got == O_COMMIT ? "COMMIT" : "ABORT", p,
                      t->decided == O_COMMIT ? "COMMIT" : "ABORT");
            SIM_CHECK(w->s, t->told == O_NONE || t->told == got,
                      "transaction %d: its producer was told %s, partition %d got %s", o->txn,
                      t->told == O_COMMIT ? "commit" : "abort", p, got == O_COMMIT ? "COMMIT" : "ABORT");
            t->decided = got;
            w->open[p][i] = w->open[p][--w->n_open[p]];
        }
    }
    m = &w->marks[(intptr_t)arg];
    if (m->used && m->gen == copy.gen && m->state == 1) {
        m->state = ok ? 2 : 3;
        if (ok)
            sim_after(w->s, 0, progress_ev, w, (void *)(intptr_t)(copy.txn_id[1] - '0'));
    }
}

static int16_t s_markers(void *ctx, kstr txn_id, int64_t pid, int16_t epoch, bool commit,
                         const trec_tp *parts, int32_t n) {
    world *w = ctx;
    if (w->dur < w->n)
        return KAFKA_ERR_CONCURRENT_TRANSACTIONS; /* the Prepare record is not durable yet */
    bool all = true;
    for (int32_t i = 0; i < n; i++) {
        int part = parts[i].partition;
        int free_slot = -1, at = -1;
        for (int k = 0; k < MARKERS_MAX && at < 0; k++) {
            mark *m = &w->marks[k];
            if (!m->used) {
                if (free_slot < 0)
                    free_slot = k;
            } else if (m->pid == pid && m->epoch == epoch && m->commit == commit && m->part == part &&
                       m->coord_epoch == w->coord_epoch) {
                at = k;
            }
        }
        if (at < 0) {
            if (free_slot < 0)
                return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
            at = free_slot;
            mark *m = &w->marks[at];
            *m = (mark){true, 3, pid, epoch, commit, part, w->coord_epoch, {0}, w->mark_gen};
            snprintf(m->txn_id, sizeof m->txn_id, "%.*s", txn_id.len, txn_id.ptr);
        }
        mark *m = &w->marks[at];
        if (m->state == 2)
            continue;
        all = false;
        if (m->state == 3) {
            m->state = 1;
            sim_after(w->s, sim_range(&w->s->rng, 1, 40), deliver_ev, w, (void *)(intptr_t)at);
        }
    }
    if (!all)
        return KAFKA_ERR_CONCURRENT_TRANSACTIONS;
    for (int k = 0; k < MARKERS_MAX; k++) {
        mark *m = &w->marks[k];
        if (m->used && m->pid == pid && m->epoch == epoch && m->commit == commit)
            m->used = false;
    }
    return 0;
}

static void progress_ev(void *ctx, void *arg) {
    world *w = ctx;
    int idx = (int)(intptr_t)arg;
    if (!w->up || idx < 0 || idx >= w->n_prod)
        return;
    tcoord_markers_progress(w->c, kstr_c(w->prod[idx].id), w->s->now);
}

/* ---- the coordinator's life ---------------------------------------------------- */

static void coordinator_start(world *w) {
    tcoord_sink sink = {w, s_append, s_markers, s_pid};
    w->c = tcoord_create(&w->cfg, &sink);
    assert(w->c != NULL);
    w->coord_epoch++;
    tcoord_load_begin(w->c, w->coord_epoch, w->s->now);
    for (int64_t i = 0; i < w->n; i++)
        (void)tcoord_load_record(w->c, (kbytes){w->log[i].key, w->log[i].klen},
                                 (kbytes){w->log[i].val, w->log[i].vlen});
    tcoord_load_end(w->c, w->s->now);
    w->up = true;
}

static void restart_ev(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    coordinator_start(w);
}

static void crash(world *w) {
    if (!w->up)
        return;
    tcoord_destroy(w->c);
    w->c = NULL;
    w->up = false;
    w->crashes++;
    int64_t keep = w->dur + (int64_t)sim_below(&w->s->rng, (uint64_t)(w->n - w->dur + 1));
    for (int64_t i = keep; i < w->n; i++) {
        free(w->log[i].key);
        free(w->log[i].val);
    }
    w->n = w->dur = keep;
    memset(w->marks, 0, sizeof w->marks);
    w->mark_gen++;
    memset(w->answers, 0, sizeof w->answers);
    sim_after(w->s, sim_range(&w->s->rng, 50, 1000), restart_ev, w, NULL);
}

/* ---- producers ---------------------------------------------------------------- */

static void producer_act(void *ctx, void *arg);

static void schedule(world *w, producer *p, int64_t delay) {
    sim_after(w->s, delay, producer_act, w, (void *)(intptr_t)p->idx);
}

/* The request's answer, once the log is durable up to where it was. */
static void answer_later(world *w, producer *p, int16_t err, int64_t pid, int16_t epoch) {
    for (int i = 0; i < 64; i++)
        if (!w->answers[i].used) {
            w->answers[i] = (answer){true, p->idx, p->req, w->n, err, pid, epoch};
            return;
        }
    /* No room: the answer is lost; the producer times out. */
}

static void timeout_ev(void *ctx, void *arg);

static void fenced(world *w, producer *p) {
    p->instance++;
    p->st = P_INIT;
    p->txn = -1;
    p->req = 0;
    schedule(w, p, sim_range(&w->s->rng, 10, 200));
}

static void on_answer(world *w, producer *p, int16_t err, int64_t pid, int16_t epoch) {
    p->req = 0;
    bool retry = err == KAFKA_ERR_CONCURRENT_TRANSACTIONS || err == KAFKA_ERR_NOT_COORDINATOR ||
                 err == KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS || err == KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (retry) {
        schedule(w, p, sim_range(&w->s->rng, 5, 100));
        return;
    }
    switch (p->st) {
    case P_INIT:
        if (err == 0) {
            p->pid = pid;
            p->epoch = epoch;
            p->st = P_IDLE;
        }
        break;
    case P_ADD:
        if (err == 0) {
            /* The data goes to the partitions now. */
            txn_model *t = &w->txns[p->txn];
            for (int q = 0; q < w->n_parts; q++)
                if (t->parts[q] && w->n_open[q] < DATA_MAX / PARTS_MAX)
                    w->open[q][w->n_open[q]++] = (open_data){p->pid, p->txn};
            p->st = P_END;
        } else {
            fenced(w, p);
            return;
        }
        break;
    case P_END:
        if (err == 0) {
            txn_model *t = &w->txns[p->txn];
            t->told = p->commit ? O_COMMIT : O_ABORT;
            SIM_CHECK(w->s, t->decided == O_NONE || t->decided == t->told,
                      "transaction %d: EndTxn(%s) answered 0 after a marker closed it otherwise", p->txn,
                      p->commit ? "commit" : "abort");
            p->txn = -1;
            p->st = P_IDLE;
        } else {
            fenced(w, p);
            return;
        }
        break;
    default:
        break;
    }
    if (err != 0 && p->st == P_INIT) {
        schedule(w, p, sim_range(&w->s->rng, 10, 200));
        return;
    }
    schedule(w, p, sim_range(&w->s->rng, 0, 50));
}

static void send(world *w, producer *p) {
    p->req = ++w->next_req;
    sim_after(w->s, REQ_TIMEOUT, timeout_ev, w, (void *)(uintptr_t)((p->req << 3) | (uint64_t)p->idx));
    if (!w->up) {
        answer_later(w, p, KAFKA_ERR_NOT_COORDINATOR, -1, -1);
        return;
    }
    int64_t now = w->s->now;
    kstr id = kstr_c(p->id);
    int16_t err = 0;
    int64_t pid = -1;
    int16_t epoch = -1;
    switch (p->st) {
    case P_INIT:
        err = tcoord_init_producer(w->c, id, 10000, -1, -1, now, &pid, &epoch);
        break;
    case P_ADD: {
        txn_model *t = &w->txns[p->txn];
        trec_tp tps[PARTS_MAX];
        int32_t k = 0;
        for (int q = 0; q < w->n_parts; q++)
            if (t->parts[q])
                tps[k++] = (trec_tp){kstr_c(TOPIC), q};
        err = tcoord_add_partitions(w->c, id, p->pid, p->epoch, tps, k, now);
        break;
    }
    case P_END:
        err = tcoord_end_txn(w->c, id, p->pid, p->epoch, p->commit, now);
        break;
    default:
        break;
    }
    answer_later(w, p, err, pid, epoch);
}

static void timeout_ev(void *ctx, void *arg) {
    world *w = ctx;
    uint64_t v = (uint64_t)(uintptr_t)arg;
    producer *p = &w->prod[v & 7];
    if (p->req != (v >> 3))
        return; /* answered */
    p->req = 0;
    /* The same request again, or (an application that gives up and
     * restarts) a new instance, which aborts what the old one had open. */
    if (p->st == P_END && sim_chance(&w->s->rng, 300000))
        fenced(w, p);
    else
        send(w, p);
}

static void producer_act(void *ctx, void *arg) {
    world *w = ctx;
    producer *p = &w->prod[(intptr_t)arg];
    if (p->req != 0 || p->st == P_DONE)
        return;
    if (p->st == P_IDLE) {
        if (w->s->now >= w->end_faults || w->n_txns >= TXNS_MAX) {
            p->st = P_DONE;
            return;
        }
        txn_model *t = &w->txns[w->n_txns];
        memset(t, 0, sizeof *t);
        t->producer = p->idx;
        t->pid = p->pid;
        t->epoch = p->epoch;
        int k = (int)sim_range(&w->s->rng, 1, w->n_parts < 3 ? w->n_parts : 3);
        for (int i = 0; i < k; i++)
            t->parts[sim_below(&w->s->rng, (uint64_t)w->n_parts)] = true;
        p->txn = w->n_txns++;
        p->commit = sim_chance(&w->s->rng, 700000);
        p->st = P_ADD;
    }
    send(w, p);
}

/* ---- the driver: answers, ticks, durability, faults ------------------------------ */

static void drive(world *w) {
    for (int i = 0; i < 64; i++) {
        answer *a = &w->answers[i];
        if (!a->used || a->need > w->dur)
            continue;
        a->used = false;
        producer *p = &w->prod[a->producer];
        if (p->req == a->req)
            on_answer(w, p, a->err, a->pid, a->epoch);
    }
}

static void durable_ev(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    w->dur = w->n;
    if (w->up)
        tcoord_tick(w->c, w->s->now); /* markers that waited for it */
    if (w->s->now < w->end + 1000)
        sim_after(w->s, sim_range(&w->s->rng, 0, 40), durable_ev, w, NULL);
}

static void tick_ev(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->up)
        tcoord_tick(w->c, w->s->now);
    if (w->s->now < w->end + 1000)
        sim_after(w->s, 50, tick_ev, w, NULL);
}

static void fault_ev(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->s->now >= w->end_faults)
        return;
    if (w->crashes < 6 && sim_chance(&w->s->rng, 300000))
        crash(w);
    sim_after(w->s, sim_range(&w->s->rng, 200, 3000), fault_ev, w, NULL);
}

static void drive_ev(void *ctx, void *arg) {
    (void)arg;
    drive(ctx);
}

static void check(sim *s, void *ctx) {
    world *w = ctx;
    (void)s;
    drive(w);
}

static bool each_not_prepared(void *ctx, const tcoord_info *i) {
    world *w = ctx;
    SIM_CHECK(w->s, i->state != TREC_PREPARE_COMMIT && i->state != TREC_PREPARE_ABORT,
              "at the end, transactional id %.*s is still in %s", i->txn_id.len, i->txn_id.ptr,
              i->state == TREC_PREPARE_COMMIT ? "PrepareCommit" : "PrepareAbort");
    return true;
}

static bool run(sim *s) {
    world *w = &W;
    memset(w, 0, sizeof *w);
    w->s = s;
    tcoord_config_default(&w->cfg);
    w->cfg.abort_check_interval_ms = 1000;
    w->cfg.max_timeout_ms = 60000;
    w->n_parts = (int)sim_range(&s->rng, 2, PARTS_MAX);
    w->n_prod = (int)sim_range(&s->rng, 1, PRODUCERS_MAX);
    w->sync_durable = sim_chance(&s->rng, 200000);
    w->fail_per_million = sim_chance(&s->rng, 500000) ? (uint32_t)sim_range(&s->rng, 0, 40000) : 0;
    w->next_pid = 1000;
    int64_t len = sim_range(&s->rng, 20000, 90000);
    w->end_faults = len * 3 / 4;
    w->end = len;
    coordinator_start(w);
    for (int i = 0; i < w->n_prod; i++) {
        producer *p = &w->prod[i];
        p->idx = i;
        snprintf(p->id, sizeof p->id, "p%d", i);
        p->st = P_INIT;
        p->txn = -1;
        schedule(w, p, sim_range(&s->rng, 0, 100));
    }
    sim_after(s, 0, durable_ev, w, NULL);
    sim_after(s, 50, tick_ev, w, NULL);
    sim_after(s, sim_range(&s->rng, 200, 3000), fault_ev, w, NULL);
    sim_after(s, 0, drive_ev, w, NULL);
    s->check = check;
    s->check_ctx = w;
    /* The quiet end: the last transactions finish, timed-out ones are
     * aborted (10 s timeout, checked every second). */
    bool ok = sim_run(s, len + 25000);
    if (ok && !s->failed) {
        SIM_CHECK(s, w->up, "the coordinator is down at the end");
        if (w->up)
            tcoord_each(w->c, each_not_prepared, w);
        for (int q = 0; q < w->n_parts && !s->failed; q++)
            SIM_CHECK(s, w->n_open[q] == 0, "at the end, partition %d has %d open data of transaction %d", q,
                      w->n_open[q], w->n_open[q] ? w->open[q][0].txn : -1);
        for (int t = 0; t < w->n_txns && !s->failed; t++) {
            txn_model *m = &w->txns[t];
            SIM_CHECK(s, m->told == O_NONE || m->decided == O_NONE || m->told == m->decided,
                      "transaction %d told %d decided %d", t, m->told, m->decided);
            SIM_CHECK(s, m->told != O_COMMIT || m->decided == O_COMMIT,
                      "transaction %d: its commit was acknowledged and no partition got its COMMIT", t);
        }
    }
    int told_c = 0, told_a = 0, dec_c = 0, dec_a = 0;
    for (int t = 0; t < w->n_txns; t++) {
        told_c += w->txns[t].told == O_COMMIT;
        told_a += w->txns[t].told == O_ABORT;
        dec_c += w->txns[t].decided == O_COMMIT;
        dec_a += w->txns[t].decided == O_ABORT;
    }
    sim_trace(
        s,
        "txn: %d transactions (told %d commit, %d abort; closed %d commit, %d abort), %d crashes, log %lld",
        w->n_txns, told_c, told_a, dec_c, dec_a, w->crashes, (long long)w->n);
    if (w->c)
        tcoord_destroy(w->c);
    for (int64_t i = 0; i < w->n; i++) {
        free(w->log[i].key);
        free(w->log[i].val);
    }
    return !s->failed;
}

const sim_scenario sim_scenario_txn = {
    "txn",
    "the transaction coordinator: durability of its answers, markers, crashes, "
    "fencing",
    run};
