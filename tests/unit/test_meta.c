/*
 * Unit tests for src/broker/meta.c (bmeta) over the real log manager,
 * controller and partitions: creating, changing and deleting topics, the
 * errors Kafka clients expect, that every change survives a reopen (the
 * KRaft metadata log `__cluster_metadata-0` is replayed, with or without a
 * snapshot), how the directories under log.dirs are settled against the
 * metadata (removed only when the log explains it, set aside otherwise),
 * the damage that stops a start, and the one-time migration of an earlier
 * version's `__sluice_metadata-0`.
 */
#include "broker/meta.h"
#include "core/log.h"
#include "metadata/mdlog.h"
#include "metadata/migrate.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_root[256];
static broker_config g_cfg;
static storage_ctx *g_storage; /* POSIX files, as the broker's */

static void rm_rf(const char *path) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", path);
}

static void setup(const char *extra_key, const char *extra_val) {
    snprintf(g_root, sizeof g_root, "/tmp/sluice-meta-XXXXXX");
    REQUIRE(mkdtemp(g_root) != NULL);
    char err[CONFIG_ERR_MAX];
    config_init(&g_cfg);
    REQUIRE(config_set(&g_cfg, "log.dirs", g_root, CONFIG_ORIGIN_OVERRIDE, err) == 0);
    if (extra_key)
        REQUIRE(config_set(&g_cfg, extra_key, extra_val, CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_finish(&g_cfg, err) == 0);
}

static void teardown(void) {
    config_free(&g_cfg);
    rm_rf(g_root);
}

static bmeta *open_meta(void) { return bmeta_open(&g_cfg, g_storage, NULL); }

/* ---- admin helpers ------------------------------------------------------------------ */

/* CreateTopics of one topic with overrides keys/values; the item's error,
 * its message in msg and the new id in *id. */
static int create_cfg(bmeta *m, const char *name, int32_t parts, int16_t rf, const char *const *keys,
                      const char *const *values, int n, bool validate_only, kuuid *id, char *msg,
                      size_t msgn) {
    ctrl_kv kv[16];
    REQUIRE(n <= 16);
    for (int i = 0; i < n; i++)
        kv[i] = (ctrl_kv){kstr_c(keys[i]), values[i] ? kstr_c(values[i]) : KSTR_NULL};
    ctrl_new_topic t = {
        .name = kstr_c(name), .partitions = parts, .replication_factor = rf, .configs = kv, .n_configs = n};
    ctrl_item_result r;
    REQUIRE(bmeta_create_topics(m, &t, 1, validate_only, &r) == 0);
    if (msg)
        snprintf(msg, msgn, "%s", r.message);
    if (id)
        *id = r.topic_id;
    return r.error;
}

static int create(bmeta *m, const char *name, int32_t parts, int16_t rf) {
    return create_cfg(m, name, parts, rf, NULL, NULL, 0, false, NULL, NULL, 0);
}

static int delete_topic(bmeta *m, const char *name) {
    ctrl_topic_ref ref = {.name = kstr_c(name)};
    ctrl_item_result r;
    REQUIRE(bmeta_delete_topics(m, &ref, 1, &r) == 0);
    return r.error;
}

static int add_partitions(bmeta *m, const char *name, int32_t count, bool validate_only) {
    ctrl_new_partitions np = {.name = kstr_c(name), .count = count, .n_assignments = -1};
    ctrl_item_result r;
    REQUIRE(bmeta_create_partitions(m, &np, 1, validate_only, &r) == 0);
    return r.error;
}

/* incremental: IncrementalAlterConfigs (a NULL value deletes the key, others
 * are set); otherwise AlterConfigs (the overrides become exactly these). */
static int alter(bmeta *m, const char *topic, const char *const *keys, const char *const *values, int n,
                 bool incremental) {
    ctrl_alter al[16];
    REQUIRE(n <= 16);
    for (int i = 0; i < n; i++)
        al[i] = (ctrl_alter){kstr_c(keys[i]), values[i] ? CTRL_SET : CTRL_DELETE,
                             values[i] ? kstr_c(values[i]) : KSTR_NULL};
    ctrl_resource res = {MD_RESOURCE_TOPIC, kstr_c(topic), al, n};
    ctrl_item_result r;
    REQUIRE(bmeta_alter_configs(m, &res, 1, incremental, false, &r) == 0);
    return r.error;
}

/* ---- reading helpers -------------------------------------------------------------- */

static bool has_topic(bmeta *m, const char *name) {
    md_image *img = bmeta_image(m);
    bool found = md_image_topic(img, kstr_c(name)) != NULL;
    md_image_unref(img);
    return found;
}

static int32_t partition_count(bmeta *m, const char *name) {
    md_image *img = bmeta_image(m);
    const md_topic *t = md_image_topic(img, kstr_c(name));
    int32_t n = t ? t->n_partitions : -1;
    md_image_unref(img);
    return n;
}

static kuuid topic_id(bmeta *m, const char *name) {
    md_image *img = bmeta_image(m);
    const md_topic *t = md_image_topic(img, kstr_c(name));
    REQUIRE(t != NULL);
    kuuid id = t->id;
    md_image_unref(img);
    return id;
}

/* The topic's overrides in the image (-1 when it has no config resource). */
static int32_t overrides(bmeta *m, const char *name) {
    md_image *img = bmeta_image(m);
    const md_resource *r = md_image_resource(img, MD_RESOURCE_TOPIC, name);
    int32_t n = r ? r->n : 0;
    md_image_unref(img);
    return n;
}

/* The local partition, referenced (release with rpart_release), or NULL. */
static rpart *part(bmeta *m, const char *name, int32_t index) {
    md_image *img = bmeta_image(m);
    int16_t err = 0;
    rpart *p = bmeta_partition(m, md_image_topic(img, kstr_c(name)), index, &err);
    md_image_unref(img);
    CHECK((p != NULL) == (err == 0));
    return p;
}

static plog *log_of(rpart *p) {
    REQUIRE(p != NULL);
    plog *l = rpart_log(p);
    REQUIRE(l != NULL);
    return l;
}

static int64_t end_offset(bmeta *m, const char *name, int32_t index) {
    rpart *p = part(m, name, index);
    REQUIRE(p != NULL);
    int64_t end = plog_end_offset(log_of(p));
    rpart_release(p);
    return end;
}

static int append_value(bmeta *m, const char *name, int32_t index, size_t vlen) {
    static uint8_t value[4096];
    REQUIRE(vlen <= sizeof value);
    memset(value, 'd', vlen);
    arena a;
    arena_init(&a, 1 << 20);
    batch_build_record rec = {.key = KBYTES_NULL, .value = {value, (int32_t)vlen}, .timestamp = 1};
    batch_build_opts o = batch_build_defaults();
    uint8_t *batch;
    size_t blen;
    REQUIRE(batch_build(&o, &rec, 1, &a, &batch, &blen) == 0);
    rpart *p = part(m, name, index);
    REQUIRE(p != NULL);
    plog_append_info info;
    int rc = plog_append(log_of(p), batch, blen, 0, 1000, &info);
    rpart_release(p);
    arena_reset(&a);
    return rc;
}

static bool dir_exists(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_root, name);
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The image's topic names, sorted and joined by spaces into out. */
static const char *topic_names(bmeta *m, char *out, size_t n) {
    md_image *img = bmeta_image(m);
    int32_t count = md_image_topic_count(img);
    const char *names[64];
    REQUIRE(count <= 64);
    for (int32_t i = 0; i < count; i++)
        names[i] = md_image_topic_at(img, i)->name;
    qsort(names, (size_t)count, sizeof names[0], cmp_str);
    size_t len = 0;
    out[0] = '\0';
    for (int32_t i = 0; i < count && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%s", i ? " " : "", names[i]);
    md_image_unref(img);
    return out;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_create_and_errors(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    CHECK_EQ_INT(strlen(bmeta_cluster_id(m)), 22);
    CHECK_EQ_INT(create(m, "orders", 3, 1), 0);
    CHECK(dir_exists("orders-0") && dir_exists("orders-2") && !dir_exists("orders-3"));
    CHECK_EQ_INT(create(m, "orders", 3, 1), KAFKA_ERR_TOPIC_ALREADY_EXISTS);
    CHECK_EQ_INT(create(m, "bad name", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(create(m, "..", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(create(m, "", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    char longname[300];
    memset(longname, 'a', 250);
    longname[250] = '\0';
    CHECK_EQ_INT(create(m, longname, 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(create(m, "a.b", 1, 1), 0);
    CHECK_EQ_INT(create(m, "a_b", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION); /* collides */
    CHECK_EQ_INT(create(m, "zero", 0, 1), KAFKA_ERR_INVALID_PARTITIONS);
    CHECK_EQ_INT(create(m, "rf3", 1, 3), KAFKA_ERR_INVALID_REPLICATION_FACTOR);
    CHECK_EQ_INT(create(m, "defaults", -1, -1), 0);

    char msg[CTRL_MSG_MAX];
    const char *bad_k[] = {"retention.ms"}, *bad_v[] = {"soon"};
    CHECK_EQ_INT(create_cfg(m, "cfg", 1, 1, bad_k, bad_v, 1, false, NULL, msg, sizeof msg),
                 KAFKA_ERR_INVALID_CONFIG);
    CHECK(strstr(msg, "retention.ms") != NULL);
    const char *k[] = {"retention.ms", "cleanup.policy"}, *v[] = {"60000", "compact"};
    CHECK_EQ_INT(create_cfg(m, "vo", 2, 1, k, v, 2, true, NULL, msg, sizeof msg), 0);
    CHECK(!has_topic(m, "vo") && !dir_exists("vo-0")); /* validate_only */
    CHECK_EQ_INT(create_cfg(m, "cfg", 2, 1, k, v, 2, false, NULL, msg, sizeof msg), 0);
    rpart *p = part(m, "cfg", 1);
    REQUIRE(p != NULL);
    CHECK_EQ_INT(p->cfg.retention_ms, 60000);
    rpart_release(p);
    CHECK_EQ_INT(overrides(m, "cfg"), 2);

    char names[512];
    CHECK(strcmp(topic_names(m, names, sizeof names), "a.b cfg defaults orders") == 0);
    md_image *img = bmeta_image(m);
    CHECK_EQ_INT(md_image_topic_count(img), 4);
    CHECK_EQ_INT(md_image_partition_count(img), 3 + 1 + 1 + 2);
    md_image_unref(img);
    CHECK_EQ_INT(parts_count(bmeta_parts(m)), 3 + 1 + 1 + 2);
    CHECK_EQ_INT(bmeta_close(m), 0);
    teardown();
}

static void test_persistence_and_changes(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    char cid[32];
    snprintf(cid, sizeof cid, "%s", bmeta_cluster_id(m));
    REQUIRE(create(m, "t1", 2, 1) == 0);
    REQUIRE(create(m, "t2", 1, 1) == 0);
    kuuid id1 = topic_id(m, "t1");
    CHECK_EQ_INT(add_partitions(m, "t1", 2, false), KAFKA_ERR_INVALID_PARTITIONS);
    CHECK_EQ_INT(add_partitions(m, "t1", 5, true), 0);
    CHECK_EQ_INT(partition_count(m, "t1"), 2);
    CHECK(!dir_exists("t1-2"));
    CHECK_EQ_INT(add_partitions(m, "t1", 5, false), 0);
    CHECK_EQ_INT(partition_count(m, "t1"), 5);
    rpart *p4 = part(m, "t1", 4);
    CHECK(p4 != NULL && dir_exists("t1-4"));
    if (p4)
        rpart_release(p4);
    CHECK(part(m, "t1", 5) == NULL);

    /* A batch in t1-4 to see after reopening. */
    CHECK_EQ_INT(append_value(m, "t1", 4, 1), 0);

    const char *k1[] = {"retention.ms", "segment.bytes"}, *v1[] = {"1000", "100000"};
    CHECK_EQ_INT(alter(m, "t1", k1, v1, 2, false), 0);
    const char *k2[] = {"segment.bytes", "max.message.bytes"}, *v2[] = {NULL, "5000"};
    CHECK_EQ_INT(alter(m, "t1", k2, v2, 2, true), 0);
    const char *k3[] = {"no.such.key"}, *v3[] = {"1"};
    CHECK_EQ_INT(alter(m, "t1", k3, v3, 1, true), KAFKA_ERR_INVALID_CONFIG);
    CHECK_EQ_INT(overrides(m, "t1"), 2);
    rpart *p = part(m, "t1", 0);
    REQUIRE(p != NULL);
    CHECK_EQ_INT(p->cfg.max_message_bytes, 5000);
    CHECK_EQ_INT(p->cfg.retention_ms, 1000);
    rpart_release(p);

    /* The partition logs apply altered settings at once. */
    const char *k4[] = {"max.message.bytes"}, *v4[] = {"100"};
    CHECK_EQ_INT(alter(m, "t1", k4, v4, 1, true), 0);
    CHECK_EQ_INT(append_value(m, "t1", 0, 300), STORAGE_MESSAGE_TOO_LARGE);
    const char *k5[] = {"max.message.bytes"}, *v5[] = {"5000"};
    CHECK_EQ_INT(alter(m, "t1", k5, v5, 1, true), 0);
    CHECK_EQ_INT(append_value(m, "t1", 0, 300), 0);

    /* A deleted topic's directory goes when the last request using its
     * partition is done. */
    rpart *held = part(m, "t2", 0);
    REQUIRE(held != NULL);
    CHECK_EQ_INT(delete_topic(m, "t2"), 0);
    CHECK(!has_topic(m, "t2"));
    CHECK(dir_exists("t2-0")); /* we still hold a reference */
    rpart_release(held);
    CHECK(!dir_exists("t2-0"));
    CHECK_EQ_INT(delete_topic(m, "t2"), KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ_INT(bmeta_close(m), 0);

    /* Reopen: everything is as it was. */
    m = open_meta();
    REQUIRE(m != NULL);
    CHECK(strcmp(bmeta_cluster_id(m), cid) == 0);
    CHECK(memcmp(topic_id(m, "t1").b, id1.b, 16) == 0);
    CHECK_EQ_INT(partition_count(m, "t1"), 5);
    p = part(m, "t1", 0);
    REQUIRE(p != NULL);
    CHECK_EQ_INT(p->cfg.max_message_bytes, 5000);
    CHECK_EQ_INT(p->cfg.retention_ms, 1000);
    rpart_release(p);
    CHECK_EQ_INT(overrides(m, "t1"), 2);
    CHECK_EQ_INT(end_offset(m, "t1", 4), 1);
    CHECK_EQ_INT(end_offset(m, "t1", 0), 1);
    md_image *img = bmeta_image(m);
    const md_topic *by_id = md_image_topic_by_id(img, id1);
    CHECK(by_id != NULL && by_id == md_image_topic(img, kstr_c("t1")));
    md_image_unref(img);
    CHECK(!has_topic(m, "t2") && !dir_exists("t2-0"));

    /* Delete and recreate with the same name: the new topic starts empty. */
    CHECK_EQ_INT(delete_topic(m, "t1"), 0);
    CHECK_EQ_INT(create(m, "t1", 5, 1), 0);
    CHECK_EQ_INT(end_offset(m, "t1", 4), 0);
    CHECK(memcmp(topic_id(m, "t1").b, id1.b, 16) != 0);
    CHECK_EQ_INT(bmeta_close(m), 0);
    teardown();
}

/* A directory left by a deleted topic (crash before removal) must not be
 * taken for the data of a new topic with the same name. */
static void test_stale_directory(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(create(m, "s", 1, 1) == 0);
    bmeta_close(m);
    /* Keep a copy of s-0 as if its removal never happened. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp -r '%s/s-0' '%s/s-0.keep'", g_root, g_root);
    REQUIRE(system(cmd) == 0);
    m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(delete_topic(m, "s") == 0);
    bmeta_close(m);
    snprintf(cmd, sizeof cmd, "mv '%s/s-0.keep' '%s/s-0'", g_root, g_root);
    REQUIRE(system(cmd) == 0);
    /* On open the leftover is recognised (its id is a removed topic's) and
     * removed. */
    m = open_meta();
    REQUIRE(m != NULL);
    CHECK(!dir_exists("s-0"));
    lm_stray st[2];
    int total = -1;
    CHECK_EQ_INT(logmgr_strays(bmeta_logmgr(m), st, 2, &total), 0);
    CHECK_EQ_INT(total, 0);
    /* A new topic of that name starts empty in a fresh directory. */
    CHECK_EQ_INT(create(m, "s", 1, 1), 0);
    CHECK_EQ_INT(end_offset(m, "s", 0), 0);
    bmeta_close(m);
    teardown();
}

static void put_batch(bmeta *m, const char *topic, int32_t index) {
    REQUIRE(append_value(m, topic, index, 1000) == 0);
}

static void write_text(const char *rel, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    FILE *f = fopen(p, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* The set-aside directory of dname (NULL when there is none). */
static const char *stray_of(const char *dname, char *out, size_t n) {
    DIR *d = opendir(g_root);
    REQUIRE(d != NULL);
    struct dirent *e;
    const char *found = NULL;
    size_t dl = strlen(dname);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, dname, dl) == 0 && e->d_name[dl] == '.' && strstr(e->d_name, "-stray")) {
            snprintf(out, n, "%s", e->d_name);
            found = out;
        }
    closedir(d);
    return found;
}

/* A directory whose id is not its topic's, or that no topic explains, is
 * set aside with its data (never removed), reported at every start, and
 * the live partition starts afresh beside it. */
static void test_mismatch_sets_aside(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(create(m, "m", 2, 1) == 0);
    put_batch(m, "m", 0);
    put_batch(m, "m", 1);
    bmeta_close(m);
    /* m-0 claims another id; ghost-3 and m-7 belong to nothing known;
     * m-1 has an unreadable owner file. */
    write_text("m-0/partition.metadata", "version: 0\ntopic_id: 0123456789abcdef0123456789abcdef\n");
    write_text("m-1/partition.metadata", "version: 0\ntopic_id: zz\n");
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "cp -r '%s/m-0' '%s/ghost-3' && cp -r '%s/m-0' '%s/m-7'", g_root, g_root,
             g_root, g_root);
    REQUIRE(system(cmd) == 0);
    for (int round = 0; round < 2; round++) {
        m = open_meta();
        REQUIRE(m != NULL);
        char name[300];
        CHECK(stray_of("m-0", name, sizeof name) != NULL && strstr(name, "m-0.0123456789abcdef") == name);
        CHECK(stray_of("m-1", name, sizeof name) != NULL && strstr(name, "m-1.unknown-stray") == name);
        CHECK(stray_of("ghost-3", name, sizeof name) != NULL);
        CHECK(stray_of("m-7", name, sizeof name) != NULL);
        CHECK(!dir_exists("ghost-3") && !dir_exists("m-7"));
        lm_stray st[8];
        int total = 0;
        CHECK_EQ_INT(logmgr_strays(bmeta_logmgr(m), st, 8, &total), 4);
        CHECK_EQ_INT(total, 4);
        for (int i = 0; i < 4 && i < total; i++)
            CHECK(st[i].bytes > 1000 && st[i].root == 0 && strstr(st[i].name, "-stray") != NULL);
        CHECK_EQ_INT(end_offset(m, "m", 0), 0); /* a fresh partition */
        CHECK_EQ_INT(end_offset(m, "m", 1), 0);
        bmeta_close(m);
    }
    teardown();
}

/* The longest topic names still get a set-aside name within NAME_MAX. */
static void test_set_aside_long_name(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    char name[MD_NAME_MAX + 1], dname[MD_NAME_MAX + 16], rel[MD_NAME_MAX + 40];
    memset(name, 'q', MD_NAME_MAX);
    name[MD_NAME_MAX] = '\0';
    REQUIRE(create(m, name, 1, 1) == 0);
    bmeta_close(m);
    snprintf(dname, sizeof dname, "%s-0", name);
    snprintf(rel, sizeof rel, "%s/partition.metadata", dname);
    write_text(rel, "version: 0\ntopic_id: 0123456789abcdef0123456789abcdef\n");
    m = open_meta();
    REQUIRE(m != NULL);
    lm_stray st[2];
    int total = 0;
    CHECK_EQ_INT(logmgr_strays(bmeta_logmgr(m), st, 2, &total), 1);
    CHECK(strlen(st[0].name) <= 255 &&
          strstr(st[0].name, "-0.0123456789abcdef0123456789abcdef-stray") != NULL);
    CHECK_EQ_INT(st[0].partition, 0);
    CHECK(dir_exists(dname)); /* the live partition, fresh */
    CHECK_EQ_INT(end_offset(m, name, 0), 0);
    bmeta_close(m);
    teardown();
}

/* A torn write at the end of the metadata log after a crash is cut (it was
 * never acknowledged); the same bytes after a clean shutdown, or damage
 * below the recovery point, stop the broker. */
static void test_metadata_torn_tail(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(create(m, "keep", 1, 1) == 0);
    bmeta_close(m);
    char seg[400], marker[400];
    snprintf(seg, sizeof seg, "%s/" MDLOG_DIR_NAME "/00000000000000000000.log", g_root);
    snprintf(marker, sizeof marker, "%s/.clean-shutdown", g_root);
    struct stat st;
    REQUIRE(stat(seg, &st) == 0);
    off_t whole = st.st_size;
    /* Half a batch appended, as a crash during a write leaves it. */
    uint8_t half[40] = {0};
    half[11] = 200; /* a batch length past the end */
    half[16] = 2;
    FILE *f = fopen(seg, "ab");
    REQUIRE(f != NULL && fwrite(half, 1, sizeof half, f) == sizeof half);
    fclose(f);
    CHECK(open_meta() == NULL); /* clean shutdown: this is damage */
    REQUIRE(stat(seg, &st) == 0 && st.st_size == whole + (off_t)sizeof half);
    unlink(marker);
    m = open_meta();
    REQUIRE(m != NULL);
    CHECK(has_topic(m, "keep"));
    REQUIRE(create(m, "after", 1, 1) == 0);
    bmeta_close(m);
    m = open_meta();
    REQUIRE(m != NULL);
    CHECK(has_topic(m, "keep") && has_topic(m, "after"));
    bmeta_close(m);
    /* A flipped byte inside a fsynced record, unclean or not: refused. */
    int fd = open(seg, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t c;
    REQUIRE(pread(fd, &c, 1, 70) == 1);
    c ^= 0x10;
    REQUIRE(pwrite(fd, &c, 1, 70) == 1);
    close(fd);
    CHECK(open_meta() == NULL);
    unlink(marker);
    CHECK(open_meta() == NULL);
    CHECK(dir_exists("keep-0") && dir_exists("after-0"));
    char name[300];
    CHECK(stray_of("keep-0", name, sizeof name) == NULL && stray_of("after-0", name, sizeof name) == NULL);
    teardown();
}

/* A missing (or emptied) metadata log while partition directories exist is
 * a lost record of the topics, not an empty broker: refuse, touch nothing. */
static void test_missing_metadata_refuses(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(create(m, "keep", 2, 1) == 0);
    bmeta_close(m);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/" MDLOG_DIR_NAME "'", g_root);
    REQUIRE(system(cmd) == 0);
    CHECK(open_meta() == NULL);
    CHECK(dir_exists("keep-0") && dir_exists("keep-1"));
    char name[300];
    CHECK(stray_of("keep-0", name, sizeof name) == NULL);
    /* A refused start may leave an empty metadata log directory behind: the
     * next start refuses as well. */
    CHECK(open_meta() == NULL);
    CHECK(dir_exists("keep-0") && dir_exists("keep-1"));
    CHECK(stray_of("keep-0", name, sizeof name) == NULL && stray_of("keep-1", name, sizeof name) == NULL);
    teardown();
}

static void test_node_id_mismatch(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    bmeta_close(m);
    config_free(&g_cfg);
    char err[CONFIG_ERR_MAX];
    config_init(&g_cfg);
    REQUIRE(config_set(&g_cfg, "log.dirs", g_root, CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_set(&g_cfg, "node.id", "7", CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_finish(&g_cfg, err) == 0);
    CHECK(open_meta() == NULL);
    teardown();
}

static void test_delete_disabled(void) {
    setup("delete.topic.enable", "false");
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(create(m, "keep", 1, 1) == 0);
    CHECK_EQ_INT(delete_topic(m, "keep"), KAFKA_ERR_TOPIC_DELETION_DISABLED);
    CHECK(has_topic(m, "keep") && dir_exists("keep-0"));
    bmeta_close(m);
    teardown();
}

/* ---- snapshots ------------------------------------------------------------------------ */

/* Replays the metadata log under root as bmeta_open does (the newest
 * snapshot, then the tail) into a new image; info says what was read. */
typedef struct replay_sink {
    md_delta *d;
} replay_sink;

static int replay_into(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err,
                       size_t errn) {
    (void)offset;
    (void)from_snapshot;
    replay_sink *r = ctx;
    return md_apply(r->d, rec, err, errn) == MD_OK ? 0 : -1;
}

static md_image *replay_log(mdlog_open_info *info) {
    char dir[400], err[1024];
    snprintf(dir, sizeof dir, "%s/" MDLOG_DIR_NAME, g_root);
    md_image *empty = md_image_empty();
    replay_sink r = {md_delta_begin(empty)};
    md_image_unref(empty);
    REQUIRE(r.d != NULL);
    mdlog_config mc;
    mdlog_config_default(&mc);
    mdlog *l = NULL;
    if (mdlog_open(g_storage, dir, true, &mc, replay_into, &r, &l, info, err, sizeof err) != 0) {
        fprintf(stderr, "replaying %s: %s\n", dir, err);
        md_delta_abort(r.d);
        REQUIRE(false);
    }
    REQUIRE(mdlog_close(l) == 0);
    md_image *img = md_delta_publish(r.d, info->end_offset - 1, 0);
    REQUIRE(img != NULL);
    return img;
}

/* The records that rebuild an image, broker registrations aside (every
 * start registers anew, with a new epoch and incarnation), encoded and
 * sorted: two images with equal lists hold the same topics, partitions,
 * configs, features and producer ids. */
typedef struct rec_list {
    char **v;
    size_t *len;
    int n, cap;
} rec_list;

static int collect_rec(void *ctx, const mdrec *rec) {
    rec_list *l = ctx;
    if (rec->type == KAFKA_MREC_REGISTER_BROKER)
        return 0;
    arena a;
    arena_init(&a, 1 << 16);
    uint8_t *out;
    size_t len;
    int rc = mdrec_encode_alloc(rec, &a, &out, &len);
    if (rc == 0) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
            l->len = realloc(l->len, (size_t)l->cap * sizeof *l->len);
        }
        l->v[l->n] = malloc(len);
        memcpy(l->v[l->n], out, len);
        l->len[l->n++] = len;
    }
    arena_reset(&a);
    return rc;
}

static const rec_list *g_sort_list;
static int cmp_rec(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    const rec_list *l = g_sort_list;
    size_t n = l->len[i] < l->len[j] ? l->len[i] : l->len[j];
    int c = memcmp(l->v[i], l->v[j], n);
    return c ? c : (l->len[i] > l->len[j]) - (l->len[i] < l->len[j]);
}

static int *sorted_order(const rec_list *l) {
    int *ord = malloc((size_t)(l->n ? l->n : 1) * sizeof *ord);
    for (int i = 0; i < l->n; i++)
        ord[i] = i;
    g_sort_list = l;
    qsort(ord, (size_t)l->n, sizeof *ord, cmp_rec);
    return ord;
}

static bool same_but_brokers(const md_image *x, const md_image *y) {
    rec_list a = {0}, b = {0};
    REQUIRE(md_image_records(x, collect_rec, &a) == 0 && md_image_records(y, collect_rec, &b) == 0);
    int *oa = sorted_order(&a), *ob = sorted_order(&b);
    bool same = a.n == b.n && a.n > 0;
    for (int i = 0; same && i < a.n; i++)
        same = a.len[oa[i]] == b.len[ob[i]] && memcmp(a.v[oa[i]], b.v[ob[i]], a.len[oa[i]]) == 0;
    for (int i = 0; i < a.n; i++)
        free(a.v[i]);
    for (int i = 0; i < b.n; i++)
        free(b.v[i]);
    free(a.v);
    free(a.len);
    free(b.v);
    free(b.len);
    free(oa);
    free(ob);
    return same;
}

static int snapshot_files(void) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/" MDLOG_DIR_NAME, g_root);
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        n += l > 11 && e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
             strcmp(e->d_name + l - 11, ".checkpoint") == 0;
    }
    closedir(d);
    return n;
}

/* A mix of changes: topics created (with overrides), grown, altered and
 * deleted; round r makes names of its own. */
static void changes(bmeta *m, int r) {
    char a[32], b[32];
    snprintf(a, sizeof a, "keep%d", r);
    snprintf(b, sizeof b, "drop%d", r);
    const char *k[] = {"retention.ms"}, *v[] = {"123456"};
    REQUIRE(create_cfg(m, a, 2, 1, k, v, 1, false, NULL, NULL, 0) == 0);
    REQUIRE(create(m, b, 1, 1) == 0);
    REQUIRE(add_partitions(m, a, 3, false) == 0);
    const char *k2[] = {"cleanup.policy", "retention.ms"}, *v2[] = {"compact", NULL};
    REQUIRE(alter(m, a, k2, v2, 2, true) == 0);
    REQUIRE(delete_topic(m, b) == 0);
    const char *k3[] = {"max.message.bytes"}, *v3[] = {"4096"};
    REQUIRE(alter(m, "base", k3, v3, 1, false) == 0);
}

/* A snapshot followed by more changes: the snapshot plus the tail rebuild
 * exactly the image the broker had, and a reopen starts from it. */
static void test_snapshot_then_changes_reopen(void) {
    setup(NULL, NULL);
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    REQUIRE(create(m, "base", 2, 1) == 0);
    changes(m, 0);
    CHECK_EQ_INT(snapshot_files(), 0);
    REQUIRE(bmeta_snapshot(m) == 0);
    CHECK_EQ_INT(snapshot_files(), 1);
    md_image *at_snapshot = bmeta_image(m);
    changes(m, 1);
    md_image *live = bmeta_image(m);
    CHECK(!same_but_brokers(at_snapshot, live)); /* the tail matters */
    CHECK_EQ_INT(bmeta_close(m), 0);

    mdlog_open_info info;
    md_image *replayed = replay_log(&info);
    CHECK_EQ_INT(info.snapshot_end, md_image_offset(at_snapshot) + 1);
    CHECK(info.snapshot_records > 0 && info.log_records > 0);
    char why[256] = "";
    CHECK(md_image_equal(live, replayed, why, sizeof why));
    if (why[0])
        fprintf(stderr, "snapshot + tail against the live image: %s\n", why);
    md_image_unref(replayed);

    m = open_meta();
    REQUIRE(m != NULL);
    md_image *reopened = bmeta_image(m);
    CHECK(same_but_brokers(live, reopened));
    CHECK(md_image_topic(reopened, kstr_c("keep1")) != NULL &&
          md_image_topic(reopened, kstr_c("drop1")) == NULL);
    CHECK_EQ_INT(partition_count(m, "keep1"), 3);
    CHECK(md_image_config(reopened, MD_RESOURCE_TOPIC, "keep1", "retention.ms") == NULL);
    rpart *p = part(m, "base", 1);
    REQUIRE(p != NULL);
    CHECK_EQ_INT(p->cfg.max_message_bytes, 4096);
    rpart_release(p);
    /* More changes on top, a second snapshot, more again: still one image. */
    changes(m, 2);
    REQUIRE(bmeta_snapshot(m) == 0);
    changes(m, 3);
    md_image *live2 = bmeta_image(m);
    CHECK_EQ_INT(bmeta_close(m), 0);
    replayed = replay_log(&info);
    CHECK(info.snapshot_end > md_image_offset(at_snapshot) + 1 && info.log_records > 0);
    why[0] = '\0';
    CHECK(md_image_equal(live2, replayed, why, sizeof why));
    if (why[0])
        fprintf(stderr, "second snapshot + tail against the live image: %s\n", why);
    CHECK(snapshot_files() <= 2); /* older ones are trimmed */
    md_image_unref(replayed);
    m = open_meta();
    REQUIRE(m != NULL);
    md_image *reopened2 = bmeta_image(m);
    CHECK(same_but_brokers(live2, reopened2));
    CHECK_EQ_INT(bmeta_close(m), 0);
    md_image_unref(reopened2);
    md_image_unref(live2);
    md_image_unref(reopened);
    md_image_unref(live);
    md_image_unref(at_snapshot);
    teardown();
}

/* ---- migration of __sluice_metadata-0 ----------------------------------------------- */

static kuuid uid(uint8_t n) {
    kuuid u;
    for (int i = 0; i < 16; i++)
        u.b[i] = (uint8_t)(0x40 + n * 16 + i);
    return u;
}

/* Appends one old-format change to l as the earlier version did: one
 * record per batch, keyed by its type's name. */
static void old_append(plog *l, const md_old_change *c) {
    static const char *names[] = {"", "topic", "partitions", "config", "delete", "creating"};
    uint8_t val[4096];
    size_t len = 0;
    REQUIRE(md_migrate_encode_old(c, val, sizeof val, &len) == 0);
    batch_build_record rec = {.key = {(const uint8_t *)names[c->type], (int32_t)strlen(names[c->type])},
                              .value = {val, (int32_t)len},
                              .timestamp = 1700000000000LL};
    arena a;
    arena_init(&a, 1 << 16);
    batch_build_opts o = batch_build_defaults();
    uint8_t *batch;
    size_t blen;
    REQUIRE(batch_build(&o, &rec, 1, &a, &batch, &blen) == 0);
    plog_append_info info;
    REQUIRE(plog_append(l, batch, blen, 0, 1700000000000LL, &info) == 0);
    arena_reset(&a);
}

/* A partition directory as the earlier version left it: the owner file and
 * `batches` batches of data. */
static void old_partition(const char *dname, kuuid owner, int batches) {
    char dir[400], hex[33], text[100], rel[300];
    snprintf(dir, sizeof dir, "%s/%s", g_root, dname);
    REQUIRE(mkdir(dir, 0755) == 0);
    logmgr_uuid_hex(owner, hex);
    snprintf(text, sizeof text, "version: 0\ntopic_id: %s\n", hex);
    snprintf(rel, sizeof rel, "%s/partition.metadata", dname);
    write_text(rel, text);
    plog_config pc;
    plog_config_default(&pc);
    int err = 0;
    plog *l = plog_open(g_storage, dir, &pc, true, &err);
    REQUIRE(l != NULL);
    uint8_t value[700];
    memset(value, 'm', sizeof value);
    for (int i = 0; i < batches; i++) {
        arena a;
        arena_init(&a, 1 << 16);
        batch_build_record rec = {
            .key = KBYTES_NULL, .value = {value, (int32_t)sizeof value}, .timestamp = 1};
        batch_build_opts o = batch_build_defaults();
        uint8_t *batch;
        size_t blen;
        REQUIRE(batch_build(&o, &rec, 1, &a, &batch, &blen) == 0);
        plog_append_info info;
        REQUIRE(plog_append(l, batch, blen, 0, 1000, &info) == 0);
        arena_reset(&a);
    }
    REQUIRE(plog_close(l) == 0);
}

/* A whole file's bytes (malloc'd), or NULL. */
static uint8_t *slurp(const char *rel, size_t *n) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    FILE *f = fopen(p, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    REQUIRE(b != NULL && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static bool same_file(const char *rel_a, const char *rel_b) {
    size_t na = 0, nb = 0;
    uint8_t *a = slurp(rel_a, &na), *b = slurp(rel_b, &nb);
    bool same = a != NULL && b != NULL && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

static void copy_tree(const char *from_rel, const char *to_rel) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -a '%s/%s' '%s/%s'", g_root, from_rel, g_root, to_rel);
    REQUIRE(system(cmd) == 0);
}

#define SEG0 "/00000000000000000000.log"

/* An earlier version's data directory: its metadata log and partitions. */
static void build_old_root(void) {
    write_text("meta.properties", "#\nversion=1\ncluster.id=OldClusterIdOldCluster\nnode.id=1\n");
    char old_dir[400];
    snprintf(old_dir, sizeof old_dir, "%s/" MD_MIGRATE_OLD_DIR, g_root);
    REQUIRE(mkdir(old_dir, 0755) == 0);
    plog_config pc;
    plog_config_default(&pc);
    int err = 0;
    plog *l = plog_open(g_storage, old_dir, &pc, true, &err);
    REQUIRE(l != NULL);
    const char *ok[] = {"retention.ms", "segment.bytes"}, *ov[] = {"60000", "1048576"};
    old_append(l, &(md_old_change){.type = 1,
                                   .id = uid(1),
                                   .name = kstr_c("orders"),
                                   .partitions = 2,
                                   .replication_factor = 1,
                                   .n_cfg = 2,
                                   .keys = ok,
                                   .values = ov});
    old_append(
        l, &(md_old_change){
               .type = 1, .id = uid(2), .name = kstr_c("events"), .partitions = 1, .replication_factor = 1});
    old_append(
        l, &(md_old_change){
               .type = 1, .id = uid(3), .name = kstr_c("gone"), .partitions = 1, .replication_factor = 1});
    /* events grows to 3, announced first as the earlier version did */
    old_append(l, &(md_old_change){.type = 5, .id = uid(2), .from = 1, .partitions = 3});
    old_append(l, &(md_old_change){.type = 2, .id = uid(2), .partitions = 3});
    const char *ck[] = {"cleanup.policy", "segment.bytes"}, *cv[] = {"compact", NULL};
    old_append(l, &(md_old_change){.type = 3, .id = uid(1), .n_cfg = 2, .keys = ck, .values = cv});
    const char *ek[] = {"max.message.bytes"}, *ev[] = {"5000"};
    old_append(l, &(md_old_change){
                      .type = 3, .id = uid(2), .replace_all = true, .n_cfg = 1, .keys = ek, .values = ev});
    old_append(l, &(md_old_change){.type = 4, .id = uid(3)});
    /* a creation the earlier version announced and never finished */
    old_append(l, &(md_old_change){.type = 5, .id = uid(2), .from = 3, .partitions = 4});
    REQUIRE(plog_close(l) == 0);
    old_partition("orders-0", uid(1), 3);
    old_partition("orders-1", uid(1), 1);
    old_partition("events-0", uid(2), 2);
    old_partition("events-1", uid(2), 0);
    old_partition("events-2", uid(2), 4);
    old_partition("gone-0", uid(3), 2);   /* a deleted topic's, left by a crash */
    old_partition("events-3", uid(2), 0); /* the unfinished creation's */
    write_text(".clean-shutdown", "");
}

static void check_migrated_image(bmeta *m) {
    char names[256];
    CHECK(strcmp(topic_names(m, names, sizeof names), "events orders") == 0);
    CHECK(memcmp(topic_id(m, "orders").b, uid(1).b, 16) == 0);
    CHECK(memcmp(topic_id(m, "events").b, uid(2).b, 16) == 0);
    CHECK_EQ_INT(partition_count(m, "orders"), 2);
    CHECK_EQ_INT(partition_count(m, "events"), 3);
    md_image *img = bmeta_image(m);
    CHECK(md_image_topic_by_id(img, uid(3)) == NULL);
    const char *ret = md_image_config(img, MD_RESOURCE_TOPIC, "orders", "retention.ms"),
               *pol = md_image_config(img, MD_RESOURCE_TOPIC, "orders", "cleanup.policy"),
               *mmb = md_image_config(img, MD_RESOURCE_TOPIC, "events", "max.message.bytes");
    CHECK(ret != NULL && strcmp(ret, "60000") == 0);
    CHECK(pol != NULL && strcmp(pol, "compact") == 0);
    CHECK(mmb != NULL && strcmp(mmb, "5000") == 0);
    CHECK(md_image_config(img, MD_RESOURCE_TOPIC, "orders", "segment.bytes") == NULL);
    md_image_unref(img);
    CHECK_EQ_INT(overrides(m, "orders"), 2);
    CHECK_EQ_INT(overrides(m, "events"), 1);
    CHECK(strcmp(bmeta_cluster_id(m), "OldClusterIdOldCluster") == 0);
    /* The partitions run on the migrated configs and the old data. */
    rpart *p = part(m, "orders", 0);
    REQUIRE(p != NULL);
    CHECK_EQ_INT(p->cfg.retention_ms, 60000);
    rpart_release(p);
    p = part(m, "events", 2);
    REQUIRE(p != NULL);
    CHECK_EQ_INT(p->cfg.max_message_bytes, 5000);
    rpart_release(p);
    CHECK_EQ_INT(end_offset(m, "orders", 0), 3);
    CHECK_EQ_INT(end_offset(m, "orders", 1), 1);
    CHECK_EQ_INT(end_offset(m, "events", 0), 2);
    CHECK_EQ_INT(end_offset(m, "events", 1), 0);
    CHECK_EQ_INT(end_offset(m, "events", 2), 4);
    lm_stray st[4];
    int total = -1;
    CHECK_EQ_INT(logmgr_strays(bmeta_logmgr(m), st, 4, &total), 0);
    CHECK_EQ_INT(total, 0);
}

static const char *const g_data_dirs[] = {"orders-0", "orders-1", "events-0", "events-1", "events-2"};
#define N_DATA_DIRS ((int)(sizeof g_data_dirs / sizeof g_data_dirs[0]))

/* The data directories' segments are byte for byte what `keep` holds. */
static bool data_untouched(const char *keep) {
    bool same = true;
    for (int i = 0; i < N_DATA_DIRS; i++) {
        char a[300], b[300];
        snprintf(a, sizeof a, "%s" SEG0, g_data_dirs[i]);
        snprintf(b, sizeof b, "%s/%s" SEG0, keep, g_data_dirs[i]);
        if (!same_file(a, b)) {
            fprintf(stderr, "%s changed\n", a);
            same = false;
        }
    }
    return same;
}

static void test_migrate_old_metadata_log(void) {
    setup(NULL, NULL);
    build_old_root();
    /* Copies to compare with: the old log and the data segments. */
    char orig[300];
    snprintf(orig, sizeof orig, "%s/.orig", g_root);
    REQUIRE(mkdir(orig, 0755) == 0);
    copy_tree(MD_MIGRATE_OLD_DIR, ".orig/old");
    for (int i = 0; i < N_DATA_DIRS; i++) {
        char to[100];
        snprintf(to, sizeof to, ".orig/%s", g_data_dirs[i]);
        copy_tree(g_data_dirs[i], to);
    }
    bmeta *m = open_meta();
    REQUIRE(m != NULL);
    check_migrated_image(m);
    /* The old log is renamed, whole; the new one took its place. */
    CHECK(!dir_exists(MD_MIGRATE_OLD_DIR));
    CHECK(dir_exists(MD_MIGRATE_OLD_DIR ".migrated"));
    CHECK(same_file(MD_MIGRATE_OLD_DIR ".migrated" SEG0, ".orig/old" SEG0));
    CHECK(dir_exists(MDLOG_DIR_NAME) && !dir_exists(MDLOG_DIR_NAME ".migrating"));
    /* The deleted topic's directory and the unfinished creation's go;
     * every other one is untouched. */
    CHECK(!dir_exists("gone-0"));
    CHECK(!dir_exists("events-3"));
    CHECK(data_untouched(".orig"));
    md_image *first = bmeta_image(m);
    /* A change after the migration, to see that nothing replays over it. */
    CHECK_EQ_INT(create(m, "late", 1, 1), 0);
    md_image *with_late = bmeta_image(m);
    CHECK_EQ_INT(bmeta_close(m), 0);

    /* The second start reads the new log only. */
    m = open_meta();
    REQUIRE(m != NULL);
    md_image *second = bmeta_image(m);
    CHECK(same_but_brokers(with_late, second));
    CHECK(has_topic(m, "late"));
    CHECK_EQ_INT(bmeta_close(m), 0);
    CHECK(same_file(MD_MIGRATE_OLD_DIR ".migrated" SEG0, ".orig/old" SEG0));
    CHECK(!dir_exists(MD_MIGRATE_OLD_DIR));

    /* Even with an old log back beside the new one (restored from a backup,
     * or an earlier binary started once more), the new log is the record:
     * the old one is left alone, not migrated again, not removed. */
    copy_tree(".orig/old", MD_MIGRATE_OLD_DIR);
    m = open_meta();
    REQUIRE(m != NULL);
    md_image *third = bmeta_image(m);
    CHECK(same_but_brokers(with_late, third));
    CHECK(has_topic(m, "late") && !has_topic(m, "gone"));
    CHECK_EQ_INT(bmeta_close(m), 0);
    CHECK(dir_exists(MD_MIGRATE_OLD_DIR) && same_file(MD_MIGRATE_OLD_DIR SEG0, ".orig/old" SEG0));
    CHECK(same_file(MD_MIGRATE_OLD_DIR ".migrated" SEG0, ".orig/old" SEG0));
    CHECK(data_untouched(".orig"));
    CHECK(!same_but_brokers(first, with_late));
    md_image_unref(first);
    md_image_unref(with_late);
    md_image_unref(second);
    md_image_unref(third);
    teardown();
}

/* A damaged old log is not migrated: the start stops and nothing in the
 * data directory changes. */
static void test_migrate_damaged_old_log_refuses(void) {
    setup(NULL, NULL);
    build_old_root();
    char seg[400];
    snprintf(seg, sizeof seg, "%s/" MD_MIGRATE_OLD_DIR SEG0, g_root);
    int fd = open(seg, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t c;
    REQUIRE(pread(fd, &c, 1, 80) == 1);
    c ^= 0x04;
    REQUIRE(pwrite(fd, &c, 1, 80) == 1);
    close(fd);
    copy_tree(MD_MIGRATE_OLD_DIR, ".old-copy");
    CHECK(open_meta() == NULL);
    CHECK(dir_exists(MD_MIGRATE_OLD_DIR) && !dir_exists(MD_MIGRATE_OLD_DIR ".migrated"));
    CHECK(same_file(MD_MIGRATE_OLD_DIR SEG0, ".old-copy" SEG0));
    CHECK(!dir_exists(MDLOG_DIR_NAME ".migrating"));
    CHECK(dir_exists("gone-0") && dir_exists("events-3") && dir_exists("orders-0"));
    char name[300];
    CHECK(stray_of("orders-0", name, sizeof name) == NULL && stray_of("gone-0", name, sizeof name) == NULL);
    teardown();
}

int main(void) {
    log_set_level(LOG_LEVEL_ERROR);
    g_storage = storage_ctx_new(sl_vfs_posix(), STORAGE_FD_LIMIT_DEFAULT);
    UNIT_RUN(test_create_and_errors);
    UNIT_RUN(test_persistence_and_changes);
    UNIT_RUN(test_stale_directory);
    UNIT_RUN(test_mismatch_sets_aside);
    UNIT_RUN(test_set_aside_long_name);
    UNIT_RUN(test_metadata_torn_tail);
    UNIT_RUN(test_missing_metadata_refuses);
    UNIT_RUN(test_node_id_mismatch);
    UNIT_RUN(test_delete_disabled);
    UNIT_RUN(test_snapshot_then_changes_reopen);
    UNIT_RUN(test_migrate_old_metadata_log);
    UNIT_RUN(test_migrate_damaged_old_log_refuses);
    storage_ctx_free(g_storage);
    return UNIT_END("test_meta");
}
