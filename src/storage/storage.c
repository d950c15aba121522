/*
 * storage.c - the storage context (its vfs and segment descriptor cache) and
 * the names of storage errors. See storage.h.
 */
#include "storage/storage.h"

#include <assert.h>
#include <stdlib.h>

#include "storage/segment.h"

struct storage_ctx {
    const sl_vfs *vfs;
    seg_fdcache fdc;
};

storage_ctx *storage_ctx_new(const sl_vfs *vfs, int fd_limit) {
    assert(vfs != NULL);
    storage_ctx *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return NULL;
    sc->vfs = vfs;
    seg_fdcache_init(&sc->fdc, fd_limit);
    return sc;
}

void storage_ctx_free(storage_ctx *sc) {
    if (sc == NULL)
        return;
    seg_fdcache_destroy(&sc->fdc);
    free(sc);
}

const sl_vfs *storage_vfs(const storage_ctx *sc) { return sc->vfs; }

seg_fdcache *storage_fdcache(storage_ctx *sc) { return &sc->fdc; }

void storage_set_fd_limit(storage_ctx *sc, int n) { seg_fdcache_set_limit(&sc->fdc, n); }

int storage_open_fds(storage_ctx *sc) { return seg_fdcache_open_count(&sc->fdc); }

const char *storage_strerror(int err) {
    switch ((storage_err)err) {
    case STORAGE_OK:
        return "ok";
    case STORAGE_OFFSET_OUT_OF_RANGE:
        return "offset out of range";
    case STORAGE_CORRUPT_MESSAGE:
        return "corrupt message";
    case STORAGE_MESSAGE_TOO_LARGE:
        return "message too large";
    case STORAGE_RECORD_LIST_TOO_LARGE:
        return "record list too large";
    case STORAGE_INVALID_TIMESTAMP:
        return "invalid timestamp";
    case STORAGE_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return "unsupported message format";
    case STORAGE_KAFKA_STORAGE_ERROR:
        return "storage error";
    case STORAGE_UNSUPPORTED_COMPRESSION_TYPE:
        return "unsupported compression type";
    case STORAGE_INVALID_RECORD:
        return "invalid record";
    case STORAGE_UNEXPECTED_OFFSET:
        return "batch does not start at the log end offset";
    }
    return "unknown storage error";
}
