/*
 * producer_state.c - the idempotent producers of one partition. See
 * producer_state.h.
 *
 * Entries live in one array (indices are stable: a removed entry's slot
 * goes to a free list), found through a chained hash on the producer id and
 * kept in a doubly linked LRU list (oldest at lru_head) so that eviction
 * beyond max_producers and expiration are O(1) per entry dropped.
 */
#include "storage/producer_state.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "proto/wire.h"

struct pstate {
    pstate_entry *e;
    int32_t cap;   /* slots in e */
    int32_t used;  /* slots ever used (e[0..used)) */
    int32_t count; /* live entries */
    int32_t free_head;
    int32_t *buckets; /* heads, -1: empty */
    uint32_t mask;
    int32_t lru_head, lru_tail;
    int32_t max_producers;
    int64_t expiration_ms;
    /* Live entries' indices for pstate_at, rebuilt when stale. */
    int32_t *order;
    bool order_stale;
    /* Transactions: producers with one open, the earliest's first offset
     * (-1 none; recomputed when it closes), the aborted list (a ring,
     * oldest at ab_head). */
    int32_t n_open;
    int64_t open_min;
    pstate_aborted *ab;
    int32_t ab_n, ab_head, ab_cap;
};

static void recompute_open(pstate *s);

static uint32_t hash_pid(int64_t pid) {
    uint64_t x = (uint64_t)pid * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32);
}

pstate *pstate_create(int32_t max_producers, int64_t expiration_ms) {
    pstate *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->free_head = s->lru_head = s->lru_tail = -1;
    s->open_min = -1;
    pstate_set_limits(s, max_producers, expiration_ms);
    return s;
}

void pstate_destroy(pstate *s) {
    if (s == NULL)
        return;
    free(s->e);
    free(s->buckets);
    free(s->order);
    free(s->ab);
    free(s);
}

void pstate_set_limits(pstate *s, int32_t max_producers, int64_t expiration_ms) {
    s->max_producers = max_producers > 0 ? max_producers : PSTATE_PRODUCERS_DEFAULT;
    s->expiration_ms = expiration_ms;
}

void pstate_clear(pstate *s) {
    free(s->e);
    free(s->buckets);
    free(s->order);
    free(s->ab);
    int32_t max = s->max_producers;
    int64_t exp = s->expiration_ms;
    memset(s, 0, sizeof *s);
    s->free_head = s->lru_head = s->lru_tail = -1;
    s->open_min = -1;
    pstate_set_limits(s, max, exp);
}

int32_t pstate_last_seq(int32_t first_seq, int32_t record_count) {
    int64_t last = (int64_t)first_seq + record_count - 1;
    return last > INT32_MAX ? (int32_t)(last - INT32_MAX - 1) : (int32_t)last;
}

static int32_t next_seq(int32_t seq) { return seq == INT32_MAX ? 0 : seq + 1; }

static int32_t find(const pstate *s, int64_t pid) {
    if (s->buckets == NULL)
        return -1;
    for (int32_t i = s->buckets[hash_pid(pid) & s->mask]; i >= 0; i = s->e[i].hnext)
        if (s->e[i].producer_id == pid)
            return i;
    return -1;
}

const pstate_entry *pstate_get(const pstate *s, int64_t producer_id) {
    int32_t i = find(s, producer_id);
    return i >= 0 ? &s->e[i] : NULL;
}

static void lru_unlink(pstate *s, int32_t i) {
    pstate_entry *x = &s->e[i];
    if (x->lprev >= 0)
        s->e[x->lprev].lnext = x->lnext;
    else
        s->lru_head = x->lnext;
    if (x->lnext >= 0)
        s->e[x->lnext].lprev = x->lprev;
    else
        s->lru_tail = x->lprev;
    x->lprev = x->lnext = -1;
}

static void lru_push(pstate *s, int32_t i) {
    pstate_entry *x = &s->e[i];
    x->lprev = s->lru_tail;
    x->lnext = -1;
    if (s->lru_tail >= 0)
        s->e[s->lru_tail].lnext = i;
    else
        s->lru_head = i;
    s->lru_tail = i;
}

static void remove_at(pstate *s, int32_t i) {
    pstate_entry *x = &s->e[i];
    int32_t *link = &s->buckets[hash_pid(x->producer_id) & s->mask];
    while (*link != i) {
        assert(*link >= 0);
        link = &s->e[*link].hnext;
    }
    *link = x->hnext;
    lru_unlink(s, i);
    x->producer_id = -1;
    x->hnext = s->free_head;
    s->free_head = i;
    s->count--;
    s->order_stale = true;
}

