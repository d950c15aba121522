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
 * A change is made durable (append + fsync) before it is applied in memory.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "proto/batch.h"
#include "proto/batch_build.h"
#include "proto/gen/kafka_msgs.h"

#define META_LOG_NAME   "__sluice_metadata-0"
#define PARTITION_META  "partition.metadata"
#define META_PROPERTIES "meta.properties"
#define META_READ_CHUNK (1 << 20)
#define META_RECORD_MAX (1 << 20)

enum { REC_TOPIC = 1, REC_PARTITIONS = 2, REC_CONFIG = 3, REC_DELETE = 4 };

typedef struct retired_parts {
    struct retired_parts *next;
    partition **parts;
} retired_parts;

#define DELETED_IDS_MAX 4096

struct topic_registry {
    const broker_config *cfg;
    bool opened;        /* every log recovered: closing may mark the dirs clean */
    kuuid *deleted_ids; /* ids deleted per the metadata log (replay only) */
    int n_deleted;
    pthread_rwlock_t lock;
    pthread_mutex_t change_mu;
    topic **topics; /* live topics, unsorted */
    int n_topics, cap_topics;
    int n_partitions;
    plog *meta;
    storage_ctx *storage; /* the broker's; every log is opened with it */
    char cluster_id[32];
    bool was_clean[CONFIG_LIST_MAX];
};

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
    snprintf(meta, sizeof meta, "%s/%s", plog_dir(l), PARTITION_META);
    unlink(meta);
    return plog_delete(l);
}

/* Frees a topic; with remove_files its partition logs are deleted too. */
static void topic_destroy(topic_registry *reg, topic *t, bool remove_files) {
    (void)reg;
    for (int i = 0; i < t->n_partitions; i++) {
        partition *p = t->parts[i];
        if (p == NULL)
            continue;
        if (p->log) {
            int rc = remove_files ? partition_delete_log(p->log) : plog_close(p->log);
            if (rc != 0)
                LOG_WARN("topics", "%s partition %s-%d: %s", remove_files ? "deleting" : "closing", t->name,
                         i, storage_strerror(rc));
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
    free(t);
}

void topic_release(topic_registry *reg, topic *t) {
    if (t == NULL)
        return;
    if (atomic_fetch_sub(&t->refs, 1) == 1) {
        assert(t->deleted);
        LOG_INFO("topics", "deleting the logs of topic %s", t->name);
        topic_destroy(reg, t, true);
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

/* ---- partition logs --------------------------------------------------- */

/* Each partition directory holds partition.metadata naming its topic id, so
 * a directory left behind by a deleted topic is never mistaken for the data
 * of a new topic with the same name. */

static void uuid_hex(kuuid id, char out[33]) {
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id.b[i]);
}

/* 1 if found (id set), 0 if absent, -1 if unreadable. */
static int read_partition_meta(const char *dir, kuuid *id) {
    char path[4200], line[128];
    snprintf(path, sizeof path, "%s/%s", dir, PARTITION_META);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "topic_id: ", 10) != 0)
            continue;
        const char *h = line + 10;
        rc = 1;
        for (int i = 0; i < 16; i++) {
            unsigned v;
            if (sscanf(h + 2 * i, "%2x", &v) != 1) {
                rc = -1;
                break;
            }
            id->b[i] = (uint8_t)v;
        }
    }
    fclose(f);
    return rc;
}

static int write_partition_meta(const char *dir, kuuid id) {
    char path[4200], tmp[4300], hex[33];
    snprintf(path, sizeof path, "%s/%s", dir, PARTITION_META);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    uuid_hex(id, hex);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "version: 0\ntopic_id: %s\n", hex);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

/* Removes a partition directory and the plain files in it. */
static int remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(dir);
}

static bool id_was_deleted(const topic_registry *reg, kuuid id) {
    for (int i = 0; i < reg->n_deleted; i++)
        if (memcmp(reg->deleted_ids[i].b, id.b, 16) == 0)
            return true;
    return false;
}

