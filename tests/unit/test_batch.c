/* Unit tests for src/proto/batch.c and batch_build.c: header parsing, CRC,
 * shallow and deep validation with every error path, in-place patches,
 * record iteration and the batch cursor. */
#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/compress.h"
#include "unit.h"

#define MAXU (1u << 20)

/* ---- test-only raw builder: wraps hand-written record bytes ------------ */

/* Writes a 61-byte header in front of raw records and seals the CRC. */
static size_t wrap(uint8_t *out, size_t cap, const uint8_t *recs, size_t recs_len, int32_t count,
                   int32_t last_delta, int16_t attrs) {
    size_t total = BATCH_HEADER_SIZE + recs_len;
    REQUIRE(total <= cap);
    memset(out, 0, BATCH_HEADER_SIZE);
    wire_put_be64(out, 100);
    wire_put_be32(out + BATCH_OFF_LENGTH, (uint32_t)(total - BATCH_LOG_OVERHEAD));
    wire_put_be32(out + BATCH_OFF_LEADER_EPOCH, 7);
    out[BATCH_OFF_MAGIC] = 2;
    wire_put_be16(out + BATCH_OFF_ATTRIBUTES, (uint16_t)attrs);
    wire_put_be32(out + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)last_delta);
    wire_put_be64(out + BATCH_OFF_BASE_TIMESTAMP, 1000);
    wire_put_be64(out + BATCH_OFF_MAX_TIMESTAMP, 1002);
    wire_put_be64(out + BATCH_OFF_PRODUCER_ID, (uint64_t)-1);
    wire_put_be16(out + BATCH_OFF_PRODUCER_EPOCH, (uint16_t)-1);
    wire_put_be32(out + BATCH_OFF_BASE_SEQUENCE, (uint32_t)-1);
    wire_put_be32(out + BATCH_OFF_RECORD_COUNT, (uint32_t)count);
    if (recs_len)
        memcpy(out + BATCH_HEADER_SIZE, recs, recs_len);
    wire_put_be32(out + BATCH_OFF_CRC, crc32c(0, out + BATCH_OFF_ATTRIBUTES, total - BATCH_OFF_ATTRIBUTES));
    return total;
}

static void reseal(uint8_t *b, size_t n) {
    wire_put_be32(b + BATCH_OFF_CRC, crc32c(0, b + BATCH_OFF_ATTRIBUTES, n - BATCH_OFF_ATTRIBUTES));
}

/* One record body with the given raw pieces. */
static size_t raw_record(uint8_t *out, int32_t len_override, int64_t ts_delta, int32_t off_delta,
                         int32_t klen, const char *key, int32_t vlen, const char *val, int32_t hcount) {
    uint8_t body[256];
    wire_writer w;
    wire_writer_init(&w, body, sizeof body);
    wire_write_i8(&w, 0);
    wire_write_varlong(&w, ts_delta);
    wire_write_varint(&w, off_delta);
    wire_write_varint(&w, klen);
    if (klen > 0) /* a klen past the key's text writes only the text */
        wire_write_raw(&w, key, (size_t)klen < strlen(key) ? (size_t)klen : strlen(key));
    wire_write_varint(&w, vlen);
    if (vlen > 0)
        wire_write_raw(&w, val, (size_t)vlen < strlen(val) ? (size_t)vlen : strlen(val));
    wire_write_varint(&w, hcount);
    wire_writer ow;
    wire_writer_init(&ow, out, 300);
    wire_write_varint(&ow, len_override != INT32_MIN ? len_override : (int32_t)w.len);
    wire_write_raw(&ow, body, w.len);
    return ow.len;
}

/* ---- a standard five-record batch via the library builder -------------- */

static const batch_build_header hdrs2[2] = {
    {{"h1", 2}, {(const uint8_t *)"v1", 2}},
    {{"h2", 2}, {NULL, -1}},
};

static int build5(arena *a, int codec, uint8_t **out, size_t *len) {
    static batch_build_record recs[5];
    memset(recs, 0, sizeof recs);
    recs[0] =
        (batch_build_record){{(const uint8_t *)"k0", 2}, {(const uint8_t *)"value-0", 7}, 1000, 0, NULL, 0};
    recs[1] = (batch_build_record){{NULL, -1}, {(const uint8_t *)"value-1", 7}, 1001, 0, hdrs2, 2};
    recs[2] = (batch_build_record){{(const uint8_t *)"k2", 2}, {NULL, -1}, 999, 0, NULL, 0};
    recs[3] = (batch_build_record){{(const uint8_t *)"", 0}, {(const uint8_t *)"", 0}, 1005, 0, hdrs2, 1};
    recs[4] =
        (batch_build_record){{(const uint8_t *)"k4", 2}, {(const uint8_t *)"value-4", 7}, 1003, 0, NULL, 0};
    batch_build_opts o = batch_build_defaults();
    o.base_offset = 0;
    o.codec = codec;
    o.producer_id = 42;
    o.producer_epoch = 3;
    o.base_sequence = 10;
    return batch_build(&o, recs, 5, a, out, len);
}

