/*
 * config/props.c - the properties syntax (see props.h): physical lines are
 * joined into logical lines, then split into an unescaped key and value.
 * Unescaping never makes text longer, so buffers sized like the logical line
 * always suffice.
 */
#include "config/props.h"

#include <assert.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/text.h"

/* Appends the UTF-8 form of code point cp. */
static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* Decodes the escape at L[*i] == '\\' into o; advances *i past it. The
 * output is never longer than the escape, so buffers sized like the input
 * suffice. Returns bytes written, or -1 for a malformed \uXXXX. */
static int unescape(const char *L, size_t n, size_t *i, char *o) {
    assert(L[*i] == '\\');
    if (*i + 1 >= n) {
        (*i)++; /* a lone trailing backslash disappears */
        return 0;
    }
    char c = L[*i + 1];
    *i += 2;
    switch (c) {
    case 't':
        *o = '\t';
        return 1;
    case 'n':
        *o = '\n';
        return 1;
    case 'r':
        *o = '\r';
        return 1;
    case 'f':
        *o = '\f';
        return 1;
    case 'u': {
        unsigned cp = 0;
        if (*i + 4 > n)
            return -1;
        for (int k = 0; k < 4; k++) {
            char h = L[*i + (size_t)k];
            if (!isxdigit((unsigned char)h))
                return -1;
            cp = cp * 16 +
                 (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
        }
        *i += 4;
        return (int)put_utf8(o, cp);
    }
    default:
        *o = c;
        return 1;
    }
}

static bool is_line_ws(char c) { return c == ' ' || c == '\t' || c == '\f'; }

/* The next physical line at *pos without its leading blanks and its line
 * end: sets [*s, *s + *len), advances *pos past it and counts it in *lineno.
 * A continuation line loses its leading blanks too, as Java's reader does. */
static void next_line(const char *text, size_t textlen, size_t *pos, int *lineno, const char **s,
                      size_t *len) {
    const char *p = text + *pos;
    const char *nl = memchr(p, '\n', textlen - *pos);
    size_t n = nl ? (size_t)(nl - p) : textlen - *pos;
    *pos += nl ? n + 1 : n;
    (*lineno)++;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    while (n > 0 && is_line_ws(*p)) {
        p++;
        n--;
    }
    *s = p;
    *len = n;
}

int config_props_parse(const char *text, size_t len, config_props_fn fn, void *ctx,
                       char err[CONFIG_ERR_MAX]) {
    /* One heap block for the logical line, the key and the value: each is at
     * most CONFIG_LINE_MAX bytes, and unescaping never grows text. */
    char *logical = malloc(3 * (CONFIG_LINE_MAX + 1));
    char *key = logical + CONFIG_LINE_MAX + 1;
    char *val = key + CONFIG_LINE_MAX + 1;
    size_t pos = 0;
    int lineno = 0, rc = 0;

    if (logical == NULL) {
        config_fmt(err, CONFIG_ERR_MAX, "out of memory");
        return -1;
    }
    while (pos < len) {
        const char *s;
        size_t n, ln = 0;
        next_line(text, len, &pos, &lineno, &s, &n);
        if (n == 0 || *s == '#' || *s == '!')
            continue;
        int start = lineno;
        for (;;) {
            size_t bs = 0;
            while (bs < n && s[n - 1 - bs] == '\\')
                bs++;
            bool cont = bs % 2 == 1;
            size_t take = cont ? n - 1 : n;
            if (ln + take > CONFIG_LINE_MAX) {
                config_fmt(err, CONFIG_ERR_MAX, "line %d: longer than %d bytes", start, CONFIG_LINE_MAX);
                rc = -1;
                goto out;
            }
            memcpy(logical + ln, s, take);
            ln += take;
            if (!cont || pos >= len)
                break;
            next_line(text, len, &pos, &lineno, &s, &n);
        }
        logical[ln] = '\0';

        /* Key: up to the first unescaped '=', ':' or blank. */
        size_t i = 0, k = 0, v = 0;
        while (i < ln) {
            char c = logical[i];
            if (c == '\\') {
                int w = unescape(logical, ln, &i, key + k);
                if (w < 0)
                    goto bad_escape;
                k += (size_t)w;
                continue;
            }
            if (c == '=' || c == ':' || is_line_ws(c))
                break;
            key[k++] = c;
            i++;
        }
        key[k] = '\0';
        while (i < ln && is_line_ws(logical[i]))
            i++;
        if (i < ln && (logical[i] == '=' || logical[i] == ':'))
            i++;
        while (i < ln && is_line_ws(logical[i]))
            i++;
        while (i < ln) {
            if (logical[i] == '\\') {
                int w = unescape(logical, ln, &i, val + v);
                if (w < 0)
                    goto bad_escape;
                v += (size_t)w;
                continue;
            }
            val[v++] = logical[i++];
        }
        /* Kafka trims values before interpreting them; do it once here. */
        while (v > 0 && config_is_ws(val[v - 1]))
            v--;
        val[v] = '\0';
        assert(k <= CONFIG_LINE_MAX && v <= CONFIG_LINE_MAX);
        rc = fn(ctx, key, val, start);
        if (rc != 0)
            goto out;
        continue;
    bad_escape:
        config_fmt(err, CONFIG_ERR_MAX, "line %d: malformed \\uXXXX escape", start);
        rc = -1;
        goto out;
    }
out:
    free(logical);
    return rc;
}
