/*
 * topics.c - the topic registry and its metadata log. See topics.h.
 *
 * Metadata records. Each change is one record in a one-record batch of the
 * metadata log; its key names the change and its value is:
 *   int8 version (0), int8 type, uuid topic id, then by type:
 *   TOPIC:      string name, int32 partitions, int16 replication factor,
 *               bool internal, int32 n, n x (string key, string value)
 *   PARTITIONS: int32 new partition count
 *   CONFIG:     bool replace_all, int32 n, n x (string key, nullable string value)
 *   DELETE:     nothing
 *   CREATING:   int32 from, int32 to (partitions about to be created)
 * A change is made durable (append + fsync) before it is applied in memory.
 * Creating partitions is announced first (CREATING, durable before the
 * first directory is made), so that directories left by a creation cut
 * short are recognised at the next start and removed: the metadata log
 * explains every directory the registry ever removes (see logdirs.h).
 *
 * Locks: `lock` (rwlock) guards the topic table; `change_mu` serialises
 * changes so that the slow part (disk) runs without blocking lookups, and the
 * table is only write-locked to publish the result.
 */
#include "broker/topics.h"
#include "core/clock.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/logdirs.h"
#include "metadata/logscan.h"
#include "core/arena.h"
#include "core/log.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"

#define META_LOG_NAME   "__sluice_metadata-0"
#define META_PROPERTIES "meta.properties"
#define META_RECORD_MAX (1 << 20)
_Static_assert(META_RECORD_MAX * 2 <= METALOG_BATCH_MAX, "a metadata batch must fit the scanner's buffer");

enum { REC_TOPIC = 1, REC_PARTITIONS = 2, REC_CONFIG = 3, REC_DELETE = 4, REC_CREATING = 5 };

/* Bounds on what the registry remembers of the metadata log's history. */
#define DELETED_IDS_MAX (1 << 20) /* topics ever deleted (16 bytes each) */
#define INTENTS_MAX     (1 << 16) /* unfinished creations found by a replay */
#define STRAYS_MAX      10000     /* set-aside directories listed (more are counted) */
#define STRAYS_LOGGED   20        /* at start, one line each for the first ones */

/* Open files: every partition keeps its active segment open, so partitions
 * are counted against RLIMIT_NOFILE, less a reserve for what else needs
 * descriptors - client connections (max.connections, at most a quarter of
 * the limit), the idle-segment cache for reads of older segments (an eighth
 * of the limit, at most FD_CACHE_MAX) and FD_RESERVE_FIXED for listeners,
 * epoll, the metadata log and files opened briefly. */
#define FD_RESERVE_FIXED 256
#define FD_CACHE_MAX     1024

typedef struct retired_parts {
    struct retired_parts *next;
    partition **parts;
} retired_parts;

/* A creation the metadata log announced (REC_CREATING) and whose topic or
 * partitions record has not (yet) been seen: partitions [from, to) of id. */
typedef struct intent {
    kuuid id;
    int32_t from, to;
} intent;

struct topic_registry {
    const broker_config *cfg;
    bool opened; /* every log recovered: closing may mark the dirs clean */
    /* Ids the metadata log records as deleted: the only directories removed
     * without a live topic. Guarded by change_mu (written at start, by
     * deletions, read when a partition directory is claimed). */
    kuuid *deleted_ids;
    int n_deleted, cap_deleted;
    bool deleted_sorted;
    intent *intents; /* unfinished creations (start-up only) */
    int n_intents, cap_intents;
    /* Set-aside directories, for DescribeLogDirs; under lock. */
    topics_stray *strays;
    int n_strays, cap_strays, strays_total;
    pthread_rwlock_t lock;
    pthread_mutex_t change_mu;
    topic **topics; /* live topics, unsorted */
    int n_topics, cap_topics;
    int n_partitions;
    int64_t fd_partitions_max; /* partitions the open-file limit leaves room for */
    int64_t fd_limit;          /* RLIMIT_NOFILE at start, -1 for none */
    plog *meta;
    int64_t meta_end;         /* end of what was written and applied (change_mu) */
    int64_t meta_retry_at_ms; /* when it is offline: the next reopen (change_mu) */
    int32_t meta_backoff_ms;
    storage_ctx *storage; /* the broker's; every log is opened with it */
    char cluster_id[32];
    bool was_clean[CONFIG_LIST_MAX];
};

static void topic_free_overrides(topic_config_override *o, int n);

/* ---- small helpers ---------------------------------------------------- */

static void fill_random(void *p, size_t n) {
    uint8_t *b = p;
    while (n > 0) {
        ssize_t got = getrandom(b, n, 0);
        if (got <= 0) {
            /* Extremely unlikely; fall back to time-seeded bytes. */
            uint64_t x = (uint64_t)clock_wall_ms() ^ (uint64_t)(uintptr_t)p;
            for (size_t i = 0; i < n; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                b[i] = (uint8_t)(x >> 56);
            }
            return;
        }
        b += got;
        n -= (size_t)got;
    }
}

static kuuid new_uuid(void) {
    kuuid u;
    fill_random(u.b, 16);
    u.b[6] = (uint8_t)((u.b[6] & 0x0f) | 0x40); /* version 4 */
    u.b[8] = (uint8_t)((u.b[8] & 0x3f) | 0x80);
    return u;
}

static void plog_config_from_topic(const topic_config *tc, plog_config *pc) {
    plog_config_default(pc);
    pc->segment_bytes = tc->segment_bytes;
    pc->segment_ms = tc->segment_ms;
    pc->segment_index_bytes = tc->segment_index_bytes;
    pc->index_interval_bytes = tc->index_interval_bytes;
    pc->max_message_bytes = tc->max_message_bytes;
    pc->flush_messages = tc->flush_messages;
    pc->flush_ms = tc->flush_ms;
    pc->retention_ms = tc->retention_ms;
    pc->retention_bytes = tc->retention_bytes;
    pc->timestamp_type = tc->message_timestamp_type == CONFIG_TIMESTAMP_LOG_APPEND_TIME
                             ? PLOG_TS_LOG_APPEND_TIME
                             : PLOG_TS_CREATE_TIME;
    pc->timestamp_before_max_ms = tc->message_timestamp_before_max_ms;
    pc->timestamp_after_max_ms = tc->message_timestamp_after_max_ms;
}

/* ---- names ------------------------------------------------------------ */

