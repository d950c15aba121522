/*
 * dump_log.c - `sluice dump-log`. See dump_log.h for what is checked.
 *
 * A .log file is read one batch at a time with pread (a 12-byte prefix gives
 * the length, then the whole batch), so memory stays bounded by the largest
 * batch however big the segment is. Index files are checked against the
 * sibling .log's batch list, gathered with the same reader without printing.
 */
#include "tools/dump_log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/wire.h"
#include "storage/index.h"
#include "storage/producer_state.h"
#include "storage/segment.h"
#include "tools/cli.h"

/* One whole batch found in a .log: enough to check index entries against. */
typedef struct dl_batch {
    int64_t pos;
    int64_t base;
    int64_t last;
    int64_t running_max_ts; /* largest maxTimestamp of this and earlier batches */
} dl_batch;

/* Upper bound on batches remembered for index checks (a 1 GiB segment of
 * minimal 61-byte batches has ~17.6M; anything beyond is reported). */
#define DL_MAX_BATCHES (32 * 1024 * 1024)

typedef struct dl_ctx {
    const dump_opts *o;
    FILE *out;
    const char *path;
    dump_result *res;
    char kept[DUMP_MAX_KEPT_PROBLEMS][256];
    int nkept;
    bool first_item; /* JSON: no comma before the next array element */
    int64_t printed;
} dl_ctx;

static void problem(dl_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(dl_ctx *c, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->res->problems++;
    if (c->o->json) {
        if (c->nkept < DUMP_MAX_KEPT_PROBLEMS)
            memcpy(c->kept[c->nkept++], msg, sizeof msg);
    } else {
        fprintf(c->out, "PROBLEM: %s\n", msg);
    }
}

static void warning(dl_ctx *c, const char *msg) {
    c->res->warnings++;
    if (!c->o->json)
        fprintf(c->out, "WARNING: %s\n", msg);
}

/* Reads exactly n bytes at off. 0, or -1 on a short read or error. */
static int pread_full(int fd, void *buf, size_t n, int64_t off) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* The segment base offset from a name like ".../00000000000000000042.log",
 * or -1 if the name is not 20 digits plus the suffix. */
static int64_t base_from_name(const char *path, const char *suffix) {
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), sl = strlen(suffix);
    return n >= sl && strcmp(s + n - sl, suffix) == 0;
}

static const char *codec_name(int codec) {
    switch (codec) {
    case BATCH_CODEC_NONE:
        return "none";
    case BATCH_CODEC_GZIP:
        return "gzip";
    case BATCH_CODEC_SNAPPY:
        return "snappy";
    case BATCH_CODEC_LZ4:
        return "lz4";
    case BATCH_CODEC_ZSTD:
        return "zstd";
    }
    return "unknown";
}

static void json_sep(dl_ctx *c) {
    if (!c->first_item)
        fputc(',', c->out);
    c->first_item = false;
}

static bool want_print(dl_ctx *c) {
    if (c->o->verify_only)
        return false;
    if (c->o->max_items > 0 && c->printed >= c->o->max_items)
        return false;
    c->printed++;
    return true;
}

/* Prints the records of one CRC-checked batch. Returns false if the records
 * do not decode (a problem is reported). */