static bool kb_eq(kbytes b, const char *s) {
    if (s == NULL)
        return b.len == -1;
    return b.len == (int32_t)strlen(s) && memcmp(b.ptr, s, (size_t)b.len) == 0;
}

static void check5(const uint8_t *b, size_t n, int64_t base) {
    arena a;
    arena_init(&a, MAXU);
    batch_iter it;
    REQUIRE(batch_iter_init(&it, b, n, &a) == BATCH_OK);
    batch_record r;
    const char *keys[5] = {"k0", NULL, "k2", "", "k4"};
    const char *vals[5] = {"value-0", "value-1", NULL, "", "value-4"};
    int64_t ts[5] = {1000, 1001, 999, 1005, 1003};
    int32_t hc[5] = {0, 2, 0, 1, 0};
    int i = 0;
    while (batch_iter_next(&it, &r)) {
        REQUIRE(i < 5);
        CHECK(kb_eq(r.key, keys[i]));
        CHECK(kb_eq(r.value, vals[i]));
        CHECK_EQ_INT(r.timestamp, ts[i]);
        CHECK_EQ_INT(r.offset, base + i);
        CHECK_EQ_INT(r.offset_delta, i);
        CHECK_EQ_INT(r.header_count, hc[i]);
        wire_reader hr;
        batch_record_headers(&r, &hr);
        kstr hk;
        kbytes hv;
        int j = 0;
        while (batch_record_next_header(&r, &hr, &hk, &hv)) {
            CHECK(kstr_eq(hk, hdrs2[j].key));
            CHECK(hv.len == hdrs2[j].value.len);
            j++;
        }
        CHECK_EQ_INT(hr.err, WIRE_OK);
        CHECK_EQ_INT(j, hc[i]);
        i++;
    }
    CHECK_EQ_INT(it.err, BATCH_OK);
    CHECK_EQ_INT(i, 5);
    arena_reset(&a);
}

static void test_build_parse_iterate(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    REQUIRE(build5(&a, BATCH_CODEC_NONE, &b, &n) == BATCH_OK);
    batch_header h;
    REQUIRE(batch_parse_header(b, n, &h) == BATCH_OK);
    CHECK_EQ_INT(batch_total_size(&h), n);
    CHECK_EQ_INT(h.magic, 2);
    CHECK_EQ_INT(h.record_count, 5);
    CHECK_EQ_INT(h.last_offset_delta, 4);
    CHECK_EQ_INT(h.base_timestamp, 1000);
    CHECK_EQ_INT(h.max_timestamp, 1005);
    CHECK_EQ_INT(h.producer_id, 42);
    CHECK_EQ_INT(h.producer_epoch, 3);
    CHECK_EQ_INT(h.base_sequence, 10);
    CHECK_EQ_INT(h.partition_leader_epoch, -1);
    CHECK_EQ_INT(batch_codec_of(&h), 0);
    CHECK(batch_crc_ok(b, n));
    CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    check5(b, n, 0);
    arena_reset(&a);
}

static void test_codecs(void) {
    for (int codec = 1; codec <= 4; codec++) {
        arena a;
        arena_init(&a, MAXU);
        uint8_t *b;
        size_t n;
        REQUIRE(build5(&a, codec, &b, &n) == BATCH_OK);
        batch_header h;
        REQUIRE(batch_parse_header(b, n, &h) == BATCH_OK);
        CHECK_EQ_INT(batch_codec_of(&h), codec);
        CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
        /* Too little room for the decompressed records. */
        CHECK_EQ_INT(batch_validate(b, n, true, 10), BATCH_ENOMEM);
        check5(b, n, 0);
        /* An iterator arena too small to hold the records. */
        arena small;
        arena_init(&small, 16);
        batch_iter it;
        CHECK_EQ_INT(batch_iter_init(&it, b, n, &small), BATCH_ENOMEM);
        batch_record r;
        CHECK(!batch_iter_next(&it, &r));
        arena_reset(&small);
        /* Garbage in place of the compressed payload. */
        memset(b + BATCH_HEADER_SIZE, 0x5a, n - BATCH_HEADER_SIZE);
        reseal(b, n);
        CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_OK);
        CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ECOMPRESSED);
        arena_reset(&a);
    }
    /* Unknown codecs 5..7. */
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    REQUIRE(build5(&a, 0, &b, &n) == BATCH_OK);
    for (int c = 5; c <= 7; c++) {
        wire_put_be16(b + BATCH_OFF_ATTRIBUTES, (uint16_t)c);
        reseal(b, n);
        CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_ECODEC);
        batch_iter it;
        CHECK_EQ_INT(batch_iter_init(&it, b, n, &a), BATCH_ECODEC);
    }
    batch_build_opts o = batch_build_defaults();
    o.codec = 6;
    CHECK_EQ_INT(batch_build(&o, NULL, 0, &a, &b, &n), BATCH_ECODEC);
    arena_reset(&a);
}

