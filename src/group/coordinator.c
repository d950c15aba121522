/*
 * coordinator.c - the group coordinator state machine. See coordinator.h.
 *
 * Invariants (between calls):
 *   - a group is in the table iff it is not Dead;
 *   - members[] order is join order; leader is NULL or a member's id;
 *   - a member's join_token is set only in PreparingRebalance (or during the
 *     call that answers it); a sync_token only in CompletingRebalance;
 *   - n_offsets counts the entries of the group's offset table;
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

struct gcoord {
    gcoord_config cfg;
    gcoord_sink sink;
    bool loading;
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

/* Unlinks and frees a group (its parked requests must be answered). */
static void remove_group(gcoord *c, gcoord_group *g) {
    uint32_t b = g->hash % (uint32_t)c->n_buckets;
    gcoord_group **pp = &c->buckets[b];
    while (*pp != g)
        pp = &(*pp)->next;
    *pp = g->next;
    c->n_groups--;
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
    free(g);
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

/* ---- lifecycle ------------------------------------------------------------ */

gcoord *gcoord_create(const gcoord_config *cfg, const gcoord_sink *sink) {
    gcoord *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = *cfg;
    c->sink = *sink;
    c->loading = true;
    c->next_deadline = NO_DEADLINE;
    c->next_retention_check = NO_DEADLINE;
    return c;
}

void gcoord_destroy(gcoord *c) {
    if (c == NULL)
        return;
    for (int32_t i = 0; i < c->n_buckets; i++)
        while (c->buckets[i])
            remove_group(c, c->buckets[i]);
    free(c->buckets);
    free(c);
}

bool gcoord_loading(const gcoord *c) { return c->loading; }

int gcoord_group_count(const gcoord *c) { return c->n_groups; }

int64_t gcoord_next_deadline(const gcoord *c) { return c->next_deadline; }

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

static void maybe_snapshot(gcoord *c);

/* Appends records through the sink; counts them for snapshots. */
static int append(gcoord *c, const gcoord_record *recs, int n) {
    int rc = c->sink.append(c->sink.ctx, recs, n, false);
    if (rc == 0)
        c->appended += n;
    return rc;
}

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

/* Writes the group's metadata record; keeps a copy for snapshots. */
static int store_group(gcoord *c, gcoord_group *g) {
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    gcoord_record rec;
    int rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    if (grec_encode_group_key(&a, kstr_c(g->id), &rec.key) != 0 || encode_group_value(g, &a, &rec.value) != 0)
        goto out;
    uint8_t *copy = malloc((size_t)rec.value.len);
    if (copy == NULL)
        goto out;
    memcpy(copy, rec.value.ptr, (size_t)rec.value.len);
    rc = append(c, &rec, 1);
    if (rc == 0) {
        free(g->meta_value);
        g->meta_value = copy;
        g->meta_value_len = rec.value.len;
    } else {
        free(copy);
    }
out:
    arena_reset(&a);
    return rc;
}

/* Tombstones for the given offsets of g (all when topics is NULL) and,
 * with group_too, for the group itself. */
static int write_tombstones(gcoord *c, gcoord_group *g, bool group_too, gcoord_offset_entry **only,
                            int n_only) {
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    int n = (only ? n_only : g->n_offsets) + (group_too ? 1 : 0), k = 0;
    int rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    if (n == 0) {
        rc = 0;
        goto out;
    }
    gcoord_record *recs = arena_calloc(&a, (size_t)n, sizeof *recs);
    if (recs == NULL)
        goto out;
    if (only) {
        for (int i = 0; i < n_only; i++) {
            if (grec_encode_offset_key(&a, kstr_c(g->id), kstr_c(only[i]->topic), only[i]->partition,
                                       &recs[k].key) != 0)
                goto out;
            recs[k++].value = KBYTES_NULL;
        }
    } else {
        for (int32_t b = 0; b < g->n_obuckets; b++)
            for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next) {
                if (grec_encode_offset_key(&a, kstr_c(g->id), kstr_c(e->topic), e->partition, &recs[k].key) !=
                    0)
                    goto out;
                recs[k++].value = KBYTES_NULL;
            }
    }
    if (group_too) {
        if (grec_encode_group_key(&a, kstr_c(g->id), &recs[k].key) != 0)
            goto out;
        recs[k++].value = KBYTES_NULL;
    }
    assert(k == n);
    rc = append(c, recs, n);
out:
    arena_reset(&a);
    return rc;
}

/* A snapshot rewrites every live record so the owner can drop older ones:
 * taken when the records appended since the last one outnumber twice the
 * live ones (and at least snapshot_min_records). */
