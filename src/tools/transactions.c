/*
 * transactions.c - `sluice transactions`: the transactional ids a broker
 * coordinates (kafka-transactions.sh list) and one id's transaction
 * (kafka-transactions.sh describe), through Sluice's own codec
 * (ListTransactions, DescribeTransactions; tools/kraw.h: librdkafka 2.0 has
 * no call for them). Both ask the bootstrap broker: on a single node it
 * coordinates every id; in a cluster `--list` shows that broker's ids and
 * `--describe` answers NOT_COORDINATOR for an id coordinated elsewhere.
 *
 * `--describe-producers` (DescribeProducers) and `--abort` (WriteTxnMarkers
 * with an ABORT marker, kafka-transactions.sh abort: for a hanging
 * transaction whose coordinator will never finish it) go to the bootstrap
 * broker too, which must lead the partition.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/kclient.h"
#include "tools/kraw.h"

static const char txn_help[] =
    "Usage: sluice transactions --bootstrap-server H:P (--list | --describe --transactional-id ID) [--json]\n"
    "       sluice transactions --bootstrap-server H:P --describe-producers --topic T --partition P "
    "[--json]\n"
    "       sluice transactions --bootstrap-server H:P --abort --topic T --partition P\n"
    "                           (--start-offset N | --producer-id ID --producer-epoch E [--coordinator-epoch "
    "C])\n"
    "\n"
    "Lists the transactional ids the broker coordinates (id, producer id, state), or describes one\n"
    "id's transaction: state, producer id and epoch, timeout, start time and partitions; shows a\n"
    "partition's producers with the first offset of their open transaction; or aborts a hanging\n"
    "transaction on a partition by writing its ABORT marker (docs/transactions.md). The last two ask\n"
    "the bootstrap broker, which must lead the partition.\n"
    "\n"
    "Options:\n"
    "  --list                     every id of the broker's transaction coordinator\n"
    "  --describe                 one id (with --transactional-id)\n"
    "  --transactional-id ID      the id to describe\n"
    "  --describe-producers       the producers of --topic/--partition\n"
    "  --abort                    write the ABORT marker of a producer's open transaction\n"
    "  --topic T, --partition P   the partition\n"
    "  --start-offset N           the open transaction that starts at offset N (its producer is looked up)\n"
    "  --producer-id ID, --producer-epoch E, --coordinator-epoch C\n"
    "                             the producer to abort for, without --start-offset\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok (3 when the broker is unreachable); 1 the broker refused; 2 bad flags;\n"
    "4 the id is not found.\n"
    "\n"
    "Examples:\n"
    "  sluice transactions --bootstrap-server localhost:9092 --list\n"
    "  sluice transactions --bootstrap-server localhost:9092 --describe --transactional-id orders-tx\n";

typedef struct txn_args {
    kc_opts k;
    bool list, describe, json, producers, abort;
    const char *id, *topic;
    int32_t partition;
    int64_t start_offset, producer_id;
    int32_t producer_epoch, coordinator_epoch;
} txn_args;

/* Encodes and sends one request; on success r is at the response body. */
static int call(kraw *c, txn_args *a, int16_t key, int16_t v, const void *req,
                size_t (*size)(int16_t, const void *), int (*enc)(wire_writer *, int16_t, const void *),
                uint8_t **body, wire_reader *r) {
    size_t len = size(v, req);
    if ((*body = malloc(len ? len : 1)) == NULL)
        return CLI_EFAIL;
    wire_writer w;
    wire_writer_init(&w, *body, len);
    if (enc(&w, v, req) != WIRE_OK || w.len != len) {
        cli_err("transactions", "cannot encode the request");
        return CLI_EFAIL;
    }
    return kraw_call(c, &a->k, key, v, *body, len, r);
}

static size_t list_size(int16_t v, const void *m) { return kafka_list_transactions_request_size(v, m); }
static int list_enc(wire_writer *w, int16_t v, const void *m) {
    return kafka_list_transactions_request_encode(w, v, m);
}
static size_t desc_size(int16_t v, const void *m) { return kafka_describe_transactions_request_size(v, m); }
static int desc_enc(wire_writer *w, int16_t v, const void *m) {
    return kafka_describe_transactions_request_encode(w, v, m);
}

