/*
 * records.h - the records the group coordinator keeps in `__consumer_offsets`:
 * encoding and decoding of their keys and values.
 *
 * The layouts are Kafka's (so Kafka's own tools can read the topic): every
 * key and value starts with an int16 version; strings are int16-length
 * strings, bytes are int32-length bytes, arrays have an int32 count.
 *
 *   offset commit key   (version 0 or 1): group, topic, int32 partition
 *   group metadata key  (version 2):      group
 *   offset commit value v1: int64 offset, string metadata, int64 commit ts, int64 expire ts
 *                       v3: int64 offset, int32 leader epoch, string metadata, int64 commit ts
 *                       (v0 and v2 are read too)
 *   group metadata value v3: protocol type, int32 generation, nullable protocol,
 *                       nullable leader, int64 state timestamp, members[member id,
 *                       nullable instance id, client id, client host, int32 rebalance
 *                       timeout, int32 session timeout, bytes subscription, bytes
 *                       assignment]  (v0..v2 are read too)
 * A null value is a tombstone: the offset or the group is gone.
 *
 * Decoded strings and bytes point into the input buffer. Encoders write into
 * memory from the caller's arena. Nothing here allocates outside the arena.
 */
#ifndef SLUICE_GROUP_RECORDS_H
#define SLUICE_GROUP_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/wire.h"

#define GREC_KEY_OFFSET_V0 0
#define GREC_KEY_OFFSET_V1 1
#define GREC_KEY_GROUP     2

/* Limits on what a decoder accepts (also what the coordinator produces). */
#define GREC_MEMBERS_MAX 100000

typedef struct grec_key {
    int16_t version; /* GREC_KEY_* */
    kstr group;
    kstr topic;        /* offset keys only */
    int32_t partition; /* offset keys only */
} grec_key;

typedef struct grec_offset {
    int64_t offset;
    int32_t leader_epoch; /* -1 unknown */
    kstr metadata;
    int64_t commit_ts;
    int64_t expire_ts; /* -1: none (default retention applies) */
} grec_offset;

typedef struct grec_member {
    kstr member_id;
    kstr instance_id; /* null when dynamic */
    kstr client_id;
    kstr client_host;
    int32_t rebalance_timeout_ms;
    int32_t session_timeout_ms;
    kbytes subscription;
    kbytes assignment;
} grec_member;

typedef struct grec_group {
    kstr protocol_type;
    int32_t generation;
    kstr protocol; /* nullable */
    kstr leader;   /* nullable */
    int64_t state_ts;
    grec_member *members;
    int32_t n_members;
} grec_group;

/* Encoders: return 0, or -1 when the arena is exhausted. */
int grec_encode_offset_key(arena *a, kstr group, kstr topic, int32_t partition, kbytes *out);
int grec_encode_group_key(arena *a, kstr group, kbytes *out);
int grec_encode_offset_value(arena *a, const grec_offset *v, kbytes *out);
int grec_encode_group_value(arena *a, const grec_group *v, kbytes *out);

/* Decoders: return 0, or -1 for bytes that do not parse (unknown versions
 * included). Members of a group value come from the arena. */
int grec_decode_key(kbytes in, grec_key *out);
int grec_decode_offset_value(kbytes in, grec_offset *out);
int grec_decode_group_value(kbytes in, arena *a, grec_group *out);

#endif
