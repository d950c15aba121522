/*
 * replication.c - follower fetchers and ISR proposals. See replication.h.
 */
#include "broker/replication.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/errors.h"
#include "broker/meta.h"
#include "broker/rpc.h"
#include "core/clock.h"
#include "core/log.h"
#include "proto/batch.h"
#include "proto/gen/kafka_msgs.h"

#define MANAGER_PERIOD_MS 200
#define LAG_SCAN_MS       1000

typedef struct fetcher {
    struct brepl *owner;
    int32_t leader;
    pthread_t th;
    bool started;
    net_client conn;
    int32_t corr;
    int64_t last_error_log;
} fetcher;

typedef struct join_req {
    kuuid topic_id;
    int32_t partition;
    int32_t follower;
} join_req;

typedef struct brepl {
    broker *b;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    fetcher *fetchers[BREPL_FETCHERS_MAX];
    int n_fetchers;
    pthread_t manager;
    bool manager_started;
    join_req joins[BREPL_JOIN_QUEUE_MAX];
    int n_joins;
    net_client ctl; /* to the active controller */
    int32_t ctl_id;
    int32_t corr;
} brepl;

static log_ratelimit isr_rl = LOG_RATELIMIT_DEFAULT;
static log_ratelimit fetch_rl = LOG_RATELIMIT_DEFAULT;

static int64_t mono_ms(void) { return clock_mono_ns() / 1000000; }

/* Waits up to ms on the manager's condition (or until stopping). */
static void nap(brepl *rp, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rp->mu);
    if (!atomic_load(&rp->stop))
        pthread_cond_timedwait(&rp->cv, &rp->mu, &ts);
    pthread_mutex_unlock(&rp->mu);
}

static int64_t backoff_ms(const broker_config *cfg) {
    return cfg->replica_fetch_backoff_ms > 0 ? cfg->replica_fetch_backoff_ms : 100;
}

/* ---- the follower's side ---------------------------------------------------------------- */

typedef struct follow_set {
    int32_t leader;
    rpart **parts;
    int32_t n, cap;
    int32_t skipped; /* partitions beyond the request's limit */
    int64_t now;     /* monotonic ms: partitions backing off until later are left out */
} follow_set;

static bool collect(void *ctx, rpart *p) {
    follow_set *fs = ctx;
    rpart_lock(p);
    const replica_state *st = replica_get_state(p->r);
    bool mine = st->role == REPLICA_FOLLOWER && st->leader_id == fs->leader && !atomic_load(&p->removed) &&
                p->fetch_after_ms <= fs->now;
    rpart_unlock(p);
    if (!mine)
        return true;
    if (fs->n == fs->cap) {
        fs->skipped++;
        return true;
    }
    atomic_fetch_add(&p->refs, 1);
    fs->parts[fs->n++] = p;
    return true;
}

