/*
 * config/props.h - the syntax of a Java properties file, as server.properties
 * is written: key/value pairs in file order, nothing about what the keys
 * mean. The broker's loader (src/broker/config_load.c) feeds each pair to
 * its key table; any other reader of properties text can use it the same way.
 *
 * Bounds: a logical line (after continuations) is at most CONFIG_LINE_MAX
 * bytes; the parser never reads past len and holds one heap block of
 * 3 * (CONFIG_LINE_MAX + 1) bytes while it runs.
 */
#ifndef SLUICE_CONFIG_PROPS_H
#define SLUICE_CONFIG_PROPS_H

#include <stddef.h>

#include "config/schema.h"

#define CONFIG_LINE_MAX 8192 /* bytes in one logical line (after continuations) */

/* Called once per key/value pair in file order; line is where the pair began.
 * Return non-zero to stop parsing (that value is returned). */
typedef int (*config_props_fn)(void *ctx, const char *key, const char *value, int line);

/* Parses Java-properties text: key=value, key:value or "key value"; # and !
 * comment lines; blank lines; leading whitespace and trailing whitespace of
 * values trimmed; a line ending in an odd number of backslashes continues on
 * the next line; escapes \t \n \r \f \uXXXX and \<char>. Never reads past
 * len. Returns 0, the callback's non-zero value, or -1 with err filled for a
 * logical line longer than CONFIG_LINE_MAX or a malformed \u escape. */
int config_props_parse(const char *text, size_t len, config_props_fn fn, void *ctx, char err[CONFIG_ERR_MAX]);

#endif
