/*
 * controller.c - the controller state machine. See controller.h.
 *
 * Shape of a request: each item (topic or resource) is validated against
 * the view; an accepted item's records are applied to the view at once, so
 * later items of the same request see it (two topics colliding in one
 * CreateTopics); the records of all accepted items go to the sink as one
 * batch; the request waits in `waiting` until ctrl_commit reaches the
 * batch's last offset. validate_only requests and refused appends rebuild
 * the view from the committed image and the remaining proposals, which
 * discards what was applied speculatively.
 *
 * Invariants (checked on entry and exit of every event): the view is the
 * committed image plus exactly the proposals, in offset order; every
 * proposal's last offset is past the committed offset; every waiting
 * request's offset is a proposal's; at most CTRL_PENDING_MAX wait.
 */
#include "controller/controller.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/gen/kafka_msgs.h"

#define REC_ARENA_LIMIT (256u << 20)

typedef struct proposal {
    int64_t last_offset;
    int32_t n;
    uint8_t **bufs; /* framed records (metadata/records.h) */
    size_t *lens;
} proposal;

typedef struct waiting {
    void *token;
    ctrl_kind kind;
    int64_t last_offset;
    int64_t deadline;
    ctrl_item_result *items;
    int32_t n;
} waiting;

/* Names with '.' read as '_' (they collide in metric names), counted. */
typedef struct collide_set {
    struct cs_slot {
        uint32_t hash;
        int32_t count;
        char *key;
    } * slots;
    uint32_t mask;
    int32_t used;
} collide_set;

struct controller {
    ctrl_config cfg;
    bool features_proposed; /* bootstrap_features wrote metadata.version (this activation) */
    ctrl_sink sink;
    md_image *committed;
    md_delta *view;
    collide_set collide;
    proposal *props;
    int32_t n_props, cap_props;
    waiting wait[CTRL_PENDING_MAX];
    int32_t n_wait;
    int64_t view_parts; /* partitions in the view */
    uint64_t rng;
    /* Broker liveness: last heartbeat per broker id (soft state: a new
     * active controller gives every broker a full session). */
    struct live {
        int32_t id;
        int64_t last;
    } * live;
    int32_t n_live, cap_live;
    uint64_t scanned_sig;   /* the broker states the last leader scan saw */
    int64_t next_rebalance; /* when the preferred-leader check runs next (0: not scheduled yet) */
    bool scan_again;
};

/* ---- small helpers --------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t committed_offset(const controller *c) { return md_image_offset(c->committed); }

static void msgf(ctrl_item_result *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msgf(ctrl_item_result *it, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
}

static void check_invariants(const controller *c) {
#ifndef NDEBUG
    int64_t off = committed_offset(c);
    for (int32_t i = 0; i < c->n_props; i++) {
        assert(c->props[i].last_offset > off);
        assert(i == 0 || c->props[i].last_offset > c->props[i - 1].last_offset);
    }
    assert(c->n_wait >= 0 && c->n_wait <= CTRL_PENDING_MAX);
    for (int32_t i = 0; i < c->n_wait; i++)
        assert(c->wait[i].last_offset > off);
    assert(c->view != NULL);
#else
    (void)c;
#endif
}

/* ---- the collision index ------------------------------------------------------ */

static uint32_t collide_hash(const char *s, int32_t n) {
    uint32_t h = 2166136261u;
    for (int32_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)(s[i] == '.' ? '_' : s[i])) * 16777619u;
    return h;
}

static bool collide_eq(const char *a, const char *b, int32_t n) {
    if ((int32_t)strlen(a) != n)
        return false;
    for (int32_t i = 0; i < n; i++)
        if ((a[i] == '.' ? '_' : a[i]) != (b[i] == '.' ? '_' : b[i]))
            return false;
    return true;
}

