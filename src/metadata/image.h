/*
 * image.h - the cluster metadata image: everything the KRaft metadata log
 * says about the cluster at one offset, and the one function that changes
 * it.
 *
 * What it holds: the features (metadata.version and friends), the brokers
 * (registration, epoch, endpoints, rack, fenced, in controlled shutdown),
 * the topics (name, id, partitions with replicas, ISR, leader, leader epoch,
 * partition epoch, adding/removing replicas, eligible leader replicas), the
 * configs of every resource (topics, brokers, the cluster default) as the
 * raw key/value strings the records carry, the next producer id block, and
 * the SCRAM credentials of users (UserScramCredentialRecord: salt, stored
 * key, server key, iterations per user and mechanism), and the ACLs
 * (AccessControlEntryRecord, removed by id with RemoveAccessControlEntryRecord,
 * held as a security/acl.h set), and the client quotas (ClientQuotaRecord,
 * held as a metadata/quotas.h set). Delegation tokens are accepted and
 * counted but not kept yet (their issue adds them here).
 *
 * Immutability. A published md_image never changes; it is reference
 * counted, and a reader takes one image for a whole request, so it never
 * sees a half-applied change. Changes go through a delta:
 *
 *   md_delta *d = md_delta_begin(current);
 *   for each record of a batch: md_apply(d, &rec, err, sizeof err);
 *   md_image *next = md_delta_publish(d, offset, epoch);
 *
 * md_apply is the only code that changes metadata: replay at start, loading
 * a snapshot, and the committed-log callback all use it. Topics untouched by
 * a delta are shared between the old and the new image (one pointer each),
 * so publishing costs O(topics) pointer copies plus the changed topics,
 * never a deep copy of the whole image.
 *
 * Validation. md_apply checks each record against the image it changes and
 * refuses (MD_E*, message in err) what cannot be applied: a TopicRecord
 * whose name or id exists, a PartitionRecord for an unknown topic or an
 * existing partition, a change or removal of something that does not exist,
 * replica lists longer than MD_REPLICAS_MAX. A refused record leaves the
 * delta as it was. Config values are not validated here: they are stored as
 * written, and whoever uses a value (the log manager building a partition's
 * settings) decides what an unusable one means, so a bad stored value takes
 * one partition offline instead of stopping the broker.
 *
 * Snapshots. md_image_records() walks the records that rebuild the image
 * from empty (features, brokers, topics with partitions, configs, SCRAM
 * credentials, ACLs, client quotas, producer ids), in an order md_apply accepts; md_image_equal() compares
 * two images (tests check that a snapshot reloads into an equal image).
 *
 * Thread-safety: a published image may be read from any thread. A delta is
 * owned by one thread until published.
 */
#ifndef SLUICE_METADATA_IMAGE_H
#define SLUICE_METADATA_IMAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metadata/records.h"
#include "metadata/quotas.h"
#include "security/acl.h"
#include "proto/wire.h"

#define MD_REPLICAS_MAX         512    /* per partition list (replicas, isr, ...) */
#define MD_PARTITIONS_MAX       100000 /* per topic */
#define MD_CONFIG_KEY_MAX       256
#define MD_CONFIG_VALUE_MAX     (64 << 10)
#define MD_CONFIGS_PER_RESOURCE 1024
#define MD_ENDPOINTS_MAX        16
#define MD_FEATURES_MAX         32
#define MD_NAME_MAX             249 /* topic names */
#define MD_SCRAM_NAME_MAX       255 /* SCRAM user names */
#define MD_SCRAM_SALT_MAX       128
#define MD_SCRAM_KEY_MAX        64     /* SHA-512 */
#define MD_SCRAM_USERS_MAX      100000 /* credentials (user and mechanism pairs) */

/* ConfigRecord resource types (Kafka's ConfigResource.Type codes). */
#define MD_RESOURCE_TOPIC  2
#define MD_RESOURCE_BROKER 4

typedef enum md_err {
    MD_OK = 0,
    MD_EEXISTS = -1, /* the topic, partition or broker already exists */
    MD_ENOENT = -2,  /* what the record names does not exist */
    MD_EINVAL = -3,  /* a field is out of range */
    MD_ENOMEM = -4,
} md_err;

/* A list of int32 (replica ids). ids == NULL with n == 0 when empty;
 * `present` is false for a nullable list that is null (ELR fields). */
typedef struct md_ids {
    const int32_t *ids;
    int32_t n;
    bool present;
} md_ids;

typedef struct md_partition {
    int32_t id;
    md_ids replicas, isr, removing, adding, elr, last_known_elr;
    const kuuid *directories;
    int32_t n_directories;
    int32_t leader; /* -1: none */
    int32_t leader_epoch;
    int32_t partition_epoch;
    int8_t leader_recovery_state;
} md_partition;

typedef struct md_topic {
    atomic_int refs; /* images and deltas sharing it */
    char name[MD_NAME_MAX + 1];
    int32_t name_len;
    kuuid id;
    int32_t n_partitions; /* partitions[i].id == i for i < n_partitions */
    md_partition *partitions;
    /* The replica-id lists of every partition point into this pool. */
    int32_t *pool;
    int64_t pool_len, pool_cap;
    kuuid *dir_pool;
    int64_t dir_len, dir_cap;
} md_topic;

typedef struct md_config {
    char *key;
    char *value;
} md_config;

/* The configs of one resource, sorted by key. */
typedef struct md_resource {
    atomic_int refs;
    int8_t type;
    char *name;
    md_config *items;
    int32_t n;
} md_resource;

