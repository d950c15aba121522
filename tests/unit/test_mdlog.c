/*
 * test_mdlog.c - the cluster metadata log: records appended as batches
 * replay into the same image; a snapshot plus the log's tail replays into
 * it too and the log is trimmed below the snapshot; a damaged newest
 * snapshot falls back to the previous one, a damaged only one refuses the
 * open; a failed fsync leaves nothing half-applied and the log comes back.
 */
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "core/log.h"
#include "metadata/image.h"
#include "metadata/mdlog.h"
#include "storage/log.h"
#include "storage_testlib.h"

/* Inverts one byte of a file in place. */
static void tl_flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    REQUIRE(f != NULL);
    REQUIRE(fseek(f, at, SEEK_SET) == 0);
    int c = fgetc(f);
    REQUIRE(c != EOF);
    REQUIRE(fseek(f, at, SEEK_SET) == 0);
    fputc(c ^ 0xff, f);
    fclose(f);
}

static kuuid uid(int n) {
    kuuid u = {{0}};
    u.b[0] = 0x77;
    u.b[14] = (uint8_t)(n >> 8);
    u.b[15] = (uint8_t)n;
    return u;
}

typedef struct replay {
    md_delta *d;
    int64_t snap, logged;
} replay;

static int apply(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err, size_t errn) {
    (void)offset;
    replay *r = ctx;
    if (from_snapshot)
        r->snap++;
    else
        r->logged++;
    return md_apply(r->d, rec, err, errn) == MD_OK ? 0 : -1;
}

/* Opens dir and returns the replayed image (and the log in *out). */
static md_image *open_replay(storage_ctx *sc, const char *dir, bool clean, mdlog **out, mdlog_open_info *info,
                             replay *r, char *err, size_t errn) {
    md_image *e = md_image_empty();
    r->d = md_delta_begin(e);
    r->snap = r->logged = 0;
    mdlog_config cfg;
    mdlog_config_default(&cfg);
    cfg.segment_bytes = 4096; /* several segments, so trimming shows */
    int rc = mdlog_open(sc, dir, clean, &cfg, apply, r, out, info, err, errn);
    md_image *img = NULL;
    if (rc == 0)
        img = md_delta_publish(r->d, info->end_offset - 1, 0);
    else
        md_delta_abort(r->d);
    md_image_unref(e);
    return img;
}

/* Appends "create topic tN with 2 partitions" as one batch and applies it to
 * *img too. */
static void create_topic(mdlog *m, md_image **img, int n) {
    char name[32];
    snprintf(name, sizeof name, "t%d", n);
    kafka_topic_record t;
    kafka_topic_record_init(&t);
    t.name = kstr_c(name);
    t.topic_id = uid(n);
    int32_t reps[] = {1};
    kafka_partition_record p[2];
    for (int i = 0; i < 2; i++) {
        kafka_partition_record_init(&p[i]);
        p[i].topic_id = uid(n);
        p[i].partition_id = i;
        p[i].replicas = reps;
        p[i].replicas_count = 1;
        p[i].isr = reps;
        p[i].isr_count = 1;
        p[i].removing_replicas_count = 0;
        p[i].adding_replicas_count = 0;
        p[i].leader = 1;
        p[i].leader_epoch = 0;
        p[i].partition_epoch = 0;
    }
    kafka_config_record c;
    kafka_config_record_init(&c);
    c.resource_type = MD_RESOURCE_TOPIC;
    c.resource_name = kstr_c(name);
    c.name = kstr_c("retention.ms");
    c.value = kstr_c("1000");
    mdrec recs[4] = {{KAFKA_MREC_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_TOPIC), &t},
                     {KAFKA_MREC_PARTITION, 2, kafka_metadata_record_lookup(KAFKA_MREC_PARTITION), &p[0]},
                     {KAFKA_MREC_PARTITION, 2, kafka_metadata_record_lookup(KAFKA_MREC_PARTITION), &p[1]},
                     {KAFKA_MREC_CONFIG, 0, kafka_metadata_record_lookup(KAFKA_MREC_CONFIG), &c}};
    int64_t first, last;
    REQUIRE(mdlog_append(m, recs, 4, 0, 1780000000000LL, &first, &last) == STORAGE_OK);
    CHECK_EQ_INT(last - first, 3);
    md_delta *d = md_delta_begin(*img);
    char err[256];
    for (int i = 0; i < 4; i++)
        REQUIRE(md_apply(d, &recs[i], err, sizeof err) == MD_OK);
    md_image *next = md_delta_publish(d, last, 0);
    md_image_unref(*img);
    *img = next;
}