static void maybe_snapshot(gcoord *c) {
    int64_t live = c->n_offsets_total + c->n_groups;
    if (c->loading || c->appended < c->cfg.snapshot_min_records || c->appended < 2 * live)
        return;
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    gcoord_record *recs = live > 0 ? arena_calloc(&a, (size_t)live, sizeof *recs) : NULL;
    int n = 0;
    if (live > 0 && recs == NULL)
        goto out;
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next) {
            if (g->meta_value) {
                if (grec_encode_group_key(&a, kstr_c(g->id), &recs[n].key) != 0)
                    goto out;
                recs[n++].value = (kbytes){g->meta_value, g->meta_value_len};
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
    /* Even with nothing live, an empty snapshot lets the owner drop history. */
    if (c->sink.append(c->sink.ctx, recs, n, true) == 0)
        c->appended = 0;
out:
    arena_reset(&a);
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
    arena_reset(&a);
    return rc;
}

int gcoord_load_record(gcoord *c, kbytes key, kbytes value) {
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
                if (g->n_offsets == 0)
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
            if (g->n_offsets == 0 && g->meta_value == NULL)
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
    return 0;
}

void gcoord_load_end(gcoord *c, int64_t now) {
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next) {
            if (g->n_members > 0) {
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
        }
    c->loading = false;
    c->next_retention_check = now + c->cfg.retention_check_interval_ms;
    arm(c, c->next_retention_check);
    maybe_snapshot(c);
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
                sync_answer(c, t, KAFKA_ERR_REBALANCE_IN_PROGRESS, g, (kbytes){NULL, 0});
            }
        }
    }
    g->sync_deadline = NO_DEADLINE;
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
        store_group(c, g);
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

