/*
 * producer_state.h - one partition's idempotent producers: per producer id
 * its epoch and the last PSTATE_BATCHES batches it wrote (sequences,
 * offsets, timestamp), which is what deduplicates a producer's retries and
 * orders its batches.
 *
 * The rules (what a leader checks before appending a batch with a producer
 * id, pstate_check):
 *   - an epoch older than the producer's -> PSTATE_FENCED;
 *   - a newer epoch must start at sequence 0 -> else PSTATE_OUT_OF_ORDER;
 *   - the same epoch: a batch equal in first and last sequence to one of the
 *     retained batches -> PSTATE_DUPLICATE (with that batch's offsets: the
 *     producer's retry is answered as the original was); otherwise the first
 *     sequence must follow the newest batch's last (wrapping at INT32_MAX to
 *     0) -> else PSTATE_OUT_OF_ORDER;
 *   - an unknown producer id with a sequence other than 0 ->
 *     PSTATE_UNKNOWN_PRODUCER (its state expired or was never here; a
 *     KIP-360 client bumps its epoch and goes on).
 * pstate_update records an appended batch, on the leader after its append
 * and on a follower for every replicated batch (no checks: what the leader
 * wrote is the truth).
 *
 * Bounds: at most max_producers entries (the least recently used one goes
 * first) and each expires expiration_ms (producer.id.expiration.ms) after
 * its last batch (pstate_expire). Memory grows with the producers actually
 * seen.
 *
 * The snapshot is Kafka's producer snapshot layout, version 1:
 *   int16 version, uint32 crc32c (of everything after it), int32 count,
 *   count x { int64 producer id, int16 epoch, int32 last sequence,
 *             int64 last offset, int32 offset delta, int64 timestamp,
 *             int32 coordinator epoch, int64 current txn first offset }
 * It keeps the newest batch of each producer (as Kafka's does); the owner
 * names it `<20-digit offset>.snapshot`, the offset up to which it holds
 * the state, and rebuilds the rest from the log after it.
 *
 * Transactions: a transactional batch opens the producer's transaction at
 * its first offset (pstate_txn_data) unless one is open; a COMMIT or ABORT
 * marker closes it (pstate_txn_end), an ABORT adding (producer, first,
 * marker offset) to the aborted list, which read_committed fetches answer
 * from. The earliest open transaction bounds the last stable offset
 * (pstate_first_open). The snapshot carries each producer's open
 * transaction in its "current txn first offset" field (older snapshots
 * hold -1 there: none); the aborted list is its own small file
 * (pstate_aborted_encode: int16 version 0, uint32 crc32c of the rest,
 * int32 count, count x {int64 producer id, int64 first offset, int64 last
 * offset}), bounded by PSTATE_ABORTED_MAX (the oldest go first) and
 * trimmed to the log start. A producer with an open transaction is never
 * evicted by the LRU bound or expired.
 *
 * No I/O, no clock, no threads: events carry `now`; the owner serialises
 * calls (the partition's mutex).
 */
#ifndef SLUICE_STORAGE_PRODUCER_STATE_H
#define SLUICE_STORAGE_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSTATE_BATCHES           5
#define PSTATE_PRODUCERS_DEFAULT 10000
#define PSTATE_SNAPSHOT_VERSION  1
#define PSTATE_SNAPSHOT_HEADER   10 /* version, crc, count */
#define PSTATE_SNAPSHOT_ENTRY    46
#define PSTATE_ABORTED_MAX       100000
#define PSTATE_ABORTED_HEADER    10
#define PSTATE_ABORTED_ENTRY     24

typedef struct pstate_batch {
    int32_t first_seq, last_seq;
    int64_t first_offset, last_offset;
    int64_t timestamp; /* the batch's max timestamp */
} pstate_batch;

typedef struct pstate_entry {
    int64_t producer_id;
    int16_t epoch;
    int32_t n;    /* batches held, newest last: b[(head + n - 1) % PSTATE_BATCHES] */
    int32_t head; /* the oldest */
    pstate_batch b[PSTATE_BATCHES];
    int64_t touched_ms;          /* broker time of its last batch (expiration, LRU) */
    int64_t txn_first;           /* first offset of its ongoing transaction, -1: none */
    int32_t hnext, lprev, lnext; /* hash chain and LRU list (indices, -1: none) */
} pstate_entry;

