/*
 * batch.c - magic-2 record batches: parse, validate, patch, iterate.
 * See batch.h for the layout and the contract.
 *
 * Nothing here allocates except the decompression of a compressed batch,
 * which takes its output from the caller's arena (or, in batch_validate, from
 * a private arena bounded by max_uncompressed and freed before returning).
 * Every read of a record goes through a wire_reader bounded by the record's
 * own length prefix, so a lying length can never reach a neighbouring record.
 */
#include "proto/batch.h"

#include <assert.h>
#include <string.h>

#include "core/crc32c.h"
#include "proto/compress.h"

_Static_assert((int)BATCH_CODEC_GZIP == (int)COMPRESS_GZIP &&
                   (int)BATCH_CODEC_SNAPPY == (int)COMPRESS_SNAPPY &&
                   (int)BATCH_CODEC_LZ4 == (int)COMPRESS_LZ4 && (int)BATCH_CODEC_ZSTD == (int)COMPRESS_ZSTD,
               "batch and compress codec numbers agree");

/* The smallest record: length, attributes, timestampDelta, offsetDelta,
 * key length, value length, header count, one byte each. */
#define BATCH_MIN_RECORD 7
/* Arena slack for block bookkeeping when validating with a private arena. */
#define BATCH_ARENA_SLACK 4096

/* Readers over "no records" point here rather than at NULL. */
static const uint8_t empty_records[1];

const char *batch_strerror(int err) {
    switch (err) {
    case BATCH_OK:
        return "ok";
    case BATCH_ETRUNC:
        return "truncated batch";
    case BATCH_EMAGIC:
        return "unsupported magic";
    case BATCH_ECRC:
        return "CRC mismatch";
    case BATCH_EMALFORMED:
        return "malformed batch header";
    case BATCH_ERECORDS:
        return "malformed records";
    case BATCH_ECODEC:
        return "unsupported codec or corrupt compressed data";
    case BATCH_ENOMEM:
        return "size limit reached";
    }
    return "unknown error";
}

int batch_parse_header(const uint8_t *buf, size_t len, batch_header *out) {
    memset(out, 0, sizeof *out);
    if (len < BATCH_OFF_MAGIC + 1)
        return BATCH_ETRUNC;
    /* Magic sits at the same offset in legacy message sets, so an old
     * client's data is told apart here, before its shorter sizes could be
     * mistaken for a malformed batch. */
    if ((int8_t)buf[BATCH_OFF_MAGIC] != BATCH_MAGIC)
        return BATCH_EMAGIC;
    out->base_offset = (int64_t)wire_be64(buf + BATCH_OFF_BASE_OFFSET);
    out->batch_length = (int32_t)wire_be32(buf + BATCH_OFF_LENGTH);
    out->partition_leader_epoch = (int32_t)wire_be32(buf + BATCH_OFF_LEADER_EPOCH);
    out->magic = BATCH_MAGIC;
    if (out->batch_length < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD)
        return BATCH_EMALFORMED;
    if (len < BATCH_HEADER_SIZE || (uint64_t)batch_total_size(out) > len)
        return BATCH_ETRUNC;
    out->crc = wire_be32(buf + BATCH_OFF_CRC);
    out->attributes = (int16_t)wire_be16(buf + BATCH_OFF_ATTRIBUTES);
    out->last_offset_delta = (int32_t)wire_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA);
    out->base_timestamp = (int64_t)wire_be64(buf + BATCH_OFF_BASE_TIMESTAMP);
    out->max_timestamp = (int64_t)wire_be64(buf + BATCH_OFF_MAX_TIMESTAMP);
    out->producer_id = (int64_t)wire_be64(buf + BATCH_OFF_PRODUCER_ID);
    out->producer_epoch = (int16_t)wire_be16(buf + BATCH_OFF_PRODUCER_EPOCH);
    out->base_sequence = (int32_t)wire_be32(buf + BATCH_OFF_BASE_SEQUENCE);
    out->record_count = (int32_t)wire_be32(buf + BATCH_OFF_RECORD_COUNT);
    return BATCH_OK;
}

static uint32_t compute_crc(const uint8_t *buf, size_t batch_size) {
    assert(batch_size >= BATCH_HEADER_SIZE);
    return crc32c(0, buf + BATCH_OFF_ATTRIBUTES, batch_size - BATCH_OFF_ATTRIBUTES);
}

bool batch_crc_ok(const uint8_t *buf, size_t batch_size) {
    if (batch_size < BATCH_HEADER_SIZE)
        return false;
    return compute_crc(buf, batch_size) == wire_be32(buf + BATCH_OFF_CRC);
}

/* Header fields that must agree with each other whatever the records say. */
static int check_header(const batch_header *h) {
    if (h->record_count < 0 || h->last_offset_delta < 0)
        return BATCH_EMALFORMED;
    if (h->record_count > 0 && h->last_offset_delta < h->record_count - 1)
        return BATCH_EMALFORMED;
    if (batch_codec_of(h) > BATCH_CODEC_ZSTD)
        return BATCH_ECODEC;
    return BATCH_OK;
}

