/*
 * scenario_groups.c - the group coordinator's state machine under simulated
 * consumers, network delays, a log that completes appends late or fails
 * them, coordinator crash-restarts and moves of its leadership.
 *
 * The world: one coordinator (one __consumer_offsets shard) whose appends go
 * to a simulated log, 1-3 groups and 1-6 simulated consumers per group, and
 * a simple consumer. Each consumer runs the classic protocol as a client
 * library does: JoinGroup (v4 two-step or not, static or dynamic),
 * SyncGroup (the leader assigns), heartbeats at a third of its session
 * timeout, OffsetCommit now and then, and back to JoinGroup on
 * REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
 * NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS.
 *
 * The log (the owner of the machine's appends): per seed it completes
 * appends inside the append call (a single node), later after a random delay
 * (a replicated log; outcomes may be reported out of order, the log keeps
 * issue order), or a mix; it refuses some at once, fails some (a full disk
 * for a while, timeouts, too few replicas), and a full disk fails every
 * append for a stretch. A record is in the log once its append and every
 * append before it are resolved; a failed append writes nothing; a snapshot
 * replaces what is before it.
 *
 * Faults from the seed: request and response delays (reordering across
 * consumers), consumers that leave, crash (fall silent and come back as new
 * members) or pause past their session timeout, whole-group outages,
 * coordinator crash-restarts (parked requests are answered NOT_COORDINATOR,
 * appends not yet reported are lost, except that the log keeps a random
 * prefix of them and everything before one it reported done; the machine is
 * rebuilt from the log), and leadership moves (the machine unloads, appends
 * still in flight land or fail meanwhile, then it loads again from the log
 * at a later epoch, with requests answered NOT_COORDINATOR and then
 * COORDINATOR_LOAD_IN_PROGRESS in between). The last quarter of a run is
 * quiet: no faults, so the groups must settle.
 *
 * Invariants, checked after every step:
 *   - assignment: within one (group, generation) every successful SyncGroup
 *     answer carries an assignment written by the same leader for that
 *     member and that generation;
 *   - a member's generation never goes down while it lives, except across a
 *     reload that forgot a generation no SyncGroup completed;
 *   - offsets: an OffsetCommit answered with error 0 is visible after any
 *     number of restarts and leadership moves (OffsetFetch gives it or a
 *     later commit); OffsetFetch never shows an offset that is not durable
 *     (in the log, or in it at some point: a failed commit stays invisible
 *     unless a snapshot made it durable after all); when nothing is in
 *     flight, OffsetFetch equals the replay of the log;
 *   - no OffsetCommit is answered 0 before its append was reported done;
 *   - liveness: every parked JoinGroup, SyncGroup and OffsetCommit is
 *     answered exactly once, within a bound derived from the timeouts;
 *   - settling: at the end of the quiet period every live consumer of a
 *     group is Stable in the same generation.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group/coordinator.h"
#include "group/records.h"
#include "proto/gen/kafka_msgs.h"
#include "sim.h"

#define GROUPS_MAX    3
#define MEMBERS_MAX   18
#define PARTITIONS    4
#define TOKENS_MAX    4096
#define LOG_RECS_MAX  200000
#define APPENDS_Q_MAX 8192
#define ASSIGN_MAX    320
#define GENS_TRACKED  4096
#define ID_MAX        128
#define SIMPLE        (-1) /* the member index of the simple consumer's tokens */

typedef enum mstate { M_IDLE, M_JOINING, M_SYNCING, M_STABLE, M_GONE } mstate;

typedef struct member {
    int idx, group;
    mstate st;
    uint64_t life; /* bumped when it crashes or leaves: stale events are dropped */
    char id[ID_MAX];
    char instance[32]; /* "" for dynamic members */
    bool v4;
    int32_t gen, last_gen;
    bool leader;
    int n_peers;
    char peers[MEMBERS_MAX][ID_MAX];
    char peer_inst[MEMBERS_MAX][32];
    int32_t session_ms, rebalance_ms;
    int gen_restarts; /* coordinator restarts seen when last_gen was set */
    bool busy;        /* a request is outstanding (one at a time, as a client's coordinator connection) */
    char assignment[ASSIGN_MAX];
    int crashes;
} member;

typedef enum tkind { T_JOIN, T_SYNC, T_COMMIT } tkind;

typedef struct token {
    bool used;
    int member; /* SIMPLE for the simple consumer */
    uint64_t life;
    tkind kind;
    int64_t parked_at;
    bool answered;
    int group, partition; /* commits */
    int64_t value;
} token;

typedef struct log_rec {
    uint8_t *key, *value;
    int32_t klen, vlen;
} log_rec;

/* An append the log accepted and has not put in order yet. */
typedef struct append {
    uint64_t id;
    int machine; /* the machine instance that issued it */
    bool snapshot;
    log_rec *recs;
    int n;
    bool resolved; /* its outcome is decided (and reported, unless the machine is gone) */
    int16_t err;   /* decided when issued */
} append;

typedef struct gen_leader {
    int group;
    int32_t gen;
    char leader[ID_MAX];
} gen_leader;

/* What is known of each commit value (values are unique: next_offset). */
enum { V_COMPLETED = 1, V_DURABLE = 2, V_ACKED = 4, V_FAILED = 8 };

typedef struct world {
    sim *s;
    gcoord_config cfg;
    gcoord *c;
    int machine;     /* bumped when the machine is rebuilt (a crash-restart) */
    int incarnation; /* bumped at every load (restart or leadership move) */
    int restarts, moves;
    int32_t epoch;
    bool loaded; /* the machine serves (not unloaded or loading) */
    int n_groups, n_members;
    member m[MEMBERS_MAX];
    token tok[TOKENS_MAX];
    log_rec *log;
    int n_log;
    append *q[APPENDS_Q_MAX];
    int n_q;
    uint64_t next_append_id;
    /* the log's behaviour for this seed */
    uint32_t sync_per_million;   /* completed inside the append call */
    uint32_t fail_per_million;   /* failed */
    uint32_t refuse_per_million; /* refused at once */
    int64_t max_append_delay;
    int64_t disk_full_until;
    /* commit values: flags, and which group/partition */
    uint8_t *vflags;
    int64_t vcap;
    /* last acknowledged commit, -1 none; index GROUPS_MAX is the group of
     * simple consumers (commits with generation -1 and no member) */
    int64_t acked[GROUPS_MAX + 1][PARTITIONS];
    int64_t next_offset;
    gen_leader gens[GENS_TRACKED];
    int n_gens;
    int64_t max_rt, quiet_from, end;
    int64_t max_delay;
    bool ending; /* tearing down: events free their arguments and do nothing */
    uint64_t commits_ok, commits_failed, syncs_ok, joins_ok, appends, appends_failed, snapshots;
} world;

