/*
 * bench_rebalance.c - one member joins a stable 50-member group: the
 * consumer protocol (KIP-848) against the classic protocol, in the same
 * run, on the coordinator's state machine with simulated time and clients
 * that answer at once.
 *
 * Clients: each of the 50 members heartbeats on its own phase (evenly
 * spread over the interval: 5 s for the consumer protocol, its default
 * group.consumer.heartbeat.interval.ms; 3 s for classic, Kafka's default
 * heartbeat.interval.ms). A consumer-protocol client heartbeats again at
 * once after its assignment changed (its reconciliation is instant). A
 * classic client learns of the rebalance from its next heartbeat
 * (REBALANCE_IN_PROGRESS), stops consuming everything it owns (the eager
 * protocol), rejoins, and syncs as soon as the join round ends; the leader
 * brings a range assignment.
 *
 * Printed per protocol: the simulated time from the join until the group
 * is stable with every partition owned, the partition-seconds during which
 * partitions had no consumer, and the requests it took; then the ratios
 * consumer / classic. Simulated time does not depend on the machine's
 * load; the CPU time of the whole simulation is printed too (a loaded
 * machine makes it noisy; it is not a goal).
 *
 *   bench_rebalance [members, default 50] [partitions, default 100]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "group/coordinator.h"
#include "proto/gen/kafka_msgs.h"

#define MAXM 512

static gcoord *g_c;
static uint64_t g_ids;
static int g_members = 50, g_parts = 100;

static uint64_t on_append(void *ctx, const gcoord_record *r, int n, bool snap, int16_t *err) {
    (void)ctx;
    (void)r;
    (void)n;
    (void)snap;
    (void)err;
    uint64_t id = ++g_ids;
    gcoord_append_done(g_c, id, 0, 0);
    return id;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct result {
    int64_t ms;
    double paused_ps; /* partition-seconds without a consumer */
    long requests;
    bool done;
} result;

/* ---- consumer protocol ------------------------------------------------------------ */

typedef struct cclient {
    char id[16];
    int32_t epoch;
    asg_parts owned;
    int64_t next;
    bool joined;
} cclient;

static cclient g_cc[MAXM + 1];
static gcoord_cg_result g_last;
static asg_parts g_last_asg;

static void on_cg(void *ctx, void *token, const gcoord_cg_result *res) {
    (void)ctx;
    (void)token;
    g_last = *res;
    asg_parts_free(&g_last_asg);
    if (res->has_assignment && asg_parts_copy(&g_last_asg, res->assignment) != 0)
        abort();
}

static bool t_by_name(void *ctx, kstr name, cg_topic_info *out) {
    (void)ctx;
    if (!kstr_eq_c(name, "t"))
        return false;
    kuuid u;
    memset(&u, 0, sizeof u);
    u.b[0] = 7;
    *out = (cg_topic_info){kstr_c("t"), u, g_parts};
    return true;
}
static int32_t t_count(void *ctx) {
    (void)ctx;
    return 1;
}
static bool t_at(void *ctx, int32_t i, cg_topic_info *out) {
    (void)i;
    return t_by_name(ctx, kstr_c("t"), out);
}

/* One heartbeat of client k; true when its assignment changed. */
static bool c_hb(cclient *k, int64_t now) {
    kstr names[1] = {kstr_c("t")};
    cg_heartbeat_req r = {.member_id = kstr_c(k->id),
                          .member_epoch = k->joined ? k->epoch : 0,
                          .instance_id = KSTR_NULL,
                          .rack_id = KSTR_NULL,
                          .rebalance_timeout_ms = 60000,
                          .sub_names = names,
                          .n_sub_names = k->joined ? -1 : 1,
                          .regex = KSTR_NULL,
                          .assignor = KSTR_NULL,
                          .owned = &k->owned,
                          .client_id = kstr_c("bench"),
                          .client_host = kstr_c("/127.0.0.1"),
                          .version = 1,
                          .new_member_id = KSTR_NULL};
    cg_topics tv = {NULL, 1, t_by_name, t_count, t_at};
    int tok = 0;
    gcoord_cg_heartbeat(g_c, kstr_c("bench"), &r, &tv, &tok, now);
    if (g_last.error)
        abort();
    k->joined = true;
    k->epoch = g_last.member_epoch;
    if (!g_last.has_assignment || asg_parts_eq(&g_last_asg, &k->owned))
        return false;
    asg_parts_free(&k->owned);
    if (asg_parts_copy(&k->owned, &g_last_asg) != 0)
        abort();
    return true;
}

