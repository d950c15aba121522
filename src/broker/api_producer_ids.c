/*
 * api_producer_ids.c - InitProducerId (key 22) for idempotent producers,
 * and AllocateProducerIds (key 67), which brokers send to the active
 * controller for blocks of producer ids.
 *
 * InitProducerId without a transactional.id answers a new producer id
 * (producer_ids.h) with epoch 0. From v3 a producer may name its current id
 * and epoch (KIP-360): it gets the same id with the epoch bumped, which
 * fences its older epoch on every partition and lets it restart its
 * sequences at 0 - unless the epoch cannot grow (32766), or the id was
 * never handed out, when it gets a new id. With a transactional.id the
 * transaction coordinator answers (api_txn.c).
 */
#include <stdio.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/producer_ids.h"
#include "controller/controller.h"
#include "core/log.h"

#define EPOCH_MAX 32766 /* Kafka's: the epoch after it would be INT16_MAX, reserved */

breq_status api_init_producer_id(breq *r) {
    const kafka_init_producer_id_request *req = r->req;
    kafka_init_producer_id_response *resp = r->resp;
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    if (req->transactional_id.len >= 0 &&
        !bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, req->transactional_id)) {
        resp->error_code = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    /* An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on
     * any topic (Kafka 3+). */
    if (req->transactional_id.len < 0 && bauthz_on(r) &&
        !bauthz_may(r, ACL_OP_IDEMPOTENT_WRITE, ACL_RES_CLUSTER, kstr_c(ACL_CLUSTER_NAME)) &&
        !bauthz_any_topic_write(r)) {
        (void)bauthz_cluster(r, ACL_OP_IDEMPOTENT_WRITE); /* the denial line */
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    if (req->transactional_id.len >= 0)
        return api_init_producer_id_txn(r); /* the transaction coordinator (api_txn.c) */
    if ((req->producer_id >= 0) != (req->producer_epoch >= 0)) {
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        return BREQ_DONE;
    }
    if (req->producer_id >= 0) {
        md_image *img = bmeta_image(r->b->meta);
        bool issued = req->producer_id < md_image_next_producer_id(img);
        md_image_unref(img);
        if (issued && req->producer_epoch < EPOCH_MAX) {
            resp->producer_id = req->producer_id;
            resp->producer_epoch = (int16_t)(req->producer_epoch + 1);
            resp->error_code = KAFKA_ERR_NONE;
            LOG_DEBUG("producer-ids", "producer %lld from %s: epoch bumped to %d",
                      (long long)req->producer_id, r->net->peer, resp->producer_epoch);
            return BREQ_DONE;
        }
    }
    int64_t id = -1;
    int16_t err = producer_ids_next(r->b, &id);
    resp->error_code = err;
    if (err == 0) {
        resp->producer_id = id;
        resp->producer_epoch = 0;
        LOG_DEBUG("producer-ids", "producer id %lld for %s", (long long)id, r->net->peer);
    }
    return BREQ_DONE;
}

breq_status api_allocate_producer_ids(breq *r) {
    const kafka_allocate_producer_ids_request *req = r->req;
    kafka_allocate_producer_ids_response *resp = r->resp;
    int64_t start = -1;
    resp->producer_id_start = -1;
    resp->producer_id_len = 0;
    if (!bauthz_cluster(r, ACL_OP_CLUSTER_ACTION)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    if (req->broker_epoch < 0) {
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        return BREQ_DONE;
    }
    if (!bmeta_is_quorum_member(r->b->meta) || !bmeta_is_active_controller(r->b->meta)) {
        resp->error_code = KAFKA_ERR_NOT_CONTROLLER;
        return BREQ_DONE;
    }
    resp->error_code = bmeta_allocate_producer_ids(r->b->meta, req->broker_id, req->broker_epoch, &start);
    if (resp->error_code == 0) {
        resp->producer_id_start = start;
        resp->producer_id_len = CTRL_PRODUCER_ID_BLOCK;
        LOG_INFO("producer-ids", "producer id block %lld..%lld for broker %d", (long long)start,
                 (long long)(start + CTRL_PRODUCER_ID_BLOCK - 1), req->broker_id);
    }
    return BREQ_DONE;
}
