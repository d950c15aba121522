/*
 * test_storage_log.c - unit tests of the partition log: append and
 * validation, reads at every offset and index boundary, roll, timestamp
 * lookup, retention (with readers holding segments), DeleteRecords,
 * truncation (inside, at the end of and before the start of the log, with
 * the indexes and the recovery point following), the follower append,
 * plog_scan, reopening, the descriptor bound, and storage contexts that share
 * nothing.
 */
#include "storage_testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>

#include <pthread.h>

#include "storage/log.h"
#include "unit.h"

static const char *root;
static char dir[512];
static uint8_t buf[1 << 20];

static plog *open_log(const plog_config *c, bool clean) {
    int err = -1;
    plog *l = plog_open(tl_storage(), dir, c, clean, &err);
    if (l == NULL)
        fprintf(stderr, "open failed: %d\n", err);
    return l;
}

static void fresh_dir(const char *name) {
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    tl_rmrf(dir);
}

/* Appends one batch of nrec records; returns its base offset or -1. */
static int64_t append1(plog *l, int nrec, int64_t ts, int vlen, int64_t now) {
    size_t n = tl_build_batch(buf, sizeof buf, nrec, ts, vlen, (uint8_t)nrec);
    plog_append_info info;
    int rc = plog_append(l, buf, n, 7, now, &info);
    return rc == 0 ? info.base_offset : -1;
}

/* Reads the first batch header of a read result; returns base/last offsets. */
static int first_batch(const plog_read_result *r, int64_t *base, int64_t *last, int64_t *epoch) {
    uint8_t h[BATCH_HEADER_SIZE];
    if (r->n == 0 || r->r[0].len < BATCH_HEADER_SIZE)
        return -1;
    if (pread(r->r[0].fd, h, sizeof h, r->r[0].pos) != (ssize_t)sizeof h)
        return -1;
    *base = (int64_t)wire_be64(h);
    *last = *base + (int32_t)wire_be32(h + BATCH_OFF_LAST_OFFSET_DELTA);
    if (epoch)
        *epoch = (int32_t)wire_be32(h + BATCH_OFF_LEADER_EPOCH);
    return 0;
}

/* Every offset in [from, to) reads back a batch that holds it. */
static void check_reads(plog *l, int64_t from, int64_t to) {
    for (int64_t o = from; o < to; o++) {
        plog_read_result r;
        REQUIRE(plog_read(l, o, 1, -1, &r) == 0);
        int64_t b, e;
        REQUIRE(first_batch(&r, &b, &e, NULL) == 0);
        if (!(b <= o && o <= e))
            fprintf(stderr, "offset %" PRId64 " read batch %" PRId64 "..%" PRId64 "\n", o, b, e);
        CHECK(b <= o && o <= e);
        plog_read_release(&r);
    }
}

static void test_append_read(void) {
    fresh_dir("append");
    plog_config c;
    plog_config_default(&c);
    c.index_interval_bytes = 100;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    CHECK_EQ_INT(plog_end_offset(l), 0);
    int64_t expect = 0;
    for (int i = 0; i < 200; i++) {
        int n = 1 + i % 5;
        CHECK_EQ_INT(append1(l, n, 1000 + i, 10 + i % 50, 0), expect);
        expect += n;
    }
    CHECK_EQ_INT(plog_end_offset(l), expect);
    check_reads(l, 0, expect);
    /* the epoch was patched in */
    plog_read_result r;
    REQUIRE(plog_read(l, 0, 1 << 20, -1, &r) == 0);
    int64_t b, e, ep;
    REQUIRE(first_batch(&r, &b, &e, &ep) == 0);
    CHECK_EQ_INT(ep, 7);
    CHECK_EQ_INT(r.bytes, plog_size_bytes(l));
    plog_read_release(&r);
    /* end of log: empty; past it: out of range */
    REQUIRE(plog_read(l, expect, 100, -1, &r) == 0);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(plog_read(l, expect + 1, 100, -1, &r), STORAGE_OFFSET_OUT_OF_RANGE);
    CHECK_EQ_INT(plog_read(l, -1, 100, -1, &r), STORAGE_OFFSET_OUT_OF_RANGE);
    CHECK_EQ_INT(plog_close(l), 0);
    /* reopen cleanly: same state */
    l = open_log(&c, true);
    REQUIRE(l);
    CHECK_EQ_INT(plog_end_offset(l), expect);
    check_reads(l, 0, expect);
    CHECK_EQ_INT(append1(l, 2, 5000, 10, 0), expect);
    plog_close(l);
}

static void test_validation(void) {
    fresh_dir("validate");
    plog_config c;
    plog_config_default(&c);
    c.max_message_bytes = 2000;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    REQUIRE(append1(l, 2, 1, 10, 0) == 0);
    int64_t size0 = plog_size_bytes(l);
    size_t n = tl_build_batch(buf, sizeof buf, 2, 1, 10, 1);
    plog_append_info info;
    /* flipped payload byte: CRC mismatch */
    buf[n - 3] ^= 0x40;
    CHECK_EQ_INT(plog_append(l, buf, n, 0, 0, &info), STORAGE_CORRUPT_MESSAGE);
    buf[n - 3] ^= 0x40;
    /* truncated input */
    CHECK_EQ_INT(plog_append(l, buf, n - 1, 0, 0, &info), STORAGE_CORRUPT_MESSAGE);
    CHECK_EQ_INT(plog_append(l, buf, 30, 0, 0, &info), STORAGE_CORRUPT_MESSAGE);
    /* wrong magic */
    buf[BATCH_OFF_MAGIC] = 1;
    CHECK(plog_append(l, buf, n, 0, 0, &info) != 0);
    buf[BATCH_OFF_MAGIC] = 2;
    /* lastOffsetDelta disagreeing with recordCount */
    wire_put_be32(buf + BATCH_OFF_RECORD_COUNT, 1);
    wire_put_be32(buf + BATCH_OFF_CRC, crc32c(0, buf + 21, n - 21));
    CHECK_EQ_INT(plog_append(l, buf, n, 0, 0, &info), STORAGE_INVALID_RECORD);
    /* too large */
    size_t big = tl_build_batch(buf, sizeof buf, 1, 1, 3000, 1);
    CHECK_EQ_INT(plog_append(l, buf, big, 0, 0, &info), STORAGE_MESSAGE_TOO_LARGE);
    /* second of two batches bad: nothing appended */
    size_t a = tl_build_batch(buf, sizeof buf, 1, 1, 10, 1);
    size_t b = tl_build_batch(buf + a, sizeof buf - a, 1, 1, 10, 1);
    buf[a + b - 1] ^= 1;
    CHECK_EQ_INT(plog_append(l, buf, a + b, 0, 0, &info), STORAGE_CORRUPT_MESSAGE);
    CHECK_EQ_INT(plog_end_offset(l), 2);
    CHECK_EQ_INT(plog_size_bytes(l), size0);
    /* two good batches in one append */
    buf[a + b - 1] ^= 1;
    REQUIRE(plog_append(l, buf, a + b, 0, 0, &info) == 0);
    CHECK_EQ_INT(info.base_offset, 2);
    CHECK_EQ_INT(info.last_offset, 3);
    CHECK_EQ_INT(info.batches, 2);
    plog_close(l);
}

