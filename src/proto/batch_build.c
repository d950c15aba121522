/*
 * batch_build.c - encoding records into a magic-2 batch. See batch_build.h.
 *
 * Sizes are computed first so that each buffer is allocated once at its
 * exact size; the record encoding then runs through a wire_writer whose
 * capacity is that size, and the writer ending exactly full is asserted.
 */
#include "proto/batch_build.h"

#include <assert.h>
#include <string.h>

#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/compress.h"

batch_build_opts batch_build_defaults(void) {
    batch_build_opts o;
    memset(&o, 0, sizeof o);
    o.leader_epoch = -1;
    o.producer_id = -1;
    o.producer_epoch = -1;
    o.base_sequence = -1;
    o.last_offset_delta = -1;
    return o;
}

static size_t varbytes_size(kbytes b) { return b.len < 0 ? 1 : wire_varint_size(b.len) + (size_t)b.len; }

static void write_varbytes(wire_writer *w, kbytes b) {
    if (b.len < 0) {
        wire_write_varint(w, -1);
        return;
    }
    wire_write_varint(w, b.len);
    wire_write_raw(w, b.ptr, (size_t)b.len);
}

static int32_t delta_of(const batch_build_opts *o, const batch_build_record *recs, int32_t i) {
    return o->explicit_deltas ? recs[i].offset_delta : i;
}

/* Bytes of a record after its length prefix; 0 if the record is invalid. */
static size_t record_body_size(const batch_build_record *r, int32_t delta, int64_t base_ts) {
    if (r->key.len < -1 || r->value.len < -1 || r->header_count < 0 || (r->header_count > 0 && !r->headers))
        return 0;
    size_t n = 1 + wire_varlong_size((int64_t)((uint64_t)r->timestamp - (uint64_t)base_ts)) +
               wire_varint_size(delta) + varbytes_size(r->key) + varbytes_size(r->value) +
               wire_varint_size(r->header_count);
    for (int32_t i = 0; i < r->header_count; i++) {
        const batch_build_header *h = &r->headers[i];
        if (h->key.len < 0 || h->value.len < -1)
            return 0;
        n += wire_varint_size(h->key.len) + (size_t)h->key.len + varbytes_size(h->value);
        if (n > INT32_MAX)
            return 0;
    }
    return n > INT32_MAX ? 0 : n;
}

static void write_record(wire_writer *w, const batch_build_record *r, int32_t delta, int64_t base_ts,
                         size_t body) {
    wire_write_varint(w, (int32_t)body);
    wire_write_i8(w, 0); /* record attributes: unused */
    wire_write_varlong(w, (int64_t)((uint64_t)r->timestamp - (uint64_t)base_ts));
    wire_write_varint(w, delta);
    write_varbytes(w, r->key);
    write_varbytes(w, r->value);
    wire_write_varint(w, r->header_count);
    for (int32_t i = 0; i < r->header_count; i++) {
        const batch_build_header *h = &r->headers[i];
        wire_write_varint(w, h->key.len);
        wire_write_raw(w, h->key.ptr, (size_t)h->key.len);
        write_varbytes(w, h->value);
    }
}

