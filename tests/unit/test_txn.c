/*
 * test_txn.c - txn/coordinator and txn/records: the __transaction_state
 * codec (round trip, Kafka's v1 flexible value, damage), and the
 * transaction state machine with a fake clock and a fake log: init,
 * add, commit, abort, fencing of an older epoch (its open transaction
 * aborted), the timeout abort, marker failures retried by the tick, the
 * expiry of idle ids, and reloading from the records written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "txn/coordinator.h"
#include "txn/records.h"
#include "unit.h"

#define LOG_MAX 256

typedef struct fake {
    uint8_t *keys[LOG_MAX], *vals[LOG_MAX];
    int32_t klen[LOG_MAX], vlen[LOG_MAX];
    int n;
    int16_t append_err;
    int16_t marker_err;
    int markers, commits, aborts;
    int16_t last_marker_epoch;
    int64_t next_pid;
} fake;

static int16_t f_append(void *ctx, kbytes key, kbytes value) {
    fake *f = ctx;
    if (f->append_err)
        return f->append_err;
    if (f->n >= LOG_MAX)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    f->keys[f->n] = malloc((size_t)key.len);
    memcpy(f->keys[f->n], key.ptr, (size_t)key.len);
    f->klen[f->n] = key.len;
    f->vlen[f->n] = value.len;
    f->vals[f->n] = NULL;
    if (value.len >= 0) {
        f->vals[f->n] = malloc((size_t)value.len + 1);
        memcpy(f->vals[f->n], value.ptr, (size_t)value.len);
    }
    f->n++;
    return 0;
}

static int16_t f_markers(void *ctx, kstr id, int64_t pid, int16_t epoch, bool commit, const trec_tp *parts,
                         int32_t n) {
    (void)id;
    (void)pid;
    (void)parts;
    (void)n;
    fake *f = ctx;
    if (f->marker_err)
        return f->marker_err;
    f->markers++;
    f->last_marker_epoch = epoch;
    if (commit)
        f->commits++;
    else
        f->aborts++;
    return 0;
}

static int16_t f_pid(void *ctx, int64_t *pid) {
    fake *f = ctx;
    *pid = f->next_pid++;
    return 0;
}

static void fake_free(fake *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->keys[i]);
        free(f->vals[i]);
    }
    f->n = 0;
}

static tcoord *make(fake *f, tcoord_config *cfg) {
    memset(f, 0, sizeof *f);
    f->next_pid = 1000;
    tcoord_config c;
    tcoord_config_default(&c);
    if (cfg)
        c = *cfg;
    tcoord_sink s = {f, f_append, f_markers, f_pid};
    tcoord *t = tcoord_create(&c, &s);
    tcoord_load_begin(t, 0, 0);
    tcoord_load_end(t, 0);
    return t;
}

static const trec_tp P[] = {{{"a", 1}, 0}, {{"a", 1}, 1}, {{"b", 1}, 3}};

static void test_records(void) {
    arena a;
    arena_init(&a, 1 << 20);
    kbytes k, v;
    REQUIRE(trec_encode_key(&a, kstr_c("tx-1"), &k) == 0);
    kstr id;
    REQUIRE(trec_decode_key(k, &id) == 0);
    CHECK(kstr_eq_c(id, "tx-1"));
    trec_value in = {42, 3, 60000, TREC_ONGOING, (trec_tp *)P, 3, 1234, 1000};
    REQUIRE(trec_encode_value(&a, &in, &v) == 0);
    /* v0: 2+8+2+4+1 + 4 + (2+1+4+8) + (2+1+4+4) + 16 */
    CHECK_EQ_INT(v.len, 17 + 4 + 15 + 11 + 16);
    trec_value out;
    REQUIRE(trec_decode_value(v, &a, &out) == 0);
    CHECK_EQ_INT(out.producer_id, 42);
    CHECK_EQ_INT(out.epoch, 3);
    CHECK_EQ_INT(out.timeout_ms, 60000);
    CHECK_EQ_INT(out.status, TREC_ONGOING);
    REQUIRE(out.n_parts == 3);
    CHECK(kstr_eq_c(out.parts[1].topic, "a") && out.parts[1].partition == 1);
    CHECK(kstr_eq_c(out.parts[2].topic, "b") && out.parts[2].partition == 3);
    CHECK_EQ_INT(out.update_ms, 1234);
    CHECK_EQ_INT(out.start_ms, 1000);
    /* Every truncation fails cleanly. */
    for (int32_t n = 0; n < v.len; n++)
        CHECK(trec_decode_value((kbytes){v.ptr, n}, &a, &out) == -1);
    /* A partition count larger than the bytes. */
    uint8_t bad[64];
    memcpy(bad, v.ptr, (size_t)v.len);
    bad[17 + 4 + 3 + 3] = 0x7f;
    CHECK(trec_decode_value((kbytes){bad, v.len}, &a, &out) == -1);
    /* Unknown version. */
    bad[1] = 9;
    CHECK(trec_decode_value((kbytes){bad, v.len}, &a, &out) == -1);
    /* Kafka's v1 (flexible) value: one topic "t" with partition 7, tags. */
    uint8_t v1[] = {0, 1,   0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 0, 0, 0x27, 0x10, 1, 2, /* compact array: 1 topic */
                    2, 't',                                                       /* compact string "t" */
                    2, 0,   0, 0, 7,                                              /* compact array: [7] */
                    0,                                                            /* topic's tags */
                    0, 0,   0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0,    8,          /* update, start */
                    1, 2,   2, 0, 2};                                             /* tags: {2: int16 2} */
    REQUIRE(trec_decode_value((kbytes){v1, sizeof v1}, &a, &out) == 0);
    CHECK_EQ_INT(out.producer_id, 5);
    CHECK_EQ_INT(out.timeout_ms, 10000);
    REQUIRE(out.n_parts == 1);
    CHECK(kstr_eq_c(out.parts[0].topic, "t") && out.parts[0].partition == 7);
    CHECK_EQ_INT(out.start_ms, 8);
    arena_reset(&a);
}