static void test_log_append_time(void) {
    fresh_dir("lat");
    plog_config c;
    plog_config_default(&c);
    c.timestamp_type = PLOG_TS_LOG_APPEND_TIME;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    size_t n = tl_build_batch(buf, sizeof buf, 3, 5, 10, 1);
    plog_append_info info;
    REQUIRE(plog_append(l, buf, n, 0, 123456, &info) == 0);
    CHECK_EQ_INT(info.log_append_time, 123456);
    plog_read_result r;
    REQUIRE(plog_read(l, 0, 1 << 20, -1, &r) == 0);
    uint8_t got[4096];
    REQUIRE(pread(r.r[0].fd, got, (size_t)r.r[0].len, r.r[0].pos) == r.r[0].len);
    CHECK(batch_crc_ok(got, (size_t)r.r[0].len));
    CHECK_EQ_INT((int64_t)wire_be64(got + BATCH_OFF_MAX_TIMESTAMP), 123456);
    CHECK(wire_be16(got + BATCH_OFF_ATTRIBUTES) & BATCH_ATTR_LOG_APPEND_TIME);
    plog_read_release(&r);
    int64_t off, ts;
    CHECK_EQ_INT(plog_offset_for_time(l, 123000, &off, &ts), 0);
    CHECK_EQ_INT(off, 0);
    CHECK_EQ_INT(ts, 123456);
    plog_close(l);
}

static void test_roll_and_boundaries(void) {
    fresh_dir("roll");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 4096;
    c.index_interval_bytes = 300;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    int64_t expect = 0;
    for (int i = 0; i < 150; i++) {
        int n = 1 + i % 3;
        REQUIRE(append1(l, n, 1000 + i, 100 + (i * 37) % 200, 0) == expect);
        expect += n;
    }
    CHECK(plog_segment_count(l) > 5);
    check_reads(l, 0, expect);
    /* reads span segments and stay within the byte limit (bar the first batch) */
    plog_read_result r;
    REQUIRE(plog_read(l, 0, 1 << 20, -1, &r) == 0);
    CHECK(r.n > 1);
    CHECK_EQ_INT(r.bytes, r.n == PLOG_MAX_RANGES ? r.bytes : plog_size_bytes(l));
    plog_read_release(&r);
    REQUIRE(plog_read(l, 5, 10, -1, &r) == 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK(r.r[0].len > 10); /* one whole batch despite the 10-byte limit */
    plog_read_release(&r);
    /* max_offset bound: nothing at or past 10 */
    REQUIRE(plog_read(l, 0, 1 << 20, 10, &r) == 0);
    {
        int64_t total = 0;
        for (int i = 0; i < r.n; i++)
            total += r.r[i].len;
        uint8_t *all = malloc((size_t)total);
        int64_t at = 0;
        for (int i = 0; i < r.n; i++) {
            REQUIRE(pread(r.r[i].fd, all + at, (size_t)r.r[i].len, r.r[i].pos) == r.r[i].len);
            at += r.r[i].len;
        }
        int64_t p = 0, last = -1;
        while (p + BATCH_HEADER_SIZE <= total) {
            int64_t base = (int64_t)wire_be64(all + p);
            CHECK(base < 10);
            last = base + (int32_t)wire_be32(all + p + BATCH_OFF_LAST_OFFSET_DELTA);
            p += (int32_t)wire_be32(all + p + 8) + 12;
        }
        CHECK(last >= 9);
        free(all);
    }
    plog_read_release(&r);
    /* segment names */
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.log", dir);
    CHECK(access(p, F_OK) == 0);
    plog_roll(l, 0);
    int nseg = plog_segment_count(l);
    plog_roll(l, 0); /* empty active: no new segment */
    CHECK_EQ_INT(plog_segment_count(l), nseg);
    snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, expect);
    CHECK(access(p, F_OK) == 0);
    plog_close(l);
    /* segment.ms */
    fresh_dir("rollms");
    c.segment_bytes = 1 << 20;
    c.segment_ms = 100;
    l = open_log(&c, true);
    REQUIRE(l);
    append1(l, 1, 1, 10, 1000);
    append1(l, 1, 1, 10, 1050);
    CHECK_EQ_INT(plog_segment_count(l), 1);
    append1(l, 1, 1, 10, 1200);
    CHECK_EQ_INT(plog_segment_count(l), 2);
    plog_tick(l, 100000);
    CHECK_EQ_INT(plog_segment_count(l), 3);
    plog_close(l);
    /* full offset index rolls */
    fresh_dir("rollidx");
    c.segment_ms = INT64_MAX / 4;
    c.segment_index_bytes = 64; /* 8 entries */
    c.index_interval_bytes = 1;
    l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 40; i++)
        append1(l, 1, 1, 10, 0);
    CHECK(plog_segment_count(l) >= 5);
    check_reads(l, 0, 40);
    plog_close(l);
}

