/*
 * broker/authz.c - the authorization check handlers call. See authz.h.
 */
#include "broker/authz.h"

#include <stdlib.h>
#include <string.h>

#include "broker/meta.h"
#include "broker/sasl.h"
#include "core/log.h"

int bauthz_create(const broker_config *cfg, bauthz **out) {
    *out = NULL;
    if (cfg->authorizer_class_name == NULL || cfg->authorizer_class_name[0] == '\0')
        return 0;
    bauthz *a = calloc(1, sizeof *a);
    if (a == NULL)
        return -1;
    char err[256];
    if (acl_policy_init(&a->policy, cfg->super_users, cfg->allow_everyone_if_no_acl_found, err, sizeof err) !=
        0) {
        LOG_ERROR("broker", "%s", err);
        free(a);
        return -1;
    }
    LOG_INFO("broker", "authorizer %s: %d super users, allow.everyone.if.no.acl.found=%s",
             cfg->authorizer_class_name, a->policy.n_super,
             cfg->allow_everyone_if_no_acl_found ? "true" : "false");
    *out = a;
    return 0;
}

void bauthz_destroy(bauthz *a) {
    if (a == NULL)
        return;
    acl_policy_free(&a->policy);
    free(a);
}

/* The image, principal and host of r, taken once per request. */
static const acl_set *prepare(breq *r) {
    if (r->authz_img == NULL) {
        r->authz_img = bmeta_image(r->b->meta);
        r->authz_principal = bsasl_principal(r);
        /* "ip:port" (IPv6 without brackets): the address is before the last ':'. */
        const char *peer = r->net->peer ? r->net->peer : "";
        const char *colon = strrchr(peer, ':');
        size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
        if (n >= sizeof r->authz_host)
            n = sizeof r->authz_host - 1;
        memcpy(r->authz_host, peer, n);
        r->authz_host[n] = '\0';
    }
    return md_image_acls(r->authz_img);
}

const acl_set *bauthz_acls(breq *r) { return prepare(r); }

void bauthz_release(breq *r) {
    if (r->authz_img != NULL)
        md_image_unref(r->authz_img);
    r->authz_img = NULL;
}

/* A client can make denials as fast as it sends requests. */
static log_ratelimit denied_rl = LOG_RATELIMIT_DEFAULT;

bool bauthz_may_(breq *r, int8_t op, int8_t type, kstr name) {
    const acl_set *s = prepare(r);
    return acl_authorize(s, &r->b->authz->policy, r->authz_principal, r->authz_host, op, type, name);
}

bool bauthz_allow_(breq *r, int8_t op, int8_t type, kstr name) {
    if (bauthz_may_(r, op, type, name))
        return true;
    LOG_INFO_LIMITED(&denied_rl, "authz", "denied: principal %s operation %s on %s:%.*s for %s v%d from %s",
                     r->authz_principal, acl_operation_name(op), acl_resource_type_name(type),
                     name.len > 0 ? (name.len > 256 ? 256 : name.len) : 0, name.len > 0 ? name.ptr : "",
                     r->api ? r->api->name : "?", r->hdr.api_version, r->net->peer);
    return false;
}

bool bauthz_cluster(breq *r, int8_t op) {
    return bauthz_allow(r, op, ACL_RES_CLUSTER, kstr_c(ACL_CLUSTER_NAME));
}

int32_t bauthz_ops(breq *r, int8_t type, kstr name) {
    if (!bauthz_on(r)) {
        acl_policy all = {NULL, 0, true};
        return acl_authorized_ops(NULL, &all, "User:ANONYMOUS", "", type, name);
    }
    const acl_set *s = prepare(r);
    return acl_authorized_ops(s, &r->b->authz->policy, r->authz_principal, r->authz_host, type, name);
}

bool bauthz_any_topic_write(breq *r) {
    if (!bauthz_on(r))
        return true;
    const acl_set *s = prepare(r);
    return acl_any_allowed(s, &r->b->authz->policy, r->authz_principal, r->authz_host, ACL_OP_WRITE,
                           ACL_RES_TOPIC);
}