typedef enum pstate_verdict {
    PSTATE_APPEND = 0,
    PSTATE_DUPLICATE,
    PSTATE_OUT_OF_ORDER,
    PSTATE_FENCED,
    PSTATE_UNKNOWN_PRODUCER,
} pstate_verdict;

typedef struct pstate pstate;

/* max_producers <= 0: PSTATE_PRODUCERS_DEFAULT; expiration_ms <= 0: never. NULL on OOM. */
pstate *pstate_create(int32_t max_producers, int64_t expiration_ms);
void pstate_destroy(pstate *s);
void pstate_set_limits(pstate *s, int32_t max_producers, int64_t expiration_ms);
void pstate_clear(pstate *s);

/* The sequence a batch of record_count records starting at first ends at. */
int32_t pstate_last_seq(int32_t first_seq, int32_t record_count);

/* Checks a batch a leader is about to append (see the top). *dup gets the
 * original batch for PSTATE_DUPLICATE; *cur_epoch the producer's epoch
 * (-1 unknown) for log lines. */
pstate_verdict pstate_check(const pstate *s, int64_t producer_id, int16_t epoch, int32_t first_seq,
                            int32_t last_seq, pstate_batch *dup, int16_t *cur_epoch);

/* Records an appended batch. A newer epoch replaces the producer's
 * batches. Returns 0, or -1 out of memory: the batch is not remembered (a
 * retry of it is then judged against the older batches, usually
 * OUT_OF_ORDER_SEQUENCE_NUMBER; a new producer's next batch
 * UNKNOWN_PRODUCER_ID). */
int pstate_update(pstate *s, int64_t producer_id, int16_t epoch, const pstate_batch *b, int64_t now);

/* The log was cut at offset: batches at or past it are forgotten (and
 * producers left without one). */
void pstate_truncate(pstate *s, int64_t offset);
/* Drops producers whose last batch is older than expiration_ms. Returns how many. */
int32_t pstate_expire(pstate *s, int64_t now);

int32_t pstate_count(const pstate *s);
/* The producer with this id, or NULL. */
const pstate_entry *pstate_get(const pstate *s, int64_t producer_id);
/* Entries in no particular order; i < pstate_count. */
const pstate_entry *pstate_at(const pstate *s, int32_t i);
static inline const pstate_batch *pstate_newest(const pstate_entry *e) {
    return e->n > 0 ? &e->b[(e->head + e->n - 1) % PSTATE_BATCHES] : NULL;
}

/* ---- transactions (see the top) ---- */
typedef struct pstate_aborted {
    int64_t producer_id, first_offset, last_offset;
} pstate_aborted;

/* A transactional batch of the producer was appended at first_offset (the
 * producer must have an entry: after pstate_update). */
void pstate_txn_data(pstate *s, int64_t producer_id, int64_t first_offset);
/* A marker at marker_offset ends the producer's open transaction (none
 * open: nothing). 0, or -1 when the aborted list is out of memory. */
int pstate_txn_end(pstate *s, int64_t producer_id, bool commit, int64_t marker_offset);
/* The first offset of the earliest open transaction, -1 when none. */
int64_t pstate_first_open(const pstate *s);
/* Aborted transactions whose range meets [from, to): up to max into out
 * (ordered by marker offset); the count. */
int32_t pstate_aborted_in(const pstate *s, int64_t from, int64_t to, pstate_aborted *out, int32_t max);
int32_t pstate_aborted_count(const pstate *s);
/* Drops aborted transactions that end before log_start. */
void pstate_aborted_trim(pstate *s, int64_t log_start);
size_t pstate_aborted_size(const pstate *s);
size_t pstate_aborted_encode(const pstate *s, uint8_t *buf, size_t cap);
/* Replaces the aborted list with the file's (untrusted): 0, or -1 with why
 * (the list is then empty). */
int pstate_aborted_decode(pstate *s, const uint8_t *buf, size_t len, char *why, size_t whyn);

/* The snapshot (see the top): its size, and encoding into buf (at least
 * that size). Returns bytes written. */
size_t pstate_snapshot_size(const pstate *s);
size_t pstate_snapshot_encode(const pstate *s, uint8_t *buf, size_t cap);
/* Loads a snapshot into s (cleared first). Untrusted bytes: 0, or -1 with
 * why set (bad version, crc, size, counts, an entry that cannot be), s then
 * empty. Entries get touched_ms = now. */
int pstate_snapshot_decode(pstate *s, const uint8_t *buf, size_t len, int64_t now, char *why, size_t whyn);

#endif
