/*
 * main_sluice.c - the `sluice` command line: one program whose subcommands
 * stand in for Kafka's operator tools (kafka-topics, kafka-console-producer,
 * kafka-console-consumer, kafka-consumer-groups, kafka-configs, the perf-test
 * tools, kafka-log-dirs, kafka-dump-log and
 * MirrorMaker 2). This file only dispatches; each subcommand lives
 * in its own module under src/tools/ and returns a cli_exit code.
 */
#include <stdio.h>
#include <string.h>

#include "core/version.h"
#include "tools/cli.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"topics", cmd_topics, "create, list, describe, alter and delete topics (kafka-topics)"},
    {"produce", cmd_produce, "write records from stdin or a file (kafka-console-producer)"},
    {"consume", cmd_consume, "print records (kafka-console-consumer)"},
    {"groups", cmd_groups, "list, describe, delete consumer groups; reset offsets (kafka-consumer-groups)"},
    {"configs", cmd_configs, "describe and alter topic and broker configs (kafka-configs)"},
    {"perf", cmd_perf, "producer and consumer load tests (kafka-*-perf-test)"},
    {"transactions", cmd_transactions,
     "transactional ids, a transaction, a partition's producers; abort (kafka-transactions)"},
    {"log-dirs", cmd_log_dirs, "partitions and set-aside directories per log directory (kafka-log-dirs)"},
    {"acls", cmd_acls, "list, add and remove ACLs (kafka-acls)"},
    {"quotas", cmd_quotas, "describe and alter client quotas (kafka-configs --entity-type users|clients)"},
    {"mirror", cmd_mirror, "copy topics and group offsets between clusters (MirrorMaker 2)"},
    {"dump-log", cmd_dump_log, "decode and check segment and index files offline (kafka-dump-log)"},
    {"cluster", cmd_cluster, "brokers, active controller and metadata quorum (kafka-metadata-quorum)"},
    {"leader-election", cmd_leader_election,
     "elect preferred or unclean partition leaders (kafka-leader-election)"},
    {"storage", cmd_storage, "format log directories for a cluster; new cluster ids (kafka-storage)"},
};

static void usage(FILE *f) {
    fputs("Usage: sluice <command> [options]    (sluice <command> --help for its flags and examples)\n\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nExit codes: 0 ok, 1 operation failed, 2 bad usage, 3 broker unreachable or timed out,\n"
          "4 topic/group/file not found, 5 corrupt data found (dump-log), 130 interrupted.\n"
          "\nExamples:\n"
          "  sluice topics --bootstrap-server localhost:9092 --create --topic orders --partitions 6\n"
          "  echo hello | sluice produce --bootstrap-server localhost:9092 --topic orders\n"
          "  sluice consume --bootstrap-server localhost:9092 --topic orders --from-beginning --max-messages "
          "1\n",
          f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_EUSAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sluice %s\n", sluice_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sluice: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EUSAGE;
}
