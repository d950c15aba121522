/*
 * api_groups.c - the group coordinator's Kafka APIs: FindCoordinator,
 * JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
 * DescribeGroups, ListGroups, DeleteGroups, OffsetDelete.
 *
 * Each handler translates the decoded request into calls on the state
 * machine of the group's shard (groups.h) under the shard's lock and copies
 * what it needs from the machine into the response (the request's arena)
 * before unlocking. JoinGroup, SyncGroup, OffsetCommit, DeleteGroups and
 * OffsetDelete may park (the last three until their records are written):
 * the handler returns BREQ_ASYNC and the machine answers through
 * groups_api_*_done, possibly before the handler returns, so a handler does
 * not touch the request after handing it to the machine. DeleteGroups waits
 * for one answer per group (from several shards, maybe on other threads):
 * the last one completes the request.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/meta.h"
#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/txns.h"
#include "core/log.h"

/* Copies a string into the request's arena (the machine's memory is only
 * valid under the shard's lock). Null stays null. */
static kstr copy_str(breq *r, kstr s) {
    if (s.len <= 0)
        return s.len < 0 ? KSTR_NULL : kstr_c("");
    char *d = breq_alloc(r, (size_t)s.len);
    if (d == NULL)
        return kstr_c("");
    memcpy(d, s.ptr, (size_t)s.len);
    return (kstr){d, s.len};
}

static kbytes copy_bytes(breq *r, const uint8_t *p, int32_t len) {
    if (len <= 0)
        return (kbytes){NULL, 0};
    uint8_t *d = breq_alloc(r, (size_t)len);
    if (d == NULL)
        return (kbytes){NULL, 0};
    memcpy(d, p, (size_t)len);
    return (kbytes){d, len};
}

static kstr client_host(breq *r) {
    /* Kafka shows the client's address as "/ip". */
    const char *peer = r->net->peer ? r->net->peer : "";
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    char *d = breq_alloc(r, n + 2);
    if (d == NULL)
        return kstr_c("");
    d[0] = '/';
    memcpy(d + 1, peer, n);
    return (kstr){d, (int32_t)(n + 1)};
}

/* ---- FindCoordinator ----------------------------------------------------- */

static void endpoint(breq *r, const char **host, int32_t *port) {
    const broker_config *c = r->b->cfg;
    const config_listener *l = NULL;
    for (int i = 0; i < c->n_advertised && l == NULL; i++)
        if (!c->advertised[i].controller)
            l = &c->advertised[i];
    *host = l && l->host[0] ? l->host : "localhost";
    *port = l && l->port != 0 ? l->port : (int32_t)broker_port(r->b);
}

/* Refused coordinator lookups: a transactional producer retries them in a
 * loop, so at most so many lines a second. */
static log_ratelimit refused_coordinator_rl = LOG_RATELIMIT_DEFAULT;

static void log_refused(breq *r, int8_t type, kstr key, int32_t n_keys) {
    kstr cid = r->hdr.client_id.len > 0 ? r->hdr.client_id : kstr_c("");
    (void)key;
    (void)n_keys;
    LOG_INFO_LIMITED(&refused_coordinator_rl, "groups",
                     "refused FindCoordinator v%d with unknown key type %d from %s (client '%.*s'); answered "
                     "INVALID_REQUEST",
                     r->hdr.api_version, type, r->net->peer, cid.len, cid.ptr);
}

/* A quorum member: the group's coordinator is the leader of its
 * __consumer_offsets partition, wherever it is; the topic is created
 * (through the active controller) on the first request that needs it. */
static int16_t cluster_coordinator(breq *r, int8_t type, kstr key, int32_t *node, kstr *host, int32_t *port) {
    md_image *img = bmeta_image(r->b->meta);
    const md_topic *ot = md_image_topic(img, kstr_c(type == 1 ? TXNS_TOPIC : GROUPS_OFFSETS_TOPIC));
    if (ot == NULL || ot->n_partitions <= 0) {
        md_image_unref(img);
        if (type == 1)
            txns_ensure(r->b);
        else
            groups_ensure_offsets_topic(r->b);
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    const md_partition *mp = md_topic_partition(ot, gcoord_partition_for(key, ot->n_partitions));
    int32_t leader = mp->leader;
    int16_t err = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    if (leader == r->b->cfg->node_id) {
        const char *h;
        endpoint(r, &h, port);
        *host = kstr_c(h);
        *node = leader;
        err = 0;
    } else if (leader >= 0) {
        const md_broker *mb = md_image_broker(img, leader);
        if (mb != NULL && !mb->fenced && mb->n_endpoints > 0) {
            *host = api_kstr(r, mb->endpoints[0].host);
            *port = mb->endpoints[0].port;
            *node = leader;
            err = host->len >= 0 ? 0 : KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        }
    }
    md_image_unref(img);
    return err;
}

static int16_t coordinator_for(breq *r, int8_t type, kstr key, int32_t *node, kstr *host, int32_t *port) {
    *node = -1;
    *host = kstr_c("");
    *port = -1;
    if (type != 0 && type != 1)
        return KAFKA_ERR_INVALID_REQUEST;
    if (type == 1 && (key.len <= 0 || key.len > TREC_TXN_ID_MAX))
        return KAFKA_ERR_INVALID_REQUEST;
    if (bmeta_is_quorum_member(r->b->meta))
        return cluster_coordinator(r, type, key, node, host, port);
    if (type == 1 ? txns_ensure(r->b) != 0 : groups_shard_count(r->b) == 0)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    const char *h;
    endpoint(r, &h, port);
    *host = kstr_c(h);
    *node = r->b->cfg->node_id;
    return 0;
}

/* FindCoordinator: DESCRIBE on the group (key type 0) or the transactional
 * id (1). 0, or the authorization error. */
static int16_t coordinator_allowed(breq *r, int8_t key_type, kstr key) {
    if (key_type == 1)
        return bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_TRANSACTIONAL_ID, key)
                   ? 0
                   : KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    if (key_type == 0)
        return bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_GROUP, key) ? 0
                                                                    : KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
    return 0;
}

breq_status api_find_coordinator(breq *r) {
    const kafka_find_coordinator_request *req = r->req;
    kafka_find_coordinator_response *resp = r->resp;
    if (req->key_type != 0 && req->key_type != 1)
        log_refused(r, req->key_type,
                    r->hdr.api_version < 4            ? req->key
                    : req->coordinator_keys_count > 0 ? req->coordinator_keys[0]
                                                      : kstr_c(""),
                    r->hdr.api_version < 4 ? 1 : req->coordinator_keys_count);
    if (r->hdr.api_version < 4) {
        resp->error_code = coordinator_allowed(r, req->key_type, req->key);
        if (resp->error_code != 0) {
            if (r->hdr.api_version >= 1)
                resp->error_message = kstr_c("Authorization failed (DESCRIBE).");
            resp->node_id = -1;
            resp->host = kstr_c("");
            resp->port = -1;
            return BREQ_DONE;
        }
        resp->error_code =
            coordinator_for(r, req->key_type, req->key, &resp->node_id, &resp->host, &resp->port);
        if (resp->error_code && r->hdr.api_version >= 1)
            resp->error_message = kstr_c(resp->error_code == KAFKA_ERR_COORDINATOR_NOT_AVAILABLE
                                             ? "The coordinator is not available."
                                             : "Unsupported coordinator key type.");
        return BREQ_DONE;
    }
    int32_t n = req->coordinator_keys_count > 0 ? req->coordinator_keys_count : 0;
    resp->coordinators = n ? breq_calloc(r, (size_t)n, sizeof *resp->coordinators) : NULL;
    if (n && resp->coordinators == NULL)
        return BREQ_CLOSE;
    resp->coordinators_count = n;
    for (int32_t i = 0; i < n; i++) {
        kafka_find_coordinator_response_coordinator *c = &resp->coordinators[i];
        kafka_find_coordinator_response_coordinator_init(c);
        c->key = req->coordinator_keys[i];
        if ((c->error_code = coordinator_allowed(r, req->key_type, c->key)) != 0) {
            c->error_message = kstr_c("Authorization failed (DESCRIBE).");
            c->node_id = -1;
            c->host = kstr_c("");
            c->port = -1;
            continue;
        }
        c->error_code = coordinator_for(r, req->key_type, c->key, &c->node_id, &c->host, &c->port);
        if (c->error_code)
            c->error_message = kstr_c("The coordinator is not available.");
    }
    return BREQ_DONE;
}

