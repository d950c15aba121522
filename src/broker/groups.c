/*
 * groups.c - group coordinator shards, their log appends, leadership and
 * loading, groups_tick and the driver task that runs it. See groups.h.
 *
 * Locks: a shard's mutex guards its machine and its loading fields; the
 * manager's mutex the stop flag, and is held by each driver step (so a
 * shutdown waits for the step in progress); order: manager, then shard. Loading reads a
 * chunk of the partition without the shard's lock and applies it under the
 * lock if the shard is still loading at the same epoch (a leadership change
 * in between discards the chunk), so requests meanwhile get a quick
 * COORDINATOR_LOAD_IN_PROGRESS instead of waiting for the whole load.
 */
#include "broker/groups.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/driver.h"
#include "broker/txns.h"
#include "core/clock.h"
#include "core/log.h"
#include "group/records.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"

#define LOAD_ARENA_LIMIT      (256u << 20)
#define GROUPS_SETTLE_POLL_MS 100

struct groups_mgr {
    broker *b;
    int32_t n;
    groups_shard *shards;
    int task;            /* the driver task running groups_step, -1 when none */
    int64_t next_follow; /* a quorum member: when follow_leaders looks at the image next */
    pthread_mutex_t mu;
    bool stopping;
    bool shut;
    /* The ticking step's read buffer for loading (one step at a time). */
    uint8_t *buf;
    size_t cap;
};

int64_t groups_now_ms(void) { return clock_wall_ms(); }

static void kick(groups_mgr *m);
char groups_txn_commit_token;

/* ---- appends ------------------------------------------------------------ */

/* Appends recs[0..n) as batches of bounded size; the first batch's base
 * offset goes to *first, the offset after the last record to *end and the
 * partition's high watermark after the last append to *hw. */
static int append_batches(groups_shard *s, const gcoord_record *recs, int n, int64_t *first, int64_t *end,
                          int64_t *hw) {
    int64_t now = groups_now_ms();
    int rc = 0;
    *first = -1;
    *end = -1;
    *hw = -1;
    for (int i = 0; i < n && rc == 0;) {
        int k = 0;
        size_t bytes = 0;
        while (i + k < n && k < GROUPS_BATCH_RECORDS && (k == 0 || bytes < GROUPS_BATCH_BYTES)) {
            bytes +=
                (size_t)recs[i + k].key.len + (size_t)(recs[i + k].value.len > 0 ? recs[i + k].value.len : 0);
            k++;
        }
        arena a;
        arena_init(&a, bytes * 2 + ((size_t)k << 6) + (1u << 16));
        batch_build_record *br = arena_calloc(&a, (size_t)k, sizeof *br);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (br == NULL) {
            rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        } else {
            for (int j = 0; j < k; j++)
                br[j] = (batch_build_record){
                    .key = recs[i + j].key, .value = recs[i + j].value, .timestamp = now};
            batch_build_opts o = batch_build_defaults();
            if (batch_build(&o, br, k, &a, &buf, &len) != BATCH_OK) {
                rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            } else {
                replica_append_result ar;
                rpart_lock(s->part);
                int16_t err = replica_append(s->part->r, buf, len, now, &ar);
                rpart_unlock(s->part);
                if (err != 0) {
                    LOG_ERROR("groups", "appending to %s-%d failed: %s", GROUPS_OFFSETS_TOPIC, s->index,
                              kafka_error_name(err));
                    rc = err;
                } else {
                    if (*first < 0)
                        *first = ar.base_offset;
                    *end = ar.last_offset + 1;
                    *hw = ar.hw;
                }
            }
        }
        arena_reset(&a);
        i += k;
    }
    return rc;
}

/* A snapshot's records are committed: everything before them is redundant
 * (they hold the records of appends still in flight too). Shard lock held. */
static void trim_log(groups_shard *s, int64_t to, int32_t n) {
    int64_t new_start;
    rpart_lock(s->part);
    /* Not past an open transaction's offsets (TxnOffsetCommit): they are
     * applied at its marker, and loading must still find them. */
    int64_t stable = replica_last_stable(s->part->r);
    if (stable < to)
        to = stable;
    int16_t err = replica_delete_records(s->part->r, to, &new_start);
    rpart_unlock(s->part);
    if (err == 0)
        LOG_INFO("groups", "%s-%d: snapshot of %d records, log start now %lld", GROUPS_OFFSETS_TOPIC,
                 s->index, n, (long long)new_start);
    else
        LOG_WARN("groups", "%s-%d: the log before the snapshot at %lld stays: %s", GROUPS_OFFSETS_TOPIC,
                 s->index, (long long)to, kafka_error_name(err));
}