int topics_validate_name(kstr name, char *msg, size_t msgn) {
    if (name.len <= 0) {
        snprintf(msg, msgn, "topic name is empty");
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if (name.len > TOPIC_NAME_MAX) {
        snprintf(msg, msgn, "topic name is %d characters long; the limit is %d", name.len, TOPIC_NAME_MAX);
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if ((name.len == 1 && name.ptr[0] == '.') ||
        (name.len == 2 && name.ptr[0] == '.' && name.ptr[1] == '.')) {
        snprintf(msg, msgn, "topic name cannot be '.' or '..'");
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    for (int i = 0; i < name.len; i++) {
        char c = name.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok) {
            snprintf(msg, msgn,
                     "topic name '%.*s' contains a character other than ASCII letters, digits, "
                     "'.', '_' and '-'",
                     name.len > 64 ? 64 : name.len, name.ptr);
            return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
        }
    }
    return 0;
}

bool topics_metadata_name(kstr name) {
    return kstr_eq_c(name, "__sluice_metadata") || kstr_eq_c(name, "__cluster_metadata");
}

bool topics_internal_name(kstr name) {
    return kstr_eq_c(name, "__consumer_offsets") || kstr_eq_c(name, "__transaction_state") ||
           kstr_eq_c(name, "__share_group_state");
}

static bool has_stray_suffix(const char *s, size_t n) {
    size_t k = sizeof TOPICS_STRAY_SUFFIX - 1;
    return n >= k && memcmp(s + n - k, TOPICS_STRAY_SUFFIX, k) == 0;
}

bool topics_name_reserved(kstr name) {
    return topics_metadata_name(name) || topics_internal_name(name) ||
           (name.len > 0 && has_stray_suffix(name.ptr, (size_t)name.len));
}

/* Copies n key/value pairs into a new override array (values may not be
 * NULL). NULL on allocation failure (or when n is 0). */
static topic_config_override *overrides_dup(const char *const *keys, const char *const *values, int n) {
    topic_config_override *o = n > 0 ? calloc((size_t)n, sizeof *o) : NULL;
    for (int i = 0; o != NULL && i < n; i++) {
        o[i].key = strdup(keys[i]);
        o[i].value = strdup(values[i]);
        if (!o[i].key || !o[i].value) {
            topic_free_overrides(o, n);
            o = NULL;
        }
    }
    return o;
}

/* For an internal topic: the first pinned override that the merged set
 * keys/values (m of them) drops or changes, or NULL. */
static const topic_config_override *pinned_broken(const topic *t, const char *const *keys,
                                                  const char *const *values, int m) {
    for (int p = 0; p < t->n_pinned; p++) {
        int k = 0;
        while (k < m && strcmp(keys[k], t->pinned[p].key) != 0)
            k++;
        if (k == m || values[k] == NULL || strcmp(values[k], t->pinned[p].value) != 0)
            return &t->pinned[p];
    }
    return NULL;
}

/* '.' and '_' collide in metric names, so Kafka refuses topics that differ
 * only in them. */
static bool names_collide(const char *a, kstr b) {
    if ((int)strlen(a) != b.len)
        return false;
    for (int i = 0; i < b.len; i++) {
        char x = a[i] == '.' ? '_' : a[i];
        char y = b.ptr[i] == '.' ? '_' : b.ptr[i];
        if (x != y)
            return false;
    }
    return true;
}

/* ---- topics in memory ------------------------------------------------- */

static void topic_free_overrides(topic_config_override *o, int n) {
    if (o == NULL)
        return;
    for (int i = 0; i < n; i++) {
        free(o[i].key);
        free(o[i].value);
    }
    free(o);
}

/* Deletes a partition log and the directory holding it. */
static int partition_delete_log(plog *l) {
    char meta[4200];
    snprintf(meta, sizeof meta, "%s/%s", plog_dir(l), LOGDIRS_OWNER_FILE);
    unlink(meta);
    return plog_delete(l);
}

/* Frees a topic; with remove_files its partition logs are deleted too.
 * When unclean is not NULL, unclean[root] is set for each root where a log
 * did not close cleanly or (for roots not clean at start, per was_clean) a
 * partition was never opened, hence never recovered. */
static void topic_destroy(topic_registry *reg, topic *t, bool remove_files, bool *unclean) {
    for (int i = 0; i < t->n_partitions; i++) {
        partition *p = t->parts[i];
        if (p == NULL)
            continue;
        plog *l = partition_log(p);
        if (l != NULL) {
            int rc = remove_files ? partition_delete_log(l) : plog_close(l);
            if (rc != 0)
                LOG_WARN("topics", "%s partition %s-%d: %s", remove_files ? "deleting" : "closing", t->name,
                         i, storage_strerror(rc));
            if (rc != 0 && unclean)
                unclean[p->root_index] = true;
        } else if (remove_files) {
            /* Offline: its directory, if it is this topic's, goes too. */
            char dir[4400];
            kuuid owner;
            snprintf(dir, sizeof dir, "%s/%s-%d", p->root, t->name, i);
            if (logdirs_read_owner(dir, &owner) == 1 && memcmp(owner.b, t->id.b, 16) == 0 &&
                logdirs_remove(dir) != 0)
                LOG_WARN("topics", "cannot remove %s: %s", dir, strerror(errno));
        } else if (unclean && !reg->was_clean[p->root_index]) {
            unclean[p->root_index] = true;
        }
        free(p);
    }
    free(t->parts);
    for (retired_parts *r = t->retired; r;) {
        retired_parts *next = r->next;
        free(r->parts);
        free(r);
        r = next;
    }
    topic_free_overrides(t->overrides, t->n_overrides);
    topic_free_overrides(t->pinned, t->n_pinned);
    free(t->cfg_error);
    free(t);
}

void topic_release(topic_registry *reg, topic *t) {
    if (t == NULL)
        return;
    if (atomic_fetch_sub(&t->refs, 1) == 1) {
        assert(t->deleted);
        LOG_INFO("topics", "deleting the logs of topic %s", t->name);
        topic_destroy(reg, t, true, NULL);
    }
}

/* n_partitions is published after parts (release), so a reader that sees
 * the new count also sees the new array. */
partition *topic_partition(topic *t, int32_t index) {
    int32_t n = __atomic_load_n(&t->n_partitions, __ATOMIC_ACQUIRE);
    partition **parts = __atomic_load_n(&t->parts, __ATOMIC_ACQUIRE);
    if (index < 0 || index >= n)
        return NULL;
    return parts[index];
}

int16_t partition_check_leader_epoch(const partition *p, int32_t current_leader_epoch) {
    if (partition_log(p) == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    if (current_leader_epoch < 0 || current_leader_epoch == p->leader_epoch)
        return KAFKA_ERR_NONE;
    return current_leader_epoch < p->leader_epoch ? KAFKA_ERR_FENCED_LEADER_EPOCH
                                                  : KAFKA_ERR_UNKNOWN_LEADER_EPOCH;
}

int32_t topic_partition_count(topic *t) { return __atomic_load_n(&t->n_partitions, __ATOMIC_ACQUIRE); }

bool topic_is_deleted(topic *t) { return __atomic_load_n(&t->deleted, __ATOMIC_ACQUIRE); }

static const char *arena_strdup_c(arena *a, const char *s) {
    size_t n = strlen(s);
    char *out = arena_alloc(a, n + 1);
    if (out)
        memcpy(out, s, n + 1);
    return out;
}

int topics_copy_overrides(topic_registry *reg, topic *t, arena *a, const char ***keys, const char ***values,
                          int *n) {
    int rc = 0;
    *n = 0;
    *keys = *values = NULL;
    pthread_rwlock_rdlock(&reg->lock);
    int m = t->n_overrides;
    const char **k = m ? arena_calloc(a, (size_t)m, sizeof *k) : NULL;
    const char **v = m ? arena_calloc(a, (size_t)m, sizeof *v) : NULL;
    if (m && (k == NULL || v == NULL))
        rc = -1;
    for (int i = 0; i < m && rc == 0; i++) {
        k[i] = arena_strdup_c(a, t->overrides[i].key);
        v[i] = t->overrides[i].value ? arena_strdup_c(a, t->overrides[i].value) : NULL;
        if (k[i] == NULL || (t->overrides[i].value && v[i] == NULL))
            rc = -1;
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc == 0) {
        *keys = k;
        *values = v;
        *n = m;
    }
    return rc;
}

static topic *find_locked(topic_registry *reg, kstr name) {
    for (int i = 0; i < reg->n_topics; i++) {
        topic *t = reg->topics[i];
        if ((int)strlen(t->name) == name.len && memcmp(t->name, name.ptr, (size_t)name.len) == 0)
            return t;
    }
    return NULL;
}

topic *topics_get(topic_registry *reg, kstr name) {
    if (name.len <= 0 || name.len > TOPIC_NAME_MAX)
        return NULL;
    pthread_rwlock_rdlock(&reg->lock);
    topic *t = find_locked(reg, name);
    if (t)
        atomic_fetch_add(&t->refs, 1);
    pthread_rwlock_unlock(&reg->lock);
    return t;
}

topic *topics_get_by_id(topic_registry *reg, kuuid id) {
    topic *found = NULL;
    pthread_rwlock_rdlock(&reg->lock);
    for (int i = 0; i < reg->n_topics; i++)
        if (memcmp(reg->topics[i]->id.b, id.b, 16) == 0) {
            found = reg->topics[i];
            atomic_fetch_add(&found->refs, 1);
            break;
        }
    pthread_rwlock_unlock(&reg->lock);
    return found;
}

static int cmp_topic_name(const void *a, const void *b) {
    return strcmp((*(topic *const *)a)->name, (*(topic *const *)b)->name);
}

topic **topics_list(topic_registry *reg, int *n) {
    *n = 0;
    pthread_rwlock_rdlock(&reg->lock);
    topic **out = reg->n_topics ? malloc((size_t)reg->n_topics * sizeof *out) : NULL;
    if (out) {
        for (int i = 0; i < reg->n_topics; i++) {
            out[i] = reg->topics[i];
            atomic_fetch_add(&out[i]->refs, 1);
        }
        *n = reg->n_topics;
    }
    pthread_rwlock_unlock(&reg->lock);
    if (out)
        qsort(out, (size_t)*n, sizeof *out, cmp_topic_name);
    return out;
}

int topics_partition_count(topic_registry *reg) {
    pthread_rwlock_rdlock(&reg->lock);
    int n = reg->n_partitions;
    pthread_rwlock_unlock(&reg->lock);
    return n;
}

const char *topics_cluster_id(const topic_registry *reg) { return reg->cluster_id; }

/* ---- partition directories -------------------------------------------- */

/* Each partition directory holds partition.metadata naming its topic id
 * (logdirs.h). A directory is removed only when the metadata log explains
 * it: its id was deleted (REC_DELETE), or it was being created when the
 * broker stopped (REC_CREATING without the record that completes it). Any
 * other directory the live topics do not account for is set aside. */

/* Makes room for one more element in a growable array (*cap doubling from
 * 16, never past max elements). False when full or out of memory. */
static bool grow_array(void **v, int n, int *cap, size_t elem, int max) {
    if (n < *cap)
        return true;
    int ncap = *cap ? *cap * 2 : 16;
    if (ncap > max)
        ncap = max;
    void *nv = ncap > n ? realloc(*v, (size_t)ncap * elem) : NULL;
    if (nv == NULL)
        return false;
    *v = nv;
    *cap = ncap;
    return true;
}

static int cmp_uuid(const void *a, const void *b) { return memcmp(a, b, 16); }

/* deleted_ids is kept sorted once the replay is over (sort_deleted), for
 * lookups in O(log n) while the start-up settles every directory. */
static bool id_was_deleted(const topic_registry *reg, kuuid id) {
    return reg->n_deleted > 0 &&
           bsearch(&id, reg->deleted_ids, (size_t)reg->n_deleted, sizeof id, cmp_uuid) != NULL;
}

static void sort_deleted(topic_registry *reg) {
    if (reg->n_deleted > 1)
        qsort(reg->deleted_ids, (size_t)reg->n_deleted, sizeof(kuuid), cmp_uuid);
    reg->deleted_sorted = true;
}

static void remember_deleted(topic_registry *reg, kuuid id) {
    if (reg->deleted_sorted && id_was_deleted(reg, id))
        return;
    if (!grow_array((void **)&reg->deleted_ids, reg->n_deleted, &reg->cap_deleted, sizeof(kuuid),
                    DELETED_IDS_MAX)) {
        /* Forgetting is safe: its leftovers are set aside, not removed. */
        LOG_WARN("topics", "too many deleted topics to remember; leftovers of older ones are set aside");
        return;
    }
    if (!reg->deleted_sorted) { /* replaying: sorted once at the end */
        reg->deleted_ids[reg->n_deleted++] = id;
        return;
    }
    int i = reg->n_deleted;
    while (i > 0 && cmp_uuid(&reg->deleted_ids[i - 1], &id) > 0)
        i--;
    memmove(&reg->deleted_ids[i + 1], &reg->deleted_ids[i], (size_t)(reg->n_deleted - i) * sizeof id);
    reg->deleted_ids[i] = id;
    reg->n_deleted++;
}

/* The unfinished creation covering partition index of id, if any. */
static const intent *find_intent(const topic_registry *reg, kuuid id, int32_t index) {
    for (int i = 0; i < reg->n_intents; i++) {
        const intent *in = &reg->intents[i];
        if (memcmp(in->id.b, id.b, 16) == 0 && index >= in->from && index < in->to)
            return in;
    }
    return NULL;
}

/* Lists a set-aside directory; returns its size. */
static int64_t add_stray(topic_registry *reg, int root, const char *name, bool known, kuuid owner,
                         int32_t index) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", reg->cfg->log_dirs.items[root], name);
    int64_t bytes = logdirs_bytes(path);
    pthread_rwlock_wrlock(&reg->lock);
    reg->strays_total++;
    if (grow_array((void **)&reg->strays, reg->n_strays, &reg->cap_strays, sizeof(topics_stray),
                   STRAYS_MAX)) {
        topics_stray *st = &reg->strays[reg->n_strays++];
        memset(st, 0, sizeof *st);
        st->root = root;
        snprintf(st->name, sizeof st->name, "%s", name);
        st->owner_known = known;
        st->owner = owner;
        st->partition = index;
        st->bytes = bytes;
    }
    pthread_rwlock_unlock(&reg->lock);
    return bytes;
}

int topics_strays(topic_registry *reg, topics_stray *out, int max, int *total) {
    pthread_rwlock_rdlock(&reg->lock);
    int n = reg->n_strays < max ? reg->n_strays : max;
    if (n > 0)
        memcpy(out, reg->strays, (size_t)n * sizeof *out);
    *total = reg->strays_total;
    pthread_rwlock_unlock(&reg->lock);
    return n;
}

/* Deals with root/dname, a directory named as partition index of topic
 * name, when it is not known to hold that partition of the live topic
 * `live` (NULL: no live topic has that partition). Returns 0 when the
 * directory is live's to use (its id, or no partition.metadata: adopted), 1
 * when it was removed or set aside, -1 when that failed (logged). */
static int settle_dir(topic_registry *reg, int root, const char *dname, const topic *live, int32_t index) {
    const char *rootp = reg->cfg->log_dirs.items[root];
    char dir[4400], hex[33] = "", aside[LOGDIRS_NAME_MAX + 1];
    snprintf(dir, sizeof dir, "%s/%s", rootp, dname);
    kuuid owner = {{0}};
    int found = logdirs_read_owner(dir, &owner);
    if (live != NULL && (found == 0 || (found == 1 && memcmp(owner.b, live->id.b, 16) == 0)))
        return 0;
    if (found == 1)
        logdirs_uuid_hex(owner, hex);
    if (found == 1 && (id_was_deleted(reg, owner) || find_intent(reg, owner, index) != NULL)) {
        bool deleted = id_was_deleted(reg, owner);
        LOG_INFO("topics", "removing %s (topic id %s): %s", dir, hex,
                 deleted ? "its topic was deleted" : "left over from a creation the broker did not finish");
        if (logdirs_remove(dir) != 0) {
            LOG_ERROR("topics", "cannot remove %s: %s", dir, strerror(errno));
            return -1;
        }
        return 1;
    }
    if (logdirs_set_aside(rootp, dname, found == 1 ? &owner : NULL, aside, sizeof aside) != 0) {
        LOG_ERROR("topics", "cannot set aside %s: %s; it is left as it is", dir, strerror(errno));
        return -1;
    }
    char want[33] = "none";
    if (live != NULL)
        logdirs_uuid_hex(live->id, want);
    char what[80];
    snprintf(what, sizeof what, "%s%s", found == 1 ? "holds topic id " : "has ",
             found == 1   ? hex
             : found == 0 ? "no partition.metadata"
                          : "an unreadable partition.metadata");
    LOG_ERROR("topics",
              "log directory %s %s, but %s; it is set aside as %s/%s with its data untouched "
              "(docs/operations.md says how to restore or remove it)",
              dir, what,
              live == NULL ? "no live partition has that name"
              : found == 1 ? "its topic has another id"
                           : "so it cannot be shown to be its topic's",
              rootp, aside);
    if (live != NULL)
        LOG_ERROR("topics", "topic %s (id %s) partition %d starts empty in a new directory", live->name, want,
                  index);
    add_stray(reg, root, aside, found == 1, owner, index);
    return 1;
}

/* Finds the root holding <name>-<index>, or picks one for a new partition.
 * Returns the root's index; *exists says whether the directory is there. */
static int partition_root(topic_registry *reg, const char *name, int32_t index, char *dir, size_t dirn,
                          bool *exists) {
    const config_list *roots = &reg->cfg->log_dirs;
    for (int i = 0; i < roots->n; i++) {
        snprintf(dir, dirn, "%s/%s-%d", roots->items[i], name, index);
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            *exists = true;
            return i;
        }
    }
    *exists = false;
    int pick = plog_dir_pick(reg->storage, roots->items, roots->n);
    if (pick < 0)
        pick = 0;
    snprintf(dir, dirn, "%s/%s-%d", roots->items[pick], name, index);
    return pick;
}

/* A partition of t, offline (log NULL), placed in the root that holds its
 * directory or, for a new one, in the root picked for it; the root never
 * changes afterwards. NULL when memory runs out. */
static partition *partition_new(topic_registry *reg, topic *t, int32_t index) {
    char dir[4096];
    bool exists;
    int root = partition_root(reg, t->name, index, dir, sizeof dir, &exists);
    partition *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->topic = t;
    p->index = index;
    p->root_index = root;
    p->root = reg->cfg->log_dirs.items[root];
    atomic_init(&p->log, NULL);
    return p;
}

/* Opens p's log in its root - settling a directory there that is not its
 * own, creating a missing one with its owner file - and publishes it. A
 * created directory is made durable at once with sync_root, else the caller
 * syncs the roots (logdirs_sync) once for many partitions. Returns 0 or a
 * storage error (logged). Start-up, or under change_mu. */
static int partition_attach(topic_registry *reg, partition *p, const plog_config *pc, bool sync_root) {
    assert(partition_log(p) == NULL);
    const topic *t = p->topic;
    char dir[4400], dname[LOGDIRS_NAME_MAX + 1];
    snprintf(dname, sizeof dname, "%s-%d", t->name, p->index);
    snprintf(dir, sizeof dir, "%s/%s", p->root, dname);
    struct stat st;
    bool exists = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    int settled = exists ? settle_dir(reg, p->root_index, dname, t, p->index) : 0;
    if (settled < 0)
        return STORAGE_KAFKA_STORAGE_ERROR; /* neither its own nor out of the way */
    exists = exists && settled == 0;
    kuuid owner;
    bool owned = exists && logdirs_read_owner(dir, &owner) == 1;
    if (!exists) {
        if (logdirs_create(p->root, dname, t->id) != 0 || (sync_root && logdirs_sync(p->root) != 0)) {
            LOG_ERROR("topics", "cannot create %s: %s", dir, strerror(errno));
            return STORAGE_KAFKA_STORAGE_ERROR;
        }
        owned = true;
    }
    int err = 0;
    plog *l = plog_open(reg->storage, dir, pc, reg->was_clean[p->root_index], &err);
    if (l && !owned && logdirs_write_owner(dir, t->id) != 0) {
        LOG_ERROR("topics", "cannot write %s/%s: %s", dir, LOGDIRS_OWNER_FILE, strerror(errno));
        plog_close(l);
        l = NULL;
        err = STORAGE_KAFKA_STORAGE_ERROR;
    }
    if (l == NULL) {
        LOG_ERROR("topics", "cannot open log of partition %s-%d in %s: %s; it stays offline", t->name,
                  p->index, dir, storage_strerror(err));
        return err ? err : STORAGE_KAFKA_STORAGE_ERROR;
    }
    atomic_store_explicit(&p->log, l, memory_order_release);
    return 0;
}

/* Schedules the next retry of an offline partition (housekeeping). */
static void partition_backoff(partition *p, int64_t now_ms) {
    int32_t b = p->retry_backoff_ms ? p->retry_backoff_ms * 2 : TOPICS_RETRY_MIN_MS;
    p->retry_backoff_ms = b > TOPICS_RETRY_MAX_MS ? TOPICS_RETRY_MAX_MS : b;
    p->retry_at_ms = now_ms + p->retry_backoff_ms;
}

/* Creates partitions [from, to) of t in t->parts (already sized). fresh (a
 * creation a client asked for): all or nothing - on a failure the logs
 * opened here are deleted again and the error returned. Otherwise (the
 * partitions of a recorded topic, at start): a log that cannot be opened
 * leaves its partition offline, retried later, and only running out of
 * memory fails. A topic whose stored config is unusable (cfg_error) opens
 * no log. */
static int open_partitions(topic_registry *reg, topic *t, int32_t from, int32_t to, bool fresh) {
    plog_config pc;
    plog_config_from_topic(&t->cfg, &pc);
    int64_t now = clock_wall_ms();
    int32_t i = from;
    for (; i < to; i++) {
        partition *p = partition_new(reg, t, i);
        if (p == NULL)
            goto fail;
        t->parts[i] = p;
        if (t->cfg_error != NULL)
            continue;
        if (partition_attach(reg, p, &pc, !fresh) != 0) {
            if (fresh) {
                i++;
                goto fail;
            }
            partition_backoff(p, now);
        }
    }
    /* New directories are durable before their topic's record is written. */
    for (int r = 0; fresh && r < reg->cfg->log_dirs.n; r++)
        if (logdirs_sync(reg->cfg->log_dirs.items[r]) != 0) {
            LOG_ERROR("topics", "cannot fsync %s: %s", reg->cfg->log_dirs.items[r], strerror(errno));
            goto fail;
        }
    return 0;
fail:
    for (int32_t k = from; k < i; k++) {
        plog *l = t->parts[k] ? partition_log(t->parts[k]) : NULL;
        if (l != NULL && fresh)
            partition_delete_log(l);
        else if (l != NULL)
            plog_close(l);
        free(t->parts[k]);
        t->parts[k] = NULL;
    }
    return KAFKA_ERR_KAFKA_STORAGE_ERROR;
}

/* ---- metadata records ------------------------------------------------- */

typedef struct meta_change {
    int type;
    kuuid id;
    kstr name;
    int32_t partitions; /* TOPIC, PARTITIONS: the count; CREATING: the end of the range */
    int32_t from;       /* CREATING: the first partition */
    int16_t replication_factor;
    bool internal;
    bool replace_all;
    int n_cfg;
    const char *const *keys;
    const char *const *values; /* entries may be NULL (delete) for CONFIG */
    kstr *rkeys, *rvalues;     /* decoded form (replay) */
} meta_change;

static size_t change_size(const meta_change *c) {
    size_t n = 1 + 1 + 16;
    switch (c->type) {
    case REC_TOPIC:
        n += 2 + (size_t)c->name.len + 4 + 2 + 1 + 4;
        break;
    case REC_PARTITIONS:
        n += 4;
        break;
    case REC_CREATING:
        n += 8;
        break;
    case REC_CONFIG:
        n += 1 + 4;
        break;
    }
    for (int i = 0; i < c->n_cfg; i++)
        n += 2 + strlen(c->keys[i]) + 2 + (c->values[i] ? strlen(c->values[i]) : 0);
    return n;
}

static int encode_change(const meta_change *c, uint8_t *buf, size_t cap, size_t *len) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i8(&w, 0);
    wire_write_i8(&w, (int8_t)c->type);
    wire_write_uuid(&w, c->id);
    if (c->type == REC_TOPIC) {
        wire_write_string(&w, c->name, false, false);
        wire_write_i32(&w, c->partitions);
        wire_write_i16(&w, c->replication_factor);
        wire_write_bool(&w, c->internal);
    } else if (c->type == REC_PARTITIONS) {
        wire_write_i32(&w, c->partitions);
    } else if (c->type == REC_CREATING) {
        wire_write_i32(&w, c->from);
        wire_write_i32(&w, c->partitions);
    } else if (c->type == REC_CONFIG) {
        wire_write_bool(&w, c->replace_all);
    }
    if (c->type == REC_TOPIC || c->type == REC_CONFIG) {
        wire_write_i32(&w, c->n_cfg);
        for (int i = 0; i < c->n_cfg; i++) {
            wire_write_string(&w, kstr_c(c->keys[i]), false, false);
            wire_write_string(&w, c->values[i] ? kstr_c(c->values[i]) : KSTR_NULL, false,
                              c->type == REC_CONFIG);
        }
    }
    *len = w.len;
    return w.err;
}

