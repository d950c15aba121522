/*
 * api_list_offsets.c - ListOffsets (key 2): offsets by time.
 *
 * Per partition, answered by its replica machine (replica.h): -2 earliest
 * (the log start offset), -1 latest (the high watermark, for both isolation
 * levels until transactions exist), -3 the record with the largest timestamp (v7+), -4 earliest local
 * (v8+; no tiered storage, so the log start), -5 latest tiered (v9+; nothing
 * is tiered: no offset), and any other timestamp: the first offset whose
 * record timestamp is at or after it (-1 when none). v0 answers in its old
 * list form with at most one offset.
 *
 * Work: a lookup by timestamp may decompress the batch holding the
 * timestamp (one batch, storage/log.h), so its cost does not follow the
 * request's size. A partition listed more than once gets INVALID_REQUEST for
 * every listing, as Kafka answers, so repeating a partition costs nothing;
 * and lookups stop at the request's work deadline (breq_should_stop): the
 * partitions not reached get REQUEST_TIMED_OUT, which clients retry.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "core/log.h"

#define LIST_OFFSETS_EARLIEST_LOCAL (-4)
#define LIST_OFFSETS_LATEST_TIERED  (-5)

static log_ratelimit late_rl = LOG_RATELIMIT_DEFAULT;

static void lookup(breq *r, rpart *p, int64_t ts,
                   kafka_list_offsets_response_list_offsets_partition_response *pr) {
    (void)r;
    int64_t off = -1, when = -1;
    int32_t epoch = -1;
    int16_t err = 0;
    if (ts == LIST_OFFSETS_LATEST_TIERED) {
        /* nothing is tiered: no offset */
    } else if (ts < PLOG_TS_MAX && ts != LIST_OFFSETS_EARLIEST_LOCAL) {
        pr->error_code = KAFKA_ERR_INVALID_REQUEST;
        return;
    } else {
        rpart_lock(p);
        err = replica_list_offset(p->r, ts == LIST_OFFSETS_EARLIEST_LOCAL ? PLOG_TS_EARLIEST : ts, &off,
                                  &when, &epoch);
        /* read_committed: latest is the last stable offset (v2+). */
        if (err == 0 && ts == PLOG_TS_LATEST && r->hdr.api_version >= 2 &&
            ((const kafka_list_offsets_request *)r->req)->isolation_level == 1)
            off = replica_last_stable(p->r);
        rpart_unlock(p);
    }
    if (err != 0) {
        pr->error_code = err;
        return;
    }
    pr->offset = off;
    pr->timestamp = off >= 0 ? when : -1;
    pr->leader_epoch = off >= 0 ? epoch : -1;
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

/* A listed partition: topic index, partition index in the request. */
typedef struct lo_ref {
    kstr topic;
    int32_t partition;
    int32_t ti, pi;
} lo_ref;

static int cmp_ref(const void *a, const void *b) {
    const lo_ref *x = a, *y = b;
    int32_t m = x->topic.len < y->topic.len ? x->topic.len : y->topic.len;
    int c = m > 0 ? memcmp(x->topic.ptr, y->topic.ptr, (size_t)m) : 0;
    if (c != 0)
        return c;
    if (x->topic.len != y->topic.len)
        return x->topic.len < y->topic.len ? -1 : 1;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* Marks dup[ti][pi] for every listing of a partition listed more than once
 * (O(n log n)). False when memory ran out. */
static bool find_duplicates(breq *r, const kafka_list_offsets_request *req, bool **dup) {
    int64_t n = 0;
    for (int32_t i = 0; i < req->topics_count; i++)
        n += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    if (n < 2)
        return true;
    lo_ref *refs = breq_calloc(r, (size_t)n, sizeof *refs);
    if (refs == NULL)
        return false;
    int64_t k = 0;
    for (int32_t i = 0; i < req->topics_count; i++)
        for (int32_t j = 0; j < req->topics[i].partitions_count; j++)
            refs[k++] = (lo_ref){req->topics[i].name, req->topics[i].partitions[j].partition_index, i, j};
    qsort(refs, (size_t)n, sizeof *refs, cmp_ref);
    for (int64_t a = 0; a < n;) {
        int64_t b = a + 1;
        while (b < n && cmp_ref(&refs[a], &refs[b]) == 0)
            b++;
        for (int64_t x = a; b - a > 1 && x < b; x++)
            dup[refs[x].ti][refs[x].pi] = true;
        a = b;
    }
    return true;
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
    bool **dup = nt ? breq_calloc(r, (size_t)nt, sizeof *dup) : NULL;
    if (nt && dup == NULL)
        return BREQ_CLOSE;
    for (int32_t i = 0; i < nt; i++) {
        int32_t np = req->topics[i].partitions_count;
        if (np > 0 && (dup[i] = breq_calloc(r, (size_t)np, sizeof **dup)) == NULL)
            return BREQ_CLOSE;
    }
    if (!find_duplicates(r, req, dup))
        return BREQ_CLOSE;
    bool late = false;
    md_image *img = bmeta_image(r->b->meta);
    for (int32_t i = 0; i < nt; i++) {
        const kafka_list_offsets_request_list_offsets_topic *rt = &req->topics[i];
        kafka_list_offsets_response_list_offsets_topic_response *tr = &resp->topics[i];
        kafka_list_offsets_response_list_offsets_topic_response_init(tr);
        tr->name = rt->name;
        int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
        tr->partitions = np ? breq_calloc(r, (size_t)np, sizeof *tr->partitions) : NULL;
        if (np && tr->partitions == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        tr->partitions_count = np;
        const md_topic *t = md_image_topic(img, rt->name);
        bool denied = !bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_TOPIC, rt->name);
        for (int32_t j = 0; j < np; j++) {
            const kafka_list_offsets_request_list_offsets_partition *rp = &rt->partitions[j];
            kafka_list_offsets_response_list_offsets_partition_response *pr = &tr->partitions[j];
            kafka_list_offsets_response_list_offsets_partition_response_init(pr);
            pr->partition_index = rp->partition_index;
            if (denied) {
                pr->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
                continue;
            }
            if (dup[i][j]) {
                pr->error_code = KAFKA_ERR_INVALID_REQUEST;
                continue;
            }
            /* Only lookups by time do real work; stop them at the deadline. */
            if ((rp->timestamp >= 0 || rp->timestamp == PLOG_TS_MAX) &&
                (late || (late = breq_should_stop(r)))) {
                pr->error_code = KAFKA_ERR_REQUEST_TIMED_OUT;
                continue;
            }
            int16_t err;
            rpart *p = bmeta_partition(r->b->meta, t, rp->partition_index, &err);
            if (p == NULL) {
                pr->error_code = err;
                continue;
            }
            rpart_lock(p);
            pr->error_code = replica_check_epoch(p->r, rp->current_leader_epoch, true);
            rpart_unlock(p);
            if (pr->error_code == KAFKA_ERR_NONE)
                lookup(r, p, rp->timestamp, pr);
            rpart_release(p);
        }
    }
    md_image_unref(img);
    if (late)
        LOG_INFO_LIMITED(&late_rl, "broker",
                         "ListOffsets from %s ran past its work deadline; answered the rest "
                         "REQUEST_TIMED_OUT",
                         r->net->peer);
    return BREQ_DONE;
}
