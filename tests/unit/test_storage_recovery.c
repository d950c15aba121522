/*
 * test_storage_recovery.c - crash and corruption tests of the partition log:
 * a child appending (and flushing) in a loop is SIGKILLed at random points;
 * the last batch's tail is cut at every byte position; bits are flipped in
 * it; index files are deleted or damaged before an unclean start; and a
 * 1 MiB tmpfs fills up under an appender (skipped where mounting is not
 * allowed); a roll's background flush moves the recovery point so that a
 * corrupt byte in an older segment is never read by an unclean start; and a
 * hole between segments (a sealed segment that lost its last batches whole,
 * a leftover segment past a truncation) is cut off. Seeds
 * are printed and replayable with SLUICE_SEED.
 */
#include "storage_testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>

#include "storage/log.h"
#include "unit.h"

static const char *root;
static char dir[512];
static uint8_t buf[1 << 20];

static void fresh_dir(const char *name) {
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    tl_rmrf(dir);
}

static plog *open_log(const plog_config *c, bool clean) {
    int err = -1;
    return plog_open(tl_storage(), dir, c, clean, &err);
}

/* The value bytes of the batch at base offset o: a function of o, so a
 * recovered log can be checked for content, not just structure. */
static uint8_t fill_for(int64_t o) { return (uint8_t)(o * 31 + 7); }

static int append_numbered(plog *l, int nrec, int vlen) {
    int64_t next = plog_end_offset(l);
    size_t n = tl_build_batch(buf, sizeof buf, nrec, 1000 + next, vlen, fill_for(next));
    return plog_append(l, buf, n, 1, 0, NULL);
}

/* Reads the whole log and checks: contiguous offsets from the start, every
 * CRC good, every value byte as written. Returns the number of batches or -1. */
static int64_t verify_log(plog *l) {
    int64_t off = plog_start_offset(l), end = plog_end_offset(l), batches = 0;
    static uint8_t data[4 << 20];
    while (off < end) {
        plog_read_result r;
        if (plog_read(l, off, 1 << 20, -1, &r) != 0 || r.n == 0)
            return -1;
        int64_t total = 0;
        for (int i = 0; i < r.n; i++) {
            if (pread(r.r[i].fd, data + total, (size_t)r.r[i].len, r.r[i].pos) != r.r[i].len) {
                plog_read_release(&r);
                return -1;
            }
            total += r.r[i].len;
        }
        plog_read_release(&r);
        batch_cursor cur;
        batch_cursor_init(&cur, data, (size_t)total);
        const uint8_t *b;
        size_t sz;
        batch_header h;
        int got = 0;
        while (batch_cursor_next(&cur, &b, &sz, &h) == BATCH_OK) {
            if (h.base_offset != off || !batch_crc_ok(b, sz)) {
                fprintf(stderr, "verify: batch at %" PRId64 " has base %" PRId64 " crc %d\n", off,
                        h.base_offset, batch_crc_ok(b, sz));
                return -1;
            }
            /* the last value byte before the trailing header count */
            if (b[sz - 2] != fill_for(off)) {
                fprintf(stderr, "verify: content of batch %" PRId64 " wrong\n", off);
                return -1;
            }
            off = h.base_offset + h.last_offset_delta + 1;
            batches++;
            got++;
        }
        if (got == 0)
            return -1;
    }
    return off == end ? batches : -1;
}

static void config_small(plog_config *c) {
    plog_config_default(c);
    c->segment_bytes = 16 << 10;
    c->index_interval_bytes = 512;
}

/* ---- SIGKILL during appends ---- */

static void child_loop(int wfd, const plog_config *c, uint64_t seed) {
    tl_rng_state = seed;
    plog *l = open_log(c, false);
    if (l == NULL)
        _exit(3);
    for (int i = 0; i < 200000; i++) {
        if (append_numbered(l, 1 + (int)tl_below(4), 10 + (int)tl_below(300)) != 0)
            _exit(4);
        if (tl_below(8) == 0) {
            if (plog_flush(l, 0) != 0)
                _exit(5);
            int64_t e = plog_end_offset(l);
            if (write(wfd, &e, sizeof e) != (ssize_t)sizeof e)
                _exit(6);
        }
    }
    _exit(0);
}