static void test_truncation_every_byte(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    REQUIRE(build5(&a, BATCH_CODEC_NONE, &b, &n) == BATCH_OK);
    for (size_t len = 0; len < n; len++) {
        batch_header h;
        CHECK_EQ_INT(batch_parse_header(b, len, &h), BATCH_ETRUNC);
        CHECK_EQ_INT(batch_validate(b, len, true, MAXU), BATCH_ETRUNC);
        batch_cursor c;
        batch_cursor_init(&c, b, len);
        const uint8_t *bp;
        size_t bs;
        CHECK_EQ_INT(batch_cursor_next(&c, &bp, &bs, &h), len == 0 ? -1 : BATCH_ETRUNC);
        CHECK_EQ_INT(batch_cursor_consumed(&c), 0);
    }
    /* Records cut at every byte, with the header (length, CRC) made to agree
     * with the shorter bytes: only record-level checks can catch these. */
    size_t rec_len = n - BATCH_HEADER_SIZE;
    static uint8_t w[4096];
    for (size_t cut = 0; cut < rec_len; cut++) {
        size_t m = wrap(w, sizeof w, b + BATCH_HEADER_SIZE, cut, 5, 4, 0);
        CHECK_EQ_INT(batch_validate(w, m, false, MAXU), BATCH_OK);
        CHECK_EQ_INT(batch_validate(w, m, true, MAXU), BATCH_ERECORDS);
    }
    size_t m = wrap(w, sizeof w, b + BATCH_HEADER_SIZE, rec_len, 5, 4, 0);
    CHECK_EQ_INT(batch_validate(w, m, true, MAXU), BATCH_OK);
    /* Compressed batches cut at every byte of the payload. */
    for (int codec = 1; codec <= 4; codec++) {
        REQUIRE(build5(&a, codec, &b, &n) == BATCH_OK);
        int ok = 0;
        for (size_t cut = 0; cut < n - BATCH_HEADER_SIZE; cut++) {
            size_t mm = wrap(w, sizeof w, b + BATCH_HEADER_SIZE, cut, 5, 4, (int16_t)codec);
            if (batch_validate(w, mm, true, MAXU) == BATCH_OK)
                ok++;
        }
        CHECK_EQ_INT(ok, 0);
    }
    arena_reset(&a);
}

static void test_bit_flips(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    REQUIRE(build5(&a, BATCH_CODEC_NONE, &b, &n) == BATCH_OK);
    int wrong = 0;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1 << bit);
            int e = batch_validate(b, n, true, MAXU);
            int want;
            if (i < BATCH_OFF_LENGTH || (i >= BATCH_OFF_LEADER_EPOCH && i < BATCH_OFF_MAGIC))
                want = BATCH_OK; /* baseOffset and leader epoch are outside the CRC */
            else if (i < BATCH_OFF_LEADER_EPOCH)
                want = -2; /* batchLength: truncated or malformed */
            else if (i == BATCH_OFF_MAGIC)
                want = BATCH_EMAGIC;
            else
                want = BATCH_ECRC;
            if (want == -2 ? (e != BATCH_ETRUNC && e != BATCH_EMALFORMED) : e != want) {
                fprintf(stderr, "flip byte %zu bit %d: got %d\n", i, bit, e);
                wrong++;
            }
            b[i] ^= (uint8_t)(1 << bit);
        }
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    arena_reset(&a);
}

