/*
 * scenario_controller.c - the controller state machine and the metadata
 * image under random admin traffic, asynchronous commits and controller
 * crash-restarts.
 *
 * The world: a metadata log (batches of framed records, in memory), a
 * committed image built from it with md_apply, 1-4 registered brokers (some
 * with racks), and one controller. Per seed the owner either commits inside
 * the append (a single node) or later (a quorum: commit delays, and a crash
 * drops the batches not yet committed). Clients send random CreateTopics
 * (names from a small pool so they conflict and collide, partition counts,
 * replication factors, assignments, valid and invalid configs, validate-only),
 * DeleteTopics (by name or id, duplicates), CreatePartitions and
 * (Incremental)AlterConfigs. The controller restarts now and then: the new
 * one starts from the image rebuilt by replaying the log.
 *
 * Invariants, after every step:
 *   - every request is answered exactly once, within its timeout plus the
 *     time to the next tick;
 *   - a success is committed: the reply's last offset is at or below the
 *     committed offset, and the log up to it holds the change (the topic id a
 *     CreateTopics success reports is in a committed TopicRecord);
 *   - the committed image is sane: no two topics whose names collide, every
 *     partition 0..n-1 present, replicas distinct and registered, the leader
 *     the first replica while that broker is unfenced, otherwise none or an
 *     unfenced ISR member (some seeds silence one broker's heartbeats, so
 *     the controller fences it and moves its leaderships), at most the
 *     partition limit;
 *   - replaying the log from empty gives an image equal to the committed
 *     one, and so does reloading the image's snapshot records;
 *   - on a single node, a request that could not conflict with anything in
 *     flight gets the answer the committed image predicts for simple cases
 *     (an existing name is TOPIC_ALREADY_EXISTS, a fresh valid one succeeds).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"
#include "proto/gen/kafka_msgs.h"
#include "sim.h"

#define LOG_BATCHES_MAX 20000
#define TOKENS_MAX      512
#define NAMES           12

typedef struct lbatch {
    int n;
    uint8_t **recs;
    size_t *lens;
    int64_t last_offset;
} lbatch;

typedef struct token {
    bool used;
    ctrl_kind kind;
    int64_t sent_at;
    int32_t n_items;
    /* CreateTopics predictions (single node): expected error per item, or -1 */
    int16_t expect[8];
    char names[8][32];
} token;

typedef struct world {
    sim *s;
    md_image *img; /* committed */
    md_delta *staged;
    int64_t staged_last;
    lbatch log[LOG_BATCHES_MAX];
    int n_log, n_committed; /* batches; the first n_committed are committed */
    int64_t next_offset;
    controller *c;
    bool sync;
    bool ending;
    int incarnation;
    int brokers;
    int silent; /* a broker (id) that stops heartbeating at silent_at; 0: none */
    int64_t silent_at;
    const char *racks[4];
    token tok[TOKENS_MAX];
    int64_t request_timeout;
    int64_t partitions_max;
    uint64_t ok_creates, refused, restarts, commits;
    md_image *prev;       /* the image check_image saw last */
    bool unregistered[8]; /* broker ids a client unregistered */
    bool unclean_sent;    /* an unclean election was asked for */
    uint64_t elections, unregisters;
} world;

static const char *const NAME_POOL[NAMES] = {"orders",   "orders_v2", "orders.v2", "logs",
                                             "a",        "metrics",   "x-stray",   "__consumer_offsets",
                                             "bad name", "b.c",       "b_c",       "t9"};

/* ---- the metadata log --------------------------------------------------------------- */

static void batch_free(lbatch *b) {
    for (int i = 0; i < b->n; i++)
        free(b->recs[i]);
    free(b->recs);
    free(b->lens);
    memset(b, 0, sizeof *b);
}

/* Rebuilds an image from the first n batches of the log. */
static md_image *replay(world *w, int n) {
    md_image *e = md_image_empty();
    md_delta *d = md_delta_begin(e);
    arena a;
    arena_init(&a, 64 << 20);
    int64_t last = -1;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < w->log[i].n; k++) {
            mdrec rec;
            char err[256];
            if (mdrec_decode(w->log[i].recs[k], w->log[i].lens[k], &a, &rec) != MDREC_OK) {
                sim_fail(w->s, "log batch %d record %d does not decode", i, k);
                break;
            }
            if (md_apply(d, &rec, err, sizeof err) != MD_OK) {
                sim_fail(w->s, "replay: batch %d record %d (%s) does not apply: %s", i, k,
                         mdrec_type_name(rec.type), err);
                break;
            }
        }
        arena_reset(&a);
        last = w->log[i].last_offset;
    }
    md_image *img = md_delta_publish(d, last, 0);
    md_image_unref(e);
    arena_reset(&a);
    return img;
}

