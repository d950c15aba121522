/*
 * mdlog.c - the cluster metadata log and its snapshots. See mdlog.h.
 */
#include "metadata/mdlog.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "metadata/logscan.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_records.h"
#include "storage/log.h"

#define SNAP_SUFFIX           ".checkpoint"
#define SNAP_BATCH_RECORDS    1024
#define SNAP_BATCH_BYTES      (1 << 20)
#define SNAP_PATH_MAX         4200
#define CONTROL_SNAP_HEADER   3
#define CONTROL_SNAP_FOOTER   4
#define CONTROL_LEADER_CHANGE 2
#define SNAP_READ_BATCH_MAX   (MDLOG_BATCH_MAX + 4096)

struct mdlog {
    storage_ctx *sc;
    const sl_vfs *vfs;
    char dir[SNAP_PATH_MAX];
    mdlog_config cfg;
    plog *log;
    int64_t bytes_since_snapshot;
    int64_t records_since_snapshot;
    int64_t last_snapshot_ms;
    int64_t last_snapshot_end;
    /* > 0: a batch was written past this offset but never made durable nor
     * applied (the log went offline): cut back to it when the log returns. */
    int64_t cut_to;
    int32_t snapshot_epoch;
};

void mdlog_config_default(mdlog_config *c) {
    c->segment_bytes = 64 << 20;
    c->snapshot_bytes = 20 << 20; /* Kafka's default */
    c->snapshot_interval_ms = 3600 * 1000;
    c->replay_below = INT64_MAX;
    c->keep_log = false;
}

static void seterr(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

/* ---- snapshot names ----------------------------------------------------------- */

static bool parse_snapshot_name(const char *name, int64_t *end, int32_t *epoch) {
    /* 20 digits, '-', 10 digits, ".checkpoint" */
    size_t n = strlen(name);
    if (n != 20 + 1 + 10 + sizeof SNAP_SUFFIX - 1 || name[20] != '-' || strcmp(name + 31, SNAP_SUFFIX) != 0)
        return false;
    int64_t e = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        e = e * 10 + (name[i] - '0');
    }
    int64_t ep = 0;
    for (int i = 21; i < 31; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        ep = ep * 10 + (name[i] - '0');
    }
    if (ep > INT32_MAX)
        return false;
    *end = e;
    *epoch = (int32_t)ep;
    return true;
}

static void snapshot_path(const char *dir, int64_t end, int32_t epoch, char *out, size_t outn) {
    char name[64];
    snprintf(name, sizeof name, "%020" PRId64 "-%010d" SNAP_SUFFIX, end, epoch);
    int n =
        snprintf(out, outn, "%.*s/%s", (int)(outn > sizeof name + 2 ? outn - sizeof name - 2 : 0), dir, name);
    (void)n;
}

typedef struct snap_list {
    int64_t end[MDLOG_SNAPSHOT_MAX];
    int32_t epoch[MDLOG_SNAPSHOT_MAX];
    int n;
    int skipped;
} snap_list;

static int collect_snapshot(void *ctx, const char *name, bool is_dir) {
    snap_list *l = ctx;
    int64_t end;
    int32_t epoch;
    if (is_dir || !parse_snapshot_name(name, &end, &epoch))
        return 0;
    if (l->n == MDLOG_SNAPSHOT_MAX) {
        /* Keep the newest ones: replace the oldest if this one is newer. */
        int oldest = 0;
        for (int i = 1; i < l->n; i++)
            if (l->end[i] < l->end[oldest])
                oldest = i;
        l->skipped++;
        if (end <= l->end[oldest])
            return 0;
        l->end[oldest] = end;
        l->epoch[oldest] = epoch;
        return 0;
    }
    l->end[l->n] = end;
    l->epoch[l->n++] = epoch;
    return 0;
}

/* Newest first. */
static void sort_snapshots(snap_list *l) {
    for (int i = 1; i < l->n; i++)
        for (int j = i; j > 0 && l->end[j] > l->end[j - 1]; j--) {
            int64_t e = l->end[j];
            l->end[j] = l->end[j - 1];
            l->end[j - 1] = e;
            int32_t p = l->epoch[j];
            l->epoch[j] = l->epoch[j - 1];
            l->epoch[j - 1] = p;
        }
}

/* ---- reading a snapshot ---------------------------------------------------------- */

typedef struct snap_read {
    mdlog_apply_fn fn;
    void *ctx;
    int64_t offset; /* reported for each record: end - 1 */
    int64_t records;
    bool header, footer;
} snap_read;

