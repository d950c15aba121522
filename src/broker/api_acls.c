/*
 * api_acls.c - CreateAcls (30), DescribeAcls (29) and DeleteAcls (31).
 *
 * Without an authorizer (authorizer.class.name unset) every result answers
 * SECURITY_DISABLED, as Kafka does: clients then report that security is
 * not enabled instead of seeing the connection close.
 */
#include "broker/apis.h"
#include "broker/broker.h"

#define NO_AUTHORIZER_MSG "No Authorizer is configured on the broker (authorizer.class.name is not set)"

breq_status api_create_acls(breq *r) {
    const kafka_create_acls_request *req = r->req;
    kafka_create_acls_response *resp = r->resp;
    int32_t n = req->creations_count > 0 ? req->creations_count : 0;
    resp->results = breq_calloc(r, (size_t)(n ? n : 1), sizeof *resp->results);
    if (resp->results == NULL)
        return BREQ_CLOSE;
    resp->results_count = n;
    for (int32_t i = 0; i < n; i++) {
        kafka_create_acls_response_acl_creation_result_init(&resp->results[i]);
        resp->results[i].error_code = KAFKA_ERR_SECURITY_DISABLED;
        resp->results[i].error_message = kstr_c(NO_AUTHORIZER_MSG);
    }
    return BREQ_DONE;
}

breq_status api_describe_acls(breq *r) {
    kafka_describe_acls_response *resp = r->resp;
    resp->error_code = KAFKA_ERR_SECURITY_DISABLED;
    resp->error_message = kstr_c(NO_AUTHORIZER_MSG);
    resp->resources_count = 0;
    return BREQ_DONE;
}

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
        resp->filter_results[i].error_code = KAFKA_ERR_SECURITY_DISABLED;
        resp->filter_results[i].error_message = kstr_c(NO_AUTHORIZER_MSG);
        resp->filter_results[i].matching_acls_count = 0;
    }
    return BREQ_DONE;
}
