/*
 * metrics.h - the broker's metric registry: counters and latency histograms
 * that the request path bumps, and the Prometheus text format they are
 * written in.
 *
 * What it owns. Per-API request counts and latency histograms (split into
 * Kafka's stages: queue, local, remote, total), broker-wide produce and
 * fetch counters, and a bounded table of per-topic counters (messages and
 * bytes in, bytes out, produce and fetch requests and failures). Gauges that
 * describe state (log sizes, offsets, lag, connections) are not kept here:
 * the collector (broker/observe.c) reads them from their owners at scrape
 * time, so they cost nothing between scrapes.
 *
 * Cost on the hot path. No lock is taken to count. Broker-wide counters and
 * histograms live in cache-line aligned shards; each of the first
 * OBS_SHARDS threads that counts owns one (a thread-local index handed out
 * once), so a bump is a relaxed load and store, no locked instruction;
 * threads beyond them share one more shard with relaxed atomic adds. A
 * scrape sums the shards. Per-topic counters are split in
 * OBS_TOPIC_STRIPES cache-line stripes picked by the thread's index, each
 * bumped with a relaxed atomic add, so threads writing one hot topic mostly
 * use different lines; finding the entry is a hash and a lock-free probe
 * (entries are published with release stores and never removed). Only the
 * first sight of a topic takes the table's mutex.
 *
 * Limits. At most `max_topics` topic entries (a topic beyond it is counted
 * in the broker-wide totals only, and in obs_topics_dropped). A topic keeps
 * its entry when deleted; the collector writes only topics that exist.
 *
 * Threads. Everything may be called from any thread; reads of a counter
 * while it is being bumped see either value (scrapes are not atomic
 * snapshots across counters, as in Kafka's JMX).
 */
#ifndef SLUICE_OBS_METRICS_H
#define SLUICE_OBS_METRICS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Shards owned by one thread each; threads beyond them share one more
 * shard, bumped with atomic adds. */
#define OBS_SHARDS 32
/* API keys with their own series; keys at or above it share the last slot
 * (the broker serves none of them). */
#define OBS_API_KEYS 64
/* Stripes of a topic's counters: threads bump the stripe of their shard
 * index, so threads on one hot topic rarely share a cache line. */
#define OBS_TOPIC_STRIPES 8
/* Latency buckets: upper bounds 2^(i-3) ms for i < OBS_HIST_FINITE (0.125 ms
 * to 32768 ms), then +Inf. */
#define OBS_HIST_FINITE  19
#define OBS_HIST_BUCKETS (OBS_HIST_FINITE + 1)
#define OBS_TOPICS_MAX   1000000 /* most topic entries whatever the config says */

typedef enum obs_stage {
    OBS_STAGE_QUEUE = 0,      /* frame complete -> a handler thread took it */
    OBS_STAGE_LOCAL,          /* the handler working on it */
    OBS_STAGE_REMOTE,         /* parked: waiting for data, a rebalance, replicas */
    OBS_STAGE_TOTAL,          /* frame complete -> response handed to the network layer */
    OBS_STAGE_RESPONSE_QUEUE, /* handed over -> a network thread took it */
    OBS_STAGE_SEND,           /* a network thread took it -> written whole */
    OBS_STAGES
} obs_stage;

typedef struct obs_hist {
    _Atomic uint64_t bucket[OBS_HIST_BUCKETS]; /* not cumulative: one count per bucket */
    _Atomic uint64_t sum_ns;
} obs_hist;

