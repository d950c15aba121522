/*
 * cgroup.c - a consumer group of the KIP-848 protocol. See cgroup.h.
 *
 * Invariants (cg_check, asserted at the end of every entry point):
 *   - members[] holds distinct ids; removed[] names members no longer there;
 *   - a member's arrays are sorted and duplicate-free; revoking is empty
 *     unless the member is UNREVOKED, and disjoint from assigned;
 *   - no partition is in one member's assigned set and another's assigned or
 *     revoking set (two may both be revoking one after a rebuild);
 *   - assignment_epoch <= epoch, and every member's epoch <= assignment_epoch
 *     (a member never runs ahead of the target it reconciles to).
 */
#include "group/cgroup.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "proto/gen/kafka_records.h"

/* Whole-group checks above this many members are skipped (they are O(n^2)). */
#define CHECK_MAX 200

/* ---- small helpers ------------------------------------------------------- */

static char *dupk(kstr s) {
    if (s.len < 0)
        return NULL;
    char *d = malloc((size_t)s.len + 1);
    if (d == NULL)
        return NULL;
    if (s.len > 0)
        memcpy(d, s.ptr, (size_t)s.len);
    d[s.len] = '\0';
    return d;
}

static bool streq_k(const char *a, kstr b) {
    if (a == NULL || b.len < 0)
        return a == NULL && b.len < 0;
    return strlen(a) == (size_t)b.len && memcmp(a, b.ptr, (size_t)b.len) == 0;
}

static kstr ks(const char *s) { return s ? kstr_c(s) : KSTR_NULL; }

static uint32_t fnv(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static int replace_str(char **dst, kstr s) {
    char *d = NULL;
    if (s.len >= 0 && (d = dupk(s)) == NULL)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

const char *cg_member_state_name(cg_mstate s) {
    switch (s) {
    case CG_STABLE:
        return "STABLE";
    case CG_UNREVOKED:
        return "UNREVOKED_PARTITIONS";
    case CG_UNRELEASED:
        return "UNRELEASED_PARTITIONS";
    default:
        return "UNKNOWN";
    }
}

const char *cg_state_name(const cgroup *g) {
    if (g->n_members == 0)
        return "Empty";
    if (g->assignment_epoch != g->epoch)
        return "Assigning";
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->epoch != g->assignment_epoch || g->members[i]->state != CG_STABLE)
            return "Reconciling";
    return "Stable";
}

cg_member *cg_find_member(const cgroup *g, kstr id) {
    for (int i = 0; i < g->n_members; i++)
        if (streq_k(g->members[i]->id, id))
            return g->members[i];
    return NULL;
}

static cg_member *find_static(const cgroup *g, kstr instance) {
    if (instance.len < 0)
        return NULL;
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->instance_id && streq_k(g->members[i]->instance_id, instance))
            return g->members[i];
    return NULL;
}

static void free_subs(cg_member *m) {
    for (int i = 0; i < m->n_subs; i++)
        free(m->subs[i]);
    free(m->subs);
    m->subs = NULL;
    m->n_subs = 0;
}

static void free_regex(cg_member *m) {
    if (m->re_ok)
        regfree(&m->re);
    m->re_ok = false;
    free(m->regex);
    m->regex = NULL;
}

static void free_member(cg_member *m) {
    if (m == NULL)
        return;
    free(m->id);
    free(m->instance_id);
    free(m->rack_id);
    free(m->client_id);
    free(m->client_host);
    free_subs(m);
    free_regex(m);
    free(m->assignor);
    asg_parts_free(&m->assigned);
    asg_parts_free(&m->revoking);
    asg_parts_free(&m->target);
    free(m);
}

cgroup *cg_create(void) {
    cgroup *g = calloc(1, sizeof *g);
    return g;
}

static void clear_live(cgroup *g) {
    for (int i = 0; i < g->n_members; i++)
        free_member(g->members[i]);
    g->n_members = 0;
    for (int i = 0; i < g->n_topics; i++)
        free(g->topics[i].name);
    free(g->topics);
    g->topics = NULL;
    g->n_topics = 0;
    for (int i = 0; i < g->n_removed; i++)
        free(g->removed[i]);
    g->n_removed = 0;
    g->epoch = g->assignment_epoch = 0;
    g->topics_known = false;
    g->subs_changed = true;
    g->check_target = false;
    g->dirty_epoch = g->dirty_topics = g->dirty_target_epoch = false;
}

void cg_destroy(cgroup *g) {
    if (g == NULL)
        return;
    clear_live(g);
    free(g->members);
    free(g->removed);
    for (int32_t i = 0; i < g->n_store; i++) {
        free(g->store[i].key);
        free(g->store[i].value);
    }
    free(g->store);
    free(g->buckets);
    free(g);
}

/* ---- checks ----------------------------------------------------------------- */

static bool sorted_unique(const asg_parts *s) {
    for (int32_t i = 1; i < s->n; i++)
        if (asg_part_cmp(&s->v[i - 1], &s->v[i]) >= 0)
            return false;
    return true;
}

static void cg_check(const cgroup *g) {
    assert(g->assignment_epoch <= g->epoch);
    for (int i = 0; i < g->n_members; i++) {
        const cg_member *m = g->members[i];
        assert(m->id != NULL);
        assert(m->epoch <= g->assignment_epoch || m->epoch <= 0);
        assert(sorted_unique(&m->assigned) && sorted_unique(&m->revoking) && sorted_unique(&m->target));
        assert(m->state == CG_UNREVOKED || m->revoking.n == 0);
        (void)m;
    }
    if (g->n_members > CHECK_MAX)
        return;
    for (int i = 0; i < g->n_members; i++) {
        const cg_member *m = g->members[i];
        for (int32_t k = 0; k < m->assigned.n; k++) {
            assert(!asg_parts_has(&m->revoking, m->assigned.v[k].topic, m->assigned.v[k].partition));
            for (int j = i + 1; j < g->n_members; j++) {
                const cg_member *o = g->members[j];
                assert(!asg_parts_has(&o->assigned, m->assigned.v[k].topic, m->assigned.v[k].partition));
                assert(!asg_parts_has(&o->revoking, m->assigned.v[k].topic, m->assigned.v[k].partition));
                (void)o;
            }
        }
        for (int32_t k = 0; k < m->revoking.n; k++)
            for (int j = i + 1; j < g->n_members; j++) {
                const cg_member *o = g->members[j];
                /* (two members may both be giving one up: see cg_rebuild) */
                assert(!asg_parts_has(&o->assigned, m->revoking.v[k].topic, m->revoking.v[k].partition));
                (void)o;
            }
        for (int j = i + 1; j < g->n_members; j++)
            assert(strcmp(m->id, g->members[j]->id) != 0);
    }
}

/* ---- membership -------------------------------------------------------------- */

static cg_member *add_member(cgroup *g, kstr id) {
    if (g->n_members == g->cap_members) {
        int nc = g->cap_members ? g->cap_members * 2 : 8;
        cg_member **nm = realloc(g->members, (size_t)nc * sizeof *nm);
        if (nm == NULL)
            return NULL;
        g->members = nm;
        g->cap_members = nc;
    }
    cg_member *m = calloc(1, sizeof *m);
    if (m == NULL || (m->id = dupk(id)) == NULL) {
        free(m);
        return NULL;
    }
    m->rebalance_timeout_ms = -1;
    m->session_deadline = m->revoke_deadline = CG_NO_DEADLINE;
    m->state = CG_STABLE;
    g->members[g->n_members++] = m;
    return m;
}

