/*
 * api_describe_producers.c - DescribeProducers (key 61): the idempotent
 * producers a partition leader knows (storage/producer_state.h), as
 * kafka-transactions.sh describe-producers shows them: id, epoch, last
 * sequence, last timestamp, and the first offset of the producer's open
 * transaction (current_txn_start_offset; -1 when none: what
 * find-hanging looks at). coordinator_epoch is -1 (not kept per producer).
 *
 * Per partition: UNKNOWN_TOPIC_OR_PARTITION when the image has no such
 * partition, NOT_LEADER_OR_FOLLOWER when this broker does not lead it. The
 * answer is bounded by the producers a partition may hold
 * (PSTATE_PRODUCERS_DEFAULT) times the partitions asked for, within the
 * request's arena.
 */
#include <string.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "core/log.h"

static void describe_partition(breq *r, const md_topic *t, int32_t index,
                               kafka_describe_producers_response_partition_response *pr) {
    kafka_describe_producers_response_partition_response_init(pr);
    pr->partition_index = index;
    pr->active_producers_count = 0;
    int16_t err = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    rpart *p = t ? bmeta_partition(r->b->meta, t, index, &err) : NULL;
    if (p == NULL) {
        pr->error_code = err;
        return;
    }
    rpart_lock(p);
    err = replica_check_epoch(p->r, -1, true);
    if (err == 0) {
        const pstate *s = replica_producers(p->r);
        int32_t n = pstate_count(s);
        kafka_describe_producers_response_producer_state *ps =
            n > 0 ? breq_calloc(r, (size_t)n, sizeof *ps) : NULL;
        if (n > 0 && ps == NULL) {
            err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            n = 0;
        }
        for (int32_t i = 0; i < n; i++) {
            const pstate_entry *e = pstate_at(s, i);
            const pstate_batch *b = pstate_newest(e);
            kafka_describe_producers_response_producer_state_init(&ps[i]);
            ps[i].producer_id = e->producer_id;
            ps[i].producer_epoch = e->epoch;
            ps[i].last_sequence = b ? b->last_seq : -1;
            ps[i].last_timestamp = b ? b->timestamp : -1;
            ps[i].coordinator_epoch = -1;
            ps[i].current_txn_start_offset = e->txn_first; /* -1: no open transaction */
        }
        pr->active_producers = ps;
        pr->active_producers_count = n;
    }
    rpart_unlock(p);
    rpart_release(p);
    pr->error_code = err;
}

breq_status api_describe_producers(breq *r) {
    const kafka_describe_producers_request *req = r->req;
    kafka_describe_producers_response *resp = r->resp;
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if (nt && resp->topics == NULL)
        return BREQ_CLOSE;
    resp->topics_count = nt;
    md_image *img = bmeta_image(r->b->meta);
    for (int32_t i = 0; i < nt; i++) {
        const kafka_describe_producers_request_topic_request *tq = &req->topics[i];
        kafka_describe_producers_response_topic_response *tr = &resp->topics[i];
        kafka_describe_producers_response_topic_response_init(tr);
        tr->name = tq->name;
        const md_topic *t = md_image_topic(img, tq->name);
        int32_t np = tq->partition_indexes_count > 0 ? tq->partition_indexes_count : 0;
        tr->partitions = np ? breq_calloc(r, (size_t)np, sizeof *tr->partitions) : NULL;
        if (np && tr->partitions == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        tr->partitions_count = np;
        bool denied = !bauthz_allow(r, ACL_OP_READ, ACL_RES_TOPIC, tq->name);
        for (int32_t j = 0; j < np; j++) {
            if (denied) {
                kafka_describe_producers_response_partition_response_init(&tr->partitions[j]);
                tr->partitions[j].partition_index = tq->partition_indexes[j];
                tr->partitions[j].error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
                tr->partitions[j].active_producers_count = 0;
                continue;
            }
            describe_partition(r, t, tq->partition_indexes[j], &tr->partitions[j]);
        }
    }
    md_image_unref(img);
    return BREQ_DONE;
}
