/*
 * index.h - the two sparse indexes kept beside every log segment.
 *
 * The offset index maps a relative offset (offset - segment base, int32) to
 * the byte position (int32) of the batch starting at that offset. One entry
 * is added after at least index_interval_bytes of log were written since the
 * previous one, so the index stays small and a lookup is followed by a short
 * forward scan of batch headers.
 *
 * The time index maps "largest batch maxTimestamp seen so far in this
 * segment" (int64) to the relative offset (int32) of the batch that was
 * appended when the entry was taken. Both columns are non-decreasing, so
 * "every batch before entry e has maxTimestamp <= e.ts" holds and a lookup
 * for the first batch with maxTimestamp >= T can start at the last entry whose
 * ts < T.
 *
 * Representation (a trade-off, see docs/storage.md): each index is an
 * append-only file of fixed-size big-endian entries (8 bytes for the offset
 * index, 12 for the time index) plus an in-memory array holding the whole
 * index while it is loaded. Appends go to the array and are written to the
 * file in groups (on flush, roll, close, or when enough are pending), so the
 * file may lag the array; after a crash the recovery code rebuilds the index
 * of any segment past the recovery point from the log itself. Arrays are
 * bounded by max_entries; a full index makes the log roll.
 *
 * Invariants: rel and pos strictly increase in the offset index; ts and rel
 * never decrease in the time index; persisted <= count.
 */
#ifndef SLUICE_STORAGE_INDEX_H
#define SLUICE_STORAGE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "core/env.h"

#define OIDX_ENTRY_SIZE 8
#define TIDX_ENTRY_SIZE 12
/* Pending entries written to the file once this many accumulate. */
#define IDX_WRITE_BATCH 256

typedef struct oidx_entry {
    int32_t rel;
    int32_t pos;
} oidx_entry;

typedef struct tidx_entry {
    int64_t ts;
    int32_t rel;
} tidx_entry;

typedef struct oidx {
    oidx_entry *e;
    uint32_t count;       /* entries in memory */
    uint32_t cap;         /* allocated entries */
    uint32_t persisted;   /* leading entries known to be in the file */
    uint32_t max_entries; /* hard bound; the index is full at this count */
    bool shrunk;          /* truncated below the file's length: next write rewrites */
} oidx;

typedef struct tidx {
    tidx_entry *e;
    uint32_t count;
    uint32_t cap;
    uint32_t persisted;
    uint32_t max_entries;
    bool shrunk;
} tidx;

/* ---- offset index ---- */
void oidx_init(oidx *ix, uint32_t max_entries);
void oidx_free(oidx *ix);
/* Reads the file at path (through v) and checks it: whole entries, strictly
 * increasing rel >= 0 and 0 <= pos < log_size. Returns 0, or -1 if the file
 * is missing, unreadable or fails a check (the caller rebuilds it from the
 * log). */
int oidx_load(const sl_vfs *v, oidx *ix, const char *path, int64_t log_size);
static inline bool oidx_full(const oidx *ix) { return ix->count >= ix->max_entries; }
/* Adds an entry; rel and pos must exceed the last entry's. Returns -1 if full
 * or out of memory. */
int oidx_append(oidx *ix, int32_t rel, int32_t pos);
/* Index of the last entry with rel <= target, or -1 if none. */
int64_t oidx_floor(const oidx *ix, int32_t target_rel);
/* Keeps only entries with rel < rel_limit. */
void oidx_truncate_rel(oidx *ix, int32_t rel_limit);
/* Writes pending entries (or the whole index when rewrite is set, which also
 * shrinks the file after a truncation); fsyncs when sync is set. 0 or -errno. */
int oidx_write(const sl_vfs *v, oidx *ix, const char *path, bool rewrite, bool sync);

/* ---- time index ---- */
void tidx_init(tidx *ix, uint32_t max_entries);
void tidx_free(tidx *ix);
/* As oidx_load: non-decreasing ts and rel, rel >= 0. */
int tidx_load(const sl_vfs *v, tidx *ix, const char *path);
static inline bool tidx_full(const tidx *ix) { return ix->count >= ix->max_entries; }
/* Adds (ts, rel) if ts is larger than the last entry's ts; a no-op otherwise.
 * Returns -1 if full or out of memory. */
int tidx_maybe_append(tidx *ix, int64_t ts, int32_t rel);
/* Index of the last entry with ts < target, or -1 if none. */
int64_t tidx_last_below(const tidx *ix, int64_t target_ts);
void tidx_truncate_rel(tidx *ix, int32_t rel_limit);
int tidx_write(const sl_vfs *v, tidx *ix, const char *path, bool rewrite, bool sync);
/* Largest timestamp recorded, or -1 when empty. */
static inline int64_t tidx_max_ts(const tidx *ix) { return ix->count ? ix->e[ix->count - 1].ts : -1; }

#endif
