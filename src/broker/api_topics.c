/*
 * api_topics.c - CreateTopics (key 19, v0-7), DeleteTopics (key 20, v0-6) and
 * CreatePartitions (key 37, v0-3).
 *
 * Each topic in a request is answered on its own: one bad topic never fails
 * the others. The controller (through meta.h) validates against the
 * metadata, places replicas and writes the records; this file checks what
 * only the request can tell (duplicates within one request, replica
 * assignments, arguments that contradict each other) and turns the
 * controller's per-item results into response entries. A name listed twice
 * is refused for every listing (INVALID_REQUEST), as Kafka does.
 *
 * Replica assignments go to the controller as given: it takes only
 * registered, unfenced brokers, once per partition
 * (INVALID_REPLICA_ASSIGNMENT otherwise), and a replication factor above
 * the brokers it has cannot be met (INVALID_REPLICATION_FACTOR).
 * On a single node the controller answers once the records are written and
 * applied, so timeout_ms does not matter yet.
 *
 * Error messages are copied into the request's arena because they are
 * produced in stack buffers.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/groups.h"
#include "core/log.h"

/* Message buffers here hold a registry message plus some context. */
#define TOPICS_API_MSG_MAX (CTRL_MSG_MAX + 128)

/* ---- CreateTopics ------------------------------------------------------ */

typedef struct describe_ctx {
    breq *r;
    kafka_create_topics_response_creatable_topic_configs *out;
    int32_t n, cap;
} describe_ctx;

static int add_created_config(void *ctx, const config_entry *e) {
    describe_ctx *d = ctx;
    if (d->n >= d->cap)
        return 1;
    kafka_create_topics_response_creatable_topic_configs *c = &d->out[d->n++];
    kafka_create_topics_response_creatable_topic_configs_init(c);
    c->name = kstr_c(e->name); /* table names are static */
    c->value = e->sensitive ? KSTR_NULL : api_kstr(d->r, e->value);
    c->read_only = e->read_only;
    c->config_source = (int8_t)e->source;
    c->is_sensitive = e->sensitive;
    return 0;
}

/* v5+: the configuration the topic has (or would have, with validate_only). */
static bool fill_created_configs(breq *r, kafka_create_topics_response_creatable_topic_result *res,
                                 const char *const *keys, const char *const *values, int n_cfg) {
    size_t n_defs;
    config_topic_defs(&n_defs);
    describe_ctx d = {.r = r, .cap = (int32_t)n_defs};
    d.out = breq_calloc(r, n_defs, sizeof *d.out);
    if (d.out == NULL)
        return false;
    config_describe_topic(r->b->cfg, keys, values, (size_t)n_cfg, add_created_config, &d);
    res->configs = d.out;
    res->configs_count = d.n;
    return true;
}

/* Creates (or validates) one topic; fills res. Returns false on memory
 * exhaustion only. */
#define THROTTLED_MSG "The throttling quota has been exceeded."

