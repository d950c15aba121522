/*
 * acls.c - `sluice acls`: list, add and remove ACLs (kafka-acls), through
 * librdkafka's DescribeAcls, CreateAcls and DeleteAcls.
 *
 * One resource per call (--topic, --group, --transactional-id or
 * --cluster); --add takes the product of the principals, the hosts (default
 * *) and the operations given, as kafka-acls does; --remove removes what
 * matches the same product (or every ACL of the resource when no principal
 * and operation are given); --list shows the ACLs a filter matches
 * (everything without a resource). Names of operations, resource and
 * pattern types are Kafka's (READ, IdempotentWrite, PREFIXED, ...).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/acl.h"
#include "tools/kclient.h"

#define ACLS_MAX_LIST 32 /* principals, hosts or operations per flag kind */

static const char acls_help[] =
    "Usage: sluice acls --bootstrap-server H:P (--list | --add | --remove) [resource] [entries]\n"
    "\n"
    "Lists, adds and removes ACLs, as kafka-acls does (the broker needs authorizer.class.name;\n"
    "see docs/security.md).\n"
    "\n"
    "Resource (one):\n"
    "  --topic T | --group G | --transactional-id ID | --cluster\n"
    "  --resource-pattern-type TYPE   LITERAL (default for --add), PREFIXED, and for --list and\n"
    "                                 --remove also ANY or MATCH (default for them: LITERAL)\n"
    "Entries:\n"
    "  --allow-principal P, --deny-principal P   e.g. User:alice (repeatable)\n"
    "  --allow-host H, --deny-host H             default * (repeatable)\n"
    "  --operation OP                            Read, Write, Create, Delete, Alter, Describe,\n"
    "                                            ClusterAction, DescribeConfigs, AlterConfigs,\n"
    "                                            IdempotentWrite, All (repeatable; --add needs one)\n"
    "  --principal P                             --list: only this principal's ACLs\n"
    "  --force                                   accepted (sluice never asks)\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok (3 when the broker is unreachable); 1 the broker refused; 2 bad flags.\n"
    "\n"
    "Examples:\n"
    "  sluice acls --bootstrap-server localhost:9092 --add --allow-principal User:alice \\\n"
    "      --operation Write --topic orders\n"
    "  sluice acls --bootstrap-server localhost:9092 --list --topic orders\n"
    "  sluice acls --bootstrap-server localhost:9092 --remove --allow-principal User:alice \\\n"
    "      --operation Write --topic orders\n";

typedef struct acls_args {
    kc_opts k;
    bool json;
    int mode; /* 'l', 'a', 'r' */
    int restype;
    const char *name;
    int pattern; /* -1: default */
    const char *allow_p[ACLS_MAX_LIST], *deny_p[ACLS_MAX_LIST], *allow_h[ACLS_MAX_LIST],
        *deny_h[ACLS_MAX_LIST];
    int n_allow_p, n_deny_p, n_allow_h, n_deny_h;
    int ops[ACLS_MAX_LIST];
    int n_ops;
    const char *principal;
} acls_args;

static int add_to(const char **v, int *n, const char *s, const char *flag) {
    if (*n == ACLS_MAX_LIST)
        return cli_usage_err("acls", "%s given more than %d times", flag, ACLS_MAX_LIST);
    v[(*n)++] = s;
    return CLI_OK;
}

static void print_binding(const rd_kafka_AclBinding_t *b, bool json, bool *first) {
    const char *name = rd_kafka_AclBinding_name(b), *principal = rd_kafka_AclBinding_principal(b),
               *host = rd_kafka_AclBinding_host(b);
    const char *rt = rd_kafka_ResourceType_name(rd_kafka_AclBinding_restype(b));
    const char *pt = rd_kafka_ResourcePatternType_name(rd_kafka_AclBinding_resource_pattern_type(b));
    const char *op = rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(b));
    const char *perm = rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(b));
    if (!json) {
        printf("%s:%s:%s  principal=%s host=%s operation=%s permission=%s\n", rt, pt, name, principal, host,
               op, perm);
        return;
    }
    printf("%s{\"resourceType\":", *first ? "" : ",");
    cli_json_str(stdout, rt, -1);
    fputs(",\"name\":", stdout);
    cli_json_str(stdout, name, -1);
    fputs(",\"patternType\":", stdout);
    cli_json_str(stdout, pt, -1);
    fputs(",\"principal\":", stdout);
    cli_json_str(stdout, principal, -1);
    fputs(",\"host\":", stdout);
    cli_json_str(stdout, host, -1);
    fputs(",\"operation\":", stdout);
    cli_json_str(stdout, op, -1);
    fputs(",\"permission\":", stdout);
    cli_json_str(stdout, perm, -1);
    fputc('}', stdout);
    *first = false;
}

