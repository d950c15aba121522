/*
 * replica.c - one partition's replica state machine. See replica.h.
 */
#include "replica/replica.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"

typedef struct producer_batch {
    int64_t pid;
    int16_t epoch;
    int32_t first_seq, last_seq;
    int64_t max_ts;
    const uint8_t *at; /* the batch's bytes */
    size_t size;
    bool transactional;
} producer_batch;

struct replica {
    replica_state st;
    replica_port port;
    replica_epoch_entry *epochs;
    int n_epochs;
    pstate *producers;
    /* Leader: the followers that fetched in this leadership (allocated on
     * the first one; at most REPLICA_ISR_MAX), and a proposed ISR. */
    replica_follower *fol;
    int32_t n_fol, cap_fol;
    int32_t *pending;
    int64_t lead_since_ms; /* when this leadership began */
};

/* O(1) checks always (this is on the produce path); the walks over the
 * epoch cache and the ISR in checked builds. */
static void check_invariants(const replica *r) {
    const replica_state *s = &r->st;
    if (s->role != REPLICA_OFFLINE) {
        assert(s->log_start <= s->hw);
        assert(s->hw <= s->leo);
    }
    assert(r->n_epochs >= 0 && r->n_epochs <= REPLICA_EPOCHS_MAX);
#ifdef SLUICE_DEEP_CHECKS
    for (int i = 1; i < r->n_epochs; i++) {
        assert(r->epochs[i].epoch > r->epochs[i - 1].epoch);
        assert(r->epochs[i].start_offset >= r->epochs[i - 1].start_offset);
    }
    if (r->n_epochs > 0 && s->role != REPLICA_OFFLINE)
        assert(r->epochs[r->n_epochs - 1].start_offset <= s->leo);
    if (s->role == REPLICA_LEADER) {
        bool self = false;
        for (int32_t i = 0; i < s->n_isr; i++)
            self |= s->isr[i] == s->node_id;
        assert(self);
    }
#endif
}

static void refresh_offsets(replica *r) {
    int64_t start = 0, end = 0;
    r->port.offsets(r->port.ctx, &start, &end);
    r->st.log_start = start;
    r->st.leo = end;
    if (r->st.hw > end)
        r->st.hw = end;
    if (r->st.hw < start)
        r->st.hw = start;
}

static void notify(replica *r) {
    if (r->port.changed)
        r->port.changed(r->port.ctx, r);
}

static replica_follower *follower_of(const replica *r, int32_t id) {
    for (int32_t i = 0; i < r->n_fol; i++)
        if (r->fol[i].id == id)
            return &r->fol[i];
    return NULL;
}

/* A member's log end as the leader knows it: its own, a follower's last
 * fetch, or -1 (not fetched yet in this leadership). */
static int64_t member_leo(const replica *r, int32_t id) {
    if (id == r->st.node_id)
        return r->st.leo;
    const replica_follower *f = follower_of(r, id);
    return f ? f->leo : -1;
}

/* The HW as the ISR allows: the smallest log end over the committed ISR and
 * any proposed one (with only this replica in them, its log end). It never
 * moves back: a member that has not fetched yet holds it where it is. */
static void advance_hw(replica *r) {
    if (r->st.role != REPLICA_LEADER)
        return;
    int64_t hw = r->st.leo;
    for (int32_t i = 0; i < r->st.n_isr; i++) {
        int64_t e = member_leo(r, r->st.isr[i]);
        if (e < hw)
            hw = e;
    }
    for (int32_t i = 0; i < r->st.n_pending; i++) {
        int64_t e = member_leo(r, r->pending[i]);
        if (e < hw)
            hw = e;
    }
    if (hw > r->st.hw) {
        r->st.hw = hw;
        notify(r);
    }
}