static const char *group_name(int g) {
    static const char *names[GROUPS_MAX + 1] = {"g0", "g1", "g2", "simple"};
    return names[g];
}

static void copy_kstr(char *dst, size_t n, kstr s) {
    size_t l = s.len > 0 ? (size_t)s.len : 0;
    if (l >= n)
        l = n - 1;
    if (l)
        memcpy(dst, s.ptr, l);
    dst[l] = '\0';
}

static int64_t net_delay(world *w) { return sim_range(&w->s->rng, 0, w->max_delay); }

/* ---- commit values ---------------------------------------------------------- */

static uint8_t *vflag(world *w, int64_t v) {
    if (v < 0)
        return NULL;
    if (v >= w->vcap) {
        int64_t nc = w->vcap ? w->vcap : 1024;
        while (nc <= v)
            nc *= 2;
        uint8_t *nf = realloc(w->vflags, (size_t)nc);
        if (nf == NULL) {
            sim_fail(w->s, "out of memory");
            return NULL;
        }
        memset(nf + w->vcap, 0, (size_t)(nc - w->vcap));
        w->vflags = nf;
        w->vcap = nc;
    }
    return &w->vflags[v];
}

/* Marks the offset values of records (the scenario's topic "t"). */
static void mark_values(world *w, const log_rec *recs, int n, uint8_t flag) {
    for (int i = 0; i < n; i++) {
        grec_key k;
        grec_offset o;
        if (recs[i].vlen < 0 || grec_decode_key((kbytes){recs[i].key, recs[i].klen}, &k) != 0 ||
            k.version == GREC_KEY_GROUP ||
            grec_decode_offset_value((kbytes){recs[i].value, recs[i].vlen}, &o) != 0)
            continue;
        uint8_t *f = vflag(w, o.offset);
        if (f)
            *f |= flag;
    }
}

/* ---- the coordinator's sink ---------------------------------------------- */

static int new_token(world *w, int member, tkind kind) {
    for (int i = 1; i < TOKENS_MAX; i++)
        if (!w->tok[i].used) {
            w->tok[i] =
                (token){true, member, member >= 0 ? w->m[member].life : 0, kind, w->s->now, false, 0, 0, -1};
            return i;
        }
    sim_fail(w->s, "out of tokens");
    return 0;
}

typedef struct reply {
    int member;
    uint64_t life;
    bool is_join;
    int16_t error;
    int32_t generation;
    char member_id[ID_MAX];
    char leader[ID_MAX];
    int n_peers;
    char peers[MEMBERS_MAX][ID_MAX];
    char peer_inst[MEMBERS_MAX][32];
    char assignment[ASSIGN_MAX];
    int incarnation; /* the coordinator's load count when it answered */
} reply;

static void deliver_reply(void *ctx, void *arg);

/* The token's record, once: NULL (and a failure) for a bad or repeated one. */
static token *take_token(world *w, void *tok) {
    int t = (int)(intptr_t)tok;
    if (t <= 0 || t >= TOKENS_MAX || !w->tok[t].used) {
        sim_fail(w->s, "answer for an unknown token %d", t);
        return NULL;
    }
    if (w->tok[t].answered) {
        sim_fail(w->s, "token %d answered twice", t);
        return NULL;
    }
    w->tok[t].answered = true;
    w->tok[t].used = false;
    return &w->tok[t];
}

static void answer_token(world *w, void *tok, reply *r) {
    token *t = take_token(w, tok);
    if (t == NULL || t->member < 0) {
        free(r);
        return;
    }
    r->member = t->member;
    r->life = t->life;
    r->incarnation = w->incarnation;
    sim_after(w->s, net_delay(w), deliver_reply, w, r);
}

static void on_join(void *ctx, void *tok, const gcoord_join_result *res) {
    world *w = ctx;
    reply *r = calloc(1, sizeof *r);
    r->is_join = true;
    r->error = res->error;
    r->generation = res->generation;
    copy_kstr(r->member_id, sizeof r->member_id, res->member_id);
    copy_kstr(r->leader, sizeof r->leader, res->leader);
    r->n_peers = res->n_members < MEMBERS_MAX ? res->n_members : MEMBERS_MAX;
    for (int i = 0; i < r->n_peers; i++) {
        copy_kstr(r->peers[i], ID_MAX, res->members[i].member_id);
        copy_kstr(r->peer_inst[i], 32, res->members[i].instance_id);
    }
    answer_token(w, tok, r);
}

static void on_sync(void *ctx, void *tok, const gcoord_sync_result *res) {
    world *w = ctx;
    reply *r = calloc(1, sizeof *r);
    r->error = res->error;
    copy_kstr(r->assignment, sizeof r->assignment,
              (kstr){(const char *)res->assignment.ptr, res->assignment.len});
    answer_token(w, tok, r);
}

static void on_commit(void *ctx, void *tok, const int16_t *errs, int n) {
    world *w = ctx;
    token *t = take_token(w, tok);
    if (t == NULL)
        return;
    int16_t err = errs && n == 1 ? errs[0] : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    uint8_t *f = vflag(w, t->value);
    if (err == 0) {
        SIM_CHECK(w->s, f && (*f & V_COMPLETED),
                  "OffsetCommit of %s t-%d (offset %lld) answered before its append was reported done",
                  group_name(t->group), t->partition, (long long)t->value);
        if (f)
            *f |= V_ACKED;
        if (t->value > w->acked[t->group][t->partition])
            w->acked[t->group][t->partition] = t->value;
        w->commits_ok++;
    } else {
        if (f)
            *f |= V_FAILED;
        w->commits_failed++;
    }
    if (t->member < 0 || w->ending)
        return;
    reply *r = calloc(1, sizeof *r);
    r->member = t->member;
    r->life = t->life;
    r->error = err;
    r->incarnation = w->incarnation;
    sim_after(w->s, net_delay(w), deliver_reply, w, r);
}

