/*
 * driver.c - the broker's timer thread. See driver.h.
 *
 * State under mu: each task's due time (monotonic ms) and a kicked flag;
 * the thread runs the due ones without the lock, in registration order, then
 * sleeps until the earliest due time or a kick.
 */
#include "broker/driver.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "core/env.h"
#include "core/log.h"

typedef struct task {
    const char *name;
    driver_step_fn step;
    void *ctx;
    int64_t due; /* monotonic ms */
} task;

struct driver {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stopping;
    task tasks[DRIVER_TASKS_MAX];
    int n;
    const sl_env *env;
};

driver *driver_new(const sl_env *env) {
    driver *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->env = env;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    return d;
}

int driver_add(driver *d, const char *name, driver_step_fn step, void *ctx) {
    if (d == NULL || d->started || d->n == DRIVER_TASKS_MAX)
        return -1;
    d->tasks[d->n] = (task){name, step, ctx, 0};
    return d->n++;
}

static void *driver_main(void *arg) {
    driver *d = arg;
    sl_env_bind(d->env);
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        int64_t now = clock_mono_ms();
        int64_t next = now + DRIVER_IDLE_MS;
        for (int i = 0; i < d->n && !d->stopping; i++) {
            task *t = &d->tasks[i];
            if (t->due > now) {
                if (t->due < next)
                    next = t->due;
                continue;
            }
            /* Due from now on unless the step asks otherwise; a kick during
             * the step makes it due again. */
            t->due = INT64_MAX;
            pthread_mutex_unlock(&d->mu);
            int64_t wait = t->step(t->ctx);
            pthread_mutex_lock(&d->mu);
            if (wait < 0)
                wait = 0;
            if (wait > DRIVER_IDLE_MS)
                wait = DRIVER_IDLE_MS;
            int64_t at = clock_mono_ms() + wait;
            if (at < t->due)
                t->due = at;
            if (t->due < next)
                next = t->due;
        }
        /* A kick during a step (the lock was released) made its task due:
         * look again under the lock, or its signal would be lost. */
        for (int i = 0; i < d->n; i++)
            if (d->tasks[i].due < next)
                next = d->tasks[i].due;
        now = clock_mono_ms();
        if (next <= now || d->stopping)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait_ms = next - now;
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        /* Woken early by a kick, which has set a due time of now. */
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int driver_start(driver *d) {
    if (d == NULL)
        return -1;
    if (pthread_create(&d->thread, NULL, driver_main, d) != 0) {
        LOG_ERROR("broker", "cannot start the driver thread");
        return -1;
    }
    d->started = true;
    return 0;
}

void driver_kick(driver *d, int id) {
    if (d == NULL || id < 0 || id >= d->n)
        return;
    pthread_mutex_lock(&d->mu);
    d->tasks[id].due = 0;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void driver_stop(driver *d) {
    if (d == NULL || !d->started)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    d->started = false;
}

void driver_free(driver *d) {
    if (d == NULL)
        return;
    driver_stop(d);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}
