/*
 * producer_ids.c - blocks of producer ids from the controller. See
 * producer_ids.h.
 */
#include "broker/producer_ids.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/rpc.h"
#include "controller/controller.h"
#include "core/log.h"
#include "proto/gen/kafka_msgs.h"

struct producer_ids {
    pthread_mutex_t mu;
    int64_t next, end; /* [next, end) unused in the current block */
};

producer_ids *producer_ids_create(void) {
    producer_ids *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void producer_ids_destroy(producer_ids *p) {
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* AllocateProducerIds to the active controller on another node. */
static int16_t ask_controller(broker *b, int64_t *start, int32_t *len) {
    int32_t id;
    char host[256];
    uint16_t port;
    if (!bmeta_controller_address(b->meta, &id, host, sizeof host, &port))
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    md_image *img = bmeta_image(b->meta);
    const md_broker *self = md_image_broker(img, b->cfg->node_id);
    kafka_allocate_producer_ids_request req;
    kafka_allocate_producer_ids_request_init(&req);
    req.broker_id = b->cfg->node_id;
    req.broker_epoch = self ? self->epoch : -1;
    md_image_unref(img);
    if (req.broker_epoch < 0)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* not registered yet */
    net_client c;
    net_client_init(&c, host, port);
    c.cancel = &b->draining;
    arena a;
    arena_init(&a, 16 << 10);
    void *resp = NULL;
    static atomic_int corr;
    int rc = brpc_call(&c, KAFKA_API_ALLOCATE_PRODUCER_IDS, 0, atomic_fetch_add(&corr, 1) + 1,
                       "sluice-broker", &req, &a, &resp, b->cfg->quorum_request_timeout_ms + 5000);
    net_client_free(&c);
    int16_t err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (rc == 0) {
        const kafka_allocate_producer_ids_response *r = resp;
        err = r->error_code;
        *start = r->producer_id_start;
        *len = r->producer_id_len;
        if (err == 0 && (*start < 0 || *len <= 0 || *start > INT64_MAX - *len))
            err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    } else {
        LOG_WARN("producer-ids", "AllocateProducerIds to the active controller (node %d at %s:%u) failed: %d",
                 id, host, port, rc);
    }
    arena_reset(&a);
    return err;
}

static int16_t fetch_block(broker *b, int64_t *start, int32_t *len) {
    if (bmeta_is_quorum_member(b->meta) && !bmeta_is_active_controller(b->meta))
        return ask_controller(b, start, len);
    *len = CTRL_PRODUCER_ID_BLOCK;
    int16_t err = bmeta_allocate_producer_ids(b->meta, b->cfg->node_id, -1, start);
    /* Another node became the active controller meanwhile: ask it. */
    if (err == KAFKA_ERR_NOT_CONTROLLER && bmeta_is_quorum_member(b->meta))
        return ask_controller(b, start, len);
    return err;
}

int16_t producer_ids_next(broker *b, int64_t *id) {
    producer_ids *p = b->pids;
    int16_t err = 0;
    pthread_mutex_lock(&p->mu);
    if (p->next >= p->end) {
        int64_t start = -1;
        int32_t len = 0;
        err = fetch_block(b, &start, &len);
        if (err == 0) {
            p->next = start;
            p->end = start + len;
            LOG_INFO("producer-ids", "producer id block %lld..%lld (recorded in the metadata log)",
                     (long long)start, (long long)(start + len - 1));
        } else {
            LOG_WARN("producer-ids", "no producer id block could be had: %s", kafka_error_name(err));
            if (err == KAFKA_ERR_NOT_CONTROLLER || err == KAFKA_ERR_REQUEST_TIMED_OUT)
                err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* retriable for the client */
        }
    }
    if (err == 0)
        *id = p->next++;
    pthread_mutex_unlock(&p->mu);
    return err;
}
