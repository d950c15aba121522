/*
 * index.c - sparse offset and time indexes of a segment. See index.h for the
 * format and invariants; this file owns the arrays and their files.
 */
#include "storage/index.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

/* Grows an array of entries to hold at least need, never past max. */
static int grow(void **arr, uint32_t *cap, uint32_t need, uint32_t max, size_t esize) {
    if (need <= *cap)
        return 0;
    if (need > max)
        return -1;
    uint32_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap = ncap > max / 2 ? max : ncap * 2;
    void *p = realloc(*arr, (size_t)ncap * esize);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Reads a whole index file of entries of esize bytes, at most max entries.
 * Returns a malloc'd buffer and its entry count, or NULL. A missing file is an
 * error: the caller rebuilds. */
static uint8_t *read_file(const sl_vfs *v, const char *path, size_t esize, uint32_t max, uint32_t *n_out) {
    uint8_t *buf = NULL;
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return NULL;
    int64_t size = v->fsize(v->ctx, fd);
    if (size < 0 || (uint64_t)size % esize != 0 || (uint64_t)size / esize > max)
        goto err;
    size_t len = (size_t)size;
    buf = malloc(len ? len : 1);
    if (buf == NULL || sl_vfs_pread_full(v, fd, buf, len, 0) != 0)
        goto err;
    v->close(v->ctx, fd);
    *n_out = (uint32_t)(len / esize);
    return buf;
err:
    free(buf);
    v->close(v->ctx, fd);
    return NULL;
}

/* Shared writer: serialises entries [from, count) with enc and writes them
 * at from*esize; rewrite truncates the file to count entries first. */
static int write_entries(const sl_vfs *v, const char *path, uint32_t from, uint32_t count, size_t esize,
                         bool rewrite, bool sync, void (*enc)(const void *ix, uint32_t i, uint8_t *out),
                         const void *ix) {
    int rc = 0;
    uint8_t chunk[IDX_WRITE_BATCH * TIDX_ENTRY_SIZE];
    int fd = v->open(v->ctx, path, SL_O_RDWR | SL_O_CREAT, 0644);
    if (fd < 0)
        return fd;
    if (rewrite && (rc = v->ftruncate(v->ctx, fd, (int64_t)count * (int64_t)esize)) != 0)
        goto out;
    uint32_t i = from;
    while (i < count) {
        uint32_t n = count - i < IDX_WRITE_BATCH ? count - i : IDX_WRITE_BATCH;
        for (uint32_t k = 0; k < n; k++)
            enc(ix, i + k, chunk + k * esize);
        rc = sl_vfs_pwrite_full(v, fd, chunk, n * esize, (int64_t)i * (int64_t)esize);
        if (rc != 0)
            goto out;
        i += n;
    }
    if (sync)
        rc = v->fsync(v->ctx, fd);
out:;
    int c = v->close(v->ctx, fd);
    return rc != 0 ? rc : c;
}

/* ---------------- offset index ---------------- */

void oidx_init(oidx *ix, uint32_t max_entries) {
    memset(ix, 0, sizeof *ix);
    ix->max_entries = max_entries ? max_entries : 1;
}

void oidx_free(oidx *ix) {
    free(ix->e);
    uint32_t max = ix->max_entries;
    oidx_init(ix, max);
}

int oidx_load(const sl_vfs *v, oidx *ix, const char *path, int64_t log_size) {
    uint32_t n = 0;
    uint8_t *buf = read_file(v, path, OIDX_ENTRY_SIZE, ix->max_entries, &n);
    if (buf == NULL)
        return -1;
    ix->count = ix->persisted = 0;
    if (grow((void **)&ix->e, &ix->cap, n, ix->max_entries, sizeof(oidx_entry)) != 0)
        goto err;
    for (uint32_t i = 0; i < n; i++) {
        int32_t rel = (int32_t)wire_be32(buf + i * OIDX_ENTRY_SIZE);
        int32_t pos = (int32_t)wire_be32(buf + i * OIDX_ENTRY_SIZE + 4);
        if (rel < 0 || pos < 0 || pos >= log_size)
            goto err;
        if (i > 0 && (rel <= ix->e[i - 1].rel || pos <= ix->e[i - 1].pos))
            goto err;
        ix->e[i] = (oidx_entry){rel, pos};
    }
    ix->count = ix->persisted = n;
    free(buf);
    return 0;
err:
    ix->count = ix->persisted = 0;
    free(buf);
    return -1;
}

int oidx_append(oidx *ix, int32_t rel, int32_t pos) {
    assert(ix->count == 0 || (rel > ix->e[ix->count - 1].rel && pos > ix->e[ix->count - 1].pos));
    if (grow((void **)&ix->e, &ix->cap, ix->count + 1, ix->max_entries, sizeof(oidx_entry)) != 0)
        return -1;
    ix->e[ix->count++] = (oidx_entry){rel, pos};
    return 0;
}

int64_t oidx_floor(const oidx *ix, int32_t target_rel) {
    /* Binary search for the last entry with rel <= target. */
    int64_t lo = 0, hi = (int64_t)ix->count - 1, best = -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ix->e[mid].rel <= target_rel) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

void oidx_truncate_rel(oidx *ix, int32_t rel_limit) {
    while (ix->count > 0 && ix->e[ix->count - 1].rel >= rel_limit)
        ix->count--;
    if (ix->persisted > ix->count) {
        ix->persisted = ix->count;
        ix->shrunk = true;
    }
}

static void oidx_enc(const void *p, uint32_t i, uint8_t *out) {
    const oidx *ix = p;
    wire_put_be32(out, (uint32_t)ix->e[i].rel);
    wire_put_be32(out + 4, (uint32_t)ix->e[i].pos);
}

int oidx_write(const sl_vfs *v, oidx *ix, const char *path, bool rewrite, bool sync) {
    rewrite = rewrite || ix->shrunk;
    uint32_t from = rewrite ? 0 : ix->persisted;
    int rc = write_entries(v, path, from, ix->count, OIDX_ENTRY_SIZE, rewrite, sync, oidx_enc, ix);
    if (rc == 0) {
        ix->persisted = ix->count;
        ix->shrunk = false;
    }
    return rc;
}

/* ---------------- time index ---------------- */

void tidx_init(tidx *ix, uint32_t max_entries) {
    memset(ix, 0, sizeof *ix);
    ix->max_entries = max_entries ? max_entries : 1;
}

void tidx_free(tidx *ix) {
    free(ix->e);
    uint32_t max = ix->max_entries;
    tidx_init(ix, max);
}

int tidx_load(const sl_vfs *v, tidx *ix, const char *path) {
    uint32_t n = 0;
    uint8_t *buf = read_file(v, path, TIDX_ENTRY_SIZE, ix->max_entries, &n);
    if (buf == NULL)
        return -1;
    ix->count = ix->persisted = 0;
    if (grow((void **)&ix->e, &ix->cap, n, ix->max_entries, sizeof(tidx_entry)) != 0)
        goto err;
    for (uint32_t i = 0; i < n; i++) {
        int64_t ts = (int64_t)wire_be64(buf + i * TIDX_ENTRY_SIZE);
        int32_t rel = (int32_t)wire_be32(buf + i * TIDX_ENTRY_SIZE + 8);
        if (rel < 0)
            goto err;
        if (i > 0 && (ts <= ix->e[i - 1].ts || rel < ix->e[i - 1].rel))
            goto err;
        ix->e[i] = (tidx_entry){ts, rel};
    }
    ix->count = ix->persisted = n;
    free(buf);
    return 0;
err:
    ix->count = ix->persisted = 0;
    free(buf);
    return -1;
}

int tidx_maybe_append(tidx *ix, int64_t ts, int32_t rel) {
    if (ix->count > 0 && ts <= ix->e[ix->count - 1].ts)
        return 0;
    assert(ix->count == 0 || rel >= ix->e[ix->count - 1].rel);
    if (grow((void **)&ix->e, &ix->cap, ix->count + 1, ix->max_entries, sizeof(tidx_entry)) != 0)
        return -1;
    ix->e[ix->count++] = (tidx_entry){ts, rel};
    return 0;
}

int64_t tidx_last_below(const tidx *ix, int64_t target_ts) {
    int64_t lo = 0, hi = (int64_t)ix->count - 1, best = -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ix->e[mid].ts < target_ts) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

void tidx_truncate_rel(tidx *ix, int32_t rel_limit) {
    while (ix->count > 0 && ix->e[ix->count - 1].rel >= rel_limit)
        ix->count--;
    if (ix->persisted > ix->count) {
        ix->persisted = ix->count;
        ix->shrunk = true;
    }
}

static void tidx_enc(const void *p, uint32_t i, uint8_t *out) {
    const tidx *ix = p;
    wire_put_be64(out, (uint64_t)ix->e[i].ts);
    wire_put_be32(out + 8, (uint32_t)ix->e[i].rel);
}

int tidx_write(const sl_vfs *v, tidx *ix, const char *path, bool rewrite, bool sync) {
    rewrite = rewrite || ix->shrunk;
    uint32_t from = rewrite ? 0 : ix->persisted;
    int rc = write_entries(v, path, from, ix->count, TIDX_ENTRY_SIZE, rewrite, sync, tidx_enc, ix);
    if (rc == 0) {
        ix->persisted = ix->count;
        ix->shrunk = false;
    }
    return rc;
}
