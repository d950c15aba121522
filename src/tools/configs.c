/*
 * configs.c - `sluice configs`: describe and alter topic and broker
 * configs, with kafka-configs' flag names.
 *
 * Altering prefers IncrementalAlterConfigs (API 44), which changes only the
 * named keys. librdkafka 2.0 does not have it, so it is sent with Sluice's own
 * codec over a plain socket (tools/kraw.h). A broker without API 44 (or
 * --legacy-alter) gets the older way: describe the entity, keep its current
 * dynamic entries, apply --add-config/--delete-config and send the whole set
 * with AlterConfigs through librdkafka - the read-modify-write kafka-configs
 * did before the incremental API, where two operators altering one entity in
 * the same round trip can lose an update.
 *
 * Client quotas take kafka-configs' form too: --entity-type users and/or
 * --entity-type clients, each followed by --entity-name or
 * --entity-default, go to tools/quotas.c (DescribeClientQuotas and
 * AlterClientQuotas); --describe without a name lists every entity of the
 * type.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/kclient.h"
#include "tools/kraw.h"
#include "tools/quotas.h"

#define CONFIGS_MAX_ENTRIES 512

static const char configs_help[] =
    "Usage: sluice configs --bootstrap-server H:P --describe|--alter --entity-type topics|brokers\n"
    "                      --entity-name NAME [options]\n"
    "       sluice configs --bootstrap-server H:P --describe|--alter --entity-type users|clients\n"
    "                      (--entity-name NAME | --entity-default) [--entity-type clients ...]\n"
    "\n"
    "Options:\n"
    "  --describe              show configs (those not at their default; --all for every one)\n"
    "  --alter                 change configs with --add-config / --delete-config\n"
    "  --entity-type T         topics, brokers, users or clients (users and clients: client\n"
    "                          quotas; both may be given, each with its name or default)\n"
    "  --entity-name NAME      topic name, broker id, user or client id (of the type before it)\n"
    "  --topic NAME            same as --entity-type topics --entity-name NAME\n"
    "  --broker ID             same as --entity-type brokers --entity-name ID\n"
    "  --entity-default        brokers: the cluster-wide default entity; users, clients: the\n"
    "                          default user or client id\n"
    "  --user NAME, --client ID  same as --entity-type users|clients --entity-name NAME\n"
    "  --add-config k=v,k2=v2  set configs (a value with commas goes in brackets: k=[a,b])\n"
    "  --delete-config k,k2    return configs to their defaults\n"
    "  --all                   describe: include configs at their default value\n"
    "  --legacy-alter          alter with AlterConfigs read-modify-write even if the broker\n"
    "                          serves IncrementalAlterConfigs\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok; 1 the broker refused (unknown or invalid config...); 2 bad flags;\n"
    "3 broker unreachable; 4 topic or broker does not exist.\n"
    "\n"
    "Examples:\n"
    "  sluice configs --bootstrap-server localhost:9092 --describe --entity-type topics --entity-name "
    "orders\n"
    "  sluice configs --bootstrap-server localhost:9092 --alter --topic orders \\\n"
    "      --add-config retention.ms=86400000,cleanup.policy=compact\n"
    "  sluice configs --bootstrap-server localhost:9092 --alter --topic orders --delete-config retention.ms\n"
    "  sluice configs --bootstrap-server localhost:9092 --describe --broker 1 --all --json\n"
    "  sluice configs --bootstrap-server localhost:9092 --alter --entity-type users --entity-name alice \\\n"
    "      --add-config producer_byte_rate=1048576\n";

typedef struct kv {
    char *name;
    char *value; /* NULL: delete */
} kv;

typedef struct configs_args {
    kc_opts k;
    bool describe, alter, all, json, entity_default, legacy_alter;
    rd_kafka_ResourceType_t type;
    const char *type_name, *name;
    kv adds[CONFIGS_MAX_ENTRIES];
    int nadds;
    char *dels[CONFIGS_MAX_ENTRIES];
    int ndels;
    /* --entity-type users/clients: a client quota entity */
    bool quota;
    int quota_last; /* 'u' or 'c': the type --entity-name/--entity-default name */
    bool user_named, client_named;
    quota_entity qe;
} configs_args;

/* Splits "a=1,b=[x,y]" into entries (commas inside brackets stay). The
 * strings are malloc'd; returns CLI_OK or CLI_EUSAGE. */
