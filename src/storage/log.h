/*
 * log.h - a partition log: the ordered list of segments of one partition in
 * one directory, and the operations the broker performs on it.
 *
 * Two appends. A leader's (plog_append) validates magic-2 record batches
 * record by record as a producer's (batch_check with producer rules: nothing
 * a consumer could not read gets in), gives them consecutive offsets in place
 * (baseOffset and partitionLeaderEpoch are patched; the CRC does not cover
 * them) and writes them to the active segment with one write. A follower's
 * (plog_append_follower) takes batches that already carry the leader's
 * offsets and epochs: it checks that they start at the log end offset, follow
 * on from each other and are sound (sizes, CRC), and writes them unchanged.
 * Reads return file ranges (fd, position, length) that the caller may
 * sendfile(); each range pins its segment so retention can delete it
 * meanwhile. plog_scan reads a range into memory and hands over its batches
 * one by one.
 *
 * Every file operation goes through the vfs of the log's storage context
 * (storage.h), and every time comes in as a now_ms argument.
 *
 * Directory contents:
 *   <20-digit base>.log / .index / .timeindex   one trio per segment
 *   log.checkpoint    recovery point and log start offset (tmp + fsync + rename)
 * and, in the parent directory (a root of log.dirs), a .clean-shutdown marker
 * managed with plog_dir_begin()/plog_dir_mark_clean().
 *
 * Invariants (under the log's mutex): segments are sorted by base offset and
 * non-empty in number; only the last is active and it is always in use (fd
 * open); log_start_offset <= log end offset; segs[0]->base_offset <=
 * log_start_offset; recovery_point <= log end offset, and every byte below
 * the recovery point has been fsynced. A roll marks the sealed segment for a
 * background flush (flush_pending_to); plog_tick fsyncs it without holding
 * the mutex and then advances the recovery point and the checkpoint, so an
 * unclean start rescans only the segments rolled since the last tick.
 *
 * Truncation (plog_truncate, plog_truncate_fully) is durable when it returns:
 * the cut file is fsynced, removed segments are unlinked and the lowered
 * recovery point checkpointed with the directory fsynced, so removed batches
 * never reappear after a crash, which replication relies on.
 *
 * Thread-safety: every function locks the log's mutex; a plog may be shared
 * by the network threads and a background retention/flush task. Offsets are
 * int64 everywhere.
 */
#ifndef SLUICE_STORAGE_LOG_H
#define SLUICE_STORAGE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/batch.h"
#include "storage/segment.h"
#include "storage/storage.h"

typedef enum plog_ts_type {
    PLOG_TS_CREATE_TIME = 0,
    PLOG_TS_LOG_APPEND_TIME = 1,
} plog_ts_type;

/* Topic-level settings (Kafka names in comments). */
typedef struct plog_config {
    int64_t segment_bytes;        /* segment.bytes (<= INT32_MAX), default 1 GiB */
    int64_t segment_ms;           /* segment.ms, default 7 days */
    int32_t segment_index_bytes;  /* segment.index.bytes, default 10 MiB */
    int32_t index_interval_bytes; /* index.interval.bytes, default 4096 */
    int32_t max_message_bytes;    /* max.message.bytes, default 1048588 */
    int64_t flush_messages;       /* flush.messages, default INT64_MAX (never) */
    int64_t flush_ms;             /* flush.ms, default INT64_MAX (never) */
    int64_t retention_ms;         /* retention.ms, default 7 days; -1 = keep */
    int64_t retention_bytes;      /* retention.bytes, default -1 = keep */
    int timestamp_type;           /* message.timestamp.type, plog_ts_type */
    /* message.timestamp.before.max.ms / after.max.ms: with CreateTime, how far
     * a record's timestamp may lie behind / ahead of the broker's clock. The
     * storage defaults are unlimited (INT64_MAX); the broker passes the
     * topic's values (Kafka 4 defaults: unlimited / 1 hour). */
    int64_t timestamp_before_max_ms;
    int64_t timestamp_after_max_ms;
} plog_config;

void plog_config_default(plog_config *c);

/* The valid range of every numeric setting, by its Kafka topic key. This is
 * the one table of limits: plog_config_check enforces it, and the broker's
 * configuration rows (src/config/topic_keys.c, src/broker/config_keys.c) take their bounds from these
 * macros, so any value the broker accepts is one a log can be opened with
 * (tests/unit/test_config.c checks every row against plog_limits). */
