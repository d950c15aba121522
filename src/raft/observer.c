/*
 * observer.c - following the metadata log without voting. See observer.h.
 */
#include "raft/observer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define NEVER INT64_MAX

struct robs {
    raft_config cfg;
    raft_sink sink;
    int32_t epoch, leader_id;
    int64_t log_start, log_end, flushed, hw;
    int32_t snapshot_epoch;
    raft_epoch_entry *epochs;
    int n_epochs, cap_epochs;
    int next_voter; /* the voter asked next while no leader is known */
    /* the Fetch outstanding (one at most) */
    bool pending;
    int32_t pending_to, pending_corr;
    int64_t pending_deadline;
    int32_t next_corr;
    int64_t next_fetch_at;
    int64_t last_contact; /* the leader's last good answer */
    int in_event;
};

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int32_t last_epoch(const robs *o) {
    return o->n_epochs > 0 ? o->epochs[o->n_epochs - 1].epoch : o->snapshot_epoch;
}

static void check(const robs *o) {
    assert(o->log_start <= o->hw && o->hw <= o->log_end);
    assert(o->flushed >= o->log_start && o->flushed <= o->log_end);
    assert(o->leader_id < 0 || o->leader_id != o->cfg.node_id);
#ifdef SLUICE_DEEP_CHECKS
    for (int i = 0; i < o->n_epochs; i++) {
        assert(o->epochs[i].start_offset >= o->log_start && o->epochs[i].start_offset <= o->log_end);
        if (i > 0)
            assert(o->epochs[i].epoch > o->epochs[i - 1].epoch &&
                   o->epochs[i].start_offset > o->epochs[i - 1].start_offset);
    }
#endif
}

static void cache_add(robs *o, int32_t epoch, int64_t start) {
    if (o->n_epochs > 0 && o->epochs[o->n_epochs - 1].epoch == epoch)
        return;
    if (o->n_epochs == o->cap_epochs) {
        int ncap = o->cap_epochs ? o->cap_epochs * 2 : 16;
        if (ncap > RAFT_EPOCHS_MAX)
            abort(); /* as raft.c: more leader epochs than a log can hold between snapshots */
        raft_epoch_entry *ne = realloc(o->epochs, (size_t)ncap * sizeof *ne);
        if (ne == NULL)
            abort();
        o->epochs = ne;
        o->cap_epochs = ncap;
    }
    o->epochs[o->n_epochs++] = (raft_epoch_entry){epoch, start};
}

/* The largest epoch <= epoch in the log and where it ends. */
static void end_for_epoch(const robs *o, int32_t epoch, int32_t *out_epoch, int64_t *end) {
    for (int i = o->n_epochs - 1; i >= 0; i--)
        if (o->epochs[i].epoch <= epoch) {
            *out_epoch = o->epochs[i].epoch;
            *end = i + 1 < o->n_epochs ? o->epochs[i + 1].start_offset : o->log_end;
            return;
        }
    *out_epoch = o->snapshot_epoch;
    *end = o->log_start;
}

static void set_leader(robs *o, int32_t epoch, int32_t leader, int64_t now) {
    bool changed = epoch != o->epoch || leader != o->leader_id;
    o->epoch = epoch;
    o->leader_id = leader;
    if (leader >= 0)
        o->last_contact = now;
    if (changed && o->sink.role)
        o->sink.role(o->sink.ctx, leader >= 0 ? RAFT_FOLLOWER : RAFT_UNATTACHED, epoch, leader);
}

static bool is_voter(const robs *o, int32_t id) {
    for (int i = 0; i < o->cfg.n_voters; i++)
        if (o->cfg.voters[i] == id)
            return true;
    return false;
}

