/*
 * partitions.c - the broker's replicas and their logs. See partitions.h.
 */
#include "broker/partitions.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/errors.h"
#include "broker/producer_files.h"
#include "controller/controller.h"
#include "core/clock.h"
#include "core/log.h"
#include "proto/gen/kafka_msgs.h"

#define EPOCH_FILE    "leader-epoch-checkpoint"
#define EPOCH_TEXT    (64 + REPLICA_EPOCHS_MAX * 32)
#define BUCKETS_START 1024
/* Rebuilding producer state from the log tail at open: at most this long
 * (the tail is at most what was appended since the last segment roll, as
 * a snapshot is written at each roll and at shutdown). */
#define PRODUCER_REBUILD_MAX_MS 10000
#define PRODUCER_REBUILD_CHUNK  (1 << 20)

struct parts {
    parts_config cfg;
    bool registered; /* the image holds this start's registration (apply thread only) */
    pthread_rwlock_t lock;
    rpart **buckets;
    uint32_t mask;
    int64_t n;
};

/* ---- the table ------------------------------------------------------------------- */

static uint32_t key_hash(kuuid id, int32_t index) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ id.b[i]) * 16777619u;
    h = (h ^ (uint32_t)index) * 16777619u;
    return h ^ (h >> 15);
}

static rpart *find_locked(parts *ps, kuuid id, int32_t index) {
    for (rpart *p = ps->buckets[key_hash(id, index) & ps->mask]; p; p = p->next)
        if (p->index == index && memcmp(p->topic_id.b, id.b, 16) == 0)
            return p;
    return NULL;
}

static void grow_locked(parts *ps) {
    uint32_t ncap = (ps->mask + 1) * 2;
    rpart **nb = calloc(ncap, sizeof *nb);
    if (nb == NULL)
        return; /* longer chains; still correct */
    for (uint32_t b = 0; b <= ps->mask; b++)
        for (rpart *p = ps->buckets[b], *next; p; p = next) {
            next = p->next;
            uint32_t j = key_hash(p->topic_id, p->index) & (ncap - 1);
            p->next = nb[j];
            nb[j] = p;
        }
    free(ps->buckets);
    ps->buckets = nb;
    ps->mask = ncap - 1;
}

static void insert_locked(parts *ps, rpart *p) {
    if (ps->n + 1 > (int64_t)(ps->mask + 1) * 2)
        grow_locked(ps);
    uint32_t b = key_hash(p->topic_id, p->index) & ps->mask;
    p->next = ps->buckets[b];
    ps->buckets[b] = p;
    ps->n++;
}

static void unlink_locked(parts *ps, rpart *p) {
    rpart **pp = &ps->buckets[key_hash(p->topic_id, p->index) & ps->mask];
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    assert(*pp == p);
    if (*pp) {
        *pp = p->next;
        ps->n--;
    }
    p->next = NULL;
}

/* ---- config ------------------------------------------------------------------------ */

void parts_plog_config(const topic_config *tc, plog_config *pc) {
    plog_config_default(pc);
    pc->segment_bytes = tc->segment_bytes;
    pc->segment_ms = tc->segment_ms;
    pc->segment_index_bytes = tc->segment_index_bytes;
    pc->index_interval_bytes = tc->index_interval_bytes;
    pc->max_message_bytes = tc->max_message_bytes;
    pc->flush_messages = tc->flush_messages;
    pc->flush_ms = tc->flush_ms;
    /* Retention deletes segments only under the delete policy (a topic with
     * compact alone keeps every key's latest record for ever). */
    bool del = (tc->cleanup_policy & CONFIG_CLEANUP_DELETE) != 0;
    pc->retention_ms = del ? tc->retention_ms : -1;
    pc->retention_bytes = del ? tc->retention_bytes : -1;
    pc->timestamp_type = tc->message_timestamp_type == CONFIG_TIMESTAMP_LOG_APPEND_TIME
                             ? PLOG_TS_LOG_APPEND_TIME
                             : PLOG_TS_CREATE_TIME;
    pc->timestamp_before_max_ms = tc->message_timestamp_before_max_ms;
    pc->timestamp_after_max_ms = tc->message_timestamp_after_max_ms;
}