static void test_sigkill(void) {
    uint64_t seed = tl_seed("test_sigkill");
    fresh_dir("kill");
    plog_config c;
    config_small(&c);
    int64_t prev_end = 0;
    for (int iter = 0; iter < 20; iter++) {
        int p[2];
        REQUIRE(pipe(p) == 0);
        uint64_t child_seed = tl_rand();
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_loop(p[1], &c, child_seed);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(2 + tl_below(40)) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
        int64_t flushed = prev_end, v;
        while (read(p[0], &v, sizeof v) == (ssize_t)sizeof v)
            flushed = v;
        close(p[0]);
        plog *l = open_log(&c, false);
        REQUIRE(l);
        int64_t end = plog_end_offset(l);
        if (end < flushed)
            fprintf(stderr, "iter %d (seed %llu): end %" PRId64 " < flushed %" PRId64 "\n", iter,
                    (unsigned long long)seed, end, flushed);
        CHECK(end >= flushed);
        CHECK(end >= prev_end);
        CHECK(verify_log(l) >= 0);
        prev_end = end;
        plog_close(l);
    }
    printf("test_sigkill: %" PRId64 " offsets survived 20 kills\n", prev_end);
}

/* ---- torn tails and flipped bits ---- */

static int64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static uint8_t *slurp(const char *p, int64_t *n) {
    *n = file_size(p);
    uint8_t *b = malloc((size_t)*n + 1);
    int fd = open(p, O_RDONLY);
    if (pread(fd, b, (size_t)*n, 0) != *n)
        *n = -1;
    close(fd);
    return b;
}

static void spit(const char *p, const uint8_t *b, int64_t n) {
    int fd = open(p, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    if (write(fd, b, (size_t)n) != n)
        abort();
    close(fd);
}

static void test_tail_cuts_and_flips(void) {
    fresh_dir("tail");
    plog_config c;
    config_small(&c);
    c.segment_bytes = 1 << 20;
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 30; i++)
        REQUIRE(append_numbered(l, 3, 40) == 0);
    int64_t before_last = plog_end_offset(l);
    REQUIRE(append_numbered(l, 3, 40) == 0);
    int64_t end = plog_end_offset(l);
    int64_t last_size = plog_size_bytes(l);
    plog_close(l);
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.log", dir);
    int64_t n;
    uint8_t *orig = slurp(p, &n);
    REQUIRE(n == last_size);
    int64_t last_pos = -1;
    {
        int64_t pos = 0;
        while (pos < n) {
            last_pos = pos;
            pos += (int32_t)wire_be32(orig + pos + 8) + 12;
        }
    }
    REQUIRE(last_pos > 0);
    /* every cut inside the last batch: it disappears, the rest stays */
    for (int clean = 0; clean < 2; clean++) {
        for (int64_t cut = last_pos; cut <= n; cut++) {
            spit(p, orig, cut);
            l = open_log(&c, clean);
            REQUIRE(l);
            int64_t want = cut == n ? end : before_last;
            if (plog_end_offset(l) != want)
                fprintf(stderr, "cut at %" PRId64 " (clean %d): end %" PRId64 "\n", cut, clean,
                        plog_end_offset(l));
            CHECK_EQ_INT(plog_end_offset(l), want);
            CHECK(verify_log(l) >= 0);
            /* the log accepts appends right after the cut point */
            REQUIRE(append_numbered(l, 1, 5) == 0);
            CHECK(verify_log(l) >= 0);
            plog_close(l);
        }
    }
    /* flipped bits in the last batch: three bits of every header byte
     * (except the partitionLeaderEpoch, which no checksum covers) and one bit
     * in every eleventh byte of the records (each unclean open fsyncs, so the
     * count is kept bounded) */
    int flips = 0;
    for (int64_t at = last_pos; at < n; at++) {
        int64_t rel = at - last_pos;
        if (rel >= BATCH_OFF_LEADER_EPOCH && rel < BATCH_OFF_MAGIC)
            continue;
        if (rel >= BATCH_HEADER_SIZE && rel % 11 != 0)
            continue;
        int bit0 = (int)(rel % 8), step = rel < BATCH_HEADER_SIZE ? 3 : 8;
        if (rel < BATCH_HEADER_SIZE)
            bit0 = (int)(rel % 3);
        for (int bit = bit0; bit < 8; bit += step) {
            uint8_t *m = malloc((size_t)n);
            memcpy(m, orig, (size_t)n);
            m[at] ^= (uint8_t)(1u << bit);
            spit(p, m, n);
            free(m);
            l = open_log(&c, false);
            REQUIRE(l);
            CHECK_EQ_INT(plog_end_offset(l), before_last);
            CHECK(verify_log(l) >= 0);
            plog_close(l);
            flips++;
        }
    }
    printf("test_tail_cuts_and_flips: %" PRId64 " cuts x2, %d flips\n", n - last_pos + 1, flips);
    free(orig);
}

