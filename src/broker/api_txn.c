/*
 * api_txn.c - the transaction APIs (Kafka's protocol v1): InitProducerId
 * with a transactional id (called from api_producer_ids.c),
 * AddPartitionsToTxn (v0-3, and the batched v4+ form), AddOffsetsToTxn,
 * EndTxn, TxnOffsetCommit and WriteTxnMarkers. Request structs in,
 * coordinator calls (broker/txns.h, txn/coordinator.h), response structs
 * out; every request's work is bounded by its own size.
 */
#include <stdio.h>
#include <string.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/api_util.h"
#include "broker/broker.h"
#include "broker/fetch.h"
#include "broker/partitions.h"
#include "broker/groups.h"
#include "broker/meta.h"
#include "broker/txns.h"
#include "core/log.h"

static log_ratelimit txn_rl = LOG_RATELIMIT_DEFAULT;

/* PRODUCER_FENCED came with these versions (KIP-588); older clients know
 * INVALID_PRODUCER_EPOCH. */
static int16_t fenced_for(int16_t err, int16_t ver, int16_t since) {
    return err == KAFKA_ERR_PRODUCER_FENCED && ver < since ? KAFKA_ERR_INVALID_PRODUCER_EPOCH : err;
}

static int16_t id_error(kstr id) {
    return id.len <= 0 || id.len > TREC_TXN_ID_MAX ? KAFKA_ERR_INVALID_REQUEST : 0;
}

/* ---- durability ------------------------------------------------------------- */

/* A request whose change the coordinator appended: answered once the
 * shard's ISR has it (txns_durable_point), or with the coordinator's
 * mapping of the failure. */
typedef struct txn_wait {
    rpart *p; /* referenced */
    int64_t need;
    int16_t **errs; /* the response's error codes to set on failure */
    int32_t n_errs;
    kstr txn_id; /* EndTxn: its markers go out once it is durable */
    bool progress;
} txn_wait;

static bool txn_wait_ready(breq *r, void *arg) {
    (void)r;
    txn_wait *w = arg;
    int16_t e;
    return rpart_acked(w->p, w->need, &e);
}

static void txn_wait_finish(breq *r, void *arg, bool expired) {
    (void)expired;
    txn_wait *w = arg;
    int16_t e = 0;
    rpart_acked(w->p, w->need, &e);
    rpart_release(w->p);
    /* Kafka's mapping of a coordinator write that did not make it. */
    int16_t mapped = e == 0                                  ? 0
                     : e == KAFKA_ERR_NOT_LEADER_OR_FOLLOWER ? KAFKA_ERR_NOT_COORDINATOR
                                                             : KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (mapped) {
        LOG_INFO_LIMITED(&txn_rl, "txn", "a transaction coordinator write from %s did not reach the ISR: %s",
                         r->net->peer, kafka_error_name(e));
        for (int32_t i = 0; i < w->n_errs; i++)
            if (*w->errs[i] == 0)
                *w->errs[i] = mapped;
    } else if (w->progress) {
        txns_shard *s = txns_lock(r->b, w->txn_id);
        if (s != NULL) {
            tcoord_markers_progress(s->sm, w->txn_id, groups_now_ms());
            txns_unlock(s);
        }
    }
    breq_complete(r);
}

/* Answers r once p's high watermark reaches need (p referenced, taken
 * over; NULL: at once). errs: the response's error codes (n of them), left
 * alone when already set. */
static breq_status answer_at(breq *r, rpart *p, int64_t need, kstr txn_id, int16_t **errs, int32_t n,
                             bool progress) {
    if (p == NULL)
        return BREQ_DONE;
    txn_wait *w = breq_calloc(r, 1, sizeof *w);
    rpart **parts = breq_calloc(r, 1, sizeof *parts);
    if (w == NULL || parts == NULL) {
        rpart_release(p);
        return BREQ_CLOSE;
    }
    *w = (txn_wait){p, need, errs, n, txn_id, progress};
    parts[0] = p;
    breq_parked(r);
    if (!fetch_wait(r->b, r, parts, 1, fetch_now_ms() + TXNS_MARKER_ISR_WAIT_MS, txn_wait_ready,
                    txn_wait_finish, w))
        txn_wait_finish(r, w, false);
    return BREQ_ASYNC;
}

