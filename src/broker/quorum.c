/*
 * quorum.c - this node's seat in the KRaft quorum. See quorum.h.
 */
#include "broker/quorum.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/rpc.h"
#include "core/log.h"
#include "proto/batch_build.h"
#include "raft/codec.h"
#include "raft/observer.h"

#define STATE_FILE    "quorum-state"
#define STATE_MAX     4096
#define TICK_MAX_MS   100  /* the timer thread wakes at least this often */
#define HW_PERSIST_MS 1000 /* how often a moved committed offset is recorded */
#define CHAN_FETCH    0
#define CHAN_CONTROL  1
#define CHANS         2

typedef struct pending {
    int32_t corr;
    breq *r;
    int64_t deadline;
} pending;

typedef struct chan {
    struct bquorum *q;
    const bquorum_voter *peer;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    raft_msg queue[BQUORUM_QUEUE_MAX];
    int head, n;
    net_client conn;
    arena a;
    int32_t next_corr;
    int64_t last_error_log;
} chan;

struct bquorum {
    bquorum_config cfg;
    bquorum_hooks hooks;
    raft *r;   /* a voter's machine, or */
    robs *obs; /* an observer's (node.id not among the voters) */
    raft_config rc;
    /* Guarded by cfg.mu: */
    pending pend[BQUORUM_PENDING_MAX];
    int n_pend;
    int32_t next_in_corr;
    uint8_t *read_buf; /* the bytes of the last read, valid until the next */
    raft_quorum_state qs;
    int64_t hw, hw_recorded, hw_recorded_at;
    bool fatal;
    bool quiesced; /* shutting down: requests from others are refused */
    /* The timer thread. */
    pthread_t timer;
    bool timer_started;
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    atomic_bool stop;
    bool kicked;
    chan chans[RAFT_VOTERS_MAX][CHANS];
    int n_chans;
    char client_id[64];
    /* FetchSnapshot (guarded by tmu; the transfer runs on snap_th). */
    pthread_t snap_th;
    bool snap_started, snap_want;
    int32_t snap_leader, snap_epoch;
    int64_t snap_end;
};

/* The node's machine, voter or observer. */
static void m_receive(bquorum *q, int32_t from, const raft_msg *m, int64_t now) {
    if (q->obs)
        robs_receive(q->obs, from, m, now);
    else
        raft_receive(q->r, from, m, now);
}
static void m_tick(bquorum *q, int64_t now) {
    if (q->obs)
        robs_tick(q->obs, now);
    else
        raft_tick(q->r, now);
}
static int64_t m_deadline(const bquorum *q) {
    return q->obs ? robs_next_deadline(q->obs) : raft_next_deadline(q->r);
}
static void m_flushed(bquorum *q, int64_t end, int64_t now) {
    if (q->obs)
        robs_log_flushed(q->obs, end, now);
    else
        raft_log_flushed(q->r, end, now);
}
static void m_state(const bquorum *q, raft_state *st) {
    if (q->obs)
        robs_get_state(q->obs, st);
    else
        raft_get_state(q->r, st);
}

static int64_t now_ms(const bquorum *q) { return sl_env_mono_ms(q->cfg.env); }

static void fatal(bquorum *q, const char *what) {
    if (!q->fatal)
        LOG_ERROR(
            "quorum",
            "%s; this node stops (a voter that cannot record its log or its vote cannot take part). Fix "
            "the disk and restart it",
            what);
    q->fatal = true;
    broker_stop_fatally();
}

/* ---- the quorum-state file ------------------------------------------------------------ */

