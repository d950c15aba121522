/*
 * cleaner.h - log compaction: the cleaner of cleanup.policy=compact logs.
 *
 * A pass over one log (cleaner_clean) keeps, of the records below the map's
 * end, only the latest record of every key, as Kafka's log cleaner does:
 *
 *   1. The dirty section is the sealed segments from the cleaner checkpoint
 *      (plog_clean_state.first_dirty) up to the first segment that is not
 *      below the recovery point, or whose records are younger than
 *      min.compaction.lag.ms. The log is due when the dirty share of the
 *      cleanable bytes reaches min.cleanable.dirty.ratio, when its oldest
 *      dirty segment is older than max.compaction.lag.ms, or when a kept
 *      tombstone's delete horizon has passed.
 *   2. An offset map (key hash -> latest offset) is built over the dirty
 *      section within the pass's memory (log.cleaner.dedupe.buffer.size
 *      over the cleaner threads). When more keys come than fit, the map
 *      stops at a batch boundary (its end); the rest stays dirty for the
 *      next pass, so a log of any size is cleaned in several passes with
 *      the same bounded memory.
 *   3. The segments below the map's end are rewritten, a group of them
 *      (original sizes at most segment.bytes together) into one segment at
 *      the group's first base. A record below the map's end is dropped when
 *      the map holds a later offset for its key, when it has no key, or
 *      when it is a tombstone (null value) of a batch whose delete horizon
 *      has passed. Batches keep their base offset, lastOffsetDelta,
 *      partition leader epoch, producer fields, codec and timestamp type;
 *      records keep their offsets, timestamps and headers. A batch that
 *      loses no record is copied byte for byte; one that loses some is
 *      re-encoded with its own codec; one that loses all is left out. The
 *      first time a kept tombstone's batch is cleaned it gets a delete
 *      horizon (now + delete.retention.ms, attribute bit 6 with the horizon
 *      in baseTimestamp, as Kafka's format has it).
 *   4. Each cleaned segment is written as <base>.log.cleaned (with its
 *      indexes), fsynced, and swapped in by plog_clean_swap (log.h): renamed
 *      to .swap (the commit), the old segments unlinked, renamed to its
 *      final names. plog_open finishes a committed swap and drops
 *      uncommitted .cleaned files, so a crash at any point leaves the log
 *      either as it was or cleaned.
 *
 * Control batches and transactional batches are copied unchanged and their
 * records never enter the map (no transaction state exists yet to tell
 * aborted records from committed ones; see docs/compaction.md).
 *
 * A corrupt batch (CRC, header, records) stops the pass on that log with
 * STORAGE_CORRUPT_MESSAGE and a log line; nothing of the log is changed by
 * the failed group. Readers and writers of the log are never blocked by a
 * pass except for the swap's renames (log.h).
 *
 * No clock, no threads: now_ms comes in; the caller runs passes on its own
 * threads (one cleaner object per thread) and never two on one log at once.
 * I/O throttling is the caller's: cleaner_opts.throttle is called with the
 * bytes each step read or wrote.
 */
#ifndef SLUICE_STORAGE_CLEANER_H
#define SLUICE_STORAGE_CLEANER_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/log.h"

/* Bytes of one offset-map slot: a 128-bit key hash and an offset. */
#define CLEANER_MAP_SLOT_BYTES 24
/* The smallest dedupe buffer a cleaner accepts (a few thousand keys). */
#define CLEANER_MAP_MIN_BYTES (64 * 1024)
/* Map slots filled at most (Kafka's log.cleaner.io.buffer.load.factor). */
#define CLEANER_MAP_LOAD 0.9

typedef struct cleaner_opts {
    int64_t dedupe_buffer_bytes; /* this cleaner's share of log.cleaner.dedupe.buffer.size */
    /* Called after each read or write step with its bytes (NULL: none);
     * may sleep to hold log.cleaner.io.max.bytes.per.second. Returning
     * false abandons the pass (shutdown): nothing of the group being
     * written is kept, and the pass returns STORAGE_OK. */
    bool (*throttle)(void *ctx, int64_t bytes);
    void *throttle_ctx;
} cleaner_opts;

/* The topic settings a pass needs. */
typedef struct cleaner_log_config {
    int64_t delete_retention_ms;   /* delete.retention.ms */
    int64_t min_compaction_lag_ms; /* min.compaction.lag.ms */
    int64_t max_compaction_lag_ms; /* max.compaction.lag.ms */
    double min_cleanable_ratio;    /* min.cleanable.dirty.ratio */
} cleaner_log_config;

void cleaner_log_config_default(cleaner_log_config *c);

/* What a look at a log found (cleaner_measure) and a pass did. */
typedef struct cleaner_stats {
    /* measure */
    int64_t clean_bytes, dirty_bytes; /* of the cleanable segments */
    double dirty_ratio;               /* dirty / (clean + dirty), 0 when empty */
    bool due;                         /* a pass would run now */
    /* pass */
    int64_t map_end;       /* offsets below were cleaned (the new first dirty offset) */
    int64_t keys_mapped;   /* distinct key hashes in the map */
    int64_t bytes_read;    /* segment bytes read, map and rewrite */
    int64_t bytes_written; /* cleaned segment bytes */
    int64_t records_read, records_kept;
    int32_t segments_in, segments_out;
} cleaner_stats;

typedef struct cleaner cleaner;

/* A cleaner with its own offset map (allocated for each pass, at most
 * dedupe_buffer_bytes, and no more than the dirty section can fill). NULL on
 * bad options (dedupe_buffer_bytes < CLEANER_MAP_MIN_BYTES) or memory. */
cleaner *cleaner_new(const cleaner_opts *o);
void cleaner_free(cleaner *c);

/* Fills the measure fields of *st for log l at now_ms. STORAGE_OK or a
 * storage error. */
int cleaner_measure(plog *l, const cleaner_log_config *cfg, int64_t now_ms, cleaner_stats *st);

/* One pass over l if it is due (or force): STORAGE_OK (st says what was
 * done; segments_out 0 when nothing was due), STORAGE_CORRUPT_MESSAGE (a
 * bad batch: the log is skipped), or another storage error. A log changed
 * underneath (retention, truncation) ends the pass early with STORAGE_OK:
 * the next pass starts over. */
int cleaner_clean(cleaner *c, plog *l, const cleaner_log_config *cfg, int64_t now_ms, bool force,
                  cleaner_stats *st);

/* The 128-bit key hash of the map (for tests). */
void cleaner_key_hash(const uint8_t *key, size_t len, uint64_t out[2]);

#endif
