/*
 * Model test for the topic registry's promise that storage never deletes
 * data because the metadata disagrees with it (src/broker/logdirs.h,
 * metalog.h): a small broker state (topics created, grown, altered and
 * deleted, with records in every partition, and enough history for the
 * metadata log to have index entries) is damaged one byte at a time -
 * every byte of the metadata log's segment and checkpoint, a sample of its
 * index bytes, and a sample of the partitions' partition.metadata files -
 * after a clean or an unclean shutdown, and opened twice. After each round:
 *
 *   - no partition directory lost a byte: its data is where it was, or in a
 *     set-aside copy (<dir>.<id>-stray) next to it;
 *   - an open either refused (damage the broker will not guess around) or
 *     found exactly the topics that were recorded.
 *
 * The samples come from a seed, printed and replayable with SLUICE_SEED; the
 * whole run is bounded by DAMAGE_BUDGET_S seconds.
 */
#include "broker/topics.h"
#include "storage_testlib.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>

#define DAMAGE_BUDGET_S   120
#define INDEX_SAMPLES     48
#define OWNER_SAMPLES     48
#define PARTITION_DIRS    4
#define BATCHES_PER_PART  8
#define RECORDS_PER_BATCH 10
#define HISTORY_TOPICS    12

static char g_root[300], g_pristine[320];
static broker_config g_cfg;
static const char *const g_dirs[PARTITION_DIRS] = {"alpha-0", "alpha-1", "beta-0", "beta-1"};
static int64_t g_bytes[PARTITION_DIRS];

static int64_t dir_bytes(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int64_t n = 0;
    struct dirent *e;
    char p[700];
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            n += st.st_size;
    }
    closedir(d);
    return n;
}

static void copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t k;
    while ((k = read(in, buf, sizeof buf)) > 0)
        REQUIRE(write(out, buf, (size_t)k) == k);
    close(in);
    close(out);
}

/* Copies a log.dirs root: its files and its directories of files. */
static void copy_root(const char *from, const char *to) {
    REQUIRE(mkdir(to, 0755) == 0);
    DIR *d = opendir(from);
    REQUIRE(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char a[700], b[700];
        struct stat st;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        REQUIRE(stat(a, &st) == 0);
        if (!S_ISDIR(st.st_mode)) {
            copy_file(a, b);
            continue;
        }
        REQUIRE(mkdir(b, 0755) == 0);
        DIR *sd = opendir(a);
        REQUIRE(sd != NULL);
        struct dirent *f;
        while ((f = readdir(sd)) != NULL) {
            char fa[1000], fb[1000];
            snprintf(fa, sizeof fa, "%s/%s", a, f->d_name);
            snprintf(fb, sizeof fb, "%s/%s", b, f->d_name);
            if (stat(fa, &st) == 0 && S_ISREG(st.st_mode))
                copy_file(fa, fb);
        }
        closedir(sd);
    }
    closedir(d);
}

static void append_records(topic *t, int32_t part, uint8_t fill) {
    partition *p = topic_partition(t, part);
    REQUIRE(p != NULL && p->log != NULL);
    static uint8_t buf[1 << 16];
    for (int i = 0; i < BATCHES_PER_PART; i++) {
        size_t n = tl_build_batch(buf, sizeof buf, RECORDS_PER_BATCH, 1700000000000LL, 100, fill);
        REQUIRE(n > 0);
        plog_append_info info;
        REQUIRE(plog_append(p->log, buf, n, 0, 1700000000000LL, &info) == 0);
    }
}

/* The state every round starts from. */
static void build_state(void) {
    char msg[TOPICS_MSG_MAX];
    topic_registry *reg = topics_open(&g_cfg, tl_storage());
    REQUIRE(reg != NULL);
    const char *k[] = {"retention.ms"}, *v[] = {"86400000"};
    REQUIRE(topics_create(reg, kstr_c("alpha"), 2, 1, k, v, 1, false, NULL, msg, sizeof msg) == 0);
    REQUIRE(topics_create(reg, kstr_c("beta"), 1, 1, NULL, NULL, 0, false, NULL, msg, sizeof msg) == 0);
    REQUIRE(topics_create(reg, kstr_c("gamma"), 1, 1, NULL, NULL, 0, false, NULL, msg, sizeof msg) == 0);
    topic *g = topics_get(reg, kstr_c("gamma"));
    REQUIRE(topics_delete(reg, g, msg, sizeof msg) == 0);
    topic_release(reg, g);
    /* Enough history for the metadata log to have index entries. */
    for (int i = 0; i < HISTORY_TOPICS; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%02d", i);
        REQUIRE(topics_create(reg, kstr_c(name), 1, 1, k, v, 1, false, &g, msg, sizeof msg) == 0);
        REQUIRE(topics_delete(reg, g, msg, sizeof msg) == 0);
        topic_release(reg, g);
    }
    topic *b = topics_get(reg, kstr_c("beta"));
    REQUIRE(topics_add_partitions(reg, b, 2, false, msg, sizeof msg) == 0);
    topic *a = topics_get(reg, kstr_c("alpha"));
    const char *ck[] = {"cleanup.policy"}, *cv[] = {"compact"};
    REQUIRE(topics_alter_config(reg, a, ck, cv, 1, false, false, msg, sizeof msg) == 0);
    append_records(a, 0, 'a');
    append_records(a, 1, 'b');
    append_records(b, 0, 'c');
    append_records(b, 1, 'd');
    topic_release(reg, a);
    topic_release(reg, b);
    topics_close(reg);
}

