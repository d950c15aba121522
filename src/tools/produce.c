/*
 * produce.c - `sluice produce`, the console producer: one record per input
 * line (stdin or --file), optionally "headers<TAB>key<SEP>value" as
 * kafka-console-producer parses them with --property.
 *
 * Every record's fate is known before exit: the delivery callback counts
 * failures and remembers the first one with its input line number, and the
 * exit code reports it. Lines are bounded (--max-record-size); a longer line
 * stops the run rather than being silently split.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/kclient.h"

#define PRODUCE_MAX_HEADERS 64

static const char produce_help[] =
    "Usage: sluice produce --bootstrap-server H:P --topic T [options] < records.txt\n"
    "\n"
    "Writes one record per line of stdin (or --file). Exits non-zero if any record fails,\n"
    "naming the first failure and its line.\n"
    "\n"
    "Options:\n"
    "  --topic T                 topic to write to (required; created if the broker auto-creates topics)\n"
    "  --file PATH               read lines from PATH instead of stdin\n"
    "  --partition N             write every record to partition N (default: by key / sticky)\n"
    "  --acks all|-1|0|1         required acknowledgements (default all)\n"
    "  --compression-codec C     none, gzip, snappy, lz4 or zstd (default none)\n"
    "  --batch-size N            most records per batch (batch.num.messages)\n"
    "  --linger-ms N             wait up to N ms to fill a batch (default 5)\n"
    "  --max-record-size BYTES   longest accepted line (default 1m)\n"
    "  --sync                    wait for each record's acknowledgement before the next\n"
    "  --property k=v            line parsing, as kafka-console-producer:\n"
    "        parse.key=true key.separator=<TAB>  split each line into key and value\n"
    "        parse.headers=true headers.delimiter=<TAB> headers.separator=, headers.key.separator=:\n"
    "        null.marker=S       a key or value equal to S is sent as null\n"
    "  --producer-property k=v   any librdkafka producer setting (repeatable)\n"
    "  --producer.config FILE    librdkafka settings file (same as --command-config)\n"
    "Also accepted as kafka-console-producer spells them: --broker-list (= --bootstrap-server),\n"
    "--command-property (= --producer-property), --timeout MS (= --linger-ms),\n"
    "--message-send-max-retries, --retry-backoff-ms, --request-timeout-ms, --metadata-expiry-ms,\n"
    "--socket-buffer-size, --max-partition-memory-bytes, --max-memory-bytes (librdkafka's\n"
    "settings of the same meaning) and --max-block-ms (no effect: sends never block).\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 every record acknowledged; 1 a record was refused; 2 bad flags or input line;\n"
    "3 broker unreachable or acknowledgement timed out; 4 topic or partition does not exist.\n"
    "\n"
    "Examples:\n"
    "  echo 'hello' | sluice produce --bootstrap-server localhost:9092 --topic orders\n"
    "  printf 'k1:v1\\nk2:v2\\n' | sluice produce --bootstrap-server localhost:9092 --topic orders \\\n"
    "      --property parse.key=true --property key.separator=:\n"
    "  printf 'src:web\\tk1:v1\\n' | sluice produce --bootstrap-server localhost:9092 --topic orders \\\n"
    "      --property parse.headers=true --property parse.key=true --property key.separator=:\n"
    "  sluice produce --bootstrap-server localhost:9092 --topic orders --file data.txt --acks 1 \\\n"
    "      --compression-codec zstd\n";

typedef struct produce_state {
    int64_t acked, failed;
    rd_kafka_resp_err_t first_err;
    char first_msg[256];
    int64_t first_line;
} produce_state;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    produce_state *st = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->acked++;
        return;
    }
    if (st->failed++ == 0) {
        st->first_err = m->err;
        st->first_line = (int64_t)(intptr_t)m->_private;
        snprintf(st->first_msg, sizeof st->first_msg, "%s", rd_kafka_err2str(m->err));
    }
}

typedef struct line_format {
    bool parse_key, parse_headers;
    const char *key_sep, *hdr_delim, *hdr_sep, *hdr_key_sep, *null_marker;
} line_format;

static int set_property(line_format *lf, const char *kv) {
    static char store[32][CLI_ARG_MAX];
    static int used;
    const char *k, *v;
    if (used >= 32)
        return cli_usage_err("produce", "too many --property flags");
    if (!cli_split_kv(kv, '=', store[used], sizeof store[used], &k, &v))
        return cli_usage_err("produce", "--property '%s' is not key=value", kv);
    used++;
    if (strcmp(k, "parse.key") == 0)
        lf->parse_key = strcmp(v, "true") == 0;
    else if (strcmp(k, "parse.headers") == 0)
        lf->parse_headers = strcmp(v, "true") == 0;
    else if (strcmp(k, "key.separator") == 0 && *v)
        lf->key_sep = v;
    else if (strcmp(k, "headers.delimiter") == 0 && *v)
        lf->hdr_delim = v;
    else if (strcmp(k, "headers.separator") == 0 && *v)
        lf->hdr_sep = v;
    else if (strcmp(k, "headers.key.separator") == 0 && *v)
        lf->hdr_key_sep = v;
    else if (strcmp(k, "null.marker") == 0)
        lf->null_marker = v;
    else if (strcmp(k, "ignore.error") != 0)
        return cli_usage_err("produce", "unknown --property '%s'", k);
    return CLI_OK;
}

/* A record parsed from one line; pointers into the line. */
typedef struct parsed {
    const char *key, *value;
    size_t klen, vlen;
    int nh;
    const char *hk[PRODUCE_MAX_HEADERS], *hv[PRODUCE_MAX_HEADERS];
    size_t hvlen[PRODUCE_MAX_HEADERS];
} parsed;

