/* Unit tests for src/proto/compress.c: round trips for every codec, framing
 * variants (raw and xerial snappy, lz4 frames with and without sizes and
 * checksums, zstd frames without a content size, concatenated gzip members
 * and frames), the output limit against decompression bombs, garbage input,
 * and batches written by real clients (tests/data/batches, see its README). */
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/compress.h"
#include "unit.h"

#include <dirent.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#define MAXU (8u << 20)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint8_t rnd8(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 32);
}

/* Text-like bytes: compressible, but not trivially. */
static void fill_text(uint8_t *p, size_t n) {
    static const char *words[] = {"kafka ", "record ", "batch ", "offset ", "sluice ", "partition ", "x"};
    size_t i = 0;
    while (i < n) {
        const char *w = words[rnd8() % 7];
        for (size_t j = 0; w[j] && i < n; j++)
            p[i++] = (uint8_t)w[j];
    }
}

static void roundtrip(int codec, const uint8_t *in, size_t n) {
    arena a;
    arena_init(&a, 64u << 20);
    uint8_t *c, *d;
    size_t clen, dlen;
    REQUIRE(compress_compress(codec, in, n, &a, &c, &clen) == COMPRESS_OK);
    CHECK(clen <= compress_bound(codec, n));
    CHECK_EQ_INT(compress_decompress(codec, c, clen, &a, n, &d, &dlen), COMPRESS_OK);
    CHECK_EQ_INT(dlen, n);
    CHECK(n == 0 || memcmp(d, in, n) == 0);
    /* Into a caller's buffer: exact fits, one byte less does not. */
    uint8_t *buf = malloc(n + 1);
    REQUIRE(buf);
    CHECK_EQ_INT(compress_decompress_into(codec, c, clen, buf, n, &dlen), COMPRESS_OK);
    CHECK_EQ_INT(dlen, n);
    CHECK(n == 0 || memcmp(buf, in, n) == 0);
    if (n > 0) {
        CHECK_EQ_INT(compress_decompress_into(codec, c, clen, buf, n - 1, &dlen), COMPRESS_ELIMIT);
        CHECK_EQ_INT(compress_decompress(codec, c, clen, &a, n - 1, &d, &dlen), COMPRESS_ELIMIT);
    }
    free(buf);
    arena_reset(&a);
}

static void test_roundtrip(void) {
    static uint8_t text[1 << 20], rnd[100000];
    fill_text(text, sizeof text);
    for (size_t i = 0; i < sizeof rnd; i++)
        rnd[i] = rnd8();
    size_t sizes[] = {0, 1, 7, 100, 32767, 32768, 32769, 65536 + 3, sizeof text};
    for (int codec = 1; codec <= 4; codec++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            roundtrip(codec, text, sizes[i]);
        roundtrip(codec, rnd, sizeof rnd);
    }
}

static void test_unknown_codec(void) {
    arena a;
    arena_init(&a, 1 << 20);
    uint8_t in[4] = {1, 2, 3, 4}, *out;
    size_t n;
    int codecs[] = {0, 5, 7, -1, 100};
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ_INT(compress_decompress(codecs[i], in, 4, &a, 100, &out, &n), COMPRESS_ECODEC);
        CHECK_EQ_INT(compress_compress(codecs[i], in, 4, &a, &out, &n), COMPRESS_ECODEC);
        CHECK_EQ_INT(compress_bound(codecs[i], 4), 0);
    }
    CHECK(strcmp(compress_codec_name(COMPRESS_ZSTD), "zstd") == 0);
    CHECK(strcmp(compress_strerror(COMPRESS_ELIMIT), "ok") != 0);
    arena_reset(&a);
}

/* A small input that expands far past max_out must fail without ever
 * holding more than max_out of output. */
static void test_bombs(void) {
    size_t big = 16u << 20;
    uint8_t *zeros = calloc(1, big);
    REQUIRE(zeros);
    for (int codec = 1; codec <= 4; codec++) {
        arena a;
        arena_init(&a, 64u << 20);
        uint8_t *c, *d;
        size_t clen, dlen;
        REQUIRE(compress_compress(codec, zeros, big, &a, &c, &clen) == COMPRESS_OK);
        CHECK(clen < big / 20);
        arena dst;
        arena_init(&dst, 2u << 20);
        CHECK_EQ_INT(compress_decompress(codec, c, clen, &dst, 1u << 20, &d, &dlen), COMPRESS_ELIMIT);
        CHECK(dst.used <= (2u << 20));
        static uint8_t buf[4096];
        CHECK_EQ_INT(compress_decompress_into(codec, c, clen, buf, sizeof buf, &dlen), COMPRESS_ELIMIT);
        /* Limit fine but the arena too small: ENOMEM rather than a crash. */
        arena tiny;
        arena_init(&tiny, 1000);
        CHECK_EQ_INT(compress_decompress(codec, c, clen, &tiny, big, &d, &dlen), COMPRESS_ENOMEM);
        arena_reset(&tiny);
        arena_reset(&dst);
        arena_reset(&a);
    }
    free(zeros);
}