static void test_commit_abort(void) {
    fake f;
    tcoord *c = make(&f, NULL);
    int64_t pid;
    int16_t ep;
    kstr id = kstr_c("t1");
    CHECK_EQ_INT(tcoord_init_producer(c, id, 0, -1, -1, 10, &pid, &ep),
                 KAFKA_ERR_INVALID_TRANSACTION_TIMEOUT);
    CHECK_EQ_INT(tcoord_init_producer(c, id, 1000000, -1, -1, 10, &pid, &ep),
                 KAFKA_ERR_INVALID_TRANSACTION_TIMEOUT);
    REQUIRE(tcoord_init_producer(c, id, 60000, -1, -1, 10, &pid, &ep) == 0);
    CHECK_EQ_INT(pid, 1000);
    CHECK_EQ_INT(ep, 0);
    CHECK_EQ_INT(tcoord_end_txn(c, id, pid, ep, true, 11), KAFKA_ERR_INVALID_TXN_STATE);
    CHECK_EQ_INT(tcoord_add_partitions(c, id, pid + 1, ep, P, 2, 12), KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING);
    CHECK_EQ_INT(tcoord_add_partitions(c, kstr_c("nope"), pid, ep, P, 2, 12),
                 KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING);
    CHECK_EQ_INT(tcoord_add_partitions(c, id, pid, 1, P, 2, 12), KAFKA_ERR_PRODUCER_FENCED);
    int before = f.n;
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 2, 12) == 0);
    CHECK_EQ_INT(f.n, before + 1);
    /* Adding what is there writes nothing. */
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 2, 13) == 0);
    CHECK_EQ_INT(f.n, before + 1);
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 3, 13) == 0);
    tcoord_info i;
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_ONGOING);
    CHECK_EQ_INT(i.n_parts, 3);
    CHECK_EQ_INT(i.start_ms, 12);
    REQUIRE(tcoord_end_txn(c, id, pid, ep, true, 20) == 0);
    CHECK_EQ_INT(f.commits, 1);
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_COMMIT);
    CHECK_EQ_INT(i.n_parts, 0);
    /* A retried commit is fine; an abort of it is not. */
    CHECK_EQ_INT(tcoord_end_txn(c, id, pid, ep, true, 21), 0);
    CHECK_EQ_INT(tcoord_end_txn(c, id, pid, ep, false, 21), KAFKA_ERR_INVALID_TXN_STATE);
    /* Next transaction, aborted. */
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P + 2, 1, 30) == 0);
    REQUIRE(tcoord_end_txn(c, id, pid, ep, false, 31) == 0);
    CHECK_EQ_INT(f.aborts, 1);
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_ABORT);
    tcoord_destroy(c);
    fake_free(&f);
}

