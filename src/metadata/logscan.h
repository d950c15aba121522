/*
 * logscan.h - reading a metadata log's files before storage opens them.
 *
 * The metadata log (`__sluice_metadata-0`, a partition log of one-record
 * batches, each fsynced before its change is applied) says which topics
 * exist. Reading a damaged one as "fewer topics" would make every directory
 * of the missing topics look unknown, so the registry reads it here first,
 * straight from its segment files, and trusts nothing it cannot verify:
 *
 *   - every batch must be whole, pass its CRC (batch_validate), and start at
 *     the offset the previous one ended at (the first at its file's base);
 *     its records must decode, and the caller's callback must accept each;
 *   - the only damage tolerated is a torn tail: after an unclean shutdown,
 *     a bad batch in the last file at or past the checkpoint's recovery
 *     point (so never fsynced, so never acknowledged). The scan stops there
 *     and says so; storage recovery (plog_open with clean false) then cuts it.
 *   - anything else - a bad batch below the recovery point, in an earlier
 *     file, or after a clean shutdown; a gap or overlap in offsets; a record
 *     that does not decode - is an error naming the file, byte position and
 *     offset, and the broker must not start.
 *
 * Nothing is written (beyond storage's removal of leftover .tmp files).
 */
#ifndef SLUICE_METADATA_LOGSCAN_H
#define SLUICE_METADATA_LOGSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"
#include "storage/storage.h"

#define METALOG_BATCH_MAX (2 << 20) /* larger claims are damage: records are <= 1 MiB */
#define METALOG_ERR_MAX   512

typedef struct metalog_result {
    bool exists;        /* the directory holds at least one segment file */
    int64_t end_offset; /* one past the last good batch: the log end storage must open with */
    int64_t records;    /* records handed to the callback */
    bool torn_tail;     /* a torn tail follows end_offset: open with recovery */
} metalog_result;

/* Called for each record in order; returns 0, or -1 with err filled (the
 * scan then fails with that message). */
typedef int (*metalog_record_fn)(void *ctx, int64_t offset, kbytes key, kbytes value, char *err, size_t errn);

/* Scans dir (absent = empty log). was_clean: the root's clean-shutdown
 * marker was present. Segment files wholly below skip_below (the next file
 * starts at or before it: a snapshot covers them) are neither read nor
 * verified, so a start reads the log only from its snapshot on; 0 reads
 * everything. Returns 0 with *res filled, or -1 with err filled. */
int metalog_scan(storage_ctx *sc, const char *dir, bool was_clean, int64_t skip_below, metalog_record_fn fn,
                 void *ctx, metalog_result *res, char *err, size_t errn);

#endif