static int parse_list(configs_args *a, const char *s, bool with_values) {
    const char *p = s;
    while (*p) {
        const char *start = p;
        int depth = 0;
        while (*p && !(*p == ',' && depth == 0)) {
            depth += *p == '[' ? 1 : *p == ']' ? -1 : 0;
            p++;
        }
        size_t n = (size_t)(p - start);
        if (*p == ',')
            p++;
        if (n == 0)
            continue;
        char *item = strndup(start, n);
        if (item == NULL)
            return CLI_EFAIL;
        if (!with_values) {
            if (a->ndels >= CONFIGS_MAX_ENTRIES) {
                free(item);
                return cli_usage_err("configs", "too many configs");
            }
            a->dels[a->ndels++] = item;
            continue;
        }
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item || a->nadds >= CONFIGS_MAX_ENTRIES) {
            int rc = cli_usage_err("configs", "--add-config entry '%s' is not key=value", item);
            free(item);
            return rc;
        }
        *eq = '\0';
        char *v = eq + 1;
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '[' && v[vl - 1] == ']') { /* [a,b] -> a,b */
            v[vl - 1] = '\0';
            v++;
        }
        a->adds[a->nadds].name = item;
        a->adds[a->nadds].value = v;
        a->nadds++;
    }
    return CLI_OK;
}

static const char *type_label(rd_kafka_ResourceType_t t) {
    return t == RD_KAFKA_RESOURCE_TOPIC ? "topic" : "broker";
}

/* Describes the entity; returns the event (caller destroys) and the
 * resource inside it, or NULL with *rc set. */
static rd_kafka_event_t *describe(configs_args *a, rd_kafka_t *rk, const rd_kafka_ConfigResource_t **res,
                                  int *rc) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_ConfigResource_t *r = rd_kafka_ConfigResource_new(a->type, a->name);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(rk, &r, 1, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, rc);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_ConfigResource_destroy(r);
    rd_kafka_queue_destroy(q);
    if (ev == NULL)
        return NULL;
    size_t cnt = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &cnt);
    rd_kafka_resp_err_t e = cnt ? rd_kafka_ConfigResource_error(rs[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            cli_err("configs", "%s '%s' does not exist", type_label(a->type), a->name);
        else
            cli_err("configs", "cannot describe %s '%s': %s%s%s", type_label(a->type), a->name,
                    rd_kafka_err2name(e), cnt && rd_kafka_ConfigResource_error_string(rs[0]) ? ": " : "",
                    cnt && rd_kafka_ConfigResource_error_string(rs[0])
                        ? rd_kafka_ConfigResource_error_string(rs[0])
                        : "");
        *rc = kc_exit_for(e);
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    *res = rs[0];
    return ev;
}

static bool shown(const configs_args *a, const rd_kafka_ConfigEntry_t *e) {
    return a->all || (!rd_kafka_ConfigEntry_is_default(e) &&
                      rd_kafka_ConfigEntry_source(e) != RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);
}

static int do_describe(configs_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    const rd_kafka_ConfigResource_t *r = NULL;
    rd_kafka_event_t *ev = describe(a, rk, &r, &rc);
    if (ev == NULL)
        return rc;
    size_t cnt = 0;
    const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(r, &cnt);
    if (a->json) {
        printf("{\"entityType\":\"%s\",\"entityName\":", a->type_name);
        cli_json_str(stdout, a->name, -1);
        fputs(",\"configs\":[", stdout);
    } else {
        printf("%s configs for %s %s:\n", a->all ? "All" : "Non-default", type_label(a->type),
               *a->name ? a->name : "<default>");
    }
    bool first = true;
    for (size_t i = 0; i < cnt; i++) {
        const rd_kafka_ConfigEntry_t *e = es[i];
        if (!shown(a, e))
            continue;
        const char *v = rd_kafka_ConfigEntry_value(e);
        bool sens = rd_kafka_ConfigEntry_is_sensitive(e);
        const char *src = rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(e));
        if (a->json) {
            fputs(first ? "{\"name\":" : ",{\"name\":", stdout);
            cli_json_str(stdout, rd_kafka_ConfigEntry_name(e), -1);
            fputs(",\"value\":", stdout);
            if (v == NULL || sens)
                fputs("null", stdout);
            else
                cli_json_str(stdout, v, -1);
            printf(",\"source\":\"%s\",\"readOnly\":%s,\"sensitive\":%s,\"default\":%s}", src,
                   rd_kafka_ConfigEntry_is_read_only(e) ? "true" : "false", sens ? "true" : "false",
                   rd_kafka_ConfigEntry_is_default(e) ? "true" : "false");
        } else {
            printf("  %s=%s (source: %s%s)\n", rd_kafka_ConfigEntry_name(e),
                   sens ? "[hidden]"
                   : v  ? v
                        : "null",
                   src, rd_kafka_ConfigEntry_is_read_only(e) ? ", read-only" : "");
        }
        first = false;
    }
    if (a->json)
        fputs("]}\n", stdout);
    else if (first)
        puts("  (none)");
    rd_kafka_event_destroy(ev);
    return CLI_OK;
}

