/* Unit tests for src/proto/legacy.c: magic 0 and 1 message sets built by
 * hand, compressed wrappers, CRC and truncation errors, limits, and the
 * conversion to a magic-2 batch. */
#include "proto/batch.h"
#include "proto/compress.h"
#include "proto/legacy.h"
#include "unit.h"

#include <zlib.h>

#define MAXU (1u << 20)

static kbytes kb(const char *s) { return s ? (kbytes){(const uint8_t *)s, (int32_t)strlen(s)} : KBYTES_NULL; }

static bool kb_eq(kbytes b, const char *s) {
    if (s == NULL)
        return b.len == -1;
    return b.len == (int32_t)strlen(s) && memcmp(b.ptr, s, (size_t)b.len) == 0;
}

static const char *keys[3] = {"k0", NULL, "k2"};
static const char *vals[3] = {"v0", "v1", NULL};

/* Writes three messages with offsets first..first+2 and timestamps
 * 1000+i. */
static size_t write_three(uint8_t *buf, size_t cap, int8_t magic, int8_t attrs, int64_t first) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    for (int i = 0; i < 3; i++)
        legacy_write_message(&w, magic, attrs, first + i, 1000 + i, kb(keys[i]), kb(vals[i]));
    REQUIRE(w.err == WIRE_OK);
    return w.len;
}

/* Wraps an inner set in one compressed message. */
static size_t wrap(uint8_t *buf, size_t cap, int8_t magic, int codec, int8_t extra_attrs, int64_t offset,
                   int64_t ts, const uint8_t *inner, size_t inner_len) {
    arena a;
    arena_init(&a, 4 * MAXU);
    uint8_t *c;
    size_t clen;
    REQUIRE(compress_compress(codec, inner, inner_len, &a, &c, &clen) == COMPRESS_OK);
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    legacy_write_message(&w, magic, (int8_t)(codec | extra_attrs), offset, ts, KBYTES_NULL,
                         (kbytes){c, (int32_t)clen});
    REQUIRE(w.err == WIRE_OK);
    arena_reset(&a);
    return w.len;
}

static int collect(const uint8_t *buf, size_t len, legacy_message *out, int max, int *err) {
    arena a;
    arena_init(&a, MAXU * 2);
    legacy_iter it;
    legacy_iter_init(&it, buf, len, &a, MAXU);
    int n = 0;
    legacy_message m;
    while (legacy_iter_next(&it, &m)) {
        if (n < max)
            out[n] = m;
        n++;
    }
    *err = it.err;
    arena_reset(&a); /* out[] pointers into a are not used after this */
    return n;
}

static void test_plain_sets(void) {
    uint8_t buf[1024];
    for (int8_t magic = 0; magic <= 1; magic++) {
        size_t n = write_three(buf, sizeof buf, magic, 0, 5);
        CHECK_EQ_INT(n, 3 * legacy_message_size(magic, kb("k0"), kb("v0")) - 4);
        CHECK_EQ_INT(legacy_peek_magic(buf, n), magic);
        int32_t count;
        CHECK_EQ_INT(legacy_validate(buf, n, MAXU, &count), BATCH_OK);
        CHECK_EQ_INT(count, 3);
        arena a;
        arena_init(&a, MAXU);
        legacy_iter it;
        legacy_iter_init(&it, buf, n, &a, MAXU);
        legacy_message m;
        int i = 0;
        while (legacy_iter_next(&it, &m)) {
            REQUIRE(i < 3);
            CHECK_EQ_INT(m.offset, 5 + i);
            CHECK_EQ_INT(m.magic, magic);
            CHECK_EQ_INT(m.timestamp, magic == 1 ? 1000 + i : -1);
            CHECK(kb_eq(m.key, keys[i]));
            CHECK(kb_eq(m.value, vals[i]));
            CHECK(!m.log_append_time);
            i++;
        }
        CHECK_EQ_INT(it.err, BATCH_OK);
        CHECK_EQ_INT(i, 3);
        arena_reset(&a);
    }
    /* LogAppendTime on a plain v1 message. */
    size_t n = write_three(buf, sizeof buf, 1, LEGACY_ATTR_LOG_APPEND_TIME, 0);
    legacy_message ms[3];
    int err;
    CHECK_EQ_INT(collect(buf, n, ms, 3, &err), 3);
    CHECK_EQ_INT(err, BATCH_OK);
    CHECK(ms[0].log_append_time);
    /* Empty set. */
    CHECK_EQ_INT(legacy_validate(NULL, 0, MAXU, NULL), BATCH_OK);
    CHECK_EQ_INT(legacy_peek_magic(buf, 16), -1);
}