static int decode_change(const uint8_t *p, size_t n, arena *a, meta_change *c) {
    memset(c, 0, sizeof *c);
    wire_reader r;
    wire_reader_init(&r, p, n);
    int8_t version = wire_read_i8(&r);
    c->type = wire_read_i8(&r);
    c->id = wire_read_uuid(&r);
    if (r.err || version != 0)
        return WIRE_EINVAL;
    if (c->type == REC_TOPIC) {
        c->name = wire_read_string(&r, false, false);
        c->partitions = wire_read_i32(&r);
        c->replication_factor = wire_read_i16(&r);
        c->internal = wire_read_bool(&r);
    } else if (c->type == REC_PARTITIONS) {
        c->partitions = wire_read_i32(&r);
    } else if (c->type == REC_CREATING) {
        c->from = wire_read_i32(&r);
        c->partitions = wire_read_i32(&r);
    } else if (c->type == REC_CONFIG) {
        c->replace_all = wire_read_bool(&r);
    } else if (c->type != REC_DELETE) {
        return WIRE_EINVAL;
    }
    if (c->type == REC_TOPIC || c->type == REC_CONFIG) {
        int32_t k = wire_read_i32(&r);
        if (r.err || k < 0 || k > TOPIC_CONFIGS_MAX)
            return WIRE_EINVAL;
        c->n_cfg = k;
        c->rkeys = arena_calloc(a, (size_t)k + 1, sizeof(kstr));
        c->rvalues = arena_calloc(a, (size_t)k + 1, sizeof(kstr));
        if (!c->rkeys || !c->rvalues)
            return WIRE_ENOMEM;
        for (int i = 0; i < k; i++) {
            c->rkeys[i] = wire_read_string(&r, false, false);
            c->rvalues[i] = wire_read_string(&r, false, c->type == REC_CONFIG);
        }
    }
    if (r.err == WIRE_OK && wire_remaining(&r) != 0)
        return WIRE_EINVAL; /* not a record this version wrote */
    return r.err;
}

