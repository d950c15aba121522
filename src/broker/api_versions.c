/*
 * api_versions.c - ApiVersions (key 18): what this broker speaks.
 *
 * Lists the APIs in request.c's table with their served version ranges,
 * narrowed to what the codec can encode. An unsupported ApiVersions version is
 * answered in request.c before this handler runs (v0 layout, error 35).
 *
 * Software name and version (KIP-511) travel one way only: clients put theirs
 * in the v3+ request; the response has no field for the broker's. The broker
 * logs a client's at DEBUG, and its own version at startup ("sluiced X
 * starting") and in `sluiced --version` (core/version.h).
 */
#include "broker/apis.h"
#include "core/log.h"

breq_status api_versions(breq *r) {
    kafka_api_versions_response *resp = r->resp;
    if (proto_api_versions_fill(resp, &r->mem, KAFKA_ERR_NONE, broker_api_filter, NULL) != WIRE_OK)
        return BREQ_CLOSE;
    /* v3+ clients send their name and version; nothing to validate beyond
     * what decoding did. Finalized features: none yet (no metadata.version). */
    const kafka_api_versions_request *req = r->req;
    if (r->hdr.api_version >= 3 && req->client_software_name.len > 0)
        LOG_DEBUG("api", "client %s runs %.*s %.*s", r->net->peer, (int)req->client_software_name.len,
                  req->client_software_name.ptr,
                  (int)(req->client_software_version.len > 0 ? req->client_software_version.len : 0),
                  req->client_software_version.ptr ? req->client_software_version.ptr : "");
    resp->throttle_time_ms = 0;
    return BREQ_DONE;
}
