/*
 * test_golden.c - the protocol codec against bytes that real clients sent.
 *
 * tests/data/captures/ holds request frames recorded from kcat, confluent-kafka
 * (both librdkafka) and kafka-python by tests/data/capture/capture_broker.py
 * (see tests/data/README.md). For every file this test parses the request
 * header, looks the API up, decodes the body with the generated decoder at the
 * captured version, requires that every byte was consumed, then re-encodes
 * header and body and requires the exact bytes back. A dozen captures are also
 * checked field by field against what the capture scenarios sent.
 *
 * The capture list is read at run time (ctest runs tests from the repository
 * root); a missing or empty directory is a failure, not a skip. Captures are
 * matched by client, API and content rather than by sequence number, so a
 * regenerated capture set passes as long as the scenarios stay the same.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/gen/kafka_msgs.h"
#include "proto/header.h"
#include "proto/wire.h"
#include "unit.h"

#define CAPTURE_DIR       "tests/data/captures"
#define MAX_CAPTURES      512
#define MAX_NAME          128
#define MAX_CAPTURE_BYTES (1u << 20)
#define ARENA_LIMIT       (8u << 20)
#define N_RECORDS         50
#define MAX_UNCOMPRESSED  (4u << 20)
#define BATCH_DIR         "tests/data/batches"

typedef struct capture {
    char name[MAX_NAME];
    uint8_t *buf;
    size_t len;
} capture;

static capture g_caps[MAX_CAPTURES];
static int g_ncaps;

/* One capture decoded: header fields, the API and the request struct. */
typedef struct golden {
    const capture *cap;
    proto_request_header hdr;
    size_t body_off;
    const kafka_api_info *info;
    void *msg;
} golden;

static int cmp_capture(const void *a, const void *b) {
    return strcmp(((const capture *)a)->name, ((const capture *)b)->name);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Reads every *.bin file of CAPTURE_DIR into g_caps, sorted by name.
 * Returns the count, or -1 if the directory cannot be read. */
static int load_captures(void) {
    DIR *d = opendir(CAPTURE_DIR);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && g_ncaps < MAX_CAPTURES) {
        if (!ends_with(e->d_name, ".bin") || strlen(e->d_name) >= MAX_NAME)
            continue;
        size_t nlen = strlen(e->d_name);
        char path[sizeof CAPTURE_DIR + MAX_NAME];
        memcpy(path, CAPTURE_DIR "/", sizeof CAPTURE_DIR);
        memcpy(path + sizeof CAPTURE_DIR, e->d_name, nlen + 1);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        capture *c = &g_caps[g_ncaps];
        long size = -1;
        if (fseek(f, 0, SEEK_END) == 0)
            size = ftell(f);
        rewind(f);
        /* An empty or oversized file is kept with len 0 so that it fails loudly. */
        c->len = 0;
        c->buf = malloc(size > 0 && size <= (long)MAX_CAPTURE_BYTES ? (size_t)size : 1);
        if (c->buf && size > 0 && size <= (long)MAX_CAPTURE_BYTES)
            c->len = fread(c->buf, 1, (size_t)size, f);
        fclose(f);
        if (!c->buf)
            continue;
        memcpy(c->name, e->d_name, nlen + 1);
        g_ncaps++;
    }
    closedir(d);
    qsort(g_caps, (size_t)g_ncaps, sizeof g_caps[0], cmp_capture);
    return g_ncaps;
}

static bool is_client(const capture *c, const char *client) {
    size_t n = strlen(client);
    /* "kafka-python-..." must not match a client named "kafka". */
    return strncmp(c->name, client, n) == 0 && c->name[n] == '-' && c->name[n + 1] >= '0' &&
           c->name[n + 1] <= '9';
}

