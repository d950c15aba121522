/*
 * perf.c - `sluice perf produce|consume|e2e`: load generators that report
 * what kafka-producer-perf-test and kafka-consumer-perf-test report
 * (records/s, MB/s, average and maximum latency, latency percentiles), plus
 * an end-to-end latency test (produce and consume in one process).
 *
 * Latency samples are bounded: at most PERF_MAX_SAMPLES are kept, one every
 * ceil(n / PERF_MAX_SAMPLES) records, so a billion-record run costs 4 MiB.
 * The payload is one buffer of random letters generated once; for e2e the
 * first 8 bytes carry the send time (monotonic microseconds) so a consumer
 * in the same process can measure the whole trip.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/wire.h"
#include "tools/kclient.h"

#define PERF_MAX_SAMPLES    (1 << 20)
#define PERF_MAX_RECORD     (64 * 1024 * 1024)
#define PERF_REPORT_US      5000000 /* periodic line every 5 s, as Kafka's tool */
#define PERF_MAX_PARTITIONS 65536

static const char perf_help[] =
    "Usage: sluice perf produce|consume|e2e --bootstrap-server H:P --topic T [options]\n"
    "\n"
    "produce: writes --num-records records of --record-size bytes, at most --throughput records/s\n"
    "         (-1: as fast as possible); prints records/s, MB/s, latency avg/max and p50/p95/p99/p99.9\n"
    "         of the time from send to acknowledgement.\n"
    "consume: reads --messages records (from the beginning, or with --group from its offsets) and\n"
    "         prints MB, MB/s, records, records/s.\n"
    "e2e:     produces at --throughput and consumes in the same process; latency is send to receipt.\n"
    "\n"
    "Options:\n"
    "  --topic T                  topic (required; produce modes create it if the broker auto-creates "
    "topics)\n"
    "  --num-records N            produce/e2e: records to send (required)\n"
    "  --record-size BYTES        produce/e2e: value size (default 100; e2e needs >= 8)\n"
    "  --throughput R             produce/e2e: records per second cap, -1 for none (default -1)\n"
    "  --acks all|-1|0|1          produce/e2e: shorthand for --producer-props acks=...\n"
    "  --producer-props 'k=v ...' produce/e2e: librdkafka producer settings (repeatable)\n"
    "  --messages N               consume: records to read (required)\n"
    "  --group G                  consume: use consumer group G (default: no group, from the start)\n"
    "  --consumer-props 'k=v ...' consume/e2e: librdkafka consumer settings (repeatable)\n"
    "  --idle-timeout-ms N        consume/e2e: give up after N ms without a record (default 10000)\n"
    "  --reporting-interval MS    periodic report interval (default 5000; 0 = final line "
    "only)\n"
    "Also accepted as Kafka's perf tools spell them: --producer.config/--consumer.config FILE\n"
    "(= --command-config), --timeout MS (= --idle-timeout-ms), --broker-list (= --bootstrap-server),\n"
    "bootstrap.servers=H:P in the props (= --bootstrap-server); --print-metrics,\n"
    "--show-detailed-stats and --hide-header have no effect.\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 done; 1 records failed or were missing; 2 bad flags; 3 broker unreachable;\n"
    "4 topic does not exist; 130 interrupted.\n"
    "\n"
    "Examples:\n"
    "  sluice perf produce --bootstrap-server localhost:9092 --topic bench --num-records 1000000 \\\n"
    "      --record-size 100 --throughput -1 --producer-props 'acks=1 linger.ms=5'\n"
    "  sluice perf consume --bootstrap-server localhost:9092 --topic bench --messages 1000000\n"
    "  sluice perf e2e --bootstrap-server localhost:9092 --topic bench --num-records 20000 --throughput "
    "5000\n";

/* Latency statistics over sampled records. */
typedef struct perf_stats {
    int32_t *samples; /* microseconds */
    int64_t nsamples, every;
    int64_t count, bytes, errors;
    double lat_sum_us;
    int64_t lat_max_us;
    /* window for the periodic lines */
    int64_t win_start_us, win_count, win_bytes, win_max_us;
    double win_lat_sum_us;
    rd_kafka_resp_err_t first_err;
} perf_stats;

