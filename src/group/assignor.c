/*
 * assignor.c - the uniform and range assignors. See assignor.h.
 *
 * Uniform works on a flat array of every partition some member subscribes
 * to: first each member keeps what its previous target holds (if it still
 * subscribes and the partition still exists), then each unowned partition
 * goes to the subscribed member with the fewest, then passes move a
 * partition from its owner to a subscriber holding at least two fewer until
 * none moves (or ASG_PASSES). A move strictly lowers the sum of squared
 * counts, so the passes end; for equal subscriptions the first pass already
 * leaves the counts within one.
 */
#include "group/assignor.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int asg_parse(kstr name) {
    if (kstr_eq_c(name, "uniform"))
        return ASG_UNIFORM;
    if (kstr_eq_c(name, "range"))
        return ASG_RANGE;
    return -1;
}

const char *asg_name(asg_kind k) { return k == ASG_RANGE ? "range" : "uniform"; }

int asg_part_cmp(const asg_part *a, const asg_part *b) {
    int c = memcmp(a->topic.b, b->topic.b, sizeof a->topic.b);
    if (c != 0)
        return c;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

static int cmp_part(const void *a, const void *b) { return asg_part_cmp(a, b); }

bool asg_parts_has(const asg_parts *s, kuuid topic, int32_t partition) {
    asg_part key = {topic, partition};
    return s && s->n > 0 && bsearch(&key, s->v, (size_t)s->n, sizeof key, cmp_part) != NULL;
}

bool asg_parts_eq(const asg_parts *a, const asg_parts *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, (size_t)a->n * sizeof *a->v) == 0);
}

void asg_parts_sort(asg_parts *s) {
    if (s->n <= 1)
        return;
    qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_part);
    int32_t k = 1;
    for (int32_t i = 1; i < s->n; i++)
        if (asg_part_cmp(&s->v[i], &s->v[k - 1]) != 0)
            s->v[k++] = s->v[i];
    s->n = k;
}

int asg_parts_copy(asg_parts *dst, const asg_parts *src) {
    dst->v = NULL;
    dst->n = 0;
    if (src == NULL || src->n == 0)
        return 0;
    dst->v = malloc((size_t)src->n * sizeof *dst->v);
    if (dst->v == NULL)
        return -1;
    memcpy(dst->v, src->v, (size_t)src->n * sizeof *dst->v);
    dst->n = src->n;
    return 0;
}

