/*
 * mirror.h - what the modules of `sluice mirror` share: its limits, its
 * settings (MirrorMaker 2 names), the per-topic and per-partition state and
 * the functions each module offers the others.
 *
 *   tools/mirror.c           the copy cycle, sessions with back-off, progress, entry point
 *   tools/mirror_eos.c       exactly-once: the target transaction around a cycle, positions on the target
 *   tools/mirror_settings.c  settings, --set/--mirror-config parsing, name patterns
 *   tools/mirror_topics.c    topic selection, creation, partition growth, config sync
 *   tools/mirror_groups.c    consumer group offsets: checkpoints and target group sync
 *   tools/mirror_dump.c      `sluice mirror dump`
 *
 * Everything runs in one thread (see mirror.c); nothing here locks.
 * Invariants on the state: for every partition, every source record below
 * `acked` has been acknowledged by the target, and `committed` <= `acked`
 * whenever both are >= 0; a topic's `parts` array grows only between
 * cycles, never while a cycle's slots point into it. In exactly-once mode
 * `acked` moves only when the cycle's transaction (copies and positions)
 * committed on the target, so it is also the target's committed position.
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

/* exactly.once.source.support */
typedef enum mirror_eos_mode {
    MIRROR_EOS_DISABLED = 0, /* at-least-once (the default) */
    MIRROR_EOS_ENABLED,      /* transactions on the target, or stop */
    MIRROR_EOS_AUTO,         /* transactions if the target allows them, else at-least-once */
} mirror_eos_mode;

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
    mirror_eos_mode eos;
    int64_t txn_timeout_ms; /* transaction.timeout.ms of the target producer */
} mirror_settings;

typedef struct mpart {
    struct mtopic *t;
    int32_t partition;
    int64_t acked;     /* next source offset; every copy below it acknowledged (-1: none yet) */
    int64_t committed; /* last position committed to the mirror group (-1: none this run) */
    int64_t synced_up; /* source offset of the last offset sync emitted (-1: none) */
    int64_t txn_next;  /* scratch of mirror_eos_commit: 0, or the cycle's new position */
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
    /* iprod: the target producer of internal records (heartbeats, checkpoints,
     * offset syncs kept on the target): prod itself, except in exactly-once
     * mode, where prod is transactional and iprod a second, plain one. */
    rd_kafka_t *iprod;
    /* exactly-once: eos is this session's mode (settings, or auto's answer);
     * in_txn while a transaction is open; fatal stops the mirror (fenced, or
     * the target refuses transactions with exactly.once.source.support=enabled). */
    bool eos, eos_refused, in_txn, fatal;
    int abort_streak; /* transactions aborted in a row (back-off) */
    rd_kafka_consumer_group_metadata_t *cgmd;
    rd_kafka_queue_t *cq, *sq, *tq; /* commit results; admin results on source, target */
    mtopic *topics_v;
    int ntopics;
    bool assign_needed;
    char syncs_topic[MM2_NAME_MAX + 1], ckpt_topic[MM2_NAME_MAX + 1];
    mslot *slots;
    int nslots;
    int64_t internal_errors;
    /* totals and the previous status sample */
    int64_t copied, copied_bytes, restarts, checkpoints, group_commits, txns, aborts;
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

/* mirror_eos.c (exactly-once; every function is called only when m->eos) */
/* init_transactions on the target producer. CLI_OK; CLI_EUNREACH to retry;
 * CLI_EFAIL with m->fatal (enabled) or m->eos_refused (auto) when the target
 * refuses transactions. */
int mirror_eos_init(mirror *m);
/* Reads the positions committed on the target (the mirror group there,
 * offsets keyed by target topic name, values source offsets) into acked
 * and committed; a partition with none starts from the source group's.
 * False if the target did not answer. */
bool mirror_eos_load_positions(mirror *m);
/* Opens the cycle's transaction if none is open. False: the session must end. */
bool mirror_eos_begin(mirror *m);
typedef enum mirror_txn_result {
    MIRROR_TXN_COMMITTED, /* copies and positions are on the target */
    MIRROR_TXN_ABORTED,   /* neither is: rewind to the committed positions, go on */
    MIRROR_TXN_FAILED,    /* outcome unknown or the producer unusable: end the session
                           * (m->fatal set when fenced) */
} mirror_txn_result;
/* Sends the cycle's new positions (slot up + 1, per partition) as the
 * mirror group's offsets into the transaction and commits it. */
mirror_txn_result mirror_eos_commit(mirror *m, int n);
/* Sets m->fatal (with the message) if the transactional producer has a
 * fatal error, e.g. after a delivery failed because it was fenced. */
void mirror_eos_check_fatal(mirror *m, const char *what);
/* Aborts an open transaction (bounded); false if that failed too. */
bool mirror_eos_abort(mirror *m, const char *why);

/* mirror.c */
void mirror_produce_internal(mirror *m, rd_kafka_t *rk, const char *topic, const uint8_t *k, size_t kl,
                             const uint8_t *v, size_t vl);

#endif
