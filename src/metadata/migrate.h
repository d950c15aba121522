/*
 * migrate.h - reading the metadata log of earlier Sluice versions
 * (`__sluice_metadata-0`) as KRaft metadata records, once, at the first
 * start of this version.
 *
 * The old log held one record per change: a topic created (name, id,
 * partition count, configs), partitions added, configs changed (replace-all
 * or per key), a topic deleted, and "creating" announcements (partition
 * directories about to be made). md_migrate_read() verifies the old log as
 * strictly as the new one is (logscan.h: damage other than a torn tail is an
 * error), replays those changes in order into their end state, and hands
 * back:
 *   - the records that rebuild that state in the new log: for each live
 *     topic a TopicRecord with its original id, a PartitionRecord per
 *     partition (this node the only replica, leader, ISR; leader epoch 0),
 *     and a ConfigRecord per stored override, values as written (an override
 *     this version cannot use is kept, and takes its partitions offline
 *     when used, as any unusable stored config does);
 *   - the ids of topics the old log deleted and the unfinished creations,
 *     so the log manager can remove the directories they left, as the old
 *     version would have.
 * Nothing is written: the caller writes the records into the new log and
 * renames the old directory away.
 */
#ifndef SLUICE_METADATA_MIGRATE_H
#define SLUICE_METADATA_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "metadata/records.h"
#include "proto/wire.h"
#include "storage/storage.h"

#define MD_MIGRATE_OLD_DIR "__sluice_metadata-0"

typedef struct md_migrate_intent {
    kuuid id;
    int32_t from, to; /* partitions [from, to) were being created */
} md_migrate_intent;

typedef struct md_migrate_result {
    int64_t old_records;
    int32_t topics;
    int32_t partitions;
    kuuid *deleted; /* sorted; malloc'd */
    int32_t n_deleted;
    md_migrate_intent *intents; /* unfinished creations; malloc'd */
    int32_t n_intents;
} md_migrate_result;

/* Receives the records, in an order md_apply accepts. 0, or -1 with err. */
typedef int (*md_migrate_fn)(void *ctx, const mdrec *rec, char *err, size_t errn);

/* Reads old_dir. Returns 0 with *res filled (free it with
 * md_migrate_result_free), or -1 with err filled. */
int md_migrate_read(storage_ctx *sc, const char *old_dir, bool was_clean, int32_t node_id, md_migrate_fn fn,
                    void *ctx, md_migrate_result *res, char *err, size_t errn);
void md_migrate_result_free(md_migrate_result *res);

/* Writes one record in the old format (tests build old logs with it).
 * type: 1 topic, 2 partitions, 3 config, 4 delete, 5 creating. */
typedef struct md_old_change {
    int type;
    kuuid id;
    kstr name;
    int32_t partitions, from;
    int16_t replication_factor;
    bool internal, replace_all;
    int n_cfg;
    const char *const *keys;
    const char *const *values;
} md_old_change;
int md_migrate_encode_old(const md_old_change *c, uint8_t *buf, size_t cap, size_t *len);

#endif