/* Parses the header and decodes the body; fills g. Reports why on failure. */
static bool golden_decode(const capture *c, arena *a, golden *g) {
    memset(g, 0, sizeof *g);
    g->cap = c;
    wire_reader r;
    wire_reader_init(&r, c->buf, c->len);
    int err = proto_request_header_parse(&r, &g->hdr);
    if (err != 0) {
        fprintf(stderr, "%s: header: %s\n", c->name, wire_strerror(err));
        return false;
    }
    g->body_off = c->len - wire_remaining(&r);
    g->info = g->hdr.api;
    if (!g->info || g->info != kafka_api_lookup(g->hdr.api_key)) {
        fprintf(stderr, "%s: unknown api key %d\n", c->name, g->hdr.api_key);
        return false;
    }
    g->msg = arena_alloc(a, g->info->request_struct_size);
    if (!g->msg)
        return false;
    err = g->info->request_decode(&r, g->hdr.api_version, a, g->msg);
    if (err != 0) {
        fprintf(stderr, "%s: body: %s\n", c->name, wire_strerror(err));
        return false;
    }
    if (wire_remaining(&r) != 0) {
        fprintf(stderr, "%s: %zu bytes left after the body\n", c->name, wire_remaining(&r));
        return false;
    }
    return true;
}

/* The n-th (0-based) capture of client with this API key and version (-1: any), decoded. */
static bool find_nth(const char *client, int16_t key, int version, int n, arena *a, golden *g) {
    for (int i = 0; i < g_ncaps; i++) {
        if (!is_client(&g_caps[i], client) || g_caps[i].len < 8)
            continue;
        if (wire_be16(g_caps[i].buf) != (uint16_t)key)
            continue;
        if (version >= 0 && wire_be16(g_caps[i].buf + 2) != (uint16_t)version)
            continue;
        if (n-- == 0)
            return golden_decode(&g_caps[i], a, g);
    }
    return false;
}

/* ---- every capture: decode, consume all, re-encode to the same bytes ---- */

static void test_captures_present(void) {
    REQUIRE(g_ncaps > 0);
    int kcat = 0, confluent = 0, kp = 0;
    for (int i = 0; i < g_ncaps; i++) {
        kcat += is_client(&g_caps[i], "kcat");
        confluent += is_client(&g_caps[i], "confluent");
        kp += is_client(&g_caps[i], "kafka-python");
    }
    CHECK(kcat > 0);
    CHECK(confluent > 0);
    CHECK(kp > 0);
    CHECK_EQ_INT(kcat + confluent + kp, g_ncaps);
}

/* The broker never writes request headers, so header.h has no writer; this one
 * follows the header versions header.h documents. Header tagged fields are
 * written as none: no captured client sends any (a capture that did would show
 * up here as a byte mismatch). */
static void write_request_header(wire_writer *w, const proto_request_header *h) {
    wire_write_i16(w, h->api_key);
    wire_write_i16(w, h->api_version);
    wire_write_i32(w, h->correlation_id);
    if (h->header_version >= 1)
        wire_write_string(w, h->client_id, false, true);
    if (h->header_version >= 2)
        wire_write_uvarint(w, 0);
}

static void roundtrip_one(const capture *c) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    bool ok = golden_decode(c, &a, &g);
    CHECK(ok);
    if (!ok)
        goto out;
    /* The file name carries the API name and version the capture broker saw. */
    char expect[MAX_NAME];
    snprintf(expect, sizeof expect, "-%s-v%d.bin", g.info->name, g.hdr.api_version);
    if (!ends_with(c->name, expect)) {
        fprintf(stderr, "%s: header says %s\n", c->name, expect);
        CHECK(ends_with(c->name, expect));
    }
    CHECK(proto_version_supported(g.hdr.api_key, g.hdr.api_version));
    CHECK_EQ_INT(g.hdr.header_version, proto_request_header_version(g.hdr.api_key, g.hdr.api_version));

    size_t body_len = c->len - g.body_off;
    CHECK_EQ_INT(g.info->request_size(g.hdr.api_version, g.msg), body_len);

    uint8_t *out = malloc(c->len + 64);
    REQUIRE(out);
    wire_writer w;
    wire_writer_init(&w, out, c->len + 64);
    write_request_header(&w, &g.hdr);
    CHECK_EQ_INT(w.err, WIRE_OK);
    CHECK_EQ_INT(w.len, g.body_off);
    int err = g.info->request_encode(&w, g.hdr.api_version, g.msg);
    CHECK_EQ_INT(err, 0);
    CHECK_EQ_INT(w.len, c->len);
    if (w.len == c->len && memcmp(out, c->buf, c->len) != 0) {
        size_t i = 0;
        while (out[i] == c->buf[i])
            i++;
        fprintf(stderr, "%s: re-encoded bytes differ from offset %zu\n", c->name, i);
        CHECK(!"re-encoding differs");
    }
    free(out);