int parts_topic_config(const broker_config *bc, const md_resource *res, topic_config *out, char *msg,
                       size_t msgn) {
    int n = res ? res->n : 0;
    const char **keys = n ? calloc((size_t)n, sizeof *keys) : NULL;
    const char **values = n ? calloc((size_t)n, sizeof *values) : NULL;
    if (n && (!keys || !values)) {
        free(keys);
        free(values);
        snprintf(msg, msgn, "out of memory");
        return -1;
    }
    /* Keys this version does not know (a later version's, or one since
     * removed) cannot matter to it and must not keep a topic offline. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (config_find_topic(res->items[i].key) == NULL) {
            LOG_WARN("partitions", "topic %s: ignoring stored config %s, which this version does not know",
                     res->name, res->items[i].key);
            continue;
        }
        keys[m] = res->items[i].key;
        values[m++] = res->items[i].value;
    }
    int rc = topic_config_build(out, bc, keys, values, (size_t)m, msg, msgn);
    free(keys);
    free(values);
    if (rc != 0)
        return -1;
    plog_config pc;
    parts_plog_config(out, &pc);
    char why[160];
    if (plog_config_explain(&pc, why, sizeof why) != 0) {
        snprintf(msg, msgn, "the partition logs cannot use this configuration: %s", why);
        return -1;
    }
    return 0;
}

/* ---- the leader-epoch checkpoint --------------------------------------------------------- */

/* Reads dir/leader-epoch-checkpoint (Kafka's text layout: "0", count, then
 * "epoch offset" lines). Returns the entries read (0 when absent or bad). */
static int read_epochs(const sl_vfs *v, const char *dir, replica_epoch_entry *out, int max) {
    char path[4500], text[EPOCH_TEXT];
    snprintf(path, sizeof path, "%s/" EPOCH_FILE, dir);
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return 0;
    ssize_t got = v->pread(v->ctx, fd, text, sizeof text - 1, 0);
    v->close(v->ctx, fd);
    if (got <= 0)
        return 0;
    text[got] = '\0';
    int version = -1, count = -1, n = 0, pos = 0, used;
    if (sscanf(text, "%d\n%d\n%n", &version, &count, &used) != 2 || version != 0 || count < 0 || count > max)
        return 0;
    pos = used;
    for (int i = 0; i < count; i++) {
        int32_t e;
        long long off;
        if (sscanf(text + pos, "%d %lld\n%n", &e, &off, &used) != 2)
            return 0; /* a damaged file is no cache at all (it is rebuilt) */
        out[n++] = (replica_epoch_entry){e, (int64_t)off};
        pos += used;
    }
    return n;
}

static int16_t write_epochs(void *ctx, const replica_epoch_entry *e, int n) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    if (l == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    const sl_vfs *v = storage_vfs(logmgr_storage(p->owner->cfg.lm));
    char path[4500], tmp[4600], *text = malloc(EPOCH_TEXT);
    if (text == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    snprintf(path, sizeof path, "%s/" EPOCH_FILE, plog_dir(l));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int len = snprintf(text, EPOCH_TEXT, "0\n%d\n", n);
    for (int i = 0; i < n && len < EPOCH_TEXT - 32; i++)
        len += snprintf(text + len, (size_t)(EPOCH_TEXT - len), "%d %" PRId64 "\n", e[i].epoch,
                        e[i].start_offset);
    int fd = v->open(v->ctx, tmp, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    int rc = fd < 0 ? fd : sl_vfs_pwrite_full(v, fd, text, (size_t)len, 0);
    if (fd >= 0) {
        if (rc == 0)
            rc = v->fsync(v->ctx, fd);
        v->close(v->ctx, fd);
    }
    if (rc == 0)
        rc = v->rename(v->ctx, tmp, path);
    free(text);
    if (rc != 0) {
        LOG_WARN("partitions", "cannot write %s: %s", path, strerror(-rc));
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    }
    return 0;
}

/* A deleted partition's checkpoint goes before its log, so the log's
 * removal can take the directory with it. */
static void remove_epochs(rpart *p, plog *l) {
    const sl_vfs *v = storage_vfs(logmgr_storage(p->owner->cfg.lm));
    char path[4500];
    snprintf(path, sizeof path, "%s/" EPOCH_FILE, plog_dir(l));
    v->unlink(v->ctx, path);
}

/* ---- the port: the replica machine's view of the log ----------------------------------- */

static int16_t port_append(void *ctx, uint8_t *buf, size_t len, bool as_leader, int32_t epoch, int64_t now,
                           plog_append_info *info) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    if (l == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    int rc =
        as_leader ? plog_append(l, buf, len, epoch, now, info) : plog_append_follower(l, buf, len, now, info);
    return broker_kafka_error(rc);
}

static int16_t port_append_marker(void *ctx, uint8_t *buf, size_t len, int32_t epoch, int64_t now,
                                  plog_append_info *info) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    if (l == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    return broker_kafka_error(plog_append_marker(l, buf, len, epoch, now, info));
}

static int16_t port_truncate(void *ctx, int64_t offset) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    if (l == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    int16_t err = broker_kafka_error(plog_truncate(l, offset));
    if (err == 0) {
        /* Producer snapshots past the cut describe batches that are gone. */
        pfiles_remove_above(storage_vfs(logmgr_storage(p->owner->cfg.lm)), plog_dir(l), offset);
        if (p->snap_offset > offset)
            p->snap_offset = -1;
    }
    return err;
}

static int16_t port_read(void *ctx, int64_t offset, int64_t max_bytes, int64_t max_offset,
                         plog_read_result *res) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    if (l == NULL) {
        memset(res, 0, sizeof *res);
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    }
    return broker_kafka_error(plog_read(l, offset, max_bytes, max_offset, res));
}

static int16_t port_time(void *ctx, int64_t ts, int64_t *offset, int64_t *timestamp) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    return l ? broker_kafka_error(plog_offset_for_time(l, ts, offset, timestamp))
             : KAFKA_ERR_KAFKA_STORAGE_ERROR;
}

static int16_t port_delete(void *ctx, int64_t offset, int64_t *low) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    return l ? broker_kafka_error(plog_delete_records(l, offset, low)) : KAFKA_ERR_KAFKA_STORAGE_ERROR;
}