static void take_partition(fetcher *f, rpart *p, const kafka_fetch_response_partition_data *pd) {
    broker *b = f->owner->b;
    int64_t now = clock_wall_ms();
    rpart_lock(p);
    replica *r = p->r;
    const replica_state *st = replica_get_state(r);
    if (st->role != REPLICA_FOLLOWER || st->leader_id != f->leader) {
        rpart_unlock(p);
        return;
    }
    int16_t err = pd->error_code;
    if (err == KAFKA_ERR_NONE && pd->diverging_epoch.end_offset >= 0) {
        int64_t at = replica_agreed_offset(r, pd->diverging_epoch.epoch, pd->diverging_epoch.end_offset);
        if (at < st->leo)
            LOG_INFO("replication",
                     "%s-%d: the log diverges from leader %d's after offset %lld (epoch %d): truncating from "
                     "%lld",
                     p->topic, p->index, f->leader, (long long)at, pd->diverging_epoch.epoch,
                     (long long)st->leo);
        /* Also at the log end: the epoch cache drops the epochs the leader
         * does not have (one this broker led without writing), or the next
         * fetch would name it again. */
        int16_t e = replica_truncate(r, at);
        if (e != 0)
            LOG_WARN("replication", "%s-%d: truncation to %lld failed: %s", p->topic, p->index, (long long)at,
                     kafka_error_name(e));
        rpart_unlock(p);
        return;
    }
    if (err == KAFKA_ERR_OFFSET_OUT_OF_RANGE) {
        if (pd->log_start_offset > st->leo) {
            LOG_INFO("replication",
                     "%s-%d: leader %d's log starts at %lld, past this log's end %lld: starting again there",
                     p->topic, p->index, f->leader, (long long)pd->log_start_offset, (long long)st->leo);
            plog *l = rpart_log(p);
            if (l && plog_truncate_fully(l, pd->log_start_offset) == 0)
                replica_truncate(r, pd->log_start_offset);
        } else if (pd->high_watermark >= 0 && pd->high_watermark < st->leo) {
            replica_truncate(r, pd->high_watermark);
        }
        rpart_unlock(p);
        return;
    }
    if (err != KAFKA_ERR_NONE) {
        p->fetch_after_ms = mono_ms() + backoff_ms(b->cfg);
        rpart_unlock(p);
        LOG_INFO_LIMITED(&fetch_rl, "replication", "%s-%d: leader %d answered %s", p->topic, p->index,
                         f->leader, kafka_error_name(err));
        return;
    }
    if (pd->records.len > 0) {
        /* Whole batches only: the rest comes next round. */
        batch_cursor c;
        batch_cursor_init(&c, pd->records.ptr, (size_t)pd->records.len);
        const uint8_t *bp;
        size_t bsize;
        batch_header h;
        while (batch_cursor_next(&c, &bp, &bsize, &h) == BATCH_OK)
            ;
        size_t whole = batch_cursor_consumed(&c);
        if (whole > 0) {
            replica_append_result ar;
            int16_t e = replica_append_as_follower(r, (uint8_t *)pd->records.ptr, whole, now, &ar);
            if (e != 0)
                p->fetch_after_ms = mono_ms() + backoff_ms(b->cfg);
            if (e != 0)
                LOG_WARN_LIMITED(&fetch_rl, "replication",
                                 "%s-%d: appending %zu bytes from leader %d failed: %s%s%s", p->topic,
                                 p->index, whole, f->leader, kafka_error_name(e),
                                 ar.info.error_msg[0] ? ": " : "", ar.info.error_msg);
        }
    }
    replica_follower_hw(r, pd->high_watermark);
    int16_t le = replica_follower_log_start(r, pd->log_start_offset);
    if (le != 0)
        LOG_WARN_LIMITED(&fetch_rl, "replication",
                         "%s-%d: moving the log start to leader %d's %lld failed: %s", p->topic, p->index,
                         f->leader, (long long)pd->log_start_offset, kafka_error_name(le));
    rpart_unlock(p);
    (void)b;
}

/* One round: a Fetch to the leader for every partition followed from it.
 * Returns false when there was nothing to fetch or the leader could not be
 * reached (the caller waits). */