static void test_timestamps(void) {
    fresh_dir("ts");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 2000;
    c.index_interval_bytes = 150;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    /* batch i (one record) has timestamp 1000 + 10*i, except a dip at i=20 */
    for (int i = 0; i < 100; i++)
        append1(l, 1, i == 20 ? 5 : 1000 + 10 * i, 50, 0);
    CHECK(plog_segment_count(l) > 3);
    int64_t off, ts;
    for (int i = 0; i < 100; i++) {
        if (i == 20)
            continue;
        REQUIRE(plog_offset_for_time(l, 1000 + 10 * i, &off, &ts) == 0);
        CHECK_EQ_INT(off, i);
        CHECK_EQ_INT(ts, 1000 + 10 * i);
        REQUIRE(plog_offset_for_time(l, 1000 + 10 * i - 5, &off, &ts) == 0);
        CHECK_EQ_INT(off, i == 21 ? 19 + 2 : i);
    }
    REQUIRE(plog_offset_for_time(l, 0, &off, &ts) == 0);
    CHECK_EQ_INT(off, 0);
    REQUIRE(plog_offset_for_time(l, 999999, &off, &ts) == 0);
    CHECK_EQ_INT(off, -1);
    REQUIRE(plog_offset_for_time(l, PLOG_TS_EARLIEST, &off, &ts) == 0);
    CHECK_EQ_INT(off, 0);
    REQUIRE(plog_offset_for_time(l, PLOG_TS_LATEST, &off, &ts) == 0);
    CHECK_EQ_INT(off, 100);
    REQUIRE(plog_offset_for_time(l, PLOG_TS_MAX, &off, &ts) == 0);
    CHECK_EQ_INT(off, 99);
    CHECK_EQ_INT(ts, 1990);
    plog_close(l);
    /* and after a clean reopen (indexes loaded lazily from files) */
    l = open_log(&c, true);
    REQUIRE(l);
    REQUIRE(plog_offset_for_time(l, 1505, &off, &ts) == 0);
    CHECK_EQ_INT(off, 51);
    REQUIRE(plog_offset_for_time(l, PLOG_TS_MAX, &off, &ts) == 0);
    CHECK_EQ_INT(off, 99);
    plog_close(l);

    /* record granularity inside a batch */
    fresh_dir("ts2");
    l = open_log(&c, true);
    REQUIRE(l);
    size_t n = tl_build_batch_ts(buf, sizeof buf, 5, 100, 10, 20, 1); /* 100..140 */
    REQUIRE(plog_append(l, buf, n, 0, 0, NULL) == 0);
    n = tl_build_batch_ts(buf, sizeof buf, 5, 200, 10, 20, 1); /* 200..240 */
    REQUIRE(plog_append(l, buf, n, 0, 0, NULL) == 0);
    REQUIRE(plog_offset_for_time(l, 125, &off, &ts) == 0);
    CHECK_EQ_INT(off, 3);
    CHECK_EQ_INT(ts, 130);
    REQUIRE(plog_offset_for_time(l, 200, &off, &ts) == 0);
    CHECK_EQ_INT(off, 5);
    REQUIRE(plog_offset_for_time(l, 231, &off, &ts) == 0);
    CHECK_EQ_INT(off, 9);
    REQUIRE(plog_offset_for_time(l, PLOG_TS_MAX, &off, &ts) == 0);
    CHECK_EQ_INT(off, 9);
    CHECK_EQ_INT(ts, 240);
    /* validation rejects a record list that disagrees with its header */
    n = tl_build_batch_ts(buf, sizeof buf, 3, 100, 10, 20, 1);
    wire_put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, 3);
    wire_put_be32(buf + BATCH_OFF_RECORD_COUNT, 4);
    wire_put_be32(buf + BATCH_OFF_CRC, crc32c(0, buf + 21, n - 21));
    CHECK_EQ_INT(plog_append(l, buf, n, 0, 0, NULL), STORAGE_INVALID_RECORD);
    CHECK_EQ_INT(plog_end_offset(l), 10);
    plog_close(l);
}

static void test_retention(void) {
    fresh_dir("retain");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 1000;
    c.retention_ms = 10000;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    /* 10 segments; segment k holds timestamps around 1000*k */
    for (int i = 0; i < 60; i++)
        append1(l, 1, 1000 * (i / 6), 100, 0);
    int nseg = plog_segment_count(l);
    CHECK(nseg >= 10);
    int del = -1;
    REQUIRE(plog_retention(l, 5000, &del) == 0);
    CHECK_EQ_INT(del, 0);
    /* now 13500: segments whose max ts < 3500 go */
    REQUIRE(plog_retention(l, 13500, &del) == 0);
    CHECK(del >= 3);
    int64_t lso = plog_start_offset(l);
    CHECK(lso > 0);
    plog_read_result r;
    CHECK_EQ_INT(plog_read(l, lso - 1, 100, -1, &r), STORAGE_OFFSET_OUT_OF_RANGE);
    REQUIRE(plog_read(l, lso, 100, -1, &r) == 0);
    plog_read_release(&r);
    check_reads(l, lso, 60);
    /* far future: everything but the active segment */
    REQUIRE(plog_retention(l, INT64_MAX / 2, &del) == 0);
    CHECK_EQ_INT(plog_segment_count(l), 1);
    CHECK_EQ_INT(plog_end_offset(l), 60);
    append1(l, 1, 1, 10, 0);
    CHECK_EQ_INT(plog_end_offset(l), 61);
    plog_close(l);

    fresh_dir("retainsize");
    c.retention_ms = -1;
    c.retention_bytes = 3000;
    l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 60; i++)
        append1(l, 1, 1, 100, 0);
    REQUIRE(plog_retention(l, 0, &del) == 0);
    CHECK(del > 0);
    CHECK(plog_size_bytes(l) >= 3000 - 1000);
    CHECK(plog_size_bytes(l) <= 3000 + 1000);
    /* a clean reopen remembers the log start offset */
    int64_t lso2 = plog_start_offset(l);
    plog_close(l);
    l = open_log(&c, true);
    REQUIRE(l);
    CHECK_EQ_INT(plog_start_offset(l), lso2);
    plog_close(l);
}

static void test_readers_during_retention(void) {
    fresh_dir("readers");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 1000;
    c.retention_bytes = 0;
    c.retention_ms = -1;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 30; i++)
        append1(l, 1, 1, 100, 0);
    plog_read_result r;
    REQUIRE(plog_read(l, 0, 1 << 20, -1, &r) == 0);
    int64_t first_len = r.r[0].len;
    int del = 0;
    REQUIRE(plog_retention(l, 0, &del) == 0);
    CHECK(del > 0);
    CHECK_EQ_INT(plog_segment_count(l), 1);
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.log", dir);
    CHECK(access(p, F_OK) != 0); /* unlinked ... */
    uint8_t h[BATCH_HEADER_SIZE];
    CHECK(pread(r.r[0].fd, h, sizeof h, r.r[0].pos) == (ssize_t)sizeof h); /* ... but still readable */
    CHECK_EQ_INT((int64_t)wire_be64(h), 0);
    CHECK(first_len > 0);
    int before = storage_open_fds(tl_storage());
    plog_read_release(&r);
    CHECK(storage_open_fds(tl_storage()) < before);
    /* DeleteRecords */
    for (int i = 0; i < 30; i++)
        append1(l, 1, 1, 100, 0);
    int64_t ns = 0;
    CHECK_EQ_INT(plog_delete_records(l, 1000, &ns), STORAGE_OFFSET_OUT_OF_RANGE);
    REQUIRE(plog_delete_records(l, 45, &ns) == 0);
    CHECK_EQ_INT(ns, 45);
    CHECK_EQ_INT(plog_start_offset(l), 45);
    CHECK_EQ_INT(plog_read(l, 44, 100, -1, &r), STORAGE_OFFSET_OUT_OF_RANGE);
    REQUIRE(plog_read(l, 45, 1, -1, &r) == 0);
    int64_t b, e;
    REQUIRE(first_batch(&r, &b, &e, NULL) == 0);
    CHECK_EQ_INT(b, 45);
    plog_read_release(&r);
    int64_t off, ts;
    REQUIRE(plog_offset_for_time(l, PLOG_TS_EARLIEST, &off, &ts) == 0);
    CHECK_EQ_INT(off, 45);
    REQUIRE(plog_offset_for_time(l, 0, &off, &ts) == 0);
    CHECK_EQ_INT(off, 45);
    plog_close(l);
}