typedef struct perf_args {
    kc_opts k;  /* producer props live in k.props */
    kc_opts kc; /* consumer props */
    const char *mode, *topic, *group;
    int64_t num, size, throughput, messages, idle_ms, report_ms;
    bool json;
} perf_args;

static int stats_init(perf_stats *s, int64_t expected) {
    memset(s, 0, sizeof s[0]);
    s->every = expected / PERF_MAX_SAMPLES + 1;
    s->samples = malloc(sizeof(int32_t) * PERF_MAX_SAMPLES);
    s->win_start_us = cli_now_us();
    return s->samples ? 0 : -1;
}

static void stats_record(perf_stats *s, int64_t lat_us, int64_t bytes) {
    if (lat_us < 0)
        lat_us = 0;
    if (s->count % s->every == 0 && s->nsamples < PERF_MAX_SAMPLES)
        s->samples[s->nsamples++] = lat_us > INT32_MAX ? INT32_MAX : (int32_t)lat_us;
    s->count++;
    s->bytes += bytes;
    s->lat_sum_us += (double)lat_us;
    if (lat_us > s->lat_max_us)
        s->lat_max_us = lat_us;
    s->win_count++;
    s->win_bytes += bytes;
    s->win_lat_sum_us += (double)lat_us;
    if (lat_us > s->win_max_us)
        s->win_max_us = lat_us;
}

/* Kafka's periodic line: "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency." */
static void stats_window(perf_stats *s, const perf_args *a, const char *verb, bool with_latency) {
    int64_t now = cli_now_us();
    if (a->report_ms <= 0 || now - s->win_start_us < a->report_ms * 1000)
        return;
    double secs = (double)(now - s->win_start_us) / 1e6;
    if (!a->json) {
        printf("%lld records %s, %.1f records/sec (%.2f MB/sec)", (long long)s->win_count, verb,
               (double)s->win_count / secs, (double)s->win_bytes / secs / (1024.0 * 1024.0));
        if (with_latency)
            printf(", %.1f ms avg latency, %.1f ms max latency",
                   s->win_count ? s->win_lat_sum_us / (double)s->win_count / 1000.0 : 0.0,
                   (double)s->win_max_us / 1000.0);
        printf(".\n");
        fflush(stdout);
    }
    s->win_start_us = now;
    s->win_count = s->win_bytes = s->win_max_us = 0;
    s->win_lat_sum_us = 0;
}

static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static double pct_ms(const perf_stats *s, double q) {
    if (s->nsamples == 0)
        return 0;
    int64_t i = (int64_t)(q * (double)s->nsamples);
    if (i >= s->nsamples)
        i = s->nsamples - 1;
    return s->samples[i] / 1000.0;
}

static void stats_final(perf_stats *s, const perf_args *a, const char *verb, double secs, bool latency) {
    qsort(s->samples, (size_t)s->nsamples, sizeof s->samples[0], cmp_i32);
    double rps = secs > 0 ? (double)s->count / secs : 0,
           mbps = secs > 0 ? (double)s->bytes / secs / 1048576.0 : 0;
    double avg = s->count ? s->lat_sum_us / (double)s->count / 1000.0 : 0;
    if (a->json) {
        printf("{\"mode\":\"%s\",\"topic\":", a->mode);
        cli_json_str(stdout, a->topic, -1);
        printf(",\"records\":%lld,\"bytes\":%lld,\"errors\":%lld,\"seconds\":%.3f,\"records_per_sec\":%.1f,"
               "\"mb_per_sec\":%.3f",
               (long long)s->count, (long long)s->bytes, (long long)s->errors, secs, rps, mbps);
        if (latency)
            printf(",\"avg_latency_ms\":%.3f,\"max_latency_ms\":%.3f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
                   "\"p99_ms\":%.3f,\"p999_ms\":%.3f",
                   avg, s->lat_max_us / 1000.0, pct_ms(s, 0.5), pct_ms(s, 0.95), pct_ms(s, 0.99),
                   pct_ms(s, 0.999));
        printf("}\n");
    } else {
        printf("%lld records %s, %.1f records/sec (%.2f MB/sec)", (long long)s->count, verb, rps, mbps);
        if (latency)
            printf(", %.2f ms avg latency, %.2f ms max latency, %.2f ms 50th, %.2f ms 95th, %.2f ms 99th, "
                   "%.2f ms 99.9th",
                   avg, s->lat_max_us / 1000.0, pct_ms(s, 0.5), pct_ms(s, 0.95), pct_ms(s, 0.99),
                   pct_ms(s, 0.999));
        printf(".\n");
    }
    fflush(stdout);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    perf_stats *s = opaque;
    if (m->err) {
        if (s->errors++ == 0)
            s->first_err = m->err;
        return;
    }
    stats_record(s, cli_now_us() - (int64_t)(intptr_t)m->_private, (int64_t)m->len);
}

