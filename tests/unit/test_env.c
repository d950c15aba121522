/*
 * test_env.c - the environment: the POSIX vfs against a scratch directory,
 * the fault-injecting vfs (by call number, by seeded probability, torn
 * writes, changing the plan), the real clocks and random source, and the
 * per-thread binding that log lines read.
 */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "core/env.h"

static char scratch[256];

static void make_scratch(void) {
    snprintf(scratch, sizeof scratch, "/tmp/sluice-test-env-%d", (int)getpid());
    const sl_vfs *v = sl_vfs_posix();
    v->mkdir(v->ctx, scratch, 0755);
}

static int count_entry(void *ctx, const char *name, bool is_dir) {
    (void)name;
    if (!is_dir)
        (*(int *)ctx)++;
    return 0;
}

static int count_dir(void *ctx, const char *name, bool is_dir) {
    (void)name;
    if (is_dir)
        (*(int *)ctx)++;
    return 0;
}

static void test_posix_vfs(void) {
    make_scratch();
    const sl_vfs *v = sl_vfs_posix();
    char path[300], path2[300];
    snprintf(path, sizeof path, "%s/a", scratch);
    snprintf(path2, sizeof path2, "%s/b", scratch);
    int fd = v->open(v->ctx, path, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    CHECK_EQ_INT(sl_vfs_pwrite_full(v, fd, "hello world", 11, 0), 0);
    CHECK_EQ_INT(v->fsize(v->ctx, fd), 11);
    char buf[16] = {0};
    CHECK_EQ_INT(sl_vfs_pread_full(v, fd, buf, 5, 6), 0);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_EQ_INT(sl_vfs_pread_full(v, fd, buf, 5, 8), -EIO); /* past the end */
    CHECK_EQ_INT(v->ftruncate(v->ctx, fd, 5), 0);
    CHECK_EQ_INT(v->fsize(v->ctx, fd), 5);
    CHECK_EQ_INT(v->fsync(v->ctx, fd), 0);
    CHECK_EQ_INT(v->close(v->ctx, fd), 0);
    CHECK_EQ_INT(v->rename(v->ctx, path, path2), 0);
    sl_stat st;
    CHECK_EQ_INT(v->stat(v->ctx, path, &st), -ENOENT);
    CHECK_EQ_INT(v->stat(v->ctx, path2, &st), 0);
    CHECK(!st.is_dir);
    CHECK_EQ_INT(st.size, 5);
    CHECK_EQ_INT(v->open(v->ctx, path2, SL_O_RDWR | SL_O_CREAT | SL_O_EXCL, 0644), -EEXIST);
    char sub[320];
    snprintf(sub, sizeof sub, "%s/sub", scratch);
    CHECK_EQ_INT(v->mkdir(v->ctx, sub, 0755), 0);
    int n = 0, dirs = 0;
    CHECK_EQ_INT(v->list(v->ctx, scratch, count_entry, &n), 0);
    CHECK_EQ_INT(n, 1); /* the file; the directory is not counted */
    CHECK_EQ_INT(v->list(v->ctx, scratch, count_dir, &dirs), 0);
    CHECK_EQ_INT(dirs, 1);
    CHECK(v->stat(v->ctx, path2, &st) == 0 && st.mtime_ms > 1700000000000LL);
    CHECK_EQ_INT(v->rmdir(v->ctx, sub), 0);
    CHECK_EQ_INT(v->fsync_dir(v->ctx, scratch), 0);
    CHECK_EQ_INT(v->unlink(v->ctx, path2), 0);
    CHECK_EQ_INT(v->rmdir(v->ctx, scratch), 0);
    CHECK_EQ_INT(v->stat(v->ctx, scratch, &st), -ENOENT);
}

static void test_faulty_by_call_number_and_torn_write(void) {
    make_scratch();
    sl_vfs_faults plan = {0};
    plan.fail_from[SL_VFS_OP_PWRITE] = 3; /* the third write and every later one */
    plan.err[SL_VFS_OP_PWRITE] = -ENOSPC;
    plan.torn_bytes = 2;
    sl_vfs_faulty *f = sl_vfs_faulty_new(sl_vfs_posix(), &plan);
    REQUIRE(f);
    const sl_vfs *v = sl_vfs_faulty_vfs(f);
    char path[300];
    snprintf(path, sizeof path, "%s/f", scratch);
    int fd = v->open(v->ctx, path, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    CHECK_EQ_INT(v->pwrite(v->ctx, fd, "aaaa", 4, 0), 4);
    CHECK_EQ_INT(v->pwrite(v->ctx, fd, "bbbb", 4, 4), 4);
    CHECK_EQ_INT(v->pwrite(v->ctx, fd, "cccc", 4, 8), -ENOSPC);
    CHECK_EQ_INT(v->fsize(v->ctx, fd), 10); /* two bytes of the failed write landed */
    CHECK_EQ_INT(v->pwrite(v->ctx, fd, "dddd", 4, 10), -ENOSPC);
    CHECK_EQ_INT(sl_vfs_faulty_calls(f, SL_VFS_OP_PWRITE), 4);
    CHECK_EQ_INT(sl_vfs_faulty_failed(f, SL_VFS_OP_PWRITE), 2);
    /* Space comes back. */
    sl_vfs_faulty_set(f, NULL);
    CHECK_EQ_INT(v->pwrite(v->ctx, fd, "eeee", 4, 12), 4);
    CHECK_EQ_INT(v->fsync(v->ctx, fd), 0);
    v->close(v->ctx, fd);
    v->unlink(v->ctx, path);
    v->rmdir(v->ctx, scratch);
    sl_vfs_faulty_free(f);
}

/* The same seed fails the same calls. */
static uint64_t failure_pattern(uint64_t seed) {
    sl_vfs_faults plan = {0};
    plan.seed = seed;
    plan.fail_per_million[SL_VFS_OP_FSYNC] = 250000;
    sl_vfs_faulty *f = sl_vfs_faulty_new(sl_vfs_posix(), &plan);
    const sl_vfs *v = sl_vfs_faulty_vfs(f);
    char path[300];
    snprintf(path, sizeof path, "/tmp/sluice-test-env-p-%d", (int)getpid());
    int fd = v->open(v->ctx, path, SL_O_RDWR | SL_O_CREAT, 0644);
    uint64_t bits = 0;
    for (int i = 0; i < 64; i++)
        if (v->fsync(v->ctx, fd) != 0)
            bits |= 1ull << i;
    v->close(v->ctx, fd);
    v->unlink(v->ctx, path);
    sl_vfs_faulty_free(f);
    return bits;
}

static void test_faulty_probability_is_seeded(void) {
    uint64_t a = failure_pattern(7), b = failure_pattern(7), c = failure_pattern(8);
    CHECK(a == b);
    CHECK(a != c);
    int ones = __builtin_popcountll(a);
    CHECK(ones > 4 && ones < 32); /* about a quarter of 64 */
}

static void test_real_env(void) {
    sl_env e;
    sl_env_init_real(&e);
    int64_t a = sl_env_mono_ns(&e), b = sl_env_mono_ns(&e);
    CHECK(b >= a);
    CHECK(sl_env_wall_ms(&e) > 1700000000000LL); /* after 2023 */
    CHECK(sl_env_random_u64(&e) != sl_env_random_u64(&e));
    CHECK(e.vfs == sl_vfs_posix());
}

static void *other_thread(void *arg) {
    (void)arg;
    return (void *)sl_env_bound(); /* a new thread starts unbound */
}

static void test_binding_is_per_thread(void) {
    sl_env e;
    sl_env_init_real(&e);
    e.node_id = 3;
    CHECK(sl_env_bind(&e) == NULL);
    CHECK(sl_env_bound() == &e);
    pthread_t t;
    void *seen = &e;
    REQUIRE(pthread_create(&t, NULL, other_thread, NULL) == 0);
    pthread_join(t, &seen);
    CHECK(seen == NULL);
    CHECK(sl_env_bind(NULL) == &e);
    CHECK(sl_env_bound() == NULL);
}

int main(void) {
    UNIT_RUN(test_posix_vfs);
    UNIT_RUN(test_faulty_by_call_number_and_torn_write);
    UNIT_RUN(test_faulty_probability_is_seeded);
    UNIT_RUN(test_real_env);
    UNIT_RUN(test_binding_is_per_thread);
    return UNIT_END("test_env");
}
