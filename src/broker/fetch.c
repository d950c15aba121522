/*
 * fetch.c - long-poll waiters and fetch sessions. See fetch.h.
 *
 * Waiters live in one purgatory (replica/purgatory.h) keyed by partition,
 * guarded by one mutex (mu). A waiter stays parked from fetch_wait() to
 * its finish: the broker's driver (driver.h) runs fetch_step, which takes the woken or expired ones, parks
 * each again at once (same keys, same deadline) and probes it without the lock, so an append during the probe
 * wakes it again and is never missed; a waiter whose probe says yes (or that expired, or whose client went
 * away) is cancelled and finished without the lock. Each partition counts the waiters watching it
 * (rpart.waiters), so fetch_notify() costs one atomic load when nobody waits, and the produce path never
 * takes mu then.
 *
 * Bounds: a connection has one request in flight, so waiters are bounded
 * by connections; the purgatory's own bound is FETCH_WAITERS_MAX. A client
 * that disconnects while its fetch waits has it finished at once
 * (fetch_abandon, from the network layer), so no waiter outlives its
 * connection.
 *
 * Sessions: a second mutex (smu) guards the session table; the API handler
 * holds it while it reads or updates one session (short, no I/O).
 *
 * The down-conversion budget is a token bucket (core/tbucket.h) with its own
 * lock; its burst is the larger of the per-second rate and the per-request
 * limit, so one batch's reservation (at most the per-request limit) is
 * always reachable.
 */
#include "broker/fetch.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/tbucket.h"
#include "broker/driver.h"
#include "replica/purgatory.h"

typedef struct fetch_waiter fetch_waiter;

struct fetch_waiter {
    purg_op op; /* op.owner == the waiter */
    breq *r;
    uint64_t conn_id;
    fetch_ready_fn ready;
    fetch_finish_fn finish;
    void *state;
    int64_t deadline_ms;
    bool busy;                 /* being probed (by the driver or a shutdown) */
    bool abandoned;            /* its client disconnected: finish at once */
    fetch_waiter *prev, *next; /* every waiter (for abandonment) */
    int n_keys;
    rpart *keys[];
};

struct fetch_mgr {
    broker *b;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    driver *drv; /* runs fetch_step */
    int task;
    bool accepting; /* started and not shut down */
    bool stopping;  /* answer everyone now; accept no new waiters */
    purgatory *purg;
    fetch_waiter *all;          /* list of every waiter */
    int n_waiters, max_waiters; /* waiters exist from fetch_wait to finish */
    int finishing;              /* finish() calls running (without mu) */
    bool any_abandoned;

    pthread_mutex_t smu;
    fetch_session *sessions[FETCH_SESSIONS_MAX];
    int n_sessions;
    int64_t slots; /* cached partitions across sessions */
    uint64_t rng;

    tbucket dconv; /* down-conversion work, bytes */
};

int64_t fetch_now_ms(void) { return clock_mono_ms(); }

/* ---- down-conversion budget ---------------------------------------------- */

bool fetch_dconv_reserve(broker *b, int64_t n) {
    fetch_mgr *m = b->fetch;
    if (m == NULL || n <= 0)
        return m == NULL ? false : true;
    int64_t now = fetch_now_ms();
    int64_t got = tbucket_take(&m->dconv, n, now);
    if (got == n)
        return true;
    tbucket_give(&m->dconv, got, now);
    return false;
}

void fetch_dconv_settle(broker *b, int64_t reserved, int64_t used) {
    fetch_mgr *m = b->fetch;
    if (m == NULL)
        return;
    if (used < reserved)
        tbucket_give(&m->dconv, reserved - used, fetch_now_ms());
    else if (used > reserved)
        tbucket_charge(&m->dconv, used - reserved, fetch_now_ms());
}

int64_t fetch_dconv_wait_ms(broker *b, int64_t n) {
    fetch_mgr *m = b->fetch;
    return m == NULL ? 0 : tbucket_wait_ms(&m->dconv, n, fetch_now_ms());
}

/* ---- waiters ------------------------------------------------------------ */

static void unlist_locked(fetch_mgr *m, fetch_waiter *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        m->all = w->next;
    if (w->next)
        w->next->prev = w->prev;
    m->n_waiters--;
    for (int i = 0; i < w->n_keys; i++)
        atomic_fetch_sub(&w->keys[i]->waiters, 1);
}