static int c_owned_total(int n) {
    int t = 0;
    for (int i = 0; i < n; i++)
        t += g_cc[i].owned.n;
    return t;
}

static bool c_stable(int n) {
    const gcoord_group *g = gcoord_find(g_c, kstr_c("bench"));
    return g && g->cg && strcmp(cg_state_name(g->cg), "Stable") == 0 && c_owned_total(n) == g_parts;
}

static result run_consumer(void) {
    const int64_t H = 5000;
    gcoord_config cfg;
    gcoord_config_default(&cfg);
    gcoord_sink sink = {.append = on_append, .cg_heartbeat_done = on_cg};
    g_c = gcoord_create(&cfg, &sink);
    gcoord_load_begin(g_c, 1, 0);
    gcoord_load_end(g_c, 0);
    int n = g_members;
    memset(g_cc, 0, sizeof g_cc);
    for (int i = 0; i <= n; i++)
        snprintf(g_cc[i].id, sizeof g_cc[i].id, "m%d", i);
    /* The stable group: everyone joins, heartbeats until settled. */
    int64_t now = 0;
    for (int round = 0; round < 100 && !(round > 0 && c_stable(n)); round++)
        for (int i = 0; i < n; i++)
            c_hb(&g_cc[i], now);
    now = 1000;
    for (int i = 0; i < n; i++)
        g_cc[i].next = now + (int64_t)(i + 1) * H / n;
    result res = {0};
    int64_t t0 = now, last = now;
    g_cc[n].next = now;
    int m = n + 1;
    while (now - t0 < 120000) {
        int k = 0;
        for (int i = 1; i < m; i++)
            if (g_cc[i].next < g_cc[k].next)
                k = i;
        int64_t t = g_cc[k].next;
        res.paused_ps += (double)(g_parts - c_owned_total(m)) * (double)(t - last) / 1000.0;
        last = now = t;
        gcoord_tick(g_c, now);
        bool changed = c_hb(&g_cc[k], now);
        res.requests++;
        g_cc[k].next = now + (changed ? 0 : H);
        if (c_stable(m)) {
            res.ms = now - t0;
            res.done = true;
            break;
        }
    }
    for (int i = 0; i <= n; i++)
        asg_parts_free(&g_cc[i].owned);
    asg_parts_free(&g_last_asg);
    gcoord_shutdown(g_c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(g_c);
    return res;
}

/* ---- classic protocol -------------------------------------------------------------- */

typedef struct kclient {
    char id[128];
    int32_t gen;
    bool leader;
    bool in_join, join_done, in_sync, synced;
    int owned; /* partitions it consumes */
    int64_t next;
    int16_t join_err;
} kclient;

static kclient g_kc[MAXM + 1];
static int g_km;
static char g_leader[128];

static void on_join(void *ctx, void *token, const gcoord_join_result *res) {
    (void)ctx;
    kclient *k = token;
    k->in_join = false;
    k->join_err = res->error;
    snprintf(k->id, sizeof k->id, "%.*s", res->member_id.len > 0 ? res->member_id.len : 0,
             res->member_id.len > 0 ? res->member_id.ptr : "");
    if (res->error)
        return;
    k->gen = res->generation;
    snprintf(g_leader, sizeof g_leader, "%.*s", res->leader.len, res->leader.ptr);
    k->leader = strcmp(g_leader, k->id) == 0;
    k->join_done = true;
}

static void on_sync(void *ctx, void *token, const gcoord_sync_result *res) {
    (void)ctx;
    kclient *k = token;
    k->in_sync = false;
    if (res->error)
        return;
    k->synced = true;
    k->owned = res->assignment.len; /* the bench's assignment: one byte per partition */
}

static void k_join(kclient *k, int64_t now) {
    kstr pn = kstr_c("range");
    static const uint8_t meta[1] = {0};
    kbytes pm = {meta, 1};
    gcoord_join_req jr = {.group_id = kstr_c("bench"),
                          .member_id = kstr_c(k->id),
                          .instance_id = KSTR_NULL,
                          .protocol_type = kstr_c("consumer"),
                          .client_id = kstr_c("bench"),
                          .client_host = kstr_c("/127.0.0.1"),
                          .session_timeout_ms = 45000,
                          .rebalance_timeout_ms = 60000,
                          .protocol_names = &pn,
                          .protocol_metadata = &pm,
                          .n_protocols = 1,
                          .require_known_member_id = true};
    k->in_join = true;
    k->join_done = k->synced = false;
    gcoord_join(g_c, &jr, k, now);
    if (!k->in_join && k->join_err == KAFKA_ERR_MEMBER_ID_REQUIRED) {
        k->in_join = true;
        jr.member_id = kstr_c(k->id);
        gcoord_join(g_c, &jr, k, now);
    }
}

static uint8_t g_asg_bytes[MAXM + 1][4096];

static void k_sync(kclient *k, int64_t now) {
    kstr ids[MAXM + 1];
    kbytes as[MAXM + 1];
    int na = 0;
    if (k->leader)
        for (int i = 0; i < g_km; i++) {
            /* range: member i of m gets parts/m, the first parts%m one more */
            int q = g_parts / g_km, r = g_parts % g_km;
            ids[na] = kstr_c(g_kc[i].id);
            as[na] = (kbytes){g_asg_bytes[i], q + (i < r)};
            na++;
        }
    gcoord_sync_req sr = {.group_id = kstr_c("bench"),
                          .member_id = kstr_c(k->id),
                          .instance_id = KSTR_NULL,
                          .generation = k->gen,
                          .protocol_type = KSTR_NULL,
                          .protocol_name = KSTR_NULL,
                          .assign_member = ids,
                          .assign_bytes = as,
                          .n_assign = na};
    k->join_done = false;
    k->in_sync = true;
    gcoord_sync(g_c, &sr, k, now);
}

static int k_owned_total(void) {
    int t = 0;
    for (int i = 0; i < g_km; i++)
        t += g_kc[i].owned;
    return t;
}

/* Lets every client do what it must now: sync after a join, leader first. */
static long k_progress(int64_t now) {
    long reqs = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g_km; i++) {
            kclient *k = &g_kc[i];
            if (k->join_done && (pass == 1 || k->leader)) {
                k_sync(k, now);
                reqs++;
            }
        }
    return reqs;
}

