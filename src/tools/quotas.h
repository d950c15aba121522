/*
 * quotas.h - client quota calls shared by `sluice quotas` and
 * `sluice configs --entity-type users|clients` (tools/quotas.c).
 */
#ifndef SLUICE_TOOLS_QUOTAS_H
#define SLUICE_TOOLS_QUOTAS_H

#include <stdbool.h>

#include "tools/kclient.h"

#define QUOTAS_MAX_CHANGES 32

/* A user and/or a client id; a NULL name with has_* is the default, or
 * with *_any (describe only) any user or client id. */
typedef struct quota_entity {
    bool has_user, has_client;
    bool user_any, client_any;
    const char *user, *client;
} quota_entity;

typedef struct quota_change {
    char key[256];
    double value;
    bool remove;
} quota_change;

typedef struct quota_changes {
    quota_change items[QUOTAS_MAX_CHANGES];
    int n;
} quota_changes;

/* Adds "k=v,k2=v2" (with_values) or "k,k2" (removals) to q. CLI_OK or
 * CLI_EUSAGE after a message. */
int quotas_parse_changes(const char *cmd, quota_changes *q, const char *s, bool with_values);
/* DescribeClientQuotas for what matches e (everything when e names
 * nothing), printed; an exit code. */
int quotas_describe(const kc_opts *o, const quota_entity *e, bool strict, bool json);
/* AlterClientQuotas of e; an exit code. */
int quotas_alter(const kc_opts *o, const quota_entity *e, const quota_changes *q, bool validate_only,
                 bool json);

#endif
