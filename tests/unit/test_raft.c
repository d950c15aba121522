/*
 * test_raft.c - the single-step rules of the Raft machine (src/raft): vote
 * granting and its persistence, the log up-to-date check, pre-votes that
 * change nothing, the leader's DivergingEpoch and SnapshotId answers, the
 * high-watermark rule, check quorum, and the follower's fetch timeout.
 * Driven with a fake clock and a sink that records every action in order.
 */
#include <stdint.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "raft/raft.h"
#include "unit.h"

#define MSGS_MAX 64

typedef struct sent {
    int32_t to;
    raft_msg m;
    int seq;
} sent;

typedef struct fake {
    int seq;
    sent msgs[MSGS_MAX];
    int n_msgs;
    raft_quorum_state qs;
    int n_persist, persist_seq;
    int64_t log_end, truncated_to, committed;
    int n_committed, n_appends;
    raft_role role;
    int32_t role_epoch;
    int64_t snap_end;
    uint8_t recs[64];
} fake;

static void f_send(void *ctx, int32_t to, const raft_msg *m) {
    fake *f = ctx;
    if (f->n_msgs < MSGS_MAX)
        f->msgs[f->n_msgs++] = (sent){to, *m, ++f->seq};
}
static void f_append(void *ctx, const raft_append *a) {
    fake *f = ctx;
    f->log_end = a->end_offset;
    f->n_appends++;
}
static void f_truncate(void *ctx, int64_t offset) {
    fake *f = ctx;
    f->truncated_to = offset;
    f->log_end = offset;
}
static void f_persist(void *ctx, const raft_quorum_state *qs) {
    fake *f = ctx;
    f->qs = *qs;
    f->n_persist++;
    f->persist_seq = ++f->seq;
}
static int16_t f_read(void *ctx, int64_t offset, int64_t max_offset, int32_t max_bytes, kbytes *records,
                      int64_t *end_offset) {
    fake *f = ctx;
    (void)max_bytes;
    *records = (kbytes){f->recs, (int32_t)(max_offset - offset)};
    *end_offset = max_offset;
    return 0;
}
static void f_committed(void *ctx, int64_t hw) {
    fake *f = ctx;
    f->committed = hw;
    f->n_committed++;
}
static void f_role(void *ctx, raft_role role, int32_t epoch, int32_t leader) {
    fake *f = ctx;
    (void)leader;
    f->role = role;
    f->role_epoch = epoch;
}
static void f_snapshot(void *ctx, int32_t leader, int64_t end, int32_t epoch) {
    fake *f = ctx;
    (void)leader;
    (void)epoch;
    f->snap_end = end;
}

static raft *make(fake *f, int32_t id, const raft_quorum_state *qs, const raft_epoch_entry *ep, int n_ep,
                  int64_t log_start, int32_t snap_epoch, int64_t log_end) {
    memset(f, 0, sizeof *f);
    f->committed = -1;
    f->truncated_to = -1;
    f->snap_end = -1;
    raft_config c;
    raft_config_default(&c);
    c.node_id = id;
    c.n_voters = 3;
    c.voters[0] = 1;
    c.voters[1] = 2;
    c.voters[2] = 3;
    c.seed = 7;
    raft_sink s = {f, f_send, f_append, f_truncate, f_persist, f_read, f_committed, f_role, f_snapshot};
    raft_log_info li = {log_start, snap_epoch, log_end, ep, n_ep, log_start};
    f->log_end = log_end;
    return raft_create(&c, &s, qs, &li, 0);
}

static const sent *last_to(const fake *f, int32_t to, raft_msg_kind kind) {
    for (int i = f->n_msgs - 1; i >= 0; i--)
        if (f->msgs[i].to == to && f->msgs[i].m.kind == kind)
            return &f->msgs[i];
    return NULL;
}

static void vote_req(raft *r, int32_t from, int32_t epoch, int32_t last_epoch, int64_t last_offset, bool pre,
                     int64_t now) {
    raft_msg m = {.kind = RAFT_VOTE_REQUEST, .correlation_id = 100};
    m.u.vote_req = (raft_vote_request){1, epoch, from, last_epoch, last_offset, pre};
    raft_receive(r, from, &m, now);
}

static bool granted(const fake *f, int32_t to) {
    const sent *s = last_to(f, to, RAFT_VOTE_RESPONSE);
    return s && s->m.u.vote_resp.vote_granted && s->m.correlation_id == 100;
}

