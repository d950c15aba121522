/*
 * rpc.c - requests from this broker to another node. See rpc.h.
 */
#include "broker/rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "proto/header.h"

int brpc_call(net_client *c, int16_t api_key, int16_t version, int32_t corr, const char *client_id,
              const void *req, arena *a, void **resp, int timeout_ms) {
    const kafka_api_info *api = kafka_api_lookup(api_key);
    if (api == NULL)
        return -EINVAL;
    int hv = proto_request_header_version(api_key, version);
    kstr cid = kstr_c(client_id ? client_id : "sluice");
    size_t body = api->request_size(version, req);
    size_t n = 2 + 2 + 4 + 2 + (size_t)cid.len + (hv >= 2 ? 1 : 0) + body;
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return -ENOMEM;
    wire_writer w;
    wire_writer_init(&w, buf, n);
    wire_write_i16(&w, api_key);
    wire_write_i16(&w, version);
    wire_write_i32(&w, corr);
    if (hv >= 1)
        wire_write_string(&w, cid, false, true);
    if (hv >= 2)
        wire_write_uvarint(&w, 0);
    int er = api->request_encode(&w, version, req);
    if (er != WIRE_OK || w.err != WIRE_OK) {
        free(buf);
        return -EINVAL;
    }
    int rc = brpc_call_raw(c, buf, w.len, timeout_ms);
    free(buf);
    if (rc != 0)
        return rc;
    wire_reader r;
    wire_reader_init(&r, c->buf, c->len);
    int32_t got = wire_read_i32(&r);
    if (proto_response_header_version(api_key, version) >= 1) {
        uint32_t tags = wire_read_uvarint(&r);
        for (uint32_t i = 0; i < tags && r.err == WIRE_OK; i++) {
            (void)wire_read_uvarint(&r);
            uint32_t sz = wire_read_uvarint(&r);
            wire_skip(&r, sz);
        }
    }
    if (r.err != WIRE_OK || got != corr) {
        net_client_close(c);
        return -EPROTO;
    }
    void *out = arena_alloc(a, api->response_struct_size);
    if (out == NULL)
        return -ENOMEM;
    api->response_init(out);
    if (api->response_decode(&r, version, a, out) != WIRE_OK) {
        net_client_close(c);
        return -EPROTO;
    }
    *resp = out;
    return 0;
}

int brpc_call_raw(net_client *c, const uint8_t *frame, size_t len, int timeout_ms) {
    int rc = net_client_connect(c, timeout_ms);
    if (rc == 0)
        rc = net_client_send(c, frame, len, timeout_ms);
    if (rc == 0)
        rc = net_client_recv(c, BRPC_FRAME_MAX, timeout_ms);
    return rc;
}