/* Brings the metadata log back when it went offline (change_mu held). */
static void retry_meta(topic_registry *reg, int64_t now_ms) {
    if (!plog_is_offline(reg->meta) || now_ms < reg->meta_retry_at_ms)
        return;
    if (plog_reopen(reg->meta) == 0) {
        /* A change whose append reached the disk but whose flush failed was
         * refused to its client and never applied: it must not come back. */
        int64_t end = plog_end_offset(reg->meta);
        if (end > reg->meta_end &&
            (plog_truncate(reg->meta, reg->meta_end) != 0 || plog_flush(reg->meta, now_ms) != 0)) {
            LOG_ERROR("topics", "cannot cut refused changes from the metadata log; it stays offline");
        } else {
            if (end < reg->meta_end)
                LOG_ERROR("topics",
                          "the metadata log came back shorter (%lld records) than was written (%lld)",
                          (long long)end, (long long)reg->meta_end);
            reg->meta_end = plog_end_offset(reg->meta);
            reg->meta_backoff_ms = 0;
            LOG_INFO("topics", "the metadata log is back online");
            return;
        }
    }
    int32_t b = reg->meta_backoff_ms ? reg->meta_backoff_ms * 2 : TOPICS_RETRY_MIN_MS;
    reg->meta_backoff_ms = b > TOPICS_RETRY_MAX_MS ? TOPICS_RETRY_MAX_MS : b;
    reg->meta_retry_at_ms = now_ms + reg->meta_backoff_ms;
}

/* Appends one change to the metadata log and fsyncs it. */
static int meta_append(topic_registry *reg, const meta_change *c) {
    static const char *names[] = {"", "topic", "partitions", "config", "delete", "creating"};
    size_t cap = change_size(c);
    if (cap > META_RECORD_MAX)
        return KAFKA_ERR_POLICY_VIOLATION;
    arena a;
    arena_init(&a, cap * 2 + (64 << 10));
    uint8_t *val = arena_alloc(&a, cap);
    size_t len = 0;
    int rc = KAFKA_ERR_KAFKA_STORAGE_ERROR;
    if (val == NULL || encode_change(c, val, cap, &len) != WIRE_OK)
        goto out;
    batch_build_record rec = {.key = {(const uint8_t *)names[c->type], (int32_t)strlen(names[c->type])},
                              .value = {val, (int32_t)len},
                              .timestamp = clock_wall_ms()};
    batch_build_opts o = batch_build_defaults();
    uint8_t *batch;
    size_t blen;
    if (batch_build(&o, &rec, 1, &a, &batch, &blen) != BATCH_OK)
        goto out;
    plog_append_info info;
    retry_meta(reg, clock_wall_ms()); /* change_mu is held */
    int err = plog_append(reg->meta, batch, blen, 0, clock_wall_ms(), &info);
    if (err == 0)
        err = plog_flush(reg->meta, clock_wall_ms());
    if (err != 0) {
        LOG_ERROR("topics", "writing to the metadata log failed: %s", storage_strerror(err));
        goto out;
    }
    reg->meta_end = plog_end_offset(reg->meta);
    rc = 0;
out:
    arena_reset(&a);
    return rc;
}

/* ---- applying changes ------------------------------------------------- */

static int table_add(topic_registry *reg, topic *t) {
    if (reg->n_topics == reg->cap_topics) {
        int ncap = reg->cap_topics ? reg->cap_topics * 2 : 64;
        topic **nt = realloc(reg->topics, (size_t)ncap * sizeof *nt);
        if (nt == NULL)
            return -1;
        reg->topics = nt;
        reg->cap_topics = ncap;
    }
    reg->topics[reg->n_topics++] = t;
    reg->n_partitions += t->n_partitions;
    return 0;
}

static void table_remove(topic_registry *reg, topic *t) {
    for (int i = 0; i < reg->n_topics; i++)
        if (reg->topics[i] == t) {
            reg->topics[i] = reg->topics[--reg->n_topics];
            reg->n_partitions -= t->n_partitions;
            return;
        }
}

/* Builds the override list and effective config; fills msg on error. */
static int build_config(topic_registry *reg, const char *const *keys, const char *const *values, int n,
                        topic_config_override **out_o, topic_config *tc, char *msg, size_t msgn) {
    if (n < 0 || n > TOPIC_CONFIGS_MAX) {
        snprintf(msg, msgn, "at most %d config overrides per topic", TOPIC_CONFIGS_MAX);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    for (int i = 0; i < n; i++)
        if (keys[i] == NULL || values[i] == NULL) {
            snprintf(msg, msgn, "config '%s' has a null value", keys[i] ? keys[i] : "(null)");
            return KAFKA_ERR_INVALID_CONFIG;
        }
    int rc = topic_config_build(tc, reg->cfg, keys, values, (size_t)n, msg, msgn);
    if (rc != 0)
        return KAFKA_ERR_INVALID_CONFIG;
    /* The rows share storage's limits (log.h), so this holds unless a
     * setting derived from several keys breaks one: refuse it here rather
     * than let the partition logs refuse to open. */
    plog_config pc;
    plog_config_from_topic(tc, &pc);
    char why[160];
    if (plog_config_explain(&pc, why, sizeof why) != 0) {
        snprintf(msg, msgn, "the partition logs cannot use this configuration: %s", why);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    topic_config_override *o = n ? calloc((size_t)n, sizeof *o) : NULL;
    if (n && o == NULL)
        return KAFKA_ERR_KAFKA_STORAGE_ERROR;
    for (int i = 0; i < n; i++) {
        o[i].key = strdup(keys[i]);
        o[i].value = strdup(values[i]);
        if (!o[i].key || !o[i].value) {
            topic_free_overrides(o, n);
            return KAFKA_ERR_KAFKA_STORAGE_ERROR;
        }
    }
    *out_o = o;
    return 0;
}

static topic *topic_new(kstr name, kuuid id, int32_t partitions, int16_t rf, bool internal) {
    topic *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    memcpy(t->name, name.ptr, (size_t)name.len);
    t->name[name.len] = '\0';
    t->id = id;
    t->n_partitions = partitions;
    t->replication_factor = rf;
    t->internal = internal;
    t->parts = calloc((size_t)(partitions > 0 ? partitions : 1), sizeof *t->parts);
    atomic_init(&t->refs, 1); /* the registry's reference */
    if (t->parts == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

/* Merges a change into t's overrides, as both the live path and the
 * replay apply it: replace_all starts from nothing; a NULL value deletes its
 * key, others set it. mk/mv (room for TOPIC_CONFIGS_MAX * 2) end up pointing
 * into t's overrides and the change. Returns the merged count. */
static int merge_overrides(const topic *t, const char *const *keys, const char *const *values, int n,
                           bool replace_all, const char **mk, const char **mv) {
    const int cap = TOPIC_CONFIGS_MAX * 2;
    int m = 0;
    for (int i = 0; !replace_all && i < t->n_overrides && m < cap; i++) {
        mk[m] = t->overrides[i].key;
        mv[m++] = t->overrides[i].value;
    }
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < m && strcmp(mk[k], keys[i]) != 0)
            k++;
        if (values[i] == NULL) {
            if (k < m) {
                mk[k] = mk[m - 1];
                mv[k] = mv[--m];
            }
        } else if (k < m) {
            mv[k] = values[i];
        } else if (m < cap) {
            mk[m] = keys[i];
            mv[m++] = values[i];
        }
    }
    return m;
}

/* Keeps stored overrides this version cannot use as they are (so
 * DescribeConfigs shows them and AlterConfigs can fix them) and marks the
 * topic's partitions offline until then (topic.cfg_error). -1 on memory. */
static int mark_unusable(topic_registry *reg, topic *t, const char *const *keys, const char *const *values,
                         int n, const char *why) {
    topic_config_override *o = n > 0 ? overrides_dup(keys, values, n) : NULL;
    char *err = strdup(why);
    if ((n > 0 && o == NULL) || err == NULL) {
        topic_free_overrides(o, n);
        free(err);
        return -1;
    }
    topic_free_overrides(t->overrides, t->n_overrides);
    t->overrides = o;
    t->n_overrides = n;
    topic_config_init(&t->cfg, reg->cfg);
    free(t->cfg_error);
    t->cfg_error = err;
    return 0;
}

/* Drops stored keys this version does not know (a later version's, or one
 * since removed): they cannot matter to it, and must not keep a topic
 * offline. Compacts keys/values in place; returns the new count. */
static int drop_unknown_keys(const char *topic_name, const char **keys, const char **values, int n) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (config_find_topic(keys[i]) == NULL) {
            LOG_WARN("topics", "topic %s: ignoring stored config %s, which this version does not know",
                     topic_name, keys[i]);
            continue;
        }
        keys[m] = keys[i];
        values[m++] = values[i];
    }
    return m;
}

