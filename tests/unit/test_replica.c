/*
 * test_replica.c - the replica state machine over an in-memory log port,
 * and the purgatory (unit cases and a seeded model test; SLUICE_SEED
 * replays one seed).
 */
#include "unit.h"

#include <stdint.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"
#include "replica/purgatory.h"
#include "replica/replica.h"

/* ---- an in-memory log behind the port --------------------------------------- */

#define FLOG_MAX 256

typedef struct flog {
    int64_t start, end;
    int64_t base[FLOG_MAX], last[FLOG_MAX];
    int32_t epoch[FLOG_MAX];
    int n;
    int saved_epochs;
    replica_epoch_entry saved[REPLICA_EPOCHS_MAX];
    int hw_calls;
    int64_t last_hw;
} flog;

static int16_t f_append(void *ctx, uint8_t *buf, size_t len, bool as_leader, int32_t epoch, int64_t now,
                        plog_append_info *info) {
    (void)now;
    flog *f = ctx;
    batch_cursor cur;
    batch_cursor_init(&cur, buf, len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    int64_t next = f->end, first = -1;
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        if (!as_leader && h.base_offset != next)
            return KAFKA_ERR_CORRUPT_MESSAGE; /* offsets must continue the log */
        if (f->n == FLOG_MAX)
            return KAFKA_ERR_KAFKA_STORAGE_ERROR;
        f->base[f->n] = next;
        f->last[f->n] = next + h.last_offset_delta;
        f->epoch[f->n] = as_leader ? epoch : h.partition_leader_epoch;
        if (first < 0)
            first = next;
        next += h.last_offset_delta + 1;
        f->n++;
    }
    info->base_offset = first;
    info->last_offset = next - 1;
    info->log_append_time = -1;
    info->log_start_offset = f->start;
    f->end = next;
    return 0;
}

static int16_t f_truncate(void *ctx, int64_t offset) {
    flog *f = ctx;
    while (f->n > 0 && f->last[f->n - 1] >= offset)
        f->n--;
    f->end = f->n ? f->last[f->n - 1] + 1 : (offset < f->start ? offset : f->start);
    if (offset < f->start)
        f->start = f->end = offset;
    return 0;
}

static int16_t f_read(void *ctx, int64_t offset, int64_t max_bytes, int64_t max_offset,
                      plog_read_result *res) {
    (void)max_bytes;
    flog *f = ctx;
    memset(res, 0, sizeof *res);
    if (offset < f->start || offset > f->end)
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    /* One "range" per batch below max_offset; pos holds its base offset. */
    for (int i = 0; i < f->n && res->n < PLOG_MAX_RANGES; i++)
        if (f->last[i] >= offset && (max_offset < 0 || f->last[i] < max_offset)) {
            res->r[res->n++] = (plog_range){NULL, -1, f->base[i], 1};
            res->bytes += 1;
        }
    res->log_end_offset = f->end;
    res->log_start_offset = f->start;
    return 0;
}

static int16_t f_offset_for_time(void *ctx, int64_t ts, int64_t *offset, int64_t *timestamp) {
    flog *f = ctx;
    (void)ts;
    *offset = f->n ? f->base[0] : -1;
    *timestamp = f->n ? 1000 : -1;
    return 0;
}

static int16_t f_delete_records(void *ctx, int64_t offset, int64_t *new_start) {
    flog *f = ctx;
    if (offset > f->start)
        f->start = offset;
    *new_start = f->start;
    return 0;
}

static void f_offsets(void *ctx, int64_t *start, int64_t *end) {
    flog *f = ctx;
    *start = f->start;
    *end = f->end;
}

static int16_t f_save(void *ctx, const replica_epoch_entry *e, int n) {
    flog *f = ctx;
    memcpy(f->saved, e, (size_t)n * sizeof *e);
    f->saved_epochs = n;
    return 0;
}

static void f_hw(void *ctx, replica *r) {
    flog *f = ctx;
    f->hw_calls++;
    f->last_hw = replica_get_state(r)->hw;
}

static int16_t f_append_marker(void *ctx, uint8_t *buf, size_t len, int32_t epoch, int64_t now,
                               plog_append_info *info) {
    return f_append(ctx, buf, len, true, epoch, now, info);
}

