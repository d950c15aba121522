/*
 * api_versions.c - ApiVersions (key 18): what this broker speaks.
 *
 * Lists the APIs in request.c's table with their served version ranges,
 * narrowed to what the codec can encode. An unsupported ApiVersions version is
 * answered in request.c before this handler runs (v0 layout, error 35).
 */
#include "broker/apis.h"
#include "core/log.h"

breq_status api_versions(breq *r) {
    kafka_api_versions_response *resp = r->resp;
    if (proto_api_versions_fill(resp, &r->mem, KAFKA_ERR_NONE, broker_api_filter, NULL) != WIRE_OK)
        return BREQ_CLOSE;
    /* v3+ clients send their name and version; nothing to validate beyond
     * what decoding did. Finalized features: none yet (no metadata.version). */
    resp->throttle_time_ms = 0;
    return BREQ_DONE;
}
