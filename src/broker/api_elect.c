/*
 * api_elect.c - ElectLeaders (key 43, v0-2), UnregisterBroker (key 64, v0)
 * and AlterPartition (key 56, v0-3): partition leadership and ISR changes
 * that the active controller decides (a quorum member that is not the
 * active one forwards the first two, see request.c; partition leaders send
 * AlterPartition to the active controller's listener themselves).
 *
 * AlterPartition answers each partition with its error and its committed
 * state after the change (leader, leader epoch, ISR, recovery state,
 * partition epoch), read from this node's image once the change is
 * committed; a stale broker epoch is the top-level error.
 *
 * ElectLeaders: v0 is a preferred election; v1+ names the type (0
 * preferred, 1 unclean). Named partitions get one result each, in request
 * order, grouped by topic as given; a null topic list means every partition
 * that could use one (preferred: led by another than its first replica;
 * unclean: without a live leader), and the answer then lists only those
 * that were elected or failed, not those that needed nothing, as Kafka's
 * does. The work one request causes is bounded by the controller's items
 * limit (CTRL_REQUEST_ITEMS_MAX partitions per call; a null list runs in
 * calls of that size, over at most CTRL_PARTITIONS_MAX partitions).
 */
#include <stdlib.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "core/log.h"

typedef kafka_elect_leaders_response_replica_election_result elect_topic;
typedef kafka_elect_leaders_response_partition_result elect_part;

static bool usable_broker(const md_image *img, int32_t id) {
    const md_broker *b = md_image_broker(img, id);
    return b != NULL && !b->fenced;
}

/* Whether a partition could use an election of this type (null list). */
static bool wants_election(const md_image *img, const md_partition *p, int8_t type) {
    if (type == CTRL_ELECT_PREFERRED)
        return p->replicas.n > 0 && p->leader != p->replicas.ids[0];
    return p->leader < 0 || !usable_broker(img, p->leader);
}

/* Runs the election over refs[0..n) in calls the controller accepts. */
static void elect_all(breq *r, int8_t type, const ctrl_partition_ref *refs, int32_t n,
                      ctrl_item_result *out) {
    for (int32_t at = 0; at < n; at += CTRL_REQUEST_ITEMS_MAX) {
        int32_t k = n - at < CTRL_REQUEST_ITEMS_MAX ? n - at : CTRL_REQUEST_ITEMS_MAX;
        bmeta_elect_leaders(r->b->meta, type, refs + at, k, out + at);
    }
}

static void fill_part(breq *r, elect_part *p, int32_t partition, const ctrl_item_result *res) {
    kafka_elect_leaders_response_partition_result_init(p);
    p->partition_id = partition;
    p->error_code = res->error;
    p->error_message = res->message[0] ? api_kstr(r, res->message) : KSTR_NULL;
}

