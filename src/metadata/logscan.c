/*
 * logscan.c - the metadata log's files, verified batch by batch before the
 * log is opened. See logscan.h.
 */
#include "metadata/logscan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "storage/log.h"
#include "storage/segment.h"
#include "storage/storage.h"

/* Where the scan is, for messages. */
typedef struct pos {
    const char *file;
    int64_t byte;
    int64_t offset; /* the offset the next batch must start at */
} pos;

static int read_full(const sl_vfs *v, int fd, uint8_t *buf, size_t n, int64_t at) {
    int rc = sl_vfs_pread_full(v, fd, buf, n, at);
    if (rc != 0)
        errno = -rc;
    return rc == 0 ? 0 : -1;
}

/* Hands the records of one verified batch to fn. 0, or -1 with err. */
static int deliver(const uint8_t *b, size_t size, const pos *at, metalog_record_fn fn, void *ctx,
                   metalog_result *res, char *err, size_t errn) {
    arena a;
    arena_init(&a, size * 4 + (256 << 10));
    batch_iter it;
    batch_record rec;
    int rc = 0;
    if (batch_iter_init(&it, b, size, &a) != BATCH_OK) {
        snprintf(err, errn, "%s: the batch at byte %" PRId64 " (offset %" PRId64 ") cannot be read: %s",
                 at->file, at->byte, at->offset, batch_strerror(it.err));
        rc = -1;
    }
    /* Control batches (a Raft leader's LeaderChangeMessage) are verified
     * like the others but carry no metadata record. */
    batch_header h;
    bool control = batch_parse_header(b, size, &h) == BATCH_OK && (h.attributes & BATCH_ATTR_CONTROL);
    while (rc == 0 && batch_iter_next(&it, &rec)) {
        char why[METALOG_ERR_MAX];
        if (control)
            continue;
        if (fn(ctx, rec.offset, rec.key, rec.value, why, sizeof why) != 0) {
            snprintf(err, errn, "%s: record at offset %" PRId64 " (byte %" PRId64 "): %s", at->file,
                     rec.offset, at->byte, why);
            rc = -1;
        }
        res->records++;
    }
    if (rc == 0 && it.err != BATCH_OK) {
        snprintf(err, errn, "%s: the records of the batch at byte %" PRId64 " do not decode: %s", at->file,
                 at->byte, batch_strerror(it.err));
        rc = -1;
    }
    arena_reset(&a);
    return rc;
}

/* Scans one segment file from byte 0. Returns 0 at its clean end, 1 at a bad
 * batch (why filled, at->byte where it starts), -1 on a fatal error (err). */
static int scan_file(const sl_vfs *v, int fd, int64_t size, pos *at, uint8_t *buf, metalog_record_fn fn,
                     void *ctx, metalog_result *res, char *why, size_t whyn, char *err, size_t errn) {
    at->byte = 0;
    while (at->byte < size) {
        int64_t left = size - at->byte;
        if (left < BATCH_HEADER_SIZE) {
            snprintf(why, whyn, "%" PRId64 " bytes at the end are too few for a batch", left);
            return 1;
        }
        if (read_full(v, fd, buf, BATCH_HEADER_SIZE, at->byte) != 0) {
            snprintf(err, errn, "%s: cannot read byte %" PRId64 ": %s", at->file, at->byte, strerror(errno));
            return -1;
        }
        int64_t total = (int64_t)(int32_t)wire_be32(buf + BATCH_OFF_LENGTH) + BATCH_LOG_OVERHEAD;
        if (total < BATCH_HEADER_SIZE || total > METALOG_BATCH_MAX) {
            snprintf(why, whyn, "a batch length of %" PRId64 " bytes", total);
            return 1;
        }
        if (total > left) {
            snprintf(why, whyn, "a batch of %" PRId64 " bytes with only %" PRId64 " left in the file", total,
                     left);
            return 1;
        }
        if (read_full(v, fd, buf, (size_t)total, at->byte) != 0) {
            snprintf(err, errn, "%s: cannot read byte %" PRId64 ": %s", at->file, at->byte, strerror(errno));
            return -1;
        }
        int e = batch_validate(buf, (size_t)total, true, METALOG_BATCH_MAX);
        if (e != BATCH_OK) {
            snprintf(why, whyn, "%s", batch_strerror(e));
            return 1;
        }
        batch_header h;
        batch_parse_header(buf, (size_t)total, &h);
        if (h.base_offset != at->offset) {
            snprintf(why, whyn, "a batch at offset %" PRId64 " where %" PRId64 " was due", h.base_offset,
                     at->offset);
            return 1;
        }
        int64_t last = batch_last_offset(&h);
        if (last < 0 || last == INT64_MAX) {
            snprintf(why, whyn, "a batch at offset %" PRId64 " whose last offset is out of range",
                     h.base_offset);
            return 1;
        }
        if (deliver(buf, (size_t)total, at, fn, ctx, res, err, errn) != 0)
            return -1;
        at->offset = last + 1;
        at->byte += total;
    }
    return 0;
}