static bool fetch_round(fetcher *f) {
    brepl *rp = f->owner;
    broker *b = rp->b;
    const broker_config *cfg = b->cfg;
    static __thread rpart *buf[BREPL_FETCH_PARTITIONS_MAX];
    follow_set fs = {f->leader, buf, 0, BREPL_FETCH_PARTITIONS_MAX, 0, mono_ms()};
    parts_each(bmeta_parts(b->meta), collect, &fs);
    if (fs.n == 0)
        return false;
    char host[256];
    uint16_t port = 0;
    int64_t self_epoch = -1;
    bool ok = bmeta_broker_address(b->meta, f->leader, host, sizeof host, &port, &self_epoch);
    if (ok && (strcmp(f->conn.host, host) != 0 || f->conn.port != port)) {
        net_client_free(&f->conn);
        net_client_init(&f->conn, host, port);
        f->conn.cancel = &rp->stop;
    }
    arena a;
    arena_init(&a, 64u << 20);
    kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    /* v17: the replica's identity is in ReplicaState (replica_id is v0-14). */
    req.replica_state.replica_id = cfg->node_id;
    req.replica_state.replica_epoch = self_epoch;
    req.max_wait_ms = cfg->replica_fetch_wait_max_ms;
    req.min_bytes = cfg->replica_fetch_min_bytes;
    req.max_bytes = cfg->replica_fetch_response_max_bytes;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    kafka_fetch_request_fetch_topic *topics = arena_alloc(&a, (size_t)fs.n * sizeof *topics);
    kafka_fetch_request_fetch_partition *pp = arena_alloc(&a, (size_t)fs.n * sizeof *pp);
    ok = ok && topics != NULL && pp != NULL;
    int32_t nt = 0;
    for (int32_t i = 0; ok && i < fs.n; i++) {
        rpart *p = fs.parts[i];
        kafka_fetch_request_fetch_partition *fp = &pp[i];
        kafka_fetch_request_fetch_partition_init(fp);
        fp->partition = p->index;
        rpart_lock(p);
        const replica_state *st = replica_get_state(p->r);
        const replica_epoch_entry *ep;
        int ne = replica_epochs(p->r, &ep);
        replica_offsets o;
        replica_get_offsets(p->r, &o);
        fp->current_leader_epoch = st->leader_epoch;
        fp->fetch_offset = o.leo;
        fp->last_fetched_epoch = ne > 0 ? ep[ne - 1].epoch : -1;
        fp->log_start_offset = o.log_start;
        rpart_unlock(p);
        fp->partition_max_bytes = cfg->replica_fetch_max_bytes;
        /* Partitions of one topic are next to each other in the table
         * order only by chance: group by id as they come. */
        if (nt > 0 && memcmp(topics[nt - 1].topic_id.b, p->topic_id.b, 16) == 0 &&
            topics[nt - 1].partitions + topics[nt - 1].partitions_count == fp) {
            topics[nt - 1].partitions_count++;
        } else {
            kafka_fetch_request_fetch_topic_init(&topics[nt]);
            topics[nt].topic_id = p->topic_id; /* by id (v13+); names are v0-12 */
            topics[nt].partitions = fp;
            topics[nt].partitions_count = 1;
            nt++;
        }
    }
    req.topics = topics;
    req.topics_count = nt;
    req.forgotten_topics_data_count = 0;
    req.rack_id = kstr_c("");
    void *resp = NULL;
    int rc = -EINVAL;
    if (ok) {
        char client_id[64];
        snprintf(client_id, sizeof client_id, "sluice-replica-%d", cfg->node_id);
        rc = brpc_call(&f->conn, KAFKA_API_FETCH, 17, ++f->corr, client_id, &req, &a, &resp,
                       cfg->quorum_request_timeout_ms + cfg->replica_fetch_wait_max_ms);
    }
    bool fetched = false;
    if (ok && rc == 0) {
        const kafka_fetch_response *fr = resp;
        if (fr->error_code != 0) {
            LOG_INFO_LIMITED(&fetch_rl, "replication", "leader %d refused a fetch: %s", f->leader,
                             kafka_error_name(fr->error_code));
        } else {
            int32_t cursor = 0;
            for (int32_t t = 0; t < fr->responses_count; t++) {
                const kafka_fetch_response_fetchable_topic_response *tr = &fr->responses[t];
                for (int32_t k = 0; k < tr->partitions_count; k++) {
                    const kafka_fetch_response_partition_data *pd = &tr->partitions[k];
                    /* In request order, as the leader answers; else a search. */
                    rpart *p = NULL;
                    for (int32_t s = 0; s < fs.n && p == NULL; s++) {
                        rpart *q = fs.parts[(cursor + s) % fs.n];
                        if (q->index == pd->partition_index &&
                            memcmp(q->topic_id.b, tr->topic_id.b, 16) == 0) {
                            p = q;
                            cursor = (cursor + s + 1) % fs.n;
                        }
                    }
                    if (p != NULL)
                        take_partition(f, p, pd);
                }
            }
            fetched = true;
        }
    } else if (ok) {
        int64_t t = mono_ms();
        if (t - f->last_error_log > 30000) {
            LOG_INFO("replication", "fetching from leader %d at %s:%u failed: %s (retried every %d ms)",
                     f->leader, host, port, strerror(-rc), cfg->replica_fetch_backoff_ms);
            f->last_error_log = t;
        }
    }
    arena_reset(&a);
    for (int32_t i = 0; i < fs.n; i++)
        rpart_release(fs.parts[i]);
    return fetched;
}