replica *replica_create(int32_t node_id, const replica_port *port, const replica_epoch_entry *epochs,
                        int n_epochs, int64_t hw) {
    replica *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->port = *port;
    r->st.role = REPLICA_OFFLINE;
    r->st.node_id = node_id;
    r->st.leader_id = -1;
    r->st.leader_epoch = -1;
    r->st.partition_epoch = -1;
    r->epochs = calloc(REPLICA_EPOCHS_MAX, sizeof *r->epochs);
    r->producers = pstate_create(0, 0);
    if (r->epochs == NULL || r->producers == NULL) {
        free(r->epochs);
        pstate_destroy(r->producers);
        free(r);
        return NULL;
    }
    refresh_offsets(r);
    /* Keep only a consistent prefix of what the checkpoint said. */
    for (int i = 0; i < n_epochs && r->n_epochs < REPLICA_EPOCHS_MAX; i++) {
        const replica_epoch_entry *e = &epochs[i];
        if (e->epoch < 0 || e->start_offset < 0 || e->start_offset > r->st.leo)
            break;
        if (r->n_epochs > 0 && (e->epoch <= r->epochs[r->n_epochs - 1].epoch ||
                                e->start_offset < r->epochs[r->n_epochs - 1].start_offset))
            break;
        r->epochs[r->n_epochs++] = *e;
    }
    r->st.hw = hw;
    refresh_offsets(r);
    return r;
}

void replica_destroy(replica *r) {
    if (r == NULL)
        return;
    free(r->epochs);
    pstate_destroy(r->producers);
    free(r->fol);
    free(r->pending);
    free(r);
}

pstate *replica_producers(replica *r) { return r->producers; }

const replica_state *replica_get_state(const replica *r) { return &r->st; }

int replica_epochs(const replica *r, const replica_epoch_entry **out) {
    *out = r->epochs;
    return r->n_epochs;
}

/* Records that `epoch` starts at `offset` (a batch of a newer epoch). */
static void epochs_assign(replica *r, int32_t epoch, int64_t offset) {
    if (epoch < 0)
        return;
    if (r->n_epochs > 0 && r->epochs[r->n_epochs - 1].epoch >= epoch)
        return; /* not newer (appends within one epoch) */
    if (r->n_epochs == REPLICA_EPOCHS_MAX) {
        memmove(r->epochs, r->epochs + 1, (REPLICA_EPOCHS_MAX - 1) * sizeof *r->epochs);
        r->n_epochs--;
    }
    r->epochs[r->n_epochs++] = (replica_epoch_entry){epoch, offset};
    if (r->port.save_epochs)
        r->port.save_epochs(r->port.ctx, r->epochs, r->n_epochs);
}

/* Drops cache entries that start at or past offset. */
static void epochs_truncate(replica *r, int64_t offset) {
    int n = r->n_epochs;
    while (n > 0 && r->epochs[n - 1].start_offset >= offset)
        n--;
    if (n != r->n_epochs) {
        r->n_epochs = n;
        if (r->port.save_epochs)
            r->port.save_epochs(r->port.ctx, r->epochs, r->n_epochs);
    }
}

int16_t replica_become_leader(replica *r, int32_t leader_epoch, int32_t partition_epoch, const int32_t *isr,
                              int32_t n_isr, int64_t now) {
    check_invariants(r);
    if (leader_epoch < r->st.leader_epoch)
        return KAFKA_ERR_FENCED_LEADER_EPOCH;
    if (n_isr <= 0 || n_isr > REPLICA_ISR_MAX)
        return KAFKA_ERR_INVALID_REQUEST;
    bool self = false;
    for (int32_t i = 0; i < n_isr; i++)
        self |= isr[i] == r->st.node_id;
    if (!self)
        return KAFKA_ERR_INVALID_REQUEST;
    bool new_leadership = r->st.role != REPLICA_LEADER || leader_epoch != r->st.leader_epoch;
    r->st.role = REPLICA_LEADER;
    r->st.leader_id = r->st.node_id;
    r->st.leader_epoch = leader_epoch;
    if (partition_epoch != r->st.partition_epoch)
        r->st.n_pending = 0; /* the proposal was decided, one way or the other */
    r->st.partition_epoch = partition_epoch;
    r->st.n_isr = n_isr;
    memcpy(r->st.isr, isr, (size_t)n_isr * sizeof *isr);
    if (new_leadership) {
        /* Positions are learnt again from the followers' fetches; each gets
         * a full lag window from now. */
        for (int32_t i = 0; i < r->n_fol; i++) {
            r->fol[i].leo = -1;
            r->fol[i].caught_up_ms = now;
            r->fol[i].prev_fetch_ms = now;
            r->fol[i].prev_fetch_leader_leo = -1;
        }
        r->st.n_pending = 0;
        r->lead_since_ms = now;
    }
    refresh_offsets(r);
    /* The new epoch starts at the log end: appends from now on carry it. */
    epochs_assign(r, leader_epoch, r->st.leo);
    advance_hw(r);
    notify(r);
    check_invariants(r);
    return 0;
}