/* Takes m out of the group; its tombstones go with the next emit. */
static void remove_member(cgroup *g, cg_member *m) {
    int i = 0;
    while (g->members[i] != m)
        i++;
    memmove(&g->members[i], &g->members[i + 1], (size_t)(g->n_members - i - 1) * sizeof *g->members);
    g->n_members--;
    if (g->n_removed == g->cap_removed) {
        int nc = g->cap_removed ? g->cap_removed * 2 : 4;
        char **nr = realloc(g->removed, (size_t)nc * sizeof *nr);
        if (nr != NULL) {
            g->removed = nr;
            g->cap_removed = nc;
        }
    }
    if (g->n_removed < g->cap_removed) {
        g->removed[g->n_removed++] = m->id;
        m->id = NULL;
    }
    free_member(m);
}

/* One event moves the epoch at most once, whatever it changed. */
static void bump_epoch(cgroup *g) {
    if (g->bumped)
        return;
    g->bumped = true;
    g->epoch++;
    g->dirty_epoch = true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sets m's subscribed names; true when they changed. -1 on OOM. */
static int set_subs(cg_member *m, const kstr *names, int32_t n) {
    char **v = n ? calloc((size_t)n, sizeof *v) : NULL;
    if (n && v == NULL)
        return -1;
    for (int32_t i = 0; i < n; i++)
        if ((v[i] = dupk(names[i].len < 0 ? kstr_c("") : names[i])) == NULL) {
            for (int32_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -1;
        }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    int k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(v[k - 1], v[i]) == 0)
            free(v[i]);
        else
            v[k++] = v[i];
    }
    bool same = k == m->n_subs;
    for (int i = 0; same && i < k; i++)
        same = strcmp(v[i], m->subs[i]) == 0;
    if (same) {
        for (int i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return 0;
    }
    free_subs(m);
    m->subs = v;
    m->n_subs = k;
    return 1;
}

/* Compiles a subscription regex as a whole-name match (POSIX extended
 * syntax; Kafka's is RE2's, which agrees for the usual "prefix.*" forms). */
static int compile_regex(regex_t *re, kstr s) {
    if (s.len < 0 || s.len > CG_REGEX_MAX)
        return -1;
    char buf[CG_REGEX_MAX + 8];
    snprintf(buf, sizeof buf, "^(%.*s)$", s.len, s.ptr);
    return regcomp(re, buf, REG_EXTENDED | REG_NOSUB) == 0 ? 0 : -1;
}

/* 1 when the regex changed, 0 when not, -1 on error. "" clears it. */
static int set_regex(cg_member *m, kstr s) {
    if (s.len == 0) {
        if (m->regex == NULL)
            return 0;
        free_regex(m);
        return 1;
    }
    if (m->regex && streq_k(m->regex, s))
        return 0;
    regex_t re;
    if (compile_regex(&re, s) != 0)
        return -1;
    char *d = dupk(s);
    if (d == NULL) {
        regfree(&re);
        return -1;
    }
    free_regex(m);
    m->regex = d;
    m->re = re;
    m->re_ok = true;
    return 1;
}

static bool member_subscribes(const cg_member *m, const char *topic) {
    if (m->n_subs > 0 && bsearch(&topic, m->subs, (size_t)m->n_subs, sizeof *m->subs, cmp_str) != NULL)
        return true;
    return m->re_ok && regexec(&m->re, topic, 0, NULL, 0) == 0;
}

/* ---- subscribed topics --------------------------------------------------------- */

static int cmp_topic_name(const void *a, const void *b) {
    return strcmp(((const cg_topic *)a)->name, ((const cg_topic *)b)->name);
}

static bool topics_equal(const cg_topic *a, int na, const cg_topic *b, int nb) {
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || memcmp(a[i].id.b, b[i].id.b, 16) != 0 ||
            a[i].n_partitions != b[i].n_partitions)
            return false;
    return true;
}

/* Sorts by name and drops repeats. */
static void dedup_topics(cg_topic *v, int *n) {
    if (*n > 1)
        qsort(v, (size_t)*n, sizeof *v, cmp_topic_name);
    int k = 0;
    for (int i = 0; i < *n; i++) {
        if (k > 0 && strcmp(v[k - 1].name, v[i].name) == 0)
            free(v[i].name);
        else
            v[k++] = v[i];
    }
    *n = k;
}

/* Appends a topic (repeats are dropped when the array is full, and by the
 * caller's final dedup_topics: O(n log n) overall). At most CG_TOPICS_MAX
 * distinct topics; more are ignored. */
static int push_topic(cg_topic **v, int *n, int *cap, const cg_topic_info *ti) {
    if (*n == *cap) {
        dedup_topics(*v, n);
        if (*n >= CG_TOPICS_MAX)
            return 0;
        if (*cap == 0 || *n * 2 > *cap) {
            int nc = *cap ? *cap * 2 : 8;
            cg_topic *nv = realloc(*v, (size_t)nc * sizeof *nv);
            if (nv == NULL)
                return -1;
            *v = nv;
            *cap = nc;
        }
    }
    char *name = dupk(ti->name);
    if (name == NULL)
        return -1;
    (*v)[(*n)++] = (cg_topic){ti->id, name, ti->n_partitions};
    return 0;
}

static int cmp_member_regex(const void *a, const void *b) {
    return strcmp((*(const cg_member *const *)a)->regex, (*(const cg_member *const *)b)->regex);
}

/* Recomputes the subscribed topics from the view; true when they differ from
 * the stored ones (then replaced). On OOM keeps the old ones. O(names log
 * names) for the members' names plus O(topics x distinct regexes). */
static bool refresh_topics(cgroup *g, const cg_topics *tv) {
    cg_topic *v = NULL;
    int n = 0, cap = 0;
    bool any_regex = false;
    for (int i = 0; i < g->n_members; i++) {
        const cg_member *m = g->members[i];
        any_regex |= m->re_ok;
        for (int k = 0; k < m->n_subs; k++) {
            cg_topic_info ti;
            if (tv->by_name(tv->ctx, kstr_c(m->subs[k]), &ti) && push_topic(&v, &n, &cap, &ti) != 0)
                goto oom;
        }
    }
    /* Each distinct regex once: members usually share one. */
    const cg_member **rx = any_regex ? malloc((size_t)g->n_members * sizeof *rx) : NULL;
    int nrx = 0;
    if (any_regex && rx == NULL)
        goto oom;
    for (int i = 0; rx && i < g->n_members; i++)
        if (g->members[i]->re_ok)
            rx[nrx++] = g->members[i];
    if (nrx > 1) {
        qsort(rx, (size_t)nrx, sizeof *rx, cmp_member_regex);
        int k = 1;
        for (int i = 1; i < nrx; i++)
            if (strcmp(rx[i]->regex, rx[k - 1]->regex) != 0)
                rx[k++] = rx[i];
        nrx = k;
    }
    if (any_regex) {
        int32_t nt = tv->count(tv->ctx);
        for (int32_t t = 0; t < nt; t++) {
            cg_topic_info ti;
            if (!tv->at(tv->ctx, t, &ti) || ti.name.len <= 0 || ti.name.len > 255)
                continue;
            char name[256];
            memcpy(name, ti.name.ptr, (size_t)ti.name.len);
            name[ti.name.len] = '\0';
            if (name[0] == '_' && name[1] == '_')
                continue; /* internal topics never match a pattern */
            for (int i = 0; i < nrx; i++)
                if (regexec(&rx[i]->re, name, 0, NULL, 0) == 0) {
                    if (push_topic(&v, &n, &cap, &ti) != 0) {
                        free(rx);
                        goto oom;
                    }
                    break;
                }
        }
    }
    free(rx);
    dedup_topics(v, &n);
    g->topics_version = tv->version;
    g->topics_known = true;
    g->subs_changed = false;
    if (topics_equal(v, n, g->topics, g->n_topics)) {
        for (int i = 0; i < n; i++)
            free(v[i].name);
        free(v);
        return false;
    }
    for (int i = 0; i < g->n_topics; i++)
        free(g->topics[i].name);
    free(g->topics);
    g->topics = v;
    g->n_topics = n;
    g->dirty_topics = true;
    return true;
oom:
    for (int i = 0; i < n; i++)
        free(v[i].name);
    free(v);
    return false;
}