static void test_wrappers(void) {
    uint8_t inner[1024], buf[4096];
    for (int codec = 1; codec <= 3; codec++) {
        /* magic 1: relative inner offsets, wrapper holds the last absolute. */
        size_t in = write_three(inner, sizeof inner, 1, 0, 0);
        size_t n = wrap(buf, sizeof buf, 1, codec, 0, 40, 2000, inner, in);
        /* A plain message after the wrapper. */
        wire_writer w;
        wire_writer_init(&w, buf + n, sizeof buf - n);
        legacy_write_message(&w, 1, 0, 41, 3000, kb("k3"), kb("v3"));
        n += w.len;
        int32_t count;
        CHECK_EQ_INT(legacy_validate(buf, n, MAXU, &count), BATCH_OK);
        CHECK_EQ_INT(count, 4);
        arena a;
        arena_init(&a, MAXU);
        legacy_iter it;
        legacy_iter_init(&it, buf, n, &a, MAXU);
        legacy_message m;
        int i = 0;
        while (legacy_iter_next(&it, &m)) {
            CHECK_EQ_INT(m.offset, 38 + i);
            CHECK_EQ_INT(m.timestamp, i < 3 ? 1000 + i : 3000);
            CHECK_EQ_INT(m.attributes & LEGACY_ATTR_CODEC_MASK, 0);
            if (i < 3) {
                CHECK(kb_eq(m.key, keys[i]));
                CHECK(kb_eq(m.value, vals[i]));
            }
            i++;
        }
        CHECK_EQ_INT(it.err, BATCH_OK);
        CHECK_EQ_INT(i, 4);
        arena_reset(&a);

        /* LogAppendTime wrapper: inner messages take its timestamp. */
        n = wrap(buf, sizeof buf, 1, codec, LEGACY_ATTR_LOG_APPEND_TIME, 2, 7777, inner, in);
        legacy_message ms[3];
        int err;
        CHECK_EQ_INT(collect(buf, n, ms, 3, &err), 3);
        CHECK_EQ_INT(err, BATCH_OK);
        for (int j = 0; j < 3; j++) {
            CHECK_EQ_INT(ms[j].timestamp, 7777);
            CHECK(ms[j].log_append_time);
            CHECK_EQ_INT(ms[j].offset, j);
        }

        /* magic 0: inner offsets are taken as written. */
        in = write_three(inner, sizeof inner, 0, 0, 100);
        n = wrap(buf, sizeof buf, 0, codec, 0, 102, 0, inner, in);
        CHECK_EQ_INT(collect(buf, n, ms, 3, &err), 3);
        CHECK_EQ_INT(err, BATCH_OK);
        for (int j = 0; j < 3; j++) {
            CHECK_EQ_INT(ms[j].offset, 100 + j);
            CHECK_EQ_INT(ms[j].timestamp, -1);
        }
    }
}