static int do_list(kraw *c, txn_args *a, uint8_t **body) {
    int16_t v = kraw_version(c, KAFKA_API_LIST_TRANSACTIONS, 0);
    if (v < 0) {
        cli_err("transactions", "the broker does not serve ListTransactions");
        return CLI_EFAIL;
    }
    kafka_list_transactions_request req;
    kafka_list_transactions_request_init(&req);
    req.state_filters_count = 0;
    req.producer_id_filters_count = 0;
    wire_reader r;
    int rc = call(c, a, KAFKA_API_LIST_TRANSACTIONS, v, &req, list_size, list_enc, body, &r);
    if (rc != CLI_OK)
        return rc;
    kafka_list_transactions_response resp;
    kafka_list_transactions_response_init(&resp);
    if (kafka_list_transactions_response_decode(&r, v, &c->a, &resp) != WIRE_OK) {
        cli_err("transactions", "malformed ListTransactions response");
        return CLI_EFAIL;
    }
    if (resp.error_code != 0) {
        cli_err("transactions", "the broker refused: %s", kafka_error_name(resp.error_code));
        return kc_exit_for((rd_kafka_resp_err_t)resp.error_code);
    }
    if (a->json)
        fputs("{\"version\":1,\"transactions\":[", stdout);
    else
        printf("%-40s %-20s %s\n", "TransactionalId", "ProducerId", "TransactionState");
    for (int32_t i = 0; i < resp.transaction_states_count; i++) {
        const kafka_list_transactions_response_transaction_state *t = &resp.transaction_states[i];
        if (a->json) {
            printf("%s{\"transactionalId\":", i ? "," : "");
            cli_json_str(stdout, t->transactional_id.ptr, t->transactional_id.len);
            printf(",\"producerId\":%lld,\"state\":", (long long)t->producer_id);
            cli_json_str(stdout, t->transaction_state.ptr, t->transaction_state.len);
            putchar('}');
        } else {
            printf("%-40.*s %-20lld %.*s\n", (int)t->transactional_id.len, t->transactional_id.ptr,
                   (long long)t->producer_id, (int)t->transaction_state.len, t->transaction_state.ptr);
        }
    }
    if (a->json)
        fputs("]}\n", stdout);
    return CLI_OK;
}

static int do_describe(kraw *c, txn_args *a, uint8_t **body) {
    int16_t v = kraw_version(c, KAFKA_API_DESCRIBE_TRANSACTIONS, 0);
    if (v < 0) {
        cli_err("transactions", "the broker does not serve DescribeTransactions");
        return CLI_EFAIL;
    }
    kafka_describe_transactions_request req;
    kafka_describe_transactions_request_init(&req);
    kstr id = kstr_c(a->id);
    req.transactional_ids = &id;
    req.transactional_ids_count = 1;
    wire_reader r;
    int rc = call(c, a, KAFKA_API_DESCRIBE_TRANSACTIONS, v, &req, desc_size, desc_enc, body, &r);
    if (rc != CLI_OK)
        return rc;
    kafka_describe_transactions_response resp;
    kafka_describe_transactions_response_init(&resp);
    if (kafka_describe_transactions_response_decode(&r, v, &c->a, &resp) != WIRE_OK ||
        resp.transaction_states_count != 1) {
        cli_err("transactions", "malformed DescribeTransactions response");
        return CLI_EFAIL;
    }
    const kafka_describe_transactions_response_transaction_state *t = &resp.transaction_states[0];
    if (t->error_code != 0) {
        cli_err("transactions", "transactional id '%s': %s", a->id, kafka_error_name(t->error_code));
        return t->error_code == KAFKA_ERR_TRANSACTIONAL_ID_NOT_FOUND
                   ? CLI_ENOTFOUND
                   : kc_exit_for((rd_kafka_resp_err_t)t->error_code);
    }
    if (a->json) {
        fputs("{\"version\":1,\"transactionalId\":", stdout);
        cli_json_str(stdout, a->id, -1);
        fputs(",\"state\":", stdout);
        cli_json_str(stdout, t->transaction_state.ptr, t->transaction_state.len);
        printf(",\"producerId\":%lld,\"producerEpoch\":%d,\"timeoutMs\":%d,\"startTimeMs\":%lld,"
               "\"partitions\":[",
               (long long)t->producer_id, t->producer_epoch, t->transaction_timeout_ms,
               (long long)t->transaction_start_time_ms);
    } else {
        printf(
            "TransactionalId:   %s\nState:             %.*s\nProducerId:        %lld\nProducerEpoch:     %d\n"
            "TimeoutMs:         %d\nStartTimeMs:       %lld\nPartitions:       ",
            a->id, (int)t->transaction_state.len, t->transaction_state.ptr, (long long)t->producer_id,
            t->producer_epoch, t->transaction_timeout_ms, (long long)t->transaction_start_time_ms);
    }
    bool first = true;
    for (int32_t i = 0; i < t->topics_count; i++)
        for (int32_t j = 0; j < t->topics[i].partitions_count; j++) {
            char tp[320];
            snprintf(tp, sizeof tp, "%.*s-%d", (int)t->topics[i].topic.len, t->topics[i].topic.ptr,
                     t->topics[i].partitions[j]);
            if (a->json) {
                fputs(first ? "" : ",", stdout);
                cli_json_str(stdout, tp, -1);
            } else {
                printf("%s%s", first ? " " : ",", tp);
            }
            first = false;
        }
    fputs(a->json ? "]}\n" : "\n", stdout);
    return CLI_OK;
}

