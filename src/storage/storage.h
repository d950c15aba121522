/*
 * storage.h - the storage context and storage's own error values.
 *
 * A storage_ctx is what all the partition logs of one broker share:
 *   - the file operations every byte of storage goes through (an sl_vfs:
 *     the POSIX one in the broker, a fault-injecting or in-memory one in the
 *     tests and the simulation);
 *   - the cache of open segment descriptors and its bound (segment.h):
 *     idle descriptors beyond the bound are closed, least recently used
 *     first.
 * There is no module-level state in storage: two contexts (two brokers in
 * one process) share nothing. A log opened with a context (plog_open) uses
 * it for its whole life, so the context must outlive every log and every
 * read range (pinned segment) taken from it.
 *
 * Storage reads no clock: every time it needs comes in as a `now_ms`
 * argument (wall-clock milliseconds, the caller's environment's), and file
 * ages come from the vfs (sl_stat.mtime_ms).
 *
 * Errors: storage functions return 0 (STORAGE_OK) or a storage_err. The
 * values are storage's own, deliberately outside the range of Kafka's error
 * codes; the broker maps them to Kafka codes in one place
 * (broker/errors.h), so a storage value can never reach a client unmapped.
 *
 * Thread-safety: a context may be used from any thread (the descriptor
 * cache has its own mutex); create and free it from one.
 */
#ifndef SLUICE_STORAGE_STORAGE_H
#define SLUICE_STORAGE_STORAGE_H

#include "core/env.h"

typedef enum storage_err {
    STORAGE_OK = 0,
    /* An offset outside [log start, log end] (reads, DeleteRecords). */
    STORAGE_OFFSET_OUT_OF_RANGE = 1000,
    /* Bytes that are not a valid record batch (CRC, truncated, bad header,
     * corrupt compressed data), or batches whose offsets do not follow on. */
    STORAGE_CORRUPT_MESSAGE,
    /* A batch larger than max.message.bytes. */
    STORAGE_MESSAGE_TOO_LARGE,
    /* More bytes or batches in one append than a segment or the per-append
     * bound can take. */
    STORAGE_RECORD_LIST_TOO_LARGE,
    /* A record timestamp outside the configured limits. */
    STORAGE_INVALID_TIMESTAMP,
    /* A batch that is not magic 2. */
    STORAGE_UNSUPPORTED_FOR_MESSAGE_FORMAT,
    /* A disk error: the partition log is offline until reopened. */
    STORAGE_KAFKA_STORAGE_ERROR,
    /* An unknown compression codec. */
    STORAGE_UNSUPPORTED_COMPRESSION_TYPE,
    /* Records that break the producer rules or disagree with their header. */
    STORAGE_INVALID_RECORD,
    /* Follower append: the first batch does not start at the log end offset
     * (the replica must truncate or fetch from elsewhere). */
    STORAGE_UNEXPECTED_OFFSET,
} storage_err;

#define STORAGE_ERR_FIRST STORAGE_OFFSET_OUT_OF_RANGE
#define STORAGE_ERR_LAST  STORAGE_UNEXPECTED_OFFSET

const char *storage_strerror(int err);

/* Default bound on idle open segment descriptors per context. */
#define STORAGE_FD_LIMIT_DEFAULT 1024

typedef struct storage_ctx storage_ctx;

/* A context over vfs (which must outlive it) keeping at most fd_limit idle
 * segment descriptors open. NULL on allocation failure. */
storage_ctx *storage_ctx_new(const sl_vfs *vfs, int fd_limit);
/* Frees the context. Every log opened with it must be closed and every read
 * range released first (asserted: no descriptor is open). */
void storage_ctx_free(storage_ctx *sc);
const sl_vfs *storage_vfs(const storage_ctx *sc);
/* Changes the bound on idle open segment descriptors (applies at the next
 * release of a segment). */
void storage_set_fd_limit(storage_ctx *sc, int n);
/* Segment descriptors open now (idle or in use), for tests and metrics. */
int storage_open_fds(storage_ctx *sc);

#endif