static int16_t check_common(const gcoord *c, kstr group_id) {
    if (c->shutdown_err)
        return c->shutdown_err;
    if (group_id.len <= 0)
        return KAFKA_ERR_INVALID_GROUP_ID;
    if (c->loading)
        return KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    return 0;
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

/* A static member rejoins with an unknown member id: it takes over the
 * instance's membership under a new id (the old id is fenced). */
static void join_static_replace(gcoord *c, gcoord_group *g, gcoord_member *m, const gcoord_join_req *req,
                                void *token, int64_t now) {
    char id[GCOORD_ID_MAX + 64];
    make_member_id(c, req->instance_id, id, sizeof id);
    char *nid = strdup(id);
    if (nid == NULL) {
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
        return;
    }
    if (m->join_token) {
        void *t = m->join_token;
        m->join_token = NULL;
        join_error(c, t, KAFKA_ERR_FENCED_INSTANCE_ID, ks(m->member_id));
    }
    if (m->sync_token) {
        void *t = m->sync_token;
        m->sync_token = NULL;
        sync_answer(c, t, KAFKA_ERR_FENCED_INSTANCE_ID, g, (kbytes){NULL, 0});
    }
    bool was_leader = g->leader && strcmp(g->leader, m->member_id) == 0;
    char *old_id = m->member_id;
    m->member_id = nid;
    if (was_leader) {
        free(g->leader);
        g->leader = strdup(nid);
    }
    bool protocols_changed = !same_protocols(m, req);
    if (set_protocols(m, req) != 0) {
        free(nid);
        m->member_id = old_id;
        join_error(c, token, KAFKA_ERR_UNKNOWN_SERVER_ERROR, req->member_id);
        return;
    }
    free(old_id);
    m->hb_deadline = now + m->session_timeout_ms;
    arm(c, m->hb_deadline);
    switch (g->state) {
    case GCOORD_STABLE: {
        char *next = select_protocol(g);
        bool same = next && g->protocol && strcmp(next, g->protocol) == 0;
        free(next);
        if (same || !protocols_changed) {
            /* No rebalance: persist the new id and hand back the current
             * generation (the leader learns the members but keeps the
             * assignment it has). */
            int rc = store_group(c, g);
            if (rc != 0) {
                join_error(c, token, (int16_t)rc, kstr_c(""));
                return;
            }
            join_answer(c, g, m, token, true);
            return;
        }
        m->join_token = token;
        prepare_rebalance(c, g, now, "static member rejoined with new protocols");
        maybe_complete_join(c, g, now);
        return;
    }
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
    gcoord_member *self = unknown ? find_static(g, req->instance_id) : find_member(g, req->member_id);
    if (!supports(g, req, self)) {
        join_error(c, token, KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL, req->member_id);
        if (g->n_members == 0 && g->n_offsets == 0 && g->meta_value == NULL && g->n_pending == 0)
            remove_group(c, g);
        return;
    }
    if (unknown)
        join_new(c, g, req, token, now);
    else
        join_known(c, g, req, token, now);
}

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
    if (g->leader == NULL || strcmp(g->leader, m->member_id) != 0)
        return;
    /* The leader brought the assignment: take it (members it left out get
     * an empty one), persist the generation, then answer everyone. */
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
    int rc = store_group(c, g);
    if (rc != 0) {
        /* Not persisted: nobody may act on it; start over. */
        for (int i = 0; i < g->n_members; i++) {
            gcoord_member *x = g->members[i];
            if (x->sync_token) {
                void *t = x->sync_token;
                x->sync_token = NULL;
                sync_answer(c, t, (int16_t)rc, g, (kbytes){NULL, 0});
            }
        }
        prepare_rebalance(c, g, now, "group state could not be stored");
        return;
    }
    set_state(g, GCOORD_STABLE, now);
    g->sync_deadline = NO_DEADLINE;
    for (int i = 0; i < g->n_members; i++) {
        gcoord_member *x = g->members[i];
        if (x->sync_token) {
            void *t = x->sync_token;
            x->sync_token = NULL;
            sync_answer(c, t, 0, g, member_assignment(x));
        }
    }
}

void gcoord_join(gcoord *c, const gcoord_join_req *req, void *token, int64_t now) {
    join_event(c, req, token, now);
    maybe_snapshot(c);
}

void gcoord_sync(gcoord *c, const gcoord_sync_req *req, void *token, int64_t now) {
    sync_event(c, req, token, now);
    maybe_snapshot(c);
}

/* ---- Heartbeat and LeaveGroup --------------------------------------------------------- */

int16_t gcoord_heartbeat(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int32_t generation,
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

int16_t gcoord_leave(gcoord *c, kstr group_id, kstr member_id, kstr instance_id, int16_t *group_err,
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
    maybe_snapshot(c);
    return 0;
}

/* ---- offsets ------------------------------------------------------------------------ */

void gcoord_commit_offsets(gcoord *c, kstr group_id, int32_t generation, kstr member_id, kstr instance_id,
                           int64_t retention_ms, int64_t commit_ts, gcoord_commit *entries, int n,
                           int64_t now) {
    int16_t err = c->shutdown_err ? c->shutdown_err
                  : c->loading    ? KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS
                  : group_id.len < 0 || group_id.len > GCOORD_GROUP_ID_MAX ? KAFKA_ERR_INVALID_GROUP_ID
                                                                           : 0;
    gcoord_group *g = err ? NULL : find_group(c, group_id);
    bool created = false;
    if (err == 0 && g == NULL) {
        if (generation >= 0)
            err = KAFKA_ERR_ILLEGAL_GENERATION;
        else if ((g = add_group(c, group_id, now)) == NULL)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        else
            created = true;
    }
    if (err == 0 && !created) {
        gcoord_member *m = NULL;
        if (g->state == GCOORD_DEAD)
            err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
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
    if (err) {
        for (int i = 0; i < n; i++)
            if (entries[i].error == 0)
                entries[i].error = err;
        return;
    }
    if (commit_ts < 0)
        commit_ts = now;
    int64_t expire = retention_ms >= 0 ? commit_ts + retention_ms : -1;
    arena a;
    arena_init(&a, ENCODE_ARENA_LIMIT);
    gcoord_record *recs = n > 0 ? arena_calloc(&a, (size_t)n, sizeof *recs) : NULL;
    int k = 0;
    for (int i = 0; i < n && (recs || n == 0); i++) {
        gcoord_commit *e = &entries[i];
        if (e->error)
            continue;
        if (e->metadata.len > c->cfg.max_metadata_bytes) {
            e->error = KAFKA_ERR_OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        grec_offset v = {e->offset, e->leader_epoch, e->metadata.len < 0 ? kstr_c("") : e->metadata,
                         commit_ts, expire};
        if (e->topic.len < 0 ||
            grec_encode_offset_key(&a, group_id, e->topic, e->partition, &recs[k].key) != 0 ||
            grec_encode_offset_value(&a, &v, &recs[k].value) != 0) {
            e->error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        k++;
    }
    int rc = recs == NULL && n > 0 ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : k > 0 ? append(c, recs, k) : 0;
    /* Applied only once written, so a fetch never sees an offset a crash could lose. */
    for (int i = 0; i < n; i++) {
        gcoord_commit *e = &entries[i];
        if (e->error)
            continue;
        if (rc) {
            e->error = (int16_t)rc;
            continue;
        }
        gcoord_offset_entry *o = upsert_offset(c, g, e->topic, e->partition);
        char *meta = o ? dupk(e->metadata.len < 0 ? kstr_c("") : e->metadata) : NULL;
        if (meta == NULL) {
            e->error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        free(o->metadata);
        o->metadata = meta;
        o->offset = e->offset;
        o->leader_epoch = e->leader_epoch;
        o->commit_ts = commit_ts;
        o->expire_ts = expire;
    }
    arena_reset(&a);
    if (created && g->n_offsets == 0 && g->n_members == 0)
        remove_group(c, g);
    maybe_snapshot(c);
}

int16_t gcoord_fetch_offset(gcoord *c, kstr group_id, kstr topic, int32_t partition, int64_t *offset,
                            int32_t *leader_epoch, kstr *metadata) {
    *offset = -1;
    *leader_epoch = -1;
    *metadata = kstr_c("");
    if (c->shutdown_err)
        return c->shutdown_err;
    if (c->loading)
        return KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    gcoord_group *g = find_group(c, group_id);
    const gcoord_offset_entry *e = g ? find_offset(g, topic, partition) : NULL;
    if (e) {
        *offset = e->offset;
        *leader_epoch = e->leader_epoch;
        *metadata = kstr_c(e->metadata ? e->metadata : "");
    }
    return 0;
}

int16_t gcoord_each_offset(gcoord *c, kstr group_id, gcoord_offset_fn fn, void *ctx) {
    if (c->shutdown_err)
        return c->shutdown_err;
    if (c->loading)
        return KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    gcoord_group *g = find_group(c, group_id);
    if (g == NULL)
        return 0;
    for (int32_t b = 0; b < g->n_obuckets; b++)
        for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next)
            if (!fn(ctx, e))
                return 0;
    return 0;
}

/* Does the consumer-protocol subscription in metadata name topic? The
 * layout: int16 version, int32 count, then int16-length topic names. */
static bool subscription_has(const uint8_t *meta, int32_t len, kstr topic) {
    wire_reader r;
    wire_reader_init(&r, meta, len > 0 ? (size_t)len : 0);
    (void)wire_read_i16(&r);
    int32_t n = wire_read_i32(&r);
    for (int32_t i = 0; i < n && r.err == WIRE_OK; i++) {
        kstr t = wire_read_string(&r, false, false);
        if (r.err == WIRE_OK && kstr_eq(t, topic))
            return true;
    }
    return false;
}

static bool group_subscribed(const gcoord_group *g, kstr topic) {
    if (g->state == GCOORD_EMPTY || g->protocol == NULL)
        return false;
    for (int i = 0; i < g->n_members; i++) {
        const gcoord_protocol *p = member_protocol(g->members[i], g->protocol);
        if (p && subscription_has(p->metadata, p->metadata_len, topic))
            return true;
    }
    return false;
}

int16_t gcoord_delete_offsets(gcoord *c, kstr group_id, const kstr *topics, const int32_t *partitions, int n,
                              int16_t *errs, int64_t now) {
    (void)now;
    int16_t err = check_common(c, group_id);
    if (err)
        return err;
    gcoord_group *g = find_group(c, group_id);
    if (g == NULL)
        return KAFKA_ERR_GROUP_ID_NOT_FOUND;
    bool consumer = g->protocol_type && strcmp(g->protocol_type, "consumer") == 0;
    if (!consumer && g->state != GCOORD_EMPTY)
        return KAFKA_ERR_NON_EMPTY_GROUP;
    gcoord_offset_entry **del = n > 0 ? calloc((size_t)n, sizeof *del) : NULL;
    int nd = 0;
    if (n > 0 && del == NULL)
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    for (int i = 0; i < n; i++) {
        errs[i] = 0;
        if (consumer && group_subscribed(g, topics[i])) {
            errs[i] = KAFKA_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
            continue;
        }
        gcoord_offset_entry *e = find_offset(g, topics[i], partitions[i]);
        bool dup = false;
        for (int j = 0; j < nd && e; j++)
            dup = dup || del[j] == e;
        if (e && !dup)
            del[nd++] = e;
    }
    int rc = write_tombstones(c, g, false, del, nd);
    if (rc == 0)
        for (int i = 0; i < nd; i++)
            delete_offset(c, g, del[i]);
    free(del);
    if (rc)
        for (int i = 0; i < n; i++)
            if (errs[i] == 0)
                errs[i] = (int16_t)rc;
    maybe_snapshot(c);
    return 0;
}

/* ---- admin ---------------------------------------------------------------------------- */

const gcoord_group *gcoord_find(const gcoord *c, kstr group_id) { return find_group(c, group_id); }

void gcoord_each_group(const gcoord *c, gcoord_group_fn fn, void *ctx) {
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next)
            if (!fn(ctx, g))
                return;
}

int16_t gcoord_delete_group(gcoord *c, kstr group_id, int64_t now) {
    (void)now;
    /* Unlike the membership APIs, Kafka takes "" as a group id here (only
     * null is invalid): a simple consumer may have committed under it. */
    int16_t err = c->shutdown_err    ? c->shutdown_err
                  : group_id.len < 0 ? KAFKA_ERR_INVALID_GROUP_ID
                  : c->loading       ? KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS
                                     : 0;
    if (err)
        return err;
    gcoord_group *g = find_group(c, group_id);
    if (g == NULL)
        return KAFKA_ERR_GROUP_ID_NOT_FOUND;
    if (g->state != GCOORD_EMPTY || g->n_members > 0)
        return KAFKA_ERR_NON_EMPTY_GROUP;
    int rc = write_tombstones(c, g, true, NULL, 0);
    if (rc)
        return (int16_t)rc;
    g->state = GCOORD_DEAD;
    remove_group(c, g);
    maybe_snapshot(c);
    return 0;
}

/* ---- time ------------------------------------------------------------------------------ */

/* Offsets retention (Kafka 2.1+ rules): an explicit expiry wins; a group
 * with a protocol type loses its offsets once it has been Empty for the
 * retention period; a group of simple consumers loses each offset a
 * retention period after its commit. An Empty group left with nothing is
 * removed. */
static void expire_offsets(gcoord *c, gcoord_group *g, int64_t now) {
    int64_t ret = c->cfg.offsets_retention_ms;
    if (g->n_offsets == 0 && !(g->state == GCOORD_EMPTY && g->n_members == 0))
        return;
    bool empty_long = g->state == GCOORD_EMPTY && now - g->state_ts >= ret;
    int cap = g->n_offsets, nd = 0;
    gcoord_offset_entry **del = cap > 0 ? calloc((size_t)cap, sizeof *del) : NULL;
    if (cap > 0 && del == NULL)
        return;
    for (int32_t b = 0; b < g->n_obuckets; b++)
        for (gcoord_offset_entry *e = g->obuckets[b]; e; e = e->next) {
            bool expired;
            if (e->expire_ts >= 0)
                expired = e->expire_ts <= now;
            else if (g->protocol_type)
                expired = empty_long;
            else
                expired = g->state == GCOORD_EMPTY && now - e->commit_ts >= ret;
            if (expired)
                del[nd++] = e;
        }
    bool drop_group = g->state == GCOORD_EMPTY && g->n_members == 0 && nd == g->n_offsets && empty_long;
    if ((nd > 0 || drop_group) && write_tombstones(c, g, drop_group && g->meta_value, del, nd) == 0) {
        for (int i = 0; i < nd; i++)
            delete_offset(c, g, del[i]);
        if (drop_group && g->n_pending == 0)
            remove_group(c, g);
    }
    free(del);
}

static void tick_group(gcoord *c, gcoord_group *g, int64_t now, int64_t *next) {
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
    if (g->state == GCOORD_COMPLETING_REBALANCE && g->sync_deadline <= now) {
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
    if (g->state == GCOORD_COMPLETING_REBALANCE && g->sync_deadline < *next)
        *next = g->sync_deadline;
    for (int i = 0; i < g->n_members; i++)
        if (!g->members[i]->join_token && !g->members[i]->sync_token && g->members[i]->hb_deadline < *next)
            *next = g->members[i]->hb_deadline;
}

void gcoord_tick(gcoord *c, int64_t now) {
    if (c->loading || c->shutdown_err)
        return;
    if (now < c->next_deadline)
        return;
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
    maybe_snapshot(c);
}

void gcoord_shutdown(gcoord *c, int16_t error) {
    c->shutdown_err = error;
    for (int32_t b = 0; b < c->n_buckets; b++)
        for (gcoord_group *g = c->buckets[b]; g; g = g->next)
            for (int i = 0; i < g->n_members; i++) {
                gcoord_member *m = g->members[i];
                if (m->join_token) {
                    void *t = m->join_token;
                    m->join_token = NULL;
                    join_error(c, t, error, ks(m->member_id));
                }
                if (m->sync_token) {
                    void *t = m->sync_token;
                    m->sync_token = NULL;
                    sync_answer(c, t, error, g, (kbytes){NULL, 0});
                }
            }
}