/* One vote per epoch, persisted before the answer leaves. */
static void test_vote_granting(void) {
    fake f;
    raft *r = make(&f, 1, NULL, NULL, 0, 0, 0, 0);
    REQUIRE(r);
    vote_req(r, 2, 1, 0, 0, false, 10);
    CHECK(granted(&f, 2));
    CHECK_EQ_INT(f.qs.leader_epoch, 1);
    CHECK_EQ_INT(f.qs.voted_id, 2);
    CHECK(f.persist_seq < last_to(&f, 2, RAFT_VOTE_RESPONSE)->seq);
    vote_req(r, 3, 1, 0, 0, false, 20);
    CHECK(!granted(&f, 3));
    int np = f.n_persist;
    vote_req(r, 2, 1, 0, 0, false, 30); /* the same candidate again: granted, nothing new to persist */
    CHECK(granted(&f, 2));
    CHECK_EQ_INT(f.n_persist, np);
    vote_req(r, 3, 2, 0, 0, false, 40); /* a newer epoch: a new vote */
    CHECK(granted(&f, 3));
    CHECK_EQ_INT(f.qs.leader_epoch, 2);
    CHECK_EQ_INT(f.qs.voted_id, 3);
    vote_req(r, 2, 1, 0, 0, false, 50); /* an older epoch */
    CHECK(!granted(&f, 2));
    CHECK_EQ_INT(last_to(&f, 2, RAFT_VOTE_RESPONSE)->m.u.vote_resp.leader_epoch, 2);
    raft_destroy(r);

    /* A restart keeps the vote. */
    raft_quorum_state qs = {5, -1, 2};
    r = make(&f, 1, &qs, NULL, 0, 0, 0, 0);
    vote_req(r, 3, 5, 0, 0, false, 10);
    CHECK(!granted(&f, 3));
    vote_req(r, 2, 5, 0, 0, false, 10);
    CHECK(granted(&f, 2));
    raft_destroy(r);
}

/* (last epoch, end offset) compared in that order. */
static void test_log_up_to_date(void) {
    raft_epoch_entry ep[] = {{1, 0}, {2, 4}};
    raft_quorum_state qs = {2, -1, -1};
    struct {
        int32_t last_epoch;
        int64_t last_offset;
        bool grant;
    } cases[] = {{1, 100, false}, {2, 9, false}, {2, 10, true}, {2, 11, true}, {3, 0, true}, {0, 0, false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake f;
        raft *r = make(&f, 1, &qs, ep, 2, 0, 0, 10);
        REQUIRE(r);
        vote_req(r, 2, 3, cases[i].last_epoch, cases[i].last_offset, false, 10);
        CHECK_EQ_INT(granted(&f, 2), cases[i].grant);
        raft_destroy(r);
    }
}

/* Pre-votes change no epoch and persist nothing; a follower with a live
 * leader refuses them. */
static void test_pre_vote(void) {
    fake f;
    raft_quorum_state qs = {3, -1, -1};
    raft *r = make(&f, 1, &qs, NULL, 0, 0, 0, 0);
    vote_req(r, 2, 4, 0, 0, true, 10);
    CHECK(granted(&f, 2));
    raft_state st;
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.epoch, 3);
    CHECK_EQ_INT(st.voted_id, -1);
    CHECK_EQ_INT(f.n_persist, 0);
    vote_req(r, 2, 3, 0, 0, true, 20); /* not past our epoch */
    CHECK(!granted(&f, 2));
    /* BeginQuorumEpoch from 3 makes it a follower with a live leader. */
    raft_msg b = {.kind = RAFT_BEGIN_QUORUM_EPOCH_REQUEST, .correlation_id = 5};
    b.u.begin_req = (raft_begin_quorum_epoch_request){1, 3, 3};
    raft_receive(r, 3, &b, 30);
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_FOLLOWER);
    int np = f.n_persist;
    vote_req(r, 2, 4, 0, 0, true, 40);
    CHECK(!granted(&f, 2));
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.epoch, 3);
    CHECK_EQ_INT(st.role, RAFT_FOLLOWER);
    CHECK_EQ_INT(f.n_persist, np);
    raft_destroy(r);

    /* Its own election timeout: prospective, pre-votes for epoch + 1 at
     * the same epoch, nothing persisted. */
    r = make(&f, 1, &qs, NULL, 0, 0, 0, 0);
    raft_tick(r, raft_next_deadline(r));
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_PROSPECTIVE);
    CHECK_EQ_INT(st.epoch, 3);
    CHECK_EQ_INT(f.n_persist, 0);
    const sent *s = last_to(&f, 2, RAFT_VOTE_REQUEST);
    REQUIRE(s);
    CHECK(s->m.u.vote_req.pre_vote);
    CHECK_EQ_INT(s->m.u.vote_req.candidate_epoch, 4);
    raft_destroy(r);
}

