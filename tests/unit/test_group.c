/*
 * test_group.c - the group coordinator state machine, driven with a fake
 * clock and a fake sink: join/sync/heartbeat/leave flows, generations,
 * MEMBER_ID_REQUIRED, protocol selection, leader choice, timeouts, the
 * initial rebalance delay, static membership, offsets, persistence and
 * reloading, and the error codes clients rely on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "group/coordinator.h"
#include "group/records.h"
#include "proto/gen/kafka_msgs.h"
#include "unit.h"

#define MAX_ANS  256
#define MAX_RECS 300000

/* What the fake sink saw. Tokens are small integers (cast to pointers). */
typedef struct answer {
    int token;
    bool is_join;
    int16_t error;
    int32_t generation;
    char member_id[256];
    char leader[256];
    char protocol[64];
    int n_members;
    bool skip;
    char assignment[64];
} answer;

typedef struct rec {
    uint8_t *key, *value;
    int32_t klen, vlen;
} rec;

static answer answers[MAX_ANS];
static int n_answers;
static rec recs[MAX_RECS];
static int n_recs;
static int append_error;
static int snapshots;

static void copy_k(char *dst, size_t n, kstr s) {
    size_t l = s.len > 0 ? (size_t)s.len : 0;
    if (l >= n)
        l = n - 1;
    memcpy(dst, s.ptr ? s.ptr : "", l);
    dst[l] = '\0';
}

static void on_join(void *ctx, void *token, const gcoord_join_result *r) {
    (void)ctx;
    if (n_answers == MAX_ANS)
        return;
    answer *a = &answers[n_answers++];
    memset(a, 0, sizeof *a);
    a->token = (int)(intptr_t)token;
    a->is_join = true;
    a->error = r->error;
    a->generation = r->generation;
    copy_k(a->member_id, sizeof a->member_id, r->member_id);
    copy_k(a->leader, sizeof a->leader, r->leader);
    copy_k(a->protocol, sizeof a->protocol, r->protocol_name);
    a->n_members = r->n_members;
    a->skip = r->skip_assignment;
}

static void on_sync(void *ctx, void *token, const gcoord_sync_result *r) {
    (void)ctx;
    if (n_answers == MAX_ANS)
        return;
    answer *a = &answers[n_answers++];
    memset(a, 0, sizeof *a);
    a->token = (int)(intptr_t)token;
    a->error = r->error;
    copy_k(a->protocol, sizeof a->protocol, r->protocol_name);
    copy_k(a->assignment, sizeof a->assignment, (kstr){(const char *)r->assignment.ptr, r->assignment.len});
}

/* The fake owner of a machine: appends go to recs[] and complete inside the
 * call (a single node), or, in async mode, wait in queue[] until the test
 * completes them (a replicated log). */
#define MAX_QUEUED 4096
typedef struct queued {
    uint64_t id;
    bool snapshot;
    gcoord_record *rs; /* copies, stored in recs[] if it succeeds */
    int n;
    bool resolved; /* reported; in the log (or not) once those before are */
    int16_t err;
} queued;

typedef struct fake {
    gcoord *c;
    bool async;
    uint64_t next_id;
    queued queue[MAX_QUEUED];
    int n_queue;
} fake;

static fake fakes[4];
static int n_fakes;
static int append_refuse; /* refuse at once with this error */

static void store_recs(const gcoord_record *rs, int n, bool snapshot) {
    if (snapshot) {
        for (int i = 0; i < n_recs; i++) {
            free(recs[i].key);
            free(recs[i].value);
        }
        n_recs = 0;
        snapshots++;
    }
    for (int i = 0; i < n && n_recs < MAX_RECS; i++) {
        rec *r = &recs[n_recs++];
        r->klen = rs[i].key.len;
        r->key = malloc((size_t)r->klen);
        memcpy(r->key, rs[i].key.ptr, (size_t)r->klen);
        r->vlen = rs[i].value.len;
        r->value = NULL;
        if (r->vlen >= 0) {
            r->value = malloc((size_t)r->vlen + 1);
            memcpy(r->value, rs[i].value.ptr, (size_t)r->vlen);
        }
    }
}

static uint64_t on_append(void *ctx, const gcoord_record *rs, int n, bool snapshot, int16_t *err) {
    fake *f = ctx;
    if (append_refuse) {
        *err = (int16_t)append_refuse;
        return 0;
    }
    uint64_t id = ++f->next_id;
    if (f->async) {
        /* In the log once it succeeds (the tests complete in order). */
        REQUIRE(f->n_queue < MAX_QUEUED);
        queued *q = &f->queue[f->n_queue++];
        *q = (queued){id, snapshot, calloc((size_t)(n > 0 ? n : 1), sizeof *q->rs), n, false, 0};
        for (int i = 0; i < n; i++) {
            q->rs[i].key.len = rs[i].key.len;
            q->rs[i].key.ptr = malloc((size_t)rs[i].key.len + 1);
            memcpy((uint8_t *)q->rs[i].key.ptr, rs[i].key.ptr, (size_t)rs[i].key.len);
            q->rs[i].value.len = rs[i].value.len;
            q->rs[i].value.ptr = rs[i].value.len >= 0 ? malloc((size_t)rs[i].value.len + 1) : NULL;
            if (rs[i].value.len > 0)
                memcpy((uint8_t *)q->rs[i].value.ptr, rs[i].value.ptr, (size_t)rs[i].value.len);
        }
        return id;
    }
    if (append_error == 0)
        store_recs(rs, n, snapshot);
    gcoord_append_done(f->c, id, (int16_t)append_error, 0);
    return id;
}

/* Async mode: reports the outcome of the i-th queued append. */
/* Async mode: reports the outcome of the i-th unreported append. The log
 * keeps issue order: an append reaches recs[] once those before it are
 * resolved too. */
static void complete_queued(fake *f, int i, int16_t err, int64_t now) {
    int k = 0;
    while (k < f->n_queue && (f->queue[k].resolved || i-- > 0))
        k++;
    REQUIRE(k < f->n_queue);
    f->queue[k].resolved = true;
    f->queue[k].err = err;
    uint64_t id = f->queue[k].id;
    while (f->n_queue > 0 && f->queue[0].resolved) {
        queued q = f->queue[0];
        memmove(&f->queue[0], &f->queue[1], (size_t)(f->n_queue - 1) * sizeof q);
        f->n_queue--;
        if (q.err == 0)
            store_recs(q.rs, q.n, q.snapshot);
        for (int j = 0; j < q.n; j++) {
            free((void *)q.rs[j].key.ptr);
            free((void *)q.rs[j].value.ptr);
        }
        free(q.rs);
    }
    gcoord_append_done(f->c, id, err, now);
}

static int unresolved(const fake *f) {
    int n = 0;
    for (int i = 0; i < f->n_queue; i++)
        n += !f->queue[i].resolved;
    return n;
}

/* Completes every queued append in order with err. */
static void complete_all(fake *f, int16_t err, int64_t now) {
    while (unresolved(f) > 0)
        complete_queued(f, 0, err, now);
}

static void drop_queue(fake *f) {
    while (f->n_queue > 0) {
        queued *q = &f->queue[--f->n_queue];
        for (int j = 0; j < q->n; j++) {
            free((void *)q->rs[j].key.ptr);
            free((void *)q->rs[j].value.ptr);
        }
        free(q->rs);
    }
}

/* Answers to OffsetCommit, DeleteGroups and OffsetDelete, by token. */
#define MAX_DONE 2048
typedef struct done_rec {
    int token;
    int16_t error;
    int n;
    int16_t errs[64];
} done_rec;
static done_rec dones[MAX_DONE];
static int n_dones;
static int16_t *last_errs; /* the last answer's errors, in full */
static int last_n;

static void record_done(void *token, int16_t error, const int16_t *errs, int n) {
    if (n_dones == MAX_DONE)
        return;
    done_rec *d = &dones[n_dones++];
    memset(d, 0, sizeof *d);
    d->token = (int)(intptr_t)token;
    d->error = error;
    d->n = n;
    for (int i = 0; i < n && i < 64; i++)
        d->errs[i] = errs ? errs[i] : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    free(last_errs);
    last_errs = calloc((size_t)(n > 0 ? n : 1), sizeof *last_errs);
    last_n = n;
    for (int i = 0; i < n && last_errs; i++)
        last_errs[i] = errs ? errs[i] : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
}

static void on_commit(void *ctx, void *token, const int16_t *errs, int n) {
    (void)ctx;
    record_done(token, 0, errs, n);
}

static void on_delete_group(void *ctx, void *token, int16_t error) {
    (void)ctx;
    record_done(token, error, NULL, 0);
}

static void on_delete_offsets(void *ctx, void *token, int16_t error, const int16_t *errs, int n) {
    (void)ctx;
    record_done(token, error, errs, n);
}

static const done_rec *find_done(int token) {
    for (int i = n_dones - 1; i >= 0; i--)
        if (dones[i].token == token)
            return &dones[i];
    return NULL;
}

/* Events the machine reported, in order. */
typedef struct event_rec {
    gcoord_event_kind kind;
    int32_t generation;
    int n_members;
    gcoord_state from;
    char group[64], reason[96], protocol[32], leader[128];
} event_rec;
#define MAX_EVENTS 64
static event_rec events[MAX_EVENTS];
static int n_events;

static void on_event(void *ctx, const gcoord_event *ev) {
    (void)ctx;
    if (n_events == MAX_EVENTS)
        return;
    event_rec *e = &events[n_events++];
    memset(e, 0, sizeof *e);
    e->kind = ev->kind;
    e->generation = ev->generation;
    e->n_members = ev->n_members;
    e->from = ev->from;
    copy_k(e->group, sizeof e->group, ev->group_id);
    copy_k(e->protocol, sizeof e->protocol, ev->protocol);
    copy_k(e->leader, sizeof e->leader, ev->leader);
    if (ev->reason)
        snprintf(e->reason, sizeof e->reason, "%s", ev->reason);
}

