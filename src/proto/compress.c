/*
 * compress.c - gzip, snappy, lz4 and zstd for record batches. See compress.h.
 *
 * Every decoder writes through a "sink": either the caller's fixed buffer or
 * a malloc'd buffer that grows geometrically but never past max_out. When
 * the sink is full at its limit the decoder is handed a one-byte probe
 * instead of real space: a stream that still has trailer bytes to consume
 * (gzip's CRC, zstd's checksum) can finish, while one that would emit even a
 * single further byte is caught as over the limit. Each decoder loop stops
 * when a call consumes no input and produces no output, so none can spin.
 *
 * The arena entry point decodes straight into arena memory when the output
 * size is known and verified in advance (snappy, zstd frames that declare
 * it); otherwise it decodes into a growing scratch buffer and copies the
 * result into the arena once, so the arena holds exactly the output.
 */
#include "proto/compress.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* Inputs above this are refused outright: no Kafka batch comes close. */
#define COMPRESS_MAX_INPUT ((size_t)1 << 30)
/* zstd frames may ask for a window this large at most (16 MiB of decoder
 * state); the default levels of every client stay far below it. */
#define COMPRESS_ZSTD_WINDOW_LOG_MAX 24
/* Block size of the xerial snappy framing we write, as the Java client does. */
#define COMPRESS_XERIAL_BLOCK  32768
#define COMPRESS_XERIAL_HEADER 16
/* First growth step of a scratch sink. */
#define COMPRESS_SINK_MIN 65536

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};

const char *compress_strerror(int err) {
    switch (err) {
    case COMPRESS_OK:
        return "ok";
    case COMPRESS_ECODEC:
        return "unsupported compression codec";
    case COMPRESS_ECORRUPT:
        return "corrupt compressed data";
    case COMPRESS_ELIMIT:
        return "decompressed size over the limit";
    case COMPRESS_ENOMEM:
        return "out of memory";
    }
    return "unknown error";
}

const char *compress_codec_name(int codec) {
    switch (codec) {
    case COMPRESS_NONE:
        return "none";
    case COMPRESS_GZIP:
        return "gzip";
    case COMPRESS_SNAPPY:
        return "snappy";
    case COMPRESS_LZ4:
        return "lz4";
    case COMPRESS_ZSTD:
        return "zstd";
    }
    return "unknown";
}

/* ---- output sink ------------------------------------------------------ */

typedef struct sink {
    uint8_t *p;
    size_t len;   /* bytes produced */
    size_t cap;   /* bytes available at p */
    size_t alloc; /* bytes allocated at p (>= cap; a reused buffer may be larger) */
    size_t max;   /* hard limit on len */
    bool fixed;   /* p belongs to the caller; cap == max */
    bool probing; /* the last window handed out was the probe byte */
    uint8_t probe;
} sink;

static void sink_fixed(sink *s, uint8_t *buf, size_t cap) {
    memset(s, 0, sizeof *s);
    s->p = buf;
    s->cap = cap;
    s->max = cap;
    s->fixed = true;
}

static void sink_scratch(sink *s, size_t max) {
    memset(s, 0, sizeof *s);
    s->max = max;
}

static int sink_resize(sink *s, size_t ncap) {
    assert(!s->fixed && ncap > s->cap && ncap <= s->max);
    if (ncap > s->alloc) {
        uint8_t *np = realloc(s->p, ncap);
        if (np == NULL)
            return COMPRESS_ENOMEM;
        s->p = np;
        s->alloc = ncap;
    }
    s->cap = ncap;
    return COMPRESS_OK;
}

/* Makes at least n more bytes writable, or reports the limit. */
static int sink_ensure(sink *s, size_t n) {
    if (s->cap - s->len >= n)
        return COMPRESS_OK;
    if (s->fixed || n > s->max - s->len)
        return COMPRESS_ELIMIT;
    size_t ncap = s->cap > s->max / 2 ? s->max : s->cap * 2;
    if (ncap < s->len + n)
        ncap = s->len + n;
    return sink_resize(s, ncap);
}

/* The space for the next decoder call: real space if any can be had, else
 * the probe byte. */