robs *robs_create(const raft_config *cfg, const raft_sink *sink, const raft_log_info *log, int64_t now) {
    if (cfg->n_voters <= 0 || cfg->n_voters > RAFT_VOTERS_MAX ||
        is_voter(&(robs){.cfg = *cfg}, cfg->node_id) || cfg->fetch_timeout_ms <= 0 ||
        cfg->request_timeout_ms <= 0)
        return NULL;
    robs *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->cfg = *cfg;
    o->sink = *sink;
    o->leader_id = -1;
    o->log_start = log->log_start;
    o->snapshot_epoch = log->snapshot_epoch;
    o->log_end = o->flushed = log->log_end;
    o->hw = log->hw < log->log_start ? log->log_start : log->hw > log->log_end ? log->log_end : log->hw;
    for (int i = 0; i < log->n_epochs; i++)
        cache_add(o, log->epochs[i].epoch, log->epochs[i].start_offset);
    o->epoch = last_epoch(o);
    o->next_voter = (int)(cfg->seed % (uint64_t)cfg->n_voters);
    o->next_fetch_at = now;
    o->next_corr = 1;
    check(o);
    return o;
}

void robs_destroy(robs *o) {
    if (o == NULL)
        return;
    free(o->epochs);
    free(o);
}

static void maybe_fetch(robs *o, int64_t now) {
    if (o->pending || now < o->next_fetch_at || o->flushed != o->log_end)
        return;
    int32_t to = o->leader_id;
    if (to < 0) {
        to = o->cfg.voters[o->next_voter];
        o->next_voter = (o->next_voter + 1) % o->cfg.n_voters;
    }
    raft_msg m = {.kind = RAFT_FETCH_REQUEST};
    m.correlation_id = o->next_corr++;
    if (o->next_corr == INT32_MAX)
        o->next_corr = 1;
    m.u.fetch_req =
        (raft_fetch_request){o->cfg.node_id, o->cfg.fetch_max_wait_ms, o->epoch, o->log_end, last_epoch(o),
                             o->log_start,   o->cfg.fetch_max_bytes};
    o->pending = true;
    o->pending_to = to;
    o->pending_corr = m.correlation_id;
    o->pending_deadline = now + o->cfg.fetch_max_wait_ms + o->cfg.request_timeout_ms;
    o->sink.send(o->sink.ctx, to, &m);
}

static void truncate_to(robs *o, int64_t offset) {
    if (offset < o->hw)
        offset = o->hw;
    if (offset >= o->log_end)
        return;
    o->sink.truncate(o->sink.ctx, offset);
    o->log_end = offset;
    if (o->flushed > offset)
        o->flushed = offset;
    while (o->n_epochs > 0 && o->epochs[o->n_epochs - 1].start_offset >= offset)
        o->n_epochs--;
}

static void advance_hw(robs *o, int64_t hw) {
    if (hw > o->log_end)
        hw = o->log_end;
    if (hw <= o->hw)
        return;
    o->hw = hw;
    o->sink.committed(o->sink.ctx, hw);
}

void robs_receive(robs *o, int32_t from, const raft_msg *m, int64_t now) {
    check(o);
    if (m->kind != RAFT_FETCH_RESPONSE || !o->pending || from != o->pending_to ||
        m->correlation_id != o->pending_corr) {
        check(o);
        return;
    }
    o->pending = false;
    o->in_event++;
    const raft_fetch_response *f = &m->u.fetch_resp;
    if (f->error_code != 0) {
        if (f->current_leader_id >= 0 && f->current_leader_id != o->cfg.node_id &&
            is_voter(o, f->current_leader_id) && f->current_leader_epoch >= o->epoch) {
            set_leader(o, f->current_leader_epoch, f->current_leader_id, now);
            o->next_fetch_at = now;
        } else {
            if (from == o->leader_id)
                set_leader(o, o->epoch, -1, now);
            o->next_fetch_at = now + RAFT_RETRY_MS;
        }
        goto out;
    }
    if (f->current_leader_epoch < o->epoch) {
        o->next_fetch_at = now + RAFT_RETRY_MS;
        goto out;
    }
    set_leader(o, f->current_leader_epoch, from, now);
    o->next_fetch_at = now;
    if (f->diverging_epoch_epoch >= 0) {
        int32_t e;
        int64_t end;
        end_for_epoch(o, f->diverging_epoch_epoch, &e, &end);
        int64_t to = min64(f->diverging_epoch_end_offset, end);
        if (to >= o->log_end || to < o->hw)
            o->next_fetch_at = now + RAFT_RETRY_MS;
        truncate_to(o, to < o->log_start ? o->log_start : to);
        goto out;
    }
    if (f->snapshot_id_end_offset >= 0) {
        if (o->sink.snapshot_needed)
            o->sink.snapshot_needed(o->sink.ctx, from, f->snapshot_id_end_offset, f->snapshot_id_epoch);
        o->next_fetch_at = now + o->cfg.request_timeout_ms;
        goto out;
    }
    if (f->fetch_offset != o->log_end)
        goto out;
    if (f->records_end_offset > f->fetch_offset && f->records.len > 0) {
        if (f->records_epoch < last_epoch(o) || f->records_epoch > o->epoch)
            goto out;
        cache_add(o, f->records_epoch, f->fetch_offset);
        raft_append a = {f->fetch_offset, f->records_end_offset, f->records_epoch, f->records, false, false};
        o->log_end = f->records_end_offset;
        o->sink.append(o->sink.ctx, &a);
    }
    if (f->high_watermark >= 0)
        advance_hw(o, f->high_watermark);
out:
    o->in_event--;
    maybe_fetch(o, now);
    check(o);
}

