/*
 * cluster.c - `sluice cluster describe`: the brokers of a cluster and its
 * KRaft metadata quorum (as kafka-cluster.sh and kafka-metadata-quorum.sh
 * describe --status --replication show them), through Sluice's own codec:
 * DescribeCluster, then DescribeQuorum to the quorum's leader.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/kclient.h"
#include "tools/kraw.h"

static const char cluster_help[] =
    "Usage: sluice cluster describe --bootstrap-server H:P [--json]\n"
    "       sluice cluster unregister --bootstrap-server H:P --id N\n"
    "\n"
    "Shows the cluster id, the active controller, the brokers clients are given (fenced\n"
    "ones are left out), and the metadata quorum: its leader, epoch and high watermark, and\n"
    "each voter's log end offset and lag behind the leader.\n"
    "unregister removes a broker's registration (UnregisterBroker, as kafka-cluster.sh\n"
    "unregister): for a broker that is gone for good; one still running registers again.\n"
    "\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok; 1 the broker refused or is a single node without a quorum (the\n"
    "brokers are still shown); 2 bad flags; 3 unreachable.\n"
    "\n"
    "Examples:\n"
    "  sluice cluster describe --bootstrap-server localhost:9092\n"
    "  sluice cluster describe --bootstrap-server localhost:9092 --json\n"
    "  sluice cluster unregister --bootstrap-server localhost:9092 --id 4\n";

#define BROKERS_MAX 1024

/* DescribeCluster's answer, copied out of the connection's arena (the next
 * call reuses it). */
typedef struct brk {
    int32_t id;
    char host[256];
    int32_t port;
    char rack[256];
    bool has_rack;
} brk;

typedef struct cluster_view {
    char cluster_id[128];
    int32_t controller;
    brk b[BROKERS_MAX];
    int n;
} cluster_view;

typedef struct cluster_args {
    kc_opts k;
    bool describe, json;
    bool unregister;
    long id;
} cluster_args;

/* Encodes req for (key, v) and calls; the decoded response in *out. */
static int call(kraw *c, const kc_opts *o, int16_t key, int16_t v, const void *req, void *out) {
    const kafka_api_info *api = kafka_api_lookup(key);
    size_t len = api->request_size(v, req);
    uint8_t *body = malloc(len ? len : 1);
    if (body == NULL)
        return CLI_EFAIL;
    wire_writer w;
    wire_writer_init(&w, body, len);
    int rc = api->request_encode(&w, v, req) == WIRE_OK ? CLI_OK : CLI_EFAIL;
    wire_reader r;
    if (rc == CLI_OK)
        rc = kraw_call(c, o, key, v, body, len, &r);
    free(body);
    if (rc == CLI_OK) {
        api->response_init(out);
        if (api->response_decode(&r, v, &c->a, out) != WIRE_OK) {
            cli_err("cluster", "malformed %s response", api->name);
            rc = CLI_EFAIL;
        }
    }
    return rc;
}