static void test_garbage(void) {
    static uint8_t text[5000], junk[3000];
    fill_text(text, sizeof text);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = rnd8();
    for (int codec = 1; codec <= 4; codec++) {
        arena a;
        arena_init(&a, 4u << 20);
        uint8_t *c, *d;
        size_t clen, dlen;
        CHECK_EQ_INT(compress_decompress(codec, junk, sizeof junk, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);
        CHECK_EQ_INT(compress_decompress(codec, junk, 0, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);
        /* Valid data cut short at every length, or with one byte flipped:
         * never a crash, never success with wrong contents. */
        arena ca; /* holds the compressed bytes while a is reset per cut */
        arena_init(&ca, 1u << 20);
        REQUIRE(compress_compress(codec, text, sizeof text, &ca, &c, &clen) == COMPRESS_OK);
        int bad = 0;
        for (size_t cut = 0; cut < clen; cut++) {
            int e = compress_decompress(codec, c, cut, &a, MAXU, &d, &dlen);
            if (codec == COMPRESS_SNAPPY && cut == 16 && e == COMPRESS_OK && dlen == 0)
                continue; /* the xerial header alone is a valid empty stream */
            if (e == COMPRESS_OK && (dlen != sizeof text || memcmp(d, text, dlen) != 0))
                bad++;
            if (e == COMPRESS_OK && cut < clen - 8) {
                fprintf(stderr, "codec %d: cut %zu of %zu decoded to %zu bytes\n", codec, cut, clen, dlen);
                bad++; /* only trailing checksum/empty bytes may be missing */
            }
            arena_reset(&a);
        }
        CHECK_EQ_INT(bad, 0);
        for (size_t i = 0; i < clen; i += 3) {
            c[i] ^= 0x55;
            (void)compress_decompress(codec, c, clen, &a, sizeof text * 2, &d, &dlen);
            c[i] ^= 0x55;
        }
        /* Trailing junk after a complete stream. */
        uint8_t *c2 = arena_alloc(&a, clen + 4);
        REQUIRE(c2);
        memcpy(c2, c, clen);
        memcpy(c2 + clen, "\x01\x02\x03\x04", 4);
        if (codec != COMPRESS_SNAPPY) /* a xerial frame of junk length is caught too, below */
            CHECK(compress_decompress(codec, c2, clen + 4, &a, MAXU, &d, &dlen) != COMPRESS_OK);
        else
            CHECK_EQ_INT(compress_decompress(codec, c2, clen + 4, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);
        arena_reset(&a);
        arena_reset(&ca);
    }
}

static void test_framings(void) {
    static uint8_t text[200000];
    fill_text(text, sizeof text);
    arena a;
    arena_init(&a, 16u << 20);
    uint8_t *d;
    size_t dlen;

    /* Raw snappy, no xerial framing. */
    size_t cap = snappy_max_compressed_length(sizeof text);
    char *raw = malloc(cap);
    REQUIRE(raw);
    size_t rlen = cap;
    REQUIRE(snappy_compress((const char *)text, sizeof text, raw, &rlen) == SNAPPY_OK);
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, (uint8_t *)raw, rlen, &a, MAXU, &d, &dlen),
                 COMPRESS_OK);
    CHECK(dlen == sizeof text && memcmp(d, text, dlen) == 0);
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, (uint8_t *)raw, rlen, &a, 1000, &d, &dlen),
                 COMPRESS_ELIMIT);
    free(raw);

    /* xerial header alone is an empty stream; a bad chunk length is corrupt. */
    uint8_t xh[20] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0, 0, 0};
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xh, 16, &a, MAXU, &d, &dlen), COMPRESS_OK);
    CHECK_EQ_INT(dlen, 0);
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xh, 20, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);
    CHECK_EQ_INT(compress_decompress(COMPRESS_SNAPPY, xh, 12, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);

    /* lz4 frames: with content size and both checksums, 4 MiB linked blocks. */
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof p);
    p.frameInfo.contentSize = sizeof text;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    p.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    p.frameInfo.blockSizeID = LZ4F_max4MB;
    p.frameInfo.blockMode = LZ4F_blockLinked;
    size_t lcap = LZ4F_compressFrameBound(sizeof text, &p) * 2;
    uint8_t *lz = malloc(lcap);
    REQUIRE(lz);
    size_t l1 = LZ4F_compressFrame(lz, lcap, text, sizeof text, &p);
    REQUIRE(!LZ4F_isError(l1));
    CHECK_EQ_INT(compress_decompress(COMPRESS_LZ4, lz, l1, &a, MAXU, &d, &dlen), COMPRESS_OK);
    CHECK(dlen == sizeof text && memcmp(d, text, dlen) == 0);
    /* The content checksum is checked. */
    lz[l1 - 2] ^= 1;
    CHECK_EQ_INT(compress_decompress(COMPRESS_LZ4, lz, l1, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);
    lz[l1 - 2] ^= 1;
    /* Two frames back to back. */
    size_t l2 = LZ4F_compressFrame(lz + l1, lcap - l1, text, 1000, NULL);
    REQUIRE(!LZ4F_isError(l2));
    CHECK_EQ_INT(compress_decompress(COMPRESS_LZ4, lz, l1 + l2, &a, MAXU, &d, &dlen), COMPRESS_OK);
    CHECK(dlen == sizeof text + 1000 && memcmp(d + sizeof text, text, 1000) == 0);
    free(lz);

    /* zstd streamed without a content size, then two frames. */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    REQUIRE(cc);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t zcap = ZSTD_compressBound(sizeof text) * 2 + 64;
    uint8_t *zb = malloc(zcap);
    REQUIRE(zb);
    ZSTD_inBuffer ib = {text, sizeof text, 0};
    ZSTD_outBuffer ob = {zb, zcap, 0};
    REQUIRE(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end) == 0);
    size_t z1 = ob.pos;
    CHECK(ZSTD_getFrameContentSize(zb, z1) == ZSTD_CONTENTSIZE_UNKNOWN);
    CHECK_EQ_INT(compress_decompress(COMPRESS_ZSTD, zb, z1, &a, MAXU, &d, &dlen), COMPRESS_OK);
    CHECK(dlen == sizeof text && memcmp(d, text, dlen) == 0);
    CHECK_EQ_INT(compress_decompress(COMPRESS_ZSTD, zb, z1, &a, 5000, &d, &dlen), COMPRESS_ELIMIT);
    size_t z2 = ZSTD_compress(zb + z1, zcap - z1, text, 777, 1);
    REQUIRE(!ZSTD_isError(z2));
    CHECK_EQ_INT(compress_decompress(COMPRESS_ZSTD, zb, z1 + z2, &a, MAXU, &d, &dlen), COMPRESS_OK);
    CHECK(dlen == sizeof text + 777 && memcmp(d + sizeof text, text, 777) == 0);
    ZSTD_freeCCtx(cc);
    free(zb);

    /* Two gzip members back to back; junk after a member is refused. */
    arena_reset(&a);
    uint8_t *g1, *g2;
    size_t g1n, g2n;
    REQUIRE(compress_compress(COMPRESS_GZIP, text, 3000, &a, &g1, &g1n) == COMPRESS_OK);
    REQUIRE(compress_compress(COMPRESS_GZIP, text + 3000, 4000, &a, &g2, &g2n) == COMPRESS_OK);
    uint8_t *gg = arena_alloc(&a, g1n + g2n + 2);
    REQUIRE(gg);
    memcpy(gg, g1, g1n);
    memcpy(gg + g1n, g2, g2n);
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, gg, g1n + g2n, &a, MAXU, &d, &dlen), COMPRESS_OK);
    CHECK(dlen == 7000 && memcmp(d, text, 7000) == 0);
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, gg, g1n + g2n, &a, 6999, &d, &dlen), COMPRESS_ELIMIT);
    gg[g1n + g2n] = 0;
    gg[g1n + g2n + 1] = 0;
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, gg, g1n + g2n + 2, &a, MAXU, &d, &dlen),
                 COMPRESS_ECORRUPT);
    /* zlib framing (not gzip) is refused. */
    uLongf zl = compressBound(3000);
    uint8_t *zz = arena_alloc(&a, zl);
    REQUIRE(zz && compress2(zz, &zl, text, 3000, 6) == Z_OK);
    CHECK_EQ_INT(compress_decompress(COMPRESS_GZIP, zz, zl, &a, MAXU, &d, &dlen), COMPRESS_ECORRUPT);
    arena_reset(&a);
}

