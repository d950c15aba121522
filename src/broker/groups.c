/*
 * groups.c - group coordinator shards, their log appends, loading and the
 * ticking thread. See groups.h.
 */
#include "broker/groups.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"

#define LOAD_READ_BYTES  (4 << 20)
#define LOAD_ARENA_LIMIT (256u << 20)

struct groups_mgr {
    broker *b;
    topic *topic;
    int32_t n;
    groups_shard *shards;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    bool shut;
};

int64_t groups_now_ms(void) { return clock_wall_ms(); }

/* ---- appends ------------------------------------------------------------ */

/* Appends recs[0..n) as batches of bounded size; the first batch's base
 * offset goes to *first. */
static int append_batches(groups_shard *s, const gcoord_record *recs, int n, int64_t *first) {
    int64_t now = groups_now_ms();
    int rc = 0;
    *first = -1;
    for (int i = 0; i < n && rc == 0;) {
        int k = 0;
        size_t bytes = 0;
        while (i + k < n && k < GROUPS_BATCH_RECORDS && (k == 0 || bytes < GROUPS_BATCH_BYTES)) {
            bytes +=
                (size_t)recs[i + k].key.len + (size_t)(recs[i + k].value.len > 0 ? recs[i + k].value.len : 0);
            k++;
        }
        arena a;
        arena_init(&a, bytes * 2 + ((size_t)k << 6) + (1u << 16));
        batch_build_record *br = arena_calloc(&a, (size_t)k, sizeof *br);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (br == NULL) {
            rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        } else {
            for (int j = 0; j < k; j++)
                br[j] = (batch_build_record){
                    .key = recs[i + j].key, .value = recs[i + j].value, .timestamp = now};
            batch_build_opts o = batch_build_defaults();
            if (batch_build(&o, br, k, &a, &buf, &len) != BATCH_OK) {
                rc = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            } else {
                plog_append_info info;
                int err = plog_append(s->part->log, buf, len, s->part->leader_epoch, now, &info);
                if (err != STORAGE_OK) {
                    LOG_ERROR("groups", "appending to %s-%d failed: %s", GROUPS_OFFSETS_TOPIC, s->index,
                              storage_strerror(err));
                    rc = KAFKA_ERR_NOT_COORDINATOR;
                } else if (*first < 0) {
                    *first = info.base_offset;
                }
            }
        }
        arena_reset(&a);
        i += k;
    }
    return rc;
}

static int shard_append(void *ctx, const gcoord_record *recs, int n, bool snapshot) {
    groups_shard *s = ctx;
    int64_t first = -1;
    if (snapshot) {
        int64_t start = plog_end_offset(s->part->log);
        plog_roll(s->part->log, groups_now_ms());
        int rc = append_batches(s, recs, n, &first);
        if (rc != 0)
            return rc;
        int64_t new_start;
        /* Everything before the snapshot is now redundant. */
        if (plog_delete_records(s->part->log, first >= 0 ? first : start, &new_start) == STORAGE_OK)
            LOG_INFO("groups", "%s-%d: snapshot of %d records, log start now %lld", GROUPS_OFFSETS_TOPIC,
                     s->index, n, (long long)new_start);
        return 0;
    }
    return append_batches(s, recs, n, &first);
}

/* ---- events ---------------------------------------------------------------- */

/* Rebalances are client-driven (a consumer that restarts in a loop causes
 * one each time): a line each, at most so many a second per kind. */
static log_ratelimit rebalance_start_rl = LOG_RATELIMIT_DEFAULT;
static log_ratelimit rebalance_done_rl = LOG_RATELIMIT_DEFAULT;

static void shard_event(void *ctx, const gcoord_event *ev) {
    const groups_shard *s = ctx;
    const kstr none = kstr_c("none");
    kstr ptype = ev->protocol_type.len >= 0 ? ev->protocol_type : none;
    switch (ev->kind) {
    case GCOORD_EV_REBALANCE_START:
        LOG_INFO_LIMITED(
            &rebalance_start_rl, "groups",
            "preparing to rebalance group '%.*s' (%s, generation %d, protocol type %.*s): %s; %d members "
            "now; coordinator %s-%d",
            ev->group_id.len, ev->group_id.ptr, gcoord_state_name(ev->from), ev->generation, ptype.len,
            ptype.ptr, ev->reason, ev->n_members, GROUPS_OFFSETS_TOPIC, s->index);
        break;
    case GCOORD_EV_REBALANCE_DONE:
        if (ev->n_members == 0) {
            LOG_INFO_LIMITED(&rebalance_done_rl, "groups",
                             "group '%.*s' is empty after its rebalance (generation %d); coordinator %s-%d",
                             ev->group_id.len, ev->group_id.ptr, ev->generation, GROUPS_OFFSETS_TOPIC,
                             s->index);
            break;
        }
        {
            kstr proto = ev->protocol.len >= 0 ? ev->protocol : none;
            kstr leader = ev->leader.len >= 0 ? ev->leader : none;
            LOG_INFO_LIMITED(
                &rebalance_done_rl, "groups",
                "rebalanced group '%.*s': generation %d with %d members, protocol %.*s/%.*s, leader "
                "%.*s; coordinator %s-%d",
                ev->group_id.len, ev->group_id.ptr, ev->generation, ev->n_members, ptype.len, ptype.ptr,
                proto.len, proto.ptr, leader.len, leader.ptr, GROUPS_OFFSETS_TOPIC, s->index);
        }
        break;
    }
}

