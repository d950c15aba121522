/*
 * consume.c - `sluice consume`, the console consumer.
 *
 * Two modes. With --group and no --partition the consumer joins the group
 * (subscribe) and commits as it goes, as kafka-console-consumer does.
 * Otherwise it assigns partitions itself (all of the topic's, or
 * --partition) from --offset / --from-beginning and needs no group
 * coordinator at all: reading a topic must not depend on group machinery.
 *
 * The run ends at --max-messages, after --timeout-ms without a record, or on
 * SIGINT/SIGTERM; "Processed a total of N messages" goes to stderr as Kafka's
 * tool prints it, so stdout carries only records.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/kclient.h"
#include "tools/kraw.h"

static const char consume_help[] =
    "Usage: sluice consume --bootstrap-server H:P --topic T [options]\n"
    "\n"
    "Prints records, one per line (value only unless print options are given).\n"
    "\n"
    "Options:\n"
    "  --topic T                topic to read (required)\n"
    "  --group G                join consumer group G (commits offsets); default: no group\n"
    "  --from-beginning         start at the earliest offset (default: the end, new records only)\n"
    "  --partition N            read only partition N\n"
    "  --offset earliest|latest|N   start offset (with --partition, or for every partition)\n"
    "  --max-messages N         stop after N records\n"
    "  --timeout-ms N           stop when no record arrives for N ms\n"
    "  --isolation-level L      read_committed or read_uncommitted (default)\n"
    "  --property k=v           print.key, print.timestamp, print.partition, print.offset,\n"
    "                           print.headers, print.value (true/false); key.separator,\n"
    "                           headers.separator, line.separator, null.literal\n"
    "  --formatter json         one JSON object per record (also: --json); 'default' or Kafka's\n"
    "                           DefaultMessageFormatter class name: the text form\n"
    "  --consumer-property k=v  any librdkafka consumer setting (repeatable)\n"
    "  --consumer.config FILE   librdkafka settings file (same as --command-config)\n"
    "  --command-property k=v   the same as --consumer-property (Kafka 4's name)\n"
    "Connection:\n"
    "  --bootstrap-server H:P   broker(s) to contact first (required)\n"
    "  --command-config FILE    librdkafka client settings, one key=value per line\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit codes: 0 done (max messages, idle timeout or end); 1 a fetch failed; 2 bad flags;\n"
    "3 broker unreachable; 4 topic or partition does not exist; 130 interrupted.\n"
    "\n"
    "Examples:\n"
    "  sluice consume --bootstrap-server localhost:9092 --topic orders --from-beginning\n"
    "  sluice consume --bootstrap-server localhost:9092 --topic orders --partition 0 --offset 42 \\\n"
    "      --max-messages 10 --property print.key=true --property print.offset=true\n"
    "  sluice consume --bootstrap-server localhost:9092 --topic orders --group billing --timeout-ms 5000\n"
    "  sluice consume --bootstrap-server localhost:9092 --topic orders --from-beginning --formatter json\n";

typedef struct fmt_opts {
    bool key, ts, partition, offset, headers, value, json;
    const char *key_sep, *hdr_sep, *line_sep, *null_lit;
} fmt_opts;

static int set_property(fmt_opts *f, const char *kv) {
    static char store[32][CLI_ARG_MAX];
    static int used;
    const char *k, *v;
    if (used >= 32)
        return cli_usage_err("consume", "too many --property flags");
    if (!cli_split_kv(kv, '=', store[used], sizeof store[used], &k, &v))
        return cli_usage_err("consume", "--property '%s' is not key=value", kv);
    used++;
    bool on = strcmp(v, "true") == 0;
    if (strcmp(k, "print.key") == 0)
        f->key = on;
    else if (strcmp(k, "print.timestamp") == 0)
        f->ts = on;
    else if (strcmp(k, "print.partition") == 0)
        f->partition = on;
    else if (strcmp(k, "print.offset") == 0)
        f->offset = on;
    else if (strcmp(k, "print.headers") == 0)
        f->headers = on;
    else if (strcmp(k, "print.value") == 0)
        f->value = on;
    else if (strcmp(k, "key.separator") == 0)
        f->key_sep = v;
    else if (strcmp(k, "headers.separator") == 0)
        f->hdr_sep = v;
    else if (strcmp(k, "line.separator") == 0)
        f->line_sep = v;
    else if (strcmp(k, "null.literal") == 0)
        f->null_lit = v;
    else
        return cli_usage_err("consume", "unknown --property '%s'", k);
    return CLI_OK;
}

static void print_json(const rd_kafka_message_t *m) {
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    fputs("{\"topic\":", stdout);
    cli_json_str(stdout, rd_kafka_topic_name(m->rkt), -1);
    printf(",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"timestampType\":\"%s\",\"key\":",
           m->partition, (long long)m->offset, (long long)ts,
           tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime");
    if (m->key)
        cli_json_str(stdout, m->key, (ptrdiff_t)m->key_len);
    else
        fputs("null", stdout);
    fputs(",\"value\":", stdout);
    if (m->payload)
        cli_json_str(stdout, m->payload, (ptrdiff_t)m->len);
    else
        fputs("null", stdout);
    fputs(",\"headers\":[", stdout);
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t sz;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR;
             i++) {
            fputs(i ? ",{\"key\":" : "{\"key\":", stdout);
            cli_json_str(stdout, name, -1);
            fputs(",\"value\":", stdout);
            if (val)
                cli_json_str(stdout, val, (ptrdiff_t)sz);
            else
                fputs("null", stdout);
            fputc('}', stdout);
        }
    }
    fputs("]}\n", stdout);
}

static void print_text(const fmt_opts *f, const rd_kafka_message_t *m) {
    const char *sep = "";
    if (f->ts) {
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        printf("%s%s:%lld", sep, tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime",
               (long long)ts);
        sep = f->key_sep;
    }
    if (f->partition) {
        printf("%sPartition:%d", sep, m->partition);
        sep = f->key_sep;
    }
    if (f->offset) {
        printf("%sOffset:%lld", sep, (long long)m->offset);
        sep = f->key_sep;
    }
    if (f->headers) {
        fputs(sep, stdout);
        rd_kafka_headers_t *hdrs = NULL;
        const char *name;
        const void *val;
        size_t sz, i = 0;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (; rd_kafka_header_get_all(hdrs, i, &name, &val, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
                if (i)
                    fputs(f->hdr_sep, stdout);
                cli_print_bytes(stdout, name, strlen(name));
                fputc(':', stdout);
                if (val)
                    cli_print_bytes(stdout, val, sz);
                else
                    fputs(f->null_lit, stdout);
            }
        }
        if (i == 0)
            fputs("NO_HEADERS", stdout);
        sep = f->key_sep;
    }
    if (f->key) {
        fputs(sep, stdout);
        if (m->key)
            cli_print_bytes(stdout, m->key, m->key_len);
        else
            fputs(f->null_lit, stdout);
        sep = f->key_sep;
    }
    if (f->value) {
        fputs(sep, stdout);
        if (m->payload)
            cli_print_bytes(stdout, m->payload, m->len);
        else
            fputs(f->null_lit, stdout);
    }
    fputs(f->line_sep, stdout);
}

int cmd_consume(int argc, char **argv) {
    enum {
        O_TOPIC = 1,
        O_GROUP,
        O_BEGIN,
        O_PART,
        O_OFFSET,
        O_MAX,
        O_IDLE,
        O_ISO,
        O_PROP,
        O_FMT,
        O_CPROP,
        O_CCONF,
        O_INCLUDE
    };
    static const struct option opts[] = {
        {"topic", required_argument, NULL, O_TOPIC},
        {"group", required_argument, NULL, O_GROUP},
        {"from-beginning", no_argument, NULL, O_BEGIN},
        {"partition", required_argument, NULL, O_PART},
        {"offset", required_argument, NULL, O_OFFSET},
        {"max-messages", required_argument, NULL, O_MAX},
        {"timeout-ms", required_argument, NULL, O_IDLE},
        {"isolation-level", required_argument, NULL, O_ISO},
        {"property", required_argument, NULL, O_PROP},
        {"formatter", required_argument, NULL, O_FMT},
        {"consumer-property", required_argument, NULL, O_CPROP},
        {"consumer.config", required_argument, NULL, O_CCONF},
        {"command-property", required_argument, NULL, O_CPROP},
        {"include", required_argument, NULL, O_INCLUDE},
        {"whitelist", required_argument, NULL, O_INCLUDE},
        {"bootstrap-server", required_argument, NULL, KC_OPT_BOOTSTRAP},
        {"command-config", required_argument, NULL, KC_OPT_COMMAND_CONFIG},
        {"json", no_argument, NULL, KC_OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static kc_opts k;
    memset(&k, 0, sizeof k);
    k.cmd = "consume";
    fmt_opts f = {false, false, false, false, false, true, false, "\t", ",", "\n", "null"};
    const char *topic = NULL, *group = NULL, *iso = "read_uncommitted";
    int64_t partition = -1, offset = RD_KAFKA_OFFSET_END, max = -1, idle_ms = -1;
    bool offset_given = false;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&k, ch, optarg, &f.json);
        if (c < 0)
            return -c;
        if (c > 0)
            continue;
        switch (ch) {
        case O_TOPIC:
            topic = optarg;
            break;
        case O_GROUP:
            group = optarg;
            break;
        case O_BEGIN:
            if (!offset_given)
                offset = RD_KAFKA_OFFSET_BEGINNING;
            break;
        case O_PART:
            if (!cli_parse_i64(optarg, 0, INT32_MAX, &partition))
                return cli_usage_err("consume", "--partition: not a partition number: '%s'", optarg);
            break;
        case O_OFFSET:
            offset_given = true;
            if (strcmp(optarg, "earliest") == 0)
                offset = RD_KAFKA_OFFSET_BEGINNING;
            else if (strcmp(optarg, "latest") == 0)
                offset = RD_KAFKA_OFFSET_END;
            else if (!cli_parse_i64(optarg, 0, INT64_MAX, &offset))
                return cli_usage_err("consume", "--offset: expected earliest, latest or a number, got '%s'",
                                     optarg);
            break;
        case O_MAX:
            if (!cli_parse_i64(optarg, 1, INT64_MAX, &max))
                return cli_usage_err("consume", "--max-messages: expected a positive number, got '%s'",
                                     optarg);
            break;
        case O_IDLE:
            if (!cli_parse_i64(optarg, 1, 86400000, &idle_ms))
                return cli_usage_err("consume", "--timeout-ms: expected 1..86400000, got '%s'", optarg);
            break;
        case O_ISO:
            if (strcmp(optarg, "read_committed") && strcmp(optarg, "read_uncommitted"))
                return cli_usage_err("consume",
                                     "--isolation-level: expected read_committed or read_uncommitted");
            iso = optarg;
            break;
        case O_PROP: {
            int rc = set_property(&f, optarg);
            if (rc != CLI_OK)
                return rc;
            break;
        }
        case O_FMT: {
            /* Kafka names the formatter by class (kafka.tools.DefaultMessageFormatter,
             * org.apache.kafka.tools.consumer.DefaultMessageFormatter): the text form. */
            size_t n = strlen(optarg), m = strlen("DefaultMessageFormatter");
            bool kafka_default = n >= m && strcmp(optarg + n - m, "DefaultMessageFormatter") == 0 &&
                                 (n == m || optarg[n - m - 1] == '.');
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "default") != 0 && !kafka_default)
                return cli_usage_err(
                    "consume", "--formatter: expected json, default or DefaultMessageFormatter, got '%s'",
                    optarg);
            f.json = strcmp(optarg, "json") == 0;
            break;
        }
        case O_INCLUDE:
            cli_err("consume", "--include: not available yet: topics are named one at a time with --topic "
                               "(regular-expression subscription is still to come)");
            return CLI_EFAIL;
        case O_CPROP: {
            int rc = kc_add_prop(&k, optarg);
            if (rc != CLI_OK)
                return rc;
            break;
        }
        case O_CCONF:
            k.config_file = optarg;
            break;
        case 'h':
            fputs(consume_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("consume", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("consume", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("consume", "unexpected argument '%s'", argv[optind]);
    if (topic == NULL)
        return cli_usage_err("consume", "--topic is required");
    int rc = kc_check(&k);
    if (rc != CLI_OK || (rc = kc_probe(&k)) != CLI_OK)
        return rc;
    if (group != NULL) {
        /* FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit, OffsetFetch */
        static const int16_t need[] = {10, 11, 14, 12, 8, 9};
        if ((rc = kraw_require(&k, need, 6, "--group")) != CLI_OK)
            return rc;
    }

    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t count = 0;
    char err[512];
    rd_kafka_conf_t *conf = kc_conf(&k);
    if (conf == NULL)
        return CLI_EUSAGE;
    /* librdkafka needs a group.id even to assign partitions by hand; without
     * --group a private one is used and nothing is committed, so no group
     * coordinator is involved. */
    char anon[64];
    snprintf(anon, sizeof anon, "sluice-console-%d", (int)getpid());
    const char *settings[][2] = {
        {"group.id", group ? group : anon},
        {"enable.auto.commit", group ? "true" : "false"},
        {"auto.offset.reset", offset == RD_KAFKA_OFFSET_BEGINNING ? "earliest" : "latest"},
        {"isolation.level", iso},
        {"enable.partition.eof", "false"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (settings[i][1] &&
            rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return cli_usage_err("consume", "%s: %s", settings[i][0], err);
        }
    }
    if ((rk = kc_new(&k, RD_KAFKA_CONSUMER, conf)) == NULL)
        return CLI_EFAIL;
    rd_kafka_poll_set_consumer(rk);
    const rd_kafka_metadata_topic_t *t = kc_wait_topic(&k, rk, topic, &md, &rc);
    if (t == NULL)
        goto out;
    if (partition >= t->partition_cnt) {
        cli_err("consume", "partition %lld does not exist (topic '%s' has %d)", (long long)partition, topic,
                t->partition_cnt);
        rc = CLI_ENOTFOUND;
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(partition >= 0 ? 1 : t->partition_cnt);
    for (int p = 0; p < t->partition_cnt; p++) {
        if (partition < 0 || p == partition)
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = offset;
    }
    rd_kafka_resp_err_t e;
    if (group != NULL && partition < 0) {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        e = rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
    } else {
        e = rd_kafka_assign(rk, parts);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cli_err("consume", "cannot start consuming: %s", rd_kafka_err2str(e));
        rc = kc_exit_for(e);
        goto out;
    }
    cli_catch_signals();
    int64_t last_activity = cli_now_us();
    while (!cli_stop && (max < 0 || count < max)) {
        if (idle_ms > 0 && cli_now_us() - last_activity > idle_ms * 1000)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err) {
            rd_kafka_resp_err_t me = m->err;
            /* Transport hiccups are retried by librdkafka; anything else ends the run. */
            bool fatal = me != RD_KAFKA_RESP_ERR__TRANSPORT && me != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
                         me != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
            if (fatal) {
                cli_err("consume", "%s", rd_kafka_message_errstr(m));
                rc = kc_exit_for(me);
                rd_kafka_message_destroy(m);
                break;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        last_activity = cli_now_us();
        if (f.json)
            print_json(m);
        else
            print_text(&f, m);
        count++;
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    fprintf(stderr, "Processed a total of %lld messages\n", (long long)count);
    if (cli_stop && rc == CLI_OK)
        rc = CLI_EINTERRUPT;
out:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