static void port_offsets(void *ctx, int64_t *start, int64_t *end) {
    rpart *p = ctx;
    plog *l = atomic_load(&p->log);
    *start = l ? plog_start_offset(l) : 0;
    *end = l ? plog_end_offset(l) : 0;
}

static void port_changed(void *ctx, replica *r) {
    (void)r;
    rpart *p = ctx;
    if (p->owner->cfg.changed)
        p->owner->cfg.changed(p->owner->cfg.ctx, p);
}

static replica_port port_of(rpart *p) {
    return (replica_port){p,           port_append,  port_truncate, port_read,    port_time,
                          port_delete, port_offsets, write_epochs,  port_changed, port_append_marker};
}

/* ---- producer state (storage/producer_state.h, producer_files.h) ----------------------------- */

typedef struct learn_ctx {
    replica *r;
    int64_t from, now, batches;
} learn_ctx;

static int learn(void *ctx, const uint8_t *batch, size_t size, const batch_header *h) {
    learn_ctx *c = ctx;
    if (batch_last_offset(h) >= c->from) {
        replica_learn_batch(c->r, h, batch, size, c->now);
        c->batches++;
    }
    return 0;
}

/* At open (mu held): the newest usable snapshot, then the log after it -
 * or, with none, the active segment - replayed into r's producer state,
 * within PRODUCER_REBUILD_MAX_MS. */
static void load_producers(rpart *p, plog *l, replica *r, int64_t now) {
    const sl_vfs *v = storage_vfs(logmgr_storage(p->owner->cfg.lm));
    pstate *s = replica_producers(r);
    pstate_set_limits(s, 0, p->owner->cfg.bc ? p->owner->cfg.bc->producer_id_expiration_ms : 0);
    char what[300];
    snprintf(what, sizeof what, "partition %s-%d", p->topic, p->index);
    int64_t end = plog_end_offset(l), start = plog_start_offset(l);
    int64_t snap = pfiles_load(v, plog_dir(l), what, end, s, now);
    p->snap_offset = snap;
    int64_t from = snap >= 0 ? snap : plog_active_base(l);
    if (from < start)
        from = start;
    learn_ctx lc = {r, from, now, 0};
    int64_t deadline = clock_mono_ns() + (int64_t)PRODUCER_REBUILD_MAX_MS * 1000000;
    while (from < end) {
        int64_t next = from;
        int rc = plog_scan(l, from, PRODUCER_REBUILD_CHUNK, learn, &lc, &next);
        if (rc != STORAGE_OK || next <= from) {
            LOG_WARN("producer-state",
                     "%s: reading the log at offset %" PRId64 " to rebuild producer state: %s", what, from,
                     rc != STORAGE_OK ? storage_strerror(rc) : "no progress");
            break;
        }
        from = next;
        if (from < end && clock_mono_ns() > deadline) {
            LOG_WARN("producer-state",
                     "%s: rebuilding producer state took over %d ms; stopped at offset %" PRId64
                     " of %" PRId64 " (producers of later batches may see UNKNOWN_PRODUCER_ID once)",
                     what, PRODUCER_REBUILD_MAX_MS, from, end);
            break;
        }
    }
    if (pstate_count(s) > 0 || snap >= 0)
        LOG_INFO("producer-state",
                 "%s: %d producer(s) from the snapshot at offset %" PRId64 " (-1: none) and %" PRId64
                 " batch(es) of the log after it",
                 what, pstate_count(s), snap, lc.batches);
}

