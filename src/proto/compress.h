/*
 * compress.h - the four Kafka compression codecs, with bounded output.
 *
 * A compressed record batch (or legacy wrapper message) carries its records
 * as one compressed blob. This module turns such a blob back into bytes and
 * builds new ones; it knows nothing of records.
 *
 *   gzip   - RFC 1952 members (zlib); concatenated members are accepted.
 *   snappy - the xerial framing Java clients write (magic 82 'SNAPPY' 00,
 *            int32 version, int32 compatible version, then [int32 length]
 *            [raw snappy block] repeated) and plain raw snappy, told apart by
 *            the magic. compress_compress() writes the xerial framing.
 *   lz4    - the LZ4 frame format (with or without content size and
 *            checksums); concatenated frames are accepted.
 *   zstd   - zstd frames, decoded as a stream because producers may omit the
 *            content size; concatenated frames are accepted.
 *
 * Invariant: decompression never produces, and never allocates for output,
 * more than the caller's max_out bytes. A blob that would expand beyond it
 * (a decompression bomb) fails with COMPRESS_ELIMIT while only max_out bytes
 * (plus codec state of bounded size) were ever held.
 */
#ifndef SLUICE_PROTO_COMPRESS_H
#define SLUICE_PROTO_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

/* Codec numbers as in the low bits of Kafka's attributes fields. */
enum {
    COMPRESS_NONE = 0,
    COMPRESS_GZIP = 1,
    COMPRESS_SNAPPY = 2,
    COMPRESS_LZ4 = 3,
    COMPRESS_ZSTD = 4,
};

typedef enum compress_err {
    COMPRESS_OK = 0,
    COMPRESS_ECODEC,   /* not a codec this module knows (or COMPRESS_NONE) */
    COMPRESS_ECORRUPT, /* the input is not valid data for the codec, or truncated */
    COMPRESS_ELIMIT,   /* the output would exceed max_out */
    COMPRESS_ENOMEM,   /* an allocation (arena or codec state) failed */
} compress_err;

const char *compress_strerror(int err);
/* "gzip", "snappy", "lz4", "zstd", "none" or "unknown". */
const char *compress_codec_name(int codec);

/* Decompresses in[0..in_len) into memory from arena a. On success *out points
 * to *out_len bytes (*out may be NULL when *out_len is 0). At most max_out
 * bytes are produced. */
int compress_decompress(int codec, const uint8_t *in, size_t in_len, arena *a, size_t max_out, uint8_t **out,
                        size_t *out_len);

/* The same into a caller's buffer of cap bytes (cap is the limit). */
int compress_decompress_into(int codec, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                             size_t *out_len);

/* Most bytes compress_compress() can produce for in_len input bytes; 0 for
 * an unknown codec or an input too large (over 1 GiB) to compress here. */
size_t compress_bound(int codec, size_t in_len);

/* Compresses in[0..in_len) with the codec's default level into memory from
 * arena a (compress_bound() bytes are taken from it). */
int compress_compress(int codec, const uint8_t *in, size_t in_len, arena *a, uint8_t **out, size_t *out_len);

/* Decompresses into this thread's reusable buffer, which grows
 * geometrically up to max_out and is kept between calls, so that the produce
 * path validates compressed batches without an allocation per batch. *out
 * stays valid until the thread's next call of this function,
 * compress_scratch_trim() or compress_thread_release(). */
int compress_decompress_scratch(int codec, const uint8_t *in, size_t in_len, size_t max_out,
                                const uint8_t **out, size_t *out_len);

/* The scratch buffer a thread keeps after compress_scratch_trim(): larger
 * ones (a single big batch) are freed, so a thread holds at most this much
 * between batches and at most max_out while decoding one. */
#define COMPRESS_SCRATCH_KEEP ((size_t)4 << 20)
void compress_scratch_trim(void);

/* Frees this thread's cached decoder state: the zstd context (~100 KiB, kept
 * between calls so that each zstd batch does not pay for a fresh context)
 * and the scratch buffer. It is also freed automatically when the thread
 * exits (a pthread key destructor); calling this earlier is harmless. */
void compress_thread_release(void);

#endif
