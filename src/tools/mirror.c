/*
 * mirror.c - `sluice mirror`: copies topics from a source cluster to a
 * target cluster the way MirrorMaker 2 does, with MM2's names and internal
 * topics (tools/mm2.h), so MM2 tooling understands the result.
 *
 * One process, one thread, one flow (source alias -> target alias).
 * librdkafka's delivery reports run in this thread too (from rd_kafka_poll
 * and rd_kafka_flush), so the cycle's slots need no locking. The
 * main loop runs *cycles*: poll up to MIRROR_CYCLE_RECORDS records (or
 * MIRROR_CYCLE_BYTES, or MIRROR_CYCLE_MS) from the source consumer, produce
 * each to the same partition number of the target topic, wait until the
 * target acknowledged every one (bounded flush), and only then commit the
 * source positions to the mirror's own consumer group on the source. So:
 *
 *   - a record whose position was committed has been acknowledged by the
 *     target (acks=all): SIGKILL at any moment loses nothing, and a restart
 *     resumes from the committed positions, copying again at most the last
 *     cycle (at-least-once; duplicates are possible, loss is not);
 *   - a failed or timed-out delivery ends the *session*: both clients are
 *     destroyed, the mirror backs off (MIRROR_BACKOFF_MIN_MS doubling to
 *     MIRROR_BACKOFF_MAX_MS) and starts again from the committed positions.
 *     A side that is down is handled the same way.
 *
 * Between cycles it refreshes the topic list (new matching topics and
 * partition increases are created on the target), syncs topic configs,
 * emits heartbeats, and translates the source's consumer group offsets into
 * checkpoints (and, with sync.group.offsets.enabled, commits them to the
 * target groups) using the per-partition offset map of tools/mm2.h.
 *
 * Every wait is bounded: polls by their timeouts, flushes by
 * flush.timeout.ms, admin calls and commits by --timeout-ms. SIGINT/SIGTERM
 * end the loop at the next cycle boundary; the cycle in progress is flushed
 * and committed first.
 *
 * Exactly-once is not offered: it needs transactions on the target, which
 * Sluice does not have yet (see docs/mirroring.md).
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/kclient.h"
#include "tools/mm2.h"

#define MIRROR_CYCLE_RECORDS  100000
#define MIRROR_CYCLE_BYTES    (64 * 1024 * 1024)
#define MIRROR_CYCLE_MS       100
#define MIRROR_MAX_TOPICS     4096
#define MIRROR_MAX_PARTITIONS 100000 /* per topic */
#define MIRROR_MAX_GROUPS     1000
#define MIRROR_MAX_PATTERNS   64
#define MIRROR_MAX_CONFIGS    128
#define MIRROR_ALIAS_MAX      64
#define MIRROR_BACKOFF_MIN_MS 500
#define MIRROR_BACKOFF_MAX_MS 30000

static const char mirror_help[] =
    "Usage: sluice mirror --source FILE --target FILE [options]\n"
    "       sluice mirror dump --bootstrap-server H:P --topic T [--command-config FILE]\n"
    "\n"
    "Copies topics from the source cluster to the target cluster as MirrorMaker 2 does: target\n"
    "topics named <source alias>.<topic> (or unchanged with --replication-policy identity), created\n"
    "with the source's partition count and topic configs; records copied with keys, values, headers\n"
    "and timestamps into the same partition number; MM2's internal topics mm2-offset-syncs.<target\n"
    "alias>.internal, <source alias>.checkpoints.internal and heartbeats; consumer group offsets\n"
    "translated for the target. Runs until SIGINT/SIGTERM. At-least-once: a record whose source\n"
    "position is committed was acknowledged by the target, so a kill loses nothing; a restart may\n"
    "copy the last cycle again. `dump` prints an internal topic's records decoded, one JSON per line.\n"
    "\n"
    "Options:\n"
    "  --source FILE              source cluster client settings (bootstrap.servers=..., librdkafka keys)\n"
    "  --target FILE              target cluster client settings\n"
    "  --source-alias A           source cluster alias (default: source)\n"
    "  --target-alias B           target cluster alias (default: target)\n"
    "  --topics R[,R...]          topics to mirror, names or regexes (default: .*)\n"
    "  --topics-exclude R[,R...]  topics not to mirror (default: .*[-.]internal,.*\\.replica,__.*)\n"
    "  --groups R[,R...]          consumer groups to checkpoint (default: .*)\n"
    "  --groups-exclude R[,R...]  (default: console-consumer-.*,connect-.*,__.*)\n"
    "  --replication-policy P     default (<alias>.<topic>) or identity\n"
    "  --set KEY=VALUE            a MirrorMaker 2 setting (repeatable; see below)\n"
    "  --mirror-config FILE       MirrorMaker 2 settings, one KEY=VALUE per line\n"
    "  --status-interval-ms N     progress line on stderr every N ms when not a terminal (default 10000)\n"
    "  --timeout-ms N             bound on each admin call and commit (default 15000)\n"
    "  -h, --help                 this text\n"
    "\n"
    "Settings (--set, MirrorMaker 2 names and defaults):\n"
    "  refresh.topics.enabled=true            refresh.topics.interval.seconds=600\n"
    "  sync.topic.configs.enabled=true        sync.topic.configs.interval.seconds=600\n"
    "  emit.checkpoints.enabled=true          emit.checkpoints.interval.seconds=60\n"
    "  sync.group.offsets.enabled=false       sync.group.offsets.interval.seconds=60\n"
    "  emit.heartbeats.enabled=true           emit.heartbeats.interval.seconds=1\n"
    "  replication.policy.class=DefaultReplicationPolicy|IdentityReplicationPolicy\n"
    "  replication.policy.separator=.         replication.factor=-1 (broker default)\n"
    "  offset-syncs.topic.location=source|target   offset.lag.max=100\n"
    "  topics, topics.exclude, groups, groups.exclude (as the flags)\n"
    "  config.properties.exclude=R[,R...]     topic configs not synced (default: MM2's list)\n"
    "  mirror.group.id=G                      the mirror's own progress group on the source\n"
    "                                         (default: sluice-mirror-<source alias>-<target alias>)\n"
    "  flush.timeout.ms=60000                 bound on waiting for the target's acknowledgements\n"
    "\n"
    "Exit codes: 0 stopped by SIGINT/SIGTERM after a clean flush and commit; 2 bad flags or settings.\n"
    "A side that is down is retried with back-off, never an exit.\n"
    "\n"
    "Examples:\n"
    "  sluice mirror --source east.properties --target west.properties --source-alias east \\\n"
    "      --target-alias west --topics 'orders,payments.*' --set sync.group.offsets.enabled=true\n"
    "  sluice mirror dump --bootstrap-server west:9092 --topic east.checkpoints.internal\n";

/* ---- settings --------------------------------------------------------- */

typedef struct patterns {
    regex_t re[MIRROR_MAX_PATTERNS];
    int n;
} patterns;

typedef struct mirror_settings {
    const char *source_file, *target_file;
    char source_alias[MIRROR_ALIAS_MAX + 1], target_alias[MIRROR_ALIAS_MAX + 1];
    char topics[CLI_ARG_MAX], topics_exclude[CLI_ARG_MAX], groups[CLI_ARG_MAX], groups_exclude[CLI_ARG_MAX];
    char config_exclude[CLI_ARG_MAX], mirror_group[CLI_ARG_MAX];
    mm2_policy policy;
    bool refresh_topics, sync_configs, emit_checkpoints, sync_groups, emit_heartbeats, syncs_on_target;
    int64_t refresh_topics_s, sync_configs_s, emit_checkpoints_s, sync_groups_s, heartbeats_s;
    int64_t offset_lag_max, replication_factor, flush_timeout_ms, status_ms;
} mirror_settings;