/* Finds the root holding <name>-<index>, or picks one for a new partition. */
static int partition_root(topic_registry *reg, const char *name, int32_t index, char *dir, size_t dirn) {
    const config_list *roots = &reg->cfg->log_dirs;
    for (int i = 0; i < roots->n; i++) {
        snprintf(dir, dirn, "%s/%s-%d", roots->items[i], name, index);
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return i;
    }
    int pick = plog_dir_pick(reg->storage, roots->items, roots->n);
    if (pick < 0)
        pick = 0;
    snprintf(dir, dirn, "%s/%s-%d", roots->items[pick], name, index);
    return pick;
}

static partition *partition_open(topic_registry *reg, topic *t, int32_t index, const plog_config *pc,
                                 int *err) {
    char dir[4096];
    int root = partition_root(reg, t->name, index, dir, sizeof dir);
    partition *p = calloc(1, sizeof *p);
    if (p == NULL) {
        *err = STORAGE_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    p->topic = t;
    p->index = index;
    p->root = reg->cfg->log_dirs.items[root];
    kuuid owner;
    int found = read_partition_meta(dir, &owner);
    if (found == 1 && memcmp(owner.b, t->id.b, 16) != 0) {
        /* Left behind by a deleted topic of the same name. */
        LOG_WARN("topics", "removing %s: it belongs to a deleted topic, not to %s", dir, t->name);
        if (remove_dir(dir) != 0) {
            LOG_ERROR("topics", "cannot remove stale directory %s: %s", dir, strerror(errno));
            *err = STORAGE_KAFKA_STORAGE_ERROR;
            free(p);
            return NULL;
        }
        found = 0;
    }
    p->log = plog_open(reg->storage, dir, pc, reg->was_clean[root], err);
    if (p->log && found != 1 && write_partition_meta(dir, t->id) != 0) {
        LOG_ERROR("topics", "cannot write %s/%s: %s", dir, PARTITION_META, strerror(errno));
        plog_close(p->log);
        p->log = NULL;
        *err = STORAGE_KAFKA_STORAGE_ERROR;
    }
    if (p->log == NULL) {
        LOG_ERROR("topics", "cannot open log of partition %s-%d in %s: %s", t->name, index, dir,
                  storage_strerror(*err));
        free(p);
        return NULL;
    }
    return p;
}

/* Opens partitions [from, to) of t into t->parts (already sized). On failure
 * the ones opened here are deleted again when fresh, closed otherwise. */
static int open_partitions(topic_registry *reg, topic *t, int32_t from, int32_t to, bool fresh) {
    plog_config pc;
    plog_config_from_topic(&t->cfg, &pc);
    for (int32_t i = from; i < to; i++) {
        int err = 0;
        t->parts[i] = partition_open(reg, t, i, &pc, &err);
        if (t->parts[i] == NULL) {
            for (int32_t k = from; k < i; k++) {
                if (fresh)
                    partition_delete_log(t->parts[k]->log);
                else
                    plog_close(t->parts[k]->log);
                free(t->parts[k]);
                t->parts[k] = NULL;
            }
            return KAFKA_ERR_KAFKA_STORAGE_ERROR;
        }
    }
    return 0;
}

/* ---- metadata records ------------------------------------------------- */

typedef struct meta_change {
    int type;
    kuuid id;
    kstr name;
    int32_t partitions;
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
    return r.err;
}

/* Appends one change to the metadata log and fsyncs it. */
static int meta_append(topic_registry *reg, const meta_change *c) {
    static const char *names[] = {"", "topic", "partitions", "config", "delete"};
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
    int err = plog_append(reg->meta, batch, blen, 0, clock_wall_ms(), &info);
    if (err == 0)
        err = plog_flush(reg->meta, clock_wall_ms());
    if (err != 0) {
        LOG_ERROR("topics", "writing to the metadata log failed: %s", storage_strerror(err));
        goto out;
    }
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

/* ---- replay ----------------------------------------------------------- */

static void replay_change(topic_registry *reg, const meta_change *c, arena *a) {
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
            return;
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
                return;
        }
    }
    switch (c->type) {
    case REC_TOPIC: {
        if (t != NULL || c->name.len <= 0 || c->name.len > TOPIC_NAME_MAX || c->partitions <= 0 ||
            c->partitions > TOPIC_PARTITIONS_MAX)
            break;
        topic *nt = topic_new(c->name, c->id, c->partitions, c->replication_factor, c->internal);
        if (nt == NULL)
            break;
        if (build_config(reg, keys, values, c->n_cfg, &nt->overrides, &nt->cfg, msg, sizeof msg) != 0) {
            /* A key that later became invalid: keep the topic with defaults. */
            LOG_WARN("topics", "topic %s: ignoring stored config overrides: %s", nt->name, msg);
            topic_config_init(&nt->cfg, reg->cfg);
        } else {
            nt->n_overrides = c->n_cfg;
        }
        if (table_add(reg, nt) != 0)
            topic_destroy(reg, nt, false);
        else
            nt->n_partitions = c->partitions; /* logs are opened after replay */
        break;
    }
    case REC_PARTITIONS:
        if (t && c->partitions > t->n_partitions && c->partitions <= TOPIC_PARTITIONS_MAX) {
            partition **np = realloc(t->parts, (size_t)c->partitions * sizeof *np);
            if (np == NULL)
                break;
            for (int32_t i = t->n_partitions; i < c->partitions; i++)
                np[i] = NULL;
            t->parts = np;
            reg->n_partitions += c->partitions - t->n_partitions;
            t->n_partitions = c->partitions;
        }
        break;
    case REC_CONFIG:
        if (t) {
            topic_config_override *o = NULL;
            topic_config tc;
            /* Merge as the live path did, then rebuild. */
            int n = 0;
            const char *mk[TOPIC_CONFIGS_MAX * 2], *mv[TOPIC_CONFIGS_MAX * 2];
            if (!c->replace_all)
                for (int i = 0; i < t->n_overrides; i++) {
                    mk[n] = t->overrides[i].key;
                    mv[n++] = t->overrides[i].value;
                }
            for (int i = 0; i < c->n_cfg; i++) {
                int k = 0;
                while (k < n && strcmp(mk[k], keys[i]) != 0)
                    k++;
                if (values[i] == NULL) {
                    if (k < n) {
                        mk[k] = mk[n - 1];
                        mv[k] = mv[--n];
                    }
                } else if (k < n) {
                    mv[k] = values[i];
                } else if (n < TOPIC_CONFIGS_MAX * 2) {
                    mk[n] = keys[i];
                    mv[n++] = values[i];
                }
            }
            if (build_config(reg, mk, mv, n, &o, &tc, msg, sizeof msg) == 0) {
                topic_free_overrides(t->overrides, t->n_overrides);
                t->overrides = o;
                t->n_overrides = n;
                t->cfg = tc;
            }
        }
        break;
    case REC_DELETE:
        if (reg->n_deleted < DELETED_IDS_MAX) {
            if (reg->deleted_ids == NULL)
                reg->deleted_ids = calloc(DELETED_IDS_MAX, sizeof(kuuid));
            if (reg->deleted_ids)
                reg->deleted_ids[reg->n_deleted++] = c->id;
        }
        if (t) {
            table_remove(reg, t);
            t->deleted = true;
            topic_release(reg, t); /* deletes the logs if they exist */
        }
        break;
    }
}

