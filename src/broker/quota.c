/*
 * quota.c - client quota enforcement (quota.h): resolution of the quota
 * that applies, and a table of rates keyed by kind and entity tags.
 *
 * The table is a chained hash of BQUOTA_BUCKETS buckets under one mutex.
 * An entry is (kind, tag user, tag client id) and its rate. When the
 * table holds BQUOTA_RATES_MAX entries, a sweep drops those idle for the
 * rate's whole span (they would measure nothing), else the least recently
 * used one: O(entries), at most once per new entity past the limit.
 */
#include "broker/quota.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rate.h"

#define BQUOTA_BUCKETS 1024

typedef struct qentry {
    struct qentry *next;
    bquota_kind kind;
    uint32_t hash;
    int64_t last_ms;
    char *user, *client; /* tags: "" when the entity leaves one out */
    rate r;              /* the byte and request quotas */
    rate_tokens tb;      /* the controller mutation quota */
} qentry;

struct bquota {
    pthread_mutex_t mu;
    int32_t samples;
    int64_t window_ms;
    qentry *buckets[BQUOTA_BUCKETS];
    int64_t n;
    bquota_stats st;
};

static const char *const key_of[BQUOTA_KINDS] = {
    QUOTA_KEY_PRODUCER_BYTE_RATE,
    QUOTA_KEY_CONSUMER_BYTE_RATE,
    QUOTA_KEY_REQUEST_PERCENTAGE,
    QUOTA_KEY_CONTROLLER_MUTATION_RATE,
};

const char *bquota_kind_name(bquota_kind kind) {
    static const char *const names[BQUOTA_KINDS] = {"produce", "fetch", "request", "controller_mutation"};
    return kind >= 0 && kind < BQUOTA_KINDS ? names[kind] : "?";
}

bquota *bquota_create(int32_t samples, int64_t window_ms) {
    bquota *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    q->samples = samples;
    q->window_ms = window_ms;
    return q;
}