/* ---- replay ----------------------------------------------------------- */

static void add_intent(topic_registry *reg, kuuid id, int32_t from, int32_t to) {
    if (!grow_array((void **)&reg->intents, reg->n_intents, &reg->cap_intents, sizeof(intent), INTENTS_MAX)) {
        /* Forgetting is safe: such leftovers are set aside instead. */
        LOG_WARN("topics", "too many unfinished creations in the metadata log to track");
        return;
    }
    reg->intents[reg->n_intents++] = (intent){id, from, to};
}

/* A topic or partitions record for id with `count` partitions completes the
 * creations of id it covers. */
static void resolve_intents(topic_registry *reg, kuuid id, int32_t count) {
    for (int i = 0; i < reg->n_intents;) {
        if (memcmp(reg->intents[i].id.b, id.b, 16) == 0 && reg->intents[i].to <= count)
            reg->intents[i] = reg->intents[--reg->n_intents];
        else
            i++;
    }
}

/* Applies one record read back from the metadata log. -1 (err filled) only
 * when memory runs out: a record must never be dropped silently. */
static int replay_change(topic_registry *reg, const meta_change *c, arena *a, char *err, size_t errn) {
    char msg[TOPICS_MSG_MAX];
    topic *t = NULL;
    for (int i = 0; i < reg->n_topics; i++)
        if (memcmp(reg->topics[i]->id.b, c->id.b, 16) == 0)
            t = reg->topics[i];
    const char **keys = NULL, **values = NULL;
    if (c->n_cfg) {
        keys = arena_calloc(a, (size_t)c->n_cfg, sizeof *keys);
        values = arena_calloc(a, (size_t)c->n_cfg, sizeof *values);
        if (!keys || !values)
            goto nomem;
        for (int i = 0; i < c->n_cfg; i++) {
            keys[i] = arena_alloc(a, (size_t)c->rkeys[i].len + 1);
            if (keys[i])
                memcpy((char *)keys[i], c->rkeys[i].ptr, (size_t)c->rkeys[i].len);
            if (c->rvalues[i].len >= 0) {
                values[i] = arena_alloc(a, (size_t)c->rvalues[i].len + 1);
                if (values[i] && c->rvalues[i].len)
                    memcpy((char *)values[i], c->rvalues[i].ptr, (size_t)c->rvalues[i].len);
            }
            if (!keys[i] || (c->rvalues[i].len >= 0 && !values[i]))
                goto nomem;
        }
    }
    switch (c->type) {
    case REC_TOPIC: {
        if (t != NULL || c->name.len <= 0 || c->name.len > TOPIC_NAME_MAX || c->partitions <= 0 ||
            c->partitions > TOPIC_PARTITIONS_MAX)
            break;
        if (topics_metadata_name(c->name)) {
            /* Older versions let a client create it; its partition 0 would
             * be the metadata log's own directory. */
            LOG_ERROR("topics",
                      "the metadata log records a topic named %.*s, the metadata log's own name; it is not "
                      "served and its directories are set aside",
                      c->name.len, c->name.ptr);
            break;
        }
        bool internal = topics_internal_name(c->name);
        topic *nt = topic_new(c->name, c->id, c->partitions, c->replication_factor, internal);
        if (nt == NULL)
            goto nomem;
        if (internal && c->n_cfg > 0) {
            nt->pinned = overrides_dup(keys, values, c->n_cfg);
            nt->n_pinned = nt->pinned ? c->n_cfg : 0;
        }
        int nk = drop_unknown_keys(nt->name, keys, values, c->n_cfg);
        if (build_config(reg, keys, values, nk, &nt->overrides, &nt->cfg, msg, sizeof msg) == 0) {
            nt->n_overrides = nk;
        } else if (mark_unusable(reg, nt, keys, values, nk, msg) != 0) {
            topic_destroy(reg, nt, false, NULL);
            goto nomem;
        }
        if (table_add(reg, nt) != 0) {
            topic_destroy(reg, nt, false, NULL);
            goto nomem;
        }
        resolve_intents(reg, c->id, c->partitions);
        break;
    }
    case REC_PARTITIONS:
        if (t && c->partitions > t->n_partitions && c->partitions <= TOPIC_PARTITIONS_MAX) {
            partition **np = realloc(t->parts, (size_t)c->partitions * sizeof *np);
            if (np == NULL)
                goto nomem;
            for (int32_t i = t->n_partitions; i < c->partitions; i++)
                np[i] = NULL;
            t->parts = np;
            reg->n_partitions += c->partitions - t->n_partitions;
            t->n_partitions = c->partitions;
        }
        if (t)
            resolve_intents(reg, c->id, c->partitions);
        break;
    case REC_CONFIG:
        if (t) {
            topic_config_override *o = NULL;
            topic_config tc;
            const char *mk[TOPIC_CONFIGS_MAX * 2], *mv[TOPIC_CONFIGS_MAX * 2];
            int n = merge_overrides(t, keys, values, c->n_cfg, c->replace_all, mk, mv);
            n = drop_unknown_keys(t->name, mk, mv, n);
            if (build_config(reg, mk, mv, n, &o, &tc, msg, sizeof msg) == 0) {
                topic_free_overrides(t->overrides, t->n_overrides);
                t->overrides = o;
                t->n_overrides = n;
                t->cfg = tc;
                free(t->cfg_error);
                t->cfg_error = NULL;
            } else if (mark_unusable(reg, t, mk, mv, n, msg) != 0) {
                goto nomem;
            }
        }
        break;
    case REC_CREATING:
        if (c->from >= 0 && c->partitions > c->from && c->partitions <= TOPIC_PARTITIONS_MAX)
            add_intent(reg, c->id, c->from, c->partitions);
        break;
    case REC_DELETE:
        remember_deleted(reg, c->id);
        resolve_intents(reg, c->id, INT32_MAX);
        if (t) {
            table_remove(reg, t);
            t->deleted = true;
            topic_release(reg, t); /* no logs are open yet: the start-up scan removes them */
        }
        break;
    }
    return 0;
nomem:
    snprintf(err, errn, "out of memory applying it");
    return -1;
}

/* metalog_scan's callback: one record of the metadata log, in order. */
static int replay_record(void *ctx, int64_t offset, kbytes key, kbytes value, char *err, size_t errn) {
    (void)offset;
    topic_registry *reg = ctx;
    arena a;
    arena_init(&a, (size_t)(value.len > 0 ? value.len : 0) * 4 + (256 << 10));
    meta_change c;
    int rc;
    if (value.len <= 0 || decode_change(value.ptr, (size_t)value.len, &a, &c) != WIRE_OK) {
        snprintf(err, errn, "a '%.*s' record this version cannot read (written by a newer one?)",
                 key.len > 0 && key.len < 32 ? key.len : 0, key.len > 0 ? (const char *)key.ptr : "");
        rc = -1;
    } else {
        rc = replay_change(reg, &c, &a, err, errn);
    }
    arena_reset(&a);
    return rc;
}

/* Reads and applies the metadata log, then opens it for appending. A log
 * that is damaged anywhere but in a torn tail stops the broker (metalog.h):
 * read as "fewer topics", it would make their directories look unknown. */
static int open_meta_log(topic_registry *reg, const char *dir, metalog_result *res) {
    char err[METALOG_ERR_MAX];
    if (metalog_scan(reg->storage, dir, reg->was_clean[0], replay_record, reg, res, err, sizeof err) != 0) {
        LOG_ERROR("topics", "the metadata log cannot be trusted: %s", err);
        LOG_ERROR("topics",
                  "the broker stops rather than treat topics as missing; restore %s from a backup "
                  "or see docs/operations.md (\"A damaged metadata log\")",
                  dir);
        return -1;
    }
    if (res->torn_tail)
        LOG_WARN("topics",
                 "the metadata log ends in a torn write at offset %lld (never acknowledged); it is cut",
                 (long long)res->end_offset);
    plog_config pc;
    plog_config_default(&pc);
    pc.retention_ms = -1;
    pc.retention_bytes = -1;
    pc.segment_bytes = 64 << 20;
    for (int attempt = 0; attempt < 2; attempt++) {
        int err_code = 0;
        bool clean = reg->was_clean[0] && !res->torn_tail && attempt == 0;
        reg->meta = plog_open(reg->storage, dir, &pc, clean, &err_code);
        if (reg->meta == NULL) {
            LOG_ERROR("topics", "cannot open the metadata log in %s: %s", dir, storage_strerror(err_code));
            return -1;
        }
        if (plog_end_offset(reg->meta) == res->end_offset && plog_start_offset(reg->meta) == 0)
            break;
        /* Storage disagrees with what was read, which leaves only its derived
         * files (indexes, checkpoint) to blame: rebuild them once. */
        LOG_WARN("topics",
                 "the metadata log's indexes say it ends at offset %lld, its records at %lld; "
                 "rebuilding them",
                 (long long)plog_end_offset(reg->meta), (long long)res->end_offset);
        plog_close(reg->meta);
        reg->meta = NULL;
        if (attempt == 1 || plog_drop_derived_files(reg->storage, dir) != 0) {
            LOG_ERROR("topics", "the metadata log in %s cannot be opened as it was read", dir);
            return -1;
        }
    }
    if (plog_end_offset(reg->meta) != res->end_offset) {
        LOG_ERROR("topics", "the metadata log in %s cannot be opened as it was read", dir);
        return -1;
    }
    reg->meta_end = plog_end_offset(reg->meta);
    LOG_INFO("topics", "replayed %lld metadata records: %d topics, %d partitions", (long long)res->records,
             reg->n_topics, reg->n_partitions);
    return 0;
}

