/*
 * api_quotas.c - DescribeClientQuotas (48) and AlterClientQuotas (49)
 * (KIP-546) over the client quotas of the metadata image
 * (ClientQuotaRecord, written by the controller; metadata/quotas.h holds
 * them, broker/quota.h enforces them).
 *
 * Entities: "user", "client-id" (alone or together) and "ip" (alone), each
 * a name or the default (a null name). Keys: producer_byte_rate and
 * consumer_byte_rate (whole numbers), request_percentage and
 * controller_mutation_rate for user and client-id entities,
 * connection_creation_rate (a whole number) for ip entities; every value
 * must be above 0. What Kafka's controller refuses is refused the same way:
 * INVALID_REQUEST with the reason, per entry, for an unknown key, a bad
 * value or a bad entity combination. Describe answers, as Kafka does,
 * INVALID_REQUEST for a malformed filter and UNSUPPORTED_VERSION for an
 * unknown entity or match type.
 *
 * Alter is forwarded to the active controller (request.c); it needs
 * ALTER_CONFIGS on the cluster with an authorizer, Describe DESCRIBE_CONFIGS.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/quota.h"
#include "broker/sasl.h"
#include "core/log.h"

static bool kstr_is(kstr s, const char *c) {
    size_t n = strlen(c);
    return s.len == (int32_t)n && memcmp(s.ptr, c, n) == 0;
}

static bool known_type(kstr t) {
    return kstr_is(t, QUOTA_ENTITY_USER) || kstr_is(t, QUOTA_ENTITY_CLIENT_ID) || kstr_is(t, QUOTA_ENTITY_IP);
}

/* ---- DescribeClientQuotas ------------------------------------------------------------ */

#define MATCH_EXACT     0
#define MATCH_DEFAULT   1
#define MATCH_SPECIFIED 2

typedef kafka_describe_client_quotas_request_component_data component;
typedef kafka_describe_client_quotas_response_entry_data entry;

static const char *part_name(const md_quota *q, kstr type, bool *has) {
    for (int32_t i = 0; i < q->n_parts; i++)
        if (kstr_is(type, q->parts[i].type)) {
            *has = true;
            return q->parts[i].name;
        }
    *has = false;
    return NULL;
}

static bool filter_matches(const md_quota *q, const component *c, int32_t n, bool strict) {
    if (strict && q->n_parts != n)
        return false;
    for (int32_t i = 0; i < n; i++) {
        bool has;
        const char *name = part_name(q, c[i].entity_type, &has);
        if (!has)
            return false;
        if (c[i].match_type == MATCH_EXACT && (name == NULL || !kstr_is(c[i].match, name)))
            return false;
        if (c[i].match_type == MATCH_DEFAULT && name != NULL)
            return false;
    }
    return true;
}

/* Why the filter cannot be answered (NULL when it can); *err is the code. */
static const char *filter_invalid(const component *c, int32_t n, int16_t *err, char *buf, size_t bufn) {
    bool ip = false, other = false;
    *err = KAFKA_ERR_INVALID_REQUEST;
    /* Three types exist and none may repeat: more is malformed (and the
     * checks below stay O(1)). */
    if (n > 3)
        return "A filter has at most one component per entity type.";
    for (int32_t i = 0; i < n; i++) {
        if (c[i].entity_type.len <= 0)
            return "Invalid empty entity type.";
        for (int32_t k = 0; k < i; k++)
            if (c[k].entity_type.len == c[i].entity_type.len &&
                memcmp(c[k].entity_type.ptr, c[i].entity_type.ptr, (size_t)c[i].entity_type.len) == 0) {
                snprintf(buf, bufn, "Entity type %.*s cannot appear more than once in the filter.",
                         (int)c[i].entity_type.len, c[i].entity_type.ptr);
                return buf;
            }
        if (!known_type(c[i].entity_type)) {
            *err = KAFKA_ERR_UNSUPPORTED_VERSION;
            snprintf(buf, bufn, "Unsupported entity type %.*s", (int)c[i].entity_type.len,
                     c[i].entity_type.ptr);
            return buf;
        }
        if (c[i].match_type == MATCH_EXACT && c[i].match.len < 0)
            return "Request specified MATCH_TYPE_EXACT, but set match string to null.";
        if (c[i].match_type == MATCH_DEFAULT && c[i].match.len >= 0)
            return "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.";
        if (c[i].match_type == MATCH_SPECIFIED && c[i].match.len >= 0)
            return "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.";
        if (c[i].match_type < MATCH_EXACT || c[i].match_type > MATCH_SPECIFIED) {
            *err = KAFKA_ERR_UNSUPPORTED_VERSION;
            snprintf(buf, bufn, "Unknown match type %d", c[i].match_type);
            return buf;
        }
        if (kstr_is(c[i].entity_type, QUOTA_ENTITY_IP))
            ip = true;
        else
            other = true;
    }
    if (ip && other)
        return "Invalid entity filter component combination. IP filter component should not be used with "
               "user or clientId filter component.";
    return NULL;
}

