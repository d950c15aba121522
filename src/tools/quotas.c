/*
 * quotas.c - `sluice quotas`: describe and alter client quotas (KIP-546
 * DescribeClientQuotas and AlterClientQuotas) by user and client id, and
 * the same for `sluice configs --entity-type users|clients` (kafka-configs'
 * way of naming them).
 *
 * librdkafka 2.0 has neither API, so both go through Sluice's own codec
 * over a plain socket (tools/kraw.h). An entity is a user and/or a client
 * id, each a name or the default (--user-default, --client-default); the
 * broker decides what is valid and answers with Kafka's errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/cli.h"
#include "tools/kclient.h"
#include "tools/kraw.h"
#include "tools/quotas.h"

static const char quotas_help[] =
    "Usage: sluice quotas --bootstrap-server H:P (--describe | --alter) [entity] [changes]\n"
    "\n"
    "Describes and alters client quotas (docs/security.md, \"Client quotas\").\n"
    "\n"
    "Entity (a user, a client id, or both):\n"
    "  --user NAME | --user-default          the user (principal name without User:) or the default\n"
    "  --client-id NAME | --client-default   the client id or the default\n"
    "  --describe without an entity lists every quota; with one, what matches it (--strict: only\n"
    "  entities with exactly those components)\n"
    "Changes (--alter):\n"
    "  --add k=v[,k=v]     set quotas: producer_byte_rate, consumer_byte_rate (bytes/s),\n"
    "                      request_percentage (percent of one handler thread),\n"
    "                      controller_mutation_rate (partitions/s)\n"
    "  --delete k[,k]      remove quotas\n"
    "  --validate-only     check without changing\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok; 1 the broker refused; 2 bad flags; 3 broker unreachable.\n"
    "\n"
    "Examples:\n"
    "  sluice quotas --bootstrap-server localhost:9092 --alter --user alice --add "
    "producer_byte_rate=1048576\n"
    "  sluice quotas --bootstrap-server localhost:9092 --alter --client-default --add "
    "consumer_byte_rate=2097152\n"
    "  sluice quotas --bootstrap-server localhost:9092 --describe\n"
    "  sluice quotas --bootstrap-server localhost:9092 --alter --user alice --delete producer_byte_rate\n";

/* "a=1,b=2" or "a,b" into q's adds or deletes; CLI_OK or CLI_EUSAGE. */
int quotas_parse_changes(const char *cmd, quota_changes *q, const char *s, bool with_values) {
    const char *p = s;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0) {
            if (q->n >= QUOTAS_MAX_CHANGES)
                return cli_usage_err(cmd, "at most %d quota changes", QUOTAS_MAX_CHANGES);
            char buf[256];
            if (n >= sizeof buf)
                return cli_usage_err(cmd, "quota '%.*s' is too long", (int)n, p);
            memcpy(buf, p, n);
            buf[n] = '\0';
            quota_change *c = &q->items[q->n];
            char *eq = strchr(buf, '=');
            if (with_values) {
                char *num_end = NULL;
                if (eq == NULL || eq == buf)
                    return cli_usage_err(cmd, "expected key=value, got '%s'", buf);
                *eq = '\0';
                c->value = strtod(eq + 1, &num_end);
                if (num_end == eq + 1 || *num_end != '\0')
                    return cli_usage_err(cmd, "quota %s: '%s' is not a number", buf, eq + 1);
                c->remove = false;
            } else {
                if (eq != NULL)
                    return cli_usage_err(cmd, "--delete takes key names, got '%s'", buf);
                c->remove = true;
                c->value = 0;
            }
            snprintf(c->key, sizeof c->key, "%s", buf);
            q->n++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return CLI_OK;
}

static int encode_call(kraw *c, const kc_opts *o, int16_t key, int16_t v, size_t len, uint8_t **body,
                       int (*enc)(wire_writer *, int16_t, const void *), const void *req, wire_reader *r) {
    if (len > KRAW_MAX_FRAME || (*body = malloc(len ? len : 1)) == NULL) {
        cli_err(o->cmd, "request too large");
        return CLI_EFAIL;
    }
    wire_writer w;
    wire_writer_init(&w, *body, len);
    if (enc(&w, v, req) != WIRE_OK || w.len != len) {
        cli_err(o->cmd, "cannot encode the request");
        return CLI_EFAIL;
    }
    return kraw_call(c, o, key, v, *body, len, r);
}

