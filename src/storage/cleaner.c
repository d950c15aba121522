/*
 * cleaner.c - log compaction passes. See cleaner.h for what a pass does and
 * docs/compaction.md for the crash-safety argument.
 */
#include "storage/cleaner.h"
#include "core/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/wire.h"
#include "storage/segment.h"

#define VIEW_MAX_SEGS     (1 << 16) /* segments one pass looks at */
#define READ_CHUNK        (1 << 20)
#define WRITE_CHUNK       (1 << 20)
#define WRITE_MAX_BATCHES 1024
#define GROUP_MAX_SEGS    1024
/* Internal answers beside the storage errors. */
#define STOP_MAP_FULL (-100001) /* map building: the next batch does not fit */
#define GROUP_TOO_BIG (-100002) /* the cleaned group overflows its index: fewer segments */

typedef struct map_slot {
    uint64_t h1, h2;
    int64_t off1; /* offset + 1; 0 = empty slot */
} map_slot;
_Static_assert(sizeof(map_slot) == CLEANER_MAP_SLOT_BYTES, "slot size");

struct cleaner {
    cleaner_opts o;
    map_slot *slots;
    size_t max_slots;           /* what dedupe_buffer_bytes holds */
    size_t nslots, used, limit; /* this pass's map */
    uint8_t *rbuf;
    size_t rcap;
};

void cleaner_log_config_default(cleaner_log_config *c) {
    c->delete_retention_ms = 86400000;
    c->min_compaction_lag_ms = 0;
    c->max_compaction_lag_ms = INT64_MAX;
    c->min_cleanable_ratio = 0.5;
}

/* ---------------- key hash and offset map ---------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash64(const uint8_t *p, size_t n, uint64_t seed) {
    uint64_t h = mix64(seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL));
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = (h ^ mix64(k + seed)) * 0x9e3779b97f4a7c15ULL;
        h = (h << 29) | (h >> 35);
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, p, n);
    h = (h ^ mix64(k + seed + n)) * 0x9e3779b97f4a7c15ULL;
    return mix64(h);
}

void cleaner_key_hash(const uint8_t *key, size_t len, uint64_t out[2]) {
    static const uint8_t empty[1];
    if (key == NULL)
        key = empty;
    out[0] = hash64(key, len, 0x243f6a8885a308d3ULL);
    out[1] = hash64(key, len, 0x13198a2e03707344ULL);
}

/* A zeroed map for a pass over dirty_bytes of batches: no more slots than
 * those bytes can hold records (7 bytes the smallest record) nor than the
 * buffer allows. calloc hands large maps zero pages from the kernel, so an
 * idle or small pass costs no resident memory. */
static int map_alloc(cleaner *c, int64_t dirty_bytes) {
    free(c->slots);
    size_t want = (size_t)(dirty_bytes / 7 / CLEANER_MAP_LOAD) + 1024;
    c->nslots = want < c->max_slots ? want : c->max_slots;
    c->limit = (size_t)((double)c->nslots * CLEANER_MAP_LOAD);
    c->used = 0;
    assert(c->limit < c->nslots);
    c->slots = calloc(c->nslots, sizeof *c->slots);
    return c->slots ? 0 : -ENOMEM;
}

static map_slot *map_find(cleaner *c, const uint64_t h[2]) {
    size_t i = (size_t)(h[0] % c->nslots);
    for (;;) {
        map_slot *s = &c->slots[i];
        if (s->off1 == 0 || (s->h1 == h[0] && s->h2 == h[1]))
            return s;
        i = i + 1 == c->nslots ? 0 : i + 1;
    }
}

/* Records offset as the latest for the key. The caller checked room
 * (used < limit < nslots keeps an empty slot for every probe). */
static void map_put(cleaner *c, const uint64_t h[2], int64_t offset) {
    assert(c->used < c->nslots);
    map_slot *s = map_find(c, h);
    if (s->off1 == 0) {
        s->h1 = h[0];
        s->h2 = h[1];
        c->used++;
    }
    if (offset + 1 > s->off1)
        s->off1 = offset + 1;
}

static int64_t map_get(cleaner *c, const uint64_t h[2]) {
    map_slot *s = map_find(c, h);
    return s->off1 - 1; /* -1: absent */
}