static size_t dp_size(int16_t v, const void *m) { return kafka_describe_producers_request_size(v, m); }
static int dp_enc(wire_writer *w, int16_t v, const void *m) {
    return kafka_describe_producers_request_encode(w, v, m);
}
static size_t wm_size(int16_t v, const void *m) { return kafka_write_txn_markers_request_size(v, m); }
static int wm_enc(wire_writer *w, int16_t v, const void *m) {
    return kafka_write_txn_markers_request_encode(w, v, m);
}

/* DescribeProducers of a->topic/a->partition: 0 with *out, or an exit code. */
static int producers_of(kraw *c, txn_args *a, uint8_t **body,
                        const kafka_describe_producers_response_partition_response **out) {
    int16_t v = kraw_version(c, KAFKA_API_DESCRIBE_PRODUCERS, 0);
    if (v < 0) {
        cli_err("transactions", "the broker does not serve DescribeProducers");
        return CLI_EFAIL;
    }
    kafka_describe_producers_request req;
    kafka_describe_producers_request_init(&req);
    kafka_describe_producers_request_topic_request t;
    kafka_describe_producers_request_topic_request_init(&t);
    t.name = kstr_c(a->topic);
    t.partition_indexes = &a->partition;
    t.partition_indexes_count = 1;
    req.topics = &t;
    req.topics_count = 1;
    wire_reader r;
    int rc = call(c, a, KAFKA_API_DESCRIBE_PRODUCERS, v, &req, dp_size, dp_enc, body, &r);
    if (rc != CLI_OK)
        return rc;
    kafka_describe_producers_response *resp = arena_alloc(&c->a, sizeof *resp);
    if (resp == NULL)
        return CLI_EFAIL;
    kafka_describe_producers_response_init(resp);
    if (kafka_describe_producers_response_decode(&r, v, &c->a, resp) != WIRE_OK || resp->topics_count != 1 ||
        resp->topics[0].partitions_count != 1) {
        cli_err("transactions", "malformed DescribeProducers response");
        return CLI_EFAIL;
    }
    const kafka_describe_producers_response_partition_response *pr = &resp->topics[0].partitions[0];
    if (pr->error_code != 0) {
        cli_err("transactions", "%s-%d: %s", a->topic, a->partition, kafka_error_name(pr->error_code));
        return pr->error_code == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION
                   ? CLI_ENOTFOUND
                   : kc_exit_for((rd_kafka_resp_err_t)pr->error_code);
    }
    *out = pr;
    return CLI_OK;
}

