/*
 * metrics.c - the metric registry and the text formats. See metrics.h.
 */
#include "obs/metrics.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

_Thread_local int obs_tls_shard = -1;
static atomic_uint next_shard;

int obs_pick_shard(void) {
    unsigned i = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed);
    if (i >= OBS_SHARDS)
        i = OBS_SHARDS; /* the shared shard, for good */
    obs_tls_shard = (int)i;
    return (int)i;
}

obs_metrics *obs_metrics_create(bool enabled, int max_topics) {
    obs_metrics *m = aligned_alloc(64, (sizeof(obs_metrics) + 63) / 64 * 64);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    m->enabled = enabled;
    m->shard[OBS_SHARDS].shared = true;
    if (max_topics < 0)
        max_topics = 0;
    if (max_topics > OBS_TOPICS_MAX)
        max_topics = OBS_TOPICS_MAX;
    m->max_topics = enabled ? max_topics : 0;
    if (m->max_topics > 0) {
        size_t cap = 16;
        while (cap < (size_t)m->max_topics * 2)
            cap *= 2;
        m->slots = calloc(cap, sizeof *m->slots);
        if (m->slots == NULL) {
            free(m);
            return NULL;
        }
        m->cap = cap;
    }
    pthread_mutex_init(&m->mu, NULL);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    m->start_wall_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    return m;
}

