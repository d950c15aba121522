/*
 * records.h - the records the transaction coordinator keeps in
 * `__transaction_state`: the key (the transactional id) and the value (the
 * transaction's metadata), in Kafka's layout
 * (../shared/kafka-protocol/records/transaction), so Kafka's tools can read
 * the topic.
 *
 *   key   v0: int16 version, string transactional id
 *   value v0: int16 version, int64 producer id, int16 epoch, int32 timeout
 *             ms, int8 status, nullable array of {string topic, int32
 *             array of partitions}, int64 last update ms, int64 start ms
 *   value v1: the same fields in the flexible encoding (compact strings and
 *             arrays, tagged fields; the tagged previous/next producer id and
 *             client transaction version are read and ignored)
 * The encoder writes v0. A null value (tombstone) removes the id.
 *
 * Decoded strings point into the input. Topics and partitions of a decoded
 * value come from the caller's arena. Untrusted bytes: every count is
 * checked against what remains and against TREC_PARTITIONS_MAX.
 */
#ifndef SLUICE_TXN_RECORDS_H
#define SLUICE_TXN_RECORDS_H

#include <stdint.h>

#include "core/arena.h"
#include "proto/wire.h"

#define TREC_PARTITIONS_MAX 100000 /* partitions of one transaction */
#define TREC_TXN_ID_MAX     32767

/* TransactionStatus values (Kafka's). */
typedef enum trec_status {
    TREC_EMPTY = 0,
    TREC_ONGOING = 1,
    TREC_PREPARE_COMMIT = 2,
    TREC_PREPARE_ABORT = 3,
    TREC_COMPLETE_COMMIT = 4,
    TREC_COMPLETE_ABORT = 5,
    TREC_DEAD = 6,
    TREC_PREPARE_EPOCH_FENCE = 7,
} trec_status;

typedef struct trec_tp {
    kstr topic;
    int32_t partition;
} trec_tp;

typedef struct trec_value {
    int64_t producer_id;
    int16_t epoch;
    int32_t timeout_ms;
    int8_t status;
    trec_tp *parts; /* one entry per partition */
    int32_t n_parts;
    int64_t update_ms;
    int64_t start_ms;
} trec_value;

/* Encoders: 0, or -1 when the arena is exhausted. The value's partitions
 * are grouped by topic as they come (consecutive entries of one topic share
 * a topic entry). */
int trec_encode_key(arena *a, kstr txn_id, kbytes *out);
int trec_encode_value(arena *a, const trec_value *v, kbytes *out);

/* Decoders: 0, or -1 for bytes that do not parse (unknown versions
 * included). */
int trec_decode_key(kbytes in, kstr *txn_id);
int trec_decode_value(kbytes in, arena *a, trec_value *out);

const char *trec_status_name(int8_t status);

#endif
