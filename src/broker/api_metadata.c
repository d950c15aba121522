/*
 * api_metadata.c - Metadata (key 3, v0-12): the brokers, the cluster id, the
 * controller and the topics with their partitions.
 *
 * Topics, partitions, leaders, epochs, replicas and ISR come from one
 * metadata image (meta.h), taken once per request. Single node: the broker
 * list is this node (advertised endpoint, rack) and the controller is this
 * node.
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
 * partitions are still being placed; here creation is synchronous on a
 * single node (the topic is in the metadata log and its partition logs are
 * open when the controller answers), so the topic is returned ready, with its
 * partitions and no error. Clients accept both answers; this one saves them a
 * retry round. Invalid names get INVALID_TOPIC_EXCEPTION and are never created;
 * neither are the names the broker reserves (ctrl_reserved_topic_name): the
 * metadata log's, and the internal topics that belong to their coordinators.
 *
 * Memory: everything in the response is in the request's arena. Names and
 * replica lists are copied there because the image is released before the
 * response is encoded (lists that are just this node share one array).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "core/log.h"

typedef kafka_metadata_response_metadata_response_topic mr_topic;
typedef kafka_metadata_response_metadata_response_partition md_part;

/* A replica-id list copied into the request (the image is released before
 * the response is encoded). */
static int32_t *copy_ids(breq *r, const md_ids *ids, const int32_t *node) {
    if (ids->n == 1 && ids->ids[0] == node[0])
        return (int32_t *)node; /* the common single-node case: shared */
    int32_t *v = ids->n > 0 ? breq_alloc(r, (size_t)ids->n * sizeof *v) : NULL;
    if (v != NULL)
        memcpy(v, ids->ids, (size_t)ids->n * sizeof *v);
    return v;
}

/* Fills one topic entry from the image's topic. Returns false when the
 * request's memory ran out. */
static bool fill_topic(breq *r, mr_topic *out, const md_topic *t, const int32_t *node) {
    int16_t ver = r->hdr.api_version;
    out->error_code = KAFKA_ERR_NONE;
    out->name = api_kstr(r, t->name);
    if (ver >= 10)
        out->topic_id = t->id;
    out->is_internal = ctrl_internal_topic((kstr){t->name, t->name_len});
    int32_t n = t->n_partitions;
    assert(n >= 0);
    md_part *entries = n > 0 ? breq_calloc(r, (size_t)n, sizeof *entries) : NULL;
    if (n > 0 && entries == NULL)
        return false;
    parts *local = bmeta_parts(r->b->meta);
    for (int32_t i = 0; i < n; i++) {
        md_part *p = &entries[i];
        const md_partition *mp = md_topic_partition(t, i);
        kafka_metadata_response_metadata_response_partition_init(p);
        p->partition_index = i;
        p->leader_id = mp->leader;
        if (ver >= 7)
            p->leader_epoch = mp->leader_epoch;
        if (mp->leader < 0)
            p->error_code = KAFKA_ERR_LEADER_NOT_AVAILABLE;
        rpart *rp = mp->leader == node[0] ? parts_get(local, t->id, i) : NULL;
        if (rp != NULL) {
            if (!rpart_online(rp))
                p->error_code = KAFKA_ERR_KAFKA_STORAGE_ERROR;
            rpart_release(rp);
        } else if (mp->leader == node[0]) {
            p->error_code = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        }
        p->replica_nodes = copy_ids(r, &mp->replicas, node);
        p->replica_nodes_count = mp->replicas.n;
        p->isr_nodes = copy_ids(r, &mp->isr, node);
        p->isr_nodes_count = mp->isr.n;
        if ((mp->replicas.n && p->replica_nodes == NULL) || (mp->isr.n && p->isr_nodes == NULL))
            return false;
        p->offline_replicas_count = 0;
    }
    out->partitions = entries;
    out->partitions_count = n;
    const kafka_metadata_request *req = r->req;
    if (ver >= 8 && req->include_topic_authorized_operations)
        out->topic_authorized_operations = bauthz_ops(r, ACL_RES_TOPIC, (kstr){t->name, t->name_len});
    return true;
}