static bool is_null(const line_format *lf, const char *s, size_t n) {
    return lf->null_marker && strlen(lf->null_marker) == n && memcmp(s, lf->null_marker, n) == 0;
}

/* Splits line (NUL-terminated, modified in place) per lf. Returns NULL or
 * the reason the line does not fit the format. */
static const char *parse_line(const line_format *lf, char *line, size_t len, parsed *p) {
    memset(p, 0, sizeof *p);
    char *rest = line;
    if (lf->parse_headers) {
        char *d = strstr(rest, lf->hdr_delim);
        if (d == NULL)
            return "no headers delimiter";
        *d = '\0';
        char *h = rest;
        rest = d + strlen(lf->hdr_delim);
        if (*h != '\0' && strcmp(h, "NO_HEADERS") != 0) {
            size_t sl = strlen(lf->hdr_sep);
            for (char *tok = h; tok != NULL;) {
                char *next = strstr(tok, lf->hdr_sep);
                if (next) {
                    *next = '\0';
                    next += sl;
                }
                if (p->nh >= PRODUCE_MAX_HEADERS)
                    return "too many headers";
                char *ks = strstr(tok, lf->hdr_key_sep);
                if (ks == NULL || ks == tok)
                    return "header without key separator";
                *ks = '\0';
                p->hk[p->nh] = tok;
                p->hv[p->nh] = ks + strlen(lf->hdr_key_sep);
                p->hvlen[p->nh] = strlen(p->hv[p->nh]);
                if (is_null(lf, p->hv[p->nh], p->hvlen[p->nh]))
                    p->hv[p->nh] = NULL;
                p->nh++;
                tok = next;
            }
        }
    }
    len = strlen(rest);
    if (lf->parse_key) {
        char *s = strstr(rest, lf->key_sep);
        if (s == NULL)
            return "no key separator";
        p->key = rest;
        p->klen = (size_t)(s - rest);
        p->value = s + strlen(lf->key_sep);
        p->vlen = len - p->klen - strlen(lf->key_sep);
        if (is_null(lf, p->key, p->klen))
            p->key = NULL;
    } else {
        p->value = rest;
        p->vlen = len;
    }
    if (is_null(lf, p->value, p->vlen))
        p->value = NULL;
    return NULL;
}

/* kafka-console-producer flags that are plain client settings: each sets the
 * librdkafka property of the same meaning to its value. */
