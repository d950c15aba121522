/*
 * segment.c - one log segment: its files, batch scanning, index upkeep and
 * the storage context's cache of segment file descriptors. See segment.h.
 */
#include "storage/segment.h"
#include "core/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/batch.h"
#include "proto/wire.h"

static void seg_path(const segment *s, const char *suffix, char *out, size_t cap);

/* ---------------- file descriptor cache ---------------- */

void seg_fdcache_init(seg_fdcache *c, int limit) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->limit = limit < 0 ? 0 : limit;
}

void seg_fdcache_destroy(seg_fdcache *c) {
    assert(c->open == 0 && c->idle == 0 && c->head == NULL);
    pthread_mutex_destroy(&c->mu);
}

void seg_fdcache_set_limit(seg_fdcache *c, int n) {
    pthread_mutex_lock(&c->mu);
    c->limit = n < 0 ? 0 : n;
    pthread_mutex_unlock(&c->mu);
}

int seg_fdcache_open_count(seg_fdcache *c) {
    pthread_mutex_lock(&c->mu);
    int n = c->open;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void lru_remove(segment *s) {
    seg_fdcache *c = s->fdc;
    assert(s->in_lru);
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
    s->in_lru = false;
    c->idle--;
}

static void lru_push(segment *s) {
    seg_fdcache *c = s->fdc;
    assert(!s->in_lru && s->users == 0 && s->fd >= 0);
    s->lru_prev = NULL;
    s->lru_next = c->head;
    if (c->head)
        c->head->lru_prev = s;
    c->head = s;
    if (c->tail == NULL)
        c->tail = s;
    s->in_lru = true;
    c->idle++;
}

/* Closes an idle segment's fd and drops its indexes. Cache mutex held. The
 * segment is not in use, so its owner cannot be touching the indexes. */
static void close_idle(segment *s) {
    assert(s->users == 0);
    if (s->in_lru)
        lru_remove(s);
    if (s->fd >= 0) {
        s->vfs->close(s->vfs->ctx, s->fd);
        s->fd = -1;
        s->fdc->open--;
    }
    if (s->idx_loaded) {
        oidx_free(&s->oi);
        tidx_free(&s->ti);
        s->idx_loaded = false;
    }
}

int segment_acquire(segment *s) {
    int rc = 0;
    seg_fdcache *c = s->fdc;
    pthread_mutex_lock(&c->mu);
    if (s->dead && s->fd < 0) {
        rc = -ENOENT;
        goto out;
    }
    if (s->fd < 0) {
        char p[SEG_PATH_MAX + 32];
        seg_path(s, ".log", p, sizeof p);
        int fd = s->vfs->open(s->vfs->ctx, p, SL_O_RDWR, 0);
        if (fd < 0) {
            rc = fd;
            goto out;
        }
        s->fd = fd;
        c->open++;
    } else if (s->in_lru) {
        lru_remove(s);
    }
    s->users++;
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void segment_release(segment *s) {
    seg_fdcache *c = s->fdc;
    pthread_mutex_lock(&c->mu);
    assert(s->users > 0);
    if (--s->users == 0) {
        if (s->dead) {
            close_idle(s);
        } else if (s->fd >= 0) {
            lru_push(s);
            while (c->idle > c->limit && c->tail != NULL)
                close_idle(c->tail);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void segment_ref(segment *s) { atomic_fetch_add(&s->refs, 1); }

void segment_unref(segment *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    pthread_mutex_lock(&s->fdc->mu);
    assert(s->users == 0);
    close_idle(s);
    pthread_mutex_unlock(&s->fdc->mu);
    oidx_free(&s->oi);
    tidx_free(&s->ti);
    free(s);
}

int segment_pin(segment *s) {
    segment_ref(s);
    int rc = segment_acquire(s);
    if (rc != 0)
        segment_unref(s);
    return rc;
}

void segment_unpin(segment *s) {
    segment_release(s);
    segment_unref(s);
}

/* ---------------- naming and creation ---------------- */

int segment_filename(char *out, size_t cap, const char *dir, int64_t base, const char *suffix) {
    int n = snprintf(out, cap, "%s/%020" PRId64 "%s", dir, base, suffix);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static void seg_path(const segment *s, const char *suffix, char *out, size_t cap) {
    snprintf(out, cap, "%s%s%s", s->path, suffix, s->tag);
}

int segment_set_tag(segment *s, const char *tag) {
    if (strlen(tag) >= sizeof s->tag)
        return -1;
    snprintf(s->tag, sizeof s->tag, "%s", tag);
    return 0;
}

int segment_rename_tag(segment *s, const char *tag) {
    static const char *suffixes[] = {".index", ".timeindex", ".log"};
    if (strlen(tag) >= sizeof s->tag)
        return -ENAMETOOLONG;
    for (int i = 0; i < 3; i++) {
        char from[SEG_PATH_MAX + 32], to[SEG_PATH_MAX + 32];
        seg_path(s, suffixes[i], from, sizeof from);
        snprintf(to, sizeof to, "%s%s%s", s->path, suffixes[i], tag);
        int rc = s->vfs->rename(s->vfs->ctx, from, to);
        if (rc == -ENOENT && i < 2)
            continue; /* indexes are rebuilt when missing */
        if (rc != 0)
            return rc;
    }
    snprintf(s->tag, sizeof s->tag, "%s", tag);
    return 0;
}

segment *segment_new(storage_ctx *sc, const char *dir, int64_t base, uint32_t idx_max_entries,
                     int32_t index_interval) {
    if (base < 0 || sc == NULL)
        return NULL;
    segment *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    /* leave room for the longest suffix (".timeindex") */
    if (segment_filename(s->path, sizeof s->path - 16, dir, base, "") != 0) {
        free(s);
        return NULL;
    }
    s->base_offset = base;
    s->next_offset = base;
    s->max_ts = -1;
    s->last_batch_base = -1;
    s->vfs = storage_vfs(sc);
    s->fdc = storage_fdcache(sc);
    s->fd = -1;
    s->idx_max_entries = idx_max_entries;
    s->index_interval = index_interval;
    oidx_init(&s->oi, idx_max_entries);
    tidx_init(&s->ti, idx_max_entries);
    atomic_init(&s->refs, 1);
    return s;
}

int segment_create_files(segment *s) {
    static const char *suffixes[] = {".log", ".index", ".timeindex"};
    for (int i = 0; i < 3; i++) {
        char p[SEG_PATH_MAX + 32];
        seg_path(s, suffixes[i], p, sizeof p);
        int fd = s->vfs->open(s->vfs->ctx, p, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
        if (fd < 0)
            return fd;
        s->vfs->close(s->vfs->ctx, fd);
    }
    s->size = 0;
    s->next_offset = s->base_offset;
    s->max_ts = -1;
    s->max_ts_known = true;
    s->last_batch_base = -1;
    s->bytes_since_index = 0;
    s->active = true;
    s->idx_loaded = true; /* empty indexes are trivially loaded */
    return 0;
}

int segment_stat(segment *s) {
    char p[SEG_PATH_MAX + 32];
    sl_stat st;
    seg_path(s, ".log", p, sizeof p);
    int rc = s->vfs->stat(s->vfs->ctx, p, &st);
    if (rc != 0)
        return rc;
    s->size = st.size;
    return 0;
}

/* ---------------- batch scanning ---------------- */

enum { SCAN_END = 0, SCAN_BATCH = 1, SCAN_BAD = 2 };

typedef struct scanner {
    const sl_vfs *vfs;
    int fd;
    int64_t pos; /* next batch */
    int64_t end; /* bytes of file to consider */
    uint8_t *buf;
    size_t cap;
    int64_t bpos; /* file position of buf[0] */
    size_t blen;
} scanner;

static int scanner_init(scanner *sc, const segment *s, int64_t pos, int64_t end, size_t cap) {
    memset(sc, 0, sizeof *sc);
    sc->vfs = s->vfs;
    sc->fd = s->fd;
    sc->pos = pos;
    sc->end = end;
    sc->buf = malloc(cap);
    sc->cap = cap;
    return sc->buf ? 0 : -ENOMEM;
}

static void scanner_free(scanner *sc) { free(sc->buf); }

/* Makes file bytes [pos, pos+need) available in the buffer. Returns 0,
 * SCAN_BAD if the file is shorter than that, or -errno. */
static int scanner_fill(scanner *sc, int64_t pos, size_t need) {
    if (pos >= sc->bpos && (uint64_t)(pos - sc->bpos) + need <= sc->blen)
        return 0;
    if (need > sc->cap) {
        uint8_t *nb = realloc(sc->buf, need);
        if (nb == NULL)
            return -ENOMEM;
        sc->buf = nb;
        sc->cap = need;
    }
    size_t want = sc->cap;
    if ((int64_t)want > sc->end - pos)
        want = (size_t)(sc->end - pos);
    size_t got = 0;
    while (got < want) {
        ssize_t r = sc->vfs->pread(sc->vfs->ctx, sc->fd, sc->buf + got, want - got, pos + (int64_t)got);
        if (r < 0)
            return (int)r;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    sc->bpos = pos;
    sc->blen = got;
    return got >= need ? 0 : SCAN_BAD;
}

/* Decodes the parts of a 61-byte header storage uses and checks that they
 * are self-consistent. Returns false if they cannot describe a valid batch. */
static bool decode_header(const uint8_t *p, int64_t pos, seg_batch *b) {
    int32_t len = (int32_t)wire_be32(p + BATCH_OFF_LENGTH);
    int32_t delta = (int32_t)wire_be32(p + BATCH_OFF_LAST_OFFSET_DELTA);
    b->pos = pos;
    b->base_offset = (int64_t)wire_be64(p + BATCH_OFF_BASE_OFFSET);
    b->size = (int64_t)len + BATCH_LOG_OVERHEAD;
    b->last_offset = -1; /* set once the offsets are known to be in range */
    b->max_ts = (int64_t)wire_be64(p + BATCH_OFF_MAX_TIMESTAMP);
    b->attributes = (int16_t)wire_be16(p + BATCH_OFF_ATTRIBUTES);
    b->leader_epoch = (int32_t)wire_be32(p + BATCH_OFF_LEADER_EPOCH);
    b->record_count = (int32_t)wire_be32(p + BATCH_OFF_RECORD_COUNT);
    if ((int8_t)p[BATCH_OFF_MAGIC] != BATCH_MAGIC)
        return false;
    if (len < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD || b->size > SEG_MAX_BATCH_BYTES)
        return false;
    if (b->base_offset < 0 || delta < 0 || b->record_count < 0 || b->base_offset > INT64_MAX - delta)
        return false;
    b->last_offset = b->base_offset + delta;
    return true;
}

/* Steps to the next batch. With verify the whole batch is read and its CRC
 * checked, and *bytes points at it. Returns SCAN_BATCH, SCAN_END, SCAN_BAD
 * (torn or invalid; pos stays at it) or -errno. */
static int scanner_next(scanner *sc, bool verify, seg_batch *b, const uint8_t **bytes) {
    if (sc->pos >= sc->end)
        return SCAN_END;
    if (sc->end - sc->pos < BATCH_HEADER_SIZE)
        return SCAN_BAD;
    int rc = scanner_fill(sc, sc->pos, BATCH_HEADER_SIZE);
    if (rc != 0)
        return rc;
    const uint8_t *p = sc->buf + (sc->pos - sc->bpos);
    if (!decode_header(p, sc->pos, b) || b->size > sc->end - sc->pos)
        return SCAN_BAD;
    if (verify) {
        rc = scanner_fill(sc, sc->pos, (size_t)b->size);
        if (rc != 0)
            return rc;
        p = sc->buf + (sc->pos - sc->bpos);
        if (!batch_crc_ok(p, (size_t)b->size))
            return SCAN_BAD;
        if (bytes)
            *bytes = p;
    }
    sc->pos += b->size;
    return SCAN_BATCH;
}

/* ---------------- indexes ---------------- */

/* Index upkeep for one batch at b->pos; the same rule for appends and
 * rebuilds so a rebuilt index equals the one built by appending. */
static int index_batch(segment *s, const seg_batch *b) {
    int32_t rel = (int32_t)(b->base_offset - s->base_offset);
    if (b->max_ts > s->max_ts)
        s->max_ts = b->max_ts;
    if (s->bytes_since_index >= s->index_interval && b->pos > 0) {
        if (oidx_append(&s->oi, rel, (int32_t)b->pos) != 0)
            return -ENOSPC;
        if (s->max_ts >= 0 && tidx_maybe_append(&s->ti, s->max_ts, rel) != 0)
            return -ENOSPC;
        s->bytes_since_index = 0;
    }
    s->bytes_since_index += b->size;
    s->last_batch_base = b->base_offset;
    s->next_offset = b->last_offset + 1;
    return 0;
}

static int write_indexes(segment *s, bool rewrite, bool sync) {
    char p[SEG_PATH_MAX + 32];
    seg_path(s, ".index", p, sizeof p);
    int rc = oidx_write(s->vfs, &s->oi, p, rewrite, sync);
    if (rc != 0)
        return rc;
    seg_path(s, ".timeindex", p, sizeof p);
    return tidx_write(s->vfs, &s->ti, p, rewrite, sync);
}

int segment_recover(segment *s, bool verify, bool truncate_bad, int64_t min_next_offset, int64_t *cut) {
    assert(s->users > 0 && s->fd >= 0);
    scanner sc;
    int64_t file_size = s->vfs->fsize(s->vfs->ctx, s->fd);
    if (file_size < 0)
        return (int)file_size;
    int rc = scanner_init(&sc, s, 0, file_size, verify ? 1 << 20 : 64 << 10);
    if (rc != 0)
        return rc;
    oidx_free(&s->oi);
    tidx_free(&s->ti);
    s->idx_loaded = true;
    s->size = 0;
    s->next_offset = s->base_offset;
    s->max_ts = -1;
    s->max_ts_known = true;
    s->last_batch_base = -1;
    s->bytes_since_index = 0;
    /* Offsets are contiguous in a Sluice log except in the segments the
     * cleaner wrote: the first batch starts at the segment base and each
     * next one where the previous ended. This also catches corruption of
     * baseOffset, which the CRC does not cover. In a compacted segment a
     * batch may start anywhere after the previous one's end (removed
     * records leave gaps), so only a step backwards is corruption there. */
    int64_t expect = s->base_offset;
    if (min_next_offset > s->base_offset)
        goto out_check; /* the previous segment overlaps this one */
    for (;;) {
        seg_batch b;
        int r = scanner_next(&sc, verify, &b, NULL);
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r == SCAN_END || r == SCAN_BAD)
            break;
        bool misplaced = s->compacted ? b.base_offset < expect : b.base_offset != expect;
        if (misplaced || b.last_offset - s->base_offset > INT32_MAX) {
            sc.pos = b.pos;
            break;
        }
        rc = index_batch(s, &b);
        if (rc != 0)
            goto out;
        expect = b.last_offset + 1;
        s->size = sc.pos;
    }
out_check:
    if (cut)
        *cut = file_size - s->size;
    if (truncate_bad && s->size < file_size && (rc = s->vfs->ftruncate(s->vfs->ctx, s->fd, s->size)) != 0)
        goto out;
    rc = write_indexes(s, true, false);
out:
    scanner_free(&sc);
    return rc;
}

int segment_load_indexes(segment *s) {
    assert(s->users > 0);
    if (s->idx_loaded)
        return 0;
    char p[SEG_PATH_MAX + 32];
    seg_path(s, ".index", p, sizeof p);
    if (oidx_load(s->vfs, &s->oi, p, s->size) != 0)
        goto rebuild;
    seg_path(s, ".timeindex", p, sizeof p);
    if (tidx_load(s->vfs, &s->ti, p) != 0)
        goto rebuild;
    /* Entries of an inactive segment must lie below its end offset (a stale
     * index left by an interrupted truncation would not). */
    if (!s->active && s->oi.count > 0 && s->base_offset + s->oi.e[s->oi.count - 1].rel >= s->next_offset)
        goto rebuild;
    if (!s->active && s->ti.count > 0 && s->base_offset + s->ti.e[s->ti.count - 1].rel >= s->next_offset)
        goto rebuild;
    s->idx_loaded = true;
    s->max_ts = tidx_max_ts(&s->ti);
    s->max_ts_known = true;
    if (s->active) {
        /* Scan (and verify) the tail past the last offset-index entry to
         * learn next_offset and the index upkeep state. */
        scanner sc;
        int64_t start = s->oi.count ? s->oi.e[s->oi.count - 1].pos : 0;
        int rc = scanner_init(&sc, s, start, s->size, 64 << 10);
        if (rc != 0)
            return rc;
        s->bytes_since_index = 0;
        int64_t expect = s->base_offset + (s->oi.count ? s->oi.e[s->oi.count - 1].rel : 0);
        for (;;) {
            seg_batch b;
            int r = scanner_next(&sc, true, &b, NULL);
            if (r == SCAN_BATCH && (s->compacted ? b.base_offset < expect : b.base_offset != expect)) {
                sc.pos = b.pos;
                r = SCAN_BAD;
            }
            if (r < 0) {
                scanner_free(&sc);
                return r;
            }
            if (r == SCAN_BAD) {
                /* A torn or corrupt tail although the start was called clean:
                 * the index entries may point into it, so verify and rebuild
                 * the whole segment instead of patching. */
                LOG_WARN("storage", "bad batch in %s.log at %" PRId64 " on a clean start; rescanning",
                         s->path, sc.pos);
                scanner_free(&sc);
                return segment_recover(s, true, true, 0, NULL);
            }
            if (r == SCAN_END)
                break;
            if (b.last_offset - s->base_offset > INT32_MAX) {
                s->size = b.pos;
                break;
            }
            expect = b.last_offset + 1;
            if (b.pos > start || s->oi.count == 0) {
                rc = index_batch(s, &b);
            } else { /* the indexed batch itself: already has its entry */
                if (b.max_ts > s->max_ts)
                    s->max_ts = b.max_ts;
                s->bytes_since_index = b.size;
                s->last_batch_base = b.base_offset;
                s->next_offset = b.last_offset + 1;
            }
            if (rc != 0) {
                scanner_free(&sc);
                return rc;
            }
        }
        scanner_free(&sc);
    }
    return 0;
rebuild:
    LOG_INFO("storage", "rebuilding indexes of %s", s->path);
    return segment_recover(s, false, false, 0, NULL);
}

/* ---------------- append and lookups ---------------- */

int segment_append(segment *s, const uint8_t *buf, size_t len, const seg_batch *b, int n) {
    assert(s->active && s->users > 0 && s->idx_loaded && s->fd >= 0);
    assert(s->size + (int64_t)len <= INT32_MAX);
    /* One write in the usual case; a short one is continued. */
    ssize_t w = s->vfs->pwrite(s->vfs->ctx, s->fd, buf, len, s->size);
    int err = w < 0 ? (int)w : 0;
    if (w >= 0 && (size_t)w < len)
        err =
            w == 0 ? -EIO : sl_vfs_pwrite_full(s->vfs, s->fd, buf + w, len - (size_t)w, s->size + (int64_t)w);
    if (err != 0) {
        /* Leave no partial batch behind: cut back to the old end. (If that
         * fails too, the bytes past size are never served and recovery cuts
         * them.) */
        int r = s->vfs->ftruncate(s->vfs->ctx, s->fd, s->size);
        if (r != 0)
            LOG_WARN("storage", "cannot cut back %s.log: %s", s->path, strerror(-r));
        return err;
    }
    for (int i = 0; i < n; i++) {
        seg_batch sb = b[i];
        sb.pos += s->size;
        int rc = index_batch(s, &sb);
        /* The log rolls before an index can fill, so this cannot fail. */
        assert(rc == 0);
        (void)rc;
    }
    s->size += (int64_t)len;
    if (s->oi.count - s->oi.persisted >= IDX_WRITE_BATCH ||
        s->ti.count - s->ti.persisted >= IDX_WRITE_BATCH) {
        /* The batches are in the log: the append has happened. An index file
         * that cannot be written now only lags (entries stay pending and are
         * retried at the next group, flush or roll; recovery rebuilds it). */
        int rc = write_indexes(s, false, false);
        if (rc != 0)
            LOG_WARN("storage", "cannot write indexes of %s: %s", s->path, strerror(-rc));
    }
    return 0;
}

/* Scans from position start for the first batch satisfying want(). */
typedef struct scan_key {
    int64_t offset; /* wanted: last_offset >= offset */
    int64_t ts;     /* wanted: max_ts >= ts */
} scan_key;

/* Scans from position start, where a batch with base offset first_base
 * (-1: unknown) must begin, for the first batch satisfying want(). Returns
 * -ESTALE if the batch at start is not the one the index promised. */
static int scan_from(segment *s, int64_t start, int64_t first_base,
                     bool (*want)(const seg_batch *, const scan_key *), const scan_key *key, seg_batch *out) {
    scanner sc;
    int rc = scanner_init(&sc, s, start, s->size, 4096);
    if (rc != 0)
        return rc;
    for (;;) {
        int r = scanner_next(&sc, false, out, NULL);
        if (r < 0 || r == SCAN_END) {
            rc = r < 0 ? r : 0;
            break;
        }
        if (r == SCAN_BATCH && first_base >= 0) {
            if (out->base_offset != first_base) {
                rc = -ESTALE;
                break;
            }
            first_base = -1;
        }
        if (r == SCAN_BAD) {
            LOG_WARN("storage", "bad batch header in %s.log at %" PRId64, s->path, sc.pos);
            rc = -EIO;
            break;
        }
        if (want(out, key)) {
            rc = 1;
            break;
        }
    }
    scanner_free(&sc);
    return rc;
}

static bool want_offset(const seg_batch *b, const scan_key *k) { return b->last_offset >= k->offset; }
static bool want_ts(const seg_batch *b, const scan_key *k) {
    return b->max_ts >= k->ts && b->last_offset >= k->offset;
}

/* Position to start scanning for offset (and the base offset of the batch
 * that must be there, or -1), from the offset index. */
static int64_t index_start(const segment *s, int64_t offset, int64_t *first_base) {
    *first_base = -1;
    if (offset <= s->base_offset)
        return 0;
    int64_t rel = offset - s->base_offset;
    int64_t e = oidx_floor(&s->oi, rel > INT32_MAX ? INT32_MAX : (int32_t)rel);
    if (e < 0)
        return 0;
    *first_base = s->base_offset + s->oi.e[e].rel;
    return s->oi.e[e].pos;
}

/* An index that disagrees with the log is rebuilt from it, once. */
static int rebuild_stale(segment *s) {
    LOG_INFO("storage", "index of %s disagrees with the log; rebuilding", s->path);
    return segment_recover(s, false, false, 0, NULL);
}

int segment_find(segment *s, int64_t offset, seg_batch *out) {
    int rc = segment_load_indexes(s);
    for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
        int64_t first_base;
        int64_t start = index_start(s, offset, &first_base);
        scan_key k = {offset, 0};
        rc = scan_from(s, start, first_base, want_offset, &k, out);
        if (rc != -ESTALE)
            return rc;
        rc = rebuild_stale(s);
    }
    return rc == 0 ? -EIO : rc;
}

int segment_find_ts(segment *s, int64_t ts, int64_t min_offset, seg_batch *out) {
    int rc = segment_load_indexes(s);
    for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
        /* Start at the later of the time-index and offset-index positions. */
        int64_t first_base = -1, start = 0;
        int64_t e = tidx_last_below(&s->ti, ts);
        if (e >= 0)
            start = index_start(s, s->base_offset + s->ti.e[e].rel, &first_base);
        int64_t fb2;
        int64_t start2 = index_start(s, min_offset, &fb2);
        if (start2 > start) {
            start = start2;
            first_base = fb2;
        }
        scan_key k = {min_offset, ts};
        rc = scan_from(s, start, first_base, want_ts, &k, out);
        if (rc != -ESTALE)
            return rc;
        rc = rebuild_stale(s);
    }
    return rc == 0 ? -EIO : rc;
}

int segment_find_max_ts(segment *s, seg_batch *out) {
    int rc = segment_load_indexes(s);
    if (rc != 0)
        return rc;
    if (s->max_ts < 0)
        return 0;
    return segment_find_ts(s, s->max_ts, 0, out);
}

int segment_read_batch(segment *s, const seg_batch *b, uint8_t *buf, size_t cap) {
    if ((uint64_t)b->size > cap)
        return -EMSGSIZE;
    return sl_vfs_pread_full(s->vfs, s->fd, buf, (size_t)b->size, b->pos);
}

/* ---------------- maintenance ---------------- */

int segment_truncate(segment *s, int64_t offset) {
    assert(s->users > 0 && s->fd >= 0);
    seg_batch b;
    int rc = segment_find(s, offset, &b);
    if (rc < 0)
        return rc;
    if (rc == 1 && (rc = s->vfs->ftruncate(s->vfs->ctx, s->fd, b.pos)) != 0)
        return rc;
    /* Rebuilding from the (possibly shortened) file is simpler than trimming
     * both indexes and recomputing the running maximum timestamp, and it
     * also sets the append state (next offset, index spacing, last batch) of
     * a sealed segment that becomes active again; truncation is rare
     * (replica divergence) and bounded by the segment size. */
    rc = segment_recover(s, false, false, 0, NULL);
    if (rc == 0)
        rc = s->vfs->fsync(s->vfs->ctx, s->fd);
    return rc;
}

int segment_flush(segment *s, bool sync) {
    int rc;
    if (sync && s->fd >= 0 && (rc = s->vfs->fsync(s->vfs->ctx, s->fd)) != 0)
        return rc;
    if (!s->idx_loaded)
        return 0;
    return write_indexes(s, false, sync);
}

int segment_seal(segment *s) {
    assert(s->active && s->idx_loaded);
    if (s->max_ts >= 0 && s->last_batch_base >= 0)
        (void)tidx_maybe_append(&s->ti, s->max_ts, (int32_t)(s->last_batch_base - s->base_offset));
    /* Inactive only once its indexes are written: a sealed segment is
     * trusted by its index files on a clean start. On failure it stays the
     * active segment (in use), so its log stays consistent while it goes
     * offline. */
    int rc = write_indexes(s, false, false);
    if (rc == 0)
        s->active = false;
    return rc;
}

int segment_delete_files(segment *s) {
    static const char *suffixes[] = {".log", ".index", ".timeindex"};
    int err = 0;
    for (int i = 0; i < 3; i++) {
        char p[SEG_PATH_MAX + 32];
        seg_path(s, suffixes[i], p, sizeof p);
        int rc = s->vfs->unlink(s->vfs->ctx, p);
        if (rc != 0 && rc != -ENOENT) {
            LOG_WARN("storage", "cannot delete %s: %s", p, strerror(-rc));
            if (err == 0)
                err = rc;
        }
    }
    pthread_mutex_lock(&s->fdc->mu);
    s->dead = true;
    if (s->users == 0)
        close_idle(s);
    pthread_mutex_unlock(&s->fdc->mu);
    return err;
}
