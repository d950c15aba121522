/*
 * test_cleaner.c - the log cleaner (storage/cleaner.h) against a model of
 * "the latest value of every key".
 *
 * Every produced record is kept in the model (offset, key, value id,
 * timestamp, header). After cleaning, the log must hold
 *   - only records the model has, at their original offsets with their
 *     original key, value, timestamp and header (nothing made up, nothing
 *     moved);
 *   - the latest record of every key (a tombstone while its delete horizon
 *     has not passed);
 *   - once passes have run to the end, at most one record per key below the
 *     cleanable end.
 * The random test mixes keys, tombstones, batch sizes, codecs and headers
 * and a dedupe buffer too small for all the keys (several passes); the seed
 * is printed and SLUICE_SEED=<n> replays it. The crash test stops all
 * writes of a clean at every mutating file operation in turn, reopens the
 * log as after a kill and checks the same properties.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/env.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "storage/cleaner.h"
#include "storage/log.h"
#include "storage_testlib.h"
#include "unit.h"

#define MODEL_MAX 200000
#define KEY_NONE  (-1)

typedef struct mrec {
    int64_t offset;
    int key;   /* KEY_NONE: no key */
    int value; /* value id; -1: tombstone */
    int64_t ts;
    int hdr; /* the header's number, -1: no header */
} mrec;

static mrec model[MODEL_MAX];
static int nmodel;
static int next_value;
static plog_config cfg;
static char dir[512];

/* ---------------- producing ---------------- */

static int append_batch(plog *l, int n, const int *keys, const bool *tomb, int codec, int64_t now) {
    arena a;
    arena_init(&a, 64 << 20);
    batch_build_record recs[256];
    char kb[256][16], vb[256][24], hb[256][16];
    batch_build_header hs[256];
    int64_t base = plog_end_offset(l);
    for (int i = 0; i < n; i++) {
        int v = next_value++;
        int klen = snprintf(kb[i], sizeof kb[i], "key-%d", keys[i]);
        int vlen = snprintf(vb[i], sizeof vb[i], "value-%d", v);
        recs[i] = (batch_build_record){0};
        recs[i].key = keys[i] == KEY_NONE ? (kbytes){NULL, -1} : (kbytes){(const uint8_t *)kb[i], klen};
        recs[i].value = tomb[i] ? (kbytes){NULL, -1} : (kbytes){(const uint8_t *)vb[i], vlen};
        recs[i].timestamp = 1000000 + v;
        bool header = v % 3 == 0;
        if (header) {
            int hl = snprintf(hb[i], sizeof hb[i], "%d", v);
            hs[i] = (batch_build_header){{"h", 1}, {(const uint8_t *)hb[i], hl}};
            recs[i].headers = &hs[i];
            recs[i].header_count = 1;
        }
        if (nmodel < MODEL_MAX)
            model[nmodel++] = (mrec){base + i, keys[i], tomb[i] ? -1 : v, 1000000 + v, header ? v : -1};
    }
    batch_build_opts o = batch_build_defaults();
    o.codec = codec;
    uint8_t *out;
    size_t len;
    int rc = batch_build(&o, recs, n, &a, &out, &len);
    if (rc == BATCH_OK)
        rc = plog_append(l, out, len, 5, now, NULL);
    arena_reset(&a);
    return rc;
}

/* ---------------- reading back ---------------- */

/* The number after prefix in b (not NUL-terminated); -2 if none. */
static int number_after(kbytes b, const char *prefix) {
    char t[32];
    if (b.len < 0 || b.len >= (int32_t)sizeof t)
        return -2;
    memcpy(t, b.ptr, (size_t)b.len);
    t[b.len] = 0;
    size_t pl = strlen(prefix);
    if (strncmp(t, prefix, pl) != 0 || t[pl] < '0' || t[pl] > '9')
        return -2;
    return atoi(t + pl);
}

typedef struct got {
    mrec *r;
    int n, cap;
    bool bad;
    int64_t last_offset;
} got;

static int collect(void *ctx, const uint8_t *b, size_t size, const batch_header *h) {
    got *g = ctx;
    arena a;
    arena_init(&a, 64 << 20);
    batch_iter it;
    batch_record rec;
    if (batch_iter_init(&it, b, size, &a) != BATCH_OK) {
        g->bad = true;
        return 0;
    }
    if ((h->attributes & BATCH_ATTR_DELETE_HORIZON) == 0 && h->record_count > 0 &&
        h->last_offset_delta < h->record_count - 1)
        g->bad = true;
    while (batch_iter_next(&it, &rec)) {
        mrec m = {rec.offset, KEY_NONE, -1, rec.timestamp, -1};
        if (rec.key.len >= 0)
            m.key = number_after(rec.key, "key-");
        if (rec.value.len >= 0)
            m.value = number_after(rec.value, "value-");
        if (rec.header_count == 1) {
            wire_reader hr;
            kstr hk;
            kbytes hv;
            batch_record_headers(&rec, &hr);
            if (batch_record_next_header(&rec, &hr, &hk, &hv) && hk.len == 1 && hk.ptr[0] == 'h')
                m.hdr = number_after(hv, "");
        } else if (rec.header_count != 0) {
            g->bad = true;
        }
        if (rec.offset <= g->last_offset)
            g->bad = true;
        g->last_offset = rec.offset;
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 1024;
            g->r = realloc(g->r, (size_t)g->cap * sizeof *g->r);
        }
        g->r[g->n++] = m;
    }
    if (it.err != BATCH_OK)
        g->bad = true;
    arena_reset(&a);
    return 0;
}