static void test_magic_and_sizes(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    REQUIRE(build5(&a, BATCH_CODEC_NONE, &b, &n) == BATCH_OK);
    batch_header h;
    for (int m = 0; m < 256; m++) {
        if (m == 2)
            continue;
        b[BATCH_OFF_MAGIC] = (uint8_t)m;
        CHECK_EQ_INT(batch_parse_header(b, n, &h), BATCH_EMAGIC);
        CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_EMAGIC);
    }
    b[BATCH_OFF_MAGIC] = 2;
    /* batchLength too small, negative, too large. */
    int32_t lens[] = {48, 0, -1, INT32_MIN};
    for (size_t i = 0; i < 4; i++) {
        wire_put_be32(b + BATCH_OFF_LENGTH, (uint32_t)lens[i]);
        CHECK_EQ_INT(batch_parse_header(b, n, &h), BATCH_EMALFORMED);
    }
    wire_put_be32(b + BATCH_OFF_LENGTH, INT32_MAX);
    CHECK_EQ_INT(batch_parse_header(b, n, &h), BATCH_ETRUNC);
    wire_put_be32(b + BATCH_OFF_LENGTH, (uint32_t)(n - BATCH_LOG_OVERHEAD));
    /* More bytes than the batch: validate wants exactly the batch. */
    static uint8_t big[4096];
    memcpy(big, b, n);
    CHECK_EQ_INT(batch_validate(big, n + 1, false, MAXU), BATCH_EMALFORMED);
    CHECK_EQ_INT(batch_validate(big, n, true, MAXU), BATCH_OK);
    /* Record count mismatches (CRC resealed so only counting can tell). */
    int32_t counts[] = {4, 0};
    int want[] = {BATCH_ERECORDS, BATCH_ERECORDS};
    for (size_t i = 0; i < 2; i++) {
        wire_put_be32(b + BATCH_OFF_RECORD_COUNT, (uint32_t)counts[i]);
        reseal(b, n);
        CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_OK);
        CHECK_EQ_INT(batch_validate(b, n, true, MAXU), want[i]);
    }
    /* More records than lastOffsetDelta allows. */
    wire_put_be32(b + BATCH_OFF_RECORD_COUNT, 6);
    reseal(b, n);
    CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_EMALFORMED);
    /* Six records claimed with room for them by offset, five present. */
    wire_put_be32(b + BATCH_OFF_LAST_OFFSET_DELTA, 5);
    reseal(b, n);
    CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ERECORDS);
    wire_put_be32(b + BATCH_OFF_LAST_OFFSET_DELTA, 4);
    wire_put_be32(b + BATCH_OFF_RECORD_COUNT, (uint32_t)-1);
    reseal(b, n);
    CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_EMALFORMED);
    wire_put_be32(b + BATCH_OFF_RECORD_COUNT, 100000);
    reseal(b, n);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_EMALFORMED); /* > lastOffsetDelta + 1 */
    wire_put_be32(b + BATCH_OFF_LAST_OFFSET_DELTA, 99999);
    reseal(b, n);
    CHECK_EQ_INT(batch_validate(b, n, false, MAXU), BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ERECORDS);
    wire_put_be32(b + BATCH_OFF_RECORD_COUNT, 5);
    /* lastOffsetDelta: negative, smaller than count - 1, larger than the last record's. */
    int32_t lods[] = {-1, 3, 5};
    int lwant_shallow[] = {BATCH_EMALFORMED, BATCH_EMALFORMED, BATCH_OK};
    int lwant_deep[] = {BATCH_EMALFORMED, BATCH_EMALFORMED, BATCH_ERECORDS};
    for (size_t i = 0; i < 3; i++) {
        wire_put_be32(b + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)lods[i]);
        reseal(b, n);
        CHECK_EQ_INT(batch_validate(b, n, false, MAXU), lwant_shallow[i]);
        CHECK_EQ_INT(batch_validate(b, n, true, MAXU), lwant_deep[i]);
    }
    arena_reset(&a);
}