void asg_parts_free(asg_parts *s) {
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* ---- range ---------------------------------------------------------------- */

typedef struct idx_ref {
    const char *id;
    int idx;
} idx_ref;

static int cmp_idx_ref(const void *a, const void *b) {
    const idx_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int range_assign(asg_member *m, int nm, const asg_topic *t, int nt, int32_t *cap) {
    idx_ref *refs = nm ? malloc((size_t)nm * sizeof *refs) : NULL;
    if (nm && refs == NULL)
        return -1;
    for (int i = 0; i < nt; i++) {
        int k = 0;
        for (int j = 0; j < nm; j++)
            if (m[j].subscribed[i])
                refs[k++] = (idx_ref){m[j].id, j};
        if (k == 0 || t[i].n_partitions <= 0)
            continue;
        qsort(refs, (size_t)k, sizeof *refs, cmp_idx_ref);
        int32_t q = t[i].n_partitions / k, r = t[i].n_partitions % k;
        for (int j = 0; j < k; j++) {
            asg_member *x = &m[refs[j].idx];
            int32_t start = j * q + (j < r ? j : r), len = q + (j < r ? 1 : 0);
            for (int32_t p = start; p < start + len; p++) {
                assert(x->out.n < cap[refs[j].idx]);
                x->out.v[x->out.n++] = (asg_part){t[i].id, p};
            }
        }
    }
    free(refs);
    return 0;
}

/* ---- uniform -------------------------------------------------------------- */

typedef struct topic_ref {
    kuuid id;
    int idx;
} topic_ref;

static int cmp_topic_ref(const void *a, const void *b) {
    const topic_ref *x = a, *y = b;
    return memcmp(x->id.b, y->id.b, sizeof x->id.b);
}

static int uniform_assign(asg_member *m, int nm, const asg_topic *t, int nt, int64_t total) {
    /* base[i]: index of topic i's partition 0 in the flat array. */
    int64_t *base = calloc((size_t)nt + 1, sizeof *base);
    int *owner = total ? malloc((size_t)total * sizeof *owner) : NULL;
    int32_t *count = nm ? calloc((size_t)nm, sizeof *count) : NULL;
    topic_ref *byid = nt ? malloc((size_t)nt * sizeof *byid) : NULL;
    int rc = -1;
    if (base == NULL || (total && owner == NULL) || (nm && count == NULL) || (nt && byid == NULL))
        goto out;
    for (int i = 0; i < nt; i++) {
        base[i + 1] = base[i] + (t[i].n_partitions > 0 ? t[i].n_partitions : 0);
        byid[i] = (topic_ref){t[i].id, i};
    }
    assert(base[nt] == total);
    if (nt)
        qsort(byid, (size_t)nt, sizeof *byid, cmp_topic_ref);
    for (int64_t p = 0; p < total; p++)
        owner[p] = -1;
    /* Stickiness: what the previous target gave a member stays with it. */
    for (int j = 0; j < nm; j++) {
        const asg_parts *b = m[j].before;
        for (int32_t k = 0; b && k < b->n; k++) {
            topic_ref key = {b->v[k].topic, 0};
            const topic_ref *tr = nt ? bsearch(&key, byid, (size_t)nt, sizeof key, cmp_topic_ref) : NULL;
            if (tr == NULL || !m[j].subscribed[tr->idx] || b->v[k].partition < 0 ||
                b->v[k].partition >= t[tr->idx].n_partitions)
                continue;
            int64_t p = base[tr->idx] + b->v[k].partition;
            if (owner[p] < 0) {
                owner[p] = j;
                count[j]++;
            }
        }
    }
    /* Unowned partitions to the least loaded subscriber. */
    for (int i = 0; i < nt; i++)
        for (int64_t p = base[i]; p < base[i + 1]; p++) {
            if (owner[p] >= 0)
                continue;
            int best = -1;
            for (int j = 0; j < nm; j++)
                if (m[j].subscribed[i] && (best < 0 || count[j] < count[best]))
                    best = j;
            if (best >= 0) {
                owner[p] = best;
                count[best]++;
            }
        }
    /* Balance: move to a subscriber holding at least two fewer (passes
     * limited so one assignment stays within ASG_WORK_MAX steps). */
    int64_t work = total * (int64_t)(nm > 0 ? nm : 1);
    int passes = work > 0 && ASG_WORK_MAX / work < ASG_PASSES ? (int)(ASG_WORK_MAX / work) : ASG_PASSES;
    for (int pass = 0; pass < passes; pass++) {
        bool moved = false;
        for (int i = 0; i < nt; i++)
            for (int64_t p = base[i]; p < base[i + 1]; p++) {
                int o = owner[p];
                if (o < 0)
                    continue;
                int best = -1;
                for (int j = 0; j < nm; j++)
                    if (m[j].subscribed[i] && count[j] < count[o] - 1 && (best < 0 || count[j] < count[best]))
                        best = j;
                if (best >= 0) {
                    owner[p] = best;
                    count[o]--;
                    count[best]++;
                    moved = true;
                }
            }
        if (!moved)
            break;
    }
    for (int i = 0; i < nt; i++)
        for (int64_t p = base[i]; p < base[i + 1]; p++)
            if (owner[p] >= 0) {
                asg_member *x = &m[owner[p]];
                x->out.v[x->out.n++] = (asg_part){t[i].id, (int32_t)(p - base[i])};
            }
    rc = 0;
out:
    free(base);
    free(owner);
    free(count);
    free(byid);
    return rc;
}

/* Every member subscribed to every topic (the usual case): quotas of
 * total/nm (the first total%nm members to reach it may hold one more),
 * previous partitions kept up to the quota, the rest handed out in order.
 * O(partitions + members). */
static int uniform_equal(asg_member *m, int nm, const asg_topic *t, int nt, int64_t total) {
    int64_t *base = calloc((size_t)nt + 1, sizeof *base);
    int *owner = total ? malloc((size_t)total * sizeof *owner) : NULL;
    int32_t *count = nm ? calloc((size_t)nm, sizeof *count) : NULL;
    topic_ref *byid = nt ? malloc((size_t)nt * sizeof *byid) : NULL;
    int rc = -1;
    if (base == NULL || (total && owner == NULL) || (nm && count == NULL) || (nt && byid == NULL))
        goto out;
    for (int i = 0; i < nt; i++) {
        base[i + 1] = base[i] + (t[i].n_partitions > 0 ? t[i].n_partitions : 0);
        byid[i] = (topic_ref){t[i].id, i};
    }
    if (nt)
        qsort(byid, (size_t)nt, sizeof *byid, cmp_topic_ref);
    for (int64_t p = 0; p < total; p++)
        owner[p] = -1;
    int32_t q = (int32_t)(total / nm), r = (int32_t)(total % nm), at_top = 0;
    for (int j = 0; j < nm; j++) {
        const asg_parts *b = m[j].before;
        for (int32_t k = 0; b && k < b->n; k++) {
            topic_ref key = {b->v[k].topic, 0};
            const topic_ref *tr = nt ? bsearch(&key, byid, (size_t)nt, sizeof key, cmp_topic_ref) : NULL;
            if (tr == NULL || b->v[k].partition < 0 || b->v[k].partition >= t[tr->idx].n_partitions)
                continue;
            int64_t p = base[tr->idx] + b->v[k].partition;
            int32_t limit = q + (at_top < r ? 1 : 0);
            if (owner[p] >= 0 || count[j] >= limit)
                continue;
            owner[p] = j;
            if (++count[j] == q + 1)
                at_top++;
        }
    }
    assert(at_top <= r);
    int j = 0, j2 = 0;
    for (int64_t p = 0; p < total; p++) {
        if (owner[p] >= 0)
            continue;
        while (j < nm && count[j] >= q)
            j++;
        int to = j;
        if (to == nm) {
            /* Everyone has its quota: one more for members not above it. */
            while (j2 < nm && count[j2] != q)
                j2++;
            assert(j2 < nm && at_top < r);
            to = j2++;
            at_top++;
        }
        owner[p] = to;
        count[to]++;
    }
    for (int i = 0; i < nt; i++)
        for (int64_t p = base[i]; p < base[i + 1]; p++) {
            asg_member *x = &m[owner[p]];
            x->out.v[x->out.n++] = (asg_part){t[i].id, (int32_t)(p - base[i])};
        }
    rc = 0;
out:
    free(base);
    free(owner);
    free(count);
    free(byid);
    return rc;
}

int asg_assign(asg_kind kind, asg_member *m, int nm, const asg_topic *t, int nt) {
    /* Each member's array is sized by the partitions it subscribes to. */
    int32_t *cap = nm ? calloc((size_t)nm, sizeof *cap) : NULL;
    int64_t total = 0;
    int rc = -1;
    if (nm && cap == NULL)
        return -1;
    for (int i = 0; i < nt; i++)
        total += t[i].n_partitions > 0 ? t[i].n_partitions : 0;
    if (total > ASG_PARTITIONS_MAX)
        goto out;
    for (int j = 0; j < nm; j++) {
        m[j].out.v = NULL;
        m[j].out.n = 0;
        for (int i = 0; i < nt; i++)
            if (m[j].subscribed[i])
                cap[j] += t[i].n_partitions > 0 ? t[i].n_partitions : 0;
    }
    for (int j = 0; j < nm; j++)
        if (cap[j] > 0 && (m[j].out.v = malloc((size_t)cap[j] * sizeof *m[j].out.v)) == NULL)
            goto out;
    bool equal = nm > 0;
    for (int j = 0; j < nm && equal; j++)
        for (int i = 0; i < nt && equal; i++)
            equal = m[j].subscribed[i] || t[i].n_partitions <= 0;
    if (kind == ASG_RANGE)
        rc = range_assign(m, nm, t, nt, cap);
    else if (equal)
        rc = uniform_equal(m, nm, t, nt, total);
    else
        rc = uniform_assign(m, nm, t, nt, total);
    if (rc == 0)
        for (int j = 0; j < nm; j++)
            asg_parts_sort(&m[j].out);
out:
    if (rc != 0)
        for (int j = 0; j < nm; j++)
            asg_parts_free(&m[j].out);
    free(cap);
    return rc;
}
