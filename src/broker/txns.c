/*
 * txns.c - transaction coordinator shards: their log appends, markers,
 * pending transactional offsets, leadership, loading and the driver task.
 * See txns.h.
 *
 * Locks: the manager's mutex guards the shard table's creation, the stop
 * flag and the pending offsets; a shard's mutex its machine. Order: shard,
 * then a partition's (markers, appends), then a group shard's; the
 * manager's mutex is never held while taking a shard's, except by the
 * driver step (manager, then shard) - request paths take the shard only,
 * and the pending store's own lock (pmu) last.
 */
#include "broker/txns.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/driver.h"
#include "broker/groups.h"
#include "broker/meta.h"
#include "broker/partitions.h"
#include "broker/producer_ids.h"
#include "broker/txn_markers.h"
#include "core/clock.h"
#include "core/log.h"
#include "group/coordinator.h"
#include "group/records.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"

typedef struct pending {
    int64_t pid;
    char *group;
    int32_t group_len;
    char *topic;
    int32_t topic_len;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;
    int32_t metadata_len;
    struct pending *next;
} pending;

struct txns_mgr {
    broker *b;
    int32_t n;
    txns_shard *shards;
    int task;
    int64_t next_follow;
    pthread_mutex_t mu;
    bool stopping, shut;
    uint8_t *buf;
    size_t cap;
    pthread_mutex_t pmu; /* the pending offsets */
    pending *pend;
    int32_t n_pend;
    txn_markers *markers; /* a quorum member's sender to other brokers; NULL on a single node */
};

static int64_t now_ms(void) { return clock_wall_ms(); }

/* ---- the machine's sink ------------------------------------------------- */

static int16_t shard_append(void *ctx, kbytes key, kbytes value) {
    txns_shard *s = ctx;
    if (s->part == NULL)
        return KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    int64_t now = now_ms();
    arena a;
    arena_init(&a, (size_t)key.len + (size_t)(value.len > 0 ? value.len : 0) + (1u << 16));
    batch_build_record br = {.key = key, .value = value, .timestamp = now};
    batch_build_opts o = batch_build_defaults();
    uint8_t *buf = NULL;
    size_t len = 0;
    int16_t err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    if (batch_build(&o, &br, 1, &a, &buf, &len) == BATCH_OK) {
        replica_append_result ar;
        rpart_lock(s->part);
        /* As acks=all: not with fewer in-sync replicas than the topic's
         * min.insync.replicas (transaction.state.log.min.isr). */
        const replica_state *st = replica_get_state(s->part->r);
        if (st->role == REPLICA_LEADER && st->n_isr < s->part->cfg.min_insync_replicas)
            err = KAFKA_ERR_NOT_ENOUGH_REPLICAS;
        else
            err = replica_append(s->part->r, buf, len, now, &ar);
        rpart_unlock(s->part);
        if (err == 0 && ar.last_offset + 1 > s->await_off)
            s->await_off = ar.last_offset + 1;
        if (err)
            LOG_ERROR("txn", "appending to %s-%d failed: %s", TXNS_TOPIC, s->index, kafka_error_name(err));
    }
    arena_reset(&a);
    return err;
}

static int16_t shard_new_pid(void *ctx, int64_t *pid) {
    txns_shard *s = ctx;
    return producer_ids_next(s->mgr->b, pid);
}

/* The pending offsets of pid for groups on __consumer_offsets partition
 * `index`: committed through the group coordinator or dropped. */