out:
    arena_reset(&a);
}

static void test_roundtrip_all(void) {
    REQUIRE(g_ncaps > 0);
    for (int i = 0; i < g_ncaps; i++)
        roundtrip_one(&g_caps[i]);
}

/* ---- Produce: header of the records field ---- */

static const char *const CODECS[] = {"none", "gzip", "snappy", "lz4", "zstd"};

/* Index of the codec named at the end of a topic like "cf-gzip", or -1. */
static int codec_of_topic(kstr topic) {
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(CODECS[i]);
        if ((size_t)topic.len > n && topic.ptr[topic.len - (int32_t)n - 1] == '-' &&
            memcmp(topic.ptr + topic.len - n, CODECS[i], n) == 0)
            return i;
    }
    return -1;
}

/* A records field holding exactly one magic-2 batch with `count` records and this codec. */
static void check_single_batch(kbytes rec, int codec, int count) {
    REQUIRE(rec.len >= 61);
    const uint8_t *p = rec.ptr;
    CHECK_EQ_INT((int64_t)wire_be64(p), 0);                /* baseOffset: the broker assigns it */
    CHECK_EQ_INT((int32_t)wire_be32(p + 8) + 12, rec.len); /* batchLength */
    CHECK_EQ_INT(p[16], 2);                                /* magic */
    CHECK_EQ_INT(wire_be16(p + 21) & 7, codec);            /* attributes: codec bits */
    CHECK_EQ_INT((int32_t)wire_be32(p + 23), count - 1);   /* lastOffsetDelta */
    CHECK_EQ_INT((int32_t)wire_be32(p + 57), count);       /* recordCount */
}

/* Deep-validates a single-batch records field and walks its records: record i
 * has key "key-<i>", value "value-<i>-" + 100 'x', and, when the client could
 * send per-record headers, one header h=<i> on even i and none on odd i. */
