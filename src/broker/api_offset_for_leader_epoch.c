/*
 * api_offset_for_leader_epoch.c - OffsetForLeaderEpoch (key 23): where a
 * leader epoch ends, so a client (or follower) can detect a truncated log.
 *
 * The answer comes from the partition's leader-epoch cache (replica.h): the
 * largest epoch at or below the one asked for and where it ends (the next
 * epoch's first offset, or the log end for the current one); an epoch
 * newer than any known gives (-1, -1), as Kafka answers. current_leader_epoch
 * (v2+) is checked as in Fetch: older is FENCED_LEADER_EPOCH, newer
 * UNKNOWN_LEADER_EPOCH.
 */
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"

breq_status api_offset_for_leader_epoch(breq *r) {
    kafka_offset_for_leader_epoch_request *req = r->req;
    kafka_offset_for_leader_epoch_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->throttle_time_ms = 0;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if (nt && resp->topics == NULL)
        return BREQ_CLOSE;
    resp->topics_count = nt;
    md_image *img = bmeta_image(r->b->meta);
    for (int32_t i = 0; i < nt; i++) {
        const kafka_offset_for_leader_epoch_request_offset_for_leader_topic *rt = &req->topics[i];
        kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result *tr = &resp->topics[i];
        kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result_init(tr);
        tr->topic = rt->topic;
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->partitions = np ? breq_calloc(r, (size_t)np, sizeof *tr->partitions) : NULL;
        if (np && tr->partitions == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        tr->partitions_count = np;
        const md_topic *t = md_image_topic(img, rt->topic);
        bool denied = !bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_TOPIC, rt->topic);
        for (int32_t j = 0; j < np; j++) {
            const kafka_offset_for_leader_epoch_request_offset_for_leader_partition *rp = &rt->partitions[j];
            kafka_offset_for_leader_epoch_response_epoch_end_offset *pr = &tr->partitions[j];
            kafka_offset_for_leader_epoch_response_epoch_end_offset_init(pr);
            pr->partition = rp->partition;
            if (denied) {
                pr->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
                continue;
            }
            int16_t err;
            rpart *p = bmeta_partition(r->b->meta, t, rp->partition, &err);
            if (p == NULL) {
                pr->error_code = err;
                continue;
            }
            rpart_lock(p);
            pr->error_code = replica_check_epoch(p->r, rp->current_leader_epoch, true);
            int32_t e = -1;
            int64_t end = -1;
            if (pr->error_code == KAFKA_ERR_NONE)
                replica_end_offset_for_epoch(p->r, rp->leader_epoch, &e, &end);
            rpart_unlock(p);
            rpart_release(p);
            if (pr->error_code != KAFKA_ERR_NONE)
                continue;
            pr->end_offset = end;
            pr->leader_epoch = ver >= 1 ? e : -1;
        }
    }
    md_image_unref(img);
    return BREQ_DONE;
}
