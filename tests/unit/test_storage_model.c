/*
 * test_storage_model.c - model-based randomized test of the partition log.
 *
 * Random appends (a leader's, which assign offsets, and a follower's, whose
 * batches carry their own offsets and epochs, some of them at the wrong
 * offset), reads and scans, timestamp lookups, truncations (inside, at and
 * past the end, below the start, and full ones past the end), DeleteRecords,
 * rolls and restarts (clean and unclean) run against the real log and
 * against a plain array of batches; after every step the two must agree.
 * The seed is printed; SLUICE_SEED=<n> replays a run.
 */
#include "storage_testlib.h"

#include <inttypes.h>

#include "storage/log.h"
#include "unit.h"

#define MODEL_MAX 20000
#define STEPS     6000

typedef struct mbatch {
    int64_t base, last;
    int64_t ts0, step;
    uint8_t fill;
    int32_t epoch;
} mbatch;

static mbatch model[MODEL_MAX];
static int nmodel;
static int64_t m_lso, m_leo;
static int32_t m_epoch = 3; /* the epoch of the next follower batch; never goes down */

static const char *root;
static char dir[512];
static uint8_t buf[1 << 20];
static uint8_t data[4 << 20];
static plog_config cfg;

static plog *reopen(plog *l, bool clean) {
    if (l)
        plog_close(l);
    int err;
    return plog_open(tl_storage(), dir, &cfg, clean, &err);
}

static int do_append(plog *l) {
    int n = 1 + (int)tl_below(5);
    int vlen = 1 + (int)tl_below(tl_below(10) == 0 ? 3000 : 200); /* >= 1: the fill byte is checked */
    int64_t ts0 = 1000 + m_leo * 10 - (int64_t)tl_below(50);
    int64_t step = (int64_t)tl_below(4);
    uint8_t fill = (uint8_t)tl_rand();
    size_t len = tl_build_batch_ts(buf, sizeof buf, n, ts0, step, vlen, fill);
    plog_append_info info;
    int rc = plog_append(l, buf, len, 3, 0, &info);
    if (rc == STORAGE_RECORD_LIST_TOO_LARGE && (int64_t)len > cfg.segment_bytes)
        return 0;
    if (rc != 0)
        return rc;
    if (info.base_offset != m_leo || nmodel == MODEL_MAX)
        return -1;
    model[nmodel++] = (mbatch){m_leo, m_leo + n - 1, ts0, step, fill, 3};
    m_leo += n;
    return 0;
}

/* A follower's append of one to three batches at the log end (one time in
 * ten at a wrong offset, which must change nothing). */
static int do_append_follower(plog *l) {
    int k = 1 + (int)tl_below(3);
    bool wrong = tl_below(10) == 0;
    int64_t at = m_leo;
    if (wrong)
        at = tl_below(2) && m_leo > 0 ? m_leo - 1 - (int64_t)tl_below((uint64_t)m_leo)
                                      : m_leo + 1 + (int64_t)tl_below(5);
    if (tl_below(4) == 0)
        m_epoch += 1 + (int32_t)tl_below(2);
    size_t len = 0;
    mbatch add[3];
    int64_t next = at;
    for (int i = 0; i < k; i++) {
        int n = 1 + (int)tl_below(5);
        int vlen = 1 + (int)tl_below(200);
        int64_t ts0 = 1000 + next * 10 - (int64_t)tl_below(50);
        int64_t step = (int64_t)tl_below(4);
        uint8_t fill = (uint8_t)tl_rand();
        size_t b = tl_build_batch_ts(buf + len, sizeof buf - len, n, ts0, step, vlen, fill);
        wire_put_be64(buf + len + BATCH_OFF_BASE_OFFSET, (uint64_t)next);
        wire_put_be32(buf + len + BATCH_OFF_LEADER_EPOCH, (uint32_t)m_epoch);
        add[i] = (mbatch){next, next + n - 1, ts0, step, fill, m_epoch};
        next += n;
        len += b;
    }
    plog_append_info info;
    int rc = plog_append_follower(l, buf, len, 0, &info);
    if (wrong)
        return rc == STORAGE_UNEXPECTED_OFFSET ? 0 : -1;
    if (rc == STORAGE_RECORD_LIST_TOO_LARGE && (int64_t)len > cfg.segment_bytes)
        return 0;
    if (rc != 0)
        return rc;
    if (info.base_offset != m_leo || info.last_offset != next - 1 || nmodel + k > MODEL_MAX)
        return -1;
    for (int i = 0; i < k; i++)
        model[nmodel++] = add[i];
    m_leo = next;
    return 0;
}

/* Index of the model batch holding offset o, or -1. */
static int mfind(int64_t o) {
    int lo = 0, hi = nmodel - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (model[mid].last < o)
            lo = mid + 1;
        else if (model[mid].base > o)
            hi = mid - 1;
        else
            return mid;
    }
    return -1;
}