static bool print_records(dl_ctx *c, const uint8_t *buf, size_t size, const batch_header *h, int64_t pos) {
    arena a;
    arena_init(&a, DUMP_MAX_UNCOMPRESSED + (1u << 20));
    batch_iter it;
    batch_record rec;
    bool ok = true;
    const char *tsname = (h->attributes & BATCH_ATTR_LOG_APPEND_TIME) ? "LogAppendTime" : "CreateTime";
    if (batch_iter_init(&it, buf, size, &a) != BATCH_OK)
        goto bad;
    bool first = true;
    if (c->o->json)
        fputs(",\"records\":[", c->out);
    while (batch_iter_next(&it, &rec)) {
        int32_t seq =
            h->base_sequence < 0 ? -1 : (int32_t)(((int64_t)h->base_sequence + rec.offset_delta) & INT32_MAX);
        int16_t cver, ctype;
        bool control = (h->attributes & BATCH_ATTR_CONTROL) && batch_control_key(&rec, &cver, &ctype);
        wire_reader hr;
        kstr hk;
        kbytes hv;
        if (c->o->json) {
            fprintf(c->out, "%s{\"offset\":%lld,\"timestamp\":%lld,\"sequence\":%d,", first ? "" : ",",
                    (long long)rec.offset, (long long)rec.timestamp, seq);
            if (control)
                fprintf(c->out, "\"control\":\"%s\",", ctype == BATCH_CONTROL_COMMIT ? "COMMIT" : "ABORT");
            fputs("\"key\":", c->out);
            if (rec.key.len < 0)
                fputs("null", c->out);
            else
                cli_json_str(c->out, (const char *)rec.key.ptr, rec.key.len);
            fputs(",\"value\":", c->out);
            if (rec.value.len < 0)
                fputs("null", c->out);
            else
                cli_json_str(c->out, (const char *)rec.value.ptr, rec.value.len);
            fputs(",\"headers\":[", c->out);
            batch_record_headers(&rec, &hr);
            bool hfirst = true;
            while (batch_record_next_header(&rec, &hr, &hk, &hv)) {
                fputs(hfirst ? "{\"key\":" : ",{\"key\":", c->out);
                cli_json_str(c->out, hk.ptr, hk.len);
                fputs(",\"value\":", c->out);
                if (hv.len < 0)
                    fputs("null", c->out);
                else
                    cli_json_str(c->out, (const char *)hv.ptr, hv.len);
                fputc('}', c->out);
                hfirst = false;
            }
            fputs("]}", c->out);
        } else {
            fprintf(c->out, "| offset: %lld %s: %lld keySize: %d valueSize: %d sequence: %d headerKeys: [",
                    (long long)rec.offset, tsname, (long long)rec.timestamp, rec.key.len, rec.value.len, seq);
            batch_record_headers(&rec, &hr);
            bool hfirst = true;
            while (batch_record_next_header(&rec, &hr, &hk, &hv)) {
                if (!hfirst)
                    fputc(',', c->out);
                cli_print_bytes(c->out, hk.ptr, (size_t)hk.len);
                hfirst = false;
            }
            fputc(']', c->out);
            if (control) {
                fprintf(c->out, " endTxnMarker: %s", ctype == BATCH_CONTROL_COMMIT ? "COMMIT" : "ABORT");
            } else {
                if (rec.key.len >= 0) {
                    fputs(" key: ", c->out);
                    cli_print_bytes(c->out, rec.key.ptr, (size_t)rec.key.len);
                }
                if (rec.value.len >= 0) {
                    fputs(" payload: ", c->out);
                    cli_print_bytes(c->out, rec.value.ptr, (size_t)rec.value.len);
                }
            }
            fputc('\n', c->out);
        }
        first = false;
    }
    if (c->o->json)
        fputc(']', c->out);
    if (it.err != BATCH_OK)
        goto bad;
    arena_reset(&a);
    return ok;
bad:
    problem(c, "batch at position %lld (offset %lld): records do not decode: %s", (long long)pos,
            (long long)h->base_offset, batch_strerror(it.err));
    arena_reset(&a);
    return false;
}

static void print_batch(dl_ctx *c, const batch_header *h, int64_t pos, int64_t size, bool valid) {
    int32_t last_seq =
        h->base_sequence < 0 ? -1 : (int32_t)(((int64_t)h->base_sequence + h->last_offset_delta) & INT32_MAX);
    bool txn = (h->attributes & BATCH_ATTR_TRANSACTIONAL) != 0;
    bool ctl = (h->attributes & BATCH_ATTR_CONTROL) != 0;
    bool lat = (h->attributes & BATCH_ATTR_LOG_APPEND_TIME) != 0;
    if (c->o->json) {
        fprintf(
            c->out,
            "{\"baseOffset\":%lld,\"lastOffset\":%lld,\"count\":%d,\"baseSequence\":%d,\"lastSequence\":%d,"
            "\"producerId\":%lld,\"producerEpoch\":%d,\"partitionLeaderEpoch\":%d,\"isTransactional\":%s,"
            "\"isControl\":%s,\"position\":%lld,\"timestampType\":\"%s\",\"baseTimestamp\":%lld,"
            "\"maxTimestamp\":%lld,\"size\":%lld,\"magic\":%d,\"compressCodec\":\"%s\",\"crc\":%u,"
            "\"isValid\":%s",
            (long long)h->base_offset, (long long)batch_last_offset(h), h->record_count, h->base_sequence,
            last_seq, (long long)h->producer_id, h->producer_epoch, h->partition_leader_epoch,
            txn ? "true" : "false", ctl ? "true" : "false", (long long)pos,
            lat ? "LogAppendTime" : "CreateTime", (long long)h->base_timestamp, (long long)h->max_timestamp,
            (long long)size, h->magic, codec_name(batch_codec_of(h)), h->crc, valid ? "true" : "false");
    } else {
        fprintf(
            c->out,
            "baseOffset: %lld lastOffset: %lld count: %d baseSequence: %d lastSequence: %d producerId: %lld "
            "producerEpoch: %d partitionLeaderEpoch: %d isTransactional: %s isControl: %s position: %lld "
            "%s: %lld size: %lld magic: %d compresscodec: %s crc: %u isvalid: %s\n",
            (long long)h->base_offset, (long long)batch_last_offset(h), h->record_count, h->base_sequence,
            last_seq, (long long)h->producer_id, h->producer_epoch, h->partition_leader_epoch,
            txn ? "true" : "false", ctl ? "true" : "false", (long long)pos,
            lat ? "LogAppendTime" : "CreateTime", (long long)h->max_timestamp, (long long)size, h->magic,
            codec_name(batch_codec_of(h)), h->crc, valid ? "true" : "false");
    }
}

