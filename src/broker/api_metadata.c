/*
 * api_metadata.c - Metadata (key 3, v0-12): the brokers, the cluster id, the
 * controller and the topics with their partitions.
 *
 * Single node: the broker list is this node (advertised endpoint, rack), the
 * controller is this node, and every partition has this node as leader,
 * replica and in-sync replica, with no offline replicas.
 *
 * Which topics: v0 sends an array that lists topics or, when empty, asks for
 * all of them; from v1 on a null array asks for all and an empty one for none.
 * From v10 on each entry carries a topic id, and from v12 on the name may be
 * null, in which case the topic is looked up by id (UNKNOWN_TOPIC_ID if there
 * is none). Names asked for twice are answered once.
 *
 * Auto-creation: a topic asked for by name that does not exist is created
 * with the broker defaults when auto.create.topics.enable is true and the
 * request allows it (allow_auto_topic_creation, v4+; older versions always
 * allow it). Kafka answers LEADER_NOT_AVAILABLE the first time because its
 * partitions are still being placed; here creation is synchronous (the topic
 * is in the metadata log and its partition logs are open before
 * topics_create() returns), so the topic is returned ready, with its
 * partitions and no error. Clients accept both answers; this one saves them a
 * retry round. Invalid names get INVALID_TOPIC_EXCEPTION and are never created;
 * neither are the names the broker reserves (topics_name_reserved): the
 * metadata log's, and the internal topics that belong to their coordinators.
 *
 * Memory: everything in the response is in the request's arena. Topic names
 * are copied there because the topic references are released before the
 * response is encoded. All partitions share one replica array holding the
 * node id.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/broker.h"
#include "core/log.h"

typedef kafka_metadata_response_metadata_response_topic md_topic;
typedef kafka_metadata_response_metadata_response_partition md_part;

/* Fills one topic entry from a referenced topic. Returns false when the
 * request's memory ran out. */
static bool fill_topic(breq *r, md_topic *out, topic *t, const int32_t *node) {
    int16_t ver = r->hdr.api_version;
    out->error_code = KAFKA_ERR_NONE;
    out->name = api_kstr(r, t->name);
    if (ver >= 10)
        out->topic_id = t->id;
    out->is_internal = t->internal;
    int32_t n = topic_partition_count(t);
    assert(n >= 0);
    md_part *parts = n > 0 ? breq_calloc(r, (size_t)n, sizeof *parts) : NULL;
    if (n > 0 && parts == NULL)
        return false;
    for (int32_t i = 0; i < n; i++) {
        md_part *p = &parts[i];
        partition *pt = topic_partition(t, i);
        kafka_metadata_response_metadata_response_partition_init(p);
        p->partition_index = i;
        p->leader_id = node[0];
        if (ver >= 7)
            p->leader_epoch = pt ? pt->leader_epoch : 0;
        plog *l = pt != NULL ? partition_log(pt) : NULL;
        if (pt != NULL && (l == NULL || plog_is_offline(l)))
            p->error_code = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        p->replica_nodes = (int32_t *)node;
        p->replica_nodes_count = 1;
        p->isr_nodes = (int32_t *)node;
        p->isr_nodes_count = 1;
        p->offline_replicas_count = 0;
    }
    out->partitions = parts;
    out->partitions_count = n;
    return true;
}

/* An entry with an error and no partitions. */
static void fill_error(breq *r, md_topic *out, kstr name, kuuid id, int16_t err) {
    out->error_code = err;
    out->name = api_kstr_dup(r, name);
    if (r->hdr.api_version >= 10)
        out->topic_id = id;
    out->partitions_count = 0;
}