/* Fills buf with random capital letters (xorshift; speed over quality). */
static void fill_payload(uint8_t *buf, size_t n) {
    uint64_t x = (uint64_t)cli_now_us() | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)('A' + x % 26);
    }
}

/* Creates a producer with the perf defaults under the operator's props. */
static rd_kafka_t *make_producer(perf_args *a, perf_stats *s) {
    rd_kafka_conf_t *conf = kc_conf(&a->k);
    if (conf == NULL)
        return NULL;
    char err[256];
    /* Enough queue for a fast run; the operator's props were applied first
     * but these two only matter when not given, so check before setting. */
    bool has_q = false;
    for (int i = 0; i < a->k.nprops; i++)
        has_q |= strncmp(a->k.props[i], "queue.buffering.max.messages=", 29) == 0;
    if (!has_q)
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, s);
    return kc_new(&a->k, RD_KAFKA_PRODUCER, conf);
}

/* Sends record i (payload buf of size bytes), pacing to the throughput cap.
 * While waiting it serves poll_extra (the e2e consumer) if given. Returns
 * 0, or the error that stopped queuing. */
static rd_kafka_resp_err_t send_one(perf_args *a, rd_kafka_t *rk, uint8_t *buf, int64_t i, int64_t start_us,
                                    void (*poll_extra)(void *), void *extra) {
    if (a->throughput > 0) {
        int64_t due = start_us + (int64_t)((double)i * 1e6 / (double)a->throughput);
        while (cli_now_us() < due && !cli_stop) {
            rd_kafka_poll(rk, 0);
            if (poll_extra)
                poll_extra(extra);
            else {
                int64_t wait = due - cli_now_us();
                if (wait > 0)
                    usleep((useconds_t)(wait > 1000 ? 1000 : wait));
            }
        }
    }
    int64_t now = cli_now_us();
    if (a->size >= 8 && poll_extra)
        wire_put_be64(buf, (uint64_t)now);
    /* e2e payloads differ per record (send time), so librdkafka copies them;
     * produce reuses one buffer that outlives the client. */
    int msgflags = poll_extra ? RD_KAFKA_MSG_F_COPY : 0;
    for (int tries = 0; tries < 100000; tries++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_VALUE(buf, (size_t)a->size),
            RD_KAFKA_V_MSGFLAGS(msgflags), RD_KAFKA_V_OPAQUE((void *)(intptr_t)now), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return e;
        rd_kafka_poll(rk, 1);
        if (poll_extra)
            poll_extra(extra);
    }
    return RD_KAFKA_RESP_ERR__QUEUE_FULL;
}

static int finish_rc(perf_args *a, perf_stats *s, int64_t expected) {
    if (cli_stop)
        return CLI_EINTERRUPT;
    if (s->errors > 0) {
        cli_err("perf", "%lld records failed: %s", (long long)s->errors, rd_kafka_err2str(s->first_err));
        return kc_exit_for(s->first_err);
    }
    if (s->count < expected) {
        cli_err("perf", "only %lld of %lld records completed", (long long)s->count, (long long)expected);
        return a->mode[0] == 'c' ? CLI_EFAIL : CLI_EUNREACH;
    }
    return CLI_OK;
}

