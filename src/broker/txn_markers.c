/*
 * txn_markers.c - the sender of transaction markers to other brokers.
 * See txn_markers.h.
 */
#include "broker/txn_markers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/rpc.h"
#include "core/clock.h"
#include "core/log.h"
#include "proto/gen/kafka_msgs.h"

/* How long a request may take: the leader waits up to
 * TXN_MARKERS_ISR_WAIT_MS for its ISR (api_txn.c), plus the transport. */
#define SEND_TIMEOUT_MS 15000
#define MAX_PEERS       64

typedef enum mstate { M_FREE = 0, M_QUEUED, M_INFLIGHT, M_DONE, M_FAILED } mstate;

typedef struct mentry {
    mstate state;
    int16_t err; /* M_FAILED: why */
    int32_t leader;
    int64_t pid;
    int16_t epoch;
    bool commit;
    int32_t coordinator_epoch;
    char topic[256];
    int32_t topic_len;
    int32_t partition;
    char *txn_id;
    int32_t txn_len;
    int64_t touched; /* monotonic ms: last asked about or answered */
} mentry;

typedef struct peer {
    int32_t id;
    net_client conn;
} peer;

struct txn_markers {
    broker *b;
    txn_markers_done_fn done;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    bool started;
    atomic_bool stop;
    mentry *e; /* TXN_MARKERS_MAX */
    int32_t n_used, n_pending;
    peer peers[MAX_PEERS];
    int32_t n_peers;
    int32_t corr;
    int32_t idx[TXN_MARKERS_PER_REQUEST]; /* the entries of the request being sent */
    uint64_t delivered, failed;           /* under mu */
};

static log_ratelimit fail_rl = LOG_RATELIMIT_DEFAULT;

/* The coordinator epoch is part of the identity: a coordinator that lost
 * and regained its partition must not take a marker its earlier term
 * delivered (for an older transaction of the same producer epoch) for one
 * of the new term's. */
static bool same(const mentry *m, kstr topic, int32_t partition, int64_t pid, int16_t epoch, bool commit,
                 int32_t coordinator_epoch) {
    return m->state != M_FREE && m->pid == pid && m->epoch == epoch && m->commit == commit &&
           m->coordinator_epoch == coordinator_epoch && m->partition == partition &&
           m->topic_len == topic.len && memcmp(m->topic, topic.ptr, (size_t)topic.len) == 0;
}

static void entry_free(txn_markers *mk, mentry *m) {
    if (m->state == M_QUEUED || m->state == M_INFLIGHT)
        mk->n_pending--;
    free(m->txn_id);
    memset(m, 0, sizeof *m);
    mk->n_used--;
}

int16_t txn_markers_deliver(txn_markers *mk, kstr txn_id, int32_t leader, kstr topic, int32_t partition,
                            int64_t pid, int16_t epoch, bool commit, int32_t coordinator_epoch) {
    if (topic.len <= 0 || topic.len >= (int32_t)sizeof mk->e[0].topic)
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&mk->mu);
    mentry *m = NULL, *free_slot = NULL;
    for (int32_t i = 0; i < TXN_MARKERS_MAX && (m == NULL); i++) {
        if (mk->e[i].state == M_FREE) {
            if (free_slot == NULL)
                free_slot = &mk->e[i];
        } else if (same(&mk->e[i], topic, partition, pid, epoch, commit, coordinator_epoch)) {
            m = &mk->e[i];
        }
    }
    int16_t err = KAFKA_ERR_CONCURRENT_TRANSACTIONS;
    if (m != NULL) {
        m->touched = now;
        switch (m->state) {
        case M_DONE:
            err = 0; /* kept until txn_markers_forget: the others may still be on their way */
            break;
        case M_FAILED:
            err = m->err ? m->err : KAFKA_ERR_NETWORK_EXCEPTION;
            m->state = M_QUEUED;
            m->leader = leader;
            mk->n_pending++;
            pthread_cond_signal(&mk->cv);
            break;
        case M_QUEUED:
            m->leader = leader; /* the leader may have moved since */
            break;
        default:
            break;
        }
    } else if (free_slot == NULL || (free_slot->txn_id = malloc((size_t)txn_id.len + 1)) == NULL) {
        err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        m = free_slot;
        if (txn_id.len > 0)
            memcpy(m->txn_id, txn_id.ptr, (size_t)txn_id.len);
        m->txn_len = txn_id.len;
        m->state = M_QUEUED;
        m->leader = leader;
        m->pid = pid;
        m->epoch = epoch;
        m->commit = commit;
        m->coordinator_epoch = coordinator_epoch;
        memcpy(m->topic, topic.ptr, (size_t)topic.len);
        m->topic_len = topic.len;
        m->partition = partition;
        m->touched = now;
        mk->n_used++;
        mk->n_pending++;
        pthread_cond_signal(&mk->cv);
    }
    pthread_mutex_unlock(&mk->mu);
    return err;
}

