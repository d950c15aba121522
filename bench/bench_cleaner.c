/*
 * bench_cleaner.c - the log cleaner (storage/cleaner.h), as ratios against
 * baselines measured in the same run on the same filesystem:
 *
 *   1. cleaner throughput (segment bytes read per second of a pass that
 *      rewrites the whole log) against raw sequential write (pwrite + one
 *      fsync) and raw read (pread) of as many bytes;
 *   2. append throughput on a compacted log while the cleaner runs passes
 *      over it on another thread, against the same appends with the cleaner
 *      idle.
 *
 * The workload: SLUICE_BENCH_CLEAN_MB (default 256) of batches of 50
 * records of 1 KiB values over SLUICE_BENCH_CLEAN_KEYS keys (default
 * 20,000), so a pass keeps about one record in ten (log written ten times
 * over per key at the default size), segments of 16 MiB, a 32 MiB key map.
 * Under a mkdtemp() directory in $TMPDIR (default /tmp), removed at the end.
 * On a shared or loaded machine the ratios move; they are what was seen.
 */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/env.h"
#include "proto/batch_build.h"
#include "storage/cleaner.h"
#include "storage/log.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long env_long(const char *name, long dflt) {
    const char *e = getenv(name);
    return e ? atol(e) : dflt;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define RECS 50
#define VLEN 1024

/* One batch of RECS keyed records; returns its bytes from a. */
static uint8_t *make_batch(arena *a, long nkeys, size_t *len) {
    static char keys[RECS][16];
    static uint8_t value[VLEN];
    batch_build_record r[RECS];
    for (int i = 0; i < VLEN; i++)
        value[i] = (uint8_t)next_rand();
    for (int i = 0; i < RECS; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "key-%07ld", (long)(next_rand() % (uint64_t)nkeys));
        r[i] = (batch_build_record){
            .key = {(const uint8_t *)keys[i], kl}, .value = {value, VLEN}, .timestamp = 1000};
    }
    batch_build_opts o = batch_build_defaults();
    uint8_t *out;
    if (batch_build(&o, r, RECS, a, &out, len) != 0)
        return NULL;
    return out;
}

static plog *fill_log(storage_ctx *sc, const char *dir, long bytes, long nkeys) {
    plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 16 << 20;
    int err;
    plog *l = plog_open(sc, dir, &cfg, true, &err);
    if (l == NULL)
        return NULL;
    arena a;
    arena_init(&a, 8 << 20);
    for (long done = 0; done < bytes;) {
        size_t len;
        uint8_t *b = make_batch(&a, nkeys, &len);
        if (b == NULL || plog_append(l, b, len, 1, 0, NULL) != 0) {
            fprintf(stderr, "bench: append failed\n");
            exit(1);
        }
        done += (long)len;
        arena_reset(&a);
    }
    plog_roll(l, 0);
    plog_flush(l, 0);
    return l;
}

/* Raw sequential write (pwrite in 1 MiB chunks, one fsync) and read. */
static void raw_rates(const char *root, long bytes, double *w_mbs, double *r_mbs) {
    char p[600];
    snprintf(p, sizeof p, "%s/raw.bin", root);
    uint8_t *buf = malloc(1 << 20);
    for (int i = 0; i < (1 << 20); i++)
        buf[i] = (uint8_t)next_rand();
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    double t0 = now_s();
    for (long off = 0; off < bytes; off += 1 << 20)
        if (pwrite(fd, buf, 1 << 20, off) != 1 << 20)
            exit(1);
    fsync(fd);
    double t1 = now_s();
    for (long off = 0; off < bytes; off += 1 << 20)
        if (pread(fd, buf, 1 << 20, off) != 1 << 20)
            exit(1);
    double t2 = now_s();
    close(fd);
    unlink(p);
    free(buf);
    *w_mbs = (double)bytes / (1 << 20) / (t1 - t0);
    *r_mbs = (double)bytes / (1 << 20) / (t2 - t1);
}

typedef struct bg {
    plog *l;
    cleaner *c;
    atomic_bool stop;
    int passes;
} bg;