int16_t replica_become_follower(replica *r, int32_t leader_id, int32_t leader_epoch, int32_t partition_epoch,
                                int64_t now) {
    (void)now;
    check_invariants(r);
    if (leader_epoch < r->st.leader_epoch)
        return KAFKA_ERR_FENCED_LEADER_EPOCH;
    r->st.role = REPLICA_FOLLOWER;
    r->st.leader_id = leader_id;
    r->st.leader_epoch = leader_epoch;
    r->st.partition_epoch = partition_epoch;
    r->st.n_isr = 0;
    r->st.n_pending = 0;
    r->n_fol = 0;
    refresh_offsets(r);
    notify(r);
    check_invariants(r);
    return 0;
}

void replica_go_offline(replica *r) {
    r->st.role = REPLICA_OFFLINE;
    notify(r);
}

int16_t replica_check_epoch(const replica *r, int32_t current_leader_epoch, bool leader_only) {
    if (r->st.role == REPLICA_OFFLINE)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    if (current_leader_epoch >= 0 && current_leader_epoch != r->st.leader_epoch)
        return current_leader_epoch < r->st.leader_epoch ? KAFKA_ERR_FENCED_LEADER_EPOCH
                                                         : KAFKA_ERR_UNKNOWN_LEADER_EPOCH;
    if (leader_only && r->st.role != REPLICA_LEADER)
        return KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    return 0;
}

/* ---- idempotent producers ---------------------------------------------------------------- */

/* The marker type of a control batch: BATCH_CONTROL_COMMIT / _ABORT, or
 * -1 when its first record is not a control key. */
static int control_type(const uint8_t *bytes, size_t size) {
    arena a;
    arena_init(&a, 1 << 16);
    batch_iter it;
    batch_record rec;
    int16_t ver, type;
    int t = -1;
    if (batch_iter_init(&it, bytes, size, &a) == BATCH_OK && batch_iter_next(&it, &rec) &&
        batch_control_key(&rec, &ver, &type))
        t = type;
    arena_reset(&a);
    return t;
}

void replica_learn_batch(replica *r, const batch_header *h, const uint8_t *bytes, size_t size, int64_t now) {
    if (h->producer_id < 0)
        return;
    int64_t last = batch_last_offset(h);
    if (last < 0)
        return;
    if (h->attributes & BATCH_ATTR_CONTROL) {
        int t = bytes ? control_type(bytes, size) : -1;
        if (t == BATCH_CONTROL_COMMIT || t == BATCH_CONTROL_ABORT)
            (void)pstate_txn_end(r->producers, h->producer_id, t == BATCH_CONTROL_COMMIT, h->base_offset);
        return;
    }
    if (h->base_sequence < 0)
        return;
    pstate_batch b = {h->base_sequence, pstate_last_seq(h->base_sequence, h->record_count), h->base_offset,
                      last, h->max_timestamp};
    if (pstate_update(r->producers, h->producer_id, h->producer_epoch, &b, now) == 0 &&
        (h->attributes & BATCH_ATTR_TRANSACTIONAL))
        pstate_txn_data(r->producers, h->producer_id, h->base_offset);
}

/* The producer rules for a leader's append (producer_state.h). pb->pid is
 * the producer of the one idempotent batch (-1: none). A duplicate is
 * answered in out (out->duplicate, with the original offsets). Storage
 * validates everything else about the bytes afterwards. */