/* True for entries that AlterConfigs must resend to keep them. */
static bool is_dynamic(const configs_args *a, const rd_kafka_ConfigEntry_t *e) {
    rd_kafka_ConfigSource_t s = rd_kafka_ConfigEntry_source(e);
    if (a->type == RD_KAFKA_RESOURCE_TOPIC)
        return s == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
    return a->entity_default ? s == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG
                             : s == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG;
}

/* IncrementalAlterConfigs (API 44) through Sluice's own codec: only the
 * named keys change, so concurrent alterations of other keys are not lost.
 * Returns CLI_OK, an exit code after a message, or -1 when the broker does
 * not serve the API (the caller falls back to AlterConfigs). */
static int alter_incremental(configs_args *a) {
    kraw c;
    uint8_t *body = NULL;
    kafka_incremental_alter_configs_request_alterable_config *cfgs = NULL;
    int rc = kraw_open(&c, &a->k);
    if (rc != CLI_OK)
        goto out;
    int16_t v = kraw_version(&c, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 1);
    if (v < 0) {
        rc = -1;
        goto out;
    }
    int n = a->nadds + a->ndels;
    cfgs = calloc((size_t)n, sizeof *cfgs);
    if (cfgs == NULL) {
        rc = CLI_EFAIL;
        goto out;
    }
    for (int i = 0; i < a->nadds; i++) {
        kafka_incremental_alter_configs_request_alterable_config_init(&cfgs[i]);
        cfgs[i].name = kstr_c(a->adds[i].name);
        cfgs[i].config_operation = 0; /* SET */
        cfgs[i].value = kstr_c(a->adds[i].value);
    }
    for (int i = 0; i < a->ndels; i++) {
        kafka_incremental_alter_configs_request_alterable_config *e = &cfgs[a->nadds + i];
        kafka_incremental_alter_configs_request_alterable_config_init(e);
        e->name = kstr_c(a->dels[i]);
        e->config_operation = 1; /* DELETE */
        e->value = KSTR_NULL;
    }
    kafka_incremental_alter_configs_request_alter_configs_resource res;
    kafka_incremental_alter_configs_request_alter_configs_resource_init(&res);
    res.resource_type = a->type == RD_KAFKA_RESOURCE_TOPIC ? 2 : 4;
    res.resource_name = kstr_c(a->name);
    res.configs = cfgs;
    res.configs_count = n;
    kafka_incremental_alter_configs_request req;
    kafka_incremental_alter_configs_request_init(&req);
    req.resources = &res;
    req.resources_count = 1;
    req.validate_only = false;
    size_t len = kafka_incremental_alter_configs_request_size(v, &req);
    if (len > KRAW_MAX_FRAME || (body = malloc(len ? len : 1)) == NULL) {
        rc = cli_usage_err("configs", "request too large");
        goto out;
    }
    wire_writer w;
    wire_writer_init(&w, body, len);
    if (kafka_incremental_alter_configs_request_encode(&w, v, &req) != WIRE_OK || w.len != len) {
        cli_err("configs", "cannot encode IncrementalAlterConfigs");
        rc = CLI_EFAIL;
        goto out;
    }
    wire_reader r;
    if ((rc = kraw_call(&c, &a->k, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, v, body, len, &r)) != CLI_OK)
        goto out;
    kafka_incremental_alter_configs_response resp;
    kafka_incremental_alter_configs_response_init(&resp);
    if (kafka_incremental_alter_configs_response_decode(&r, v, &c.a, &resp) != WIRE_OK ||
        resp.responses_count != 1) {
        cli_err("configs", "malformed IncrementalAlterConfigs response");
        rc = CLI_EFAIL;
        goto out;
    }
    int16_t code = resp.responses[0].error_code;
    if (code != 0) {
        kstr m = resp.responses[0].error_message;
        cli_err("configs", "cannot alter %s '%s': %s%s%.*s", type_label(a->type), a->name,
                rd_kafka_err2name((rd_kafka_resp_err_t)code), m.len > 0 ? ": " : "",
                m.len > 0 ? (int)m.len : 0, m.len > 0 ? m.ptr : "");
        rc = kc_exit_for((rd_kafka_resp_err_t)code);
    }
out:
    free(body);
    free(cfgs);
    kraw_close(&c);
    return rc;
}