/* The machine's append (the shard's lock is held). The records go to the
 * leader's log at once; the outcome is reported when they are committed:
 * inside the call when the high watermark already covers them (a partition
 * without followers), else from a later tick (settle) once the followers in
 * the ISR have them, so a commit the client was told about survives the
 * leader's loss. */
static uint64_t shard_append(void *ctx, const gcoord_record *recs, int n, bool snapshot, int16_t *err) {
    groups_shard *s = ctx;
    plog *l = rpart_log(s->part);
    if (l == NULL) {
        *err = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        return 0;
    }
    if (s->pend_n == GCOORD_APPENDS_MAX) { /* the machine bounds its appends; never reached */
        *err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return 0;
    }
    int64_t first = -1, end = -1, hw = -1, trim = -1;
    int rc;
    if (snapshot) {
        int64_t start = plog_end_offset(l);
        plog_roll(l, groups_now_ms());
        rc = append_batches(s, recs, n, &first, &end, &hw);
        trim = first >= 0 ? first : start;
    } else {
        rc = append_batches(s, recs, n, &first, &end, &hw);
    }
    uint64_t id = ++s->next_append_id;
    if (rc == 0 && end > hw) {
        int32_t at = (s->pend_head + s->pend_n) % GCOORD_APPENDS_MAX;
        s->pend[at] = (struct groups_pending){id, end, trim, gcoord_epoch(s->sm)};
        s->pend_n++;
        return id;
    }
    if (rc == 0 && trim >= 0)
        trim_log(s, trim, n);
    gcoord_append_done(s->sm, id, (int16_t)rc, groups_now_ms());
    return id;
}

/* Reports the appends the high watermark has passed, in order (shard lock
 * held). Appends of an earlier load are dropped (the machine ignores their
 * outcomes); while this broker is not the leader at the load's epoch they
 * wait (the unload or the next load drops them). */
static void settle(groups_shard *s, int64_t now) {
    if (s->pend_n == 0 || s->part == NULL)
        return;
    int32_t epoch = gcoord_epoch(s->sm);
    bool serving = gcoord_loading(s->sm) || gcoord_active(s->sm);
    rpart_lock(s->part);
    const replica_state *st = replica_get_state(s->part->r);
    bool leading = st->role == REPLICA_LEADER && st->leader_epoch == epoch;
    int64_t hw = st->hw;
    rpart_unlock(s->part);
    while (s->pend_n > 0) {
        struct groups_pending e = s->pend[s->pend_head];
        if (serving && e.epoch == epoch && (!leading || e.end > hw))
            break;
        s->pend_head = (s->pend_head + 1) % GCOORD_APPENDS_MAX;
        s->pend_n--;
        if (!serving || e.epoch != epoch)
            continue;
        if (e.trim_to >= 0)
            trim_log(s, e.trim_to, 0);
        gcoord_append_done(s->sm, e.id, 0, now);
    }
}

void groups_partition_changed(broker *b, const rpart *p) {
    if (!p->internal || strcmp(p->topic, GROUPS_OFFSETS_TOPIC) != 0)
        return;
    /* Partitions change from the metadata and replication threads, which
     * may run before the manager and its task exist. */
    groups_mgr *m = __atomic_load_n(&b->groups, __ATOMIC_ACQUIRE);
    int task = m ? __atomic_load_n(&m->task, __ATOMIC_ACQUIRE) : -1;
    if (task >= 0)
        driver_kick(b->driver, task);
}

/* ---- events ---------------------------------------------------------------- */

/* Rebalances are client-driven (a consumer that restarts in a loop causes
 * one each time): a line each, at most so many a second per kind. */
static log_ratelimit rebalance_start_rl = LOG_RATELIMIT_DEFAULT;
static log_ratelimit rebalance_done_rl = LOG_RATELIMIT_DEFAULT;

