/*
 * batch.h - Kafka magic-2 record batches: header parsing and validation,
 * in-place offset assignment, and record iteration.
 *
 * A batch is kept as the bytes that arrived; nothing here re-encodes one.
 * The broker validates a batch, patches baseOffset and partitionLeaderEpoch
 * (neither is covered by the CRC), and stores the same bytes.
 *
 * Layout (all big-endian), offsets from the start of the batch:
 *    0 baseOffset int64        8 batchLength int32     12 partitionLeaderEpoch int32
 *   16 magic int8             17 crc uint32            21 attributes int16
 *   23 lastOffsetDelta int32  27 baseTimestamp int64   35 maxTimestamp int64
 *   43 producerId int64       51 producerEpoch int16   53 baseSequence int32
 *   57 recordCount int32      61 records...
 * batchLength counts the bytes after itself, so a batch is batchLength + 12
 * bytes long. The CRC covers bytes 21 .. end.
 */
#ifndef SLUICE_PROTO_BATCH_H
#define SLUICE_PROTO_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/wire.h"

#define BATCH_HEADER_SIZE  61
#define BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define BATCH_MAGIC        2

#define BATCH_OFF_BASE_OFFSET       0
#define BATCH_OFF_LENGTH            8
#define BATCH_OFF_LEADER_EPOCH      12
#define BATCH_OFF_MAGIC             16
#define BATCH_OFF_CRC               17
#define BATCH_OFF_ATTRIBUTES        21
#define BATCH_OFF_LAST_OFFSET_DELTA 23
#define BATCH_OFF_BASE_TIMESTAMP    27
#define BATCH_OFF_MAX_TIMESTAMP     35
#define BATCH_OFF_PRODUCER_ID       43
#define BATCH_OFF_PRODUCER_EPOCH    51
#define BATCH_OFF_BASE_SEQUENCE     53
#define BATCH_OFF_RECORD_COUNT      57

/* attributes */
#define BATCH_ATTR_CODEC_MASK      0x07
#define BATCH_ATTR_LOG_APPEND_TIME 0x08
#define BATCH_ATTR_TRANSACTIONAL   0x10
#define BATCH_ATTR_CONTROL         0x20
#define BATCH_ATTR_DELETE_HORIZON  0x40

typedef enum batch_codec {
    BATCH_CODEC_NONE = 0,
    BATCH_CODEC_GZIP = 1,
    BATCH_CODEC_SNAPPY = 2,
    BATCH_CODEC_LZ4 = 3,
    BATCH_CODEC_ZSTD = 4,
} batch_codec;

/* Why a batch was rejected. Callers map these to Kafka error codes:
 * BATCH_ECRC / BATCH_ETRUNC / BATCH_EMALFORMED / BATCH_ECOMPRESSED -> CORRUPT_MESSAGE (2),
 * BATCH_EMAGIC -> UNSUPPORTED_FOR_MESSAGE_FORMAT (43) or CORRUPT_MESSAGE,
 * BATCH_ERECORDS -> INVALID_RECORD (87), BATCH_ECODEC -> UNSUPPORTED_COMPRESSION_TYPE (76),
 * BATCH_ETIMESTAMP -> INVALID_TIMESTAMP (32). */
typedef enum batch_err {
    BATCH_OK = 0,
    BATCH_ETRUNC,      /* fewer bytes than the header or batchLength says */
    BATCH_EMAGIC,      /* magic is not 2 */
    BATCH_ECRC,        /* CRC-32C mismatch */
    BATCH_EMALFORMED,  /* header fields inconsistent (negative lengths, counts) */
    BATCH_ERECORDS,    /* the records inside do not parse or disagree with the header */
    BATCH_ECODEC,      /* unknown codec (the iterator: also a decompression failure) */
    BATCH_ENOMEM,      /* a size limit was reached */
    BATCH_ECOMPRESSED, /* batch_check: the compressed records are not valid data for the codec */
    BATCH_ETIMESTAMP,  /* batch_check: a record timestamp outside the allowed range */
} batch_err;

const char *batch_strerror(int err);

/* The fixed header, decoded. */
typedef struct batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} batch_header;