/* ---- target assignment ----------------------------------------------------------- */

/* The assignor: the one most members ask for (ties: the configured order),
 * else the configured default. */
static asg_kind pick_assignor(const cgroup *g, const cg_config *cfg) {
    int votes[CG_ASSIGNORS_MAX] = {0};
    for (int i = 0; i < g->n_members; i++) {
        const char *a = g->members[i]->assignor;
        if (a == NULL)
            continue;
        for (int k = 0; k < cfg->n_assignors; k++)
            if (strcmp(a, asg_name(cfg->assignors[k])) == 0)
                votes[k]++;
    }
    int best = 0;
    for (int k = 1; k < cfg->n_assignors; k++)
        if (votes[k] > votes[best])
            best = k;
    return cfg->n_assignors > 0 ? cfg->assignors[best] : ASG_UNIFORM;
}

const char *cg_assignor_name(const cgroup *g, const cg_config *cfg) {
    return asg_name(pick_assignor(g, cfg));
}

static int compute_target(cgroup *g, const cg_config *cfg) {
    int nm = g->n_members, nt = g->n_topics, rc = -1;
    asg_member *am = nm ? calloc((size_t)nm, sizeof *am) : NULL;
    asg_topic *at = nt ? calloc((size_t)nt, sizeof *at) : NULL;
    size_t nsubs = (size_t)nm * (size_t)nt;
    static const bool none = false;
    bool *subs = nsubs > 0 ? calloc(nsubs, sizeof *subs) : NULL;
    if ((nm && am == NULL) || (nt && at == NULL) || (nsubs > 0 && subs == NULL))
        goto out;
    for (int i = 0; i < nt; i++)
        at[i] = (asg_topic){g->topics[i].id, g->topics[i].n_partitions};
    for (int j = 0; j < nm; j++) {
        for (int i = 0; i < nt; i++)
            subs[(size_t)j * (size_t)nt + (size_t)i] = member_subscribes(g->members[j], g->topics[i].name);
        am[j] = (asg_member){
            g->members[j]->id, nt ? subs + (size_t)j * (size_t)nt : &none, &g->members[j]->target, {0}};
    }
    if (asg_assign(pick_assignor(g, cfg), am, nm, at, nt) != 0)
        goto out;
    for (int j = 0; j < nm; j++) {
        cg_member *m = g->members[j];
        if (!asg_parts_eq(&m->target, &am[j].out))
            m->dirty_target = true;
        asg_parts_free(&m->target);
        m->target = am[j].out;
    }
    g->assignment_epoch = g->epoch;
    g->dirty_target_epoch = true;
    rc = 0;
out:
    free(am);
    free(at);
    free(subs);
    return rc;
}

/* ---- reconciliation ---------------------------------------------------------------- */

static bool owned_by_other(const cgroup *g, const cg_member *self, const asg_part *p) {
    for (int i = 0; i < g->n_members; i++) {
        const cg_member *o = g->members[i];
        if (o != self && (asg_parts_has(&o->assigned, p->topic, p->partition) ||
                          asg_parts_has(&o->revoking, p->topic, p->partition)))
            return true;
    }
    return false;
}

static bool overlaps(const asg_parts *a, const asg_parts *b) {
    for (int32_t i = 0; i < a->n; i++)
        if (asg_parts_has(b, a->v[i].topic, a->v[i].partition))
            return true;
    return false;
}

static bool subset(const asg_parts *a, const asg_parts *b) {
    for (int32_t i = 0; i < a->n; i++)
        if (!asg_parts_has(b, a->v[i].topic, a->v[i].partition))
            return false;
    return true;
}

/* The next step of m towards its target (Kafka's current assignment
 * builder). -1 on OOM (m unchanged). */
static int next_step(cgroup *g, cg_member *m, int64_t now) {
    int32_t cap = m->assigned.n + m->target.n;
    asg_parts keep = {cap ? malloc((size_t)cap * sizeof(asg_part)) : NULL, 0};
    asg_parts revoke = {m->assigned.n ? malloc((size_t)m->assigned.n * sizeof(asg_part)) : NULL, 0};
    if ((cap && keep.v == NULL) || (m->assigned.n && revoke.v == NULL)) {
        free(keep.v);
        free(revoke.v);
        return -1;
    }
    for (int32_t i = 0; i < m->assigned.n; i++) {
        const asg_part *p = &m->assigned.v[i];
        if (asg_parts_has(&m->target, p->topic, p->partition))
            keep.v[keep.n++] = *p;
        else
            revoke.v[revoke.n++] = *p;
    }
    if (revoke.n > 0) {
        /* Revocation first: same epoch, only the partitions it keeps. */
        asg_parts_free(&m->assigned);
        asg_parts_free(&m->revoking);
        m->assigned = keep;
        m->revoking = revoke;
        m->state = CG_UNREVOKED;
        m->revoke_deadline = now + (m->rebalance_timeout_ms > 0 ? m->rebalance_timeout_ms : 0);
        m->dirty_current = true;
        return 0;
    }
    free(revoke.v);
    bool unreleased = false;
    for (int32_t i = 0; i < m->target.n; i++) {
        const asg_part *p = &m->target.v[i];
        if (asg_parts_has(&m->assigned, p->topic, p->partition))
            continue;
        if (owned_by_other(g, m, p))
            unreleased = true;
        else
            keep.v[keep.n++] = *p;
    }
    asg_parts_sort(&keep);
    cg_mstate st = unreleased ? CG_UNRELEASED : CG_STABLE;
    if (m->epoch != g->assignment_epoch || st != m->state || !asg_parts_eq(&keep, &m->assigned) ||
        m->revoking.n > 0)
        m->dirty_current = true;
    if (m->epoch != g->assignment_epoch) {
        m->prev_epoch = m->epoch;
        m->epoch = g->assignment_epoch;
    }
    asg_parts_free(&m->assigned);
    asg_parts_free(&m->revoking);
    m->assigned = keep;
    m->state = st;
    m->revoke_deadline = CG_NO_DEADLINE;
    return 0;
}

static int reconcile(cgroup *g, cg_member *m, const asg_parts *owned, int64_t now) {
    switch (m->state) {
    case CG_STABLE:
        if (m->epoch == g->assignment_epoch)
            return 0;
        return next_step(g, m, now);
    case CG_UNREVOKED:
        if (owned == NULL || overlaps(owned, &m->revoking))
            return 0; /* still owns some of what it must give up */
        asg_parts_free(&m->revoking);
        m->state = CG_STABLE;
        return next_step(g, m, now);
    case CG_UNRELEASED:
    default:
        return next_step(g, m, now);
    }
}

/* ---- heartbeat ------------------------------------------------------------------------ */