/* ---- loading --------------------------------------------------------------- */

typedef struct load_ctx {
    groups_shard *s;
    int64_t from; /* records below it were loaded already (or deleted) */
    int64_t records;
} load_ctx;

/* One batch of the shard's partition into its machine. The lock is taken
 * per batch, so requests meanwhile get a quick COORDINATOR_LOAD_IN_PROGRESS
 * instead of waiting for the whole load. */
static int load_batch(void *ctx, const uint8_t *bp, size_t bsize, const batch_header *h) {
    load_ctx *lc = ctx;
    if (h->attributes & BATCH_ATTR_CONTROL)
        return 0;
    arena a;
    arena_init(&a, LOAD_ARENA_LIMIT);
    batch_iter it;
    pthread_mutex_lock(&lc->s->mu);
    if (batch_iter_init(&it, bp, bsize, &a) == BATCH_OK) {
        batch_record rec;
        while (batch_iter_next(&it, &rec)) {
            if (rec.offset < lc->from)
                continue;
            if (rec.key.len >= 0 && gcoord_load_record(lc->s->sm, rec.key, rec.value) == 0)
                lc->records++;
        }
    }
    pthread_mutex_unlock(&lc->s->mu);
    arena_reset(&a);
    return 0;
}

/* Replays the shard's partition into its machine (still loading). */
static int load_shard(groups_shard *s) {
    plog *l = s->part->log;
    int64_t off = plog_start_offset(l), end = plog_end_offset(l);
    load_ctx lc = {s, off, 0};
    int rc = 0;
    while (off < end) {
        int64_t next = off;
        lc.from = off;
        int err = plog_scan(l, off, LOAD_READ_BYTES, load_batch, &lc, &next);
        if (err == STORAGE_OFFSET_OUT_OF_RANGE) {
            off = plog_start_offset(l);
            continue;
        }
        if (err == STORAGE_CORRUPT_MESSAGE) {
            LOG_WARN("groups", "%s-%d: unreadable batch at offset %lld; loading stops there",
                     GROUPS_OFFSETS_TOPIC, s->index, (long long)next);
            break;
        }
        if (err != STORAGE_OK || next <= off) {
            rc = err ? -1 : 0; /* an error, or the log ends sooner than it did */
            break;
        }
        off = next;
    }
    if (lc.records > 0)
        LOG_INFO("groups", "%s-%d: loaded %lld records", GROUPS_OFFSETS_TOPIC, s->index,
                 (long long)lc.records);
    return rc;
}

/* ---- the thread ---------------------------------------------------------- */

/* Loads the shards not loaded yet whose partition is online; a shard whose
 * partition is offline (its log could not be opened) keeps answering
 * COORDINATOR_LOAD_IN_PROGRESS and is tried again on later rounds, so its
 * committed offsets are never served as empty. Returns how many wait. */
static int32_t load_pending(groups_mgr *m) {
    int32_t waiting = 0;
    for (int32_t i = 0; i < m->n; i++) {
        groups_shard *s = &m->shards[i];
        if (s->loaded)
            continue;
        if (partition_log(s->part) == NULL) {
            if (!s->offline_logged)
                LOG_WARN("groups", "%s-%d is offline; its groups wait until it opens", GROUPS_OFFSETS_TOPIC,
                         i);
            s->offline_logged = true;
            waiting++;
            continue;
        }
        if (load_shard(s) != 0)
            LOG_ERROR("groups", "%s-%d: loading failed part way; serving what was read", GROUPS_OFFSETS_TOPIC,
                      i);
        pthread_mutex_lock(&s->mu);
        gcoord_load_end(s->sm, groups_now_ms());
        pthread_mutex_unlock(&s->mu);
        s->loaded = true;
        pthread_mutex_lock(&m->mu);
        bool stop = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
    }
    return waiting;
}

static void *groups_main(void *arg) {
    groups_mgr *m = arg;
    int32_t waiting = load_pending(m);
    int64_t next_load = groups_now_ms() + GROUPS_RELOAD_MS;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += GROUPS_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->cond, &m->mu, &ts);
        if (m->stopping)
            break;
        pthread_mutex_unlock(&m->mu);
        int64_t now = groups_now_ms();
        if (waiting > 0 && now >= next_load) {
            waiting = load_pending(m);
            next_load = now + GROUPS_RELOAD_MS;
        }
        for (int32_t i = 0; i < m->n; i++) {
            groups_shard *s = &m->shards[i];
            if (!s->loaded)
                continue;
            pthread_mutex_lock(&s->mu);
            if (now >= gcoord_next_deadline(s->sm))
                gcoord_tick(s->sm, now);
            pthread_mutex_unlock(&s->mu);
        }
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------- */

