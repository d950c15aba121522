/*
 * tbucket.h - a token bucket: a rate limit on work measured in units (bytes
 * of work, requests), shared by threads.
 *
 * The bucket holds at most `burst` tokens and gains `rate` tokens a second.
 * tbucket_take() grants up to what is asked and never more than is there, so
 * the work done in any interval of T seconds is at most burst + rate * T,
 * whatever the number of callers. A caller that takes a grant before it knows
 * its cost gives back what it did not use (tbucket_give), so a cheap request
 * costs little; one that did more than it took pays the difference
 * (tbucket_charge), which may leave the bucket in debt: nothing more is
 * granted until the refill has paid it off. The bound above then holds for
 * all the work charged, plus what is in flight.
 *
 * Time is passed in (monotonic milliseconds), so tests drive the clock; a
 * clock that goes backwards adds nothing. Internally tokens are counted in
 * thousandths, so refills at millisecond steps lose nothing to rounding.
 *
 * Thread-safety: every call may come from any thread (one mutex; each call is
 * a few arithmetic operations under it).
 */
#ifndef SLUICE_CORE_TBUCKET_H
#define SLUICE_CORE_TBUCKET_H

#include <pthread.h>
#include <stdint.h>

/* Largest rate and burst: their thousandths must fit an int64 with room for
 * a day of refill arithmetic. */
#define TBUCKET_MAX ((int64_t)1 << 40)

typedef struct tbucket {
    pthread_mutex_t mu;
    int64_t rate;  /* tokens per second, 1..TBUCKET_MAX */
    int64_t burst; /* capacity, 1..TBUCKET_MAX */
    int64_t milli; /* tokens * 1000, -TBUCKET_MAX * 1000..burst * 1000 (< 0: debt) */
    int64_t last_ms;
} tbucket;

/* A full bucket at now_ms. rate and burst are clamped to 1..TBUCKET_MAX. */
void tbucket_init(tbucket *b, int64_t rate, int64_t burst, int64_t now_ms);
void tbucket_destroy(tbucket *b);

/* Takes min(want, tokens there) and returns it (0 when empty or want <= 0). */
int64_t tbucket_take(tbucket *b, int64_t want, int64_t now_ms);
/* Returns n unused tokens (never past burst). */
void tbucket_give(tbucket *b, int64_t n, int64_t now_ms);
/* Takes n more tokens than were granted: work already done, so it is taken
 * even if that leaves the bucket in debt (at most TBUCKET_MAX). */
void tbucket_charge(tbucket *b, int64_t n, int64_t now_ms);
/* Milliseconds until min(want, burst) tokens are there; 0 if they are now. */
int64_t tbucket_wait_ms(tbucket *b, int64_t want, int64_t now_ms);

#endif