/* A snapshot of the producer state at the log end (mu held), encoded
 * under the lock; *buf (malloc'd) is written by write_producers without it.
 * False when there is nothing to write. */
static bool take_producers(rpart *p, plog *l, uint8_t **buf, size_t *len, uint8_t **abuf, size_t *alen,
                           int64_t *offset) {
    pstate *s = replica_producers(p->r);
    *offset = plog_end_offset(l);
    *abuf = NULL;
    *alen = 0;
    /* A partition that never had a producer needs no file; one that had
     * gets a new (maybe empty) one, so the start never reads back from an
     * old snapshot. */
    if (*offset == p->snap_offset || (pstate_count(s) == 0 && p->snap_offset < 0))
        return false;
    size_t need = pstate_snapshot_size(s);
    if ((*buf = malloc(need)) == NULL)
        return false;
    *len = pstate_snapshot_encode(s, *buf, need);
    pstate_aborted_trim(s, plog_start_offset(l));
    if (pstate_aborted_count(s) > 0) {
        size_t an = pstate_aborted_size(s);
        if ((*abuf = malloc(an)) == NULL) {
            free(*buf);
            return false;
        }
        *alen = pstate_aborted_encode(s, *abuf, an);
    }
    p->snap_offset = *offset;
    return true;
}

static void write_producers(rpart *p, plog *l, uint8_t *buf, size_t len, uint8_t *abuf, size_t alen,
                            int64_t offset) {
    char what[300];
    snprintf(what, sizeof what, "partition %s-%d", p->topic, p->index);
    pfiles_write(storage_vfs(logmgr_storage(p->owner->cfg.lm)), plog_dir(l), what, offset, buf, len, abuf,
                 alen);
    free(buf);
    free(abuf);
}

/* Clean close: the snapshot at the log end, so the next start reads no log. */
static void snapshot_at_close(rpart *p, plog *l) {
    uint8_t *buf = NULL, *abuf = NULL;
    size_t len = 0, alen = 0;
    int64_t off;
    if (!plog_is_offline(l) && take_producers(p, l, &buf, &len, &abuf, &alen, &off))
        write_producers(p, l, buf, len, abuf, alen, off);
}

/* ---- life of a partition ------------------------------------------------------------------- */

static rpart *rpart_new(parts *ps, const md_topic *t, int32_t index) {
    rpart *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    atomic_init(&p->refs, 1); /* the table's */
    p->owner = ps;
    p->topic_id = t->id;
    memcpy(p->topic, t->name, (size_t)t->name_len + 1);
    p->index = index;
    p->root = -1;
    p->snap_offset = -1;
    p->leader = -1;
    p->leader_epoch = -1;
    p->partition_epoch = -1;
    p->internal = ctrl_internal_topic((kstr){t->name, t->name_len});
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->log, NULL);
    atomic_init(&p->removed, false);
    replica_port port = port_of(p);
    p->r = replica_create(ps->cfg.node_id, &port, NULL, 0, 0);
    if (p->r == NULL) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    topic_config_init(&p->cfg, ps->cfg.bc);
    return p;
}

/* Brings the replica machine to the role the metadata gives (mu held). */
static void apply_role(rpart *p, int64_t now) {
    parts *ps = p->owner;
    if (atomic_load(&p->log) == NULL) {
        replica_go_offline(p->r);
        return;
    }
    const replica_state *st = replica_get_state(p->r);
    if (p->leader == ps->cfg.node_id && p->n_replicas > 1 && !ps->registered) {
        /* Not before this start's registration is committed (see
         * parts_config): until then nobody leads it here. */
        if (st->role != REPLICA_FOLLOWER || st->leader_id != -1 || st->leader_epoch != p->leader_epoch)
            replica_become_follower(p->r, -1, p->leader_epoch, p->partition_epoch, now);
        return;
    }
    if (p->leader == ps->cfg.node_id) {
        if (st->role != REPLICA_LEADER || st->leader_epoch != p->leader_epoch ||
            st->partition_epoch != p->partition_epoch) {
            /* The image's ISR (it holds the leader), else this node alone. */
            int32_t self[1] = {ps->cfg.node_id};
            bool have = false;
            for (int32_t i = 0; i < p->n_isr; i++)
                have = have || p->isr[i] == ps->cfg.node_id;
            replica_become_leader(p->r, p->leader_epoch, p->partition_epoch, have ? p->isr : self,
                                  have ? p->n_isr : 1, now);
        }
    } else if (st->role != REPLICA_FOLLOWER || st->leader_epoch != p->leader_epoch) {
        replica_become_follower(p->r, p->leader, p->leader_epoch, p->partition_epoch, now);
    }
}

