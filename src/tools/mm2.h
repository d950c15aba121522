/*
 * mm2.h - MirrorMaker 2's conventions, as data: the record layouts of its
 * internal topics (offset syncs, checkpoints, heartbeats), its replication
 * policies (how a mirrored topic is named and how a name tells where a topic
 * came from) and the offset map `sluice mirror` keeps per partition to
 * translate consumer group offsets from the source cluster to the target.
 *
 * Pure code: no sockets, no librdkafka, no clock, so unit tests drive it
 * directly (tests/unit/test_mm2.c). docs/mirroring.md documents the layouts.
 *
 * Record layouts (Kafka's "Struct" encoding: INT16/INT32/INT64 big-endian,
 * STRING = INT16 length + UTF-8 bytes, never null; fields in this order):
 *   offset sync  key   topic STRING, partition INT32
 *                value upstreamOffset INT64, offset INT64            (no version)
 *   checkpoint   key   group STRING, topic STRING, partition INT32
 *                value version INT16 (=0), upstreamOffset INT64, offset INT64,
 *                      metadata STRING
 *   heartbeat    key   sourceClusterAlias STRING, targetClusterAlias STRING
 *                value version INT16 (=0), timestamp INT64
 * Encoders return the encoded length, or 0 if cap is too small or a string
 * is longer than INT16_MAX. Decoders accept trailing bytes (a later version
 * may append fields, as Kafka's reader allows) but reject an unknown version
 * and any truncation; decoded strings point into the input.
 */
#ifndef SLUICE_TOOLS_MM2_H
#define SLUICE_TOOLS_MM2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define MM2_VERSION 0

size_t mm2_offset_sync_key(uint8_t *buf, size_t cap, const char *topic, int32_t partition);
size_t mm2_offset_sync_value(uint8_t *buf, size_t cap, int64_t upstream, int64_t downstream);
size_t mm2_checkpoint_key(uint8_t *buf, size_t cap, const char *group, const char *topic, int32_t partition);
size_t mm2_checkpoint_value(uint8_t *buf, size_t cap, int64_t upstream, int64_t downstream,
                            const char *metadata);
size_t mm2_heartbeat_key(uint8_t *buf, size_t cap, const char *source_alias, const char *target_alias);
size_t mm2_heartbeat_value(uint8_t *buf, size_t cap, int64_t timestamp_ms);

typedef struct mm2_offset_sync {
    kstr topic;
    int32_t partition;
    int64_t upstream, downstream;
} mm2_offset_sync;

typedef struct mm2_checkpoint {
    kstr group, topic; /* topic: the name on the target cluster */
    int32_t partition;
    int64_t upstream, downstream;
    kstr metadata;
} mm2_checkpoint;

typedef struct mm2_heartbeat {
    kstr source_alias, target_alias;
    int64_t timestamp_ms;
} mm2_heartbeat;

bool mm2_offset_sync_decode(const void *key, size_t klen, const void *val, size_t vlen, mm2_offset_sync *out);
bool mm2_checkpoint_decode(const void *key, size_t klen, const void *val, size_t vlen, mm2_checkpoint *out);
bool mm2_heartbeat_decode(const void *key, size_t klen, const void *val, size_t vlen, mm2_heartbeat *out);

/* ---- replication policy ---------------------------------------------- */

#define MM2_NAME_MAX 249 /* Kafka's topic name limit */

typedef struct mm2_policy {
    bool identity;     /* IdentityReplicationPolicy: names kept as they are */
    char separator[8]; /* replication.policy.separator, default "." */
} mm2_policy;

/* The name `topic` from cluster `source_alias` gets on the target:
 * "<alias><sep><topic>" (default policy; heartbeats topics are renamed this
 * way under both policies, as MM2 does, so heartbeats of several sources do
 * not collide). Writes into out (cap bytes); false if the result is longer
 * than MM2_NAME_MAX or cap. */
bool mm2_remote_topic(const mm2_policy *p, const char *source_alias, const char *topic, char *out,
                      size_t cap);

/* The cluster alias a topic name says it came from ("A" for "A.orders"), or
 * false if the name is not a remote topic under the policy (identity: only
 * "<alias><sep>heartbeats" names one). */
bool mm2_topic_source(const mm2_policy *p, const char *topic, char *alias, size_t cap);

/* True for MM2's and Kafka's internal topics: names ending ".internal" or
 * "-internal", starting "__" or ".". They are never mirrored. */
bool mm2_is_internal(const char *topic);
/* True for "heartbeats" and any "<alias><sep>...heartbeats". */
bool mm2_is_heartbeats(const mm2_policy *p, const char *topic);
/* True if topic came (through any number of hops) from target_alias, so
 * copying it there would close a loop (active-active pairs A->B, B->A). */
bool mm2_is_cycle(const mm2_policy *p, const char *topic, const char *target_alias);

/* ---- offset map ------------------------------------------------------- */

/* Runs of copied records: source offsets [up, up+len) were written at target
 * offsets [down, down+len). Kept sorted by up; at most MM2_RUNS_MAX: when
 * full, the run whose removal leaves the smallest gap goes (never the last).
 *
 * Why a translation from it never skips a record: the mirror appends copies
 * in source order, and a restart re-copies from its committed position and
 * appends after everything already written. So for every run, each source
 * record at or after the run's end has a copy at a target offset at or after
 * down+len. A consumer that had consumed up to (not including) U upstream
 * resumes downstream at mm2_runs_translate(U): exactly U's copy inside a run,
 * else the end of the last run before U; it may read some records again
 * (at-least-once) but never misses one. */
#define MM2_RUNS_MAX 64

typedef struct mm2_run {
    int64_t up, down, len;
} mm2_run;

typedef struct mm2_runs {
    mm2_run r[MM2_RUNS_MAX];
    int n;
} mm2_runs;

/* Records that source offset `up` was written at target offset `down`.
 * Returns true if this started a new run (the caller emits an offset sync
 * record for each run start, so MM2 tools can translate too). */
bool mm2_runs_add(mm2_runs *m, int64_t up, int64_t down);
/* The target offset at which a consumer positioned at upstream offset U
 * resumes, or -1 if no run starts at or before U. */
int64_t mm2_runs_translate(const mm2_runs *m, int64_t U);

#endif