static int enc_describe(wire_writer *w, int16_t v, const void *m) {
    return kafka_describe_client_quotas_request_encode(w, v, m);
}
static int enc_alter(wire_writer *w, int16_t v, const void *m) {
    return kafka_alter_client_quotas_request_encode(w, v, m);
}

static void print_name(FILE *f, kstr type, kstr name) {
    bool user = type.len == 4 && memcmp(type.ptr, "user", 4) == 0;
    const char *label = user ? "user-principal" : "client-id";
    if (type.len > 0 && !user && !(type.len == 9 && memcmp(type.ptr, "client-id", 9) == 0)) {
        fprintf(f, "%.*s ", (int)type.len, type.ptr);
        label = "";
    }
    if (name.len < 0)
        fprintf(f, "the default %s", *label ? label : "entity");
    else
        fprintf(f, "%s%s'%.*s'", label, *label ? " " : "", (int)name.len, name.ptr);
}

/* The user first, as kafka-configs prints it. */
static void print_entity(const kafka_describe_client_quotas_response_entity_data *ent, int32_t n) {
    int32_t first = n == 2 && ent[1].entity_type.len == 4 && memcmp(ent[1].entity_type.ptr, "user", 4) == 0;
    for (int32_t k = 0; k < n; k++) {
        const kafka_describe_client_quotas_response_entity_data *e = &ent[(first + k) % n];
        if (k)
            printf(", ");
        print_name(stdout, e->entity_type, e->entity_name);
    }
}

int quotas_describe(const kc_opts *o, const quota_entity *e, bool strict, bool json) {
    kraw c;
    uint8_t *body = NULL;
    int rc = kraw_open(&c, o);
    if (rc != CLI_OK)
        goto out;
    int16_t v = kraw_version(&c, KAFKA_API_DESCRIBE_CLIENT_QUOTAS, 1);
    if (v < 0) {
        cli_err(o->cmd, "the broker does not serve DescribeClientQuotas");
        rc = CLI_EFAIL;
        goto out;
    }
    kafka_describe_client_quotas_request_component_data comp[2];
    int32_t n = 0;
    if (e->has_user) {
        kafka_describe_client_quotas_request_component_data_init(&comp[n]);
        comp[n].entity_type = kstr_c("user");
        comp[n].match_type = e->user ? 0 : e->user_any ? 2 : 1;
        comp[n].match = e->user ? kstr_c(e->user) : KSTR_NULL;
        n++;
    }
    if (e->has_client) {
        kafka_describe_client_quotas_request_component_data_init(&comp[n]);
        comp[n].entity_type = kstr_c("client-id");
        comp[n].match_type = e->client ? 0 : e->client_any ? 2 : 1;
        comp[n].match = e->client ? kstr_c(e->client) : KSTR_NULL;
        n++;
    }
    kafka_describe_client_quotas_request req;
    kafka_describe_client_quotas_request_init(&req);
    req.components = comp;
    req.components_count = n;
    req.strict = strict;
    wire_reader r;
    rc = encode_call(&c, o, KAFKA_API_DESCRIBE_CLIENT_QUOTAS, v,
                     kafka_describe_client_quotas_request_size(v, &req), &body, enc_describe, &req, &r);
    if (rc != CLI_OK)
        goto out;
    kafka_describe_client_quotas_response resp;
    kafka_describe_client_quotas_response_init(&resp);
    if (kafka_describe_client_quotas_response_decode(&r, v, &c.a, &resp) != WIRE_OK) {
        cli_err(o->cmd, "malformed DescribeClientQuotas response");
        rc = CLI_EFAIL;
        goto out;
    }
    if (resp.error_code != 0) {
        kstr m = resp.error_message;
        cli_err(o->cmd, "cannot describe quotas: %s%s%.*s",
                rd_kafka_err2name((rd_kafka_resp_err_t)resp.error_code), m.len > 0 ? ": " : "",
                m.len > 0 ? (int)m.len : 0, m.len > 0 ? m.ptr : "");
        rc = kc_exit_for((rd_kafka_resp_err_t)resp.error_code);
        goto out;
    }
    if (json)
        printf("{\"entries\":[");
    for (int32_t i = 0; i < resp.entries_count; i++) {
        const kafka_describe_client_quotas_response_entry_data *en = &resp.entries[i];
        if (json) {
            printf("%s{\"entity\":{", i ? "," : "");
            for (int32_t k = 0; k < en->entity_count; k++) {
                printf("%s", k ? "," : "");
                cli_json_str(stdout, en->entity[k].entity_type.ptr, en->entity[k].entity_type.len);
                putchar(':');
                if (en->entity[k].entity_name.len < 0)
                    printf("null");
                else
                    cli_json_str(stdout, en->entity[k].entity_name.ptr, en->entity[k].entity_name.len);
            }
            printf("},\"quotas\":{");
            for (int32_t k = 0; k < en->values_count; k++) {
                printf("%s", k ? "," : "");
                cli_json_str(stdout, en->values[k].key.ptr, en->values[k].key.len);
                printf(":%.17g", en->values[k].value);
            }
            printf("}}");
            continue;
        }
        printf("Quota configs for ");
        print_entity(en->entity, en->entity_count);
        printf(" are ");
        for (int32_t k = 0; k < en->values_count; k++)
            printf("%s%.*s=%.17g", k ? ", " : "", (int)en->values[k].key.len, en->values[k].key.ptr,
                   en->values[k].value);
        printf("\n");
    }
    if (json)
        printf("]}\n");
out:
    free(body);
    kraw_close(&c);
    return rc;
}

