/*
 * producer_files.c - producer-state snapshot files. See producer_files.h.
 */
#include "broker/producer_files.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define LIST_MAX 64 /* snapshot files looked at in one directory */

typedef struct listing {
    int64_t offs[LIST_MAX];
    int n;
} listing;

static bool parse_name(const char *name, int64_t *off) {
    size_t n = strlen(name), sl = strlen(PFILES_SUFFIX);
    if (n != 20 + sl || strcmp(name + 20, PFILES_SUFFIX) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *off = v;
    return true;
}

static int collect(void *ctx, const char *name, bool is_dir) {
    listing *l = ctx;
    int64_t off;
    if (!is_dir && l->n < LIST_MAX && parse_name(name, &off))
        l->offs[l->n++] = off;
    return 0;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The snapshots in dir, newest first. */
static void list_snapshots(const sl_vfs *v, const char *dir, listing *l) {
    l->n = 0;
    v->list(v->ctx, dir, collect, l);
    qsort(l->offs, (size_t)l->n, sizeof l->offs[0], cmp_desc);
}

static void path_of(char *out, size_t n, const char *dir, int64_t off, const char *ext) {
    snprintf(out, n, "%s/%020" PRId64 PFILES_SUFFIX "%s", dir, off, ext);
}

/* Removes the snapshot at off and its aborted-transaction file. */
static void remove_snapshot(const sl_vfs *v, const char *dir, int64_t off) {
    char path[4200];
    path_of(path, sizeof path, dir, off, "");
    v->unlink(v->ctx, path);
    path_of(path, sizeof path, dir, off, PFILES_ABORTED_EXT);
    v->unlink(v->ctx, path);
}

/* Reads a whole file of at most PFILES_MAX_BYTES; NULL on error. */
static uint8_t *read_file(const sl_vfs *v, const char *path, size_t *len) {
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return NULL;
    int64_t size = v->fsize(v->ctx, fd);
    uint8_t *buf = NULL;
    if (size >= 0 && size <= PFILES_MAX_BYTES && (buf = malloc(size ? (size_t)size : 1)) != NULL &&
        sl_vfs_pread_full(v, fd, buf, (size_t)size, 0) != 0) {
        free(buf);
        buf = NULL;
    }
    v->close(v->ctx, fd);
    *len = (size_t)(size > 0 ? size : 0);
    return buf;
}

int64_t pfiles_load(const sl_vfs *v, const char *dir, const char *what, int64_t log_end, pstate *s,
                    int64_t now) {
    listing l;
    list_snapshots(v, dir, &l);
    char path[4200];
    for (int i = 0; i < l.n; i++) {
        path_of(path, sizeof path, dir, l.offs[i], "");
        if (l.offs[i] > log_end) {
            LOG_INFO("producer-state", "%s: snapshot %s is past the log end %" PRId64 "; removed", what, path,
                     log_end);
            remove_snapshot(v, dir, l.offs[i]);
            continue;
        }
        size_t len = 0;
        uint8_t *buf = read_file(v, path, &len);
        char why[256] = "cannot be read";
        if (buf != NULL && pstate_snapshot_decode(s, buf, len, now, why, sizeof why) == 0) {
            free(buf);
            /* The aborted transactions below it (none for a snapshot written
             * before transactions, which has no such file). */
            char apath[4200];
            path_of(apath, sizeof apath, dir, l.offs[i], PFILES_ABORTED_EXT);
            size_t alen = 0;
            uint8_t *abuf = read_file(v, apath, &alen);
            char awhy[256] = "";
            if (abuf != NULL && pstate_aborted_decode(s, abuf, alen, awhy, sizeof awhy) != 0)
                LOG_WARN("producer-state",
                         "%s: %s is unusable (%s); read_committed fetches below offset %" PRId64
                         " may return records of aborted transactions",
                         what, apath, awhy, l.offs[i]);
            free(abuf);
            return l.offs[i];
        }
        free(buf);
        LOG_WARN("producer-state",
                 "%s: snapshot %s is unusable (%s); removed, the state is rebuilt from the log", what, path,
                 why);
        remove_snapshot(v, dir, l.offs[i]);
    }
    pstate_clear(s);
    return -1;
}

void pfiles_remove_above(const sl_vfs *v, const char *dir, int64_t above) {
    listing l;
    list_snapshots(v, dir, &l);
    for (int i = 0; i < l.n; i++)
        if (l.offs[i] > above)
            remove_snapshot(v, dir, l.offs[i]);
}

/* Writes one file atomically: .tmp, fsync, rename, directory fsync. */
static int write_atomic(const sl_vfs *v, const char *dir, const char *what, int64_t offset, const char *ext,
                        const uint8_t *buf, size_t len) {
    char path[4200], tmp[4200], text[32];
    snprintf(text, sizeof text, "%s.tmp", ext);
    path_of(path, sizeof path, dir, offset, ext);
    path_of(tmp, sizeof tmp, dir, offset, text);
    int fd = v->open(v->ctx, tmp, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    int rc = fd < 0 ? fd : sl_vfs_pwrite_full(v, fd, buf, len, 0);
    if (fd >= 0) {
        if (rc == 0)
            rc = v->fsync(v->ctx, fd);
        v->close(v->ctx, fd);
    }
    if (rc == 0)
        rc = v->rename(v->ctx, tmp, path);
    if (rc == 0)
        rc = v->fsync_dir(v->ctx, dir);
    if (rc != 0) {
        v->unlink(v->ctx, tmp);
        LOG_WARN("producer-state", "%s: cannot write %s: %s", what, path, strerror(-rc));
        return rc;
    }
    return 0;
}

int pfiles_write(const sl_vfs *v, const char *dir, const char *what, int64_t offset, const uint8_t *buf,
                 size_t len, const uint8_t *abuf, size_t alen) {
    /* The aborted list first: a snapshot on disk always has its list. */
    int rc = abuf ? write_atomic(v, dir, what, offset, PFILES_ABORTED_EXT, abuf, alen) : 0;
    if (rc == 0)
        rc = write_atomic(v, dir, what, offset, "", buf, len);
    if (rc != 0)
        return rc;
    listing l;
    list_snapshots(v, dir, &l);
    for (int i = PFILES_KEEP; i < l.n; i++)
        remove_snapshot(v, dir, l.offs[i]);
    return 0;
}