static void test_unclean_index_damage(void) {
    fresh_dir("idxdamage");
    plog_config c;
    config_small(&c);
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 300; i++)
        REQUIRE(append_numbered(l, 2, 100) == 0);
    int64_t end = plog_end_offset(l);
    int nseg = plog_segment_count(l);
    REQUIRE(nseg > 3);
    plog_close(l);
    /* damage every index file in a different way */
    int k = 0;
    for (int64_t o = 0; o < end; o++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%020" PRId64 ".index", dir, o);
        if (access(p, F_OK) != 0)
            continue;
        char t[600];
        snprintf(t, sizeof t, "%s/%020" PRId64 ".timeindex", dir, o);
        switch (k++ % 4) {
        case 0:
            unlink(p);
            unlink(t);
            break;
        case 1:
            truncate(p, 3);
            break;
        case 2: {
            uint8_t junk[64];
            memset(junk, 0xA5, sizeof junk);
            spit(p, junk, sizeof junk);
            spit(t, junk, 60);
            break;
        }
        case 3:
            spit(p, (const uint8_t *)"", 0); /* empty: valid but useless */
            break;
        }
    }
    for (int clean = 1; clean >= 0; clean--) {
        l = open_log(&c, clean);
        REQUIRE(l);
        CHECK_EQ_INT(plog_end_offset(l), end);
        CHECK(verify_log(l) > 0);
        for (int64_t o = 0; o < end; o += 7) {
            plog_read_result r;
            REQUIRE(plog_read(l, o, 1, -1, &r) == 0);
            uint8_t h[12];
            REQUIRE(pread(r.r[0].fd, h, 12, r.r[0].pos) == 12);
            CHECK_EQ_INT((int64_t)wire_be64(h), o - (o % 2));
            plog_read_release(&r);
        }
        int64_t off, ts;
        REQUIRE(plog_offset_for_time(l, 1000 + 100, &off, &ts) == 0);
        CHECK_EQ_INT(off, 100);
        plog_close(l);
    }
}

/* A crash between a roll and the next flush can leave segment files whose
 * contents belong after a corrupt point: they must go. */
static void test_corrupt_middle_segment(void) {
    fresh_dir("midcorrupt");
    plog_config c;
    config_small(&c);
    plog *l = open_log(&c, true);
    REQUIRE(l);
    REQUIRE(append_numbered(l, 1, 10) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    for (int i = 0; i < 300; i++)
        REQUIRE(append_numbered(l, 2, 100) == 0);
    REQUIRE(plog_segment_count(l) > 3);
    plog_close(l);
    /* rewind the checkpoint so the unclean start scans everything */
    char p[600];
    snprintf(p, sizeof p, "%s/log.checkpoint", dir);
    spit(p, (const uint8_t *)"sluice-log-checkpoint 1\n1 0\n", 28);
    /* corrupt a byte in the middle of the second segment */
    int64_t second = -1;
    for (int64_t o = 1; o < 1000 && second < 0; o++) {
        snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, o);
        if (access(p, F_OK) == 0)
            second = o;
    }
    REQUIRE(second > 0);
    int fd = open(p, O_RDWR);
    uint8_t x;
    REQUIRE(pread(fd, &x, 1, 5000) == 1);
    x ^= 0x10;
    REQUIRE(pwrite(fd, &x, 1, 5000) == 1);
    close(fd);
    l = open_log(&c, false);
    REQUIRE(l);
    CHECK(plog_end_offset(l) > second);
    CHECK(plog_end_offset(l) < 601);
    CHECK_EQ_INT(plog_segment_count(l), 2);
    CHECK(verify_log(l) > 0);
    REQUIRE(append_numbered(l, 1, 10) == 0);
    CHECK(verify_log(l) > 0);
    plog_close(l);
}

/* Offsets are contiguous across segments: a sealed segment that lost its
 * last batches whole (a crash before the roll's flush keeping a prefix that
 * ends on a batch boundary), or a leftover segment file past the end (a
 * truncation whose unlink did not happen), leaves a hole before the next
 * segment. An unclean start drops what follows the hole instead of serving
 * a log with offsets missing in the middle. */
