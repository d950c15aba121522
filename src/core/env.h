/*
 * env.h - the environment a broker runs in: its clocks, its source of random
 * bytes, its file operations and its node id.
 *
 * Nothing below the broker reads the clock, asks the kernel for random bytes
 * or touches a file except through an sl_env (or through values taken from
 * one, such as `now` arguments and seeds). The broker makes one real
 * environment at start (sl_env_real); the deterministic simulation makes one
 * per simulated node over a fake clock, a seeded generator and an in-memory
 * file system, so several brokers run in one process and a run replays from
 * its seed.
 *
 * File operations (sl_vfs) are a small table in the manner of SQLite's VFS:
 * exactly what storage and the log directories need, with POSIX semantics
 * and -errno results, so a wrapper can inject EIO, ENOSPC, torn writes and
 * failed fsyncs underneath unchanged storage code (sl_vfs_faulty).
 *
 * Log lines carry the node id of the environment bound to the calling
 * thread: a thread that works for a broker binds its env once
 * (sl_env_bind), and the simulation binds the node it is about to step.
 *
 * Thread-safety: an sl_env and its vfs are immutable after creation and may
 * be used from any thread; the functions they point to must be thread-safe
 * when the owner uses them from several threads (the real ones are).
 */
#ifndef SLUICE_CORE_ENV_H
#define SLUICE_CORE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Flags of sl_vfs.open (a subset of open(2)'s, same meaning). */
#define SL_O_RDONLY 0x0
#define SL_O_RDWR   0x2
#define SL_O_CREAT  0x40
#define SL_O_EXCL   0x80
#define SL_O_TRUNC  0x200
#define SL_O_APPEND 0x400

typedef struct sl_stat {
    bool is_dir;
    int64_t size;
    int64_t mtime_ms; /* last modification, wall-clock milliseconds */
} sl_stat;

/* Called once per directory entry other than "." and ".."; is_dir says
 * whether the entry is a directory. Return non-zero to stop (that value is
 * returned by list). */
typedef int (*sl_vfs_list_fn)(void *ctx, const char *name, bool is_dir);

/* File operations. Results: >= 0 on success (a descriptor, a byte count or
 * 0), -errno on failure. Descriptors are the vfs's own numbers; the real vfs
 * uses kernel descriptors, so they may also be handed to sendfile(2). */
typedef struct sl_vfs {
    void *ctx;
    int (*open)(void *ctx, const char *path, int flags, int mode);
    int (*close)(void *ctx, int fd);
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t n, int64_t off);
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, int64_t off);
    int (*fsync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, int64_t len);
    int64_t (*fsize)(void *ctx, int fd);
    int (*stat)(void *ctx, const char *path, sl_stat *out);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path, int mode);
    int (*rmdir)(void *ctx, const char *path);
    int (*list)(void *ctx, const char *dir, sl_vfs_list_fn fn, void *fn_ctx);
    /* Makes the directory's entries (creations, renames, removals) durable. */
    int (*fsync_dir)(void *ctx, const char *dir);
} sl_vfs;

/* The POSIX implementation (kernel descriptors, real files). */
const sl_vfs *sl_vfs_posix(void);

/* Reads or writes the whole range, retrying short transfers; -errno, or
 * -EIO for end of file before n bytes (pread). */
int sl_vfs_pread_full(const sl_vfs *v, int fd, void *buf, size_t n, int64_t off);
int sl_vfs_pwrite_full(const sl_vfs *v, int fd, const void *buf, size_t n, int64_t off);

/* ---- fault injection ------------------------------------------------------ */

/* Which operation a fault applies to. */
typedef enum sl_vfs_op {
    SL_VFS_OP_OPEN = 0,
    SL_VFS_OP_PREAD,
    SL_VFS_OP_PWRITE,
    SL_VFS_OP_FSYNC,
    SL_VFS_OP_FTRUNCATE,
    SL_VFS_OP_RENAME,
    SL_VFS_OP_UNLINK,
    SL_VFS_OP_MKDIR,
    SL_VFS_OP_COUNT,
} sl_vfs_op;

/* A fault plan. For each op, the call numbers (1-based, counted per op since
 * creation) from `fail_from[op]` on (0: never) fail with `err[op]` (-errno,
 * default -EIO), and with probability `fail_per_million[op]` per call from a
 * seeded generator. A failing pwrite first writes `torn_bytes` of the buffer
 * (a torn write) when torn_bytes > 0. */
typedef struct sl_vfs_faults {
    uint64_t seed;
    uint64_t fail_from[SL_VFS_OP_COUNT];
    uint32_t fail_per_million[SL_VFS_OP_COUNT];
    int err[SL_VFS_OP_COUNT];
    size_t torn_bytes;
} sl_vfs_faults;

typedef struct sl_vfs_faulty sl_vfs_faulty;

/* A vfs that forwards to `under` and fails as `plan` says. The plan may be
 * changed later with sl_vfs_faulty_set (tests "fill the disk" and "free
 * space" that way). NULL on allocation failure. */
sl_vfs_faulty *sl_vfs_faulty_new(const sl_vfs *under, const sl_vfs_faults *plan);
const sl_vfs *sl_vfs_faulty_vfs(sl_vfs_faulty *f);
void sl_vfs_faulty_set(sl_vfs_faulty *f, const sl_vfs_faults *plan);
/* Calls of op so far, and how many of them were failed on purpose. */
uint64_t sl_vfs_faulty_calls(sl_vfs_faulty *f, sl_vfs_op op);
uint64_t sl_vfs_faulty_failed(sl_vfs_faulty *f, sl_vfs_op op);
void sl_vfs_faulty_free(sl_vfs_faulty *f);

/* ---- the environment -------------------------------------------------------- */

typedef struct sl_env {
    void *ctx;
    int64_t (*mono_ns)(void *ctx); /* CLOCK_MONOTONIC: intervals, deadlines */
    int64_t (*wall_ms)(void *ctx); /* CLOCK_REALTIME: record timestamps, retention */
    void (*random)(void *ctx, void *buf, size_t n);
    const sl_vfs *vfs;
    int32_t node_id; /* in log lines; -1 when not known yet */
} sl_env;

/* The real environment: kernel clocks, getrandom(2), the POSIX vfs, node id
 * -1. Fill node_id once the configuration is known. */
void sl_env_init_real(sl_env *env);

static inline int64_t sl_env_mono_ns(const sl_env *e) { return e->mono_ns(e->ctx); }
static inline int64_t sl_env_mono_ms(const sl_env *e) { return e->mono_ns(e->ctx) / 1000000; }
static inline int64_t sl_env_wall_ms(const sl_env *e) { return e->wall_ms(e->ctx); }
static inline void sl_env_random(const sl_env *e, void *buf, size_t n) { e->random(e->ctx, buf, n); }
uint64_t sl_env_random_u64(const sl_env *e);

/* Binds env to the calling thread (NULL unbinds); log lines written by the
 * thread then carry env->node_id. Returns the previous binding. */
const sl_env *sl_env_bind(const sl_env *env);
/* The calling thread's binding, or NULL. */
const sl_env *sl_env_bound(void);

#endif