breq_status api_elect_leaders(breq *r) {
    const kafka_elect_leaders_request *req = r->req;
    kafka_elect_leaders_response *resp = r->resp;
    int8_t type = r->hdr.api_version >= 1 ? req->election_type : CTRL_ELECT_PREFERRED;
    resp->error_code = 0;
    if (!bauthz_cluster(r, ACL_OP_ALTER)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->replica_election_results_count = 0;
        return BREQ_DONE;
    }

    if (req->topic_partitions_count >= 0) {
        int64_t total = 0;
        for (int32_t i = 0; i < req->topic_partitions_count; i++)
            total +=
                req->topic_partitions[i].partitions_count > 0 ? req->topic_partitions[i].partitions_count : 0;
        if (total > CTRL_REQUEST_ITEMS_MAX) {
            resp->error_code = KAFKA_ERR_INVALID_REQUEST;
            LOG_WARN("broker", "ElectLeaders from %s names %lld partitions; at most %d are taken per request",
                     r->net->peer, (long long)total, CTRL_REQUEST_ITEMS_MAX);
            return BREQ_DONE;
        }
        ctrl_partition_ref *refs = breq_calloc(r, (size_t)(total ? total : 1), sizeof *refs);
        ctrl_item_result *out = breq_calloc(r, (size_t)(total ? total : 1), sizeof *out);
        elect_topic *ts = breq_calloc(
            r, (size_t)(req->topic_partitions_count ? req->topic_partitions_count : 1), sizeof *ts);
        if (refs == NULL || out == NULL || ts == NULL)
            return BREQ_CLOSE;
        int32_t k = 0;
        for (int32_t i = 0; i < req->topic_partitions_count; i++)
            for (int32_t j = 0; j < req->topic_partitions[i].partitions_count; j++)
                refs[k++] = (ctrl_partition_ref){req->topic_partitions[i].topic,
                                                 req->topic_partitions[i].partitions[j]};
        elect_all(r, type, refs, k, out);
        k = 0;
        for (int32_t i = 0; i < req->topic_partitions_count; i++) {
            const kafka_elect_leaders_request_topic_partitions *q = &req->topic_partitions[i];
            kafka_elect_leaders_response_replica_election_result_init(&ts[i]);
            ts[i].topic = q->topic;
            int32_t np = q->partitions_count > 0 ? q->partitions_count : 0;
            ts[i].partition_result = breq_calloc(r, (size_t)(np ? np : 1), sizeof *ts[i].partition_result);
            if (ts[i].partition_result == NULL)
                return BREQ_CLOSE;
            for (int32_t j = 0; j < np; j++, k++)
                fill_part(r, &ts[i].partition_result[j], q->partitions[j], &out[k]);
            ts[i].partition_result_count = np;
        }
        resp->replica_election_results = ts;
        resp->replica_election_results_count = req->topic_partitions_count;
        return BREQ_DONE;
    }

    /* Every partition that could use an election. */
    md_image *img = bmeta_image(r->b->meta);
    int64_t total = 0;
    for (int32_t t = 0; t < md_image_topic_count(img); t++) {
        const md_topic *tp = md_image_topic_at(img, t);
        for (int32_t p = 0; p < tp->n_partitions; p++)
            total += wants_election(img, md_topic_partition(tp, p), type);
    }
    if (total > CTRL_PARTITIONS_MAX)
        total = CTRL_PARTITIONS_MAX;
    ctrl_partition_ref *refs = breq_calloc(r, (size_t)(total ? total : 1), sizeof *refs);
    ctrl_item_result *out = breq_calloc(r, (size_t)(total ? total : 1), sizeof *out);
    int32_t *topic_of = breq_calloc(r, (size_t)(total ? total : 1), sizeof *topic_of);
    if (refs == NULL || out == NULL || topic_of == NULL) {
        md_image_unref(img);
        return BREQ_CLOSE;
    }
    int32_t k = 0;
    for (int32_t t = 0; t < md_image_topic_count(img) && k < total; t++) {
        const md_topic *tp = md_image_topic_at(img, t);
        kstr name = api_kstr(r, tp->name);
        for (int32_t p = 0; p < tp->n_partitions && k < total; p++)
            if (wants_election(img, md_topic_partition(tp, p), type)) {
                topic_of[k] = t;
                refs[k++] = (ctrl_partition_ref){name, p};
            }
    }
    md_image_unref(img);
    elect_all(r, type, refs, k, out);
    /* Grouped by topic (refs are in topic order); ELECTION_NOT_NEEDED left out. */
    elect_topic *ts = breq_calloc(r, (size_t)(k ? k : 1), sizeof *ts);
    elect_part *ps = breq_calloc(r, (size_t)(k ? k : 1), sizeof *ps);
    if (ts == NULL || ps == NULL)
        return BREQ_CLOSE;
    int32_t nt = 0, np = 0, last = -1;
    for (int32_t i = 0; i < k; i++) {
        if (out[i].error == KAFKA_ERR_ELECTION_NOT_NEEDED)
            continue;
        if (topic_of[i] != last) {
            kafka_elect_leaders_response_replica_election_result_init(&ts[nt]);
            ts[nt].topic = refs[i].topic;
            ts[nt].partition_result = &ps[np];
            ts[nt].partition_result_count = 0;
            nt++;
            last = topic_of[i];
        }
        fill_part(r, &ps[np++], refs[i].partition, &out[i]);
        ts[nt - 1].partition_result_count++;
    }
    resp->replica_election_results = ts;
    resp->replica_election_results_count = nt;
    return BREQ_DONE;
}