/* The names of the entries of dir, malloc'd (so the directory can change
 * while they are handled). NULL with *n = 0 when empty or unreadable. */
static char **list_names(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    char **v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (!grow_array((void **)&v, *n, &cap, sizeof *v, INT32_MAX / 2))
            break;
        if ((v[*n] = strdup(e->d_name)) != NULL)
            (*n)++;
    }
    closedir(d);
    return v;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool is_dir(const char *root, const char *name) {
    char path[4400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", root, name);
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Partition directories under the roots (the empty-metadata check). */
static int count_partition_dirs(topic_registry *reg, char *example, size_t examplen) {
    int count = 0;
    for (int r = 0; r < reg->cfg->log_dirs.n; r++) {
        const char *root = reg->cfg->log_dirs.items[r];
        int n;
        char **names = list_names(root, &n);
        for (int i = 0; i < n; i++) {
            kstr name;
            int32_t idx;
            if (strcmp(names[i], META_LOG_NAME) != 0 && logdirs_parse_partition(names[i], &name, &idx) &&
                is_dir(root, names[i]) && count++ == 0)
                snprintf(example, examplen, "%s/%s", root, names[i]);
        }
        free_names(names, n);
    }
    return count;
}

/* Hidden directories a crash left inside logdirs_create: never a
 * partition's yet, so they hold no data. */
static void remove_creating_leftovers(const char *root) {
    DIR *d = opendir(root);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[4400];
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (!logdirs_parse_creating(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (logdirs_remove(path) == 0)
            n++;
    }
    closedir(d);
    if (n > 0)
        LOG_INFO("topics", "removed %d partition directories of %s whose creation a stop interrupted", n,
                 root);
}

/* After the replay and before any partition log opens: every directory
 * under the roots is a live partition's (left for partition_open), a
 * set-aside one (listed and logged, at every start), or settled here:
 * removed when the metadata log explains it, set aside otherwise. */
static void settle_log_dirs(topic_registry *reg) {
    const config_list *roots = &reg->cfg->log_dirs;
    int strays_seen = 0;
    for (int r = 0; r < roots->n; r++) {
        remove_creating_leftovers(roots->items[r]);
        int n;
        char **names = list_names(roots->items[r], &n);
        for (int i = 0; i < n; i++) {
            const char *dn = names[i];
            kstr name;
            int32_t idx;
            kuuid owner = {{0}};
            bool known = false;
            if (!is_dir(roots->items[r], dn))
                continue;
            if (strcmp(dn, META_LOG_NAME) == 0) {
                if (r != 0)
                    LOG_WARN("topics",
                             "%s/%s is a metadata log, but only the first of log.dirs holds it (was "
                             "the order of log.dirs changed?); it is left alone",
                             roots->items[r], dn);
                continue;
            }
            if (logdirs_parse_stray(dn, &owner, &known, &idx)) {
                int64_t bytes = add_stray(reg, r, dn, known, owner, idx);
                if (strays_seen++ < STRAYS_LOGGED)
                    LOG_WARN("topics",
                             "%s/%s is a set-aside log directory (%lld bytes), kept until an operator "
                             "restores or removes it",
                             roots->items[r], dn, (long long)bytes);
                continue;
            }
            if (!logdirs_parse_partition(dn, &name, &idx)) {
                LOG_WARN("topics", "%s/%s is not a partition directory; it is left alone", roots->items[r],
                         dn);
                continue;
            }
            topic *live = find_locked(reg, name);
            if (live != NULL && idx < live->n_partitions) {
                /* Only the first root holding it is the partition's. */
                char first[4096];
                bool exists;
                if (partition_root(reg, live->name, idx, first, sizeof first, &exists) != r)
                    live = NULL;
            } else {
                live = NULL;
            }
            settle_dir(reg, r, dn, live, idx);
        }
        free_names(names, n);
    }
    if (strays_seen > STRAYS_LOGGED)
        LOG_WARN("topics",
                 "%d set-aside log directories in all (DescribeLogDirs and `sluice log-dirs` list them)",
                 strays_seen);
}

/* ---- meta.properties -------------------------------------------------- */

static void make_cluster_id(char *out, size_t n) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[22];
    fill_random(raw, sizeof raw);
    size_t i = 0;
    for (; i < 22 && i + 1 < n; i++)
        out[i] = alphabet[raw[i] & 63];
    out[i] = '\0';
}

/* Reads cluster.id from root/meta.properties, or writes a new file (and
 * then returns 1: the directory is new). */
static int meta_properties(topic_registry *reg, const char *root) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, META_PROPERTIES);
    FILE *f = fopen(path, "r");
    bool existed = f != NULL;
    if (f) {
        char line[512];
        int node = -1;
        char cid[32] = "";
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strncmp(line, "cluster.id=", 11) == 0)
                snprintf(cid, sizeof cid, "%.*s", (int)sizeof cid - 1, line + 11);
            else if (strncmp(line, "node.id=", 8) == 0)
                node = atoi(line + 8);
        }
        fclose(f);
        if (node >= 0 && node != reg->cfg->node_id) {
            LOG_ERROR("topics", "%s says node.id=%d but this broker is node.id=%d; refusing to start", path,
                      node, reg->cfg->node_id);
            return -1;
        }
        if (cid[0]) {
            if (reg->cluster_id[0] && strcmp(reg->cluster_id, cid) != 0) {
                LOG_ERROR("topics", "%s belongs to cluster %s, another log dir to %s; refusing to start",
                          path, cid, reg->cluster_id);
                return -1;
            }
            snprintf(reg->cluster_id, sizeof reg->cluster_id, "%s", cid);
            return 0;
        }
    }
    if (!reg->cluster_id[0])
        make_cluster_id(reg->cluster_id, sizeof reg->cluster_id);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        LOG_ERROR("topics", "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# Written by sluiced; identifies this log directory.\nversion=1\ncluster.id=%s\nnode.id=%d\n",
            reg->cluster_id, reg->cfg->node_id);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        LOG_ERROR("topics", "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return existed ? 0 : 1;
}

/* ---- open / close ----------------------------------------------------- */

/* Sizes the partition budget from the open-file limit (and the segment
 * descriptor cache with it), once at start. */
static void size_fd_budget(topic_registry *reg) {
    struct rlimit rl;
    reg->fd_limit = -1;
    reg->fd_partitions_max = INT64_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    int64_t lim = (int64_t)rl.rlim_cur;
    int64_t cache = lim / 8 < FD_CACHE_MAX ? lim / 8 : FD_CACHE_MAX;
    int64_t clients = lim / 4 < reg->cfg->max_connections ? lim / 4 : reg->cfg->max_connections;
    storage_set_fd_limit(reg->storage, (int)cache);
    reg->fd_limit = lim;
    reg->fd_partitions_max = lim - FD_RESERVE_FIXED - cache - clients;
    if (reg->fd_partitions_max < 0)
        reg->fd_partitions_max = 0;
}

/* Refuses more partitions than the open-file limit leaves room for. */
static int check_fd_budget(const topic_registry *reg, int64_t have, int64_t adding, char *msg, size_t msgn) {
    if (have + adding <= reg->fd_partitions_max)
        return 0;
    snprintf(
        msg, msgn,
        "%lld more partitions would not fit the broker's open-file limit: it holds %lld, and RLIMIT_NOFILE "
        "%lld leaves room for %lld after the descriptors kept for clients and the broker itself (raise "
        "the limit: ulimit -n, systemd LimitNOFILE=)",
        (long long)adding, (long long)have, (long long)reg->fd_limit, (long long)reg->fd_partitions_max);
    return KAFKA_ERR_POLICY_VIOLATION;
}

