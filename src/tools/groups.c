/*
 * groups.c - `sluice groups`: list, describe and delete consumer groups and
 * reset their committed offsets, with kafka-consumer-groups' flag names.
 *
 * Everything goes through librdkafka's admin API: ListConsumerGroups,
 * DescribeConsumerGroups, ListConsumerGroupOffsets (OffsetFetch),
 * AlterConsumerGroupOffsets (OffsetCommit) and DeleteGroups. Log start and
 * end offsets come from ListOffsets (query_watermark_offsets) and
 * --to-datetime from offsets_for_times.
 *
 * A reset plan is computed first and printed; it is committed only with
 * --execute (--dry-run is the default, as in Kafka). Kafka refuses to reset a
 * group with live members, and so does the broker here: the commit fails
 * with the broker's reason and nothing changes.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/kclient.h"
#include "tools/kraw.h"

#define GROUPS_MAX             1024 /* groups per --describe/--delete run */
#define GROUPS_MAX_TOPIC_PARTS 65536

static const char groups_help[] =
    "Usage: sluice groups --bootstrap-server H:P --list|--describe|--delete|--reset-offsets [options]\n"
    "\n"
    "Actions:\n"
    "  --list                 print group ids (--json adds state and type)\n"
    "  --describe             per partition: current offset, log end offset, lag, member\n"
    "  --delete               delete groups (they must have no members)\n"
    "  --reset-offsets        plan and (with --execute) commit new offsets for --topic\n"
    "\n"
    "Options:\n"
    "  --group G              group id (repeatable); --all-groups for every group\n"
    "  --members              describe: list members instead of offsets\n"
    "  --state                describe: coordinator, assignment strategy, state, member count\n"
    "  --offsets, --verbose   accepted as kafka-consumer-groups takes them (offsets: the default)\n"
    "  --topic T[:P,P...]     reset: topic, optionally only some partitions (repeatable)\n"
    "  --all-topics           reset: every topic the group has offsets for\n"
    "  --to-earliest | --to-latest | --to-current | --to-offset N | --shift-by N\n"
    "  --to-datetime YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]  (UTC unless an offset is given)\n"
    "  --by-duration PnDTnHnMnS   reset to the offsets of that long ago\n"
    "  --dry-run              reset: only print the plan (the default)\n"
    "  --execute              reset: commit the plan\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok; 1 the broker refused (e.g. the group has active members); 2 bad flags;\n"
    "3 broker unreachable; 4 group or topic does not exist.\n"
    "\n"
    "Examples:\n"
    "  sluice groups --bootstrap-server localhost:9092 --list\n"
    "  sluice groups --bootstrap-server localhost:9092 --describe --group billing\n"
    "  sluice groups --bootstrap-server localhost:9092 --reset-offsets --group billing --topic orders \\\n"
    "      --to-datetime 2026-01-01T00:00:00Z --execute\n"
    "  sluice groups --bootstrap-server localhost:9092 --reset-offsets --group billing --topic orders:0,1 "
    "\\\n"
    "      --shift-by -100 --dry-run\n"
    "  sluice groups --bootstrap-server localhost:9092 --delete --group billing\n";

enum { A_LIST = 1, A_DESCRIBE, A_DELETE, A_RESET };
enum { R_NONE, R_EARLIEST, R_LATEST, R_CURRENT, R_OFFSET, R_SHIFT, R_DATETIME, R_DURATION };

typedef struct groups_args {
    kc_opts k;
    int action, nactions;
    const char *groups[GROUPS_MAX];
    int ngroups;
    bool all_groups, members, all_topics, execute, dry_run, json;
    bool state; /* describe --state: one line per group, as kafka-consumer-groups */
    const char *topics[64];
    int ntopics;
    int reset, nresets;
    int64_t reset_value; /* offset, shift, or timestamp (ms) */
} groups_args;

static const char *state_name(rd_kafka_consumer_group_state_t s) {
    return rd_kafka_consumer_group_state_name(s);
}

/* ---- list ---- */

