/*
 * env.c - the real environment, the POSIX vfs and the fault-injecting vfs.
 * See env.h.
 */
#include "core/env.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- POSIX vfs ------------------------------------------------------------ */

static int neg_errno(void) { return errno ? -errno : -EIO; }

static int px_open(void *ctx, const char *path, int flags, int mode) {
    (void)ctx;
    int f = O_CLOEXEC;
    f |= (flags & SL_O_RDWR) ? O_RDWR : O_RDONLY;
    if (flags & SL_O_CREAT)
        f |= O_CREAT;
    if (flags & SL_O_EXCL)
        f |= O_EXCL;
    if (flags & SL_O_TRUNC)
        f |= O_TRUNC;
    if (flags & SL_O_APPEND)
        f |= O_APPEND;
    int fd;
    do
        fd = open(path, f, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? neg_errno() : fd;
}

static int px_close(void *ctx, int fd) {
    (void)ctx;
    /* Linux closes the descriptor even when close() reports EINTR. */
    return close(fd) == 0 || errno == EINTR ? 0 : neg_errno();
}

static ssize_t px_pread(void *ctx, int fd, void *buf, size_t n, int64_t off) {
    (void)ctx;
    ssize_t r;
    do
        r = pread(fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return r < 0 ? neg_errno() : r;
}

static ssize_t px_pwrite(void *ctx, int fd, const void *buf, size_t n, int64_t off) {
    (void)ctx;
    ssize_t r;
    do
        r = pwrite(fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return r < 0 ? neg_errno() : r;
}

static int px_fsync(void *ctx, int fd) {
    (void)ctx;
    return fsync(fd) == 0 ? 0 : neg_errno();
}

static int px_ftruncate(void *ctx, int fd, int64_t len) {
    (void)ctx;
    int r;
    do
        r = ftruncate(fd, (off_t)len);
    while (r < 0 && errno == EINTR);
    return r == 0 ? 0 : neg_errno();
}

static int64_t px_fsize(void *ctx, int fd) {
    (void)ctx;
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : neg_errno();
}

static int px_stat(void *ctx, const char *path, sl_stat *out) {
    (void)ctx;
    struct stat st;
    if (stat(path, &st) != 0)
        return neg_errno();
    out->is_dir = S_ISDIR(st.st_mode);
    out->size = (int64_t)st.st_size;
    out->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return 0;
}

static int px_rename(void *ctx, const char *from, const char *to) {
    (void)ctx;
    return rename(from, to) == 0 ? 0 : neg_errno();
}

static int px_unlink(void *ctx, const char *path) {
    (void)ctx;
    return unlink(path) == 0 ? 0 : neg_errno();
}

static int px_mkdir(void *ctx, const char *path, int mode) {
    (void)ctx;
    return mkdir(path, (mode_t)mode) == 0 ? 0 : neg_errno();
}

static int px_rmdir(void *ctx, const char *path) {
    (void)ctx;
    return rmdir(path) == 0 ? 0 : neg_errno();
}

static int px_list(void *ctx, const char *dir, sl_vfs_list_fn fn, void *fn_ctx) {
    (void)ctx;
    DIR *d = opendir(dir);
    if (d == NULL)
        return neg_errno();
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        bool is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) { /* some file systems leave the type out */
            struct stat st;
            is_dir = fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        rc = fn(fn_ctx, e->d_name, is_dir);
    }
    closedir(d);
    return rc;
}

static int px_fsync_dir(void *ctx, const char *dir) {
    (void)ctx;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return neg_errno();
    int rc = fsync(fd) == 0 ? 0 : neg_errno();
    close(fd);
    return rc;
}

static const sl_vfs posix_vfs = {NULL,      px_open,      px_close, px_pread, px_pwrite,
                                 px_fsync,  px_ftruncate, px_fsize, px_stat,  px_rename,
                                 px_unlink, px_mkdir,     px_rmdir, px_list,  px_fsync_dir};

const sl_vfs *sl_vfs_posix(void) { return &posix_vfs; }

int sl_vfs_pread_full(const sl_vfs *v, int fd, void *buf, size_t n, int64_t off) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = v->pread(v->ctx, fd, p, n, off);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -EIO;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

int sl_vfs_pwrite_full(const sl_vfs *v, int fd, const void *buf, size_t n, int64_t off) {
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = v->pwrite(v->ctx, fd, p, n, off);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -EIO;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* ---- fault-injecting vfs ---------------------------------------------------- */

struct sl_vfs_faulty {
    sl_vfs vfs; /* ctx points back here */
    const sl_vfs *under;
    pthread_mutex_t mu;
    sl_vfs_faults plan;
    uint64_t rng;
    uint64_t calls[SL_VFS_OP_COUNT];
    uint64_t failed[SL_VFS_OP_COUNT];
};

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Counts a call of op and says whether it fails (0) or its error. */
static int fault_check(sl_vfs_faulty *f, sl_vfs_op op) {
    pthread_mutex_lock(&f->mu);
    uint64_t n = ++f->calls[op];
    bool fail = f->plan.fail_from[op] != 0 && n >= f->plan.fail_from[op];
    if (!fail && f->plan.fail_per_million[op] != 0)
        fail = splitmix(&f->rng) % 1000000u < f->plan.fail_per_million[op];
    int err = 0;
    if (fail) {
        f->failed[op]++;
        err = f->plan.err[op] ? f->plan.err[op] : -EIO;
        assert(err < 0);
    }
    pthread_mutex_unlock(&f->mu);
    return err;
}

#define FAULTY(ctx) ((sl_vfs_faulty *)(ctx))
#define UNDER(ctx)  (FAULTY(ctx)->under)

static int fy_open(void *ctx, const char *path, int flags, int mode) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_OPEN);
    return e ? e : UNDER(ctx)->open(UNDER(ctx)->ctx, path, flags, mode);
}

static int fy_close(void *ctx, int fd) { return UNDER(ctx)->close(UNDER(ctx)->ctx, fd); }

static ssize_t fy_pread(void *ctx, int fd, void *buf, size_t n, int64_t off) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_PREAD);
    return e ? e : UNDER(ctx)->pread(UNDER(ctx)->ctx, fd, buf, n, off);
}