static int quorum(const cluster_args *a, const cluster_view *dc, kraw *first, bool *have,
                  kafka_describe_quorum_response *out, kraw *other) {
    kafka_describe_quorum_request req;
    kafka_describe_quorum_request_init(&req);
    kafka_describe_quorum_request_topic_data t;
    kafka_describe_quorum_request_topic_data_init(&t);
    kafka_describe_quorum_request_partition_data p;
    kafka_describe_quorum_request_partition_data_init(&p);
    t.topic_name = kstr_c("__cluster_metadata");
    t.partitions = &p;
    t.partitions_count = 1;
    req.topics = &t;
    req.topics_count = 1;
    *have = false;
    int16_t v = kraw_version(first, KAFKA_API_DESCRIBE_QUORUM, 2);
    if (v < 0)
        return CLI_OK; /* not a quorum member */
    int rc = call(first, &a->k, KAFKA_API_DESCRIBE_QUORUM, v, &req, out);
    if (rc != CLI_OK)
        return rc;
    const kafka_describe_quorum_response_partition_data *pd =
        out->topics_count == 1 && out->topics[0].partitions_count == 1 ? &out->topics[0].partitions[0] : NULL;
    if (pd && pd->error_code == 0) {
        *have = true;
        return CLI_OK;
    }
    /* Ask the leader itself: through its client listener, or (a
     * controller-only node) the controller listener the answer names. */
    int32_t leader = pd ? pd->leader_id : -1;
    char ctl_boot[300] = "";
    for (int32_t i = 0; leader >= 0 && i < out->nodes_count; i++)
        if (out->nodes[i].node_id == leader && out->nodes[i].listeners_count > 0)
            snprintf(ctl_boot, sizeof ctl_boot, "%.*s:%u", out->nodes[i].listeners[0].host.len,
                     out->nodes[i].listeners[0].host.ptr, out->nodes[i].listeners[0].port);
    bool is_broker = false;
    for (int32_t i = 0; i < dc->n; i++)
        is_broker = is_broker || dc->b[i].id == leader;
    if (leader >= 0 && !is_broker && ctl_boot[0]) {
        kc_opts o = a->k;
        o.bootstrap = ctl_boot;
        if ((rc = kraw_open(other, &o)) != CLI_OK)
            return rc;
        if ((rc = call(other, &o, KAFKA_API_DESCRIBE_QUORUM, v, &req, out)) != CLI_OK)
            return rc;
        pd = out->topics_count == 1 && out->topics[0].partitions_count == 1 ? &out->topics[0].partitions[0]
                                                                            : NULL;
        *have = pd && pd->error_code == 0;
        return CLI_OK;
    }
    for (int32_t i = 0; leader >= 0 && i < dc->n; i++) {
        if (dc->b[i].id != leader)
            continue;
        char boot[300];
        snprintf(boot, sizeof boot, "%s:%d", dc->b[i].host, dc->b[i].port);
        kc_opts o = a->k;
        o.bootstrap = boot;
        if ((rc = kraw_open(other, &o)) != CLI_OK)
            return rc;
        if ((rc = call(other, &o, KAFKA_API_DESCRIBE_QUORUM, v, &req, out)) != CLI_OK)
            return rc;
        pd = out->topics_count == 1 && out->topics[0].partitions_count == 1 ? &out->topics[0].partitions[0]
                                                                            : NULL;
        *have = pd && pd->error_code == 0;
        return CLI_OK;
    }
    return CLI_OK;
}

static int by_id(const void *x, const void *y) {
    const brk *a = x, *b = y;
    return (a->id > b->id) - (a->id < b->id);
}