static replica_port port_for(flog *f) {
    return (replica_port){
        f,         f_append, f_truncate, f_read,         f_offset_for_time, f_delete_records,
        f_offsets, f_save,   f_hw,       f_append_marker};
}

/* n records as one batch (leader epoch and base offset set as a leader's). */
static uint8_t *make_batch(arena *a, int n, int64_t base, int32_t epoch, size_t *len) {
    batch_build_record recs[16];
    for (int i = 0; i < n; i++)
        recs[i] = (batch_build_record){
            {(const uint8_t *)"k", 1}, {(const uint8_t *)"value", 5}, 1000 + i, 0, NULL, 0};
    batch_build_opts o = batch_build_defaults();
    o.base_offset = base;
    o.leader_epoch = epoch;
    uint8_t *out;
    if (batch_build(&o, recs, n, a, &out, len) != BATCH_OK)
        return NULL;
    return out;
}

/* An idempotent batch of n records from producer pid/epoch at seq. */
static uint8_t *make_idem(arena *a, int n, int64_t pid, int16_t pepoch, int32_t seq, int64_t base,
                          size_t *len) {
    batch_build_record recs[16];
    for (int i = 0; i < n; i++)
        recs[i] =
            (batch_build_record){{(const uint8_t *)"k", 1}, {(const uint8_t *)"v", 1}, 1000 + i, 0, NULL, 0};
    batch_build_opts o = batch_build_defaults();
    o.base_offset = base;
    o.producer_id = pid;
    o.producer_epoch = pepoch;
    o.base_sequence = seq;
    uint8_t *out;
    if (batch_build(&o, recs, n, a, &out, len) != BATCH_OK)
        return NULL;
    return out;
}

/* ---- replica cases -------------------------------------------------------------- */

/* The producer rules on the leader's path (storage/producer_state.h): a
 * retry is answered with its offsets and never reaches the log; errors
 * leave the log alone; a follower learns producers from what it appends and
 * forgets what a truncation cuts. */
