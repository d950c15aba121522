/*
 * fuzz_producer_snapshot.c - libFuzzer target for the producer-state
 * snapshot files a partition loads at open (`<offset>.snapshot`,
 * pstate_snapshot_decode). A disk can hand back any bytes.
 *
 * Invariants: no crash, no sanitizer report, no leak; a decode that fails
 * leaves the state empty; one that succeeds holds at most the entries the
 * bytes name, re-encodes to a snapshot that decodes to the same producers,
 * and the loaded state answers the producer rules for each of them.
 *
 * Input layout: byte 0 - when odd, the CRC of the rest is set right before
 * the decode, so the fuzzer reaches the entries behind it; bit 1 set: the
 * rest is an aborted-transaction file (`<offset>.snapshot.aborted`,
 * pstate_aborted_decode: a list that decodes holds at most the entries the
 * bytes name, in marker order, and re-encodes to the same bytes);
 * otherwise it is the snapshot file's contents.
 *
 * FUZZ_WRITE_SEEDS=<dir> writes the seeds (an empty snapshot, one of three
 * producers, one of 50 with wrapped sequences) there and exits.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "proto/wire.h"
#include "storage/producer_state.h"

static void write_seed(const char *dir, const char *name, const pstate *s) {
    size_t n = pstate_snapshot_size(s);
    uint8_t *buf = malloc(n);
    pstate_snapshot_encode(s, buf, n);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputc(1, f);
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    free(buf);
}

static void write_seeds(const char *dir) {
    pstate *s = pstate_create(0, 0);
    write_seed(dir, "empty.snapshot", s);
    for (int64_t pid = 1; pid <= 3; pid++) {
        pstate_batch b = {0, 9, pid * 10, pid * 10 + 9, 1700000000000 + pid};
        pstate_update(s, pid, (int16_t)pid, &b, 0);
    }
    write_seed(dir, "three.snapshot", s);
    for (int64_t pid = 100; pid < 147; pid++) {
        pstate_batch b = {INT32_MAX - 1, 1, pid * 4, pid * 4 + 3, 1700000000000};
        pstate_update(s, pid, 0, &b, 0);
    }
    write_seed(dir, "fifty-wrapped.snapshot", s);
    pstate_txn_data(s, 100, 400);
    pstate_txn_end(s, 100, false, 410);
    pstate_txn_data(s, 101, 404);
    pstate_txn_end(s, 101, false, 420);
    size_t an = pstate_aborted_size(s);
    uint8_t *abuf = malloc(an);
    pstate_aborted_encode(s, abuf, an);
    char path[4096];
    snprintf(path, sizeof path, "%s/two.aborted", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputc(3, f);
        fwrite(abuf, 1, an, f);
        fclose(f);
    }
    free(abuf);
    pstate_destroy(s);
}

static void fuzz_aborted(const uint8_t *data, size_t size) {
    pstate *s = pstate_create(0, 0);
    if (s == NULL)
        abort();
    char why[256];
    if (pstate_aborted_decode(s, data, size, why, sizeof why) != 0) {
        if (pstate_aborted_count(s) != 0)
            abort();
    } else {
        if (size < PSTATE_ABORTED_HEADER ||
            (size_t)pstate_aborted_count(s) != (size - PSTATE_ABORTED_HEADER) / PSTATE_ABORTED_ENTRY)
            abort();
        size_t n = pstate_aborted_size(s);
        uint8_t *buf = malloc(n);
        if (buf == NULL || pstate_aborted_encode(s, buf, n) != n || n != size || memcmp(buf, data, n) != 0)
            abort();
        pstate_aborted prev = {0, 0, -1}, a[8];
        int32_t got = pstate_aborted_in(s, 0, INT64_MAX, a, 8);
        for (int32_t i = 0; i < got; i++) {
            if (a[i].last_offset < prev.last_offset || a[i].first_offset > a[i].last_offset)
                abort();
            prev = a[i];
        }
        free(buf);
    }
    pstate_destroy(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int seeded;
    if (!seeded) {
        seeded = 1;
        const char *dir = getenv("FUZZ_WRITE_SEEDS");
        if (dir != NULL) {
            write_seeds(dir);
            exit(0);
        }
    }
    if (size == 0)
        return 0;
    bool fix_crc = data[0] & 1, aborted_file = (data[0] & 2) != 0;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data + 1, size);
    if (fix_crc && size >= PSTATE_SNAPSHOT_HEADER)
        wire_put_be32(copy + 2, crc32c(0, copy + 6, size - 6));
    data = copy;
    if (aborted_file) {
        if (fix_crc && size >= PSTATE_ABORTED_HEADER)
            wire_put_be32(copy + 2, crc32c(0, copy + 6, size - 6));
        fuzz_aborted(copy, size);
        free(copy);
        return 0;
    }
    pstate *s = pstate_create(0, 0), *t = pstate_create(0, 0);
    if (s == NULL || t == NULL)
        abort();
    char why[256];
    if (pstate_snapshot_decode(s, data, size, 0, why, sizeof why) != 0) {
        if (pstate_count(s) != 0)
            abort();
    } else {
        if (size < PSTATE_SNAPSHOT_HEADER ||
            (size_t)pstate_count(s) > (size - PSTATE_SNAPSHOT_HEADER) / PSTATE_SNAPSHOT_ENTRY)
            abort();
        size_t n = pstate_snapshot_size(s);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf == NULL || pstate_snapshot_encode(s, buf, n) != n)
            abort();
        if (pstate_snapshot_decode(t, buf, n, 0, why, sizeof why) != 0 || pstate_count(t) != pstate_count(s))
            abort();
        for (int32_t i = 0; i < pstate_count(s); i++) {
            const pstate_entry *e = pstate_at(s, i);
            const pstate_batch *b = pstate_newest(e);
            const pstate_entry *f = pstate_get(t, e->producer_id);
            if (b == NULL || f == NULL || f->epoch != e->epoch)
                abort();
            pstate_batch dup;
            int16_t cur;
            if (pstate_check(s, e->producer_id, e->epoch, b->first_seq, b->last_seq, &dup, &cur) !=
                    PSTATE_DUPLICATE ||
                dup.first_offset != b->first_offset)
                abort();
        }
        free(buf);
    }
    pstate_destroy(s);
    pstate_destroy(t);
    free(copy);
    return 0;
}