static void reset_sink(void) {
    n_events = 0;
    n_answers = 0;
    for (int i = 0; i < n_recs; i++) {
        free(recs[i].key);
        free(recs[i].value);
    }
    n_recs = 0;
    append_error = 0;
    append_refuse = 0;
    snapshots = 0;
    n_dones = 0;
}

static const answer *find_answer(int token) {
    for (int i = n_answers - 1; i >= 0; i--)
        if (answers[i].token == token)
            return &answers[i];
    return NULL;
}

/* Fields of the latest answer to a token, with defaults when there is none. */
static const char *asg(int token) {
    const answer *a = find_answer(token);
    return a ? a->assignment : "<none>";
}
static int aerr(int token) {
    const answer *a = find_answer(token);
    return a ? a->error : -999;
}
static int agen(int token) {
    const answer *a = find_answer(token);
    return a ? a->generation : -999;
}

static gcoord_config test_cfg(void) {
    gcoord_config cfg;
    gcoord_config_default(&cfg);
    cfg.initial_rebalance_delay_ms = 0;
    return cfg;
}

/* A machine with its own fake owner (synchronous unless made async). */
static gcoord *create(const gcoord_config *cfg) {
    fake *f = &fakes[n_fakes++ % 4];
    memset(f, 0, sizeof *f);
    gcoord_sink sink = {f,         on_join,  on_sync, on_commit, on_delete_group, on_delete_offsets,
                        on_append, on_event, NULL};
    f->c = gcoord_create(cfg, &sink);
    return f->c;
}

/* The newest fake of c (a freed machine's address may be reused). */
static fake *fake_of(const gcoord *c) {
    for (int k = 1; k <= 4; k++) {
        fake *f = &fakes[(n_fakes - k + 4) % 4];
        if (f->c == c)
            return f;
    }
    return NULL;
}

static gcoord *make(const gcoord_config *cfg) {
    reset_sink();
    gcoord *c = create(cfg);
    gcoord_load_begin(c, 0, 1000);
    gcoord_load_end(c, 1000);
    return c;
}

/* The answer of an OffsetCommit copied into its entries (synchronous
 * owners answer before the call returns); the token is fixed. */
#define COMMIT_TOKEN 77777
static void commit_offsets(gcoord *c, kstr group, int32_t gen, kstr member, kstr inst, int64_t retention,
                           int64_t ts, gcoord_commit *es, int n, int64_t now) {
    gcoord_commit_offsets(c, group, gen, member, inst, retention, ts, es, n, (void *)(intptr_t)COMMIT_TOKEN,
                          now);
    const done_rec *d = find_done(COMMIT_TOKEN);
    REQUIRE(d != NULL && last_n == n);
    for (int i = 0; i < n; i++)
        es[i].error = last_errs[i];
    n_dones = 0;
}

static int16_t delete_group(gcoord *c, kstr group, int64_t now) {
    gcoord_delete_group(c, group, (void *)(intptr_t)COMMIT_TOKEN, now);
    const done_rec *d = find_done(COMMIT_TOKEN);
    REQUIRE(d != NULL);
    int16_t e = d->error;
    n_dones = 0;
    return e;
}

static int16_t delete_offsets(gcoord *c, kstr group, const kstr *topics, const int32_t *parts, int n,
                              int16_t *errs, int64_t now) {
    gcoord_delete_offsets(c, group, topics, parts, n, (void *)(intptr_t)COMMIT_TOKEN, now);
    const done_rec *d = find_done(COMMIT_TOKEN);
    REQUIRE(d != NULL);
    for (int i = 0; i < n && d->error == 0 && i < last_n; i++)
        errs[i] = last_errs[i];
    int16_t e = d->error;
    n_dones = 0;
    return e;
}

/* Consumer-protocol-like metadata: version, topics. */
static const uint8_t META_T[] = {0, 1, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 0};

static void join(gcoord *c, int token, const char *group, const char *member, const char *instance,
                 const char *const *protocols, int np, bool v4, int64_t now) {
    kstr names[8];
    kbytes metas[8];
    for (int i = 0; i < np; i++) {
        names[i] = kstr_c(protocols[i]);
        metas[i] = (kbytes){META_T, sizeof META_T};
    }
    gcoord_join_req r = {.group_id = kstr_c(group),
                         .member_id = kstr_c(member),
                         .instance_id = instance ? kstr_c(instance) : KSTR_NULL,
                         .protocol_type = kstr_c("consumer"),
                         .client_id = kstr_c("client"),
                         .client_host = kstr_c("/127.0.0.1"),
                         .session_timeout_ms = 10000,
                         .rebalance_timeout_ms = 30000,
                         .protocol_names = names,
                         .protocol_metadata = metas,
                         .n_protocols = np,
                         .require_known_member_id = v4};
    gcoord_join(c, &r, (void *)(intptr_t)token, now);
}

static const char *const RANGE[] = {"range"};

static void sync(gcoord *c, int token, const char *group, const char *member, int32_t gen,
                 const char *const *ids, const char *const *assign, int n, int64_t now) {
    kstr m[8];
    kbytes b[8];
    for (int i = 0; i < n; i++) {
        m[i] = kstr_c(ids[i]);
        b[i] = (kbytes){(const uint8_t *)assign[i], (int32_t)strlen(assign[i])};
    }
    gcoord_sync_req r = {.group_id = kstr_c(group),
                         .member_id = kstr_c(member),
                         .instance_id = KSTR_NULL,
                         .generation = gen,
                         .protocol_type = KSTR_NULL,
                         .protocol_name = KSTR_NULL,
                         .assign_member = m,
                         .assign_bytes = b,
                         .n_assign = n};
    gcoord_sync(c, &r, (void *)(intptr_t)token, now);
}

static int16_t hb(gcoord *c, const char *group, const char *member, int32_t gen, int64_t now) {
    return gcoord_heartbeat(c, kstr_c(group), kstr_c(member), KSTR_NULL, gen, now);
}

/* One member joins (v4 two-step), syncs, is Stable at generation 1. */
static void test_single_member_v4(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, true, 1000);
    const answer *a = find_answer(1);
    REQUIRE(a != NULL);
    CHECK_EQ_INT(a->error, KAFKA_ERR_MEMBER_ID_REQUIRED);
    CHECK(strncmp(a->member_id, "client-", 7) == 0);
    char id[256];
    strcpy(id, a->member_id);
    join(c, 2, "g", id, NULL, RANGE, 1, true, 1001);
    a = find_answer(2);
    REQUIRE(a != NULL);
    CHECK_EQ_INT(a->error, 0);
    CHECK_EQ_INT(a->generation, 1);
    CHECK(strcmp(a->leader, id) == 0);
    CHECK(strcmp(a->protocol, "range") == 0);
    CHECK_EQ_INT(a->n_members, 1);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_COMPLETING_REBALANCE);
    CHECK_EQ_INT(hb(c, "g", id, 1, 1002), 0);
    const char *ids[] = {id};
    const char *as[] = {"A0"};
    sync(c, 3, "g", id, 1, ids, as, 1, 1003);
    a = find_answer(3);
    REQUIRE(a != NULL);
    CHECK_EQ_INT(a->error, 0);
    CHECK(strcmp(a->assignment, "A0") == 0);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_STABLE);
    CHECK_EQ_INT(n_recs, 1); /* the generation's group record */
    CHECK_EQ_INT(hb(c, "g", id, 1, 2000), 0);
    CHECK_EQ_INT(hb(c, "g", id, 0, 2000), KAFKA_ERR_ILLEGAL_GENERATION);
    CHECK_EQ_INT(hb(c, "g", "nobody", 1, 2000), KAFKA_ERR_UNKNOWN_MEMBER_ID);
    CHECK_EQ_INT(hb(c, "nogroup", id, 1, 2000), KAFKA_ERR_UNKNOWN_MEMBER_ID);
    CHECK_EQ_INT(hb(c, "", id, 1, 2000), KAFKA_ERR_INVALID_GROUP_ID);
    /* Session timeout: no heartbeat for 10 s -> removed, group Empty. */
    gcoord_tick(c, 12001);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_EMPTY);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->generation, 2);
    CHECK_EQ_INT(hb(c, "g", id, 1, 12002), KAFKA_ERR_UNKNOWN_MEMBER_ID);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* The owner hears of each rebalance: why it starts, and the generation,
 * members, protocol and leader it ends with (or that the group is empty). */
static void test_rebalance_events(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 1000);
    REQUIRE(n_events == 2);
    CHECK_EQ_INT(events[0].kind, GCOORD_EV_REBALANCE_START);
    CHECK(strcmp(events[0].group, "g") == 0 && strcmp(events[0].reason, "member joined") == 0);
    CHECK_EQ_INT(events[0].from, GCOORD_EMPTY);
    CHECK_EQ_INT(events[0].generation, 0);
    CHECK_EQ_INT(events[1].kind, GCOORD_EV_REBALANCE_DONE);
    CHECK_EQ_INT(events[1].generation, 1);
    CHECK_EQ_INT(events[1].n_members, 1);
    CHECK(strcmp(events[1].protocol, "range") == 0);
    char id[256];
    strcpy(id, find_answer(1)->member_id);
    CHECK(strcmp(events[1].leader, id) == 0);
    const char *ids[] = {id};
    const char *as[] = {"A0"};
    sync(c, 2, "g", id, 1, ids, as, 1, 1001);
    CHECK_EQ_INT(n_events, 2); /* a sync is no rebalance */
    /* The member leaves: a rebalance that ends with the group empty. */
    int16_t gerr = 0;
    CHECK_EQ_INT(gcoord_leave(c, kstr_c("g"), kstr_c(id), KSTR_NULL, &gerr, 1002), 0);
    REQUIRE(n_events == 4);
    CHECK_EQ_INT(events[2].kind, GCOORD_EV_REBALANCE_START);
    CHECK(strcmp(events[2].reason, "member left") == 0);
    CHECK_EQ_INT(events[2].from, GCOORD_STABLE);
    CHECK_EQ_INT(events[2].generation, 1);
    CHECK_EQ_INT(events[3].kind, GCOORD_EV_REBALANCE_DONE);
    CHECK_EQ_INT(events[3].generation, 2);
    CHECK_EQ_INT(events[3].n_members, 0);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* Two members: rebalance, leader gets the member list, follower waits for
 * the leader's sync; a third join sends everyone back; a leave rebalances. */