static void test_malformed_records(void) {
    uint8_t recs[1024], out[2048];
    size_t n;
    /* A good one first, to prove the helper. */
    n = raw_record(recs, INT32_MIN, 0, 0, 1, "k", 1, "v", 0);
    CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, n, 1, 0, 0), true, MAXU), BATCH_OK);

    struct {
        int32_t len_override, off_delta, klen, vlen, hcount;
        int32_t adjust; /* added to the real body length when len_override is INT32_MIN+1 */
    } bad[] = {
        {-1, 0, 1, 1, 0, 0},             /* negative record length */
        {INT32_MIN + 1, 0, 1, 1, 0, 1},  /* length one more than the fields */
        {INT32_MIN + 1, 0, 1, 1, 0, -1}, /* length one less than the fields */
        {INT32_MIN, 0, -2, 1, 0, 0},     /* key length -2 */
        {INT32_MIN, 0, 1, -5, 0, 0},     /* value length -5 */
        {INT32_MIN, 0, 1, 1, -1, 0},     /* header count -1 */
        {INT32_MIN, 0, 1, 1, 1, 0},      /* one header promised, none present */
        {INT32_MIN, -1, 1, 1, 0, 0},     /* negative offset delta */
        {INT32_MIN, 1, 1, 1, 0, 0},      /* offset delta past lastOffsetDelta (0) */
        {INT32_MIN, 0, 100, 1, 0, 0},    /* key longer than the record */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = raw_record(recs, INT32_MIN, 0, bad[i].off_delta, bad[i].klen, "kkkk", bad[i].vlen, "v",
                       bad[i].hcount);
        if (bad[i].len_override == INT32_MIN + 1) {
            /* Re-encode with an adjusted length prefix; pad or trim the tail. */
            uint8_t body[256];
            wire_reader r;
            wire_reader_init(&r, recs, n);
            int32_t real = wire_read_varint(&r);
            memcpy(body, r.p, (size_t)real);
            body[real] = 0;
            wire_writer w;
            wire_writer_init(&w, recs, sizeof recs);
            wire_write_varint(&w, real + bad[i].adjust);
            wire_write_raw(&w, body, (size_t)(real + (bad[i].adjust > 0 ? 1 : 0)));
            n = w.len;
        } else if (bad[i].len_override != INT32_MIN) {
            n = raw_record(recs, bad[i].len_override, 0, 0, 1, "k", 1, "v", 0);
        }
        size_t m = wrap(out, sizeof out, recs, n, 1, 0, 0);
        int e = batch_validate(out, m, true, MAXU);
        if (e != BATCH_ERECORDS)
            fprintf(stderr, "malformed case %zu: got %d\n", i, e);
        CHECK_EQ_INT(e, BATCH_ERECORDS);
        CHECK_EQ_INT(batch_validate(out, m, false, MAXU), BATCH_OK);
    }

    /* Offset deltas must strictly increase. */
    n = raw_record(recs, INT32_MIN, 0, 0, 1, "a", 1, "v", 0);
    n += raw_record(recs + n, INT32_MIN, 0, 0, 1, "b", 1, "v", 0);
    CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, n, 2, 1, 0), true, MAXU), BATCH_ERECORDS);
    /* Gaps are fine (compacted), but the last must equal lastOffsetDelta. */
    n = raw_record(recs, INT32_MIN, 0, 0, 1, "a", 1, "v", 0);
    n += raw_record(recs + n, INT32_MIN, 0, 3, 1, "b", 1, "v", 0);
    CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, n, 2, 3, 0), true, MAXU), BATCH_OK);
    CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, n, 2, 4, 0), true, MAXU), BATCH_ERECORDS);
    /* Trailing garbage after the last record. */
    recs[n] = 0;
    CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, n + 1, 2, 3, 0), true, MAXU),
                 BATCH_ERECORDS);
    /* A header with a null key. */
    {
        uint8_t body[64];
        wire_writer w;
        wire_writer_init(&w, body, sizeof body);
        wire_write_i8(&w, 0);
        wire_write_varlong(&w, 0);
        wire_write_varint(&w, 0);
        wire_write_varint(&w, -1);
        wire_write_varint(&w, -1);
        wire_write_varint(&w, 1);
        wire_write_varint(&w, -1); /* header key null */
        wire_write_varint(&w, -1);
        wire_writer rw;
        wire_writer_init(&rw, recs, sizeof recs);
        wire_write_varint(&rw, (int32_t)w.len);
        wire_write_raw(&rw, body, w.len);
        CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, rw.len, 1, 0, 0), true, MAXU),
                     BATCH_ERECORDS);
    }
    /* An empty batch (all records compacted away) is well-formed. */
    CHECK_EQ_INT(batch_validate(out, wrap(out, sizeof out, recs, 0, 0, 0, 0), true, MAXU), BATCH_OK);
}

