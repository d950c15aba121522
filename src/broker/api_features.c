/*
 * api_features.c - metadata.version: UpdateFeatures (key 57, v0-1) and the
 * feature fields of ApiVersions (v3+). What Kafka's `kafka-features.sh
 * describe` and Admin.describeFeatures read (ApiVersions: the supported
 * range of each feature and the finalized level, with the metadata offset
 * it was read at as the epoch), and what `upgrade` sends (UpdateFeatures,
 * which a quorum member that is not the active controller forwards, see
 * request.c). The rules are the controller's (ctrl_update_features).
 */
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "controller/controller.h"
#include "core/log.h"
#include "proto/gen/kafka_msgs.h"

void api_versions_features(breq *r, kafka_api_versions_response *resp) {
    kafka_api_versions_response_supported_feature_key *sf = breq_calloc(r, 1, sizeof *sf);
    if (sf != NULL) {
        kafka_api_versions_response_supported_feature_key_init(sf);
        sf->name = kstr_c("metadata.version");
        sf->min_version = CTRL_METADATA_VERSION_MIN;
        sf->max_version = CTRL_METADATA_VERSION_LATEST;
        resp->supported_features = sf;
        resp->supported_features_count = 1;
    }
    if (r->b->meta == NULL)
        return;
    md_image *img = bmeta_image(r->b->meta);
    int32_t n = md_image_feature_count(img);
    kafka_api_versions_response_finalized_feature_key *ff =
        n > 0 ? breq_calloc(r, (size_t)n, sizeof *ff) : NULL;
    int32_t k = 0;
    for (int32_t i = 0; ff != NULL && i < n; i++) {
        const md_feature *f = md_image_feature_at(img, i);
        if (f == NULL || f->level <= 0)
            continue;
        kafka_api_versions_response_finalized_feature_key_init(&ff[k]);
        ff[k].name = api_kstr(r, f->name);
        ff[k].max_version_level = f->level;
        ff[k].min_version_level = f->level;
        k++;
    }
    if (k > 0) {
        resp->finalized_features = ff;
        resp->finalized_features_count = k;
        resp->finalized_features_epoch = md_image_offset(img);
    }
    md_image_unref(img);
}

breq_status api_update_features(breq *r) {
    const kafka_update_features_request *req = r->req;
    kafka_update_features_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    int32_t n = req->feature_updates_count > 0 ? req->feature_updates_count : 0;
    if (!bauthz_cluster(r, ACL_OP_ALTER)) { /* Kafka's rule: ALTER on the cluster */
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->error_message = kstr_c("updating features needs ALTER on the cluster");
        resp->results_count = 0;
        return BREQ_DONE;
    }
    if (n > CTRL_REQUEST_ITEMS_MAX) {
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        resp->error_message = kstr_c("too many feature updates in one request");
        return BREQ_DONE;
    }
    ctrl_feature_update *u = breq_calloc(r, (size_t)(n ? n : 1), sizeof *u);
    ctrl_item_result *out = breq_calloc(r, (size_t)(n ? n : 1), sizeof *out);
    kafka_update_features_response_updatable_feature_result *res =
        breq_calloc(r, (size_t)(n ? n : 1), sizeof *res);
    if (u == NULL || out == NULL || res == NULL)
        return BREQ_CLOSE;
    for (int32_t i = 0; i < n; i++) {
        const kafka_update_features_request_feature_update_key *q = &req->feature_updates[i];
        u[i].name = q->feature;
        u[i].level = q->max_version_level;
        /* v0 has allow_downgrade; v1 the upgrade type (1 upgrade, 2 safe, 3 unsafe downgrade) */
        u[i].upgrade_type = ver >= 1 ? q->upgrade_type : (int8_t)(q->allow_downgrade ? 2 : 1);
    }
    bmeta_update_features(r->b->meta, u, n, ver >= 1 && req->validate_only, out);
    for (int32_t i = 0; i < n; i++) {
        kafka_update_features_response_updatable_feature_result_init(&res[i]);
        res[i].feature = req->feature_updates[i].feature;
        res[i].error_code = out[i].error;
        res[i].error_message = out[i].message[0] ? api_kstr(r, out[i].message) : KSTR_NULL;
        if (out[i].error == 0 && !(ver >= 1 && req->validate_only))
            LOG_INFO("broker", "feature %.*s finalized at level %d at the request of %s",
                     req->feature_updates[i].feature.len, req->feature_updates[i].feature.ptr,
                     req->feature_updates[i].max_version_level, r->net->peer);
    }
    resp->results = res;
    resp->results_count = n;
    return BREQ_DONE;
}
