/*
 * bench_storage.c - storage engine benchmarks, printed as ratios against a
 * baseline measured in the same run on the same filesystem:
 *
 *   1. append throughput of 1 KiB and 16 KiB batches vs raw sequential
 *      write() of the same bytes (target >= 0.9x);
 *   2. read-by-offset latency (locating the batch and returning its file
 *      ranges) at two log sizes, and their ratio (target ~1: flat);
 *   3. recovery time after a SIGKILL with an unflushed tail;
 *   4. startup time of 2,000 partitions after a clean shutdown;
 *   5. produce-path validation of batches of 100 records of 100 B
 *      (uncompressed, lz4, zstd): the cost per batch of the CRC-only check and
 *      of the full record walk, against the cost of the whole plog_append of
 *      the same batch, so the share of the append spent validating shows;
 *   6. recovery after a SIGKILL of a multi-segment log whose writer ticked
 *      (plog_tick, once per SLUICE_BENCH_TICK_MB of appends, as the broker's
 *      housekeeper does each second), against a full verification of the
 *      same bytes: with the roll flush only the segments rolled since the
 *      last tick are read.
 *
 * Sizes are modest by default so a run stays well under two minutes:
 * SLUICE_BENCH_APPEND_MB (default 256), SLUICE_BENCH_SMALL_MB (100),
 * SLUICE_BENCH_BIG_MB (1024; 10240 for the 10 GB point),
 * SLUICE_BENCH_RECOVER_MB (1024), SLUICE_BENCH_PARTITIONS (2000),
 * SLUICE_BENCH_VALIDATE_BATCHES (20000), SLUICE_BENCH_SEGMENTS_MB (1024, in
 * segments of 64 MiB), SLUICE_BENCH_TICK_MB (64). Only APIs older than the
 * benchmarks 5 and 6 are used, so the file also builds against an older
 * tree for a before/after comparison.
 * Everything lives under a mkdtemp() directory in $TMPDIR (default /tmp),
 * removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/wire.h"
#include "storage/log.h"

static char root[512];
static storage_ctx *sc; /* POSIX files, as the broker's */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long env_long(const char *name, long def) {
    const char *e = getenv(name);
    return e ? strtol(e, NULL, 10) : def;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}
static void rmrf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* One uncompressed batch of one record whose total size is exactly size. */
static size_t make_batch(uint8_t *out, size_t size, int64_t ts) {
    /* record: len varint, attr, tsDelta 0, offDelta 0, key -1, vlen varint, value, 0 headers */
    size_t vlen = size - BATCH_HEADER_SIZE - 12; /* small varints: fixed overhead here */
    uint8_t *p = out + BATCH_HEADER_SIZE;
    size_t body = 1 + 1 + 1 + 1 + 2 + vlen + 1; /* vlen varint is 2 bytes for 128..8191 */
    if (vlen >= 8192)
        body++;
    size_t n = 0;
    uint64_t z = (uint64_t)body << 1;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    p[n++] = 0;
    p[n++] = 0;
    p[n++] = 0;
    p[n++] = 1; /* key null (zigzag -1) */
    z = (uint64_t)vlen << 1;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    memset(p + n, 'x', vlen);
    n += vlen;
    p[n++] = 0;
    size_t total = BATCH_HEADER_SIZE + n;
    memset(out, 0, BATCH_HEADER_SIZE);
    wire_put_be32(out + 8, (uint32_t)(total - 12));
    out[16] = 2;
    wire_put_be64(out + 27, (uint64_t)ts);
    wire_put_be64(out + 35, (uint64_t)ts);
    wire_put_be64(out + 43, (uint64_t)-1);
    wire_put_be16(out + 51, (uint16_t)-1);
    wire_put_be32(out + 53, (uint32_t)-1);
    wire_put_be32(out + 57, 1);
    wire_put_be32(out + 17, crc32c(0, out + 21, total - 21));
    return total;
}

static plog *open_at(const char *name, plog_config *c, bool clean) {
    char d[700];
    snprintf(d, sizeof d, "%s/%s", root, name);
    int err;
    plog *l = plog_open(sc, d, c, clean, &err);
    if (l == NULL) {
        fprintf(stderr, "bench: cannot open %s (%d)\n", d, err);
        exit(1);
    }
    return l;
}

