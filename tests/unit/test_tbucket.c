/*
 * test_tbucket.c - the token bucket (core/tbucket.c) on a driven clock:
 * grants never exceed what is there, refill is exact at millisecond steps,
 * gives are capped at the burst, charges beyond a grant put the bucket in
 * debt that the refill pays off first, waits are right, a long idle gap or a
 * clock that goes back does no harm, and concurrent takers together never
 * get more than burst + rate * T.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "core/tbucket.h"
#include "unit.h"

static void test_take_and_refill(void) {
    tbucket b;
    tbucket_init(&b, 1000, 5000, 100); /* 1000 a second, 5000 at most */
    CHECK_EQ_INT(tbucket_take(&b, 3000, 100), 3000);
    CHECK_EQ_INT(tbucket_take(&b, 3000, 100), 2000); /* only what is left */
    CHECK_EQ_INT(tbucket_take(&b, 1, 100), 0);
    /* One token per millisecond, none lost to rounding over many steps. */
    int64_t got = 0;
    for (int64_t t = 101; t <= 600; t++)
        got += tbucket_take(&b, 1000, t);
    CHECK_EQ_INT(got, 500);
    CHECK_EQ_INT(tbucket_take(&b, 0, 600), 0);
    CHECK_EQ_INT(tbucket_take(&b, -5, 600), 0);
    tbucket_destroy(&b);
}

static void test_give_and_cap(void) {
    tbucket b;
    tbucket_init(&b, 10, 100, 0);
    CHECK_EQ_INT(tbucket_take(&b, 100, 0), 100);
    tbucket_give(&b, 40, 0);
    CHECK_EQ_INT(tbucket_take(&b, 100, 0), 40);
    tbucket_give(&b, 1000000, 0); /* never past the burst */
    CHECK_EQ_INT(tbucket_take(&b, 1000, 0), 100);
    /* A very long idle gap just fills it. */
    CHECK_EQ_INT(tbucket_take(&b, 1000, INT64_C(1) << 50), 100);
    /* A clock that goes back adds nothing. */
    CHECK_EQ_INT(tbucket_take(&b, 1000, 5), 0);
    tbucket_destroy(&b);
}

static void test_charge_debt(void) {
    tbucket b;
    tbucket_init(&b, 1000, 1000, 0);
    CHECK_EQ_INT(tbucket_take(&b, 1000, 0), 1000);
    tbucket_charge(&b, 3000, 0); /* did 3000 more than granted */
    CHECK_EQ_INT(tbucket_take(&b, 1, 0), 0);
    CHECK_EQ_INT(tbucket_wait_ms(&b, 1, 0), 3001);
    CHECK_EQ_INT(tbucket_take(&b, 1000, 2999), 0); /* still paying off */
    CHECK_EQ_INT(tbucket_take(&b, 1000, 3500), 500);
    /* Debt is capped, so a huge charge cannot overflow or block for ever. */
    tbucket_charge(&b, INT64_MAX, 3500);
    CHECK(tbucket_wait_ms(&b, 1, 3500) <= TBUCKET_MAX + 1);
    tbucket_destroy(&b);
}

static void test_wait(void) {
    tbucket b;
    tbucket_init(&b, 2000, 4000, 0); /* 2 a millisecond */
    CHECK_EQ_INT(tbucket_wait_ms(&b, 4000, 0), 0);
    CHECK_EQ_INT(tbucket_take(&b, 4000, 0), 4000);
    CHECK_EQ_INT(tbucket_wait_ms(&b, 1000, 0), 500);
    CHECK_EQ_INT(tbucket_wait_ms(&b, 1001, 0), 501);
    CHECK_EQ_INT(tbucket_wait_ms(&b, 1000000, 0), 2000); /* at most a full bucket */
    CHECK_EQ_INT(tbucket_wait_ms(&b, 1000, 500), 0);
    tbucket_destroy(&b);
}

#define THREADS 4
static tbucket shared;
static _Atomic int64_t granted;
static _Atomic int64_t clock_ms;

static void *taker(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        int64_t now = atomic_fetch_add(&clock_ms, 1) / THREADS; /* time moves as threads work */
        int64_t g = tbucket_take(&shared, 7, now);
        if (g > 3) {
            tbucket_give(&shared, 3, now); /* used less than taken */
            g -= 3;
        }
        atomic_fetch_add(&granted, g);
    }
    return NULL;
}

static void test_threads_bound(void) {
    tbucket_init(&shared, 1000, 50, 0); /* 1 a millisecond */
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, taker, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    int64_t elapsed = atomic_load(&clock_ms) / THREADS;
    /* Never more than burst + rate * elapsed. */
    CHECK(atomic_load(&granted) <= 50 + elapsed);
    CHECK(atomic_load(&granted) > 0);
    tbucket_destroy(&shared);
}

int main(void) {
    UNIT_RUN(test_take_and_refill);
    UNIT_RUN(test_give_and_cap);
    UNIT_RUN(test_charge_debt);
    UNIT_RUN(test_wait);
    UNIT_RUN(test_threads_bound);
    return UNIT_END("test_tbucket");
}
