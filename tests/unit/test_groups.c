/*
 * test_groups.c - src/broker/groups.c: the shards of __consumer_offsets over
 * a real topic registry (no network, no thread: the test calls groups_tick).
 * Leadership entry points (a shard loads when made leader, answers
 * NOT_COORDINATOR once a follower, ignores older epochs, loads again from
 * the log at a newer one), loading in chunks from records written to the
 * partition, and the removal of a deleted topic's offsets reaching the log.
 */
#include "broker/groups.h"

#include <stdlib.h>
#include <unistd.h>

#include "core/env.h"
#include "group/records.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"
#include "unit.h"

static char g_root[256];
static broker_config g_cfg;
static broker g_b;

static void setup(void) {
    snprintf(g_root, sizeof g_root, "/tmp/sluice-groups-XXXXXX");
    REQUIRE(mkdtemp(g_root) != NULL);
    char err[CONFIG_ERR_MAX];
    config_init(&g_cfg);
    REQUIRE(config_set(&g_cfg, "log.dirs", g_root, CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_set(&g_cfg, "offsets.topic.num.partitions", "3", CONFIG_ORIGIN_OVERRIDE, err) == 0);
    REQUIRE(config_finish(&g_cfg, err) == 0);
    memset(&g_b, 0, sizeof g_b);
    g_b.cfg = &g_cfg;
    g_b.storage = storage_ctx_new(sl_vfs_posix(), 64);
    REQUIRE(g_b.storage != NULL);
    g_b.meta = bmeta_open(&g_cfg, g_b.storage, NULL);
    REQUIRE(g_b.meta != NULL);
    REQUIRE(groups_mgr_init(&g_b) == 0);
}

static void teardown(void) {
    groups_mgr_destroy(&g_b);
    bmeta_close(g_b.meta);
    storage_ctx_free(g_b.storage);
    config_free(&g_cfg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", g_root);
}

/* Ticks until nothing is due now (loading done), at most 1000 times. */
static int tick_until_idle(int64_t now) {
    int n = 0;
    while (groups_next_deadline(&g_b) <= now && n < 1000) {
        groups_tick(&g_b, now);
        n++;
    }
    return n;
}

static int32_t shard_of(const char *group) {
    return gcoord_partition_for(kstr_c(group), groups_shard_count(&g_b));
}

/* OffsetFetch of group/t-0 through the shard: the offset, or -1000 - error. */
static int64_t fetched(const char *group, const char *topic) {
    groups_shard *s = groups_lock(&g_b, kstr_c(group));
    REQUIRE(s != NULL);
    int64_t off;
    int32_t ep;
    kstr meta;
    int16_t e = gcoord_fetch_offset(s->sm, kstr_c(group), kstr_c(topic), 0, &off, &ep, &meta);
    groups_unlock(s);
    return e ? -1000 - e : off;
}

/* Writes an offset commit record straight into the shard's partition (as an
 * earlier leader would have). */
static void write_commit(const char *group, const char *topic, int64_t offset) {
    groups_shard *s = groups_lock(&g_b, kstr_c(group));
    REQUIRE(s != NULL);
    plog *l = rpart_log(s->part);
    groups_unlock(s);
    REQUIRE(l != NULL);
    arena a;
    arena_init(&a, 1 << 20);
    batch_build_record r = {.timestamp = 1};
    grec_offset v = {offset, -1, kstr_c(""), 1, -1};
    REQUIRE(grec_encode_offset_key(&a, kstr_c(group), kstr_c(topic), 0, &r.key) == 0);
    REQUIRE(grec_encode_offset_value(&a, &v, &r.value) == 0);
    batch_build_opts o = batch_build_defaults();
    uint8_t *buf;
    size_t len;
    REQUIRE(batch_build(&o, &r, 1, &a, &buf, &len) == BATCH_OK);
    plog_append_info info;
    REQUIRE(plog_append(l, buf, len, 0, 1, &info) == STORAGE_OK);
    arena_reset(&a);
}

static void test_leadership(void) {
    setup();
    int64_t now = groups_now_ms();
    /* A single node leads every shard from the start: loading, then serving. */
    CHECK_EQ_INT(fetched("g", "t"), -1000 - KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    CHECK(tick_until_idle(now) >= 1);
    CHECK_EQ_INT(fetched("g", "t"), -1);
    int32_t i = shard_of("g");
    groups_shard *s = groups_lock_index(&g_b, i);
    int32_t epoch = gcoord_epoch(s->sm);
    groups_unlock(s);
    /* Another leader wrote to the partition; this broker is a follower. */
    groups_partition_follower(&g_b, i, epoch);
    CHECK_EQ_INT(fetched("g", "t"), -1000 - KAFKA_ERR_NOT_COORDINATOR);
    write_commit("g", "t", 41);
    write_commit("g", "t", 42);
    tick_until_idle(now);
    CHECK_EQ_INT(fetched("g", "t"), -1000 - KAFKA_ERR_NOT_COORDINATOR);
    /* An older epoch's leadership is stale; the next one loads the log. */
    groups_partition_leader(&g_b, i, epoch - 1);
    CHECK_EQ_INT(fetched("g", "t"), -1000 - KAFKA_ERR_NOT_COORDINATOR);
    groups_partition_leader(&g_b, i, epoch + 1);
    CHECK_EQ_INT(fetched("g", "t"), -1000 - KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    tick_until_idle(now);
    CHECK_EQ_INT(fetched("g", "t"), 42);
    /* A stale resignation changes nothing; the other shards never moved. */
    groups_partition_follower(&g_b, i, epoch);
    CHECK_EQ_INT(fetched("g", "t"), 42);
    for (int32_t k = 0; k < groups_shard_count(&g_b); k++) {
        groups_shard *o = groups_lock_index(&g_b, k);
        CHECK(gcoord_active(o->sm));
        groups_unlock(o);
    }
    /* Leadership moves while a load is under way: the new load wins. */
    groups_partition_follower(&g_b, i, epoch + 1);
    groups_partition_leader(&g_b, i, epoch + 2);
    groups_partition_follower(&g_b, i, epoch + 2);
    groups_partition_leader(&g_b, i, epoch + 3);
    tick_until_idle(now);
    CHECK_EQ_INT(fetched("g", "t"), 42);
    teardown();
}

/* A deleted topic's offsets go, through tombstones in the partition: a
 * reload at a later epoch does not bring them back. */
static void test_topic_deleted(void) {
    setup();
    int64_t now = groups_now_ms();
    write_commit("g", "t", 7);
    write_commit("g", "u", 8);
    write_commit("h", "t", 9);
    tick_until_idle(now);
    CHECK_EQ_INT(fetched("g", "t"), 7);
    CHECK_EQ_INT(fetched("h", "t"), 9);
    groups_topic_deleted(&g_b, kstr_c("t"));
    CHECK_EQ_INT(fetched("g", "t"), -1);
    CHECK_EQ_INT(fetched("h", "t"), -1);
    CHECK_EQ_INT(fetched("g", "u"), 8);
    tick_until_idle(now);
    for (int32_t k = 0; k < groups_shard_count(&g_b); k++) {
        groups_shard *o = groups_lock_index(&g_b, k);
        int32_t e = gcoord_epoch(o->sm);
        groups_unlock(o);
        groups_partition_follower(&g_b, k, e);
        groups_partition_leader(&g_b, k, e + 1);
    }
    tick_until_idle(now);
    CHECK_EQ_INT(fetched("g", "t"), -1);
    CHECK_EQ_INT(fetched("h", "t"), -1);
    CHECK_EQ_INT(fetched("g", "u"), 8);
    teardown();
}

int main(void) {
    UNIT_RUN(test_leadership);
    UNIT_RUN(test_topic_deleted);
    return UNIT_END("test_groups");
}
