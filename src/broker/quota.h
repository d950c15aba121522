/*
 * quota.h - client quota enforcement: which quota applies to a request,
 * the rate it is measured against, and how long the client is throttled.
 *
 * Quotas are the metadata image's (ClientQuotaRecord, metadata/quotas.h):
 * producer_byte_rate (bytes of Produce requests a second),
 * consumer_byte_rate (bytes of consumer Fetch responses a second, not
 * follower fetches), request_percentage (handler time as a percentage of
 * one thread) and controller_mutation_rate (partitions created or deleted
 * a second). For a user and a client id, the quota of a key is the first
 * entity of Kafka's precedence order that sets it:
 *
 *   /config/users/<user>/clients/<client-id>
 *   /config/users/<user>/clients/<default>
 *   /config/users/<user>
 *   /config/users/<default>/clients/<client-id>
 *   /config/users/<default>/clients/<default>
 *   /config/users/<default>
 *   /config/clients/<client-id>
 *   /config/clients/<default>
 *
 * The entity found decides what shares one rate, as in Kafka: a user and
 * client-id entity (named or default) measures each (user, client id)
 * pair, a user entity each user across its client ids, a client-id entity
 * each client id across users. Rates are core/rate.h's (quota.window.num
 * windows of quota.window.size.seconds).
 *
 * Throttle time: over the bound, Kafka's (rate - bound) / bound * span.
 * The request quota's is at most one window, as in Kafka. The controller
 * mutation quota is a token bucket instead (core/rate.h): burst bound *
 * quota.window.num * quota.window.size.seconds, throttle -tokens / bound. request.c sets
 * the response's throttle_time_ms to the largest and has the network
 * layer mute the connection that long after the response (KIP-219).
 *
 * Limits: at most BQUOTA_RATES_MAX rates are kept; rates idle for the
 * whole span are dropped first when the table is full, then the least
 * recently used. The user is the principal's name without "User:"
 * (ANONYMOUS without authentication).
 *
 * Thread-safety: every call may come from any thread (one mutex over the
 * table; a call does a few lookups and a little arithmetic under it).
 */
#ifndef SLUICE_BROKER_QUOTA_H
#define SLUICE_BROKER_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "metadata/image.h"
#include "proto/wire.h"

#define QUOTA_ENTITY_USER      "user"
#define QUOTA_ENTITY_CLIENT_ID "client-id"
#define QUOTA_ENTITY_IP        "ip"

#define QUOTA_KEY_PRODUCER_BYTE_RATE       "producer_byte_rate"
#define QUOTA_KEY_CONSUMER_BYTE_RATE       "consumer_byte_rate"
#define QUOTA_KEY_REQUEST_PERCENTAGE       "request_percentage"
#define QUOTA_KEY_CONTROLLER_MUTATION_RATE "controller_mutation_rate"
#define QUOTA_KEY_CONNECTION_CREATION_RATE "connection_creation_rate"

#define BQUOTA_RATES_MAX 10000

typedef enum bquota_kind {
    BQUOTA_PRODUCE = 0,
    BQUOTA_FETCH,
    BQUOTA_REQUEST,
    BQUOTA_MUTATION,
    BQUOTA_KINDS
} bquota_kind;

typedef struct bquota bquota;

/* samples: quota.window.num; window_ms: quota.window.size.seconds * 1000. */
bquota *bquota_create(int32_t samples, int64_t window_ms);
void bquota_destroy(bquota *q);

/* The bound for kind that applies to (user, client_id) in img, and the
 * entity that set it (its canonical key, MD_QUOTA_EKEY_MAX) when found.
 * False when no entity sets one. user is the name without "User:". */
bool bquota_resolve(const md_image *img, bquota_kind kind, const char *user, kstr client_id, double *bound,
                    char *tag_user, size_t tag_user_n, char *tag_client, size_t tag_client_n);

/* Records value for (user, client_id) and returns the throttle time (ms)
 * it earns: 0 within the quota or without one. */
int64_t bquota_record(bquota *q, const md_image *img, bquota_kind kind, const char *user, kstr client_id,
                      double value, int64_t now_ms);

/* The controller mutation quota (a token bucket, as Kafka's KIP-599):
 * whether (user, client_id) is over it now, which strict mode (CreateTopics
 * v6+, CreatePartitions v3+, DeleteTopics v5+) answers with
 * THROTTLING_QUOTA_EXCEEDED, and how long until it is not. Mutations
 * (partitions created or deleted) are recorded with bquota_record(...,
 * BQUOTA_MUTATION, partitions, ...), which returns the throttle time. */
bool bquota_mutation_exceeded(bquota *q, const md_image *img, const char *user, kstr client_id,
                              int64_t now_ms);
int64_t bquota_mutation_wait_ms(bquota *q, const md_image *img, const char *user, kstr client_id,
                                int64_t now_ms);

/* Throttle time handed out since the start, per kind, for /metrics. */
typedef struct bquota_stats {
    uint64_t throttled[BQUOTA_KINDS];   /* responses throttled */
    uint64_t throttle_ms[BQUOTA_KINDS]; /* total throttle time given */
    uint64_t max_ms[BQUOTA_KINDS];      /* the largest single throttle */
    int64_t rates;                      /* rates kept now */
} bquota_stats;
void bquota_get_stats(bquota *q, bquota_stats *out);
/* "produce", "fetch", "request", "controller_mutation". */
const char *bquota_kind_name(bquota_kind kind);

/* Raises the throttle_time_ms of the response struct resp (API key,
 * version) to ms; false when that version has no such field. */
bool bquota_set_throttle_field(int16_t key, int16_t version, void *resp, int32_t ms);

#endif