static int describe(cluster_args *a) {
    kraw c, other;
    memset(&other, 0, sizeof other);
    other.fd = -1;
    int rc = kraw_open(&c, &a->k);
    if (rc != CLI_OK)
        return rc;
    kafka_describe_cluster_request dreq;
    kafka_describe_cluster_request_init(&dreq);
    kafka_describe_cluster_response dc;
    int16_t v = kraw_version(&c, KAFKA_API_DESCRIBE_CLUSTER, 1);
    if (v < 0) {
        cli_err("cluster", "the broker does not serve DescribeCluster");
        kraw_close(&c);
        return CLI_EFAIL;
    }
    if ((rc = call(&c, &a->k, KAFKA_API_DESCRIBE_CLUSTER, v, &dreq, &dc)) != CLI_OK) {
        kraw_close(&c);
        return rc;
    }
    static cluster_view cv;
    memset(&cv, 0, sizeof cv);
    snprintf(cv.cluster_id, sizeof cv.cluster_id, "%.*s", dc.cluster_id.len > 0 ? dc.cluster_id.len : 0,
             dc.cluster_id.len > 0 ? dc.cluster_id.ptr : "");
    cv.controller = dc.controller_id;
    for (int32_t i = 0; i < dc.brokers_count && cv.n < BROKERS_MAX; i++) {
        brk *b = &cv.b[cv.n++];
        b->id = dc.brokers[i].broker_id;
        snprintf(b->host, sizeof b->host, "%.*s", dc.brokers[i].host.len > 0 ? dc.brokers[i].host.len : 0,
                 dc.brokers[i].host.len > 0 ? dc.brokers[i].host.ptr : "");
        b->port = dc.brokers[i].port;
        b->has_rack = dc.brokers[i].rack.len >= 0;
        snprintf(b->rack, sizeof b->rack, "%.*s", b->has_rack ? dc.brokers[i].rack.len : 0,
                 b->has_rack ? dc.brokers[i].rack.ptr : "");
    }
    qsort(cv.b, (size_t)cv.n, sizeof cv.b[0], by_id);
    kafka_describe_quorum_response dq;
    bool have = false;
    rc = quorum(a, &cv, &c, &have, &dq, &other);
    const kafka_describe_quorum_response_partition_data *pd = have ? &dq.topics[0].partitions[0] : NULL;
    if (a->json) {
        printf("{\"version\":1,\"clusterId\":");
        cli_json_str(stdout, cv.cluster_id, -1);
        printf(",\"controllerId\":%d,\"brokers\":[", cv.controller);
        for (int i = 0; i < cv.n; i++) {
            const brk *b = &cv.b[i];
            printf("%s{\"id\":%d,\"host\":", i ? "," : "", b->id);
            cli_json_str(stdout, b->host, -1);
            printf(",\"port\":%d,\"rack\":", b->port);
            if (b->has_rack)
                cli_json_str(stdout, b->rack, -1);
            else
                fputs("null", stdout);
            putchar('}');
        }
        fputs("],\"quorum\":", stdout);
        if (pd) {
            printf("{\"leaderId\":%d,\"leaderEpoch\":%d,\"highWatermark\":%lld,\"voters\":[", pd->leader_id,
                   pd->leader_epoch, (long long)pd->high_watermark);
            int64_t lead_end = 0;
            for (int32_t i = 0; i < pd->current_voters_count; i++)
                if (pd->current_voters[i].replica_id == pd->leader_id)
                    lead_end = pd->current_voters[i].log_end_offset;
            for (int32_t i = 0; i < pd->current_voters_count; i++) {
                const kafka_describe_quorum_response_replica_state *r = &pd->current_voters[i];
                printf("%s{\"id\":%d,\"logEndOffset\":%lld,\"lag\":%lld}", i ? "," : "", r->replica_id,
                       (long long)r->log_end_offset,
                       (long long)(r->log_end_offset >= 0 ? lead_end - r->log_end_offset : -1));
            }
            fputs("],\"observers\":[", stdout);
            for (int32_t i = 0; i < pd->observers_count; i++) {
                const kafka_describe_quorum_response_replica_state *r = &pd->observers[i];
                printf("%s{\"id\":%d,\"logEndOffset\":%lld,\"lag\":%lld}", i ? "," : "", r->replica_id,
                       (long long)r->log_end_offset,
                       (long long)(r->log_end_offset >= 0 ? lead_end - r->log_end_offset : -1));
            }
            fputs("]}", stdout);
        } else {
            fputs("null", stdout);
        }
        fputs("}\n", stdout);
    } else {
        printf("Cluster id:        %s\n", cv.cluster_id);
        printf("Active controller: %d\n", cv.controller);
        printf("Brokers (unfenced):\n");
        for (int i = 0; i < cv.n; i++)
            printf("  %-4d %s:%d%s%s\n", cv.b[i].id, cv.b[i].host, cv.b[i].port,
                   cv.b[i].has_rack ? "  rack " : "", cv.b[i].rack);
        if (pd) {
            printf("Metadata quorum (__cluster_metadata-0):\n");
            printf("  leader %d, epoch %d, high watermark %lld\n", pd->leader_id, pd->leader_epoch,
                   (long long)pd->high_watermark);
            int64_t lead_end = 0;
            for (int32_t i = 0; i < pd->current_voters_count; i++)
                if (pd->current_voters[i].replica_id == pd->leader_id)
                    lead_end = pd->current_voters[i].log_end_offset;
            printf("  %-8s %-6s %-14s %s\n", "", "node", "log end", "lag");
            for (int32_t i = 0; i < pd->current_voters_count; i++) {
                const kafka_describe_quorum_response_replica_state *r = &pd->current_voters[i];
                if (r->log_end_offset >= 0)
                    printf("  %-8s %-6d %-14lld %lld\n", "voter", r->replica_id, (long long)r->log_end_offset,
                           (long long)(lead_end - r->log_end_offset));
                else
                    printf("  %-8s %-6d %-14s %s\n", "voter", r->replica_id, "unknown", "-");
            }
            for (int32_t i = 0; i < pd->observers_count; i++) {
                const kafka_describe_quorum_response_replica_state *r = &pd->observers[i];
                printf("  %-8s %-6d %-14lld %lld\n", "observer", r->replica_id, (long long)r->log_end_offset,
                       (long long)(r->log_end_offset >= 0 ? lead_end - r->log_end_offset : -1));
            }
        } else {
            printf("Metadata quorum: none (a single node without controller.quorum.voters)\n");
        }
    }
    if (rc == CLI_OK && !pd)
        rc = CLI_EFAIL;
    kraw_close(&c);
    if (other.fd >= 0)
        kraw_close(&other);
    return rc;
}

