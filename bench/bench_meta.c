/*
 * bench_meta.c - broker start time against the length of the metadata
 * history (src/broker/meta.h, src/metadata/mdlog.h).
 *
 * A broker's start replays `__cluster_metadata-0`: the newest snapshot, then
 * the records after it. Without a snapshot it replays every change ever
 * made, so the start grows with history; after bmeta_snapshot() it loads the
 * image and a short tail. Measured in one run, on one filesystem:
 *
 *   baseline  bmeta_open of a log that holds only the live state (the same
 *             topics created directly, no history);
 *   history   bmeta_open after SLUICE_BENCH_META_CHANGES (default 10,000)
 *             topic changes: a mix of IncrementalAlterConfigs on live
 *             topics and CreateTopics + DeleteTopics of short-lived ones;
 *   snapshot  the same directory after bmeta_snapshot() and a close.
 *
 * Each open is timed SLUICE_BENCH_META_OPENS times (default 5) and the
 * median printed, with ratios to the baseline and history / snapshot. The
 * records each start replays are counted by replaying the log once more
 * outside the timing. Everything lives under a mkdtemp() directory in
 * $TMPDIR (default /tmp), removed at the end.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/meta.h"
#include "core/log.h"
#include "metadata/mdlog.h"

#define LIVE_TOPICS 50
#define OPENS_MAX   21

static storage_ctx *sc;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long env_long(const char *name, long def) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static void die(const char *what) {
    fprintf(stderr, "bench_meta: %s\n", what);
    exit(1);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void make_config(broker_config *cfg, const char *root) {
    char err[CONFIG_ERR_MAX];
    config_init(cfg);
    if (config_set(cfg, "log.dirs", root, CONFIG_ORIGIN_OVERRIDE, err) != 0 || config_finish(cfg, err) != 0)
        die(err);
}

static void must(int16_t error, const char *what, const char *name) {
    if (error != 0) {
        fprintf(stderr, "bench_meta: %s %s: error %d\n", what, name, error);
        exit(1);
    }
}

static void create(bmeta *m, const char *name) {
    ctrl_new_topic t = {.name = kstr_c(name), .partitions = 1, .replication_factor = 1};
    ctrl_item_result r;
    bmeta_create_topics(m, &t, 1, false, &r);
    must(r.error, "create", name);
}

static void delete_topic(bmeta *m, const char *name) {
    ctrl_topic_ref ref = {.name = kstr_c(name)};
    ctrl_item_result r;
    bmeta_delete_topics(m, &ref, 1, &r);
    must(r.error, "delete", name);
}

static void set_retention(bmeta *m, const char *name, long ms) {
    char v[32];
    snprintf(v, sizeof v, "%ld", ms);
    ctrl_alter al = {kstr_c("retention.ms"), CTRL_SET, kstr_c(v)};
    ctrl_resource res = {MD_RESOURCE_TOPIC, kstr_c(name), &al, 1};
    ctrl_item_result r;
    bmeta_alter_configs(m, &res, 1, true, false, &r);
    must(r.error, "alter", name);
}

/* The live state both directories end with: LIVE_TOPICS topics, each with
 * a retention.ms override. */
static void live_state(bmeta *m) {
    for (int i = 0; i < LIVE_TOPICS; i++) {
        char name[32];
        snprintf(name, sizeof name, "live%02d", i);
        create(m, name);
        set_retention(m, name, 3600000L + i);
    }
}

/* changes topic changes on top of the live state; the live topics end with
 * the same overrides as live_state gave them. */
static void history(bmeta *m, long changes) {
    long done = 0;
    for (long i = 0; done < changes; i++) {
        char name[32];
        if (i % 3 == 2) {
            snprintf(name, sizeof name, "short%ld", i);
            create(m, name);
            delete_topic(m, name);
            done += 2;
        } else {
            snprintf(name, sizeof name, "live%02ld", i % LIVE_TOPICS);
            set_retention(m, name, 7200000L + i);
            done++;
        }
    }
    for (int i = 0; i < LIVE_TOPICS; i++) {
        char name[32];
        snprintf(name, sizeof name, "live%02d", i);
        set_retention(m, name, 3600000L + i);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of `opens` bmeta_open calls (each closed untimed). */
static double time_open(const broker_config *cfg, int opens) {
    double t[OPENS_MAX];
    for (int i = 0; i < opens; i++) {
        double t0 = now_s();
        bmeta *m = bmeta_open(cfg, sc, NULL);
        t[i] = now_s() - t0;
        if (m == NULL)
            die("bmeta_open failed");
        if (bmeta_close(m) != 0)
            die("bmeta_close left a root unmarked");
    }
    qsort(t, (size_t)opens, sizeof t[0], cmp_double);
    return t[opens / 2];
}

static int count_record(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err,
                        size_t errn) {
    (void)ctx;
    (void)rec;
    (void)offset;
    (void)from_snapshot;
    (void)err;
    (void)errn;
    return 0;
}

/* Bytes of the metadata log's segment files under root. */
static long long log_bytes(const char *root) {
    char dir[700], path[1000];
    snprintf(dir, sizeof dir, "%s/" MDLOG_DIR_NAME, root);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".log") == 0 && stat(path, &st) == 0)
            total += (long long)st.st_size;
    }
    closedir(d);
    return total;
}

