/*
 * clock.h - the two clocks the broker reads.
 *
 * Wall time (CLOCK_REALTIME) is what Kafka puts in records and compares with
 * retention.ms: record timestamps, LogAppendTime, segment ages. Monotonic time
 * (CLOCK_MONOTONIC) measures intervals that must not jump with the wall clock:
 * timeouts, long-poll deadlines, latencies.
 */
#ifndef SLUICE_CORE_CLOCK_H
#define SLUICE_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clock_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t clock_mono_ms(void) { return clock_mono_ns() / 1000000; }

#endif
