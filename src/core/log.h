/*
 * log.h - leveled, line-oriented logging to stderr.
 *
 * Every call emits at most one line, built in a bounded stack buffer and
 * handed to the kernel with a single write(), so lines from different threads
 * never interleave (a line is shorter than PIPE_BUF) and the hot path never
 * allocates. A line that does not fit is cut and ends in "..." so the reader
 * can see that something was lost.
 *
 * Line format (one event per line, grep- and logfmt-friendly):
 *
 *   2026-01-02T03:04:05.678Z INFO  [net] accepted connection from 127.0.0.1:50000
 *   2026-01-02T03:04:05.679Z WARN  [storage] truncated torn tail topic=orders partition=3 offset=1200
 *
 * i.e. ISO-8601 UTC timestamp with milliseconds, level padded to five
 * columns, module tag in brackets, the message, then optional key=value
 * context separated by one space, and `node=N` when the calling thread is
 * bound to a broker's environment (core/env.h: sl_env_bind).
 *
 * The level is a process-wide atomic: log_set_level() may be called from any
 * thread at any time (the config key log.level and the environment variable
 * SLUICE_LOG_LEVEL feed it). The LOG_* macros test the level before
 * evaluating their arguments, so a disabled debug line costs one load.
 *
 * Rate limits. A line that a client can cause at will (a refused request, a
 * rebalance) goes through a log_ratelimit: at most `burst` such lines per
 * `interval_ms` window; lines beyond that are counted, not written, and the
 * next line written carries "suppressed=N" so the reader knows how many of its
 * kind were lost. One limiter per kind of line, usually a static next to the
 * call (LOG_RATELIMIT_INIT); the LOG_*_LIMITED macros evaluate their
 * arguments only for lines that are written.
 */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lower is more severe. A line is written when its level <= the current one. */
typedef enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
    LOG_LEVEL_TRACE = 4,
} log_level;

/* Longest line written, newline included. Below PIPE_BUF (4096) so a line
 * written to a pipe is atomic too. */
#define LOG_LINE_MAX 1024
/* Module tags longer than this are cut. */
#define LOG_MODULE_MAX 16
/* Size of a buffer for log_kv_tpo() context strings. */
#define LOG_KV_MAX 192

/* The environment variable read by log_init_from_env(). */
#define LOG_ENV_LEVEL "SLUICE_LOG_LEVEL"

void log_set_level(log_level level);
log_level log_get_level(void);
static inline bool log_enabled(log_level level);

/* "error", "warn", "info", "debug", "trace". */
const char *log_level_name(log_level level);
/* Parses a level name, case-insensitively ("warning" is accepted for warn).
 * Returns 0 and sets *out, or -1 if s is not a level name. */
int log_level_parse(const char *s, log_level *out);

/* Applies SLUICE_LOG_LEVEL if it is set. Returns 0 if it was unset or valid,
 * -1 (after logging an error and leaving the level alone) if it is invalid. */
int log_init_from_env(void);

/* Redirects output to fd (tests capture lines through a pipe or file);
 * -1 restores stderr. Returns the previous fd. */
int log_set_fd(int fd);

/* Writes one line. ctx, if not NULL and not empty, is appended after the
 * message as key=value context. Use the LOG_* macros rather than calling this
 * directly: they skip argument evaluation for disabled levels. */
