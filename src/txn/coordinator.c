/*
 * coordinator.c - the transaction coordinator of one `__transaction_state`
 * partition. See coordinator.h.
 *
 * Ids live in a chained hash table (grown by doubling); each owns a copy of
 * its id and of its partitions' topic names. Every change is written first
 * (tcoord_sink.append) and applied to memory only when the write is
 * durable, so memory is always what the log says.
 */
#include "txn/coordinator.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"

typedef enum phase { PH_UNLOADED = 0, PH_LOADING, PH_ACTIVE } phase;

typedef struct txn {
    char *id;
    int32_t id_len;
    int64_t pid;
    int16_t epoch;
    int32_t timeout_ms;
    int8_t state;
    trec_tp *parts; /* topics owned (malloc'd copies) */
    int32_t n_parts, cap_parts;
    int64_t start_ms, update_ms;
    int64_t retry_at; /* Prepare*: when markers are tried again */
    struct txn *next;
} txn;

struct tcoord {
    tcoord_config cfg;
    tcoord_sink sink;
    phase ph;
    int32_t epoch;
    txn **buckets;
    uint32_t n_buckets;
    int32_t n_ids;
    int64_t next_abort_check;
};

void tcoord_config_default(tcoord_config *c) {
    c->max_timeout_ms = 900000;
    c->id_expiration_ms = 604800000;
    c->abort_check_interval_ms = 10000;
    c->max_ids = 1000000;
    c->max_partitions = TREC_PARTITIONS_MAX;
}