static void test_truncate(void) {
    fresh_dir("trunc");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 1500;
    c.index_interval_bytes = 200;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 50; i++)
        append1(l, 2, 100 + i, 100, 0); /* batch i holds 2i, 2i+1 */
    CHECK_EQ_INT(plog_end_offset(l), 100);
    REQUIRE(plog_truncate(l, 200) == 0);
    CHECK_EQ_INT(plog_end_offset(l), 100);
    REQUIRE(plog_truncate(l, 80) == 0);
    CHECK_EQ_INT(plog_end_offset(l), 80);
    REQUIRE(plog_truncate(l, 61) == 0); /* mid-batch: the whole batch goes */
    CHECK_EQ_INT(plog_end_offset(l), 60);
    check_reads(l, 0, 60);
    int64_t off, ts;
    REQUIRE(plog_offset_for_time(l, PLOG_TS_MAX, &off, &ts) == 0);
    CHECK_EQ_INT(ts, 129);
    CHECK_EQ_INT(append1(l, 1, 1, 10, 0), 60);
    check_reads(l, 0, 61);
    plog_close(l);
    l = open_log(&c, true);
    REQUIRE(l);
    CHECK_EQ_INT(plog_end_offset(l), 61);
    check_reads(l, 0, 61);
    /* to zero */
    REQUIRE(plog_truncate(l, 0) == 0);
    CHECK_EQ_INT(plog_end_offset(l), 0);
    CHECK_EQ_INT(plog_segment_count(l), 1);
    CHECK_EQ_INT(append1(l, 1, 1, 10, 0), 0);
    plog_close(l);
}

static void test_fd_bound(void) {
    fresh_dir("fds");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 500;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 60; i++)
        append1(l, 1, 1, 100, 0);
    plog_close(l);
    storage_set_fd_limit(tl_storage(), 3);
    int base_fds = storage_open_fds(tl_storage());
    l = open_log(&c, true);
    REQUIRE(l);
    CHECK_EQ_INT(storage_open_fds(tl_storage()), base_fds + 1); /* only the active segment */
    check_reads(l, 0, 60);
    CHECK(storage_open_fds(tl_storage()) <= base_fds + 1 + 3);
    plog_close(l);
    storage_set_fd_limit(tl_storage(), 1024);
}

static void test_index_files_rebuilt(void) {
    fresh_dir("idx");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 3000;
    c.index_interval_bytes = 100;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 60; i++)
        append1(l, 1, 10 * i, 100, 0);
    plog_close(l);
    char p[600];
    /* delete one index, corrupt another, truncate a time index mid-entry */
    snprintf(p, sizeof p, "%s/00000000000000000000.index", dir);
    unlink(p);
    int64_t second = -1, third = -1;
    {
        l = open_log(&c, true);
        REQUIRE(l);
        REQUIRE(plog_segment_count(l) >= 3);
        plog_close(l);
        int64_t *bases = NULL;
        (void)bases;
    }
    /* find the 2nd and 3rd segment names */
    for (int64_t o = 1; o < 60 && third < 0; o++) {
        snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, o);
        if (access(p, F_OK) == 0) {
            if (second < 0)
                second = o;
            else
                third = o;
        }
    }
    REQUIRE(second > 0 && third > 0);
    snprintf(p, sizeof p, "%s/%020" PRId64 ".index", dir, second);
    int fd = open(p, O_WRONLY);
    REQUIRE(fd >= 0);
    uint8_t junk[8] = {0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff};
    REQUIRE(pwrite(fd, junk, 8, 0) == 8);
    close(fd);
    snprintf(p, sizeof p, "%s/%020" PRId64 ".timeindex", dir, third);
    REQUIRE(truncate(p, 5) == 0);
    l = open_log(&c, true);
    REQUIRE(l);
    check_reads(l, 0, 60);
    int64_t off, ts;
    for (int i = 0; i < 60; i++) {
        REQUIRE(plog_offset_for_time(l, 10 * i, &off, &ts) == 0);
        CHECK_EQ_INT(off, i);
    }
    plog_close(l);
    /* the rebuilt files are back and sane */
    snprintf(p, sizeof p, "%s/00000000000000000000.index", dir);
    struct stat st;
    CHECK(stat(p, &st) == 0 && st.st_size > 0 && st.st_size % 8 == 0);
}

/* An index whose entries look valid but point at the wrong batches (as a
 * stale file could) is detected on lookup and rebuilt. */
static void test_stale_index(void) {
    fresh_dir("stale");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 3000;
    c.index_interval_bytes = 100;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 60; i++)
        append1(l, 1, 10 * i, 100, 0);
    REQUIRE(plog_segment_count(l) >= 2);
    plog_close(l);
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.index", dir);
    int fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t e[8];
    int n = 0;
    for (off_t at = 0; pread(fd, e, 8, at) == 8; at += 8, n++) {
        wire_put_be32(e, wire_be32(e) - 1); /* each entry now names the batch before */
        REQUIRE(pwrite(fd, e, 8, at) == 8);
    }
    close(fd);
    REQUIRE(n > 3);
    l = open_log(&c, true);
    REQUIRE(l);
    check_reads(l, 0, 60);
    int64_t off, ts;
    for (int i = 0; i < 60; i++) {
        REQUIRE(plog_offset_for_time(l, 10 * i, &off, &ts) == 0);
        CHECK_EQ_INT(off, i);
    }
    plog_close(l);
}

static void test_delete_partition(void) {
    fresh_dir("del");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 500;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 20; i++)
        append1(l, 1, 1, 100, 0);
    plog_read_result r;
    REQUIRE(plog_read(l, 0, 1 << 20, -1, &r) == 0);
    CHECK_EQ_INT(plog_delete(l), 0);
    CHECK(access(dir, F_OK) != 0);
    uint8_t h[8];
    CHECK(pread(r.r[0].fd, h, 8, r.r[0].pos) == 8);
    plog_read_release(&r);
}

static void test_dirs(void) {
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/rootA", root);
    snprintf(b, sizeof b, "%s/rootB", root);
    mkdir(a, 0755);
    mkdir(b, 0755);
    char p[700];
    snprintf(p, sizeof p, "%s/t-0", a);
    mkdir(p, 0755);
    const char *roots[] = {a, b};
    CHECK_EQ_INT(plog_dir_pick(tl_storage(), roots, 2), 1);
    bool clean = true;
    REQUIRE(plog_dir_begin(tl_storage(), a, &clean) == 0);
    CHECK(!clean);
    REQUIRE(plog_dir_mark_clean(tl_storage(), a) == 0);
    REQUIRE(plog_dir_begin(tl_storage(), a, &clean) == 0);
    CHECK(clean);
    REQUIRE(plog_dir_begin(tl_storage(), a, &clean) == 0);
    CHECK(!clean);
}