/* An entry with an error and no partitions. */
static void fill_error(breq *r, mr_topic *out, kstr name, kuuid id, int16_t err) {
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

/* Answers one topic asked for by name, creating it if allowed (*img is
 * then replaced by the image that has it). */
static bool answer_name(breq *r, md_image **img, mr_topic *out, kstr name, bool may_create,
                        const int32_t *node) {
    broker *b = r->b;
    char msg[CTRL_MSG_MAX];
    kuuid zero = {{0}};
    if (ctrl_validate_topic_name(name, msg, sizeof msg) != 0) {
        fill_error(r, out, name, zero, KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
        return true;
    }
    if (!bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_TOPIC, name)) {
        fill_error(r, out, name, zero, KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED);
        return true;
    }
    const md_topic *t = md_image_topic(*img, name);
    /* Auto-creation needs CREATE on the cluster or on the topic. */
    if (t == NULL && may_create && bauthz_on(r) &&
        !bauthz_may(r, ACL_OP_CREATE, ACL_RES_CLUSTER, kstr_c(ACL_CLUSTER_NAME)) &&
        !bauthz_allow(r, ACL_OP_CREATE, ACL_RES_TOPIC, name)) {
        fill_error(r, out, name, zero, KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED);
        return true;
    }
    if (t == NULL && may_create && !ctrl_reserved_topic_name(name)) {
        ctrl_new_topic nt = {name, -1, -1, NULL, 0, NULL, 0, false};
        ctrl_item_result res;
        bmeta_create_topics(b->meta, &nt, 1, false, &res);
        if (res.error != KAFKA_ERR_NONE && res.error != KAFKA_ERR_TOPIC_ALREADY_EXISTS) {
            LOG_WARN("metadata", "auto-creating topic '%.*s' for %s failed: %s", name.len, name.ptr,
                     r->net->peer, res.message);
            fill_error(r, out, name, zero, res.error);
            return true;
        }
        if (res.error == KAFKA_ERR_NONE)
            LOG_INFO("metadata", "auto-created topic '%.*s' for %s", name.len, name.ptr, r->net->peer);
        /* Created (by us, or by someone else meanwhile): the newer image has it. */
        md_image_unref(*img);
        *img = bmeta_image(b->meta);
        t = md_image_topic(*img, name);
    }
    if (t == NULL) {
        fill_error(r, out, name, zero, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        return true;
    }
    return fill_topic(r, out, t, node);
}

static int cmp_topic_ptr(const void *a, const void *b) {
    const md_topic *x = *(const md_topic *const *)a, *y = *(const md_topic *const *)b;
    return strcmp(x->name, y->name);
}

breq_status api_metadata(breq *r) {
    const kafka_metadata_request *req = r->req;
    kafka_metadata_response *resp = r->resp;
    broker *b = r->b;
    int16_t ver = r->hdr.api_version;
    breq_status st = BREQ_CLOSE;
    md_image *img = bmeta_image(b->meta);

    int32_t *node = breq_alloc(r, sizeof *node);
    if (node == NULL)
        goto out;
    node[0] = b->cfg->node_id;
    api_broker *ab = NULL;
    int32_t nb = api_brokers(r, img, &ab);
    kafka_metadata_response_metadata_response_broker *br =
        nb > 0 ? breq_calloc(r, (size_t)nb, sizeof *br) : NULL;
    if (br == NULL)
        goto out;
    for (int32_t i = 0; i < nb; i++) {
        kafka_metadata_response_metadata_response_broker_init(&br[i]);
        br[i].node_id = ab[i].id;
        br[i].host = ab[i].host;
        br[i].port = ab[i].port;
        if (ver >= 1)
            br[i].rack = ab[i].rack;
    }
    resp->brokers = br;
    resp->brokers_count = nb;
    if (ver >= 2)
        resp->cluster_id = kstr_c(bmeta_cluster_id(b->meta));
    if (ver >= 1)
        resp->controller_id = api_controller_id(r);
    if (ver >= 8 && ver <= 10 && req->include_cluster_authorized_operations)
        resp->cluster_authorized_operations = bauthz_ops(r, ACL_RES_CLUSTER, kstr_c(ACL_CLUSTER_NAME));

    bool want_all = req->topics_count < 0 || (ver == 0 && req->topics_count == 0);
    if (want_all) {
        int32_t n_all = md_image_topic_count(img);
        const md_topic **all = n_all > 0 ? breq_calloc(r, (size_t)n_all, sizeof *all) : NULL;
        resp->topics = n_all > 0 ? breq_calloc(r, (size_t)n_all, sizeof *resp->topics) : NULL;
        if (n_all > 0 && (resp->topics == NULL || all == NULL))
            goto out;
        int32_t kept = 0;
        /* Only the topics the principal may describe are listed. */
        for (int32_t i = 0; i < n_all; i++) {
            const md_topic *t = md_image_topic_at(img, i);
            if (bauthz_may(r, ACL_OP_DESCRIBE, ACL_RES_TOPIC, (kstr){t->name, t->name_len}))
                all[kept++] = t;
        }
        n_all = kept;
        if (n_all > 1)
            qsort(all, (size_t)n_all, sizeof *all, cmp_topic_ptr);
        for (int32_t i = 0; i < n_all; i++) {
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
        mr_topic *o = &resp->topics[k++];
        kafka_metadata_response_metadata_response_topic_init(o);
        const md_topic *t = kuuid_is_zero(q->topic_id) ? NULL : md_image_topic_by_id(img, q->topic_id);
        if (t == NULL) {
            fill_error(r, o, KSTR_NULL, q->topic_id, KAFKA_ERR_UNKNOWN_TOPIC_ID);
            continue;
        }
        if (!bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_TOPIC, (kstr){t->name, t->name_len})) {
            fill_error(r, o, KSTR_NULL, q->topic_id, KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED);
            continue;
        }
        if (!fill_topic(r, o, t, node))
            goto out;
    }
    if (n_names > 1)
        qsort(names, (size_t)n_names, sizeof *names, cmp_kstr);
    for (int32_t i = 0; i < n_names; i++) {
        if (i > 0 && cmp_kstr(&names[i - 1], &names[i]) == 0)
            continue;
        mr_topic *o = &resp->topics[k++];
        kafka_metadata_response_metadata_response_topic_init(o);
        if (!answer_name(r, &img, o, names[i], may_create, node))
            goto out;
    }
    resp->topics_count = k;
    st = BREQ_DONE;
out:
    md_image_unref(img);
    if (st != BREQ_DONE)
        LOG_WARN("metadata",
                 "metadata v%d response for %s needs more memory than the request may use; closing", ver,
                 r->net->peer);
    return st;
}
