/*
 * config/text.c - the shared text helpers of the configuration code (see
 * text.h): formatting, trimming, list splitting, joining. Pure functions
 * over the caller's buffers.
 */
#include "config/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void config_fmt(char *buf, size_t n, const char *f, ...) {
    va_list ap;
    if (n == 0)
        return;
    va_start(ap, f);
    vsnprintf(buf, n, f, ap);
    va_end(ap);
}

bool config_is_ws(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\r' || c == '\n'; }

void config_trim(const char *s, size_t n, const char **start, size_t *len) {
    while (n > 0 && config_is_ws(*s)) {
        s++;
        n--;
    }
    while (n > 0 && config_is_ws(s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

int config_split_list(const char *v, config_span *out, int max, char *why, size_t whyn) {
    const char *s;
    size_t n;
    int count = 0;
    config_trim(v, strlen(v), &s, &n);
    if (n == 0)
        return 0;
    for (;;) {
        const char *comma = memchr(s, ',', n);
        size_t len = comma ? (size_t)(comma - s) : n;
        config_span item;
        config_trim(s, len, &item.p, &item.n);
        if (item.n == 0) {
            config_fmt(why, whyn, "empty list item");
            return -1;
        }
        if (count == max) {
            config_fmt(why, whyn, "more than %d list items", max);
            return -1;
        }
        out[count++] = item;
        if (comma == NULL)
            break;
        n -= len + 1;
        s = comma + 1;
    }
    return count;
}

bool config_span_eq(config_span s, const char *lit, bool icase) {
    size_t n = strlen(lit);
    return s.n == n && (icase ? strncasecmp(s.p, lit, n) == 0 : memcmp(s.p, lit, n) == 0);
}

const char *config_strndup(arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void config_join(const char *const *items, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; items[i] != NULL && used < n; i++) {
        int r = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", items[i]);
        if (r < 0)
            break;
        used += (size_t)r;
    }
}
