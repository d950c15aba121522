/*
 * topics.c - `sluice topics`: create, list, describe, alter (partition
 * count) and delete topics, with kafka-topics' flag names.
 *
 * Metadata is always requested for all topics and filtered here, so
 * describing a topic that does not exist can never auto-create it. Describe
 * also fetches each topic's configs (DescribeConfigs) and shows those not at
 * their default, as kafka-topics does.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/kclient.h"
#include "tools/kraw.h"

#define TOPICS_MAX_CONFIGS 64

static const char topics_help[] =
    "Usage: sluice topics --bootstrap-server H:P ACTION [options]\n"
    "\n"
    "Actions (exactly one):\n"
    "  --list                 print topic names\n"
    "  --describe             partitions with leader, replicas, ISR; non-default configs\n"
    "  --create               create --topic with --partitions/--replication-factor/--config\n"
    "  --alter                raise the partition count of --topic to --partitions\n"
    "  --delete               delete --topic\n"
    "\n"
    "Options:\n"
    "  --topic T              topic name (list/describe accept a glob such as 'orders-*')\n"
    "  --partitions N         partition count (create: broker default if omitted)\n"
    "  --replication-factor R replicas per partition (create: broker default if omitted)\n"
    "  --config k=v           topic config on create (repeatable)\n"
    "  --if-exists            delete/alter: a missing topic is not an error\n"
    "  --if-not-exists        create: an existing topic is not an error\n"
    "  --under-replicated-partitions  describe: only partitions whose ISR is short\n"
    "  --unavailable-partitions       describe: only partitions without a leader\n"
    "  --exclude-internal     list/describe: hide internal topics (__consumer_offsets, ...)\n" KC_COMMON_HELP
    "\n"
    "Exit codes: 0 ok; 1 the broker refused; 2 bad flags; 3 broker unreachable; 4 topic not found.\n"
    "\n"
    "Examples:\n"
    "  sluice topics --bootstrap-server localhost:9092 --create --topic orders --partitions 6 \\\n"
    "      --config retention.ms=86400000\n"
    "  sluice topics --bootstrap-server localhost:9092 --list\n"
    "  sluice topics --bootstrap-server localhost:9092 --describe --topic orders --json\n"
    "  sluice topics --bootstrap-server localhost:9092 --alter --topic orders --partitions 12\n"
    "  sluice topics --bootstrap-server localhost:9092 --delete --topic orders\n";

enum { A_NONE, A_LIST, A_DESCRIBE, A_CREATE, A_ALTER, A_DELETE };

typedef struct topics_args {
    kc_opts k;
    int action;
    const char *topic;
    int64_t partitions, rf;
    const char *configs[TOPICS_MAX_CONFIGS];
    int nconfigs;
    bool if_exists, if_not_exists, under_replicated, unavailable, exclude_internal, json;
} topics_args;

static bool is_internal(const char *t) { return t[0] == '_' && t[1] == '_'; }

static bool matches(const topics_args *a, const char *t) {
    if (a->exclude_internal && is_internal(t))
        return false;
    return a->topic == NULL || strcmp(a->topic, t) == 0 || fnmatch(a->topic, t, 0) == 0;
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int cmp_topic(const void *x, const void *y) {
    return strcmp(((const rd_kafka_metadata_topic_t *)x)->topic,
                  ((const rd_kafka_metadata_topic_t *)y)->topic);
}

static int cmp_part(const void *x, const void *y) {
    return ((const rd_kafka_metadata_partition_t *)x)->id - ((const rd_kafka_metadata_partition_t *)y)->id;
}

static void print_ids(FILE *f, const int32_t *v, int n) {
    for (int i = 0; i < n; i++)
        fprintf(f, i ? ",%d" : "%d", v[i]);
}

static int do_list(topics_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    const struct rd_kafka_metadata *md = kc_metadata(&a->k, rk, &rc);
    if (md == NULL)
        return rc;
    const char **names = calloc((size_t)md->topic_cnt + 1, sizeof *names);
    int n = 0;
    for (int i = 0; names && i < md->topic_cnt; i++) {
        if (md->topics[i].err == 0 && matches(a, md->topics[i].topic))
            names[n++] = md->topics[i].topic;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    if (a->json)
        fputc('[', stdout);
    for (int i = 0; i < n; i++) {
        if (a->json) {
            if (i)
                fputc(',', stdout);
            cli_json_str(stdout, names[i], -1);
        } else {
            puts(names[i]);
        }
    }
    if (a->json)
        fputs("]\n", stdout);
    free(names);
    rd_kafka_metadata_destroy(md);
    return CLI_OK;
}

/* Fetches configs of the named topics with one DescribeConfigs request.
 * Returns the result event (caller destroys) or NULL if unavailable. */