/* Buckets sized to the slots (power of two, at least 16), chains rebuilt. */
static int rehash(pstate *s, int32_t slots) {
    uint32_t nb = 16;
    while (nb < (uint32_t)slots)
        nb <<= 1;
    int32_t *b = malloc(nb * sizeof *b);
    if (b == NULL)
        return -1;
    for (uint32_t k = 0; k < nb; k++)
        b[k] = -1;
    for (int32_t i = 0; i < s->used; i++) {
        if (s->e[i].producer_id < 0)
            continue;
        uint32_t h = hash_pid(s->e[i].producer_id) & (nb - 1);
        s->e[i].hnext = b[h];
        b[h] = i;
    }
    free(s->buckets);
    s->buckets = b;
    s->mask = nb - 1;
    return 0;
}

/* A new entry for pid (not present), evicting the least recently used one
 * at the limit. -1 on OOM. */
static int32_t insert(pstate *s, int64_t pid) {
    if (s->count >= s->max_producers) {
        int32_t v = s->lru_head;
        while (v >= 0 && s->e[v].txn_first >= 0)
            v = s->e[v].lnext;
        if (v >= 0)
            remove_at(s, v);
    }
    int32_t i;
    if (s->free_head >= 0) {
        i = s->free_head;
        s->free_head = s->e[i].hnext;
    } else {
        if (s->used == s->cap) {
            int32_t ncap = s->cap ? s->cap * 2 : 8;
            pstate_entry *ne = realloc(s->e, (size_t)ncap * sizeof *ne);
            if (ne == NULL)
                return -1;
            s->e = ne;
            s->cap = ncap;
            int32_t *no = realloc(s->order, (size_t)ncap * sizeof *no);
            if (no == NULL)
                return -1;
            s->order = no;
            s->order_stale = true;
            if (rehash(s, ncap) != 0)
                return -1;
        }
        i = s->used++;
    }
    pstate_entry *x = &s->e[i];
    memset(x, 0, sizeof *x);
    x->producer_id = pid;
    x->epoch = -1;
    x->txn_first = -1;
    uint32_t h = hash_pid(pid) & s->mask;
    x->hnext = s->buckets[h];
    s->buckets[h] = i;
    x->lprev = x->lnext = -1;
    lru_push(s, i);
    s->count++;
    s->order_stale = true;
    return i;
}

pstate_verdict pstate_check(const pstate *s, int64_t producer_id, int16_t epoch, int32_t first_seq,
                            int32_t last_seq, pstate_batch *dup, int16_t *cur_epoch) {
    int32_t i = find(s, producer_id);
    *cur_epoch = i >= 0 ? s->e[i].epoch : -1;
    if (i < 0)
        return first_seq == 0 ? PSTATE_APPEND : PSTATE_UNKNOWN_PRODUCER;
    const pstate_entry *x = &s->e[i];
    if (epoch < x->epoch)
        return PSTATE_FENCED;
    if (epoch > x->epoch)
        return first_seq == 0 ? PSTATE_APPEND : PSTATE_OUT_OF_ORDER;
    for (int32_t k = 0; k < x->n; k++) {
        const pstate_batch *b = &x->b[(x->head + k) % PSTATE_BATCHES];
        if (b->first_seq == first_seq && b->last_seq == last_seq) {
            *dup = *b;
            return PSTATE_DUPLICATE;
        }
    }
    const pstate_batch *nb = pstate_newest(x);
    if (nb == NULL)
        return first_seq == 0 ? PSTATE_APPEND : PSTATE_OUT_OF_ORDER;
    return first_seq == next_seq(nb->last_seq) ? PSTATE_APPEND : PSTATE_OUT_OF_ORDER;
}

int pstate_update(pstate *s, int64_t producer_id, int16_t epoch, const pstate_batch *b, int64_t now) {
    assert(producer_id >= 0);
    int32_t i = find(s, producer_id);
    if (i < 0 && (i = insert(s, producer_id)) < 0)
        return -1;
    pstate_entry *x = &s->e[i];
    if (epoch != x->epoch) {
        x->epoch = epoch;
        x->n = 0;
        x->head = 0;
    }
    if (x->n == PSTATE_BATCHES) {
        x->head = (x->head + 1) % PSTATE_BATCHES;
        x->n--;
    }
    x->b[(x->head + x->n) % PSTATE_BATCHES] = *b;
    x->n++;
    x->touched_ms = now;
    lru_unlink(s, i);
    lru_push(s, i);
    return 0;
}