static bool create_one(breq *r, const kafka_create_topics_request *req,
                       const kafka_create_topics_request_creatable_topic *q,
                       kafka_create_topics_response_creatable_topic_result *res, int32_t *made) {
    broker *b = r->b;
    int16_t ver = r->hdr.api_version;
    char msg[TOPICS_API_MSG_MAX] = "";
    int rc = KAFKA_ERR_NONE;
    int32_t parts = q->num_partitions;
    int32_t rf = q->replication_factor;

    /* Replica assignments replace num_partitions and replication_factor. */
    if (q->assignments_count > 0) {
        if (parts != -1 || rf != -1) {
            snprintf(msg, sizeof msg,
                     "Both num_partitions or replication_factor and a replica assignment were given; with an "
                     "assignment both must be -1.");
            rc = KAFKA_ERR_INVALID_REQUEST;
            goto done;
        }
        int32_t n = q->assignments_count;
        if (n > CTRL_TOPIC_PARTITIONS_MAX) {
            snprintf(msg, sizeof msg, "%d partitions requested; at most %d are allowed per topic.", n,
                     CTRL_TOPIC_PARTITIONS_MAX);
            rc = KAFKA_ERR_INVALID_PARTITIONS;
            goto done;
        }
        /* Every index 0..n-1 exactly once, all lists the same size. */
        unsigned char *seen = breq_calloc(r, (size_t)n, 1);
        if (seen == NULL)
            return false;
        for (int32_t i = 0; i < n && rc == 0; i++) {
            const kafka_create_topics_request_creatable_replica_assignment *a = &q->assignments[i];
            if (a->partition_index < 0 || a->partition_index >= n || seen[a->partition_index]) {
                snprintf(
                    msg, sizeof msg,
                    "The replica assignment names partition %d, but partitions must be numbered 0 to %d, "
                    "each once.",
                    a->partition_index, n - 1);
                rc = KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
                break;
            }
            seen[a->partition_index] = 1;
            if (a->broker_ids_count != q->assignments[0].broker_ids_count) {
                snprintf(msg, sizeof msg,
                         "Inconsistent replication factor in the replica assignment: partition %d has %d "
                         "replicas, "
                         "partition %d has %d.",
                         q->assignments[0].partition_index, q->assignments[0].broker_ids_count,
                         a->partition_index, a->broker_ids_count);
                rc = KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
                break;
            }
        }
        if (rc != 0)
            goto done;
        parts = n;
        rf = (int32_t)q->assignments[0].broker_ids_count;
    } else {
        if (parts == 0 || parts < -1) {
            snprintf(msg, sizeof msg,
                     "Number of partitions must be larger than 0, or -1 to use the default.");
            rc = KAFKA_ERR_INVALID_PARTITIONS;
            goto done;
        }
        if (parts > CTRL_TOPIC_PARTITIONS_MAX) {
            snprintf(msg, sizeof msg, "%d partitions requested; at most %d are allowed per topic.", parts,
                     CTRL_TOPIC_PARTITIONS_MAX);
            rc = KAFKA_ERR_INVALID_PARTITIONS;
            goto done;
        }
    }

    /* Configs as C strings. A null value is not a configuration. */
    int n_cfg = q->configs_count > 0 ? q->configs_count : 0;
    if (n_cfg > CTRL_TOPIC_CONFIGS_MAX) {
        snprintf(msg, sizeof msg, "%d configs given; at most %d overrides are allowed per topic.", n_cfg,
                 CTRL_TOPIC_CONFIGS_MAX);
        rc = KAFKA_ERR_INVALID_CONFIG;
        goto done;
    }
    const char **keys = n_cfg ? breq_calloc(r, (size_t)n_cfg, sizeof *keys) : NULL;
    const char **values = n_cfg ? breq_calloc(r, (size_t)n_cfg, sizeof *values) : NULL;
    if (n_cfg && (keys == NULL || values == NULL))
        return false;
    for (int i = 0; i < n_cfg; i++) {
        const kafka_create_topics_request_creatable_topic_config *c = &q->configs[i];
        keys[i] = api_cstr(r, c->name);
        if (keys[i] == NULL)
            return false;
        if (c->value.len < 0) {
            snprintf(msg, sizeof msg, "Null value not supported for topic config '%.128s'.", keys[i]);
            rc = KAFKA_ERR_INVALID_CONFIG;
            goto done;
        }
        values[i] = api_cstr(r, c->value);
        if (values[i] == NULL)
            return false;
    }

    ctrl_kv *kv = n_cfg ? breq_calloc(r, (size_t)n_cfg, sizeof *kv) : NULL;
    if (n_cfg && kv == NULL)
        return false;
    for (int i = 0; i < n_cfg; i++)
        kv[i] = (ctrl_kv){kstr_c(keys[i]), kstr_c(values[i])};
    /* A broker of this cluster creating an internal topic through the
     * active controller (the controller listener is for cluster members). */
    bool internal = r->controller_listener && ctrl_internal_topic(q->name);
    ctrl_new_topic nt = {q->name, parts, (int16_t)rf, NULL, 0, kv, n_cfg, internal};
    /* A replica assignment goes to the controller as given (it checks the
     * brokers against the registered ones). */
    if (q->assignments_count > 0) {
        ctrl_assignment *as = breq_calloc(r, (size_t)q->assignments_count, sizeof *as);
        if (as == NULL)
            return false;
        for (int32_t i = 0; i < q->assignments_count; i++)
            as[i] = (ctrl_assignment){q->assignments[i].partition_index, q->assignments[i].broker_ids,
                                      q->assignments[i].broker_ids_count};
        nt.partitions = -1;
        nt.replication_factor = -1;
        nt.assignments = as;
        nt.n_assignments = q->assignments_count;
    }
    ctrl_item_result cr;
    bmeta_create_topics(b->meta, &nt, 1, req->validate_only, &cr);
    rc = cr.error;
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s", cr.message);
        goto done;
    }
    if (ver >= 5) {
        res->num_partitions = cr.partitions;
        res->replication_factor = cr.replication_factor;
        if (!fill_created_configs(r, res, keys, values, n_cfg))
            return false;
    }
    if (!req->validate_only) {
        *made = cr.partitions;
        if (ver >= 7)
            res->topic_id = cr.topic_id;
        LOG_INFO("admin", "created topic '%.*s' (%d partitions) for %s", q->name.len, q->name.ptr,
                 cr.partitions, r->net->peer);
    }