static void collide_free(collide_set *s) {
    for (uint32_t i = 0; s->slots && i <= s->mask; i++)
        free(s->slots[i].key);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static struct cs_slot *collide_find(collide_set *s, const char *name, int32_t n, bool add) {
    if (s->slots == NULL || (add && (uint32_t)(s->used + 1) * 2 > s->mask + 1)) {
        if (!add)
            return NULL;
        uint32_t ncap = s->slots ? (s->mask + 1) * 2 : 64;
        struct cs_slot *ns = calloc(ncap, sizeof *ns);
        if (ns == NULL)
            return NULL;
        for (uint32_t i = 0; s->slots && i <= s->mask; i++) {
            if (s->slots[i].key == NULL)
                continue;
            uint32_t j = s->slots[i].hash & (ncap - 1);
            while (ns[j].key)
                j = (j + 1) & (ncap - 1);
            ns[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->mask = ncap - 1;
    }
    uint32_t h = collide_hash(name, n);
    uint32_t i = h & s->mask;
    for (; s->slots[i].key; i = (i + 1) & s->mask)
        if (s->slots[i].hash == h && collide_eq(s->slots[i].key, name, n))
            return &s->slots[i];
    if (!add)
        return NULL;
    char *k = malloc((size_t)n + 1);
    if (k == NULL)
        return NULL;
    memcpy(k, name, (size_t)n);
    k[n] = '\0';
    s->slots[i] = (struct cs_slot){h, 0, k};
    s->used++;
    return &s->slots[i];
}

/* The existing topic whose name collides with name, or NULL. Entries keep
 * the first name counted; a count of 0 means none is live. */
static const struct cs_slot *collide_get(controller *c, kstr name) {
    struct cs_slot *e = collide_find(&c->collide, name.ptr, name.len, false);
    return e && e->count > 0 ? e : NULL;
}

static void collide_add(controller *c, const char *name, int32_t n, int delta) {
    struct cs_slot *e = collide_find(&c->collide, name, n, true);
    if (e) {
        e->count += delta;
        if (delta > 0 && e->count == 1 && strcmp(e->key, name) != 0 && (int32_t)strlen(e->key) == n)
            memcpy(e->key, name, (size_t)n); /* report the live spelling */
    }
}

/* ---- the view ------------------------------------------------------------------ */

static void props_free_one(proposal *p) {
    for (int32_t i = 0; i < p->n; i++)
        free(p->bufs[i]);
    free(p->bufs);
    free(p->lens);
}

static void count_parts(controller *c, const mdrec *rec);

/* The view anew: committed image, then every proposal. */
static void rebuild_view(controller *c) {
    if (c->view)
        md_delta_abort(c->view);
    c->view = md_delta_begin(c->committed);
    assert(c->view != NULL); /* OOM here leaves no way to validate: fail loudly */
    c->view_parts = md_image_partition_count(c->committed);
    arena a;
    arena_init(&a, REC_ARENA_LIMIT);
    for (int32_t i = 0; i < c->n_props; i++) {
        for (int32_t k = 0; k < c->props[i].n; k++) {
            mdrec rec;
            char err[256];
            int rc = mdrec_decode(c->props[i].bufs[k], c->props[i].lens[k], &a, &rec);
            if (rc == MDREC_OK) {
                count_parts(c, &rec);
                rc = md_apply(c->view, &rec, err, sizeof err);
            }
            /* A proposal applied cleanly when it was made; on top of a newer
             * committed image it still must, as only this controller writes. */
            assert(rc == 0);
        }
        arena_reset(&a);
    }
    arena_reset(&a);
    collide_free(&c->collide);
    const md_image *img = c->committed;
    for (int32_t i = 0; i < md_image_topic_count(img); i++) {
        const md_topic *t = md_image_topic_at(img, i);
        collide_add(c, t->name, t->name_len, 1);
    }
    /* Proposals' topics: the view knows them; count the ones it adds. */
    for (int32_t i = 0; i < c->n_props; i++) {
        for (int32_t k = 0; k < c->props[i].n; k++) {
            mdrec rec;
            if (mdrec_decode(c->props[i].bufs[k], c->props[i].lens[k], &a, &rec) == MDREC_OK &&
                rec.type == KAFKA_MREC_TOPIC) {
                const kafka_topic_record *tr = rec.body;
                collide_add(c, tr->name.ptr, tr->name.len, 1);
            }
        }
        arena_reset(&a);
    }
    arena_reset(&a);
}

/* Keeps the view's partition count as a record goes in (before it applies). */
static void count_parts(controller *c, const mdrec *rec) {
    if (rec->type == KAFKA_MREC_PARTITION) {
        c->view_parts++;
    } else if (rec->type == KAFKA_MREC_REMOVE_TOPIC) {
        const md_topic *t =
            md_delta_topic_by_id(c->view, ((const kafka_remove_topic_record *)rec->body)->topic_id);
        if (t)
            c->view_parts -= t->n_partitions;
    }
}

/* Applies a record to the view (the controller produced it, so it must apply). */
static void view_apply(controller *c, const mdrec *rec) {
    char err[256];
    count_parts(c, rec);
    int rc = md_apply(c->view, rec, err, sizeof err);
    assert(rc == MD_OK);
    (void)rc;
    if (rec->type == KAFKA_MREC_TOPIC) {
        const kafka_topic_record *tr = rec->body;
        collide_add(c, tr->name.ptr, tr->name.len, 1);
    }
}

/* ---- batches of records under construction -------------------------------------- */

typedef struct rbatch {
    arena a;
    mdrec *recs;
    int32_t n, cap;
    bool oom;
} rbatch;

static void rb_init(rbatch *b) {
    memset(b, 0, sizeof *b);
    arena_init(&b->a, REC_ARENA_LIMIT);
}

static void rb_free(rbatch *b) {
    free(b->recs);
    arena_reset(&b->a);
}

/* Adds a record (body copied into the batch's arena) and applies it to the view. */
static void rb_add(controller *c, rbatch *b, int16_t type, const void *body) {
    if (b->oom)
        return;
    if (b->n == b->cap) {
        int32_t ncap = b->cap ? b->cap * 2 : 16;
        mdrec *nr = realloc(b->recs, (size_t)ncap * sizeof *nr);
        if (nr == NULL) {
            b->oom = true;
            return;
        }
        b->recs = nr;
        b->cap = ncap;
    }
    const kafka_record_info *ri = kafka_metadata_record_lookup(type);
    assert(ri != NULL);
    /* Encode then decode: the copy owns its arrays and strings, and the
     * record is checked to round trip before anything depends on it. */
    mdrec tmp = {type, mdrec_write_version(type), ri, (void *)body};
    uint8_t *buf;
    size_t len;
    mdrec out;
    if (mdrec_encode_alloc(&tmp, &b->a, &buf, &len) != MDREC_OK ||
        mdrec_decode(buf, len, &b->a, &out) != MDREC_OK) {
        b->oom = true;
        return;
    }
    b->recs[b->n++] = out;
    view_apply(c, &out);
}

/* Sends the batch; returns the append result (error 0 and last offset, or
 * the error). Registers the proposal when it is not committed yet. */
static ctrl_append_result rb_send(controller *c, rbatch *b) {
    ctrl_append_result res = {KAFKA_ERR_UNKNOWN_SERVER_ERROR, -1};
    if (b->oom || b->n == 0) {
        rebuild_view(c);
        return res;
    }
    /* Encode for the proposal list first: after the sink call the commit
     * may already have happened. */
    uint8_t **bufs = calloc((size_t)b->n, sizeof *bufs);
    size_t *lens = calloc((size_t)b->n, sizeof *lens);
    bool ok = bufs && lens;
    for (int32_t i = 0; ok && i < b->n; i++) {
        lens[i] = mdrec_size(&b->recs[i]);
        bufs[i] = malloc(lens[i] ? lens[i] : 1);
        ok = bufs[i] != NULL;
        if (ok) {
            wire_writer w;
            wire_writer_init(&w, bufs[i], lens[i]);
            ok = mdrec_encode(&b->recs[i], &w) == WIRE_OK && w.len == lens[i];
        }
    }
    if (ok && c->n_props == c->cap_props) {
        int32_t ncap = c->cap_props ? c->cap_props * 2 : 8;
        proposal *np = realloc(c->props, (size_t)ncap * sizeof *np);
        ok = np != NULL;
        if (np) {
            c->props = np;
            c->cap_props = ncap;
        }
    }
    if (!ok) {
        for (int32_t i = 0; bufs && i < b->n; i++)
            free(bufs[i]);
        free(bufs);
        free(lens);
        rebuild_view(c);
        return res;
    }
    res = c->sink.append(c->sink.ctx, b->recs, b->n);
    if (res.error != 0 || res.last_offset <= committed_offset(c)) {
        /* Refused, or committed during the call: nothing to keep. */
        for (int32_t i = 0; i < b->n; i++)
            free(bufs[i]);
        free(bufs);
        free(lens);
        if (res.error != 0)
            rebuild_view(c);
        return res;
    }
    c->props[c->n_props++] = (proposal){res.last_offset, b->n, bufs, lens};
    return res;
}

/* ---- replies -------------------------------------------------------------------- */

static void reply_now(controller *c, void *token, ctrl_kind kind, const ctrl_item_result *items, int32_t n,
                      int64_t last_offset) {
    ctrl_result r = {kind, items, n, last_offset};
    c->sink.reply(c->sink.ctx, token, &r);
}

/* Replies now if the records are committed (or there were none), else
 * parks the request. Takes ownership of items (malloc'd). */
static void finish(controller *c, void *token, ctrl_kind kind, ctrl_item_result *items, int32_t n,
                   ctrl_append_result ar, bool sent, int64_t now) {
    if (sent && ar.error != 0) {
        /* Every item that was accepted shares the append's fate. */
        for (int32_t i = 0; i < n; i++)
            if (items[i].error == 0) {
                items[i].error = ar.error;
                msgf(&items[i], "the metadata change could not be written (%s)", kafka_error_name(ar.error));
            }
    }
    if (!sent || ar.error != 0 || ar.last_offset <= committed_offset(c)) {
        reply_now(c, token, kind, items, n, sent && ar.error == 0 ? ar.last_offset : -1);
        free(items);
        return;
    }
    if (c->n_wait == CTRL_PENDING_MAX) {
        /* The records are on their way; the client learns the outcome by
         * looking (the append cannot be taken back). */
        for (int32_t i = 0; i < n; i++)
            if (items[i].error == 0) {
                items[i].error = KAFKA_ERR_REQUEST_TIMED_OUT;
                msgf(&items[i], "too many metadata changes are waiting to commit");
            }
        reply_now(c, token, kind, items, n, ar.last_offset);
        free(items);
        return;
    }
    c->wait[c->n_wait++] = (waiting){token, kind, ar.last_offset, now + c->cfg.request_timeout_ms, items, n};
}

/* ---- lifecycle -------------------------------------------------------------------- */

void ctrl_config_default(ctrl_config *c) {
    memset(c, 0, sizeof *c);
    c->node_id = 1;
    c->default_partitions = 1;
    c->default_replication_factor = 1;
    c->delete_topic_enable = true;
    c->request_timeout_ms = 30000;
    c->partitions_max = CTRL_PARTITIONS_MAX;
    c->seed = 1;
    c->broker_session_timeout_ms = 9000;
}

controller *ctrl_create(const ctrl_config *cfg, const ctrl_sink *sink, md_image *committed) {
    controller *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->cfg = *cfg;
    if (c->cfg.partitions_max <= 0 || c->cfg.partitions_max > CTRL_PARTITIONS_MAX)
        c->cfg.partitions_max = CTRL_PARTITIONS_MAX;
    c->sink = *sink;
    c->rng = cfg->seed;
    c->committed = md_image_ref(committed);
    rebuild_view(c);
    check_invariants(c);
    return c;
}

void ctrl_destroy(controller *c, int16_t error) {
    if (c == NULL)
        return;
    for (int32_t i = 0; i < c->n_wait; i++) {
        waiting *w = &c->wait[i];
        for (int32_t k = 0; k < w->n; k++)
            if (w->items[k].error == 0) {
                w->items[k].error = error;
                msgf(&w->items[k], "the controller stopped before the change was committed");
            }
        reply_now(c, w->token, w->kind, w->items, w->n, w->last_offset);
        free(w->items);
    }
    for (int32_t i = 0; i < c->n_props; i++)
        props_free_one(&c->props[i]);
    free(c->props);
    free(c->live);
    md_delta_abort(c->view);
    collide_free(&c->collide);
    md_image_unref(c->committed);
    free(c);
}

void ctrl_commit(controller *c, md_image *image, int64_t now) {
    (void)now;
    assert(md_image_offset(image) >= committed_offset(c));
    md_image_unref(c->committed);
    c->committed = md_image_ref(image);
    int64_t off = committed_offset(c);
    int32_t k = 0;
    for (int32_t i = 0; i < c->n_props; i++) {
        if (c->props[i].last_offset <= off)
            props_free_one(&c->props[i]);
        else
            c->props[k++] = c->props[i];
    }
    c->n_props = k;
    rebuild_view(c);
    /* Answer what is committed, in the order the requests came. */
    int32_t j = 0;
    for (int32_t i = 0; i < c->n_wait; i++) {
        waiting w = c->wait[i];
        if (w.last_offset <= off) {
            reply_now(c, w.token, w.kind, w.items, w.n, w.last_offset);
            free(w.items);
        } else {
            c->wait[j++] = w;
        }
    }
    c->n_wait = j;
    check_invariants(c);
}

/* ---- broker liveness and leaders ------------------------------------------------------- */

static struct live *live_of(controller *c, int32_t id, int64_t now) {
    for (int32_t i = 0; i < c->n_live; i++)
        if (c->live[i].id == id)
            return &c->live[i];
    if (c->n_live == c->cap_live) {
        int32_t ncap = c->cap_live ? c->cap_live * 2 : 16;
        struct live *nl = realloc(c->live, (size_t)ncap * sizeof *nl);
        if (nl == NULL)
            return NULL;
        c->live = nl;
        c->cap_live = ncap;
    }
    c->live[c->n_live] = (struct live){id, now};
    return &c->live[c->n_live++];
}

int16_t ctrl_broker_heartbeat(controller *c, int32_t id, int64_t broker_epoch, bool want_shut_down,
                              int64_t now, bool *fenced, bool *shut_down) {
    check_invariants(c);
    *fenced = true;
    *shut_down = false;
    const md_broker *b = md_image_broker(c->committed, id);
    if (b == NULL)
        return KAFKA_ERR_BROKER_ID_NOT_REGISTERED;
    if (b->epoch != broker_epoch)
        return KAFKA_ERR_STALE_BROKER_EPOCH;
    struct live *l = live_of(c, id, now);
    if (l)
        l->last = now;
    *fenced = b->fenced;
    if (want_shut_down) {
        *shut_down = b->fenced;
        if (!b->fenced && c->n_props == 0) {
            rbatch rb;
            rb_init(&rb);
            kafka_fence_broker_record r;
            kafka_fence_broker_record_init(&r);
            r.id = id;
            r.epoch = broker_epoch;
            rb_add(c, &rb, KAFKA_MREC_FENCE_BROKER, &r);
            rb_send(c, &rb);
            rb_free(&rb);
        }
        check_invariants(c);
        return 0;
    }
    if (b->fenced && c->n_props == 0) {
        rbatch rb;
        rb_init(&rb);
        kafka_unfence_broker_record r;
        kafka_unfence_broker_record_init(&r);
        r.id = id;
        r.epoch = broker_epoch;
        rb_add(c, &rb, KAFKA_MREC_UNFENCE_BROKER, &r);
        rb_send(c, &rb);
        rb_free(&rb);
    }
    check_invariants(c);
    return 0;
}

static bool usable(const md_image *img, int32_t id) {
    const md_broker *b = md_image_broker(img, id);
    return b != NULL && !b->fenced;
}

static uint64_t broker_sig(const md_image *img) {
    uint64_t h = 1469598103934665603ULL;
    for (int32_t i = 0; i < md_image_broker_count(img); i++) {
        const md_broker *b = md_image_broker_at(img, i);
        h = (h ^ (uint64_t)(uint32_t)b->id) * 1099511628211ULL;
        h = (h ^ (uint64_t)b->epoch) * 1099511628211ULL;
        h = (h ^ (uint64_t)b->fenced) * 1099511628211ULL;
    }
    return h;
}

#define CTRL_ELECTIONS_PER_TICK 10000

/* Whether the topic's effective unclean.leader.election.enable is true. */
static bool topic_unclean(controller *c, const md_topic *tp) {
    if (c->cfg.configs.effective == NULL)
        return false;
    const md_resource *res = md_image_resource(c->committed, MD_RESOURCE_TOPIC, tp->name);
    const char *keys[CTRL_TOPIC_CONFIGS_MAX], *vals[CTRL_TOPIC_CONFIGS_MAX];
    int n = 0;
    for (int32_t i = 0; res != NULL && i < res->n && n < CTRL_TOPIC_CONFIGS_MAX; i++, n++) {
        keys[n] = res->items[i].key;
        vals[n] = res->items[i].value;
    }
    char v[16] = "";
    if (!c->cfg.configs.effective(c->cfg.configs.ctx, keys, vals, n, "unclean.leader.election.enable", v,
                                  sizeof v))
        return false;
    return strcmp(v, "true") == 0;
}

/* Fences brokers whose session expired, then moves leadership off fenced
 * or unregistered leaders and onto leaderless partitions with a live ISR
 * member. One batch per tick at most. */
static void liveness(controller *c, int64_t now) {
    if (c->n_props > 0)
        return;
    const md_image *img = c->committed;
    rbatch rb;
    rb_init(&rb);
    for (int32_t i = 0; i < md_image_broker_count(img); i++) {
        const md_broker *b = md_image_broker_at(img, i);
        if (b->id == c->cfg.node_id || b->fenced)
            continue;
        struct live *l = live_of(c, b->id, now);
        if (l && now - l->last > c->cfg.broker_session_timeout_ms) {
            kafka_fence_broker_record r;
            kafka_fence_broker_record_init(&r);
            r.id = b->id;
            r.epoch = b->epoch;
            rb_add(c, &rb, KAFKA_MREC_FENCE_BROKER, &r);
        }
    }
    if (rb.n > 0) {
        rb_send(c, &rb);
        rb_free(&rb);
        c->scan_again = true;
        return; /* elections follow once the fencing is committed */
    }
    uint64_t sig = broker_sig(img);
    if (sig == c->scanned_sig && !c->scan_again) {
        rb_free(&rb);
        return;
    }
    int32_t changes = 0;
    for (int32_t t = 0; t < md_image_topic_count(img) && changes < CTRL_ELECTIONS_PER_TICK; t++) {
        const md_topic *tp = md_image_topic_at(img, t);
        for (int32_t p = 0; p < tp->n_partitions && changes < CTRL_ELECTIONS_PER_TICK; p++) {
            const md_partition *mp = md_topic_partition(tp, p);
            /* The ISR without its fenced or unregistered members (the last
             * member stays, so the ISR is never empty), and a leader from it. */
            int32_t keep[MD_REPLICAS_MAX];
            int32_t nk = 0;
            bool isr_dead = false;
            for (int32_t k = 0; k < mp->isr.n; k++) {
                if (usable(img, mp->isr.ids[k]) && nk < MD_REPLICAS_MAX)
                    keep[nk++] = mp->isr.ids[k];
                else
                    isr_dead = true;
            }
            bool leader_ok = mp->leader >= 0 && usable(img, mp->leader);
            if (leader_ok && !isr_dead)
                continue;
            int32_t next = leader_ok ? mp->leader : nk > 0 ? keep[0] : -1;
            if (next < 0 && topic_unclean(c, tp)) {
                for (int32_t k = 0; k < mp->replicas.n && next < 0; k++)
                    if (usable(img, mp->replicas.ids[k]))
                        next = mp->replicas.ids[k];
                if (next >= 0) {
                    keep[0] = next;
                    nk = 1;
                }
            }
            kafka_partition_change_record r;
            kafka_partition_change_record_init(&r);
            r.topic_id = tp->id;
            r.partition_id = p;
            r.leader = next == mp->leader ? -2 : next;
            if (nk > 0 && nk != mp->isr.n) {
                r.isr = keep;
                r.isr_count = nk;
            }
            if (r.leader == -2 && r.isr_count < 0)
                continue; /* leaderless and nobody to elect: stays so */
            rb_add(c, &rb, KAFKA_MREC_PARTITION_CHANGE, &r);
            changes++;
        }
    }
    bool sent = true;
    if (rb.n > 0)
        sent = rb_send(c, &rb).error == 0;
    rb_free(&rb);
    /* A refused append (disk full, no longer the leader) is retried. */
    c->scan_again = !sent || changes >= CTRL_ELECTIONS_PER_TICK;
    c->scanned_sig = sig;
}

/* The preferred-leader check (auto.leader.rebalance.enable): per broker,
 * the partitions whose first replica it is, and of those the ones another
 * broker leads; over the threshold, each of those whose preferred replica
 * is live and in the ISR gets it back as leader (a PartitionChangeRecord,
 * as a preferred ElectLeaders writes). O(partitions x brokers) per check;
 * at most CTRL_ELECTIONS_PER_TICK moves per tick (the rest next tick). */
#define REBALANCE_BROKERS_MAX 4096
static bool ids_have(const md_ids *s, int32_t id);
static void rebalance(controller *c, int64_t now) {
    if (!c->cfg.auto_leader_rebalance || c->cfg.leader_imbalance_check_ms <= 0)
        return;
    if (c->next_rebalance == 0) {
        c->next_rebalance = now + c->cfg.leader_imbalance_check_ms; /* one interval after activation */
        return;
    }
    if (now < c->next_rebalance || c->n_props > 0)
        return;
    c->next_rebalance = now + c->cfg.leader_imbalance_check_ms;
    const md_image *img = c->committed;
    int32_t nb = md_image_broker_count(img);
    if (nb > REBALANCE_BROKERS_MAX)
        nb = REBALANCE_BROKERS_MAX;
    int32_t *ids = calloc((size_t)(nb > 0 ? nb : 1), 3 * sizeof *ids);
    if (ids == NULL)
        return;
    int32_t *preferred = ids + nb, *elsewhere = ids + 2 * nb;
    for (int32_t i = 0; i < nb; i++)
        ids[i] = md_image_broker_at(img, i)->id;
    for (int32_t t = 0; t < md_image_topic_count(img); t++) {
        const md_topic *tp = md_image_topic_at(img, t);
        for (int32_t p = 0; p < tp->n_partitions; p++) {
            const md_partition *mp = md_topic_partition(tp, p);
            if (mp->replicas.n == 0)
                continue;
            for (int32_t i = 0; i < nb; i++)
                if (ids[i] == mp->replicas.ids[0]) {
                    preferred[i]++;
                    elsewhere[i] += mp->leader != ids[i];
                    break;
                }
        }
    }
    rbatch rb;
    rb_init(&rb);
    int32_t changes = 0;
    for (int32_t t = 0; t < md_image_topic_count(img) && changes < CTRL_ELECTIONS_PER_TICK; t++) {
        const md_topic *tp = md_image_topic_at(img, t);
        for (int32_t p = 0; p < tp->n_partitions && changes < CTRL_ELECTIONS_PER_TICK; p++) {
            const md_partition *mp = md_topic_partition(tp, p);
            int32_t pref = mp->replicas.n > 0 ? mp->replicas.ids[0] : -1;
            if (pref < 0 || mp->leader == pref || !usable(img, pref) || !ids_have(&mp->isr, pref))
                continue;
            int32_t i = 0;
            while (i < nb && ids[i] != pref)
                i++;
            if (i == nb || (int64_t)elsewhere[i] * 100 <= (int64_t)c->cfg.leader_imbalance_pct * preferred[i])
                continue;
            kafka_partition_change_record r;
            kafka_partition_change_record_init(&r);
            r.topic_id = tp->id;
            r.partition_id = p;
            r.leader = pref;
            rb_add(c, &rb, KAFKA_MREC_PARTITION_CHANGE, &r);
            changes++;
        }
    }
    if (rb.n > 0)
        rb_send(c, &rb);
    rb_free(&rb);
    free(ids);
    if (changes >= CTRL_ELECTIONS_PER_TICK)
        c->next_rebalance = now; /* more to move: the next tick goes on */
}

static void bootstrap_features(controller *c);

void ctrl_tick(controller *c, int64_t now) {
    liveness(c, now);
    rebalance(c, now);
    bootstrap_features(c);
    int32_t j = 0;
    for (int32_t i = 0; i < c->n_wait; i++) {
        waiting w = c->wait[i];
        if (w.deadline <= now) {
            for (int32_t k = 0; k < w.n; k++)
                if (w.items[k].error == 0) {
                    w.items[k].error = KAFKA_ERR_REQUEST_TIMED_OUT;
                    msgf(&w.items[k], "the metadata change was not committed within %lld ms",
                         (long long)c->cfg.request_timeout_ms);
                }
            reply_now(c, w.token, w.kind, w.items, w.n, w.last_offset);
            free(w.items);
        } else {
            c->wait[j++] = w;
        }
    }
    c->n_wait = j;
    check_invariants(c);
}

int64_t ctrl_next_deadline(const controller *c) {
    int64_t next = INT64_MAX;
    if (c->cfg.auto_leader_rebalance && c->next_rebalance > 0)
        next = c->next_rebalance;
    for (int32_t i = 0; i < c->n_wait; i++)
        if (c->wait[i].deadline < next)
            next = c->wait[i].deadline;
    return next;
}

/* ---- names and placement ------------------------------------------------------------ */

int ctrl_validate_topic_name(kstr name, char *msg, size_t msgn) {
    if (name.len <= 0) {
        snprintf(msg, msgn, "topic name is empty");
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if (name.len > CTRL_NAME_MAX) {
        snprintf(msg, msgn, "topic name is %d characters long; the limit is %d", name.len, CTRL_NAME_MAX);
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if ((name.len == 1 && name.ptr[0] == '.') ||
        (name.len == 2 && name.ptr[0] == '.' && name.ptr[1] == '.')) {
        snprintf(msg, msgn, "topic name cannot be '.' or '..'");
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    for (int i = 0; i < name.len; i++) {
        char ch = name.ptr[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-';
        if (!ok) {
            snprintf(
                msg, msgn,
                "topic name '%.*s' contains a character other than ASCII letters, digits, '.', '_' and '-'",
                name.len > 64 ? 64 : name.len, name.ptr);
            return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
        }
    }
    return 0;
}

int ctrl_place_replicas(const int32_t *brokers, const char *const *racks, int32_t n_brokers,
                        int32_t n_partitions, int32_t rf, int32_t first_partition, uint64_t *rng,
                        int32_t *out) {
    if (rf <= 0 || rf > n_brokers || n_brokers <= 0)
        return -1;
    /* Order the brokers so that consecutive ones are in different racks:
     * rack by rack in turn (racks sorted by first appearance). */
    int32_t *order = malloc((size_t)n_brokers * sizeof *order);
    const char **rk = malloc((size_t)n_brokers * sizeof *rk);
    int32_t *rack_of = malloc((size_t)n_brokers * sizeof *rack_of);
    if (!order || !rk || !rack_of) {
        free(order);
        free(rk);
        free(rack_of);
        return -1;
    }
    bool any_rack = false;
    for (int32_t i = 0; i < n_brokers; i++)
        any_rack |= racks && racks[i] != NULL;
    int32_t n_racks = 0;
    if (any_rack) {
        /* Distinct racks in name order (a broker without one counts as the
         * rack ""), then each broker's rack index. */
        for (int32_t i = 0; i < n_brokers; i++) {
            const char *name = racks[i] ? racks[i] : "";
            int32_t r = 0;
            while (r < n_racks && strcmp(rk[r], name) < 0)
                r++;
            if (r < n_racks && strcmp(rk[r], name) == 0)
                continue;
            memmove(&rk[r + 1], &rk[r], (size_t)(n_racks - r) * sizeof *rk);
            rk[r] = name;
            n_racks++;
        }
        for (int32_t i = 0; i < n_brokers; i++) {
            const char *name = racks[i] ? racks[i] : "";
            int32_t r = 0;
            while (strcmp(rk[r], name) != 0)
                r++;
            rack_of[i] = r;
        }
        int32_t k = 0;
        for (int32_t round = 0; k < n_brokers; round++) {
            for (int32_t r = 0; r < n_racks; r++) {
                /* the round-th broker of rack r */
                int32_t seen = 0;
                for (int32_t i = 0; i < n_brokers; i++)
                    if (rack_of[i] == r && seen++ == round) {
                        order[k++] = i;
                        break;
                    }
            }
        }
    } else {
        n_racks = n_brokers; /* every broker is its own "rack" */
        for (int32_t i = 0; i < n_brokers; i++) {
            order[i] = i;
            rack_of[i] = i;
        }
    }
    int32_t n = n_brokers;
    uint64_t start = rng_next(rng) % (uint64_t)n;
    uint64_t shift = rng_next(rng) % (uint64_t)n;
    for (int32_t p = 0; p < n_partitions; p++) {
        int32_t pid = first_partition + p;
        if (pid > 0 && pid % n == 0)
            shift++;
        int32_t first = (int32_t)(((uint64_t)pid + start) % (uint64_t)n);
        int32_t *rep = out + (size_t)p * (size_t)rf;
        rep[0] = order[first];
        int32_t got = 1, k = 0;
        /* racks and brokers used so far by this partition */
        while (got < rf) {
            int32_t idx;
            if (n == 1) {
                idx = first;
            } else {
                uint64_t s = (shift * (uint64_t)(any_rack ? n_racks : 1) + (uint64_t)k) % (uint64_t)(n - 1);
                idx = (int32_t)(((uint64_t)first + 1 + s) % (uint64_t)n);
            }
            int32_t cand = order[idx];
            bool broker_used = false, rack_used = false;
            for (int32_t j = 0; j < got; j++) {
                broker_used |= rep[j] == cand;
                rack_used |= rack_of[rep[j]] == rack_of[cand];
            }
            /* Prefer a new rack; once every rack holds a replica, any broker
             * not yet used will do. */
            int32_t racks_used = 0;
            for (int32_t r = 0; r < n_racks && any_rack; r++) {
                for (int32_t j = 0; j < got; j++)
                    if (rack_of[rep[j]] == r) {
                        racks_used++;
                        break;
                    }
            }
            bool racks_full = !any_rack || racks_used >= n_racks;
            if (!broker_used && (!rack_used || racks_full))
                rep[got++] = cand;
            k++;
            assert(k <= 4 * n * n + 4); /* every candidate is tried within n - 1 steps per round */
        }
        for (int32_t j = 0; j < rf; j++)
            rep[j] = brokers[rep[j]];
    }
    free(order);
    free(rk);
    free(rack_of);
    return 0;
}

/* The brokers new replicas may go to: registered, unfenced, not shutting down. */
typedef struct live_brokers {
    int32_t *ids;
    const char **racks;
    int32_t n;
} live_brokers;

static bool live_brokers_get(const md_delta *v, const md_image *committed, live_brokers *out) {
    (void)v;
    /* Broker registrations are read from the committed image: the view
     * has them too, but the image's array is the one with stable order. */
    int32_t n = md_image_broker_count(committed);
    out->ids = n ? malloc((size_t)n * sizeof *out->ids) : NULL;
    out->racks = n ? malloc((size_t)n * sizeof *out->racks) : NULL;
    out->n = 0;
    if (n && (!out->ids || !out->racks)) {
        free(out->ids);
        free(out->racks);
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        const md_broker *b = md_image_broker_at(committed, i);
        if (b->fenced || b->in_controlled_shutdown)
            continue;
        out->ids[out->n] = b->id;
        out->racks[out->n] = b->rack;
        out->n++;
    }
    return true;
}

static void live_brokers_free(live_brokers *l) {
    free(l->ids);
    free(l->racks);
}

static bool broker_live(const live_brokers *l, int32_t id) {
    for (int32_t i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return true;
    return false;
}

static int rf_error(ctrl_item_result *it, int32_t rf, const live_brokers *l) {
    if (l->n == 1)
        msgf(
            it,
            "Replication factor %d cannot be met: this cluster has a single broker (node %d), so the largest "
            "possible replication factor is 1.",
            rf, l->ids[0]);
    else
        msgf(it,
             "Unable to replicate the partition %d time(s): the target replication factor of %d cannot be "
             "reached "
             "because only %d broker(s) are registered.",
             rf, rf, l->n);
    return KAFKA_ERR_INVALID_REPLICATION_FACTOR;
}

/* Checks one partition's explicit assignment. */
static int check_assignment(const ctrl_assignment *a, int32_t part, const live_brokers *l,
                            ctrl_item_result *it) {
    if (a->n <= 0) {
        msgf(it, "The replica assignment of partition %d is empty.", part);
        return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
    }
    if (a->n > MD_REPLICAS_MAX) {
        msgf(it, "The replica assignment of partition %d lists %d replicas; the limit is %d.", part, a->n,
             MD_REPLICAS_MAX);
        return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
    }
    for (int32_t i = 0; i < a->n; i++) {
        if (!broker_live(l, a->brokers[i])) {
            if (l->n == 1)
                msgf(it, "The replica assignment of partition %d names broker %d, but the only broker is %d.",
                     part, a->brokers[i], l->ids[0]);
            else
                msgf(it,
                     "The replica assignment of partition %d names broker %d, which is not a registered, "
                     "unfenced broker.",
                     part, a->brokers[i]);
            return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
        }
        for (int32_t j = 0; j < i; j++)
            if (a->brokers[j] == a->brokers[i]) {
                msgf(it, "The replica assignment of partition %d names broker %d twice.", part,
                     a->brokers[i]);
                return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
    }
    return 0;
}

static kuuid new_topic_id(controller *c) {
    for (;;) {
        kuuid u;
        uint64_t a = rng_next(&c->rng), b = rng_next(&c->rng);
        memcpy(u.b, &a, 8);
        memcpy(u.b + 8, &b, 8);
        u.b[6] = (uint8_t)((u.b[6] & 0x0f) | 0x40); /* version 4 */
        u.b[8] = (uint8_t)((u.b[8] & 0x3f) | 0x80);
        if (!kuuid_is_zero(u) && md_delta_topic_by_id(c->view, u) == NULL)
            return u;
    }
}

static bool usable(const md_image *img, int32_t id);

/* Emits the PartitionRecords for partitions [first, first + n) of topic id. */
static void emit_partitions(controller *c, rbatch *b, kuuid id, int32_t first, int32_t n, int32_t rf,
                            const int32_t *replicas) {
    kuuid dirs[MD_REPLICAS_MAX];
    memset(dirs, 0, sizeof dirs); /* unassigned directories */
    for (int32_t p = 0; p < n && !b->oom; p++) {
        kafka_partition_record r;
        kafka_partition_record_init(&r);
        r.partition_id = first + p;
        r.topic_id = id;
        r.replicas = (int32_t *)&replicas[(size_t)p * (size_t)rf];
        r.replicas_count = rf;
        r.removing_replicas_count = 0;
        r.adding_replicas_count = 0;
        /* The first replica on a live broker (a manual assignment may name
         * a fenced one), or none until one returns (the liveness scan). */
        r.leader = -1;
        for (int32_t k = 0; k < rf && r.leader < 0; k++)
            if (usable(c->committed, r.replicas[k]))
                r.leader = r.replicas[k];
        /* The ISR is the leader alone (or, leaderless, the first replica):
         * followers do not fetch yet, so no other replica is in sync, and a
         * failover must never pick one that holds nothing. */
        int32_t isr0 = r.leader >= 0 ? r.leader : r.replicas[0];
        r.isr = &isr0;
        r.isr_count = 1;
        r.leader_epoch = 0;
        r.partition_epoch = 0;
        r.directories = dirs;
        r.directories_count = rf;
        rb_add(c, b, KAFKA_MREC_PARTITION, &r);
    }
}

/* ---- duplicate detection within a request ------------------------------------------ */

/* Marks items whose name (and, for refs, id) appears more than once.
 * Sorting indexes keeps it O(n log n). */
typedef struct name_ix {
    kstr name;
    kuuid id;
    int32_t i;
} name_ix;

static int cmp_name_ix(const void *a, const void *b) {
    const name_ix *x = a, *y = b;
    int32_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n > 0 ? memcmp(x->name.ptr, y->name.ptr, (size_t)n) : 0;
    if (c == 0 && x->name.len != y->name.len)
        c = x->name.len < y->name.len ? -1 : 1;
    if (c == 0)
        c = memcmp(x->id.b, y->id.b, 16);
    if (c == 0)
        c = x->i < y->i ? -1 : x->i > y->i;
    return c;
}

static bool *dup_flags(const kstr *names, const kuuid *ids, int32_t n) {
    bool *dup = calloc((size_t)(n ? n : 1), 1);
    name_ix *ix = n ? malloc((size_t)n * sizeof *ix) : NULL;
    if (dup == NULL || (n && ix == NULL)) {
        free(dup);
        free(ix);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++)
        ix[i] = (name_ix){names[i].len >= 0 ? names[i] : (kstr){"", 0}, ids ? ids[i] : (kuuid){{0}}, i};
    if (n)
        qsort(ix, (size_t)n, sizeof *ix, cmp_name_ix);
    for (int32_t i = 1; i < n; i++) {
        name_ix *a = &ix[i - 1], *b = &ix[i];
        if (kstr_eq(a->name, b->name) && memcmp(a->id.b, b->id.b, 16) == 0)
            dup[a->i] = dup[b->i] = true;
    }
    free(ix);
    return dup;
}

/* ---- reserved names ------------------------------------------------------------------- */

bool ctrl_internal_topic(kstr name) {
    return kstr_eq(name, kstr_c("__consumer_offsets")) || kstr_eq(name, kstr_c("__transaction_state")) ||
           kstr_eq(name, kstr_c("__share_group_state"));
}

static bool metadata_log_name(kstr name) {
    return kstr_eq(name, kstr_c("__cluster_metadata")) || kstr_eq(name, kstr_c("__sluice_metadata"));
}

static bool has_stray_suffix(kstr name) {
    int32_t k = (int32_t)sizeof CTRL_STRAY_SUFFIX - 1;
    return name.len >= k && memcmp(name.ptr + name.len - k, CTRL_STRAY_SUFFIX, (size_t)k) == 0;
}

bool ctrl_reserved_topic_name(kstr name) {
    return metadata_log_name(name) || ctrl_internal_topic(name) || has_stray_suffix(name);
}

/* Why a client may not create this name; 0 if it may. */
static int refuse_reserved(kstr name, ctrl_item_result *it) {
    int n = name.len > 64 ? 64 : name.len;
    if (metadata_log_name(name)) {
        msgf(it, "'%.*s' is the name of the broker's metadata log; no topic may have it", n, name.ptr);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (ctrl_internal_topic(name)) {
        msgf(it, "'%.*s' is an internal topic; only the broker creates it", n, name.ptr);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (has_stray_suffix(name)) {
        msgf(it, "topic names may not end in '%s', the suffix of set-aside log directories",
             CTRL_STRAY_SUFFIX);
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    return 0;
}

/* ---- CreateTopics ------------------------------------------------------------------------ */

static char *kstr_dup_arena(arena *a, kstr s) {
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = arena_alloc(a, n + 1);
    if (p) {
        if (n)
            memcpy(p, s.ptr, n);
        p[n] = '\0';
    }
    return p;
}

/* Partitions the view holds (committed plus proposals, as applied). */
static int64_t view_partitions(const controller *c) { return c->view_parts; }

static int create_one(controller *c, const ctrl_new_topic *q, const live_brokers *lb, bool validate_only,
                      int64_t *partitions_added, rbatch *b, ctrl_item_result *it) {
    int rc = ctrl_validate_topic_name(q->name, it->message, sizeof it->message);
    if (rc)
        return rc;
    if (!q->internal && (rc = refuse_reserved(q->name, it)) != 0)
        return rc;
    if (q->internal && !ctrl_internal_topic(q->name)) {
        msgf(it, "'%.*s' is not one of the broker's internal topics", q->name.len, q->name.ptr);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (md_delta_topic(c->view, q->name) != NULL) {
        msgf(it, "topic '%.*s' already exists", q->name.len, q->name.ptr);
        return KAFKA_ERR_TOPIC_ALREADY_EXISTS;
    }
    const struct cs_slot *col = collide_get(c, q->name);
    if (col != NULL) {
        msgf(it, "topic '%.*s' collides with existing topic '%s' ('.' and '_' are interchangeable)",
             q->name.len, q->name.ptr, col->key);
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    int32_t parts = q->partitions, rf = q->replication_factor;
    if (q->n_assignments > 0) {
        if (parts != -1 || rf != -1) {
            msgf(it, "Both num_partitions or replication_factor and a replica assignment were given; with an "
                     "assignment both must be -1.");
            return KAFKA_ERR_INVALID_REQUEST;
        }
        int32_t n = q->n_assignments;
        if (n > CTRL_TOPIC_PARTITIONS_MAX) {
            msgf(it, "%d partitions requested; at most %d are allowed per topic.", n,
                 CTRL_TOPIC_PARTITIONS_MAX);
            return KAFKA_ERR_INVALID_PARTITIONS;
        }
        unsigned char *seen = arena_calloc(&b->a, (size_t)n, 1);
        if (seen == NULL)
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        for (int32_t i = 0; i < n; i++) {
            const ctrl_assignment *a = &q->assignments[i];
            if (a->partition < 0 || a->partition >= n || seen[a->partition]) {
                msgf(it,
                     "The replica assignment names partition %d, but partitions must be numbered 0 to %d, "
                     "each "
                     "once.",
                     a->partition, n - 1);
                return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
            seen[a->partition] = 1;
            if (a->n != q->assignments[0].n) {
                msgf(it,
                     "Inconsistent replication factor in the replica assignment: partition %d has %d "
                     "replicas, "
                     "partition %d has %d.",
                     q->assignments[0].partition, q->assignments[0].n, a->partition, a->n);
                return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
            if ((rc = check_assignment(a, a->partition, lb, it)) != 0)
                return rc;
        }
        parts = n;
        rf = (int32_t)q->assignments[0].n;
    } else {
        if (parts == 0 || parts < -1) {
            msgf(it, "Number of partitions must be larger than 0, or -1 to use the default.");
            return KAFKA_ERR_INVALID_PARTITIONS;
        }
        if (parts == -1)
            parts = c->cfg.default_partitions;
        if (parts > CTRL_TOPIC_PARTITIONS_MAX) {
            msgf(it, "%d partitions requested; at most %d are allowed per topic.", parts,
                 CTRL_TOPIC_PARTITIONS_MAX);
            return KAFKA_ERR_INVALID_PARTITIONS;
        }
        if (rf == -1)
            rf = c->cfg.default_replication_factor;
        if (rf <= 0) {
            msgf(it, "Replication factor must be larger than 0, or -1 to use the default.");
            return KAFKA_ERR_INVALID_REPLICATION_FACTOR;
        }
        if (rf > lb->n)
            return rf_error(it, rf, lb);
    }
    /* Configs: a null value is not a configuration. */
    if (q->n_configs > CTRL_TOPIC_CONFIGS_MAX) {
        msgf(it, "%d configs given; at most %d overrides are allowed per topic.", q->n_configs,
             CTRL_TOPIC_CONFIGS_MAX);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    const char *keys[CTRL_TOPIC_CONFIGS_MAX], *values[CTRL_TOPIC_CONFIGS_MAX];
    for (int32_t i = 0; i < q->n_configs; i++) {
        keys[i] = kstr_dup_arena(&b->a, q->configs[i].key);
        if (keys[i] == NULL)
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        if (q->configs[i].value.len < 0) {
            msgf(it, "Null value not supported for topic config '%.128s'.", keys[i]);
            return KAFKA_ERR_INVALID_CONFIG;
        }
        values[i] = kstr_dup_arena(&b->a, q->configs[i].value);
        if (values[i] == NULL)
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    char tname[CTRL_NAME_MAX + 1];
    memcpy(tname, q->name.ptr, (size_t)q->name.len);
    tname[q->name.len] = '\0';
    if (c->cfg.configs.check &&
        (rc = c->cfg.configs.check(c->cfg.configs.ctx, tname, keys, values, q->n_configs, it->message,
                                   sizeof it->message)) != 0)
        return rc;
    if (view_partitions(c) + parts > c->cfg.partitions_max) {
        msgf(it, "the cluster would hold more than %lld partitions", (long long)c->cfg.partitions_max);
        return KAFKA_ERR_POLICY_VIOLATION;
    }
    if (c->cfg.configs.check_new_partitions &&
        (rc = c->cfg.configs.check_new_partitions(c->cfg.configs.ctx, *partitions_added + parts, it->message,
                                                  sizeof it->message)) != 0)
        return rc;
    /* Placement. */
    int32_t *replicas = arena_alloc(&b->a, (size_t)parts * (size_t)rf * sizeof *replicas);
    if (replicas == NULL)
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    if (q->n_assignments > 0) {
        for (int32_t i = 0; i < q->n_assignments; i++)
            memcpy(&replicas[(size_t)q->assignments[i].partition * (size_t)rf], q->assignments[i].brokers,
                   (size_t)rf * sizeof *replicas);
    } else if (ctrl_place_replicas(lb->ids, lb->racks, lb->n, parts, rf, 0, &c->rng, replicas) != 0) {
        return rf_error(it, rf, lb);
    }
    it->partitions = parts;
    it->replication_factor = (int16_t)rf;
    it->topic_id = new_topic_id(c);
    *partitions_added += parts;
    (void)validate_only;
    kafka_topic_record tr;
    kafka_topic_record_init(&tr);
    tr.name = q->name;
    tr.topic_id = it->topic_id;
    rb_add(c, b, KAFKA_MREC_TOPIC, &tr);
    for (int32_t i = 0; i < q->n_configs; i++) {
        kafka_config_record cr;
        kafka_config_record_init(&cr);
        cr.resource_type = MD_RESOURCE_TOPIC;
        cr.resource_name = q->name;
        cr.name = kstr_c(keys[i]);
        cr.value = kstr_c(values[i]);
        rb_add(c, b, KAFKA_MREC_CONFIG, &cr);
    }
    emit_partitions(c, b, it->topic_id, 0, parts, rf, replicas);
    return b->oom ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : 0;
}

/* Common start of a request: items, or a reply without them on OOM. */
static ctrl_item_result *items_new(controller *c, ctrl_kind kind, int32_t n, void *token) {
    ctrl_item_result *items = calloc((size_t)(n > 0 ? n : 1), sizeof *items);
    if (items == NULL)
        reply_now(c, token, kind, NULL, 0, -1);
    return items;
}

static bool too_many(ctrl_item_result *items, int32_t n) {
    if (n <= CTRL_REQUEST_ITEMS_MAX)
        return false;
    for (int32_t i = 0; i < n; i++) {
        items[i].error = KAFKA_ERR_INVALID_REQUEST;
        msgf(&items[i], "a request may name at most %d items", CTRL_REQUEST_ITEMS_MAX);
    }
    return true;
}

void ctrl_create_topics(controller *c, const ctrl_new_topic *topics, int32_t n, bool validate_only,
                        void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_CREATE_TOPICS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_CREATE_TOPICS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    kstr *names = malloc((size_t)(n ? n : 1) * sizeof *names);
    for (int32_t i = 0; names && i < n; i++)
        names[i] = topics[i].name;
    bool *dup = names ? dup_flags(names, NULL, n) : NULL;
    free(names);
    live_brokers lb = {0};
    if (dup == NULL || !live_brokers_get(c->view, c->committed, &lb)) {
        free(dup);
        free(items);
        reply_now(c, token, CTRL_CREATE_TOPICS, NULL, 0, -1);
        return;
    }
    rbatch b;
    rb_init(&b);
    int64_t added = 0;
    for (int32_t i = 0; i < n; i++) {
        ctrl_item_result *it = &items[i];
        if (dup[i]) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "The topic is listed more than once in this request.");
            continue;
        }
        int32_t before = b.n;
        it->error = (int16_t)create_one(c, &topics[i], &lb, validate_only, &added, &b, it);
        if (it->error != 0 && b.n != before) {
            /* A half-made topic (memory ran out): start the view over. */
            b.oom = true;
        }
    }
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (validate_only || b.n == 0) {
        rebuild_view(c);
    } else {
        ar = rb_send(c, &b);
        sent = true;
    }
    rb_free(&b);
    live_brokers_free(&lb);
    free(dup);
    finish(c, token, CTRL_CREATE_TOPICS, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- DeleteTopics ------------------------------------------------------------------------ */

void ctrl_delete_topics(controller *c, const ctrl_topic_ref *topics, int32_t n, void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_DELETE_TOPICS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_DELETE_TOPICS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    kstr *names = calloc((size_t)(n ? n : 1), sizeof *names);
    kuuid *ids = calloc((size_t)(n ? n : 1), sizeof *ids);
    bool *dup = NULL;
    if (names && ids) {
        for (int32_t i = 0; i < n; i++) {
            names[i] = topics[i].name;
            ids[i] = topics[i].id;
        }
        dup = dup_flags(names, ids, n);
    }
    free(names);
    free(ids);
    if (dup == NULL) {
        free(items);
        reply_now(c, token, CTRL_DELETE_TOPICS, NULL, 0, -1);
        return;
    }
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        const ctrl_topic_ref *q = &topics[i];
        ctrl_item_result *it = &items[i];
        bool by_id = q->name.len < 0;
        if (!by_id && !kuuid_is_zero(q->id)) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "Give either a topic name or a topic id, not both.");
            continue;
        }
        if (dup[i]) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "The topic is listed more than once in this request.");
            continue;
        }
        const md_topic *t = by_id ? (kuuid_is_zero(q->id) ? NULL : md_delta_topic_by_id(c->view, q->id))
                                  : md_delta_topic(c->view, q->name);
        if (t == NULL) {
            it->error = by_id ? KAFKA_ERR_UNKNOWN_TOPIC_ID : KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (by_id)
                msgf(it, "no topic has this id");
            else
                msgf(it, "topic '%.*s' does not exist", q->name.len > 64 ? 64 : q->name.len, q->name.ptr);
            continue;
        }
        snprintf(it->name, sizeof it->name, "%s", t->name);
        it->topic_id = t->id;
        if (ctrl_internal_topic((kstr){t->name, t->name_len})) {
            it->error = KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
            msgf(it, "topic '%s' is internal: the broker keeps its own state in it and it cannot be deleted",
                 t->name);
            continue;
        }
        if (!c->cfg.delete_topic_enable) {
            it->error = KAFKA_ERR_TOPIC_DELETION_DISABLED;
            msgf(it, "topic deletion is disabled (delete.topic.enable=false)");
            continue;
        }
        kafka_remove_topic_record rr;
        kafka_remove_topic_record_init(&rr);
        rr.topic_id = t->id;
        rb_add(c, &b, KAFKA_MREC_REMOVE_TOPIC, &rr); /* t is gone from the view now */
        if (b.oom)
            it->error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    bool sent = b.n > 0;
    ctrl_append_result ar = {0, -1};
    if (sent)
        ar = rb_send(c, &b);
    rb_free(&b);
    free(dup);
    finish(c, token, CTRL_DELETE_TOPICS, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- CreatePartitions -------------------------------------------------------------------- */

static int create_partitions_one(controller *c, const ctrl_new_partitions *q, const live_brokers *lb,
                                 int64_t *added, rbatch *b, ctrl_item_result *it) {
    const md_topic *t = md_delta_topic(c->view, q->name);
    if (t == NULL) {
        msgf(it, "The topic '%.*s' does not exist.",
             q->name.len > 0 ? (q->name.len > 64 ? 64 : q->name.len) : 0, q->name.len > 0 ? q->name.ptr : "");
        return KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    int32_t have = t->n_partitions;
    it->topic_id = t->id;
    if (ctrl_internal_topic((kstr){t->name, t->name_len})) {
        msgf(it,
             "topic '%s' is internal: its coordinator maps keys to its %d partitions, so their number is "
             "fixed",
             t->name, have);
        return KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if (q->count <= have) {
        if (q->count == have)
            msgf(it, "Topic already has %d partitions.", have);
        else
            msgf(it, "Topic currently has %d partitions, which is higher than the requested %d.", have,
                 q->count);
        return KAFKA_ERR_INVALID_PARTITIONS;
    }
    if (q->count > CTRL_TOPIC_PARTITIONS_MAX) {
        msgf(it, "%d partitions requested; at most %d are allowed per topic.", q->count,
             CTRL_TOPIC_PARTITIONS_MAX);
        return KAFKA_ERR_INVALID_PARTITIONS;
    }
    int32_t more = q->count - have;
    const md_partition *p0 = md_topic_partition(t, 0);
    int32_t rf = p0 ? p0->replicas.n : 1;
    if (rf <= 0)
        rf = 1;
    int32_t *replicas = arena_alloc(&b->a, (size_t)more * (size_t)rf * sizeof *replicas);
    if (replicas == NULL)
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    int rc;
    if (q->n_assignments >= 0 && q->assignments != NULL) {
        if (q->n_assignments != more) {
            msgf(it, "Increasing the number of partitions by %d but %d assignments provided.", more,
                 q->n_assignments);
            return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
        }
        for (int32_t i = 0; i < more; i++) {
            const ctrl_assignment *a = &q->assignments[i];
            if (a->n != rf) {
                msgf(it,
                     "The assignment of new partition %d has %d replicas; the topic's replication factor is "
                     "%d.",
                     have + i, a->n, rf);
                return KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
            if ((rc = check_assignment(a, have + i, lb, it)) != 0)
                return rc;
            memcpy(&replicas[(size_t)i * (size_t)rf], a->brokers, (size_t)rf * sizeof *replicas);
        }
    } else {
        if (rf > lb->n)
            return rf_error(it, rf, lb);
        if (ctrl_place_replicas(lb->ids, lb->racks, lb->n, more, rf, have, &c->rng, replicas) != 0)
            return rf_error(it, rf, lb);
    }
    if (view_partitions(c) + more > c->cfg.partitions_max) {
        msgf(it, "the cluster would hold more than %lld partitions", (long long)c->cfg.partitions_max);
        return KAFKA_ERR_POLICY_VIOLATION;
    }
    if (c->cfg.configs.check_new_partitions &&
        (rc = c->cfg.configs.check_new_partitions(c->cfg.configs.ctx, *added + more, it->message,
                                                  sizeof it->message)) != 0)
        return rc;
    *added += more;
    it->partitions = q->count;
    it->replication_factor = (int16_t)rf;
    emit_partitions(c, b, t->id, have, more, rf, replicas);
    return b->oom ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : 0;
}

void ctrl_create_partitions(controller *c, const ctrl_new_partitions *topics, int32_t n, bool validate_only,
                            void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_CREATE_PARTITIONS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_CREATE_PARTITIONS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    kstr *names = malloc((size_t)(n ? n : 1) * sizeof *names);
    for (int32_t i = 0; names && i < n; i++)
        names[i] = topics[i].name;
    bool *dup = names ? dup_flags(names, NULL, n) : NULL;
    free(names);
    live_brokers lb = {0};
    if (dup == NULL || !live_brokers_get(c->view, c->committed, &lb)) {
        free(dup);
        free(items);
        reply_now(c, token, CTRL_CREATE_PARTITIONS, NULL, 0, -1);
        return;
    }
    rbatch b;
    rb_init(&b);
    int64_t added = 0;
    for (int32_t i = 0; i < n; i++) {
        ctrl_item_result *it = &items[i];
        if (dup[i]) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "The topic is listed more than once in this request.");
            continue;
        }
        it->error = (int16_t)create_partitions_one(c, &topics[i], &lb, &added, &b, it);
    }
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (validate_only || b.n == 0) {
        rebuild_view(c);
    } else {
        ar = rb_send(c, &b);
        sent = true;
    }
    rb_free(&b);
    live_brokers_free(&lb);
    free(dup);
    finish(c, token, CTRL_CREATE_PARTITIONS, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- (Incremental)AlterConfigs ----------------------------------------------------------- */

/* APPEND (or SUBTRACT) the comma-separated items of arg to (from) cur into
 * out (of outn bytes, >= strlen(cur) + strlen(arg) + 2). Items are trimmed;
 * duplicates are dropped. Quadratic in the items: callers bound the lengths. */
static void list_edit(const char *cur, const char *arg, bool append, char *out, size_t outn) {
    size_t len = 0;
    out[0] = '\0';
    for (int pass = 0; pass < (append ? 2 : 1); pass++) {
        const char *s = pass == 0 ? cur : arg;
        while (*s) {
            while (*s == ' ' || *s == ',')
                s++;
            const char *e = s;
            while (*e && *e != ',')
                e++;
            const char *t = e;
            while (t > s && t[-1] == ' ')
                t--;
            size_t il = (size_t)(t - s);
            if (il > 0) {
                bool drop = false;
                for (const char *k = out; *k && !drop;) {
                    const char *ke = strchr(k, ',');
                    size_t kl = ke ? (size_t)(ke - k) : strlen(k);
                    drop = kl == il && memcmp(k, s, il) == 0;
                    k += kl + (ke ? 1 : 0);
                }
                for (const char *k = arg; !append && *k && !drop;) {
                    while (*k == ' ' || *k == ',')
                        k++;
                    const char *ke = k;
                    while (*ke && *ke != ',')
                        ke++;
                    const char *kt = ke;
                    while (kt > k && kt[-1] == ' ')
                        kt--;
                    drop = (size_t)(kt - k) == il && memcmp(k, s, il) == 0;
                    k = ke;
                }
                if (!drop && len + il + 2 <= outn) {
                    if (len > 0)
                        out[len++] = ',';
                    memcpy(out + len, s, il);
                    len += il;
                    out[len] = '\0';
                }
            }
            s = e;
        }
    }
}

#define ALTER_VALUE_MAX 4096

static int alter_topic(controller *c, const ctrl_resource *q, bool incremental, rbatch *b,
                       ctrl_item_result *it) {
    const md_topic *t = md_delta_topic(c->view, q->name);
    if (t == NULL) {
        int rc = ctrl_validate_topic_name(q->name, it->message, sizeof it->message);
        if (rc)
            return rc;
        msgf(it, "The topic '%.*s' does not exist.", q->name.len, q->name.ptr);
        return KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    char tname[CTRL_NAME_MAX + 1];
    snprintf(tname, sizeof tname, "%s", t->name);
    /* The current overrides as the view has them (committed plus this
     * controller's proposals), copied: the view changes as records go in. */
    const md_resource *vres = md_delta_resource(c->view, MD_RESOURCE_TOPIC, tname);
    int32_t n_old = vres ? vres->n : 0;
    const char **ok_keys = n_old ? arena_calloc(&b->a, (size_t)n_old, sizeof *ok_keys) : NULL;
    const char **ok_vals = n_old ? arena_calloc(&b->a, (size_t)n_old, sizeof *ok_vals) : NULL;
    if (n_old && (!ok_keys || !ok_vals))
        return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    for (int32_t i = 0; i < n_old; i++) {
        ok_keys[i] = kstr_dup_arena(&b->a, kstr_c(vres->items[i].key));
        ok_vals[i] = kstr_dup_arena(&b->a, kstr_c(vres->items[i].value));
        if (!ok_keys[i] || !ok_vals[i])
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    const char *mk[CTRL_TOPIC_CONFIGS_MAX * 2 + 1], *mv[CTRL_TOPIC_CONFIGS_MAX * 2 + 1];
    int32_t m = 0;
    /* AlterConfigs replaces the whole set; the incremental API edits it. */
    for (int32_t i = 0; incremental && i < n_old && m < CTRL_TOPIC_CONFIGS_MAX * 2; i++) {
        mk[m] = ok_keys[i];
        mv[m++] = ok_vals[i];
    }
    for (int32_t i = 0; i < q->n; i++) {
        const ctrl_alter *a = &q->alters[i];
        const char *key = kstr_dup_arena(&b->a, a->key);
        if (key == NULL)
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        int kind = c->cfg.configs.key_kind ? c->cfg.configs.key_kind(c->cfg.configs.ctx, key) : 0;
        if (kind < 0) {
            msgf(it, "Unknown topic config name: %.128s", key);
            return KAFKA_ERR_INVALID_CONFIG;
        }
        for (int32_t j = 0; j < i; j++)
            if (kstr_eq(q->alters[j].key, a->key)) {
                msgf(it, "The config '%s' is given more than once.", key);
                return KAFKA_ERR_INVALID_REQUEST;
            }
        int8_t op = incremental ? a->op : CTRL_SET;
        const char *value = NULL;
        switch (op) {
        case CTRL_SET:
            if (a->value.len < 0) {
                if (!incremental) {
                    msgf(it, "null value for config '%s'", key);
                    return KAFKA_ERR_INVALID_CONFIG;
                }
                msgf(it, "Null value not supported for topic config '%s'.", key);
                return KAFKA_ERR_INVALID_REQUEST;
            }
            value = kstr_dup_arena(&b->a, a->value);
            break;
        case CTRL_DELETE:
            value = NULL;
            break;
        case CTRL_APPEND:
        case CTRL_SUBTRACT: {
            if (kind != 1) {
                msgf(it, "The config '%s' is not a list; %s applies to list configs only.", key,
                     op == CTRL_APPEND ? "APPEND" : "SUBTRACT");
                return KAFKA_ERR_INVALID_CONFIG;
            }
            if (a->value.len < 0) {
                msgf(it, "Null value not supported for topic config '%s'.", key);
                return KAFKA_ERR_INVALID_REQUEST;
            }
            if (a->value.len > ALTER_VALUE_MAX) {
                msgf(it, "The value for '%s' is longer than %d bytes.", key, ALTER_VALUE_MAX);
                return KAFKA_ERR_INVALID_CONFIG;
            }
            char base[ALTER_VALUE_MAX + 1] = "";
            if (c->cfg.configs.effective)
                c->cfg.configs.effective(c->cfg.configs.ctx, mk, mv, m, key, base, sizeof base);
            const char *arg = kstr_dup_arena(&b->a, a->value);
            size_t outn = strlen(base) + (arg ? strlen(arg) : 0) + 2;
            char *out = arena_alloc(&b->a, outn);
            if (arg == NULL || out == NULL)
                return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            list_edit(base, arg, op == CTRL_APPEND, out, outn);
            value = out;
            break;
        }
        default:
            msgf(it, "Unknown config operation %d for '%s'.", op, key);
            return KAFKA_ERR_INVALID_REQUEST;
        }
        if (op != CTRL_DELETE && value == NULL)
            return KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        /* Merge into the working set. */
        int32_t k = 0;
        while (k < m && strcmp(mk[k], key) != 0)
            k++;
        if (value == NULL) {
            if (k < m) {
                mk[k] = mk[m - 1];
                mv[k] = mv[--m];
            }
        } else if (k < m) {
            mv[k] = value;
        } else if (m < CTRL_TOPIC_CONFIGS_MAX * 2) {
            mk[m] = key;
            mv[m++] = value;
        }
    }
    if (m > CTRL_TOPIC_CONFIGS_MAX) {
        msgf(it, "at most %d config overrides per topic", CTRL_TOPIC_CONFIGS_MAX);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    int rc;
    if (c->cfg.configs.check && (rc = c->cfg.configs.check(c->cfg.configs.ctx, tname, mk, mv, m, it->message,
                                                           sizeof it->message)) != 0)
        return rc;
    /* Records: deletions of keys that go, then every key whose value is new. */
    for (int32_t i = 0; i < n_old; i++) {
        bool kept = false;
        for (int32_t k = 0; k < m && !kept; k++)
            kept = strcmp(mk[k], ok_keys[i]) == 0;
        if (!kept) {
            kafka_config_record cr;
            kafka_config_record_init(&cr);
            cr.resource_type = MD_RESOURCE_TOPIC;
            cr.resource_name = kstr_c(tname);
            cr.name = kstr_c(ok_keys[i]);
            cr.value = KSTR_NULL;
            rb_add(c, b, KAFKA_MREC_CONFIG, &cr);
        }
    }
    for (int32_t k = 0; k < m; k++) {
        const char *old = NULL;
        for (int32_t i = 0; i < n_old && !old; i++)
            if (strcmp(ok_keys[i], mk[k]) == 0)
                old = ok_vals[i];
        if (old && strcmp(old, mv[k]) == 0)
            continue;
        kafka_config_record cr;
        kafka_config_record_init(&cr);
        cr.resource_type = MD_RESOURCE_TOPIC;
        cr.resource_name = kstr_c(tname);
        cr.name = kstr_c(mk[k]);
        cr.value = kstr_c(mv[k]);
        rb_add(c, b, KAFKA_MREC_CONFIG, &cr);
    }
    return b->oom ? KAFKA_ERR_UNKNOWN_SERVER_ERROR : 0;
}

void ctrl_alter_configs(controller *c, const ctrl_resource *resources, int32_t n, bool incremental,
                        bool validate_only, void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_ALTER_CONFIGS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_ALTER_CONFIGS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        const ctrl_resource *q = &resources[i];
        ctrl_item_result *it = &items[i];
        if (q->n > MD_CONFIGS_PER_RESOURCE) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "%d configs in one resource; at most %d are allowed.", q->n, MD_CONFIGS_PER_RESOURCE);
        } else if (q->type == MD_RESOURCE_TOPIC) {
            int32_t before = b.n;
            it->error = (int16_t)alter_topic(c, q, incremental, &b, it);
            if (it->error != 0 && b.n != before)
                b.oom = true;
        } else if (q->type == MD_RESOURCE_BROKER) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(
                it,
                "Dynamic broker configuration is not supported: set broker configs in the properties file or "
                "with --override and restart the broker.");
        } else {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "Unsupported resource type %d.", q->type);
        }
    }
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (validate_only || b.n == 0) {
        rebuild_view(c);
    } else {
        ar = rb_send(c, &b);
        sent = true;
    }
    rb_free(&b);
    finish(c, token, CTRL_ALTER_CONFIGS, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- SCRAM credentials ------------------------------------------------------------------- */

void ctrl_alter_scram(controller *c, const ctrl_scram_op *ops, int32_t n, void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_ALTER_SCRAM, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_ALTER_SCRAM, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        const ctrl_scram_op *op = &ops[i];
        char name[MD_SCRAM_NAME_MAX + 1];
        if (op->name.len <= 0 || op->name.len > MD_SCRAM_NAME_MAX) {
            items[i].error = KAFKA_ERR_UNACCEPTABLE_CREDENTIAL;
            msgf(&items[i], "user names must be 1 to %d bytes", MD_SCRAM_NAME_MAX);
            continue;
        }
        memcpy(name, op->name.ptr, (size_t)op->name.len);
        name[op->name.len] = '\0';
        if (op->remove) {
            if (md_delta_scram(c->view, name, op->mechanism) == NULL) {
                items[i].error = KAFKA_ERR_RESOURCE_NOT_FOUND;
                msgf(&items[i], "Attempt to delete a user credential that does not exist");
                continue;
            }
            kafka_remove_user_scram_credential_record r;
            kafka_remove_user_scram_credential_record_init(&r);
            r.name = op->name;
            r.mechanism = op->mechanism;
            rb_add(c, &b, KAFKA_MREC_REMOVE_USER_SCRAM_CREDENTIAL, &r);
        } else {
            kafka_user_scram_credential_record r;
            kafka_user_scram_credential_record_init(&r);
            r.name = op->name;
            r.mechanism = op->mechanism;
            r.salt = op->salt;
            r.stored_key = op->stored_key;
            r.server_key = op->server_key;
            r.iterations = op->iterations;
            rb_add(c, &b, KAFKA_MREC_USER_SCRAM_CREDENTIAL, &r);
        }
    }
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (b.n == 0) {
        rebuild_view(c);
    } else {
        ar = rb_send(c, &b);
        sent = true;
    }
    rb_free(&b);
    finish(c, token, CTRL_ALTER_SCRAM, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- ACLs -------------------------------------------------------------------------------- */

static kuuid new_acl_id(controller *c) {
    for (;;) {
        kuuid u;
        uint64_t a = rng_next(&c->rng), b = rng_next(&c->rng);
        memcpy(u.b, &a, 8);
        memcpy(u.b + 8, &b, 8);
        u.b[6] = (uint8_t)((u.b[6] & 0x0f) | 0x40); /* version 4 */
        u.b[8] = (uint8_t)((u.b[8] & 0x3f) | 0x80);
        if (!kuuid_is_zero(u) && acl_set_by_id(md_delta_acls(c->view), u) == NULL)
            return u;
    }
}

void ctrl_alter_acls(controller *c, const ctrl_acl_op *ops, int32_t n, void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_ALTER_ACLS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_ALTER_ACLS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        const ctrl_acl_op *op = &ops[i];
        const acl_set *view = md_delta_acls(c->view);
        if (op->remove) {
            if (acl_set_by_id(view, op->id) == NULL)
                continue;
            kafka_remove_access_control_entry_record r;
            kafka_remove_access_control_entry_record_init(&r);
            r.id = op->id;
            rb_add(c, &b, KAFKA_MREC_REMOVE_ACCESS_CONTROL_ENTRY, &r);
            continue;
        }
        const char *why = acl_binding_invalid(&op->binding);
        if (why != NULL) {
            items[i].error = KAFKA_ERR_INVALID_REQUEST;
            msgf(&items[i], "%s", why);
            continue;
        }
        if (acl_set_find(view, &op->binding) != NULL)
            continue;
        if (acl_set_count(view) >= ACL_BINDINGS_MAX) {
            items[i].error = KAFKA_ERR_INVALID_REQUEST;
            msgf(&items[i], "the cluster has %d ACLs, the most it keeps", ACL_BINDINGS_MAX);
            continue;
        }
        kafka_access_control_entry_record r;
        kafka_access_control_entry_record_init(&r);
        r.id = new_acl_id(c);
        r.resource_type = op->binding.resource_type;
        r.resource_name = op->binding.name;
        r.pattern_type = op->binding.pattern_type;
        r.principal = op->binding.principal;
        r.host = op->binding.host;
        r.operation = op->binding.operation;
        r.permission_type = op->binding.permission;
        rb_add(c, &b, KAFKA_MREC_ACCESS_CONTROL_ENTRY, &r);
    }
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (b.n == 0) {
        rebuild_view(c);
    } else {
        ar = rb_send(c, &b);
        sent = true;
    }
    rb_free(&b);
    finish(c, token, CTRL_ALTER_ACLS, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- client quotas ------------------------------------------------------------------------ */

void ctrl_alter_quotas(controller *c, const ctrl_quota_entry *entries, int32_t n, void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_ALTER_QUOTAS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_ALTER_QUOTAS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        const ctrl_quota_entry *e = &entries[i];
        const char *why = md_quota_entity_invalid(e->entity, e->n_entity);
        if (why == NULL && e->n_ops > MD_QUOTA_KEYS_MAX)
            why = "an entry may change at most 32 keys";
        for (int32_t k = 0; why == NULL && k < e->n_ops; k++)
            if (e->ops[k].key.len <= 0 || e->ops[k].key.len > MD_QUOTA_KEY_NAME_MAX)
                why = "a quota key is empty or too long";
        char ekey[MD_QUOTA_EKEY_MAX];
        if (why == NULL && md_quota_key(e->entity, e->n_entity, ekey) < 0)
            why = "the entity is not valid";
        if (why == NULL && md_quota_set_find(md_delta_quotas(c->view), ekey) == NULL &&
            md_quota_set_count(md_delta_quotas(c->view)) >= MD_QUOTA_ENTITIES_MAX)
            why = "the cluster keeps quotas for at most 100000 entities";
        if (why != NULL) {
            items[i].error = KAFKA_ERR_INVALID_REQUEST;
            msgf(&items[i], "%s", why);
            continue;
        }
        kafka_client_quota_record_entity_data ent[2];
        for (int32_t k = 0; k < e->n_entity; k++) {
            kafka_client_quota_record_entity_data_init(&ent[k]);
            ent[k].entity_type = e->entity[k].type;
            ent[k].entity_name = e->entity[k].name;
        }
        for (int32_t k = 0; k < e->n_ops; k++) {
            const ctrl_quota_op *op = &e->ops[k];
            char key[MD_QUOTA_KEY_NAME_MAX + 1];
            memcpy(key, op->key.ptr, (size_t)op->key.len);
            key[op->key.len] = '\0';
            double cur;
            bool set = md_quota_get(md_quota_set_find(md_delta_quotas(c->view), ekey), key, &cur);
            if (op->remove ? !set : set && cur == op->value)
                continue; /* nothing changes: no record */
            kafka_client_quota_record r;
            kafka_client_quota_record_init(&r);
            r.entity = ent;
            r.entity_count = e->n_entity;
            r.key = op->key;
            r.value = op->remove ? 0 : op->value;
            r.remove = op->remove;
            rb_add(c, &b, KAFKA_MREC_CLIENT_QUOTA, &r);
        }
    }
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (b.n == 0) {
        rebuild_view(c);
    } else {
        ar = rb_send(c, &b);
        sent = true;
    }
    rb_free(&b);
    finish(c, token, CTRL_ALTER_QUOTAS, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- broker registration ----------------------------------------------------------------- */

static void restarted_partitions(controller *c, rbatch *b, int32_t id);
static bool ids_have(const md_ids *l, int32_t id);

void ctrl_register_broker(controller *c, const ctrl_broker_reg *reg, void *token, int64_t now) {
    check_invariants(c);
    ctrl_item_result *items = items_new(c, CTRL_REGISTER_BROKER, 1, token);
    if (items == NULL)
        return;
    rbatch b;
    rb_init(&b);
    const md_broker *old = md_image_broker(c->committed, reg->id);
    kafka_register_broker_record r;
    kafka_register_broker_record_init(&r);
    kafka_register_broker_record_broker_endpoint ep;
    kafka_register_broker_record_broker_endpoint_init(&ep);
    ep.name = kstr_c(reg->listener_name ? reg->listener_name : "PLAINTEXT");
    ep.host = kstr_c(reg->host ? reg->host : "");
    ep.port = reg->port;
    ep.security_protocol = 0; /* PLAINTEXT */
    r.broker_id = reg->id;
    r.incarnation_id = reg->incarnation;
    /* A new epoch per registration: one past the last committed offset, as
     * KRaft uses the registration record's offset. */
    r.broker_epoch =
        (old ? old->epoch : 0) > committed_offset(c) + 1 ? old->epoch + 1 : committed_offset(c) + 1;
    r.end_points = &ep;
    r.end_points_count = 1;
    r.features_count = 0;
    r.rack = reg->rack ? kstr_c(reg->rack) : KSTR_NULL;
    r.fenced = false; /* a single node is caught up by construction */
    r.in_controlled_shutdown = false;
    rb_add(c, &b, KAFKA_MREC_REGISTER_BROKER, &r);
    /* A new incarnation (a restart) may have lost what it had not flushed,
     * and its replica machines start afresh: it leaves the ISRs where
     * another live member remains, and where it led, another ISR member
     * leads, or (alone in sync) it leads again in a new leader epoch, so
     * that its followers must catch up with its log end before they count
     * as in sync. Partitions with one replica need none of this. */
    if (old == NULL || memcmp(old->incarnation.b, reg->incarnation.b, 16) != 0)
        restarted_partitions(c, &b, reg->id);
    ctrl_append_result ar = rb_send(c, &b);
    rb_free(&b);
    finish(c, token, CTRL_REGISTER_BROKER, items, 1, ar, true, now);
    check_invariants(c);
}

static void restarted_partitions(controller *c, rbatch *b, int32_t id) {
    const md_image *img = c->committed;
    for (int32_t t = 0; t < md_image_topic_count(img) && !b->oom; t++) {
        const md_topic *tp = md_image_topic_at(img, t);
        for (int32_t p = 0; p < tp->n_partitions && !b->oom; p++) {
            const md_partition *mp = md_topic_partition(tp, p);
            if (mp->replicas.n < 2 || !ids_have(&mp->replicas, id))
                continue;
            int32_t keep[MD_REPLICAS_MAX];
            int32_t nk = 0;
            for (int32_t k = 0; k < mp->isr.n; k++)
                if (mp->isr.ids[k] != id && usable(img, mp->isr.ids[k]) && nk < MD_REPLICAS_MAX)
                    keep[nk++] = mp->isr.ids[k];
            bool member = ids_have(&mp->isr, id);
            if (!member && mp->leader != id)
                continue;
            kafka_partition_change_record r;
            kafka_partition_change_record_init(&r);
            r.topic_id = tp->id;
            r.partition_id = p;
            if (member && nk > 0) {
                r.isr = keep;
                r.isr_count = nk;
                if (mp->leader == id || mp->leader < 0 || !usable(img, mp->leader))
                    r.leader = keep[0];
            } else if (mp->leader == id) {
                r.leader = id; /* alone in sync: the same leader, a new epoch */
            } else {
                continue;
            }
            rb_add(c, b, KAFKA_MREC_PARTITION_CHANGE, &r);
        }
    }
}

/* ---- producer id blocks ------------------------------------------------------------------------ */

void ctrl_allocate_producer_ids(controller *c, int32_t broker_id, int64_t broker_epoch, void *token,
                                int64_t now) {
    check_invariants(c);
    ctrl_item_result *items = items_new(c, CTRL_ALLOCATE_PRODUCER_IDS, 1, token);
    if (items == NULL)
        return;
    const md_broker *br = md_image_broker(c->committed, broker_id);
    if (broker_epoch >= 0 && br == NULL) {
        items[0].error = KAFKA_ERR_BROKER_ID_NOT_REGISTERED;
        msgf(&items[0], "broker %d is not registered", broker_id);
        finish(c, token, CTRL_ALLOCATE_PRODUCER_IDS, items, 1, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    if (broker_epoch >= 0 && br->epoch != broker_epoch) {
        items[0].error = KAFKA_ERR_STALE_BROKER_EPOCH;
        msgf(&items[0], "broker %d has epoch %lld, not %lld", broker_id, (long long)br->epoch,
             (long long)broker_epoch);
        finish(c, token, CTRL_ALLOCATE_PRODUCER_IDS, items, 1, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    /* The view includes blocks proposed and not yet committed, so two
     * requests in flight get different blocks. */
    int64_t start = md_delta_next_producer_id(c->view);
    if (start > INT64_MAX - CTRL_PRODUCER_ID_BLOCK) {
        items[0].error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        msgf(&items[0], "the producer id space is used up");
        finish(c, token, CTRL_ALLOCATE_PRODUCER_IDS, items, 1, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    rbatch b;
    rb_init(&b);
    kafka_producer_ids_record r;
    kafka_producer_ids_record_init(&r);
    r.broker_id = broker_id;
    r.broker_epoch = broker_epoch >= 0 ? broker_epoch : (br ? br->epoch : -1);
    r.next_producer_id = start + CTRL_PRODUCER_ID_BLOCK;
    rb_add(c, &b, KAFKA_MREC_PRODUCER_IDS, &r);
    items[0].producer_id_start = start;
    ctrl_append_result ar = rb_send(c, &b);
    rb_free(&b);
    finish(c, token, CTRL_ALLOCATE_PRODUCER_IDS, items, 1, ar, true, now);
    check_invariants(c);
}

/* ---- ElectLeaders and UnregisterBroker -------------------------------------------------------- */

static bool ids_have(const md_ids *l, int32_t id) {
    for (int32_t i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return true;
    return false;
}

void ctrl_elect_leaders(controller *c, int8_t type, const ctrl_partition_ref *parts, int32_t n, void *token,
                        int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_ELECT_LEADERS, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_ELECT_LEADERS, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    const md_image *img = c->committed;
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        const ctrl_partition_ref *q = &parts[i];
        ctrl_item_result *it = &items[i];
        if (type != CTRL_ELECT_PREFERRED && type != CTRL_ELECT_UNCLEAN) {
            it->error = KAFKA_ERR_INVALID_REQUEST;
            msgf(it, "unknown election type %d (0 is preferred, 1 unclean)", type);
            continue;
        }
        const md_topic *t = q->topic.len >= 0 ? md_delta_topic(c->view, q->topic) : NULL;
        const md_partition *mp = t ? md_topic_partition(t, q->partition) : NULL;
        if (mp == NULL) {
            it->error = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            msgf(it, "partition %d of topic '%.*s' does not exist", q->partition,
                 q->topic.len > 64 ? 64 : (q->topic.len < 0 ? 0 : q->topic.len), q->topic.ptr);
            continue;
        }
        it->topic_id = t->id;
        int32_t next = -1;
        bool clean = true;
        if (type == CTRL_ELECT_PREFERRED) {
            int32_t pref = mp->replicas.n > 0 ? mp->replicas.ids[0] : -1;
            if (pref >= 0 && mp->leader == pref) {
                it->error = KAFKA_ERR_ELECTION_NOT_NEEDED;
                msgf(it, "the preferred replica (broker %d) leads already", pref);
                continue;
            }
            if (pref < 0 || !usable(img, pref) || !ids_have(&mp->isr, pref)) {
                it->error = KAFKA_ERR_PREFERRED_LEADER_NOT_AVAILABLE;
                msgf(it, "the preferred replica (broker %d) is %s", pref,
                     pref >= 0 && usable(img, pref) ? "not in the ISR" : "not a live broker");
                continue;
            }
            next = pref;
        } else {
            if (mp->leader >= 0 && usable(img, mp->leader)) {
                it->error = KAFKA_ERR_ELECTION_NOT_NEEDED;
                msgf(it, "broker %d leads the partition and is live", mp->leader);
                continue;
            }
            for (int32_t k = 0; k < mp->isr.n && next < 0; k++)
                if (usable(img, mp->isr.ids[k]))
                    next = mp->isr.ids[k];
            for (int32_t k = 0; k < mp->replicas.n && next < 0; k++)
                if (usable(img, mp->replicas.ids[k])) {
                    next = mp->replicas.ids[k];
                    clean = false;
                }
            if (next < 0) {
                it->error = KAFKA_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE;
                msgf(it, "none of the partition's %d replica(s) is on a live broker", mp->replicas.n);
                continue;
            }
        }
        kafka_partition_change_record r;
        kafka_partition_change_record_init(&r);
        r.topic_id = t->id;
        r.partition_id = q->partition;
        r.leader = next;
        if (!clean) {
            r.isr = &next;
            r.isr_count = 1;
        }
        rb_add(c, &b, KAFKA_MREC_PARTITION_CHANGE, &r); /* t and mp may move now */
        if (b.oom)
            it->error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    bool sent = b.n > 0;
    ctrl_append_result ar = {0, -1};
    if (sent)
        ar = rb_send(c, &b);
    rb_free(&b);
    finish(c, token, CTRL_ELECT_LEADERS, items, n, ar, sent, now);
    check_invariants(c);
}

void ctrl_unregister_broker(controller *c, int32_t id, void *token, int64_t now) {
    check_invariants(c);
    ctrl_item_result *items = items_new(c, CTRL_UNREGISTER_BROKER, 1, token);
    if (items == NULL)
        return;
    /* The view: an unregistration in flight already took it out. */
    const md_broker *br = md_delta_broker(c->view, id);
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (br == NULL) {
        items[0].error = KAFKA_ERR_BROKER_ID_NOT_REGISTERED;
        msgf(&items[0], "broker %d is not registered", id);
    } else if (id == c->cfg.node_id) {
        items[0].error = KAFKA_ERR_INVALID_REQUEST;
        msgf(&items[0], "broker %d is the active controller's own broker; it cannot unregister itself", id);
    } else {
        rbatch b;
        rb_init(&b);
        kafka_unregister_broker_record r;
        kafka_unregister_broker_record_init(&r);
        r.broker_id = id;
        r.broker_epoch = br->epoch;
        rb_add(c, &b, KAFKA_MREC_UNREGISTER_BROKER, &r);
        ar = rb_send(c, &b);
        rb_free(&b);
        sent = true;
        c->scan_again = true; /* its leaderships move at the next tick */
    }
    finish(c, token, CTRL_UNREGISTER_BROKER, items, 1, ar, sent, now);
    check_invariants(c);
}

/* ---- features ------------------------------------------------------------------------------ */

static void bootstrap_features(controller *c) {
    if (!c->cfg.bootstrap_features || c->features_proposed ||
        md_image_feature(c->committed, "metadata.version") != 0)
        return;
    c->features_proposed = true; /* once per activation; a failed append is retried by the next one */
    rbatch b;
    rb_init(&b);
    kafka_feature_level_record r;
    kafka_feature_level_record_init(&r);
    r.name = kstr_c("metadata.version");
    r.feature_level = CTRL_METADATA_VERSION_LATEST;
    rb_add(c, &b, KAFKA_MREC_FEATURE_LEVEL, &r);
    rb_send(c, &b);
    rb_free(&b);
}

void ctrl_update_features(controller *c, const ctrl_feature_update *u, int32_t n, bool validate_only,
                          void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_UPDATE_FEATURES, n, token);
    if (items == NULL)
        return;
    rbatch b;
    rb_init(&b);
    bool sent = false;
    ctrl_append_result ar = {0, -1};
    if (!too_many(items, n)) {
        for (int32_t i = 0; i < n; i++) {
            const ctrl_feature_update *q = &u[i];
            ctrl_item_result *it = &items[i];
            bool mv = q->name.len == 16 && memcmp(q->name.ptr, "metadata.version", 16) == 0;
            int16_t cur = mv ? md_image_feature(c->committed, "metadata.version") : 0;
            for (int32_t k = 0; k < i && mv; k++)
                if (u[k].name.len == 16 && memcmp(u[k].name.ptr, "metadata.version", 16) == 0) {
                    it->error = KAFKA_ERR_INVALID_REQUEST;
                    msgf(it, "metadata.version is named twice");
                }
            if (it->error != 0) {
                continue;
            } else if (!mv) {
                it->error = KAFKA_ERR_INVALID_UPDATE_VERSION;
                msgf(it, "unknown feature '%.*s' (Sluice knows metadata.version)",
                     q->name.len > 0 ? q->name.len : 0, q->name.ptr ? q->name.ptr : "");
            } else if (q->level == 0) {
                it->error = KAFKA_ERR_INVALID_UPDATE_VERSION;
                msgf(it, "metadata.version cannot be removed");
            } else if (q->level < CTRL_METADATA_VERSION_MIN || q->level > CTRL_METADATA_VERSION_LATEST) {
                it->error = KAFKA_ERR_INVALID_UPDATE_VERSION;
                msgf(it, "metadata.version %d is not supported (this controller supports %d to %d)", q->level,
                     CTRL_METADATA_VERSION_MIN, CTRL_METADATA_VERSION_LATEST);
            } else if (q->level < cur) {
                it->error = KAFKA_ERR_INVALID_UPDATE_VERSION;
                msgf(it, "metadata.version is %d; it cannot go down to %d", cur, q->level);
            } else if (q->level > cur && !validate_only) {
                kafka_feature_level_record r;
                kafka_feature_level_record_init(&r);
                r.name = kstr_c("metadata.version");
                r.feature_level = q->level;
                rb_add(c, &b, KAFKA_MREC_FEATURE_LEVEL, &r); /* copied */
            }
        }
        if (b.n > 0 || b.oom) {
            ar = rb_send(c, &b);
            sent = true;
        }
    }
    rb_free(&b);
    finish(c, token, CTRL_UPDATE_FEATURES, items, n, ar, sent, now);
    check_invariants(c);
}

/* ---- AlterPartition ------------------------------------------------------------------------ */

static int16_t check_isr_change(controller *c, int32_t broker_id, const ctrl_isr_change *q, const md_topic *t,
                                ctrl_item_result *it) {
    const md_image *img = c->committed;
    const md_partition *mp = t ? md_topic_partition(t, q->partition) : NULL;
    if (t == NULL) {
        msgf(it, "no topic has this id");
        return KAFKA_ERR_UNKNOWN_TOPIC_ID;
    }
    if (mp == NULL) {
        msgf(it, "topic '%s' has no partition %d", t->name, q->partition);
        return KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    if (mp->leader != broker_id) {
        msgf(it, "broker %d does not lead %s-%d (the leader is %d)", broker_id, t->name, q->partition,
             mp->leader);
        return KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    }
    if (q->leader_epoch != mp->leader_epoch) {
        msgf(it, "leader epoch %d is not the partition's %d", q->leader_epoch, mp->leader_epoch);
        return KAFKA_ERR_FENCED_LEADER_EPOCH;
    }
    if (q->partition_epoch != mp->partition_epoch) {
        msgf(it, "partition epoch %d is not the partition's %d", q->partition_epoch, mp->partition_epoch);
        return KAFKA_ERR_INVALID_UPDATE_VERSION;
    }
    if (q->leader_recovery_state != 0 && q->leader_recovery_state != 1) {
        msgf(it, "leader recovery state %d is not 0 or 1", q->leader_recovery_state);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (q->leader_recovery_state == 1 && mp->leader_recovery_state == 0) {
        msgf(it, "a recovered partition cannot go back to recovering");
        return KAFKA_ERR_INVALID_REQUEST;
    }
    if (q->n_isr <= 0 || q->n_isr > mp->replicas.n) {
        msgf(it, "an ISR of %d for %d replicas", q->n_isr, mp->replicas.n);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    bool leader_in = false;
    for (int32_t i = 0; i < q->n_isr; i++) {
        int32_t id = q->isr[i];
        leader_in = leader_in || id == broker_id;
        for (int32_t j = 0; j < i; j++)
            if (q->isr[j] == id) {
                msgf(it, "the ISR lists broker %d twice", id);
                return KAFKA_ERR_INVALID_REQUEST;
            }
        bool replica = false;
        for (int32_t k = 0; k < mp->replicas.n; k++)
            replica = replica || mp->replicas.ids[k] == id;
        if (!replica) {
            msgf(it, "broker %d is not a replica of %s-%d", id, t->name, q->partition);
            return KAFKA_ERR_INELIGIBLE_REPLICA;
        }
        const md_broker *b = md_image_broker(img, id);
        if (b == NULL || b->fenced || (b->in_controlled_shutdown && id != broker_id)) {
            msgf(it, "broker %d is %s", id,
                 b == NULL   ? "not registered"
                 : b->fenced ? "fenced"
                             : "in controlled shutdown");
            return KAFKA_ERR_INELIGIBLE_REPLICA;
        }
        if (q->broker_epochs && q->broker_epochs[i] >= 0 && q->broker_epochs[i] != b->epoch) {
            msgf(it, "broker %d's epoch is %lld, not %lld", id, (long long)b->epoch,
                 (long long)q->broker_epochs[i]);
            return KAFKA_ERR_INELIGIBLE_REPLICA;
        }
    }
    if (!leader_in) {
        msgf(it, "the ISR must hold its leader (broker %d)", broker_id);
        return KAFKA_ERR_INVALID_REQUEST;
    }
    return 0;
}

void ctrl_alter_partition(controller *c, int32_t broker_id, int64_t broker_epoch, const ctrl_isr_change *ch,
                          int32_t n, void *token, int64_t now) {
    check_invariants(c);
    if (n < 0)
        n = 0;
    ctrl_item_result *items = items_new(c, CTRL_ALTER_PARTITION, n, token);
    if (items == NULL)
        return;
    if (too_many(items, n)) {
        finish(c, token, CTRL_ALTER_PARTITION, items, n, (ctrl_append_result){0, -1}, false, now);
        return;
    }
    const md_broker *self = md_image_broker(c->committed, broker_id);
    bool stale = self == NULL || self->epoch != broker_epoch;
    rbatch b;
    rb_init(&b);
    for (int32_t i = 0; i < n; i++) {
        ctrl_item_result *it = &items[i];
        const ctrl_isr_change *q = &ch[i];
        it->topic_id = q->topic_id;
        if (stale) {
            it->error = KAFKA_ERR_STALE_BROKER_EPOCH;
            msgf(it, "broker %d's registered epoch is %lld, not %lld", broker_id,
                 self ? (long long)self->epoch : -1LL, (long long)broker_epoch);
            continue;
        }
        /* Decided on the committed image: the leader's epochs are those it
         * saw committed, and a change of ours in flight bumps the partition
         * epoch, so a second one for the same partition waits for it. */
        const md_topic *t = md_image_topic_by_id(c->committed, q->topic_id);
        const md_topic *vt = md_delta_topic_by_id(c->view, q->topic_id);
        const md_partition *vp = vt ? md_topic_partition(vt, q->partition) : NULL;
        const md_partition *mp = t ? md_topic_partition(t, q->partition) : NULL;
        if ((it->error = check_isr_change(c, broker_id, q, t, it)) != 0)
            continue;
        if (vp == NULL || vp->partition_epoch != mp->partition_epoch) {
            it->error = KAFKA_ERR_INVALID_UPDATE_VERSION;
            msgf(it, "another change of the partition is being committed");
            continue;
        }
        bool same = mp->isr.n == q->n_isr && (int8_t)mp->leader_recovery_state == q->leader_recovery_state;
        for (int32_t k = 0; same && k < q->n_isr; k++) {
            bool found = false;
            for (int32_t j = 0; j < mp->isr.n; j++)
                found = found || mp->isr.ids[j] == q->isr[k];
            same = found;
        }
        if (same)
            continue;
        kafka_partition_change_record r;
        kafka_partition_change_record_init(&r);
        r.topic_id = q->topic_id;
        r.partition_id = q->partition;
        r.isr = (int32_t *)q->isr;
        r.isr_count = q->n_isr;
        if ((int8_t)mp->leader_recovery_state != q->leader_recovery_state)
            r.leader_recovery_state = q->leader_recovery_state;
        rb_add(c, &b, KAFKA_MREC_PARTITION_CHANGE, &r);
        if (b.oom)
            it->error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
    }
    bool sent = b.n > 0;
    ctrl_append_result ar = {0, -1};
    if (sent)
        ar = rb_send(c, &b);
    rb_free(&b);
    finish(c, token, CTRL_ALTER_PARTITION, items, n, ar, sent, now);
    check_invariants(c);
}
