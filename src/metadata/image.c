/*
 * image.c - the metadata image, deltas and md_apply. See image.h.
 *
 * Representation. An image holds arrays of pointers to topics and config
 * resources, each reference counted and shared with the images before and
 * after it, plus small arrays copied whole (brokers, features). A delta is
 * an image under construction: on its first change to the topic set it
 * copies the base's pointer array and hash index (O(topics)); a topic it
 * changes is first cloned (the clone is marked owned by the delta and may be
 * changed in place until publication); removals leave a hole that
 * publication squeezes out. Each topic keeps the replica-id lists of all its
 * partitions in one pool, so cloning a topic is two copies, not one
 * allocation per partition.
 *
 * Indexes: open addressing over the topic array, one table by name and one
 * by id, holding array positions; a position whose topic was removed is a
 * tombstone that lookups skip. Rebuilt when a delta is published or when
 * tombstones fill half the table.
 */
#include "metadata/image.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct md_index {
    int32_t *slots; /* array positions, -1 empty */
    uint32_t mask;  /* capacity - 1 (a power of two), 0 when no table */
    int32_t used;   /* slots taken (tombstones included) */
} md_index;

struct md_image {
    atomic_int refs;
    int64_t offset;
    int32_t epoch;
    md_topic **topics; /* may hold NULL holes only inside a delta */
    int32_t n_topics, cap_topics;
    md_index by_name, by_id;
    int64_t n_partitions;
    md_broker *brokers; /* sorted by id */
    int32_t n_brokers, cap_brokers;
    md_resource **resources;
    int32_t n_resources, cap_resources;
    md_feature features[MD_FEATURES_MAX];
    int32_t n_features;
    int64_t next_producer_id;
    int64_t ignored;
    struct md_scram_set *scram; /* shared between images until changed; NULL: none */
    acl_set *acls;              /* the same; NULL: none */
    md_quota_set *quotas;       /* the same; NULL: none */
};

/* The SCRAM credentials, copied on the first change in a delta (there are
 * few, and they change rarely). */
typedef struct md_scram_set {
    atomic_int refs;
    md_scram *items; /* sorted by (name, mechanism) */
    int32_t n, cap;
} md_scram_set;

struct md_delta {
    md_image *base;
    md_image *work; /* refs == 0 until published */
    bool topics_copied, resources_copied, scram_copied, acls_copied, quotas_copied;
    int32_t holes;
    int32_t applied;
};

/* ---- small helpers ----------------------------------------------------------- */

static uint32_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static uint32_t hash_name(const char *s, int32_t n) { return hash_bytes(s, (size_t)n); }
static uint32_t hash_id(kuuid id) { return hash_bytes(id.b, 16); }

static bool kuuid_eq(kuuid a, kuuid b) { return memcmp(a.b, b.b, 16) == 0; }

/* Every string the image keeps is C text: a NUL byte inside one would cut it
 * short in the image and in the snapshot written from it, which then
 * disagrees with the log. Records holding one are refused. */
static bool text_ok(kstr s) { return s.len <= 0 || memchr(s.ptr, '\0', (size_t)s.len) == NULL; }

static char *dup_kstr(kstr s) {
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s.ptr, n);
        p[n] = '\0';
    }
    return p;
}

static void seterr(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errn, const char *fmt, ...) {
    if (err == NULL || errn == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

static void uuid_text(kuuid id, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[id.b[i] >> 4];
        out[k++] = hex[id.b[i] & 15];
    }
    out[k] = '\0';
}

/* ---- topics --------------------------------------------------------------------- */

static void topic_free(md_topic *t) {
    free(t->partitions);
    free(t->pool);
    free(t->dir_pool);
    free(t);
}

static void topic_unref(md_topic *t) {
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        topic_free(t);
}

static md_topic *topic_new(kstr name, kuuid id) {
    md_topic *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    atomic_init(&t->refs, 1);
    memcpy(t->name, name.ptr, (size_t)name.len);
    t->name[name.len] = '\0';
    t->name_len = name.len;
    t->id = id;
    return t;
}

/* Room for n more ids in the pool; false on OOM. The pool may move, so
 * the lists pointing into it are re-pointed. */
static bool pool_reserve(md_topic *t, int64_t n) {
    if (t->pool_len + n <= t->pool_cap)
        return true;
    int64_t ncap = t->pool_cap ? t->pool_cap * 2 : 64;
    while (ncap < t->pool_len + n)
        ncap *= 2;
    int32_t *np = realloc(t->pool, (size_t)ncap * sizeof *np);
    if (np == NULL)
        return false;
    if (np != t->pool) {
        for (int32_t i = 0; i < t->n_partitions; i++) {
            md_partition *p = &t->partitions[i];
            md_ids *lists[] = {&p->replicas, &p->isr, &p->removing, &p->adding, &p->elr, &p->last_known_elr};
            for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++)
                if (lists[k]->n > 0)
                    lists[k]->ids = np + (lists[k]->ids - t->pool);
        }
    }
    t->pool = np;
    t->pool_cap = ncap;
    return true;
}

static bool dir_reserve(md_topic *t, int64_t n) {
    if (t->dir_len + n <= t->dir_cap)
        return true;
    int64_t ncap = t->dir_cap ? t->dir_cap * 2 : 16;
    while (ncap < t->dir_len + n)
        ncap *= 2;
    kuuid *np = realloc(t->dir_pool, (size_t)ncap * sizeof *np);
    if (np == NULL)
        return false;
    if (np != t->dir_pool)
        for (int32_t i = 0; i < t->n_partitions; i++)
            if (t->partitions[i].n_directories > 0)
                t->partitions[i].directories = np + (t->partitions[i].directories - t->dir_pool);
    t->dir_pool = np;
    t->dir_cap = ncap;
    return true;
}

/* Copies ids into the pool (reserve first). */
static md_ids pool_put(md_topic *t, const int32_t *ids, int32_t n, bool present) {
    md_ids out = {NULL, 0, present};
    if (n > 0) {
        assert(t->pool_len + n <= t->pool_cap);
        memcpy(t->pool + t->pool_len, ids, (size_t)n * sizeof *ids);
        out.ids = t->pool + t->pool_len;
        out.n = n;
        t->pool_len += n;
    }
    return out;
}

static int64_t partition_ids(const md_partition *p) {
    return (int64_t)p->replicas.n + p->isr.n + p->removing.n + p->adding.n + p->elr.n + p->last_known_elr.n;
}

/* A private copy of t with compact pools. */
static md_topic *topic_clone(const md_topic *t) {
    md_topic *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    memcpy(c->name, t->name, sizeof c->name);
    c->name_len = t->name_len;
    c->id = t->id;
    int64_t ids = 0, dirs = 0;
    for (int32_t i = 0; i < t->n_partitions; i++) {
        ids += partition_ids(&t->partitions[i]);
        dirs += t->partitions[i].n_directories;
    }
    if (t->n_partitions > 0) {
        c->partitions = malloc((size_t)t->n_partitions * sizeof *c->partitions);
        if (c->partitions == NULL)
            goto oom;
    }
    /* Reserve while no partition is listed: nothing to re-point yet. */
    if (!pool_reserve(c, ids) || !dir_reserve(c, dirs))
        goto oom;
    c->n_partitions = t->n_partitions;
    for (int32_t i = 0; i < t->n_partitions; i++) {
        const md_partition *p = &t->partitions[i];
        md_partition *q = &c->partitions[i];
        *q = *p;
        q->replicas = pool_put(c, p->replicas.ids, p->replicas.n, p->replicas.present);
        q->isr = pool_put(c, p->isr.ids, p->isr.n, p->isr.present);
        q->removing = pool_put(c, p->removing.ids, p->removing.n, p->removing.present);
        q->adding = pool_put(c, p->adding.ids, p->adding.n, p->adding.present);
        q->elr = pool_put(c, p->elr.ids, p->elr.n, p->elr.present);
        q->last_known_elr =
            pool_put(c, p->last_known_elr.ids, p->last_known_elr.n, p->last_known_elr.present);
        q->directories = NULL;
        if (p->n_directories > 0) {
            memcpy(c->dir_pool + c->dir_len, p->directories, (size_t)p->n_directories * sizeof(kuuid));
            q->directories = c->dir_pool + c->dir_len;
            c->dir_len += p->n_directories;
        }
    }
    return c;
oom:
    topic_free(c);
    return NULL;
}

const md_partition *md_topic_partition(const md_topic *t, int32_t id) {
    if (t == NULL || id < 0 || id >= t->n_partitions || t->partitions[id].id != id)
        return NULL;
    return &t->partitions[id];
}

/* ---- resources ------------------------------------------------------------------ */

static void resource_free(md_resource *r) {
    for (int32_t i = 0; i < r->n; i++) {
        free(r->items[i].key);
        free(r->items[i].value);
    }
    free(r->items);
    free(r->name);
    free(r);
}

static void resource_unref(md_resource *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        resource_free(r);
}

