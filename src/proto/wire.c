/*
 * wire.c - Kafka primitive encodings. See wire.h for the error model.
 */
#include "proto/wire.h"

#include <string.h>

kstr kstr_c(const char *s) {
    if (s == NULL)
        return KSTR_NULL;
    size_t n = strlen(s);
    return (kstr){s, n > INT32_MAX ? INT32_MAX : (int32_t)n};
}

bool kstr_eq(kstr a, kstr b) {
    if (a.len < 0 || b.len < 0)
        return a.len < 0 && b.len < 0;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

bool kstr_eq_c(kstr a, const char *s) { return kstr_eq(a, kstr_c(s)); }

const char *wire_strerror(int err) {
    switch (err) {
    case WIRE_OK:
        return "ok";
    case WIRE_ETRUNC:
        return "truncated input";
    case WIRE_EINVAL:
        return "malformed value";
    case WIRE_ENOMEM:
        return "allocation limit reached";
    case WIRE_EOVERFLOW:
        return "output buffer too small";
    case WIRE_EVERSION:
        return "field not supported in this version";
    }
    return "unknown error";
}

/* ---- reading ---------------------------------------------------------- */

void wire_reader_init(wire_reader *r, const void *buf, size_t len) {
    r->p = buf;
    r->end = r->p + len;
    r->err = WIRE_OK;
}

void wire_fail(wire_reader *r, int err) {
    if (r->err == WIRE_OK)
        r->err = err;
    /* Park the reader at the end so loops driven by remaining bytes stop. */
    r->p = r->end;
}

/* Returns a pointer to n readable bytes and advances, or NULL. */
static const uint8_t *take(wire_reader *r, size_t n) {
    if (r->err != WIRE_OK)
        return NULL;
    if ((size_t)(r->end - r->p) < n) {
        wire_fail(r, WIRE_ETRUNC);
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

int8_t wire_read_i8(wire_reader *r) {
    const uint8_t *p = take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t wire_read_i16(wire_reader *r) {
    const uint8_t *p = take(r, 2);
    return p ? (int16_t)wire_be16(p) : 0;
}

int32_t wire_read_i32(wire_reader *r) {
    const uint8_t *p = take(r, 4);
    return p ? (int32_t)wire_be32(p) : 0;
}

int64_t wire_read_i64(wire_reader *r) {
    const uint8_t *p = take(r, 8);
    return p ? (int64_t)wire_be64(p) : 0;
}

uint16_t wire_read_u16(wire_reader *r) {
    const uint8_t *p = take(r, 2);
    return p ? wire_be16(p) : 0;
}

uint32_t wire_read_u32(wire_reader *r) {
    const uint8_t *p = take(r, 4);
    return p ? wire_be32(p) : 0;
}

double wire_read_f64(wire_reader *r) {
    const uint8_t *p = take(r, 8);
    if (!p)
        return 0;
    uint64_t bits = wire_be64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

bool wire_read_bool(wire_reader *r) {
    const uint8_t *p = take(r, 1);
    return p ? p[0] != 0 : false;
}

kuuid wire_read_uuid(wire_reader *r) {
    kuuid u = {{0}};
    const uint8_t *p = take(r, 16);
    if (p)
        memcpy(u.b, p, 16);
    return u;
}

/* Base-128 little-endian groups, at most max_bytes long. */
static uint64_t read_uvar(wire_reader *r, int max_bytes) {
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *p = take(r, 1);
        if (!p)
            return 0;
        v |= (uint64_t)(p[0] & 0x7f) << (7 * i);
        if ((p[0] & 0x80) == 0)
            return v;
    }
    wire_fail(r, WIRE_EINVAL);
    return 0;
}

uint32_t wire_read_uvarint(wire_reader *r) {
    uint64_t v = read_uvar(r, 5);
    if (v > UINT32_MAX) {
        wire_fail(r, WIRE_EINVAL);
        return 0;
    }
    return (uint32_t)v;
}

uint64_t wire_read_uvarlong(wire_reader *r) { return read_uvar(r, 10); }

int32_t wire_read_varint(wire_reader *r) {
    uint32_t u = wire_read_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t wire_read_varlong(wire_reader *r) {
    uint64_t u = wire_read_uvarlong(r);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Reads a length prefix; returns -1 for null, -2 on error. */
static int64_t read_len(wire_reader *r, bool compact, bool wide, bool nullable) {
    int64_t n;
    if (compact) {
        n = (int64_t)wire_read_uvarint(r) - 1;
    } else {
        n = wide ? wire_read_i32(r) : wire_read_i16(r);
    }
    if (r->err != WIRE_OK)
        return -2;
    if (n < -1 || (n == -1 && !nullable)) {
        wire_fail(r, WIRE_EINVAL);
        return -2;
    }
    if (n > INT32_MAX) {
        wire_fail(r, WIRE_EINVAL);
        return -2;
    }
    return n;
}

kstr wire_read_string(wire_reader *r, bool compact, bool nullable) {
    int64_t n = read_len(r, compact, false, nullable);
    if (n < 0)
        return n == -1 ? KSTR_NULL : (kstr){NULL, 0};
    const uint8_t *p = take(r, (size_t)n);
    if (!p)
        return (kstr){NULL, 0};
    return (kstr){(const char *)p, (int32_t)n};
}

kbytes wire_read_bytes(wire_reader *r, bool compact, bool nullable) {
    int64_t n = read_len(r, compact, true, nullable);
    if (n < 0)
        return n == -1 ? KBYTES_NULL : (kbytes){NULL, 0};
    const uint8_t *p = take(r, (size_t)n);
    if (!p)
        return (kbytes){NULL, 0};
    return (kbytes){p, (int32_t)n};
}

int32_t wire_read_array_len(wire_reader *r, bool compact, bool nullable) {
    int64_t n = read_len(r, compact, true, nullable);
    if (n < 0)
        return n == -1 ? -1 : 0;
    if ((uint64_t)n > wire_remaining(r)) {
        wire_fail(r, WIRE_ETRUNC);
        return 0;
    }
    return (int32_t)n;
}

const uint8_t *wire_skip(wire_reader *r, size_t n) { return take(r, n); }

/* ---- writing ---------------------------------------------------------- */

void wire_writer_init(wire_writer *w, void *buf, size_t cap) {
    w->buf = buf;
    w->len = 0;
    w->cap = buf ? cap : 0;
    w->err = WIRE_OK;
    w->splice = NULL;
    w->splice_ctx = NULL;
}

uint8_t *wire_reserve(wire_writer *w, size_t n) {
    if (w->err != WIRE_OK)
        return NULL;
    if (w->cap - w->len < n) {
        w->err = WIRE_EOVERFLOW;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void wire_write_raw(wire_writer *w, const void *src, size_t n) {
    uint8_t *p = wire_reserve(w, n);
    if (p && n)
        memcpy(p, src, n);
}

void wire_write_i8(wire_writer *w, int8_t v) {
    uint8_t *p = wire_reserve(w, 1);
    if (p)
        p[0] = (uint8_t)v;
}

void wire_write_i16(wire_writer *w, int16_t v) {
    uint8_t *p = wire_reserve(w, 2);
    if (p)
        wire_put_be16(p, (uint16_t)v);
}

void wire_write_i32(wire_writer *w, int32_t v) {
    uint8_t *p = wire_reserve(w, 4);
    if (p)
        wire_put_be32(p, (uint32_t)v);
}

void wire_write_i64(wire_writer *w, int64_t v) {
    uint8_t *p = wire_reserve(w, 8);
    if (p)
        wire_put_be64(p, (uint64_t)v);
}

void wire_write_u16(wire_writer *w, uint16_t v) {
    uint8_t *p = wire_reserve(w, 2);
    if (p)
        wire_put_be16(p, v);
}

void wire_write_u32(wire_writer *w, uint32_t v) {
    uint8_t *p = wire_reserve(w, 4);
    if (p)
        wire_put_be32(p, v);
}

void wire_write_f64(wire_writer *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    wire_write_i64(w, (int64_t)bits);
}

void wire_write_bool(wire_writer *w, bool v) { wire_write_i8(w, v ? 1 : 0); }

void wire_write_uuid(wire_writer *w, kuuid v) { wire_write_raw(w, v.b, 16); }

void wire_write_uvarlong(wire_writer *w, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    wire_write_raw(w, tmp, n);
}

void wire_write_uvarint(wire_writer *w, uint32_t v) { wire_write_uvarlong(w, v); }

void wire_write_varint(wire_writer *w, int32_t v) {
    wire_write_uvarlong(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

void wire_write_varlong(wire_writer *w, int64_t v) {
    wire_write_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void write_len(wire_writer *w, int32_t n, bool compact, bool wide, bool nullable) {
    if (w->err != WIRE_OK)
        return;
    if (n < 0 && !nullable) {
        w->err = WIRE_EINVAL;
        return;
    }
    if (n < 0)
        n = -1;
    if (compact)
        wire_write_uvarint(w, (uint32_t)(n + 1));
    else if (wide)
        wire_write_i32(w, n);
    else if (n > INT16_MAX)
        w->err = WIRE_EINVAL;
    else
        wire_write_i16(w, (int16_t)n);
}

void wire_write_string(wire_writer *w, kstr s, bool compact, bool nullable) {
    write_len(w, s.len, compact, false, nullable);
    if (s.len > 0)
        wire_write_raw(w, s.ptr, (size_t)s.len);
}

void wire_write_bytes(wire_writer *w, kbytes b, bool compact, bool nullable) {
    write_len(w, b.len, compact, true, nullable);
    if (b.len > 0 && w->splice && w->err == WIRE_OK && w->splice(w->splice_ctx, &b, w->len))
        return;
    if (b.len > 0 && b.ptr == NULL) {
        w->err = WIRE_EINVAL; /* bytes that were meant to be spliced */
        return;
    }
    if (b.len > 0)
        wire_write_raw(w, b.ptr, (size_t)b.len);
}

void wire_write_array_len(wire_writer *w, int32_t count, bool compact, bool nullable) {
    write_len(w, count, compact, true, nullable);
}

/* ---- sizes ------------------------------------------------------------ */

size_t wire_uvarint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t wire_varint_size(int32_t v) { return wire_uvarint_size(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }

size_t wire_varlong_size(int64_t v) { return wire_uvarint_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

size_t wire_string_size(kstr s, bool compact) {
    size_t body = s.len > 0 ? (size_t)s.len : 0;
    if (compact)
        return wire_uvarint_size((uint64_t)((int64_t)(s.len < 0 ? -1 : s.len) + 1)) + body;
    return 2 + body;
}

size_t wire_bytes_size(kbytes b, bool compact) {
    size_t body = b.len > 0 ? (size_t)b.len : 0;
    if (compact)
        return wire_uvarint_size((uint64_t)((int64_t)(b.len < 0 ? -1 : b.len) + 1)) + body;
    return 4 + body;
}

size_t wire_array_len_size(int32_t count, bool compact) {
    if (compact)
        return wire_uvarint_size((uint64_t)((int64_t)(count < 0 ? -1 : count) + 1));
    return 4;
}