/* Bytes of dname under the root, counting set-aside copies of it. */
static int64_t kept_bytes(const char *dname) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", g_root, dname);
    int64_t n = dir_bytes(p);
    if (n < 0)
        n = 0;
    DIR *d = opendir(g_root);
    REQUIRE(d != NULL);
    struct dirent *e;
    size_t dl = strlen(dname);
    while ((e = readdir(d)) != NULL) {
        size_t el = strlen(e->d_name);
        if (el > dl + 7 && strncmp(e->d_name, dname, dl) == 0 && e->d_name[dl] == '.' &&
            strcmp(e->d_name + el - 6, "-stray") == 0) {
            snprintf(p, sizeof p, "%s/%s", g_root, e->d_name);
            n += dir_bytes(p);
        }
    }
    closedir(d);
    return n;
}

static void flip(const char *path, int64_t at, uint8_t mask) {
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t c;
    REQUIRE(pread(fd, &c, 1, at) == 1);
    c ^= mask;
    REQUIRE(pwrite(fd, &c, 1, at) == 1);
    close(fd);
}

/* The broker's error lines for every refused open would drown the output:
 * they go to /dev/null while a round runs (SLUICE_TEST_VERBOSE=1 keeps them). */
static int g_saved_stderr = -1;
static void quiet(bool on) {
    if (getenv("SLUICE_TEST_VERBOSE") != NULL)
        return;
    fflush(stderr);
    if (on) {
        int null = open("/dev/null", O_WRONLY);
        g_saved_stderr = dup(2);
        dup2(null, 2);
        close(null);
    } else if (g_saved_stderr >= 0) {
        dup2(g_saved_stderr, 2);
        close(g_saved_stderr);
        g_saved_stderr = -1;
    }
}

enum { K_SEGMENT, K_CHECKPOINT, K_INDEX, K_OWNER, K_KINDS };

typedef struct tally {
    int rounds, opened, refused, lost;
    int rounds_of[K_KINDS], opened_of[K_KINDS];
} tally;

/* Restores the state, damages path at byte `at`, opens twice, checks. */
static void round_at(tally *t, int kind, const char *rel, int64_t at, bool unclean) {
    char path[700], marker[700];
    tl_rmrf(g_root);
    copy_root(g_pristine, g_root);
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    flip(path, at, (uint8_t)(1u << tl_below(8)));
    snprintf(marker, sizeof marker, "%s/.clean-shutdown", g_root);
    if (unclean)
        unlink(marker);
    for (int pass = 0; pass < 2; pass++) {
        quiet(true);
        topic_registry *reg = topics_open(&g_cfg, tl_storage());
        quiet(false);
        if (reg == NULL) {
            t->refused += pass == 0;
            break;
        }
        t->opened += pass == 0;
        t->opened_of[kind] += pass == 0;
        /* Opened: exactly what was recorded, nothing taken for missing. */
        int n = 0;
        topic **all = topics_list(reg, &n);
        bool same = n == 2 && strcmp(all[0]->name, "alpha") == 0 && topic_partition_count(all[0]) == 2 &&
                    strcmp(all[1]->name, "beta") == 0 && topic_partition_count(all[1]) == 2;
        if (!same)
            printf("damage to %s at byte %lld: opened with %d topics\n", rel, (long long)at, n);
        CHECK(same);
        for (int i = 0; i < n; i++)
            topic_release(reg, all[i]);
        free(all);
        quiet(true);
        topics_close(reg);
        quiet(false);
    }
    for (int i = 0; i < PARTITION_DIRS; i++) {
        int64_t now = kept_bytes(g_dirs[i]);
        if (now < g_bytes[i]) {
            printf("damage to %s at byte %lld (%s): %s went from %lld to %lld bytes\n", rel, (long long)at,
                   unclean ? "unclean" : "clean", g_dirs[i], (long long)g_bytes[i], (long long)now);
            t->lost++;
        }
        CHECK(now >= g_bytes[i]);
    }
    t->rounds++;
    t->rounds_of[kind]++;
}

