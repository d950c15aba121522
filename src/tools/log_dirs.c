/*
 * log_dirs.c - `sluice log-dirs`: what each of the broker's log directories
 * holds (kafka-log-dirs), through Sluice's own codec (DescribeLogDirs,
 * tools/kraw.h; librdkafka 2.0 has no call for it).
 *
 * Besides the partitions and their sizes, it shows the directories the
 * broker set aside because its metadata log does not account for them: the
 * broker reports each as a "topic" whose name ends in "-stray", which no
 * real topic's name may (src/storage/log_manager.h). They are listed apart, so an
 * operator sees data that is kept but not served.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/kclient.h"
#include "tools/kraw.h"

#define STRAY_SUFFIX    "-stray"
#define LOG_DIRS_TOPICS 256 /* --topic-list entries */

static const char log_dirs_help[] =
    "Usage: sluice log-dirs --bootstrap-server H:P --describe [--topic-list T1,T2] [--json]\n"
    "\n"
    "Shows each log directory of the broker: its partitions with their size on disk, the\n"
    "space of its file system, and the directories the broker set aside (kept, not served)\n"
    "because its metadata log does not account for them (docs/operations.md).\n"
    "\n"
    "Options:\n"
    "  --describe             required (as kafka-log-dirs)\n"
    "  --topic-list T1,T2     only these topics' partitions (set-aside directories are always "
    "shown)\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok (3 when the broker is unreachable); 1 the broker refused; 2 bad flags.\n"
    "\n"
    "Examples:\n"
    "  sluice log-dirs --bootstrap-server localhost:9092 --describe\n"
    "  sluice log-dirs --bootstrap-server localhost:9092 --describe --topic-list orders --json\n";

typedef struct log_dirs_args {
    kc_opts k;
    bool describe, json;
    char *topics_buf;
    const char *topics[LOG_DIRS_TOPICS];
    int ntopics;
} log_dirs_args;

typedef kafka_describe_log_dirs_response_describe_log_dirs_result ld_result;
typedef kafka_describe_log_dirs_response_describe_log_dirs_topic ld_topic;

static bool is_stray(kstr name) {
    size_t k = sizeof STRAY_SUFFIX - 1;
    return name.len >= (int32_t)k && memcmp(name.ptr + name.len - (int32_t)k, STRAY_SUFFIX, k) == 0;
}

static bool wanted(const log_dirs_args *a, kstr name) {
    if (a->ntopics == 0)
        return true;
    for (int i = 0; i < a->ntopics; i++)
        if (kstr_eq_c(name, a->topics[i]))
            return true;
    return false;
}

static void print_dir_text(const log_dirs_args *a, const ld_result *d) {
    printf("Log dir %.*s", (int)d->log_dir.len, d->log_dir.ptr);
    if (d->error_code != 0) {
        printf(": %s\n", rd_kafka_err2name((rd_kafka_resp_err_t)d->error_code));
        return;
    }
    if (d->total_bytes >= 0)
        printf(" (file system: %lld bytes, %lld usable)", (long long)d->total_bytes,
               (long long)d->usable_bytes);
    putchar('\n');
    int strays = 0;
    for (int32_t t = 0; t < d->topics_count; t++) {
        const ld_topic *tp = &d->topics[t];
        if (is_stray(tp->name)) {
            strays++;
            continue;
        }
        if (!wanted(a, tp->name))
            continue;
        for (int32_t p = 0; p < tp->partitions_count; p++)
            printf("  %.*s-%d  %lld bytes\n", (int)tp->name.len, tp->name.ptr,
                   tp->partitions[p].partition_index, (long long)tp->partitions[p].partition_size);
    }
    if (strays == 0)
        return;
    printf("  Set aside (kept, not served; see docs/operations.md):\n");
    for (int32_t t = 0; t < d->topics_count; t++) {
        const ld_topic *tp = &d->topics[t];
        if (is_stray(tp->name))
            printf("    %.*s  %lld bytes\n", (int)tp->name.len, tp->name.ptr,
                   (long long)(tp->partitions_count > 0 ? tp->partitions[0].partition_size : 0));
    }
}

