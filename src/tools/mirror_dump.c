/*
 * mirror_dump.c - `sluice mirror dump`: prints the records of a MirrorMaker 2
 * internal topic decoded with tools/mm2.h, one JSON object per line, from
 * the start of each partition to its high watermark at the time of the call.
 * The record type follows from the topic's name: "*.checkpoints.internal",
 * "mm2-offset-syncs.*" or a heartbeats topic. A record that does not decode
 * is printed as {"type":"undecodable"} and makes the exit code 5, so a
 * script can tell a damaged or foreign topic from an empty one.
 *
 * Reading is bounded by --timeout-ms as a whole; no group is joined and
 * nothing is committed.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/kclient.h"
#include "tools/mm2.h"

static const char dump_help[] =
    "Usage: sluice mirror dump --bootstrap-server H:P --topic T [options]\n"
    "\n"
    "Prints the records of a MirrorMaker 2 internal topic decoded, one JSON object per line:\n"
    "<alias>.checkpoints.internal (checkpoints), mm2-offset-syncs.<alias>.internal (offset syncs)\n"
    "or heartbeats / <alias>.heartbeats (heartbeats). Layouts: docs/mirroring.md.\n"
    "\n"
    "Options:\n"
    "  --topic T                the internal topic (required)\n"
    "  --separator S            replication.policy.separator of the names (default .)\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 done; 2 bad flags; 3 broker unreachable or the read timed out; 4 no such topic;\n"
    "5 a record did not decode.\n"
    "\n"
    "Examples:\n"
    "  sluice mirror dump --bootstrap-server west:9092 --topic east.checkpoints.internal\n"
    "  sluice mirror dump --bootstrap-server east:9092 --topic mm2-offset-syncs.west.internal\n";

static void json_kstr(kstr s) { cli_json_str(stdout, s.ptr ? s.ptr : "", s.len > 0 ? s.len : 0); }

static int print_internal(const char *topic, const rd_kafka_message_t *msg, const mm2_policy *pol) {
    const char *k = msg->key, *v = msg->payload;
    size_t kl = msg->key_len, vl = msg->len;
    size_t tl = strlen(topic);
    bool ckpt = tl > 21 && strcmp(topic + tl - 21, ".checkpoints.internal") == 0;
    bool sync = strncmp(topic, "mm2-offset-syncs.", 17) == 0;
    printf("{\"partition\":%d,\"offset\":%lld,", msg->partition, (long long)msg->offset);
    if (ckpt) {
        mm2_checkpoint c;
        if (!mm2_checkpoint_decode(k, kl, v, vl, &c))
            goto bad;
        fputs("\"type\":\"checkpoint\",\"group\":", stdout);
        json_kstr(c.group);
        fputs(",\"topic\":", stdout);
        json_kstr(c.topic);
        printf(",\"topicPartition\":%d,\"upstreamOffset\":%lld,\"downstreamOffset\":%lld,\"metadata\":",
               c.partition, (long long)c.upstream, (long long)c.downstream);
        json_kstr(c.metadata);
    } else if (sync) {
        mm2_offset_sync s;
        if (!mm2_offset_sync_decode(k, kl, v, vl, &s))
            goto bad;
        fputs("\"type\":\"offset-sync\",\"topic\":", stdout);
        json_kstr(s.topic);
        printf(",\"topicPartition\":%d,\"upstreamOffset\":%lld,\"downstreamOffset\":%lld", s.partition,
               (long long)s.upstream, (long long)s.downstream);
    } else if (mm2_is_heartbeats(pol, topic)) {
        mm2_heartbeat h;
        if (!mm2_heartbeat_decode(k, kl, v, vl, &h))
            goto bad;
        fputs("\"type\":\"heartbeat\",\"sourceClusterAlias\":", stdout);
        json_kstr(h.source_alias);
        fputs(",\"targetClusterAlias\":", stdout);
        json_kstr(h.target_alias);
        printf(",\"timestamp\":%lld", (long long)h.timestamp_ms);
    } else {
        fputs("\"type\":\"unknown\"}\n", stdout);
        return 1;
    }
    fputs("}\n", stdout);
    return 0;
bad:
    fputs("\"type\":\"undecodable\"}\n", stdout);
    return 1;
}

/* `sluice mirror dump`: every record of an MM2 internal topic, decoded with
 * tools/mm2.h, from the start to the high watermark at the time of the call. */
int cmd_mirror_dump(int argc, char **argv) {
    enum { O_TOPIC = 1, O_SEP };
    static const struct option opts[] = {
        {"topic", required_argument, NULL, O_TOPIC},
        {"separator", required_argument, NULL, O_SEP},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static kc_opts k;
    memset(&k, 0, sizeof k);
    k.cmd = "mirror dump";
    mm2_policy pol = {.separator = "."};
    const char *topic = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int c = kc_common_opt(&k, ch, optarg, NULL);
        if (c < 0)
            return -c;
        if (c > 0)
            continue;
        switch (ch) {
        case O_TOPIC:
            topic = optarg;
            break;
        case O_SEP:
            if (strlen(optarg) >= sizeof pol.separator)
                return cli_usage_err("mirror dump", "--separator: too long");
            strcpy(pol.separator, optarg);
            break;
        case 'h':
            fputs(dump_help, stdout);
            return CLI_OK;
        default:
            return cli_usage_err("mirror dump", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (topic == NULL)
        return cli_usage_err("mirror dump", "--topic is required");
    int rc = kc_check(&k);
    if (rc != CLI_OK || (rc = kc_probe(&k)) != CLI_OK)
        return rc;
    rd_kafka_conf_t *conf = kc_conf(&k);
    if (conf == NULL)
        return CLI_EUSAGE;
    char err[256], gid[64];
    snprintf(gid, sizeof gid, "sluice-mirror-dump-%d", (int)getpid());
    rd_kafka_conf_set(conf, "group.id", gid, err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t *rk = kc_new(&k, RD_KAFKA_CONSUMER, conf);
    if (rk == NULL)
        return CLI_EFAIL;
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t *t = kc_wait_topic(&k, rk, topic, &md, &rc);
    int bad = 0;
    if (t == NULL)
        goto out;
    int nparts = t->partition_cnt;
    int64_t *end = calloc((size_t)nparts, sizeof *end);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    int remaining = 0;
    for (int p = 0; p < nparts; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000);
        if (e) {
            cli_err("mirror dump", "cannot read the offsets of '%s' partition %d: %s", topic, p,
                    rd_kafka_err2str(e));
            rc = kc_exit_for(e);
            break;
        }
        end[p] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            remaining++;
        }
    }
    if (rc == CLI_OK && remaining > 0)
        rd_kafka_assign(rk, l);
    int64_t deadline = cli_now_us() + (int64_t)(k.timeout_ms > 0 ? k.timeout_ms : 15000) * 1000;
    cli_catch_signals();
    while (rc == CLI_OK && remaining > 0 && !cli_stop) {
        if (cli_now_us() > deadline) {
            cli_err("mirror dump", "timed out reading '%s'", topic);
            rc = CLI_EUNREACH;
            break;
        }
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
        if (msg == NULL)
            continue;
        if (msg->err == 0 && msg->partition < nparts && msg->offset < end[msg->partition]) {
            bad += print_internal(topic, msg, &pol);
            if (msg->offset + 1 >= end[msg->partition])
                remaining--;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_topic_partition_list_destroy(l);
    free(end);
    fflush(stdout);
    if (rc == CLI_OK && bad > 0) {
        cli_err("mirror dump", "%d records could not be decoded", bad);
        rc = CLI_ECORRUPT;
    }
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return rc;
}