static void settings_defaults(mirror_settings *s) {
    memset(s, 0, sizeof *s);
    strcpy(s->source_alias, "source");
    strcpy(s->target_alias, "target");
    strcpy(s->topics, ".*");
    strcpy(s->topics_exclude, ".*[-.]internal,.*\\.replica,__.*");
    strcpy(s->groups, ".*");
    strcpy(s->groups_exclude, "console-consumer-.*,connect-.*,__.*");
    strcpy(s->config_exclude, "follower\\.replication\\.throttled\\.replicas,"
                              "leader\\.replication\\.throttled\\.replicas,"
                              "message\\.timestamp\\.difference\\.max\\.ms,message\\.timestamp\\.type,"
                              "unclean\\.leader\\.election\\.enable,min\\.insync\\.replicas");
    strcpy(s->policy.separator, ".");
    s->refresh_topics = s->sync_configs = s->emit_checkpoints = s->emit_heartbeats = true;
    s->refresh_topics_s = 600;
    s->sync_configs_s = 600;
    s->emit_checkpoints_s = 60;
    s->sync_groups_s = 60;
    s->heartbeats_s = 1;
    s->offset_lag_max = 100;
    s->replication_factor = -1;
    s->flush_timeout_ms = 60000;
    s->status_ms = 10000;
}

static bool set_str(char *dst, size_t cap, const char *v) {
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

static bool parse_bool(const char *v, bool *out) {
    if (strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* Applies one MirrorMaker 2 setting. CLI_OK or CLI_EUSAGE after a message. */
static int apply_setting(mirror_settings *s, const char *k, const char *v) {
    struct {
        const char *name;
        bool *b;
        int64_t *i;
        int64_t min, max;
        char *str;
        size_t cap;
    } tab[] = {
        {"refresh.topics.enabled", &s->refresh_topics, NULL, 0, 0, NULL, 0},
        {"sync.topic.configs.enabled", &s->sync_configs, NULL, 0, 0, NULL, 0},
        {"emit.checkpoints.enabled", &s->emit_checkpoints, NULL, 0, 0, NULL, 0},
        {"sync.group.offsets.enabled", &s->sync_groups, NULL, 0, 0, NULL, 0},
        {"emit.heartbeats.enabled", &s->emit_heartbeats, NULL, 0, 0, NULL, 0},
        {"refresh.topics.interval.seconds", NULL, &s->refresh_topics_s, 1, 86400, NULL, 0},
        {"sync.topic.configs.interval.seconds", NULL, &s->sync_configs_s, 1, 86400, NULL, 0},
        {"emit.checkpoints.interval.seconds", NULL, &s->emit_checkpoints_s, 1, 86400, NULL, 0},
        {"sync.group.offsets.interval.seconds", NULL, &s->sync_groups_s, 1, 86400, NULL, 0},
        {"emit.heartbeats.interval.seconds", NULL, &s->heartbeats_s, 1, 86400, NULL, 0},
        {"offset.lag.max", NULL, &s->offset_lag_max, 1, INT32_MAX, NULL, 0},
        {"replication.factor", NULL, &s->replication_factor, -1, 32767, NULL, 0},
        {"flush.timeout.ms", NULL, &s->flush_timeout_ms, 1000, 3600000, NULL, 0},
        {"topics", NULL, NULL, 0, 0, s->topics, sizeof s->topics},
        {"topics.exclude", NULL, NULL, 0, 0, s->topics_exclude, sizeof s->topics_exclude},
        {"groups", NULL, NULL, 0, 0, s->groups, sizeof s->groups},
        {"groups.exclude", NULL, NULL, 0, 0, s->groups_exclude, sizeof s->groups_exclude},
        {"config.properties.exclude", NULL, NULL, 0, 0, s->config_exclude, sizeof s->config_exclude},
        {"mirror.group.id", NULL, NULL, 0, 0, s->mirror_group, sizeof s->mirror_group},
        {"source.cluster.alias", NULL, NULL, 0, 0, s->source_alias, sizeof s->source_alias},
        {"target.cluster.alias", NULL, NULL, 0, 0, s->target_alias, sizeof s->target_alias},
        {"replication.policy.separator", NULL, NULL, 0, 0, s->policy.separator, sizeof s->policy.separator},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(k, tab[i].name) != 0)
            continue;
        int64_t n;
        if (tab[i].b && !parse_bool(v, tab[i].b))
            return cli_usage_err("mirror", "%s: expected true or false, got '%s'", k, v);
        if (tab[i].i) {
            if (!cli_parse_i64(v, tab[i].min, tab[i].max, &n))
                return cli_usage_err("mirror", "%s: expected %lld..%lld, got '%s'", k, (long long)tab[i].min,
                                     (long long)tab[i].max, v);
            *tab[i].i = n;
        }
        if (tab[i].str && !set_str(tab[i].str, tab[i].cap, v))
            return cli_usage_err("mirror", "%s: value too long", k);
        return CLI_OK;
    }
    if (strcmp(k, "replication.policy.class") == 0) {
        const char *dot = strrchr(v, '.');
        const char *cls = dot ? dot + 1 : v;
        if (strcmp(cls, "DefaultReplicationPolicy") == 0 || strcmp(v, "default") == 0)
            s->policy.identity = false;
        else if (strcmp(cls, "IdentityReplicationPolicy") == 0 || strcmp(v, "identity") == 0)
            s->policy.identity = true;
        else
            return cli_usage_err("mirror",
                                 "%s: expected DefaultReplicationPolicy or IdentityReplicationPolicy", k);
        return CLI_OK;
    }
    if (strcmp(k, "offset-syncs.topic.location") == 0) {
        if (strcmp(v, "source") && strcmp(v, "target"))
            return cli_usage_err("mirror", "%s: expected source or target", k);
        s->syncs_on_target = strcmp(v, "target") == 0;
        return CLI_OK;
    }
    return cli_usage_err("mirror", "unknown setting '%s'", k);
}

static int apply_kv(mirror_settings *s, const char *kv) {
    char buf[CLI_ARG_MAX];
    const char *k, *v;
    if (!cli_split_kv(kv, '=', buf, sizeof buf, &k, &v))
        return cli_usage_err("mirror", "setting '%s' is not key=value", kv);
    char *ke = (char *)k + strlen(k);
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
        *--ke = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    return apply_setting(s, k, v);
}

static int apply_file(mirror_settings *s, const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cli_usage_err("mirror", "--mirror-config %s: %s", path, strerror(errno));
    char line[CLI_ARG_MAX];
    int rc = CLI_OK;
    for (int n = 0; rc == CLI_OK && n < 10000 && fgets(line, sizeof line, f); n++) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#' && *p != '!')
            rc = apply_kv(s, p);
    }
    fclose(f);
    return rc;
}

/* Compiles a comma-separated list of regexes, each matched against the whole
 * name (as MM2's Java patterns are). */
static int compile_patterns(patterns *ps, const char *what, const char *list) {
    char buf[CLI_ARG_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    ps->n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            continue;
        if (ps->n == MIRROR_MAX_PATTERNS)
            return cli_usage_err("mirror", "%s: more than %d patterns", what, MIRROR_MAX_PATTERNS);
        char anchored[CLI_ARG_MAX + 8];
        snprintf(anchored, sizeof anchored, "^(%s)$", p);
        if (regcomp(&ps->re[ps->n], anchored, REG_EXTENDED | REG_NOSUB) != 0)
            return cli_usage_err("mirror", "%s: '%s' is not a valid regular expression", what, p);
        ps->n++;
    }
    return CLI_OK;
}

static bool matches(const patterns *ps, const char *name) {
    for (int i = 0; i < ps->n; i++) {
        if (regexec(&ps->re[i], name, 0, NULL, 0) == 0)
            return true;
    }
    return false;
}

static void free_patterns(patterns *ps) {
    for (int i = 0; i < ps->n; i++)
        regfree(&ps->re[i]);
    ps->n = 0;
}

/* ---- state ------------------------------------------------------------ */

struct mtopic;

typedef struct mpart {
    struct mtopic *t;
    int32_t partition;
    int64_t acked;     /* next source offset; every copy below it acknowledged (-1: none yet) */
    int64_t committed; /* last position committed to the mirror group (-1: none this run) */
    int64_t synced_up; /* source offset of the last offset sync emitted (-1: none) */
    mm2_runs runs;
} mpart;

typedef struct mtopic {
    char src[MM2_NAME_MAX + 1], dst[MM2_NAME_MAX + 1];
    int nparts;
    mpart *parts;
    bool ready; /* exists on the target with >= nparts partitions */
} mtopic;

/* One record of the cycle in flight; the producer's delivery report fills
 * down/err through the message opaque. */
typedef struct mslot {
    mpart *p;
    int64_t up, down;
    rd_kafka_resp_err_t err;
    bool done;
} mslot;

typedef struct mirror {
    mirror_settings s;
    patterns topics, topics_ex, groups, groups_ex, config_ex;
    kc_opts so, to; /* source, target */
    int timeout_ms;
    rd_kafka_t *cons, *prod, *sprod; /* sprod: producer on the source (offset syncs), or NULL */
    rd_kafka_queue_t *cq, *sq, *tq;  /* commit results; admin results on source, target */
    mtopic *topics_v;
    int ntopics;
    bool assign_needed;
    char syncs_topic[MM2_NAME_MAX + 1], ckpt_topic[MM2_NAME_MAX + 1];
    mslot *slots;
    int nslots;
    int64_t internal_errors;
    /* totals and the previous status sample */
    int64_t copied, copied_bytes, restarts, checkpoints, group_commits;
    int64_t last_status_us, last_copied, last_bytes;
    int64_t next_refresh_us, next_configs_us, next_ckpt_us, next_groups_us, next_hb_us;
} mirror;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    mirror *mm = opaque;
    mslot *sl = m->_private;
    if (sl == NULL) { /* an internal record: offset sync, checkpoint, heartbeat */
        if (m->err)
            mm->internal_errors++;
        return;
    }
    sl->err = m->err;
    sl->down = m->offset;
    sl->done = true;
}

