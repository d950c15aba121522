/*
 * coordinator.c - the group coordinator state machine. See coordinator.h.
 *
 * Appends. Every write goes through issue(): the records are copied into a
 * `pending` that joins the FIFO of appends in flight (issue order), and the
 * sink is asked to append them. gcoord_append_done marks a pending done;
 * drain() then completes the done ones from the head of the FIFO, in issue
 * order, at the end of the event in progress (never in the middle of one:
 * an outcome reported inside the sink call waits for the event to finish).
 * Completing an append applies its records to what the machine knows is
 * durable (offsets, the groups' last stored metadata) exactly as loading
 * would, then does what its kind needs (answer the commit, make the group
 * Stable, ...). So the in-memory offsets are always the replay of the
 * successful appends, which is what a reload sees. A snapshot is built from
 * that state plus the records of every append still in flight (it is
 * appended after them and replaces them); an append it includes that then
 * fails is durable after all if the snapshot succeeds, so the snapshot
 * adopts its records and applies them when it completes.
 *
 * Invariants (between calls; check_invariants asserts them at entry and
 * exit of every event, the walks in SLUICE_DEEP_CHECKS builds):
 *   - unloaded: no groups, no appends in flight; loading: no appends;
 *   - a group is in the table iff it is not Dead, or Dead with the append of
 *     its tombstones in flight (n_inflight > 0);
 *   - a group's n_inflight counts the pendings that point at it; a group is
 *     freed only with n_inflight == 0;
 *   - members[] order is join order; leader is NULL or a member's id;
 *   - a member's join_token is set only in PreparingRebalance (or during the
 *     call that answers it); a sync_token only in CompletingRebalance;
 *     sync_store only in CompletingRebalance;
 *   - n_offsets counts the entries of the group's offset table, and
 *     n_offsets_total the sum;
 *   - the FIFO's sequence numbers increase; outstanding counts its
 *     pendings not done, at most GCOORD_APPENDS_MAX;
 *   - groups_behind counts the groups whose topic_epoch is below rt_epoch
 *     (topic removals not yet applied to them);
 *   - next_deadline <= every armed deadline (it may be early: tick then
 *     recomputes it exactly).
 */
#include "group/coordinator.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "group/records.h"
#include "proto/gen/kafka_msgs.h"

#define NO_DEADLINE        INT64_MAX
#define ENCODE_ARENA_LIMIT (256u << 20)
/* Whole-structure checks walk everything; above this size only the O(1) ones run. */
#define DEEP_CHECK_MAX 20000

typedef enum phase { PH_UNLOADED = 0, PH_LOADING, PH_ACTIVE } phase;

typedef enum pend_kind {
    PK_COMMIT = 1,     /* OffsetCommit: token, errs */
    PK_SYNC,           /* the leader's SyncGroup stored the generation */
    PK_STATIC_JOIN,    /* a static member's new id, stored without a rebalance: token */
    PK_GROUP,          /* a group record no request waits for (an Empty group's generation) */
    PK_DELETE_GROUP,   /* DeleteGroups: token */
    PK_DELETE_OFFSETS, /* OffsetDelete: token, errs */
    PK_EXPIRE,         /* retention tombstones (and the group's with group_too) */
    PK_REMOVE_TOPIC,   /* tombstones of deleted topics' offsets */
    PK_SNAPSHOT,
    PK_CG, /* a consumer group's records: a ConsumerGroupHeartbeat's (token) or a timer's */
} pend_kind;

typedef struct pending pending;
struct pending {
    uint64_t id;  /* the owner's; 0 until the sink returns it */
    uint64_t seq; /* ours, in issue order */
    pend_kind kind;
    bool done, in_snapshot;
    int16_t err; /* the outcome, once done */
    /* The records, in one allocation (none for snapshots). */
    gcoord_record *recs;
    int n_recs;
    gcoord_group *g; /* counted in g->n_inflight */
    int32_t generation;
    gcoord_state prev_state; /* Dead groups: the state to return to if the write fails */
    int64_t prev_state_ts;
    void *token;
    int16_t *errs; /* per-entry results (commits, offset deletes) */
    int n_errs;
    char *member_id, *old_member_id, *instance_id; /* static join */
    bool group_too;                                /* expiry: the group goes too */
    int64_t appended_before;                       /* snapshot: records counted when it was issued */
    pending *adopted;                              /* snapshot: included appends that failed */
    pending *next;                                 /* in an adopted chain */
    /* PK_CG with a token: the heartbeat's answer once written */
    int32_t cg_epoch;
    bool cg_has_assignment;
    asg_parts cg_assignment;
};

/* A deleted topic whose offsets are still being removed from some groups. */
typedef struct removed_topic {
    struct removed_topic *next;
    uint32_t hash;
    uint32_t epoch; /* groups whose topic_epoch is below it still have its offsets */
    char *name;
} removed_topic;

#define RT_BUCKETS 1024

struct gcoord {
    gcoord_config cfg;
    gcoord_sink sink;
    phase ph;
    int32_t epoch;        /* of the last load_begin; -1 before */
    int16_t shutdown_err; /* non-zero after gcoord_shutdown */
    gcoord_group **buckets;
    int32_t n_buckets;
    int n_groups;
    int64_t n_offsets_total;
    uint64_t id_counter;
    int64_t next_deadline;
    int64_t next_retention_check;
    /* snapshot accounting: records appended since the last snapshot */
    int64_t appended;
    /* appends in flight: a ring in issue order */
    pending **fifo;
    int fifo_cap, fifo_head, n_fifo;
    int outstanding; /* not reported done yet */
    uint64_t seq;
    pending *issuing;  /* during the sink's append call */
    pending *snapshot; /* the snapshot in flight */
    int depth;         /* 1 while an event runs */
    bool draining;
    /* topic removals */
    removed_topic **rt;
    int n_rt;
    uint32_t rt_epoch;
    int groups_behind;
    int32_t rt_cursor; /* next bucket of the groups table to visit */
    uint64_t mark;
};

/* ---- small helpers ------------------------------------------------------- */

const char *gcoord_state_name(gcoord_state s) {
    switch (s) {
    case GCOORD_EMPTY:
        return "Empty";
    case GCOORD_PREPARING_REBALANCE:
        return "PreparingRebalance";
    case GCOORD_COMPLETING_REBALANCE:
        return "CompletingRebalance";
    case GCOORD_STABLE:
        return "Stable";
    case GCOORD_DEAD:
        return "Dead";
    }
    return "Unknown";
}

int gcoord_state_parse(kstr name) {
    for (int s = GCOORD_EMPTY; s <= GCOORD_DEAD; s++) {
        const char *n = gcoord_state_name((gcoord_state)s);
        if (name.len >= 0 && (size_t)name.len == strlen(n) && strncasecmp(n, name.ptr, (size_t)name.len) == 0)
            return s;
    }
    return -1;
}

void gcoord_config_default(gcoord_config *c) {
    *c = (gcoord_config){
        .initial_rebalance_delay_ms = 3000,
        .min_session_timeout_ms = 6000,
        .max_session_timeout_ms = 1800000,
        .max_size = INT32_MAX,
        .offsets_retention_ms = 7LL * 24 * 3600 * 1000,
        .retention_check_interval_ms = 600000,
        .max_metadata_bytes = 4096,
        .snapshot_min_records = 10000,
        .id_seed = 0x5eed,
        .cg = {.session_timeout_ms = 45000,
               .heartbeat_interval_ms = 5000,
               .max_size = INT32_MAX,
               .n_assignors = 2,
               .assignors = {ASG_UNIFORM, ASG_RANGE}},
    };
}

int32_t gcoord_java_hash(kstr s) {
    /* Decode UTF-8 to code points, then hash UTF-16 units as Java does:
     * h = 31*h + unit, with int32 wrap-around. Invalid bytes count as U+FFFD. */
    uint32_t h = 0;
    const uint8_t *p = (const uint8_t *)s.ptr, *end = p + (s.len > 0 ? s.len : 0);
    while (p < end) {
        uint32_t cp;
        int n;
        if (p[0] < 0x80) {
            cp = p[0];
            n = 1;
        } else if ((p[0] & 0xe0) == 0xc0) {
            cp = p[0] & 0x1f;
            n = 2;
        } else if ((p[0] & 0xf0) == 0xe0) {
            cp = p[0] & 0x0f;
            n = 3;
        } else if ((p[0] & 0xf8) == 0xf0) {
            cp = p[0] & 0x07;
            n = 4;
        } else {
            cp = 0xfffd;
            n = 1;
        }
        if (n > 1) {
            if (end - p < n) {
                cp = 0xfffd;
                n = 1;
            } else {
                for (int i = 1; i < n; i++) {
                    if ((p[i] & 0xc0) != 0x80) {
                        cp = 0xfffd;
                        n = 1;
                        break;
                    }
                    cp = (cp << 6) | (p[i] & 0x3f);
                }
            }
        }
        p += n;
        if (cp >= 0x10000 && cp <= 0x10ffff) {
            cp -= 0x10000;
            h = 31 * h + (0xd800 + (cp >> 10));
            h = 31 * h + (0xdc00 + (cp & 0x3ff));
        } else {
            h = 31 * h + (cp > 0x10ffff ? 0xfffd : cp);
        }
    }
    return (int32_t)h;
}

int32_t gcoord_partition_for(kstr group_id, int32_t n_partitions) {
    assert(n_partitions > 0);
    int32_t h = gcoord_java_hash(group_id);
    int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    return a % n_partitions;
}