/* Partition logs are opened after the whole replay, so a topic deleted in
 * the log never opens its logs; directories it left behind (a crash between
 * the deletion record and the removal) are recognised by partition.metadata
 * and removed here. */
static void remove_leftover_dirs(topic_registry *reg) {
    const config_list *roots = &reg->cfg->log_dirs;
    for (int r = 0; r < roots->n; r++) {
        DIR *d = opendir(roots->items[r]);
        if (d == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || strcmp(e->d_name, META_LOG_NAME) == 0)
                continue;
            const char *dash = strrchr(e->d_name, '-');
            if (dash == NULL || dash == e->d_name)
                continue;
            char *end;
            long idx = strtol(dash + 1, &end, 10);
            if (*end != '\0' || idx < 0)
                continue;
            kstr name = {e->d_name, (int32_t)(dash - e->d_name)};
            topic *t = find_locked(reg, name);
            if (t != NULL && idx < t->n_partitions)
                continue;
            char dir[4400];
            snprintf(dir, sizeof dir, "%s/%s", roots->items[r], e->d_name);
            kuuid owner;
            if (read_partition_meta(dir, &owner) == 1 && id_was_deleted(reg, owner)) {
                LOG_INFO("topics", "removing %s, left over from a deleted topic", dir);
                remove_dir(dir);
            } else {
                LOG_WARN("topics", "log directory %s belongs to no known partition; leaving it alone", dir);
            }
        }
        closedir(d);
    }
}