static rd_kafka_event_t *describe_configs(topics_args *a, rd_kafka_t *rk, const char **names, int n) {
    if (n == 0)
        return NULL;
    rd_kafka_ConfigResource_t **res = calloc((size_t)n, sizeof *res);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    for (int i = 0; i < n; i++)
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(rk, res, (size_t)n, ao, q);
    int rc = CLI_OK;
    /* Configs are an extra on describe: a failure leaves them out quietly
     * unless it is the whole request failing (already printed by kc_wait). */
    ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, &rc);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_ConfigResource_destroy_array(res, (size_t)n);
    free(res);
    rd_kafka_queue_destroy(q);
    return ev;
}

static const rd_kafka_ConfigResource_t *find_resource(rd_kafka_event_t *ev, const char *name) {
    if (ev == NULL)
        return NULL;
    size_t cnt = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (strcmp(rd_kafka_ConfigResource_name(rs[i]), name) == 0 &&
            rd_kafka_ConfigResource_error(rs[i]) == RD_KAFKA_RESP_ERR_NO_ERROR)
            return rs[i];
    }
    return NULL;
}

/* Prints the non-default configs of r as "k=v,k=v" or a JSON object. */
static void print_configs(const rd_kafka_ConfigResource_t *r, bool json) {
    size_t cnt = 0;
    const rd_kafka_ConfigEntry_t **es = r ? rd_kafka_ConfigResource_configs(r, &cnt) : NULL;
    bool first = true;
    if (json)
        fputc('{', stdout);
    for (size_t i = 0; i < cnt; i++) {
        if (rd_kafka_ConfigEntry_is_default(es[i]) ||
            rd_kafka_ConfigEntry_source(es[i]) == RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG)
            continue;
        const char *v = rd_kafka_ConfigEntry_value(es[i]);
        bool sens = rd_kafka_ConfigEntry_is_sensitive(es[i]);
        if (json) {
            if (!first)
                fputc(',', stdout);
            cli_json_str(stdout, rd_kafka_ConfigEntry_name(es[i]), -1);
            fputc(':', stdout);
            if (v == NULL || sens)
                fputs("null", stdout);
            else
                cli_json_str(stdout, v, -1);
        } else {
            printf("%s%s=%s", first ? "" : ",", rd_kafka_ConfigEntry_name(es[i]),
                   sens ? "[hidden]"
                   : v  ? v
                        : "null");
        }
        first = false;
    }
    if (json)
        fputc('}', stdout);
}

/* Topic ids, which librdkafka 2.0's metadata does not expose: one Metadata
 * request (v10+, all topics, no auto-creation) through Sluice's own codec.
 * Best effort: on any failure ids are simply not shown. */
typedef struct topic_ids {
    char (*name)[256];
    char (*id)[24]; /* base64url without padding, as Kafka prints them */
    int n;
} topic_ids;