cleaner *cleaner_new(const cleaner_opts *o) {
    if (o == NULL || o->dedupe_buffer_bytes < CLEANER_MAP_MIN_BYTES)
        return NULL;
    cleaner *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->o = *o;
    c->max_slots = (size_t)(o->dedupe_buffer_bytes / CLEANER_MAP_SLOT_BYTES);
    return c;
}

void cleaner_free(cleaner *c) {
    if (c == NULL)
        return;
    free(c->slots);
    free(c->rbuf);
    free(c);
}

/* false: the caller abandons the pass. */
static bool throttle(cleaner *c, int64_t bytes) {
    return c->o.throttle == NULL || bytes <= 0 || c->o.throttle(c->o.throttle_ctx, bytes);
}

/* ---------------- reading a segment batch by batch ---------------- */

typedef int (*batch_fn)(void *ctx, const uint8_t *b, size_t size, const batch_header *h);

static int corrupt(plog *l, const plog_clean_seg *cs, int64_t pos, const char *why) {
    LOG_WARN("cleaner",
             "%s: bad batch in segment %020" PRId64 " at position %" PRId64
             ": %s; this log is not cleaned until it is repaired",
             plog_dir(l), cs->base, pos, why);
    return STORAGE_CORRUPT_MESSAGE;
}

/* Calls fn for every batch of cs (whose CRC checks, and whose offsets lie
 * in the segment's range), reading through c's buffer. fn's non-zero
 * answer stops the walk and is returned. A segment the log dropped
 * meanwhile gives PLOG_CLEAN_STALE. */
static int for_each_batch(cleaner *c, plog *l, const plog_clean_seg *cs, batch_fn fn, void *ctx) {
    segment *s = cs->seg;
    if (segment_acquire(s) != 0)
        return PLOG_CLEAN_STALE;
    const sl_vfs *v = storage_vfs(plog_storage(l));
    int rc = 0;
    int64_t pos = 0;
    while (pos < cs->size && rc == 0) {
        size_t want = c->rcap;
        if ((int64_t)want > cs->size - pos)
            want = (size_t)(cs->size - pos);
        int r = sl_vfs_pread_full(v, s->fd, c->rbuf, want, pos);
        if (r != 0) {
            LOG_WARN("cleaner", "%s: cannot read segment %020" PRId64 ": %s", plog_dir(l), cs->base,
                     strerror(-r));
            rc = STORAGE_KAFKA_STORAGE_ERROR;
            break;
        }
        if (!throttle(c, (int64_t)want)) {
            rc = PLOG_CLEAN_STALE;
            break;
        }
        batch_cursor cur;
        batch_cursor_init(&cur, c->rbuf, want);
        for (;;) {
            const uint8_t *bp;
            size_t size;
            batch_header h;
            int64_t at = pos + (int64_t)batch_cursor_consumed(&cur);
            int e = batch_cursor_next(&cur, &bp, &size, &h);
            if (e == -1)
                break;
            if (e == BATCH_ETRUNC) {
                if (batch_cursor_consumed(&cur) > 0)
                    break; /* read on from this batch */
                /* One batch larger than the buffer: grow it to fit. */
                int64_t claimed =
                    want >= BATCH_HEADER_SIZE
                        ? (int64_t)(int32_t)wire_be32(c->rbuf + BATCH_OFF_LENGTH) + BATCH_LOG_OVERHEAD
                        : -1;
                if (claimed <= (int64_t)want || claimed > SEG_MAX_BATCH_BYTES || claimed > cs->size - pos) {
                    rc = corrupt(l, cs, at, "torn batch");
                    break;
                }
                uint8_t *nb = realloc(c->rbuf, (size_t)claimed);
                if (nb == NULL) {
                    rc = STORAGE_KAFKA_STORAGE_ERROR;
                    break;
                }
                c->rbuf = nb;
                c->rcap = (size_t)claimed;
                break;
            }
            if (e != BATCH_OK) {
                rc = corrupt(l, cs, at, batch_strerror(e));
                break;
            }
            if (!batch_crc_ok(bp, size)) {
                rc = corrupt(l, cs, at, "CRC mismatch");
                break;
            }
            int64_t last = batch_last_offset(&h);
            if (h.base_offset < cs->base || last < h.base_offset || last >= cs->end) {
                rc = corrupt(l, cs, at, "offsets outside the segment");
                break;
            }
            rc = fn(ctx, bp, size, &h);
            if (rc != 0)
                break;
        }
        pos += (int64_t)batch_cursor_consumed(&cur);
    }
    segment_release(s);
    return rc;
}