/* Answers r now, or parks it until txn_id's shard is durable. */
static breq_status txn_answer(breq *r, kstr txn_id, int16_t **errs, int32_t n, bool progress) {
    bool any_ok = false;
    for (int32_t i = 0; i < n; i++)
        any_ok |= *errs[i] == 0;
    int64_t need = 0;
    rpart *p = any_ok ? txns_durable_point(r->b, txn_id, &need) : NULL;
    return answer_at(r, p, need, txn_id, errs, n, progress);
}

breq_status api_init_producer_id_txn(breq *r) {
    const kafka_init_producer_id_request *req = r->req;
    kafka_init_producer_id_response *resp = r->resp;
    int16_t err = id_error(req->transactional_id);
    if (err == 0)
        err = txns_ensure(r->b);
    txns_shard *s = err ? NULL : txns_lock(r->b, req->transactional_id);
    if (err == 0 && s == NULL)
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (s != NULL) {
        int64_t pid = -1;
        int16_t epoch = -1;
        err = tcoord_init_producer(s->sm, req->transactional_id, req->transaction_timeout_ms,
                                   req->producer_id, req->producer_epoch, groups_now_ms(), &pid, &epoch);
        txns_unlock(s);
        resp->producer_id = pid;
        resp->producer_epoch = epoch;
        if (err == 0)
            LOG_DEBUG("txn", "transactional id '%.*s' from %s: producer %lld epoch %d",
                      req->transactional_id.len, req->transactional_id.ptr, r->net->peer, (long long)pid,
                      epoch);
    }
    if (err && err != KAFKA_ERR_CONCURRENT_TRANSACTIONS && err != KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS)
        LOG_INFO_LIMITED(&txn_rl, "txn", "InitProducerId for transactional id '%.*s' from %s: %s",
                         req->transactional_id.len > 200
                             ? 200
                             : (req->transactional_id.len > 0 ? req->transactional_id.len : 0),
                         req->transactional_id.len > 0 ? req->transactional_id.ptr : "", r->net->peer,
                         kafka_error_name(err));
    resp->error_code = fenced_for(err, r->hdr.api_version, 4);
    int16_t **errs = breq_calloc(r, 1, sizeof *errs);
    if (errs == NULL)
        return BREQ_CLOSE;
    errs[0] = &resp->error_code;
    return txn_answer(r, req->transactional_id, errs, 1, false);
}

/* ---- AddPartitionsToTxn ------------------------------------------------------ */

typedef kafka_add_partitions_to_txn_request_add_partitions_to_txn_topic apt_topic;
typedef kafka_add_partitions_to_txn_response_add_partitions_to_txn_topic_result apt_result;

/* One transaction's partitions: every partition gets the one answer (as
 * Kafka's coordinator: all or nothing). false on OOM. */