/* ---- JoinGroup / SyncGroup ------------------------------------------------ */

void groups_api_join_done(void *ctx, void *token, const gcoord_join_result *res) {
    (void)ctx;
    breq *r = token;
    kafka_join_group_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    resp->error_code = res->error;
    resp->generation_id = res->generation;
    if (ver >= 7) {
        resp->protocol_type = copy_str(r, res->protocol_type);
        resp->protocol_name = copy_str(r, res->protocol_name);
    } else {
        resp->protocol_name = res->protocol_name.len < 0 ? kstr_c("") : copy_str(r, res->protocol_name);
    }
    resp->leader = copy_str(r, res->leader);
    resp->member_id = copy_str(r, res->member_id);
    if (ver >= 9)
        resp->skip_assignment = res->skip_assignment;
    resp->members_count = 0;
    if (res->n_members > 0) {
        resp->members = breq_calloc(r, (size_t)res->n_members, sizeof *resp->members);
        if (resp->members == NULL) {
            breq_abort(r);
            return;
        }
        resp->members_count = res->n_members;
        for (int i = 0; i < res->n_members; i++) {
            kafka_join_group_response_join_group_response_member *m = &resp->members[i];
            kafka_join_group_response_join_group_response_member_init(m);
            m->member_id = copy_str(r, res->members[i].member_id);
            if (ver >= 5)
                m->group_instance_id = copy_str(r, res->members[i].instance_id);
            m->metadata = copy_bytes(r, res->members[i].metadata.ptr, res->members[i].metadata.len);
        }
    }
    breq_complete(r);
}

void groups_api_sync_done(void *ctx, void *token, const gcoord_sync_result *res) {
    (void)ctx;
    breq *r = token;
    kafka_sync_group_response *resp = r->resp;
    resp->error_code = res->error;
    if (r->hdr.api_version >= 5) {
        resp->protocol_type = copy_str(r, res->protocol_type);
        resp->protocol_name = copy_str(r, res->protocol_name);
    }
    resp->assignment = copy_bytes(r, res->assignment.ptr, res->assignment.len);
    breq_complete(r);
}

breq_status api_join_group(breq *r) {
    const kafka_join_group_request *req = r->req;
    kafka_join_group_response *resp = r->resp;
    int n = req->protocols_count > 0 ? req->protocols_count : 0;
    kstr *names = n ? breq_calloc(r, (size_t)n, sizeof *names) : NULL;
    kbytes *metas = n ? breq_calloc(r, (size_t)n, sizeof *metas) : NULL;
    if (n && (names == NULL || metas == NULL))
        return BREQ_CLOSE;
    for (int i = 0; i < n; i++) {
        names[i] = req->protocols[i].name;
        metas[i] = req->protocols[i].metadata;
    }
    gcoord_join_req jr = {.group_id = req->group_id,
                          .member_id = req->member_id.len < 0 ? kstr_c("") : req->member_id,
                          .instance_id = req->group_instance_id,
                          .protocol_type = req->protocol_type,
                          .client_id = r->hdr.client_id.len < 0 ? kstr_c("") : r->hdr.client_id,
                          .client_host = client_host(r),
                          .session_timeout_ms = req->session_timeout_ms,
                          .rebalance_timeout_ms = req->rebalance_timeout_ms >= 0 ? req->rebalance_timeout_ms
                                                                                 : req->session_timeout_ms,
                          .protocol_names = names,
                          .protocol_metadata = metas,
                          .n_protocols = n,
                          .require_known_member_id = r->hdr.api_version >= 4};
    groups_shard *s = NULL;
    if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id)) {
        resp->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        resp->member_id = jr.member_id;
        resp->protocol_name = r->hdr.api_version >= 7 ? KSTR_NULL : kstr_c("");
        return BREQ_DONE;
    }
    s = groups_lock(r->b, req->group_id);
    if (s == NULL) {
        resp->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        resp->member_id = jr.member_id;
        resp->protocol_name = r->hdr.api_version >= 7 ? KSTR_NULL : kstr_c("");
        return BREQ_DONE;
    }
    /* From here on r belongs to the machine (it may be answered at once). */
    gcoord_join(s->sm, &jr, r, groups_now_ms());
    groups_unlock(s);
    return BREQ_ASYNC;
}

breq_status api_sync_group(breq *r) {
    const kafka_sync_group_request *req = r->req;
    kafka_sync_group_response *resp = r->resp;
    int n = req->assignments_count > 0 ? req->assignments_count : 0;
    kstr *ids = n ? breq_calloc(r, (size_t)n, sizeof *ids) : NULL;
    kbytes *as = n ? breq_calloc(r, (size_t)n, sizeof *as) : NULL;
    if (n && (ids == NULL || as == NULL))
        return BREQ_CLOSE;
    for (int i = 0; i < n; i++) {
        ids[i] = req->assignments[i].member_id;
        as[i] = req->assignments[i].assignment;
    }
    gcoord_sync_req sr = {.group_id = req->group_id,
                          .member_id = req->member_id,
                          .instance_id = req->group_instance_id,
                          .generation = req->generation_id,
                          .protocol_type = req->protocol_type,
                          .protocol_name = req->protocol_name,
                          .assign_member = ids,
                          .assign_bytes = as,
                          .n_assign = n};
    if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id)) {
        resp->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    groups_shard *s = groups_lock(r->b, req->group_id);
    if (s == NULL) {
        resp->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return BREQ_DONE;
    }
    gcoord_sync(s->sm, &sr, r, groups_now_ms());
    groups_unlock(s);
    return BREQ_ASYNC;
}

/* ---- Heartbeat / LeaveGroup ------------------------------------------------ */

breq_status api_heartbeat(breq *r) {
    const kafka_heartbeat_request *req = r->req;
    kafka_heartbeat_response *resp = r->resp;
    if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id)) {
        resp->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    groups_shard *s = groups_lock(r->b, req->group_id);
    if (s == NULL) {
        resp->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return BREQ_DONE;
    }
    resp->error_code = gcoord_heartbeat(s->sm, req->group_id, req->member_id, req->group_instance_id,
                                        req->generation_id, groups_now_ms());
    groups_unlock(s);
    return BREQ_DONE;
}

breq_status api_leave_group(breq *r) {
    const kafka_leave_group_request *req = r->req;
    kafka_leave_group_response *resp = r->resp;
    if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id)) {
        resp->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        resp->members_count = 0;
        return BREQ_DONE;
    }
    groups_shard *s = groups_lock(r->b, req->group_id);
    if (s == NULL) {
        resp->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return BREQ_DONE;
    }
    int64_t now = groups_now_ms();
    int16_t ge = 0;
    if (r->hdr.api_version < 3) {
        int16_t e = gcoord_leave(s->sm, req->group_id, req->member_id, KSTR_NULL, &ge, now);
        resp->error_code = ge ? ge : e;
        groups_unlock(s);
        return BREQ_DONE;
    }
    int n = req->members_count > 0 ? req->members_count : 0;
    resp->members = n ? breq_calloc(r, (size_t)n, sizeof *resp->members) : NULL;
    if (n && resp->members == NULL) {
        groups_unlock(s);
        return BREQ_CLOSE;
    }
    resp->members_count = n;
    for (int i = 0; i < n; i++) {
        const kafka_leave_group_request_member_identity *mi = &req->members[i];
        kafka_leave_group_response_member_response *mr = &resp->members[i];
        kafka_leave_group_response_member_response_init(mr);
        mr->member_id = mi->member_id;
        mr->group_instance_id = mi->group_instance_id;
        mr->error_code = gcoord_leave(s->sm, req->group_id, mi->member_id, mi->group_instance_id, &ge, now);
        if (ge) {
            resp->error_code = ge;
            resp->members_count = 0;
            break;
        }
    }
    groups_unlock(s);
    return BREQ_DONE;
}

/* ---- OffsetCommit ------------------------------------------------------------ */

/* Fills the OffsetCommit response from each entry's error (in request
 * order; NULL: all failed). false on OOM. */
