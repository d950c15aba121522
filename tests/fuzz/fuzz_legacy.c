/*
 * fuzz_legacy.c - libFuzzer target for legacy message sets
 * (src/proto/legacy.c).
 *
 * The input is iterated and validated as received, then again with the CRC
 * of every whole top-level message fixed up so that the fields behind it
 * are reached. Invariant asserted: whatever legacy_validate() accepts,
 * legacy_to_batch() converts into a batch that passes deep validation and
 * holds the same number of records.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/batch.h"
#include "proto/legacy.h"

#define FUZZ_MAX_UNCOMPRESSED (256u * 1024)

static void check(const uint8_t *buf, size_t len) {
    int32_t count = 0;
    int e = legacy_validate(buf, len, FUZZ_MAX_UNCOMPRESSED, &count);
    arena a;
    arena_init(&a, 8 * FUZZ_MAX_UNCOMPRESSED);
    legacy_iter it;
    legacy_iter_init(&it, buf, len, &a, FUZZ_MAX_UNCOMPRESSED);
    legacy_message m;
    int32_t n = 0;
    while (legacy_iter_next(&it, &m))
        n++;
    assert(it.err == e && n == count);
    if (e == BATCH_OK) {
        for (int keep = 0; keep <= 1; keep++) {
            uint8_t *b;
            size_t bl;
            int ce = legacy_to_batch(buf, len, &a, FUZZ_MAX_UNCOMPRESSED, keep ? BATCH_CODEC_LZ4 : 0, keep,
                                     &b, &bl, NULL);
            if (ce == BATCH_OK) {
                assert(batch_validate(b, bl, true, 8 * FUZZ_MAX_UNCOMPRESSED) == BATCH_OK);
                batch_header h;
                assert(batch_parse_header(b, bl, &h) == BATCH_OK && h.record_count == count);
            } else {
                /* Only offsets that cannot be kept or running out of memory. */
                assert((keep && ce == BATCH_EMALFORMED) || ce == BATCH_ENOMEM);
            }
        }
    }
    arena_reset(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    (void)legacy_peek_magic(data, size);

    uint8_t *copy = malloc(size ? size : 1);
    assert(copy);
    memcpy(copy, data, size);
    size_t pos = 0;
    while (size - pos >= LEGACY_LOG_OVERHEAD + 4) {
        int32_t msize = (int32_t)wire_be32(copy + pos + 8);
        if (msize < 4 || (size_t)msize > size - pos - LEGACY_LOG_OVERHEAD)
            break;
        uint8_t *body = copy + pos + LEGACY_LOG_OVERHEAD;
        wire_put_be32(body, (uint32_t)crc32(0L, body + 4, (uInt)(msize - 4)));
        pos += LEGACY_LOG_OVERHEAD + (size_t)msize;
    }
    check(copy, size);
    free(copy);
    return 0;
}