static uint32_t fnv(const void *p, size_t n, uint32_t h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static char *dupk(kstr s) {
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    if (n)
        memcpy(d, s.ptr, n);
    d[n] = '\0';
    return d;
}

static bool streq_k(const char *a, kstr b) {
    if (a == NULL)
        return b.len < 0;
    if (b.len < 0)
        return false;
    if (b.len == 0)
        return a[0] == '\0'; /* b.ptr may be NULL */
    return strlen(a) == (size_t)b.len && memcmp(a, b.ptr, (size_t)b.len) == 0;
}

static kstr ks(const char *s) { return s ? kstr_c(s) : KSTR_NULL; }

static void arm(gcoord *c, int64_t deadline) {
    if (deadline < c->next_deadline)
        c->next_deadline = deadline;
}

static void set_state(gcoord_group *g, gcoord_state s, int64_t now) {
    g->state = s;
    g->state_ts = now;
}

/* ---- groups table -------------------------------------------------------- */

static gcoord_group *find_group(const gcoord *c, kstr id) {
    if (c->n_buckets == 0 || id.len < 0)
        return NULL;
    uint32_t h = fnv(id.ptr, (size_t)id.len, 2166136261u);
    for (gcoord_group *g = c->buckets[h % (uint32_t)c->n_buckets]; g; g = g->next)
        if (g->hash == h && streq_k(g->id, id))
            return g;
    return NULL;
}

static int grow_groups(gcoord *c) {
    int32_t nb = c->n_buckets ? c->n_buckets * 2 : 64;
    gcoord_group **b = calloc((size_t)nb, sizeof *b);
    if (b == NULL)
        return -1;
    for (int32_t i = 0; i < c->n_buckets; i++) {
        gcoord_group *g = c->buckets[i];
        while (g) {
            gcoord_group *next = g->next;
            g->next = b[g->hash % (uint32_t)nb];
            b[g->hash % (uint32_t)nb] = g;
            g = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
    return 0;
}

static gcoord_group *add_group(gcoord *c, kstr id, int64_t now) {
    if (c->n_groups >= GCOORD_GROUPS_MAX || id.len < 0 || id.len > GCOORD_GROUP_ID_MAX)
        return NULL;
    if (c->n_groups >= c->n_buckets && grow_groups(c) != 0)
        return NULL;
    gcoord_group *g = calloc(1, sizeof *g);
    if (g == NULL || (g->id = dupk(id)) == NULL) {
        free(g);
        return NULL;
    }
    g->hash = fnv(id.ptr, (size_t)id.len, 2166136261u);
    g->state = GCOORD_EMPTY;
    g->state_ts = now;
    g->join_deadline = g->sync_deadline = NO_DEADLINE;
    /* A group loaded from the log may hold offsets of topics removed while
     * loading (load_end counts it); one created later has none. */
    g->topic_epoch = c->ph == PH_LOADING ? 0 : c->rt_epoch;
    uint32_t b = g->hash % (uint32_t)c->n_buckets;
    g->next = c->buckets[b];
    c->buckets[b] = g;
    c->n_groups++;
    return g;
}

static void free_member(gcoord_member *m) {
    if (m == NULL)
        return;
    assert(m->join_token == NULL && m->sync_token == NULL);
    free(m->member_id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    for (int i = 0; i < m->n_protocols; i++) {
        free(m->protocols[i].name);
        free(m->protocols[i].metadata);
    }
    free(m->protocols);
    free(m->assignment);
    free(m);
}

static void free_offsets(gcoord *c, gcoord_group *g) {
    for (int32_t i = 0; i < g->n_obuckets; i++) {
        gcoord_offset_entry *e = g->obuckets[i];
        while (e) {
            gcoord_offset_entry *n = e->next;
            free(e->topic);
            free(e->metadata);
            free(e);
            e = n;
        }
    }
    free(g->obuckets);
    c->n_offsets_total -= g->n_offsets;
    g->obuckets = NULL;
    g->n_obuckets = g->n_offsets = 0;
}

/* Unlinks and frees a group (its parked requests must be answered, no
 * append in flight may point at it). */
static void remove_group(gcoord *c, gcoord_group *g) {
    assert(g->n_inflight == 0);
    uint32_t b = g->hash % (uint32_t)c->n_buckets;
    gcoord_group **pp = &c->buckets[b];
    while (*pp != g)
        pp = &(*pp)->next;
    *pp = g->next;
    c->n_groups--;
    if (g->topic_epoch < c->rt_epoch && c->ph != PH_LOADING)
        c->groups_behind--; /* (while loading it is counted at the end) */
    for (int i = 0; i < g->n_members; i++)
        free_member(g->members[i]);
    free(g->members);
    for (int i = 0; i < g->n_pending; i++)
        free(g->pending[i].member_id);
    free(g->pending);
    free_offsets(c, g);
    free(g->id);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    free(g->meta_value);
    cg_destroy(g->cg);
    free(g);
}

/* An Empty group with nothing left (no members, offsets, stored metadata or
 * writes in flight) goes. */
static void maybe_drop(gcoord *c, gcoord_group *g) {
    if (g->state == GCOORD_EMPTY && g->n_members == 0 && g->n_pending == 0 && g->n_offsets == 0 &&
        g->meta_value == NULL && g->n_inflight == 0 && (g->cg == NULL || g->cg->n_store == 0))
        remove_group(c, g);
}

/* ---- offsets table ------------------------------------------------------- */

static uint32_t offset_hash(kstr topic, int32_t partition) {
    uint32_t h = fnv(topic.ptr, topic.len > 0 ? (size_t)topic.len : 0, 2166136261u);
    return fnv(&partition, sizeof partition, h);
}

static gcoord_offset_entry *find_offset(const gcoord_group *g, kstr topic, int32_t partition) {
    if (g->n_obuckets == 0)
        return NULL;
    uint32_t h = offset_hash(topic, partition);
    for (gcoord_offset_entry *e = g->obuckets[h % (uint32_t)g->n_obuckets]; e; e = e->next)
        if (e->hash == h && e->partition == partition && streq_k(e->topic, topic))
            return e;
    return NULL;
}

static gcoord_offset_entry *upsert_offset(gcoord *c, gcoord_group *g, kstr topic, int32_t partition) {
    gcoord_offset_entry *e = find_offset(g, topic, partition);
    if (e)
        return e;
    if (c->n_offsets_total >= GCOORD_OFFSETS_MAX)
        return NULL;
    if (g->n_offsets >= g->n_obuckets) {
        int32_t nb = g->n_obuckets ? g->n_obuckets * 2 : 8;
        gcoord_offset_entry **b = calloc((size_t)nb, sizeof *b);
        if (b == NULL)
            return NULL;
        for (int32_t i = 0; i < g->n_obuckets; i++) {
            gcoord_offset_entry *x = g->obuckets[i];
            while (x) {
                gcoord_offset_entry *n = x->next;
                x->next = b[x->hash % (uint32_t)nb];
                b[x->hash % (uint32_t)nb] = x;
                x = n;
            }
        }
        free(g->obuckets);
        g->obuckets = b;
        g->n_obuckets = nb;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->topic = dupk(topic)) == NULL) {
        free(e);
        return NULL;
    }
    e->hash = offset_hash(topic, partition);
    e->partition = partition;
    e->leader_epoch = -1;
    e->expire_ts = -1;
    uint32_t b = e->hash % (uint32_t)g->n_obuckets;
    e->next = g->obuckets[b];
    g->obuckets[b] = e;
    g->n_offsets++;
    c->n_offsets_total++;
    return e;
}

static void delete_offset(gcoord *c, gcoord_group *g, gcoord_offset_entry *e) {
    gcoord_offset_entry **pp = &g->obuckets[e->hash % (uint32_t)g->n_obuckets];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e->topic);
    free(e->metadata);
    free(e);
    g->n_offsets--;
    c->n_offsets_total--;
}

/* ---- removed topics ------------------------------------------------------- */

static removed_topic *find_removed(const gcoord *c, kstr topic) {
    if (c->n_rt == 0 || topic.len < 0)
        return NULL;
    uint32_t h = fnv(topic.ptr, (size_t)topic.len, 2166136261u);
    for (removed_topic *r = c->rt[h % RT_BUCKETS]; r; r = r->next)
        if (r->hash == h && streq_k(r->name, topic))
            return r;
    return NULL;
}

/* Does g still hold offsets of a topic removed after its last catch-up? */
static bool removed_for(const gcoord *c, const gcoord_group *g, kstr topic) {
    if (g->topic_epoch >= c->rt_epoch)
        return false;
    const removed_topic *r = find_removed(c, topic);
    return r != NULL && r->epoch > g->topic_epoch;
}

static void clear_removed(gcoord *c) {
    for (int i = 0; c->rt && i < RT_BUCKETS; i++)
        while (c->rt[i]) {
            removed_topic *r = c->rt[i];
            c->rt[i] = r->next;
            free(r->name);
            free(r);
        }
    c->n_rt = 0;
}

/* ---- the FIFO of appends in flight --------------------------------------- */

static pending *fifo_at(const gcoord *c, int i) { return c->fifo[(c->fifo_head + i) % c->fifo_cap]; }

static int fifo_push(gcoord *c, pending *p) {
    if (c->n_fifo == c->fifo_cap) {
        int nc = c->fifo_cap ? c->fifo_cap * 2 : 16;
        pending **nf = malloc((size_t)nc * sizeof *nf);
        if (nf == NULL)
            return -1;
        for (int i = 0; i < c->n_fifo; i++)
            nf[i] = fifo_at(c, i);
        free(c->fifo);
        c->fifo = nf;
        c->fifo_cap = nc;
        c->fifo_head = 0;
    }
    c->fifo[(c->fifo_head + c->n_fifo++) % c->fifo_cap] = p;
    return 0;
}

static pending *fifo_pop_head(gcoord *c) {
    assert(c->n_fifo > 0);
    pending *p = c->fifo[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
    c->n_fifo--;
    return p;
}

static void fifo_pop_tail(gcoord *c, pending *p) {
    assert(c->n_fifo > 0 && fifo_at(c, c->n_fifo - 1) == p);
    (void)p;
    c->n_fifo--;
}

/* A pending with a copy of recs (none for snapshots: they are neither
 * replayed nor included in a later snapshot). NULL on OOM. */
static pending *pend_new(pend_kind kind, const gcoord_record *recs, int n) {
    size_t bytes = 0;
    if (kind != PK_SNAPSHOT) {
        bytes = (size_t)n * sizeof(gcoord_record);
        for (int i = 0; i < n; i++)
            bytes += (size_t)recs[i].key.len + (size_t)(recs[i].value.len > 0 ? recs[i].value.len : 0);
    }
    pending *p = calloc(1, sizeof *p + bytes);
    if (p == NULL)
        return NULL;
    p->kind = kind;
    if (kind == PK_SNAPSHOT)
        return p;
    p->recs = (gcoord_record *)(p + 1);
    p->n_recs = n;
    uint8_t *b = (uint8_t *)(p->recs + n);
    for (int i = 0; i < n; i++) {
        memcpy(b, recs[i].key.ptr, (size_t)recs[i].key.len);
        p->recs[i].key = (kbytes){b, recs[i].key.len};
        b += recs[i].key.len;
        if (recs[i].value.len < 0) {
            p->recs[i].value = KBYTES_NULL;
            continue;
        }
        if (recs[i].value.len > 0)
            memcpy(b, recs[i].value.ptr, (size_t)recs[i].value.len);
        p->recs[i].value = (kbytes){b, recs[i].value.len};
        b += recs[i].value.len;
    }
    return p;
}

static void pend_free(pending *p) {
    while (p) {
        pending *next = p->next;
        pend_free(p->adopted);
        free(p->errs);
        free(p->member_id);
        free(p->old_member_id);
        free(p->instance_id);
        asg_parts_free(&p->cg_assignment);
        free(p);
        p = next;
    }
}

/* Kafka's mapping of an append error to what an OffsetCommit answers. */
static int16_t commit_error(int16_t e) {
    switch (e) {
    case KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION:
    case KAFKA_ERR_NOT_ENOUGH_REPLICAS:
    case KAFKA_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case KAFKA_ERR_REQUEST_TIMED_OUT:
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    case KAFKA_ERR_NOT_LEADER_OR_FOLLOWER:
    case KAFKA_ERR_KAFKA_STORAGE_ERROR:
        return KAFKA_ERR_NOT_COORDINATOR;
    case KAFKA_ERR_MESSAGE_TOO_LARGE:
    case KAFKA_ERR_RECORD_LIST_TOO_LARGE:
    case KAFKA_ERR_INVALID_FETCH_SIZE:
        return KAFKA_ERR_INVALID_COMMIT_OFFSET_SIZE;
    default:
        return e;
    }
}

/* ... and to what a request that stored group metadata or tombstones answers. */
static int16_t store_error(int16_t e) {
    switch (e) {
    case KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION:
    case KAFKA_ERR_NOT_ENOUGH_REPLICAS:
    case KAFKA_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    case KAFKA_ERR_NOT_LEADER_OR_FOLLOWER:
    case KAFKA_ERR_KAFKA_STORAGE_ERROR:
        return KAFKA_ERR_NOT_COORDINATOR;
    case KAFKA_ERR_REQUEST_TIMED_OUT:
        return KAFKA_ERR_REBALANCE_IN_PROGRESS;
    case KAFKA_ERR_MESSAGE_TOO_LARGE:
    case KAFKA_ERR_RECORD_LIST_TOO_LARGE:
    case KAFKA_ERR_INVALID_FETCH_SIZE:
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    default:
        return e;
    }
}

/* Hands recs to the owner. Returns the pending (in the FIFO; its outcome
 * comes later, or has come already inside the call) or NULL with *err (the
 * owner's error, unmapped) when nothing was written: the outstanding limit,
 * no memory, or the owner refused. */
static pending *issue(gcoord *c, pend_kind kind, gcoord_group *g, const gcoord_record *recs, int n,
                      int16_t *err) {
    assert(c->ph == PH_ACTIVE && c->issuing == NULL && c->depth == 1);
    if (c->outstanding >= GCOORD_APPENDS_MAX) {
        *err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return NULL;
    }
    pending *p = pend_new(kind, recs, n);
    if (p == NULL || fifo_push(c, p) != 0) {
        free(p);
        *err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        return NULL;
    }
    p->seq = ++c->seq;
    p->g = g;
    if (g)
        g->n_inflight++;
    c->outstanding++;
    c->issuing = p;
    int16_t refused = 0;
    uint64_t id = c->sink.append(c->sink.ctx, recs, n, kind == PK_SNAPSHOT, &refused);
    c->issuing = NULL;
    if (id == 0) {
        if (!p->done)
            c->outstanding--;
        fifo_pop_tail(c, p);
        if (g)
            g->n_inflight--;
        pend_free(p);
        *err = refused ? refused : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        return NULL;
    }
    /* An outcome reported inside the call named the id it returned. */
    assert(p->id == 0 || p->id == id);
    p->id = id;
    if (kind != PK_SNAPSHOT)
        c->appended += n;
    return p;
}

/* ---- lifecycle ------------------------------------------------------------ */

gcoord *gcoord_create(const gcoord_config *cfg, const gcoord_sink *sink) {
    gcoord *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->rt = calloc(RT_BUCKETS, sizeof *c->rt);
    if (c->rt == NULL) {
        free(c);
        return NULL;
    }
    c->cfg = *cfg;
    c->sink = *sink;
    c->ph = PH_UNLOADED;
    c->epoch = -1;
    c->next_deadline = NO_DEADLINE;
    c->next_retention_check = NO_DEADLINE;
    return c;
}

static void drop_everything(gcoord *c);

void gcoord_destroy(gcoord *c) {
    if (c == NULL)
        return;
    drop_everything(c);
    free(c->buckets);
    free(c->fifo);
    free(c->rt);
    free(c);
}

bool gcoord_loading(const gcoord *c) { return c->ph == PH_LOADING; }

bool gcoord_active(const gcoord *c) { return c->ph == PH_ACTIVE && c->shutdown_err == 0; }

int32_t gcoord_epoch(const gcoord *c) { return c->epoch; }

int gcoord_group_count(const gcoord *c) { return c->n_groups; }

const gcoord_config *gcoord_get_config(const gcoord *c) { return &c->cfg; }

int64_t gcoord_next_deadline(const gcoord *c) { return c->next_deadline; }

int gcoord_appends_outstanding(const gcoord *c) { return c->outstanding; }

/* ---- invariants ----------------------------------------------------------- */

static void check_invariants(const gcoord *c) {
    assert(c->ph == PH_UNLOADED || c->ph == PH_LOADING || c->ph == PH_ACTIVE);
    assert(c->ph == PH_ACTIVE || (c->n_fifo == 0 && c->outstanding == 0 && c->snapshot == NULL));
    assert(c->ph != PH_UNLOADED || (c->n_groups == 0 && c->n_offsets_total == 0));
    assert(c->outstanding >= 0 && c->outstanding <= c->n_fifo && c->outstanding <= GCOORD_APPENDS_MAX);
    assert(c->groups_behind >= 0 && c->groups_behind <= c->n_groups);
    assert(c->n_offsets_total >= 0 && c->n_groups >= 0 && c->appended >= 0);
    assert(c->issuing == NULL && !c->draining);
    assert(c->n_rt > 0 || c->groups_behind == 0 || c->ph == PH_LOADING);
#ifdef SLUICE_DEEP_CHECKS
    if (c->n_groups + c->n_offsets_total + c->n_fifo > DEEP_CHECK_MAX)
        return;
    int outstanding = 0, snapshots = 0;
    for (int i = 0; i < c->n_fifo; i++) {
        const pending *p = fifo_at(c, i);
        assert(p->id != 0);
        assert(i == 0 || p->seq > fifo_at(c, i - 1)->seq);
        outstanding += !p->done;
        snapshots += p->kind == PK_SNAPSHOT;
        assert(p->kind != PK_SNAPSHOT || p == c->snapshot);
    }
    assert(outstanding == c->outstanding);
    assert(snapshots == (c->snapshot != NULL));
    int groups = 0, behind = 0;
    int64_t offsets = 0;
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (const gcoord_group *g = c->buckets[b]; g; g = g->next) {
            groups++;
            assert(g->hash % (uint32_t)c->n_buckets == (uint32_t)b);
            assert(g->state != GCOORD_DEAD || g->n_inflight > 0);
            assert(!g->sync_store || g->state == GCOORD_COMPLETING_REBALANCE);
            assert(g->topic_epoch <= c->rt_epoch);
            behind += g->topic_epoch < c->rt_epoch;
            int inflight = 0;
            for (int i = 0; i < c->n_fifo; i++)
                inflight += fifo_at(c, i)->g == g;
            assert(inflight == g->n_inflight);
            bool leader_found = g->leader == NULL;
            for (int i = 0; i < g->n_members; i++) {
                const gcoord_member *m = g->members[i];
                leader_found |= g->leader && strcmp(g->leader, m->member_id) == 0;
                assert(m->join_token == NULL || g->state == GCOORD_PREPARING_REBALANCE);
                assert(m->sync_token == NULL || g->state == GCOORD_COMPLETING_REBALANCE);
                if (c->ph == PH_ACTIVE && !m->join_token && !m->sync_token)
                    assert(c->next_deadline <= m->hb_deadline);
            }
            assert(leader_found);
            if (c->ph == PH_ACTIVE) {
                if (g->state == GCOORD_PREPARING_REBALANCE)
                    assert(c->next_deadline <= g->join_deadline);
                if (g->state == GCOORD_COMPLETING_REBALANCE && !g->sync_store)
                    assert(c->next_deadline <= g->sync_deadline);
            }
            int32_t n = 0;
            for (int32_t ob = 0; ob < g->n_obuckets; ob++)
                for (const gcoord_offset_entry *e = g->obuckets[ob]; e; e = e->next)
                    n++;
            assert(n == g->n_offsets);
            offsets += n;
        }
    assert(groups == c->n_groups);
    assert(offsets == c->n_offsets_total);
    if (c->ph != PH_LOADING)
        assert(behind == c->groups_behind);
#endif
}

/* Every public event: invariants at entry; at exit the outcomes reported
 * meanwhile are completed (drain), a snapshot taken if due, invariants again. */
static void drain(gcoord *c, int64_t now);
static void maybe_snapshot(gcoord *c);

static void enter(gcoord *c) {
    assert(c->depth == 0 && "a sink callback called back into the machine");
    check_invariants(c);
    c->depth = 1;
}

static void leave(gcoord *c, int64_t now) {
    assert(c->depth == 1);
    if (c->ph == PH_ACTIVE) {
        drain(c, now);
        maybe_snapshot(c);
        drain(c, now);
        /* Topic removals continue from the next tick, at once. */
        if (c->groups_behind > 0 && c->outstanding < GCOORD_APPENDS_MAX)
            arm(c, now);
    }
    c->depth = 0;
    check_invariants(c);
}

/* ---- answering parked requests ------------------------------------------ */

static void join_error(gcoord *c, void *token, int16_t err, kstr member_id) {
    gcoord_join_result r = {.error = err,
                            .generation = -1,
                            .protocol_type = KSTR_NULL,
                            .protocol_name = KSTR_NULL,
                            .leader = kstr_c(""),
                            .member_id = member_id.len < 0 ? kstr_c("") : member_id};
    c->sink.join_done(c->sink.ctx, token, &r);
}

static void sync_answer(gcoord *c, void *token, int16_t err, const gcoord_group *g, kbytes assignment) {
    gcoord_sync_result r = {.error = err,
                            .protocol_type = err || g == NULL ? KSTR_NULL : ks(g->protocol_type),
                            .protocol_name = err || g == NULL ? KSTR_NULL : ks(g->protocol),
                            .assignment = err ? (kbytes){NULL, 0} : assignment};
    c->sink.sync_done(c->sink.ctx, token, &r);
}

/* The protocol metadata a member sent for `name`. */
static const gcoord_protocol *member_protocol(const gcoord_member *m, const char *name) {
    if (name == NULL)
        return NULL;
    for (int i = 0; i < m->n_protocols; i++)
        if (strcmp(m->protocols[i].name, name) == 0)
            return &m->protocols[i];
    return NULL;
}

/* Answers a member's parked join with the group's current generation. The
 * leader gets every member's metadata for the selected protocol. */
static void join_answer(gcoord *c, gcoord_group *g, gcoord_member *m, void *token, bool skip_assignment) {
    bool leader = g->leader && strcmp(g->leader, m->member_id) == 0;
    gcoord_join_member *list = NULL;
    int n = 0;
    if (leader && g->n_members > 0) {
        list = calloc((size_t)g->n_members, sizeof *list);
        if (list == NULL) {
            join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, ks(m->member_id));
            return;
        }
        for (int i = 0; i < g->n_members; i++) {
            const gcoord_member *o = g->members[i];
            const gcoord_protocol *p = member_protocol(o, g->protocol);
            list[n++] = (gcoord_join_member){ks(o->member_id), ks(o->instance_id),
                                             p ? (kbytes){p->metadata, p->metadata_len} : (kbytes){NULL, 0}};
        }
    }
    gcoord_join_result r = {.error = 0,
                            .generation = g->generation,
                            .protocol_type = ks(g->protocol_type),
                            .protocol_name = ks(g->protocol),
                            .leader = g->leader ? kstr_c(g->leader) : kstr_c(""),
                            .member_id = ks(m->member_id),
                            .skip_assignment = skip_assignment && leader,
                            .members = list,
                            .n_members = n};
    c->sink.join_done(c->sink.ctx, token, &r);
    free(list);
}

/* ---- persistence ------------------------------------------------------------ */

/* Encodes the group's metadata value as it stands now. */
static int encode_group_value(gcoord_group *g, arena *a, kbytes *out) {
    grec_group v = {.protocol_type = ks(g->protocol_type),
                    .generation = g->generation,
                    .protocol = ks(g->protocol),
                    .leader = ks(g->leader),
                    .state_ts = g->state_ts,
                    .n_members = g->n_members};
    if (g->n_members > 0) {
        v.members = arena_calloc(a, (size_t)g->n_members, sizeof *v.members);
        if (v.members == NULL)
            return -1;
    }
    for (int i = 0; i < g->n_members; i++) {
        const gcoord_member *m = g->members[i];
        const gcoord_protocol *p = member_protocol(m, g->protocol);
        v.members[i] = (grec_member){ks(m->member_id),
                                     ks(m->instance_id),
                                     ks(m->client_id),
                                     ks(m->client_host),
                                     m->rebalance_timeout_ms,
                                     m->session_timeout_ms,
                                     p ? (kbytes){p->metadata, p->metadata_len} : (kbytes){NULL, 0},
                                     {m->assignment, m->assignment_len}};
    }
    return grec_encode_group_value(a, &v, out);
}

/* Appends the group's metadata record as it stands now; kind says who waits
 * for it. NULL with *err (unmapped) when refused. */
static pending *store_group(gcoord *c, gcoord_group *g, pend_kind kind, int16_t *err) {
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    gcoord_record rec;
    pending *p = NULL;
    *err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    if (grec_encode_group_key(&a, kstr_c(g->id), &rec.key) == 0 &&
        encode_group_value(g, &a, &rec.value) == 0) {
        p = issue(c, kind, g, &rec, 1, err);
        if (p)
            p->generation = g->generation;
    }
    arena_reset(&a);
    return p;
}

/* A growing list of records encoded into an arena. */
typedef struct recs_builder {
    arena a;
    gcoord_record *v;
    int n, cap;
    bool oom;
} recs_builder;

static void rb_init(recs_builder *rb) {
    memset(rb, 0, sizeof *rb);
    arena_init(&rb->a, ENCODE_ARENA_LIMIT);
}

static void rb_free(recs_builder *rb) { arena_reset(&rb->a); }

static gcoord_record *rb_add(recs_builder *rb) {
    if (rb->oom)
        return NULL;
    if (rb->n == rb->cap) {
        int nc = rb->cap ? rb->cap * 2 : 16;
        gcoord_record *nv = arena_calloc(&rb->a, (size_t)nc, sizeof *nv);
        if (nv == NULL) {
            rb->oom = true;
            return NULL;
        }
        if (rb->n)
            memcpy(nv, rb->v, (size_t)rb->n * sizeof *nv);
        rb->v = nv;
        rb->cap = nc;
    }
    return &rb->v[rb->n++];
}

static void rb_offset_tombstone(recs_builder *rb, const char *group, const char *topic, int32_t partition) {
    gcoord_record *r = rb_add(rb);
    if (r == NULL)
        return;
    if (grec_encode_offset_key(&rb->a, kstr_c(group), kstr_c(topic), partition, &r->key) != 0) {
        rb->oom = true;
        return;
    }
    r->value = KBYTES_NULL;
}

static void rb_group_tombstone(recs_builder *rb, const char *group) {
    gcoord_record *r = rb_add(rb);
    if (r == NULL)
        return;
    if (grec_encode_group_key(&rb->a, kstr_c(group), &r->key) != 0) {
        rb->oom = true;
        return;
    }
    r->value = KBYTES_NULL;
}

/* Tombstones for every record key of g's consumer group. */
static void rb_cg_tombstones(recs_builder *rb, const gcoord_group *g) {
    if (g->cg == NULL)
        return;
    cg_rec_out *v;
    int n;
    if (cg_tombstones(g->cg, &rb->a, &v, &n) != 0) {
        rb->oom = true;
        return;
    }
    for (int i = 0; i < n; i++) {
        gcoord_record *r = rb_add(rb);
        if (r == NULL)
            return;
        *r = (gcoord_record){v[i].key, KBYTES_NULL};
    }
}

/* Tombstones for the offsets that commits still in flight for g write
 * (filter: only those of removed topics), so a tombstone issued now also
 * covers what they add when they complete. */
static void rb_inflight_commits(const gcoord *c, recs_builder *rb, const gcoord_group *g, bool removed_only) {
    if (g->n_inflight == 0)
        return;
    for (int i = 0; i < c->n_fifo; i++) {
        const pending *p = fifo_at(c, i);
        if (p->kind != PK_COMMIT || p->g != g || (p->done && p->err))
            continue;
        for (int j = 0; j < p->n_recs; j++) {
            grec_key k;
            if (grec_decode_key(p->recs[j].key, &k) != 0 || k.version == GREC_KEY_GROUP)
                continue;
            if (removed_only && !removed_for(c, g, k.topic))
                continue;
            gcoord_record *r = rb_add(rb);
            if (r == NULL)
                return;
            r->key = p->recs[j].key; /* lives in the pending, which outlives the call */
            r->value = KBYTES_NULL;
        }
    }
}

/* ---- applying durable records ------------------------------------------- */

/* Applies a record of append `seq` that is now durable to what the machine
 * knows is durable: offsets, and each group's stored metadata (members are
 * live state, never touched here). A record older than what an entry holds
 * (by sequence) is stale and skipped. */
static void apply_durable(gcoord *c, kbytes key, kbytes value, uint64_t seq, int64_t now) {
    int16_t cv;
    kstr cgid, cmember;
    if (key.len >= 0 && cg_decode_key(key, &cv, &cgid, &cmember) == 0) {
        /* A consumer group's record: its store is the durable state. */
        gcoord_group *cgg = find_group(c, cgid);
        if (cgg && cgg->cg && cg_store_put(cgg->cg, key, value) != 0)
            cgg->cg_stale = true;
        return;
    }
    grec_key k;
    if (key.len < 0 || grec_decode_key(key, &k) != 0)
        return;
    gcoord_group *g = find_group(c, k.group);
    if (k.version == GREC_KEY_GROUP) {
        if (g == NULL && value.len < 0)
            return;
        if (g == NULL && (g = add_group(c, k.group, now)) == NULL)
            return;
        if (g->meta_seq > seq)
            return;
        uint8_t *copy = NULL;
        if (value.len >= 0) {
            copy = malloc(value.len > 0 ? (size_t)value.len : 1);
            if (copy == NULL)
                return;
            if (value.len > 0)
                memcpy(copy, value.ptr, (size_t)value.len);
        }
        free(g->meta_value);
        g->meta_value = copy;
        g->meta_value_len = value.len >= 0 ? value.len : 0;
        g->meta_seq = seq;
        return;
    }
    if (value.len < 0) {
        gcoord_offset_entry *e = g ? find_offset(g, k.topic, k.partition) : NULL;
        if (e && e->seq < seq)
            delete_offset(c, g, e);
        return;
    }
    grec_offset v;
    if (grec_decode_offset_value(value, &v) != 0)
        return;
    if (g == NULL && (g = add_group(c, k.group, now)) == NULL)
        return;
    gcoord_offset_entry *e = find_offset(g, k.topic, k.partition);
    if (e && e->seq > seq)
        return;
    char *meta = dupk(v.metadata);
    if (meta == NULL || (e = upsert_offset(c, g, k.topic, k.partition)) == NULL) {
        free(meta);
        return;
    }
    free(e->metadata);
    e->metadata = meta;
    e->offset = v.offset;
    e->leader_epoch = v.leader_epoch;
    e->commit_ts = v.commit_ts;
    e->expire_ts = v.expire_ts;
    e->seq = seq;
}

static bool key_eq(kbytes a, kbytes b) {
    return a.len >= 0 && a.len == b.len && memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

/* A successful append supersedes, key by key, the records of failed appends
 * the snapshot in flight adopted (they are older). */
static void supersede_adopted(gcoord *c, const pending *p) {
    if (c->snapshot == NULL || c->snapshot->adopted == NULL)
        return;
    for (pending *a = c->snapshot->adopted; a; a = a->next)
        for (int i = 0; i < a->n_recs; i++)
            for (int j = 0; j < p->n_recs; j++)
                if (key_eq(a->recs[i].key, p->recs[j].key)) {
                    a->recs[i].key.len = -1; /* skipped when applied */
                    break;
                }
}

/* ---- completing appends ------------------------------------------------------ */

static void prepare_rebalance(gcoord *c, gcoord_group *g, int64_t now, const char *reason);
static gcoord_member *find_member(const gcoord_group *g, kstr id);
static gcoord_member *find_static(const gcoord_group *g, kstr instance);
static kbytes member_assignment(const gcoord_member *m);
static int rename_member(gcoord_group *g, gcoord_member *m, const char *to);

/* A member's parked request was answered: its session runs from now (it
 * was not counted while the request was parked). */
static void session_restarts(gcoord *c, gcoord_member *m, int64_t now) {
    m->hb_deadline = now + m->session_timeout_ms;
    arm(c, m->hb_deadline);
}

/* Answers the members whose SyncGroup waits in CompletingRebalance. */
static void answer_syncs(gcoord *c, gcoord_group *g, int16_t err, int64_t now) {
    for (int i = 0; i < g->n_members; i++) {
        gcoord_member *x = g->members[i];
        if (x->sync_token) {
            void *t = x->sync_token;
            x->sync_token = NULL;
            session_restarts(c, x, now);
            sync_answer(c, t, err, g, err ? (kbytes){NULL, 0} : member_assignment(x));
        }
    }
}

static void complete_static_join(gcoord *c, pending *p, bool ok) {
    gcoord_group *g = p->g;
    gcoord_member *m = find_member(g, kstr_c(p->member_id));
    if (ok) {
        if (m) {
            join_answer(c, g, m, p->token, true);
        } else {
            /* Gone meanwhile: replaced again (fenced) or expired. */
            const gcoord_member *other = find_static(g, kstr_c(p->instance_id));
            join_error(c, p->token, other ? KAFKA_ERR_FENCED_INSTANCE_ID : KAFKA_ERR_UNKNOWN_MEMBER_ID,
                       kstr_c(p->member_id));
        }
        return;
    }
    /* Not stored: the member keeps the id it had, as the log does. */
    if (m && find_member(g, kstr_c(p->old_member_id)) == NULL)
        (void)rename_member(g, m, p->old_member_id);
    join_error(c, p->token, store_error(p->err), kstr_c(""));
}

/* ---- consumer groups: state and writes ------------------------------------ */

/* A consumer group is Empty without members, else Stable for the classic
 * machinery (retention, deletion); its own state name is cgroup's. */
static void cg_sync_state(gcoord *c, gcoord_group *g, int64_t now) {
    if (g->state == GCOORD_DEAD || g->cg == NULL)
        return;
    gcoord_state st = g->cg->n_members > 0 ? GCOORD_STABLE : GCOORD_EMPTY;
    if (g->state != st)
        set_state(g, st, now);
    arm(c, cg_next_deadline(g->cg));
}

/* Back to what the log holds, once no write of the group is in flight. */
static void cg_maybe_rebuild(gcoord *c, gcoord_group *g, int64_t now) {
    if (g->cg == NULL || !g->cg_stale || g->n_inflight > 0 || g->cg_wait_snapshot)
        return;
    if (cg_rebuild(g->cg, &c->cfg.cg, now) == 0) {
        g->cg_stale = false;
        g->cg_poison = 0;
    }
    cg_sync_state(c, g, now);
}

/* Writes the records of what changed in g's consumer group (extra first,
 * e.g. the tombstone of the classic metadata it replaces). 0 with *out NULL
 * when nothing changed; an error (mapped) when the write was refused: the
 * live state then goes back to the store's. */
static int16_t cg_write(gcoord *c, gcoord_group *g, const gcoord_record *extra, int n_extra, pending **out,
                        int64_t now) {
    *out = NULL;
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    cg_rec_out *ro = NULL;
    int n = 0;
    int16_t err = 0;
    gcoord_record *recs = NULL;
    if (cg_emit(g->cg, kstr_c(g->id), &a, &ro, &n) != 0) {
        err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        goto out;
    }
    if (n + n_extra == 0)
        goto out;
    if ((recs = arena_calloc(&a, (size_t)(n + n_extra), sizeof *recs)) == NULL) {
        err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        goto out;
    }
    for (int i = 0; i < n_extra; i++)
        recs[i] = extra[i];
    for (int i = 0; i < n; i++)
        recs[n_extra + i] = (gcoord_record){ro[i].key, ro[i].value};
    if ((*out = issue(c, PK_CG, g, recs, n + n_extra, &err)) == NULL)
        err = store_error(err);
out:
    arena_reset(&a);
    if (err) {
        g->cg_stale = true;
        cg_maybe_rebuild(c, g, now);
    }
    return err;
}

/* A write after one that failed was computed from state the log does not
 * have: its heartbeat is answered with the first failure's error even if
 * it was written (the client does not act on it; the group is rebuilt from
 * what was written once no write is in flight). */
static void cg_complete(gcoord *c, pending *p, bool ok, int64_t now) {
    gcoord_group *g = p->g;
    int16_t err = ok ? 0 : store_error(p->err);
    if (g->cg == NULL) {
        /* (it became a classic group meanwhile) */
    } else if (!ok) {
        if (!g->cg_poison)
            g->cg_poison = err;
        g->cg_stale = true;
        /* The snapshot in flight holds these records: whether they are in
         * the log is known only when it is done (complete() adopts them). */
        if (p->in_snapshot && c->snapshot)
            g->cg_wait_snapshot = true;
    } else if (g->cg_poison) {
        err = g->cg_poison;
    }
    if (p->token) {
        gcoord_cg_result r = {.error = err,
                              .member_id = err ? KSTR_NULL : ks(p->member_id),
                              .member_epoch = err ? -1 : p->cg_epoch,
                              .heartbeat_interval_ms = c->cfg.cg.heartbeat_interval_ms,
                              .has_assignment = !err && p->cg_has_assignment,
                              .assignment = &p->cg_assignment};
        c->sink.cg_heartbeat_done(c->sink.ctx, p->token, &r);
        p->token = NULL;
    }
    cg_maybe_rebuild(c, g, now);
}

/* Applies and answers one append whose outcome is in, in issue order. */
static void complete(gcoord *c, pending *p, int64_t now) {
    bool ok = p->err == 0;
    gcoord_group *g = p->g;
    if (ok && p->kind != PK_SNAPSHOT) {
        for (int i = 0; i < p->n_recs; i++)
            apply_durable(c, p->recs[i].key, p->recs[i].value, p->seq, now);
        supersede_adopted(c, p);
    }
    if (g) {
        assert(g->n_inflight > 0);
        g->n_inflight--;
    }
    switch (p->kind) {
    case PK_COMMIT:
        for (int i = 0; i < p->n_errs; i++)
            if (p->errs[i] == 0 && !ok)
                p->errs[i] = commit_error(p->err);
        c->sink.commit_done(c->sink.ctx, p->token, p->errs, p->n_errs);
        maybe_drop(c, g);
        break;
    case PK_SYNC:
        /* Only if the group still waits for this store (a join or a leave
         * since then started another rebalance, which answered the syncs). */
        if (g->state == GCOORD_COMPLETING_REBALANCE && g->generation == p->generation && g->sync_store) {
            g->sync_store = false;
            if (ok) {
                set_state(g, GCOORD_STABLE, now);
                g->sync_deadline = NO_DEADLINE;
                answer_syncs(c, g, 0, now);
            } else {
                /* Not persisted: nobody may act on it; start over. */
                answer_syncs(c, g, store_error(p->err), now);
                prepare_rebalance(c, g, now, "group state could not be stored");
            }
        }
        break;
    case PK_STATIC_JOIN:
        complete_static_join(c, p, ok);
        break;
    case PK_GROUP:
    case PK_REMOVE_TOPIC:
        break;
    case PK_CG:
        cg_complete(c, p, ok, now);
        break;
    case PK_DELETE_GROUP:
        assert(g->state == GCOORD_DEAD);
        if (ok) {
            c->sink.delete_group_done(c->sink.ctx, p->token, 0);
            remove_group(c, g);
        } else {
            g->state = p->prev_state;
            g->state_ts = p->prev_state_ts;
            c->sink.delete_group_done(c->sink.ctx, p->token, store_error(p->err));
        }
        break;
    case PK_DELETE_OFFSETS:
        for (int i = 0; i < p->n_errs; i++)
            if (p->errs[i] == 0 && !ok)
                p->errs[i] = store_error(p->err);
        c->sink.delete_offsets_done(c->sink.ctx, p->token, 0, p->errs, p->n_errs);
        break;
    case PK_EXPIRE:
        if (p->group_too) {
            assert(g->state == GCOORD_DEAD);
            if (ok) {
                remove_group(c, g);
            } else {
                g->state = p->prev_state;
                g->state_ts = p->prev_state_ts;
            }
        }
        break;
    case PK_SNAPSHOT:
        assert(c->snapshot == p);
        c->snapshot = NULL;
        if (ok) {
            c->appended -= p->appended_before;
            if (c->appended < 0)
                c->appended = 0;
            /* Appends it included that failed are durable after all: apply
             * them, oldest first (the chain is newest first). */
            pending *rev = NULL;
            while (p->adopted) {
                pending *a = p->adopted;
                p->adopted = a->next;
                a->next = rev;
                rev = a;
            }
            for (pending *a = rev; a; a = a->next)
                for (int i = 0; i < a->n_recs; i++)
                    apply_durable(c, a->recs[i].key, a->recs[i].value, a->seq, now);
            p->adopted = rev;
        }
        /* Consumer groups that waited for it: the store now says whether
         * their failed writes are in the log; the live state follows. */
        for (int32_t b = 0; b < c->n_buckets; b++)
            for (gcoord_group *x = c->buckets[b]; x; x = x->next)
                if (x->cg_wait_snapshot) {
                    x->cg_wait_snapshot = false;
                    cg_maybe_rebuild(c, x, now);
                }
        break;
    }
    if (!ok && p->kind != PK_SNAPSHOT && p->in_snapshot && c->snapshot) {
        /* The snapshot in flight contains these records. */
        free(p->errs);
        p->errs = NULL;
        p->g = NULL;
        p->next = c->snapshot->adopted;
        c->snapshot->adopted = p;
        return;
    }
    pend_free(p);
}

/* Completes the appends whose outcome is in, from the oldest, stopping at
 * the first still outstanding. */
static void drain(gcoord *c, int64_t now) {
    if (c->draining)
        return;
    c->draining = true;
    while (c->ph == PH_ACTIVE && c->n_fifo > 0 && fifo_at(c, 0)->done)
        complete(c, fifo_pop_head(c), now);
    c->draining = false;
}

void gcoord_append_done(gcoord *c, uint64_t id, int16_t err, int64_t now) {
    if (c->ph != PH_ACTIVE || id == 0)
        return; /* an append of an earlier load */
    pending *p = NULL;
    for (int i = 0; i < c->n_fifo && p == NULL; i++)
        if (fifo_at(c, i)->id == id)
            p = fifo_at(c, i);
    if (p == NULL && c->issuing && c->issuing->id == 0) {
        p = c->issuing; /* reported inside the append call that returns this id */
        p->id = id;
    }
    if (p == NULL || p->done)
        return;
    p->done = true;
    p->err = err;
    c->outstanding--;
    if (c->depth > 0)
        return; /* inside a sink call: the event in progress completes it */
    enter(c);
    leave(c, now);
}

/* A snapshot rewrites every live record so the owner can drop older ones:
 * taken when the records appended since the last one outnumber twice the
 * live ones (and at least snapshot_min_records). It holds the durable state
 * and, after it, the records of every append still in flight (which it
 * follows in the log and which the owner may drop with everything before
 * it). Not while topic removals are half done (some groups still hold
 * offsets that are being deleted). */
static void maybe_snapshot(gcoord *c) {
    int64_t live = c->n_offsets_total + c->n_groups;
    if (c->ph != PH_ACTIVE || c->snapshot || c->groups_behind > 0 ||
        c->appended < c->cfg.snapshot_min_records || c->appended < 2 * live ||
        c->outstanding >= GCOORD_APPENDS_MAX)
        return;
    /* Consumer groups' records count too (walked only once a snapshot is due). */
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next)
            live += g->cg ? g->cg->n_store : 0;
    int64_t inflight = 0;
    for (int i = 0; i < c->n_fifo; i++) {
        const pending *p = fifo_at(c, i);
        if (!(p->done && p->err))
            inflight += p->n_recs;
    }
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    int64_t cap = live + inflight;
    gcoord_record *recs = cap > 0 ? arena_calloc(&a, (size_t)cap, sizeof *recs) : NULL;
    pending **included = c->n_fifo > 0 ? arena_calloc(&a, (size_t)c->n_fifo, sizeof *included) : NULL;
    int n = 0, n_inc = 0;
    if ((cap > 0 && recs == NULL) || (c->n_fifo > 0 && included == NULL) || cap > INT32_MAX)
        goto out;
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next) {
            if (g->meta_value) {
                if (grec_encode_group_key(&a, kstr_c(g->id), &recs[n].key) != 0)
                    goto out;
                recs[n++].value = (kbytes){g->meta_value, g->meta_value_len};
            }
            for (int32_t k = 0; g->cg && k < g->cg->n_store; k++) {
                const cg_store_rec *sr = &g->cg->store[k];
                recs[n++] = (gcoord_record){{sr->key, sr->klen}, {sr->value, sr->vlen}};
            }
            for (int32_t ob = 0; ob < g->n_obuckets; ob++)
                for (gcoord_offset_entry *e = g->obuckets[ob]; e; e = e->next) {
                    grec_offset v = {e->offset, e->leader_epoch, ks(e->metadata), e->commit_ts, e->expire_ts};
                    if (grec_encode_offset_key(&a, kstr_c(g->id), kstr_c(e->topic), e->partition,
                                               &recs[n].key) != 0 ||
                        grec_encode_offset_value(&a, &v, &recs[n].value) != 0)
                        goto out;
                    n++;
                }
        }
    for (int i = 0; i < c->n_fifo; i++) {
        pending *p = fifo_at(c, i);
        if (p->done && p->err)
            continue; /* known not written */
        included[n_inc++] = p;
        for (int j = 0; j < p->n_recs; j++)
            recs[n++] = p->recs[j];
    }
    assert(n <= cap);
    /* Even with nothing live, an empty snapshot lets the owner drop history. */
    int16_t err;
    int64_t before = c->appended;
    pending *s = issue(c, PK_SNAPSHOT, NULL, recs, n, &err);
    if (s) {
        s->appended_before = before;
        c->snapshot = s;
        for (int i = 0; i < n_inc; i++)
            included[i]->in_snapshot = true;
    }
out:
    arena_reset(&a);
}

/* Answers a request waiting for an append that will never be completed. */
static void abandon(gcoord *c, pending *p, int16_t err) {
    switch (p->kind) {
    case PK_COMMIT:
        for (int i = 0; i < p->n_errs; i++)
            if (p->errs[i] == 0)
                p->errs[i] = err;
        c->sink.commit_done(c->sink.ctx, p->token, p->errs, p->n_errs);
        break;
    case PK_STATIC_JOIN:
        join_error(c, p->token, err, kstr_c(""));
        break;
    case PK_DELETE_GROUP:
        c->sink.delete_group_done(c->sink.ctx, p->token, err);
        break;
    case PK_DELETE_OFFSETS:
        c->sink.delete_offsets_done(c->sink.ctx, p->token, err, NULL, 0);
        break;
    case PK_CG:
        if (p->token) {
            gcoord_cg_result r = {.error = err, .member_id = KSTR_NULL, .member_epoch = -1};
            c->sink.cg_heartbeat_done(c->sink.ctx, p->token, &r);
        }
        break;
    default:
        break;
    }
}

/* Frees the appends in flight and every group, without answering. */
static void drop_everything(gcoord *c) {
    while (c->n_fifo > 0) {
        pending *p = fifo_pop_head(c);
        if (p->g)
            p->g->n_inflight--;
        pend_free(p);
    }
    c->outstanding = 0;
    c->snapshot = NULL;
    for (int32_t i = 0; i < c->n_buckets; i++)
        while (c->buckets[i]) {
            gcoord_group *g = c->buckets[i];
            for (int j = 0; j < g->n_members; j++)
                g->members[j]->join_token = g->members[j]->sync_token = NULL;
            remove_group(c, g);
        }
    clear_removed(c);
    c->groups_behind = 0;
    c->n_offsets_total = 0;
    c->appended = 0;
    c->next_deadline = NO_DEADLINE;
    c->next_retention_check = NO_DEADLINE;
}

/* Answers a member's parked JoinGroup and SyncGroup, if any, with err. */
static void answer_parked(gcoord *c, gcoord_group *g, gcoord_member *m, int16_t err) {
    if (m->join_token) {
        void *t = m->join_token;
        m->join_token = NULL;
        join_error(c, t, err, ks(m->member_id));
    }
    if (m->sync_token) {
        void *t = m->sync_token;
        m->sync_token = NULL;
        sync_answer(c, t, err, g, (kbytes){NULL, 0});
    }
}

/* Answers everything parked with err, then drops all state: unloaded. */
static void unload(gcoord *c, int16_t err) {
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next)
            for (int i = 0; i < g->n_members; i++)
                answer_parked(c, g, g->members[i], err);
    while (c->n_fifo > 0) {
        pending *p = fifo_pop_head(c);
        if (p->g)
            p->g->n_inflight--;
        abandon(c, p, err);
        pend_free(p);
    }
    drop_everything(c);
    c->ph = PH_UNLOADED;
}

