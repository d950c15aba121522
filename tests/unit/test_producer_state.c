/*
 * test_producer_state.c - storage/producer_state: the producer rules
 * (duplicates, gaps, epochs, unknown producers), the bounds (LRU limit,
 * expiration), truncation, the snapshot codec against damage, and a seeded
 * model test (SLUICE_SEED=n replays one seed).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/producer_state.h"
#include "unit.h"

static pstate_verdict check(pstate *s, int64_t pid, int16_t epoch, int32_t first, int32_t count,
                            pstate_batch *dup) {
    int16_t cur;
    return pstate_check(s, pid, epoch, first, pstate_last_seq(first, count), dup, &cur);
}

/* Appends (as the leader would after PSTATE_APPEND) at *leo. */
static void append(pstate *s, int64_t pid, int16_t epoch, int32_t first, int32_t count, int64_t *leo,
                   int64_t now) {
    pstate_batch b = {first, pstate_last_seq(first, count), *leo, *leo + count - 1, now};
    CHECK_EQ_INT(pstate_update(s, pid, epoch, &b, now), 0);
    *leo += count;
}

static void test_rules(void) {
    pstate *s = pstate_create(0, 0);
    REQUIRE(s != NULL);
    pstate_batch dup;
    int64_t leo = 0;
    CHECK_EQ_INT(check(s, 7, 0, 3, 1, &dup), PSTATE_UNKNOWN_PRODUCER);
    CHECK_EQ_INT(check(s, 7, 0, 0, 2, &dup), PSTATE_APPEND);
    append(s, 7, 0, 0, 2, &leo, 1);
    CHECK_EQ_INT(check(s, 7, 0, 2, 3, &dup), PSTATE_APPEND);
    append(s, 7, 0, 2, 3, &leo, 2);
    /* Retries of both batches: the original offsets. */
    CHECK_EQ_INT(check(s, 7, 0, 0, 2, &dup), PSTATE_DUPLICATE);
    CHECK_EQ_INT(dup.first_offset, 0);
    CHECK_EQ_INT(dup.last_offset, 1);
    CHECK_EQ_INT(check(s, 7, 0, 2, 3, &dup), PSTATE_DUPLICATE);
    CHECK_EQ_INT(dup.first_offset, 2);
    /* Gaps and overlaps. */
    CHECK_EQ_INT(check(s, 7, 0, 6, 1, &dup), PSTATE_OUT_OF_ORDER);
    CHECK_EQ_INT(check(s, 7, 0, 1, 2, &dup), PSTATE_OUT_OF_ORDER);
    /* Epochs: older fenced, newer must start at 0. */
    CHECK_EQ_INT(check(s, 7, 1, 5, 1, &dup), PSTATE_OUT_OF_ORDER);
    CHECK_EQ_INT(check(s, 7, 1, 0, 1, &dup), PSTATE_APPEND);
    append(s, 7, 1, 0, 1, &leo, 3);
    CHECK_EQ_INT(check(s, 7, 0, 5, 1, &dup), PSTATE_FENCED);
    CHECK_EQ_INT(check(s, 7, 0, 0, 2, &dup), PSTATE_FENCED); /* even a retry of the old epoch */
    const pstate_entry *e = pstate_get(s, 7);
    REQUIRE(e != NULL);
    CHECK_EQ_INT(e->epoch, 1);
    CHECK_EQ_INT(e->n, 1);
    CHECK_EQ_INT(pstate_count(s), 1);
    pstate_destroy(s);
}