static void test_append_replay_snapshot_trim(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tl_mkdtemp("mdlog"));
    char path[300];
    snprintf(path, sizeof path, "%s/" MDLOG_DIR_NAME, dir);
    storage_ctx *sc = tl_storage();
    mdlog *m;
    mdlog_open_info info;
    replay r;
    char err[512], why[256];
    md_image *img = open_replay(sc, path, true, &m, &info, &r, err, sizeof err);
    REQUIRE(img != NULL);
    CHECK_EQ_INT(info.end_offset, 0);
    CHECK_EQ_INT(info.snapshot_end, -1);
    for (int i = 0; i < 30; i++)
        create_topic(m, &img, i);
    CHECK_EQ_INT(mdlog_end_offset(m), 120);
    CHECK_EQ_INT(mdlog_close(m), 0);
    md_image *back = open_replay(sc, path, true, &m, &info, &r, err, sizeof err);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(img, back, why, sizeof why));
    CHECK_EQ_INT(r.logged, 120);
    md_image_unref(back);
    /* A snapshot, more changes, then a replay: snapshot + tail. */
    REQUIRE(mdlog_snapshot(m, img, 0, 1780000000000LL, err, sizeof err) == 0);
    CHECK_EQ_INT(mdlog_last_snapshot_end(m), 120);
    for (int i = 30; i < 35; i++)
        create_topic(m, &img, i);
    mdlog_tick(m, 1780000000000LL); /* retention drops the trimmed segments */
    CHECK_EQ_INT(mdlog_close(m), 0);
    back = open_replay(sc, path, false, &m, &info, &r, err, sizeof err);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(img, back, why, sizeof why));
    CHECK_EQ_INT(info.snapshot_end, 120);
    CHECK_EQ_INT(r.snap, 30 * 4);
    CHECK_EQ_INT(r.logged, 20);
    md_image_unref(back);
    /* A second snapshot: the first one stays (the previous is kept), a third
     * removes the first. */
    REQUIRE(mdlog_snapshot(m, img, 0, 1780000000001LL, err, sizeof err) == 0);
    create_topic(m, &img, 40);
    REQUIRE(mdlog_snapshot(m, img, 0, 1780000000002LL, err, sizeof err) == 0);
    CHECK_EQ_INT(mdlog_close(m), 0);
    char snap[400];
    snprintf(snap, sizeof snap, "%s/%020d-%010d.checkpoint", path, 120, 0);
    CHECK(access(snap, F_OK) != 0);
    snprintf(snap, sizeof snap, "%s/%020d-%010d.checkpoint", path, 140, 0);
    CHECK(access(snap, F_OK) == 0);
    snprintf(snap, sizeof snap, "%s/%020d-%010d.checkpoint", path, 144, 0);
    CHECK(access(snap, F_OK) == 0);
    /* Damage the newest snapshot: the previous one and the log cover it. */
    tl_flip_byte(snap, 100);
    back = open_replay(sc, path, true, &m, &info, &r, err, sizeof err);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(img, back, why, sizeof why));
    CHECK_EQ_INT(info.snapshot_end, 140);
    md_image_unref(back);
    CHECK_EQ_INT(mdlog_close(m), 0);
    /* Damage the other one too: nothing verifies, the open refuses. */
    snprintf(snap, sizeof snap, "%s/%020d-%010d.checkpoint", path, 140, 0);
    tl_flip_byte(snap, 100);
    back = open_replay(sc, path, true, &m, &info, &r, err, sizeof err);
    CHECK(back == NULL);
    CHECK(strstr(err, "snapshot") != NULL);
    md_image_unref(img);
    tl_rmrf(dir);
}

/* A failed fsync: the change is refused and not in the log after the log
 * comes back; later changes go on at the right offsets. */
static void test_failed_fsync(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tl_mkdtemp("mdlog-f"));
    char path[300];
    snprintf(path, sizeof path, "%s/" MDLOG_DIR_NAME, dir);
    sl_vfs_faults plan = {0};
    sl_vfs_faulty *f = sl_vfs_faulty_new(sl_vfs_posix(), &plan);
    storage_ctx *sc = storage_ctx_new(sl_vfs_faulty_vfs(f), 64);
    mdlog *m;
    mdlog_open_info info;
    replay r;
    char err[512], why[256];
    md_image *img = open_replay(sc, path, true, &m, &info, &r, err, sizeof err);
    REQUIRE(img != NULL);
    create_topic(m, &img, 1);
    /* The next fsync fails. */
    plan.fail_from[SL_VFS_OP_FSYNC] = sl_vfs_faulty_calls(f, SL_VFS_OP_FSYNC) + 1;
    sl_vfs_faulty_set(f, &plan);
    kafka_remove_topic_record rt;
    kafka_remove_topic_record_init(&rt);
    rt.topic_id = uid(1);
    mdrec rec = {KAFKA_MREC_REMOVE_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_REMOVE_TOPIC), &rt};
    int64_t first, last;
    CHECK(mdlog_append(m, &rec, 1, 0, 1780000000000LL, &first, &last) != STORAGE_OK);
    sl_vfs_faulty_set(f, NULL);
    if (mdlog_offline(m))
        CHECK_EQ_INT(mdlog_reopen(m), 0);
    CHECK_EQ_INT(mdlog_end_offset(m), 4); /* the refused record is gone */
    create_topic(m, &img, 2);
    CHECK_EQ_INT(mdlog_end_offset(m), 8);
    CHECK_EQ_INT(mdlog_close(m), 0);
    md_image *back = open_replay(sc, path, true, &m, &info, &r, err, sizeof err);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(img, back, why, sizeof why));
    CHECK(md_image_topic(back, kstr_c("t1")) != NULL);
    md_image_unref(back);
    CHECK_EQ_INT(mdlog_close(m), 0);
    md_image_unref(img);
    storage_ctx_free(sc);
    sl_vfs_faulty_free(f);
    tl_rmrf(dir);
}

int main(void) {
    log_set_level(LOG_LEVEL_ERROR);
    UNIT_RUN(test_append_replay_snapshot_trim);
    UNIT_RUN(test_failed_fsync);
    return UNIT_END("test_mdlog");
}