static void commit_upto(world *w, int upto) {
    if (upto <= w->n_committed)
        return;
    /* Apply the newly committed batches to the committed image. */
    md_delta *d = md_delta_begin(w->img);
    arena a;
    arena_init(&a, 64 << 20);
    for (int i = w->n_committed; i < upto; i++) {
        for (int k = 0; k < w->log[i].n; k++) {
            mdrec rec;
            char err[256];
            if (mdrec_decode(w->log[i].recs[k], w->log[i].lens[k], &a, &rec) != MDREC_OK ||
                md_apply(d, &rec, err, sizeof err) != MD_OK) {
                sim_fail(w->s, "commit: batch %d record %d does not apply", i, k);
                md_delta_abort(d);
                arena_reset(&a);
                return;
            }
        }
        arena_reset(&a);
    }
    md_image *next = md_delta_publish(d, w->log[upto - 1].last_offset, 0);
    arena_reset(&a);
    md_image_unref(w->img);
    w->img = next;
    w->n_committed = upto;
    w->commits++;
    ctrl_commit(w->c, w->img, w->s->now);
}

static ctrl_append_result on_append(void *ctx, const mdrec *recs, int n) {
    world *w = ctx;
    if (w->n_log == LOG_BATCHES_MAX)
        return (ctrl_append_result){KAFKA_ERR_KAFKA_STORAGE_ERROR, -1};
    /* Sometimes the disk refuses (full): the controller must roll back. */
    if (sim_chance(&w->s->rng, 20000))
        return (ctrl_append_result){KAFKA_ERR_KAFKA_STORAGE_ERROR, -1};
    lbatch *b = &w->log[w->n_log];
    b->recs = calloc((size_t)n, sizeof *b->recs);
    b->lens = calloc((size_t)n, sizeof *b->lens);
    for (int i = 0; i < n; i++) {
        b->lens[i] = mdrec_size(&recs[i]);
        b->recs[i] = malloc(b->lens[i]);
        wire_writer wr;
        wire_writer_init(&wr, b->recs[i], b->lens[i]);
        if (mdrec_encode(&recs[i], &wr) != WIRE_OK)
            sim_fail(w->s, "a controller record does not encode");
    }
    b->n = n;
    w->next_offset += n;
    b->last_offset = w->next_offset - 1;
    w->n_log++;
    ctrl_append_result r = {0, b->last_offset};
    if (w->sync)
        commit_upto(w, w->n_log);
    return r;
}

/* ---- replies and checks ----------------------------------------------------------- */

/* Whether the committed log holds a TopicRecord (name, id) at or below last. */
static bool log_has_topic(world *w, const char *name, kuuid id, int64_t last) {
    arena a;
    arena_init(&a, 1 << 20);
    bool found = false;
    for (int i = 0; i < w->n_committed && !found && w->log[i].last_offset <= last; i++) {
        for (int k = 0; k < w->log[i].n && !found; k++) {
            mdrec rec;
            if (mdrec_decode(w->log[i].recs[k], w->log[i].lens[k], &a, &rec) == MDREC_OK &&
                rec.type == KAFKA_MREC_TOPIC) {
                const kafka_topic_record *t = rec.body;
                found = kstr_eq(t->name, kstr_c(name)) && memcmp(t->topic_id.b, id.b, 16) == 0;
            }
        }
        arena_reset(&a);
    }
    arena_reset(&a);
    return found;
}