/* ---- loading ------------------------------------------------------------------ */

static gcoord_member *member_from_record(const grec_member *rm, kstr protocol) {
    gcoord_member *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->member_id = dupk(rm->member_id);
    m->instance_id = rm->instance_id.len >= 0 ? dupk(rm->instance_id) : NULL;
    m->client_id = dupk(rm->client_id);
    m->client_host = dupk(rm->client_host);
    m->session_timeout_ms = rm->session_timeout_ms;
    m->rebalance_timeout_ms = rm->rebalance_timeout_ms;
    m->protocols = calloc(1, sizeof *m->protocols);
    if (m->protocols)
        m->n_protocols = 1;
    bool ok = m->member_id && m->client_id && m->client_host && m->protocols &&
              (rm->instance_id.len < 0 || m->instance_id);
    if (ok && protocol.len >= 0) {
        m->protocols[0].name = dupk(protocol);
        size_t sl = rm->subscription.len > 0 ? (size_t)rm->subscription.len : 0;
        m->protocols[0].metadata = malloc(sl ? sl : 1);
        ok = m->protocols[0].name && m->protocols[0].metadata;
        if (ok) {
            if (sl)
                memcpy(m->protocols[0].metadata, rm->subscription.ptr, sl);
            m->protocols[0].metadata_len = (int32_t)sl;
        }
    } else if (ok) {
        m->n_protocols = 0;
    }
    size_t al = rm->assignment.len > 0 ? (size_t)rm->assignment.len : 0;
    m->assignment = malloc(al ? al : 1);
    if (m->assignment && al)
        memcpy(m->assignment, rm->assignment.ptr, al);
    m->assignment_len = (int32_t)al;
    if (!ok || m->assignment == NULL) {
        free_member(m);
        return NULL;
    }
    m->synced = true;
    return m;
}

