/*
 * mdlog.h - the cluster metadata log, `__cluster_metadata-0`: KRaft metadata
 * records (metadata/records.h) in magic-2 batches, and its snapshots.
 *
 * Layout (in one directory, the first of log.dirs):
 *   - the log: a storage plog whose records have a null key and a framed
 *     metadata record as value; one batch per atomic change, its
 *     partitionLeaderEpoch the epoch of the leader that wrote it (0 on a
 *     single node; the Raft issue makes it the quorum epoch);
 *   - snapshots: `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint`,
 *     record batches starting with a control batch holding a
 *     SnapshotHeaderRecord and ending with one holding a SnapshotFooterRecord,
 *     between them every record needed to rebuild the image as of end offset
 *     (exclusive). Written to a temporary file, fsynced, renamed, and the
 *     directory fsynced, so a crash leaves the old snapshot or the new one.
 *
 * Opening replays: the newest snapshot that verifies (every batch's CRC,
 * header first, footer last, every record decodes and applies) whose end
 * the log still covers, then the log's records from that end on, through
 * the caller's apply function. The log's files are verified before storage
 * opens them (logscan.h): damage anywhere but a torn tail after an unclean
 * shutdown, a gap, or a record that does not apply stops the open with a
 * message naming the file and offset — metadata is never read as "less".
 *
 * Trimming: a snapshot at end E rolls the log (a segment starts at E), and
 * the log start moves to the previous snapshot's end, so whole segments
 * below it go with the log's retention and snapshots older than the
 * previous one are removed: the previous snapshot plus the log still
 * replay if the newest one is damaged. A start reads and verifies only the
 * segments from the chosen snapshot's end on (metalog_scan's skip_below),
 * so start time depends on the size of the image plus the records since
 * the last snapshot, not on history.
 * Thread-safety: one owner serialises every call (the broker's metadata
 * manager holds a mutex around appends and snapshots).
 */
#ifndef SLUICE_METADATA_MDLOG_H
#define SLUICE_METADATA_MDLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "metadata/image.h"
#include "metadata/records.h"
#include "storage/storage.h"

#define MDLOG_DIR_NAME     "__cluster_metadata-0"
#define MDLOG_BATCH_MAX    (64 << 20) /* bytes of one atomic change */
#define MDLOG_SNAPSHOT_MAX 64         /* snapshot files considered at open */

typedef struct mdlog_config {
    int64_t segment_bytes;
    /* metadata.log.max.record.bytes.between.snapshots: a snapshot is due
     * once this many bytes were appended since the last one. */
    int64_t snapshot_bytes;
    /* metadata.log.max.snapshot.interval.ms: ... or this long passed with
     * at least one record appended (0: never by time). */
    int64_t snapshot_interval_ms;
    /* Records at or past this offset are verified but not applied at open
     * (a quorum member applies only what it knows to be committed; the
     * rest follows as the high watermark moves). INT64_MAX: all. */
    int64_t replay_below;
    /* A snapshot does not move the log start (a quorum member keeps the
     * whole log until snapshots can be fetched by lagging voters). */
    bool keep_log;
} mdlog_config;

void mdlog_config_default(mdlog_config *c);

/* Called for every record replayed at open, in order: from_snapshot says
 * whether it came from a snapshot (offset is then the snapshot's end - 1)
 * or from the log (its offset). Returns 0, or -1 with err filled (the open
 * then fails with it). */
typedef int (*mdlog_apply_fn)(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err,
                              size_t errn);

typedef struct mdlog_open_info {
    int64_t snapshot_end; /* -1: no snapshot was loaded */
    int64_t snapshot_records;
    int64_t log_records; /* replayed from the log after the snapshot */
    int64_t end_offset;  /* the log end: the next record's offset */
    int32_t last_epoch;  /* of the last batch replayed, -1 when none */
    bool torn_tail;      /* an unflushed tail was cut */
} mdlog_open_info;

typedef struct mdlog mdlog;

/* Opens (creating if absent) the metadata log in dir. was_clean: the log
 * dir's clean-shutdown marker was there. Returns 0 with *out, or -1 with
 * err filled (nothing usable: the broker must not start). */