topic_registry *topics_open(const broker_config *cfg, storage_ctx *storage) {
    topic_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        return NULL;
    reg->cfg = cfg;
    reg->storage = storage;
    pthread_rwlock_init(&reg->lock, NULL);
    pthread_mutex_init(&reg->change_mu, NULL);
    const config_list *roots = &cfg->log_dirs;
    for (int i = 0; i < roots->n; i++) {
        int fresh = meta_properties(reg, roots->items[i]);
        if (fresh < 0)
            goto err;
        if (plog_dir_begin(reg->storage, roots->items[i], &reg->was_clean[i]) != 0) {
            LOG_ERROR("topics", "cannot prepare log directory %s", roots->items[i]);
            goto err;
        }
        if (fresh)
            reg->was_clean[i] = true; /* nothing to recover in a new directory */
        if (!reg->was_clean[i])
            LOG_INFO("topics", "log directory %s was not shut down cleanly; recovering its logs",
                     roots->items[i]);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", roots->items[0], META_LOG_NAME);
    metalog_result res;
    if (open_meta_log(reg, dir, &res) != 0)
        goto err;
    if (res.records == 0) {
        /* A metadata log that is missing or empty while partitions exist
         * was lost (or log.dirs changed): reading it as "no topics" would
         * set every directory aside. */
        char example[4400] = "";
        int n = count_partition_dirs(reg, example, sizeof example);
        if (n > 0) {
            LOG_ERROR("topics",
                      "the metadata log %s is %s, but %d partition directories exist (such as %s); the "
                      "broker will not start without the record of which topics they belong to. Restore the "
                      "metadata log, or move the directories away to start afresh (docs/operations.md)",
                      dir, res.exists ? "empty" : "missing", n, example);
            goto err;
        }
    }
    sort_deleted(reg);
    settle_log_dirs(reg);
    size_fd_budget(reg);
    if (reg->n_partitions > reg->fd_partitions_max)
        LOG_WARN(
            "topics",
            "%d partitions, but the open-file limit (RLIMIT_NOFILE %lld) leaves room for %lld; some may stay "
            "offline, and no partitions can be added until the limit is raised",
            reg->n_partitions, (long long)reg->fd_limit, (long long)reg->fd_partitions_max);
    free(reg->intents);
    reg->intents = NULL;
    reg->n_intents = reg->cap_intents = 0;
    for (int i = 0; i < reg->n_topics; i++) {
        topic *t = reg->topics[i];
        if (open_partitions(reg, t, 0, t->n_partitions, false) != 0)
            goto err;
        if (t->cfg_error != NULL)
            LOG_ERROR(
                "topics",
                "topic %s: its stored configuration cannot be used (%s); its %d partitions stay offline "
                "until that key is changed with AlterConfigs (sluice configs --alter --topic %s "
                "--add-config KEY=VALUE, or --delete-config KEY)",
                t->name, t->cfg_error, t->n_partitions, t->name);
    }
    reg->opened = true;
    return reg;
err:
    topics_close(reg);
    return NULL;
}

int topics_close(topic_registry *reg) {
    if (reg == NULL)
        return 0;
    int n_roots = reg->cfg->log_dirs.n;
    bool unclean[CONFIG_LIST_MAX] = {false};
    for (int i = 0; i < reg->n_topics; i++) {
        topic *t = reg->topics[i];
        /* Outstanding references would be a bug at shutdown: requests are
         * finished before the registry closes. */
        topic_destroy(reg, t, false, unclean);
    }
    free(reg->topics);
    free(reg->deleted_ids);
    free(reg->intents);
    free(reg->strays);
    if (reg->meta && plog_close(reg->meta) != 0) {
        LOG_WARN("topics", "the metadata log did not close cleanly");
        unclean[0] = true;
    }
    int not_marked = n_roots;
    if (reg->meta && reg->opened) {
        not_marked = 0;
        for (int r = 0; r < n_roots; r++) {
            const char *root = reg->cfg->log_dirs.items[r];
            if (unclean[r] || plog_dir_mark_clean(reg->storage, root) != 0) {
                LOG_WARN("topics",
                         "log directory %s is not marked clean: its logs are recovered at the next start",
                         root);
                not_marked++;
            }
        }
    }
    pthread_rwlock_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->change_mu);
    free(reg);
    return not_marked;
}

/* ---- changes ---------------------------------------------------------- */

/* Records that partitions [from, to) of id are about to be created, before
 * any of their directories exists (see the file comment). */
static int announce_creation(topic_registry *reg, kuuid id, int32_t from, int32_t to, char *msg,
                             size_t msgn) {
    meta_change c = {.type = REC_CREATING, .id = id, .from = from, .partitions = to};
    int rc = meta_append(reg, &c);
    if (rc)
        snprintf(msg, msgn, "cannot record the creation in the metadata log (see the broker log)");
    return rc;
}

/* Reserved names a client asked for: Kafka answers INVALID_REQUEST for its
 * metadata topic; names with the set-aside suffix break the name rule. */
