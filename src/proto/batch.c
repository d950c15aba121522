/*
 * batch.c - magic-2 record batches: parse, validate, patch, iterate.
 * See batch.h for the layout and the contract.
 *
 * Nothing here allocates except the decompression of a compressed batch,
 * which takes its output from the caller's arena (the iterator) or from the
 * thread's reusable scratch buffer (batch_check, batch_validate), bounded by
 * max_uncompressed either way. Every read of a record goes through a
 * wire_reader bounded by the record's own length prefix, so a lying length
 * can never reach a neighbouring record. batch_iter_next is the one decoder
 * of record bytes: validation, timestamp lookups, down-conversion and the
 * tools all walk records through it.
 */
#include "proto/batch.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
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
    case BATCH_ECOMPRESSED:
        return "corrupt compressed records";
    case BATCH_ETIMESTAMP:
        return "record timestamp out of range";
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

static int iter_fail(batch_iter *it, int err, const char *why) {
    if (it->err == BATCH_OK) {
        it->err = err;
        it->why = why;
    }
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

/* Sets up it over a batch's header only (checking the CRC too when asked,
 * before the header's consistency); the records come next. */
static int iter_start(batch_iter *it, const uint8_t *buf, size_t batch_size, bool crc) {
    memset(it, 0, sizeof *it);
    it->last_delta = -1;
    wire_reader_init(&it->r, empty_records, 0);
    int e = batch_parse_header(buf, batch_size, &it->h);
    if (e != BATCH_OK)
        return iter_fail(it, e, batch_strerror(e));
    if ((uint64_t)batch_total_size(&it->h) != batch_size)
        return iter_fail(it, BATCH_EMALFORMED, "batchLength disagrees with the bytes given");
    if (crc && !batch_crc_ok(buf, batch_size))
        return iter_fail(it, BATCH_ECRC, "CRC-32C mismatch");
    e = check_header(&it->h);
    if (e != BATCH_OK)
        return iter_fail(it, e,
                         e == BATCH_ECODEC ? "unknown compression codec" : "inconsistent batch header");
    return BATCH_OK;
}

static void iter_over(batch_iter *it, const uint8_t *recs, size_t n) {
    wire_reader_init(&it->r, n ? recs : empty_records, n);
}

int batch_iter_init(batch_iter *it, const uint8_t *buf, size_t batch_size, arena *a) {
    assert(a->used <= a->limit);
    int e = iter_start(it, buf, batch_size, false);
    if (e != BATCH_OK)
        return e;
    const uint8_t *recs = buf + BATCH_HEADER_SIZE;
    size_t n = batch_size - BATCH_HEADER_SIZE;
    int codec = batch_codec_of(&it->h);
    if (codec == BATCH_CODEC_NONE) {
        iter_over(it, recs, n);
        return BATCH_OK;
    }
    uint8_t *out;
    size_t out_len;
    e = map_compress_err(compress_decompress(codec, recs, n, a, a->limit - a->used, &out, &out_len));
    if (e != BATCH_OK)
        return iter_fail(it, e, "cannot decompress the records");
    iter_over(it, out, out_len);
    return BATCH_OK;
}

/* Record fields are decoded with these inline readers rather than wire.c's
 * general ones: this is the loop that runs once per record on the produce
 * path, and the calls cost more than the decoding. The semantics are
 * wire_read_varint's / _varlong's: at most 5 (10) bytes, the 32-bit value in
 * range; any failure sets bad and yields 0. */
typedef struct rd {
    const uint8_t *p, *end;
    bool bad;
} rd;

static inline uint64_t rd_uvar(rd *r, int max_bytes) {
    if (r->p < r->end && *r->p < 0x80)
        return *r->p++; /* the common one-byte case */
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (r->p == r->end)
            break;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0)
            return v;
    }
    r->bad = true;
    return 0;
}

static inline int32_t rd_varint(rd *r) {
    uint64_t u = rd_uvar(r, 5);
    if (u > UINT32_MAX) {
        r->bad = true;
        return 0;
    }
    uint32_t x = (uint32_t)u;
    return (int32_t)((x >> 1) ^ (~(x & 1) + 1));
}