void robs_tick(robs *o, int64_t now) {
    check(o);
    o->in_event++;
    if (o->pending && now >= o->pending_deadline) {
        o->pending = false;
        if (o->pending_to == o->leader_id)
            o->next_fetch_at = now;
    }
    if (o->leader_id >= 0 && now - o->last_contact >= o->cfg.fetch_timeout_ms)
        set_leader(o, o->epoch, -1, now); /* search again */
    o->in_event--;
    maybe_fetch(o, now);
    check(o);
}

int64_t robs_next_deadline(const robs *o) {
    int64_t d = NEVER;
    if (o->pending)
        d = o->pending_deadline;
    else if (o->flushed == o->log_end)
        d = o->next_fetch_at;
    if (o->leader_id >= 0)
        d = min64(d, o->last_contact + o->cfg.fetch_timeout_ms);
    return d;
}

void robs_log_flushed(robs *o, int64_t end_offset, int64_t now) {
    if (end_offset > o->log_end)
        end_offset = o->log_end;
    if (end_offset > o->flushed)
        o->flushed = end_offset;
    if (o->in_event == 0)
        maybe_fetch(o, now);
}

static int32_t epoch_at(const robs *o, int64_t off) {
    for (int i = o->n_epochs - 1; i >= 0; i--)
        if (o->epochs[i].start_offset <= off)
            return o->epochs[i].epoch;
    return o->snapshot_epoch;
}

void robs_snapshot_loaded(robs *o, int64_t end_offset, int32_t epoch, int64_t now) {
    check(o);
    if (end_offset <= o->log_start)
        return;
    if (end_offset <= o->log_end && epoch_at(o, end_offset - 1) == epoch) {
        /* The owner's own snapshot: the log before it is gone. */
        int k = 0;
        for (int i = 0; i < o->n_epochs; i++) {
            bool covers = i + 1 < o->n_epochs ? o->epochs[i + 1].start_offset > end_offset : true;
            if (o->epochs[i].start_offset >= end_offset || covers)
                o->epochs[k++] = o->epochs[i];
        }
        o->n_epochs = k;
        if (o->n_epochs > 0 && o->epochs[0].start_offset < end_offset)
            o->epochs[0].start_offset = end_offset;
        if (end_offset == o->log_end)
            o->n_epochs = 0;
    } else {
        /* A snapshot fetched from the leader replaced the log. */
        o->n_epochs = 0;
        o->log_end = end_offset;
        o->flushed = end_offset;
    }
    o->log_start = end_offset;
    o->snapshot_epoch = epoch;
    if (o->flushed < end_offset)
        o->flushed = end_offset;
    o->in_event++;
    advance_hw(o, end_offset);
    o->in_event--;
    o->next_fetch_at = now;
    maybe_fetch(o, now);
    check(o);
}

void robs_get_state(const robs *o, raft_state *out) {
    memset(out, 0, sizeof *out);
    out->role = o->leader_id >= 0 ? RAFT_FOLLOWER : RAFT_UNATTACHED;
    out->epoch = o->epoch;
    out->leader_id = o->leader_id;
    out->voted_id = -1;
    out->log_start = o->log_start;
    out->log_end = o->log_end;
    out->flushed = o->flushed;
    out->hw = o->hw;
    out->last_epoch = last_epoch(o);
    out->epoch_start_offset = -1;
}
