/*
 * api_fetch.c - Fetch (key 1): read record batches from partition logs.
 *
 * A request is turned into a list of items (topic, partition, offset, byte
 * limit), either straight from the request (a full fetch) or from the
 * client's fetch session after applying the request's changes (an
 * incremental fetch, KIP-227; see fetch.h). A partition the request lists
 * more than once is one item, as in Kafka (first place, last limits), so its
 * work is done once. Each item holds a reference to its topic from then until
 * the response is built, so a long poll can keep its partitions while it
 * waits.
 *
 * Answering: at once when max_wait_ms is 0, when some item has an error, or
 * when min_bytes are readable; otherwise the request waits in the fetch
 * module (woken by appends, bounded by max_wait_ms) and is answered from the
 * fetch thread. Deleting a topic wakes its waiters too (api_topics.c): they
 * answer UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID by id) at once rather
 * than keep the deleted topic, and its files, until their deadline.
 *
 * Limits: the response holds at most min(max_bytes, fetch.max.bytes) record
 * bytes and each partition at most its partition_max_bytes, except that the
 * first partition with data always returns at least one whole batch (v3+,
 * KIP-74) so a consumer can never be stuck behind a batch larger than its
 * limits. Later partitions may end in a partial batch, as with Kafka; clients
 * drop the tail.
 *
 * Records are never copied: the storage layer returns file ranges, which are
 * attached to the response (breq_attach_file) with a release callback that
 * unpins their segment once the network layer has sent them (or dropped
 * them). Whether they go out with sendfile or read+write is the network
 * layer's choice (sluice.fetch.zero.copy).
 *
 * Old consumers (v0-3) read only legacy message sets (legacy.h), so for them
 * each partition is down-converted: the same range of batches is read into
 * memory (pread), each record is decoded (compressed batches decompress into
 * a scratch arena that is emptied after every batch) and written as an
 * uncompressed legacy message with its own offset and timestamp: magic 0 for
 * v0-1, magic 1 for v2-3. Record headers are dropped (the old formats have
 * none), records before the fetch offset and control batches (transaction
 * markers) are skipped, as Kafka does. The limits apply to the converted
 * bytes, except that the first partition with data always gets one whole
 * message. Memory: the raw range (at most the limit or the first batch), one
 * batch decompressed (DOWNCONVERT_MAX_UNCOMPRESSED) and the converted
 * messages, which stay within the response limits. Recompressing the result
 * would save bandwidth at a CPU cost; old clients are a compatibility path.
 *
 * Work: a small request can point at batches that decompress a
 * thousandfold, so conversion is metered in bytes read, decompressed and
 * written: per request (sluice.conversion.max.bytes.per.request,
 * checked between batches, so a request does at most that plus one batch),
 * per second across the broker (a token bucket, fetch.h: each compressed
 * batch reserves the most it may decompress to before it starts, so no batch
 * is begun that cannot be finished) and in time (breq_should_stop: the
 * request's work deadline, and shutdown). When a limit is reached the
 * response carries what is converted so far and the other partitions come
 * back without records and without error, as a fetch that hit its byte
 * limit would; a batch is either converted whole or refused for good
 * (CORRUPT_MESSAGE: it decompresses past the cap). When the broker-wide
 * budget is empty the request waits (its max wait, at most a second) and is
 * answered with throttle_time_ms. The fetch thread, which answers every long
 * poll, never converts: a v0-3 long poll it finishes comes back without
 * records and the consumer fetches again at once, on an I/O thread.
 * Converted results are not cached: with each partition converted once per
 * request and the rate bounded, repetition costs at most the budget, and
 * old consumers are rare enough that holding converted copies would cost
 * more memory than it saves CPU.
 *
 * Reads go through the partition's replica machine (replica.h): consumers
 * read up to the high watermark, and the epoch checks (FENCED_LEADER_EPOCH,
 * UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER) are its. Until transactions
 * exist the last stable offset is the high watermark, so read_committed
 * reads the same as read_uncommitted.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/api_util.h"
#include "obs/metrics.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/meta.h"
#include "raft/codec.h"
#include "broker/broker.h"
#include "broker/fetch.h"
#include "broker/replication.h"
#include "core/log.h"
#include "proto/batch.h"
#include "proto/compress.h"
#include "proto/legacy.h"

/* Largest decompressed batch a down-conversion handles (lower if the
 * per-request budget is); larger ones stop the partition's conversion there
 * with CORRUPT_MESSAGE. */
#define DOWNCONVERT_MAX_UNCOMPRESSED (64u << 20)
/* Converted records live in the request's arena (64 MiB and up, request.c)
 * next to the response structs, so a v0-3 response carries at most this
 * much (clients fetch again for the rest). */
#define DOWNCONVERT_MAX_RESPONSE (32 << 20)

/* Partitions that cannot be down-converted: a client retrying them must not
 * flood the log. */
static log_ratelimit dconv_refused_rl = LOG_RATELIMIT_DEFAULT;

typedef struct fitem {
    kstr topic; /* name; may be empty for an unknown topic id */
    kuuid topic_id;
    int32_t partition;
    int64_t fetch_offset;
    int32_t max_bytes;
    int32_t current_leader_epoch;
    int32_t last_fetched_epoch; /* a follower's (v12+), -1 if none */
    bool diverged;              /* a follower's log diverges: report where */
    int32_t div_epoch;
    int64_t div_end;
    int64_t sent_hw, sent_lso, sent_ls; /* incremental: what the client knows */
    int sess_idx;                       /* index in the session, -1 if none */
    rpart *p;                           /* referenced, or NULL */
    int16_t err;
    /* results */
    int64_t hw, ls;
    int64_t leo; /* the log end as item_offsets last saw it */
    int32_t records_len;
    const uint8_t *records; /* down-converted records (v0-3); NULL: file ranges */
    bool include;
} fitem;

/* One v0-3 request's down-conversion work: what it has done against its
 * limit, and what it still owes the broker-wide budget (fetch.h). Each
 * compressed batch reserves `cap` from that budget before it decompresses,
 * so no batch is begun that the budget cannot finish. */
typedef struct dconv_budget {
    bool started;        /* the limits below are set */
    bool stopped;        /* out of budget or time: later partitions carry no records */
    int64_t limit;       /* sluice.conversion.max.bytes.per.request */
    int64_t cap;         /* most one batch may decompress to */
    int64_t used;        /* read, decompressed and written so far */
    int64_t unsettled;   /* read and written bytes not yet charged to the budget */
    int32_t throttle_ms; /* the budget was empty: when it can take a batch again */
} dconv_budget;