static bool k_stable(void) {
    const gcoord_group *g = gcoord_find(g_c, kstr_c("bench"));
    if (g == NULL || g->state != GCOORD_STABLE || k_owned_total() != g_parts)
        return false;
    for (int i = 0; i < g_km; i++)
        if (!g_kc[i].synced)
            return false;
    return true;
}

static result run_classic(void) {
    const int64_t H = 3000;
    gcoord_config cfg;
    gcoord_config_default(&cfg);
    gcoord_sink sink = {.join_done = on_join, .sync_done = on_sync, .append = on_append};
    g_c = gcoord_create(&cfg, &sink);
    gcoord_load_begin(g_c, 1, 0);
    gcoord_load_end(g_c, 0);
    int n = g_members;
    memset(g_kc, 0, sizeof g_kc);
    g_km = n;
    int64_t now = 0;
    for (int i = 0; i < n; i++)
        k_join(&g_kc[i], now);
    /* The initial delay extends while members arrive: tick until formed. */
    int64_t t = 0;
    for (; t <= 70000 && !k_stable(); t += 500) {
        gcoord_tick(g_c, t);
        k_progress(t);
    }
    if (!k_stable()) {
        fprintf(stderr, "bench_rebalance: the classic group did not form\n");
        exit(1);
    }
    now = t + 1000;
    for (int i = 0; i < n; i++)
        g_kc[i].next = now + (int64_t)(i + 1) * H / n;
    result res = {0};
    int64_t t0 = now, last = now;
    g_km = n + 1;
    k_join(&g_kc[n], now);
    res.requests += 2;
    g_kc[n].next = INT64_MAX;
    while (now - t0 < 120000) {
        int k = 0;
        for (int i = 1; i < g_km; i++)
            if (g_kc[i].next < g_kc[k].next)
                k = i;
        int64_t t = g_kc[k].next;
        int64_t dl = gcoord_next_deadline(g_c);
        if (dl < t)
            t = dl;
        res.paused_ps += (double)(g_parts - k_owned_total()) * (double)(t - last) / 1000.0;
        last = now = t;
        gcoord_tick(g_c, now);
        kclient *c = &g_kc[k];
        if (c->next == now && !c->in_join && !c->in_sync) {
            int16_t e = gcoord_heartbeat(g_c, kstr_c("bench"), kstr_c(c->id), KSTR_NULL, c->gen, now);
            res.requests++;
            if (e == KAFKA_ERR_REBALANCE_IN_PROGRESS) {
                c->owned = 0; /* eager: it gives up everything and rejoins */
                k_join(c, now);
                res.requests++;
            }
        }
        if (c->next == now)
            c->next = now + H;
        res.requests += k_progress(now);
        if (k_stable()) {
            res.ms = now - t0;
            res.done = true;
            break;
        }
    }
    if (getenv("BENCH_DEBUG")) {
        const gcoord_group *g = gcoord_find(g_c, kstr_c("bench"));
        fprintf(stderr, "classic: state %s gen %d members %d owned %d\n",
                g ? gcoord_state_name(g->state) : "-", g ? g->generation : -1, g ? g->n_members : -1,
                k_owned_total());
        for (int i = 0; i < g_km; i++)
            fprintf(stderr, "  %d: in_join %d join_done %d in_sync %d synced %d owned %d err %d\n", i,
                    g_kc[i].in_join, g_kc[i].join_done, g_kc[i].in_sync, g_kc[i].synced, g_kc[i].owned,
                    g_kc[i].join_err);
    }
    gcoord_shutdown(g_c, KAFKA_ERR_NOT_COORDINATOR);
    gcoord_destroy(g_c);
    return res;
}