static void check_records(const char *what, kbytes rec, bool with_headers) {
    REQUIRE(rec.len > 0);
    int err = batch_validate(rec.ptr, (size_t)rec.len, true, MAX_UNCOMPRESSED);
    if (err != BATCH_OK)
        fprintf(stderr, "%s: batch_validate: %s\n", what, batch_strerror(err));
    REQUIRE(err == BATCH_OK);
    arena a;
    arena_init(&a, ARENA_LIMIT);
    batch_iter it;
    err = batch_iter_init(&it, rec.ptr, (size_t)rec.len, &a);
    CHECK_EQ_INT(err, BATCH_OK);
    batch_record r;
    int i = 0;
    while (err == BATCH_OK && i <= N_RECORDS && batch_iter_next(&it, &r)) {
        char key[32], value[160];
        int kn = snprintf(key, sizeof key, "key-%d", i);
        int vn = snprintf(value, sizeof value, "value-%d-%.100s", i,
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        CHECK_EQ_INT(r.offset_delta, i);
        CHECK(r.key.len == kn && memcmp(r.key.ptr, key, (size_t)kn) == 0);
        CHECK(r.value.len == vn && memcmp(r.value.ptr, value, (size_t)vn) == 0);
        if (with_headers && i % 2 == 0) {
            CHECK_EQ_INT(r.header_count, 1);
            wire_reader hr;
            batch_record_headers(&r, &hr);
            kstr hk;
            kbytes hv;
            char hval[16];
            int hn = snprintf(hval, sizeof hval, "%d", i);
            CHECK(batch_record_next_header(&r, &hr, &hk, &hv));
            CHECK(kstr_eq_c(hk, "h"));
            CHECK(hv.len == hn && memcmp(hv.ptr, hval, (size_t)hn) == 0);
        } else {
            CHECK_EQ_INT(r.header_count, 0);
        }
        i++;
    }
    CHECK_EQ_INT(it.err, BATCH_OK);
    if (i != N_RECORDS)
        fprintf(stderr, "%s: %d records\n", what, i);
    CHECK_EQ_INT(i, N_RECORDS);
    arena_reset(&a);
}

/* Checks every Produce capture of a client whose topic starts with prefix;
 * returns a bit set of the acks values seen (bit 0: -1, bit 1: 0, bit 2: 1). */
static int check_produces(const char *client, const char *prefix, int *codecs_seen) {
    int acks_seen = 0;
    for (int i = 0;; i++) {
        arena a;
        arena_init(&a, ARENA_LIMIT);
        golden g;
        if (!find_nth(client, KAFKA_API_PRODUCE, -1, i, &a, &g)) {
            arena_reset(&a);
            break;
        }
        const kafka_produce_request *m = g.msg;
        CHECK_EQ_INT(m->transactional_id.len, -1);
        CHECK_EQ_INT(m->timeout_ms, 30000);
        acks_seen |= m->acks == -1 ? 1 : m->acks == 0 ? 2 : m->acks == 1 ? 4 : 8;
        CHECK_EQ_INT(m->topic_data_count, 1);
        if (m->topic_data_count == 1) {
            const kafka_produce_request_topic_produce_data *t = &m->topic_data[0];
            CHECK(t->name.len > (int32_t)strlen(prefix) && memcmp(t->name.ptr, prefix, strlen(prefix)) == 0);
            CHECK_EQ_INT(t->partition_data_count, 1);
            CHECK_EQ_INT(t->partition_data[0].index, 0);
            int codec = codec_of_topic(t->name);
            /* Topics not named after a codec (acks, idempotence runs) are uncompressed. */
            check_single_batch(t->partition_data[0].records, codec < 0 ? 0 : codec, N_RECORDS);
            /* kcat's -H puts one header on every record, so its runs carry none. */
            check_records(g.cap->name, t->partition_data[0].records, strcmp(client, "kcat") != 0);
            if (codec >= 0)
                *codecs_seen |= 1 << codec;
        }
        arena_reset(&a);
    }
    return acks_seen;
}

static void test_confluent_produce(void) {
    int codecs = 0;
    int acks = check_produces("confluent", "cf-", &codecs);
    CHECK_EQ_INT(acks, 1 | 2 | 4); /* acks=all, 0 and 1 were all captured */
    CHECK_EQ_INT(codecs, 0x1f);
}

static void test_kafka_python_produce(void) {
    int codecs = 0;
    int acks = check_produces("kafka-python", "kp-", &codecs);
    CHECK_EQ_INT(acks, 1 | 2 | 4);
    CHECK_EQ_INT(codecs, 0x1f);
}

static void test_kcat_produce(void) {
    int codecs = 0;
    int acks = check_produces("kcat", "kcat-", &codecs);
    CHECK_EQ_INT(acks, 1); /* kcat's default is acks=all */
    CHECK_EQ_INT(codecs, 0x1f);
}

/* The idempotent run: InitProducerId v4 (flexible, request header v2), then a
 * batch stamped with the producer id the capture broker handed out (4000). */
static void test_confluent_idempotent(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_INIT_PRODUCER_ID, 4, 0, &a, &g));
    const kafka_init_producer_id_request *m = g.msg;
    CHECK_EQ_INT(m->transactional_id.len, -1);
    CHECK_EQ_INT(m->transaction_timeout_ms, -1);
    CHECK_EQ_INT(m->producer_id, -1);
    CHECK_EQ_INT(m->producer_epoch, -1);
    CHECK(kstr_eq_c(g.hdr.client_id, "sluice-capture"));

    bool found = false;
    for (int i = 0; !found; i++) {
        golden p;
        if (!find_nth("confluent", KAFKA_API_PRODUCE, -1, i, &a, &p))
            break;
        const kafka_produce_request *pm = p.msg;
        if (pm->topic_data_count != 1 || !kstr_eq_c(pm->topic_data[0].name, "cf-idem"))
            continue;
        found = true;
        const uint8_t *b = pm->topic_data[0].partition_data[0].records.ptr;
        CHECK_EQ_INT((int64_t)wire_be64(b + 43), 4000); /* producerId */
        CHECK_EQ_INT((int16_t)wire_be16(b + 51), 0);    /* producerEpoch */
        CHECK_EQ_INT((int32_t)wire_be32(b + 53), 0);    /* baseSequence */
    }
    CHECK(found);
    arena_reset(&a);
}