#define PLOG_SEGMENT_BYTES_MIN       64 /* room for a batch header: a roll per batch at worst */
#define PLOG_SEGMENT_BYTES_MAX       INT32_MAX
#define PLOG_SEGMENT_MS_MIN          1
#define PLOG_SEGMENT_INDEX_BYTES_MIN (4 * OIDX_ENTRY_SIZE) /* four index entries */
#define PLOG_INDEX_INTERVAL_MIN      0
#define PLOG_MAX_MESSAGE_BYTES_MIN   61 /* BATCH_HEADER_SIZE: a batch without records */
#define PLOG_FLUSH_MESSAGES_MIN      1
#define PLOG_FLUSH_MS_MIN            0
#define PLOG_RETENTION_MIN           (-1) /* -1 = keep forever */
#define PLOG_TIMESTAMP_DIFF_MIN      0

typedef struct plog_limit {
    const char *key; /* Kafka topic key, e.g. "segment.bytes" */
    size_t offset;   /* of the field in plog_config */
    bool is64;       /* int64_t field, else int32_t */
    int64_t min, max;
} plog_limit;

/* The rows of the table, and the one for a Kafka topic key (NULL if storage
 * has no limit for it). */
const plog_limit *plog_limits(int *n);
const plog_limit *plog_limit_of(const char *key);
/* Checks ranges; returns 0 or -1. */
int plog_config_check(const plog_config *c);
/* The same check, with why (if not NULL) naming the first setting out of
 * range, its value and the range storage accepts. */
int plog_config_explain(const plog_config *c, char *why, size_t whyn);

typedef struct plog plog;

/* Opens (creating if needed) the log in dir, whose parent must exist, with
 * the files and descriptor cache of storage context sc (which must outlive
 * the log). With clean false the segments from the one holding the recovery
 * point on are verified batch by batch and cut at the first torn or corrupt
 * one; older segments were fsynced before the point moved past them and are
 * not read. Returns NULL and sets *err (a storage_err) on failure. */
plog *plog_open(storage_ctx *sc, const char *dir, const plog_config *cfg, bool clean, int *err);
/* Replaces the log's settings (a topic's config was altered). Limits and
 * policies apply from the next operation; index sizing applies to segments
 * created from now on. Returns 0, or -1 if cfg fails plog_config_check. */
int plog_set_config(plog *l, const plog_config *cfg);
/* Brings an offline log back (after a full disk or an I/O error): recovers
 * its directory as plog_open does after a crash and, if that works, replaces
 * the log's state with the result, so callers keep their plog pointer. A
 * log that is not offline is left alone. At most one caller at a time per
 * log. Returns 0 or the storage error (the log stays offline). */
int plog_reopen(plog *l);
/* Flushes everything (fsync), writes the checkpoint and frees the log. */
int plog_close(plog *l);
/* Removes every file and the directory, then frees the log. Readers holding
 * ranges keep valid descriptors until they release them. */
int plog_delete(plog *l);

#define PLOG_ERROR_MSG 192

typedef struct plog_append_info {
    int64_t base_offset;     /* first offset assigned */
    int64_t last_offset;     /* last offset assigned */
    int64_t log_append_time; /* -1 unless LogAppendTime */
    int64_t log_start_offset;
    int32_t batches;
    int64_t records;
    /* On a validation error: which batch of buf (0-based) and which record
     * in it (-1: the batch as a whole) was refused, and why. error_msg is
     * empty on success and for errors that are not about the bytes. */
    int32_t error_batch;
    int32_t error_record;
    char error_msg[PLOG_ERROR_MSG];
} plog_append_info;

/* Validates and appends the batches in buf (modified in place: offsets,
 * epoch, LogAppendTime). On any error the log is unchanged. Validation is
 * the produce path's: every record is decoded (compressed ones into the
 * calling thread's reusable buffer, at most 64 x max.message.bytes) and
 * producer rules apply (batch_check in proto/batch.h); CreateTime
 * timestamps are held to the config's before/after limits against now_ms. */
int plog_append(plog *l, uint8_t *buf, size_t len, int32_t leader_epoch, int64_t now_ms,
                plog_append_info *info);

/* A follower's append (replication): the batches in buf already carry their
 * offsets and partition leader epochs, assigned by the leader, and are
 * written exactly as they are (nothing in buf is changed). Checks, with the
 * log unchanged on any error:
 *   - the first batch's baseOffset is the log end offset, else
 *     STORAGE_UNEXPECTED_OFFSET (the replica truncates or refetches);
 *   - each next batch starts one past the previous one's last offset, else
 *     STORAGE_CORRUPT_MESSAGE;
 *   - each batch is sound (batch_validate, shallow: size, magic 2, CRC,
 *     counts, known codec), at most SEG_MAX_BATCH_BYTES, and the whole at
 *     most segment.bytes (STORAGE_RECORD_LIST_TOO_LARGE: split it).
 * Producer rules, timestamp limits and max.message.bytes do not apply: what
 * the leader holds, the follower must take. now_ms drives segment.ms and
 * flush.ms as for plog_append. info (if not NULL) gets the batches' offsets;
 * log_append_time is -1. */