breq_status api_describe_client_quotas(breq *r) {
    const kafka_describe_client_quotas_request *req = r->req;
    kafka_describe_client_quotas_response *resp = r->resp;
    resp->entries_count = -1;
    if (!bauthz_cluster(r, ACL_OP_DESCRIBE_CONFIGS)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->error_message = kstr_c("Authorization failed (CLUSTER DESCRIBE_CONFIGS)");
        return BREQ_DONE;
    }
    int32_t nc = req->components_count > 0 ? req->components_count : 0;
    char buf[160];
    int16_t err;
    const char *why = filter_invalid(req->components, nc, &err, buf, sizeof buf);
    if (why != NULL) {
        resp->error_code = err;
        resp->error_message = api_kstr(r, why);
        return BREQ_DONE;
    }
    md_image *img = bmeta_image(r->b->meta);
    const md_quota_set *s = md_image_quotas(img);
    int32_t total = md_quota_set_count(s), hits = 0;
    for (int32_t i = 0; i < total; i++)
        hits += filter_matches(md_quota_set_at(s, i), req->components, nc, req->strict);
    entry *out = breq_calloc(r, (size_t)(hits ? hits : 1), sizeof *out);
    if (out == NULL) {
        md_image_unref(img);
        return BREQ_CLOSE;
    }
    int32_t n = 0;
    for (int32_t i = 0; i < total && n < hits; i++) {
        const md_quota *q = md_quota_set_at(s, i);
        if (!filter_matches(q, req->components, nc, req->strict))
            continue;
        entry *e = &out[n++];
        kafka_describe_client_quotas_response_entry_data_init(e);
        e->entity = breq_calloc(r, (size_t)q->n_parts, sizeof *e->entity);
        e->values = breq_calloc(r, (size_t)q->n_values, sizeof *e->values);
        if (e->entity == NULL || e->values == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        e->entity_count = q->n_parts;
        for (int32_t k = 0; k < q->n_parts; k++) {
            kafka_describe_client_quotas_response_entity_data_init(&e->entity[k]);
            e->entity[k].entity_type = api_kstr(r, q->parts[k].type);
            e->entity[k].entity_name = q->parts[k].name ? api_kstr(r, q->parts[k].name) : KSTR_NULL;
        }
        e->values_count = q->n_values;
        for (int32_t k = 0; k < q->n_values; k++) {
            kafka_describe_client_quotas_response_value_data_init(&e->values[k]);
            e->values[k].key = api_kstr(r, q->values[k].key);
            e->values[k].value = q->values[k].value;
        }
    }
    md_image_unref(img);
    resp->error_code = 0;
    resp->entries = out;
    resp->entries_count = n;
    return BREQ_DONE;
}

/* ---- AlterClientQuotas ---------------------------------------------------------------- */

typedef kafka_alter_client_quotas_request_entry_data alter_entry;

/* Kafka's key types: whole numbers or doubles, for which entity kinds. */
typedef struct quota_key {
    const char *name;
    bool whole;
    bool ip; /* an ip entity's key, else a user or client-id entity's */
} quota_key;

static const quota_key quota_keys[] = {
    {QUOTA_KEY_PRODUCER_BYTE_RATE, true, false},      {QUOTA_KEY_CONSUMER_BYTE_RATE, true, false},
    {QUOTA_KEY_REQUEST_PERCENTAGE, false, false},     {QUOTA_KEY_CONTROLLER_MUTATION_RATE, false, false},
    {QUOTA_KEY_CONNECTION_CREATION_RATE, true, true},
};

static const quota_key *find_key(kstr k) {
    for (size_t i = 0; i < sizeof quota_keys / sizeof quota_keys[0]; i++)
        if (kstr_is(k, quota_keys[i].name))
            return &quota_keys[i];
    return NULL;
}

/* Why the entry cannot be applied (NULL when it can). */
static const char *entry_invalid(const alter_entry *e, char *buf, size_t bufn) {
    int32_t n = e->entity_count > 0 ? e->entity_count : 0;
    if (n == 0)
        return "Invalid empty client quota entity";
    if (n > 3)
        return "An entity has at most one user, one client-id and one ip component";
    if (e->ops_count > MD_QUOTA_KEYS_MAX)
        return "An entry may change at most 32 quota keys";
    bool ip = false;
    for (int32_t i = 0; i < n; i++) {
        kstr t = e->entity[i].entity_type;
        if (!known_type(t)) {
            snprintf(buf, bufn, "Unhandled client quota entity type: %.*s", (int)(t.len > 0 ? t.len : 0),
                     t.len > 0 ? t.ptr : "");
            return buf;
        }
        for (int32_t k = 0; k < i; k++)
            if (e->entity[k].entity_type.len == t.len &&
                memcmp(e->entity[k].entity_type.ptr, t.ptr, (size_t)t.len) == 0) {
                snprintf(buf, bufn, "Duplicate %.*s entity in the client quota entity", (int)t.len, t.ptr);
                return buf;
            }
        if (kstr_is(t, QUOTA_ENTITY_IP)) {
            ip = true;
            kstr nm = e->entity[i].entity_name;
            char addr[64];
            unsigned char bin[16];
            if (nm.len >= 0 &&
                (nm.len >= (int32_t)sizeof addr ||
                 (memcpy(addr, nm.ptr, (size_t)nm.len), addr[nm.len] = '\0',
                  inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1))) {
                snprintf(buf, bufn, "%.*s is not a valid IP address", (int)(nm.len < 64 ? nm.len : 64),
                         nm.ptr);
                return buf;
            }
        }
    }
    if (ip && n > 1)
        return "Invalid quota entity combination, IP entity should not be used with user/client ID entity.";
    md_quota_comp comp[2];
    for (int32_t i = 0; i < n; i++)
        comp[i] = (md_quota_comp){e->entity[i].entity_type, e->entity[i].entity_name};
    const char *bad = md_quota_entity_invalid(comp, n);
    if (bad != NULL)
        return bad;
    int32_t nops = e->ops_count > 0 ? e->ops_count : 0;
    for (int32_t i = 0; i < nops; i++) {
        const kafka_alter_client_quotas_request_op_data *op = &e->ops[i];
        const quota_key *k = find_key(op->key);
        if (k == NULL || k->ip != ip) {
            snprintf(buf, bufn, "Invalid configuration key %.*s", (int)(op->key.len > 0 ? op->key.len : 0),
                     op->key.len > 0 ? op->key.ptr : "");
            return buf;
        }
        for (int32_t j = 0; j < i; j++)
            if (kstr_is(e->ops[j].key, k->name)) {
                snprintf(buf, bufn, "Duplicate quota key %s in one entry", k->name);
                return buf;
            }
        if (op->remove)
            continue;
        if (!isfinite(op->value) || op->value <= 0.0) {
            snprintf(buf, bufn, "Quota %s must be greater than 0", k->name);
            return buf;
        }
        if (k->whole && (fabs(fmod(op->value, 1.0)) > 1e-6 || op->value > 9.2e18)) {
            snprintf(buf, bufn, "%s cannot be a fractional value.", k->name);
            return buf;
        }
        if (k->whole && k->ip && op->value > 2147483647.0) {
            snprintf(buf, bufn, "Proposed value for %s is too large for an INT.", k->name);
            return buf;
        }
    }
    return NULL;
}

breq_status api_alter_client_quotas(breq *r) {
    const kafka_alter_client_quotas_request *req = r->req;
    kafka_alter_client_quotas_response *resp = r->resp;
    int32_t n = req->entries_count > 0 ? req->entries_count : 0;
    typedef kafka_alter_client_quotas_response_entry_data out_entry;
    out_entry *out = breq_calloc(r, (size_t)(n ? n : 1), sizeof *out);
    ctrl_quota_entry *ents = breq_calloc(r, (size_t)(n ? n : 1), sizeof *ents);
    int32_t *ent_of = breq_calloc(r, (size_t)(n ? n : 1), sizeof *ent_of);
    ctrl_item_result *res = breq_calloc(r, (size_t)(n ? n : 1), sizeof *res);
    if (out == NULL || ents == NULL || ent_of == NULL || res == NULL)
        return BREQ_CLOSE;
    resp->entries = out;
    resp->entries_count = n;
    bool denied = !bauthz_cluster(r, ACL_OP_ALTER_CONFIGS);
    int32_t nents = 0, bad = 0;
    for (int32_t i = 0; i < n; i++) {
        const alter_entry *e = &req->entries[i];
        out_entry *o = &out[i];
        kafka_alter_client_quotas_response_entry_data_init(o);
        o->error_message = KSTR_NULL;
        int32_t ne = e->entity_count > 0 ? e->entity_count : 0;
        o->entity = breq_calloc(r, (size_t)(ne ? ne : 1), sizeof *o->entity);
        if (o->entity == NULL)
            return BREQ_CLOSE;
        o->entity_count = ne;
        for (int32_t k = 0; k < ne; k++) {
            kafka_alter_client_quotas_response_entity_data_init(&o->entity[k]);
            o->entity[k].entity_type = e->entity[k].entity_type;
            o->entity[k].entity_name = e->entity[k].entity_name;
        }
        ent_of[i] = -1;
        if (denied) {
            o->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
            o->error_message = kstr_c("Authorization failed (CLUSTER ALTER_CONFIGS)");
            continue;
        }
        char buf[160];
        const char *why = entry_invalid(e, buf, sizeof buf);
        if (why != NULL) {
            o->error_code = KAFKA_ERR_INVALID_REQUEST;
            o->error_message = api_kstr(r, why);
            bad++;
            continue;
        }
        if (req->validate_only)
            continue;
        int32_t nops = e->ops_count > 0 ? e->ops_count : 0;
        ctrl_quota_op *ops = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *ops);
        if (ops == NULL)
            return BREQ_CLOSE;
        for (int32_t k = 0; k < nops; k++)
            ops[k] = (ctrl_quota_op){e->ops[k].key, e->ops[k].value, e->ops[k].remove};
        ctrl_quota_entry *ce = &ents[nents];
        ce->n_entity = ne;
        for (int32_t k = 0; k < ne; k++)
            ce->entity[k] = (md_quota_comp){e->entity[k].entity_type, e->entity[k].entity_name};
        ce->ops = ops;
        ce->n_ops = nops;
        ent_of[i] = nents++;
    }
    if (nents > 0)
        bmeta_alter_quotas(r->b->meta, ents, nents, res);
    int32_t done = 0;
    for (int32_t i = 0; i < n; i++) {
        if (ent_of[i] < 0)
            continue;
        const ctrl_item_result *it = &res[ent_of[i]];
        out[i].error_code = it->error;
        out[i].error_message = it->error && it->message[0] ? api_kstr(r, it->message) : KSTR_NULL;
        done += it->error == 0;
    }
    if (!denied)
        LOG_INFO("broker", "AlterClientQuotas from %s (%s)%s: %d entries, %d changed, %d refused",
                 r->net->peer, bsasl_principal(r), req->validate_only ? " (validate only)" : "", n, done,
                 bad);
    return BREQ_DONE;
}