static int write_state(bquorum *q, const raft_quorum_state *qs, int64_t hw) {
    char path[4200], tmp[4300], text[STATE_MAX];
    snprintf(path, sizeof path, "%s/%s", q->cfg.dir, STATE_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(
        text, sizeof text,
        "{\"clusterId\":\"%s\",\"leaderId\":%d,\"leaderEpoch\":%d,\"votedId\":%d,\"appliedOffset\":%" PRId64
        ",\"currentVoters\":[",
        q->cfg.cluster_id ? q->cfg.cluster_id : "", qs->leader_id, qs->leader_epoch, qs->voted_id, hw);
    for (int i = 0; i < q->cfg.n_voters && n < (int)sizeof text - 64; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"voterId\":%d}", i ? "," : "",
                      q->cfg.voters[i].id);
    n += snprintf(text + n, sizeof text - (size_t)n, "],\"data_version\":0}\n");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, text, (size_t)n) != n || fsync(fd) != 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0) {
        int dfd = open(q->cfg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return rc;
}

static bool json_int(const char *text, const char *key, int64_t *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return false;
    char *end;
    long long v = strtoll(p + strlen(pat), &end, 10);
    if (end == p + strlen(pat))
        return false;
    *out = v;
    return true;
}

/* 1 with *qs and *hw, 0 when there is no file, -1 when it cannot be read. */
static int read_state(const char *dir, raft_quorum_state *qs, int64_t *hw, char *cluster, size_t clustern) {
    char path[4200], text[STATE_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    int64_t lid, ep, vid, app = 0;
    if (!json_int(text, "leaderId", &lid) || !json_int(text, "leaderEpoch", &ep) ||
        !json_int(text, "votedId", &vid) || ep < 0 || ep > INT32_MAX || lid < -1 || lid > INT32_MAX ||
        vid < -1 || vid > INT32_MAX)
        return -1;
    json_int(text, "appliedOffset", &app);
    qs->leader_id = (int32_t)lid;
    qs->leader_epoch = (int32_t)ep;
    qs->voted_id = (int32_t)vid;
    *hw = app > 0 ? app : 0;
    if (cluster) {
        cluster[0] = '\0';
        const char *p = strstr(text, "\"clusterId\":\"");
        if (p) {
            p += strlen("\"clusterId\":\"");
            size_t k = 0;
            while (p[k] && p[k] != '"' && k + 1 < clustern) {
                cluster[k] = p[k];
                k++;
            }
            cluster[k] = '\0';
        }
    }
    return 1;
}

int64_t bquorum_recorded_commit(const char *dir) {
    raft_quorum_state qs;
    int64_t hw = 0;
    return read_state(dir, &qs, &hw, NULL, 0) == 1 ? hw : 0;
}

/* ---- the machine's sink (mu held) ------------------------------------------------------ */

static chan *chan_for(bquorum *q, int32_t to, int kind) {
    for (int i = 0; i < q->cfg.n_voters; i++)
        if (q->chans[i][kind].peer && q->chans[i][kind].peer->id == to)
            return &q->chans[i][kind];
    return NULL;
}

static void chan_push(chan *c, const raft_msg *m) {
    pthread_mutex_lock(&c->mu);
    if (c->n < BQUORUM_QUEUE_MAX) {
        c->queue[(c->head + c->n) % BQUORUM_QUEUE_MAX] = *m;
        c->n++;
        pthread_cond_signal(&c->cv);
    } /* else dropped: the machine resends on its timeouts */
    pthread_mutex_unlock(&c->mu);
}

static pending *find_pending(bquorum *q, int32_t corr) {
    for (int i = 0; i < q->n_pend; i++)
        if (q->pend[i].corr == corr)
            return &q->pend[i];
    return NULL;
}

static void drop_pending(bquorum *q, pending *p) { *p = q->pend[--q->n_pend]; }

static void answer(bquorum *q, pending *p, const raft_msg *m) {
    breq *r = p->r;
    raft_msg copy = *m;
    if (m->kind == RAFT_FETCH_RESPONSE && m->u.fetch_resp.records.len > 0) {
        /* the bytes are ours only until send returns */
        uint8_t *b = breq_alloc(r, (size_t)m->u.fetch_resp.records.len);
        if (b == NULL) {
            copy.u.fetch_resp.records = (kbytes){NULL, 0};
            copy.u.fetch_resp.records_end_offset = copy.u.fetch_resp.fetch_offset;
        } else {
            memcpy(b, m->u.fetch_resp.records.ptr, (size_t)m->u.fetch_resp.records.len);
            copy.u.fetch_resp.records.ptr = b;
        }
    }
    if (raft_codec_fill_response(&copy, &r->mem, r->resp) != RAFT_CODEC_OK) {
        drop_pending(q, p);
        breq_abort(r);
        return;
    }
    drop_pending(q, p);
    breq_complete(r);
}

static void sink_send(void *ctx, int32_t to, const raft_msg *m) {
    bquorum *q = ctx;
    switch (m->kind) {
    case RAFT_VOTE_RESPONSE:
    case RAFT_BEGIN_QUORUM_EPOCH_RESPONSE:
    case RAFT_END_QUORUM_EPOCH_RESPONSE:
    case RAFT_FETCH_RESPONSE: {
        pending *p = find_pending(q, m->correlation_id);
        if (p != NULL)
            answer(q, p, m);
        return;
    }
    default: {
        chan *c = chan_for(q, to, m->kind == RAFT_FETCH_REQUEST ? CHAN_FETCH : CHAN_CONTROL);
        if (c != NULL && !atomic_load(&q->stop))
            chan_push(c, m);
        return;
    }
    }
}

static void sink_append(void *ctx, const raft_append *a) {
    bquorum *q = ctx;
    int64_t wall = sl_env_wall_ms(q->cfg.env), end = 0;
    int rc;
    if (a->leader_change) {
        int32_t ids[RAFT_VOTERS_MAX];
        for (int i = 0; i < q->cfg.n_voters; i++)
            ids[i] = q->cfg.voters[i].id;
        int64_t off = 0;
        rc = mdlog_append_leader_change(q->cfg.log, a->epoch, q->cfg.node_id, ids, q->cfg.n_voters, wall,
                                        &off);
        end = off + 1;
    } else {
        rc = mdlog_append_raw(q->cfg.log, a->records.ptr, (size_t)a->records.len, wall, &end);
    }
    if (rc != STORAGE_OK || end != a->end_offset) {
        char why[256];
        snprintf(why, sizeof why,
                 "writing the metadata log at offset %" PRId64 " failed: %s (the log ends at %" PRId64 ")",
                 a->base_offset, rc ? storage_strerror(rc) : "the batch ends elsewhere",
                 mdlog_end_offset(q->cfg.log));
        fatal(q, why);
        return;
    }
    m_flushed(q, end, now_ms(q));
}

static void sink_truncate(void *ctx, int64_t offset) {
    bquorum *q = ctx;
    LOG_INFO("quorum",
             "the metadata log diverged from the leader's: cut at offset %" PRId64 " (was %" PRId64 ")",
             offset, mdlog_end_offset(q->cfg.log));
    if (mdlog_truncate(q->cfg.log, offset) != STORAGE_OK)
        fatal(q, "truncating the metadata log failed");
}

static void sink_persist(void *ctx, const raft_quorum_state *qs) {
    bquorum *q = ctx;
    q->qs = *qs;
    int rc = write_state(q, qs, q->hw_recorded);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "writing %s/%s failed: %s", q->cfg.dir, STATE_FILE, strerror(-rc));
        fatal(q, why);
    }
}

static int16_t sink_read(void *ctx, int64_t offset, int64_t max_offset, int32_t max_bytes, kbytes *records,
                         int64_t *end_offset) {
    bquorum *q = ctx;
    free(q->read_buf);
    q->read_buf = NULL;
    uint8_t *buf;
    size_t len;
    int rc = mdlog_read(q->cfg.log, offset, max_offset, max_bytes, &buf, &len, end_offset);
    if (rc != STORAGE_OK || len > INT32_MAX) {
        LOG_WARN("quorum", "reading the metadata log at %" PRId64 " for a follower failed: %s", offset,
                 storage_strerror(rc));
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    }
    q->read_buf = buf;
    *records = (kbytes){buf, (int32_t)len};
    return 0;
}