/* ---- requests other than Produce ---- */

static void test_api_versions(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    /* kafka-python starts with ApiVersions v0: an empty body. */
    REQUIRE(find_nth("kafka-python", KAFKA_API_API_VERSIONS, 0, 0, &a, &g));
    CHECK_EQ_INT(g.body_off, g.cap->len);
    CHECK_EQ_INT(g.hdr.header_version, 1);
    CHECK(kstr_eq_c(g.hdr.client_id, "sluice-capture-kp"));
    /* librdkafka sends v3: flexible, so request header v2 and compact strings. */
    REQUIRE(find_nth("kcat", KAFKA_API_API_VERSIONS, 3, 0, &a, &g));
    const kafka_api_versions_request *m = g.msg;
    CHECK_EQ_INT(g.hdr.header_version, 2);
    CHECK(kstr_eq_c(g.hdr.client_id, "rdkafka"));
    CHECK(kstr_eq_c(m->client_software_name, "librdkafka"));
    CHECK(m->client_software_version.len > 0);
    CHECK_EQ_INT(g.hdr.correlation_id, 1);
    REQUIRE(find_nth("confluent", KAFKA_API_API_VERSIONS, 3, 0, &a, &g));
    m = g.msg;
    CHECK(kstr_eq_c(m->client_software_name, "confluent-kafka-python"));
    arena_reset(&a);
}

/* Does any Metadata request of the client list exactly this topic (NULL: ask for all topics)? */
static bool metadata_asks_for(const char *client, const char *topic) {
    bool hit = false;
    for (int i = 0; !hit; i++) {
        arena a;
        arena_init(&a, ARENA_LIMIT);
        golden g;
        if (!find_nth(client, KAFKA_API_METADATA, -1, i, &a, &g)) {
            arena_reset(&a);
            break;
        }
        const kafka_metadata_request *m = g.msg;
        if (!topic)
            hit = m->topics_count == -1;
        else
            hit = m->topics_count == 1 && kstr_eq_c(m->topics[0].name, topic);
        arena_reset(&a);
    }
    return hit;
}

static void test_metadata(void) {
    CHECK(metadata_asks_for("kcat", "kcat-meta")); /* kcat -L -t kcat-meta */
    CHECK(metadata_asks_for("kcat", NULL));        /* kcat -L */
    CHECK(metadata_asks_for("kafka-python", "kp-none"));
    CHECK(metadata_asks_for("kafka-python", NULL));
    CHECK(metadata_asks_for("confluent", "cf-none"));

    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("kcat", KAFKA_API_METADATA, 4, 0, &a, &g));
    /* kcat's first Metadata is the broker-only probe: empty, not null, topic list. */
    const kafka_metadata_request *m = g.msg;
    CHECK_EQ_INT(m->topics_count, 0);
    CHECK(!m->allow_auto_topic_creation);
    arena_reset(&a);
}

