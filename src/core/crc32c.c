/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Three implementations share one contract (crc32c.h): a portable
 * slicing-by-8 table walk, the SSE4.2 crc32 instruction on x86-64 and the
 * ARMv8 CRC32C instructions on aarch64. The choice is made once, at load
 * time, by a constructor that also fills the tables; after that crc32c() is
 * a call through a pointer that never changes, so it is safe from any thread.
 *
 * The public value is the conventional one: the running register is kept
 * inverted inside, so crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 *
 * The crc32 instructions have a latency of several cycles but can start one
 * per cycle, so the hardware paths run three independent lanes over
 * consecutive CRC32C_LANE-byte blocks and then merge them. Merging uses the
 * linearity of the raw register: the CRC of A || B is the CRC of A advanced
 * over |B| zero bytes, xor the CRC of B from zero; "advance over K zero
 * bytes" is a linear map of 32 bits, tabulated byte by byte at start-up.
 */
#include "core/crc32c.h"

#include <assert.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#endif

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
#define CRC32C_HAVE_ARMV8 1
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

#define CRC32C_POLY 0x82F63B78u

/* table[k][b]: the CRC register after feeding byte b followed by k zero
 * bytes, which lets the portable loop fold eight bytes per step. */
static uint32_t table[8][256];

/* Bytes per lane of the interleaved hardware loops. */
#define CRC32C_LANE 256

/* shift_1[k][b] / shift_2[k][b]: the raw register (b << 8k) advanced over
 * CRC32C_LANE / 2 * CRC32C_LANE zero bytes. */
static uint32_t shift_1[4][256], shift_2[4][256];

static inline uint32_t shift_apply(const uint32_t t[4][256], uint32_t z) {
    return t[0][z & 0xff] ^ t[1][(z >> 8) & 0xff] ^ t[2][(z >> 16) & 0xff] ^ t[3][z >> 24];
}

typedef uint32_t (*crc32c_fn)(uint32_t crc, const uint8_t *p, size_t n);

static uint32_t portable_raw(uint32_t crc, const uint8_t *p, size_t n);
static crc32c_fn impl_fn = portable_raw;
static const char *impl_name = "portable";

static void build_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++)
            c = (c >> 1) ^ ((c & 1) ? CRC32C_POLY : 0);
        table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

/* Needs table[] built; about 0.5 ms once per process. */
static void build_shift_tables(void) {
    static const uint8_t zeros[2 * CRC32C_LANE];
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            shift_1[k][b] = portable_raw(b << (8 * k), zeros, CRC32C_LANE);
            shift_2[k][b] = portable_raw(b << (8 * k), zeros, 2 * CRC32C_LANE);
        }
}

/* Little-endian loads byte by byte: correct on any host and any alignment;
 * compilers turn them into single loads where that is legal. */
static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Works on the raw (already inverted) register. */
static uint32_t portable_raw(uint32_t crc, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint32_t lo = crc ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#ifdef CRC32C_HAVE_SSE42
__attribute__((target("sse4.2"))) static uint32_t sse42_raw(uint32_t crc, const uint8_t *p, size_t n) {
    /* Byte steps until p is 8-aligned so the 64-bit loads do not straddle
     * cache lines needlessly; x86 tolerates misalignment either way. */
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = _mm_crc32_u8(crc, *p++);
        n--;
    }
    while (n >= 3 * CRC32C_LANE) {
        uint64_t a = crc, b = 0, c = 0;
        for (size_t i = 0; i < CRC32C_LANE; i += 8) {
            uint64_t va, vb, vc;
            memcpy(&va, p + i, 8);
            memcpy(&vb, p + CRC32C_LANE + i, 8);
            memcpy(&vc, p + 2 * CRC32C_LANE + i, 8);
            a = _mm_crc32_u64(a, va);
            b = _mm_crc32_u64(b, vb);
            c = _mm_crc32_u64(c, vc);
        }
        crc = shift_apply(shift_2, (uint32_t)a) ^ shift_apply(shift_1, (uint32_t)b) ^ (uint32_t)c;
        p += 3 * CRC32C_LANE;
        n -= 3 * CRC32C_LANE;
    }
    uint64_t c64 = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c64;
    while (n--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

#ifdef CRC32C_HAVE_ARMV8
/* clang's arm_acle.h hides the __crc32c* wrappers unless the whole unit is
 * built with +crc, so call its builtins directly; GCC's header declares them
 * under its own target pragma. */
#if defined(__clang__)
#define CRC32C_ARM_TARGET __attribute__((target("crc")))
#define arm_crc32cb(c, b) __builtin_arm_crc32cb((c), (b))
#define arm_crc32cd(c, v) __builtin_arm_crc32cd((c), (v))
#else
#define CRC32C_ARM_TARGET __attribute__((target("+crc")))
#define arm_crc32cb(c, b) __crc32cb((c), (b))
#define arm_crc32cd(c, v) __crc32cd((c), (v))
#endif
CRC32C_ARM_TARGET static uint32_t armv8_raw(uint32_t crc, const uint8_t *p, size_t n) {
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = arm_crc32cb(crc, *p++);
        n--;
    }
    while (n >= 3 * CRC32C_LANE) {
        uint32_t a = crc, b = 0, c = 0;
        for (size_t i = 0; i < CRC32C_LANE; i += 8) {
            uint64_t va, vb, vc; /* aarch64 Linux is little-endian */
            memcpy(&va, p + i, 8);
            memcpy(&vb, p + CRC32C_LANE + i, 8);
            memcpy(&vc, p + 2 * CRC32C_LANE + i, 8);
            a = arm_crc32cd(a, va);
            b = arm_crc32cd(b, vb);
            c = arm_crc32cd(c, vc);
        }
        crc = shift_apply(shift_2, a) ^ shift_apply(shift_1, b) ^ c;
        p += 3 * CRC32C_LANE;
        n -= 3 * CRC32C_LANE;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* aarch64 Linux is little-endian */
        crc = arm_crc32cd(crc, v);
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = arm_crc32cb(crc, *p++);
    return crc;
}
#endif

/* Runs before main(): nothing in the process can call crc32c() before the
 * tables and the dispatch pointer are settled. */
__attribute__((constructor)) static void crc32c_init(void) {
    build_tables();
    build_shift_tables();
#ifdef CRC32C_HAVE_SSE42
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        impl_fn = sse42_raw;
        impl_name = "sse4.2";
    }
#endif
#ifdef CRC32C_HAVE_ARMV8
    if (getauxval(AT_HWCAP) & HWCAP_CRC32) {
        impl_fn = armv8_raw;
        impl_name = "armv8";
    }
#endif
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t n) {
    assert(buf != NULL || n == 0);
    if (n == 0)
        return crc;
    return ~impl_fn(~crc, buf, n);
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t n) {
    assert(buf != NULL || n == 0);
    if (n == 0)
        return crc;
    return ~portable_raw(~crc, buf, n);
}

const char *crc32c_impl(void) { return impl_name; }