breq_status api_unregister_broker(breq *r) {
    const kafka_unregister_broker_request *req = r->req;
    kafka_unregister_broker_response *resp = r->resp;
    ctrl_item_result out;
    memset(&out, 0, sizeof out);
    if (!bauthz_cluster(r, ACL_OP_ALTER)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    bmeta_unregister_broker(r->b->meta, req->broker_id, &out);
    resp->error_code = out.error;
    resp->error_message = out.message[0] ? api_kstr(r, out.message) : KSTR_NULL;
    if (out.error == 0)
        LOG_INFO("broker", "broker %d unregistered at the request of %s", req->broker_id, r->net->peer);
    return BREQ_DONE;
}

breq_status api_alter_partition(breq *r) {
    const kafka_alter_partition_request *req = r->req;
    kafka_alter_partition_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    if (!bauthz_cluster(r, ACL_OP_CLUSTER_ACTION)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->topics_count = 0;
        return BREQ_DONE;
    }
    int64_t total = 0;
    for (int32_t i = 0; i < req->topics_count; i++)
        total += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    if (total > CTRL_REQUEST_ITEMS_MAX) {
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        return BREQ_DONE;
    }
    md_image *img = bmeta_image(r->b->meta);
    ctrl_isr_change *ch = breq_calloc(r, (size_t)(total ? total : 1), sizeof *ch);
    ctrl_item_result *out = breq_calloc(r, (size_t)(total ? total : 1), sizeof *out);
    if (ch == NULL || out == NULL) {
        md_image_unref(img);
        return BREQ_CLOSE;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < req->topics_count; i++) {
        const kafka_alter_partition_request_topic_data *t = &req->topics[i];
        kuuid id = t->topic_id;
        if (ver < 2) {
            const md_topic *mt = md_image_topic(img, t->topic_name);
            memset(&id, 0, sizeof id);
            if (mt)
                id = mt->id;
        }
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            const kafka_alter_partition_request_partition_data *p = &t->partitions[j];
            ctrl_isr_change *c = &ch[k];
            c->topic_id = id;
            c->partition = p->partition_index;
            c->leader_epoch = p->leader_epoch;
            c->partition_epoch = p->partition_epoch;
            c->leader_recovery_state = ver >= 1 ? p->leader_recovery_state : 0;
            if (ver >= 3) {
                int32_t n = p->new_isr_with_epochs_count > 0 ? p->new_isr_with_epochs_count : 0;
                int32_t *ids = breq_calloc(r, (size_t)(n ? n : 1), sizeof *ids);
                int64_t *eps = breq_calloc(r, (size_t)(n ? n : 1), sizeof *eps);
                if (ids == NULL || eps == NULL) {
                    md_image_unref(img);
                    return BREQ_CLOSE;
                }
                for (int32_t q = 0; q < n; q++) {
                    ids[q] = p->new_isr_with_epochs[q].broker_id;
                    eps[q] = p->new_isr_with_epochs[q].broker_epoch;
                }
                c->isr = ids;
                c->broker_epochs = eps;
                c->n_isr = n;
            } else {
                c->isr = p->new_isr;
                c->n_isr = p->new_isr_count > 0 ? p->new_isr_count : 0;
            }
        }
    }
    md_image_unref(img);
    bmeta_alter_partition(r->b->meta, req->broker_id, req->broker_epoch, ch, k, out);
    if (k > 0 && out[0].error == KAFKA_ERR_STALE_BROKER_EPOCH) {
        resp->error_code = KAFKA_ERR_STALE_BROKER_EPOCH;
        return BREQ_DONE;
    }
    if (k > 0 && out[0].error == KAFKA_ERR_NOT_CONTROLLER) {
        resp->error_code = KAFKA_ERR_NOT_CONTROLLER;
        return BREQ_DONE;
    }
    /* The committed state, from the image that holds the change. */
    img = bmeta_image(r->b->meta);
    kafka_alter_partition_response_topic_data *ts =
        breq_calloc(r, (size_t)(req->topics_count > 0 ? req->topics_count : 1), sizeof *ts);
    if (ts == NULL) {
        md_image_unref(img);
        return BREQ_CLOSE;
    }
    k = 0;
    for (int32_t i = 0; i < req->topics_count; i++) {
        const kafka_alter_partition_request_topic_data *t = &req->topics[i];
        kafka_alter_partition_response_topic_data_init(&ts[i]);
        ts[i].topic_name = t->topic_name;
        ts[i].topic_id = t->topic_id;
        int32_t np = t->partitions_count > 0 ? t->partitions_count : 0;
        ts[i].partitions = breq_calloc(r, (size_t)(np ? np : 1), sizeof *ts[i].partitions);
        if (ts[i].partitions == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        ts[i].partitions_count = np;
        for (int32_t j = 0; j < np; j++, k++) {
            kafka_alter_partition_response_partition_data *pd = &ts[i].partitions[j];
            kafka_alter_partition_response_partition_data_init(pd);
            pd->partition_index = t->partitions[j].partition_index;
            pd->error_code = out[k].error;
            const md_topic *mt = md_image_topic_by_id(img, ch[k].topic_id);
            const md_partition *mp = mt ? md_topic_partition(mt, ch[k].partition) : NULL;
            if (pd->error_code == 0 && mp != NULL) {
                pd->leader_id = mp->leader;
                pd->leader_epoch = mp->leader_epoch;
                pd->partition_epoch = mp->partition_epoch;
                pd->leader_recovery_state = mp->leader_recovery_state;
                pd->isr = breq_calloc(r, (size_t)(mp->isr.n ? mp->isr.n : 1), sizeof *pd->isr);
                if (pd->isr == NULL) {
                    md_image_unref(img);
                    return BREQ_CLOSE;
                }
                memcpy(pd->isr, mp->isr.ids, (size_t)mp->isr.n * sizeof *pd->isr);
                pd->isr_count = mp->isr.n;
            } else {
                pd->isr_count = 0;
            }
        }
    }
    md_image_unref(img);
    resp->topics = ts;
    resp->topics_count = req->topics_count;
    return BREQ_DONE;
}