/* Elects node 1 of a 3-voter quorum: pre-vote and vote granted by node 2. */
static void elect(raft *r, fake *f, int64_t *now) {
    raft_tick(r, *now = raft_next_deadline(r));
    const sent *s = last_to(f, 2, RAFT_VOTE_REQUEST);
    REQUIRE(s && s->m.u.vote_req.pre_vote);
    raft_msg a = {.kind = RAFT_VOTE_RESPONSE, .correlation_id = s->m.correlation_id};
    raft_state st;
    raft_get_state(r, &st);
    a.u.vote_resp = (raft_vote_response){0, -1, st.epoch, true};
    raft_receive(r, 2, &a, ++*now);
    s = last_to(f, 2, RAFT_VOTE_REQUEST);
    REQUIRE(s && !s->m.u.vote_req.pre_vote);
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_CANDIDATE);
    CHECK_EQ_INT(f->qs.voted_id, 1); /* persisted before asking */
    a.correlation_id = s->m.correlation_id;
    a.u.vote_resp = (raft_vote_response){0, -1, st.epoch, true};
    raft_receive(r, 2, &a, ++*now);
    raft_get_state(r, &st);
    REQUIRE(st.role == RAFT_LEADER);
}

static const raft_fetch_response *fetch(raft *r, fake *f, int32_t from, int64_t offset, int32_t last_epoch,
                                        int64_t now) {
    raft_state st;
    raft_get_state(r, &st);
    raft_msg m = {.kind = RAFT_FETCH_REQUEST, .correlation_id = 200 + f->n_msgs};
    m.u.fetch_req = (raft_fetch_request){from, 0, st.epoch, offset, last_epoch, 0, 1 << 20};
    raft_receive(r, from, &m, now);
    const sent *s = last_to(f, from, RAFT_FETCH_RESPONSE);
    return s && s->m.correlation_id == m.correlation_id ? &s->m.u.fetch_resp : NULL;
}

/* The leader's answer to a position that does not match its log. */
static void test_diverging_epoch(void) {
    fake f;
    raft_epoch_entry ep[] = {{1, 0}, {3, 5}};
    raft_quorum_state qs = {3, -1, -1};
    raft *r = make(&f, 1, &qs, ep, 2, 0, 0, 12);
    int64_t now;
    elect(r, &f, &now);
    raft_state st;
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.epoch, 4);
    CHECK_EQ_INT(st.epoch_start_offset, 12);
    CHECK_EQ_INT(st.log_end, 13);
    const raft_fetch_response *a = fetch(r, &f, 2, 8, 2, ++now); /* epoch 2 is not ours: 1 ends at 5 */
    REQUIRE(a);
    CHECK_EQ_INT(a->diverging_epoch_epoch, 1);
    CHECK_EQ_INT(a->diverging_epoch_end_offset, 5);
    a = fetch(r, &f, 2, 14, 3, ++now); /* past the end of epoch 3 */
    REQUIRE(a);
    CHECK_EQ_INT(a->diverging_epoch_epoch, 3);
    CHECK_EQ_INT(a->diverging_epoch_end_offset, 12);
    a = fetch(r, &f, 2, 12, 3, ++now); /* a match: the records of epoch 4 */
    REQUIRE(a);
    CHECK_EQ_INT(a->diverging_epoch_epoch, -1);
    CHECK_EQ_INT(a->records_epoch, 4);
    CHECK_EQ_INT(a->fetch_offset, 12);
    CHECK_EQ_INT(a->records_end_offset, 13);
    a = fetch(r, &f, 3, 3, 1, ++now); /* inside epoch 1: records of epoch 1 only */
    REQUIRE(a);
    CHECK_EQ_INT(a->records_epoch, 1);
    CHECK_EQ_INT(a->records_end_offset, 5);
    raft_destroy(r);

    /* Below the log start: the snapshot id. */
    raft_epoch_entry ep2[] = {{3, 20}};
    r = make(&f, 1, &qs, ep2, 1, 20, 2, 30);
    elect(r, &f, &now);
    a = fetch(r, &f, 2, 10, 2, ++now);
    REQUIRE(a);
    CHECK_EQ_INT(a->snapshot_id_end_offset, 20);
    CHECK_EQ_INT(a->snapshot_id_epoch, 2);
    a = fetch(r, &f, 2, 25, 1, ++now); /* an epoch older than the log: only the snapshot helps */
    REQUIRE(a);
    CHECK_EQ_INT(a->snapshot_id_end_offset, 20);
    a = fetch(r, &f, 2, 20, 2, ++now); /* at the snapshot, in its epoch: fine */
    REQUIRE(a);
    CHECK_EQ_INT(a->snapshot_id_end_offset, -1);
    CHECK_EQ_INT(a->diverging_epoch_epoch, -1);
    CHECK_EQ_INT(a->records_epoch, 3);
    raft_destroy(r);
}