static void sink_committed(void *ctx, int64_t hw) {
    bquorum *q = ctx;
    q->hw = hw;
    if (q->hooks.committed)
        q->hooks.committed(q->hooks.ctx, hw);
}

static void sink_role(void *ctx, raft_role role, int32_t epoch, int32_t leader_id) {
    bquorum *q = ctx;
    LOG_INFO("quorum", "%s in epoch %d (leader %d)", raft_role_name(role), epoch, leader_id);
    if (q->hooks.role)
        q->hooks.role(q->hooks.ctx, role, epoch, leader_id);
}

static void sink_snapshot_needed(void *ctx, int32_t leader_id, int64_t end_offset, int32_t epoch) {
    bquorum *q = ctx;
    pthread_mutex_lock(&q->tmu);
    if (!q->snap_want) {
        LOG_INFO("quorum",
                 "the leader (node %d) has the metadata log only from its snapshot at offset %" PRId64
                 " (epoch %d) on: fetching the snapshot",
                 leader_id, end_offset, epoch);
        q->snap_want = true;
        q->snap_leader = leader_id;
        q->snap_end = end_offset;
        q->snap_epoch = epoch;
        pthread_cond_broadcast(&q->tcv);
    }
    pthread_mutex_unlock(&q->tmu);
}

/* ---- the connection threads ------------------------------------------------------------ */