/* plog_append of the broker's own transaction marker (a control batch,
 * which producers may not write): the producer rules are not applied. */
int plog_append_marker(plog *l, uint8_t *buf, size_t len, int32_t leader_epoch, int64_t now_ms,
                       plog_append_info *info);
int plog_append_follower(plog *l, const uint8_t *buf, size_t len, int64_t now_ms, plog_append_info *info);

#define PLOG_MAX_RANGES 16

typedef struct plog_range {
    segment *seg; /* pinned; released by plog_read_release */
    int fd;       /* the storage vfs's descriptor (a kernel one with the POSIX vfs) */
    int64_t pos;
    int64_t len;
} plog_range;

typedef struct plog_read_result {
    plog_range r[PLOG_MAX_RANGES];
    int n;
    int64_t bytes; /* sum of lengths */
    int64_t log_end_offset;
    int64_t log_start_offset;
} plog_read_result;

/* Returns ranges covering batches from the one holding offset, up to
 * max_bytes (the last range may end inside a batch, as in Kafka), never
 * including batches at or past max_offset (-1: no bound, e.g. pass the high
 * watermark). If the first batch is larger than max_bytes it is returned
 * whole anyway. offset == log end offset gives no ranges; offsets outside
 * [log start, log end] give STORAGE_OFFSET_OUT_OF_RANGE. */
int plog_read(plog *l, int64_t offset, int64_t max_bytes, int64_t max_offset, plog_read_result *res);
void plog_read_release(plog_read_result *res);

/* Called by plog_scan for each whole batch read: its bytes (size bytes, CRC
 * checked) and decoded header. The batch may start below the offset the scan
 * was asked for (it holds that offset). Return 0 to go on; any other value
 * stops the scan, and plog_scan returns it. The bytes are valid during the
 * call only. No lock of the log is held: fn may call into the log. */
typedef int (*plog_scan_fn)(void *ctx, const uint8_t *batch, size_t size, const batch_header *h);

/* "Read a range and walk its batches": reads the batches from the one
 * holding from_offset on, at most max_bytes of them (but always the first
 * whole, however large, up to SEG_MAX_BATCH_BYTES), through the storage
 * vfs into a buffer of that size, and calls fn for each whole batch in offset
 * order. *next (if not NULL) gets the offset after the last batch handed to
 * fn (from_offset if none). Returns STORAGE_OK (having handed at least one
 * batch unless from_offset is the log end offset), fn's non-zero value,
 * STORAGE_OFFSET_OUT_OF_RANGE for an offset outside [log start, log end],
 * STORAGE_CORRUPT_MESSAGE at a batch whose CRC or header is bad (*next is
 * its offset: the batches before it were handed), or
 * STORAGE_KAFKA_STORAGE_ERROR. To scan a whole log, call it again from *next
 * until the log end offset. */
int plog_scan(plog *l, int64_t from_offset, int64_t max_bytes, plog_scan_fn fn, void *ctx, int64_t *next);

/* Fsyncs everything appended and advances the recovery point. */
int plog_flush(plog *l, int64_t now_ms);
/* Starts a new segment if the active one is not empty; the sealed one is
 * flushed by the next plog_tick (as with a roll on append). */
int plog_roll(plog *l, int64_t now_ms);
/* Background work: segment.ms roll, the flush of segments sealed by rolls
 * (fsync outside the log's mutex, then the recovery point moves to the
 * sealed segment's end and is checkpointed), flush.ms flush and retention.
 * Called by one thread at a time per log (the broker's housekeeper). */
int plog_tick(plog *l, int64_t now_ms);
/* Deletes old segments per retention.ms / retention.bytes and those wholly
 * below the log start offset; never the active one. *deleted counts them. */
int plog_retention(plog *l, int64_t now_ms, int *deleted);
/* DeleteRecords: moves the log start offset up to offset (<= log end). */
int plog_delete_records(plog *l, int64_t offset, int64_t *new_start);
/* Removes every batch whose last offset >= offset (replication: a follower
 * cutting back to where it agrees with its leader), so the log end offset
 * becomes the base of the batch holding offset (offset itself when it starts
 * a batch). An offset at or past the log end changes nothing. Truncating to
 * the log start offset or below (or to the first segment's base) empties the
 * log and restarts it at offset, which becomes the log start offset. The
 * recovery point and the log start offset come down with the end; the
 * indexes follow. Durable on return (see above). Negative offsets give
 * STORAGE_OFFSET_OUT_OF_RANGE. */
int plog_truncate(plog *l, int64_t offset);
/* Removes every batch and restarts the log empty at new_start (>= 0), which
 * becomes its log start, end offset and recovery point: a follower whose
 * leader's log starts past the follower's end. Durable on return. */
int plog_truncate_fully(plog *l, int64_t new_start);