static got read_all(plog *l) {
    got g = {NULL, 0, 0, false, -1};
    int64_t off = plog_start_offset(l), end = plog_end_offset(l);
    while (off < end) {
        int64_t next;
        int rc = plog_scan(l, off, 1 << 20, collect, &g, &next);
        if (rc == 0 && next == off)
            break; /* a gap at the end: cleaned away, nothing more to read */
        if (rc != 0 || next <= off) {
            fprintf(stderr, "scan from %" PRId64 ": rc %d next %" PRId64 "\n", off, rc, next);
            g.bad = true;
            break;
        }
        off = next;
    }
    return g;
}

static int model_at(int64_t offset) {
    int lo = 0, hi = nmodel - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (model[mid].offset == offset)
            return mid;
        if (model[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* The properties; dedup_below: offsets below it must hold each key once
 * (-1: not checked). tombstones_gone: no tombstone below dedup_below. */
static void check_log_x(plog *l, int64_t dedup_below, bool tombstones_gone, bool tombstones_may_go) {
    got g = read_all(l);
    CHECK(!g.bad);
    CHECK_EQ_INT(plog_end_offset(l), nmodel ? model[nmodel - 1].offset + 1 : 0);
    /* 1. A subset of the model, unchanged. */
    int bad = 0;
    for (int i = 0; i < g.n; i++) {
        int k = model_at(g.r[i].offset);
        if (k < 0 || model[k].key != g.r[i].key || model[k].value != g.r[i].value ||
            model[k].ts != g.r[i].ts || model[k].hdr != g.r[i].hdr) {
            if (bad++ < 5)
                fprintf(stderr, "record at %" PRId64 " differs from the model\n", g.r[i].offset);
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* 2. The latest record of every key is there. */
    int nkeys = 0;
    for (int i = 0; i < nmodel; i++)
        if (model[i].key + 1 > nkeys)
            nkeys = model[i].key + 1;
    int64_t *latest = calloc((size_t)nkeys + 1, sizeof *latest);
    for (int k = 0; k < nkeys; k++)
        latest[k] = -1;
    for (int i = 0; i < nmodel; i++)
        if (model[i].key >= 0)
            latest[model[i].key] = i;
    int missing = 0, gi = 0;
    for (int i = 0; i < nmodel; i++) {
        if (model[i].key < 0 || latest[model[i].key] != i)
            continue;
        while (gi < g.n && g.r[gi].offset < model[i].offset)
            gi++;
        bool there = gi < g.n && g.r[gi].offset == model[i].offset;
        bool may_be_gone = (tombstones_gone || tombstones_may_go) && model[i].value < 0 &&
                           (dedup_below < 0 || model[i].offset < dedup_below);
        if (!there && !may_be_gone && missing++ < 5)
            fprintf(stderr, "latest record of key %d (offset %" PRId64 ", value %d) is missing\n",
                    model[i].key, model[i].offset, model[i].value);
    }
    CHECK_EQ_INT(missing, 0);
    /* 3. Deduplicated below dedup_below. */
    if (dedup_below >= 0) {
        int *seen = calloc((size_t)nkeys + 1, sizeof *seen);
        int dups = 0, tombs = 0, keyless = 0;
        for (int i = 0; i < g.n && g.r[i].offset < dedup_below; i++) {
            if (g.r[i].key < 0) {
                keyless++;
                continue;
            }
            if (seen[g.r[i].key]++ > 0)
                dups++;
            if (g.r[i].value < 0)
                tombs++;
        }
        CHECK_EQ_INT(dups, 0);
        CHECK_EQ_INT(keyless, 0);
        if (tombstones_gone)
            CHECK_EQ_INT(tombs, 0);
        free(seen);
    }
    free(latest);
    free(g.r);
}

static void check_log(plog *l, int64_t dedup_below, bool tombstones_gone) {
    check_log_x(l, dedup_below, tombstones_gone, true);
}

/* ---------------- set-up ---------------- */

static plog *open_log(storage_ctx *sc, bool clean) {
    int err;
    plog *l = plog_open(sc, dir, &cfg, clean, &err);
    if (l == NULL)
        fprintf(stderr, "cannot open %s: %d\n", dir, err);
    return l;
}

static void fresh(const char *name, int64_t segment_bytes) {
    const char *root = tl_mkdtemp(name);
    snprintf(dir, sizeof dir, "%s/t-0", root);
    plog_config_default(&cfg);
    cfg.segment_bytes = segment_bytes;
    cfg.index_interval_bytes = 256;
    nmodel = 0;
    next_value = 0;
}

static void done(void) {
    char root[sizeof dir];
    memcpy(root, dir, sizeof dir);
    *strrchr(root, '/') = 0;
    tl_rmrf(root);
}

static cleaner *new_cleaner(int64_t bytes) {
    cleaner_opts o = {.dedupe_buffer_bytes = bytes};
    return cleaner_new(&o);
}

/* Runs passes until one cleans nothing new; returns the passes that ran. */
static int clean_to_end(cleaner *c, plog *l, const cleaner_log_config *lc, int64_t now, int64_t *map_end) {
    int passes = 0;
    for (int i = 0; i < 100; i++) {
        cleaner_stats st;
        int rc = cleaner_clean(c, l, lc, now, true, &st);
        CHECK_EQ_INT(rc, STORAGE_OK);
        if (rc != STORAGE_OK)
            break;
        passes++;
        if (st.map_end == *map_end)
            break;
        *map_end = st.map_end;
    }
    return passes;
}

/* Keys from a space of nkeys; one in ten a tombstone. */
static void produce(plog *l, int batches, int nkeys, int max_batch, bool codecs, int64_t now) {
    for (int b = 0; b < batches; b++) {
        int n = 1 + (int)tl_below((uint64_t)max_batch);
        int keys[256];
        bool tomb[256];
        for (int i = 0; i < n; i++) {
            keys[i] = (int)tl_below((uint64_t)nkeys);
            tomb[i] = tl_below(10) == 0;
        }
        int codec = codecs ? (int)tl_below(5) : BATCH_CODEC_NONE;
        REQUIRE(append_batch(l, n, keys, tomb, codec, now) == STORAGE_OK);
    }
}

/* ---------------- tests ---------------- */

static void test_basic(void) {
    fresh("cleaner-basic", 4096);
    tl_rng_state = 7;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    produce(l, 200, 50, 8, false, 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    int64_t before = plog_size_bytes(l);
    int segs_before = plog_segment_count(l);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    REQUIRE(c != NULL);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    cleaner_stats st;
    REQUIRE(cleaner_measure(l, &lc, 0, &st) == STORAGE_OK);
    CHECK(st.due);
    CHECK(st.dirty_ratio > 0.99);
    REQUIRE(cleaner_clean(c, l, &lc, 0, false, &st) == STORAGE_OK);
    CHECK(st.segments_in > 1);
    CHECK(plog_size_bytes(l) < before / 2);
    /* The first pass cleans full segments one by one; the next groups the
     * small cleaned ones. */
    REQUIRE(cleaner_clean(c, l, &lc, 0, true, &st) == STORAGE_OK);
    CHECK(st.segments_out < st.segments_in);
    CHECK(plog_segment_count(l) < segs_before);
    int64_t end = plog_end_offset(l);
    check_log_x(l, end, false, false);
    /* Nothing is due right after a pass. */
    REQUIRE(cleaner_measure(l, &lc, 0, &st) == STORAGE_OK);
    CHECK(!st.due);
    CHECK(st.dirty_ratio == 0);
    /* The cleaned segments survive a clean and an unclean start. */
    plog_close(l);
    l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    check_log_x(l, end, false, false);
    plog_close(l);
    l = open_log(tl_storage(), false);
    REQUIRE(l != NULL);
    check_log_x(l, end, false, false);
    /* New data is appended after the gaps; a second pass dedupes across. */
    produce(l, 100, 50, 8, false, 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    REQUIRE(cleaner_clean(c, l, &lc, 0, true, &st) == STORAGE_OK);
    check_log(l, plog_end_offset(l), false);
    plog_close(l);
    cleaner_free(c);
    done();
}

static void test_tombstones(void) {
    fresh("cleaner-tomb", 2048);
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    lc.delete_retention_ms = 1000;
    int keys[4] = {1, 2, 3, 1};
    bool live[4] = {false, false, false, false}, dead[4] = {true, false, false, false};
    for (int i = 0; i < 20; i++)
        REQUIRE(append_batch(l, 4, keys, live, BATCH_CODEC_NONE, 0) == 0);
    REQUIRE(append_batch(l, 4, keys, dead, BATCH_CODEC_NONE, 0) == 0); /* key 1: a tombstone, then a value */
    int k2[1] = {2};
    bool t2[1] = {true};
    REQUIRE(append_batch(l, 1, k2, t2, BATCH_CODEC_LZ4, 0) == 0); /* key 2: deleted */
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    int64_t end = plog_end_offset(l);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_stats st;
    REQUIRE(cleaner_clean(c, l, &lc, 10000, false, &st) == STORAGE_OK);
    check_log_x(l, end, false, false);
    got g = read_all(l);
    /* key 3's last value, key 1's last value, key 2's tombstone */
    CHECK_EQ_INT(g.n, 3);
    bool tomb_kept = false;
    for (int i = 0; i < g.n; i++)
        if (g.r[i].key == 2 && g.r[i].value < 0)
            tomb_kept = true;
    CHECK(tomb_kept);
    free(g.r);
    /* Not yet past the horizon (10000 + 1000): nothing due, nothing changes. */
    REQUIRE(cleaner_measure(l, &lc, 10500, &st) == STORAGE_OK);
    CHECK(!st.due);
    /* Past it: due, and the tombstone goes. */
    REQUIRE(cleaner_measure(l, &lc, 11001, &st) == STORAGE_OK);
    CHECK(st.due);
    REQUIRE(cleaner_clean(c, l, &lc, 11001, false, &st) == STORAGE_OK);
    g = read_all(l);
    CHECK_EQ_INT(g.n, 2);
    for (int i = 0; i < g.n; i++)
        CHECK(g.r[i].value >= 0);
    free(g.r);
    check_log(l, end, true);
    CHECK_EQ_INT(plog_end_offset(l), end);
    REQUIRE(cleaner_measure(l, &lc, 20000, &st) == STORAGE_OK);
    CHECK(!st.due);
    plog_close(l);
    cleaner_free(c);
    done();
}

/* Many more keys than the smallest map holds: several passes, each within
 * the same memory, end with every key once. */
static void test_multi_pass(void) {
    fresh("cleaner-passes", 64 * 1024);
    tl_rng_state = 99;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    for (int round = 0; round < 3; round++) {
        int keys[100];
        bool tomb[100] = {false};
        for (int b = 0; b < 100; b++) {
            for (int i = 0; i < 100; i++)
                keys[i] = b * 100 + i; /* 10,000 distinct keys a round */
            REQUIRE(append_batch(l, 100, keys, tomb, round == 1 ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE, 0) ==
                    0);
        }
    }
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES); /* about 2,400 keys */
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    int64_t map_end = -1;
    int passes = clean_to_end(c, l, &lc, 0, &map_end);
    CHECK(passes >= 10);
    CHECK_EQ_INT(map_end, plog_end_offset(l));
    check_log(l, plog_end_offset(l), false);
    got g = read_all(l);
    CHECK_EQ_INT(g.n, 10000);
    free(g.r);
    plog_close(l);
    cleaner_free(c);
    done();
}

static void test_random_model(void) {
    uint64_t seed = tl_seed("test_cleaner random");
    for (int run = 0; run < 6; run++) {
        fresh("cleaner-model", 2400 + (int64_t)tl_below(8192));
        plog *l = open_log(tl_storage(), true);
        REQUIRE(l != NULL);
        cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES + (int64_t)tl_below(4) * 24 * 1000);
        REQUIRE(c != NULL);
        cleaner_log_config lc;
        cleaner_log_config_default(&lc);
        lc.delete_retention_ms = (int64_t)tl_below(3) * 1000;
        lc.min_cleanable_ratio = (double)tl_below(100) / 100.0;
        int nkeys = 1 + (int)tl_below(tl_below(2) ? 50 : 6000);
        int64_t now = 0;
        for (int round = 0; round < 8; round++) {
            produce(l, 20 + (int)tl_below(200), nkeys, 1 + (int)tl_below(60), true, now);
            if (tl_below(2))
                REQUIRE(plog_roll(l, now) == 0);
            REQUIRE(plog_flush(l, now) == 0);
            now += (int64_t)tl_below(1500);
            cleaner_stats st;
            int rc = cleaner_clean(c, l, &lc, now, tl_below(3) == 0, &st);
            CHECK_EQ_INT(rc, STORAGE_OK);
            check_log(l, -1, true);
            if (unit_cur_failed)
                fprintf(stderr,
                        "run %d round %d: pass map_end %" PRId64 " keys %" PRId64 " segs %d->%d, nkeys %d, "
                        "segment.bytes %" PRId64 "\n",
                        run, round, st.map_end, st.keys_mapped, st.segments_in, st.segments_out, nkeys,
                        cfg.segment_bytes);
            if (tl_below(4) == 0) {
                plog_close(l);
                bool clean = tl_below(2) == 0;
                l = open_log(tl_storage(), clean);
                REQUIRE(l != NULL);
                check_log(l, -1, true);
                if (unit_cur_failed)
                    fprintf(stderr, "run %d round %d: after a reopen (clean %d)\n", run, round, clean);
            }
        }
        REQUIRE(plog_roll(l, now) == 0);
        REQUIRE(plog_flush(l, now) == 0);
        int64_t map_end = -1;
        clean_to_end(c, l, &lc, now, &map_end);
        check_log(l, map_end, false);
        if (unit_cur_failed)
            fprintf(stderr, "run %d: after cleaning to the end (%" PRId64 ")\n", run, map_end);
        /* Past every horizon: the tombstones go too. */
        now += lc.delete_retention_ms + 1;
        map_end = -1;
        clean_to_end(c, l, &lc, now, &map_end);
        check_log(l, map_end, true);
        plog_close(l);
        cleaner_free(c);
        done();
        if (unit_cur_failed) {
            fprintf(stderr, "random model failed in run %d of seed %llu\n", run, (unsigned long long)seed);
            break;
        }
    }
}

/* ---------------- crashes ---------------- */

/* A vfs over POSIX that, once armed, lets `budget` more mutating
 * operations through and fails every later one (the process is gone). */
typedef struct crashvfs {
    sl_vfs v;
    const sl_vfs *under;
    bool armed;
    long budget;
    long used;
} crashvfs;

static bool crash_now(crashvfs *c) {
    if (!c->armed)
        return false;
    c->used++;
    return c->used > c->budget;
}

#define CV(ctx) ((crashvfs *)(ctx))
static int cv_open(void *ctx, const char *p, int flags, int mode) {
    if ((flags & (SL_O_CREAT | SL_O_TRUNC)) && crash_now(CV(ctx)))
        return -EIO;
    return CV(ctx)->under->open(CV(ctx)->under->ctx, p, flags, mode);
}
static int cv_close(void *ctx, int fd) { return CV(ctx)->under->close(CV(ctx)->under->ctx, fd); }
static ssize_t cv_pread(void *ctx, int fd, void *b, size_t n, int64_t off) {
    return CV(ctx)->under->pread(CV(ctx)->under->ctx, fd, b, n, off);
}
static ssize_t cv_pwrite(void *ctx, int fd, const void *b, size_t n, int64_t off) {
    if (crash_now(CV(ctx)))
        return -EIO;
    return CV(ctx)->under->pwrite(CV(ctx)->under->ctx, fd, b, n, off);
}
static int cv_fsync(void *ctx, int fd) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->fsync(CV(ctx)->under->ctx, fd);
}
static int cv_ftruncate(void *ctx, int fd, int64_t len) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->ftruncate(CV(ctx)->under->ctx, fd, len);
}
static int64_t cv_fsize(void *ctx, int fd) { return CV(ctx)->under->fsize(CV(ctx)->under->ctx, fd); }
static int cv_stat(void *ctx, const char *p, sl_stat *out) {
    return CV(ctx)->under->stat(CV(ctx)->under->ctx, p, out);
}
static int cv_rename(void *ctx, const char *a, const char *b) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->rename(CV(ctx)->under->ctx, a, b);
}
static int cv_unlink(void *ctx, const char *p) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->unlink(CV(ctx)->under->ctx, p);
}
static int cv_mkdir(void *ctx, const char *p, int mode) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->mkdir(CV(ctx)->under->ctx, p, mode);
}
static int cv_rmdir(void *ctx, const char *p) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->rmdir(CV(ctx)->under->ctx, p);
}
static int cv_list(void *ctx, const char *d, sl_vfs_list_fn fn, void *fctx) {
    return CV(ctx)->under->list(CV(ctx)->under->ctx, d, fn, fctx);
}
static int cv_fsync_dir(void *ctx, const char *d) {
    return crash_now(CV(ctx)) ? -EIO : CV(ctx)->under->fsync_dir(CV(ctx)->under->ctx, d);
}