static ssize_t fy_pwrite(void *ctx, int fd, const void *buf, size_t n, int64_t off) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_PWRITE);
    if (e == 0)
        return UNDER(ctx)->pwrite(UNDER(ctx)->ctx, fd, buf, n, off);
    size_t torn = FAULTY(ctx)->plan.torn_bytes;
    if (torn > 0)
        UNDER(ctx)->pwrite(UNDER(ctx)->ctx, fd, buf, torn < n ? torn : n, off);
    return e;
}

static int fy_fsync(void *ctx, int fd) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_FSYNC);
    return e ? e : UNDER(ctx)->fsync(UNDER(ctx)->ctx, fd);
}

static int fy_ftruncate(void *ctx, int fd, int64_t len) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_FTRUNCATE);
    return e ? e : UNDER(ctx)->ftruncate(UNDER(ctx)->ctx, fd, len);
}

static int64_t fy_fsize(void *ctx, int fd) { return UNDER(ctx)->fsize(UNDER(ctx)->ctx, fd); }

static int fy_stat(void *ctx, const char *path, sl_stat *out) {
    return UNDER(ctx)->stat(UNDER(ctx)->ctx, path, out);
}

static int fy_rename(void *ctx, const char *from, const char *to) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_RENAME);
    return e ? e : UNDER(ctx)->rename(UNDER(ctx)->ctx, from, to);
}

static int fy_unlink(void *ctx, const char *path) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_UNLINK);
    return e ? e : UNDER(ctx)->unlink(UNDER(ctx)->ctx, path);
}

static int fy_mkdir(void *ctx, const char *path, int mode) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_MKDIR);
    return e ? e : UNDER(ctx)->mkdir(UNDER(ctx)->ctx, path, mode);
}

static int fy_rmdir(void *ctx, const char *path) { return UNDER(ctx)->rmdir(UNDER(ctx)->ctx, path); }

static int fy_list(void *ctx, const char *dir, sl_vfs_list_fn fn, void *fn_ctx) {
    return UNDER(ctx)->list(UNDER(ctx)->ctx, dir, fn, fn_ctx);
}

static int fy_fsync_dir(void *ctx, const char *dir) {
    int e = fault_check(FAULTY(ctx), SL_VFS_OP_FSYNC);
    return e ? e : UNDER(ctx)->fsync_dir(UNDER(ctx)->ctx, dir);
}

sl_vfs_faulty *sl_vfs_faulty_new(const sl_vfs *under, const sl_vfs_faults *plan) {
    sl_vfs_faulty *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->vfs = (sl_vfs){f,       fy_open,   fy_close,  fy_pread, fy_pwrite, fy_fsync, fy_ftruncate, fy_fsize,
                      fy_stat, fy_rename, fy_unlink, fy_mkdir, fy_rmdir,  fy_list,  fy_fsync_dir};
    f->under = under;
    pthread_mutex_init(&f->mu, NULL);
    sl_vfs_faulty_set(f, plan);
    return f;
}

const sl_vfs *sl_vfs_faulty_vfs(sl_vfs_faulty *f) { return &f->vfs; }

void sl_vfs_faulty_set(sl_vfs_faulty *f, const sl_vfs_faults *plan) {
    pthread_mutex_lock(&f->mu);
    if (plan)
        f->plan = *plan;
    else
        memset(&f->plan, 0, sizeof f->plan);
    f->rng = f->plan.seed;
    pthread_mutex_unlock(&f->mu);
}

uint64_t sl_vfs_faulty_calls(sl_vfs_faulty *f, sl_vfs_op op) {
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->calls[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t sl_vfs_faulty_failed(sl_vfs_faulty *f, sl_vfs_op op) {
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->failed[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

void sl_vfs_faulty_free(sl_vfs_faulty *f) {
    if (f == NULL)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ---- the real environment ---------------------------------------------------- */

static int64_t real_mono_ns(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_wall_ms(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_random(void *ctx, void *buf, size_t n) {
    (void)ctx;
    uint8_t *b = buf;
    while (n > 0) {
        ssize_t got = getrandom(b, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            /* getrandom cannot fail on a kernel that has it once the pool is
             * initialised; keep going with a clock-seeded generator rather
             * than handing out zeros. */
            uint64_t s = (uint64_t)real_mono_ns(NULL) ^ ((uint64_t)(uintptr_t)buf << 16);
            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)splitmix(&s);
            return;
        }
        b += got;
        n -= (size_t)got;
    }
}

void sl_env_init_real(sl_env *env) {
    *env = (sl_env){NULL, real_mono_ns, real_wall_ms, real_random, &posix_vfs, -1};
}

uint64_t sl_env_random_u64(const sl_env *e) {
    uint64_t x;
    e->random(e->ctx, &x, sizeof x);
    return x;
}

static _Thread_local const sl_env *bound_env;

const sl_env *sl_env_bind(const sl_env *env) {
    const sl_env *old = bound_env;
    bound_env = env;
    return old;
}

const sl_env *sl_env_bound(void) { return bound_env; }