static void on_delete_group(void *ctx, void *tok, int16_t error) {
    (void)tok;
    (void)error;
    sim_fail(((world *)ctx)->s, "a DeleteGroups answer, but none was sent");
}

static void on_delete_offsets(void *ctx, void *tok, int16_t error, const int16_t *errs, int n) {
    (void)tok;
    (void)error;
    (void)errs;
    (void)n;
    sim_fail(((world *)ctx)->s, "an OffsetDelete answer, but none was sent");
}

static void log_clear(world *w) {
    for (int i = 0; i < w->n_log; i++) {
        free(w->log[i].key);
        free(w->log[i].value);
    }
    w->n_log = 0;
}

static void free_append(append *a) {
    for (int i = 0; i < a->n; i++) {
        free(a->recs[i].key);
        free(a->recs[i].value);
    }
    free(a->recs);
    free(a);
}

/* Puts resolved appends at the head of the queue into the log, in order. */
static void flush_log(world *w) {
    while (w->n_q > 0 && w->q[0]->resolved) {
        append *a = w->q[0];
        memmove(&w->q[0], &w->q[1], (size_t)(w->n_q - 1) * sizeof *w->q);
        w->n_q--;
        if (a->err == 0) {
            if (a->snapshot)
                log_clear(w);
            for (int i = 0; i < a->n; i++) {
                if (w->n_log == LOG_RECS_MAX) {
                    sim_fail(w->s, "the coordinator's log grew past %d records (snapshots do not bound it)",
                             LOG_RECS_MAX);
                    break;
                }
                w->log[w->n_log++] = a->recs[i];
                a->recs[i].key = a->recs[i].value = NULL;
            }
            mark_values(w, w->log + w->n_log - a->n, a->n, V_DURABLE);
        }
        free_append(a);
    }
}

static append *find_append(world *w, uint64_t id) {
    for (int i = 0; i < w->n_q; i++)
        if (w->q[i]->id == id)
            return w->q[i];
    return NULL;
}

/* The outcome of an append becomes known (the owner reports it). */
static void resolve(world *w, append *a) {
    a->resolved = true;
    if (a->err == 0 && !a->snapshot)
        mark_values(w, a->recs, a->n, V_COMPLETED);
    if (a->err)
        w->appends_failed++;
}

static void append_report(void *ctx, void *arg) {
    world *w = ctx;
    uint64_t id = (uint64_t)(uintptr_t)arg;
    append *a = find_append(w, id);
    if (w->ending || a == NULL || a->resolved)
        return; /* settled by a crash or a reload meanwhile */
    resolve(w, a);
    int machine = a->machine;
    int16_t err = a->err;
    flush_log(w); /* may free a */
    if (machine == w->machine && w->c)
        gcoord_append_done(w->c, id, err, w->s->now);
}

static int16_t failure(world *w) {
    switch (sim_below(&w->s->rng, 3)) {
    case 0:
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    case 1:
        return KAFKA_ERR_REQUEST_TIMED_OUT;
    default:
        return KAFKA_ERR_NOT_ENOUGH_REPLICAS;
    }
}

static uint64_t on_append(void *ctx, const gcoord_record *recs, int n, bool snapshot, int16_t *err) {
    world *w = ctx;
    bool faults = w->s->now < w->quiet_from;
    if (faults && sim_chance(&w->s->rng, w->refuse_per_million)) {
        *err = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
        return 0;
    }
    if (w->n_q == APPENDS_Q_MAX) {
        sim_fail(w->s, "more than %d appends in flight", APPENDS_Q_MAX);
        *err = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        return 0;
    }
    append *a = calloc(1, sizeof *a);
    a->id = ++w->next_append_id;
    a->machine = w->machine;
    a->snapshot = snapshot;
    a->n = n;
    a->recs = calloc((size_t)(n > 0 ? n : 1), sizeof *a->recs);
    for (int i = 0; i < n; i++) {
        log_rec *r = &a->recs[i];
        r->klen = recs[i].key.len;
        r->key = malloc((size_t)r->klen + 1);
        memcpy(r->key, recs[i].key.ptr, (size_t)r->klen);
        r->vlen = recs[i].value.len;
        if (r->vlen >= 0) {
            r->value = malloc((size_t)r->vlen + 1);
            if (r->vlen)
                memcpy(r->value, recs[i].value.ptr, (size_t)r->vlen);
        }
    }
    if (faults && (w->s->now < w->disk_full_until || sim_chance(&w->s->rng, w->fail_per_million)))
        a->err = failure(w);
    w->q[w->n_q++] = a;
    w->appends++;
    w->snapshots += snapshot;
    uint64_t id = a->id;
    if (sim_chance(&w->s->rng, w->sync_per_million)) {
        /* A single node: done before the call returns. */
        resolve(w, a);
        int16_t e = a->err;
        flush_log(w);
        gcoord_append_done(w->c, id, e, w->s->now);
    } else {
        sim_after(w->s, sim_range(&w->s->rng, 0, w->max_append_delay), append_report, w,
                  (void *)(uintptr_t)id);
    }
    return id;
}

/* ---- coordinator lifecycle ---------------------------------------------------- */

static void schedule_tick(world *w);

/* The coordinator's answers must not reach a member that is gone, and the
 * check of parked tokens runs after every unload. */
static void check_no_tokens(world *w, const char *what) {
    for (int i = 1; i < TOKENS_MAX; i++)
        SIM_CHECK(w->s, !w->tok[i].used, "token %d still parked after %s", i, what);
}

/* Loading: every append still in flight lands or fails first (the log's
 * end is what a new leader reads), then the records are replayed. */