static void *fetcher_main(void *arg) {
    fetcher *f = arg;
    brepl *rp = f->owner;
    sl_env_bind(&rp->b->env);
    while (!atomic_load(&rp->stop)) {
        if (!fetch_round(f))
            nap(rp, backoff_ms(rp->b->cfg));
    }
    net_client_free(&f->conn);
    return NULL;
}

/* Starts a fetcher for every leader of a partition followed here. */
typedef struct leaders_seen {
    int32_t ids[BREPL_FETCHERS_MAX];
    int n;
} leaders_seen;

static bool note_leader(void *ctx, rpart *p) {
    leaders_seen *ls = ctx;
    rpart_lock(p);
    const replica_state *st = replica_get_state(p->r);
    int32_t l = st->role == REPLICA_FOLLOWER ? st->leader_id : -1;
    rpart_unlock(p);
    if (l < 0)
        return true;
    for (int i = 0; i < ls->n; i++)
        if (ls->ids[i] == l)
            return true;
    if (ls->n < BREPL_FETCHERS_MAX)
        ls->ids[ls->n++] = l;
    return true;
}

static void ensure_fetchers(brepl *rp) {
    leaders_seen ls = {.n = 0};
    parts_each(bmeta_parts(rp->b->meta), note_leader, &ls);
    for (int i = 0; i < ls.n; i++) {
        bool have = false;
        for (int k = 0; k < rp->n_fetchers && !have; k++)
            have = rp->fetchers[k]->leader == ls.ids[i];
        if (have || rp->n_fetchers == BREPL_FETCHERS_MAX)
            continue;
        fetcher *f = calloc(1, sizeof *f);
        if (f == NULL)
            return;
        f->owner = rp;
        f->leader = ls.ids[i];
        net_client_init(&f->conn, "", 0);
        f->conn.cancel = &rp->stop;
        if (pthread_create(&f->th, NULL, fetcher_main, f) != 0) {
            LOG_ERROR("replication", "cannot start a fetcher thread for leader %d", f->leader);
            free(f);
            return;
        }
        f->started = true;
        rp->fetchers[rp->n_fetchers++] = f;
        LOG_INFO("replication", "fetching from leader %d", f->leader);
    }
}

/* ---- the leader's side: ISR proposals ------------------------------------------------------ */

typedef struct proposal {
    rpart *p; /* referenced */
    int32_t isr[REPLICA_ISR_MAX];
    int64_t epochs[REPLICA_ISR_MAX];
    int32_t n;
    int32_t leader_epoch, partition_epoch;
} proposal;

typedef struct proposals {
    proposal *v;
    int32_t n;
    int64_t now;
    int64_t lag_max;
    const md_image *img;
    int32_t self;
} proposals;

/* Builds p's next ISR from its committed one: minus the laggers, plus the
 * joiner (-1: none). Marks it pending. mu held. */