void obs_metrics_destroy(obs_metrics *m) {
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(atomic_load(&m->slots[i]));
    free(m->slots);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* FNV-1a. */
static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Probes for the name; returns the entry, or NULL with *free_slot set to the
 * first empty slot (or cap when the probe found none). */
static obs_topic *probe(obs_metrics *m, const char *name, size_t len, uint32_t h, size_t *free_slot) {
    size_t mask = m->cap - 1;
    for (size_t k = 0; k < m->cap; k++) {
        size_t i = (h + k) & mask;
        obs_topic *t = atomic_load_explicit(&m->slots[i], memory_order_acquire);
        if (t == NULL) {
            *free_slot = i;
            return NULL;
        }
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    }
    *free_slot = m->cap;
    return NULL;
}

obs_topic *obs_topic_get(obs_metrics *m, const char *name, size_t len) {
    if (m == NULL || m->cap == 0 || len >= sizeof(((obs_topic *)0)->name))
        return NULL;
    uint32_t h = name_hash(name, len);
    size_t slot;
    obs_topic *t = probe(m, name, len, h, &slot);
    if (t != NULL)
        return t;
    pthread_mutex_lock(&m->mu);
    /* Another thread may have inserted it meanwhile. */
    t = probe(m, name, len, h, &slot);
    if (t == NULL && slot < m->cap && atomic_load(&m->n_topics) < m->max_topics) {
        t = aligned_alloc(64, sizeof *t);
        if (t != NULL) {
            memset(t, 0, sizeof *t);
            t->hash = h;
            t->len = (uint32_t)len;
            memcpy(t->name, name, len);
            atomic_store_explicit(&m->slots[slot], t, memory_order_release);
            atomic_fetch_add(&m->n_topics, 1);
        }
    }
    if (t == NULL)
        obs_add(&m->topics_dropped, 1);
    pthread_mutex_unlock(&m->mu);
    return t;
}

obs_topic *obs_topic_find(obs_metrics *m, const char *name, size_t len) {
    if (m == NULL || m->cap == 0 || len >= sizeof(((obs_topic *)0)->name))
        return NULL;
    size_t slot;
    return probe(m, name, len, name_hash(name, len), &slot);
}

static uint64_t ld(_Atomic uint64_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

void obs_totals(obs_metrics *m, obs_counters *out, uint64_t *malformed) {
    memset(out, 0, sizeof *out);
    uint64_t bad = 0;
    for (int i = 0; i <= OBS_SHARDS; i++) {
        obs_shard *s = &m->shard[i];
        out->messages_in += ld(&s->messages_in);
        out->bytes_in += ld(&s->bytes_in);
        out->bytes_out += ld(&s->bytes_out);
        out->produce_requests += ld(&s->produce_requests);
        out->produce_failed += ld(&s->produce_failed);
        out->fetch_requests += ld(&s->fetch_requests);
        out->fetch_failed += ld(&s->fetch_failed);
        bad += ld(&s->malformed);
    }
    if (malformed)
        *malformed = bad;
}

void obs_topic_counters(obs_topic *t, obs_counters *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < OBS_TOPIC_STRIPES; i++) {
        obs_topic_stripe *st = &t->stripe[i];
        out->messages_in += ld(&st->messages_in);
        out->bytes_in += ld(&st->bytes_in);
        out->bytes_out += ld(&st->bytes_out);
        out->produce_requests += ld(&st->produce_requests);
        out->produce_failed += ld(&st->produce_failed);
        out->fetch_requests += ld(&st->fetch_requests);
        out->fetch_failed += ld(&st->fetch_failed);
    }
}

void obs_api_counts(obs_metrics *m, int key, uint64_t *requests, uint64_t *closed) {
    int k = obs_api_slot(key);
    uint64_t r = 0, c = 0;
    for (int i = 0; i <= OBS_SHARDS; i++) {
        r += ld(&m->shard[i].requests[k]);
        c += ld(&m->shard[i].closed[k]);
    }
    *requests = r;
    *closed = c;
}

void obs_api_hist(obs_metrics *m, int key, obs_stage stage, obs_hist_snap *out) {
    assert(stage >= 0 && stage < OBS_STAGES);
    int k = obs_api_slot(key);
    memset(out, 0, sizeof *out);
    for (int i = 0; i <= OBS_SHARDS; i++) {
        obs_hist *h = &m->shard[i].lat[k][stage];
        for (int b = 0; b < OBS_HIST_BUCKETS; b++)
            out->bucket[b] += ld(&h->bucket[b]);
        out->sum_ns += ld(&h->sum_ns);
    }
    for (int b = 0; b < OBS_HIST_BUCKETS; b++)
        out->count += out->bucket[b];
}

void obs_topics_each(obs_metrics *m, bool (*fn)(void *ctx, obs_topic *t), void *ctx) {
    for (size_t i = 0; i < m->cap; i++) {
        obs_topic *t = atomic_load_explicit(&m->slots[i], memory_order_acquire);
        if (t != NULL && !fn(ctx, t))
            return;
    }
}

double obs_bucket_le_ms(int i) {
    assert(i >= 0 && i < OBS_HIST_FINITE);
    return (double)(1u << i) / 8.0;
}

/* ---- text buffers --------------------------------------------------------------------- */

void obs_buf_init(obs_buf *b, size_t max) { *b = (obs_buf){.max = max}; }

void obs_buf_free(obs_buf *b) {
    free(b->p);
    *b = (obs_buf){0};
}

static bool reserve(obs_buf *b, size_t n) {
    if (b->full)
        return false;
    if (b->len + n + 1 > b->max) {
        b->full = true;
        return false;
    }
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + n + 1)
        ncap *= 2;
    if (ncap > b->max)
        ncap = b->max;
    char *np = realloc(b->p, ncap);
    if (np == NULL) {
        b->full = true;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

void obs_buf_put(obs_buf *b, const char *s, size_t n) {
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void obs_buf_puts(obs_buf *b, const char *s) { obs_buf_put(b, s, strlen(s)); }

void obs_buf_printf(obs_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        obs_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *obs_buf_take(obs_buf *b, size_t *len) {
    if (b->p == NULL) {
        b->p = malloc(1);
        if (b->p == NULL)
            return NULL;
        b->p[0] = 0;
    }
    char *p = b->p;
    *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- Prometheus and JSON ------------------------------------------------------------- */

void obs_prom_family(obs_buf *b, const char *name, const char *type, const char *help) {
    obs_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (c == 0xE0 && s[1] < 0xA0)
        return 0; /* overlong */
    if (c == 0xED && s[1] >= 0xA0)
        return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90)
        return 0; /* overlong */
    if (c == 0xF4 && s[1] >= 0x90)
        return 0; /* past U+10FFFF */
    return len;
}

/* Names chosen by clients (group ids) may hold any bytes, and one invalid
 * UTF-8 label would make Prometheus refuse the whole scrape: bytes that are
 * not UTF-8 are written as U+FFFD. */
static const char replacement[] = "\xEF\xBF\xBD";

void obs_prom_escape(obs_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = u[i];
        const char *esc = c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : NULL;
        size_t len = esc ? 1 : utf8_len(u + i, n - i);
        if (esc == NULL && len > 0) {
            i += len;
            continue;
        }
        obs_buf_put(b, s + run, i - run);
        obs_buf_puts(b, esc ? esc : replacement);
        i++;
        run = i;
    }
    obs_buf_put(b, s + run, n - run);
}

void obs_prom_hist(obs_buf *b, const char *name, const char *labels, const obs_hist_snap *h) {
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < OBS_HIST_FINITE; i++) {
        cum += h->bucket[i];
        obs_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, obs_bucket_le_ms(i),
                       (unsigned long long)cum);
    }
    cum += h->bucket[OBS_HIST_FINITE];
    obs_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    obs_buf_printf(b, "%s_sum{%s} %.6f\n", name, labels, (double)h->sum_ns / 1e6);
    obs_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

void obs_json_str(obs_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    obs_buf_put(b, "\"", 1);
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = u[i];
        size_t len = c >= 0x20 && c != '"' && c != '\\' ? utf8_len(u + i, n - i) : 0;
        if (len > 0) {
            i += len;
            continue;
        }
        obs_buf_put(b, s + run, i - run);
        if (c == '"')
            obs_buf_puts(b, "\\\"");
        else if (c == '\\')
            obs_buf_puts(b, "\\\\");
        else if (c < 0x20)
            obs_buf_printf(b, "\\u%04x", c);
        else
            obs_buf_puts(b, replacement);
        i++;
        run = i;
    }
    obs_buf_put(b, s + run, n - run);
    obs_buf_put(b, "\"", 1);
}