static int run_produce(perf_args *a) {
    static perf_stats s;
    int rc = CLI_OK;
    uint8_t *buf = malloc((size_t)a->size + 1);
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    if (buf == NULL || stats_init(&s, a->num) != 0) {
        cli_err("perf", "out of memory");
        rc = CLI_EFAIL;
        goto out;
    }
    fill_payload(buf, (size_t)a->size);
    if ((rk = make_producer(a, &s)) == NULL) {
        rc = CLI_EUSAGE;
        goto out;
    }
    if (kc_wait_topic_for_produce(&a->k, rk, a->topic, &md, &rc) == NULL)
        goto out;
    int64_t start = cli_now_us();
    s.win_start_us = start;
    for (int64_t i = 0; i < a->num && !cli_stop; i++) {
        rd_kafka_resp_err_t e = send_one(a, rk, buf, i, start, NULL, NULL);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            cli_err("perf", "cannot queue record %lld: %s", (long long)i, rd_kafka_err2str(e));
            rc = kc_exit_for(e);
            break;
        }
        if ((i & 255) == 0) {
            rd_kafka_poll(rk, 0);
            stats_window(&s, a, "sent", true);
            cli_progress(false, "perf produce: %lld/%lld records acknowledged", (long long)s.count,
                         (long long)a->num);
        }
    }
    int timeout = a->k.timeout_ms > 0 ? a->k.timeout_ms : 30000;
    int64_t flush_deadline = cli_now_us() + (int64_t)timeout * 1000;
    while (rd_kafka_outq_len(rk) > 0 && cli_now_us() < flush_deadline && !cli_stop) {
        rd_kafka_poll(rk, 100);
        stats_window(&s, a, "sent", true);
    }
    cli_progress_done();
    double secs = (double)(cli_now_us() - start) / 1e6;
    stats_final(&s, a, "sent", secs, true);
    if (rc == CLI_OK)
        rc = finish_rc(a, &s, a->num);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk)
        rd_kafka_destroy(rk);
    free(s.samples);
    s.samples = NULL;
    free(buf);
    return rc;
}

/* A consumer assigned to every partition of the topic, starting at the
 * beginning (start_at_end false) or at each partition's current end. */
static rd_kafka_t *make_consumer(perf_args *a, bool start_at_end, int *rc) {
    char err[256], anon[64];
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_conf_t *conf = kc_conf(&a->kc);
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (conf == NULL) {
        *rc = CLI_EUSAGE;
        return NULL;
    }
    snprintf(anon, sizeof anon, "sluice-perf-%d", (int)getpid());
    rd_kafka_conf_set(conf, "group.id", a->group ? a->group : anon, err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", a->group ? "true" : "false", err, sizeof err);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
    if ((rk = kc_new(&a->kc, RD_KAFKA_CONSUMER, conf)) == NULL) {
        *rc = CLI_EFAIL;
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    /* e2e produces too, so like the produce modes it lets the broker create
     * the topic; perf consume, like Kafka's consumer perf test, does not. */
    const rd_kafka_metadata_topic_t *t = a->mode[0] == 'e'
                                             ? kc_wait_topic_for_produce(&a->kc, rk, a->topic, &md, rc)
                                             : kc_wait_topic(&a->kc, rk, a->topic, &md, rc);
    if (t == NULL)
        goto err;
    rd_kafka_resp_err_t e;
    if (a->group) {
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, a->topic, RD_KAFKA_PARTITION_UA);
        e = rd_kafka_subscribe(rk, parts);
    } else {
        parts = rd_kafka_topic_partition_list_new(t->partition_cnt);
        for (int p = 0; p < t->partition_cnt && p < PERF_MAX_PARTITIONS; p++) {
            int64_t lo = 0, hi = 0;
            if (start_at_end) {
                e = rd_kafka_query_watermark_offsets(rk, a->topic, p, &lo, &hi, 10000);
                if (e) {
                    cli_err("perf", "cannot read the end offset of partition %d: %s", p, rd_kafka_err2str(e));
                    *rc = kc_exit_for(e);
                    goto err;
                }
            }
            rd_kafka_topic_partition_list_add(parts, a->topic, p)->offset =
                start_at_end ? hi : RD_KAFKA_OFFSET_BEGINNING;
        }
        e = rd_kafka_assign(rk, parts);
    }
    if (e) {
        cli_err("perf", "cannot start consuming: %s", rd_kafka_err2str(e));
        *rc = kc_exit_for(e);
        goto err;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_metadata_destroy(md);
    return rk;
err:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return NULL;
}

static int run_consume(perf_args *a) {
    static perf_stats s;
    int rc = CLI_OK;
    rd_kafka_t *rk = NULL;
    if (stats_init(&s, a->messages) != 0) {
        cli_err("perf", "out of memory");
        return CLI_EFAIL;
    }
    if ((rk = make_consumer(a, false, &rc)) == NULL)
        goto out;
    /* Batches from the consumer queue: one call hands over up to
     * PERF_BATCH records, which keeps the tool from being the bottleneck. */
    enum { PERF_BATCH = 1024 };
    static rd_kafka_message_t *batch[PERF_BATCH];
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(rk);
    int64_t start = cli_now_us(), last = start, first_rec = -1;
    s.win_start_us = start;
    while (s.count < a->messages && !cli_stop && rc == CLI_OK) {
        if (cli_now_us() - last > a->idle_ms * 1000)
            break;
        ssize_t got = rd_kafka_consume_batch_queue(cq, 100, batch, PERF_BATCH);
        int64_t now = cli_now_us();
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err) {
                bool transient =
                    m->err == RD_KAFKA_RESP_ERR__TRANSPORT || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
                if (!transient && rc == CLI_OK) {
                    cli_err("perf", "%s", rd_kafka_message_errstr(m));
                    rc = kc_exit_for(m->err);
                }
            } else if (s.count < a->messages) {
                last = now;
                if (first_rec < 0)
                    first_rec = now;
                stats_record(&s, 0, (int64_t)m->len);
            }
            rd_kafka_message_destroy(m);
        }
        if (got > 0) {
            stats_window(&s, a, "consumed", false);
            cli_progress(false, "perf consume: %lld/%lld records", (long long)s.count,
                         (long long)a->messages);
        }
    }
    rd_kafka_queue_destroy(cq);
    cli_progress_done();
    /* Time from the first record to the last, so group joins or a cold
     * start do not count as fetch time (Kafka's fetch.time.ms). */
    double secs = first_rec >= 0 ? (double)(last - first_rec) / 1e6 : 0;
    stats_final(&s, a, "consumed", secs, false);
    if (rc == CLI_OK)
        rc = finish_rc(a, &s, a->messages);
out:
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    free(s.samples);
    s.samples = NULL;
    return rc;
}