static void clear_members(gcoord_group *g) {
    for (int i = 0; i < g->n_members; i++)
        free_member(g->members[i]);
    g->n_members = 0;
}

static int load_group_value(gcoord_group *g, kbytes value) {
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    grec_group v;
    int rc = -1;
    if (grec_decode_group_value(value, &a, &v) != 0 || v.n_members > GCOORD_MEMBERS_MAX)
        goto out;
    clear_members(g);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    g->protocol_type = v.protocol_type.len > 0 ? dupk(v.protocol_type) : NULL;
    g->protocol = v.protocol.len >= 0 ? dupk(v.protocol) : NULL;
    g->leader = v.leader.len >= 0 ? dupk(v.leader) : NULL;
    g->generation = v.generation;
    g->state_ts = v.state_ts;
    if (v.n_members > g->cap_members) {
        gcoord_member **nm = realloc(g->members, (size_t)v.n_members * sizeof *nm);
        if (nm == NULL)
            goto out;
        g->members = nm;
        g->cap_members = v.n_members;
    }
    for (int32_t i = 0; i < v.n_members; i++) {
        gcoord_member *m = member_from_record(&v.members[i], v.protocol);
        if (m == NULL)
            goto out;
        g->members[g->n_members++] = m;
    }
    uint8_t *copy = malloc((size_t)value.len);
    if (copy == NULL)
        goto out;
    memcpy(copy, value.ptr, (size_t)value.len);
    free(g->meta_value);
    g->meta_value = copy;
    g->meta_value_len = value.len;
    rc = 0;
out:
    /* A leader the members do not include (a damaged or partly read
     * record) is no leader. */
    if (g->leader && find_member(g, kstr_c(g->leader)) == NULL) {
        free(g->leader);
        g->leader = NULL;
    }
    arena_reset(&a);
    return rc;
}

bool gcoord_load_begin(gcoord *c, int32_t epoch, int64_t now) {
    (void)now;
    if (c->shutdown_err || (c->epoch >= 0 && epoch < c->epoch) || (c->ph != PH_UNLOADED && epoch == c->epoch))
        return false;
    enter(c);
    if (c->ph != PH_UNLOADED)
        unload(c, KAFKA_ERR_NOT_COORDINATOR);
    c->epoch = epoch;
    c->ph = PH_LOADING;
    leave(c, now);
    return true;
}

int gcoord_load_record(gcoord *c, kbytes key, kbytes value) {
    if (c->ph != PH_LOADING)
        return -1;
    int16_t cv;
    kstr cgid, cmember;
    if (cg_decode_key(key, &cv, &cgid, &cmember) == 0) {
        /* A consumer group's record: kept in its store, replayed at the end. */
        if (cgid.len > GCOORD_GROUP_ID_MAX || cmember.len > GCOORD_ID_MAX)
            return -1;
        c->appended++;
        gcoord_group *cg = find_group(c, cgid);
        if (cg == NULL && value.len < 0)
            return 0;
        if (cg == NULL && (cg = add_group(c, cgid, 0)) == NULL)
            return -1;
        if (cg->cg == NULL && (cg->cg = cg_create()) == NULL)
            return -1;
        return cg_store_put(cg->cg, key, value);
    }
    grec_key k;
    if (grec_decode_key(key, &k) != 0 || k.group.len > GCOORD_GROUP_ID_MAX)
        return -1;
    c->appended++;
    gcoord_group *g = find_group(c, k.group);
    if (k.version == GREC_KEY_GROUP) {
        if (value.len < 0) {
            if (g) {
                /* A deleted group: its offsets had their own tombstones,
                 * but drop whatever the metadata described. */
                clear_members(g);
                free(g->meta_value);
                g->meta_value = NULL;
                if (g->n_offsets == 0 && (g->cg == NULL || g->cg->n_store == 0))
                    remove_group(c, g);
            }
            return 0;
        }
        if (g == NULL && (g = add_group(c, k.group, 0)) == NULL)
            return -1;
        return load_group_value(g, value);
    }
    if (value.len < 0) {
        gcoord_offset_entry *e = g ? find_offset(g, k.topic, k.partition) : NULL;
        if (e) {
            delete_offset(c, g, e);
            if (g->n_offsets == 0 && g->meta_value == NULL && (g->cg == NULL || g->cg->n_store == 0))
                remove_group(c, g);
        }
        return 0;
    }
    grec_offset v;
    if (grec_decode_offset_value(value, &v) != 0)
        return -1;
    if (g == NULL && (g = add_group(c, k.group, 0)) == NULL)
        return -1;
    gcoord_offset_entry *e = upsert_offset(c, g, k.topic, k.partition);
    if (e == NULL)
        return -1;
    char *meta = dupk(v.metadata);
    if (meta == NULL)
        return -1;
    free(e->metadata);
    e->metadata = meta;
    e->offset = v.offset;
    e->leader_epoch = v.leader_epoch;
    e->commit_ts = v.commit_ts;
    e->expire_ts = v.expire_ts;
    e->seq = 0;
    return 0;
}

void gcoord_load_end(gcoord *c, int64_t now) {
    if (c->ph != PH_LOADING)
        return;
    enter(c);
    c->groups_behind = 0;
    /* Consumer groups: the live state from their records; one whose records
     * were all deleted is a consumer group no more. */
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b], *next; g; g = next) {
            next = g->next;
            if (g->cg && g->cg->n_store == 0) {
                cg_destroy(g->cg);
                g->cg = NULL;
                if (g->n_offsets == 0 && g->meta_value == NULL && g->n_members == 0) {
                    remove_group(c, g);
                    continue;
                }
            }
            if (g->cg && cg_rebuild(g->cg, &c->cfg.cg, now) != 0)
                g->cg_stale = true;
            if (g->cg && g->cg->n_members == 0 && g->n_members > 0) {
                /* Classic members after the consumer group's end (its
                 * tombstones did not all land): the group is classic. */
                cg_destroy(g->cg);
                g->cg = NULL;
                g->cg_stale = false;
            }
        }
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next) {
            if (g->cg) {
                g->state = g->cg->n_members > 0 ? GCOORD_STABLE : GCOORD_EMPTY;
                arm(c, cg_next_deadline(g->cg));
            } else if (g->n_members > 0) {
                g->state = GCOORD_STABLE;
                for (int i = 0; i < g->n_members; i++) {
                    g->members[i]->hb_deadline = now + g->members[i]->session_timeout_ms;
                    arm(c, g->members[i]->hb_deadline);
                }
            } else {
                g->state = GCOORD_EMPTY;
                free(g->protocol);
                g->protocol = NULL;
                free(g->leader);
                g->leader = NULL;
            }
            if (g->state_ts <= 0)
                g->state_ts = now;
            /* Topics removed while loading still have offsets in what was read. */
            if (c->n_rt == 0)
                g->topic_epoch = c->rt_epoch;
            c->groups_behind += g->topic_epoch < c->rt_epoch;
        }
    if (c->groups_behind > 0)
        arm(c, now);
    else
        clear_removed(c);
    c->ph = PH_ACTIVE;
    c->next_retention_check = now + c->cfg.retention_check_interval_ms;
    arm(c, c->next_retention_check);
    leave(c, now);
}