static bool propose_locked(proposals *ps, rpart *p, int32_t joiner) {
    const replica_state *st = replica_get_state(p->r);
    if (st->role != REPLICA_LEADER || ps->n == BREPL_PROPOSALS_MAX)
        return false;
    proposal *q = &ps->v[ps->n];
    q->n = 0;
    if (st->n_pending > 0) {
        /* Undecided (the answer was lost, or the metadata is late): the same
         * proposal again after a while; never a new one on top. */
        if (ps->now - p->isr_pending_ms < BREPL_PENDING_TIMEOUT_MS)
            return false;
        const int32_t *pend;
        q->n = replica_pending_isr(p->r, &pend);
        memcpy(q->isr, pend, (size_t)q->n * sizeof *pend);
    } else {
        int32_t lag[REPLICA_ISR_MAX];
        int32_t nl = replica_lagging(p->r, ps->now, ps->lag_max, lag, REPLICA_ISR_MAX);
        for (int32_t i = 0; i < st->n_isr; i++) {
            bool drop = false;
            for (int32_t k = 0; k < nl; k++)
                drop = drop || lag[k] == st->isr[i];
            if (!drop)
                q->isr[q->n++] = st->isr[i];
        }
        bool add = joiner >= 0 && !replica_in_isr(p->r, joiner) && q->n < REPLICA_ISR_MAX;
        if (add)
            q->isr[q->n++] = joiner;
        if (nl == 0 && !add)
            return false;
        replica_set_pending_isr(p->r, q->isr, q->n);
        if (nl > 0)
            LOG_INFO("replication",
                     "%s-%d: %d follower(s) behind for over %lld ms (first: %d): shrinking the ISR to %d",
                     p->topic, p->index, nl, (long long)ps->lag_max, lag[0], q->n);
        else
            LOG_INFO("replication", "%s-%d: follower %d caught up: adding it to the ISR", p->topic, p->index,
                     joiner);
    }
    for (int32_t i = 0; i < q->n; i++) {
        const md_broker *mb = md_image_broker(ps->img, q->isr[i]);
        q->epochs[i] = mb ? mb->epoch : -1;
    }
    q->leader_epoch = st->leader_epoch;
    q->partition_epoch = st->partition_epoch;
    p->isr_pending_ms = ps->now;
    atomic_fetch_add(&p->refs, 1);
    q->p = p;
    ps->n++;
    return true;
}

static bool scan_lagging(void *ctx, rpart *p) {
    proposals *ps = ctx;
    rpart_lock(p);
    const replica_state *st = replica_get_state(p->r);
    if (st->role == REPLICA_LEADER && st->n_isr > 1)
        propose_locked(ps, p, -1);
    rpart_unlock(p);
    return ps->n < BREPL_PROPOSALS_MAX;
}

/* Drops a proposal: the HW goes back to the committed ISR. */
static void withdraw(proposal *q) {
    rpart_lock(q->p);
    replica_set_pending_isr(q->p->r, NULL, 0);
    rpart_unlock(q->p);
}

/* Whether a proposal's answer proves the controller did not and will not
 * commit it: only then may the HW stop counting it. Anything else (no
 * answer, a stale partition or leader epoch: the metadata is on its way)
 * keeps it pending until the metadata decides or it is sent again. */
static bool refused_for_good(int16_t e) {
    return e == -2 || e == KAFKA_ERR_INELIGIBLE_REPLICA || e == KAFKA_ERR_INVALID_REQUEST ||
           e == KAFKA_ERR_NOT_CONTROLLER || e == KAFKA_ERR_UNKNOWN_TOPIC_ID ||
           e == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
}