/* ---- batches from real clients ----------------------------------------- */

/* base: offset of record 0 (files captured from a broker may not start at 0). */
static int check_pattern_record(const batch_record *r, int i, int64_t base) {
    char key[32], val[160];
    int kn = snprintf(key, sizeof key, "key-%d", i);
    int vn = snprintf(val, sizeof val, "value-%d-", i);
    memset(val + vn, 'x', 100);
    vn += 100;
    if (r->key.len != kn || memcmp(r->key.ptr, key, (size_t)kn) != 0)
        return 1;
    if (r->value.len != vn || memcmp(r->value.ptr, val, (size_t)vn) != 0)
        return 2;
    if (r->offset != base + i)
        return 3;
    wire_reader hr;
    batch_record_headers(r, &hr);
    kstr hk;
    kbytes hv;
    int n = 0;
    while (batch_record_next_header((batch_record *)r, &hr, &hk, &hv)) {
        char num[16];
        int nn = snprintf(num, sizeof num, "%d", i);
        if (!kstr_eq_c(hk, "h") || hv.len != nn || memcmp(hv.ptr, num, (size_t)nn) != 0)
            return 4;
        n++;
    }
    if (hr.err != WIRE_OK || n != (i % 2 == 0 ? 1 : 0) || r->header_count != n)
        return 5;
    return 0;
}