static int do_list(groups_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_ListConsumerGroups(rk, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, &rc);
    if (ev != NULL) {
        const rd_kafka_ListConsumerGroups_result_t *res = rd_kafka_event_ListConsumerGroups_result(ev);
        size_t n = 0, ne = 0;
        const rd_kafka_ConsumerGroupListing_t **gs = rd_kafka_ListConsumerGroups_result_valid(res, &n);
        const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &ne);
        if (a->json)
            fputc('[', stdout);
        for (size_t i = 0; i < n; i++) {
            const char *id = rd_kafka_ConsumerGroupListing_group_id(gs[i]);
            if (a->json) {
                fputs(i ? ",{\"group\":" : "{\"group\":", stdout);
                cli_json_str(stdout, id, -1);
                printf(",\"state\":\"%s\",\"simple\":%s}",
                       state_name(rd_kafka_ConsumerGroupListing_state(gs[i])),
                       rd_kafka_ConsumerGroupListing_is_simple_consumer_group(gs[i]) ? "true" : "false");
            } else {
                puts(id);
            }
        }
        if (a->json)
            fputs("]\n", stdout);
        for (size_t i = 0; i < ne; i++) {
            cli_err("groups", "listing was incomplete: %s", rd_kafka_error_string(errs[i]));
            rc = kc_exit_for(rd_kafka_error_code(errs[i]));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Ids of every group (for --all-groups) into a->groups; strings leak into a
 * static arena for the life of the process (bounded by GROUPS_MAX). */
static int all_group_ids(groups_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_ListConsumerGroups(rk, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, &rc);
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_ConsumerGroupListing_t **gs =
            rd_kafka_ListConsumerGroups_result_valid(rd_kafka_event_ListConsumerGroups_result(ev), &n);
        for (size_t i = 0; i < n && a->ngroups < GROUPS_MAX; i++)
            a->groups[a->ngroups++] = strdup(rd_kafka_ConsumerGroupListing_group_id(gs[i]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Committed offsets of one group (all partitions). NULL with *rc on failure;
 * an unknown group gives an empty list. */
static rd_kafka_topic_partition_list_t *committed(groups_args *a, rd_kafka_t *rk, const char *group,
                                                  int *rc) {
    rd_kafka_topic_partition_list_t *out = NULL;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, rc);
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        const rd_kafka_error_t *err = n ? rd_kafka_group_result_error(gr[0]) : NULL;
        if (n == 0 || err != NULL) {
            cli_err("groups", "cannot fetch offsets of group '%s': %s", group,
                    err ? rd_kafka_error_string(err) : "no result");
            *rc = err ? kc_exit_for(rd_kafka_error_code(err)) : CLI_EFAIL;
        } else {
            out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return out;
}

static int cmp_tp(const void *x, const void *y) {
    const rd_kafka_topic_partition_t *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->partition > b->partition) - (a->partition < b->partition);
}

/* The member owning topic/partition in description d, or NULL. */
static const rd_kafka_MemberDescription_t *owner(const rd_kafka_ConsumerGroupDescription_t *d,
                                                 const char *topic, int32_t partition) {
    size_t n = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_topic_partition_list_t *as =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        if (as && rd_kafka_topic_partition_list_find(as, topic, partition))
            return m;
    }
    return NULL;
}

static void json_or_dash(const char *s, bool json) {
    if (json) {
        if (s && *s)
            cli_json_str(stdout, s, -1);
        else
            fputs("null", stdout);
    } else {
        fputs(s && *s ? s : "-", stdout);
    }
}

/* Prints one group's description: members or per-partition offsets. */
static int describe_one(groups_args *a, rd_kafka_t *rk, const rd_kafka_ConsumerGroupDescription_t *d,
                        bool first) {
    int rc = CLI_OK;
    const char *g = rd_kafka_ConsumerGroupDescription_group_id(d);
    rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(d);
    rd_kafka_topic_partition_list_t *offs = committed(a, rk, g, &rc);
    if (offs == NULL)
        return rc;
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
    if (st == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD && offs->cnt == 0 && nm == 0) {
        cli_err("groups", "group '%s' does not exist", g);
        rd_kafka_topic_partition_list_destroy(offs);
        return CLI_ENOTFOUND;
    }
    qsort(offs->elems, (size_t)offs->cnt, sizeof offs->elems[0], cmp_tp);
    if (a->state && !a->json) {
        const rd_kafka_Node_t *c = rd_kafka_ConsumerGroupDescription_coordinator(d);
        const char *assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(d);
        char coord[320] = "-";
        if (c != NULL)
            snprintf(coord, sizeof coord, "%s:%u (%d)", rd_kafka_Node_host(c), rd_kafka_Node_port(c),
                     rd_kafka_Node_id(c));
        printf("\n%-30s %-30s %-20s %-16s %s\n%-30s %-30s %-20s %-16s %zu\n", "GROUP", "COORDINATOR (ID)",
               "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS", g, coord, assignor && *assignor ? assignor : "-",
               state_name(st), nm);
        rd_kafka_topic_partition_list_destroy(offs);
        return CLI_OK;
    }
    if (a->json) {
        fputs(first ? "{\"group\":" : ",{\"group\":", stdout);
        cli_json_str(stdout, g, -1);
        printf(",\"state\":\"%s\",\"members\":[", state_name(st));
    } else if (a->members) {
        printf("\nGROUP %s (%s), %zu member%s\n%-40s %-20s %-20s %s\n", g, state_name(st), nm,
               nm == 1 ? "" : "s", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS");
    } else {
        if (nm == 0)
            printf("\nConsumer group '%s' has no active members.\n", g);
        printf("\n%-20s %-24s %-9s %-15s %-15s %-8s %-40s %-16s %s\n", "GROUP", "TOPIC", "PARTITION",
               "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID");
    }
    for (size_t i = 0; i < nm && (a->json || a->members); i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_topic_partition_list_t *as =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        if (a->json) {
            fputs(i ? ",{\"consumerId\":" : "{\"consumerId\":", stdout);
            json_or_dash(rd_kafka_MemberDescription_consumer_id(m), true);
            fputs(",\"host\":", stdout);
            json_or_dash(rd_kafka_MemberDescription_host(m), true);
            fputs(",\"clientId\":", stdout);
            json_or_dash(rd_kafka_MemberDescription_client_id(m), true);
            printf(",\"partitions\":%d}", as ? as->cnt : 0);
        } else {
            printf("%-40s %-20s %-20s %d\n", rd_kafka_MemberDescription_consumer_id(m),
                   rd_kafka_MemberDescription_host(m), rd_kafka_MemberDescription_client_id(m),
                   as ? as->cnt : 0);
        }
    }
    if (a->json)
        fputs("],\"offsets\":[", stdout);
    for (int i = 0; i < offs->cnt && (a->json || !a->members); i++) {
        rd_kafka_topic_partition_t *tp = &offs->elems[i];
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, tp->topic, tp->partition, &lo, &hi, a->k.timeout_ms > 0 ? a->k.timeout_ms : 15000);
        if (e)
            hi = -1;
        int64_t lag = (hi >= 0 && tp->offset >= 0) ? hi - tp->offset : -1;
        const rd_kafka_MemberDescription_t *m = owner(d, tp->topic, tp->partition);
        if (a->json) {
            fputs(i ? ",{\"topic\":" : "{\"topic\":", stdout);
            cli_json_str(stdout, tp->topic, -1);
            printf(",\"partition\":%d,\"currentOffset\":", tp->partition);
            if (tp->offset >= 0)
                printf("%lld", (long long)tp->offset);
            else
                fputs("null", stdout);
            printf(",\"logEndOffset\":");
            if (hi >= 0)
                printf("%lld", (long long)hi);
            else
                fputs("null", stdout);
            fputs(",\"lag\":", stdout);
            if (lag >= 0)
                printf("%lld", (long long)lag);
            else
                fputs("null", stdout);
            fputs(",\"consumerId\":", stdout);
            json_or_dash(m ? rd_kafka_MemberDescription_consumer_id(m) : NULL, true);
            fputc('}', stdout);
        } else {
            char cur[24] = "-", end[24] = "-", lg[24] = "-";
            if (tp->offset >= 0)
                snprintf(cur, sizeof cur, "%lld", (long long)tp->offset);
            if (hi >= 0)
                snprintf(end, sizeof end, "%lld", (long long)hi);
            if (lag >= 0)
                snprintf(lg, sizeof lg, "%lld", (long long)lag);
            printf("%-20s %-24s %-9d %-15s %-15s %-8s %-40s %-16s %s\n", g, tp->topic, tp->partition, cur,
                   end, lg, m ? rd_kafka_MemberDescription_consumer_id(m) : "-",
                   m ? rd_kafka_MemberDescription_host(m) : "-",
                   m ? rd_kafka_MemberDescription_client_id(m) : "-");
        }
    }
    if (a->json)
        fputs("]}", stdout);
    rd_kafka_topic_partition_list_destroy(offs);
    return CLI_OK;
}

static int do_describe(groups_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    if (a->ngroups == 0) {
        if (a->json)
            fputs("{\"groups\":[]}\n", stdout);
        return CLI_OK;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(rk, a->groups, (size_t)a->ngroups, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, &rc);
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_ConsumerGroupDescription_t **ds = rd_kafka_DescribeConsumerGroups_result_groups(
            rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        if (a->json)
            fputs("{\"groups\":[", stdout);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            const rd_kafka_error_t *err = rd_kafka_ConsumerGroupDescription_error(ds[i]);
            int r;
            if (err != NULL) {
                rd_kafka_resp_err_t code = rd_kafka_error_code(err);
                if (code == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
                    cli_err("groups", "group '%s' does not exist",
                            rd_kafka_ConsumerGroupDescription_group_id(ds[i]));
                else
                    cli_err("groups", "cannot describe group '%s': %s",
                            rd_kafka_ConsumerGroupDescription_group_id(ds[i]), rd_kafka_error_string(err));
                r = kc_exit_for(code);
            } else {
                r = describe_one(a, rk, ds[i], first);
                if (r == CLI_OK)
                    first = false;
            }
            if (r != CLI_OK && rc == CLI_OK)
                rc = r;
        }
        if (a->json)
            fputs("]}\n", stdout);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

static int do_delete(groups_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    rd_kafka_DeleteGroup_t **dg = calloc((size_t)a->ngroups + 1, sizeof *dg);
    if (dg == NULL)
        return CLI_EFAIL;
    for (int i = 0; i < a->ngroups; i++)
        dg[i] = rd_kafka_DeleteGroup_new(a->groups[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_DeleteGroups(rk, dg, (size_t)a->ngroups, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DELETEGROUPS_RESULT, &rc);
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_group_result_t **gr =
            rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
        if (a->json)
            fputc('[', stdout);
        for (size_t i = 0; i < n; i++) {
            const rd_kafka_error_t *err = rd_kafka_group_result_error(gr[i]);
            const char *g = rd_kafka_group_result_name(gr[i]);
            if (a->json) {
                fputs(i ? ",{\"group\":" : "{\"group\":", stdout);
                cli_json_str(stdout, g, -1);
                fputs(",\"error\":", stdout);
                json_or_dash(err ? rd_kafka_err2name(rd_kafka_error_code(err)) : NULL, true);
                fputc('}', stdout);
            }
            if (err == NULL) {
                if (!a->json)
                    printf("Deleted consumer group '%s'.\n", g);
                continue;
            }
            rd_kafka_resp_err_t code = rd_kafka_error_code(err);
            if (code == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
                cli_err("groups", "group '%s' does not exist", g);
            else
                cli_err("groups", "cannot delete group '%s': %s: %s", g, rd_kafka_err2name(code),
                        rd_kafka_error_string(err));
            if (rc == CLI_OK)
                rc = kc_exit_for(code);
        }
        if (a->json)
            fputs("]\n", stdout);
        rd_kafka_event_destroy(ev);
    }
    for (int i = 0; i < a->ngroups; i++)
        rd_kafka_DeleteGroup_destroy(dg[i]);
    free(dg);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* ---- reset offsets ---- */

/* Adds the partitions named by spec "topic" or "topic:0,1" to plan,
 * checking them against metadata. */
static int plan_topic(const struct rd_kafka_metadata *md, const char *spec,
                      rd_kafka_topic_partition_list_t *plan) {
    char name[CLI_ARG_MAX];
    if (strlen(spec) >= sizeof name)
        return cli_usage_err("groups", "--topic too long");
    strcpy(name, spec);
    char *parts = strchr(name, ':');
    if (parts)
        *parts++ = '\0';
    const rd_kafka_metadata_topic_t *t = kc_find_topic(md, name);
    if (t == NULL || t->err) {
        cli_err("groups", "topic '%s' does not exist", name);
        return CLI_ENOTFOUND;
    }
    if (parts == NULL) {
        for (int p = 0; p < t->partition_cnt && plan->cnt < GROUPS_MAX_TOPIC_PARTS; p++)
            rd_kafka_topic_partition_list_add(plan, name, p);
        return CLI_OK;
    }
    for (char *save = NULL, *tok = strtok_r(parts, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t p;
        if (!cli_parse_i64(tok, 0, INT32_MAX, &p))
            return cli_usage_err("groups", "--topic %s: '%s' is not a partition number", spec, tok);
        if (p >= t->partition_cnt) {
            cli_err("groups", "partition %lld of topic '%s' does not exist", (long long)p, name);
            return CLI_ENOTFOUND;
        }
        rd_kafka_topic_partition_list_add(plan, name, (int32_t)p);
    }
    return CLI_OK;
}

/* Fills plan[i].offset with the target offset per the reset mode. */
static int compute_plan(groups_args *a, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *plan,
                        const rd_kafka_topic_partition_list_t *cur) {
    int timeout = a->k.timeout_ms > 0 ? a->k.timeout_ms : 15000;
    if (a->reset == R_DATETIME || a->reset == R_DURATION) {
        int64_t ts = a->reset == R_DATETIME ? a->reset_value : cli_wall_ms() - a->reset_value;
        for (int i = 0; i < plan->cnt; i++)
            plan->elems[i].offset = ts;
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, plan, timeout);
        if (e) {
            cli_err("groups", "cannot look up offsets by time: %s", rd_kafka_err2str(e));
            return kc_exit_for(e);
        }
    }
    for (int i = 0; i < plan->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &plan->elems[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, timeout);
        if (e) {
            cli_err("groups", "cannot read offsets of %s-%d: %s", tp->topic, tp->partition,
                    rd_kafka_err2str(e));
            return kc_exit_for(e);
        }
        rd_kafka_topic_partition_t *c = rd_kafka_topic_partition_list_find(cur, tp->topic, tp->partition);
        int64_t current = c && c->offset >= 0 ? c->offset : -1;
        int64_t target;
        switch (a->reset) {
        case R_EARLIEST:
            target = lo;
            break;
        case R_LATEST:
            target = hi;
            break;
        case R_CURRENT:
            target = current >= 0 ? current : hi;
            break;
        case R_OFFSET:
            target = a->reset_value;
            break;
        case R_SHIFT:
            target = (current >= 0 ? current : hi) + a->reset_value;
            break;
        default: /* by time: -1 means no record that late, so the end */
            target = tp->offset >= 0 ? tp->offset : hi;
            break;
        }
        tp->offset = target < lo ? lo : target > hi ? hi : target; /* clamp as Kafka does */
        cli_progress(false, "planning: %d/%d partitions", i + 1, plan->cnt);
    }
    cli_progress_done();
    return CLI_OK;
}

/* Kafka resets offsets only of groups without live members; checking first
 * gives a clear message instead of one "unknown member" per partition.
 * CLI_OK when the group is Empty or Dead (unknown), else an exit code. */
static int require_inactive(groups_args *a, rd_kafka_t *rk, const char *group) {
    int rc = CLI_OK;
    const char *groups[1] = {group};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, ao, q);
    rd_kafka_event_t *ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, &rc);
    if (ev != NULL) {
        size_t n = 0;
        const rd_kafka_ConsumerGroupDescription_t **ds = rd_kafka_DescribeConsumerGroups_result_groups(
            rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        if (n == 1 && rd_kafka_ConsumerGroupDescription_error(ds[0]) == NULL) {
            rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(ds[0]);
            if (st != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY && st != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) {
                size_t m = rd_kafka_ConsumerGroupDescription_member_count(ds[0]);
                cli_err("groups",
                        "offsets can be reset only while group '%s' has no active members; it is %s with %zu "
                        "member%s",
                        group, state_name(st), m, m == 1 ? "" : "s");
                rc = CLI_EFAIL;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

static int do_reset(groups_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    const char *group = a->groups[0];
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *cur = committed(a, rk, group, &rc), *plan = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *ao = NULL;
    rd_kafka_AlterConsumerGroupOffsets_t *req = NULL;
    rd_kafka_event_t *ev = NULL;
    if (cur == NULL)
        return rc;
    if (a->execute && (rc = require_inactive(a, rk, group)) != CLI_OK)
        goto out;
    if ((md = kc_metadata(&a->k, rk, &rc)) == NULL)
        goto out;
    plan = rd_kafka_topic_partition_list_new(16);
    if (a->all_topics) {
        for (int i = 0; i < cur->cnt; i++) {
            if (!rd_kafka_topic_partition_list_find(plan, cur->elems[i].topic, cur->elems[i].partition))
                rd_kafka_topic_partition_list_add(plan, cur->elems[i].topic, cur->elems[i].partition);
        }
        if (plan->cnt == 0) {
            cli_err("groups", "group '%s' has no committed offsets (--all-topics found nothing)", group);
            rc = CLI_ENOTFOUND;
            goto out;
        }
    }
    for (int i = 0; i < a->ntopics; i++) {
        if ((rc = plan_topic(md, a->topics[i], plan)) != CLI_OK)
            goto out;
    }
    qsort(plan->elems, (size_t)plan->cnt, sizeof plan->elems[0], cmp_tp);
    if ((rc = compute_plan(a, rk, plan, cur)) != CLI_OK)
        goto out;
    if (a->json) {
        fputs("{\"group\":", stdout);
        cli_json_str(stdout, group, -1);
        printf(",\"executed\":%s,\"offsets\":[", a->execute ? "true" : "false");
    } else {
        printf("\n%-20s %-24s %-9s %s\n", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
    }
    for (int i = 0; i < plan->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &plan->elems[i];
        if (a->json) {
            fputs(i ? ",{\"topic\":" : "{\"topic\":", stdout);
            cli_json_str(stdout, tp->topic, -1);
            printf(",\"partition\":%d,\"newOffset\":%lld}", tp->partition, (long long)tp->offset);
        } else {
            printf("%-20s %-24s %-9d %lld\n", group, tp->topic, tp->partition, (long long)tp->offset);
        }
    }
    if (a->json)
        fputs("]}\n", stdout);
    if (!a->execute) {
        if (!a->json)
            fputs("(dry run: nothing committed; add --execute to commit)\n", stderr);
        goto out;
    }
    q = rd_kafka_queue_new(rk);
    ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    req = rd_kafka_AlterConsumerGroupOffsets_new(group, plan);
    rd_kafka_AlterConsumerGroupOffsets(rk, &req, 1, ao, q);
    ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, &rc);
    if (ev == NULL)
        goto out;
    size_t n = 0;
    const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    const rd_kafka_error_t *gerr = n ? rd_kafka_group_result_error(gr[0]) : NULL;
    if (gerr) {
        cli_err("groups", "cannot reset offsets of group '%s': %s", group, rd_kafka_error_string(gerr));
        rc = kc_exit_for(rd_kafka_error_code(gerr));
        goto out;
    }
    const rd_kafka_topic_partition_list_t *res = n ? rd_kafka_group_result_partitions(gr[0]) : NULL;
    for (int i = 0; res && i < res->cnt; i++) {
        if (res->elems[i].err) {
            cli_err("groups", "cannot reset %s-%d: %s", res->elems[i].topic, res->elems[i].partition,
                    rd_kafka_err2str(res->elems[i].err));
            if (rc == CLI_OK)
                rc = kc_exit_for(res->elems[i].err);
        }
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (req)
        rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    if (ao)
        rd_kafka_AdminOptions_destroy(ao);
    if (q)
        rd_kafka_queue_destroy(q);
    if (plan)
        rd_kafka_topic_partition_list_destroy(plan);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(cur);
    return rc;
}

/* "2026-01-02T03:04:05[.678][Z|+01:00|-0130]" -> ms since the epoch. */
static bool parse_datetime(const char *s, int64_t *out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return false;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off_s = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 && sscanf(p + 1, "%2d%2d", &hh, &mm) != 2)
            return false;
        off_s = sign * (hh * 3600 + mm * 60);
        p += strlen(p);
    }
    if (*p != '\0')
        return false;
    time_t t = timegm(&tm);
    *out = ((int64_t)t - off_s) * 1000 + ms;
    return true;
}

/* ISO-8601 duration "PnDTnHnMnS" (also PTnH etc.) -> ms. */
static bool parse_duration(const char *s, int64_t *out) {
    if (*s++ != 'P')
        return false;
    int64_t total = 0;
    bool in_time = false, any = false;
    while (*s) {
        if (*s == 'T') {
            in_time = true;
            s++;
            continue;
        }
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0 || v > 1e12)
            return false;
        double unit;
        switch (*end) {
        case 'D':
            unit = 86400e3;
            break;
        case 'H':
            unit = 3600e3;
            break;
        case 'M':
            unit = in_time ? 60e3 : -1;
            break;
        case 'S':
            unit = 1e3;
            break;
        default:
            return false;
        }
        if (unit < 0 || (*end != 'D' && !in_time))
            return false;
        total += (int64_t)(v * unit);
        any = true;
        s = end + 1;
    }
    *out = total;
    return any;
}

int cmd_groups(int argc, char **argv) {
    enum {
        O_LIST = 1,
        O_DESCRIBE,
        O_DELETE,
        O_RESET,
        O_GROUP,
        O_ALLGROUPS,
        O_MEMBERS,
        O_TOPIC,
        O_ALLTOPICS,
        O_EARLIEST,
        O_LATEST,
        O_CURRENT,
        O_TOOFFSET,
        O_SHIFT,
        O_DATETIME,
        O_DURATION,
        O_DRYRUN,
        O_EXECUTE,
        O_STATE,
        O_NOOP
    };
    static const struct option opts[] = {
        {"list", no_argument, NULL, O_LIST},
        {"describe", no_argument, NULL, O_DESCRIBE},
        {"delete", no_argument, NULL, O_DELETE},
        {"reset-offsets", no_argument, NULL, O_RESET},
        {"group", required_argument, NULL, O_GROUP},
        {"all-groups", no_argument, NULL, O_ALLGROUPS},
        {"members", no_argument, NULL, O_MEMBERS},
        {"state", no_argument, NULL, O_STATE},
        {"offsets", no_argument, NULL, O_NOOP},
        {"verbose", no_argument, NULL, O_NOOP},
        {"topic", required_argument, NULL, O_TOPIC},
        {"all-topics", no_argument, NULL, O_ALLTOPICS},
        {"to-earliest", no_argument, NULL, O_EARLIEST},
        {"to-latest", no_argument, NULL, O_LATEST},
        {"to-current", no_argument, NULL, O_CURRENT},
        {"to-offset", required_argument, NULL, O_TOOFFSET},
        {"shift-by", required_argument, NULL, O_SHIFT},
        {"to-datetime", required_argument, NULL, O_DATETIME},
        {"by-duration", required_argument, NULL, O_DURATION},
        {"dry-run", no_argument, NULL, O_DRYRUN},
        {"execute", no_argument, NULL, O_EXECUTE},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static groups_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "groups";
    int ch;
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
        case O_DESCRIBE:
        case O_DELETE:
        case O_RESET:
            a.action = ch == O_LIST       ? A_LIST
                       : ch == O_DESCRIBE ? A_DESCRIBE
                       : ch == O_DELETE   ? A_DELETE
                                          : A_RESET;
            a.nactions++;
            break;
        case O_GROUP:
            if (a.ngroups >= GROUPS_MAX)
                return cli_usage_err("groups", "more than %d groups", GROUPS_MAX);
            a.groups[a.ngroups++] = optarg;
            break;
        case O_ALLGROUPS:
            a.all_groups = true;
            break;
        case O_MEMBERS:
            a.members = true;
            break;
        case O_STATE:
            a.state = true;
            break;
        case O_NOOP:
            break;
        case O_TOPIC:
            if (a.ntopics >= 64)
                return cli_usage_err("groups", "more than 64 --topic flags");
            a.topics[a.ntopics++] = optarg;
            break;
        case O_ALLTOPICS:
            a.all_topics = true;
            break;
        case O_EARLIEST:
        case O_LATEST:
        case O_CURRENT:
            a.reset = ch == O_EARLIEST ? R_EARLIEST : ch == O_LATEST ? R_LATEST : R_CURRENT;
            a.nresets++;
            break;
        case O_TOOFFSET:
            if (!cli_parse_i64(optarg, 0, INT64_MAX, &a.reset_value))
                return cli_usage_err("groups", "--to-offset: expected a non-negative offset, got '%s'",
                                     optarg);
            a.reset = R_OFFSET;
            a.nresets++;
            break;
        case O_SHIFT:
            if (!cli_parse_i64(optarg, INT64_MIN / 2, INT64_MAX / 2, &a.reset_value))
                return cli_usage_err("groups", "--shift-by: expected a number, got '%s'", optarg);
            a.reset = R_SHIFT;
            a.nresets++;
            break;
        case O_DATETIME:
            if (!parse_datetime(optarg, &a.reset_value))
                return cli_usage_err("groups",
                                     "--to-datetime: expected YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM], got '%s'",
                                     optarg);
            a.reset = R_DATETIME;
            a.nresets++;
            break;
        case O_DURATION:
            if (!parse_duration(optarg, &a.reset_value))
                return cli_usage_err("groups", "--by-duration: expected PnDTnHnMnS, got '%s'", optarg);
            a.reset = R_DURATION;
            a.nresets++;
            break;
        case O_DRYRUN:
            a.dry_run = true;
            break;
        case O_EXECUTE:
            a.execute = true;
            break;
        case 'h':
            fputs(groups_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("groups", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("groups", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("groups", "unexpected argument '%s'", argv[optind]);
    if (a.nactions != 1)
        return cli_usage_err("groups", "give exactly one of --list, --describe, --delete, --reset-offsets");
    if ((a.action == A_DESCRIBE || a.action == A_DELETE) && a.ngroups == 0 && !a.all_groups)
        return cli_usage_err("groups", "--group (or --all-groups) is required");
    if (a.action == A_RESET) {
        if (a.ngroups != 1)
            return cli_usage_err("groups", "--reset-offsets takes exactly one --group");
        if (a.nresets != 1)
            return cli_usage_err("groups",
                                 "--reset-offsets needs one of --to-earliest, --to-latest, --to-current, "
                                 "--to-offset, --shift-by, --to-datetime, --by-duration");
        if (a.ntopics == 0 && !a.all_topics)
            return cli_usage_err("groups", "--reset-offsets needs --topic or --all-topics");
        if (a.execute && a.dry_run)
            return cli_usage_err("groups", "--dry-run and --execute exclude each other");
    } else if (a.nresets || a.execute || a.dry_run) {
        return cli_usage_err("groups", "reset options go with --reset-offsets");
    }
    int rc = kc_check(&a.k);
    if (rc != CLI_OK || (rc = kc_probe(&a.k)) != CLI_OK)
        return rc;
    /* FindCoordinator, OffsetFetch, DescribeGroups, ListGroups; OffsetCommit
     * for resets, DeleteGroups for deletes. */
    static const int16_t need_list[] = {16}, need_describe[] = {10, 9, 15, 2}, need_delete[] = {10, 42},
                         need_reset[] = {10, 9, 8, 2};
    const int16_t *need = a.action == A_LIST       ? need_list
                          : a.action == A_DESCRIBE ? need_describe
                          : a.action == A_DELETE   ? need_delete
                                                   : need_reset;
    int nneed = a.action == A_LIST ? 1 : a.action == A_DELETE ? 2 : 4;
    if ((rc = kraw_require(&a.k, need, nneed, "consumer groups")) != CLI_OK)
        return rc;
    rd_kafka_conf_t *conf = kc_conf(&a.k);
    if (conf == NULL)
        return CLI_EUSAGE;
    rd_kafka_t *rk = kc_new(&a.k, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_EFAIL;
    if (a.all_groups && (a.action == A_DESCRIBE || a.action == A_DELETE))
        rc = all_group_ids(&a, rk);
    if (rc == CLI_OK) {
        switch (a.action) {
        case A_LIST:
            rc = do_list(&a, rk);
            break;
        case A_DESCRIBE:
            rc = do_describe(&a, rk);
            break;
        case A_DELETE:
            rc = a.ngroups ? do_delete(&a, rk) : CLI_OK;
            break;
        default:
            rc = do_reset(&a, rk);
            break;
        }
    }
    rd_kafka_destroy(rk);
    return rc;
}