bool gcoord_unload(gcoord *c, int32_t epoch, int64_t now) {
    if (c->ph == PH_UNLOADED || (epoch >= 0 && epoch < c->epoch))
        return false;
    enter(c);
    unload(c, KAFKA_ERR_NOT_COORDINATOR);
    leave(c, now);
    return true;
}

void gcoord_shutdown(gcoord *c, int16_t error) {
    enter(c);
    if (c->ph != PH_UNLOADED)
        unload(c, error);
    c->shutdown_err = error;
    leave(c, 0);
}

/* ---- members ------------------------------------------------------------------ */

static gcoord_member *find_member(const gcoord_group *g, kstr id) {
    for (int i = 0; i < g->n_members; i++)
        if (streq_k(g->members[i]->member_id, id))
            return g->members[i];
    return NULL;
}

static gcoord_member *find_static(const gcoord_group *g, kstr instance) {
    if (instance.len < 0)
        return NULL;
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->instance_id && streq_k(g->members[i]->instance_id, instance))
            return g->members[i];
    return NULL;
}

static int find_pending(const gcoord_group *g, kstr id) {
    for (int i = 0; i < g->n_pending; i++)
        if (streq_k(g->pending[i].member_id, id))
            return i;
    return -1;
}

static void remove_pending(gcoord_group *g, int i) {
    free(g->pending[i].member_id);
    g->pending[i] = g->pending[--g->n_pending];
}

/* A static member's instance is bound to another member id: fenced. */
static bool fenced(const gcoord_group *g, kstr member_id, kstr instance) {
    const gcoord_member *m = find_static(g, instance);
    return m != NULL && !streq_k(m->member_id, member_id);
}

static int set_protocols(gcoord_member *m, const gcoord_join_req *req) {
    gcoord_protocol *p = calloc((size_t)(req->n_protocols ? req->n_protocols : 1), sizeof *p);
    if (p == NULL)
        return -1;
    int n = 0;
    for (int i = 0; i < req->n_protocols; i++, n++) {
        size_t ml = req->protocol_metadata[i].len > 0 ? (size_t)req->protocol_metadata[i].len : 0;
        p[i].name = dupk(req->protocol_names[i]);
        p[i].metadata = malloc(ml ? ml : 1);
        if (p[i].name == NULL || p[i].metadata == NULL) {
            n++;
            goto err;
        }
        if (ml)
            memcpy(p[i].metadata, req->protocol_metadata[i].ptr, ml);
        p[i].metadata_len = (int32_t)ml;
    }
    for (int i = 0; i < m->n_protocols; i++) {
        free(m->protocols[i].name);
        free(m->protocols[i].metadata);
    }
    free(m->protocols);
    m->protocols = p;
    m->n_protocols = n;
    m->session_timeout_ms = req->session_timeout_ms;
    m->rebalance_timeout_ms = req->rebalance_timeout_ms;
    return 0;
err:
    for (int i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].metadata);
    }
    free(p);
    return -1;
}

/* True when the member's protocols equal the request's (names, order, bytes). */
static bool same_protocols(const gcoord_member *m, const gcoord_join_req *req) {
    if (m->n_protocols != req->n_protocols)
        return false;
    for (int i = 0; i < m->n_protocols; i++) {
        const gcoord_protocol *p = &m->protocols[i];
        kbytes b = req->protocol_metadata[i];
        int32_t bl = b.len > 0 ? b.len : 0;
        if (!streq_k(p->name, req->protocol_names[i]) || p->metadata_len != bl ||
            (bl && memcmp(p->metadata, b.ptr, (size_t)bl) != 0))
            return false;
    }
    return true;
}

static gcoord_member *new_member(gcoord *c, gcoord_group *g, const gcoord_join_req *req, const char *id) {
    if (g->n_members == g->cap_members) {
        int nc = g->cap_members ? g->cap_members * 2 : 4;
        gcoord_member **nm = realloc(g->members, (size_t)nc * sizeof *nm);
        if (nm == NULL)
            return NULL;
        g->members = nm;
        g->cap_members = nc;
    }
    gcoord_member *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->member_id = strdup(id);
    m->instance_id = req->instance_id.len >= 0 ? dupk(req->instance_id) : NULL;
    m->client_id = dupk(req->client_id);
    m->client_host = dupk(req->client_host);
    if (m->member_id == NULL || m->client_id == NULL || m->client_host == NULL ||
        (req->instance_id.len >= 0 && m->instance_id == NULL) || set_protocols(m, req) != 0) {
        free_member(m);
        return NULL;
    }
    (void)c;
    g->members[g->n_members++] = m;
    if (g->leader == NULL)
        g->leader = strdup(m->member_id);
    return m;
}

/* Removes member i (its parked requests answered with err if any). */
static void drop_member(gcoord *c, gcoord_group *g, gcoord_member *m, int16_t err) {
    answer_parked(c, g, m, err);
    int i = 0;
    while (g->members[i] != m)
        i++;
    memmove(&g->members[i], &g->members[i + 1], (size_t)(g->n_members - i - 1) * sizeof *g->members);
    g->n_members--;
    if (g->leader && strcmp(g->leader, m->member_id) == 0) {
        free(g->leader);
        g->leader = g->n_members > 0 ? strdup(g->members[0]->member_id) : NULL;
    }
    free_member(m);
}

static void make_member_id(gcoord *c, kstr prefix, char *out, size_t n) {
    uint64_t x = c->cfg.id_seed + 0x9e3779b97f4a7c15ULL * ++c->id_counter;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    int pl = prefix.len > 0 ? (prefix.len > 200 ? 200 : prefix.len) : 0;
    snprintf(out, n, "%.*s-%016llx-%04llx", pl, pl ? prefix.ptr : "", (unsigned long long)x,
             (unsigned long long)(c->id_counter & 0xffff));
}

/* Protocol selection: among protocols every member supports, each member
 * votes for the first of its own list; most votes wins (ties: the earliest
 * in the first member's preference). */
