/*
 * Unit tests for src/broker/topics.c: creating, changing and deleting topics,
 * the errors Kafka clients expect, and that every change survives a reopen
 * (the metadata log is replayed).
 */
#include "broker/topics.h"
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
    snprintf(g_root, sizeof g_root, "/tmp/sluice-topics-XXXXXX");
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

static int create(topic_registry *reg, const char *name, int32_t parts, int16_t rf) {
    char msg[TOPICS_MSG_MAX];
    return topics_create(reg, kstr_c(name), parts, rf, NULL, NULL, 0, false, NULL, msg, sizeof msg);
}

static bool dir_exists(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_root, name);
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_create_and_errors(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    CHECK_EQ_INT(strlen(topics_cluster_id(reg)), 22);
    CHECK_EQ_INT(create(reg, "orders", 3, 1), 0);
    CHECK(dir_exists("orders-0") && dir_exists("orders-2") && !dir_exists("orders-3"));
    CHECK_EQ_INT(create(reg, "orders", 3, 1), KAFKA_ERR_TOPIC_ALREADY_EXISTS);
    CHECK_EQ_INT(create(reg, "bad name", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(create(reg, "..", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(create(reg, "", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    char longname[300];
    memset(longname, 'a', 250);
    longname[250] = '\0';
    CHECK_EQ_INT(create(reg, longname, 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(create(reg, "a.b", 1, 1), 0);
    CHECK_EQ_INT(create(reg, "a_b", 1, 1), KAFKA_ERR_INVALID_TOPIC_EXCEPTION); /* collides */
    CHECK_EQ_INT(create(reg, "zero", 0, 1), KAFKA_ERR_INVALID_PARTITIONS);
    CHECK_EQ_INT(create(reg, "rf3", 1, 3), KAFKA_ERR_INVALID_REPLICATION_FACTOR);
    CHECK_EQ_INT(create(reg, "defaults", -1, -1), 0);

    char msg[TOPICS_MSG_MAX];
    const char *bad_k[] = {"retention.ms"}, *bad_v[] = {"soon"};
    CHECK_EQ_INT(topics_create(reg, kstr_c("cfg"), 1, 1, bad_k, bad_v, 1, false, NULL, msg, sizeof msg),
                 KAFKA_ERR_INVALID_CONFIG);
    CHECK(strstr(msg, "retention.ms") != NULL);
    const char *k[] = {"retention.ms", "cleanup.policy"}, *v[] = {"60000", "compact"};
    CHECK_EQ_INT(topics_create(reg, kstr_c("vo"), 2, 1, k, v, 2, true, NULL, msg, sizeof msg), 0);
    CHECK(topics_get(reg, kstr_c("vo")) == NULL); /* validate_only */
    topic *t = NULL;
    CHECK_EQ_INT(topics_create(reg, kstr_c("cfg"), 2, 1, k, v, 2, false, &t, msg, sizeof msg), 0);
    REQUIRE(t != NULL);
    CHECK_EQ_INT(t->cfg.retention_ms, 60000);
    CHECK_EQ_INT(t->n_overrides, 2);
    topic_release(reg, t);

    int n = 0;
    topic **all = topics_list(reg, &n);
    CHECK_EQ_INT(n, 4);
    CHECK(strcmp(all[0]->name, "a.b") == 0 && strcmp(all[3]->name, "orders") == 0);
    for (int i = 0; i < n; i++)
        topic_release(reg, all[i]);
    free(all);
    CHECK_EQ_INT(topics_partition_count(reg), 3 + 1 + 1 + 2);
    topics_close(reg);
    teardown();
}

static void test_persistence_and_changes(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    char cid[32];
    snprintf(cid, sizeof cid, "%s", topics_cluster_id(reg));
    REQUIRE(create(reg, "t1", 2, 1) == 0);
    REQUIRE(create(reg, "t2", 1, 1) == 0);
    topic *t1 = topics_get(reg, kstr_c("t1"));
    REQUIRE(t1 != NULL);
    kuuid id1 = t1->id;
    char msg[TOPICS_MSG_MAX];
    CHECK_EQ_INT(topics_add_partitions(reg, t1, 2, false, msg, sizeof msg), KAFKA_ERR_INVALID_PARTITIONS);
    CHECK_EQ_INT(topics_add_partitions(reg, t1, 5, true, msg, sizeof msg), 0);
    CHECK_EQ_INT(topic_partition_count(t1), 2);
    CHECK_EQ_INT(topics_add_partitions(reg, t1, 5, false, msg, sizeof msg), 0);
    CHECK_EQ_INT(topic_partition_count(t1), 5);
    CHECK(topic_partition(t1, 4) != NULL && topic_partition(t1, 5) == NULL);

    /* Append a batch to t1-4 so we can see it after reopening. */
    arena a;
    arena_init(&a, 1 << 20);
    batch_build_record rec = {
        .key = {(const uint8_t *)"k", 1}, .value = {(const uint8_t *)"v", 1}, .timestamp = 1};
    batch_build_opts o = batch_build_defaults();
    uint8_t *batch;
    size_t blen;
    REQUIRE(batch_build(&o, &rec, 1, &a, &batch, &blen) == 0);
    plog_append_info info;
    CHECK_EQ_INT(plog_append(topic_partition(t1, 4)->log, batch, blen, 0, 1000, &info), 0);
    arena_reset(&a);

    const char *k1[] = {"retention.ms", "segment.bytes"}, *v1[] = {"1000", "100000"};
    CHECK_EQ_INT(topics_alter_config(reg, t1, k1, v1, 2, true, false, msg, sizeof msg), 0);
    const char *k2[] = {"segment.bytes", "max.message.bytes"}, *v2[] = {NULL, "5000"};
    CHECK_EQ_INT(topics_alter_config(reg, t1, k2, v2, 2, false, false, msg, sizeof msg), 0);
    const char *k3[] = {"no.such.key"}, *v3[] = {"1"};
    CHECK_EQ_INT(topics_alter_config(reg, t1, k3, v3, 1, false, false, msg, sizeof msg),
                 KAFKA_ERR_INVALID_CONFIG);
    CHECK_EQ_INT(t1->n_overrides, 2);
    CHECK_EQ_INT(t1->cfg.max_message_bytes, 5000);
    CHECK_EQ_INT(t1->cfg.retention_ms, 1000);

    /* The partition logs apply altered settings at once. */
    const char *k4[] = {"max.message.bytes"}, *v4[] = {"100"};
    CHECK_EQ_INT(topics_alter_config(reg, t1, k4, v4, 1, false, false, msg, sizeof msg), 0);
    uint8_t big[300];
    memset(big, 'x', sizeof big);
    batch_build_record brec = {.key = KBYTES_NULL, .value = {big, (int32_t)sizeof big}, .timestamp = 1};
    arena_init(&a, 1 << 20);
    REQUIRE(batch_build(&o, &brec, 1, &a, &batch, &blen) == 0);
    CHECK_EQ_INT(plog_append(topic_partition(t1, 0)->log, batch, blen, 0, 1000, &info),
                 STORAGE_MESSAGE_TOO_LARGE);
    arena_reset(&a);
    const char *k5[] = {"max.message.bytes"}, *v5[] = {"5000"};
    CHECK_EQ_INT(topics_alter_config(reg, t1, k5, v5, 1, false, false, msg, sizeof msg), 0);
    topic_release(reg, t1);

    topic *t2 = topics_get(reg, kstr_c("t2"));
    REQUIRE(t2 != NULL);
    CHECK_EQ_INT(topics_delete(reg, t2, msg, sizeof msg), 0);
    CHECK(topics_get(reg, kstr_c("t2")) == NULL);
    CHECK(dir_exists("t2-0")); /* we still hold a reference */
    topic_release(reg, t2);
    CHECK(!dir_exists("t2-0"));
    topics_close(reg);

    /* Reopen: everything is as it was. */
    reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    CHECK(strcmp(topics_cluster_id(reg), cid) == 0);
    t1 = topics_get(reg, kstr_c("t1"));
    REQUIRE(t1 != NULL);
    CHECK(memcmp(t1->id.b, id1.b, 16) == 0);
    CHECK_EQ_INT(topic_partition_count(t1), 5);
    CHECK_EQ_INT(t1->cfg.max_message_bytes, 5000);
    CHECK_EQ_INT(t1->cfg.retention_ms, 1000);
    CHECK_EQ_INT(t1->n_overrides, 2);
    CHECK_EQ_INT(plog_end_offset(topic_partition(t1, 4)->log), 1);
    CHECK(topics_get_by_id(reg, id1) == t1);
    topic_release(reg, t1);
    topic_release(reg, t1);
    CHECK(topics_get(reg, kstr_c("t2")) == NULL);

    /* Delete and recreate with the same name: the new topic starts empty. */
    t1 = topics_get(reg, kstr_c("t1"));
    CHECK_EQ_INT(topics_delete(reg, t1, msg, sizeof msg), 0);
    topic_release(reg, t1);
    CHECK_EQ_INT(create(reg, "t1", 5, 1), 0);
    t1 = topics_get(reg, kstr_c("t1"));
    REQUIRE(t1 != NULL);
    CHECK_EQ_INT(plog_end_offset(topic_partition(t1, 4)->log), 0);
    CHECK(memcmp(t1->id.b, id1.b, 16) != 0);
    topic_release(reg, t1);
    topics_close(reg);
    teardown();
}

/* A directory left by a deleted topic (crash before removal) must not be
 * taken for the data of a new topic with the same name. */
static void test_stale_directory(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    REQUIRE(create(reg, "s", 1, 1) == 0);
    topics_close(reg);
    /* Keep a copy of s-0 as if its removal never happened. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp -r '%s/s-0' '%s/s-0.keep'", g_root, g_root);
    REQUIRE(system(cmd) == 0);
    reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    topic *t = topics_get(reg, kstr_c("s"));
    char msg[TOPICS_MSG_MAX];
    REQUIRE(topics_delete(reg, t, msg, sizeof msg) == 0);
    topic_release(reg, t);
    topics_close(reg);
    snprintf(cmd, sizeof cmd, "mv '%s/s-0.keep' '%s/s-0'", g_root, g_root);
    REQUIRE(system(cmd) == 0);
    /* On open the leftover is recognised and removed. */
    reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    CHECK(!dir_exists("s-0"));
    topics_close(reg);
    teardown();
}

static void put_batch(topic *t, int32_t part) {
    arena a;
    arena_init(&a, 1 << 20);
    uint8_t value[1000];
    memset(value, 'd', sizeof value);
    batch_build_record rec = {.key = KBYTES_NULL, .value = {value, (int32_t)sizeof value}, .timestamp = 1};
    batch_build_opts o = batch_build_defaults();
    uint8_t *batch;
    size_t blen;
    REQUIRE(batch_build(&o, &rec, 1, &a, &batch, &blen) == 0);
    plog_append_info info;
    REQUIRE(plog_append(topic_partition(t, part)->log, batch, blen, 0, 1000, &info) == 0);
    arena_reset(&a);
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
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    REQUIRE(create(reg, "m", 2, 1) == 0);
    topic *t = topics_get(reg, kstr_c("m"));
    put_batch(t, 0);
    put_batch(t, 1);
    topic_release(reg, t);
    topics_close(reg);
    /* m-0 claims another id; ghost-3 and m-7 belong to nothing known;
     * m-1 has an unreadable owner file. */
    write_text("m-0/partition.metadata", "version: 0\ntopic_id: 0123456789abcdef0123456789abcdef\n");
    write_text("m-1/partition.metadata", "version: 0\ntopic_id: zz\n");
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "cp -r '%s/m-0' '%s/ghost-3' && cp -r '%s/m-0' '%s/m-7'", g_root, g_root,
             g_root, g_root);
    REQUIRE(system(cmd) == 0);
    for (int round = 0; round < 2; round++) {
        reg = topics_open(&g_cfg, g_storage);
        REQUIRE(reg != NULL);
        char name[300];
        CHECK(stray_of("m-0", name, sizeof name) != NULL && strstr(name, "m-0.0123456789abcdef") == name);
        CHECK(stray_of("m-1", name, sizeof name) != NULL && strstr(name, "m-1.unknown-stray") == name);
        CHECK(stray_of("ghost-3", name, sizeof name) != NULL);
        CHECK(stray_of("m-7", name, sizeof name) != NULL);
        CHECK(!dir_exists("ghost-3") && !dir_exists("m-7"));
        topics_stray st[8];
        int total = 0;
        CHECK_EQ_INT(topics_strays(reg, st, 8, &total), 4);
        CHECK_EQ_INT(total, 4);
        for (int i = 0; i < 4 && i < total; i++)
            CHECK(st[i].bytes > 1000 && st[i].root == 0 && strstr(st[i].name, "-stray") != NULL);
        t = topics_get(reg, kstr_c("m"));
        REQUIRE(t != NULL);
        CHECK_EQ_INT(plog_end_offset(topic_partition(t, 0)->log), 0); /* a fresh partition */
        CHECK_EQ_INT(plog_end_offset(topic_partition(t, 1)->log), 0);
        topic_release(reg, t);
        topics_close(reg);
    }
    teardown();
}

/* The longest topic names still get a set-aside name within NAME_MAX. */
static void test_set_aside_long_name(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    char name[TOPIC_NAME_MAX + 1], dname[TOPIC_NAME_MAX + 16], rel[TOPIC_NAME_MAX + 40];
    memset(name, 'q', TOPIC_NAME_MAX);
    name[TOPIC_NAME_MAX] = '\0';
    REQUIRE(create(reg, name, 1, 1) == 0);
    topics_close(reg);
    snprintf(dname, sizeof dname, "%s-0", name);
    snprintf(rel, sizeof rel, "%s/partition.metadata", dname);
    write_text(rel, "version: 0\ntopic_id: 0123456789abcdef0123456789abcdef\n");
    reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    topics_stray st[2];
    int total = 0;
    CHECK_EQ_INT(topics_strays(reg, st, 2, &total), 1);
    CHECK(strlen(st[0].name) <= 255 &&
          strstr(st[0].name, "-0.0123456789abcdef0123456789abcdef-stray") != NULL);
    CHECK_EQ_INT(st[0].partition, 0);
    CHECK(dir_exists(dname)); /* the live partition, fresh */
    topics_close(reg);
    teardown();
}

/* A torn write at the end of the metadata log after a crash is cut (it was
 * never acknowledged); the same bytes after a clean shutdown, or damage
 * below the recovery point, stop the broker. */
static void test_metadata_torn_tail(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    REQUIRE(create(reg, "keep", 1, 1) == 0);
    topics_close(reg);
    char seg[400], marker[400];
    snprintf(seg, sizeof seg, "%s/__sluice_metadata-0/00000000000000000000.log", g_root);
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
    CHECK(topics_open(&g_cfg, g_storage) == NULL); /* clean shutdown: this is damage */
    REQUIRE(stat(seg, &st) == 0 && st.st_size == whole + (off_t)sizeof half);
    unlink(marker);
    reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    topic *t = topics_get(reg, kstr_c("keep"));
    CHECK(t != NULL);
    topic_release(reg, t);
    REQUIRE(create(reg, "after", 1, 1) == 0);
    topics_close(reg);
    reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    t = topics_get(reg, kstr_c("after"));
    CHECK(t != NULL);
    topic_release(reg, t);
    topics_close(reg);
    /* A flipped byte inside a fsynced record, unclean or not: refused. */
    int fd = open(seg, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t c;
    REQUIRE(pread(fd, &c, 1, 70) == 1);
    c ^= 0x10;
    REQUIRE(pwrite(fd, &c, 1, 70) == 1);
    close(fd);
    CHECK(topics_open(&g_cfg, g_storage) == NULL);
    unlink(marker);
    CHECK(topics_open(&g_cfg, g_storage) == NULL);
    CHECK(dir_exists("keep-0") && dir_exists("after-0"));
    teardown();
}

/* A missing metadata log while partition directories exist is a lost
 * record of the topics, not an empty broker: refuse, touch nothing. */
static void test_missing_metadata_refuses(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    REQUIRE(create(reg, "keep", 2, 1) == 0);
    topics_close(reg);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/__sluice_metadata-0'", g_root);
    REQUIRE(system(cmd) == 0);
    CHECK(topics_open(&g_cfg, g_storage) == NULL);
    CHECK(dir_exists("keep-0") && dir_exists("keep-1"));
    char name[300];
    CHECK(stray_of("keep-0", name, sizeof name) == NULL);
    teardown();
}

static void test_node_id_mismatch(void) {
    setup(NULL, NULL);
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    topics_close(reg);
    config_free(&g_cfg);
    char err[CONFIG_ERR_MAX];
    config_init(&g_cfg);
    REQUIRE(config_set(&g_cfg, "log.dirs", g_root, CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_set(&g_cfg, "node.id", "7", CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_finish(&g_cfg, err) == 0);
    CHECK(topics_open(&g_cfg, g_storage) == NULL);
    teardown();
}

static void test_delete_disabled(void) {
    setup("delete.topic.enable", "false");
    topic_registry *reg = topics_open(&g_cfg, g_storage);
    REQUIRE(reg != NULL);
    REQUIRE(create(reg, "keep", 1, 1) == 0);
    topic *t = topics_get(reg, kstr_c("keep"));
    char msg[TOPICS_MSG_MAX];
    CHECK_EQ_INT(topics_delete(reg, t, msg, sizeof msg), KAFKA_ERR_TOPIC_DELETION_DISABLED);
    topic_release(reg, t);
    topics_close(reg);
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
    storage_ctx_free(g_storage);
    return UNIT_END("test_topics");
}
