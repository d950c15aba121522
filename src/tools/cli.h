/*
 * cli.h - what every `sluice` subcommand shares: exit codes, strict number
 * parsing, help printing, JSON string output and a terminal progress line.
 *
 * Nothing here touches the network or librdkafka, so offline tools (dump-log)
 * and unit tests link only this module. Broker-facing helpers live in
 * tools/kclient.h.
 *
 * Conventions every subcommand follows:
 *   - errors go to stderr as one line "sluice <cmd>: <what failed>: <why>";
 *   - data goes to stdout, either as text for people or (with --json) as one
 *     JSON document, so scripts never parse the text form;
 *   - the exit code says which kind of failure happened (cli_exit below;
 *     docs/cli.md lists them).
 */
#ifndef SLUICE_TOOLS_CLI_H
#define SLUICE_TOOLS_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes. Stable: scripts depend on them. */
typedef enum cli_exit {
    CLI_OK = 0,          /* done, everything as asked */
    CLI_EFAIL = 1,       /* the broker refused or the operation failed part-way */
    CLI_EUSAGE = 2,      /* bad flags or arguments; nothing was done */
    CLI_EUNREACH = 3,    /* no broker reachable, or it did not answer in time */
    CLI_ENOTFOUND = 4,   /* a named topic, group or file does not exist */
    CLI_ECORRUPT = 5,    /* dump-log found corrupt or inconsistent data */
    CLI_EINTERRUPT = 130 /* stopped by SIGINT/SIGTERM before finishing */
} cli_exit;

/* Longest single flag value accepted (topic names, config strings, ...). */
#define CLI_ARG_MAX 4096

/* Prints "sluice <cmd>: <message>\n" to stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As cli_err, then "Try 'sluice <cmd> --help'." and returns CLI_EUSAGE. */
int cli_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict decimal parse of the whole string into [min, max]. Accepts an
 * optional sign; rejects empty strings, trailing junk and overflow. */
bool cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Parses a size with an optional k/m/g suffix (powers of 1024). */
bool cli_parse_size(const char *s, int64_t max, int64_t *out);

/* Splits "key<sep>value" at the first sep: *key gets a pointer to a NUL-
 * terminated copy in buf (cap bytes). Returns false if sep is absent, the key
 * is empty or it does not fit. */
bool cli_split_kv(const char *s, char sep, char *buf, size_t cap, const char **key, const char **value);

/* Writes s (len bytes, len < 0 means NUL-terminated) as a JSON string with
 * quotes. Invalid UTF-8 bytes come out as U+FFFD so the output always parses. */
void cli_json_str(FILE *f, const char *s, ptrdiff_t len);

/* Writes len bytes for people: printable ASCII and valid UTF-8 as is, other
 * bytes as \xNN. Used for keys and values in text output. */
void cli_print_bytes(FILE *f, const void *p, size_t len);

/* True when stderr is a terminal, so progress lines make sense. */
bool cli_progress_enabled(void);
/* Rewrites the progress line on stderr ("\r...") at most every 500 ms unless
 * force is set; a no-op when not enabled. cli_progress_done clears it. */
void cli_progress(bool force, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_progress_done(void);

/* Monotonic clock in microseconds. */
int64_t cli_now_us(void);
/* Wall clock in milliseconds since the epoch. */
int64_t cli_wall_ms(void);

/* Set by SIGINT/SIGTERM once cli_catch_signals() was called; long loops poll it. */
extern volatile int cli_stop;
void cli_catch_signals(void);

/* Subcommand entry points (argv[0] is the subcommand's name). */
int cmd_dump_log(int argc, char **argv);
int cmd_topics(int argc, char **argv);
int cmd_produce(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_groups(int argc, char **argv);
int cmd_configs(int argc, char **argv);
int cmd_perf(int argc, char **argv);
int cmd_log_dirs(int argc, char **argv);
int cmd_acls(int argc, char **argv);
int cmd_quotas(int argc, char **argv);
int cmd_transactions(int argc, char **argv);
int cmd_mirror(int argc, char **argv);
int cmd_mirror_dump(int argc, char **argv); /* `sluice mirror dump` */
int cmd_storage(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_leader_election(int argc, char **argv);

#endif
