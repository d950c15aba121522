/*
 * config_topic.c - topic keys on this broker: which broker key each topic
 * key takes its default from (its synonym, e.g. retention.ms from
 * log.retention.ms and the minutes and hours forms), and so the base
 * configuration of a topic with no overrides. Overrides are laid over that
 * base by config/topic_config.c, which knows nothing of the broker.
 */
#include "broker/config.h"

#include <assert.h>
#include <string.h>

/* The broker key each topic key takes its default from, in the order of
 * the topic table (config/topic_keys.c). Kept here rather than in the topic
 * rows because it names broker keys, which the layer below does not know. */
static const struct {
    const char *topic, *broker;
} topic_synonyms[] = {
    {"cleanup.policy", "log.cleanup.policy"},
    {"compression.gzip.level", "compression.gzip.level"},
    {"compression.lz4.level", "compression.lz4.level"},
    {"compression.zstd.level", "compression.zstd.level"},
    {"compression.type", "compression.type"},
    {"delete.retention.ms", "log.cleaner.delete.retention.ms"},
    {"file.delete.delay.ms", "log.segment.delete.delay.ms"},
    {"flush.messages", "log.flush.interval.messages"},
    {"flush.ms", "log.flush.interval.ms"},
    {"index.interval.bytes", "log.index.interval.bytes"},
    {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"},
    {"max.message.bytes", "message.max.bytes"},
    {"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms"},
    {"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms"},
    {"message.timestamp.type", "log.message.timestamp.type"},
    {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"},
    {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"},
    {"min.insync.replicas", "min.insync.replicas"},
    {"preallocate", "log.preallocate"},
    {"retention.bytes", "log.retention.bytes"},
    {"retention.ms", "log.retention.ms"},
    {"segment.bytes", "log.segment.bytes"},
    {"segment.index.bytes", "log.index.size.max.bytes"},
    {"segment.jitter.ms", "log.roll.jitter.ms"},
    {"segment.ms", "log.roll.ms"},
    {"unclean.leader.election.enable", "unclean.leader.election.enable"},
};

#define N_SYNONYMS (sizeof topic_synonyms / sizeof topic_synonyms[0])

const config_def *config_topic_broker_synonym(const config_def *td) {
    size_t nt;
    const config_def *topic_defs = config_topic_defs(&nt);
    assert(nt == N_SYNONYMS); /* every topic key needs a synonym */
    if (td < topic_defs || td >= topic_defs + nt)
        return NULL;
    const config_def *bd = config_find_broker(topic_synonyms[td - topic_defs].broker);
    assert(strcmp(topic_synonyms[td - topic_defs].topic, td->name) == 0);
    assert(bd != NULL);
    return bd;
}

void topic_config_init(topic_config *tc, const broker_config *bc) {
    size_t nt;
    const config_def *topic_defs = config_topic_defs(&nt);
    memset(tc, 0, sizeof *tc);
    for (size_t i = 0; i < nt; i++) {
        const config_def *td = &topic_defs[i];
        config_field_copy(tc, td, bc, config_topic_broker_synonym(td));
    }
}

int topic_config_build(topic_config *tc, const broker_config *bc, const char *const *keys,
                       const char *const *values, size_t n, char *msg, size_t msgn) {
    topic_config base;
    topic_config_init(&base, bc);
    return topic_config_overlay(tc, &base, keys, values, n, msg, msgn);
}