static int replay(topic_registry *reg) {
    int64_t off = plog_start_offset(reg->meta);
    uint8_t *buf = malloc(META_READ_CHUNK);
    if (buf == NULL)
        return -1;
    int count = 0, rc = 0;
    while (off < plog_end_offset(reg->meta)) {
        plog_read_result res;
        int err = plog_read(reg->meta, off, META_READ_CHUNK, -1, &res);
        if (err != 0 || res.n == 0) {
            rc = err ? -1 : 0;
            break;
        }
        size_t got = 0;
        for (int i = 0; i < res.n && got < META_READ_CHUNK; i++) {
            size_t want = (size_t)res.r[i].len;
            if (want > META_READ_CHUNK - got)
                want = META_READ_CHUNK - got;
            if (pread(res.r[i].fd, buf + got, want, res.r[i].pos) != (ssize_t)want) {
                rc = -1;
                break;
            }
            got += want;
        }
        plog_read_release(&res);
        if (rc)
            break;
        batch_cursor cur;
        batch_cursor_init(&cur, buf, got);
        const uint8_t *bp;
        size_t bsize;
        batch_header h;
        int64_t next = off;
        while (batch_cursor_next(&cur, &bp, &bsize, &h) == BATCH_OK) {
            arena a;
            arena_init(&a, bsize * 4 + (256 << 10));
            batch_iter it;
            batch_record rec;
            if (batch_iter_init(&it, bp, bsize, &a) == BATCH_OK) {
                while (batch_iter_next(&it, &rec)) {
                    meta_change c;
                    if (rec.value.len > 0 &&
                        decode_change(rec.value.ptr, (size_t)rec.value.len, &a, &c) == 0) {
                        replay_change(reg, &c, &a);
                        count++;
                    } else {
                        LOG_WARN("topics", "skipping an unreadable metadata record at offset %lld",
                                 (long long)rec.offset);
                    }
                }
            }
            arena_reset(&a);
            next = h.base_offset + h.last_offset_delta + 1;
        }
        if (next == off) {
            /* A batch larger than the chunk cannot be: records are small. */
            LOG_ERROR("topics", "metadata log batch at offset %lld is unreadable", (long long)off);
            rc = -1;
            break;
        }
        off = next;
    }
    free(buf);
    if (rc == 0)
        LOG_INFO("topics", "replayed %d metadata records: %d topics, %d partitions", count, reg->n_topics,
                 reg->n_partitions);
    return rc;
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
    plog_config pc;
    plog_config_default(&pc);
    pc.retention_ms = -1;
    pc.retention_bytes = -1;
    pc.segment_bytes = 64 << 20;
    int err = 0;
    reg->meta = plog_open(reg->storage, dir, &pc, reg->was_clean[0], &err);
    if (reg->meta == NULL) {
        LOG_ERROR("topics", "cannot open the metadata log in %s: %s", dir, storage_strerror(err));
        goto err;
    }
    if (replay(reg) != 0)
        goto err;
    for (int i = 0; i < reg->n_topics; i++) {
        topic *t = reg->topics[i];
        if (open_partitions(reg, t, 0, t->n_partitions, false) != 0)
            goto err;
    }
    remove_leftover_dirs(reg);
    free(reg->deleted_ids);
    reg->deleted_ids = NULL;
    reg->opened = true;
    return reg;
err:
    topics_close(reg);
    return NULL;
}

