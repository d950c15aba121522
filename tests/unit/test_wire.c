/* Unit tests for src/proto/wire.c: primitive encodings and their bounds. */
#include "proto/wire.h"
#include "core/arena.h"
#include "unit.h"

static void test_varint_vectors(void) {
    /* Zig-zag vectors: value -> encoding. */
    struct {
        int64_t v;
        uint8_t enc[10];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {-1, {0x01}, 1},
        {1, {0x02}, 1},
        {-64, {0x7f}, 1},
        {64, {0x80, 0x01}, 2},
        {300, {0xd8, 0x04}, 2},
        {INT32_MAX, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
        {INT32_MIN, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        wire_writer w;
        wire_writer_init(&w, buf, sizeof buf);
        wire_write_varint(&w, (int32_t)cases[i].v);
        CHECK_EQ_INT(w.len, cases[i].n);
        CHECK(memcmp(buf, cases[i].enc, cases[i].n) == 0);
        CHECK_EQ_INT(wire_varint_size((int32_t)cases[i].v), cases[i].n);
        wire_reader r;
        wire_reader_init(&r, cases[i].enc, cases[i].n);
        CHECK_EQ_INT(wire_read_varint(&r), cases[i].v);
        CHECK_EQ_INT(r.err, WIRE_OK);
        CHECK_EQ_INT(wire_remaining(&r), 0);
    }
    /* varlong extremes round-trip in 10 bytes. */
    int64_t longs[] = {INT64_MIN, INT64_MAX, -1, 0, 1LL << 40};
    for (size_t i = 0; i < 5; i++) {
        uint8_t buf[16];
        wire_writer w;
        wire_writer_init(&w, buf, sizeof buf);
        wire_write_varlong(&w, longs[i]);
        CHECK_EQ_INT(w.len, wire_varlong_size(longs[i]));
        wire_reader r;
        wire_reader_init(&r, buf, w.len);
        CHECK(wire_read_varlong(&r) == longs[i]);
        CHECK_EQ_INT(r.err, WIRE_OK);
    }
}

static void test_varint_malformed(void) {
    /* Six continuation bytes: too long for a 32-bit varint. */
    uint8_t bad[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    wire_reader r;
    wire_reader_init(&r, bad, sizeof bad);
    (void)wire_read_varint(&r);
    CHECK_EQ_INT(r.err, WIRE_EINVAL);
    /* Truncated in the middle. */
    wire_reader_init(&r, bad, 2);
    (void)wire_read_uvarint(&r);
    CHECK_EQ_INT(r.err, WIRE_ETRUNC);
    /* Unsigned varint over 32 bits. */
    uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    wire_reader_init(&r, big, sizeof big);
    (void)wire_read_uvarint(&r);
    CHECK_EQ_INT(r.err, WIRE_EINVAL);
}

static void test_strings(void) {
    uint8_t buf[64];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    wire_write_string(&w, kstr_c("abc"), false, false);
    wire_write_string(&w, KSTR_NULL, false, true);
    wire_write_string(&w, kstr_c("xy"), true, false);
    wire_write_string(&w, KSTR_NULL, true, true);
    CHECK_EQ_INT(w.err, WIRE_OK);
    CHECK_EQ_INT(w.len, 2 + 3 + 2 + 1 + 2 + 1);
    wire_reader r;
    wire_reader_init(&r, buf, w.len);
    CHECK(kstr_eq_c(wire_read_string(&r, false, false), "abc"));
    CHECK(wire_read_string(&r, false, true).len == -1);
    CHECK(kstr_eq_c(wire_read_string(&r, true, false), "xy"));
    CHECK(wire_read_string(&r, true, true).len == -1);
    CHECK_EQ_INT(r.err, WIRE_OK);

    /* A null where the field is not nullable is an error on both sides. */
    wire_writer_init(&w, buf, sizeof buf);
    wire_write_string(&w, KSTR_NULL, false, false);
    CHECK_EQ_INT(w.err, WIRE_EINVAL);
    uint8_t nul[] = {0xff, 0xff};
    wire_reader_init(&r, nul, 2);
    (void)wire_read_string(&r, false, false);
    CHECK_EQ_INT(r.err, WIRE_EINVAL);
    /* A length beyond the input. */
    uint8_t lng[] = {0x00, 0x10, 'a'};
    wire_reader_init(&r, lng, 3);
    (void)wire_read_string(&r, false, false);
    CHECK_EQ_INT(r.err, WIRE_ETRUNC);
}

static void test_array_len_bounded(void) {
    /* A huge count with few bytes behind it must fail before anyone allocates. */
    uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0x00};
    wire_reader r;
    wire_reader_init(&r, huge, sizeof huge);
    (void)wire_read_array_len(&r, false, false);
    CHECK_EQ_INT(r.err, WIRE_ETRUNC);
    uint8_t null_arr[] = {0xff, 0xff, 0xff, 0xff};
    wire_reader_init(&r, null_arr, 4);
    CHECK_EQ_INT(wire_read_array_len(&r, false, true), -1);
    wire_reader_init(&r, null_arr, 4);
    (void)wire_read_array_len(&r, false, false);
    CHECK_EQ_INT(r.err, WIRE_EINVAL);
    uint8_t compact_null[] = {0x00};
    wire_reader_init(&r, compact_null, 1);
    CHECK_EQ_INT(wire_read_array_len(&r, true, true), -1);
}

static void test_writer_overflow_sticky(void) {
    uint8_t buf[5];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    wire_write_i32(&w, 1);
    wire_write_i32(&w, 2);
    CHECK_EQ_INT(w.err, WIRE_EOVERFLOW);
    wire_write_i8(&w, 3);
    CHECK_EQ_INT(w.len, 4);
}

static void test_fixed_width(void) {
    uint8_t buf[64];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    wire_write_i16(&w, -2);
    wire_write_i64(&w, INT64_MIN);
    wire_write_f64(&w, 3.5);
    wire_write_bool(&w, true);
    kuuid u;
    for (int i = 0; i < 16; i++)
        u.b[i] = (uint8_t)i;
    wire_write_uuid(&w, u);
    CHECK(buf[0] == 0xff && buf[1] == 0xfe);
    wire_reader r;
    wire_reader_init(&r, buf, w.len);
    CHECK_EQ_INT(wire_read_i16(&r), -2);
    CHECK(wire_read_i64(&r) == INT64_MIN);
    CHECK(wire_read_f64(&r) == 3.5);
    CHECK(wire_read_bool(&r));
    kuuid v = wire_read_uuid(&r);
    CHECK(memcmp(u.b, v.b, 16) == 0);
    CHECK_EQ_INT(wire_remaining(&r), 0);
    (void)wire_read_i8(&r);
    CHECK_EQ_INT(r.err, WIRE_ETRUNC);
}

/* The splice hook: bytes fields with a NULL pointer are left out of the
 * buffer and reported with their offset; without the hook they are an error. */
typedef struct splice_log {
    size_t at[4];
    int32_t len[4];
    int n;
} splice_log;

static bool record_splice(void *ctx, const kbytes *b, size_t at) {
    splice_log *l = ctx;
    if (b->ptr != NULL || l->n == 4)
        return false;
    l->at[l->n] = at;
    l->len[l->n++] = b->len;
    return true;
}

static void test_splice_hook(void) {
    uint8_t buf[64];
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    splice_log log = {0};
    w.splice = record_splice;
    w.splice_ctx = &log;
    wire_write_i16(&w, 7);
    wire_write_bytes(&w, (kbytes){NULL, 1000}, false, true);               /* spliced */
    wire_write_bytes(&w, (kbytes){(const uint8_t *)"ab", 2}, true, false); /* in memory */
    wire_write_bytes(&w, (kbytes){NULL, 5}, true, true);                   /* spliced */
    CHECK_EQ_INT(w.err, WIRE_OK);
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(log.at[0], 2 + 4);
    CHECK_EQ_INT(log.len[0], 1000);
    CHECK_EQ_INT(log.at[1], 2 + 4 + 1 + 2 + 1);
    CHECK_EQ_INT(w.len, 2 + 4 + 1 + 2 + 1);
    CHECK(buf[2] == 0 && buf[3] == 0 && buf[4] == 0x03 && buf[5] == 0xe8); /* int32 1000 */
    /* Without a hook, a NULL pointer with a length cannot be written. */
    wire_writer_init(&w, buf, sizeof buf);
    wire_write_bytes(&w, (kbytes){NULL, 5}, false, true);
    CHECK_EQ_INT(w.err, WIRE_EINVAL);
}

static void test_arena_limit(void) {
    arena a;
    arena_init(&a, 64 * 1024);
    void *p = arena_alloc(&a, 100);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    CHECK(arena_alloc(&a, 1 << 20) == NULL);
    CHECK(arena_calloc(&a, SIZE_MAX / 2, 4) == NULL);
    int n = 0;
    while (arena_alloc(&a, 1000) != NULL)
        n++;
    CHECK(n > 10 && n < 70);
    CHECK(a.used <= a.limit);
    arena_reset(&a);
    CHECK(arena_alloc(&a, 100) != NULL);
    arena_reset(&a);
}

int main(void) {
    UNIT_RUN(test_varint_vectors);
    UNIT_RUN(test_varint_malformed);
    UNIT_RUN(test_strings);
    UNIT_RUN(test_array_len_bounded);
    UNIT_RUN(test_writer_overflow_sticky);
    UNIT_RUN(test_fixed_width);
    UNIT_RUN(test_splice_hook);
    UNIT_RUN(test_arena_limit);
    return UNIT_END("test_wire");
}