static char *select_protocol(const gcoord_group *g) {
    if (g->n_members == 0)
        return NULL;
    const gcoord_member *first = g->members[0];
    int best = -1, best_votes = -1;
    for (int i = 0; i < first->n_protocols; i++) {
        const char *name = first->protocols[i].name;
        bool all = true;
        for (int j = 1; j < g->n_members && all; j++)
            all = member_protocol(g->members[j], name) != NULL;
        if (!all)
            continue;
        int votes = 0;
        for (int j = 0; j < g->n_members; j++) {
            const gcoord_member *m = g->members[j];
            for (int k = 0; k < m->n_protocols; k++) {
                const char *pn = m->protocols[k].name;
                bool cand = true;
                for (int x = 0; x < g->n_members && cand; x++)
                    cand = member_protocol(g->members[x], pn) != NULL;
                if (cand) {
                    if (strcmp(pn, name) == 0)
                        votes++;
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best_votes = votes;
            best = i;
        }
    }
    return best >= 0 ? strdup(first->protocols[best].name) : NULL;
}

/* Can a member with these protocols join? The type must match and at least
 * one protocol must be supported by every other member. */
static bool supports(const gcoord_group *g, const gcoord_join_req *req, const gcoord_member *self) {
    if (req->protocol_type.len <= 0 || req->n_protocols == 0)
        return false;
    int others = g->n_members - (self ? 1 : 0);
    if (others == 0)
        return true;
    if (g->protocol_type && !streq_k(g->protocol_type, req->protocol_type))
        return false;
    for (int i = 0; i < req->n_protocols; i++) {
        char *name = dupk(req->protocol_names[i]);
        bool all = name != NULL;
        for (int j = 0; j < g->n_members && all; j++)
            if (g->members[j] != self)
                all = member_protocol(g->members[j], name) != NULL;
        free(name);
        if (all)
            return true;
    }
    return false;
}

static int32_t max_rebalance_timeout(const gcoord_group *g) {
    int32_t t = 0;
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->rebalance_timeout_ms > t)
            t = g->members[i]->rebalance_timeout_ms;
    return t;
}

/* ---- rebalancing ---------------------------------------------------------------- */

static void complete_join(gcoord *c, gcoord_group *g, int64_t now);

static kstr ks_or_null(const char *s) { return s ? kstr_c(s) : KSTR_NULL; }

static void emit(gcoord *c, const gcoord_event *ev) {
    if (c->sink.event)
        c->sink.event(c->sink.ctx, ev);
}

static void prepare_rebalance(gcoord *c, gcoord_group *g, int64_t now, const char *reason) {
    emit(c, &(gcoord_event){.kind = GCOORD_EV_REBALANCE_START,
                            .group_id = kstr_c(g->id),
                            .generation = g->generation,
                            .n_members = g->n_members,
                            .protocol_type = ks_or_null(g->protocol_type),
                            .reason = reason,
                            .from = g->state});
    if (g->state == GCOORD_COMPLETING_REBALANCE) {
        /* Members waiting for the assignment must rejoin. */
        for (int i = 0; i < g->n_members; i++) {
            gcoord_member *m = g->members[i];
            if (m->sync_token) {
                void *t = m->sync_token;
                m->sync_token = NULL;
                session_restarts(c, m, now);
                sync_answer(c, t, KAFKA_ERR_REBALANCE_IN_PROGRESS, g, (kbytes){NULL, 0});
            }
        }
    }
    g->sync_deadline = NO_DEADLINE;
    g->sync_store = false; /* a store in flight no longer decides anything */
    bool initial = g->state == GCOORD_EMPTY;
    set_state(g, GCOORD_PREPARING_REBALANCE, now);
    int32_t rt = max_rebalance_timeout(g);
    if (initial && c->cfg.initial_rebalance_delay_ms > 0) {
        int32_t d = c->cfg.initial_rebalance_delay_ms < rt ? c->cfg.initial_rebalance_delay_ms : rt;
        g->join_deadline = now + d;
        g->initial_delay_end = now + rt;
    } else {
        g->join_deadline = now + rt;
        g->initial_delay_end = 0;
    }
    arm(c, g->join_deadline);
}

static bool all_joined(const gcoord_group *g) {
    if (g->n_pending > 0)
        return false;
    for (int i = 0; i < g->n_members; i++)
        if (g->members[i]->join_token == NULL)
            return false;
    return true;
}

/* In PreparingRebalance: completes the join phase if everyone is in (and
 * the initial delay is not running). */
static void maybe_complete_join(gcoord *c, gcoord_group *g, int64_t now) {
    if (g->state == GCOORD_PREPARING_REBALANCE && g->initial_delay_end == 0 && all_joined(g))
        complete_join(c, g, now);
}

static void complete_join(gcoord *c, gcoord_group *g, int64_t now) {
    assert(g->state == GCOORD_PREPARING_REBALANCE);
    g->join_deadline = NO_DEADLINE;
    g->initial_delay_end = 0;
    /* Members that did not rejoin in time are out. */
    for (int i = g->n_members - 1; i >= 0; i--)
        if (g->members[i]->join_token == NULL)
            drop_member(c, g, g->members[i], KAFKA_ERR_UNKNOWN_MEMBER_ID);
    g->generation++;
    free(g->protocol);
    g->protocol = NULL;
    if (g->n_members == 0) {
        set_state(g, GCOORD_EMPTY, now);
        emit(c, &(gcoord_event){.kind = GCOORD_EV_REBALANCE_DONE,
                                .group_id = kstr_c(g->id),
                                .generation = g->generation,
                                .protocol_type = ks_or_null(g->protocol_type),
                                .protocol = KSTR_NULL,
                                .leader = KSTR_NULL});
        int16_t err;
        (void)store_group(c, g, PK_GROUP, &err); /* no one waits for it; a reload may see the older one */
        return;
    }
    g->protocol = select_protocol(g);
    /* The leader stays if it rejoined; otherwise the earliest member. */
    if (g->leader == NULL || find_member(g, kstr_c(g->leader)) == NULL) {
        free(g->leader);
        g->leader = strdup(g->members[0]->member_id);
    }
    set_state(g, GCOORD_COMPLETING_REBALANCE, now);
    emit(c, &(gcoord_event){.kind = GCOORD_EV_REBALANCE_DONE,
                            .group_id = kstr_c(g->id),
                            .generation = g->generation,
                            .n_members = g->n_members,
                            .protocol_type = ks_or_null(g->protocol_type),
                            .protocol = ks_or_null(g->protocol),
                            .leader = ks_or_null(g->leader)});
    g->sync_deadline = now + max_rebalance_timeout(g);
    arm(c, g->sync_deadline);
    for (int i = 0; i < g->n_members; i++) {
        gcoord_member *m = g->members[i];
        void *t = m->join_token;
        m->join_token = NULL;
        m->synced = false;
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
        m->hb_deadline = now + m->session_timeout_ms;
        arm(c, m->hb_deadline);
        join_answer(c, g, m, t, false);
    }
}

/* ---- JoinGroup ------------------------------------------------------------------- */

/* The phase's answer to any request, 0 when loaded. */
static int16_t phase_error(const gcoord *c) {
    if (c->shutdown_err)
        return c->shutdown_err;
    if (c->ph == PH_LOADING)
        return KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    if (c->ph == PH_UNLOADED)
        return KAFKA_ERR_NOT_COORDINATOR;
    return 0;
}

static int16_t check_common(const gcoord *c, kstr group_id) {
    if (c->shutdown_err)
        return c->shutdown_err;
    if (group_id.len <= 0)
        return KAFKA_ERR_INVALID_GROUP_ID;
    return phase_error(c);
}

static bool join_req_sane(const gcoord_join_req *req) {
    if (req->member_id.len > GCOORD_ID_MAX || req->instance_id.len > GCOORD_ID_MAX ||
        req->client_id.len > GCOORD_ID_MAX || req->client_host.len > GCOORD_ID_MAX ||
        req->protocol_type.len > GCOORD_ID_MAX || req->group_id.len > GCOORD_GROUP_ID_MAX ||
        req->n_protocols > GCOORD_PROTOCOLS_MAX)
        return false;
    for (int i = 0; i < req->n_protocols; i++)
        if (req->protocol_names[i].len < 0 || req->protocol_names[i].len > GCOORD_ID_MAX ||
            req->protocol_metadata[i].len > GCOORD_METADATA_MAX)
            return false;
    return true;
}

/* Gives member m the id `to` (the leader's id follows). -1 on OOM. */
static int rename_member(gcoord_group *g, gcoord_member *m, const char *to) {
    char *id = strdup(to);
    bool leader = g->leader && strcmp(g->leader, m->member_id) == 0;
    char *lid = leader ? strdup(to) : NULL;
    if (id == NULL || (leader && lid == NULL)) {
        free(id);
        free(lid);
        return -1;
    }
    free(m->member_id);
    m->member_id = id;
    if (leader) {
        free(g->leader);
        g->leader = lid;
    }
    return 0;
}

/* A static member rejoins with an unknown member id: it takes over the
 * instance's membership under a new id (the old id is fenced). */
static void join_static_replace(gcoord *c, gcoord_group *g, gcoord_member *m, const gcoord_join_req *req,
                                void *token, int64_t now) {
    char id[GCOORD_ID_MAX + 64];
    make_member_id(c, req->instance_id, id, sizeof id);
    char *new_copy = strdup(id), *old_copy = strdup(m->member_id), *inst_copy = dupk(req->instance_id);
    if (new_copy == NULL || old_copy == NULL || inst_copy == NULL || rename_member(g, m, id) != 0) {
        free(new_copy);
        free(old_copy);
        free(inst_copy);
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
        return;
    }
    if (m->join_token) {
        void *t = m->join_token;
        m->join_token = NULL;
        join_error(c, t, KAFKA_ERR_FENCED_INSTANCE_ID, kstr_c(old_copy));
    }
    if (m->sync_token) {
        void *t = m->sync_token;
        m->sync_token = NULL;
        sync_answer(c, t, KAFKA_ERR_FENCED_INSTANCE_ID, g, (kbytes){NULL, 0});
    }
    bool protocols_changed = !same_protocols(m, req);
    if (set_protocols(m, req) != 0) {
        (void)rename_member(g, m, old_copy);
        free(new_copy);
        free(old_copy);
        free(inst_copy);
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
        return;
    }
    m->hb_deadline = now + m->session_timeout_ms;
    arm(c, m->hb_deadline);
    if (g->state == GCOORD_STABLE) {
        char *next = select_protocol(g);
        bool same = next && g->protocol && strcmp(next, g->protocol) == 0;
        free(next);
        if (same || !protocols_changed) {
            /* No rebalance: persist the new id and, once it is stored, hand
             * back the current generation (the leader learns the members
             * but keeps the assignment it has). */
            int16_t err;
            pending *p = store_group(c, g, PK_STATIC_JOIN, &err);
            if (p == NULL) {
                /* Not stored: the member keeps the id the log knows. */
                (void)rename_member(g, m, old_copy);
                free(new_copy);
                free(old_copy);
                free(inst_copy);
                join_error(c, token, store_error(err), kstr_c(""));
                return;
            }
            p->token = token;
            p->member_id = new_copy;
            p->old_member_id = old_copy;
            p->instance_id = inst_copy;
            return;
        }
    }
    free(new_copy);
    free(old_copy);
    free(inst_copy);
    switch (g->state) {
    case GCOORD_STABLE:
        m->join_token = token;
        prepare_rebalance(c, g, now, "static member rejoined with new protocols");
        maybe_complete_join(c, g, now);
        return;
    case GCOORD_COMPLETING_REBALANCE:
        m->join_token = token;
        prepare_rebalance(c, g, now, "static member replaced during a rebalance");
        maybe_complete_join(c, g, now);
        return;
    case GCOORD_PREPARING_REBALANCE:
        m->join_token = token;
        maybe_complete_join(c, g, now);
        return;
    default:
        assert(0 && "a group with members is never Empty or Dead");
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
    }
}

static void join_new(gcoord *c, gcoord_group *g, const gcoord_join_req *req, void *token, int64_t now) {
    gcoord_member *sm = find_static(g, req->instance_id);
    if (sm) {
        join_static_replace(c, g, sm, req, token, now);
        return;
    }
    int64_t size = (int64_t)g->n_members + g->n_pending;
    if (size >= c->cfg.max_size || size >= GCOORD_MEMBERS_MAX) {
        join_error(c, token, KAFKA_ERR_GROUP_MAX_SIZE_REACHED, req->member_id);
        return;
    }
    char id[GCOORD_ID_MAX + 64];
    make_member_id(c, req->instance_id.len >= 0 ? req->instance_id : req->client_id, id, sizeof id);
    if (req->require_known_member_id && req->instance_id.len < 0) {
        /* KIP-394: the member must come back with this id. */
        if (g->n_pending == g->cap_pending) {
            int nc = g->cap_pending ? g->cap_pending * 2 : 4;
            gcoord_pending *np = realloc(g->pending, (size_t)nc * sizeof *np);
            if (np == NULL) {
                join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
                return;
            }
            g->pending = np;
            g->cap_pending = nc;
        }
        char *pid = strdup(id);
        if (pid == NULL) {
            join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
            return;
        }
        g->pending[g->n_pending++] = (gcoord_pending){pid, now + req->session_timeout_ms};
        arm(c, now + req->session_timeout_ms);
        join_error(c, token, KAFKA_ERR_MEMBER_ID_REQUIRED, kstr_c(id));
        return;
    }
    bool first = g->n_members == 0;
    gcoord_member *m = new_member(c, g, req, id);
    if (m == NULL) {
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
        return;
    }
    if (first) {
        free(g->protocol_type);
        g->protocol_type = dupk(req->protocol_type);
    }
    m->join_token = token;
    m->hb_deadline = now + m->session_timeout_ms;
    if (g->state != GCOORD_PREPARING_REBALANCE)
        prepare_rebalance(c, g, now, "member joined");
    else if (g->initial_delay_end > 0)
        g->new_member_added = true;
    maybe_complete_join(c, g, now);
}

static void join_known(gcoord *c, gcoord_group *g, const gcoord_join_req *req, void *token, int64_t now) {
    int pi = find_pending(g, req->member_id);
    if (pi >= 0) {
        remove_pending(g, pi);
        char id[GCOORD_ID_MAX + 1];
        snprintf(id, sizeof id, "%.*s", req->member_id.len, req->member_id.ptr);
        bool first = g->n_members == 0;
        gcoord_member *m = new_member(c, g, req, id);
        if (m == NULL) {
            join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
            return;
        }
        if (first) {
            free(g->protocol_type);
            g->protocol_type = dupk(req->protocol_type);
        }
        m->join_token = token;
        m->hb_deadline = now + m->session_timeout_ms;
        if (g->state != GCOORD_PREPARING_REBALANCE)
            prepare_rebalance(c, g, now, "member joined");
        else if (g->initial_delay_end > 0)
            g->new_member_added = true;
        maybe_complete_join(c, g, now);
        return;
    }
    if (fenced(g, req->member_id, req->instance_id)) {
        join_error(c, token, KAFKA_ERR_FENCED_INSTANCE_ID, req->member_id);
        return;
    }
    gcoord_member *m = find_member(g, req->member_id);
    if (m == NULL || g->state == GCOORD_EMPTY || g->state == GCOORD_DEAD) {
        join_error(c, token, KAFKA_ERR_UNKNOWN_MEMBER_ID, req->member_id);
        return;
    }
    m->hb_deadline = now + m->session_timeout_ms;
    arm(c, m->hb_deadline);
    bool is_leader = g->leader && strcmp(g->leader, m->member_id) == 0;
    switch (g->state) {
    case GCOORD_PREPARING_REBALANCE:
        break;
    case GCOORD_COMPLETING_REBALANCE:
        if (same_protocols(m, req)) {
            /* A repeated join (lost response): same answer again. */
            join_answer(c, g, m, token, false);
            return;
        }
        break;
    case GCOORD_STABLE:
        if (!is_leader && same_protocols(m, req)) {
            join_answer(c, g, m, token, false);
            return;
        }
        break;
    default:
        break;
    }
    if (set_protocols(m, req) != 0) {
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
        return;
    }
    if (m->join_token) {
        /* A second join while one is parked: the older one gives way. */
        void *t = m->join_token;
        m->join_token = NULL;
        join_error(c, t, KAFKA_ERR_REBALANCE_IN_PROGRESS, ks(m->member_id));
    }
    m->join_token = token;
    if (g->state != GCOORD_PREPARING_REBALANCE)
        prepare_rebalance(c, g, now, "member rejoined");
    maybe_complete_join(c, g, now);
}

/* Writes tombstones for every record of g's (memberless) consumer group and
 * makes it a classic group. 0 or a mapped error (nothing changed). */
static int16_t cg_to_classic(gcoord *c, gcoord_group *g) {
    recs_builder rb;
    rb_init(&rb);
    rb_cg_tombstones(&rb, g);
    int16_t err = rb.oom ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : 0;
    if (err == 0 && rb.n > 0 && issue(c, PK_GROUP, g, rb.v, rb.n, &err) == NULL)
        err = store_error(err);
    rb_free(&rb);
    if (err == 0) {
        cg_destroy(g->cg);
        g->cg = NULL;
        g->cg_stale = false;
        g->cg_poison = 0;
        g->cg_wait_snapshot = false;
    }
    return err;
}

static void join_event(gcoord *c, const gcoord_join_req *req, void *token, int64_t now) {
    int16_t err = check_common(c, req->group_id);
    if (err == 0 && !join_req_sane(req))
        err = KAFKA_ERR_INVALID_REQUEST;
    if (err == 0 && (req->session_timeout_ms < c->cfg.min_session_timeout_ms ||
                     req->session_timeout_ms > c->cfg.max_session_timeout_ms))
        err = KAFKA_ERR_INVALID_SESSION_TIMEOUT;
    if (err) {
        join_error(c, token, err, req->member_id);
        return;
    }
    bool unknown = req->member_id.len <= 0;
    gcoord_group *g = find_group(c, req->group_id);
    if (g && g->state == GCOORD_DEAD) {
        /* Being deleted: the client retries and finds it gone. */
        join_error(c, token, KAFKA_ERR_COORDINATOR_NOT_AVAILABLE, req->member_id);
        return;
    }
    if (g == NULL) {
        if (!unknown) {
            join_error(c, token, KAFKA_ERR_UNKNOWN_MEMBER_ID, req->member_id);
            return;
        }
        if ((g = add_group(c, req->group_id, now)) == NULL) {
            join_error(c, token, KAFKA_ERR_COORDINATOR_NOT_AVAILABLE, req->member_id);
            return;
        }
    }
    if (g->cg && g->cg->n_members == 0 && !g->cg_stale && unknown) {
        /* An Empty consumer group becomes a classic group (its records get
         * tombstones; committed offsets stay). */
        int16_t err = cg_to_classic(c, g);
        if (err) {
            join_error(c, token, err, req->member_id);
            return;
        }
    }
    gcoord_member *self = unknown ? find_static(g, req->instance_id) : find_member(g, req->member_id);
    if (g->cg || !supports(g, req, self)) {
        join_error(c, token, KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL, req->member_id);
        maybe_drop(c, g); /* the group this join created, if nothing else holds it */
        return;
    }
    if (unknown)
        join_new(c, g, req, token, now);
    else
        join_known(c, g, req, token, now);
}

/* ---- SyncGroup ---------------------------------------------------------------------- */
/* ---- SyncGroup ---------------------------------------------------------------------- */

static kbytes member_assignment(const gcoord_member *m) { return (kbytes){m->assignment, m->assignment_len}; }

/* The leader's assignment list sorted by member id (length first), then by
 * position, so each member's entry is found in log time and the first entry
 * for a member wins, as in a front-to-back scan. A client sends the list,
 * so it may be long: matching every member against every entry would hold
 * the shard for seconds. */
typedef struct assign_ref {
    kstr id;
    int idx;
} assign_ref;

static int cmp_id(kstr x, kstr y) {
    if (x.len != y.len)
        return x.len < y.len ? -1 : 1;
    return x.len > 0 ? memcmp(x.ptr, y.ptr, (size_t)x.len) : 0;
}

static int cmp_assign_ref(const void *a, const void *b) {
    const assign_ref *x = a, *y = b;
    int c = cmp_id(x->id, y->id);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* NULL when there is nothing to sort or no memory (then lookups scan). */
static assign_ref *sort_assignments(const gcoord_sync_req *req) {
    if (req->n_assign <= 0)
        return NULL;
    assign_ref *refs = malloc((size_t)req->n_assign * sizeof *refs);
    if (refs == NULL)
        return NULL;
    for (int j = 0; j < req->n_assign; j++)
        refs[j] = (assign_ref){req->assign_member[j], j};
    qsort(refs, (size_t)req->n_assign, sizeof *refs, cmp_assign_ref);
    return refs;
}

static kbytes find_assignment(const gcoord_sync_req *req, const assign_ref *refs, const char *member_id) {
    if (refs == NULL) {
        for (int j = 0; j < req->n_assign; j++)
            if (streq_k(member_id, req->assign_member[j]))
                return req->assign_bytes[j];
        return (kbytes){NULL, 0};
    }
    kstr key = kstr_c(member_id);
    int lo = 0, hi = req->n_assign; /* first entry not below key */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cmp_id(refs[mid].id, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < req->n_assign && cmp_id(refs[lo].id, key) == 0)
        return req->assign_bytes[refs[lo].idx];
    return (kbytes){NULL, 0};
}

static void sync_event(gcoord *c, const gcoord_sync_req *req, void *token, int64_t now) {
    int16_t err = check_common(c, req->group_id);
    gcoord_group *g = err ? NULL : find_group(c, req->group_id);
    gcoord_member *m = NULL;
    if (err == 0 && g == NULL)
        err = KAFKA_ERR_UNKNOWN_MEMBER_ID;
    if (err == 0 && fenced(g, req->member_id, req->instance_id))
        err = KAFKA_ERR_FENCED_INSTANCE_ID;
    if (err == 0 && (m = find_member(g, req->member_id)) == NULL)
        err = KAFKA_ERR_UNKNOWN_MEMBER_ID;
    if (err == 0 && req->generation != g->generation)
        err = KAFKA_ERR_ILLEGAL_GENERATION;
    if (err == 0 && ((req->protocol_type.len >= 0 && !streq_k(g->protocol_type, req->protocol_type)) ||
                     (req->protocol_name.len >= 0 && !streq_k(g->protocol, req->protocol_name))))
        err = KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (err == 0) {
        switch (g->state) {
        case GCOORD_EMPTY:
            err = KAFKA_ERR_UNKNOWN_MEMBER_ID;
            break;
        case GCOORD_PREPARING_REBALANCE:
            err = KAFKA_ERR_REBALANCE_IN_PROGRESS;
            break;
        case GCOORD_DEAD:
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
            break;
        case GCOORD_STABLE:
            m->synced = true;
            m->hb_deadline = now + m->session_timeout_ms;
            arm(c, m->hb_deadline);
            sync_answer(c, token, 0, g, member_assignment(m));
            return;
        case GCOORD_COMPLETING_REBALANCE:
            break;
        }
    }
    if (err) {
        sync_answer(c, token, err, g, (kbytes){NULL, 0});
        return;
    }
    assert(g->state == GCOORD_COMPLETING_REBALANCE);
    if (m->sync_token) {
        void *t = m->sync_token;
        m->sync_token = NULL;
        sync_answer(c, t, KAFKA_ERR_REBALANCE_IN_PROGRESS, g, (kbytes){NULL, 0});
    }
    m->sync_token = token;
    m->synced = true;
    m->hb_deadline = now + m->session_timeout_ms;
    arm(c, m->hb_deadline);
    if (g->leader == NULL || strcmp(g->leader, m->member_id) != 0 || g->sync_store)
        return; /* a follower, or the leader again while its assignment is being stored */
    /* The leader brought the assignment: take it (members it left out get
     * an empty one), persist the generation, and once that is done answer
     * everyone. */
    assign_ref *refs = sort_assignments(req);
    for (int i = 0; i < g->n_members; i++) {
        gcoord_member *x = g->members[i];
        kbytes a = find_assignment(req, refs, x->member_id);
        size_t al = a.len > 0 ? (size_t)a.len : 0;
        if (al > GCOORD_METADATA_MAX)
            al = 0;
        uint8_t *copy = malloc(al ? al : 1);
        if (copy == NULL)
            continue;
        if (al)
            memcpy(copy, a.ptr, al);
        free(x->assignment);
        x->assignment = copy;
        x->assignment_len = (int32_t)al;
    }
    free(refs);
    int16_t serr;
    if (store_group(c, g, PK_SYNC, &serr) == NULL) {
        /* Not persisted: nobody may act on it; start over. */
        answer_syncs(c, g, store_error(serr), now);
        prepare_rebalance(c, g, now, "group state could not be stored");
        return;
    }
    g->sync_store = true; /* completed in complete() */
}

void gcoord_join(gcoord *c, const gcoord_join_req *req, void *token, int64_t now) {
    enter(c);
    join_event(c, req, token, now);
    leave(c, now);
}

void gcoord_sync(gcoord *c, const gcoord_sync_req *req, void *token, int64_t now) {
    enter(c);
    sync_event(c, req, token, now);
    leave(c, now);
}

/* ---- Heartbeat and LeaveGroup --------------------------------------------------------- */

static int16_t heartbeat_event(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int32_t generation,
                               int64_t now) {
    int16_t err = check_common(c, group_id);
    if (err)
        return err;
    gcoord_group *g = find_group(c, group_id);
    if (g == NULL)
        return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    if (fenced(g, member_id, instance_id))
        return KAFKA_ERR_FENCED_INSTANCE_ID;
    gcoord_member *m = find_member(g, member_id);
    if (m == NULL || g->state == GCOORD_EMPTY)
        return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    if (g->state == GCOORD_DEAD)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (generation != g->generation)
        return KAFKA_ERR_ILLEGAL_GENERATION;
    m->hb_deadline = now + m->session_timeout_ms;
    arm(c, m->hb_deadline);
    return g->state == GCOORD_PREPARING_REBALANCE ? KAFKA_ERR_REBALANCE_IN_PROGRESS : 0;
}

int16_t gcoord_heartbeat(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int32_t generation,
                         int64_t now) {
    enter(c);
    int16_t err = heartbeat_event(c, group_id, member_id, instance_id, generation, now);
    leave(c, now);
    return err;
}

/* After a member is gone: rebalance (or finish the join phase). */
static void after_removal(gcoord *c, gcoord_group *g, int64_t now, const char *reason) {
    switch (g->state) {
    case GCOORD_STABLE:
    case GCOORD_COMPLETING_REBALANCE:
        prepare_rebalance(c, g, now, reason);
        maybe_complete_join(c, g, now);
        break;
    case GCOORD_PREPARING_REBALANCE:
        maybe_complete_join(c, g, now);
        break;
    default:
        break;
    }
}

static int16_t leave_event(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int16_t *group_err,
                           int64_t now) {
    *group_err = check_common(c, group_id);
    if (*group_err)
        return *group_err;
    gcoord_group *g = find_group(c, group_id);
    if (g == NULL)
        return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    gcoord_member *m;
    if (instance_id.len >= 0) {
        m = find_static(g, instance_id);
        if (m == NULL)
            return KAFKA_ERR_UNKNOWN_MEMBER_ID;
        if (member_id.len > 0 && !streq_k(m->member_id, member_id))
            return KAFKA_ERR_FENCED_INSTANCE_ID;
    } else {
        int pi = find_pending(g, member_id);
        if (pi >= 0) {
            remove_pending(g, pi);
            maybe_complete_join(c, g, now);
            return 0;
        }
        m = find_member(g, member_id);
        if (m == NULL)
            return KAFKA_ERR_UNKNOWN_MEMBER_ID;
    }
    drop_member(c, g, m, KAFKA_ERR_UNKNOWN_MEMBER_ID);
    after_removal(c, g, now, "member left");
    return 0;
}

int16_t gcoord_leave(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int16_t *group_err,
                     int64_t now) {
    enter(c);
    int16_t err = leave_event(c, group_id, member_id, instance_id, group_err, now);
    leave(c, now);
    return err;
}

/* ---- offsets ------------------------------------------------------------------------ */

/* ---- topic removal ----------------------------------------------------------------- */

/* Drops g's offsets of topics removed since its last catch-up and adds
 * their tombstones (and those of commits in flight for them) to rb; marks
 * it caught up. A Dead group's own tombstones cover every offset it has, so
 * it only drops them. Returns the offsets examined. */
static int64_t catch_up_group(gcoord *c, gcoord_group *g, recs_builder *rb) {
    assert(g->topic_epoch < c->rt_epoch);
    int64_t examined = g->n_offsets;
    if (g->state != GCOORD_DEAD)
        rb_inflight_commits(c, rb, g, true);
    for (int32_t b = 0; b < g->n_obuckets; b++) {
        gcoord_offset_entry **pp = &g->obuckets[b];
        while (*pp) {
            gcoord_offset_entry *e = *pp;
            if (!removed_for(c, g, kstr_c(e->topic))) {
                pp = &e->next;
                continue;
            }
            if (g->state != GCOORD_DEAD)
                rb_offset_tombstone(rb, g->id, e->topic, e->partition);
            *pp = e->next;
            free(e->topic);
            free(e->metadata);
            free(e);
            g->n_offsets--;
            c->n_offsets_total--;
        }
    }
    g->topic_epoch = c->rt_epoch;
    c->groups_behind--;
    return examined;
}

static void removal_finished(gcoord *c) {
    if (c->groups_behind == 0 && c->ph == PH_ACTIVE)
        clear_removed(c);
}

/* Before a write for g that must follow its removal tombstones in the log:
 * catch it up. 0, or the (unmapped) error of a refused tombstone append. */
static int16_t catch_up(gcoord *c, gcoord_group *g) {
    if (g->topic_epoch >= c->rt_epoch)
        return 0;
    recs_builder rb;
    rb_init(&rb);
    /* Built without touching the group first, so a refusal leaves it as it was. */
    int16_t err = 0;
    rb_inflight_commits(c, &rb, g, true);
    for (int32_t b = 0; b < g->n_obuckets && !rb.oom; b++)
        for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next)
            if (removed_for(c, g, kstr_c(e->topic)))
                rb_offset_tombstone(&rb, g->id, e->topic, e->partition);
    if (rb.oom) {
        err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    } else if (rb.n == 0 || issue(c, PK_REMOVE_TOPIC, NULL, rb.v, rb.n, &err) != NULL) {
        recs_builder scratch;
        rb_init(&scratch);
        catch_up_group(c, g, &scratch);
        rb_free(&scratch);
        removal_finished(c);
    }
    rb_free(&rb);
    return err;
}

/* One bounded step of the pending removals: visits groups from the cursor,
 * catches up those behind, writes their tombstones in one append. */
static void removal_step(gcoord *c, int64_t now) {
    if (c->ph != PH_ACTIVE || c->groups_behind == 0 || c->n_buckets == 0)
        return;
    if (c->outstanding >= GCOORD_APPENDS_MAX)
        return; /* an outcome will come and re-arm */
    recs_builder rb;
    rb_init(&rb);
    /* First pass: collect without changing anything. */
    int64_t examined = 0;
    int visited = 0;
    int32_t b = c->rt_cursor % c->n_buckets, end = b;
    int32_t stop = -1; /* the first bucket not handled */
    do {
        for (gcoord_group *g = c->buckets[b]; g; g = g->next) {
            visited++;
            if (g->topic_epoch >= c->rt_epoch)
                continue;
            examined += g->n_offsets;
            if (g->state != GCOORD_DEAD) {
                rb_inflight_commits(c, &rb, g, true);
                for (int32_t ob = 0; ob < g->n_obuckets; ob++)
                    for (gcoord_offset_entry *e = g->obuckets[ob]; e; e = e->next)
                        if (removed_for(c, g, kstr_c(e->topic)))
                            rb_offset_tombstone(&rb, g->id, e->topic, e->partition);
            }
        }
        b = (b + 1) % c->n_buckets;
        if (visited >= GCOORD_REMOVE_STEP_GROUPS || examined >= GCOORD_REMOVE_STEP_OFFSETS) {
            stop = b;
            break;
        }
    } while (b != end);
    if (stop < 0)
        stop = end;
    int16_t err;
    if (!rb.oom && (rb.n == 0 || issue(c, PK_REMOVE_TOPIC, NULL, rb.v, rb.n, &err) != NULL)) {
        /* Second pass over the same buckets: drop what the append deletes. */
        recs_builder scratch;
        rb_init(&scratch);
        int32_t x = c->rt_cursor % c->n_buckets;
        do {
            for (gcoord_group *g = c->buckets[x]; g; g = g->next)
                if (g->topic_epoch < c->rt_epoch)
                    catch_up_group(c, g, &scratch);
            x = (x + 1) % c->n_buckets;
        } while (x != stop);
        rb_free(&scratch);
        c->rt_cursor = stop;
        removal_finished(c);
    }
    rb_free(&rb);
    if (c->groups_behind > 0)
        arm(c, now);
}

int16_t gcoord_remove_topic(gcoord *c, kstr topic, int64_t now) {
    if (c->shutdown_err || c->ph == PH_UNLOADED)
        return KAFKA_ERR_NOT_COORDINATOR;
    if (topic.len < 0)
        return KAFKA_ERR_INVALID_REQUEST;
    enter(c);
    int16_t err = 0;
    removed_topic *r = find_removed(c, topic);
    if (r == NULL) {
        if (c->n_rt >= GCOORD_REMOVED_TOPICS_MAX) {
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
            goto out;
        }
        r = calloc(1, sizeof *r);
        if (r == NULL || (r->name = dupk(topic)) == NULL) {
            free(r);
            err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            goto out;
        }
        r->hash = fnv(topic.ptr, (size_t)topic.len, 2166136261u);
        r->next = c->rt[r->hash % RT_BUCKETS];
        c->rt[r->hash % RT_BUCKETS] = r;
        c->n_rt++;
    }
    /* Every group is behind this removal (a group created from now on has
     * no offsets of the old topic). */
    r->epoch = ++c->rt_epoch;
    if (c->ph == PH_ACTIVE) {
        c->groups_behind = c->n_groups;
        removal_step(c, now);
        removal_finished(c); /* at once when there are no groups */
    }
out:
    leave(c, now);
    return err;
}

/* ---- offsets ------------------------------------------------------------------------ */

/* ---- ConsumerGroupHeartbeat ------------------------------------------------------------ */

static void cg_answer(gcoord *c, void *token, int16_t err, const char *msg) {
    gcoord_cg_result r = {.error = err,
                          .message = msg,
                          .member_id = KSTR_NULL,
                          .member_epoch = -1,
                          .heartbeat_interval_ms = c->cfg.cg.heartbeat_interval_ms};
    c->sink.cg_heartbeat_done(c->sink.ctx, token, &r);
}

static void cg_heartbeat_event(gcoord *c, kstr group_id, const cg_heartbeat_req *req, const cg_topics *tv,
                               void *token, int64_t now) {
    const char *msg = NULL;
    int16_t err = check_common(c, group_id);
    if (err == KAFKA_ERR_INVALID_GROUP_ID) {
        err = KAFKA_ERR_INVALID_REQUEST;
        msg = "GroupId can't be empty.";
    }
    if (err == 0 && group_id.len > GCOORD_GROUP_ID_MAX)
        err = KAFKA_ERR_INVALID_GROUP_ID;
    if (err == 0)
        err = cg_check_request(&c->cfg.cg, req, &msg);
    gcoord_group *g = err ? NULL : find_group(c, group_id);
    gcoord_record tomb = {{NULL, 0}, KBYTES_NULL};
    int n_tomb = 0;
    arena ta;
    arena_init(&ta, 1u << 16);
    if (err == 0 && g && g->state == GCOORD_DEAD)
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (err == 0 && g && g->cg_stale) {
        cg_maybe_rebuild(c, g, now);
        if (g->cg_stale) {
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* until its writes in flight are done */
            msg = "The group's state is being restored after a failed write.";
        }
    }
    if (err == 0 && g && g->cg == NULL) {
        if (g->n_members > 0 || g->n_pending > 0 || g->state != GCOORD_EMPTY || g->n_inflight > 0) {
            err = KAFKA_ERR_GROUP_ID_NOT_FOUND;
            msg = "The group is a classic group with members.";
        } else if (req->member_epoch != 0) {
            err = KAFKA_ERR_UNKNOWN_MEMBER_ID;
        } else if (g->meta_value && grec_encode_group_key(&ta, kstr_c(g->id), &tomb.key) != 0) {
            err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        } else if ((g->cg = cg_create()) == NULL) {
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        } else {
            /* An Empty classic group becomes a consumer group: its classic
             * metadata goes (offsets stay). */
            n_tomb = g->meta_value != NULL;
            free(g->protocol_type);
            g->protocol_type = NULL;
            free(g->protocol);
            g->protocol = NULL;
            free(g->leader);
            g->leader = NULL;
        }
    }
    if (err == 0 && g == NULL) {
        if (req->member_epoch != 0)
            err = KAFKA_ERR_UNKNOWN_MEMBER_ID;
        else if ((g = add_group(c, group_id, now)) == NULL || (g->cg = cg_create()) == NULL)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (err) {
        if (err == KAFKA_ERR_UNKNOWN_MEMBER_ID && msg == NULL)
            msg = "The member is not in the group.";
        cg_answer(c, token, err, msg);
        if (g)
            maybe_drop(c, g);
        arena_reset(&ta);
        return;
    }
    char idbuf[64];
    cg_heartbeat_req r = *req;
    if (req->member_epoch == 0 && req->member_id.len <= 0) {
        make_member_id(c, kstr_c("consumer"), idbuf, sizeof idbuf);
        r.new_member_id = kstr_c(idbuf);
    }
    cg_heartbeat_res hr;
    cg_heartbeat(g->cg, &c->cfg.cg, &r, tv, now, &hr);
    if (hr.error) {
        cg_answer(c, token, hr.error, hr.message);
        if (hr.error == KAFKA_ERR_UNKNOWN_SERVER_ERROR) {
            g->cg_stale = true;
            cg_maybe_rebuild(c, g, now);
        }
        cg_sync_state(c, g, now);
        maybe_drop(c, g);
        arena_reset(&ta);
        return;
    }
    gcoord_cg_result res = {.member_id = ks(hr.member_id),
                            .member_epoch = hr.member_epoch,
                            .heartbeat_interval_ms = c->cfg.cg.heartbeat_interval_ms,
                            .has_assignment = hr.has_assignment,
                            .assignment = hr.assignment};
    char *mid = hr.member_id ? strdup(hr.member_id) : NULL;
    asg_parts asg = {0};
    if ((hr.member_id && mid == NULL) || (hr.has_assignment && asg_parts_copy(&asg, hr.assignment) != 0)) {
        free(mid);
        cg_answer(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, NULL);
        g->cg_stale = true;
        cg_maybe_rebuild(c, g, now);
        arena_reset(&ta);
        return;
    }
    pending *p = NULL;
    err = cg_write(c, g, &tomb, n_tomb, &p, now);
    arena_reset(&ta);
    if (err) {
        free(mid);
        asg_parts_free(&asg);
        cg_answer(c, token, err, NULL);
    } else if (p == NULL) {
        c->sink.cg_heartbeat_done(c->sink.ctx, token, &res);
        free(mid);
        asg_parts_free(&asg);
    } else {
        /* Answered once written (cg_complete). */
        p->token = token;
        p->member_id = mid;
        p->cg_epoch = hr.member_epoch;
        p->cg_has_assignment = hr.has_assignment;
        p->cg_assignment = asg;
    }
    cg_sync_state(c, g, now);
}

void gcoord_cg_heartbeat(gcoord *c, kstr group_id, const cg_heartbeat_req *req, const cg_topics *topics,
                         void *token, int64_t now) {
    enter(c);
    cg_heartbeat_event(c, group_id, req, topics, token, now);
    leave(c, now);
}

static int16_t *new_errs(const gcoord_commit *entries, int n) {
    int16_t *errs = calloc(n > 0 ? (size_t)n : 1, sizeof *errs);
    for (int i = 0; errs && i < n; i++)
        errs[i] = entries[i].error;
    return errs;
}

static void commit_event(gcoord *c, kstr group_id, int32_t generation, kstr member_id, kstr instance_id,
                         int64_t retention_ms, int64_t commit_ts, const gcoord_commit *entries, int n,
                         void *token, int64_t now, bool txn) {
    int16_t *errs = new_errs(entries, n);
    if (errs == NULL) {
        c->sink.commit_done(c->sink.ctx, token, NULL, n);
        return;
    }
    int16_t err = phase_error(c);
    if (err == 0 && (group_id.len < 0 || group_id.len > GCOORD_GROUP_ID_MAX))
        err = KAFKA_ERR_INVALID_GROUP_ID;
    gcoord_group *g = err ? NULL : find_group(c, group_id);
    bool created = false;
    if (err == 0 && g == NULL) {
        if (generation >= 0 && !txn)
            err = KAFKA_ERR_ILLEGAL_GENERATION;
        else if ((g = add_group(c, group_id, now)) == NULL)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        else
            created = true;
    }
    if (err == 0 && !created && txn) {
        /* A committed transaction's offsets: checked when they were sent. */
        if (g->state == GCOORD_DEAD)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    } else if (err == 0 && !created) {
        gcoord_member *m = NULL;
        if (g->state == GCOORD_DEAD)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        else if (g->cg)
            err = cg_check_commit(g->cg, member_id, generation);
        else if (fenced(g, member_id, instance_id))
            err = KAFKA_ERR_FENCED_INSTANCE_ID;
        else if (generation < 0 && g->state == GCOORD_EMPTY)
            err = 0; /* a simple consumer's commit */
        else if (g->state == GCOORD_COMPLETING_REBALANCE)
            err = KAFKA_ERR_REBALANCE_IN_PROGRESS;
        else if ((m = find_member(g, member_id)) == NULL)
            err = KAFKA_ERR_UNKNOWN_MEMBER_ID;
        else if (generation != g->generation)
            err = KAFKA_ERR_ILLEGAL_GENERATION;
        if (m && err == 0) {
            m->hb_deadline = now + m->session_timeout_ms;
            arm(c, m->hb_deadline);
        }
    }
    /* The group's removal tombstones go first, so they cannot delete what
     * this commit writes for a re-created topic. */
    if (err == 0)
        err = commit_error(catch_up(c, g));
    if (err) {
        for (int i = 0; i < n; i++)
            if (errs[i] == 0)
                errs[i] = err;
        goto answer;
    }
    if (commit_ts < 0)
        commit_ts = now;
    int64_t expire = retention_ms >= 0 ? commit_ts + retention_ms : -1;
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    gcoord_record *recs = n > 0 ? arena_calloc(&a, (size_t)n, sizeof *recs) : NULL;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const gcoord_commit *e = &entries[i];
        if (errs[i])
            continue;
        if (recs == NULL) {
            errs[i] = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        if (e->metadata.len > c->cfg.max_metadata_bytes) {
            errs[i] = KAFKA_ERR_OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        grec_offset v = {e->offset, e->leader_epoch, e->metadata.len < 0 ? kstr_c("") : e->metadata,
                         commit_ts, expire};
        if (e->topic.len < 0 ||
            grec_encode_offset_key(&a, group_id, e->topic, e->partition, &recs[k].key) != 0 ||
            grec_encode_offset_value(&a, &v, &recs[k].value) != 0) {
            errs[i] = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        k++;
    }
    pending *p = NULL;
    if (k > 0) {
        int16_t ierr;
        p = issue(c, PK_COMMIT, g, recs, k, &ierr);
        if (p == NULL)
            for (int i = 0; i < n; i++)
                if (errs[i] == 0)
                    errs[i] = commit_error(ierr);
    }
    arena_reset(&a);
    if (p) {
        /* Visible to OffsetFetch, and answered, once written (complete()). */
        p->token = token;
        p->errs = errs;
        p->n_errs = n;
        return;
    }
answer:
    c->sink.commit_done(c->sink.ctx, token, errs, n);
    free(errs);
    if (g && created)
        maybe_drop(c, g);
}

void gcoord_commit_offsets(gcoord *c, kstr group_id, int32_t generation, kstr member_id, kstr instance_id,
                           int64_t retention_ms, int64_t commit_ts, const gcoord_commit *entries, int n,
                           void *token, int64_t now) {
    enter(c);
    commit_event(c, group_id, generation, member_id, instance_id, retention_ms, commit_ts, entries, n, token,
                 now, false);
    leave(c, now);
}

void gcoord_commit_txn_offsets(gcoord *c, kstr group_id, const gcoord_commit *entries, int n, void *token,
                               int64_t now) {
    enter(c);
    commit_event(c, group_id, -1, kstr_c(""), kstr_c(""), -1, -1, entries, n, token, now, true);
    leave(c, now);
}

int16_t gcoord_fetch_offset(gcoord *c, kstr group_id, kstr topic, int32_t partition, int64_t *offset,
                            int32_t *leader_epoch, kstr *metadata) {
    *offset = -1;
    *leader_epoch = -1;
    *metadata = kstr_c("");
    int16_t err = phase_error(c);
    if (err)
        return err;
    gcoord_group *g = find_group(c, group_id);
    const gcoord_offset_entry *e = g ? find_offset(g, topic, partition) : NULL;
    if (e && !removed_for(c, g, topic)) {
        *offset = e->offset;
        *leader_epoch = e->leader_epoch;
        *metadata = kstr_c(e->metadata ? e->metadata : "");
    }
    return 0;
}

int16_t gcoord_check_fetch(const gcoord *c, kstr group_id, kstr member_id, int32_t member_epoch) {
    const gcoord_group *g = c->ph == PH_ACTIVE ? find_group(c, group_id) : NULL;
    return g && g->cg && g->state != GCOORD_DEAD ? cg_check_fetch(g->cg, member_id, member_epoch) : 0;
}

int16_t gcoord_each_offset(gcoord *c, kstr group_id, gcoord_offset_fn fn, void *ctx) {
    int16_t err = phase_error(c);
    if (err)
        return err;
    gcoord_group *g = find_group(c, group_id);
    if (g == NULL)
        return 0;
    for (int32_t b = 0; b < g->n_obuckets; b++)
        for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next)
            if (!removed_for(c, g, kstr_c(e->topic)) && !fn(ctx, e))
                return 0;
    return 0;
}

/* The topics a consumer group's members subscribe to (their metadata for
 * the group's protocol: int16 version, int32 count, int16-length names), as
 * a set built once per request: checking each partition of a request
 * against every member's subscription would be members x partitions. */
typedef struct topic_set {
    kstr *v; /* open addressing; len 0 slots are free ("" is never a topic) */
    uint32_t cap;
} topic_set;

static uint32_t kstr_hash(kstr s) { return fnv(s.ptr, s.len > 0 ? (size_t)s.len : 0, 2166136261u); }

static bool topic_set_has(const topic_set *ts, kstr t) {
    if (ts->cap == 0 || t.len <= 0)
        return false;
    for (uint32_t i = kstr_hash(t) & (ts->cap - 1);; i = (i + 1) & (ts->cap - 1)) {
        if (ts->v[i].len <= 0)
            return false;
        if (kstr_eq(ts->v[i], t))
            return true;
    }
}

/* false on OOM. */
static bool topic_set_build(topic_set *ts, const gcoord_group *g) {
    ts->v = NULL;
    ts->cap = 0;
    int64_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < g->n_members; i++) {
            const gcoord_protocol *p = member_protocol(g->members[i], g->protocol);
            if (p == NULL)
                continue;
            wire_reader r;
            wire_reader_init(&r, p->metadata, p->metadata_len > 0 ? (size_t)p->metadata_len : 0);
            (void)wire_read_i16(&r);
            int32_t n = wire_read_i32(&r);
            for (int32_t j = 0; j < n && r.err == WIRE_OK; j++) {
                kstr t = wire_read_string(&r, false, false);
                if (r.err != WIRE_OK || t.len <= 0)
                    break;
                if (pass == 0) {
                    total++;
                    continue;
                }
                uint32_t k = kstr_hash(t) & (ts->cap - 1);
                while (ts->v[k].len > 0 && !kstr_eq(ts->v[k], t))
                    k = (k + 1) & (ts->cap - 1);
                ts->v[k] = t;
            }
        }
        if (pass == 0) {
            if (total == 0)
                return true;
            uint32_t cap = 16;
            while (cap < 2 * total)
                cap *= 2;
            ts->v = calloc(cap, sizeof *ts->v);
            if (ts->v == NULL)
                return false;
            ts->cap = cap;
        }
    }
    return true;
}

static void delete_offsets_event(gcoord *c, kstr group_id, const kstr *topics, const int32_t *partitions,
                                 int n, void *token, int64_t now) {
    (void)now;
    int16_t err = check_common(c, group_id);
    gcoord_group *g = err ? NULL : find_group(c, group_id);
    if (err == 0 && (g == NULL || g->state == GCOORD_DEAD))
        err = KAFKA_ERR_GROUP_ID_NOT_FOUND;
    bool consumer = g && g->protocol_type && strcmp(g->protocol_type, "consumer") == 0;
    if (err == 0 && !consumer && g->state != GCOORD_EMPTY)
        err = KAFKA_ERR_NON_EMPTY_GROUP;
    if (err == 0)
        err = store_error(catch_up(c, g));
    if (err) {
        c->sink.delete_offsets_done(c->sink.ctx, token, err, NULL, 0);
        return;
    }
    int16_t *errs = calloc(n > 0 ? (size_t)n : 1, sizeof *errs);
    topic_set subs = {0};
    bool subs_ok = !consumer || g->state == GCOORD_EMPTY || topic_set_build(&subs, g);
    if (errs == NULL || !subs_ok) {
        free(errs);
        free(subs.v);
        c->sink.delete_offsets_done(c->sink.ctx, token, 0, NULL, n);
        return;
    }
    /* Each partition once, however often it is listed: entries are marked
     * with this call's stamp (linear, not a scan of those seen so far). */
    uint64_t stamp = ++c->mark;
    recs_builder rb;
    rb_init(&rb);
    for (int i = 0; i < n; i++) {
        if (consumer && g->state != GCOORD_EMPTY && topic_set_has(&subs, topics[i])) {
            errs[i] = KAFKA_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
            continue;
        }
        gcoord_offset_entry *e = find_offset(g, topics[i], partitions[i]);
        if (e == NULL || e->mark == stamp)
            continue;
        e->mark = stamp;
        rb_offset_tombstone(&rb, g->id, e->topic, e->partition);
    }
    free(subs.v);
    pending *p = NULL;
    int16_t ierr = rb.oom ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : 0;
    if (rb.n > 0 && !rb.oom)
        p = issue(c, PK_DELETE_OFFSETS, g, rb.v, rb.n, &ierr);
    rb_free(&rb);
    if (p) {
        /* The offsets go when the tombstones are written (complete()). */
        p->token = token;
        p->errs = errs;
        p->n_errs = n;
        return;
    }
    if (ierr)
        for (int i = 0; i < n; i++)
            if (errs[i] == 0)
                errs[i] = store_error(ierr);
    c->sink.delete_offsets_done(c->sink.ctx, token, 0, errs, n);
    free(errs);
}

void gcoord_delete_offsets(gcoord *c, kstr group_id, const kstr *topics, const int32_t *partitions, int n,
                           void *token, int64_t now) {
    enter(c);
    delete_offsets_event(c, group_id, topics, partitions, n, token, now);
    leave(c, now);
}

/* ---- admin ---------------------------------------------------------------------------- */

const gcoord_group *gcoord_find(const gcoord *c, kstr group_id) { return find_group(c, group_id); }

void gcoord_each_group(const gcoord *c, gcoord_group_fn fn, void *ctx) {
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next)
            if (g->state != GCOORD_DEAD && !fn(ctx, g))
                return;
}