static void on_reply(void *ctx, void *tokp, const ctrl_result *res) {
    world *w = ctx;
    int t = (int)(intptr_t)tokp;
    if (w->ending)
        return;
    if (t <= 0 || t >= TOKENS_MAX || !w->tok[t].used) {
        sim_fail(w->s, "reply for unknown or answered token %d", t);
        return;
    }
    token *tk = &w->tok[t];
    tk->used = false;
    if (res->items == NULL)
        return; /* out of memory: nothing to check */
    SIM_CHECK(w->s, res->n == tk->n_items, "reply with %d items for a request of %d", res->n, tk->n_items);
    int64_t committed = md_image_offset(w->img);
    for (int32_t i = 0; i < res->n && !w->s->failed; i++) {
        const ctrl_item_result *it = &res->items[i];
        if (it->error == 0 && tk->kind != CTRL_REGISTER_BROKER && res->last_offset >= 0)
            SIM_CHECK(w->s, res->last_offset <= committed,
                      "success answered at offset %lld before it was committed (%lld)",
                      (long long)res->last_offset, (long long)committed);
        if (tk->kind == CTRL_CREATE_TOPICS && i < 8) {
            if (it->error == 0 && res->last_offset >= 0) {
                w->ok_creates++;
                SIM_CHECK(w->s, log_has_topic(w, tk->names[i], it->topic_id, res->last_offset),
                          "CreateTopics %s succeeded but no committed TopicRecord has its id", tk->names[i]);
            } else if (it->error != 0) {
                w->refused++;
            }
            if (tk->expect[i] >= 0)
                SIM_CHECK(w->s,
                          it->error == tk->expect[i] || it->error == KAFKA_ERR_KAFKA_STORAGE_ERROR ||
                              (tk->expect[i] == 0 && it->error == KAFKA_ERR_POLICY_VIOLATION),
                          "CreateTopics %s: expected error %d, got %d (%s)", tk->names[i], tk->expect[i],
                          it->error, it->message);
        }
    }
}

static void check_image(world *w, const md_image *img) {
    int64_t parts = 0;
    for (int32_t i = 0; i < md_image_topic_count(img) && !w->s->failed; i++) {
        const md_topic *t = md_image_topic_at(img, i);
        parts += t->n_partitions;
        for (int32_t j = 0; j < i; j++) {
            const md_topic *u = md_image_topic_at(img, j);
            bool collide = t->name_len == u->name_len;
            for (int32_t k = 0; collide && k < t->name_len; k++)
                collide = (t->name[k] == '.' ? '_' : t->name[k]) == (u->name[k] == '.' ? '_' : u->name[k]);
            SIM_CHECK(w->s, !collide, "topics %s and %s collide", t->name, u->name);
        }
        for (int32_t p = 0; p < t->n_partitions && !w->s->failed; p++) {
            const md_partition *pp = md_topic_partition(t, p);
            SIM_CHECK(w->s, pp != NULL, "topic %s lacks partition %d", t->name, p);
            if (pp == NULL)
                return;
            const md_broker *first = pp->replicas.n > 0 ? md_image_broker(img, pp->replicas.ids[0]) : NULL;
            bool first_in_isr = false;
            for (int32_t k = 0; k < pp->isr.n; k++)
                first_in_isr = first_in_isr || (pp->replicas.n > 0 && pp->isr.ids[k] == pp->replicas.ids[0]);
            /* The first replica leads while it is unfenced and in the ISR
             * (it left the ISR only through an unclean election or a
             * creation while it was fenced). */
            if (first != NULL && !first->fenced && first_in_isr)
                SIM_CHECK(w->s, pp->leader == pp->replicas.ids[0] || pp->leader < 0,
                          "%s-%d: leader %d is not the first replica", t->name, p, pp->leader);
            /* The ISR: 1..n distinct replicas, the leader among them. */
            SIM_CHECK(w->s, pp->isr.n >= 1 && pp->isr.n <= pp->replicas.n, "%s-%d: ISR of %d for %d replicas",
                      t->name, p, pp->isr.n, pp->replicas.n);
            bool in_isr = pp->leader < 0;
            for (int32_t k = 0; k < pp->isr.n; k++) {
                in_isr = in_isr || pp->isr.ids[k] == pp->leader;
                bool is_replica = false;
                for (int32_t a = 0; a < pp->replicas.n; a++)
                    is_replica = is_replica || pp->replicas.ids[a] == pp->isr.ids[k];
                SIM_CHECK(w->s, is_replica, "%s-%d: ISR member %d is not a replica", t->name, p,
                          pp->isr.ids[k]);
                for (int32_t b = 0; b < k; b++)
                    SIM_CHECK(w->s, pp->isr.ids[b] != pp->isr.ids[k], "%s-%d: ISR lists %d twice", t->name, p,
                              pp->isr.ids[k]);
            }
            SIM_CHECK(w->s, in_isr, "%s-%d: leader %d is not an ISR member", t->name, p, pp->leader);
            if (pp->leader >= 0)
                SIM_CHECK(w->s, md_image_broker(img, pp->leader) != NULL || w->unregistered[pp->leader & 7],
                          "%s-%d: leader %d was never registered", t->name, p, pp->leader);
            /* Nobody replicates, so the ISR never gains a member, except
             * the new leader of an unclean election, alone. */
            const md_topic *ot = w->prev ? md_image_topic_by_id(w->prev, t->id) : NULL;
            const md_partition *op = ot ? md_topic_partition(ot, p) : NULL;
            if (op == NULL && w->prev != NULL)
                SIM_CHECK(w->s, pp->isr.n == 1, "%s-%d: created with an ISR of %d (nobody replicates yet)",
                          t->name, p, pp->isr.n);
            if (op != NULL) {
                bool subset = true;
                for (int32_t k = 0; k < pp->isr.n; k++) {
                    bool was = false;
                    for (int32_t j = 0; j < op->isr.n; j++)
                        was = was || op->isr.ids[j] == pp->isr.ids[k];
                    subset = subset && was;
                }
                SIM_CHECK(w->s, subset || (pp->isr.n == 1 && pp->isr.ids[0] == pp->leader && w->unclean_sent),
                          "%s-%d: the ISR grew without replication (ISR of %d, was %d)", t->name, p,
                          pp->isr.n, op->isr.n);
            }
            for (int32_t a = 0; a < pp->replicas.n; a++) {
                SIM_CHECK(w->s,
                          md_image_broker(img, pp->replicas.ids[a]) != NULL ||
                              w->unregistered[pp->replicas.ids[a] & 7],
                          "%s-%d: replica %d not registered", t->name, p, pp->replicas.ids[a]);
                for (int32_t b = 0; b < a; b++)
                    SIM_CHECK(w->s, pp->replicas.ids[a] != pp->replicas.ids[b], "%s-%d: replica listed twice",
                              t->name, p);
            }
        }
    }
    SIM_CHECK(w->s, parts <= w->partitions_max, "%lld partitions, more than the limit %lld", (long long)parts,
              (long long)w->partitions_max);
    if (w->prev != img) {
        if (w->prev)
            md_image_unref(w->prev);
        w->prev = md_image_ref((md_image *)img);
    }
}