static int do_producers(kraw *c, txn_args *a, uint8_t **body) {
    const kafka_describe_producers_response_partition_response *pr = NULL;
    int rc = producers_of(c, a, body, &pr);
    if (rc != CLI_OK)
        return rc;
    if (a->json)
        fputs("{\"version\":1,\"producers\":[", stdout);
    else
        printf("%-20s %-14s %-23s %-13s %-15s %s\n", "ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch",
               "LastSequence", "LastTimestamp", "CurrentTransactionStartOffset");
    for (int32_t i = 0; i < pr->active_producers_count; i++) {
        const kafka_describe_producers_response_producer_state *p = &pr->active_producers[i];
        if (a->json)
            printf("%s{\"producerId\":%lld,\"producerEpoch\":%d,\"coordinatorEpoch\":%d,\"lastSequence\":%d,"
                   "\"lastTimestamp\":%lld,\"currentTransactionStartOffset\":%lld}",
                   i ? "," : "", (long long)p->producer_id, p->producer_epoch, p->coordinator_epoch,
                   p->last_sequence, (long long)p->last_timestamp, (long long)p->current_txn_start_offset);
        else
            printf("%-20lld %-14d %-23d %-13d %-15lld %lld\n", (long long)p->producer_id, p->producer_epoch,
                   p->coordinator_epoch, p->last_sequence, (long long)p->last_timestamp,
                   (long long)p->current_txn_start_offset);
    }
    if (a->json)
        fputs("]}\n", stdout);
    return CLI_OK;
}

static int do_abort(kraw *c, txn_args *a, uint8_t **body) {
    if (a->start_offset >= 0) {
        const kafka_describe_producers_response_partition_response *pr = NULL;
        int rc = producers_of(c, a, body, &pr);
        if (rc != CLI_OK)
            return rc;
        free(*body);
        *body = NULL;
        const kafka_describe_producers_response_producer_state *found = NULL;
        for (int32_t i = 0; i < pr->active_producers_count && found == NULL; i++)
            if (pr->active_producers[i].current_txn_start_offset == a->start_offset)
                found = &pr->active_producers[i];
        if (found == NULL) {
            cli_err("transactions", "%s-%d: no open transaction starts at offset %lld", a->topic,
                    a->partition, (long long)a->start_offset);
            return CLI_ENOTFOUND;
        }
        a->producer_id = found->producer_id;
        a->producer_epoch = found->producer_epoch;
        a->coordinator_epoch = found->coordinator_epoch;
    }
    int16_t v = kraw_version(c, KAFKA_API_WRITE_TXN_MARKERS, 1);
    if (v < 0) {
        cli_err("transactions", "the broker does not serve WriteTxnMarkers");
        return CLI_EFAIL;
    }
    kafka_write_txn_markers_request req;
    kafka_write_txn_markers_request_init(&req);
    kafka_write_txn_markers_request_writable_txn_marker m;
    kafka_write_txn_markers_request_writable_txn_marker_init(&m);
    kafka_write_txn_markers_request_writable_txn_marker_topic t;
    kafka_write_txn_markers_request_writable_txn_marker_topic_init(&t);
    t.name = kstr_c(a->topic);
    t.partition_indexes = &a->partition;
    t.partition_indexes_count = 1;
    m.producer_id = a->producer_id;
    m.producer_epoch = (int16_t)a->producer_epoch;
    m.transaction_result = false;
    m.coordinator_epoch = a->coordinator_epoch;
    m.topics = &t;
    m.topics_count = 1;
    req.markers = &m;
    req.markers_count = 1;
    wire_reader r;
    int rc = call(c, a, KAFKA_API_WRITE_TXN_MARKERS, v, &req, wm_size, wm_enc, body, &r);
    if (rc != CLI_OK)
        return rc;
    kafka_write_txn_markers_response resp;
    kafka_write_txn_markers_response_init(&resp);
    if (kafka_write_txn_markers_response_decode(&r, v, &c->a, &resp) != WIRE_OK || resp.markers_count != 1 ||
        resp.markers[0].topics_count != 1 || resp.markers[0].topics[0].partitions_count != 1) {
        cli_err("transactions", "malformed WriteTxnMarkers response");
        return CLI_EFAIL;
    }
    int16_t err = resp.markers[0].topics[0].partitions[0].error_code;
    if (err != 0) {
        cli_err("transactions", "aborting producer %lld's transaction on %s-%d: %s",
                (long long)a->producer_id, a->topic, a->partition, kafka_error_name(err));
        return kc_exit_for((rd_kafka_resp_err_t)err);
    }
    printf("aborted the open transaction of producer %lld (epoch %d) on %s-%d\n", (long long)a->producer_id,
           a->producer_epoch, a->topic, a->partition);
    return CLI_OK;
}

