/*
 * cgroup.h - one consumer group of the broker-driven protocol (KIP-848):
 * its members and their subscriptions, the group epoch, the target
 * assignment the server-side assignor computed at the assignment epoch,
 * each member's current assignment and its reconciliation towards the
 * target, and the group's records in `__consumer_offsets` (Kafka's
 * ConsumerGroup* layouts, key versions 3-8).
 *
 * The model, not the machine: group/coordinator.c owns the groups, turns
 * requests and timers into calls here, appends the records cg_emit()
 * produces and feeds their outcome back (cg_store_put of what became
 * durable; cg_rebuild after a failed write). No I/O, no clock (every call
 * that needs the time takes `now`), no threads.
 *
 * Epochs and reconciliation are Kafka's: a change of membership, of a
 * subscription or of the subscribed topics' partition counts bumps the
 * group epoch; the target assignment is then recomputed at once (assignment
 * epoch = group epoch). A member moves to the target in steps: partitions it
 * must give up are revoked first (state UNREVOKED: it keeps its epoch and
 * gets only the partitions it keeps, until a heartbeat shows it no longer
 * owns the revoked ones, within its rebalance timeout, else it is fenced);
 * then it gets the target's epoch and every new partition no other member
 * still owns (UNRELEASED while some are still held elsewhere, STABLE once it
 * has the whole target). So no partition is ever owned by two members.
 *
 * Durable state: the store holds the latest value of every record key of
 * the group that is known written (tombstones remove keys). cg_rebuild
 * derives the live state from it, exactly as a reload would; live-only
 * facts (session deadlines) survive a rebuild for members that stay.
 *
 * Limits: CG_SUBS_MAX names per subscription, CG_REGEX_MAX bytes of a
 * regex, the coordinator's GCOORD_MEMBERS_MAX members; an assignment
 * computation is bounded by assignor.h's terms.
 */
#ifndef SLUICE_GROUP_CGROUP_H
#define SLUICE_GROUP_CGROUP_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "group/assignor.h"
#include "proto/wire.h"

#define CG_SUBS_MAX      10000
#define CG_MEMBERS_MAX   10000 /* members of one group, whatever group.consumer.max.size says */
#define CG_REGEX_MAX     1024
#define CG_TOPICS_MAX    100000 /* distinct subscribed topics of one group */
#define CG_ASSIGNORS_MAX 8
#define CG_NO_DEADLINE   INT64_MAX

/* Kafka's record key versions (the int16 that opens every key). */
#define CG_KEY_METADATA          3
#define CG_KEY_PARTITION_META    4
#define CG_KEY_MEMBER            5
#define CG_KEY_TARGET_META       6
#define CG_KEY_TARGET_MEMBER     7
#define CG_KEY_CURRENT_ASSIGNMNT 8

/* A member's reconciliation state (Kafka's values, as stored). */
typedef enum cg_mstate {
    CG_STABLE = 0,
    CG_UNREVOKED = 1,
    CG_UNRELEASED = 2,
    CG_UNKNOWN = 127,
} cg_mstate;

typedef struct cg_config {
    int32_t session_timeout_ms;    /* group.consumer.session.timeout.ms */
    int32_t heartbeat_interval_ms; /* group.consumer.heartbeat.interval.ms */
    int32_t max_size;              /* group.consumer.max.size */
    int n_assignors;               /* group.consumer.assignors: the first is the default */
    asg_kind assignors[CG_ASSIGNORS_MAX];
} cg_config;

/* The owner's view of the cluster's topics (a metadata image). */
typedef struct cg_topic_info {
    kstr name;
    kuuid id;
    int32_t n_partitions;
} cg_topic_info;

typedef struct cg_topics {
    void *ctx;
    uint64_t version; /* changes whenever any topic does */
    bool (*by_name)(void *ctx, kstr name, cg_topic_info *out);
    int32_t (*count)(void *ctx);
    bool (*at)(void *ctx, int32_t i, cg_topic_info *out);
} cg_topics;

typedef struct cg_member {
    char *id;
    char *instance_id; /* NULL: dynamic */
    char *rack_id;
    char *client_id;
    char *client_host;
    char **subs; /* sorted, unique */
    int n_subs;
    char *regex; /* NULL: none */
    regex_t re;  /* compiled regex when re_ok */
    bool re_ok;
    char *assignor; /* the client's server_assignor, or NULL */
    int32_t rebalance_timeout_ms;
    int32_t epoch, prev_epoch;
    cg_mstate state;
    asg_parts assigned, revoking, target;
    int64_t session_deadline;
    int64_t revoke_deadline; /* UNREVOKED: when it is fenced */
    bool left;               /* a static member that left with epoch -2 */
    bool dirty_meta, dirty_target, dirty_current;
} cg_member;

typedef struct cg_topic {
    kuuid id;
    char *name;
    int32_t n_partitions;
} cg_topic;

typedef struct cg_store_rec {
    uint8_t *key;
    int32_t klen;
    uint8_t *value;
    int32_t vlen;
    uint32_t hash;
    int32_t next; /* chain in the bucket, -1 ends */
} cg_store_rec;