static void test_two_members_and_rebalance(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 1000);
    const answer *a = find_answer(1);
    REQUIRE(a && a->error == 0 && a->generation == 1);
    char m1[256], m2[256];
    strcpy(m1, a->member_id);
    const char *ids1[] = {m1};
    const char *as1[] = {"X"};
    sync(c, 2, "g", m1, 1, ids1, as1, 1, 1001);
    /* m2 joins: group to PreparingRebalance; m1 learns by heartbeat. */
    join(c, 3, "g", "", NULL, RANGE, 1, false, 1002);
    CHECK(find_answer(3) == NULL);
    CHECK_EQ_INT(hb(c, "g", m1, 1, 1003), KAFKA_ERR_REBALANCE_IN_PROGRESS);
    /* A commit from the old generation is still accepted while preparing. */
    gcoord_commit e = {kstr_c("t"), 0, 42, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c("g"), 1, kstr_c(m1), KSTR_NULL, -1, -1, &e, 1, 1003);
    CHECK_EQ_INT(e.error, 0);
    join(c, 4, "g", m1, NULL, RANGE, 1, false, 1004);
    const answer *j1 = find_answer(4), *j2 = find_answer(3);
    REQUIRE(j1 && j2);
    strcpy(m2, j2->member_id);
    CHECK_EQ_INT(j1->generation, 2);
    CHECK_EQ_INT(j2->generation, 2);
    CHECK(strcmp(j1->leader, m1) == 0); /* the leader stays the leader */
    CHECK_EQ_INT(j1->n_members, 2);
    CHECK_EQ_INT(j2->n_members, 0);
    /* Follower syncs first: parked until the leader syncs. */
    sync(c, 5, "g", m2, 2, NULL, NULL, 0, 1005);
    CHECK(find_answer(5) == NULL);
    /* Commit during CompletingRebalance -> REBALANCE_IN_PROGRESS. */
    e.error = 0;
    commit_offsets(c, kstr_c("g"), 2, kstr_c(m1), KSTR_NULL, -1, -1, &e, 1, 1005);
    CHECK_EQ_INT(e.error, KAFKA_ERR_REBALANCE_IN_PROGRESS);
    const char *ids[] = {m1, m2};
    const char *as[] = {"P0", "P1"};
    sync(c, 6, "g", m1, 2, ids, as, 2, 1006);
    CHECK(strcmp(asg(5), "P1") == 0);
    CHECK(strcmp(asg(6), "P0") == 0);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_STABLE);
    /* Old generation is now illegal. */
    e.error = 0;
    commit_offsets(c, kstr_c("g"), 1, kstr_c(m1), KSTR_NULL, -1, -1, &e, 1, 1007);
    CHECK_EQ_INT(e.error, KAFKA_ERR_ILLEGAL_GENERATION);
    sync(c, 7, "g", m1, 1, NULL, NULL, 0, 1007);
    CHECK_EQ_INT(aerr(7), KAFKA_ERR_ILLEGAL_GENERATION);
    /* A follower rejoining with the same metadata in Stable: same generation, no rebalance. */
    join(c, 8, "g", m2, NULL, RANGE, 1, false, 1008);
    CHECK_EQ_INT(agen(8), 2);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_STABLE);
    /* m2 leaves: m1 must rejoin; generation 3 with just m1. */
    int16_t ge;
    CHECK_EQ_INT(gcoord_leave(c, kstr_c("g"), kstr_c(m2), KSTR_NULL, &ge, 1009), 0);
    CHECK_EQ_INT(ge, 0);
    CHECK_EQ_INT(gcoord_leave(c, kstr_c("g"), kstr_c(m2), KSTR_NULL, &ge, 1009), KAFKA_ERR_UNKNOWN_MEMBER_ID);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_PREPARING_REBALANCE);
    join(c, 9, "g", m1, NULL, RANGE, 1, false, 1010);
    CHECK_EQ_INT(agen(9), 3);
    /* Delete: not while it has members. */
    CHECK_EQ_INT(delete_group(c, kstr_c("g"), 1011), KAFKA_ERR_NON_EMPTY_GROUP);
    CHECK_EQ_INT(delete_group(c, kstr_c("nope"), 1011), KAFKA_ERR_GROUP_ID_NOT_FOUND);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* Members that do not rejoin within the rebalance timeout are dropped. */
static void test_rebalance_timeout(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 0); /* alone: generation 1 at once */
    REQUIRE(find_answer(1) && agen(1) == 1);
    char m1[256], m2[256];
    strcpy(m1, find_answer(1)->member_id);
    join(c, 2, "g", "", NULL, RANGE, 1, false, 0);
    join(c, 10, "g", m1, NULL, RANGE, 1, false, 0);
    const answer *a1 = find_answer(10), *a2 = find_answer(2);
    REQUIRE(a1 && a2);
    CHECK_EQ_INT(a1->generation, 2);
    strcpy(m2, a2->member_id);
    const char *ids[] = {m1, m2};
    const char *as[] = {"a", "b"};
    sync(c, 3, "g", m1, 2, ids, as, 2, 10);
    sync(c, 4, "g", m2, 2, NULL, NULL, 0, 10);
    CHECK_EQ_INT(aerr(4), 0);
    /* Third member joins; m2 keeps heartbeating but never rejoins. */
    join(c, 5, "g", "", NULL, RANGE, 1, false, 100);
    join(c, 6, "g", m1, NULL, RANGE, 1, false, 200);
    CHECK(find_answer(6) == NULL);
    for (int64_t t = 1000; t < 30000; t += 3000)
        hb(c, "g", m2, 2, t);
    gcoord_tick(c, 30099);
    CHECK(find_answer(6) == NULL);
    CHECK(gcoord_next_deadline(c) <= 30100);
    gcoord_tick(c, 30100); /* rebalance timeout (30 s) since 100 */
    REQUIRE(find_answer(6) != NULL);
    CHECK_EQ_INT(agen(6), 3);
    CHECK_EQ_INT(find_answer(6)->n_members, 2);
    CHECK_EQ_INT(hb(c, "g", m2, 3, 30101), KAFKA_ERR_UNKNOWN_MEMBER_ID);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* The initial delay holds the first rebalance of an empty group. */
static void test_initial_delay(void) {
    gcoord_config cfg = test_cfg();
    cfg.initial_rebalance_delay_ms = 3000;
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 0);
    CHECK(find_answer(1) == NULL);
    join(c, 2, "g", "", NULL, RANGE, 1, false, 2000);
    gcoord_tick(c, 2999);
    CHECK(find_answer(1) == NULL);
    gcoord_tick(c, 3000); /* a member arrived: wait another delay */
    CHECK(find_answer(1) == NULL);
    gcoord_tick(c, 6000);
    REQUIRE(find_answer(1) != NULL);
    CHECK_EQ_INT(agen(1), 1);
    CHECK_EQ_INT(agen(2), 1);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

