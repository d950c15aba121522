/*
 * migrate.c - the old metadata log into KRaft records. See migrate.h.
 *
 * The old record value: int8 version (0), int8 type, uuid topic id, then by
 * type: TOPIC string name, int32 partitions, int16 replication factor, bool
 * internal, int32 n, n x (string key, string value); PARTITIONS int32 new
 * count; CONFIG bool replace_all, int32 n, n x (string key, nullable string
 * value); DELETE nothing; CREATING int32 from, int32 to.
 */
#include "metadata/migrate.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "metadata/logscan.h"
#include "proto/gen/kafka_records.h"

enum { OLD_TOPIC = 1, OLD_PARTITIONS = 2, OLD_CONFIG = 3, OLD_DELETE = 4, OLD_CREATING = 5 };

#define OLD_CONFIGS_MAX 64
#define OLD_TOPICS_MAX  (1 << 20)

typedef struct old_cfg {
    char *key, *value;
} old_cfg;

typedef struct old_topic {
    kuuid id;
    char *name;
    int32_t partitions;
    old_cfg *cfg;
    int n_cfg;
    bool live;
} old_topic;

typedef struct mstate {
    old_topic *topics;
    int32_t n, cap;
    kuuid *deleted;
    int32_t n_deleted, cap_deleted;
    md_migrate_intent *intents;
    int32_t n_intents, cap_intents;
    int64_t records;
} mstate;

static void seterr(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

static char *dupk(kstr s) {
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s.ptr, n);
        p[n] = '\0';
    }
    return p;
}

static old_topic *find(mstate *m, kuuid id) {
    for (int32_t i = m->n - 1; i >= 0; i--)
        if (m->topics[i].live && memcmp(m->topics[i].id.b, id.b, 16) == 0)
            return &m->topics[i];
    return NULL;
}

static void cfg_set(old_topic *t, kstr key, kstr value, bool *oom) {
    for (int i = 0; i < t->n_cfg; i++)
        if ((int32_t)strlen(t->cfg[i].key) == key.len &&
            memcmp(t->cfg[i].key, key.ptr, (size_t)key.len) == 0) {
            free(t->cfg[i].value);
            if (value.len < 0) {
                free(t->cfg[i].key);
                t->cfg[i] = t->cfg[--t->n_cfg];
            } else if ((t->cfg[i].value = dupk(value)) == NULL) {
                *oom = true;
            }
            return;
        }
    if (value.len < 0 || t->n_cfg >= OLD_CONFIGS_MAX * 2)
        return;
    old_cfg *nc = realloc(t->cfg, (size_t)(t->n_cfg + 1) * sizeof *nc);
    if (nc == NULL) {
        *oom = true;
        return;
    }
    t->cfg = nc;
    t->cfg[t->n_cfg].key = dupk(key);
    t->cfg[t->n_cfg].value = dupk(value);
    if (!t->cfg[t->n_cfg].key || !t->cfg[t->n_cfg].value)
        *oom = true;
    t->n_cfg++;
}

static void cfg_clear(old_topic *t) {
    for (int i = 0; i < t->n_cfg; i++) {
        free(t->cfg[i].key);
        free(t->cfg[i].value);
    }
    free(t->cfg);
    t->cfg = NULL;
    t->n_cfg = 0;
}