static void check(sim *s, void *ctx) {
    world *w = ctx;
    for (int t = 1; t < TOKENS_MAX; t++)
        if (w->tok[t].used && s->now - w->tok[t].sent_at > w->request_timeout + 1000) {
            sim_fail(s, "request %d unanswered after %lld ms", t, (long long)(s->now - w->tok[t].sent_at));
            return;
        }
    if (s->steps % 64 == 0)
        check_image(w, w->img);
}

/* ---- config callbacks (a small table) ------------------------------------------------- */

static int k_kind(void *ctx, const char *key) {
    (void)ctx;
    if (!strcmp(key, "cleanup.policy"))
        return 1;
    if (!strcmp(key, "retention.ms") || !strcmp(key, "segment.bytes"))
        return 0;
    return -1;
}

static int k_check(void *ctx, const char *topic, const char *const *keys, const char *const *values, int n,
                   char *msg, size_t msgn) {
    (void)ctx;
    (void)topic;
    for (int i = 0; i < n; i++) {
        if (k_kind(NULL, keys[i]) < 0) {
            snprintf(msg, msgn, "Unknown topic config name: %s", keys[i]);
            return KAFKA_ERR_INVALID_CONFIG;
        }
        if (!strcmp(keys[i], "segment.bytes") && atoi(values[i]) < 14) {
            snprintf(msg, msgn, "segment.bytes too small");
            return KAFKA_ERR_INVALID_CONFIG;
        }
    }
    return 0;
}

static bool k_effective(void *ctx, const char *const *keys, const char *const *values, int n, const char *key,
                        char *out, size_t outn) {
    (void)ctx;
    for (int i = 0; i < n; i++)
        if (!strcmp(keys[i], key)) {
            snprintf(out, outn, "%s", values[i]);
            return true;
        }
    if (!strcmp(key, "cleanup.policy")) {
        snprintf(out, outn, "delete");
        return true;
    }
    return false;
}

/* ---- the controller's life ------------------------------------------------------------ */

static void schedule_tick(world *w);

static void start_controller(world *w) {
    ctrl_config cfg;
    ctrl_config_default(&cfg);
    cfg.seed = sim_rand(&w->s->rng);
    cfg.default_partitions = 2;
    cfg.request_timeout_ms = w->request_timeout;
    cfg.partitions_max = w->partitions_max;
    cfg.configs = (ctrl_config_ops){w, k_check, k_kind, k_effective, NULL};
    ctrl_sink sink = {w, on_append, on_reply};
    w->c = ctrl_create(&cfg, &sink, w->img);
    schedule_tick(w);
}