int main(int argc, char **argv) {
    if (argc > 1)
        g_members = atoi(argv[1]);
    if (argc > 2)
        g_parts = atoi(argv[2]);
    if (g_members < 1 || g_members > MAXM - 1 || g_parts < 1 || g_parts > 4000) {
        fprintf(stderr, "usage: bench_rebalance [members 1..%d] [partitions 1..4000]\n", MAXM - 1);
        return 2;
    }
    double c0 = cpu_s();
    result k = run_classic();
    double c1 = cpu_s();
    result c = run_consumer();
    double c2 = cpu_s();
    if (getenv("BENCH_DEBUG"))
        fprintf(stderr, "classic done %d ms %lld; consumer done %d ms %lld\n", k.done, (long long)k.ms,
                c.done, (long long)c.ms);
    if (!k.done || !c.done) {
        fprintf(stderr, "bench_rebalance: a protocol did not settle within 120 simulated seconds\n");
        return 1;
    }
    printf("one member joins a stable group of %d members, %d partitions (simulated time)\n", g_members,
           g_parts);
    printf("  classic  : stable after %6lld ms, %8.1f partition-s unconsumed, %4ld requests, cpu %.3f s\n",
           (long long)k.ms, k.paused_ps, k.requests, c1 - c0);
    printf("  consumer : stable after %6lld ms, %8.1f partition-s unconsumed, %4ld requests, cpu %.3f s\n",
           (long long)c.ms, c.paused_ps, c.requests, c2 - c1);
    printf("  ratio consumer/classic: time %.2f, unconsumed partition-s %.3f, requests %.2f\n",
           k.ms ? (double)c.ms / (double)k.ms : 0.0, k.paused_ps > 0 ? c.paused_ps / k.paused_ps : 0.0,
           k.requests ? (double)c.requests / (double)k.requests : 0.0);
    return 0;
}