static void shard_event(void *ctx, const gcoord_event *ev) {
    const groups_shard *s = ctx;
    const kstr none = kstr_c("none");
    kstr ptype = ev->protocol_type.len >= 0 ? ev->protocol_type : none;
    switch (ev->kind) {
    case GCOORD_EV_REBALANCE_START:
        LOG_INFO_LIMITED(
            &rebalance_start_rl, "groups",
            "preparing to rebalance group '%.*s' (%s, generation %d, protocol type %.*s): %s; %d members "
            "now; coordinator %s-%d",
            ev->group_id.len, ev->group_id.ptr, gcoord_state_name(ev->from), ev->generation, ptype.len,
            ptype.ptr, ev->reason, ev->n_members, GROUPS_OFFSETS_TOPIC, s->index);
        break;
    case GCOORD_EV_REBALANCE_DONE:
        if (ev->n_members == 0) {
            LOG_INFO_LIMITED(&rebalance_done_rl, "groups",
                             "group '%.*s' is empty after its rebalance (generation %d); coordinator %s-%d",
                             ev->group_id.len, ev->group_id.ptr, ev->generation, GROUPS_OFFSETS_TOPIC,
                             s->index);
            break;
        }
        {
            kstr proto = ev->protocol.len >= 0 ? ev->protocol : none;
            kstr leader = ev->leader.len >= 0 ? ev->leader : none;
            LOG_INFO_LIMITED(
                &rebalance_done_rl, "groups",
                "rebalanced group '%.*s': generation %d with %d members, protocol %.*s/%.*s, leader "
                "%.*s; coordinator %s-%d",
                ev->group_id.len, ev->group_id.ptr, ev->generation, ev->n_members, ptype.len, ptype.ptr,
                proto.len, proto.ptr, leader.len, leader.ptr, GROUPS_OFFSETS_TOPIC, s->index);
        }
        break;
    }
}

/* ---- loading --------------------------------------------------------------- */

typedef struct chunk_ctx {
    groups_mgr *m;
    size_t len;
} chunk_ctx;

/* Copies one batch of a plog_scan into the manager's buffer. */
static int collect_batch(void *ctx, const uint8_t *bp, size_t bsize, const batch_header *h) {
    (void)h;
    chunk_ctx *cc = ctx;
    groups_mgr *m = cc->m;
    if (cc->len + bsize >
        m->cap) { /* doubling: a chunk of small batches reallocates a few times, not per batch */
        size_t ncap = m->cap * 2 > cc->len + bsize ? m->cap * 2 : cc->len + bsize;
        uint8_t *nb = realloc(m->buf, ncap);
        if (nb == NULL)
            return -1;
        m->buf = nb;
        m->cap = ncap;
    }
    memcpy(m->buf + cc->len, bp, bsize);
    cc->len += bsize;
    return 0;
}

/* Reads up to GROUPS_LOAD_CHUNK bytes of the partition from `off` into the
 * manager's buffer (no shard lock held: plog reads are thread-safe), through
 * plog_scan (the storage vfs; CRCs checked). Returns the bytes read (0 at the
 * end), -1 on an error, or -2 at an unreadable batch with nothing before it.
 * *restart is set when `off` fell below the log start (read again from
 * there). */
static int64_t read_chunk(groups_mgr *m, plog *l, int64_t off, bool *restart) {
    *restart = false;
    chunk_ctx cc = {m, 0};
    int err = plog_scan(l, off, GROUPS_LOAD_CHUNK, collect_batch, &cc, NULL);
    if (err == STORAGE_OFFSET_OUT_OF_RANGE) {
        *restart = true;
        return 0;
    }
    if (err == STORAGE_CORRUPT_MESSAGE && cc.len == 0)
        return -2;
    if (err != STORAGE_OK && err != STORAGE_CORRUPT_MESSAGE)
        return -1;
    return (int64_t)cc.len; /* batches before a bad one are applied; the next step stops at it */
}

/* ---- transactional offsets while loading ----------------------------------- */

typedef struct groups_txn_rec {
    int64_t pid;
    uint8_t *key, *value;
    int32_t key_len, value_len;
    struct groups_txn_rec *next;
} groups_txn_rec;