/* ---------------- measuring ---------------- */

typedef struct span {
    int upto;            /* segments [0, upto) of the view are cleanable */
    int first;           /* the first dirty segment */
    int64_t first_dirty; /* offset */
} span;

static bool lag_needs_ts(const cleaner_log_config *cfg) {
    return cfg->min_compaction_lag_ms > 0 || cfg->max_compaction_lag_ms != INT64_MAX;
}

static void measure_view(const plog_clean_view *v, const cleaner_log_config *cfg, int64_t now_ms, span *sp,
                         cleaner_stats *st) {
    memset(st, 0, sizeof *st);
    sp->upto = 0;
    sp->first = 0;
    sp->first_dirty = v->state.first_dirty;
    /* Segments whose newest record is younger than min.compaction.lag.ms,
     * and all after them, are not cleanable yet. */
    while (sp->upto < v->n) {
        const plog_clean_seg *s = &v->segs[sp->upto];
        if (cfg->min_compaction_lag_ms > 0 && s->max_ts >= 0 &&
            now_ms - s->max_ts < cfg->min_compaction_lag_ms)
            break;
        sp->upto++;
    }
    if (sp->upto == 0)
        return;
    if (sp->first_dirty < v->segs[0].base)
        sp->first_dirty = v->segs[0].base;
    while (sp->first < sp->upto && v->segs[sp->first].end <= sp->first_dirty)
        sp->first++;
    for (int i = 0; i < sp->upto; i++) {
        if (i < sp->first)
            st->clean_bytes += v->segs[i].size;
        else
            st->dirty_bytes += v->segs[i].size;
    }
    int64_t total = st->clean_bytes + st->dirty_bytes;
    st->dirty_ratio = total > 0 ? (double)st->dirty_bytes / (double)total : 0;
    bool dirty = sp->first < sp->upto && st->dirty_bytes > 0;
    bool lagging = dirty && cfg->max_compaction_lag_ms != INT64_MAX && v->segs[sp->first].max_ts >= 0 &&
                   now_ms - v->segs[sp->first].max_ts > cfg->max_compaction_lag_ms;
    bool horizon = v->state.next_horizon_ms <= now_ms;
    st->due = (dirty && st->dirty_ratio >= cfg->min_cleanable_ratio) || lagging || horizon;
}

int cleaner_measure(plog *l, const cleaner_log_config *cfg, int64_t now_ms, cleaner_stats *st) {
    plog_clean_view v;
    memset(st, 0, sizeof *st);
    int rc = plog_clean_view_take(l, VIEW_MAX_SEGS, lag_needs_ts(cfg), &v);
    if (rc != STORAGE_OK)
        return rc;
    span sp;
    measure_view(&v, cfg, now_ms, &sp, st);
    plog_clean_view_release(&v);
    return STORAGE_OK;
}

/* ---------------- building the map ---------------- */

typedef struct map_ctx {
    cleaner *c;
    plog *l;
    const plog_clean_seg *seg;
    arena *a;
    int64_t from;    /* first dirty offset */
    int64_t map_end; /* one past the last mapped batch */
    cleaner_stats *st;
} map_ctx;

static int map_batch(void *ctx, const uint8_t *bp, size_t size, const batch_header *h) {
    map_ctx *m = ctx;
    int64_t last = batch_last_offset(h);
    if (last < m->from)
        return 0; /* cleaned by an earlier pass */
    if (m->c->used + (size_t)(h->record_count > 0 ? h->record_count : 0) > m->c->limit)
        return STOP_MAP_FULL;
    if ((h->attributes & (BATCH_ATTR_CONTROL | BATCH_ATTR_TRANSACTIONAL)) == 0) {
        batch_iter it;
        batch_record rec;
        arena_reset(m->a);
        if (batch_iter_init(&it, bp, size, m->a) != BATCH_OK)
            return corrupt(m->l, m->seg, -1, it.why ? it.why : batch_strerror(it.err));
        while (batch_iter_next(&it, &rec)) {
            if (rec.key.len < 0)
                continue;
            uint64_t hh[2];
            cleaner_key_hash(rec.key.ptr, (size_t)rec.key.len, hh);
            map_put(m->c, hh, rec.offset);
        }
        if (it.err != BATCH_OK)
            return corrupt(m->l, m->seg, -1, it.why ? it.why : batch_strerror(it.err));
    }
    m->map_end = last + 1;
    return 0;
}

