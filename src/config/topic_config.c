/*
 * config/topic_config.c - a topic's effective configuration (see
 * topic_config.h): one override validated and applied at a time, then the
 * checks across keys. The base a topic starts from is the caller's.
 */
#include "config/topic_config.h"

#include <assert.h>
#include <string.h>

#include "config/text.h"

int topic_config_validate(const char *key, const char *value, char *msg, size_t msgn) {
    char why[256];
    const config_def *td = config_find_topic(key);
    if (td == NULL) {
        config_fmt(msg, msgn, "Unknown topic config name: %.128s", key ? key : "(null)");
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    if (value == NULL) {
        config_fmt(msg, msgn, "Null value not supported for topic config %s", key);
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    if (config_validate_value(td, value, why, sizeof why) != 0) {
        config_fmt(msg, msgn, "Invalid value %.96s for configuration %s: %s", value, key, why);
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    return 0;
}

int topic_config_set(topic_config *tc, const char *key, const char *value, char *msg, size_t msgn) {
    char buf[CONFIG_VALUE_MAX + 1];
    int rc = topic_config_validate(key, value, msg, msgn);
    if (rc != 0)
        return rc;
    rc = config_value_copy(value, buf, NULL, 0);
    assert(rc == 0); /* validated: not too long */
    /* No topic key is a string or an item list, so nothing needs an arena. */
    rc = config_field_store(tc, config_find_topic(key), buf, NULL);
    assert(rc == 0);
    return rc;
}

int topic_config_overlay(topic_config *tc, const topic_config *base, const char *const *keys,
                         const char *const *values, size_t n, char *msg, size_t msgn) {
    *tc = *base;
    for (size_t i = 0; i < n; i++) {
        int rc = topic_config_set(tc, keys[i], values[i], msg, msgn);
        if (rc != 0)
            return rc;
    }
    if (tc->min_compaction_lag_ms > tc->max_compaction_lag_ms) {
        config_fmt(msg, msgn, "min.compaction.lag.ms (%lld) is larger than max.compaction.lag.ms (%lld)",
                   (long long)tc->min_compaction_lag_ms, (long long)tc->max_compaction_lag_ms);
        return CONFIG_KAFKA_INVALID_CONFIG;
    }
    return 0;
}
