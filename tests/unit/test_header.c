/*
 * test_header.c - request/response headers and version negotiation
 * (src/proto/header.c), checked against bytes written out from the spec.
 */
#include "unit.h"

#include "proto/header.h"

static void test_header_versions(void) {
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_PRODUCE, 8), 1);
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_PRODUCE, 9), 2);
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_CONTROLLED_SHUTDOWN, 0), 0);
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_CONTROLLED_SHUTDOWN, 1), 1);
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_SASL_HANDSHAKE, 1), 1);
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_API_VERSIONS, 3), 2);
    /* versions above the known maximum stay flexible */
    CHECK_EQ_INT(proto_request_header_version(KAFKA_API_API_VERSIONS, 9), 2);
    CHECK_EQ_INT(proto_request_header_version(999, 0), 1);
    CHECK_EQ_INT(proto_response_header_version(KAFKA_API_API_VERSIONS, 3), 0);
    CHECK_EQ_INT(proto_response_header_version(KAFKA_API_METADATA, 8), 0);
    CHECK_EQ_INT(proto_response_header_version(KAFKA_API_METADATA, 9), 1);
    CHECK_EQ_INT(proto_response_header_size(KAFKA_API_METADATA, 9), 5);
    CHECK_EQ_INT(proto_response_header_size(KAFKA_API_API_VERSIONS, 4), 4);
}

static void test_parse_v1(void) {
    static const uint8_t frame[] = {0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, /* Metadata v1, corr 7 */
                                    0x00, 0x04, 'c',  'l',  'i',  '1',              /* client_id */
                                    0xff, 0xff, 0xff, 0xff};                        /* body: null topics */
    wire_reader r;
    wire_reader_init(&r, frame, sizeof frame);
    proto_request_header h;
    CHECK_EQ_INT(proto_request_header_parse(&r, &h), 0);
    CHECK_EQ_INT(h.api_key, 3);
    CHECK_EQ_INT(h.api_version, 1);
    CHECK_EQ_INT(h.correlation_id, 7);
    CHECK_EQ_INT(h.header_version, 1);
    CHECK(kstr_eq_c(h.client_id, "cli1"));
    REQUIRE(h.api != NULL);
    CHECK(strcmp(h.api->name, "Metadata") == 0);
    CHECK_EQ_INT(wire_remaining(&r), 4);

    arena a;
    arena_init(&a, 4096);
    void *body = calloc(1, h.api->request_struct_size);
    REQUIRE(body);
    CHECK_EQ_INT(h.api->request_decode(&r, h.api_version, &a, body), 0);
    CHECK_EQ_INT(((kafka_metadata_request *)body)->topics_count, -1);
    free(body);
    arena_reset(&a);

    /* every truncation of the header fails */
    for (size_t len = 0; len < 14; len++) {
        wire_reader_init(&r, frame, len);
        CHECK(proto_request_header_parse(&r, &h) != 0);
    }
}

static void test_parse_v2_tags_and_null_client(void) {
    static const uint8_t frame[] = {0x00, 0x12, 0x00, 0x03, 0x00,
                                    0x00, 0x00, 0x2a,             /* ApiVersions v3, corr 42 */
                                    0xff, 0xff,                   /* null client_id */
                                    0x01, 0x05, 0x02, 0xaa, 0xbb, /* one unknown tag */
                                    0x01, 0x01, 0x00};            /* body */
    wire_reader r;
    wire_reader_init(&r, frame, sizeof frame);
    proto_request_header h;
    CHECK_EQ_INT(proto_request_header_parse(&r, &h), 0);
    CHECK_EQ_INT(h.header_version, 2);
    CHECK_EQ_INT(h.correlation_id, 42);
    CHECK_EQ_INT(h.client_id.len, -1);
    CHECK_EQ_INT(wire_remaining(&r), 3);
    /* the tag claims more bytes than remain */
    wire_reader_init(&r, frame, 14);
    CHECK(proto_request_header_parse(&r, &h) != 0);
}

static void test_parse_v0_controlled_shutdown(void) {
    static const uint8_t frame[] = {0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x05};
    wire_reader r;
    wire_reader_init(&r, frame, sizeof frame);
    proto_request_header h;
    CHECK_EQ_INT(proto_request_header_parse(&r, &h), 0);
    CHECK_EQ_INT(h.header_version, 0);
    CHECK_EQ_INT(h.client_id.len, -1);
    CHECK_EQ_INT(wire_remaining(&r), 4); /* broker_id */
}