static inline int64_t rd_varlong(rd *r) {
    uint64_t u = rd_uvar(r, 10);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

static inline const uint8_t *rd_skip(rd *r, int32_t n) {
    if (n < 0 || (size_t)(r->end - r->p) < (size_t)n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

/* A key, value or header value: varint length, -1 for null. */
static inline kbytes rd_bytes(rd *r) {
    int32_t n = rd_varint(r);
    if (r->bad || n == -1)
        return KBYTES_NULL;
    const uint8_t *q = rd_skip(r, n); /* n < -1 fails here */
    return q ? (kbytes){q, n} : KBYTES_NULL;
}

bool batch_iter_next(batch_iter *it, batch_record *rec) {
    if (it->err != BATCH_OK)
        goto fail;
    rd outer = {it->r.p, it->r.end, false};
    if (it->index >= it->h.record_count) {
        if (outer.p != outer.end)
            iter_fail(it, BATCH_ERECORDS, "bytes follow the last record (recordCount too small)");
        goto fail;
    }
    if (outer.p == outer.end) {
        iter_fail(it, BATCH_ERECORDS, "fewer records than recordCount");
        goto fail;
    }
    int32_t len = rd_varint(&outer);
    if (outer.bad || len < BATCH_MIN_RECORD - 1 || (size_t)(outer.end - outer.p) < (size_t)len) {
        iter_fail(it, BATCH_ERECORDS, "record length out of range");
        goto fail;
    }
    rd r = {outer.p, outer.p + len, false};
    it->r.p = r.end; /* the next record starts after this one, whatever its fields say */

    rec->attributes = (int8_t)*r.p++; /* len >= 6, so the byte is there */
    int64_t ts_delta = rd_varlong(&r);
    int32_t off_delta = rd_varint(&r);
    rec->key = rd_bytes(&r);
    rec->value = rd_bytes(&r);
    rec->header_count = rd_varint(&r);
    if (rec->header_count < 0)
        r.bad = true;
    rec->headers = r.p;
    /* Walk the headers now so that a returned record is known whole; each
     * takes at least two bytes, so the loop ends within len steps. */
    for (int32_t i = 0; i < rec->header_count && !r.bad; i++) {
        int32_t klen = rd_varint(&r);
        (void)rd_skip(&r, r.bad ? 0 : klen); /* a null (-1) or negative key fails here */
        (void)rd_bytes(&r);
    }
    if (r.bad || r.p != r.end) {
        iter_fail(it, BATCH_ERECORDS,
                  r.bad ? "record fields (key, value or headers) overrun or have invalid lengths"
                        : "record fields do not fill the record length");
        goto fail;
    }
    rec->headers_len = (size_t)(r.p - rec->headers);
    if (off_delta <= it->last_delta || off_delta > it->h.last_offset_delta) {
        iter_fail(it, BATCH_ERECORDS, "offset delta not increasing or past lastOffsetDelta");
        goto fail;
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
fail:
    memset(rec, 0, sizeof *rec);
    return false;
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

static int fault(batch_fault *f, int err, int32_t record, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fault(batch_fault *f, int err, int32_t record, const char *fmt, ...) {
    if (f != NULL) {
        f->record = record;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->msg, sizeof f->msg, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Batch-level producer rules (batch.h, batch_rules.producer). */
static int check_producer_header(const batch_header *h, batch_fault *f) {
    if (h->record_count < 1)
        return fault(f, BATCH_ERECORDS, -1, "a produced batch must hold at least one record");
    if (h->last_offset_delta != h->record_count - 1)
        return fault(f, BATCH_ERECORDS, -1, "lastOffsetDelta %" PRId32 " does not match recordCount %" PRId32,
                     h->last_offset_delta, h->record_count);
    if (h->attributes & BATCH_ATTR_CONTROL)
        return fault(f, BATCH_ERECORDS, -1, "producers may not write control batches");
    if (h->attributes & BATCH_ATTR_LOG_APPEND_TIME)
        return fault(f, BATCH_ETIMESTAMP, -1, "producers may not set the LogAppendTime timestamp type");
    if (h->producer_id < 0 && (h->attributes & BATCH_ATTR_TRANSACTIONAL))
        return fault(f, BATCH_ERECORDS, -1, "a transactional batch needs a producer id");
    if (h->producer_id >= 0 && h->base_sequence < 0)
        return fault(f, BATCH_ERECORDS, -1, "base sequence %" PRId32 " with producer id %" PRId64,
                     h->base_sequence, h->producer_id);
    return BATCH_OK;
}

/* Whether ts lies within [now - before, now + after], without overflow;
 * a limit of INT64_MAX admits everything on its side. */
static bool ts_in_range(int64_t ts, const batch_rules *r) {
    if (ts < r->now_ms)
        return r->ts_before_max_ms == INT64_MAX ||
               (uint64_t)r->now_ms - (uint64_t)ts <= (uint64_t)r->ts_before_max_ms;
    return r->ts_after_max_ms == INT64_MAX ||
           (uint64_t)ts - (uint64_t)r->now_ms <= (uint64_t)r->ts_after_max_ms;
}

int batch_check(const uint8_t *buf, size_t batch_size, const batch_rules *r, batch_fault *f) {
    if (f != NULL) {
        f->record = -1;
        f->msg[0] = 0;
    }
    batch_iter it;
    int e = iter_start(&it, buf, batch_size, true);
    if (e != BATCH_OK)
        return fault(f, e, -1, "%s", it.why);
    const batch_header *h = &it.h;
    if (r->producer && (e = check_producer_header(h, f)) != BATCH_OK)
        return e;

    const uint8_t *recs = buf + BATCH_HEADER_SIZE;
    size_t n = batch_size - BATCH_HEADER_SIZE;
    int codec = batch_codec_of(h);
    if (codec == BATCH_CODEC_NONE) {
        /* An uncompressed batch cannot hold more records than this; checking
         * first turns a lying count into an early error. */
        if ((size_t)h->record_count > n / BATCH_MIN_RECORD)
            return fault(f, BATCH_ERECORDS, -1, "recordCount %" PRId32 " cannot fit in %zu bytes of records",
                         h->record_count, n);
    } else {
        const uint8_t *out;
        size_t out_len;
        int ce = compress_decompress_scratch(codec, recs, n, r->max_uncompressed, &out, &out_len);
        if (ce == COMPRESS_ELIMIT || ce == COMPRESS_ENOMEM)
            return fault(f, BATCH_ENOMEM, -1, "%s records decompress to more than %zu bytes",
                         compress_codec_name(codec), r->max_uncompressed);
        if (ce != COMPRESS_OK)
            return fault(f, BATCH_ECOMPRESSED, -1, "%s records: %s", compress_codec_name(codec),
                         compress_strerror(ce));
        if ((size_t)h->record_count > out_len / BATCH_MIN_RECORD) {
            e = fault(f, BATCH_ERECORDS, -1, "recordCount %" PRId32 " cannot fit in %zu decompressed bytes",
                      h->record_count, out_len);
            goto out;
        }
        recs = out;
        n = out_len;
    }
    iter_over(&it, recs, n);

    bool control = (h->attributes & BATCH_ATTR_CONTROL) != 0;
    bool check_ts = r->check_timestamps && !(h->attributes & BATCH_ATTR_LOG_APPEND_TIME);
    batch_record rec;
    while (batch_iter_next(&it, &rec)) {
        int32_t i = it.index - 1;
        if (r->producer && rec.offset_delta != i) {
            e = fault(f, BATCH_ERECORDS, i, "record %" PRId32 " has offset delta %" PRId32, i,
                      rec.offset_delta);
            goto out;
        }
        if (check_ts && rec.timestamp != -1 && !ts_in_range(rec.timestamp, r)) {
            e = fault(f, BATCH_ETIMESTAMP, i,
                      "record %" PRId32 " timestamp %" PRId64 " is outside [now - %" PRId64
                      " ms, now + %" PRId64 " ms] (now %" PRId64 ")",
                      i, rec.timestamp, r->ts_before_max_ms, r->ts_after_max_ms, r->now_ms);
            goto out;
        }
        int16_t version, type;
        if (control && !batch_control_key(&rec, &version, &type)) {
            e = fault(f, BATCH_ERECORDS, i, "control record %" PRId32 " has no control key", i);
            goto out;
        }
    }
    if (it.err != BATCH_OK) {
        int32_t i = it.index < h->record_count ? it.index : -1;
        e = i >= 0 ? fault(f, it.err, i, "record %" PRId32 ": %s", i, it.why)
                   : fault(f, it.err, -1, "%s", it.why);
        goto out;
    }
    assert(it.index == h->record_count);
    if (it.index > 0 && it.last_delta != h->last_offset_delta)
        e = fault(f, BATCH_ERECORDS, -1,
                  "last record has offset delta %" PRId32 ", lastOffsetDelta is %" PRId32, it.last_delta,
                  h->last_offset_delta);
    else if (control && it.index != 1)
        e = fault(f, BATCH_ERECORDS, -1, "a control batch holds %" PRId32 " records, not one", it.index);
    else
        e = BATCH_OK;
out:
    if (codec != BATCH_CODEC_NONE)
        compress_scratch_trim();
    return e;
}

int batch_validate(const uint8_t *buf, size_t batch_size, bool deep, size_t max_uncompressed) {
    if (deep) {
        batch_rules r = {.max_uncompressed = max_uncompressed};
        return batch_check(buf, batch_size, &r, NULL);
    }
    batch_header h;
    int e = batch_parse_header(buf, batch_size, &h);
    if (e != BATCH_OK)
        return e;
    if ((uint64_t)batch_total_size(&h) != batch_size)
        return BATCH_EMALFORMED;
    if (!batch_crc_ok(buf, batch_size))
        return BATCH_ECRC;
    return check_header(&h);
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
