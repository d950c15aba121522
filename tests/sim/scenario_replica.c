/*
 * scenario_replica.c - a partition's replica state machine and the
 * purgatory under producers, long-polling consumers, disconnects, leader
 * epoch changes, DeleteRecords and replica restarts.
 *
 * The world: one replica (leader of one partition) over an in-memory log
 * port that keeps every batch and the id of every record; a purgatory that
 * parks consumer fetches waiting for data; producers appending batches of
 * 1-5 records; consumers fetching from their position with a random
 * max_wait and min_bytes (in records), some of which disconnect while
 * parked; now and then a new leader epoch, a DeleteRecords up to a random
 * offset, or a restart of the replica (rebuilt from the log and its saved
 * leader-epoch checkpoint). The owner's driver takes ready operations from
 * the purgatory after every event, as the broker's driver thread does.
 *
 * Invariants, after every step:
 *   - a consumer gets records only below the high watermark, in order, with
 *     no gap and no repeat from its position, each with the id its producer
 *     wrote at that offset;
 *   - no parked fetch can be satisfied (a fetch is answered in the step that
 *     made data available), and none outlives its deadline;
 *   - a cancelled (disconnected) fetch is never answered;
 *   - the purgatory holds exactly the parked fetches;
 *   - HW <= LEO, and the HW never goes down;
 *   - OffsetForLeaderEpoch agrees with a model of which epoch wrote which
 *     offsets, across restarts.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"
#include "replica/purgatory.h"
#include "replica/replica.h"
#include "sim.h"

#define BATCHES_MAX   4096
#define RECORDS_MAX   (BATCHES_MAX * 5)
#define CONSUMERS_MAX 8
#define EPOCHS_MAX    64

typedef struct mbatch {
    int64_t base, last;
    int32_t epoch;
} mbatch;

typedef struct consumer {
    int idx;
    int64_t pos;
    bool parked, connected;
    purg_op op;
    int64_t deadline;
    int32_t min_records;
    uint64_t gen; /* bumped on disconnect */
} consumer;

typedef struct world {
    sim *s;
    /* the log */
    mbatch batches[BATCHES_MAX];
    int n_batches;
    int64_t start, end;
    uint64_t ids[RECORDS_MAX]; /* id of the record at each offset */
    replica_epoch_entry saved[REPLICA_EPOCHS_MAX];
    int n_saved;
    /* model of epochs: epoch -> first offset written in it */
    int32_t m_epoch[EPOCHS_MAX];
    int64_t m_start[EPOCHS_MAX];
    int n_m;
    int32_t epoch;
    replica *r;
    purgatory *pg;
    consumer cons[CONSUMERS_MAX];
    int n_cons;
    int64_t last_hw;
    uint64_t next_id;
    bool ending;
    uint64_t delivered, parked, woken, expired, cancelled, restarts;
} world;

/* ---- the port ---------------------------------------------------------------------- */

static int16_t p_append(void *ctx, uint8_t *buf, size_t len, bool as_leader, int32_t epoch, int64_t now,
                        plog_append_info *info) {
    (void)now;
    world *w = ctx;
    if (!as_leader)
        return KAFKA_ERR_INVALID_REQUEST;
    batch_cursor cur;
    batch_cursor_init(&cur, buf, len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    int64_t first = w->end;
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        if (w->n_batches == BATCHES_MAX || w->end + h.last_offset_delta + 1 > RECORDS_MAX)
            return KAFKA_ERR_KAFKA_STORAGE_ERROR;
        w->batches[w->n_batches++] = (mbatch){w->end, w->end + h.last_offset_delta, epoch};
        /* The record ids ride in the base timestamp (set by the producer). */
        for (int32_t k = 0; k <= h.last_offset_delta; k++)
            w->ids[w->end + k] = (uint64_t)h.base_timestamp + (uint64_t)k;
        w->end += h.last_offset_delta + 1;
    }
    memset(info, 0, sizeof *info);
    info->base_offset = first;
    info->last_offset = w->end - 1;
    info->log_append_time = -1;
    info->log_start_offset = w->start;
    info->batches = 1;
    info->records = w->end - first;
    return 0;
}

static int16_t p_truncate(void *ctx, int64_t offset) {
    (void)ctx;
    (void)offset;
    return KAFKA_ERR_INVALID_REQUEST; /* a leader never truncates */
}