void pstate_truncate(pstate *s, int64_t offset) {
    for (int32_t i = 0; i < s->used; i++) {
        pstate_entry *x = &s->e[i];
        if (x->producer_id < 0)
            continue;
        while (x->n > 0 && pstate_newest(x)->last_offset >= offset)
            x->n--;
        if (x->txn_first >= offset) {
            x->txn_first = -1;
            s->n_open--;
        }
        if (x->n == 0) {
            if (x->txn_first >= 0)
                s->n_open--;
            remove_at(s, i);
        }
    }
    /* Aborts whose marker was cut are forgotten (the newest are last). */
    while (s->ab_n > 0 && s->ab[(s->ab_head + s->ab_n - 1) % s->ab_cap].last_offset >= offset)
        s->ab_n--;
    recompute_open(s);
}

int32_t pstate_expire(pstate *s, int64_t now) {
    int32_t dropped = 0;
    if (s->expiration_ms <= 0)
        return 0;
    /* The LRU list is in touched order (updates move to the tail). */
    for (int32_t i = s->lru_head, n; i >= 0 && now - s->e[i].touched_ms >= s->expiration_ms; i = n) {
        n = s->e[i].lnext;
        if (s->e[i].txn_first >= 0)
            continue; /* an open transaction keeps its producer */
        remove_at(s, i);
        dropped++;
    }
    return dropped;
}

int32_t pstate_count(const pstate *s) { return s->count; }

const pstate_entry *pstate_at(const pstate *s, int32_t i) {
    pstate *m = (pstate *)s; /* the order cache is not part of the state */
    if (i < 0 || i >= s->count)
        return NULL;
    if (m->order_stale) {
        int32_t k = 0;
        for (int32_t j = 0; j < s->used; j++)
            if (s->e[j].producer_id >= 0)
                m->order[k++] = j;
        assert(k == s->count);
        m->order_stale = false;
    }
    return &s->e[s->order[i]];
}

/* ---- transactions ------------------------------------------------------------ */

static void recompute_open(pstate *s) {
    s->open_min = -1;
    s->n_open = 0;
    for (int32_t i = 0; i < s->used; i++) {
        const pstate_entry *x = &s->e[i];
        if (x->producer_id < 0 || x->txn_first < 0)
            continue;
        s->n_open++;
        if (s->open_min < 0 || x->txn_first < s->open_min)
            s->open_min = x->txn_first;
    }
}

void pstate_txn_data(pstate *s, int64_t producer_id, int64_t first_offset) {
    int32_t i = find(s, producer_id);
    if (i < 0 || s->e[i].txn_first >= 0)
        return;
    s->e[i].txn_first = first_offset;
    s->n_open++;
    if (s->open_min < 0 || first_offset < s->open_min)
        s->open_min = first_offset;
}

static int aborted_push(pstate *s, pstate_aborted a) {
    if (s->ab_n == s->ab_cap) {
        if (s->ab_cap >= PSTATE_ABORTED_MAX) {
            s->ab_head = (s->ab_head + 1) % s->ab_cap; /* the oldest goes */
            s->ab_n--;
        } else {
            int32_t nc = s->ab_cap ? s->ab_cap * 2 : 16;
            if (nc > PSTATE_ABORTED_MAX)
                nc = PSTATE_ABORTED_MAX;
            pstate_aborted *nv = malloc((size_t)nc * sizeof *nv);
            if (nv == NULL)
                return -1;
            for (int32_t k = 0; k < s->ab_n; k++)
                nv[k] = s->ab[(s->ab_head + k) % s->ab_cap];
            free(s->ab);
            s->ab = nv;
            s->ab_cap = nc;
            s->ab_head = 0;
        }
    }
    s->ab[(s->ab_head + s->ab_n) % s->ab_cap] = a;
    s->ab_n++;
    return 0;
}

int pstate_txn_end(pstate *s, int64_t producer_id, bool commit, int64_t marker_offset) {
    int32_t i = find(s, producer_id);
    if (i < 0 || s->e[i].txn_first < 0)
        return 0;
    int64_t first = s->e[i].txn_first;
    s->e[i].txn_first = -1;
    s->n_open--;
    if (first == s->open_min)
        recompute_open(s);
    if (!commit)
        return aborted_push(s, (pstate_aborted){producer_id, first, marker_offset});
    return 0;
}

int64_t pstate_first_open(const pstate *s) { return s->n_open > 0 ? s->open_min : -1; }