static bool add_one(breq *r, kstr id, int64_t pid, int16_t epoch, const apt_topic *topics, int32_t nt,
                    apt_result **out, int32_t *nout, int16_t since_fenced) {
    nt = nt > 0 ? nt : 0;
    int32_t total = 0;
    for (int32_t i = 0; i < nt; i++)
        total += topics[i].partitions_count > 0 ? topics[i].partitions_count : 0;
    trec_tp *tps = total ? breq_calloc(r, (size_t)total, sizeof *tps) : NULL;
    apt_result *res = nt ? breq_calloc(r, (size_t)nt, sizeof *res) : NULL;
    if ((total && tps == NULL) || (nt && res == NULL))
        return false;
    int16_t err = id_error(id);
    if (err == 0 && !bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, id))
        err = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    /* WRITE on every topic, or nothing is added: the denied topics get
     * TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED. */
    bool *denied = nt ? breq_calloc(r, (size_t)nt, sizeof *denied) : NULL;
    if (nt && denied == NULL)
        return false;
    bool any_denied = false;
    for (int32_t i = 0; i < nt && err == 0 && bauthz_on(r); i++)
        if (!bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TOPIC, topics[i].name))
            any_denied = denied[i] = true;
    md_image *img = bmeta_image(r->b->meta);
    int32_t k = 0;
    for (int32_t i = 0; i < nt && err == 0 && !any_denied; i++) {
        const md_topic *t = md_image_topic(img, topics[i].name);
        for (int32_t j = 0; j < (topics[i].partitions_count > 0 ? topics[i].partitions_count : 0); j++) {
            int32_t p = topics[i].partitions[j];
            if (t == NULL || p < 0 || p >= t->n_partitions)
                err = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            tps[k++] = (trec_tp){topics[i].name, p};
        }
    }
    md_image_unref(img);
    if (err == 0 && !any_denied) {
        txns_shard *s = txns_lock(r->b, id);
        if (s == NULL) {
            err = KAFKA_ERR_NOT_COORDINATOR;
        } else {
            err = tcoord_add_partitions(s->sm, id, pid, epoch, tps, k, groups_now_ms());
            txns_unlock(s);
        }
    }
    err = fenced_for(err, r->hdr.api_version, since_fenced);
    for (int32_t i = 0; i < nt; i++) {
        kafka_add_partitions_to_txn_response_add_partitions_to_txn_topic_result_init(&res[i]);
        res[i].name = topics[i].name;
        int32_t np = topics[i].partitions_count > 0 ? topics[i].partitions_count : 0;
        res[i].results_by_partition =
            np ? breq_calloc(r, (size_t)np, sizeof *res[i].results_by_partition) : NULL;
        if (np && res[i].results_by_partition == NULL)
            return false;
        res[i].results_by_partition_count = np;
        for (int32_t j = 0; j < np; j++) {
            kafka_add_partitions_to_txn_response_add_partitions_to_txn_partition_result_init(
                &res[i].results_by_partition[j]);
            res[i].results_by_partition[j].partition_index = topics[i].partitions[j];
            res[i].results_by_partition[j].partition_error_code =
                err          ? err
                : denied[i]  ? KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED
                : any_denied ? KAFKA_ERR_OPERATION_NOT_ATTEMPTED
                             : 0;
        }
    }
    *out = res;
    *nout = nt;
    return true;
}

breq_status api_add_partitions_to_txn(breq *r) {
    const kafka_add_partitions_to_txn_request *req = r->req;
    kafka_add_partitions_to_txn_response *resp = r->resp;
    if (r->hdr.api_version < 4) {
        if (!add_one(r, req->v3_and_below_transactional_id, req->v3_and_below_producer_id,
                     req->v3_and_below_producer_epoch, req->v3_and_below_topics,
                     req->v3_and_below_topics_count, &resp->results_by_topic_v3_and_below,
                     &resp->results_by_topic_v3_and_below_count, 2))
            return BREQ_CLOSE;
        int32_t total = 0;
        for (int32_t i = 0; i < resp->results_by_topic_v3_and_below_count; i++)
            total += resp->results_by_topic_v3_and_below[i].results_by_partition_count;
        int16_t **errs = total ? breq_calloc(r, (size_t)total, sizeof *errs) : NULL;
        if (total && errs == NULL)
            return BREQ_CLOSE;
        int32_t k = 0;
        for (int32_t i = 0; i < resp->results_by_topic_v3_and_below_count; i++)
            for (int32_t j = 0; j < resp->results_by_topic_v3_and_below[i].results_by_partition_count; j++)
                errs[k++] =
                    &resp->results_by_topic_v3_and_below[i].results_by_partition[j].partition_error_code;
        return txn_answer(r, req->v3_and_below_transactional_id, errs, k, false);
    }
    /* v4+: sent by brokers (verification, KIP-890), which this one does not
     * do to others; answered per transaction all the same, without waiting
     * for the ISR (a verification changes nothing). */
    int32_t n = req->transactions_count > 0 ? req->transactions_count : 0;
    resp->results_by_transaction = n ? breq_calloc(r, (size_t)n, sizeof *resp->results_by_transaction) : NULL;
    if (n && resp->results_by_transaction == NULL)
        return BREQ_CLOSE;
    resp->results_by_transaction_count = n;
    for (int32_t i = 0; i < n; i++) {
        const kafka_add_partitions_to_txn_request_add_partitions_to_txn_transaction *t =
            &req->transactions[i];
        kafka_add_partitions_to_txn_response_add_partitions_to_txn_result *o =
            &resp->results_by_transaction[i];
        kafka_add_partitions_to_txn_response_add_partitions_to_txn_result_init(o);
        o->transactional_id = t->transactional_id;
        if (!add_one(r, t->transactional_id, t->producer_id, t->producer_epoch, t->topics, t->topics_count,
                     &o->topic_results, &o->topic_results_count, 2))
            return BREQ_CLOSE;
    }
    return BREQ_DONE;
}

