/*
 * test_storage_faults.c - the partition log over a fake disk.
 *
 * Storage runs over the simulation's in-memory disk (tests/sim/sim_disk.c:
 * a crash keeps what was fsynced plus a random prefix of later appends)
 * wrapped in the fault-injecting vfs (core/env.h). A short fixed workload -
 * open, leader and follower appends, flush, roll, tick (the roll's
 * background flush), truncations inside the log and below its start,
 * DeleteRecords, close - is run:
 *   - with no fault, crashing after every step;
 *   - for every operation the vfs can fail (open, pread, pwrite, fsync,
 *     ftruncate, rename, unlink, mkdir) and every call number of that
 *     operation in the workload, with EIO (and for pwrite ENOSPC and torn
 *     writes: a few bytes, or all of them, land before the error), the
 *     fault lasting either until the end of the step (transient) or for
 *     good (a dead disk), followed by a crash.
 * Every step must return STORAGE_OK or a storage error value (never a raw
 * errno, never a crash). After the crash the log must reopen without
 * faults; every batch below the last recovery point the log claimed (all
 * fsynced) must be there as it was; every batch past it must be one that
 * was really written at that offset and not durably truncated since; and
 * the reopened log must take and serve a new append.
 *
 * The seed of the disk's torn tails is printed; SLUICE_SEED=<n> replays.
 */
#include "storage_testlib.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>

#include "sim.h"
#include "storage/log.h"
#include "unit.h"

#define LOG_DIR   "/d/t-0"
#define ROOT_DIR  "/d"
#define MAX_SEEN  256
#define MAX_STEPS 64

typedef struct mb {
    int64_t base, last;
    uint8_t fill;
} mb;

typedef struct world {
    sim s;
    sim_disk *disk;
    sl_vfs_faulty *faulty;
    storage_ctx *sc;
    plog *l;
    plog_config cfg;
    /* the model */
    mb cur[MAX_SEEN]; /* the log's batches per the operations that succeeded */
    int ncur;
    mb ever[MAX_SEEN]; /* every batch written (or attempted) and not durably truncated since */
    int never;
    int64_t must_end; /* the last recovery point the log claimed */
    uint8_t next_fill;
    bool closed_ok, marked_clean;
    /* transient faults end with the step that hit them */
    bool transient;
    sl_vfs_op fault_op;
    char failure[256];
} world;

static uint64_t g_seed;
static uint8_t buf[1 << 16];
static int g_runs, g_faulted_runs, g_errors_reported;

static int64_t now_ms(const world *w) { return SIM_WALL_EPOCH_MS + w->s.now; }

