/*
 * storage_testlib.h - helpers shared by the storage tests: a minimal magic-2
 * batch builder (uncompressed records, null keys, no headers), temporary
 * directories under /tmp and their removal, a seeded PRNG, and the storage
 * context over the POSIX vfs that the tests open their logs with.
 */
#ifndef SLUICE_TESTS_STORAGE_TESTLIB_H
#define SLUICE_TESTS_STORAGE_TESTLIB_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/wire.h"
#include "storage/storage.h"

static inline size_t tl_put_varlong(uint8_t *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    return n;
}

/* Builds a batch of nrec records, record i with timestamp ts0 + i*ts_step
 * and a value of vlen bytes of fill. Returns its size, or 0 if cap is short. */
static inline size_t tl_build_batch_ts(uint8_t *out, size_t cap, int nrec, int64_t ts0, int64_t ts_step,
                                       int vlen, uint8_t fill) {
    size_t pos = BATCH_HEADER_SIZE;
    int64_t max_ts = ts0;
    for (int i = 0; i < nrec; i++) {
        uint8_t body[64];
        size_t b = 0;
        int64_t ts = ts0 + (int64_t)i * ts_step;
        if (ts > max_ts)
            max_ts = ts;
        body[b++] = 0; /* attributes */
        b += tl_put_varlong(body + b, ts - ts0);
        b += tl_put_varlong(body + b, i);
        b += tl_put_varlong(body + b, -1); /* null key */
        b += tl_put_varlong(body + b, vlen);
        size_t total = b + (size_t)vlen + 1; /* + header count */
        uint8_t lenbuf[10];
        size_t ln = tl_put_varlong(lenbuf, (int64_t)total);
        if (pos + ln + total > cap)
            return 0;
        memcpy(out + pos, lenbuf, ln);
        pos += ln;
        memcpy(out + pos, body, b);
        pos += b;
        memset(out + pos, fill, (size_t)vlen);
        pos += (size_t)vlen;
        out[pos++] = 0; /* no headers */
    }
    wire_put_be64(out + 0, 0);
    wire_put_be32(out + 8, (uint32_t)(pos - 12));
    wire_put_be32(out + 12, 0);
    out[16] = 2;
    wire_put_be16(out + 21, 0);
    wire_put_be32(out + 23, (uint32_t)(nrec - 1));
    wire_put_be64(out + 27, (uint64_t)ts0);
    wire_put_be64(out + 35, (uint64_t)max_ts);
    wire_put_be64(out + 43, (uint64_t)-1);
    wire_put_be16(out + 51, (uint16_t)-1);
    wire_put_be32(out + 53, (uint32_t)-1);
    wire_put_be32(out + 57, (uint32_t)nrec);
    wire_put_be32(out + 17, crc32c(0, out + 21, pos - 21));
    return pos;
}

static inline size_t tl_build_batch(uint8_t *out, size_t cap, int nrec, int64_t ts, int vlen, uint8_t fill) {
    return tl_build_batch_ts(out, cap, nrec, ts, 0, vlen, fill);
}

static char tl_root[256];

/* Creates a fresh directory /tmp/sluice-<name>-XXXXXX and returns its path. */
static inline const char *tl_mkdtemp(const char *name) {
    snprintf(tl_root, sizeof tl_root, "/tmp/sluice-%s-XXXXXX", name);
    if (mkdtemp(tl_root) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return tl_root;
}

static inline int tl_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static inline void tl_rmrf(const char *p) { nftw(p, tl_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* xorshift64*: deterministic from the seed. */
static uint64_t tl_rng_state;
static inline uint64_t tl_rand(void) {
    uint64_t x = tl_rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl_rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static inline uint64_t tl_below(uint64_t n) { return n ? tl_rand() % n : 0; }

/* Seed from SLUICE_SEED or the clock; printed so a failure can be replayed. */
static inline uint64_t tl_seed(const char *test) {
    const char *e = getenv("SLUICE_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    if (s == 0)
        s = 1;
    printf("%s: seed %llu (replay with SLUICE_SEED=%llu)\n", test, (unsigned long long)s,
           (unsigned long long)s);
    fflush(stdout);
    tl_rng_state = s;
    return s;
}

/* The test program's storage context (POSIX files, the default descriptor
 * bound), made on first use. */
static storage_ctx *tl_storage_ctx;
static inline storage_ctx *tl_storage(void) {
    if (tl_storage_ctx == NULL &&
        (tl_storage_ctx = storage_ctx_new(sl_vfs_posix(), STORAGE_FD_LIMIT_DEFAULT)) == NULL) {
        perror("storage_ctx_new");
        exit(2);
    }
    return tl_storage_ctx;
}

static inline char *tl_path(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

#endif