/* ---------------- writing a cleaned group ---------------- */

typedef struct writer {
    segment *out;
    uint8_t *buf;
    size_t len, cap;
    seg_batch b[WRITE_MAX_BATCHES];
    int nb;
} writer;

static int writer_flush(cleaner *c, writer *w) {
    if (w->nb == 0)
        return 0;
    segment *s = w->out;
    /* segment_append cannot fail on a full index: check first (an index
     * entry at most per batch, and the time index's last one at the seal). */
    if (s->oi.count + (uint32_t)w->nb + 1 >= s->oi.max_entries ||
        s->ti.count + (uint32_t)w->nb + 2 >= s->ti.max_entries || s->size + (int64_t)w->len > INT32_MAX)
        return GROUP_TOO_BIG;
    int rc = segment_append(s, w->buf, w->len, w->b, w->nb);
    if (rc != 0)
        return rc;
    if (!throttle(c, (int64_t)w->len))
        return PLOG_CLEAN_STALE;
    w->len = 0;
    w->nb = 0;
    return 0;
}

static int writer_add(cleaner *c, writer *w, const uint8_t *bp, size_t size, const seg_batch *meta) {
    if (w->nb == WRITE_MAX_BATCHES || w->len + size > w->cap) {
        int rc = writer_flush(c, w);
        if (rc != 0)
            return rc;
    }
    if (size > w->cap) {
        uint8_t *nb = realloc(w->buf, size);
        if (nb == NULL)
            return -ENOMEM;
        w->buf = nb;
        w->cap = size;
    }
    memcpy(w->buf + w->len, bp, size);
    w->b[w->nb] = *meta;
    w->b[w->nb].pos = (int64_t)w->len;
    w->nb++;
    w->len += size;
    return 0;
}

typedef struct clean_ctx {
    cleaner *c;
    plog *l;
    const plog_clean_seg *seg;
    const cleaner_log_config *cfg;
    arena *a;
    writer *w;
    int64_t now_ms;
    int64_t map_end;
    int64_t group_end;       /* the group's last segment's end offset */
    int64_t next_horizon_ms; /* earliest horizon of a kept tombstone */
    bool changed;            /* the output differs from the input */
    cleaner_stats *st;
} clean_ctx;

static int64_t sat_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

static int copy_batch(clean_ctx *x, const uint8_t *bp, size_t size, const batch_header *h) {
    seg_batch meta = {.base_offset = h->base_offset,
                      .last_offset = batch_last_offset(h),
                      .size = (int64_t)size,
                      .max_ts = h->max_timestamp,
                      .attributes = h->attributes,
                      .leader_epoch = h->partition_leader_epoch,
                      .record_count = h->record_count};
    return writer_add(x->c, x->w, bp, size, &meta);
}