static md_resource *resource_clone(const md_resource *r) {
    md_resource *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    c->type = r->type;
    c->name = strdup(r->name);
    c->items = r->n ? calloc((size_t)r->n, sizeof *c->items) : NULL;
    if (c->name == NULL || (r->n && c->items == NULL))
        goto oom;
    for (int32_t i = 0; i < r->n; i++) {
        c->items[i].key = strdup(r->items[i].key);
        c->items[i].value = strdup(r->items[i].value);
        c->n = i + 1;
        if (!c->items[i].key || !c->items[i].value)
            goto oom;
    }
    return c;
oom:
    resource_free(c);
    return NULL;
}

/* ---- brokers --------------------------------------------------------------------- */

static void broker_clear(md_broker *b) {
    for (int32_t i = 0; i < b->n_endpoints; i++) {
        free(b->endpoints[i].name);
        free(b->endpoints[i].host);
    }
    free(b->rack);
    memset(b, 0, sizeof *b);
}

static bool broker_copy(md_broker *dst, const md_broker *src) {
    *dst = *src;
    dst->rack = NULL;
    for (int32_t i = 0; i < src->n_endpoints; i++)
        dst->endpoints[i].name = dst->endpoints[i].host = NULL;
    bool ok = true;
    for (int32_t i = 0; i < src->n_endpoints; i++) {
        dst->endpoints[i].name = strdup(src->endpoints[i].name);
        dst->endpoints[i].host = strdup(src->endpoints[i].host);
        ok &= dst->endpoints[i].name != NULL && dst->endpoints[i].host != NULL;
    }
    if (src->rack) {
        dst->rack = strdup(src->rack);
        ok &= dst->rack != NULL;
    }
    if (!ok)
        broker_clear(dst);
    return ok;
}

/* ---- indexes ----------------------------------------------------------------------- */

static void index_free(md_index *x) {
    free(x->slots);
    memset(x, 0, sizeof *x);
}

static bool index_alloc(md_index *x, int32_t n) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2 + 2)
        cap *= 2;
    int32_t *s = malloc(cap * sizeof *s);
    if (s == NULL)
        return false;
    memset(s, 0xff, cap * sizeof *s);
    free(x->slots);
    x->slots = s;
    x->mask = cap - 1;
    x->used = 0;
    return true;
}

static void index_put(md_index *x, uint32_t h, int32_t pos) {
    uint32_t i = h & x->mask;
    while (x->slots[i] >= 0)
        i = (i + 1) & x->mask;
    x->slots[i] = pos;
    x->used++;
}

static bool rebuild_indexes(md_image *img) {
    if (!index_alloc(&img->by_name, img->n_topics) || !index_alloc(&img->by_id, img->n_topics))
        return false;
    for (int32_t i = 0; i < img->n_topics; i++) {
        md_topic *t = img->topics[i];
        if (t == NULL)
            continue;
        index_put(&img->by_name, hash_name(t->name, t->name_len), i);
        index_put(&img->by_id, hash_id(t->id), i);
    }
    return true;
}

static int32_t find_name(const md_image *img, kstr name) {
    if (img->by_name.slots == NULL || name.len <= 0 || name.len > MD_NAME_MAX)
        return -1;
    uint32_t i = hash_name(name.ptr, name.len) & img->by_name.mask;
    for (int32_t pos; (pos = img->by_name.slots[i]) >= 0; i = (i + 1) & img->by_name.mask) {
        const md_topic *t = img->topics[pos];
        if (t && t->name_len == name.len && memcmp(t->name, name.ptr, (size_t)name.len) == 0)
            return pos;
    }
    return -1;
}

static int32_t find_id(const md_image *img, kuuid id) {
    if (img->by_id.slots == NULL)
        return -1;
    uint32_t i = hash_id(id) & img->by_id.mask;
    for (int32_t pos; (pos = img->by_id.slots[i]) >= 0; i = (i + 1) & img->by_id.mask) {
        const md_topic *t = img->topics[pos];
        if (t && kuuid_eq(t->id, id))
            return pos;
    }
    return -1;
}

/* ---- images ---------------------------------------------------------------------- */

md_image *md_image_empty(void) {
    md_image *img = calloc(1, sizeof *img);
    if (img == NULL)
        return NULL;
    atomic_init(&img->refs, 1);
    img->offset = -1;
    img->epoch = -1;
    return img;
}

md_image *md_image_ref(md_image *img) {
    if (img)
        atomic_fetch_add(&img->refs, 1);
    return img;
}

static void scram_unref(md_scram_set *s) {
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int32_t i = 0; i < s->n; i++)
        free(s->items[i].name);
    free(s->items);
    free(s);
}

static int scram_cmp(const md_scram *a, const char *name, int8_t mech) {
    int c = strcmp(a->name, name);
    return c ? c : (a->mechanism > mech) - (a->mechanism < mech);
}

/* Index of (name, mech) in s, or -(insertion point) - 1. */
static int32_t scram_find(const md_scram_set *s, const char *name, int8_t mech) {
    int32_t lo = 0, hi = s ? s->n : 0;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = scram_cmp(&s->items[mid], name, mech);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -lo - 1;
}

const md_scram *md_image_scram(const md_image *img, const char *name, int8_t mechanism) {
    int32_t i = scram_find(img->scram, name, mechanism);
    return i >= 0 ? &img->scram->items[i] : NULL;
}

int32_t md_image_scram_count(const md_image *img) { return img->scram ? img->scram->n : 0; }
const md_scram *md_image_scram_at(const md_image *img, int32_t i) { return &img->scram->items[i]; }

static void image_free(md_image *img) {
    for (int32_t i = 0; i < img->n_topics; i++)
        topic_unref(img->topics[i]);
    free(img->topics);
    index_free(&img->by_name);
    index_free(&img->by_id);
    for (int32_t i = 0; i < img->n_brokers; i++)
        broker_clear(&img->brokers[i]);
    free(img->brokers);
    for (int32_t i = 0; i < img->n_resources; i++)
        resource_unref(img->resources[i]);
    free(img->resources);
    scram_unref(img->scram);
    acl_set_unref(img->acls);
    md_quota_set_unref(img->quotas);
    free(img);
}

void md_image_unref(md_image *img) {
    if (img && atomic_fetch_sub(&img->refs, 1) == 1)
        image_free(img);
}

int64_t md_image_offset(const md_image *img) { return img->offset; }
int32_t md_image_epoch(const md_image *img) { return img->epoch; }
int32_t md_image_topic_count(const md_image *img) { return img->n_topics; }
int64_t md_image_partition_count(const md_image *img) { return img->n_partitions; }

const md_topic *md_image_topic(const md_image *img, kstr name) {
    int32_t pos = find_name(img, name);
    return pos < 0 ? NULL : img->topics[pos];
}

const md_topic *md_image_topic_by_id(const md_image *img, kuuid id) {
    int32_t pos = find_id(img, id);
    return pos < 0 ? NULL : img->topics[pos];
}

const md_topic *md_image_topic_at(const md_image *img, int32_t i) {
    return i >= 0 && i < img->n_topics ? img->topics[i] : NULL;
}

int32_t md_image_broker_count(const md_image *img) { return img->n_brokers; }
const md_broker *md_image_broker_at(const md_image *img, int32_t i) {
    return i >= 0 && i < img->n_brokers ? &img->brokers[i] : NULL;
}