static int new_token(world *w, ctrl_kind kind, int32_t n) {
    for (int t = 1; t < TOKENS_MAX; t++)
        if (!w->tok[t].used) {
            memset(&w->tok[t], 0, sizeof w->tok[t]);
            w->tok[t].used = true;
            w->tok[t].kind = kind;
            w->tok[t].sent_at = w->s->now;
            w->tok[t].n_items = n;
            for (int i = 0; i < 8; i++)
                w->tok[t].expect[i] = -1;
            return t;
        }
    return 0;
}

static void crash_restart(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    /* The controller goes; what it proposed but was not committed is lost
     * (a new quorum leader truncates it). Its waiting requests are answered
     * by the failover as errors. */
    ctrl_destroy(w->c, KAFKA_ERR_NOT_CONTROLLER);
    w->c = NULL;
    for (int i = w->n_committed; i < w->n_log; i++)
        batch_free(&w->log[i]);
    w->n_log = w->n_committed;
    w->next_offset = w->n_log ? w->log[w->n_log - 1].last_offset + 1 : 0;
    /* Replay must rebuild exactly the committed image. */
    md_image *back = replay(w, w->n_committed);
    char why[256];
    SIM_CHECK(w->s, md_image_equal(w->img, back, why, sizeof why), "replayed image differs: %s", why);
    md_image_unref(back);
    w->incarnation++;
    w->restarts++;
    start_controller(w);
}

/* Every broker but a silenced one heartbeats with its committed epoch. */
static void heartbeats(world *w, int64_t now) {
    for (int b = 1; b <= w->brokers; b++) {
        if (b == w->silent && now >= w->silent_at)
            continue;
        const md_broker *mb = md_image_broker(w->img, b);
        bool fenced, shut;
        if (mb != NULL)
            ctrl_broker_heartbeat(w->c, b, mb->epoch, false, now, &fenced, &shut);
    }
}

static void tick(void *ctx, void *arg) {
    world *w = ctx;
    if (w->ending || (int)(intptr_t)arg != w->incarnation)
        return;
    heartbeats(w, w->s->now);
    ctrl_tick(w->c, w->s->now);
    schedule_tick(w);
}

static void schedule_tick(world *w) {
    int64_t next = ctrl_next_deadline(w->c);
    int64_t at = w->s->now + 100;
    if (next < at)
        at = next < w->s->now ? w->s->now : next;
    sim_at(w->s, at, tick, w, (void *)(intptr_t)w->incarnation);
}

static void async_commit(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending || w->sync)
        return;
    if (w->n_log > w->n_committed)
        commit_upto(w, w->n_committed + (int)sim_range(&w->s->rng, 1, w->n_log - w->n_committed));
    sim_after(w->s, sim_range(&w->s->rng, 1, 400), async_commit, w, NULL);
}

/* ---- clients ---------------------------------------------------------------------------- */

static kstr pick_name(world *w) { return kstr_c(NAME_POOL[sim_below(&w->s->rng, NAMES)]); }