static int clean_batch(void *ctx, const uint8_t *bp, size_t size, const batch_header *h) {
    clean_ctx *x = ctx;
    if (h->base_offset >= x->map_end || (h->attributes & (BATCH_ATTR_CONTROL | BATCH_ATTR_TRANSACTIONAL))) {
        x->st->records_read += h->record_count;
        x->st->records_kept += h->record_count;
        return copy_batch(x, bp, size, h);
    }
    bool has_horizon = (h->attributes & BATCH_ATTR_DELETE_HORIZON) != 0;
    int64_t horizon = has_horizon ? h->base_timestamp : -1;
    batch_iter it;
    batch_record rec;
    arena_reset(x->a);
    if (batch_iter_init(&it, bp, size, x->a) != BATCH_OK)
        return corrupt(x->l, x->seg, -1, it.why ? it.why : batch_strerror(it.err));
    int32_t cap = h->record_count > 0 ? h->record_count : 1;
    batch_build_record *recs = arena_calloc(x->a, (size_t)cap, sizeof *recs);
    if (recs == NULL)
        return corrupt(x->l, x->seg, -1, "more records than the cleaner's memory for one batch");
    int32_t n = 0, seen = 0;
    bool kept_tombstone = false;
    while (batch_iter_next(&it, &rec)) {
        seen++;
        bool keep = true;
        if (rec.offset < x->map_end) {
            if (rec.key.len < 0) {
                keep = false; /* a compacted log has no use for a record without a key */
            } else {
                uint64_t hh[2];
                cleaner_key_hash(rec.key.ptr, (size_t)rec.key.len, hh);
                if (map_get(x->c, hh) > rec.offset)
                    keep = false; /* a later record of the key exists */
                else if (rec.value.len < 0 && has_horizon && horizon <= x->now_ms)
                    keep = false; /* a tombstone past its delete horizon */
            }
        }
        if (!keep)
            continue;
        if (n == cap)
            return corrupt(x->l, x->seg, -1, "more records than the header says");
        batch_build_record *r = &recs[n++];
        r->key = rec.key;
        r->value = rec.value;
        r->timestamp = rec.timestamp;
        r->offset_delta = rec.offset_delta;
        r->header_count = rec.header_count;
        if (rec.value.len < 0)
            kept_tombstone = true;
        if (rec.header_count > 0) {
            batch_build_header *hs = arena_calloc(x->a, (size_t)rec.header_count, sizeof *hs);
            if (hs == NULL)
                return corrupt(x->l, x->seg, -1, "more record headers than the cleaner's memory");
            wire_reader hr;
            batch_record_headers(&rec, &hr);
            for (int32_t k = 0; k < rec.header_count; k++)
                if (!batch_record_next_header(&rec, &hr, &hs[k].key, &hs[k].value))
                    return corrupt(x->l, x->seg, -1, "bad record header");
            r->headers = hs;
        }
    }
    if (it.err != BATCH_OK)
        return corrupt(x->l, x->seg, -1, it.why ? it.why : batch_strerror(it.err));
    x->st->records_read += seen;
    x->st->records_kept += n;
    if (n == 0) {
        x->changed = true;
        if (batch_last_offset(h) != x->group_end - 1)
            return 0; /* the whole batch goes */
        /* The group's last batch stays, empty, so the cleaned segment still
         * ends where it did: a reader or follower at the log end never
         * waits at a gap no batch covers. */
        batch_build_opts o = batch_build_defaults();
        o.base_offset = h->base_offset;
        o.leader_epoch = h->partition_leader_epoch;
        o.extra_attributes = (int16_t)(h->attributes & BATCH_ATTR_LOG_APPEND_TIME);
        o.producer_id = h->producer_id;
        o.producer_epoch = h->producer_epoch;
        o.base_sequence = h->base_sequence;
        o.last_offset_delta = h->last_offset_delta;
        o.log_append_time = h->max_timestamp;
        uint8_t *out;
        size_t out_len;
        batch_header nh;
        if (batch_build(&o, NULL, 0, x->a, &out, &out_len) != BATCH_OK ||
            batch_parse_header(out, out_len, &nh) != BATCH_OK)
            return corrupt(x->l, x->seg, -1, "cannot build an empty batch");
        return copy_batch(x, out, out_len, &nh);
    }
    if (kept_tombstone) {
        if (!has_horizon)
            horizon = sat_add(x->now_ms, x->cfg->delete_retention_ms);
        if (horizon < x->next_horizon_ms)
            x->next_horizon_ms = horizon;
    }
    bool set_horizon = kept_tombstone && !has_horizon;
    if (n == seen && !set_horizon)
        return copy_batch(x, bp, size, h);
    x->changed = true;
    batch_build_opts o = batch_build_defaults();
    o.base_offset = h->base_offset;
    o.leader_epoch = h->partition_leader_epoch;
    o.codec = batch_codec_of(h);
    o.extra_attributes = (int16_t)(h->attributes & BATCH_ATTR_LOG_APPEND_TIME);
    if (has_horizon || set_horizon) {
        o.extra_attributes |= BATCH_ATTR_DELETE_HORIZON;
        o.delete_horizon_ms = horizon;
    }
    o.producer_id = h->producer_id;
    o.producer_epoch = h->producer_epoch;
    o.base_sequence = h->base_sequence;
    o.explicit_deltas = true;
    o.last_offset_delta = h->last_offset_delta;
    o.log_append_time = h->max_timestamp;
    uint8_t *out;
    size_t out_len;
    int e = batch_build(&o, recs, n, x->a, &out, &out_len);
    if (e != BATCH_OK)
        return corrupt(x->l, x->seg, -1, batch_strerror(e));
    batch_header nh;
    e = batch_parse_header(out, out_len, &nh);
    assert(e == BATCH_OK && nh.base_offset == h->base_offset && nh.last_offset_delta == h->last_offset_delta);
    return copy_batch(x, out, out_len, &nh);
}

