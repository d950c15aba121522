/*
 * api_offset_for_leader_epoch.c - OffsetForLeaderEpoch (key 23): where a
 * leader epoch ends, so a client (or follower) can detect a truncated log.
 *
 * Single node: a partition has had one leader epoch (partition.leader_epoch)
 * and it is still current, so it ends at the log end offset. Asking for that
 * epoch gives (epoch, log end offset); an epoch we never had gives (-1, -1),
 * as Kafka answers for an unknown epoch. current_leader_epoch (v2+) is checked like
 * in Fetch: older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
 */
#include "broker/apis.h"
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
    for (int32_t i = 0; i < nt; i++) {
        const kafka_offset_for_leader_epoch_request_offset_for_leader_topic *rt = &req->topics[i];
        kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result *tr = &resp->topics[i];
        kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result_init(tr);
        tr->topic = rt->topic;
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->partitions = np ? breq_calloc(r, (size_t)np, sizeof *tr->partitions) : NULL;
        if (np && tr->partitions == NULL)
            return BREQ_CLOSE;
        tr->partitions_count = np;
        topic *t = topics_get(r->b->topics, rt->topic);
        for (int32_t j = 0; j < np; j++) {
            const kafka_offset_for_leader_epoch_request_offset_for_leader_partition *rp = &rt->partitions[j];
            kafka_offset_for_leader_epoch_response_epoch_end_offset *pr = &tr->partitions[j];
            kafka_offset_for_leader_epoch_response_epoch_end_offset_init(pr);
            pr->partition = rp->partition;
            partition *p = t != NULL ? topic_partition(t, rp->partition) : NULL;
            if (p == NULL) {
                pr->error_code = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (rp->current_leader_epoch >= 0 && rp->current_leader_epoch != p->leader_epoch) {
                pr->error_code = rp->current_leader_epoch < p->leader_epoch ? KAFKA_ERR_FENCED_LEADER_EPOCH
                                                                            : KAFKA_ERR_UNKNOWN_LEADER_EPOCH;
                continue;
            }
            if (rp->leader_epoch == p->leader_epoch) {
                pr->end_offset = plog_end_offset(p->log);
                pr->leader_epoch = ver >= 1 ? p->leader_epoch : -1;
            }
        }
        if (t != NULL)
            topic_release(r->b->topics, t);
    }
    return BREQ_DONE;
}
