/*
 * test_proto_roundtrip.c - exercises every generated Kafka message codec.
 *
 * For every API, request and response, at every valid version, a seeded
 * pseudo-random message (tests/unit/gen/roundtrip_fill.c, generated with the
 * codecs) is encoded; size() must equal the bytes written; the bytes must
 * decode, consume the whole input and re-encode to identical bytes; and every
 * truncation of them (or a sample, for long messages) must fail to decode.
 * Because a generator can be consistently wrong in both directions, a few
 * messages are also checked against bytes written out by hand from the spec.
 */
#include "unit.h"

#include <stdint.h>

#include "core/arena.h"
#include "proto/gen/kafka_msgs.h"
#include "proto/gen/kafka_records.h"

/* ---- fill primitives used by the generated fillers --------------------- */

typedef struct fill_ctx {
    uint64_t state;
    arena *a;
} fill_ctx;

static uint64_t fill_u64(fill_ctx *c) {
    /* splitmix64: good enough spread for test data, trivially seedable. */
    uint64_t z = (c->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static bool fill_coin(fill_ctx *c) { return (fill_u64(c) & 1) != 0; }

static void *fill_alloc(fill_ctx *c, size_t n) {
    void *p = arena_alloc(c->a, n);
    if (p == NULL) {
        fprintf(stderr, "fill arena exhausted\n");
        abort();
    }
    return p;
}

static kstr fill_str(fill_ctx *c, bool nullable) {
    if (nullable && fill_u64(c) % 5 == 0)
        return KSTR_NULL;
    int32_t len = (int32_t)(fill_u64(c) % 7);
    if (len == 0)
        return (kstr){"", 0};
    char *p = fill_alloc(c, (size_t)len);
    for (int32_t i = 0; i < len; i++)
        p[i] = (char)('a' + fill_u64(c) % 26);
    return (kstr){p, len};
}

static kbytes fill_bytes(fill_ctx *c, bool nullable) {
    if (nullable && fill_u64(c) % 5 == 0)
        return KBYTES_NULL;
    int32_t len = (int32_t)(fill_u64(c) % 9);
    if (len == 0)
        return (kbytes){(const uint8_t *)"", 0};
    uint8_t *p = fill_alloc(c, (size_t)len);
    for (int32_t i = 0; i < len; i++)
        p[i] = (uint8_t)fill_u64(c);
    return (kbytes){p, len};
}

static int32_t fill_count(fill_ctx *c, bool nullable) {
    if (nullable && fill_u64(c) % 6 == 0)
        return -1;
    return (int32_t)(fill_u64(c) % 4);
}

static kuuid fill_uuid(fill_ctx *c) {
    kuuid u;
    uint64_t a = fill_u64(c), b = fill_u64(c);
    memcpy(u.b, &a, 8);
    memcpy(u.b + 8, &b, 8);
    return u;
}

typedef struct fill_entry {
    int16_t key;
    void (*request)(fill_ctx *c, int16_t version, void *m);
    void (*response)(fill_ctx *c, int16_t version, void *m);
} fill_entry;

#include "gen/roundtrip_fill.c"
#include "gen/records_fill.c"

/* ---- the roundtrip sweep ----------------------------------------------- */

#define SEEDS_PER_VERSION 16
#define TRUNC_FULL_LIMIT  256 /* messages up to this size are truncated at every length */

static long combos_tested, messages_tested, truncations_tested, bytes_tested;

/* One codec, type-erased: what a sweep needs of a message or a record. */
typedef struct codec_view {
    const char *name; /* "FetchRequest", "TopicRecord" */
    size_t struct_size;
    void (*fill)(fill_ctx *c, int16_t version, void *m);
    int (*encode)(wire_writer *w, int16_t version, const void *m);
    int (*decode)(wire_reader *r, int16_t version, arena *a, void *out);
    size_t (*size)(int16_t version, const void *m);
} codec_view;

static void report(const codec_view *cv, int16_t v, int seed, const char *what) {
    fprintf(stderr, "%s v%d seed %d: %s\n", cv->name, v, seed, what);
    unit_cur_failed = 1;
}

/* Fills a message from `seed`, encodes, decodes, re-encodes and truncates
 * it. Returns false (after reporting) if any check failed. */
static bool roundtrip_codec(const codec_view *cv, int16_t v, int seed, uint64_t seed_base) {
    bool ok = false;
    uint8_t *buf = NULL, *buf2 = NULL;
    void *m = NULL, *m2 = NULL;
    arena fa, da;
    arena_init(&fa, 1u << 22);
    arena_init(&da, 1u << 22);
    if (cv->fill == NULL) {
        report(cv, v, seed, "no filler");
        goto out;
    }

    fill_ctx c = {seed_base ^ ((uint64_t)v << 24) ^ ((uint64_t)seed << 8), &fa};
    m = calloc(1, cv->struct_size);
    m2 = calloc(1, cv->struct_size);
    REQUIRE(m && m2);
    cv->fill(&c, v, m);

    size_t n = cv->size(v, m);
    bytes_tested += (long)n;
    buf = malloc(n + 1);
    buf2 = malloc(n + 1);
    REQUIRE(buf && buf2);
    wire_writer w;
    wire_writer_init(&w, buf, n);
    int rc = cv->encode(&w, v, m);
    if (rc != WIRE_OK) {
        report(cv, v, seed, wire_strerror(rc));
        goto out;
    }
    if (w.len != n) {
        report(cv, v, seed, "size() differs from bytes written");
        goto out;
    }

    wire_reader r;
    wire_reader_init(&r, buf, n);
    rc = cv->decode(&r, v, &da, m2);
    if (rc != WIRE_OK || wire_remaining(&r) != 0) {
        report(cv, v, seed, rc ? wire_strerror(rc) : "decode left bytes");
        goto out;
    }
    if (cv->size(v, m2) != n) {
        report(cv, v, seed, "size() of decoded message differs");
        goto out;
    }
    wire_writer_init(&w, buf2, n);
    rc = cv->encode(&w, v, m2);
    if (rc != WIRE_OK || w.len != n || memcmp(buf, buf2, n) != 0) {
        report(cv, v, seed, "re-encoding differs");
        goto out;
    }

    /* Every strict prefix must fail. Each prefix is copied to an exact-size
     * heap block so AddressSanitizer would catch a single-byte over-read. */
    size_t step = n <= TRUNC_FULL_LIMIT ? 1 : n / 97 + 1;
    for (size_t len = 0; len < n; len += step) {
        uint8_t *p = malloc(len ? len : 1);
        REQUIRE(p);
        memcpy(p, buf, len);
        arena_reset(&da);
        wire_reader_init(&r, p, len);
        rc = cv->decode(&r, v, &da, m2);
        free(p);
        truncations_tested++;
        if (rc == WIRE_OK) {
            report(cv, v, seed, "truncated input decoded");
            goto out;
        }
    }
    ok = true;
out:
    free(buf);
    free(buf2);
    free(m);
    free(m2);
    arena_reset(&fa);
    arena_reset(&da);
    return ok;
}

static bool roundtrip_one(const kafka_api_info *api, bool req, int16_t v, int seed) {
    char name[96];
    snprintf(name, sizeof name, "%s%s", api->name, req ? "Request" : "Response");
    codec_view cv = {name,
                     req ? api->request_struct_size : api->response_struct_size,
                     NULL,
                     req ? api->request_encode : api->response_encode,
                     req ? api->request_decode : api->response_decode,
                     req ? api->request_size : api->response_size};
    for (size_t i = 0; i < sizeof fill_table / sizeof fill_table[0]; i++)
        if (fill_table[i].key == api->key)
            cv.fill = req ? fill_table[i].request : fill_table[i].response;
    return roundtrip_codec(&cv, v, seed, ((uint64_t)api->key << 40) ^ req);
}

static void test_roundtrip_all(void) {
    int apis = 0;
    for (int key = 0; key <= KAFKA_API_MAX_KEY; key++) {
        const kafka_api_info *api = kafka_api_lookup((int16_t)key);
        if (api == NULL)
            continue;
        apis++;
        for (int req = 1; req >= 0; req--) {
            messages_tested++;
            for (int v = api->min_version; v <= api->max_version; v++) {
                combos_tested++;
                for (int seed = 0; seed < SEEDS_PER_VERSION; seed++)
                    if (!roundtrip_one(api, req, (int16_t)v, seed))
                        break;
            }
        }
    }
    CHECK_EQ_INT(apis, (int)(sizeof fill_table / sizeof fill_table[0]));
    printf("roundtrip: %d APIs, %ld messages, %ld message x version combos, %d seeds each, %ld truncations, "
           "%ld bytes\n",
           apis, messages_tested, combos_tested, SEEDS_PER_VERSION, truncations_tested, bytes_tested);
}

/* Every internal record schema (metadata, Raft, coordinators) at every
 * version, as for the messages. */
static void test_records_roundtrip_all(void) {
    CHECK_EQ_INT(kafka_records_count, (int)(sizeof record_fill_table / sizeof record_fill_table[0]));
    long combos = 0;
    for (int i = 0; i < kafka_records_count; i++) {
        const kafka_record_info *ri = &kafka_records[i];
        codec_view cv = {ri->name, ri->struct_size, record_fill_table[i], ri->encode, ri->decode, ri->size};
        for (int v = ri->min_version; v <= ri->max_version; v++) {
            combos++;
            for (int seed = 0; seed < SEEDS_PER_VERSION; seed++)
                if (!roundtrip_codec(&cv, (int16_t)v, seed, (uint64_t)(i + 1) << 44))
                    break;
        }
    }
    printf("roundtrip: %d record schemas, %ld record x version combos\n", kafka_records_count, combos);
}

/* The metadata record table is indexed by the frame's record type. */
static void test_metadata_record_table(void) {
    const kafka_record_info *t = kafka_metadata_record_lookup(KAFKA_MREC_TOPIC);
    REQUIRE(t != NULL);
    CHECK(strcmp(t->name, "TopicRecord") == 0);
    CHECK_EQ_INT(t->type, 2);
    CHECK_EQ_INT(t->flexible_min, 0);
    const kafka_record_info *p = kafka_metadata_record_lookup(KAFKA_MREC_PARTITION);
    REQUIRE(p != NULL);
    CHECK(strcmp(p->name, "PartitionRecord") == 0);
    CHECK_EQ_INT(p->max_version, 2);
    CHECK(kafka_metadata_record_lookup(6) == NULL); /* unused type number */
    CHECK(kafka_metadata_record_lookup(-1) == NULL);
    CHECK(kafka_metadata_record_lookup(KAFKA_MREC_MAX_TYPE + 1) == NULL);

    /* TopicRecord v0 by hand: compact string "t1", uuid, empty tag section. */
    kafka_topic_record tr;
    kafka_topic_record_init(&tr);
    tr.name = kstr_c("t1");
    for (int i = 0; i < 16; i++)
        tr.topic_id.b[i] = (uint8_t)(i + 1);
    uint8_t buf[64];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    CHECK_EQ_INT(kafka_topic_record_encode(&w, 0, &tr), 0);
    static const uint8_t want[] = {0x03, 't', '1', 1,  2,  3,  4,  5,  6,  7,
                                   8,    9,   10,  11, 12, 13, 14, 15, 16, 0x00};
    CHECK_EQ_INT(w.len, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);
}

/* ---- hand-written bytes from the protocol spec ------------------------- */

static size_t encode_req(int16_t key, int16_t v, const void *m, uint8_t *buf, size_t cap, int *rc) {
    const kafka_api_info *api = kafka_api_lookup(key);
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    *rc = api->request_encode(&w, v, m);
    return w.len;
}

static void test_api_versions_request_v3_bytes(void) {
    kafka_api_versions_request m;
    kafka_api_versions_request_init(&m);
    m.client_software_name = kstr_c("sluice");
    m.client_software_version = kstr_c("0.1");
    /* compact strings: uvarint(len + 1) then bytes; then an empty tag section */
    static const uint8_t want[] = {0x07, 's', 'l', 'u', 'i', 'c', 'e', 0x04, '0', '.', '1', 0x00};
    uint8_t buf[64];
    int rc;
    size_t n = encode_req(KAFKA_API_API_VERSIONS, 3, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);
    CHECK_EQ_INT(kafka_api_versions_request_size(3, &m), sizeof want);

    /* v0-v2 have no fields; the strings are ignorable so they are dropped. */
    n = encode_req(KAFKA_API_API_VERSIONS, 2, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, 0);

    /* Decoding skips an unknown tag (tag 9, 2 bytes) but not a short one. */
    static const uint8_t tagged[] = {0x01, 0x01, 0x01, 0x09, 0x02, 0xab, 0xcd};
    arena a;
    arena_init(&a, 4096);
    wire_reader r;
    wire_reader_init(&r, tagged, sizeof tagged);
    CHECK_EQ_INT(kafka_api_versions_request_decode(&r, 3, &a, &m), 0);
    CHECK_EQ_INT(m.client_software_name.len, 0);
    CHECK_EQ_INT(wire_remaining(&r), 0);
    wire_reader_init(&r, tagged, sizeof tagged - 1);
    CHECK(kafka_api_versions_request_decode(&r, 3, &a, &m) != 0);
    arena_reset(&a);
}

static void test_metadata_request_v1_bytes(void) {
    kafka_metadata_request m;
    kafka_metadata_request_init(&m);
    kafka_metadata_request_metadata_request_topic topics[2];
    kafka_metadata_request_metadata_request_topic_init(&topics[0]);
    kafka_metadata_request_metadata_request_topic_init(&topics[1]);
    topics[0].name = kstr_c("ab");
    topics[1].name = kstr_c("xyz");
    m.topics = topics;
    m.topics_count = 2;
    /* int32 count, then int16-length strings */
    static const uint8_t want[] = {0, 0, 0, 2, 0, 2, 'a', 'b', 0, 3, 'x', 'y', 'z'};
    uint8_t buf[64];
    int rc;
    size_t n = encode_req(KAFKA_API_METADATA, 1, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);

    arena a;
    arena_init(&a, 4096);
    kafka_metadata_request d;
    wire_reader r;
    wire_reader_init(&r, want, sizeof want);
    CHECK_EQ_INT(kafka_metadata_request_decode(&r, 1, &a, &d), 0);
    REQUIRE(d.topics_count == 2);
    CHECK(kstr_eq_c(d.topics[1].name, "xyz"));
    CHECK(d.allow_auto_topic_creation); /* absent before v4: schema default true */

    /* A null topic array ("all topics") exists from v1; in v0 it is invalid. */
    m.topics = NULL;
    m.topics_count = -1;
    n = encode_req(KAFKA_API_METADATA, 1, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, 4);
    CHECK(memcmp(buf, "\xff\xff\xff\xff", 4) == 0);
    encode_req(KAFKA_API_METADATA, 0, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, WIRE_EINVAL);
    arena_reset(&a);
}

static void test_ignorable_rule(void) {
    kafka_metadata_request m;
    kafka_metadata_request_init(&m);
    m.topics_count = 0;
    uint8_t buf[64];
    int rc;
    /* allow_auto_topic_creation (v4+, default true) is not ignorable. */
    m.allow_auto_topic_creation = false;
    encode_req(KAFKA_API_METADATA, 3, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, WIRE_EVERSION);
    encode_req(KAFKA_API_METADATA, 4, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    m.allow_auto_topic_creation = true;
    /* include_cluster_authorized_operations exists only in v8-10. */
    m.include_cluster_authorized_operations = true;
    encode_req(KAFKA_API_METADATA, 11, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, WIRE_EVERSION);
    encode_req(KAFKA_API_METADATA, 10, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    m.include_cluster_authorized_operations = false;
    /* topic_id (v10+) is ignorable: silently dropped at v9. */
    kafka_metadata_request_metadata_request_topic t;
    kafka_metadata_request_metadata_request_topic_init(&t);
    t.name = kstr_c("t");
    t.topic_id.b[0] = 1;
    m.topics = &t;
    m.topics_count = 1;
    encode_req(KAFKA_API_METADATA, 9, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    /* out-of-range versions */
    encode_req(KAFKA_API_METADATA, 13, &m, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, WIRE_EVERSION);
}

static void test_api_versions_response_v3_bytes(void) {
    kafka_api_versions_response m;
    kafka_api_versions_response_init(&m);
    kafka_api_versions_response_api_version k;
    kafka_api_versions_response_api_version_init(&k);
    k.api_key = 18;
    k.min_version = 0;
    k.max_version = 4;
    m.api_keys = &k;
    m.api_keys_count = 1;
    m.throttle_time_ms = 5;
    m.zk_migration_ready = true; /* tag 3, one byte */
    static const uint8_t want[] = {
        0x00, 0x00,                                     /* error_code */
        0x02, 0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00, /* compact array of one, element tags */
        0x00, 0x00, 0x00, 0x05,                         /* throttle_time_ms */
        0x01, 0x03, 0x01, 0x01,                         /* one tagged field: tag 3, size 1, true */
    };
    const kafka_api_info *api = kafka_api_lookup(KAFKA_API_API_VERSIONS);
    uint8_t buf[64];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    CHECK_EQ_INT(api->response_encode(&w, 3, &m), 0);
    CHECK_EQ_INT(w.len, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);

    /* v0: int32 array count, no throttle time, no tags; the tagged bool is ignorable. */
    static const uint8_t want0[] = {0, 0, 0, 0, 0, 1, 0, 18, 0, 0, 0, 4};
    m.throttle_time_ms = 0;
    wire_writer_init(&w, buf, sizeof buf);
    CHECK_EQ_INT(api->response_encode(&w, 0, &m), 0);
    CHECK_EQ_INT(w.len, sizeof want0);
    CHECK(memcmp(buf, want0, sizeof want0) == 0);
}

static void test_tagged_struct_and_nullable_struct(void) {
    /* Fetch v15: replica_state is tagged (tag 1) and written only when not default. */
    kafka_fetch_request f;
    kafka_fetch_request_init(&f);
    CHECK_EQ_INT(f.replica_id, -1);
    CHECK_EQ_INT(f.max_bytes, 0x7fffffff);
    CHECK_EQ_INT(f.cluster_id.len, -1);
    uint8_t buf[128];
    int rc;
    size_t base = encode_req(KAFKA_API_FETCH, 15, &f, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(buf[base - 1], 0); /* the top-level tag section comes last: empty */
    f.replica_state.replica_id = 1;
    size_t with = encode_req(KAFKA_API_FETCH, 15, &f, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    /* count 1, tag 1, size 13 (int32 + int64 + empty tags), 00000001, ff..ff, 00 */
    static const uint8_t want[] = {0x01, 0x01, 0x0d, 0,    0,    0,    1,    0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    CHECK_EQ_INT(with, base + sizeof want - 1);
    CHECK(memcmp(buf + with - sizeof want, want, sizeof want) == 0);

    /* DescribeTopicPartitions v0: a null cursor is the single byte -1. */
    kafka_describe_topic_partitions_request d;
    kafka_describe_topic_partitions_request_init(&d);
    static const uint8_t want_d[] = {0x01, 0x00, 0x00, 0x07, 0xd0, 0xff, 0x00};
    size_t n = encode_req(KAFKA_API_DESCRIBE_TOPIC_PARTITIONS, 0, &d, buf, sizeof buf, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, sizeof want_d);
    CHECK(memcmp(buf, want_d, sizeof want_d) == 0);
}

static void test_errors_and_table(void) {
    CHECK_EQ_INT(KAFKA_ERR_UNSUPPORTED_VERSION, 35);
    CHECK_EQ_INT(KAFKA_ERR_CORRUPT_MESSAGE, 2);
    CHECK(strcmp(kafka_error_name(35), "UNSUPPORTED_VERSION") == 0);
    CHECK(strcmp(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR") == 0);
    CHECK(kafka_error_name(10000) == NULL);
    CHECK(kafka_api_lookup(4) == NULL); /* LeaderAndIsr: ZooKeeper only */
    CHECK(kafka_api_lookup(-1) == NULL);
    CHECK(kafka_api_lookup(KAFKA_API_MAX_KEY + 1) == NULL);
    const kafka_api_info *p = kafka_api_lookup(KAFKA_API_PRODUCE);
    REQUIRE(p != NULL);
    CHECK(strcmp(p->name, "Produce") == 0);
    CHECK_EQ_INT(p->flexible_min, 9);
    CHECK(p->broker && !p->controller);
    const kafka_api_info *s = kafka_api_lookup(KAFKA_API_SASL_HANDSHAKE);
    REQUIRE(s != NULL);
    CHECK_EQ_INT(s->flexible_min, -1);
}

int main(void) {
    UNIT_RUN(test_api_versions_request_v3_bytes);
    UNIT_RUN(test_metadata_request_v1_bytes);
    UNIT_RUN(test_ignorable_rule);
    UNIT_RUN(test_api_versions_response_v3_bytes);
    UNIT_RUN(test_tagged_struct_and_nullable_struct);
    UNIT_RUN(test_errors_and_table);
    UNIT_RUN(test_roundtrip_all);
    UNIT_RUN(test_records_roundtrip_all);
    UNIT_RUN(test_metadata_record_table);
    return UNIT_END("test_proto_roundtrip");
}
