/*
 * fuzz_mdlog.c - libFuzzer target for the files the broker reads its
 * metadata from at start: a __cluster_metadata-0 snapshot
 * (mdlog_read_snapshot), a __cluster_metadata-0 log segment (mdlog_open
 * after an unclean stop) and a segment of the old __sluice_metadata-0 log
 * (md_migrate_read). A disk can hand back any bytes.
 *
 * Input layout: byte 0 picks the file (0 snapshot, 1 metadata log segment,
 * 2 old metadata log segment); the rest is its contents, written to a
 * private directory on each run.
 *
 * Invariants: no crash, no sanitizer report, no leak; every record handed
 * to the caller passes through md_apply, and an open that succeeds can be
 * closed.
 *
 * FUZZ_WRITE_SEEDS=<dir> makes the target write its metadata-log seeds there
 * (a small log and its snapshot) and exit; the old-format seed is a real
 * broker's __sluice_metadata-0 segment (tests/fuzz/corpus/README.md).
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/env.h"
#include "metadata/image.h"
#include "metadata/mdlog.h"
#include "metadata/migrate.h"
#include "storage/storage.h"

static char root[64];
static storage_ctx *sc;

typedef struct sink {
    md_delta *d;
    int64_t n;
} sink;

static int apply(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err, size_t errn) {
    (void)offset;
    (void)from_snapshot;
    sink *s = ctx;
    s->n++;
    return md_apply(s->d, rec, err, errn) == MD_OK ? 0 : -1;
}

static int apply_migrated(void *ctx, const mdrec *rec, char *err, size_t errn) {
    return apply(ctx, rec, 0, false, err, errn);
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (n > 0 && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything under it (in this process: no shell per run). */
static void clear_dir(const char *dir) {
    if (access(dir, F_OK) == 0 && nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        abort();
}

/* Reads path into a buffer with one byte free in front (for the mode). */
static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    if (p == NULL || fread(p + 1, 1, (size_t)len, f) != (size_t)len)
        abort();
    fclose(f);
    *n = (size_t)len + 1;
    return p;
}

static void write_seed(const char *out, const char *name, int mode, const char *path) {
    size_t n;
    uint8_t *p = read_file(path, &n);
    if (p == NULL) {
        fprintf(stderr, "no %s\n", path);
        exit(1);
    }
    p[0] = (uint8_t)mode;
    char dst[512];
    snprintf(dst, sizeof dst, "%s/%s", out, name);
    write_file(dst, p, n);
    free(p);
}

static kuuid uid(int n) {
    kuuid u = {{0}};
    u.b[0] = 0x5c;
    u.b[15] = (uint8_t)n;
    return u;
}

/* A log of three topics (a topic, two partitions and a config each, one
 * batch per topic), a snapshot of it, and an old-format log. */