int quotas_alter(const kc_opts *o, const quota_entity *e, const quota_changes *q, bool validate_only,
                 bool json) {
    kraw c;
    uint8_t *body = NULL;
    int rc = kraw_open(&c, o);
    if (rc != CLI_OK)
        goto out;
    int16_t v = kraw_version(&c, KAFKA_API_ALTER_CLIENT_QUOTAS, 1);
    if (v < 0) {
        cli_err(o->cmd, "the broker does not serve AlterClientQuotas");
        rc = CLI_EFAIL;
        goto out;
    }
    kafka_alter_client_quotas_request_entity_data ent[2];
    int32_t n = 0;
    if (e->has_user) {
        kafka_alter_client_quotas_request_entity_data_init(&ent[n]);
        ent[n].entity_type = kstr_c("user");
        ent[n++].entity_name = e->user ? kstr_c(e->user) : KSTR_NULL;
    }
    if (e->has_client) {
        kafka_alter_client_quotas_request_entity_data_init(&ent[n]);
        ent[n].entity_type = kstr_c("client-id");
        ent[n++].entity_name = e->client ? kstr_c(e->client) : KSTR_NULL;
    }
    kafka_alter_client_quotas_request_op_data ops[QUOTAS_MAX_CHANGES];
    for (int i = 0; i < q->n; i++) {
        kafka_alter_client_quotas_request_op_data_init(&ops[i]);
        ops[i].key = kstr_c(q->items[i].key);
        ops[i].value = q->items[i].value;
        ops[i].remove = q->items[i].remove;
    }
    kafka_alter_client_quotas_request_entry_data entry;
    kafka_alter_client_quotas_request_entry_data_init(&entry);
    entry.entity = ent;
    entry.entity_count = n;
    entry.ops = ops;
    entry.ops_count = q->n;
    kafka_alter_client_quotas_request req;
    kafka_alter_client_quotas_request_init(&req);
    req.entries = &entry;
    req.entries_count = 1;
    req.validate_only = validate_only;
    wire_reader r;
    rc = encode_call(&c, o, KAFKA_API_ALTER_CLIENT_QUOTAS, v, kafka_alter_client_quotas_request_size(v, &req),
                     &body, enc_alter, &req, &r);
    if (rc != CLI_OK)
        goto out;
    kafka_alter_client_quotas_response resp;
    kafka_alter_client_quotas_response_init(&resp);
    if (kafka_alter_client_quotas_response_decode(&r, v, &c.a, &resp) != WIRE_OK || resp.entries_count != 1) {
        cli_err(o->cmd, "malformed AlterClientQuotas response");
        rc = CLI_EFAIL;
        goto out;
    }
    int16_t code = resp.entries[0].error_code;
    if (code != 0) {
        kstr m = resp.entries[0].error_message;
        cli_err(o->cmd, "cannot alter quotas: %s%s%.*s", rd_kafka_err2name((rd_kafka_resp_err_t)code),
                m.len > 0 ? ": " : "", m.len > 0 ? (int)m.len : 0, m.len > 0 ? m.ptr : "");
        rc = kc_exit_for((rd_kafka_resp_err_t)code);
        goto out;
    }
    if (json) {
        printf("{\"changed\":%d,\"validateOnly\":%s}\n", q->n, validate_only ? "true" : "false");
    } else {
        printf("%s quota configs for ", validate_only ? "Validated" : "Completed updating");
        for (int32_t k = 0; k < n; k++) {
            if (k)
                printf(", ");
            print_name(stdout, ent[k].entity_type, ent[k].entity_name);
        }
        printf(".\n");
    }
out:
    free(body);
    kraw_close(&c);
    return rc;
}

