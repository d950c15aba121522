/*
 * test_dump_log.c - unit tests of `sluice dump-log` (tools/dump_log.c) on
 * segment files written by the storage engine: a sound log and its indexes
 * report no problem; a flipped byte, a torn tail, an index entry pointing at
 * the wrong place and a truncated index entry are each reported; JSON output
 * carries the same facts.
 */
#include "storage_testlib.h"

#include <fcntl.h>

#include "storage/log.h"
#include "tools/dump_log.h"
#include "unit.h"

static const char *root;
static char dir[512];
static uint8_t buf[1 << 16];
static char *out_text;
static size_t out_len;

/* Runs dump_log_file into memory; returns the result, output in out_text. */
static dump_result run(const char *path, const dump_opts *o) {
    dump_result res;
    free(out_text);
    out_text = NULL;
    FILE *f = open_memstream(&out_text, &out_len);
    dump_log_file(path, o, f, &res);
    fclose(f);
    return res;
}

static void seg_path(char *out, size_t cap, int64_t base, const char *suffix) {
    snprintf(out, cap, "%s/%020lld%s", dir, (long long)base, suffix);
}

/* Writes 40 batches of 3 records with a small index interval so both
 * indexes get entries, then closes the log (indexes written). */
static void make_log(void) {
    snprintf(dir, sizeof dir, "%s/t-0", root);
    tl_rmrf(dir);
    plog_config c;
    plog_config_default(&c);
    c.index_interval_bytes = 128;
    int err = 0;
    plog *l = plog_open(tl_storage(), dir, &c, true, &err);
    REQUIRE(l != NULL);
    for (int i = 0; i < 40; i++) {
        size_t n = tl_build_batch_ts(buf, sizeof buf, 3, 1000 + i * 10, 1, 20, (uint8_t)('a' + i % 26));
        REQUIRE(n > 0);
        plog_append_info info;
        REQUIRE(plog_append(l, buf, n, 5, 5000, &info) == 0);
    }
    REQUIRE(plog_close(l) == 0);
}

static void flip_byte(const char *path, off_t pos) {
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t b;
    REQUIRE(pread(fd, &b, 1, pos) == 1);
    b ^= 0x5a;
    REQUIRE(pwrite(fd, &b, 1, pos) == 1);
    close(fd);
}

static void test_sound_files(void) {
    make_log();
    char p[600];
    dump_opts o = {0};
    seg_path(p, sizeof p, 0, ".log");
    dump_result r = run(p, &o);
    CHECK_EQ_INT(r.problems, 0);
    CHECK_EQ_INT(r.exit_code, 0);
    CHECK(strstr(out_text, "baseOffset: 0 lastOffset: 2 count: 3") != NULL);
    CHECK(strstr(out_text, "baseOffset: 117 lastOffset: 119 count: 3") != NULL);
    CHECK(strstr(out_text, "partitionLeaderEpoch: 5") != NULL);
    CHECK(strstr(out_text, "isvalid: true") != NULL);
    CHECK(strstr(out_text, "payload") == NULL);

    o.print_data = o.deep = true;
    r = run(p, &o);
    CHECK_EQ_INT(r.problems, 0);
    CHECK(strstr(out_text, "| offset: 4 CreateTime: 1011 keySize: -1 valueSize: 20") != NULL);
    CHECK(strstr(out_text, "payload: bbbbbbbbbbbbbbbbbbbb") != NULL);

    memset(&o, 0, sizeof o);
    seg_path(p, sizeof p, 0, ".index");
    r = run(p, &o);
    CHECK_EQ_INT(r.problems, 0);
    CHECK_EQ_INT(r.warnings, 0);
    CHECK(strstr(out_text, "offset: ") != NULL && strstr(out_text, "position: ") != NULL);

    seg_path(p, sizeof p, 0, ".timeindex");
    r = run(p, &o);
    CHECK_EQ_INT(r.problems, 0);
    CHECK(strstr(out_text, "timestamp: ") != NULL);

    o.json = true;
    seg_path(p, sizeof p, 0, ".log");
    r = run(p, &o);
    CHECK_EQ_INT(r.problems, 0);
    CHECK(out_text[0] == '{');
    CHECK(strstr(out_text, "\"baseOffset\":3,\"lastOffset\":5") != NULL);
    CHECK(strstr(out_text, "\"problemCount\":0") != NULL);
}