done:
    res->error_code = (int16_t)rc;
    res->error_message = rc != 0 && ver >= 1 ? api_kstr(r, msg) : KSTR_NULL;
    return true;
}

breq_status api_create_topics(breq *r) {
    const kafka_create_topics_request *req = r->req;
    kafka_create_topics_response *resp = r->resp;
    int32_t n = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = n ? breq_calloc(r, (size_t)n, sizeof *resp->topics) : NULL;
    const bool *dup = api_dup_flags(r, req->topics, sizeof *req->topics, n);
    if (n && (resp->topics == NULL || dup == NULL))
        return BREQ_CLOSE;
    for (int32_t i = 0; i < n; i++) {
        const kafka_create_topics_request_creatable_topic *q = &req->topics[i];
        kafka_create_topics_response_creatable_topic_result *res = &resp->topics[i];
        kafka_create_topics_response_creatable_topic_result_init(res);
        res->name = q->name;
        res->error_message = KSTR_NULL;
        /* A name given twice in one request is refused for every copy, as
         * nobody can tell which of the two was meant. */
        if (dup[i]) {
            res->error_code = KAFKA_ERR_INVALID_REQUEST;
            if (r->hdr.api_version >= 1)
                res->error_message = api_kstr(r, "The topic is listed more than once in this request.");
            continue;
        }
        if (!bauthz_topic_create(r, q->name)) {
            res->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
            if (r->hdr.api_version >= 1)
                res->error_message =
                    api_kstr(r, "Authorization failed (CREATE on the cluster or the topic).");
            continue;
        }
        /* The controller mutation quota (KIP-599): v6+ is refused while it
         * is exceeded; every version is throttled for what it created. */
        if (!req->validate_only && breq_mutation_refused(r, r->hdr.api_version >= 6)) {
            res->error_code = KAFKA_ERR_THROTTLING_QUOTA_EXCEEDED;
            res->error_message = api_kstr(r, THROTTLED_MSG);
            continue;
        }
        int32_t made = 0;
        if (!create_one(r, req, q, res, &made))
            return BREQ_CLOSE;
        breq_mutation_done(r, made);
    }
    resp->topics_count = n;
    return BREQ_DONE;
}

/* ---- DeleteTopics ------------------------------------------------------ */

static void delete_one(breq *r, const ctrl_topic_ref *ref, kstr name,
                       kafka_delete_topics_response_deletable_topic_result *res) {
    ctrl_item_result cr;
    bmeta_delete_topics(r->b->meta, ref, 1, &cr);
    res->error_code = cr.error;
    if (cr.error != 0 && r->hdr.api_version >= 5)
        res->error_message = api_kstr(r, cr.message);
    if (cr.error == 0) {
        LOG_INFO("admin", "deleted topic '%.*s' for %s", name.len, name.ptr, r->net->peer);
        groups_topic_deleted(r->b, name); /* its committed offsets go too, as in Kafka */
    }
}

