/*
 * quotas.c - the client quota set of the metadata image (quotas.h).
 *
 * A sorted array of entities, each with a sorted array of values. Quotas
 * are few (one entity per user or client id an operator configured) and
 * change rarely, so a change copies the whole set once per delta and
 * inserts by moving the tail: simple, and O(entities) per change.
 */
#include "metadata/quotas.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct md_quota_set {
    atomic_int refs;
    md_quota *items;
    int32_t n, cap;
};

#define SEP_NAME    '\x1e'
#define SEP_DEFAULT '\x1f'
#define SEP_END     '\x1d'

static bool printable(kstr s) {
    for (int32_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f)
            return false;
    return true;
}

static int kstr_cmp(kstr a, kstr b) {
    int32_t n = a.len < b.len ? a.len : b.len;
    int c = n > 0 ? memcmp(a.ptr, b.ptr, (size_t)n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

const char *md_quota_entity_invalid(const md_quota_comp *c, int32_t n) {
    if (n < 1 || n > 2)
        return "an entity has one or two components";
    for (int32_t i = 0; i < n; i++) {
        if (c[i].type.len <= 0)
            return "an entity component has no type";
        if (c[i].type.len > MD_QUOTA_TYPE_MAX || c[i].name.len > MD_QUOTA_NAME_MAX)
            return "an entity type or name is too long";
        if (!printable(c[i].type) || (c[i].name.len > 0 && !printable(c[i].name)))
            return "an entity type or name holds a control character";
    }
    if (n == 2 && kstr_cmp(c[0].type, c[1].type) == 0)
        return "an entity names the same type twice";
    return NULL;
}

int md_quota_key(const md_quota_comp *c, int32_t n, char *out) {
    if (md_quota_entity_invalid(c, n) != NULL)
        return -1;
    int32_t order[2] = {0, 1};
    if (n == 2 && kstr_cmp(c[0].type, c[1].type) > 0) {
        order[0] = 1;
        order[1] = 0;
    }
    size_t len = 0;
    for (int32_t k = 0; k < n; k++) {
        const md_quota_comp *p = &c[order[k]];
        memcpy(out + len, p->type.ptr, (size_t)p->type.len);
        len += (size_t)p->type.len;
        out[len++] = SEP_NAME;
        if (p->name.len < 0) {
            out[len++] = SEP_DEFAULT;
        } else {
            out[len++] = '=';
            if (p->name.len > 0)
                memcpy(out + len, p->name.ptr, (size_t)p->name.len);
            len += (size_t)p->name.len;
        }
        out[len++] = SEP_END;
    }
    out[len] = '\0';
    return (int)len;
}

md_quota_set *md_quota_set_ref(md_quota_set *s) {
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

static void quota_clear(md_quota *q) {
    free(q->ekey);
    for (int32_t i = 0; i < q->n_parts; i++) {
        free(q->parts[i].type);
        free(q->parts[i].name);
    }
    for (int32_t i = 0; i < q->n_values; i++)
        free(q->values[i].key);
    free(q->values);
    memset(q, 0, sizeof *q);
}

static void set_free(md_quota_set *s) {
    for (int32_t i = 0; i < s->n; i++)
        quota_clear(&s->items[i]);
    free(s->items);
    free(s);
}

void md_quota_set_unref(md_quota_set *s) {
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        set_free(s);
}

static char *dup_n(const char *p, size_t n) {
    char *c = malloc(n + 1);
    if (c) {
        if (n)
            memcpy(c, p, n);
        c[n] = '\0';
    }
    return c;
}

static char *dup_s(const char *s) { return s ? dup_n(s, strlen(s)) : NULL; }

static bool quota_copy(md_quota *d, const md_quota *q) {
    memset(d, 0, sizeof *d);
    d->ekey = dup_s(q->ekey);
    d->values = calloc((size_t)q->n_values, sizeof *d->values);
    if (d->ekey == NULL || d->values == NULL)
        return false;
    for (int32_t i = 0; i < q->n_parts; i++) {
        d->parts[i].type = dup_s(q->parts[i].type);
        d->parts[i].name = dup_s(q->parts[i].name);
        d->n_parts = i + 1;
        if (d->parts[i].type == NULL || (q->parts[i].name && d->parts[i].name == NULL))
            return false;
    }
    for (int32_t i = 0; i < q->n_values; i++) {
        d->values[i].key = dup_s(q->values[i].key);
        d->values[i].value = q->values[i].value;
        d->n_values = i + 1;
        if (d->values[i].key == NULL)
            return false;
    }
    return true;
}

md_quota_set *md_quota_set_copy(const md_quota_set *s) {
    md_quota_set *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    int32_t n = s ? s->n : 0;
    c->cap = n > 8 ? n : 8;
    c->items = calloc((size_t)c->cap, sizeof *c->items);
    if (c->items == NULL) {
        free(c);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) {
        bool ok = quota_copy(&c->items[i], &s->items[i]);
        c->n = i + 1;
        if (!ok) {
            set_free(c);
            return NULL;
        }
    }
    return c;
}

/* Index of ekey in s, or -(insertion point) - 1. */
static int32_t find(const md_quota_set *s, const char *ekey) {
    int32_t lo = 0, hi = s ? s->n : 0;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->items[mid].ekey, ekey);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -lo - 1;
}

static int32_t find_value(const md_quota *q, const char *key) {
    int32_t lo = 0, hi = q->n_values;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(q->values[mid].key, key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -lo - 1;
}

/* A new entity (without values) for c at ekey. */
static bool quota_make(md_quota *q, const md_quota_comp *c, int32_t n, const char *ekey) {
    memset(q, 0, sizeof *q);
    q->ekey = dup_s(ekey);
    if (q->ekey == NULL)
        return false;
    int32_t order[2] = {0, 1};
    if (n == 2 && kstr_cmp(c[0].type, c[1].type) > 0) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int32_t k = 0; k < n; k++) {
        const md_quota_comp *p = &c[order[k]];
        q->parts[k].type = dup_n(p->type.ptr, (size_t)p->type.len);
        q->parts[k].name = p->name.len >= 0 ? dup_n(p->name.ptr, (size_t)p->name.len) : NULL;
        q->n_parts = k + 1;
        if (q->parts[k].type == NULL || (p->name.len >= 0 && q->parts[k].name == NULL))
            return false;
    }
    return true;
}

int md_quota_set_apply(md_quota_set *s, const md_quota_comp *c, int32_t n, kstr key, double value,
                       bool remove, const char **why) {
    const char *bad = md_quota_entity_invalid(c, n);
    if (bad == NULL && (key.len <= 0 || key.len > MD_QUOTA_KEY_NAME_MAX || !printable(key)))
        bad = "the quota key is empty, too long or holds a control character";
    if (bad == NULL && !remove && !isfinite(value))
        bad = "the quota value is not a finite number";
    if (bad != NULL) {
        if (why)
            *why = bad;
        return -1;
    }
    char ekey[MD_QUOTA_EKEY_MAX];
    md_quota_key(c, n, ekey);
    char kbuf[MD_QUOTA_KEY_NAME_MAX + 1];
    memcpy(kbuf, key.ptr, (size_t)key.len);
    kbuf[key.len] = '\0';
    int32_t i = find(s, ekey);
    if (remove) {
        if (i < 0)
            return 0;
        md_quota *q = &s->items[i];
        int32_t v = find_value(q, kbuf);
        if (v < 0)
            return 0;
        free(q->values[v].key);
        memmove(&q->values[v], &q->values[v + 1], (size_t)(q->n_values - v - 1) * sizeof *q->values);
        q->n_values--;
        if (q->n_values == 0) {
            quota_clear(q);
            memmove(&s->items[i], &s->items[i + 1], (size_t)(s->n - i - 1) * sizeof *s->items);
            s->n--;
        }
        return 0;
    }
    if (i < 0) {
        if (s->n >= MD_QUOTA_ENTITIES_MAX) {
            if (why)
                *why = "the cluster keeps quotas for at most 100000 entities";
            return -2;
        }
        if (s->n == s->cap) {
            int32_t ncap = s->cap ? s->cap * 2 : 8;
            md_quota *ni = realloc(s->items, (size_t)ncap * sizeof *ni);
            if (ni == NULL)
                return -3;
            s->items = ni;
            s->cap = ncap;
        }
        md_quota q;
        if (!quota_make(&q, c, n, ekey)) {
            quota_clear(&q);
            return -3;
        }
        i = -i - 1;
        memmove(&s->items[i + 1], &s->items[i], (size_t)(s->n - i) * sizeof *s->items);
        s->items[i] = q;
        s->n++;
    }
    md_quota *q = &s->items[i];
    int32_t v = find_value(q, kbuf);
    if (v >= 0) {
        q->values[v].value = value;
        return 0;
    }
    if (q->n_values >= MD_QUOTA_KEYS_MAX) {
        if (why)
            *why = "an entity has at most 32 quota keys";
        return -2;
    }
    char *k = dup_s(kbuf);
    md_quota_value *nv = realloc(q->values, (size_t)(q->n_values + 1) * sizeof *nv);
    if (k == NULL || nv == NULL) {
        free(k);
        if (nv)
            q->values = nv;
        if (q->n_values == 0) { /* the entity made above for this key */
            quota_clear(q);
            memmove(&s->items[i], &s->items[i + 1], (size_t)(s->n - i - 1) * sizeof *s->items);
            s->n--;
        }
        return -3;
    }
    q->values = nv;
    v = -v - 1;
    memmove(&q->values[v + 1], &q->values[v], (size_t)(q->n_values - v) * sizeof *q->values);
    q->values[v] = (md_quota_value){k, value};
    q->n_values++;
    return 0;
}

int32_t md_quota_set_count(const md_quota_set *s) { return s ? s->n : 0; }
const md_quota *md_quota_set_at(const md_quota_set *s, int32_t i) { return &s->items[i]; }

const md_quota *md_quota_set_find(const md_quota_set *s, const char *ekey) {
    int32_t i = find(s, ekey);
    return i >= 0 ? &s->items[i] : NULL;
}

bool md_quota_get(const md_quota *q, const char *key, double *out) {
    if (q == NULL)
        return false;
    int32_t v = find_value(q, key);
    if (v < 0)
        return false;
    *out = q->values[v].value;
    return true;
}

bool md_quota_set_equal(const md_quota_set *a, const md_quota_set *b) {
    if (md_quota_set_count(a) != md_quota_set_count(b))
        return false;
    for (int32_t i = 0; i < md_quota_set_count(a); i++) {
        const md_quota *x = &a->items[i], *y = &b->items[i];
        if (strcmp(x->ekey, y->ekey) != 0 || x->n_values != y->n_values)
            return false;
        for (int32_t k = 0; k < x->n_values; k++)
            if (strcmp(x->values[k].key, y->values[k].key) != 0 || x->values[k].value != y->values[k].value)
                return false;
    }
    return true;
}