/* ---- AddOffsetsToTxn ------------------------------------------------------- */

breq_status api_add_offsets_to_txn(breq *r) {
    const kafka_add_offsets_to_txn_request *req = r->req;
    kafka_add_offsets_to_txn_response *resp = r->resp;
    int16_t err = id_error(req->transactional_id);
    if (err == 0 && !bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, req->transactional_id))
        err = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    if (err == 0 && req->group_id.len <= 0)
        err = KAFKA_ERR_INVALID_GROUP_ID;
    if (err == 0 && !bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id))
        err = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
    int32_t n = groups_shard_count(r->b);
    if (err == 0 && n <= 0) {
        groups_ensure_offsets_topic(r->b);
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (err == 0) {
        /* The group's __consumer_offsets partition joins the transaction:
         * its marker makes the offsets visible. */
        trec_tp tp = {kstr_c(GROUPS_OFFSETS_TOPIC), gcoord_partition_for(req->group_id, n)};
        txns_shard *s = txns_lock(r->b, req->transactional_id);
        if (s == NULL) {
            err = KAFKA_ERR_NOT_COORDINATOR;
        } else {
            err = tcoord_add_partitions(s->sm, req->transactional_id, req->producer_id, req->producer_epoch,
                                        &tp, 1, groups_now_ms());
            txns_unlock(s);
        }
    }
    resp->error_code = fenced_for(err, r->hdr.api_version, 2);
    int16_t **errs = breq_calloc(r, 1, sizeof *errs);
    if (errs == NULL)
        return BREQ_CLOSE;
    errs[0] = &resp->error_code;
    return txn_answer(r, req->transactional_id, errs, 1, false);
}

/* ---- EndTxn -------------------------------------------------------------------- */

breq_status api_end_txn(breq *r) {
    const kafka_end_txn_request *req = r->req;
    kafka_end_txn_response *resp = r->resp;
    int16_t err = id_error(req->transactional_id);
    if (err == 0 && !bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, req->transactional_id))
        err = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    if (err == 0) {
        txns_shard *s = txns_lock(r->b, req->transactional_id);
        if (s == NULL) {
            err = KAFKA_ERR_NOT_COORDINATOR;
        } else {
            err = tcoord_end_txn(s->sm, req->transactional_id, req->producer_id, req->producer_epoch,
                                 req->committed, groups_now_ms());
            txns_unlock(s);
        }
    }
    if (err && err != KAFKA_ERR_CONCURRENT_TRANSACTIONS)
        LOG_INFO_LIMITED(&txn_rl, "txn", "EndTxn (%s) for transactional id '%.*s' from %s: %s",
                         req->committed ? "commit" : "abort",
                         req->transactional_id.len > 0 ? req->transactional_id.len : 0,
                         req->transactional_id.len > 0 ? req->transactional_id.ptr : "", r->net->peer,
                         kafka_error_name(err));
    resp->error_code = fenced_for(err, r->hdr.api_version, 2);
    int16_t **errs = breq_calloc(r, 1, sizeof *errs);
    if (errs == NULL)
        return BREQ_CLOSE;
    errs[0] = &resp->error_code;
    return txn_answer(r, req->transactional_id, errs, 1, true);
}

/* ---- TxnOffsetCommit ------------------------------------------------------------ */