typedef struct dl_list {
    dl_batch *v;
    size_t n, cap;
} dl_list;

static int list_push(dl_list *l, const dl_batch *b) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        if (ncap > DL_MAX_BATCHES)
            return -1;
        dl_batch *p = realloc(l->v, ncap * sizeof *p);
        if (p == NULL)
            return -1;
        l->v = p;
        l->cap = ncap;
    }
    l->v[l->n++] = *b;
    return 0;
}

/* Walks a .log file. With print set, prints batches (and records if asked);
 * with list set, collects the batches for index checks. Returns 0, or -1 if
 * the file cannot be opened (a problem is not counted then; the caller says). */
static int walk_log(dl_ctx *c, const char *path, int64_t seg_base, bool print, dl_list *list) {
    uint8_t *buf = NULL;
    size_t cap = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    int64_t size = st.st_size, pos = 0, prev_last = -1, running_max = -1;
    bool list_full = false;
    bool deep = c->o->deep || c->o->print_data;
    while (pos < size) {
        uint8_t pre[BATCH_LOG_OVERHEAD];
        /* Less than a minimal batch left: the tail of an interrupted write. */
        if (size - pos < BATCH_HEADER_SIZE || pread_full(fd, pre, sizeof pre, pos) != 0) {
            if (print)
                problem(c, "torn tail: %lld bytes after the last whole batch (position %lld)",
                        (long long)(size - pos), (long long)pos);
            break;
        }
        int32_t blen = (int32_t)wire_be32(pre + BATCH_OFF_LENGTH);
        int64_t total = (int64_t)blen + BATCH_LOG_OVERHEAD;
        if (blen < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD || total > SEG_MAX_BATCH_BYTES) {
            if (print)
                problem(c, "batch at position %lld: impossible batchLength %d; cannot read further",
                        (long long)pos, blen);
            break;
        }
        if (total > size - pos) {
            if (print)
                problem(c, "torn tail: batch at position %lld claims %lld bytes but only %lld remain",
                        (long long)pos, (long long)total, (long long)(size - pos));
            break;
        }
        if ((size_t)total > cap) {
            uint8_t *nb = realloc(buf, (size_t)total);
            if (nb == NULL) {
                problem(c, "out of memory reading a %lld-byte batch", (long long)total);
                break;
            }
            buf = nb;
            cap = (size_t)total;
        }
        if (pread_full(fd, buf, (size_t)total, pos) != 0) {
            problem(c, "read error at position %lld", (long long)pos);
            break;
        }
        batch_header h;
        int perr = batch_parse_header(buf, (size_t)total, &h);
        if (perr != BATCH_OK) {
            if (print)
                problem(c, "batch at position %lld: %s (magic %d)", (long long)pos, batch_strerror(perr),
                        (int8_t)buf[BATCH_OFF_MAGIC]);
            pos += total;
            continue;
        }
        int64_t last = batch_last_offset(&h);
        if (last < 0) {
            if (print)
                problem(
                    c,
                    "batch at position %lld: offsets out of range (base offset %lld, last offset delta %d)",
                    (long long)pos, (long long)h.base_offset, h.last_offset_delta);
            pos += total;
            continue;
        }
        bool valid = batch_crc_ok(buf, (size_t)total);
        if (print && !valid)
            problem(c, "batch at position %lld (offset %lld): CRC mismatch (stored %u)", (long long)pos,
                    (long long)h.base_offset, h.crc);
        if (valid && deep) {
            int verr = batch_validate(buf, (size_t)total, true, DUMP_MAX_UNCOMPRESSED);
            if (verr != BATCH_OK) {
                valid = false;
                if (print)
                    problem(c, "batch at position %lld (offset %lld): %s", (long long)pos,
                            (long long)h.base_offset, batch_strerror(verr));
            }
        }
        if (print && prev_last < 0 && h.base_offset < seg_base)
            problem(c, "batch at position %lld starts at offset %lld, below the segment base %lld",
                    (long long)pos, (long long)h.base_offset, (long long)seg_base);
        if (print && prev_last >= 0 && h.base_offset <= prev_last)
            problem(c,
                    "batch at position %lld starts at offset %lld, not after the previous batch's last "
                    "offset %lld",
                    (long long)pos, (long long)h.base_offset, (long long)prev_last);
        prev_last = last > prev_last ? last : prev_last;
        if (h.max_timestamp > running_max)
            running_max = h.max_timestamp;
        if (list && !list_full) {
            dl_batch b = {pos, h.base_offset, last, running_max};
            if (list_push(list, &b) != 0) {
                list_full = true;
                warning(c, "too many batches to check every index entry");
            }
        }
        if (print && want_print(c)) {
            if (c->o->json)
                json_sep(c);
            print_batch(c, &h, pos, total, valid);
            if (c->o->print_data && valid)
                print_records(c, buf, (size_t)total, &h, pos);
            if (c->o->json)
                fputc('}', c->out);
        }
        pos += total;
    }
    free(buf);
    close(fd);
    return 0;
}