static const char *resource_name(const acls_args *a) {
    return a->restype == RD_KAFKA_RESOURCE_BROKER ? ACL_CLUSTER_NAME : a->name;
}

static int do_list(acls_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    char errstr[256];
    int pattern = a->pattern >= 0                       ? a->pattern
                  : a->restype == RD_KAFKA_RESOURCE_ANY ? RD_KAFKA_RESOURCE_PATTERN_ANY
                                                        : RD_KAFKA_RESOURCE_PATTERN_LITERAL;
    rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
        (rd_kafka_ResourceType_t)a->restype, a->restype == RD_KAFKA_RESOURCE_ANY ? NULL : resource_name(a),
        (rd_kafka_ResourcePatternType_t)pattern, a->principal, NULL, RD_KAFKA_ACL_OPERATION_ANY,
        RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof errstr);
    if (f == NULL)
        return cli_usage_err("acls", "%s", errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DESCRIBEACLS);
    rd_kafka_DescribeAcls(rk, f, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT, &rc);
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_AclBinding_t **acls =
            rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
        bool first = true;
        if (a->json)
            fputs("{\"acls\":[", stdout);
        for (size_t i = 0; i < n; i++)
            print_binding(acls[i], a->json, &first);
        if (a->json)
            fputs("]}\n", stdout);
        else if (n == 0)
            printf("No ACLs match.\n");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_AclBinding_destroy(f);
    return rc;
}

/* The bindings (or filters) of the principals x hosts x operations given. */
static int product(const acls_args *a, bool filters, rd_kafka_AclBinding_t **out, int max, int *n) {
    char errstr[256];
    int pattern = a->pattern >= 0 ? a->pattern : RD_KAFKA_RESOURCE_PATTERN_LITERAL;
    static const char *const any_host[] = {"*"};
    for (int side = 0; side < 2; side++) {
        const char *const *ps = side == 0 ? a->allow_p : a->deny_p;
        int np = side == 0 ? a->n_allow_p : a->n_deny_p;
        const char *const *hs = side == 0 ? a->allow_h : a->deny_h;
        int nh = side == 0 ? a->n_allow_h : a->n_deny_h;
        if (nh == 0) {
            hs = any_host;
            nh = 1;
        }
        int perm = side == 0 ? RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW : RD_KAFKA_ACL_PERMISSION_TYPE_DENY;
        for (int p = 0; p < np; p++)
            for (int h = 0; h < nh; h++)
                for (int o = 0; o < (a->n_ops ? a->n_ops : 1); o++) {
                    if (*n == max)
                        return cli_usage_err("acls", "more than %d ACLs in one call", max);
                    int op = a->n_ops ? a->ops[o] : RD_KAFKA_ACL_OPERATION_ANY;
                    rd_kafka_AclBinding_t *b =
                        filters
                            ? rd_kafka_AclBindingFilter_new(
                                  (rd_kafka_ResourceType_t)a->restype, resource_name(a),
                                  (rd_kafka_ResourcePatternType_t)pattern, ps[p], hs[h],
                                  (rd_kafka_AclOperation_t)op, (rd_kafka_AclPermissionType_t)perm, errstr,
                                  sizeof errstr)
                            : rd_kafka_AclBinding_new((rd_kafka_ResourceType_t)a->restype, resource_name(a),
                                                      (rd_kafka_ResourcePatternType_t)pattern, ps[p], hs[h],
                                                      (rd_kafka_AclOperation_t)op,
                                                      (rd_kafka_AclPermissionType_t)perm, errstr,
                                                      sizeof errstr);
                    if (b == NULL)
                        return cli_usage_err("acls", "%s", errstr);
                    out[(*n)++] = b;
                }
    }
    return CLI_OK;
}

#define ACLS_MAX_BINDINGS 1024

static int do_add(acls_args *a, rd_kafka_t *rk) {
    rd_kafka_AclBinding_t *bs[ACLS_MAX_BINDINGS];
    int n = 0, rc = product(a, false, bs, ACLS_MAX_BINDINGS, &n);
    if (rc == CLI_OK) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_CREATEACLS);
        rd_kafka_CreateAcls(rk, bs, (size_t)n, ao, q);
        rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_CREATEACLS_RESULT, &rc);
        if (ev != NULL) {
            size_t cnt = 0;
            const rd_kafka_acl_result_t **res =
                rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &cnt);
            bool first = true;
            if (a->json)
                fputs("{\"added\":[", stdout);
            for (size_t i = 0; i < cnt && i < (size_t)n; i++) {
                const rd_kafka_error_t *e = rd_kafka_acl_result_error(res[i]);
                if (e != NULL && rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    cli_err("acls", "cannot add ACL: %s: %s", rd_kafka_error_name(e),
                            rd_kafka_error_string(e));
                    rc = kc_exit_for(rd_kafka_error_code(e));
                    continue;
                }
                if (!a->json)
                    fputs("Added ", stdout);
                print_binding(bs[i], a->json, &first);
            }
            if (a->json)
                fputs("]}\n", stdout);
            rd_kafka_event_destroy(ev);
        }
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_queue_destroy(q);
    }
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(bs[i]);
    return rc;
}