static mtopic *find_topic(mirror *m, const char *src) {
    for (int i = 0; i < m->ntopics; i++) {
        if (strcmp(m->topics_v[i].src, src) == 0)
            return &m->topics_v[i];
    }
    return NULL;
}

static bool topic_selected(const mirror *m, const char *name) {
    const mm2_policy *p = &m->s.policy;
    if (mm2_is_internal(name) || mm2_is_cycle(p, name, m->s.target_alias))
        return false;
    if (mm2_is_heartbeats(p, name)) /* MM2 mirrors heartbeats whatever the filter says */
        return true;
    return matches(&m->topics, name) && !matches(&m->topics_ex, name);
}

static bool group_selected(const mirror *m, const char *g) {
    return strcmp(g, m->s.mirror_group) != 0 && matches(&m->groups, g) && !matches(&m->groups_ex, g);
}

/* ---- admin helpers ---------------------------------------------------- */

typedef struct mconfs {
    int n;
    char *k[MIRROR_MAX_CONFIGS], *v[MIRROR_MAX_CONFIGS];
    bool ok; /* described */
} mconfs;

static void mconfs_free(mconfs *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->k[i]);
        free(c->v[i]);
    }
    c->n = 0;
}

static const char *mconfs_get(const mconfs *c, const char *k) {
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->k[i], k) == 0)
            return c->v[i];
    }
    return NULL;
}

/* The dynamic (topic-level, set by someone) configs of each topic in names,
 * through rk's cluster. All = false keeps only those not excluded from sync. */