bool bauthz_topic_create(breq *r, kstr topic) {
    if (!bauthz_on(r) || bauthz_may_(r, ACL_OP_CREATE, ACL_RES_CLUSTER, kstr_c(ACL_CLUSTER_NAME)))
        return true;
    return bauthz_allow_(r, ACL_OP_CREATE, ACL_RES_TOPIC, topic);
}

/* Kafka's ConfigResource types. */
#define CONFIG_RES_TOPIC  2
#define CONFIG_RES_BROKER 4

bool bauthz_config_resource(breq *r, int8_t op, int8_t resource_type, kstr name) {
    if (!bauthz_on(r))
        return true;
    if (resource_type == CONFIG_RES_TOPIC)
        return bauthz_allow_(r, op, ACL_RES_TOPIC, name);
    /* Brokers, broker loggers and anything else: the cluster. */
    return bauthz_cluster(r, op);
}

bool bauthz_forwardable(breq *r) {
    if (!bauthz_on(r))
        return true;
    switch (r->hdr.api_key) {
    case KAFKA_API_CREATE_TOPICS: {
        const kafka_create_topics_request *q = r->req;
        for (int32_t i = 0; i < q->topics_count; i++)
            if (!bauthz_topic_create(r, q->topics[i].name))
                return false;
        return true;
    }
    case KAFKA_API_DELETE_TOPICS: {
        const kafka_delete_topics_request *q = r->req;
        md_image *img = NULL;
        bool ok = true;
        for (int32_t i = 0; ok && i < q->topic_names_count; i++)
            ok = bauthz_allow_(r, ACL_OP_DELETE, ACL_RES_TOPIC, q->topic_names[i]);
        for (int32_t i = 0; ok && i < q->topics_count; i++) {
            kstr name = q->topics[i].name;
            if (name.len < 0) {
                if (img == NULL)
                    img = bmeta_image(r->b->meta);
                const md_topic *t = md_image_topic_by_id(img, q->topics[i].topic_id);
                if (t == NULL)
                    continue; /* the controller answers UNKNOWN_TOPIC_ID */
                name = (kstr){t->name, t->name_len};
            }
            ok = bauthz_allow_(r, ACL_OP_DELETE, ACL_RES_TOPIC, name);
        }
        if (img != NULL)
            md_image_unref(img);
        return ok;
    }
    case KAFKA_API_CREATE_PARTITIONS: {
        const kafka_create_partitions_request *q = r->req;
        for (int32_t i = 0; i < q->topics_count; i++)
            if (!bauthz_allow_(r, ACL_OP_ALTER, ACL_RES_TOPIC, q->topics[i].name))
                return false;
        return true;
    }
    case KAFKA_API_ALTER_CONFIGS: {
        const kafka_alter_configs_request *q = r->req;
        for (int32_t i = 0; i < q->resources_count; i++)
            if (!bauthz_config_resource(r, ACL_OP_ALTER_CONFIGS, q->resources[i].resource_type,
                                        q->resources[i].resource_name))
                return false;
        return true;
    }
    case KAFKA_API_INCREMENTAL_ALTER_CONFIGS: {
        const kafka_incremental_alter_configs_request *q = r->req;
        for (int32_t i = 0; i < q->resources_count; i++)
            if (!bauthz_config_resource(r, ACL_OP_ALTER_CONFIGS, q->resources[i].resource_type,
                                        q->resources[i].resource_name))
                return false;
        return true;
    }
    case KAFKA_API_ELECT_LEADERS:
    case KAFKA_API_UNREGISTER_BROKER:
    case KAFKA_API_ALTER_USER_SCRAM_CREDENTIALS:
    case KAFKA_API_CREATE_ACLS:
    case KAFKA_API_DELETE_ACLS:
    case KAFKA_API_UPDATE_FEATURES:
        return bauthz_cluster(r, ACL_OP_ALTER);
    default:
        return bauthz_cluster(r, ACL_OP_ALTER);
    }
}
