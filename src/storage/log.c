/*
 * log.c - partition logs: open/recovery, append, read, roll, flush,
 * retention, truncation and timestamp lookup. See log.h for the contract and
 * docs/storage.md for the on-disk layout and the recovery algorithm.
 */
#include "storage/log.h"
#include "core/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/wire.h"

#define PLOG_DIR_MAX      (SEG_PATH_MAX - 32)
#define PLOG_MAX_SEGMENTS (1 << 20)
/* Bound on batches per append (a Produce partition's record set). */
#define PLOG_MAX_BATCHES_PER_APPEND 16384
#define CHECKPOINT_NAME             "log.checkpoint"
#define CLEAN_MARKER                ".clean-shutdown"
#define CLEANER_CHECKPOINT_NAME     "cleaner-offset-checkpoint"
#define CLEANED_TAG                 ".cleaned"
#define SWAP_TAG                    ".swap"

struct plog {
    pthread_mutex_t mu;
    storage_ctx *sc;
    const sl_vfs *vfs; /* sc's */
    char dir[PLOG_DIR_MAX];
    plog_config cfg;
    segment **segs;
    int nseg, cap;
    int64_t log_start_offset;
    int64_t recovery_point;
    int64_t unflushed_records;
    int64_t last_flush_ms;
    /* Set by a roll: every segment ending at or below this offset is sealed
     * and waits for plog_tick to fsync it and move the recovery point here;
     * -1 when nothing waits. */
    int64_t flush_pending_to;
    /* Bumped by anything that removes data (truncation, deletion), so a
     * background flush that ran without the mutex knows whether the offsets
     * it fsynced are still the log's. */
    uint64_t generation;
    int recovered_segments;
    int64_t recovered_bytes;
    bool offline;
    /* The cleaner's state (cleaner-offset-checkpoint): see plog_clean_state. */
    plog_clean_state clean;
};

void plog_config_default(plog_config *c) {
    memset(c, 0, sizeof *c);
    c->segment_bytes = 1LL << 30;
    c->segment_ms = 7LL * 24 * 3600 * 1000;
    c->segment_index_bytes = 10 << 20;
    c->index_interval_bytes = 4096;
    c->max_message_bytes = 1048588;
    c->flush_messages = INT64_MAX;
    c->flush_ms = INT64_MAX;
    c->retention_ms = 7LL * 24 * 3600 * 1000;
    c->retention_bytes = -1;
    c->timestamp_type = PLOG_TS_CREATE_TIME;
    c->timestamp_before_max_ms = INT64_MAX;
    c->timestamp_after_max_ms = INT64_MAX;
}

#define LIMIT(k, f, lo, hi) \
    { (k), offsetof(plog_config, f), sizeof(((plog_config *)0)->f) == 8, (lo), (hi) }
static const plog_limit limits[] = {
    LIMIT("segment.bytes", segment_bytes, PLOG_SEGMENT_BYTES_MIN, PLOG_SEGMENT_BYTES_MAX),
    LIMIT("segment.ms", segment_ms, PLOG_SEGMENT_MS_MIN, INT64_MAX),
    LIMIT("segment.index.bytes", segment_index_bytes, PLOG_SEGMENT_INDEX_BYTES_MIN, INT32_MAX),
    LIMIT("index.interval.bytes", index_interval_bytes, PLOG_INDEX_INTERVAL_MIN, INT32_MAX),
    LIMIT("max.message.bytes", max_message_bytes, PLOG_MAX_MESSAGE_BYTES_MIN, INT32_MAX),
    LIMIT("flush.messages", flush_messages, PLOG_FLUSH_MESSAGES_MIN, INT64_MAX),
    LIMIT("flush.ms", flush_ms, PLOG_FLUSH_MS_MIN, INT64_MAX),
    LIMIT("retention.ms", retention_ms, PLOG_RETENTION_MIN, INT64_MAX),
    LIMIT("retention.bytes", retention_bytes, PLOG_RETENTION_MIN, INT64_MAX),
    LIMIT("message.timestamp.before.max.ms", timestamp_before_max_ms, PLOG_TIMESTAMP_DIFF_MIN, INT64_MAX),
    LIMIT("message.timestamp.after.max.ms", timestamp_after_max_ms, PLOG_TIMESTAMP_DIFF_MIN, INT64_MAX),
};
#undef LIMIT
_Static_assert(PLOG_MAX_MESSAGE_BYTES_MIN == BATCH_HEADER_SIZE, "a batch without records must fit");

const plog_limit *plog_limits(int *n) {
    *n = (int)(sizeof limits / sizeof limits[0]);
    return limits;
}

const plog_limit *plog_limit_of(const char *key) {
    for (size_t i = 0; key != NULL && i < sizeof limits / sizeof limits[0]; i++)
        if (strcmp(limits[i].key, key) == 0)
            return &limits[i];
    return NULL;
}

int plog_config_explain(const plog_config *c, char *why, size_t whyn) {
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const plog_limit *lim = &limits[i];
        const char *f = (const char *)c + lim->offset;
        int64_t v = lim->is64 ? *(const int64_t *)f : *(const int32_t *)f;
        if (v < lim->min || v > lim->max) {
            if (why)
                snprintf(why, whyn, "%s is %" PRId64 "; storage accepts %" PRId64 " to %" PRId64, lim->key, v,
                         lim->min, lim->max);
            return -1;
        }
    }
    if (c->timestamp_type != PLOG_TS_CREATE_TIME && c->timestamp_type != PLOG_TS_LOG_APPEND_TIME) {
        if (why)
            snprintf(why, whyn, "message.timestamp.type %d is neither CreateTime nor LogAppendTime",
                     c->timestamp_type);
        return -1;
    }
    return 0;
}

int plog_config_check(const plog_config *c) { return plog_config_explain(c, NULL, 0); }

static uint32_t idx_max_entries(const plog_config *c) {
    return (uint32_t)c->segment_index_bytes / OIDX_ENTRY_SIZE;
}

static segment *active(const plog *l) {
    assert(l->nseg > 0);
    return l->segs[l->nseg - 1];
}

static int64_t leo(const plog *l) { return active(l)->next_offset; }

/* Puts the partition offline after a disk error; it stays so until reopened. */
static int go_offline(plog *l, const char *what, int err) {
    if (!l->offline)
        LOG_ERROR("storage", "partition log %s offline: %s: %s", l->dir, what,
                  strerror(err < 0 ? -err : err));
    l->offline = true;
    return STORAGE_KAFKA_STORAGE_ERROR;
}

/* ---------------- checkpoint ---------------- */

static int fsync_dir(const sl_vfs *v, const char *dir) { return v->fsync_dir(v->ctx, dir); }

/* Writes "sluice-log-checkpoint 1\n<recovery point> <log start offset>\n"
 * to a temporary file, fsyncs it and renames it over the old one, so a crash
 * leaves either the old or the new values (both safe while the values only
 * grow: older is smaller; where they come down, the caller makes the rename
 * durable with fsync_dir before relying on it). */
