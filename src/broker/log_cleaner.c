/*
 * log_cleaner.c - the broker's cleaner threads. See log_cleaner.h.
 */
#include "broker/log_cleaner.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/env.h"
#include "core/log.h"
#include "storage/cleaner.h"

#define SKIP_MAX    64
#define SKIP_MIN_MS 60000 /* a failed log waits at least this, or 20 back-offs */

typedef struct cthread {
    cleaners *owner;
    cleaner *c;
    pthread_t tid;
    bool started;
} cthread;

struct cleaners {
    const broker_config *bc;
    parts *ps;
    const sl_env *env;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    plog *busy[CLEANERS_MAX]; /* the log each thread is cleaning (mu) */
    int n;
    cthread t[CLEANERS_MAX];
    /* Logs a pass failed on (a corrupt batch, a disk error), left alone
     * until `until` (wall ms) so a thread does not retry them in a loop
     * (mu). */
    struct {
        plog *l;
        int64_t until;
    } skip[SKIP_MAX];
    /* The shared I/O budget (mu): bytes allowed since io_start_ns. */
    double io_rate;
    int64_t io_start_ns, io_bytes;
};

/* Sleeps until the shared budget covers `bytes` more (in slices, so a stop
 * is seen within 100 ms). false once stopping. */
static bool io_throttle(void *ctx, int64_t bytes) {
    cleaners *cs = ctx;
    if (atomic_load(&cs->stop))
        return false;
    if (cs->io_rate >= 1e17)
        return true;
    pthread_mutex_lock(&cs->mu);
    int64_t now = clock_mono_ns();
    /* Budget left unused while idle carries over for 100 ms at most. */
    int64_t spent_until = cs->io_start_ns + (int64_t)((double)cs->io_bytes / cs->io_rate * 1e9);
    if (now - spent_until > 100000000) {
        cs->io_start_ns = now - 100000000;
        cs->io_bytes = 0;
    }
    cs->io_bytes += bytes;
    int64_t due_ns = cs->io_start_ns + (int64_t)((double)cs->io_bytes / cs->io_rate * 1e9);
    pthread_mutex_unlock(&cs->mu);
    while (!atomic_load(&cs->stop) && (now = clock_mono_ns()) < due_ns) {
        int64_t d = due_ns - now;
        if (d > 100000000)
            d = 100000000;
        struct timespec ts = {0, (long)d};
        nanosleep(&ts, NULL);
    }
    return !atomic_load(&cs->stop);
}

typedef struct pick {
    cleaners *cs;
    rpart *best;
    double best_ratio;
    cleaner_log_config best_cfg;
    int64_t now;
} pick;

static bool busy_locked(cleaners *cs, plog *l, int64_t now) {
    for (int i = 0; i < cs->n; i++)
        if (cs->busy[i] == l)
            return true;
    for (int i = 0; i < SKIP_MAX; i++)
        if (cs->skip[i].l == l && now < cs->skip[i].until)
            return true;
    return false;
}

static void skip_for_a_while(cleaners *cs, plog *l, int64_t now) {
    int64_t wait = cs->bc->log_cleaner_backoff_ms * 20;
    if (wait < SKIP_MIN_MS)
        wait = SKIP_MIN_MS;
    pthread_mutex_lock(&cs->mu);
    int slot = 0;
    for (int i = 0; i < SKIP_MAX; i++) {
        if (cs->skip[i].l == l || cs->skip[i].until < cs->skip[slot].until) {
            slot = i;
            if (cs->skip[i].l == l)
                break;
        }
    }
    cs->skip[slot].l = l;
    cs->skip[slot].until = now + wait;
    pthread_mutex_unlock(&cs->mu);
}

static bool consider(void *ctx, rpart *p) {
    pick *pk = ctx;
    cleaner_log_config lc;
    rpart_lock(p);
    bool compact = (p->cfg.cleanup_policy & CONFIG_CLEANUP_COMPACT) != 0 && p->cfg_error == NULL;
    lc.delete_retention_ms = p->cfg.delete_retention_ms;
    lc.min_compaction_lag_ms = p->cfg.min_compaction_lag_ms;
    lc.max_compaction_lag_ms = p->cfg.max_compaction_lag_ms;
    lc.min_cleanable_ratio = p->cfg.min_cleanable_dirty_ratio;
    rpart_unlock(p);
    plog *l = rpart_log(p);
    if (!compact || l == NULL || plog_is_offline(l) || atomic_load(&p->removed))
        return !atomic_load(&pk->cs->stop);
    pthread_mutex_lock(&pk->cs->mu);
    bool busy = busy_locked(pk->cs, l, pk->now);
    pthread_mutex_unlock(&pk->cs->mu);
    cleaner_stats st;
    if (busy || cleaner_measure(l, &lc, pk->now, &st) != STORAGE_OK || !st.due)
        return !atomic_load(&pk->cs->stop);
    /* A log whose horizon or lag made it due counts as fully dirty. */
    double ratio = st.dirty_ratio >= lc.min_cleanable_ratio ? st.dirty_ratio : 1.0;
    if (pk->best == NULL || ratio > pk->best_ratio) {
        if (pk->best)
            rpart_release(pk->best);
        atomic_fetch_add(&p->refs, 1);
        pk->best = p;
        pk->best_ratio = ratio;
        pk->best_cfg = lc;
    }
    return !atomic_load(&pk->cs->stop);
}