static int do_remove(acls_args *a, rd_kafka_t *rk) {
    rd_kafka_AclBinding_t *fs[ACLS_MAX_BINDINGS];
    int n = 0, rc = CLI_OK;
    char errstr[256];
    if (a->n_allow_p == 0 && a->n_deny_p == 0) {
        /* Every ACL of the resource (with the operations given, if any). */
        int pattern = a->pattern >= 0 ? a->pattern : RD_KAFKA_RESOURCE_PATTERN_LITERAL;
        for (int o = 0; o < (a->n_ops ? a->n_ops : 1); o++) {
            fs[n] = rd_kafka_AclBindingFilter_new(
                (rd_kafka_ResourceType_t)a->restype, resource_name(a),
                (rd_kafka_ResourcePatternType_t)pattern, NULL, NULL,
                (rd_kafka_AclOperation_t)(a->n_ops ? a->ops[o] : RD_KAFKA_ACL_OPERATION_ANY),
                RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof errstr);
            if (fs[n] == NULL) {
                rc = cli_usage_err("acls", "%s", errstr);
                break;
            }
            n++;
        }
    } else {
        rc = product(a, true, fs, ACLS_MAX_BINDINGS, &n);
    }
    if (rc == CLI_OK) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DELETEACLS);
        rd_kafka_DeleteAcls(rk, fs, (size_t)n, ao, q);
        rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DELETEACLS_RESULT, &rc);
        if (ev != NULL) {
            size_t cnt = 0, total = 0;
            const rd_kafka_DeleteAcls_result_response_t **res =
                rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &cnt);
            bool first = true;
            if (a->json)
                fputs("{\"removed\":[", stdout);
            for (size_t i = 0; i < cnt; i++) {
                const rd_kafka_error_t *e = rd_kafka_DeleteAcls_result_response_error(res[i]);
                if (e != NULL && rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    cli_err("acls", "cannot remove ACLs: %s: %s", rd_kafka_error_name(e),
                            rd_kafka_error_string(e));
                    rc = kc_exit_for(rd_kafka_error_code(e));
                    continue;
                }
                size_t m = 0;
                const rd_kafka_AclBinding_t **acls =
                    rd_kafka_DeleteAcls_result_response_matching_acls(res[i], &m);
                for (size_t j = 0; j < m; j++) {
                    if (!a->json)
                        fputs("Removed ", stdout);
                    print_binding(acls[j], a->json, &first);
                }
                total += m;
            }
            if (a->json)
                fputs("]}\n", stdout);
            else if (total == 0 && rc == CLI_OK)
                printf("No ACLs matched.\n");
            rd_kafka_event_destroy(ev);
        }
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_queue_destroy(q);
    }
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(fs[i]);
    return rc;
}

static int set_resource(acls_args *a, int type, const char *name) {
    if (a->restype != RD_KAFKA_RESOURCE_ANY)
        return cli_usage_err("acls", "give one resource (--topic, --group, --transactional-id or --cluster)");
    if (name != NULL && name[0] == '\0')
        return cli_usage_err("acls", "the resource name must not be empty");
    a->restype = type;
    a->name = name;
    return CLI_OK;
}