/* Finishes w (mu held on entry and exit; released around finish). */
static void finish_locked(fetch_mgr *m, fetch_waiter *w, bool expired) {
    purg_cancel(m->purg, &w->op);
    unlist_locked(m, w);
    m->finishing++;
    pthread_mutex_unlock(&m->mu);
    w->finish(w->r, w->state, expired);
    free(w);
    pthread_mutex_lock(&m->mu);
    /* A shutdown returns only once every answer is out (finish() done). */
    if (--m->finishing == 0 && m->n_waiters == 0)
        pthread_cond_broadcast(&m->cv);
}

#define TAKE_BATCH 64

/* One bounded step (mu held): abandoned waiters finished, then up to
 * TAKE_BATCH woken or expired ones probed or finished. Returns whether more
 * is due now. */
static bool step_locked(fetch_mgr *m) {
    purg_op *ops[TAKE_BATCH];
    bool expired[TAKE_BATCH];
    int64_t now = fetch_now_ms();
    if (m->any_abandoned) {
        m->any_abandoned = false;
        for (fetch_waiter *w = m->all, *next; w; w = next) {
            next = w->next;
            if (w->abandoned && !w->busy) {
                finish_locked(m, w, true);
                next = m->all; /* the list may have changed meanwhile */
            }
        }
    }
    if (m->stopping)
        purg_notify_all(m->purg);
    int32_t n = purg_take(m->purg, now, ops, expired, TAKE_BATCH);
    for (int32_t i = 0; i < n; i++) {
        fetch_waiter *w = ops[i]->owner;
        /* Being probed by the other stepper (the driver while a shutdown
         * steps too): it re-parked w first, and finishes it itself once the
         * probe returns (it sees stopping). */
        if (w->busy)
            continue;
        bool exp = expired[i] || m->stopping || w->abandoned;
        if (exp) {
            finish_locked(m, w, true);
            continue;
        }
        /* Parked again before the probe: an append meanwhile wakes it. */
        if (purg_park(m->purg, &w->op, (const void *const *)w->keys, w->n_keys, w->deadline_ms, now) != 0) {
            finish_locked(m, w, false);
            continue;
        }
        w->busy = true;
        pthread_mutex_unlock(&m->mu);
        bool done = w->ready(w->r, w->state);
        pthread_mutex_lock(&m->mu);
        w->busy = false;
        if (done || w->abandoned || m->stopping)
            finish_locked(m, w, !done);
    }
    return n == TAKE_BATCH || m->any_abandoned || purg_next_deadline(m->purg) <= fetch_now_ms();
}

/* The driver task (driver.h). */
static int64_t fetch_step(void *arg) {
    fetch_mgr *m = arg;
    pthread_mutex_lock(&m->mu);
    int64_t wait = 0;
    if (!step_locked(m)) {
        int64_t next = purg_next_deadline(m->purg);
        wait = next == INT64_MAX ? DRIVER_IDLE_MS : next - fetch_now_ms();
    }
    pthread_mutex_unlock(&m->mu);
    return wait < 0 ? 0 : wait;
}

static void kick_locked(fetch_mgr *m) { driver_kick(m->drv, m->task); }

int fetch_mgr_start(broker *b) {
    fetch_mgr *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->b = b;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&m->smu, NULL);
    const broker_config *cfg = b->cfg;
    int64_t per_request = cfg ? cfg->conversion_max_bytes_per_request : (int64_t)128 << 20;
    int64_t rate = cfg ? cfg->conversion_max_bytes_per_second : (int64_t)256 << 20;
    tbucket_init(&m->dconv, rate, rate > per_request ? rate : per_request, fetch_now_ms());
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->rng = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)m << 17);
    /* One request in flight per connection: no more waiters than connections. */
    int32_t max_waiters = FETCH_WAITERS_DEFAULT;
    if (cfg != NULL)
        max_waiters = cfg->max_connections < FETCH_WAITERS_MAX ? cfg->max_connections : FETCH_WAITERS_MAX;
    if (max_waiters < 1)
        max_waiters = 1;
    m->max_waiters = max_waiters;
    m->purg = purg_create(max_waiters, FETCH_WAITER_PARTITIONS_MAX);
    m->drv = b->driver;
    m->task = driver_add(b->driver, "fetch", fetch_step, m);
    b->fetch = m;
    if (m->purg == NULL || m->task < 0) {
        LOG_ERROR("fetch", "cannot set up the long-poll purgatory");
        b->fetch = NULL;
        fetch_mgr_destroy(&(broker){.fetch = m});
        return -1;
    }
    m->accepting = true;
    return 0;
}

