/*
 * api_acls.c - CreateAcls (30), DescribeAcls (29) and DeleteAcls (31) over
 * the ACLs of the metadata log (AccessControlEntryRecord, written by the
 * controller; security/acl.h has the model).
 *
 * Without an authorizer (authorizer.class.name unset) every result answers
 * SECURITY_DISABLED, as Kafka does: clients then report that security is
 * not enabled instead of seeing the connection close.
 *
 * With one: Describe needs CLUSTER DESCRIBE, Create and Delete CLUSTER
 * ALTER (CLUSTER_AUTHORIZATION_FAILED otherwise, per result). A binding
 * that cannot exist (UNKNOWN or ANY codes, an empty name, a principal
 * without a type) and a filter with UNKNOWN codes answer INVALID_REQUEST
 * with the reason. Creating a binding that exists succeeds without a new
 * record. Delete answers, per filter, the bindings it matched and removed.
 * The work is bounded by the bindings the cluster keeps (ACL_BINDINGS_MAX)
 * times the filters of the request, within the request's arena.
 */
#include <string.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/sasl.h"
#include "core/log.h"

#define NO_AUTHORIZER_MSG "No Authorizer is configured on the broker (authorizer.class.name is not set)"
#define DENIED_MSG        "The principal may not change the cluster's ACLs (CLUSTER ALTER)"

static kstr msg_copy(breq *r, const char *m) {
    if (m == NULL || m[0] == '\0')
        return KSTR_NULL;
    size_t n = strlen(m);
    char *c = breq_alloc(r, n + 1);
    if (c == NULL)
        return KSTR_NULL;
    memcpy(c, m, n + 1);
    return (kstr){c, (int32_t)n};
}

/* An ACL name field (always set in an entry) for a response. */
static kstr ks(const char *s) { return kstr_c(s); }

breq_status api_create_acls(breq *r) {
    const kafka_create_acls_request *req = r->req;
    kafka_create_acls_response *resp = r->resp;
    int32_t n = req->creations_count > 0 ? req->creations_count : 0;
    resp->results = breq_calloc(r, (size_t)(n ? n : 1), sizeof *resp->results);
    ctrl_acl_op *ops = breq_calloc(r, (size_t)(n ? n : 1), sizeof *ops);
    int32_t *op_of = breq_calloc(r, (size_t)(n ? n : 1), sizeof *op_of);
    ctrl_item_result *res = breq_calloc(r, (size_t)(n ? n : 1), sizeof *res);
    if (resp->results == NULL || ops == NULL || op_of == NULL || res == NULL)
        return BREQ_CLOSE;
    resp->results_count = n;
    for (int32_t i = 0; i < n; i++)
        kafka_create_acls_response_acl_creation_result_init(&resp->results[i]);
    int16_t all_err = 0;
    const char *all_msg = NULL;
    if (r->b->authz == NULL) {
        all_err = KAFKA_ERR_SECURITY_DISABLED;
        all_msg = NO_AUTHORIZER_MSG;
    } else if (!bauthz_cluster(r, ACL_OP_ALTER)) {
        all_err = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        all_msg = DENIED_MSG;
    }
    if (all_err != 0) {
        for (int32_t i = 0; i < n; i++) {
            resp->results[i].error_code = all_err;
            resp->results[i].error_message = kstr_c(all_msg);
        }
        return BREQ_DONE;
    }
    int32_t nops = 0;
    for (int32_t i = 0; i < n; i++) {
        const kafka_create_acls_request_acl_creation *c = &req->creations[i];
        acl_spec b = {c->resource_type, c->resource_pattern_type,
                      c->operation,     c->permission_type,
                      c->resource_name, c->principal,
                      c->host};
        const char *why = acl_binding_invalid(&b);
        op_of[i] = -1;
        if (why != NULL) {
            resp->results[i].error_code = KAFKA_ERR_INVALID_REQUEST;
            resp->results[i].error_message = kstr_c(why);
            continue;
        }
        op_of[i] = nops;
        ops[nops++] = (ctrl_acl_op){.remove = false, .binding = b};
    }
    if (nops > 0)
        bmeta_alter_acls(r->b->meta, ops, nops, res);
    int32_t made = 0;
    for (int32_t i = 0; i < n; i++) {
        if (op_of[i] < 0)
            continue;
        const ctrl_item_result *it = &res[op_of[i]];
        resp->results[i].error_code = it->error;
        resp->results[i].error_message = it->error ? msg_copy(r, it->message) : KSTR_NULL;
        made += it->error == 0;
    }
    LOG_INFO("broker", "CreateAcls from %s (%s): %d of %d bindings created or present", r->net->peer,
             bsasl_principal(r), made, n);
    return BREQ_DONE;
}