static void send_proposals(brepl *rp, proposals *ps) {
    broker *b = rp->b;
    if (ps->n == 0)
        return;
    ctrl_isr_change *ch = calloc((size_t)ps->n, sizeof *ch);
    ctrl_item_result *out = calloc((size_t)ps->n, sizeof *out);
    int64_t self_epoch = -1;
    {
        const md_broker *me = md_image_broker(ps->img, ps->self);
        self_epoch = me ? me->epoch : -1;
    }
    bool sent = false, attempted = false;
    if (ch && out) {
        for (int32_t i = 0; i < ps->n; i++) {
            proposal *q = &ps->v[i];
            ch[i] = (ctrl_isr_change){
                q->p->topic_id, q->p->index, q->leader_epoch, q->partition_epoch, q->isr, q->epochs, q->n, 0};
        }
        int32_t cid;
        char host[256];
        uint16_t port;
        if (bmeta_is_active_controller(b->meta)) {
            bmeta_alter_partition(b->meta, ps->self, self_epoch, ch, ps->n, out);
            sent = attempted = true;
        } else if (bmeta_controller_address(b->meta, &cid, host, sizeof host, &port)) {
            attempted = true;
            if (cid != rp->ctl_id || strcmp(rp->ctl.host, host) != 0 || rp->ctl.port != port) {
                net_client_free(&rp->ctl);
                net_client_init(&rp->ctl, host, port);
                rp->ctl.cancel = &rp->stop;
                rp->ctl_id = cid;
            }
            arena a;
            arena_init(&a, 16u << 20);
            kafka_alter_partition_request req;
            kafka_alter_partition_request_init(&req);
            req.broker_id = ps->self;
            req.broker_epoch = self_epoch;
            kafka_alter_partition_request_topic_data *td = arena_alloc(&a, (size_t)ps->n * sizeof *td);
            kafka_alter_partition_request_partition_data *pd = arena_alloc(&a, (size_t)ps->n * sizeof *pd);
            if (td && pd) {
                /* One topic entry per proposal: simple, and allowed. */
                for (int32_t i = 0; i < ps->n; i++) {
                    proposal *q = &ps->v[i];
                    kafka_alter_partition_request_topic_data_init(&td[i]);
                    td[i].topic_id = q->p->topic_id;
                    kafka_alter_partition_request_partition_data_init(&pd[i]);
                    pd[i].partition_index = q->p->index;
                    pd[i].leader_epoch = q->leader_epoch;
                    pd[i].partition_epoch = q->partition_epoch;
                    pd[i].leader_recovery_state = 0;
                    kafka_alter_partition_request_broker_state *m = arena_alloc(&a, (size_t)q->n * sizeof *m);
                    if (m == NULL)
                        break;
                    for (int32_t k = 0; k < q->n; k++)
                        m[k] = (kafka_alter_partition_request_broker_state){q->isr[k], q->epochs[k]};
                    pd[i].new_isr_with_epochs = m;
                    pd[i].new_isr_with_epochs_count = q->n;
                    pd[i].new_isr_count = 0;
                    td[i].partitions = &pd[i];
                    td[i].partitions_count = 1;
                    req.topics_count = i + 1;
                }
                req.topics = td;
                void *resp = NULL;
                int rc = -ENOMEM;
                if (req.topics_count == ps->n)
                    rc = brpc_call(&rp->ctl, KAFKA_API_ALTER_PARTITION, 3, ++rp->corr, "sluice-isr", &req, &a,
                                   &resp, b->cfg->quorum_request_timeout_ms + 30000);
                else
                    attempted = false; /* out of memory: nothing was sent */
                if (rc == 0) {
                    const kafka_alter_partition_response *ar = resp;
                    sent = true;
                    for (int32_t i = 0; i < ps->n; i++)
                        out[i].error = ar->error_code;
                    for (int32_t t = 0; ar->error_code == 0 && t < ar->topics_count && t < ps->n; t++)
                        if (ar->topics[t].partitions_count == 1)
                            out[t].error = ar->topics[t].partitions[0].error_code;
                } else {
                    LOG_INFO_LIMITED(&isr_rl, "replication",
                                     "AlterPartition to the controller (node %d) failed: %s", cid,
                                     strerror(-rc));
                }
            }
            arena_reset(&a);
        }
    }
    for (int32_t i = 0; i < ps->n; i++) {
        proposal *q = &ps->v[i];
        /* -1: sent, no answer (unknown outcome); -2: never sent. */
        int16_t e = sent && out ? out[i].error : attempted ? -1 : -2;
        if (e != 0)
            LOG_INFO_LIMITED(
                &isr_rl, "replication", "%s-%d: the ISR change was %s: %s%s%s", q->p->topic, q->p->index,
                e < 0 ? "not sent or not answered" : "refused", e < 0 ? "no answer" : kafka_error_name(e),
                out && e > 0 && out[i].message[0] ? ": " : "", out && e > 0 ? out[i].message : "");
        if (refused_for_good(e))
            withdraw(q);
        rpart_release(q->p);
    }
    free(ch);
    free(out);
}