void log_write(log_level level, const char *module, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vwrite(log_level level, const char *module, const char *ctx, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Formats the usual "topic=T partition=P offset=O" context into buf (of
 * LOG_KV_MAX bytes) and returns buf. partition < 0 or offset < 0 omit that
 * pair, topic NULL omits the topic. */
char *log_kv_tpo(char buf[LOG_KV_MAX], const char *topic, int32_t partition, int64_t offset);

/* Lines written, and lines among them cut short to LOG_LINE_MAX, since the
 * process started; for tests and metrics. */
uint64_t log_lines_written(void);
uint64_t log_lines_truncated(void);

/* ---- rate limits ----------------------------------------------------------- */

/* One kind of line. The state is one atomic word (window number and the
 * lines written in it) plus the count suppressed since the last line written,
 * so any thread may use a limiter without a lock. */
typedef struct log_ratelimit {
    uint32_t burst;       /* lines per window, >= 1 */
    uint32_t interval_ms; /* window length, >= 1 */
    _Atomic uint64_t state;
    _Atomic uint64_t suppressed;
} log_ratelimit;

#define LOG_RATELIMIT_INIT(burst_, interval_ms_) \
    { .burst = (burst_), .interval_ms = (interval_ms_) }

/* The limiter most client-triggered INFO lines use: 10 a second per kind. */
#define LOG_RATELIMIT_DEFAULT LOG_RATELIMIT_INIT(10, 1000)

/* Whether a line of rl's kind may be written at monotonic time now_ms. On
 * true, *suppressed gets the lines refused since the last one allowed (and
 * the count restarts); on false the refusal is counted. */
bool log_ratelimit_allow_at(log_ratelimit *rl, int64_t now_ms, uint64_t *suppressed);
/* The same on the monotonic clock. */
bool log_ratelimit_allow(log_ratelimit *rl, uint64_t *suppressed);

/* log_write with " suppressed=N" added to the context when N > 0. */
void log_write_suppressed(log_level level, const char *module, const char *ctx, uint64_t suppressed,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- macros --------------------------------------------------------------- */

#define LOG_AT_(lvl, mod, ctx, ...)                      \
    do {                                                 \
        if (log_enabled(lvl))                            \
            log_write((lvl), (mod), (ctx), __VA_ARGS__); \
    } while (0)

#define LOG_ERROR(mod, ...) LOG_AT_(LOG_LEVEL_ERROR, mod, NULL, __VA_ARGS__)
#define LOG_WARN(mod, ...)  LOG_AT_(LOG_LEVEL_WARN, mod, NULL, __VA_ARGS__)
#define LOG_INFO(mod, ...)  LOG_AT_(LOG_LEVEL_INFO, mod, NULL, __VA_ARGS__)
#define LOG_DEBUG(mod, ...) LOG_AT_(LOG_LEVEL_DEBUG, mod, NULL, __VA_ARGS__)
#define LOG_TRACE(mod, ...) LOG_AT_(LOG_LEVEL_TRACE, mod, NULL, __VA_ARGS__)

/* With key=value context, e.g.
 *   char kv[LOG_KV_MAX];
 *   LOG_WARN_KV("storage", log_kv_tpo(kv, topic, p, off), "crc mismatch, truncating");
 * The context expression is evaluated only if the level is enabled. */
#define LOG_ERROR_KV(mod, ctx, ...) LOG_AT_(LOG_LEVEL_ERROR, mod, ctx, __VA_ARGS__)
#define LOG_WARN_KV(mod, ctx, ...)  LOG_AT_(LOG_LEVEL_WARN, mod, ctx, __VA_ARGS__)
#define LOG_INFO_KV(mod, ctx, ...)  LOG_AT_(LOG_LEVEL_INFO, mod, ctx, __VA_ARGS__)
#define LOG_DEBUG_KV(mod, ctx, ...) LOG_AT_(LOG_LEVEL_DEBUG, mod, ctx, __VA_ARGS__)
#define LOG_TRACE_KV(mod, ctx, ...) LOG_AT_(LOG_LEVEL_TRACE, mod, ctx, __VA_ARGS__)

/* Rate-limited lines, e.g.
 *   static log_ratelimit rl = LOG_RATELIMIT_DEFAULT;
 *   LOG_INFO_LIMITED(&rl, "broker", "refused %s from %s", name, peer);
 * Arguments are evaluated only when the line is written. */
#define LOG_LIMITED_(lvl, rl, mod, ctx, ...)                                  \
    do {                                                                      \
        uint64_t log_sup_;                                                    \
        if (log_enabled(lvl) && log_ratelimit_allow((rl), &log_sup_))         \
            log_write_suppressed((lvl), (mod), (ctx), log_sup_, __VA_ARGS__); \
    } while (0)

#define LOG_WARN_LIMITED(rl, mod, ...)         LOG_LIMITED_(LOG_LEVEL_WARN, rl, mod, NULL, __VA_ARGS__)
#define LOG_INFO_LIMITED(rl, mod, ...)         LOG_LIMITED_(LOG_LEVEL_INFO, rl, mod, NULL, __VA_ARGS__)
#define LOG_INFO_KV_LIMITED(rl, mod, ctx, ...) LOG_LIMITED_(LOG_LEVEL_INFO, rl, mod, ctx, __VA_ARGS__)

/* ---- inline implementation ----------------------------------------------- */

#include <stdatomic.h>

extern _Atomic int log_current_level_;

static inline bool log_enabled(log_level level) {
    return (int)level <= atomic_load_explicit(&log_current_level_, memory_order_relaxed);
}

#endif
