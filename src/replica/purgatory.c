/*
 * purgatory.c - delayed operations. See purgatory.h.
 *
 * Structures: a chained hash from key to the links of the ops watching it
 * (each op owns an array of links, one per key); a binary min-heap of
 * parked ops by deadline (ops remember their heap position, so cancel and
 * take are O(log n)); a FIFO of woken ops.
 */
#include "replica/purgatory.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct purg_link {
    const void *key;
    purg_op *op;
    purg_link *next; /* in the key's bucket */
};

struct purgatory {
    int32_t max_ops, max_keys;
    purg_link **buckets;
    uint32_t mask;
    int64_t n_links;
    purg_op **heap;
    int32_t n_heap, cap_heap;
    purg_op *woken_head, *woken_tail;
    int32_t n_woken;
};

static uint32_t hash_ptr(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* O(1) checks always; the full walk in checked builds (SLUICE_DEEP_CHECKS,
 * set for Debug builds: the sanitizer runs), as it is O(parked ops). */
static void check_invariants(const purgatory *p) {
    assert(p->n_heap >= 0 && p->n_heap <= p->max_ops);
    assert(p->n_woken >= 0 && p->n_woken <= p->n_heap);
    assert((p->woken_head == NULL) == (p->n_woken == 0));
#ifdef SLUICE_DEEP_CHECKS
    for (int32_t i = 0; i < p->n_heap; i++) {
        assert(p->heap[i]->heap_pos == i);
        assert(p->heap[i]->parked);
        if (i > 0)
            assert(p->heap[(i - 1) / 2]->deadline <= p->heap[i]->deadline);
    }
    int32_t w = 0;
    for (const purg_op *o = p->woken_head; o; o = o->next_woken) {
        assert(o->woken && o->parked);
        w++;
    }
    assert(w == p->n_woken && w <= p->n_heap);
#endif
}

purgatory *purg_create(int32_t max_ops, int32_t max_keys) {
    purgatory *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->max_ops = max_ops > 0 ? max_ops : 1;
    p->max_keys = max_keys > 0 ? max_keys : 1;
    p->mask = 255;
    p->buckets = calloc(p->mask + 1, sizeof *p->buckets);
    if (p->buckets == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void purg_destroy(purgatory *p) {
    if (p == NULL)
        return;
    for (int32_t i = 0; i < p->n_heap; i++) {
        purg_op *o = p->heap[i];
        free(o->links);
        o->links = NULL;
        o->n_links = 0;
        o->parked = o->woken = false;
        o->heap_pos = -1;
    }
    free(p->heap);
    free(p->buckets);
    free(p);
}

/* ---- heap ------------------------------------------------------------------ */

static void heap_set(purgatory *p, int32_t i, purg_op *o) {
    p->heap[i] = o;
    o->heap_pos = i;
}

static void sift_up(purgatory *p, int32_t i) {
    purg_op *o = p->heap[i];
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (p->heap[parent]->deadline <= o->deadline)
            break;
        heap_set(p, i, p->heap[parent]);
        i = parent;
    }
    heap_set(p, i, o);
}

static void sift_down(purgatory *p, int32_t i) {
    purg_op *o = p->heap[i];
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = o->deadline;
        if (l < p->n_heap && p->heap[l]->deadline < best) {
            m = l;
            best = p->heap[l]->deadline;
        }
        if (r < p->n_heap && p->heap[r]->deadline < best)
            m = r;
        if (m == i)
            break;
        heap_set(p, i, p->heap[m]);
        i = m;
    }
    heap_set(p, i, o);
}

static void heap_remove(purgatory *p, purg_op *o) {
    int32_t i = o->heap_pos;
    assert(i >= 0 && i < p->n_heap && p->heap[i] == o);
    purg_op *last = p->heap[--p->n_heap];
    o->heap_pos = -1;
    if (last != o) {
        heap_set(p, i, last);
        sift_down(p, i);
        sift_up(p, last->heap_pos);
    }
}

/* ---- keys -------------------------------------------------------------------- */

static void grow_buckets(purgatory *p) {
    uint32_t ncap = (p->mask + 1) * 2;
    purg_link **nb = calloc(ncap, sizeof *nb);
    if (nb == NULL)
        return; /* longer chains, still correct */
    for (uint32_t b = 0; b <= p->mask; b++)
        for (purg_link *l = p->buckets[b], *next; l; l = next) {
            next = l->next;
            uint32_t j = hash_ptr(l->key) & (ncap - 1);
            l->next = nb[j];
            nb[j] = l;
        }
    free(p->buckets);
    p->buckets = nb;
    p->mask = ncap - 1;
}

static void unlink_op(purgatory *p, purg_op *o) {
    for (int32_t i = 0; i < o->n_links; i++) {
        purg_link *l = &o->links[i];
        purg_link **pp = &p->buckets[hash_ptr(l->key) & p->mask];
        while (*pp && *pp != l)
            pp = &(*pp)->next;
        assert(*pp == l);
        if (*pp)
            *pp = l->next;
    }
    p->n_links -= o->n_links;
    free(o->links);
    o->links = NULL;
    o->n_links = 0;
}

static void unwoken(purgatory *p, purg_op *o) {
    if (!o->woken)
        return;
    purg_op **pp = &p->woken_head, *prev = NULL;
    while (*pp && *pp != o) {
        prev = *pp;
        pp = &(*pp)->next_woken;
    }
    assert(*pp == o);
    *pp = o->next_woken;
    if (p->woken_tail == o)
        p->woken_tail = prev;
    o->next_woken = NULL;
    o->woken = false;
    p->n_woken--;
}

static void remove_op(purgatory *p, purg_op *o) {
    unwoken(p, o);
    unlink_op(p, o);
    heap_remove(p, o);
    o->parked = false;
}

/* ---- the API ------------------------------------------------------------------- */

int purg_park(purgatory *p, purg_op *op, const void *const *keys, int32_t n, int64_t deadline, int64_t now) {
    (void)now;
    check_invariants(p);
    if (op->parked)
        remove_op(p, op);
    if (n < 0 || n > p->max_keys || p->n_heap >= p->max_ops)
        return -1;
    purg_link *links = n ? malloc((size_t)n * sizeof *links) : NULL;
    if (n && links == NULL)
        return -1;
    if (p->n_heap == p->cap_heap) {
        int32_t ncap = p->cap_heap ? p->cap_heap * 2 : 64;
        if (ncap > p->max_ops)
            ncap = p->max_ops;
        purg_op **nh = realloc(p->heap, (size_t)ncap * sizeof *nh);
        if (nh == NULL) {
            free(links);
            return -1;
        }
        p->heap = nh;
        p->cap_heap = ncap;
    }
    if (p->n_links + n > (int64_t)(p->mask + 1) * 2)
        grow_buckets(p);
    op->links = links;
    op->n_links = n;
    for (int32_t i = 0; i < n; i++) {
        purg_link *l = &links[i];
        l->key = keys[i];
        l->op = op;
        uint32_t b = hash_ptr(keys[i]) & p->mask;
        l->next = p->buckets[b];
        p->buckets[b] = l;
    }
    p->n_links += n;
    op->deadline = deadline;
    op->parked = true;
    op->woken = false;
    op->next_woken = NULL;
    p->heap[p->n_heap] = op;
    op->heap_pos = p->n_heap++;
    sift_up(p, op->heap_pos);
    check_invariants(p);
    return 0;
}

static void wake(purgatory *p, purg_op *o) {
    if (o->woken)
        return;
    o->woken = true;
    o->next_woken = NULL;
    if (p->woken_tail)
        p->woken_tail->next_woken = o;
    else
        p->woken_head = o;
    p->woken_tail = o;
    p->n_woken++;
}

void purg_notify(purgatory *p, const void *key) {
    if (p->n_heap == 0)
        return;
    for (purg_link *l = p->buckets[hash_ptr(key) & p->mask]; l; l = l->next)
        if (l->key == key)
            wake(p, l->op);
    check_invariants(p);
}

void purg_wake(purgatory *p, purg_op *op) {
    if (op->parked)
        wake(p, op);
    check_invariants(p);
}

void purg_notify_all(purgatory *p) {
    for (int32_t i = 0; i < p->n_heap; i++)
        wake(p, p->heap[i]);
    check_invariants(p);
}

void purg_cancel(purgatory *p, purg_op *op) {
    if (op->parked)
        remove_op(p, op);
    check_invariants(p);
}

int32_t purg_take(purgatory *p, int64_t now, purg_op **out, bool *expired, int32_t max) {
    int32_t n = 0;
    while (n < max && p->woken_head) {
        purg_op *o = p->woken_head;
        bool exp = o->deadline <= now;
        remove_op(p, o);
        out[n] = o;
        expired[n++] = exp;
    }
    while (n < max && p->n_heap > 0 && p->heap[0]->deadline <= now) {
        purg_op *o = p->heap[0];
        remove_op(p, o);
        out[n] = o;
        expired[n++] = true;
    }
    check_invariants(p);
    return n;
}

int64_t purg_next_deadline(const purgatory *p) {
    if (p->n_woken > 0)
        return INT64_MIN;
    return p->n_heap > 0 ? p->heap[0]->deadline : INT64_MAX;
}

int32_t purg_count(const purgatory *p) { return p->n_heap; }

bool purg_is_parked(const purg_op *op) { return op->parked; }