void bquota_destroy(bquota *q) {
    if (q == NULL)
        return;
    for (int i = 0; i < BQUOTA_BUCKETS; i++)
        for (qentry *e = q->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e->user);
            free(e->client);
            free(e);
        }
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static void copy_tag(char *out, size_t n, const char *s, size_t len) {
    if (n == 0)
        return;
    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

bool bquota_resolve(const md_image *img, bquota_kind kind, const char *user, kstr client_id, double *bound,
                    char *tag_user, size_t tag_user_n, char *tag_client, size_t tag_client_n) {
    const md_quota_set *s = md_image_quotas(img);
    if (md_quota_set_count(s) == 0 || kind < 0 || kind >= BQUOTA_KINDS)
        return false;
    kstr u = kstr_c(user ? user : "");
    kstr c = client_id.len > 0 ? client_id : kstr_c("");
    if (u.len > MD_QUOTA_NAME_MAX)
        u.len = MD_QUOTA_NAME_MAX;
    if (c.len > MD_QUOTA_NAME_MAX)
        c.len = MD_QUOTA_NAME_MAX;
    const kstr ut = kstr_c(QUOTA_ENTITY_USER), ct = kstr_c(QUOTA_ENTITY_CLIENT_ID);
    /* Kafka's order; the tags each entity measures by. */
    struct {
        kstr user, client; /* KSTR_NULL: default; len -2: component absent */
        bool tag_user, tag_client;
    } order[8] = {
        {u, c, true, true},
        {u, KSTR_NULL, true, true},
        {u, {NULL, -2}, true, false},
        {KSTR_NULL, c, true, true},
        {KSTR_NULL, KSTR_NULL, true, true},
        {KSTR_NULL, {NULL, -2}, true, false},
        {{NULL, -2}, c, false, true},
        {{NULL, -2}, KSTR_NULL, false, true},
    };
    for (int i = 0; i < 8; i++) {
        md_quota_comp comp[2];
        int32_t n = 0;
        if (order[i].user.len != -2)
            comp[n++] = (md_quota_comp){ut, order[i].user};
        if (order[i].client.len != -2)
            comp[n++] = (md_quota_comp){ct, order[i].client};
        char ekey[MD_QUOTA_EKEY_MAX];
        if (md_quota_key(comp, n, ekey) < 0)
            continue; /* a name with a control character matches no named entity */
        double v;
        if (!md_quota_get(md_quota_set_find(s, ekey), key_of[kind], &v))
            continue;
        *bound = v;
        copy_tag(tag_user, tag_user_n, order[i].tag_user ? u.ptr : "", order[i].tag_user ? (size_t)u.len : 0);
        copy_tag(tag_client, tag_client_n, order[i].tag_client ? c.ptr : "",
                 order[i].tag_client ? (size_t)c.len : 0);
        return true;
    }
    return false;
}

static uint32_t hash_tags(bquota_kind kind, const char *u, const char *c) {
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (const char *p = u; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *p = c; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

/* Drops entries idle for a whole span, or else the least recently used. */
static void make_room(bquota *q, int64_t now_ms) {
    int64_t span = (int64_t)q->samples * q->window_ms;
    qentry **lru = NULL;
    for (int i = 0; i < BQUOTA_BUCKETS; i++)
        for (qentry **pp = &q->buckets[i]; *pp;) {
            qentry *e = *pp;
            if (now_ms - e->last_ms > span) {
                *pp = e->next;
                free(e->user);
                free(e->client);
                free(e);
                q->n--;
                if (lru == pp) /* its entry is gone */
                    lru = NULL;
                continue;
            }
            if (lru == NULL || e->last_ms < (*lru)->last_ms)
                lru = pp;
            pp = &e->next;
        }
    if (q->n >= BQUOTA_RATES_MAX && lru != NULL) {
        qentry *e = *lru;
        *lru = e->next;
        free(e->user);
        free(e->client);
        free(e);
        q->n--;
    }
}

/* The entry of (kind, tags), made if new; NULL when memory runs out.
 * Called with q->mu held. */
static qentry *entry_of(bquota *q, bquota_kind kind, const char *tu, const char *tc, int64_t now_ms) {
    uint32_t h = hash_tags(kind, tu, tc);
    qentry **head = &q->buckets[h % BQUOTA_BUCKETS], *e = *head;
    while (e && !(e->hash == h && e->kind == kind && !strcmp(e->user, tu) && !strcmp(e->client, tc)))
        e = e->next;
    if (e == NULL) {
        if (q->n >= BQUOTA_RATES_MAX)
            make_room(q, now_ms);
        e = calloc(1, sizeof *e);
        char *a = strdup(tu), *b = strdup(tc);
        if (e == NULL || a == NULL || b == NULL) {
            free(e);
            free(a);
            free(b);
            return NULL;
        }
        e->kind = kind;
        e->hash = h;
        e->user = a;
        e->client = b;
        rate_init(&e->r, q->samples, q->window_ms, now_ms);
        head = &q->buckets[h % BQUOTA_BUCKETS]; /* make_room may have changed the chain */
        e->next = *head;
        *head = e;
        q->n++;
    }
    e->last_ms = now_ms;
    return e;
}

int64_t bquota_record(bquota *q, const md_image *img, bquota_kind kind, const char *user, kstr client_id,
                      double value, int64_t now_ms) {
    if (q == NULL || img == NULL)
        return 0;
    double bound;
    char tu[MD_QUOTA_NAME_MAX + 1], tc[MD_QUOTA_NAME_MAX + 1];
    if (!bquota_resolve(img, kind, user, client_id, &bound, tu, sizeof tu, tc, sizeof tc))
        return 0;
    pthread_mutex_lock(&q->mu);
    qentry *e = entry_of(q, kind, tu, tc, now_ms);
    if (e == NULL) {
        pthread_mutex_unlock(&q->mu);
        return 0; /* out of memory: not throttled */
    }
    int64_t t;
    if (kind == BQUOTA_MUTATION) {
        double burst = bound * (double)q->samples * (double)q->window_ms / 1000.0;
        t = rate_tokens_record(&e->tb, value, bound, burst, now_ms);
    } else {
        /* Kafka bounds the request quota's throttle to one window. */
        int64_t max = kind == BQUOTA_REQUEST ? q->window_ms : 0;
        t = rate_record_throttle(&e->r, value, bound, max, now_ms);
    }
    if (t > 0) {
        q->st.throttled[kind]++;
        q->st.throttle_ms[kind] += (uint64_t)t;
        if ((uint64_t)t > q->st.max_ms[kind])
            q->st.max_ms[kind] = (uint64_t)t;
    }
    pthread_mutex_unlock(&q->mu);
    return t;
}

bool bquota_mutation_exceeded(bquota *q, const md_image *img, const char *user, kstr client_id,
                              int64_t now_ms) {
    if (q == NULL || img == NULL)
        return false;
    double bound;
    char tu[MD_QUOTA_NAME_MAX + 1], tc[MD_QUOTA_NAME_MAX + 1];
    if (!bquota_resolve(img, BQUOTA_MUTATION, user, client_id, &bound, tu, sizeof tu, tc, sizeof tc))
        return false;
    pthread_mutex_lock(&q->mu);
    qentry *e = entry_of(q, BQUOTA_MUTATION, tu, tc, now_ms);
    double burst = bound * (double)q->samples * (double)q->window_ms / 1000.0;
    bool over = e != NULL && rate_tokens_exceeded(&e->tb, bound, burst, now_ms);
    if (over)
        q->st.throttled[BQUOTA_MUTATION]++;
    pthread_mutex_unlock(&q->mu);
    return over;
}

int64_t bquota_mutation_wait_ms(bquota *q, const md_image *img, const char *user, kstr client_id,
                                int64_t now_ms) {
    if (q == NULL || img == NULL)
        return 0;
    double bound;
    char tu[MD_QUOTA_NAME_MAX + 1], tc[MD_QUOTA_NAME_MAX + 1];
    if (!bquota_resolve(img, BQUOTA_MUTATION, user, client_id, &bound, tu, sizeof tu, tc, sizeof tc))
        return 0;
    pthread_mutex_lock(&q->mu);
    qentry *e = entry_of(q, BQUOTA_MUTATION, tu, tc, now_ms);
    double burst = bound * (double)q->samples * (double)q->window_ms / 1000.0;
    int64_t ms = 0;
    if (e != NULL && rate_tokens_exceeded(&e->tb, bound, burst, now_ms))
        ms = (int64_t)llround(-e->tb.tokens / bound * 1000.0);
    pthread_mutex_unlock(&q->mu);
    return ms;
}

void bquota_get_stats(bquota *q, bquota_stats *out) {
    memset(out, 0, sizeof *out);
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    *out = q->st;
    out->rates = q->n;
    pthread_mutex_unlock(&q->mu);
}
