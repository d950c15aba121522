/*
 * bench_proto.c - throughput of the generated codec on a large Produce request.
 *
 * Builds a Produce request carrying 1 MiB of record bytes spread over 16
 * partitions of one topic, at the latest version and at v3, then repeatedly
 * decodes and re-encodes it for a bounded time and compares the rate with
 * plain memcpy of the same number of bytes. Records are opaque to the codec
 * (decode points at them, encode copies them), so the ratio shows the cost of
 * the framing around the payload. Run time is bounded to ~2 s in total.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "proto/gen/kafka_msgs.h"

#define PARTITIONS        16
#define RECORD_BYTES      (1u << 20)
#define SECONDS_PER_PHASE 0.5
#define MAX_ITERATIONS    100000

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint8_t sink;

static int bench_version(int16_t version, uint8_t *records) {
    kafka_produce_request_partition_produce_data parts[PARTITIONS];
    kafka_produce_request_topic_produce_data topic;
    kafka_produce_request req;
    kafka_produce_request_init(&req);
    kafka_produce_request_topic_produce_data_init(&topic);
    req.acks = -1;
    req.timeout_ms = 30000;
    topic.name = kstr_c("bench-topic");
    topic.partition_data = parts;
    topic.partition_data_count = PARTITIONS;
    for (int i = 0; i < PARTITIONS; i++) {
        kafka_produce_request_partition_produce_data_init(&parts[i]);
        parts[i].index = i;
        parts[i].records =
            (kbytes){records + (size_t)i * (RECORD_BYTES / PARTITIONS), RECORD_BYTES / PARTITIONS};
    }
    req.topic_data = &topic;
    req.topic_data_count = 1;

    size_t n = kafka_produce_request_size(version, &req);
    uint8_t *wire = malloc(n), *out = malloc(n), *copy = malloc(n);
    if (!wire || !out || !copy)
        return 1;
    wire_writer w;
    wire_writer_init(&w, wire, n);
    if (kafka_produce_request_encode(&w, version, &req) != WIRE_OK || w.len != n)
        return 1;

    arena a;
    arena_init(&a, 1u << 20);
    kafka_produce_request dec;
    long iters = 0;
    double t0 = now(), t1 = t0;
    while (iters < MAX_ITERATIONS && t1 - t0 < SECONDS_PER_PHASE) {
        wire_reader r;
        wire_reader_init(&r, wire, n);
        if (kafka_produce_request_decode(&r, version, &a, &dec) != WIRE_OK)
            return 1;
        wire_writer_init(&w, out, n);
        if (kafka_produce_request_encode(&w, version, &dec) != WIRE_OK || w.len != n)
            return 1;
        arena_reset(&a);
        iters++;
        t1 = now();
    }
    sink = out[n / 2];
    double codec_mbs = (double)n * (double)iters / (t1 - t0) / 1e6;

    long citers = 0;
    t0 = now();
    t1 = t0;
    while (citers < MAX_ITERATIONS && t1 - t0 < SECONDS_PER_PHASE) {
        memcpy(copy, wire, n);
        sink = copy[citers % n];
        citers++;
        t1 = now();
    }
    double copy_mbs = (double)n * (double)citers / (t1 - t0) / 1e6;
    if (memcmp(out, wire, n) != 0)
        return 1;

    printf("produce v%-2d %zu bytes: decode+encode %8.1f MB/s (%ld iters), memcpy %8.1f MB/s (%ld iters), "
           "ratio %.2f\n",
           version, n, codec_mbs, iters, copy_mbs, citers, codec_mbs / copy_mbs);
    free(wire);
    free(out);
    free(copy);
    return 0;
}

int main(void) {
    uint8_t *records = malloc(RECORD_BYTES);
    if (records == NULL)
        return 1;
    uint64_t x = 0x243f6a8885a308d3ULL;
    for (size_t i = 0; i < RECORD_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        records[i] = (uint8_t)x;
    }
    const kafka_api_info *api = kafka_api_lookup(KAFKA_API_PRODUCE);
    int rc = bench_version(api->max_version, records) || bench_version(3, records);
    free(records);
    if (rc)
        fprintf(stderr, "bench_proto: codec failure\n");
    return rc;
}