static int16_t p_read(void *ctx, int64_t offset, int64_t max_bytes, int64_t max_offset,
                      plog_read_result *res) {
    (void)max_bytes;
    world *w = ctx;
    memset(res, 0, sizeof *res);
    if (offset < w->start || offset > w->end)
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    for (int i = 0; i < w->n_batches && res->n < PLOG_MAX_RANGES; i++) {
        const mbatch *b = &w->batches[i];
        if (b->last < offset || b->last < w->start)
            continue;
        if (max_offset >= 0 && b->last >= max_offset)
            break;
        res->r[res->n++] = (plog_range){NULL, -1, i, b->last - b->base + 1};
        res->bytes += b->last - b->base + 1;
    }
    res->log_end_offset = w->end;
    res->log_start_offset = w->start;
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
    world *w = ctx;
    if (offset > w->start)
        w->start = offset;
    *low = w->start;
    return 0;
}

static void p_offsets(void *ctx, int64_t *start, int64_t *end) {
    world *w = ctx;
    *start = w->start;
    *end = w->end;
}

static int16_t p_save(void *ctx, const replica_epoch_entry *e, int n) {
    world *w = ctx;
    memcpy(w->saved, e, (size_t)n * sizeof *e);
    w->n_saved = n;
    return 0;
}

static void drive(world *w);

static void p_hw(void *ctx, replica *r) {
    world *w = ctx;
    int64_t hw = replica_get_state(r)->hw;
    SIM_CHECK(w->s, hw >= w->last_hw, "HW went down from %lld to %lld", (long long)w->last_hw, (long long)hw);
    w->last_hw = hw;
    purg_notify(w->pg, r);
}

/* ---- consumers --------------------------------------------------------------------------- */

static void consumer_act(void *ctx, void *arg);
static void drive_event(void *ctx, void *arg);

/* Answers a fetch now: what the replica returns from the consumer's position. */
static void answer(world *w, consumer *c) {
    plog_read_result res;
    int16_t err = replica_read(w->r, c->pos, 1 << 20, false, false, &res);
    replica_offsets ro;
    replica_get_offsets(w->r, &ro);
    if (err == KAFKA_ERR_OFFSET_OUT_OF_RANGE) {
        c->pos = ro.log_start; /* auto.offset.reset=earliest */
    } else if (err == 0) {
        for (int i = 0; i < res.n; i++) {
            const mbatch *b = &w->batches[res.r[i].pos];
            SIM_CHECK(w->s, b->last < ro.hw, "consumer %d got offset %lld at or past the HW %lld", c->idx,
                      (long long)b->last, (long long)ro.hw);
            for (int64_t o = b->base; o <= b->last; o++) {
                if (o < c->pos)
                    continue; /* the batch holding the position starts before it */
                SIM_CHECK(w->s, o == c->pos, "consumer %d expected offset %lld, got %lld (a gap or repeat)",
                          c->idx, (long long)c->pos, (long long)o);
                c->pos = o + 1;
                w->delivered++;
            }
        }
    } else {
        sim_fail(w->s, "consumer %d: fetch error %s", c->idx, kafka_error_name(err));
    }
    sim_after(w->s, sim_range(&w->s->rng, 0, 50), consumer_act, w,
              (void *)(uintptr_t)((uint64_t)c->idx | (c->gen << 8)));
}

static int64_t available(world *w, consumer *c) {
    replica_offsets ro;
    replica_get_offsets(w->r, &ro);
    if (c->pos < ro.log_start)
        return 1 << 30; /* out of range: answer now */
    return ro.hw - c->pos;
}

static void consumer_act(void *ctx, void *arg) {
    world *w = ctx;
    uint64_t v = (uint64_t)(uintptr_t)arg;
    consumer *c = &w->cons[v & 0xff];
    if (w->ending || (v >> 8) != c->gen || !c->connected || c->parked)
        return;
    c->min_records = (int32_t)sim_range(&w->s->rng, 1, 8);
    int64_t wait = sim_range(&w->s->rng, 0, 2000);
    if (wait == 0 || available(w, c) >= c->min_records) {
        answer(w, c);
        return;
    }
    c->deadline = w->s->now + wait;
    const void *keys[1] = {w->r};
    if (purg_park(w->pg, &c->op, keys, 1, c->deadline, w->s->now) != 0) {
        answer(w, c); /* full: answer at once */
        return;
    }
    c->op.owner = c;
    c->parked = true;
    w->parked++;
    /* A new, earlier deadline kicks the driver (as the broker's condvar does). */
    sim_at(w->s, c->deadline, drive_event, w, NULL);
}

/* The owner's driver: probes and completes what the purgatory hands out. */
static void drive(world *w) {
    purg_op *ops[CONSUMERS_MAX];
    bool exp[CONSUMERS_MAX];
    int32_t n = purg_take(w->pg, w->s->now, ops, exp, CONSUMERS_MAX);
    for (int32_t i = 0; i < n; i++) {
        consumer *c = ops[i]->owner;
        SIM_CHECK(w->s, c->parked && c->connected, "a cancelled fetch came out of the purgatory");
        c->parked = false;
        if (exp[i] || available(w, c) >= c->min_records) {
            if (exp[i])
                w->expired++;
            else
                w->woken++;
            answer(w, c);
        } else {
            /* Woken but not enough yet: park again with the same deadline. */
            const void *keys[1] = {w->r};
            if (purg_park(w->pg, &c->op, keys, 1, c->deadline, w->s->now) == 0)
                c->parked = true;
            else
                answer(w, c);
        }
    }
}