static void load_end(void *ctx, void *arg) {
    world *w = ctx;
    int incarnation = (int)(intptr_t)arg;
    if (w->ending || incarnation != w->incarnation || w->c == NULL || !gcoord_loading(w->c))
        return;
    for (int i = 0; i < w->n_log; i++)
        gcoord_load_record(w->c, (kbytes){w->log[i].key, w->log[i].klen},
                           (kbytes){w->log[i].value, w->log[i].vlen});
    gcoord_load_end(w->c, w->s->now);
    w->loaded = true;
}

static void settle_queue(world *w) {
    for (int i = 0; i < w->n_q; i++)
        if (!w->q[i]->resolved)
            resolve(w, w->q[i]);
    flush_log(w);
}

static void load_begin(world *w) {
    settle_queue(w);
    w->epoch++;
    w->incarnation++;
    if (!gcoord_load_begin(w->c, w->epoch, w->s->now)) {
        sim_fail(w->s, "load_begin at epoch %d refused", w->epoch);
        return;
    }
    w->loaded = false;
    sim_after(w->s, sim_range(&w->s->rng, 0, 300), load_end, w, (void *)(intptr_t)w->incarnation);
}

static void coord_start(world *w) {
    gcoord_sink sink = {w,         on_join, on_sync, on_commit, on_delete_group, on_delete_offsets,
                        on_append, NULL,    NULL};
    w->cfg.id_seed = sim_rand(&w->s->rng);
    w->c = gcoord_create(&w->cfg, &sink);
    if (w->c == NULL) {
        sim_fail(w->s, "gcoord_create failed");
        return;
    }
    w->machine++;
    load_begin(w);
    schedule_tick(w);
}

/* A crash: the machine is gone (its clients see their connections drop:
 * NOT_COORDINATOR). Of the appends it was not told about, the log keeps
 * everything before the last one it reported done, and a random prefix of
 * the rest. */
static void coord_stop(world *w) {
    if (w->c == NULL)
        return;
    gcoord_shutdown(w->c, KAFKA_ERR_NOT_COORDINATOR);
    check_no_tokens(w, "shutdown");
    gcoord_destroy(w->c);
    w->c = NULL;
    w->loaded = false;
    int last_ok = -1;
    for (int i = 0; i < w->n_q; i++)
        if (w->q[i]->resolved && w->q[i]->err == 0)
            last_ok = i;
    bool keep = true;
    for (int i = 0; i < w->n_q; i++) {
        append *a = w->q[i];
        if (a->resolved)
            continue;
        if (i < last_ok) {
            a->err = 0; /* the log has it: a later one is durable */
        } else {
            keep = keep && sim_chance(&w->s->rng, 500000);
            if (!keep)
                a->err = KAFKA_ERR_KAFKA_STORAGE_ERROR; /* lost */
        }
        resolve(w, a);
    }
    flush_log(w);
}

static void tick(void *ctx, void *arg) {
    world *w = ctx;
    int machine = (int)(intptr_t)arg;
    if (w->ending || w->c == NULL || machine != w->machine)
        return;
    gcoord_tick(w->c, w->s->now);
    schedule_tick(w);
}

static void schedule_tick(world *w) {
    int64_t next = gcoord_next_deadline(w->c);
    /* The owner ticks at least every 50 ms (as groups.c does) and never
     * earlier than the deadline. */
    int64_t at = w->s->now + 50;
    if (next < at)
        at = next < w->s->now ? w->s->now : next;
    sim_at(w->s, at + 1, tick, w, (void *)(intptr_t)w->machine);
}

static void restart(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    sim_trace(w->s, "coordinator restarts (%d records in its log, %d appends in flight)", w->n_log, w->n_q);
    coord_stop(w);
    w->restarts++;
    coord_start(w);
}

/* Leadership moves away and (later) back: unload, then load again. */
static void lead_again(void *ctx, void *arg) {
    world *w = ctx;
    int machine = (int)(intptr_t)arg;
    if (w->ending || w->c == NULL || machine != w->machine || gcoord_active(w->c) || gcoord_loading(w->c))
        return;
    sim_trace(w->s, "coordinator leads again (%d appends settled meanwhile)", w->n_q);
    load_begin(w);
}

static void move_leadership(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending || w->c == NULL || !gcoord_active(w->c))
        return;
    sim_trace(w->s, "leadership moves away (%d appends in flight)", w->n_q);
    /* A resignation of an older epoch changes nothing. */
    SIM_CHECK(w->s, !gcoord_unload(w->c, w->epoch - 1, w->s->now) || w->epoch == 0,
              "an unload at an older epoch was applied");
    SIM_CHECK(w->s, gcoord_unload(w->c, w->epoch, w->s->now), "unload refused");
    check_no_tokens(w, "unload");
    w->loaded = false;
    w->moves++;
    sim_after(w->s, sim_range(&w->s->rng, 0, 3000), lead_again, w, (void *)(intptr_t)w->machine);
}

/* A stretch of time during which every append fails (a full disk). */
static void disk_full(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    w->disk_full_until = w->s->now + sim_range(&w->s->rng, 100, 3000);
    sim_trace(w->s, "the disk is full until %lld", (long long)w->disk_full_until);
}

/* ---- consumers --------------------------------------------------------------- */

typedef enum rkind { R_JOIN, R_SYNC, R_HEARTBEAT, R_COMMIT, R_LEAVE } rkind;

typedef struct request {
    int member;
    uint64_t life;
    rkind kind;
} request;

static void send_request(world *w, member *m, rkind kind);

/* Back to square one; member_act sends the JoinGroup after a backoff. */
static void rejoin_later(member *m) {
    m->st = M_IDLE;
    m->leader = false;
    m->busy = false;
}

static void member_act(void *ctx, void *arg);

static void schedule_act(world *w, member *m, int64_t delay) {
    /* Whatever a fault did, a member is back to work early enough in the
     * quiet period to settle before the end. */
    int64_t latest = w->quiet_from + w->max_rt;
    if (w->s->now < latest && w->s->now + delay > latest)
        delay = latest - w->s->now;
    sim_after(w->s, delay, member_act, w, (void *)(uintptr_t)((uint64_t)m->idx | (m->life << 8)));
}

