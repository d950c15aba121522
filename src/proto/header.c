/*
 * header.c - request/response headers and version negotiation. See header.h.
 */
#include "proto/header.h"

#include <assert.h>

static bool is_flexible(const kafka_api_info *api, int16_t api_version) {
    return api != NULL && api->flexible_min >= 0 && api_version >= api->flexible_min;
}

int proto_request_header_version(int16_t api_key, int16_t api_version) {
    const kafka_api_info *api = kafka_api_lookup(api_key);
    /* ControlledShutdown v0 predates client_id in the header. */
    if (api_key == KAFKA_API_CONTROLLED_SHUTDOWN && api_version == 0)
        return 0;
    return is_flexible(api, api_version) ? 2 : 1;
}

int proto_response_header_version(int16_t api_key, int16_t api_version) {
    /* ApiVersions answers must be readable by a client that does not yet know
     * whether the broker speaks flexible versions. */
    if (api_key == KAFKA_API_API_VERSIONS)
        return 0;
    return is_flexible(kafka_api_lookup(api_key), api_version) ? 1 : 0;
}

/* Skips a tag section; the request header defines no tags of its own. */
static void skip_tags(wire_reader *r) {
    uint32_t n = wire_read_uvarint(r);
    for (uint32_t i = 0; i < n && r->err == WIRE_OK; i++) {
        (void)wire_read_uvarint(r); /* tag */
        uint32_t len = wire_read_uvarint(r);
        wire_skip(r, len);
    }
}

int proto_request_header_parse(wire_reader *r, proto_request_header *h) {
    h->api_key = wire_read_i16(r);
    h->api_version = wire_read_i16(r);
    h->correlation_id = wire_read_i32(r);
    h->client_id = KSTR_NULL;
    h->api = kafka_api_lookup(h->api_key);
    h->header_version = proto_request_header_version(h->api_key, h->api_version);
    if (r->err != WIRE_OK)
        return r->err;
    if (h->header_version >= 1)
        h->client_id = wire_read_string(r, false, true);
    if (h->header_version >= 2)
        skip_tags(r);
    return r->err;
}

void proto_response_header_write(wire_writer *w, int16_t api_key, int16_t api_version,
                                 int32_t correlation_id) {
    wire_write_i32(w, correlation_id);
    if (proto_response_header_version(api_key, api_version) >= 1)
        wire_write_uvarint(w, 0); /* no tagged fields */
}

size_t proto_response_header_size(int16_t api_key, int16_t api_version) {
    return proto_response_header_version(api_key, api_version) >= 1 ? 5 : 4;
}

bool proto_version_supported(int16_t api_key, int16_t api_version) {
    const kafka_api_info *api = kafka_api_lookup(api_key);
    return api != NULL && api_version >= api->min_version && api_version <= api->max_version;
}

int proto_api_versions_fill(kafka_api_versions_response *resp, arena *a, int16_t error_code,
                            proto_api_filter filter, void *ctx) {
    kafka_api_versions_response_init(resp);
    resp->error_code = error_code;
    resp->api_keys_count = 0;
    resp->api_keys = arena_calloc(a, KAFKA_API_MAX_KEY + 1, sizeof *resp->api_keys);
    if (resp->api_keys == NULL)
        return WIRE_ENOMEM;
    for (int key = 0; key <= KAFKA_API_MAX_KEY; key++) {
        const kafka_api_info *api = kafka_api_lookup((int16_t)key);
        if (api == NULL)
            continue;
        int16_t min = api->min_version;
        int16_t max = api->latest_unstable ? (int16_t)(api->max_version - 1) : api->max_version;
        if (filter != NULL && !filter(api, ctx, &min, &max))
            continue;
        if (max < min)
            continue; /* nothing stable to offer */
        kafka_api_versions_response_api_version *e = &resp->api_keys[resp->api_keys_count++];
        kafka_api_versions_response_api_version_init(e);
        e->api_key = api->key;
        e->min_version = min;
        e->max_version = max;
    }
    assert(resp->api_keys_count <= KAFKA_API_MAX_KEY + 1);
    return WIRE_OK;
}

int proto_api_versions_write_unsupported(wire_writer *w, int32_t correlation_id, arena *a,
                                         proto_api_filter filter, void *ctx) {
    kafka_api_versions_response resp;
    int rc = proto_api_versions_fill(&resp, a, KAFKA_ERR_UNSUPPORTED_VERSION, filter, ctx);
    if (rc != WIRE_OK)
        return rc;
    proto_response_header_write(w, KAFKA_API_API_VERSIONS, 0, correlation_id);
    return kafka_api_versions_response_encode(w, 0, &resp);
}