static void client_create(world *w) {
    int n = (int)sim_range(&w->s->rng, 1, 4);
    ctrl_new_topic t[4];
    ctrl_kv cfg[4][2];
    int32_t brokers[4][4][3];
    ctrl_assignment asg[4][4];
    bool vo = sim_chance(&w->s->rng, 100000);
    int tk = new_token(w, CTRL_CREATE_TOPICS, n);
    if (tk == 0)
        return;
    bool predictable = w->sync && n == 1 && !vo;
    for (int i = 0; i < n; i++) {
        t[i] = (ctrl_new_topic){pick_name(w),
                                (int32_t)sim_range(&w->s->rng, -1, 5),
                                (int16_t)sim_range(&w->s->rng, -1, 3),
                                NULL,
                                0,
                                NULL,
                                0,
                                false};
        snprintf(w->tok[tk].names[i], sizeof w->tok[tk].names[i], "%.*s", t[i].name.len, t[i].name.ptr);
        int nc = (int)sim_range(&w->s->rng, 0, 2);
        for (int k = 0; k < nc; k++) {
            static const char *keys[] = {"retention.ms", "segment.bytes", "cleanup.policy", "no.such"};
            static const char *vals[] = {"1000", "13", "compact", "1"};
            int j = (int)sim_below(&w->s->rng, 4);
            cfg[i][k] = (ctrl_kv){kstr_c(keys[j]), kstr_c(vals[j])};
        }
        t[i].configs = cfg[i];
        t[i].n_configs = nc;
        if (sim_chance(&w->s->rng, 150000)) {
            int np = (int)sim_range(&w->s->rng, 1, 4), rf = (int)sim_range(&w->s->rng, 1, 3);
            for (int p = 0; p < np; p++) {
                for (int r = 0; r < rf; r++)
                    brokers[i][p][r] = (int32_t)sim_range(&w->s->rng, 1, 5);
                asg[i][p] = (ctrl_assignment){p, brokers[i][p], rf};
            }
            t[i].assignments = asg[i];
            t[i].n_assignments = np;
            t[i].partitions = t[i].replication_factor = -1;
        }
        /* Predictions for simple, conflict-free cases on a single node. */
        if (predictable && t[i].n_assignments == 0 && t[i].n_configs == 0) {
            const char *nm = w->tok[tk].names[i];
            bool bad = strchr(nm, ' ') != NULL;
            bool reserved = !strcmp(nm, "__consumer_offsets") || strstr(nm, "-stray") != NULL;
            int32_t rf = t[i].replication_factor == -1 ? 1 : t[i].replication_factor;
            if (bad)
                w->tok[tk].expect[i] = KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
            else if (!reserved && md_image_topic(w->img, t[i].name) != NULL)
                w->tok[tk].expect[i] = KAFKA_ERR_TOPIC_ALREADY_EXISTS;
            else if (!reserved && t[i].partitions != 0 && rf >= 1 && rf <= md_image_broker_count(w->img) &&
                     !(w->silent && w->s->now >= w->silent_at)) {
                bool collides = false;
                for (int32_t x = 0; x < md_image_topic_count(w->img); x++) {
                    const md_topic *u = md_image_topic_at(w->img, x);
                    bool c = u->name_len == t[i].name.len;
                    for (int32_t k = 0; c && k < u->name_len; k++)
                        c = (u->name[k] == '.' ? '_' : u->name[k]) == (nm[k] == '.' ? '_' : nm[k]);
                    collides |= c;
                }
                if (!collides)
                    w->tok[tk].expect[i] = 0;
            }
        }
    }
    ctrl_create_topics(w->c, t, n, vo, (void *)(intptr_t)tk, w->s->now);
}

static void client_delete(world *w) {
    int n = (int)sim_range(&w->s->rng, 1, 3);
    ctrl_topic_ref r[3];
    for (int i = 0; i < n; i++) {
        r[i] = (ctrl_topic_ref){pick_name(w), {{0}}};
        int32_t cnt = md_image_topic_count(w->img);
        if (cnt > 0 && sim_chance(&w->s->rng, 400000)) {
            const md_topic *t = md_image_topic_at(w->img, (int32_t)sim_below(&w->s->rng, (uint64_t)cnt));
            r[i] = (ctrl_topic_ref){KSTR_NULL, t->id};
        }
    }
    int tk = new_token(w, CTRL_DELETE_TOPICS, n);
    if (tk)
        ctrl_delete_topics(w->c, r, n, (void *)(intptr_t)tk, w->s->now);
}

static void client_partitions(world *w) {
    ctrl_new_partitions q = {pick_name(w), (int32_t)sim_range(&w->s->rng, 1, 8), NULL, -1};
    int tk = new_token(w, CTRL_CREATE_PARTITIONS, 1);
    if (tk)
        ctrl_create_partitions(w->c, &q, 1, sim_chance(&w->s->rng, 100000), (void *)(intptr_t)tk, w->s->now);
}

static void client_alter(world *w) {
    static const char *keys[] = {"retention.ms", "cleanup.policy", "segment.bytes", "nope"};
    static const char *vals[] = {"5000", "compact", "20", "1"};
    ctrl_alter a[2];
    int n = (int)sim_range(&w->s->rng, 1, 2);
    for (int i = 0; i < n; i++) {
        int j = (int)sim_below(&w->s->rng, 4);
        a[i] = (ctrl_alter){kstr_c(keys[j]), (int8_t)sim_below(&w->s->rng, 4), kstr_c(vals[j])};
        if (a[i].op == CTRL_DELETE)
            a[i].value = KSTR_NULL;
    }
    ctrl_resource res = {MD_RESOURCE_TOPIC, pick_name(w), a, n};
    int tk = new_token(w, CTRL_ALTER_CONFIGS, 1);
    if (tk)
        ctrl_alter_configs(w->c, &res, 1, sim_chance(&w->s->rng, 700000), false, (void *)(intptr_t)tk,
                           w->s->now);
}