/* Writes segments [g0, g1) of the view as one cleaned segment and swaps it
 * in. Returns STORAGE_OK, PLOG_CLEAN_STALE, GROUP_TOO_BIG or an error. */
static int clean_group(cleaner *c, plog *l, const plog_clean_view *v, int g0, int g1, clean_ctx *x) {
    storage_ctx *sc = plog_storage(l);
    const sl_vfs *vfs = storage_vfs(sc);
    uint32_t idx_entries = (uint32_t)v->cfg.segment_index_bytes / OIDX_ENTRY_SIZE;
    segment *out = segment_new(sc, plog_dir(l), v->segs[g0].base, idx_entries, v->cfg.index_interval_bytes);
    if (out == NULL)
        return STORAGE_KAFKA_STORAGE_ERROR;
    writer w = {.out = out, .buf = malloc(WRITE_CHUNK), .cap = WRITE_CHUNK};
    bool created = false, acquired = false;
    int rc = w.buf == NULL ? -ENOMEM : 0;
    if (rc == 0)
        rc = segment_set_tag(out, ".cleaned") == 0 ? segment_create_files(out) : -ENAMETOOLONG;
    if (rc == 0) {
        created = true;
        rc = segment_acquire(out);
        acquired = rc == 0;
    }
    out->compacted = true;
    x->w = &w;
    x->changed = g1 - g0 > 1;
    x->group_end = v->segs[g1 - 1].end;
    for (int i = g0; i < g1 && rc == 0; i++) {
        x->seg = &v->segs[i];
        x->st->bytes_read += v->segs[i].size;
        rc = for_each_batch(c, l, &v->segs[i], clean_batch, x);
    }
    if (rc == 0)
        rc = writer_flush(c, &w);
    bool unchanged = rc == 0 && !x->changed, committed = false;
    if (rc == 0 && !unchanged) {
        rc = segment_seal(out);
        if (rc == 0)
            rc = segment_flush(out, true);
        if (rc == 0)
            rc = vfs->fsync_dir(vfs->ctx, plog_dir(l));
        if (rc != 0) {
            LOG_WARN("cleaner", "%s: cannot write a cleaned segment: %s", plog_dir(l), strerror(-rc));
            rc = STORAGE_KAFKA_STORAGE_ERROR;
        }
    }
    int64_t written = out->size;
    if (rc == 0 && !unchanged) {
        segment *olds[GROUP_MAX_SEGS];
        for (int i = g0; i < g1; i++)
            olds[i - g0] = v->segs[i].seg;
        rc = plog_clean_swap(l, olds, g1 - g0, out);
        /* Unless the log changed first, the files are committed (or, after
         * a failed swap, left for the reopen to finish or drop). */
        committed = rc != PLOG_CLEAN_STALE;
    }
    if (rc == 0) {
        x->st->segments_in += g1 - g0;
        x->st->segments_out++;
        x->st->bytes_written += written;
    }
    if (acquired)
        segment_release(out);
    if (created && !committed)
        segment_delete_files(out);
    segment_unref(out);
    free(w.buf);
    if (rc < 0 && rc != GROUP_TOO_BIG) {
        LOG_WARN("cleaner", "%s: cannot write a cleaned segment: %s", plog_dir(l), strerror(-rc));
        rc = STORAGE_KAFKA_STORAGE_ERROR; /* an errno from the files */
    }
    return rc;
}

/* ---------------- a pass ---------------- */