static void drive_event(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (!w->ending)
        drive(w);
}

static void deadline_tick(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    drive(w);
    int64_t next = purg_next_deadline(w->pg);
    int64_t at = w->s->now + 100;
    if (next != INT64_MIN && next < at)
        at = next > w->s->now ? next : w->s->now + 1;
    sim_at(w->s, at, deadline_tick, w, NULL);
}

static void disconnect(world *w, consumer *c) {
    if (c->parked) {
        purg_cancel(w->pg, &c->op);
        c->parked = false;
        w->cancelled++;
    }
    c->gen++;
    c->connected = false;
}

static void reconnect(void *ctx, void *arg) {
    world *w = ctx;
    consumer *c = &w->cons[(int)(intptr_t)arg];
    if (w->ending)
        return;
    c->connected = true;
    sim_after(w->s, 1, consumer_act, w, (void *)(uintptr_t)((uint64_t)c->idx | (c->gen << 8)));
}

/* ---- producers and faults ---------------------------------------------------------------- */

static void produce(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    int n = (int)sim_range(&w->s->rng, 1, 5);
    arena a;
    arena_init(&a, 1 << 16);
    batch_build_record recs[5];
    int64_t id0 = (int64_t)(w->next_id += 16);
    for (int i = 0; i < n; i++)
        recs[i] = (batch_build_record){{NULL, -1}, {(const uint8_t *)"v", 1}, id0 + i, 0, NULL, 0};
    batch_build_opts o = batch_build_defaults();
    uint8_t *buf;
    size_t len;
    replica_append_result ar;
    if (batch_build(&o, recs, n, &a, &buf, &len) == BATCH_OK) {
        int64_t before = w->end;
        int16_t err = replica_append(w->r, buf, len, w->s->now, &ar);
        if (err == 0) {
            SIM_CHECK(w->s, ar.base_offset == before && ar.last_offset == before + n - 1,
                      "append got offsets %lld-%lld, expected from %lld", (long long)ar.base_offset,
                      (long long)ar.last_offset, (long long)before);
            if (w->n_m == 0 || w->m_epoch[w->n_m - 1] != w->epoch) {
                w->m_epoch[w->n_m] = w->epoch;
                w->m_start[w->n_m++] = before;
            }
            for (int i = 0; i < n; i++)
                SIM_CHECK(w->s, w->ids[before + i] == (uint64_t)(id0 + i), "record id mismatch at %lld",
                          (long long)(before + i));
        } else if (err != KAFKA_ERR_KAFKA_STORAGE_ERROR) {
            sim_fail(w->s, "append failed: %s", kafka_error_name(err));
        }
    }
    arena_reset(&a);
    drive(w);
    if (w->end < RECORDS_MAX - 10)
        sim_after(w->s, sim_range(&w->s->rng, 1, 80), produce, w, NULL);
}

static replica_port port_of(world *w) {
    return (replica_port){w, p_append, p_truncate, p_read, p_time, p_delete, p_offsets, p_save, p_hw, NULL};
}

static void fault(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    uint64_t k = sim_below(&w->s->rng, 100);
    if (k < 30) {
        consumer *c = &w->cons[sim_below(&w->s->rng, (uint64_t)w->n_cons)];
        if (c->connected) {
            disconnect(w, c);
            sim_after(w->s, sim_range(&w->s->rng, 10, 1000), reconnect, w, (void *)(intptr_t)c->idx);
        }
    } else if (k < 50 && w->epoch < EPOCHS_MAX - 2) {
        w->epoch += (int32_t)sim_range(&w->s->rng, 1, 2);
        int32_t isr[] = {1};
        SIM_CHECK(w->s, replica_become_leader(w->r, w->epoch, w->epoch, isr, 1, w->s->now) == 0,
                  "becoming leader at epoch %d failed", w->epoch);
    } else if (k < 65) {
        replica_offsets ro;
        replica_get_offsets(w->r, &ro);
        int64_t to = ro.log_start + (int64_t)sim_below(&w->s->rng, (uint64_t)(ro.hw - ro.log_start + 1));
        int64_t low;
        SIM_CHECK(w->s, replica_delete_records(w->r, to, &low) == 0 && low == to,
                  "DeleteRecords to %lld failed", (long long)to);
    } else if (k < 75) {
        /* Restart: parked fetches go with the old process (their clients
         * reconnect); the replica is rebuilt from the log and checkpoint. */
        for (int i = 0; i < w->n_cons; i++) {
            consumer *c = &w->cons[i];
            if (c->connected) {
                disconnect(w, c);
                sim_after(w->s, sim_range(&w->s->rng, 10, 300), reconnect, w, (void *)(intptr_t)c->idx);
            }
        }
        replica_destroy(w->r);
        replica_port port = port_of(w);
        w->r = replica_create(1, &port, w->saved, w->n_saved, w->end);
        int32_t isr[] = {1};
        replica_become_leader(w->r, w->epoch, w->epoch, isr, 1, w->s->now);
        w->restarts++;
    }
    drive(w);
    sim_after(w->s, sim_range(&w->s->rng, 100, 3000), fault, w, NULL);
}