static void report_altered(const configs_args *a) {
    if (a->json) {
        printf("{\"entityType\":\"%s\",\"entityName\":", a->type_name);
        cli_json_str(stdout, a->name, -1);
        printf(",\"added\":%d,\"deleted\":%d}\n", a->nadds, a->ndels);
    } else {
        printf("Completed updating config for %s %s.\n", type_label(a->type),
               *a->name ? a->name : "<default>");
    }
}

static int do_alter(configs_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    const rd_kafka_ConfigResource_t *cur = NULL;
    rd_kafka_event_t *dev = describe(a, rk, &cur, &rc), *ev = NULL;
    if (dev == NULL)
        return rc;
    rd_kafka_ConfigResource_t *r = rd_kafka_ConfigResource_new(a->type, a->name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    /* Deleting a key that is not set dynamically is a no-op in Kafka, but
     * naming a key the entity does not know at all is likely a typo. */
    size_t cnt = 0;
    const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(cur, &cnt);
    for (int d = 0; d < a->ndels; d++) {
        bool known = false;
        for (size_t i = 0; i < cnt && !known; i++)
            known = strcmp(rd_kafka_ConfigEntry_name(es[i]), a->dels[d]) == 0;
        if (!known) {
            cli_err("configs", "%s '%s' has no config named '%s'", type_label(a->type), a->name, a->dels[d]);
            rc = CLI_EFAIL;
            goto out;
        }
    }
    if (!a->legacy_alter) {
        int irc = alter_incremental(a);
        if (irc >= 0) {
            rc = irc;
            if (rc == CLI_OK)
                report_altered(a);
            goto out;
        }
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *n = rd_kafka_ConfigEntry_name(es[i]);
        if (!is_dynamic(a, es[i]) || rd_kafka_ConfigEntry_is_sensitive(es[i]))
            continue;
        bool replaced = false;
        for (int d = 0; d < a->ndels; d++)
            replaced |= strcmp(a->dels[d], n) == 0;
        for (int j = 0; j < a->nadds; j++)
            replaced |= strcmp(a->adds[j].name, n) == 0;
        if (!replaced)
            rd_kafka_ConfigResource_set_config(r, n, rd_kafka_ConfigEntry_value(es[i]));
    }
    for (int j = 0; j < a->nadds; j++)
        rd_kafka_ConfigResource_set_config(r, a->adds[j].name, a->adds[j].value);
    rd_kafka_AlterConfigs(rk, &r, 1, ao, q);
    ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_ALTERCONFIGS_RESULT, &rc);
    if (ev == NULL)
        goto out;
    size_t rcnt = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &rcnt);
    rd_kafka_resp_err_t e = rcnt ? rd_kafka_ConfigResource_error(rs[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *m = rcnt ? rd_kafka_ConfigResource_error_string(rs[0]) : NULL;
        cli_err("configs", "cannot alter %s '%s': %s%s%s", type_label(a->type), a->name, rd_kafka_err2name(e),
                m && *m ? ": " : "", m && *m ? m : "");
        rc = kc_exit_for(e);
        goto out;
    }
    report_altered(a);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_event_destroy(dev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_ConfigResource_destroy(r);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* --entity-type users/clients: client quotas (tools/quotas.c). */
static int configs_quotas(configs_args *a) {
    if (a->alter && ((a->qe.has_user && !a->user_named) || (a->qe.has_client && !a->client_named)))
        return cli_usage_err("configs", "--alter of users or clients needs --entity-name or --entity-default "
                                        "after each --entity-type");
    if (a->alter && a->nadds == 0 && a->ndels == 0)
        return cli_usage_err("configs", "--alter needs --add-config or --delete-config");
    if (a->describe && (a->nadds || a->ndels))
        return cli_usage_err("configs", "--add-config/--delete-config go with --alter");
    int rc = kc_check(&a->k);
    if (rc != CLI_OK)
        return rc;
    if (a->describe)
        return quotas_describe(&a->k, &a->qe, true, a->json); /* kafka-configs: containsOnly */
    static quota_changes q;
    memset(&q, 0, sizeof q);
    for (int i = 0; i < a->nadds; i++) {
        char buf[600];
        snprintf(buf, sizeof buf, "%s=%s", a->adds[i].name, a->adds[i].value);
        if ((rc = quotas_parse_changes("configs", &q, buf, true)) != CLI_OK)
            return rc;
    }
    for (int i = 0; i < a->ndels; i++)
        if ((rc = quotas_parse_changes("configs", &q, a->dels[i], false)) != CLI_OK)
            return rc;
    return quotas_alter(&a->k, &a->qe, &q, false, a->json);
}

static void free_args(configs_args *a) {
    for (int i = 0; i < a->nadds; i++)
        free(a->adds[i].name);
    for (int i = 0; i < a->ndels; i++)
        free(a->dels[i]);
}

int cmd_configs(int argc, char **argv) {
    enum {
        O_DESC = 1,
        O_ALTER,
        O_TYPE,
        O_NAME,
        O_TOPIC,
        O_BROKER,
        O_DEFAULT,
        O_ADD,
        O_DEL,
        O_ALL,
        O_LEGACY,
        O_USER,
        O_CLIENT
    };
    static const struct option opts[] = {
        {"describe", no_argument, NULL, O_DESC},
        {"alter", no_argument, NULL, O_ALTER},
        {"entity-type", required_argument, NULL, O_TYPE},
        {"entity-name", required_argument, NULL, O_NAME},
        {"topic", required_argument, NULL, O_TOPIC},
        {"broker", required_argument, NULL, O_BROKER},
        {"entity-default", no_argument, NULL, O_DEFAULT},
        {"add-config", required_argument, NULL, O_ADD},
        {"delete-config", required_argument, NULL, O_DEL},
        {"all", no_argument, NULL, O_ALL},
        {"legacy-alter", no_argument, NULL, O_LEGACY},
        {"user", required_argument, NULL, O_USER},
        {"client", required_argument, NULL, O_CLIENT},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static configs_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "configs";
    a.type = RD_KAFKA_RESOURCE_UNKNOWN;
    int ch, rc = CLI_OK;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&a.k, ch, optarg, &a.json);
        if (c < 0) {
            rc = -c;
            goto out;
        }
        if (c > 0)
            continue;
        switch (ch) {
        case O_DESC:
            a.describe = true;
            break;
        case O_ALTER:
            a.alter = true;
            break;
        case O_TYPE:
            if (strcmp(optarg, "users") == 0 || strcmp(optarg, "user") == 0 ||
                strcmp(optarg, "clients") == 0 || strcmp(optarg, "client") == 0) {
                bool u = optarg[0] == 'u';
                if (a.type != RD_KAFKA_RESOURCE_UNKNOWN || (u ? a.qe.has_user : a.qe.has_client)) {
                    rc = cli_usage_err("configs",
                                       "--entity-type %s: give users and clients once each, and "
                                       "not with topics or brokers",
                                       optarg);
                    goto out;
                }
                a.quota = true;
                a.quota_last = u ? 'u' : 'c';
                if (u) {
                    a.qe.has_user = true;
                    a.qe.user_any = true;
                } else {
                    a.qe.has_client = true;
                    a.qe.client_any = true;
                }
            } else if (a.quota) {
                rc = cli_usage_err("configs", "--entity-type %s does not go with users or clients", optarg);
                goto out;
            } else if (strcmp(optarg, "topics") == 0 || strcmp(optarg, "topic") == 0) {
                a.type = RD_KAFKA_RESOURCE_TOPIC;
                a.type_name = "topics";
            } else if (strcmp(optarg, "brokers") == 0 || strcmp(optarg, "broker") == 0) {
                a.type = RD_KAFKA_RESOURCE_BROKER;
                a.type_name = "brokers";
            } else {
                rc = cli_usage_err(
                    "configs", "--entity-type: expected topics, brokers, users or clients, got '%s'", optarg);
                goto out;
            }
            break;
        case O_USER:
        case O_CLIENT:
            /* kafka-configs' shorthands for --entity-type users|clients --entity-name */
            if (a.type != RD_KAFKA_RESOURCE_UNKNOWN || (ch == O_USER ? a.qe.has_user : a.qe.has_client)) {
                rc = cli_usage_err("configs",
                                   "--%s: give users and clients once each, and not with topics or "
                                   "brokers",
                                   ch == O_USER ? "user" : "client");
                goto out;
            }
            a.quota = true;
            a.quota_last = ch == O_USER ? 'u' : 'c';
            if (ch == O_USER) {
                a.qe.has_user = a.user_named = true;
                a.qe.user = optarg;
            } else {
                a.qe.has_client = a.client_named = true;
                a.qe.client = optarg;
            }
            break;
        case O_NAME:
        case O_DEFAULT:
            if (a.quota) {
                const char *nm = ch == O_NAME ? optarg : NULL;
                if (a.quota_last == 'u') {
                    a.qe.user = nm;
                    a.qe.user_any = false;
                    a.user_named = true;
                } else {
                    a.qe.client = nm;
                    a.qe.client_any = false;
                    a.client_named = true;
                }
                break;
            }
            if (ch == O_DEFAULT) {
                a.entity_default = true;
                a.name = "";
                break;
            }
            a.name = optarg;
            break;
        case O_TOPIC:
            a.type = RD_KAFKA_RESOURCE_TOPIC;
            a.type_name = "topics";
            a.name = optarg;
            break;
        case O_BROKER:
            a.type = RD_KAFKA_RESOURCE_BROKER;
            a.type_name = "brokers";
            a.name = optarg;
            break;
        case O_ADD:
            if ((rc = parse_list(&a, optarg, true)) != CLI_OK)
                goto out;
            break;
        case O_DEL:
            if ((rc = parse_list(&a, optarg, false)) != CLI_OK)
                goto out;
            break;
        case O_ALL:
            a.all = true;
            break;
        case O_LEGACY:
            a.legacy_alter = true;
            break;
        case 'h':
            fputs(configs_help, stdout);
            goto out;
        case ':':
            rc = cli_usage_err("configs", "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = cli_usage_err("configs", "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (a.quota && optind == argc && a.describe != a.alter) {
        rc = configs_quotas(&a);
        goto out;
    }
    if (optind < argc) {
        rc = cli_usage_err("configs", "unexpected argument '%s'", argv[optind]);
    } else if (a.describe == a.alter) {
        rc = cli_usage_err("configs", "give exactly one of --describe or --alter");
    } else if (a.type == RD_KAFKA_RESOURCE_UNKNOWN) {
        rc = cli_usage_err("configs", "--entity-type (topics or brokers) is required");
    } else if (a.name == NULL) {
        rc = cli_usage_err("configs", "--entity-name is required");
    } else if (a.entity_default && a.type != RD_KAFKA_RESOURCE_BROKER) {
        rc = cli_usage_err("configs", "--entity-default applies to brokers only");
    } else if (a.alter && a.nadds == 0 && a.ndels == 0) {
        rc = cli_usage_err("configs", "--alter needs --add-config or --delete-config");
    } else if (a.describe && (a.nadds || a.ndels)) {
        rc = cli_usage_err("configs", "--add-config/--delete-config go with --alter");
    } else if ((rc = kc_check(&a.k)) == CLI_OK && (rc = kc_probe(&a.k)) == CLI_OK) {
        rd_kafka_conf_t *conf = kc_conf(&a.k);
        rd_kafka_t *rk = conf ? kc_new(&a.k, RD_KAFKA_PRODUCER, conf) : NULL;
        if (rk == NULL) {
            rc = conf ? CLI_EFAIL : CLI_EUSAGE;
        } else {
            rc = a.describe ? do_describe(&a, rk) : do_alter(&a, rk);
            rd_kafka_destroy(rk);
        }
    }
out:
    free_args(&a);
    return rc;
}