typedef struct e2e_state {
    rd_kafka_t *consumer;
    perf_stats *stats;
    perf_args *a;
    int64_t last_us;
    int rc;
} e2e_state;

static void e2e_poll(void *arg) {
    e2e_state *e = arg;
    for (int i = 0; i < 1000; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(e->consumer, 0);
        if (m == NULL)
            return;
        if (m->err == 0 && m->len >= 8) {
            int64_t sent = (int64_t)wire_be64(m->payload);
            e->last_us = cli_now_us();
            stats_record(e->stats, e->last_us - sent, (int64_t)m->len);
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__TRANSPORT &&
                   m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            cli_err("perf", "%s", rd_kafka_message_errstr(m));
            e->rc = kc_exit_for(m->err);
        }
        rd_kafka_message_destroy(m);
    }
}

static int run_e2e(perf_args *a) {
    static perf_stats recv, acked;
    int rc = CLI_OK;
    uint8_t *buf = malloc((size_t)a->size);
    rd_kafka_t *prod = NULL, *cons = NULL;
    const struct rd_kafka_metadata *md = NULL;
    if (buf == NULL || stats_init(&recv, a->num) != 0 || stats_init(&acked, a->num) != 0) {
        cli_err("perf", "out of memory");
        rc = CLI_EFAIL;
        goto out;
    }
    fill_payload(buf, (size_t)a->size);
    if ((cons = make_consumer(a, true, &rc)) == NULL)
        goto out;
    if ((prod = make_producer(a, &acked)) == NULL) {
        rc = CLI_EUSAGE;
        goto out;
    }
    if (kc_wait_topic_for_produce(&a->k, prod, a->topic, &md, &rc) == NULL)
        goto out;
    e2e_state st = {cons, &recv, a, cli_now_us(), CLI_OK};
    /* Let the consumer's first fetch go out before timing starts. */
    for (int i = 0; i < 20; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 50);
        if (m)
            rd_kafka_message_destroy(m);
    }
    int64_t start = cli_now_us();
    recv.win_start_us = start;
    for (int64_t i = 0; i < a->num && !cli_stop && st.rc == CLI_OK; i++) {
        rd_kafka_resp_err_t e = send_one(a, prod, buf, i, start, e2e_poll, &st);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            cli_err("perf", "cannot queue record %lld: %s", (long long)i, rd_kafka_err2str(e));
            rc = kc_exit_for(e);
            break;
        }
        rd_kafka_poll(prod, 0);
        e2e_poll(&st);
        stats_window(&recv, a, "received", true);
    }
    st.last_us = cli_now_us();
    while (recv.count < a->num && !cli_stop && st.rc == CLI_OK &&
           cli_now_us() - st.last_us < a->idle_ms * 1000) {
        rd_kafka_poll(prod, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 50);
        if (m) {
            if (m->err == 0 && m->len >= 8) {
                st.last_us = cli_now_us();
                stats_record(&recv, st.last_us - (int64_t)wire_be64(m->payload), (int64_t)m->len);
            }
            rd_kafka_message_destroy(m);
        }
    }
    double secs = (double)(cli_now_us() - start) / 1e6;
    stats_final(&recv, a, "received", secs, true);
    if (rc == CLI_OK)
        rc = st.rc;
    if (rc == CLI_OK)
        rc = finish_rc(a, &recv, a->num);
    if (rc == CLI_OK && acked.errors > 0)
        rc = finish_rc(a, &acked, 0);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (prod) {
        rd_kafka_flush(prod, 5000);
        rd_kafka_destroy(prod);
    }
    if (cons) {
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
    }
    free(recv.samples);
    free(acked.samples);
    recv.samples = acked.samples = NULL;
    free(buf);
    return rc;
}