static int sink_window(sink *s, uint8_t **dst, size_t *avail) {
    s->probing = false;
    if (s->len == s->cap && s->cap < s->max && !s->fixed) {
        size_t ncap = s->cap < COMPRESS_SINK_MIN ? COMPRESS_SINK_MIN : s->cap;
        ncap = ncap > s->max - s->cap ? s->max : s->cap + ncap;
        int e = sink_resize(s, ncap);
        if (e != COMPRESS_OK)
            return e;
    }
    if (s->len < s->cap) {
        *dst = s->p + s->len;
        *avail = s->cap - s->len;
    } else {
        s->probing = true;
        *dst = &s->probe;
        *avail = 1;
    }
    return COMPRESS_OK;
}

static int sink_advance(sink *s, size_t produced) {
    if (s->probing)
        return produced ? COMPRESS_ELIMIT : COMPRESS_OK;
    assert(produced <= s->cap - s->len);
    s->len += produced;
    return COMPRESS_OK;
}

/* ---- gzip ------------------------------------------------------------- */

static int gzip_decode(const uint8_t *in, size_t in_len, sink *s) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (in_len == 0)
        return COMPRESS_ECORRUPT;
    if (inflateInit2(&z, 15 + 16) != Z_OK) /* 16: gzip wrapper only */
        return COMPRESS_ENOMEM;
    int rc = COMPRESS_ECORRUPT;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)in_len;
    for (;;) {
        uint8_t *dst;
        size_t avail;
        int e = sink_window(s, &dst, &avail);
        if (e != COMPRESS_OK) {
            rc = e;
            goto out;
        }
        z.next_out = dst;
        z.avail_out = avail > UINT_MAX ? UINT_MAX : (uInt)avail;
        uInt in_before = z.avail_in, out_before = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        e = sink_advance(s, out_before - z.avail_out);
        if (e != COMPRESS_OK) {
            rc = e;
            goto out;
        }
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0) {
                rc = COMPRESS_OK;
                goto out;
            }
            /* Only another gzip member may follow a member. */
            if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b)
                goto out;
            if (inflateReset(&z) != Z_OK)
                goto out;
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            rc = COMPRESS_ENOMEM;
            goto out;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            goto out; /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
        if (z.avail_in == in_before && z.avail_out == out_before)
            goto out; /* no progress: the input ends inside the stream */
    }
out:
    inflateEnd(&z);
    return rc;
}

/* ---- zstd ------------------------------------------------------------- */

/* Per-thread decoder state, kept for the thread's life: creating a zstd
 * context per batch would cost an allocation of ~100 KiB on every produce,
 * and the scratch buffer saves one per compressed batch. A pthread key's
 * destructor frees it when the thread exits, so threads without an exit hook
 * of their own (the network threads) do not leak it. */
typedef struct thread_state {
    ZSTD_DCtx *dctx;
    uint8_t *scratch;
    size_t scratch_alloc;
} thread_state;

static _Thread_local thread_state *tstate;
static pthread_key_t tstate_key;
static pthread_once_t tstate_once = PTHREAD_ONCE_INIT;

static void tstate_free(void *p) {
    thread_state *ts = p;
    if (ts == NULL)
        return;
    ZSTD_freeDCtx(ts->dctx);
    free(ts->scratch);
    free(ts);
}

static void tstate_key_init(void) {
    if (pthread_key_create(&tstate_key, tstate_free) != 0)
        abort(); /* only at the key limit (PTHREAD_KEYS_MAX), never in practice */
}

static thread_state *thread_state_get(void) {
    if (tstate == NULL) {
        pthread_once(&tstate_once, tstate_key_init);
        thread_state *ts = calloc(1, sizeof *ts);
        if (ts == NULL)
            return NULL;
        if (pthread_setspecific(tstate_key, ts) != 0) {
            free(ts);
            return NULL;
        }
        tstate = ts;
    }
    return tstate;
}

void compress_thread_release(void) {
    if (tstate == NULL)
        return;
    pthread_setspecific(tstate_key, NULL);
    tstate_free(tstate);
    tstate = NULL;
}

