/*
 * cli.c - shared helpers of the `sluice` subcommands. See cli.h.
 */
#include "tools/cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile int cli_stop;

static void verr(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "sluice %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_err(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_progress_done();
    verr(cmd, fmt, ap);
    va_end(ap);
}

int cli_usage_err(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verr(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'sluice %s --help'.\n", cmd);
    return CLI_EUSAGE;
}

bool cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = (int64_t)v;
    return true;
}

bool cli_parse_size(const char *s, int64_t max, int64_t *out) {
    char buf[32];
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n + 1);
    int64_t mult = 1;
    char c = buf[n - 1];
    if (c == 'k' || c == 'K')
        mult = 1024;
    else if (c == 'm' || c == 'M')
        mult = 1024 * 1024;
    else if (c == 'g' || c == 'G')
        mult = 1024 * 1024 * 1024;
    if (mult != 1)
        buf[n - 1] = '\0';
    int64_t v;
    if (!cli_parse_i64(buf, 0, max, &v) || v > max / mult)
        return false;
    *out = v * mult;
    return true;
}

bool cli_split_kv(const char *s, char sep, char *buf, size_t cap, const char **key, const char **value) {
    const char *p = strchr(s, sep);
    size_t n = strlen(s);
    if (p == NULL || p == s || n >= cap)
        return false;
    memcpy(buf, s, n + 1);
    buf[p - s] = '\0';
    *key = buf;
    *value = buf + (p - s) + 1;
    return true;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid.
 * Rejects overlong forms, surrogates and code points past U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

void cli_json_str(FILE *f, const char *s, ptrdiff_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = len < 0 ? strlen(s) : (size_t)len;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c == '\r') {
            fputs("\\r", f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(p + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

void cli_print_bytes(FILE *f, const void *ptr, size_t n) {
    const unsigned char *p = ptr;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t l = (c >= 0x20 && c < 0x7f) ? 1 : (c >= 0x80 ? utf8_len(p + i, n - i) : 0);
        if (l == 0) {
            fprintf(f, "\\x%02x", c);
            i++;
        } else {
            fwrite(p + i, 1, l, f);
            i += l;
        }
    }
}

int64_t cli_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cli_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int progress_state = -1; /* -1 unknown, 0 off, 1 on */
static int64_t progress_last_us;
static bool progress_shown;

bool cli_progress_enabled(void) {
    if (progress_state < 0)
        progress_state = isatty(STDERR_FILENO) ? 1 : 0;
    return progress_state == 1;
}

void cli_progress(bool force, const char *fmt, ...) {
    if (!cli_progress_enabled())
        return;
    int64_t now = cli_now_us();
    if (!force && now - progress_last_us < 500000)
        return;
    progress_last_us = now;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    progress_shown = true;
}

void cli_progress_done(void) {
    if (progress_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        progress_shown = false;
    }
}

static void on_signal(int sig) {
    (void)sig;
    cli_stop = 1;
}

void cli_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