static void test_cursor(void) {
    arena a;
    arena_init(&a, MAXU);
    static uint8_t blob[8192];
    size_t off = 0, sizes[3];
    for (int i = 0; i < 3; i++) {
        uint8_t *b;
        size_t n;
        REQUIRE(build5(&a, i, &b, &n) == BATCH_OK);
        batch_set_base_offset(b, i * 5);
        memcpy(blob + off, b, n);
        sizes[i] = n;
        off += n;
    }
    size_t whole = off;
    uint8_t *tail;
    size_t tail_n;
    REQUIRE(build5(&a, 0, &tail, &tail_n) == BATCH_OK);
    for (size_t part = 0; part < tail_n; part++) {
        memcpy(blob + whole, tail, part);
        batch_cursor c;
        batch_cursor_init(&c, blob, whole + part);
        const uint8_t *bp;
        size_t bs;
        batch_header h;
        int count = 0, e;
        while ((e = batch_cursor_next(&c, &bp, &bs, &h)) == BATCH_OK) {
            REQUIRE(count < 3);
            CHECK_EQ_INT(bs, sizes[count]);
            CHECK_EQ_INT(h.base_offset, count * 5);
            CHECK_EQ_INT(batch_validate(bp, bs, true, MAXU), BATCH_OK);
            count++;
        }
        CHECK_EQ_INT(count, 3);
        CHECK_EQ_INT(e, part == 0 ? -1 : BATCH_ETRUNC);
        CHECK_EQ_INT(batch_cursor_consumed(&c), whole);
    }
    /* A bad header mid-blob stops the cursor with that error. */
    blob[sizes[0] + BATCH_OFF_MAGIC] = 1;
    batch_cursor c;
    batch_cursor_init(&c, blob, whole);
    const uint8_t *bp;
    size_t bs;
    batch_header h;
    CHECK_EQ_INT(batch_cursor_next(&c, &bp, &bs, &h), BATCH_OK);
    CHECK_EQ_INT(batch_cursor_next(&c, &bp, &bs, &h), BATCH_EMAGIC);
    CHECK_EQ_INT(batch_cursor_consumed(&c), sizes[0]);
    batch_cursor_init(&c, NULL, 0);
    CHECK_EQ_INT(batch_cursor_next(&c, &bp, &bs, &h), -1);
    arena_reset(&a);
}

static void test_patches(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    REQUIRE(build5(&a, BATCH_CODEC_NONE, &b, &n) == BATCH_OK);
    batch_set_base_offset(b, 123456789012LL);
    batch_set_leader_epoch(b, 17);
    CHECK(batch_crc_ok(b, n));
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    batch_header h;
    REQUIRE(batch_parse_header(b, n, &h) == BATCH_OK);
    CHECK_EQ_INT(h.base_offset, 123456789012LL);
    CHECK_EQ_INT(h.partition_leader_epoch, 17);
    check5(b, n, 123456789012LL);

    batch_set_log_append_time(b, n, 5555);
    CHECK(batch_crc_ok(b, n));
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    REQUIRE(batch_parse_header(b, n, &h) == BATCH_OK);
    CHECK(h.attributes & BATCH_ATTR_LOG_APPEND_TIME);
    CHECK_EQ_INT(h.max_timestamp, 5555);
    batch_iter it;
    REQUIRE(batch_iter_init(&it, b, n, &a) == BATCH_OK);
    batch_record r;
    int cnt = 0;
    while (batch_iter_next(&it, &r)) {
        CHECK_EQ_INT(r.timestamp, 5555);
        cnt++;
    }
    CHECK_EQ_INT(cnt, 5);
    arena_reset(&a);
}

static void test_control(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t key[4] = {0, 0, 0, 1}, val[6] = {0, 0, 0, 0, 0, 5};
    batch_build_record rec = {{key, 4}, {val, 6}, 2000, 0, NULL, 0};
    batch_build_opts o = batch_build_defaults();
    o.extra_attributes = BATCH_ATTR_CONTROL | BATCH_ATTR_TRANSACTIONAL;
    o.producer_id = 9;
    o.producer_epoch = 1;
    uint8_t *b;
    size_t n;
    REQUIRE(batch_build(&o, &rec, 1, &a, &b, &n) == BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    batch_iter it;
    REQUIRE(batch_iter_init(&it, b, n, &a) == BATCH_OK);
    batch_record r;
    REQUIRE(batch_iter_next(&it, &r));
    int16_t ver, type;
    CHECK(batch_control_key(&r, &ver, &type));
    CHECK_EQ_INT(ver, 0);
    CHECK_EQ_INT(type, BATCH_CONTROL_COMMIT);
    /* Two control records, a short key, a null key: all rejected. */
    batch_build_record two[2] = {rec, rec};
    REQUIRE(batch_build(&o, two, 2, &a, &b, &n) == BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ERECORDS);
    rec.key.len = 3;
    REQUIRE(batch_build(&o, &rec, 1, &a, &b, &n) == BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ERECORDS);
    rec.key = KBYTES_NULL;
    REQUIRE(batch_build(&o, &rec, 1, &a, &b, &n) == BATCH_OK);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ERECORDS);
    arena_reset(&a);
}