/* Opens the partition's log (mu held). 0 or a storage error. */
static int attach(rpart *p, bool sync, int64_t now) {
    parts *ps = p->owner;
    assert(atomic_load(&p->log) == NULL);
    if (p->cfg_error != NULL)
        return STORAGE_KAFKA_STORAGE_ERROR;
    plog_config pc;
    parts_plog_config(&p->cfg, &pc);
    plog *l = NULL;
    int root = -1;
    int rc = logmgr_open_partition(ps->cfg.lm, p->topic, p->index, p->topic_id, &pc, sync, &l, &root);
    if (rc != STORAGE_OK)
        return rc;
    /* A fresh machine over the opened log, with its epoch cache. */
    replica_epoch_entry *epochs = malloc(REPLICA_EPOCHS_MAX * sizeof *epochs);
    int n =
        epochs ? read_epochs(storage_vfs(logmgr_storage(ps->cfg.lm)), plog_dir(l), epochs, REPLICA_EPOCHS_MAX)
               : 0;
    atomic_store(&p->log, l);
    p->root = root;
    replica_port port = port_of(p);
    replica *r = replica_create(ps->cfg.node_id, &port, epochs, n, plog_end_offset(l));
    free(epochs);
    if (r == NULL) {
        atomic_store(&p->log, NULL);
        plog_close(l);
        return STORAGE_KAFKA_STORAGE_ERROR;
    }
    load_producers(p, l, r, now);
    replica_destroy(p->r);
    p->r = r;
    apply_role(p, now);
    return STORAGE_OK;
}

static void backoff(rpart *p, int64_t now) {
    int32_t b = p->backoff_ms ? p->backoff_ms * 2 : PARTS_RETRY_MIN_MS;
    p->backoff_ms = b > PARTS_RETRY_MAX_MS ? PARTS_RETRY_MAX_MS : b;
    p->retry_at_ms = now + p->backoff_ms;
}

/* The last reference: the log is deleted if the partition was removed from
 * the metadata, closed otherwise (shutdown). */
