/*
 * mirror_topics.c - which source topics `sluice mirror` copies and how their twins on the
 * target are kept: created with the source's partition count and topic
 * configs, grown when the source grows, configs synced, and the source
 * consumer's assignment.
 * See tools/mirror.h for how the modules fit together.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/mirror.h"

/* ---- selection --------------------------------------------------------- */

mtopic *mirror_find_topic(mirror *m, const char *src) {
    for (int i = 0; i < m->ntopics; i++) {
        if (strcmp(m->topics_v[i].src, src) == 0)
            return &m->topics_v[i];
    }
    return NULL;
}

bool mirror_topic_selected(const mirror *m, const char *name) {
    const mm2_policy *p = &m->s.policy;
    if (mm2_is_internal(name) || mm2_is_cycle(p, name, m->s.target_alias))
        return false;
    if (mm2_is_heartbeats(p, name)) /* MM2 mirrors heartbeats whatever the filter says */
        return true;
    return mirror_matches(&m->topics, name) && !mirror_matches(&m->topics_ex, name);
}

/* ---- admin helpers ---------------------------------------------------- */

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
    if (n <= 0)
        return;
    rd_kafka_ConfigResource_t **res = calloc((size_t)n, sizeof *res);
    if (res == NULL)
        return;
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
                if (!all && mirror_matches(&m->config_ex, k))
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
        if (mirror_matches(&m->config_ex, keep->k[i]))
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
        dn += !mirror_matches(&m->config_ex, dst->k[i]);
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

bool mirror_ensure_internal(rd_kafka_t *rk, rd_kafka_queue_t *q, const kc_opts *o, const char *name, int rf) {
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
void mirror_sync_configs(mirror *m, const int *idx, int n) {
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
bool mirror_refresh_topics(mirror *m, bool configs) {
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
        if (st->err || st->partition_cnt <= 0 || !mirror_topic_selected(m, st->topic))
            continue;
        mtopic *t = mirror_find_topic(m, st->topic);
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
        mirror_sync_configs(m, existing, nexisting);
    free(existing);
    return true;
}

/* Assigns every ready partition: from the acknowledged position if this
 * process knows it, else from the committed one (auto.offset.reset=earliest
 * when the mirror group has none). Called only between cycles. */
bool mirror_assign(mirror *m) {
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
