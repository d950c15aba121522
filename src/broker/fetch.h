/*
 * fetch.h - the parts of Fetch that outlive one handler call: long-poll
 * waiters woken by appends, and incremental fetch sessions (KIP-227).
 *
 * Long poll. A Fetch that finds less than min_bytes waits up to max_wait_ms.
 * Its handler registers a waiter with fetch_wait(): the waiter is parked in
 * the purgatory (replica/purgatory.h) under every partition it reads, and the partition's replica machine,
 * through its `changed` action (partitions.h, meta.h), calls fetch_notify() when its high watermark, log
 * start, role or existence changes, which marks the waiters of that
 * partition as woken. The broker's driver thread (driver.h) owns the
 * waiters through the fetch task: it runs a waiter's ready() probe when it
 * is woken and its finish() when the probe says yes, when the deadline
 * passes, when its client disconnects, or when the broker shuts down.
 * finish() builds the response and calls breq_complete(). The handler's state
 * (topic references included) stays alive with the request until finish().
 *
 * The registration is race-free: a waiter is probed once right after it is
 * parked, and an append that lands after that wakes it again, so an
 * append is never missed between the handler's first look and the wait.
 *
 * Sessions. A session remembers the partitions a client fetches and what it
 * last told the client about each one (high watermark, log start), so a
 * client sends only changes and gets only changed partitions back. The cache
 * is bounded in sessions and in cached partitions; when full, the least
 * recently used session is evicted (its client gets FETCH_SESSION_ID_NOT_FOUND
 * and starts over with a full fetch, as the protocol intends).
 *
 * Down-conversion budget. Converting batches for old consumers (Fetch v0-3)
 * costs CPU out of all proportion to the request's size: a 1 MB gzip batch
 * can decompress to 1 GB. So that work is metered in bytes (read,
 * decompressed and written) against a broker-wide token bucket
 * (sluice.conversion.max.bytes.per.second). Decompressing a batch
 * reserves the most it may produce before it starts and gives back what it
 * did not use, so the bucket bounds how many decompressions run at once as
 * well as how much they do; reads and written bytes are charged afterwards
 * (which may leave the bucket in debt, paid off before the next
 * reservation). The per-request limit is the handler's (api_fetch.c).
 *
 * Limits: waiters are bounded by connections (one request in flight each;
 * a disconnect finishes its waiter at once); FETCH_WAITERS_MAX is the
 * purgatory's own bound (beyond it a fetch answers at once),
 * FETCH_SESSIONS_MAX sessions, FETCH_SESSION_PARTITIONS_MAX partitions in one
 * session and FETCH_SESSION_SLOTS_MAX across all of them.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef SLUICE_BROKER_FETCH_H
#define SLUICE_BROKER_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/request.h"
#include "broker/partitions.h"

#define FETCH_WAITERS_MAX            (1 << 20) /* with a config: min(max.connections, this) */
#define FETCH_WAITERS_DEFAULT        4096      /* without one (tests) */
#define FETCH_WAITER_PARTITIONS_MAX  20000
#define FETCH_SESSIONS_MAX           1000
#define FETCH_SESSION_PARTITIONS_MAX 10000
#define FETCH_SESSION_SLOTS_MAX      50000

typedef struct fetch_mgr fetch_mgr;

/* Creates b->fetch and registers its task with b->driver (before the
 * driver starts). 0, or -1 (logged). */
int fetch_mgr_start(broker *b);
/* Answers every waiting fetch now (each gets what is there) and stops the
 * thread; fetches that arrive later are answered at once. Call before the
 * network layer drains in-flight requests. Idempotent. */
void fetch_mgr_shutdown(broker *b);
/* Frees b->fetch (after fetch_mgr_shutdown). */
void fetch_mgr_destroy(broker *b);

/* Wakes the fetches waiting on p. Cheap when nobody waits. */
void fetch_notify(broker *b, rpart *p);
/* The connection conn_id closed: its waiting fetch (if any) is finished at
 * once (the answer goes nowhere) instead of holding its waiter and its
 * partitions until its deadline. Any thread. */
void fetch_abandon(broker *b, uint64_t conn_id);

/* The probe: true when the request should be answered now. */
typedef bool (*fetch_ready_fn)(breq *r, void *state);
/* Builds the response and completes (or aborts) r. Called exactly once. */
typedef void (*fetch_finish_fn)(breq *r, void *state, bool expired);

/* Parks r until ready() says yes, data arrives past deadline_ms (monotonic
 * clock, milliseconds) or shutdown. parts[0..n) are the partitions whose
 * appends wake it; they must stay valid until finish() (hold topic refs).
 * Returns false, having taken nothing, when the broker cannot wait (too many
 * waiters, shutting down): the caller answers at once. On true, r belongs to
 * the driver and the caller must not touch it. */
bool fetch_wait(broker *b, breq *r, rpart *const *parts, int n, int64_t deadline_ms, fetch_ready_fn ready,
                fetch_finish_fn finish, void *state);

/* Monotonic clock in milliseconds (the waiters' deadlines). */
int64_t fetch_now_ms(void);

/* ---- down-conversion budget ---------------------------------------------- */

/* Reserves n bytes of work (one batch's decompression). False, with nothing
 * taken, when the budget cannot cover all of it now. */
bool fetch_dconv_reserve(broker *b, int64_t n);
/* Settles a reservation: gives back what was not used, or charges what was
 * used beyond it (reserved 0: work done without a reservation). */
void fetch_dconv_settle(broker *b, int64_t reserved, int64_t used);
/* Milliseconds until n bytes can be reserved (0: now). */
int64_t fetch_dconv_wait_ms(broker *b, int64_t n);

/* ---- sessions ---------------------------------------------------------- */

/* What a session remembers of one partition. */
typedef struct fetch_session_part {
    char topic[MD_NAME_MAX + 1]; /* "" when only the id is known */
    kuuid topic_id;              /* all zero when only the name is known */
    int32_t partition;
    int64_t fetch_offset;
    int32_t max_bytes;
    int32_t current_leader_epoch;
    /* Last values sent to the client; -2 before the first response. */
    int64_t sent_hw, sent_lso, sent_log_start;
} fetch_session_part;

typedef struct fetch_session {
    int32_t id;
    int32_t epoch; /* the epoch the next request must carry */
    int64_t last_used_ms;
    fetch_session_part *parts;
    int n, cap;
} fetch_session;

/* Kafka's epoch after e (wraps to 1; 0 and -1 have meanings of their own). */
static inline int32_t fetch_next_epoch(int32_t e) { return e == INT32_MAX ? 1 : e + 1; }

/* Locks the session cache. The fetch_session_* calls below need it held. */
void fetch_sessions_lock(broker *b);
void fetch_sessions_unlock(broker *b);
/* A new empty session with epoch 1 expected next, evicting the least recently
 * used one if needed; NULL if n partitions cannot be cached. */
fetch_session *fetch_session_new(broker *b, int n);
fetch_session *fetch_session_find(broker *b, int32_t id);
void fetch_session_remove(broker *b, int32_t id);
/* Adds (or finds) the entry for a partition; NULL when a limit is reached. */
fetch_session_part *fetch_session_upsert(broker *b, fetch_session *s, const fetch_session_part *key,
                                         bool by_id);
/* Removes the entry; by_id picks the topic identity to match on. */
void fetch_session_forget(broker *b, fetch_session *s, const char *topic, kuuid id, int32_t partition,
                          bool by_id);

#endif