/* What a start of root replays: records from the snapshot and from the
 * log; returns the seconds mdlog_open alone took (verify + replay, no
 * image, no partitions). */
static double replayed(const char *root, int64_t *from_snapshot, int64_t *from_log) {
    char dir[600], err[1024];
    snprintf(dir, sizeof dir, "%s/" MDLOG_DIR_NAME, root);
    mdlog_config mc;
    mdlog_config_default(&mc);
    mdlog *l;
    mdlog_open_info info;
    double t0 = now_s();
    if (mdlog_open(sc, dir, true, &mc, count_record, NULL, &l, &info, err, sizeof err) != 0)
        die(err);
    double took = now_s() - t0;
    mdlog_close(l);
    *from_snapshot = info.snapshot_records;
    *from_log = info.log_records;
    return took;
}

int main(void) {
    long changes = env_long("SLUICE_BENCH_META_CHANGES", 10000);
    int opens = (int)env_long("SLUICE_BENCH_META_OPENS", 5);
    if (changes < 0 || opens < 1 || opens > OPENS_MAX)
        die("SLUICE_BENCH_META_CHANGES >= 0 and 1 <= SLUICE_BENCH_META_OPENS <= 21");
    log_set_level(LOG_LEVEL_WARN);
    sc = storage_ctx_new(sl_vfs_posix(), STORAGE_FD_LIMIT_DEFAULT);
    if (sc == NULL)
        die("storage_ctx_new");
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char top[512], base_root[600], hist_root[600];
    snprintf(top, sizeof top, "%s/sluice-bench-meta-XXXXXX", tmp);
    if (mkdtemp(top) == NULL)
        die("mkdtemp");
    snprintf(base_root, sizeof base_root, "%s/baseline", top);
    snprintf(hist_root, sizeof hist_root, "%s/history", top);
    if (mkdir(base_root, 0755) != 0 || mkdir(hist_root, 0755) != 0)
        die("mkdir");

    broker_config base_cfg, hist_cfg;
    make_config(&base_cfg, base_root);
    make_config(&hist_cfg, hist_root);
    bmeta *m = bmeta_open(&base_cfg, sc, NULL);
    if (m == NULL)
        die("bmeta_open (baseline)");
    live_state(m);
    bmeta_close(m);

    double t0 = now_s();
    m = bmeta_open(&hist_cfg, sc, NULL);
    if (m == NULL)
        die("bmeta_open (history)");
    live_state(m);
    history(m, changes);
    bmeta_close(m);
    double setup_s = now_s() - t0;

    double base = time_open(&base_cfg, opens);
    int64_t base_s, base_l;
    double base_md = replayed(base_root, &base_s, &base_l);
    double no_snap = time_open(&hist_cfg, opens);
    int64_t no_snap_s, no_snap_l;
    double no_snap_md = replayed(hist_root, &no_snap_s, &no_snap_l);

    m = bmeta_open(&hist_cfg, sc, NULL);
    if (m == NULL || bmeta_snapshot(m) != 0)
        die("bmeta_snapshot");
    bmeta_close(m);
    double snap = time_open(&hist_cfg, opens);
    int64_t snap_s, snap_l;
    double snap_md = replayed(hist_root, &snap_s, &snap_l);

    printf("bench_meta: start time with %ld topic changes in the metadata log (%d topics live; median of %d "
           "opens; history written in %.1f s)\n",
           changes, LIVE_TOPICS, opens, setup_s);
    printf("  %-34s %9.2f ms  %7.2fx baseline  (replays %lld from the log)\n",
           "baseline (live state, no history)", base * 1e3, 1.0, (long long)(base_s + base_l));
    printf("  %-34s %9.2f ms  %7.2fx baseline  (replays %lld from the log)\n", "history, no snapshot",
           no_snap * 1e3, no_snap / base, (long long)no_snap_l);
    printf("  %-34s %9.2f ms  %7.2fx baseline  (replays %lld from the snapshot + %lld from the log)\n",
           "history, after bmeta_snapshot()", snap * 1e3, snap / base, (long long)snap_s, (long long)snap_l);
    printf("  of which mdlog_open (one run): baseline %.2f ms, no snapshot %.2f ms, after the snapshot %.2f "
           "ms\n",
           base_md * 1e3, no_snap_md * 1e3, snap_md * 1e3);
    printf("  no snapshot / snapshot: %.2fx; the metadata log's segments hold %lld bytes (%lld without "
           "history), "
           "which every start reads and verifies\n",
           no_snap / snap, log_bytes(hist_root), log_bytes(base_root));

    config_free(&base_cfg);
    config_free(&hist_cfg);
    storage_ctx_free(sc);
    nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