static void test_five_batches_and_wrap(void) {
    pstate *s = pstate_create(0, 0);
    pstate_batch dup;
    int64_t leo = 0;
    for (int i = 0; i < 6; i++)
        append(s, 1, 0, i, 1, &leo, i);
    /* Batch 0 fell out of the window: no longer a duplicate. */
    CHECK_EQ_INT(check(s, 1, 0, 0, 1, &dup), PSTATE_OUT_OF_ORDER);
    for (int i = 1; i < 6; i++) {
        CHECK_EQ_INT(check(s, 1, 0, i, 1, &dup), PSTATE_DUPLICATE);
        CHECK_EQ_INT(dup.first_offset, i);
    }
    /* Sequences wrap from INT32_MAX to 0. */
    CHECK_EQ_INT(pstate_last_seq(INT32_MAX - 1, 3), 0);
    append(s, 2, 0, 0, 1, &leo, 10);
    pstate_batch b = {INT32_MAX - 2, INT32_MAX, leo, leo + 2, 11};
    pstate_update(s, 2, 0, &b, 11);
    leo += 3;
    CHECK_EQ_INT(check(s, 2, 0, 0, 4, &dup), PSTATE_APPEND);
    CHECK_EQ_INT(check(s, 2, 0, 1, 4, &dup), PSTATE_OUT_OF_ORDER);
    pstate_destroy(s);
}

static void test_limits(void) {
    pstate *s = pstate_create(3, 1000);
    pstate_batch dup;
    int64_t leo = 0;
    append(s, 1, 0, 0, 1, &leo, 100);
    append(s, 2, 0, 0, 1, &leo, 200);
    append(s, 3, 0, 0, 1, &leo, 300);
    append(s, 1, 0, 1, 1, &leo, 400); /* 1 is now the most recent */
    append(s, 4, 0, 0, 1, &leo, 500); /* evicts 2, the least recently used */
    CHECK_EQ_INT(pstate_count(s), 3);
    CHECK(pstate_get(s, 2) == NULL);
    CHECK(pstate_get(s, 1) != NULL);
    CHECK_EQ_INT(check(s, 2, 0, 1, 1, &dup), PSTATE_UNKNOWN_PRODUCER);
    /* Expiry: 3 (touched at 300) goes at 1300, 1 (400) at 1400. */
    CHECK_EQ_INT(pstate_expire(s, 1299), 0);
    CHECK_EQ_INT(pstate_expire(s, 1300), 1);
    CHECK(pstate_get(s, 3) == NULL);
    CHECK_EQ_INT(pstate_expire(s, 1500), 2);
    CHECK_EQ_INT(pstate_count(s), 0);
    /* Slots are reused. */
    for (int64_t pid = 10; pid < 100; pid++)
        append(s, pid, 0, 0, 1, &leo, 2000);
    CHECK_EQ_INT(pstate_count(s), 3);
    CHECK(pstate_get(s, 99) != NULL && pstate_get(s, 97) != NULL && pstate_get(s, 96) == NULL);
    for (int32_t i = 0; i < pstate_count(s); i++)
        CHECK(pstate_at(s, i)->producer_id >= 97);
    pstate_destroy(s);
}

static void test_truncate(void) {
    pstate *s = pstate_create(0, 0);
    pstate_batch dup;
    int64_t leo = 0;
    append(s, 1, 0, 0, 2, &leo, 1); /* 0-1 */
    append(s, 2, 0, 0, 1, &leo, 1); /* 2 */
    append(s, 1, 0, 2, 2, &leo, 1); /* 3-4 */
    pstate_truncate(s, 3);
    CHECK_EQ_INT(check(s, 1, 0, 2, 2, &dup), PSTATE_APPEND); /* the cut batch may come again */
    CHECK_EQ_INT(check(s, 1, 0, 0, 2, &dup), PSTATE_DUPLICATE);
    pstate_truncate(s, 1);
    CHECK(pstate_get(s, 1) == NULL && pstate_get(s, 2) == NULL);
    CHECK_EQ_INT(pstate_count(s), 0);
    pstate_destroy(s);
}

