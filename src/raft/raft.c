/*
 * raft.c - KRaft's Raft as a state machine. See raft.h for the contract.
 *
 * Layout: the per-voter bookkeeping (what the leader knows of each voter,
 * the request outstanding to it, a parked Fetch), the epoch cache, the role
 * transitions (each persists what must be durable before anything that
 * depends on it is sent), then one handler per message kind, the timers,
 * and the entry points. Every entry point ends in settle(): the leader
 * recomputes the high watermark, a follower sends its next Fetch when it
 * may, and the invariants are checked.
 */
#include "raft/raft.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"

#define NEVER INT64_MAX

typedef struct voter {
    int32_t id;
    /* leader: the voter's flushed position (-1 unknown) and its last valid Fetch */
    int64_t match;
    int64_t last_fetch;
    int64_t hw_sent;       /* the high watermark of the last answer */
    bool begin_pending;    /* leader: BeginQuorumEpoch not yet acknowledged (nor a Fetch seen) */
    int64_t begin_sent_at; /* leader: the last BeginQuorumEpoch (also the heartbeat) */
    /* the request outstanding to this voter (one at most) */
    bool req_pending;
    raft_msg_kind req_kind;
    int32_t req_corr;
    int64_t req_deadline;
    /* prospective / candidate: this round's answer: 0 none, 1 granted, -1 refused */
    int8_t vote;
    /* leader: a Fetch held until there is something to send */
    bool parked;
    raft_fetch_request parked_req;
    int32_t parked_corr;
    int64_t parked_deadline;
} voter;

struct raft {
    raft_config cfg;
    raft_sink sink;
    raft_role role;
    int32_t epoch, leader_id, voted_id;
    int64_t log_start, log_end, flushed, hw;
    int32_t snapshot_epoch;
    raft_epoch_entry *epochs; /* grows by doubling: once per leader epoch at most */
    int n_epochs, cap_epochs;
    voter v[RAFT_VOTERS_MAX];
    int n, self;
    /* leader: observers (brokers that fetch without voting), by first Fetch;
     * their positions never count toward the high watermark. */
    voter obs[RAFT_OBSERVERS_MAX];
    int n_obs;
    uint64_t rng;
    int32_t next_corr;
    int64_t election_deadline;   /* unattached, resigned, prospective, candidate; follower when leader_gone */
    int64_t fetch_deadline;      /* follower: the fetch timeout */
    int64_t last_leader_contact; /* follower: last good Fetch answer (pre-vote refusals) */
    int64_t next_fetch_at;       /* follower: when the next Fetch may go (if flushed) */
    int64_t leader_since;        /* leader: when it was elected */
    int64_t epoch_start_offset;  /* leader: the offset of its LeaderChangeMessage */
    bool leader_gone;            /* follower: its leader sent EndQuorumEpoch */
    bool lost;                   /* prospective / candidate: a majority refused this round */
    int in_event;
};

const char *raft_role_name(raft_role r) {
    switch (r) {
    case RAFT_UNATTACHED:
        return "unattached";
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PROSPECTIVE:
        return "prospective";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    case RAFT_RESIGNED:
        return "resigned";
    }
    return "?";
}

void raft_config_default(raft_config *c) {
    memset(c, 0, sizeof *c);
    c->election_timeout_ms = 1000;
    c->fetch_timeout_ms = 2000;
    c->election_backoff_max_ms = 1000;
    c->request_timeout_ms = 2000;
    c->fetch_max_wait_ms = 500;
    c->fetch_max_bytes = 8 << 20;
    c->seed = 1;
}

/* ---- small helpers ------------------------------------------------------------- */

static int majority(const raft *r) { return r->n / 2 + 1; }