static void test_join_group(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_JOIN_GROUP, 5, 0, &a, &g));
    const kafka_join_group_request *m = g.msg;
    CHECK(kstr_eq_c(m->group_id, "cf-group"));
    CHECK(kstr_eq_c(m->protocol_type, "consumer"));
    CHECK_EQ_INT(m->member_id.len, 0); /* first join: no member id yet */
    CHECK_EQ_INT(m->group_instance_id.len, -1);
    CHECK_EQ_INT(m->session_timeout_ms, 6000);
    REQUIRE(m->protocols_count == 2);
    CHECK(kstr_eq_c(m->protocols[0].name, "range"));
    CHECK(kstr_eq_c(m->protocols[1].name, "roundrobin"));
    CHECK(m->protocols[0].metadata.len > 0);

    REQUIRE(find_nth("kafka-python", KAFKA_API_JOIN_GROUP, 2, 0, &a, &g));
    m = g.msg;
    CHECK(kstr_eq_c(m->group_id, "kp-group"));
    CHECK(kstr_eq_c(m->protocol_type, "consumer"));
    CHECK(m->protocols_count >= 1);
    arena_reset(&a);
}

static void test_sync_group_and_heartbeat(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_SYNC_GROUP, 3, 0, &a, &g));
    const kafka_sync_group_request *m = g.msg;
    CHECK(kstr_eq_c(m->group_id, "cf-group"));
    CHECK_EQ_INT(m->generation_id, 1);
    /* The capture broker made this member the leader, so it sends the assignment. */
    REQUIRE(m->assignments_count == 1);
    CHECK(kstr_eq(m->assignments[0].member_id, m->member_id));
    CHECK(m->assignments[0].assignment.len > 0);

    REQUIRE(find_nth("confluent", KAFKA_API_HEARTBEAT, -1, 0, &a, &g));
    const kafka_heartbeat_request *h = g.msg;
    CHECK(kstr_eq_c(h->group_id, "cf-group"));
    CHECK_EQ_INT(h->generation_id, 1);
    CHECK(h->member_id.len > 0);

    REQUIRE(find_nth("kafka-python", KAFKA_API_LEAVE_GROUP, 1, 0, &a, &g));
    const kafka_leave_group_request *l = g.msg;
    CHECK(kstr_eq_c(l->group_id, "kp-group"));
    CHECK(l->member_id.len > 0);
    arena_reset(&a);
}

static void test_find_coordinator(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_FIND_COORDINATOR, 2, 0, &a, &g));
    const kafka_find_coordinator_request *m = g.msg;
    CHECK(kstr_eq_c(m->key, "cf-group"));
    CHECK_EQ_INT(m->key_type, 0);
    REQUIRE(find_nth("kafka-python", KAFKA_API_FIND_COORDINATOR, 0, 0, &a, &g));
    m = g.msg;
    CHECK(kstr_eq_c(m->key, "kp-group"));
    arena_reset(&a);
}