static void *manager_main(void *arg) {
    brepl *rp = arg;
    broker *b = rp->b;
    sl_env_bind(&b->env);
    proposal *v = calloc(BREPL_PROPOSALS_MAX, sizeof *v);
    int64_t last_scan = 0;
    while (!atomic_load(&rp->stop) && v != NULL) {
        ensure_fetchers(rp);
        int64_t now = mono_ms();
        md_image *img = bmeta_image(b->meta);
        proposals ps = {v, 0, now, b->cfg->replica_lag_time_max_ms, img, b->cfg->node_id};
        /* Followers that caught up. */
        join_req joins[256];
        int nj = 0;
        pthread_mutex_lock(&rp->mu);
        while (rp->n_joins > 0 && nj < 256)
            joins[nj++] = rp->joins[--rp->n_joins];
        pthread_mutex_unlock(&rp->mu);
        for (int i = 0; i < nj; i++) {
            rpart *p = parts_get(bmeta_parts(b->meta), joins[i].topic_id, joins[i].partition);
            if (p == NULL)
                continue;
            rpart_lock(p);
            propose_locked(&ps, p, joins[i].follower);
            rpart_unlock(p);
            rpart_release(p);
        }
        if (now - last_scan >= LAG_SCAN_MS) {
            parts_each(bmeta_parts(b->meta), scan_lagging, &ps);
            last_scan = now;
        }
        send_proposals(rp, &ps);
        md_image_unref(img);
        nap(rp, MANAGER_PERIOD_MS);
    }
    free(v);
    net_client_free(&rp->ctl);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

int brepl_start(broker *b) {
    brepl *rp = calloc(1, sizeof *rp);
    if (rp == NULL)
        return -1;
    rp->b = b;
    pthread_mutex_init(&rp->mu, NULL);
    pthread_cond_init(&rp->cv, NULL);
    net_client_init(&rp->ctl, "", 0);
    rp->ctl_id = -1;
    b->repl = rp;
    if (pthread_create(&rp->manager, NULL, manager_main, rp) != 0) {
        LOG_ERROR("replication", "cannot start the replication thread");
        b->repl = NULL;
        pthread_mutex_destroy(&rp->mu);
        pthread_cond_destroy(&rp->cv);
        free(rp);
        return -1;
    }
    rp->manager_started = true;
    return 0;
}

void brepl_stop(broker *b) {
    brepl *rp = b->repl;
    if (rp == NULL)
        return;
    pthread_mutex_lock(&rp->mu);
    atomic_store(&rp->stop, true);
    pthread_cond_broadcast(&rp->cv);
    pthread_mutex_unlock(&rp->mu);
    if (rp->manager_started)
        pthread_join(rp->manager, NULL);
    for (int i = 0; i < rp->n_fetchers; i++) {
        if (rp->fetchers[i]->started)
            pthread_join(rp->fetchers[i]->th, NULL);
        free(rp->fetchers[i]);
    }
    rp->n_fetchers = 0;
    rp->manager_started = false;
}

void brepl_free(broker *b) {
    brepl *rp = b->repl;
    if (rp == NULL)
        return;
    brepl_stop(b);
    b->repl = NULL;
    pthread_mutex_destroy(&rp->mu);
    pthread_cond_destroy(&rp->cv);
    free(rp);
}

void brepl_isr_join(broker *b, rpart *p, int32_t id) {
    brepl *rp = b->repl;
    if (rp == NULL || atomic_load(&rp->stop))
        return;
    pthread_mutex_lock(&rp->mu);
    bool dup = false;
    for (int i = 0; i < rp->n_joins && !dup; i++)
        dup = rp->joins[i].partition == p->index && rp->joins[i].follower == id &&
              memcmp(rp->joins[i].topic_id.b, p->topic_id.b, 16) == 0;
    if (!dup && rp->n_joins < BREPL_JOIN_QUEUE_MAX) {
        rp->joins[rp->n_joins++] = (join_req){p->topic_id, p->index, id};
        pthread_cond_broadcast(&rp->cv);
    }
    pthread_mutex_unlock(&rp->mu);
}