typedef kafka_describe_acls_response_describe_acls_resource describe_resource;

breq_status api_describe_acls(breq *r) {
    const kafka_describe_acls_request *req = r->req;
    kafka_describe_acls_response *resp = r->resp;
    resp->resources_count = 0;
    if (r->b->authz == NULL) {
        resp->error_code = KAFKA_ERR_SECURITY_DISABLED;
        resp->error_message = kstr_c(NO_AUTHORIZER_MSG);
        return BREQ_DONE;
    }
    if (!bauthz_cluster(r, ACL_OP_DESCRIBE)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->error_message = kstr_c("The principal may not describe the cluster's ACLs (CLUSTER DESCRIBE)");
        return BREQ_DONE;
    }
    acl_spec f = {req->resource_type_filter, req->pattern_type_filter, req->operation,  req->permission_type,
                  req->resource_name_filter, req->principal_filter,    req->host_filter};
    const char *why = acl_filter_invalid(&f);
    if (why != NULL) {
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        resp->error_message = kstr_c(why);
        return BREQ_DONE;
    }
    /* The response's strings point into the set: it lives as long as r. */
    const acl_set *s = bauthz_acls(r);
    int32_t total = acl_set_count(s), hits = 0;
    for (int32_t i = 0; i < total; i++)
        hits += acl_filter_matches(&f, acl_set_at(s, i));
    describe_resource *out = breq_calloc(r, (size_t)(hits ? hits : 1), sizeof *out);
    kafka_describe_acls_response_acl_description *descs =
        breq_calloc(r, (size_t)(hits ? hits : 1), sizeof *descs);
    if (out == NULL || descs == NULL)
        return BREQ_CLOSE;
    /* The set's order keeps the bindings of one resource together. */
    int32_t nres = 0, nd = 0;
    const acl_entry *prev = NULL;
    for (int32_t i = 0; i < total; i++) {
        const acl_entry *e = acl_set_at(s, i);
        if (!acl_filter_matches(&f, e))
            continue;
        if (prev == NULL || prev->resource_type != e->resource_type ||
            prev->pattern_type != e->pattern_type || strcmp(prev->name, e->name) != 0) {
            describe_resource *d = &out[nres++];
            kafka_describe_acls_response_describe_acls_resource_init(d);
            d->resource_type = e->resource_type;
            d->resource_name = ks(e->name);
            d->pattern_type = e->pattern_type;
            d->acls = &descs[nd];
            d->acls_count = 0;
        }
        kafka_describe_acls_response_acl_description *a = &descs[nd++];
        kafka_describe_acls_response_acl_description_init(a);
        a->principal = ks(e->principal);
        a->host = ks(e->host);
        a->operation = e->operation;
        a->permission_type = e->permission;
        out[nres - 1].acls_count++;
        prev = e;
    }
    resp->resources = out;
    resp->resources_count = nres;
    return BREQ_DONE;
}

typedef kafka_delete_acls_response_delete_acls_filter_result filter_result;
typedef kafka_delete_acls_response_delete_acls_matching_acl matching_acl;