static void base64url(const uint8_t *in, size_t n, char *out) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
        for (size_t k = 0; k < chars; k++)
            out[o++] = tbl[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

static void fetch_topic_ids(topics_args *a, int max_topics, topic_ids *ids) {
    kraw c;
    uint8_t body[64];
    memset(ids, 0, sizeof *ids);
    if (getenv("SLUICE_DEBUG") == NULL)
        a->k.quiet = true; /* failures here only hide the ids */
    if (kraw_open(&c, &a->k) != CLI_OK)
        goto out;
    int16_t v = kraw_version(&c, KAFKA_API_METADATA, 12);
    if (v < 10)
        goto out;
    kafka_metadata_request req;
    kafka_metadata_request_init(&req);
    req.topics = NULL;
    req.topics_count = -1;
    req.allow_auto_topic_creation = false;
    wire_writer w;
    wire_writer_init(&w, body, sizeof body);
    if (kafka_metadata_request_encode(&w, v, &req) != WIRE_OK)
        goto out;
    wire_reader r;
    if (kraw_call(&c, &a->k, KAFKA_API_METADATA, v, body, w.len, &r) != CLI_OK)
        goto out;
    kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);
    if (kafka_metadata_response_decode(&r, v, &c.a, &resp) != WIRE_OK || resp.topics_count < 0)
        goto out;
    int n = resp.topics_count < max_topics ? resp.topics_count : max_topics;
    ids->name = calloc((size_t)n + 1, sizeof *ids->name);
    ids->id = calloc((size_t)n + 1, sizeof *ids->id);
    if (ids->name == NULL || ids->id == NULL)
        goto out;
    for (int i = 0; i < n; i++) {
        const kafka_metadata_response_metadata_response_topic *t = &resp.topics[i];
        if (t->error_code != 0 || t->name.len <= 0 || t->name.len >= 256)
            continue;
        memcpy(ids->name[ids->n], t->name.ptr, (size_t)t->name.len);
        base64url(t->topic_id.b, 16, ids->id[ids->n]);
        ids->n++;
    }
out:
    a->k.quiet = false;
    kraw_close(&c);
}

static const char *topic_id_of(const topic_ids *ids, const char *name) {
    for (int i = 0; i < ids->n; i++) {
        if (strcmp(ids->name[i], name) == 0)
            return ids->id[i];
    }
    return NULL;
}

static void free_topic_ids(topic_ids *ids) {
    free(ids->name);
    free(ids->id);
}