static void test_protocols(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    const char *const p1[] = {"roundrobin", "range"};
    const char *const p2[] = {"range", "roundrobin"};
    const char *const p3[] = {"range"};
    const char *const bad[] = {"sticky"};
    join(c, 1, "g", "", NULL, p1, 2, false, 0);
    char m1[256];
    strcpy(m1, find_answer(1)->member_id);
    const char *ids[] = {m1};
    const char *as[] = {"a"};
    sync(c, 2, "g", m1, 1, ids, as, 1, 0);
    join(c, 3, "g", "", NULL, bad, 1, false, 1);
    CHECK_EQ_INT(aerr(3), KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL);
    join(c, 4, "g", "", NULL, p2, 2, false, 2);
    join(c, 5, "g", "", NULL, p3, 1, false, 3);
    join(c, 6, "g", m1, NULL, p1, 2, false, 4);
    /* range is the only common one with m3, and it has 2 votes anyway. */
    REQUIRE(find_answer(6) != NULL);
    CHECK(strcmp(find_answer(6)->protocol, "range") == 0);
    /* Wrong protocol type. */
    gcoord_join_req r = {.group_id = kstr_c("g"),
                         .member_id = kstr_c(""),
                         .instance_id = KSTR_NULL,
                         .protocol_type = kstr_c("connect"),
                         .client_id = kstr_c("c"),
                         .client_host = kstr_c("h"),
                         .session_timeout_ms = 10000,
                         .rebalance_timeout_ms = 10000,
                         .protocol_names = (kstr[]){kstr_c("range")},
                         .protocol_metadata = (kbytes[]){{NULL, 0}},
                         .n_protocols = 1};
    gcoord_join(c, &r, (void *)7, 5);
    CHECK_EQ_INT(aerr(7), KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL);
    r.protocol_type = kstr_c("consumer");
    r.session_timeout_ms = 10;
    gcoord_join(c, &r, (void *)8, 5);
    CHECK_EQ_INT(aerr(8), KAFKA_ERR_INVALID_SESSION_TIMEOUT);
    r.session_timeout_ms = 10000;
    r.member_id = kstr_c("unknown-id");
    gcoord_join(c, &r, (void *)9, 5);
    CHECK_EQ_INT(aerr(9), KAFKA_ERR_UNKNOWN_MEMBER_ID);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

static void test_max_size(void) {
    gcoord_config cfg = test_cfg();
    cfg.max_size = 2;
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, true, 0);
    join(c, 2, "g", "", NULL, RANGE, 1, true, 0);
    join(c, 3, "g", "", NULL, RANGE, 1, true, 0);
    CHECK_EQ_INT(aerr(1), KAFKA_ERR_MEMBER_ID_REQUIRED);
    CHECK_EQ_INT(aerr(2), KAFKA_ERR_MEMBER_ID_REQUIRED);
    CHECK_EQ_INT(aerr(3), KAFKA_ERR_GROUP_MAX_SIZE_REACHED);
    /* Pending members expire after the session timeout. */
    gcoord_tick(c, 10001);
    join(c, 4, "g", "", NULL, RANGE, 1, true, 10002);
    CHECK_EQ_INT(aerr(4), KAFKA_ERR_MEMBER_ID_REQUIRED);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* Static membership: a restart with the same instance id keeps the group
 * Stable; the old member id is fenced. */
static void test_static_membership(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", "inst-a", RANGE, 1, true, 0); /* static: no MEMBER_ID_REQUIRED */
    REQUIRE(find_answer(1) != NULL);
    CHECK_EQ_INT(aerr(1), 0);
    char a[256], b[256];
    strcpy(a, find_answer(1)->member_id);
    CHECK(strncmp(a, "inst-a-", 7) == 0);
    join(c, 2, "g", "", "inst-b", RANGE, 1, true, 0);
    join(c, 20, "g", a, "inst-a", RANGE, 1, true, 0);
    REQUIRE(find_answer(2) && find_answer(20));
    CHECK_EQ_INT(agen(2), 2);
    strcpy(b, find_answer(2)->member_id);
    const char *ids[] = {a, b};
    const char *as[] = {"A", "B"};
    sync(c, 3, "g", a, 2, ids, as, 2, 1);
    sync(c, 4, "g", b, 2, NULL, NULL, 0, 1);
    /* b restarts: unknown member id, same instance. */
    join(c, 5, "g", "", "inst-b", RANGE, 1, true, 100);
    const answer *r = find_answer(5);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->error, 0);
    CHECK_EQ_INT(r->generation, 2);
    CHECK(strcmp(r->member_id, b) != 0);
    char b2[256];
    strcpy(b2, r->member_id);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_STABLE);
    sync(c, 6, "g", b2, 2, NULL, NULL, 0, 101);
    CHECK(strcmp(asg(6), "B") == 0);
    /* The old id is fenced. */
    CHECK_EQ_INT(gcoord_heartbeat(c, kstr_c("g"), kstr_c(b), kstr_c("inst-b"), 2, 102),
                 KAFKA_ERR_FENCED_INSTANCE_ID);
    gcoord_commit e = {kstr_c("t"), 0, 1, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c("g"), 2, kstr_c(b), kstr_c("inst-b"), -1, -1, &e, 1, 103);
    CHECK_EQ_INT(e.error, KAFKA_ERR_FENCED_INSTANCE_ID);
    /* The static leader restarting gets the member list with skip_assignment. */
    join(c, 7, "g", "", "inst-a", RANGE, 1, true, 104);
    CHECK_EQ_INT(aerr(7), 0);
    CHECK(find_answer(7)->skip);
    CHECK_EQ_INT(find_answer(7)->n_members, 2);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_STABLE);
    /* Leave by instance id with the wrong member id -> fenced; right one -> ok. */
    int16_t ge;
    CHECK_EQ_INT(gcoord_leave(c, kstr_c("g"), kstr_c(b), kstr_c("inst-b"), &ge, 105),
                 KAFKA_ERR_FENCED_INSTANCE_ID);
    CHECK_EQ_INT(gcoord_leave(c, kstr_c("g"), kstr_c(""), kstr_c("inst-b"), &ge, 105), 0);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_PREPARING_REBALANCE);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* Simple consumers commit with generation -1; fetch; retention; delete;
 * everything survives a reload from the records. */