static inline int batch_codec_of(const batch_header *h) { return h->attributes & BATCH_ATTR_CODEC_MASK; }
/* The batch's last offset (base offset + last offset delta), or -1 when the
 * header cannot name one: a negative base offset or delta, or a sum past
 * INT64_MAX. Readers of stored or untrusted headers use this instead of the
 * bare sum, which a damaged header would overflow. */
static inline int64_t batch_last_offset(const batch_header *h) {
    if (h->base_offset < 0 || h->last_offset_delta < 0 || h->base_offset > INT64_MAX - h->last_offset_delta)
        return -1;
    return h->base_offset + h->last_offset_delta;
}
/* Total bytes of the batch (batch_length + 12). */
static inline int64_t batch_total_size(const batch_header *h) {
    return (int64_t)h->batch_length + BATCH_LOG_OVERHEAD;
}

/* Decodes the 61-byte header at buf (len bytes available). Checks magic and
 * that batchLength is sane (>= 49) and fits in len; does not check the CRC. */
int batch_parse_header(const uint8_t *buf, size_t len, batch_header *out);

/* Computes the CRC-32C over attributes..end and compares it with the stored
 * one. buf must hold the whole batch (batch_total_size bytes). */
bool batch_crc_ok(const uint8_t *buf, size_t batch_size);

/* Validation of a batch whatever wrote it (on disk, in a tool): header,
 * CRC, and (when deep) every record decoded as batch_check() does without
 * producer rules, decompressing with at most max_uncompressed bytes of
 * output.
 *
 * Shallow: batch_size equals the batch's own size, magic 2, CRC, recordCount
 * >= 0, lastOffsetDelta >= 0 and >= recordCount - 1, a known codec.
 * Deep adds: exactly recordCount records, each record's length matching its
 * fields, headers decodable, offset deltas strictly increasing with the last
 * equal to lastOffsetDelta, nothing after the last record, and for control
 * batches exactly one record with a control key. (The produce path uses
 * batch_check() with producer rules, which further require recordCount ==
 * lastOffsetDelta + 1 and recordCount > 0; compacted batches on disk
 * legitimately break both.) */
int batch_validate(const uint8_t *buf, size_t batch_size, bool deep, size_t max_uncompressed);

/* What batch_check() requires beyond a well-formed batch. */
typedef struct batch_rules {
    size_t max_uncompressed; /* most bytes the records may decompress to */
    /* The batch comes from a producer (the Produce path), so it must be as a
     * producer writes one: recordCount >= 1 and == lastOffsetDelta + 1,
     * offset deltas exactly 0 .. recordCount - 1, no control or
     * LogAppendTime bit, a transactional bit only with a producer id, and a
     * base sequence whenever there is a producer id. */
    bool producer;
    /* CreateTime limits: each record's timestamp must lie within
     * [now_ms - ts_before_max_ms, now_ms + ts_after_max_ms]; -1 ("none",
     * converted magic-0 messages) always passes. INT64_MAX = unlimited. */
    bool check_timestamps;
    int64_t now_ms;
    int64_t ts_before_max_ms;
    int64_t ts_after_max_ms;
} batch_rules;

/* Where and why batch_check() rejected a batch, for the client's
 * error_message / record_errors and for the operator's log line. */
#define BATCH_FAULT_MSG 160
typedef struct batch_fault {
    int32_t record; /* index of the offending record in the batch; -1: the batch as a whole */
    char msg[BATCH_FAULT_MSG];
} batch_fault;

/* The broker's full check of an untrusted batch (batch_size bytes, exactly
 * the batch): header and CRC as batch_validate, then every record decoded by
 * the iterator below (the one decoder of record bytes) in a single pass:
 * exactly recordCount records, each record's fields filling its length,
 * key/value lengths -1 .. remaining, header counts >= 0 and header keys
 * non-null, offset deltas increasing up to lastOffsetDelta, nothing after the
 * last record, control batches holding one control record, plus rules r.
 * A compressed batch is decompressed into the thread's reusable buffer
 * (compress_decompress_scratch, at most r->max_uncompressed bytes), so the
 * steady state allocates nothing; the input bytes are not modified.
 * Returns a batch_err; on failure f (if not NULL) says which record and why. */