typedef struct fstate {
    fitem *items;
    int n;
    int32_t min_bytes;
    int32_t max_bytes;
    int8_t isolation;
    bool by_id;       /* v13+: topics are named by id */
    bool incremental; /* only changed partitions go back */
    int32_t session_id;
    int32_t session_epoch; /* the session's expected epoch after this request */
    int16_t top_err;
    bool fetch_thread;  /* being answered by the fetch thread (a long poll) */
    int32_t replica_id; /* a follower's fetch (replication) when >= 0 */
    dconv_budget dconv; /* v0-3 only */
} fstate;

static void unpin_range(void *arg) { segment_unpin(arg); }

static bool same_topic(const fitem *a, const fitem *b, bool by_id) {
    return by_id ? memcmp(a->topic_id.b, b->topic_id.b, 16) == 0 : kstr_eq(a->topic, b->topic);
}

/* Looks the item's topic and partition up in img and checks its leader
 * epoch (the replica machine answers NOT_LEADER_OR_FOLLOWER,
 * FENCED_LEADER_EPOCH and UNKNOWN_LEADER_EPOCH). */
static bool is_follower(const breq *r) {
    const kafka_fetch_request *req = r->req;
    return (r->hdr.api_version >= 15 ? req->replica_state.replica_id : req->replica_id) >= 0;
}

/* Consumers need READ on the topic (TOPIC_AUTHORIZATION_FAILED, also for a
 * topic that does not exist, as Kafka answers); followers passed CLUSTER
 * CLUSTER_ACTION in api_fetch. *last caches the decision for a run of items
 * of one topic. */
static bool may_read(breq *r, kstr topic, const md_topic *t, const md_topic **last, bool *last_ok) {
    if (!bauthz_on(r) || is_follower(r))
        return true;
    if (t != NULL && t == *last)
        return *last_ok;
    bool ok = bauthz_allow(r, ACL_OP_READ, ACL_RES_TOPIC, topic);
    *last = t;
    *last_ok = ok;
    return ok;
}

