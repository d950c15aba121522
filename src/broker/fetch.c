/*
 * fetch.c - long-poll waiters and fetch sessions. See fetch.h.
 *
 * Waiters: one mutex (mu) guards the waiter array, every waiter's flags and
 * every partition's waiter list (partition.waiters, a singly linked list
 * of fetch_link). The fetch thread picks waiters that are woken or expired,
 * runs their probe without the lock (marking them busy so nobody frees them),
 * and finishes them without the lock after unlinking them. An append during a
 * probe sets `woken` again, so it is seen on the next round.
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

typedef struct fetch_waiter fetch_waiter;

typedef struct fetch_link {
    fetch_waiter *w;
    rpart *p;
    struct fetch_link *next;
} fetch_link;

struct fetch_waiter {
    breq *r;
    fetch_ready_fn ready;
    fetch_finish_fn finish;
    void *state;
    int64_t deadline_ms;
    bool woken; /* an append happened since the last probe (or never probed) */
    bool busy;  /* the fetch thread is probing it */
    int n_links;
    fetch_link links[];
};

struct fetch_mgr {
    broker *b;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started;
    bool stopping; /* answer everyone now; accept no new waiters */
    fetch_waiter *waiters[FETCH_WAITERS_MAX];
    int n_waiters;

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

static void unlink_waiter_locked(fetch_mgr *m, fetch_waiter *w) {
    for (int i = 0; i < w->n_links; i++) {
        fetch_link *l = &w->links[i];
        fetch_link *prev = NULL;
        fetch_link *cur = atomic_load(&l->p->waiters);
        while (cur != NULL && cur != l) {
            prev = cur;
            cur = cur->next;
        }
        assert(cur == l);
        if (cur == NULL)
            continue;
        if (prev == NULL)
            atomic_store(&l->p->waiters, (void *)l->next);
        else
            prev->next = l->next;
    }
    for (int i = 0; i < m->n_waiters; i++) {
        if (m->waiters[i] == w) {
            m->waiters[i] = m->waiters[--m->n_waiters];
            break;
        }
    }
}

static void *fetch_thread(void *arg) {
    fetch_mgr *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        int64_t now = fetch_now_ms();
        fetch_waiter *pick = NULL;
        int64_t next_deadline = now + 1000;
        for (int i = 0; i < m->n_waiters; i++) {
            fetch_waiter *w = m->waiters[i];
            if (w->busy)
                continue;
            if (w->woken || w->deadline_ms <= now || m->stopping) {
                pick = w;
                break;
            }
            if (w->deadline_ms < next_deadline)
                next_deadline = w->deadline_ms;
        }
        if (pick != NULL) {
            bool expired = pick->deadline_ms <= now || m->stopping;
            pick->woken = false;
            pick->busy = true;
            pthread_mutex_unlock(&m->mu);
            bool done = expired || pick->ready(pick->r, pick->state);
            pthread_mutex_lock(&m->mu);
            pick->busy = false;
            if (done) {
                unlink_waiter_locked(m, pick);
                pthread_mutex_unlock(&m->mu);
                pick->finish(pick->r, pick->state, expired);
                free(pick);
                pthread_mutex_lock(&m->mu);
            }
            continue;
        }
        if (m->stopping && m->n_waiters == 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait_ms = next_deadline - now;
        if (wait_ms < 1)
            wait_ms = 1;
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

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
    b->fetch = m;
    if (pthread_create(&m->thread, NULL, fetch_thread, m) != 0) {
        LOG_ERROR("fetch", "cannot start the fetch thread");
        b->fetch = NULL;
        fetch_mgr_destroy(&(broker){.fetch = m});
        return -1;
    }
    m->thread_started = true;
    return 0;
}

void fetch_mgr_shutdown(broker *b) {
    fetch_mgr *m = b->fetch;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    bool join = m->thread_started;
    m->stopping = true;
    m->thread_started = false;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (join)
        pthread_join(m->thread, NULL);
    assert(m->n_waiters == 0);
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
    tbucket_destroy(&m->dconv);
    free(m);
    b->fetch = NULL;
}

void fetch_notify(broker *b, rpart *p) {
    fetch_mgr *m = b->fetch;
    /* The lock-free look is safe: a waiter linked after this load probes the
     * log after linking, and so sees this append (see fetch.h). */
    if (m == NULL || atomic_load(&p->waiters) == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    bool any = false;
    for (fetch_link *l = atomic_load(&p->waiters); l != NULL; l = l->next) {
        l->w->woken = true;
        any = true;
    }
    if (any)
        pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

bool fetch_wait(broker *b, breq *r, rpart *const *parts, int n, int64_t deadline_ms, fetch_ready_fn ready,
                fetch_finish_fn finish, void *state) {
    fetch_mgr *m = b->fetch;
    if (m == NULL || n < 0 || n > FETCH_WAITER_PARTITIONS_MAX)
        return false;
    fetch_waiter *w = calloc(1, sizeof *w + (size_t)n * sizeof(fetch_link));
    if (w == NULL)
        return false;
    *w = (fetch_waiter){r, ready, finish, state, deadline_ms, true, false, n};
    pthread_mutex_lock(&m->mu);
    if (m->stopping || !m->thread_started || m->n_waiters == FETCH_WAITERS_MAX) {
        pthread_mutex_unlock(&m->mu);
        free(w);
        return false;
    }
    for (int i = 0; i < n; i++) {
        fetch_link *l = &w->links[i];
        l->w = w;
        l->p = parts[i];
        l->next = atomic_load(&parts[i]->waiters);
        atomic_store(&parts[i]->waiters, (void *)l);
    }
    m->waiters[m->n_waiters++] = w;
    pthread_cond_signal(&m->cv);
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
