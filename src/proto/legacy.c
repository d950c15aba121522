/*
 * legacy.c - magic 0/1 message sets: iteration, validation, conversion to a
 * magic-2 batch, and writing. See legacy.h for the format.
 *
 * Every entry is read through a wire_reader bounded by its messageSize, and
 * its CRC is checked before any field after the magic is trusted. When a
 * wrapper is opened its whole inner set is checked first (CRCs, no nesting,
 * same magic) because magic-1 offsets are relative to the last inner message
 * and so cannot be computed before it is found.
 */
#include "proto/legacy.h"

#include <assert.h>
#include <string.h>
#include <zlib.h>

#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/compress.h"

/* Arena slack for block bookkeeping when validating with a private arena. */
#define LEGACY_ARENA_SLACK 4096

static const uint8_t empty_set[1];

/* Reads one entry. *codec gets the codec bits. Errors: BATCH_ETRUNC when the
 * entry is cut short, BATCH_EMAGIC, BATCH_ECRC, BATCH_EMALFORMED for sizes
 * and lengths that disagree, BATCH_ECODEC for codec bits 4-7. */
static int read_entry(wire_reader *r, legacy_message *m, int *codec) {
    memset(m, 0, sizeof *m);
    *codec = 0;
    if (wire_remaining(r) < LEGACY_LOG_OVERHEAD)
        return BATCH_ETRUNC;
    m->offset = wire_read_i64(r);
    int32_t size = wire_read_i32(r);
    if (size < LEGACY_MIN_MESSAGE_V0)
        return BATCH_EMALFORMED;
    if ((size_t)size > wire_remaining(r))
        return BATCH_ETRUNC;
    const uint8_t *body = wire_skip(r, (size_t)size);
    assert(body != NULL);
    int8_t magic = (int8_t)body[4];
    if (magic != 0 && magic != 1)
        return BATCH_EMAGIC;
    if (magic == 1 && size < LEGACY_MIN_MESSAGE_V1)
        return BATCH_EMALFORMED;
    if ((uint32_t)crc32(0L, body + 4, (uInt)(size - 4)) != wire_be32(body))
        return BATCH_ECRC;
    wire_reader b;
    wire_reader_init(&b, body + 5, (size_t)size - 5);
    m->magic = magic;
    m->attributes = wire_read_i8(&b);
    m->timestamp = magic == 1 ? wire_read_i64(&b) : -1;
    m->key = wire_read_bytes(&b, false, true);
    m->value = wire_read_bytes(&b, false, true);
    if (b.err != WIRE_OK || wire_remaining(&b) != 0)
        return BATCH_EMALFORMED;
    *codec = m->attributes & LEGACY_ATTR_CODEC_MASK;
    /* zstd came with magic 2; 5-7 were never assigned. */
    if (*codec > COMPRESS_LZ4)
        return BATCH_ECODEC;
    m->log_append_time = magic == 1 && (m->attributes & LEGACY_ATTR_LOG_APPEND_TIME);
    return BATCH_OK;
}

void legacy_iter_init(legacy_iter *it, const uint8_t *buf, size_t len, arena *a, size_t max_uncompressed) {
    assert(buf != NULL || len == 0);
    memset(it, 0, sizeof *it);
    wire_reader_init(&it->outer, buf ? buf : empty_set, len);
    wire_reader_init(&it->inner, empty_set, 0);
    it->a = a;
    it->max_uncompressed = max_uncompressed;
}

static bool iter_fail(legacy_iter *it, int err) {
    if (it->err == BATCH_OK)
        it->err = err;
    return false;
}

/* Decompresses wrapper w and checks its inner set. */
static int open_wrapper(legacy_iter *it, const legacy_message *w, int codec) {
    if (w->value.len <= 0)
        return BATCH_ERECORDS;
    uint8_t *out;
    size_t n;
    int e =
        compress_decompress(codec, w->value.ptr, (size_t)w->value.len, it->a, it->max_uncompressed, &out, &n);
    if (e != COMPRESS_OK)
        return e == COMPRESS_ELIMIT || e == COMPRESS_ENOMEM ? BATCH_ENOMEM : BATCH_ECODEC;
    assert(n <= it->max_uncompressed);
    it->max_uncompressed -= n;
    wire_reader_init(&it->inner, n ? out : empty_set, n);

    wire_reader scan = it->inner;
    int32_t count = 0;
    while (wire_remaining(&scan) > 0) {
        legacy_message im;
        int c;
        e = read_entry(&scan, &im, &c);
        if (e == BATCH_ETRUNC)
            return BATCH_ERECORDS; /* a cut inside compressed data is corruption */
        if (e != BATCH_OK)
            return e;
        if (c != 0 || im.magic != w->magic)
            return BATCH_ERECORDS; /* nested wrapper or mixed magic */
        it->inner_last = im.offset;
        count++;
    }
    if (count == 0)
        return BATCH_ERECORDS;
    it->in_wrapper = true;
    it->wrapper_magic = w->magic;
    it->wrapper_lat = w->log_append_time;
    it->wrapper_offset = w->offset;
    it->wrapper_timestamp = w->timestamp;
    return BATCH_OK;
}