static void test_fence(void) {
    fake f;
    tcoord *c = make(&f, NULL);
    int64_t pid, pid2;
    int16_t ep, ep2;
    kstr id = kstr_c("fence");
    REQUIRE(tcoord_init_producer(c, id, 60000, -1, -1, 0, &pid, &ep) == 0);
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 1, 1) == 0);
    /* A second instance: the open transaction is aborted at a bumped
     * epoch, and the new instance gets the epoch after that. */
    REQUIRE(tcoord_init_producer(c, id, 60000, -1, -1, 2, &pid2, &ep2) == 0);
    CHECK_EQ_INT(pid2, pid);
    CHECK_EQ_INT(f.aborts, 1);
    CHECK_EQ_INT(f.last_marker_epoch, ep + 1);
    CHECK_EQ_INT(ep2, ep + 2);
    CHECK_EQ_INT(tcoord_add_partitions(c, id, pid, ep, P, 1, 3), KAFKA_ERR_PRODUCER_FENCED);
    CHECK_EQ_INT(tcoord_end_txn(c, id, pid, ep, true, 3), KAFKA_ERR_PRODUCER_FENCED);
    /* KIP-360 re-init naming a wrong epoch is fenced; the right one bumps. */
    CHECK_EQ_INT(tcoord_init_producer(c, id, 60000, pid, ep, 4, &pid2, &ep2), KAFKA_ERR_PRODUCER_FENCED);
    CHECK_EQ_INT(tcoord_init_producer(c, id, 60000, pid + 5, ep + 2, 4, &pid2, &ep2),
                 KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING);
    REQUIRE(tcoord_init_producer(c, id, 60000, pid, (int16_t)(ep + 2), 4, &pid2, &ep2) == 0);
    CHECK_EQ_INT(ep2, ep + 3);
    tcoord_destroy(c);
    fake_free(&f);
}

static void test_timeout_and_expiry(void) {
    fake f;
    tcoord_config cfg;
    tcoord_config_default(&cfg);
    cfg.abort_check_interval_ms = 100;
    cfg.id_expiration_ms = 5000;
    tcoord *c = make(&f, &cfg);
    int64_t pid;
    int16_t ep;
    kstr id = kstr_c("slow");
    REQUIRE(tcoord_init_producer(c, id, 1000, -1, -1, 0, &pid, &ep) == 0);
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 2, 100) == 0);
    tcoord_tick(c, 500);
    tcoord_tick(c, 1000);
    CHECK_EQ_INT(f.aborts, 0);
    CHECK(tcoord_next_deadline(c) <= 1100);
    tcoord_tick(c, 1200);
    CHECK_EQ_INT(f.aborts, 1);
    tcoord_info i;
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_ABORT);
    CHECK_EQ_INT(i.epoch, ep + 1);
    /* The timed-out producer is fenced. */
    CHECK_EQ_INT(tcoord_end_txn(c, id, pid, ep, true, 1300), KAFKA_ERR_PRODUCER_FENCED);
    /* Idle past transactional.id.expiration.ms: a tombstone, gone. */
    tcoord_tick(c, 1200 + 5000 + 200);
    CHECK_EQ_INT(tcoord_describe(c, id, &i), KAFKA_ERR_TRANSACTIONAL_ID_NOT_FOUND);
    CHECK_EQ_INT(f.vlen[f.n - 1], -1);
    tcoord_destroy(c);
    fake_free(&f);
}

static void test_marker_retry(void) {
    fake f;
    tcoord *c = make(&f, NULL);
    int64_t pid;
    int16_t ep;
    kstr id = kstr_c("late");
    REQUIRE(tcoord_init_producer(c, id, 60000, -1, -1, 0, &pid, &ep) == 0);
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 1, 1) == 0);
    f.marker_err = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    /* EndTxn is answered once PrepareCommit is written. */
    REQUIRE(tcoord_end_txn(c, id, pid, ep, true, 2) == 0);
    tcoord_info i;
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_PREPARE_COMMIT);
    CHECK_EQ_INT(tcoord_end_txn(c, id, pid, ep, true, 3), KAFKA_ERR_CONCURRENT_TRANSACTIONS);
    CHECK_EQ_INT(tcoord_add_partitions(c, id, pid, ep, P, 1, 3), KAFKA_ERR_CONCURRENT_TRANSACTIONS);
    /* (the AddPartitionsToTxn at 3 tried the markers again) */
    CHECK(tcoord_next_deadline(c) <= 3 + TCOORD_MARKER_RETRY_MS);
    tcoord_tick(c, 3 + TCOORD_MARKER_RETRY_MS - 1);
    CHECK_EQ_INT(f.commits, 0);
    f.marker_err = 0;
    tcoord_tick(c, 3 + TCOORD_MARKER_RETRY_MS);
    CHECK_EQ_INT(f.commits, 1);
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_COMMIT);
    /* A failed append changes nothing. */
    f.append_err = KAFKA_ERR_KAFKA_STORAGE_ERROR;
    CHECK_EQ_INT(tcoord_add_partitions(c, id, pid, ep, P, 1, 5000), KAFKA_ERR_NOT_COORDINATOR);
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_COMMIT);
    tcoord_destroy(c);
    fake_free(&f);
}