void txn_markers_forget(txn_markers *mk, int64_t pid, int16_t epoch, bool commit) {
    pthread_mutex_lock(&mk->mu);
    for (int32_t i = 0; i < TXN_MARKERS_MAX && mk->n_used > 0; i++) {
        mentry *m = &mk->e[i];
        if (m->state != M_FREE && m->pid == pid && m->epoch == epoch && m->commit == commit)
            entry_free(mk, m);
    }
    pthread_mutex_unlock(&mk->mu);
}

int32_t txn_markers_pending(txn_markers *mk) {
    pthread_mutex_lock(&mk->mu);
    int32_t n = mk->n_pending;
    pthread_mutex_unlock(&mk->mu);
    return n;
}

void txn_markers_stats(txn_markers *mk, int32_t *pending, uint64_t *delivered, uint64_t *failed) {
    pthread_mutex_lock(&mk->mu);
    *pending = mk->n_pending;
    *delivered = mk->delivered;
    *failed = mk->failed;
    pthread_mutex_unlock(&mk->mu);
}

/* ---- the sender ------------------------------------------------------------ */

static net_client *peer_conn(txn_markers *mk, int32_t id, const char *host, uint16_t port) {
    peer *p = NULL;
    for (int32_t i = 0; i < mk->n_peers && p == NULL; i++)
        if (mk->peers[i].id == id)
            p = &mk->peers[i];
    if (p == NULL) {
        if (mk->n_peers == MAX_PEERS) { /* reuse the oldest slot */
            net_client_free(&mk->peers[0].conn);
            memmove(&mk->peers[0], &mk->peers[1], (MAX_PEERS - 1) * sizeof mk->peers[0]);
            mk->n_peers--;
        }
        p = &mk->peers[mk->n_peers++];
        p->id = id;
        net_client_init(&p->conn, host, port);
        p->conn.cancel = &mk->stop;
    } else if (strcmp(p->conn.host, host) != 0 || p->conn.port != port) {
        net_client_free(&p->conn);
        net_client_init(&p->conn, host, port);
        p->conn.cancel = &mk->stop;
    }
    return &p->conn;
}

/* Forgets answered markers nobody came back for (their coordinator moved
 * or went away). mk->mu held. */
static void forget_old(txn_markers *mk, int64_t now) {
    for (int32_t i = 0; i < TXN_MARKERS_MAX && mk->n_used > 0; i++) {
        mentry *m = &mk->e[i];
        if ((m->state == M_DONE || m->state == M_FAILED) && now - m->touched > TXN_MARKERS_FORGET_MS)
            entry_free(mk, m);
    }
}

/* Sends the queued markers of one leader (mk->mu held on entry and exit,
 * released while sending). false when nothing was queued. */
