/*
 * log.c - see log.h. The only shared state is the level, the output fd and
 * two counters, all atomics, so no lock is needed: each line is formatted on
 * the caller's stack and leaves in one write(). Rate limiters keep their own
 * state in atomics too (see log_ratelimit_allow_at).
 */
#include "core/log.h"
#include "core/clock.h"
#include "core/env.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_current_level_ = LOG_LEVEL_INFO;
static _Atomic int log_fd = 2;
static _Atomic uint64_t log_written, log_truncated;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
/* Upper-case and padded, as they appear in a line. */
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};

void log_set_level(log_level level) {
    assert(level >= LOG_LEVEL_ERROR && level <= LOG_LEVEL_TRACE);
    atomic_store_explicit(&log_current_level_, (int)level, memory_order_relaxed);
}

log_level log_get_level(void) {
    return (log_level)atomic_load_explicit(&log_current_level_, memory_order_relaxed);
}

const char *log_level_name(log_level level) {
    if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_TRACE)
        return "unknown";
    return level_names[level];
}

int log_level_parse(const char *s, log_level *out) {
    if (s == NULL)
        return -1;
    for (int i = 0; i <= LOG_LEVEL_TRACE; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

int log_init_from_env(void) {
    const char *v = getenv(LOG_ENV_LEVEL);
    log_level lvl;
    if (v == NULL || *v == '\0')
        return 0;
    if (log_level_parse(v, &lvl) != 0) {
        LOG_ERROR("log", "%s='%.64s' is not a log level (expected error, warn, info, debug or trace)",
                  LOG_ENV_LEVEL, v);
        return -1;
    }
    log_set_level(lvl);
    return 0;
}

int log_set_fd(int fd) { return atomic_exchange(&log_fd, fd < 0 ? 2 : fd); }

uint64_t log_lines_written(void) { return atomic_load(&log_written); }
uint64_t log_lines_truncated(void) { return atomic_load(&log_truncated); }

char *log_kv_tpo(char buf[LOG_KV_MAX], const char *topic, int32_t partition, int64_t offset) {
    size_t n = 0;
    int r;
    buf[0] = '\0';
    /* snprintf never writes past LOG_KV_MAX; clamp n so later calls see the
     * true remaining space even after a cut. */
    if (topic != NULL) {
        r = snprintf(buf + n, LOG_KV_MAX - n, "topic=%s", topic);
        n = r < 0 ? n : (size_t)r >= LOG_KV_MAX - n ? LOG_KV_MAX - 1 : n + (size_t)r;
    }
    if (partition >= 0 && n < LOG_KV_MAX - 1) {
        r = snprintf(buf + n, LOG_KV_MAX - n, "%spartition=%d", n ? " " : "", (int)partition);
        n = r < 0 ? n : (size_t)r >= LOG_KV_MAX - n ? LOG_KV_MAX - 1 : n + (size_t)r;
    }
    if (offset >= 0 && n < LOG_KV_MAX - 1)
        snprintf(buf + n, LOG_KV_MAX - n, "%soffset=%lld", n ? " " : "", (long long)offset);
    return buf;
}

/* Appends what fits of s[0..len) to line[*n..cap). Returns false if
 * anything was cut. */
static bool put_bytes(char *line, size_t *n, size_t cap, const char *s, size_t len) {
    bool whole = true;
    assert(*n <= cap);
    if (len > cap - *n) {
        len = cap - *n;
        whole = false;
    }
    memcpy(line + *n, s, len);
    *n += len;
    return whole;
}

/* Writes all of buf, retrying on EINTR and short writes. Output errors are
 * dropped: there is nowhere left to report them. */
static void write_all(int fd, const char *buf, size_t len) {
    for (int tries = 0; len > 0 && tries < 64; tries++) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

void log_vwrite(log_level level, const char *module, const char *ctx, const char *fmt, va_list ap) {
    char line[LOG_LINE_MAX];
    /* Reserve room for the "...\n" that marks a cut line. */
    const size_t cap = LOG_LINE_MAX - 4;
    size_t n = 0;
    bool whole = true;
    struct timespec ts;
    struct tm tm;

    if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_TRACE)
        level = LOG_LEVEL_ERROR;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int r = snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000),
                     level_tags[level]);
    assert(r > 0 && (size_t)r < cap);
    n = (size_t)r;
    /* Module tags are short by convention; a long one is cut silently. */
    module = module ? module : "-";
    put_bytes(line, &n, cap, module, strnlen(module, LOG_MODULE_MAX));
    put_bytes(line, &n, cap, "] ", 2);

    r = vsnprintf(line + n, cap - n + 1, fmt, ap);
    if (r < 0) {
        static const char bad[] = "(bad log format)";
        whole = put_bytes(line, &n, cap, bad, sizeof bad - 1);
    } else if ((size_t)r > cap - n) {
        n = cap;
        whole = false;
    } else {
        n += (size_t)r;
    }
    if (whole && ctx != NULL && ctx[0] != '\0') {
        whole = put_bytes(line, &n, cap, " ", 1);
        whole = whole && put_bytes(line, &n, cap, ctx, strlen(ctx));
    }
    /* The node of the broker this thread works for (sl_env_bind), so lines
     * of several brokers in one process (the simulation) tell them apart. */
    const sl_env *env = sl_env_bound();
    if (whole && env != NULL && env->node_id >= 0) {
        char node[24];
        int k = snprintf(node, sizeof node, " node=%d", (int)env->node_id);
        whole = k > 0 && put_bytes(line, &n, cap, node, (size_t)k);
    }
    /* A message must stay one line: newlines inside it would split an event. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (!whole) {
        memcpy(line + n, "...", 3);
        n += 3;
        atomic_fetch_add(&log_truncated, 1);
    }
    assert(n < LOG_LINE_MAX);
    line[n++] = '\n';
    write_all(atomic_load(&log_fd), line, n);
    atomic_fetch_add(&log_written, 1);
}

void log_write(log_level level, const char *module, const char *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, module, ctx, fmt, ap);
    va_end(ap);
}

/* The state word: window number in the high 40 bits, lines written in that
 * window in the low 24 (burst is capped below 2^24). */
#define RL_COUNT_BITS 24
#define RL_COUNT_MASK ((UINT64_C(1) << RL_COUNT_BITS) - 1)

bool log_ratelimit_allow_at(log_ratelimit *rl, int64_t now_ms, uint64_t *suppressed) {
    assert(rl->burst >= 1 && rl->burst < RL_COUNT_MASK && rl->interval_ms >= 1);
    uint64_t window = now_ms > 0 ? (uint64_t)now_ms / rl->interval_ms : 0;
    window &= (UINT64_C(1) << (64 - RL_COUNT_BITS)) - 1;
    uint64_t cur = atomic_load(&rl->state);
    /* Bounded in practice: each retry means another thread changed the word. */
    for (;;) {
        uint64_t w = cur >> RL_COUNT_BITS, n = cur & RL_COUNT_MASK;
        uint64_t next;
        if (w != window)
            next = window << RL_COUNT_BITS | 1;
        else if (n < rl->burst)
            next = cur + 1;
        else {
            atomic_fetch_add(&rl->suppressed, 1);
            return false;
        }
        if (atomic_compare_exchange_weak(&rl->state, &cur, next))
            break;
    }
    *suppressed = atomic_exchange(&rl->suppressed, 0);
    return true;
}

bool log_ratelimit_allow(log_ratelimit *rl, uint64_t *suppressed) {
    return log_ratelimit_allow_at(rl, clock_mono_ms(), suppressed);
}

void log_write_suppressed(log_level level, const char *module, const char *ctx, uint64_t suppressed,
                          const char *fmt, ...) {
    char kv[LOG_KV_MAX];
    if (suppressed > 0) {
        snprintf(kv, sizeof kv, "%s%ssuppressed=%llu", ctx ? ctx : "", ctx && ctx[0] ? " " : "",
                 (unsigned long long)suppressed);
        ctx = kv;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, module, ctx, fmt, ap);
    va_end(ap);
}