static void describe_configs(mirror *m, rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o, char **names,
                             int n, mconfs *out, bool all) {
    for (int i = 0; i < n; i++)
        out[i] = (mconfs){0};
    if (n == 0)
        return;
    rd_kafka_ConfigResource_t **res = calloc((size_t)n, sizeof *res);
    for (int i = 0; i < n; i++)
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(o, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(rk, res, (size_t)n, ao, q);
    int rc;
    rd_kafka_event_t *ev = kc_wait(o, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, &rc);
    if (ev) {
        size_t rn;
        const rd_kafka_ConfigResource_t **rr =
            rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &rn);
        for (size_t j = 0; j < rn; j++) {
            int i;
            for (i = 0; i < n && strcmp(names[i], rd_kafka_ConfigResource_name(rr[j])) != 0; i++)
                ;
            if (i == n || rd_kafka_ConfigResource_error(rr[j]))
                continue;
            out[i].ok = true;
            size_t en;
            const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rr[j], &en);
            for (size_t e = 0; e < en && out[i].n < MIRROR_MAX_CONFIGS; e++) {
                const char *k = rd_kafka_ConfigEntry_name(es[e]), *v = rd_kafka_ConfigEntry_value(es[e]);
                if (rd_kafka_ConfigEntry_source(es[e]) != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG ||
                    v == NULL)
                    continue;
                if (!all && matches(&m->config_ex, k))
                    continue;
                out[i].k[out[i].n] = strdup(k);
                out[i].v[out[i].n] = strdup(v);
                out[i].n++;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_ConfigResource_destroy_array(res, (size_t)n);
    free(res);
}

/* Creates topic name on the cluster of rk with nparts partitions and the
 * given configs. True if it exists afterwards. */
static bool create_topic(rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o, const char *name, int nparts,
                         int rf, const mconfs *c) {
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, nparts, rf, err, sizeof err);
    if (nt == NULL) {
        cli_err("mirror", "cannot create topic '%s': %s", name, err);
        return false;
    }
    for (int i = 0; c && i < c->n; i++)
        rd_kafka_NewTopic_set_config(nt, c->k[i], c->v[i]);
    rd_kafka_AdminOptions_t *ao = kc_admin_options(o, rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    int rc;
    bool ok = false;
    rd_kafka_event_t *ev = kc_wait(o, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e = n == 1 ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
        ok = e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
        if (!ok)
            cli_err("mirror", "cannot create topic '%s' (%d partitions) on %s: %s", name, nparts,
                    o->bootstrap,
                    n == 1 && rd_kafka_topic_result_error_string(tr[0])
                        ? rd_kafka_topic_result_error_string(tr[0])
                        : rd_kafka_err2str(e));
        else if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            fprintf(stderr, "sluice mirror: created topic '%s' on %s (%d partitions, %d configs)\n", name,
                    o->bootstrap, nparts, c ? c->n : 0);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    return ok;
}

static bool add_partitions(rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o, const char *name,
                           int total) {
    char err[256];
    rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(name, (size_t)total, err, sizeof err);
    if (np == NULL)
        return false;
    rd_kafka_AdminOptions_t *ao = kc_admin_options(o, rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
    rd_kafka_CreatePartitions(rk, &np, 1, ao, q);
    int rc;
    bool ok = false;
    rd_kafka_event_t *ev = kc_wait(o, q, RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
        ok = n == 1 && rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!ok)
            cli_err("mirror", "cannot grow topic '%s' to %d partitions: %s", name, total,
                    n == 1 ? rd_kafka_err2str(rd_kafka_topic_result_error(tr[0])) : "no result");
        else
            fprintf(stderr, "sluice mirror: topic '%s' grown to %d partitions\n", name, total);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewPartitions_destroy(np);
    return ok;
}

/* Sets the target topic's dynamic configs to c (AlterConfigs replaces the
 * whole dynamic set, so the target's own values of excluded keys are
 * carried over from keep). */
static bool alter_configs(mirror *m, const char *name, const mconfs *c, const mconfs *keep) {
    rd_kafka_ConfigResource_t *r = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
    for (int i = 0; i < c->n; i++)
        rd_kafka_ConfigResource_set_config(r, c->k[i], c->v[i]);
    for (int i = 0; i < keep->n; i++) {
        if (matches(&m->config_ex, keep->k[i]))
            rd_kafka_ConfigResource_set_config(r, keep->k[i], keep->v[i]);
    }
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&m->to, m->prod, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AlterConfigs(m->prod, &r, 1, ao, m->tq);
    int rc;
    bool ok = false;
    rd_kafka_event_t *ev = kc_wait(&m->to, m->tq, RD_KAFKA_EVENT_ALTERCONFIGS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_ConfigResource_t **rr =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
        ok = n == 1 && rd_kafka_ConfigResource_error(rr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!ok)
            cli_err("mirror", "cannot sync configs of '%s': %s", name,
                    n == 1 && rd_kafka_ConfigResource_error_string(rr[0])
                        ? rd_kafka_ConfigResource_error_string(rr[0])
                        : "no result");
        else
            fprintf(stderr, "sluice mirror: synced %d configs of '%s'\n", c->n, name);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_ConfigResource_destroy(r);
    return ok;
}

static bool same_configs(const mconfs *src, const mconfs *dst, const mirror *m) {
    int dn = 0;
    for (int i = 0; i < dst->n; i++)
        dn += !matches(&m->config_ex, dst->k[i]);
    if (dn != src->n)
        return false;
    for (int i = 0; i < src->n; i++) {
        const char *v = mconfs_get(dst, src->k[i]);
        if (v == NULL || strcmp(v, src->v[i]) != 0)
            return false;
    }
    return true;
}

/* ---- topics ----------------------------------------------------------- */

static bool ensure_internal(rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o, const char *name, int rf) {
    int rc;
    const struct rd_kafka_metadata *md = kc_metadata(o, rk, &rc);
    if (md == NULL)
        return false;
    bool have = kc_find_topic(md, name) != NULL && kc_find_topic(md, name)->err == 0;
    rd_kafka_metadata_destroy(md);
    if (have)
        return true;
    mconfs c = {0};
    c.k[0] = (char *)"cleanup.policy";
    c.v[0] = (char *)"compact";
    c.n = 1;
    return create_topic(rk, q, o, name, 1, rf, &c);
}

/* Syncs configs of the topics in idx[0..n) (indexes into m->topics_v). */
static void sync_configs(mirror *m, const int *idx, int n) {
    if (n == 0)
        return;
    char **sn = calloc((size_t)n, sizeof *sn), **dn = calloc((size_t)n, sizeof *dn);
    mconfs *sc = calloc((size_t)n, sizeof *sc), *dc = calloc((size_t)n, sizeof *dc);
    for (int i = 0; i < n; i++) {
        sn[i] = m->topics_v[idx[i]].src;
        dn[i] = m->topics_v[idx[i]].dst;
    }
    describe_configs(m, m->cons, m->sq, &m->so, sn, n, sc, false);
    describe_configs(m, m->prod, m->tq, &m->to, dn, n, dc, true);
    for (int i = 0; i < n; i++) {
        if (sc[i].ok && dc[i].ok && !same_configs(&sc[i], &dc[i], m))
            alter_configs(m, dn[i], &sc[i], &dc[i]);
        mconfs_free(&sc[i]);
        mconfs_free(&dc[i]);
    }
    free(sn);
    free(dn);
    free(sc);
    free(dc);
}

/* Reads the source's topic list, adds new matching topics and partitions,
 * and makes sure each exists on the target. False if a side did not answer
 * (the caller keeps the old list). */
static bool refresh_topics(mirror *m, bool configs) {
    int rc;
    const struct rd_kafka_metadata *smd = kc_metadata(&m->so, m->cons, &rc);
    if (smd == NULL)
        return false;
    const struct rd_kafka_metadata *tmd = kc_metadata(&m->to, m->prod, &rc);
    if (tmd == NULL) {
        rd_kafka_metadata_destroy(smd);
        return false;
    }
    /* Topics found on the target already: their configs are checked at once. */
    int *existing = calloc((size_t)MIRROR_MAX_TOPICS, sizeof *existing), nexisting = 0;
    for (int i = 0; i < smd->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *st = &smd->topics[i];
        if (st->err || st->partition_cnt <= 0 || !topic_selected(m, st->topic))
            continue;
        mtopic *t = find_topic(m, st->topic);
        if (t == NULL) {
            if (m->ntopics == MIRROR_MAX_TOPICS) {
                cli_err("mirror", "more than %d topics match; '%s' is not mirrored", MIRROR_MAX_TOPICS,
                        st->topic);
                continue;
            }
            t = &m->topics_v[m->ntopics];
            memset(t, 0, sizeof *t);
            snprintf(t->src, sizeof t->src, "%s", st->topic);
            if (!mm2_remote_topic(&m->s.policy, m->s.source_alias, st->topic, t->dst, sizeof t->dst)) {
                cli_err("mirror", "the target name of '%s' would be longer than %d characters; not mirrored",
                        st->topic, MM2_NAME_MAX);
                continue;
            }
            m->ntopics++;
        }
        int want = st->partition_cnt < MIRROR_MAX_PARTITIONS ? st->partition_cnt : MIRROR_MAX_PARTITIONS;
        if (want > t->nparts) {
            mpart *np = realloc(t->parts, sizeof *np * (size_t)want);
            if (np == NULL)
                continue;
            for (int p = t->nparts; p < want; p++)
                np[p] = (mpart){.t = t, .partition = p, .acked = -1, .committed = -1, .synced_up = -1};
            for (int p = 0; p < t->nparts; p++)
                np[p].t = t;
            t->parts = np;
            t->nparts = want;
            t->ready = false;
        }
        if (t->ready)
            continue;
        const rd_kafka_metadata_topic_t *tt = kc_find_topic(tmd, t->dst);
        bool ok;
        if (tt == NULL || tt->err) {
            mconfs c = {0};
            char *name = t->src;
            if (m->s.sync_configs)
                describe_configs(m, m->cons, m->sq, &m->so, &name, 1, &c, false);
            ok = create_topic(m->prod, m->tq, &m->to, t->dst, t->nparts, (int)m->s.replication_factor, &c);
            if (!ok && c.n > 0) /* the target may refuse a config; the config sync reports which */
                ok = create_topic(m->prod, m->tq, &m->to, t->dst, t->nparts, (int)m->s.replication_factor,
                                  NULL);
            mconfs_free(&c);
        } else if (tt->partition_cnt < t->nparts) {
            ok = add_partitions(m->prod, m->tq, &m->to, t->dst, t->nparts);
        } else {
            ok = true;
            existing[nexisting++] = (int)(t - m->topics_v);
        }
        if (ok) {
            t->ready = true;
            m->assign_needed = true;
            /* Teach the producer the new topic's leaders now: otherwise the
             * first cycle waits about a second for librdkafka to look the
             * topic up on its own. */
            rd_kafka_topic_t *rkt = rd_kafka_topic_new(m->prod, t->dst, NULL);
            const struct rd_kafka_metadata *md = NULL;
            if (rkt && rd_kafka_metadata(m->prod, 0, rkt, &md, m->timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_metadata_destroy(md);
            if (rkt)
                rd_kafka_topic_destroy(rkt);
        }
    }
    rd_kafka_metadata_destroy(smd);
    rd_kafka_metadata_destroy(tmd);
    /* Topics that existed on the target already get their configs checked
     * at once (a restart must not wait sync.topic.configs.interval). */
    if (configs && m->s.sync_configs && nexisting > 0)
        sync_configs(m, existing, nexisting);
    free(existing);
    return true;
}

/* Assigns every ready partition: from the acknowledged position if this
 * process knows it, else from the committed one (auto.offset.reset=earliest
 * when the mirror group has none). Called only between cycles. */
static bool assign(mirror *m) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    for (int i = 0; i < m->ntopics; i++) {
        mtopic *t = &m->topics_v[i];
        for (int p = 0; t->ready && p < t->nparts; p++)
            rd_kafka_topic_partition_list_add(l, t->src, p)->offset =
                t->parts[p].acked >= 0 ? t->parts[p].acked : RD_KAFKA_OFFSET_STORED;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(m->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        cli_err("mirror", "cannot assign source partitions: %s", rd_kafka_err2str(e));
        return false;
    }
    m->assign_needed = false;
    return true;
}

/* ---- internal records ------------------------------------------------- */

static void produce_internal(mirror *m, rd_kafka_t *rk, const char *topic, const uint8_t *k, size_t kl,
                             const uint8_t *v, size_t vl) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(k, kl), RD_KAFKA_V_VALUE((void *)v, vl), RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
    if (e)
        m->internal_errors++;
}

static void emit_offset_sync(mirror *m, const mpart *p, int64_t up, int64_t down) {
    uint8_t k[MM2_NAME_MAX + 16], v[16];
    size_t kl = mm2_offset_sync_key(k, sizeof k, p->t->src, p->partition);
    size_t vl = mm2_offset_sync_value(v, sizeof v, up, down);
    if (kl && vl)
        produce_internal(m, m->sprod ? m->sprod : m->prod, m->syncs_topic, k, kl, v, vl);
}

static void emit_heartbeat(mirror *m) {
    uint8_t k[2 * MM2_NAME_MAX + 8], v[16];
    size_t kl = mm2_heartbeat_key(k, sizeof k, m->s.source_alias, m->s.target_alias);
    size_t vl = mm2_heartbeat_value(v, sizeof v, cli_wall_ms());
    if (kl && vl)
        produce_internal(m, m->prod, "heartbeats", k, kl, v, vl);
}

/* ---- the copy cycle --------------------------------------------------- */

static mpart *find_part(mirror *m, mtopic **cache, const char *topic, int32_t partition) {
    if (*cache == NULL || strcmp((*cache)->src, topic) != 0)
        *cache = find_topic(m, topic);
    if (*cache == NULL || partition < 0 || partition >= (*cache)->nparts)
        return NULL;
    return &(*cache)->parts[partition];
}

/* Commits the acknowledged positions that are ahead of the committed ones.
 * A failure is reported and retried at the next cycle (the records stay
 * acknowledged; a kill before the retry only copies them again). */
static void commit(mirror *m) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < m->ntopics; i++) {
        mtopic *t = &m->topics_v[i];
        for (int p = 0; p < t->nparts; p++) {
            if (t->parts[p].acked > t->parts[p].committed)
                rd_kafka_topic_partition_list_add(l, t->src, p)->offset = t->parts[p].acked;
        }
    }
    if (l->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(l);
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(m->cons, l, m->cq, NULL, NULL);
    int64_t deadline = cli_now_us() + (int64_t)m->timeout_ms * 1000;
    while (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (cli_now_us() > deadline) {
            e = RD_KAFKA_RESP_ERR__TIMED_OUT;
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(m->cq, 100);
        if (ev == NULL)
            continue;
        if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
            rd_kafka_event_destroy(ev);
            continue;
        }
        e = rd_kafka_event_error(ev);
        const rd_kafka_topic_partition_list_t *res = rd_kafka_event_topic_partition_list(ev);
        for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && res && i < res->cnt; i++) {
            mtopic *t = find_topic(m, res->elems[i].topic);
            if (res->elems[i].err)
                e = res->elems[i].err;
            else if (t && res->elems[i].partition < t->nparts)
                t->parts[res->elems[i].partition].committed = res->elems[i].offset;
        }
        rd_kafka_event_destroy(ev);
        break;
    }
    if (e)
        cli_err("mirror", "committing the mirror's progress failed (retried next cycle): %s",
                rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Waits for every delivery report of the cycle, up to flush.timeout.ms. */
static bool flush_all(mirror *m) {
    rd_kafka_resp_err_t e = rd_kafka_flush(m->prod, (int)m->s.flush_timeout_ms);
    if (m->sprod)
        rd_kafka_flush(m->sprod, 1000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return true;
    cli_err("mirror", "the target did not acknowledge %d records within %lld ms", rd_kafka_outq_len(m->prod),
            (long long)m->s.flush_timeout_ms);
    rd_kafka_purge(m->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* Purged messages get their delivery reports (with an error) from poll;
     * wait for them so no slot is written after the cycle ends. */
    for (int i = 0; i < 100 && rd_kafka_outq_len(m->prod) > 0; i++)
        rd_kafka_poll(m->prod, 50);
    return false;
}

/* One cycle. CLI_OK, or CLI_EFAIL when the session must restart. */
static int cycle(mirror *m) {
    int n = 0;
    int64_t bytes = 0, start = cli_now_us();
    mtopic *cache = NULL;
    int rc = CLI_OK;
    while (n < MIRROR_CYCLE_RECORDS && bytes < MIRROR_CYCLE_BYTES && !cli_stop) {
        /* Take what the consumer has prefetched; a cycle ends when that runs
         * dry (or at a cap), so copies are acknowledged and committed while
         * the consumer's fetcher keeps reading ahead. */
        if (n > 0 && cli_now_us() - start > MIRROR_CYCLE_MS * 1000)
            break;
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->cons, n > 0 ? 0 : MIRROR_CYCLE_MS);
        if (msg == NULL)
            break; /* idle (n == 0: let the periodic work run) or drained */
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && msg->err != RD_KAFKA_RESP_ERR__TRANSPORT &&
                msg->err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
                cli_err("mirror", "source: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        mpart *p = find_part(m, &cache, rd_kafka_topic_name(msg->rkt), msg->partition);
        if (p == NULL || msg->offset < p->acked) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        mslot *sl = &m->slots[n];
        *sl = (mslot){.p = p, .up = msg->offset, .down = -1};
        rd_kafka_headers_t *h = NULL, *hc = NULL;
        if (rd_kafka_message_headers(msg, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
            hc = rd_kafka_headers_copy(h);
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(msg, &tt);
        rd_kafka_resp_err_t e;
        int64_t deadline = cli_now_us() + m->s.flush_timeout_ms * 1000;
        for (;;) {
            e = rd_kafka_producev(
                m->prod, RD_KAFKA_V_TOPIC(p->t->dst), RD_KAFKA_V_PARTITION(p->partition),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(msg->key, msg->key_len),
                RD_KAFKA_V_VALUE(msg->payload, msg->len), RD_KAFKA_V_TIMESTAMP(ts > 0 ? ts : 0),
                RD_KAFKA_V_HEADERS(hc), RD_KAFKA_V_OPAQUE(sl), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || cli_now_us() > deadline)
                break;
            rd_kafka_poll(m->prod, 50);
        }
        bytes += (int64_t)(msg->len + msg->key_len);
        if (e) {
            if (hc)
                rd_kafka_headers_destroy(hc); /* not consumed on failure */
            cli_err("mirror", "cannot produce to '%s' partition %d: %s", p->t->dst, p->partition,
                    rd_kafka_err2str(e));
            rd_kafka_message_destroy(msg);
            rc = CLI_EFAIL;
            break;
        }
        rd_kafka_message_destroy(msg);
        n++;
    }
    if (n == 0 && rc == CLI_OK)
        return CLI_OK;
    if (!flush_all(m))
        return CLI_EFAIL;
    for (int i = 0; i < n; i++) {
        if (!m->slots[i].done || m->slots[i].err) {
            mslot *sl = &m->slots[i];
            cli_err("mirror", "target did not take the copy of '%s' partition %d offset %lld: %s",
                    sl->p->t->src, sl->p->partition, (long long)sl->up,
                    sl->done ? rd_kafka_err2str(sl->err) : "no report");
            return CLI_EFAIL;
        }
    }
    if (rc != CLI_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        mslot *sl = &m->slots[i];
        mpart *p = sl->p;
        assert(sl->up >= p->acked);
        bool new_run = mm2_runs_add(&p->runs, sl->up, sl->down);
        if (new_run || p->synced_up < 0 || sl->up - p->synced_up >= m->s.offset_lag_max) {
            emit_offset_sync(m, p, sl->up, sl->down);
            p->synced_up = sl->up;
        }
        p->acked = sl->up + 1;
    }
    m->copied += n;
    m->copied_bytes += bytes;
    commit(m);
    return CLI_OK;
}

/* ---- consumer groups -------------------------------------------------- */

typedef struct gsync {
    char *group;
    rd_kafka_topic_partition_list_t *down; /* translated offsets, target topic names */
} gsync;

static rd_kafka_topic_partition_list_t *group_offsets(rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o,
                                                      const char *group) {
    rd_kafka_AdminOptions_t *ao = kc_admin_options(o, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, ao, q);
    rd_kafka_topic_partition_list_t *out = NULL;
    int rc;
    rd_kafka_event_t *ev = kc_wait(o, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        if (n == 1 && rd_kafka_group_result_error(gr[0]) == NULL && rd_kafka_group_result_partitions(gr[0]))
            out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(ao);
    return out;
}

/* True if the target group has no active members (Empty, Dead or unknown):
 * MM2 syncs offsets only into groups nobody is consuming with. */
static bool target_group_idle(mirror *m, const char *group) {
    const char *groups[1] = {group};
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&m->to, m->prod, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(m->prod, groups, 1, ao, m->tq);
    bool idle = false;
    int rc;
    rd_kafka_event_t *ev = kc_wait(&m->to, m->tq, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_ConsumerGroupDescription_t **ds = rd_kafka_DescribeConsumerGroups_result_groups(
            rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        if (n == 1) {
            const rd_kafka_error_t *err = rd_kafka_ConsumerGroupDescription_error(ds[0]);
            rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(ds[0]);
            idle = (err && rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) ||
                   (!err &&
                    (st == RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY || st == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD ||
                     rd_kafka_ConsumerGroupDescription_member_count(ds[0]) == 0));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(ao);
    return idle;
}

static void commit_target_group(mirror *m, const char *group, const rd_kafka_topic_partition_list_t *down) {
    if (!target_group_idle(m, group))
        return;
    rd_kafka_topic_partition_list_t *cur = group_offsets(m->prod, m->tq, &m->to, group);
    rd_kafka_topic_partition_list_t *plan = rd_kafka_topic_partition_list_new(down->cnt);
    for (int i = 0; i < down->cnt; i++) {
        const rd_kafka_topic_partition_t *d = &down->elems[i];
        const rd_kafka_topic_partition_t *c =
            cur ? rd_kafka_topic_partition_list_find(cur, d->topic, d->partition) : NULL;
        /* Never move a target group backwards: it may have consumed there. */
        if (c == NULL || c->offset < 0 || d->offset > c->offset)
            rd_kafka_topic_partition_list_add(plan, d->topic, d->partition)->offset = d->offset;
    }
    if (cur)
        rd_kafka_topic_partition_list_destroy(cur);
    if (plan->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(plan);
        return;
    }
    rd_kafka_AdminOptions_t *ao =
        kc_admin_options(&m->to, m->prod, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    rd_kafka_AlterConsumerGroupOffsets_t *req = rd_kafka_AlterConsumerGroupOffsets_new(group, plan);
    rd_kafka_AlterConsumerGroupOffsets(m->prod, &req, 1, ao, m->tq);
    int rc;
    rd_kafka_event_t *ev = kc_wait(&m->to, m->tq, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
            rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
        if (n == 1 && rd_kafka_group_result_error(gr[0]) == NULL)
            m->group_commits += plan->cnt;
        else
            cli_err("mirror", "cannot sync offsets of group '%s' to the target: %s", group,
                    n == 1 ? rd_kafka_error_string(rd_kafka_group_result_error(gr[0])) : "no result");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_topic_partition_list_destroy(plan);
}

/* Translates every selected source group's committed offsets on mirrored
 * partitions; emits a checkpoint for each (if emit) and commits them to the
 * target group (if sync). */
static void groups_pass(mirror *m, bool emit, bool sync) {
    rd_kafka_AdminOptions_t *ao = kc_admin_options(&m->so, m->cons, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_ListConsumerGroups(m->cons, ao, m->sq);
    rd_kafka_AdminOptions_destroy(ao);
    int rc;
    rd_kafka_event_t *ev = kc_wait(&m->so, m->sq, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, &rc);
    if (ev == NULL)
        return;
    size_t n;
    const rd_kafka_ConsumerGroupListing_t **gs =
        rd_kafka_ListConsumerGroups_result_valid(rd_kafka_event_ListConsumerGroups_result(ev), &n);
    char **names = calloc(n ? n : 1, sizeof *names);
    int ng = 0;
    for (size_t i = 0; i < n && ng < MIRROR_MAX_GROUPS; i++) {
        const char *g = rd_kafka_ConsumerGroupListing_group_id(gs[i]);
        if (group_selected(m, g))
            names[ng++] = strdup(g);
    }
    rd_kafka_event_destroy(ev);
    for (int gi = 0; gi < ng && !cli_stop; gi++) {
        rd_kafka_topic_partition_list_t *up = group_offsets(m->cons, m->sq, &m->so, names[gi]);
        if (up == NULL)
            continue;
        rd_kafka_topic_partition_list_t *down = rd_kafka_topic_partition_list_new(up->cnt);
        for (int i = 0; i < up->cnt; i++) {
            const rd_kafka_topic_partition_t *u = &up->elems[i];
            mtopic *t = find_topic(m, u->topic);
            if (t == NULL || u->partition < 0 || u->partition >= t->nparts || u->offset < 0)
                continue;
            int64_t d = mm2_runs_translate(&t->parts[u->partition].runs, u->offset);
            if (d < 0)
                continue; /* nothing copied from this partition by this process yet */
            rd_kafka_topic_partition_list_add(down, t->dst, u->partition)->offset = d;
            if (emit) {
                uint8_t k[2 * CLI_ARG_MAX], v[CLI_ARG_MAX];
                size_t kl = mm2_checkpoint_key(k, sizeof k, names[gi], t->dst, u->partition);
                size_t vl = mm2_checkpoint_value(v, sizeof v, u->offset, d,
                                                 u->metadata ? (const char *)u->metadata : "");
                if (kl && vl) {
                    produce_internal(m, m->prod, m->ckpt_topic, k, kl, v, vl);
                    m->checkpoints++;
                }
            }
        }
        if (sync && down->cnt > 0)
            commit_target_group(m, names[gi], down);
        rd_kafka_topic_partition_list_destroy(down);
        rd_kafka_topic_partition_list_destroy(up);
    }
    for (int i = 0; i < ng; i++)
        free(names[i]);
    free(names);
}

/* ---- status ----------------------------------------------------------- */

static void status(mirror *m, bool force) {
    int64_t now = cli_now_us();
    bool tty = cli_progress_enabled();
    int64_t every = tty ? 500000 : m->s.status_ms * 1000;
    if (!force && now - m->last_status_us < every)
        return;
    double secs = m->last_status_us ? (double)(now - m->last_status_us) / 1e6 : 0;
    int64_t lag = 0, maxlag = 0;
    int nparts = 0;
    const char *maxt = "-";
    int32_t maxp = -1;
    for (int i = 0; i < m->ntopics; i++) {
        mtopic *t = &m->topics_v[i];
        for (int p = 0; p < t->nparts; p++) {
            int64_t lo = -1, hi = -1;
            nparts++;
            if (m->cons == NULL ||
                rd_kafka_get_watermark_offsets(m->cons, t->src, p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < 0)
                continue;
            int64_t pos = t->parts[p].acked >= 0 ? t->parts[p].acked : (lo >= 0 ? lo : 0);
            int64_t l = hi > pos ? hi - pos : 0;
            lag += l;
            if (l > maxlag) {
                maxlag = l;
                maxt = t->src;
                maxp = p;
            }
        }
    }
    double rps = secs > 0 ? (double)(m->copied - m->last_copied) / secs : 0;
    double mbs = secs > 0 ? (double)(m->copied_bytes - m->last_bytes) / secs / 1e6 : 0;
    char line[512], worst[MM2_NAME_MAX + 64] = "";
    if (maxlag > 0)
        snprintf(worst, sizeof worst, " (max %lld on %s-%d)", (long long)maxlag, maxt, maxp);
    snprintf(line, sizeof line,
             "%lld records copied, %.0f rec/s, %.2f MB/s, lag %lld%s, %d topics, %d partitions, "
             "%lld checkpoints, %lld restarts",
             (long long)m->copied, rps, mbs, (long long)lag, worst, m->ntopics, nparts,
             (long long)m->checkpoints, (long long)m->restarts);
    if (tty)
        cli_progress(true, "%s", line);
    else
        fprintf(stderr, "sluice mirror: %s\n", line);
    m->last_status_us = now;
    m->last_copied = m->copied;
    m->last_bytes = m->copied_bytes;
}

/* ---- sessions --------------------------------------------------------- */

static rd_kafka_t *new_client(mirror *m, const kc_opts *o, const char *file, rd_kafka_type_t type) {
    rd_kafka_conf_t *conf = kc_conf(o);
    if (conf == NULL)
        return NULL;
    char err[512], cid[2 * MIRROR_ALIAS_MAX + 32];
    snprintf(cid, sizeof cid, "sluice-mirror-%s-%s", m->s.source_alias, m->s.target_alias);
    const char *prod[][2] = {
        {"client.id", cid},
        {"acks", "all"},
        /* One request in flight per connection keeps each partition's copies
         * in source order even when a request is retried. */
        {"max.in.flight.requests.per.connection", "1"},
        {"linger.ms", "5"},
        {"batch.size", "1000000"},
        {"message.timeout.ms", "30000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "262144"},
        {"message.max.bytes", "16777216"},
    };
    const char *cons[][2] = {
        {"client.id", cid},
        {"group.id", m->s.mirror_group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"fetch.max.bytes", "52428800"},
        /* librdkafka 2.0 stops fetching when its prefetch queue holds
         * queued.min.messages (default 100000, fewer than one cycle) and
         * looks again only about a second later, which would idle a mirror
         * catching up for most of the time. The prefetch stays bounded by
         * queued.max.messages.kbytes. */
        {"queued.min.messages", "2000000"},
        {"queued.max.messages.kbytes", "65536"},
        {"fetch.error.backoff.ms", "10"},
    };
    const char *(*tab)[2] = type == RD_KAFKA_PRODUCER ? prod : cons;
    size_t nt = type == RD_KAFKA_PRODUCER ? sizeof prod / sizeof prod[0] : sizeof cons / sizeof cons[0];
    for (size_t i = 0; i < nt; i++) {
        if (rd_kafka_conf_set(conf, tab[i][0], tab[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            cli_err("mirror", "%s=%s: %s", tab[i][0], tab[i][1], err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    /* The user's file last, so its settings win (security, tuning) - except
     * the ones the guarantees rest on, set again below. */
    if (file && !kc_conf_apply_file(o, conf, file)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
        rd_kafka_conf_set(conf, "group.id", m->s.mirror_group, err, sizeof err);
    } else {
        rd_kafka_conf_set(conf, "acks", "all", err, sizeof err);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, m);
    }
    return kc_new(o, type, conf);
}

static void end_session(mirror *m) {
    rd_kafka_t *ps[2] = {m->prod, m->sprod};
    for (int i = 0; i < 2; i++) {
        if (ps[i] == NULL)
            continue;
        rd_kafka_purge(ps[i], RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(ps[i], 0);
    }
    rd_kafka_queue_t *qs[3] = {m->cq, m->sq, m->tq};
    for (int i = 0; i < 3; i++) {
        if (qs[i])
            rd_kafka_queue_destroy(qs[i]);
    }
    m->cq = m->sq = m->tq = NULL;
    if (m->cons)
        rd_kafka_destroy_flags(m->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (m->prod)
        rd_kafka_destroy(m->prod);
    if (m->sprod)
        rd_kafka_destroy(m->sprod);
    m->cons = m->prod = m->sprod = NULL;
}

/* Reads the offset syncs earlier runs wrote (the whole topic, up to the high
 * watermark at the start, bounded by 2 x --timeout-ms) into the offset maps
 * of partitions that have none yet, so a restarted mirror can translate
 * group offsets it did not copy itself. Best effort: a sync topic that
 * cannot be read only means coarser (never unsafe) translations until new
 * records are copied. */
static void load_offset_syncs(mirror *m) {
    bool any_empty = false;
    for (int i = 0; i < m->ntopics && !any_empty; i++) {
        for (int p = 0; p < m->topics_v[i].nparts && !any_empty; p++)
            any_empty = m->topics_v[i].parts[p].runs.n == 0;
    }
    if (!any_empty)
        return;
    const kc_opts *o = m->s.syncs_on_target ? &m->to : &m->so;
    rd_kafka_t *rk =
        new_client(m, o, m->s.syncs_on_target ? m->s.target_file : m->s.source_file, RD_KAFKA_CONSUMER);
    if (rk == NULL)
        return;
    rd_kafka_poll_set_consumer(rk);
    int64_t lo = 0, hi = 0, loaded = 0;
    bool *fresh = NULL; /* partitions whose map this load fills, by flat index */
    if (rd_kafka_query_watermark_offsets(rk, m->syncs_topic, 0, &lo, &hi, m->timeout_ms) || hi <= lo)
        goto out;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, m->syncs_topic, 0)->offset = lo;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t deadline = cli_now_us() + 2LL * m->timeout_ms * 1000;
    /* Only partitions empty at the start are filled, so a sync never goes
     * into a map this process is already extending. */
    int total = 0;
    for (int i = 0; i < m->ntopics; i++)
        total += m->topics_v[i].nparts;
    fresh = calloc((size_t)total + 1, sizeof *fresh);
    for (int i = 0, k = 0; i < m->ntopics; i++) {
        for (int p = 0; p < m->topics_v[i].nparts; p++, k++)
            fresh[k] = m->topics_v[i].parts[p].runs.n == 0;
    }
    int64_t next = lo;
    while (next < hi && !cli_stop && cli_now_us() < deadline) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
        if (msg == NULL)
            continue;
        mm2_offset_sync os;
        if (msg->err == 0) {
            next = msg->offset + 1;
            if (mm2_offset_sync_decode(msg->key, msg->key_len, msg->payload, msg->len, &os) &&
                os.topic.len > 0 && os.topic.len <= MM2_NAME_MAX && os.upstream >= 0 && os.downstream >= 0) {
                char name[MM2_NAME_MAX + 1];
                memcpy(name, os.topic.ptr, (size_t)os.topic.len);
                name[os.topic.len] = '\0';
                mtopic *t = find_topic(m, name);
                if (t && os.partition >= 0 && os.partition < t->nparts) {
                    int k = 0;
                    for (mtopic *u = m->topics_v; u < t; u++)
                        k += u->nparts;
                    if (fresh[k + os.partition]) {
                        mm2_runs_add(&t->parts[os.partition].runs, os.upstream, os.downstream);
                        loaded++;
                    }
                }
            }
        }
        rd_kafka_message_destroy(msg);
    }
    fprintf(stderr, "sluice mirror: loaded %lld offset syncs from %s%s\n", (long long)loaded, m->syncs_topic,
            next < hi ? " (stopped early: timeout)" : "");
out:
    free(fresh);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* Runs one session: connect, set up, copy until stopped or a side fails.
 * CLI_OK when stopped by a signal; otherwise the reason to retry. */
static int session(mirror *m) {
    int rc = kc_probe(&m->so);
    if (rc == CLI_OK)
        rc = kc_probe(&m->to);
    if (rc != CLI_OK)
        return rc;
    m->cons = new_client(m, &m->so, m->s.source_file, RD_KAFKA_CONSUMER);
    m->prod = m->cons ? new_client(m, &m->to, m->s.target_file, RD_KAFKA_PRODUCER) : NULL;
    if (m->prod && !m->s.syncs_on_target)
        m->sprod = new_client(m, &m->so, m->s.source_file, RD_KAFKA_PRODUCER);
    if (m->cons == NULL || m->prod == NULL || (!m->s.syncs_on_target && m->sprod == NULL))
        return CLI_EUSAGE;
    rd_kafka_poll_set_consumer(m->cons);
    m->cq = rd_kafka_queue_new(m->cons);
    m->sq = rd_kafka_queue_new(m->cons);
    m->tq = rd_kafka_queue_new(m->prod);
    int rf = (int)m->s.replication_factor;
    if (!ensure_internal(m->s.syncs_on_target ? m->prod : m->cons, m->s.syncs_on_target ? m->tq : m->sq,
                         m->s.syncs_on_target ? &m->to : &m->so, m->syncs_topic, rf) ||
        (m->s.emit_checkpoints && !ensure_internal(m->prod, m->tq, &m->to, m->ckpt_topic, rf)) ||
        (m->s.emit_heartbeats && !ensure_internal(m->prod, m->tq, &m->to, "heartbeats", rf)))
        return CLI_EUNREACH;
    for (int i = 0; i < m->ntopics; i++)
        m->topics_v[i].ready = false; /* the target may have changed while we were away */
    if (!refresh_topics(m, true))
        return CLI_EUNREACH;
    load_offset_syncs(m);
    int64_t now = cli_now_us();
    m->next_refresh_us = now + m->s.refresh_topics_s * 1000000;
    m->next_configs_us = now + m->s.sync_configs_s * 1000000;
    m->next_ckpt_us = now + m->s.emit_checkpoints_s * 1000000;
    m->next_groups_us = now + m->s.sync_groups_s * 1000000;
    m->next_hb_us = now;
    while (!cli_stop) {
        if (m->assign_needed && !assign(m))
            return CLI_EFAIL;
        if ((rc = cycle(m)) != CLI_OK)
            return rc;
        now = cli_now_us();
        if (m->s.refresh_topics && now >= m->next_refresh_us) {
            refresh_topics(m, false);
            m->next_refresh_us = now + m->s.refresh_topics_s * 1000000;
        }
        if (m->s.sync_configs && now >= m->next_configs_us) {
            int *idx = calloc((size_t)m->ntopics + 1, sizeof *idx), n = 0;
            for (int i = 0; i < m->ntopics; i++) {
                if (m->topics_v[i].ready)
                    idx[n++] = i;
            }
            sync_configs(m, idx, n);
            free(idx);
            m->next_configs_us = now + m->s.sync_configs_s * 1000000;
        }
        if (m->s.emit_heartbeats && now >= m->next_hb_us) {
            emit_heartbeat(m);
            m->next_hb_us = now + m->s.heartbeats_s * 1000000;
        }
        bool ck = m->s.emit_checkpoints && now >= m->next_ckpt_us;
        bool gs = m->s.sync_groups && now >= m->next_groups_us;
        if (ck || gs) {
            groups_pass(m, ck, gs);
            if (ck)
                m->next_ckpt_us = now + m->s.emit_checkpoints_s * 1000000;
            if (gs)
                m->next_groups_us = now + m->s.sync_groups_s * 1000000;
        }
        rd_kafka_poll(m->prod, 0);
        status(m, false);
    }
    /* Stopped: internal records out (bounded), progress committed. */
    rd_kafka_flush(m->prod, 5000);
    commit(m);
    return CLI_OK;
}

/* Reads bootstrap.servers from a client properties file into buf. */
static bool file_bootstrap(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[CLI_ARG_MAX];
    bool found = false;
    for (int n = 0; !found && n < 10000 && fgets(line, sizeof line, f); n++) {
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "bootstrap.servers", 17) != 0)
            continue;
        p += 17;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        found = strlen(p) < cap && *p != '\0';
        if (found)
            strcpy(buf, p);
    }
    fclose(f);
    return found;
}

/* ---- entry ------------------------------------------------------------ */

int cmd_mirror(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "dump") == 0)
        return cmd_mirror_dump(argc - 1, argv + 1);
    enum {
        O_SOURCE = 1,
        O_TARGET,
        O_SALIAS,
        O_TALIAS,
        O_TOPICS,
        O_TOPICS_EX,
        O_GROUPS,
        O_GROUPS_EX,
        O_POLICY,
        O_SET,
        O_MCONF,
        O_STATUS,
        O_TIMEOUT,
    };
    static const struct option opts[] = {
        {"source", required_argument, NULL, O_SOURCE},
        {"target", required_argument, NULL, O_TARGET},
        {"source-alias", required_argument, NULL, O_SALIAS},
        {"target-alias", required_argument, NULL, O_TALIAS},
        {"topics", required_argument, NULL, O_TOPICS},
        {"topics-exclude", required_argument, NULL, O_TOPICS_EX},
        {"groups", required_argument, NULL, O_GROUPS},
        {"groups-exclude", required_argument, NULL, O_GROUPS_EX},
        {"replication-policy", required_argument, NULL, O_POLICY},
        {"set", required_argument, NULL, O_SET},
        {"mirror-config", required_argument, NULL, O_MCONF},
        {"status-interval-ms", required_argument, NULL, O_STATUS},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static mirror m;
    memset(&m, 0, sizeof m);
    settings_defaults(&m.s);
    m.timeout_ms = 15000;
    int ch, rc = CLI_OK;
    int64_t v;
    optind = 1;
    opterr = 0;
    while (rc == CLI_OK && (ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case O_SOURCE:
            m.s.source_file = optarg;
            break;
        case O_TARGET:
            m.s.target_file = optarg;
            break;
        case O_SALIAS:
            rc = apply_setting(&m.s, "source.cluster.alias", optarg);
            break;
        case O_TALIAS:
            rc = apply_setting(&m.s, "target.cluster.alias", optarg);
            break;
        case O_TOPICS:
            rc = apply_setting(&m.s, "topics", optarg);
            break;
        case O_TOPICS_EX:
            rc = apply_setting(&m.s, "topics.exclude", optarg);
            break;
        case O_GROUPS:
            rc = apply_setting(&m.s, "groups", optarg);
            break;
        case O_GROUPS_EX:
            rc = apply_setting(&m.s, "groups.exclude", optarg);
            break;
        case O_POLICY:
            rc = apply_setting(&m.s, "replication.policy.class", optarg);
            break;
        case O_SET:
            rc = apply_kv(&m.s, optarg);
            break;
        case O_MCONF:
            rc = apply_file(&m.s, optarg);
            break;
        case O_STATUS:
            if (!cli_parse_i64(optarg, 100, 3600000, &v))
                return cli_usage_err("mirror", "--status-interval-ms: expected 100..3600000, got '%s'",
                                     optarg);
            m.s.status_ms = v;
            break;
        case O_TIMEOUT:
            if (!cli_parse_i64(optarg, 100, 3600000, &v))
                return cli_usage_err("mirror", "--timeout-ms: expected 100..3600000, got '%s'", optarg);
            m.timeout_ms = (int)v;
            break;
        case 'h':
            fputs(mirror_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("mirror", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("mirror", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc != CLI_OK)
        return rc;
    if (optind < argc)
        return cli_usage_err("mirror", "unexpected argument '%s'", argv[optind]);
    if (m.s.source_file == NULL || m.s.target_file == NULL)
        return cli_usage_err("mirror", "--source and --target are required");
    if (m.s.source_alias[0] == '\0' || m.s.target_alias[0] == '\0' ||
        strcmp(m.s.source_alias, m.s.target_alias) == 0)
        return cli_usage_err("mirror", "the source and target aliases must be non-empty and differ");
    if (!m.s.policy.identity && m.s.policy.separator[0] == '\0')
        return cli_usage_err("mirror", "replication.policy.separator must not be empty");
    static char sboot[CLI_ARG_MAX], tboot[CLI_ARG_MAX];
    if (!file_bootstrap(m.s.source_file, sboot, sizeof sboot))
        return cli_usage_err("mirror", "--source %s: no bootstrap.servers (or the file cannot be read)",
                             m.s.source_file);
    if (!file_bootstrap(m.s.target_file, tboot, sizeof tboot))
        return cli_usage_err("mirror", "--target %s: no bootstrap.servers (or the file cannot be read)",
                             m.s.target_file);
    if (m.s.mirror_group[0] == '\0')
        snprintf(m.s.mirror_group, sizeof m.s.mirror_group, "sluice-mirror-%s-%s", m.s.source_alias,
                 m.s.target_alias);
    snprintf(m.syncs_topic, sizeof m.syncs_topic, "mm2-offset-syncs.%s.internal", m.s.target_alias);
    snprintf(m.ckpt_topic, sizeof m.ckpt_topic, "%s.checkpoints.internal", m.s.source_alias);
    if ((rc = compile_patterns(&m.topics, "topics", m.s.topics)) != CLI_OK ||
        (rc = compile_patterns(&m.topics_ex, "topics.exclude", m.s.topics_exclude)) != CLI_OK ||
        (rc = compile_patterns(&m.groups, "groups", m.s.groups)) != CLI_OK ||
        (rc = compile_patterns(&m.groups_ex, "groups.exclude", m.s.groups_exclude)) != CLI_OK ||
        (rc = compile_patterns(&m.config_ex, "config.properties.exclude", m.s.config_exclude)) != CLI_OK)
        goto out;
    m.so = (kc_opts){.cmd = "mirror", .bootstrap = sboot, .timeout_ms = m.timeout_ms};
    m.to = (kc_opts){.cmd = "mirror", .bootstrap = tboot, .timeout_ms = m.timeout_ms};
    m.topics_v = calloc(MIRROR_MAX_TOPICS, sizeof *m.topics_v);
    m.slots = calloc(MIRROR_CYCLE_RECORDS, sizeof *m.slots);
    fprintf(stderr, "sluice mirror: %s (%s) -> %s (%s), progress group '%s'\n", m.s.source_alias, sboot,
            m.s.target_alias, tboot, m.s.mirror_group);
    cli_catch_signals();
    int64_t backoff = MIRROR_BACKOFF_MIN_MS;
    while (!cli_stop) {
        int64_t began = cli_now_us();
        rc = session(&m);
        end_session(&m);
        if (cli_stop || rc == CLI_EUSAGE)
            break;
        if (cli_now_us() - began > 60 * 1000000LL)
            backoff = MIRROR_BACKOFF_MIN_MS; /* it ran a while: a fresh failure */
        m.restarts++;
        cli_progress_done();
        fprintf(stderr, "sluice mirror: session ended (%s); retrying in %lld ms\n",
                rc == CLI_EUNREACH ? "a cluster is unreachable" : "a copy or commit failed",
                (long long)backoff);
        for (int64_t slept = 0; slept < backoff && !cli_stop; slept += 100)
            usleep(100000);
        backoff = backoff * 2 > MIRROR_BACKOFF_MAX_MS ? MIRROR_BACKOFF_MAX_MS : backoff * 2;
    }
    if (rc != CLI_EUSAGE) {
        status(&m, true);
        cli_progress_done();
        fprintf(stderr, "sluice mirror: stopped; %lld records copied, %lld restarts\n", (long long)m.copied,
                (long long)m.restarts);
        rc = CLI_OK;
    }
out:
    free_patterns(&m.topics);
    free_patterns(&m.topics_ex);
    free_patterns(&m.groups);
    free_patterns(&m.groups_ex);
    free_patterns(&m.config_ex);
    for (int i = 0; m.topics_v && i < m.ntopics; i++)
        free(m.topics_v[i].parts);
    free(m.topics_v);
    free(m.slots);
    return rc;
}
