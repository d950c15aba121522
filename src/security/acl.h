/*
 * security/acl.h - Kafka's ACL model and the authorization decision, as a
 * pure module: no I/O, no clock, no threads, no locks.
 *
 * A binding (acl_entry) says: principal P from host H is ALLOWed or DENYed
 * operation O on resources of type T whose name is N (LITERAL; N "*" is
 * every name) or starts with N (PREFIXED). An acl_set holds bindings
 * indexed for the decision; acl_authorize() makes it with Kafka's rules:
 *
 *  - a super user (super.users) may do everything;
 *  - the bindings that apply are those on the resource (literal name, the
 *    literal "*", every prefixed binding whose name starts the resource's
 *    name) for the principal or "User:*" and for the host or "*";
 *  - a DENY for the operation or for ALL wins over any ALLOW;
 *  - an ALLOW for the operation, for ALL, or for an operation implying it
 *    (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
 *    DESCRIBE_CONFIGS) allows;
 *  - a resource with no binding at all (for anyone) is allowed only when
 *    allow.everyone.if.no.acl.found is true.
 *
 * Cost of a decision: bindings are sorted by (resource type, pattern type,
 * name, ...), so the literal and "*" bindings are found by binary search,
 * and the prefixed ones by one binary search per prefix length of the name
 * (skipped when the type has no prefixed binding): O(L log n) for a name of
 * L bytes and n bindings, plus the bindings that apply.
 *
 * Filters (DescribeAcls, DeleteAcls) match as Kafka's AclBindingFilter:
 * ANY matches every value of a field, a null name or principal or host
 * every value; pattern type MATCH matches the bindings that would apply to
 * the named resource (literal name, literal "*", prefixes of it).
 *
 * Codes are Kafka's wire codes (AclOperation, AclPermissionType,
 * ResourceType, PatternType), so requests and records carry them as is.
 */
#ifndef SLUICE_SECURITY_ACL_H
#define SLUICE_SECURITY_ACL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

enum {
    ACL_RES_UNKNOWN = 0,
    ACL_RES_ANY = 1,
    ACL_RES_TOPIC = 2,
    ACL_RES_GROUP = 3,
    ACL_RES_CLUSTER = 4,
    ACL_RES_TRANSACTIONAL_ID = 5,
    ACL_RES_DELEGATION_TOKEN = 6,
    ACL_RES_USER = 7,
};

enum {
    ACL_PAT_UNKNOWN = 0,
    ACL_PAT_ANY = 1,
    ACL_PAT_MATCH = 2,
    ACL_PAT_LITERAL = 3,
    ACL_PAT_PREFIXED = 4,
};

enum {
    ACL_OP_UNKNOWN = 0,
    ACL_OP_ANY = 1,
    ACL_OP_ALL = 2,
    ACL_OP_READ = 3,
    ACL_OP_WRITE = 4,
    ACL_OP_CREATE = 5,
    ACL_OP_DELETE = 6,
    ACL_OP_ALTER = 7,
    ACL_OP_DESCRIBE = 8,
    ACL_OP_CLUSTER_ACTION = 9,
    ACL_OP_DESCRIBE_CONFIGS = 10,
    ACL_OP_ALTER_CONFIGS = 11,
    ACL_OP_IDEMPOTENT_WRITE = 12,
    ACL_OP_CREATE_TOKENS = 13,
    ACL_OP_DESCRIBE_TOKENS = 14,
};

enum {
    ACL_PERM_UNKNOWN = 0,
    ACL_PERM_ANY = 1,
    ACL_PERM_DENY = 2,
    ACL_PERM_ALLOW = 3,
};

#define ACL_NAME_MAX      1024   /* resource names, principals, hosts (bytes) */
#define ACL_BINDINGS_MAX  100000 /* bindings in a set */
#define ACL_CLUSTER_NAME  "kafka-cluster"
#define ACL_WILDCARD      "*"
#define ACL_ANY_PRINCIPAL "User:*"
/* authorizer.class.name of Kafka's KRaft authorizer, the one Sluice has. */
#define ACL_AUTHORIZER_CLASS "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

/* One binding. Strings are NUL-terminated and owned by the set. */
typedef struct acl_entry {
    kuuid id; /* the AccessControlEntryRecord's id */
    int8_t resource_type, pattern_type, operation, permission;
    char *name, *principal, *host;
} acl_entry;

/* A binding or filter as a request carries it (strings not terminated;
 * len < 0: null, which only filters allow). */