static void rpart_free(rpart *p) {
    plog *l = atomic_load(&p->log);
    if (l != NULL) {
        if (atomic_load(&p->removed)) {
            remove_epochs(p, l);
            pfiles_remove_above(storage_vfs(logmgr_storage(p->owner->cfg.lm)), plog_dir(l), -1);
        } else {
            snapshot_at_close(p, l);
        }
        int rc = atomic_load(&p->removed) ? logmgr_delete_partition(p->owner->cfg.lm, l) : plog_close(l);
        if (rc != 0)
            LOG_WARN("partitions", "%s partition %s-%d: %s",
                     atomic_load(&p->removed) ? "deleting" : "closing", p->topic, p->index,
                     storage_strerror(rc));
        else if (atomic_load(&p->removed))
            LOG_INFO("partitions", "deleted the log of partition %s-%d", p->topic, p->index);
    }
    replica_destroy(p->r);
    free(p->replicas);
    free(p->isr);
    free(p->cfg_error);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

bool rpart_acked(rpart *p, int64_t need, int16_t *err) {
    rpart_lock(p);
    const replica_state *st = replica_get_state(p->r);
    int32_t min = p->cfg.min_insync_replicas;
    bool covered = st->hw >= need;
    bool leader = st->role == REPLICA_LEADER;
    int32_t isr = st->n_isr;
    rpart_unlock(p);
    *err = covered     ? KAFKA_ERR_NONE
           : !leader   ? KAFKA_ERR_NOT_LEADER_OR_FOLLOWER
           : isr < min ? KAFKA_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND
                       : KAFKA_ERR_REQUEST_TIMED_OUT;
    return covered || !leader || atomic_load(&p->removed);
}

void rpart_release(rpart *p) {
    if (p && atomic_fetch_sub(&p->refs, 1) == 1)
        rpart_free(p);
}

plog *rpart_log(rpart *p) { return atomic_load(&p->log); }

bool rpart_online(rpart *p) {
    plog *l = atomic_load(&p->log);
    return l != NULL && !plog_is_offline(l);
}

int64_t rpart_max_message_bytes(rpart *p) {
    rpart_lock(p);
    int64_t n = p->cfg.max_message_bytes;
    rpart_unlock(p);
    return n;
}

int64_t rpart_size(rpart *p, int *root) {
    rpart_lock(p);
    plog *l = atomic_load(&p->log);
    int64_t n = l ? plog_size_bytes(l) : 0;
    *root = p->root;
    rpart_unlock(p);
    return n;
}

/* ---- the table API ------------------------------------------------------------------------ */

parts *parts_create(const parts_config *cfg) {
    parts *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return NULL;
    ps->cfg = *cfg;
    pthread_rwlock_init(&ps->lock, NULL);
    ps->mask = BUCKETS_START - 1;
    ps->buckets = calloc(BUCKETS_START, sizeof *ps->buckets);
    if (ps->buckets == NULL) {
        free(ps);
        return NULL;
    }
    return ps;
}

void parts_close(parts *ps, bool *unclean) {
    if (ps == NULL)
        return;
    int n_roots = logmgr_root_count(ps->cfg.lm);
    bool offline_unknown_root = false;
    for (uint32_t b = 0; b <= ps->mask; b++) {
        for (rpart *p = ps->buckets[b], *next; p; p = next) {
            next = p->next;
            plog *l = atomic_load(&p->log);
            if (l != NULL) {
                snapshot_at_close(p, l);
                int rc = plog_close(l);
                atomic_store(&p->log, NULL);
                if (rc != 0 && p->root >= 0 && unclean) {
                    LOG_WARN("partitions", "partition %s-%d did not close cleanly: %s", p->topic, p->index,
                             storage_strerror(rc));
                    unclean[p->root] = true;
                }
            } else {
                offline_unknown_root = true;
            }
            /* Requests are finished before the table closes: the table holds
             * the last reference. */
            rpart_release(p);
        }
    }
    /* A partition that never opened was never recovered: the roots that
     * needed recovery stay unclean so the next start recovers it. */
    for (int r = 0; offline_unknown_root && unclean && r < n_roots; r++)
        if (!logmgr_root_was_clean(ps->cfg.lm, r))
            unclean[r] = true;
    free(ps->buckets);
    pthread_rwlock_destroy(&ps->lock);
    free(ps);
}

rpart *parts_get(parts *ps, kuuid topic_id, int32_t index) {
    pthread_rwlock_rdlock(&ps->lock);
    rpart *p = find_locked(ps, topic_id, index);
    if (p)
        atomic_fetch_add(&p->refs, 1);
    pthread_rwlock_unlock(&ps->lock);
    return p;
}

int64_t parts_count(parts *ps) {
    pthread_rwlock_rdlock(&ps->lock);
    int64_t n = ps->n;
    pthread_rwlock_unlock(&ps->lock);
    return n;
}

/* A referenced snapshot of the table. */
static rpart **snapshot(parts *ps, int64_t *n) {
    pthread_rwlock_rdlock(&ps->lock);
    rpart **all = ps->n ? malloc((size_t)ps->n * sizeof *all) : NULL;
    *n = 0;
    for (uint32_t b = 0; all && b <= ps->mask; b++)
        for (rpart *p = ps->buckets[b]; p; p = p->next) {
            atomic_fetch_add(&p->refs, 1);
            all[(*n)++] = p;
        }
    pthread_rwlock_unlock(&ps->lock);
    return all;
}

void parts_each(parts *ps, bool (*fn)(void *ctx, rpart *p), void *ctx) {
    int64_t n;
    rpart **all = snapshot(ps, &n);
    bool go = true;
    for (int64_t i = 0; i < n; i++) {
        if (go)
            go = fn(ctx, all[i]);
        rpart_release(all[i]);
    }
    free(all);
}

/* ---- following the image ---------------------------------------------------------------------- */

static bool holds(const md_partition *mp, int32_t node) {
    for (int32_t i = 0; i < mp->replicas.n; i++)
        if (mp->replicas.ids[i] == node)
            return true;
    return false;
}

/* Drops a partition that left the metadata: out of the table at once,
 * waiters told, its log deleted when the last request is done. */
static void drop(parts *ps, rpart *p) {
    pthread_rwlock_wrlock(&ps->lock);
    unlink_locked(ps, p);
    pthread_rwlock_unlock(&ps->lock);
    rpart_lock(p);
    atomic_store(&p->removed, true);
    if (ps->cfg.changed)
        ps->cfg.changed(ps->cfg.ctx, p);
    rpart_unlock(p);
    rpart_release(p);
}

/* Rebuilds p's config from the image's resource when it changed (mu held).
 * Returns true when the partition's log should be (re)tried. */
static bool update_config(parts *ps, rpart *p, const md_resource *res, bool was_unusable_ok) {
    (void)was_unusable_ok;
    if (p->cfg_seen == (const void *)res && p->cfg_seen != NULL)
        return false;
    bool first = p->cfg_seen == NULL && p->root < 0 && atomic_load(&p->log) == NULL && p->cfg_error == NULL;
    p->cfg_seen = res;
    topic_config tc;
    char msg[512];
    if (parts_topic_config(ps->cfg.bc, res, &tc, msg, sizeof msg) != 0) {
        if (p->cfg_error == NULL || strcmp(p->cfg_error, msg) != 0) {
            free(p->cfg_error);
            p->cfg_error = strdup(msg);
            if (p->index == 0)
                LOG_ERROR(
                    "partitions",
                    "topic %s: its stored configuration cannot be used (%s); its partitions stay offline "
                    "until "
                    "that key is changed with AlterConfigs (sluice configs --alter --topic %s --add-config "
                    "KEY=VALUE, or --delete-config KEY)",
                    p->topic, msg, p->topic);
        }
        return false;
    }
    bool was_unusable = p->cfg_error != NULL;
    free(p->cfg_error);
    p->cfg_error = NULL;
    p->cfg = tc;
    plog *l = atomic_load(&p->log);
    if (l != NULL) {
        plog_config pc;
        parts_plog_config(&tc, &pc);
        if (plog_set_config(l, &pc) != 0)
            LOG_WARN("partitions", "partition %s-%d rejected the new settings", p->topic, p->index);
    }
    if (was_unusable && p->index == 0)
        LOG_INFO("partitions", "topic %s: its configuration is usable again; its partitions are opened",
                 p->topic);
    return was_unusable || first;
}

/* Replaces *dst with a copy of ids[0..n) (kept as it was when memory ran out). */
static void copy_ids(int32_t **dst, int32_t *dn, const int32_t *ids, int32_t n) {
    if (n < 0)
        n = 0;
    if (n != *dn || *dst == NULL) {
        int32_t *v = realloc(*dst, (size_t)(n ? n : 1) * sizeof *v);
        if (v == NULL)
            return;
        *dst = v;
    }
    if (n)
        memcpy(*dst, ids, (size_t)n * sizeof **dst);
    *dn = n;
}

bool rpart_has_replica(const rpart *p, int32_t id) {
    for (int32_t i = 0; i < p->n_replicas; i++)
        if (p->replicas[i] == id)
            return true;
    return false;
}

static void apply_topic(parts *ps, const md_image *next, const md_topic *t, int64_t now) {
    const md_resource *res = md_image_resource(next, MD_RESOURCE_TOPIC, t->name);
    for (int32_t i = 0; i < t->n_partitions; i++) {
        const md_partition *mp = md_topic_partition(t, i);
        if (mp == NULL || !holds(mp, ps->cfg.node_id))
            continue;
        rpart *p = parts_get(ps, t->id, i);
        bool fresh = p == NULL;
        if (fresh) {
            if ((p = rpart_new(ps, t, i)) == NULL) {
                LOG_ERROR("partitions", "out of memory for partition %s-%d", t->name, i);
                continue;
            }
            atomic_fetch_add(&p->refs, 1); /* ours, beside the table's */
            pthread_rwlock_wrlock(&ps->lock);
            insert_locked(ps, p);
            pthread_rwlock_unlock(&ps->lock);
        }
        rpart_lock(p);
        p->leader = mp->leader;
        p->leader_epoch = mp->leader_epoch;
        p->partition_epoch = mp->partition_epoch;
        copy_ids(&p->replicas, &p->n_replicas, mp->replicas.ids, mp->replicas.n);
        copy_ids(&p->isr, &p->n_isr, mp->isr.ids, mp->isr.n);
        bool retry = update_config(ps, p, res, false);
        if (atomic_load(&p->log) == NULL && (fresh || retry) && p->cfg_error == NULL) {
            /* The roots are fsynced once for the whole apply (parts_apply). */
            if (attach(p, false, now) != STORAGE_OK)
                backoff(p, now);
            else if (!fresh)
                LOG_INFO("partitions", "partition %s-%d is open", p->topic, p->index);
        } else {
            apply_role(p, now);
        }
        rpart_unlock(p);
        rpart_release(p);
    }
}

void parts_apply(parts *ps, const md_image *prev, const md_image *next, int64_t now, bool starting) {
    (void)starting; /* every apply syncs the roots once at its end */
    const md_broker *self = md_image_broker(next, ps->cfg.node_id);
    bool was = ps->registered;
    ps->registered = self != NULL && memcmp(self->incarnation.b, ps->cfg.incarnation.b, 16) == 0;
    bool all = ps->registered != was; /* every partition's role is looked at again */
    /* Topics gone, and partitions of changed topics this broker no longer
     * holds. */
    for (int32_t i = 0; prev && i < md_image_topic_count(prev); i++) {
        const md_topic *pt = md_image_topic_at(prev, i);
        const md_topic *nt = md_image_topic_by_id(next, pt->id);
        if (nt == pt)
            continue;
        for (int32_t k = 0; k < pt->n_partitions; k++) {
            const md_partition *nmp = nt ? md_topic_partition(nt, k) : NULL;
            if (nmp != NULL && holds(nmp, ps->cfg.node_id))
                continue;
            rpart *p = parts_get(ps, pt->id, k);
            if (p) {
                drop(ps, p);
                rpart_release(p);
            }
        }
    }
    /* New and changed topics, and topics whose config changed. */
    for (int32_t i = 0; i < md_image_topic_count(next); i++) {
        const md_topic *t = md_image_topic_at(next, i);
        const md_topic *pt = prev ? md_image_topic_by_id(prev, t->id) : NULL;
        if (!all && pt == t &&
            md_image_resource(prev, MD_RESOURCE_TOPIC, t->name) ==
                md_image_resource(next, MD_RESOURCE_TOPIC, t->name))
            continue;
        apply_topic(ps, next, t, now);
    }
    /* New partition directories are durable before the change is answered. */
    logmgr_sync_roots(ps->cfg.lm);
}

/* ---- housekeeping -------------------------------------------------------------------------------- */

static void retry(parts *ps, rpart *p, int64_t now) {
    (void)ps;
    plog *l = atomic_load(&p->log);
    if (now < p->retry_at_ms)
        return;
    if (l != NULL) {
        if (plog_reopen(l) != 0) {
            backoff(p, now);
            return;
        }
        p->backoff_ms = 0;
        LOG_INFO("partitions", "partition %s-%d is back online", p->topic, p->index);
        apply_role(p, now);
        if (p->owner->cfg.changed)
            p->owner->cfg.changed(p->owner->cfg.ctx, p);
        return;
    }
    if (p->cfg_error != NULL || atomic_load(&p->removed))
        return;
    if (attach(p, true, now) != STORAGE_OK) {
        backoff(p, now);
        return;
    }
    p->backoff_ms = 0;
    LOG_INFO("partitions", "partition %s-%d is open", p->topic, p->index);
}

void parts_tick(parts *ps, int64_t now) {
    int64_t n;
    rpart **all = snapshot(ps, &n);
    for (int64_t i = 0; i < n; i++) {
        rpart *p = all[i];
        plog *l = atomic_load(&p->log);
        if (l == NULL || plog_is_offline(l)) {
            rpart_lock(p);
            retry(ps, p, now);
            rpart_unlock(p);
        } else {
            int rc = plog_tick(l, now);
            if (rc != 0)
                LOG_WARN("partitions", "housekeeping of partition %s-%d failed: %s", p->topic, p->index,
                         storage_strerror(rc));
            /* Producer state: expiry, and a snapshot after each roll. */
            uint8_t *buf = NULL, *abuf = NULL;
            size_t len = 0, alen = 0;
            int64_t off = -1;
            bool snap = false;
            rpart_lock(p);
            pstate *s = replica_producers(p->r);
            if (p->owner->cfg.bc)
                pstate_set_limits(s, 0, p->owner->cfg.bc->producer_id_expiration_ms);
            pstate_expire(s, now);
            if (atomic_load(&p->log) == l && plog_active_base(l) > p->snap_offset)
                snap = take_producers(p, l, &buf, &len, &abuf, &alen, &off);
            rpart_unlock(p);
            if (snap)
                write_producers(p, l, buf, len, abuf, alen, off);
        }
        rpart_release(p);
    }
    free(all);
}