breq_status api_delete_topics(breq *r) {
    const kafka_delete_topics_request *req = r->req;
    kafka_delete_topics_response *resp = r->resp;
    broker *b = r->b;
    int16_t ver = r->hdr.api_version;
    bool by_state = ver >= 6;
    int32_t n = by_state ? req->topics_count : req->topic_names_count;
    if (n < 0)
        n = 0;
    resp->responses = n ? breq_calloc(r, (size_t)n, sizeof *resp->responses) : NULL;
    const bool *dup = by_state ? api_dup_flags(r, req->topics, sizeof *req->topics, n)
                               : api_dup_flags(r, req->topic_names, sizeof *req->topic_names, n);
    if (n && (resp->responses == NULL || dup == NULL))
        return BREQ_CLOSE;
    md_image *img = bmeta_image(b->meta);
    for (int32_t i = 0; i < n; i++) {
        kafka_delete_topics_response_deletable_topic_result *res = &resp->responses[i];
        kafka_delete_topics_response_deletable_topic_result_init(res);
        kstr name = by_state ? req->topics[i].name : req->topic_names[i];
        kuuid id = by_state ? req->topics[i].topic_id : (kuuid){{0}};
        bool by_id = name.len < 0;
        const md_topic *t = NULL;
        res->name = name;
        if (by_id) {
            res->topic_id = id;
            t = kuuid_is_zero(id) ? NULL : md_image_topic_by_id(img, id);
            if (t == NULL) {
                res->error_code = KAFKA_ERR_UNKNOWN_TOPIC_ID;
                continue;
            }
            res->name = api_kstr(r, t->name);
            if (!bauthz_allow(r, ACL_OP_DELETE, ACL_RES_TOPIC, res->name)) {
                res->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
                continue;
            }
        } else {
            /* A name given twice is refused for every copy, as Kafka does. */
            if (dup[i]) {
                res->error_code = KAFKA_ERR_INVALID_REQUEST;
                if (ver >= 5)
                    res->error_message = api_kstr(r, "The topic is listed more than once in this request.");
                continue;
            }
            if (by_state && !kuuid_is_zero(id)) {
                /* Both a name and an id: Kafka refuses the ambiguity. */
                res->error_code = KAFKA_ERR_INVALID_REQUEST;
                if (ver >= 5)
                    res->error_message = api_kstr(r, "Give either a topic name or a topic id, not both.");
                continue;
            }
            if (!bauthz_allow(r, ACL_OP_DELETE, ACL_RES_TOPIC, name)) {
                res->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
                continue;
            }
            t = md_image_topic(img, name);
            if (t == NULL) {
                res->error_code = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (ver >= 6)
                res->topic_id = t->id;
        }
        if (breq_mutation_refused(r, ver >= 5)) {
            res->error_code = KAFKA_ERR_THROTTLING_QUOTA_EXCEEDED;
            if (ver >= 5)
                res->error_message = api_kstr(r, THROTTLED_MSG);
            continue;
        }
        int32_t parts = t->n_partitions;
        ctrl_topic_ref ref = {KSTR_NULL, t->id};
        delete_one(r, &ref, res->name, res);
        if (res->error_code == 0)
            breq_mutation_done(r, parts);
    }
    md_image_unref(img);
    resp->responses_count = n;
    return BREQ_DONE;
}

/* ---- CreatePartitions -------------------------------------------------- */

static void create_partitions_one(breq *r, const kafka_create_partitions_request *req,
                                  const kafka_create_partitions_request_create_partitions_topic *q,
                                  kafka_create_partitions_response_create_partitions_topic_result *res,
                                  int32_t *added) {
    broker *b = r->b;
    char msg[TOPICS_API_MSG_MAX] = "";
    int rc = 0;
    md_image *img = bmeta_image(b->meta);
    const md_topic *t = md_image_topic(img, q->name);
    if (t == NULL) {
        snprintf(msg, sizeof msg, "The topic '%.*s' does not exist.", q->name.len > 0 ? q->name.len : 0,
                 q->name.len > 0 ? q->name.ptr : "");
        rc = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        goto done;
    }
    int32_t have = t->n_partitions;
    int32_t topic_rf = have > 0 ? md_topic_partition(t, 0)->replicas.n : 1;
    if (q->count <= have) {
        snprintf(msg, sizeof msg, "Topic currently has %d partitions, which is higher than the requested %d.",
                 have, q->count);
        if (q->count == have)
            snprintf(msg, sizeof msg, "Topic already has %d partitions.", have);
        rc = KAFKA_ERR_INVALID_PARTITIONS;
        goto done;
    }
    if (q->count > CTRL_TOPIC_PARTITIONS_MAX) {
        snprintf(msg, sizeof msg, "%d partitions requested; at most %d are allowed per topic.", q->count,
                 CTRL_TOPIC_PARTITIONS_MAX);
        rc = KAFKA_ERR_INVALID_PARTITIONS;
        goto done;
    }
    /* Assignments, when given, cover exactly the new partitions, each with
     * as many replicas as the topic has. */
    if (q->assignments_count >= 0 && q->assignments != NULL) {
        int32_t added = q->count - have;
        if (q->assignments_count != added) {
            snprintf(msg, sizeof msg,
                     "Increasing the number of partitions by %d but %d assignments provided.", added,
                     q->assignments_count);
            rc = KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
            goto done;
        }
        for (int32_t i = 0; i < added && rc == 0; i++) {
            const kafka_create_partitions_request_create_partitions_assignment *a = &q->assignments[i];
            if (a->broker_ids_count != topic_rf && a->broker_ids_count > 0) {
                snprintf(msg, sizeof msg,
                         "The assignment of new partition %d has %d replicas; the topic's replication factor "
                         "is %d.",
                         have + i, a->broker_ids_count, topic_rf);
                rc = KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
                break;
            }
        }
        if (rc != 0)
            goto done;
    }
    ctrl_new_partitions np = {q->name, q->count, NULL, -1};
    if (q->assignments_count >= 0 && q->assignments != NULL) {
        ctrl_assignment *as =
            breq_calloc(r, (size_t)(q->assignments_count ? q->assignments_count : 1), sizeof *as);
        if (as == NULL) {
            rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            snprintf(msg, sizeof msg, "out of memory");
            goto done;
        }
        for (int32_t i = 0; i < q->assignments_count; i++)
            as[i] =
                (ctrl_assignment){have + i, q->assignments[i].broker_ids, q->assignments[i].broker_ids_count};
        np.assignments = as;
        np.n_assignments = q->assignments_count;
    }
    ctrl_item_result cr;
    bmeta_create_partitions(b->meta, &np, 1, req->validate_only, &cr);
    rc = cr.error;
    if (rc != 0)
        snprintf(msg, sizeof msg, "%s", cr.message);
    if (rc == 0 && !req->validate_only) {
        *added = q->count - have;
        LOG_INFO("admin", "topic '%s' grown from %d to %d partitions for %s", t->name, have, q->count,
                 r->net->peer);
    }
done:
    md_image_unref(img);
    res->error_code = (int16_t)rc;
    res->error_message = rc != 0 ? api_kstr(r, msg) : KSTR_NULL;
}

breq_status api_create_partitions(breq *r) {
    const kafka_create_partitions_request *req = r->req;
    kafka_create_partitions_response *resp = r->resp;
    int32_t n = req->topics_count > 0 ? req->topics_count : 0;
    resp->results = n ? breq_calloc(r, (size_t)n, sizeof *resp->results) : NULL;
    const bool *dup = api_dup_flags(r, req->topics, sizeof *req->topics, n);
    if (n && (resp->results == NULL || dup == NULL))
        return BREQ_CLOSE;
    for (int32_t i = 0; i < n; i++) {
        const kafka_create_partitions_request_create_partitions_topic *q = &req->topics[i];
        kafka_create_partitions_response_create_partitions_topic_result *res = &resp->results[i];
        kafka_create_partitions_response_create_partitions_topic_result_init(res);
        res->name = q->name;
        if (dup[i]) {
            res->error_code = KAFKA_ERR_INVALID_REQUEST;
            res->error_message = api_kstr(r, "The topic is listed more than once in this request.");
            continue;
        }
        if (!bauthz_allow(r, ACL_OP_ALTER, ACL_RES_TOPIC, q->name)) {
            res->error_code = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
            res->error_message = api_kstr(r, "Authorization failed (ALTER on the topic).");
            continue;
        }
        if (!req->validate_only && breq_mutation_refused(r, r->hdr.api_version >= 3)) {
            res->error_code = KAFKA_ERR_THROTTLING_QUOTA_EXCEEDED;
            res->error_message = api_kstr(r, THROTTLED_MSG);
            continue;
        }
        int32_t added = 0;
        create_partitions_one(r, req, q, res, &added);
        breq_mutation_done(r, added);
    }
    resp->results_count = n;
    return BREQ_DONE;
}