static void *chan_main(void *arg) {
    chan *c = arg;
    bquorum *q = c->q;
    sl_env_bind(q->cfg.env);
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (c->n == 0 && !q->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (q->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        raft_msg m = c->queue[c->head];
        c->head = (c->head + 1) % BQUORUM_QUEUE_MAX;
        c->n--;
        pthread_mutex_unlock(&c->mu);

        int16_t key, ver;
        raft_codec_api(m.kind, &key, &ver);
        arena_reset(&c->a);
        arena_init(&c->a, 64 << 10);
        void *req = NULL, *resp = NULL;
        int rc = raft_codec_request(&m, q->cfg.cluster_id, &c->a, &req);
        int timeout =
            q->cfg.request_timeout_ms + (m.kind == RAFT_FETCH_REQUEST ? m.u.fetch_req.max_wait_ms : 0);
        if (rc == RAFT_CODEC_OK)
            rc = brpc_call(&c->conn, key, ver, ++c->next_corr, q->client_id, req, &c->a, &resp, timeout);
        if (rc != 0) {
            int64_t t = now_ms(q);
            if (t - c->last_error_log > 30000) {
                LOG_INFO("quorum", "%s to node %d at %s:%u failed: %s (retried by the quorum's timeouts)",
                         kafka_api_lookup(key) ? kafka_api_lookup(key)->name : "request", c->peer->id,
                         c->peer->host, c->peer->port, rc < 0 ? strerror(-rc) : "cannot encode");
                c->last_error_log = t;
            }
            continue;
        }
        raft_msg_kind rk = (raft_msg_kind)(m.kind + 1); /* each response follows its request */
        raft_msg out;
        if (raft_codec_parse_response(rk, resp, &out) != RAFT_CODEC_OK)
            continue;
        out.correlation_id = m.correlation_id;
        if (rk == RAFT_FETCH_RESPONSE && out.u.fetch_resp.fetch_offset < 0) {
            out.u.fetch_resp.fetch_offset = m.u.fetch_req.fetch_offset;
            out.u.fetch_resp.records_end_offset = m.u.fetch_req.fetch_offset;
        }
        pthread_mutex_lock(q->cfg.mu);
        if (!q->stop && !q->fatal)
            m_receive(q, c->peer->id, &out, now_ms(q));
        pthread_mutex_unlock(q->cfg.mu);
        bquorum_kick(q);
    }
    net_client_free(&c->conn);
    arena_reset(&c->a);
    return NULL;
}

/* ---- FetchSnapshot: the fetching side ------------------------------------------------------ */

/* Fetches snapshot (end, epoch) from the leader into tmp. 0 or -1 (logged). */
static int fetch_snapshot(bquorum *q, int32_t leader, int64_t end, int32_t epoch, const char *tmp) {
    const bquorum_voter *v = bquorum_voter_of(q, leader);
    if (v == NULL)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        LOG_WARN("quorum", "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    net_client c;
    net_client_init(&c, v->host, v->port);
    int64_t pos = 0, size = -1;
    int rc = 0;
    int32_t corr = 0;
    while (rc == 0 && (size < 0 || pos < size) && !atomic_load(&q->stop)) {
        arena a;
        arena_init(&a, BQUORUM_SNAPSHOT_CHUNK * 2 + (64 << 10));
        kafka_fetch_snapshot_request req;
        kafka_fetch_snapshot_request_topic_snapshot t;
        kafka_fetch_snapshot_request_partition_snapshot p;
        kafka_fetch_snapshot_request_init(&req);
        kafka_fetch_snapshot_request_topic_snapshot_init(&t);
        kafka_fetch_snapshot_request_partition_snapshot_init(&p);
        req.cluster_id = q->cfg.cluster_id ? kstr_c(q->cfg.cluster_id) : (kstr){NULL, -1};
        req.replica_id = q->cfg.node_id;
        req.max_bytes = BQUORUM_SNAPSHOT_CHUNK;
        req.topics = &t;
        req.topics_count = 1;
        t.name = kstr_c(RAFT_METADATA_TOPIC);
        t.partitions = &p;
        t.partitions_count = 1;
        p.partition = 0;
        pthread_mutex_lock(q->cfg.mu);
        raft_state st;
        m_state(q, &st);
        pthread_mutex_unlock(q->cfg.mu);
        p.current_leader_epoch = st.epoch;
        p.snapshot_id.end_offset = end;
        p.snapshot_id.epoch = epoch;
        p.position = pos;
        void *resp = NULL;
        rc = brpc_call(&c, KAFKA_API_FETCH_SNAPSHOT, 0, ++corr, q->client_id, &req, &a, &resp,
                       q->cfg.request_timeout_ms);
        const kafka_fetch_snapshot_response_partition_snapshot *ps = NULL;
        if (rc == 0) {
            const kafka_fetch_snapshot_response *r = resp;
            if (r->error_code == 0 && r->topics_count == 1 && r->topics[0].partitions_count == 1)
                ps = &r->topics[0].partitions[0];
            if (ps == NULL || ps->error_code != 0 || ps->position != pos || ps->size < 0 ||
                ps->size > BQUORUM_SNAPSHOT_MAX || (size >= 0 && ps->size != size) ||
                ps->unaligned_records.len < 0 || pos + ps->unaligned_records.len > ps->size ||
                (ps->unaligned_records.len == 0 && pos < ps->size)) {
                LOG_WARN("quorum", "FetchSnapshot from node %d at position %" PRId64 " answered %s", leader,
                         pos, kafka_error_name(ps ? ps->error_code : r->error_code));
                rc = -1;
            }
        }
        if (rc == 0) {
            size = ps->size;
            if (ps->unaligned_records.len > 0 &&
                write(fd, ps->unaligned_records.ptr, (size_t)ps->unaligned_records.len) !=
                    ps->unaligned_records.len)
                rc = -1;
            pos += ps->unaligned_records.len;
        }
        arena_reset(&a);
    }
    net_client_free(&c);
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc == 0 && size >= 0 && pos == size ? 0 : -1;
}

static void *snap_main(void *arg) {
    bquorum *q = arg;
    sl_env_bind(q->cfg.env);
    for (;;) {
        pthread_mutex_lock(&q->tmu);
        while (!q->snap_want && !atomic_load(&q->stop))
            pthread_cond_wait(&q->tcv, &q->tmu);
        bool stop = atomic_load(&q->stop);
        int32_t leader = q->snap_leader, epoch = q->snap_epoch;
        int64_t end = q->snap_end;
        pthread_mutex_unlock(&q->tmu);
        if (stop)
            break;
        /* Under its own name (verification reads it) in a directory of
         * its own, so a crash mid-transfer leaves nothing the log opens. */
        char tmpdir[4300], name[4400], tmp[8800];
        snprintf(tmpdir, sizeof tmpdir, "%s/snapshot-fetch", q->cfg.dir);
        mkdir(tmpdir, 0755);
        mdlog_snapshot_file(q->cfg.log, end, epoch, name, sizeof name);
        const char *base = strrchr(name, '/');
        snprintf(tmp, sizeof tmp, "%s/%s", tmpdir, base ? base + 1 : name);
        int rc = fetch_snapshot(q, leader, end, epoch, tmp);
        if (rc == 0) {
            pthread_mutex_lock(q->cfg.mu);
            rc = q->hooks.install ? q->hooks.install(q->hooks.ctx, tmp, end, epoch) : -1;
            if (rc == 0) {
                if (q->obs)
                    robs_snapshot_loaded(q->obs, end, epoch, now_ms(q));
                else
                    raft_snapshot_loaded(q->r, end, epoch, now_ms(q));
                LOG_INFO("quorum", "loaded the leader's snapshot at offset %" PRId64 " (epoch %d)", end,
                         epoch);
            }
            pthread_mutex_unlock(q->cfg.mu);
            unlink(tmp);
            rmdir(tmpdir);
        }
        pthread_mutex_lock(&q->tmu);
        q->snap_want = false; /* the machine asks again if it still needs it */
        pthread_mutex_unlock(&q->tmu);
        if (rc != 0)
            usleep(200000);
        bquorum_kick(q);
    }
    return NULL;
}

void bquorum_log_trimmed(bquorum *q, int64_t start, int32_t epoch) {
    raft_state st;
    m_state(q, &st);
    /* An observer serves no reads: its own start does not matter. */
    if (q->r == NULL || start <= st.log_start || start > st.hw) {
        LOG_DEBUG("quorum", "log start %" PRId64 " not passed on (machine's [%" PRId64 ", hw %" PRId64 "))",
                  start, st.log_start, st.hw);
        return;
    }
    /* The record before start must be of `epoch` in the machine's log too,
     * or the machine would take this for a fetched snapshot replacing it. */
    int32_t e, e0;
    int64_t end, end0;
    raft_end_offset_for_epoch(q->r, epoch, &e, &end);
    raft_end_offset_for_epoch(q->r, epoch - 1, &e0, &end0);
    if (e != epoch || end < start || (epoch > 0 && end0 > start - 1 && e0 != epoch)) {
        LOG_WARN("quorum",
                 "the metadata log now starts at %" PRId64
                 " but its epochs do not say the record before is of "
                 "epoch %d; followers that fall that far behind fetch the next snapshot",
                 start, epoch);
        return;
    }
    raft_snapshot_loaded(q->r, start, epoch, now_ms(q));
    LOG_INFO("quorum", "the metadata log starts at offset %" PRId64 " (a snapshot holds what came before)",
             start);
}

/* ---- the timer thread -------------------------------------------------------------------- */

static void expire_pending(bquorum *q, int64_t now) {
    for (int i = 0; i < q->n_pend;) {
        pending *p = &q->pend[i];
        if (now < p->deadline) {
            i++;
            continue;
        }
        breq *r = p->r;
        drop_pending(q, p);
        breq_abort(r); /* the machine never answered: the peer's request times out */
    }
}

static void *timer_main(void *arg) {
    bquorum *q = arg;
    sl_env_bind(q->cfg.env);
    for (;;) {
        pthread_mutex_lock(q->cfg.mu);
        int64_t now = now_ms(q);
        int64_t next = now + TICK_MAX_MS;
        if (!q->fatal && !atomic_load(&q->stop)) {
            m_tick(q, now);
            expire_pending(q, now);
            if (q->hw > q->hw_recorded && now - q->hw_recorded_at >= HW_PERSIST_MS) {
                if (write_state(q, &q->qs, q->hw) == 0)
                    q->hw_recorded = q->hw;
                q->hw_recorded_at = now;
            }
            int64_t d = m_deadline(q);
            if (d < next)
                next = d;
        }
        pthread_mutex_unlock(q->cfg.mu);
        pthread_mutex_lock(&q->tmu);
        if (q->stop) {
            pthread_mutex_unlock(&q->tmu);
            break;
        }
        if (!q->kicked && next > now_ms(q)) {
            int64_t wait = next - now_ms(q);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&q->tcv, &q->tmu, &ts);
        }
        q->kicked = false;
        pthread_mutex_unlock(&q->tmu);
    }
    return NULL;
}

void bquorum_quiesce(bquorum *q) {
    pthread_mutex_lock(q->cfg.mu);
    q->quiesced = true;
    while (q->n_pend > 0) {
        breq *r = q->pend[0].r;
        drop_pending(q, &q->pend[0]);
        breq_abort(r);
    }
    pthread_mutex_unlock(q->cfg.mu);
}

void bquorum_kick(bquorum *q) {
    pthread_mutex_lock(&q->tmu);
    q->kicked = true;
    pthread_cond_signal(&q->tcv);
    pthread_mutex_unlock(&q->tmu);
}

/* ---- open / close ------------------------------------------------------------------------ */

typedef struct epochs_scan {
    raft_epoch_entry *e;
    int n, cap;
} epochs_scan;

static int scan_epoch(void *ctx, int64_t base, int64_t last, int32_t epoch, bool control) {
    (void)last;
    (void)control;
    epochs_scan *s = ctx;
    if (s->n > 0 && s->e[s->n - 1].epoch == epoch)
        return 0;
    if (s->n > 0 && epoch < s->e[s->n - 1].epoch)
        return 1; /* epochs go down: the log is not a Raft log */
    if (s->n == s->cap) {
        int ncap = s->cap ? s->cap * 2 : 16;
        raft_epoch_entry *ne = realloc(s->e, (size_t)ncap * sizeof *ne);
        if (ne == NULL)
            return 2;
        s->e = ne;
        s->cap = ncap;
    }
    s->e[s->n++] = (raft_epoch_entry){epoch, base};
    return 0;
}

bquorum *bquorum_open(const bquorum_config *cfg, const bquorum_hooks *hooks, char *err, size_t errn) {
    bquorum *q = calloc(1, sizeof *q);
    if (q == NULL) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    q->cfg = *cfg;
    if (hooks)
        q->hooks = *hooks;
    snprintf(q->client_id, sizeof q->client_id, "sluice-quorum-%d", cfg->node_id);
    pthread_mutex_init(&q->tmu, NULL);
    pthread_cond_init(&q->tcv, NULL);
    raft_quorum_state qs = {0, -1, -1};
    int64_t hw = 0;
    char cluster[128] = "";
    int sr = read_state(cfg->dir, &qs, &hw, cluster, sizeof cluster);
    if (sr < 0) {
        snprintf(err, errn,
                 "%s/%s cannot be read; restore it or remove it (the node then starts with no vote)",
                 cfg->dir, STATE_FILE);
        free(q);
        return NULL;
    }
    if (sr == 1 && cluster[0] && cfg->cluster_id && strcmp(cluster, cfg->cluster_id) != 0) {
        snprintf(err, errn, "%s/%s belongs to cluster %s, not to this node's cluster %s", cfg->dir,
                 STATE_FILE, cluster, cfg->cluster_id);
        free(q);
        return NULL;
    }
    q->qs = qs;
    epochs_scan es = {0};
    int64_t start = mdlog_start_offset(cfg->log), end = mdlog_end_offset(cfg->log);
    int br = mdlog_batches(cfg->log, start, scan_epoch, &es);
    if (br != 0) {
        snprintf(err, errn, "the metadata log's leader epochs cannot be read (%s)",
                 br == 1   ? "they go down"
                 : br == 2 ? "out of memory"
                           : storage_strerror(br));
        free(es.e);
        free(q);
        return NULL;
    }
    if (hw > end)
        hw = end;
    q->hw = q->hw_recorded = hw;
    raft_config_default(&q->rc);
    q->rc.node_id = cfg->node_id;
    q->rc.n_voters = cfg->n_voters;
    for (int i = 0; i < cfg->n_voters; i++)
        q->rc.voters[i] = cfg->voters[i].id;
    q->rc.election_timeout_ms = cfg->election_timeout_ms;
    q->rc.fetch_timeout_ms = cfg->fetch_timeout_ms;
    q->rc.election_backoff_max_ms = cfg->election_backoff_max_ms;
    q->rc.request_timeout_ms = cfg->request_timeout_ms;
    q->rc.seed = sl_env_random_u64(cfg->env);
    raft_log_info li = {start, mdlog_start_epoch(cfg->log), end, es.e, es.n, hw};
    raft_sink sink = {q,         sink_send,      sink_append, sink_truncate,       sink_persist,
                      sink_read, sink_committed, sink_role,   sink_snapshot_needed};
    bool voter = false;
    for (int i = 0; i < cfg->n_voters; i++)
        voter = voter || cfg->voters[i].id == cfg->node_id;
    if (voter)
        q->r = raft_create(&q->rc, &sink, sr == 1 ? &qs : NULL, &li, now_ms(q));
    else
        q->obs = robs_create(&q->rc, &sink, &li, now_ms(q));
    free(es.e);
    if (q->r == NULL && q->obs == NULL) {
        snprintf(err, errn, "the quorum cannot start for node %d (at most %d voters; out of memory?)",
                 cfg->node_id, RAFT_VOTERS_MAX);
        free(q);
        return NULL;
    }
    for (int i = 0; i < cfg->n_voters; i++) {
        if (cfg->voters[i].id == cfg->node_id)
            continue;
        for (int k = 0; k < CHANS; k++) {
            chan *c = &q->chans[q->n_chans][k];
            c->q = q;
            c->peer = &q->cfg.voters[i];
            pthread_mutex_init(&c->mu, NULL);
            pthread_cond_init(&c->cv, NULL);
            net_client_init(&c->conn, c->peer->host, c->peer->port);
            arena_init(&c->a, 64 << 10);
        }
        q->n_chans++;
    }
    raft_state st;
    m_state(q, &st);
    if (q->obs)
        LOG_INFO("quorum",
                 "node %d observes the quorum of %d voters (broker only): log [%" PRId64 ", %" PRId64
                 "), committed %" PRId64 " (recorded)",
                 cfg->node_id, cfg->n_voters, st.log_start, st.log_end, hw);
    else
        LOG_INFO("quorum",
                 "node %d of %d voters: epoch %d, %s, log [%" PRId64 ", %" PRId64 "), committed %" PRId64
                 " (recorded)",
                 cfg->node_id, cfg->n_voters, st.epoch, raft_role_name(st.role), st.log_start, st.log_end,
                 hw);
    return q;
}

int bquorum_start(bquorum *q) {
    for (int i = 0; i < q->n_chans; i++)
        for (int k = 0; k < CHANS; k++) {
            chan *c = &q->chans[i][k];
            if (pthread_create(&c->th, NULL, chan_main, c) != 0)
                return -1;
            c->started = true;
        }
    if (pthread_create(&q->timer, NULL, timer_main, q) != 0)
        return -1;
    q->timer_started = true;
    if (pthread_create(&q->snap_th, NULL, snap_main, q) != 0)
        return -1;
    q->snap_started = true;
    return 0;
}

void bquorum_close(bquorum *q) {
    if (q == NULL)
        return;
    pthread_mutex_lock(q->cfg.mu);
    if (!q->fatal && q->r)
        raft_resign(q->r, now_ms(q));
    pthread_mutex_unlock(q->cfg.mu);
    /* give the EndQuorumEpoch a moment to leave */
    for (int i = 0; i < 20; i++) {
        bool empty = true;
        for (int k = 0; k < q->n_chans; k++) {
            chan *c = &q->chans[k][CHAN_CONTROL];
            pthread_mutex_lock(&c->mu);
            empty = empty && c->n == 0;
            pthread_mutex_unlock(&c->mu);
        }
        if (empty)
            break;
        usleep(10000);
    }
    /* Set under the machine's lock: no tick, no delivered response and no
     * sink call queues anything on a channel after this. */
    pthread_mutex_lock(q->cfg.mu);
    pthread_mutex_lock(&q->tmu);
    q->stop = true;
    pthread_cond_broadcast(&q->tcv);
    pthread_mutex_unlock(&q->tmu);
    pthread_mutex_unlock(q->cfg.mu);
    if (q->timer_started)
        pthread_join(q->timer, NULL);
    if (q->snap_started)
        pthread_join(q->snap_th, NULL);
    for (int i = 0; i < q->n_chans; i++)
        for (int k = 0; k < CHANS; k++) {
            chan *c = &q->chans[i][k];
            pthread_mutex_lock(&c->mu);
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
        } /* a call in progress ends within its timeout (a Fetch: within the leader's wait) */
    for (int i = 0; i < q->n_chans; i++)
        for (int k = 0; k < CHANS; k++) {
            chan *c = &q->chans[i][k];
            if (c->started)
                pthread_join(c->th, NULL);
            else
                net_client_free(&c->conn);
        }
    /* Only once every thread that could touch a channel has ended. */
    for (int i = 0; i < q->n_chans; i++)
        for (int k = 0; k < CHANS; k++) {
            pthread_mutex_destroy(&q->chans[i][k].mu);
            pthread_cond_destroy(&q->chans[i][k].cv);
        }
    pthread_mutex_lock(q->cfg.mu);
    while (q->n_pend > 0) {
        breq *r = q->pend[0].r;
        drop_pending(q, &q->pend[0]);
        breq_abort(r);
    }
    if (q->hw > q->hw_recorded && !q->fatal)
        write_state(q, &q->qs, q->hw);
    pthread_mutex_unlock(q->cfg.mu);
    raft_destroy(q->r);
    robs_destroy(q->obs);
    free(q->read_buf);
    pthread_mutex_destroy(&q->tmu);
    pthread_cond_destroy(&q->tcv);
    free(q);
}

/* ---- requests from other voters ----------------------------------------------------------- */

static breq_status describe_quorum(bquorum *q, breq *r) {
    kafka_describe_quorum_response *resp = r->resp;
    kafka_describe_quorum_response_topic_data *t = breq_calloc(r, 1, sizeof *t);
    kafka_describe_quorum_response_partition_data *p = breq_calloc(r, 1, sizeof *p);
    kafka_describe_quorum_response_replica_state *vs = breq_calloc(r, (size_t)q->cfg.n_voters, sizeof *vs);
    kafka_describe_quorum_response_node *nodes = breq_calloc(r, (size_t)q->cfg.n_voters, sizeof *nodes);
    kafka_describe_quorum_response_listener *ls = breq_calloc(r, (size_t)q->cfg.n_voters, sizeof *ls);
    if (!t || !p || !vs || !nodes || !ls)
        return BREQ_CLOSE;
    kafka_describe_quorum_response_topic_data_init(t);
    kafka_describe_quorum_response_partition_data_init(p);
    resp->topics = t;
    resp->topics_count = 1;
    t->topic_name = kstr_c(RAFT_METADATA_TOPIC);
    t->partitions = p;
    t->partitions_count = 1;
    pthread_mutex_lock(q->cfg.mu);
    raft_state st;
    m_state(q, &st);
    int32_t oid[64];
    int64_t ooff[64];
    int n_obs = q->r && st.role == RAFT_LEADER ? raft_observers(q->r, oid, ooff, 64) : 0;
    kafka_describe_quorum_response_replica_state *os =
        n_obs > 0 ? breq_calloc(r, (size_t)n_obs, sizeof *os) : NULL;
    if (n_obs > 0 && os == NULL)
        n_obs = 0;
    for (int i = 0; i < n_obs; i++) {
        kafka_describe_quorum_response_replica_state_init(&os[i]);
        os[i].replica_id = oid[i];
        os[i].log_end_offset = ooff[i];
    }
    if (st.role != RAFT_LEADER) {
        p->error_code = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
        p->error_message = kstr_c("this node is not the quorum's leader");
    }
    p->leader_id = st.leader_id;
    p->leader_epoch = st.epoch;
    p->high_watermark = st.hw;
    for (int i = 0; i < q->cfg.n_voters; i++) {
        kafka_describe_quorum_response_replica_state_init(&vs[i]);
        vs[i].replica_id = q->cfg.voters[i].id;
        vs[i].log_end_offset = q->cfg.voters[i].id == q->cfg.node_id ? st.flushed
                               : q->r != NULL ? raft_voter_offset(q->r, q->cfg.voters[i].id)
                                              : -1;
        kafka_describe_quorum_response_node_init(&nodes[i]);
        nodes[i].node_id = q->cfg.voters[i].id;
        kafka_describe_quorum_response_listener_init(&ls[i]);
        ls[i].name = kstr_c("CONTROLLER");
        ls[i].host = kstr_c(q->cfg.voters[i].host);
        ls[i].port = q->cfg.voters[i].port;
        nodes[i].listeners = &ls[i];
        nodes[i].listeners_count = 1;
    }
    pthread_mutex_unlock(q->cfg.mu);
    p->current_voters = vs;
    p->current_voters_count = q->cfg.n_voters;
    p->observers = os;
    p->observers_count = n_obs;
    resp->nodes = nodes;
    resp->nodes_count = q->cfg.n_voters;
    return BREQ_DONE;
}

static void top_error(breq *r, int16_t err) {
    switch (r->hdr.api_key) {
    case KAFKA_API_VOTE:
        ((kafka_vote_response *)r->resp)->error_code = err;
        break;
    case KAFKA_API_BEGIN_QUORUM_EPOCH:
        ((kafka_begin_quorum_epoch_response *)r->resp)->error_code = err;
        break;
    case KAFKA_API_END_QUORUM_EPOCH:
        ((kafka_end_quorum_epoch_response *)r->resp)->error_code = err;
        break;
    case KAFKA_API_FETCH:
        ((kafka_fetch_response *)r->resp)->error_code = err;
        break;
    default:
        break;
    }
}

/* FetchSnapshot: the leader serves its snapshot files in chunks. */
static breq_status serve_snapshot(bquorum *q, breq *r) {
    const kafka_fetch_snapshot_request *req = r->req;
    kafka_fetch_snapshot_response *resp = r->resp;
    if (req->topics_count != 1 || req->topics[0].partitions_count != 1 ||
        !kstr_eq_c(req->topics[0].name, RAFT_METADATA_TOPIC) || req->topics[0].partitions[0].partition != 0) {
        resp->error_code = KAFKA_ERR_INVALID_REQUEST;
        return BREQ_DONE;
    }
    const kafka_fetch_snapshot_request_partition_snapshot *p = &req->topics[0].partitions[0];
    kafka_fetch_snapshot_response_topic_snapshot *t = breq_calloc(r, 1, sizeof *t);
    kafka_fetch_snapshot_response_partition_snapshot *o = breq_calloc(r, 1, sizeof *o);
    if (!t || !o)
        return BREQ_CLOSE;
    kafka_fetch_snapshot_response_topic_snapshot_init(t);
    kafka_fetch_snapshot_response_partition_snapshot_init(o);
    resp->topics = t;
    resp->topics_count = 1;
    resp->node_endpoints_count = 0;
    t->name = kstr_c(RAFT_METADATA_TOPIC);
    t->partitions = o;
    t->partitions_count = 1;
    o->snapshot_id.end_offset = p->snapshot_id.end_offset;
    o->snapshot_id.epoch = p->snapshot_id.epoch;
    o->position = p->position;
    o->unaligned_records = (kbytes){NULL, 0};
    pthread_mutex_lock(q->cfg.mu);
    raft_state st;
    m_state(q, &st);
    pthread_mutex_unlock(q->cfg.mu);
    o->current_leader.leader_id = st.role == RAFT_LEADER || st.role == RAFT_FOLLOWER ? st.leader_id : -1;
    o->current_leader.leader_epoch = st.epoch;
    if (q->r == NULL || st.role != RAFT_LEADER) {
        o->error_code = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
        return BREQ_DONE;
    }
    if (p->current_leader_epoch != st.epoch) {
        o->error_code = p->current_leader_epoch < st.epoch ? KAFKA_ERR_FENCED_LEADER_EPOCH
                                                           : KAFKA_ERR_UNKNOWN_LEADER_EPOCH;
        return BREQ_DONE;
    }
    char path[4300];
    mdlog_snapshot_file(q->cfg.log, p->snapshot_id.end_offset, p->snapshot_id.epoch, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0)
            close(fd);
        o->error_code = KAFKA_ERR_SNAPSHOT_NOT_FOUND;
        return BREQ_DONE;
    }
    o->size = sb.st_size;
    if (p->position < 0 || p->position > sb.st_size) {
        close(fd);
        o->error_code = KAFKA_ERR_POSITION_OUT_OF_RANGE;
        return BREQ_DONE;
    }
    int64_t n = sb.st_size - p->position;
    int64_t cap = req->max_bytes > 0 && req->max_bytes < BQUORUM_SNAPSHOT_CHUNK ? req->max_bytes
                                                                                : BQUORUM_SNAPSHOT_CHUNK;
    if (n > cap)
        n = cap;
    uint8_t *buf = n > 0 ? breq_alloc(r, (size_t)n) : NULL;
    if (n > 0 && (buf == NULL || pread(fd, buf, (size_t)n, p->position) != n)) {
        close(fd);
        o->error_code = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        return BREQ_DONE;
    }
    close(fd);
    o->unaligned_records = (kbytes){buf, (int32_t)n};
    return BREQ_DONE;
}