/* Finds the batch starting at pos (by binary search; positions increase). */
static const dl_batch *find_pos(const dl_list *l, int64_t pos) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].pos < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].pos == pos ? &l->v[lo] : NULL;
}

/* Finds the batch whose base offset is base. Offsets increase in a healthy
 * log; in a broken one this may miss, which is reported as a mismatch. */
static const dl_batch *find_base(const dl_list *l, int64_t base) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].base == base ? &l->v[lo] : NULL;
}

/* Reads a whole index file (bounded by the segment index size Kafka allows,
 * plus slack). Returns the bytes or NULL. */
#define DL_MAX_INDEX_BYTES (1024 * 1024 * 1024)
static uint8_t *slurp(const char *path, size_t *len_out) {
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || st.st_size > DL_MAX_INDEX_BYTES)
        goto err;
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL || (st.st_size > 0 && pread_full(fd, buf, (size_t)st.st_size, 0) != 0))
        goto err;
    close(fd);
    *len_out = (size_t)st.st_size;
    return buf;
err:
    free(buf);
    close(fd);
    return NULL;
}

/* Loads the sibling .log's batches. Returns false (with a warning) if none. */
static bool load_sibling(dl_ctx *c, const char *path, const char *suffix, int64_t base, dl_list *list) {
    char logpath[SEG_PATH_MAX + 16];
    size_t n = strlen(path), sl = strlen(suffix);
    if (n - sl + 5 >= sizeof logpath)
        return false;
    memcpy(logpath, path, n - sl);
    memcpy(logpath + n - sl, ".log", 5);
    if (walk_log(c, logpath, base, false, list) != 0) {
        char msg[SEG_PATH_MAX + 128];
        snprintf(msg, sizeof msg, "cannot open %s: entries not checked against the log", logpath);
        warning(c, msg);
        return false;
    }
    return true;
}

