/*
 * api_configs.c - DescribeConfigs (key 32, v0-4), AlterConfigs (key 33, v0-2)
 * and IncrementalAlterConfigs (key 44, v0-1).
 *
 * Resources: topics (type 2) and this broker (type 4, named by its node id or
 * by the empty string). Anything else is answered with INVALID_REQUEST for
 * that resource alone.
 *
 * DescribeConfigs reports what config.h enumerates: for a topic every topic
 * key with its override (DYNAMIC_TOPIC_CONFIG), or the broker's explicitly set
 * synonym (STATIC_BROKER_CONFIG), or the default (DEFAULT_CONFIG); for the
 * broker every broker key as STATIC_BROKER_CONFIG or DEFAULT_CONFIG, all
 * read-only. Synonyms (v1+) list, most precise first, the topic override, then
 * each broker synonym that is explicitly set, then each broker synonym that
 * has a default, as Kafka does. Sensitive values are never sent.
 *
 * Altering: only topics. AlterConfigs replaces a topic's whole set of
 * overrides; IncrementalAlterConfigs changes the named keys only (SET,
 * DELETE, and APPEND / SUBTRACT for list keys such as cleanup.policy, which
 * start from the topic's current effective value). Either way the registry
 * validates everything before changing anything and logs the change durably
 * (topics_alter_config). Dynamic broker configuration does not exist yet, so a
 * broker resource is refused with INVALID_REQUEST and a message saying so;
 * Kafka answers INVALID_REQUEST too for keys that cannot change at runtime.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "core/log.h"

/* Bounds on what one resource of a request may carry. */
#define CONFIGS_PER_RESOURCE_MAX 1024
#define SYNONYMS_MAX             8
#define CONFIG_MSG_MAX           (CTRL_MSG_MAX + 128)

/* Incremental operation codes. */
enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

/* A topic's overrides as the image holds them, copied into the request. */
typedef struct overrides {
    const char **keys;
    const char **values;
    int n;
} overrides;

/* The overrides of topic t in img; false when the request's memory ran out. */
static bool copy_overrides(breq *r, const md_image *img, const md_topic *t, overrides *o) {
    const md_resource *res = md_image_resource(img, MD_RESOURCE_TOPIC, t->name);
    o->n = res ? res->n : 0;
    o->keys = o->n ? breq_calloc(r, (size_t)o->n, sizeof *o->keys) : NULL;
    o->values = o->n ? breq_calloc(r, (size_t)o->n, sizeof *o->values) : NULL;
    if (o->n && (o->keys == NULL || o->values == NULL))
        return false;
    for (int i = 0; i < o->n; i++) {
        o->keys[i] = api_cstr(r, kstr_c(res->items[i].key));
        o->values[i] = api_cstr(r, kstr_c(res->items[i].value));
        if (o->keys[i] == NULL || o->values[i] == NULL)
            return false;
    }
    return true;
}