static uint32_t hash_id(const char *p, int32_t n) {
    uint32_t h = 2166136261u;
    for (int32_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static bool is_prepare(int8_t s) { return s == TREC_PREPARE_COMMIT || s == TREC_PREPARE_ABORT; }
static bool holds_parts(int8_t s) { return s == TREC_ONGOING || is_prepare(s); }

static void check_invariants(const tcoord *c) {
#ifdef SLUICE_DEEP_CHECKS
    int32_t n = 0;
    for (uint32_t b = 0; b < c->n_buckets; b++)
        for (const txn *t = c->buckets[b]; t; t = t->next) {
            assert(t->state >= TREC_EMPTY && t->state <= TREC_PREPARE_EPOCH_FENCE);
            assert(holds_parts(t->state) || t->n_parts == 0);
            n++;
        }
    assert(n == c->n_ids);
#else
    assert(c->n_ids >= 0);
#endif
}

tcoord *tcoord_create(const tcoord_config *cfg, const tcoord_sink *sink) {
    tcoord *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = *cfg;
    c->sink = *sink;
    c->epoch = -1;
    c->n_buckets = 64;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void free_parts(txn *t) {
    for (int32_t i = 0; i < t->n_parts; i++)
        free((void *)t->parts[i].topic.ptr);
    t->n_parts = 0;
}

static void free_txn(txn *t) {
    free_parts(t);
    free(t->parts);
    free(t->id);
    free(t);
}

static void clear_all(tcoord *c) {
    for (uint32_t b = 0; b < c->n_buckets; b++) {
        txn *t = c->buckets[b];
        while (t) {
            txn *n = t->next;
            free_txn(t);
            t = n;
        }
        c->buckets[b] = NULL;
    }
    c->n_ids = 0;
}

void tcoord_destroy(tcoord *c) {
    if (c == NULL)
        return;
    clear_all(c);
    free(c->buckets);
    free(c);
}

static txn *find(const tcoord *c, kstr id) {
    if (id.len < 0)
        return NULL;
    for (txn *t = c->buckets[hash_id(id.ptr, id.len) & (c->n_buckets - 1)]; t; t = t->next)
        if (t->id_len == id.len && memcmp(t->id, id.ptr, (size_t)id.len) == 0)
            return t;
    return NULL;
}

static void grow(tcoord *c) {
    uint32_t nb = c->n_buckets * 2;
    txn **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < c->n_buckets; i++)
        for (txn *t = c->buckets[i], *n; t; t = n) {
            n = t->next;
            uint32_t h = hash_id(t->id, t->id_len) & (nb - 1);
            t->next = b[h];
            b[h] = t;
        }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

static txn *add(tcoord *c, kstr id) {
    txn *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->id = malloc((size_t)id.len + 1);
    if (t->id == NULL) {
        free(t);
        return NULL;
    }
    memcpy(t->id, id.ptr, (size_t)id.len);
    t->id[id.len] = 0;
    t->id_len = id.len;
    t->pid = -1;
    t->epoch = -1;
    t->start_ms = -1;
    if ((uint32_t)c->n_ids >= c->n_buckets * 2)
        grow(c);
    uint32_t h = hash_id(t->id, t->id_len) & (c->n_buckets - 1);
    t->next = c->buckets[h];
    c->buckets[h] = t;
    c->n_ids++;
    return t;
}

static void drop(tcoord *c, txn *t) {
    uint32_t h = hash_id(t->id, t->id_len) & (c->n_buckets - 1);
    for (txn **pp = &c->buckets[h]; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    free_txn(t);
    c->n_ids--;
}

static kstr id_of(const txn *t) { return (kstr){t->id, t->id_len}; }

static bool has_part(const txn *t, kstr topic, int32_t p) {
    for (int32_t i = 0; i < t->n_parts; i++)
        if (t->parts[i].partition == p && kstr_eq(t->parts[i].topic, topic))
            return true;
    return false;
}

/* Adds a copy; -1 on OOM. */
static int push_part(txn *t, kstr topic, int32_t p) {
    if (t->n_parts == t->cap_parts) {
        int32_t nc = t->cap_parts ? t->cap_parts * 2 : 8;
        trec_tp *nv = realloc(t->parts, (size_t)nc * sizeof *nv);
        if (nv == NULL)
            return -1;
        t->parts = nv;
        t->cap_parts = nc;
    }
    char *s = malloc((size_t)topic.len + 1);
    if (s == NULL)
        return -1;
    memcpy(s, topic.ptr, (size_t)topic.len);
    s[topic.len] = 0;
    t->parts[t->n_parts++] = (trec_tp){(kstr){s, topic.len}, p};
    return 0;
}

/* Writes the id's record as it would be with these fields (parts: the
 * transaction's, or extra appended after the current ones). */
static int16_t write_state(tcoord *c, const txn *t, int64_t pid, int16_t epoch, int32_t timeout, int8_t state,
                           const trec_tp *extra, int32_t n_extra, int64_t start, int64_t now) {
    arena a;
    int32_t total = (holds_parts(state) ? t->n_parts : 0) + n_extra;
    arena_init(&a, (size_t)total * 64 + (size_t)t->id_len * 2 + 4096 + (size_t)n_extra * 1024);
    int16_t err = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    trec_tp *all = total ? arena_alloc(&a, (size_t)total * sizeof *all) : NULL;
    if (total == 0 || all != NULL) {
        int32_t k = 0;
        if (holds_parts(state))
            for (int32_t i = 0; i < t->n_parts; i++)
                all[k++] = t->parts[i];
        for (int32_t i = 0; i < n_extra; i++)
            all[k++] = extra[i];
        trec_value v = {pid, epoch, timeout, state, all, total, now, start};
        kbytes key, val;
        if (trec_encode_key(&a, id_of(t), &key) == 0 && trec_encode_value(&a, &v, &val) == 0)
            err = c->sink.append(c->sink.ctx, key, val);
    }
    arena_reset(&a);
    return err;
}

static int16_t phase_error(const tcoord *c) {
    return c->ph == PH_ACTIVE    ? 0
           : c->ph == PH_LOADING ? KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS
                                 : KAFKA_ERR_NOT_COORDINATOR;
}

/* Kafka maps a failed append of the coordinator to these. */
static int16_t append_error(int16_t err) {
    switch (err) {
    case 0:
        return 0;
    case KAFKA_ERR_NOT_LEADER_OR_FOLLOWER:
    case KAFKA_ERR_KAFKA_STORAGE_ERROR:
        return KAFKA_ERR_NOT_COORDINATOR;
    default:
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    }
}

/* Markers then the Complete record, for a transaction in Prepare*. On a
 * marker failure it stays there and is retried by the tick. */
static void complete(tcoord *c, txn *t, int64_t now) {
    assert(is_prepare(t->state));
    bool commit = t->state == TREC_PREPARE_COMMIT;
    if (t->n_parts > 0 &&
        c->sink.write_markers(c->sink.ctx, id_of(t), t->pid, t->epoch, commit, t->parts, t->n_parts) != 0) {
        t->retry_at = now + TCOORD_MARKER_RETRY_MS;
        return;
    }
    int8_t done = commit ? TREC_COMPLETE_COMMIT : TREC_COMPLETE_ABORT;
    if (write_state(c, t, t->pid, t->epoch, t->timeout_ms, done, NULL, 0, t->start_ms, now) != 0) {
        t->retry_at = now + TCOORD_MARKER_RETRY_MS;
        return;
    }
    free_parts(t);
    t->state = done;
    t->update_ms = now;
    t->retry_at = 0;
}

/* Ongoing -> Prepare* (written) -> complete(). epoch: the epoch the
 * transaction ends with (bumped when the coordinator aborts on its own,
 * fencing the producer). */
static int16_t end(tcoord *c, txn *t, bool commit, int16_t epoch, int64_t now) {
    int8_t prep = commit ? TREC_PREPARE_COMMIT : TREC_PREPARE_ABORT;
    int16_t err = write_state(c, t, t->pid, epoch, t->timeout_ms, prep, NULL, 0, t->start_ms, now);
    if (err)
        return append_error(err);
    t->state = prep;
    t->epoch = epoch;
    t->update_ms = now;
    complete(c, t, now);
    return 0;
}

int16_t tcoord_init_producer(tcoord *c, kstr txn_id, int32_t timeout_ms, int64_t req_pid, int16_t req_epoch,
                             int64_t now, int64_t *pid, int16_t *epoch) {
    check_invariants(c);
    *pid = -1;
    *epoch = -1;
    int16_t err = phase_error(c);
    if (err)
        return err;
    if (timeout_ms <= 0 || timeout_ms > c->cfg.max_timeout_ms)
        return KAFKA_ERR_INVALID_TRANSACTION_TIMEOUT;
    txn *t = find(c, txn_id);
    bool created = false;
    if (t == NULL) {
        if (c->n_ids >= c->cfg.max_ids)
            return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        if ((t = add(c, txn_id)) == NULL)
            return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        created = true;
    }
    if (is_prepare(t->state)) {
        complete(c, t, now); /* a late marker: try now */
        if (is_prepare(t->state))
            return KAFKA_ERR_CONCURRENT_TRANSACTIONS;
    }
    if (!created && req_pid >= 0) {
        /* KIP-360: the producer names its current id and epoch. */
        if (req_pid != t->pid)
            return KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING;
        if (req_epoch != t->epoch)
            return KAFKA_ERR_PRODUCER_FENCED;
    }
    if (t->state == TREC_ONGOING) {
        /* A new instance of the producer: its older epoch's open
         * transaction is aborted, with the epoch bumped so the old one is
         * fenced everywhere. */
        int16_t fence = (int16_t)(t->epoch + 1);
        if (t->epoch >= TCOORD_EPOCH_MAX)
            fence = t->epoch; /* the next step takes a new producer id */
        err = end(c, t, false, fence, now);
        if (err)
            return err;
        if (is_prepare(t->state))
            return KAFKA_ERR_CONCURRENT_TRANSACTIONS;
    }
    int64_t npid = t->pid;
    int16_t nepoch = (int16_t)(t->epoch + 1);
    if (created || t->pid < 0 || t->epoch >= TCOORD_EPOCH_MAX) {
        err = c->sink.new_producer_id(c->sink.ctx, &npid);
        if (err) {
            if (created)
                drop(c, t);
            return err;
        }
        nepoch = 0;
    }
    err = write_state(c, t, npid, nepoch, timeout_ms, TREC_EMPTY, NULL, 0, -1, now);
    if (err) {
        if (created)
            drop(c, t);
        return append_error(err);
    }
    free_parts(t);
    t->pid = npid;
    t->epoch = nepoch;
    t->timeout_ms = timeout_ms;
    t->state = TREC_EMPTY;
    t->start_ms = -1;
    t->update_ms = now;
    *pid = npid;
    *epoch = nepoch;
    check_invariants(c);
    return 0;
}

/* The checks every request of a producer goes through. */
static int16_t producer_error(const txn *t, int64_t pid, int16_t epoch) {
    if (t == NULL || t->pid != pid)
        return KAFKA_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (t->epoch != epoch)
        return KAFKA_ERR_PRODUCER_FENCED;
    return 0;
}

int16_t tcoord_add_partitions(tcoord *c, kstr txn_id, int64_t pid, int16_t epoch, const trec_tp *parts,
                              int32_t n, int64_t now) {
    check_invariants(c);
    int16_t err = phase_error(c);
    if (err)
        return err;
    txn *t = find(c, txn_id);
    if ((err = producer_error(t, pid, epoch)) != 0)
        return err;
    if (is_prepare(t->state)) {
        complete(c, t, now);
        if (is_prepare(t->state))
            return KAFKA_ERR_CONCURRENT_TRANSACTIONS;
    }
    if (t->state == TREC_PREPARE_EPOCH_FENCE || t->state == TREC_DEAD)
        return KAFKA_ERR_INVALID_TXN_STATE;
    /* The partitions not in the transaction yet (duplicates in the request
     * count once). */
    trec_tp *extra = n > 0 ? calloc((size_t)n, sizeof *extra) : NULL;
    if (n > 0 && extra == NULL)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    int32_t k = 0;
    bool ongoing = t->state == TREC_ONGOING;
    for (int32_t i = 0; i < n; i++) {
        if (parts[i].topic.len <= 0)
            continue;
        if (ongoing && has_part(t, parts[i].topic, parts[i].partition))
            continue;
        bool dup = false;
        for (int32_t j = 0; j < k && !dup; j++)
            dup = extra[j].partition == parts[i].partition && kstr_eq(extra[j].topic, parts[i].topic);
        if (!dup)
            extra[k++] = parts[i];
    }
    if (k == 0 && ongoing) {
        free(extra);
        return 0;
    }
    if ((ongoing ? t->n_parts : 0) + k > c->cfg.max_partitions) {
        free(extra);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (!ongoing)
        free_parts(t); /* a new transaction */
    int64_t start = ongoing ? t->start_ms : now;
    err = write_state(c, t, t->pid, t->epoch, t->timeout_ms, TREC_ONGOING, extra, k, start, now);
    if (err == 0) {
        for (int32_t i = 0; i < k && err == 0; i++)
            if (push_part(t, extra[i].topic, extra[i].partition) != 0)
                err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE; /* the log has more: a reload fixes it */
        t->state = TREC_ONGOING;
        t->start_ms = start;
        t->update_ms = now;
    } else {
        err = append_error(err);
    }
    free(extra);
    check_invariants(c);
    return err;
}

int16_t tcoord_end_txn(tcoord *c, kstr txn_id, int64_t pid, int16_t epoch, bool commit, int64_t now) {
    check_invariants(c);
    int16_t err = phase_error(c);
    if (err)
        return err;
    txn *t = find(c, txn_id);
    if ((err = producer_error(t, pid, epoch)) != 0)
        return err;
    switch (t->state) {
    case TREC_ONGOING:
        err = end(c, t, commit, t->epoch, now);
        break;
    case TREC_PREPARE_COMMIT:
        err = commit ? KAFKA_ERR_CONCURRENT_TRANSACTIONS : KAFKA_ERR_INVALID_TXN_STATE;
        break;
    case TREC_PREPARE_ABORT:
        err = commit ? KAFKA_ERR_INVALID_TXN_STATE : KAFKA_ERR_CONCURRENT_TRANSACTIONS;
        break;
    case TREC_COMPLETE_COMMIT:
        err = commit ? 0 : KAFKA_ERR_INVALID_TXN_STATE;
        break;
    case TREC_COMPLETE_ABORT:
        err = commit ? KAFKA_ERR_INVALID_TXN_STATE : 0;
        break;
    default: /* Empty: nothing was added */
        err = KAFKA_ERR_INVALID_TXN_STATE;
        break;
    }
    check_invariants(c);
    return err;
}

static void info_of(const txn *t, tcoord_info *out) {
    *out = (tcoord_info){id_of(t),    t->pid,       t->epoch, t->state,  t->timeout_ms,
                         t->start_ms, t->update_ms, t->parts, t->n_parts};
}

int16_t tcoord_describe(const tcoord *c, kstr txn_id, tcoord_info *out) {
    int16_t err = phase_error(c);
    if (err)
        return err;
    const txn *t = find(c, txn_id);
    if (t == NULL)
        return KAFKA_ERR_TRANSACTIONAL_ID_NOT_FOUND;
    info_of(t, out);
    return 0;
}

int16_t tcoord_each(const tcoord *c, bool (*fn)(void *ctx, const tcoord_info *i), void *ctx) {
    int16_t err = phase_error(c);
    if (err)
        return err;
    for (uint32_t b = 0; b < c->n_buckets; b++)
        for (const txn *t = c->buckets[b]; t; t = t->next) {
            tcoord_info i;
            info_of(t, &i);
            if (!fn(ctx, &i))
                return 0;
        }
    return 0;
}

/* ---- time --------------------------------------------------------------- */

void tcoord_tick(tcoord *c, int64_t now) {
    check_invariants(c);
    if (c->ph != PH_ACTIVE)
        return;
    bool sweep = now >= c->next_abort_check;
    if (sweep)
        c->next_abort_check = now + c->cfg.abort_check_interval_ms;
    for (uint32_t b = 0; b < c->n_buckets; b++) {
        for (txn *t = c->buckets[b], *n; t; t = n) {
            n = t->next;
            if (is_prepare(t->state)) {
                if (now >= t->retry_at)
                    complete(c, t, now);
                continue;
            }
            if (!sweep)
                continue;
            if (t->state == TREC_ONGOING && t->start_ms >= 0 && now > t->start_ms + t->timeout_ms) {
                /* Timed out: aborted with the epoch bumped, so the producer
                 * is fenced (its next request: PRODUCER_FENCED). */
                int16_t fence = t->epoch < TCOORD_EPOCH_MAX ? (int16_t)(t->epoch + 1) : t->epoch;
                (void)end(c, t, false, fence, now);
                continue;
            }
            if (!holds_parts(t->state) && c->cfg.id_expiration_ms > 0 &&
                now > t->update_ms + c->cfg.id_expiration_ms) {
                arena a;
                arena_init(&a, (size_t)t->id_len + 4096);
                kbytes key;
                if (trec_encode_key(&a, id_of(t), &key) == 0 &&
                    c->sink.append(c->sink.ctx, key, (kbytes){NULL, -1}) == 0)
                    drop(c, t);
                arena_reset(&a);
            }
        }
    }
    check_invariants(c);
}

void tcoord_markers_progress(tcoord *c, kstr txn_id, int64_t now) {
    check_invariants(c);
    if (c->ph != PH_ACTIVE)
        return;
    txn *t = find(c, txn_id);
    if (t != NULL && is_prepare(t->state))
        complete(c, t, now);
    check_invariants(c);
}

int64_t tcoord_next_deadline(const tcoord *c) {
    if (c->ph != PH_ACTIVE)
        return INT64_MAX;
    int64_t d = c->next_abort_check;
    for (uint32_t b = 0; b < c->n_buckets; b++)
        for (const txn *t = c->buckets[b]; t; t = t->next)
            if (is_prepare(t->state) && t->retry_at < d)
                d = t->retry_at;
    return d;
}

int32_t tcoord_count(const tcoord *c) { return c->n_ids; }

/* ---- leadership ---------------------------------------------------------- */

bool tcoord_load_begin(tcoord *c, int32_t epoch, int64_t now) {
    (void)now;
    if (c->ph != PH_UNLOADED && epoch <= c->epoch)
        return false;
    clear_all(c);
    c->ph = PH_LOADING;
    c->epoch = epoch;
    return true;
}

int tcoord_load_record(tcoord *c, kbytes key, kbytes value) {
    if (c->ph != PH_LOADING)
        return -1;
    kstr id;
    if (trec_decode_key(key, &id) != 0)
        return -1;
    txn *t = find(c, id);
    if (value.len < 0 || value.ptr == NULL) {
        if (t)
            drop(c, t);
        return 0;
    }
    arena a;
    arena_init(&a, (size_t)value.len * 4 + 4096);
    trec_value v;
    int rc = -1;
    if (trec_decode_value(value, &a, &v) == 0) {
        if (t == NULL)
            t = add(c, id);
        if (t != NULL) {
            free_parts(t);
            t->pid = v.producer_id;
            t->epoch = v.epoch;
            t->timeout_ms = v.timeout_ms;
            t->state = v.status;
            t->start_ms = v.start_ms;
            t->update_ms = v.update_ms;
            t->retry_at = 0;
            if (holds_parts(t->state))
                for (int32_t i = 0; i < v.n_parts; i++)
                    if (v.parts[i].topic.len > 0)
                        (void)push_part(t, v.parts[i].topic, v.parts[i].partition);
            rc = 0;
        }
    }
    arena_reset(&a);
    return rc;
}

void tcoord_load_end(tcoord *c, int64_t now) {
    if (c->ph != PH_LOADING)
        return;
    c->ph = PH_ACTIVE;
    c->next_abort_check = now; /* timeouts and pending markers at the first tick */
    check_invariants(c);
}

bool tcoord_unload(tcoord *c, int32_t epoch) {
    if (c->ph == PH_UNLOADED || (epoch >= 0 && epoch < c->epoch))
        return false;
    clear_all(c);
    c->ph = PH_UNLOADED;
    return true;
}

bool tcoord_loading(const tcoord *c) { return c->ph == PH_LOADING; }
bool tcoord_active(const tcoord *c) { return c->ph == PH_ACTIVE; }
int32_t tcoord_epoch(const tcoord *c) { return c->epoch; }