static bool send_one_leader(txn_markers *mk) {
    int32_t *idx = mk->idx;
    int32_t n = 0, leader = -1;
    for (int32_t i = 0; i < TXN_MARKERS_MAX && n < TXN_MARKERS_PER_REQUEST; i++) {
        mentry *m = &mk->e[i];
        if (m->state != M_QUEUED || (leader >= 0 && m->leader != leader))
            continue;
        leader = m->leader;
        m->state = M_INFLIGHT;
        idx[n++] = i;
    }
    if (n == 0)
        return false;
    /* The request, built from copies: entries may not be touched unlocked. */
    arena a;
    arena_init(&a, 1u << 20);
    kafka_write_txn_markers_request req;
    kafka_write_txn_markers_request_init(&req);
    req.markers = arena_alloc(&a, (size_t)n * sizeof *req.markers);
    kafka_write_txn_markers_request_writable_txn_marker_topic *tops =
        arena_alloc(&a, (size_t)n * sizeof *tops);
    int32_t *parts = arena_alloc(&a, (size_t)n * sizeof *parts);
    char *names = arena_alloc(&a, (size_t)n * 256);
    int rc = -ENOMEM;
    if (req.markers && tops && parts && names) {
        for (int32_t k = 0; k < n; k++) {
            const mentry *m = &mk->e[idx[k]];
            kafka_write_txn_markers_request_writable_txn_marker *o = &req.markers[k];
            kafka_write_txn_markers_request_writable_txn_marker_init(o);
            o->producer_id = m->pid;
            o->producer_epoch = m->epoch;
            o->transaction_result = m->commit;
            o->coordinator_epoch = m->coordinator_epoch;
            kafka_write_txn_markers_request_writable_txn_marker_topic_init(&tops[k]);
            memcpy(names + (size_t)k * 256, m->topic, (size_t)m->topic_len);
            tops[k].name = (kstr){names + (size_t)k * 256, m->topic_len};
            parts[k] = m->partition;
            tops[k].partition_indexes = &parts[k];
            tops[k].partition_indexes_count = 1;
            o->topics = &tops[k];
            o->topics_count = 1;
        }
        req.markers_count = n;
        rc = -EHOSTUNREACH;
    }
    int32_t corr = ++mk->corr;
    pthread_mutex_unlock(&mk->mu);

    char host[256];
    uint16_t port = 0;
    int64_t self_epoch;
    void *resp = NULL;
    if (rc == -EHOSTUNREACH &&
        bmeta_broker_address(mk->b->meta, leader, host, sizeof host, &port, &self_epoch)) {
        net_client *c = peer_conn(mk, leader, host, port);
        rc = brpc_call(c, KAFKA_API_WRITE_TXN_MARKERS, 1, corr, "sluice-txn-markers", &req, &a, &resp,
                       SEND_TIMEOUT_MS);
        if (rc != 0)
            net_client_close(c);
    }
    const kafka_write_txn_markers_response *r = resp;
    if (rc == 0 && r->markers_count != n)
        rc = -EPROTO;
    if (rc != 0)
        LOG_WARN_LIMITED(&fail_rl, "txn", "sending %d transaction marker(s) to broker %d failed: %s; retried",
                         n, leader, rc == -EHOSTUNREACH ? "it is not registered (or fenced)" : strerror(-rc));

    pthread_mutex_lock(&mk->mu);
    int64_t now = clock_mono_ms();
    kstr *ids = arena_alloc(&a, (size_t)n * sizeof *ids);
    int32_t n_ids = 0;
    for (int32_t k = 0; k < n; k++) {
        mentry *m = &mk->e[idx[k]];
        if (m->state != M_INFLIGHT)
            continue;
        int16_t err = KAFKA_ERR_NETWORK_EXCEPTION;
        if (rc == 0) {
            const kafka_write_txn_markers_response_writable_txn_marker_result *o = &r->markers[k];
            err = o->topics_count == 1 && o->topics[0].partitions_count == 1
                      ? o->topics[0].partitions[0].error_code
                      : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        }
        /* A deleted partition has nothing to mark. */
        if (err == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION)
            err = 0;
        mk->n_pending--;
        m->touched = now;
        if (err == 0) {
            mk->delivered++;
            m->state = M_DONE;
            bool seen = false;
            for (int32_t j = 0; j < n_ids && !seen; j++)
                seen = ids[j].len == m->txn_len && memcmp(ids[j].ptr, m->txn_id, (size_t)m->txn_len) == 0;
            char *copy = ids && !seen ? arena_alloc(&a, (size_t)m->txn_len + 1) : NULL;
            if (copy != NULL) {
                memcpy(copy, m->txn_id, (size_t)m->txn_len);
                ids[n_ids++] = (kstr){copy, m->txn_len};
            }
        } else {
            mk->failed++;
            m->state = M_FAILED;
            m->err = err;
            if (rc == 0)
                LOG_WARN_LIMITED(&fail_rl, "txn",
                                 "broker %d refused the %s marker of producer %lld for %.*s-%d: %s; retried",
                                 leader, m->commit ? "COMMIT" : "ABORT", (long long)m->pid, m->topic_len,
                                 m->topic, m->partition, kafka_error_name(err));
        }
    }
    pthread_mutex_unlock(&mk->mu);
    for (int32_t j = 0; j < n_ids && !atomic_load(&mk->stop); j++)
        mk->done(mk->ctx, ids[j]);
    arena_reset(&a);
    pthread_mutex_lock(&mk->mu);
    return true;
}

static void *sender_main(void *arg) {
    txn_markers *mk = arg;
    pthread_mutex_lock(&mk->mu);
    while (!atomic_load(&mk->stop)) {
        if (mk->n_pending > 0 && send_one_leader(mk))
            continue;
        forget_old(mk, clock_mono_ms());
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&mk->cv, &mk->mu, &ts);
    }
    pthread_mutex_unlock(&mk->mu);
    return NULL;
}

txn_markers *txn_markers_start(broker *b, txn_markers_done_fn done, void *ctx) {
    txn_markers *mk = calloc(1, sizeof *mk);
    if (mk == NULL || (mk->e = calloc(TXN_MARKERS_MAX, sizeof *mk->e)) == NULL) {
        free(mk);
        return NULL;
    }
    mk->b = b;
    mk->done = done;
    mk->ctx = ctx;
    pthread_mutex_init(&mk->mu, NULL);
    pthread_cond_init(&mk->cv, NULL);
    atomic_init(&mk->stop, false);
    if (pthread_create(&mk->th, NULL, sender_main, mk) != 0) {
        txn_markers_destroy(mk);
        return NULL;
    }
    mk->started = true;
    return mk;
}

void txn_markers_stop(txn_markers *mk) {
    if (mk == NULL || !mk->started)
        return;
    pthread_mutex_lock(&mk->mu);
    atomic_store(&mk->stop, true);
    pthread_cond_signal(&mk->cv);
    pthread_mutex_unlock(&mk->mu);
    pthread_join(mk->th, NULL);
    mk->started = false;
}

void txn_markers_destroy(txn_markers *mk) {
    if (mk == NULL)
        return;
    txn_markers_stop(mk);
    for (int32_t i = 0; i < TXN_MARKERS_MAX; i++)
        free(mk->e[i].txn_id);
    for (int32_t i = 0; i < mk->n_peers; i++)
        net_client_free(&mk->peers[i].conn);
    free(mk->e);
    pthread_cond_destroy(&mk->cv);
    pthread_mutex_destroy(&mk->mu);
    free(mk);
}