static void dump_offset_index(dl_ctx *c, int64_t base) {
    size_t len = 0;
    uint8_t *buf = slurp(c->path, &len);
    dl_list list = {0};
    if (buf == NULL) {
        problem(c, "cannot read the file: %s", strerror(errno ? errno : EIO));
        return;
    }
    bool have_log = load_sibling(c, c->path, ".index", base, &list);
    if (len % OIDX_ENTRY_SIZE != 0)
        problem(c, "size %zu is not a multiple of %d: %zu trailing bytes", len, OIDX_ENTRY_SIZE,
                len % OIDX_ENTRY_SIZE);
    int64_t prev_rel = -1, prev_pos = -1;
    for (size_t i = 0; i + OIDX_ENTRY_SIZE <= len; i += OIDX_ENTRY_SIZE) {
        int32_t rel = (int32_t)wire_be32(buf + i), ipos = (int32_t)wire_be32(buf + i + 4);
        int64_t off = base + rel;
        if (want_print(c)) {
            if (c->o->json) {
                json_sep(c);
                fprintf(c->out, "{\"offset\":%lld,\"position\":%d}", (long long)off, ipos);
            } else {
                fprintf(c->out, "offset: %lld position: %d\n", (long long)off, ipos);
            }
        }
        if (rel < 0 || ipos < 0 || rel <= prev_rel || ipos <= prev_pos)
            problem(c, "entry %zu (offset %lld, position %d) does not increase past the previous entry",
                    i / OIDX_ENTRY_SIZE, (long long)off, ipos);
        prev_rel = rel;
        prev_pos = ipos;
        if (!have_log)
            continue;
        const dl_batch *b = find_pos(&list, ipos);
        if (b == NULL)
            problem(c, "entry for offset %lld points at position %d, where no batch starts in the log",
                    (long long)off, ipos);
        else if (b->base != off)
            problem(c, "entry says offset %lld is at position %d, but the batch there starts at offset %lld",
                    (long long)off, ipos, (long long)b->base);
    }
    free(list.v);
    free(buf);
}

static void dump_time_index(dl_ctx *c, int64_t base) {
    size_t len = 0;
    uint8_t *buf = slurp(c->path, &len);
    dl_list list = {0};
    if (buf == NULL) {
        problem(c, "cannot read the file: %s", strerror(errno ? errno : EIO));
        return;
    }
    bool have_log = load_sibling(c, c->path, ".timeindex", base, &list);
    if (len % TIDX_ENTRY_SIZE != 0)
        problem(c, "size %zu is not a multiple of %d: %zu trailing bytes", len, TIDX_ENTRY_SIZE,
                len % TIDX_ENTRY_SIZE);
    int64_t prev_ts = INT64_MIN, prev_rel = -1;
    for (size_t i = 0; i + TIDX_ENTRY_SIZE <= len; i += TIDX_ENTRY_SIZE) {
        int64_t ts = (int64_t)wire_be64(buf + i);
        int32_t rel = (int32_t)wire_be32(buf + i + 8);
        int64_t off = base + rel;
        if (want_print(c)) {
            if (c->o->json) {
                json_sep(c);
                fprintf(c->out, "{\"timestamp\":%lld,\"offset\":%lld}", (long long)ts, (long long)off);
            } else {
                fprintf(c->out, "timestamp: %lld offset: %lld\n", (long long)ts, (long long)off);
            }
        }
        if (rel < 0 || ts < prev_ts || rel < prev_rel)
            problem(c, "entry %zu (timestamp %lld, offset %lld) goes backwards", i / TIDX_ENTRY_SIZE,
                    (long long)ts, (long long)off);
        prev_ts = ts;
        prev_rel = rel;
        if (!have_log)
            continue;
        const dl_batch *b = find_base(&list, off);
        if (b == NULL)
            problem(c, "entry (timestamp %lld) names offset %lld, where no batch starts in the log",
                    (long long)ts, (long long)off);
        else if (ts > b->running_max_ts)
            problem(
                c,
                "entry timestamp %lld at offset %lld is larger than any batch timestamp up to there (%lld)",
                (long long)ts, (long long)off, (long long)b->running_max_ts);
    }
    free(list.v);
    free(buf);
}

/* A producer-state snapshot (<offset>.snapshot): its producers, as
 * Kafka's DumpLogSegments prints them. A file that does not decode is one
 * problem naming why. */