/* Tombstones for every offset of g (those in memory and those commits in
 * flight will add) and, with group_too, for the group. */
static void rb_group_tombstones(const gcoord *c, recs_builder *rb, const gcoord_group *g, bool group_too) {
    for (int32_t b = 0; b < g->n_obuckets; b++)
        for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next)
            rb_offset_tombstone(rb, g->id, e->topic, e->partition);
    rb_inflight_commits(c, rb, g, false);
    if (group_too)
        rb_group_tombstone(rb, g->id);
}

static void delete_group_event(gcoord *c, kstr group_id, void *token, int64_t now) {
    /* Unlike the membership APIs, Kafka takes "" as a group id here (only
     * null is invalid): a simple consumer may have committed under it. */
    int16_t err = c->shutdown_err    ? c->shutdown_err
                  : group_id.len < 0 ? KAFKA_ERR_INVALID_GROUP_ID
                                     : phase_error(c);
    gcoord_group *g = err ? NULL : find_group(c, group_id);
    if (err == 0 && (g == NULL || g->state == GCOORD_DEAD))
        err = KAFKA_ERR_GROUP_ID_NOT_FOUND;
    if (err == 0 && (g->state != GCOORD_EMPTY || g->n_members > 0))
        err = KAFKA_ERR_NON_EMPTY_GROUP;
    if (err == 0 && g->topic_epoch < c->rt_epoch) {
        recs_builder scratch; /* its tombstones cover the removed topics' offsets too */
        rb_init(&scratch);
        catch_up_group(c, g, &scratch);
        rb_free(&scratch);
        removal_finished(c);
    }
    pending *p = NULL;
    if (err == 0) {
        recs_builder rb;
        rb_init(&rb);
        rb_group_tombstones(c, &rb, g, true);
        rb_cg_tombstones(&rb, g);
        err = rb.oom ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : 0;
        if (err == 0 && (p = issue(c, PK_DELETE_GROUP, g, rb.v, rb.n, &err)) == NULL)
            err = store_error(err);
        rb_free(&rb);
    }
    if (p == NULL) {
        c->sink.delete_group_done(c->sink.ctx, token, err);
        return;
    }
    /* Dead until the tombstones are written (complete()): requests for it
     * are refused meanwhile, so nothing can be written after them. */
    p->token = token;
    p->prev_state = g->state;
    p->prev_state_ts = g->state_ts;
    set_state(g, GCOORD_DEAD, now);
}