static void *cleaner_main(void *arg) {
    cthread *t = arg;
    cleaners *cs = t->owner;
    int me = (int)(t - cs->t);
    sl_env_bind(cs->env);
    while (!atomic_load(&cs->stop)) {
        pick pk = {.cs = cs, .now = cs->env ? cs->env->wall_ms(cs->env->ctx) : clock_wall_ms()};
        parts_each(cs->ps, consider, &pk);
        plog *l = pk.best ? rpart_log(pk.best) : NULL;
        bool mine = false;
        if (l != NULL) {
            pthread_mutex_lock(&cs->mu);
            if (!busy_locked(cs, l, pk.now)) {
                cs->busy[me] = l;
                mine = true;
            }
            pthread_mutex_unlock(&cs->mu);
        }
        if (mine) {
            cleaner_stats st;
            int64_t t0 = clock_mono_ns();
            int rc = cleaner_clean(t->c, l, &pk.best_cfg, pk.now, false, &st);
            double secs = (double)(clock_mono_ns() - t0) / 1e9;
            if (rc != STORAGE_OK) {
                LOG_WARN("cleaner", "partition %s-%d: not cleaned: %s; left alone for a while",
                         pk.best->topic, pk.best->index, storage_strerror(rc));
                skip_for_a_while(cs, l, pk.now);
            } else if (st.segments_out > 0)
                LOG_INFO("cleaner",
                         "partition %s-%d: cleaned up to offset %" PRId64 ": %d segment(s) into %d, %" PRId64
                         " of %" PRId64 " records kept, %" PRId64 " bytes read, %" PRId64
                         " written, dirty ratio was %.2f, %.3f s",
                         pk.best->topic, pk.best->index, st.map_end, st.segments_in, st.segments_out,
                         st.records_kept, st.records_read, st.bytes_read, st.bytes_written, st.dirty_ratio,
                         secs);
            pthread_mutex_lock(&cs->mu);
            cs->busy[me] = NULL;
            pthread_mutex_unlock(&cs->mu);
        }
        if (pk.best)
            rpart_release(pk.best);
        if (mine)
            continue; /* more may be due */
        /* Nothing due: back off (a stop wakes the wait). */
        int64_t ms = cs->bc->log_cleaner_backoff_ms;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&cs->mu);
        if (!atomic_load(&cs->stop))
            pthread_cond_timedwait(&cs->cv, &cs->mu, &ts);
        pthread_mutex_unlock(&cs->mu);
    }
    sl_env_bind(NULL);
    return NULL;
}

cleaners *cleaners_start(const broker_config *bc, parts *ps, const sl_env *env) {
    if (!bc->log_cleaner_enable || bc->log_cleaner_threads <= 0 || ps == NULL)
        return NULL;
    cleaners *cs = calloc(1, sizeof *cs);
    if (cs == NULL)
        return NULL;
    cs->bc = bc;
    cs->ps = ps;
    cs->env = env;
    cs->n = bc->log_cleaner_threads < CLEANERS_MAX ? bc->log_cleaner_threads : CLEANERS_MAX;
    cs->io_rate = bc->log_cleaner_io_max_bytes_per_second > 1 ? bc->log_cleaner_io_max_bytes_per_second : 1;
    cs->io_start_ns = clock_mono_ns();
    pthread_mutex_init(&cs->mu, NULL);
    pthread_cond_init(&cs->cv, NULL);
    int64_t share = bc->log_cleaner_dedupe_buffer_size / cs->n;
    if (share < CLEANER_MAP_MIN_BYTES) {
        LOG_WARN("cleaner",
                 "log.cleaner.dedupe.buffer.size gives each of %d thread(s) %" PRId64
                 " bytes; using the smallest map, %d bytes",
                 cs->n, share, CLEANER_MAP_MIN_BYTES);
        share = CLEANER_MAP_MIN_BYTES;
    }
    cleaner_opts o = {.dedupe_buffer_bytes = share, .throttle = io_throttle, .throttle_ctx = cs};
    for (int i = 0; i < cs->n; i++) {
        cs->t[i].owner = cs;
        cs->t[i].c = cleaner_new(&o);
        if (cs->t[i].c == NULL || pthread_create(&cs->t[i].tid, NULL, cleaner_main, &cs->t[i]) != 0) {
            LOG_ERROR("cleaner", "cannot start cleaner thread %d", i);
            cleaners_stop(cs);
            return NULL;
        }
        cs->t[i].started = true;
    }
    LOG_INFO("cleaner", "%d cleaner thread(s), %" PRId64 " bytes of key map each", cs->n, share);
    return cs;
}

void cleaners_stop(cleaners *cs) {
    if (cs == NULL)
        return;
    pthread_mutex_lock(&cs->mu);
    atomic_store(&cs->stop, true);
    pthread_cond_broadcast(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
    for (int i = 0; i < cs->n; i++) {
        if (cs->t[i].started)
            pthread_join(cs->t[i].tid, NULL);
        cleaner_free(cs->t[i].c);
    }
    pthread_cond_destroy(&cs->cv);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}