static int do_describe(topics_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    const struct rd_kafka_metadata *md = kc_metadata(&a->k, rk, &rc);
    if (md == NULL)
        return rc;
    int n = 0;
    rd_kafka_metadata_topic_t *ts = calloc((size_t)md->topic_cnt + 1, sizeof *ts);
    const char **names = calloc((size_t)md->topic_cnt + 1, sizeof *names);
    rd_kafka_event_t *cfg = NULL;
    topic_ids ids = {0};
    if (ts == NULL || names == NULL) {
        rc = CLI_EFAIL;
        goto out;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        if (md->topics[i].err == 0 && matches(a, md->topics[i].topic))
            ts[n++] = md->topics[i];
    }
    if (n == 0 && a->topic != NULL) {
        cli_err("topics", "topic '%s' does not exist", a->topic);
        rc = CLI_ENOTFOUND;
        goto out;
    }
    qsort(ts, (size_t)n, sizeof *ts, cmp_topic);
    for (int i = 0; i < n; i++)
        names[i] = ts[i].topic;
    bool filter = a->under_replicated || a->unavailable;
    if (!filter)
        cfg = describe_configs(a, rk, names, n);
    fetch_topic_ids(a, md->topic_cnt + 64, &ids);
    if (a->json)
        fputs("{\"topics\":[", stdout);
    for (int i = 0; i < n; i++) {
        rd_kafka_metadata_topic_t *t = &ts[i];
        /* Partitions arrive in broker order; print them by id. */
        rd_kafka_metadata_partition_t *ps = calloc((size_t)t->partition_cnt + 1, sizeof *ps);
        if (ps == NULL) {
            rc = CLI_EFAIL;
            break;
        }
        memcpy(ps, t->partitions, (size_t)t->partition_cnt * sizeof *ps);
        qsort(ps, (size_t)t->partition_cnt, sizeof *ps, cmp_part);
        int rf = t->partition_cnt > 0 ? ps[0].replica_cnt : 0;
        if (a->json) {
            fprintf(stdout, "%s{\"name\":", i ? "," : "");
            cli_json_str(stdout, t->topic, -1);
            const char *tid = topic_id_of(&ids, t->topic);
            fputs(",\"topicId\":", stdout);
            if (tid)
                cli_json_str(stdout, tid, -1);
            else
                fputs("null", stdout);
            fprintf(stdout, ",\"internal\":%s,\"partitionCount\":%d,\"replicationFactor\":%d,\"configs\":",
                    is_internal(t->topic) ? "true" : "false", t->partition_cnt, rf);
            print_configs(find_resource(cfg, t->topic), true);
            fputs(",\"partitions\":[", stdout);
        } else if (!filter) {
            const char *tid = topic_id_of(&ids, t->topic);
            printf("Topic: %s\t", t->topic);
            if (tid)
                printf("TopicId: %s\t", tid);
            printf("PartitionCount: %d\tReplicationFactor: %d\tConfigs: ", t->partition_cnt, rf);
            print_configs(find_resource(cfg, t->topic), false);
            putchar('\n');
        }
        bool first = true;
        for (int p = 0; p < t->partition_cnt; p++) {
            const rd_kafka_metadata_partition_t *pp = &ps[p];
            if (a->under_replicated && pp->isr_cnt >= pp->replica_cnt)
                continue;
            if (a->unavailable && pp->leader >= 0)
                continue;
            if (a->json) {
                fprintf(stdout, "%s{\"partition\":%d,\"leader\":%d,\"replicas\":[", first ? "" : ",", pp->id,
                        pp->leader);
                print_ids(stdout, pp->replicas, pp->replica_cnt);
                fputs("],\"isr\":[", stdout);
                print_ids(stdout, pp->isrs, pp->isr_cnt);
                fputs("],\"error\":", stdout);
                if (pp->err)
                    cli_json_str(stdout, rd_kafka_err2name(pp->err), -1);
                else
                    fputs("null", stdout);
                fputc('}', stdout);
            } else {
                printf("\tTopic: %s\tPartition: %d\tLeader: %d\tReplicas: ", t->topic, pp->id, pp->leader);
                print_ids(stdout, pp->replicas, pp->replica_cnt);
                fputs("\tIsr: ", stdout);
                print_ids(stdout, pp->isrs, pp->isr_cnt);
                if (pp->err)
                    printf("\tError: %s", rd_kafka_err2name(pp->err));
                putchar('\n');
            }
            first = false;
        }
        if (a->json)
            fputs("]}", stdout);
        free(ps);
    }
    if (a->json)
        fputs("]}\n", stdout);
out:
    if (cfg)
        rd_kafka_event_destroy(cfg);
    free_topic_ids(&ids);
    free(names);
    free(ts);
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int do_create(topics_args *a, rd_kafka_t *rk) {
    char err[512];
    int rc = CLI_OK;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = NULL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(a->topic, (int)a->partitions, (int)a->rf, err, sizeof err);
    if (nt == NULL) {
        rc = cli_usage_err("topics", "%s", err);
        goto out;
    }
    for (int i = 0; i < a->nconfigs; i++) {
        char buf[CLI_ARG_MAX];
        const char *k, *v;
        if (!cli_split_kv(a->configs[i], '=', buf, sizeof buf, &k, &v)) {
            rc = cli_usage_err("topics", "--config '%s' is not key=value", a->configs[i]);
            goto out;
        }
        rd_kafka_NewTopic_set_config(nt, k, v);
    }
    ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, &rc);
    if (ev == NULL)
        goto out;
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    rd_kafka_resp_err_t e = cnt ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && a->if_not_exists) {
        e = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *msg = cnt ? rd_kafka_topic_result_error_string(tr[0]) : NULL;
        cli_err("topics", "cannot create topic '%s': %s%s%s", a->topic, rd_kafka_err2name(e),
                msg && *msg ? ": " : "", msg && *msg ? msg : "");
        rc = kc_exit_for(e);
        goto out;
    }
    if (a->json) {
        fputs("{\"created\":", stdout);
        cli_json_str(stdout, a->topic, -1);
        fputs("}\n", stdout);
    } else {
        printf("Created topic %s.\n", a->topic);
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (ao)
        rd_kafka_AdminOptions_destroy(ao);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Says whether the topic exists (metadata); -1 with *rc set on failure. */
static int topic_exists(topics_args *a, rd_kafka_t *rk, int *rc) {
    const struct rd_kafka_metadata *md = kc_metadata(&a->k, rk, rc);
    if (md == NULL)
        return -1;
    const rd_kafka_metadata_topic_t *t = kc_find_topic(md, a->topic);
    int r = t != NULL && t->err == 0;
    rd_kafka_metadata_destroy(md);
    return r;
}

static int do_delete(topics_args *a, rd_kafka_t *rk) {
    int rc = CLI_OK;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(a->topic);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_event_t *ev = NULL;
    rd_kafka_DeleteTopics(rk, &dt, 1, ao, q);
    ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_DELETETOPICS_RESULT, &rc);
    if (ev == NULL)
        goto out;
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
    rd_kafka_resp_err_t e = cnt ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && a->if_exists) {
        e = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        cli_err("topics", "topic '%s' does not exist", a->topic);
        rc = CLI_ENOTFOUND;
        goto out;
    } else if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *msg = cnt ? rd_kafka_topic_result_error_string(tr[0]) : NULL;
        cli_err("topics", "cannot delete topic '%s': %s%s%s", a->topic, rd_kafka_err2name(e),
                msg && *msg ? ": " : "", msg && *msg ? msg : "");
        rc = kc_exit_for(e);
        goto out;
    }
    if (a->json) {
        fputs("{\"deleted\":", stdout);
        cli_json_str(stdout, a->topic, -1);
        fputs("}\n", stdout);
    } else {
        printf("Deleted topic %s.\n", a->topic);
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    return rc;
}