static int16_t producer_check(replica *r, const uint8_t *buf, size_t len, producer_batch *pb,
                              replica_append_result *out) {
    pb->pid = -1;
    out->info.error_record = -1;
    batch_cursor cur;
    batch_cursor_init(&cur, buf, len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    int n = 0, idem = 0;
    /* Bounded by len: a batch is at least the header's size. */
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        n++;
        if (h.attributes & BATCH_ATTR_CONTROL) {
            snprintf(
                out->info.error_msg, sizeof out->info.error_msg,
                "a control batch (producer %lld) in a produce request: markers come from the transaction "
                "coordinator only",
                (long long)h.producer_id);
            return KAFKA_ERR_INVALID_RECORD;
        }
        if (h.producer_id >= 0 && h.base_sequence >= 0 && idem++ == 0) {
            pb->transactional = (h.attributes & BATCH_ATTR_TRANSACTIONAL) != 0;
            pb->pid = h.producer_id;
            pb->epoch = h.producer_epoch;
            pb->first_seq = h.base_sequence;
            pb->last_seq = pstate_last_seq(h.base_sequence, h.record_count > 0 ? h.record_count : 1);
            pb->max_ts = h.max_timestamp;
            pb->at = bp;
            pb->size = bsize;
        }
    }
    if (pb->pid < 0)
        return 0; /* no producer rules; malformed bytes are storage's to name */
    if (n > 1) {
        snprintf(out->info.error_msg, sizeof out->info.error_msg,
                 "an idempotent batch (producer %lld) must be the only batch of its partition",
                 (long long)pb->pid);
        out->info.error_record = -1;
        return KAFKA_ERR_INVALID_RECORD;
    }
    if (pb->epoch < 0) {
        snprintf(out->info.error_msg, sizeof out->info.error_msg, "producer %lld has epoch %d",
                 (long long)pb->pid, pb->epoch);
        return KAFKA_ERR_INVALID_RECORD;
    }
    pstate_batch dup;
    int16_t cur_epoch;
    pstate_verdict v =
        pstate_check(r->producers, pb->pid, pb->epoch, pb->first_seq, pb->last_seq, &dup, &cur_epoch);
    /* A damaged batch is storage's to refuse (CORRUPT_MESSAGE), not a
     * retry or a sequence error: its producer fields cannot be trusted. The
     * CRC is checked here only off the append path (storage checks it
     * there), so in-order batches pay nothing. */
    if (v != PSTATE_APPEND && !batch_crc_ok(pb->at, pb->size)) {
        pb->pid = -1;
        return 0;
    }
    const pstate_entry *e = pstate_get(r->producers, pb->pid);
    const pstate_batch *nb = e ? pstate_newest(e) : NULL;
    char *msg = out->info.error_msg;
    size_t msgn = sizeof out->info.error_msg;
    switch (v) {
    case PSTATE_APPEND:
        return 0;
    case PSTATE_DUPLICATE: {
        replica_offsets o;
        replica_get_offsets(r, &o);
        out->duplicate = true;
        out->base_offset = dup.first_offset;
        out->last_offset = dup.last_offset;
        out->log_append_time = -1;
        out->log_start_offset = o.log_start;
        out->hw = o.hw;
        out->info.base_offset = dup.first_offset;
        out->info.last_offset = dup.last_offset;
        out->info.log_append_time = -1;
        out->info.log_start_offset = o.log_start;
        out->info.batches = 0;
        out->info.records = 0;
        return 0;
    }
    case PSTATE_FENCED:
        snprintf(msg, msgn, "producer %lld: epoch %d is older than the current epoch %d", (long long)pb->pid,
                 pb->epoch, cur_epoch);
        return KAFKA_ERR_INVALID_PRODUCER_EPOCH;
    case PSTATE_OUT_OF_ORDER:
        if (pb->epoch > cur_epoch)
            snprintf(msg, msgn, "producer %lld: new epoch %d must start at sequence 0, not %d",
                     (long long)pb->pid, pb->epoch, pb->first_seq);
        else
            snprintf(msg, msgn, "producer %lld epoch %d: sequence %d does not follow %d", (long long)pb->pid,
                     pb->epoch, pb->first_seq, nb ? nb->last_seq : -1);
        return KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case PSTATE_UNKNOWN_PRODUCER:
        snprintf(msg, msgn, "producer %lld is unknown to this partition and its batch starts at sequence %d",
                 (long long)pb->pid, pb->first_seq);
        return KAFKA_ERR_UNKNOWN_PRODUCER_ID;
    }
    return 0;
}

