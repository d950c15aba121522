/*
 * bench_batch.c - throughput of the batch hot path: CRC-32C (accelerated and
 * portable), shallow and deep batch validation per codec, and batch_build.
 * Runs for about two seconds; prints one line per measurement.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/compress.h"

#define BENCH_RECORDS 1000
#define BENCH_VALUE   200

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint32_t sink;

static void bench_crc(void) {
    static uint8_t buf[1 << 20];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    const char *names[2] = {crc32c_impl(), "portable"};
    for (int k = 0; k < 2; k++) {
        double t0 = now();
        int iters = 0;
        while (now() - t0 < 0.25) {
            sink = k == 0 ? crc32c(0, buf, sizeof buf) : crc32c_portable(0, buf, sizeof buf);
            iters++;
        }
        double s = now() - t0;
        printf("crc32c %-9s %8.2f GB/s\n", names[k], (double)iters * sizeof buf / s / 1e9);
    }
}

static void bench_batches(void) {
    static char vals[BENCH_RECORDS][BENCH_VALUE];
    static char keys[BENCH_RECORDS][16];
    static batch_build_record recs[BENCH_RECORDS];
    for (int i = 0; i < BENCH_RECORDS; i++) {
        int kn = snprintf(keys[i], sizeof keys[i], "key-%d", i);
        for (int j = 0; j < BENCH_VALUE; j++)
            vals[i][j] = "abcdefghij klmnopqrst"[(i + j * 7) % 21];
        recs[i] = (batch_build_record){{(const uint8_t *)keys[i], kn},
                                       {(const uint8_t *)vals[i], BENCH_VALUE},
                                       1700000000000LL + i,
                                       0,
                                       NULL,
                                       0};
    }
    for (int codec = 0; codec <= 4; codec++) {
        arena a;
        arena_init(&a, 64u << 20);
        batch_build_opts o = batch_build_defaults();
        o.codec = codec;
        uint8_t *b;
        size_t n;
        double t0 = now();
        int builds = 0;
        while (now() - t0 < 0.1) {
            arena_reset(&a);
            if (batch_build(&o, recs, BENCH_RECORDS, &a, &b, &n) != BATCH_OK)
                return;
            builds++;
        }
        double tb = (now() - t0) / builds;
        for (int deep = 0; deep <= 1; deep++) {
            t0 = now();
            int iters = 0;
            while (now() - t0 < 0.15) {
                if (batch_validate(b, n, deep, 16u << 20) != BATCH_OK)
                    return;
                iters++;
            }
            double t = (now() - t0) / iters;
            printf("validate %-6s %-7s %7zu bytes  %8.1f us  %8.2f M records/s\n", compress_codec_name(codec),
                   deep ? "deep" : "shallow", n, t * 1e6, BENCH_RECORDS / t / 1e6);
        }
        printf("build    %-6s         %7zu bytes  %8.1f us\n", compress_codec_name(codec), n, tb * 1e6);
        arena_reset(&a);
    }
}

int main(void) {
    bench_crc();
    bench_batches();
    return 0;
}