static void test_offsets_and_reload(void) {
    gcoord_config cfg = test_cfg();
    cfg.offsets_retention_ms = 100000;
    cfg.retention_check_interval_ms = 1000;
    gcoord *c = make(&cfg);
    gcoord_commit es[3] = {{kstr_c("t"), 0, 10, 5, kstr_c("m0"), 0},
                           {kstr_c("t"), 1, 11, -1, KSTR_NULL, 0},
                           {kstr_c("u"), 0, 12, -1, KSTR_NULL, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION}};
    commit_offsets(c, kstr_c("simple"), -1, kstr_c(""), KSTR_NULL, -1, -1, es, 3, 2000);
    CHECK_EQ_INT(es[0].error, 0);
    CHECK_EQ_INT(es[1].error, 0);
    CHECK_EQ_INT(es[2].error, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    int64_t off;
    int32_t ep;
    kstr meta;
    CHECK_EQ_INT(gcoord_fetch_offset(c, kstr_c("simple"), kstr_c("t"), 0, &off, &ep, &meta), 0);
    CHECK_EQ_INT(off, 10);
    CHECK_EQ_INT(ep, 5);
    CHECK(kstr_eq_c(meta, "m0"));
    gcoord_fetch_offset(c, kstr_c("simple"), kstr_c("u"), 0, &off, &ep, &meta);
    CHECK_EQ_INT(off, -1);
    gcoord_fetch_offset(c, kstr_c("nope"), kstr_c("t"), 0, &off, &ep, &meta);
    CHECK_EQ_INT(off, -1);
    /* Too much metadata. */
    char big[5000];
    memset(big, 'x', sizeof big);
    gcoord_commit eb = {kstr_c("t"), 2, 1, -1, {big, (int32_t)sizeof big}, 0};
    commit_offsets(c, kstr_c("simple"), -1, kstr_c(""), KSTR_NULL, -1, -1, &eb, 1, 2000);
    CHECK_EQ_INT(eb.error, KAFKA_ERR_OFFSET_METADATA_TOO_LARGE);
    /* A commit with a generation to an unknown group is rejected. */
    gcoord_commit eg = {kstr_c("t"), 0, 1, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c("other"), 3, kstr_c("m"), KSTR_NULL, -1, -1, &eg, 1, 2000);
    CHECK_EQ_INT(eg.error, KAFKA_ERR_ILLEGAL_GENERATION);
    CHECK(gcoord_find(c, kstr_c("other")) == NULL);
    /* A consumer group with a generation, then reload everything. */
    join(c, 1, "cg", "", NULL, RANGE, 1, false, 2000);
    char m[256];
    strcpy(m, find_answer(1)->member_id);
    const char *ids[] = {m};
    const char *as[] = {"A"};
    sync(c, 2, "cg", m, 1, ids, as, 1, 2001);
    gcoord_commit ec = {kstr_c("t"), 3, 99, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c("cg"), 1, kstr_c(m), KSTR_NULL, -1, -1, &ec, 1, 2002);
    CHECK_EQ_INT(ec.error, 0);
    /* offset delete: subscribed topic refused for a consumer group */
    kstr tt = kstr_c("t");
    int32_t pp = 3;
    int16_t perr;
    CHECK_EQ_INT(delete_offsets(c, kstr_c("cg"), &tt, &pp, 1, &perr, 2003), 0);
    CHECK_EQ_INT(perr, KAFKA_ERR_GROUP_SUBSCRIBED_TO_TOPIC);
    CHECK_EQ_INT(delete_offsets(c, kstr_c("zz"), &tt, &pp, 1, &perr, 2003), KAFKA_ERR_GROUP_ID_NOT_FOUND);
    pp = 1;
    CHECK_EQ_INT(delete_offsets(c, kstr_c("simple"), &tt, &pp, 1, &perr, 2003), 0);
    CHECK_EQ_INT(perr, 0);

    /* Reload from the records into a fresh machine. */
    gcoord *d = create(&cfg);
    gcoord_load_begin(d, 0, 2004);
    join(d, 3, "cg", m, NULL, RANGE, 1, false, 2004);
    CHECK_EQ_INT(aerr(3), KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    for (int i = 0; i < n_recs; i++)
        CHECK_EQ_INT(
            gcoord_load_record(d, (kbytes){recs[i].key, recs[i].klen}, (kbytes){recs[i].value, recs[i].vlen}),
            0);
    gcoord_load_end(d, 5000);
    CHECK_EQ_INT(gcoord_fetch_offset(d, kstr_c("simple"), kstr_c("t"), 0, &off, &ep, &meta), 0);
    CHECK_EQ_INT(off, 10);
    CHECK(kstr_eq_c(meta, "m0"));
    gcoord_fetch_offset(d, kstr_c("simple"), kstr_c("t"), 1, &off, &ep, &meta);
    CHECK_EQ_INT(off, -1); /* deleted */
    gcoord_fetch_offset(d, kstr_c("cg"), kstr_c("t"), 3, &off, &ep, &meta);
    CHECK_EQ_INT(off, 99);
    const gcoord_group *g = gcoord_find(d, kstr_c("cg"));
    REQUIRE(g != NULL);
    CHECK_EQ_INT(g->state, GCOORD_STABLE);
    CHECK_EQ_INT(g->generation, 1);
    CHECK_EQ_INT(g->n_members, 1);
    /* The member carries on with its generation after the restart. */
    CHECK_EQ_INT(hb(d, "cg", m, 1, 5001), 0);
    sync(d, 4, "cg", m, 1, NULL, NULL, 0, 5002);
    CHECK(strcmp(asg(4), "A") == 0);
    /* It dies: Empty after the session timeout; offsets expire after the
     * retention period of an empty group; then the group is gone. */
    gcoord_tick(d, 16000);
    CHECK_EQ_INT(gcoord_find(d, kstr_c("cg"))->state, GCOORD_EMPTY);
    gcoord_tick(d, 50000);
    gcoord_fetch_offset(d, kstr_c("cg"), kstr_c("t"), 3, &off, &ep, &meta);
    CHECK_EQ_INT(off, 99);
    gcoord_tick(d, 117000);
    gcoord_fetch_offset(d, kstr_c("cg"), kstr_c("t"), 3, &off, &ep, &meta);
    CHECK_EQ_INT(off, -1);
    CHECK(gcoord_find(d, kstr_c("cg")) == NULL);
    /* simple: commit at 2000 + 100000 -> expired by 117000 too */
    CHECK(gcoord_find(d, kstr_c("simple")) == NULL);
    gcoord_shutdown(d, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* Appends beyond the threshold produce a snapshot that alone rebuilds the state. */
static void test_snapshot(void) {
    gcoord_config cfg = test_cfg();
    cfg.snapshot_min_records = 50;
    gcoord *c = make(&cfg);
    for (int i = 0; i < 200; i++) {
        gcoord_commit e = {kstr_c("t"), i % 5, i, -1, KSTR_NULL, 0};
        commit_offsets(c, kstr_c("s"), -1, kstr_c(""), KSTR_NULL, -1, -1, &e, 1, 1000 + i);
        CHECK_EQ_INT(e.error, 0);
    }
    CHECK(snapshots > 0);
    CHECK(n_recs < 60);
    gcoord *d = create(&cfg);
    gcoord_load_begin(d, 0, 5000);
    for (int i = 0; i < n_recs; i++)
        gcoord_load_record(d, (kbytes){recs[i].key, recs[i].klen}, (kbytes){recs[i].value, recs[i].vlen});
    gcoord_load_end(d, 5000);
    for (int p = 0; p < 5; p++) {
        int64_t off;
        int32_t ep;
        kstr meta;
        gcoord_fetch_offset(d, kstr_c("s"), kstr_c("t"), p, &off, &ep, &meta);
        CHECK_EQ_INT(off, 195 + p);
    }
    gcoord_destroy(d);
    gcoord_destroy(c);
}

static void test_append_failure_and_shutdown(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    append_error = KAFKA_ERR_NOT_COORDINATOR;
    gcoord_commit e = {kstr_c("t"), 0, 1, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c("s"), -1, kstr_c(""), KSTR_NULL, -1, -1, &e, 1, 0);
    CHECK_EQ_INT(e.error, KAFKA_ERR_NOT_COORDINATOR);
    int64_t off;
    int32_t ep;
    kstr meta;
    gcoord_fetch_offset(c, kstr_c("s"), kstr_c("t"), 0, &off, &ep, &meta);
    CHECK_EQ_INT(off, -1);
    append_error = 0;
    /* A parked join is answered at shutdown. */
    join(c, 1, "g", "", NULL, RANGE, 1, false, 0);
    join(c, 2, "g", "", NULL, RANGE, 1, false, 0);
    char m1[256];
    strcpy(m1, find_answer(1)->member_id);
    join(c, 3, "g", "", NULL, RANGE, 1, false, 1); /* rebalance; 3 parked */
    CHECK(find_answer(3) == NULL);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    REQUIRE(find_answer(3) != NULL);
    CHECK_EQ_INT(aerr(3), KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

static void test_hash_and_records(void) {
    /* Java: "".hashCode() == 0, "a" == 97, "hello" == 99162322,
     * "console-consumer-1" is negative in Java? check a known one: */
    CHECK_EQ_INT(gcoord_java_hash(kstr_c("")), 0);
    CHECK_EQ_INT(gcoord_java_hash(kstr_c("a")), 97);
    CHECK_EQ_INT(gcoord_java_hash(kstr_c("hello")), 99162322);
    CHECK_EQ_INT(gcoord_java_hash(kstr_c("polygenelubricants")), INT32_MIN);
    CHECK_EQ_INT(gcoord_partition_for(kstr_c("polygenelubricants"), 50), 0);
    /* "é" is U+00E9 (233); U+1F600 is the surrogate pair D83D DE00. */
    CHECK_EQ_INT(gcoord_java_hash(kstr_c("\xc3\xa9")), 233);
    CHECK_EQ_INT(gcoord_java_hash(kstr_c("\xf0\x9f\x98\x80")), 31 * 0xd83d + 0xde00);
    CHECK_EQ_INT(gcoord_partition_for(kstr_c("hello"), 50), 99162322 % 50);

    arena a;
    arena_init(&a, 1 << 20);
    kbytes k, v;
    REQUIRE(grec_encode_offset_key(&a, kstr_c("g"), kstr_c("t"), 7, &k) == 0);
    grec_key dk;
    REQUIRE(grec_decode_key(k, &dk) == 0);
    CHECK_EQ_INT(dk.version, 1);
    CHECK(kstr_eq_c(dk.group, "g") && kstr_eq_c(dk.topic, "t"));
    CHECK_EQ_INT(dk.partition, 7);
    grec_offset o = {5, 3, kstr_c("md"), 100, -1}, od;
    REQUIRE(grec_encode_offset_value(&a, &o, &v) == 0);
    CHECK_EQ_INT(v.ptr[1], 3);
    REQUIRE(grec_decode_offset_value(v, &od) == 0);
    CHECK_EQ_INT(od.offset, 5);
    CHECK_EQ_INT(od.leader_epoch, 3);
    CHECK_EQ_INT(od.commit_ts, 100);
    o.expire_ts = 200;
    REQUIRE(grec_encode_offset_value(&a, &o, &v) == 0);
    CHECK_EQ_INT(v.ptr[1], 1);
    REQUIRE(grec_decode_offset_value(v, &od) == 0);
    CHECK_EQ_INT(od.expire_ts, 200);
    CHECK_EQ_INT(od.leader_epoch, -1);
    grec_member m = {kstr_c("m1"),
                     KSTR_NULL,
                     kstr_c("c"),
                     kstr_c("h"),
                     10,
                     20,
                     {(const uint8_t *)"s", 1},
                     {(const uint8_t *)"as", 2}};
    grec_group gv = {kstr_c("consumer"), 4, kstr_c("range"), kstr_c("m1"), 1234, &m, 1}, gd;
    REQUIRE(grec_encode_group_value(&a, &gv, &v) == 0);
    REQUIRE(grec_decode_group_value(v, &a, &gd) == 0);
    CHECK_EQ_INT(gd.generation, 4);
    CHECK_EQ_INT(gd.n_members, 1);
    CHECK(kstr_eq_c(gd.members[0].member_id, "m1"));
    CHECK(gd.members[0].instance_id.len < 0);
    CHECK_EQ_INT(gd.members[0].assignment.len, 2);
    /* Truncated input never over-reads. */
    for (int32_t n = 0; n < v.len; n++)
        CHECK(grec_decode_group_value((kbytes){v.ptr, n}, &a, &gd) != 0);
    arena_reset(&a);
}

/* The leader never sends its SyncGroup: after the rebalance timeout the
 * members that did not sync are dropped and the others rejoin. Then an
 * Empty group is deleted with tombstones. */
static void test_sync_timeout_and_delete(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 0);
    char m1[256], m2[256];
    strcpy(m1, find_answer(1)->member_id);
    join(c, 2, "g", "", NULL, RANGE, 1, false, 1);
    join(c, 3, "g", m1, NULL, RANGE, 1, false, 2);
    REQUIRE(find_answer(2) != NULL);
    strcpy(m2, find_answer(2)->member_id);
    CHECK_EQ_INT(agen(3), 2);
    sync(c, 4, "g", m2, 2, NULL, NULL, 0, 3); /* follower parks; leader m1 silent */
    for (int64_t t = 5000; t <= 30000; t += 5000) {
        CHECK_EQ_INT(hb(c, "g", m1, 2, t), 0);
        CHECK_EQ_INT(hb(c, "g", m2, 2, t), 0);
    }
    gcoord_tick(c, 29999);
    CHECK_EQ_INT(aerr(4), -999);
    gcoord_tick(c, 30002);
    CHECK_EQ_INT(aerr(4), KAFKA_ERR_REBALANCE_IN_PROGRESS);
    const gcoord_group *g = gcoord_find(c, kstr_c("g"));
    REQUIRE(g != NULL);
    CHECK_EQ_INT(g->n_members, 1);
    CHECK_EQ_INT(g->state, GCOORD_PREPARING_REBALANCE);
    CHECK(strcmp(g->members[0]->member_id, m2) == 0);
    join(c, 5, "g", m2, NULL, RANGE, 1, false, 30002);
    CHECK_EQ_INT(agen(5), 3);
    int16_t ge;
    CHECK_EQ_INT(gcoord_leave(c, kstr_c("g"), kstr_c(m2), KSTR_NULL, &ge, 30003), 0);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_EMPTY);
    int before = n_recs;
    CHECK_EQ_INT(delete_group(c, kstr_c("g"), 30004), 0);
    CHECK(gcoord_find(c, kstr_c("g")) == NULL);
    CHECK(n_recs > before);
    CHECK_EQ_INT(recs[n_recs - 1].vlen, -1); /* a tombstone */
    CHECK_EQ_INT(delete_group(c, kstr_c("g"), 30005), KAFKA_ERR_GROUP_ID_NOT_FOUND);
    /* As in Kafka, "" is a group id for DeleteGroups; only null is invalid. */
    CHECK_EQ_INT(delete_group(c, kstr_c(""), 30005), KAFKA_ERR_GROUP_ID_NOT_FOUND);
    CHECK_EQ_INT(delete_group(c, KSTR_NULL, 30005), KAFKA_ERR_INVALID_GROUP_ID);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* The leader's SyncGroup must not match every member against every entry
 * of the assignment list: 4000 members and 200000 entries (a few MB of
 * request) took seconds under the shard lock. */
static void test_sync_many_members_and_assignments(void) {
    gcoord_config cfg = test_cfg();
    cfg.initial_rebalance_delay_ms = 3000;
    gcoord *c = make(&cfg);
    enum { MEMBERS = 4000, ASSIGN = 200000 };
    for (int i = 0; i < MEMBERS; i++)
        join(c, i + 1, "big", "", NULL, RANGE, 1, false, 0);
    for (int64_t t = 3000; t <= 60000 && find_answer(1) == NULL; t += 3000)
        gcoord_tick(c, t);
    const answer *a = find_answer(1);
    REQUIRE(a != NULL && a->error == 0);
    REQUIRE(strcmp(a->leader, a->member_id) == 0);
    CHECK_EQ_INT(a->n_members, MEMBERS);
    char leader[256];
    strcpy(leader, a->member_id);
    int32_t gen = a->generation;
    n_answers = 0; /* the joins filled the sink */
    kstr *ids = calloc(ASSIGN, sizeof *ids);
    kbytes *as = calloc(ASSIGN, sizeof *as);
    char(*names)[16] = calloc(ASSIGN, sizeof *names);
    REQUIRE(ids != NULL && as != NULL && names != NULL);
    for (int i = 0; i < ASSIGN; i++) {
        snprintf(names[i], sizeof names[i], "nobody-%d", i);
        ids[i] = kstr_c(names[i]);
        as[i] = (kbytes){(const uint8_t *)"X", 1};
    }
    ids[ASSIGN - 1] = kstr_c(leader); /* the leader's own, last */
    as[ASSIGN - 1] = (kbytes){(const uint8_t *)"L1", 2};
    ids[ASSIGN - 2] = kstr_c(leader); /* the first of two entries wins */
    as[ASSIGN - 2] = (kbytes){(const uint8_t *)"L0", 2};
    gcoord_sync_req r = {.group_id = kstr_c("big"),
                         .member_id = kstr_c(leader),
                         .instance_id = KSTR_NULL,
                         .generation = gen,
                         .protocol_type = KSTR_NULL,
                         .protocol_name = KSTR_NULL,
                         .assign_member = ids,
                         .assign_bytes = as,
                         .n_assign = ASSIGN};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gcoord_sync(c, &r, (void *)(intptr_t)100000, 4000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(secs < 1.0);
    const answer *s = find_answer(100000);
    REQUIRE(s != NULL);
    CHECK_EQ_INT(s->error, 0);
    CHECK(strcmp(s->assignment, "L0") == 0);
    free(ids);
    free(as);
    free(names);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* ---- asynchronous appends, leadership, topic removal --------------------- */

static int64_t fetched(gcoord *c, const char *group, const char *topic, int32_t p) {
    int64_t off;
    int32_t ep;
    kstr meta;
    int16_t e = gcoord_fetch_offset(c, kstr_c(group), kstr_c(topic), p, &off, &ep, &meta);
    return e ? -1000 - e : off;
}

/* One partition's commit with its own token (the answer stays in dones[]). */
static void commit1(gcoord *c, int token, const char *group, int32_t gen, const char *member,
                    const char *topic, int32_t p, int64_t off, int64_t now) {
    gcoord_commit e = {kstr_c(topic), p, off, -1, KSTR_NULL, 0};
    gcoord_commit_offsets(c, kstr_c(group), gen, kstr_c(member), KSTR_NULL, -1, -1, &e, 1,
                          (void *)(intptr_t)token, now);
}

static int derr(int token) {
    const done_rec *d = find_done(token);
    return d ? (d->n > 0 ? d->errs[0] : d->error) : -999;
}

/* A fresh machine loaded from recs[] (synchronous owner). */
static gcoord *reload(const gcoord_config *cfg, int64_t now) {
    gcoord *d = create(cfg);
    gcoord_load_begin(d, 0, now);
    for (int i = 0; i < n_recs; i++)
        gcoord_load_record(d, (kbytes){recs[i].key, recs[i].klen}, (kbytes){recs[i].value, recs[i].vlen});
    gcoord_load_end(d, now);
    return d;
}

/* OffsetCommit is answered when its append is done, not when it is
 * written; the offset is visible only then; a failed append answers with
 * Kafka's mapping and stays invisible; outcomes reported out of order are
 * processed in issue order; unknown ids are ignored; the number of appends
 * outstanding at the owner is bounded. */
static void test_async_commit(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    fake *f = fake_of(c);
    f->async = true;
    commit1(c, 1, "s", -1, "", "t", 0, 10, 2000);
    CHECK_EQ_INT(derr(1), -999); /* parked */
    CHECK_EQ_INT(fetched(c, "s", "t", 0), -1);
    CHECK_EQ_INT(gcoord_appends_outstanding(c), 1);
    complete_queued(f, 0, 0, 2001);
    CHECK_EQ_INT(derr(1), 0);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), 10);
    /* A failed write: NOT_COORDINATOR for the client, the old offset stays. */
    commit1(c, 2, "s", -1, "", "t", 0, 11, 2002);
    complete_queued(f, 0, KAFKA_ERR_KAFKA_STORAGE_ERROR, 2003);
    CHECK_EQ_INT(derr(2), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), 10);
    commit1(c, 3, "s", -1, "", "t", 0, 12, 2004);
    complete_queued(f, 0, KAFKA_ERR_MESSAGE_TOO_LARGE, 2005);
    CHECK_EQ_INT(derr(3), KAFKA_ERR_INVALID_COMMIT_OFFSET_SIZE);
    commit1(c, 4, "s", -1, "", "t", 0, 13, 2006);
    complete_queued(f, 0, KAFKA_ERR_REQUEST_TIMED_OUT, 2007);
    CHECK_EQ_INT(derr(4), KAFKA_ERR_COORDINATOR_NOT_AVAILABLE);
    /* Out of order: the later one waits for the earlier one. */
    commit1(c, 5, "s", -1, "", "t", 0, 20, 2008);
    commit1(c, 6, "s", -1, "", "t", 0, 21, 2009);
    complete_queued(f, 1, 0, 2010);
    CHECK_EQ_INT(derr(6), -999);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), 10);
    complete_queued(f, 0, 0, 2011);
    CHECK_EQ_INT(derr(5), 0);
    CHECK_EQ_INT(derr(6), 0);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), 21);
    CHECK(find_done(5) < find_done(6));     /* answered in issue order */
    gcoord_append_done(c, 123456, 0, 2012); /* unknown: ignored */
    gcoord_append_done(c, 1, 0, 2012);      /* repeated: ignored */
    /* Refused at once by the owner. */
    append_refuse = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    commit1(c, 7, "s", -1, "", "t", 1, 30, 2013);
    CHECK_EQ_INT(derr(7), KAFKA_ERR_NOT_COORDINATOR);
    append_refuse = 0;
    /* The outstanding bound: the next write is refused (retriable). */
    n_dones = 0;
    for (int i = 0; i < GCOORD_APPENDS_MAX; i++)
        commit1(c, 1000 + i, "s", -1, "", "t", 2, 100 + i, 3000);
    CHECK_EQ_INT(gcoord_appends_outstanding(c), GCOORD_APPENDS_MAX);
    CHECK_EQ_INT(n_dones, 0);
    commit1(c, 9999, "s", -1, "", "t", 3, 1, 3001);
    CHECK_EQ_INT(derr(9999), KAFKA_ERR_COORDINATOR_NOT_AVAILABLE);
    complete_all(f, 0, 3002);
    CHECK_EQ_INT(n_dones, GCOORD_APPENDS_MAX + 1);
    CHECK_EQ_INT(fetched(c, "s", "t", 2), 100 + GCOORD_APPENDS_MAX - 1);
    CHECK_EQ_INT(gcoord_appends_outstanding(c), 0);
    /* A join refused for its protocol does not drop a group whose first
     * commit is still in flight. */
    commit1(c, 20000, "x", -1, "", "t", 0, 5, 3003);
    gcoord_join_req bad = {.group_id = kstr_c("x"),
                           .member_id = kstr_c(""),
                           .instance_id = KSTR_NULL,
                           .protocol_type = kstr_c(""),
                           .client_id = kstr_c("c"),
                           .client_host = kstr_c("h"),
                           .session_timeout_ms = 10000,
                           .rebalance_timeout_ms = 10000,
                           .protocol_names = (kstr[]){kstr_c("range")},
                           .protocol_metadata = (kbytes[]){{NULL, 0}},
                           .n_protocols = 1};
    gcoord_join(c, &bad, (void *)20001, 3004);
    CHECK_EQ_INT(aerr(20001), KAFKA_ERR_INCONSISTENT_GROUP_PROTOCOL);
    complete_all(f, 0, 3005);
    CHECK_EQ_INT(derr(20000), 0);
    CHECK_EQ_INT(fetched(c, "x", "t", 0), 5);
    /* Everything acknowledged survives a reload; nothing that failed shows. */
    gcoord *d = reload(&cfg, 4000);
    CHECK_EQ_INT(fetched(d, "s", "t", 0), 21);
    CHECK_EQ_INT(fetched(d, "s", "t", 1), -1);
    CHECK_EQ_INT(fetched(d, "s", "t", 2), 100 + GCOORD_APPENDS_MAX - 1);
    gcoord_shutdown(d, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* The leader's SyncGroup answers everyone once the generation is stored; a
 * failed store answers the mapped error and rebalances; a store overtaken
 * by a rebalance decides nothing; a reload sees the last stored one. */
static void test_async_sync_store(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    fake *f = fake_of(c);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 1000);
    char m1[256], m2[256];
    strcpy(m1, find_answer(1)->member_id);
    const char *ids1[] = {m1};
    const char *as1[] = {"A"};
    sync(c, 2, "g", m1, 1, ids1, as1, 1, 1001); /* synchronous: generation 1 stored */
    CHECK(strcmp(asg(2), "A") == 0);
    f->async = true;
    join(c, 3, "g", "", NULL, RANGE, 1, false, 1002);
    join(c, 4, "g", m1, NULL, RANGE, 1, false, 1003);
    REQUIRE(find_answer(3) && find_answer(4));
    strcpy(m2, find_answer(3)->member_id);
    CHECK_EQ_INT(agen(4), 2);
    sync(c, 5, "g", m2, 2, NULL, NULL, 0, 1004);
    const char *ids[] = {m1, m2};
    const char *as[] = {"P0", "P1"};
    sync(c, 6, "g", m1, 2, ids, as, 2, 1005);
    CHECK(find_answer(5) == NULL && find_answer(6) == NULL); /* the store is in flight */
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_COMPLETING_REBALANCE);
    sync(c, 7, "g", m1, 2, ids, as, 2, 1006); /* the leader again: no second store */
    CHECK_EQ_INT(aerr(6), KAFKA_ERR_REBALANCE_IN_PROGRESS);
    CHECK_EQ_INT(unresolved(f), 1);
    complete_queued(f, 0, 0, 1007);
    CHECK(strcmp(asg(5), "P1") == 0);
    CHECK(strcmp(asg(7), "P0") == 0);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_STABLE);
    /* Generation 3: the store fails. */
    join(c, 8, "g", m2, NULL, RANGE, 1, false, 1008); /* a follower rejoining in Stable: same generation */
    join(c, 9, "g", m1, NULL, RANGE, 1, false, 1009); /* the leader rejoins: rebalance */
    join(c, 10, "g", m2, NULL, RANGE, 1, false, 1010);
    REQUIRE(find_answer(9) && find_answer(10));
    CHECK_EQ_INT(agen(9), 3);
    sync(c, 11, "g", m2, 3, NULL, NULL, 0, 1011);
    sync(c, 12, "g", m1, 3, ids, as, 2, 1012);
    complete_queued(f, 0, KAFKA_ERR_NOT_LEADER_OR_FOLLOWER, 1013);
    CHECK_EQ_INT(aerr(11), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(aerr(12), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_PREPARING_REBALANCE);
    /* Generation 4: a join overtakes the store; its later success changes
     * no state (the syncs were answered REBALANCE_IN_PROGRESS). */
    join(c, 13, "g", m1, NULL, RANGE, 1, false, 1014);
    join(c, 14, "g", m2, NULL, RANGE, 1, false, 1015);
    CHECK_EQ_INT(agen(13), 4);
    sync(c, 15, "g", m1, 4, ids, as, 2, 1016);
    join(c, 16, "g", "", NULL, RANGE, 1, false, 1017);
    CHECK_EQ_INT(aerr(15), KAFKA_ERR_REBALANCE_IN_PROGRESS);
    complete_queued(f, 0, 0, 1018);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("g"))->state, GCOORD_PREPARING_REBALANCE);
    /* The log has generation 4 (its store succeeded), never 3. */
    gcoord *d = reload(&cfg, 2000);
    CHECK_EQ_INT(gcoord_find(d, kstr_c("g"))->generation, 4);
    gcoord_shutdown(d, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    drop_queue(f);
    gcoord_destroy(c);
}