#define PLOG_TS_LATEST   (-1)
#define PLOG_TS_EARLIEST (-2)
#define PLOG_TS_MAX      (-3)
/* ListOffsets: the first offset whose record timestamp >= ts (or one of the
 * special values above). *offset = -1 when none. */
int plog_offset_for_time(plog *l, int64_t ts, int64_t *offset, int64_t *timestamp);

/* What the last plog_open verified: segments and bytes scanned by an
 * unclean start's recovery (0 and 0 after a clean start). */
void plog_recovery_stats(plog *l, int *segments, int64_t *bytes);

int64_t plog_start_offset(plog *l);
int64_t plog_end_offset(plog *l);
/* The base offset of the active (last) segment: it moves at every roll. */
int64_t plog_active_base(plog *l);
int64_t plog_recovery_point(plog *l);
int64_t plog_size_bytes(plog *l);
int plog_segment_count(plog *l);
bool plog_is_offline(plog *l);
const char *plog_dir(const plog *l);

/* For a reader that checks a log's files before opening it (the broker's
 * metadata log): the base offsets of dir's segments, ascending, in a malloc'd
 * array (*bases, *n; the files are segment_filename(dir, base, ".log")), and
 * the recovery point of its checkpoint (0 when there is none). Changes
 * nothing but leftover temporary files. 0 or -errno. */
int plog_peek(storage_ctx *sc, const char *dir, int64_t **bases, int *n, int64_t *recovery_point);
/* Removes what a log derives from its segment files (indexes, checkpoint),
 * for such a reader that found them inconsistent; opening the log with clean
 * false then rebuilds them. The log must not be open. 0 or -errno. */
int plog_drop_derived_files(storage_ctx *sc, const char *dir);

/* Clean-shutdown marker of a log.dirs root (through sc's vfs): plog_dir_begin
 * removes it (made durable before returning) and says whether it was there;
 * the broker calls plog_dir_mark_clean after closing every log under the
 * root. 0 or -errno. */
int plog_dir_begin(storage_ctx *sc, const char *root, bool *was_clean);
int plog_dir_mark_clean(storage_ctx *sc, const char *root);
/* Of roots[0..n), the index of the one holding the fewest partition
 * directories (new partitions go there), or -1. */
int plog_dir_pick(storage_ctx *sc, const char *const *roots, int n);

/* ---------------- for the cleaner (storage/cleaner.h) ----------------
 *
 * The cleaner reads sealed segments through a view (references, not pins:
 * it pins one segment at a time while reading it), writes a cleaned
 * segment under temporary names and swaps it in with plog_clean_swap,
 * which holds the log's mutex only for the renames, unlinks and two
 * directory fsyncs of the swap itself. */

/* What cleaner-offset-checkpoint in the log's directory holds. */
typedef struct plog_clean_state {
    int64_t first_dirty;     /* the dirty section starts here: offsets below were cleaned */
    int64_t gaps_below;      /* segments with a base below may have offset gaps (raised before a swap) */
    int64_t next_horizon_ms; /* earliest delete horizon of a kept tombstone; INT64_MAX: none */
} plog_clean_state;

typedef struct plog_clean_seg {
    segment *seg;            /* referenced by the view */
    int64_t base, end, size; /* end: the next segment's base */
    int64_t max_ts;          /* -1 when unknown or not asked for */
} plog_clean_seg;

typedef struct plog_clean_view {
    plog_clean_seg *segs; /* sealed segments wholly below the recovery point, oldest first */
    int n;
    int64_t log_start_offset, log_end_offset;
    int64_t total_bytes; /* of every segment, the active one included */
    plog_clean_state state;
    plog_config cfg;
} plog_clean_view;

/* Takes the view (at most max_segs segments; with need_ts their largest
 * timestamps, loading time indexes). STORAGE_OK or an error. */
int plog_clean_view_take(plog *l, int max_segs, bool need_ts, plog_clean_view *v);
void plog_clean_view_release(plog_clean_view *v);
/* Writes the cleaner checkpoint durably (first_dirty is held at or below
 * the log end offset; gaps_below never comes down). */
int plog_clean_state_set(plog *l, const plog_clean_state *st);

/* plog_clean_swap's answer when the segments are no longer the log's. */
#define PLOG_CLEAN_STALE 1
/* Replaces olds[0..n) (consecutive sealed segments of the view) with
 * cleaned: a sealed segment at olds[0]'s base written under the tag
 * ".cleaned" and fsynced (files and directory) by the caller, who keeps its
 * own reference. STORAGE_OK (the log holds a reference to cleaned now),
 * PLOG_CLEAN_STALE (nothing changed; the caller removes the files), or a
 * storage error (the log is offline; plog_reopen finishes the swap). */
int plog_clean_swap(plog *l, segment *const *olds, int n, segment *cleaned);
storage_ctx *plog_storage(plog *l);

#endif