static void *clean_loop(void *arg) {
    bg *g = arg;
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    while (!atomic_load(&g->stop)) {
        cleaner_stats st;
        /* As the broker's housekeeper does: a roll, then the fsync of the
         * sealed segment outside the log's mutex (the recovery point moves,
         * so the new segment becomes cleanable). */
        plog_roll(g->l, 0);
        plog_tick(g->l, 0);
        cleaner_clean(g->c, g->l, &lc, 0, true, &st);
        g->passes++;
    }
    return NULL;
}

/* Appends `bytes` more to l; MiB/s. */
static double append_rate(plog *l, long bytes, long nkeys) {
    arena a;
    arena_init(&a, 8 << 20);
    double t0 = now_s();
    for (long done = 0; done < bytes;) {
        size_t len;
        uint8_t *b = make_batch(&a, nkeys, &len);
        if (b == NULL || plog_append(l, b, len, 1, 0, NULL) != 0)
            exit(1);
        done += (long)len;
        arena_reset(&a);
    }
    double t = now_s() - t0;
    return (double)bytes / (1 << 20) / t;
}

int main(void) {
    long mb = env_long("SLUICE_BENCH_CLEAN_MB", 256);
    long nkeys = env_long("SLUICE_BENCH_CLEAN_KEYS", 20000);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char root[512], dir[600];
    snprintf(root, sizeof root, "%s/sluice-bench-cleaner-XXXXXX", tmp);
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    storage_ctx *sc = storage_ctx_new(sl_vfs_posix(), STORAGE_FD_LIMIT_DEFAULT);
    long bytes = mb << 20;

    /* 1. Cleaner throughput vs raw write and read. */
    double w_mbs, r_mbs;
    raw_rates(root, bytes, &w_mbs, &r_mbs);
    snprintf(dir, sizeof dir, "%s/t-0", root);
    plog *l = fill_log(sc, dir, bytes, nkeys);
    cleaner_opts o = {.dedupe_buffer_bytes = 32 << 20};
    cleaner *c = cleaner_new(&o);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    cleaner_stats st;
    int64_t size0 = plog_size_bytes(l);
    double t0 = now_s();
    int rc = cleaner_clean(c, l, &lc, 0, true, &st);
    double t = now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench: clean failed: %d\n", rc);
        return 1;
    }
    /* The pass reads the dirty section twice (map, then rewrite): the rate
     * counts every byte read; the log rate is the log's size over the time. */
    double c_mbs = (double)st.bytes_read / (1 << 20) / t;
    double log_mbs = (double)size0 / (1 << 20) / t;
    printf("cleaner: %ld MiB log, %ld keys: a pass read %.0f MiB and wrote %.1f MiB in %.2f s (%" PRId64
           " of %" PRId64 " records kept, log %.0f -> %.1f MiB)\n",
           mb, nkeys, (double)st.bytes_read / (1 << 20), (double)st.bytes_written / (1 << 20), t,
           st.records_kept, st.records_read, (double)size0 / (1 << 20),
           (double)plog_size_bytes(l) / (1 << 20));
    printf(
        "cleaner throughput %.0f MiB/s read (%.0f MiB/s of log cleaned); raw write %.0f MiB/s, raw read %.0f "
        "MiB/s (page cache, as the cleaner's reads were): ratio %.2fx of raw write, %.2fx of raw read "
        "(log rate %.2fx of raw write)\n",
        c_mbs, log_mbs, w_mbs, r_mbs, c_mbs / w_mbs, c_mbs / r_mbs, log_mbs / w_mbs);

    /* 2. Appends with the cleaner idle, then with it running passes. */
    long app = bytes / 2;
    double idle = append_rate(l, app, nkeys);
    bg g = {.l = l, .c = c};
    pthread_t th;
    pthread_create(&th, NULL, clean_loop, &g);
    double busy = append_rate(l, app, nkeys);
    atomic_store(&g.stop, true);
    pthread_join(th, NULL);
    printf(
        "append %ld MiB of 50 x 1 KiB batches to the compacted log: idle cleaner %.0f MiB/s, cleaner running "
        "(%d passes meanwhile) %.0f MiB/s: ratio %.2fx\n",
        app >> 20, idle, g.passes, busy, busy / idle);

    plog_close(l);
    cleaner_free(c);
    storage_ctx_free(sc);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