int batch_check(const uint8_t *buf, size_t batch_size, const batch_rules *r, batch_fault *f);

/* Patches baseOffset and partitionLeaderEpoch in place (CRC unaffected). */
void batch_set_base_offset(uint8_t *buf, int64_t base_offset);
void batch_set_leader_epoch(uint8_t *buf, int32_t epoch);
/* Sets maxTimestamp and the LogAppendTime bit; this one changes covered bytes
 * and so recomputes the CRC. */
void batch_set_log_append_time(uint8_t *buf, size_t batch_size, int64_t ts);

/* One record, pointing into the (decompressed) records buffer. */
typedef struct batch_record_header {
    kbytes key;
    kbytes value;
} batch_record_header;

typedef struct batch_record {
    int8_t attributes;
    int64_t timestamp; /* base_timestamp + delta */
    int64_t offset;    /* base_offset + delta */
    int32_t offset_delta;
    kbytes key;   /* len -1 = null */
    kbytes value; /* len -1 = null */
    int32_t header_count;
    const uint8_t *headers; /* raw header bytes, decoded with batch_record_next_header */
    size_t headers_len;
} batch_record;

/* Iterates the records of one batch. For a compressed batch the records are
 * decompressed into memory from the arena (bounded by the arena's limit). */
typedef struct batch_iter {
    batch_header h;
    wire_reader r;      /* over the uncompressed records */
    int32_t index;      /* records returned so far */
    int32_t last_delta; /* offset delta of the last record returned, -1 before the first */
    int err;            /* batch_err */
    const char *why;    /* with err: a static phrase naming the problem */
} batch_iter;

/* Prepares to iterate the records of the batch in buf (batch_size bytes,
 * exactly the batch). Parses the header but does not check the CRC (call
 * batch_validate first for untrusted bytes). A compressed batch is
 * decompressed here into memory from a, never more than the arena's
 * remaining limit. Returns BATCH_OK or the error (also left in it->err).
 *
 * Every record returned has been fully decoded, headers included; the
 * iterator enforces that offset deltas strictly increase and do not pass
 * lastOffsetDelta, that no more than recordCount records are present and
 * (at the end) that no bytes trail the last one. With LogAppendTime set, each
 * record's timestamp is the batch's maxTimestamp, as consumers see it. */
int batch_iter_init(batch_iter *it, const uint8_t *buf, size_t batch_size, arena *a);
/* Returns true and fills rec while records remain; false at the end or on
 * error (it->err says which). */
bool batch_iter_next(batch_iter *it, batch_record *rec);
/* Points hr at rec's headers, for batch_record_next_header. */
void batch_record_headers(const batch_record *rec, wire_reader *hr);
/* Decodes the next header from hr; returns false when none remain or on
 * error. Header keys are never null; values may be (len -1). */
bool batch_record_next_header(batch_record *rec, wire_reader *hr, kstr *key, kbytes *value);

/* Control records (in batches with BATCH_ATTR_CONTROL): the key is version
 * int16 + type int16. Returns false if rec's key is not such a key. */
#define BATCH_CONTROL_ABORT  0
#define BATCH_CONTROL_COMMIT 1
bool batch_control_key(const batch_record *rec, int16_t *version, int16_t *type);

/* Iterates the batches in a records blob (e.g. a Produce partition's records
 * or a segment's bytes). Stops at the first incomplete batch:
 * batch_cursor_consumed() tells how many bytes were whole batches. The cursor
 * only parses headers (batch_parse_header); it checks no CRC. */
typedef struct batch_cursor {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
} batch_cursor;

void batch_cursor_init(batch_cursor *c, const void *buf, size_t len);
/* Returns BATCH_OK with *batch, *size and *h set, BATCH_ETRUNC at a partial tail
 * (nothing consumed), or another error for a bad header (nothing consumed;
 * BATCH_EMAGIC for a legacy message set). Returns -1 at the clean end. */
int batch_cursor_next(batch_cursor *c, const uint8_t **batch, size_t *size, batch_header *h);
/* Bytes of whole batches returned so far. */
static inline size_t batch_cursor_consumed(const batch_cursor *c) { return (size_t)(c->p - c->start); }

#endif
