/*
 * mirror_groups.c - consumer group offsets across the mirror: each selected source group's
 * committed offsets on mirrored partitions are translated with the offset
 * map (tools/mm2.h), written as MM2 checkpoints to the target, and, with
 * sync.group.offsets.enabled, committed to the target group while it has no
 * active members, never backwards.
 * See tools/mirror.h for how the modules fit together.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/mirror.h"

/* ---- consumer groups -------------------------------------------------- */

bool mirror_group_selected(const mirror *m, const char *g) {
    return strcmp(g, m->s.mirror_group) != 0 && mirror_matches(&m->groups, g) &&
           !mirror_matches(&m->groups_ex, g);
}

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
void mirror_groups_pass(mirror *m, bool emit, bool sync) {
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
        if (mirror_group_selected(m, g))
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
            mtopic *t = mirror_find_topic(m, u->topic);
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
                    mirror_produce_internal(m, m->iprod, m->ckpt_topic, k, kl, v, vl);
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