static uint64_t next_rand(raft *r) {
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* election.timeout.ms plus up to as much again: the randomized timeout. */
static int64_t rand_election(raft *r) {
    int64_t t = r->cfg.election_timeout_ms;
    return t + (int64_t)(next_rand(r) % (uint64_t)t);
}

static int64_t rand_backoff(raft *r) {
    int64_t b = r->cfg.election_backoff_max_ms;
    return b > 0 ? (int64_t)(next_rand(r) % (uint64_t)(b + 1)) : 0;
}

static voter *find_voter(raft *r, int32_t id) {
    for (int i = 0; i < r->n; i++)
        if (r->v[i].id == id)
            return &r->v[i];
    return NULL;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- the epoch cache ------------------------------------------------------------ */

static int32_t last_epoch(const raft *r) {
    return r->n_epochs > 0 ? r->epochs[r->n_epochs - 1].epoch : r->snapshot_epoch;
}

void raft_end_offset_for_epoch(const raft *r, int32_t epoch, int32_t *out_epoch, int64_t *end_offset) {
    for (int i = r->n_epochs - 1; i >= 0; i--) {
        if (r->epochs[i].epoch <= epoch) {
            *out_epoch = r->epochs[i].epoch;
            *end_offset = i + 1 < r->n_epochs ? r->epochs[i + 1].start_offset : r->log_end;
            return;
        }
    }
    *out_epoch = r->snapshot_epoch;
    *end_offset = r->log_start;
}

/* The cache entry holding offset (offset in [log_start, log_end)). */
static int epoch_index_of(const raft *r, int64_t offset) {
    for (int i = r->n_epochs - 1; i >= 0; i--)
        if (r->epochs[i].start_offset <= offset)
            return i;
    return -1;
}

/* The epoch of the record at offset; the snapshot's below log_start. */
static int32_t epoch_at(const raft *r, int64_t offset) {
    if (offset < r->log_start)
        return r->snapshot_epoch;
    int i = epoch_index_of(r, offset);
    return i >= 0 ? r->epochs[i].epoch : r->snapshot_epoch;
}

static void cache_add(raft *r, int32_t epoch, int64_t start) {
    if (r->n_epochs > 0 && r->epochs[r->n_epochs - 1].epoch == epoch)
        return;
    assert(epoch > last_epoch(r) || (r->n_epochs == 0 && epoch >= r->snapshot_epoch));
    if (r->n_epochs == r->cap_epochs) {
        /* Not a hot path (a new leader epoch), and bounded: a log holds at
         * most RAFT_EPOCHS_MAX epochs between snapshots. */
        assert(r->cap_epochs < RAFT_EPOCHS_MAX);
        int ncap = r->cap_epochs * 2 < RAFT_EPOCHS_MAX ? r->cap_epochs * 2 : RAFT_EPOCHS_MAX;
        raft_epoch_entry *ne = realloc(r->epochs, (size_t)ncap * sizeof *ne);
        assert(ne != NULL); /* a voter that cannot track its log cannot go on */
        r->epochs = ne;
        r->cap_epochs = ncap;
    }
    r->epochs[r->n_epochs++] = (raft_epoch_entry){epoch, start};
}

static void cache_truncate(raft *r, int64_t offset) {
    while (r->n_epochs > 0 && r->epochs[r->n_epochs - 1].start_offset >= offset)
        r->n_epochs--;
}

/* ---- invariants ------------------------------------------------------------------ */

static void check(const raft *r) {
    assert(r->log_start <= r->hw && r->hw <= r->log_end);
    assert(r->flushed >= r->log_start && r->flushed <= r->log_end);
    assert(r->epoch >= 0 && last_epoch(r) <= r->epoch);
    assert(r->n_epochs >= 0 && r->n_epochs <= r->cap_epochs && r->cap_epochs <= RAFT_EPOCHS_MAX);
    switch (r->role) {
    case RAFT_LEADER:
        assert(r->leader_id == r->cfg.node_id && r->voted_id == r->cfg.node_id);
        assert(r->epoch_start_offset >= 0 && r->epoch_start_offset < r->log_end); /* a snapshot may pass it */
        break;
    case RAFT_CANDIDATE:
        assert(r->voted_id == r->cfg.node_id && r->leader_id == -1);
        break;
    case RAFT_FOLLOWER:
        assert(r->leader_id >= 0 && r->leader_id != r->cfg.node_id);
        break;
    case RAFT_RESIGNED:
    case RAFT_UNATTACHED:
    case RAFT_PROSPECTIVE:
        break;
    }
#ifdef SLUICE_DEEP_CHECKS
    for (int i = 0; i < r->n_epochs; i++) {
        assert(r->epochs[i].start_offset >= r->log_start && r->epochs[i].start_offset <= r->log_end);
        assert(r->epochs[i].epoch >= r->snapshot_epoch);
        if (i > 0) {
            assert(r->epochs[i].epoch > r->epochs[i - 1].epoch);
            assert(r->epochs[i].start_offset > r->epochs[i - 1].start_offset);
        }
    }
    for (int i = 0; i < r->n; i++) {
        assert(r->v[i].match <= r->log_end);
        if (r->role != RAFT_LEADER)
            assert(!r->v[i].parked);
    }
#endif
}

/* ---- sending ------------------------------------------------------------------------ */

static void send_request(raft *r, voter *v, raft_msg *m, int64_t now) {
    m->correlation_id = r->next_corr++;
    if (r->next_corr == INT32_MAX)
        r->next_corr = 1;
    v->req_pending = true;
    v->req_kind = m->kind;
    v->req_corr = m->correlation_id;
    v->req_deadline = now + r->cfg.request_timeout_ms;
    r->sink.send(r->sink.ctx, v->id, m);
}

static void send_response(raft *r, int32_t to, raft_msg *m, int32_t corr) {
    m->correlation_id = corr;
    r->sink.send(r->sink.ctx, to, m);
}

/* A response is taken only for the request outstanding to its sender. */
static bool take_response(raft *r, int32_t from, raft_msg_kind req_kind, int32_t corr) {
    voter *v = find_voter(r, from);
    if (v == NULL || !v->req_pending || v->req_kind != req_kind || v->req_corr != corr)
        return false;
    v->req_pending = false;
    return true;
}

/* The leader this node vouches for in its answers: only a live one (a
 * follower's or itself), never a resigned or timed-out one. */
static int32_t known_leader(const raft *r) {
    return r->role == RAFT_FOLLOWER || r->role == RAFT_LEADER ? r->leader_id : -1;
}

static void persist(raft *r) {
    raft_quorum_state qs = {r->epoch, r->leader_id, r->voted_id};
    r->sink.persist(r->sink.ctx, &qs);
}

static void notify_role(raft *r) { r->sink.role(r->sink.ctx, r->role, r->epoch, r->leader_id); }

static void reset_voters(raft *r) {
    r->n_obs = 0; /* a parked observer Fetch is dropped: it times out and comes again */
    for (int i = 0; i < r->n; i++) {
        voter *v = &r->v[i];
        v->req_pending = false;
        v->vote = 0;
        v->parked = false;
        v->begin_pending = false;
        v->match = -1;
        v->hw_sent = -1;
    }
}

/* ---- role transitions ------------------------------------------------------------ */

static void become_candidate(raft *r, int64_t now);
static void become_leader(raft *r, int64_t now);

/* A newer epoch without a known leader (or the same epoch after a vote). */
static void become_unattached(raft *r, int32_t epoch, int64_t now) {
    assert(epoch >= r->epoch);
    if (epoch > r->epoch)
        r->voted_id = -1;
    r->epoch = epoch;
    r->leader_id = -1;
    r->role = RAFT_UNATTACHED;
    persist(r);
    reset_voters(r);
    r->election_deadline = now + rand_election(r);
    notify_role(r);
}

/* contact: heard from the leader itself (BeginQuorumEpoch), not from a
 * voter's answer naming it; only contact makes this node refuse pre-votes. */
static void become_follower(raft *r, int32_t epoch, int32_t leader, bool contact, int64_t now) {
    assert(epoch >= r->epoch && leader != r->cfg.node_id);
    if (epoch > r->epoch)
        r->voted_id = -1;
    r->epoch = epoch;
    r->leader_id = leader;
    r->role = RAFT_FOLLOWER;
    persist(r);
    reset_voters(r);
    r->fetch_deadline = now + r->cfg.fetch_timeout_ms;
    r->last_leader_contact = contact ? now : INT64_MIN / 2;
    r->next_fetch_at = now;
    r->leader_gone = false;
    r->election_deadline = NEVER;
    notify_role(r);
}

/* Adopts a newer epoch learnt from a message: follower of its leader if
 * the message names one, else unattached. */
static void observe_epoch(raft *r, int32_t epoch, int32_t leader, int64_t now) {
    if (epoch < r->epoch)
        return;
    if (epoch > r->epoch) {
        if (leader >= 0 && leader != r->cfg.node_id && find_voter(r, leader))
            become_follower(r, epoch, leader, false, now);
        else
            become_unattached(r, epoch, now);
        return;
    }
    /* Same epoch: a leader we did not know of yet. */
    if (leader >= 0 && leader != r->cfg.node_id && r->leader_id == -1 && find_voter(r, leader) &&
        r->role != RAFT_LEADER)
        become_follower(r, epoch, leader, false, now);
}

static void send_votes(raft *r, bool pre_vote, int64_t now) {
    for (int i = 0; i < r->n; i++) {
        voter *v = &r->v[i];
        /* Not to a voter whose answer is still awaited: a resend would make
         * that answer stale (answers match the latest request), and a
         * voter slower than the owner's ticks would never count. */
        if (i == r->self || v->vote != 0 || (v->req_pending && v->req_kind == RAFT_VOTE_REQUEST))
            continue;
        raft_msg m = {.kind = RAFT_VOTE_REQUEST};
        m.u.vote_req = (raft_vote_request){
            v->id, pre_vote ? r->epoch + 1 : r->epoch, r->cfg.node_id, last_epoch(r), r->log_end, pre_vote};
        send_request(r, v, &m, now);
    }
}

static int count_votes(const raft *r, int8_t which) {
    int k = 0;
    for (int i = 0; i < r->n; i++)
        k += r->v[i].vote == which;
    return k;
}

/* KIP-996: ask for pre-votes for epoch + 1, changing nothing durable. */
static void become_prospective(raft *r, int64_t now) {
    r->role = RAFT_PROSPECTIVE;
    reset_voters(r);
    r->lost = false;
    r->v[r->self].vote = 1;
    r->election_deadline = now + rand_election(r);
    notify_role(r);
    if (count_votes(r, 1) >= majority(r)) {
        become_candidate(r, now);
        return;
    }
    send_votes(r, true, now);
}

static void become_candidate(raft *r, int64_t now) {
    r->epoch++;
    r->voted_id = r->cfg.node_id;
    r->leader_id = -1;
    r->role = RAFT_CANDIDATE;
    persist(r); /* the vote for itself, before anyone is asked */
    reset_voters(r);
    r->lost = false;
    r->v[r->self].vote = 1;
    r->election_deadline = now + rand_election(r);
    notify_role(r);
    if (count_votes(r, 1) >= majority(r)) {
        become_leader(r, now);
        return;
    }
    send_votes(r, false, now);
}

static void send_begin(raft *r, voter *v, int64_t now) {
    raft_msg m = {.kind = RAFT_BEGIN_QUORUM_EPOCH_REQUEST};
    m.u.begin_req = (raft_begin_quorum_epoch_request){v->id, r->cfg.node_id, r->epoch};
    v->begin_sent_at = now;
    send_request(r, v, &m, now);
}

/* Leader: when voter v next needs a BeginQuorumEpoch. Until it has
 * acknowledged the epoch, whenever no request to it is pending; after,
 * as a heartbeat once it has not fetched for half the fetch timeout: a
 * voter that lost track of the leader (e.g. it went to a newer epoch as a
 * candidate that no one followed) learns of it, or answers with its newer
 * epoch so that the leader steps down, instead of asking for pre-votes
 * that the leader's followers refuse forever. */
static int64_t begin_due(const raft *r, const voter *v) {
    if (v->req_pending)
        return v->req_deadline;
    if (v->begin_pending)
        return 0;
    int64_t hb = r->cfg.fetch_timeout_ms / 2;
    int64_t last = v->last_fetch > v->begin_sent_at ? v->last_fetch : v->begin_sent_at;
    return last + hb;
}

static void wake_parked(raft *r, int64_t now);

static void become_leader(raft *r, int64_t now) {
    assert(r->role == RAFT_CANDIDATE && r->voted_id == r->cfg.node_id);
    r->role = RAFT_LEADER;
    r->leader_id = r->cfg.node_id;
    persist(r);
    reset_voters(r);
    r->leader_since = now;
    for (int i = 0; i < r->n; i++) {
        r->v[i].last_fetch = now;
        r->v[i].begin_pending = i != r->self;
    }
    /* The epoch's first record: the LeaderChangeMessage. Until it is
     * committed nothing of an earlier epoch is counted as committed. */
    r->epoch_start_offset = r->log_end;
    cache_add(r, r->epoch, r->log_end);
    raft_append a = {r->log_end, r->log_end + 1, r->epoch, {NULL, 0}, true, true};
    r->log_end++;
    r->in_event++;
    r->sink.append(r->sink.ctx, &a);
    r->in_event--;
    notify_role(r);
    for (int i = 0; i < r->n; i++)
        if (i != r->self)
            send_begin(r, &r->v[i], now);
}

/* Leaves leadership: EndQuorumEpoch to the others, the most caught up
 * first in the preferred candidates. */
static void become_resigned(raft *r, int64_t now) {
    assert(r->role == RAFT_LEADER);
    raft_msg m = {.kind = RAFT_END_QUORUM_EPOCH_REQUEST};
    raft_end_quorum_epoch_request *e = &m.u.end_req;
    e->leader_id = r->cfg.node_id;
    e->leader_epoch = r->epoch;
    for (int i = 0; i < r->n; i++)
        if (i != r->self)
            e->preferred_candidates[e->n_preferred++] = r->v[i].id;
    for (int i = 1; i < e->n_preferred; i++) /* insertion sort by match, descending */
        for (int j = i; j > 0; j--) {
            voter *a = find_voter(r, e->preferred_candidates[j - 1]);
            voter *b = find_voter(r, e->preferred_candidates[j]);
            if (a->match >= b->match)
                break;
            int32_t t = e->preferred_candidates[j];
            e->preferred_candidates[j] = e->preferred_candidates[j - 1];
            e->preferred_candidates[j - 1] = t;
        }
    r->role = RAFT_RESIGNED;
    reset_voters(r);
    r->election_deadline = now + rand_election(r);
    notify_role(r);
    for (int i = 0; i < r->n; i++)
        if (i != r->self)
            send_request(r, &r->v[i], &m, now);
}

/* ---- the high watermark ------------------------------------------------------------- */

static void advance_hw(raft *r, int64_t hw) {
    if (hw <= r->hw)
        return;
    r->hw = hw;
    r->sink.committed(r->sink.ctx, hw);
}

/* Leader: the offset a majority has flushed, counted only once it passes
 * the start of the current epoch (Raft 5.4.2). */
static void leader_update_hw(raft *r, int64_t now) {
    int64_t offs[RAFT_VOTERS_MAX];
    for (int i = 0; i < r->n; i++)
        offs[i] = i == r->self ? r->flushed : r->v[i].match;
    for (int i = 1; i < r->n; i++)
        for (int j = i; j > 0 && offs[j] > offs[j - 1]; j--) {
            int64_t t = offs[j];
            offs[j] = offs[j - 1];
            offs[j - 1] = t;
        }
    int64_t cand = offs[majority(r) - 1];
    if (cand > r->hw && cand > r->epoch_start_offset) {
        advance_hw(r, cand);
        wake_parked(r, now);
    }
}

/* ---- Fetch, the leader's side ------------------------------------------------------------ */

static void fetch_error(raft *r, int32_t to, int32_t corr, int16_t err) {
    raft_msg m = {.kind = RAFT_FETCH_RESPONSE};
    raft_fetch_response *f = &m.u.fetch_resp;
    f->error_code = err;
    f->high_watermark = -1;
    f->log_start_offset = r->log_start;
    f->diverging_epoch_epoch = -1;
    f->diverging_epoch_end_offset = -1;
    f->snapshot_id_end_offset = -1;
    f->snapshot_id_epoch = -1;
    f->current_leader_id = known_leader(r);
    f->current_leader_epoch = r->epoch;
    f->fetch_offset = -1;
    send_response(r, to, &m, corr);
}

/* Answers (or, when allowed and there is nothing to say, parks) a Fetch
 * of a voter whose epoch checks passed. */
static void serve_fetch(raft *r, voter *v, const raft_fetch_request *q, int32_t corr, bool may_park,
                        int64_t now) {
    raft_msg m = {.kind = RAFT_FETCH_RESPONSE};
    raft_fetch_response *f = &m.u.fetch_resp;
    f->log_start_offset = r->log_start;
    f->diverging_epoch_epoch = -1;
    f->diverging_epoch_end_offset = -1;
    f->snapshot_id_end_offset = -1;
    f->snapshot_id_epoch = -1;
    f->current_leader_id = r->cfg.node_id;
    f->current_leader_epoch = r->epoch;
    f->fetch_offset = q->fetch_offset;
    f->records_end_offset = q->fetch_offset;
    f->records_epoch = -1;
    if (q->fetch_offset < r->log_start) {
        f->snapshot_id_end_offset = r->log_start;
        f->snapshot_id_epoch = r->snapshot_epoch;
    } else {
        bool valid;
        if (q->fetch_offset == r->log_start && q->last_fetched_epoch == r->snapshot_epoch) {
            valid = true;
        } else {
            int32_t e;
            int64_t end;
            raft_end_offset_for_epoch(r, q->last_fetched_epoch, &e, &end);
            valid = e == q->last_fetched_epoch && q->fetch_offset <= end;
            bool in_cache = r->n_epochs > 0 && r->epochs[0].epoch <= q->last_fetched_epoch;
            if (!valid && !in_cache && r->log_start > 0 && q->last_fetched_epoch != r->snapshot_epoch) {
                /* The follower's last epoch is none of ours: the logs part
                 * somewhere before our log start, and only the snapshot
                 * brings it back (KIP-630). */
                f->snapshot_id_end_offset = r->log_start;
                f->snapshot_id_epoch = r->snapshot_epoch;
            } else if (!valid) {
                f->diverging_epoch_epoch = e;
                f->diverging_epoch_end_offset = end;
            }
        }
        if (valid) {
            assert(q->fetch_offset <= r->log_end);
            if (q->fetch_offset > v->match) {
                v->match = q->fetch_offset;
                if (v < r->obs || v >= r->obs + RAFT_OBSERVERS_MAX)
                    leader_update_hw(r, now); /* a voter's position; an observer's never counts */
            }
            if (q->fetch_offset == r->log_end && r->hw == v->hw_sent && may_park) {
                v->parked = true;
                v->parked_req = *q;
                v->parked_corr = corr;
                int64_t wait =
                    q->max_wait_ms < r->cfg.fetch_max_wait_ms ? q->max_wait_ms : r->cfg.fetch_max_wait_ms;
                v->parked_deadline = now + (wait > 0 ? wait : 0);
                return;
            }
            if (q->fetch_offset < r->log_end) {
                int i = epoch_index_of(r, q->fetch_offset);
                assert(i >= 0);
                int64_t max_offset = i + 1 < r->n_epochs ? r->epochs[i + 1].start_offset : r->log_end;
                int64_t end = 0;
                int16_t err = r->sink.read(r->sink.ctx, q->fetch_offset, max_offset, q->partition_max_bytes,
                                           &f->records, &end);
                if (err != 0) {
                    fetch_error(r, v->id, corr, err);
                    return;
                }
                assert(end > q->fetch_offset && end <= max_offset);
                f->records_end_offset = end;
                f->records_epoch = r->epochs[i].epoch;
            }
        }
    }
    f->high_watermark = r->hw;
    v->hw_sent = r->hw;
    send_response(r, v->id, &m, corr);
}

static void wake_parked(raft *r, int64_t now) {
    if (r->role != RAFT_LEADER)
        return;
    for (int i = 0; i < r->n + r->n_obs; i++) {
        voter *v = i < r->n ? &r->v[i] : &r->obs[i - r->n];
        if (!v->parked)
            continue;
        if (v->parked_req.fetch_offset < r->log_end || r->hw != v->hw_sent || now >= v->parked_deadline) {
            v->parked = false;
            raft_fetch_request q = v->parked_req;
            serve_fetch(r, v, &q, v->parked_corr, false, now);
        }
    }
}

/* The leader's slot for an observer (a new one at its first Fetch); NULL
 * when RAFT_OBSERVERS_MAX are known already. */
static voter *observer_slot(raft *r, int32_t id) {
    for (int i = 0; i < r->n_obs; i++)
        if (r->obs[i].id == id)
            return &r->obs[i];
    if (r->n_obs == RAFT_OBSERVERS_MAX)
        return NULL;
    voter *v = &r->obs[r->n_obs++];
    memset(v, 0, sizeof *v);
    v->id = id;
    v->match = -1;
    v->hw_sent = -1;
    return v;
}

static void on_fetch_request(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    const raft_fetch_request *q = &m->u.fetch_req;
    voter *v = find_voter(r, from);
    if (v == NULL && from >= 0 && q->replica_id == from && r->role == RAFT_LEADER &&
        q->current_leader_epoch == r->epoch)
        v = observer_slot(r, from);
    if (v == NULL && from >= 0 && q->replica_id == from && from != r->cfg.node_id &&
        (r->role != RAFT_LEADER || q->current_leader_epoch != r->epoch)) {
        /* An observer asking the wrong node or epoch: tell it who leads. */
        fetch_error(r, from, m->correlation_id,
                    q->current_leader_epoch < r->epoch   ? KAFKA_ERR_FENCED_LEADER_EPOCH
                    : q->current_leader_epoch > r->epoch ? KAFKA_ERR_UNKNOWN_LEADER_EPOCH
                                                         : KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
        return;
    }
    if (v == NULL || q->replica_id != from || from == r->cfg.node_id) {
        fetch_error(r, from, m->correlation_id, KAFKA_ERR_INCONSISTENT_VOTER_SET);
        return;
    }
    if (q->current_leader_epoch < r->epoch) {
        fetch_error(r, from, m->correlation_id, KAFKA_ERR_FENCED_LEADER_EPOCH);
        return;
    }
    if (q->current_leader_epoch > r->epoch) {
        fetch_error(r, from, m->correlation_id, KAFKA_ERR_UNKNOWN_LEADER_EPOCH);
        return;
    }
    if (r->role != RAFT_LEADER) {
        fetch_error(r, from, m->correlation_id, KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
        return;
    }
    v->last_fetch = now;
    v->begin_pending = false;
    v->parked = false; /* a newer Fetch replaces a parked one */
    serve_fetch(r, v, q, m->correlation_id, true, now);
}

/* ---- Fetch, the follower's side ------------------------------------------------------------ */

static void maybe_send_fetch(raft *r, int64_t now) {
    if (r->role != RAFT_FOLLOWER || now < r->next_fetch_at || r->flushed != r->log_end)
        return;
    voter *v = find_voter(r, r->leader_id);
    assert(v != NULL);
    if (v->req_pending)
        return;
    raft_msg m = {.kind = RAFT_FETCH_REQUEST};
    m.u.fetch_req =
        (raft_fetch_request){r->cfg.node_id, r->cfg.fetch_max_wait_ms, r->epoch, r->log_end, last_epoch(r),
                             r->log_start,   r->cfg.fetch_max_bytes};
    send_request(r, v, &m, now);
    /* The answer may take fetch_max_wait plus the trip. */
    v->req_deadline = now + r->cfg.fetch_max_wait_ms + r->cfg.request_timeout_ms;
}

static void truncate_log(raft *r, int64_t offset) {
    assert(offset >= r->hw && offset >= r->log_start);
    if (offset >= r->log_end)
        return;
    r->sink.truncate(r->sink.ctx, offset);
    r->log_end = offset;
    if (r->flushed > offset)
        r->flushed = offset;
    cache_truncate(r, offset);
}

static void on_fetch_response(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    if (!take_response(r, from, RAFT_FETCH_REQUEST, m->correlation_id))
        return;
    const raft_fetch_response *f = &m->u.fetch_resp;
    if (r->role != RAFT_FOLLOWER || from != r->leader_id)
        return;
    if (f->error_code != 0) {
        if (f->current_leader_epoch > r->epoch)
            observe_epoch(r, f->current_leader_epoch, f->current_leader_id, now);
        else
            r->next_fetch_at = now + RAFT_RETRY_MS;
        return;
    }
    if (f->current_leader_epoch != r->epoch)
        return;
    r->last_leader_contact = now;
    r->fetch_deadline = now + r->cfg.fetch_timeout_ms;
    r->next_fetch_at = now;
    if (f->diverging_epoch_epoch >= 0) {
        int32_t e;
        int64_t end;
        raft_end_offset_for_epoch(r, f->diverging_epoch_epoch, &e, &end);
        int64_t to = min64(f->diverging_epoch_end_offset, end);
        if (to < r->log_start)
            to = r->log_start;
        if (to >= r->log_end)
            r->next_fetch_at = now + RAFT_RETRY_MS; /* nothing to cut: do not spin */
        truncate_log(r, to);
        return;
    }
    if (f->snapshot_id_end_offset >= 0) {
        int64_t end = f->snapshot_id_end_offset;
        if (end >= r->log_start && end >= r->hw && end <= r->log_end &&
            (end == r->log_start ? r->snapshot_epoch : epoch_at(r, end - 1)) == f->snapshot_id_epoch) {
            /* Our log reaches the snapshot in its epoch, so it agrees up
             * to there and parts after: cut it there instead. */
            if (end < r->log_end)
                truncate_log(r, end);
            else
                r->next_fetch_at = now + RAFT_RETRY_MS;
            return;
        }
        if (r->sink.snapshot_needed)
            r->sink.snapshot_needed(r->sink.ctx, r->leader_id, f->snapshot_id_end_offset,
                                    f->snapshot_id_epoch);
        r->next_fetch_at = now + r->cfg.request_timeout_ms;
        return;
    }
    if (f->fetch_offset != r->log_end)
        return; /* an answer to a position we no longer have */
    if (f->records_end_offset > f->fetch_offset && f->records.len >= 0) {
        if (f->records_epoch < last_epoch(r) || f->records_epoch > r->epoch)
            return; /* cannot be: the leader validated our position */
        cache_add(r, f->records_epoch, f->fetch_offset);
        raft_append a = {f->fetch_offset, f->records_end_offset, f->records_epoch, f->records, false, false};
        r->log_end = f->records_end_offset;
        r->in_event++;
        r->sink.append(r->sink.ctx, &a);
        r->in_event--;
    }
    if (f->high_watermark >= 0)
        advance_hw(r, min64(f->high_watermark, r->log_end));
}

/* ---- votes ------------------------------------------------------------------------------------ */

static bool log_up_to_date(const raft *r, int32_t last_offset_epoch, int64_t last_offset) {
    int32_t mine = last_epoch(r);
    return last_offset_epoch > mine || (last_offset_epoch == mine && last_offset >= r->log_end);
}

/* A follower that fetched from a live leader lately refuses pre-votes
 * (KIP-996), as does the leader itself. */
static bool has_live_leader(const raft *r, int64_t now) {
    if (r->role == RAFT_LEADER)
        return true;
    return r->role == RAFT_FOLLOWER && !r->leader_gone &&
           now - r->last_leader_contact < r->cfg.fetch_timeout_ms;
}

static void on_vote_request(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    const raft_vote_request *q = &m->u.vote_req;
    raft_msg out = {.kind = RAFT_VOTE_RESPONSE};
    raft_vote_response *a = &out.u.vote_resp;
    if (find_voter(r, q->candidate_id) == NULL || q->candidate_id != from || from == r->cfg.node_id) {
        a->error_code = KAFKA_ERR_INCONSISTENT_VOTER_SET;
        a->leader_id = known_leader(r);
        a->leader_epoch = r->epoch;
        send_response(r, from, &out, m->correlation_id);
        return;
    }
    bool grant = false;
    if (q->pre_vote) {
        grant = q->candidate_epoch > r->epoch && log_up_to_date(r, q->last_offset_epoch, q->last_offset) &&
                !has_live_leader(r, now);
    } else {
        if (q->candidate_epoch > r->epoch)
            become_unattached(r, q->candidate_epoch, now);
        if (q->candidate_epoch == r->epoch && r->leader_id == -1 &&
            (r->role == RAFT_UNATTACHED || r->role == RAFT_PROSPECTIVE) &&
            (r->voted_id == -1 || r->voted_id == q->candidate_id) &&
            log_up_to_date(r, q->last_offset_epoch, q->last_offset)) {
            grant = true;
            if (r->voted_id != q->candidate_id) {
                r->voted_id = q->candidate_id;
                if (r->role == RAFT_PROSPECTIVE) {
                    r->role = RAFT_UNATTACHED;
                    reset_voters(r);
                    notify_role(r);
                }
                persist(r); /* the vote is durable before the answer leaves */
            }
            r->election_deadline = now + rand_election(r);
        }
    }
    a->leader_id = known_leader(r);
    a->leader_epoch = r->epoch;
    a->vote_granted = grant;
    send_response(r, from, &out, m->correlation_id);
}

static void on_vote_response(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    if (!take_response(r, from, RAFT_VOTE_REQUEST, m->correlation_id))
        return;
    const raft_vote_response *a = &m->u.vote_resp;
    if (a->error_code != 0)
        return;
    if (a->leader_epoch > r->epoch) {
        observe_epoch(r, a->leader_epoch, a->leader_id, now);
        return;
    }
    if (a->leader_epoch < r->epoch || (r->role != RAFT_PROSPECTIVE && r->role != RAFT_CANDIDATE))
        return;
    if (a->leader_id >= 0 && a->leader_id != r->cfg.node_id && !a->vote_granted &&
        (r->role == RAFT_CANDIDATE || r->leader_id == -1 || r->leader_id == a->leader_id)) {
        /* The voter follows a leader of this epoch. */
        r->leader_id = -1;
        observe_epoch(r, r->epoch, a->leader_id, now);
        return;
    }
    voter *v = find_voter(r, from);
    v->vote = a->vote_granted ? 1 : -1;
    if (count_votes(r, 1) >= majority(r)) {
        if (r->role == RAFT_PROSPECTIVE)
            become_candidate(r, now);
        else
            become_leader(r, now);
    } else if (!r->lost && count_votes(r, -1) > r->n - majority(r)) {
        r->lost = true; /* try again after a backoff */
        r->election_deadline = min64(r->election_deadline, now + rand_backoff(r));
    }
}

/* ---- BeginQuorumEpoch, EndQuorumEpoch ---------------------------------------------------------- */

static void epoch_answer(raft *r, raft_msg_kind kind, int32_t to, int32_t corr, int16_t err) {
    raft_msg out = {.kind = kind};
    out.u.epoch_resp = (raft_quorum_epoch_response){err, known_leader(r), r->epoch};
    send_response(r, to, &out, corr);
}

static void on_begin_request(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    const raft_begin_quorum_epoch_request *q = &m->u.begin_req;
    if (find_voter(r, q->leader_id) == NULL || q->leader_id != from || from == r->cfg.node_id) {
        epoch_answer(r, RAFT_BEGIN_QUORUM_EPOCH_RESPONSE, from, m->correlation_id,
                     KAFKA_ERR_INCONSISTENT_VOTER_SET);
        return;
    }
    if (q->leader_epoch < r->epoch) {
        epoch_answer(r, RAFT_BEGIN_QUORUM_EPOCH_RESPONSE, from, m->correlation_id,
                     KAFKA_ERR_FENCED_LEADER_EPOCH);
        return;
    }
    if (q->leader_epoch > r->epoch || r->role != RAFT_FOLLOWER || r->leader_id != q->leader_id) {
        if (q->leader_epoch == r->epoch && (r->role == RAFT_LEADER || r->role == RAFT_RESIGNED)) {
            /* Two leaders of one epoch cannot be: refuse. */
            epoch_answer(r, RAFT_BEGIN_QUORUM_EPOCH_RESPONSE, from, m->correlation_id,
                         KAFKA_ERR_INVALID_REQUEST);
            return;
        }
        if (q->leader_epoch == r->epoch)
            r->leader_id = -1;
        become_follower(r, q->leader_epoch, q->leader_id, true, now);
    }
    r->last_leader_contact = now; /* the leader's heartbeat */
    epoch_answer(r, RAFT_BEGIN_QUORUM_EPOCH_RESPONSE, from, m->correlation_id, 0);
}

static void on_end_request(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    const raft_end_quorum_epoch_request *q = &m->u.end_req;
    if (find_voter(r, q->leader_id) == NULL || q->leader_id != from) {
        epoch_answer(r, RAFT_END_QUORUM_EPOCH_RESPONSE, from, m->correlation_id,
                     KAFKA_ERR_INCONSISTENT_VOTER_SET);
        return;
    }
    if (q->leader_epoch < r->epoch) {
        epoch_answer(r, RAFT_END_QUORUM_EPOCH_RESPONSE, from, m->correlation_id,
                     KAFKA_ERR_FENCED_LEADER_EPOCH);
        return;
    }
    if (q->leader_epoch > r->epoch)
        become_unattached(r, q->leader_epoch, now);
    if (r->role == RAFT_FOLLOWER && r->leader_id == q->leader_id)
        r->leader_gone = true;
    if (r->role == RAFT_FOLLOWER || r->role == RAFT_UNATTACHED) {
        /* The first preferred candidate starts at once, the others later. */
        int pos = q->n_preferred;
        for (int i = 0; i < q->n_preferred && i < RAFT_VOTERS_MAX; i++)
            if (q->preferred_candidates[i] == r->cfg.node_id)
                pos = i;
        int64_t step = r->cfg.election_backoff_max_ms / (r->n > 1 ? r->n - 1 : 1);
        int64_t at = now + pos * step + (pos > 0 ? rand_backoff(r) / r->n : 0);
        r->election_deadline = min64(r->election_deadline, at);
    }
    epoch_answer(r, RAFT_END_QUORUM_EPOCH_RESPONSE, from, m->correlation_id, 0);
}

static void on_epoch_response(raft *r, int32_t from, const raft_msg *m, raft_msg_kind req_kind, int64_t now) {
    if (!take_response(r, from, req_kind, m->correlation_id))
        return;
    const raft_quorum_epoch_response *a = &m->u.epoch_resp;
    if (a->leader_epoch > r->epoch) {
        observe_epoch(r, a->leader_epoch, a->leader_id, now);
        return;
    }
    if (req_kind == RAFT_BEGIN_QUORUM_EPOCH_REQUEST && a->error_code == 0 && r->role == RAFT_LEADER &&
        a->leader_epoch == r->epoch)
        find_voter(r, from)->begin_pending = false;
}

/* ---- timers -------------------------------------------------------------------------------- */

/* Leader: when the voters heard from lately stop being a majority. */
static int64_t quorum_deadline(const raft *r) {
    int need = majority(r) - 1; /* besides itself */
    if (need == 0)
        return NEVER;
    int64_t t[RAFT_VOTERS_MAX];
    int k = 0;
    for (int i = 0; i < r->n; i++)
        if (i != r->self)
            t[k++] = r->v[i].last_fetch;
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && t[j] > t[j - 1]; j--) {
            int64_t x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return t[need - 1] + r->cfg.fetch_timeout_ms;
}

int64_t raft_next_deadline(const raft *r) {
    int64_t d = NEVER;
    switch (r->role) {
    case RAFT_UNATTACHED:
    case RAFT_RESIGNED:
        d = r->election_deadline;
        break;
    case RAFT_PROSPECTIVE:
    case RAFT_CANDIDATE:
        d = r->election_deadline;
        for (int i = 0; i < r->n; i++)
            if (r->v[i].req_pending && r->v[i].vote == 0)
                d = min64(d, r->v[i].req_deadline);
        break;
    case RAFT_FOLLOWER: {
        d = min64(r->fetch_deadline, r->election_deadline);
        const voter *v = NULL;
        for (int i = 0; i < r->n; i++)
            if (r->v[i].id == r->leader_id)
                v = &r->v[i];
        if (v && v->req_pending)
            d = min64(d, v->req_deadline);
        else if (r->flushed == r->log_end)
            d = min64(d, r->next_fetch_at);
        break;
    }
    case RAFT_LEADER:
        d = quorum_deadline(r);
        for (int i = 0; i < r->n; i++) {
            const voter *v = &r->v[i];
            if (v->parked)
                d = min64(d, v->parked_deadline);
            if (i != r->self)
                d = min64(d, begin_due(r, v));
        }
        for (int i = 0; i < r->n_obs; i++)
            if (r->obs[i].parked)
                d = min64(d, r->obs[i].parked_deadline);
        break;
    }
    return d;
}

static void fire_timers(raft *r, int64_t now) {
    switch (r->role) {
    case RAFT_UNATTACHED:
    case RAFT_RESIGNED:
        if (now >= r->election_deadline)
            become_prospective(r, now);
        break;
    case RAFT_PROSPECTIVE:
    case RAFT_CANDIDATE:
        if (now >= r->election_deadline) {
            become_prospective(r, now); /* a new round of pre-votes */
            break;
        }
        for (int i = 0; i < r->n; i++) {
            voter *v = &r->v[i];
            if (v->req_pending && v->vote == 0 && now >= v->req_deadline)
                v->req_pending = false;
        }
        send_votes(r, r->role == RAFT_PROSPECTIVE, now); /* to those not pending or answered */
        break;
    case RAFT_FOLLOWER: {
        if (now >= r->fetch_deadline || now >= r->election_deadline) {
            become_prospective(r, now);
            break;
        }
        voter *v = find_voter(r, r->leader_id);
        if (v->req_pending && now >= v->req_deadline) {
            v->req_pending = false;
            r->next_fetch_at = now;
        }
        break;
    }
    case RAFT_LEADER:
        if (now >= quorum_deadline(r)) {
            become_resigned(r, now);
            break;
        }
        wake_parked(r, now);
        for (int i = 0; i < r->n; i++) {
            voter *v = &r->v[i];
            if (i != r->self && now >= begin_due(r, v))
                send_begin(r, v, now);
        }
        break;
    }
}

/* Every entry point ends here. */
static void settle(raft *r, int64_t now) {
    if (r->role == RAFT_LEADER)
        leader_update_hw(r, now);
    maybe_send_fetch(r, now);
    check(r);
}

/* ---- entry points ------------------------------------------------------------------------------ */

raft *raft_create(const raft_config *cfg, const raft_sink *sink, const raft_quorum_state *qs,
                  const raft_log_info *log, int64_t now) {
    if (cfg->n_voters < 1 || cfg->n_voters > RAFT_VOTERS_MAX || cfg->election_timeout_ms <= 0 ||
        cfg->fetch_timeout_ms <= 0 || cfg->request_timeout_ms <= 0 || cfg->election_backoff_max_ms < 0 ||
        cfg->fetch_max_wait_ms < 0)
        return NULL;
    if (log->log_start < 0 || log->log_end < log->log_start || log->n_epochs < 0 ||
        log->n_epochs > RAFT_EPOCHS_MAX)
        return NULL;
    raft *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->cfg = *cfg;
    /* A Fetch held longer than half the fetch timeout would time out the
     * follower waiting for it. */
    if (r->cfg.fetch_max_wait_ms > r->cfg.fetch_timeout_ms / 2)
        r->cfg.fetch_max_wait_ms = r->cfg.fetch_timeout_ms / 2;
    r->sink = *sink;
    r->n = cfg->n_voters;
    r->self = -1;
    for (int i = 0; i < r->n; i++) {
        for (int j = 0; j < i; j++)
            if (cfg->voters[j] == cfg->voters[i])
                goto bad;
        r->v[i].id = cfg->voters[i];
        r->v[i].match = -1;
        r->v[i].hw_sent = -1;
        if (cfg->voters[i] == cfg->node_id)
            r->self = i;
    }
    if (r->self < 0)
        goto bad;
    r->rng = cfg->seed ^ ((uint64_t)(uint32_t)cfg->node_id << 32);
    r->next_corr = 1;
    r->log_start = log->log_start;
    r->log_end = r->flushed = log->log_end;
    r->snapshot_epoch = log->snapshot_epoch;
    r->cap_epochs = 64;
    while (r->cap_epochs < log->n_epochs + 1 && r->cap_epochs < RAFT_EPOCHS_MAX)
        r->cap_epochs *= 2;
    r->epochs = malloc((size_t)r->cap_epochs * sizeof *r->epochs);
    if (r->epochs == NULL)
        goto bad;
    for (int i = 0; i < log->n_epochs; i++) {
        const raft_epoch_entry *e = &log->epochs[i];
        if (e->start_offset < r->log_start || e->start_offset > r->log_end ||
            (r->n_epochs > 0 && (e->epoch <= r->epochs[r->n_epochs - 1].epoch ||
                                 e->start_offset <= r->epochs[r->n_epochs - 1].start_offset)))
            goto bad;
        if (e->start_offset == r->log_end)
            break; /* an epoch with no record left */
        r->epochs[r->n_epochs++] = *e;
    }
    r->hw = log->hw < r->log_start ? r->log_start : log->hw > r->log_end ? r->log_end : log->hw;
    if (qs) {
        r->epoch = qs->leader_epoch;
        r->leader_id = qs->leader_id;
        r->voted_id = qs->voted_id;
    } else {
        r->leader_id = r->voted_id = -1;
    }
    if (r->epoch < last_epoch(r))
        goto bad; /* the log is ahead of the quorum state: not this node's files */
    r->election_deadline = r->fetch_deadline = r->next_fetch_at = NEVER;
    r->last_leader_contact = INT64_MIN / 2;
    if (r->leader_id == cfg->node_id) {
        r->role = RAFT_RESIGNED; /* leadership does not survive a restart */
        r->election_deadline = now + rand_election(r);
    } else if (r->leader_id >= 0 && find_voter(r, r->leader_id)) {
        r->role = RAFT_FOLLOWER;
        r->fetch_deadline = now + cfg->fetch_timeout_ms;
        r->next_fetch_at = now;
    } else {
        r->leader_id = -1;
        r->role = RAFT_UNATTACHED;
        r->election_deadline = now + rand_election(r);
    }
    check(r);
    return r;
bad:
    free(r->epochs);
    free(r);
    return NULL;
}

void raft_destroy(raft *r) {
    if (r == NULL)
        return;
    free(r->epochs);
    free(r);
}

void raft_receive(raft *r, int32_t from, const raft_msg *m, int64_t now) {
    check(r);
    if (find_voter(r, from) == NULL && m->kind != RAFT_FETCH_REQUEST && m->kind != RAFT_VOTE_REQUEST)
        return;
    r->in_event++;
    switch (m->kind) {
    case RAFT_VOTE_REQUEST:
        on_vote_request(r, from, m, now);
        break;
    case RAFT_VOTE_RESPONSE:
        on_vote_response(r, from, m, now);
        break;
    case RAFT_BEGIN_QUORUM_EPOCH_REQUEST:
        on_begin_request(r, from, m, now);
        break;
    case RAFT_BEGIN_QUORUM_EPOCH_RESPONSE:
        on_epoch_response(r, from, m, RAFT_BEGIN_QUORUM_EPOCH_REQUEST, now);
        break;
    case RAFT_END_QUORUM_EPOCH_REQUEST:
        on_end_request(r, from, m, now);
        break;
    case RAFT_END_QUORUM_EPOCH_RESPONSE:
        on_epoch_response(r, from, m, RAFT_END_QUORUM_EPOCH_REQUEST, now);
        break;
    case RAFT_FETCH_REQUEST:
        on_fetch_request(r, from, m, now);
        break;
    case RAFT_FETCH_RESPONSE:
        on_fetch_response(r, from, m, now);
        break;
    }
    r->in_event--;
    settle(r, now);
}

void raft_tick(raft *r, int64_t now) {
    check(r);
    r->in_event++;
    fire_timers(r, now);
    r->in_event--;
    settle(r, now);
}

int16_t raft_propose(raft *r, kbytes records, int32_t n_records, int64_t now, int64_t *base_offset) {
    check(r);
    if (r->role != RAFT_LEADER)
        return KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    if (n_records < 1 || records.len < 0)
        return KAFKA_ERR_INVALID_REQUEST;
    raft_append a = {r->log_end, r->log_end + n_records, r->epoch, records, false, true};
    *base_offset = r->log_end;
    cache_add(r, r->epoch, r->log_end); /* a snapshot may have taken the epoch's entry */
    r->log_end += n_records;
    r->in_event++;
    r->sink.append(r->sink.ctx, &a);
    wake_parked(r, now);
    r->in_event--;
    settle(r, now);
    return 0;
}

void raft_log_flushed(raft *r, int64_t end_offset, int64_t now) {
    if (!r->in_event)
        check(r);
    if (end_offset > r->log_end)
        end_offset = r->log_end;
    if (end_offset > r->flushed)
        r->flushed = end_offset;
    if (r->in_event)
        return; /* inside a sink call: the event's settle() does the rest */
    settle(r, now);
}

void raft_snapshot_loaded(raft *r, int64_t end_offset, int32_t epoch, int64_t now) {
    check(r);
    if (end_offset <= r->log_start)
        return;
    if (end_offset <= r->log_end && epoch_at(r, end_offset - 1) == epoch) {
        /* The owner's own snapshot: the log before it is gone. */
        int i = epoch_index_of(r, end_offset);
        int keep = 0;
        if (i >= 0) {
            r->epochs[0] = r->epochs[i];
            if (r->epochs[0].start_offset < end_offset)
                r->epochs[0].start_offset = end_offset;
            keep = 1;
            for (int j = i + 1; j < r->n_epochs; j++)
                r->epochs[keep++] = r->epochs[j];
        }
        r->n_epochs = end_offset == r->log_end ? 0 : keep;
    } else {
        /* A snapshot fetched from the leader replaced the log. */
        r->n_epochs = 0;
        r->log_end = end_offset;
        r->flushed = end_offset;
    }
    r->log_start = end_offset;
    r->snapshot_epoch = epoch;
    if (r->flushed < end_offset)
        r->flushed = end_offset;
    r->in_event++;
    advance_hw(r, end_offset);
    r->next_fetch_at = now;
    r->in_event--;
    settle(r, now);
}

void raft_resign(raft *r, int64_t now) {
    check(r);
    if (r->role != RAFT_LEADER)
        return;
    r->in_event++;
    become_resigned(r, now);
    r->in_event--;
    settle(r, now);
}

void raft_get_state(const raft *r, raft_state *out) {
    out->role = r->role;
    out->epoch = r->epoch;
    out->leader_id = r->leader_id;
    out->voted_id = r->voted_id;
    out->log_start = r->log_start;
    out->log_end = r->log_end;
    out->flushed = r->flushed;
    out->hw = r->hw;
    out->last_epoch = last_epoch(r);
    out->epoch_start_offset = r->role == RAFT_LEADER ? r->epoch_start_offset : -1;
}

int64_t raft_voter_offset(const raft *r, int32_t id) {
    for (int i = 0; i < r->n; i++)
        if (r->v[i].id == id)
            return i == r->self ? r->flushed : r->v[i].match;
    return -1;
}

int raft_observers(const raft *r, int32_t *ids, int64_t *offsets, int max) {
    int n = 0;
    for (int i = 0; r->role == RAFT_LEADER && i < r->n_obs && n < max; i++, n++) {
        ids[n] = r->obs[i].id;
        offsets[n] = r->obs[i].match;
    }
    return n;
}
