/*
 * mirror.h - what the modules of `sluice mirror` share: its limits, its
 * settings (MirrorMaker 2 names), the per-topic and per-partition state and
 * the functions each module offers the others.
 *
 *   tools/mirror.c           the copy cycle, sessions with back-off, progress, entry point
 *   tools/mirror_settings.c  settings, --set/--mirror-config parsing, name patterns
 *   tools/mirror_topics.c    topic selection, creation, partition growth, config sync
 *   tools/mirror_groups.c    consumer group offsets: checkpoints and target group sync
 *   tools/mirror_dump.c      `sluice mirror dump`
 *
 * Everything runs in one thread (see mirror.c); nothing here locks.
 * Invariants on the state: for every partition, every source record below
 * `acked` has been acknowledged by the target, and `committed` <= `acked`
 * whenever both are >= 0; a topic's `parts` array grows only between
 * cycles, never while a cycle's slots point into it.
 */
#ifndef SLUICE_TOOLS_MIRROR_H
#define SLUICE_TOOLS_MIRROR_H

#include <regex.h>

#include "tools/kclient.h"
#include "tools/mm2.h"

#define MIRROR_CYCLE_RECORDS  100000
#define MIRROR_CYCLE_BYTES    (64 * 1024 * 1024)
#define MIRROR_CYCLE_MS       100
#define MIRROR_MAX_TOPICS     4096
#define MIRROR_MAX_PARTITIONS 100000 /* per topic */
#define MIRROR_MAX_GROUPS     1000
#define MIRROR_MAX_PATTERNS   64
#define MIRROR_MAX_CONFIGS    128
#define MIRROR_ALIAS_MAX      64
#define MIRROR_BACKOFF_MIN_MS 500
#define MIRROR_BACKOFF_MAX_MS 30000

typedef struct patterns {
    regex_t re[MIRROR_MAX_PATTERNS];
    int n;
} patterns;

typedef struct mirror_settings {
    const char *source_file, *target_file;
    char source_alias[MIRROR_ALIAS_MAX + 1], target_alias[MIRROR_ALIAS_MAX + 1];
    char topics[CLI_ARG_MAX], topics_exclude[CLI_ARG_MAX], groups[CLI_ARG_MAX], groups_exclude[CLI_ARG_MAX];
    char config_exclude[CLI_ARG_MAX], mirror_group[CLI_ARG_MAX];
    mm2_policy policy;
    bool refresh_topics, sync_configs, emit_checkpoints, sync_groups, emit_heartbeats, syncs_on_target;
    int64_t refresh_topics_s, sync_configs_s, emit_checkpoints_s, sync_groups_s, heartbeats_s;
    int64_t offset_lag_max, replication_factor, flush_timeout_ms, status_ms;
} mirror_settings;

typedef struct mpart {
    struct mtopic *t;
    int32_t partition;
    int64_t acked;     /* next source offset; every copy below it acknowledged (-1: none yet) */
    int64_t committed; /* last position committed to the mirror group (-1: none this run) */
    int64_t synced_up; /* source offset of the last offset sync emitted (-1: none) */
    mm2_runs runs;
} mpart;

typedef struct mtopic {
    char src[MM2_NAME_MAX + 1], dst[MM2_NAME_MAX + 1];
    int nparts;
    mpart *parts;
    bool ready; /* exists on the target with >= nparts partitions */
} mtopic;

typedef struct mslot {
    mpart *p;
    int64_t up, down;
    rd_kafka_resp_err_t err;
    bool done;
} mslot;

typedef struct mirror {
    mirror_settings s;
    patterns topics, topics_ex, groups, groups_ex, config_ex;
    kc_opts so, to; /* source, target */
    int timeout_ms;
    rd_kafka_t *cons, *prod, *sprod; /* sprod: producer on the source (offset syncs), or NULL */
    rd_kafka_queue_t *cq, *sq, *tq;  /* commit results; admin results on source, target */
    mtopic *topics_v;
    int ntopics;
    bool assign_needed;
    char syncs_topic[MM2_NAME_MAX + 1], ckpt_topic[MM2_NAME_MAX + 1];
    mslot *slots;
    int nslots;
    int64_t internal_errors;
    /* totals and the previous status sample */
    int64_t copied, copied_bytes, restarts, checkpoints, group_commits;
    int64_t last_status_us, last_copied, last_bytes;
    int64_t next_refresh_us, next_configs_us, next_ckpt_us, next_groups_us, next_hb_us;
} mirror;

typedef struct mconfs {
    int n;
    char *k[MIRROR_MAX_CONFIGS], *v[MIRROR_MAX_CONFIGS];
    bool ok; /* described */
} mconfs;

/* mirror_settings.c */
void mirror_settings_defaults(mirror_settings *s);
bool mirror_set_str(char *dst, size_t cap, const char *v);
/* One setting / one "key=value" / a file of them; CLI_OK or CLI_EUSAGE after a message. */
int mirror_apply_setting(mirror_settings *s, const char *k, const char *v);
int mirror_apply_kv(mirror_settings *s, const char *kv);
int mirror_apply_file(mirror_settings *s, const char *path);
/* A comma-separated list of regexes, each matched against a whole name. */
int mirror_compile_patterns(patterns *ps, const char *what, const char *list);
bool mirror_matches(const patterns *ps, const char *name);
void mirror_free_patterns(patterns *ps);

/* mirror_topics.c */
mtopic *mirror_find_topic(mirror *m, const char *src);
bool mirror_topic_selected(const mirror *m, const char *name);
bool mirror_ensure_internal(rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o, const char *name, int rf);
void mirror_sync_configs(mirror *m, const int *idx, int n);
/* Reads the source's topics, adds new matching ones and partitions, makes
 * each exist on the target. False if a side did not answer. */
bool mirror_refresh_topics(mirror *m, bool configs);
/* Assigns every ready partition (between cycles only). */
bool mirror_assign(mirror *m);

/* mirror_groups.c */
bool mirror_group_selected(const mirror *m, const char *g);
/* Translates the selected groups' offsets; emits checkpoints (emit) and
 * commits them to the target's idle groups (sync). */
void mirror_groups_pass(mirror *m, bool emit, bool sync);

/* mirror.c */
void mirror_produce_internal(mirror *m, rd_kafka_t *rk, const char *topic, const uint8_t *k, size_t kl,
                             const uint8_t *v, size_t vl);

#endif