int16_t replica_append(replica *r, uint8_t *buf, size_t len, int64_t now, replica_append_result *out) {
    check_invariants(r);
    memset(out, 0, sizeof *out);
    int16_t err = replica_check_epoch(r, -1, true);
    if (err)
        return err;
    plog_append_info info;
    memset(&info, 0, sizeof info);
    info.error_record = -1;
    producer_batch pb = {-1, -1, -1, -1, -1, NULL, 0, false};
    err = producer_check(r, buf, len, &pb, out);
    if (err || out->duplicate)
        return err;
    err = r->port.append(r->port.ctx, buf, len, true, r->st.leader_epoch, now, &info);
    out->info = info;
    if (err)
        return err;
    if (pb.pid >= 0) {
        pstate_batch b = {pb.first_seq, pb.last_seq, info.base_offset, info.last_offset, pb.max_ts};
        if (pstate_update(r->producers, pb.pid, pb.epoch, &b, now) == 0 && pb.transactional)
            pstate_txn_data(r->producers, pb.pid, info.base_offset);
    }
    refresh_offsets(r);
    epochs_assign(r, r->st.leader_epoch, info.base_offset);
    int64_t hw_before = r->st.hw;
    advance_hw(r);
    /* Followers long-poll for the log end, not the HW: wake them. */
    if (r->st.hw == hw_before && (r->st.n_isr > 1 || r->n_fol > 0))
        notify(r);
    out->base_offset = info.base_offset;
    out->last_offset = info.last_offset;
    out->log_append_time = info.log_append_time;
    out->log_start_offset = info.log_start_offset;
    out->hw = r->st.hw;
    check_invariants(r);
    return 0;
}

int16_t replica_append_as_follower(replica *r, uint8_t *buf, size_t len, int64_t now,
                                   replica_append_result *out) {
    check_invariants(r);
    memset(out, 0, sizeof *out);
    if (r->st.role == REPLICA_OFFLINE)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    if (r->st.role != REPLICA_FOLLOWER)
        return KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    plog_append_info info;
    memset(&info, 0, sizeof info);
    int16_t err = r->port.append(r->port.ctx, buf, len, false, -1, now, &info);
    out->info = info;
    if (err)
        return err;
    /* Each batch carries the epoch of the leader that wrote it. */
    batch_cursor cur;
    batch_cursor_init(&cur, buf, len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        epochs_assign(r, h.partition_leader_epoch, h.base_offset);
        replica_learn_batch(r, &h, bp, bsize, now);
    }
    refresh_offsets(r);
    out->base_offset = info.base_offset;
    out->last_offset = info.last_offset;
    out->log_append_time = info.log_append_time;
    out->log_start_offset = info.log_start_offset;
    out->hw = r->st.hw;
    check_invariants(r);
    return 0;
}

/* The last stable offset: the HW, or the first offset of the earliest
 * open transaction when that is lower. */
static int64_t last_stable(const replica *r) {
    int64_t first = pstate_first_open(r->producers);
    return first >= 0 && first < r->st.hw ? (first > r->st.log_start ? first : r->st.log_start) : r->st.hw;
}

int64_t replica_last_stable(replica *r) {
    refresh_offsets(r);
    return last_stable(r);
}

int32_t replica_aborted(const replica *r, int64_t from, int64_t to, pstate_aborted *out, int32_t max) {
    return pstate_aborted_in(r->producers, from, to, out, max);
}