static void test_snapshot(void) {
    pstate *s = pstate_create(0, 0), *t = pstate_create(0, 0);
    int64_t leo = 0;
    char why[256];
    for (int64_t pid = 0; pid < 50; pid++)
        append(s, pid * 3, (int16_t)(pid % 5), 0, (int32_t)pid + 1, &leo, 1000 + pid);
    size_t n = pstate_snapshot_size(s);
    CHECK_EQ_INT(n, PSTATE_SNAPSHOT_HEADER + 50 * PSTATE_SNAPSHOT_ENTRY);
    uint8_t *buf = malloc(n);
    REQUIRE(buf != NULL);
    CHECK_EQ_INT(pstate_snapshot_encode(s, buf, n), n);
    CHECK_EQ_INT(pstate_snapshot_decode(t, buf, n, 5, why, sizeof why), 0);
    CHECK_EQ_INT(pstate_count(t), 50);
    pstate_batch dup;
    for (int64_t pid = 0; pid < 50; pid++) {
        const pstate_entry *e = pstate_get(t, pid * 3);
        REQUIRE(e != NULL);
        CHECK_EQ_INT(e->epoch, pid % 5);
        CHECK_EQ_INT(check(t, pid * 3, (int16_t)(pid % 5), 0, (int32_t)pid + 1, &dup), PSTATE_DUPLICATE);
        CHECK_EQ_INT(dup.first_offset, pstate_newest(pstate_get(s, pid * 3))->first_offset);
        CHECK_EQ_INT(check(t, pid * 3, (int16_t)(pid % 5), (int32_t)pid + 1, 1, &dup), PSTATE_APPEND);
    }
    /* Every single bit flip is refused (crc), as is every truncation. */
    for (size_t i = 0; i < n * 8; i += 7) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        CHECK(pstate_snapshot_decode(t, buf, n, 5, why, sizeof why) != 0);
        CHECK_EQ_INT(pstate_count(t), 0);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    for (size_t cut = 0; cut < n; cut += 13)
        CHECK(pstate_snapshot_decode(t, buf, cut, 5, why, sizeof why) != 0);
    /* Empty state: a header only. */
    pstate *e = pstate_create(0, 0);
    uint8_t small[PSTATE_SNAPSHOT_HEADER];
    CHECK_EQ_INT(pstate_snapshot_encode(e, small, sizeof small), PSTATE_SNAPSHOT_HEADER);
    CHECK_EQ_INT(pstate_snapshot_decode(t, small, sizeof small, 5, why, sizeof why), 0);
    CHECK_EQ_INT(pstate_count(t), 0);
    free(buf);
    pstate_destroy(e);
    pstate_destroy(s);
    pstate_destroy(t);
}

/* ---- model ---------------------------------------------------------------------------------- */

#define M_PIDS 12
#define M_MAX  8

typedef struct mprod {
    bool live;
    int16_t epoch;
    int n;
    pstate_batch b[PSTATE_BATCHES]; /* oldest first */
    int64_t touched;
    uint64_t order; /* LRU stamp */
} mprod;