void fetch_mgr_shutdown(broker *b) {
    fetch_mgr *m = b->fetch;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    m->accepting = false;
    /* Answer everyone here and now (the driver may be stepping too; each
     * waiter is finished once, by whoever takes it). */
    while (m->n_waiters > 0 || m->finishing > 0) {
        bool more = m->n_waiters > 0 && step_locked(m);
        if (!more && (m->n_waiters > 0 || m->finishing > 0)) {
            /* The rest are being probed or answered by the driver: wait. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 10 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        }
    }
    pthread_mutex_unlock(&m->mu);
}

void fetch_abandon(broker *b, uint64_t conn_id) {
    fetch_mgr *m = b->fetch;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    bool any = false;
    for (fetch_waiter *w = m->all; w; w = w->next)
        if (w->conn_id == conn_id && !w->abandoned) {
            w->abandoned = true;
            purg_cancel(m->purg, &w->op);
            any = true;
        }
    if (any) {
        m->any_abandoned = true;
        kick_locked(m);
    }
    pthread_mutex_unlock(&m->mu);
}

void fetch_mgr_destroy(broker *b) {
    fetch_mgr *m = b->fetch;
    if (m == NULL)
        return;
    fetch_mgr_shutdown(b);
    for (int i = 0; i < m->n_sessions; i++) {
        free(m->sessions[i]->parts);
        free(m->sessions[i]);
    }
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->smu);
    purg_destroy(m->purg);
    tbucket_destroy(&m->dconv);
    free(m);
    b->fetch = NULL;
}

void fetch_notify(broker *b, rpart *p) {
    fetch_mgr *m = b->fetch;
    /* The lock-free look is safe: a waiter counted after this load probes
     * the log after parking, and so sees this append (see fetch.h). */
    if (m == NULL || atomic_load(&p->waiters) == 0)
        return;
    pthread_mutex_lock(&m->mu);
    purg_notify(m->purg, p);
    if (purg_next_deadline(m->purg) == INT64_MIN)
        kick_locked(m);
    pthread_mutex_unlock(&m->mu);
}

bool fetch_wait(broker *b, breq *r, rpart *const *parts, int n, int64_t deadline_ms, fetch_ready_fn ready,
                fetch_finish_fn finish, void *state) {
    fetch_mgr *m = b->fetch;
    if (m == NULL || n < 0 || n > FETCH_WAITER_PARTITIONS_MAX)
        return false;
    fetch_waiter *w = calloc(1, sizeof *w + (size_t)n * sizeof(rpart *));
    if (w == NULL)
        return false;
    w->op.heap_pos = -1;
    w->op.owner = w;
    w->r = r;
    w->conn_id = r && r->net ? r->net->conn_id : 0;
    w->ready = ready;
    w->finish = finish;
    w->state = state;
    w->deadline_ms = deadline_ms;
    w->n_keys = n;
    memcpy(w->keys, parts, (size_t)n * sizeof *parts);
    pthread_mutex_lock(&m->mu);
    /* Counted by waiters, not by parked operations: the fetch step holds a
     * few out of the purgatory while it probes them. */
    if (m->stopping || !m->accepting || m->n_waiters >= m->max_waiters ||
        purg_park(m->purg, &w->op, (const void *const *)w->keys, n, deadline_ms, fetch_now_ms()) != 0) {
        pthread_mutex_unlock(&m->mu);
        free(w);
        return false;
    }
    for (int i = 0; i < n; i++)
        atomic_fetch_add(&w->keys[i]->waiters, 1);
    w->next = m->all;
    if (m->all)
        m->all->prev = w;
    m->all = w;
    m->n_waiters++;
    purg_wake(m->purg, &w->op); /* probed once right after parking */
    kick_locked(m);
    pthread_mutex_unlock(&m->mu);
    return true;
}

/* ---- sessions ------------------------------------------------------------ */

void fetch_sessions_lock(broker *b) { pthread_mutex_lock(&((fetch_mgr *)b->fetch)->smu); }
void fetch_sessions_unlock(broker *b) { pthread_mutex_unlock(&((fetch_mgr *)b->fetch)->smu); }

static void session_free_at(fetch_mgr *m, int i) {
    fetch_session *s = m->sessions[i];
    m->slots -= s->n;
    assert(m->slots >= 0);
    free(s->parts);
    free(s);
    m->sessions[i] = m->sessions[--m->n_sessions];
}

static bool evict_lru(fetch_mgr *m) {
    if (m->n_sessions == 0)
        return false;
    int oldest = 0;
    for (int i = 1; i < m->n_sessions; i++)
        if (m->sessions[i]->last_used_ms < m->sessions[oldest]->last_used_ms)
            oldest = i;
    LOG_DEBUG("fetch", "evicting fetch session %d (%d partitions)", m->sessions[oldest]->id,
              m->sessions[oldest]->n);
    session_free_at(m, oldest);
    return true;
}

fetch_session *fetch_session_find(broker *b, int32_t id) {
    fetch_mgr *m = b->fetch;
    for (int i = 0; i < m->n_sessions; i++)
        if (m->sessions[i]->id == id)
            return m->sessions[i];
    return NULL;
}

static int32_t new_session_id(fetch_mgr *m, broker *b) {
    for (int tries = 0; tries < 64; tries++) {
        /* xorshift64 */
        m->rng ^= m->rng << 13;
        m->rng ^= m->rng >> 7;
        m->rng ^= m->rng << 17;
        int32_t id = (int32_t)(m->rng & 0x7fffffff);
        if (id != 0 && fetch_session_find(b, id) == NULL)
            return id;
    }
    return 0;
}

fetch_session *fetch_session_new(broker *b, int n) {
    fetch_mgr *m = b->fetch;
    if (n > FETCH_SESSION_PARTITIONS_MAX || n > FETCH_SESSION_SLOTS_MAX)
        return NULL;
    while (m->n_sessions == FETCH_SESSIONS_MAX || m->slots + n > FETCH_SESSION_SLOTS_MAX)
        if (!evict_lru(m))
            return NULL;
    fetch_session *s = calloc(1, sizeof *s);
    int32_t id = new_session_id(m, b);
    if (s == NULL || id == 0) {
        free(s);
        return NULL;
    }
    s->id = id;
    s->epoch = 1;
    s->last_used_ms = fetch_now_ms();
    m->sessions[m->n_sessions++] = s;
    return s;
}

void fetch_session_remove(broker *b, int32_t id) {
    fetch_mgr *m = b->fetch;
    for (int i = 0; i < m->n_sessions; i++)
        if (m->sessions[i]->id == id) {
            session_free_at(m, i);
            return;
        }
}

static bool part_matches(const fetch_session_part *e, const char *topic, kuuid id, int32_t partition,
                         bool by_id) {
    if (e->partition != partition)
        return false;
    return by_id ? memcmp(e->topic_id.b, id.b, 16) == 0 : strcmp(e->topic, topic) == 0;
}

fetch_session_part *fetch_session_upsert(broker *b, fetch_session *s, const fetch_session_part *key,
                                         bool by_id) {
    fetch_mgr *m = b->fetch;
    for (int i = 0; i < s->n; i++)
        if (part_matches(&s->parts[i], key->topic, key->topic_id, key->partition, by_id))
            return &s->parts[i];
    if (s->n == FETCH_SESSION_PARTITIONS_MAX || m->slots >= FETCH_SESSION_SLOTS_MAX)
        return NULL;
    if (s->n == s->cap) {
        int ncap = s->cap ? s->cap * 2 : 8;
        if (ncap > FETCH_SESSION_PARTITIONS_MAX)
            ncap = FETCH_SESSION_PARTITIONS_MAX;
        fetch_session_part *np = realloc(s->parts, (size_t)ncap * sizeof *np);
        if (np == NULL)
            return NULL;
        s->parts = np;
        s->cap = ncap;
    }
    fetch_session_part *e = &s->parts[s->n++];
    *e = *key;
    e->sent_hw = e->sent_lso = e->sent_log_start = -2;
    m->slots++;
    return e;
}

void fetch_session_forget(broker *b, fetch_session *s, const char *topic, kuuid id, int32_t partition,
                          bool by_id) {
    fetch_mgr *m = b->fetch;
    for (int i = 0; i < s->n; i++) {
        if (part_matches(&s->parts[i], topic, id, partition, by_id)) {
            /* keep the order of the others: responses follow it */
            memmove(&s->parts[i], &s->parts[i + 1], (size_t)(s->n - i - 1) * sizeof s->parts[0]);
            s->n--;
            m->slots--;
            return;
        }
    }
}