static void test_hole_between_segments(void) {
    for (int variant = 0; variant < 2; variant++) {
        fresh_dir(variant ? "hole-leftover" : "hole-lost-tail");
        plog_config c;
        config_small(&c);
        plog *l = open_log(&c, true);
        REQUIRE(l);
        for (int i = 0; i < 300; i++)
            REQUIRE(append_numbered(l, 2, 100) == 0);
        REQUIRE(plog_segment_count(l) >= 3);
        plog_close(l);
        /* the second and third segments */
        char p[600], q[600];
        int64_t second = -1, third = -1;
        for (int64_t o = 1; o < 1000 && third < 0; o++) {
            snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, o);
            if (access(p, F_OK) == 0) {
                if (second < 0)
                    second = o;
                else
                    third = o;
            }
        }
        REQUIRE(second > 0 && third > second + 4);
        int64_t end_expected;
        if (variant == 0) {
            /* the second segment loses its last two batches, exactly */
            snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, second);
            int fd = open(p, O_RDWR);
            REQUIRE(fd >= 0);
            off_t pos = 0, keep = 0;
            uint8_t h[BATCH_HEADER_SIZE];
            int64_t base = second, kept_end = second;
            off_t size = lseek(fd, 0, SEEK_END);
            while (pos < size && pread(fd, h, sizeof h, pos) == (ssize_t)sizeof h) {
                base = (int64_t)wire_be64(h);
                off_t len = (int32_t)wire_be32(h + BATCH_OFF_LENGTH) + 12;
                if (base + 4 >= third)
                    break; /* keep the batches before the last two */
                pos += len;
                keep = pos;
                kept_end = base + (int32_t)wire_be32(h + BATCH_OFF_LAST_OFFSET_DELTA) + 1;
            }
            REQUIRE(ftruncate(fd, keep) == 0);
            close(fd);
            end_expected = kept_end;
        } else {
            /* the third segment's files are a leftover past a truncation:
             * cut the second segment's log at a batch boundary too and
             * move the third one beyond a gap */
            snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, third);
            snprintf(q, sizeof q, "%s/%020" PRId64 ".log", dir, third + 10);
            REQUIRE(rename(p, q) == 0);
            snprintf(p, sizeof p, "%s/%020" PRId64 ".index", dir, third);
            unlink(p);
            snprintf(p, sizeof p, "%s/%020" PRId64 ".timeindex", dir, third);
            unlink(p);
            end_expected = third;
        }
        snprintf(p, sizeof p, "%s/log.checkpoint", dir);
        spit(p, (const uint8_t *)"sluice-log-checkpoint 1\n0 0\n", 28);
        l = open_log(&c, false);
        REQUIRE(l);
        CHECK_EQ_INT(plog_end_offset(l), end_expected);
        CHECK(verify_log(l) > 0); /* contiguous from the start to the end */
        for (int64_t o = plog_start_offset(l); o < plog_end_offset(l); o++) {
            plog_read_result r;
            REQUIRE(plog_read(l, o, 1, -1, &r) == 0);
            uint8_t h[BATCH_HEADER_SIZE];
            REQUIRE(r.n > 0 && pread(r.r[0].fd, h, sizeof h, r.r[0].pos) == (ssize_t)sizeof h);
            int64_t base = (int64_t)wire_be64(h),
                    last = base + (int32_t)wire_be32(h + BATCH_OFF_LAST_OFFSET_DELTA);
            CHECK(base <= o && o <= last);
            plog_read_release(&r);
        }
        REQUIRE(append_numbered(l, 1, 10) == 0);
        CHECK(verify_log(l) > 0);
        plog_close(l);
    }
}

/* ---- roll flush: the recovery point follows rolls ---- */

/* Segments sealed by rolls are fsynced by plog_tick and the recovery point
 * moves past them, so an unclean start verifies only the segments written
 * after the last tick, and a corrupt byte in an older segment (already
 * flushed; Kafka does not rescan those either) cuts nothing. */