static void dump_producer_snapshot(dl_ctx *c) {
    size_t len = 0;
    uint8_t *buf = slurp(c->path, &len);
    if (buf == NULL) {
        problem(c, "cannot read the file (or larger than %d bytes)", DL_MAX_INDEX_BYTES);
        return;
    }
    pstate *s = pstate_create((int32_t)(len / PSTATE_SNAPSHOT_ENTRY + 1), 0);
    char why[256];
    if (s == NULL) {
        problem(c, "out of memory");
    } else if (pstate_snapshot_decode(s, buf, len, 0, why, sizeof why) != 0) {
        problem(c, "not a usable producer snapshot: %s", why);
    } else {
        for (int32_t i = 0; i < pstate_count(s); i++) {
            const pstate_entry *e = pstate_at(s, i);
            const pstate_batch *b = pstate_newest(e);
            if (b == NULL || !want_print(c))
                continue;
            if (c->o->json) {
                json_sep(c);
                fprintf(c->out,
                        "{\"producerId\":%lld,\"producerEpoch\":%d,\"firstSequence\":%d,\"lastSequence\":%d,"
                        "\"lastOffset\":%lld,\"offsetDelta\":%lld,\"lastTimestamp\":%lld}",
                        (long long)e->producer_id, e->epoch, b->first_seq, b->last_seq,
                        (long long)b->last_offset, (long long)(b->last_offset - b->first_offset),
                        (long long)b->timestamp);
            } else {
                fprintf(
                    c->out,
                    "producerId: %lld producerEpoch: %d coordinatorEpoch: -1 currentTxnFirstOffset: None "
                    "lastTimestamp: %lld firstSequence: %d lastSequence: %d lastOffset: %lld offsetDelta: "
                    "%lld\n",
                    (long long)e->producer_id, e->epoch, (long long)b->timestamp, b->first_seq, b->last_seq,
                    (long long)b->last_offset, (long long)(b->last_offset - b->first_offset));
            }
        }
    }
    pstate_destroy(s);
    free(buf);
}

void dump_log_file(const char *path, const dump_opts *o, FILE *out, dump_result *res) {
    static dl_ctx ctx; /* large (kept problems); one file at a time */
    dl_ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    memset(res, 0, sizeof *res);
    c->o = o;
    c->out = out;
    c->path = path;
    c->res = res;
    c->first_item = true;

    const char *kind = has_suffix(path, ".log")         ? "log"
                       : has_suffix(path, ".index")     ? "index"
                       : has_suffix(path, ".timeindex") ? "timeindex"
                       : has_suffix(path, ".snapshot")  ? "snapshot"
                                                        : NULL;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (o->json) {
        fputs("{\"file\":", out);
        cli_json_str(out, path, -1);
        fprintf(out, ",\"type\":\"%s\"", kind ? kind : "unknown");
    } else {
        fprintf(out, "Dumping %s\n", path);
    }
    if (!exists || kind == NULL) {
        const char *why = !exists ? strerror(errno) : "not a .log, .index, .timeindex or .snapshot file";
        res->exit_code = !exists ? CLI_ENOTFOUND : CLI_EUSAGE;
        if (o->json) {
            fputs(",\"error\":", out);
            cli_json_str(out, why, -1);
            fputc('}', out);
        }
        cli_err("dump-log", "%s: %s", path, why);
        return;
    }
    const char *suffix = kind[0] == 'l'   ? ".log"
                         : kind[0] == 'i' ? ".index"
                         : kind[0] == 's' ? ".snapshot"
                                          : ".timeindex";
    int64_t base = base_from_name(path, suffix);
    if (base < 0) {
        warning(c, "file name is not a 20-digit base offset; assuming base offset 0");
        base = 0;
    }
    if (o->json)
        fprintf(out, ",\"baseOffset\":%lld,\"%s\":[", (long long)base,
                kind[0] == 'l'   ? "batches"
                : kind[0] == 's' ? "producers"
                                 : "entries");
    else if (kind[0] == 'l')
        fprintf(out, "Log starting offset: %lld\n", (long long)base);
    else if (kind[0] == 's')
        fprintf(out, "Producer state up to offset: %lld\n", (long long)base);

    if (kind[0] == 'l') {
        if (walk_log(c, path, base, true, NULL) != 0)
            problem(c, "cannot read the file: %s", strerror(errno));
    } else if (kind[0] == 's') {
        dump_producer_snapshot(c);
    } else if (kind[0] == 'i') {
        dump_offset_index(c, base);
    } else {
        dump_time_index(c, base);
    }

    if (o->json) {
        fprintf(out, "],\"problemCount\":%d,\"warningCount\":%d,\"problems\":[", res->problems,
                res->warnings);
        for (int i = 0; i < c->nkept; i++) {
            if (i)
                fputc(',', out);
            cli_json_str(out, c->kept[i], -1);
        }
        fputs("]}", out);
    } else if (res->problems > 0) {
        fprintf(out, "Found %d problem%s in %s\n", res->problems, res->problems == 1 ? "" : "s", path);
    }
    res->exit_code = res->problems > 0 ? CLI_ECORRUPT : CLI_OK;
}

/* ---------------- the subcommand ---------------- */

#include <getopt.h>