static void resolve(breq *r, const md_image *img, fitem *it, bool by_id, const md_topic **last,
                    bool *last_ok) {
    /* Before v13 an empty name is just an unknown topic: those versions
     * carry no ids, and their clients do not know UNKNOWN_TOPIC_ID. */
    bool use_id = by_id;
    const md_topic *t = use_id ? md_image_topic_by_id(img, it->topic_id) : md_image_topic(img, it->topic);
    if (t == NULL) {
        if (!use_id && !may_read(r, it->topic, NULL, last, last_ok)) {
            it->err = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
            return;
        }
        it->err = use_id ? KAFKA_ERR_UNKNOWN_TOPIC_ID : KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    if (!may_read(r, (kstr){t->name, t->name_len}, t, last, last_ok)) {
        it->err = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
        return;
    }
    if (use_id && it->topic.len <= 0)
        it->topic = api_kstr(r, t->name);
    if (!use_id)
        it->topic_id = t->id;
    it->p = bmeta_partition(r->b->meta, t, it->partition, &it->err);
    if (it->p == NULL)
        return;
    rpart_lock(it->p);
    it->err = replica_check_epoch(it->p->r, it->current_leader_epoch, true);
    rpart_unlock(it->p);
}

static void resolve_all(breq *r, fitem *items, int n, bool by_id) {
    md_image *img = bmeta_image(r->b->meta);
    const md_topic *last = NULL;
    bool last_ok = false;
    for (int i = 0; i < n; i++)
        resolve(r, img, &items[i], by_id, &last, &last_ok);
    md_image_unref(img);
}

static void release_items(breq *r, fstate *fs) {
    (void)r;
    for (int i = 0; i < fs->n; i++) {
        rpart_release(fs->items[i].p);
        fs->items[i].p = NULL;
    }
}

/* Whether the item's partition left the metadata since it was resolved. */
static bool item_removed(const fitem *it) { return it->p != NULL && atomic_load(&it->p->removed); }

/* How far the item may be read (the high watermark for a consumer, the
 * log end for a follower) and its log start. */
static void item_offsets(const fstate *fs, fitem *it, int64_t *bound, int64_t *ls) {
    replica_offsets o;
    rpart_lock(it->p);
    replica_get_offsets(it->p->r, &o);
    rpart_unlock(it->p);
    *bound = fs->replica_id >= 0 ? o.leo : o.hw;
    *ls = o.log_start;
    it->leo = o.leo;
}

/* Reads for a consumer, up to the high watermark (a follower: the log
 * end); it->hw and it->ls are the offsets as of the read (one lock). */
static int16_t item_read(const fstate *fs, fitem *it, int64_t max_bytes, plog_read_result *res) {
    replica_offsets o;
    rpart_lock(it->p);
    int16_t err =
        replica_read(it->p->r, it->fetch_offset, max_bytes, fs->replica_id >= 0, fs->isolation == 1, res);
    replica_get_offsets(it->p->r, &o);
    rpart_unlock(it->p);
    it->hw = o.hw;
    it->ls = o.log_start;
    return err;
}

/* A follower's fetch: its position (the fetch offset) reaches the leader's
 * replica machine, which may advance the HW (answering acks=all produces)
 * or find it ready to join the ISR (proposed to the controller). A
 * diverging last fetched epoch is answered instead of records (KIP-595's
 * rule, as Kafka's followers use it): the follower truncates and fetches
 * again. */
static void follower_positions(breq *r, fstate *fs) {
    int64_t now = fetch_now_ms();
    for (int i = 0; i < fs->n; i++) {
        fitem *it = &fs->items[i];
        if (it->err != KAFKA_ERR_NONE || it->p == NULL)
            continue;
        bool join = false;
        rpart_lock(it->p);
        if (!rpart_has_replica(it->p, fs->replica_id)) {
            it->err = KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
            rpart_unlock(it->p);
            continue;
        }
        it->diverged = replica_diverging(it->p->r, it->last_fetched_epoch, it->fetch_offset, &it->div_epoch,
                                         &it->div_end);
        if (!it->diverged)
            it->err = replica_follower_fetch(it->p->r, fs->replica_id, it->fetch_offset, now, &join);
        rpart_unlock(it->p);
        if (join)
            brepl_isr_join(r->b, it->p, fs->replica_id);
    }
}

/* A partition's key in a request, for finding duplicates. */
typedef struct item_key {
    kstr topic;
    kuuid id;
    int32_t partition;
    int idx; /* position in the request */
} item_key;

static int cmp_key_tail(const item_key *x, const item_key *y) {
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_key_name(const void *a, const void *b) {
    const item_key *x = a, *y = b;
    int32_t lx = x->topic.len, ly = y->topic.len, m = lx < ly ? lx : ly;
    int c = m > 0 ? memcmp(x->topic.ptr, y->topic.ptr, (size_t)m) : 0;
    if (c != 0 || lx != ly)
        return c != 0 ? c : lx < ly ? -1 : 1;
    return cmp_key_tail(x, y);
}

static int cmp_key_id(const void *a, const void *b) {
    const item_key *x = a, *y = b;
    int c = memcmp(x->id.b, y->id.b, sizeof x->id.b);
    return c != 0 ? c : cmp_key_tail(x, y);
}

static bool same_key(const item_key *x, const item_key *y, bool by_id) {
    if (x->partition != y->partition)
        return false;
    return by_id ? memcmp(x->id.b, y->id.b, sizeof x->id.b) == 0 : kstr_eq(x->topic, y->topic);
}

/* Kafka keeps one entry per partition of a Fetch (a map keyed by topic and
 * partition, in first-listed order): a partition listed again keeps its first
 * place and takes the last listing's offset and limits, and the response
 * names it once. So does this, before anything is looked up or read, so that
 * listing one partition many times costs one read rather than one each.
 * O(n log n). Returns the new count, or -1 when memory ran out. */
static int dedupe_items(breq *r, fitem *items, int n, bool by_id) {
    if (n < 2)
        return n;
    item_key *keys = breq_calloc(r, (size_t)n, sizeof *keys);
    bool *drop = breq_calloc(r, (size_t)n, sizeof *drop);
    if (keys == NULL || drop == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        keys[i] = (item_key){items[i].topic, items[i].topic_id, items[i].partition, i};
    qsort(keys, (size_t)n, sizeof *keys, by_id ? cmp_key_id : cmp_key_name);
    int dups = 0;
    for (int a = 0; a < n;) {
        int b = a + 1;
        while (b < n && same_key(&keys[a], &keys[b], by_id))
            b++;
        if (b - a > 1) {
            /* Sorted by position within the run: a is the first listing. */
            fitem *keep = &items[keys[a].idx];
            const fitem *last = &items[keys[b - 1].idx];
            keep->fetch_offset = last->fetch_offset;
            keep->max_bytes = last->max_bytes;
            keep->current_leader_epoch = last->current_leader_epoch;
            for (int k = a + 1; k < b; k++)
                drop[keys[k].idx] = true;
            dups += b - a - 1;
        }
        a = b;
    }
    if (dups == 0)
        return n;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!drop[i])
            items[k++] = items[i];
    LOG_DEBUG("fetch", "fetch from %s listed %d partitions %d more times; answering each once", r->net->peer,
              n - dups, dups);
    return k;
}

/* The request's partitions as items, each partition once (resolved). */
static int items_from_request(breq *r, const kafka_fetch_request *req, bool by_id, fitem **out) {
    int n = 0;
    for (int32_t i = 0; i < req->topics_count; i++)
        n += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    fitem *items = n ? breq_calloc(r, (size_t)n, sizeof *items) : NULL;
    if (n && items == NULL)
        return -1;
    int k = 0;
    for (int32_t i = 0; i < req->topics_count; i++) {
        const kafka_fetch_request_fetch_topic *ft = &req->topics[i];
        for (int32_t j = 0; j < ft->partitions_count; j++) {
            const kafka_fetch_request_fetch_partition *fp = &ft->partitions[j];
            fitem *it = &items[k++];
            it->topic = by_id ? (kstr){"", 0} : ft->topic;
            it->topic_id = ft->topic_id;
            it->partition = fp->partition;
            it->fetch_offset = fp->fetch_offset;
            it->max_bytes = fp->partition_max_bytes;
            it->current_leader_epoch = fp->current_leader_epoch;
            it->last_fetched_epoch = r->hdr.api_version >= 12 ? fp->last_fetched_epoch : -1;
            it->sent_hw = it->sent_lso = it->sent_ls = -2;
            it->sess_idx = -1;
        }
    }
    n = dedupe_items(r, items, n, by_id);
    resolve_all(r, items, n, by_id);
    *out = items;
    return n;
}

static void part_from_item(fetch_session_part *e, const fitem *it) {
    memset(e, 0, sizeof *e);
    size_t n = it->topic.len > 0 ? (size_t)it->topic.len : 0;
    if (n > MD_NAME_MAX)
        n = MD_NAME_MAX;
    memcpy(e->topic, it->topic.ptr, n);
    e->topic[n] = '\0';
    e->topic_id = it->topic_id;
    e->partition = it->partition;
    e->fetch_offset = it->fetch_offset;
    e->max_bytes = it->max_bytes;
    e->current_leader_epoch = it->current_leader_epoch;
}

/* Whether a session can remember the item: a name longer than any topic's
 * cannot be stored whole, and a shortened one could name another topic. */
static bool cacheable(const fitem *it, bool by_id) { return by_id || it->topic.len <= MD_NAME_MAX; }

/* Sets fs->items from the request and the session rules. Returns false when
 * the request's memory ran out. */
static bool prepare(breq *r, const kafka_fetch_request *req, fstate *fs) {
    broker *b = r->b;
    int16_t ver = r->hdr.api_version;
    int32_t sid = ver >= 7 ? req->session_id : 0;
    int32_t epoch = ver >= 7 ? req->session_epoch : -1;
    fitem *ritems = NULL;
    int rn = items_from_request(r, req, fs->by_id, &ritems);
    if (rn < 0)
        return false;

    if (epoch == -1 || epoch == 0) {
        /* A full fetch; epoch -1 closes the session, 0 opens a new one. */
        fs->items = ritems;
        fs->n = rn;
        if (b->fetch == NULL || (sid == 0 && epoch == -1))
            return true;
        fetch_sessions_lock(b);
        if (sid != 0)
            fetch_session_remove(b, sid);
        if (epoch == 0) {
            fetch_session *s = fetch_session_new(b, rn);
            bool ok = s != NULL;
            for (int i = 0; ok && i < rn; i++) {
                fetch_session_part key;
                part_from_item(&key, &ritems[i]);
                fetch_session_part *e =
                    cacheable(&ritems[i], fs->by_id) ? fetch_session_upsert(b, s, &key, fs->by_id) : NULL;
                ok = e != NULL;
                if (ok) {
                    *e = key;
                    e->sent_hw = e->sent_lso = e->sent_log_start = -2;
                    ritems[i].sess_idx = (int)(e - s->parts);
                }
            }
            if (ok) {
                fs->session_id = s->id;
                fs->session_epoch = s->epoch;
            } else if (s != NULL) {
                fetch_session_remove(b, s->id); /* too big to cache: a sessionless fetch */
                for (int i = 0; i < rn; i++)
                    ritems[i].sess_idx = -1;
            }
        }
        fetch_sessions_unlock(b);
        return true;
    }

    /* Incremental: the session, updated by the request, is what we fetch. */
    if (b->fetch == NULL) {
        fs->top_err = KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND;
        fs->items = ritems;
        fs->n = rn;
        return true;
    }
    fetch_sessions_lock(b);
    fetch_session *s = fetch_session_find(b, sid);
    if (s == NULL || s->epoch != epoch) {
        fs->top_err =
            s == NULL ? KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND : KAFKA_ERR_INVALID_FETCH_SESSION_EPOCH;
        fetch_sessions_unlock(b);
        fs->items = ritems;
        fs->n = rn;
        return true;
    }
    bool ok = true;
    for (int i = 0; i < rn; i++) {
        fetch_session_part key;
        part_from_item(&key, &ritems[i]);
        fetch_session_part *e =
            cacheable(&ritems[i], fs->by_id) ? fetch_session_upsert(b, s, &key, fs->by_id) : NULL;
        if (e == NULL) {
            ok = false;
            break;
        }
        /* Keep what was sent; take the new position and limits. */
        if (e->topic[0] == '\0')
            memcpy(e->topic, key.topic, sizeof e->topic);
        if (!kuuid_is_zero(key.topic_id))
            e->topic_id = key.topic_id;
        e->fetch_offset = key.fetch_offset;
        e->max_bytes = key.max_bytes;
        e->current_leader_epoch = key.current_leader_epoch;
    }
    for (int32_t i = 0; ok && i < req->forgotten_topics_data_count; i++) {
        const kafka_fetch_request_forgotten_topic *fg = &req->forgotten_topics_data[i];
        char name[MD_NAME_MAX + 1] = "";
        if (!fs->by_id && fg->topic.len > MD_NAME_MAX)
            continue; /* never cached (see cacheable) */
        if (!fs->by_id && fg->topic.len > 0) {
            memcpy(name, fg->topic.ptr, (size_t)fg->topic.len);
            name[fg->topic.len] = '\0';
        }
        for (int32_t j = 0; j < fg->partitions_count; j++)
            fetch_session_forget(b, s, name, fg->topic_id, fg->partitions[j], fs->by_id);
    }
    fitem *items = s->n ? breq_calloc(r, (size_t)s->n, sizeof *items) : NULL;
    if (!ok || (s->n && items == NULL)) {
        /* The session cannot hold the update: drop it; the client starts over. */
        fetch_session_remove(b, sid);
        fetch_sessions_unlock(b);
        fs->top_err = KAFKA_ERR_FETCH_SESSION_ID_NOT_FOUND;
        fs->items = ritems;
        fs->n = rn;
        return true;
    }
    s->epoch = fetch_next_epoch(s->epoch);
    s->last_used_ms = fetch_now_ms();
    fs->session_id = s->id;
    fs->session_epoch = s->epoch;
    fs->incremental = true;
    for (int i = 0; i < s->n; i++) {
        const fetch_session_part *e = &s->parts[i];
        fitem *it = &items[i];
        it->topic = api_kstr(r, e->topic);
        it->topic_id = e->topic_id;
        it->partition = e->partition;
        it->fetch_offset = e->fetch_offset;
        it->max_bytes = e->max_bytes;
        it->current_leader_epoch = e->current_leader_epoch;
        it->sent_hw = e->sent_hw;
        it->sent_lso = e->sent_lso;
        it->sent_ls = e->sent_log_start;
        it->sess_idx = i;
    }
    int n = s->n;
    fetch_sessions_unlock(b);
    /* The request's own items were only needed to update the session. */
    fs->items = ritems;
    fs->n = rn;
    release_items(r, fs);
    fs->items = items;
    fs->n = n;
    resolve_all(r, items, n, fs->by_id);
    return true;
}

/* The probe: answer now if an item is in error or min_bytes are readable. */
static bool fetch_ready(breq *r, void *arg) {
    (void)r;
    fstate *fs = arg;
    if (fs->top_err != KAFKA_ERR_NONE || fs->n == 0)
        return true;
    int64_t need = fs->min_bytes, got = 0;
    for (int i = 0; i < fs->n; i++) {
        fitem *it = &fs->items[i];
        if (it->err != KAFKA_ERR_NONE || item_removed(it))
            return true;
        if (it->diverged)
            return true; /* the follower must truncate first */
        int64_t bound, start;
        item_offsets(fs, it, &bound, &start);
        if (it->fetch_offset > it->leo || it->fetch_offset < start)
            return true; /* OFFSET_OUT_OF_RANGE to report */
        if (it->fetch_offset >= bound || it->max_bytes <= 0)
            continue; /* nothing readable yet (past the HW: not committed yet) */
        if (need <= 1)
            return true;
        plog_read_result res;
        int64_t want = need - got < it->max_bytes ? need - got : it->max_bytes;
        int16_t rc = item_read(fs, it, want, &res);
        got += res.bytes;
        plog_read_release(&res);
        if (rc != KAFKA_ERR_NONE || got >= need)
            return true;
    }
    return false;
}

/* The probe of a v0-3 fetch that found the down-conversion budget empty:
 * answer once it can convert again and has something to convert. */
static int64_t dconv_cap(const breq *r);

static bool fetch_ready_throttled(breq *r, void *arg) {
    fstate *fs = arg;
    return fetch_dconv_wait_ms(r->b, dconv_cap(r)) == 0 && (fs->min_bytes <= 0 || fetch_ready(r, arg));
}

/* Reads one item's records into the response's file ranges. *budget is what
 * the response may still carry; *first says no partition has data yet.
 * Returns false if the request's memory ran out (the response is then
 * unusable). */
static bool read_item(breq *r, fstate *fs, fitem *it, int64_t *budget, bool *first) {
    if (it->diverged)
        return true; /* no records: the follower truncates to the diverging epoch's end */
    int64_t bound;
    item_offsets(fs, it, &bound, &it->ls);
    it->hw = bound;
    int64_t want = *budget < it->max_bytes ? *budget : it->max_bytes;
    bool min_one = *first && r->hdr.api_version >= 3;
    if (it->max_bytes <= 0 || (want <= 0 && !min_one)) {
        /* Out of range is past the log end: between the HW and the log end
         * (a new leader whose HW has not caught up yet) is only empty. */
        if (it->fetch_offset > it->leo || it->fetch_offset < it->ls)
            it->err = KAFKA_ERR_OFFSET_OUT_OF_RANGE;
        return true;
    }
    plog_read_result res;
    int16_t rc = item_read(fs, it, want > 0 ? want : 1, &res);
    if (rc != KAFKA_ERR_NONE) {
        it->err = rc;
        return true;
    }
    if (res.n == 0)
        return true;
    if (r->n_files + res.n > BREQ_MAX_FILE_RANGES) {
        plog_read_release(&res);
        *budget = 0; /* the response is full of ranges: nothing more this time */
        return true;
    }
    /* Only the first partition with data may exceed the limits. */
    int64_t limit = min_one ? res.bytes : want;
    int64_t total = 0;
    bool ok = true;
    for (int i = 0; i < res.n; i++) {
        int64_t len = res.r[i].len;
        if (total + len > limit)
            len = limit - total;
        if (len <= 0 || !ok) {
            segment_unpin(res.r[i].seg);
            continue;
        }
        /* breq_attach_file releases the range itself when it fails. */
        if (!breq_attach_file(r, res.r[i].fd, res.r[i].pos, (size_t)len, unpin_range, res.r[i].seg)) {
            ok = false;
            continue;
        }
        total += len;
    }
    res.n = 0;
    if (!ok)
        return false;
    it->records_len = (int32_t)total;
    *budget -= total;
    if (total > 0)
        *first = false;
    (void)fs;
    return true;
}

/* Reads the first len bytes of res's ranges into buf. */
static bool read_ranges(const plog_read_result *res, uint8_t *buf, size_t len) {
    size_t got = 0;
    for (int i = 0; i < res->n && got < len; i++) {
        size_t want = (size_t)res->r[i].len;
        if (want > len - got)
            want = len - got;
        size_t done = 0;
        /* Bounded: every pass reads at least one byte or fails. */
        while (done < want) {
            ssize_t n = pread(res->r[i].fd, buf + got + done, want - done, res->r[i].pos + (off_t)done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            done += (size_t)n;
        }
        got += done;
    }
    return got == len;
}

/* The output of one partition's down-conversion: a heap buffer grown as
 * needed, never past its limit (plus one message for min-one). */
typedef struct dconv_out {
    uint8_t *buf;
    size_t len, cap;
} dconv_out;

static bool dconv_reserve(dconv_out *o, size_t more) {
    if (o->cap - o->len >= more)
        return true;
    size_t ncap = o->cap ? o->cap : 4096;
    while (ncap - o->len < more)
        ncap *= 2;
    uint8_t *nb = realloc(o->buf, ncap);
    if (nb == NULL)
        return false;
    o->buf = nb;
    o->cap = ncap;
    return true;
}

/* Converts the batches in raw[0..raw_len) to legacy messages of magic from
 * fetch_offset on, at most limit bytes (or one message if min_one and none
 * fit). Every byte decompressed or written is charged to bud, and no batch
 * decompresses to more than bud->cap. Running out of budget, or
 * breq_should_stop(), sets bud->stopped and ends the conversion without an
 * error. Returns a batch_err for a batch that cannot be converted at all
 * (corrupt, or larger than bud->cap); what was converted before it stays. */
static int downconvert(breq *r, const uint8_t *raw, size_t raw_len, int64_t fetch_offset, int8_t magic,
                       size_t limit, bool min_one, dconv_out *o, dconv_budget *bud) {
    batch_cursor c;
    batch_cursor_init(&c, raw, raw_len);
    const uint8_t *bp;
    size_t bsize;
    batch_header h;
    arena scratch;
    arena_init(&scratch, (size_t)bud->cap);
    int err = BATCH_OK;
    bool full = false, zstd = false;
    /* Bounded by raw_len: each batch is at least 61 bytes. */
    while (!full && batch_cursor_next(&c, &bp, &bsize, &h) == BATCH_OK) {
        if ((h.attributes & BATCH_ATTR_CONTROL) || h.base_offset + h.last_offset_delta < fetch_offset)
            continue;
        /* Between batches: stop when the request's limit or time is used
         * up. A batch once begun is finished, so a request does at most its
         * limit plus one batch. */
        if (bud->used >= bud->limit || breq_should_stop(r)) {
            bud->stopped = true;
            break;
        }
        bool compressed = batch_codec_of(&h) != BATCH_CODEC_NONE;
        /* The broker-wide budget must cover the worst case first: then no
         * batch is begun that cannot be finished, and at most
         * burst / cap decompressions run at once. */
        if (compressed && !fetch_dconv_reserve(r->b, bud->cap)) {
            int64_t w = fetch_dconv_wait_ms(r->b, bud->cap);
            bud->throttle_ms = w < 1 ? 1 : w > INT32_MAX ? INT32_MAX : (int32_t)w;
            bud->stopped = true;
            break;
        }
        batch_iter it;
        arena_reset(&scratch);
        zstd = zstd || batch_codec_of(&h) == BATCH_CODEC_ZSTD;
        int e = batch_iter_init(&it, bp, bsize, &scratch);
        if (compressed) {
            /* A failed decompression may have done up to the cap's worth of
             * work before it gave up (into scratch memory of its own). */
            int64_t done = e == BATCH_OK ? (int64_t)wire_remaining(&it.r) : bud->cap;
            fetch_dconv_settle(r->b, bud->cap, done);
            bud->used += done;
        }
        if (e != BATCH_OK) {
            err = e; /* BATCH_ENOMEM: it decompresses to more than bud->cap */
            break;
        }
        int8_t attrs =
            magic == 1 && (h.attributes & BATCH_ATTR_LOG_APPEND_TIME) ? LEGACY_ATTR_LOG_APPEND_TIME : 0;
        batch_record rec;
        /* Bounded by the batch's record count (the iterator enforces it). */
        while (batch_iter_next(&it, &rec)) {
            if (rec.offset < fetch_offset)
                continue;
            size_t need = legacy_message_size(magic, rec.key, rec.value);
            if (o->len + need > limit && !(min_one && o->len == 0)) {
                full = true;
                break;
            }
            if (!dconv_reserve(o, need)) {
                err = BATCH_ENOMEM;
                full = true;
                break;
            }
            wire_writer w;
            wire_writer_init(&w, o->buf + o->len, need);
            legacy_write_message(&w, magic, attrs, rec.offset, rec.timestamp, rec.key, rec.value);
            assert(w.err == WIRE_OK && w.len == need);
            o->len += need;
            bud->used += (int64_t)need;
            bud->unsettled += (int64_t)need;
        }
        if (!full && it.err != BATCH_OK)
            err = it.err;
        if (err != BATCH_OK)
            break;
    }
    arena_reset(&scratch);
    /* The zstd decoder is cached per thread, and the I/O threads have no
     * exit hook to free it: give it back now (a rare path, cheap to redo). */
    if (zstd)
        compress_thread_release();
    return err;
}

/* The most one batch may decompress to for r: DOWNCONVERT_MAX_UNCOMPRESSED,
 * or the per-request limit if that is lower. */
static int64_t dconv_cap(const breq *r) {
    int64_t limit = r->b->cfg ? r->b->cfg->conversion_max_bytes_per_request : 0;
    if (limit <= 0)
        limit = (int64_t)128 << 20;
    return limit < (int64_t)DOWNCONVERT_MAX_UNCOMPRESSED ? limit : (int64_t)DOWNCONVERT_MAX_UNCOMPRESSED;
}

/* Sets the request's limits on first use. False when its work is done. */
static bool dconv_begin(breq *r, dconv_budget *bud) {
    if (!bud->started) {
        bud->started = true;
        bud->limit = r->b->cfg ? r->b->cfg->conversion_max_bytes_per_request : 0;
        if (bud->limit <= 0)
            bud->limit = (int64_t)128 << 20;
        bud->cap = dconv_cap(r);
    }
    if (!bud->stopped && bud->used >= bud->limit)
        bud->stopped = true;
    return !bud->stopped;
}

/* read_item for v0-3: the same range, down-converted into memory. Never
 * fails the response: when memory, budget or time run short the partition
 * (and the rest of the response) just carries less. */
static bool read_item_legacy(breq *r, fstate *fs, fitem *it, int64_t *budget, bool *first) {
    dconv_budget *bud = &fs->dconv;
    int16_t ver = r->hdr.api_version;
    item_offsets(fs, it, &it->hw, &it->ls);
    int64_t want = *budget < it->max_bytes ? *budget : it->max_bytes;
    bool min_one = *first;
    if (it->fetch_offset > it->leo || it->fetch_offset < it->ls) {
        it->err = KAFKA_ERR_OFFSET_OUT_OF_RANGE;
        return true;
    }
    /* Nothing to read (a consumer that is caught up) costs no budget. */
    if (it->max_bytes <= 0 || (want <= 0 && !min_one) || it->fetch_offset >= it->hw)
        return true;
    if (!dconv_begin(r, bud))
        return true;
    /* The fetch thread answers every long poll, old and new: it never
     * converts, so a batch to decompress cannot hold up the others. The old
     * consumer gets no records this time and fetches again at once; that
     * request converts on an I/O thread. */
    if (fs->fetch_thread) {
        int64_t w = fetch_dconv_wait_ms(r->b, bud->cap);
        if (w > 0)
            bud->throttle_ms = w > INT32_MAX ? INT32_MAX : (int32_t)w;
        bud->stopped = true;
        return true;
    }
    if (want < 0)
        want = 0;
    /* Reading is work too: never more than the grant has left (plog_read
     * still returns a first batch whole, checked below). */
    int64_t rd = want > 0 ? want : 1;
    if (rd > bud->limit - bud->used)
        rd = bud->limit - bud->used;
    plog_read_result res;
    int16_t rc = item_read(fs, it, rd, &res);
    if (rc != KAFKA_ERR_NONE) {
        it->err = rc;
        return true;
    }
    if (res.n == 0)
        return true;
    size_t raw_len = (size_t)res.bytes;
    uint8_t *raw = NULL;
    dconv_out o = {0};
    size_t reserved = 0;
    if ((int64_t)raw_len > bud->cap) {
        /* A batch this large could never be converted: its raw bytes alone
         * are more than one batch may decompress to. */
        LOG_WARN_LIMITED(
            &dconv_refused_rl, "fetch",
            "cannot down-convert %.*s-%d at offset %lld for %s: its batch of %zu bytes is larger "
            "than one conversion may handle (%lld)",
            it->topic.len, it->topic.ptr, it->partition, (long long)it->fetch_offset, r->net->peer, raw_len,
            (long long)bud->cap);
        it->err = KAFKA_ERR_CORRUPT_MESSAGE;
        goto out;
    }
    /* The converted bytes wait in memory until the client reads them: charge
     * them to the held-response budget first, and carry no more records when
     * it is spent (the client fetches again). */
    if (!breq_reserve_response(r, want > 0 ? (size_t)want : raw_len)) {
        *budget = 0;
        goto out;
    }
    reserved = want > 0 ? (size_t)want : raw_len;
    bud->used += (int64_t)raw_len;
    bud->unsettled += (int64_t)raw_len;
    raw = malloc(raw_len);
    if (raw == NULL || !read_ranges(&res, raw, raw_len)) {
        LOG_WARN("fetch", "cannot read %.*s-%d for a v%d fetch from %s", it->topic.len, it->topic.ptr,
                 it->partition, ver, r->net->peer);
        it->err = KAFKA_ERR_KAFKA_STORAGE_ERROR;
        goto out;
    }
    plog_read_release(&res);
    int e = downconvert(r, raw, raw_len, it->fetch_offset, ver >= 2 ? 1 : 0, (size_t)want, min_one, &o, bud);
    if (e != BATCH_OK) {
        LOG_WARN_LIMITED(
            &dconv_refused_rl, "fetch", "down-converting %.*s-%d at offset %lld for %s stopped: %s%s",
            it->topic.len, it->topic.ptr, it->partition, (long long)it->fetch_offset, r->net->peer,
            batch_strerror(e), e == BATCH_ENOMEM ? " (a batch decompresses to more than the limit)" : "");
        if (o.len == 0)
            it->err = KAFKA_ERR_CORRUPT_MESSAGE;
    }
    if (o.len > reserved) { /* one message past the limit (min_one) */
        if (!breq_reserve_response(r, o.len - reserved)) {
            *budget = 0;
            goto out;
        }
        reserved = o.len;
    }
    if (o.len > 0) {
        uint8_t *copy = breq_alloc(r, o.len);
        if (copy == NULL) {
            *budget = 0; /* the request's memory is full: nothing more this time */
            goto out;
        }
        memcpy(copy, o.buf, o.len);
        it->records = copy;
        it->records_len = (int32_t)o.len;
        *budget -= (int64_t)o.len;
        *first = false;
    }
out:
    breq_unreserve_response(r, reserved - (size_t)it->records_len);
    plog_read_release(&res);
    free(raw);
    free(o.buf);
    return true;
}

static void session_record_sent(breq *r, fstate *fs) {
    if (fs->session_id == 0 || r->b->fetch == NULL)
        return;
    fetch_sessions_lock(r->b);
    fetch_session *s = fetch_session_find(r->b, fs->session_id);
    /* A changed epoch means another request used the session meanwhile;
     * its indices may have moved, so leave it alone. */
    if (s != NULL && s->epoch == fs->session_epoch) {
        for (int i = 0; i < fs->n; i++) {
            const fitem *it = &fs->items[i];
            if (!it->include || it->sess_idx < 0 || it->sess_idx >= s->n)
                continue;
            fetch_session_part *e = &s->parts[it->sess_idx];
            e->sent_hw = it->hw;
            e->sent_lso = it->hw;
            e->sent_log_start = it->ls;
        }
        s->last_used_ms = fetch_now_ms();
    }
    fetch_sessions_unlock(r->b);
}

/* Builds the response from the items. False when memory ran out. */
/* Metrics: one fetch request per topic, with the record bytes it returns
 * and whether any of its partitions failed. Items keep the request's order,
 * where clients list a topic's partitions together; a topic listed in two
 * places counts twice. */
static void account_fetch(breq *r, const fstate *fs) {
    obs_metrics *m = r->b->metrics;
    if (m == NULL || !m->enabled)
        return;
    for (int i = 0; i < fs->n;) {
        const fitem *it = &fs->items[i];
        uint64_t bytes = 0;
        bool failed = false;
        const rpart *p = NULL;
        int j = i;
        for (; j < fs->n && same_topic(it, &fs->items[j], fs->by_id); j++) {
            bytes += fs->items[j].records_len > 0 ? (uint64_t)fs->items[j].records_len : 0;
            failed |= fs->items[j].err != KAFKA_ERR_NONE;
            if (p == NULL)
                p = fs->items[j].p;
        }
        obs_fetched(m, p ? obs_topic_of(m, p->topic, strlen(p->topic)) : NULL, bytes, failed);
        i = j;
    }
}

/* read_committed (consumers only): the last stable offset and the aborted
 * transactions that meet [fetch offset, LSO) - the records returned stop
 * at the LSO of the read, which only grows. false on OOM. */
#define FETCH_ABORTED_MAX 1000
static bool committed_view(breq *r, const fitem *it, kafka_fetch_response_partition_data *pd) {
    pstate_aborted few[16], *ab = few;
    rpart_lock(it->p);
    int64_t lso = replica_last_stable(it->p->r);
    int32_t n = replica_aborted(it->p->r, it->fetch_offset, lso, few, 16);
    if (n == 16) { /* more: room for the bound (rare; most ranges hold none) */
        ab = breq_calloc(r, FETCH_ABORTED_MAX, sizeof *ab);
        n = ab ? replica_aborted(it->p->r, it->fetch_offset, lso, ab, FETCH_ABORTED_MAX) : -1;
    }
    rpart_unlock(it->p);
    if (n < 0)
        return false;
    pd->last_stable_offset = lso < it->hw ? lso : it->hw;
    if (n == 0)
        return true;
    pd->aborted_transactions = breq_calloc(r, (size_t)n, sizeof *pd->aborted_transactions);
    if (pd->aborted_transactions == NULL)
        return false;
    for (int32_t i = 0; i < n; i++) {
        kafka_fetch_response_aborted_transaction_init(&pd->aborted_transactions[i]);
        pd->aborted_transactions[i].producer_id = ab[i].producer_id;
        pd->aborted_transactions[i].first_offset = ab[i].first_offset;
    }
    pd->aborted_transactions_count = n;
    return true;
}

static bool build(breq *r, fstate *fs) {
    kafka_fetch_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    resp->throttle_time_ms = 0;
    resp->error_code = fs->top_err;
    resp->session_id = fs->top_err ? 0 : fs->session_id;
    resp->responses_count = 0;
    if (fs->top_err != KAFKA_ERR_NONE)
        return true;

    int64_t budget = fs->max_bytes;
    if (ver <= 3 && budget > DOWNCONVERT_MAX_RESPONSE)
        budget = DOWNCONVERT_MAX_RESPONSE;
    bool first = true;
    for (int i = 0; i < fs->n; i++) {
        fitem *it = &fs->items[i];
        it->hw = it->ls = -1;
        it->records_len = 0;
        if (it->err == KAFKA_ERR_NONE && item_removed(it))
            it->err = fs->by_id ? KAFKA_ERR_UNKNOWN_TOPIC_ID : KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        bool ok = true;
        if (it->err == KAFKA_ERR_NONE)
            ok = ver <= 3 ? read_item_legacy(r, fs, it, &budget, &first)
                          : read_item(r, fs, it, &budget, &first);
        if (!ok)
            return false;
        it->include = !fs->incremental || it->err != KAFKA_ERR_NONE || it->records_len > 0 ||
                      it->hw != it->sent_hw || it->hw != it->sent_lso || it->ls != it->sent_ls;
    }

    if (fs->dconv.started) {
        dconv_budget *bud = &fs->dconv;
        if (bud->stopped && !fs->fetch_thread)
            LOG_DEBUG("fetch", "v%d fetch from %s stopped converting after %lld bytes of work%s", ver,
                      r->net->peer, (long long)bud->used, bud->throttle_ms ? " (throttled)" : "");
        fetch_dconv_settle(r->b, 0, bud->unsettled);
        resp->throttle_time_ms = bud->throttle_ms;
        *bud = (dconv_budget){0};
    }

    /* Group consecutive included items of one topic into a topic entry. */
    int ntop = 0;
    const fitem *prev = NULL;
    for (int i = 0; i < fs->n; i++) {
        if (!fs->items[i].include)
            continue;
        if (prev == NULL || !same_topic(prev, &fs->items[i], fs->by_id))
            ntop++;
        prev = &fs->items[i];
    }
    resp->responses = ntop ? breq_calloc(r, (size_t)ntop, sizeof *resp->responses) : NULL;
    if (ntop && resp->responses == NULL)
        return false;
    int ti = -1;
    prev = NULL;
    for (int i = 0; i < fs->n; i++) {
        fitem *it = &fs->items[i];
        if (!it->include)
            continue;
        if (prev == NULL || !same_topic(prev, it, fs->by_id)) {
            ti++;
            kafka_fetch_response_fetchable_topic_response *tr = &resp->responses[ti];
            kafka_fetch_response_fetchable_topic_response_init(tr);
            tr->topic = it->topic;
            tr->topic_id = it->topic_id;
            int np = 0;
            for (int j = i; j < fs->n; j++) {
                if (!same_topic(it, &fs->items[j], fs->by_id))
                    break;
                np += fs->items[j].include;
            }
            tr->partitions = breq_calloc(r, (size_t)np, sizeof *tr->partitions);
            if (tr->partitions == NULL)
                return false;
            tr->partitions_count = 0;
        }
        prev = it;
        kafka_fetch_response_fetchable_topic_response *tr = &resp->responses[ti];
        kafka_fetch_response_partition_data *pd = &tr->partitions[tr->partitions_count++];
        kafka_fetch_response_partition_data_init(pd);
        pd->partition_index = it->partition;
        pd->error_code = it->err;
        if (fs->replica_id >= 0 && it->p != NULL && it->err == KAFKA_ERR_NONE) {
            /* A follower is sent the leader's HW (it read up to the log end). */
            replica_offsets o;
            rpart_lock(it->p);
            replica_get_offsets(it->p->r, &o);
            rpart_unlock(it->p);
            it->hw = o.hw;
            it->ls = o.log_start;
        }
        pd->high_watermark = it->hw;
        if (it->diverged) {
            pd->diverging_epoch.epoch = it->div_epoch;
            pd->diverging_epoch.end_offset = it->div_end;
        }
        pd->last_stable_offset = ver >= 4 ? it->hw : -1;
        pd->log_start_offset = ver >= 5 ? it->ls : -1;
        pd->aborted_transactions_count = fs->isolation == 1 ? 0 : -1;
        if (fs->isolation == 1 && ver >= 4 && fs->replica_id < 0 && it->p != NULL &&
            it->err == KAFKA_ERR_NONE && !committed_view(r, it, pd))
            return false;
        pd->records =
            it->records_len > 0 ? (kbytes){it->records, it->records_len} : (kbytes){(const uint8_t *)"", 0};
    }
    resp->responses_count = ntop;
    session_record_sent(r, fs);
    account_fetch(r, fs);
    return true;
}

static void fetch_finish(breq *r, void *arg, bool expired) {
    (void)expired;
    fstate *fs = arg;
    fs->fetch_thread = true;
    bool ok = build(r, fs);
    release_items(r, fs);
    if (!ok) {
        LOG_WARN("fetch", "fetch from %s ran out of request memory; closing the connection", r->net->peer);
        breq_abort(r);
        return;
    }
    breq_complete(r);
}

breq_status api_fetch(breq *r) {
    kafka_fetch_request *req = r->req;
    int16_t ver = r->hdr.api_version;
    /* Followers and the metadata log's fetchers are brokers: CLUSTER_ACTION. */
    if (is_follower(r) && !bauthz_cluster(r, ACL_OP_CLUSTER_ACTION)) {
        kafka_fetch_response *resp = r->resp;
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->responses_count = 0;
        return BREQ_DONE;
    }
    /* A voter fetching the metadata log: the quorum answers it. */
    if (raft_codec_is_metadata_fetch(req) && bmeta_quorum(r->b->meta) != NULL)
        return api_quorum(r);
    fstate *fs = breq_calloc(r, 1, sizeof *fs);
    if (fs == NULL)
        return BREQ_CLOSE;
    fs->by_id = ver >= 13;
    fs->replica_id = ver >= 15 ? req->replica_state.replica_id : req->replica_id;
    if (fs->replica_id < 0)
        fs->replica_id = -1;
    fs->min_bytes = req->min_bytes;
    fs->isolation = ver >= 4 ? req->isolation_level : 0;
    int32_t max = ver >= 3 ? req->max_bytes : INT32_MAX;
    if (max > r->b->cfg->fetch_max_bytes)
        max = r->b->cfg->fetch_max_bytes;
    fs->max_bytes = max > 0 ? max : 0;
    if (!prepare(r, req, fs)) {
        release_items(r, fs);
        return BREQ_CLOSE;
    }
    if (fs->replica_id >= 0)
        follower_positions(r, fs);

    /* Old consumers wait while the down-conversion budget is empty, as
     * throttled clients of old Kafka brokers did (the response is held for
     * the throttle time, whatever the max wait; at most a second), so a
     * throttled consumer does not spin. */
    int64_t throttle = ver <= 3 ? fetch_dconv_wait_ms(r->b, dconv_cap(r)) : 0;
    bool data = fs->min_bytes <= 0 || fetch_ready(r, fs);
    if ((req->max_wait_ms > 0 && !data) || throttle > 0) {
        rpart **parts = breq_calloc(r, (size_t)fs->n, sizeof *parts);
        int np = 0;
        for (int i = 0; parts != NULL && i < fs->n; i++)
            if (fs->items[i].p != NULL)
                parts[np++] = fs->items[i].p;
        int64_t wait = throttle > 0 ? (throttle < 1000 ? throttle : 1000) : req->max_wait_ms;
        int64_t deadline = fetch_now_ms() + wait;
        fetch_ready_fn ready = throttle > 0 ? fetch_ready_throttled : fetch_ready;
        breq_parked(r);
        if (parts != NULL && fetch_wait(r->b, r, parts, np, deadline, ready, fetch_finish, fs))
            return BREQ_ASYNC;
    }
    bool ok = build(r, fs);
    release_items(r, fs);
    return ok ? BREQ_DONE : BREQ_CLOSE;
}
