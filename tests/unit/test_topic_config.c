/*
 * test_topic_config.c - the topic configuration layer (src/config) on its
 * own, as the controller or a tool would use it: no broker configuration, a
 * base built from the topic rows' defaults, overrides laid over it, and the
 * round trip of every topic key's value through its typed field. Only
 * config/ headers are included: the layer must stand without broker/.
 */
#include <stdint.h>
#include <string.h>

#include "config/schema.h"
#include "config/topic_config.h"
#include "unit.h"

/* A base from the topic rows' own defaults: what a topic with no overrides
 * gets when the broker's keys are at their defaults. */
static void defaults_base(topic_config *base) {
    size_t nt;
    const config_def *defs = config_topic_defs(&nt);
    memset(base, 0, sizeof *base);
    for (size_t i = 0; i < nt; i++) {
        char why[256];
        REQUIRE(defs[i].dflt != NULL);
        REQUIRE(config_validate_value(&defs[i], defs[i].dflt, why, sizeof why) == 0);
        REQUIRE(config_field_store(base, &defs[i], defs[i].dflt, NULL) == 0);
    }
}

static void test_overlay_on_own_base(void) {
    topic_config base, tc;
    char msg[256];
    defaults_base(&base);
    CHECK_EQ_INT(base.retention_ms, 604800000);
    CHECK_EQ_INT(base.cleanup_policy, CONFIG_CLEANUP_DELETE);
    CHECK_EQ_INT(base.compression_type, CONFIG_COMPRESSION_PRODUCER);
    CHECK(base.flush_ms == INT64_MAX);

    const char *keys[] = {"retention.ms", "cleanup.policy", "retention.ms", "compression.type"};
    const char *vals[] = {"1000", "compact,delete", " 2000 ", "zstd"};
    topic_config before = base;
    REQUIRE(topic_config_overlay(&tc, &base, keys, vals, 4, msg, sizeof msg) == 0);
    CHECK_EQ_INT(tc.retention_ms, 2000); /* the last of a key wins */
    CHECK_EQ_INT(tc.cleanup_policy, CONFIG_CLEANUP_DELETE | CONFIG_CLEANUP_COMPACT);
    CHECK_EQ_INT(tc.compression_type, CONFIG_COMPRESSION_ZSTD);
    CHECK_EQ_INT(tc.segment_bytes, base.segment_bytes);
    CHECK(memcmp(&before, &base, sizeof base) == 0); /* the base is not touched */

    /* No overrides: exactly the base. */
    REQUIRE(topic_config_overlay(&tc, &base, NULL, NULL, 0, msg, sizeof msg) == 0);
    CHECK(memcmp(&tc, &base, sizeof base) == 0);

    /* Checks across keys see the base too: a min lag above the base's max. */
    base.max_compaction_lag_ms = 50;
    const char *lag_k[] = {"min.compaction.lag.ms"};
    const char *lag_v[] = {"100"};
    CHECK_EQ_INT(topic_config_overlay(&tc, &base, lag_k, lag_v, 1, msg, sizeof msg),
                 CONFIG_KAFKA_INVALID_CONFIG);
    CHECK(strstr(msg, "min.compaction.lag.ms") && strstr(msg, "50"));

    const char *bad_k[] = {"segment.bytes", "flavour"};
    const char *bad_v[] = {"4096", "vanilla"};
    CHECK_EQ_INT(topic_config_overlay(&tc, &base, bad_k, bad_v, 2, msg, sizeof msg),
                 CONFIG_KAFKA_INVALID_CONFIG);
    CHECK(strstr(msg, "flavour") != NULL);
    const char *null_k[] = {"retention.ms"};
    const char *null_v[] = {NULL};
    CHECK_EQ_INT(topic_config_overlay(&tc, &base, null_k, null_v, 1, msg, sizeof msg),
                 CONFIG_KAFKA_INVALID_CONFIG);
    CHECK(strstr(msg, "retention.ms") != NULL);
}

/* Every topic key's default, stored and formatted again, reads as the row
 * says it: the typed field and the text a client sees agree. */
static void test_field_round_trip(void) {
    size_t nt;
    const config_def *defs = config_topic_defs(&nt);
    topic_config base;
    defaults_base(&base);
    CHECK(nt >= 20);
    for (size_t i = 0; i < nt; i++) {
        char buf[128], why[256];
        config_field_format(&base, &defs[i], buf, sizeof buf);
        if (strcmp(buf, defs[i].dflt) != 0) {
            fprintf(stderr, "%s: default %s reads back as %s\n", defs[i].name, defs[i].dflt, buf);
            unit_cur_failed = 1;
        }
        CHECK(config_validate_value(&defs[i], buf, why, sizeof why) == 0);
        CHECK(config_find_topic(defs[i].name) == &defs[i]);
    }
    CHECK(config_find_topic("log.retention.ms") == NULL);
    CHECK(config_find_topic(NULL) == NULL);
}

int main(void) {
    UNIT_RUN(test_overlay_on_own_base);
    UNIT_RUN(test_field_round_trip);
    return UNIT_END("test_topic_config");
}
