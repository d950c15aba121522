/*
 * codec.c - raft messages <-> Kafka KRaft requests and responses. See codec.h.
 */
#include "raft/codec.h"

#include <string.h>

#include "proto/batch.h"

kuuid raft_metadata_topic_id(void) {
    kuuid id;
    memset(id.b, 0, sizeof id.b);
    id.b[15] = 1;
    return id;
}

static bool is_metadata_id(kuuid id) {
    kuuid m = raft_metadata_topic_id();
    return memcmp(id.b, m.b, 16) == 0;
}

static bool is_metadata_name(kstr s) {
    size_t n = sizeof RAFT_METADATA_TOPIC - 1;
    return s.len == (int32_t)n && memcmp(s.ptr, RAFT_METADATA_TOPIC, n) == 0;
}

static bool cluster_ok(kstr got, const char *ours) {
    if (ours == NULL || got.len < 0)
        return true; /* null: the sender does not say (Kafka accepts it) */
    return (size_t)got.len == strlen(ours) && memcmp(got.ptr, ours, (size_t)got.len) == 0;
}

static kstr cstr(const char *s) { return s ? kstr_c(s) : (kstr){NULL, -1}; }

void raft_codec_api(raft_msg_kind kind, int16_t *api_key, int16_t *version) {
    switch (kind) {
    case RAFT_VOTE_REQUEST:
    case RAFT_VOTE_RESPONSE:
        *api_key = KAFKA_API_VOTE;
        *version = RAFT_VOTE_VERSION;
        return;
    case RAFT_BEGIN_QUORUM_EPOCH_REQUEST:
    case RAFT_BEGIN_QUORUM_EPOCH_RESPONSE:
        *api_key = KAFKA_API_BEGIN_QUORUM_EPOCH;
        *version = RAFT_QUORUM_VERSION;
        return;
    case RAFT_END_QUORUM_EPOCH_REQUEST:
    case RAFT_END_QUORUM_EPOCH_RESPONSE:
        *api_key = KAFKA_API_END_QUORUM_EPOCH;
        *version = RAFT_QUORUM_VERSION;
        return;
    case RAFT_FETCH_REQUEST:
    case RAFT_FETCH_RESPONSE:
        *api_key = KAFKA_API_FETCH;
        *version = RAFT_FETCH_VERSION;
        return;
    }
    *api_key = -1;
    *version = -1;
}

/* ---- requests out ------------------------------------------------------------------- */

