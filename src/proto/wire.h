/*
 * wire.h - Kafka primitive types on the wire: bounds-checked readers and
 * writers for every primitive encoding in the protocol (FORMATS.md).
 *
 * This is the lowest layer of src/proto. The generated message codecs
 * (src/proto/gen) and the record-batch code are built on it; it knows nothing
 * of messages, sockets or storage.
 *
 * Error model: both the reader and the writer carry a sticky error. The first
 * failing operation records why and every later operation is a no-op that
 * returns a zero value, so a decoder can read a run of fields and check the
 * error once. A reader never reads past its end; a writer never writes past
 * its capacity.
 *
 * Strings and byte arrays are not copied: a decoded kstr/kbytes points into
 * the reader's buffer, which must outlive it.
 */
#ifndef SLUICE_PROTO_WIRE_H
#define SLUICE_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string as found on the wire: not NUL-terminated. len < 0 means null. */
typedef struct kstr {
    const char *ptr;
    int32_t len;
} kstr;

/* Bytes as found on the wire. len < 0 means null. */
typedef struct kbytes {
    const uint8_t *ptr;
    int32_t len;
} kbytes;

typedef struct kuuid {
    uint8_t b[16];
} kuuid;

static inline bool kuuid_is_zero(kuuid u) {
    for (int i = 0; i < 16; i++)
        if (u.b[i] != 0)
            return false;
    return true;
}

#define KSTR_NULL   ((kstr){NULL, -1})
#define KBYTES_NULL ((kbytes){NULL, -1})
/* A kstr from a C string literal or NUL-terminated string. */
kstr kstr_c(const char *s);
bool kstr_eq(kstr a, kstr b);
bool kstr_eq_c(kstr a, const char *s);

typedef enum wire_err {
    WIRE_OK = 0,
    WIRE_ETRUNC,    /* the input ended inside a field */
    WIRE_EINVAL,    /* a malformed value: bad length, over-long varint, null where not allowed */
    WIRE_ENOMEM,    /* an allocation limit was reached */
    WIRE_EOVERFLOW, /* the writer's buffer is too small */
    WIRE_EVERSION,  /* a field set to a non-default value does not exist in this version */
} wire_err;

const char *wire_strerror(int err);

/* ---- reading ---------------------------------------------------------- */

typedef struct wire_reader {
    const uint8_t *p;
    const uint8_t *end;
    int err; /* wire_err; sticky */
} wire_reader;

void wire_reader_init(wire_reader *r, const void *buf, size_t len);
static inline size_t wire_remaining(const wire_reader *r) { return (size_t)(r->end - r->p); }
/* Records err unless an error is already recorded. */
void wire_fail(wire_reader *r, int err);

int8_t wire_read_i8(wire_reader *r);
int16_t wire_read_i16(wire_reader *r);
int32_t wire_read_i32(wire_reader *r);
int64_t wire_read_i64(wire_reader *r);
uint16_t wire_read_u16(wire_reader *r);
uint32_t wire_read_u32(wire_reader *r);
double wire_read_f64(wire_reader *r);
bool wire_read_bool(wire_reader *r); /* any non-zero byte is true */
kuuid wire_read_uuid(wire_reader *r);

/* Zig-zag varints (record fields) and unsigned varints (compact lengths, tags). */
int32_t wire_read_varint(wire_reader *r);
int64_t wire_read_varlong(wire_reader *r);
uint32_t wire_read_uvarint(wire_reader *r);
uint64_t wire_read_uvarlong(wire_reader *r);

/* string / compact string; a null where !nullable is WIRE_EINVAL. */
kstr wire_read_string(wire_reader *r, bool compact, bool nullable);
/* bytes / compact bytes (also used for the records type). */
kbytes wire_read_bytes(wire_reader *r, bool compact, bool nullable);
/* Array count: -1 for null. A count larger than the bytes remaining (each
 * element takes at least one byte) is WIRE_ETRUNC, so callers can size an
 * allocation by it safely. */
int32_t wire_read_array_len(wire_reader *r, bool compact, bool nullable);
/* Advances n bytes (WIRE_ETRUNC if fewer remain). Returns the skipped bytes. */
const uint8_t *wire_skip(wire_reader *r, size_t n);

/* ---- writing ---------------------------------------------------------- */

/* A splice hook lets a caller keep some bytes fields out of the buffer: when
 * it returns true for a non-empty field, the writer writes only the length
 * prefix and the caller remembers to send b's bytes at offset `at` of the
 * output (this is how Fetch responses send records straight from segment
 * files). The writer's len then counts only the bytes really in buf. */
typedef bool (*wire_splice_fn)(void *ctx, const kbytes *b, size_t at);

typedef struct wire_writer {
    uint8_t *buf;
    size_t len; /* bytes written */
    size_t cap;
    int err; /* wire_err; sticky */
    wire_splice_fn splice;
    void *splice_ctx;
} wire_writer;

void wire_writer_init(wire_writer *w, void *buf, size_t cap);

void wire_write_i8(wire_writer *w, int8_t v);
void wire_write_i16(wire_writer *w, int16_t v);
void wire_write_i32(wire_writer *w, int32_t v);
void wire_write_i64(wire_writer *w, int64_t v);
void wire_write_u16(wire_writer *w, uint16_t v);
void wire_write_u32(wire_writer *w, uint32_t v);
void wire_write_f64(wire_writer *w, double v);
void wire_write_bool(wire_writer *w, bool v);
void wire_write_uuid(wire_writer *w, kuuid v);
void wire_write_varint(wire_writer *w, int32_t v);
void wire_write_varlong(wire_writer *w, int64_t v);
void wire_write_uvarint(wire_writer *w, uint32_t v);
void wire_write_uvarlong(wire_writer *w, uint64_t v);
/* A null (len < 0) where !nullable is WIRE_EINVAL. */
void wire_write_string(wire_writer *w, kstr s, bool compact, bool nullable);
void wire_write_bytes(wire_writer *w, kbytes b, bool compact, bool nullable);
/* count < 0 writes null. */
void wire_write_array_len(wire_writer *w, int32_t count, bool compact, bool nullable);
void wire_write_raw(wire_writer *w, const void *p, size_t n);
/* Reserves n bytes to be filled in later (e.g. a size prefix). NULL on overflow. */
uint8_t *wire_reserve(wire_writer *w, size_t n);

/* ---- sizes (what the writer would emit) ------------------------------- */

size_t wire_uvarint_size(uint64_t v);
size_t wire_varint_size(int32_t v);
size_t wire_varlong_size(int64_t v);
size_t wire_string_size(kstr s, bool compact);
size_t wire_bytes_size(kbytes b, bool compact);
size_t wire_array_len_size(int32_t count, bool compact);

/* ---- raw big-endian helpers for code that patches buffers in place ---- */

static inline uint16_t wire_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t wire_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t wire_be64(const uint8_t *p) {
    return ((uint64_t)wire_be32(p) << 32) | wire_be32(p + 4);
}
static inline void wire_put_be16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wire_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void wire_put_be64(uint8_t *p, uint64_t v) {
    wire_put_be32(p, (uint32_t)(v >> 32));
    wire_put_be32(p + 4, (uint32_t)v);
}

#endif