/* ---- follower append ------------------------------------------------------ */

/* Builds a batch as a leader would have stored it: nrec records at base
 * offset base with partition leader epoch epoch (neither is under the CRC). */
static size_t leader_batch(uint8_t *out, size_t cap, int64_t base, int32_t epoch, int nrec, int64_t ts,
                           int vlen) {
    size_t n = tl_build_batch(out, cap, nrec, ts, vlen, (uint8_t)(base * 7 + 1));
    wire_put_be64(out + BATCH_OFF_BASE_OFFSET, (uint64_t)base);
    wire_put_be32(out + BATCH_OFF_LEADER_EPOCH, (uint32_t)epoch);
    return n;
}

typedef struct collected {
    int n;
    int64_t base[4096], last[4096];
    int32_t epoch[4096];
    uint8_t fill[4096];
    int stop_after; /* fn returns 99 after this many batches (0: never) */
} collected;

static int collect(void *ctx, const uint8_t *b, size_t size, const batch_header *h) {
    collected *c = ctx;
    if (c->stop_after > 0 && c->n == c->stop_after)
        return 99;
    if (c->n < 4096) {
        c->base[c->n] = h->base_offset;
        c->last[c->n] = h->base_offset + h->last_offset_delta;
        c->epoch[c->n] = h->partition_leader_epoch;
        c->fill[c->n] = b[size - 2]; /* the last value byte of the last record */
    }
    c->n++;
    return 0;
}

/* Scans the whole log with chunks of max_bytes into c. */
static int scan_all(plog *l, int64_t from, int64_t max_bytes, collected *c) {
    int64_t off = from;
    while (off < plog_end_offset(l)) {
        int64_t next;
        int rc = plog_scan(l, off, max_bytes, collect, c, &next);
        if (rc != 0)
            return rc;
        if (next <= off)
            return -1;
        off = next;
    }
    return 0;
}

static void test_follower_append(void) {
    fresh_dir("follower");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 3000;
    c.index_interval_bytes = 150;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    /* batches with their own offsets and epochs, several per append, across rolls */
    int64_t next = 0;
    int32_t epoch = 4;
    for (int i = 0; i < 60; i++) {
        size_t len = 0;
        int k = 1 + i % 3;
        for (int j = 0; j < k; j++) {
            int nrec = 1 + (i + j) % 4;
            len += leader_batch(buf + len, sizeof buf - len, next, epoch, nrec, 1000 + next, 40);
            next += nrec;
        }
        if (i % 20 == 19)
            epoch++;
        static uint8_t copy[1 << 16];
        memcpy(copy, buf, len);
        plog_append_info info;
        REQUIRE(plog_append_follower(l, buf, len, 0, &info) == 0);
        CHECK(memcmp(copy, buf, len) == 0); /* nothing rewritten */
        CHECK_EQ_INT(info.last_offset, next - 1);
        CHECK_EQ_INT(info.batches, k);
        CHECK_EQ_INT(info.log_append_time, -1);
    }
    CHECK_EQ_INT(plog_end_offset(l), next);
    CHECK(plog_segment_count(l) > 3);
    check_reads(l, 0, next);
    collected got = {0};
    REQUIRE(scan_all(l, 0, 1 << 20, &got) == 0);
    int64_t expect = 0;
    for (int i = 0; i < got.n; i++) {
        CHECK_EQ_INT(got.base[i], expect);
        CHECK_EQ_INT(got.fill[i], (uint8_t)(got.base[i] * 7 + 1));
        CHECK(got.epoch[i] >= 4 && got.epoch[i] <= 6);
        expect = got.last[i] + 1;
    }
    CHECK_EQ_INT(expect, next);
    CHECK_EQ_INT(got.epoch[0], 4);
    CHECK_EQ_INT(got.epoch[got.n - 1], 6);
    int64_t size0 = plog_size_bytes(l);

    /* refusals leave the log as it was */
    plog_append_info info;
    size_t n = leader_batch(buf, sizeof buf, next + 1, 6, 2, 1, 10); /* a gap */
    CHECK_EQ_INT(plog_append_follower(l, buf, n, 0, &info), STORAGE_UNEXPECTED_OFFSET);
    CHECK(strstr(info.error_msg, "log ends at") != NULL);
    n = leader_batch(buf, sizeof buf, next - 1, 6, 2, 1, 10); /* an overlap */
    CHECK_EQ_INT(plog_append_follower(l, buf, n, 0, &info), STORAGE_UNEXPECTED_OFFSET);
    size_t a = leader_batch(buf, sizeof buf, next, 6, 2, 1, 10);
    size_t b = leader_batch(buf + a, sizeof buf - a, next + 3, 6, 2, 1, 10); /* not following on */
    CHECK_EQ_INT(plog_append_follower(l, buf, a + b, 0, &info), STORAGE_CORRUPT_MESSAGE);
    CHECK_EQ_INT(info.error_batch, 1);
    b = leader_batch(buf + a, sizeof buf - a, next + 2, 6, 2, 1, 10);
    buf[a + b - 3] ^= 0x10; /* CRC */
    CHECK_EQ_INT(plog_append_follower(l, buf, a + b, 0, &info), STORAGE_CORRUPT_MESSAGE);
    CHECK_EQ_INT(info.error_batch, 1);
    buf[a + b - 3] ^= 0x10;
    CHECK_EQ_INT(plog_append_follower(l, buf, a + b - 1, 0, &info), STORAGE_CORRUPT_MESSAGE); /* truncated */
    CHECK_EQ_INT(plog_append_follower(l, buf, 0, 0, &info), STORAGE_CORRUPT_MESSAGE);
    buf[BATCH_OFF_MAGIC] = 1;
    CHECK(plog_append_follower(l, buf, a, 0, &info) != 0);
    buf[BATCH_OFF_MAGIC] = 2;
    CHECK_EQ_INT(plog_end_offset(l), next);
    CHECK_EQ_INT(plog_size_bytes(l), size0);
    /* ... and the good pair goes in */
    REQUIRE(plog_append_follower(l, buf, a + b, 0, &info) == 0);
    CHECK_EQ_INT(info.base_offset, next);
    CHECK_EQ_INT(info.last_offset, next + 3);
    next += 4;
    plog_close(l);

    /* reopened cleanly and uncleanly: the same offsets, epochs and bytes */
    for (int clean = 1; clean >= 0; clean--) {
        l = open_log(&c, clean);
        REQUIRE(l);
        CHECK_EQ_INT(plog_end_offset(l), next);
        check_reads(l, 0, next);
        collected again = {0};
        REQUIRE(scan_all(l, 0, 5000, &again) == 0);
        CHECK_EQ_INT(again.n, got.n + 2);
        for (int i = 0; i < got.n && i < again.n; i++) {
            CHECK_EQ_INT(again.base[i], got.base[i]);
            CHECK_EQ_INT(again.epoch[i], got.epoch[i]);
        }
        plog_close(l);
    }
}