/* Appends mb MiB of batches of bsize bytes; returns seconds. */
static double fill_log(plog *l, size_t bsize, long mb) {
    static uint8_t tmpl[1 << 20], b[1 << 20];
    size_t n = make_batch(tmpl, bsize, 1000);
    long count = (long)((mb << 20) / (long)n);
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        memcpy(b, tmpl, n); /* append patches offsets in place, as a Produce buffer */
        if (plog_append(l, b, n, 0, 0, NULL) != 0) {
            fprintf(stderr, "bench: append failed\n");
            exit(1);
        }
    }
    return now_s() - t0;
}

static double raw_write(const uint8_t *tmpl, size_t n, long count) {
    static uint8_t b[1 << 20];
    char p[700];
    snprintf(p, sizeof p, "%s/raw.bin", root);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        memcpy(b, tmpl, n); /* the same copy the log path makes */
        if (write(fd, b, n) != (ssize_t)n) {
            perror("write");
            exit(1);
        }
    }
    double t = now_s() - t0;
    close(fd);
    unlink(p);
    return t;
}

/* Alternates raw and log runs three times and keeps each one's best, so a
 * noisy neighbour on a shared machine skews the ratio less. */
static void bench_append(size_t bsize, long mb) {
    static uint8_t tmpl[1 << 20];
    size_t n = make_batch(tmpl, bsize, 1000);
    long count = (long)((mb << 20) / (long)n);
    double raw = 1e9, lg = 1e9;
    for (int round = 0; round < 3; round++) {
        double t = raw_write(tmpl, n, count);
        raw = t < raw ? t : raw;
        plog_config c;
        plog_config_default(&c);
        plog *l = open_at("append", &c, true);
        t = fill_log(l, n, mb);
        lg = t < lg ? t : lg;
        plog_delete(l);
    }
    double mbs_raw = (double)count * (double)n / raw / 1048576.0,
           mbs_log = (double)count * (double)n / lg / 1048576.0;
    printf("append %5zu B batches, %ld MiB (best of 3): raw write %6.0f MiB/s, log append %6.0f MiB/s (%.0f "
           "batches/s), ratio %.2fx\n",
           n, mb, mbs_raw, mbs_log, (double)count / lg, mbs_log / mbs_raw);
}

/* Mean microseconds to locate and return the ranges of random offsets. */
static double read_latency(plog *l, int reads) {
    int64_t end = plog_end_offset(l);
    uint64_t x = 88172645463325252ull;
    /* warm the lazily loaded indexes first, as a running broker would have */
    for (int i = 0; i < 2000; i++) {
        plog_read_result r;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        plog_read(l, (int64_t)(x % (uint64_t)end), 1 << 20, -1, &r);
        plog_read_release(&r);
    }
    double t0 = now_s();
    for (int i = 0; i < reads; i++) {
        plog_read_result r;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (plog_read(l, (int64_t)(x % (uint64_t)end), 1 << 20, -1, &r) != 0 || r.n == 0) {
            fprintf(stderr, "bench: read failed\n");
            exit(1);
        }
        plog_read_release(&r);
    }
    return (now_s() - t0) / reads * 1e6;
}

static void bench_reads(long small_mb, long big_mb) {
    plog_config c;
    plog_config_default(&c);
    plog *s = open_at("small", &c, true);
    fill_log(s, 1024, small_mb);
    double ls = read_latency(s, 50000);
    plog_delete(s);
    plog *b = open_at("big", &c, true);
    fill_log(b, 1024, big_mb);
    double lb = read_latency(b, 50000);
    int segs = plog_segment_count(b);
    plog_delete(b);
    printf("read by offset (locate + ranges, 1 KiB batches): %ld MiB log %.2f us, %ld MiB log (%d segments) "
           "%.2f us, "
           "ratio %.2fx\n",
           small_mb, ls, big_mb, segs, lb, lb / ls);
}

