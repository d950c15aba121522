/*
 * config/text.h - the text helpers all configuration code shares: bounded
 * message formatting, trimming, the comma-separated syntax of list values,
 * and "a, b, c" joins of allowed values for messages and docs.
 *
 * Only config_strndup allocates (from the caller's arena): a span points into the caller's text and lives as
 * long as it does. Whitespace is what Java properties trim (space, tab, form
 * feed, CR, LF). Used by src/config and by the broker's loading code
 * (src/broker/config_*.c); other modules have no reason to.
 */
#ifndef SLUICE_CONFIG_TEXT_H
#define SLUICE_CONFIG_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

/* A piece of someone else's text: [p, p + n), not NUL-terminated. */
typedef struct config_span {
    const char *p;
    size_t n;
} config_span;

/* snprintf that never fails loudly: messages are best effort and bounded.
 * n == 0 writes nothing. */
void config_fmt(char *buf, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));

bool config_is_ws(char c);

/* A trimmed view of s[0, n): [*start, *start + *len). */
void config_trim(const char *s, size_t n, const char **start, size_t *len);

/* Splits a list value on commas, trimming each item. An empty (or all-blank)
 * value is the empty list; an empty item is an error. Returns the count
 * (<= max), or -1 with why filled. */
int config_split_list(const char *v, config_span *out, int max, char *why, size_t whyn);

/* s equals the literal, byte for byte or ignoring ASCII case. */
bool config_span_eq(config_span s, const char *lit, bool icase);

/* A NUL-terminated copy of s[0, n) in a; NULL when a is full. */
const char *config_strndup(arena *a, const char *s, size_t n);

/* Writes "a, b, c" for a NULL-terminated list, cut to fit n. */
void config_join(const char *const *items, char *buf, size_t n);

#endif
