/*
 * sim_disk.c - an in-memory file system behind sl_vfs, with crashes.
 *
 * Each file has its current content and its durable content (as of its
 * last fsync). A crash replaces the current content by the durable content
 * plus, when the file had grown since, a random prefix of the growth: what a
 * power cut leaves of appends that were in the page cache (a torn tail). An
 * overwrite of already durable bytes that was not fsynced is lost whole.
 * Directory entries (create, rename, unlink, mkdir, rmdir) are durable when
 * the call returns. Descriptors opened before a crash fail with -EBADF.
 *
 * Paths are compared as strings; a parent directory must exist for a file
 * or directory to be created in it ("/" always exists). Everything is
 * bounded: SIM_DISK_FILES_MAX entries, SIM_DISK_FDS_MAX open descriptors,
 * SIM_DISK_FILE_MAX bytes per file.
 */
#include "sim.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_DISK_FILES_MAX 4096
#define SIM_DISK_FDS_MAX   1024
#define SIM_DISK_FILE_MAX  (256 << 20)
#define SIM_PATH_MAX       512

typedef struct sfile {
    bool used, is_dir;
    char path[SIM_PATH_MAX];
    uint8_t *data;
    int64_t len, cap;
    uint8_t *durable;
    int64_t dlen;
    int64_t mtime_ms; /* wall clock of the last change to the content */
} sfile;

typedef struct sfd {
    bool used;
    int file;
    uint64_t epoch;
    bool append;
} sfd;

struct sim_disk {
    sl_vfs vfs;
    sim *s;
    sfile files[SIM_DISK_FILES_MAX];
    sfd fds[SIM_DISK_FDS_MAX];
    uint64_t epoch; /* bumped by a crash */
    bool full;
    uint32_t eio_per_million;
};

static int find(sim_disk *d, const char *path) {
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++)
        if (d->files[i].used && strcmp(d->files[i].path, path) == 0)
            return i;
    return -1;
}

/* The parent of path exists as a directory (or is the root). */
static bool parent_ok(sim_disk *d, const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path)
        return true;
    char parent[SIM_PATH_MAX];
    size_t n = (size_t)(slash - path);
    if (n >= sizeof parent)
        return false;
    memcpy(parent, path, n);
    parent[n] = '\0';
    int i = find(d, parent);
    return i >= 0 && d->files[i].is_dir;
}

static int add(sim_disk *d, const char *path, bool is_dir) {
    if (strlen(path) >= SIM_PATH_MAX)
        return -ENAMETOOLONG;
    if (!parent_ok(d, path))
        return -ENOENT;
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++)
        if (!d->files[i].used) {
            sfile *f = &d->files[i];
            memset(f, 0, sizeof *f);
            f->used = true;
            f->is_dir = is_dir;
            strcpy(f->path, path);
            return i;
        }
    return -ENOSPC;
}

static void drop(sfile *f) {
    free(f->data);
    free(f->durable);
    memset(f, 0, sizeof *f);
}

static bool io_error(sim_disk *d) { return sim_chance(&d->s->rng, d->eio_per_million); }

/* The simulated wall clock, as sim_env gives it to the node. */
static int64_t wall_now(const sim_disk *d) { return SIM_WALL_EPOCH_MS + d->s->now; }

static sfd *fd_get(sim_disk *d, int fd) {
    if (fd < 0 || fd >= SIM_DISK_FDS_MAX || !d->fds[fd].used || d->fds[fd].epoch != d->epoch)
        return NULL;
    return &d->fds[fd];
}

static int dk_open(void *ctx, const char *path, int flags, int mode) {
    (void)mode;
    sim_disk *d = ctx;
    int i = find(d, path);
    if (i >= 0 && d->files[i].is_dir && (flags & SL_O_RDWR))
        return -EISDIR;
    if (i >= 0 && (flags & SL_O_CREAT) && (flags & SL_O_EXCL))
        return -EEXIST;
    if (i < 0) {
        if (!(flags & SL_O_CREAT))
            return -ENOENT;
        i = add(d, path, false);
        if (i < 0)
            return i;
    }
    if (flags & SL_O_TRUNC) {
        d->files[i].len = 0;
        d->files[i].mtime_ms = wall_now(d);
    }
    for (int fd = 0; fd < SIM_DISK_FDS_MAX; fd++)
        if (!d->fds[fd].used || d->fds[fd].epoch != d->epoch) {
            d->fds[fd] = (sfd){true, i, d->epoch, (flags & SL_O_APPEND) != 0};
            return fd;
        }
    return -EMFILE;
}

static int dk_close(void *ctx, int fd) {
    sim_disk *d = ctx;
    if (fd < 0 || fd >= SIM_DISK_FDS_MAX || !d->fds[fd].used)
        return -EBADF;
    d->fds[fd].used = false;
    return 0;
}

