/*
 * api_cluster.c - DescribeCluster (key 60, v0-1) and DescribeLogDirs (key 35,
 * v0-4).
 *
 * DescribeCluster: the cluster id, this node as the only broker and as the
 * controller. Asking a broker listener for controllers (v1 endpoint_type 2)
 * is MISMATCHED_ENDPOINT_TYPE, as on Kafka; an unknown endpoint type is
 * UNSUPPORTED_ENDPOINT_TYPE. Authorized operations stay "not provided" until
 * an authorizer exists.
 *
 * DescribeLogDirs: one result per log.dirs entry, in configuration order,
 * with the partitions it holds (all of them, or those the request names;
 * names and partitions that do not exist are left out, as Kafka does), each
 * partition's size on disk (rpart_size) and an offset lag of 0 (there
 * are no future replicas to lag). v4 adds the file system's total and usable
 * bytes from statvfs(); a directory that cannot be examined reports
 * KAFKA_STORAGE_ERROR. A request for every topic also lists each set-aside
 * directory of the log dir (logmgr_strays: data the metadata log does not
 * account for, kept for an operator) as a "topic" named by the directory,
 * which ends in "-stray" as no real topic's name may, with one partition:
 * the index its name gives (-1 if none) and its size.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker/api_util.h"
#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "core/log.h"

/* DescribeCluster endpoint types. */
#define ENDPOINT_BROKERS     1
#define ENDPOINT_CONTROLLERS 2

breq_status api_describe_cluster(breq *r) {
    const kafka_describe_cluster_request *req = r->req;
    kafka_describe_cluster_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;

    resp->error_message = KSTR_NULL;
    if (!bauthz_cluster(r, ACL_OP_DESCRIBE)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->brokers_count = 0;
        return BREQ_DONE;
    }
    if (ver >= 1 && req->endpoint_type != ENDPOINT_BROKERS) {
        bool ctl = req->endpoint_type == ENDPOINT_CONTROLLERS;
        resp->error_code = ctl ? KAFKA_ERR_MISMATCHED_ENDPOINT_TYPE : KAFKA_ERR_UNSUPPORTED_ENDPOINT_TYPE;
        resp->error_message =
            api_kstr(r, ctl ? "This is a broker endpoint; controllers are not described here."
                            : "Unknown endpoint type.");
    }
    md_image *img = bmeta_image(r->b->meta);
    api_broker *ab = NULL;
    int32_t nb = api_brokers(r, img, &ab);
    md_image_unref(img);
    kafka_describe_cluster_response_describe_cluster_broker *br =
        nb > 0 ? breq_calloc(r, (size_t)nb, sizeof *br) : NULL;
    if (br == NULL)
        return BREQ_CLOSE;
    for (int32_t i = 0; i < nb; i++) {
        kafka_describe_cluster_response_describe_cluster_broker_init(&br[i]);
        br[i].broker_id = ab[i].id;
        br[i].host = ab[i].host;
        br[i].port = ab[i].port;
        br[i].rack = ab[i].rack;
    }
    resp->cluster_id = kstr_c(bmeta_cluster_id(r->b->meta));
    resp->controller_id = api_controller_id(r);
    if (resp->error_code == 0) {
        resp->brokers = br;
        resp->brokers_count = nb;
    }
    return BREQ_DONE;
}

typedef kafka_describe_log_dirs_response_describe_log_dirs_result ld_result;
typedef kafka_describe_log_dirs_response_describe_log_dirs_topic ld_topic;
typedef kafka_describe_log_dirs_response_describe_log_dirs_partition ld_part;

/* The topics (and, per topic, the partition indexes; NULL = all, for a
 * request that names no topics) to report. */
typedef struct ld_sel {
    const md_topic *t;
    const int32_t *parts;
    int32_t n_parts;
} ld_sel;

/* Set-aside directories reported per request, at most. */
#define LD_STRAYS_MAX 1000

/* Fills one log dir's topics from the selection, then the set-aside
 * directories of root (index root_i) among strays. Returns false on
 * exhaustion. */