static void test_bad_wrappers(void) {
    uint8_t inner[2048], buf[4096];
    int err;
    legacy_message ms[8];
    /* Nested wrapper. */
    size_t in = write_three(inner, sizeof inner, 1, 0, 0);
    size_t mid = wrap(buf, sizeof buf, 1, COMPRESS_GZIP, 0, 2, 0, inner, in);
    uint8_t outer[4096];
    size_t n = wrap(outer, sizeof outer, 1, COMPRESS_GZIP, 0, 0, 0, buf, mid);
    collect(outer, n, ms, 8, &err);
    CHECK_EQ_INT(err, BATCH_ERECORDS);
    /* Inner magic differs from the wrapper's. */
    n = wrap(outer, sizeof outer, 0, COMPRESS_GZIP, 0, 2, 0, inner, in);
    collect(outer, n, ms, 8, &err);
    CHECK_EQ_INT(err, BATCH_ERECORDS);
    /* Wrapper with a null value, and with an empty inner set. */
    wire_writer w;
    wire_writer_init(&w, outer, sizeof outer);
    legacy_write_message(&w, 1, COMPRESS_GZIP, 0, 0, KBYTES_NULL, KBYTES_NULL);
    collect(outer, w.len, ms, 8, &err);
    CHECK_EQ_INT(err, BATCH_ERECORDS);
    n = wrap(outer, sizeof outer, 1, COMPRESS_GZIP, 0, 0, 0, inner, 0);
    collect(outer, n, ms, 8, &err);
    CHECK_EQ_INT(err, BATCH_ERECORDS);
    /* Inner set cut short inside the compressed data. */
    n = wrap(outer, sizeof outer, 1, COMPRESS_GZIP, 0, 2, 0, inner, in - 3);
    collect(outer, n, ms, 8, &err);
    CHECK_EQ_INT(err, BATCH_ERECORDS);
    /* Garbage that is not gzip. */
    wire_writer_init(&w, outer, sizeof outer);
    legacy_write_message(&w, 1, COMPRESS_GZIP, 0, 0, KBYTES_NULL, kb("this is not gzip"));
    collect(outer, w.len, ms, 8, &err);
    CHECK_EQ_INT(err, BATCH_ECODEC);
    /* zstd (4) and 5-7 are not legacy codecs. */
    for (int c = 4; c <= 7; c++) {
        wire_writer_init(&w, outer, sizeof outer);
        legacy_write_message(&w, 1, (int8_t)c, 0, 0, KBYTES_NULL, kb("x"));
        collect(outer, w.len, ms, 8, &err);
        CHECK_EQ_INT(err, BATCH_ECODEC);
    }
    /* A bomb: inner set bigger than the limit. */
    static uint8_t big[64 * 1024];
    wire_writer_init(&w, big, sizeof big);
    static uint8_t zeros[30000];
    legacy_write_message(&w, 1, 0, 0, 0, KBYTES_NULL, (kbytes){zeros, sizeof zeros});
    legacy_write_message(&w, 1, 0, 1, 0, KBYTES_NULL, (kbytes){zeros, sizeof zeros});
    REQUIRE(w.err == WIRE_OK);
    n = wrap(outer, sizeof outer, 1, COMPRESS_GZIP, 0, 1, 0, big, w.len);
    CHECK_EQ_INT(legacy_validate(outer, n, 1000, NULL), BATCH_ENOMEM);
    CHECK_EQ_INT(legacy_validate(outer, n, MAXU, NULL), BATCH_OK);
    /* The limit is shared by all wrappers of a set. */
    memcpy(outer + n, outer, n);
    CHECK_EQ_INT(legacy_validate(outer, 2 * n, 70000, NULL), BATCH_ENOMEM);
    CHECK_EQ_INT(legacy_validate(outer, 2 * n, 130000, NULL), BATCH_OK);
}