int32_t pstate_aborted_in(const pstate *s, int64_t from, int64_t to, pstate_aborted *out, int32_t max) {
    /* The list is in marker order (last offsets increasing): the first
     * entry ending at or after `from` by binary search, then a scan. */
    int32_t lo = 0, hi = s->ab_n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (s->ab[(s->ab_head + mid) % s->ab_cap].last_offset < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    int32_t n = 0;
    for (int32_t k = lo; k < s->ab_n && n < max; k++) {
        const pstate_aborted *a = &s->ab[(s->ab_head + k) % s->ab_cap];
        if (a->first_offset < to)
            out[n++] = *a;
    }
    return n;
}

int32_t pstate_aborted_count(const pstate *s) { return s->ab_n; }

void pstate_aborted_trim(pstate *s, int64_t log_start) {
    while (s->ab_n > 0 && s->ab[s->ab_head].last_offset < log_start) {
        s->ab_head = (s->ab_head + 1) % s->ab_cap;
        s->ab_n--;
    }
}

size_t pstate_aborted_size(const pstate *s) {
    return PSTATE_ABORTED_HEADER + (size_t)s->ab_n * PSTATE_ABORTED_ENTRY;
}

size_t pstate_aborted_encode(const pstate *s, uint8_t *buf, size_t cap) {
    size_t need = pstate_aborted_size(s);
    assert(cap >= need);
    (void)cap;
    uint8_t *p = buf + PSTATE_ABORTED_HEADER;
    for (int32_t k = 0; k < s->ab_n; k++, p += PSTATE_ABORTED_ENTRY) {
        const pstate_aborted *a = &s->ab[(s->ab_head + k) % s->ab_cap];
        wire_put_be64(p, (uint64_t)a->producer_id);
        wire_put_be64(p + 8, (uint64_t)a->first_offset);
        wire_put_be64(p + 16, (uint64_t)a->last_offset);
    }
    wire_put_be16(buf, 0);
    wire_put_be32(buf + 6, (uint32_t)s->ab_n);
    wire_put_be32(buf + 2, crc32c(0, buf + 6, need - 6));
    return need;
}

int pstate_aborted_decode(pstate *s, const uint8_t *buf, size_t len, char *why, size_t whyn) {
    s->ab_n = 0;
    s->ab_head = 0;
    if (len < PSTATE_ABORTED_HEADER || wire_be16(buf) != 0) {
        snprintf(why, whyn, "%zu bytes, not an aborted-transaction file of version 0", len);
        return -1;
    }
    if (wire_be32(buf + 2) != crc32c(0, buf + 6, len - 6)) {
        snprintf(why, whyn, "crc does not match the contents");
        return -1;
    }
    int32_t n = (int32_t)wire_be32(buf + 6);
    if (n < 0 || n > PSTATE_ABORTED_MAX || (size_t)n * PSTATE_ABORTED_ENTRY != len - PSTATE_ABORTED_HEADER) {
        snprintf(why, whyn, "%d entries in %zu bytes", n, len);
        return -1;
    }
    const uint8_t *p = buf + PSTATE_ABORTED_HEADER;
    int64_t prev = -1;
    for (int32_t k = 0; k < n; k++, p += PSTATE_ABORTED_ENTRY) {
        pstate_aborted a = {(int64_t)wire_be64(p), (int64_t)wire_be64(p + 8), (int64_t)wire_be64(p + 16)};
        if (a.producer_id < 0 || a.first_offset < 0 || a.last_offset < a.first_offset ||
            a.last_offset < prev) {
            snprintf(why, whyn, "entry %d is impossible", k);
            s->ab_n = 0;
            return -1;
        }
        prev = a.last_offset;
        if (aborted_push(s, a) != 0) {
            snprintf(why, whyn, "out of memory");
            s->ab_n = 0;
            return -1;
        }
    }
    return 0;
}

/* ---- the snapshot ----------------------------------------------------------- */

size_t pstate_snapshot_size(const pstate *s) {
    int32_t with = 0;
    for (int32_t i = 0; i < s->used; i++)
        if (s->e[i].producer_id >= 0 && s->e[i].n > 0)
            with++;
    return PSTATE_SNAPSHOT_HEADER + (size_t)with * PSTATE_SNAPSHOT_ENTRY;
}

size_t pstate_snapshot_encode(const pstate *s, uint8_t *buf, size_t cap) {
    size_t need = pstate_snapshot_size(s);
    assert(cap >= need);
    (void)cap;
    uint8_t *p = buf + PSTATE_SNAPSHOT_HEADER;
    int32_t n = 0;
    /* Oldest first, so a load that hits the limit keeps the newest. */
    for (int32_t i = s->lru_head; i >= 0; i = s->e[i].lnext) {
        const pstate_entry *x = &s->e[i];
        const pstate_batch *b = pstate_newest(x);
        if (b == NULL)
            continue;
        wire_put_be64(p, (uint64_t)x->producer_id);
        wire_put_be16(p + 8, (uint16_t)x->epoch);
        wire_put_be32(p + 10, (uint32_t)b->last_seq);
        wire_put_be64(p + 14, (uint64_t)b->last_offset);
        wire_put_be32(p + 22, (uint32_t)(b->last_offset - b->first_offset));
        wire_put_be64(p + 26, (uint64_t)b->timestamp);
        wire_put_be32(p + 34, (uint32_t)-1); /* coordinator epoch: not kept */
        wire_put_be64(p + 38, (uint64_t)x->txn_first);
        p += PSTATE_SNAPSHOT_ENTRY;
        n++;
    }
    assert((size_t)(p - buf) == need);
    wire_put_be16(buf, PSTATE_SNAPSHOT_VERSION);
    wire_put_be32(buf + 6, (uint32_t)n);
    wire_put_be32(buf + 2, crc32c(0, buf + 6, need - 6));
    return need;
}

int pstate_snapshot_decode(pstate *s, const uint8_t *buf, size_t len, int64_t now, char *why, size_t whyn) {
    pstate_clear(s);
    if (len < PSTATE_SNAPSHOT_HEADER) {
        snprintf(why, whyn, "%zu bytes, shorter than the header", len);
        return -1;
    }
    int16_t version = (int16_t)wire_be16(buf);
    if (version != PSTATE_SNAPSHOT_VERSION) {
        snprintf(why, whyn, "version %d, not %d", version, PSTATE_SNAPSHOT_VERSION);
        return -1;
    }
    uint32_t crc = wire_be32(buf + 2), got = crc32c(0, buf + 6, len - 6);
    if (crc != got) {
        snprintf(why, whyn, "crc 0x%08x does not match the contents (0x%08x)", crc, got);
        return -1;
    }
    int32_t n = (int32_t)wire_be32(buf + 6);
    if (n < 0 || (size_t)n != (len - PSTATE_SNAPSHOT_HEADER) / PSTATE_SNAPSHOT_ENTRY ||
        (len - PSTATE_SNAPSHOT_HEADER) % PSTATE_SNAPSHOT_ENTRY != 0) {
        snprintf(why, whyn, "%d entries in %zu bytes", n, len);
        return -1;
    }
    const uint8_t *p = buf + PSTATE_SNAPSHOT_HEADER;
    for (int32_t k = 0; k < n; k++, p += PSTATE_SNAPSHOT_ENTRY) {
        int64_t pid = (int64_t)wire_be64(p);
        int16_t epoch = (int16_t)wire_be16(p + 8);
        int32_t last_seq = (int32_t)wire_be32(p + 10);
        int64_t last_off = (int64_t)wire_be64(p + 14);
        int32_t delta = (int32_t)wire_be32(p + 22);
        int64_t ts = (int64_t)wire_be64(p + 26);
        int64_t txn_first = (int64_t)wire_be64(p + 38);
        if (txn_first < -1 || txn_first > last_off) {
            snprintf(why, whyn, "entry %d has an open transaction at offset %lld, after its last batch", k,
                     (long long)txn_first);
            pstate_clear(s);
            return -1;
        }
        if (pid < 0 || epoch < 0 || last_seq < 0 || delta < 0 || last_off < delta) {
            snprintf(why, whyn,
                     "entry %d is impossible (producer %lld epoch %d sequence %d offset %lld delta %d)", k,
                     (long long)pid, epoch, last_seq, (long long)last_off, delta);
            pstate_clear(s);
            return -1;
        }
        int32_t first_seq =
            last_seq - delta >= 0 ? last_seq - delta : (int32_t)((int64_t)last_seq - delta + INT32_MAX + 1);
        pstate_batch b = {first_seq, last_seq, last_off - delta, last_off, ts};
        if (pstate_get(s, pid) != NULL) {
            snprintf(why, whyn, "producer %lld appears twice", (long long)pid);
            pstate_clear(s);
            return -1;
        }
        if (pstate_update(s, pid, epoch, &b, now) != 0) {
            snprintf(why, whyn, "out of memory");
            pstate_clear(s);
            return -1;
        }
        if (txn_first >= 0)
            pstate_txn_data(s, pid, txn_first);
    }
    return 0;
}