static void crashvfs_init(crashvfs *c) {
    memset(c, 0, sizeof *c);
    c->under = sl_vfs_posix();
    c->v = (sl_vfs){c,       cv_open,   cv_close,  cv_pread, cv_pwrite, cv_fsync, cv_ftruncate, cv_fsize,
                    cv_stat, cv_rename, cv_unlink, cv_mkdir, cv_rmdir,  cv_list,  cv_fsync_dir};
}

/* Builds the same log every time (seeded), cleans it with `budget` mutating
 * operations allowed, "kills" the broker there and reopens it uncleanly.
 * Returns the operations a full clean used (budget < 0: unlimited). */
static long crash_once(long budget, bool tombstones_due) {
    fresh("cleaner-crash", 1024);
    tl_rng_state = 4242;
    crashvfs cv;
    crashvfs_init(&cv);
    storage_ctx *sc = storage_ctx_new(&cv.v, 64);
    plog *l = open_log(sc, true);
    if (l == NULL)
        return -1;
    produce(l, 60, 25, 6, true, 0);
    plog_roll(l, 0);
    plog_flush(l, 0);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    lc.delete_retention_ms = 100;
    cleaner_stats st;
    /* A first pass without a crash, so the crashing one also drops
     * tombstones past their horizon. */
    if (tombstones_due)
        cleaner_clean(c, l, &lc, 0, true, &st);
    cv.armed = true;
    cv.budget = budget < 0 ? 1L << 40 : budget;
    cleaner_clean(c, l, &lc, 1000, true, &st);
    long used = cv.used;
    plog_close(l); /* with writes failing: nothing more reaches the disk */
    cleaner_free(c);
    storage_ctx_free(sc);
    /* The restart. */
    l = open_log(tl_storage(), false);
    CHECK(l != NULL);
    if (l != NULL) {
        check_log(l, -1, true);
        /* Cleaning again finishes the job. */
        c = new_cleaner(CLEANER_MAP_MIN_BYTES);
        int64_t map_end = -1;
        clean_to_end(c, l, &lc, 2000, &map_end);
        check_log(l, map_end, true);
        cleaner_free(c);
        plog_close(l);
    }
    done();
    return used;
}