/* The follower's side: truncation on DivergingEpoch. */
static void test_follower_truncates(void) {
    fake f;
    raft_epoch_entry ep[] = {{1, 0}, {2, 5}};
    raft_quorum_state qs = {3, 2, -1};
    raft *r = make(&f, 1, &qs, ep, 2, 0, 0, 10);
    raft_tick(r, 0);
    const sent *s = last_to(&f, 2, RAFT_FETCH_REQUEST);
    REQUIRE(s);
    CHECK_EQ_INT(s->m.u.fetch_req.fetch_offset, 10);
    CHECK_EQ_INT(s->m.u.fetch_req.last_fetched_epoch, 2);
    raft_msg a = {.kind = RAFT_FETCH_RESPONSE, .correlation_id = s->m.correlation_id};
    a.u.fetch_resp = (raft_fetch_response){.high_watermark = 3,
                                           .diverging_epoch_epoch = 1,
                                           .diverging_epoch_end_offset = 7,
                                           .current_leader_id = 2,
                                           .current_leader_epoch = 3,
                                           .snapshot_id_end_offset = -1,
                                           .fetch_offset = 10};
    raft_receive(r, 2, &a, 5);
    /* min(7, where our epoch 1 ends = 5) */
    CHECK_EQ_INT(f.truncated_to, 5);
    raft_state st;
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.log_end, 5);
    CHECK_EQ_INT(st.last_epoch, 1);
    s = last_to(&f, 2, RAFT_FETCH_REQUEST);
    CHECK_EQ_INT(s->m.u.fetch_req.fetch_offset, 5);
    CHECK_EQ_INT(s->m.u.fetch_req.last_fetched_epoch, 1);
    raft_destroy(r);
}

/* The high watermark: a majority's flushed offset, and only once it
 * passes the current epoch's start (Raft 5.4.2). */
static void test_hw_rule(void) {
    fake f;
    raft_epoch_entry ep[] = {{1, 0}, {3, 5}};
    raft_quorum_state qs = {3, -1, -1};
    raft *r = make(&f, 1, &qs, ep, 2, 0, 0, 12);
    int64_t now;
    elect(r, &f, &now);
    /* The leader change at 12 is written, not flushed. Node 2 has all of
     * the older epochs: a majority holds 12, but those records are not of
     * epoch 4, so nothing is committed. */
    CHECK(fetch(r, &f, 2, 12, 3, ++now) != NULL);
    CHECK_EQ_INT(f.n_committed, 0);
    CHECK_EQ_INT(raft_voter_offset(r, 2), 12);
    raft_log_flushed(r, 13, ++now);
    CHECK_EQ_INT(f.n_committed, 0); /* self 13, node 2 12, node 3 unknown */
    const raft_fetch_response *a = fetch(r, &f, 2, 13, 4, ++now);
    CHECK_EQ_INT(f.n_committed, 1);
    CHECK_EQ_INT(f.committed, 13);
    (void)a;
    /* A proposal counts only once flushed by the leader and fetched past by one more. */
    int64_t base = -1;
    CHECK_EQ_INT(raft_propose(r, (kbytes){f.recs, 16}, 2, ++now, &base), 0);
    CHECK_EQ_INT(base, 13);
    fetch(r, &f, 3, 15, 4, ++now);
    CHECK_EQ_INT(f.committed, 13); /* node 3 has 15 but the leader has flushed only 13 */
    raft_log_flushed(r, 15, ++now);
    CHECK_EQ_INT(f.committed, 15);
    /* Not leader: no proposal. */
    fake g;
    raft *r2 = make(&g, 2, &qs, ep, 2, 0, 0, 12);
    CHECK_EQ_INT(raft_propose(r2, (kbytes){g.recs, 8}, 1, 0, &base), KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
    raft_destroy(r2);
    raft_destroy(r);
}

/* A leader that hears from no majority within the fetch timeout resigns. */
static void test_check_quorum(void) {
    fake f;
    raft *r = make(&f, 1, NULL, NULL, 0, 0, 0, 0);
    int64_t now;
    elect(r, &f, &now);
    int64_t t0 = now;
    fetch(r, &f, 2, 0, 0, t0 + 1000);
    raft_tick(r, t0 + 2500); /* node 2 fetched 1.5 s ago: still a majority */
    raft_state st;
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_LEADER);
    CHECK_EQ_INT(raft_next_deadline(r) <= t0 + 3000, 1);
    raft_tick(r, t0 + 3000);
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_RESIGNED);
    const sent *s = last_to(&f, 2, RAFT_END_QUORUM_EPOCH_REQUEST);
    REQUIRE(s);
    CHECK_EQ_INT(s->m.u.end_req.preferred_candidates[0], 2); /* the most caught up first */
    raft_destroy(r);
}

