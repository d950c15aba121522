/*
 * quotas.h - the client quotas of the metadata image (ClientQuotaRecord):
 * which entity has which quota values.
 *
 * An entity is one or two components, each a type ("user", "client-id",
 * "ip") and a name, or the type's default (a NULL name: Kafka's
 * <default>). A quota is a key ("producer_byte_rate", ...) and a double.
 * The set keeps, per entity, the keys set for it; an entity without keys
 * is not kept (removing its last key removes it).
 *
 * Entities are found by their canonical key (md_quota_key): the components
 * in type order, each "type", 0x1e, then '=' and the name or 0x1f for the
 * default, then 0x1d. Names and types never hold control characters (the
 * set refuses them), so two entities never share a key. The set is sorted
 * by that key, so lookups are binary searches and iteration is stable.
 *
 * Sharing: a set is reference counted and shared by images until a delta
 * changes it; the delta then changes its own copy (md_quota_set_copy).
 * A published set never changes, so readers need no lock.
 */
#ifndef SLUICE_METADATA_QUOTAS_H
#define SLUICE_METADATA_QUOTAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define MD_QUOTA_ENTITIES_MAX 100000 /* entities the cluster keeps */
#define MD_QUOTA_KEYS_MAX     32     /* keys per entity */
#define MD_QUOTA_NAME_MAX     255    /* an entity name (user, client id) */
#define MD_QUOTA_TYPE_MAX     32     /* an entity type */
#define MD_QUOTA_KEY_NAME_MAX 64     /* a quota key */
/* A canonical entity key: two components of type, name and separators. */
#define MD_QUOTA_EKEY_MAX (2 * (MD_QUOTA_TYPE_MAX + MD_QUOTA_NAME_MAX + 3) + 1)

typedef struct md_quota_part {
    char *type;
    char *name; /* NULL: the default entity of the type */
} md_quota_part;

typedef struct md_quota_value {
    char *key;
    double value;
} md_quota_value;

typedef struct md_quota {
    char *ekey; /* canonical key */
    md_quota_part parts[2];
    int32_t n_parts;        /* 1 or 2, sorted by type */
    md_quota_value *values; /* sorted by key, n_values >= 1 */
    int32_t n_values;
} md_quota;

typedef struct md_quota_set md_quota_set;

/* An entity component for md_quota_key and md_quota_set_apply: type and
 * name as wire strings (a null name: the default). */
typedef struct md_quota_comp {
    kstr type;
    kstr name;
} md_quota_comp;

/* Why an entity cannot be kept (NULL when it can): no or more than two
 * components, a repeated type, an empty type, a control character, a name
 * or type too long. */
const char *md_quota_entity_invalid(const md_quota_comp *c, int32_t n);
/* Writes the canonical key of a valid entity into out (MD_QUOTA_EKEY_MAX).
 * Returns its length, or -1 if the entity is invalid. */
int md_quota_key(const md_quota_comp *c, int32_t n, char *out);

md_quota_set *md_quota_set_ref(md_quota_set *s);
void md_quota_set_unref(md_quota_set *s);
/* A private copy (an empty set for NULL); NULL when memory runs out. */
md_quota_set *md_quota_set_copy(const md_quota_set *s);

/* Sets (remove false) or removes one key of an entity. 0; -1 with why for
 * an invalid entity, key or value (not finite); -2 past
 * MD_QUOTA_ENTITIES_MAX or MD_QUOTA_KEYS_MAX; -3 out of memory. Removing
 * a key that is not set succeeds and changes nothing. */
int md_quota_set_apply(md_quota_set *s, const md_quota_comp *c, int32_t n, kstr key, double value,
                       bool remove, const char **why);

int32_t md_quota_set_count(const md_quota_set *s); /* 0 for NULL */
const md_quota *md_quota_set_at(const md_quota_set *s, int32_t i);
/* The entity with this canonical key, or NULL. */
const md_quota *md_quota_set_find(const md_quota_set *s, const char *ekey);
/* The value of key for q; false when not set. */
bool md_quota_get(const md_quota *q, const char *key, double *out);

bool md_quota_set_equal(const md_quota_set *a, const md_quota_set *b);

#endif
