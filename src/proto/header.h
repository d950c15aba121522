/*
 * header.h - Kafka request and response headers, and version negotiation.
 *
 * Every request frame body (after the int32 size prefix) starts with a request
 * header; every response body is preceded by a response header. Which header
 * version applies depends on the API and its version:
 *
 *   request header v0: api_key, api_version, correlation_id
 *                      (only ControlledShutdown v0)
 *   request header v1: v0 + client_id (nullable int16-length string)
 *   request header v2: v1 + tagged fields (every flexible request version;
 *                      client_id stays a non-compact string)
 *   response header v0: correlation_id
 *   response header v1: v0 + tagged fields (flexible response versions),
 *                      except ApiVersions, whose responses always use v0 so a
 *                      client can read them before it knows what the broker speaks.
 *
 * This module owns no memory: a parsed client_id points into the frame. It
 * relies on the generated API table (proto/gen/kafka_msgs.h) for version
 * ranges and flexibility.
 */
#ifndef SLUICE_PROTO_HEADER_H
#define SLUICE_PROTO_HEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/gen/kafka_msgs.h"
#include "proto/wire.h"

typedef struct proto_request_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kstr client_id;            /* null in header v0 or when the client sent null */
    int header_version;        /* 0, 1 or 2 */
    const kafka_api_info *api; /* NULL if the api key is unknown */
} proto_request_header;

/* Request header version for (api_key, api_version): 0, 1 or 2. An unknown
 * api key gets 1, the common prefix every client writes, so that at least the
 * correlation id can be read. A known key at a version above its maximum is
 * judged by the flexible range (open-ended), which is what clients assume. */
int proto_request_header_version(int16_t api_key, int16_t api_version);

/* Response header version for (api_key, api_version): 0 or 1. */
int proto_response_header_version(int16_t api_key, int16_t api_version);

/* Parses the request header at the start of a frame body. On success the
 * reader is left at the start of the request body and h->api says which API
 * it is (NULL when unknown: the caller should close the connection, as Kafka
 * does). Unknown tagged fields in header v2 are skipped. Returns a wire_err.
 * A parsed version may still be unsupported: check proto_version_supported(). */
int proto_request_header_parse(wire_reader *r, proto_request_header *h);

/* Writes the response header for (api_key, api_version). */
void proto_response_header_write(wire_writer *w, int16_t api_key, int16_t api_version,
                                 int32_t correlation_id);

/* Bytes proto_response_header_write() writes: 4 or 5. */
size_t proto_response_header_size(int16_t api_key, int16_t api_version);

/* True if the codec knows api_key at api_version. A request outside the range
 * must be answered with UNSUPPORTED_VERSION (for ApiVersions, use
 * proto_api_versions_write_unsupported) or the connection closed. */
bool proto_version_supported(int16_t api_key, int16_t api_version);

/* Chooses which APIs an ApiVersions answer lists, and may narrow the range
 * offered: *min and *max arrive set to the codec's stable range and may be
 * changed. NULL lists all known APIs with their whole range. */
typedef bool (*proto_api_filter)(const kafka_api_info *api, void *ctx, int16_t *min, int16_t *max);

/* Fills an ApiVersions response: error_code plus one api_keys entry per API
 * that passes the filter, in key order, allocated from a. The advertised
 * maximum skips a latest version marked unstable (an API whose only version
 * is unstable is left out). Returns WIRE_ENOMEM if the arena is full. */
int proto_api_versions_fill(kafka_api_versions_response *resp, arena *a, int16_t error_code,
                            proto_api_filter filter, void *ctx);

/* Writes a whole ApiVersions answer to a request whose version is not
 * supported: response header v0 then the v0 body layout with error
 * UNSUPPORTED_VERSION (35) and the supported ranges, so the client can retry
 * with a version it finds there. Does not write the int32 frame size. The
 * arena holds the api_keys array while encoding (about 8 bytes per API).
 * Returns a wire_err. */
int proto_api_versions_write_unsupported(wire_writer *w, int32_t correlation_id, arena *a,
                                         proto_api_filter filter, void *ctx);

#endif