int cmd_transactions(int argc, char **argv) {
    enum { O_LIST = 1, O_DESC, O_ID, O_PRODS, O_ABORT, O_TOPIC, O_PART, O_START, O_PID, O_PEPOCH, O_CEPOCH };
    static const struct option opts[] = {
        {"list", no_argument, NULL, O_LIST},
        {"describe", no_argument, NULL, O_DESC},
        {"transactional-id", required_argument, NULL, O_ID},
        {"describe-producers", no_argument, NULL, O_PRODS},
        {"abort", no_argument, NULL, O_ABORT},
        {"topic", required_argument, NULL, O_TOPIC},
        {"partition", required_argument, NULL, O_PART},
        {"start-offset", required_argument, NULL, O_START},
        {"producer-id", required_argument, NULL, O_PID},
        {"producer-epoch", required_argument, NULL, O_PEPOCH},
        {"coordinator-epoch", required_argument, NULL, O_CEPOCH},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static txn_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "transactions";
    a.partition = -1;
    a.start_offset = -1;
    a.producer_id = -1;
    a.producer_epoch = -1;
    a.coordinator_epoch = -1;
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
            a.list = true;
            break;
        case O_DESC:
            a.describe = true;
            break;
        case O_ID:
            a.id = optarg;
            break;
        case O_PRODS:
            a.producers = true;
            break;
        case O_ABORT:
            a.abort = true;
            break;
        case O_TOPIC:
            a.topic = optarg;
            break;
        case O_PART:
        case O_PEPOCH:
        case O_CEPOCH:
        case O_START:
        case O_PID: {
            static const char *const names[] = {[O_PART] = "--partition",
                                                [O_PEPOCH] = "--producer-epoch",
                                                [O_CEPOCH] = "--coordinator-epoch",
                                                [O_START] = "--start-offset",
                                                [O_PID] = "--producer-id"};
            int64_t max = ch == O_PEPOCH ? 32767 : ch == O_PART || ch == O_CEPOCH ? INT32_MAX : INT64_MAX, v;
            if (!cli_parse_i64(optarg, 0, max, &v))
                return cli_usage_err("transactions", "%s needs a number from 0 to %lld, not '%s'", names[ch],
                                     (long long)max, optarg);
            if (ch == O_PART)
                a.partition = (int32_t)v;
            else if (ch == O_PEPOCH)
                a.producer_epoch = (int32_t)v;
            else if (ch == O_CEPOCH)
                a.coordinator_epoch = (int32_t)v;
            else if (ch == O_START)
                a.start_offset = v;
            else
                a.producer_id = v;
            break;
        }
        case 'h':
            fputs(txn_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("transactions", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("transactions", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("transactions", "unexpected argument '%s'", argv[optind]);
    if ((int)a.list + (int)a.describe + (int)a.producers + (int)a.abort != 1)
        return cli_usage_err(
            "transactions",
            "exactly one of --list, --describe, --describe-producers and --abort is required");
    if (a.describe && (a.id == NULL || a.id[0] == 0))
        return cli_usage_err("transactions", "--describe needs --transactional-id");
    if ((a.producers || a.abort) && (a.topic == NULL || a.topic[0] == 0 || a.partition < 0))
        return cli_usage_err("transactions", "%s needs --topic and --partition",
                             a.abort ? "--abort" : "--describe-producers");
    if (a.abort && (a.start_offset >= 0) == (a.producer_id >= 0 || a.producer_epoch >= 0))
        return cli_usage_err("transactions", "--abort needs either --start-offset or --producer-id with "
                                             "--producer-epoch");
    if (a.abort && a.start_offset < 0 && (a.producer_id < 0 || a.producer_epoch < 0))
        return cli_usage_err("transactions", "--abort needs --producer-id and --producer-epoch together");
    if ((rc = kc_check(&a.k)) != CLI_OK)
        return rc;
    kraw c;
    uint8_t *body = NULL;
    rc = kraw_open(&c, &a.k);
    if (rc == CLI_OK)
        rc = a.list        ? do_list(&c, &a, &body)
             : a.describe  ? do_describe(&c, &a, &body)
             : a.producers ? do_producers(&c, &a, &body)
                           : do_abort(&c, &a, &body);
    free(body);
    kraw_close(&c);
    return rc;
}