static const struct {
    const char *flag, *prop;
} kafka_prop_flags[] = {
    {"message-send-max-retries", "message.send.max.retries"},
    {"retry-backoff-ms", "retry.backoff.ms"},
    {"request-timeout-ms", "request.timeout.ms"},
    {"metadata-expiry-ms", "metadata.max.age.ms"},
    {"socket-buffer-size", "socket.send.buffer.bytes"},
    {"max-partition-memory-bytes", "batch.size"},
};
#define N_KAFKA_PROP_FLAGS (sizeof kafka_prop_flags / sizeof kafka_prop_flags[0])

int cmd_produce(int argc, char **argv) {
    enum {
        O_TOPIC = 1,
        O_FILE,
        O_PART,
        O_ACKS,
        O_CODEC,
        O_BATCH,
        O_LINGER,
        O_MAXREC,
        O_SYNC,
        O_PROP,
        O_PPROP,
        O_PCONF,
        O_BROKERS,
        O_MAXMEM,
        O_MAXBLOCK,
        O_KPROP /* O_KPROP + i: kafka_prop_flags[i] */
    };
    static const struct option opts[] = {
        {"topic", required_argument, NULL, O_TOPIC},
        {"file", required_argument, NULL, O_FILE},
        {"partition", required_argument, NULL, O_PART},
        {"acks", required_argument, NULL, O_ACKS},
        {"request-required-acks", required_argument, NULL, O_ACKS},
        {"compression-codec", required_argument, NULL, O_CODEC},
        {"batch-size", required_argument, NULL, O_BATCH},
        {"linger-ms", required_argument, NULL, O_LINGER},
        {"max-record-size", required_argument, NULL, O_MAXREC},
        {"sync", no_argument, NULL, O_SYNC},
        {"property", required_argument, NULL, O_PROP},
        {"producer-property", required_argument, NULL, O_PPROP},
        {"producer.config", required_argument, NULL, O_PCONF},
        {"command-property", required_argument, NULL, O_PPROP},
        {"broker-list", required_argument, NULL, O_BROKERS},
        {"timeout", required_argument, NULL, O_LINGER},
        {"max-memory-bytes", required_argument, NULL, O_MAXMEM},
        {"max-block-ms", required_argument, NULL, O_MAXBLOCK},
        {"message-send-max-retries", required_argument, NULL, O_KPROP + 0},
        {"retry-backoff-ms", required_argument, NULL, O_KPROP + 1},
        {"request-timeout-ms", required_argument, NULL, O_KPROP + 2},
        {"metadata-expiry-ms", required_argument, NULL, O_KPROP + 3},
        {"socket-buffer-size", required_argument, NULL, O_KPROP + 4},
        {"max-partition-memory-bytes", required_argument, NULL, O_KPROP + 5},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static kc_opts k;
    static produce_state st;
    memset(&k, 0, sizeof k);
    memset(&st, 0, sizeof st);
    k.cmd = "produce";
    line_format lf = {false, false, "\t", "\t", ",", ":", NULL};
    const char *topic = NULL, *file = NULL, *acks = "all", *codec = "none";
    int64_t partition = RD_KAFKA_PARTITION_UA, batch = -1, linger = 5, maxrec = 1024 * 1024;
    bool sync = false, json = false;
    char numbuf[3][32];
    static char kprops[N_KAFKA_PROP_FLAGS + 1][128];
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
        case O_TOPIC:
            topic = optarg;
            break;
        case O_FILE:
            file = optarg;
            break;
        case O_PART:
            if (!cli_parse_i64(optarg, 0, INT32_MAX, &partition))
                return cli_usage_err("produce", "--partition: not a partition number: '%s'", optarg);
            break;
        case O_ACKS:
            if (strcmp(optarg, "all") && strcmp(optarg, "-1") && strcmp(optarg, "0") && strcmp(optarg, "1"))
                return cli_usage_err("produce", "--acks: expected all, -1, 0 or 1, got '%s'", optarg);
            acks = optarg;
            break;
        case O_CODEC:
            if (strcmp(optarg, "none") && strcmp(optarg, "gzip") && strcmp(optarg, "snappy") &&
                strcmp(optarg, "lz4") && strcmp(optarg, "zstd"))
                return cli_usage_err("produce", "--compression-codec: unknown codec '%s'", optarg);
            codec = optarg;
            break;
        case O_BATCH:
            if (!cli_parse_i64(optarg, 1, 1000000, &batch))
                return cli_usage_err("produce", "--batch-size: expected 1..1000000, got '%s'", optarg);
            break;
        case O_LINGER:
            if (!cli_parse_i64(optarg, 0, 900000, &linger))
                return cli_usage_err("produce", "--linger-ms: expected 0..900000, got '%s'", optarg);
            break;
        case O_MAXREC:
            if (!cli_parse_size(optarg, 1000000000, &maxrec) || maxrec < 1)
                return cli_usage_err("produce", "--max-record-size: bad size '%s'", optarg);
            break;
        case O_SYNC:
            sync = true;
            break;
        case O_PROP: {
            int rc = set_property(&lf, optarg);
            if (rc != CLI_OK)
                return rc;
            break;
        }
        case O_PPROP: {
            int rc = kc_add_prop(&k, optarg);
            if (rc != CLI_OK)
                return rc;
            break;
        }
        case O_PCONF:
            k.config_file = optarg;
            break;
        case O_BROKERS:
            k.bootstrap = optarg;
            break;
        case O_MAXBLOCK: {
            int64_t v;
            if (!cli_parse_i64(optarg, 0, INT64_MAX, &v))
                return cli_usage_err("produce", "--max-block-ms: expected a number of ms, got '%s'", optarg);
            break;
        }
        case O_MAXMEM: {
            /* librdkafka counts its queue in KiB. */
            int64_t v;
            if (!cli_parse_i64(optarg, 1, (int64_t)INT32_MAX * 1024, &v))
                return cli_usage_err("produce", "--max-memory-bytes: expected a positive number, got '%s'",
                                     optarg);
            snprintf(kprops[N_KAFKA_PROP_FLAGS], sizeof kprops[0], "queue.buffering.max.kbytes=%lld",
                     (long long)((v + 1023) / 1024));
            int rc = kc_add_prop(&k, kprops[N_KAFKA_PROP_FLAGS]);
            if (rc != CLI_OK)
                return rc;
            break;
        }
        case 'h':
            fputs(produce_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("produce", "option '%s' needs a value", argv[optind - 1]);
        default:
            if (ch >= O_KPROP && ch < O_KPROP + (int)N_KAFKA_PROP_FLAGS) {
                size_t i = (size_t)(ch - O_KPROP);
                int64_t v;
                if (!cli_parse_i64(optarg, 0, INT32_MAX, &v))
                    return cli_usage_err("produce", "--%s: expected a number, got '%s'",
                                         kafka_prop_flags[i].flag, optarg);
                snprintf(kprops[i], sizeof kprops[i], "%s=%lld", kafka_prop_flags[i].prop, (long long)v);
                int rc = kc_add_prop(&k, kprops[i]);
                if (rc != CLI_OK)
                    return rc;
                break;
            }
            return cli_usage_err("produce", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("produce", "unexpected argument '%s'", argv[optind]);
    if (topic == NULL)
        return cli_usage_err("produce", "--topic is required");
    int rc = kc_check(&k);
    if (rc != CLI_OK)
        return rc;

    FILE *in = stdin;
    char *line = NULL;
    size_t cap = 0;
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    if (file && (in = fopen(file, "r")) == NULL) {
        cli_err("produce", "%s: %s", file, strerror(errno));
        return CLI_ENOTFOUND;
    }
    if ((rc = kc_probe(&k)) != CLI_OK)
        goto out;
    rd_kafka_conf_t *conf = kc_conf(&k);
    if (conf == NULL) {
        rc = CLI_EUSAGE;
        goto out;
    }
    int timeout = k.timeout_ms > 0 ? k.timeout_ms : 15000;
    snprintf(numbuf[0], sizeof numbuf[0], "%lld", (long long)linger);
    snprintf(numbuf[1], sizeof numbuf[1], "%d", timeout);
    char err[512];
    /* Settings given with --producer-property were applied by kc_conf and win:
     * set ours only where the operator did not. */
    const char *defaults[][2] = {{"acks", acks},
                                 {"compression.codec", codec},
                                 {"linger.ms", numbuf[0]},
                                 {"message.timeout.ms", numbuf[1]},
                                 {"batch.num.messages", NULL}};
    if (batch > 0) {
        snprintf(numbuf[2], sizeof numbuf[2], "%lld", (long long)batch);
        defaults[4][1] = numbuf[2];
    }
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        bool given = false;
        for (int j = 0; j < k.nprops; j++) {
            size_t kl = strlen(defaults[i][0]);
            given |= strncmp(k.props[j], defaults[i][0], kl) == 0 && k.props[j][kl] == '=';
        }
        if (!given && defaults[i][1] &&
            rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            rc = cli_usage_err("produce", "%s: %s", defaults[i][0], err);
            goto out;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &st);
    if ((rk = kc_new(&k, RD_KAFKA_PRODUCER, conf)) == NULL) {
        rc = CLI_EFAIL;
        goto out;
    }
    const rd_kafka_metadata_topic_t *t = kc_wait_topic_for_produce(&k, rk, topic, &md, &rc);
    if (t == NULL)
        goto out;
    if (partition != RD_KAFKA_PARTITION_UA && partition >= t->partition_cnt) {
        cli_err("produce", "partition %lld does not exist (topic '%s' has %d)", (long long)partition, topic,
                t->partition_cnt);
        rc = CLI_ENOTFOUND;
        goto out;
    }
    cli_catch_signals();
    int64_t lineno = 0, sent = 0;
    ssize_t n;
    while (!cli_stop && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n > maxrec) {
            cli_err("produce", "line %lld is %zd bytes, over --max-record-size %lld; stopping",
                    (long long)lineno, n, (long long)maxrec);
            rc = CLI_EUSAGE;
            break;
        }
        parsed p;
        const char *why = parse_line(&lf, line, (size_t)n, &p);
        if (why != NULL) {
            cli_err("produce", "line %lld: %s; stopping", (long long)lineno, why);
            rc = CLI_EUSAGE;
            break;
        }
        rd_kafka_headers_t *hdrs = NULL;
        if (p.nh > 0) {
            hdrs = rd_kafka_headers_new((size_t)p.nh);
            for (int i = 0; i < p.nh; i++)
                rd_kafka_header_add(hdrs, p.hk[i], -1, p.hv[i], p.hv[i] ? (ssize_t)p.hvlen[i] : 0);
        }
        /* Retry while the local queue is full, serving delivery reports. */
        rd_kafka_resp_err_t e;
        int64_t give_up = cli_now_us() + (int64_t)timeout * 1000;
        for (;;) {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)partition),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_VALUE((void *)p.value, p.value ? p.vlen : 0),
                                  RD_KAFKA_V_KEY((void *)p.key, p.key ? p.klen : 0), RD_KAFKA_V_HEADERS(hdrs),
                                  RD_KAFKA_V_OPAQUE((void *)(intptr_t)lineno), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || cli_now_us() > give_up)
                break;
            rd_kafka_poll(rk, 50);
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
            cli_err("produce", "line %lld: cannot queue the record: %s", (long long)lineno,
                    rd_kafka_err2str(e));
            rc = kc_exit_for(e);
            break;
        }
        sent++;
        if (sync)
            rd_kafka_flush(rk, timeout);
        else
            rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, timeout);
    int64_t pending = rd_kafka_outq_len(rk);
    if (json) {
        fputs("{\"topic\":", stdout);
        cli_json_str(stdout, topic, -1);
        printf(",\"sent\":%lld,\"acknowledged\":%lld,\"failed\":%lld,\"pending\":%lld}\n", (long long)sent,
               (long long)st.acked, (long long)st.failed, (long long)pending);
    }
    if (st.failed > 0) {
        cli_err("produce", "%lld of %lld records failed; first at line %lld: %s", (long long)st.failed,
                (long long)sent, (long long)st.first_line, st.first_msg);
        if (rc == CLI_OK)
            rc = kc_exit_for(st.first_err);
    } else if (pending > 0) {
        cli_err("produce", "%lld records not acknowledged within %d ms", (long long)pending, timeout);
        if (rc == CLI_OK)
            rc = CLI_EUNREACH;
    }
    if (cli_stop && rc == CLI_OK)
        rc = CLI_EINTERRUPT;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk)
        rd_kafka_destroy(rk);
    free(line);
    if (in != stdin)
        fclose(in);
    return rc;
}