breq_status api_txn_offset_commit(breq *r) {
    const kafka_txn_offset_commit_request *req = r->req;
    kafka_txn_offset_commit_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    int16_t err = id_error(req->transactional_id);
    if (err == 0 && !bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, req->transactional_id))
        err = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    if (err == 0 && req->group_id.len <= 0)
        err = KAFKA_ERR_INVALID_GROUP_ID;
    if (err == 0 && !bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id))
        err = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
    /* READ on every topic (all or nothing, as for AddPartitionsToTxn). */
    for (int32_t i = 0; err == 0 && bauthz_on(r) && i < req->topics_count; i++)
        if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_TOPIC, req->topics[i].name))
            err = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
    /* This broker must coordinate the group (the client sends it there). */
    if (err == 0) {
        groups_shard *gs = groups_lock(r->b, req->group_id);
        if (gs == NULL) {
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        } else {
            int64_t off;
            int32_t le;
            kstr meta;
            err = gcoord_fetch_offset(gs->sm, req->group_id, kstr_c(""), 0, &off, &le, &meta);
            groups_unlock(gs);
        }
    }
    /* The producer must be the transactional id's current one, with the
     * group's partition in its transaction (AddOffsetsToTxn). */
    if (err == 0) {
        txns_shard *s = txns_lock(r->b, req->transactional_id);
        if (s != NULL) {
            tcoord_info i;
            int16_t e = tcoord_describe(s->sm, req->transactional_id, &i);
            if (e == 0 && i.producer_id != req->producer_id)
                err = KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING;
            else if (e == 0 && i.epoch != req->producer_epoch)
                err = KAFKA_ERR_PRODUCER_FENCED;
            else if (e == 0 && i.state != TREC_ONGOING)
                err = KAFKA_ERR_INVALID_TXN_STATE;
            else if (e == KAFKA_ERR_TRANSACTIONAL_ID_NOT_FOUND)
                err = KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING;
            txns_unlock(s);
        }
    }
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    int32_t total = 0;
    for (int32_t i = 0; i < nt; i++)
        total += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    txns_offset *os = total ? breq_calloc(r, (size_t)total, sizeof *os) : NULL;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if ((total && os == NULL) || (nt && resp->topics == NULL))
        return BREQ_CLOSE;
    int32_t k = 0;
    for (int32_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < (req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0);
             j++) {
            const kafka_txn_offset_commit_request_txn_offset_commit_request_partition *p =
                &req->topics[i].partitions[j];
            if (p->committed_metadata.len > 4096 && err == 0)
                err = KAFKA_ERR_OFFSET_METADATA_TOO_LARGE;
            os[k++] = (txns_offset){req->topics[i].name, p->partition_index, p->committed_offset,
                                    p->committed_leader_epoch, p->committed_metadata};
        }
    rpart *wait_p = NULL;
    int64_t need = 0;
    if (err == 0)
        err = txns_write_offsets(r->b, req->group_id, req->producer_id, req->producer_epoch, os, k, &wait_p,
                                 &need);
    err = fenced_for(err, ver, 3);
    resp->topics_count = nt;
    for (int32_t i = 0; i < nt; i++) {
        kafka_txn_offset_commit_response_txn_offset_commit_response_topic *t = &resp->topics[i];
        kafka_txn_offset_commit_response_txn_offset_commit_response_topic_init(t);
        t->name = req->topics[i].name;
        int32_t np = req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
        t->partitions = np ? breq_calloc(r, (size_t)np, sizeof *t->partitions) : NULL;
        if (np && t->partitions == NULL) {
            rpart_release(wait_p);
            return BREQ_CLOSE;
        }
        t->partitions_count = np;
        for (int32_t j = 0; j < np; j++) {
            kafka_txn_offset_commit_response_txn_offset_commit_response_partition_init(&t->partitions[j]);
            t->partitions[j].partition_index = req->topics[i].partitions[j].partition_index;
            t->partitions[j].error_code = err;
        }
    }
    int16_t **errs = k ? breq_calloc(r, (size_t)k, sizeof *errs) : NULL;
    if (k && errs == NULL) {
        rpart_release(wait_p);
        return BREQ_CLOSE;
    }
    int32_t ne = 0;
    for (int32_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < resp->topics[i].partitions_count && ne < k; j++)
            errs[ne++] = &resp->topics[i].partitions[j].error_code;
    return answer_at(r, wait_p, need, req->transactional_id, errs, ne, false);
}

/* ---- WriteTxnMarkers --------------------------------------------------------------- */

/* A marker written here whose answer waits for the ISR. */
typedef struct marker_wait {
    rpart *p;     /* referenced */
    int64_t need; /* the HW that covers the marker */
    int16_t *err; /* the partition's error code in the response */
} marker_wait;

typedef struct markers_state {
    marker_wait *w;
    int32_t n;
} markers_state;

static bool markers_ready(breq *r, void *arg) {
    (void)r;
    markers_state *ms = arg;
    for (int32_t i = 0; i < ms->n; i++) {
        int16_t e;
        if (!rpart_acked(ms->w[i].p, ms->w[i].need, &e))
            return false;
    }
    return true;
}