int mdlog_open(storage_ctx *sc, const char *dir, bool was_clean, const mdlog_config *cfg, mdlog_apply_fn fn,
               void *ctx, mdlog **out, mdlog_open_info *info, char *err, size_t errn);
/* Flushes and closes. Returns 0 or a storage error (the log was not closed
 * cleanly: recovered at the next start). */
int mdlog_close(mdlog *m);

/* Appends recs[0..n) as one batch at epoch and fsyncs it. 0 with *first /
 * *last set, or a storage_err (the log went offline: nothing was applied),
 * or STORAGE_RECORD_LIST_TOO_LARGE for more than MDLOG_BATCH_MAX bytes. */
int mdlog_append(mdlog *m, const mdrec *recs, int n, int32_t epoch, int64_t now_ms, int64_t *first,
                 int64_t *last);
int64_t mdlog_end_offset(const mdlog *m);
bool mdlog_offline(const mdlog *m);
/* Tries to bring an offline log back (space returned). 0 when online. */
int mdlog_reopen(mdlog *m);

/* Whether a snapshot is due (bytes or time since the last one). */
bool mdlog_snapshot_due(const mdlog *m, int64_t now_ms);
/* Writes a snapshot of img (whose offset must be the log end - 1) and trims
 * the log below it. 0, or -1 with err filled (the log is untouched: the old
 * snapshot and the whole log still replay). */
int mdlog_snapshot(mdlog *m, const md_image *img, int32_t epoch, int64_t now_ms, char *err, size_t errn);
/* Snapshots written by this process, and the newest end offset (-1). */
int64_t mdlog_last_snapshot_end(const mdlog *m);

/* Background work of the log's storage (segment roll flushes, retention of
 * trimmed segments). */
void mdlog_tick(mdlog *m, int64_t now_ms);

/* ---- the Raft log (a quorum member's use) -----------------------------------------------------
 * The log is then the replicated log of Raft: the leader appends its own
 * changes with mdlog_append at its epoch (and a LeaderChangeMessage control
 * batch when its epoch starts), followers append the leader's batches as
 * they are, a diverging follower truncates, and the leader reads batches to
 * answer Fetch. Records are applied only once committed (mdlog_replay). */

/* A follower's append: whole batches that carry their offsets and epochs
 * (the first at the log end), written as they are and fsynced. */
int mdlog_append_raw(mdlog *m, const uint8_t *buf, size_t len, int64_t now_ms, int64_t *end_offset);
/* Appends a control batch with one LeaderChangeMessage (leader, voters) at
 * epoch and fsyncs it. */
int mdlog_append_leader_change(mdlog *m, int32_t epoch, int32_t leader_id, const int32_t *voters,
                               int n_voters, int64_t now_ms, int64_t *offset);
/* Removes every record at or past offset (never below the log start). */
int mdlog_truncate(mdlog *m, int64_t offset);
int64_t mdlog_start_offset(const mdlog *m);
/* Whole batches from offset (which must start a batch) below max_offset, at
 * most max_bytes of them but at least one: *buf (malloc'd, the caller frees)
 * and *end (one past the last offset). 0, or a storage error. */
int mdlog_read(mdlog *m, int64_t offset, int64_t max_offset, int32_t max_bytes, uint8_t **buf, size_t *len,
               int64_t *end);
/* Every batch from offset on: fn(ctx, base offset, last offset, epoch,
 * control). 0, fn's non-zero value, or a storage error. */
typedef int (*mdlog_batch_fn)(void *ctx, int64_t base, int64_t last, int32_t epoch, bool control);
int mdlog_batches(mdlog *m, int64_t from, mdlog_batch_fn fn, void *ctx);
/* The metadata records of [from, to) in order through fn (from_snapshot
 * false); control batches are skipped. 0, or -1 with err. */
int mdlog_replay(mdlog *m, int64_t from, int64_t to, mdlog_apply_fn fn, void *ctx, char *err, size_t errn);
/* The epoch of the newest snapshot this log continues from (0: none). */
int32_t mdlog_snapshot_epoch(const mdlog *m);

/* Reads a snapshot file on its own (for tools and tests): every record in
 * order through fn (from_snapshot true). 0, or -1 with err. */
int mdlog_read_snapshot(storage_ctx *sc, const char *path, mdlog_apply_fn fn, void *ctx, int64_t *records,
                        char *err, size_t errn);

#endif
