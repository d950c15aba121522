/*
 * api_versions.c - ApiVersions (key 18): what this broker speaks.
 *
 * Lists the APIs in request.c's table with their served version ranges,
 * narrowed to what the codec can encode. An unsupported ApiVersions version is
 * answered in request.c before this handler runs (v0 layout, error 35).
 *
 * Software name and version (KIP-511) travel one way only: clients put theirs
 * in the v3+ request; the response has no field for the broker's. As Kafka
 * does, a v3+ request whose name or version is not of the KIP's form (ASCII
 * letters, digits, '.' and '-', starting and ending with a letter or digit)
 * is answered INVALID_REQUEST with no API list. A valid client's software is
 * logged at DEBUG; the broker's own version is in its startup line ("sluiced
 * X starting") and `sluiced --version` (core/version.h).
 */
#include <stdbool.h>

#include "broker/apis.h"
#include "core/log.h"

static bool ascii_alnum(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* KIP-511's pattern [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? */
static bool software_field_valid(kstr s) {
    if (s.ptr == NULL || s.len <= 0)
        return false;
    for (int32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        bool edge = i == 0 || i == s.len - 1;
        if (!ascii_alnum(c) && (edge || (c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* At most 64 bytes of s for a log line, anything outside the KIP's
 * characters shown as '?', so a client cannot write control bytes or line
 * breaks into the log. */
static const char *shown(kstr s, char out[65]) {
    int32_t n = s.ptr == NULL || s.len < 0 ? 0 : (s.len > 64 ? 64 : s.len);
    for (int32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        out[i] = ascii_alnum(c) || c == '.' || c == '-' ? (char)c : '?';
    }
    out[n] = '\0';
    return out;
}

static log_ratelimit invalid_software_rl = LOG_RATELIMIT_DEFAULT;

breq_status api_versions(breq *r) {
    kafka_api_versions_response *resp = r->resp;
    const kafka_api_versions_request *req = r->req;
    resp->throttle_time_ms = 0;
    if (r->hdr.api_version >= 3 && (!software_field_valid(req->client_software_name) ||
                                    !software_field_valid(req->client_software_version))) {
        char name[65], version[65];
        LOG_WARN_LIMITED(&invalid_software_rl, "api",
                         "ApiVersions v%d from %s refused with INVALID_REQUEST: client software name '%s' or "
                         "version '%s' is empty or not letters, digits, '.' and '-' (KIP-511)",
                         r->hdr.api_version, r->net->peer, shown(req->client_software_name, name),
                         shown(req->client_software_version, version));
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        resp->api_keys_count = 0;
        return BREQ_DONE;
    }
    if (proto_api_versions_fill(resp, &r->mem, KAFKA_ERR_NONE, broker_api_filter, NULL) != WIRE_OK)
        return BREQ_CLOSE;
    if (r->hdr.api_version >= 3)
        api_versions_features(r, resp);
    if (r->hdr.api_version >= 3)
        LOG_DEBUG("api", "client %s runs %.*s %.*s", r->net->peer, (int)req->client_software_name.len,
                  req->client_software_name.ptr, (int)req->client_software_version.len,
                  req->client_software_version.ptr);
    return BREQ_DONE;
}
