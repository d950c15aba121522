/*
 * fuzz_batch.c - libFuzzer target for record batches (src/proto/batch.c),
 * the codecs behind them (src/proto/compress.c) and the batch builder.
 *
 * The input is treated three ways: as one batch to validate (as received,
 * then with its CRC fixed up so that the deep checks are reached, both the
 * storage-side deep validation and the produce path's batch_check with
 * producer rules and timestamp limits), as a blob for the cursor whose
 * batches are iterated without any CRC check, and as a compressed payload
 * for the codec named by its first byte (through the arena, the caller's
 * buffer and the thread's scratch buffer). Arenas are small so that limits
 * are hit as often as data is decoded.
 *
 * Invariants asserted: a batch that passes deep validation iterates to
 * exactly recordCount records without error, and records rebuilt from it
 * form a batch that validates too; a batch that passes batch_check with
 * producer rules also passes deep validation, its offset deltas are exactly
 * 0..recordCount-1 and every record timestamp lies within the limits; a
 * refusal always names a reason, and a record index only inside the batch.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/compress.h"

#define FUZZ_MAX_UNCOMPRESSED (256u * 1024)
#define FUZZ_MAX_RECORDS      4096

static void iterate(const uint8_t *b, size_t n, arena *a, int32_t *count, int *err) {
    batch_iter it;
    *count = 0;
    *err = batch_iter_init(&it, b, n, a);
    batch_record r;
    while (batch_iter_next(&it, &r)) {
        wire_reader hr;
        batch_record_headers(&r, &hr);
        kstr k;
        kbytes v;
        int32_t hn = 0;
        while (batch_record_next_header(&r, &hr, &k, &v))
            hn++;
        assert(hr.err == WIRE_OK && hn == r.header_count);
        int16_t ver, type;
        (void)batch_control_key(&r, &ver, &type);
        (*count)++;
    }
    *err = it.err;
}

/* The produce path's check, with timestamp limits around the batch's own
 * base timestamp so that both outcomes occur. */
static void check_as_produced(const uint8_t *b, size_t n, const batch_header *h) {
    batch_rules r = {.max_uncompressed = FUZZ_MAX_UNCOMPRESSED,
                     .producer = true,
                     .check_timestamps = true,
                     .now_ms = h->base_timestamp,
                     .ts_before_max_ms = 1000,
                     .ts_after_max_ms = 3600000};
    batch_fault f;
    int e = batch_check(b, n, &r, &f);
    if (e != BATCH_OK) {
        assert(f.msg[0] != 0);
        assert(f.record >= -1 && (f.record < 0 || f.record < h->record_count));
        return;
    }
    assert(batch_validate(b, n, true, FUZZ_MAX_UNCOMPRESSED) == BATCH_OK);
    assert(h->record_count >= 1 && h->last_offset_delta == h->record_count - 1);
    assert(!(h->attributes & (BATCH_ATTR_CONTROL | BATCH_ATTR_LOG_APPEND_TIME)));
    arena a;
    arena_init(&a, FUZZ_MAX_UNCOMPRESSED + 4096);
    batch_iter it;
    if (batch_iter_init(&it, b, n, &a) == BATCH_OK) {
        batch_record rec;
        int32_t i = 0;
        while (batch_iter_next(&it, &rec)) {
            assert(rec.offset_delta == i);
            /* (unsigned differences: the fuzzer's timestamps reach both ends of int64) */
            assert(rec.timestamp == -1 ||
                   (rec.timestamp < r.now_ms
                        ? (uint64_t)r.now_ms - (uint64_t)rec.timestamp <= (uint64_t)r.ts_before_max_ms
                        : (uint64_t)rec.timestamp - (uint64_t)r.now_ms <= (uint64_t)r.ts_after_max_ms));
            i++;
        }
        assert(it.err == BATCH_OK && i == h->record_count);
    }
    arena_reset(&a);
}

