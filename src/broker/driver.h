/*
 * driver.h - the broker's one timer thread: it runs every module's periodic
 * and deadline-driven work (the long-poll purgatory, the group coordinator
 * shards, storage and metadata housekeeping) as steps, instead of each
 * module starting its own condvar thread.
 *
 * A task is a step function that does what is due now, in a bounded amount
 * of work, and returns how many milliseconds until it wants to run again
 * (0: at once, it has more to do). driver_kick() makes a task due now and
 * wakes the thread; it is cheap and may be called from any thread (a
 * produce waking long polls, a coordinator with a new deadline). Tasks run
 * one at a time, in turn, so a task's step bounds how long it can delay the
 * others; each keeps its own clock (the step reads it), so monotonic and
 * wall-clock deadlines do not mix here.
 *
 * Lifecycle: driver_new(), driver_add() for each task, driver_start();
 * driver_stop() joins the thread (steps in progress finish first);
 * driver_free(). A driver that was never started runs nothing (tests step
 * modules by hand).
 */
#ifndef SLUICE_BROKER_DRIVER_H
#define SLUICE_BROKER_DRIVER_H

#include <stdint.h>

#define DRIVER_TASKS_MAX 8
#define DRIVER_IDLE_MS   1000 /* the longest a task sleeps, whatever it asks */

typedef struct driver driver;

/* Does what is due; returns milliseconds until the next step (>= 0). */
typedef int64_t (*driver_step_fn)(void *ctx);

/* env (may be NULL) is bound to the driver thread (log lines carry its node). */
struct sl_env;
driver *driver_new(const struct sl_env *env);
/* Registers a task before driver_start(); returns its id, or -1 when full. */
int driver_add(driver *d, const char *name, driver_step_fn step, void *ctx);
int driver_start(driver *d);
/* Makes task id due now (NULL d or id < 0: nothing). Any thread. */
void driver_kick(driver *d, int id);
void driver_stop(driver *d);
void driver_free(driver *d);

#endif