void topics_close(topic_registry *reg) {
    if (reg == NULL)
        return;
    bool ok = true;
    for (int i = 0; i < reg->n_topics; i++) {
        topic *t = reg->topics[i];
        /* Outstanding references would be a bug at shutdown: requests are
         * finished before the registry closes. */
        topic_destroy(reg, t, false);
    }
    free(reg->topics);
    free(reg->deleted_ids);
    if (reg->meta && plog_close(reg->meta) != 0)
        ok = false;
    if (ok && reg->meta && reg->opened) {
        for (int i = 0; i < reg->cfg->log_dirs.n; i++)
            plog_dir_mark_clean(reg->storage, reg->cfg->log_dirs.items[i]);
    }
    pthread_rwlock_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->change_mu);
    free(reg);
}

/* ---- changes ---------------------------------------------------------- */

int topics_create(topic_registry *reg, kstr name, int32_t partitions, int16_t replication_factor,
                  const char *const *cfg_keys, const char *const *cfg_values, int n_cfg, bool validate_only,
                  topic **out, char *msg, size_t msgn) {
    msg[0] = '\0';
    if (out)
        *out = NULL;
    int rc = topics_validate_name(name, msg, msgn);
    if (rc)
        return rc;
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
    if (validate_only)
        goto out;

    t = topic_new(name, new_uuid(), partitions, replication_factor,
                  name.len > 2 && name.ptr[0] == '_' && name.ptr[1] == '_');
    if (t == NULL) {
        rc = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        goto out;
    }
    while (kuuid_is_zero(t->id))
        t->id = new_uuid();
    t->overrides = o;
    t->n_overrides = n_cfg;
    t->cfg = tc;
    o = NULL;
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
        topic_destroy(reg, t, false);
    topic_free_overrides(o, n_cfg);
    return rc;
}

int topics_delete(topic_registry *reg, topic *t, char *msg, size_t msgn) {
    msg[0] = '\0';
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
    if (!replace_all)
        for (int i = 0; i < t->n_overrides; i++) {
            mk[m] = t->overrides[i].key;
            mv[m++] = t->overrides[i].value;
        }
    for (int i = 0; i < n; i++) {
        if (replace_all && values[i] == NULL) {
            snprintf(msg, msgn, "null value for config '%s'", keys[i]);
            rc = KAFKA_ERR_INVALID_CONFIG;
            goto out;
        }
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
        } else {
            mk[m] = keys[i];
            mv[m++] = values[i];
        }
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
    for (int32_t i = 0; i < topic_partition_count(t); i++) {
        partition *p = topic_partition(t, i);
        if (p && p->log && plog_set_config(p->log, &pc) != 0)
            LOG_WARN("topics", "partition %s-%d rejected the new settings", t->name, i);
    }
    LOG_INFO("topics", "changed the configuration of topic %s", t->name);
out:
    topic_free_overrides(o, m);
    pthread_mutex_unlock(&reg->change_mu);
    return rc;
}

void topics_tick(topic_registry *reg, int64_t now_ms) {
    int n = 0;
    topic **all = topics_list(reg, &n);
    for (int i = 0; i < n; i++) {
        topic *t = all[i];
        for (int32_t p = 0; p < t->n_partitions; p++) {
            partition *pp = t->parts[p];
            if (pp && pp->log) {
                int rc = plog_tick(pp->log, now_ms);
                if (rc != 0)
                    LOG_WARN("topics", "housekeeping of partition %s-%d failed: %s", t->name, p,
                             storage_strerror(rc));
            }
        }
        topic_release(reg, t);
    }
    free(all);
    if (reg->meta)
        plog_tick(reg->meta, now_ms);
}
