/*
 * transactions.c - `sluice transactions`: the transactional ids a broker
 * coordinates (kafka-transactions.sh list) and one id's transaction
 * (kafka-transactions.sh describe), through Sluice's own codec
 * (ListTransactions, DescribeTransactions; tools/kraw.h: librdkafka 2.0 has
 * no call for them). Both ask the bootstrap broker: on a single node it
 * coordinates every id; in a cluster `--list` shows that broker's ids and
 * `--describe` answers NOT_COORDINATOR for an id coordinated elsewhere.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/kclient.h"
#include "tools/kraw.h"

static const char txn_help[] =
    "Usage: sluice transactions --bootstrap-server H:P (--list | --describe --transactional-id ID) [--json]\n"
    "\n"
    "Lists the transactional ids the broker coordinates (id, producer id, state), or describes one\n"
    "id's transaction: state, producer id and epoch, timeout, start time and partitions\n"
    "(docs/transactions.md).\n"
    "\n"
    "Options:\n"
    "  --list                     every id of the broker's transaction coordinator\n"
    "  --describe                 one id (with --transactional-id)\n"
    "  --transactional-id ID      the id to describe\n" KC_COMMON_HELP "\n"
    "Exit codes: 0 ok (3 when the broker is unreachable); 1 the broker refused; 2 bad flags;\n"
    "4 the id is not found.\n"
    "\n"
    "Examples:\n"
    "  sluice transactions --bootstrap-server localhost:9092 --list\n"
    "  sluice transactions --bootstrap-server localhost:9092 --describe --transactional-id orders-tx\n";

typedef struct txn_args {
    kc_opts k;
    bool list, describe, json;
    const char *id;
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

int cmd_transactions(int argc, char **argv) {
    enum { O_LIST = 1, O_DESC, O_ID };
    static const struct option opts[] = {
        {"list", no_argument, NULL, O_LIST},
        {"describe", no_argument, NULL, O_DESC},
        {"transactional-id", required_argument, NULL, O_ID},
        KC_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static txn_args a;
    memset(&a, 0, sizeof a);
    a.k.cmd = "transactions";
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
    if (a.list == a.describe)
        return cli_usage_err("transactions", "exactly one of --list and --describe is required");
    if (a.describe && (a.id == NULL || a.id[0] == 0))
        return cli_usage_err("transactions", "--describe needs --transactional-id");
    if ((rc = kc_check(&a.k)) != CLI_OK)
        return rc;
    kraw c;
    uint8_t *body = NULL;
    rc = kraw_open(&c, &a.k);
    if (rc == CLI_OK)
        rc = a.list ? do_list(&c, &a, &body) : do_describe(&c, &a, &body);
    free(body);
    kraw_close(&c);
    return rc;
}