typedef struct cgroup {
    int32_t epoch;            /* group epoch */
    int32_t assignment_epoch; /* epoch of the target assignment */
    cg_member **members;      /* join order */
    int n_members, cap_members;
    cg_topic *topics; /* the subscribed topics' metadata (sorted by name) */
    int n_topics;
    uint64_t topics_version;
    bool topics_known; /* topics_version means something */
    bool subs_changed; /* the subscribed topics must be recomputed from a view */
    bool dirty_epoch, dirty_topics, dirty_target_epoch;
    bool bumped;       /* the epoch moved during the event in progress (once per event) */
    bool check_target; /* after a rebuild: the next event recomputes the target and
                        * moves the epoch if it differs from what the log says */
    char **removed;    /* members gone whose tombstones are not emitted yet */
    int n_removed, cap_removed;
    /* durable records */
    cg_store_rec *store;
    int32_t n_store, cap_store;
    int32_t *buckets;
    int32_t n_buckets;
} cgroup;

cgroup *cg_create(void);
void cg_destroy(cgroup *g);

/* Kafka's group state names: "Empty", "Assigning", "Reconciling", "Stable". */
const char *cg_state_name(const cgroup *g);
const char *cg_member_state_name(cg_mstate s);
cg_member *cg_find_member(const cgroup *g, kstr id);
/* The assignor the group uses now ("uniform", "range"). */
const char *cg_assignor_name(const cgroup *g, const cg_config *cfg);

/* ---- requests ------------------------------------------------------------------ */

typedef struct cg_heartbeat_req {
    kstr member_id;
    int32_t member_epoch;
    kstr instance_id; /* nullable */
    kstr rack_id;     /* nullable */
    int32_t rebalance_timeout_ms;
    const kstr *sub_names;
    int32_t n_sub_names;    /* -1: not sent (unchanged) */
    kstr regex;             /* nullable: unchanged */
    kstr assignor;          /* nullable: unchanged */
    const asg_parts *owned; /* NULL: not sent */
    kstr client_id;
    kstr client_host;
    int16_t version;    /* ConsumerGroupHeartbeat version (v1: the client makes member ids) */
    kstr new_member_id; /* v0 at epoch 0 without an id: the id to give */
} cg_heartbeat_req;

typedef struct cg_heartbeat_res {
    int16_t error;
    const char *message;   /* static text, or NULL */
    const char *member_id; /* valid until the next call on the group */
    int32_t member_epoch;
    bool has_assignment;
    const asg_parts *assignment;
} cg_heartbeat_res;

/* Validates a heartbeat as Kafka does before looking at the group (member
 * id, epoch, the fields a joining member must send, the assignor, the
 * regex). 0 or INVALID_REQUEST / UNSUPPORTED_ASSIGNOR /
 * INVALID_REGULAR_EXPRESSION with *message set. */
int16_t cg_check_request(const cg_config *cfg, const cg_heartbeat_req *req, const char **message);

/* ConsumerGroupHeartbeat on the group (after cg_check_request). topics may
 * be NULL (subscribed topics are not refreshed). The result points into the
 * group. */
void cg_heartbeat(cgroup *g, const cg_config *cfg, const cg_heartbeat_req *req, const cg_topics *topics,
                  int64_t now, cg_heartbeat_res *res);

/* Fires the deadlines <= now (sessions, revocation timeouts): fenced
 * members leave the group. *next gets the earliest remaining deadline.
 * True when something changed (there are records to emit). */
bool cg_tick(cgroup *g, const cg_config *cfg, int64_t now, int64_t *next);
/* The earliest deadline of the group. */
int64_t cg_next_deadline(const cgroup *g);

/* OffsetCommit by a member: 0, UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH or
 * FENCED_MEMBER_EPOCH (epoch < 0 with no member id: allowed only for a
 * group without members). */
int16_t cg_check_commit(const cgroup *g, kstr member_id, int32_t epoch);

/* OffsetFetch v9+ by a member: 0 (no member named, epoch < 0: an admin
 * fetch), UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH (any other epoch). */
int16_t cg_check_fetch(const cgroup *g, kstr member_id, int32_t epoch);

/* ---- records ------------------------------------------------------------------- */

typedef struct cg_rec_out {
    kbytes key;
    kbytes value; /* len -1: tombstone */
} cg_rec_out;

/* Encodes the records of every change since the last emit (tombstones of
 * removed members; member metadata; group epoch; subscribed topics; target
 * members; target epoch; current assignments) into a's memory, and clears
 * the dirty marks. *n gets the count (0: nothing changed). 0, or -1 on OOM
 * (marks kept). */
int cg_emit(cgroup *g, kstr group_id, arena *a, cg_rec_out **out, int *n);
/* Tombstones for every key of the store (the group is deleted). */
int cg_tombstones(const cgroup *g, arena *a, cg_rec_out **out, int *n);

/* A key of versions 3-8: the group id (and member id, or null). 0 or -1. */
int cg_decode_key(kbytes key, int16_t *version, kstr *group, kstr *member);

/* Durable records: puts (or with value len < 0 removes) one. 0 or -1 (OOM). */
int cg_store_put(cgroup *g, kbytes key, kbytes value);
/* The live state from the store (members that stay keep their deadlines;
 * new ones get now + session timeout). When the records contradict each
 * other (a partition in two members' assignments: both must give it up),
 * or the log lacks writes, the target may not be what its records say: the
 * next event recomputes it and moves the epoch if it differs
 * (check_target). 0, or -1 on OOM (the group is then left empty of
 * members). */
int cg_rebuild(cgroup *g, const cg_config *cfg, int64_t now);

#endif
