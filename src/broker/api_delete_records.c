/*
 * api_delete_records.c - DeleteRecords (key 21): move log start offsets up.
 *
 * Per partition the new log start is the given offset, or the high watermark
 * for -1. Offsets past the high watermark (or below -1) get
 * OFFSET_OUT_OF_RANGE; a topic whose cleanup.policy lacks "delete" gets
 * POLICY_VIOLATION and an internal topic INVALID_TOPIC_EXCEPTION, as in
 * Kafka. The answer is the resulting low watermark.
 * Segments wholly below it go with the next retention pass; reads below it
 * get OFFSET_OUT_OF_RANGE at once. The partition's replica machine does
 * the move (it owns the high watermark); with an ISR of one there is
 * nothing to wait for, so timeout_ms is not used yet.
 */
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "core/log.h"

static int16_t delete_one(rpart *p, int64_t offset, int64_t *low) {
    if (p->internal)
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION; /* as Kafka: the broker's own state */
    if (offset < -1)
        return KAFKA_ERR_OFFSET_OUT_OF_RANGE;
    rpart_lock(p);
    int16_t err = 0;
    if ((p->cfg.cleanup_policy & CONFIG_CLEANUP_DELETE) == 0 && rpart_log(p) != NULL)
        err = KAFKA_ERR_POLICY_VIOLATION;
    else
        err = replica_delete_records(p->r, offset, low);
    rpart_unlock(p);
    if (err == 0)
        LOG_INFO("broker", "records deleted below offset %lld topic=%s partition=%d", (long long)*low,
                 p->topic, p->index);
    return err;
}

breq_status api_delete_records(breq *r) {
    kafka_delete_records_request *req = r->req;
    kafka_delete_records_response *resp = r->resp;
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->throttle_time_ms = 0;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if (nt && resp->topics == NULL)
        return BREQ_CLOSE;
    resp->topics_count = nt;
    md_image *img = bmeta_image(r->b->meta);
    for (int32_t i = 0; i < nt; i++) {
        const kafka_delete_records_request_delete_records_topic *rt = &req->topics[i];
        kafka_delete_records_response_delete_records_topic_result *tr = &resp->topics[i];
        kafka_delete_records_response_delete_records_topic_result_init(tr);
        tr->name = rt->name;
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->partitions = np ? breq_calloc(r, (size_t)np, sizeof *tr->partitions) : NULL;
        if (np && tr->partitions == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        tr->partitions_count = np;
        const md_topic *t = md_image_topic(img, rt->name);
        bool denied = !bauthz_allow(r, ACL_OP_DELETE, ACL_RES_TOPIC, rt->name);
        for (int32_t j = 0; j < np; j++) {
            kafka_delete_records_response_delete_records_partition_result *pr = &tr->partitions[j];
            kafka_delete_records_response_delete_records_partition_result_init(pr);
            pr->partition_index = rt->partitions[j].partition_index;
            pr->low_watermark = -1;
            if (denied) {
                pr->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
                continue;
            }
            int16_t err;
            rpart *p = bmeta_partition(r->b->meta, t, pr->partition_index, &err);
            if (p == NULL) {
                pr->error_code = err;
                continue;
            }
            int64_t low = -1;
            pr->error_code = delete_one(p, rt->partitions[j].offset, &low);
            rpart_release(p);
            if (pr->error_code == KAFKA_ERR_NONE)
                pr->low_watermark = low;
        }
    }
    md_image_unref(img);
    return BREQ_DONE;
}