/* The coordinator side of every request, at its arrival. */
static void deliver_request(void *ctx, void *arg) {
    world *w = ctx;
    request *rq = arg;
    member *m = &w->m[rq->member];
    bool stale = rq->life != m->life || w->ending;
    rkind kind = rq->kind;
    free(rq);
    if (stale)
        return; /* the client died while it was in flight: the coordinator never hears it */
    kstr group = kstr_c(group_name(m->group));
    kstr inst = m->instance[0] ? kstr_c(m->instance) : KSTR_NULL;
    switch (kind) {
    case R_JOIN: {
        static const uint8_t meta[] = {0, 1, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 0};
        kstr names[1] = {kstr_c("range")};
        kbytes metas[1] = {{meta, sizeof meta}};
        gcoord_join_req jr = {.group_id = group,
                              .member_id = kstr_c(m->id),
                              .instance_id = inst,
                              .protocol_type = kstr_c("consumer"),
                              .client_id = kstr_c("sim"),
                              .client_host = kstr_c("/127.0.0.1"),
                              .session_timeout_ms = m->session_ms,
                              .rebalance_timeout_ms = m->rebalance_ms,
                              .protocol_names = names,
                              .protocol_metadata = metas,
                              .n_protocols = 1,
                              .require_known_member_id = m->v4};
        int t = new_token(w, m->idx, T_JOIN);
        gcoord_join(w->c, &jr, (void *)(intptr_t)t, w->s->now);
        break;
    }
    case R_SYNC: {
        kstr ids[MEMBERS_MAX];
        kbytes asg[MEMBERS_MAX];
        char text[MEMBERS_MAX][ASSIGN_MAX];
        int n = m->leader ? m->n_peers : 0;
        for (int i = 0; i < n; i++) {
            ids[i] = kstr_c(m->peers[i]);
            /* generation|leader|member id|instance ("-" for a dynamic member) */
            int k = snprintf(text[i], ASSIGN_MAX, "%d|%s|%s|%s", m->gen, m->id, m->peers[i],
                             m->peer_inst[i][0] ? m->peer_inst[i] : "-");
            SIM_CHECK(w->s, k < ASSIGN_MAX, "assignment text of %d bytes", k);
            asg[i] = (kbytes){(const uint8_t *)text[i], (int32_t)strlen(text[i])};
        }
        gcoord_sync_req sr = {.group_id = group,
                              .member_id = kstr_c(m->id),
                              .instance_id = inst,
                              .generation = m->gen,
                              .protocol_type = kstr_c("consumer"),
                              .protocol_name = kstr_c("range"),
                              .assign_member = ids,
                              .assign_bytes = asg,
                              .n_assign = n};
        int t = new_token(w, m->idx, T_SYNC);
        gcoord_sync(w->c, &sr, (void *)(intptr_t)t, w->s->now);
        break;
    }
    case R_HEARTBEAT: {
        reply *r = calloc(1, sizeof *r);
        r->member = m->idx;
        r->life = m->life;
        r->error = gcoord_heartbeat(w->c, group, kstr_c(m->id), inst, m->gen, w->s->now);
        sim_after(w->s, net_delay(w), deliver_reply, w, r);
        break;
    }
    case R_COMMIT: {
        int p = (int)sim_below(&w->s->rng, PARTITIONS);
        int64_t off = ++w->next_offset;
        gcoord_commit e = {kstr_c("t"), p, off, -1, KSTR_NULL, 0};
        int t = new_token(w, m->idx, T_COMMIT);
        w->tok[t].group = m->group;
        w->tok[t].partition = p;
        w->tok[t].value = off;
        /* Answered through on_commit, once written. */
        gcoord_commit_offsets(w->c, group, m->gen, kstr_c(m->id), inst, -1, -1, &e, 1, (void *)(intptr_t)t,
                              w->s->now);
        break;
    }
    case R_LEAVE: {
        int16_t ge;
        gcoord_leave(w->c, group, kstr_c(m->id), inst, &ge, w->s->now);
        break; /* a leaving client does not wait for the answer */
    }
    }
}

static void send_request(world *w, member *m, rkind kind) {
    static const char *const kinds[] = {"join", "sync", "heartbeat", "commit", "leave"};
    sim_trace(w->s, "member %d (%s) sends %s gen=%d", m->idx, m->id, kinds[kind], m->gen);
    request *r = calloc(1, sizeof *r);
    *r = (request){m->idx, m->life, kind};
    if (kind != R_LEAVE)
        m->busy = true;
    sim_after(w->s, net_delay(w), deliver_request, w, r);
}

static bool needs_rejoin(int16_t err) {
    return err == KAFKA_ERR_REBALANCE_IN_PROGRESS || err == KAFKA_ERR_UNKNOWN_MEMBER_ID ||
           err == KAFKA_ERR_ILLEGAL_GENERATION || err == KAFKA_ERR_NOT_COORDINATOR ||
           err == KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS || err == KAFKA_ERR_FENCED_INSTANCE_ID ||
           err == KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
}

static void lose_membership(world *w, member *m, int16_t err) {
    /* As the Java client does: these reset the generation and the member id
     * (a static member keeps its instance id and gets its id back). */
    if (err == KAFKA_ERR_UNKNOWN_MEMBER_ID || err == KAFKA_ERR_ILLEGAL_GENERATION ||
        err == KAFKA_ERR_FENCED_INSTANCE_ID)
        m->id[0] = '\0';
    rejoin_later(m);
    schedule_act(w, m, sim_range(&w->s->rng, 10, 300));
}

static const gen_leader *gen_record(world *w, int group, int32_t gen, const char *leader) {
    for (int i = 0; i < w->n_gens; i++)
        if (w->gens[i].group == group && w->gens[i].gen == gen)
            return &w->gens[i];
    if (w->n_gens == GENS_TRACKED)
        return NULL;
    gen_leader *g = &w->gens[w->n_gens++];
    g->group = group;
    g->gen = gen;
    snprintf(g->leader, sizeof g->leader, "%s", leader);
    return g;
}