/* ---- in-place patches ------------------------------------------------- */

void batch_set_base_offset(uint8_t *buf, int64_t base_offset) {
    wire_put_be64(buf + BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
}

void batch_set_leader_epoch(uint8_t *buf, int32_t epoch) {
    wire_put_be32(buf + BATCH_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

void batch_set_log_append_time(uint8_t *buf, size_t batch_size, int64_t ts) {
    assert(batch_size >= BATCH_HEADER_SIZE);
    uint16_t attrs = wire_be16(buf + BATCH_OFF_ATTRIBUTES) | BATCH_ATTR_LOG_APPEND_TIME;
    wire_put_be16(buf + BATCH_OFF_ATTRIBUTES, attrs);
    wire_put_be64(buf + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)ts);
    wire_put_be32(buf + BATCH_OFF_CRC, compute_crc(buf, batch_size));
}

/* ---- records ---------------------------------------------------------- */

/* Record key/value: varint length, -1 for null. */
static kbytes read_varbytes(wire_reader *r) {
    int32_t n = wire_read_varint(r);
    if (r->err != WIRE_OK)
        return KBYTES_NULL;
    if (n == -1)
        return KBYTES_NULL;
    if (n < -1) {
        wire_fail(r, WIRE_EINVAL);
        return KBYTES_NULL;
    }
    const uint8_t *p = wire_skip(r, (size_t)n);
    return p ? (kbytes){p, n} : KBYTES_NULL;
}

static int iter_fail(batch_iter *it, int err) {
    if (it->err == BATCH_OK)
        it->err = err;
    return it->err;
}

static int map_compress_err(int e) {
    switch (e) {
    case COMPRESS_OK:
        return BATCH_OK;
    case COMPRESS_ELIMIT:
    case COMPRESS_ENOMEM:
        return BATCH_ENOMEM;
    }
    return BATCH_ECODEC;
}

static int iter_init_capped(batch_iter *it, const uint8_t *buf, size_t batch_size, arena *a, size_t max_out) {
    memset(it, 0, sizeof *it);
    it->last_delta = -1;
    wire_reader_init(&it->r, empty_records, 0);
    int e = batch_parse_header(buf, batch_size, &it->h);
    if (e != BATCH_OK)
        return iter_fail(it, e);
    if ((uint64_t)batch_total_size(&it->h) != batch_size)
        return iter_fail(it, BATCH_EMALFORMED);
    e = check_header(&it->h);
    if (e != BATCH_OK)
        return iter_fail(it, e);
    const uint8_t *recs = buf + BATCH_HEADER_SIZE;
    size_t n = batch_size - BATCH_HEADER_SIZE;
    int codec = batch_codec_of(&it->h);
    if (codec == BATCH_CODEC_NONE) {
        wire_reader_init(&it->r, recs, n);
        return BATCH_OK;
    }
    uint8_t *out;
    size_t out_len;
    e = map_compress_err(compress_decompress(codec, recs, n, a, max_out, &out, &out_len));
    if (e != BATCH_OK)
        return iter_fail(it, e);
    wire_reader_init(&it->r, out_len ? out : empty_records, out_len);
    return BATCH_OK;
}

int batch_iter_init(batch_iter *it, const uint8_t *buf, size_t batch_size, arena *a) {
    assert(a->used <= a->limit);
    return iter_init_capped(it, buf, batch_size, a, a->limit - a->used);
}

bool batch_iter_next(batch_iter *it, batch_record *rec) {
    memset(rec, 0, sizeof *rec);
    if (it->err != BATCH_OK)
        return false;
    if (it->index >= it->h.record_count) {
        if (wire_remaining(&it->r) != 0)
            iter_fail(it, BATCH_ERECORDS);
        return false;
    }
    int32_t len = wire_read_varint(&it->r);
    if (it->r.err != WIRE_OK || len < BATCH_MIN_RECORD - 1 || (size_t)len > wire_remaining(&it->r)) {
        iter_fail(it, BATCH_ERECORDS);
        return false;
    }
    wire_reader rr;
    wire_reader_init(&rr, wire_skip(&it->r, (size_t)len), (size_t)len);

    rec->attributes = wire_read_i8(&rr);
    int64_t ts_delta = wire_read_varlong(&rr);
    int32_t off_delta = wire_read_varint(&rr);
    rec->key = read_varbytes(&rr);
    rec->value = read_varbytes(&rr);
    rec->header_count = wire_read_varint(&rr);
    if (rec->header_count < 0)
        wire_fail(&rr, WIRE_EINVAL);
    rec->headers = rr.p;
    /* Walk the headers now so that a returned record is known whole; each
     * takes at least two bytes, so the loop ends within len steps. */
    for (int32_t i = 0; i < rec->header_count && rr.err == WIRE_OK; i++) {
        int32_t klen = wire_read_varint(&rr);
        if (klen < 0)
            wire_fail(&rr, WIRE_EINVAL);
        else
            wire_skip(&rr, (size_t)klen);
        (void)read_varbytes(&rr);
    }
    if (rr.err != WIRE_OK || wire_remaining(&rr) != 0) {
        iter_fail(it, BATCH_ERECORDS);
        return false;
    }
    rec->headers_len = (size_t)(rr.p - rec->headers);
    if (off_delta <= it->last_delta || off_delta > it->h.last_offset_delta) {
        iter_fail(it, BATCH_ERECORDS);
        return false;
    }
    rec->offset_delta = off_delta;
    rec->offset = (int64_t)((uint64_t)it->h.base_offset + (uint64_t)off_delta);
    if (it->h.attributes & BATCH_ATTR_LOG_APPEND_TIME)
        rec->timestamp = it->h.max_timestamp;
    else
        rec->timestamp = (int64_t)((uint64_t)it->h.base_timestamp + (uint64_t)ts_delta);
    it->last_delta = off_delta;
    it->index++;
    return true;
}

void batch_record_headers(const batch_record *rec, wire_reader *hr) {
    wire_reader_init(hr, rec->headers, rec->headers_len);
}

bool batch_record_next_header(batch_record *rec, wire_reader *hr, kstr *key, kbytes *value) {
    (void)rec;
    *key = KSTR_NULL;
    *value = KBYTES_NULL;
    if (hr->err != WIRE_OK || wire_remaining(hr) == 0)
        return false;
    int32_t klen = wire_read_varint(hr);
    if (hr->err == WIRE_OK && klen < 0)
        wire_fail(hr, WIRE_EINVAL);
    const uint8_t *kp = hr->err == WIRE_OK ? wire_skip(hr, (size_t)klen) : NULL;
    kbytes v = read_varbytes(hr);
    if (hr->err != WIRE_OK)
        return false;
    *key = (kstr){(const char *)kp, klen};
    *value = v;
    return true;
}

bool batch_control_key(const batch_record *rec, int16_t *version, int16_t *type) {
    if (rec->key.len < 4)
        return false;
    *version = (int16_t)wire_be16(rec->key.ptr);
    *type = (int16_t)wire_be16(rec->key.ptr + 2);
    return *version >= 0;
}

/* ---- validation ------------------------------------------------------- */

int batch_validate(const uint8_t *buf, size_t batch_size, bool deep, size_t max_uncompressed) {
    batch_header h;
    int e = batch_parse_header(buf, batch_size, &h);
    if (e != BATCH_OK)
        return e;
    if ((uint64_t)batch_total_size(&h) != batch_size)
        return BATCH_EMALFORMED;
    if (!batch_crc_ok(buf, batch_size))
        return BATCH_ECRC;
    e = check_header(&h);
    if (e != BATCH_OK || !deep)
        return e;
    /* An uncompressed batch cannot hold more records than this; checking
     * first turns a lying count into an early error. */
    if (batch_codec_of(&h) == BATCH_CODEC_NONE &&
        (size_t)h.record_count > (batch_size - BATCH_HEADER_SIZE) / BATCH_MIN_RECORD)
        return BATCH_ERECORDS;

    arena a;
    size_t limit =
        max_uncompressed > SIZE_MAX - BATCH_ARENA_SLACK ? SIZE_MAX : max_uncompressed + BATCH_ARENA_SLACK;
    arena_init(&a, limit);
    batch_iter it;
    e = iter_init_capped(&it, buf, batch_size, &a, max_uncompressed);
    if (e != BATCH_OK)
        goto out;
    bool control = (h.attributes & BATCH_ATTR_CONTROL) != 0;
    batch_record rec;
    while (batch_iter_next(&it, &rec)) {
        int16_t version, type;
        if (control && !batch_control_key(&rec, &version, &type)) {
            e = BATCH_ERECORDS;
            goto out;
        }
    }
    e = it.err;
    if (e != BATCH_OK)
        goto out;
    if (it.index != h.record_count || (it.index > 0 && it.last_delta != h.last_offset_delta) ||
        (control && it.index != 1))
        e = BATCH_ERECORDS;
out:
    arena_reset(&a);
    return e;
}

/* ---- cursor ----------------------------------------------------------- */

void batch_cursor_init(batch_cursor *c, const void *buf, size_t len) {
    assert(buf != NULL || len == 0);
    if (buf == NULL)
        buf = empty_records;
    c->start = buf;
    c->p = buf;
    c->end = c->p + len;
}

int batch_cursor_next(batch_cursor *c, const uint8_t **batch, size_t *size, batch_header *h) {
    *batch = NULL;
    *size = 0;
    if (c->p == c->end)
        return -1;
    int e = batch_parse_header(c->p, (size_t)(c->end - c->p), h);
    if (e != BATCH_OK)
        return e;
    *batch = c->p;
    *size = (size_t)batch_total_size(h);
    c->p += *size;
    assert(c->p <= c->end);
    return BATCH_OK;
}