static void markers_finish(breq *r, void *arg, bool expired) {
    (void)expired;
    markers_state *ms = arg;
    for (int32_t i = 0; i < ms->n; i++) {
        rpart_acked(ms->w[i].p, ms->w[i].need, ms->w[i].err);
        rpart_release(ms->w[i].p);
    }
    ms->n = 0;
    breq_complete(r);
}

/* From a coordinator (another broker's, or this one's for a replicated
 * partition): the markers are written to the partitions this broker leads
 * (others: NOT_LEADER_OR_FOLLOWER), and the answer waits until the ISR has
 * them (at most TXNS_MARKER_ISR_WAIT_MS; then REQUEST_TIMED_OUT or
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND, and the coordinator sends them again),
 * so an acknowledged marker survives the loss of this leader. */
breq_status api_write_txn_markers(breq *r) {
    const kafka_write_txn_markers_request *req = r->req;
    kafka_write_txn_markers_response *resp = r->resp;
    if (!bauthz_cluster(r, ACL_OP_CLUSTER_ACTION))
        return BREQ_CLOSE; /* brokers only, like the other inter-node APIs on a client listener */
    int32_t n = req->markers_count > 0 ? req->markers_count : 0;
    resp->markers = n ? breq_calloc(r, (size_t)n, sizeof *resp->markers) : NULL;
    if (n && resp->markers == NULL)
        return BREQ_CLOSE;
    resp->markers_count = n;
    int32_t total = 0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < (req->markers[i].topics_count > 0 ? req->markers[i].topics_count : 0); j++)
            total += req->markers[i].topics[j].partition_indexes_count > 0
                         ? req->markers[i].topics[j].partition_indexes_count
                         : 0;
    markers_state *ms = breq_calloc(r, 1, sizeof *ms);
    if (ms == NULL || (total && (ms->w = breq_calloc(r, (size_t)total, sizeof *ms->w)) == NULL))
        return BREQ_CLOSE;
    int64_t now = groups_now_ms();
    breq_status st = BREQ_DONE;
    for (int32_t i = 0; i < n && st == BREQ_DONE; i++) {
        const kafka_write_txn_markers_request_writable_txn_marker *m = &req->markers[i];
        kafka_write_txn_markers_response_writable_txn_marker_result *o = &resp->markers[i];
        kafka_write_txn_markers_response_writable_txn_marker_result_init(o);
        o->producer_id = m->producer_id;
        int32_t nt = m->topics_count > 0 ? m->topics_count : 0;
        o->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *o->topics) : NULL;
        if (nt && o->topics == NULL) {
            st = BREQ_CLOSE;
            break;
        }
        o->topics_count = nt;
        md_image *img = bmeta_image(r->b->meta);
        for (int32_t j = 0; j < nt && st == BREQ_DONE; j++) {
            const kafka_write_txn_markers_request_writable_txn_marker_topic *t = &m->topics[j];
            kafka_write_txn_markers_response_writable_txn_marker_topic_result *ot = &o->topics[j];
            kafka_write_txn_markers_response_writable_txn_marker_topic_result_init(ot);
            ot->name = t->name;
            int32_t np = t->partition_indexes_count > 0 ? t->partition_indexes_count : 0;
            ot->partitions = np ? breq_calloc(r, (size_t)np, sizeof *ot->partitions) : NULL;
            if (np && ot->partitions == NULL) {
                st = BREQ_CLOSE;
                break;
            }
            ot->partitions_count = np;
            const md_topic *mt = md_image_topic(img, t->name);
            for (int32_t k = 0; k < np; k++) {
                kafka_write_txn_markers_response_writable_txn_marker_partition_result_init(
                    &ot->partitions[k]);
                ot->partitions[k].partition_index = t->partition_indexes[k];
                int16_t err = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                rpart *p = mt ? bmeta_partition(r->b->meta, mt, t->partition_indexes[k], &err) : NULL;
                if (p != NULL) {
                    int64_t off = -1;
                    err = txns_write_marker(r->b, p, m->producer_id, m->producer_epoch, m->transaction_result,
                                            m->coordinator_epoch, now, &off);
                    if (err == 0 && ms->n < total)
                        ms->w[ms->n++] = (marker_wait){p, off + 1, &ot->partitions[k].error_code};
                    else
                        rpart_release(p);
                }
                ot->partitions[k].error_code = err;
            }
        }
        md_image_unref(img);
    }
    if (st != BREQ_DONE || ms->n == 0) {
        for (int32_t i = 0; i < ms->n; i++)
            rpart_release(ms->w[i].p);
        return st;
    }
    rpart **parts = breq_calloc(r, (size_t)ms->n, sizeof *parts);
    for (int32_t i = 0; parts != NULL && i < ms->n; i++)
        parts[i] = ms->w[i].p;
    breq_parked(r);
    if (parts != NULL && !markers_ready(r, ms) &&
        fetch_wait(r->b, r, parts, ms->n, fetch_now_ms() + TXNS_MARKER_ISR_WAIT_MS, markers_ready,
                   markers_finish, ms))
        return BREQ_ASYNC;
    markers_finish(r, ms, false);
    return BREQ_ASYNC;
}

