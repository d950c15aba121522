/*
 * sim.c - the generator, the event queue and clock, simulated environments
 * and the network. See sim.h.
 */
#include "sim.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- generator ---------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sim_rand(sim_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_below(sim_rng *r, uint64_t n) {
    assert(n > 0);
    /* Rejection sampling keeps it uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = sim_rand(r);
    while (x >= limit);
    return x % n;
}

int64_t sim_range(sim_rng *r, int64_t lo, int64_t hi) {
    assert(lo <= hi);
    return lo + (int64_t)sim_below(r, (uint64_t)(hi - lo) + 1);
}

bool sim_chance(sim_rng *r, uint32_t per_million) {
    return per_million > 0 && sim_below(r, 1000000) < per_million;
}

/* ---- event queue ---------------------------------------------------------- */

static bool ev_before(const sim_event *a, const sim_event *b) {
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_init(sim *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    sim_rng_seed(&s->rng, seed);
    const char *v = getenv("SIM_VERBOSE");
    s->verbose = v && *v && *v != '0';
}

void sim_free(sim *s) {
    free(s->heap);
    s->heap = NULL;
    s->n_events = s->cap_events = 0;
}

void sim_at(sim *s, int64_t at, sim_fn fn, void *ctx, void *arg) {
    if (at < s->now)
        at = s->now;
    if (s->n_events == s->cap_events) {
        if (s->cap_events >= SIM_EVENTS_MAX) {
            sim_fail(s, "event queue overflow (%zu events): a scenario schedules without bound", s->n_events);
            return;
        }
        size_t ncap = s->cap_events ? s->cap_events * 2 : 1024;
        sim_event *nh = realloc(s->heap, ncap * sizeof *nh);
        if (nh == NULL) {
            sim_fail(s, "out of memory for events");
            return;
        }
        s->heap = nh;
        s->cap_events = ncap;
    }
    size_t i = s->n_events++;
    sim_event e = {at, s->next_seq++, fn, ctx, arg};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(&e, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

void sim_after(sim *s, int64_t delay, sim_fn fn, void *ctx, void *arg) {
    sim_at(s, s->now + (delay > 0 ? delay : 0), fn, ctx, arg);
}

static sim_event pop(sim *s) {
    sim_event top = s->heap[0];
    sim_event last = s->heap[--s->n_events];
    size_t i = 0, n = s->n_events;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_event *best = &last;
        if (l < n && ev_before(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < n && ev_before(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n > 0)
        s->heap[i] = last;
    return top;
}

bool sim_run(sim *s, int64_t until) {
    while (!s->failed && s->n_events > 0 && s->heap[0].at <= until) {
        sim_event e = pop(s);
        assert(e.at >= s->now);
        s->now = e.at;
        s->steps++;
        e.fn(e.ctx, e.arg);
        if (!s->failed && s->check)
            s->check(s, s->check_ctx);
    }
    if (!s->failed && s->now < until && until != INT64_MAX)
        s->now = until;
    return !s->failed;
}

void sim_fail(sim *s, const char *fmt, ...) {
    if (s->failed)
        return;
    s->failed = true;
    int n = snprintf(s->failure, sizeof s->failure, "t=%lld ms step %llu: ", (long long)s->now,
                     (unsigned long long)s->steps);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof s->failure)
        vsnprintf(s->failure + n, sizeof s->failure - (size_t)n, fmt, ap);
    va_end(ap);
}

void sim_trace(sim *s, const char *fmt, ...) {
    if (!s->verbose)
        return;
    fprintf(stderr, "[sim t=%lld] ", (long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- environments ------------------------------------------------------------ */

static int64_t env_mono_ns(void *ctx) { return ((sim_env *)ctx)->s->now * 1000000; }

static int64_t env_wall_ms(void *ctx) {
    sim_env *e = ctx;
    return e->wall_epoch_ms + e->s->now;
}

static void env_random(void *ctx, void *buf, size_t n) {
    sim_env *e = ctx;
    uint8_t *b = buf;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)sim_rand(&e->s->rng);
}

void sim_env_init(sim_env *e, sim *s, const sl_vfs *vfs, int32_t node_id) {
    e->s = s;
    e->wall_epoch_ms = SIM_WALL_EPOCH_MS;
    e->env = (sl_env){e, env_mono_ns, env_wall_ms, env_random, vfs, node_id};
}

/* ---- network --------------------------------------------------------------------- */

typedef struct sim_msg {
    sim_net *net;
    int from, to;
    size_t len;
    uint8_t data[];
} sim_msg;

void sim_net_init(sim_net *n, sim *s, const sim_net_faults *f, sim_deliver_fn deliver, void *ctx) {
    memset(n, 0, sizeof *n);
    n->s = s;
    n->f = *f;
    if (n->f.max_delay_ms < n->f.min_delay_ms)
        n->f.max_delay_ms = n->f.min_delay_ms;
    n->deliver = deliver;
    n->ctx = ctx;
}

static void deliver_msg(void *ctx, void *arg) {
    sim_net *n = ctx;
    sim_msg *m = arg;
    /* A partition that starts while a message is in flight drops it too. */
    if (!n->blocked[m->from][m->to]) {
        n->delivered++;
        n->deliver(n->ctx, m->from, m->to, m->data, m->len);
    } else {
        n->dropped++;
    }
    free(m);
}

static void enqueue(sim_net *n, int from, int to, const uint8_t *msg, size_t len) {
    sim_msg *m = malloc(sizeof *m + len);
    if (m == NULL) {
        sim_fail(n->s, "out of memory for a message");
        return;
    }
    m->net = n;
    m->from = from;
    m->to = to;
    m->len = len;
    memcpy(m->data, msg, len);
    sim_after(n->s, sim_range(&n->s->rng, n->f.min_delay_ms, n->f.max_delay_ms), deliver_msg, n, m);
}

void sim_net_send(sim_net *n, int from, int to, const uint8_t *msg, size_t len) {
    assert(from >= 0 && from < SIM_NET_NODES_MAX && to >= 0 && to < SIM_NET_NODES_MAX);
    n->sent++;
    if (n->blocked[from][to] || sim_chance(&n->s->rng, n->f.drop_per_million)) {
        n->dropped++;
        return;
    }
    enqueue(n, from, to, msg, len);
    if (sim_chance(&n->s->rng, n->f.dup_per_million)) {
        n->duplicated++;
        enqueue(n, from, to, msg, len);
    }
}

void sim_net_block(sim_net *n, int from, int to, bool blocked) { n->blocked[from][to] = blocked; }

void sim_net_block_pair(sim_net *n, int a, int b, bool blocked) {
    n->blocked[a][b] = blocked;
    n->blocked[b][a] = blocked;
}

void sim_net_partition(sim_net *n, int nodes, const bool *in_a) {
    for (int i = 0; i < nodes; i++)
        for (int j = 0; j < nodes; j++)
            n->blocked[i][j] = in_a[i] != in_a[j];
}

void sim_net_heal(sim_net *n) { memset(n->blocked, 0, sizeof n->blocked); }