static void test_offsets(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_OFFSET_FETCH, 7, 0, &a, &g));
    const kafka_offset_fetch_request *f = g.msg;
    CHECK(kstr_eq_c(f->group_id, "cf-group"));
    CHECK(f->require_stable);
    REQUIRE(f->topics_count == 1);
    CHECK(kstr_eq_c(f->topics[0].name, "cf-none"));
    REQUIRE(f->topics[0].partition_indexes_count == 1);
    CHECK_EQ_INT(f->topics[0].partition_indexes[0], 0);

    /* The consumer read all 50 records and committed the next offset. */
    REQUIRE(find_nth("confluent", KAFKA_API_OFFSET_COMMIT, 7, 0, &a, &g));
    const kafka_offset_commit_request *c = g.msg;
    CHECK(kstr_eq_c(c->group_id, "cf-group"));
    CHECK_EQ_INT(c->generation_id_or_member_epoch, 1);
    REQUIRE(c->topics_count == 1 && c->topics[0].partitions_count == 1);
    CHECK(kstr_eq_c(c->topics[0].name, "cf-none"));
    CHECK_EQ_INT(c->topics[0].partitions[0].committed_offset, N_RECORDS);

    REQUIRE(find_nth("kafka-python", KAFKA_API_OFFSET_COMMIT, 2, 0, &a, &g));
    c = g.msg;
    CHECK(kstr_eq_c(c->group_id, "kp-group"));
    CHECK_EQ_INT(c->retention_time_ms, -1);
    REQUIRE(c->topics_count == 1 && c->topics[0].partitions_count == 1);
    CHECK_EQ_INT(c->topics[0].partitions[0].committed_offset, N_RECORDS);

    /* No committed offset, so the consumers ask for the earliest one (-2). */
    REQUIRE(find_nth("confluent", KAFKA_API_LIST_OFFSETS, 2, 0, &a, &g));
    const kafka_list_offsets_request *l = g.msg;
    CHECK_EQ_INT(l->replica_id, -1);
    CHECK_EQ_INT(l->isolation_level, 1);
    REQUIRE(l->topics_count == 1 && l->topics[0].partitions_count == 1);
    CHECK_EQ_INT(l->topics[0].partitions[0].timestamp, -2);
    arena_reset(&a);
}

static void test_fetch(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_FETCH, 11, 0, &a, &g));
    const kafka_fetch_request *m = g.msg;
    CHECK_EQ_INT(m->replica_id, -1);
    CHECK_EQ_INT(m->isolation_level, 1); /* librdkafka reads committed by default */
    CHECK_EQ_INT(m->session_epoch, -1);
    CHECK_EQ_INT(m->rack_id.len, 0);
    REQUIRE(m->topics_count == 1 && m->topics[0].partitions_count == 1);
    CHECK(kstr_eq_c(m->topics[0].topic, "cf-none"));
    CHECK_EQ_INT(m->topics[0].partitions[0].partition, 0);
    CHECK_EQ_INT(m->topics[0].partitions[0].fetch_offset, 0);

    REQUIRE(find_nth("kafka-python", KAFKA_API_FETCH, 4, 0, &a, &g));
    m = g.msg;
    CHECK_EQ_INT(m->isolation_level, 0);
    REQUIRE(m->topics_count == 1 && m->topics[0].partitions_count == 1);
    CHECK(kstr_eq_c(m->topics[0].topic, "kp-none"));
    arena_reset(&a);
}