int cmd_acls(int argc, char **argv) {
    enum {
        O_LIST = 1,
        O_ADD,
        O_REMOVE,
        O_TOPIC,
        O_GROUP,
        O_TXN,
        O_CLUSTER,
        O_PATTERN,
        O_ALLOW_P,
        O_DENY_P,
        O_ALLOW_H,
        O_DENY_H,
        O_OP,
        O_PRINCIPAL,
        O_FORCE,
    };
    static const struct option opts[] = {
        {"list", no_argument, NULL, O_LIST},
        {"add", no_argument, NULL, O_ADD},
        {"remove", no_argument, NULL, O_REMOVE},
        {"topic", required_argument, NULL, O_TOPIC},
        {"group", required_argument, NULL, O_GROUP},
        {"transactional-id", required_argument, NULL, O_TXN},
        {"cluster", no_argument, NULL, O_CLUSTER},
        {"resource-pattern-type", required_argument, NULL, O_PATTERN},
        {"allow-principal", required_argument, NULL, O_ALLOW_P},
        {"deny-principal", required_argument, NULL, O_DENY_P},
        {"allow-host", required_argument, NULL, O_ALLOW_H},
        {"deny-host", required_argument, NULL, O_DENY_H},
        {"operation", required_argument, NULL, O_OP},
        {"principal", required_argument, NULL, O_PRINCIPAL},
        {"force", no_argument, NULL, O_FORCE},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static acls_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "acls";
    a.restype = RD_KAFKA_RESOURCE_ANY;
    a.pattern = -1;
    int ch, rc = CLI_OK;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&a.k, ch, optarg, &a.json);
        if (c < 0)
            return -c;
        if (c > 0)
            continue;
        switch (ch) {
        case O_LIST:
        case O_ADD:
        case O_REMOVE: {
            int m = ch == O_LIST ? 'l' : ch == O_ADD ? 'a' : 'r';
            if (a.mode && a.mode != m)
                return cli_usage_err("acls", "give one of --list, --add and --remove");
            a.mode = m;
            break;
        }
        case O_TOPIC:
            rc = set_resource(&a, RD_KAFKA_RESOURCE_TOPIC, optarg);
            break;
        case O_GROUP:
            rc = set_resource(&a, RD_KAFKA_RESOURCE_GROUP, optarg);
            break;
        case O_TXN:
            rc = set_resource(&a, ACL_RES_TRANSACTIONAL_ID, optarg);
            break;
        case O_CLUSTER:
            rc = set_resource(&a, RD_KAFKA_RESOURCE_BROKER, NULL);
            break;
        case O_PATTERN: {
            int p = acl_pattern_type_parse(optarg);
            if (p < 0)
                return cli_usage_err("acls", "unknown --resource-pattern-type '%s'", optarg);
            a.pattern = p;
            break;
        }
        case O_ALLOW_P:
            rc = add_to(a.allow_p, &a.n_allow_p, optarg, "--allow-principal");
            break;
        case O_DENY_P:
            rc = add_to(a.deny_p, &a.n_deny_p, optarg, "--deny-principal");
            break;
        case O_ALLOW_H:
            rc = add_to(a.allow_h, &a.n_allow_h, optarg, "--allow-host");
            break;
        case O_DENY_H:
            rc = add_to(a.deny_h, &a.n_deny_h, optarg, "--deny-host");
            break;
        case O_OP: {
            int op = acl_operation_parse(optarg);
            if (op < ACL_OP_ALL)
                return cli_usage_err("acls", "unknown --operation '%s'", optarg);
            if (a.n_ops == ACLS_MAX_LIST)
                return cli_usage_err("acls", "--operation given more than %d times", ACLS_MAX_LIST);
            a.ops[a.n_ops++] = op;
            break;
        }
        case O_PRINCIPAL:
            a.principal = optarg;
            break;
        case O_FORCE:
            break;
        case 'h':
            fputs(acls_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("acls", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("acls", "unknown option '%s'", argv[optind - 1]);
        }
        if (rc != CLI_OK)
            return rc;
    }
    if (optind < argc)
        return cli_usage_err("acls", "unexpected argument '%s'", argv[optind]);
    if (!a.mode)
        return cli_usage_err("acls", "give one of --list, --add and --remove");
    if (a.mode != 'l' && a.restype == RD_KAFKA_RESOURCE_ANY)
        return cli_usage_err("acls", "--add and --remove need a resource (--topic, --group, "
                                     "--transactional-id or --cluster)");
    if (a.mode == 'a' && (a.n_allow_p + a.n_deny_p == 0 || a.n_ops == 0))
        return cli_usage_err("acls", "--add needs --allow-principal or --deny-principal, and --operation");
    if (a.mode == 'a' && (a.pattern == ACL_PAT_ANY || a.pattern == ACL_PAT_MATCH))
        return cli_usage_err("acls", "--add takes --resource-pattern-type LITERAL or PREFIXED");
    if ((rc = kc_check(&a.k)) != CLI_OK)
        return rc;
    rd_kafka_conf_t *conf = kc_conf(&a.k);
    if (conf == NULL)
        return CLI_EUSAGE;
    rd_kafka_t *rk = kc_new(&a.k, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_EFAIL;
    rc = a.mode == 'l' ? do_list(&a, rk) : a.mode == 'a' ? do_add(&a, rk) : do_remove(&a, rk);
    rd_kafka_destroy(rk);
    return rc;
}
