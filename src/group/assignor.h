/*
 * assignor.h - the server-side assignors of the consumer group protocol
 * (KIP-848): given the members of a group, the topics each subscribes to
 * and the partition counts, which partitions each member should own (the
 * group's target assignment).
 *
 *   "uniform": balanced over the members subscribed to each partition, and
 *              sticky: a member keeps what it had in the previous target as
 *              long as that keeps the counts within one of each other
 *              (heterogeneous subscriptions: balanced among the members that
 *              can take a partition);
 *   "range":   per topic, the members subscribed to it in member-id order
 *              get consecutive ranges (the first ones one extra when the
 *              count does not divide), so members subscribed to the same
 *              topics get the same partition numbers of each (co-partitioning).
 *
 * Pure functions: no I/O, no clock, deterministic for a given input (member
 * order is the caller's; ties are broken by it). The output arrays are
 * malloc'd and owned by the caller (asg_parts_free). Work: range and
 * uniform with equal subscriptions O(partitions + members); uniform with
 * heterogeneous ones O(partitions x members) for the first hand-out, then
 * balancing passes within ASG_WORK_MAX steps in all.
 */
#ifndef SLUICE_GROUP_ASSIGNOR_H
#define SLUICE_GROUP_ASSIGNOR_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"

#define ASG_PASSES 32
/* Partitions one assignment may cover (all subscribed topics together). */
#define ASG_PARTITIONS_MAX 1000000
/* Steps (partition x member) the balancing passes of one heterogeneous
 * uniform assignment may take. */
#define ASG_WORK_MAX 50000000

/* One partition of a topic (by id). Arrays of them are kept sorted by
 * (topic id bytes, partition) and free of duplicates. */
typedef struct asg_part {
    kuuid topic;
    int32_t partition;
} asg_part;

typedef struct asg_parts {
    asg_part *v;
    int32_t n;
} asg_parts;

typedef struct asg_topic {
    kuuid id;
    int32_t n_partitions;
} asg_topic;

typedef struct asg_member {
    const char *id;
    const bool *subscribed;  /* [n_topics]: subscribed to topic i */
    const asg_parts *before; /* the previous target (may be NULL) */
    asg_parts out;           /* the result (caller frees) */
} asg_member;

typedef enum asg_kind { ASG_UNIFORM = 0, ASG_RANGE = 1 } asg_kind;

/* "uniform" / "range" (case-sensitive, as Kafka); -1 if unknown. */
int asg_parse(kstr name);
const char *asg_name(asg_kind k);

/* Computes every member's out. 0, or -1 on OOM or beyond
 * ASG_PARTITIONS_MAX (every out freed). */
int asg_assign(asg_kind kind, asg_member *members, int n_members, const asg_topic *topics, int n_topics);

/* Helpers on sorted part arrays. */
int asg_part_cmp(const asg_part *a, const asg_part *b);
bool asg_parts_has(const asg_parts *s, kuuid topic, int32_t partition);
bool asg_parts_eq(const asg_parts *a, const asg_parts *b);
void asg_parts_sort(asg_parts *s); /* sorts and removes duplicates */
int asg_parts_copy(asg_parts *dst, const asg_parts *src);
void asg_parts_free(asg_parts *s);

#endif