static void test_idempotent_producers(void) {
    flog f = {0};
    replica_port port = port_for(&f);
    replica *r = replica_create(1, &port, NULL, 0, 0);
    REQUIRE(r);
    arena a;
    arena_init(&a, 1 << 20);
    int32_t isr[] = {1};
    CHECK_EQ_INT(replica_become_leader(r, 0, 0, isr, 1, 0), 0);
    size_t len;
    replica_append_result ar;
    uint8_t *b = make_idem(&a, 3, 42, 0, 0, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    CHECK(!ar.duplicate && ar.base_offset == 0);
    b = make_idem(&a, 2, 42, 0, 3, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    CHECK_EQ_INT(ar.base_offset, 3);
    CHECK_EQ_INT(f.end, 5);
    b = make_idem(&a, 3, 42, 0, 0, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    CHECK(ar.duplicate && ar.base_offset == 0 && ar.last_offset == 2);
    CHECK_EQ_INT(f.end, 5); /* nothing appended */
    b = make_idem(&a, 1, 42, 0, 9, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK(strstr(ar.info.error_msg, "does not follow 4") != NULL);
    b = make_idem(&a, 1, 42, 1, 0, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    b = make_idem(&a, 1, 42, 0, 5, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), KAFKA_ERR_INVALID_PRODUCER_EPOCH);
    b = make_idem(&a, 1, 43, 0, 5, 0, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), KAFKA_ERR_UNKNOWN_PRODUCER_ID);
    CHECK_EQ_INT(f.end, 6);
    const pstate_entry *e = pstate_get(replica_producers(r), 42);
    REQUIRE(e != NULL);
    CHECK_EQ_INT(e->epoch, 1);
    replica_destroy(r);

    /* A follower: state from replicated batches, cut by truncation. */
    flog g = {0};
    port = port_for(&g);
    r = replica_create(2, &port, NULL, 0, 0);
    REQUIRE(r);
    CHECK_EQ_INT(replica_become_follower(r, 1, 0, 0, 0), 0);
    b = make_idem(&a, 2, 7, 0, 0, 0, &len);
    CHECK_EQ_INT(replica_append_as_follower(r, b, len, 0, &ar), 0);
    b = make_idem(&a, 2, 7, 0, 2, 2, &len);
    CHECK_EQ_INT(replica_append_as_follower(r, b, len, 0, &ar), 0);
    e = pstate_get(replica_producers(r), 7);
    REQUIRE(e != NULL);
    CHECK_EQ_INT(pstate_newest(e)->last_seq, 3);
    CHECK_EQ_INT(pstate_newest(e)->first_offset, 2);
    CHECK_EQ_INT(replica_truncate(r, 2), 0);
    e = pstate_get(replica_producers(r), 7);
    REQUIRE(e != NULL);
    CHECK_EQ_INT(pstate_newest(e)->last_seq, 1);
    replica_destroy(r);
    arena_reset(&a);
}

static void test_leader_appends_and_epochs(void) {
    flog f = {0};
    replica_port port = port_for(&f);
    replica *r = replica_create(1, &port, NULL, 0, 0);
    REQUIRE(r);
    arena a;
    arena_init(&a, 1 << 20);
    size_t len;
    uint8_t *b = make_batch(&a, 3, 0, -1, &len);
    replica_append_result ar;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), KAFKA_ERR_KAFKA_STORAGE_ERROR); /* offline */
    int32_t isr[] = {1};
    CHECK_EQ_INT(replica_become_leader(r, 0, 0, isr, 1, 0), 0);
    CHECK_EQ_INT(f.hw_calls, 1); /* a role change wakes waiters too */
    f.hw_calls = 0;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    CHECK_EQ_INT(ar.base_offset, 0);
    CHECK_EQ_INT(ar.last_offset, 2);
    CHECK_EQ_INT(ar.hw, 3);
    CHECK_EQ_INT(f.hw_calls, 1);
    CHECK_EQ_INT(f.last_hw, 3);
    b = make_batch(&a, 2, 0, -1, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    CHECK_EQ_INT(ar.hw, 5);
    /* A new leader epoch starts at the log end. */
    CHECK_EQ_INT(replica_become_leader(r, 2, 1, isr, 1, 0), 0);
    b = make_batch(&a, 4, 0, -1, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    const replica_epoch_entry *e;
    int n = replica_epochs(r, &e);
    REQUIRE(n == 2);
    CHECK(e[0].epoch == 0 && e[0].start_offset == 0);
    CHECK(e[1].epoch == 2 && e[1].start_offset == 5);
    CHECK_EQ_INT(f.saved_epochs, 2);
    int32_t oe;
    int64_t eo;
    replica_end_offset_for_epoch(r, 0, &oe, &eo);
    CHECK(oe == 0 && eo == 5);
    replica_end_offset_for_epoch(r, 1, &oe, &eo); /* never had epoch 1: the largest below */
    CHECK(oe == 0 && eo == 5);
    replica_end_offset_for_epoch(r, 2, &oe, &eo);
    CHECK(oe == 2 && eo == 9);
    /* Newer than any epoch known: undefined, as Kafka answers (and as the
     * broker answered before the replica layer). */
    replica_end_offset_for_epoch(r, 7, &oe, &eo);
    CHECK(oe == -1 && eo == -1);
    /* Epoch checks in one place. */
    CHECK_EQ_INT(replica_check_epoch(r, -1, true), 0);
    CHECK_EQ_INT(replica_check_epoch(r, 2, true), 0);
    CHECK_EQ_INT(replica_check_epoch(r, 1, true), KAFKA_ERR_FENCED_LEADER_EPOCH);
    CHECK_EQ_INT(replica_check_epoch(r, 3, true), KAFKA_ERR_UNKNOWN_LEADER_EPOCH);
    CHECK_EQ_INT(replica_become_leader(r, 1, 0, isr, 1, 0), KAFKA_ERR_FENCED_LEADER_EPOCH);
    /* ListOffsets and DeleteRecords. */
    int64_t off, ts;
    int32_t ep;
    CHECK_EQ_INT(replica_list_offset(r, PLOG_TS_LATEST, &off, &ts, &ep), 0);
    CHECK(off == 9 && ep == 2);
    CHECK_EQ_INT(replica_list_offset(r, PLOG_TS_EARLIEST, &off, &ts, &ep), 0);
    CHECK(off == 0 && ep == 0);
    int64_t low;
    CHECK_EQ_INT(replica_delete_records(r, 10, &low), KAFKA_ERR_OFFSET_OUT_OF_RANGE);
    CHECK_EQ_INT(replica_delete_records(r, 4, &low), 0);
    CHECK_EQ_INT(low, 4);
    CHECK_EQ_INT(replica_delete_records(r, -1, &low), 0); /* the HW */
    CHECK_EQ_INT(low, 9);
    replica_destroy(r);
    arena_reset(&a);
}

static void test_follower_and_truncate(void) {
    flog f = {0};
    replica_port port = port_for(&f);
    replica *r = replica_create(2, &port, NULL, 0, 0);
    REQUIRE(r);
    CHECK_EQ_INT(replica_become_follower(r, 1, 3, 0, 0), 0);
    arena a;
    arena_init(&a, 1 << 20);
    size_t len;
    uint8_t *b = make_batch(&a, 2, 0, 3, &len);
    replica_append_result ar;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    CHECK_EQ_INT(replica_append_as_follower(r, b, len, 0, &ar), 0);
    b = make_batch(&a, 2, 2, 4, &len);
    CHECK_EQ_INT(replica_append_as_follower(r, b, len, 0, &ar), 0);
    b = make_batch(&a, 1, 9, 4, &len); /* a gap */
    CHECK(replica_append_as_follower(r, b, len, 0, &ar) != 0);
    const replica_epoch_entry *e;
    int n = replica_epochs(r, &e);
    REQUIRE(n == 2);
    CHECK(e[0].epoch == 3 && e[0].start_offset == 0 && e[1].epoch == 4 && e[1].start_offset == 2);
    CHECK_EQ_INT(replica_check_epoch(r, -1, true), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    CHECK_EQ_INT(replica_check_epoch(r, -1, false), 0);
    /* A diverging epoch: cut back to 2, the epoch-4 entry goes. */
    CHECK_EQ_INT(replica_truncate(r, 2), 0);
    n = replica_epochs(r, &e);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(replica_get_state(r)->leo, 2);
    replica_go_offline(r);
    CHECK_EQ_INT(replica_check_epoch(r, -1, false), KAFKA_ERR_KAFKA_STORAGE_ERROR);
    plog_read_result res;
    CHECK_EQ_INT(replica_read(r, 0, 100, false, false, &res), KAFKA_ERR_KAFKA_STORAGE_ERROR);
    replica_destroy(r);
    arena_reset(&a);
}

/* With followers in the ISR the HW waits for them; consumers read to the HW
 * only, followers to the log end. */
static void test_hw_bounds_reads(void) {
    flog f = {0};
    replica_port port = port_for(&f);
    replica *r = replica_create(1, &port, NULL, 0, 0);
    int32_t isr[] = {1, 2};
    CHECK_EQ_INT(replica_become_leader(r, 0, 0, isr, 2, 0), 0);
    f.hw_calls = 0;
    arena a;
    arena_init(&a, 1 << 20);
    size_t len;
    uint8_t *b = make_batch(&a, 3, 0, -1, &len);
    replica_append_result ar;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    CHECK_EQ_INT(ar.hw, 0);
    CHECK_EQ_INT(f.hw_calls, 1); /* the followers' long polls are woken */
    plog_read_result res;
    CHECK_EQ_INT(replica_read(r, 0, 100, false, false, &res), 0);
    CHECK_EQ_INT(res.n, 0); /* nothing committed */
    CHECK_EQ_INT(replica_read(r, 0, 100, true, false, &res), 0);
    CHECK_EQ_INT(res.n, 1);
    int64_t off, ts;
    int32_t ep;
    CHECK_EQ_INT(replica_list_offset(r, PLOG_TS_LATEST, &off, &ts, &ep), 0);
    CHECK_EQ_INT(off, 0);
    CHECK_EQ_INT(replica_list_offset(r, 500, &off, &ts, &ep), 0);
    CHECK_EQ_INT(off, -1); /* the record at 0 is not committed yet */
    /* A checkpointed epoch cache that does not fit the log is cut. */
    replica_epoch_entry bad[] = {{0, 0}, {1, 2}, {1, 3}, {5, 100}};
    replica *r2 = replica_create(1, &port, bad, 4, 99);
    const replica_epoch_entry *e;
    CHECK_EQ_INT(replica_epochs(r2, &e), 2);
    CHECK_EQ_INT(replica_get_state(r2)->hw, 3); /* clamped to the log end */
    replica_destroy(r2);
    replica_destroy(r);
    arena_reset(&a);
}

/* The leader's view of its followers: HW over the ISR (and a proposed
 * one), joining, lagging, a new leadership forgetting positions. */
static void test_followers(void) {
    flog f = {0};
    replica_port port = port_for(&f);
    replica *r = replica_create(1, &port, NULL, 0, 0);
    int32_t isr[] = {1, 2};
    CHECK_EQ_INT(replica_become_leader(r, 3, 0, isr, 2, 1000), 0);
    arena a;
    arena_init(&a, 1 << 20);
    size_t len;
    uint8_t *b = make_batch(&a, 3, 0, -1, &len);
    replica_append_result ar;
    CHECK_EQ_INT(replica_append(r, b, len, 1000, &ar), 0);
    CHECK_EQ_INT(ar.hw, 0);
    bool join = true;
    /* Follower 2 (in the ISR) has 2 of the 3 records: HW 2. */
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 2, 1100, &join), 0);
    CHECK(!join);
    CHECK_EQ_INT(replica_get_state(r)->hw, 2);
    /* Follower 3 (outside the ISR) fetched from 0: not caught up. */
    CHECK_EQ_INT(replica_follower_fetch(r, 3, 0, 1100, &join), 0);
    CHECK(!join);
    CHECK_EQ_INT(replica_get_state(r)->hw, 2);
    /* 2 catches up: HW 3. 3 catches up to the HW: it may join. */
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 3, 1200, &join), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 3);
    CHECK_EQ_INT(replica_follower_fetch(r, 3, 3, 1200, &join), 0);
    CHECK(join);
    /* Proposed {1,2,3}: a new record waits for 3 as well. */
    int32_t big[] = {1, 2, 3};
    replica_set_pending_isr(r, big, 3);
    b = make_batch(&a, 2, 0, -1, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 1300, &ar), 0);
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 5, 1300, &join), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 3);
    CHECK_EQ_INT(replica_follower_fetch(r, 3, 5, 1300, &join), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 5);
    /* The metadata commits {1,2,3} (a new partition epoch). */
    CHECK_EQ_INT(replica_become_leader(r, 3, 1, big, 3, 1400), 0);
    CHECK_EQ_INT(replica_get_state(r)->n_pending, 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 5);
    /* 3 stops fetching: after the lag time it is reported, 2 is not. */
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 5, 20000, &join), 0);
    int32_t lag[4];
    CHECK_EQ_INT(replica_lagging(r, 20000, 10000, lag, 4), 1);
    CHECK_EQ_INT(lag[0], 3);
    /* A follower behind the leader but at the log end the leader had at
     * its previous fetch still counts as caught up then. */
    b = make_batch(&a, 1, 0, -1, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 20500, &ar), 0);
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 5, 21000, &join), 0); /* leader at 6, was 5 */
    CHECK_EQ_INT(replica_lagging(r, 29999, 10000, lag, 4), 1);      /* 2 caught up at 20000 */
    CHECK_EQ_INT(replica_lagging(r, 30001, 10000, lag, 4), 2);
    /* A fetch past the leader's log end does not move the HW past it. */
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 99, 21000, &join), 0);
    CHECK_EQ_INT(replica_follower_fetch(r, 3, 99, 21000, &join), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 6);
    /* A new leader epoch forgets positions: the HW holds until they fetch. */
    CHECK_EQ_INT(replica_become_leader(r, 4, 2, big, 3, 22000), 0);
    b = make_batch(&a, 1, 0, -1, &len);
    CHECK_EQ_INT(replica_append(r, b, len, 22000, &ar), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 6);
    CHECK_EQ_INT(replica_follower_fetch(r, 2, 7, 22100, &join), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 6);
    CHECK_EQ_INT(replica_follower_fetch(r, 3, 7, 22100, &join), 0);
    CHECK_EQ_INT(replica_get_state(r)->hw, 7);
    /* Followers: the HW is the leader's, capped at the own log end. */
    CHECK_EQ_INT(replica_become_follower(r, 2, 5, 3, 23000), 0);
    CHECK_EQ_INT(replica_follower_fetch(r, 3, 7, 23000, &join), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    replica_follower_hw(r, 100);
    CHECK_EQ_INT(replica_get_state(r)->hw, 7);
    replica_follower_hw(r, 4);
    CHECK_EQ_INT(replica_get_state(r)->hw, 4);
    replica_destroy(r);
    arena_reset(&a);
}