static void test_unknown_key(void) {
    static const uint8_t frame[] = {0x03, 0xe7, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    wire_reader r;
    wire_reader_init(&r, frame, sizeof frame);
    proto_request_header h;
    CHECK_EQ_INT(proto_request_header_parse(&r, &h), 0);
    CHECK(h.api == NULL);
    CHECK(!proto_version_supported(h.api_key, h.api_version));
}

static void test_response_header_write(void) {
    uint8_t buf[16];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    proto_response_header_write(&w, KAFKA_API_METADATA, 12, 0x01020304);
    CHECK_EQ_INT(w.len, 5);
    CHECK(memcmp(buf, "\x01\x02\x03\x04\x00", 5) == 0);
    wire_writer_init(&w, buf, sizeof buf);
    proto_response_header_write(&w, KAFKA_API_API_VERSIONS, 4, 7);
    CHECK_EQ_INT(w.len, 4);
    CHECK(memcmp(buf, "\x00\x00\x00\x07", 4) == 0);
}

static void test_supported(void) {
    CHECK(proto_version_supported(KAFKA_API_PRODUCE, 11));
    CHECK(!proto_version_supported(KAFKA_API_PRODUCE, 12));
    CHECK(!proto_version_supported(KAFKA_API_PRODUCE, -1));
    CHECK(proto_version_supported(KAFKA_API_FETCH, 0));
    CHECK(!proto_version_supported(4, 0)); /* LeaderAndIsr: ZooKeeper only */
}

static bool only_broker(const kafka_api_info *api, void *ctx, int16_t *min, int16_t *max) {
    (void)ctx;
    (void)min;
    (void)max;
    return api->broker;
}

static void test_unsupported_api_versions_answer(void) {
    uint8_t buf[2048];
    arena a;
    arena_init(&a, 1 << 16);
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    CHECK_EQ_INT(proto_api_versions_write_unsupported(&w, 99, &a, only_broker, NULL), 0);

    /* header v0, then the v0 body: error, int32 count, (key, min, max) triples */
    wire_reader r;
    wire_reader_init(&r, buf, w.len);
    CHECK_EQ_INT(wire_read_i32(&r), 99);
    CHECK_EQ_INT(wire_read_i16(&r), KAFKA_ERR_UNSUPPORTED_VERSION);
    int32_t n = wire_read_i32(&r);
    CHECK(n > 50);
    CHECK_EQ_INT(wire_remaining(&r), (size_t)n * 6);
    bool saw_api_versions = false, saw_vote = false, saw_share_hb = false;
    for (int32_t i = 0; i < n; i++) {
        int16_t key = wire_read_i16(&r), lo = wire_read_i16(&r), hi = wire_read_i16(&r);
        if (key == KAFKA_API_API_VERSIONS) {
            saw_api_versions = true;
            CHECK_EQ_INT(lo, 0);
            CHECK_EQ_INT(hi, 4);
        }
        if (key == KAFKA_API_END_TXN)
            CHECK_EQ_INT(hi, 4); /* v5 is marked unstable */
        saw_vote |= key == KAFKA_API_VOTE;
        saw_share_hb |= key == KAFKA_API_SHARE_GROUP_HEARTBEAT;
    }
    CHECK_EQ_INT(r.err, 0);
    CHECK(saw_api_versions);
    CHECK(!saw_vote);     /* controller only */
    CHECK(!saw_share_hb); /* only version is unstable */
    arena_reset(&a);

    /* a buffer too small fails cleanly */
    wire_writer_init(&w, buf, 10);
    CHECK_EQ_INT(proto_api_versions_write_unsupported(&w, 99, &a, NULL, NULL), WIRE_EOVERFLOW);
    arena_reset(&a);
}

int main(void) {
    UNIT_RUN(test_header_versions);
    UNIT_RUN(test_parse_v1);
    UNIT_RUN(test_parse_v2_tags_and_null_client);
    UNIT_RUN(test_parse_v0_controlled_shutdown);
    UNIT_RUN(test_unknown_key);
    UNIT_RUN(test_response_header_write);
    UNIT_RUN(test_supported);
    UNIT_RUN(test_unsupported_api_versions_answer);
    return UNIT_END("test_header");
}