static void test_crc_and_corruption(void) {
    uint8_t buf[1024];
    for (int8_t magic = 0; magic <= 1; magic++) {
        size_t n = write_three(buf, sizeof buf, magic, 0, 0);
        size_t first = legacy_message_size(magic, kb("k0"), kb("v0"));
        int wrong = 0;
        for (size_t i = 0; i < first; i++) {
            for (int bit = 0; bit < 8; bit++) {
                buf[i] ^= (uint8_t)(1 << bit);
                int e = legacy_validate(buf, n, MAXU, NULL);
                bool ok;
                if (i < 8)
                    ok = e == BATCH_OK; /* the offset is not covered */
                else if (i < 12)
                    ok = e == BATCH_ETRUNC || e == BATCH_EMALFORMED || e == BATCH_ECRC || e == BATCH_EMAGIC;
                else if (i == 16)
                    ok = e == BATCH_EMAGIC || e == BATCH_ECRC || e == BATCH_EMALFORMED;
                else
                    ok = e == BATCH_ECRC;
                if (!ok) {
                    fprintf(stderr, "magic %d flip byte %zu bit %d: %d\n", magic, i, bit, e);
                    wrong++;
                }
                buf[i] ^= (uint8_t)(1 << bit);
            }
        }
        CHECK_EQ_INT(wrong, 0);
        /* Magic 2 where a legacy message should be. */
        buf[16] = 2;
        CHECK_EQ_INT(legacy_validate(buf, n, MAXU, NULL), BATCH_EMAGIC);
        buf[16] = (uint8_t)magic;
        /* Key length disagreeing with the size (CRC fixed up). */
        wire_put_be32(buf + 12 + 4 + 2 + (magic ? 8 : 0), 3);
        wire_put_be32(buf + 12, (uint32_t)crc32(0L, buf + 16, (uInt)(first - 16)));
        CHECK_EQ_INT(legacy_validate(buf, n, MAXU, NULL), BATCH_EMALFORMED);
        wire_put_be32(buf + 12 + 4 + 2 + (magic ? 8 : 0), (uint32_t)-2);
        wire_put_be32(buf + 12, (uint32_t)crc32(0L, buf + 16, (uInt)(first - 16)));
        CHECK_EQ_INT(legacy_validate(buf, n, MAXU, NULL), BATCH_EMALFORMED);
    }
    /* Size below the minimum, negative. */
    size_t n = write_three(buf, sizeof buf, 1, 0, 0);
    int32_t sizes[] = {13, 0, -1, 21};
    for (size_t i = 0; i < 4; i++) {
        write_three(buf, sizeof buf, 1, 0, 0);
        wire_put_be32(buf + 8, (uint32_t)sizes[i]);
        CHECK_EQ_INT(legacy_validate(buf, n, MAXU, NULL), BATCH_EMALFORMED);
    }
}

static void test_truncation(void) {
    uint8_t inner[1024], buf[4096];
    size_t in = write_three(inner, sizeof inner, 1, 0, 0);
    size_t n = wrap(buf, sizeof buf, 1, COMPRESS_GZIP, 0, 2, 0, inner, in);
    wire_writer w;
    wire_writer_init(&w, buf + n, sizeof buf - n);
    legacy_write_message(&w, 0, 0, 3, 0, kb("k"), kb("v"));
    size_t first = n;
    n += w.len;
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        int32_t count = -1;
        int e = legacy_validate(buf, cut, MAXU, &count);
        int want = (cut == 0 || cut == first) ? BATCH_OK : BATCH_ETRUNC;
        if (e != want) {
            fprintf(stderr, "cut %zu: %d\n", cut, e);
            bad++;
        }
        /* Whole messages before the cut are still returned. */
        if (count != (cut < first ? 0 : 3))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(legacy_validate(buf, n, MAXU, NULL), BATCH_OK);
}