static int write_checkpoint(plog *l) {
    const sl_vfs *v = l->vfs;
    char path[SEG_PATH_MAX], tmp[SEG_PATH_MAX + 8], body[96];
    snprintf(path, sizeof path, "%s/" CHECKPOINT_NAME, l->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(body, sizeof body, "sluice-log-checkpoint 1\n%" PRId64 " %" PRId64 "\n",
                     l->recovery_point, l->log_start_offset);
    int fd = v->open(v->ctx, tmp, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    int rc = sl_vfs_pwrite_full(v, fd, body, (size_t)n, 0);
    if (rc == 0)
        rc = v->fsync(v->ctx, fd);
    v->close(v->ctx, fd);
    if (rc == 0)
        rc = v->rename(v->ctx, tmp, path);
    return rc;
}

static void read_checkpoint(const sl_vfs *v, const char *dir, int64_t *rp, int64_t *lso) {
    char path[SEG_PATH_MAX], body[128];
    *rp = 0;
    *lso = 0;
    snprintf(path, sizeof path, "%s/" CHECKPOINT_NAME, dir);
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return;
    ssize_t n = v->pread(v->ctx, fd, body, sizeof body - 1, 0);
    v->close(v->ctx, fd);
    if (n <= 0)
        return;
    body[n] = 0;
    long long a, b;
    if (sscanf(body, "sluice-log-checkpoint 1\n%lld %lld", &a, &b) == 2 && a >= 0 && b >= 0) {
        *rp = a;
        *lso = b;
    } else {
        LOG_WARN("storage", "ignoring unreadable %s", path);
    }
}

/* The cleaner's checkpoint: "sluice-cleaner-checkpoint 1\n<first dirty>
 * <gaps below> <next horizon>\n", written as the log checkpoint is (tmp,
 * fsync, rename). Missing or unreadable: nothing cleaned yet. */
static void clean_state_default(plog_clean_state *c) {
    c->first_dirty = 0;
    c->gaps_below = 0;
    c->next_horizon_ms = INT64_MAX;
}

static int write_clean_state(const sl_vfs *v, const char *dir, const plog_clean_state *c) {
    char path[SEG_PATH_MAX], tmp[SEG_PATH_MAX + 8], body[128];
    snprintf(path, sizeof path, "%s/" CLEANER_CHECKPOINT_NAME, dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(body, sizeof body, "sluice-cleaner-checkpoint 1\n%" PRId64 " %" PRId64 " %" PRId64 "\n",
                     c->first_dirty, c->gaps_below, c->next_horizon_ms);
    int fd = v->open(v->ctx, tmp, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    int rc = sl_vfs_pwrite_full(v, fd, body, (size_t)n, 0);
    if (rc == 0)
        rc = v->fsync(v->ctx, fd);
    v->close(v->ctx, fd);
    if (rc == 0)
        rc = v->rename(v->ctx, tmp, path);
    return rc;
}

static void read_clean_state(const sl_vfs *v, const char *dir, plog_clean_state *c) {
    char path[SEG_PATH_MAX], body[160];
    clean_state_default(c);
    snprintf(path, sizeof path, "%s/" CLEANER_CHECKPOINT_NAME, dir);
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return;
    ssize_t n = v->pread(v->ctx, fd, body, sizeof body - 1, 0);
    v->close(v->ctx, fd);
    if (n <= 0)
        return;
    body[n] = 0;
    long long a, b, h;
    if (sscanf(body, "sluice-cleaner-checkpoint 1\n%lld %lld %lld", &a, &b, &h) == 3 && a >= 0 && b >= 0) {
        c->first_dirty = a;
        c->gaps_below = b;
        c->next_horizon_ms = h;
    } else {
        /* Unknown gaps: every segment is taken as compacted (a gap is then
         * never mistaken for damage; a step backwards still is). */
        LOG_WARN("storage", "ignoring unreadable %s", path);
        c->gaps_below = INT64_MAX;
    }
}

/* ---------------- segment list ---------------- */

static int push_segment(plog *l, segment *s) {
    if (l->nseg == l->cap) {
        if (l->cap >= PLOG_MAX_SEGMENTS)
            return -ENOSPC;
        int ncap = l->cap ? l->cap * 2 : 8;
        segment **n = realloc(l->segs, (size_t)ncap * sizeof *n);
        if (n == NULL)
            return -ENOMEM;
        l->segs = n;
        l->cap = ncap;
    }
    assert(l->nseg == 0 || s->base_offset >= l->segs[l->nseg - 1]->next_offset);
    l->segs[l->nseg++] = s;
    return 0;
}

/* Removes segs[i] from the list and deletes its files. The active segment's
 * use is dropped first. Returns 0, or the error of an unlink that failed: a
 * file of the segment may then still be on disk (harmless below the log
 * start, which a reopen drops again; past the new end it would come back, so
 * truncation treats it as a disk error). */
static int drop_segment(plog *l, int i) {
    segment *s = l->segs[i];
    memmove(&l->segs[i], &l->segs[i + 1], (size_t)(l->nseg - i - 1) * sizeof *l->segs);
    l->nseg--;
    if (s->active) {
        s->active = false;
        segment_release(s);
    }
    int rc = segment_delete_files(s);
    segment_unref(s);
    return rc;
}

/* Index of the last segment whose base <= offset (0 if offset precedes all). */
static int seg_for(const plog *l, int64_t offset) {
    int lo = 0, hi = l->nseg - 1, best = 0;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (l->segs[mid]->base_offset <= offset) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

/* Creates a new empty active segment at base and makes it the last. */
static int new_active(plog *l, int64_t base, int64_t now_ms) {
    segment *s = segment_new(l->sc, l->dir, base, idx_max_entries(&l->cfg), l->cfg.index_interval_bytes);
    if (s == NULL)
        return -ENOMEM;
    int rc = segment_create_files(s);
    if (rc == 0)
        rc = segment_acquire(s);
    if (rc == 0) {
        rc = push_segment(l, s);
        if (rc != 0)
            segment_release(s);
    }
    if (rc != 0) {
        segment_delete_files(s);
        segment_unref(s);
        return rc;
    }
    s->created_ms = now_ms;
    return 0;
}

static int roll_locked(plog *l, int64_t now_ms) {
    segment *a = active(l);
    if (a->size == 0) {
        a->created_ms = now_ms;
        return 0;
    }
    int rc = segment_seal(a);
    if (rc != 0)
        return rc;
    a->max_ts_known = true;
    segment_release(a);
    rc = new_active(l, a->next_offset, now_ms);
    if (rc != 0) {
        /* Put the old one back to work so the log stays consistent. */
        if (segment_acquire(a) == 0)
            a->active = true;
        return rc;
    }
    /* As Kafka does on roll, the sealed segment is made durable and the
     * recovery point moved past it, but by plog_tick, off the append path. */
    l->flush_pending_to = a->next_offset;
    return 0;
}

/* ---------------- open / close ---------------- */

static bool parse_base(const char *name, const char *suffix, int64_t *base) {
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct bases_acc {
    const sl_vfs *vfs;
    const char *dir;
    int64_t *v;
    int n, cap;
} bases_acc;

static int collect_base(void *ctx, const char *name, bool is_dir) {
    bases_acc *a = ctx;
    const sl_vfs *vfs = a->vfs;
    int64_t base;
    size_t len = strlen(name);
    if (is_dir)
        return 0;
    if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
        char p[SEG_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", a->dir, name);
        vfs->unlink(vfs->ctx, p);
        return 0;
    }
    if (!parse_base(name, ".log", &base))
        return 0;
    if (a->n == a->cap) {
        if (a->cap >= PLOG_MAX_SEGMENTS)
            return -E2BIG;
        int cap = a->cap ? a->cap * 2 : 16;
        int64_t *nv = realloc(a->v, (size_t)cap * sizeof *nv);
        if (nv == NULL)
            return -ENOMEM;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = base;
    return 0;
}

/* Lists segment bases in dir (sorted) and removes stray temporary files. */
static int list_bases(const sl_vfs *v, const char *dir, int64_t **out, int *n_out) {
    bases_acc a = {v, dir, NULL, 0, 0};
    int rc = v->list(v->ctx, dir, collect_base, &a);
    if (rc != 0) {
        free(a.v);
        return rc;
    }
    if (a.n > 1)
        qsort(a.v, (size_t)a.n, sizeof *a.v, cmp_i64);
    *out = a.v;
    *n_out = a.n;
    return 0;
}

/* Unclean start: verify every segment from the one holding the recovery
 * point on, cutting at the first bad batch and dropping whatever follows. */
static int recover_tail(plog *l) {
    int first = seg_for(l, l->recovery_point);
    int64_t min_next = first > 0 ? l->segs[first]->base_offset : 0;
    LOG_INFO("storage",
             "%s: unclean start: verifying %d of %d segment(s) from base offset %" PRId64
             " (recovery point %" PRId64 ")",
             l->dir, l->nseg - first, l->nseg, l->segs[first]->base_offset, l->recovery_point);
    for (int i = first; i < l->nseg; i++) {
        segment *s = l->segs[i];
        int64_t cut = 0;
        int rc = segment_acquire(s);
        if (rc != 0)
            return rc;
        rc = segment_recover(s, true, true, min_next, &cut);
        segment_release(s);
        if (rc != 0)
            return rc;
        l->recovered_segments++;
        l->recovered_bytes += s->size + cut;
        /* Offsets are contiguous: the next segment starts exactly where this
         * one ends. Overlap, or a hole (this one lost its last batches
         * whole, or the next one is a leftover of a truncation), means the
         * segments after this one cannot be trusted. */
        bool gap = i + 1 < l->nseg && (s->compacted ? l->segs[i + 1]->base_offset < s->next_offset
                                                    : l->segs[i + 1]->base_offset != s->next_offset);
        if (cut > 0)
            LOG_WARN("storage", "%s: cut %" PRId64 " bytes of torn or corrupt data from %s.log", l->dir, cut,
                     s->path);
        if (cut > 0 || gap) {
            while (l->nseg > i + 1) {
                LOG_WARN("storage", "%s: dropping segment %s after corruption", l->dir,
                         l->segs[l->nseg - 1]->path);
                drop_segment(l, l->nseg - 1);
            }
        }
        min_next = s->next_offset;
    }
    return 0;
}

/* ---------------- cleaner leftovers at open ---------------- */

typedef struct swap_acc {
    const sl_vfs *vfs;
    const char *dir;
    int64_t *v;
    int n, cap;
    int rc;
} swap_acc;

static bool ends_with(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* Removes "*.cleaned" files (a clean that never committed) and collects the
 * bases of "<base>.log.swap" files (a clean that committed). */
static int collect_swap(void *ctx, const char *name, bool is_dir) {
    swap_acc *a = ctx;
    int64_t base;
    if (is_dir)
        return 0;
    if (ends_with(name, CLEANED_TAG)) {
        char p[SEG_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", a->dir, name);
        int rc = a->vfs->unlink(a->vfs->ctx, p);
        if (rc != 0 && rc != -ENOENT && a->rc == 0)
            a->rc = rc;
        return 0;
    }
    if (!parse_base(name, ".log" SWAP_TAG, &base))
        return 0;
    if (a->n == a->cap) {
        if (a->cap >= PLOG_MAX_SEGMENTS)
            return -E2BIG;
        int cap = a->cap ? a->cap * 2 : 4;
        int64_t *nv = realloc(a->v, (size_t)cap * sizeof *nv);
        if (nv == NULL)
            return -ENOMEM;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = base;
    return 0;
}

/* Finishes one committed swap: <base>.log.swap holds the cleaned batches of
 * the segments from base on; every segment whose base lies in (base, last
 * offset of the swap] was one of them and goes, then the swap files take
 * the base's names. */
static int finish_swap(storage_ctx *sc, const char *dir, const plog_config *cfg, int64_t base,
                       const int64_t *bases, int nb) {
    segment *s = segment_new(sc, dir, base, idx_max_entries(cfg), cfg->index_interval_bytes);
    if (s == NULL)
        return -ENOMEM;
    s->compacted = true;
    int rc = segment_set_tag(s, SWAP_TAG) == 0 ? segment_stat(s) : -ENAMETOOLONG;
    if (rc == 0)
        rc = segment_acquire(s);
    if (rc != 0) {
        segment_unref(s);
        return rc;
    }
    s->active = false;
    rc = segment_recover(s, true, false, 0, NULL); /* learns the last offset; writes .swap indexes */
    int64_t last = s->next_offset - 1;
    for (int i = 0; rc == 0 && i < nb; i++) {
        if (bases[i] <= base || bases[i] > last)
            continue;
        segment *old = segment_new(sc, dir, bases[i], 1, 0);
        if (old == NULL) {
            rc = -ENOMEM;
            break;
        }
        rc = segment_delete_files(old);
        segment_unref(old);
    }
    if (rc == 0)
        rc = segment_rename_tag(s, "");
    segment_release(s);
    segment_unref(s);
    if (rc == 0)
        rc = storage_vfs(sc)->fsync_dir(storage_vfs(sc)->ctx, dir);
    if (rc == 0)
        LOG_INFO("storage", "%s: finished the swap of a cleaned segment at base offset %" PRId64, dir, base);
    return rc;
}

static int recover_cleaner_files(storage_ctx *sc, const char *dir, const plog_config *cfg) {
    const sl_vfs *v = storage_vfs(sc);
    swap_acc a = {v, dir, NULL, 0, 0, 0};
    int rc = v->list(v->ctx, dir, collect_swap, &a);
    if (rc == 0)
        rc = a.rc;
    if (rc == 0 && a.n > 0) {
        int64_t *bases = NULL;
        int nb = 0;
        rc = list_bases(v, dir, &bases, &nb);
        if (a.n > 1)
            qsort(a.v, (size_t)a.n, sizeof *a.v, cmp_i64);
        for (int i = 0; rc == 0 && i < a.n; i++)
            rc = finish_swap(sc, dir, cfg, a.v[i], bases, nb);
        free(bases);
    }
    free(a.v);
    return rc;
}

int plog_set_config(plog *l, const plog_config *cfg) {
    if (plog_config_check(cfg) != 0)
        return -1;
    pthread_mutex_lock(&l->mu);
    l->cfg = *cfg;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

plog *plog_open(storage_ctx *sc, const char *dir, const plog_config *cfg, bool clean, int *err) {
    int64_t *bases = NULL;
    int nb = 0, rc;
    plog *l = NULL;
    const char *what = "open";
    if (sc == NULL || plog_config_check(cfg) != 0 || strlen(dir) >= PLOG_DIR_MAX) {
        *err = STORAGE_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        *err = STORAGE_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->sc = sc;
    l->vfs = storage_vfs(sc);
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    l->cfg = *cfg;
    l->flush_pending_to = -1;
    rc = l->vfs->mkdir(l->vfs->ctx, dir, 0755);
    if (rc != 0 && rc != -EEXIST) {
        what = "mkdir";
        goto err;
    }
    read_checkpoint(l->vfs, dir, &l->recovery_point, &l->log_start_offset);
    read_clean_state(l->vfs, dir, &l->clean);
    rc = recover_cleaner_files(sc, dir, cfg);
    if (rc != 0) {
        what = "finish an interrupted clean";
        goto err;
    }
    rc = list_bases(l->vfs, dir, &bases, &nb);
    if (rc != 0) {
        what = "list segments";
        goto err;
    }
    for (int i = 0; i < nb; i++) {
        segment *s = segment_new(sc, dir, bases[i], idx_max_entries(cfg), cfg->index_interval_bytes);
        rc = s ? segment_stat(s) : -ENOMEM;
        if (rc == 0)
            rc = push_segment(l, s);
        if (rc != 0) {
            if (s)
                segment_unref(s);
            what = "load segment";
            goto err;
        }
        /* An inactive segment ends where the next begins. */
        if (i > 0)
            l->segs[i - 1]->next_offset = s->base_offset;
        s->compacted = s->base_offset < l->clean.gaps_below;
        s->created_ms = -1; /* unknown: the segment.ms clock starts at the next append */
    }
    if (l->nseg == 0) {
        rc = new_active(l, l->log_start_offset, -1);
        if (rc != 0) {
            what = "create segment";
            goto err;
        }
        l->recovery_point = l->log_start_offset;
    } else {
        if (!clean) {
            rc = recover_tail(l);
            if (rc != 0) {
                what = "recover";
                goto err;
            }
            /* The verified sealed segments are fsynced by the next plog_tick
             * (the roll flush), which moves the recovery point past them:
             * until then the cleaner, which works below it, would leave a
             * log that takes no new appends uncleaned. */
            if (l->nseg > 1)
                l->flush_pending_to = l->segs[l->nseg - 1]->base_offset;
        }
        segment *a = active(l);
        a->active = true;
        rc = segment_acquire(a);
        if (rc == 0)
            rc = segment_load_indexes(a);
        if (rc != 0) {
            what = "load active segment";
            goto err;
        }
    }
    if (l->log_start_offset < l->segs[0]->base_offset)
        l->log_start_offset = l->segs[0]->base_offset;
    if (l->log_start_offset > leo(l))
        l->log_start_offset = leo(l);
    if (l->recovery_point > leo(l)) {
        /* Data below the old recovery point was lost or damaged: the point
         * must come down with it. (After an ordinary unclean start it stays
         * where it was: the verified tail is not fsynced here, so a second
         * crash simply scans it again.) */
        l->recovery_point = leo(l);
        if ((rc = write_checkpoint(l)) != 0) {
            what = "write checkpoint";
            goto err;
        }
    }
    free(bases);
    *err = STORAGE_OK;
    return l;
err:
    LOG_ERROR("storage", "cannot open partition log %s: %s: %s", dir, what, strerror(-rc));
    free(bases);
    if (l) {
        for (int i = l->nseg - 1; i >= 0; i--) {
            segment *s = l->segs[i];
            if (s->active && s->users > 0)
                segment_release(s);
            segment_unref(s);
        }
        free(l->segs);
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
    *err = STORAGE_KAFKA_STORAGE_ERROR;
    return NULL;
}

static int flush_locked(plog *l, int64_t now_ms) {
    if (l->offline)
        return STORAGE_KAFKA_STORAGE_ERROR;
    int64_t end = leo(l);
    for (int i = seg_for(l, l->recovery_point); i < l->nseg; i++) {
        segment *s = l->segs[i];
        int rc = segment_acquire(s);
        if (rc == 0) {
            rc = segment_flush(s, true);
            segment_release(s);
        }
        if (rc != 0)
            return go_offline(l, "flush", rc);
    }
    int rc = fsync_dir(l->vfs, l->dir);
    if (rc != 0)
        return go_offline(l, "fsync directory", rc);
    l->recovery_point = end;
    if (l->flush_pending_to <= end)
        l->flush_pending_to = -1;
    rc = write_checkpoint(l);
    if (rc != 0)
        return go_offline(l, "write checkpoint", rc);
    l->unflushed_records = 0;
    l->last_flush_ms = now_ms;
    return STORAGE_OK;
}

static void free_log(plog *l) {
    for (int i = l->nseg - 1; i >= 0; i--) {
        segment *s = l->segs[i];
        if (s->active) {
            s->active = false;
            segment_release(s);
        }
        segment_unref(s);
    }
    free(l->segs);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int plog_close(plog *l) {
    pthread_mutex_lock(&l->mu);
    int rc = l->offline ? STORAGE_KAFKA_STORAGE_ERROR : flush_locked(l, 0);
    pthread_mutex_unlock(&l->mu);
    free_log(l);
    return rc;
}

int plog_delete(plog *l) {
    pthread_mutex_lock(&l->mu);
    while (l->nseg > 0)
        drop_segment(l, l->nseg - 1);
    char p[SEG_PATH_MAX];
    snprintf(p, sizeof p, "%s/" CHECKPOINT_NAME, l->dir);
    l->vfs->unlink(l->vfs->ctx, p);
    snprintf(p, sizeof p, "%s/" CLEANER_CHECKPOINT_NAME, l->dir);
    l->vfs->unlink(l->vfs->ctx, p);
    int rc = STORAGE_OK;
    int r = l->vfs->rmdir(l->vfs->ctx, l->dir);
    if (r != 0) {
        LOG_WARN("storage", "cannot remove %s: %s", l->dir, strerror(-r));
        rc = STORAGE_KAFKA_STORAGE_ERROR;
    }
    pthread_mutex_unlock(&l->mu);
    free_log(l);
    return rc;
}

/* ---------------- append ---------------- */

static int map_batch_err(int e) {
    switch (e) {
    case BATCH_OK:
        return STORAGE_OK;
    case BATCH_EMAGIC:
        return STORAGE_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    case BATCH_ERECORDS:
        return STORAGE_INVALID_RECORD;
    case BATCH_ECODEC:
        return STORAGE_UNSUPPORTED_COMPRESSION_TYPE;
    case BATCH_ETIMESTAMP:
        return STORAGE_INVALID_TIMESTAMP;
    default: /* CRC, truncation, bad header, corrupt compressed data, size cap */
        return STORAGE_CORRUPT_MESSAGE;
    }
}

static int refuse(plog_append_info *info, int err, int32_t batch, int32_t record, const char *msg) {
    if (info != NULL) {
        info->error_batch = batch;
        info->error_record = record;
        snprintf(info->error_msg, sizeof info->error_msg, "%s", msg);
    }
    return err;
}

/* Checks every batch of buf without touching the log (batch_check with
 * producer rules: one pass over each batch's records). Fills b[] with the
 * batches' positions in buf and their offset spans relative to 0. */
static int validate(const plog_config *cfg, const uint8_t *buf, size_t len, int64_t now_ms, seg_batch *b,
                    int *nb, int64_t *records, plog_append_info *info, bool marker) {
    size_t pos = 0;
    int n = 0;
    *records = 0;
    if (len == 0)
        return refuse(info, STORAGE_CORRUPT_MESSAGE, 0, -1, "no record batch");
    if ((int64_t)len > cfg->segment_bytes)
        return STORAGE_RECORD_LIST_TOO_LARGE;
    batch_rules rules = {
        .max_uncompressed = (size_t)cfg->max_message_bytes * 64,
        .producer = !marker, /* a marker is the broker's own control batch */
        .check_timestamps = cfg->timestamp_type == PLOG_TS_CREATE_TIME,
        .now_ms = now_ms,
        .ts_before_max_ms = cfg->timestamp_before_max_ms,
        .ts_after_max_ms = cfg->timestamp_after_max_ms,
    };
    batch_fault f;
    while (pos < len) {
        batch_header h;
        if (n == PLOG_MAX_BATCHES_PER_APPEND)
            return STORAGE_RECORD_LIST_TOO_LARGE;
        if (len - pos < BATCH_HEADER_SIZE)
            return refuse(info, STORAGE_CORRUPT_MESSAGE, n, -1, "truncated record batch");
        /* Check the size first so an oversized batch gets the right error. */
        int64_t claimed = (int64_t)(int32_t)wire_be32(buf + pos + BATCH_OFF_LENGTH) + BATCH_LOG_OVERHEAD;
        if (claimed > cfg->max_message_bytes && claimed <= (int64_t)(len - pos))
            return STORAGE_MESSAGE_TOO_LARGE;
        int e = batch_parse_header(buf + pos, len - pos, &h);
        if (e != BATCH_OK)
            return refuse(info, map_batch_err(e), n, -1, batch_strerror(e));
        size_t size = (size_t)batch_total_size(&h);
        e = batch_check(buf + pos, size, &rules, &f);
        if (e != BATCH_OK)
            return refuse(info, map_batch_err(e), n, f.record, f.msg);
        assert(h.record_count >= 1 && h.last_offset_delta == h.record_count - 1);
        b[n] = (seg_batch){.pos = (int64_t)pos,
                           .base_offset = 0,
                           .last_offset = h.last_offset_delta,
                           .size = (int64_t)size,
                           .max_ts = h.max_timestamp,
                           .attributes = h.attributes,
                           .record_count = h.record_count};
        *records += h.record_count;
        n++;
        pos += size;
    }
    *nb = n;
    return STORAGE_OK;
}

static bool needs_roll(const plog *l, const segment *a, size_t len, int64_t last_offset, int64_t now_ms) {
    if (a->size == 0)
        return false;
    if (a->size + (int64_t)len > l->cfg.segment_bytes)
        return true;
    if (now_ms - a->created_ms >= l->cfg.segment_ms)
        return true;
    /* keep one slot for the final time-index entry written on roll */
    if (a->oi.count + 1 >= a->oi.max_entries || a->ti.count + 2 >= a->ti.max_entries)
        return true;
    return last_offset - a->base_offset > INT32_MAX;
}

/* Room for the batch descriptions of an append of len bytes: a stack array
 * for the usual few batches, else an allocation (bounded by the per-append
 * batch limit). NULL on allocation failure. */
static seg_batch *batch_slots(size_t len, seg_batch *stack, size_t nstack) {
    size_t maxb = len / BATCH_HEADER_SIZE + 1;
    if (maxb <= nstack)
        return stack;
    if (maxb > PLOG_MAX_BATCHES_PER_APPEND)
        maxb = PLOG_MAX_BATCHES_PER_APPEND;
    return malloc(maxb * sizeof(seg_batch));
}

static void clear_info(plog_append_info *info) {
    if (info) {
        info->error_batch = -1;
        info->error_record = -1;
        info->error_msg[0] = 0;
    }
}

/* The part of both appends under the mutex once the batches b[0..nb) of buf
 * carry their final offsets: roll if due, one write, the flush policy. The
 * first batch starts at the log end offset. log_append_time (-1: none) is
 * reported in info. Inlined into both appends: as a call it cost the hot
 * path about 40 instructions per append (callgrind, bench_storage). */
__attribute__((always_inline)) static inline int append_locked(plog *l, const uint8_t *buf, size_t len,
                                                               const seg_batch *b, int nb, int64_t records,
                                                               int64_t now_ms, int64_t log_append_time,
                                                               plog_append_info *info) {
    assert(nb > 0 && b[0].base_offset == leo(l));
    int64_t next = b[nb - 1].last_offset + 1;
    if (active(l)->size == 0 || active(l)->created_ms < 0)
        active(l)->created_ms = now_ms;
    if (needs_roll(l, active(l), len, next - 1, now_ms)) {
        int r = roll_locked(l, now_ms);
        if (r != 0)
            return go_offline(l, "roll", r);
    }
    segment *a = active(l);
    int r = segment_append(a, buf, len, b, nb);
    if (r != 0)
        return go_offline(l, "append", r);
    assert(a->next_offset == next);
    l->unflushed_records += records;
    if (info) {
        info->base_offset = b[0].base_offset;
        info->last_offset = next - 1;
        info->log_append_time = log_append_time;
        info->log_start_offset = l->log_start_offset;
        info->batches = nb;
        info->records = records;
    }
    if (l->unflushed_records >= l->cfg.flush_messages ||
        (l->cfg.flush_ms != INT64_MAX && now_ms - l->last_flush_ms >= l->cfg.flush_ms))
        return flush_locked(l, now_ms);
    return STORAGE_OK;
}

static int append_leader(plog *l, uint8_t *buf, size_t len, int32_t leader_epoch, int64_t now_ms,
                         plog_append_info *info, bool marker) {
    seg_batch stack_b[64];
    seg_batch *b = batch_slots(len, stack_b, 64);
    int nb = 0, rc;
    int64_t records = 0;
    if (b == NULL)
        return STORAGE_KAFKA_STORAGE_ERROR;
    clear_info(info);
    /* Validation needs only the config, so the records are walked (and
     * decompressed) without the mutex: appends to one partition queue only
     * for the write itself. */
    pthread_mutex_lock(&l->mu);
    plog_config cfg = l->cfg;
    pthread_mutex_unlock(&l->mu);
    rc = validate(&cfg, buf, len, now_ms, b, &nb, &records, info, marker);
    pthread_mutex_lock(&l->mu);
    if (rc == STORAGE_OK && l->offline)
        rc = STORAGE_KAFKA_STORAGE_ERROR;
    if (rc != STORAGE_OK)
        goto out;
    int64_t next = leo(l);
    for (int i = 0; i < nb; i++) {
        uint8_t *p = buf + b[i].pos;
        int64_t delta = b[i].last_offset;
        batch_set_base_offset(p, next);
        batch_set_leader_epoch(p, leader_epoch);
        if (l->cfg.timestamp_type == PLOG_TS_LOG_APPEND_TIME) {
            batch_set_log_append_time(p, (size_t)b[i].size, now_ms);
            b[i].max_ts = now_ms;
        }
        b[i].base_offset = next;
        b[i].last_offset = next + delta;
        b[i].leader_epoch = leader_epoch;
        next += delta + 1;
    }
    int64_t lat = l->cfg.timestamp_type == PLOG_TS_LOG_APPEND_TIME ? now_ms : -1;
    rc = append_locked(l, buf, len, b, nb, records, now_ms, lat, info);
out:
    pthread_mutex_unlock(&l->mu);
    if (b != stack_b)
        free(b);
    return rc;
}

/* The follower's check of buf (see plog_append_follower): fills b[] with the
 * batches as they are, offsets included. Needs no log state but the config;
 * the log end offset is checked by the caller under the mutex. */
static int validate_follower(const plog_config *cfg, const uint8_t *buf, size_t len, seg_batch *b, int *nb,
                             int64_t *records, plog_append_info *info) {
    size_t pos = 0;
    int n = 0;
    *records = 0;
    if (len == 0)
        return refuse(info, STORAGE_CORRUPT_MESSAGE, 0, -1, "no record batch");
    if ((int64_t)len > cfg->segment_bytes)
        return refuse(info, STORAGE_RECORD_LIST_TOO_LARGE, 0, -1,
                      "more bytes than segment.bytes in one append");
    while (pos < len) {
        batch_header h;
        char msg[PLOG_ERROR_MSG];
        if (n == PLOG_MAX_BATCHES_PER_APPEND)
            return refuse(info, STORAGE_RECORD_LIST_TOO_LARGE, n, -1, "too many batches in one append");
        int e = batch_parse_header(buf + pos, len - pos, &h);
        if (e != BATCH_OK)
            return refuse(info, map_batch_err(e), n, -1, batch_strerror(e));
        int64_t size = batch_total_size(&h);
        if (size > SEG_MAX_BATCH_BYTES)
            return refuse(info, STORAGE_MESSAGE_TOO_LARGE, n, -1, "batch larger than storage can hold");
        e = batch_validate(buf + pos, (size_t)size, false, 0);
        if (e != BATCH_OK)
            return refuse(info, map_batch_err(e), n, -1, batch_strerror(e));
        if (h.base_offset < 0 || h.base_offset > INT64_MAX - h.last_offset_delta - 1)
            return refuse(info, STORAGE_CORRUPT_MESSAGE, n, -1, "batch base offset out of range");
        if (n > 0 && h.base_offset != b[n - 1].last_offset + 1) {
            snprintf(msg, sizeof msg, "batch %d starts at offset %" PRId64 ", expected %" PRId64, n,
                     h.base_offset, b[n - 1].last_offset + 1);
            return refuse(info, STORAGE_CORRUPT_MESSAGE, n, -1, msg);
        }
        b[n] = (seg_batch){.pos = (int64_t)pos,
                           .base_offset = h.base_offset,
                           .last_offset = h.base_offset + h.last_offset_delta,
                           .size = size,
                           .max_ts = h.max_timestamp,
                           .attributes = h.attributes,
                           .leader_epoch = h.partition_leader_epoch,
                           .record_count = h.record_count};
        *records += h.record_count;
        n++;
        pos += (size_t)size;
    }
    *nb = n;
    return STORAGE_OK;
}

int plog_append(plog *l, uint8_t *buf, size_t len, int32_t leader_epoch, int64_t now_ms,
                plog_append_info *info) {
    return append_leader(l, buf, len, leader_epoch, now_ms, info, false);
}

int plog_append_marker(plog *l, uint8_t *buf, size_t len, int32_t leader_epoch, int64_t now_ms,
                       plog_append_info *info) {
    return append_leader(l, buf, len, leader_epoch, now_ms, info, true);
}

int plog_append_follower(plog *l, const uint8_t *buf, size_t len, int64_t now_ms, plog_append_info *info) {
    seg_batch stack_b[64];
    seg_batch *b = batch_slots(len, stack_b, 64);
    int nb = 0, rc;
    int64_t records = 0;
    if (b == NULL)
        return STORAGE_KAFKA_STORAGE_ERROR;
    clear_info(info);
    pthread_mutex_lock(&l->mu);
    plog_config cfg = l->cfg;
    pthread_mutex_unlock(&l->mu);
    rc = validate_follower(&cfg, buf, len, b, &nb, &records, info);
    pthread_mutex_lock(&l->mu);
    if (rc == STORAGE_OK && l->offline)
        rc = STORAGE_KAFKA_STORAGE_ERROR;
    if (rc == STORAGE_OK && b[0].base_offset != leo(l)) {
        char msg[PLOG_ERROR_MSG];
        snprintf(msg, sizeof msg, "first batch starts at offset %" PRId64 " but the log ends at %" PRId64,
                 b[0].base_offset, leo(l));
        rc = refuse(info, STORAGE_UNEXPECTED_OFFSET, 0, -1, msg);
    }
    if (rc == STORAGE_OK)
        rc = append_locked(l, buf, len, b, nb, records, now_ms, -1, info);
    pthread_mutex_unlock(&l->mu);
    if (b != stack_b)
        free(b);
    return rc;
}

/* ---------------- read ---------------- */

void plog_read_release(plog_read_result *res) {
    for (int i = 0; i < res->n; i++)
        segment_unpin(res->r[i].seg);
    res->n = 0;
    res->bytes = 0;
}

int plog_read(plog *l, int64_t offset, int64_t max_bytes, int64_t max_offset, plog_read_result *res) {
    int rc = STORAGE_OK;
    res->n = 0;
    res->bytes = 0;
    pthread_mutex_lock(&l->mu);
    res->log_end_offset = leo(l);
    res->log_start_offset = l->log_start_offset;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    if (offset < l->log_start_offset || offset > leo(l)) {
        rc = STORAGE_OFFSET_OUT_OF_RANGE;
        goto out;
    }
    int64_t stop = max_offset < 0 || max_offset > leo(l) ? leo(l) : max_offset;
    int64_t left = max_bytes < 0 ? 0 : max_bytes;
    for (int i = seg_for(l, offset); i < l->nseg && res->n < PLOG_MAX_RANGES && offset < stop; i++) {
        segment *s = l->segs[i];
        if (res->n > 0 && left <= 0)
            break;
        int r = segment_pin(s);
        if (r != 0) {
            rc = go_offline(l, "open segment", r);
            goto out;
        }
        seg_batch first;
        r = segment_find(s, offset, &first);
        if (r <= 0) {
            segment_unpin(s);
            if (r < 0) {
                rc = go_offline(l, "read", r);
                goto out;
            }
            continue; /* nothing at or past offset here: try the next one */
        }
        if (first.base_offset >= stop) {
            segment_unpin(s);
            break;
        }
        int64_t end = s->size;
        if (stop < s->next_offset) {
            seg_batch lim;
            r = segment_find(s, stop, &lim);
            if (r < 0) {
                segment_unpin(s);
                rc = go_offline(l, "read", r);
                goto out;
            }
            /* the batch holding stop starts below it: leave it out only if
             * it starts at or after stop */
            if (r == 1)
                end = lim.base_offset >= stop ? lim.pos : lim.pos + lim.size;
        }
        int64_t len = end - first.pos;
        if (len > left)
            len = res->n == 0 && first.size > left ? first.size : left;
        if (len <= 0) {
            segment_unpin(s);
            break;
        }
        res->r[res->n++] = (plog_range){s, s->fd, first.pos, len};
        res->bytes += len;
        left -= len;
        offset = s->next_offset;
    }
out:
    pthread_mutex_unlock(&l->mu);
    if (rc != STORAGE_OK)
        plog_read_release(res);
    return rc;
}

/* ---------------- scan ---------------- */

int plog_scan(plog *l, int64_t from_offset, int64_t max_bytes, plog_scan_fn fn, void *ctx, int64_t *next) {
    if (next)
        *next = from_offset;
    plog_read_result res;
    int rc = plog_read(l, from_offset, max_bytes > 0 ? max_bytes : 1, -1, &res);
    if (rc != STORAGE_OK || res.n == 0)
        return rc;
    /* plog_read returns at most max_bytes, or the whole first batch, which
     * storage never lets exceed SEG_MAX_BATCH_BYTES in a segment. */
    size_t len = (size_t)res.bytes;
    uint8_t *buf = malloc(len);
    if (buf == NULL) {
        plog_read_release(&res);
        return STORAGE_KAFKA_STORAGE_ERROR;
    }
    size_t got = 0;
    for (int i = 0; i < res.n && rc == STORAGE_OK; i++) {
        int r = sl_vfs_pread_full(l->vfs, res.r[i].fd, buf + got, (size_t)res.r[i].len, res.r[i].pos);
        if (r != 0) {
            LOG_WARN("storage", "%s: cannot read %s.log at %" PRId64 ": %s", l->dir, res.r[i].seg->path,
                     res.r[i].pos, strerror(-r));
            rc = STORAGE_KAFKA_STORAGE_ERROR;
        }
        got += (size_t)res.r[i].len;
    }
    plog_read_release(&res);
    batch_cursor cur;
    batch_cursor_init(&cur, buf, got);
    int handed = 0;
    while (rc == STORAGE_OK) {
        const uint8_t *bp;
        size_t bsize;
        batch_header h;
        int e = batch_cursor_next(&cur, &bp, &bsize, &h);
        if (e == -1 || (e == BATCH_ETRUNC && handed > 0))
            break; /* the end, or a batch the byte limit cut */
        if (e != BATCH_OK || !batch_crc_ok(bp, bsize)) {
            LOG_WARN("storage", "%s: bad batch at or after offset %" PRId64 ": %s", l->dir,
                     next ? *next : from_offset, e != BATCH_OK ? batch_strerror(e) : "CRC mismatch");
            rc = STORAGE_CORRUPT_MESSAGE;
            break;
        }
        int r = fn(ctx, bp, bsize, &h);
        if (r != 0) {
            rc = r;
            break;
        }
        handed++;
        if (next)
            *next = h.base_offset + h.last_offset_delta + 1;
    }
    free(buf);
    return rc;
}

/* ---------------- flush, roll, retention, truncation ---------------- */

int plog_flush(plog *l, int64_t now_ms) {
    pthread_mutex_lock(&l->mu);
    int rc = flush_locked(l, now_ms);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int plog_roll(plog *l, int64_t now_ms) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_KAFKA_STORAGE_ERROR;
    if (!l->offline) {
        int r = roll_locked(l, now_ms);
        rc = r == 0 ? STORAGE_OK : go_offline(l, "roll", r);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Largest timestamp of an inactive segment, loading its time index if need
 * be; falls back to the file's mtime when it holds no timestamps. */
static int64_t segment_age_ts(plog *l, segment *s) {
    if (!s->max_ts_known) {
        if (segment_acquire(s) == 0) {
            if (segment_load_indexes(s) != 0)
                go_offline(l, "load index", EIO);
            segment_release(s);
        }
    }
    if (s->max_ts >= 0)
        return s->max_ts;
    sl_stat st;
    char p[SEG_PATH_MAX + 8];
    snprintf(p, sizeof p, "%s.log", s->path);
    if (l->vfs->stat(l->vfs->ctx, p, &st) != 0)
        return INT64_MAX; /* unknown age: keep it */
    return st.mtime_ms;
}

static int retention_locked(plog *l, int64_t now_ms, int *deleted) {
    int n = 0;
    int64_t total = 0;
    for (int i = 0; i < l->nseg; i++)
        total += l->segs[i]->size;
    while (l->nseg > 1) {
        segment *s = l->segs[0];
        bool del = s->next_offset <= l->log_start_offset;
        if (!del && l->cfg.retention_bytes >= 0 && total - s->size >= l->cfg.retention_bytes)
            del = true;
        if (!del && l->cfg.retention_ms >= 0 && segment_age_ts(l, s) < now_ms - l->cfg.retention_ms)
            del = true;
        if (!del)
            break;
        total -= s->size;
        drop_segment(l, 0);
        n++;
    }
    int rc = STORAGE_OK;
    if (n > 0) {
        if (l->log_start_offset < l->segs[0]->base_offset)
            l->log_start_offset = l->segs[0]->base_offset;
        int r = write_checkpoint(l);
        if (r != 0)
            rc = go_offline(l, "write checkpoint", r);
    }
    if (deleted)
        *deleted = n;
    return rc;
}

int plog_retention(plog *l, int64_t now_ms, int *deleted) {
    pthread_mutex_lock(&l->mu);
    int rc = l->offline ? STORAGE_KAFKA_STORAGE_ERROR : retention_locked(l, now_ms, deleted);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* fsyncs one index file of a sealed segment by name (its contents were
 * written at the seal; the in-memory arrays are not touched). A missing
 * file is fine: indexes are rebuilt from the log when absent. */
static int fsync_path(const sl_vfs *v, const char *path) {
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    int rc = v->fsync(v->ctx, fd);
    v->close(v->ctx, fd);
    return rc;
}

/* The flush a roll asked for (flush_pending_to), called and returning with
 * the mutex held but dropping it for the fsyncs: the sealed segments from
 * the one holding the recovery point up to the pending offset are pinned,
 * fsynced (log, then index files) with the mutex released, so appends go on
 * meanwhile, and then the recovery point moves to the end of the last of
 * them and is checkpointed. If data was removed meanwhile (truncation) the
 * point is left alone; a later flush covers it. At most
 * PLOG_ROLL_FLUSH_MAX segments per call; the rest wait for the next tick. */
#define PLOG_ROLL_FLUSH_MAX 64
static int roll_flush(plog *l) {
    if (l->flush_pending_to <= l->recovery_point) {
        l->flush_pending_to = -1;
        return STORAGE_OK;
    }
    segment *pinned[PLOG_ROLL_FLUSH_MAX];
    int fds[PLOG_ROLL_FLUSH_MAX];
    int n = 0;
    for (int i = seg_for(l, l->recovery_point); i < l->nseg && n < PLOG_ROLL_FLUSH_MAX; i++) {
        segment *s = l->segs[i];
        if (s->active || s->next_offset > l->flush_pending_to)
            break;
        int r = segment_pin(s);
        if (r != 0) {
            for (int k = 0; k < n; k++)
                segment_unpin(pinned[k]);
            return go_offline(l, "open segment", r);
        }
        pinned[n] = s;
        fds[n] = s->fd;
        n++;
    }
    if (n == 0) {
        l->flush_pending_to = -1;
        return STORAGE_OK;
    }
    int64_t upto = pinned[n - 1]->next_offset;
    uint64_t gen = l->generation;
    pthread_mutex_unlock(&l->mu);
    int rc = 0;
    const sl_vfs *v = l->vfs;
    for (int k = 0; k < n && rc == 0; k++) {
        char p[SEG_PATH_MAX + 16];
        rc = v->fsync(v->ctx, fds[k]);
        snprintf(p, sizeof p, "%s.index", pinned[k]->path);
        if (rc == 0)
            rc = fsync_path(v, p);
        snprintf(p, sizeof p, "%s.timeindex", pinned[k]->path);
        if (rc == 0)
            rc = fsync_path(v, p);
    }
    if (rc == 0)
        rc = fsync_dir(v, l->dir);
    pthread_mutex_lock(&l->mu);
    for (int k = 0; k < n; k++)
        segment_unpin(pinned[k]);
    if (rc != 0)
        return go_offline(l, "flush rolled segment", rc);
    if (l->generation == gen && upto > l->recovery_point && upto <= leo(l)) {
        l->recovery_point = upto;
        rc = write_checkpoint(l);
        if (rc != 0)
            return go_offline(l, "write checkpoint", rc);
    }
    if (l->generation != gen || l->flush_pending_to <= l->recovery_point)
        l->flush_pending_to = -1;
    return STORAGE_OK;
}

int plog_tick(plog *l, int64_t now_ms) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    segment *a = active(l);
    if (a->created_ms < 0)
        a->created_ms = now_ms;
    if (a->size > 0 && now_ms - a->created_ms >= l->cfg.segment_ms) {
        int r = roll_locked(l, now_ms);
        if (r != 0) {
            rc = go_offline(l, "roll", r);
            goto out;
        }
    }
    if (l->flush_pending_to >= 0) {
        rc = roll_flush(l);
        if (rc != STORAGE_OK || l->offline)
            goto out;
    }
    if (l->cfg.flush_ms != INT64_MAX && l->unflushed_records > 0 &&
        now_ms - l->last_flush_ms >= l->cfg.flush_ms) {
        rc = flush_locked(l, now_ms);
        if (rc != STORAGE_OK)
            goto out;
    }
    rc = retention_locked(l, now_ms, NULL);
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int plog_delete_records(plog *l, int64_t offset, int64_t *new_start) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
    } else if (offset < 0 || offset > leo(l)) {
        rc = STORAGE_OFFSET_OUT_OF_RANGE;
    } else {
        if (offset > l->log_start_offset) {
            l->log_start_offset = offset;
            int r = write_checkpoint(l);
            if (r != 0)
                rc = go_offline(l, "write checkpoint", r);
        }
        /* Segments wholly below the new start go now, not at the next tick. */
        int n = 0;
        while (rc == STORAGE_OK && l->nseg > 1 && l->segs[0]->next_offset <= l->log_start_offset) {
            drop_segment(l, 0);
            n++;
        }
        (void)n;
    }
    if (new_start)
        *new_start = l->log_start_offset;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Empties the log and restarts it at offset, which becomes its log start
 * offset. The new segment object is allocated before anything is removed,
 * so that whatever fails the log keeps a last segment (an inactive
 * placeholder when its files cannot be made; the log is then offline). */
static int start_over(plog *l, int64_t offset) {
    segment *s = segment_new(l->sc, l->dir, offset, idx_max_entries(&l->cfg), l->cfg.index_interval_bytes);
    if (s == NULL)
        return -ENOMEM;
    int rc = 0;
    while (l->nseg > 0) {
        int r = drop_segment(l, l->nseg - 1);
        rc = rc ? rc : r;
    }
    if (rc == 0)
        rc = segment_create_files(s);
    if (rc == 0 && (rc = segment_acquire(s)) != 0)
        s->active = false;
    assert(l->cap >= 1); /* the list held segments: room for one */
    l->segs[l->nseg++] = s;
    s->created_ms = -1; /* the segment.ms clock starts at the next append */
    l->log_start_offset = offset;
    l->recovery_point = offset;
    return rc;
}

/* Makes a truncation durable: the lowered recovery point and log start are
 * checkpointed and the directory (segments unlinked, checkpoint renamed)
 * fsynced. */
static int truncation_durable(plog *l) {
    int r = write_checkpoint(l);
    if (r == 0)
        r = fsync_dir(l->vfs, l->dir);
    return r;
}

/* Removed data: the offsets past the new end are no longer the log's, so a
 * roll flush in progress must not move the recovery point (generation) and
 * the pending flush covers at most the new end. */
static void data_removed(plog *l) {
    l->generation++;
    if (l->clean.first_dirty > leo(l))
        l->clean.first_dirty = leo(l); /* what comes next is dirty (the file catches up at the next clean) */
    if (l->flush_pending_to > leo(l))
        l->flush_pending_to = leo(l);
    if (l->recovery_point > leo(l))
        l->recovery_point = leo(l);
    if (l->log_start_offset > leo(l))
        l->log_start_offset = leo(l);
}

int plog_truncate(plog *l, int64_t offset) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK, r = 0;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    if (offset < 0) {
        rc = STORAGE_OFFSET_OUT_OF_RANGE;
        goto out;
    }
    if (offset >= leo(l))
        goto out;
    if (offset <= l->segs[0]->base_offset || offset < l->log_start_offset) {
        /* Nothing below offset survives: start over at offset. */
        r = start_over(l, offset);
        data_removed(l);
        if (r != 0) {
            rc = go_offline(l, "truncate", r);
            goto out;
        }
    } else {
        /* A leftover file of a dropped segment past the new end would come
         * back at the next open: the truncation fails (and the log goes
         * offline) if one cannot be removed. */
        int dropped = 0;
        while (l->segs[l->nseg - 1]->base_offset >= offset) {
            int d = drop_segment(l, l->nseg - 1);
            dropped = dropped ? dropped : d;
        }
        segment *s = active(l);
        if (!s->active) {
            /* A sealed segment becomes the active one again. */
            if ((r = segment_acquire(s)) != 0) {
                data_removed(l);
                rc = go_offline(l, "truncate", r);
                goto out;
            }
            s->active = true;
        }
        r = dropped ? dropped : segment_truncate(s, offset);
        data_removed(l);
        if (r != 0) {
            rc = go_offline(l, "truncate", r);
            goto out;
        }
        assert(leo(l) <= offset);
    }
    r = truncation_durable(l);
    if (r != 0)
        rc = go_offline(l, "write checkpoint", r);
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int plog_truncate_fully(plog *l, int64_t new_start) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
    } else if (new_start < 0) {
        rc = STORAGE_OFFSET_OUT_OF_RANGE;
    } else {
        int r = start_over(l, new_start);
        data_removed(l);
        if (r == 0)
            r = truncation_durable(l);
        if (r != 0)
            rc = go_offline(l, "truncate", r);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ---------------- timestamp lookup ---------------- */

/* Within batch b of s: the first record with offset >= min_offset whose
 * timestamp >= ts. Returns false if there is none because the qualifying
 * records all lie below min_offset (b straddles the log start). If the
 * records cannot be decoded, or none reaches ts although the batch's
 * maxTimestamp says one does (a batch that lies), the batch's first offset
 * >= min_offset stands in: so a lookup decodes at most two batches (the one
 * straddling the log start and the next), not every lying batch after it. */
static bool record_for_ts(segment *s, const seg_batch *b, int64_t ts, int64_t min_offset, int64_t *off,
                          int64_t *ts_out) {
    int64_t base = b->base_offset > min_offset ? b->base_offset : min_offset;
    *off = base;
    *ts_out = b->max_ts;
    if (b->attributes & BATCH_ATTR_LOG_APPEND_TIME)
        return true; /* every record carries the batch's timestamp */
    uint8_t *buf = malloc((size_t)b->size);
    if (buf == NULL)
        return true;
    bool found = true;
    arena a;
    arena_init(&a, SEG_MAX_BATCH_BYTES);
    if (segment_read_batch(s, b, buf, (size_t)b->size) == 0) {
        batch_iter it;
        batch_record rec;
        if (batch_iter_init(&it, buf, (size_t)b->size, &a) == BATCH_OK) {
            bool hit = false, below = false; /* below: a record reaches ts, but under min_offset */
            while (!hit && batch_iter_next(&it, &rec)) {
                if (rec.timestamp < ts)
                    continue;
                if (rec.offset >= min_offset) {
                    *off = rec.offset;
                    *ts_out = rec.timestamp;
                    hit = true;
                } else {
                    below = true;
                }
            }
            found = hit || !below;
        }
    }
    arena_reset(&a);
    free(buf);
    return found;
}

/* Loads the time index of s if its maximum timestamp is not known yet. */
static int ensure_max_ts(plog *l, segment *s) {
    if (s->max_ts_known)
        return 0;
    int r = segment_acquire(s);
    if (r == 0) {
        r = segment_load_indexes(s);
        segment_release(s);
    }
    return r != 0 ? go_offline(l, "load index", r) : 0;
}

int plog_offset_for_time(plog *l, int64_t ts, int64_t *offset, int64_t *timestamp) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    *offset = -1;
    *timestamp = -1;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    if (ts == PLOG_TS_EARLIEST) {
        *offset = l->log_start_offset;
        goto out;
    }
    if (ts == PLOG_TS_LATEST) {
        *offset = leo(l);
        goto out;
    }
    if (ts < 0 && ts != PLOG_TS_MAX)
        goto out;
    int from = seg_for(l, l->log_start_offset);
    if (ts == PLOG_TS_MAX) {
        /* the segment with the largest timestamp, then its first batch and
         * record carrying it */
        int best = -1;
        int64_t best_ts = -1;
        for (int i = from; i < l->nseg; i++) {
            if ((rc = ensure_max_ts(l, l->segs[i])) != 0)
                goto out;
            if (l->segs[i]->size > 0 && l->segs[i]->max_ts > best_ts) {
                best_ts = l->segs[i]->max_ts;
                best = i;
            }
        }
        if (best < 0)
            goto out;
        ts = best_ts;
        from = best;
    }
    /* The first record at or after the log start whose timestamp >= ts, in
     * offset order: segments by their maximum timestamp, then batches by
     * theirs, then records. */
    int64_t min_off = l->log_start_offset;
    for (int i = from; i < l->nseg; i++) {
        segment *s = l->segs[i];
        if ((rc = ensure_max_ts(l, s)) != 0)
            goto out;
        if (s->size == 0 || s->max_ts < ts)
            continue;
        int r = segment_pin(s);
        if (r != 0) {
            rc = go_offline(l, "open segment", r);
            goto out;
        }
        for (;;) {
            seg_batch b;
            r = segment_find_ts(s, ts, min_off, &b);
            if (r <= 0)
                break;
            if (record_for_ts(s, &b, ts, min_off, offset, timestamp)) {
                segment_unpin(s);
                goto out;
            }
            min_off = b.last_offset + 1;
        }
        segment_unpin(s);
        if (r < 0) {
            rc = go_offline(l, "timestamp lookup", r);
            goto out;
        }
    }
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ---------------- accessors ---------------- */

#define LOCKED_GET(type, name, expr)  \
    type name(plog *l) {              \
        pthread_mutex_lock(&l->mu);   \
        type v = (expr);              \
        pthread_mutex_unlock(&l->mu); \
        return v;                     \
    }

LOCKED_GET(int64_t, plog_start_offset, l->log_start_offset)
LOCKED_GET(int64_t, plog_end_offset, leo(l))
LOCKED_GET(int64_t, plog_active_base, active(l)->base_offset)
LOCKED_GET(int64_t, plog_recovery_point, l->recovery_point)
LOCKED_GET(int, plog_segment_count, l->nseg)
LOCKED_GET(bool, plog_is_offline, l->offline)

void plog_recovery_stats(plog *l, int *segments, int64_t *bytes) {
    pthread_mutex_lock(&l->mu);
    *segments = l->recovered_segments;
    *bytes = l->recovered_bytes;
    pthread_mutex_unlock(&l->mu);
}

int64_t plog_size_bytes(plog *l) {
    pthread_mutex_lock(&l->mu);
    int64_t t = 0;
    for (int i = 0; i < l->nseg; i++)
        t += l->segs[i]->size;
    pthread_mutex_unlock(&l->mu);
    return t;
}

const char *plog_dir(const plog *l) { return l->dir; }

/* ---------------- log.dirs roots ---------------- */

int plog_dir_begin(storage_ctx *sc, const char *root, bool *was_clean) {
    const sl_vfs *v = storage_vfs(sc);
    char p[SEG_PATH_MAX];
    sl_stat st;
    snprintf(p, sizeof p, "%s/" CLEAN_MARKER, root);
    *was_clean = v->stat(v->ctx, p, &st) == 0;
    if (!*was_clean)
        return 0;
    /* The removal must be durable before any log changes, or a crash could
     * leave a marker vouching for a log that was being written. */
    int rc = v->unlink(v->ctx, p);
    return rc != 0 ? rc : fsync_dir(v, root);
}

int plog_dir_mark_clean(storage_ctx *sc, const char *root) {
    const sl_vfs *v = storage_vfs(sc);
    char p[SEG_PATH_MAX];
    snprintf(p, sizeof p, "%s/" CLEAN_MARKER, root);
    int fd = v->open(v->ctx, p, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    int rc = v->fsync(v->ctx, fd);
    v->close(v->ctx, fd);
    if (rc == 0)
        rc = fsync_dir(v, root);
    if (rc != 0)
        v->unlink(v->ctx, p); /* failed means not marked, as far as it is up to us */
    return rc;
}

static int count_partition_dir(void *ctx, const char *name, bool is_dir) {
    if (name[0] != '.' && is_dir)
        (*(long *)ctx)++;
    return 0;
}

int plog_dir_pick(storage_ctx *sc, const char *const *roots, int n) {
    const sl_vfs *v = storage_vfs(sc);
    int best = -1;
    long best_count = 0;
    for (int i = 0; i < n; i++) {
        long count = 0;
        if (v->list(v->ctx, roots[i], count_partition_dir, &count) != 0)
            continue;
        if (best < 0 || count < best_count) {
            best = i;
            best_count = count;
        }
    }
    return best;
}

/* ---------------- reading a directory without opening it ---------------- */

int plog_peek(storage_ctx *sc, const char *dir, int64_t **bases, int *n, int64_t *recovery_point) {
    int64_t lso;
    *bases = NULL;
    *n = 0;
    const sl_vfs *v = storage_vfs(sc);
    int rc = list_bases(v, dir, bases, n);
    if (rc != 0)
        return rc;
    read_checkpoint(v, dir, recovery_point, &lso);
    return 0;
}

typedef struct drop_ctx {
    const sl_vfs *v;
    const char *dir;
    int rc;
} drop_ctx;

static int drop_one(void *ctx, const char *name, bool is_dir) {
    drop_ctx *d = ctx;
    size_t n = strlen(name);
    bool derived =
        !is_dir && (strcmp(name, CHECKPOINT_NAME) == 0 || (n > 6 && strcmp(name + n - 6, ".index") == 0) ||
                    (n > 10 && strcmp(name + n - 10, ".timeindex") == 0));
    if (!derived)
        return 0;
    char p[SEG_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", d->dir, name);
    int rc = d->v->unlink(d->v->ctx, p);
    if (rc != 0 && d->rc == 0)
        d->rc = rc;
    return 0;
}

int plog_drop_derived_files(storage_ctx *sc, const char *dir) {
    drop_ctx d = {storage_vfs(sc), dir, 0};
    int rc = d.v->list(d.v->ctx, dir, drop_one, &d);
    return rc != 0 ? rc : d.rc;
}

/* ---------------- coming back online ---------------- */

int plog_reopen(plog *l) {
    pthread_mutex_lock(&l->mu);
    bool offline = l->offline;
    plog_config cfg = l->cfg;
    pthread_mutex_unlock(&l->mu);
    if (!offline)
        return STORAGE_OK;
    /* The offline log writes nothing, so a second one may recover the
     * directory; its state then replaces l's under l's mutex. Readers that
     * pinned l's old segments keep them (segments are counted). */
    int err = 0;
    plog *f = plog_open(l->sc, l->dir, &cfg, false, &err);
    if (f == NULL)
        return err;
    pthread_mutex_lock(&l->mu);
    segment **segs = l->segs;
    int nseg = l->nseg, cap = l->cap;
    l->segs = f->segs;
    l->nseg = f->nseg;
    l->cap = f->cap;
    l->log_start_offset = f->log_start_offset;
    l->recovery_point = f->recovery_point;
    l->unflushed_records = f->unflushed_records;
    l->last_flush_ms = f->last_flush_ms;
    l->flush_pending_to = f->flush_pending_to;
    l->generation++; /* a roll flush in flight must not move the new recovery point */
    l->offline = false;
    pthread_mutex_unlock(&l->mu);
    f->segs = segs;
    f->nseg = nseg;
    f->cap = cap;
    free_log(f); /* l's old segments */
    LOG_INFO("storage", "partition log %s is back online", l->dir);
    return STORAGE_OK;
}

/* ---------------- the cleaner's view and swap ---------------- */

storage_ctx *plog_storage(plog *l) { return l->sc; }

void plog_clean_view_release(plog_clean_view *v) {
    for (int i = 0; i < v->n; i++)
        segment_unref(v->segs[i].seg);
    free(v->segs);
    v->segs = NULL;
    v->n = 0;
}

int plog_clean_view_take(plog *l, int max_segs, bool need_ts, plog_clean_view *v) {
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    v->log_start_offset = l->log_start_offset;
    v->log_end_offset = leo(l);
    v->state = l->clean;
    v->cfg = l->cfg;
    for (int i = 0; i < l->nseg; i++)
        v->total_bytes += l->segs[i]->size;
    int from = seg_for(l, l->log_start_offset);
    int cap = 0;
    for (int i = from; i < l->nseg && !l->segs[i]->active && cap < max_segs; i++)
        if (l->segs[i]->next_offset <= l->recovery_point)
            cap++;
    if (cap == 0)
        goto out;
    v->segs = calloc((size_t)cap, sizeof *v->segs);
    if (v->segs == NULL) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    for (int i = from; i < l->nseg && v->n < cap; i++) {
        segment *s = l->segs[i];
        if (s->active || s->next_offset > l->recovery_point)
            break;
        if (need_ts && (rc = ensure_max_ts(l, s)) != 0)
            break;
        segment_ref(s);
        v->segs[v->n++] = (plog_clean_seg){s, s->base_offset, s->next_offset, s->size, s->max_ts};
    }
out:
    pthread_mutex_unlock(&l->mu);
    if (rc != STORAGE_OK)
        plog_clean_view_release(v);
    return rc;
}

int plog_clean_state_set(plog *l, const plog_clean_state *st) {
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    plog_clean_state next = *st;
    /* A truncation since the clean started lowered the first dirty offset:
     * keep it lowered. gaps_below only grows. */
    if (next.first_dirty > leo(l))
        next.first_dirty = leo(l);
    if (next.gaps_below < l->clean.gaps_below)
        next.gaps_below = l->clean.gaps_below;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
    } else {
        int r = write_clean_state(l->vfs, l->dir, &next);
        if (r != 0)
            rc = go_offline(l, "write cleaner checkpoint", r);
        else
            l->clean = next;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Index in the list of the segment s, or -1. */
static int index_of(const plog *l, const segment *s) {
    int i = seg_for(l, s->base_offset);
    return i < l->nseg && l->segs[i] == s ? i : -1;
}

int plog_clean_swap(plog *l, segment *const *olds, int n, segment *cleaned) {
    assert(n > 0 && cleaned != NULL && !cleaned->active && cleaned->base_offset == olds[0]->base_offset);
    pthread_mutex_lock(&l->mu);
    int rc = STORAGE_OK;
    if (l->offline) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    /* The segments must still be the log's, consecutive, sealed and below
     * the recovery point (retention, DeleteRecords, truncation or a reopen
     * may have changed the list meanwhile: then the work is dropped). */
    int first = index_of(l, olds[0]);
    bool same = first >= 0 && first + n <= l->nseg;
    for (int k = 0; same && k < n; k++) {
        segment *s = l->segs[first + k];
        same = s == olds[k] && !s->active && !s->dead && s->next_offset <= l->recovery_point;
    }
    if (!same || olds[0]->base_offset < l->segs[seg_for(l, l->log_start_offset)]->base_offset) {
        rc = PLOG_CLEAN_STALE;
        goto out;
    }
    const sl_vfs *v = l->vfs;
    /* Commit: the cleaned files, already durable under ".cleaned", become
     * ".swap"; from the directory fsync on, a crash finishes the swap at the
     * next open (plog_open) instead of dropping it. */
    int r = segment_rename_tag(cleaned, SWAP_TAG);
    if (r == 0)
        r = fsync_dir(v, l->dir);
    if (r != 0) {
        rc = go_offline(l, "commit cleaned segment", r);
        goto out;
    }
    /* The replaced segments go (readers holding ranges keep their
     * descriptors), then the swap takes the first one's names. */
    for (int k = 0; k < n && r == 0; k++)
        r = segment_delete_files(olds[k]);
    if (r == 0)
        r = segment_rename_tag(cleaned, "");
    if (r == 0)
        r = fsync_dir(v, l->dir);
    /* The list follows the files even when a step failed: the old segments
     * are dead (marked by segment_delete_files), and the reopen that brings
     * the log back online finishes the swap from the files. */
    cleaned->next_offset = olds[n - 1]->next_offset;
    cleaned->compacted = true;
    cleaned->max_ts_known = true;
    segment_ref(cleaned);
    l->segs[first] = cleaned;
    memmove(&l->segs[first + 1], &l->segs[first + n], (size_t)(l->nseg - first - n) * sizeof *l->segs);
    l->nseg -= n - 1;
    for (int k = 0; k < n; k++)
        segment_unref(olds[k]);
    if (r != 0)
        rc = go_offline(l, "swap cleaned segment", r);
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}