static int unregister(cluster_args *a);

int cmd_cluster(int argc, char **argv) {
    static const struct option opts[] = {
        KC_COMMON_OPTIONS,
        {"id", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    static cluster_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "cluster";
    a.id = -1;
    if (argc >= 2 && strcmp(argv[1], "unregister") == 0)
        a.unregister = true;
    if (argc < 2 || (strcmp(argv[1], "describe") != 0 && !a.unregister)) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(cluster_help, stdout);
            return CLI_OK;
        }
        fputs(cluster_help, stderr);
        return CLI_EUSAGE;
    }
    argc--;
    argv++;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&a.k, ch, optarg, &a.json);
        if (c < 0)
            return -c;
        if (c > 0)
            continue;
        if (ch == 'h') {
            fputs(cluster_help, stdout);
            return CLI_OK;
        }
        if (ch == 'i' && a.unregister) {
            char *end;
            a.id = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || a.id < 0 || a.id > INT32_MAX)
                return cli_usage_err("cluster", "--id takes a broker id (0..%d)", INT32_MAX);
            continue;
        }
        return cli_usage_err("cluster", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_err("cluster", "unexpected argument '%s'", argv[optind]);
    if (a.unregister && a.id < 0)
        return cli_usage_err("cluster", "unregister needs --id N");
    int rc = kc_check(&a.k);
    if (rc != CLI_OK)
        return rc;
    return a.unregister ? unregister(&a) : describe(&a);
}

/* ---- unregister ------------------------------------------------------------------ */

static int unregister(cluster_args *a) {
    kraw c;
    int rc = kraw_open(&c, &a->k);
    if (rc != CLI_OK)
        return rc;
    int16_t v = kraw_version(&c, KAFKA_API_UNREGISTER_BROKER, 0);
    if (v < 0) {
        cli_err("cluster", "the broker does not serve UnregisterBroker");
        kraw_close(&c);
        return CLI_EFAIL;
    }
    kafka_unregister_broker_request req;
    kafka_unregister_broker_request_init(&req);
    req.broker_id = (int32_t)a->id;
    kafka_unregister_broker_response resp;
    rc = call(&c, &a->k, KAFKA_API_UNREGISTER_BROKER, v, &req, &resp);
    if (rc == CLI_OK) {
        if (resp.error_code == 0) {
            printf("Broker %ld is no longer registered.\n", a->id);
        } else {
            cli_err("cluster", "unregistering broker %ld failed: %s%s%.*s", a->id,
                    kafka_error_name(resp.error_code), resp.error_message.len > 0 ? ": " : "",
                    resp.error_message.len > 0 ? resp.error_message.len : 0,
                    resp.error_message.len > 0 ? resp.error_message.ptr : "");
            rc = CLI_EFAIL;
        }
    }
    kraw_close(&c);
    return rc;
}