static void client_elect(world *w) {
    ctrl_partition_ref r[3];
    int n = (int)sim_range(&w->s->rng, 1, 3);
    for (int i = 0; i < n; i++) {
        r[i] = (ctrl_partition_ref){pick_name(w), (int32_t)sim_range(&w->s->rng, 0, 5)};
        int32_t cnt = md_image_topic_count(w->img);
        if (cnt > 0 && sim_chance(&w->s->rng, 700000)) {
            const md_topic *t = md_image_topic_at(w->img, (int32_t)sim_below(&w->s->rng, (uint64_t)cnt));
            r[i] = (ctrl_partition_ref){(kstr){t->name, t->name_len},
                                        (int32_t)sim_below(&w->s->rng, (uint64_t)t->n_partitions + 1)};
        }
    }
    int8_t type = sim_chance(&w->s->rng, 50000) ? 7 : (int8_t)sim_below(&w->s->rng, 2);
    if (type == CTRL_ELECT_UNCLEAN)
        w->unclean_sent = true;
    int tk = new_token(w, CTRL_ELECT_LEADERS, n);
    if (tk)
        ctrl_elect_leaders(w->c, type, r, n, (void *)(intptr_t)tk, w->s->now);
    w->elections++;
}

/* Unregisters the silenced broker (once it is fenced), or an unknown id. */
static void client_unregister(world *w) {
    int32_t id = (int32_t)sim_range(&w->s->rng, 1, 6);
    if (w->silent && sim_chance(&w->s->rng, 500000))
        id = w->silent;
    const md_broker *b = md_image_broker(w->img, id);
    if (b != NULL && !b->fenced)
        return; /* a live broker would register again: the sim's brokers do not */
    int tk = new_token(w, CTRL_UNREGISTER_BROKER, 1);
    if (tk == 0)
        return;
    if (b != NULL && id < 8)
        w->unregistered[id] = true;
    ctrl_unregister_broker(w->c, id, (void *)(intptr_t)tk, w->s->now);
    w->unregisters++;
}

