/*
 * meta.h - the broker's metadata: the metadata log (`__cluster_metadata-0`),
 * the published image, the controller, and the partitions that follow the
 * image. It is the adapter that executes the state machines' actions:
 *
 *   controller (controller/) --append--> mdlog_append + fsync
 *                            <-commit--- md_apply of the same records,
 *                                        publish, parts_apply, ctrl_commit
 *
 * On a single node the append, the apply and the commit happen inside the
 * controller's call, so every admin function below returns with the
 * answer. The Raft issue replaces the append with the quorum's and the
 * commit with its committed-offset callback; nothing else here changes.
 *
 * Start (bmeta_open): the log.dirs roots are opened by the log manager
 * (meta.properties, clean markers); an old `__sluice_metadata-0` is migrated
 * once (written as a snapshot of a new log, then renamed `.migrated`); the
 * metadata log is verified and replayed (latest snapshot + tail) through
 * md_apply into the first image; the directories under log.dirs are
 * settled against it (only deleted topics' directories are removed,
 * unexplained ones are set aside); this node registers; the partitions
 * open. A metadata log that is missing or empty while partition
 * directories exist stops the start (the record of their topics was lost).
 *
 * Readers take a consistent image with bmeta_image() (referenced; release
 * with md_image_unref) and use it for the whole request. Changes are
 * serialised by one mutex; readers never wait for it.
 *
 * A snapshot is written from the housekeeping tick when the log grew by
 * metadata.log.max.record.bytes.between.snapshots, so the start replays
 * the image plus a bounded tail whatever the history.
 */
#ifndef SLUICE_BROKER_META_H
#define SLUICE_BROKER_META_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/partitions.h"
#include "controller/controller.h"
#include "core/env.h"
#include "metadata/image.h"
#include "storage/log_manager.h"

typedef struct bmeta bmeta;

typedef struct bmeta_hooks {
    /* The broker's environment (clocks, random source); NULL: the real one. */
    const sl_env *env;
    void *ctx;
    /* A partition's HW, log start, role or existence changed (under the
     * partition's mutex): wake requests waiting on it. */
    void (*changed)(void *ctx, rpart *p);
} bmeta_hooks;

/* Opens everything described above; NULL on failure (logged, naming the
 * file or directory and what to do). */
bmeta *bmeta_open(const broker_config *cfg, storage_ctx *sc, const bmeta_hooks *hooks);
/* Closes the partitions and the metadata log, marks the roots clean.
 * Returns how many roots were not marked clean. */
int bmeta_close(bmeta *m);

/* The current image, referenced. */
md_image *bmeta_image(bmeta *m);
/* Whether the current image holds any client quota: a lock-free test the
 * request path makes before taking the image for quota enforcement. */
bool bmeta_has_quotas(bmeta *m);
const char *bmeta_cluster_id(const bmeta *m);
parts *bmeta_parts(bmeta *m);
logmgr *bmeta_logmgr(bmeta *m);

/* The local partition `index` of topic t (in img), referenced, or NULL
 * with *err: UNKNOWN_TOPIC_OR_PARTITION when the image has no such
 * partition, NOT_LEADER_OR_FOLLOWER when this broker holds no replica. */
rpart *bmeta_partition(bmeta *m, const md_topic *t, int32_t index, int16_t *err);

/* ---- admin (answers inside the call on a single node) ----------------------------- */

/* Each fills out[0..n) (one result per item, in order; out of memory makes
 * every item UNKNOWN_SERVER_ERROR) and returns 0. */
int bmeta_create_topics(bmeta *m, const ctrl_new_topic *t, int32_t n, bool validate_only,
                        ctrl_item_result *out);
int bmeta_delete_topics(bmeta *m, const ctrl_topic_ref *t, int32_t n, ctrl_item_result *out);
int bmeta_create_partitions(bmeta *m, const ctrl_new_partitions *t, int32_t n, bool validate_only,
                            ctrl_item_result *out);
int bmeta_alter_configs(bmeta *m, const ctrl_resource *r, int32_t n, bool incremental, bool validate_only,
                        ctrl_item_result *out);

/* Housekeeping, about once a second: the partitions' (roll, flush,
 * retention, offline retries), the metadata log's, a snapshot when due, the
 * controller's timeouts. now: wall clock ms. */
void bmeta_tick(bmeta *m, int64_t now);