static void fail(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(world *w, const char *fmt, ...) {
    if (w->failure[0] != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->failure, sizeof w->failure, fmt, ap);
    va_end(ap);
}

/* A result from storage: 0 or one of its error values, nothing else. */
static void check_result(world *w, const char *what, int rc) {
    if (rc != 0 && (rc < STORAGE_ERR_FIRST || rc > STORAGE_ERR_LAST))
        fail(w, "%s returned %d, not a storage result", what, rc);
    if (rc != 0)
        g_errors_reported++;
}

static void add_ever(world *w, int64_t base, int64_t last, uint8_t fill) {
    if (w->never < MAX_SEEN)
        w->ever[w->never++] = (mb){base, last, fill};
}

static void append_leader(world *w, int nrec, int vlen) {
    if (w->l == NULL)
        return;
    uint8_t fill = w->next_fill++;
    size_t n = tl_build_batch(buf, sizeof buf, nrec, now_ms(w), vlen, fill);
    int64_t base = plog_end_offset(w->l);
    plog_append_info info;
    int rc = plog_append(w->l, buf, n, 2, now_ms(w), &info);
    check_result(w, "plog_append", rc);
    /* written or not, a failed append may have reached the disk */
    add_ever(w, base, base + nrec - 1, fill);
    if (rc == 0) {
        if (info.base_offset != base)
            fail(w, "append got offset %lld, the log ended at %lld", (long long)(info.base_offset),
                 (long long)(base));
        w->cur[w->ncur++] = (mb){base, base + nrec - 1, fill};
    }
}

static void append_follower(world *w, int nbatches) {
    if (w->l == NULL)
        return;
    int64_t base = plog_end_offset(w->l), at = base;
    size_t len = 0;
    mb add[4];
    for (int i = 0; i < nbatches; i++) {
        uint8_t fill = w->next_fill++;
        size_t n = tl_build_batch(buf + len, sizeof buf - len, 2, now_ms(w), 60, fill);
        wire_put_be64(buf + len + BATCH_OFF_BASE_OFFSET, (uint64_t)at);
        wire_put_be32(buf + len + BATCH_OFF_LEADER_EPOCH, 7);
        add[i] = (mb){at, at + 1, fill};
        at += 2;
        len += n;
    }
    int rc = plog_append_follower(w->l, buf, len, now_ms(w), NULL);
    check_result(w, "plog_append_follower", rc);
    for (int i = 0; i < nbatches; i++) {
        add_ever(w, add[i].base, add[i].last, add[i].fill);
        if (rc == 0)
            w->cur[w->ncur++] = add[i];
    }
}

/* Truncation to offset: on success the removed batches may never come
 * back, so they leave `ever` too. */
static void truncate_to(world *w, int64_t offset) {
    if (w->l == NULL)
        return;
    int rc = plog_truncate(w->l, offset);
    check_result(w, "plog_truncate", rc);
    if (rc != 0)
        return;
    int64_t end = plog_end_offset(w->l);
    bool empty = plog_size_bytes(w->l) == 0; /* started over (or cut to its first batch) */
    int k = 0;
    while (!empty && k < w->ncur && w->cur[k].last < end)
        k++;
    w->ncur = k;
    if (k > 0 && w->cur[k - 1].last + 1 != end)
        fail(w, "truncation left the end at %lld, the model at %lld", (long long)(end),
             (long long)(w->cur[k - 1].last + 1));
    int j = 0;
    for (int i = 0; i < w->never; i++)
        if (!empty && w->ever[i].last < end)
            w->ever[j++] = w->ever[i];
    w->never = j;
}

static void open_log(world *w, bool clean) {
    int err = 0;
    w->l = plog_open(w->sc, LOG_DIR, &w->cfg, clean, &err);
    if (w->l == NULL)
        check_result(w, "plog_open", err == 0 ? -1 : err);
}

static const int n_steps = 24;

/* Step i of the workload. */
static void run_step(world *w, int i) {
    w->s.now += 10;
    plog *l = w->l;
    int64_t end = l ? plog_end_offset(l) : 0;
    int rc;
    switch (i) {
    case 0: {
        bool clean;
        rc = plog_dir_begin(w->sc, ROOT_DIR, &clean);
        if (rc > 0)
            fail(w, "plog_dir_begin returned %lld", (long long)(rc));
        open_log(w, false);
        break;
    }
    case 1:
    case 2:
    case 3:
        append_leader(w, 2, 100);
        break;
    case 4:
        if (l)
            check_result(w, "plog_flush", plog_flush(l, now_ms(w)));
        break;
    case 5:
    case 6:
        append_follower(w, 2);
        break;
    case 7:
        if (l)
            check_result(w, "plog_roll", plog_roll(l, now_ms(w)));
        break;
    case 8:
    case 9:
    case 10:
        append_leader(w, 3, 200); /* rolls by size on the way */
        break;
    case 11:
        if (l)
            check_result(w, "plog_tick", plog_tick(l, now_ms(w)));
        break;
    case 12:
        truncate_to(w, end - 2); /* inside the last batch */
        break;
    case 13:
        append_follower(w, 1);
        break;
    case 14:
        append_leader(w, 1, 50);
        break;
    case 15:
        if (l)
            check_result(w, "plog_flush", plog_flush(l, now_ms(w)));
        break;
    case 16:
        truncate_to(w, 5); /* into an earlier segment, below the recovery point */
        break;
    case 17:
        append_leader(w, 2, 300);
        break;
    case 18:
        if (l) {
            int64_t ns;
            check_result(w, "plog_delete_records", plog_delete_records(l, 3, &ns));
        }
        break;
    case 19:
        truncate_to(w, 2); /* below the log start: starts over at 2 */
        break;
    case 20:
        append_follower(w, 2);
        break;
    case 21:
        if (l)
            check_result(w, "plog_tick", plog_tick(l, now_ms(w)));
        break;
    case 22:
        append_leader(w, 1, 20);
        break;
    case 23:
        if (l) {
            rc = plog_close(l);
            check_result(w, "plog_close", rc);
            w->l = NULL;
            w->closed_ok = rc == 0;
            /* as the broker does: the root is marked clean only when every
             * log under it closed (flushed) without error */
            if (w->closed_ok)
                w->marked_clean = plog_dir_mark_clean(w->sc, ROOT_DIR) == 0;
            if (w->closed_ok)
                w->must_end = end;
        }
        break;
    }
    if (w->l != NULL) {
        int64_t rp = plog_recovery_point(w->l);
        if (rp > plog_end_offset(w->l))
            fail(w, "recovery point %lld past the end %lld", (long long)(rp),
                 (long long)(plog_end_offset(w->l)));
        w->must_end = rp;
    }
}

typedef struct check_ctx {
    world *w;
    int64_t expect; /* next base offset; -1 before the first batch */
    int64_t start;  /* the log start, which the first batch holds */
    int n;
} check_ctx;

static int check_batch(void *ctx, const uint8_t *b, size_t size, const batch_header *h) {
    check_ctx *c = ctx;
    world *w = c->w;
    int64_t base = h->base_offset, last = base + h->last_offset_delta;
    uint8_t fill = b[size - 2];
    if (c->expect < 0 ? !(base <= c->start && c->start <= last) : base != c->expect)
        fail(w, "batch %lld..%lld where %lld was expected", (long long)base, (long long)last,
             (long long)(c->expect < 0 ? c->start : c->expect));
    c->expect = last + 1;
    c->n++;
    bool ok = false;
    if (base < w->must_end) {
        for (int i = 0; i < w->ncur && !ok; i++)
            ok = w->cur[i].base == base && w->cur[i].last == last && w->cur[i].fill == fill;
        if (!ok)
            fail(w, "batch %lld (below the recovery point %lld) is not the one the log acknowledged",
                 (long long)(base), (long long)(w->must_end));
    } else {
        for (int i = 0; i < w->never && !ok; i++)
            ok = w->ever[i].base == base && w->ever[i].last == last && w->ever[i].fill == fill;
        if (!ok)
            fail(w, "batch %lld past the recovery point %lld was never written there (or was truncated)",
                 (long long)(base), (long long)(w->must_end));
    }
    return 0;
}

/* The crash and the checks of the reopened log. */
static void crash_and_check(world *w) {
    if (w->l != NULL) {
        /* a crash frees nothing on disk; in memory the log just goes */
        plog_close(w->l); /* its writes fail or land, the crash decides */
        w->l = NULL;
        w->marked_clean = false;
    }
    sim_disk_crash(w->disk);
    sl_vfs_faulty_set(w->faulty, NULL);
    bool clean = false;
    if (plog_dir_begin(w->sc, ROOT_DIR, &clean) != 0)
        fail(w, "plog_dir_begin failed after the crash");
    if (clean != w->marked_clean)
        fail(w, "the clean marker says %lld, the run marked %lld", (long long)(clean),
             (long long)(w->marked_clean));
    int err = 0;
    plog *l = plog_open(w->sc, LOG_DIR, &w->cfg, clean, &err);
    if (l == NULL) {
        fail(w, "the log does not reopen after the crash (%d)", err);
        return;
    }
    int64_t start = plog_start_offset(l), end = plog_end_offset(l);
    if (end < w->must_end)
        fail(w, "the log ends at %lld after the crash, below its recovery point %lld", (long long)(end),
             (long long)(w->must_end));
    check_ctx c = {w, -1, start, 0};
    int64_t off = start;
    while (off < end) {
        int64_t next;
        int rc = plog_scan(l, off, 4096, check_batch, &c, &next);
        if (rc != 0 || next <= off) {
            fail(w, "scanning the reopened log at %lld: %lld", (long long)(off), (long long)(rc));
            break;
        }
        off = next;
    }
    /* and it keeps going */
    size_t n = tl_build_batch(buf, sizeof buf, 1, now_ms(w), 10, 0xEE);
    plog_append_info info;
    if (plog_append(l, buf, n, 3, now_ms(w), &info) != 0 || info.base_offset != end)
        fail(w, "the reopened log refuses an append at %lld (%lld)", (long long)(end),
             (long long)(info.base_offset));
    plog_read_result r;
    if (plog_read(l, end, 100, -1, &r) != 0 || r.n != 1)
        fail(w, "the new batch at %lld does not read back", (long long)end);
    else
        plog_read_release(&r);
    plog_close(l);
}

static void world_init(world *w, uint64_t seed, const sl_vfs_faults *plan) {
    memset(w, 0, sizeof *w);
    sim_init(&w->s, seed);
    w->disk = sim_disk_new(&w->s);
    const sl_vfs *raw = sim_disk_vfs(w->disk);
    raw->mkdir(raw->ctx, ROOT_DIR, 0755);
    w->faulty = sl_vfs_faulty_new(raw, plan);
    w->sc = storage_ctx_new(sl_vfs_faulty_vfs(w->faulty), 2);
    plog_config_default(&w->cfg);
    w->cfg.segment_bytes = 700;
    w->cfg.index_interval_bytes = 100;
    w->cfg.retention_ms = -1;
    w->next_fill = 1;
}

static void world_free(world *w) {
    storage_ctx_free(w->sc);
    sl_vfs_faulty_free(w->faulty);
    sim_disk_free(w->disk);
    sim_free(&w->s);
}

/* One run: the workload up to and including step `last` under plan, then
 * the crash and the checks. Returns false (with the reason printed) on a
 * violation. */
static bool run(uint64_t seed, const sl_vfs_faults *plan, bool transient, sl_vfs_op op, int last,
                const char *what, uint64_t calls[SL_VFS_OP_COUNT]) {
    static world w;
    if (getenv("FAULTS_TRACE"))
        fprintf(stderr, "run: %s\n", what);
    world_init(&w, seed, plan);
    w.transient = transient;
    w.fault_op = op;
    bool faulted = false;
    for (int i = 0; i <= last && i < n_steps; i++) {
        run_step(&w, i);
        if (plan && !faulted && sl_vfs_faulty_failed(w.faulty, op) > 0) {
            faulted = true;
            if (transient)
                sl_vfs_faulty_set(w.faulty, NULL);
        }
    }
    if (calls)
        for (int o = 0; o < SL_VFS_OP_COUNT; o++)
            calls[o] = sl_vfs_faulty_calls(w.faulty, (sl_vfs_op)o);
    g_faulted_runs += faulted;
    crash_and_check(&w);
    g_runs++;
    bool ok = w.failure[0] == 0;
    if (!ok)
        fprintf(stderr, "storage faults: %s: %s (SLUICE_SEED=%llu)\n", what, w.failure,
                (unsigned long long)seed);
    world_free(&w);
    return ok;
}

static const char *op_names[SL_VFS_OP_COUNT] = {"open",      "pread",  "pwrite", "fsync",
                                                "ftruncate", "rename", "unlink", "mkdir"};

/* Without faults, a crash after every step of the workload. */
static void test_crash_after_every_step(void) {
    for (int last = 0; last < n_steps; last++) {
        char what[64];
        snprintf(what, sizeof what, "no fault, crash after step %d", last);
        for (uint64_t k = 0; k < 8; k++) /* different torn tails */
            CHECK(run(g_seed + k * 7919 + (uint64_t)last, NULL, false, SL_VFS_OP_OPEN, last, what, NULL));
    }
}

/* Every call number of every operation, every kind of failure. */
static void test_fault_at_every_call(void) {
    uint64_t calls[SL_VFS_OP_COUNT];
    sl_vfs_faults none = {0};
    REQUIRE(run(g_seed, &none, false, SL_VFS_OP_OPEN, n_steps, "counting calls", calls));
    for (int o = 0; o < SL_VFS_OP_COUNT; o++)
        printf("test_storage_faults: %llu %s calls in the workload\n", (unsigned long long)calls[o],
               op_names[o]);
    int failures = 0;
    for (int o = 0; o < SL_VFS_OP_COUNT && failures < 10; o++) {
        /* kinds: 0 EIO; for pwrite also 1 ENOSPC, 2 a torn write of 7 bytes, 3 all bytes written then EIO */
        int kinds = o == SL_VFS_OP_PWRITE ? 4 : 1;
        for (uint64_t k = 1; k <= calls[o] && failures < 10; k++)
            for (int kind = 0; kind < kinds; kind++)
                for (int transient = 0; transient < 2; transient++) {
                    sl_vfs_faults plan = {0};
                    plan.seed = g_seed;
                    plan.fail_from[o] = k;
                    plan.err[o] = kind == 1 ? -ENOSPC : -EIO;
                    plan.torn_bytes = kind == 2 ? 7 : kind == 3 ? 1 << 20 : 0;
                    char what[128];
                    snprintf(what, sizeof what, "%s call %llu fails (%s, %s)", op_names[o],
                             (unsigned long long)k,
                             kind == 1   ? "ENOSPC"
                             : kind == 2 ? "torn write"
                             : kind == 3 ? "written, then EIO"
                                         : "EIO",
                             transient ? "transient" : "for good");
                    if (!run(g_seed + k, &plan, transient, (sl_vfs_op)o, n_steps, what, NULL))
                        failures++;
                }
    }
    CHECK_EQ_INT(failures, 0);
}

int main(void) {
    g_seed = tl_seed("test_storage_faults");
    UNIT_RUN(test_crash_after_every_step);
    UNIT_RUN(test_fault_at_every_call);
    printf("test_storage_faults: %d runs, %d with a fault injected, %d errors reported by storage\n", g_runs,
           g_faulted_runs, g_errors_reported);
    return UNIT_END("test_storage_faults");
}