int cleaner_clean(cleaner *c, plog *l, const cleaner_log_config *cfg, int64_t now_ms, bool force,
                  cleaner_stats *st) {
    plog_clean_view v;
    span sp;
    int rc = plog_clean_view_take(l, VIEW_MAX_SEGS, lag_needs_ts(cfg), &v);
    if (rc != STORAGE_OK) {
        memset(st, 0, sizeof *st);
        return rc;
    }
    measure_view(&v, cfg, now_ms, &sp, st);
    st->map_end = sp.first_dirty;
    if (sp.upto == 0 || (!st->due && !force))
        goto out;
    if (c->rbuf == NULL) {
        c->rbuf = malloc(READ_CHUNK);
        c->rcap = READ_CHUNK;
    }
    if (c->rbuf == NULL || map_alloc(c, st->dirty_bytes) != 0) {
        rc = STORAGE_KAFKA_STORAGE_ERROR;
        goto out;
    }
    /* Decoded records of one batch, its rebuilt copy and the record table. */
    arena a;
    arena_init(&a, (size_t)v.cfg.max_message_bytes * 64 * 3 + ((size_t)SEG_MAX_BATCH_BYTES * 2));

    /* 1. The map over the dirty section, until it is full. */
    map_ctx m = {c, l, NULL, &a, sp.first_dirty, sp.first_dirty, st};
    int i;
    for (i = sp.first; i < sp.upto; i++) {
        m.seg = &v.segs[i];
        st->bytes_read += v.segs[i].size;
        rc = for_each_batch(c, l, &v.segs[i], map_batch, &m);
        if (rc == STOP_MAP_FULL)
            break;
        if (rc == PLOG_CLEAN_STALE) {
            rc = STORAGE_OK; /* the log changed, or the pass was abandoned */
            goto done;
        }
        if (rc != 0)
            goto done;
        m.map_end = v.segs[i].end; /* the whole segment, gaps included */
    }
    rc = 0;
    if (i < sp.upto && m.map_end == sp.first_dirty && c->used == 0) {
        LOG_WARN("cleaner",
                 "%s: one batch at offset %" PRId64
                 " has more records than log.cleaner.dedupe.buffer.size holds keys; not cleaned",
                 plog_dir(l), sp.first_dirty);
        rc = STORAGE_RECORD_LIST_TOO_LARGE;
        goto done;
    }
    st->map_end = m.map_end;
    st->keys_mapped = (int64_t)c->used;

    /* 2. The segments below the map's end, in groups. */
    int nclean = 0;
    while (nclean < sp.upto && v.segs[nclean].base < m.map_end)
        nclean++;
    if (nclean == 0)
        goto done;
    /* Gaps may appear below the last group's end from the first swap on. */
    plog_clean_state cs = v.state;
    if (cs.gaps_below < v.segs[nclean - 1].end) {
        cs.gaps_below = v.segs[nclean - 1].end;
        if ((rc = plog_clean_state_set(l, &cs)) != STORAGE_OK)
            goto done;
    }
    clean_ctx x = {.c = c,
                   .l = l,
                   .cfg = cfg,
                   .a = &a,
                   .now_ms = now_ms,
                   .map_end = m.map_end,
                   .next_horizon_ms = INT64_MAX,
                   .st = st};
    int max_group = GROUP_MAX_SEGS;
    for (int g0 = 0; g0 < nclean;) {
        int g1 = g0 + 1;
        int64_t total = v.segs[g0].size;
        while (g1 < nclean && g1 - g0 < max_group && total + v.segs[g1].size <= v.cfg.segment_bytes &&
               v.segs[g1].end - 1 - v.segs[g0].base <= INT32_MAX) {
            total += v.segs[g1].size;
            g1++;
        }
        rc = clean_group(c, l, &v, g0, g1, &x);
        if (rc == GROUP_TOO_BIG && g1 - g0 > 1) {
            max_group = (g1 - g0) / 2;
            continue;
        }
        if (rc == GROUP_TOO_BIG) {
            LOG_WARN("cleaner", "%s: the cleaned segment %020" PRId64 " does not fit its index; not cleaned",
                     plog_dir(l), v.segs[g0].base);
            rc = STORAGE_RECORD_LIST_TOO_LARGE;
        }
        if (rc == PLOG_CLEAN_STALE) {
            rc = STORAGE_OK; /* the log changed: the next pass starts over */
            goto done;
        }
        if (rc != STORAGE_OK)
            goto done;
        max_group = GROUP_MAX_SEGS;
        g0 = g1;
    }
    cs.first_dirty = m.map_end;
    cs.next_horizon_ms = x.next_horizon_ms;
    rc = plog_clean_state_set(l, &cs);
done:
    arena_reset(&a);
    free(c->slots); /* the map's memory is held only during a pass */
    c->slots = NULL;
out:
    plog_clean_view_release(&v);
    return rc;
}