static int check_read(plog *l) {
    int64_t off = m_lso + (int64_t)tl_below((uint64_t)(m_leo - m_lso + 1));
    int64_t maxb = 1 + (int64_t)tl_below(tl_below(2) ? 200 : 40000);
    plog_read_result r;
    int rc = plog_read(l, off, maxb, -1, &r);
    if (rc != 0)
        return rc;
    if (r.log_end_offset != m_leo || r.log_start_offset != m_lso)
        goto bad;
    if (off == m_leo) {
        if (r.n != 0)
            goto bad;
        return 0;
    }
    int64_t total = 0;
    if (getenv("MODEL_TRACE"))
        for (int i = 0; i < r.n; i++)
            fprintf(stderr, "  range %d: %s pos %" PRId64 " len %" PRId64 "\n", i, r.r[i].seg->path,
                    r.r[i].pos, r.r[i].len);
    for (int i = 0; i < r.n; i++) {
        if (total + r.r[i].len > (int64_t)sizeof data)
            goto bad;
        if (pread(r.r[i].fd, data + total, (size_t)r.r[i].len, r.r[i].pos) != r.r[i].len)
            goto bad;
        total += r.r[i].len;
    }
    int k = mfind(off);
    if (k < 0)
        goto bad;
    int64_t p = 0;
    int whole = 0;
    while (p + BATCH_HEADER_SIZE <= total) {
        int64_t size = (int32_t)wire_be32(data + p + 8) + 12;
        if (p + size > total)
            break; /* a partial batch may end the last range */
        if (getenv("MODEL_TRACE"))
            fprintf(stderr, "  got batch %" PRId64 " size %" PRId64 " crc %d (model %" PRId64 ")\n",
                    (int64_t)wire_be64(data + p), size, batch_crc_ok(data + p, (size_t)size),
                    k < nmodel ? model[k].base : -1);
        if (k >= nmodel || (int64_t)wire_be64(data + p) != model[k].base ||
            (int32_t)wire_be32(data + p + BATCH_OFF_LEADER_EPOCH) != model[k].epoch ||
            !batch_crc_ok(data + p, (size_t)size) || data[p + size - 2] != model[k].fill)
            goto bad;
        p += size;
        k++;
        whole++;
    }
    if (whole == 0)
        goto bad; /* always at least one whole batch */
    plog_read_release(&r);
    return 0;
bad:
    fprintf(stderr,
            "model: read at %" PRId64 " max %" PRId64 " disagrees (lso %" PRId64 " leo %" PRId64 ")\n", off,
            maxb, m_lso, m_leo);
    plog_read_release(&r);
    return -1;
}

typedef struct scan_check {
    int k; /* the model batch expected next */
    int bad;
} scan_check;

static int scan_one(void *ctx, const uint8_t *b, size_t size, const batch_header *h) {
    scan_check *sc = ctx;
    if (sc->k >= nmodel || h->base_offset != model[sc->k].base ||
        h->base_offset + h->last_offset_delta != model[sc->k].last ||
        h->partition_leader_epoch != model[sc->k].epoch || b[size - 2] != model[sc->k].fill)
        sc->bad = 1;
    sc->k++;
    return 0;
}

/* plog_scan from a random offset to the end, in random chunks: every model
 * batch from the one holding the offset, once, in order. */
static int check_scan(plog *l) {
    int64_t off = m_lso + (int64_t)tl_below((uint64_t)(m_leo - m_lso + 1));
    int64_t chunk = 1 + (int64_t)tl_below(tl_below(2) ? 300 : 30000);
    scan_check sc = {off < m_leo ? mfind(off) : nmodel, 0};
    if (sc.k < 0)
        return -1;
    while (off < m_leo) {
        int64_t next;
        int rc = plog_scan(l, off, chunk, scan_one, &sc, &next);
        if (rc != 0 || next <= off || sc.bad) {
            fprintf(stderr, "model: scan at %" PRId64 " chunk %" PRId64 ": rc %d next %" PRId64 "\n", off,
                    chunk, rc, next);
            return -1;
        }
        off = next;
    }
    return sc.k == nmodel && off == m_leo ? 0 : -1;
}

static int check_ts(plog *l) {
    int64_t t = 900 + (int64_t)tl_below((uint64_t)(m_leo * 10 + 200));
    int64_t want = -1, want_ts = -1;
    /* the first record in offset order at or after the log start with a
     * timestamp >= t */
    for (int i = 0; i < nmodel && want < 0; i++) {
        mbatch *b = &model[i];
        for (int64_t o = b->base; o <= b->last; o++) {
            int64_t rts = b->ts0 + (o - b->base) * b->step;
            if (o >= m_lso && rts >= t) {
                want = o;
                want_ts = rts;
                break;
            }
        }
    }
    int64_t off, ts;
    if (plog_offset_for_time(l, t, &off, &ts) != 0)
        return -1;
    if (off != want || (want >= 0 && ts != want_ts)) {
        fprintf(stderr, "model: time %" PRId64 ": got %" PRId64 "/%" PRId64 " want %" PRId64 "/%" PRId64 "\n",
                t, off, ts, want, want_ts);
        for (int i = 0; i < nmodel; i++)
            fprintf(stderr, "  batch %" PRId64 "..%" PRId64 " ts0 %" PRId64 " step %" PRId64 "\n",
                    model[i].base, model[i].last, model[i].ts0, model[i].step);
        return -1;
    }
    return 0;
}