void compress_scratch_trim(void) {
    if (tstate != NULL && tstate->scratch_alloc > COMPRESS_SCRATCH_KEEP) {
        free(tstate->scratch);
        tstate->scratch = NULL;
        tstate->scratch_alloc = 0;
    }
}

static ZSTD_DCtx *zstd_dctx(void) {
    thread_state *ts = thread_state_get();
    if (ts == NULL)
        return NULL;
    if (ts->dctx == NULL) {
        ts->dctx = ZSTD_createDCtx();
        if (ts->dctx == NULL)
            return NULL;
        if (ZSTD_isError(
                ZSTD_DCtx_setParameter(ts->dctx, ZSTD_d_windowLogMax, COMPRESS_ZSTD_WINDOW_LOG_MAX))) {
            ZSTD_freeDCtx(ts->dctx);
            ts->dctx = NULL;
            return NULL;
        }
    } else {
        ZSTD_DCtx_reset(ts->dctx, ZSTD_reset_session_only);
    }
    return ts->dctx;
}

static int zstd_decode(const uint8_t *in, size_t in_len, sink *s) {
    ZSTD_DCtx *d = zstd_dctx();
    if (d == NULL)
        return COMPRESS_ENOMEM;
    if (in_len == 0)
        return COMPRESS_ECORRUPT;
    ZSTD_inBuffer ib = {in, in_len, 0};
    for (;;) {
        uint8_t *dst;
        size_t avail;
        int e = sink_window(s, &dst, &avail);
        if (e != COMPRESS_OK)
            return e;
        ZSTD_outBuffer ob = {dst, avail, 0};
        size_t in_before = ib.pos;
        size_t ret = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(ret)) {
            ZSTD_ErrorCode code = ZSTD_getErrorCode(ret);
            if (code == ZSTD_error_memory_allocation)
                return COMPRESS_ENOMEM;
            if (code == ZSTD_error_frameParameter_windowTooLarge)
                return COMPRESS_ELIMIT;
            return COMPRESS_ECORRUPT;
        }
        e = sink_advance(s, ob.pos);
        if (e != COMPRESS_OK)
            return e;
        /* 0: a frame is complete and flushed; more frames may follow. */
        if (ret == 0 && ib.pos == ib.size)
            return COMPRESS_OK;
        if (ob.pos == 0 && ib.pos == in_before)
            return COMPRESS_ECORRUPT;
    }
}

/* The total output of a run of zstd frames when every frame declares it
 * (stable API only: walk the frames one by one). */
static bool zstd_known_size(const uint8_t *in, size_t in_len, size_t *n) {
    size_t pos = 0, total = 0;
    while (pos < in_len) {
        unsigned long long fcs = ZSTD_getFrameContentSize(in + pos, in_len - pos);
        if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs == ZSTD_CONTENTSIZE_ERROR || fcs > SIZE_MAX - total)
            return false;
        size_t fsz = ZSTD_findFrameCompressedSize(in + pos, in_len - pos);
        if (ZSTD_isError(fsz) || fsz == 0)
            return false;
        total += (size_t)fcs;
        pos += fsz;
    }
    *n = total;
    return pos > 0;
}

/* ---- lz4 -------------------------------------------------------------- */

static int lz4_decode(const uint8_t *in, size_t in_len, sink *s) {
    LZ4F_dctx *d = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return COMPRESS_ENOMEM;
    int rc = COMPRESS_ECORRUPT;
    size_t pos = 0;
    for (;;) {
        uint8_t *dst;
        size_t avail;
        int e = sink_window(s, &dst, &avail);
        if (e != COMPRESS_OK) {
            rc = e;
            goto out;
        }
        size_t dst_n = avail, src_n = in_len - pos;
        size_t ret = LZ4F_decompress(d, dst, &dst_n, in + pos, &src_n, NULL);
        if (LZ4F_isError(ret))
            goto out;
        e = sink_advance(s, dst_n);
        if (e != COMPRESS_OK) {
            rc = e;
            goto out;
        }
        pos += src_n;
        /* 0: a frame ended (the context is ready for the next one). */
        if (ret == 0 && pos == in_len) {
            rc = COMPRESS_OK;
            goto out;
        }
        if (dst_n == 0 && src_n == 0)
            goto out; /* no progress: truncated */
    }
out:
    LZ4F_freeDecompressionContext(d);
    return rc;
}