int16_t cg_check_request(const cg_config *cfg, const cg_heartbeat_req *req, const char **message) {
    *message = NULL;
    int32_t e = req->member_epoch;
    if (req->version >= 1 && (req->member_id.len <= 0)) {
        *message = "MemberId can't be empty.";
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (req->version == 0 && e != 0 && req->member_id.len <= 0) {
        *message = "MemberId can't be empty.";
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (req->member_id.len > 1024 || req->instance_id.len > 1024 || req->rack_id.len > 1024) {
        *message = "An id is too long.";
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (e == 0) {
        if (req->rebalance_timeout_ms == -1) {
            *message = "RebalanceTimeoutMs must be provided in first request.";
            return KAFKA_ERR_INVALID_REQUEST;
        }
        if (req->owned == NULL) {
            *message = "TopicPartitions must be empty when (re-)joining.";
            return KAFKA_ERR_INVALID_REQUEST;
        }
        if (req->owned->n != 0) {
            *message = "TopicPartitions must be empty when (re-)joining.";
            return KAFKA_ERR_INVALID_REQUEST;
        }
        if (req->n_sub_names < 0 && req->regex.len < 0) {
            *message = "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.";
            return KAFKA_ERR_INVALID_REQUEST;
        }
    } else if (e == -2) {
        if (req->instance_id.len < 0) {
            *message = "InstanceId can't be null when leaving with epoch -2.";
            return KAFKA_ERR_INVALID_REQUEST;
        }
    } else if (e < -2) {
        *message = "MemberEpoch is invalid.";
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (req->n_sub_names > CG_SUBS_MAX) {
        *message = "Too many subscribed topics.";
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (req->assignor.len >= 0) {
        int k = asg_parse(req->assignor);
        bool ok = false;
        for (int i = 0; k >= 0 && i < cfg->n_assignors; i++)
            ok |= cfg->assignors[i] == (asg_kind)k;
        if (!ok) {
            *message = "ServerAssignor is not supported.";
            return KAFKA_ERR_UNSUPPORTED_ASSIGNOR;
        }
    }
    if (req->regex.len > 0) {
        regex_t re;
        if (compile_regex(&re, req->regex) != 0) {
            *message = "SubscribedTopicRegex is not a valid regular expression.";
            return KAFKA_ERR_INVALID_REGULAR_EXPRESSION;
        }
        regfree(&re);
    }
    return 0;
}

static void fail(cg_heartbeat_res *res, int16_t err, const char *msg) {
    res->error = err;
    res->message = msg;
}

/* Applies the fields the request sent to m; marks what changed. -1 on
 * OOM. */
static int update_member(cgroup *g, cg_member *m, const cg_heartbeat_req *req) {
    bool meta = false, subs = false;
    if (req->instance_id.len >= 0 && !streq_k(m->instance_id, req->instance_id)) {
        if (replace_str(&m->instance_id, req->instance_id) != 0)
            return -1;
        meta = true;
    }
    if (req->rack_id.len >= 0 && !streq_k(m->rack_id, req->rack_id)) {
        if (replace_str(&m->rack_id, req->rack_id) != 0)
            return -1;
        meta = true;
    }
    if (!streq_k(m->client_id, req->client_id)) {
        if (replace_str(&m->client_id, req->client_id) != 0)
            return -1;
        meta = true;
    }
    if (!streq_k(m->client_host, req->client_host)) {
        if (replace_str(&m->client_host, req->client_host) != 0)
            return -1;
        meta = true;
    }
    if (req->rebalance_timeout_ms >= 0 && req->rebalance_timeout_ms != m->rebalance_timeout_ms) {
        m->rebalance_timeout_ms = req->rebalance_timeout_ms;
        meta = true;
    }
    if (req->n_sub_names >= 0) {
        int r = set_subs(m, req->sub_names, req->n_sub_names);
        if (r < 0)
            return -1;
        subs |= r > 0;
    }
    if (req->regex.len >= 0) {
        int r = set_regex(m, req->regex);
        if (r < 0)
            return -1;
        subs |= r > 0;
    }
    if (req->assignor.len >= 0 && !streq_k(m->assignor, req->assignor)) {
        if (replace_str(&m->assignor, req->assignor) != 0)
            return -1;
        subs = true;
    }
    if (subs) {
        g->subs_changed = true;
        bump_epoch(g);
    }
    m->dirty_meta |= meta || subs;
    return 0;
}

/* After membership or subscriptions changed: refresh the topics (when a
 * view is at hand) and recompute the target if the epoch moved. */
static int settle(cgroup *g, const cg_config *cfg, const cg_topics *tv) {
    if (tv && (g->subs_changed || !g->topics_known || g->topics_version != tv->version))
        if (refresh_topics(g, tv))
            bump_epoch(g);
    if (g->check_target && g->epoch == g->assignment_epoch && g->n_members > 0) {
        /* The target the records hold may not be this group's any more. */
        g->check_target = false;
        bool was = g->dirty_target_epoch;
        if (compute_target(g, cfg) != 0)
            return -1;
        bool changed = false;
        for (int i = 0; i < g->n_members; i++)
            changed |= g->members[i]->dirty_target;
        if (changed) {
            g->epoch++;
            g->bumped = g->dirty_epoch = true;
            g->assignment_epoch = g->epoch;
        } else {
            g->dirty_target_epoch = was;
        }
    }
    g->check_target = false;
    if (g->epoch > g->assignment_epoch)
        return compute_target(g, cfg);
    return 0;
}

void cg_heartbeat(cgroup *g, const cg_config *cfg, const cg_heartbeat_req *req, const cg_topics *tv,
                  int64_t now, cg_heartbeat_res *res) {
    *res = (cg_heartbeat_res){0};
    res->member_epoch = req->member_epoch;
    g->bumped = false;
    int32_t e = req->member_epoch;
    cg_member *m = NULL;
    if (e == 0) {
        kstr id = req->member_id.len > 0 ? req->member_id : req->new_member_id;
        m = cg_find_member(g, id);
        cg_member *st = find_static(g, req->instance_id);
        if (st && st != m) {
            if (!st->left) {
                fail(res, KAFKA_ERR_UNRELEASED_INSTANCE_ID,
                     "Static member with this instance id is still active.");
                goto out;
            }
            /* The static member comes back under a new id: it takes over
             * the old one's assignment and epoch (no rebalance). */
            cg_member *nm = add_member(g, id);
            if (nm == NULL) {
                fail(res, KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL);
                goto out;
            }
            nm->epoch = st->epoch;
            nm->prev_epoch = st->prev_epoch;
            nm->state = st->state;
            nm->assigned = st->assigned;
            nm->revoking = st->revoking;
            nm->target = st->target;
            nm->rebalance_timeout_ms = st->rebalance_timeout_ms;
            nm->revoke_deadline = st->revoke_deadline;
            st->assigned = st->revoking = st->target = (asg_parts){0};
            nm->subs = st->subs;
            nm->n_subs = st->n_subs;
            st->subs = NULL;
            st->n_subs = 0;
            if (st->regex && set_regex(nm, kstr_c(st->regex)) < 0) {
                fail(res, KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL);
                goto out;
            }
            nm->assignor = st->assignor;
            st->assignor = NULL;
            nm->dirty_meta = nm->dirty_target = nm->dirty_current = true;
            remove_member(g, st);
            m = nm;
        } else if (m == NULL) {
            if (g->n_members >= cfg->max_size || g->n_members >= CG_MEMBERS_MAX) {
                fail(res, KAFKA_ERR_GROUP_MAX_SIZE_REACHED,
                     "The consumer group has reached its maximum size.");
                goto out;
            }
            if ((m = add_member(g, id)) == NULL) {
                fail(res, KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL);
                goto out;
            }
            m->dirty_meta = m->dirty_current = true;
            g->subs_changed = true;
            bump_epoch(g);
        } else if (m->epoch != 0 || m->assigned.n > 0 || m->revoking.n > 0) {
            /* A known member joins again: it lost its partitions. */
            asg_parts_free(&m->assigned);
            asg_parts_free(&m->revoking);
            m->epoch = 0;
            m->state = CG_STABLE;
            m->dirty_current = true;
        }
        m->left = false;
    } else {
        m = cg_find_member(g, req->member_id);
        if (m == NULL) {
            fail(res, KAFKA_ERR_UNKNOWN_MEMBER_ID, "The member is not in the group.");
            goto out;
        }
        if (e == -1 || e == -2) {
            res->member_id = m->id;
            if (e == -2 && m->instance_id) {
                /* A static member leaving for a while keeps its place and
                 * its partitions until its session ends. */
                m->left = true;
                res->member_epoch = -2;
                m->session_deadline = now + cfg->session_timeout_ms;
                goto out;
            }
            remove_member(g, m);
            bump_epoch(g);
            g->subs_changed = true;
            res->member_epoch = -1;
            res->member_id = NULL;
            if (settle(g, cfg, tv) != 0)
                fail(res, KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL);
            goto out;
        }
        if (e > m->epoch) {
            fail(res, KAFKA_ERR_FENCED_MEMBER_EPOCH, "The member epoch is newer than the group's.");
            goto out;
        }
        if (e < m->epoch && (e != m->prev_epoch || req->owned == NULL || !subset(req->owned, &m->assigned))) {
            fail(res, KAFKA_ERR_FENCED_MEMBER_EPOCH, "The member epoch is fenced.");
            goto out;
        }
    }
    int32_t epoch_before = m->epoch;
    asg_parts before = {0};
    if (asg_parts_copy(&before, &m->assigned) != 0 || update_member(g, m, req) != 0 ||
        settle(g, cfg, tv) != 0 || reconcile(g, m, req->owned, now) != 0) {
        asg_parts_free(&before);
        fail(res, KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL);
        goto out;
    }
    m->session_deadline = now + cfg->session_timeout_ms;
    res->member_id = m->id;
    res->member_epoch = m->epoch;
    res->assignment = &m->assigned;
    res->has_assignment = e == 0 || epoch_before != m->epoch || !asg_parts_eq(&before, &m->assigned) ||
                          (req->owned && !asg_parts_eq(req->owned, &m->assigned));
    asg_parts_free(&before);
out:
    cg_check(g);
}

/* ---- time ------------------------------------------------------------------------------- */

int64_t cg_next_deadline(const cgroup *g) {
    int64_t next = CG_NO_DEADLINE;
    for (int i = 0; i < g->n_members; i++) {
        const cg_member *m = g->members[i];
        if (m->session_deadline < next)
            next = m->session_deadline;
        if (m->state == CG_UNREVOKED && m->revoke_deadline < next)
            next = m->revoke_deadline;
    }
    return next;
}

bool cg_tick(cgroup *g, const cg_config *cfg, int64_t now, int64_t *next) {
    bool changed = false;
    g->bumped = false;
    for (int i = g->n_members - 1; i >= 0; i--) {
        cg_member *m = g->members[i];
        if (m->session_deadline <= now || (m->state == CG_UNREVOKED && m->revoke_deadline <= now)) {
            remove_member(g, m);
            changed = true;
        }
    }
    if (changed) {
        bump_epoch(g);
        g->subs_changed = true;
        (void)settle(g, cfg, NULL); /* on OOM the next heartbeat tries again */
    }
    int64_t d = cg_next_deadline(g);
    if (d < *next)
        *next = d;
    cg_check(g);
    return changed;
}

int16_t cg_check_commit(const cgroup *g, kstr member_id, int32_t epoch) {
    if (epoch < 0 && member_id.len <= 0)
        return g->n_members == 0 ? 0 : KAFKA_ERR_UNKNOWN_MEMBER_ID;
    const cg_member *m = cg_find_member(g, member_id);
    if (m == NULL)
        return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    if (epoch > m->epoch)
        return KAFKA_ERR_FENCED_MEMBER_EPOCH;
    if (epoch < m->epoch)
        return KAFKA_ERR_STALE_MEMBER_EPOCH;
    return 0;
}

int16_t cg_check_fetch(const cgroup *g, kstr member_id, int32_t epoch) {
    if (member_id.len < 0 && epoch < 0)
        return 0;
    const cg_member *m = cg_find_member(g, member_id);
    if (m == NULL)
        return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    return epoch == m->epoch ? 0 : KAFKA_ERR_STALE_MEMBER_EPOCH;
}

/* ---- records ------------------------------------------------------------------------------ */

#define CODEC(name, type, prefix)                                               \
    static int enc_##name(arena *a, int16_t ver, const type *m, kbytes *out) {  \
        size_t n = 2 + prefix##_size(ver, m);                                   \
        uint8_t *buf = n <= INT32_MAX ? arena_alloc(a, n) : NULL;               \
        if (buf == NULL)                                                        \
            return -1;                                                          \
        wire_writer w;                                                          \
        wire_writer_init(&w, buf, n);                                           \
        wire_write_i16(&w, ver);                                                \
        if (prefix##_encode(&w, ver, m) != 0 || w.err != WIRE_OK || w.len != n) \
            return -1;                                                          \
        *out = (kbytes){buf, (int32_t)n};                                       \
        return 0;                                                               \
    }                                                                           \
    static int dec_##name(kbytes in, arena *a, type *m) {                       \
        if (in.len < 2)                                                         \
            return -1;                                                          \
        wire_reader r;                                                          \
        wire_reader_init(&r, in.ptr, (size_t)in.len);                           \
        int16_t ver = wire_read_i16(&r);                                        \
        if (ver != 0)                                                           \
            return -1;                                                          \
        prefix##_init(m);                                                       \
        if (prefix##_decode(&r, ver, a, m) != 0 || r.err != WIRE_OK)            \
            return -1;                                                          \
        return 0;                                                               \
    }

CODEC(meta, kafka_consumer_group_metadata_value, kafka_consumer_group_metadata_value)
CODEC(pmeta, kafka_consumer_group_partition_metadata_value, kafka_consumer_group_partition_metadata_value)
CODEC(member, kafka_consumer_group_member_metadata_value, kafka_consumer_group_member_metadata_value)
CODEC(tmeta, kafka_consumer_group_target_assignment_metadata_value,
      kafka_consumer_group_target_assignment_metadata_value)
CODEC(tmember, kafka_consumer_group_target_assignment_member_value,
      kafka_consumer_group_target_assignment_member_value)
CODEC(current, kafka_consumer_group_current_member_assignment_value,
      kafka_consumer_group_current_member_assignment_value)

static int enc_key(arena *a, int16_t ver, kstr group, const char *member, kbytes *out) {
    bool has_member = ver == CG_KEY_MEMBER || ver == CG_KEY_TARGET_MEMBER || ver == CG_KEY_CURRENT_ASSIGNMNT;
    kstr mk = ks(member);
    size_t n = 2 + wire_string_size(group, false) + (has_member ? wire_string_size(mk, false) : 0);
    uint8_t *buf = arena_alloc(a, n);
    if (buf == NULL)
        return -1;
    wire_writer w;
    wire_writer_init(&w, buf, n);
    wire_write_i16(&w, ver);
    wire_write_string(&w, group, false, false);
    if (has_member)
        wire_write_string(&w, mk, false, false);
    if (w.err != WIRE_OK || w.len != n)
        return -1;
    *out = (kbytes){buf, (int32_t)n};
    return 0;
}

int cg_decode_key(kbytes key, int16_t *version, kstr *group, kstr *member) {
    if (key.len < 2)
        return -1;
    wire_reader r;
    wire_reader_init(&r, key.ptr, (size_t)key.len);
    *version = wire_read_i16(&r);
    if (*version < CG_KEY_METADATA || *version > CG_KEY_CURRENT_ASSIGNMNT)
        return -1;
    *group = wire_read_string(&r, false, false);
    *member = KSTR_NULL;
    if (*version == CG_KEY_MEMBER || *version == CG_KEY_TARGET_MEMBER || *version == CG_KEY_CURRENT_ASSIGNMNT)
        *member = wire_read_string(&r, false, false);
    return r.err == WIRE_OK && wire_remaining(&r) == 0 ? 0 : -1;
}

/* Splits a sorted part array by topic: n topics with their partitions. */
typedef struct by_topic {
    kuuid *ids;
    int32_t **parts;
    int32_t *counts;
    int32_t n;
} by_topic;

static int split_topics(arena *a, const asg_parts *s, by_topic *bt) {
    int32_t nt = 0;
    for (int32_t i = 0; i < s->n; i++)
        nt += i == 0 || memcmp(s->v[i].topic.b, s->v[i - 1].topic.b, 16) != 0;
    bt->n = nt;
    bt->ids = nt ? arena_calloc(a, (size_t)nt, sizeof *bt->ids) : NULL;
    bt->parts = nt ? arena_calloc(a, (size_t)nt, sizeof *bt->parts) : NULL;
    bt->counts = nt ? arena_calloc(a, (size_t)nt, sizeof *bt->counts) : NULL;
    int32_t *pool = s->n ? arena_calloc(a, (size_t)s->n, sizeof *pool) : NULL;
    if (nt && (bt->ids == NULL || bt->parts == NULL || bt->counts == NULL || pool == NULL))
        return -1;
    int32_t t = -1;
    for (int32_t i = 0; i < s->n; i++) {
        if (i == 0 || memcmp(s->v[i].topic.b, s->v[i - 1].topic.b, 16) != 0) {
            t++;
            bt->ids[t] = s->v[i].topic;
            bt->parts[t] = pool + i;
        }
        bt->parts[t][bt->counts[t]++] = s->v[i].partition;
    }
    return 0;
}

/* Per-topic arrays of the three record/response shapes have one layout:
 * fill them from a by_topic. */
#define FILL_TOPICS(arr, cnt, type, bt, a)                                       \
    do {                                                                         \
        (arr) = (bt).n ? arena_calloc((a), (size_t)(bt).n, sizeof(type)) : NULL; \
        if ((bt).n && (arr) == NULL)                                             \
            return -1;                                                           \
        (cnt) = (bt).n;                                                          \
        for (int32_t t_ = 0; t_ < (bt).n; t_++) {                                \
            (arr)[t_].topic_id = (bt).ids[t_];                                   \
            (arr)[t_].partitions = (bt).parts[t_];                               \
            (arr)[t_].partitions_count = (bt).counts[t_];                        \
        }                                                                        \
    } while (0)

static int parts_from(arena *a, const void *arr, size_t stride, int32_t n, asg_parts *out) {
    (void)a;
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const kafka_consumer_group_target_assignment_member_value_topic_partition *t =
            (const void *)((const uint8_t *)arr + (size_t)i * stride);
        total += t->partitions_count > 0 ? t->partitions_count : 0;
    }
    out->v = NULL;
    out->n = 0;
    if (total > INT32_MAX)
        return -1;
    if (total && (out->v = malloc((size_t)total * sizeof *out->v)) == NULL)
        return -1;
    for (int32_t i = 0; i < n; i++) {
        const kafka_consumer_group_target_assignment_member_value_topic_partition *t =
            (const void *)((const uint8_t *)arr + (size_t)i * stride);
        for (int32_t k = 0; k < t->partitions_count; k++)
            out->v[out->n++] = (asg_part){t->topic_id, t->partitions[k]};
    }
    asg_parts_sort(out);
    return 0;
}

typedef struct rec_list {
    arena *a;
    cg_rec_out *v;
    int n, cap;
} rec_list;

static cg_rec_out *rl_add(rec_list *rl) {
    if (rl->n == rl->cap) {
        int nc = rl->cap ? rl->cap * 2 : 16;
        cg_rec_out *nv = arena_calloc(rl->a, (size_t)nc, sizeof *nv);
        if (nv == NULL)
            return NULL;
        if (rl->n)
            memcpy(nv, rl->v, (size_t)rl->n * sizeof *nv);
        rl->v = nv;
        rl->cap = nc;
    }
    cg_rec_out *r = &rl->v[rl->n++];
    r->value = KBYTES_NULL;
    return r;
}

static int emit_tombstone(rec_list *rl, int16_t ver, kstr group, const char *member) {
    cg_rec_out *r = rl_add(rl);
    return r == NULL ? -1 : enc_key(rl->a, ver, group, member, &r->key);
}

static int emit_member(rec_list *rl, kstr group, const cg_member *m) {
    kafka_consumer_group_member_metadata_value v;
    kafka_consumer_group_member_metadata_value_init(&v);
    v.instance_id = ks(m->instance_id);
    v.rack_id = ks(m->rack_id);
    v.client_id = m->client_id ? kstr_c(m->client_id) : kstr_c("");
    v.client_host = m->client_host ? kstr_c(m->client_host) : kstr_c("");
    v.subscribed_topic_names = m->n_subs ? arena_calloc(rl->a, (size_t)m->n_subs, sizeof(kstr)) : NULL;
    if (m->n_subs && v.subscribed_topic_names == NULL)
        return -1;
    for (int i = 0; i < m->n_subs; i++)
        v.subscribed_topic_names[i] = kstr_c(m->subs[i]);
    v.subscribed_topic_names_count = m->n_subs;
    v.subscribed_topic_regex = ks(m->regex);
    v.rebalance_timeout_ms = m->rebalance_timeout_ms;
    v.server_assignor = ks(m->assignor);
    cg_rec_out *r = rl_add(rl);
    return r == NULL || enc_key(rl->a, CG_KEY_MEMBER, group, m->id, &r->key) != 0
               ? -1
               : enc_member(rl->a, 0, &v, &r->value);
}

static int emit_target(rec_list *rl, kstr group, const cg_member *m) {
    kafka_consumer_group_target_assignment_member_value v;
    kafka_consumer_group_target_assignment_member_value_init(&v);
    by_topic bt;
    if (split_topics(rl->a, &m->target, &bt) != 0)
        return -1;
    FILL_TOPICS(v.topic_partitions, v.topic_partitions_count,
                kafka_consumer_group_target_assignment_member_value_topic_partition, bt, rl->a);
    cg_rec_out *r = rl_add(rl);
    return r == NULL || enc_key(rl->a, CG_KEY_TARGET_MEMBER, group, m->id, &r->key) != 0
               ? -1
               : enc_tmember(rl->a, 0, &v, &r->value);
}

static int emit_current(rec_list *rl, kstr group, const cg_member *m) {
    kafka_consumer_group_current_member_assignment_value v;
    kafka_consumer_group_current_member_assignment_value_init(&v);
    v.member_epoch = m->left ? -2 : m->epoch;
    v.previous_member_epoch = m->prev_epoch;
    v.state = (int8_t)m->state;
    by_topic a, rv;
    if (split_topics(rl->a, &m->assigned, &a) != 0 || split_topics(rl->a, &m->revoking, &rv) != 0)
        return -1;
    FILL_TOPICS(v.assigned_partitions, v.assigned_partitions_count,
                kafka_consumer_group_current_member_assignment_value_topic_partitions, a, rl->a);
    FILL_TOPICS(v.partitions_pending_revocation, v.partitions_pending_revocation_count,
                kafka_consumer_group_current_member_assignment_value_topic_partitions, rv, rl->a);
    cg_rec_out *r = rl_add(rl);
    return r == NULL || enc_key(rl->a, CG_KEY_CURRENT_ASSIGNMNT, group, m->id, &r->key) != 0
               ? -1
               : enc_current(rl->a, 0, &v, &r->value);
}

static int emit_topics(rec_list *rl, kstr group, const cgroup *g) {
    kafka_consumer_group_partition_metadata_value v;
    kafka_consumer_group_partition_metadata_value_init(&v);
    v.topics = g->n_topics ? arena_calloc(rl->a, (size_t)g->n_topics, sizeof *v.topics) : NULL;
    if (g->n_topics && v.topics == NULL)
        return -1;
    v.topics_count = g->n_topics;
    for (int i = 0; i < g->n_topics; i++) {
        kafka_consumer_group_partition_metadata_value_topic_metadata_init(&v.topics[i]);
        v.topics[i].topic_id = g->topics[i].id;
        v.topics[i].topic_name = kstr_c(g->topics[i].name);
        v.topics[i].num_partitions = g->topics[i].n_partitions;
        v.topics[i].partition_metadata_count = 0;
    }
    cg_rec_out *r = rl_add(rl);
    return r == NULL || enc_key(rl->a, CG_KEY_PARTITION_META, group, NULL, &r->key) != 0
               ? -1
               : enc_pmeta(rl->a, 0, &v, &r->value);
}

int cg_emit(cgroup *g, kstr group_id, arena *a, cg_rec_out **out, int *n) {
    rec_list rl = {.a = a};
    *out = NULL;
    *n = 0;
    for (int i = 0; i < g->n_removed; i++)
        if (emit_tombstone(&rl, CG_KEY_CURRENT_ASSIGNMNT, group_id, g->removed[i]) != 0 ||
            emit_tombstone(&rl, CG_KEY_TARGET_MEMBER, group_id, g->removed[i]) != 0 ||
            emit_tombstone(&rl, CG_KEY_MEMBER, group_id, g->removed[i]) != 0)
            return -1;
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->dirty_meta && emit_member(&rl, group_id, g->members[i]) != 0)
            return -1;
    if (g->dirty_epoch) {
        kafka_consumer_group_metadata_value v;
        kafka_consumer_group_metadata_value_init(&v);
        v.epoch = g->epoch;
        cg_rec_out *r = rl_add(&rl);
        if (r == NULL || enc_key(a, CG_KEY_METADATA, group_id, NULL, &r->key) != 0 ||
            enc_meta(a, 0, &v, &r->value) != 0)
            return -1;
    }
    if (g->dirty_topics && emit_topics(&rl, group_id, g) != 0)
        return -1;
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->dirty_target && emit_target(&rl, group_id, g->members[i]) != 0)
            return -1;
    if (g->dirty_target_epoch) {
        kafka_consumer_group_target_assignment_metadata_value v;
        kafka_consumer_group_target_assignment_metadata_value_init(&v);
        v.assignment_epoch = g->assignment_epoch;
        cg_rec_out *r = rl_add(&rl);
        if (r == NULL || enc_key(a, CG_KEY_TARGET_META, group_id, NULL, &r->key) != 0 ||
            enc_tmeta(a, 0, &v, &r->value) != 0)
            return -1;
    }
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->dirty_current && emit_current(&rl, group_id, g->members[i]) != 0)
            return -1;
    /* Done: the marks go. */
    for (int i = 0; i < g->n_removed; i++)
        free(g->removed[i]);
    g->n_removed = 0;
    for (int i = 0; i < g->n_members; i++)
        g->members[i]->dirty_meta = g->members[i]->dirty_target = g->members[i]->dirty_current = false;
    g->dirty_epoch = g->dirty_topics = g->dirty_target_epoch = false;
    *out = rl.v;
    *n = rl.n;
    return 0;
}

int cg_tombstones(const cgroup *g, arena *a, cg_rec_out **out, int *n) {
    *out = g->n_store ? arena_calloc(a, (size_t)g->n_store, sizeof **out) : NULL;
    if (g->n_store && *out == NULL)
        return -1;
    /* Members' keys first, the group's last (as Kafka deletes them). */
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < g->n_store; i++) {
            const cg_store_rec *s = &g->store[i];
            int16_t ver = (int16_t)((s->key[0] << 8) | s->key[1]);
            bool member =
                ver == CG_KEY_MEMBER || ver == CG_KEY_TARGET_MEMBER || ver == CG_KEY_CURRENT_ASSIGNMNT;
            if (member != (pass == 0))
                continue;
            (*out)[k].key = (kbytes){s->key, s->klen};
            (*out)[k].value = KBYTES_NULL;
            k++;
        }
    *n = k;
    return 0;
}