/* The leader heartbeats a voter that stopped fetching with
 * BeginQuorumEpoch; an answer from a newer epoch makes it step down. */
static void test_begin_heartbeat(void) {
    fake f;
    raft *r = make(&f, 1, NULL, NULL, 0, 0, 0, 0);
    int64_t now;
    elect(r, &f, &now);
    raft_state st;
    raft_get_state(r, &st);
    int32_t epoch = st.epoch;
    const sent *b = last_to(&f, 2, RAFT_BEGIN_QUORUM_EPOCH_REQUEST);
    REQUIRE(b);
    raft_msg a = {.kind = RAFT_BEGIN_QUORUM_EPOCH_RESPONSE, .correlation_id = b->m.correlation_id};
    a.u.epoch_resp = (raft_quorum_epoch_response){0, 1, epoch};
    raft_receive(r, 2, &a, ++now);
    int64_t t = now;
    fetch(r, &f, 2, 0, 0, t);
    int before = f.n_msgs;
    raft_tick(r, t + 999); /* fetched 0.999 s ago: no heartbeat yet */
    b = last_to(&f, 2, RAFT_BEGIN_QUORUM_EPOCH_REQUEST);
    CHECK(b == NULL || b->seq <= f.msgs[before > 0 ? before - 1 : 0].seq);
    CHECK(raft_next_deadline(r) <= t + 1000);
    raft_tick(r, t + 1000);
    b = last_to(&f, 2, RAFT_BEGIN_QUORUM_EPOCH_REQUEST);
    REQUIRE(b && f.n_msgs > before);
    CHECK(b->seq > f.msgs[before - 1].seq);
    a.correlation_id = b->m.correlation_id;
    a.u.epoch_resp = (raft_quorum_epoch_response){KAFKA_ERR_FENCED_LEADER_EPOCH, -1, epoch + 1};
    raft_receive(r, 2, &a, t + 1001);
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_UNATTACHED);
    CHECK_EQ_INT(st.epoch, epoch + 1);
    CHECK_EQ_INT(f.qs.leader_epoch, epoch + 1);
    raft_destroy(r);
}

/* A follower that cannot fetch becomes prospective, at the same epoch. */
static void test_fetch_timeout(void) {
    fake f;
    raft_quorum_state qs = {3, 2, -1};
    raft *r = make(&f, 1, &qs, NULL, 0, 0, 0, 0);
    raft_tick(r, 0);
    CHECK(last_to(&f, 2, RAFT_FETCH_REQUEST) != NULL);
    raft_tick(r, 1999);
    raft_state st;
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_FOLLOWER);
    raft_tick(r, 2000);
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_PROSPECTIVE);
    CHECK_EQ_INT(st.epoch, 3);
    raft_destroy(r);

    /* A restart as leader is a resignation; a bad config is refused. */
    raft_quorum_state ql = {3, 1, 1};
    r = make(&f, 1, &ql, NULL, 0, 0, 0, 0);
    raft_get_state(r, &st);
    CHECK_EQ_INT(st.role, RAFT_RESIGNED);
    raft_destroy(r);
    CHECK(make(&f, 9, NULL, NULL, 0, 0, 0, 0) == NULL);
    raft_epoch_entry ep[] = {{5, 0}};
    CHECK(make(&f, 1, &qs, ep, 1, 0, 0, 4) == NULL); /* a log ahead of the quorum state */
}

int main(void) {
    UNIT_RUN(test_vote_granting);
    UNIT_RUN(test_log_up_to_date);
    UNIT_RUN(test_pre_vote);
    UNIT_RUN(test_diverging_epoch);
    UNIT_RUN(test_follower_truncates);
    UNIT_RUN(test_hw_rule);
    UNIT_RUN(test_check_quorum);
    UNIT_RUN(test_begin_heartbeat);
    UNIT_RUN(test_fetch_timeout);
    return UNIT_END("test_raft");
}