static bool fill_dir(breq *r, ld_result *res, const char *root, int root_i, const ld_sel *sel, int n_sel,
                     const lm_stray *strays, int n_strays) {
    parts *all_parts = bmeta_parts(r->b->meta);
    int cap = n_sel + n_strays;
    ld_topic *tops = cap ? breq_calloc(r, (size_t)cap, sizeof *tops) : NULL;
    if (cap && tops == NULL)
        return false;
    int32_t nt = 0;
    for (int i = 0; i < n_sel; i++) {
        const md_topic *t = sel[i].t;
        int32_t want = sel[i].parts ? sel[i].n_parts : t->n_partitions;
        ld_part *ps = want > 0 ? breq_calloc(r, (size_t)want, sizeof *ps) : NULL;
        if (want > 0 && ps == NULL)
            return false;
        int32_t np = 0;
        for (int32_t k = 0; k < want; k++) {
            int32_t idx = sel[i].parts ? sel[i].parts[k] : k;
            rpart *p = idx >= 0 && idx < t->n_partitions ? parts_get(all_parts, t->id, idx) : NULL;
            if (p == NULL)
                continue;
            int in_root;
            int64_t size = rpart_size(p, &in_root);
            rpart_release(p);
            if (in_root != root_i)
                continue;
            (void)root;
            kafka_describe_log_dirs_response_describe_log_dirs_partition_init(&ps[np]);
            ps[np].partition_index = idx;
            ps[np].partition_size = size;
            ps[np].offset_lag = 0;
            ps[np].is_future_key = false;
            np++;
        }
        if (np == 0)
            continue;
        kafka_describe_log_dirs_response_describe_log_dirs_topic_init(&tops[nt]);
        tops[nt].name = api_kstr(r, t->name);
        tops[nt].partitions = ps;
        tops[nt].partitions_count = np;
        nt++;
    }
    for (int i = 0; i < n_strays; i++) {
        if (strays[i].root != root_i)
            continue;
        ld_part *ps = breq_calloc(r, 1, sizeof *ps);
        if (ps == NULL)
            return false;
        kafka_describe_log_dirs_response_describe_log_dirs_partition_init(ps);
        ps->partition_index = strays[i].partition;
        ps->partition_size = strays[i].bytes;
        kafka_describe_log_dirs_response_describe_log_dirs_topic_init(&tops[nt]);
        tops[nt].name = api_kstr(r, strays[i].name);
        tops[nt].partitions = ps;
        tops[nt].partitions_count = 1;
        nt++;
    }
    res->topics = tops;
    res->topics_count = nt;
    return true;
}

breq_status api_describe_log_dirs(breq *r) {
    const kafka_describe_log_dirs_request *req = r->req;
    kafka_describe_log_dirs_response *resp = r->resp;
    broker *b = r->b;
    const config_list *dirs = &b->cfg->log_dirs;
    breq_status st = BREQ_CLOSE;
    if (!bauthz_cluster(r, ACL_OP_DESCRIBE)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->results_count = 0;
        return BREQ_DONE;
    }
    md_image *img = bmeta_image(b->meta);
    logmgr *lm = bmeta_logmgr(b->meta);
    int n_sel = 0;
    ld_sel *sel = NULL;

    lm_stray *strays = NULL;
    int n_strays = 0, strays_total = 0;
    if (req->topics_count < 0) {
        logmgr_strays(lm, NULL, 0, &strays_total);
        int want = strays_total < LD_STRAYS_MAX ? strays_total : LD_STRAYS_MAX;
        strays = want ? breq_calloc(r, (size_t)want, sizeof *strays) : NULL;
        if (want && strays == NULL)
            goto out;
        n_strays = want ? logmgr_strays(lm, strays, want, &strays_total) : 0;
        int32_t n_all = md_image_topic_count(img);
        sel = n_all ? breq_calloc(r, (size_t)n_all, sizeof *sel) : NULL;
        if (n_all && sel == NULL)
            goto out;
        for (int32_t i = 0; i < n_all; i++)
            sel[n_sel++] = (ld_sel){md_image_topic_at(img, i), NULL, 0};
    } else if (req->topics_count > 0) {
        sel = breq_calloc(r, (size_t)req->topics_count, sizeof *sel);
        if (sel == NULL)
            goto out;
        for (int32_t i = 0; i < req->topics_count; i++) {
            const kafka_describe_log_dirs_request_describable_log_dir_topic *q = &req->topics[i];
            const md_topic *t = md_image_topic(img, q->topic);
            /* An empty partition list asks for none (as in Kafka), not all:
             * otherwise every few bytes of request would name a whole topic. */
            if (t != NULL && q->partitions_count > 0)
                sel[n_sel++] = (ld_sel){t, q->partitions, q->partitions_count};
        }
    }

    resp->results = breq_calloc(r, (size_t)dirs->n, sizeof *resp->results);
    if (resp->results == NULL)
        goto out;
    for (int d = 0; d < dirs->n; d++) {
        ld_result *res = &resp->results[d];
        kafka_describe_log_dirs_response_describe_log_dirs_result_init(res);
        res->log_dir = kstr_c(dirs->items[d]);
        struct statvfs sv;
        if (statvfs(dirs->items[d], &sv) != 0) {
            res->error_code = KAFKA_ERR_KAFKA_STORAGE_ERROR;
            continue;
        }
        if (r->hdr.api_version >= 4) {
            res->total_bytes = (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
            res->usable_bytes = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
        }
        if (!fill_dir(r, res, dirs->items[d], d, sel, n_sel, strays, n_strays))
            goto out;
    }
    resp->results_count = dirs->n;
    st = BREQ_DONE;
out:
    md_image_unref(img);
    return st;
}