static int32_t broker_pos(const md_image *img, int32_t id) {
    int32_t lo = 0, hi = img->n_brokers;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (img->brokers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const md_broker *md_image_broker(const md_image *img, int32_t id) {
    int32_t i = broker_pos(img, id);
    return i < img->n_brokers && img->brokers[i].id == id ? &img->brokers[i] : NULL;
}

/* Resources are sorted by (type, name): where (type, name) is or would go. */
static int32_t resource_slot(const md_image *img, int8_t type, const char *name, bool *found) {
    int32_t lo = 0, hi = img->n_resources;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const md_resource *r = img->resources[mid];
        int c = r->type != type ? (r->type < type ? -1 : 1) : strcmp(r->name, name);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < img->n_resources && img->resources[lo]->type == type &&
             strcmp(img->resources[lo]->name, name) == 0;
    return lo;
}

static int32_t resource_pos(const md_image *img, int8_t type, const char *name) {
    bool found;
    int32_t i = resource_slot(img, type, name, &found);
    return found ? i : -1;
}

const md_resource *md_image_resource(const md_image *img, int8_t type, const char *name) {
    int32_t i = resource_pos(img, type, name);
    return i < 0 ? NULL : img->resources[i];
}

static int32_t config_pos(const md_resource *r, const char *key, bool *found) {
    int32_t lo = 0, hi = r->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (strcmp(r->items[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < r->n && strcmp(r->items[lo].key, key) == 0;
    return lo;
}

const char *md_image_config(const md_image *img, int8_t type, const char *name, const char *key) {
    const md_resource *r = md_image_resource(img, type, name);
    if (r == NULL)
        return NULL;
    bool found;
    int32_t i = config_pos(r, key, &found);
    return found ? r->items[i].value : NULL;
}

int16_t md_image_feature(const md_image *img, const char *name) {
    for (int32_t i = 0; i < img->n_features; i++)
        if (strcmp(img->features[i].name, name) == 0)
            return img->features[i].level;
    return 0;
}

int32_t md_image_feature_count(const md_image *img) { return img->n_features; }
const md_feature *md_image_feature_at(const md_image *img, int32_t i) {
    return i >= 0 && i < img->n_features ? &img->features[i] : NULL;
}

int64_t md_image_next_producer_id(const md_image *img) { return img->next_producer_id; }
int64_t md_delta_next_producer_id(const md_delta *d) { return d->work->next_producer_id; }
int64_t md_image_ignored_records(const md_image *img) { return img->ignored; }

/* ---- deltas ----------------------------------------------------------------------- */

md_delta *md_delta_begin(md_image *base) {
    md_delta *d = calloc(1, sizeof *d);
    md_image *w = calloc(1, sizeof *w);
    if (d == NULL || w == NULL) {
        free(d);
        free(w);
        return NULL;
    }
    d->base = md_image_ref(base);
    d->work = w;
    /* Shallow view of the base until the first change of each part. */
    w->offset = base->offset;
    w->epoch = base->epoch;
    w->topics = base->topics;
    w->n_topics = base->n_topics;
    w->by_name = base->by_name;
    w->by_id = base->by_id;
    w->n_partitions = base->n_partitions;
    w->resources = base->resources;
    w->n_resources = base->n_resources;
    memcpy(w->features, base->features, sizeof w->features);
    w->n_features = base->n_features;
    w->next_producer_id = base->next_producer_id;
    w->ignored = base->ignored;
    w->scram = base->scram;
    if (w->scram)
        atomic_fetch_add(&w->scram->refs, 1);
    w->acls = acl_set_ref(base->acls);
    w->quotas = md_quota_set_ref(base->quotas);
    if (base->n_brokers) {
        w->brokers = calloc((size_t)base->n_brokers, sizeof *w->brokers);
        if (w->brokers == NULL)
            goto oom;
        w->cap_brokers = base->n_brokers;
        for (int32_t i = 0; i < base->n_brokers; i++) {
            if (!broker_copy(&w->brokers[i], &base->brokers[i]))
                goto oom;
            w->n_brokers = i + 1;
        }
    }
    return d;
oom:
    w->topics = NULL;
    w->n_topics = 0;
    w->resources = NULL;
    w->n_resources = 0;
    memset(&w->by_name, 0, sizeof w->by_name);
    memset(&w->by_id, 0, sizeof w->by_id);
    image_free(w);
    md_image_unref(d->base);
    free(d);
    return NULL;
}

int32_t md_delta_count(const md_delta *d) { return d->applied; }

/* Takes private copies of the topic array and indexes (once per delta). */
static bool own_topics(md_delta *d) {
    if (d->topics_copied)
        return true;
    md_image *w = d->work, *b = d->base;
    int32_t cap = b->n_topics > 8 ? b->n_topics * 2 : 16;
    md_topic **nt = malloc((size_t)cap * sizeof *nt);
    if (nt == NULL)
        return false;
    for (int32_t i = 0; i < b->n_topics; i++) {
        nt[i] = b->topics[i];
        atomic_fetch_add(&nt[i]->refs, 1);
    }
    w->topics = nt;
    w->cap_topics = cap;
    memset(&w->by_name, 0, sizeof w->by_name);
    memset(&w->by_id, 0, sizeof w->by_id);
    d->topics_copied = true;
    if (!rebuild_indexes(w))
        return false;
    return true;
}

static bool own_resources(md_delta *d) {
    if (d->resources_copied)
        return true;
    md_image *w = d->work, *b = d->base;
    int32_t cap = b->n_resources > 8 ? b->n_resources * 2 : 16;
    md_resource **nr = malloc((size_t)cap * sizeof *nr);
    if (nr == NULL)
        return false;
    for (int32_t i = 0; i < b->n_resources; i++) {
        nr[i] = b->resources[i];
        atomic_fetch_add(&nr[i]->refs, 1);
    }
    w->resources = nr;
    w->cap_resources = cap;
    d->resources_copied = true;
    return true;
}

/* A mutable version of the topic at pos (cloned once per delta). */
static md_topic *own_topic(md_delta *d, int32_t pos) {
    md_image *w = d->work;
    md_topic *t = w->topics[pos];
    assert(d->topics_copied);
    if (atomic_load(&t->refs) == 1) {
        /* Only this delta holds it: it was created or cloned here. */
        return t;
    }
    md_topic *c = topic_clone(t);
    if (c == NULL)
        return NULL;
    topic_unref(t);
    w->topics[pos] = c;
    return c;
}

static void delta_free(md_delta *d, bool keep_work) {
    md_image *w = d->work;
    if (!keep_work) {
        if (!d->topics_copied) {
            w->topics = NULL;
            w->n_topics = 0;
            memset(&w->by_name, 0, sizeof w->by_name);
            memset(&w->by_id, 0, sizeof w->by_id);
        }
        if (!d->resources_copied) {
            w->resources = NULL;
            w->n_resources = 0;
        }
        image_free(w);
    }
    md_image_unref(d->base);
    free(d);
}

void md_delta_abort(md_delta *d) {
    if (d)
        delta_free(d, false);
}

const md_topic *md_delta_topic(const md_delta *d, kstr name) { return md_image_topic(d->work, name); }
const md_topic *md_delta_topic_by_id(const md_delta *d, kuuid id) {
    return md_image_topic_by_id(d->work, id);
}
const md_resource *md_delta_resource(const md_delta *d, int8_t type, const char *name) {
    return md_image_resource(d->work, type, name);
}
const md_scram *md_delta_scram(const md_delta *d, const char *name, int8_t mechanism) {
    return md_image_scram(d->work, name, mechanism);
}
const md_broker *md_delta_broker(const md_delta *d, int32_t id) { return md_image_broker(d->work, id); }

md_image *md_delta_publish(md_delta *d, int64_t offset, int32_t epoch) {
    md_image *w = d->work;
    md_image *base = d->base;
    if (!d->topics_copied) {
        /* Share the base's topics: take references and a copy of the array. */
        if (!own_topics(d)) {
            delta_free(d, false);
            return NULL;
        }
    }
    if (!d->resources_copied && !own_resources(d)) {
        delta_free(d, false);
        return NULL;
    }
    /* Squeeze out removed topics, then index afresh. */
    int32_t k = 0;
    for (int32_t i = 0; i < w->n_topics; i++)
        if (w->topics[i] != NULL)
            w->topics[k++] = w->topics[i];
    w->n_topics = k;
    if (!rebuild_indexes(w)) {
        delta_free(d, false);
        return NULL;
    }
    int64_t parts = 0;
    for (int32_t i = 0; i < w->n_topics; i++)
        parts += w->topics[i]->n_partitions;
    w->n_partitions = parts;
    w->offset = offset;
    w->epoch = epoch;
    atomic_init(&w->refs, 1);
    (void)base;
    delta_free(d, true);
    return w;
}

/* ---- apply ------------------------------------------------------------------------- */

static int check_ids(const int32_t *ids, int32_t n, const char *what, char *err, size_t errn) {
    if (n > MD_REPLICAS_MAX) {
        seterr(err, errn, "%s lists %d replicas; the limit is %d", what, n, MD_REPLICAS_MAX);
        return MD_EINVAL;
    }
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0) {
            seterr(err, errn, "%s holds the invalid broker id %d", what, ids[i]);
            return MD_EINVAL;
        }
    return MD_OK;
}

static int apply_topic(md_delta *d, const kafka_topic_record *r, char *err, size_t errn) {
    if (r->name.len <= 0 || r->name.len > MD_NAME_MAX) {
        seterr(err, errn, "TopicRecord: name length %d is out of range", r->name.len);
        return MD_EINVAL;
    }
    if (!text_ok(r->name)) {
        seterr(err, errn, "TopicRecord: the name holds a NUL byte");
        return MD_EINVAL;
    }
    if (kuuid_is_zero(r->topic_id)) {
        seterr(err, errn, "TopicRecord %.*s: the topic id is zero", r->name.len, r->name.ptr);
        return MD_EINVAL;
    }
    md_image *w = d->work;
    if (find_name(w, r->name) >= 0 || find_id(w, r->topic_id) >= 0) {
        char id[37];
        uuid_text(r->topic_id, id);
        seterr(err, errn, "TopicRecord %.*s (%s): a topic with this name or id exists", r->name.len,
               r->name.ptr, id);
        return MD_EEXISTS;
    }
    if (!own_topics(d))
        return MD_ENOMEM;
    if (w->n_topics == w->cap_topics) {
        int32_t ncap = w->cap_topics * 2;
        md_topic **nt = realloc(w->topics, (size_t)ncap * sizeof *nt);
        if (nt == NULL)
            return MD_ENOMEM;
        w->topics = nt;
        w->cap_topics = ncap;
    }
    /* Keep the index at most half full (tombstones included). */
    if ((uint32_t)(w->by_name.used + 1) * 2 > w->by_name.mask + 1) {
        int32_t n = w->n_topics;
        if (!rebuild_indexes(w))
            return MD_ENOMEM;
        (void)n;
    }
    md_topic *t = topic_new(r->name, r->topic_id);
    if (t == NULL)
        return MD_ENOMEM;
    int32_t pos = w->n_topics++;
    w->topics[pos] = t;
    index_put(&w->by_name, hash_name(t->name, t->name_len), pos);
    index_put(&w->by_id, hash_id(t->id), pos);
    return MD_OK;
}

static int apply_partition(md_delta *d, const kafka_partition_record *r, char *err, size_t errn) {
    md_image *w = d->work;
    char id[37];
    int32_t pos = find_id(w, r->topic_id);
    if (pos < 0) {
        uuid_text(r->topic_id, id);
        seterr(err, errn, "PartitionRecord %d: no topic with id %s", r->partition_id, id);
        return MD_ENOENT;
    }
    const md_topic *cur = w->topics[pos];
    if (r->partition_id < 0 || r->partition_id >= MD_PARTITIONS_MAX) {
        seterr(err, errn, "PartitionRecord for %s: partition id %d is out of range", cur->name,
               r->partition_id);
        return MD_EINVAL;
    }
    if (md_topic_partition(cur, r->partition_id) != NULL) {
        seterr(err, errn, "PartitionRecord for %s: partition %d exists", cur->name, r->partition_id);
        return MD_EEXISTS;
    }
    struct {
        const int32_t *ids;
        int32_t n;
        const char *what;
    } lists[] = {{r->replicas, r->replicas_count, "replicas"},
                 {r->isr, r->isr_count, "isr"},
                 {r->removing_replicas, r->removing_replicas_count, "removing replicas"},
                 {r->adding_replicas, r->adding_replicas_count, "adding replicas"},
                 {r->eligible_leader_replicas, r->eligible_leader_replicas_count, "eligible leader replicas"},
                 {r->last_known_elr, r->last_known_elr_count, "last known ELR"}};
    int64_t need = 0;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        int rc = check_ids(lists[i].ids, lists[i].n, lists[i].what, err, errn);
        if (rc)
            return rc;
        need += lists[i].n > 0 ? lists[i].n : 0;
    }
    if (r->directories_count > MD_REPLICAS_MAX) {
        seterr(err, errn, "PartitionRecord for %s: too many directories", cur->name);
        return MD_EINVAL;
    }
    if (!own_topics(d))
        return MD_ENOMEM;
    md_topic *t = own_topic(d, pos);
    if (t == NULL)
        return MD_ENOMEM;
    if (r->partition_id >= t->n_partitions) {
        md_partition *np = realloc(t->partitions, (size_t)(r->partition_id + 1) * sizeof *np);
        if (np == NULL)
            return MD_ENOMEM;
        for (int32_t i = t->n_partitions; i <= r->partition_id; i++) {
            memset(&np[i], 0, sizeof np[i]);
            np[i].id = -1; /* a hole until its record comes */
        }
        t->partitions = np;
        t->n_partitions = r->partition_id + 1;
    }
    int32_t ndir = r->directories_count > 0 ? r->directories_count : 0;
    if (!pool_reserve(t, need) || !dir_reserve(t, ndir))
        return MD_ENOMEM;
    md_partition *p = &t->partitions[r->partition_id];
    p->id = r->partition_id;
    p->replicas = pool_put(t, r->replicas, r->replicas_count, true);
    p->isr = pool_put(t, r->isr, r->isr_count, true);
    p->removing = pool_put(t, r->removing_replicas, r->removing_replicas_count, true);
    p->adding = pool_put(t, r->adding_replicas, r->adding_replicas_count, true);
    p->elr = pool_put(t, r->eligible_leader_replicas, r->eligible_leader_replicas_count,
                      r->eligible_leader_replicas_count >= 0);
    p->last_known_elr = pool_put(t, r->last_known_elr, r->last_known_elr_count, r->last_known_elr_count >= 0);
    p->directories = NULL;
    p->n_directories = ndir;
    if (ndir) {
        memcpy(t->dir_pool + t->dir_len, r->directories, (size_t)ndir * sizeof(kuuid));
        p->directories = t->dir_pool + t->dir_len;
        t->dir_len += ndir;
    }
    p->leader = r->leader;
    p->leader_epoch = r->leader_epoch;
    p->partition_epoch = r->partition_epoch;
    p->leader_recovery_state = r->leader_recovery_state;
    return MD_OK;
}

static int apply_partition_change(md_delta *d, const kafka_partition_change_record *r, char *err,
                                  size_t errn) {
    md_image *w = d->work;
    char id[37];
    int32_t pos = find_id(w, r->topic_id);
    if (pos < 0 || md_topic_partition(w->topics[pos], r->partition_id) == NULL) {
        uuid_text(r->topic_id, id);
        seterr(err, errn, "PartitionChangeRecord: no partition %d of topic id %s", r->partition_id, id);
        return MD_ENOENT;
    }
    struct {
        const int32_t *ids;
        int32_t n;
        const char *what;
    } lists[] = {{r->isr, r->isr_count, "isr"},
                 {r->replicas, r->replicas_count, "replicas"},
                 {r->removing_replicas, r->removing_replicas_count, "removing replicas"},
                 {r->adding_replicas, r->adding_replicas_count, "adding replicas"},
                 {r->eligible_leader_replicas, r->eligible_leader_replicas_count, "eligible leader replicas"},
                 {r->last_known_elr, r->last_known_elr_count, "last known ELR"}};
    int64_t need = 0;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        int rc = check_ids(lists[i].ids, lists[i].n, lists[i].what, err, errn);
        if (rc)
            return rc;
        need += lists[i].n > 0 ? lists[i].n : 0;
    }
    if (r->leader < -2) {
        seterr(err, errn, "PartitionChangeRecord: leader %d is out of range", r->leader);
        return MD_EINVAL;
    }
    if (r->directories_count > MD_REPLICAS_MAX) {
        seterr(err, errn, "PartitionChangeRecord: too many directories");
        return MD_EINVAL;
    }
    if (!own_topics(d))
        return MD_ENOMEM;
    md_topic *t = own_topic(d, pos);
    if (t == NULL)
        return MD_ENOMEM;
    int32_t ndir = r->directories_count > 0 ? r->directories_count : 0;
    if (!pool_reserve(t, need) || !dir_reserve(t, ndir))
        return MD_ENOMEM;
    md_partition *p = &t->partitions[r->partition_id];
    /* A null list or the default marker means "unchanged". */
    if (r->isr_count >= 0)
        p->isr = pool_put(t, r->isr, r->isr_count, true);
    if (r->replicas_count >= 0)
        p->replicas = pool_put(t, r->replicas, r->replicas_count, true);
    if (r->removing_replicas_count >= 0)
        p->removing = pool_put(t, r->removing_replicas, r->removing_replicas_count, true);
    if (r->adding_replicas_count >= 0)
        p->adding = pool_put(t, r->adding_replicas, r->adding_replicas_count, true);
    if (r->eligible_leader_replicas_count >= 0)
        p->elr = pool_put(t, r->eligible_leader_replicas, r->eligible_leader_replicas_count, true);
    if (r->last_known_elr_count >= 0)
        p->last_known_elr = pool_put(t, r->last_known_elr, r->last_known_elr_count, true);
    if (r->directories_count >= 0) {
        p->n_directories = ndir;
        p->directories = NULL;
        if (ndir) {
            memcpy(t->dir_pool + t->dir_len, r->directories, (size_t)ndir * sizeof(kuuid));
            p->directories = t->dir_pool + t->dir_len;
            t->dir_len += ndir;
        }
    }
    if (r->leader_recovery_state >= 0)
        p->leader_recovery_state = r->leader_recovery_state;
    /* As in KRaft: naming a leader (even the same one) starts a new leader
     * epoch; every change starts a new partition epoch. */
    if (r->leader != -2) {
        p->leader = r->leader;
        p->leader_epoch++;
    }
    p->partition_epoch++;
    return MD_OK;
}

static int remove_resource(md_delta *d, int8_t type, const char *name) {
    md_image *w = d->work;
    int32_t i = resource_pos(w, type, name);
    if (i < 0)
        return MD_OK;
    if (!own_resources(d))
        return MD_ENOMEM;
    i = resource_pos(w, type, name);
    resource_unref(w->resources[i]);
    memmove(&w->resources[i], &w->resources[i + 1], (size_t)(w->n_resources - i - 1) * sizeof *w->resources);
    w->n_resources--;
    return MD_OK;
}

static int apply_remove_topic(md_delta *d, const kafka_remove_topic_record *r, char *err, size_t errn) {
    md_image *w = d->work;
    int32_t pos = find_id(w, r->topic_id);
    if (pos < 0) {
        char id[37];
        uuid_text(r->topic_id, id);
        seterr(err, errn, "RemoveTopicRecord: no topic with id %s", id);
        return MD_ENOENT;
    }
    if (!own_topics(d))
        return MD_ENOMEM;
    md_topic *t = w->topics[pos];
    char name[MD_NAME_MAX + 1];
    memcpy(name, t->name, sizeof name);
    /* Its configs go with it. */
    int rc = remove_resource(d, MD_RESOURCE_TOPIC, name);
    if (rc)
        return rc;
    w->topics[pos] = NULL; /* a tombstone in the indexes until publication */
    d->holes++;
    topic_unref(t);
    return MD_OK;
}

static int apply_config(md_delta *d, const kafka_config_record *r, char *err, size_t errn) {
    if (r->resource_type != MD_RESOURCE_TOPIC && r->resource_type != MD_RESOURCE_BROKER &&
        r->resource_type != 8 /* BROKER_LOGGER */ && r->resource_type != 16 /* CLIENT_METRICS */ &&
        r->resource_type != 32 /* GROUP */) {
        seterr(err, errn, "ConfigRecord: unknown resource type %d", r->resource_type);
        return MD_EINVAL;
    }
    if (r->resource_name.len < 0 || r->resource_name.len > 1024 || r->name.len <= 0 ||
        r->name.len > MD_CONFIG_KEY_MAX || r->value.len > MD_CONFIG_VALUE_MAX) {
        seterr(err, errn, "ConfigRecord: a name or value is empty or too long");
        return MD_EINVAL;
    }
    if (!text_ok(r->resource_name) || !text_ok(r->name) || !text_ok(r->value)) {
        seterr(err, errn, "ConfigRecord: a name or value holds a NUL byte");
        return MD_EINVAL;
    }
    md_image *w = d->work;
    char rname[1025], key[MD_CONFIG_KEY_MAX + 1];
    memcpy(rname, r->resource_name.ptr, (size_t)r->resource_name.len);
    rname[r->resource_name.len] = '\0';
    memcpy(key, r->name.ptr, (size_t)r->name.len);
    key[r->name.len] = '\0';
    if (!own_resources(d))
        return MD_ENOMEM;
    bool rfound;
    int32_t ri = resource_slot(w, r->resource_type, rname, &rfound);
    if (!rfound) {
        if (r->value.len < 0)
            return MD_OK; /* deleting from nothing */
        md_resource *nr = calloc(1, sizeof *nr);
        if (nr == NULL || (nr->name = strdup(rname)) == NULL) {
            free(nr);
            return MD_ENOMEM;
        }
        atomic_init(&nr->refs, 1);
        nr->type = r->resource_type;
        if (w->n_resources == w->cap_resources) {
            int32_t ncap = w->cap_resources * 2;
            md_resource **nrs = realloc(w->resources, (size_t)ncap * sizeof *nrs);
            if (nrs == NULL) {
                resource_free(nr);
                return MD_ENOMEM;
            }
            w->resources = nrs;
            w->cap_resources = ncap;
        }
        memmove(&w->resources[ri + 1], &w->resources[ri],
                (size_t)(w->n_resources - ri) * sizeof *w->resources);
        w->n_resources++;
        w->resources[ri] = nr;
    } else if (atomic_load(&w->resources[ri]->refs) > 1) {
        md_resource *c = resource_clone(w->resources[ri]);
        if (c == NULL)
            return MD_ENOMEM;
        resource_unref(w->resources[ri]);
        w->resources[ri] = c;
    }
    md_resource *res = w->resources[ri];
    bool found;
    int32_t at = config_pos(res, key, &found);
    if (r->value.len < 0) {
        if (found) {
            free(res->items[at].key);
            free(res->items[at].value);
            memmove(&res->items[at], &res->items[at + 1], (size_t)(res->n - at - 1) * sizeof res->items[0]);
            res->n--;
        }
        if (res->n == 0)
            return remove_resource(d, res->type, rname);
        return MD_OK;
    }
    char *value = dup_kstr(r->value);
    if (value == NULL)
        return MD_ENOMEM;
    if (found) {
        free(res->items[at].value);
        res->items[at].value = value;
        return MD_OK;
    }
    if (res->n >= MD_CONFIGS_PER_RESOURCE) {
        free(value);
        seterr(err, errn, "ConfigRecord: resource %s has %d configs; the limit is %d", rname, res->n,
               MD_CONFIGS_PER_RESOURCE);
        return MD_EINVAL;
    }
    md_config *ni = realloc(res->items, (size_t)(res->n + 1) * sizeof *ni);
    char *k = strdup(key);
    if (ni == NULL || k == NULL) {
        if (ni)
            res->items = ni;
        free(k);
        free(value);
        return MD_ENOMEM;
    }
    res->items = ni;
    memmove(&res->items[at + 1], &res->items[at], (size_t)(res->n - at) * sizeof res->items[0]);
    res->items[at] = (md_config){k, value};
    res->n++;
    return MD_OK;
}

static int apply_register_broker(md_delta *d, const kafka_register_broker_record *r, char *err, size_t errn) {
    if (r->broker_id < 0 || r->end_points_count > MD_ENDPOINTS_MAX) {
        seterr(err, errn, "RegisterBrokerRecord: broker id %d or %d endpoints out of range", r->broker_id,
               r->end_points_count);
        return MD_EINVAL;
    }
    bool text = text_ok(r->rack);
    for (int32_t i = 0; i < r->end_points_count; i++)
        text &= text_ok(r->end_points[i].name) && text_ok(r->end_points[i].host);
    if (!text) {
        seterr(err, errn, "RegisterBrokerRecord %d: a listener name, host or rack holds a NUL byte",
               r->broker_id);
        return MD_EINVAL;
    }
    md_broker nb = {0};
    nb.id = r->broker_id;
    nb.epoch = r->broker_epoch;
    nb.incarnation = r->incarnation_id;
    nb.fenced = r->fenced;
    nb.in_controlled_shutdown = r->in_controlled_shutdown;
    bool ok = true;
    for (int32_t i = 0; i < r->end_points_count; i++) {
        nb.endpoints[i].name = dup_kstr(r->end_points[i].name);
        nb.endpoints[i].host = dup_kstr(r->end_points[i].host);
        nb.endpoints[i].port = r->end_points[i].port;
        nb.endpoints[i].security_protocol = r->end_points[i].security_protocol;
        nb.n_endpoints = i + 1;
        ok &= nb.endpoints[i].name && nb.endpoints[i].host;
    }
    if (r->rack.len >= 0) {
        nb.rack = dup_kstr(r->rack);
        ok &= nb.rack != NULL;
    }
    md_image *w = d->work;
    int32_t i = broker_pos(w, r->broker_id);
    if (ok && !(i < w->n_brokers && w->brokers[i].id == r->broker_id) && w->n_brokers == w->cap_brokers) {
        int32_t ncap = w->cap_brokers ? w->cap_brokers * 2 : 4;
        md_broker *nbs = realloc(w->brokers, (size_t)ncap * sizeof *nbs);
        ok = nbs != NULL;
        if (nbs) {
            w->brokers = nbs;
            w->cap_brokers = ncap;
        }
    }
    if (!ok) {
        broker_clear(&nb);
        return MD_ENOMEM;
    }
    if (i < w->n_brokers && w->brokers[i].id == r->broker_id) {
        broker_clear(&w->brokers[i]); /* a re-registration replaces the old one */
    } else {
        memmove(&w->brokers[i + 1], &w->brokers[i], (size_t)(w->n_brokers - i) * sizeof *w->brokers);
        w->n_brokers++;
    }
    w->brokers[i] = nb;
    return MD_OK;
}

/* The broker of (id, epoch) for records that change one, or NULL. */
static md_broker *broker_for(md_delta *d, int32_t id, int64_t epoch, const char *what, char *err,
                             size_t errn) {
    md_image *w = d->work;
    int32_t i = broker_pos(w, id);
    if (i >= w->n_brokers || w->brokers[i].id != id) {
        seterr(err, errn, "%s: broker %d is not registered", what, id);
        return NULL;
    }
    if (w->brokers[i].epoch != epoch) {
        seterr(err, errn, "%s: broker %d has epoch %lld, not %lld", what, id, (long long)w->brokers[i].epoch,
               (long long)epoch);
        return NULL;
    }
    return &w->brokers[i];
}

static int apply_broker_record(md_delta *d, const mdrec *rec, char *err, size_t errn) {
    md_image *w = d->work;
    switch (rec->type) {
    case KAFKA_MREC_UNREGISTER_BROKER: {
        const kafka_unregister_broker_record *r = rec->body;
        md_broker *b = broker_for(d, r->broker_id, r->broker_epoch, "UnregisterBrokerRecord", err, errn);
        if (b == NULL)
            return MD_ENOENT;
        int32_t i = (int32_t)(b - w->brokers);
        broker_clear(b);
        memmove(&w->brokers[i], &w->brokers[i + 1], (size_t)(w->n_brokers - i - 1) * sizeof *w->brokers);
        w->n_brokers--;
        return MD_OK;
    }
    case KAFKA_MREC_FENCE_BROKER: {
        const kafka_fence_broker_record *r = rec->body;
        md_broker *b = broker_for(d, r->id, r->epoch, "FenceBrokerRecord", err, errn);
        if (b == NULL)
            return MD_ENOENT;
        b->fenced = true;
        return MD_OK;
    }
    case KAFKA_MREC_UNFENCE_BROKER: {
        const kafka_unfence_broker_record *r = rec->body;
        md_broker *b = broker_for(d, r->id, r->epoch, "UnfenceBrokerRecord", err, errn);
        if (b == NULL)
            return MD_ENOENT;
        b->fenced = false;
        return MD_OK;
    }
    case KAFKA_MREC_BROKER_REGISTRATION_CHANGE: {
        const kafka_broker_registration_change_record *r = rec->body;
        md_broker *b =
            broker_for(d, r->broker_id, r->broker_epoch, "BrokerRegistrationChangeRecord", err, errn);
        if (b == NULL)
            return MD_ENOENT;
        /* Kafka's codes: fenced 1 = fence, -1 = unfence, 0 = unchanged;
         * in_controlled_shutdown 1 = entering it, 0 = unchanged. */
        if (r->fenced == 1)
            b->fenced = true;
        else if (r->fenced == -1)
            b->fenced = false;
        if (r->in_controlled_shutdown == 1)
            b->in_controlled_shutdown = true;
        return MD_OK;
    }
    }
    return MD_EINVAL;
}

static int apply_feature(md_delta *d, const kafka_feature_level_record *r, char *err, size_t errn) {
    md_image *w = d->work;
    if (r->name.len <= 0 || r->name.len >= (int32_t)sizeof w->features[0].name) {
        seterr(err, errn, "FeatureLevelRecord: name length %d is out of range", r->name.len);
        return MD_EINVAL;
    }
    if (!text_ok(r->name)) {
        seterr(err, errn, "FeatureLevelRecord: the name holds a NUL byte");
        return MD_EINVAL;
    }
    for (int32_t i = 0; i < w->n_features; i++)
        if ((int32_t)strlen(w->features[i].name) == r->name.len &&
            memcmp(w->features[i].name, r->name.ptr, (size_t)r->name.len) == 0) {
            if (r->feature_level == 0)
                w->features[i] = w->features[--w->n_features];
            else
                w->features[i].level = r->feature_level;
            return MD_OK;
        }
    if (r->feature_level == 0)
        return MD_OK;
    if (w->n_features == MD_FEATURES_MAX) {
        seterr(err, errn, "FeatureLevelRecord: more than %d features", MD_FEATURES_MAX);
        return MD_EINVAL;
    }
    md_feature *f = &w->features[w->n_features++];
    memcpy(f->name, r->name.ptr, (size_t)r->name.len);
    f->name[r->name.len] = '\0';
    f->level = r->feature_level;
    return MD_OK;
}

/* The delta's own copy of the SCRAM credentials (once per delta). */
static bool own_scram(md_delta *d) {
    if (d->scram_copied)
        return true;
    md_scram_set *old = d->work->scram, *ns = calloc(1, sizeof *ns);
    if (ns == NULL)
        return false;
    atomic_init(&ns->refs, 1);
    int32_t n = old ? old->n : 0;
    ns->cap = n + 8;
    ns->items = calloc((size_t)ns->cap, sizeof *ns->items);
    if (ns->items == NULL) {
        free(ns);
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        ns->items[i] = old->items[i];
        ns->items[i].name = strdup(old->items[i].name);
        if (ns->items[i].name == NULL) {
            ns->n = i;
            scram_unref(ns);
            return false;
        }
    }
    ns->n = n;
    scram_unref(old);
    d->work->scram = ns;
    d->scram_copied = true;
    return true;
}

static int apply_scram(md_delta *d, const kafka_user_scram_credential_record *r, char *err, size_t errn) {
    size_t key_n = r->mechanism == 1 ? 32 : r->mechanism == 2 ? 64 : 0;
    if (r->name.len <= 0 || r->name.len > MD_SCRAM_NAME_MAX || !text_ok(r->name)) {
        seterr(err, errn, "UserScramCredentialRecord: invalid user name");
        return MD_EINVAL;
    }
    if (key_n == 0 || r->salt.len <= 0 || r->salt.len > MD_SCRAM_SALT_MAX ||
        r->stored_key.len != (int32_t)key_n || r->server_key.len != (int32_t)key_n || r->iterations <= 0) {
        seterr(
            err, errn,
            "UserScramCredentialRecord for %.*s: mechanism %d, salt, key lengths or iterations out of range",
            (int)r->name.len, r->name.ptr, r->mechanism);
        return MD_EINVAL;
    }
    if (!own_scram(d))
        return MD_ENOMEM;
    md_scram_set *s = d->work->scram;
    char *name = dup_kstr(r->name);
    if (name == NULL)
        return MD_ENOMEM;
    int32_t i = scram_find(s, name, r->mechanism);
    if (i < 0) {
        if (s->n >= MD_SCRAM_USERS_MAX) {
            free(name);
            seterr(err, errn, "UserScramCredentialRecord: more than %d credentials", MD_SCRAM_USERS_MAX);
            return MD_EINVAL;
        }
        if (s->n == s->cap) {
            md_scram *ni = realloc(s->items, (size_t)s->cap * 2 * sizeof *ni);
            if (ni == NULL) {
                free(name);
                return MD_ENOMEM;
            }
            s->items = ni;
            s->cap *= 2;
        }
        i = -i - 1;
        memmove(&s->items[i + 1], &s->items[i], (size_t)(s->n - i) * sizeof *s->items);
        s->n++;
    } else {
        free(s->items[i].name);
    }
    md_scram *c = &s->items[i];
    memset(c, 0, sizeof *c);
    c->name = name;
    c->mechanism = r->mechanism;
    c->iterations = r->iterations;
    c->salt_n = r->salt.len;
    c->key_n = (int32_t)key_n;
    memcpy(c->salt, r->salt.ptr, (size_t)r->salt.len);
    memcpy(c->stored_key, r->stored_key.ptr, key_n);
    memcpy(c->server_key, r->server_key.ptr, key_n);
    return MD_OK;
}

static int apply_remove_scram(md_delta *d, const kafka_remove_user_scram_credential_record *r, char *err,
                              size_t errn) {
    char name[MD_SCRAM_NAME_MAX + 1];
    if (r->name.len <= 0 || r->name.len > MD_SCRAM_NAME_MAX) {
        seterr(err, errn, "RemoveUserScramCredentialRecord: invalid user name");
        return MD_EINVAL;
    }
    memcpy(name, r->name.ptr, (size_t)r->name.len);
    name[r->name.len] = '\0';
    if (scram_find(d->work->scram, name, r->mechanism) < 0) {
        seterr(err, errn, "RemoveUserScramCredentialRecord: %s has no credential for mechanism %d", name,
               r->mechanism);
        return MD_ENOENT;
    }
    if (!own_scram(d))
        return MD_ENOMEM;
    md_scram_set *s = d->work->scram;
    int32_t i = scram_find(s, name, r->mechanism);
    free(s->items[i].name);
    memmove(&s->items[i], &s->items[i + 1], (size_t)(s->n - i - 1) * sizeof *s->items);
    s->n--;
    return MD_OK;
}

/* The delta's own copy of the ACLs (once per delta). */
static bool own_acls(md_delta *d) {
    if (d->acls_copied)
        return true;
    acl_set *ns = acl_set_copy(d->work->acls);
    if (ns == NULL)
        return false;
    acl_set_unref(d->work->acls);
    d->work->acls = ns;
    d->acls_copied = true;
    return true;
}

static int apply_acl(md_delta *d, const kafka_access_control_entry_record *r, char *err, size_t errn) {
    acl_spec b = {r->resource_type, r->pattern_type, r->operation, r->permission_type,
                  r->resource_name, r->principal,    r->host};
    const char *why = acl_binding_invalid(&b);
    if (why != NULL) {
        seterr(err, errn, "AccessControlEntryRecord: %s", why);
        return MD_EINVAL;
    }
    if (acl_set_by_id(d->work->acls, r->id) != NULL) {
        seterr(err, errn, "AccessControlEntryRecord: an ACL with this id exists");
        return MD_EEXISTS;
    }
    if (!own_acls(d))
        return MD_ENOMEM;
    int rc = acl_set_add(d->work->acls, r->id, &b);
    if (rc == -2) {
        seterr(err, errn, "AccessControlEntryRecord: more than %d ACLs", ACL_BINDINGS_MAX);
        return MD_EINVAL;
    }
    return rc == 0 ? MD_OK : MD_ENOMEM;
}

static int apply_remove_acl(md_delta *d, const kafka_remove_access_control_entry_record *r, char *err,
                            size_t errn) {
    if (acl_set_by_id(d->work->acls, r->id) == NULL) {
        seterr(err, errn, "RemoveAccessControlEntryRecord: no ACL has this id");
        return MD_ENOENT;
    }
    if (!own_acls(d))
        return MD_ENOMEM;
    acl_set_remove(d->work->acls, r->id);
    return MD_OK;
}

const acl_set *md_image_acls(const md_image *img) { return img->acls; }
const acl_set *md_delta_acls(const md_delta *d) { return d->work->acls; }

/* The delta's own copy of the quotas (once per delta). */
static bool own_quotas(md_delta *d) {
    if (d->quotas_copied)
        return true;
    md_quota_set *ns = md_quota_set_copy(d->work->quotas);
    if (ns == NULL)
        return false;
    md_quota_set_unref(d->work->quotas);
    d->work->quotas = ns;
    d->quotas_copied = true;
    return true;
}

static int apply_client_quota(md_delta *d, const kafka_client_quota_record *r, char *err, size_t errn) {
    md_quota_comp comp[2];
    int32_t n = r->entity_count;
    for (int32_t i = 0; i < n && i < 2; i++)
        comp[i] = (md_quota_comp){r->entity[i].entity_type, r->entity[i].entity_name};
    const char *why =
        n >= 1 && n <= 2 ? md_quota_entity_invalid(comp, n) : "an entity has one or two components";
    if (why == NULL && !text_ok(r->key))
        why = "the key holds a NUL byte";
    if (why != NULL) {
        seterr(err, errn, "ClientQuotaRecord: %s", why);
        return MD_EINVAL;
    }
    if (!own_quotas(d))
        return MD_ENOMEM;
    int rc = md_quota_set_apply(d->work->quotas, comp, n, r->key, r->value, r->remove, &why);
    if (rc == -1 || rc == -2) {
        seterr(err, errn, "ClientQuotaRecord: %s", why);
        return MD_EINVAL;
    }
    return rc == 0 ? MD_OK : MD_ENOMEM;
}

const md_quota_set *md_image_quotas(const md_image *img) { return img->quotas; }
const md_quota_set *md_delta_quotas(const md_delta *d) { return d->work->quotas; }

int md_apply(md_delta *d, const mdrec *rec, char *err, size_t errn) {
    if (err && errn)
        err[0] = '\0';
    int rc;
    switch (rec->type) {
    case KAFKA_MREC_TOPIC:
        rc = apply_topic(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_PARTITION:
        rc = apply_partition(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_PARTITION_CHANGE:
        rc = apply_partition_change(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_REMOVE_TOPIC:
        rc = apply_remove_topic(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_CONFIG:
        rc = apply_config(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_REGISTER_BROKER:
        rc = apply_register_broker(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_UNREGISTER_BROKER:
    case KAFKA_MREC_FENCE_BROKER:
    case KAFKA_MREC_UNFENCE_BROKER:
    case KAFKA_MREC_BROKER_REGISTRATION_CHANGE:
        rc = apply_broker_record(d, rec, err, errn);
        break;
    case KAFKA_MREC_FEATURE_LEVEL:
        rc = apply_feature(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_PRODUCER_IDS: {
        const kafka_producer_ids_record *r = rec->body;
        if (r->next_producer_id < d->work->next_producer_id) {
            seterr(err, errn, "ProducerIdsRecord: next producer id %lld goes back from %lld",
                   (long long)r->next_producer_id, (long long)d->work->next_producer_id);
            rc = MD_EINVAL;
        } else {
            d->work->next_producer_id = r->next_producer_id;
            rc = MD_OK;
        }
        break;
    }
    case KAFKA_MREC_USER_SCRAM_CREDENTIAL:
        rc = apply_scram(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_REMOVE_USER_SCRAM_CREDENTIAL:
        rc = apply_remove_scram(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_ACCESS_CONTROL_ENTRY:
        rc = apply_acl(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_REMOVE_ACCESS_CONTROL_ENTRY:
        rc = apply_remove_acl(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_CLIENT_QUOTA:
        rc = apply_client_quota(d, rec->body, err, errn);
        break;
    case KAFKA_MREC_NO_OP:
        rc = MD_OK;
        break;
    default:
        if (kafka_metadata_record_lookup(rec->type) == NULL) {
            seterr(err, errn, "unknown metadata record type %d", rec->type);
            rc = MD_EINVAL;
        } else {
            /* Known but not kept yet (tokens,
             * transactions, controller registrations). */
            d->work->ignored++;
            rc = MD_OK;
        }
        break;
    }
    if (rc == MD_OK)
        d->applied++;
    else if (rc == MD_ENOMEM && err && errn && !err[0])
        seterr(err, errn, "out of memory applying %s", mdrec_type_name(rec->type));
    return rc;
}

/* ---- snapshots ---------------------------------------------------------------------- */

static int emit(md_record_fn fn, void *ctx, int16_t type, void *body) {
    mdrec r = {type, mdrec_write_version(type), kafka_metadata_record_lookup(type), body};
    return fn(ctx, &r);
}

static int emit_partition(const md_topic *t, const md_partition *p, md_record_fn fn, void *ctx) {
    kafka_partition_record r;
    kafka_partition_record_init(&r);
    r.partition_id = p->id;
    r.topic_id = t->id;
    r.replicas = (int32_t *)p->replicas.ids;
    r.replicas_count = p->replicas.n;
    r.isr = (int32_t *)p->isr.ids;
    r.isr_count = p->isr.n;
    r.removing_replicas = (int32_t *)p->removing.ids;
    r.removing_replicas_count = p->removing.n;
    r.adding_replicas = (int32_t *)p->adding.ids;
    r.adding_replicas_count = p->adding.n;
    r.leader = p->leader;
    r.leader_recovery_state = p->leader_recovery_state;
    r.leader_epoch = p->leader_epoch;
    r.partition_epoch = p->partition_epoch;
    r.directories = (kuuid *)p->directories;
    r.directories_count = p->n_directories;
    r.eligible_leader_replicas = (int32_t *)p->elr.ids;
    r.eligible_leader_replicas_count = p->elr.present ? p->elr.n : -1;
    r.last_known_elr = (int32_t *)p->last_known_elr.ids;
    r.last_known_elr_count = p->last_known_elr.present ? p->last_known_elr.n : -1;
    return emit(fn, ctx, KAFKA_MREC_PARTITION, &r);
}

int md_image_records(const md_image *img, md_record_fn fn, void *ctx) {
    int rc;
    for (int32_t i = 0; i < img->n_features; i++) {
        kafka_feature_level_record r;
        kafka_feature_level_record_init(&r);
        r.name = kstr_c(img->features[i].name);
        r.feature_level = img->features[i].level;
        if ((rc = emit(fn, ctx, KAFKA_MREC_FEATURE_LEVEL, &r)) != 0)
            return rc;
    }
    for (int32_t i = 0; i < img->n_brokers; i++) {
        const md_broker *b = &img->brokers[i];
        kafka_register_broker_record r;
        kafka_register_broker_record_init(&r);
        kafka_register_broker_record_broker_endpoint eps[MD_ENDPOINTS_MAX];
        r.broker_id = b->id;
        r.incarnation_id = b->incarnation;
        r.broker_epoch = b->epoch;
        for (int32_t k = 0; k < b->n_endpoints; k++) {
            kafka_register_broker_record_broker_endpoint_init(&eps[k]);
            eps[k].name = kstr_c(b->endpoints[k].name);
            eps[k].host = kstr_c(b->endpoints[k].host);
            eps[k].port = b->endpoints[k].port;
            eps[k].security_protocol = b->endpoints[k].security_protocol;
        }
        r.end_points = eps;
        r.end_points_count = b->n_endpoints;
        r.features_count = 0;
        r.rack = b->rack ? kstr_c(b->rack) : KSTR_NULL;
        r.fenced = b->fenced;
        r.in_controlled_shutdown = b->in_controlled_shutdown;
        if ((rc = emit(fn, ctx, KAFKA_MREC_REGISTER_BROKER, &r)) != 0)
            return rc;
    }
    for (int32_t i = 0; i < img->n_topics; i++) {
        const md_topic *t = img->topics[i];
        kafka_topic_record r;
        kafka_topic_record_init(&r);
        r.name = (kstr){t->name, t->name_len};
        r.topic_id = t->id;
        if ((rc = emit(fn, ctx, KAFKA_MREC_TOPIC, &r)) != 0)
            return rc;
        for (int32_t p = 0; p < t->n_partitions; p++)
            if (t->partitions[p].id == p && (rc = emit_partition(t, &t->partitions[p], fn, ctx)) != 0)
                return rc;
    }
    for (int32_t i = 0; i < img->n_resources; i++) {
        const md_resource *res = img->resources[i];
        for (int32_t k = 0; k < res->n; k++) {
            kafka_config_record r;
            kafka_config_record_init(&r);
            r.resource_type = res->type;
            r.resource_name = kstr_c(res->name);
            r.name = kstr_c(res->items[k].key);
            r.value = kstr_c(res->items[k].value);
            if ((rc = emit(fn, ctx, KAFKA_MREC_CONFIG, &r)) != 0)
                return rc;
        }
    }
    for (int32_t i = 0; i < md_image_scram_count(img); i++) {
        const md_scram *c = &img->scram->items[i];
        kafka_user_scram_credential_record r;
        kafka_user_scram_credential_record_init(&r);
        r.name = kstr_c(c->name);
        r.mechanism = c->mechanism;
        r.salt = (kbytes){c->salt, c->salt_n};
        r.stored_key = (kbytes){c->stored_key, c->key_n};
        r.server_key = (kbytes){c->server_key, c->key_n};
        r.iterations = c->iterations;
        if ((rc = emit(fn, ctx, KAFKA_MREC_USER_SCRAM_CREDENTIAL, &r)) != 0)
            return rc;
    }
    for (int32_t i = 0; i < acl_set_count(img->acls); i++) {
        const acl_entry *e = acl_set_at(img->acls, i);
        kafka_access_control_entry_record r;
        kafka_access_control_entry_record_init(&r);
        r.id = e->id;
        r.resource_type = e->resource_type;
        r.resource_name = kstr_c(e->name);
        r.pattern_type = e->pattern_type;
        r.principal = kstr_c(e->principal);
        r.host = kstr_c(e->host);
        r.operation = e->operation;
        r.permission_type = e->permission;
        if ((rc = emit(fn, ctx, KAFKA_MREC_ACCESS_CONTROL_ENTRY, &r)) != 0)
            return rc;
    }
    for (int32_t i = 0; i < md_quota_set_count(img->quotas); i++) {
        const md_quota *q = md_quota_set_at(img->quotas, i);
        kafka_client_quota_record_entity_data ent[2];
        for (int32_t k = 0; k < q->n_parts; k++) {
            kafka_client_quota_record_entity_data_init(&ent[k]);
            ent[k].entity_type = kstr_c(q->parts[k].type);
            ent[k].entity_name = q->parts[k].name ? kstr_c(q->parts[k].name) : KSTR_NULL;
        }
        for (int32_t k = 0; k < q->n_values; k++) {
            kafka_client_quota_record r;
            kafka_client_quota_record_init(&r);
            r.entity = ent;
            r.entity_count = q->n_parts;
            r.key = kstr_c(q->values[k].key);
            r.value = q->values[k].value;
            r.remove = false;
            if ((rc = emit(fn, ctx, KAFKA_MREC_CLIENT_QUOTA, &r)) != 0)
                return rc;
        }
    }
    if (img->next_producer_id > 0) {
        kafka_producer_ids_record r;
        kafka_producer_ids_record_init(&r);
        r.broker_id = 0;
        r.broker_epoch = -1;
        r.next_producer_id = img->next_producer_id;
        if ((rc = emit(fn, ctx, KAFKA_MREC_PRODUCER_IDS, &r)) != 0)
            return rc;
    }
    return 0;
}

/* ---- comparison ---------------------------------------------------------------------- */

static bool ids_eq(md_ids a, md_ids b) {
    return a.n == b.n && a.present == b.present && (a.n == 0 || memcmp(a.ids, b.ids, (size_t)a.n * 4) == 0);
}

static bool partition_eq(const md_partition *a, const md_partition *b) {
    return a->id == b->id && ids_eq(a->replicas, b->replicas) && ids_eq(a->isr, b->isr) &&
           ids_eq(a->removing, b->removing) && ids_eq(a->adding, b->adding) && ids_eq(a->elr, b->elr) &&
           ids_eq(a->last_known_elr, b->last_known_elr) && a->n_directories == b->n_directories &&
           (a->n_directories == 0 ||
            memcmp(a->directories, b->directories, (size_t)a->n_directories * sizeof(kuuid)) == 0) &&
           a->leader == b->leader && a->leader_epoch == b->leader_epoch &&
           a->partition_epoch == b->partition_epoch && a->leader_recovery_state == b->leader_recovery_state;
}

static bool str_eq(const char *a, const char *b) {
    return (a == NULL) == (b == NULL) && (!a || !strcmp(a, b));
}

static bool broker_eq(const md_broker *a, const md_broker *b) {
    if (a->id != b->id || a->epoch != b->epoch || !kuuid_eq(a->incarnation, b->incarnation) ||
        a->n_endpoints != b->n_endpoints || !str_eq(a->rack, b->rack) || a->fenced != b->fenced ||
        a->in_controlled_shutdown != b->in_controlled_shutdown)
        return false;
    for (int32_t i = 0; i < a->n_endpoints; i++)
        if (strcmp(a->endpoints[i].name, b->endpoints[i].name) ||
            strcmp(a->endpoints[i].host, b->endpoints[i].host) ||
            a->endpoints[i].port != b->endpoints[i].port ||
            a->endpoints[i].security_protocol != b->endpoints[i].security_protocol)
            return false;
    return true;
}

bool md_image_equal(const md_image *a, const md_image *b, char *why, size_t whyn) {
    if (a->n_topics != b->n_topics) {
        seterr(why, whyn, "%d topics against %d", a->n_topics, b->n_topics);
        return false;
    }
    for (int32_t i = 0; i < a->n_topics; i++) {
        const md_topic *t = a->topics[i];
        const md_topic *u = md_image_topic(b, (kstr){t->name, t->name_len});
        if (u == NULL || !kuuid_eq(t->id, u->id)) {
            seterr(why, whyn, "topic %s is missing or has another id", t->name);
            return false;
        }
        if (t->n_partitions != u->n_partitions) {
            seterr(why, whyn, "topic %s: %d partitions against %d", t->name, t->n_partitions,
                   u->n_partitions);
            return false;
        }
        for (int32_t p = 0; p < t->n_partitions; p++)
            if (!partition_eq(&t->partitions[p], &u->partitions[p])) {
                seterr(why, whyn, "topic %s partition %d differs", t->name, p);
                return false;
            }
    }
    if (a->n_brokers != b->n_brokers) {
        seterr(why, whyn, "%d brokers against %d", a->n_brokers, b->n_brokers);
        return false;
    }
    for (int32_t i = 0; i < a->n_brokers; i++)
        if (!broker_eq(&a->brokers[i], &b->brokers[i])) {
            seterr(why, whyn, "broker %d differs", a->brokers[i].id);
            return false;
        }
    if (a->n_resources != b->n_resources) {
        seterr(why, whyn, "%d config resources against %d", a->n_resources, b->n_resources);
        return false;
    }
    for (int32_t i = 0; i < a->n_resources; i++) {
        const md_resource *x = a->resources[i], *y = b->resources[i];
        bool same = x->type == y->type && !strcmp(x->name, y->name) && x->n == y->n;
        for (int32_t k = 0; same && k < x->n; k++)
            same = !strcmp(x->items[k].key, y->items[k].key) && !strcmp(x->items[k].value, y->items[k].value);
        if (!same) {
            seterr(why, whyn, "configs of resource %d/%s differ", x->type, x->name);
            return false;
        }
    }
    if (a->n_features != b->n_features) {
        seterr(why, whyn, "%d features against %d", a->n_features, b->n_features);
        return false;
    }
    for (int32_t i = 0; i < a->n_features; i++)
        if (md_image_feature(b, a->features[i].name) != a->features[i].level) {
            seterr(why, whyn, "feature %s differs", a->features[i].name);
            return false;
        }
    if (a->next_producer_id != b->next_producer_id) {
        seterr(why, whyn, "next producer id %lld against %lld", (long long)a->next_producer_id,
               (long long)b->next_producer_id);
        return false;
    }
    if (md_image_scram_count(a) != md_image_scram_count(b)) {
        seterr(why, whyn, "%d SCRAM credentials against %d", md_image_scram_count(a),
               md_image_scram_count(b));
        return false;
    }
    for (int32_t i = 0; i < md_image_scram_count(a); i++) {
        const md_scram *x = &a->scram->items[i], *y = &b->scram->items[i];
        if (strcmp(x->name, y->name) || x->mechanism != y->mechanism || x->iterations != y->iterations ||
            x->salt_n != y->salt_n || x->key_n != y->key_n || memcmp(x->salt, y->salt, (size_t)x->salt_n) ||
            memcmp(x->stored_key, y->stored_key, (size_t)x->key_n) ||
            memcmp(x->server_key, y->server_key, (size_t)x->key_n)) {
            seterr(why, whyn, "SCRAM credential of %s (mechanism %d) differs", x->name, x->mechanism);
            return false;
        }
    }
    if (acl_set_count(a->acls) != acl_set_count(b->acls)) {
        seterr(why, whyn, "%d ACLs against %d", acl_set_count(a->acls), acl_set_count(b->acls));
        return false;
    }
    for (int32_t i = 0; i < acl_set_count(a->acls); i++) {
        const acl_entry *x = acl_set_at(a->acls, i), *y = acl_set_at(b->acls, i);
        acl_spec ys = {y->resource_type, y->pattern_type,      y->operation,   y->permission,
                       kstr_c(y->name),  kstr_c(y->principal), kstr_c(y->host)};
        if (!kuuid_eq(x->id, y->id) || !acl_entry_is(x, &ys)) {
            seterr(why, whyn, "ACL %d (%s %s) differs", i, acl_resource_type_name(x->resource_type), x->name);
            return false;
        }
    }
    if (!md_quota_set_equal(a->quotas, b->quotas)) {
        seterr(why, whyn, "client quotas differ (%d entities against %d)", md_quota_set_count(a->quotas),
               md_quota_set_count(b->quotas));
        return false;
    }
    return true;
}