/* ---- snappy ----------------------------------------------------------- */

static bool is_xerial(const uint8_t *in, size_t in_len) {
    return in_len >= sizeof xerial_magic && memcmp(in, xerial_magic, sizeof xerial_magic) == 0;
}

/* Calls fn(chunk, len, ctx) for each raw snappy block of the input: the
 * whole input when raw, each framed chunk when xerial. */
typedef int (*snappy_chunk_fn)(const uint8_t *chunk, size_t len, void *ctx);

static int snappy_walk(const uint8_t *in, size_t in_len, snappy_chunk_fn fn, void *ctx) {
    if (!is_xerial(in, in_len))
        return fn(in, in_len, ctx);
    if (in_len < COMPRESS_XERIAL_HEADER)
        return COMPRESS_ECORRUPT;
    size_t pos = COMPRESS_XERIAL_HEADER;
    while (pos < in_len) {
        if (in_len - pos < 4)
            return COMPRESS_ECORRUPT;
        uint32_t clen = ((uint32_t)in[pos] << 24) | ((uint32_t)in[pos + 1] << 16) |
                        ((uint32_t)in[pos + 2] << 8) | in[pos + 3];
        pos += 4;
        if (clen > in_len - pos)
            return COMPRESS_ECORRUPT;
        if (clen > 0) {
            int e = fn(in + pos, clen, ctx);
            if (e != COMPRESS_OK)
                return e;
        }
        pos += clen;
    }
    return COMPRESS_OK;
}

typedef struct snappy_size_ctx {
    size_t total;
    size_t max;
} snappy_size_ctx;

/* Sums declared block sizes; a block that does not decode to exactly its
 * declared size is rejected here, before any output space is committed. */
static int snappy_size_chunk(const uint8_t *chunk, size_t len, void *vctx) {
    snappy_size_ctx *c = vctx;
    size_t n;
    if (snappy_uncompressed_length((const char *)chunk, len, &n) != SNAPPY_OK)
        return COMPRESS_ECORRUPT;
    if (n > c->max - c->total)
        return COMPRESS_ELIMIT;
    if (snappy_validate_compressed_buffer((const char *)chunk, len) != SNAPPY_OK)
        return COMPRESS_ECORRUPT;
    c->total += n;
    return COMPRESS_OK;
}

static int snappy_decode_chunk(const uint8_t *chunk, size_t len, void *vctx) {
    sink *s = vctx;
    size_t n;
    if (snappy_uncompressed_length((const char *)chunk, len, &n) != SNAPPY_OK)
        return COMPRESS_ECORRUPT;
    int e = sink_ensure(s, n);
    if (e != COMPRESS_OK)
        return e;
    size_t out_n = n;
    /* A block declaring no output is still checked whole, as the sizing
     * walk checks it, so every entry point agrees on what is corrupt. */
    if (n == 0 && snappy_validate_compressed_buffer((const char *)chunk, len) != SNAPPY_OK)
        return COMPRESS_ECORRUPT;
    if (n > 0 && snappy_uncompress((const char *)chunk, len, (char *)s->p + s->len, &out_n) != SNAPPY_OK)
        return COMPRESS_ECORRUPT;
    if (out_n != n)
        return COMPRESS_ECORRUPT;
    s->len += n;
    return COMPRESS_OK;
}

static int snappy_decode(const uint8_t *in, size_t in_len, sink *s) {
    return snappy_walk(in, in_len, snappy_decode_chunk, s);
}

/* ---- decompression entry points --------------------------------------- */

static int decode(int codec, const uint8_t *in, size_t in_len, sink *s) {
    if (in_len > COMPRESS_MAX_INPUT)
        return COMPRESS_ELIMIT;
    switch (codec) {
    case COMPRESS_GZIP:
        return gzip_decode(in, in_len, s);
    case COMPRESS_SNAPPY:
        return snappy_decode(in, in_len, s);
    case COMPRESS_LZ4:
        return lz4_decode(in, in_len, s);
    case COMPRESS_ZSTD:
        return zstd_decode(in, in_len, s);
    }
    return COMPRESS_ECODEC;
}