/* DeleteGroups: Dead while the tombstones are in flight, back to Empty
 * when they fail, gone when they are written. */
static void test_async_delete_group(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    fake *f = fake_of(c);
    commit1(c, 1, "s", -1, "", "t", 0, 5, 1000);
    CHECK_EQ_INT(derr(1), 0);
    f->async = true;
    commit1(c, 2, "s", -1, "", "t", 1, 6, 1001); /* in flight when the delete is issued */
    gcoord_delete_group(c, kstr_c("s"), (void *)3, 1002);
    CHECK_EQ_INT(derr(3), -999);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("s"))->state, GCOORD_DEAD);
    commit1(c, 4, "s", -1, "", "t", 0, 7, 1003);
    CHECK_EQ_INT(derr(4), KAFKA_ERR_COORDINATOR_NOT_AVAILABLE);
    join(c, 5, "s", "", NULL, RANGE, 1, false, 1003);
    CHECK_EQ_INT(aerr(5), KAFKA_ERR_COORDINATOR_NOT_AVAILABLE);
    gcoord_delete_group(c, kstr_c("s"), (void *)6, 1004);
    CHECK_EQ_INT(derr(6), KAFKA_ERR_GROUP_ID_NOT_FOUND);
    complete_queued(f, 0, 0, 1005);                             /* the commit */
    complete_queued(f, 0, KAFKA_ERR_KAFKA_STORAGE_ERROR, 1006); /* the tombstones */
    CHECK_EQ_INT(derr(3), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(gcoord_find(c, kstr_c("s"))->state, GCOORD_EMPTY);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), 5);
    CHECK_EQ_INT(fetched(c, "s", "t", 1), 6);
    /* Again, with a commit in flight: its offset is covered too. */
    commit1(c, 7, "s", -1, "", "t", 2, 8, 1007);
    gcoord_delete_group(c, kstr_c("s"), (void *)8, 1008);
    complete_all(f, 0, 1009);
    CHECK_EQ_INT(derr(7), 0);
    CHECK_EQ_INT(derr(8), 0);
    CHECK(gcoord_find(c, kstr_c("s")) == NULL);
    gcoord *d = reload(&cfg, 2000);
    CHECK(gcoord_find(d, kstr_c("s")) == NULL);
    CHECK_EQ_INT(fetched(d, "s", "t", 2), -1);
    gcoord_shutdown(d, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* Leadership: unloaded until load_begin, loading until load_end; unload
 * answers everything parked NOT_COORDINATOR and drops the state; events of
 * an older epoch are ignored; a later load rebuilds from the log. */
static void test_load_unload(void) {
    gcoord_config cfg = test_cfg();
    reset_sink();
    gcoord *c = create(&cfg);
    fake *f = fake_of(c);
    join(c, 1, "g", "", NULL, RANGE, 1, false, 0);
    CHECK_EQ_INT(aerr(1), KAFKA_ERR_NOT_COORDINATOR);
    commit1(c, 2, "s", -1, "", "t", 0, 1, 0);
    CHECK_EQ_INT(derr(2), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), -1000 - KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(hb(c, "g", "m", 1, 0), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(gcoord_epoch(c), -1);
    CHECK(!gcoord_active(c) && !gcoord_loading(c));
    CHECK(!gcoord_unload(c, 0, 0));
    CHECK(gcoord_load_begin(c, 5, 0));
    CHECK(!gcoord_load_begin(c, 5, 0)); /* already */
    CHECK(!gcoord_load_begin(c, 4, 0)); /* stale */
    CHECK(gcoord_loading(c));
    join(c, 3, "g", "", NULL, RANGE, 1, false, 0);
    CHECK_EQ_INT(aerr(3), KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    gcoord_load_end(c, 10);
    CHECK(gcoord_active(c));
    commit1(c, 4, "s", -1, "", "t", 0, 42, 11);
    CHECK_EQ_INT(derr(4), 0);
    /* Parked: a join in an initial... a second member's rejoin, and a commit in flight. */
    join(c, 5, "g", "", NULL, RANGE, 1, false, 12);
    char m1[256];
    strcpy(m1, find_answer(5)->member_id);
    join(c, 6, "g", "", NULL, RANGE, 1, false, 13); /* parked: m1 must rejoin */
    CHECK(find_answer(6) == NULL);
    f->async = true;
    commit1(c, 7, "s", -1, "", "t", 0, 43, 14);
    CHECK(!gcoord_unload(c, 4, 15)); /* an older epoch's resignation */
    CHECK(gcoord_active(c));
    CHECK(gcoord_unload(c, 5, 16));
    CHECK_EQ_INT(aerr(6), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(derr(7), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(gcoord_group_count(c), 0);
    CHECK_EQ_INT(gcoord_next_deadline(c), INT64_MAX);
    commit1(c, 8, "s", -1, "", "t", 0, 44, 17);
    CHECK_EQ_INT(derr(8), KAFKA_ERR_NOT_COORDINATOR);
    int before = n_dones;
    complete_all(f, 0, 18); /* the abandoned append completes: ignored */
    CHECK_EQ_INT(n_dones, before);
    /* Leader again at epoch 6: loads what the log has (43 was written). */
    f->async = false;
    CHECK(gcoord_load_begin(c, 6, 20));
    for (int i = 0; i < n_recs; i++)
        gcoord_load_record(c, (kbytes){recs[i].key, recs[i].klen}, (kbytes){recs[i].value, recs[i].vlen});
    gcoord_load_end(c, 21);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), 43);
    CHECK_EQ_INT(gcoord_epoch(c), 6);
    /* A new leadership while loaded drops the state and loads again. */
    CHECK(gcoord_load_begin(c, 7, 22));
    CHECK_EQ_INT(gcoord_group_count(c), 0);
    gcoord_load_end(c, 23);
    CHECK_EQ_INT(fetched(c, "s", "t", 0), -1);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    CHECK(!gcoord_load_begin(c, 8, 24));
    gcoord_destroy(c);
}

/* A snapshot taken while appends are in flight includes them; one of them
 * that fails is durable through the snapshot (so the machine applies it when
 * the snapshot is done), unless a later successful write to the same key
 * superseded it. */
static void test_snapshot_with_appends_in_flight(void) {
    gcoord_config cfg = test_cfg();
    cfg.snapshot_min_records = 6;
    gcoord *c = make(&cfg);
    fake *f = fake_of(c);
    commit1(c, 1, "s", -1, "", "k", 0, 1, 1000); /* synchronous */
    f->async = true;
    commit1(c, 2, "s", -1, "", "k", 0, 5, 1001); /* will fail */
    kstr kt = kstr_c("k");
    int32_t kp = 0;
    gcoord_delete_offsets(c, kstr_c("s"), &kt, &kp, 1, (void *)3, 1002); /* succeeds after it */
    commit1(c, 4, "s", -1, "", "w", 0, 9, 1003);                         /* will fail, nothing later */
    commit1(c, 5, "s", -1, "", "x", 0, 10, 1004);
    CHECK_EQ_INT(unresolved(f), 4);
    commit1(c, 6, "s", -1, "", "y", 0, 11, 1005); /* crosses the threshold: a snapshot follows */
    REQUIRE(f->n_queue == 6);
    CHECK(f->queue[5].snapshot);
    complete_queued(f, 0, KAFKA_ERR_KAFKA_STORAGE_ERROR, 1006);
    complete_queued(f, 0, 0, 1007);
    complete_queued(f, 0, KAFKA_ERR_KAFKA_STORAGE_ERROR, 1008);
    CHECK_EQ_INT(derr(2), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(derr(4), KAFKA_ERR_NOT_COORDINATOR);
    CHECK_EQ_INT(fetched(c, "s", "w", 0), -1); /* failed, and the snapshot is not done */
    complete_all(f, 0, 1009);
    /* What the log holds now (the snapshot and nothing before it) ... */
    gcoord *d = reload(&cfg, 2000);
    CHECK_EQ_INT(fetched(d, "s", "k", 0), -1);
    CHECK_EQ_INT(fetched(d, "s", "w", 0), 9);
    CHECK_EQ_INT(fetched(d, "s", "x", 0), 10);
    CHECK_EQ_INT(fetched(d, "s", "y", 0), 11);
    /* ... is what the machine shows. */
    CHECK_EQ_INT(fetched(c, "s", "k", 0), -1);
    CHECK_EQ_INT(fetched(c, "s", "w", 0), 9);
    CHECK_EQ_INT(fetched(c, "s", "y", 0), 11);
    gcoord_shutdown(d, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

/* DeleteTopics removes the topic's committed offsets from every group: at
 * once for OffsetFetch, with tombstones in bounded steps; a commit for the
 * re-created topic in a group not yet visited is not deleted by them. */
static void test_remove_topic(void) {
    gcoord_config cfg = test_cfg();
    gcoord *c = make(&cfg);
    enum { GROUPS = 2 * GCOORD_REMOVE_STEP_GROUPS + 500 };
    char name[32];
    for (int i = 0; i < GROUPS; i++) {
        snprintf(name, sizeof name, "g%d", i);
        gcoord_commit es[2] = {{kstr_c("t"), 0, 100, -1, KSTR_NULL, 0},
                               {kstr_c("u"), 0, 7, -1, KSTR_NULL, 0}};
        commit_offsets(c, kstr_c(name), -1, kstr_c(""), KSTR_NULL, -1, -1, es, 2, 1000);
    }
    int before = n_recs;
    CHECK_EQ_INT(gcoord_remove_topic(c, kstr_c("t"), 2000), 0);
    CHECK_EQ_INT(fetched(c, "g0", "t", 0), -1);
    CHECK_EQ_INT(fetched(c, "g1", "u", 0), 7);
    snprintf(name, sizeof name, "g%d", GROUPS - 1);
    CHECK_EQ_INT(fetched(c, name, "t", 0), -1);
    /* Bounded: one step wrote at most a step's worth of tombstones. */
    CHECK(n_recs - before > 0);
    CHECK(n_recs - before <= GCOORD_REMOVE_STEP_OFFSETS + 1);
    CHECK(gcoord_next_deadline(c) <= 2000);
    /* The topic is re-created; a group that may not be visited yet commits for it. */
    int later = -1;
    for (int i = GROUPS - 1; i >= 0 && later < 0; i--) {
        snprintf(name, sizeof name, "g%d", i);
        if (gcoord_find(c, kstr_c(name))->topic_epoch == 0)
            later = i;
    }
    REQUIRE(later >= 0);
    snprintf(name, sizeof name, "g%d", later);
    gcoord_commit e = {kstr_c("t"), 0, 3, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c(name), -1, kstr_c(""), KSTR_NULL, -1, -1, &e, 1, 2001);
    CHECK_EQ_INT(e.error, 0);
    int ticks = 0;
    for (int64_t t = 2002; gcoord_next_deadline(c) <= t && ticks < 100; t++, ticks++)
        gcoord_tick(c, t);
    CHECK(ticks >= 2 && ticks < 100);
    CHECK_EQ_INT(fetched(c, name, "t", 0), 3);
    /* Every tombstone went to the log: a reload agrees. */
    gcoord *d = reload(&cfg, 3000);
    CHECK_EQ_INT(fetched(d, "g0", "t", 0), -1);
    CHECK_EQ_INT(fetched(d, "g0", "u", 0), 7);
    CHECK_EQ_INT(fetched(d, name, "t", 0), 3);
    int64_t left = 0;
    for (int i = 0; i < GROUPS; i++) {
        snprintf(name, sizeof name, "g%d", i);
        left += fetched(d, name, "t", 0) >= 0;
    }
    CHECK_EQ_INT(left, 1);
    gcoord_shutdown(d, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d);
    /* Removed while loading: what is read is removed at the end. */
    gcoord *e2 = create(&cfg);
    gcoord_load_begin(e2, 0, 4000);
    CHECK_EQ_INT(gcoord_remove_topic(e2, kstr_c("u"), 4000), 0);
    for (int i = 0; i < n_recs; i++)
        gcoord_load_record(e2, (kbytes){recs[i].key, recs[i].klen}, (kbytes){recs[i].value, recs[i].vlen});
    gcoord_load_end(e2, 4001);
    CHECK_EQ_INT(fetched(e2, "g0", "u", 0), -1);
    for (int64_t t = 4002; gcoord_next_deadline(e2) <= t && t < 4100; t++)
        gcoord_tick(e2, t);
    gcoord *d2 = reload(&cfg, 5000);
    CHECK_EQ_INT(fetched(d2, "g5", "u", 0), -1);
    CHECK_EQ_INT(gcoord_remove_topic(create(&cfg), kstr_c("u"), 5000), KAFKA_ERR_NOT_COORDINATOR);
    gcoord_shutdown(d2, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(d2);
    gcoord_destroy(fakes[(n_fakes - 1) % 4].c);
    gcoord_shutdown(e2, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(e2);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
    /* A shard without groups has nothing to remove: nothing is kept waiting. */
    gcoord *empty = make(&cfg);
    int16_t last = 0;
    char tn[32];
    for (int i = 0; i <= GCOORD_REMOVED_TOPICS_MAX && last == 0; i++) {
        snprintf(tn, sizeof tn, "topic-%d", i);
        last = gcoord_remove_topic(empty, kstr_c(tn), 6000);
    }
    CHECK_EQ_INT(last, 0);
    gcoord_shutdown(empty, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(empty);
}

static double secs_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* OffsetDelete with many partitions (each listed twice) must not compare
 * every partition with every other, nor scan every member's subscription
 * for each: 60,000 x 2 partitions took seconds under the shard lock. */
static void test_delete_offsets_many(void) {
    gcoord_config cfg = test_cfg();
    cfg.snapshot_min_records = INT32_MAX;
    cfg.initial_rebalance_delay_ms = 3000; /* the members below join one generation */
    gcoord *c = make(&cfg);
    enum { P = 60000, N = 2 * P };
    gcoord_commit *es = calloc(P, sizeof *es);
    kstr *ts = calloc(N, sizeof *ts);
    int32_t *ps = calloc(N, sizeof *ps);
    int16_t *errs = calloc(N, sizeof *errs);
    REQUIRE(es && ts && ps && errs);
    for (int i = 0; i < P; i++)
        es[i] = (gcoord_commit){kstr_c("t"), i, i, -1, KSTR_NULL, 0};
    commit_offsets(c, kstr_c("s"), -1, kstr_c(""), KSTR_NULL, -1, -1, es, P, 1000);
    CHECK_EQ_INT(es[P - 1].error, 0);
    for (int i = 0; i < N; i++) {
        ts[i] = kstr_c("t");
        ps[i] = i % P;
    }
    int before = n_recs;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(delete_offsets(c, kstr_c("s"), ts, ps, N, errs, 1001), 0);
    double secs = secs_since(&t0);
    fprintf(stderr, "test_delete_offsets_many: %d partitions (each twice) in %.3f s\n", P, secs);
    CHECK(secs < 1.0);
    CHECK_EQ_INT(n_recs - before, P); /* one tombstone each */
    CHECK_EQ_INT(fetched(c, "s", "t", 5), -1);
    /* A consumer group of many members, each subscribed to many topics. */
    enum { MEMBERS = 400, SUBS = 200 };
    uint8_t *meta = malloc(6 + SUBS * 8);
    size_t ml = 0;
    meta[ml++] = 0;
    meta[ml++] = 1;
    meta[ml++] = 0;
    meta[ml++] = 0;
    meta[ml++] = (SUBS >> 8) & 0xff;
    meta[ml++] = SUBS & 0xff;
    for (int i = 0; i < SUBS; i++) {
        char tn[8];
        snprintf(tn, sizeof tn, "s%04d", i);
        meta[ml++] = 0;
        meta[ml++] = 5;
        memcpy(meta + ml, tn, 5);
        ml += 5;
    }
    for (int i = 0; i < MEMBERS; i++) {
        kstr names[1] = {kstr_c("range")};
        kbytes metas[1] = {{meta, (int32_t)ml}};
        gcoord_join_req r = {.group_id = kstr_c("cg"),
                             .member_id = kstr_c(""),
                             .instance_id = KSTR_NULL,
                             .protocol_type = kstr_c("consumer"),
                             .client_id = kstr_c("c"),
                             .client_host = kstr_c("h"),
                             .session_timeout_ms = 10000,
                             .rebalance_timeout_ms = 10000,
                             .protocol_names = names,
                             .protocol_metadata = metas,
                             .n_protocols = 1};
        gcoord_join(c, &r, (void *)(intptr_t)(i + 1), 2000 + i);
    }
    gcoord_tick(c, 13000); /* the rebalance timeout: a generation with every member */
    const gcoord_group *g = gcoord_find(c, kstr_c("cg"));
    REQUIRE(g && g->n_members == MEMBERS);
    for (int i = 0; i < N; i++)
        ts[i] = kstr_c(i % 2 ? "s0100" : "other");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(delete_offsets(c, kstr_c("cg"), ts, ps, N, errs, 13001), 0);
    secs = secs_since(&t0);
    fprintf(stderr, "test_delete_offsets_many: %d partitions against %d members x %d topics in %.3f s\n", N,
            MEMBERS, SUBS, secs);
    CHECK(secs < 1.0);
    CHECK_EQ_INT(errs[0], 0);
    CHECK_EQ_INT(errs[1], KAFKA_ERR_GROUP_SUBSCRIBED_TO_TOPIC);
    free(meta);
    free(es);
    free(ts);
    free(ps);
    free(errs);
    gcoord_shutdown(c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(c);
}

int main(void) {
    UNIT_RUN(test_single_member_v4);
    UNIT_RUN(test_two_members_and_rebalance);
    UNIT_RUN(test_rebalance_events);
    UNIT_RUN(test_rebalance_timeout);
    UNIT_RUN(test_initial_delay);
    UNIT_RUN(test_protocols);
    UNIT_RUN(test_max_size);
    UNIT_RUN(test_static_membership);
    UNIT_RUN(test_offsets_and_reload);
    UNIT_RUN(test_snapshot);
    UNIT_RUN(test_append_failure_and_shutdown);
    UNIT_RUN(test_hash_and_records);
    UNIT_RUN(test_sync_timeout_and_delete);
    UNIT_RUN(test_sync_many_members_and_assignments);
    UNIT_RUN(test_async_commit);
    UNIT_RUN(test_async_sync_store);
    UNIT_RUN(test_async_delete_group);
    UNIT_RUN(test_load_unload);
    UNIT_RUN(test_snapshot_with_appends_in_flight);
    UNIT_RUN(test_remove_topic);
    UNIT_RUN(test_delete_offsets_many);
    reset_sink();
    free(last_errs);
    return UNIT_END("test_group");
}
