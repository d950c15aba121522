/*
 * api_util.h - small helpers shared by the metadata and admin API handlers
 * (api_metadata.c, api_topics.c, api_configs.c, api_cluster.c).
 *
 * Everything here allocates from the request's arena, so what it returns
 * lives exactly as long as the request and needs no freeing. Strings that a
 * response points at must be copied into the arena (api_kstr) when their
 * source may go away before the response is encoded: a topic's name, once the
 * handler has released its reference, or a stack buffer holding a message.
 */
#ifndef SLUICE_BROKER_API_UTIL_H
#define SLUICE_BROKER_API_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/request.h"
#include "metadata/image.h"

/* Kafka's ConfigResource types (DescribeConfigs, AlterConfigs, ...). */
#define API_RESOURCE_TOPIC         2
#define API_RESOURCE_BROKER        4
#define API_RESOURCE_BROKER_LOGGER 8

/* A NUL-terminated copy of s in the arena; NULL if s is null or memory ran
 * out (check api_oom() to tell the two apart when it matters). */
char *api_cstr(breq *r, kstr s);
/* A kstr holding a copy of s in the arena; null if s is NULL. On memory
 * exhaustion it returns an empty string, which is still a valid response. */
kstr api_kstr(breq *r, const char *s);
/* A copy of a kstr into the arena (same null and exhaustion rules). */
kstr api_kstr_dup(breq *r, kstr s);

/* For n request entries whose first member is a kstr name (stride bytes
 * apart): a flag per entry, true when its name occurs more than once. Sorts a
 * copy, so it costs O(n log n) however many entries a request carries. NULL
 * when memory ran out (or n == 0). */
bool *api_dup_flags(breq *r, const void *base, size_t stride, int32_t n);

/* The endpoint clients should use for this broker: the first advertised
 * client listener, with the bound port when the configured one is 0. */
void api_endpoint(const breq *r, const char **host, int32_t *port);
/* The brokers clients are told about: on a quorum member every registered
 * broker of img that is not fenced (this one with api_endpoint's address; the
 * strings are copies in the arena, so img may be released first),
 * on a single node this one. *out from the request's arena; the count, or
 * -1 when memory ran out. */
typedef struct api_broker {
    int32_t id;
    kstr host;
    int32_t port;
    kstr rack;
} api_broker;
int32_t api_brokers(breq *r, const md_image *img, api_broker **out);
/* The active controller's id as clients see it (this node on a single
 * node; -1 while a quorum has no leader). */
int32_t api_controller_id(const breq *r);

/* broker.rack as a kstr (null when unset). */
kstr api_rack(const breq *r);

/* A uuid as Kafka prints topic ids (22 characters of URL-safe base64 without
 * padding), for messages. buf must hold 23 bytes. */
void api_uuid_text(kuuid id, char buf[23]);

#endif