typedef struct acl_spec {
    int8_t resource_type, pattern_type, operation, permission;
    kstr name, principal, host;
} acl_spec;

/* NULL when s is a binding that may be created, else why not (Kafka answers
 * INVALID_REQUEST with it): a concrete resource type, LITERAL or PREFIXED,
 * a concrete operation and ALLOW or DENY, a non-empty name (kafka-cluster
 * for CLUSTER), a principal "<type>:<name>", a non-empty host, lengths
 * within ACL_NAME_MAX. */
const char *acl_binding_invalid(const acl_spec *s);
/* NULL when s is a usable filter (no UNKNOWN code), else why not. */
const char *acl_filter_invalid(const acl_spec *f);
/* Whether filter f matches binding e (Kafka's AclBindingFilter.matches). */
bool acl_filter_matches(const acl_spec *f, const acl_entry *e);
/* Whether binding e is exactly the one s describes (id aside). */
bool acl_entry_is(const acl_entry *e, const acl_spec *s);

/* ---- sets ------------------------------------------------------------------------- */

typedef struct acl_set acl_set;

/* An empty set, or NULL when memory runs out. */
acl_set *acl_set_new(void);
/* A deep copy (NULL on OOM) for a writer that changes a set others read. */
acl_set *acl_set_copy(const acl_set *s);
/* Reference counting for readers sharing a set (starts at one). */
acl_set *acl_set_ref(acl_set *s);
void acl_set_unref(acl_set *s);

/* Adds a binding with id; the strings are copied. 0; -1 when the id exists
 * already, -2 when the set is full (ACL_BINDINGS_MAX), -3 on OOM, -4 when
 * the binding is invalid (acl_binding_invalid). */
int acl_set_add(acl_set *s, kuuid id, const acl_spec *b);
/* Removes the binding with id: 0, or -1 when there is none. */
int acl_set_remove(acl_set *s, kuuid id);
const acl_entry *acl_set_by_id(const acl_set *s, kuuid id);
/* The same binding (all fields but the id), or NULL. */
const acl_entry *acl_set_find(const acl_set *s, const acl_spec *b);

/* Bindings in the set's order: by resource type, pattern type, name,
 * principal, host, operation, permission. s may be NULL (empty). */
int32_t acl_set_count(const acl_set *s);
const acl_entry *acl_set_at(const acl_set *s, int32_t i);

/* ---- the decision ----------------------------------------------------------------- */

/* The authorizer's settings (super.users, allow.everyone.if.no.acl.found). */
typedef struct acl_policy {
    char **super_users;
    int32_t n_super;
    bool allow_if_no_acl;
} acl_policy;

/* Parses super.users ("User:a;User:b", blanks around entries ignored).
 * 0, or -1 with err filled for an entry that is not "<type>:<name>". */
int acl_policy_init(acl_policy *p, const char *super_users, bool allow_if_no_acl, char *err, size_t errn);
void acl_policy_free(acl_policy *p);
bool acl_is_super(const acl_policy *p, const char *principal);

/* Whether principal from host may do op on the resource (type, name).
 * s may be NULL (no bindings). */
bool acl_authorize(const acl_set *s, const acl_policy *p, const char *principal, const char *host, int8_t op,
                   int8_t resource_type, kstr name);

/* Kafka's authorized-operations bit field (bit i for operation code i) of
 * the operations a resource type has, for Metadata and DescribeGroups. */
int32_t acl_authorized_ops(const acl_set *s, const acl_policy *p, const char *principal, const char *host,
                           int8_t resource_type, kstr name);

/* Whether some ALLOW binding lets principal from host do op on some
 * resource of the type (true for a super user, and with
 * allow_if_no_acl when the type has no binding at all). Kafka uses it for
 * InitProducerId: WRITE on any topic stands for IDEMPOTENT_WRITE. O(n). */
bool acl_any_allowed(const acl_set *s, const acl_policy *p, const char *principal, const char *host,
                     int8_t op, int8_t resource_type);

/* Names for log lines and the CLI ("TOPIC", "READ", "ALLOW", "LITERAL"),
 * and back (case-insensitive; -1 when unknown). */
const char *acl_resource_type_name(int8_t t);
const char *acl_pattern_type_name(int8_t t);
const char *acl_operation_name(int8_t op);
const char *acl_permission_name(int8_t p);
int acl_resource_type_parse(const char *s);
int acl_pattern_type_parse(const char *s);
int acl_operation_parse(const char *s);

#endif