/* Markers delivered asynchronously (to other brokers): the owner's
 * progress event finishes the transaction at once, not at the retry. */
static void test_markers_progress(void) {
    fake f;
    tcoord *c = make(&f, NULL);
    int64_t pid;
    int16_t ep;
    kstr id = kstr_c("remote");
    REQUIRE(tcoord_init_producer(c, id, 60000, -1, -1, 0, &pid, &ep) == 0);
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 3, 1) == 0);
    f.marker_err = KAFKA_ERR_CONCURRENT_TRANSACTIONS; /* on their way */
    REQUIRE(tcoord_end_txn(c, id, pid, ep, true, 2) == 0);
    tcoord_info i;
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_PREPARE_COMMIT);
    /* Progress for another id, or while still pending, changes nothing. */
    tcoord_markers_progress(c, kstr_c("other"), 3);
    tcoord_markers_progress(c, id, 3);
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_PREPARE_COMMIT);
    f.marker_err = 0; /* delivered */
    tcoord_markers_progress(c, id, 4);
    REQUIRE(tcoord_describe(c, id, &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_COMMIT);
    CHECK_EQ_INT(f.commits, 1);
    /* A late progress event for a finished transaction is harmless. */
    tcoord_markers_progress(c, id, 5);
    CHECK_EQ_INT(f.commits, 1);
    REQUIRE(tcoord_add_partitions(c, id, pid, ep, P, 1, 6) == 0);
    tcoord_destroy(c);
    fake_free(&f);
}

static void test_reload(void) {
    fake f;
    tcoord *c = make(&f, NULL);
    int64_t pid;
    int16_t ep;
    REQUIRE(tcoord_init_producer(c, kstr_c("x"), 60000, -1, -1, 0, &pid, &ep) == 0);
    REQUIRE(tcoord_add_partitions(c, kstr_c("x"), pid, ep, P, 3, 1) == 0);
    int64_t pid2;
    int16_t ep2;
    REQUIRE(tcoord_init_producer(c, kstr_c("y"), 60000, -1, -1, 0, &pid2, &ep2) == 0);
    f.marker_err = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    REQUIRE(tcoord_add_partitions(c, kstr_c("y"), pid2, ep2, P, 1, 1) == 0);
    REQUIRE(tcoord_end_txn(c, kstr_c("y"), pid2, ep2, false, 2) == 0);
    f.marker_err = 0;
    CHECK_EQ_INT(tcoord_unload(c, -1), true);
    CHECK_EQ_INT(tcoord_describe(c, kstr_c("x"), &(tcoord_info){0}), KAFKA_ERR_NOT_COORDINATOR);
    REQUIRE(tcoord_load_begin(c, 1, 10));
    int64_t p3;
    int16_t e3;
    CHECK_EQ_INT(tcoord_init_producer(c, kstr_c("x"), 1, -1, -1, 0, &p3, &e3),
                 KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    int n = f.n;
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(tcoord_load_record(c, (kbytes){f.keys[i], f.klen[i]}, (kbytes){f.vals[i], f.vlen[i]}),
                     0);
    CHECK_EQ_INT(tcoord_load_record(c, (kbytes){(const uint8_t *)"zz", 2}, (kbytes){NULL, -1}), -1);
    tcoord_load_end(c, 10);
    tcoord_info i;
    REQUIRE(tcoord_describe(c, kstr_c("x"), &i) == 0);
    CHECK_EQ_INT(i.state, TREC_ONGOING);
    CHECK_EQ_INT(i.n_parts, 3);
    CHECK_EQ_INT(i.producer_id, pid);
    REQUIRE(tcoord_describe(c, kstr_c("y"), &i) == 0);
    CHECK_EQ_INT(i.state, TREC_PREPARE_ABORT);
    /* The pending abort completes at the first tick. */
    tcoord_tick(c, 11);
    CHECK_EQ_INT(f.aborts, 1);
    REQUIRE(tcoord_describe(c, kstr_c("y"), &i) == 0);
    CHECK_EQ_INT(i.state, TREC_COMPLETE_ABORT);
    CHECK_EQ_INT(tcoord_count(c), 2);
    tcoord_destroy(c);
    fake_free(&f);
}

int main(void) {
    UNIT_RUN(test_records);
    UNIT_RUN(test_commit_abort);
    UNIT_RUN(test_fence);
    UNIT_RUN(test_timeout_and_expiry);
    UNIT_RUN(test_marker_retry);
    UNIT_RUN(test_markers_progress);
    UNIT_RUN(test_reload);
    return UNIT_END("test_txn");
}
