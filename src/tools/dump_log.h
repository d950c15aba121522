/*
 * dump_log.h - `sluice dump-log`: offline decoding and checking of a
 * partition directory's files (<base>.log, <base>.index, <base>.timeindex,
 * and the producer-state snapshots <offset>.snapshot).
 *
 * Reads files only; never writes or repairs them, and needs no broker. Every
 * size read from a file is bounded (a batch by SEG_MAX_BATCH_BYTES, an index
 * by its file size, decompressed records by DUMP_MAX_UNCOMPRESSED), so a
 * corrupt or hostile file can only produce "problem" lines, never a crash or
 * unbounded memory.
 *
 * Checks made:
 *   .log       each batch's header, magic, CRC-32C; with deep iteration every
 *              record; offsets increase from batch to batch and are not below
 *              the segment's base; no torn bytes after the last whole batch.
 *   .index     whole 8-byte entries; offsets and positions strictly increase;
 *              each entry names the position of a batch in the sibling .log
 *              that starts at exactly that offset.
 *   .timeindex whole 12-byte entries; timestamps and offsets never decrease;
 *              each entry's offset starts a batch in the sibling .log and its
 *              timestamp is not larger than the largest batch timestamp the
 *              log holds up to that batch.
 *   .snapshot  version, CRC-32C, sizes and every entry (storage/producer_state.h);
 *              prints each producer's id, epoch, sequences and last offset.
 */
#ifndef SLUICE_TOOLS_DUMP_LOG_H
#define SLUICE_TOOLS_DUMP_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Bound on one batch's decompressed records when printing them. */
#define DUMP_MAX_UNCOMPRESSED (256u * 1024 * 1024)
/* Problems kept verbatim for JSON output; more are counted only. */
#define DUMP_MAX_KEPT_PROBLEMS 64

typedef struct dump_opts {
    bool print_data;   /* --print-data-log: print every record (implies deep) */
    bool deep;         /* --deep-iteration: decode every record to check it */
    bool verify_only;  /* --verify-index-only: print problems, not entries */
    bool json;         /* one JSON document instead of text */
    int64_t max_items; /* stop printing a file's batches/entries after this many (checks continue) */
} dump_opts;

typedef struct dump_result {
    int problems;  /* corruption or inconsistency found */
    int warnings;  /* could not check something (e.g. a missing sibling .log) */
    int exit_code; /* cli_exit for this file alone */
} dump_result;

/* Dumps one file to out. JSON mode writes one object (no separator). */
void dump_log_file(const char *path, const dump_opts *o, FILE *out, dump_result *res);

#endif