static void test_crash_points(void) {
    for (int t = 0; t < 2; t++) {
        long total = crash_once(-1, t == 1);
        REQUIRE(total > 10);
        for (long k = 0; k <= total && !unit_cur_failed; k++)
            crash_once(k, t == 1);
        printf("test_cleaner: crashed a clean at each of its %ld mutating operations (%s)\n", total,
               t ? "tombstones due" : "first clean");
    }
}

/* A corrupt batch stops the pass with an error; nothing is lost. */
static void test_corrupt(void) {
    fresh("cleaner-corrupt", 2048);
    tl_rng_state = 5;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    produce(l, 60, 10, 5, false, 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    plog_close(l);
    /* Flip a byte inside the records of the second segment's first batch. */
    int64_t *bases;
    int n;
    int64_t rp;
    REQUIRE(plog_peek(tl_storage(), dir, &bases, &n, &rp) == 0);
    REQUIRE(n >= 3);
    char p[600];
    snprintf(p, sizeof p, "%s/%020" PRId64 ".log", dir, bases[1]);
    free(bases);
    FILE *f = fopen(p, "r+b");
    REQUIRE(f != NULL);
    fseek(f, 70, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 70, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
    l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    int64_t size = plog_size_bytes(l);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    cleaner_stats st;
    CHECK_EQ_INT(cleaner_clean(c, l, &lc, 0, true, &st), STORAGE_CORRUPT_MESSAGE);
    CHECK_EQ_INT(plog_size_bytes(l), size);
    CHECK(!plog_is_offline(l));
    plog_close(l);
    cleaner_free(c);
    done();
}

typedef struct batch_list {
    int64_t base[64], last[64];
    int32_t count[64];
    int n;
} batch_list;

static int list_batch(void *ctx, const uint8_t *b, size_t size, const batch_header *h) {
    (void)b;
    (void)size;
    batch_list *bl = ctx;
    if (bl->n < 64) {
        bl->base[bl->n] = h->base_offset;
        bl->last[bl->n] = batch_last_offset(h);
        bl->count[bl->n++] = h->record_count;
    }
    return 0;
}

/* A segment whose records all go keeps its last batch, empty, so its end
 * offset stays (readers and followers never wait at a gap at its end). */
static void test_empty_last_batch(void) {
    fresh("cleaner-empty", 150); /* one batch a segment */
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    int k[2] = {1, 2};
    bool live[2] = {false, false};
    for (int i = 0; i < 4; i++)
        REQUIRE(append_batch(l, 2, k, live, BATCH_CODEC_NONE, 0) == 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    REQUIRE(plog_segment_count(l) >= 4);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    cleaner_stats st;
    REQUIRE(cleaner_clean(c, l, &lc, 0, true, &st) == STORAGE_OK);
    check_log_x(l, plog_end_offset(l), false, false);
    batch_list bl = {.n = 0};
    int64_t next;
    REQUIRE(plog_scan(l, 0, 1 << 20, list_batch, &bl, &next) == 0);
    int64_t off = next;
    while (off < plog_end_offset(l) && plog_scan(l, off, 1 << 20, list_batch, &bl, &next) == 0 && next > off)
        off = next;
    /* batches 0..2 are empty and keep their offsets; the last one is whole */
    REQUIRE(bl.n == 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(bl.base[i], 2 * i);
        CHECK_EQ_INT(bl.last[i], 2 * i + 1);
        CHECK_EQ_INT(bl.count[i], i < 3 ? 0 : 2);
    }
    plog_close(l);
    cleaner_free(c);
    done();
}

/* Appends, reads and cleaning at once (as the broker runs them: a writer,
 * fetches, the housekeeper's tick and a cleaner thread). Readers must see
 * strictly increasing offsets and whole batches throughout; at the end the
 * log holds what the model says. */
typedef struct conc {
    plog *l;
    atomic_bool stop;
    atomic_int passes, cleaned, reads, bad;
} conc;

static void *conc_clean(void *arg) {
    conc *x = arg;
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    lc.min_cleanable_ratio = 0.1;
    while (!atomic_load(&x->stop)) {
        cleaner_stats st;
        if (cleaner_clean(c, x->l, &lc, 0, false, &st) != STORAGE_OK)
            atomic_fetch_add(&x->bad, 1);
        atomic_fetch_add(&x->passes, 1);
        if (st.segments_out > 0)
            atomic_fetch_add(&x->cleaned, 1);
        else
            usleep(1000);
    }
    cleaner_free(c);
    return NULL;
}

static void *conc_read(void *arg) {
    conc *x = arg;
    while (!atomic_load(&x->stop)) {
        got g = read_all(x->l);
        if (g.bad)
            atomic_fetch_add(&x->bad, 1);
        free(g.r);
        atomic_fetch_add(&x->reads, 1);
    }
    return NULL;
}

static void test_concurrent(void) {
    fresh("cleaner-conc", 4096);
    tl_rng_state = 77;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    conc x = {.l = l};
    pthread_t tc, tr;
    pthread_create(&tc, NULL, conc_clean, &x);
    pthread_create(&tr, NULL, conc_read, &x);
    for (int i = 0; i < 3000; i++) {
        produce(l, 1, 100, 10, i % 2 == 0, 0);
        if (i % 50 == 0)
            plog_tick(l, 0); /* the roll flush moves the recovery point */
    }
    plog_roll(l, 0);
    plog_tick(l, 0);
    for (int i = 0; i < 300 && atomic_load(&x.cleaned) < 3; i++)
        usleep(10000);
    atomic_store(&x.stop, true);
    pthread_join(tc, NULL);
    pthread_join(tr, NULL);
    CHECK_EQ_INT(atomic_load(&x.bad), 0);
    CHECK(atomic_load(&x.cleaned) > 2 && atomic_load(&x.reads) > 0);
    check_log(l, -1, false);
    printf(
        "test_cleaner: concurrent: %d passes (%d cleaned something) and %d full reads during 3000 appends\n",
        atomic_load(&x.passes), atomic_load(&x.cleaned), atomic_load(&x.reads));
    plog_close(l);
    done();
}

/* The throttle hook sees the bytes, and abandoning a pass (shutdown) keeps
 * the log as it was, without leftover files. */
typedef struct thr {
    int64_t bytes;
    int64_t allow; /* bytes after which the hook says stop */
} thr;

static bool count_bytes(void *ctx, int64_t bytes) {
    thr *t = ctx;
    t->bytes += bytes;
    return t->bytes <= t->allow;
}

static int count_tagged(void *ctx, const char *name, bool is_dir) {
    (void)is_dir;
    if (strstr(name, ".cleaned") || strstr(name, ".swap"))
        (*(int *)ctx)++;
    return 0;
}

static void test_throttle_abandon(void) {
    fresh("cleaner-throttle", 2048);
    tl_rng_state = 3;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    produce(l, 100, 30, 6, false, 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    int64_t size = plog_size_bytes(l);
    thr t = {0, size}; /* the map's reads pass, the rewrite stops */
    cleaner_opts o = {
        .dedupe_buffer_bytes = CLEANER_MAP_MIN_BYTES, .throttle = count_bytes, .throttle_ctx = &t};
    cleaner *c = cleaner_new(&o);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    cleaner_stats st;
    CHECK_EQ_INT(cleaner_clean(c, l, &lc, 0, true, &st), STORAGE_OK);
    CHECK(t.bytes > size);
    int left = 0;
    REQUIRE(sl_vfs_posix()->list(NULL, dir, count_tagged, &left) == 0);
    CHECK_EQ_INT(left, 0);
    check_log_x(l, -1, false, false);
    /* Allowed to go on, the same cleaner finishes. */
    t.allow = INT64_MAX;
    t.bytes = 0;
    CHECK_EQ_INT(cleaner_clean(c, l, &lc, 0, true, &st), STORAGE_OK);
    CHECK(plog_size_bytes(l) < size);
    CHECK(t.bytes >= st.bytes_written);
    check_log_x(l, plog_end_offset(l), false, false);
    plog_close(l);
    cleaner_free(c);
    done();
}

/* min.compaction.lag.ms holds young segments back; max.compaction.lag.ms
 * makes an old dirty section due whatever the dirty ratio. Record
 * timestamps are 1,000,000 + their number. */
static void test_lags(void) {
    fresh("cleaner-lags", 2048);
    tl_rng_state = 11;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    produce(l, 100, 20, 5, false, 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    int64_t newest = 1000000 + next_value - 1;
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    lc.min_compaction_lag_ms = 10000;
    cleaner_stats st;
    /* Everything younger than the lag: nothing cleanable. */
    REQUIRE(cleaner_measure(l, &lc, newest + 5000 - 300, &st) == STORAGE_OK);
    CHECK(!st.due);
    int64_t size = plog_size_bytes(l);
    REQUIRE(cleaner_clean(c, l, &lc, 1000000 + 100, true, &st) == STORAGE_OK);
    CHECK_EQ_INT(plog_size_bytes(l), size);
    /* Old enough: due, and cleaned. */
    REQUIRE(cleaner_measure(l, &lc, newest + 10001, &st) == STORAGE_OK);
    CHECK(st.due);
    REQUIRE(cleaner_clean(c, l, &lc, newest + 10001, false, &st) == STORAGE_OK);
    CHECK(plog_size_bytes(l) < size);
    check_log_x(l, plog_end_offset(l), false, false);
    /* A little more dirt: under a high ratio threshold it waits ... */
    produce(l, 10, 20, 5, false, 0);
    REQUIRE(plog_roll(l, 0) == 0);
    REQUIRE(plog_flush(l, 0) == 0);
    newest = 1000000 + next_value - 1;
    lc.min_compaction_lag_ms = 0;
    lc.min_cleanable_ratio = 0.99;
    REQUIRE(cleaner_measure(l, &lc, newest + 1, &st) == STORAGE_OK);
    CHECK(!st.due);
    CHECK(st.dirty_ratio > 0 && st.dirty_ratio < 0.99);
    /* ... until its records are older than max.compaction.lag.ms. */
    lc.max_compaction_lag_ms = 60000;
    REQUIRE(cleaner_measure(l, &lc, newest + 30000, &st) == STORAGE_OK);
    CHECK(!st.due);
    REQUIRE(cleaner_measure(l, &lc, newest + 60001, &st) == STORAGE_OK);
    CHECK(st.due);
    REQUIRE(cleaner_clean(c, l, &lc, newest + 60001, false, &st) == STORAGE_OK);
    CHECK(st.segments_out > 0);
    check_log_x(l, plog_end_offset(l), false, false);
    plog_close(l);
    cleaner_free(c);
    done();
}

/* Transactional and control batches are copied unchanged and never shadow
 * an earlier value (no transaction state tells aborted from committed);
 * LogAppendTime timestamps survive re-encoding. */
static int append_raw(plog *l, int key, int16_t attrs, int64_t pid, int64_t now) {
    arena a;
    arena_init(&a, 1 << 20);
    char kb[16], vb[24];
    int v = next_value++;
    int kl = snprintf(kb, sizeof kb, "key-%d", key), vl = snprintf(vb, sizeof vb, "value-%d", v);
    batch_build_record r = {
        .key = {(const uint8_t *)kb, kl}, .value = {(const uint8_t *)vb, vl}, .timestamp = 1000000 + v};
    batch_build_opts o = batch_build_defaults();
    o.extra_attributes = attrs;
    o.producer_id = pid;
    o.producer_epoch = pid >= 0 ? 0 : -1;
    o.base_sequence = pid >= 0 ? 0 : -1;
    uint8_t *out;
    size_t len;
    int rc = batch_build(&o, &r, 1, &a, &out, &len);
    if (rc == 0)
        rc = plog_append(l, out, len, 1, now, NULL);
    arena_reset(&a);
    return rc;
}

static void test_transactional_and_log_append_time(void) {
    fresh("cleaner-txn", 1024);
    cfg.timestamp_type = PLOG_TS_LOG_APPEND_TIME;
    plog *l = open_log(tl_storage(), true);
    REQUIRE(l != NULL);
    for (int i = 0; i < 30; i++)
        REQUIRE(append_raw(l, i % 3, 0, -1, 5000 + i) == 0);           /* offsets 0..29 */
    REQUIRE(append_raw(l, 0, BATCH_ATTR_TRANSACTIONAL, 7, 9000) == 0); /* 30: key 0, in a transaction */
    int k4[4] = {5, 6, 5, 7};
    bool f4[4] = {false, false, false, false};
    REQUIRE(append_batch(l, 4, k4, f4, BATCH_CODEC_GZIP, 9500) == 0); /* 31..34: 31 goes, re-encoded */
    REQUIRE(plog_roll(l, 9000) == 0);
    REQUIRE(plog_flush(l, 9000) == 0);
    got before = read_all(l);
    cleaner *c = new_cleaner(CLEANER_MAP_MIN_BYTES);
    cleaner_log_config lc;
    cleaner_log_config_default(&lc);
    cleaner_stats st;
    REQUIRE(cleaner_clean(c, l, &lc, 10000, true, &st) == STORAGE_OK);
    got after = read_all(l);
    /* keys 1 and 2: their last values; key 0: its last plain value (27)
     * and the transactional one (30) */
    REQUIRE(after.n == 7);
    static const int64_t want[7] = {27, 28, 29, 30, 32, 33, 34};
    for (int i = 0; i < 7; i++)
        CHECK_EQ_INT(after.r[i].offset, want[i]);
    for (int i = 0; i < after.n; i++) {
        int k = 0;
        while (k < before.n && before.r[k].offset != after.r[i].offset)
            k++;
        REQUIRE(k < before.n);
        CHECK_EQ_INT(after.r[i].ts, before.r[k].ts); /* the append time, not the create time */
        CHECK(after.r[i].ts >= 5000 && after.r[i].ts <= 9500);
        CHECK_EQ_INT(after.r[i].value, before.r[k].value);
    }
    free(before.r);
    free(after.r);
    plog_close(l);
    cleaner_free(c);
    done();
}

int main(void) {
    UNIT_RUN(test_basic);
    UNIT_RUN(test_tombstones);
    UNIT_RUN(test_multi_pass);
    UNIT_RUN(test_lags);
    UNIT_RUN(test_transactional_and_log_append_time);
    UNIT_RUN(test_random_model);
    UNIT_RUN(test_corrupt);
    UNIT_RUN(test_throttle_abandon);
    UNIT_RUN(test_concurrent);
    UNIT_RUN(test_empty_last_batch);
    UNIT_RUN(test_crash_points);
    return UNIT_END("test_cleaner");
}
