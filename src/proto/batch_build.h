/*
 * batch_build.h - encoding records into a magic-2 record batch.
 *
 * The broker itself never re-encodes a batch it receives (batch.h); this
 * builder is for everything that has to make one from records: tests,
 * benchmarks, tools, transaction markers, and converting legacy message sets
 * for old clients. The output is a complete batch with a valid CRC.
 *
 * Memory for the batch (and, with a codec, the uncompressed scratch) comes
 * from the caller's arena.
 */
#ifndef SLUICE_PROTO_BATCH_BUILD_H
#define SLUICE_PROTO_BATCH_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/wire.h"

typedef struct batch_build_header {
    kstr key; /* never null */
    kbytes value;
} batch_build_header;

typedef struct batch_build_record {
    kbytes key;   /* len -1 = null */
    kbytes value; /* len -1 = null */
    int64_t timestamp;
    int32_t offset_delta; /* used only with batch_build_opts.explicit_deltas */
    const batch_build_header *headers;
    int32_t header_count;
} batch_build_record;

typedef struct batch_build_opts {
    int64_t base_offset;
    int32_t leader_epoch;
    int codec;                /* batch_codec */
    int16_t extra_attributes; /* OR-ed in: BATCH_ATTR_TRANSACTIONAL, _CONTROL, _LOG_APPEND_TIME */
    int64_t producer_id;      /* -1 when not idempotent */
    int16_t producer_epoch;   /* -1 when not idempotent */
    int32_t base_sequence;    /* -1 when not idempotent */
    /* Offset deltas are the record indexes unless this is set, in which case
     * each record's offset_delta is used (they must strictly increase). */
    bool explicit_deltas;
    /* lastOffsetDelta when >= 0; otherwise the last record's delta. */
    int32_t last_offset_delta;
    /* With BATCH_ATTR_LOG_APPEND_TIME: the maxTimestamp to record. */
    int64_t log_append_time;
    /* With BATCH_ATTR_DELETE_HORIZON (the log cleaner): baseTimestamp holds
     * the delete horizon instead of the first record's timestamp, and the
     * records' timestamp deltas are taken from it. */
    int64_t delete_horizon_ms;
} batch_build_opts;

/* Options for a plain, non-idempotent batch at offset 0 without a codec. */
batch_build_opts batch_build_defaults(void);

/* Encodes n records into a batch allocated from a. On success *out and
 * *out_len hold the batch. baseTimestamp is the first record's timestamp and
 * maxTimestamp the largest. Returns a batch_err: BATCH_ENOMEM when the arena
 * runs out, BATCH_ECODEC for an unknown codec, BATCH_EMALFORMED for bad
 * arguments (n < 0, deltas not increasing, a null header key). n may be 0. */
int batch_build(const batch_build_opts *o, const batch_build_record *recs, int32_t n, arena *a, uint8_t **out,
                size_t *out_len);

#endif
