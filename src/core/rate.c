/*
 * rate.c - sampled rates and throttle times (rate.h).
 */
#include "core/rate.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void rate_init(rate *r, int32_t samples, int64_t window_ms, int64_t now_ms) {
    memset(r, 0, sizeof *r);
    r->samples = samples < 1 ? 1 : samples > RATE_SAMPLES_MAX ? RATE_SAMPLES_MAX : samples;
    r->window_ms = window_ms < 1 ? 1 : window_ms;
    r->w[0].start_ms = now_ms;
    r->used = 1;
}

/* Windows that ended more than samples * window_ms ago count nothing:
 * they restart now, as Kafka's purge does. */
static void purge(rate *r, int64_t now_ms) {
    int64_t expire = (int64_t)r->samples * r->window_ms;
    for (int32_t i = 0; i < r->used; i++)
        if (now_ms - r->w[i].start_ms >= expire) {
            r->w[i].start_ms = now_ms;
            r->w[i].value = 0;
        }
}

void rate_record(rate *r, double value, int64_t now_ms) {
    rate_window *cur = &r->w[r->current];
    if (now_ms - cur->start_ms >= r->window_ms) {
        r->current = (r->current + 1) % r->samples;
        if (r->current >= r->used)
            r->used = r->current + 1;
        cur = &r->w[r->current];
        cur->start_ms = now_ms;
        cur->value = 0;
    }
    cur->value += value;
}

int64_t rate_span_ms(rate *r, int64_t now_ms) {
    purge(r, now_ms);
    int64_t oldest = r->w[0].start_ms;
    for (int32_t i = 1; i < r->used; i++)
        if (r->w[i].start_ms < oldest)
            oldest = r->w[i].start_ms;
    int64_t span = now_ms - oldest;
    int64_t full = span / r->window_ms, min_full = r->samples - 1;
    if (full < min_full)
        span += (min_full - full) * r->window_ms;
    return span > 1 ? span : 1;
}

double rate_per_second(rate *r, int64_t now_ms) {
    int64_t span = rate_span_ms(r, now_ms);
    double total = 0;
    for (int32_t i = 0; i < r->used; i++)
        total += r->w[i].value;
    return total * 1000.0 / (double)span;
}

int64_t rate_record_throttle(rate *r, double value, double bound, int64_t max_ms, int64_t now_ms) {
    rate_record(r, value, now_ms);
    if (!(bound > 0))
        return 0;
    double v = rate_per_second(r, now_ms);
    if (v <= bound)
        return 0;
    double t = (v - bound) / bound * (double)rate_span_ms(r, now_ms);
    double cap = max_ms > 0 ? (double)max_ms : (double)INT32_MAX;
    if (!(t < cap))
        return (int64_t)cap;
    return (int64_t)llround(t);
}

static void refill(rate_tokens *t, double bound, double burst, int64_t now_ms) {
    if (t->bound == 0) { /* a new bucket starts full */
        t->tokens = burst;
        t->last_ms = now_ms;
    }
    t->bound = bound;
    if (now_ms > t->last_ms) {
        t->tokens += bound * (double)(now_ms - t->last_ms) / 1000.0;
        t->last_ms = now_ms;
    }
    if (t->tokens > burst)
        t->tokens = burst;
}

bool rate_tokens_exceeded(rate_tokens *t, double bound, double burst, int64_t now_ms) {
    if (!(bound > 0))
        return false;
    refill(t, bound, burst, now_ms);
    return t->tokens < 0;
}

int64_t rate_tokens_record(rate_tokens *t, double value, double bound, double burst, int64_t now_ms) {
    if (!(bound > 0))
        return 0;
    refill(t, bound, burst, now_ms);
    t->tokens -= value;
    if (t->tokens >= 0)
        return 0;
    double ms = -t->tokens / bound * 1000.0;
    return ms < (double)INT32_MAX ? (int64_t)llround(ms) : INT32_MAX;
}