void gcoord_delete_group(gcoord *c, kstr group_id, void *token, int64_t now) {
    enter(c);
    delete_group_event(c, group_id, token, now);
    leave(c, now);
}

/* ---- time ------------------------------------------------------------------------------ */

/* Offsets retention (Kafka 2.1+ rules): an explicit expiry wins; a group
 * with a protocol type loses its offsets once it has been Empty for the
 * retention period; a group of simple consumers loses each offset a
 * retention period after its commit. An Empty group left with nothing is
 * removed (Dead while its tombstones are written). */
static void expire_offsets(gcoord *c, gcoord_group *g, int64_t now) {
    int64_t ret = c->cfg.offsets_retention_ms;
    if (g->state == GCOORD_DEAD || (g->n_offsets == 0 && !(g->state == GCOORD_EMPTY && g->n_members == 0)))
        return;
    bool empty_long = g->state == GCOORD_EMPTY && now - g->state_ts >= ret;
    recs_builder rb;
    rb_init(&rb);
    int nd = 0;
    for (int32_t b = 0; b < g->n_obuckets; b++)
        for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next) {
            bool expired;
            if (e->expire_ts >= 0)
                expired = e->expire_ts <= now;
            else if (g->protocol_type || g->cg)
                expired = empty_long;
            else
                expired = g->state == GCOORD_EMPTY && now - e->commit_ts >= ret;
            if (expired) {
                rb_offset_tombstone(&rb, g->id, e->topic, e->partition);
                nd++;
            }
        }
    bool drop_group = g->state == GCOORD_EMPTY && g->n_members == 0 && nd == g->n_offsets && empty_long &&
                      g->n_pending == 0 && g->n_inflight == 0;
    if (drop_group && g->meta_value)
        rb_group_tombstone(&rb, g->id);
    if (drop_group)
        rb_cg_tombstones(&rb, g);
    if (rb.oom || (rb.n == 0 && !drop_group)) {
        rb_free(&rb);
        return;
    }
    if (rb.n == 0) {
        /* Nothing durable to delete. */
        rb_free(&rb);
        remove_group(c, g);
        return;
    }
    int16_t err;
    pending *p = issue(c, PK_EXPIRE, g, rb.v, rb.n, &err);
    rb_free(&rb);
    if (p && drop_group) {
        p->group_too = true;
        p->prev_state = g->state;
        p->prev_state_ts = g->state_ts;
        g->state = GCOORD_DEAD; /* state_ts kept: a failed write returns to it */
    }
    /* Refused: tried again at the next retention check. */
}

static void tick_group(gcoord *c, gcoord_group *g, int64_t now, int64_t *next) {
    if (g->state == GCOORD_DEAD)
        return; /* only its tombstones' outcome matters now */
    if (g->cg) {
        int64_t nx = NO_DEADLINE;
        cg_maybe_rebuild(c, g, now);
        if (!g->cg_stale && cg_tick(g->cg, &c->cfg.cg, now, &nx)) {
            pending *p;
            (void)cg_write(c, g, NULL, 0, &p, now); /* refused: rebuilt from the store, fenced again later */
            cg_sync_state(c, g, now);
            int64_t d = cg_next_deadline(g->cg);
            nx = d < nx ? d : nx;
        }
        if (nx < *next)
            *next = nx;
        return;
    }
    /* Pending (MEMBER_ID_REQUIRED) members that never came back. */
    for (int i = g->n_pending - 1; i >= 0; i--)
        if (g->pending[i].deadline <= now)
            remove_pending(g, i);
    for (int i = 0; i < g->n_pending; i++)
        if (g->pending[i].deadline < *next)
            *next = g->pending[i].deadline;
    /* Session expiry: members with a parked request are kept alive. */
    bool removed = false;
    for (int i = g->n_members - 1; i >= 0; i--) {
        gcoord_member *m = g->members[i];
        if (m->join_token || m->sync_token)
            continue;
        if (m->hb_deadline <= now) {
            drop_member(c, g, m, KAFKA_ERR_UNKNOWN_MEMBER_ID);
            removed = true;
        }
    }
    if (removed)
        after_removal(c, g, now, "member session expired");
    if (g->state == GCOORD_PREPARING_REBALANCE && g->join_deadline <= now) {
        if (g->initial_delay_end > 0) {
            /* Initial delay: keep waiting while members keep arriving, but
             * never past the rebalance timeout. */
            int64_t left = g->initial_delay_end - now;
            bool arrivals = g->new_member_added;
            g->new_member_added = false;
            if (arrivals && left > 0) {
                g->join_deadline =
                    now +
                    (left < c->cfg.initial_rebalance_delay_ms ? left : c->cfg.initial_rebalance_delay_ms);
            } else {
                g->initial_delay_end = 0;
                complete_join(c, g, now);
            }
        } else {
            complete_join(c, g, now);
        }
    }
    if (g->state == GCOORD_COMPLETING_REBALANCE && g->sync_deadline <= now && !g->sync_store) {
        /* The leader never sent the assignment: members that did not sync
         * are dropped and the group rebalances. */
        for (int i = g->n_members - 1; i >= 0; i--)
            if (!g->members[i]->synced)
                drop_member(c, g, g->members[i], KAFKA_ERR_UNKNOWN_MEMBER_ID);
        prepare_rebalance(c, g, now, "the leader did not send the assignment in time");
        maybe_complete_join(c, g, now);
    }
    if (g->state == GCOORD_PREPARING_REBALANCE && g->join_deadline < *next)
        *next = g->join_deadline;
    if (g->state == GCOORD_COMPLETING_REBALANCE && !g->sync_store && g->sync_deadline < *next)
        *next = g->sync_deadline;
    for (int i = 0; i < g->n_members; i++)
        if (!g->members[i]->join_token && !g->members[i]->sync_token && g->members[i]->hb_deadline < *next)
            *next = g->members[i]->hb_deadline;
}

void gcoord_tick(gcoord *c, int64_t now) {
    if (c->ph != PH_ACTIVE || c->shutdown_err)
        return;
    if (now < c->next_deadline)
        return;
    enter(c);
    int64_t next = NO_DEADLINE;
    bool retention = now >= c->next_retention_check;
    if (retention)
        c->next_retention_check = now + c->cfg.retention_check_interval_ms;
    for (int32_t b = 0; b < c->n_buckets; b++) {
        gcoord_group *g = c->buckets[b];
        while (g) {
            gcoord_group *nextg = g->next;
            tick_group(c, g, now, &next);
            if (retention)
                expire_offsets(c, g, now);
            g = nextg;
        }
    }
    if (c->next_retention_check < next)
        next = c->next_retention_check;
    c->next_deadline = next;
    removal_step(c, now);
    leave(c, now);
}