/* Verifies and delivers one batch of a snapshot. 0, or -1 with err. */
static int snapshot_batch(snap_read *sr, const uint8_t *b, size_t size, int index, char *err, size_t errn) {
    batch_header h;
    int e = batch_validate(b, size, true, SNAP_READ_BATCH_MAX);
    if (e != BATCH_OK || batch_parse_header(b, size, &h) != BATCH_OK) {
        seterr(err, errn, "batch %d does not verify: %s", index, batch_strerror(e));
        return -1;
    }
    arena a;
    arena_init(&a, size * 4 + (1 << 20));
    batch_iter it;
    batch_record rec;
    int rc = 0;
    if (batch_iter_init(&it, b, size, &a) != BATCH_OK) {
        seterr(err, errn, "batch %d cannot be read", index);
        rc = -1;
    }
    bool control = (h.attributes & BATCH_ATTR_CONTROL) != 0;
    while (rc == 0 && batch_iter_next(&it, &rec)) {
        if (sr->footer) {
            seterr(err, errn, "a record follows the footer in batch %d", index);
            rc = -1;
            break;
        }
        if (control) {
            int16_t ver, type;
            if (!batch_control_key(&rec, &ver, &type)) {
                seterr(err, errn, "batch %d: a control record without a control key", index);
                rc = -1;
            } else if (type == CONTROL_SNAP_HEADER) {
                if (sr->header || sr->records > 0) {
                    seterr(err, errn, "batch %d: a second or late snapshot header", index);
                    rc = -1;
                }
                sr->header = true;
            } else if (type == CONTROL_SNAP_FOOTER) {
                if (!sr->header) {
                    seterr(err, errn, "batch %d: a footer without a header", index);
                    rc = -1;
                }
                sr->footer = true;
            }
            /* Other control records (leader change, voters) carry no image state. */
            continue;
        }
        if (!sr->header) {
            seterr(err, errn, "batch %d: records before the snapshot header", index);
            rc = -1;
            break;
        }
        mdrec m;
        int dr =
            rec.value.len >= 0 ? mdrec_decode(rec.value.ptr, (size_t)rec.value.len, &a, &m) : MDREC_EFRAME;
        if (dr != MDREC_OK) {
            seterr(err, errn, "batch %d: a record does not decode: %s", index, mdrec_strerror(dr));
            rc = -1;
            break;
        }
        char why[512];
        if (sr->fn && sr->fn(sr->ctx, &m, sr->offset, true, why, sizeof why) != 0) {
            seterr(err, errn, "batch %d: %s", index, why);
            rc = -1;
            break;
        }
        sr->records++;
    }
    if (rc == 0 && it.err != BATCH_OK) {
        seterr(err, errn, "batch %d: records do not decode: %s", index, batch_strerror(it.err));
        rc = -1;
    }
    arena_reset(&a);
    return rc;
}

static int read_snapshot_file(const sl_vfs *v, const char *path, snap_read *sr, char *err, size_t errn) {
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0) {
        seterr(err, errn, "%s: cannot open: %s", path, strerror(-fd));
        return -1;
    }
    int64_t size = v->fsize(v->ctx, fd);
    uint8_t *buf = malloc(SNAP_READ_BATCH_MAX);
    int rc = 0, index = 0;
    int64_t pos = 0;
    if (buf == NULL || size < 0) {
        seterr(err, errn, "%s: cannot read", path);
        rc = -1;
    }
    while (rc == 0 && pos < size) {
        if (size - pos < BATCH_HEADER_SIZE || sl_vfs_pread_full(v, fd, buf, BATCH_HEADER_SIZE, pos) != 0) {
            seterr(err, errn, "%s: a truncated batch at byte %" PRId64, path, pos);
            rc = -1;
            break;
        }
        int64_t total = (int64_t)(int32_t)wire_be32(buf + BATCH_OFF_LENGTH) + BATCH_LOG_OVERHEAD;
        if (total < BATCH_HEADER_SIZE || total > SNAP_READ_BATCH_MAX || total > size - pos ||
            sl_vfs_pread_full(v, fd, buf, (size_t)total, pos) != 0) {
            seterr(err, errn, "%s: a bad batch length at byte %" PRId64, path, pos);
            rc = -1;
            break;
        }
        char why[768];
        if (snapshot_batch(sr, buf, (size_t)total, index, why, sizeof why) != 0) {
            seterr(err, errn, "%s: %s", path, why);
            rc = -1;
            break;
        }
        pos += total;
        index++;
    }
    if (rc == 0 && (!sr->header || !sr->footer)) {
        seterr(err, errn, "%s: the snapshot lacks its %s", path, sr->header ? "footer" : "header");
        rc = -1;
    }
    free(buf);
    v->close(v->ctx, fd);
    return rc;
}