/* Decodes and applies one old record. 0, or -1 with err. */
static int old_record(void *ctx, int64_t offset, kbytes key, kbytes value, char *err, size_t errn) {
    mstate *m = ctx;
    (void)offset;
    wire_reader r;
    wire_reader_init(&r, value.ptr, value.len > 0 ? (size_t)value.len : 0);
    int8_t version = wire_read_i8(&r);
    int8_t type = wire_read_i8(&r);
    kuuid id = wire_read_uuid(&r);
    if (value.len <= 0 || r.err || version != 0) {
        seterr(err, errn, "a '%.*s' record this version cannot read",
               key.len > 0 && key.len < 32 ? key.len : 0, key.len > 0 ? (const char *)key.ptr : "");
        return -1;
    }
    bool oom = false;
    m->records++;
    switch (type) {
    case OLD_TOPIC: {
        kstr name = wire_read_string(&r, false, false);
        int32_t parts = wire_read_i32(&r);
        (void)wire_read_i16(&r); /* replication factor: always 1 */
        (void)wire_read_bool(&r);
        int32_t n = wire_read_i32(&r);
        if (r.err || n < 0 || n > OLD_CONFIGS_MAX || name.len <= 0 || name.len > 249 || parts <= 0)
            goto bad;
        if (find(m, id) != NULL || m->n >= OLD_TOPICS_MAX)
            goto bad;
        if (m->n == m->cap) {
            int32_t ncap = m->cap ? m->cap * 2 : 64;
            old_topic *nt = realloc(m->topics, (size_t)ncap * sizeof *nt);
            if (nt == NULL)
                goto nomem;
            m->topics = nt;
            m->cap = ncap;
        }
        old_topic *t = &m->topics[m->n++];
        memset(t, 0, sizeof *t);
        t->id = id;
        t->name = dupk(name);
        t->partitions = parts;
        t->live = true;
        if (t->name == NULL)
            goto nomem;
        for (int32_t i = 0; i < n; i++) {
            kstr k = wire_read_string(&r, false, false);
            kstr v = wire_read_string(&r, false, false);
            if (r.err)
                goto bad;
            cfg_set(t, k, v, &oom);
        }
        break;
    }
    case OLD_PARTITIONS: {
        int32_t parts = wire_read_i32(&r);
        old_topic *t = find(m, id);
        if (r.err)
            goto bad;
        if (t && parts > t->partitions)
            t->partitions = parts;
        break;
    }
    case OLD_CONFIG: {
        bool replace_all = wire_read_bool(&r);
        int32_t n = wire_read_i32(&r);
        if (r.err || n < 0 || n > OLD_CONFIGS_MAX)
            goto bad;
        old_topic *t = find(m, id);
        if (t && replace_all)
            cfg_clear(t);
        for (int32_t i = 0; i < n; i++) {
            kstr k = wire_read_string(&r, false, false);
            kstr v = wire_read_string(&r, false, true);
            if (r.err)
                goto bad;
            if (t)
                cfg_set(t, k, v, &oom);
        }
        break;
    }
    case OLD_DELETE: {
        old_topic *t = find(m, id);
        if (t)
            t->live = false;
        if (m->n_deleted == m->cap_deleted) {
            int32_t ncap = m->cap_deleted ? m->cap_deleted * 2 : 64;
            kuuid *nd = realloc(m->deleted, (size_t)ncap * sizeof *nd);
            if (nd == NULL)
                goto nomem;
            m->deleted = nd;
            m->cap_deleted = ncap;
        }
        m->deleted[m->n_deleted++] = id;
        /* an unfinished creation of a deleted topic is moot */
        for (int32_t i = 0; i < m->n_intents; i++)
            if (memcmp(m->intents[i].id.b, id.b, 16) == 0)
                m->intents[i] = m->intents[--m->n_intents], i--;
        break;
    }
    case OLD_CREATING: {
        int32_t from = wire_read_i32(&r), to = wire_read_i32(&r);
        if (r.err || from < 0 || to <= from)
            goto bad;
        if (m->n_intents == m->cap_intents) {
            int32_t ncap = m->cap_intents ? m->cap_intents * 2 : 16;
            md_migrate_intent *ni = realloc(m->intents, (size_t)ncap * sizeof *ni);
            if (ni == NULL)
                goto nomem;
            m->intents = ni;
            m->cap_intents = ncap;
        }
        m->intents[m->n_intents++] = (md_migrate_intent){id, from, to};
        break;
    }
    default:
        goto bad;
    }
    if (r.err == WIRE_OK && wire_remaining(&r) != 0)
        goto bad;
    if (oom)
        goto nomem;
    return 0;
bad:
    seterr(err, errn, "a metadata record of type %d this version cannot read", type);
    return -1;
nomem:
    seterr(err, errn, "out of memory migrating the metadata log");
    return -1;
}

static int cmp_uuid(const void *a, const void *b) { return memcmp(a, b, 16); }

static int emit(md_migrate_fn fn, void *ctx, int16_t type, void *body, char *err, size_t errn) {
    mdrec r = {type, mdrec_write_version(type), kafka_metadata_record_lookup(type), body};
    return fn(ctx, &r, err, errn);
}

