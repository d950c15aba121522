/*
 * meta.c - the broker's metadata: log, image, controller, partitions. See
 * meta.h.
 */
#include "broker/broker.h"
#include "broker/meta.h"
#include "security/sasl.h"

#include <assert.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/quorum.h"
#include "broker/rpc.h"
#include "core/clock.h"
#include "core/env.h"
#include "core/log.h"
#include "metadata/mdlog.h"
#include "metadata/migrate.h"
#include "proto/gen/kafka_msgs.h"

#define ERR_MAX         1024
#define MIGRATING_NAME  MDLOG_DIR_NAME ".migrating"
#define MIGRATED_SUFFIX ".migrated"

struct bmeta {
    const broker_config *cfg;
    storage_ctx *sc;
    sl_env env;
    logmgr *lm;
    mdlog *log;
    controller *ctrl;
    parts *ps;
    bmeta_hooks hooks;
    /* Serialises changes: controller calls, appends, applies, snapshots. */
    pthread_mutex_t mu;
    /* Guards the image pointer only (readers take a reference). */
    pthread_mutex_t img_mu;
    md_image *img;
    atomic_bool has_quotas; /* img holds client quotas (bmeta_has_quotas) */
    /* Start-up only: topic ids the replayed log (or the migrated one)
     * records as removed, and unfinished creations of the old log, so the
     * directories they left are removed rather than set aside. */
    kuuid *removed;
    int32_t n_removed, cap_removed;
    md_migrate_intent *intents;
    int32_t n_intents;
    bool opened;
    bool snapshot_failed_logged;
    /* A quorum member (controller.quorum.voters set); NULL on a single
     * node. Everything below is guarded by mu. */
    bquorum *q;
    bool active; /* the active controller (leader, its epoch's first record committed) */
    raft_role role;
    int32_t leader_epoch;
    int64_t applied;        /* records below are in img */
    md_image *proposed;     /* the active controller's view: img + its uncommitted proposals */
    md_image *tail;         /* start-up only: img + the log's uncommitted tail, for judge() */
    pthread_cond_t done_cv; /* a controller request was answered */
    kuuid incarnation;      /* this process's broker registration */
    bool stopping;          /* bmeta_quiesce: never the active controller again */
    atomic_bool cancel;     /* bmeta_quiesce: requests to other nodes give up */
    ctrl_item_result self_reg_res;
};

/* ---- the image ------------------------------------------------------------------------ */

md_image *bmeta_image(bmeta *m) {
    pthread_mutex_lock(&m->img_mu);
    md_image *img = md_image_ref(m->img);
    pthread_mutex_unlock(&m->img_mu);
    return img;
}

bool bmeta_has_quotas(bmeta *m) { return atomic_load(&m->has_quotas); }

/* Publishes img (the reference passes to m). */
static void set_image(bmeta *m, md_image *img) {
    pthread_mutex_lock(&m->img_mu);
    md_image *old = m->img;
    m->img = img;
    atomic_store(&m->has_quotas, img != NULL && md_quota_set_count(md_image_quotas(img)) > 0);
    pthread_mutex_unlock(&m->img_mu);
    if (old)
        md_image_unref(old);
}

const char *bmeta_cluster_id(const bmeta *m) { return logmgr_cluster_id(m->lm); }
parts *bmeta_parts(bmeta *m) { return m->ps; }
logmgr *bmeta_logmgr(bmeta *m) { return m->lm; }

/* The first advertised listener for clients (the broker's registration). */
static const config_listener *advertised_client(const broker_config *cfg) {
    for (int i = 0; i < cfg->n_advertised; i++)
        if (!cfg->advertised[i].controller)
            return &cfg->advertised[i];
    return NULL;
}

static bool holds(const md_partition *mp, int32_t node) {
    for (int32_t i = 0; i < mp->replicas.n; i++)
        if (mp->replicas.ids[i] == node)
            return true;
    return false;
}