static bool commit_respond(breq *r, const int16_t *errs) {
    const kafka_offset_commit_request *req = r->req;
    kafka_offset_commit_response *resp = r->resp;
    int nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if (nt && resp->topics == NULL)
        return false;
    resp->topics_count = nt;
    int k = 0;
    for (int i = 0; i < nt; i++) {
        const kafka_offset_commit_request_offset_commit_request_topic *t = &req->topics[i];
        kafka_offset_commit_response_offset_commit_response_topic *rt = &resp->topics[i];
        kafka_offset_commit_response_offset_commit_response_topic_init(rt);
        rt->name = t->name;
        int np = t->partitions_count > 0 ? t->partitions_count : 0;
        rt->partitions = np ? breq_calloc(r, (size_t)np, sizeof *rt->partitions) : NULL;
        if (np && rt->partitions == NULL)
            return false;
        rt->partitions_count = np;
        for (int j = 0; j < np; j++, k++) {
            rt->partitions[j].partition_index = t->partitions[j].partition_index;
            rt->partitions[j].error_code = errs ? errs[k] : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    return true;
}

void groups_api_commit_done(void *ctx, void *token, const int16_t *errors, int n) {
    (void)ctx;
    if (token == GROUPS_TXN_COMMIT_TOKEN) { /* a transaction's offsets (txns.c): no request waits */
        for (int i = 0; i < n; i++)
            if (errors == NULL || errors[i] != 0) {
                LOG_WARN("txn", "writing the offsets of a committed transaction failed: %s",
                         kafka_error_name(errors ? errors[i] : KAFKA_ERR_UNKNOWN_SERVER_ERROR));
                break;
            }
        return;
    }
    breq *r = token;
    if (!commit_respond(r, errors)) {
        breq_abort(r);
        return;
    }
    breq_complete(r);
}

breq_status api_offset_commit(breq *r) {
    const kafka_offset_commit_request *req = r->req;
    int16_t ver = r->hdr.api_version;
    int nt = req->topics_count > 0 ? req->topics_count : 0, total = 0;
    for (int i = 0; i < nt; i++)
        total += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    gcoord_commit *es = total ? breq_calloc(r, (size_t)total, sizeof *es) : NULL;
    if (total && es == NULL)
        return BREQ_CLOSE;
    int k = 0;
    int64_t commit_ts = -1;
    if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id)) {
        int16_t *errs = total ? breq_calloc(r, (size_t)total, sizeof *errs) : NULL;
        if (total && errs == NULL)
            return BREQ_CLOSE;
        for (int i = 0; i < total; i++)
            errs[i] = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        return commit_respond(r, errs) ? BREQ_DONE : BREQ_CLOSE;
    }
    for (int i = 0; i < nt; i++) {
        const kafka_offset_commit_request_offset_commit_request_topic *t = &req->topics[i];
        bool topic_denied = !bauthz_allow(r, ACL_OP_READ, ACL_RES_TOPIC, t->name);
        md_image *img = bmeta_image(r->b->meta);
        const md_topic *tp = md_image_topic(img, t->name);
        int32_t nparts = tp ? tp->n_partitions : 0;
        md_image_unref(img);
        for (int j = 0; j < (t->partitions_count > 0 ? t->partitions_count : 0); j++, k++) {
            const kafka_offset_commit_request_offset_commit_request_partition *p = &t->partitions[j];
            es[k] = (gcoord_commit){t->name,
                                    p->partition_index,
                                    p->committed_offset,
                                    p->committed_leader_epoch,
                                    p->committed_metadata,
                                    0};
            if (topic_denied)
                es[k].error = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
            else if (p->partition_index < 0 || p->partition_index >= nparts)
                es[k].error = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (ver == 1 && p->commit_timestamp >= 0)
                commit_ts = p->commit_timestamp;
        }
    }
    groups_shard *s = groups_lock(r->b, req->group_id);
    if (s == NULL) {
        int16_t *errs = total ? breq_calloc(r, (size_t)total, sizeof *errs) : NULL;
        if (total && errs == NULL)
            return BREQ_CLOSE;
        for (int i = 0; i < total; i++)
            errs[i] = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return commit_respond(r, errs) ? BREQ_DONE : BREQ_CLOSE;
    }
    /* Answered once the offsets are written (groups_api_commit_done). */
    gcoord_commit_offsets(s->sm, req->group_id, req->generation_id_or_member_epoch,
                          req->member_id.len < 0 ? kstr_c("") : req->member_id, req->group_instance_id,
                          ver >= 2 && ver <= 4 ? req->retention_time_ms : -1, commit_ts, es, total, r,
                          groups_now_ms());
    groups_unlock(s);
    return BREQ_ASYNC;
}

/* ---- OffsetFetch --------------------------------------------------------------- */

/* One fetched partition, version-neutral. */
typedef struct fetched {
    kstr topic;
    int32_t partition;
    int64_t offset;
    int32_t epoch;
    kstr metadata;
    int16_t error;
} fetched;

typedef struct fetch_list {
    breq *r;
    fetched *v;
    int n, cap;
    bool oom;
} fetch_list;

static fetched *fl_add(fetch_list *fl) {
    if (fl->n == fl->cap) {
        int nc = fl->cap ? fl->cap * 2 : 16;
        fetched *nv = breq_calloc(fl->r, (size_t)nc, sizeof *nv);
        if (nv == NULL) {
            fl->oom = true;
            return NULL;
        }
        if (fl->n)
            memcpy(nv, fl->v, (size_t)fl->n * sizeof *nv);
        fl->v = nv;
        fl->cap = nc;
    }
    return &fl->v[fl->n++];
}

static bool fl_all(void *ctx, const gcoord_offset_entry *e) {
    fetch_list *fl = ctx;
    fetched *f = fl_add(fl);
    if (f == NULL)
        return false;
    *f = (fetched){copy_str(fl->r, kstr_c(e->topic)),
                   e->partition,
                   e->offset,
                   e->leader_epoch,
                   copy_str(fl->r, kstr_c(e->metadata ? e->metadata : "")),
                   0};
    return true;
}

/* Fetches one group's offsets: the listed partitions (topics != NULL) or all
 * (topics == NULL). names/parts/counts describe the request's topics. */
/* require_stable: a partition with offsets of an open transaction
 * (TxnOffsetCommit not yet committed or aborted) answers
 * UNSTABLE_OFFSET_COMMIT, which clients retry. */
static void mark_unstable(void *ctx, kstr topic, int32_t partition) {
    fetch_list *fl = ctx;
    for (int32_t i = 0; i < fl->n; i++) {
        fetched *f = &fl->v[i];
        if (f->error == 0 && f->partition == partition && kstr_eq(f->topic, topic)) {
            f->error = KAFKA_ERR_UNSTABLE_OFFSET_COMMIT;
            f->offset = -1;
            f->epoch = -1;
            f->metadata = kstr_c("");
        }
    }
}

static int16_t fetch_group(breq *r, kstr group, kstr member, int32_t epoch, int nt, const kstr *names,
                           int32_t *const *parts, const int32_t *counts, bool all, bool stable,
                           fetch_list *fl) {
    if (!bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_GROUP, group))
        return KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
    groups_shard *s = groups_lock(r->b, group);
    if (s == NULL)
        return KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    int16_t err = gcoord_check_fetch(s->sm, group, member, epoch);
    if (err) {
        groups_unlock(s);
        return err;
    }
    if (all) {
        err = gcoord_each_offset(s->sm, group, fl_all, fl);
    } else {
        for (int i = 0; i < nt && err == 0; i++)
            for (int j = 0; j < counts[i]; j++) {
                fetched *f = fl_add(fl);
                if (f == NULL)
                    break;
                kstr meta;
                f->topic = names[i];
                f->partition = parts[i][j];
                err = gcoord_fetch_offset(s->sm, group, names[i], parts[i][j], &f->offset, &f->epoch, &meta);
                f->metadata = copy_str(r, meta);
                if (err)
                    break;
            }
    }
    groups_unlock(s);
    if (err == 0 && stable && !fl->oom)
        txns_pending_each(r->b, group, mark_unstable, fl);
    return err;
}

/* Groups fetched entries by topic (in order of first appearance). Returns
 * the number of topics; *first[i] / *cnt[i] index fl->v after sorting. */
typedef struct fetched_ref {
    kstr topic;
    int idx;   /* position in fl->v */
    int group; /* position of the topic's first entry in fl->v */
} fetched_ref;