static void txn_recs_clear(groups_shard *s) {
    for (groups_txn_rec *r = s->txn_head, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    s->txn_head = s->txn_tail = NULL;
    s->n_txn = 0;
}

static log_ratelimit txn_load_rl = LOG_RATELIMIT_DEFAULT;

static void txn_rec_add(groups_shard *s, int64_t pid, kbytes key, kbytes value) {
    size_t kl = key.len > 0 ? (size_t)key.len : 0, vl = value.len > 0 ? (size_t)value.len : 0;
    groups_txn_rec *r = s->n_txn < GROUPS_TXN_LOAD_MAX ? malloc(sizeof *r + kl + vl) : NULL;
    if (r == NULL) {
        LOG_WARN_LIMITED(&txn_load_rl, "groups",
                         "%s-%d: more than %d transactional offsets without their marker while loading; "
                         "the rest of producer %lld's are not kept",
                         GROUPS_OFFSETS_TOPIC, s->index, GROUPS_TXN_LOAD_MAX, (long long)pid);
        return;
    }
    r->pid = pid;
    r->key = (uint8_t *)(r + 1);
    r->value = r->key + kl;
    memcpy(r->key, key.ptr, kl);
    if (vl)
        memcpy(r->value, value.ptr, vl);
    r->key_len = (int32_t)kl;
    r->value_len = value.len < 0 ? -1 : (int32_t)vl;
    r->next = NULL;
    if (s->txn_tail)
        s->txn_tail->next = r;
    else
        s->txn_head = r;
    s->txn_tail = r;
    s->n_txn++;
}

/* pid's marker was read: its offsets are applied (commit) or dropped. */
static void txn_recs_end(groups_shard *s, int64_t pid, bool commit) {
    groups_txn_rec *prev = NULL;
    for (groups_txn_rec *r = s->txn_head, *n; r; r = n) {
        n = r->next;
        if (r->pid != pid) {
            prev = r;
            continue;
        }
        if (commit &&
            gcoord_load_record(s->sm, (kbytes){r->key, r->key_len}, (kbytes){r->value, r->value_len}) == 0)
            s->load_records++;
        if (prev)
            prev->next = n;
        else
            s->txn_head = n;
        if (s->txn_tail == r)
            s->txn_tail = prev;
        s->n_txn--;
        free(r);
    }
}

/* The load ended with transactions still open: their offsets wait for
 * their markers with the broker's other pending offsets. */
static void txn_recs_restore(groups_shard *s) {
    int32_t n = 0;
    for (groups_txn_rec *r = s->txn_head; r; r = r->next) {
        grec_key k;
        grec_offset v;
        if (grec_decode_key((kbytes){r->key, r->key_len}, &k) != 0 || k.version == GREC_KEY_GROUP ||
            grec_decode_offset_value((kbytes){r->value, r->value_len}, &v) != 0)
            continue;
        txns_offset o = {k.topic, k.partition, v.offset, v.leader_epoch, v.metadata};
        if (txns_add_pending_offsets(s->mgr->b, k.group, r->pid, -1, &o, 1) == 0)
            n++;
    }
    if (n > 0)
        LOG_INFO("groups", "%s-%d: %d offsets of open transactions wait for their markers",
                 GROUPS_OFFSETS_TOPIC, s->index, n);
    txn_recs_clear(s);
}

/* Applies the batches of buf[0..len) from offset `off` on to the shard's
 * machine (lock held). Returns the offset after the last batch applied.
 * Transactional batches are held until their marker (txn_rec_add). */
static int64_t apply_chunk(groups_shard *s, const uint8_t *buf, size_t len, int64_t off) {
    batch_cursor cur;
    batch_cursor_init(&cur, buf, len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    int64_t next = off;
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        next = h.base_offset + h.last_offset_delta + 1;
        bool control = (h.attributes & BATCH_ATTR_CONTROL) != 0;
        bool txnl = (h.attributes & BATCH_ATTR_TRANSACTIONAL) != 0 && h.producer_id >= 0;
        if (control && (!txnl || s->n_txn == 0))
            continue;
        arena a;
        arena_init(&a, LOAD_ARENA_LIMIT);
        batch_iter it;
        if (batch_iter_init(&it, bp, bsize, &a) == BATCH_OK) {
            batch_record rec;
            while (batch_iter_next(&it, &rec)) {
                if (rec.offset < off)
                    continue;
                int16_t ver, type;
                if (control) {
                    if (batch_control_key(&rec, &ver, &type) &&
                        (type == BATCH_CONTROL_COMMIT || type == BATCH_CONTROL_ABORT))
                        txn_recs_end(s, h.producer_id, type == BATCH_CONTROL_COMMIT);
                } else if (rec.key.len >= 0 && txnl) {
                    txn_rec_add(s, h.producer_id, rec.key, rec.value);
                } else if (rec.key.len >= 0 && gcoord_load_record(s->sm, rec.key, rec.value) == 0) {
                    s->load_records++;
                }
            }
        }
        arena_reset(&a);
    }
    return next;
}

static void finish_load(groups_shard *s, int64_t now) {
    txn_recs_restore(s);
    gcoord_load_end(s->sm, now);
    if (s->load_records > 0)
        LOG_INFO("groups", "%s-%d: loaded %lld records (leader epoch %d)", GROUPS_OFFSETS_TOPIC, s->index,
                 (long long)s->load_records, gcoord_epoch(s->sm));
    s->load_off = -1;
    s->load_records = 0;
}

/* One bounded step of a loading shard: a chunk read and applied, or the
 * end of the log reached (the machine starts serving). A shard whose
 * partition is offline (its log could not be opened) keeps answering
 * COORDINATOR_LOAD_IN_PROGRESS and is tried again every GROUPS_RELOAD_MS, so
 * its committed offsets are never served as empty. */
static void load_step(groups_mgr *m, groups_shard *s, int64_t now) {
    pthread_mutex_lock(&s->mu);
    if (!gcoord_loading(s->sm) || now < s->next_try) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    plog *l = rpart_log(s->part);
    if (l == NULL) {
        if (!s->offline_logged)
            LOG_WARN("groups", "%s-%d is offline; its groups wait until it opens", GROUPS_OFFSETS_TOPIC,
                     s->index);
        s->offline_logged = true;
        s->next_try = now + GROUPS_RELOAD_MS;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->load_off < 0) {
        s->load_off = plog_start_offset(l);
        s->load_records = 0;
        txn_recs_clear(s); /* an abandoned load's */
    }
    int32_t epoch = gcoord_epoch(s->sm);
    int64_t off = s->load_off;
    pthread_mutex_unlock(&s->mu);

    bool restart = false;
    int64_t got = off < plog_end_offset(l) ? read_chunk(m, l, off, &restart) : 0;

    pthread_mutex_lock(&s->mu);
    if (!gcoord_loading(s->sm) || gcoord_epoch(s->sm) != epoch || s->load_off != off) {
        pthread_mutex_unlock(&s->mu); /* leadership moved meanwhile: this chunk is stale */
        return;
    }
    if (restart) {
        s->load_off = plog_start_offset(l);
        txn_recs_clear(s);
    } else if (got == -2) {
        LOG_WARN("groups", "%s-%d: unreadable batch at offset %lld; loading stops there",
                 GROUPS_OFFSETS_TOPIC, s->index, (long long)off);
        finish_load(s, now);
    } else if (got < 0) {
        LOG_ERROR("groups", "%s-%d: loading failed at offset %lld; serving what was read",
                  GROUPS_OFFSETS_TOPIC, s->index, (long long)off);
        finish_load(s, now);
    } else if (got == 0) {
        finish_load(s, now);
    } else {
        int64_t next = apply_chunk(s, m->buf, (size_t)got, off);
        if (next <= off) {
            LOG_WARN("groups", "%s-%d: unreadable batch at offset %lld; loading stops there",
                     GROUPS_OFFSETS_TOPIC, s->index, (long long)off);
            finish_load(s, now);
        } else {
            s->load_off = next;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- leadership ------------------------------------------------------------ */

/* Work arrived (a leadership change, a deleted topic): tick now. */
static void kick(groups_mgr *m) { driver_kick(m->b->driver, m->task); }

static groups_shard *shard_at(broker *b, int32_t index) {
    groups_mgr *m = b->groups;
    if (m == NULL || index < 0 || index >= __atomic_load_n(&m->n, __ATOMIC_ACQUIRE))
        return NULL;
    return &m->shards[index];
}

void groups_partition_leader(broker *b, int32_t index, int32_t epoch) {
    groups_shard *s = shard_at(b, index);
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    bool started = gcoord_load_begin(s->sm, epoch, groups_now_ms());
    if (started) {
        s->load_off = -1;
        s->load_records = 0;
        s->next_try = 0;
        s->offline_logged = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (started)
        kick(s->mgr);
}

void groups_partition_follower(broker *b, int32_t index, int32_t epoch) {
    groups_shard *s = shard_at(b, index);
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    if (gcoord_unload(s->sm, epoch, groups_now_ms())) {
        s->load_off = -1;
        LOG_INFO("groups", "%s-%d: no longer the leader (epoch %d); its groups are unloaded",
                 GROUPS_OFFSETS_TOPIC, index, epoch);
    }
    pthread_mutex_unlock(&s->mu);
}

void groups_topic_deleted(broker *b, kstr name) {
    groups_mgr *m = b->groups;
    int32_t n = m ? __atomic_load_n(&m->n, __ATOMIC_ACQUIRE) : 0;
    if (n == 0)
        return;
    int64_t now = groups_now_ms();
    for (int32_t i = 0; i < n; i++) {
        groups_shard *s = &m->shards[i];
        pthread_mutex_lock(&s->mu);
        int16_t err = gcoord_remove_topic(s->sm, name, now);
        pthread_mutex_unlock(&s->mu);
        if (err && err != KAFKA_ERR_NOT_COORDINATOR)
            LOG_WARN("groups", "%s-%d: the committed offsets of deleted topic '%.*s' stay: %s",
                     GROUPS_OFFSETS_TOPIC, i, name.len, name.ptr, kafka_error_name(err));
    }
    kick(m); /* the rest of the removal runs in ticks */
}

/* ---- ticking ---------------------------------------------------------------- */

void groups_tick(broker *b, int64_t now) {
    groups_mgr *m = b->groups;
    if (m == NULL || m->shards == NULL)
        return;
    for (int32_t i = 0; i < m->n; i++) {
        groups_shard *s = &m->shards[i];
        load_step(m, s, now);
        pthread_mutex_lock(&s->mu);
        settle(s, now);
        if (now >= gcoord_next_deadline(s->sm))
            gcoord_tick(s->sm, now);
        pthread_mutex_unlock(&s->mu);
    }
}

int64_t groups_next_deadline(broker *b) {
    groups_mgr *m = b->groups;
    int64_t next = INT64_MAX;
    if (m == NULL || m->shards == NULL)
        return next;
    for (int32_t i = 0; i < m->n; i++) {
        groups_shard *s = &m->shards[i];
        pthread_mutex_lock(&s->mu);
        int64_t d = gcoord_loading(s->sm) ? s->next_try : gcoord_next_deadline(s->sm);
        if (s->pend_n > 0 && d > groups_now_ms() + GROUPS_SETTLE_POLL_MS)
            d = groups_now_ms() + GROUPS_SETTLE_POLL_MS; /* a missed kick costs at most this */
        pthread_mutex_unlock(&s->mu);
        if (d < next)
            next = d;
    }
    return next;
}

static int init_shards(groups_mgr *m);
static int offsets_topic(broker *b);

/* A quorum member: makes the shards once __consumer_offsets exists, then
 * loads a shard when the image says this node leads its partition and
 * unloads it when another does (or none), about once a second. */
static void follow_leaders(groups_mgr *m, int64_t now) {
    if (now < m->next_follow)
        return;
    m->next_follow = now + 1000;
    broker *b = m->b;
    if (m->n == 0) {
        md_image *img = bmeta_image(b->meta);
        bool exists = md_image_topic(img, kstr_c(GROUPS_OFFSETS_TOPIC)) != NULL;
        md_image_unref(img);
        if (!exists || init_shards(m) != 0)
            return;
        LOG_INFO("groups", "%s has %d partitions; this node coordinates the groups of those it leads",
                 GROUPS_OFFSETS_TOPIC, m->n);
    }
    md_image *img = bmeta_image(b->meta);
    const md_topic *ot = md_image_topic(img, kstr_c(GROUPS_OFFSETS_TOPIC));
    for (int32_t i = 0; ot && i < m->n && i < ot->n_partitions; i++) {
        groups_shard *s = &m->shards[i];
        const md_partition *mp = md_topic_partition(ot, i);
        bool lead = mp->leader == b->cfg->node_id && s->part != NULL;
        pthread_mutex_lock(&s->mu);
        bool serving = gcoord_loading(s->sm) || gcoord_active(s->sm);
        int32_t epoch = gcoord_epoch(s->sm);
        pthread_mutex_unlock(&s->mu);
        if (lead && (!serving || epoch != mp->leader_epoch))
            groups_partition_leader(b, i, mp->leader_epoch);
        else if (!lead && serving)
            groups_partition_follower(b, i, -1);
    }
    md_image_unref(img);
}

int groups_ensure_offsets_topic(broker *b) { return offsets_topic(b); }

/* The driver task (driver.h): one tick of every shard. */
static int64_t groups_step(void *arg) {
    groups_mgr *m = arg;
    /* Held for the step, so a shutdown waits for a step in progress and no
     * step runs after it. */
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return DRIVER_IDLE_MS;
    }
    if (bmeta_is_quorum_member(m->b->meta))
        follow_leaders(m, groups_now_ms());
    groups_tick(m->b, groups_now_ms());
    int64_t wait = groups_next_deadline(m->b) - groups_now_ms();
    pthread_mutex_unlock(&m->mu);
    return wait > GROUPS_TICK_MS ? GROUPS_TICK_MS : wait < 0 ? 0 : wait;
}

/* ---- lifecycle ------------------------------------------------------------- */

/* Creates __consumer_offsets when it does not exist yet. 0, or -1 (logged). */
static int offsets_topic(broker *b) {
    const broker_config *cfg = b->cfg;
    kstr name = kstr_c(GROUPS_OFFSETS_TOPIC);
    md_image *img = bmeta_image(b->meta);
    bool exists = md_image_topic(img, name) != NULL;
    md_image_unref(img);
    if (exists)
        return 0;
    char seg[32];
    snprintf(seg, sizeof seg, "%d", cfg->offsets_topic_segment_bytes);
    /* Retention off (snapshots bound the size), compacted when a cleaner
     * exists, and room for large group records. The controller's config
     * rules (meta.c) pin these for an internal topic. */
    ctrl_kv kv[] = {{kstr_c("cleanup.policy"), kstr_c("compact")},
                    {kstr_c("retention.ms"), kstr_c("-1")},
                    {kstr_c("retention.bytes"), kstr_c("-1")},
                    {kstr_c("segment.bytes"), kstr_c(seg)},
                    {kstr_c("max.message.bytes"), kstr_c("67108864")}};
    /* With offsets.topic.replication.factor replicas (Kafka's rule: until
     * that many brokers are registered the topic cannot be made, and
     * FindCoordinator answers COORDINATOR_NOT_AVAILABLE). */
    ctrl_new_topic nt = {name,
                         cfg->offsets_topic_num_partitions,
                         (int16_t)cfg->offsets_topic_replication_factor,
                         NULL,
                         0,
                         kv,
                         5,
                         true};
    ctrl_item_result res;
    bmeta_create_topics(b->meta, &nt, 1, false, &res);
    if (res.error != 0 && res.error != KAFKA_ERR_TOPIC_ALREADY_EXISTS) {
        static log_ratelimit create_rl = LOG_RATELIMIT_DEFAULT;
        LOG_WARN_LIMITED(&create_rl, "groups", "cannot create %s (offsets.topic.replication.factor %d): %s",
                         GROUPS_OFFSETS_TOPIC, cfg->offsets_topic_replication_factor, res.message);
        return -1;
    }
    if (res.error == 0)
        LOG_INFO("groups", "created %s with %d partitions", GROUPS_OFFSETS_TOPIC,
                 cfg->offsets_topic_num_partitions);
    return 0;
}

int groups_mgr_init(broker *b) {
    groups_mgr *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->b = b;
    m->task = -1;
    pthread_mutex_init(&m->mu, NULL);
    __atomic_store_n(&b->groups, m, __ATOMIC_RELEASE);
    if (bmeta_is_quorum_member(b->meta)) {
        /* A quorum member: the topic is created through the active
         * controller on the first FindCoordinator, and the shards come
         * when it appears (groups_step). */
        return 0;
    }
    if (offsets_topic(b) != 0)
        return -1;
    return init_shards(m);
}

/* Makes one shard per partition of __consumer_offsets (which must exist);
 * a shard whose partition is not here stays unloaded (NOT_COORDINATOR). On
 * a single node every shard starts loading at once; a quorum member's
 * shards load as the image says this node leads them (follow_leaders). */
static int init_shards(groups_mgr *m) {
    broker *b = m->b;
    md_image *img = bmeta_image(b->meta);
    const md_topic *ot = md_image_topic(img, kstr_c(GROUPS_OFFSETS_TOPIC));
    int32_t n = ot ? ot->n_partitions : 0;
    bool cluster = bmeta_is_quorum_member(b->meta);
    m->shards = n > 0 ? calloc((size_t)n, sizeof *m->shards) : NULL;
    if (m->shards == NULL) {
        md_image_unref(img);
        return -1;
    }
    gcoord_config gc;
    gcoord_config_default(&gc);
    const broker_config *cfg = b->cfg;
    gc.initial_rebalance_delay_ms = cfg->group_initial_rebalance_delay_ms;
    gc.min_session_timeout_ms = cfg->group_min_session_timeout_ms;
    gc.max_session_timeout_ms = cfg->group_max_session_timeout_ms;
    gc.max_size = cfg->group_max_size;
    gc.offsets_retention_ms = cfg->offsets_retention_ms;
    gc.cg.session_timeout_ms = cfg->group_consumer_session_timeout_ms;
    gc.cg.heartbeat_interval_ms = cfg->group_consumer_heartbeat_interval_ms;
    gc.cg.max_size = cfg->group_consumer_max_size;
    gc.cg.n_assignors = 0;
    for (int i = 0; i < cfg->group_consumer_assignors.n && gc.cg.n_assignors < CG_ASSIGNORS_MAX; i++) {
        const char *name = cfg->group_consumer_assignors.items[i];
        int k = asg_parse(kstr_c(name));
        if (k < 0 && strstr(name, "UniformAssignor"))
            k = ASG_UNIFORM;
        if (k < 0 && strstr(name, "RangeAssignor"))
            k = ASG_RANGE;
        if (k < 0) {
            LOG_WARN("groups",
                     "group.consumer.assignors: unknown assignor '%s' ignored (known: uniform, range)", name);
            continue;
        }
        gc.cg.assignors[gc.cg.n_assignors++] = (asg_kind)k;
    }
    if (gc.cg.n_assignors == 0) {
        gc.cg.assignors[0] = ASG_UNIFORM;
        gc.cg.assignors[1] = ASG_RANGE;
        gc.cg.n_assignors = 2;
    }
    uint64_t seed = (uint64_t)groups_now_ms() * 0x100000001b3ULL ^ (uint64_t)getpid();
    for (int32_t i = 0; i < n; i++) {
        groups_shard *s = &m->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->mgr = m;
        s->index = i;
        int16_t perr;
        s->part = bmeta_partition(b->meta, ot, i, &perr);
        s->load_off = -1;
        s->pend = calloc(GCOORD_APPENDS_MAX, sizeof *s->pend);
        if (s->pend == NULL) {
            md_image_unref(img);
            return -1;
        }
        gc.id_seed = seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
        gcoord_sink sink = {s,
                            groups_api_join_done,
                            groups_api_sync_done,
                            groups_api_commit_done,
                            groups_api_delete_group_done,
                            groups_api_delete_offsets_done,
                            shard_append,
                            shard_event,
                            groups_api_cg_heartbeat_done};
        s->sm = gcoord_create(&gc, &sink);
        if ((s->part == NULL && !cluster) || s->sm == NULL) {
            md_image_unref(img);
            return -1;
        }
    }
    md_image_unref(img);
    /* Published last: request threads read n first (groups_lock). */
    __atomic_store_n(&m->n, n, __ATOMIC_RELEASE);
    if (cluster)
        return 0;
    /* A single node leads every partition. */
    for (int32_t i = 0; i < m->n; i++) {
        rpart *p = m->shards[i].part;
        rpart_lock(p);
        int32_t epoch = p->leader_epoch;
        rpart_unlock(p);
        groups_partition_leader(b, i, epoch);
    }
    return 0;
}

int groups_mgr_start(broker *b) {
    if (groups_mgr_init(b) != 0)
        return -1;
    groups_mgr *m = b->groups;
    __atomic_store_n(&m->task, driver_add(b->driver, "groups", groups_step, m), __ATOMIC_RELEASE);
    if (m->task < 0) {
        LOG_ERROR("groups", "cannot register the group coordinator with the driver");
        return -1;
    }
    return 0;
}

void groups_mgr_shutdown(broker *b) {
    groups_mgr *m = b->groups;
    if (m == NULL || m->shut)
        return;
    pthread_mutex_lock(&m->mu); /* waits for a step in progress */
    m->stopping = true;
    pthread_mutex_unlock(&m->mu);
    for (int32_t i = 0; m->shards && i < m->n; i++) {
        groups_shard *s = &m->shards[i];
        if (s->sm == NULL)
            continue;
        pthread_mutex_lock(&s->mu);
        gcoord_shutdown(s->sm, KAFKA_ERR_NOT_COORDINATOR);
        pthread_mutex_unlock(&s->mu);
    }
    m->shut = true;
}

void groups_mgr_destroy(broker *b) {
    groups_mgr *m = b->groups;
    if (m == NULL)
        return;
    groups_mgr_shutdown(b);
    for (int32_t i = 0; m->shards && i < m->n; i++) {
        gcoord_destroy(m->shards[i].sm);
        free(m->shards[i].pend);
        txn_recs_clear(&m->shards[i]);
        pthread_mutex_destroy(&m->shards[i].mu);
    }
    for (int32_t i = 0; m->shards && i < m->n; i++)
        rpart_release(m->shards[i].part);
    free(m->shards);
    free(m->buf);
    pthread_mutex_destroy(&m->mu);
    free(m);
    __atomic_store_n(&b->groups, NULL, __ATOMIC_RELEASE);
}

groups_shard *groups_lock_index(broker *b, int32_t index) {
    groups_mgr *m = b->groups;
    if (m == NULL || index < 0 || index >= __atomic_load_n(&m->n, __ATOMIC_ACQUIRE))
        return NULL;
    groups_shard *s = &m->shards[index];
    pthread_mutex_lock(&s->mu);
    return s;
}

groups_shard *groups_lock(broker *b, kstr group_id) {
    groups_mgr *m = b->groups;
    int32_t n = m ? __atomic_load_n(&m->n, __ATOMIC_ACQUIRE) : 0;
    if (n <= 0)
        return NULL;
    return groups_lock_index(b, gcoord_partition_for(group_id, n));
}

void groups_unlock(groups_shard *s) { pthread_mutex_unlock(&s->mu); }

int32_t groups_shard_count(broker *b) {
    groups_mgr *m = b->groups;
    return m ? __atomic_load_n(&m->n, __ATOMIC_ACQUIRE) : 0;
}
