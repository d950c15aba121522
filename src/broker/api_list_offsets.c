/*
 * api_list_offsets.c - ListOffsets (key 2): offsets by time.
 *
 * Per partition: -2 earliest (the log start offset), -1 latest (the high
 * watermark, which on a single node is the log end offset for both isolation
 * levels), -3 the record with the largest timestamp (v7+), -4 earliest local
 * (v8+; no tiered storage, so the log start), -5 latest tiered (v9+; nothing
 * is tiered: no offset), and any other timestamp: the first offset whose
 * record timestamp is at or after it (-1 when none). v0 answers in its old
 * list form with at most one offset.
 */
#include "broker/apis.h"
#include "broker/broker.h"
#include "core/log.h"

#define LIST_OFFSETS_EARLIEST_LOCAL (-4)
#define LIST_OFFSETS_LATEST_TIERED  (-5)

static void lookup(breq *r, partition *p, int64_t ts,
                   kafka_list_offsets_response_list_offsets_partition_response *pr) {
    int64_t off = -1, when = -1;
    int rc = STORAGE_OK;
    switch (ts) {
    case PLOG_TS_EARLIEST:
    case LIST_OFFSETS_EARLIEST_LOCAL:
        off = plog_start_offset(p->log);
        break;
    case PLOG_TS_LATEST:
        off = plog_end_offset(p->log);
        break;
    case LIST_OFFSETS_LATEST_TIERED:
        break;
    default:
        if (ts < PLOG_TS_MAX) {
            pr->error_code = KAFKA_ERR_INVALID_REQUEST;
            return;
        }
        rc = plog_offset_for_time(p->log, ts, &off, &when);
        break;
    }
    if (rc != STORAGE_OK) {
        pr->error_code = broker_kafka_error(rc);
        return;
    }
    pr->offset = off;
    pr->timestamp = off >= 0 ? when : -1;
    pr->leader_epoch = off >= 0 ? p->leader_epoch : -1;
    if (r->hdr.api_version == 0) {
        if (off >= 0) {
            pr->old_style_offsets = breq_calloc(r, 1, sizeof *pr->old_style_offsets);
            if (pr->old_style_offsets != NULL) {
                pr->old_style_offsets[0] = off;
                pr->old_style_offsets_count = 1;
            }
        }
        /* v0 has neither field; the encoder wants their defaults. */
        pr->offset = -1;
        pr->timestamp = -1;
    }
    if (r->hdr.api_version < 4)
        pr->leader_epoch = -1;
}

breq_status api_list_offsets(breq *r) {
    kafka_list_offsets_request *req = r->req;
    kafka_list_offsets_response *resp = r->resp;
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->throttle_time_ms = 0;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if (nt && resp->topics == NULL)
        return BREQ_CLOSE;
    resp->topics_count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const kafka_list_offsets_request_list_offsets_topic *rt = &req->topics[i];
        kafka_list_offsets_response_list_offsets_topic_response *tr = &resp->topics[i];
        kafka_list_offsets_response_list_offsets_topic_response_init(tr);
        tr->name = rt->name;
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->partitions = np ? breq_calloc(r, (size_t)np, sizeof *tr->partitions) : NULL;
        if (np && tr->partitions == NULL)
            return BREQ_CLOSE;
        tr->partitions_count = np;
        topic *t = topics_get(r->b->topics, rt->name);
        for (int32_t j = 0; j < np; j++) {
            const kafka_list_offsets_request_list_offsets_partition *rp = &rt->partitions[j];
            kafka_list_offsets_response_list_offsets_partition_response *pr = &tr->partitions[j];
            kafka_list_offsets_response_list_offsets_partition_response_init(pr);
            pr->partition_index = rp->partition_index;
            partition *p = t != NULL ? topic_partition(t, rp->partition_index) : NULL;
            if (p == NULL) {
                pr->error_code = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            pr->error_code = partition_check_leader_epoch(p, rp->current_leader_epoch);
            if (pr->error_code != KAFKA_ERR_NONE)
                continue;
            lookup(r, p, rp->timestamp, pr);
        }
        if (t != NULL)
            topic_release(r->b->topics, t);
    }
    return BREQ_DONE;
}