typedef struct md_endpoint {
    char *name;
    char *host;
    uint16_t port;
    int16_t security_protocol;
} md_endpoint;

typedef struct md_broker {
    int32_t id;
    int64_t epoch;
    kuuid incarnation;
    md_endpoint endpoints[MD_ENDPOINTS_MAX];
    int32_t n_endpoints;
    char *rack; /* NULL: none */
    bool fenced;
    bool in_controlled_shutdown;
} md_broker;

typedef struct md_feature {
    char name[64];
    int16_t level;
} md_feature;

/* One user's credential for one SCRAM mechanism (1 SHA-256, 2 SHA-512). */
typedef struct md_scram {
    char *name;
    int8_t mechanism;
    int32_t iterations;
    int32_t salt_n, key_n;
    uint8_t salt[MD_SCRAM_SALT_MAX];
    uint8_t stored_key[MD_SCRAM_KEY_MAX];
    uint8_t server_key[MD_SCRAM_KEY_MAX];
} md_scram;

typedef struct md_image md_image;

/* ---- reading a published image ------------------------------------------- */

md_image *md_image_empty(void);
md_image *md_image_ref(md_image *img);
void md_image_unref(md_image *img);

/* The offset of the last record applied (-1 for the empty image) and the
 * leader epoch of the batch that held it. */
int64_t md_image_offset(const md_image *img);
int32_t md_image_epoch(const md_image *img);

int32_t md_image_topic_count(const md_image *img);
int64_t md_image_partition_count(const md_image *img);
/* Topics by name and by id (O(1)); NULL if absent. */
const md_topic *md_image_topic(const md_image *img, kstr name);
const md_topic *md_image_topic_by_id(const md_image *img, kuuid id);
/* The i-th topic in no particular but stable order, i < topic_count. */
const md_topic *md_image_topic_at(const md_image *img, int32_t i);
const md_partition *md_topic_partition(const md_topic *t, int32_t id);

int32_t md_image_broker_count(const md_image *img);
const md_broker *md_image_broker_at(const md_image *img, int32_t i);
const md_broker *md_image_broker(const md_image *img, int32_t id);

/* The configs of a resource (e.g. MD_RESOURCE_TOPIC, "orders"), or NULL. */
const md_resource *md_image_resource(const md_image *img, int8_t type, const char *name);
/* One value, or NULL. */
const char *md_image_config(const md_image *img, int8_t type, const char *name, const char *key);

/* A feature's finalized level, or 0 when not set. */
int16_t md_image_feature(const md_image *img, const char *name);
int32_t md_image_feature_count(const md_image *img);
const md_feature *md_image_feature_at(const md_image *img, int32_t i);

/* SCRAM credentials, sorted by user name then mechanism: by name and
 * mechanism (NULL if none), and the i-th of md_image_scram_count(). */
const md_scram *md_image_scram(const md_image *img, const char *name, int8_t mechanism);
int32_t md_image_scram_count(const md_image *img);
const md_scram *md_image_scram_at(const md_image *img, int32_t i);

/* The ACLs (NULL when there are none; acl_set_count(NULL) is 0). The set
 * lives as long as the image. */
const acl_set *md_image_acls(const md_image *img);

/* The client quotas (NULL when there are none; md_quota_set_count(NULL) is
 * 0). The set lives as long as the image. */
const md_quota_set *md_image_quotas(const md_image *img);

/* The first producer id not yet handed out (0 when none was). */
int64_t md_image_next_producer_id(const md_image *img);

/* Records applied that the image does not keep yet (ACLs, SCRAM, ...). */
int64_t md_image_ignored_records(const md_image *img);

/* ---- changing it ---------------------------------------------------------- */

typedef struct md_delta md_delta;

/* A delta over base (which it references until published or aborted). */
md_delta *md_delta_begin(md_image *base);
/* Applies one record. MD_OK, or an MD_E* code with err filled; on error the
 * delta is unchanged. */
int md_apply(md_delta *d, const mdrec *rec, char *err, size_t errn);
/* Records applied so far. */
int32_t md_delta_count(const md_delta *d);
/* Publishes the delta as a new image at (offset, epoch) and frees the
 * delta. Returns NULL only when memory runs out (the delta is freed). */
md_image *md_delta_publish(md_delta *d, int64_t offset, int32_t epoch);
void md_delta_abort(md_delta *d);

/* Looks through the delta (what the image would be if published now), for a
 * controller validating a request against its own uncommitted changes. */
const md_topic *md_delta_topic(const md_delta *d, kstr name);
const md_topic *md_delta_topic_by_id(const md_delta *d, kuuid id);
const md_resource *md_delta_resource(const md_delta *d, int8_t type, const char *name);
/* The first producer id the delta's image would hand out next. */
int64_t md_delta_next_producer_id(const md_delta *d);
const md_scram *md_delta_scram(const md_delta *d, const char *name, int8_t mechanism);
const md_broker *md_delta_broker(const md_delta *d, int32_t id);
const acl_set *md_delta_acls(const md_delta *d);
const md_quota_set *md_delta_quotas(const md_delta *d);

/* ---- snapshots and comparison -------------------------------------------- */

/* Calls fn once per record that rebuilds img from the empty image; stops at
 * and returns the first non-zero result. The record body lives only during
 * the call. */
typedef int (*md_record_fn)(void *ctx, const mdrec *rec);
int md_image_records(const md_image *img, md_record_fn fn, void *ctx);

/* True when a and b hold the same metadata (offsets and epochs aside). If
 * not and why is given, it says where they differ. */
bool md_image_equal(const md_image *a, const md_image *b, char *why, size_t whyn);

#endif