static ssize_t dk_pread(void *ctx, int fd, void *buf, size_t n, int64_t off) {
    sim_disk *d = ctx;
    sfd *e = fd_get(d, fd);
    if (e == NULL)
        return -EBADF;
    if (io_error(d))
        return -EIO;
    sfile *f = &d->files[e->file];
    if (off < 0)
        return -EINVAL;
    if (off >= f->len)
        return 0;
    size_t k = (size_t)(f->len - off) < n ? (size_t)(f->len - off) : n;
    memcpy(buf, f->data + off, k);
    return (ssize_t)k;
}

static int grow(sfile *f, int64_t need) {
    if (need <= f->cap)
        return 0;
    if (need > SIM_DISK_FILE_MAX)
        return -EFBIG;
    int64_t ncap = f->cap ? f->cap : 4096;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nd = realloc(f->data, (size_t)ncap);
    if (nd == NULL)
        return -ENOMEM;
    f->data = nd;
    f->cap = ncap;
    return 0;
}

static ssize_t dk_pwrite(void *ctx, int fd, const void *buf, size_t n, int64_t off) {
    sim_disk *d = ctx;
    sfd *e = fd_get(d, fd);
    if (e == NULL)
        return -EBADF;
    if (d->full)
        return -ENOSPC;
    if (io_error(d))
        return -EIO;
    sfile *f = &d->files[e->file];
    if (e->append)
        off = f->len;
    if (off < 0)
        return -EINVAL;
    int rc = grow(f, off + (int64_t)n);
    if (rc)
        return rc;
    if (off > f->len)
        memset(f->data + f->len, 0, (size_t)(off - f->len));
    memcpy(f->data + off, buf, n);
    if (off + (int64_t)n > f->len)
        f->len = off + (int64_t)n;
    f->mtime_ms = wall_now(d);
    return (ssize_t)n;
}

static int dk_fsync(void *ctx, int fd) {
    sim_disk *d = ctx;
    sfd *e = fd_get(d, fd);
    if (e == NULL)
        return -EBADF;
    if (io_error(d))
        return -EIO;
    sfile *f = &d->files[e->file];
    uint8_t *nd = f->len ? malloc((size_t)f->len) : NULL;
    if (f->len && nd == NULL)
        return -ENOMEM;
    if (f->len)
        memcpy(nd, f->data, (size_t)f->len);
    free(f->durable);
    f->durable = nd;
    f->dlen = f->len;
    return 0;
}

static int dk_ftruncate(void *ctx, int fd, int64_t len) {
    sim_disk *d = ctx;
    sfd *e = fd_get(d, fd);
    if (e == NULL)
        return -EBADF;
    if (len < 0)
        return -EINVAL;
    sfile *f = &d->files[e->file];
    int rc = grow(f, len);
    if (rc)
        return rc;
    if (len > f->len)
        memset(f->data + f->len, 0, (size_t)(len - f->len));
    f->len = len;
    f->mtime_ms = wall_now(d);
    return 0;
}

static int64_t dk_fsize(void *ctx, int fd) {
    sim_disk *d = ctx;
    sfd *e = fd_get(d, fd);
    return e ? d->files[e->file].len : -EBADF;
}

static int dk_stat(void *ctx, const char *path, sl_stat *out) {
    sim_disk *d = ctx;
    if (strcmp(path, "/") == 0) {
        *out = (sl_stat){true, 0, 0};
        return 0;
    }
    int i = find(d, path);
    if (i < 0)
        return -ENOENT;
    *out = (sl_stat){d->files[i].is_dir, d->files[i].len, d->files[i].mtime_ms};
    return 0;
}

static bool has_children(sim_disk *d, const char *dir) {
    size_t n = strlen(dir);
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++)
        if (d->files[i].used && strncmp(d->files[i].path, dir, n) == 0 && d->files[i].path[n] == '/')
            return true;
    return false;
}

static int dk_rename(void *ctx, const char *from, const char *to) {
    sim_disk *d = ctx;
    int i = find(d, from);
    if (i < 0)
        return -ENOENT;
    if (strlen(to) >= SIM_PATH_MAX)
        return -ENAMETOOLONG;
    if (!parent_ok(d, to))
        return -ENOENT;
    int j = find(d, to);
    if (j >= 0 && j != i) {
        if (d->files[j].is_dir && (!d->files[i].is_dir || has_children(d, to)))
            return d->files[i].is_dir ? -ENOTEMPTY : -EISDIR;
        drop(&d->files[j]);
    }
    if (d->files[i].is_dir) {
        /* Move every entry below the directory along with it. */
        size_t n = strlen(from);
        for (int k = 0; k < SIM_DISK_FILES_MAX; k++) {
            sfile *f = &d->files[k];
            if (f->used && strncmp(f->path, from, n) == 0 && f->path[n] == '/') {
                char np[SIM_PATH_MAX * 2];
                snprintf(np, sizeof np, "%s%s", to, f->path + n);
                if (strlen(np) >= SIM_PATH_MAX)
                    return -ENAMETOOLONG;
                strcpy(f->path, np);
            }
        }
    }
    strcpy(d->files[i].path, to);
    return 0;
}

