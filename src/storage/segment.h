/*
 * segment.h - one slice of a partition log: <base>.log with its .index and
 * .timeindex, where <base> is the first offset the segment may hold, printed
 * as 20 zero-padded decimal digits so names sort in offset order.
 *
 * The .log file is a plain concatenation of magic-2 record batches exactly as
 * they were appended (with baseOffset and partitionLeaderEpoch patched).
 * `size` counts only whole batches: bytes past it (a torn write) are never
 * served and are cut off by recovery.
 *
 * Ownership and lifetime. A segment is shared: the log that lists it holds
 * one reference, and every reader holding a file range holds another (pin).
 * Deleting a segment (retention, truncation, partition deletion) unlinks its
 * files at once - POSIX keeps open descriptors valid - and marks it dead; the
 * descriptor is closed and the memory freed when the last reference goes.
 *
 * Every file operation goes through the vfs of the segment's storage context
 * (storage.h); descriptors are that vfs's (kernel descriptors with the POSIX
 * vfs, so a reader may sendfile() them).
 *
 * File descriptors are opened lazily and cached per storage context: a
 * segment whose fd is open but not in use sits in the context's LRU list
 * (seg_fdcache), and when more than the configured number of idle
 * descriptors are open the least recently used is closed (its in-memory
 * indexes are dropped with it, bounding memory too). "In use" means pinned
 * by a reader or being the active segment of its log. The in-memory indexes
 * may only be touched while the segment is in use.
 *
 * Thread-safety: the fd cache is guarded by its context's mutex; everything
 * else in a segment is guarded by the owning log's mutex.
 */
#ifndef SLUICE_STORAGE_SEGMENT_H
#define SLUICE_STORAGE_SEGMENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/env.h"
#include "storage/index.h"
#include "storage/storage.h"

#define SEG_PATH_MAX 512
/* Largest batch recovery will read into memory; anything claiming more is
 * treated as corruption. Far above any sane max.message.bytes. */
#define SEG_MAX_BATCH_BYTES (64 * 1024 * 1024)

/* What the storage layer needs from one batch header on disk. */
typedef struct seg_batch {
    int64_t pos; /* position in the .log file */
    int64_t base_offset;
    int64_t last_offset; /* base_offset + lastOffsetDelta */
    int64_t size;        /* whole batch bytes (batchLength + 12) */
    int64_t max_ts;
    int16_t attributes;
    int32_t leader_epoch;
    int32_t record_count;
} seg_batch;

typedef struct segment segment;

/* The descriptor cache of one storage context: idle open segments in LRU
 * order and the counts the bound is checked against. */
typedef struct seg_fdcache {
    pthread_mutex_t mu;
    segment *head, *tail; /* idle open segments, most recently used first */
    int idle;             /* segments in the list */
    int open;             /* all open segment descriptors */
    int limit;            /* most idle descriptors kept open */
} seg_fdcache;

void seg_fdcache_init(seg_fdcache *c, int limit);
/* Asserts that no descriptor is open (every segment was freed). */
void seg_fdcache_destroy(seg_fdcache *c);
void seg_fdcache_set_limit(seg_fdcache *c, int n);
int seg_fdcache_open_count(seg_fdcache *c);
/* The context's cache (storage.c). */
seg_fdcache *storage_fdcache(storage_ctx *sc);

struct segment {
    int64_t base_offset;
    char path[SEG_PATH_MAX]; /* directory + "/" + 20-digit base, no suffix */
    int64_t size;            /* bytes of whole batches in .log */
    int64_t next_offset;     /* one past the last offset held; base_offset when empty */
    int64_t max_ts;          /* largest batch maxTimestamp, -1 if none or not yet known */
    bool max_ts_known;
    int64_t created_ms;        /* for segment.ms: creation time (or open time) */
    int64_t bytes_since_index; /* log bytes appended since the last offset-index entry */
    int64_t last_batch_base;   /* base offset of the last batch, -1 when empty */
    bool active;
    /* Written by the cleaner (storage/cleaner.h): batches may leave gaps in
     * the offsets (removed records), and the first may start past the base.
     * Recovery then accepts a batch starting anywhere after the previous
     * one's end instead of exactly there. */
    bool compacted;
    /* Appended to every file name after its suffix (".log.cleaned"): the
     * cleaner builds a segment under a temporary name; "" otherwise. */
    char tag[16];

    /* indexes: valid only while in use and idx_loaded */
    bool idx_loaded;
    oidx oi;
    tidx ti;
    uint32_t idx_max_entries;
    int32_t index_interval;