bool legacy_iter_next(legacy_iter *it, legacy_message *m) {
    memset(m, 0, sizeof *m);
    if (it->err != BATCH_OK)
        return false;
    /* At most two rounds: open a wrapper, then return its first message. */
    for (;;) {
        int codec, e;
        if (it->in_wrapper) {
            if (wire_remaining(&it->inner) > 0) {
                e = read_entry(&it->inner, m, &codec);
                if (e != BATCH_OK)
                    return iter_fail(it, e);
                if (it->wrapper_magic == 1)
                    m->offset = (int64_t)((uint64_t)it->wrapper_offset -
                                          ((uint64_t)it->inner_last - (uint64_t)m->offset));
                if (it->wrapper_lat) {
                    m->timestamp = it->wrapper_timestamp;
                    m->log_append_time = true;
                }
                return true;
            }
            it->in_wrapper = false;
        }
        if (wire_remaining(&it->outer) == 0)
            return false;
        e = read_entry(&it->outer, m, &codec);
        if (e != BATCH_OK)
            return iter_fail(it, e);
        if (codec == 0)
            return true;
        e = open_wrapper(it, m, codec);
        if (e != BATCH_OK)
            return iter_fail(it, e);
    }
}

int legacy_validate(const uint8_t *buf, size_t len, size_t max_uncompressed, int32_t *count) {
    arena a;
    size_t limit =
        max_uncompressed > SIZE_MAX - LEGACY_ARENA_SLACK ? SIZE_MAX : max_uncompressed + LEGACY_ARENA_SLACK;
    arena_init(&a, limit);
    legacy_iter it;
    legacy_iter_init(&it, buf, len, &a, max_uncompressed);
    legacy_message m;
    int32_t n = 0;
    while (legacy_iter_next(&it, &m))
        n++;
    arena_reset(&a);
    if (count)
        *count = n;
    return it.err;
}

int legacy_peek_magic(const uint8_t *buf, size_t len) {
    if (len < 17)
        return -1;
    return (int8_t)buf[16];
}

int legacy_to_batch(const uint8_t *buf, size_t len, arena *a, size_t max_uncompressed, int codec,
                    bool keep_offsets, uint8_t **out, size_t *out_len, size_t *decompressed) {
    *out = NULL;
    *out_len = 0;
    if (decompressed)
        *decompressed = 0;
    /* Pass one counts (and checks everything); pass two decompresses again
     * into a and collects records. Twice the codec work, but no guess at
     * an array size: legacy producers are a rare path. */
    int32_t n;
    int e = legacy_validate(buf, len, max_uncompressed, &n);
    if (e != BATCH_OK)
        return e;
    batch_build_record *recs = NULL;
    if (n > 0 && (recs = arena_calloc(a, (size_t)n, sizeof *recs)) == NULL)
        return BATCH_ENOMEM;
    legacy_iter it;
    legacy_iter_init(&it, buf, len, a, max_uncompressed);
    legacy_message m;
    int32_t i = 0;
    int64_t first_offset = 0, max_ts = -1;
    bool lat = false;
    while (legacy_iter_next(&it, &m)) {
        if (i >= n)
            return BATCH_ERECORDS; /* cannot happen: same bytes, same walk */
        if (i == 0) {
            first_offset = m.offset;
            lat = m.log_append_time;
        }
        if (keep_offsets) {
            int64_t d = (int64_t)((uint64_t)m.offset - (uint64_t)first_offset);
            if (d < 0 || d > INT32_MAX)
                return BATCH_EMALFORMED;
            recs[i].offset_delta = (int32_t)d;
        }
        recs[i].key = m.key;
        recs[i].value = m.value;
        recs[i].timestamp = m.timestamp;
        if (m.timestamp > max_ts)
            max_ts = m.timestamp;
        i++;
    }
    if (decompressed)
        *decompressed = max_uncompressed - it.max_uncompressed;
    if (it.err != BATCH_OK)
        return it.err;
    if (i != n)
        return BATCH_ERECORDS;
    batch_build_opts o = batch_build_defaults();
    o.codec = codec;
    o.explicit_deltas = keep_offsets;
    o.base_offset = keep_offsets ? first_offset : 0;
    if (lat) {
        o.extra_attributes = BATCH_ATTR_LOG_APPEND_TIME;
        o.log_append_time = max_ts;
    }
    return batch_build(&o, recs, n, a, out, out_len);
}

size_t legacy_message_size(int8_t magic, kbytes key, kbytes value) {
    return LEGACY_LOG_OVERHEAD + LEGACY_MIN_MESSAGE_V0 + (magic == 1 ? 8 : 0) +
           (key.len > 0 ? (size_t)key.len : 0) + (value.len > 0 ? (size_t)value.len : 0);
}

void legacy_write_message(wire_writer *w, int8_t magic, int8_t attributes, int64_t offset, int64_t timestamp,
                          kbytes key, kbytes value) {
    assert(magic == 0 || magic == 1);
    size_t total = legacy_message_size(magic, key, value);
    wire_write_i64(w, offset);
    wire_write_i32(w, (int32_t)(total - LEGACY_LOG_OVERHEAD));
    uint8_t *crc = wire_reserve(w, 4);
    size_t start = w->len;
    wire_write_i8(w, magic);
    wire_write_i8(w, attributes);
    if (magic == 1)
        wire_write_i64(w, timestamp);
    wire_write_bytes(w, key, false, true);
    wire_write_bytes(w, value, false, true);
    if (w->err != WIRE_OK || crc == NULL)
        return;
    wire_put_be32(crc, (uint32_t)crc32(0L, w->buf + start, (uInt)(w->len - start)));
}