static topic *offsets_topic(broker *b) {
    const broker_config *cfg = b->cfg;
    kstr name = kstr_c(GROUPS_OFFSETS_TOPIC);
    topic *t = topics_get(b->topics, name);
    if (t)
        return t;
    char seg[32];
    snprintf(seg, sizeof seg, "%d", cfg->offsets_topic_segment_bytes);
    /* Retention off (snapshots bound the size), compacted when a cleaner
     * exists, and room for large group records. */
    const char *keys[] = {"cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
                          "max.message.bytes"};
    const char *vals[] = {"compact", "-1", "-1", seg, "67108864"};
    char msg[TOPICS_MSG_MAX];
    int rc = topics_create_internal(b->topics, name, cfg->offsets_topic_num_partitions, keys, vals, 5, &t,
                                    msg, sizeof msg);
    if (rc == KAFKA_ERR_TOPIC_ALREADY_EXISTS)
        return topics_get(b->topics, name);
    if (rc != 0) {
        LOG_ERROR("groups", "cannot create %s: %s", GROUPS_OFFSETS_TOPIC, msg);
        return NULL;
    }
    LOG_INFO("groups", "created %s with %d partitions", GROUPS_OFFSETS_TOPIC,
             cfg->offsets_topic_num_partitions);
    return t;
}

int groups_mgr_start(broker *b) {
    groups_mgr *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->b = b;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cond, NULL);
    b->groups = m;
    m->topic = offsets_topic(b);
    if (m->topic == NULL)
        return -1;
    m->n = topic_partition_count(m->topic);
    m->shards = calloc((size_t)m->n, sizeof *m->shards);
    if (m->shards == NULL)
        return -1;
    gcoord_config gc;
    gcoord_config_default(&gc);
    const broker_config *cfg = b->cfg;
    gc.initial_rebalance_delay_ms = cfg->group_initial_rebalance_delay_ms;
    gc.min_session_timeout_ms = cfg->group_min_session_timeout_ms;
    gc.max_session_timeout_ms = cfg->group_max_session_timeout_ms;
    gc.max_size = cfg->group_max_size;
    gc.offsets_retention_ms = cfg->offsets_retention_ms;
    uint64_t seed = (uint64_t)groups_now_ms() * 0x100000001b3ULL ^ (uint64_t)getpid();
    for (int32_t i = 0; i < m->n; i++) {
        groups_shard *s = &m->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->mgr = m;
        s->index = i;
        s->part = topic_partition(m->topic, i);
        gc.id_seed = seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
        gcoord_sink sink = {s, groups_api_join_done, groups_api_sync_done, shard_append, shard_event};
        s->sm = gcoord_create(&gc, &sink);
        if (s->part == NULL || s->sm == NULL)
            return -1;
    }
    if (pthread_create(&m->thread, NULL, groups_main, m) != 0) {
        LOG_ERROR("groups", "cannot start the group coordinator thread");
        return -1;
    }
    m->thread_started = true;
    return 0;
}

void groups_mgr_shutdown(broker *b) {
    groups_mgr *m = b->groups;
    if (m == NULL || m->shut)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
    if (m->thread_started) {
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    for (int32_t i = 0; m->shards && i < m->n; i++) {
        groups_shard *s = &m->shards[i];
        if (s->sm == NULL)
            continue;
        pthread_mutex_lock(&s->mu);
        gcoord_shutdown(s->sm, KAFKA_ERR_NOT_COORDINATOR);
        pthread_mutex_unlock(&s->mu);
    }
    m->shut = true;
}

void groups_mgr_destroy(broker *b) {
    groups_mgr *m = b->groups;
    if (m == NULL)
        return;
    groups_mgr_shutdown(b);
    for (int32_t i = 0; m->shards && i < m->n; i++) {
        gcoord_destroy(m->shards[i].sm);
        pthread_mutex_destroy(&m->shards[i].mu);
    }
    free(m->shards);
    if (m->topic)
        topic_release(b->topics, m->topic);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cond);
    free(m);
    b->groups = NULL;
}

groups_shard *groups_lock_index(broker *b, int32_t index) {
    groups_mgr *m = b->groups;
    if (m == NULL || m->shards == NULL || index < 0 || index >= m->n)
        return NULL;
    groups_shard *s = &m->shards[index];
    pthread_mutex_lock(&s->mu);
    return s;
}

groups_shard *groups_lock(broker *b, kstr group_id) {
    groups_mgr *m = b->groups;
    if (m == NULL || m->n <= 0)
        return NULL;
    return groups_lock_index(b, gcoord_partition_for(group_id, m->n));
}

void groups_unlock(groups_shard *s) { pthread_mutex_unlock(&s->mu); }

int32_t groups_shard_count(broker *b) {
    groups_mgr *m = b->groups;
    return m ? m->n : 0;
}