/* ---- DescribeTransactions, ListTransactions --------------------------------------- */

typedef kafka_describe_transactions_response_transaction_state dt_state;

/* Fills one state from the machine's view (copied: the machine's memory
 * changes once the shard is unlocked). false on OOM. */
static bool describe_fill(breq *r, const tcoord_info *i, dt_state *o) {
    o->transaction_state = kstr_c(trec_status_name(i->state));
    o->transaction_timeout_ms = i->timeout_ms;
    o->transaction_start_time_ms = i->start_ms;
    o->producer_id = i->producer_id;
    o->producer_epoch = i->epoch;
    int32_t topics = 0;
    for (int32_t k = 0; k < i->n_parts; k++)
        topics += k == 0 || !kstr_eq(i->parts[k].topic, i->parts[k - 1].topic);
    o->topics = topics ? breq_calloc(r, (size_t)topics, sizeof *o->topics) : NULL;
    int32_t *parts = i->n_parts ? breq_calloc(r, (size_t)i->n_parts, sizeof *parts) : NULL;
    if ((topics && o->topics == NULL) || (i->n_parts && parts == NULL))
        return false;
    o->topics_count = 0;
    for (int32_t k = 0; k < i->n_parts; k++) {
        if (k == 0 || !kstr_eq(i->parts[k].topic, i->parts[k - 1].topic)) {
            kafka_describe_transactions_response_topic_data *t = &o->topics[o->topics_count++];
            kafka_describe_transactions_response_topic_data_init(t);
            t->topic = api_kstr_dup(r, i->parts[k].topic);
            if (t->topic.len < 0)
                return false;
            t->partitions = &parts[k];
            t->partitions_count = 0;
        }
        kafka_describe_transactions_response_topic_data *t = &o->topics[o->topics_count - 1];
        t->partitions[t->partitions_count++] = i->parts[k].partition;
    }
    return true;
}

breq_status api_describe_transactions(breq *r) {
    const kafka_describe_transactions_request *req = r->req;
    kafka_describe_transactions_response *resp = r->resp;
    int32_t n = req->transactional_ids_count > 0 ? req->transactional_ids_count : 0;
    resp->transaction_states = n ? breq_calloc(r, (size_t)n, sizeof *resp->transaction_states) : NULL;
    if (n && resp->transaction_states == NULL)
        return BREQ_CLOSE;
    resp->transaction_states_count = n;
    for (int32_t k = 0; k < n; k++) {
        dt_state *o = &resp->transaction_states[k];
        kafka_describe_transactions_response_transaction_state_init(o);
        o->transactional_id = req->transactional_ids[k];
        o->transaction_state = kstr_c("");
        int16_t err = id_error(req->transactional_ids[k]);
        if (err == 0 &&
            !bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_TRANSACTIONAL_ID, req->transactional_ids[k]))
            err = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        txns_shard *s = err ? NULL : txns_lock(r->b, req->transactional_ids[k]);
        if (err == 0 && s == NULL)
            /* A single node without the topic has no transactional id at all. */
            err = txns_shard_count(r->b) == 0 && !bmeta_is_quorum_member(r->b->meta)
                      ? KAFKA_ERR_TRANSACTIONAL_ID_NOT_FOUND
                      : KAFKA_ERR_NOT_COORDINATOR;
        if (s != NULL) {
            tcoord_info i;
            err = tcoord_describe(s->sm, req->transactional_ids[k], &i);
            bool ok = err != 0 || describe_fill(r, &i, o);
            txns_unlock(s);
            if (!ok)
                return BREQ_CLOSE;
        }
        o->error_code = err;
    }
    return BREQ_DONE;
}