breq_status bquorum_handle(bquorum *q, breq *r) {
    if (r->hdr.api_key == KAFKA_API_FETCH_SNAPSHOT)
        return serve_snapshot(q, r);
    if (r->hdr.api_key == KAFKA_API_DESCRIBE_QUORUM)
        return describe_quorum(q, r);
    raft_msg m;
    int32_t from = -1;
    int rc = raft_codec_parse_request(r->hdr.api_key, r->req, q->cfg.cluster_id, &m, &from);
    if (rc == RAFT_CODEC_ECLUSTER) {
        static log_ratelimit rl = LOG_RATELIMIT_DEFAULT;
        LOG_WARN_LIMITED(&rl, "quorum", "%s from %s names another cluster; answered INCONSISTENT_CLUSTER_ID",
                         r->api->name, r->net->peer);
        top_error(r, KAFKA_ERR_INCONSISTENT_CLUSTER_ID);
        return BREQ_DONE;
    }
    if (rc != RAFT_CODEC_OK) {
        top_error(r, KAFKA_ERR_INVALID_REQUEST);
        return BREQ_DONE;
    }
    pthread_mutex_lock(q->cfg.mu);
    bool quiesced = q->quiesced;
    pthread_mutex_unlock(q->cfg.mu);
    if (quiesced) {
        top_error(r, KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
        return BREQ_DONE;
    }
    if (q->obs != NULL) {
        /* Nobody asks an observer anything: it has no vote and no log to serve. */
        top_error(r, KAFKA_ERR_NOT_LEADER_OR_FOLLOWER);
        return BREQ_DONE;
    }
    pthread_mutex_lock(q->cfg.mu);
    if (q->n_pend == BQUORUM_PENDING_MAX || q->fatal) {
        pthread_mutex_unlock(q->cfg.mu);
        top_error(r, KAFKA_ERR_REQUEST_TIMED_OUT);
        return BREQ_DONE;
    }
    int64_t now = now_ms(q);
    m.correlation_id = ++q->next_in_corr;
    int wait = r->hdr.api_key == KAFKA_API_FETCH ? m.u.fetch_req.max_wait_ms : 0;
    if (wait < 0 || wait > 60000)
        wait = 60000;
    q->pend[q->n_pend++] = (pending){m.correlation_id, r, now + wait + q->cfg.request_timeout_ms};
    raft_receive(q->r, from, &m, now);
    pthread_mutex_unlock(q->cfg.mu);
    bquorum_kick(q);
    return BREQ_ASYNC;
}

/* ---- proposals (mu held) -------------------------------------------------------------------- */

int16_t bquorum_propose(bquorum *q, const mdrec *recs, int n, int64_t now_wall_ms, int64_t *last) {
    raft_state st;
    m_state(q, &st);
    if (q->r == NULL || st.role != RAFT_LEADER || q->fatal)
        return KAFKA_ERR_NOT_CONTROLLER;
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += mdrec_size(&recs[i]) + 32;
    if (n <= 0 || bytes > MDLOG_BATCH_MAX)
        return KAFKA_ERR_POLICY_VIOLATION;
    arena a;
    arena_init(&a, bytes * 3 + (1 << 20));
    batch_build_record *br = arena_calloc(&a, (size_t)n, sizeof *br);
    int16_t err = br ? 0 : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    for (int i = 0; err == 0 && i < n; i++) {
        uint8_t *val;
        size_t len;
        if (mdrec_encode_alloc(&recs[i], &a, &val, &len) != MDREC_OK)
            err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        else
            br[i] = (batch_build_record){{NULL, -1}, {val, (int32_t)len}, now_wall_ms, 0, NULL, 0};
    }
    uint8_t *buf = NULL;
    size_t blen = 0;
    if (err == 0) {
        batch_build_opts o = batch_build_defaults();
        o.base_offset = st.log_end;
        o.leader_epoch = st.epoch;
        if (batch_build(&o, br, n, &a, &buf, &blen) != BATCH_OK)
            err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    int64_t base = -1;
    if (err == 0)
        err = raft_propose(q->r, (kbytes){buf, (int32_t)blen}, n, now_ms(q), &base);
    arena_reset(&a);
    if (err != 0)
        return err == KAFKA_ERR_NOT_LEADER_OR_FOLLOWER ? KAFKA_ERR_NOT_CONTROLLER : err;
    if (q->fatal)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    *last = base + n - 1;
    return 0;
}

void bquorum_state(bquorum *q, raft_state *out) { m_state(q, out); }

const bquorum_voter *bquorum_voter_of(const bquorum *q, int32_t id) {
    for (int i = 0; i < q->cfg.n_voters; i++)
        if (q->cfg.voters[i].id == id)
            return &q->cfg.voters[i];
    return NULL;
}