static void test_admin(void) {
    arena a;
    arena_init(&a, ARENA_LIMIT);
    golden g;
    REQUIRE(find_nth("confluent", KAFKA_API_CREATE_TOPICS, 4, 0, &a, &g));
    const kafka_create_topics_request *c = g.msg;
    REQUIRE(c->topics_count == 1);
    CHECK(kstr_eq_c(c->topics[0].name, "cf-admin"));
    CHECK_EQ_INT(c->topics[0].num_partitions, 3);
    CHECK_EQ_INT(c->topics[0].replication_factor, 1);
    CHECK_EQ_INT(c->topics[0].assignments_count, 0);
    CHECK(!c->validate_only);

    REQUIRE(find_nth("kafka-python", KAFKA_API_CREATE_TOPICS, 3, 0, &a, &g));
    c = g.msg;
    REQUIRE(c->topics_count == 1);
    CHECK(kstr_eq_c(c->topics[0].name, "kp-admin"));
    CHECK_EQ_INT(c->timeout_ms, 10000);

    REQUIRE(find_nth("confluent", KAFKA_API_DESCRIBE_CONFIGS, 1, 0, &a, &g));
    const kafka_describe_configs_request *d = g.msg;
    REQUIRE(d->resources_count == 1);
    CHECK_EQ_INT(d->resources[0].resource_type, 2); /* topic */
    CHECK(kstr_eq_c(d->resources[0].resource_name, "cf-admin"));
    CHECK_EQ_INT(d->resources[0].configuration_keys_count, -1); /* all keys */
    CHECK(d->include_synonyms);

    REQUIRE(find_nth("confluent", KAFKA_API_CREATE_PARTITIONS, 0, 0, &a, &g));
    const kafka_create_partitions_request *p = g.msg;
    REQUIRE(p->topics_count == 1);
    CHECK(kstr_eq_c(p->topics[0].name, "cf-admin"));
    CHECK_EQ_INT(p->topics[0].count, 5);
    CHECK_EQ_INT(p->topics[0].assignments_count, -1); /* let the broker place them */

    REQUIRE(find_nth("kafka-python", KAFKA_API_DESCRIBE_GROUPS, 3, 0, &a, &g));
    const kafka_describe_groups_request *dg = g.msg;
    REQUIRE(dg->groups_count == 1);
    CHECK(kstr_eq_c(dg->groups[0], "kp-group"));

    REQUIRE(find_nth("kafka-python", KAFKA_API_DELETE_GROUPS, 1, 0, &a, &g));
    const kafka_delete_groups_request *del = g.msg;
    REQUIRE(del->groups_names_count == 1);
    CHECK(kstr_eq_c(del->groups_names[0], "kp-group"));

    REQUIRE(find_nth("kafka-python", KAFKA_API_DELETE_TOPICS, 3, 0, &a, &g));
    const kafka_delete_topics_request *t = g.msg;
    REQUIRE(t->topic_names_count == 1);
    CHECK(kstr_eq_c(t->topic_names[0], "kp-admin"));
    arena_reset(&a);
}

/* The record batches extracted from the Produce captures (tests/data/batches). */
static void test_extracted_batches(void) {
    static const char *const producers[] = {"librdkafka", "kafka-python-wire"};
    for (int p = 0; p < 2; p++) {
        for (int c = 0; c < 5; c++) {
            char path[128];
            snprintf(path, sizeof path, "%s/%s-%s.bin", BATCH_DIR, producers[p], CODECS[c]);
            FILE *f = fopen(path, "rb");
            if (!f)
                fprintf(stderr, "missing %s\n", path);
            CHECK(f != NULL);
            if (!f)
                continue;
            uint8_t *buf = malloc(MAX_CAPTURE_BYTES);
            REQUIRE(buf);
            size_t n = fread(buf, 1, MAX_CAPTURE_BYTES, f);
            fclose(f);
            kbytes rec = {buf, (int32_t)n};
            check_single_batch(rec, c, N_RECORDS);
            check_records(path, rec, true);
            free(buf);
        }
    }
}

int main(void) {
    if (load_captures() < 0)
        fprintf(stderr, "cannot open %s (run from the repository root)\n", CAPTURE_DIR);
    UNIT_RUN(test_captures_present);
    UNIT_RUN(test_roundtrip_all);
    UNIT_RUN(test_api_versions);
    UNIT_RUN(test_metadata);
    UNIT_RUN(test_confluent_produce);
    UNIT_RUN(test_kafka_python_produce);
    UNIT_RUN(test_kcat_produce);
    UNIT_RUN(test_confluent_idempotent);
    UNIT_RUN(test_extracted_batches);
    UNIT_RUN(test_join_group);
    UNIT_RUN(test_sync_group_and_heartbeat);
    UNIT_RUN(test_find_coordinator);
    UNIT_RUN(test_offsets);
    UNIT_RUN(test_fetch);
    UNIT_RUN(test_admin);
    for (int i = 0; i < g_ncaps; i++)
        free(g_caps[i].buf);
    return UNIT_END("test_golden");
}