/* batch_check with producer rules and timestamp limits: each rule, the
 * record it names, the limits at the ends of int64, every codec through the
 * scratch buffer, and storage-side deep validation left as it was. */
static void test_check_producer(void) {
    arena a;
    arena_init(&a, MAXU);
    batch_rules r = {.max_uncompressed = MAXU,
                     .producer = true,
                     .check_timestamps = true,
                     .now_ms = 1000,
                     .ts_before_max_ms = INT64_MAX,
                     .ts_after_max_ms = INT64_MAX};
    batch_fault f;
    for (int codec = 0; codec <= 4; codec++) {
        uint8_t *b;
        size_t n;
        REQUIRE(build5(&a, codec, &b, &n) == BATCH_OK); /* timestamps 999 .. 1005 */
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_OK);
        CHECK_EQ_INT(f.record, -1);
        /* 1005 is record 3: five ms ahead; 999 is record 2, one behind */
        r.ts_after_max_ms = 4;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_ETIMESTAMP);
        CHECK_EQ_INT(f.record, 3);
        CHECK(strstr(f.msg, "record 3 timestamp 1005") != NULL);
        r.ts_after_max_ms = 5;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_OK);
        r.ts_before_max_ms = 0;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_ETIMESTAMP);
        CHECK_EQ_INT(f.record, 2);
        r.check_timestamps = false;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_OK);
        r.check_timestamps = true;
        r.ts_before_max_ms = r.ts_after_max_ms = INT64_MAX;
        /* the clock at either end of int64: unsigned differences, no overflow */
        r.now_ms = INT64_MIN;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_OK);
        r.ts_after_max_ms = INT64_MAX - 1;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_ETIMESTAMP);
        r.ts_after_max_ms = INT64_MAX;
        r.now_ms = INT64_MAX;
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_OK);
        r.now_ms = 1000;
        /* header rules: control, LogAppendTime, transactional, sequence */
        static const struct {
            int16_t attrs;
            int64_t pid;
            int32_t seq;
            int want;
        } hr[] = {
            {BATCH_ATTR_CONTROL, -1, -1, BATCH_ERECORDS},
            {BATCH_ATTR_LOG_APPEND_TIME, -1, -1, BATCH_ETIMESTAMP},
            {BATCH_ATTR_TRANSACTIONAL, -1, -1, BATCH_ERECORDS},
            {BATCH_ATTR_TRANSACTIONAL, 42, 10, BATCH_OK}, /* the broker layer decides on transactions */
            {0, 42, -1, BATCH_ERECORDS},
            {0, -1, -1, BATCH_OK},
        };
        for (size_t i = 0; i < sizeof hr / sizeof hr[0]; i++) {
            uint16_t attrs0 = wire_be16(b + BATCH_OFF_ATTRIBUTES);
            wire_put_be16(b + BATCH_OFF_ATTRIBUTES, (uint16_t)(attrs0 | (uint16_t)hr[i].attrs));
            wire_put_be64(b + BATCH_OFF_PRODUCER_ID, (uint64_t)hr[i].pid);
            wire_put_be32(b + BATCH_OFF_BASE_SEQUENCE, (uint32_t)hr[i].seq);
            reseal(b, n);
            CHECK_EQ_INT(batch_check(b, n, &r, &f), hr[i].want);
            CHECK(hr[i].want == BATCH_OK || (f.record == -1 && f.msg[0] != 0));
            wire_put_be16(b + BATCH_OFF_ATTRIBUTES, attrs0);
            reseal(b, n);
        }
        /* a count that disagrees with lastOffsetDelta is the producer's error
         * only; deep validation on disk allows it (compaction) */
        wire_put_be32(b + BATCH_OFF_LAST_OFFSET_DELTA, 6);
        reseal(b, n);
        CHECK_EQ_INT(batch_check(b, n, &r, &f), BATCH_ERECORDS);
        CHECK(strstr(f.msg, "lastOffsetDelta 6") != NULL);
        CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_ERECORDS); /* last delta 4 != 6 */
        wire_put_be32(b + BATCH_OFF_LAST_OFFSET_DELTA, 4);
        reseal(b, n);
        /* a cap below the decompressed size */
        if (codec != 0) {
            batch_rules small = r;
            small.max_uncompressed = 20;
            CHECK_EQ_INT(batch_check(b, n, &small, &f), BATCH_ENOMEM);
        }
        arena_reset(&a);
    }
    /* offset deltas that skip: storage may hold them, a producer may not */
    uint8_t recs[64], out[256];
    size_t m = raw_record(recs, INT32_MIN, 0, 0, 1, "k", 1, "v", 0);
    m += raw_record(recs + m, INT32_MIN, 0, 2, 1, "k", 1, "v", 0);
    size_t bn = wrap(out, sizeof out, recs, m, 2, 2, 0);
    CHECK_EQ_INT(batch_validate(out, bn, true, MAXU), BATCH_OK);
    r.check_timestamps = false;
    CHECK_EQ_INT(batch_check(out, bn, &r, &f), BATCH_ERECORDS); /* lastOffsetDelta 2, count 2 */
    bn = wrap(out, sizeof out, recs, m, 2, 1, 0);
    CHECK_EQ_INT(batch_check(out, bn, &r, &f), BATCH_ERECORDS); /* delta 2 past lastOffsetDelta 1 */
    CHECK_EQ_INT(f.record, 1);
    /* a second record whose key length is -2 */
    m = raw_record(recs, INT32_MIN, 0, 0, 1, "k", 1, "v", 0);
    m += raw_record(recs + m, INT32_MIN, 0, 1, -2, "", 1, "v", 0);
    bn = wrap(out, sizeof out, recs, m, 2, 1, 0);
    CHECK_EQ_INT(batch_check(out, bn, &r, &f), BATCH_ERECORDS);
    CHECK_EQ_INT(f.record, 1);
    CHECK(strstr(f.msg, "record 1:") != NULL);
    /* 2^31-1 records claimed by a few bytes: refused before any walk */
    bn = wrap(out, sizeof out, recs, m, INT32_MAX, INT32_MAX - 1, 0);
    CHECK_EQ_INT(batch_check(out, bn, &r, &f), BATCH_ERECORDS);
    CHECK_EQ_INT(f.record, -1);
    /* the scratch buffer stays bounded after a large batch */
    compress_scratch_trim();
    compress_thread_release();
    arena_reset(&a);
}