static void deliver_reply(void *ctx, void *arg) {
    world *w = ctx;
    reply *r = arg;
    member *m = &w->m[r->member];
    if (w->ending || r->life != m->life || m->st == M_GONE) {
        free(r);
        return;
    }
    m->busy = false;
    sim_trace(w->s, "member %d (%s) %s reply: %s gen=%d", m->idx, m->id, r->is_join ? "join" : "other",
              kafka_error_name(r->error), r->generation);
    if (r->is_join) {
        if (r->error == KAFKA_ERR_MEMBER_ID_REQUIRED) {
            snprintf(m->id, sizeof m->id, "%s", r->member_id);
            send_request(w, m, R_JOIN);
        } else if (r->error == 0) {
            w->joins_ok++;
            snprintf(m->id, sizeof m->id, "%s", r->member_id);
            /* A generation that was never written (no SyncGroup completed it)
             * is forgotten by a coordinator restart, as in Kafka; otherwise a
             * member's generation only grows. */
            SIM_CHECK(w->s, r->generation >= m->last_gen || m->gen_restarts != r->incarnation,
                      "member %s of %s went from generation %d to %d", m->id, group_name(m->group),
                      m->last_gen, r->generation);
            m->gen = m->last_gen = r->generation;
            m->gen_restarts = r->incarnation;
            m->leader = strcmp(r->leader, m->id) == 0;
            m->n_peers = r->n_peers;
            for (int i = 0; i < r->n_peers; i++) {
                memcpy(m->peers[i], r->peers[i], ID_MAX);
                memcpy(m->peer_inst[i], r->peer_inst[i], 32);
            }
            if (m->leader && r->n_peers == 0)
                sim_fail(w->s, "leader %s of %s generation %d got no member list", m->id,
                         group_name(m->group), r->generation);
            m->st = M_SYNCING;
            send_request(w, m, R_SYNC);
        } else {
            lose_membership(w, m, r->error);
        }
    } else if (m->st == M_SYNCING && !r->is_join && r->assignment[0] != '\0' && r->error == 0) {
        w->syncs_ok++;
        int32_t gen;
        char leader[ID_MAX], who[ID_MAX], inst[32];
        if (sscanf(r->assignment, "%d|%127[^|]|%127[^|]|%31s", &gen, leader, who, inst) != 4) {
            sim_fail(w->s, "unparseable assignment '%s'", r->assignment);
        } else {
            /* A static member that rejoins under a new member id keeps the
             * assignment of its instance (Kafka's static membership). */
            bool mine = m->instance[0] ? strcmp(inst, m->instance) == 0 : strcmp(who, m->id) == 0;
            SIM_CHECK(w->s, gen == m->gen && mine,
                      "member %s (generation %d) got the assignment of %s (%s) for generation %d", m->id,
                      m->gen, who, inst, gen);
            const gen_leader *g = gen_record(w, m->group, gen, leader);
            SIM_CHECK(w->s, g == NULL || strcmp(g->leader, leader) == 0,
                      "%s generation %d has assignments from two leaders: %s and %s", group_name(m->group),
                      gen, g ? g->leader : "?", leader);
        }
        snprintf(m->assignment, sizeof m->assignment, "%s", r->assignment);
        m->st = M_STABLE;
        schedule_act(w, m, sim_range(&w->s->rng, 1, m->session_ms / 3));
    } else if (r->error == 0 && m->st == M_SYNCING) {
        /* An empty assignment: the leader gave this member nothing (it was
         * not in the leader's list). Treat it as stable. */
        w->syncs_ok++;
        m->assignment[0] = '\0';
        m->st = M_STABLE;
        schedule_act(w, m, sim_range(&w->s->rng, 1, m->session_ms / 3));
    } else if (needs_rejoin(r->error)) {
        lose_membership(w, m, r->error);
    } else if (r->error != 0) {
        /* Other errors (e.g. INVALID_SESSION_TIMEOUT would be a bug in the
         * scenario): report them. */
        sim_fail(w->s, "member %s got unexpected error %s", m->id, kafka_error_name(r->error));
    } else {
        /* A heartbeat or commit answered 0 while stable: keep going. */
        if (m->st == M_STABLE)
            schedule_act(w, m, sim_range(&w->s->rng, 1, m->session_ms / 3));
    }
    free(r);
}

static void member_act(void *ctx, void *arg) {
    world *w = ctx;
    uint64_t v = (uint64_t)(uintptr_t)arg;
    member *m = &w->m[v & 0xff];
    if (w->ending || (v >> 8) != (m->life & ((UINT64_MAX) >> 8)) || m->st == M_GONE || m->busy)
        return;
    bool faults = w->s->now < w->quiet_from;
    if (m->st == M_IDLE) {
        m->st = M_JOINING;
        send_request(w, m, R_JOIN);
        return;
    }
    if (m->st != M_STABLE)
        return;
    uint64_t roll = sim_below(&w->s->rng, 1000);
    if (faults && roll < 4) {
        /* Leave the group cleanly, then come back later as a new member. */
        send_request(w, m, R_LEAVE);
        m->life++;
        m->st = M_IDLE;
        if (!m->instance[0])
            m->id[0] = '\0';
        m->gen = 0;
        m->last_gen = 0;
        schedule_act(w, m, sim_range(&w->s->rng, 100, 5000));
    } else if (faults && roll < 8) {
        /* Crash: silent; the coordinator expires it after its session. */
        m->life++;
        m->crashes++;
        m->st = M_IDLE;
        if (!m->instance[0])
            m->id[0] = '\0';
        m->gen = 0;
        m->last_gen = 0;
        m->busy = false;
        schedule_act(w, m, sim_range(&w->s->rng, 100, 3 * (int64_t)m->session_ms));
    } else if (faults && roll < 12) {
        /* A long pause (GC, swapped out): may outlive the session. */
        schedule_act(w, m, sim_range(&w->s->rng, m->session_ms / 2, 2 * (int64_t)m->session_ms));
    } else if (roll < 300) {
        send_request(w, m, R_COMMIT);
    } else {
        send_request(w, m, R_HEARTBEAT);
    }
}

/* A simple consumer (no group membership) commits now and then, as tools
 * and assign()-based consumers do: generation -1, member "". */
