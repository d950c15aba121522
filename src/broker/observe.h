/*
 * observe.h - what the broker shows an operator over HTTP: /metrics in the
 * Prometheus text format, /health and /ready, the console's JSON endpoints
 * and the console page itself (obs/console.h).
 *
 * It is the collector between the broker's state and the obs module: the
 * counters and histograms the request path bumps live in b->metrics
 * (obs/metrics.h); everything else (connections, partitions, log sizes and
 * offsets, consumer lag, process figures) is read from its owner when a
 * page is asked for, so it costs nothing between scrapes. Names follow the
 * Prometheus JMX exporter's rendering of Kafka's MBeans (docs/metrics.md).
 *
 * Threads: the HTTP listener's one thread calls the handlers, so scrapes
 * are serialised; they take the same locks as requests (the partition
 * table's, each partition's, each group shard's) for as long as it takes to
 * copy a few numbers, never across I/O.
 *
 * Bounds: per-partition series stop at sluice.metrics.partition.series.max
 * and lag series at sluice.metrics.group.lag.series.max (both counted in
 * sluice_metrics_series_dropped; the groups' lag sums cover up to
 * OBSERVE_OFFSETS_MAX offsets whatever the cap); every answer stops at
 * sluice.http.response.max.bytes (sluice_metrics_truncated says so); the
 * console's lists stop at OBSERVE_LIST_MAX entries.
 *
 * Files: observe.c (lifecycle, routing, health), observe_state.c (copying
 * state out), observe_prom.c (/metrics), observe_json.c (the console's
 * JSON); what they share is in observe_internal.h.
 *
 * Throughput history: observe_sample() (from the housekeeping task, about
 * once a second) records the broker-wide counters every
 * OBSERVE_SAMPLE_MS into a ring of OBSERVE_RING samples (an hour), which
 * /api/history returns for the console's charts.
 */
#ifndef SLUICE_BROKER_OBSERVE_H
#define SLUICE_BROKER_OBSERVE_H

#include <stdint.h>

#include "obs/metrics.h"

typedef struct broker broker;

#define OBSERVE_SAMPLE_MS 10000
#define OBSERVE_RING      360
#define OBSERVE_LIST_MAX  10000
/* Committed offsets one page reads (lag sums, the console's groups). */
#define OBSERVE_OFFSETS_MAX 100000

/* Creates b->observe (the history ring, the listener's state); 0 or -1. */
int observe_create(broker *b);
/* Stops the listener if running and frees b->observe. */
void observe_destroy(broker *b);

/* Starts the HTTP listener of sluice.http.listeners (nothing when empty).
 * 0, or -1 (logged) when an address set explicitly cannot be bound; the
 * default address that is taken only logs a warning. */
int observe_start(broker *b);
/* Stops the listener (waits for a page being built). Idempotent. */
void observe_stop(broker *b);
/* The port the listener is bound to, 0 when none. */
uint16_t observe_port(const broker *b);

/* Records a throughput sample when one is due. now: wall ms. */
void observe_sample(broker *b, int64_t now);

/* The pages, for tests and benchmarks: the text written into out. */
void observe_write_metrics(broker *b, obs_buf *out);

#endif