int cmd_quotas(int argc, char **argv) {
    enum {
        O_DESC = 1,
        O_ALTER,
        O_USER,
        O_USER_DEF,
        O_CLIENT,
        O_CLIENT_DEF,
        O_ADD,
        O_DEL,
        O_STRICT,
        O_VALIDATE
    };
    static const struct option opts[] = {
        {"describe", no_argument, NULL, O_DESC},
        {"alter", no_argument, NULL, O_ALTER},
        {"user", required_argument, NULL, O_USER},
        {"user-default", no_argument, NULL, O_USER_DEF},
        {"client-id", required_argument, NULL, O_CLIENT},
        {"client-default", no_argument, NULL, O_CLIENT_DEF},
        {"add", required_argument, NULL, O_ADD},
        {"delete", required_argument, NULL, O_DEL},
        {"strict", no_argument, NULL, O_STRICT},
        {"validate-only", no_argument, NULL, O_VALIDATE},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static quota_changes q;
    memset(&q, 0, sizeof q);
    kc_opts k;
    memset(&k, 0, sizeof k);
    k.cmd = "quotas";
    quota_entity e = {0};
    bool describe = false, alter = false, strict = false, validate = false, json = false;
    int ch, rc = CLI_OK;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&k, ch, optarg, &json);
        if (c < 0)
            return -c;
        if (c > 0)
            continue;
        switch (ch) {
        case O_DESC:
            describe = true;
            break;
        case O_ALTER:
            alter = true;
            break;
        case O_USER:
        case O_USER_DEF:
            if (e.has_user)
                return cli_usage_err("quotas", "give one of --user or --user-default");
            e.has_user = true;
            e.user = ch == O_USER ? optarg : NULL;
            break;
        case O_CLIENT:
        case O_CLIENT_DEF:
            if (e.has_client)
                return cli_usage_err("quotas", "give one of --client-id or --client-default");
            e.has_client = true;
            e.client = ch == O_CLIENT ? optarg : NULL;
            break;
        case O_ADD:
        case O_DEL:
            if ((rc = quotas_parse_changes("quotas", &q, optarg, ch == O_ADD)) != CLI_OK)
                return rc;
            break;
        case O_STRICT:
            strict = true;
            break;
        case O_VALIDATE:
            validate = true;
            break;
        case 'h':
            fputs(quotas_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("quotas", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("quotas", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("quotas", "unexpected argument '%s'", argv[optind]);
    if (describe == alter)
        return cli_usage_err("quotas", "give exactly one of --describe or --alter");
    if (alter && !e.has_user && !e.has_client)
        return cli_usage_err("quotas", "--alter needs an entity (--user, --client-id or their defaults)");
    if (alter && q.n == 0)
        return cli_usage_err("quotas", "--alter needs --add or --delete");
    if (describe && (q.n || validate))
        return cli_usage_err("quotas", "--add, --delete and --validate-only go with --alter");
    if ((rc = kc_check(&k)) != CLI_OK)
        return rc;
    return describe ? quotas_describe(&k, &e, strict, json) : quotas_alter(&k, &e, &q, validate, json);
}