static int do_alter(topics_args *a, rd_kafka_t *rk) {
    char err[512];
    int rc = CLI_OK;
    int ex = topic_exists(a, rk, &rc);
    if (ex < 0)
        return rc;
    if (!ex) {
        if (a->if_exists)
            return CLI_OK;
        cli_err("topics", "topic '%s' does not exist", a->topic);
        return CLI_ENOTFOUND;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_NewPartitions_t *np =
        rd_kafka_NewPartitions_new(a->topic, (size_t)a->partitions, err, sizeof err);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&a->k, rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
    rd_kafka_event_t *ev = NULL;
    if (np == NULL) {
        rc = cli_usage_err("topics", "%s", err);
        goto out;
    }
    rd_kafka_CreatePartitions(rk, &np, 1, ao, q);
    ev = kc_wait(&a->k, q, RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT, &rc);
    if (ev == NULL)
        goto out;
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &cnt);
    rd_kafka_resp_err_t e = cnt ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *msg = cnt ? rd_kafka_topic_result_error_string(tr[0]) : NULL;
        cli_err("topics", "cannot change the partition count of '%s': %s%s%s", a->topic, rd_kafka_err2name(e),
                msg && *msg ? ": " : "", msg && *msg ? msg : "");
        rc = kc_exit_for(e);
        goto out;
    }
    if (a->json) {
        fputs("{\"altered\":", stdout);
        cli_json_str(stdout, a->topic, -1);
        printf(",\"partitions\":%lld}\n", (long long)a->partitions);
    } else
        printf("Topic %s now has %lld partitions.\n", a->topic, (long long)a->partitions);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    if (np)
        rd_kafka_NewPartitions_destroy(np);
    rd_kafka_queue_destroy(q);
    return rc;
}