/* Adds "k=v k2=v2" (space separated) props to o. */
static int add_props(kc_opts *o, char *s) {
    for (char *save = NULL, *t = strtok_r(s, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        int rc = kc_add_prop(o, t);
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

int cmd_perf(int argc, char **argv) {
    enum {
        O_TOPIC = 1,
        O_NUM,
        O_SIZE,
        O_TPUT,
        O_ACKS,
        O_PPROPS,
        O_MSGS,
        O_GROUP,
        O_CPROPS,
        O_IDLE,
        O_REPORT,
        O_CONFFILE,
        O_BROKERS,
        O_IGNORED
    };
    static const struct option opts[] = {
        {"topic", required_argument, NULL, O_TOPIC},
        {"num-records", required_argument, NULL, O_NUM},
        {"record-size", required_argument, NULL, O_SIZE},
        {"throughput", required_argument, NULL, O_TPUT},
        {"acks", required_argument, NULL, O_ACKS},
        {"producer-props", required_argument, NULL, O_PPROPS},
        {"messages", required_argument, NULL, O_MSGS},
        {"group", required_argument, NULL, O_GROUP},
        {"consumer-props", required_argument, NULL, O_CPROPS},
        {"idle-timeout-ms", required_argument, NULL, O_IDLE},
        {"reporting-interval", required_argument, NULL, O_REPORT},
        /* As kafka-producer-perf-test and kafka-consumer-perf-test spell them. */
        {"producer.config", required_argument, NULL, O_CONFFILE},
        {"consumer.config", required_argument, NULL, O_CONFFILE},
        {"timeout", required_argument, NULL, O_IDLE},
        {"broker-list", required_argument, NULL, O_BROKERS},
        {"print-metrics", no_argument, NULL, O_IGNORED},
        {"show-detailed-stats", no_argument, NULL, O_IGNORED},
        {"hide-header", no_argument, NULL, O_IGNORED},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static perf_args a;
    static char acks_prop[32];
    memset(&a, 0, sizeof a);
    a.k.cmd = a.kc.cmd = "perf";
    a.size = 100;
    a.throughput = -1;
    a.num = a.messages = -1;
    a.idle_ms = 10000;
    a.report_ms = 5000;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(perf_help, stdout);
            return CLI_OK;
        }
        return cli_usage_err("perf", "say which test: produce, consume or e2e");
    }
    a.mode = argv[1];
    if (strcmp(a.mode, "produce") && strcmp(a.mode, "consume") && strcmp(a.mode, "e2e"))
        return cli_usage_err("perf", "unknown test '%s' (produce, consume or e2e)", a.mode);
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
        int rc = CLI_OK;
        switch (ch) {
        case O_TOPIC:
            a.topic = optarg;
            break;
        case O_NUM:
            if (!cli_parse_i64(optarg, 1, INT64_MAX / 2, &a.num))
                return cli_usage_err("perf", "--num-records: expected a positive number, got '%s'", optarg);
            break;
        case O_SIZE:
            if (!cli_parse_size(optarg, PERF_MAX_RECORD, &a.size) || a.size < 1)
                return cli_usage_err("perf", "--record-size: expected 1..%d bytes, got '%s'", PERF_MAX_RECORD,
                                     optarg);
            break;
        case O_TPUT:
            if (!cli_parse_i64(optarg, -1, 100000000, &a.throughput) || a.throughput == 0)
                return cli_usage_err("perf", "--throughput: expected -1 or a positive rate, got '%s'",
                                     optarg);
            break;
        case O_ACKS:
            if (strcmp(optarg, "all") && strcmp(optarg, "-1") && strcmp(optarg, "0") && strcmp(optarg, "1"))
                return cli_usage_err("perf", "--acks: expected all, -1, 0 or 1, got '%s'", optarg);
            snprintf(acks_prop, sizeof acks_prop, "acks=%s", optarg);
            rc = kc_add_prop(&a.k, acks_prop);
            break;
        case O_PPROPS:
            rc = add_props(&a.k, optarg);
            break;
        case O_MSGS:
            if (!cli_parse_i64(optarg, 1, INT64_MAX / 2, &a.messages))
                return cli_usage_err("perf", "--messages: expected a positive number, got '%s'", optarg);
            break;
        case O_GROUP:
            a.group = optarg;
            break;
        case O_CPROPS:
            rc = add_props(&a.kc, optarg);
            break;
        case O_IDLE:
            if (!cli_parse_i64(optarg, 1, 3600000, &a.idle_ms))
                return cli_usage_err("perf", "--idle-timeout-ms: expected 1..3600000, got '%s'", optarg);
            break;
        case O_REPORT:
            if (!cli_parse_i64(optarg, 0, 3600000, &a.report_ms))
                return cli_usage_err("perf", "--reporting-interval: expected 0..3600000, got '%s'", optarg);
            break;
        case O_CONFFILE:
            a.k.config_file = optarg;
            break;
        case O_BROKERS:
            a.k.bootstrap = optarg;
            break;
        case O_IGNORED:
            break;
        case 'h':
            fputs(perf_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("perf", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("perf", "unknown option '%s'", argv[optind - 1]);
        }
        if (rc != CLI_OK)
            return rc;
    }
    if (optind < argc)
        return cli_usage_err("perf", "unexpected argument '%s'", argv[optind]);
    if (a.topic == NULL)
        return cli_usage_err("perf", "--topic is required");
    if (a.mode[0] != 'c' && a.num < 0)
        return cli_usage_err("perf", "--num-records is required");
    if (a.mode[0] == 'c' && a.messages < 0)
        return cli_usage_err("perf", "--messages is required");
    if (a.mode[0] == 'e' && a.size < 8)
        return cli_usage_err("perf",
                             "e2e needs --record-size of at least 8 (the send time rides in the value)");
    /* kafka-producer-perf-test takes the brokers as --producer-props
     * bootstrap.servers=H:P: the same as --bootstrap-server. */
    for (int i = 0; a.k.bootstrap == NULL && i < a.k.nprops + a.kc.nprops; i++) {
        const char *p = i < a.k.nprops ? a.k.props[i] : a.kc.props[i - a.k.nprops];
        if (strncmp(p, "bootstrap.servers=", 18) == 0)
            a.k.bootstrap = p + 18;
    }
    /* The consumer shares the connection flags. */
    a.kc.bootstrap = a.k.bootstrap;
    a.kc.config_file = a.k.config_file;
    a.kc.timeout_ms = a.k.timeout_ms;
    int rc = kc_check(&a.k);
    if (rc != CLI_OK || (rc = kc_probe(&a.k)) != CLI_OK)
        return rc;
    cli_catch_signals();
    if (a.mode[0] == 'p')
        return run_produce(&a);
    if (a.mode[0] == 'c')
        return run_consume(&a);
    return run_e2e(&a);
}