breq_status api_delete_acls(breq *r) {
    const kafka_delete_acls_request *req = r->req;
    kafka_delete_acls_response *resp = r->resp;
    int32_t n = req->filters_count > 0 ? req->filters_count : 0;
    resp->filter_results = breq_calloc(r, (size_t)(n ? n : 1), sizeof *resp->filter_results);
    if (resp->filter_results == NULL)
        return BREQ_CLOSE;
    resp->filter_results_count = n;
    for (int32_t i = 0; i < n; i++) {
        kafka_delete_acls_response_delete_acls_filter_result_init(&resp->filter_results[i]);
        resp->filter_results[i].matching_acls_count = 0;
    }
    int16_t all_err = 0;
    const char *all_msg = NULL;
    if (r->b->authz == NULL) {
        all_err = KAFKA_ERR_SECURITY_DISABLED;
        all_msg = NO_AUTHORIZER_MSG;
    } else if (!bauthz_cluster(r, ACL_OP_ALTER)) {
        all_err = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        all_msg = DENIED_MSG;
    }
    if (all_err != 0) {
        for (int32_t i = 0; i < n; i++) {
            resp->filter_results[i].error_code = all_err;
            resp->filter_results[i].error_message = kstr_c(all_msg);
        }
        return BREQ_DONE;
    }
    const acl_set *s = bauthz_acls(r);
    int32_t total = acl_set_count(s);
    /* Each binding is removed once, however many filters match it. */
    bool *taken = breq_calloc(r, (size_t)(total ? total : 1), sizeof *taken);
    ctrl_acl_op *ops = breq_calloc(r, (size_t)(total ? total : 1), sizeof *ops);
    int32_t *op_of = breq_calloc(r, (size_t)(total ? total : 1), sizeof *op_of);
    ctrl_item_result *res = breq_calloc(r, (size_t)(total ? total : 1), sizeof *res);
    if (taken == NULL || ops == NULL || op_of == NULL || res == NULL)
        return BREQ_CLOSE;
    int32_t nops = 0;
    for (int32_t k = 0; k < n; k++) {
        const kafka_delete_acls_request_delete_acls_filter *q = &req->filters[k];
        acl_spec f = {q->resource_type_filter, q->pattern_type_filter, q->operation,  q->permission_type,
                      q->resource_name_filter, q->principal_filter,    q->host_filter};
        const char *why = acl_filter_invalid(&f);
        if (why != NULL) {
            resp->filter_results[k].error_code = KAFKA_ERR_INVALID_REQUEST;
            resp->filter_results[k].error_message = kstr_c(why);
            continue;
        }
        for (int32_t i = 0; i < total; i++)
            if (!taken[i] && acl_filter_matches(&f, acl_set_at(s, i))) {
                taken[i] = true;
                op_of[i] = nops;
                ops[nops++] = (ctrl_acl_op){.remove = true, .id = acl_set_at(s, i)->id};
            }
    }
    if (nops > 0)
        bmeta_alter_acls(r->b->meta, ops, nops, res);
    int32_t removed = 0;
    for (int32_t k = 0; k < n; k++) {
        filter_result *fr = &resp->filter_results[k];
        if (fr->error_code != 0)
            continue;
        const kafka_delete_acls_request_delete_acls_filter *q = &req->filters[k];
        acl_spec f = {q->resource_type_filter, q->pattern_type_filter, q->operation,  q->permission_type,
                      q->resource_name_filter, q->principal_filter,    q->host_filter};
        int32_t m = 0;
        for (int32_t i = 0; i < total; i++)
            m += taken[i] && acl_filter_matches(&f, acl_set_at(s, i));
        matching_acl *ma = breq_calloc(r, (size_t)(m ? m : 1), sizeof *ma);
        if (ma == NULL)
            return BREQ_CLOSE;
        int32_t j = 0;
        for (int32_t i = 0; i < total; i++) {
            const acl_entry *e = acl_set_at(s, i);
            if (!taken[i] || !acl_filter_matches(&f, e))
                continue;
            const ctrl_item_result *it = &res[op_of[i]];
            if (it->error != 0 && fr->error_code == 0) {
                fr->error_code = it->error;
                fr->error_message = msg_copy(r, it->message);
            }
            matching_acl *a = &ma[j++];
            kafka_delete_acls_response_delete_acls_matching_acl_init(a);
            a->error_code = it->error;
            a->error_message = it->error ? msg_copy(r, it->message) : KSTR_NULL;
            a->resource_type = e->resource_type;
            a->resource_name = ks(e->name);
            a->pattern_type = e->pattern_type;
            a->principal = ks(e->principal);
            a->host = ks(e->host);
            a->operation = e->operation;
            a->permission_type = e->permission;
        }
        fr->matching_acls = ma;
        fr->matching_acls_count = j;
    }
    for (int32_t i = 0; i < nops; i++)
        removed += res[i].error == 0;
    LOG_INFO("broker", "DeleteAcls from %s (%s): %d filters, %d bindings removed", r->net->peer,
             bsasl_principal(r), n, removed);
    return BREQ_DONE;
}