static int cmp_kstr(const void *a, const void *b) {
    const kstr *x = a, *y = b;
    int32_t n = x->len < y->len ? x->len : y->len;
    int c = n > 0 ? memcmp(x->ptr, y->ptr, (size_t)n) : 0;
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Answers one topic asked for by name, creating it if allowed. */
static bool answer_name(breq *r, md_topic *out, kstr name, bool may_create, const int32_t *node) {
    broker *b = r->b;
    char msg[TOPICS_MSG_MAX];
    kuuid zero = {{0}};
    if (topics_validate_name(name, msg, sizeof msg) != 0) {
        fill_error(r, out, name, zero, KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
        return true;
    }
    topic *t = topics_get(b->topics, name);
    if (t == NULL && may_create && !topics_name_reserved(name)) {
        int rc = topics_create(b->topics, name, -1, -1, NULL, NULL, 0, false, &t, msg, sizeof msg);
        if (rc == KAFKA_ERR_TOPIC_ALREADY_EXISTS) {
            /* Someone else created it between our lookup and now. */
            t = topics_get(b->topics, name);
        } else if (rc != KAFKA_ERR_NONE) {
            LOG_WARN("metadata", "auto-creating topic '%.*s' for %s failed: %s", name.len, name.ptr,
                     r->net->peer, msg);
            fill_error(r, out, name, zero, (int16_t)rc);
            return true;
        } else {
            LOG_INFO("metadata", "auto-created topic '%.*s' for %s", name.len, name.ptr, r->net->peer);
        }
    }
    if (t == NULL) {
        fill_error(r, out, name, zero, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        return true;
    }
    bool ok = fill_topic(r, out, t, node);
    topic_release(b->topics, t);
    return ok;
}

breq_status api_metadata(breq *r) {
    const kafka_metadata_request *req = r->req;
    kafka_metadata_response *resp = r->resp;
    broker *b = r->b;
    int16_t ver = r->hdr.api_version;
    topic **all = NULL;
    int n_all = 0;
    breq_status st = BREQ_CLOSE;

    int32_t *node = breq_alloc(r, sizeof *node);
    kafka_metadata_response_metadata_response_broker *br = breq_calloc(r, 1, sizeof *br);
    if (node == NULL || br == NULL)
        goto out;
    node[0] = b->cfg->node_id;
    kafka_metadata_response_metadata_response_broker_init(br);
    const char *host;
    int32_t port;
    api_endpoint(r, &host, &port);
    br->node_id = node[0];
    br->host = kstr_c(host);
    br->port = port;
    if (ver >= 1)
        br->rack = api_rack(r);
    resp->brokers = br;
    resp->brokers_count = 1;
    if (ver >= 2)
        resp->cluster_id = kstr_c(topics_cluster_id(b->topics));
    if (ver >= 1)
        resp->controller_id = node[0];

    bool want_all = req->topics_count < 0 || (ver == 0 && req->topics_count == 0);
    if (want_all) {
        all = topics_list(b->topics, &n_all);
        resp->topics = n_all > 0 ? breq_calloc(r, (size_t)n_all, sizeof *resp->topics) : NULL;
        if (n_all > 0 && resp->topics == NULL)
            goto out;
        for (int i = 0; i < n_all; i++) {
            kafka_metadata_response_metadata_response_topic_init(&resp->topics[i]);
            if (!fill_topic(r, &resp->topics[i], all[i], node))
                goto out;
        }
        resp->topics_count = n_all;
        st = BREQ_DONE;
        goto out;
    }

    int32_t n = req->topics_count;
    bool may_create = b->cfg->auto_create_topics_enable && req->allow_auto_topic_creation;
    /* Names sorted so that repeats can be skipped; lookups by id kept apart. */
    kstr *names = n > 0 ? breq_calloc(r, (size_t)n, sizeof *names) : NULL;
    resp->topics = n > 0 ? breq_calloc(r, (size_t)n, sizeof *resp->topics) : NULL;
    if (n > 0 && (names == NULL || resp->topics == NULL))
        goto out;
    int32_t n_names = 0, k = 0;
    for (int32_t i = 0; i < n; i++) {
        const kafka_metadata_request_metadata_request_topic *q = &req->topics[i];
        if (q->name.len >= 0) {
            names[n_names++] = q->name;
            continue;
        }
        /* v12+: by id. */
        md_topic *o = &resp->topics[k++];
        kafka_metadata_response_metadata_response_topic_init(o);
        topic *t = kuuid_is_zero(q->topic_id) ? NULL : topics_get_by_id(b->topics, q->topic_id);
        if (t == NULL) {
            fill_error(r, o, KSTR_NULL, q->topic_id, KAFKA_ERR_UNKNOWN_TOPIC_ID);
            continue;
        }
        bool ok = fill_topic(r, o, t, node);
        topic_release(b->topics, t);
        if (!ok)
            goto out;
    }
    if (n_names > 1)
        qsort(names, (size_t)n_names, sizeof *names, cmp_kstr);
    for (int32_t i = 0; i < n_names; i++) {
        if (i > 0 && cmp_kstr(&names[i - 1], &names[i]) == 0)
            continue;
        md_topic *o = &resp->topics[k++];
        kafka_metadata_response_metadata_response_topic_init(o);
        if (!answer_name(r, o, names[i], may_create, node))
            goto out;
    }
    resp->topics_count = k;
    st = BREQ_DONE;
out:
    for (int i = 0; i < n_all; i++)
        topic_release(b->topics, all[i]);
    free(all);
    if (st != BREQ_DONE)
        LOG_WARN("metadata",
                 "metadata v%d response for %s needs more memory than the request may use; closing", ver,
                 r->net->peer);
    return st;
}