int compress_decompress_into(int codec, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                             size_t *out_len) {
    assert(in != NULL || in_len == 0);
    assert(out != NULL || cap == 0);
    sink s;
    sink_fixed(&s, out, cap);
    *out_len = 0;
    int e = decode(codec, in, in_len, &s);
    if (e == COMPRESS_OK)
        *out_len = s.len;
    return e;
}

/* Output size known before decoding, verified by the codec while decoding. */
static int known_size(int codec, const uint8_t *in, size_t in_len, size_t max_out, size_t *n, bool *known) {
    *known = false;
    if (codec == COMPRESS_SNAPPY) {
        snappy_size_ctx c = {0, max_out};
        int e = snappy_walk(in, in_len, snappy_size_chunk, &c);
        if (e != COMPRESS_OK)
            return e;
        *n = c.total;
        *known = true;
    } else if (codec == COMPRESS_ZSTD && in_len <= COMPRESS_MAX_INPUT && zstd_known_size(in, in_len, n)) {
        if (*n > max_out)
            return COMPRESS_ELIMIT;
        *known = true;
    }
    return COMPRESS_OK;
}

int compress_decompress(int codec, const uint8_t *in, size_t in_len, arena *a, size_t max_out, uint8_t **out,
                        size_t *out_len) {
    assert(in != NULL || in_len == 0);
    *out = NULL;
    *out_len = 0;
    if (codec < COMPRESS_GZIP || codec > COMPRESS_ZSTD)
        return COMPRESS_ECODEC;
    if (in_len > COMPRESS_MAX_INPUT)
        return COMPRESS_ELIMIT;

    size_t n = 0;
    bool known;
    int e = known_size(codec, in, in_len, max_out, &n, &known);
    if (e != COMPRESS_OK)
        return e;
    if (known) {
        uint8_t *buf = NULL;
        if (n > 0 && (buf = arena_alloc(a, n)) == NULL)
            return COMPRESS_ENOMEM;
        size_t got;
        e = compress_decompress_into(codec, in, in_len, buf, n, &got);
        if (e != COMPRESS_OK)
            return e;
        *out = got ? buf : NULL;
        *out_len = got;
        return COMPRESS_OK;
    }

    sink s;
    sink_scratch(&s, max_out);
    e = decode(codec, in, in_len, &s);
    if (e != COMPRESS_OK)
        goto done;
    if (s.len > 0) {
        uint8_t *buf = arena_alloc(a, s.len);
        if (buf == NULL) {
            e = COMPRESS_ENOMEM;
            goto done;
        }
        memcpy(buf, s.p, s.len);
        *out = buf;
        *out_len = s.len;
    }
done:
    free(s.p);
    return e;
}

int compress_decompress_scratch(int codec, const uint8_t *in, size_t in_len, size_t max_out,
                                const uint8_t **out, size_t *out_len) {
    assert(in != NULL || in_len == 0);
    *out = NULL;
    *out_len = 0;
    if (codec < COMPRESS_GZIP || codec > COMPRESS_ZSTD)
        return COMPRESS_ECODEC;
    thread_state *ts = thread_state_get();
    if (ts == NULL)
        return COMPRESS_ENOMEM;
    /* A growing sink over the kept buffer: it starts with what the buffer
     * already holds (never more than max_out of it) and reallocates only
     * past that, so a thread's steady state allocates nothing. */
    sink s;
    sink_scratch(&s, max_out);
    s.p = ts->scratch;
    s.alloc = ts->scratch_alloc;
    s.cap = s.alloc < max_out ? s.alloc : max_out;
    int e = decode(codec, in, in_len, &s);
    ts->scratch = s.p;
    ts->scratch_alloc = s.alloc;
    if (e != COMPRESS_OK)
        return e;
    *out = s.len ? s.p : NULL;
    *out_len = s.len;
    return COMPRESS_OK;
}

/* ---- compression ------------------------------------------------------ */

static LZ4F_preferences_t lz4_prefs(void) {
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof p);
    /* 64 KiB independent blocks without content size, as the Java client
     * writes them, so any consumer can read what we produce. */
    p.frameInfo.blockSizeID = LZ4F_max64KB;
    p.frameInfo.blockMode = LZ4F_blockIndependent;
    return p;
}