/* The topic res names in img, or NULL with rc and msg set. */
static const md_topic *find_topic(const md_image *img, kstr name, int *rc, char *msg, size_t msgn) {
    const md_topic *t = md_image_topic(img, name);
    if (t != NULL)
        return t;
    if (ctrl_validate_topic_name(name, msg, msgn) != 0) {
        *rc = KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    } else {
        snprintf(msg, msgn, "The topic '%.*s' does not exist.", name.len, name.ptr);
        *rc = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    return NULL;
}

/* Parses a broker resource name: "" or this node's id. Returns 0 or
 * INVALID_REQUEST with msg filled. */
static int check_broker_name(const broker *b, kstr name, char *msg, size_t msgn) {
    char want[16];
    snprintf(want, sizeof want, "%d", b->cfg->node_id);
    if (name.len == 0 || kstr_eq_c(name, want))
        return 0;
    snprintf(msg, msgn, "Unexpected broker id '%.*s': this is broker %s (or use an empty name).",
             name.len > 64 ? 64 : (name.len > 0 ? name.len : 0), name.len > 0 ? name.ptr : "", want);
    return KAFKA_ERR_INVALID_REQUEST;
}

/* ---- DescribeConfigs --------------------------------------------------- */

typedef kafka_describe_configs_response_describe_configs_resource_result dc_entry;
typedef kafka_describe_configs_response_describe_configs_synonym dc_synonym;

typedef struct dc_ctx {
    breq *r;
    const kafka_describe_configs_request *req;
    const kafka_describe_configs_request_describe_configs_resource *res;
    bool topic;
    dc_entry *out;
    int32_t n, cap;
    bool oom;
} dc_ctx;

static bool key_wanted(const kafka_describe_configs_request_describe_configs_resource *res,
                       const char *name) {
    if (res->configuration_keys_count < 0)
        return true;
    for (int32_t i = 0; i < res->configuration_keys_count; i++)
        if (kstr_eq_c(res->configuration_keys[i], name))
            return true;
    return false;
}

/* The synonyms of one entry, most precise first. */
static bool fill_synonyms(dc_ctx *c, dc_entry *o, const config_entry *e) {
    const broker_config *bc = c->r->b->cfg;
    const config_def *chain[SYNONYMS_MAX];
    size_t n = config_synonyms(e->name, c->topic, chain, SYNONYMS_MAX);
    size_t first_broker = c->topic ? 1 : 0;
    dc_synonym *s = breq_calloc(c->r, 2 * n + 1, sizeof *s);
    if (s == NULL)
        return false;
    int32_t k = 0;
    if (c->topic && e->source == CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)
        s[k++] = (dc_synonym){kstr_c(e->name), e->sensitive ? KSTR_NULL : api_kstr(c->r, e->value),
                              CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG};
    for (size_t i = first_broker; i < n; i++) {
        config_entry be;
        if (config_broker_entry(bc, chain[i]->name, &be) == 0 &&
            be.source == CONFIG_SOURCE_STATIC_BROKER_CONFIG)
            s[k++] =
                (dc_synonym){kstr_c(be.name), api_kstr(c->r, be.value), CONFIG_SOURCE_STATIC_BROKER_CONFIG};
    }
    for (size_t i = first_broker; i < n; i++)
        if (chain[i]->dflt != NULL)
            s[k++] = (dc_synonym){kstr_c(chain[i]->name),
                                  (chain[i]->flags & CONFIG_F_SENSITIVE) ? KSTR_NULL : kstr_c(chain[i]->dflt),
                                  CONFIG_SOURCE_DEFAULT_CONFIG};
    assert((size_t)k <= 2 * n + 1);
    o->synonyms = s;
    o->synonyms_count = k;
    return true;
}

static int dc_visit(void *ctx, const config_entry *e) {
    dc_ctx *c = ctx;
    int16_t ver = c->r->hdr.api_version;
    if (!key_wanted(c->res, e->name))
        return 0;
    if (c->n >= c->cap)
        return 1;
    dc_entry *o = &c->out[c->n++];
    kafka_describe_configs_response_describe_configs_resource_result_init(o);
    o->name = kstr_c(e->name); /* table names are static */
    o->value = e->sensitive ? KSTR_NULL : api_kstr(c->r, e->value);
    o->read_only = e->read_only;
    if (ver == 0)
        o->is_default = e->source == CONFIG_SOURCE_DEFAULT_CONFIG;
    else
        o->config_source = (int8_t)e->source;
    o->is_sensitive = e->sensitive;
    if (ver >= 3)
        o->config_type = (int8_t)e->type;
    o->documentation = KSTR_NULL;
    if (ver >= 3 && c->req->include_documentation && e->def != NULL && e->def->doc != NULL)
        o->documentation = kstr_c(e->def->doc);
    if (ver >= 1 && c->req->include_synonyms && !fill_synonyms(c, o, e)) {
        c->oom = true;
        return 1;
    }
    return 0;
}

static bool describe_one(breq *r, const md_image *img, const kafka_describe_configs_request *req,
                         const kafka_describe_configs_request_describe_configs_resource *res,
                         kafka_describe_configs_response_describe_configs_result *out) {
    broker *b = r->b;
    char msg[CONFIG_MSG_MAX] = "";
    int rc = 0;
    size_t n_defs = 0;
    dc_ctx c = {.r = r, .req = req, .res = res};

    out->resource_type = res->resource_type;
    out->resource_name = res->resource_name;
    if (!bauthz_config_resource(r, ACL_OP_DESCRIBE_CONFIGS, res->resource_type, res->resource_name)) {
        out->error_code = res->resource_type == API_RESOURCE_TOPIC ? KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED
                                                                   : KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        out->error_message = api_kstr(r, "Authorization failed (DESCRIBE_CONFIGS).");
        out->configs_count = 0;
        return true;
    }
    switch (res->resource_type) {
    case API_RESOURCE_TOPIC: {
        const md_topic *t = find_topic(img, res->resource_name, &rc, msg, sizeof msg);
        if (t == NULL)
            break;
        overrides ov;
        if (!copy_overrides(r, img, t, &ov))
            return false;
        config_topic_defs(&n_defs);
        c.topic = true;
        c.cap = (int32_t)n_defs;
        c.out = breq_calloc(r, n_defs, sizeof *c.out);
        if (c.out == NULL)
            return false;
        config_describe_topic(b->cfg, ov.keys, ov.values, (size_t)ov.n, dc_visit, &c);
        break;
    }
    case API_RESOURCE_BROKER:
        rc = check_broker_name(b, res->resource_name, msg, sizeof msg);
        if (rc != 0)
            break;
        config_broker_defs(&n_defs);
        c.cap = (int32_t)n_defs;
        c.out = breq_calloc(r, n_defs, sizeof *c.out);
        if (c.out == NULL)
            return false;
        config_describe_broker(b->cfg, dc_visit, &c);
        break;
    case API_RESOURCE_BROKER_LOGGER:
        snprintf(msg, sizeof msg, "Broker logger resources are not supported; log.level is a broker config.");
        rc = KAFKA_ERR_INVALID_REQUEST;
        break;
    default:
        snprintf(msg, sizeof msg, "Unsupported resource type %d.", res->resource_type);
        rc = KAFKA_ERR_INVALID_REQUEST;
        break;
    }
    if (c.oom)
        return false;
    out->error_code = (int16_t)rc;
    out->error_message = rc != 0 ? api_kstr(r, msg) : KSTR_NULL;
    out->configs = c.out;
    out->configs_count = rc == 0 ? c.n : 0;
    return true;
}

breq_status api_describe_configs(breq *r) {
    const kafka_describe_configs_request *req = r->req;
    kafka_describe_configs_response *resp = r->resp;
    int32_t n = req->resources_count > 0 ? req->resources_count : 0;
    resp->results = n ? breq_calloc(r, (size_t)n, sizeof *resp->results) : NULL;
    if (n && resp->results == NULL)
        return BREQ_CLOSE;
    md_image *img = bmeta_image(r->b->meta);
    for (int32_t i = 0; i < n; i++) {
        kafka_describe_configs_response_describe_configs_result_init(&resp->results[i]);
        if (!describe_one(r, img, req, &req->resources[i], &resp->results[i])) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
    }
    md_image_unref(img);
    resp->results_count = n;
    return BREQ_DONE;
}

/* ---- altering ----------------------------------------------------------- */

/* One resource to alter, the same for both APIs: the key/value pairs and,
 * for the incremental API, an operation per pair. */
typedef struct alter_in {
    int8_t type;
    kstr name;
    int32_t n;
    const kstr *keys;   /* n entries, strided */
    const kstr *values; /* n entries, strided */
    const int8_t *ops;  /* NULL for AlterConfigs */
    size_t stride;
} alter_in;

#define AT(p, stride, i) ((const void *)((const char *)(p) + (size_t)(i) * (stride)))

/* The effective value of one topic key with the given overrides. */
typedef struct find_ctx {
    breq *r;
    const char *key;
    char *value;
} find_ctx;

static int find_visit(void *ctx, const config_entry *e) {
    find_ctx *f = ctx;
    if (strcmp(e->name, f->key) != 0)
        return 0;
    f->value = e->value ? api_cstr(f->r, kstr_c(e->value)) : NULL;
    return 1;
}

/* APPEND or SUBTRACT the comma-separated items of arg to/from cur. Returns
 * the new list text in the arena, NULL on exhaustion. */
static char *list_edit(breq *r, const char *cur, const char *arg, bool append) {
    size_t cap = strlen(cur) + strlen(arg) + 2;
    char *out = breq_alloc(r, cap);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    size_t len = 0;
    /* Walk cur (then arg when appending); keep an item unless it is
     * subtracted or already kept. */
    for (int pass = 0; pass < (append ? 2 : 1); pass++) {
        const char *s = pass == 0 ? cur : arg;
        while (*s) {
            while (*s == ' ' || *s == ',')
                s++;
            const char *e = s;
            while (*e && *e != ',')
                e++;
            const char *t = e;
            while (t > s && t[-1] == ' ')
                t--;
            size_t il = (size_t)(t - s);
            if (il > 0) {
                bool drop = false;
                /* already kept? */
                for (const char *k = out; *k && !drop;) {
                    const char *ke = strchr(k, ',');
                    size_t kl = ke ? (size_t)(ke - k) : strlen(k);
                    drop = kl == il && memcmp(k, s, il) == 0;
                    k += kl + (ke ? 1 : 0);
                }
                if (!append && !drop) {
                    for (const char *k = arg; *k && !drop;) {
                        while (*k == ' ' || *k == ',')
                            k++;
                        const char *ke = k;
                        while (*ke && *ke != ',')
                            ke++;
                        const char *kt = ke;
                        while (kt > k && kt[-1] == ' ')
                            kt--;
                        drop = (size_t)(kt - k) == il && memcmp(k, s, il) == 0;
                        k = ke;
                    }
                }
                if (!drop) {
                    if (len > 0)
                        out[len++] = ',';
                    memcpy(out + len, s, il);
                    len += il;
                    out[len] = '\0';
                }
            }
            s = e;
        }
    }
    assert(len < cap);
    return out;
}

/* Alters one topic. Fills msg and returns a Kafka error code; -1 means the
 * request's memory ran out. */
static int alter_topic(breq *r, const alter_in *in, bool validate_only, char *msg, size_t msgn) {
    broker *b = r->b;
    bool incremental = in->ops != NULL;
    int rc = 0;
    md_image *img = bmeta_image(b->meta);
    const md_topic *t = find_topic(img, in->name, &rc, msg, msgn);
    if (t == NULL) {
        md_image_unref(img);
        return rc;
    }
    const char **keys = in->n ? breq_calloc(r, (size_t)in->n, sizeof *keys) : NULL;
    const char **values = in->n ? breq_calloc(r, (size_t)in->n, sizeof *values) : NULL;
    overrides ov = {0};
    if ((in->n && (keys == NULL || values == NULL)) || (incremental && !copy_overrides(r, img, t, &ov))) {
        rc = -1;
        goto out;
    }
    for (int32_t i = 0; i < in->n; i++) {
        kstr kv = *(const kstr *)AT(in->keys, in->stride, i);
        kstr vv = *(const kstr *)AT(in->values, in->stride, i);
        int8_t op = incremental ? *(const int8_t *)AT(in->ops, in->stride, i) : OP_SET;
        keys[i] = api_cstr(r, kv);
        if (keys[i] == NULL) {
            rc = -1;
            goto out;
        }
        const config_def *d = config_find_topic(keys[i]);
        if (d == NULL) {
            snprintf(msg, msgn, "Unknown topic config name: %.128s", keys[i]);
            rc = KAFKA_ERR_INVALID_CONFIG;
            goto out;
        }
        for (int32_t j = 0; j < i; j++)
            if (strcmp(keys[j], keys[i]) == 0) {
                snprintf(msg, msgn, "The config '%s' is given more than once.", keys[i]);
                rc = KAFKA_ERR_INVALID_REQUEST;
                goto out;
            }
        switch (op) {
        case OP_SET:
            if (vv.len < 0) {
                snprintf(msg, msgn, "Null value not supported for topic config '%s'.", keys[i]);
                rc = KAFKA_ERR_INVALID_REQUEST;
                goto out;
            }
            values[i] = api_cstr(r, vv);
            break;
        case OP_DELETE:
            values[i] = NULL;
            break;
        case OP_APPEND:
        case OP_SUBTRACT: {
            if (d->type != CONFIG_LIST) {
                snprintf(msg, msgn, "The config '%s' is not a list; %s applies to list configs only.",
                         keys[i], op == OP_APPEND ? "APPEND" : "SUBTRACT");
                rc = KAFKA_ERR_INVALID_CONFIG;
                goto out;
            }
            if (vv.len < 0) {
                snprintf(msg, msgn, "Null value not supported for topic config '%s'.", keys[i]);
                rc = KAFKA_ERR_INVALID_REQUEST;
                goto out;
            }
            /* The merge is quadratic in the items, so refuse now what no
             * config value may hold anyway. */
            if (vv.len > CONFIG_VALUE_MAX) {
                snprintf(msg, msgn, "The value for '%s' is longer than %d bytes.", keys[i], CONFIG_VALUE_MAX);
                rc = KAFKA_ERR_INVALID_CONFIG;
                goto out;
            }
            find_ctx f = {.r = r, .key = keys[i]};
            config_describe_topic(b->cfg, ov.keys, ov.values, (size_t)ov.n, find_visit, &f);
            const char *arg = api_cstr(r, vv);
            values[i] = arg ? list_edit(r, f.value ? f.value : "", arg, op == OP_APPEND) : NULL;
            break;
        }
        default:
            snprintf(msg, msgn, "Unknown config operation %d for '%s'.", op, keys[i]);
            rc = KAFKA_ERR_INVALID_REQUEST;
            goto out;
        }
        if (op != OP_DELETE && values[i] == NULL) {
            rc = -1;
            goto out;
        }
    }
    /* The controller applies the result to its own view (so two changes
     * in flight compose): list edits are already resolved into SETs. */
    ctrl_alter *alters = in->n ? breq_calloc(r, (size_t)in->n, sizeof *alters) : NULL;
    if (in->n && alters == NULL) {
        rc = -1;
        goto out;
    }
    for (int32_t i = 0; i < in->n; i++)
        alters[i] = (ctrl_alter){kstr_c(keys[i]), values[i] ? CTRL_SET : CTRL_DELETE,
                                 values[i] ? kstr_c(values[i]) : KSTR_NULL};
    ctrl_resource cr = {MD_RESOURCE_TOPIC, kstr_c(t->name), alters, in->n};
    ctrl_item_result res;
    if (bmeta_alter_configs(b->meta, &cr, 1, incremental, validate_only, &res) != 0) {
        rc = -1;
        goto out;
    }
    rc = res.error;
    if (rc != 0)
        snprintf(msg, msgn, "%s", res.message);
    if (rc == 0 && !validate_only)
        LOG_INFO("admin", "configuration of topic '%s' changed (%d keys, %s) for %s", t->name, in->n,
                 incremental ? "incremental" : "replace", r->net->peer);
out:
    md_image_unref(img);
    return rc;
}

/* Alters one resource of either API. Returns false on memory exhaustion. */
static bool alter_one(breq *r, const alter_in *in, bool validate_only, int16_t *err, kstr *err_msg) {
    char msg[CONFIG_MSG_MAX] = "";
    int rc;
    if (!bauthz_config_resource(r, ACL_OP_ALTER_CONFIGS, in->type, in->name)) {
        snprintf(msg, sizeof msg, "Authorization failed (ALTER_CONFIGS).");
        rc = in->type == API_RESOURCE_TOPIC ? KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED
                                            : KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
    } else if (in->n > CONFIGS_PER_RESOURCE_MAX) {
        snprintf(msg, sizeof msg, "%d configs in one resource; at most %d are allowed.", in->n,
                 CONFIGS_PER_RESOURCE_MAX);
        rc = KAFKA_ERR_INVALID_REQUEST;
    } else if (in->type == API_RESOURCE_TOPIC) {
        rc = alter_topic(r, in, validate_only, msg, sizeof msg);
        if (rc < 0)
            return false;
    } else if (in->type == API_RESOURCE_BROKER) {
        rc = check_broker_name(r->b, in->name, msg, sizeof msg);
        if (rc == 0) {
            snprintf(
                msg, sizeof msg,
                "Dynamic broker configuration is not supported: set broker configs in the properties file or "
                "with --override and restart the broker.");
            rc = KAFKA_ERR_INVALID_REQUEST;
        }
    } else {
        snprintf(msg, sizeof msg, "Unsupported resource type %d.", in->type);
        rc = KAFKA_ERR_INVALID_REQUEST;
    }
    *err = (int16_t)rc;
    *err_msg = rc != 0 ? api_kstr(r, msg) : KSTR_NULL;
    return true;
}

breq_status api_alter_configs(breq *r) {
    const kafka_alter_configs_request *req = r->req;
    kafka_alter_configs_response *resp = r->resp;
    int32_t n = req->resources_count > 0 ? req->resources_count : 0;
    resp->responses = n ? breq_calloc(r, (size_t)n, sizeof *resp->responses) : NULL;
    if (n && resp->responses == NULL)
        return BREQ_CLOSE;
    for (int32_t i = 0; i < n; i++) {
        const kafka_alter_configs_request_alter_configs_resource *q = &req->resources[i];
        kafka_alter_configs_response_alter_configs_resource_response *o = &resp->responses[i];
        kafka_alter_configs_response_alter_configs_resource_response_init(o);
        o->resource_type = q->resource_type;
        o->resource_name = q->resource_name;
        alter_in in = {.type = q->resource_type,
                       .name = q->resource_name,
                       .n = q->configs_count > 0 ? q->configs_count : 0,
                       .keys = q->configs ? &q->configs[0].name : NULL,
                       .values = q->configs ? &q->configs[0].value : NULL,
                       .stride = sizeof *q->configs};
        if (!alter_one(r, &in, req->validate_only, &o->error_code, &o->error_message))
            return BREQ_CLOSE;
    }
    resp->responses_count = n;
    return BREQ_DONE;
}

breq_status api_incremental_alter_configs(breq *r) {
    const kafka_incremental_alter_configs_request *req = r->req;
    kafka_incremental_alter_configs_response *resp = r->resp;
    int32_t n = req->resources_count > 0 ? req->resources_count : 0;
    resp->responses = n ? breq_calloc(r, (size_t)n, sizeof *resp->responses) : NULL;
    if (n && resp->responses == NULL)
        return BREQ_CLOSE;
    static const int8_t no_ops[1] = {0};
    for (int32_t i = 0; i < n; i++) {
        const kafka_incremental_alter_configs_request_alter_configs_resource *q = &req->resources[i];
        kafka_incremental_alter_configs_response_alter_configs_resource_response *o = &resp->responses[i];
        kafka_incremental_alter_configs_response_alter_configs_resource_response_init(o);
        o->resource_type = q->resource_type;
        o->resource_name = q->resource_name;
        /* ops must be non-NULL to mark the incremental API, even with no configs. */
        alter_in in = {.type = q->resource_type,
                       .name = q->resource_name,
                       .n = q->configs_count > 0 ? q->configs_count : 0,
                       .keys = q->configs ? &q->configs[0].name : NULL,
                       .values = q->configs ? &q->configs[0].value : NULL,
                       .ops = q->configs ? &q->configs[0].config_operation : no_ops,
                       .stride = sizeof *q->configs};
        if (!alter_one(r, &in, req->validate_only, &o->error_code, &o->error_message))
            return BREQ_CLOSE;
    }
    resp->responses_count = n;
    return BREQ_DONE;
}