/* The follower takes what its leader holds even where the produce path
 * would refuse it: producer rules, timestamp limits, max.message.bytes. */
static void test_follower_not_producer_rules(void) {
    fresh_dir("follower-rules");
    plog_config c;
    plog_config_default(&c);
    c.max_message_bytes = 500;
    c.timestamp_before_max_ms = 1000;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    const int64_t now = 1000000000;
    plog_append_info info;
    /* an old timestamp */
    size_t n = leader_batch(buf, sizeof buf, 0, 1, 2, 5, 10);
    CHECK_EQ_INT(plog_append(l, buf, n, 1, now, &info), STORAGE_INVALID_TIMESTAMP);
    n = leader_batch(buf, sizeof buf, 0, 1, 2, 5, 10);
    CHECK_EQ_INT(plog_append_follower(l, buf, n, now, &info), 0);
    /* larger than max.message.bytes */
    n = leader_batch(buf, sizeof buf, 2, 1, 1, now, 800);
    CHECK_EQ_INT(plog_append(l, buf, n, 1, now, &info), STORAGE_MESSAGE_TOO_LARGE);
    n = leader_batch(buf, sizeof buf, 2, 1, 1, now, 800);
    CHECK_EQ_INT(plog_append_follower(l, buf, n, now, &info), 0);
    /* a batch whose offset span is wider than its records (as compaction
     * leaves them): lastOffsetDelta 4, 2 records */
    n = leader_batch(buf, sizeof buf, 3, 1, 2, now, 10);
    wire_put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, 4);
    wire_put_be32(buf + BATCH_OFF_CRC, crc32c(0, buf + BATCH_OFF_ATTRIBUTES, n - BATCH_OFF_ATTRIBUTES));
    CHECK_EQ_INT(plog_append(l, buf, n, 1, now, &info), STORAGE_INVALID_RECORD);
    n = leader_batch(buf, sizeof buf, 3, 1, 2, now, 10);
    wire_put_be32(buf + BATCH_OFF_LAST_OFFSET_DELTA, 4);
    wire_put_be32(buf + BATCH_OFF_CRC, crc32c(0, buf + BATCH_OFF_ATTRIBUTES, n - BATCH_OFF_ATTRIBUTES));
    CHECK_EQ_INT(plog_append_follower(l, buf, n, now, &info), 0);
    CHECK_EQ_INT(plog_end_offset(l), 8);
    /* more than a segment in one append: the caller splits */
    c.segment_bytes = 200;
    REQUIRE(plog_set_config(l, &c) == 0);
    n = leader_batch(buf, sizeof buf, 8, 1, 1, now, 300);
    CHECK_EQ_INT(plog_append_follower(l, buf, n, now, &info), STORAGE_RECORD_LIST_TOO_LARGE);
    plog_close(l);
    l = open_log(&c, false);
    REQUIRE(l);
    CHECK_EQ_INT(plog_end_offset(l), 8);
    plog_close(l);
}

/* ---- truncation for replication ---------------------------------------------- */

static void test_truncate_replication(void) {
    fresh_dir("trunc-repl");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 1500;
    c.index_interval_bytes = 200;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 50; i++)
        append1(l, 2, 100 + i, 100, 0); /* batch i holds 2i, 2i+1, timestamp 100 + i */
    REQUIRE(plog_flush(l, 0) == 0);
    CHECK_EQ_INT(plog_recovery_point(l), 100);
    int nseg = plog_segment_count(l);
    REQUIRE(nseg >= 4);

    /* at the end and past it: nothing changes */
    REQUIRE(plog_truncate(l, 100) == 0);
    REQUIRE(plog_truncate(l, 1000) == 0);
    CHECK_EQ_INT(plog_end_offset(l), 100);
    CHECK_EQ_INT(plog_recovery_point(l), 100);
    CHECK_EQ_INT(plog_segment_count(l), nseg);
    CHECK_EQ_INT(plog_truncate(l, -1), STORAGE_OFFSET_OUT_OF_RANGE);

    /* inside: the recovery point comes down with the end; reads and the
     * time index follow */
    REQUIRE(plog_truncate(l, 77) == 0); /* mid-batch: 76..77 goes */
    CHECK_EQ_INT(plog_end_offset(l), 76);
    CHECK_EQ_INT(plog_recovery_point(l), 76);
    check_reads(l, 0, 76);
    int64_t off, ts;
    REQUIRE(plog_offset_for_time(l, PLOG_TS_MAX, &off, &ts) == 0);
    CHECK_EQ_INT(ts, 137);
    REQUIRE(plog_offset_for_time(l, 138, &off, &ts) == 0);
    CHECK_EQ_INT(off, -1);
    REQUIRE(plog_offset_for_time(l, 120, &off, &ts) == 0);
    CHECK_EQ_INT(off, 40);

    /* at a segment boundary: the sealed segment before it is active again */
    int64_t boundary = -1;
    for (int64_t o = 2; o < 76 && boundary < 0; o += 2) {
        char p[600];
        snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, o);
        if (access(p, F_OK) == 0)
            boundary = o;
    }
    REQUIRE(boundary > 0);
    int before = plog_segment_count(l);
    REQUIRE(plog_truncate(l, boundary) == 0);
    CHECK_EQ_INT(plog_end_offset(l), boundary);
    CHECK(plog_segment_count(l) < before);
    CHECK_EQ_INT(append1(l, 1, 500, 10, 0), boundary); /* appends go on in the old segment */
    check_reads(l, 0, boundary + 1);
    REQUIRE(plog_offset_for_time(l, 500, &off, &ts) == 0);
    CHECK_EQ_INT(off, boundary);
    /* the index files were rewritten: a clean reopen agrees */
    plog_close(l);
    l = open_log(&c, true);
    REQUIRE(l);
    CHECK_EQ_INT(plog_end_offset(l), boundary + 1);
    check_reads(l, 0, boundary + 1);
    for (int i = 0; 2 * i < boundary; i++) {
        REQUIRE(plog_offset_for_time(l, 100 + i, &off, &ts) == 0);
        CHECK_EQ_INT(off, 2 * i);
    }

    /* before the start: the log restarts empty at the offset */
    int64_t end = plog_end_offset(l);
    int64_t ns;
    REQUIRE(plog_delete_records(l, 10, &ns) == 0);
    REQUIRE(plog_truncate(l, 6) == 0);
    CHECK_EQ_INT(plog_start_offset(l), 6);
    CHECK_EQ_INT(plog_end_offset(l), 6);
    CHECK_EQ_INT(plog_recovery_point(l), 6);
    CHECK_EQ_INT(plog_segment_count(l), 1);
    plog_read_result r;
    CHECK_EQ_INT(plog_read(l, 5, 100, -1, &r), STORAGE_OFFSET_OUT_OF_RANGE);
    size_t n = leader_batch(buf, sizeof buf, 6, 9, 3, 1, 10);
    REQUIRE(plog_append_follower(l, buf, n, 0, NULL) == 0);
    check_reads(l, 6, 9);
    (void)end;
    plog_close(l);
    l = open_log(&c, false);
    REQUIRE(l);
    CHECK_EQ_INT(plog_start_offset(l), 6);
    CHECK_EQ_INT(plog_end_offset(l), 9);
    /* only the new segment is left on disk */
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.log", dir);
    CHECK(access(p, F_OK) != 0);

    /* fully, past the end: a follower whose leader starts later */
    REQUIRE(plog_truncate_fully(l, 5000) == 0);
    CHECK_EQ_INT(plog_start_offset(l), 5000);
    CHECK_EQ_INT(plog_end_offset(l), 5000);
    CHECK_EQ_INT(plog_recovery_point(l), 5000);
    CHECK_EQ_INT(plog_truncate_fully(l, -1), STORAGE_OFFSET_OUT_OF_RANGE);
    n = leader_batch(buf, sizeof buf, 5000, 9, 2, 1, 10);
    REQUIRE(plog_append_follower(l, buf, n, 0, NULL) == 0);
    CHECK_EQ_INT(append1(l, 1, 1, 10, 0), 5002);
    plog_close(l);
    l = open_log(&c, false);
    REQUIRE(l);
    CHECK_EQ_INT(plog_start_offset(l), 5000);
    CHECK_EQ_INT(plog_end_offset(l), 5003);
    check_reads(l, 5000, 5003);
    plog_close(l);
}