static const char dump_help[] =
    "Usage: sluice dump-log [options] FILE...\n"
    "\n"
    "Decodes partition files offline (no broker needed) and checks them:\n"
    "  <base>.log        record batches: header, CRC-32C, offsets, torn tail\n"
    "  <base>.index      offset index entries against the batches in <base>.log\n"
    "  <base>.timeindex  time index entries against the batches in <base>.log\n"
    "  <offset>.snapshot producer state (id, epoch, sequences, last offset) below that offset\n"
    "\n"
    "Options:\n"
    "  --print-data-log      print every record (key, value, headers); implies --deep-iteration\n"
    "  --deep-iteration      decode every record to check it, not only the batch CRC\n"
    "  --verify-index-only   print only problems, not the entries or batches\n"
    "  --max-items N         print at most N batches or entries per file (checks still cover all)\n"
    "  --json                one JSON document: {\"files\":[{\"file\":...,\"batches\":[...],...}]}\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit codes: 0 all files sound; 5 a problem was found (each printed as 'PROBLEM: ...');\n"
    "4 a file does not exist; 2 bad flags or a file that is not a segment file.\n"
    "\n"
    "Examples:\n"
    "  sluice dump-log data/orders-0/00000000000000000000.log\n"
    "  sluice dump-log --print-data-log data/orders-0/00000000000000000000.log\n"
    "  sluice dump-log --verify-index-only data/orders-0/*.index data/orders-0/*.timeindex\n"
    "  sluice dump-log --json data/orders-0/00000000000000000000.log | jq '.files[0].problemCount'\n";

int cmd_dump_log(int argc, char **argv) {
    static const struct option opts[] = {
        {"print-data-log", no_argument, NULL, 'p'},
        {"deep-iteration", no_argument, NULL, 'd'},
        {"verify-index-only", no_argument, NULL, 'v'},
        {"index-sanity-check", no_argument, NULL, 'v'},
        {"max-items", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {"files", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    dump_opts o = {0};
    const char *files_flag = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            o.print_data = true;
            o.deep = true;
            break;
        case 'd':
            o.deep = true;
            break;
        case 'v':
            o.verify_only = true;
            break;
        case 'm':
            if (!cli_parse_i64(optarg, 0, INT64_MAX, &o.max_items))
                return cli_usage_err("dump-log", "--max-items: not a non-negative number: '%s'", optarg);
            break;
        case 'j':
            o.json = true;
            break;
        case 'f':
            files_flag = optarg; /* Kafka's tool takes --files a,b,c */
            break;
        case 'h':
            fputs(dump_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("dump-log", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("dump-log", "unknown option '%s'", argv[optind - 1]);
        }
    }
    /* Collect files: positional arguments plus the comma-separated --files. */
    enum { MAX_FILES = 4096 };
    static char files_buf[CLI_ARG_MAX];
    const char *files[MAX_FILES];
    int nfiles = 0;
    for (int i = optind; i < argc && nfiles < MAX_FILES; i++)
        files[nfiles++] = argv[i];
    if (files_flag) {
        if (strlen(files_flag) >= sizeof files_buf)
            return cli_usage_err("dump-log", "--files: list too long");
        strcpy(files_buf, files_flag);
        for (char *save = NULL, *t = strtok_r(files_buf, ",", &save); t && nfiles < MAX_FILES;
             t = strtok_r(NULL, ",", &save))
            files[nfiles++] = t;
    }
    if (nfiles == 0)
        return cli_usage_err("dump-log", "no files given");

    int rc = CLI_OK, total_problems = 0;
    if (o.json)
        fputs("{\"files\":[", stdout);
    for (int i = 0; i < nfiles; i++) {
        dump_result res;
        if (o.json && i > 0)
            fputc(',', stdout);
        dump_log_file(files[i], &o, stdout, &res);
        total_problems += res.problems;
        /* The most serious outcome wins: corruption over missing over usage. */
        if (res.exit_code == CLI_ECORRUPT || (rc != CLI_ECORRUPT && res.exit_code != CLI_OK &&
                                              (rc == CLI_OK || res.exit_code == CLI_ENOTFOUND)))
            rc = res.exit_code;
    }
    if (o.json)
        fprintf(stdout, "],\"problemCount\":%d}\n", total_problems);
    if (total_problems > 0)
        cli_err("dump-log", "%d problem%s found", total_problems, total_problems == 1 ? "" : "s");
    return rc;
}