size_t compress_bound(int codec, size_t in_len) {
    if (in_len > COMPRESS_MAX_INPUT)
        return 0;
    switch (codec) {
    case COMPRESS_GZIP:
        /* compressBound() covers deflate plus zlib's 6-byte wrapper; gzip's
         * header and trailer take 18. */
        return compressBound((uLong)in_len) + 32;
    case COMPRESS_SNAPPY: {
        size_t full = in_len / COMPRESS_XERIAL_BLOCK, rest = in_len % COMPRESS_XERIAL_BLOCK;
        size_t n = COMPRESS_XERIAL_HEADER + full * (4 + snappy_max_compressed_length(COMPRESS_XERIAL_BLOCK));
        if (rest)
            n += 4 + snappy_max_compressed_length(rest);
        return n;
    }
    case COMPRESS_LZ4: {
        LZ4F_preferences_t p = lz4_prefs();
        return LZ4F_compressFrameBound(in_len, &p);
    }
    case COMPRESS_ZSTD:
        return ZSTD_compressBound(in_len);
    }
    return 0;
}

static int gzip_encode(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return COMPRESS_ENOMEM;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return zr == Z_STREAM_END ? COMPRESS_OK : COMPRESS_ENOMEM;
}

static int snappy_encode(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len) {
    size_t pos = 0;
    memcpy(out, xerial_magic, sizeof xerial_magic);
    /* version 1, minimum compatible version 1 */
    static const uint8_t versions[8] = {0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(out + 8, versions, 8);
    size_t o = COMPRESS_XERIAL_HEADER;
    while (pos < in_len) {
        size_t n = in_len - pos > COMPRESS_XERIAL_BLOCK ? COMPRESS_XERIAL_BLOCK : in_len - pos;
        size_t clen = cap - o - 4;
        assert(cap - o >= 4 + snappy_max_compressed_length(n));
        if (snappy_compress((const char *)in + pos, n, (char *)out + o + 4, &clen) != SNAPPY_OK)
            return COMPRESS_ENOMEM;
        out[o] = (uint8_t)(clen >> 24);
        out[o + 1] = (uint8_t)(clen >> 16);
        out[o + 2] = (uint8_t)(clen >> 8);
        out[o + 3] = (uint8_t)clen;
        o += 4 + clen;
        pos += n;
    }
    *out_len = o;
    return COMPRESS_OK;
}

int compress_compress(int codec, const uint8_t *in, size_t in_len, arena *a, uint8_t **out, size_t *out_len) {
    assert(in != NULL || in_len == 0);
    *out = NULL;
    *out_len = 0;
    if (codec < COMPRESS_GZIP || codec > COMPRESS_ZSTD)
        return COMPRESS_ECODEC;
    size_t cap = compress_bound(codec, in_len);
    if (cap == 0)
        return COMPRESS_ELIMIT;
    uint8_t *buf = arena_alloc(a, cap);
    if (buf == NULL)
        return COMPRESS_ENOMEM;
    int e = COMPRESS_ENOMEM;
    size_t n = 0;
    switch (codec) {
    case COMPRESS_GZIP:
        e = gzip_encode(in, in_len, buf, cap, &n);
        break;
    case COMPRESS_SNAPPY:
        e = snappy_encode(in, in_len, buf, cap, &n);
        break;
    case COMPRESS_LZ4: {
        LZ4F_preferences_t p = lz4_prefs();
        n = LZ4F_compressFrame(buf, cap, in, in_len, &p);
        e = LZ4F_isError(n) ? COMPRESS_ENOMEM : COMPRESS_OK;
        break;
    }
    case COMPRESS_ZSTD:
        n = ZSTD_compress(buf, cap, in, in_len, ZSTD_CLEVEL_DEFAULT);
        e = ZSTD_isError(n) ? COMPRESS_ENOMEM : COMPRESS_OK;
        break;
    }
    if (e != COMPRESS_OK)
        return e;
    assert(n <= cap);
    *out = buf;
    *out_len = n;
    return COMPRESS_OK;
}