/* Checks a whole file: one or more batches holding the 50 pattern records. */
static int check_pattern_file(const uint8_t *buf, size_t len) {
    batch_cursor c;
    batch_cursor_init(&c, buf, len);
    const uint8_t *b;
    size_t bs;
    batch_header h;
    int i = 0, e;
    int64_t base = 0;
    arena a;
    arena_init(&a, MAXU);
    while ((e = batch_cursor_next(&c, &b, &bs, &h)) == BATCH_OK) {
        int v = batch_validate(b, bs, true, MAXU);
        if (v != BATCH_OK) {
            fprintf(stderr, "  batch validate: %s\n", batch_strerror(v));
            return 10;
        }
        batch_iter it;
        if (batch_iter_init(&it, b, bs, &a) != BATCH_OK)
            return 11;
        batch_record r;
        while (batch_iter_next(&it, &r)) {
            if (i == 0)
                base = r.offset;
            int bad = check_pattern_record(&r, i, base);
            if (bad) {
                fprintf(stderr, "  record %d: mismatch %d\n", i, bad);
                return 12;
            }
            i++;
        }
        if (it.err != BATCH_OK)
            return 13;
        arena_reset(&a);
    }
    arena_reset(&a);
    if (e != -1)
        return 14;
    return i == 50 ? 0 : 15;
}

static void test_client_batches(void) {
    DIR *dir = opendir("tests/data/batches");
    REQUIRE(dir != NULL);
    struct dirent *de;
    int files = 0, kp = 0;
    static uint8_t buf[1 << 20];
    while ((de = readdir(dir)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".bin") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "tests/data/batches/%s", de->d_name);
        FILE *f = fopen(path, "rb");
        REQUIRE(f != NULL);
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        int e = check_pattern_file(buf, n);
        printf("  %s: %zu bytes, %s\n", de->d_name, n, e ? "FAIL" : "ok");
        if (e)
            fprintf(stderr, "%s: check failed (%d)\n", path, e);
        CHECK_EQ_INT(e, 0);
        files++;
        if (strncmp(de->d_name, "kafka-python-", 13) == 0)
            kp++;
    }
    closedir(dir);
    CHECK(kp >= 5);
    CHECK(files >= kp);
}

/* Our own builder writes the same pattern with every codec; the checker
 * must accept it too (and so this also tests the builder's codecs). */
static void test_builder_pattern(void) {
    static char keys[50][16], vals[50][160], nums[50][8];
    static batch_build_header hdr[50];
    batch_build_record recs[50];
    for (int i = 0; i < 50; i++) {
        int kn = snprintf(keys[i], 16, "key-%d", i);
        int vn = snprintf(vals[i], 160, "value-%d-", i);
        memset(vals[i] + vn, 'x', 100);
        int nn = snprintf(nums[i], 8, "%d", i);
        hdr[i] = (batch_build_header){{"h", 1}, {(const uint8_t *)nums[i], nn}};
        recs[i] = (batch_build_record){{(const uint8_t *)keys[i], kn},
                                       {(const uint8_t *)vals[i], vn + 100},
                                       1700000000000LL + i,
                                       0,
                                       &hdr[i],
                                       i % 2 == 0 ? 1 : 0};
    }
    for (int codec = 0; codec <= 4; codec++) {
        arena a;
        arena_init(&a, MAXU);
        batch_build_opts o = batch_build_defaults();
        o.codec = codec;
        uint8_t *b;
        size_t n;
        REQUIRE(batch_build(&o, recs, 50, &a, &b, &n) == BATCH_OK);
        CHECK_EQ_INT(check_pattern_file(b, n), 0);
        arena_reset(&a);
    }
}

int main(void) {
    UNIT_RUN(test_roundtrip);
    UNIT_RUN(test_unknown_codec);
    UNIT_RUN(test_bombs);
    UNIT_RUN(test_garbage);
    UNIT_RUN(test_framings);
    UNIT_RUN(test_client_batches);
    UNIT_RUN(test_builder_pattern);
    compress_thread_release();
    compress_thread_release();
    return UNIT_END("test_compress");
}