static int64_t file_size(const char *rel) {
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", g_pristine, rel);
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static void test_damage_never_shrinks_data(void) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_root, sizeof g_root, "%s/sluice-damage-XXXXXX", base);
    REQUIRE(mkdtemp(g_root) != NULL);
    snprintf(g_pristine, sizeof g_pristine, "%s.pristine", g_root);
    char err[CONFIG_ERR_MAX];
    config_init(&g_cfg);
    REQUIRE(config_set(&g_cfg, "log.dirs", g_root, CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_finish(&g_cfg, err) == 0);
    build_state();
    for (int i = 0; i < PARTITION_DIRS; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", g_root, g_dirs[i]);
        g_bytes[i] = dir_bytes(p);
        REQUIRE(g_bytes[i] > BATCHES_PER_PART * RECORDS_PER_BATCH * 100);
    }
    copy_root(g_root, g_pristine);
    tl_seed("test_damage_never_shrinks_data");

    const char *meta = "__sluice_metadata-0/00000000000000000000";
    char seg[200], idx[200], tidx[200], ckpt[200];
    snprintf(seg, sizeof seg, "%s.log", meta);
    snprintf(idx, sizeof idx, "%s.index", meta);
    snprintf(tidx, sizeof tidx, "%s.timeindex", meta);
    snprintf(ckpt, sizeof ckpt, "__sluice_metadata-0/log.checkpoint");
    int64_t seg_n = file_size(seg), ckpt_n = file_size(ckpt), idx_n = file_size(idx),
            tidx_n = file_size(tidx);
    REQUIRE(seg_n > 0);
    time_t start = time(NULL);
    tally t = {0};
    bool out_of_time = false;
    /* Every byte of the segment and the checkpoint, after a clean and an
     * unclean shutdown alternately. */
    for (int64_t at = 0; at < seg_n && !out_of_time; at++) {
        round_at(&t, K_SEGMENT, seg, at, at % 2 == 1);
        out_of_time = time(NULL) - start > DAMAGE_BUDGET_S;
    }
    for (int64_t at = 0; at < ckpt_n && !out_of_time; at++)
        round_at(&t, K_CHECKPOINT, ckpt, at, at % 2 == 0);
    for (int i = 0; i < INDEX_SAMPLES && !out_of_time; i++) {
        bool time_index = i % 2 == 1 && tidx_n > 0;
        int64_t n = time_index ? tidx_n : idx_n;
        if (n > 0)
            round_at(&t, K_INDEX, time_index ? tidx : idx, (int64_t)tl_below((uint64_t)n), tl_below(2) == 1);
    }
    /* A partition's owner file: the partition must never lose its data. */
    for (int i = 0; i < OWNER_SAMPLES && !out_of_time; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "%s/partition.metadata", g_dirs[tl_below(PARTITION_DIRS)]);
        int64_t n = file_size(rel);
        if (n > 0)
            round_at(&t, K_OWNER, rel, (int64_t)tl_below((uint64_t)n), tl_below(2) == 1);
    }
    printf("test_damage_never_shrinks_data: %d rounds (%lld segment bytes), %d opened, %d refused, %d lost "
           "data, "
           "%lds%s\n",
           t.rounds, (long long)seg_n, t.opened, t.refused, t.lost, (long)(time(NULL) - start),
           out_of_time ? " (stopped at the time budget)" : "");
    printf(
        "  opened after damage to: segment %d/%d, checkpoint %d/%d, index %d/%d, partition.metadata %d/%d\n",
        t.opened_of[K_SEGMENT], t.rounds_of[K_SEGMENT], t.opened_of[K_CHECKPOINT], t.rounds_of[K_CHECKPOINT],
        t.opened_of[K_INDEX], t.rounds_of[K_INDEX], t.opened_of[K_OWNER], t.rounds_of[K_OWNER]);
    CHECK_EQ_INT(t.lost, 0);
    CHECK(t.refused > 0);
    /* Derived files are rebuilt, and a partition's damaged owner file sets
     * that partition aside: neither may stop the broker. */
    CHECK_EQ_INT(t.opened_of[K_INDEX], t.rounds_of[K_INDEX]);
    CHECK_EQ_INT(t.opened_of[K_OWNER], t.rounds_of[K_OWNER]);
    tl_rmrf(g_root);
    tl_rmrf(g_pristine);
    config_free(&g_cfg);
}

int main(void) {
    log_set_level(LOG_LEVEL_ERROR);
    UNIT_RUN(test_damage_never_shrinks_data);
    return UNIT_END("test_topics_damage");
}