/* ---- the store ----------------------------------------------------------------------------- */

static int32_t store_find(const cgroup *g, kbytes key, uint32_t h) {
    if (g->n_buckets == 0)
        return -1;
    for (int32_t i = g->buckets[h % (uint32_t)g->n_buckets]; i >= 0; i = g->store[i].next)
        if (g->store[i].hash == h && g->store[i].klen == key.len &&
            memcmp(g->store[i].key, key.ptr, (size_t)key.len) == 0)
            return i;
    return -1;
}

static int store_reindex(cgroup *g, int32_t nb) {
    int32_t *b = malloc((size_t)nb * sizeof *b);
    if (b == NULL)
        return -1;
    for (int32_t i = 0; i < nb; i++)
        b[i] = -1;
    for (int32_t i = 0; i < g->n_store; i++) {
        uint32_t k = g->store[i].hash % (uint32_t)nb;
        g->store[i].next = b[k];
        b[k] = i;
    }
    free(g->buckets);
    g->buckets = b;
    g->n_buckets = nb;
    return 0;
}

int cg_store_put(cgroup *g, kbytes key, kbytes value) {
    if (key.len < 2)
        return -1;
    uint32_t h = fnv(key.ptr, (size_t)key.len);
    int32_t i = store_find(g, key, h);
    if (value.len < 0) {
        if (i < 0)
            return 0;
        free(g->store[i].key);
        free(g->store[i].value);
        g->store[i] = g->store[--g->n_store];
        return store_reindex(g, g->n_buckets);
    }
    uint8_t *v = malloc(value.len > 0 ? (size_t)value.len : 1);
    if (v == NULL)
        return -1;
    if (value.len > 0)
        memcpy(v, value.ptr, (size_t)value.len);
    if (i >= 0) {
        free(g->store[i].value);
        g->store[i].value = v;
        g->store[i].vlen = value.len;
        return 0;
    }
    if (g->n_store == g->cap_store) {
        int32_t nc = g->cap_store ? g->cap_store * 2 : 16;
        cg_store_rec *ns = realloc(g->store, (size_t)nc * sizeof *ns);
        if (ns == NULL) {
            free(v);
            return -1;
        }
        g->store = ns;
        g->cap_store = nc;
    }
    uint8_t *k = malloc((size_t)key.len);
    if (k == NULL) {
        free(v);
        return -1;
    }
    memcpy(k, key.ptr, (size_t)key.len);
    g->store[g->n_store++] = (cg_store_rec){k, key.len, v, value.len, h, -1};
    if (g->n_store > g->n_buckets)
        return store_reindex(g, g->n_buckets ? g->n_buckets * 2 : 16);
    uint32_t b = h % (uint32_t)g->n_buckets;
    g->store[g->n_store - 1].next = g->buckets[b];
    g->buckets[b] = g->n_store - 1;
    return 0;
}

