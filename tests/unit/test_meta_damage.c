/*
 * Model test for the promise that storage never deletes data because the
 * metadata disagrees with it (src/storage/log_manager.h, src/broker/meta.h,
 * src/metadata/mdlog.h): a small broker state (topics created, grown,
 * altered and deleted, with records in every partition, enough history for
 * the metadata log `__cluster_metadata-0` to have index entries, and a
 * snapshot of the image with changes after it) is damaged one byte at a
 * time - every byte of the metadata log's segment, its checkpoint and its
 * snapshot, a sample of its index bytes, and a sample of the partitions'
 * partition.metadata and leader-epoch-checkpoint files - after a clean or an
 * unclean shutdown, and opened twice with bmeta_open. After each round:
 *
 *   - no partition directory lost a byte: its data is where it was, or in a
 *     set-aside copy (<dir>.<id>-stray) next to it;
 *   - an open either refused (damage the broker will not guess around) or
 *     found exactly the topics, ids, partitions and configs that were
 *     recorded.
 *
 * The samples come from a seed, printed and replayable with SLUICE_SEED; the
 * byte sweeps stop at DAMAGE_BUDGET_S seconds (only a sanitizer build gets
 * there; the sweeps visit bytes in a stride order so a cut-short run is
 * still spread over both files, and the sampled files always run first).
 */
#include "broker/meta.h"
#include "core/log.h"
#include "metadata/mdlog.h"
#include "storage_testlib.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>

#define DAMAGE_BUDGET_S   120
#define INDEX_SAMPLES     48
#define OWNER_SAMPLES     48
#define EPOCH_SAMPLES     48
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

static void append_records(bmeta *m, const char *topic, int32_t index, uint8_t fill) {
    md_image *img = bmeta_image(m);
    int16_t err = 0;
    rpart *p = bmeta_partition(m, md_image_topic(img, kstr_c(topic)), index, &err);
    md_image_unref(img);
    REQUIRE(p != NULL && rpart_log(p) != NULL);
    static uint8_t buf[1 << 16];
    for (int i = 0; i < BATCHES_PER_PART; i++) {
        size_t n = tl_build_batch(buf, sizeof buf, RECORDS_PER_BATCH, 1700000000000LL, 100, fill);
        REQUIRE(n > 0);
        plog_append_info info;
        REQUIRE(plog_append(rpart_log(p), buf, n, 0, 1700000000000LL, &info) == 0);
    }
    rpart_release(p);
}

static void create(bmeta *m, const char *name, int32_t parts, const char *key, const char *value) {
    ctrl_kv kv = {kstr_c(key ? key : ""), kstr_c(value ? value : "")};
    ctrl_new_topic t = {.name = kstr_c(name),
                        .partitions = parts,
                        .replication_factor = 1,
                        .configs = &kv,
                        .n_configs = key ? 1 : 0};
    ctrl_item_result r;
    REQUIRE(bmeta_create_topics(m, &t, 1, false, &r) == 0);
    REQUIRE(r.error == 0);
}

static void delete_topic(bmeta *m, const char *name) {
    ctrl_topic_ref ref = {.name = kstr_c(name)};
    ctrl_item_result r;
    REQUIRE(bmeta_delete_topics(m, &ref, 1, &r) == 0);
    REQUIRE(r.error == 0);
}

/* What build_state recorded, to compare every open with. */
static kuuid g_alpha_id, g_beta_id;

/* Exactly the recorded state: alpha (2 partitions, two overrides) and beta
 * (2 partitions, none), with their ids; nothing else. */
static bool recorded_state(bmeta *m, char *why, size_t whyn) {
    md_image *img = bmeta_image(m);
    const md_topic *a = md_image_topic(img, kstr_c("alpha")), *b = md_image_topic(img, kstr_c("beta"));
    const md_resource *ra = md_image_resource(img, MD_RESOURCE_TOPIC, "alpha"),
                      *rb = md_image_resource(img, MD_RESOURCE_TOPIC, "beta");
    const char *ret = md_image_config(img, MD_RESOURCE_TOPIC, "alpha", "retention.ms"),
               *pol = md_image_config(img, MD_RESOURCE_TOPIC, "alpha", "cleanup.policy");
    bool same = md_image_topic_count(img) == 2 && a != NULL && b != NULL && a->n_partitions == 2 &&
                b->n_partitions == 2 && memcmp(a->id.b, g_alpha_id.b, 16) == 0 &&
                memcmp(b->id.b, g_beta_id.b, 16) == 0 && ra != NULL && ra->n == 2 && ret != NULL &&
                strcmp(ret, "86400000") == 0 && pol != NULL && strcmp(pol, "compact") == 0 &&
                (rb == NULL || rb->n == 0);
    if (!same)
        snprintf(why, whyn, "%d topics, alpha %d partitions, beta %d partitions, alpha %d overrides",
                 (int)md_image_topic_count(img), a ? (int)a->n_partitions : -1, b ? (int)b->n_partitions : -1,
                 ra ? (int)ra->n : -1);
    md_image_unref(img);
    return same;
}

