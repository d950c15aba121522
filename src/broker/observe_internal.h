/*
 * observe_internal.h - what the files of the observe module share (see
 * observe.h): the listener's state, and the snapshots of broker state the
 * pages are built from.
 *
 *   observe.c        lifecycle, the history ring, /health, /ready, routing
 *   observe_state.c  copying state out: partitions, groups with their
 *                    offsets and ends, process figures
 *   observe_prom.c   /metrics
 *   observe_json.c   the console's JSON
 *
 * Every function here runs on the HTTP listener's one thread, except
 * observe_sample (housekeeping), which only touches the ring under its
 * mutex.
 */
#ifndef SLUICE_BROKER_OBSERVE_INTERNAL_H
#define SLUICE_BROKER_OBSERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/observe.h"
#include "metadata/image.h"
#include "obs/http.h"
#include "obs/metrics.h"

typedef struct sample {
    int64_t t_ms;
    uint64_t messages_in, bytes_in, bytes_out;
} sample;

/* Idle time of a thread pool at the previous scrape, for the idle ratios. */
typedef struct idle_mark {
    int64_t at_ns;
    uint64_t net_idle_ns, io_idle_ns;
} idle_mark;

struct observe {
    obs_http *http;
    pthread_mutex_t mu; /* the ring */
    sample ring[OBSERVE_RING];
    int ring_head, ring_len;
    int64_t next_sample_ms;
    idle_mark idle;                /* the HTTP thread only */
    atomic_uint_fast64_t requests; /* pages asked for */
    int64_t start_mono_ns;
};

/* One partition as the pages show it. */
typedef struct pinfo {
    const char *topic; /* points into the image */
    int32_t index;
    const md_partition *mp; /* in the image; NULL if the image no longer has it */
    bool internal;          /* __consumer_offsets and the like: listed after the others */
    bool online;
    int role; /* replica_role */
    int64_t hw, leo, log_start, size;
    int segments;
    int waiters;
} pinfo;

typedef struct pwalk {
    md_image *img;
    pinfo *v;
    int n, cap, max;
    int64_t dropped;
    const char *only_topic; /* NULL: every partition */
} pwalk;

/* One committed offset of a group, copied out of its shard. */
typedef struct goff {
    char *group;
    char *topic;
    int32_t partition;
    int64_t offset;
    int64_t end; /* the partition's high watermark, -1 unknown */
} goff;

typedef struct ginfo {
    char *group;
    const char *state;
    char *protocol_type, *protocol;
    int32_t generation;
    int members;
    int64_t lag; /* over its offsets with a known end */
    int first_off, n_off;
} ginfo;

typedef struct gwalk {
    ginfo *g;
    int n, cap;
    goff *o;
    int no, capo, maxo;
    int64_t dropped;
    bool failed;
} gwalk;

/* Process figures from /proc/self. */
typedef struct procinfo {
    double cpu_s;
    uint64_t rss, vsize;
    int64_t open_fds, max_fds, threads;
    double start_s; /* since the epoch */
} procinfo;

/* The partitions this broker holds (at most max; only_topic NULL: every
 * topic), sorted by observe_cmp_pinfo; w->img is referenced (release with
 * observe_walk_done). */
void observe_walk_parts(broker *b, pwalk *w, int max, const char *only_topic);
void observe_walk_done(pwalk *w);
/* Users' topics by name, then internal ones; partitions by index. */
int observe_cmp_pinfo(const void *a, const void *b);
/* Every live group with its committed offsets (at most max_offsets in
 * all), each with its partition's high watermark. */
void observe_walk_groups(broker *b, gwalk *w, int max_offsets);
void observe_walk_groups_done(gwalk *w);
void observe_read_proc(procinfo *pi);

/* The console's JSON (observe_json.c). observe_api_topic is false for an
 * unknown topic. */
void observe_api_cluster(broker *b, obs_buf *o);
void observe_api_topics(broker *b, obs_buf *o);
bool observe_api_topic(broker *b, const char *name, obs_buf *o);
void observe_api_groups(broker *b, obs_buf *o);
void observe_api_history(broker *b, obs_buf *o);

#endif