static void client_act(void *ctx, void *arg) {
    (void)arg;
    world *w = ctx;
    if (w->ending)
        return;
    if (sim_chance(&w->s->rng, 80000)) {
        client_elect(w);
        sim_after(w->s, sim_range(&w->s->rng, 1, 200), client_act, w, NULL);
        return;
    }
    if (sim_chance(&w->s->rng, 10000))
        client_unregister(w);
    switch (sim_below(&w->s->rng, 10)) {
    case 0:
    case 1:
    case 2:
    case 3:
        client_create(w);
        break;
    case 4:
    case 5:
        client_delete(w);
        break;
    case 6:
    case 7:
        client_partitions(w);
        break;
    default:
        client_alter(w);
        break;
    }
    sim_after(w->s, sim_range(&w->s->rng, 1, 200), client_act, w, NULL);
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct reload_ctx {
    md_delta *d;
    arena *a;
    bool bad;
} reload_ctx;

static int reload_one(void *ctx, const mdrec *rec) {
    reload_ctx *r = ctx;
    uint8_t *buf;
    size_t len;
    mdrec back;
    char err[256];
    if (mdrec_encode_alloc(rec, r->a, &buf, &len) != MDREC_OK ||
        mdrec_decode(buf, len, r->a, &back) != MDREC_OK || md_apply(r->d, &back, err, sizeof err) != MD_OK) {
        r->bad = true;
        return 1;
    }
    return 0;
}

static bool run(sim *s) {
    world *w = calloc(1, sizeof *w);
    w->s = s;
    w->img = md_image_empty();
    w->sync = sim_chance(&s->rng, 500000);
    w->brokers = (int)sim_range(&s->rng, 1, 4);
    w->request_timeout = sim_range(&s->rng, 2000, 30000);
    w->partitions_max = sim_range(&s->rng, 20, 200);
    if (w->brokers > 1 && sim_chance(&s->rng, 300000)) {
        w->silent = (int)sim_range(&s->rng, 1, w->brokers);
        w->silent_at = sim_range(&s->rng, 1000, 40000);
    }
    s->check = check;
    s->check_ctx = w;
    start_controller(w);
    /* Register the brokers (racks for some seeds). */
    bool racks = sim_chance(&s->rng, 400000);
    static const char *rack_names[] = {"r1", "r2", "r1", "r2"};
    bool was_sync = w->sync;
    w->sync = true;
    for (int b = 0; b < w->brokers; b++) {
        ctrl_broker_reg reg = {b + 1,      {{(uint8_t)(b + 1)}}, "PLAINTEXT",
                               "10.0.0.1", (uint16_t)(9092 + b), racks ? rack_names[b] : NULL};
        int tk = new_token(w, CTRL_REGISTER_BROKER, 1);
        ctrl_register_broker(w->c, &reg, (void *)(intptr_t)tk, s->now);
    }
    w->sync = was_sync;
    sim_after(s, 1, client_act, w, NULL);
    if (!w->sync)
        sim_after(s, 1, async_commit, w, NULL);
    int crashes = (int)sim_range(&s->rng, 0, 3);
    int64_t end = sim_range(&s->rng, 20000, 90000);
    for (int i = 0; i < crashes; i++)
        sim_at(s, sim_range(&s->rng, 1000, end - 1000), crash_restart, w, NULL);
    bool ok = sim_run(s, end);
    if (ok) {
        /* Let everything in flight commit, then compare replay and snapshot. */
        if (!w->sync)
            commit_upto(w, w->n_log);
        /* Twice: fencing first, then the elections it causes; committed. */
        for (int round = 0; round < 3; round++) {
            heartbeats(w, s->now + 10 * w->request_timeout);
            ctrl_tick(w->c, s->now + 10 * w->request_timeout);
            if (!w->sync)
                commit_upto(w, w->n_log);
        }
        /* No partition is left led by a fenced broker. */
        for (int32_t i = 0; i < md_image_topic_count(w->img) && !s->failed; i++) {
            const md_topic *t = md_image_topic_at(w->img, i);
            for (int32_t p = 0; p < t->n_partitions; p++) {
                const md_partition *pp = md_topic_partition(t, p);
                const md_broker *lb = pp->leader >= 0 ? md_image_broker(w->img, pp->leader) : NULL;
                SIM_CHECK(s, lb == NULL || !lb->fenced, "%s-%d: still led by fenced broker %d", t->name, p,
                          pp->leader);
            }
        }
        md_image *back = replay(w, w->n_committed);
        char why[256];
        SIM_CHECK(s, md_image_equal(w->img, back, why, sizeof why), "replayed image differs: %s", why);
        md_image_unref(back);
        md_image *e = md_image_empty();
        arena a;
        arena_init(&a, 64 << 20);
        reload_ctx rc = {md_delta_begin(e), &a, false};
        md_image_records(w->img, reload_one, &rc);
        md_image *snap = md_delta_publish(rc.d, md_image_offset(w->img), 0);
        SIM_CHECK(s, !rc.bad, "a snapshot record does not reload");
        SIM_CHECK(s, md_image_equal(w->img, snap, why, sizeof why), "snapshot reload differs: %s", why);
        md_image_unref(snap);
        md_image_unref(e);
        arena_reset(&a);
        check_image(w, w->img);
        SIM_CHECK(s, w->ok_creates > 0 || w->refused > 0, "no CreateTopics was ever answered");
        ok = !s->failed;
    }
    sim_trace(s,
              "sync=%d brokers=%d batches=%d committed=%d creates=%llu refused=%llu restarts=%llu topics=%d",
              w->sync, w->brokers, w->n_log, w->n_committed, (unsigned long long)w->ok_creates,
              (unsigned long long)w->refused, (unsigned long long)w->restarts, md_image_topic_count(w->img));
    s->check = NULL;
    w->ending = true;
    ctrl_destroy(w->c, KAFKA_ERR_NOT_CONTROLLER);
    s->failed = false;
    sim_run(s, INT64_MAX);
    s->failed = !ok;
    for (int i = 0; i < w->n_log; i++)
        batch_free(&w->log[i]);
    if (w->staged)
        md_delta_abort(w->staged);
    if (w->prev)
        md_image_unref(w->prev);
    md_image_unref(w->img);
    free(w);
    return ok;
}

const sim_scenario sim_scenario_controller = {
    "controller",
    "controller and metadata image: random admin requests, async commits, lost uncommitted batches, restarts",
    run,
};