int metalog_scan(storage_ctx *sc, const char *dir, bool was_clean, int64_t skip_below, metalog_record_fn fn,
                 void *ctx, metalog_result *res, char *err, size_t errn) {
    memset(res, 0, sizeof *res);
    const sl_vfs *v = storage_vfs(sc);
    int64_t *bases = NULL, rp = 0;
    int n = 0, rc = plog_peek(sc, dir, &bases, &n, &rp);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0) {
        snprintf(err, errn, "%s: cannot list the metadata log: %s", dir, strerror(-rc));
        return -1;
    }
    uint8_t *buf = malloc(METALOG_BATCH_MAX);
    if (buf == NULL) {
        free(bases);
        snprintf(err, errn, "out of memory reading the metadata log");
        return -1;
    }
    res->exists = n > 0;
    pos at = {.offset = n > 0 ? bases[0] : 0};
    rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char file[SEG_PATH_MAX], why[METALOG_ERR_MAX] = "";
        segment_filename(file, sizeof file, dir, bases[i], ".log");
        at.file = file;
        if (bases[i] != at.offset) {
            snprintf(err, errn,
                     "%s: the file starts at offset %" PRId64 " but the previous one ends at %" PRId64, file,
                     bases[i], at.offset);
            rc = -1;
            break;
        }
        if (i + 1 < n && bases[i + 1] <= skip_below) {
            /* Wholly below what the caller needs (a snapshot covers it). */
            at.offset = bases[i + 1];
            at.byte = 0;
            continue;
        }
        int fd = v->open(v->ctx, file, SL_O_RDONLY, 0);
        int64_t size = fd >= 0 ? v->fsize(v->ctx, fd) : fd;
        if (fd < 0 || size < 0) {
            snprintf(err, errn, "%s: cannot read: %s", file, strerror(fd < 0 ? -fd : (int)-size));
            if (fd >= 0)
                v->close(v->ctx, fd);
            rc = -1;
            break;
        }
        int r = scan_file(v, fd, size, &at, buf, fn, ctx, res, why, sizeof why, err, errn);
        v->close(v->ctx, fd);
        if (r < 0) {
            rc = -1;
        } else if (r > 0) {
            /* Only the unflushed end of the log can be torn by a crash. */
            if (i == n - 1 && !was_clean && at.offset >= rp) {
                res->torn_tail = true;
                break;
            }
            snprintf(err, errn, "%s is damaged at byte %" PRId64 " (offset %" PRId64 "): %s; %s", file,
                     at.byte, at.offset, why,
                     i < n - 1   ? "a later file follows it"
                     : was_clean ? "the broker had shut down cleanly, so nothing there was torn by a crash"
                                 : "it lies below the recovery point, so it had been written to disk whole");
            rc = -1;
        }
    }
    res->end_offset = at.offset;
    free(buf);
    free(bases);
    return rc;
}
