/*
 * kclient.h - how `sluice` subcommands reach a broker: librdkafka handles
 * configured from the common flags, a reachability probe, admin-result
 * waiting and the mapping of Kafka errors to exit codes.
 *
 * Owns no global state except the librdkafka log switch. Every wait is
 * bounded by a timeout given by the caller (--timeout-ms or a default), so no
 * subcommand can hang on a silent broker.
 *
 * Why probe first: librdkafka retries a refused connection quietly until the
 * request times out, so "broker down" would otherwise look like a slow
 * broker. A plain TCP connect to the bootstrap list tells the two apart in
 * milliseconds and gives the operator the OS's reason.
 */
#ifndef SLUICE_TOOLS_KCLIENT_H
#define SLUICE_TOOLS_KCLIENT_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "tools/cli.h"

/* Client settings given with --command-config/--producer-property and the like. */
#define KC_MAX_PROPS 64

typedef struct kc_opts {
    const char *cmd;       /* subcommand name, for messages */
    const char *bootstrap; /* --bootstrap-server */
    const char *config_file;
    const char *props[KC_MAX_PROPS]; /* "key=value" */
    int nprops;
    int timeout_ms; /* for admin calls and metadata */
    bool quiet;     /* kraw: best-effort calls print no errors */
} kc_opts;

/* Adds one "key=value" property; returns CLI_EUSAGE (after a message) if it
 * is malformed or there are too many. */
int kc_add_prop(kc_opts *o, const char *kv);

/* Checks the common flags: bootstrap given. Returns CLI_OK or CLI_EUSAGE. */
int kc_check(const kc_opts *o);

/* Tries a TCP connection to each bootstrap server (up to timeout_ms in all).
 * Returns CLI_OK if one accepts, else prints why and returns CLI_EUNREACH. */
int kc_probe(const kc_opts *o);

/* Makes a configuration with bootstrap.servers, the --command-config file
 * (Java-style properties: key=value, # comments) and the props, in that
 * order. NULL (after a message) on a bad setting. */
rd_kafka_conf_t *kc_conf(const kc_opts *o);
/* Applies a Java-style properties file (key=value lines; blank lines and
 * lines starting # or ! skipped; at most 10000 lines) to conf. False after a
 * message naming the file or the bad setting. */
bool kc_conf_apply_file(const kc_opts *o, rd_kafka_conf_t *conf, const char *path);

/* Creates a client of the given type from conf (conf is consumed, even on
 * failure). NULL after a message. */
rd_kafka_t *kc_new(const kc_opts *o, rd_kafka_type_t type, rd_kafka_conf_t *conf);

/* Admin options with operation and request timeouts from o. */
rd_kafka_AdminOptions_t *kc_admin_options(const kc_opts *o, rd_kafka_t *rk, rd_kafka_admin_op_t op);

/* Waits on q for an event of type want, up to the timeout. Returns the event
 * (caller destroys it) or NULL after printing a message. A result event
 * carrying a request-level error is printed and destroyed too; *rc_out gets
 * the exit code for the failure. */
rd_kafka_event_t *kc_wait(const kc_opts *o, rd_kafka_queue_t *q, rd_kafka_event_type_t want, int *rc_out);

/* Exit code for a Kafka or librdkafka error. */
int kc_exit_for(rd_kafka_resp_err_t err);

/* Metadata for all topics (never auto-creates). NULL after a message with *rc_out set. */
const struct rd_kafka_metadata *kc_metadata(const kc_opts *o, rd_kafka_t *rk, int *rc_out);

/* Metadata naming topic, asked a few times over about a second because a
 * topic created a moment ago may not be visible yet. Returns the topic (with
 * *md_out to destroy) or NULL after "topic does not exist" (CLI_ENOTFOUND) or
 * another failure, with *rc_out set. */
const rd_kafka_metadata_topic_t *kc_wait_topic(const kc_opts *o, rd_kafka_t *rk, const char *topic,
                                               const struct rd_kafka_metadata **md_out, int *rc_out);
/* For producers: like kc_wait_topic, but a topic that does not exist is
 * requested with auto-creation allowed (as Kafka's console producer and
 * producer perf test do), so a broker with auto.create.topics.enable=true
 * creates it; one that refuses gets a message saying so (CLI_ENOTFOUND). */
const rd_kafka_metadata_topic_t *kc_wait_topic_for_produce(const kc_opts *o, rd_kafka_t *rk,
                                                           const char *topic,
                                                           const struct rd_kafka_metadata **md_out,
                                                           int *rc_out);

/* Returns the topic in md, or NULL. */
const rd_kafka_metadata_topic_t *kc_find_topic(const struct rd_kafka_metadata *md, const char *topic);

/* Common flag names shared by the broker-facing subcommands, so getopt_long
 * tables can include them. Values start at 0x1000 to stay clear of letters. */
enum {
    KC_OPT_BOOTSTRAP = 0x1000,
    KC_OPT_COMMAND_CONFIG,
    KC_OPT_TIMEOUT,
    KC_OPT_JSON,
    KC_OPT_HELP_LONG,
};
#define KC_COMMON_OPTIONS                                                                                    \
    {"bootstrap-server", required_argument, NULL, KC_OPT_BOOTSTRAP},                                         \
        {"command-config", required_argument, NULL, KC_OPT_COMMAND_CONFIG},                                  \
        {"timeout-ms", required_argument, NULL, KC_OPT_TIMEOUT}, {"json", no_argument, NULL, KC_OPT_JSON}, { \
        "help", no_argument, NULL, 'h'                                                                       \
    }

/* Handles one of the common options. Returns 1 if handled, 0 if not one of
 * them, or -CLI_EUSAGE on a bad value. */
int kc_common_opt(kc_opts *o, int ch, const char *arg, bool *json);

#define KC_COMMON_HELP                                                                     \
    "Connection:\n"                                                                        \
    "  --bootstrap-server H:P[,H:P]  broker(s) to contact first (required)\n"              \
    "  --command-config FILE         librdkafka client settings, one key=value per line\n" \
    "  --timeout-ms N                give up on the broker after N ms (default 15000)\n"   \
    "  --json                        machine-readable JSON on stdout\n"                    \
    "  -h, --help                    this text\n"

#endif
