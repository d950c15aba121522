/*
 * purgatory.h - delayed operations waiting on partitions: a fetch waiting
 * for bytes, a produce waiting for the high watermark (acks=all once
 * replication lands), a follower fetch later.
 *
 * An operation is parked with the keys it watches (one per partition; any
 * stable pointer, in the broker the replica) and a deadline. purg_notify(key)
 * marks every operation watching key as woken; purg_take() hands the owner
 * the operations that are woken or past their deadline, removed from the
 * purgatory: the owner probes each (is there enough now?) and completes it,
 * or parks it again. purg_cancel() removes an operation without completing
 * it, at once: a client that disconnects takes its parked fetch with it.
 *
 * Memory and limits. An operation's struct is the owner's (embedded in its
 * request state); the purgatory allocates only the links from keys to
 * operations. There is no fixed pool: the owner sizes max_ops to the
 * number of connections (a connection has one request in flight at a
 * time), so a full purgatory cannot happen to well-behaved clients, and
 * purg_park() refusing (-1) is the owner's cue to answer at once. A parked
 * operation watches at most max_keys keys.
 *
 * No I/O, no clock: times are arguments. Not thread-safe: the owner holds a
 * mutex around every call (the broker: one per purgatory).
 *
 * Invariants: an operation is in exactly one of {not parked, waiting,
 * woken}; every parked operation is in the deadline heap once and linked
 * from each of its keys; count == waiting + woken.
 */
#ifndef SLUICE_REPLICA_PURGATORY_H
#define SLUICE_REPLICA_PURGATORY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct purg_link purg_link;

/* Owned by the caller; zero it before the first park. Fields are private. */
typedef struct purg_op {
    int64_t deadline;
    int32_t heap_pos; /* -1 when not parked */
    bool parked, woken;
    struct purg_op *next_woken;
    purg_link *links;
    int32_t n_links;
    void *owner; /* free for the owner's use */
} purg_op;

typedef struct purgatory purgatory;

purgatory *purg_create(int32_t max_ops, int32_t max_keys);
/* Frees the purgatory; operations still parked are simply forgotten (take
 * or cancel them first to complete them). */
void purg_destroy(purgatory *p);

/* Parks op watching keys[0..n) until deadline. 0, or -1 when the
 * purgatory is full, n exceeds max_keys or memory runs out (the op is then
 * not parked). An op parked already is moved to the new keys and deadline. */
int purg_park(purgatory *p, purg_op *op, const void *const *keys, int32_t n, int64_t deadline, int64_t now);
/* Wakes every op watching key. Cheap when none does. */
void purg_notify(purgatory *p, const void *key);
/* Wakes op itself if it is parked (a first probe right after parking). */
void purg_wake(purgatory *p, purg_op *op);
/* Wakes every parked op (shutdown: answer everyone now). */
void purg_notify_all(purgatory *p);
/* Removes op if it is parked. */
void purg_cancel(purgatory *p, purg_op *op);
/* Removes and returns up to max ops that are woken or whose deadline is
 * <= now; expired[i] says which expired. Woken ones come first, in the
 * order they were woken. */
int32_t purg_take(purgatory *p, int64_t now, purg_op **out, bool *expired, int32_t max);
/* INT64_MIN when some op is woken (take now), the earliest deadline, or
 * INT64_MAX when nothing is parked. */
int64_t purg_next_deadline(const purgatory *p);
int32_t purg_count(const purgatory *p);
bool purg_is_parked(const purg_op *op);

#endif