/* A roll's pending flush and a truncation below the rolled segment: the
 * recovery point never passes the end. */
static void test_truncate_pending_roll_flush(void) {
    fresh_dir("trunc-roll");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 1000;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 30; i++)
        append1(l, 1, 1, 100, 0);
    REQUIRE(plog_segment_count(l) > 3);
    CHECK_EQ_INT(plog_recovery_point(l), 0);
    REQUIRE(plog_truncate(l, 3) == 0);
    REQUIRE(plog_tick(l, 10) == 0);
    CHECK(plog_recovery_point(l) <= plog_end_offset(l));
    CHECK_EQ_INT(plog_end_offset(l), 3);
    for (int i = 0; i < 30; i++)
        append1(l, 1, 1, 100, 0);
    REQUIRE(plog_tick(l, 20) == 0);
    CHECK(plog_recovery_point(l) > 3 && plog_recovery_point(l) <= plog_end_offset(l));
    plog_close(l);
}

/* ---- plog_scan ------------------------------------------------------------------ */

static void test_scan(void) {
    fresh_dir("scan");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 2500;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    int64_t bases[200];
    int nb = 0;
    for (int i = 0; i < 120; i++) {
        size_t n = leader_batch(buf, sizeof buf, plog_end_offset(l), 2, 1 + i % 4, 1, 20 + (i * 13) % 300);
        bases[nb++] = plog_end_offset(l);
        REQUIRE(plog_append_follower(l, buf, n, 0, NULL) == 0);
    }
    int64_t end = plog_end_offset(l);
    REQUIRE(plog_segment_count(l) > 5);
    /* every chunk size hands every batch once, in order */
    int64_t sizes[] = {1, 100, 700, 2500, 1 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        collected got = {0};
        REQUIRE(scan_all(l, 0, sizes[k], &got) == 0);
        CHECK_EQ_INT(got.n, nb);
        for (int i = 0; i < got.n && i < nb; i++) {
            CHECK_EQ_INT(got.base[i], bases[i]);
            CHECK_EQ_INT(got.fill[i], (uint8_t)(bases[i] * 7 + 1));
        }
    }
    /* one byte: exactly one whole batch per call */
    collected one = {0};
    int64_t next;
    REQUIRE(plog_scan(l, 0, 1, collect, &one, &next) == 0);
    CHECK_EQ_INT(one.n, 1);
    CHECK_EQ_INT(next, bases[1]);
    /* from inside a batch: the batch holding it comes first */
    collected mid = {0};
    REQUIRE(bases[5] + 1 < bases[6]);
    REQUIRE(plog_scan(l, bases[5] + 1, 1, collect, &mid, &next) == 0);
    CHECK_EQ_INT(mid.base[0], bases[5]);
    CHECK_EQ_INT(next, bases[6]);
    /* the end: nothing, OK; past it: out of range */
    collected none = {0};
    CHECK_EQ_INT(plog_scan(l, end, 100, collect, &none, &next), 0);
    CHECK_EQ_INT(none.n, 0);
    CHECK_EQ_INT(next, end);
    CHECK_EQ_INT(plog_scan(l, end + 1, 100, collect, &none, &next), STORAGE_OFFSET_OUT_OF_RANGE);
    /* fn stops the scan: its value comes back, next is after the last batch it took */
    collected stop = {.stop_after = 3};
    CHECK_EQ_INT(plog_scan(l, 0, 1 << 20, collect, &stop, &next), 99);
    CHECK_EQ_INT(next, bases[3]);
    plog_close(l);
    /* a damaged batch on disk: the ones before it are handed, then CORRUPT_MESSAGE at it */
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.log", dir);
    int fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t h[BATCH_HEADER_SIZE];
    off_t pos = 0;
    for (int i = 0; i < 2; i++) { /* to the third batch */
        REQUIRE(pread(fd, h, sizeof h, pos) == (ssize_t)sizeof h);
        pos += (int32_t)wire_be32(h + BATCH_OFF_LENGTH) + 12;
    }
    uint8_t x;
    REQUIRE(pread(fd, &x, 1, pos + BATCH_HEADER_SIZE + 2) == 1);
    x ^= 0xff;
    REQUIRE(pwrite(fd, &x, 1, pos + BATCH_HEADER_SIZE + 2) == 1);
    close(fd);
    l = open_log(&c, true);
    REQUIRE(l);
    collected bad = {0};
    CHECK_EQ_INT(plog_scan(l, 0, 1 << 20, collect, &bad, &next), STORAGE_CORRUPT_MESSAGE);
    CHECK_EQ_INT(bad.n, 2);
    CHECK_EQ_INT(next, bases[2]);
    /* below the start */
    int64_t ns;
    REQUIRE(plog_delete_records(l, bases[10], &ns) == 0);
    CHECK_EQ_INT(plog_scan(l, bases[9], 100, collect, &none, &next), STORAGE_OFFSET_OUT_OF_RANGE);
    plog_close(l);
}

/* ---- storage contexts --------------------------------------------------------- */