/* ---- leader-election ---------------------------------------------------------------- */

static const char election_help[] =
    "Usage: sluice leader-election --bootstrap-server H:P --election-type PREFERRED|UNCLEAN\n"
    "                              (--all-topic-partitions | --topic T [--partition P])\n"
    "\n"
    "Elects partition leaders (ElectLeaders, as kafka-leader-election.sh). PREFERRED moves\n"
    "leadership to each partition's first replica where it is live and in the ISR; UNCLEAN\n"
    "gives a partition without a live leader one, from the ISR if a member is live, else\n"
    "any live replica (records only the old leader had are then lost).\n"
    "\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 every named partition elected or needing none; 1 an election failed;\n"
    "2 bad flags; 3 unreachable.\n"
    "\n"
    "Examples:\n"
    "  sluice leader-election --bootstrap-server localhost:9092 --election-type PREFERRED "
    "--all-topic-partitions\n"
    "  sluice leader-election --bootstrap-server localhost:9092 --election-type UNCLEAN --topic orders "
    "--partition 0\n";

#define ELECT_PARTITIONS_MAX 10000

int cmd_leader_election(int argc, char **argv) {
    static const struct option opts[] = {
        KC_COMMON_OPTIONS,
        {"election-type", required_argument, NULL, 'e'},
        {"all-topic-partitions", no_argument, NULL, 'a'},
        {"topic", required_argument, NULL, 't'},
        {"partition", required_argument, NULL, 'p'},
        {"path-to-json-file", required_argument, NULL, 'j'},
        {"admin.config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static kc_opts k;
    memset(&k, 0, sizeof k);
    k.cmd = "leader-election";
    int type = -1;
    bool all = false, json = false;
    const char *topic = NULL;
    long partition = -1;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&k, ch, optarg, &json);
        if (c < 0)
            return -c;
        if (c > 0)
            continue;
        switch (ch) {
        case 'h':
            fputs(election_help, stdout);
            return CLI_OK;
        case 'e':
            if (strcasecmp(optarg, "PREFERRED") == 0)
                type = 0;
            else if (strcasecmp(optarg, "UNCLEAN") == 0)
                type = 1;
            else
                return cli_usage_err("leader-election", "--election-type is PREFERRED or UNCLEAN, not '%s'",
                                     optarg);
            break;
        case 'a':
            all = true;
            break;
        case 't':
            topic = optarg;
            break;
        case 'p': {
            char *end;
            partition = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || partition < 0 || partition > INT32_MAX)
                return cli_usage_err("leader-election", "--partition takes a partition index");
            break;
        }
        case 'c':
            k.config_file = optarg;
            break;
        case 'j':
            return cli_usage_err("leader-election",
                                 "--path-to-json-file is not supported yet; name one partition with --topic "
                                 "and --partition, or use --all-topic-partitions");
        default:
            return cli_usage_err("leader-election", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("leader-election", "unexpected argument '%s'", argv[optind]);
    if (type < 0)
        return cli_usage_err("leader-election", "--election-type PREFERRED|UNCLEAN is required");
    if (all == (topic != NULL))
        return cli_usage_err("leader-election", "give either --all-topic-partitions or --topic");
    if (partition >= 0 && topic == NULL)
        return cli_usage_err("leader-election", "--partition needs --topic");
    int rc = kc_check(&k);
    if (rc != CLI_OK)
        return rc;
    kraw c;
    if ((rc = kraw_open(&c, &k)) != CLI_OK)
        return rc;
    int16_t v = kraw_version(&c, KAFKA_API_ELECT_LEADERS, 2);
    if (v < 1) {
        cli_err("leader-election", "the broker does not serve ElectLeaders v1 or later");
        kraw_close(&c);
        return CLI_EFAIL;
    }
    kafka_elect_leaders_request req;
    kafka_elect_leaders_request_init(&req);
    req.election_type = (int8_t)type;
    kafka_elect_leaders_request_topic_partitions tp;
    kafka_elect_leaders_request_topic_partitions_init(&tp);
    static int32_t parts[ELECT_PARTITIONS_MAX];
    if (topic != NULL) {
        int32_t n = 0;
        if (partition >= 0) {
            parts[n++] = (int32_t)partition;
        } else {
            /* Every partition of the topic, from Metadata. */
            kafka_metadata_request mreq;
            kafka_metadata_request_init(&mreq);
            kafka_metadata_request_metadata_request_topic mt;
            kafka_metadata_request_metadata_request_topic_init(&mt);
            mt.name = kstr_c(topic);
            mreq.topics = &mt;
            mreq.topics_count = 1;
            mreq.allow_auto_topic_creation = false;
            int16_t mv = kraw_version(&c, KAFKA_API_METADATA, 12);
            kafka_metadata_response mresp;
            if (mv < 0 || (rc = call(&c, &k, KAFKA_API_METADATA, mv, &mreq, &mresp)) != CLI_OK) {
                kraw_close(&c);
                return rc == CLI_OK ? CLI_EFAIL : rc;
            }
            if (mresp.topics_count != 1 || mresp.topics[0].error_code != 0) {
                cli_err("leader-election", "topic '%s' does not exist", topic);
                kraw_close(&c);
                return CLI_ENOTFOUND;
            }
            for (int32_t i = 0; i < mresp.topics[0].partitions_count && n < ELECT_PARTITIONS_MAX; i++)
                parts[n++] = mresp.topics[0].partitions[i].partition_index;
        }
        tp.topic = kstr_c(topic);
        tp.partitions = parts;
        tp.partitions_count = n;
        req.topic_partitions = &tp;
        req.topic_partitions_count = 1;
    } else {
        req.topic_partitions = NULL;
        req.topic_partitions_count = -1;
    }
    kafka_elect_leaders_response resp;
    if ((rc = call(&c, &k, KAFKA_API_ELECT_LEADERS, v, &req, &resp)) != CLI_OK) {
        kraw_close(&c);
        return rc;
    }
    const char *tn = type == 0 ? "PREFERRED" : "UNCLEAN";
    if (resp.error_code != 0) {
        cli_err("leader-election", "the election was refused: %s", kafka_error_name(resp.error_code));
        kraw_close(&c);
        return CLI_EFAIL;
    }
    int done = 0, not_needed = 0, failed = 0;
    for (int pass = 0; pass < 3; pass++) {
        bool first = true;
        for (int32_t i = 0; i < resp.replica_election_results_count; i++) {
            const kafka_elect_leaders_response_replica_election_result *t = &resp.replica_election_results[i];
            for (int32_t j = 0; j < t->partition_result_count; j++) {
                const kafka_elect_leaders_response_partition_result *p = &t->partition_result[j];
                int kind = p->error_code == 0 ? 0 : p->error_code == KAFKA_ERR_ELECTION_NOT_NEEDED ? 1 : 2;
                if (kind != pass)
                    continue;
                if (pass == 2) {
                    printf("Error completing leader election (%s) for partition %.*s-%d: %s%s%.*s\n", tn,
                           t->topic.len, t->topic.ptr, p->partition_id, kafka_error_name(p->error_code),
                           p->error_message.len > 0 ? ": " : "",
                           p->error_message.len > 0 ? p->error_message.len : 0,
                           p->error_message.len > 0 ? p->error_message.ptr : "");
                    failed++;
                    continue;
                }
                if (first)
                    printf(pass == 0 ? "Successfully completed leader election (%s) for partitions "
                                     : "Valid replica already elected for partitions ",
                           tn);
                printf("%s%.*s-%d", first ? "" : ", ", t->topic.len, t->topic.ptr, p->partition_id);
                first = false;
                if (pass == 0)
                    done++;
                else
                    not_needed++;
            }
        }
        if (!first)
            putchar('\n');
    }
    if (done + not_needed + failed == 0)
        printf("No partition needed a %s election.\n", tn);
    kraw_close(&c);
    return failed ? CLI_EFAIL : CLI_OK;
}