static void bench_recovery(long mb) {
    plog_config c;
    plog_config_default(&c);
    pid_t pid = fork();
    if (pid == 0) {
        plog *l = open_at("recover", &c, false);
        fill_log(l, 16384, mb);
        raise(SIGKILL); /* no flush, no clean close */
        _exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
    double t0 = now_s();
    plog *l = open_at("recover", &c, false);
    double t = now_s() - t0;
    printf("recovery after SIGKILL with %ld MiB unflushed: %.3f s (%.0f MiB/s verified), end offset %" PRId64
           "\n",
           mb, t, (double)mb / t, plog_end_offset(l));
    plog_delete(l);
}

static void bench_startup(long parts) {
    if (parts < 1 || parts > 1000000)
        return;
    plog_config c;
    plog_config_default(&c);
    static uint8_t b[4096];
    char d[700];
    snprintf(d, sizeof d, "%s/parts", root);
    mkdir(d, 0755);
    for (long i = 0; i < parts; i++) {
        char name[64];
        snprintf(name, sizeof name, "parts/t-%ld", i);
        plog *l = open_at(name, &c, true);
        for (int k = 0; k < 10; k++) {
            size_t n = make_batch(b, 1024, 1000);
            plog_append(l, b, n, 0, 0, NULL);
        }
        plog_close(l);
    }
    plog **logs = calloc((size_t)parts, sizeof *logs);
    double t0 = now_s();
    for (long i = 0; i < parts; i++) {
        char name[64];
        snprintf(name, sizeof name, "parts/t-%ld", i);
        logs[i] = open_at(name, &c, true);
    }
    double t = now_s() - t0;
    int fds = storage_open_fds(sc);
    for (long i = 0; i < parts; i++)
        plog_close(logs[i]);
    free(logs);
    printf("startup of %ld partitions after a clean shutdown: %.3f s (%.1f us each), %d segment fds open\n",
           parts, t, t / (double)parts * 1e6, fds);
    /* the same logs as after a crash: each active segment is verified, then
     * fsynced and checkpointed */
    logs = calloc((size_t)parts, sizeof *logs);
    t0 = now_s();
    for (long i = 0; i < parts; i++) {
        char name[64];
        snprintf(name, sizeof name, "parts/t-%ld", i);
        logs[i] = open_at(name, &c, false);
    }
    t = now_s() - t0;
    for (long i = 0; i < parts; i++)
        plog_close(logs[i]);
    free(logs);
    printf("startup of %ld partitions after an unclean stop: %.3f s (%.1f us each)\n", parts, t,
           t / (double)parts * 1e6);
}

/* A batch of nrec records of vlen-byte values with 8-byte keys, as a
 * producer sends one, into out (cap bytes). Returns its size. */
static size_t make_records_batch(uint8_t *out, size_t cap, int codec, int nrec, int vlen) {
    static uint8_t vals[1 << 16];
    static char keys[1 << 16][16];
    batch_build_record *recs = calloc((size_t)nrec, sizeof *recs);
    int64_t t0 = 1700000000000;
    for (int i = 0; i < nrec; i++) {
        snprintf(keys[i], sizeof keys[i], "k%06d", i % 1000000);
        for (int k = 0; k < vlen; k++)
            vals[i * vlen % (1 << 15) + k] = (uint8_t)("abcdefghij"[(i + k) % 10]);
        recs[i].key = (kbytes){(const uint8_t *)keys[i], 7};
        recs[i].value = (kbytes){vals + i * vlen % (1 << 15), vlen};
        recs[i].timestamp = t0 + i;
    }
    batch_build_opts o = batch_build_defaults();
    o.codec = codec;
    arena a;
    arena_init(&a, 64u << 20);
    uint8_t *b;
    size_t n;
    if (batch_build(&o, recs, nrec, &a, &b, &n) != BATCH_OK || n > cap) {
        fprintf(stderr, "bench: cannot build a batch\n");
        exit(1);
    }
    memcpy(out, b, n);
    arena_reset(&a);
    free(recs);
    return n;
}

static void bench_validation(long batches) {
    static const int codecs[] = {BATCH_CODEC_NONE, BATCH_CODEC_LZ4, BATCH_CODEC_ZSTD};
    static const char *names[] = {"none", "lz4", "zstd"};
    static uint8_t tmpl[1 << 20], b[1 << 20];
    for (int ci = 0; ci < 3; ci++) {
        size_t n = make_records_batch(tmpl, sizeof tmpl, codecs[ci], 100, 100);
        double best_crc = 1e9, best_deep = 1e9, best_app = 1e9;
        for (int round = 0; round < 3; round++) {
            double t0 = now_s();
            for (long i = 0; i < batches; i++)
                if (batch_validate(tmpl, n, false, 64u << 20) != BATCH_OK)
                    exit(1);
            double t = now_s() - t0;
            best_crc = t < best_crc ? t : best_crc;
            t0 = now_s();
            for (long i = 0; i < batches; i++)
                if (batch_validate(tmpl, n, true, 64u << 20) != BATCH_OK)
                    exit(1);
            t = now_s() - t0;
            best_deep = t < best_deep ? t : best_deep;
            plog_config c;
            plog_config_default(&c);
            plog *l = open_at("validate", &c, true);
            t0 = now_s();
            for (long i = 0; i < batches; i++) {
                memcpy(b, tmpl, n);
                if (plog_append(l, b, n, 0, 1700000000000, NULL) != 0) {
                    fprintf(stderr, "bench: append failed\n");
                    exit(1);
                }
            }
            t = now_s() - t0;
            best_app = t < best_app ? t : best_app;
            plog_delete(l);
        }
        double us = 1e6 / (double)batches;
        printf("validate 100 x 100 B records (%s, %zu B batch, best of 3): CRC only %.2f us, every record "
               "%.2f us "
               "(%.0f ns/record), whole plog_append %.2f us (%.0f records/s); records walk = %.2fx the CRC "
               "check, "
               "%.0f%% of the append\n",
               names[ci], n, best_crc * us, best_deep * us, best_deep * us * 10, best_app * us,
               100.0 * (double)batches / best_app, best_deep / best_crc, 100.0 * best_deep / best_app);
    }
}

static void bench_recovery_segments(long mb, long tick_mb) {
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 64 << 20;
    pid_t pid = fork();
    if (pid == 0) {
        plog *l = open_at("recover-segs", &c, false);
        for (long done = 0; done < mb; done += tick_mb) {
            fill_log(l, 16384, tick_mb);
            plog_tick(l, 0);
        }
        fill_log(l, 16384, 8); /* and a little written after the last tick */
        raise(SIGKILL);
        _exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
    /* drop the page cache of the files would need root; the scans read warm pages either way */
    double t0 = now_s();
    plog *l = open_at("recover-segs", &c, false);
    double t = now_s() - t0;
    int segs = plog_segment_count(l);
    int64_t end = plog_end_offset(l);
    plog_close(l);
    /* the same bytes, every segment verified: a checkpoint from before the first roll */
    char p[800];
    snprintf(p, sizeof p, "%s/recover-segs/log.checkpoint", root);
    FILE *f = fopen(p, "w");
    fputs("sluice-log-checkpoint 1\n0 0\n", f);
    fclose(f);
    t0 = now_s();
    l = open_at("recover-segs", &c, false);
    double full = now_s() - t0;
    printf("recovery after SIGKILL of a %ld MiB log in %d segments (ticked every %ld MiB): %.3f s, full "
           "verification %.3f s, ratio %.3fx, end offset %" PRId64 " / %" PRId64 "\n",
           mb + 8, segs, tick_mb, t, full, t / full, end, plog_end_offset(l));
    plog_delete(l);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/sluice-bench-storage-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sc = storage_ctx_new(sl_vfs_posix(), STORAGE_FD_LIMIT_DEFAULT);
    long append_mb = env_long("SLUICE_BENCH_APPEND_MB", 256);
    printf("bench_storage (crc32c: %s)\n", crc32c_impl());
    bench_append(1024, append_mb);
    bench_append(16384, append_mb);
    bench_reads(env_long("SLUICE_BENCH_SMALL_MB", 100), env_long("SLUICE_BENCH_BIG_MB", 1024));
    bench_recovery(env_long("SLUICE_BENCH_RECOVER_MB", 1024));
    bench_startup(env_long("SLUICE_BENCH_PARTITIONS", 2000));
    bench_validation(env_long("SLUICE_BENCH_VALIDATE_BATCHES", 20000));
    bench_recovery_segments(env_long("SLUICE_BENCH_SEGMENTS_MB", 1024), env_long("SLUICE_BENCH_TICK_MB", 64));
    rmrf(root);
    return 0;
}