int batch_build(const batch_build_opts *o, const batch_build_record *recs, int32_t n, arena *a, uint8_t **out,
                size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (n < 0 || (n > 0 && recs == NULL))
        return BATCH_EMALFORMED;
    if (o->codec < BATCH_CODEC_NONE || o->codec > BATCH_CODEC_ZSTD)
        return BATCH_ECODEC;

    int64_t base_ts = n > 0 ? recs[0].timestamp : -1;
    if (o->extra_attributes & BATCH_ATTR_DELETE_HORIZON)
        base_ts = o->delete_horizon_ms;
    int64_t max_ts = -1;
    int32_t prev = -1;
    size_t records_size = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t d = delta_of(o, recs, i);
        if (d <= prev)
            return BATCH_EMALFORMED;
        prev = d;
        if (i == 0 || recs[i].timestamp > max_ts)
            max_ts = recs[i].timestamp;
        size_t body = record_body_size(&recs[i], d, base_ts);
        if (body == 0)
            return BATCH_EMALFORMED;
        records_size += wire_varint_size((int32_t)body) + body;
        if (records_size > INT32_MAX - BATCH_HEADER_SIZE)
            return BATCH_ENOMEM;
    }
    int16_t attrs = (int16_t)((o->extra_attributes & ~BATCH_ATTR_CODEC_MASK) | o->codec);
    if (attrs & BATCH_ATTR_LOG_APPEND_TIME)
        max_ts = o->log_append_time;
    int32_t last_delta = o->last_offset_delta >= 0 ? o->last_offset_delta : (prev >= 0 ? prev : 0);

    /* Encode the records: straight into the batch when uncompressed, else
     * into scratch that is then compressed. */
    uint8_t *batch = NULL, *recbuf = NULL;
    size_t payload = records_size;
    const uint8_t *compressed = NULL;
    if (o->codec == BATCH_CODEC_NONE) {
        batch = arena_alloc(a, BATCH_HEADER_SIZE + records_size);
        if (batch == NULL)
            return BATCH_ENOMEM;
        recbuf = batch + BATCH_HEADER_SIZE;
    } else if (records_size > 0) {
        recbuf = arena_alloc(a, records_size);
        if (recbuf == NULL)
            return BATCH_ENOMEM;
    }
    wire_writer w;
    wire_writer_init(&w, recbuf, records_size);
    for (int32_t i = 0; i < n; i++) {
        int32_t d = delta_of(o, recs, i);
        write_record(&w, &recs[i], d, base_ts, record_body_size(&recs[i], d, base_ts));
    }
    assert(w.err == WIRE_OK && w.len == records_size);

    if (o->codec != BATCH_CODEC_NONE) {
        uint8_t *cbuf;
        static const uint8_t nothing[1];
        int e = compress_compress(o->codec, recbuf ? recbuf : nothing, records_size, a, &cbuf, &payload);
        if (e != COMPRESS_OK)
            return e == COMPRESS_ECODEC ? BATCH_ECODEC : BATCH_ENOMEM;
        if (payload > INT32_MAX - BATCH_HEADER_SIZE)
            return BATCH_ENOMEM;
        compressed = cbuf;
        batch = arena_alloc(a, BATCH_HEADER_SIZE + payload);
        if (batch == NULL)
            return BATCH_ENOMEM;
        if (payload > 0)
            memcpy(batch + BATCH_HEADER_SIZE, compressed, payload);
    }

    size_t total = BATCH_HEADER_SIZE + payload;
    wire_put_be64(batch + BATCH_OFF_BASE_OFFSET, (uint64_t)o->base_offset);
    wire_put_be32(batch + BATCH_OFF_LENGTH, (uint32_t)(total - BATCH_LOG_OVERHEAD));
    wire_put_be32(batch + BATCH_OFF_LEADER_EPOCH, (uint32_t)o->leader_epoch);
    batch[BATCH_OFF_MAGIC] = BATCH_MAGIC;
    wire_put_be16(batch + BATCH_OFF_ATTRIBUTES, (uint16_t)attrs);
    wire_put_be32(batch + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)last_delta);
    wire_put_be64(batch + BATCH_OFF_BASE_TIMESTAMP, (uint64_t)base_ts);
    wire_put_be64(batch + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    wire_put_be64(batch + BATCH_OFF_PRODUCER_ID, (uint64_t)o->producer_id);
    wire_put_be16(batch + BATCH_OFF_PRODUCER_EPOCH, (uint16_t)o->producer_epoch);
    wire_put_be32(batch + BATCH_OFF_BASE_SEQUENCE, (uint32_t)o->base_sequence);
    wire_put_be32(batch + BATCH_OFF_RECORD_COUNT, (uint32_t)n);
    wire_put_be32(batch + BATCH_OFF_CRC,
                  crc32c(0, batch + BATCH_OFF_ATTRIBUTES, total - BATCH_OFF_ATTRIBUTES));
    *out = batch;
    *out_len = total;
    return BATCH_OK;
}
