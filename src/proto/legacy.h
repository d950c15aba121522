/*
 * legacy.h - Kafka's legacy message sets (magic 0 and 1), used by clients
 * older than 0.11 (Produce v0-v2, Fetch v0-v3).
 *
 * An entry of a message set is
 *     offset int64, messageSize int32, then messageSize bytes of message:
 *     crc uint32 (CRC-32 IEEE of magic..end), magic int8, attributes int8,
 *     timestamp int64 (magic 1 only), key bytes, value bytes
 * where bytes are an int32 length (-1 null) and the data. attributes bits
 * 0-2 are the codec (gzip, snappy, lz4), bit 3 the timestamp type (magic 1,
 * 1 = LogAppendTime). A compressed message is a "wrapper" whose value is a
 * whole inner message set, compressed; wrappers never nest.
 *
 * Offsets: inner messages of a magic-0 wrapper carry their own offsets; those
 * of a magic-1 wrapper carry relative offsets 0..n-1 and the wrapper carries
 * the absolute offset of the last one, so inner absolute offset = wrapper
 * offset - (last relative - relative). Under a LogAppendTime wrapper, inner
 * messages take the wrapper's timestamp.
 *
 * Errors are batch_err values (batch.h) so the broker maps both formats to
 * Kafka error codes the same way. Nothing here allocates except the
 * decompression of wrappers, from the caller's arena and within a cap.
 *
 * Not supported: the mis-computed LZ4 frame header checksum that Kafka
 * clients before 0.10 wrote into magic-0 lz4 wrappers (such data fails with
 * BATCH_ECODEC).
 */
#ifndef SLUICE_PROTO_LEGACY_H
#define SLUICE_PROTO_LEGACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/wire.h"

#define LEGACY_LOG_OVERHEAD         12 /* offset + messageSize */
#define LEGACY_MIN_MESSAGE_V0       14 /* crc 4 + magic 1 + attributes 1 + key len 4 + value len 4 */
#define LEGACY_MIN_MESSAGE_V1       22 /* plus timestamp 8 */
#define LEGACY_ATTR_CODEC_MASK      0x07
#define LEGACY_ATTR_LOG_APPEND_TIME 0x08

/* One message, as a consumer would see it: inner messages of a wrapper are
 * returned one by one, never the wrapper itself. */
typedef struct legacy_message {
    int64_t offset;    /* absolute, see above */
    int64_t timestamp; /* -1 for magic 0 */
    int8_t magic;
    int8_t attributes; /* the message's own (the codec bits are 0 for messages returned) */
    bool log_append_time;
    kbytes key;   /* len -1 = null */
    kbytes value; /* len -1 = null */
} legacy_message;

typedef struct legacy_iter {
    wire_reader outer; /* the message set */
    wire_reader inner; /* the decompressed inner set of the current wrapper */
    bool in_wrapper;
    int8_t wrapper_magic;
    bool wrapper_lat;
    int64_t wrapper_offset;
    int64_t wrapper_timestamp;
    int64_t inner_last; /* offset field of the wrapper's last inner message */
    arena *a;
    size_t max_uncompressed; /* left for all wrappers together */
    int err;                 /* batch_err */
} legacy_iter;

/* Iterates the message set buf[0..len). Wrappers are decompressed into a
 * with at most max_uncompressed bytes in total. A message cut short at the
 * end is BATCH_ETRUNC (an old broker's fetch response may end so; a produce
 * request must not). */
void legacy_iter_init(legacy_iter *it, const uint8_t *buf, size_t len, arena *a, size_t max_uncompressed);
/* Returns true and fills m while messages remain; false at the end or on an
 * error (it->err). Checks each message's CRC, magic (0 or 1), attributes,
 * lengths; inner messages must be uncompressed and of the wrapper's magic. */
bool legacy_iter_next(legacy_iter *it, legacy_message *m);

/* Validates a whole message set (every CRC, every inner message), with a
 * private arena bounded by max_uncompressed. *count (may be NULL) gets the
 * number of messages, inner ones counted individually. */
int legacy_validate(const uint8_t *buf, size_t len, size_t max_uncompressed, int32_t *count);

/* The magic of the first message in buf, or -1 if fewer than 17 bytes. Both
 * formats keep magic at byte 16, so this tells a legacy set from batches. */
int legacy_peek_magic(const uint8_t *buf, size_t len);

/* Converts a legacy message set into one magic-2 batch (batch_build.h),
 * compressed with codec (0 for none). With keep_offsets the batch's base
 * offset is the first message's offset and deltas follow the messages'
 * offsets (which must then strictly increase); otherwise base offset 0 and
 * deltas 0..n-1, as for a produce request whose offsets the broker assigns.
 * Timestamps carry over (-1 for magic 0); if the first message uses
 * LogAppendTime the batch does too. Everything comes from arena a.
 * *decompressed (may be NULL) gets the bytes wrappers decompressed to (each
 * is decompressed twice: once to validate, once to convert). */
int legacy_to_batch(const uint8_t *buf, size_t len, arena *a, size_t max_uncompressed, int codec,
                    bool keep_offsets, uint8_t **out, size_t *out_len, size_t *decompressed);

/* Appends one message (entry) to w: used to build message sets for old
 * consumers and in tests. magic 0 ignores timestamp. The CRC is computed. */
void legacy_write_message(wire_writer *w, int8_t magic, int8_t attributes, int64_t offset, int64_t timestamp,
                          kbytes key, kbytes value);
/* Bytes legacy_write_message() will append. */
size_t legacy_message_size(int8_t magic, kbytes key, kbytes value);

#endif
