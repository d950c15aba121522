/*
 * api_quorum.c - the KRaft APIs: Vote, BeginQuorumEpoch, EndQuorumEpoch and
 * DescribeQuorum go to this node's seat in the quorum (quorum.h), and
 * BrokerRegistration to the active controller. On a single node (no
 * controller.quorum.voters) there is no quorum to answer for.
 */
#include <stdio.h>
#include <string.h>

#include "broker/apis.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/quorum.h"
#include "core/log.h"

static log_ratelimit no_quorum_rl = LOG_RATELIMIT_DEFAULT;

breq_status api_quorum(breq *r) {
    bquorum *q = bmeta_quorum(r->b->meta);
    if (q == NULL) {
        LOG_INFO_LIMITED(&no_quorum_rl, "quorum",
                         "%s from %s refused: this node is not a quorum member (controller.quorum.voters is "
                         "empty); closing the connection",
                         r->api->name, r->net->peer);
        return BREQ_CLOSE;
    }
    return bquorum_handle(q, r);
}

breq_status api_broker_registration(breq *r) {
    const kafka_broker_registration_request *req = r->req;
    kafka_broker_registration_response *resp = r->resp;
    bmeta *m = r->b->meta;
    if (!bmeta_is_quorum_member(m)) {
        resp->error_code = KAFKA_ERR_NOT_CONTROLLER;
        return BREQ_DONE;
    }
    const char *cid = bmeta_cluster_id(m);
    if (req->cluster_id.len != (int32_t)strlen(cid) || memcmp(req->cluster_id.ptr, cid, strlen(cid)) != 0) {
        LOG_WARN_LIMITED(
            &no_quorum_rl, "metadata",
            "node %d from %s asked to register with cluster id '%.*s', but this cluster is '%s'; "
            "answered INCONSISTENT_CLUSTER_ID (format its log.dirs with this cluster's id)",
            req->broker_id, r->net->peer, req->cluster_id.len > 0 ? req->cluster_id.len : 0,
            req->cluster_id.len > 0 ? req->cluster_id.ptr : "", cid);
        resp->error_code = KAFKA_ERR_INCONSISTENT_CLUSTER_ID;
        return BREQ_DONE;
    }
    char host[256] = "", name[64] = "PLAINTEXT", rack[256] = "";
    uint16_t port = 0;
    for (int32_t i = 0; i < req->listeners_count && i < 1; i++) {
        const kafka_broker_registration_request_listener *l = &req->listeners[i];
        snprintf(host, sizeof host, "%.*s", l->host.len > 0 ? l->host.len : 0,
                 l->host.ptr ? l->host.ptr : "");
        snprintf(name, sizeof name, "%.*s", l->name.len > 0 ? l->name.len : 0,
                 l->name.ptr ? l->name.ptr : "");
        port = l->port;
    }
    if (req->rack.len > 0)
        snprintf(rack, sizeof rack, "%.*s", req->rack.len, req->rack.ptr);
    ctrl_broker_reg reg = {req->broker_id, req->incarnation_id, name, host, port, rack[0] ? rack : NULL};
    ctrl_item_result res;
    memset(&res, 0, sizeof res);
    bmeta_register_broker(m, &reg, &res);
    resp->error_code = res.error;
    if (res.error == 0) {
        md_image *img = bmeta_image(m);
        const md_broker *b = md_image_broker(img, req->broker_id);
        resp->broker_epoch = b ? b->epoch : -1;
        md_image_unref(img);
    }
    return BREQ_DONE;
}

breq_status api_broker_heartbeat(breq *r) {
    const kafka_broker_heartbeat_request *req = r->req;
    kafka_broker_heartbeat_response *resp = r->resp;
    bool fenced = true, shut = false;
    resp->error_code = bmeta_broker_heartbeat(r->b->meta, req->broker_id, req->broker_epoch,
                                              req->want_shut_down, &fenced, &shut);
    resp->is_fenced = fenced;
    resp->is_caught_up = resp->error_code == 0;
    resp->should_shut_down = shut;
    return BREQ_DONE;
}