static int do_truncate(plog *l) {
    int64_t off = m_lso + (int64_t)tl_below((uint64_t)(m_leo - m_lso + 1));
    uint64_t where = tl_below(20);
    if (where == 0) /* below the start: the log restarts there */
        off = m_lso - (int64_t)tl_below((uint64_t)m_lso + 1);
    else if (where == 1) /* past the end: nothing changes */
        off = m_leo + (int64_t)tl_below(20);
    if (plog_truncate(l, off) != 0)
        return -1;
    if (off < m_lso) {
        nmodel = 0;
        m_lso = m_leo = off;
    } else if (off < m_leo) {
        int k = 0;
        while (k < nmodel && model[k].last < off)
            k++;
        if (k < nmodel) {
            m_leo = model[k].base;
            nmodel = k;
        }
        if (m_lso > m_leo)
            m_lso = m_leo;
    }
    return 0;
}

/* Restarts the log empty at or past its end (a follower behind a leader's
 * log start). */
static int do_truncate_fully(plog *l) {
    int64_t off = m_leo + (int64_t)tl_below(100);
    if (plog_truncate_fully(l, off) != 0 || plog_recovery_point(l) != off)
        return -1;
    nmodel = 0;
    m_lso = m_leo = off;
    return 0;
}

static int do_delete_records(plog *l) {
    int64_t off = m_lso + (int64_t)tl_below((uint64_t)(m_leo - m_lso + 1) / 4 + 1);
    int64_t ns;
    if (plog_delete_records(l, off, &ns) != 0)
        return -1;
    if (off > m_lso)
        m_lso = off;
    return ns == m_lso ? 0 : -1;
}

static void test_model(void) {
    uint64_t seed = tl_seed("test_storage_model");
    snprintf(dir, sizeof dir, "%s/m", root);
    plog_config_default(&cfg);
    cfg.segment_bytes = 4096 + (int64_t)tl_below(20000);
    cfg.index_interval_bytes = (int32_t)tl_below(2000);
    cfg.segment_index_bytes = 8 * (int32_t)(8 + tl_below(100));
    cfg.retention_ms = -1;
    storage_set_fd_limit(tl_storage(), (int)tl_below(6));
    plog *l = reopen(NULL, true);
    REQUIRE(l);
    int step;
    for (step = 0; step < STEPS; step++) {
        uint64_t op = tl_below(100);
        if (getenv("MODEL_TRACE"))
            fprintf(stderr, "step %d op %" PRIu64 " leo %" PRId64 " lso %" PRId64 "\n", step, op, m_leo,
                    m_lso);
        int rc;
        if (op < 30)
            rc = do_append(l);
        else if (op < 45)
            rc = do_append_follower(l);
        else if (op < 75)
            rc = tl_below(4) == 0 ? check_scan(l) : check_read(l);
        else if (op < 82)
            rc = check_ts(l);
        else if (op < 86)
            rc = do_truncate(l);
        else if (op < 90)
            rc = do_delete_records(l);
        else if (op < 94)
            rc = plog_roll(l, 0);
        else if (op < 97) {
            l = reopen(l, tl_below(2));
            rc = l ? 0 : -1;
        } else if (op < 99 || tl_below(4) != 0) {
            rc = plog_flush(l, 0);
        } else {
            rc = do_truncate_fully(l);
        }
        if (rc != 0 || l == NULL || plog_end_offset(l) != m_leo || plog_start_offset(l) != m_lso) {
            fprintf(stderr,
                    "model: step %d op %" PRIu64 " rc %d leo %" PRId64 "/%" PRId64 " lso %" PRId64 "/%" PRId64
                    " (seed %llu)\n",
                    step, op, rc, l ? plog_end_offset(l) : -1, m_leo, l ? plog_start_offset(l) : -1, m_lso,
                    (unsigned long long)seed);
            CHECK(0);
            break;
        }
    }
    printf("test_storage_model: %d steps, end offset %" PRId64 ", %d segments\n", step, m_leo,
           l ? plog_segment_count(l) : -1);
    if (l)
        plog_close(l);
    storage_set_fd_limit(tl_storage(), 1024);
}

int main(void) {
    root = tl_mkdtemp("storage-model");
    UNIT_RUN(test_model);
    tl_rmrf(root);
    return UNIT_END("test_storage_model");
}