typedef struct held {
    asg_part p;
    int pos; /* 2 x member index + (0 assigned, 1 revoking) */
} held;

static int cmp_held(const void *a, const void *b) {
    const held *x = a, *y = b;
    int c = asg_part_cmp(&x->p, &y->p);
    return c != 0 ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Deadlines of the members before a rebuild, by id. */
typedef struct kept {
    char *id;
    int64_t session, revoke;
} kept;

static int rebuild_member(cgroup *g, kstr id, const kafka_consumer_group_member_metadata_value *v) {
    if (g->n_members >= CG_MEMBERS_MAX || id.len <= 0) /* (ids are unique: they are in the keys) */
        return 0;                                      /* not from a log we wrote: skipped */
    cg_member *m = add_member(g, id);
    if (m == NULL || replace_str(&m->instance_id, v->instance_id) != 0 ||
        replace_str(&m->rack_id, v->rack_id) != 0 || replace_str(&m->client_id, v->client_id) != 0 ||
        replace_str(&m->client_host, v->client_host) != 0 ||
        replace_str(&m->assignor, v->server_assignor) != 0 ||
        set_subs(m, v->subscribed_topic_names,
                 v->subscribed_topic_names_count > 0 ? v->subscribed_topic_names_count : 0) < 0)
        return -1;
    if (v->subscribed_topic_regex.len > 0 && set_regex(m, v->subscribed_topic_regex) < 0)
        return -1;
    m->rebalance_timeout_ms = v->rebalance_timeout_ms;
    return 0;
}

int cg_rebuild(cgroup *g, const cg_config *cfg, int64_t now) {
    int nk = g->n_members;
    kept *old = nk ? calloc((size_t)nk, sizeof *old) : NULL;
    if (nk && old == NULL)
        return -1;
    for (int i = 0; i < nk; i++) {
        old[i] = (kept){g->members[i]->id, g->members[i]->session_deadline, g->members[i]->revoke_deadline};
        g->members[i]->id = NULL;
    }
    clear_live(g);
    int rc = 0;
    arena a;
    arena_init(&a, 64u << 20);
    /* Members first: the other member records attach to them. */
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (int32_t i = 0; i < g->n_store && rc == 0; i++) {
            const cg_store_rec *s = &g->store[i];
            int16_t ver;
            kstr group, member;
            if (cg_decode_key((kbytes){s->key, s->klen}, &ver, &group, &member) != 0)
                continue;
            kbytes val = {s->value, s->vlen};
            if (pass == 0) {
                if (ver == CG_KEY_MEMBER) {
                    kafka_consumer_group_member_metadata_value v;
                    if (dec_member(val, &a, &v) == 0)
                        rc = rebuild_member(g, member, &v);
                } else if (ver == CG_KEY_METADATA) {
                    kafka_consumer_group_metadata_value v;
                    if (dec_meta(val, &a, &v) == 0)
                        g->epoch = v.epoch;
                } else if (ver == CG_KEY_TARGET_META) {
                    kafka_consumer_group_target_assignment_metadata_value v;
                    if (dec_tmeta(val, &a, &v) == 0)
                        g->assignment_epoch = v.assignment_epoch;
                } else if (ver == CG_KEY_PARTITION_META) {
                    kafka_consumer_group_partition_metadata_value v;
                    if (dec_pmeta(val, &a, &v) != 0)
                        continue;
                    int cap = 0;
                    for (int32_t t = 0; t < v.topics_count && rc == 0; t++) {
                        if (v.topics[t].num_partitions < 0 || v.topics[t].num_partitions > ASG_PARTITIONS_MAX)
                            continue; /* not from a real topic; the next heartbeat looks again */
                        cg_topic_info ti = {v.topics[t].topic_name, v.topics[t].topic_id,
                                            v.topics[t].num_partitions};
                        rc = push_topic(&g->topics, &g->n_topics, &cap, &ti);
                    }
                    dedup_topics(g->topics, &g->n_topics);
                }
                continue;
            }
            cg_member *m = member.len >= 0 ? cg_find_member(g, member) : NULL;
            if (m == NULL)
                continue;
            if (ver == CG_KEY_TARGET_MEMBER) {
                kafka_consumer_group_target_assignment_member_value v;
                if (dec_tmember(val, &a, &v) == 0) {
                    asg_parts_free(&m->target);
                    rc = parts_from(&a, v.topic_partitions, sizeof *v.topic_partitions,
                                    v.topic_partitions_count, &m->target);
                }
            } else if (ver == CG_KEY_CURRENT_ASSIGNMNT) {
                kafka_consumer_group_current_member_assignment_value v;
                if (dec_current(val, &a, &v) == 0) {
                    m->epoch = v.member_epoch;
                    m->left = v.member_epoch == -2;
                    if (m->left)
                        m->epoch = v.previous_member_epoch;
                    m->prev_epoch = v.previous_member_epoch;
                    m->state = (cg_mstate)v.state;
                    asg_parts_free(&m->assigned);
                    asg_parts_free(&m->revoking);
                    rc = parts_from(&a, v.assigned_partitions, sizeof *v.assigned_partitions,
                                    v.assigned_partitions_count, &m->assigned);
                    if (rc == 0)
                        rc = parts_from(&a, v.partitions_pending_revocation,
                                        sizeof *v.partitions_pending_revocation,
                                        v.partitions_pending_revocation_count, &m->revoking);
                }
            }
        }
    arena_reset(&a);
    /* Sane after any log: epochs never beyond the target's, states as the
     * partitions say. */
    if (g->assignment_epoch > g->epoch)
        g->assignment_epoch = g->epoch;
    for (int i = 0; i < g->n_members; i++) {
        cg_member *m = g->members[i];
        if (m->epoch > g->assignment_epoch)
            m->epoch = g->assignment_epoch;
        if (m->revoking.n > 0)
            m->state = CG_UNREVOKED;
        else if (m->state == CG_UNREVOKED)
            m->state = CG_STABLE;
        m->session_deadline = now + cfg->session_timeout_ms;
        m->revoke_deadline = m->state == CG_UNREVOKED
                                 ? now + (m->rebalance_timeout_ms > 0 ? m->rebalance_timeout_ms : 0)
                                 : CG_NO_DEADLINE;
        for (int k = 0; k < nk; k++)
            if (old[k].id && strcmp(old[k].id, m->id) == 0) {
                m->session_deadline = old[k].session;
                if (m->state == CG_UNREVOKED && old[k].revoke != CG_NO_DEADLINE)
                    m->revoke_deadline = old[k].revoke;
            }
    }
    for (int k = 0; k < nk; k++)
        free(old[k].id);
    free(old);
    /* One partition in two members' assignments: the log lacks a write
     * (one that failed while later ones landed, or a damaged log), and
     * either member's client may hold it. Every claimant must give it up:
     * it goes to their partitions pending revocation, and nobody gets it
     * until each has shown it let go (or was fenced). Every (partition,
     * member, set) sorted: O(p log p) for p partitions in all. */
    int64_t np = 0;
    for (int i = 0; i < g->n_members; i++)
        np += g->members[i]->assigned.n + g->members[i]->revoking.n;
    held *hv = np ? malloc((size_t)np * sizeof *hv) : NULL;
    if (np && hv == NULL)
        rc = -1;
    int64_t h = 0;
    for (int i = 0; hv && i < g->n_members; i++)
        for (int pass = 0; pass < 2; pass++) {
            asg_parts *ps = pass == 0 ? &g->members[i]->assigned : &g->members[i]->revoking;
            for (int32_t x = 0; x < ps->n; x++)
                hv[h++] = (held){ps->v[x], i * 2 + pass};
        }
    if (hv && np > 1)
        qsort(hv, (size_t)np, sizeof *hv, cmp_held);
    for (int64_t x = 0; hv && x < np;) {
        int64_t y = x + 1;
        bool contested = false;
        while (y < np && asg_part_cmp(&hv[y].p, &hv[x].p) == 0) {
            contested |= hv[y].pos / 2 != hv[x].pos / 2;
            y++;
        }
        for (int64_t z = x; contested && z < y; z++) {
            cg_member *m = g->members[hv[z].pos / 2];
            asg_parts *rv = &m->revoking;
            if (!asg_parts_has(rv, hv[z].p.topic, hv[z].p.partition)) {
                asg_part *nv = realloc(rv->v, (size_t)(rv->n + 1) * sizeof *nv);
                if (nv == NULL) {
                    rc = -1;
                    break;
                }
                rv->v = nv;
                rv->v[rv->n++] = hv[z].p;
                asg_parts_sort(rv);
            }
        }
        x = y;
    }
    free(hv);
    /* Nothing pending revocation stays assigned. */
    for (int i = 0; i < g->n_members; i++) {
        cg_member *m = g->members[i];
        int32_t k = 0;
        for (int32_t x = 0; x < m->assigned.n; x++)
            if (!asg_parts_has(&m->revoking, m->assigned.v[x].topic, m->assigned.v[x].partition))
                m->assigned.v[k++] = m->assigned.v[x];
        m->assigned.n = k;
        if (m->revoking.n > 0 && m->state != CG_UNREVOKED) {
            m->state = CG_UNREVOKED;
            m->revoke_deadline = now + (m->rebalance_timeout_ms > 0 ? m->rebalance_timeout_ms : 0);
        }
    }
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->revoking.n == 0 && g->members[i]->state == CG_UNREVOKED)
            g->members[i]->state = CG_STABLE;
    g->subs_changed = true;
    g->check_target = true;
    if (rc != 0)
        clear_live(g);
    return rc;
}