int16_t replica_write_marker(replica *r, int64_t producer_id, int16_t epoch, bool commit,
                             int32_t coordinator_epoch, int64_t now, int64_t *offset) {
    check_invariants(r);
    int16_t err = replica_check_epoch(r, -1, true);
    if (err)
        return err;
    uint8_t key[4], val[6];
    wire_put_be16(key, 0);
    wire_put_be16(key + 2, commit ? BATCH_CONTROL_COMMIT : BATCH_CONTROL_ABORT);
    wire_put_be16(val, 0);
    wire_put_be32(val + 2, (uint32_t)coordinator_epoch);
    batch_build_record rec = {.key = {key, 4}, .value = {val, 6}, .timestamp = now};
    batch_build_opts o = batch_build_defaults();
    o.extra_attributes = BATCH_ATTR_CONTROL | BATCH_ATTR_TRANSACTIONAL;
    o.producer_id = producer_id;
    o.producer_epoch = epoch;
    o.base_sequence = -1;
    arena a;
    arena_init(&a, 1 << 16);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (batch_build(&o, &rec, 1, &a, &buf, &len) != BATCH_OK) {
        arena_reset(&a);
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    plog_append_info info;
    memset(&info, 0, sizeof info);
    info.error_record = -1;
    err = r->port.append_marker ? r->port.append_marker(r->port.ctx, buf, len, r->st.leader_epoch, now, &info)
                                : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    arena_reset(&a);
    if (err)
        return err;
    if (pstate_txn_end(r->producers, producer_id, commit, info.base_offset) != 0)
        err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    refresh_offsets(r);
    epochs_assign(r, r->st.leader_epoch, info.base_offset);
    int64_t hw_before = r->st.hw;
    advance_hw(r);
    if (r->st.hw == hw_before)
        notify(r); /* the LSO moved: read_committed fetches may answer */
    *offset = info.base_offset;
    check_invariants(r);
    return err;
}

int16_t replica_read(replica *r, int64_t offset, int64_t max_bytes, bool follower, bool read_committed,
                     plog_read_result *res) {
    if (r->st.role == REPLICA_OFFLINE)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    refresh_offsets(r);
    int64_t bound = follower ? r->st.leo : read_committed ? last_stable(r) : r->st.hw;
    /* Past the bound but within the log is not an error for a consumer:
     * it is data not yet committed; the answer is empty. */
    if (offset > bound && offset <= r->st.leo) {
        memset(res, 0, sizeof *res);
        res->log_end_offset = r->st.leo;
        res->log_start_offset = r->st.log_start;
        return 0;
    }
    return r->port.read(r->port.ctx, offset, max_bytes, bound, res);
}

void replica_get_offsets(replica *r, replica_offsets *out) {
    refresh_offsets(r);
    out->hw = r->st.hw;
    out->last_stable = last_stable(r);
    out->log_start = r->st.log_start;
    out->leo = r->st.leo;
}

/* The epoch of the batch holding offset, from the cache; -1 if unknown. */
static int32_t epoch_of(const replica *r, int64_t offset) {
    int32_t e = -1;
    for (int i = 0; i < r->n_epochs && r->epochs[i].start_offset <= offset; i++)
        e = r->epochs[i].epoch;
    return e;
}

int16_t replica_list_offset(replica *r, int64_t ts, int64_t *offset, int64_t *timestamp, int32_t *epoch) {
    if (r->st.role == REPLICA_OFFLINE)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    refresh_offsets(r);
    *timestamp = -1;
    *epoch = -1;
    int16_t err = 0;
    if (ts == PLOG_TS_EARLIEST) {
        *offset = r->st.log_start;
    } else if (ts == PLOG_TS_LATEST) {
        *offset = r->st.hw;
    } else {
        err = r->port.offset_for_time(r->port.ctx, ts, offset, timestamp);
        if (err)
            return err;
        if (*offset >= r->st.hw && ts != PLOG_TS_MAX) {
            /* Not yet committed: consumers do not see it. */
            *offset = -1;
            *timestamp = -1;
        }
    }
    if (*offset >= 0) {
        /* The epoch of the record at the offset; for the log end, the
         * latest epoch. */
        int64_t at = *offset < r->st.leo ? *offset : r->st.leo;
        *epoch = epoch_of(r, at);
        if (*epoch < 0)
            *epoch = r->st.leader_epoch;
    }
    return 0;
}

void replica_end_offset_for_epoch(const replica *r, int32_t epoch, int32_t *out_epoch, int64_t *end_offset) {
    *out_epoch = -1;
    *end_offset = -1;
    if (epoch < 0)
        return;
    /* The current epoch ends at the log end, even before a batch of it was
     * written; an epoch newer than any this replica knows has no end (as
     * Kafka answers: undefined). */
    int32_t latest = r->n_epochs > 0 ? r->epochs[r->n_epochs - 1].epoch : -1;
    if (r->st.role == REPLICA_LEADER && r->st.leader_epoch > latest)
        latest = r->st.leader_epoch;
    if (epoch > latest)
        return;
    if (epoch == latest && r->st.role != REPLICA_OFFLINE) {
        *out_epoch = epoch;
        *end_offset = r->st.leo;
        return;
    }
    int found = -1;
    for (int i = 0; i < r->n_epochs; i++)
        if (r->epochs[i].epoch <= epoch)
            found = i;
    if (found < 0) {
        /* Older than everything cached: it ends where the oldest starts. */
        if (r->n_epochs > 0 && epoch < r->epochs[0].epoch) {
            *out_epoch = epoch;
            *end_offset = r->epochs[0].start_offset;
        }
        return;
    }
    *out_epoch = r->epochs[found].epoch;
    *end_offset = found + 1 < r->n_epochs ? r->epochs[found + 1].start_offset : r->st.leo;
}

int16_t replica_delete_records(replica *r, int64_t offset, int64_t *low) {
    check_invariants(r);
    int16_t err = replica_check_epoch(r, -1, true);
    if (err)
        return err;
    refresh_offsets(r);
    if (offset == -1)
        offset = r->st.hw;
    if (offset < 0 || offset > r->st.hw)
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    int64_t before = r->st.log_start;
    err = r->port.delete_records(r->port.ctx, offset, low);
    refresh_offsets(r);
    if (r->st.log_start != before)
        notify(r); /* fetches below the new start answer now */
    check_invariants(r);
    return err;
}

int16_t replica_truncate(replica *r, int64_t offset) {
    check_invariants(r);
    if (r->st.role == REPLICA_OFFLINE)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    int16_t err = r->port.truncate(r->port.ctx, offset);
    if (err)
        return err;
    epochs_truncate(r, offset);
    pstate_truncate(r->producers, offset);
    refresh_offsets(r);
    notify(r);
    check_invariants(r);
    return 0;
}

/* ---- replication ------------------------------------------------------------------------- */

bool replica_in_isr(const replica *r, int32_t id) {
    for (int32_t i = 0; i < r->st.n_isr; i++)
        if (r->st.isr[i] == id)
            return true;
    return false;
}

int16_t replica_follower_fetch(replica *r, int32_t id, int64_t fetch_offset, int64_t now, bool *join) {
    check_invariants(r);
    *join = false;
    if (r->st.role != REPLICA_LEADER)
        return r->st.role == REPLICA_OFFLINE ? KAFKA_ERR_KAFKA_STORAGE_ERROR
                                             : KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    if (id == r->st.node_id || id < 0)
        return KAFKA_ERR_INVALID_REQUEST;
    refresh_offsets(r);
    replica_follower *f = follower_of(r, id);
    if (f == NULL) {
        if (r->n_fol == r->cap_fol) {
            int32_t ncap = r->cap_fol ? r->cap_fol * 2 : 2;
            if (ncap > REPLICA_ISR_MAX || r->n_fol >= REPLICA_ISR_MAX)
                return KAFKA_ERR_INVALID_REQUEST;
            replica_follower *nf = realloc(r->fol, (size_t)ncap * sizeof *nf);
            if (nf == NULL)
                return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            r->fol = nf;
            r->cap_fol = ncap;
        }
        f = &r->fol[r->n_fol++];
        *f = (replica_follower){id, -1, now, now, -1};
    }
    /* A follower cannot have more than the leader: its fetch offset is
     * past the log end only after a truncation here it has not seen yet. */
    int64_t leo = fetch_offset < r->st.leo ? fetch_offset : r->st.leo;
    if (fetch_offset >= r->st.leo)
        f->caught_up_ms = now;
    else if (f->prev_fetch_leader_leo >= 0 && fetch_offset >= f->prev_fetch_leader_leo)
        f->caught_up_ms = f->prev_fetch_ms > f->caught_up_ms ? f->prev_fetch_ms : f->caught_up_ms;
    f->leo = leo;
    f->prev_fetch_ms = now;
    f->prev_fetch_leader_leo = r->st.leo;
    advance_hw(r);
    if (!replica_in_isr(r, id)) {
        int64_t epoch_start = r->n_epochs > 0 ? r->epochs[r->n_epochs - 1].start_offset : 0;
        *join = f->leo >= r->st.hw && f->leo >= epoch_start;
    }
    check_invariants(r);
    return 0;
}

int32_t replica_lagging(const replica *r, int64_t now, int64_t lag_max_ms, int32_t *out, int32_t max) {
    int32_t n = 0;
    if (r->st.role != REPLICA_LEADER)
        return 0;
    for (int32_t i = 0; i < r->st.n_isr && n < max; i++) {
        int32_t id = r->st.isr[i];
        if (id == r->st.node_id)
            continue;
        const replica_follower *f = follower_of(r, id);
        /* One that never fetched in this leadership is measured from when
         * it began (become_leader gave known followers that time). */
        int64_t since = f ? f->caught_up_ms : r->lead_since_ms;
        if (now - since > lag_max_ms)
            out[n++] = id;
    }
    return n;
}

void replica_set_pending_isr(replica *r, const int32_t *isr, int32_t n) {
    if (n <= 0 || isr == NULL || r->st.role != REPLICA_LEADER) {
        r->st.n_pending = 0;
        return;
    }
    if (n > REPLICA_ISR_MAX)
        n = REPLICA_ISR_MAX;
    if (r->pending == NULL && (r->pending = calloc(REPLICA_ISR_MAX, sizeof *r->pending)) == NULL) {
        r->st.n_pending = 0;
        return;
    }
    memcpy(r->pending, isr, (size_t)n * sizeof *isr);
    r->st.n_pending = n;
}

int32_t replica_pending_isr(const replica *r, const int32_t **isr) {
    *isr = r->pending;
    return r->st.n_pending;
}

void replica_follower_hw(replica *r, int64_t leader_hw) {
    check_invariants(r);
    if (r->st.role != REPLICA_FOLLOWER)
        return;
    refresh_offsets(r);
    int64_t hw = leader_hw < r->st.leo ? leader_hw : r->st.leo;
    if (hw < r->st.log_start)
        hw = r->st.log_start;
    if (hw != r->st.hw) {
        r->st.hw = hw;
        notify(r);
    }
    check_invariants(r);
}

int16_t replica_follower_log_start(replica *r, int64_t leader_log_start) {
    check_invariants(r);
    if (r->st.role != REPLICA_FOLLOWER)
        return 0;
    int64_t to = leader_log_start < r->st.hw ? leader_log_start : r->st.hw;
    if (to <= r->st.log_start)
        return 0;
    int64_t low = -1;
    int16_t err = r->port.delete_records(r->port.ctx, to, &low);
    refresh_offsets(r);
    notify(r);
    check_invariants(r);
    return err;
}

bool replica_diverging(const replica *r, int32_t last_fetched_epoch, int64_t fetch_offset, int32_t *epoch,
                       int64_t *end_offset) {
    if (last_fetched_epoch < 0)
        return false;
    int32_t e;
    int64_t end;
    replica_end_offset_for_epoch(r, last_fetched_epoch, &e, &end);
    if (end >= fetch_offset && e >= last_fetched_epoch)
        return false;
    if (e < 0 || end < 0) {
        /* This log knows nothing of that epoch or before it: the follower
         * keeps nothing past this log's start. */
        e = -1;
        end = r->st.log_start;
    }
    *epoch = e;
    *end_offset = end;
    return true;
}

int64_t replica_agreed_offset(const replica *r, int32_t epoch, int64_t leader_end) {
    int32_t e;
    int64_t end;
    replica_end_offset_for_epoch(r, epoch, &e, &end);
    if (epoch >= 0 && e == epoch && end >= 0 && end < leader_end)
        return end;
    return leader_end;
}
