/*
 * config_docs.c - docs/configuration.md, generated from the two key tables
 * (the broker's, config_keys.c, and the topic keys, config/topic_keys.c) so
 * the reference cannot drift from the code: main_config_docs.c prints it,
 * and test_config fails when the committed file differs.
 *
 * One markdown row per key: type (with the unit of a duration), default,
 * valid values (the row's own words when its check narrows what type and
 * range say), whether the broker acts on it, and its doc line; broker rows
 * list their synonyms, topic rows the broker keys their default comes from.
 */
#include "broker/config.h"

#include <assert.h>
#include <stdio.h>

#include "broker/config_internal.h"
#include "config/text.h"

/* Writes s as a markdown table cell, escaping the column separator. */
static void cell(FILE *out, const char *s) {
    fputs("| ", out);
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc(' ', out);
}

static void type_text(const config_def *d, char *buf, size_t n) {
    static const char *const names[] = {"int", "long", "boolean", "double", "string", "string", "list", ""};
    if (d->type == CONFIG_DURATION)
        config_fmt(buf, n, "%s (%s)", d->unit_ms == 1 ? "long" : "int",
                   d->unit_ms == CONFIG_HOUR_MS     ? "hours"
                   : d->unit_ms == CONFIG_MINUTE_MS ? "minutes"
                                                    : "ms");
    else if (d->flags & CONFIG_F_SHORT)
        config_fmt(buf, n, "short");
    else
        config_fmt(buf, n, "%s", names[d->type]);
}

static void valid_text(const config_def *d, char *buf, size_t n) {
    char list[256];
    if (d->valid != NULL) {
        config_fmt(buf, n, "%s", d->valid);
        return;
    }
    switch (d->type) {
    case CONFIG_INT:
    case CONFIG_LONG:
    case CONFIG_DURATION:
    case CONFIG_DOUBLE:
        config_range_text(d, true, buf, n);
        break;
    case CONFIG_BOOL:
        config_join(config_bool_values, buf, n);
        break;
    case CONFIG_ENUM:
        config_join(d->allowed, list, sizeof list);
        config_fmt(buf, n, "%s%s", list, (d->flags & CONFIG_F_ICASE) ? " (any case)" : "");
        break;
    case CONFIG_LIST:
        if (d->allowed) {
            config_join(d->allowed, list, sizeof list);
            config_fmt(buf, n, "one or more of: %s", list);
        } else {
            config_fmt(buf, n, "comma-separated list");
        }
        break;
    case CONFIG_STRING:
        config_fmt(buf, n, "any string");
        break;
    }
}

static void default_text(const config_def *d, char *buf, size_t n) {
    if (d->dflt == NULL)
        config_fmt(buf, n, "null");
    else if (d->dflt[0] == '\0')
        config_fmt(buf, n, "(empty)");
    else
        config_fmt(buf, n, "`%s`", d->dflt);
}

static const char docs_intro[] =
    "# Sluice configuration reference\n"
    "\n"
    "<!-- Generated from the key tables in src/broker/config_keys.c and src/config/topic_keys.c by\n"
    "     config_write_docs(); do not edit.\n"
    "     Regenerate with: build/rel/config_docs > docs/configuration.md\n"
    "     The unit test test_config fails when this file and the tables disagree. -->\n"
    "\n"
    "`sluiced` reads a `server.properties` file that uses Kafka's key names, so an existing Kafka file\n"
    "mostly carries over. Without a file the broker starts as a single node listening on\n"
    "`localhost:9092` with its data in `./data`.\n"
    "\n"
    "## How values are read\n"
    "\n"
    "- File syntax is Java properties: `key=value`, `key: value` or `key value`; lines starting with `#`\n"
    "  or `!` are comments; blank lines are skipped; whitespace around keys and values is removed; a line\n"
    "  ending in a backslash continues on the next one; `\\t`, `\\n`, `\\uXXXX` and `\\<char>` escapes\n"
    "  are understood. If a key appears twice, the later line wins.\n"
    "- Precedence, lowest first: built-in default, the file, the environment (`SLUICE_LOG_LEVEL`, for\n"
    "  `log.level` only), then each `--override key=value` on the command line in order.\n"
    "- Some settings have several keys (synonyms), for example `log.retention.hours`,\n"
    "  `log.retention.minutes` and `log.retention.ms`. The most precise key that is set wins, wherever it\n"
    "  was set: an hours value on the command line does not beat a milliseconds value in the file.\n"
    "- An unknown key is logged as a warning and ignored. A value of the wrong type, out of range or not\n"
    "  among the allowed values is an error naming the key, the value and what is allowed, and the broker\n"
    "  does not start.\n"
    "- Topic-level keys (at the end) can be given when a topic is created or altered; a topic without an\n"
    "  override uses the broker key named in the \"Broker default from\" column.\n"
    "\n"
    "## Status\n"
    "\n"
    "Sluice is being built. Every key below is *parsed and validated*; the Status column says\n"
    "*in effect* once the broker acts on the key. Defaults are Apache Kafka 4.0's unless the description\n"
    "says why Sluice differs.\n";

/* The first four cells of a key's row: name, type, default, valid values. */
static void row_start(FILE *out, const config_def *d) {
    char type[64], valid[256], dflt[128];
    type_text(d, type, sizeof type);
    valid_text(d, valid, sizeof valid);
    default_text(d, dflt, sizeof dflt);
    fprintf(out, "| `%s` ", d->name);
    cell(out, type);
    cell(out, dflt);
    cell(out, valid);
}

int config_write_docs(FILE *out) {
    size_t n_broker, n_topic;
    const config_def *broker_defs = config_broker_defs(&n_broker);
    const config_def *topic_defs = config_topic_defs(&n_topic);
    const config_def *chain[8];

    fputs(docs_intro, out);
    fputs("\n## Broker keys\n", out);
    for (size_t i = 0; i < n_broker; i++) {
        const config_def *d = &broker_defs[i];
        if (d->section != NULL) {
            fprintf(out, "\n### %s\n\n", d->section);
            fputs("| Key | Type | Default | Valid values | Status | Description |\n", out);
            fputs("|---|---|---|---|---|---|\n", out);
        }
        assert(i > 0 || d->section != NULL);
        row_start(out, d);
        cell(out, (d->flags & CONFIG_F_ACTIVE) ? "in effect" : "parsed and validated");
        fputs("| ", out);
        fputs(d->doc, out);
        size_t cn = config_broker_chain(d, chain, 8);
        if (cn > 1) {
            fputs(" Synonyms, most precise first:", out);
            for (size_t k = 0; k < cn; k++)
                fprintf(out, "%s `%s`", k ? "," : "", chain[k]->name);
            fputs(".", out);
        }
        fputs(" |\n", out);
    }

    fputs("\n## Topic keys\n\n", out);
    fputs("| Key | Type | Default | Valid values | Broker default from | Description |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < n_topic; i++) {
        const config_def *d = &topic_defs[i];
        row_start(out, d);
        fputs("| ", out);
        size_t cn = config_broker_chain(config_topic_broker_synonym(d), chain, 8);
        for (size_t k = 0; k < cn; k++)
            fprintf(out, "%s`%s`", k ? ", " : "", chain[k]->name);
        fputs(" | ", out);
        fputs(d->doc, out);
        fputs(" |\n", out);
    }
    return ferror(out) ? -1 : 0;
}