/* ---- purgatory ----------------------------------------------------------------------- */

static void test_purgatory_basics(void) {
    purgatory *p = purg_create(3, 4);
    REQUIRE(p);
    int k1, k2, k3;
    purg_op a = {0}, b = {0}, c = {0}, d = {0};
    const void *ka[] = {&k1, &k2};
    const void *kb[] = {&k2};
    const void *kc[] = {&k3};
    CHECK_EQ_INT(purg_next_deadline(p), INT64_MAX);
    CHECK_EQ_INT(purg_park(p, &a, ka, 2, 500, 0), 0);
    CHECK_EQ_INT(purg_park(p, &b, kb, 1, 100, 0), 0);
    CHECK_EQ_INT(purg_park(p, &c, kc, 1, 300, 0), 0);
    CHECK_EQ_INT(purg_park(p, &d, kc, 1, 300, 0), -1); /* full: the owner answers at once */
    const void *too_many[] = {&k1, &k1, &k1, &k1, &k1};
    purg_cancel(p, &c);
    CHECK(!purg_is_parked(&c));
    CHECK_EQ_INT(purg_park(p, &d, too_many, 5, 300, 0), -1);
    CHECK_EQ_INT(purg_next_deadline(p), 100);
    purg_op *out[4];
    bool exp[4];
    CHECK_EQ_INT(purg_take(p, 50, out, exp, 4), 0);
    purg_notify(p, &k2); /* wakes a and b */
    CHECK_EQ_INT(purg_next_deadline(p), INT64_MIN);
    CHECK_EQ_INT(purg_take(p, 60, out, exp, 1), 1); /* one at a time when asked */
    CHECK(!exp[0]);
    purg_op *first = out[0];
    CHECK_EQ_INT(purg_take(p, 60, out, exp, 4), 1);
    CHECK(!exp[0]);
    CHECK((first == &a && out[0] == &b) || (first == &b && out[0] == &a));
    CHECK_EQ_INT(purg_count(p), 0);
    /* Expiry, and parking again moves an op. */
    CHECK_EQ_INT(purg_park(p, &a, ka, 2, 200, 100), 0);
    CHECK_EQ_INT(purg_park(p, &a, kc, 1, 400, 100), 0);
    CHECK_EQ_INT(purg_count(p), 1);
    purg_notify(p, &k1); /* no longer watched */
    CHECK_EQ_INT(purg_take(p, 399, out, exp, 4), 0);
    CHECK_EQ_INT(purg_take(p, 400, out, exp, 4), 1);
    CHECK(out[0] == &a && exp[0]);
    CHECK_EQ_INT(purg_park(p, &a, ka, 2, 200, 100), 0);
    purg_notify_all(p);
    CHECK_EQ_INT(purg_take(p, 100, out, exp, 4), 1);
    purg_destroy(p);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define M_OPS  40
#define M_KEYS 8

/* Random parks, notifies, cancels and takes against a naive model. */
static bool purgatory_model(uint64_t seed) {
    uint64_t s = seed;
    purgatory *p = purg_create(M_OPS, M_KEYS);
    purg_op ops[M_OPS];
    memset(ops, 0, sizeof ops);
    struct {
        bool parked, woken;
        int64_t deadline;
        bool watch[M_KEYS];
    } m[M_OPS];
    memset(m, 0, sizeof m);
    int keys[M_KEYS];
    int64_t now = 0;
    bool ok = true;
    for (int step = 0; step < 3000 && ok; step++) {
        int i = (int)(rng_next(&s) % M_OPS);
        switch (rng_next(&s) % 5) {
        case 0: { /* park */
            const void *k[M_KEYS];
            int n = 0;
            memset(m[i].watch, 0, sizeof m[i].watch);
            for (int j = 0; j < M_KEYS; j++)
                if (rng_next(&s) % 3 == 0) {
                    k[n++] = &keys[j];
                    m[i].watch[j] = true;
                }
            int64_t dl = now + (int64_t)(rng_next(&s) % 100);
            if (purg_park(p, &ops[i], k, n, dl, now) != 0) {
                ok = false;
                break;
            }
            m[i].parked = true;
            m[i].woken = false;
            m[i].deadline = dl;
            break;
        }
        case 1: { /* notify */
            int j = (int)(rng_next(&s) % M_KEYS);
            purg_notify(p, &keys[j]);
            for (int x = 0; x < M_OPS; x++)
                if (m[x].parked && m[x].watch[j])
                    m[x].woken = true;
            break;
        }
        case 2: /* cancel */
            purg_cancel(p, &ops[i]);
            m[i].parked = false;
            break;
        case 3: { /* take */
            purg_op *out[M_OPS];
            bool exp[M_OPS];
            int32_t n = purg_take(p, now, out, exp, M_OPS);
            int want = 0;
            for (int x = 0; x < M_OPS; x++)
                want += m[x].parked && (m[x].woken || m[x].deadline <= now);
            if (n != want)
                ok = false;
            for (int32_t t = 0; t < n && ok; t++) {
                int x = (int)(out[t] - ops);
                if (x < 0 || x >= M_OPS || !m[x].parked || exp[t] != (m[x].deadline <= now) ||
                    !(m[x].woken || m[x].deadline <= now))
                    ok = false;
                else
                    m[x].parked = false;
            }
            break;
        }
        case 4:
            now += (int64_t)(rng_next(&s) % 20);
            break;
        }
        int cnt = 0;
        for (int x = 0; x < M_OPS; x++)
            cnt += m[x].parked;
        if (cnt != purg_count(p))
            ok = false;
    }
    if (!ok)
        fprintf(stderr, "purgatory model seed %llu failed\n", (unsigned long long)seed);
    purg_destroy(p);
    return ok;
}

static void test_purgatory_model(void) {
    const char *one = getenv("SLUICE_SEED");
    if (one && *one) {
        CHECK(purgatory_model(strtoull(one, NULL, 0)));
        return;
    }
    for (uint64_t seed = 1; seed <= 200; seed++)
        if (!purgatory_model(seed)) {
            CHECK(false);
            break;
        }
}

/* Transactions: the LSO stops at the earliest open transaction; markers
 * close it (an abort goes to the aborted list); read_committed reads stop
 * at the LSO; clients may not send control batches. */
static void test_transactions(void) {
    flog f = {0};
    replica_port port = port_for(&f);
    replica *r = replica_create(1, &port, NULL, 0, 0);
    REQUIRE(r);
    arena a;
    arena_init(&a, 1 << 20);
    int32_t isr[] = {1};
    CHECK_EQ_INT(replica_become_leader(r, 0, 0, isr, 1, 0), 0);
    size_t len;
    replica_append_result ar;
    uint8_t *plain = make_batch(&a, 2, 0, 0, &len);
    CHECK_EQ_INT(replica_append(r, plain, len, 0, &ar), 0); /* 0-1 plain */
    uint8_t *b = make_idem(&a, 3, 7, 0, 0, 0, &len);
    b[BATCH_OFF_ATTRIBUTES + 1] |= BATCH_ATTR_TRANSACTIONAL; /* the CRC is not checked by this port */
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);      /* 2-4 in producer 7 transaction */
    b = make_idem(&a, 1, 8, 0, 0, 0, &len);
    b[BATCH_OFF_ATTRIBUTES + 1] |= BATCH_ATTR_TRANSACTIONAL;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0); /* 5 in producer 8's */
    CHECK_EQ_INT(replica_last_stable(r), 2);
    replica_offsets o;
    replica_get_offsets(r, &o);
    CHECK_EQ_INT(o.hw, 6);
    CHECK_EQ_INT(o.last_stable, 2);
    plog_read_result res;
    CHECK_EQ_INT(replica_read(r, 0, 1000, false, true, &res), 0);
    CHECK_EQ_INT(res.n, 1); /* only the batch below the LSO */
    int64_t moff;
    CHECK_EQ_INT(replica_write_marker(r, 7, 0, false, 0, 0, &moff), 0);
    CHECK_EQ_INT(moff, 6);
    CHECK_EQ_INT(replica_last_stable(r), 5); /* producer 8's is still open */
    pstate_aborted ab[4];
    CHECK_EQ_INT(replica_aborted(r, 0, 7, ab, 4), 1);
    CHECK(ab[0].producer_id == 7 && ab[0].first_offset == 2 && ab[0].last_offset == 6);
    CHECK_EQ_INT(replica_aborted(r, 7, 100, ab, 4), 0);
    CHECK_EQ_INT(replica_write_marker(r, 8, 0, true, 0, 0, &moff), 0);
    CHECK_EQ_INT(replica_last_stable(r), 8);
    CHECK_EQ_INT(replica_aborted(r, 0, 100, ab, 4), 1); /* a commit adds nothing */
    /* A second marker for a closed transaction changes nothing. */
    CHECK_EQ_INT(replica_write_marker(r, 8, 0, false, 0, 0, &moff), 0);
    CHECK_EQ_INT(replica_aborted(r, 0, 100, ab, 4), 1);
    /* A control batch from a client is refused. */
    b = make_idem(&a, 1, 9, 0, 0, 0, &len);
    b[BATCH_OFF_ATTRIBUTES + 1] |= BATCH_ATTR_CONTROL;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), KAFKA_ERR_INVALID_RECORD);
    /* The snapshot keeps an open transaction; the aborted list round-trips. */
    b = make_idem(&a, 1, 7, 1, 0, 0, &len);
    b[BATCH_OFF_ATTRIBUTES + 1] |= BATCH_ATTR_TRANSACTIONAL;
    CHECK_EQ_INT(replica_append(r, b, len, 0, &ar), 0);
    int64_t open_at = ar.base_offset;
    pstate *s = replica_producers(r);
    size_t n = pstate_snapshot_size(s), an = pstate_aborted_size(s);
    uint8_t *snap = arena_alloc(&a, n), *abuf = arena_alloc(&a, an);
    CHECK_EQ_INT(pstate_snapshot_encode(s, snap, n), n);
    CHECK_EQ_INT(pstate_aborted_encode(s, abuf, an), an);
    pstate *t = pstate_create(0, 0);
    char why[128];
    CHECK_EQ_INT(pstate_snapshot_decode(t, snap, n, 0, why, sizeof why), 0);
    CHECK_EQ_INT(pstate_aborted_decode(t, abuf, an, why, sizeof why), 0);
    CHECK_EQ_INT(pstate_first_open(t), open_at);
    CHECK_EQ_INT(pstate_aborted_count(t), 1);
    abuf[12] ^= 1;
    CHECK_EQ_INT(pstate_aborted_decode(t, abuf, an, why, sizeof why), -1);
    CHECK_EQ_INT(pstate_aborted_count(t), 0);
    pstate_destroy(t);
    arena_reset(&a);
    replica_destroy(r);
}

int main(void) {
    UNIT_RUN(test_transactions);
    UNIT_RUN(test_leader_appends_and_epochs);
    UNIT_RUN(test_idempotent_producers);
    UNIT_RUN(test_follower_and_truncate);
    UNIT_RUN(test_hw_bounds_reads);
    UNIT_RUN(test_followers);
    UNIT_RUN(test_purgatory_basics);
    UNIT_RUN(test_purgatory_model);
    return UNIT_END("test_replica");
}