int raft_codec_request(const raft_msg *m, const char *cluster_id, arena *a, void **out) {
    *out = NULL;
    switch (m->kind) {
    case RAFT_VOTE_REQUEST: {
        kafka_vote_request *q = arena_calloc(a, 1, sizeof *q);
        kafka_vote_request_topic_data *t = arena_calloc(a, 1, sizeof *t);
        kafka_vote_request_partition_data *p = arena_calloc(a, 1, sizeof *p);
        if (!q || !t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_vote_request_init(q);
        kafka_vote_request_topic_data_init(t);
        kafka_vote_request_partition_data_init(p);
        const raft_vote_request *v = &m->u.vote_req;
        q->cluster_id = cstr(cluster_id);
        q->voter_id = v->voter_id;
        q->topics = t;
        q->topics_count = 1;
        t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
        t->partitions = p;
        t->partitions_count = 1;
        p->partition_index = 0;
        p->candidate_epoch = v->candidate_epoch;
        p->candidate_id = v->candidate_id;
        p->last_offset_epoch = v->last_offset_epoch;
        p->last_offset = v->last_offset;
        p->pre_vote = v->pre_vote;
        *out = q;
        return RAFT_CODEC_OK;
    }
    case RAFT_BEGIN_QUORUM_EPOCH_REQUEST: {
        kafka_begin_quorum_epoch_request *q = arena_calloc(a, 1, sizeof *q);
        kafka_begin_quorum_epoch_request_topic_data *t = arena_calloc(a, 1, sizeof *t);
        kafka_begin_quorum_epoch_request_partition_data *p = arena_calloc(a, 1, sizeof *p);
        if (!q || !t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_begin_quorum_epoch_request_init(q);
        kafka_begin_quorum_epoch_request_topic_data_init(t);
        kafka_begin_quorum_epoch_request_partition_data_init(p);
        const raft_begin_quorum_epoch_request *b = &m->u.begin_req;
        q->cluster_id = cstr(cluster_id);
        q->voter_id = b->voter_id;
        q->topics = t;
        q->topics_count = 1;
        q->leader_endpoints_count = 0;
        t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
        t->partitions = p;
        t->partitions_count = 1;
        p->leader_id = b->leader_id;
        p->leader_epoch = b->leader_epoch;
        *out = q;
        return RAFT_CODEC_OK;
    }
    case RAFT_END_QUORUM_EPOCH_REQUEST: {
        const raft_end_quorum_epoch_request *e = &m->u.end_req;
        kafka_end_quorum_epoch_request *q = arena_calloc(a, 1, sizeof *q);
        kafka_end_quorum_epoch_request_topic_data *t = arena_calloc(a, 1, sizeof *t);
        kafka_end_quorum_epoch_request_partition_data *p = arena_calloc(a, 1, sizeof *p);
        kafka_end_quorum_epoch_request_replica_info *c =
            arena_calloc(a, (size_t)(e->n_preferred > 0 ? e->n_preferred : 1), sizeof *c);
        if (!q || !t || !p || !c)
            return RAFT_CODEC_ENOMEM;
        kafka_end_quorum_epoch_request_init(q);
        kafka_end_quorum_epoch_request_topic_data_init(t);
        kafka_end_quorum_epoch_request_partition_data_init(p);
        q->cluster_id = cstr(cluster_id);
        q->topics = t;
        q->topics_count = 1;
        q->leader_endpoints_count = 0;
        t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
        t->partitions = p;
        t->partitions_count = 1;
        p->leader_id = e->leader_id;
        p->leader_epoch = e->leader_epoch;
        p->preferred_successors_count = 0;
        for (int i = 0; i < e->n_preferred; i++) {
            kafka_end_quorum_epoch_request_replica_info_init(&c[i]);
            c[i].candidate_id = e->preferred_candidates[i];
        }
        p->preferred_candidates = c;
        p->preferred_candidates_count = e->n_preferred;
        *out = q;
        return RAFT_CODEC_OK;
    }
    case RAFT_FETCH_REQUEST: {
        const raft_fetch_request *f = &m->u.fetch_req;
        kafka_fetch_request *q = arena_calloc(a, 1, sizeof *q);
        kafka_fetch_request_fetch_topic *t = arena_calloc(a, 1, sizeof *t);
        kafka_fetch_request_fetch_partition *p = arena_calloc(a, 1, sizeof *p);
        if (!q || !t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_fetch_request_init(q);
        kafka_fetch_request_fetch_topic_init(t);
        kafka_fetch_request_fetch_partition_init(p);
        q->cluster_id = cstr(cluster_id);
        /* v15+ carries the replica in ReplicaState only */
        q->replica_state.replica_id = f->replica_id;
        q->replica_state.replica_epoch = -1;
        q->max_wait_ms = f->max_wait_ms;
        q->min_bytes = 0;
        q->max_bytes = f->partition_max_bytes;
        q->topics = t;
        q->topics_count = 1;
        q->forgotten_topics_data_count = 0;
        t->topic_id = raft_metadata_topic_id(); /* v13+ names topics by id */
        t->partitions = p;
        t->partitions_count = 1;
        p->partition = 0;
        p->current_leader_epoch = f->current_leader_epoch;
        p->fetch_offset = f->fetch_offset;
        p->last_fetched_epoch = f->last_fetched_epoch;
        p->log_start_offset = f->log_start_offset;
        p->partition_max_bytes = f->partition_max_bytes;
        *out = q;
        return RAFT_CODEC_OK;
    }
    default:
        return RAFT_CODEC_EOTHER;
    }
}

/* ---- responses out ------------------------------------------------------------------ */

int raft_codec_fill_response(const raft_msg *m, arena *a, void *resp) {
    switch (m->kind) {
    case RAFT_VOTE_RESPONSE: {
        kafka_vote_response *r = resp;
        kafka_vote_response_topic_data *t = arena_calloc(a, 1, sizeof *t);
        kafka_vote_response_partition_data *p = arena_calloc(a, 1, sizeof *p);
        if (!t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_vote_response_topic_data_init(t);
        kafka_vote_response_partition_data_init(p);
        r->error_code = 0;
        r->topics = t;
        r->topics_count = 1;
        r->node_endpoints_count = 0;
        t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
        t->partitions = p;
        t->partitions_count = 1;
        p->error_code = m->u.vote_resp.error_code;
        p->leader_id = m->u.vote_resp.leader_id;
        p->leader_epoch = m->u.vote_resp.leader_epoch;
        p->vote_granted = m->u.vote_resp.vote_granted;
        return RAFT_CODEC_OK;
    }
    case RAFT_BEGIN_QUORUM_EPOCH_RESPONSE: {
        kafka_begin_quorum_epoch_response *r = resp;
        kafka_begin_quorum_epoch_response_topic_data *t = arena_calloc(a, 1, sizeof *t);
        kafka_begin_quorum_epoch_response_partition_data *p = arena_calloc(a, 1, sizeof *p);
        if (!t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_begin_quorum_epoch_response_topic_data_init(t);
        kafka_begin_quorum_epoch_response_partition_data_init(p);
        r->topics = t;
        r->topics_count = 1;
        r->node_endpoints_count = 0;
        t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
        t->partitions = p;
        t->partitions_count = 1;
        p->error_code = m->u.epoch_resp.error_code;
        p->leader_id = m->u.epoch_resp.leader_id;
        p->leader_epoch = m->u.epoch_resp.leader_epoch;
        return RAFT_CODEC_OK;
    }
    case RAFT_END_QUORUM_EPOCH_RESPONSE: {
        kafka_end_quorum_epoch_response *r = resp;
        kafka_end_quorum_epoch_response_topic_data *t = arena_calloc(a, 1, sizeof *t);
        kafka_end_quorum_epoch_response_partition_data *p = arena_calloc(a, 1, sizeof *p);
        if (!t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_end_quorum_epoch_response_topic_data_init(t);
        kafka_end_quorum_epoch_response_partition_data_init(p);
        r->topics = t;
        r->topics_count = 1;
        r->node_endpoints_count = 0;
        t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
        t->partitions = p;
        t->partitions_count = 1;
        p->error_code = m->u.epoch_resp.error_code;
        p->leader_id = m->u.epoch_resp.leader_id;
        p->leader_epoch = m->u.epoch_resp.leader_epoch;
        return RAFT_CODEC_OK;
    }
    case RAFT_FETCH_RESPONSE: {
        const raft_fetch_response *f = &m->u.fetch_resp;
        kafka_fetch_response *r = resp;
        kafka_fetch_response_fetchable_topic_response *t = arena_calloc(a, 1, sizeof *t);
        kafka_fetch_response_partition_data *p = arena_calloc(a, 1, sizeof *p);
        if (!t || !p)
            return RAFT_CODEC_ENOMEM;
        kafka_fetch_response_fetchable_topic_response_init(t);
        kafka_fetch_response_partition_data_init(p);
        r->responses = t;
        r->responses_count = 1;
        r->node_endpoints_count = 0;
        t->topic_id = raft_metadata_topic_id();
        t->partitions = p;
        t->partitions_count = 1;
        p->partition_index = 0;
        p->error_code = f->error_code;
        p->high_watermark = f->high_watermark;
        p->log_start_offset = f->log_start_offset;
        p->diverging_epoch.epoch = f->diverging_epoch_epoch;
        p->diverging_epoch.end_offset = f->diverging_epoch_end_offset;
        p->current_leader.leader_id = f->current_leader_id;
        p->current_leader.leader_epoch = f->current_leader_epoch;
        p->snapshot_id.end_offset = f->snapshot_id_end_offset;
        p->snapshot_id.epoch = f->snapshot_id_epoch;
        p->aborted_transactions_count = -1;
        p->records = f->records.len > 0 ? f->records : (kbytes){NULL, 0};
        return RAFT_CODEC_OK;
    }
    default:
        return RAFT_CODEC_EOTHER;
    }
}

/* ---- requests in ------------------------------------------------------------------------ */

bool raft_codec_is_metadata_fetch(const kafka_fetch_request *req) {
    if (req->topics_count != 1)
        return false;
    const kafka_fetch_request_fetch_topic *t = &req->topics[0];
    return is_metadata_id(t->topic_id) || is_metadata_name(t->topic);
}

#define ONE(q, tf, tc, pf, pc)                                                        \
    ((q)->tc == 1 && is_metadata_name((q)->tf[0].topic_name) && (q)->tf[0].pc == 1 && \
     (q)->tf[0].pf[0].partition_index == 0)

int raft_codec_parse_request(int16_t api_key, const void *req, const char *cluster_id, raft_msg *out,
                             int32_t *from) {
    memset(out, 0, sizeof *out);
    switch (api_key) {
    case KAFKA_API_VOTE: {
        const kafka_vote_request *q = req;
        if (!ONE(q, topics, topics_count, partitions, partitions_count))
            return RAFT_CODEC_EOTHER;
        if (!cluster_ok(q->cluster_id, cluster_id))
            return RAFT_CODEC_ECLUSTER;
        const kafka_vote_request_partition_data *p = &q->topics[0].partitions[0];
        out->kind = RAFT_VOTE_REQUEST;
        out->u.vote_req = (raft_vote_request){q->voter_id,          p->candidate_epoch, p->candidate_id,
                                              p->last_offset_epoch, p->last_offset,     p->pre_vote};
        *from = p->candidate_id;
        return RAFT_CODEC_OK;
    }
    case KAFKA_API_BEGIN_QUORUM_EPOCH: {
        const kafka_begin_quorum_epoch_request *q = req;
        if (!ONE(q, topics, topics_count, partitions, partitions_count))
            return RAFT_CODEC_EOTHER;
        if (!cluster_ok(q->cluster_id, cluster_id))
            return RAFT_CODEC_ECLUSTER;
        const kafka_begin_quorum_epoch_request_partition_data *p = &q->topics[0].partitions[0];
        out->kind = RAFT_BEGIN_QUORUM_EPOCH_REQUEST;
        out->u.begin_req = (raft_begin_quorum_epoch_request){q->voter_id, p->leader_id, p->leader_epoch};
        *from = p->leader_id;
        return RAFT_CODEC_OK;
    }
    case KAFKA_API_END_QUORUM_EPOCH: {
        const kafka_end_quorum_epoch_request *q = req;
        if (!ONE(q, topics, topics_count, partitions, partitions_count))
            return RAFT_CODEC_EOTHER;
        if (!cluster_ok(q->cluster_id, cluster_id))
            return RAFT_CODEC_ECLUSTER;
        const kafka_end_quorum_epoch_request_partition_data *p = &q->topics[0].partitions[0];
        out->kind = RAFT_END_QUORUM_EPOCH_REQUEST;
        raft_end_quorum_epoch_request *e = &out->u.end_req;
        e->leader_id = p->leader_id;
        e->leader_epoch = p->leader_epoch;
        /* v0 names successors by id, v1 as candidates; take what is there */
        for (int32_t i = 0; i < p->preferred_candidates_count && e->n_preferred < RAFT_VOTERS_MAX; i++)
            e->preferred_candidates[e->n_preferred++] = p->preferred_candidates[i].candidate_id;
        for (int32_t i = 0; i < p->preferred_successors_count && e->n_preferred < RAFT_VOTERS_MAX; i++)
            e->preferred_candidates[e->n_preferred++] = p->preferred_successors[i];
        *from = p->leader_id;
        return RAFT_CODEC_OK;
    }
    case KAFKA_API_FETCH: {
        const kafka_fetch_request *q = req;
        if (!raft_codec_is_metadata_fetch(q) || q->topics[0].partitions_count != 1 ||
            q->topics[0].partitions[0].partition != 0)
            return RAFT_CODEC_EOTHER;
        if (!cluster_ok(q->cluster_id, cluster_id))
            return RAFT_CODEC_ECLUSTER;
        const kafka_fetch_request_fetch_partition *p = &q->topics[0].partitions[0];
        int32_t replica = q->replica_state.replica_id >= 0 ? q->replica_state.replica_id : q->replica_id;
        out->kind = RAFT_FETCH_REQUEST;
        out->u.fetch_req = (raft_fetch_request){replica,
                                                q->max_wait_ms,
                                                p->current_leader_epoch,
                                                p->fetch_offset,
                                                p->last_fetched_epoch,
                                                p->log_start_offset,
                                                p->partition_max_bytes};
        *from = replica;
        return replica >= 0 ? RAFT_CODEC_OK : RAFT_CODEC_EOTHER;
    }
    default:
        return RAFT_CODEC_EOTHER;
    }
}

/* ---- responses in ----------------------------------------------------------------------- */

/* The epoch of the records and where they end (last offset + 1 of the last
 * whole batch); false when there are none or the first header is bad. */
static bool records_span(kbytes rec, int64_t *base, int64_t *end, int32_t *epoch, kbytes *whole) {
    size_t off = 0, len = rec.len > 0 ? (size_t)rec.len : 0;
    bool any = false;
    while (off + BATCH_HEADER_SIZE <= len) {
        batch_header h;
        if (batch_parse_header(rec.ptr + off, len - off, &h) != BATCH_OK)
            break;
        int64_t total = batch_total_size(&h);
        int64_t last = batch_last_offset(&h);
        if (total <= 0 || (size_t)total > len - off || last < 0)
            break; /* a partial batch at the end (max bytes): left out */
        if (!any) {
            *base = h.base_offset;
            *epoch = h.partition_leader_epoch;
        } else if (h.partition_leader_epoch != *epoch) {
            break; /* one epoch per answer */
        }
        any = true;
        *end = last + 1;
        off += (size_t)total;
    }
    *whole = (kbytes){rec.ptr, (int32_t)off};
    return any;
}

int raft_codec_parse_response(raft_msg_kind kind, const void *resp, raft_msg *out) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    switch (kind) {
    case RAFT_VOTE_RESPONSE: {
        const kafka_vote_response *r = resp;
        raft_vote_response *v = &out->u.vote_resp;
        v->leader_id = -1;
        if (r->error_code != 0 || !ONE(r, topics, topics_count, partitions, partitions_count)) {
            v->error_code = r->error_code ? r->error_code : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            return RAFT_CODEC_OK;
        }
        const kafka_vote_response_partition_data *p = &r->topics[0].partitions[0];
        *v = (raft_vote_response){p->error_code, p->leader_id, p->leader_epoch, p->vote_granted};
        return RAFT_CODEC_OK;
    }
    case RAFT_BEGIN_QUORUM_EPOCH_RESPONSE:
    case RAFT_END_QUORUM_EPOCH_RESPONSE: {
        raft_quorum_epoch_response *e = &out->u.epoch_resp;
        e->leader_id = -1;
        int16_t top;
        int16_t err;
        int32_t lid, lep;
        bool one;
        if (kind == RAFT_BEGIN_QUORUM_EPOCH_RESPONSE) {
            const kafka_begin_quorum_epoch_response *r = resp;
            top = r->error_code;
            one = ONE(r, topics, topics_count, partitions, partitions_count);
            err = one ? r->topics[0].partitions[0].error_code : 0;
            lid = one ? r->topics[0].partitions[0].leader_id : -1;
            lep = one ? r->topics[0].partitions[0].leader_epoch : 0;
        } else {
            const kafka_end_quorum_epoch_response *r = resp;
            top = r->error_code;
            one = ONE(r, topics, topics_count, partitions, partitions_count);
            err = one ? r->topics[0].partitions[0].error_code : 0;
            lid = one ? r->topics[0].partitions[0].leader_id : -1;
            lep = one ? r->topics[0].partitions[0].leader_epoch : 0;
        }
        if (top != 0 || !one) {
            e->error_code = top ? top : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            return RAFT_CODEC_OK;
        }
        *e = (raft_quorum_epoch_response){err, lid, lep};
        return RAFT_CODEC_OK;
    }
    case RAFT_FETCH_RESPONSE: {
        const kafka_fetch_response *r = resp;
        raft_fetch_response *f = &out->u.fetch_resp;
        f->diverging_epoch_epoch = -1;
        f->diverging_epoch_end_offset = -1;
        f->snapshot_id_end_offset = -1;
        f->snapshot_id_epoch = -1;
        f->current_leader_id = -1;
        f->fetch_offset = -1;
        if (r->error_code != 0 || r->responses_count != 1 || r->responses[0].partitions_count != 1) {
            f->error_code = r->error_code ? r->error_code : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            return RAFT_CODEC_OK;
        }
        const kafka_fetch_response_partition_data *p = &r->responses[0].partitions[0];
        f->error_code = p->error_code;
        f->high_watermark = p->high_watermark;
        f->log_start_offset = p->log_start_offset;
        f->diverging_epoch_epoch = p->diverging_epoch.epoch;
        f->diverging_epoch_end_offset = p->diverging_epoch.end_offset;
        f->current_leader_id = p->current_leader.leader_id;
        f->current_leader_epoch = p->current_leader.leader_epoch;
        f->snapshot_id_end_offset = p->snapshot_id.end_offset;
        f->snapshot_id_epoch = p->snapshot_id.epoch;
        int64_t base = -1, end = -1;
        int32_t epoch = -1;
        kbytes whole;
        if (records_span(p->records, &base, &end, &epoch, &whole)) {
            f->records = whole;
            f->fetch_offset = base;
            f->records_end_offset = end;
            f->records_epoch = epoch;
        } else {
            f->records = (kbytes){NULL, 0};
        }
        return RAFT_CODEC_OK;
    }
    default:
        return RAFT_CODEC_EOTHER;
    }
}