/* ---- invariants ----------------------------------------------------------------------------- */

static void check(sim *s, void *ctx) {
    world *w = ctx;
    const replica_state *st = replica_get_state(w->r);
    SIM_CHECK(s, st->hw <= st->leo && st->log_start <= st->hw, "HW %lld outside [%lld, %lld]",
              (long long)st->hw, (long long)st->log_start, (long long)st->leo);
    int parked = 0;
    for (int i = 0; i < w->n_cons; i++) {
        consumer *c = &w->cons[i];
        if (!c->parked)
            continue;
        parked++;
        SIM_CHECK(s, c->deadline >= s->now, "consumer %d's fetch outlived its deadline by %lld ms", i,
                  (long long)(s->now - c->deadline));
        SIM_CHECK(s, available(w, c) < c->min_records, "consumer %d's fetch is satisfiable but still parked",
                  i);
    }
    SIM_CHECK(s, parked == purg_count(w->pg), "%d fetches parked, the purgatory holds %d", parked,
              purg_count(w->pg));
    /* OffsetForLeaderEpoch against the model. */
    if (s->steps % 8 == 0 && w->n_m > 0) {
        int j = (int)sim_below(&s->rng, (uint64_t)w->n_m);
        int32_t oe;
        int64_t eo;
        replica_end_offset_for_epoch(w->r, w->m_epoch[j], &oe, &eo);
        int64_t want = j + 1 < w->n_m ? w->m_start[j + 1] : w->end;
        /* Epochs with no records in between end where the next one starts. */
        SIM_CHECK(s, oe <= w->m_epoch[j] && eo == want,
                  "end offset of epoch %d: replica says (%d, %lld), the log says %lld", w->m_epoch[j], oe,
                  (long long)eo, (long long)want);
    }
}

static bool run(sim *s) {
    world *w = calloc(1, sizeof *w);
    w->s = s;
    w->pg = purg_create((int32_t)sim_range(&s->rng, 2, CONSUMERS_MAX), 4);
    replica_port port = port_of(w);
    w->r = replica_create(1, &port, NULL, 0, 0);
    int32_t isr[] = {1};
    replica_become_leader(w->r, 0, 0, isr, 1, 0);
    w->n_cons = (int)sim_range(&s->rng, 1, CONSUMERS_MAX);
    for (int i = 0; i < w->n_cons; i++) {
        w->cons[i] = (consumer){.idx = i, .connected = true};
        sim_after(s, sim_range(&s->rng, 0, 100), consumer_act, w, (void *)(uintptr_t)(uint64_t)i);
    }
    s->check = check;
    s->check_ctx = w;
    int producers = (int)sim_range(&s->rng, 1, 3);
    for (int i = 0; i < producers; i++)
        sim_after(s, sim_range(&s->rng, 0, 100), produce, w, NULL);
    sim_after(s, 500, fault, w, NULL);
    sim_after(s, 1, deadline_tick, w, NULL);
    bool ok = sim_run(s, sim_range(&s->rng, 10000, 60000));
    if (ok)
        SIM_CHECK(s, w->delivered > 0, "no record was ever delivered");
    ok = !s->failed;
    sim_trace(s,
              "records=%lld delivered=%llu parked=%llu woken=%llu expired=%llu cancelled=%llu restarts=%llu",
              (long long)w->end, (unsigned long long)w->delivered, (unsigned long long)w->parked,
              (unsigned long long)w->woken, (unsigned long long)w->expired, (unsigned long long)w->cancelled,
              (unsigned long long)w->restarts);
    s->check = NULL;
    w->ending = true;
    s->failed = false;
    sim_run(s, INT64_MAX);
    s->failed = !ok;
    purg_destroy(w->pg);
    replica_destroy(w->r);
    free(w);
    return ok;
}

const sim_scenario sim_scenario_replica = {
    "replica",
    "replica and purgatory: producers, long polls, disconnects, epoch changes, DeleteRecords, restarts",
    run,
};