/* A snapshot of a histogram (summed over shards). */
typedef struct obs_hist_snap {
    uint64_t bucket[OBS_HIST_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;
} obs_hist_snap;

typedef struct obs_counters {
    uint64_t messages_in, bytes_in, bytes_out;
    uint64_t produce_requests, produce_failed, fetch_requests, fetch_failed;
} obs_counters;

typedef struct obs_shard {
    bool shared; /* the overflow shard: more than one thread bumps it */
    _Atomic uint64_t requests[OBS_API_KEYS];
    _Atomic uint64_t closed[OBS_API_KEYS]; /* answered by closing the connection */
    obs_hist lat[OBS_API_KEYS][OBS_STAGES];
    _Atomic uint64_t messages_in, bytes_in, bytes_out;
    _Atomic uint64_t produce_requests, produce_failed, fetch_requests, fetch_failed;
    _Atomic uint64_t malformed; /* frames whose header did not parse or whose API is not served */
} __attribute__((aligned(64))) obs_shard;

typedef struct obs_topic_stripe {
    _Atomic uint64_t messages_in, bytes_in, bytes_out;
    _Atomic uint64_t produce_requests, produce_failed, fetch_requests, fetch_failed;
} __attribute__((aligned(64))) obs_topic_stripe;

typedef struct obs_topic {
    uint32_t hash;
    uint32_t len;
    char name[256];
    obs_topic_stripe stripe[OBS_TOPIC_STRIPES];
} __attribute__((aligned(64))) obs_topic;

typedef struct obs_metrics {
    bool enabled;
    obs_shard shard[OBS_SHARDS + 1]; /* the last: shared by threads beyond OBS_SHARDS */
    /* topic table: open addressing, cap a power of two >= 2 * max_topics */
    _Atomic(obs_topic *) *slots;
    size_t cap;
    int max_topics;
    atomic_int n_topics;
    _Atomic uint64_t topics_dropped;
    pthread_mutex_t mu; /* inserts only */
    int64_t start_wall_ms;
} obs_metrics;

/* A registry counting when `enabled` (false: every bump is a no-op, for the
 * overhead benchmark), with room for max_topics topic entries (0: none).
 * NULL on OOM. */
obs_metrics *obs_metrics_create(bool enabled, int max_topics);
void obs_metrics_destroy(obs_metrics *m);

/* The calling thread's shard. */
extern _Thread_local int obs_tls_shard;
int obs_pick_shard(void);
static inline int obs_my_index(void) {
    int i = obs_tls_shard;
    return i >= 0 ? i : obs_pick_shard();
}
static inline obs_shard *obs_my_shard(obs_metrics *m) { return &m->shard[obs_my_index()]; }

static inline void obs_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* A bump of a shard's counter: the owner alone writes an owned shard, so a
 * relaxed load and store do (no locked instruction); readers see the old
 * or the new value. The shared shard takes atomic adds. */
static inline void obs_bump(obs_shard *s, _Atomic uint64_t *c, uint64_t n) {
    if (__builtin_expect(s->shared, 0))
        obs_add(c, n);
    else
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Bucket of a duration: the first i with ns <= 2^(i-3) ms. */
static inline int obs_bucket_of(int64_t ns) {
    if (ns <= 125000)
        return 0;
    uint64_t units = ((uint64_t)ns + 124999) / 125000; /* eighths of a ms, rounded up */
    int b = 64 - __builtin_clzll(units - 1);           /* ceil(log2(units)) */
    return b < OBS_HIST_FINITE ? b : OBS_HIST_FINITE;
}

static inline void obs_hist_add(obs_shard *s, obs_hist *h, int64_t ns) {
    if (ns < 0)
        ns = 0;
    obs_bump(s, &h->bucket[obs_bucket_of(ns)], 1);
    obs_bump(s, &h->sum_ns, (uint64_t)ns);
}

static inline int obs_api_slot(int key) { return key >= 0 && key < OBS_API_KEYS ? key : OBS_API_KEYS - 1; }

/* One request of API `key` answered (closed: by closing the connection).
 * Durations in ns; remote may be 0. */
static inline void obs_request_done(obs_metrics *m, int key, int64_t queue, int64_t local, int64_t remote,
                                    int64_t total, bool closed) {
    if (m == NULL || !m->enabled)
        return;
    obs_shard *s = obs_my_shard(m);
    int k = obs_api_slot(key);
    obs_bump(s, &s->requests[k], 1);
    if (closed)
        obs_bump(s, &s->closed[k], 1);
    obs_hist_add(s, &s->lat[k][OBS_STAGE_QUEUE], queue);
    obs_hist_add(s, &s->lat[k][OBS_STAGE_LOCAL], local);
    obs_hist_add(s, &s->lat[k][OBS_STAGE_REMOTE], remote);
    obs_hist_add(s, &s->lat[k][OBS_STAGE_TOTAL], total);
}

/* A response of API `key` was written: its time in the response queue and
 * sending it (on a network thread). */
static inline void obs_response_sent(obs_metrics *m, int key, int64_t queue, int64_t send) {
    if (m == NULL || !m->enabled)
        return;
    obs_shard *s = obs_my_shard(m);
    int k = obs_api_slot(key);
    obs_hist_add(s, &s->lat[k][OBS_STAGE_RESPONSE_QUEUE], queue);
    obs_hist_add(s, &s->lat[k][OBS_STAGE_SEND], send);
}

static inline void obs_malformed(obs_metrics *m) {
    if (m != NULL && m->enabled) {
        obs_shard *s = obs_my_shard(m);
        obs_bump(s, &s->malformed, 1);
    }
}

/* The entry of a topic, created on first use; NULL when disabled or the
 * table is full. obs_topic_of checks that inline first. */
obs_topic *obs_topic_get(obs_metrics *m, const char *name, size_t len);
/* The entry of a topic if it has one (never creates it). */
obs_topic *obs_topic_find(obs_metrics *m, const char *name, size_t len);
static inline obs_topic *obs_topic_of(obs_metrics *m, const char *name, size_t len) {
    return m != NULL && m->cap != 0 ? obs_topic_get(m, name, len) : NULL;
}

/* Produce to one topic: `partitions` partition entries, `failed` of them
 * refused; messages and bytes appended. t may be NULL (not tracked). */
static inline void obs_produced(obs_metrics *m, obs_topic *t, uint64_t messages, uint64_t bytes,
                                bool failed) {
    if (m == NULL || !m->enabled)
        return;
    int i = obs_my_index();
    obs_shard *s = &m->shard[i];
    obs_bump(s, &s->produce_requests, 1);
    if (failed)
        obs_bump(s, &s->produce_failed, 1);
    obs_bump(s, &s->messages_in, messages);
    obs_bump(s, &s->bytes_in, bytes);
    if (t != NULL) {
        obs_topic_stripe *st = &t->stripe[i % OBS_TOPIC_STRIPES];
        obs_add(&st->produce_requests, 1);
        if (failed)
            obs_add(&st->produce_failed, 1);
        if (messages)
            obs_add(&st->messages_in, messages);
        if (bytes)
            obs_add(&st->bytes_in, bytes);
    }
}

/* Fetch from one topic: bytes of records in the answer, failed when an
 * error was answered for one of its partitions. */
static inline void obs_fetched(obs_metrics *m, obs_topic *t, uint64_t bytes, bool failed) {
    if (m == NULL || !m->enabled)
        return;
    int i = obs_my_index();
    obs_shard *s = &m->shard[i];
    obs_bump(s, &s->fetch_requests, 1);
    if (failed)
        obs_bump(s, &s->fetch_failed, 1);
    obs_bump(s, &s->bytes_out, bytes);
    if (t != NULL) {
        obs_topic_stripe *st = &t->stripe[i % OBS_TOPIC_STRIPES];
        obs_add(&st->fetch_requests, 1);
        if (failed)
            obs_add(&st->fetch_failed, 1);
        if (bytes)
            obs_add(&st->bytes_out, bytes);
    }
}

/* ---- reading ---------------------------------------------------------------- */

void obs_totals(obs_metrics *m, obs_counters *out, uint64_t *malformed);
void obs_topic_counters(obs_topic *t, obs_counters *out);
/* Requests of one API key, and how many were closed. */
void obs_api_counts(obs_metrics *m, int key, uint64_t *requests, uint64_t *closed);
void obs_api_hist(obs_metrics *m, int key, obs_stage stage, obs_hist_snap *out);
/* Visits every topic entry; fn returns false to stop. */
void obs_topics_each(obs_metrics *m, bool (*fn)(void *ctx, obs_topic *t), void *ctx);
/* Upper bound of bucket i in ms (i < OBS_HIST_FINITE). */
double obs_bucket_le_ms(int i);

/* ---- text output ------------------------------------------------------------ */

/* A growing text buffer with a hard size limit: once an append would pass
 * `max`, the buffer is marked full and stops growing (what was written
 * stays). */
typedef struct obs_buf {
    char *p;
    size_t len, cap, max;
    bool full; /* an append did not fit (or memory ran out) */
} obs_buf;

void obs_buf_init(obs_buf *b, size_t max);
void obs_buf_free(obs_buf *b);
void obs_buf_put(obs_buf *b, const char *s, size_t n);
void obs_buf_puts(obs_buf *b, const char *s);
void obs_buf_printf(obs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the text (NUL-terminated) from b; the caller frees it. */
char *obs_buf_take(obs_buf *b, size_t *len);

/* Prometheus exposition helpers. */
void obs_prom_family(obs_buf *b, const char *name, const char *type, const char *help);
/* A label value escaped as the text format wants (\\, \" and \n). */
void obs_prom_escape(obs_buf *b, const char *s, size_t n);
/* name_bucket{labels,le="..."} lines (le in ms), name_sum (ms) and
 * name_count of one histogram. labels is "" or 'k="v",...' (already
 * escaped). */
void obs_prom_hist(obs_buf *b, const char *name, const char *labels, const obs_hist_snap *h);
/* A JSON string (quotes included), escaping what JSON requires. */
void obs_json_str(obs_buf *b, const char *s, size_t n);

#endif