/* The state every round starts from. The snapshot comes after the history
 * and before the last changes, so an open loads the snapshot and replays a
 * tail that changes it. */
static void build_state(void) {
    bmeta *m = bmeta_open(&g_cfg, tl_storage(), NULL);
    REQUIRE(m != NULL);
    create(m, "alpha", 2, "retention.ms", "86400000");
    create(m, "beta", 1, NULL, NULL);
    create(m, "gamma", 1, NULL, NULL);
    delete_topic(m, "gamma");
    /* Enough history for the metadata log to have index entries. */
    for (int i = 0; i < HISTORY_TOPICS; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%02d", i);
        create(m, name, 1, "retention.ms", "86400000");
        delete_topic(m, name);
    }
    REQUIRE(bmeta_snapshot(m) == 0);
    ctrl_new_partitions np = {.name = kstr_c("beta"), .count = 2, .n_assignments = -1};
    ctrl_item_result r;
    REQUIRE(bmeta_create_partitions(m, &np, 1, false, &r) == 0 && r.error == 0);
    ctrl_alter al = {kstr_c("cleanup.policy"), CTRL_SET, kstr_c("compact")};
    ctrl_resource res = {MD_RESOURCE_TOPIC, kstr_c("alpha"), &al, 1};
    REQUIRE(bmeta_alter_configs(m, &res, 1, true, false, &r) == 0 && r.error == 0);
    append_records(m, "alpha", 0, 'a');
    append_records(m, "alpha", 1, 'b');
    append_records(m, "beta", 0, 'c');
    append_records(m, "beta", 1, 'd');
    md_image *img = bmeta_image(m);
    g_alpha_id = md_image_topic(img, kstr_c("alpha"))->id;
    g_beta_id = md_image_topic(img, kstr_c("beta"))->id;
    md_image_unref(img);
    char why[200];
    REQUIRE(recorded_state(m, why, sizeof why));
    REQUIRE(bmeta_close(m) == 0);
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

enum { K_SEGMENT, K_CHECKPOINT, K_SNAPSHOT, K_INDEX, K_OWNER, K_EPOCHS, K_KINDS };

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
        bmeta *m = bmeta_open(&g_cfg, tl_storage(), NULL);
        quiet(false);
        if (m == NULL) {
            t->refused += pass == 0;
            break;
        }
        t->opened += pass == 0;
        t->opened_of[kind] += pass == 0;
        /* Opened: exactly what was recorded, nothing taken for missing. */
        char why[200] = "";
        bool same = recorded_state(m, why, sizeof why);
        if (!same)
            printf("damage to %s at byte %lld (%s), open %d: %s\n", rel, (long long)at,
                   unclean ? "unclean" : "clean", pass + 1, why);
        CHECK(same);
        quiet(true);
        bmeta_close(m);
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

static int64_t gcd64(int64_t a, int64_t b) {
    while (b != 0) {
        int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

static int64_t file_size(const char *rel) {
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", g_pristine, rel);
    return stat(p, &st) == 0 ? st.st_size : -1;
}

/* The snapshot file in the pristine metadata log directory (there is one). */
static void snapshot_name(char *out, size_t n) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/" MDLOG_DIR_NAME, g_pristine);
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 11 && e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
            strcmp(e->d_name + l - 11, ".checkpoint") == 0) {
            snprintf(out, n, MDLOG_DIR_NAME "/%s", e->d_name);
            found++;
        }
    }
    closedir(d);
    REQUIRE(found == 1);
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

    const char *meta = MDLOG_DIR_NAME "/00000000000000000000";
    char seg[200], idx[200], tidx[200], ckpt[200], snap[300];
    snprintf(seg, sizeof seg, "%s.log", meta);
    snprintf(idx, sizeof idx, "%s.index", meta);
    snprintf(tidx, sizeof tidx, "%s.timeindex", meta);
    snprintf(ckpt, sizeof ckpt, MDLOG_DIR_NAME "/log.checkpoint");
    snapshot_name(snap, sizeof snap);
    int64_t seg_n = file_size(seg), ckpt_n = file_size(ckpt), snap_n = file_size(snap),
            idx_n = file_size(idx), tidx_n = file_size(tidx);
    REQUIRE(seg_n > 0 && snap_n > 0);
    REQUIRE(idx_n > 0); /* the history gave the log index entries */
    time_t start = time(NULL);
    tally t = {0};
    bool out_of_time = false;
    /* The sampled files first, so every kind is covered even where the
     * sweeps below stop at the time budget (sanitizer builds). Derived files
     * (indexes), a partition's owner file and its leader-epoch cache. */
    for (int i = 0; i < INDEX_SAMPLES; i++) {
        bool time_index = i % 2 == 1 && tidx_n > 0;
        int64_t n = time_index ? tidx_n : idx_n;
        round_at(&t, K_INDEX, time_index ? tidx : idx, (int64_t)tl_below((uint64_t)n), tl_below(2) == 1);
    }
    for (int i = 0; i < OWNER_SAMPLES; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "%s/partition.metadata", g_dirs[tl_below(PARTITION_DIRS)]);
        int64_t n = file_size(rel);
        REQUIRE(n > 0);
        round_at(&t, K_OWNER, rel, (int64_t)tl_below((uint64_t)n), tl_below(2) == 1);
    }
    for (int i = 0; i < EPOCH_SAMPLES; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "%s/leader-epoch-checkpoint", g_dirs[tl_below(PARTITION_DIRS)]);
        int64_t n = file_size(rel);
        REQUIRE(n > 0);
        round_at(&t, K_EPOCHS, rel, (int64_t)tl_below((uint64_t)n), tl_below(2) == 1);
    }
    for (int64_t at = 0; at < ckpt_n; at++)
        round_at(&t, K_CHECKPOINT, ckpt, at, at % 2 == 0);
    /* Every byte of the segment and the snapshot, after a clean and an
     * unclean shutdown alternately, visited in a stride order (coprime to
     * the total) so a sweep cut short by the budget is spread over both
     * files rather than their first bytes. */
    int64_t total = seg_n + snap_n, stride = total * 5 / 8 + 1;
    while (gcd64(stride, total) != 1)
        stride++;
    for (int64_t i = 0; i < total && !out_of_time; i++) {
        int64_t pos = i * stride % total;
        if (pos < seg_n)
            round_at(&t, K_SEGMENT, seg, pos, pos % 2 == 1);
        else
            round_at(&t, K_SNAPSHOT, snap, pos - seg_n, (pos - seg_n) % 2 == 1);
        out_of_time = time(NULL) - start > DAMAGE_BUDGET_S;
    }
    printf("test_damage_never_shrinks_data: %d rounds (%lld segment bytes, %lld snapshot bytes), %d opened, "
           "%d refused, %d lost data, %lds%s\n",
           t.rounds, (long long)seg_n, (long long)snap_n, t.opened, t.refused, t.lost,
           (long)(time(NULL) - start), out_of_time ? " (stopped at the time budget)" : "");
    printf("  opened after damage to: segment %d/%d, checkpoint %d/%d, snapshot %d/%d, index %d/%d, "
           "partition.metadata %d/%d, leader-epoch-checkpoint %d/%d\n",
           t.opened_of[K_SEGMENT], t.rounds_of[K_SEGMENT], t.opened_of[K_CHECKPOINT],
           t.rounds_of[K_CHECKPOINT], t.opened_of[K_SNAPSHOT], t.rounds_of[K_SNAPSHOT], t.opened_of[K_INDEX],
           t.rounds_of[K_INDEX], t.opened_of[K_OWNER], t.rounds_of[K_OWNER], t.opened_of[K_EPOCHS],
           t.rounds_of[K_EPOCHS]);
    CHECK_EQ_INT(t.lost, 0);
    CHECK(t.refused > 0);
    /* The sweeps finish in a release build (a few seconds); a sanitizer
     * build may stop them at the budget, the samples always run. */
    CHECK_EQ_INT(t.rounds_of[K_INDEX], INDEX_SAMPLES);
    CHECK_EQ_INT(t.rounds_of[K_OWNER], OWNER_SAMPLES);
    CHECK_EQ_INT(t.rounds_of[K_EPOCHS], EPOCH_SAMPLES);
    CHECK_EQ_INT(t.rounds_of[K_CHECKPOINT], ckpt_n);
    /* Derived files are rebuilt, and a partition's damaged owner file sets
     * that partition aside: neither may stop the broker. */
    CHECK_EQ_INT(t.opened_of[K_INDEX], t.rounds_of[K_INDEX]);
    CHECK_EQ_INT(t.opened_of[K_OWNER], t.rounds_of[K_OWNER]);
    CHECK_EQ_INT(t.opened_of[K_EPOCHS], t.rounds_of[K_EPOCHS]);
    tl_rmrf(g_root);
    tl_rmrf(g_pristine);
    config_free(&g_cfg);
}

int main(void) {
    log_set_level(LOG_LEVEL_ERROR);
    UNIT_RUN(test_damage_never_shrinks_data);
    return UNIT_END("test_meta_damage");
}