/* ---- a quorum member ------------------------------------------------------------ */

/* ElectLeaders (one result per partition) and UnregisterBroker, at the
 * active controller (NOT_CONTROLLER elsewhere). */
int bmeta_elect_leaders(bmeta *m, int8_t type, const ctrl_partition_ref *parts, int32_t n,
                        ctrl_item_result *out);
int bmeta_unregister_broker(bmeta *m, int32_t id, ctrl_item_result *out);
/* UpdateFeatures through this node's controller (ctrl_update_features). */
int bmeta_update_features(bmeta *m, const ctrl_feature_update *u, int32_t n, bool validate_only,
                          ctrl_item_result *out);
/* AlterPartition from a partition leader (one result per change). */
int bmeta_alter_partition(bmeta *m, int32_t broker_id, int64_t broker_epoch, const ctrl_isr_change *ch,
                          int32_t n, ctrl_item_result *out);

/* A broker's registration (BrokerRegistration reaching the active
 * controller): answered when committed. */
int bmeta_register_broker(bmeta *m, const ctrl_broker_reg *reg, ctrl_item_result *out);
/* The active controller's controller listener, when it is another node:
 * where admin requests are forwarded. False on a single node, when this
 * node is the active controller, or while none is elected. */
bool bmeta_controller_address(bmeta *m, int32_t *id, char *host, size_t hostn, uint16_t *port);
bool bmeta_is_quorum_member(const bmeta *m);

/* The client address (first endpoint) of registered, unfenced broker id,
 * and this broker's registered epoch (-1: not registered). false when id
 * is unknown or fenced. */
bool bmeta_broker_address(bmeta *m, int32_t id, char *host, size_t hostn, uint16_t *port,
                          int64_t *self_epoch);
/* A user's SCRAM credential for mechanism mech (security/sasl.h numbering)
 * from the current image: 0, or -1 if the user has none. */
struct sasl_scram_cred;
int bmeta_scram_credential(bmeta *m, const char *user, int mech, struct sasl_scram_cred *out);
/* AlterUserScramCredentials through the controller: out[i] for ops[i]. */
int bmeta_alter_scram(bmeta *m, const ctrl_scram_op *ops, int32_t n, ctrl_item_result *out);
/* CreateAcls and DeleteAcls through the controller: out[i] for ops[i]. */
int bmeta_alter_acls(bmeta *m, const ctrl_acl_op *ops, int32_t n, ctrl_item_result *out);
/* AlterClientQuotas through the controller: out[i] for entries[i]. */
int bmeta_alter_quotas(bmeta *m, const ctrl_quota_entry *entries, int32_t n, ctrl_item_result *out);
/* Waits (at most 2 s) until the image holds every named topic: a creation
 * committed elsewhere reaches this node's image a moment later. */
void bmeta_wait_topics(bmeta *m, const kstr *names, int32_t n);
/* BrokerHeartbeat reaching the active controller; NOT_CONTROLLER elsewhere. */
int16_t bmeta_broker_heartbeat(bmeta *m, int32_t id, int64_t epoch, bool want_shut_down, bool *fenced,
                               bool *shut_down);
/* A quorum member's controlled shutdown, before the broker stops serving:
 * it asks the active controller (itself, or over BrokerHeartbeat) to fence
 * it now, so clients and leaderships leave it at once rather than after
 * broker.session.timeout.ms; waits at most a few seconds for the commit. */
void bmeta_controlled_shutdown(bmeta *m);
/* Then, before the listeners drain: the controller stops (waiting requests
 * are answered NOT_CONTROLLER) and the quorum refuses requests. */
void bmeta_quiesce(bmeta *m);
bool bmeta_is_active_controller(bmeta *m);
struct bquorum;
struct bquorum *bmeta_quorum(bmeta *m);

/* AllocateProducerIds on this node's controller (a single node, or the
 * active controller): a block of CTRL_PRODUCER_ID_BLOCK ids recorded in the
 * metadata log; *start its first id. broker_epoch -1 for this node itself.
 * Returns 0 or a Kafka error (NOT_CONTROLLER elsewhere). */
int16_t bmeta_allocate_producer_ids(bmeta *m, int32_t broker_id, int64_t broker_epoch, int64_t *start);

/* Forces a snapshot now (tests, benchmarks). 0 or -1 (logged). */
int bmeta_snapshot(bmeta *m);

#endif