static void simple_commit(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    int p = (int)sim_below(&w->s->rng, PARTITIONS);
    int64_t off = ++w->next_offset;
    gcoord_commit e = {kstr_c("t"), p, off, -1, KSTR_NULL, 0};
    int t = new_token(w, SIMPLE, T_COMMIT);
    w->tok[t].group = GROUPS_MAX;
    w->tok[t].partition = p;
    w->tok[t].value = off;
    gcoord_commit_offsets(w->c, kstr_c(group_name(GROUPS_MAX)), -1, kstr_c(""), KSTR_NULL, -1, -1, &e, 1,
                          (void *)(intptr_t)t, w->s->now);
    sim_after(w->s, sim_range(&w->s->rng, 50, 3000), simple_commit, w, NULL);
}

/* Every member of one group crashes at once: the group empties. */
static void group_outage(void *ctx, void *arg) {
    world *w = ctx;
    int g = (int)(intptr_t)arg;
    if (w->ending)
        return;
    sim_trace(w->s, "every member of %s crashes", group_name(g));
    for (int i = 0; i < w->n_members; i++) {
        member *m = &w->m[i];
        if (m->group != g)
            continue;
        m->life++;
        m->crashes++;
        m->st = M_IDLE;
        if (!m->instance[0])
            m->id[0] = '\0';
        m->gen = m->last_gen = 0;
        m->busy = false;
        schedule_act(w, m, sim_range(&w->s->rng, 2 * (int64_t)m->session_ms, 4 * (int64_t)m->session_ms));
    }
}

/* ---- invariants ------------------------------------------------------------------ */

static const char *tkind_name(tkind k) {
    return k == T_JOIN ? "JoinGroup" : k == T_SYNC ? "SyncGroup" : "OffsetCommit";
}

/* The offsets a replay of the log gives, for the scenario's groups. */
static void replay_log(const world *w, int64_t out[GROUPS_MAX + 1][PARTITIONS]) {
    for (int g = 0; g <= GROUPS_MAX; g++)
        for (int p = 0; p < PARTITIONS; p++)
            out[g][p] = -1;
    for (int i = 0; i < w->n_log; i++) {
        grec_key k;
        if (grec_decode_key((kbytes){w->log[i].key, w->log[i].klen}, &k) != 0 ||
            k.version == GREC_KEY_GROUP || k.partition < 0 || k.partition >= PARTITIONS)
            continue;
        int g = -1;
        for (int x = 0; x <= GROUPS_MAX; x++)
            if (kstr_eq_c(k.group, group_name(x)))
                g = x;
        if (g < 0)
            continue;
        grec_offset o;
        if (w->log[i].vlen < 0)
            out[g][k.partition] = -1;
        else if (grec_decode_offset_value((kbytes){w->log[i].value, w->log[i].vlen}, &o) == 0)
            out[g][k.partition] = o.offset;
    }
}

static void check(sim *s, void *ctx) {
    world *w = ctx;
    int64_t bound = 3 * w->max_rt + w->cfg.initial_rebalance_delay_ms + 2000 + 4 * w->max_append_delay;
    for (int i = 1; i < TOKENS_MAX; i++)
        if (w->tok[i].used && s->now - w->tok[i].parked_at > bound) {
            sim_fail(s, "%s of member %d parked for %lld ms (bound %lld)", tkind_name(w->tok[i].kind),
                     w->tok[i].member, (long long)(s->now - w->tok[i].parked_at), (long long)bound);
            return;
        }
    if (w->c == NULL || !gcoord_active(w->c))
        return;
    /* Offsets: sampled, so checks stay cheap. */
    if (s->steps % 16 == 0)
        for (int g = 0; g <= GROUPS_MAX; g++)
            for (int p = 0; p < PARTITIONS; p++) {
                int64_t off;
                int32_t le;
                kstr md;
                int16_t e = gcoord_fetch_offset(w->c, kstr_c(group_name(g)), kstr_c("t"), p, &off, &le, &md);
                SIM_CHECK(s, e == 0, "OffsetFetch failed: %s", kafka_error_name(e));
                SIM_CHECK(
                    s, off >= w->acked[g][p],
                    "%s t-%d: OffsetFetch gives %lld but the last acknowledged commit was %lld (after %d "
                    "restarts, %d leadership moves)",
                    group_name(g), p, (long long)off, (long long)w->acked[g][p], w->restarts, w->moves);
                const uint8_t *f = off >= 0 && off < w->vcap ? &w->vflags[off] : NULL;
                SIM_CHECK(s, off < 0 || (f && (*f & V_DURABLE)),
                          "%s t-%d: OffsetFetch gives %lld, which is not durable (flags %d)", group_name(g),
                          p, (long long)off, f ? *f : -1);
            }
    /* Nothing in flight: the machine shows exactly what the log replays. */
    if (s->steps % 64 == 0 && w->n_q == 0 && gcoord_appends_outstanding(w->c) == 0) {
        int64_t want[GROUPS_MAX + 1][PARTITIONS];
        replay_log(w, want);
        for (int g = 0; g <= GROUPS_MAX; g++)
            for (int p = 0; p < PARTITIONS; p++) {
                int64_t off;
                int32_t le;
                kstr md;
                gcoord_fetch_offset(w->c, kstr_c(group_name(g)), kstr_c("t"), p, &off, &le, &md);
                SIM_CHECK(s, off == want[g][p], "%s t-%d: OffsetFetch gives %lld, the log replays to %lld",
                          group_name(g), p, (long long)off, (long long)want[g][p]);
            }
    }
}

/* At the end of the quiet period every live member is stable in its group's
 * one generation. */
static void check_settled(world *w) {
    for (int g = 0; g < w->n_groups; g++) {
        int32_t gen = -1;
        for (int i = 0; i < w->n_members; i++) {
            member *m = &w->m[i];
            if (m->group != g)
                continue;
            SIM_CHECK(w->s, m->st == M_STABLE, "member %d (%s) of %s did not settle: state %d", i, m->id,
                      group_name(g), m->st);
            if (gen < 0)
                gen = m->gen;
            SIM_CHECK(w->s, m->gen == gen, "%s did not settle on one generation: %d and %d", group_name(g),
                      gen, m->gen);
        }
    }
}

/* ---- the run ----------------------------------------------------------------------- */