/* Two contexts (two brokers in one process) share no descriptor cache. */
static void test_contexts_independent(void) {
    storage_ctx *a = storage_ctx_new(sl_vfs_posix(), 2), *b = storage_ctx_new(sl_vfs_posix(), 100);
    REQUIRE(a && b);
    CHECK(storage_vfs(a) == sl_vfs_posix());
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 500;
    char da[600], db[600];
    snprintf(da, sizeof da, "%s/ctx-a", root);
    snprintf(db, sizeof db, "%s/ctx-b", root);
    int err;
    plog *la = plog_open(a, da, &c, true, &err), *lb = plog_open(b, db, &c, true, &err);
    REQUIRE(la && lb);
    for (int i = 0; i < 30; i++) {
        size_t n = tl_build_batch(buf, sizeof buf, 1, 1, 100, 1);
        REQUIRE(plog_append(la, buf, n, 0, 0, NULL) == 0);
        n = tl_build_batch(buf, sizeof buf, 1, 1, 100, 1);
        REQUIRE(plog_append(lb, buf, n, 0, 0, NULL) == 0);
    }
    int global_before = storage_open_fds(tl_storage());
    for (int64_t o = 0; o < 30; o++) {
        plog_read_result r;
        REQUIRE(plog_read(la, o, 1, -1, &r) == 0);
        plog_read_release(&r);
        REQUIRE(plog_read(lb, o, 1, -1, &r) == 0);
        plog_read_release(&r);
    }
    CHECK(storage_open_fds(a) <= 1 + 2); /* the active segment and at most 2 idle */
    CHECK(storage_open_fds(b) > 1 + 2);  /* its own, larger bound */
    CHECK_EQ_INT(storage_open_fds(tl_storage()), global_before);
    plog_close(la);
    plog_close(lb);
    CHECK_EQ_INT(storage_open_fds(a), 0);
    CHECK_EQ_INT(storage_open_fds(b), 0);
    storage_ctx_free(a);
    storage_ctx_free(b);
}

/* Storage's error values are its own: none is a Kafka error code. */
static void test_error_values(void) {
    for (int e = STORAGE_ERR_FIRST; e <= STORAGE_ERR_LAST; e++) {
        CHECK(e >= 1000);
        CHECK(strcmp(storage_strerror(e), "unknown storage error") != 0);
    }
    CHECK(strcmp(storage_strerror(STORAGE_ERR_LAST + 1), "unknown storage error") == 0);
}

/* Threads: one appends, one runs retention and ticks, two read and check
 * what they get; run under the sanitizers this also checks the locking. */
typedef struct thr_ctx {
    plog *l;
    _Atomic int stop;
    _Atomic int errors;
    _Atomic long reads;
    _Atomic long ticks;
} thr_ctx;

static void *thr_append(void *p) {
    thr_ctx *c = p;
    static uint8_t b[4096];
    for (int i = 0; i < 4000; i++) {
        /* Halfway, let the others have run at least once (bounded: 10 s), so
         * a loaded machine cannot finish the appends before they start. */
        for (int w = 0; i == 2000 && (c->reads == 0 || c->ticks == 0) && w < 10000; w++)
            usleep(1000);
        size_t n = tl_build_batch(b, sizeof b, 2, i, 200, 9);
        if (plog_append(c->l, b, n, 0, 0, NULL) != 0)
            c->errors++;
    }
    c->stop = 1;
    return NULL;
}

static void *thr_retain(void *p) {
    thr_ctx *c = p;
    /* alternately retention alone and the whole tick, whose roll flush
     * drops the mutex while it fsyncs */
    for (int i = 0; !c->stop; i++) {
        if ((i % 2 ? plog_tick(c->l, 0) : plog_retention(c->l, 0, NULL)) != 0)
            c->errors++;
        c->ticks++;
        usleep(200);
    }
    return NULL;
}

static void *thr_read(void *p) {
    thr_ctx *c = p;
    uint64_t x = (uint64_t)(uintptr_t)p | 1;
    while (!c->stop) {
        int64_t lso = plog_start_offset(c->l), leo = plog_end_offset(c->l);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t o = lso + (int64_t)(x % (uint64_t)(leo - lso + 1));
        plog_read_result r;
        int rc = plog_read(c->l, o, 3000, -1, &r);
        if (rc == STORAGE_OFFSET_OUT_OF_RANGE)
            continue; /* retention moved the start meanwhile */
        if (rc != 0) {
            c->errors++;
            continue;
        }
        usleep(50); /* hold the ranges while retention runs */
        if (r.n > 0) {
            uint8_t h[BATCH_HEADER_SIZE];
            if (pread(r.r[0].fd, h, sizeof h, r.r[0].pos) != (ssize_t)sizeof h)
                c->errors++;
            else {
                int64_t base = (int64_t)wire_be64(h);
                if (!(base <= o && o <= base + 1))
                    c->errors++;
            }
        }
        plog_read_release(&r);
        c->reads++;
    }
    return NULL;
}

static void test_threads(void) {
    fresh_dir("threads");
    plog_config c;
    plog_config_default(&c);
    c.segment_bytes = 8192;
    c.retention_bytes = 40000;
    c.retention_ms = -1;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    REQUIRE(append1(l, 2, 0, 200, 0) == 0);
    thr_ctx ctx = {.l = l};
    pthread_t t[4];
    pthread_create(&t[0], NULL, thr_append, &ctx);
    pthread_create(&t[1], NULL, thr_retain, &ctx);
    pthread_create(&t[2], NULL, thr_read, &ctx);
    pthread_create(&t[3], NULL, thr_read, &ctx);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(ctx.errors, 0);
    CHECK(ctx.reads > 0);
    CHECK_EQ_INT(plog_end_offset(l), 8002);
    CHECK(plog_start_offset(l) > 0);
    /* the ticks flushed rolled segments, never past the end */
    CHECK(plog_recovery_point(l) > 0 && plog_recovery_point(l) <= plog_end_offset(l));
    plog_close(l);
}

int main(void) {
    root = tl_mkdtemp("storage-log");
    UNIT_RUN(test_append_read);
    UNIT_RUN(test_validation);
    UNIT_RUN(test_log_append_time);
    UNIT_RUN(test_roll_and_boundaries);
    UNIT_RUN(test_timestamps);
    UNIT_RUN(test_retention);
    UNIT_RUN(test_readers_during_retention);
    UNIT_RUN(test_truncate);
    UNIT_RUN(test_truncate_replication);
    UNIT_RUN(test_truncate_pending_roll_flush);
    UNIT_RUN(test_follower_append);
    UNIT_RUN(test_follower_not_producer_rules);
    UNIT_RUN(test_scan);
    UNIT_RUN(test_contexts_independent);
    UNIT_RUN(test_error_values);
    UNIT_RUN(test_fd_bound);
    UNIT_RUN(test_index_files_rebuilt);
    UNIT_RUN(test_stale_index);
    UNIT_RUN(test_delete_partition);
    UNIT_RUN(test_dirs);
    UNIT_RUN(test_threads);
    tl_rmrf(root);
    return UNIT_END("test_storage_log");
}