int mdlog_read_snapshot(storage_ctx *sc, const char *path, mdlog_apply_fn fn, void *ctx, int64_t *records,
                        char *err, size_t errn) {
    const char *slash = strrchr(path, '/');
    int64_t end = 0;
    int32_t epoch = 0;
    if (!parse_snapshot_name(slash ? slash + 1 : path, &end, &epoch)) {
        seterr(err, errn, "%s is not a snapshot file name (<offset>-<epoch>.checkpoint)", path);
        return -1;
    }
    snap_read sr = {fn, ctx, end - 1, 0, false, false};
    int rc = read_snapshot_file(storage_vfs(sc), path, &sr, err, errn);
    *records = sr.records;
    return rc;
}

/* ---- writing a snapshot ------------------------------------------------------------ */

typedef struct snap_write {
    const sl_vfs *v;
    int fd;
    int64_t pos;
    int64_t next_offset; /* offsets inside the snapshot file */
    int64_t now;
    arena a;
    batch_build_record recs[SNAP_BATCH_RECORDS];
    int n;
    size_t bytes;
    int err;
} snap_write;

static int write_batch(snap_write *w, const batch_build_record *recs, int n, bool control) {
    batch_build_opts o = batch_build_defaults();
    o.base_offset = w->next_offset;
    o.leader_epoch = 0;
    if (control)
        o.extra_attributes = BATCH_ATTR_CONTROL;
    uint8_t *buf;
    size_t len;
    if (batch_build(&o, recs, n, &w->a, &buf, &len) != BATCH_OK)
        return -ENOMEM;
    int rc = sl_vfs_pwrite_full(w->v, w->fd, buf, len, w->pos);
    if (rc != 0)
        return rc;
    w->pos += (int64_t)len;
    w->next_offset += n;
    return 0;
}

static int flush_records(snap_write *w) {
    if (w->n == 0)
        return 0;
    int rc = write_batch(w, w->recs, w->n, false);
    w->n = 0;
    w->bytes = 0;
    arena_reset(&w->a);
    arena_init(&w->a, 4 * SNAP_BATCH_BYTES + (1 << 20));
    return rc;
}

static int snapshot_record(void *ctx, const mdrec *rec) {
    snap_write *w = ctx;
    uint8_t *val;
    size_t len;
    if (mdrec_encode_alloc(rec, &w->a, &val, &len) != MDREC_OK) {
        w->err = -ENOMEM;
        return 1;
    }
    w->recs[w->n++] = (batch_build_record){{NULL, -1}, {val, (int32_t)len}, w->now, 0, NULL, 0};
    w->bytes += len;
    if (w->n == SNAP_BATCH_RECORDS || w->bytes >= SNAP_BATCH_BYTES) {
        int rc = flush_records(w);
        if (rc != 0) {
            w->err = rc;
            return 1;
        }
    }
    return 0;
}

static int control_record(snap_write *w, int16_t type, const void *body, const kafka_record_info *ri) {
    uint8_t key[4] = {0, 0, (uint8_t)(type >> 8), (uint8_t)type};
    size_t n = ri->size(0, body);
    uint8_t *val = arena_alloc(&w->a, n ? n : 1);
    if (val == NULL)
        return -ENOMEM;
    wire_writer wr;
    wire_writer_init(&wr, val, n);
    if (ri->encode(&wr, 0, body) != WIRE_OK)
        return -EINVAL;
    batch_build_record r = {{key, 4}, {val, (int32_t)n}, w->now, 0, NULL, 0};
    return write_batch(w, &r, 1, true);
}

static const kafka_record_info *record_info(const char *name) {
    for (int i = 0; i < kafka_records_count; i++)
        if (strcmp(kafka_records[i].name, name) == 0)
            return &kafka_records[i];
    return NULL;
}

typedef struct rm_ctx {
    const sl_vfs *v;
    const char *dir;
    int64_t keep_end; /* keep snapshots at or after this end */
} rm_ctx;