static void print_dir_json(const log_dirs_args *a, const ld_result *d, bool first) {
    printf("%s{\"logDir\":", first ? "" : ",");
    cli_json_str(stdout, d->log_dir.ptr, d->log_dir.len);
    if (d->error_code != 0)
        printf(",\"error\":\"%s\"", rd_kafka_err2name((rd_kafka_resp_err_t)d->error_code));
    else
        fputs(",\"error\":null", stdout);
    printf(",\"totalBytes\":%lld,\"usableBytes\":%lld,\"partitions\":[", (long long)d->total_bytes,
           (long long)d->usable_bytes);
    bool f = true;
    for (int32_t t = 0; t < d->topics_count; t++) {
        const ld_topic *tp = &d->topics[t];
        if (is_stray(tp->name) || !wanted(a, tp->name))
            continue;
        for (int32_t p = 0; p < tp->partitions_count; p++) {
            char part[320];
            snprintf(part, sizeof part, "%.*s-%d", (int)tp->name.len, tp->name.ptr,
                     tp->partitions[p].partition_index);
            printf("%s{\"partition\":", f ? "" : ",");
            cli_json_str(stdout, part, -1);
            printf(",\"size\":%lld,\"offsetLag\":%lld,\"isFuture\":%s}",
                   (long long)tp->partitions[p].partition_size, (long long)tp->partitions[p].offset_lag,
                   tp->partitions[p].is_future_key ? "true" : "false");
            f = false;
        }
    }
    fputs("],\"setAside\":[", stdout);
    f = true;
    for (int32_t t = 0; t < d->topics_count; t++) {
        const ld_topic *tp = &d->topics[t];
        if (!is_stray(tp->name))
            continue;
        printf("%s{\"dir\":", f ? "" : ",");
        cli_json_str(stdout, tp->name.ptr, tp->name.len);
        printf(",\"size\":%lld}",
               (long long)(tp->partitions_count > 0 ? tp->partitions[0].partition_size : 0));
        f = false;
    }
    fputs("]}", stdout);
}

static int describe(log_dirs_args *a) {
    kraw c;
    uint8_t *body = NULL;
    int rc = kraw_open(&c, &a->k);
    if (rc != CLI_OK)
        goto out;
    int16_t v = kraw_version(&c, KAFKA_API_DESCRIBE_LOG_DIRS, 4);
    if (v < 0) {
        cli_err("log-dirs", "the broker does not serve DescribeLogDirs");
        rc = CLI_EFAIL;
        goto out;
    }
    kafka_describe_log_dirs_request req;
    kafka_describe_log_dirs_request_init(&req);
    req.topics = NULL;
    req.topics_count = -1; /* everything, set-aside directories included */
    size_t len = kafka_describe_log_dirs_request_size(v, &req);
    if ((body = malloc(len ? len : 1)) == NULL) {
        rc = CLI_EFAIL;
        goto out;
    }
    wire_writer w;
    wire_writer_init(&w, body, len);
    if (kafka_describe_log_dirs_request_encode(&w, v, &req) != WIRE_OK || w.len != len) {
        cli_err("log-dirs", "cannot encode DescribeLogDirs");
        rc = CLI_EFAIL;
        goto out;
    }
    wire_reader r;
    if ((rc = kraw_call(&c, &a->k, KAFKA_API_DESCRIBE_LOG_DIRS, v, body, len, &r)) != CLI_OK)
        goto out;
    kafka_describe_log_dirs_response resp;
    kafka_describe_log_dirs_response_init(&resp);
    if (kafka_describe_log_dirs_response_decode(&r, v, &c.a, &resp) != WIRE_OK) {
        cli_err("log-dirs", "malformed DescribeLogDirs response");
        rc = CLI_EFAIL;
        goto out;
    }
    if (resp.error_code != 0) {
        cli_err("log-dirs", "the broker refused: %s",
                rd_kafka_err2name((rd_kafka_resp_err_t)resp.error_code));
        rc = kc_exit_for((rd_kafka_resp_err_t)resp.error_code);
        goto out;
    }
    if (a->json)
        fputs("{\"version\":1,\"logDirs\":[", stdout);
    for (int32_t i = 0; i < resp.results_count; i++) {
        if (a->json)
            print_dir_json(a, &resp.results[i], i == 0);
        else
            print_dir_text(a, &resp.results[i]);
    }
    if (a->json)
        fputs("]}\n", stdout);
out:
    free(body);
    kraw_close(&c);
    return rc;
}

int cmd_log_dirs(int argc, char **argv) {
    enum { O_DESC = 1, O_TOPICS };
    static const struct option opts[] = {
        {"describe", no_argument, NULL, O_DESC},
        {"topic-list", required_argument, NULL, O_TOPICS},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static log_dirs_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "log-dirs";
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
        case O_TOPICS:
            free(a.topics_buf);
            a.topics_buf = strdup(optarg);
            a.ntopics = 0;
            for (char *save = NULL, *t = a.topics_buf ? strtok_r(a.topics_buf, ",", &save) : NULL; t != NULL;
                 t = strtok_r(NULL, ",", &save)) {
                if (a.ntopics == LOG_DIRS_TOPICS) {
                    rc = cli_usage_err("log-dirs", "--topic-list: at most %d topics", LOG_DIRS_TOPICS);
                    goto out;
                }
                a.topics[a.ntopics++] = t;
            }
            break;
        case 'h':
            fputs(log_dirs_help, stdout);
            goto out;
        case ':':
            rc = cli_usage_err("log-dirs", "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = cli_usage_err("log-dirs", "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc)
        rc = cli_usage_err("log-dirs", "unexpected argument '%s'", argv[optind]);
    else if (!a.describe)
        rc = cli_usage_err("log-dirs", "--describe is required");
    else if ((rc = kc_check(&a.k)) == CLI_OK)
        rc = describe(&a);
out:
    free(a.topics_buf);
    return rc;
}