rpart *bmeta_partition(bmeta *m, const md_topic *t, int32_t index, int16_t *err) {
    const md_partition *mp = t ? md_topic_partition(t, index) : NULL;
    if (mp == NULL) {
        *err = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    rpart *p = parts_get(m->ps, t->id, index);
    if (p == NULL)
        *err = holds(mp, m->cfg->node_id) ? KAFKA_ERR_KAFKA_STORAGE_ERROR : KAFKA_ERR_NOT_LEADER_OR_FOLLOWER;
    else
        *err = 0;
    return p;
}

/* ---- config rules for the controller ----------------------------------------------------- */

/* The overrides the broker gives its internal topics, which nobody may
 * change: the coordinators depend on them. */
typedef struct pinned {
    const char *key;
    char value[32];
} pinned;

static int internal_pinned(const broker_config *bc, const char *topic, pinned *out) {
    if (strcmp(topic, "__consumer_offsets") != 0)
        return 0;
    out[0] = (pinned){"cleanup.policy", "compact"};
    out[1] = (pinned){"retention.ms", "-1"};
    out[2] = (pinned){"retention.bytes", "-1"};
    out[3] = (pinned){"segment.bytes", ""};
    snprintf(out[3].value, sizeof out[3].value, "%d", bc->offsets_topic_segment_bytes);
    out[4] = (pinned){"max.message.bytes", "67108864"};
    return 5;
}

static int op_check(void *ctx, const char *topic, const char *const *keys, const char *const *values, int n,
                    char *msg, size_t msgn) {
    bmeta *m = ctx;
    if (n > CTRL_TOPIC_CONFIGS_MAX) {
        snprintf(msg, msgn, "at most %d config overrides per topic", CTRL_TOPIC_CONFIGS_MAX);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    for (int i = 0; i < n; i++)
        if (keys[i] == NULL || values[i] == NULL) {
            snprintf(msg, msgn, "config '%s' has a null value", keys[i] ? keys[i] : "(null)");
            return KAFKA_ERR_INVALID_CONFIG;
        }
    pinned pin[8];
    int np = internal_pinned(m->cfg, topic, pin);
    for (int p = 0; p < np; p++) {
        int k = 0;
        while (k < n && strcmp(keys[k], pin[p].key) != 0)
            k++;
        if (k == n || strcmp(values[k], pin[p].value) != 0) {
            snprintf(msg, msgn,
                     "topic '%s' is internal: the broker relies on %s=%s, which cannot be changed or removed",
                     topic, pin[p].key, pin[p].value);
            return KAFKA_ERR_INVALID_CONFIG;
        }
    }
    topic_config tc;
    if (topic_config_build(&tc, m->cfg, keys, values, (size_t)n, msg, msgn) != 0)
        return KAFKA_ERR_INVALID_CONFIG;
    /* The rows share storage's limits, so this holds unless a setting
     * derived from several keys breaks one: refuse it here rather than let
     * the partition logs refuse to open. */
    plog_config pc;
    parts_plog_config(&tc, &pc);
    char why[160];
    if (plog_config_explain(&pc, why, sizeof why) != 0) {
        snprintf(msg, msgn, "the partition logs cannot use this configuration: %s", why);
        return KAFKA_ERR_INVALID_CONFIG;
    }
    return 0;
}

static int op_key_kind(void *ctx, const char *key) {
    (void)ctx;
    const config_def *d = config_find_topic(key);
    if (d == NULL)
        return -1;
    return d->type == CONFIG_LIST ? 1 : 0;
}

typedef struct find_value {
    const char *key;
    char *out;
    size_t outn;
    bool found;
} find_value;

static int find_visit(void *ctx, const config_entry *e) {
    find_value *f = ctx;
    if (strcmp(e->name, f->key) != 0)
        return 0;
    if (e->value != NULL) {
        snprintf(f->out, f->outn, "%s", e->value);
        f->found = true;
    }
    return 1;
}

static bool op_effective(void *ctx, const char *const *keys, const char *const *values, int n,
                         const char *key, char *out, size_t outn) {
    bmeta *m = ctx;
    find_value f = {key, out, outn, false};
    config_describe_topic(m->cfg, keys, values, (size_t)n, find_visit, &f);
    return f.found;
}

static int op_new_partitions(void *ctx, int64_t more, char *msg, size_t msgn) {
    bmeta *m = ctx;
    return logmgr_check_budget(m->lm, parts_count(m->ps), more, msg, msgn) == 0 ? 0
                                                                                : KAFKA_ERR_POLICY_VIOLATION;
}

/* ---- the controller's actions --------------------------------------------------------------- */

/* The controller's append: recs are applied to a delta of the current
 * image first, so a record md_apply refuses is never written (the log must
 * always replay); then written and fsynced; then the delta is published at
 * the offsets they got, the partitions follow it, and (a single node:
 * written is committed) the controller is told. mu held. */
static ctrl_append_result quorum_append(bmeta *m, const mdrec *recs, int n);

static ctrl_append_result sink_append(void *ctx, const mdrec *recs, int n) {
    bmeta *m = ctx;
    if (m->q != NULL)
        return quorum_append(m, recs, n);
    int64_t now = sl_env_wall_ms(&m->env);
    md_image *prev = bmeta_image(m);
    md_delta *d = md_delta_begin(prev);
    char err[ERR_MAX];
    for (int i = 0; d && i < n; i++)
        if (md_apply(d, &recs[i], err, sizeof err) != MD_OK) {
            LOG_ERROR(
                "metadata",
                "the controller proposed a %s record that does not apply (%s); the change is refused and "
                "nothing was written",
                mdrec_type_name(recs[i].type), err);
            md_delta_abort(d);
            d = NULL;
            n = -1;
        }
    if (d == NULL) {
        md_image_unref(prev);
        return (ctrl_append_result){KAFKA_ERR_UNKNOWN_SERVER_ERROR, -1};
    }
    int64_t first, last;
    int rc = STORAGE_KAFKA_STORAGE_ERROR;
    if (!mdlog_offline(m->log) || mdlog_reopen(m->log) == 0)
        rc = mdlog_append(m->log, recs, n, 0, now, &first, &last);
    if (rc != 0) {
        LOG_ERROR("metadata", "writing to the metadata log failed: %s; the change is refused",
                  storage_strerror(rc));
        md_delta_abort(d);
        md_image_unref(prev);
        return (ctrl_append_result){rc == STORAGE_RECORD_LIST_TOO_LARGE ? KAFKA_ERR_POLICY_VIOLATION
                                                                        : KAFKA_ERR_KAFKA_STORAGE_ERROR,
                                    -1};
    }
    md_image *next = md_delta_publish(d, last, 0);
    if (next == NULL) {
        /* Written but not published: the next start replays it. */
        LOG_ERROR("metadata", "out of memory publishing metadata offset %" PRId64 "; restart the broker",
                  last);
        md_image_unref(prev);
        return (ctrl_append_result){KAFKA_ERR_UNKNOWN_SERVER_ERROR, -1};
    }
    parts_apply(m->ps, prev, next, now, false);
    set_image(m, md_image_ref(next));
    md_image_unref(prev);
    /* Single node: written and fsynced is committed. */
    ctrl_commit(m->ctrl, next, sl_env_mono_ms(&m->env));
    md_image_unref(next);
    return (ctrl_append_result){0, last};
}

typedef struct waiter {
    ctrl_item_result *out;
    int32_t n;
    bool done;
} waiter;

static void sink_reply(void *ctx, void *token, const ctrl_result *res) {
    bmeta *m = ctx;
    waiter *w = token;
    pthread_cond_broadcast(&m->done_cv);
    assert(!w->done);
    w->done = true;
    for (int32_t i = 0; i < w->n; i++) {
        if (res->items != NULL && i < res->n) {
            w->out[i] = res->items[i];
        } else {
            memset(&w->out[i], 0, sizeof w->out[i]);
            w->out[i].error = KAFKA_ERR_UNKNOWN_SERVER_ERROR;
            snprintf(w->out[i].message, sizeof w->out[i].message, "out of memory");
        }
    }
}

/* Runs one controller call and returns once it answered (a single node
 * answers inside the call). */
#define RUN(m, w, call)                 \
    do {                                \
        pthread_mutex_lock(&(m)->mu);   \
        call;                           \
        pthread_mutex_unlock(&(m)->mu); \
    } while (0)

/* A quorum member: the answer comes when the records commit, from the
 * thread that learns it; the controller answers every request (at the
 * latest with REQUEST_TIMED_OUT from its tick, or NOT_CONTROLLER when it
 * stops), so the wait ends. A node that is not the active controller
 * answers NOT_CONTROLLER at once (the request path forwards clients'
 * requests to the active one). */
#define RUNQ(m, w, call)                                    \
    do {                                                    \
        pthread_mutex_lock(&(m)->mu);                       \
        if ((m)->q != NULL && !(m)->active) {               \
            not_controller(m, w);                           \
        } else {                                            \
            call;                                           \
            while ((m)->q != NULL && !(w)->done)            \
                pthread_cond_wait(&(m)->done_cv, &(m)->mu); \
        }                                                   \
        pthread_mutex_unlock(&(m)->mu);                     \
    } while (0)

static void not_controller(bmeta *m, waiter *w) {
    raft_state st;
    bquorum_state(m->q, &st);
    for (int32_t i = 0; i < w->n; i++) {
        memset(&w->out[i], 0, sizeof w->out[i]);
        w->out[i].error = KAFKA_ERR_NOT_CONTROLLER;
        snprintf(w->out[i].message, sizeof w->out[i].message,
                 st.leader_id >= 0 ? "node %d is not the active controller (node %d is)"
                                   : "node %d is not the active controller (none is elected yet)",
                 m->cfg->node_id, st.leader_id);
    }
    w->done = true;
}

static int finish(waiter *w) {
    if (w->done)
        return 0;
    /* A single node answers inside the call; anything else is a bug. */
    LOG_ERROR("metadata", "the controller did not answer a request; it is answered REQUEST_TIMED_OUT");
    for (int32_t i = 0; i < w->n; i++) {
        memset(&w->out[i], 0, sizeof w->out[i]);
        w->out[i].error = KAFKA_ERR_REQUEST_TIMED_OUT;
    }
    return 0;
}

static int forward_create_topics(bmeta *m, const ctrl_new_topic *t, int32_t n, bool validate_only,
                                 ctrl_item_result *out);

int bmeta_create_topics(bmeta *m, const ctrl_new_topic *t, int32_t n, bool validate_only,
                        ctrl_item_result *out) {
    if (m->q != NULL && !bmeta_is_active_controller(m))
        return forward_create_topics(m, t, n, validate_only, out);
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_create_topics(m->ctrl, t, n, validate_only, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_delete_topics(bmeta *m, const ctrl_topic_ref *t, int32_t n, ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_delete_topics(m->ctrl, t, n, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_create_partitions(bmeta *m, const ctrl_new_partitions *t, int32_t n, bool validate_only,
                            ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_create_partitions(m->ctrl, t, n, validate_only, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_alter_configs(bmeta *m, const ctrl_resource *r, int32_t n, bool incremental, bool validate_only,
                        ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_alter_configs(m->ctrl, r, n, incremental, validate_only, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int16_t bmeta_allocate_producer_ids(bmeta *m, int32_t broker_id, int64_t broker_epoch, int64_t *start) {
    ctrl_item_result out;
    waiter w = {&out, 1, false};
    RUNQ(m, &w, ctrl_allocate_producer_ids(m->ctrl, broker_id, broker_epoch, &w, sl_env_mono_ms(&m->env)));
    finish(&w);
    *start = out.producer_id_start;
    return out.error;
}

/* ---- a quorum member (mu held in all of these) ------------------------------------------ */

/* The active controller's append: checked against its view (img plus its
 * uncommitted proposals), then proposed to the quorum; the commit comes
 * later through quorum_committed. */
static ctrl_append_result quorum_append(bmeta *m, const mdrec *recs, int n) {
    md_image *base = m->proposed ? md_image_ref(m->proposed) : bmeta_image(m);
    md_delta *d = md_delta_begin(base);
    char err[ERR_MAX];
    for (int i = 0; d && i < n; i++)
        if (md_apply(d, &recs[i], err, sizeof err) != MD_OK) {
            LOG_ERROR("metadata",
                      "the controller proposed a %s record that does not apply (%s); the change is refused",
                      mdrec_type_name(recs[i].type), err);
            md_delta_abort(d);
            d = NULL;
        }
    if (d == NULL) {
        md_image_unref(base);
        return (ctrl_append_result){KAFKA_ERR_UNKNOWN_SERVER_ERROR, -1};
    }
    int64_t last = -1;
    int16_t e = bquorum_propose(m->q, recs, n, sl_env_wall_ms(&m->env), &last);
    if (e != 0) {
        md_delta_abort(d);
        md_image_unref(base);
        return (ctrl_append_result){e, -1};
    }
    md_image *next = md_delta_publish(d, last, m->leader_epoch);
    md_image_unref(base);
    if (m->proposed)
        md_image_unref(m->proposed);
    m->proposed = next; /* NULL on OOM: the next proposal checks against img */
    bquorum_kick(m->q);
    return (ctrl_append_result){0, last};
}

static void self_registered(bmeta *m);

/* The controller's configuration from the broker's (a single node's own
 * controller and a quorum's active one alike). */
static void controller_config(bmeta *m, ctrl_config *cc) {
    ctrl_config_default(cc);
    cc->node_id = m->cfg->node_id;
    cc->default_partitions = m->cfg->num_partitions;
    cc->default_replication_factor = (int16_t)m->cfg->default_replication_factor;
    cc->delete_topic_enable = m->cfg->delete_topic_enable;
    cc->seed = sl_env_random_u64(&m->env);
    cc->broker_session_timeout_ms = m->cfg->broker_session_timeout_ms;
    cc->bootstrap_features = true;
    cc->auto_leader_rebalance = m->cfg->auto_leader_rebalance_enable;
    cc->leader_imbalance_check_ms = m->cfg->leader_imbalance_check_interval_ms;
    cc->leader_imbalance_pct = m->cfg->leader_imbalance_per_broker_percentage;
    cc->configs = (ctrl_config_ops){m, op_check, op_key_kind, op_effective, op_new_partitions};
}

static void activate(bmeta *m) {
    /* A fresh controller over the committed image: what an earlier one had
     * in flight was answered NOT_CONTROLLER when it stopped. */
    if (m->ctrl)
        ctrl_destroy(m->ctrl, KAFKA_ERR_NOT_CONTROLLER);
    m->ctrl = NULL;
    ctrl_config cc;
    controller_config(m, &cc);
    ctrl_sink sink = {m, sink_append, sink_reply};
    md_image *img = bmeta_image(m);
    m->ctrl = ctrl_create(&cc, &sink, img);
    md_image_unref(img);
    if (m->ctrl == NULL) {
        LOG_ERROR("metadata", "out of memory starting the controller; this node stays inactive");
        return;
    }
    m->active = true;
    LOG_INFO("metadata", "node %d is the active controller (epoch %d)", m->cfg->node_id, m->leader_epoch);
    self_registered(m);
}

static void deactivate(bmeta *m) {
    if (!m->active)
        return;
    m->active = false;
    if (m->proposed)
        md_image_unref(m->proposed);
    m->proposed = NULL;
    if (m->ctrl)
        ctrl_destroy(m->ctrl, KAFKA_ERR_NOT_CONTROLLER);
    m->ctrl = NULL;
    pthread_cond_broadcast(&m->done_cv);
    LOG_INFO("metadata", "node %d is no longer the active controller", m->cfg->node_id);
}

static int commit_apply(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err,
                        size_t errn) {
    (void)from_snapshot;
    md_delta *d = ctx;
    if (md_apply(d, rec, err, errn) != MD_OK) {
        size_t l = strlen(err);
        snprintf(err + l, errn - l, " (%s record at offset %" PRId64 ")", mdrec_type_name(rec->type), offset);
        return -1;
    }
    return 0;
}

static void quorum_committed(void *ctx, int64_t hw) {
    bmeta *m = ctx;
    if (hw <= m->applied)
        return;
    md_image *prev = bmeta_image(m);
    md_delta *d = md_delta_begin(prev);
    char err[ERR_MAX] = "";
    if (d == NULL || mdlog_replay(m->log, m->applied, hw, commit_apply, d, err, sizeof err) != 0) {
        if (d)
            md_delta_abort(d);
        md_image_unref(prev);
        LOG_ERROR("metadata",
                  "a committed metadata record cannot be applied: %s; this node stops rather than serve a "
                  "different view than the rest of the cluster",
                  d ? err : "out of memory");
        broker_stop_fatally();
        return;
    }
    md_image *next = md_delta_publish(d, hw - 1, m->leader_epoch);
    if (next == NULL) {
        md_image_unref(prev);
        LOG_ERROR("metadata", "out of memory publishing metadata offset %" PRId64 "; restart the broker",
                  hw - 1);
        return;
    }
    m->applied = hw;
    parts_apply(m->ps, prev, next, sl_env_wall_ms(&m->env), false);
    set_image(m, md_image_ref(next));
    md_image_unref(prev);
    if (m->proposed && md_image_offset(m->proposed) <= hw - 1) {
        md_image_unref(m->proposed);
        m->proposed = NULL;
    }
    if (m->role == RAFT_LEADER && !m->active && !m->stopping) {
        raft_state st;
        bquorum_state(m->q, &st);
        if (hw > st.epoch_start_offset)
            activate(m);
    } else if (m->active) {
        ctrl_commit(m->ctrl, next, sl_env_mono_ms(&m->env));
    }
    md_image_unref(next);
}

static int snap_apply(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err,
                      size_t errn) {
    (void)from_snapshot;
    return commit_apply(ctx, rec, offset, false, err, errn);
}

/* A snapshot fetched from the leader replaces the log and the image. */
static int quorum_install(void *ctx, const char *tmp_path, int64_t end, int32_t epoch) {
    bmeta *m = ctx;
    char err[ERR_MAX] = "";
    if (mdlog_install_snapshot(m->log, tmp_path, end, epoch, err, sizeof err) != 0) {
        LOG_ERROR("metadata", "%s", err);
        return -1;
    }
    char path[4300];
    mdlog_snapshot_file(m->log, end, epoch, path, sizeof path);
    md_image *empty = md_image_empty();
    md_delta *d = md_delta_begin(empty);
    md_image_unref(empty);
    int64_t records = 0;
    if (d == NULL || mdlog_read_snapshot(m->sc, path, snap_apply, d, &records, err, sizeof err) != 0) {
        if (d)
            md_delta_abort(d);
        LOG_ERROR(
            "metadata",
            "the installed snapshot %s does not apply (%s); this node stops rather than serve another view",
            path, d ? err : "out of memory");
        broker_stop_fatally();
        return -1;
    }
    md_image *next = md_delta_publish(d, end - 1, epoch);
    if (next == NULL)
        return -1;
    md_image *prev = bmeta_image(m);
    m->applied = end;
    parts_apply(m->ps, prev, next, sl_env_wall_ms(&m->env), false);
    set_image(m, next);
    md_image_unref(prev);
    LOG_INFO("metadata", "installed the leader's snapshot at offset %" PRId64 ": %" PRId64 " records", end,
             records);
    return 0;
}

static void quorum_role(void *ctx, raft_role role, int32_t epoch, int32_t leader_id) {
    bmeta *m = ctx;
    (void)leader_id;
    m->role = role;
    m->leader_epoch = epoch;
    if (role != RAFT_LEADER)
        deactivate(m);
}

/* The active controller registers itself (a new broker epoch per start
 * and per election, as a KRaft broker re-registers); other nodes register
 * through it (bmeta_tick). */
static void self_registered(bmeta *m) {
    if (!(m->cfg->process_roles & CONFIG_ROLE_BROKER))
        return; /* a controller-only node is not a broker */
    /* Registered already by this process and not fenced (an active
     * controller does not heartbeat itself: one fenced while another led
     * registers again, which unfences it). */
    md_image *img = bmeta_image(m);
    const md_broker *b = md_image_broker(img, m->cfg->node_id);
    bool have = b != NULL && !b->fenced && memcmp(b->incarnation.b, m->incarnation.b, 16) == 0;
    md_image_unref(img);
    if (have)
        return;
    const config_listener *l = advertised_client(m->cfg);
    kuuid inc = m->incarnation;
    ctrl_broker_reg reg = {m->cfg->node_id,
                           inc,
                           l && l->name[0] ? l->name : "PLAINTEXT",
                           l ? l->host : "",
                           l ? (uint16_t)l->port : 0,
                           m->cfg->broker_rack};
    static waiter
        w; /* answered on commit, after this call returns (one bmeta per process is a quorum member) */
    w = (waiter){&m->self_reg_res, 1, false};
    ctrl_register_broker(m->ctrl, &reg, &w, sl_env_mono_ms(&m->env));
}

/* ---- start-up ------------------------------------------------------------------------------ */

static void remember_removed(bmeta *m, kuuid id) {
    if (m->n_removed == m->cap_removed) {
        int32_t ncap = m->cap_removed ? m->cap_removed * 2 : 64;
        kuuid *nv = realloc(m->removed, (size_t)ncap * sizeof *nv);
        if (nv == NULL)
            return; /* its directories are set aside instead: safe */
        m->removed = nv;
        m->cap_removed = ncap;
    }
    m->removed[m->n_removed++] = id;
}

static bool was_removed(const bmeta *m, kuuid id) {
    for (int32_t i = 0; i < m->n_removed; i++)
        if (memcmp(m->removed[i].b, id.b, 16) == 0)
            return true;
    return false;
}

typedef struct replay {
    bmeta *m;
    md_delta *d;
} replay;

static int replay_apply(void *ctx, const mdrec *rec, int64_t offset, bool from_snapshot, char *err,
                        size_t errn) {
    replay *r = ctx;
    if (rec->type == KAFKA_MREC_REMOVE_TOPIC)
        remember_removed(r->m, ((const kafka_remove_topic_record *)rec->body)->topic_id);
    int rc = md_apply(r->d, rec, err, errn);
    if (rc != MD_OK) {
        size_t l = strlen(err);
        snprintf(err + l, errn - l, " (%s record at offset %" PRId64 "%s)", mdrec_type_name(rec->type),
                 offset, from_snapshot ? ", in a snapshot" : "");
        return -1;
    }
    return 0;
}

static int migrate_apply(void *ctx, const mdrec *rec, char *err, size_t errn) {
    replay *r = ctx;
    return md_apply(r->d, rec, err, errn) == MD_OK ? 0 : -1;
}

static void mdlog_cfg(const bmeta *m, mdlog_config *mc) {
    mdlog_config_default(mc);
    mc->segment_bytes = m->cfg->metadata_segment_bytes;
    mc->snapshot_bytes = m->cfg->metadata_snapshot_bytes;
    mc->snapshot_interval_ms = m->cfg->metadata_snapshot_interval_ms;
    if (m->cfg->controller_quorum_voters.n > 0) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", logmgr_root(m->lm, 0), MDLOG_DIR_NAME);
        mc->replay_below = bquorum_recorded_commit(dir);
    }
}

static bool dir_exists(const sl_vfs *v, const char *path) {
    sl_stat st;
    return v->stat(v->ctx, path, &st) == 0 && st.is_dir;
}

/* An old `__sluice_metadata-0` beside no new log: its state becomes the
 * first snapshot of a new log, written under a temporary name and renamed
 * into place, then the old directory is renamed away (never deleted). */
static int migrate(bmeta *m, const char *root) {
    const sl_vfs *v = storage_vfs(m->sc);
    char old_dir[4200], new_dir[4200], tmp_dir[4200], done_dir[4300];
    snprintf(old_dir, sizeof old_dir, "%s/%s", root, MD_MIGRATE_OLD_DIR);
    snprintf(new_dir, sizeof new_dir, "%s/%s", root, MDLOG_DIR_NAME);
    snprintf(tmp_dir, sizeof tmp_dir, "%s/%s", root, MIGRATING_NAME);
    snprintf(done_dir, sizeof done_dir, "%s%s", old_dir, MIGRATED_SUFFIX);
    if (!dir_exists(v, old_dir))
        return 0;
    if (dir_exists(v, new_dir)) {
        LOG_WARN("metadata", "%s is left alone: %s exists, which replaced it", old_dir, MDLOG_DIR_NAME);
        return 0;
    }
    if (dir_exists(v, tmp_dir) && logmgr_remove_flat_dir(v, tmp_dir) != 0) {
        LOG_ERROR("metadata", "cannot remove %s, left by an interrupted migration", tmp_dir);
        return -1;
    }
    char err[ERR_MAX];
    md_image *empty = md_image_empty();
    replay r = {m, md_delta_begin(empty)};
    md_migrate_result res;
    memset(&res, 0, sizeof res);
    if (r.d == NULL || md_migrate_read(m->sc, old_dir, logmgr_root_was_clean(m->lm, 0), m->cfg->node_id,
                                       migrate_apply, &r, &res, err, sizeof err) != 0) {
        LOG_ERROR("metadata", "the metadata log cannot be trusted: %s", r.d ? err : "out of memory");
        LOG_ERROR("metadata",
                  "the broker stops rather than treat topics as missing; restore %s from a backup or see "
                  "docs/operations.md (\"A damaged metadata log\")",
                  old_dir);
        if (r.d)
            md_delta_abort(r.d);
        md_image_unref(empty);
        return -1;
    }
    /* One record in the log (the metadata version), so the snapshot can
     * stand at offset 0 holding the migrated state. */
    kafka_feature_level_record fl;
    kafka_feature_level_record_init(&fl);
    fl.name = kstr_c("metadata.version");
    fl.feature_level = 1;
    mdrec frec = {KAFKA_MREC_FEATURE_LEVEL, mdrec_write_version(KAFKA_MREC_FEATURE_LEVEL),
                  kafka_metadata_record_lookup(KAFKA_MREC_FEATURE_LEVEL), &fl};
    int rc = md_apply(r.d, &frec, err, sizeof err) == MD_OK ? 0 : -1;
    md_image *img = rc == 0 ? md_delta_publish(r.d, 0, 0) : NULL;
    if (rc != 0)
        md_delta_abort(r.d);
    md_image_unref(empty);
    mdlog *nl = NULL;
    mdlog_config mc;
    mdlog_cfg(m, &mc);
    mdlog_open_info info;
    replay none = {m, NULL};
    (void)none;
    if (img == NULL)
        rc = -1;
    if (rc == 0 && v->mkdir(v->ctx, tmp_dir, 0755) != 0)
        rc = -1;
    md_image *scratch = md_image_empty();
    replay rr = {m, md_delta_begin(scratch)};
    if (rc == 0 && mdlog_open(m->sc, tmp_dir, true, &mc, replay_apply, &rr, &nl, &info, err, sizeof err) != 0)
        rc = -1;
    if (rr.d)
        md_delta_abort(rr.d);
    md_image_unref(scratch);
    int64_t first, last;
    if (rc == 0 && mdlog_append(nl, &frec, 1, 0, sl_env_wall_ms(&m->env), &first, &last) != 0)
        rc = -1;
    if (rc == 0 && mdlog_snapshot(nl, img, 0, sl_env_wall_ms(&m->env), err, sizeof err) != 0)
        rc = -1;
    if (nl && mdlog_close(nl) != 0)
        rc = -1;
    if (rc == 0 && (v->rename(v->ctx, tmp_dir, new_dir) != 0 || v->rename(v->ctx, old_dir, done_dir) != 0))
        rc = -1;
    if (rc == 0)
        v->fsync_dir(v->ctx, root);
    if (rc != 0) {
        LOG_ERROR("metadata", "migrating %s to %s failed%s%s; nothing was changed in it", old_dir,
                  MDLOG_DIR_NAME, err[0] ? ": " : "", err[0] ? err : "");
        if (img)
            md_image_unref(img);
        md_migrate_result_free(&res);
        return -1;
    }
    LOG_INFO("metadata",
             "migrated the metadata log of an earlier version (%" PRId64
             " records: %d topics, %d partitions) "
             "into %s; the old log is kept as %s",
             res.old_records, res.topics, res.partitions, MDLOG_DIR_NAME, done_dir);
    for (int32_t i = 0; i < res.n_deleted; i++)
        remember_removed(m, res.deleted[i]);
    m->intents = res.intents;
    m->n_intents = res.n_intents;
    res.intents = NULL;
    res.n_intents = 0;
    md_migrate_result_free(&res);
    md_image_unref(img);
    return 0;
}

static bool explains(const bmeta *m, const md_image *img, kstr name, int32_t index, bool owner_known,
                     kuuid owner) {
    const md_topic *t = img ? md_image_topic(img, name) : NULL;
    return t != NULL && index >= 0 && index < t->n_partitions &&
           (!owner_known || memcmp(owner.b, t->id.b, 16) == 0) &&
           holds(md_topic_partition(t, index), m->cfg->node_id);
}

static lm_verdict judge(void *ctx, kstr name, int32_t index, bool owner_known, kuuid owner) {
    bmeta *m = ctx;
    if (explains(m, m->img, name, index, owner_known, owner) ||
        explains(m, m->tail, name, index, owner_known, owner))
        return LM_KEEP;
    if (owner_known && was_removed(m, owner))
        return LM_REMOVE;
    /* An unfinished creation of the old log: only partitions the image does
     * not have (a live topic's own partitions are never removed). */
    const md_topic *live = owner_known ? md_image_topic_by_id(m->img, owner) : NULL;
    for (int32_t i = 0; owner_known && i < m->n_intents; i++)
        if (memcmp(m->intents[i].id.b, owner.b, 16) == 0 && index >= m->intents[i].from &&
            index < m->intents[i].to && index >= (live ? live->n_partitions : 0))
            return LM_REMOVE;
    return LM_ASIDE;
}

static bool skip_dir(const char *name) {
    size_t n = strlen(name), k = sizeof MIGRATED_SUFFIX - 1;
    return strcmp(name, MDLOG_DIR_NAME) == 0 || strcmp(name, MD_MIGRATE_OLD_DIR) == 0 ||
           strcmp(name, MIGRATING_NAME) == 0 || (n > k && strcmp(name + n - k, MIGRATED_SUFFIX) == 0);
}

static void env_random(void *ctx, void *buf, size_t n) { sl_env_random(ctx, buf, n); }

static void parts_changed(void *ctx, rpart *p) {
    bmeta *m = ctx;
    if (m->hooks.changed)
        m->hooks.changed(m->hooks.ctx, p);
}

static int open_log(bmeta *m, const char *root) {
    char dir[4200], err[ERR_MAX] = "";
    snprintf(dir, sizeof dir, "%s/%s", root, MDLOG_DIR_NAME);
    md_image *empty = md_image_empty();
    replay r = {m, md_delta_begin(empty)};
    md_image_unref(empty);
    if (r.d == NULL)
        return -1;
    mdlog_config mc;
    mdlog_cfg(m, &mc);
    mdlog_open_info info;
    if (mdlog_open(m->sc, dir, logmgr_root_was_clean(m->lm, 0), &mc, replay_apply, &r, &m->log, &info, err,
                   sizeof err) != 0) {
        md_delta_abort(r.d);
        LOG_ERROR("metadata", "the metadata log cannot be trusted: %s", err);
        LOG_ERROR("metadata",
                  "the broker stops rather than treat topics as missing; restore %s from a backup or see "
                  "docs/operations.md (\"A damaged metadata log\")",
                  dir);
        return -1;
    }
    if (info.torn_tail)
        LOG_WARN("metadata",
                 "the metadata log ends in a torn write at offset %" PRId64 " (never acknowledged); "
                 "it is cut",
                 info.end_offset);
    int64_t applied = info.end_offset < mc.replay_below ? info.end_offset : mc.replay_below;
    if (applied < info.snapshot_end)
        applied = info.snapshot_end;
    md_image *img = md_delta_publish(r.d, applied - 1, info.last_epoch < 0 ? 0 : info.last_epoch);
    if (img == NULL)
        return -1;
    set_image(m, img);
    m->applied = applied;
    if (applied < info.end_offset) {
        /* A quorum member applies the rest once it is known to be committed;
         * until then its directories are explained by it too (judge). */
        md_delta *td = md_delta_begin(img);
        char terr[ERR_MAX] = "";
        if (td && mdlog_replay(m->log, applied, info.end_offset, commit_apply, td, terr, sizeof terr) == 0)
            m->tail = md_delta_publish(td, info.end_offset - 1, 0);
        else if (td)
            md_delta_abort(td);
        LOG_INFO("metadata",
                 "%" PRId64 " records of the metadata log (from offset %" PRId64
                 ") are applied once the quorum says they are committed",
                 info.end_offset - applied, applied);
    }
    LOG_INFO("metadata",
             "replayed %" PRId64 " metadata records (%" PRId64 " from the snapshot at offset %" PRId64
             ", %" PRId64 " from the log): %d topics, %" PRId64 " partitions",
             info.snapshot_records + info.log_records, info.snapshot_records, info.snapshot_end,
             info.log_records, md_image_topic_count(img), md_image_partition_count(img));
    if (info.snapshot_records + info.log_records == 0 && m->applied >= info.end_offset) {
        /* A metadata log that is missing or empty while partitions exist was
         * lost (or log.dirs changed): reading it as "no topics" would set
         * every directory aside. */
        char example[4400] = "";
        int n = logmgr_count_partition_dirs(m->lm, example, sizeof example, skip_dir);
        if (n > 0) {
            LOG_ERROR("metadata",
                      "the metadata log %s is missing or empty, but %d partition directories exist (such as "
                      "%s); the broker will not start without the record of which topics they belong to. "
                      "Restore the metadata log, or move the directories away to start afresh "
                      "(docs/operations.md)",
                      dir, n, example);
            return -1;
        }
    }
    return 0;
}

/* Registers this node (a new broker epoch per start, as KRaft does). */
static int register_self(bmeta *m) {
    const config_listener *l = NULL;
    for (int i = 0; i < m->cfg->n_listeners && l == NULL; i++)
        if (!m->cfg->listeners[i].controller)
            l = &m->cfg->listeners[i];
    kuuid inc;
    sl_env_random(&m->env, inc.b, sizeof inc.b);
    ctrl_broker_reg reg = {
        m->cfg->node_id,           inc, l && l->name[0] ? l->name : "PLAINTEXT", l ? l->host : "",
        l ? (uint16_t)l->port : 0, NULL};
    ctrl_item_result res;
    waiter w = {&res, 1, false};
    RUN(m, &w, ctrl_register_broker(m->ctrl, &reg, &w, sl_env_mono_ms(&m->env)));
    if (finish(&w) != 0 || res.error != 0) {
        LOG_ERROR("metadata", "cannot register node %d in the metadata log: %s", m->cfg->node_id,
                  res.message);
        return -1;
    }
    return 0;
}

/* ---- registration and forwarding (a quorum member) ----------------------------------------- */

int bmeta_elect_leaders(bmeta *m, int8_t type, const ctrl_partition_ref *parts, int32_t n,
                        ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_elect_leaders(m->ctrl, type, parts, n, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_alter_partition(bmeta *m, int32_t broker_id, int64_t broker_epoch, const ctrl_isr_change *ch,
                          int32_t n, ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_alter_partition(m->ctrl, broker_id, broker_epoch, ch, n, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_update_features(bmeta *m, const ctrl_feature_update *u, int32_t n, bool validate_only,
                          ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_update_features(m->ctrl, u, n, validate_only, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_unregister_broker(bmeta *m, int32_t id, ctrl_item_result *out) {
    waiter w = {out, 1, false};
    RUNQ(m, &w, ctrl_unregister_broker(m->ctrl, id, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_register_broker(bmeta *m, const ctrl_broker_reg *reg, ctrl_item_result *out) {
    waiter w = {out, 1, false};
    RUNQ(m, &w, ctrl_register_broker(m->ctrl, reg, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

bool bmeta_controller_address(bmeta *m, int32_t *id, char *host, size_t hostn, uint16_t *port) {
    if (m->q == NULL)
        return false;
    pthread_mutex_lock(&m->mu);
    raft_state st;
    bquorum_state(m->q, &st);
    bool self = m->active;
    pthread_mutex_unlock(&m->mu);
    const bquorum_voter *v = st.leader_id >= 0 ? bquorum_voter_of(m->q, st.leader_id) : NULL;
    if (v == NULL || self || st.leader_id == m->cfg->node_id)
        return false;
    *id = v->id;
    snprintf(host, hostn, "%s", v->host);
    *port = v->port;
    return true;
}

bool bmeta_is_quorum_member(const bmeta *m) { return m->q != NULL; }

bool bmeta_broker_address(bmeta *m, int32_t id, char *host, size_t hostn, uint16_t *port,
                          int64_t *self_epoch) {
    md_image *img = bmeta_image(m);
    const md_broker *mb = md_image_broker(img, id);
    const md_broker *me = md_image_broker(img, m->cfg->node_id);
    bool ok = mb != NULL && mb->n_endpoints > 0 && !mb->fenced;
    if (ok) {
        snprintf(host, hostn, "%s", mb->endpoints[0].host);
        *port = (uint16_t)mb->endpoints[0].port;
    }
    *self_epoch = me ? me->epoch : -1;
    md_image_unref(img);
    return ok;
}
bool bmeta_is_active_controller(bmeta *m) {
    pthread_mutex_lock(&m->mu);
    bool a = m->q == NULL || m->active;
    pthread_mutex_unlock(&m->mu);
    return a;
}
bquorum *bmeta_quorum(bmeta *m) { return m->q; }

int16_t bmeta_broker_heartbeat(bmeta *m, int32_t id, int64_t epoch, bool want_shut_down, bool *fenced,
                               bool *shut_down) {
    pthread_mutex_lock(&m->mu);
    int16_t e = KAFKA_ERR_NOT_CONTROLLER;
    *fenced = true;
    *shut_down = false;
    if (m->q != NULL && m->active && m->ctrl != NULL)
        e = ctrl_broker_heartbeat(m->ctrl, id, epoch, want_shut_down, sl_env_mono_ms(&m->env), fenced,
                                  shut_down);
    pthread_mutex_unlock(&m->mu);
    return e;
}

/* BrokerHeartbeat to the active controller every broker.heartbeat.interval.ms. */
static void heartbeat(bmeta *m, int64_t epoch, int32_t id, const char *host, uint16_t port) {
    static int64_t last;
    static int32_t corr;
    int64_t now = sl_env_mono_ms(&m->env);
    if (now - last < m->cfg->broker_heartbeat_interval_ms)
        return;
    last = now;
    kafka_broker_heartbeat_request req;
    kafka_broker_heartbeat_request_init(&req);
    req.broker_id = m->cfg->node_id;
    req.broker_epoch = epoch;
    pthread_mutex_lock(&m->mu);
    req.current_metadata_offset = m->applied - 1;
    pthread_mutex_unlock(&m->mu);
    req.offline_log_dirs_count = 0;
    net_client c;
    net_client_init(&c, host, port);
    c.cancel = &m->cancel;
    arena a;
    arena_init(&a, 16 << 10);
    void *resp = NULL;
    int rc = brpc_call(&c, KAFKA_API_BROKER_HEARTBEAT, 0, ++corr, "sluice-broker", &req, &a, &resp,
                       m->cfg->quorum_request_timeout_ms);
    static int16_t last_err;
    if (rc == 0) {
        const kafka_broker_heartbeat_response *r = resp;
        if (r->error_code != last_err && r->error_code != 0)
            LOG_INFO("metadata", "heartbeat to the active controller (node %d) answered %s", id,
                     kafka_error_name(r->error_code));
        last_err = r->error_code;
    }
    net_client_free(&c);
    arena_reset(&a);
}

/* One BrokerHeartbeat asking to shut down; true once the controller says
 * this broker is fenced. */
static bool ask_shut_down(bmeta *m, int64_t epoch, const char *host, uint16_t port) {
    kafka_broker_heartbeat_request req;
    kafka_broker_heartbeat_request_init(&req);
    req.broker_id = m->cfg->node_id;
    req.broker_epoch = epoch;
    req.want_shut_down = true;
    req.want_fence = true;
    pthread_mutex_lock(&m->mu);
    req.current_metadata_offset = m->applied - 1;
    pthread_mutex_unlock(&m->mu);
    req.offline_log_dirs_count = 0;
    net_client c;
    net_client_init(&c, host, port);
    c.cancel = &m->cancel;
    arena a;
    arena_init(&a, 16 << 10);
    void *resp = NULL;
    bool done = brpc_call(&c, KAFKA_API_BROKER_HEARTBEAT, 0, 1, "sluice-broker", &req, &a, &resp,
                          m->cfg->quorum_request_timeout_ms) == 0 &&
                ((const kafka_broker_heartbeat_response *)resp)->should_shut_down;
    net_client_free(&c);
    arena_reset(&a);
    return done;
}

void bmeta_controlled_shutdown(bmeta *m) {
    if (m->q == NULL || !(m->cfg->process_roles & CONFIG_ROLE_BROKER))
        return;
    int64_t start = sl_env_mono_ms(&m->env), deadline = start + 5000;
    bool done = false;
    while (!done && sl_env_mono_ms(&m->env) < deadline) {
        md_image *img = bmeta_image(m);
        const md_broker *b = md_image_broker(img, m->cfg->node_id);
        int64_t epoch = b ? b->epoch : -1;
        bool fenced = b == NULL || b->fenced;
        md_image_unref(img);
        if (fenced) {
            done = true;
            break;
        }
        int32_t id;
        char host[256];
        uint16_t port;
        if (bmeta_controller_address(m, &id, host, sizeof host, &port)) {
            done = ask_shut_down(m, epoch, host, port);
        } else {
            bool f, s;
            pthread_mutex_lock(&m->mu);
            bool active = m->active && m->ctrl != NULL;
            if (active)
                ctrl_broker_heartbeat(m->ctrl, m->cfg->node_id, epoch, true, sl_env_mono_ms(&m->env), &f, &s);
            pthread_mutex_unlock(&m->mu);
            if (!active)
                break; /* no controller to ask */
        }
        if (!done)
            usleep(50000);
    }
    if (done)
        LOG_INFO("metadata", "controlled shutdown: fenced by the active controller after %lld ms",
                 (long long)(sl_env_mono_ms(&m->env) - start));
    else
        LOG_INFO("metadata",
                 "controlled shutdown: no active controller fenced this broker in time; it is fenced "
                 "when its session (broker.session.timeout.ms) expires");
}

void bmeta_quiesce(bmeta *m) {
    if (m->q == NULL)
        return;
    atomic_store(&m->cancel, true);
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    deactivate(m);
    pthread_mutex_unlock(&m->mu);
    bquorum_quiesce(m->q);
}

/* Topics this broker creates itself (auto-creation, __consumer_offsets)
 * while another node is the active controller: CreateTopics to its
 * controller listener. */
static int forward_create_topics(bmeta *m, const ctrl_new_topic *t, int32_t n, bool validate_only,
                                 ctrl_item_result *out) {
    for (int32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].error = KAFKA_ERR_NOT_CONTROLLER;
        snprintf(out[i].message, sizeof out[i].message, "no active controller could be reached");
    }
    int32_t id;
    char host[256];
    uint16_t port;
    if (!bmeta_controller_address(m, &id, host, sizeof host, &port))
        return 0;
    arena a;
    arena_init(&a, 1 << 20);
    kafka_create_topics_request req;
    kafka_create_topics_request_init(&req);
    kafka_create_topics_request_creatable_topic *ts = arena_calloc(&a, (size_t)(n > 0 ? n : 1), sizeof *ts);
    if (ts == NULL) {
        arena_reset(&a);
        return 0;
    }
    for (int32_t i = 0; i < n; i++) {
        kafka_create_topics_request_creatable_topic_init(&ts[i]);
        ts[i].name = t[i].name;
        ts[i].num_partitions = t[i].partitions;
        ts[i].replication_factor = t[i].replication_factor;
        ts[i].assignments_count = 0;
        kafka_create_topics_request_creatable_topic_config *cs =
            t[i].n_configs > 0 ? arena_calloc(&a, (size_t)t[i].n_configs, sizeof *cs) : NULL;
        for (int32_t k = 0; cs && k < t[i].n_configs; k++) {
            kafka_create_topics_request_creatable_topic_config_init(&cs[k]);
            cs[k].name = t[i].configs[k].key;
            cs[k].value = t[i].configs[k].value;
        }
        ts[i].configs = cs;
        ts[i].configs_count = cs ? t[i].n_configs : 0;
    }
    req.topics = ts;
    req.topics_count = n;
    req.timeout_ms = m->cfg->quorum_request_timeout_ms;
    req.validate_only = validate_only;
    net_client c;
    net_client_init(&c, host, port);
    c.cancel = &m->cancel;
    void *resp = NULL;
    static atomic_int corr;
    int rc = brpc_call(&c, KAFKA_API_CREATE_TOPICS, 7, atomic_fetch_add(&corr, 1) + 1, "sluice-broker", &req,
                       &a, &resp, m->cfg->quorum_request_timeout_ms + 30000);
    net_client_free(&c);
    if (rc == 0) {
        const kafka_create_topics_response *r = resp;
        for (int32_t i = 0; i < n && i < r->topics_count; i++) {
            const kafka_create_topics_response_creatable_topic_result *x = &r->topics[i];
            out[i].error = x->error_code;
            out[i].topic_id = x->topic_id;
            out[i].partitions = x->num_partitions;
            out[i].replication_factor = x->replication_factor;
            snprintf(out[i].message, sizeof out[i].message, "%.*s",
                     x->error_message.len > 0 ? x->error_message.len : 0,
                     x->error_message.len > 0 ? x->error_message.ptr : "");
        }
    }
    arena_reset(&a);
    /* The caller reads the image next: wait (briefly) for the commit to reach it. */
    kstr made[64];
    int32_t n_made = 0;
    for (int32_t i = 0; rc == 0 && i < n && n_made < 64; i++)
        if (out[i].error == 0)
            made[n_made++] = t[i].name;
    bmeta_wait_topics(m, made, n_made);
    return 0;
}

void bmeta_wait_topics(bmeta *m, const kstr *names, int32_t n) {
    for (int spin = 0; n > 0 && spin < 200; spin++) {
        md_image *img = bmeta_image(m);
        bool all = true;
        for (int32_t i = 0; i < n && all; i++)
            all = md_image_topic(img, names[i]) != NULL;
        md_image_unref(img);
        if (all)
            return;
        usleep(10000);
    }
}

/* A node that is not the active controller registers through it, until
 * the committed image lists it with this start's incarnation. */
static void register_with_controller(bmeta *m) {
    kuuid incarnation = m->incarnation;
    md_image *img = bmeta_image(m);
    const md_broker *b = md_image_broker(img, m->cfg->node_id);
    bool done = b != NULL && memcmp(b->incarnation.b, incarnation.b, 16) == 0;
    int64_t epoch = b ? b->epoch : -1;
    md_image_unref(img);
    int32_t id;
    char host[256];
    uint16_t port;
    if (!bmeta_controller_address(m, &id, host, sizeof host, &port))
        return;
    if (done) {
        heartbeat(m, epoch, id, host, port);
        return;
    }
    const config_listener *l = advertised_client(m->cfg);
    kafka_broker_registration_request req;
    kafka_broker_registration_request_init(&req);
    kafka_broker_registration_request_listener lst;
    kafka_broker_registration_request_listener_init(&lst);
    lst.name = kstr_c(l && l->name[0] ? l->name : "PLAINTEXT");
    lst.host = kstr_c(l ? l->host : "");
    lst.port = l ? (uint16_t)l->port : 0;
    lst.security_protocol = 0;
    req.broker_id = m->cfg->node_id;
    req.cluster_id = kstr_c(logmgr_cluster_id(m->lm));
    req.incarnation_id = incarnation;
    req.listeners = &lst;
    req.listeners_count = 1;
    req.features_count = 0;
    req.rack = m->cfg->broker_rack ? kstr_c(m->cfg->broker_rack) : (kstr){NULL, -1};
    req.log_dirs_count = 0;
    net_client c;
    net_client_init(&c, host, port);
    c.cancel = &m->cancel;
    arena a;
    arena_init(&a, 64 << 10);
    void *resp = NULL;
    static int32_t corr;
    int rc = brpc_call(&c, KAFKA_API_BROKER_REGISTRATION, 0, ++corr, "sluice-broker", &req, &a, &resp,
                       m->cfg->quorum_request_timeout_ms);
    if (rc == 0) {
        kafka_broker_registration_response *r = resp;
        if (r->error_code != 0)
            LOG_INFO("metadata", "registration with the controller (node %d) answered %s; retried", id,
                     kafka_error_name(r->error_code));
        else
            LOG_INFO("metadata", "registered with the active controller (node %d), broker epoch %" PRId64, id,
                     r->broker_epoch);
    }
    net_client_free(&c);
    arena_reset(&a);
}

/* "id@host:port" */
static int parse_voter(const char *text, bquorum_voter *v) {
    char host[256];
    int id, port, used = 0;
    const char *at = strchr(text, '@');
    const char *colon = strrchr(text, ':');
    if (at == NULL || colon == NULL || colon < at || (size_t)(colon - at - 1) >= sizeof host)
        return -1;
    if (sscanf(text, "%d@%n", &id, &used) != 1 || id < 0)
        return -1;
    memcpy(host, at + 1, (size_t)(colon - at - 1));
    host[colon - at - 1] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535)
        return -1;
    port = (int)p;
    v->id = id;
    snprintf(v->host, sizeof v->host, "%s", host);
    v->port = (uint16_t)port;
    return 0;
}

static int open_quorum(bmeta *m) {
    const broker_config *cfg = m->cfg;
    bquorum_config qc;
    memset(&qc, 0, sizeof qc);
    qc.node_id = cfg->node_id;
    if (cfg->controller_quorum_voters.n > RAFT_VOTERS_MAX) {
        LOG_ERROR("metadata", "controller.quorum.voters: at most %d voters", RAFT_VOTERS_MAX);
        return -1;
    }
    bool self = false;
    for (int i = 0; i < cfg->controller_quorum_voters.n; i++) {
        if (parse_voter(cfg->controller_quorum_voters.items[i], &qc.voters[i]) != 0) {
            LOG_ERROR("metadata", "controller.quorum.voters: '%s' is not id@host:port",
                      cfg->controller_quorum_voters.items[i]);
            return -1;
        }
        for (int k = 0; k < i; k++)
            if (qc.voters[k].id == qc.voters[i].id) {
                LOG_ERROR("metadata", "controller.quorum.voters names node %d twice", qc.voters[i].id);
                return -1;
            }
        self = self || qc.voters[i].id == cfg->node_id;
    }
    qc.n_voters = cfg->controller_quorum_voters.n;
    bool controller = (cfg->process_roles & CONFIG_ROLE_CONTROLLER) != 0;
    if (controller && !self) {
        LOG_ERROR(
            "metadata",
            "node %d has process.roles controller but is not among controller.quorum.voters; add it there "
            "(every controller is a voter) or make it a broker only",
            cfg->node_id);
        return -1;
    }
    if (!controller && self) {
        LOG_ERROR(
            "metadata",
            "node %d is among controller.quorum.voters but process.roles lacks controller; a voter must "
            "be a controller",
            cfg->node_id);
        return -1;
    }
    qc.election_timeout_ms = cfg->quorum_election_timeout_ms;
    qc.fetch_timeout_ms = cfg->quorum_fetch_timeout_ms;
    qc.election_backoff_max_ms = cfg->quorum_election_backoff_max_ms;
    qc.request_timeout_ms = cfg->quorum_request_timeout_ms;
    qc.cluster_id = logmgr_cluster_id(m->lm);
    static char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", logmgr_root(m->lm, 0), MDLOG_DIR_NAME);
    qc.dir = dir;
    qc.log = m->log;
    qc.mu = &m->mu;
    qc.env = &m->env;
    bquorum_hooks qh = {m, quorum_committed, quorum_role, quorum_install};
    char err[ERR_MAX] = "";
    m->q = bquorum_open(&qc, &qh, err, sizeof err);
    if (m->q == NULL) {
        LOG_ERROR("metadata", "%s", err);
        return -1;
    }
    if (bquorum_start(m->q) != 0) {
        LOG_ERROR("metadata", "cannot start the quorum's threads");
        return -1;
    }
    return 0;
}

bmeta *bmeta_open(const broker_config *cfg, storage_ctx *sc, const bmeta_hooks *hooks) {
    bmeta *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->cfg = cfg;
    m->sc = sc;
    if (hooks)
        m->hooks = *hooks;
    if (hooks && hooks->env) {
        m->env = *hooks->env;
    } else {
        sl_env_init_real(&m->env);
        m->env.node_id = cfg->node_id;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->img_mu, NULL);
    pthread_cond_init(&m->done_cv, NULL);
    sl_env_random(&m->env, m->incarnation.b, sizeof m->incarnation.b);
    char err[ERR_MAX] = "";
    m->lm = logmgr_open(sc, (const char *const *)cfg->log_dirs.items, cfg->log_dirs.n, cfg->node_id,
                        cfg->max_connections, env_random, &m->env, err, sizeof err);
    if (m->lm == NULL) {
        LOG_ERROR("metadata", "%s", err);
        goto fail;
    }
    const char *root = logmgr_root(m->lm, 0);
    if (migrate(m, root) != 0 || open_log(m, root) != 0)
        goto fail;
    logmgr_settle(m->lm, judge, m, skip_dir);
    free(m->removed);
    m->removed = NULL;
    m->n_removed = m->cap_removed = 0;
    free(m->intents);
    m->intents = NULL;
    m->n_intents = 0;
    int64_t budget = logmgr_partition_budget(m->lm);
    if (md_image_partition_count(m->img) > budget)
        LOG_WARN("metadata",
                 "%" PRId64 " partitions, but the open-file limit leaves room for %" PRId64
                 "; some may stay offline, and no partitions can be added until the limit is raised",
                 md_image_partition_count(m->img), budget);

    parts_config pc = {cfg, m->lm, cfg->node_id, parts_changed, m, m->incarnation};
    m->ps = parts_create(&pc);
    if (m->ps == NULL)
        goto fail;
    parts_apply(m->ps, NULL, m->img, sl_env_wall_ms(&m->env), true);

    if (m->tail) {
        md_image_unref(m->tail);
        m->tail = NULL;
    }
    if (cfg->controller_quorum_voters.n > 0) {
        if (open_quorum(m) != 0)
            goto fail;
        m->opened = true;
        return m;
    }
    ctrl_config cc;
    controller_config(m, &cc);
    ctrl_sink sink = {m, sink_append, sink_reply};
    md_image *img = bmeta_image(m);
    m->ctrl = ctrl_create(&cc, &sink, img);
    md_image_unref(img);
    if (m->ctrl == NULL || register_self(m) != 0)
        goto fail;
    m->opened = true;
    return m;
fail:
    bmeta_close(m);
    return NULL;
}

int bmeta_close(bmeta *m) {
    if (m == NULL)
        return 0;
    bool unclean[LOGMGR_ROOTS_MAX] = {false};
    if (m->q) {
        bquorum_close(m->q);
        m->q = NULL;
    }
    if (m->ctrl)
        ctrl_destroy(m->ctrl, KAFKA_ERR_NOT_CONTROLLER);
    if (m->proposed)
        md_image_unref(m->proposed);
    if (m->tail)
        md_image_unref(m->tail);
    parts_close(m->ps, unclean);
    if (m->log && mdlog_close(m->log) != 0) {
        LOG_WARN("metadata", "the metadata log did not close cleanly");
        unclean[0] = true;
    }
    int not_marked = logmgr_close(m->lm, unclean, m->opened && m->log != NULL);
    if (m->lm == NULL)
        not_marked = m->cfg->log_dirs.n;
    if (m->img)
        md_image_unref(m->img);
    free(m->removed);
    free(m->intents);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->img_mu);
    pthread_cond_destroy(&m->done_cv);
    free(m);
    return not_marked;
}

/* ---- housekeeping ----------------------------------------------------------------------------- */

static int snapshot_locked(bmeta *m, int64_t now) {
    md_image *img = bmeta_image(m);
    char err[ERR_MAX];
    int32_t epoch = md_image_epoch(img);
    if (m->q) {
        /* Named after the epoch of its last record (the log's last, as
         * a quorum member snapshots only what it has applied). */
        raft_state st;
        bquorum_state(m->q, &st);
        epoch = st.last_epoch;
    }
    int rc = mdlog_snapshot(m->log, img, epoch, now, err, sizeof err);
    md_image_unref(img);
    /* The log below the previous snapshot went: the machine's log starts there. */
    if (rc == 0 && m->q)
        bquorum_log_trimmed(m->q, mdlog_start_offset(m->log), mdlog_start_epoch(m->log));
    if (rc != 0) {
        if (!m->snapshot_failed_logged)
            LOG_WARN("metadata", "cannot write a metadata snapshot (the log keeps every record): %s", err);
        m->snapshot_failed_logged = true;
        return -1;
    }
    m->snapshot_failed_logged = false;
    return 0;
}

int bmeta_snapshot(bmeta *m) {
    pthread_mutex_lock(&m->mu);
    int rc = snapshot_locked(m, sl_env_wall_ms(&m->env));
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void bmeta_tick(bmeta *m, int64_t now) {
    parts_tick(m->ps, now);
    pthread_mutex_lock(&m->mu);
    if (mdlog_offline(m->log) && mdlog_reopen(m->log) == 0)
        LOG_INFO("metadata", "the metadata log is back online");
    mdlog_tick(m->log, now);
    if (!mdlog_offline(m->log) && mdlog_snapshot_due(m->log, now) &&
        (m->q == NULL || m->applied == mdlog_end_offset(m->log)))
        snapshot_locked(m, now);
    if (m->ctrl)
        ctrl_tick(m->ctrl, sl_env_mono_ms(&m->env));
    bool register_remote = m->q != NULL && !m->active && (m->cfg->process_roles & CONFIG_ROLE_BROKER);
    pthread_mutex_unlock(&m->mu);
    if (register_remote)
        register_with_controller(m);
}

int bmeta_scram_credential(bmeta *m, const char *user, int mech, struct sasl_scram_cred *out) {
    md_image *img = bmeta_image(m);
    const md_scram *c = md_image_scram(img, user, (int8_t)mech);
    int rc = c ? sasl_scram_from_keys(mech, c->salt, (size_t)c->salt_n, c->stored_key, c->server_key,
                                      (size_t)c->key_n, c->iterations, out)
               : -1;
    md_image_unref(img);
    return rc;
}

int bmeta_alter_scram(bmeta *m, const ctrl_scram_op *ops, int32_t n, ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_alter_scram(m->ctrl, ops, n, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_alter_acls(bmeta *m, const ctrl_acl_op *ops, int32_t n, ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_alter_acls(m->ctrl, ops, n, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}

int bmeta_alter_quotas(bmeta *m, const ctrl_quota_entry *entries, int32_t n, ctrl_item_result *out) {
    waiter w = {out, n, false};
    RUNQ(m, &w, ctrl_alter_quotas(m->ctrl, entries, n, &w, sl_env_mono_ms(&m->env)));
    return finish(&w);
}