static void test_corrupt_log(void) {
    make_log();
    char p[600];
    seg_path(p, sizeof p, 0, ".log");
    /* A byte inside the 2nd batch's records: CRC mismatch, reading goes on. */
    flip_byte(p, 120);
    dump_opts o = {0};
    dump_result r = run(p, &o);
    CHECK_EQ_INT(r.problems, 1);
    CHECK_EQ_INT(r.exit_code, 5);
    CHECK(strstr(out_text, "PROBLEM: batch at position") != NULL);
    CHECK(strstr(out_text, "CRC mismatch") != NULL);
    CHECK(strstr(out_text, "isvalid: false") != NULL);
    CHECK(strstr(out_text, "baseOffset: 117") != NULL);

    /* A torn tail: 30 extra bytes. */
    flip_byte(p, 120);
    int fd = open(p, O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    memset(buf, 0x11, 30);
    REQUIRE(write(fd, buf, 30) == 30);
    close(fd);
    r = run(p, &o);
    CHECK_EQ_INT(r.problems, 1);
    CHECK(strstr(out_text, "torn tail") != NULL);

    o.json = true;
    r = run(p, &o);
    CHECK(strstr(out_text, "\"problemCount\":1") != NULL);
    CHECK(strstr(out_text, "torn tail") != NULL);
}

static void test_corrupt_index(void) {
    make_log();
    char p[600];
    seg_path(p, sizeof p, 0, ".index");
    /* Shift the first entry's position by one byte: no batch starts there. */
    flip_byte(p, 7);
    dump_opts o = {.verify_only = true};
    dump_result r = run(p, &o);
    CHECK(r.problems >= 1);
    CHECK_EQ_INT(r.exit_code, 5);
    CHECK(strstr(out_text, "no batch starts") != NULL || strstr(out_text, "does not increase") != NULL);
    CHECK(strstr(out_text, "position: ") == NULL); /* verify-only prints no entries */

    /* A time index cut mid-entry. */
    seg_path(p, sizeof p, 0, ".timeindex");
    struct stat st;
    REQUIRE(stat(p, &st) == 0 && st.st_size >= 12);
    REQUIRE(truncate(p, st.st_size - 5) == 0);
    memset(&o, 0, sizeof o);
    r = run(p, &o);
    CHECK_EQ_INT(r.problems, 1);
    CHECK(strstr(out_text, "trailing bytes") != NULL);
}

static void test_missing_and_foreign(void) {
    dump_opts o = {0};
    dump_result r = run("/nonexistent/00000000000000000000.log", &o);
    CHECK_EQ_INT(r.exit_code, 4);
    char p[600];
    snprintf(p, sizeof p, "%s/notes.txt", root);
    FILE *f = fopen(p, "w");
    REQUIRE(f != NULL);
    fputs("hello\n", f);
    fclose(f);
    r = run(p, &o);
    CHECK_EQ_INT(r.exit_code, 2);
}

/* Random garbage never crashes the reader and is always reported. */
static void test_garbage(void) {
    tl_seed("dump_log");
    char p[600];
    snprintf(p, sizeof p, "%s/00000000000000000000.log", root);
    for (int round = 0; round < 50; round++) {
        size_t n = tl_below(4096) + 1;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)tl_rand();
        FILE *f = fopen(p, "w");
        REQUIRE(f != NULL);
        fwrite(buf, 1, n, f);
        fclose(f);
        dump_opts o = {.print_data = true, .deep = true};
        dump_result r = run(p, &o);
        CHECK(r.problems >= 1);
    }
}

int main(void) {
    root = tl_mkdtemp("dumplog");
    UNIT_RUN(test_sound_files);
    UNIT_RUN(test_corrupt_log);
    UNIT_RUN(test_corrupt_index);
    UNIT_RUN(test_missing_and_foreign);
    UNIT_RUN(test_garbage);
    free(out_text);
    tl_rmrf(root);
    return UNIT_END("test_dump_log");
}