static int remove_old(void *ctx, const char *name, bool is_dir) {
    rm_ctx *r = ctx;
    int64_t end;
    int32_t epoch;
    if (is_dir || !parse_snapshot_name(name, &end, &epoch) || end >= r->keep_end)
        return 0;
    char p[SNAP_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", r->dir, name);
    r->v->unlink(r->v->ctx, p);
    return 0;
}

int mdlog_snapshot(mdlog *m, const md_image *img, int32_t epoch, int64_t now_ms, char *err, size_t errn) {
    int64_t end = md_image_offset(img) + 1;
    if (end != plog_end_offset(m->log)) {
        seterr(err, errn, "the image is at offset %" PRId64 " but the log ends at %" PRId64, end,
               plog_end_offset(m->log));
        return -1;
    }
    if (end <= 0 || end == m->last_snapshot_end)
        return 0;
    char path[SNAP_PATH_MAX], tmp[SNAP_PATH_MAX + 8];
    snapshot_path(m->dir, end, epoch, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const sl_vfs *v = m->vfs;
    snap_write *w = calloc(1, sizeof *w);
    if (w == NULL) {
        seterr(err, errn, "out of memory");
        return -1;
    }
    w->v = v;
    w->now = now_ms;
    arena_init(&w->a, 4 * SNAP_BATCH_BYTES + (1 << 20));
    w->fd = v->open(v->ctx, tmp, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    int rc = w->fd < 0 ? w->fd : 0;
    kafka_snapshot_header_record hdr;
    kafka_snapshot_header_record_init(&hdr);
    hdr.version = 0;
    hdr.last_contained_log_timestamp = now_ms;
    const kafka_record_info *hi = record_info("SnapshotHeaderRecord"),
                            *fi = record_info("SnapshotFooterRecord");
    if (rc == 0 && (hi == NULL || fi == NULL))
        rc = -EINVAL;
    if (rc == 0)
        rc = control_record(w, CONTROL_SNAP_HEADER, &hdr, hi);
    if (rc == 0 && md_image_records(img, snapshot_record, w) != 0)
        rc = w->err ? w->err : -EIO;
    if (rc == 0)
        rc = flush_records(w);
    kafka_snapshot_footer_record ftr;
    kafka_snapshot_footer_record_init(&ftr);
    if (rc == 0)
        rc = control_record(w, CONTROL_SNAP_FOOTER, &ftr, fi);
    if (rc == 0)
        rc = v->fsync(v->ctx, w->fd);
    if (w->fd >= 0)
        v->close(v->ctx, w->fd);
    if (rc == 0)
        rc = v->rename(v->ctx, tmp, path);
    if (rc == 0)
        rc = v->fsync_dir(v->ctx, m->dir);
    arena_reset(&w->a);
    free(w);
    if (rc != 0) {
        v->unlink(v->ctx, tmp);
        seterr(err, errn, "writing snapshot %s failed: %s", path, strerror(-rc));
        return -1;
    }
    /* The snapshot is durable: the log below it is history now. Keep the
     * previous snapshot too (one bad file must not leave none). */
    int64_t prev = m->last_snapshot_end;
    m->last_snapshot_end = end;
    m->bytes_since_snapshot = 0;
    m->records_since_snapshot = 0;
    m->last_snapshot_ms = now_ms;
    /* A new segment starts at the snapshot's end, so the next start reads
     * (and verifies) only the segments from there on; the older ones stay
     * until the previous snapshot's end passes them (one damaged snapshot
     * must not leave none to start from). */
    int64_t new_start;
    plog_roll(m->log, now_ms);
    if (prev > 0 && !m->cfg.keep_log)
        plog_delete_records(m->log, prev, &new_start);
    rm_ctx r = {v, m->dir, prev > 0 ? prev : end};
    v->list(v->ctx, m->dir, remove_old, &r);
    return 0;
}

/* ---- open ------------------------------------------------------------------------------ */

typedef struct replay_ctx {
    mdlog_apply_fn fn;
    void *ctx;
    int64_t from;  /* records below come from the snapshot */
    int64_t below; /* records at or past are not applied */
    int64_t records;
    int32_t last_epoch;
} replay_ctx;

static int replay_record(void *ctx, int64_t offset, kbytes key, kbytes value, char *err, size_t errn) {
    replay_ctx *rc = ctx;
    (void)key;
    if (offset < rc->from || offset >= rc->below)
        return 0;
    arena a;
    arena_init(&a, (size_t)(value.len > 0 ? value.len : 0) * 8 + (64 << 10));
    mdrec m;
    int dr = value.len >= 0 ? mdrec_decode(value.ptr, (size_t)value.len, &a, &m) : MDREC_EFRAME;
    int r = 0;
    if (dr != MDREC_OK) {
        seterr(err, errn, "a metadata record does not decode: %s", mdrec_strerror(dr));
        r = -1;
    } else {
        r = rc->fn(rc->ctx, &m, offset, false, err, errn);
        rc->records++;
    }
    arena_reset(&a);
    return r;
}

int mdlog_open(storage_ctx *sc, const char *dir, bool was_clean, const mdlog_config *cfg, mdlog_apply_fn fn,
               void *ctx, mdlog **out, mdlog_open_info *info, char *err, size_t errn) {
    *out = NULL;
    memset(info, 0, sizeof *info);
    info->snapshot_end = -1;
    info->last_epoch = -1;
    const sl_vfs *v = storage_vfs(sc);
    sl_stat st;
    if (v->stat(v->ctx, dir, &st) != 0) {
        int rc = v->mkdir(v->ctx, dir, 0755);
        if (rc != 0 && rc != -EEXIST) {
            seterr(err, errn, "cannot create %s: %s", dir, strerror(-rc));
            return -1;
        }
    }
    snap_list snaps = {0};
    v->list(v->ctx, dir, collect_snapshot, &snaps);
    sort_snapshots(&snaps);
    /* The newest snapshot that verifies and applies. A damaged newest one is
     * skipped only if an older one plus the log still cover everything;
     * applying is all or nothing per attempt (the caller's fn sees a
     * "reset" as a snapshot record at a lower offset: it must start over,
     * so only the first verified snapshot is applied - verify first). */
    int chosen = -1;
    char first_err[1024] = "";
    for (int i = 0; i < snaps.n && chosen < 0; i++) {
        char path[SNAP_PATH_MAX];
        snapshot_path(dir, snaps.end[i], snaps.epoch[i], path, sizeof path);
        /* Verify without applying: a counting pass. */
        int64_t recs = 0;
        char why[1024];
        if (mdlog_read_snapshot(sc, path, NULL, NULL, &recs, why, sizeof why) == 0) {
            chosen = i;
        } else if (first_err[0] == '\0') {
            snprintf(first_err, sizeof first_err, "%s", why);
        }
    }
    if (chosen < 0 && snaps.n > 0) {
        seterr(err, errn,
               "no snapshot of the metadata log verifies (%s); the broker will not start without one",
               first_err);
        return -1;
    }
    int64_t from = 0;
    if (chosen >= 0) {
        char path[SNAP_PATH_MAX];
        snapshot_path(dir, snaps.end[chosen], snaps.epoch[chosen], path, sizeof path);
        snap_read sr = {fn, ctx, snaps.end[chosen] - 1, 0, false, false};
        if (read_snapshot_file(v, path, &sr, err, errn) != 0)
            return -1;
        from = snaps.end[chosen];
        info->snapshot_end = from;
        info->snapshot_records = sr.records;
        info->last_epoch = snaps.epoch[chosen];
        if (chosen > 0)
            fprintf(stderr,
                    "metadata: the newest snapshot does not verify (%s); loaded the one ending at %" PRId64
                    "\n",
                    first_err, from);
    }
    /* The log from the snapshot's end on, verified before storage opens it. */
    replay_ctx rc = {fn, ctx, from, cfg->replay_below, 0, -1};
    metalog_result res;
    char scan_err[1024];
    if (metalog_scan(sc, dir, was_clean, from, replay_record, &rc, &res, scan_err, sizeof scan_err) != 0) {
        seterr(err, errn, "%s", scan_err);
        return -1;
    }
    if (res.exists && res.end_offset < from) {
        seterr(err, errn, "the metadata log ends at %" PRId64 ", before its snapshot's end %" PRId64,
               res.end_offset, from);
        return -1;
    }
    info->log_records = rc.records;
    info->torn_tail = res.torn_tail;
    mdlog *m = calloc(1, sizeof *m);
    if (m == NULL) {
        seterr(err, errn, "out of memory");
        return -1;
    }
    m->sc = sc;
    m->vfs = v;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    m->cfg = *cfg;
    m->last_snapshot_end = from > 0 ? from : -1;
    m->snapshot_epoch = chosen >= 0 ? snaps.epoch[chosen] : 0;
    plog_config pc;
    plog_config_default(&pc);
    pc.retention_ms = -1;
    pc.retention_bytes = -1;
    pc.segment_bytes = cfg->segment_bytes;
    pc.max_message_bytes = MDLOG_BATCH_MAX;
    int e = 0;
    m->log = plog_open(sc, dir, &pc, was_clean && !res.torn_tail, &e);
    if (m->log == NULL) {
        seterr(err, errn, "cannot open the metadata log in %s: %s", dir, storage_strerror(e));
        free(m);
        return -1;
    }
    /* A log that was trimmed to a snapshot starts at its end at the latest;
     * an empty log with a snapshot continues from the snapshot. */
    if (plog_end_offset(m->log) < from) {
        if (plog_truncate_fully(m->log, from) != 0) {
            seterr(err, errn, "cannot continue the metadata log at %" PRId64, from);
            plog_close(m->log);
            free(m);
            return -1;
        }
    }
    if (plog_start_offset(m->log) > from && plog_end_offset(m->log) > plog_start_offset(m->log)) {
        seterr(err, errn,
               "the metadata log starts at %" PRId64 ", after its newest snapshot's end %" PRId64
               ": records in between are missing",
               plog_start_offset(m->log), from);
        plog_close(m->log);
        free(m);
        return -1;
    }
    if (res.exists && plog_end_offset(m->log) != res.end_offset && plog_end_offset(m->log) != from) {
        /* storage and the verified scan must agree on where the log ends */
        seterr(err, errn, "the metadata log ends at %" PRId64 " for storage but %" PRId64 " for its scan",
               plog_end_offset(m->log), res.end_offset);
        plog_close(m->log);
        free(m);
        return -1;
    }
    info->end_offset = plog_end_offset(m->log);
    *out = m;
    return 0;
}

int mdlog_close(mdlog *m) {
    if (m == NULL)
        return 0;
    int rc = plog_close(m->log);
    free(m);
    return rc;
}

int64_t mdlog_end_offset(const mdlog *m) { return plog_end_offset(m->log); }
bool mdlog_offline(const mdlog *m) { return plog_is_offline(m->log); }
int mdlog_reopen(mdlog *m) {
    int rc = plog_reopen(m->log);
    if (rc == STORAGE_OK && m->cut_to > 0) {
        if (plog_end_offset(m->log) > m->cut_to && (rc = plog_truncate(m->log, m->cut_to)) != STORAGE_OK)
            return rc;
        m->cut_to = 0;
    }
    return rc;
}
int64_t mdlog_last_snapshot_end(const mdlog *m) { return m->last_snapshot_end; }

int mdlog_append(mdlog *m, const mdrec *recs, int n, int32_t epoch, int64_t now_ms, int64_t *first,
                 int64_t *last) {
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += mdrec_size(&recs[i]) + 32;
    if (n <= 0)
        return STORAGE_INVALID_RECORD;
    if (bytes > MDLOG_BATCH_MAX)
        return STORAGE_RECORD_LIST_TOO_LARGE;
    arena a;
    arena_init(&a, bytes * 3 + (1 << 20));
    batch_build_record *br = arena_calloc(&a, (size_t)n, sizeof *br);
    int rc = br ? STORAGE_OK : STORAGE_KAFKA_STORAGE_ERROR;
    for (int i = 0; rc == STORAGE_OK && i < n; i++) {
        uint8_t *val;
        size_t len;
        if (mdrec_encode_alloc(&recs[i], &a, &val, &len) != MDREC_OK)
            rc = STORAGE_INVALID_RECORD;
        else
            br[i] = (batch_build_record){{NULL, -1}, {val, (int32_t)len}, now_ms, 0, NULL, 0};
    }
    uint8_t *buf = NULL;
    size_t blen = 0;
    if (rc == STORAGE_OK) {
        batch_build_opts o = batch_build_defaults();
        o.leader_epoch = epoch;
        if (batch_build(&o, br, n, &a, &buf, &blen) != BATCH_OK)
            rc = STORAGE_KAFKA_STORAGE_ERROR;
    }
    plog_append_info info;
    int64_t before = plog_end_offset(m->log);
    bool appended = false;
    if (rc == STORAGE_OK && (rc = plog_append(m->log, buf, blen, epoch, now_ms, &info)) == STORAGE_OK) {
        appended = true;
        rc = plog_flush(m->log, now_ms);
    }
    arena_reset(&a);
    if (rc != STORAGE_OK) {
        /* Written but not durable: it must go, so the log holds only what
         * was applied (the caller answers the change with an error). */
        if (appended && (plog_is_offline(m->log) || plog_truncate(m->log, before) != STORAGE_OK))
            m->cut_to = before;
        return rc;
    }
    *first = info.base_offset;
    *last = info.last_offset;
    m->bytes_since_snapshot += (int64_t)blen;
    m->records_since_snapshot += n;
    if (m->last_snapshot_ms == 0)
        m->last_snapshot_ms = now_ms;
    return STORAGE_OK;
}

bool mdlog_snapshot_due(const mdlog *m, int64_t now_ms) {
    if (m->records_since_snapshot == 0)
        return false;
    if (m->bytes_since_snapshot >= m->cfg.snapshot_bytes)
        return true;
    return m->cfg.snapshot_interval_ms > 0 && m->last_snapshot_ms > 0 &&
           now_ms - m->last_snapshot_ms >= m->cfg.snapshot_interval_ms;
}

void mdlog_tick(mdlog *m, int64_t now_ms) { plog_tick(m->log, now_ms); }

/* ---- the Raft log ------------------------------------------------------------------------ */

int64_t mdlog_start_offset(const mdlog *m) { return plog_start_offset(m->log); }
int32_t mdlog_snapshot_epoch(const mdlog *m) { return m->snapshot_epoch; }

int mdlog_append_raw(mdlog *m, const uint8_t *buf, size_t len, int64_t now_ms, int64_t *end_offset) {
    plog_append_info info;
    int64_t before = plog_end_offset(m->log);
    int rc = plog_append_follower(m->log, buf, len, now_ms, &info);
    if (rc == STORAGE_OK && (rc = plog_flush(m->log, now_ms)) != STORAGE_OK) {
        if (plog_is_offline(m->log) || plog_truncate(m->log, before) != STORAGE_OK)
            m->cut_to = before;
    }
    if (rc != STORAGE_OK)
        return rc;
    *end_offset = plog_end_offset(m->log);
    m->bytes_since_snapshot += (int64_t)len;
    m->records_since_snapshot += *end_offset - before;
    if (m->last_snapshot_ms == 0)
        m->last_snapshot_ms = now_ms;
    return STORAGE_OK;
}

int mdlog_append_leader_change(mdlog *m, int32_t epoch, int32_t leader_id, const int32_t *voters,
                               int n_voters, int64_t now_ms, int64_t *offset) {
    const kafka_record_info *ri = record_info("LeaderChangeMessage");
    if (ri == NULL || n_voters < 0 || n_voters > 64)
        return STORAGE_INVALID_RECORD;
    kafka_leader_change_message lc;
    kafka_leader_change_message_voter vs[64];
    kafka_leader_change_message_init(&lc);
    for (int i = 0; i < n_voters; i++) {
        kafka_leader_change_message_voter_init(&vs[i]);
        vs[i].voter_id = voters[i];
    }
    lc.version = 0;
    lc.leader_id = leader_id;
    lc.voters = vs;
    lc.voters_count = n_voters;
    lc.granting_voters = vs;
    lc.granting_voters_count = n_voters;
    arena a;
    arena_init(&a, 64 << 10);
    size_t n = ri->size(0, &lc);
    uint8_t key[4] = {0, 0, 0, CONTROL_LEADER_CHANGE};
    uint8_t *val = arena_alloc(&a, n ? n : 1);
    int rc = val ? STORAGE_OK : STORAGE_KAFKA_STORAGE_ERROR;
    wire_writer wr;
    if (rc == STORAGE_OK) {
        wire_writer_init(&wr, val, n);
        if (ri->encode(&wr, 0, &lc) != WIRE_OK)
            rc = STORAGE_INVALID_RECORD;
    }
    uint8_t *buf = NULL;
    size_t blen = 0;
    if (rc == STORAGE_OK) {
        batch_build_record r = {{key, 4}, {val, (int32_t)n}, now_ms, 0, NULL, 0};
        batch_build_opts o = batch_build_defaults();
        o.base_offset = plog_end_offset(m->log);
        o.leader_epoch = epoch;
        o.extra_attributes = BATCH_ATTR_CONTROL;
        if (batch_build(&o, &r, 1, &a, &buf, &blen) != BATCH_OK)
            rc = STORAGE_KAFKA_STORAGE_ERROR;
    }
    int64_t end = 0;
    if (rc == STORAGE_OK)
        rc = mdlog_append_raw(m, buf, blen, now_ms, &end);
    arena_reset(&a);
    if (rc == STORAGE_OK)
        *offset = end - 1;
    return rc;
}

int mdlog_truncate(mdlog *m, int64_t offset) {
    if (offset >= plog_end_offset(m->log))
        return STORAGE_OK;
    int rc = plog_truncate(m->log, offset);
    if (rc == STORAGE_OK)
        rc = plog_flush(m->log, 0);
    return rc;
}

typedef struct read_ctx {
    int64_t max_offset;
    int32_t max_bytes;
    uint8_t *buf;
    size_t len, cap;
    int64_t end;
    int err;
} read_ctx;

static int read_batch(void *ctx, const uint8_t *batch, size_t size, const batch_header *h) {
    read_ctx *r = ctx;
    if (h->base_offset >= r->max_offset || (r->len > 0 && r->len + size > (size_t)r->max_bytes))
        return 1;
    if (r->len + size > r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64 << 10;
        while (ncap < r->len + size)
            ncap *= 2;
        uint8_t *nb = realloc(r->buf, ncap);
        if (nb == NULL) {
            r->err = STORAGE_KAFKA_STORAGE_ERROR;
            return 2;
        }
        r->buf = nb;
        r->cap = ncap;
    }
    memcpy(r->buf + r->len, batch, size);
    r->len += size;
    r->end = batch_last_offset(h) + 1;
    return 0;
}

int mdlog_read(mdlog *m, int64_t offset, int64_t max_offset, int32_t max_bytes, uint8_t **buf, size_t *len,
               int64_t *end) {
    read_ctx r = {max_offset, max_bytes > 0 ? max_bytes : 1, NULL, 0, 0, offset, 0};
    int64_t at = offset, next = offset;
    while (at < max_offset && r.len < (size_t)r.max_bytes) {
        int rc = plog_scan(m->log, at, r.max_bytes, read_batch, &r, &next);
        if (rc == 2 || r.err) {
            free(r.buf);
            return r.err ? r.err : STORAGE_KAFKA_STORAGE_ERROR;
        }
        if (rc != STORAGE_OK && rc != 1) {
            free(r.buf);
            return rc;
        }
        if (rc == 1 || next <= at)
            break;
        at = next;
    }
    if (r.len == 0) {
        free(r.buf);
        return STORAGE_OFFSET_OUT_OF_RANGE;
    }
    *buf = r.buf;
    *len = r.len;
    *end = r.end;
    return STORAGE_OK;
}

typedef struct batches_ctx {
    mdlog_batch_fn fn;
    void *ctx;
    int stop;
} batches_ctx;

static int each_batch(void *ctx, const uint8_t *batch, size_t size, const batch_header *h) {
    (void)batch;
    (void)size;
    batches_ctx *b = ctx;
    b->stop = b->fn(b->ctx, h->base_offset, batch_last_offset(h), h->partition_leader_epoch,
                    (h->attributes & BATCH_ATTR_CONTROL) != 0);
    return b->stop;
}

int mdlog_batches(mdlog *m, int64_t from, mdlog_batch_fn fn, void *ctx) {
    batches_ctx b = {fn, ctx, 0};
    int64_t at = from < plog_start_offset(m->log) ? plog_start_offset(m->log) : from, next = at;
    while (at < plog_end_offset(m->log)) {
        int rc = plog_scan(m->log, at, 1 << 20, each_batch, &b, &next);
        if (b.stop)
            return b.stop;
        if (rc != STORAGE_OK)
            return rc;
        if (next <= at)
            break;
        at = next;
    }
    return 0;
}

typedef struct replay_range {
    int64_t from, to;
    mdlog_apply_fn fn;
    void *ctx;
    char *err;
    size_t errn;
    int failed;
} replay_range;

static int replay_batch(void *ctx, const uint8_t *batch, size_t size, const batch_header *h) {
    replay_range *rr = ctx;
    if (h->base_offset >= rr->to)
        return 1;
    if (h->attributes & BATCH_ATTR_CONTROL)
        return 0;
    arena a;
    arena_init(&a, size * 8 + (256 << 10));
    batch_iter it;
    batch_record rec;
    int rc = 0;
    if (batch_iter_init(&it, batch, size, &a) != BATCH_OK) {
        seterr(rr->err, rr->errn, "the batch at offset %" PRId64 " cannot be read", h->base_offset);
        rc = -1;
    }
    while (rc == 0 && batch_iter_next(&it, &rec)) {
        if (rec.offset < rr->from || rec.offset >= rr->to)
            continue;
        mdrec md;
        int dr =
            rec.value.len >= 0 ? mdrec_decode(rec.value.ptr, (size_t)rec.value.len, &a, &md) : MDREC_EFRAME;
        if (dr != MDREC_OK) {
            seterr(rr->err, rr->errn, "the metadata record at offset %" PRId64 " does not decode: %s",
                   rec.offset, mdrec_strerror(dr));
            rc = -1;
        } else if (rr->fn(rr->ctx, &md, rec.offset, false, rr->err, rr->errn) != 0) {
            rc = -1;
        }
    }
    arena_reset(&a);
    if (rc != 0)
        rr->failed = 1;
    return rc != 0 ? 2 : 0;
}

int mdlog_replay(mdlog *m, int64_t from, int64_t to, mdlog_apply_fn fn, void *ctx, char *err, size_t errn) {
    replay_range rr = {from, to, fn, ctx, err, errn, 0};
    int64_t at = from, next = from;
    if (to > plog_end_offset(m->log))
        to = rr.to = plog_end_offset(m->log);
    while (at < to) {
        int rc = plog_scan(m->log, at, 1 << 20, replay_batch, &rr, &next);
        if (rr.failed)
            return -1;
        if (rc == 1)
            break;
        if (rc != STORAGE_OK) {
            seterr(err, errn, "reading the metadata log at %" PRId64 " failed: %s", at, storage_strerror(rc));
            return -1;
        }
        if (next <= at)
            break;
        at = next;
    }
    return 0;
}