static void make_seeds(const char *out) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/seed", root);
    mkdir(dir, 0700);
    mdlog_config cfg;
    mdlog_config_default(&cfg);
    md_image *e = md_image_empty();
    sink s = {md_delta_begin(e), 0};
    mdlog *m;
    mdlog_open_info info;
    char err[256];
    if (mdlog_open(sc, dir, true, &cfg, apply, &s, &m, &info, err, sizeof err) != 0)
        abort();
    int64_t first, last = -1;
    for (int t = 0; t < 3; t++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        kafka_topic_record tr;
        kafka_topic_record_init(&tr);
        tr.name = kstr_c(name);
        tr.topic_id = uid(t + 1);
        int32_t reps[] = {1};
        kafka_partition_record p[2];
        for (int i = 0; i < 2; i++) {
            kafka_partition_record_init(&p[i]);
            p[i].topic_id = uid(t + 1);
            p[i].partition_id = i;
            p[i].replicas = p[i].isr = reps;
            p[i].replicas_count = p[i].isr_count = 1;
            p[i].removing_replicas_count = p[i].adding_replicas_count = 0;
            p[i].leader = 1;
            p[i].leader_epoch = p[i].partition_epoch = 0;
        }
        kafka_config_record c;
        kafka_config_record_init(&c);
        c.resource_type = MD_RESOURCE_TOPIC;
        c.resource_name = kstr_c(name);
        c.name = kstr_c("retention.ms");
        c.value = kstr_c("1000");
        mdrec recs[4] = {{KAFKA_MREC_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_TOPIC), &tr},
                         {KAFKA_MREC_PARTITION, 2, kafka_metadata_record_lookup(KAFKA_MREC_PARTITION), &p[0]},
                         {KAFKA_MREC_PARTITION, 2, kafka_metadata_record_lookup(KAFKA_MREC_PARTITION), &p[1]},
                         {KAFKA_MREC_CONFIG, 0, kafka_metadata_record_lookup(KAFKA_MREC_CONFIG), &c}};
        if (mdlog_append(m, recs, 4, 0, 1780000000000LL, &first, &last) != 0)
            abort();
        for (int i = 0; i < 4; i++)
            if (md_apply(s.d, &recs[i], err, sizeof err) != MD_OK)
                abort();
    }
    md_image *img = md_delta_publish(s.d, last, 0);
    if (img == NULL || mdlog_snapshot(m, img, 0, 1780000000000LL, err, sizeof err) != 0)
        abort();
    if (mdlog_close(m) != 0)
        abort();
    char path[512];
    snprintf(path, sizeof path, "%s/00000000000000000000.log", dir);
    write_seed(out, "log-three-topics", 1, path);
    snprintf(path, sizeof path, "%s/%020lld-%010d.checkpoint", dir, (long long)(last + 1), 0);
    write_seed(out, "snapshot-three-topics", 0, path);
    md_image_unref(img);
    md_image_unref(e);

    fprintf(stderr, "seeds written to %s\n", out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(root, sizeof root, "/tmp/sluice-fuzz-mdlog-%d", (int)getpid());
    clear_dir(root);
    if (mkdir(root, 0700) != 0)
        abort();
    sc = storage_ctx_new(sl_vfs_posix(), 64);
    if (sc == NULL)
        abort();
    const char *out = getenv("FUZZ_WRITE_SEEDS");
    if (out != NULL) {
        make_seeds(out);
        clear_dir(root);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || data[0] > 2)
        return 0;
    char dir[256], path[512], err[512] = "";
    snprintf(dir, sizeof dir, "%s/run", root);
    clear_dir(dir);
    if (mkdir(dir, 0700) != 0)
        abort();
    md_image *e = md_image_empty();
    sink s = {md_delta_begin(e), 0};
    if (data[0] == 0) {
        snprintf(path, sizeof path, "%s/%020d-%010d.checkpoint", dir, 10, 0);
        write_file(path, data + 1, size - 1);
        int64_t records = 0;
        (void)mdlog_read_snapshot(sc, path, apply, &s, &records, err, sizeof err);
    } else if (data[0] == 1) {
        snprintf(path, sizeof path, "%s/00000000000000000000.log", dir);
        write_file(path, data + 1, size - 1);
        mdlog_config cfg;
        mdlog_config_default(&cfg);
        mdlog *m;
        mdlog_open_info info;
        if (mdlog_open(sc, dir, false, &cfg, apply, &s, &m, &info, err, sizeof err) == 0)
            (void)mdlog_close(m);
    } else {
        snprintf(path, sizeof path, "%s/00000000000000000000.log", dir);
        write_file(path, data + 1, size - 1);
        md_migrate_result res;
        memset(&res, 0, sizeof res);
        if (md_migrate_read(sc, dir, false, 1, apply_migrated, &s, &res, err, sizeof err) == 0)
            md_migrate_result_free(&res);
    }
    if (getenv("FUZZ_VERBOSE") != NULL) /* checking seeds */
        fprintf(stderr, "mode %d: %lld records applied; %s\n", data[0], (long long)s.n, err);
    md_delta_abort(s.d);
    md_image_unref(e);
    return 0;
}