static bool run(sim *s) {
    world *w = calloc(1, sizeof *w);
    w->log = calloc(LOG_RECS_MAX, sizeof *w->log);
    if (w == NULL || w->log == NULL) {
        sim_fail(s, "out of memory");
        return false;
    }
    w->s = s;
    gcoord_config_default(&w->cfg);
    w->cfg.initial_rebalance_delay_ms =
        (int32_t)(sim_chance(&s->rng, 500000) ? 0 : sim_range(&s->rng, 0, 3000));
    w->cfg.min_session_timeout_ms = 1000;
    w->cfg.max_session_timeout_ms = 60000;
    w->cfg.offsets_retention_ms = 7LL * 24 * 3600 * 1000;
    w->cfg.snapshot_min_records = (int32_t)sim_range(&s->rng, 20, 400);
    w->max_delay = sim_range(&s->rng, 0, 200);
    /* The log: a single node (done inside the call), a replicated one
     * (done later), or a mix; with failures for some seeds. */
    switch (sim_below(&s->rng, 4)) {
    case 0:
        w->sync_per_million = 1000000;
        break;
    case 1:
        w->sync_per_million = 0;
        break;
    default:
        w->sync_per_million = (uint32_t)sim_range(&s->rng, 0, 1000000);
        break;
    }
    w->max_append_delay = sim_range(&s->rng, 1, 600);
    w->fail_per_million = sim_chance(&s->rng, 300000) ? 0 : (uint32_t)sim_range(&s->rng, 0, 60000);
    w->refuse_per_million = sim_chance(&s->rng, 500000) ? 0 : (uint32_t)sim_range(&s->rng, 0, 20000);
    w->n_groups = (int)sim_range(&s->rng, 1, GROUPS_MAX);
    for (int g = 0; g <= GROUPS_MAX; g++)
        for (int p = 0; p < PARTITIONS; p++)
            w->acked[g][p] = -1;
    for (int g = 0; g < w->n_groups; g++) {
        int k = (int)sim_range(&s->rng, 1, 6);
        bool is_static = sim_chance(&s->rng, 300000);
        for (int j = 0; j < k && w->n_members < MEMBERS_MAX; j++) {
            member *m = &w->m[w->n_members];
            m->idx = w->n_members++;
            m->group = g;
            m->life = 1;
            m->v4 = sim_chance(&s->rng, 700000);
            if (is_static)
                snprintf(m->instance, sizeof m->instance, "inst-%d-%d", g, j);
            m->session_ms = (int32_t)sim_range(&s->rng, 3000, 15000);
            m->rebalance_ms = (int32_t)sim_range(&s->rng, m->session_ms, 30000);
            if (m->rebalance_ms > w->max_rt)
                w->max_rt = m->rebalance_ms;
        }
    }
    w->end = sim_range(&s->rng, 60000, 240000);
    w->quiet_from = w->end - (w->end / 4 > 4 * w->max_rt ? w->end / 4 : 4 * w->max_rt + 10000);
    if (w->quiet_from < w->end / 3)
        w->quiet_from = w->end / 3;
    s->check = check;
    s->check_ctx = w;
    coord_start(w);
    for (int i = 0; i < w->n_members; i++)
        schedule_act(w, &w->m[i], sim_range(&s->rng, 0, 2000));
    /* Coordinator crash-restarts, all before the quiet period. */
    int crashes = (int)sim_range(&s->rng, 0, 4);
    for (int i = 0; i < crashes; i++)
        sim_at(s, sim_range(&s->rng, 1000, w->quiet_from > 2000 ? w->quiet_from - 1000 : 1000), restart, w,
               NULL);
    /* Leadership moves away and back, and stretches of a full disk. */
    int moves = (int)sim_range(&s->rng, 0, 4);
    for (int i = 0; i < moves; i++)
        sim_at(s, sim_range(&s->rng, 1000, w->quiet_from > 5000 ? w->quiet_from - 4000 : 1000),
               move_leadership, w, NULL);
    int fulls = (int)sim_range(&s->rng, 0, 3);
    for (int i = 0; i < fulls; i++)
        sim_at(s, sim_range(&s->rng, 1000, w->quiet_from > 5000 ? w->quiet_from - 4000 : 1000), disk_full, w,
               NULL);
    sim_after(s, sim_range(&s->rng, 0, 1000), simple_commit, w, NULL);
    int outages = (int)sim_range(&s->rng, 0, 2);
    for (int i = 0; i < outages; i++)
        sim_at(s, sim_range(&s->rng, 1000, w->quiet_from / 2 + 1000), group_outage, w,
               (void *)(intptr_t)sim_below(&s->rng, (uint64_t)w->n_groups));
    bool ok = sim_run(s, w->end);
    if (ok) {
        check_settled(w);
        ok = !s->failed;
    }
    sim_trace(s,
              "groups=%d members=%d restarts=%d moves=%d joins=%llu syncs=%llu commits=%llu/%llu failed "
              "appends=%llu (%llu failed, %llu snapshots) log=%d",
              w->n_groups, w->n_members, w->restarts, w->moves, (unsigned long long)w->joins_ok,
              (unsigned long long)w->syncs_ok, (unsigned long long)w->commits_ok,
              (unsigned long long)w->commits_failed, (unsigned long long)w->appends,
              (unsigned long long)w->appends_failed, (unsigned long long)w->snapshots, w->n_log);
    /* Tear down without checks: parked requests are answered into the void
     * and every pending event frees what it carries. */
    s->check = NULL;
    w->ending = true;
    if (w->c) {
        gcoord_shutdown(w->c, KAFKA_ERR_NOT_COORDINATOR);
        gcoord_destroy(w->c);
        w->c = NULL;
    }
    s->failed = false; /* let the drain run; the verdict is in ok */
    sim_run(s, INT64_MAX);
    s->failed = !ok;
    for (int i = 0; i < w->n_q; i++)
        free_append(w->q[i]);
    log_clear(w);
    free(w->log);
    free(w->vflags);
    free(w);
    return ok;
}

const sim_scenario sim_scenario_groups = {
    "groups",
    "group coordinator: consumers join, sync, heartbeat, commit, leave, crash and pause; a log that "
    "completes "
    "late or fails; coordinator restarts and leadership moves",
    run,
};