static void test_to_batch(void) {
    uint8_t inner[1024], buf[4096];
    for (int codec = 0; codec <= 4; codec++) {
        size_t in = write_three(inner, sizeof inner, 1, 0, 0);
        size_t n = wrap(buf, sizeof buf, 1, COMPRESS_GZIP, 0, 52, 0, inner, in);
        wire_writer w;
        wire_writer_init(&w, buf + n, sizeof buf - n);
        legacy_write_message(&w, 1, 0, 60, 5000, kb("k3"), kb("v3"));
        n += w.len;
        for (int keep = 0; keep <= 1; keep++) {
            arena a;
            arena_init(&a, 4 * MAXU);
            uint8_t *b;
            size_t bl;
            size_t dec = 99;
            REQUIRE(legacy_to_batch(buf, n, &a, MAXU, codec, keep, &b, &bl, &dec) == BATCH_OK);
            CHECK_EQ_INT(dec, in); /* the gzip wrapper's inner set */
            CHECK_EQ_INT(batch_validate(b, bl, true, MAXU), BATCH_OK);
            batch_header h;
            REQUIRE(batch_parse_header(b, bl, &h) == BATCH_OK);
            CHECK_EQ_INT(batch_codec_of(&h), codec);
            CHECK_EQ_INT(h.record_count, 4);
            CHECK_EQ_INT(h.base_offset, keep ? 50 : 0);
            CHECK_EQ_INT(h.last_offset_delta, keep ? 10 : 3);
            CHECK_EQ_INT(h.max_timestamp, 5000);
            batch_iter it;
            REQUIRE(batch_iter_init(&it, b, bl, &a) == BATCH_OK);
            batch_record r;
            int i = 0;
            int64_t want_off[4] = {50, 51, 52, 60};
            while (batch_iter_next(&it, &r)) {
                CHECK_EQ_INT(r.offset, keep ? want_off[i] : i);
                CHECK_EQ_INT(r.timestamp, i < 3 ? 1000 + i : 5000);
                if (i < 3) {
                    CHECK(kb_eq(r.key, keys[i]));
                    CHECK(kb_eq(r.value, vals[i]));
                }
                i++;
            }
            CHECK_EQ_INT(it.err, BATCH_OK);
            CHECK_EQ_INT(i, 4);
            arena_reset(&a);
        }
    }
    /* magic 0 converts with timestamps -1; offsets going backwards cannot
     * be kept but can be reassigned. */
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    legacy_write_message(&w, 0, 0, 7, 0, kb("a"), kb("b"));
    legacy_write_message(&w, 0, 0, 3, 0, kb("c"), kb("d"));
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t bl;
    CHECK_EQ_INT(legacy_to_batch(buf, w.len, &a, MAXU, 0, true, &b, &bl, NULL), BATCH_EMALFORMED);
    REQUIRE(legacy_to_batch(buf, w.len, &a, MAXU, 0, false, &b, &bl, NULL) == BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, bl, true, MAXU), BATCH_OK);
    batch_header h;
    REQUIRE(batch_parse_header(b, bl, &h) == BATCH_OK);
    CHECK_EQ_INT(h.base_timestamp, -1);
    CHECK_EQ_INT(h.record_count, 2);
    /* Errors pass through. */
    buf[20] ^= 1;
    CHECK_EQ_INT(legacy_to_batch(buf, w.len, &a, MAXU, 0, false, &b, &bl, NULL), BATCH_ECRC);
    /* LogAppendTime carries over. */
    wire_writer_init(&w, buf, sizeof buf);
    legacy_write_message(&w, 1, LEGACY_ATTR_LOG_APPEND_TIME, 0, 4242, kb("a"), kb("b"));
    REQUIRE(legacy_to_batch(buf, w.len, &a, MAXU, 0, false, &b, &bl, NULL) == BATCH_OK);
    REQUIRE(batch_parse_header(b, bl, &h) == BATCH_OK);
    CHECK(h.attributes & BATCH_ATTR_LOG_APPEND_TIME);
    CHECK_EQ_INT(h.max_timestamp, 4242);
    arena_reset(&a);
}

int main(void) {
    UNIT_RUN(test_plain_sets);
    UNIT_RUN(test_wrappers);
    UNIT_RUN(test_bad_wrappers);
    UNIT_RUN(test_crc_and_corruption);
    UNIT_RUN(test_truncation);
    UNIT_RUN(test_to_batch);
    return UNIT_END("test_legacy");
}