typedef struct list_ctx {
    breq *r;
    const kafka_list_transactions_request *req;
    int64_t now;
    kafka_list_transactions_response_transaction_state *out;
    int32_t n, cap;
    bool oom;
} list_ctx;

#define LIST_TXNS_MAX 100000 /* ids in one ListTransactions answer */

static bool list_one(void *ctx, const tcoord_info *i) {
    list_ctx *c = ctx;
    const kafka_list_transactions_request *req = c->req;
    if (bauthz_on(c->r) && !bauthz_may(c->r, ACL_OP_DESCRIBE, ACL_RES_TRANSACTIONAL_ID, i->txn_id))
        return true; /* ids the principal may not describe are left out, as Kafka does */
    const char *state = trec_status_name(i->state);
    if (req->state_filters_count > 0) {
        bool match = false;
        for (int32_t k = 0; k < req->state_filters_count && !match; k++)
            match = kstr_eq_c(req->state_filters[k], state);
        if (!match)
            return true;
    }
    if (req->producer_id_filters_count > 0) {
        bool match = false;
        for (int32_t k = 0; k < req->producer_id_filters_count && !match; k++)
            match = req->producer_id_filters[k] == i->producer_id;
        if (!match)
            return true;
    }
    if (c->r->hdr.api_version >= 1 && req->duration_filter >= 0 &&
        (i->start_ms < 0 || c->now - i->start_ms < req->duration_filter))
        return true;
    if (c->n == c->cap) {
        int32_t nc = c->cap ? c->cap * 2 : 64;
        kafka_list_transactions_response_transaction_state *nv = breq_calloc(c->r, (size_t)nc, sizeof *nv);
        if (nv == NULL) {
            c->oom = true;
            return false;
        }
        if (c->n)
            memcpy(nv, c->out, (size_t)c->n * sizeof *nv);
        c->out = nv;
        c->cap = nc;
    }
    kafka_list_transactions_response_transaction_state *o = &c->out[c->n++];
    kafka_list_transactions_response_transaction_state_init(o);
    o->transactional_id = api_kstr_dup(c->r, i->txn_id);
    o->producer_id = i->producer_id;
    o->transaction_state = kstr_c(state);
    if (o->transactional_id.len < 0) {
        c->oom = true;
        return false;
    }
    return c->n < LIST_TXNS_MAX;
}

breq_status api_list_transactions(breq *r) {
    const kafka_list_transactions_request *req = r->req;
    kafka_list_transactions_response *resp = r->resp;
    static const char *const known[] = {"Empty",        "Ongoing",          "PrepareCommit",
                                        "PrepareAbort", "CompleteCommit",   "CompleteAbort",
                                        "Dead",         "PrepareEpochFence"};
    int32_t nf = req->state_filters_count > 0 ? req->state_filters_count : 0;
    resp->unknown_state_filters = nf ? breq_calloc(r, (size_t)nf, sizeof *resp->unknown_state_filters) : NULL;
    if (nf && resp->unknown_state_filters == NULL)
        return BREQ_CLOSE;
    resp->unknown_state_filters_count = 0;
    for (int32_t k = 0; k < nf; k++) {
        bool ok = false;
        for (size_t j = 0; j < sizeof known / sizeof known[0] && !ok; j++)
            ok = kstr_eq_c(req->state_filters[k], known[j]);
        if (!ok)
            resp->unknown_state_filters[resp->unknown_state_filters_count++] = req->state_filters[k];
    }
    list_ctx c = {r, req, groups_now_ms(), NULL, 0, 0, false};
    for (int32_t i = 0; i < txns_shard_count(r->b) && !c.oom && c.n < LIST_TXNS_MAX; i++) {
        txns_shard *s = txns_lock_index(r->b, i);
        if (s == NULL)
            continue;
        int16_t err = tcoord_each(s->sm, list_one, &c);
        txns_unlock(s);
        if (err == KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS)
            resp->error_code = err;
    }
    if (c.oom)
        return BREQ_CLOSE;
    resp->transaction_states = c.out;
    resp->transaction_states_count = c.n;
    return BREQ_DONE;
}