int cmd_topics(int argc, char **argv) {
    enum {
        O_LIST = 1,
        O_DESCRIBE,
        O_CREATE,
        O_ALTER,
        O_DELETE,
        O_TOPIC,
        O_PARTS,
        O_RF,
        O_CONFIG,
        O_IF_EXISTS,
        O_IF_NOT_EXISTS,
        O_UNDER,
        O_UNAVAIL,
        O_EXCL
    };
    static const struct option opts[] = {
        {"list", no_argument, NULL, O_LIST},
        {"describe", no_argument, NULL, O_DESCRIBE},
        {"create", no_argument, NULL, O_CREATE},
        {"alter", no_argument, NULL, O_ALTER},
        {"delete", no_argument, NULL, O_DELETE},
        {"topic", required_argument, NULL, O_TOPIC},
        {"partitions", required_argument, NULL, O_PARTS},
        {"replication-factor", required_argument, NULL, O_RF},
        {"config", required_argument, NULL, O_CONFIG},
        {"if-exists", no_argument, NULL, O_IF_EXISTS},
        {"if-not-exists", no_argument, NULL, O_IF_NOT_EXISTS},
        {"under-replicated-partitions", no_argument, NULL, O_UNDER},
        {"unavailable-partitions", no_argument, NULL, O_UNAVAIL},
        {"exclude-internal", no_argument, NULL, O_EXCL},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static topics_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "topics";
    a.partitions = -1;
    a.rf = -1;
    int ch, nactions = 0;
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
        case O_CREATE:
        case O_ALTER:
        case O_DELETE:
            a.action = ch == O_LIST       ? A_LIST
                       : ch == O_DESCRIBE ? A_DESCRIBE
                       : ch == O_CREATE   ? A_CREATE
                       : ch == O_ALTER    ? A_ALTER
                                          : A_DELETE;
            nactions++;
            break;
        case O_TOPIC:
            a.topic = optarg;
            break;
        case O_PARTS:
            if (!cli_parse_i64(optarg, 1, 1000000, &a.partitions))
                return cli_usage_err("topics", "--partitions: expected 1..1000000, got '%s'", optarg);
            break;
        case O_RF:
            if (!cli_parse_i64(optarg, 1, 32767, &a.rf))
                return cli_usage_err("topics", "--replication-factor: expected 1..32767, got '%s'", optarg);
            break;
        case O_CONFIG:
            if (a.nconfigs >= TOPICS_MAX_CONFIGS)
                return cli_usage_err("topics", "more than %d --config flags", TOPICS_MAX_CONFIGS);
            if (strchr(optarg, '=') == NULL)
                return cli_usage_err("topics", "--config '%s' is not key=value", optarg);
            a.configs[a.nconfigs++] = optarg;
            break;
        case O_IF_EXISTS:
            a.if_exists = true;
            break;
        case O_IF_NOT_EXISTS:
            a.if_not_exists = true;
            break;
        case O_UNDER:
            a.under_replicated = true;
            break;
        case O_UNAVAIL:
            a.unavailable = true;
            break;
        case O_EXCL:
            a.exclude_internal = true;
            break;
        case 'h':
            fputs(topics_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("topics", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("topics", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("topics", "unexpected argument '%s'", argv[optind]);
    if (nactions != 1)
        return cli_usage_err("topics", "give exactly one of --list, --describe, --create, --alter, --delete");
    if ((a.action == A_CREATE || a.action == A_ALTER || a.action == A_DELETE) && a.topic == NULL)
        return cli_usage_err("topics", "--topic is required");
    if (a.action == A_ALTER && a.partitions < 0)
        return cli_usage_err("topics", "--alter needs --partitions (change configs with 'sluice configs')");
    if (a.nconfigs > 0 && a.action != A_CREATE)
        return cli_usage_err("topics", "--config applies to --create only; use 'sluice configs --alter'");
    int rc = kc_check(&a.k);
    if (rc != CLI_OK)
        return rc;
    if ((rc = kc_probe(&a.k)) != CLI_OK)
        return rc;
    rd_kafka_conf_t *conf = kc_conf(&a.k);
    if (conf == NULL)
        return CLI_EUSAGE;
    rd_kafka_t *rk = kc_new(&a.k, RD_KAFKA_PRODUCER, conf);
    if (rk == NULL)
        return CLI_EFAIL;
    switch (a.action) {
    case A_LIST:
        rc = do_list(&a, rk);
        break;
    case A_DESCRIBE:
        rc = do_describe(&a, rk);
        break;
    case A_CREATE:
        rc = do_create(&a, rk);
        break;
    case A_ALTER:
        rc = do_alter(&a, rk);
        break;
    default:
        rc = do_delete(&a, rk);
        break;
    }
    rd_kafka_destroy(rk);
    return rc;
}