/* Rebuilds a validated batch from its records and checks the copy. */
static void rebuild(const uint8_t *b, size_t n) {
    arena a;
    arena_init(&a, 4 * FUZZ_MAX_UNCOMPRESSED);
    batch_iter it;
    if (batch_iter_init(&it, b, n, &a) != BATCH_OK || it.h.record_count > FUZZ_MAX_RECORDS)
        goto out;
    batch_build_record *recs = NULL;
    if (it.h.record_count > 0)
        recs = arena_calloc(&a, (size_t)it.h.record_count, sizeof *recs);
    if (it.h.record_count > 0 && recs == NULL)
        goto out;
    batch_record r;
    int32_t i = 0;
    while (batch_iter_next(&it, &r)) {
        recs[i].key = r.key;
        recs[i].value = r.value;
        recs[i].timestamp = r.timestamp;
        recs[i].offset_delta = r.offset_delta;
        i++;
    }
    assert(it.err == BATCH_OK && i == it.h.record_count);
    batch_build_opts o = batch_build_defaults();
    o.explicit_deltas = true;
    o.codec = batch_codec_of(&it.h);
    o.extra_attributes = it.h.attributes & BATCH_ATTR_CONTROL;
    o.last_offset_delta = it.h.last_offset_delta;
    uint8_t *nb;
    size_t nn;
    if (batch_build(&o, recs, i, &a, &nb, &nn) == BATCH_OK)
        assert(batch_validate(nb, nn, true, 4 * FUZZ_MAX_UNCOMPRESSED) == BATCH_OK);
out:
    arena_reset(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arena a;
    arena_init(&a, FUZZ_MAX_UNCOMPRESSED);

    (void)batch_validate(data, size, false, FUZZ_MAX_UNCOMPRESSED);
    (void)batch_validate(data, size, true, FUZZ_MAX_UNCOMPRESSED);

    /* The same bytes with a correct CRC, trimmed to the length they claim. */
    if (size >= BATCH_HEADER_SIZE) {
        uint8_t *copy = malloc(size);
        assert(copy);
        memcpy(copy, data, size);
        batch_header h;
        if (batch_parse_header(copy, size, &h) == BATCH_OK) {
            size_t n = (size_t)batch_total_size(&h);
            wire_put_be32(copy + BATCH_OFF_CRC,
                          crc32c(0, copy + BATCH_OFF_ATTRIBUTES, n - BATCH_OFF_ATTRIBUTES));
            check_as_produced(copy, n, &h);
            int e = batch_validate(copy, n, true, FUZZ_MAX_UNCOMPRESSED);
            if (e == BATCH_OK) {
                int32_t count;
                int err;
                arena va;
                arena_init(&va, FUZZ_MAX_UNCOMPRESSED + 4096);
                iterate(copy, n, &va, &count, &err);
                assert(err == BATCH_OK && count == h.record_count);
                arena_reset(&va);
                rebuild(copy, n);
                batch_set_base_offset(copy, 12345);
                batch_set_leader_epoch(copy, 3);
                batch_set_log_append_time(copy, n, 99);
                assert(batch_validate(copy, n, true, FUZZ_MAX_UNCOMPRESSED) == BATCH_OK);
            }
        }
        free(copy);
    }

    /* Cursor over the blob; iterate every batch without checking its CRC. */
    batch_cursor c;
    batch_cursor_init(&c, data, size);
    const uint8_t *b;
    size_t bs;
    batch_header h;
    int guard = 0;
    while (batch_cursor_next(&c, &b, &bs, &h) == BATCH_OK && guard++ < 1000) {
        int32_t count;
        int err;
        iterate(b, bs, &a, &count, &err);
        arena_reset(&a);
    }
    assert(batch_cursor_consumed(&c) <= size);

    /* The input as a compressed payload. */
    if (size > 0) {
        int codec = data[0] % 5;
        uint8_t *out;
        size_t out_len;
        int e = compress_decompress(codec, data + 1, size - 1, &a, 64 * 1024, &out, &out_len);
        assert(e != COMPRESS_OK || out_len <= 64 * 1024);
        arena_reset(&a);
        static uint8_t buf[4096];
        size_t into_len;
        int ei = compress_decompress_into(codec, data + 1, size - 1, buf, sizeof buf, &into_len);
        const uint8_t *sp;
        size_t sp_len;
        int es = compress_decompress_scratch(codec, data + 1, size - 1, sizeof buf, &sp, &sp_len);
        /* the same limit gives the same outcome and bytes, whatever the buffer */
        assert(ei == es);
        assert(es != COMPRESS_OK || (sp_len == into_len && (sp_len == 0 || memcmp(sp, buf, sp_len) == 0)));
        compress_scratch_trim();
    }
    arena_reset(&a);
    return 0;
}
