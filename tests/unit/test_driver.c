/*
 * test_driver.c - the broker's driver thread (broker/driver.h): tasks run
 * in turn, a kick makes a task due at once, also one that arrives while
 * another task's step is running.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "broker/driver.h"
#include "core/clock.h"
#include "unit.h"

typedef struct counter {
    atomic_int runs;
    atomic_llong last_ms;
    int sleep_ms; /* how long a step takes */
} counter;

static int64_t step(void *arg) {
    counter *c = arg;
    if (c->sleep_ms > 0)
        usleep((useconds_t)c->sleep_ms * 1000);
    atomic_store(&c->last_ms, clock_mono_ms());
    atomic_fetch_add(&c->runs, 1);
    return DRIVER_IDLE_MS; /* nothing more unless kicked */
}

static bool wait_runs(counter *c, int n, int64_t within_ms) {
    int64_t end = clock_mono_ms() + within_ms;
    while (clock_mono_ms() < end) {
        if (atomic_load(&c->runs) >= n)
            return true;
        usleep(1000);
    }
    return atomic_load(&c->runs) >= n;
}

static void test_kick_runs_a_task_at_once(void) {
    driver *d = driver_new(NULL);
    REQUIRE(d != NULL);
    counter a = {0};
    int id = driver_add(d, "a", step, &a);
    REQUIRE(id == 0);
    REQUIRE(driver_start(d) == 0);
    CHECK(wait_runs(&a, 1, 1000)); /* due at start */
    usleep(20000);
    CHECK_EQ_INT(atomic_load(&a.runs), 1); /* then idle */
    int64_t t0 = clock_mono_ms();
    driver_kick(d, id);
    CHECK(wait_runs(&a, 2, 1000));
    CHECK(atomic_load(&a.last_ms) - t0 < 200);
    driver_free(d);
}

/* A kick that lands while another task's step runs (the driver's lock is
 * released then) must not be lost until the kicked task's idle timeout. */
static void test_kick_during_another_step_is_not_lost(void) {
    driver *d = driver_new(NULL);
    REQUIRE(d != NULL);
    counter fast = {0}, slow = {.sleep_ms = 100};
    int f = driver_add(d, "fast", step, &fast);
    int s = driver_add(d, "slow", step, &slow);
    REQUIRE(f == 0 && s == 1);
    REQUIRE(driver_start(d) == 0);
    CHECK(wait_runs(&fast, 1, 1000) && wait_runs(&slow, 1, 1000));
    usleep(50000);
    for (int round = 0; round < 5; round++) {
        /* The slow task runs after the fast one in each pass: kick both, wait
         * for the slow step to begin, then kick the fast one during it. */
        int fr = atomic_load(&fast.runs), sr = atomic_load(&slow.runs);
        driver_kick(d, s);
        usleep(30000); /* the slow step is running now */
        int64_t t0 = clock_mono_ms();
        driver_kick(d, f);
        CHECK(wait_runs(&slow, sr + 1, 1000));
        CHECK(wait_runs(&fast, fr + 1, 1000));
        /* Right after the slow step ends (about 70 ms), not after the fast
         * task's idle second. */
        CHECK(atomic_load(&fast.last_ms) - t0 < 500);
    }
    driver_free(d);
}

int main(void) {
    UNIT_RUN(test_kick_runs_a_task_at_once);
    UNIT_RUN(test_kick_during_another_step_is_not_lost);
    return UNIT_END("test_driver");
}