static int cmp_ref_by_name(const void *a, const void *b) {
    const fetched_ref *x = a, *y = b;
    int32_t xl = x->topic.len, yl = y->topic.len; /* -1 (null) sorts first */
    int c = xl > 0 && yl > 0 ? memcmp(x->topic.ptr, y->topic.ptr, (size_t)(xl < yl ? xl : yl)) : 0;
    if (c == 0)
        c = (xl > yl) - (xl < yl);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_ref_by_group(const void *a, const void *b) {
    const fetched_ref *x = a, *y = b;
    if (x->group != y->group)
        return (x->group > y->group) - (x->group < y->group);
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int by_topic(fetch_list *fl, int **first, int **cnt) {
    /* Sorting, not pairwise comparison: a request may list hundreds of
     * thousands of topics, and a quadratic grouping would stall the thread. */
    fetched_ref *ref = fl->n ? breq_calloc(fl->r, (size_t)fl->n, sizeof *ref) : NULL;
    fetched *sorted = fl->n ? breq_calloc(fl->r, (size_t)fl->n, sizeof *sorted) : NULL;
    int *f = fl->n ? breq_calloc(fl->r, (size_t)fl->n, sizeof *f) : NULL;
    int *c = fl->n ? breq_calloc(fl->r, (size_t)fl->n, sizeof *c) : NULL;
    if (fl->n && (ref == NULL || sorted == NULL || f == NULL || c == NULL))
        return -1;
    for (int i = 0; i < fl->n; i++)
        ref[i] = (fetched_ref){fl->v[i].topic, i, i};
    if (fl->n)
        qsort(ref, (size_t)fl->n, sizeof *ref, cmp_ref_by_name);
    /* Within a run of one name the first element has the lowest index. */
    for (int i = 1; i < fl->n; i++)
        if (kstr_eq(ref[i].topic, ref[i - 1].topic))
            ref[i].group = ref[i - 1].group;
    if (fl->n)
        qsort(ref, (size_t)fl->n, sizeof *ref, cmp_ref_by_group);
    int nt = 0;
    for (int k = 0; k < fl->n; k++) {
        if (k == 0 || ref[k].group != ref[k - 1].group) {
            f[nt] = k;
            c[nt] = 0;
            nt++;
        }
        c[nt - 1]++;
        sorted[k] = fl->v[ref[k].idx];
    }
    if (fl->n)
        memcpy(fl->v, sorted, (size_t)fl->n * sizeof *sorted);
    *first = f;
    *cnt = c;
    return nt;
}

breq_status api_offset_fetch(breq *r) {
    const kafka_offset_fetch_request *req = r->req;
    kafka_offset_fetch_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    if (ver < 8) {
        int nt = req->topics_count > 0 ? req->topics_count : 0;
        bool all = req->topics_count < 0;
        kstr *names = nt ? breq_calloc(r, (size_t)nt, sizeof *names) : NULL;
        int32_t **parts = nt ? breq_calloc(r, (size_t)nt, sizeof *parts) : NULL;
        int32_t *counts = nt ? breq_calloc(r, (size_t)nt, sizeof *counts) : NULL;
        if (nt && (names == NULL || parts == NULL || counts == NULL))
            return BREQ_CLOSE;
        for (int i = 0; i < nt; i++) {
            names[i] = req->topics[i].name;
            parts[i] = req->topics[i].partition_indexes;
            counts[i] =
                req->topics[i].partition_indexes_count > 0 ? req->topics[i].partition_indexes_count : 0;
        }
        fetch_list fl = {.r = r};
        int16_t err = fetch_group(r, req->group_id, KSTR_NULL, -1, nt, names, parts, counts, all,
                                  ver >= 7 && req->require_stable, &fl);
        if (fl.oom)
            return BREQ_CLOSE;
        if (err) {
            if (ver >= 2) {
                resp->error_code = err;
                fl.n = 0;
            } else {
                /* v0-1 have no top-level error: every partition carries it. */
                fl.n = 0;
                for (int i = 0; i < nt; i++)
                    for (int j = 0; j < counts[i]; j++) {
                        fetched *f = fl_add(&fl);
                        if (f == NULL)
                            return BREQ_CLOSE;
                        *f = (fetched){names[i], parts[i][j], -1, -1, kstr_c(""), err};
                    }
            }
        }
        int *first, *cnt;
        int ntopics = by_topic(&fl, &first, &cnt);
        if (ntopics < 0)
            return BREQ_CLOSE;
        resp->topics = ntopics ? breq_calloc(r, (size_t)ntopics, sizeof *resp->topics) : NULL;
        if (ntopics && resp->topics == NULL)
            return BREQ_CLOSE;
        resp->topics_count = ntopics;
        for (int i = 0; i < ntopics; i++) {
            kafka_offset_fetch_response_offset_fetch_response_topic *t = &resp->topics[i];
            kafka_offset_fetch_response_offset_fetch_response_topic_init(t);
            t->name = fl.v[first[i]].topic;
            t->partitions = breq_calloc(r, (size_t)cnt[i], sizeof *t->partitions);
            if (t->partitions == NULL)
                return BREQ_CLOSE;
            t->partitions_count = cnt[i];
            for (int j = 0; j < cnt[i]; j++) {
                const fetched *f = &fl.v[first[i] + j];
                kafka_offset_fetch_response_offset_fetch_response_partition *p = &t->partitions[j];
                kafka_offset_fetch_response_offset_fetch_response_partition_init(p);
                p->partition_index = f->partition;
                p->committed_offset = f->offset;
                if (ver >= 5)
                    p->committed_leader_epoch = f->epoch;
                p->metadata = f->metadata;
                p->error_code = f->error;
            }
        }
        return BREQ_DONE;
    }
    int ng = req->groups_count > 0 ? req->groups_count : 0;
    resp->groups = ng ? breq_calloc(r, (size_t)ng, sizeof *resp->groups) : NULL;
    if (ng && resp->groups == NULL)
        return BREQ_CLOSE;
    resp->groups_count = ng;
    for (int g = 0; g < ng; g++) {
        const kafka_offset_fetch_request_offset_fetch_request_group *rg = &req->groups[g];
        kafka_offset_fetch_response_offset_fetch_response_group *og = &resp->groups[g];
        kafka_offset_fetch_response_offset_fetch_response_group_init(og);
        og->group_id = rg->group_id;
        int nt = rg->topics_count > 0 ? rg->topics_count : 0;
        bool all = rg->topics_count < 0;
        kstr *names = nt ? breq_calloc(r, (size_t)nt, sizeof *names) : NULL;
        int32_t **parts = nt ? breq_calloc(r, (size_t)nt, sizeof *parts) : NULL;
        int32_t *counts = nt ? breq_calloc(r, (size_t)nt, sizeof *counts) : NULL;
        if (nt && (names == NULL || parts == NULL || counts == NULL))
            return BREQ_CLOSE;
        for (int i = 0; i < nt; i++) {
            names[i] = rg->topics[i].name;
            parts[i] = rg->topics[i].partition_indexes;
            counts[i] = rg->topics[i].partition_indexes_count > 0 ? rg->topics[i].partition_indexes_count : 0;
        }
        fetch_list fl = {.r = r};
        og->error_code = fetch_group(r, rg->group_id, r->hdr.api_version >= 9 ? rg->member_id : KSTR_NULL,
                                     r->hdr.api_version >= 9 ? rg->member_epoch : -1, nt, names, parts,
                                     counts, all, req->require_stable, &fl);
        if (fl.oom)
            return BREQ_CLOSE;
        if (og->error_code)
            fl.n = 0;
        int *first, *cnt;
        int ntopics = by_topic(&fl, &first, &cnt);
        if (ntopics < 0)
            return BREQ_CLOSE;
        og->topics = ntopics ? breq_calloc(r, (size_t)ntopics, sizeof *og->topics) : NULL;
        if (ntopics && og->topics == NULL)
            return BREQ_CLOSE;
        og->topics_count = ntopics;
        for (int i = 0; i < ntopics; i++) {
            kafka_offset_fetch_response_offset_fetch_response_topics *t = &og->topics[i];
            kafka_offset_fetch_response_offset_fetch_response_topics_init(t);
            t->name = fl.v[first[i]].topic;
            t->partitions = breq_calloc(r, (size_t)cnt[i], sizeof *t->partitions);
            if (t->partitions == NULL)
                return BREQ_CLOSE;
            t->partitions_count = cnt[i];
            for (int j = 0; j < cnt[i]; j++) {
                const fetched *f = &fl.v[first[i] + j];
                kafka_offset_fetch_response_offset_fetch_response_partitions *p = &t->partitions[j];
                kafka_offset_fetch_response_offset_fetch_response_partitions_init(p);
                p->partition_index = f->partition;
                p->committed_offset = f->offset;
                p->committed_leader_epoch = f->epoch;
                p->metadata = f->metadata;
                p->error_code = f->error;
            }
        }
    }
    return BREQ_DONE;
}

/* ---- DescribeGroups / ListGroups / DeleteGroups / OffsetDelete ------------------ */

/* ConsumerProtocol Subscription v0: int16 version, [string topic], bytes
 * user data (null). The regex's topics are not listed. */
static kbytes consumer_subscription(breq *r, const cg_member *m) {
    size_t n = 2 + 4 + 4;
    for (int i = 0; i < m->n_subs; i++)
        n += wire_string_size(kstr_c(m->subs[i]), false);
    uint8_t *buf = breq_alloc(r, n);
    if (buf == NULL)
        return (kbytes){NULL, 0};
    wire_writer w;
    wire_writer_init(&w, buf, n);
    wire_write_i16(&w, 0);
    wire_write_i32(&w, m->n_subs);
    for (int i = 0; i < m->n_subs; i++)
        wire_write_string(&w, kstr_c(m->subs[i]), false, false);
    wire_write_i32(&w, -1);
    return w.err == WIRE_OK ? (kbytes){buf, (int32_t)w.len} : (kbytes){NULL, 0};
}

/* ConsumerProtocol Assignment v0: int16 version, [string topic, [int32
 * partition]], bytes user data (null). Topics by name from the group's
 * metadata; partitions of a topic it no longer knows are left out. */
static kbytes consumer_assignment(breq *r, const cgroup *cg, const cg_member *m) {
    const asg_parts *a = &m->assigned;
    size_t n = 2 + 4 + 4;
    int32_t nt = 0;
    for (int32_t i = 0; i < a->n; i++) {
        bool first = i == 0 || memcmp(a->v[i].topic.b, a->v[i - 1].topic.b, 16) != 0;
        const char *name = NULL;
        for (int t = 0; first && t < cg->n_topics && !name; t++)
            if (memcmp(cg->topics[t].id.b, a->v[i].topic.b, 16) == 0)
                name = cg->topics[t].name;
        if (first && name) {
            nt++;
            n += wire_string_size(kstr_c(name), false) + 4;
        }
        n += 4;
    }
    uint8_t *buf = breq_alloc(r, n);
    if (buf == NULL)
        return (kbytes){NULL, 0};
    wire_writer w;
    wire_writer_init(&w, buf, n);
    wire_write_i16(&w, 0);
    wire_write_i32(&w, nt);
    for (int32_t i = 0; i < a->n;) {
        int32_t j = i;
        while (j < a->n && memcmp(a->v[j].topic.b, a->v[i].topic.b, 16) == 0)
            j++;
        const char *name = NULL;
        for (int t = 0; t < cg->n_topics && !name; t++)
            if (memcmp(cg->topics[t].id.b, a->v[i].topic.b, 16) == 0)
                name = cg->topics[t].name;
        if (name) {
            wire_write_string(&w, kstr_c(name), false, false);
            wire_write_i32(&w, j - i);
            for (int32_t k = i; k < j; k++)
                wire_write_i32(&w, a->v[k].partition);
        }
        i = j;
    }
    wire_write_i32(&w, -1);
    return w.err == WIRE_OK ? (kbytes){buf, (int32_t)w.len} : (kbytes){NULL, 0};
}

static void describe_one(breq *r, kstr id, kafka_describe_groups_response_described_group *out) {
    int16_t ver = r->hdr.api_version;
    kafka_describe_groups_response_described_group_init(out);
    out->group_id = id;
    out->group_state = kstr_c("Dead");
    out->protocol_type = kstr_c("");
    out->protocol_data = kstr_c("");
    out->members_count = 0;
    if (id.len < 0) { /* "" is a valid id here, as in Kafka; only null is not */
        out->error_code = KAFKA_ERR_INVALID_GROUP_ID;
        return;
    }
    if (!bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_GROUP, id)) {
        out->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        return;
    }
    groups_shard *s = groups_lock(r->b, id);
    if (s == NULL) {
        out->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    if (!gcoord_active(s->sm)) {
        /* Loading, or another broker leads this group's partition. */
        out->error_code =
            gcoord_loading(s->sm) ? KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS : KAFKA_ERR_NOT_COORDINATOR;
        groups_unlock(s);
        return;
    }
    const gcoord_group *g = gcoord_find(s->sm, id);
    if (g && g->cg && g->state != GCOORD_DEAD) {
        /* A consumer-protocol group: its type, state and members (their
         * assignments are ConsumerGroupDescribe's). */
        const cgroup *cg = g->cg;
        out->group_state = kstr_c(cg_state_name(cg));
        out->protocol_type = kstr_c("consumer");
        out->protocol_data = kstr_c("");
        out->members = cg->n_members ? breq_calloc(r, (size_t)cg->n_members, sizeof *out->members) : NULL;
        out->members_count = out->members ? cg->n_members : 0;
        for (int i = 0; i < out->members_count; i++) {
            const cg_member *m = cg->members[i];
            kafka_describe_groups_response_described_group_member *dm = &out->members[i];
            kafka_describe_groups_response_described_group_member_init(dm);
            dm->member_id = copy_str(r, kstr_c(m->id));
            if (ver >= 4 && m->instance_id)
                dm->group_instance_id = copy_str(r, kstr_c(m->instance_id));
            dm->client_id = copy_str(r, kstr_c(m->client_id ? m->client_id : ""));
            dm->client_host = copy_str(r, kstr_c(m->client_host ? m->client_host : ""));
            /* In the classic consumer protocol's layouts, so tools that
             * read them (kafka-consumer-groups --members) show partitions. */
            dm->member_metadata = consumer_subscription(r, m);
            dm->member_assignment = consumer_assignment(r, cg, m);
        }
    } else if (g) {
        bool stable = g->state == GCOORD_STABLE;
        out->group_state = kstr_c(gcoord_state_name(g->state));
        out->protocol_type = copy_str(r, kstr_c(g->protocol_type ? g->protocol_type : ""));
        out->protocol_data = stable && g->protocol ? copy_str(r, kstr_c(g->protocol)) : kstr_c("");
        out->members = g->n_members ? breq_calloc(r, (size_t)g->n_members, sizeof *out->members) : NULL;
        out->members_count = out->members ? g->n_members : 0;
        for (int i = 0; i < out->members_count; i++) {
            const gcoord_member *m = g->members[i];
            kafka_describe_groups_response_described_group_member *dm = &out->members[i];
            kafka_describe_groups_response_described_group_member_init(dm);
            dm->member_id = copy_str(r, kstr_c(m->member_id));
            if (ver >= 4 && m->instance_id)
                dm->group_instance_id = copy_str(r, kstr_c(m->instance_id));
            dm->client_id = copy_str(r, kstr_c(m->client_id));
            dm->client_host = copy_str(r, kstr_c(m->client_host));
            dm->member_metadata = (kbytes){NULL, 0};
            dm->member_assignment = (kbytes){NULL, 0};
            if (stable) {
                for (int p = 0; p < m->n_protocols; p++)
                    if (g->protocol && strcmp(m->protocols[p].name, g->protocol) == 0)
                        dm->member_metadata =
                            copy_bytes(r, m->protocols[p].metadata, m->protocols[p].metadata_len);
                dm->member_assignment = copy_bytes(r, m->assignment, m->assignment_len);
            }
        }
    }
    groups_unlock(s);
}

breq_status api_describe_groups(breq *r) {
    const kafka_describe_groups_request *req = r->req;
    kafka_describe_groups_response *resp = r->resp;
    int n = req->groups_count > 0 ? req->groups_count : 0;
    resp->groups = n ? breq_calloc(r, (size_t)n, sizeof *resp->groups) : NULL;
    if (n && resp->groups == NULL)
        return BREQ_CLOSE;
    resp->groups_count = n;
    for (int i = 0; i < n; i++) {
        describe_one(r, req->groups[i], &resp->groups[i]);
        /* The group operations (Read, Delete, Describe) the principal has:
         * all of them without an authorizer, as Kafka reports them. */
        if (r->hdr.api_version >= 3 && req->include_authorized_operations)
            resp->groups[i].authorized_operations = bauthz_ops(r, ACL_RES_GROUP, req->groups[i]);
    }
    return BREQ_DONE;
}

typedef struct list_ctx {
    breq *r;
    const kafka_list_groups_request *req;
    /* The filters, parsed once: a client may repeat entries a million
     * times, and they are checked against every group. */
    bool by_state, by_type;
    unsigned states;  /* bit s: state s is wanted */
    bool classic;     /* the type filter names "classic" */
    bool consumer;    /* the type filter names "consumer" */
    unsigned cstates; /* bit i: consumer group state i of cstate_names wanted */
    kafka_list_groups_response_listed_group *v;
    int n, cap;
    bool oom;
    bool filter; /* by the principal's DESCRIBE on each group */
} list_ctx;

static const char *const cstate_names[] = {"Empty", "Assigning", "Reconciling", "Stable", NULL};

static bool list_one(void *ctx, const gcoord_group *g) {
    list_ctx *lc = ctx;
    /* Only the groups the principal may describe are listed. */
    if (lc->filter && !bauthz_may(lc->r, ACL_OP_DESCRIBE, ACL_RES_GROUP, kstr_c(g->id)))
        return true;
    const char *state = g->cg ? cg_state_name(g->cg) : gcoord_state_name(g->state);
    if (g->cg) {
        unsigned bit = 0;
        for (int i = 0; cstate_names[i]; i++)
            if (strcmp(cstate_names[i], state) == 0)
                bit = 1u << i;
        if ((lc->by_state && !(lc->cstates & bit)) || (lc->by_type && !lc->consumer))
            return true;
    } else if ((lc->by_state && !(lc->states & (1u << g->state))) || (lc->by_type && !lc->classic)) {
        return true;
    }
    if (lc->n == lc->cap) {
        int nc = lc->cap ? lc->cap * 2 : 32;
        kafka_list_groups_response_listed_group *nv = breq_calloc(lc->r, (size_t)nc, sizeof *nv);
        if (nv == NULL) {
            lc->oom = true;
            return false;
        }
        if (lc->n)
            memcpy(nv, lc->v, (size_t)lc->n * sizeof *nv);
        lc->v = nv;
        lc->cap = nc;
    }
    kafka_list_groups_response_listed_group *o = &lc->v[lc->n++];
    kafka_list_groups_response_listed_group_init(o);
    o->group_id = copy_str(lc->r, kstr_c(g->id));
    o->protocol_type = copy_str(lc->r, kstr_c(g->cg ? "consumer" : g->protocol_type ? g->protocol_type : ""));
    if (lc->r->hdr.api_version >= 4)
        o->group_state = kstr_c(state);
    if (lc->r->hdr.api_version >= 5)
        o->group_type = kstr_c(g->cg ? "consumer" : "classic");
    return true;
}

breq_status api_list_groups(breq *r) {
    const kafka_list_groups_request *req = r->req;
    kafka_list_groups_response *resp = r->resp;
    list_ctx lc = {.r = r, .req = req};
    lc.by_state = req->states_filter_count > 0;
    for (int32_t i = 0; i < req->states_filter_count; i++) {
        int st = gcoord_state_parse(req->states_filter[i]);
        if (st >= 0 && st < 32)
            lc.states |= 1u << st;
        for (int k = 0; cstate_names[k]; k++)
            if (req->states_filter[i].len == (int32_t)strlen(cstate_names[k]) &&
                strncasecmp(req->states_filter[i].ptr, cstate_names[k], strlen(cstate_names[k])) == 0)
                lc.cstates |= 1u << k;
    }
    lc.by_type = req->types_filter_count > 0;
    for (int32_t i = 0; i < req->types_filter_count && !(lc.classic && lc.consumer); i++) {
        kstr t = req->types_filter[i];
        lc.classic |= t.len == 7 && strncasecmp(t.ptr, "classic", 7) == 0;
        lc.consumer |= t.len == 8 && strncasecmp(t.ptr, "consumer", 8) == 0;
    }
    /* CLUSTER DESCRIBE lists every group; otherwise each is checked. The
     * ACLs are taken before any shard is locked. */
    lc.filter = bauthz_on(r) && !bauthz_may(r, ACL_OP_DESCRIBE, ACL_RES_CLUSTER, kstr_c(ACL_CLUSTER_NAME));
    int32_t n = groups_shard_count(r->b);
    if (n == 0)
        resp->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
    for (int32_t i = 0; i < n && !lc.oom; i++) {
        groups_shard *s = groups_lock_index(r->b, i);
        if (s == NULL)
            continue;
        if (gcoord_loading(s->sm))
            resp->error_code = KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS;
        else
            gcoord_each_group(s->sm, list_one, &lc);
        groups_unlock(s);
    }
    if (lc.oom)
        return BREQ_CLOSE;
    resp->groups = lc.v;
    resp->groups_count = lc.n;
    return BREQ_DONE;
}

/* One DeleteGroups request: its answers come from several shards. */
typedef struct delete_groups_ctx {
    breq *r;
    atomic_int pending; /* answers to come, plus one for the handler */
} delete_groups_ctx;

typedef struct delete_groups_item {
    delete_groups_ctx *ctx;
    int index;
} delete_groups_item;

static void delete_groups_release(delete_groups_ctx *dc) {
    if (atomic_fetch_sub(&dc->pending, 1) == 1)
        breq_complete(dc->r);
}

void groups_api_delete_group_done(void *ctx, void *token, int16_t error) {
    (void)ctx;
    delete_groups_item *it = token;
    breq *r = it->ctx->r;
    kafka_delete_groups_response *resp = r->resp;
    resp->results[it->index].error_code = error;
    if (error == 0) {
        kstr id = resp->results[it->index].group_id;
        LOG_INFO("groups", "deleted group '%.*s' for %s", id.len, id.ptr, r->net->peer);
    }
    delete_groups_release(it->ctx);
}

breq_status api_delete_groups(breq *r) {
    const kafka_delete_groups_request *req = r->req;
    kafka_delete_groups_response *resp = r->resp;
    int n = req->groups_names_count > 0 ? req->groups_names_count : 0;
    resp->results = n ? breq_calloc(r, (size_t)n, sizeof *resp->results) : NULL;
    delete_groups_ctx *dc = breq_calloc(r, 1, sizeof *dc);
    delete_groups_item *items = n ? breq_calloc(r, (size_t)n, sizeof *items) : NULL;
    if ((n && (resp->results == NULL || items == NULL)) || dc == NULL)
        return BREQ_CLOSE;
    resp->results_count = n;
    dc->r = r;
    atomic_init(&dc->pending, n + 1);
    int64_t now = groups_now_ms();
    for (int i = 0; i < n; i++) {
        kstr id = req->groups_names[i];
        resp->results[i].group_id = id;
        items[i] = (delete_groups_item){dc, i};
        if (!bauthz_allow(r, ACL_OP_DELETE, ACL_RES_GROUP, id)) {
            resp->results[i].error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
            atomic_fetch_sub(&dc->pending, 1);
            continue;
        }
        groups_shard *s = groups_lock(r->b, id);
        if (s == NULL) {
            resp->results[i].error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
            atomic_fetch_sub(&dc->pending, 1);
            continue;
        }
        /* Answered once the tombstones are written (groups_api_delete_group_done). */
        gcoord_delete_group(s->sm, id, &items[i], now);
        groups_unlock(s);
    }
    /* The handler's own share: the last answer, here or on another thread,
     * sends the response. */
    if (atomic_fetch_sub(&dc->pending, 1) == 1)
        return BREQ_DONE;
    return BREQ_ASYNC;
}

/* An OffsetDelete in flight: which request partitions the machine saw. */
typedef struct offset_delete_ctx {
    breq *r;
    bool *unknown; /* per request partition: the topic or partition does not exist */
    int *map;      /* per request partition: its index among those the machine saw */
    int total;
} offset_delete_ctx;

static bool offset_delete_respond(offset_delete_ctx *oc, int16_t error, const int16_t *errs) {
    breq *r = oc->r;
    const kafka_offset_delete_request *req = r->req;
    kafka_offset_delete_response *resp = r->resp;
    resp->error_code = error;
    if (error) {
        resp->topics_count = 0;
        return true;
    }
    int nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->topics) : NULL;
    if (nt && resp->topics == NULL)
        return false;
    resp->topics_count = nt;
    int k = 0;
    for (int i = 0; i < nt; i++) {
        kafka_offset_delete_response_offset_delete_response_topic *t = &resp->topics[i];
        kafka_offset_delete_response_offset_delete_response_topic_init(t);
        t->name = req->topics[i].name;
        int np = req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
        t->partitions = np ? breq_calloc(r, (size_t)np, sizeof *t->partitions) : NULL;
        if (np && t->partitions == NULL)
            return false;
        t->partitions_count = np;
        for (int j = 0; j < np; j++, k++) {
            t->partitions[j].partition_index = req->topics[i].partitions[j].partition_index;
            t->partitions[j].error_code = oc->unknown[k] ? KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION
                                          : errs         ? errs[oc->map[k]]
                                                         : KAFKA_ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    return true;
}

void groups_api_delete_offsets_done(void *ctx, void *token, int16_t error, const int16_t *errors, int n) {
    (void)ctx;
    (void)n;
    offset_delete_ctx *oc = token;
    if (!offset_delete_respond(oc, error, errors)) {
        breq_abort(oc->r);
        return;
    }
    breq_complete(oc->r);
}

breq_status api_offset_delete(breq *r) {
    const kafka_offset_delete_request *req = r->req;
    int nt = req->topics_count > 0 ? req->topics_count : 0, total = 0;
    for (int i = 0; i < nt; i++)
        total += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    kstr *topics = total ? breq_calloc(r, (size_t)total, sizeof *topics) : NULL;
    int32_t *parts = total ? breq_calloc(r, (size_t)total, sizeof *parts) : NULL;
    offset_delete_ctx *oc = breq_calloc(r, 1, sizeof *oc);
    if ((total && (topics == NULL || parts == NULL)) || oc == NULL)
        return BREQ_CLOSE;
    oc->r = r;
    oc->total = total;
    oc->unknown = total ? breq_calloc(r, (size_t)total, sizeof *oc->unknown) : NULL;
    oc->map = total ? breq_calloc(r, (size_t)total, sizeof *oc->map) : NULL;
    if (total && (oc->unknown == NULL || oc->map == NULL))
        return BREQ_CLOSE;
    /* Partitions of unknown topics are answered without asking the machine. */
    int k = 0, m = 0;
    md_image *img = bmeta_image(r->b->meta); /* one view for the whole request */
    for (int i = 0; i < nt; i++) {
        const md_topic *tp = md_image_topic(img, req->topics[i].name);
        for (int j = 0; j < (req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0);
             j++, k++) {
            int32_t p = req->topics[i].partitions[j].partition_index;
            oc->unknown[k] = tp == NULL || p < 0 || p >= tp->n_partitions;
            if (!oc->unknown[k]) {
                topics[m] = req->topics[i].name;
                parts[m] = p;
                oc->map[k] = m++;
            }
        }
    }
    md_image_unref(img);
    if (!bauthz_allow(r, ACL_OP_DELETE, ACL_RES_GROUP, req->group_id))
        return offset_delete_respond(oc, KAFKA_ERR_GROUP_AUTHORIZATION_FAILED, NULL) ? BREQ_DONE : BREQ_CLOSE;
    groups_shard *s = groups_lock(r->b, req->group_id);
    if (s == NULL)
        return offset_delete_respond(oc, KAFKA_ERR_COORDINATOR_NOT_AVAILABLE, NULL) ? BREQ_DONE : BREQ_CLOSE;
    /* Answered once the tombstones are written (groups_api_delete_offsets_done). */
    gcoord_delete_offsets(s->sm, req->group_id, topics, parts, m, oc, groups_now_ms());
    groups_unlock(s);
    return BREQ_ASYNC;
}

/* ---- ConsumerGroupHeartbeat / ConsumerGroupDescribe (KIP-848) ------------------- */

/* The machine's view of the topics: the metadata image of the request. */
static bool view_by_name(void *ctx, kstr name, cg_topic_info *out) {
    const md_topic *t = md_image_topic(ctx, name);
    if (t == NULL)
        return false;
    *out = (cg_topic_info){{t->name, t->name_len}, t->id, t->n_partitions};
    return true;
}

static int32_t view_count(void *ctx) { return md_image_topic_count(ctx); }

static bool view_at(void *ctx, int32_t i, cg_topic_info *out) {
    const md_topic *t = md_image_topic_at(ctx, i);
    if (t == NULL)
        return false;
    *out = (cg_topic_info){{t->name, t->name_len}, t->id, t->n_partitions};
    return true;
}

/* Splits a sorted assignment by topic into the response's shape. */
static bool hb_assignment(breq *r, const asg_parts *a,
                          kafka_consumer_group_heartbeat_response_assignment *out) {
    int32_t nt = 0;
    for (int32_t i = 0; i < a->n; i++)
        nt += i == 0 || memcmp(a->v[i].topic.b, a->v[i - 1].topic.b, 16) != 0;
    out->topic_partitions = nt ? breq_calloc(r, (size_t)nt, sizeof *out->topic_partitions) : NULL;
    int32_t *pool = a->n ? breq_calloc(r, (size_t)a->n, sizeof *pool) : NULL;
    if ((nt && out->topic_partitions == NULL) || (a->n && pool == NULL))
        return false;
    out->topic_partitions_count = nt;
    int32_t t = -1;
    for (int32_t i = 0; i < a->n; i++) {
        if (i == 0 || memcmp(a->v[i].topic.b, a->v[i - 1].topic.b, 16) != 0) {
            t++;
            kafka_consumer_group_heartbeat_response_topic_partitions_init(&out->topic_partitions[t]);
            out->topic_partitions[t].topic_id = a->v[i].topic;
            out->topic_partitions[t].partitions = pool + i;
            out->topic_partitions[t].partitions_count = 0;
        }
        kafka_consumer_group_heartbeat_response_topic_partitions *tp = &out->topic_partitions[t];
        tp->partitions[tp->partitions_count++] = a->v[i].partition;
    }
    return true;
}

static log_ratelimit cg_refused_rl = LOG_RATELIMIT_DEFAULT;

void groups_api_cg_heartbeat_done(void *ctx, void *token, const gcoord_cg_result *res) {
    (void)ctx;
    breq *r = token;
    const kafka_consumer_group_heartbeat_request *req = r->req;
    kafka_consumer_group_heartbeat_response *resp = r->resp;
    resp->error_code = res->error;
    resp->error_message = res->message ? kstr_c(res->message) : KSTR_NULL;
    resp->member_id = copy_str(r, res->member_id);
    resp->member_epoch = res->member_epoch;
    resp->heartbeat_interval_ms = res->heartbeat_interval_ms;
    if (res->error == 0 && res->has_assignment) {
        resp->has_assignment = true;
        if (!hb_assignment(r, res->assignment, &resp->assignment)) {
            breq_abort(r);
            return;
        }
    }
    if (res->error && res->error != KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS &&
        res->error != KAFKA_ERR_NOT_COORDINATOR)
        LOG_INFO_LIMITED(
            &cg_refused_rl, "groups",
            "ConsumerGroupHeartbeat of group '%.*s' member '%.*s' epoch %d from %s: %s%s%s",
            req->group_id.len > 0 ? req->group_id.len : 0, req->group_id.len > 0 ? req->group_id.ptr : "",
            req->member_id.len > 0 ? req->member_id.len : 0, req->member_id.len > 0 ? req->member_id.ptr : "",
            req->member_epoch, r->net->peer, kafka_error_name(res->error), res->message ? ": " : "",
            res->message ? res->message : "");
    breq_complete(r);
}

breq_status api_consumer_group_heartbeat(breq *r) {
    const kafka_consumer_group_heartbeat_request *req = r->req;
    kafka_consumer_group_heartbeat_response *resp = r->resp;
    asg_parts owned = {NULL, 0};
    int64_t total = 0;
    for (int32_t i = 0; i < req->topic_partitions_count; i++)
        total +=
            req->topic_partitions[i].partitions_count > 0 ? req->topic_partitions[i].partitions_count : 0;
    if (total > INT32_MAX)
        return BREQ_CLOSE;
    if (total && (owned.v = breq_calloc(r, (size_t)total, sizeof *owned.v)) == NULL)
        return BREQ_CLOSE;
    for (int32_t i = 0; i < req->topic_partitions_count; i++)
        for (int32_t k = 0; k < req->topic_partitions[i].partitions_count; k++)
            owned.v[owned.n++] =
                (asg_part){req->topic_partitions[i].topic_id, req->topic_partitions[i].partitions[k]};
    asg_parts_sort(&owned);
    cg_heartbeat_req hr = {.member_id = req->member_id.len < 0 ? kstr_c("") : req->member_id,
                           .member_epoch = req->member_epoch,
                           .instance_id = req->instance_id,
                           .rack_id = req->rack_id,
                           .rebalance_timeout_ms = req->rebalance_timeout_ms,
                           .sub_names = req->subscribed_topic_names,
                           .n_sub_names = req->subscribed_topic_names_count,
                           .regex = r->hdr.api_version >= 1 ? req->subscribed_topic_regex : KSTR_NULL,
                           .assignor = req->server_assignor,
                           .owned = req->topic_partitions_count >= 0 ? &owned : NULL,
                           .client_id = r->hdr.client_id.len < 0 ? kstr_c("") : r->hdr.client_id,
                           .client_host = client_host(r),
                           .version = r->hdr.api_version,
                           .new_member_id = KSTR_NULL};
    if (!(r->b->cfg->group_coordinator_rebalance_protocols & CONFIG_GROUP_PROTOCOL_CONSUMER)) {
        resp->error_code = KAFKA_ERR_UNSUPPORTED_VERSION;
        resp->error_message = kstr_c("The consumer group protocol is not enabled "
                                     "(group.coordinator.rebalance.protocols).");
        return BREQ_DONE;
    }
    if (!bauthz_allow(r, ACL_OP_READ, ACL_RES_GROUP, req->group_id)) {
        resp->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        return BREQ_DONE;
    }
    groups_shard *s = groups_lock(r->b, req->group_id);
    if (s == NULL) {
        resp->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return BREQ_DONE;
    }
    md_image *img = bmeta_image(r->b->meta);
    cg_topics tv = {img, (uint64_t)md_image_offset(img), view_by_name, view_count, view_at};
    /* From here on r belongs to the machine (it may be answered at once). */
    gcoord_cg_heartbeat(s->sm, req->group_id, &hr, &tv, r, groups_now_ms());
    groups_unlock(s);
    md_image_unref(img);
    return BREQ_ASYNC;
}

/* A topic's name for ConsumerGroupDescribe: the group's metadata, else the image. */
static kstr topic_name(breq *r, const cgroup *cg, const md_image *img, kuuid id) {
    for (int i = 0; i < cg->n_topics; i++)
        if (memcmp(cg->topics[i].id.b, id.b, 16) == 0)
            return copy_str(r, kstr_c(cg->topics[i].name));
    const md_topic *t = md_image_topic_by_id(img, id);
    return t ? copy_str(r, (kstr){t->name, t->name_len}) : kstr_c("");
}

static bool describe_assignment(breq *r, const cgroup *cg, const md_image *img, const asg_parts *a,
                                kafka_consumer_group_describe_response_assignment *out) {
    int32_t nt = 0;
    for (int32_t i = 0; i < a->n; i++)
        nt += i == 0 || memcmp(a->v[i].topic.b, a->v[i - 1].topic.b, 16) != 0;
    out->topic_partitions = nt ? breq_calloc(r, (size_t)nt, sizeof *out->topic_partitions) : NULL;
    int32_t *pool = a->n ? breq_calloc(r, (size_t)a->n, sizeof *pool) : NULL;
    if ((nt && out->topic_partitions == NULL) || (a->n && pool == NULL))
        return false;
    out->topic_partitions_count = nt;
    int32_t t = -1;
    for (int32_t i = 0; i < a->n; i++) {
        if (i == 0 || memcmp(a->v[i].topic.b, a->v[i - 1].topic.b, 16) != 0) {
            t++;
            kafka_consumer_group_describe_response_topic_partitions *tp = &out->topic_partitions[t];
            kafka_consumer_group_describe_response_topic_partitions_init(tp);
            tp->topic_id = a->v[i].topic;
            tp->topic_name = topic_name(r, cg, img, a->v[i].topic);
            tp->partitions = pool + i;
            tp->partitions_count = 0;
        }
        out->topic_partitions[t].partitions[out->topic_partitions[t].partitions_count++] = a->v[i].partition;
    }
    return true;
}

static bool cg_describe_one(breq *r, kstr id, const md_image *img,
                            kafka_consumer_group_describe_response_described_group *out) {
    kafka_consumer_group_describe_response_described_group_init(out);
    out->group_id = id;
    out->group_state = kstr_c("Dead");
    out->assignor_name = kstr_c("");
    if (id.len <= 0) {
        out->error_code = KAFKA_ERR_INVALID_GROUP_ID;
        return true;
    }
    if (!bauthz_allow(r, ACL_OP_DESCRIBE, ACL_RES_GROUP, id)) {
        out->error_code = KAFKA_ERR_GROUP_AUTHORIZATION_FAILED;
        return true;
    }
    groups_shard *s = groups_lock(r->b, id);
    if (s == NULL) {
        out->error_code = KAFKA_ERR_COORDINATOR_NOT_AVAILABLE;
        return true;
    }
    if (!gcoord_active(s->sm)) {
        out->error_code =
            gcoord_loading(s->sm) ? KAFKA_ERR_COORDINATOR_LOAD_IN_PROGRESS : KAFKA_ERR_NOT_COORDINATOR;
        groups_unlock(s);
        return true;
    }
    const gcoord_group *g = gcoord_find(s->sm, id);
    if (g == NULL || g->state == GCOORD_DEAD || g->cg == NULL) {
        out->error_code = KAFKA_ERR_GROUP_ID_NOT_FOUND;
        out->error_message =
            kstr_c(g && g->cg == NULL && g->state != GCOORD_DEAD ? "The group is not a consumer group."
                                                                 : "The group does not exist.");
        groups_unlock(s);
        return true;
    }
    const cgroup *cg = g->cg;
    out->group_state = kstr_c(cg_state_name(cg));
    out->group_epoch = cg->epoch;
    out->assignment_epoch = cg->assignment_epoch;
    out->assignor_name = kstr_c(cg_assignor_name(cg, &gcoord_get_config(s->sm)->cg));
    bool ok = true;
    out->members = cg->n_members ? breq_calloc(r, (size_t)cg->n_members, sizeof *out->members) : NULL;
    ok = cg->n_members == 0 || out->members != NULL;
    out->members_count = ok ? cg->n_members : 0;
    for (int i = 0; ok && i < out->members_count; i++) {
        const cg_member *m = cg->members[i];
        kafka_consumer_group_describe_response_member *dm = &out->members[i];
        kafka_consumer_group_describe_response_member_init(dm);
        dm->member_id = copy_str(r, kstr_c(m->id));
        dm->instance_id = m->instance_id ? copy_str(r, kstr_c(m->instance_id)) : KSTR_NULL;
        dm->rack_id = m->rack_id ? copy_str(r, kstr_c(m->rack_id)) : KSTR_NULL;
        dm->member_epoch = m->left ? -2 : m->epoch;
        dm->client_id = copy_str(r, kstr_c(m->client_id ? m->client_id : ""));
        dm->client_host = copy_str(r, kstr_c(m->client_host ? m->client_host : ""));
        dm->subscribed_topic_names = m->n_subs ? breq_calloc(r, (size_t)m->n_subs, sizeof(kstr)) : NULL;
        ok = m->n_subs == 0 || dm->subscribed_topic_names != NULL;
        dm->subscribed_topic_names_count = ok ? m->n_subs : 0;
        for (int k = 0; ok && k < m->n_subs; k++)
            dm->subscribed_topic_names[k] = copy_str(r, kstr_c(m->subs[k]));
        dm->subscribed_topic_regex = m->regex ? copy_str(r, kstr_c(m->regex)) : KSTR_NULL;
        ok = ok && describe_assignment(r, cg, img, &m->assigned, &dm->assignment) &&
             describe_assignment(r, cg, img, &m->target, &dm->target_assignment);
    }
    groups_unlock(s);
    return ok;
}

breq_status api_consumer_group_describe(breq *r) {
    const kafka_consumer_group_describe_request *req = r->req;
    kafka_consumer_group_describe_response *resp = r->resp;
    int n = req->group_ids_count > 0 ? req->group_ids_count : 0;
    resp->groups = n ? breq_calloc(r, (size_t)n, sizeof *resp->groups) : NULL;
    if (n && resp->groups == NULL)
        return BREQ_CLOSE;
    resp->groups_count = n;
    md_image *img = bmeta_image(r->b->meta);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        ok = cg_describe_one(r, req->group_ids[i], img, &resp->groups[i]);
        if (req->include_authorized_operations)
            resp->groups[i].authorized_operations = bauthz_ops(r, ACL_RES_GROUP, req->group_ids[i]);
    }
    md_image_unref(img);
    return ok ? BREQ_DONE : BREQ_CLOSE;
}