static int refuse_reserved(kstr name, char *msg, size_t msgn) {
    int n = name.len > 64 ? 64 : name.len;
    if (topics_metadata_name(name)) {
        snprintf(msg, msgn, "'%.*s' is the name of the broker's metadata log; no topic may have it", n,
                 name.ptr);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (topics_internal_name(name)) {
        snprintf(msg, msgn, "'%.*s' is an internal topic; only the broker creates it", n, name.ptr);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    snprintf(msg, msgn, "topic names may not end in '%s', the suffix of set-aside log directories",
             TOPICS_STRAY_SUFFIX);
    return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
}

static int create_topic(topic_registry *reg, kstr name, int32_t partitions, int16_t replication_factor,
                        const char *const *cfg_keys, const char *const *cfg_values, int n_cfg, bool internal,
                        bool validate_only, topic **out, char *msg, size_t msgn) {
    msg[0] = '\0';
    if (out)
        *out = NULL;
    int rc = topics_validate_name(name, msg, msgn);
    if (rc)
        return rc;
    assert(!internal || topics_internal_name(name));
    if (partitions == -1)
        partitions = reg->cfg->num_partitions;
    if (replication_factor == -1)
        replication_factor = (int16_t)reg->cfg->default_replication_factor;
    if (partitions <= 0 || partitions > TOPIC_PARTITIONS_MAX) {
        snprintf(msg, msgn, "number of partitions must be between 1 and %d, got %d", TOPIC_PARTITIONS_MAX,
                 partitions);
        return KAFKA_ERR_INVALID_PARTITIONS;
    }
    if (replication_factor <= 0 || replication_factor > 1) {
        snprintf(msg, msgn, "replication factor %d is larger than the 1 available broker",
                 replication_factor);
        if (replication_factor <= 0)
            snprintf(msg, msgn, "replication factor must be larger than 0, got %d", replication_factor);
        return KAFKA_ERR_INVALID_REPLICATION_FACTOR;
    }
    topic_config_override *o = NULL;
    topic_config tc;
    rc = build_config(reg, cfg_keys, cfg_values, n_cfg, &o, &tc, msg, msgn);
    if (rc)
        return rc;

    pthread_mutex_lock(&reg->change_mu);
    pthread_rwlock_rdlock(&reg->lock);
    bool exists = find_locked(reg, name) != NULL;
    const char *collides = NULL;
    for (int i = 0; i < reg->n_topics && !exists && !collides; i++)
        if (names_collide(reg->topics[i]->name, name))
            collides = reg->topics[i]->name;
    int total = reg->n_partitions;
    pthread_rwlock_unlock(&reg->lock);
    topic *t = NULL;
    if (exists) {
        snprintf(msg, msgn, "topic '%.*s' already exists", name.len, name.ptr);
        rc = KAFKA_ERR_TOPIC_ALREADY_EXISTS;
        goto out;
    }
    if (!internal && topics_name_reserved(name)) {
        rc = refuse_reserved(name, msg, msgn);
        goto out;
    }
    if (collides) {
        snprintf(msg, msgn,
                 "topic '%.*s' collides with existing topic '%s' ('.' and '_' are interchangeable)", name.len,
                 name.ptr, collides);
        rc = KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
        goto out;
    }
    if (total + partitions > TOPICS_PARTITIONS_TOTAL_MAX) {
        snprintf(msg, msgn, "the broker would hold more than %d partitions", TOPICS_PARTITIONS_TOTAL_MAX);
        rc = KAFKA_ERR_POLICY_VIOLATION;
        goto out;
    }
    if ((rc = check_fd_budget(reg, total, partitions, msg, msgn)) != 0)
        goto out;
    if (validate_only)
        goto out;

    t = topic_new(name, new_uuid(), partitions, replication_factor, internal);
    if (t == NULL ||
        (internal && n_cfg > 0 && (t->pinned = overrides_dup(cfg_keys, cfg_values, n_cfg)) == NULL)) {
        rc = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        goto out;
    }
    t->n_pinned = internal ? n_cfg : 0;
    if (!internal && name.len > 2 && name.ptr[0] == '_' && name.ptr[1] == '_')
        LOG_WARN("topics", "topic %.*s starts with '__', as the broker's internal topics do", name.len,
                 name.ptr);
    while (kuuid_is_zero(t->id))
        t->id = new_uuid();
    t->overrides = o;
    t->n_overrides = n_cfg;
    t->cfg = tc;
    o = NULL;
    rc = announce_creation(reg, t->id, 0, partitions, msg, msgn);
    if (rc)
        goto out;
    rc = open_partitions(reg, t, 0, partitions, true);
    if (rc) {
        snprintf(msg, msgn, "cannot create the partition logs (see the broker log)");
        goto out;
    }
    meta_change c = {.type = REC_TOPIC,
                     .id = t->id,
                     .name = name,
                     .partitions = partitions,
                     .replication_factor = replication_factor,
                     .internal = t->internal,
                     .n_cfg = n_cfg,
                     .keys = cfg_keys,
                     .values = cfg_values};
    rc = meta_append(reg, &c);
    if (rc) {
        snprintf(msg, msgn, "cannot record the topic in the metadata log (see the broker log)");
        for (int i = 0; i < partitions; i++) {
            partition_delete_log(t->parts[i]->log);
            t->parts[i]->log = NULL;
        }
        goto out;
    }
    pthread_rwlock_wrlock(&reg->lock);
    int added = table_add(reg, t);
    pthread_rwlock_unlock(&reg->lock);
    if (added != 0) {
        rc = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        goto out;
    }
    LOG_INFO("topics", "created topic %s with %d partitions", t->name, partitions);
    if (out) {
        atomic_fetch_add(&t->refs, 1);
        *out = t;
    }
    t = NULL;
out:
    pthread_mutex_unlock(&reg->change_mu);
    if (t)
        topic_destroy(reg, t, false, NULL);
    topic_free_overrides(o, n_cfg);
    return rc;
}

int topics_create(topic_registry *reg, kstr name, int32_t partitions, int16_t replication_factor,
                  const char *const *cfg_keys, const char *const *cfg_values, int n_cfg, bool validate_only,
                  topic **out, char *msg, size_t msgn) {
    return create_topic(reg, name, partitions, replication_factor, cfg_keys, cfg_values, n_cfg, false,
                        validate_only, out, msg, msgn);
}

int topics_create_internal(topic_registry *reg, kstr name, int32_t partitions, const char *const *cfg_keys,
                           const char *const *cfg_values, int n_cfg, topic **out, char *msg, size_t msgn) {
    return create_topic(reg, name, partitions, 1, cfg_keys, cfg_values, n_cfg, true, false, out, msg, msgn);
}

int topics_delete(topic_registry *reg, topic *t, char *msg, size_t msgn) {
    msg[0] = '\0';
    if (t->internal) {
        snprintf(msg, msgn,
                 "topic '%s' is internal: the broker keeps its own state in it and it cannot be deleted",
                 t->name);
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if (!reg->cfg->delete_topic_enable) {
        snprintf(msg, msgn, "topic deletion is disabled (delete.topic.enable=false)");
        return KAFKA_ERR_TOPIC_DELETION_DISABLED;
    }
    pthread_mutex_lock(&reg->change_mu);
    int rc = 0;
    if (t->deleted) {
        snprintf(msg, msgn, "topic '%s' does not exist", t->name);
        rc = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        goto out;
    }
    meta_change c = {.type = REC_DELETE, .id = t->id};
    rc = meta_append(reg, &c);
    if (rc) {
        snprintf(msg, msgn, "cannot record the deletion in the metadata log (see the broker log)");
        goto out;
    }
    remember_deleted(reg, t->id);
    pthread_rwlock_wrlock(&reg->lock);
    table_remove(reg, t);
    /* Atomic: long-polling fetches read it without the lock (api_fetch.c). */
    __atomic_store_n(&t->deleted, true, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&reg->lock);
    LOG_INFO("topics", "deleted topic %s", t->name);
    topic_release(reg, t); /* the registry's reference */
out:
    pthread_mutex_unlock(&reg->change_mu);
    return rc;
}

int topics_add_partitions(topic_registry *reg, topic *t, int32_t new_total, bool validate_only, char *msg,
                          size_t msgn) {
    msg[0] = '\0';
    pthread_mutex_lock(&reg->change_mu);
    int rc = 0;
    partition **np = NULL;
    retired_parts *retired = NULL;
    int32_t old = t->n_partitions;
    if (t->deleted) {
        snprintf(msg, msgn, "topic '%s' does not exist", t->name);
        rc = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        goto out;
    }
    if (t->internal) {
        snprintf(msg, msgn,
                 "topic '%s' is internal: its coordinator maps keys to its %d partitions, so their number is "
                 "fixed",
                 t->name, old);
        rc = KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
        goto out;
    }
    if (new_total <= old) {
        snprintf(msg, msgn, "topic '%s' has %d partitions; the new count %d must be larger", t->name, old,
                 new_total);
        rc = KAFKA_ERR_INVALID_PARTITIONS;
        goto out;
    }
    if (new_total > TOPIC_PARTITIONS_MAX ||
        topics_partition_count(reg) + (new_total - old) > TOPICS_PARTITIONS_TOTAL_MAX) {
        snprintf(msg, msgn, "at most %d partitions per topic and %d per broker", TOPIC_PARTITIONS_MAX,
                 TOPICS_PARTITIONS_TOTAL_MAX);
        rc = KAFKA_ERR_INVALID_PARTITIONS;
        goto out;
    }
    if ((rc = check_fd_budget(reg, topics_partition_count(reg), new_total - old, msg, msgn)) != 0)
        goto out;
    if (validate_only)
        goto out;
    /* Open the new logs into a scratch topic view, then publish. */
    np = calloc((size_t)new_total, sizeof *np);
    if (np == NULL) {
        rc = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        goto out;
    }
    retired = calloc(1, sizeof *retired);
    if (retired == NULL) {
        rc = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        goto out;
    }
    memcpy(np, t->parts, (size_t)old * sizeof *np);
    rc = announce_creation(reg, t->id, old, new_total, msg, msgn);
    if (rc)
        goto out;
    partition **saved = t->parts;
    t->parts = np;
    rc = open_partitions(reg, t, old, new_total, true);
    t->parts = saved;
    if (rc) {
        snprintf(msg, msgn, "cannot create the partition logs (see the broker log)");
        goto out;
    }
    meta_change c = {.type = REC_PARTITIONS, .id = t->id, .partitions = new_total};
    rc = meta_append(reg, &c);
    if (rc) {
        for (int32_t i = old; i < new_total; i++) {
            partition_delete_log(np[i]->log);
            free(np[i]);
        }
        snprintf(msg, msgn, "cannot record the change in the metadata log (see the broker log)");
        goto out;
    }
    pthread_rwlock_wrlock(&reg->lock);
    /* Readers holding a reference may still use the old array: it is
     * retired, not freed, until the topic goes. */
    retired->parts = t->parts;
    retired->next = t->retired;
    t->retired = retired;
    retired = NULL;
    __atomic_store_n(&t->parts, np, __ATOMIC_RELEASE);
    __atomic_store_n(&t->n_partitions, new_total, __ATOMIC_RELEASE);
    np = NULL;
    reg->n_partitions += new_total - old;
    pthread_rwlock_unlock(&reg->lock);
    LOG_INFO("topics", "topic %s now has %d partitions", t->name, new_total);
out:
    free(np);
    free(retired);
    pthread_mutex_unlock(&reg->change_mu);
    return rc;
}

int topics_alter_config(topic_registry *reg, topic *t, const char *const *keys, const char *const *values,
                        int n, bool replace_all, bool validate_only, char *msg, size_t msgn) {
    msg[0] = '\0';
    if (n < 0 || n > TOPIC_CONFIGS_MAX) {
        snprintf(msg, msgn, "at most %d config changes per request", TOPIC_CONFIGS_MAX);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    pthread_mutex_lock(&reg->change_mu);
    int rc = 0;
    const char *mk[TOPIC_CONFIGS_MAX * 2], *mv[TOPIC_CONFIGS_MAX * 2];
    int m = 0;
    topic_config_override *o = NULL;
    topic_config tc;
    if (t->deleted) {
        snprintf(msg, msgn, "topic '%s' does not exist", t->name);
        rc = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (replace_all && values[i] == NULL) {
            snprintf(msg, msgn, "null value for config '%s'", keys[i]);
            rc = KAFKA_ERR_INVALID_CONFIG;
            goto out;
        }
    m = merge_overrides(t, keys, values, n, replace_all, mk, mv);
    const topic_config_override *pin = pinned_broken(t, mk, mv, m);
    if (pin != NULL) {
        snprintf(msg, msgn, "%s=%s is set by the broker for internal topic '%s' and cannot be changed",
                 pin->key, pin->value, t->name);
        rc = KAFKA_ERR_INVALID_CONFIG;
        goto out;
    }
    rc = build_config(reg, mk, mv, m, &o, &tc, msg, msgn);
    if (rc || validate_only)
        goto out;
    meta_change c = {.type = REC_CONFIG,
                     .id = t->id,
                     .replace_all = replace_all,
                     .n_cfg = n,
                     .keys = keys,
                     .values = values};
    rc = meta_append(reg, &c);
    if (rc) {
        snprintf(msg, msgn, "cannot record the change in the metadata log (see the broker log)");
        goto out;
    }
    pthread_rwlock_wrlock(&reg->lock);
    topic_config_override *old = t->overrides;
    int old_n = t->n_overrides;
    t->overrides = o;
    t->n_overrides = m;
    t->cfg = tc;
    o = NULL;
    pthread_rwlock_unlock(&reg->lock);
    topic_free_overrides(old, old_n);
    /* The partition logs take the new retention, roll, flush and size limits
     * at once. */
    plog_config pc;
    plog_config_from_topic(&tc, &pc);
    bool was_unusable = t->cfg_error != NULL;
    free(t->cfg_error);
    t->cfg_error = NULL;
    int64_t now = clock_wall_ms();
    for (int32_t i = 0; i < topic_partition_count(t); i++) {
        partition *p = topic_partition(t, i);
        plog *l = p ? partition_log(p) : NULL;
        if (l && plog_set_config(l, &pc) != 0)
            LOG_WARN("topics", "partition %s-%d rejected the new settings", t->name, i);
        else if (p && l == NULL && was_unusable && partition_attach(reg, p, &pc, true) != 0)
            partition_backoff(p, now);
    }
    if (was_unusable)
        LOG_INFO("topics", "topic %s: its configuration is usable again; its partitions are opened", t->name);
    LOG_INFO("topics", "changed the configuration of topic %s", t->name);
out:
    topic_free_overrides(o, m);
    pthread_mutex_unlock(&reg->change_mu);
    return rc;
}

/* One retry of an offline partition, when its time has come. */
static void retry_partition(topic_registry *reg, topic *t, partition *p, int64_t now_ms) {
    plog *l = partition_log(p);
    if (l != NULL) {
        /* Only this thread reopens logs and touches their retry times. */
        if (now_ms < p->retry_at_ms)
            return;
        int rc = plog_reopen(l);
        if (rc != 0) {
            partition_backoff(p, now_ms);
            return;
        }
        p->retry_backoff_ms = 0;
        LOG_INFO("topics", "partition %s-%d is back online", t->name, p->index);
        return;
    }
    /* A change in progress (a large CreateTopics) must not stall the
     * housekeeping of every other partition: try again next round. */
    if (pthread_mutex_trylock(&reg->change_mu) != 0)
        return;
    if (partition_log(p) == NULL && t->cfg_error == NULL && !t->deleted && now_ms >= p->retry_at_ms) {
        plog_config pc;
        plog_config_from_topic(&t->cfg, &pc);
        if (partition_attach(reg, p, &pc, true) != 0) {
            partition_backoff(p, now_ms);
        } else {
            p->retry_backoff_ms = 0;
            LOG_INFO("topics", "partition %s-%d is open", t->name, p->index);
        }
    }
    pthread_mutex_unlock(&reg->change_mu);
}

void topics_tick(topic_registry *reg, int64_t now_ms) {
    int n = 0;
    topic **all = topics_list(reg, &n);
    for (int i = 0; i < n; i++) {
        topic *t = all[i];
        int32_t np = topic_partition_count(t);
        for (int32_t k = 0; k < np; k++) {
            partition *p = topic_partition(t, k);
            plog *l = p ? partition_log(p) : NULL;
            if (p == NULL)
                continue;
            if (l == NULL || plog_is_offline(l)) {
                retry_partition(reg, t, p, now_ms);
                continue;
            }
            int rc = plog_tick(l, now_ms);
            if (rc != 0)
                LOG_WARN("topics", "housekeeping of partition %s-%d failed: %s", t->name, k,
                         storage_strerror(rc));
        }
        topic_release(reg, t);
    }
    free(all);
    if (reg->meta && plog_is_offline(reg->meta) && pthread_mutex_trylock(&reg->change_mu) == 0) {
        retry_meta(reg, now_ms);
        pthread_mutex_unlock(&reg->change_mu);
    }
    if (reg->meta)
        plog_tick(reg->meta, now_ms);
}