static int dk_unlink(void *ctx, const char *path) {
    sim_disk *d = ctx;
    int i = find(d, path);
    if (i < 0)
        return -ENOENT;
    if (d->files[i].is_dir)
        return -EISDIR;
    /* Open descriptors keep working on POSIX; here they are cut off too,
     * which is stricter: the product must not read a file it unlinked. */
    for (int fd = 0; fd < SIM_DISK_FDS_MAX; fd++)
        if (d->fds[fd].used && d->fds[fd].file == i)
            d->fds[fd].epoch = UINT64_MAX;
    drop(&d->files[i]);
    return 0;
}

static int dk_mkdir(void *ctx, const char *path, int mode) {
    (void)mode;
    sim_disk *d = ctx;
    if (strcmp(path, "/") == 0 || find(d, path) >= 0)
        return -EEXIST;
    int i = add(d, path, true);
    return i < 0 ? i : 0;
}

static int dk_rmdir(void *ctx, const char *path) {
    sim_disk *d = ctx;
    int i = find(d, path);
    if (i < 0)
        return -ENOENT;
    if (!d->files[i].is_dir)
        return -ENOTDIR;
    if (has_children(d, path))
        return -ENOTEMPTY;
    drop(&d->files[i]);
    return 0;
}

static int dk_list(void *ctx, const char *dir, sl_vfs_list_fn fn, void *fn_ctx) {
    sim_disk *d = ctx;
    bool root = strcmp(dir, "/") == 0;
    if (!root) {
        int i = find(d, dir);
        if (i < 0)
            return -ENOENT;
        if (!d->files[i].is_dir)
            return -ENOTDIR;
    }
    size_t n = root ? 0 : strlen(dir);
    /* Names are collected first: the callback may create or remove entries. */
    char(*names)[SIM_PATH_MAX] = malloc(sizeof(*names) * SIM_DISK_FILES_MAX);
    bool *dirs = malloc(sizeof(*dirs) * SIM_DISK_FILES_MAX);
    if (names == NULL || dirs == NULL) {
        free(names);
        free(dirs);
        return -ENOMEM;
    }
    int k = 0;
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++) {
        const sfile *f = &d->files[i];
        if (!f->used || strncmp(f->path, dir, n) != 0 || f->path[n] != '/')
            continue;
        const char *rest = f->path + n + 1;
        if (*rest && strchr(rest, '/') == NULL) {
            dirs[k] = f->is_dir;
            strcpy(names[k++], rest);
        }
    }
    int rc = 0;
    for (int i = 0; i < k && rc == 0; i++)
        rc = fn(fn_ctx, names[i], dirs[i]);
    free(names);
    free(dirs);
    return rc;
}

static int dk_fsync_dir(void *ctx, const char *dir) {
    sim_disk *d = ctx;
    sl_stat st;
    return dk_stat(d, dir, &st) == 0 && st.is_dir ? 0 : -ENOENT;
}

sim_disk *sim_disk_new(sim *s) {
    sim_disk *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->s = s;
    d->vfs = (sl_vfs){d,       dk_open,   dk_close,  dk_pread, dk_pwrite, dk_fsync, dk_ftruncate, dk_fsize,
                      dk_stat, dk_rename, dk_unlink, dk_mkdir, dk_rmdir,  dk_list,  dk_fsync_dir};
    return d;
}

void sim_disk_free(sim_disk *d) {
    if (d == NULL)
        return;
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++)
        if (d->files[i].used)
            drop(&d->files[i]);
    free(d);
}

const sl_vfs *sim_disk_vfs(sim_disk *d) { return &d->vfs; }

void sim_disk_crash(sim_disk *d) {
    d->epoch++;
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++) {
        sfile *f = &d->files[i];
        if (!f->used || f->is_dir)
            continue;
        int64_t keep = f->dlen;
        bool appended =
            f->len > f->dlen && (f->dlen == 0 || memcmp(f->data, f->durable, (size_t)f->dlen) == 0);
        if (appended)
            keep += (int64_t)sim_below(&d->s->rng, (uint64_t)(f->len - f->dlen) + 1);
        /* data already holds the appended bytes; restore the durable prefix. */
        if (f->dlen > 0)
            memcpy(f->data, f->durable, (size_t)f->dlen);
        f->len = appended ? keep : f->dlen;
    }
}

void sim_disk_set_full(sim_disk *d, bool full) { d->full = full; }
void sim_disk_set_eio(sim_disk *d, uint32_t per_million) { d->eio_per_million = per_million; }

int64_t sim_disk_bytes(const sim_disk *d) {
    int64_t n = 0;
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++)
        if (d->files[i].used)
            n += d->files[i].len;
    return n;
}

int sim_disk_files(const sim_disk *d) {
    int n = 0;
    for (int i = 0; i < SIM_DISK_FILES_MAX; i++)
        n += d->files[i].used && !d->files[i].is_dir;
    return n;
}