static uint64_t rnd(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static pstate_verdict model_check(const mprod *m, int16_t epoch, int32_t first, int32_t last,
                                  pstate_batch *dup) {
    if (!m->live)
        return first == 0 ? PSTATE_APPEND : PSTATE_UNKNOWN_PRODUCER;
    if (epoch < m->epoch)
        return PSTATE_FENCED;
    if (epoch > m->epoch)
        return first == 0 ? PSTATE_APPEND : PSTATE_OUT_OF_ORDER;
    for (int i = 0; i < m->n; i++)
        if (m->b[i].first_seq == first && m->b[i].last_seq == last) {
            *dup = m->b[i];
            return PSTATE_DUPLICATE;
        }
    if (m->n == 0)
        return first == 0 ? PSTATE_APPEND : PSTATE_OUT_OF_ORDER;
    return first == m->b[m->n - 1].last_seq + 1 ? PSTATE_APPEND : PSTATE_OUT_OF_ORDER;
}

static int run_model(uint64_t seed) {
    uint64_t x = seed * 2654435761u + 1;
    mprod m[M_PIDS];
    memset(m, 0, sizeof m);
    pstate *s = pstate_create(M_MAX, 500);
    int64_t leo = 0, now = 0;
    uint64_t stamp = 0;
    int bad = 0;
    for (int step = 0; step < 4000 && !bad; step++) {
        now += (int64_t)(rnd(&x) % 20);
        int pid = (int)(rnd(&x) % M_PIDS);
        mprod *p = &m[pid];
        int16_t epoch = p->live ? p->epoch : 0;
        int32_t first = 0, count = 1 + (int32_t)(rnd(&x) % 3);
        switch (rnd(&x) % 8) {
        case 0: /* a retry of a recent batch */
            if (p->live && p->n > 0) {
                int k = (int)(rnd(&x) % (uint64_t)p->n);
                first = p->b[k].first_seq;
                count = p->b[k].last_seq - first + 1;
            }
            break;
        case 1: /* a gap */
            first = p->live && p->n ? p->b[p->n - 1].last_seq + 2 : 3;
            break;
        case 2: /* an epoch bump */
            epoch = (int16_t)(epoch + 1);
            first = rnd(&x) % 4 ? 0 : 2;
            break;
        case 3: /* an old epoch */
            epoch = (int16_t)(epoch > 0 ? epoch - 1 : 0);
            first = p->live && p->n ? p->b[p->n - 1].last_seq + 1 : 0;
            break;
        default: /* in order */
            first = p->live && p->n ? p->b[p->n - 1].last_seq + 1 : 0;
        }
        int32_t last = first + count - 1;
        pstate_batch d1, d2;
        int16_t cur;
        /* Expiry first, in both. */
        pstate_expire(s, now);
        for (int i = 0; i < M_PIDS; i++)
            if (m[i].live && now - m[i].touched >= 500)
                m[i].live = false;
        pstate_verdict v = pstate_check(s, pid, epoch, first, last, &d1, &cur);
        pstate_verdict w = model_check(p, epoch, first, last, &d2);
        if (v != w || (v == PSTATE_DUPLICATE && d1.first_offset != d2.first_offset)) {
            fprintf(stderr, "seed %llu step %d: pid %d epoch %d seq %d-%d: got %d, model %d\n",
                    (unsigned long long)seed, step, pid, epoch, first, last, v, w);
            bad = 1;
            break;
        }
        if (v != PSTATE_APPEND)
            continue;
        pstate_batch b = {first, last, leo, leo + count - 1, now};
        leo += count;
        pstate_update(s, pid, epoch, &b, now);
        if (!p->live) {
            int live = 0;
            for (int i = 0; i < M_PIDS; i++)
                live += m[i].live;
            if (live >= M_MAX) { /* evict the least recently used */
                int lru = -1;
                for (int i = 0; i < M_PIDS; i++)
                    if (m[i].live && (lru < 0 || m[i].order < m[lru].order))
                        lru = i;
                m[lru].live = false;
            }
            memset(p, 0, sizeof *p);
            p->live = true;
            p->epoch = -1;
        }
        if (p->epoch != epoch) {
            p->epoch = epoch;
            p->n = 0;
        }
        if (p->n == PSTATE_BATCHES) {
            memmove(p->b, p->b + 1, sizeof p->b[0] * (PSTATE_BATCHES - 1));
            p->n--;
        }
        p->b[p->n++] = b;
        p->touched = now;
        p->order = ++stamp;
        int live = 0;
        for (int i = 0; i < M_PIDS; i++)
            live += m[i].live;
        if (live != pstate_count(s)) {
            fprintf(stderr, "seed %llu step %d: %d producers, model %d\n", (unsigned long long)seed, step,
                    pstate_count(s), live);
            bad = 1;
        }
    }
    pstate_destroy(s);
    return bad;
}

static void test_model(void) {
    const char *one = getenv("SLUICE_SEED");
    if (one != NULL) {
        CHECK_EQ_INT(run_model(strtoull(one, NULL, 10)), 0);
        return;
    }
    for (uint64_t seed = 1; seed <= 200; seed++)
        if (run_model(seed) != 0) {
            CHECK(!"model mismatch (replay with SLUICE_SEED)");
            return;
        }
}

int main(void) {
    UNIT_RUN(test_rules);
    UNIT_RUN(test_five_batches_and_wrap);
    UNIT_RUN(test_limits);
    UNIT_RUN(test_truncate);
    UNIT_RUN(test_snapshot);
    UNIT_RUN(test_model);
    return UNIT_END("test_producer_state");
}
