/*
 * rate.h - a rate measured over sampled windows, and the throttle time
 * that brings an observed rate back to a bound: the arithmetic of Kafka's
 * client quotas (quota.window.num samples of quota.window.size.seconds).
 *
 * A rate keeps `samples` windows of `window_ms`. A value is added to the
 * current window; once that window is window_ms old the next one starts
 * (at the time of the value that opens it). Windows older than
 * samples * window_ms count nothing. The rate is the sum of the windows
 * over the time they cover: from the start of the oldest window to now,
 * but never less than samples - 1 whole windows (so a quiet client that
 * sends one burst is measured over the full span, not over a millisecond),
 * and at least 1 ms.
 *
 * Throttle time, as Kafka computes it: when the rate after recording a
 * value is above the bound, (rate - bound) / bound * span, where span is
 * the time the rate was measured over. A client that then waits that long
 * before sending again brings the rate back to the bound.
 *
 * Time is passed in (monotonic milliseconds), so tests drive the clock. A
 * rate is not thread-safe: its owner serialises (broker/quota.c holds a
 * lock per table).
 */
#ifndef SLUICE_CORE_RATE_H
#define SLUICE_CORE_RATE_H

#include <stdbool.h>
#include <stdint.h>

#define RATE_SAMPLES_MAX 100

typedef struct rate_window {
    int64_t start_ms;
    double value;
} rate_window;

typedef struct rate {
    int32_t samples; /* 1..RATE_SAMPLES_MAX */
    int64_t window_ms;
    int32_t current; /* the window values go to */
    int32_t used;    /* windows started so far, <= samples */
    rate_window w[RATE_SAMPLES_MAX];
} rate;

/* samples is clamped to 1..RATE_SAMPLES_MAX, window_ms to at least 1. */
void rate_init(rate *r, int32_t samples, int64_t window_ms, int64_t now_ms);
void rate_record(rate *r, double value, int64_t now_ms);
/* The value per second now. */
double rate_per_second(rate *r, int64_t now_ms);
/* The span the rate is measured over now (ms, >= 1). */
int64_t rate_span_ms(rate *r, int64_t now_ms);
/* Records value; the throttle time (ms) if the rate is then above bound,
 * else 0. bound <= 0 means no bound. The result is at most max_ms
 * (max_ms <= 0: at most INT32_MAX). */
int64_t rate_record_throttle(rate *r, double value, double bound, int64_t max_ms, int64_t now_ms);

/* Kafka's token bucket (the controller mutation quota, KIP-599): a
 * bucket of burst = bound * samples * window seconds tokens, refilled at
 * bound a second; each value takes its tokens, going below 0. The quota is
 * exceeded while the bucket is below 0, and the throttle time is how long
 * the refill takes to bring it back to 0: -tokens / bound seconds. */
typedef struct rate_tokens {
    double tokens;
    int64_t last_ms;
    double bound; /* the bound the bucket was last refilled for; 0: new */
} rate_tokens;

/* True when the bucket is below 0 now (strict mode refuses then). */
bool rate_tokens_exceeded(rate_tokens *t, double bound, double burst, int64_t now_ms);
/* Takes value tokens; the throttle time (ms) if the bucket is then below
 * 0, else 0. */
int64_t rate_tokens_record(rate_tokens *t, double value, double bound, double burst, int64_t now_ms);

#endif