static void test_builder_args(void) {
    arena a;
    arena_init(&a, MAXU);
    uint8_t *b;
    size_t n;
    batch_build_opts o = batch_build_defaults();
    batch_build_record recs[2] = {{{NULL, -1}, {NULL, -1}, 1, 5, NULL, 0},
                                  {{NULL, -1}, {NULL, -1}, 2, 5, NULL, 0}};
    o.explicit_deltas = true;
    CHECK_EQ_INT(batch_build(&o, recs, 2, &a, &b, &n), BATCH_EMALFORMED);
    recs[1].offset_delta = 9;
    REQUIRE(batch_build(&o, recs, 2, &a, &b, &n) == BATCH_OK);
    batch_header h;
    REQUIRE(batch_parse_header(b, n, &h) == BATCH_OK);
    CHECK_EQ_INT(h.last_offset_delta, 9);
    CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    batch_build_header nullkey = {KSTR_NULL, KBYTES_NULL};
    recs[0].headers = &nullkey;
    recs[0].header_count = 1;
    CHECK_EQ_INT(batch_build(&o, recs, 2, &a, &b, &n), BATCH_EMALFORMED);
    CHECK_EQ_INT(batch_build(&o, recs, -1, &a, &b, &n), BATCH_EMALFORMED);
    /* Empty batch for every codec. */
    o = batch_build_defaults();
    for (int c = 0; c <= 4; c++) {
        o.codec = c;
        REQUIRE(batch_build(&o, NULL, 0, &a, &b, &n) == BATCH_OK);
        CHECK_EQ_INT(batch_validate(b, n, true, MAXU), BATCH_OK);
    }
    /* Arena too small for the batch. */
    arena tiny;
    arena_init(&tiny, 32);
    recs[0].header_count = 0;
    CHECK_EQ_INT(batch_build(&o, recs, 2, &tiny, &b, &n), BATCH_ENOMEM);
    arena_reset(&a);
}

int main(void) {
    UNIT_RUN(test_build_parse_iterate);
    UNIT_RUN(test_codecs);
    UNIT_RUN(test_truncation_every_byte);
    UNIT_RUN(test_bit_flips);
    UNIT_RUN(test_magic_and_sizes);
    UNIT_RUN(test_malformed_records);
    UNIT_RUN(test_cursor);
    UNIT_RUN(test_patches);
    UNIT_RUN(test_control);
    UNIT_RUN(test_builder_args);
    UNIT_RUN(test_check_producer);
    return UNIT_END("test_batch");
}