int md_migrate_read(storage_ctx *sc, const char *old_dir, bool was_clean, int32_t node_id, md_migrate_fn fn,
                    void *ctx, md_migrate_result *res, char *err, size_t errn) {
    memset(res, 0, sizeof *res);
    mstate m = {0};
    metalog_result mr;
    int rc = metalog_scan(sc, old_dir, was_clean, 0, old_record, &m, &mr, err, errn);
    for (int32_t i = 0; rc == 0 && i < m.n; i++) {
        old_topic *t = &m.topics[i];
        if (!t->live)
            continue;
        /* An unfinished creation of partitions that the log then recorded
         * is finished. */
        for (int32_t k = 0; k < m.n_intents; k++)
            if (memcmp(m.intents[k].id.b, t->id.b, 16) == 0 && m.intents[k].to <= t->partitions)
                m.intents[k] = m.intents[--m.n_intents], k--;
        kafka_topic_record tr;
        kafka_topic_record_init(&tr);
        tr.name = kstr_c(t->name);
        tr.topic_id = t->id;
        if ((rc = emit(fn, ctx, KAFKA_MREC_TOPIC, &tr, err, errn)) != 0)
            break;
        int32_t reps[1] = {node_id};
        kuuid dirs[1] = {{{0}}};
        for (int32_t p = 0; rc == 0 && p < t->partitions; p++) {
            kafka_partition_record pr;
            kafka_partition_record_init(&pr);
            pr.partition_id = p;
            pr.topic_id = t->id;
            pr.replicas = reps;
            pr.replicas_count = 1;
            pr.isr = reps;
            pr.isr_count = 1;
            pr.removing_replicas_count = 0;
            pr.adding_replicas_count = 0;
            pr.leader = node_id;
            pr.leader_epoch = 0;
            pr.partition_epoch = 0;
            pr.directories = dirs;
            pr.directories_count = 1;
            rc = emit(fn, ctx, KAFKA_MREC_PARTITION, &pr, err, errn);
        }
        for (int k = 0; rc == 0 && k < t->n_cfg; k++) {
            kafka_config_record cr;
            kafka_config_record_init(&cr);
            cr.resource_type = 2;
            cr.resource_name = kstr_c(t->name);
            cr.name = kstr_c(t->cfg[k].key);
            cr.value = kstr_c(t->cfg[k].value);
            rc = emit(fn, ctx, KAFKA_MREC_CONFIG, &cr, err, errn);
        }
        res->topics++;
        res->partitions += t->partitions;
    }
    if (m.n_deleted > 1)
        qsort(m.deleted, (size_t)m.n_deleted, sizeof *m.deleted, cmp_uuid);
    res->old_records = m.records;
    res->deleted = m.deleted;
    res->n_deleted = m.n_deleted;
    res->intents = m.intents;
    res->n_intents = m.n_intents;
    for (int32_t i = 0; i < m.n; i++) {
        cfg_clear(&m.topics[i]);
        free(m.topics[i].name);
    }
    free(m.topics);
    if (rc != 0) {
        md_migrate_result_free(res);
        return -1;
    }
    return 0;
}

void md_migrate_result_free(md_migrate_result *res) {
    free(res->deleted);
    free(res->intents);
    memset(res, 0, sizeof *res);
}

int md_migrate_encode_old(const md_old_change *c, uint8_t *buf, size_t cap, size_t *len) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i8(&w, 0);
    wire_write_i8(&w, (int8_t)c->type);
    wire_write_uuid(&w, c->id);
    if (c->type == OLD_TOPIC) {
        wire_write_string(&w, c->name, false, false);
        wire_write_i32(&w, c->partitions);
        wire_write_i16(&w, c->replication_factor);
        wire_write_bool(&w, c->internal);
    } else if (c->type == OLD_PARTITIONS) {
        wire_write_i32(&w, c->partitions);
    } else if (c->type == OLD_CREATING) {
        wire_write_i32(&w, c->from);
        wire_write_i32(&w, c->partitions);
    } else if (c->type == OLD_CONFIG) {
        wire_write_bool(&w, c->replace_all);
    }
    if (c->type == OLD_TOPIC || c->type == OLD_CONFIG) {
        wire_write_i32(&w, c->n_cfg);
        for (int i = 0; i < c->n_cfg; i++) {
            wire_write_string(&w, kstr_c(c->keys[i]), false, false);
            wire_write_string(&w, c->values[i] ? kstr_c(c->values[i]) : KSTR_NULL, false,
                              c->type == OLD_CONFIG);
        }
    }
    *len = w.len;
    return w.err;
}