static void test_roll_flush_checkpoint(void) {
    fresh_dir("rollflush");
    plog_config c;
    config_small(&c);
    plog *l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 300; i++)
        REQUIRE(append_numbered(l, 2, 100) == 0);
    int nseg = plog_segment_count(l);
    REQUIRE(nseg > 3);
    /* appends never flush: the rolls only asked for it */
    CHECK_EQ_INT(plog_recovery_point(l), 0);
    REQUIRE(plog_tick(l, 1000) == 0);
    int64_t rp = plog_recovery_point(l);
    int64_t end = plog_end_offset(l);
    CHECK(rp > 0 && rp < end);
    /* the point is the active segment's base, and it is in the checkpoint */
    char p[600], want[96];
    snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, rp);
    CHECK(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/log.checkpoint", dir);
    int64_t n;
    uint8_t *ck = slurp(p, &n);
    snprintf(want, sizeof want, "sluice-log-checkpoint 1\n%" PRId64 " 0\n", rp);
    CHECK(n == (int64_t)strlen(want) && memcmp(ck, want, (size_t)n) == 0);
    /* a second tick with nothing rolled changes nothing */
    REQUIRE(plog_tick(l, 2000) == 0);
    CHECK_EQ_INT(plog_recovery_point(l), rp);
    plog_close(l);
    /* The crash: the checkpoint as it was at the last tick (close moved it to
     * the end), then a flipped byte in the first, long flushed, segment. */
    spit(p, ck, n);
    free(ck);
    snprintf(p, sizeof p, "%s/%020d.log", dir, 0);
    int fd = open(p, O_RDWR);
    uint8_t x;
    REQUIRE(pread(fd, &x, 1, 3000) == 1);
    x ^= 0x10;
    REQUIRE(pwrite(fd, &x, 1, 3000) == 1);
    close(fd);
    l = open_log(&c, false);
    REQUIRE(l);
    int rseg;
    int64_t rbytes;
    plog_recovery_stats(l, &rseg, &rbytes);
    CHECK_EQ_INT(rseg, 1); /* only the active segment was read */
    CHECK(rbytes > 0 && rbytes <= 16 << 10);
    CHECK_EQ_INT(plog_end_offset(l), end);
    CHECK_EQ_INT(plog_segment_count(l), nseg);
    CHECK_EQ_INT(plog_recovery_point(l), rp);
    /* everything after the damaged segment reads back intact */
    plog_read_result r;
    REQUIRE(plog_read(l, rp, 1 << 20, -1, &r) == 0);
    CHECK(r.n == 1 && r.bytes > 0);
    plog_read_release(&r);
    REQUIRE(append_numbered(l, 1, 10) == 0);
    CHECK_EQ_INT(plog_end_offset(l), end + 1);
    plog_close(l);

    /* A truncation while a roll's flush is pending: the point never passes
     * the log end, and the next flush still covers everything. */
    fresh_dir("rollflush-trunc");
    l = open_log(&c, true);
    REQUIRE(l);
    for (int i = 0; i < 200; i++)
        REQUIRE(append_numbered(l, 2, 100) == 0);
    REQUIRE(plog_segment_count(l) > 2);
    REQUIRE(plog_truncate(l, 10) == 0);
    REQUIRE(plog_tick(l, 1000) == 0);
    CHECK(plog_recovery_point(l) <= plog_end_offset(l));
    CHECK_EQ_INT(plog_end_offset(l), 10);
    plog_close(l);
}

/* ---- full disk ---- */

static void test_full_disk(void) {
    char mnt[300];
    snprintf(mnt, sizeof mnt, "%s/tmpfs", root);
    mkdir(mnt, 0755);
    if (mount("sluice-test", mnt, "tmpfs", 0, "size=1m") != 0) {
        printf("test_full_disk: SKIPPED (cannot mount a 1 MiB tmpfs here: %s)\n", strerror(errno));
        rmdir(mnt);
        return;
    }
    snprintf(dir, sizeof dir, "%s/p0", mnt);
    char big[400];
    snprintf(big, sizeof big, "%s/ballast", mnt);
    static uint8_t ballast[64 << 10];
    spit(big, ballast, sizeof ballast);
    plog_config c;
    config_small(&c);
    c.segment_bytes = 256 << 10;
    plog *l = open_log(&c, false);
    REQUIRE(l);
    int64_t acked = 0;
    int rc = 0;
    for (int i = 0; i < 10000; i++) {
        rc = append_numbered(l, 2, 500);
        if (rc != 0)
            break;
        acked = plog_end_offset(l);
    }
    CHECK_EQ_INT(rc, STORAGE_KAFKA_STORAGE_ERROR);
    CHECK(plog_is_offline(l));
    CHECK(acked > 100);
    CHECK_EQ_INT(append_numbered(l, 1, 1), STORAGE_KAFKA_STORAGE_ERROR);
    plog_close(l);
    /* free some space (as an operator would) and reopen: nothing lost */
    unlink(big);
    l = open_log(&c, false);
    REQUIRE(l);
    CHECK_EQ_INT(plog_end_offset(l), acked);
    CHECK(verify_log(l) > 0);
    plog_close(l);
    tl_rmrf(dir);
    CHECK(umount(mnt) == 0);
    rmdir(mnt);
    printf("test_full_disk: %" PRId64 " offsets acknowledged before ENOSPC, all recovered\n", acked);
}

int main(void) {
    root = tl_mkdtemp("storage-recovery");
    UNIT_RUN(test_tail_cuts_and_flips);
    UNIT_RUN(test_unclean_index_damage);
    UNIT_RUN(test_corrupt_middle_segment);
    UNIT_RUN(test_hole_between_segments);
    UNIT_RUN(test_roll_flush_checkpoint);
    UNIT_RUN(test_sigkill);
    UNIT_RUN(test_full_disk);
    tl_rmrf(root);
    return UNIT_END("test_storage_recovery");
}