    /* file operations and fd cache of the storage context */
    const sl_vfs *vfs;
    seg_fdcache *fdc;
    int fd;           /* a descriptor of vfs, -1 when closed (fdc->mu) */
    atomic_int users; /* changed under fdc->mu; atomic so owners may assert on it */
    bool dead;
    bool in_lru;
    segment *lru_prev, *lru_next;
    atomic_int refs;
};

/* Formats "<dir>/<20-digit base><suffix>". Returns -1 if it does not fit. */
int segment_filename(char *out, size_t cap, const char *dir, int64_t base, const char *suffix);

/* Allocates a segment object of context sc (no I/O); refs = 1. NULL on bad
 * args or memory. */
segment *segment_new(storage_ctx *sc, const char *dir, int64_t base, uint32_t idx_max_entries,
                     int32_t index_interval);
/* Creates fresh empty files (truncating leftovers) and marks it active.
 * 0 or -errno. The caller then acquires it. */
int segment_create_files(segment *s);
/* Sets the tag of a segment whose files do not exist yet (segment_new then
 * segment_set_tag then segment_create_files). -1 if it is too long. */
int segment_set_tag(segment *s, const char *tag);
/* Renames the segment's files from its tag to tag (.index and .timeindex
 * first, .log last: a .log under the new name means the indexes moved
 * too), replacing files of that name. A missing index file is skipped.
 * The caller makes the renames durable (fsync_dir). 0 or -errno (then
 * some files may have moved: s->tag is left as it was). */
int segment_rename_tag(segment *s, const char *tag);
/* Reads the .log size (vfs stat). 0 or -errno. */
int segment_stat(segment *s);

void segment_ref(segment *s);
void segment_unref(segment *s);
/* Marks the segment in use, opening its fd if needed. 0 or -errno. */
int segment_acquire(segment *s);
void segment_release(segment *s);
/* ref + acquire / release + unref, for readers. */
int segment_pin(segment *s);
void segment_unpin(segment *s);

/* Loads the indexes (in use only). Missing or inconsistent index files are
 * rebuilt from the log with a header scan. Also fills max_ts. 0 or -errno. */
int segment_load_indexes(segment *s);

/* Scans the whole .log, rebuilding both indexes, size, next_offset and
 * max_ts. With verify, each batch's CRC is checked too. The scan stops at the
 * first batch that is torn, corrupt, or does not start where the previous one
 * ended (the first at the segment base); with truncate_bad the file is then
 * cut there. If min_next_offset (the previous segment's end) exceeds the
 * base, the segment overlaps its predecessor and is emptied. *cut (if not
 * NULL) receives the bytes removed. 0 or -errno. */
int segment_recover(segment *s, bool verify, bool truncate_bad, int64_t min_next_offset, int64_t *cut);

/* Appends len bytes of whole batches described by b[0..n) (positions in b
 * are relative to buf) at the end of the active segment with one write, then
 * updates the indexes. On a write error the file is cut back and nothing
 * changes. 0 or -errno. */
int segment_append(segment *s, const uint8_t *buf, size_t len, const seg_batch *b, int n);

/* Finds the first batch whose last offset >= offset, scanning from the
 * offset index. Returns 1 with *out filled, 0 if no such batch, -errno. */
int segment_find(segment *s, int64_t offset, seg_batch *out);
/* Finds the first batch whose maxTimestamp >= ts and last offset >=
 * min_offset. Same returns. */
int segment_find_ts(segment *s, int64_t ts, int64_t min_offset, seg_batch *out);
/* Finds the batch holding the segment's largest maxTimestamp (the first such).
 * Same returns. */
int segment_find_max_ts(segment *s, seg_batch *out);
/* Reads the whole batch b into buf (cap bytes). 0 or -errno (-EMSGSIZE). */
int segment_read_batch(segment *s, const seg_batch *b, uint8_t *buf, size_t cap);

/* Removes every batch whose last offset >= offset, rebuilds the indexes from
 * the file and fsyncs the file, so the cut is durable: the removed batches
 * never come back after a crash. 0 or -errno. */
int segment_truncate(segment *s, int64_t offset);
/* Writes pending index entries; with sync also fsyncs log and indexes. */
int segment_flush(segment *s, bool sync);
/* Turns the active segment inactive: final time-index entry, indexes
 * written. On an error it stays active (and in use). */
int segment_seal(segment *s);
/* Unlinks the files and marks the segment dead (in memory, whatever the
 * unlinks did). 0, or the first error other than -ENOENT: then a file may
 * still be on disk. */
int segment_delete_files(segment *s);

#endif
