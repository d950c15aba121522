/*
 * broker/authz.h - authorization of requests: the one place handlers ask
 * whether the connection's principal may do an operation on a resource.
 *
 * With authorizer.class.name unset the broker has no authorizer
 * (b->authz == NULL) and bauthz_allow() is true at the cost of one pointer
 * test, so the produce and fetch paths pay nothing. With it set, the
 * decision is security/acl.h's over the ACLs of the metadata image the
 * request took first (one image for the whole request, referenced until the
 * request is freed), super.users and allow.everyone.if.no.acl.found.
 *
 * The principal is bsasl_principal()'s ("User:<sasl user>",
 * "User:<certificate subject>", "User:ANONYMOUS"); the host is the peer's
 * address without its port.
 *
 * Requests that arrive on the controller listener are not authorized: that
 * listener (PLAINTEXT, see config_listeners.c) carries the quorum's RPCs,
 * registrations and admin requests that a broker forwards after it has
 * authorized them itself, so it must be reachable by cluster members only
 * (docs/security.md).
 *
 * Every denial is logged at INFO (rate-limited) with the principal, the
 * operation, the resource and the peer.
 */
#ifndef SLUICE_BROKER_AUTHZ_H
#define SLUICE_BROKER_AUTHZ_H

#include <stdbool.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/request.h"
#include "security/acl.h"

typedef struct bauthz {
    acl_policy policy;
} bauthz;

/* The authorizer cfg asks for: *out NULL when none. 0, or -1 logged when
 * super.users does not parse. */
int bauthz_create(const broker_config *cfg, bauthz **out);
void bauthz_destroy(bauthz *a);

/* Whether r is subject to authorization at all. */
static inline bool bauthz_on(const breq *r) { return r->b->authz != NULL && !r->controller_listener; }

/* Whether r's principal may do op on (type, name); logs a denial. Always
 * true when bauthz_on(r) is false. */
bool bauthz_allow_(breq *r, int8_t op, int8_t type, kstr name);
static inline bool bauthz_allow(breq *r, int8_t op, int8_t type, kstr name) {
    return !bauthz_on(r) || bauthz_allow_(r, op, type, name);
}
/* The same without the denial line, for filtering what a listing shows
 * (Metadata, ListGroups), where Kafka logs nothing either. */
bool bauthz_may_(breq *r, int8_t op, int8_t type, kstr name);
static inline bool bauthz_may(breq *r, int8_t op, int8_t type, kstr name) {
    return !bauthz_on(r) || bauthz_may_(r, op, type, name);
}
/* On the cluster resource. */
bool bauthz_cluster(breq *r, int8_t op);
/* CreateTopics and Metadata's auto-creation: CREATE on the cluster or on
 * the topic (one denial line, for the topic). */
bool bauthz_topic_create(breq *r, kstr topic);
/* A ConfigResource (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs):
 * topics by name, brokers and broker loggers as the cluster. */
bool bauthz_config_resource(breq *r, int8_t op, int8_t resource_type, kstr name);
/* For a request a broker forwards to the active controller (which does not
 * authorize what arrives on its controller listener): whether every item of
 * it is allowed here. When not, the broker answers it itself, so that the
 * denied items get their authorization errors. */
bool bauthz_forwardable(breq *r);

/* Kafka's authorized-operations bits of a resource for r's principal
 * (every operation the type has when bauthz_on(r) is false). */
int32_t bauthz_ops(breq *r, int8_t type, kstr name);
/* Whether the principal may WRITE some topic (InitProducerId without a
 * transactional id, as Kafka 3+ allows it instead of IDEMPOTENT_WRITE). */
bool bauthz_any_topic_write(breq *r);

/* The ACLs of the image r's checks use (taken now if not yet), alive as
 * long as r; NULL when there are none. */
const acl_set *bauthz_acls(breq *r);

/* Releases what bauthz took for r (request.c calls it when r is freed). */
void bauthz_release(breq *r);

#endif