static void settle_offsets(txns_mgr *m, int64_t pid, int32_t index, bool commit) {
    pthread_mutex_lock(&m->pmu);
    pending *mine = NULL;
    for (pending **pp = &m->pend; *pp;) {
        pending *e = *pp;
        if (e->pid == pid && groups_shard_count(m->b) > 0 &&
            gcoord_partition_for((kstr){e->group, e->group_len}, groups_shard_count(m->b)) == index) {
            *pp = e->next;
            e->next = mine;
            mine = e;
            m->n_pend--;
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&m->pmu);
    int64_t now = now_ms();
    while (mine) {
        pending *e = mine;
        mine = e->next;
        if (commit) {
            groups_shard *gs = groups_lock_index(m->b, index);
            if (gs != NULL) {
                gcoord_commit c = {(kstr){e->topic, e->topic_len},
                                   e->partition,
                                   e->offset,
                                   e->leader_epoch,
                                   (kstr){e->metadata, e->metadata_len},
                                   0};
                gcoord_commit_txn_offsets(gs->sm, (kstr){e->group, e->group_len}, &c, 1,
                                          GROUPS_TXN_COMMIT_TOKEN, now);
                groups_unlock(gs);
            }
        }
        free(e->group);
        free(e->topic);
        free(e->metadata);
        free(e);
    }
}

static log_ratelimit remote_rl = LOG_RATELIMIT_DEFAULT;

int16_t txns_write_marker(broker *b, rpart *p, int64_t pid, int16_t epoch, bool commit,
                          int32_t coordinator_epoch, int64_t now, int64_t *offset) {
    rpart_lock(p);
    int16_t err = replica_write_marker(p->r, pid, epoch, commit, coordinator_epoch, now, offset);
    rpart_unlock(p);
    if (err == 0 && b->txns != NULL && strcmp(p->topic, GROUPS_OFFSETS_TOPIC) == 0)
        settle_offsets(b->txns, pid, p->index, commit);
    return err;
}

/* One partition's marker: written here when this broker leads it and is
 * its only replica (nothing to wait for), sent to its leader otherwise -
 * this broker included, whose WriteTxnMarkers answers once the ISR has
 * the marker. */
static int16_t one_marker(txns_shard *s, md_image *img, const md_topic *t, const trec_tp *tp, kstr txn_id,
                          int64_t pid, int16_t epoch, bool commit, int64_t now) {
    broker *b = s->mgr->b;
    const md_partition *mp =
        tp->partition >= 0 && tp->partition < t->n_partitions ? md_topic_partition(t, tp->partition) : NULL;
    (void)img;
    if (mp == NULL)
        return 0; /* gone: nothing to mark */
    txn_markers *mk = s->mgr->markers;
    if (mk == NULL || (mp->leader == b->cfg->node_id && mp->replicas.n <= 1)) {
        int16_t err = 0;
        rpart *p = bmeta_partition(b->meta, t, tp->partition, &err);
        if (p == NULL)
            return err == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION ? 0
                   : err                                       ? err
                                                               : KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
        int64_t off = -1;
        err = txns_write_marker(b, p, pid, epoch, commit, tcoord_epoch(s->sm), now, &off);
        rpart_release(p);
        return err;
    }
    if (mp->leader < 0)
        return KAFKA_ERR_LEADER_NOT_AVAILABLE;
    return txn_markers_deliver(mk, txn_id, mp->leader, tp->topic, tp->partition, pid, epoch, commit,
                               tcoord_epoch(s->sm));
}

static int16_t shard_markers(void *ctx, kstr txn_id, int64_t pid, int16_t epoch, bool commit,
                             const trec_tp *parts, int32_t n) {
    txns_shard *s = ctx;
    broker *b = s->mgr->b;
    int64_t now = now_ms();
    int16_t first_err = 0;
    int32_t waiting = 0;
    /* Not before the Prepare record is durable (the request that wrote it
     * calls tcoord_markers_progress once it is; else the retry). */
    int16_t durable = 0;
    if (s->part != NULL && (!rpart_acked(s->part, s->await_off, &durable) || durable != 0))
        return durable == KAFKA_ERR_NOT_LEADER_OR_FOLLOWER ? KAFKA_ERR_NOT_COORDINATOR
                                                           : KAFKA_ERR_CONCURRENT_TRANSACTIONS;
    md_image *img = bmeta_image(b->meta);
    for (int32_t i = 0; i < n; i++) {
        const md_topic *t = md_image_topic(img, parts[i].topic);
        if (t == NULL)
            continue; /* deleted: nothing to mark */
        int16_t err = one_marker(s, img, t, &parts[i], txn_id, pid, epoch, commit, now);
        if (err == KAFKA_ERR_CONCURRENT_TRANSACTIONS) {
            waiting++; /* on its way */
        } else if (err) {
            LOG_WARN_LIMITED(&remote_rl, "txn",
                             "transaction '%.*s' (producer %" PRId64 " epoch %d): the %s marker for %.*s-%d "
                             "is not written yet (%s); retried every %d ms",
                             txn_id.len, txn_id.ptr, pid, epoch, commit ? "COMMIT" : "ABORT",
                             parts[i].topic.len, parts[i].topic.ptr, parts[i].partition,
                             kafka_error_name(err), TCOORD_MARKER_RETRY_MS);
        }
        if (err && !first_err)
            first_err = err;
    }
    md_image_unref(img);
    if (first_err == 0 && s->mgr->markers != NULL)
        txn_markers_forget(s->mgr->markers, pid, epoch, commit);
    if (first_err == 0)
        LOG_DEBUG("txn", "transaction '%.*s' (producer %" PRId64 " epoch %d) %s on %d partitions", txn_id.len,
                  txn_id.ptr, pid, epoch, commit ? "committed" : "aborted", n);
    else if (waiting > 0)
        LOG_DEBUG("txn", "transaction '%.*s': %d marker(s) on their way to other brokers", txn_id.len,
                  txn_id.ptr, waiting);
    return first_err;
}

/* The sender delivered markers of txn_id: finish its transaction now. */
static void markers_done(void *ctx, kstr txn_id) {
    txns_mgr *m = ctx;
    txns_shard *s = txns_lock(m->b, txn_id);
    if (s == NULL)
        return;
    tcoord_markers_progress(s->sm, txn_id, now_ms());
    txns_unlock(s);
}

rpart *txns_durable_point(broker *b, kstr txn_id, int64_t *need) {
    txns_shard *s = txns_lock(b, txn_id);
    if (s == NULL)
        return NULL;
    rpart *p = NULL;
    int16_t durable = 0;
    /* Not covered (the waiter then answers, or maps a lost leadership). */
    if (s->part != NULL && (!rpart_acked(s->part, s->await_off, &durable) || durable != 0)) {
        p = s->part;
        atomic_fetch_add(&p->refs, 1); /* the caller's */
        *need = s->await_off;
    }
    txns_unlock(s);
    return p;
}

/* ---- pending offsets ------------------------------------------------------ */

static char *dup_kstr(kstr s, int32_t *len) {
    int32_t n = s.len > 0 ? s.len : 0;
    char *p = malloc((size_t)n + 1);
    if (p) {
        if (n)
            memcpy(p, s.ptr, (size_t)n);
        p[n] = 0;
    }
    *len = n;
    return p;
}

int16_t txns_add_pending_offsets(broker *b, kstr group_id, int64_t pid, int16_t epoch, const txns_offset *o,
                                 int n) {
    (void)epoch;
    txns_mgr *m = b->txns;
    if (m == NULL)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    pthread_mutex_lock(&m->pmu);
    int16_t err = 0;
    for (int i = 0; i < n && err == 0; i++) {
        /* A later commit of the same partition in the transaction replaces the earlier. */
        pending *e = NULL;
        for (pending *x = m->pend; x && !e; x = x->next)
            if (x->pid == pid && x->partition == o[i].partition &&
                kstr_eq((kstr){x->group, x->group_len}, group_id) &&
                kstr_eq((kstr){x->topic, x->topic_len}, o[i].topic))
                e = x;
        if (e == NULL) {
            if (m->n_pend >= TXNS_PENDING_MAX || (e = calloc(1, sizeof *e)) == NULL) {
                err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
                break;
            }
            e->pid = pid;
            e->group = dup_kstr(group_id, &e->group_len);
            e->topic = dup_kstr(o[i].topic, &e->topic_len);
            e->partition = o[i].partition;
            e->next = m->pend;
            m->pend = e;
            m->n_pend++;
        }
        free(e->metadata);
        e->offset = o[i].offset;
        e->leader_epoch = o[i].leader_epoch;
        e->metadata = dup_kstr(o[i].metadata, &e->metadata_len);
        if (e->group == NULL || e->topic == NULL || e->metadata == NULL)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    pthread_mutex_unlock(&m->pmu);
    return err;
}

int16_t txns_write_offsets(broker *b, kstr group_id, int64_t pid, int16_t epoch, const txns_offset *o, int n,
                           rpart **wait_p, int64_t *need) {
    *wait_p = NULL;
    if (b->txns == NULL || n <= 0)
        return n <= 0 ? 0 : KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    groups_shard *gs = groups_lock(b, group_id);
    if (gs == NULL)
        return KAFKA_ERR_NOT_COORDINATOR;
    rpart *p = gs->part;
    if (p != NULL)
        atomic_fetch_add(&p->refs, 1);
    groups_unlock(gs);
    if (p == NULL)
        return KAFKA_ERR_NOT_COORDINATOR;
    int64_t now = now_ms();
    size_t bytes = 1u << 16;
    for (int i = 0; i < n; i++)
        bytes += (size_t)group_id.len + (size_t)(o[i].topic.len > 0 ? o[i].topic.len : 0) +
                 (size_t)(o[i].metadata.len > 0 ? o[i].metadata.len : 0) + 128;
    arena a;
    arena_init(&a, bytes * 3);
    batch_build_record *br = arena_calloc(&a, (size_t)n, sizeof *br);
    int16_t err = br ? 0 : KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    for (int i = 0; i < n && err == 0; i++) {
        grec_offset v = {o[i].offset, o[i].leader_epoch, o[i].metadata, now, -1};
        if (grec_encode_offset_key(&a, group_id, o[i].topic, o[i].partition, &br[i].key) != 0 ||
            grec_encode_offset_value(&a, &v, &br[i].value) != 0)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        br[i].timestamp = now;
    }
    replica_append_result ar;
    if (err == 0) {
        rpart_lock(p);
        /* The producer's next sequence on this partition: the coordinator
         * is its only writer here, so the batch passes the producer rules
         * as the producer's own would, and the partition tracks the open
         * transaction (its LSO, its snapshot) like any other. */
        const pstate_entry *pe = pstate_get(replica_producers(p->r), pid);
        const pstate_batch *last = pe && pe->epoch == epoch ? pstate_newest(pe) : NULL;
        int32_t seq = last ? (last->last_seq == INT32_MAX ? 0 : last->last_seq + 1) : 0;
        batch_build_opts bo = batch_build_defaults();
        bo.extra_attributes = BATCH_ATTR_TRANSACTIONAL;
        bo.producer_id = pid;
        bo.producer_epoch = epoch;
        bo.base_sequence = seq;
        uint8_t *buf = NULL;
        size_t len = 0;
        if (batch_build(&bo, br, n, &a, &buf, &len) != BATCH_OK)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        else
            err = replica_append(p->r, buf, len, now, &ar);
        rpart_unlock(p);
        if (err == KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER || err == KAFKA_ERR_INVALID_PRODUCER_EPOCH)
            err = KAFKA_ERR_INVALID_PRODUCER_EPOCH; /* a newer epoch of the producer wrote here */
        if (err)
            LOG_WARN_LIMITED(&remote_rl, "txn",
                             "writing the transactional offsets of group '%.*s' (producer %" PRId64
                             ") to %s-%d failed: %s",
                             group_id.len, group_id.ptr, pid, p->topic, p->index, kafka_error_name(err));
    }
    arena_reset(&a);
    if (err == 0)
        err = txns_add_pending_offsets(b, group_id, pid, epoch, o, n);
    if (err == 0 && !ar.duplicate) {
        *wait_p = p;
        *need = ar.last_offset + 1;
    } else {
        rpart_release(p);
    }
    return err;
}

void txns_get_stats(broker *b, txns_stats *st) {
    memset(st, 0, sizeof *st);
    txns_mgr *m = b->txns;
    if (m == NULL)
        return;
    int32_t n = __atomic_load_n(&m->n, __ATOMIC_ACQUIRE);
    for (int32_t i = 0; i < n; i++) {
        txns_shard *s = &m->shards[i];
        pthread_mutex_lock(&s->mu);
        st->shards_serving += tcoord_active(s->sm) ? 1 : 0;
        pthread_mutex_unlock(&s->mu);
    }
    if (m->markers != NULL)
        txn_markers_stats(m->markers, &st->markers_pending, &st->markers_delivered, &st->markers_failed);
    pthread_mutex_lock(&m->pmu);
    st->pending_offsets = m->n_pend;
    pthread_mutex_unlock(&m->pmu);
}

void txns_pending_each(broker *b, kstr group_id, void (*fn)(void *ctx, kstr topic, int32_t partition),
                       void *ctx) {
    txns_mgr *m = b->txns;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->pmu);
    for (pending *e = m->pend; e; e = e->next)
        if (kstr_eq((kstr){e->group, e->group_len}, group_id))
            fn(ctx, (kstr){e->topic, e->topic_len}, e->partition);
    pthread_mutex_unlock(&m->pmu);
}

/* ---- loading ---------------------------------------------------------------- */

typedef struct chunk_ctx {
    txns_mgr *m;
    size_t len;
} chunk_ctx;

static int collect_batch(void *ctx, const uint8_t *bp, size_t bsize, const batch_header *h) {
    (void)h;
    chunk_ctx *cc = ctx;
    txns_mgr *m = cc->m;
    if (cc->len + bsize > m->cap) {
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

static void finish_load(txns_shard *s, int64_t now) {
    tcoord_load_end(s->sm, now);
    if (s->load_records > 0)
        LOG_INFO("txn", "%s-%d: loaded %" PRId64 " records, %d transactional ids (leader epoch %d)",
                 TXNS_TOPIC, s->index, s->load_records, tcoord_count(s->sm), tcoord_epoch(s->sm));
    s->load_off = -1;
    s->load_records = 0;
}

/* One bounded step of a loading shard (the lock is held throughout: the
 * topic is small, and requests wait at most one chunk). */
static void load_step(txns_mgr *m, txns_shard *s, int64_t now) {
    pthread_mutex_lock(&s->mu);
    if (!tcoord_loading(s->sm) || now < s->next_try) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    plog *l = s->part ? rpart_log(s->part) : NULL;
    if (l == NULL) {
        s->next_try = now + 1000;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->load_off < 0)
        s->load_off = plog_start_offset(l);
    chunk_ctx cc = {m, 0};
    int64_t next = s->load_off;
    int rc = s->load_off < plog_end_offset(l)
                 ? plog_scan(l, s->load_off, TXNS_LOAD_CHUNK, collect_batch, &cc, &next)
                 : STORAGE_OK;
    if (rc == STORAGE_OFFSET_OUT_OF_RANGE) {
        s->load_off = plog_start_offset(l);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (rc != STORAGE_OK && cc.len == 0) {
        LOG_WARN("txn", "%s-%d: reading at offset %" PRId64 " failed (%s); loading stops there", TXNS_TOPIC,
                 s->index, s->load_off, storage_strerror(rc));
        finish_load(s, now);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (cc.len == 0) {
        finish_load(s, now);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    batch_cursor cur;
    batch_cursor_init(&cur, m->buf, cc.len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    int64_t off = s->load_off;
    while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
        off = h.base_offset + h.last_offset_delta + 1;
        if (h.attributes & BATCH_ATTR_CONTROL)
            continue;
        arena a;
        arena_init(&a, 256u << 20);
        batch_iter it;
        if (batch_iter_init(&it, bp, bsize, &a) == BATCH_OK) {
            batch_record rec;
            while (batch_iter_next(&it, &rec))
                if (rec.key.len >= 0 && tcoord_load_record(s->sm, rec.key, rec.value) == 0)
                    s->load_records++;
        }
        arena_reset(&a);
    }
    if (off <= s->load_off) {
        LOG_WARN("txn", "%s-%d: unreadable batch at offset %" PRId64 "; loading stops there", TXNS_TOPIC,
                 s->index, s->load_off);
        finish_load(s, now);
    } else {
        s->load_off = off;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- shards and leadership ------------------------------------------------ */

static void lead(txns_shard *s, int32_t epoch) {
    pthread_mutex_lock(&s->mu);
    if (tcoord_load_begin(s->sm, epoch, now_ms())) {
        s->load_off = -1;
        s->load_records = 0;
        s->next_try = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

static int topic_create(broker *b) {
    const broker_config *cfg = b->cfg;
    md_image *img = bmeta_image(b->meta);
    bool exists = md_image_topic(img, kstr_c(TXNS_TOPIC)) != NULL;
    md_image_unref(img);
    if (exists)
        return 0;
    char min_isr[16];
    snprintf(min_isr, sizeof min_isr, "%d", cfg->transaction_state_log_min_isr);
    ctrl_kv kv[] = {
        {kstr_c("cleanup.policy"), kstr_c("compact")},     {kstr_c("retention.ms"), kstr_c("-1")},
        {kstr_c("retention.bytes"), kstr_c("-1")},         {kstr_c("segment.bytes"), kstr_c("104857600")},
        {kstr_c("max.message.bytes"), kstr_c("67108864")}, {kstr_c("min.insync.replicas"), kstr_c(min_isr)}};
    ctrl_new_topic nt = {kstr_c(TXNS_TOPIC),
                         cfg->transaction_state_log_num_partitions,
                         (int16_t)cfg->transaction_state_log_replication_factor,
                         NULL,
                         0,
                         kv,
                         6,
                         true};
    ctrl_item_result res;
    bmeta_create_topics(b->meta, &nt, 1, false, &res);
    if (res.error != 0 && res.error != KAFKA_ERR_TOPIC_ALREADY_EXISTS) {
        LOG_ERROR("txn", "cannot create %s: %s", TXNS_TOPIC, res.message);
        return -1;
    }
    if (res.error == 0)
        LOG_INFO("txn", "created %s with %d partitions", TXNS_TOPIC,
                 cfg->transaction_state_log_num_partitions);
    return 0;
}

/* Makes the shards once the topic is in the image (m->mu held). */
static int init_shards(txns_mgr *m) {
    broker *b = m->b;
    md_image *img = bmeta_image(b->meta);
    const md_topic *t = md_image_topic(img, kstr_c(TXNS_TOPIC));
    int32_t n = t ? t->n_partitions : 0;
    if (n <= 0) {
        md_image_unref(img);
        return -1;
    }
    txns_shard *sh = calloc((size_t)n, sizeof *sh);
    if (sh == NULL) {
        md_image_unref(img);
        return -1;
    }
    const broker_config *cfg = b->cfg;
    tcoord_config tc;
    tcoord_config_default(&tc);
    tc.max_timeout_ms = cfg->transaction_max_timeout_ms;
    tc.id_expiration_ms = cfg->transactional_id_expiration_ms;
    tc.abort_check_interval_ms = cfg->transaction_abort_interval_ms;
    bool cluster = bmeta_is_quorum_member(b->meta);
    for (int32_t i = 0; i < n; i++) {
        txns_shard *s = &sh[i];
        pthread_mutex_init(&s->mu, NULL);
        s->mgr = m;
        s->index = i;
        s->load_off = -1;
        int16_t perr;
        s->part = bmeta_partition(b->meta, t, i, &perr);
        tcoord_sink sink = {s, shard_append, shard_markers, shard_new_pid};
        s->sm = tcoord_create(&tc, &sink);
        if (s->sm == NULL || (s->part == NULL && !cluster)) {
            for (int32_t j = 0; j <= i; j++) {
                tcoord_destroy(sh[j].sm);
                rpart_release(sh[j].part);
            }
            free(sh);
            md_image_unref(img);
            return -1;
        }
    }
    md_image_unref(img);
    m->shards = sh;
    __atomic_store_n(&m->n, n, __ATOMIC_RELEASE);
    if (!cluster)
        for (int32_t i = 0; i < n; i++) {
            rpart *p = m->shards[i].part;
            rpart_lock(p);
            int32_t epoch = p->leader_epoch;
            rpart_unlock(p);
            lead(&m->shards[i], epoch);
        }
    LOG_INFO("txn", "%s has %d partitions; this node coordinates the transactional ids of those it leads",
             TXNS_TOPIC, n);
    driver_kick(b->driver, m->task);
    return 0;
}

int16_t txns_ensure(broker *b) {
    txns_mgr *m = b->txns;
    if (m == NULL)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (__atomic_load_n(&m->n, __ATOMIC_ACQUIRE) > 0)
        return 0;
    pthread_mutex_lock(&m->mu);
    int16_t err = 0;
    if (m->stopping)
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    else if (m->n == 0 && (topic_create(b) != 0 || init_shards(m) != 0))
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* a cluster: the topic shows up in the image later */
    pthread_mutex_unlock(&m->mu);
    return err;
}

/* A quorum member: loads shards this node leads, unloads the others. */
static void follow_leaders(txns_mgr *m, int64_t now) {
    if (now < m->next_follow)
        return;
    m->next_follow = now + 1000;
    broker *b = m->b;
    if (m->n == 0) {
        md_image *img = bmeta_image(b->meta);
        bool exists = md_image_topic(img, kstr_c(TXNS_TOPIC)) != NULL;
        md_image_unref(img);
        if (!exists || init_shards(m) != 0)
            return;
    }
    md_image *img = bmeta_image(b->meta);
    const md_topic *t = md_image_topic(img, kstr_c(TXNS_TOPIC));
    for (int32_t i = 0; t && i < m->n && i < t->n_partitions; i++) {
        txns_shard *s = &m->shards[i];
        const md_partition *mp = md_topic_partition(t, i);
        bool leads = mp->leader == b->cfg->node_id && s->part != NULL;
        pthread_mutex_lock(&s->mu);
        bool serving = tcoord_loading(s->sm) || tcoord_active(s->sm);
        int32_t epoch = tcoord_epoch(s->sm);
        if (!leads && serving) {
            tcoord_unload(s->sm, -1);
            LOG_INFO("txn", "%s-%d: no longer the leader; its transactional ids are unloaded", TXNS_TOPIC, i);
        }
        pthread_mutex_unlock(&s->mu);
        if (leads && (!serving || epoch != mp->leader_epoch))
            lead(s, mp->leader_epoch);
    }
    md_image_unref(img);
}

static int64_t txns_step(void *arg) {
    txns_mgr *m = arg;
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return DRIVER_IDLE_MS;
    }
    int64_t now = now_ms();
    if (bmeta_is_quorum_member(m->b->meta))
        follow_leaders(m, now);
    int64_t next = now + TXNS_TICK_MS;
    for (int32_t i = 0; i < m->n; i++) {
        txns_shard *s = &m->shards[i];
        load_step(m, s, now);
        pthread_mutex_lock(&s->mu);
        if (tcoord_loading(s->sm))
            next = now;
        else if (now >= tcoord_next_deadline(s->sm))
            tcoord_tick(s->sm, now);
        int64_t d = tcoord_next_deadline(s->sm);
        if (d < next)
            next = d;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&m->mu);
    int64_t wait = next - now_ms();
    return wait > TXNS_TICK_MS ? TXNS_TICK_MS : wait < 0 ? 0 : wait;
}

/* ---- lifecycle ------------------------------------------------------------ */

int txns_mgr_start(broker *b) {
    txns_mgr *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->b = b;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->pmu, NULL);
    b->txns = m;
    m->task = driver_add(b->driver, "transactions", txns_step, m);
    if (m->task < 0) {
        LOG_ERROR("txn", "cannot register the transaction coordinator with the driver");
        return -1;
    }
    if (bmeta_is_quorum_member(b->meta) && (m->markers = txn_markers_start(b, markers_done, m)) == NULL) {
        LOG_ERROR("txn", "cannot start the transaction marker sender");
        return -1;
    }
    /* A node restarting with the topic present loads at once. */
    md_image *img = bmeta_image(b->meta);
    bool exists = md_image_topic(img, kstr_c(TXNS_TOPIC)) != NULL;
    md_image_unref(img);
    if (exists && !bmeta_is_quorum_member(b->meta))
        txns_ensure(b);
    return 0;
}

void txns_mgr_shutdown(broker *b) {
    txns_mgr *m = b->txns;
    if (m == NULL || m->shut)
        return;
    pthread_mutex_lock(&m->mu);
    /* Request threads look without the lock (txns_lock_index). */
    __atomic_store_n(&m->stopping, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&m->mu);
    /* The sender takes shard locks (markers_done): it ends first. */
    txn_markers_stop(m->markers);
    m->shut = true;
}

void txns_mgr_destroy(broker *b) {
    txns_mgr *m = b->txns;
    if (m == NULL)
        return;
    txns_mgr_shutdown(b);
    txn_markers_destroy(m->markers);
    for (int32_t i = 0; m->shards && i < m->n; i++) {
        tcoord_destroy(m->shards[i].sm);
        pthread_mutex_destroy(&m->shards[i].mu);
        rpart_release(m->shards[i].part);
    }
    free(m->shards);
    for (pending *e = m->pend, *n; e; e = n) {
        n = e->next;
        free(e->group);
        free(e->topic);
        free(e->metadata);
        free(e);
    }
    free(m->buf);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->pmu);
    free(m);
    b->txns = NULL;
}

int32_t txns_shard_count(broker *b) {
    txns_mgr *m = b->txns;
    return m ? __atomic_load_n(&m->n, __ATOMIC_ACQUIRE) : 0;
}

int32_t txns_partition_for(broker *b, kstr txn_id) {
    int32_t n = txns_shard_count(b);
    return n > 0 ? gcoord_partition_for(txn_id, n) : -1;
}

txns_shard *txns_lock_index(broker *b, int32_t index) {
    txns_mgr *m = b->txns;
    if (m == NULL || __atomic_load_n(&m->stopping, __ATOMIC_ACQUIRE) || index < 0 ||
        index >= __atomic_load_n(&m->n, __ATOMIC_ACQUIRE))
        return NULL;
    txns_shard *s = &m->shards[index];
    pthread_mutex_lock(&s->mu);
    return s;
}

txns_shard *txns_lock(broker *b, kstr txn_id) { return txns_lock_index(b, txns_partition_for(b, txn_id)); }

void txns_unlock(txns_shard *s) { pthread_mutex_unlock(&s->mu); }

int16_t txns_verify_produce(broker *b, kstr txn_id, kbytes records, kstr topic, int32_t partition,
                            const char **why) {
    batch_header h;
    if (records.len <= 0 || batch_parse_header(records.ptr, (size_t)records.len, &h) != BATCH_OK ||
        !(h.attributes & BATCH_ATTR_TRANSACTIONAL))
        return 0; /* not a transactional batch: storage judges the bytes */
    txns_shard *s = txns_lock(b, txn_id);
    if (s == NULL)
        return 0; /* coordinated elsewhere (or not yet here): not checked */
    tcoord_info i;
    int16_t err = tcoord_describe(s->sm, txn_id, &i);
    if (err == KAFKA_ERR_NOT_COORDINATOR || err == KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS) {
        err = 0;
    } else if (err != 0 || i.producer_id != h.producer_id) {
        err = KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING;
        *why = "the transactional id has another producer id";
    } else if (i.epoch != h.producer_epoch) {
        err = KAFKA_ERR_INVALID_PRODUCER_EPOCH;
        *why = "the producer's epoch is fenced by a newer one of its transactional id";
    } else {
        bool added = false;
        for (int32_t k = 0; k < i.n_parts && !added; k++)
            added = i.parts[k].partition == partition && kstr_eq(i.parts[k].topic, topic);
        if (!added || i.state != TREC_ONGOING) {
            err = KAFKA_ERR_INVALID_TXN_STATE;
            *why = "a transactional batch for a partition not added to the ongoing transaction "
                   "(AddPartitionsToTxn)";
        }
    }
    txns_unlock(s);
    return err;
}
