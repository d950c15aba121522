/*
 * tbucket.c - see tbucket.h.
 */
#include "core/tbucket.h"

#include <assert.h>

static int64_t clamp(int64_t v) { return v < 1 ? 1 : v > TBUCKET_MAX ? TBUCKET_MAX : v; }

/* Adds what the time since last_ms earned. Caller holds mu. */
static void refill(tbucket *b, int64_t now_ms) {
    if (now_ms > b->last_ms) {
        int64_t dt = now_ms - b->last_ms;
        int64_t cap = b->burst * 1000;
        /* A gap long enough to fill the bucket needs no multiplication
         * (which could overflow after a long idle spell). */
        if (dt >= (cap - b->milli) / b->rate + 1)
            b->milli = cap;
        else
            b->milli += dt * b->rate;
        b->last_ms = now_ms;
    }
    assert(b->milli >= -TBUCKET_MAX * 1000 && b->milli <= b->burst * 1000);
}

void tbucket_init(tbucket *b, int64_t rate, int64_t burst, int64_t now_ms) {
    pthread_mutex_init(&b->mu, NULL);
    b->rate = clamp(rate);
    b->burst = clamp(burst);
    b->milli = b->burst * 1000;
    b->last_ms = now_ms;
}

void tbucket_destroy(tbucket *b) { pthread_mutex_destroy(&b->mu); }

int64_t tbucket_take(tbucket *b, int64_t want, int64_t now_ms) {
    if (want <= 0)
        return 0;
    pthread_mutex_lock(&b->mu);
    refill(b, now_ms);
    int64_t have = b->milli > 0 ? b->milli / 1000 : 0;
    int64_t got = want < have ? want : have;
    b->milli -= got * 1000;
    pthread_mutex_unlock(&b->mu);
    return got;
}

void tbucket_give(tbucket *b, int64_t n, int64_t now_ms) {
    if (n <= 0)
        return;
    pthread_mutex_lock(&b->mu);
    refill(b, now_ms);
    int64_t cap = b->burst * 1000;
    b->milli = n >= (cap - b->milli) / 1000 ? cap : b->milli + n * 1000;
    pthread_mutex_unlock(&b->mu);
}

void tbucket_charge(tbucket *b, int64_t n, int64_t now_ms) {
    if (n <= 0)
        return;
    pthread_mutex_lock(&b->mu);
    refill(b, now_ms);
    int64_t room = (b->milli + TBUCKET_MAX * 1000) / 1000; /* debt still allowed */
    b->milli -= (n < room ? n : room) * 1000;
    pthread_mutex_unlock(&b->mu);
}

int64_t tbucket_wait_ms(tbucket *b, int64_t want, int64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    refill(b, now_ms);
    if (want > b->burst)
        want = b->burst;
    int64_t need = want * 1000 - b->milli;
    int64_t ms = need <= 0 ? 0 : (need + b->rate - 1) / b->rate;
    pthread_mutex_unlock(&b->mu);
    return ms;
}
