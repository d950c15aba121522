/*
 * request.c - request dispatch: header, version check, decode, handler,
 * encode, send. See request.h.
 */
#include "broker/request.h"
#include "core/clock.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/api_util.h"
#include "broker/authz.h"
#include "broker/apis.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/quota.h"
#include "broker/rpc.h"
#include "broker/sasl.h"
#include "core/log.h"
#include "obs/metrics.h"

/* Memory a request may use beyond its frame: decoded arrays are at most a
 * small multiple of the bytes that describe them, and the base covers
 * responses much larger than their requests (Metadata for every topic: about
 * 1 KiB of structs per partition). Arenas take memory only as it is used. */
#define BREQ_ARENA_BASE     (64u << 20)
#define BREQ_ARENA_PER_BYTE 8u
#define BREQ_ARENA_MAX      (512u << 20)

/* The APIs this broker answers, and at which versions. Only these are
 * advertised by ApiVersions; anything else closes the connection. */
static const broker_api broker_apis[] = {
    {KAFKA_API_PRODUCE, 0, 11, api_produce},
    /* Fetch v0-3 clients read only the old message formats: api_fetch
     * down-converts the logs' magic-2 batches for them. */
    {KAFKA_API_FETCH, 0, 17, api_fetch},
    {KAFKA_API_LIST_OFFSETS, 0, 10, api_list_offsets},
    {KAFKA_API_API_VERSIONS, 0, 4, api_versions},
    {KAFKA_API_DELETE_RECORDS, 0, 2, api_delete_records},
    {KAFKA_API_OFFSET_FOR_LEADER_EPOCH, 0, 4, api_offset_for_leader_epoch},
    {KAFKA_API_METADATA, 0, 12, api_metadata},
    {KAFKA_API_CREATE_TOPICS, 0, 7, api_create_topics},
    {KAFKA_API_DELETE_TOPICS, 0, 6, api_delete_topics},
    {KAFKA_API_CREATE_PARTITIONS, 0, 3, api_create_partitions},
    {KAFKA_API_DESCRIBE_CONFIGS, 0, 4, api_describe_configs},
    {KAFKA_API_ALTER_CONFIGS, 0, 2, api_alter_configs},
    {KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 0, 1, api_incremental_alter_configs},
    {KAFKA_API_DESCRIBE_CLUSTER, 0, 1, api_describe_cluster},
    {KAFKA_API_ELECT_LEADERS, 0, 2, api_elect_leaders},
    {KAFKA_API_UNREGISTER_BROKER, 0, 0, api_unregister_broker},
    {KAFKA_API_UPDATE_FEATURES, 0, 1, api_update_features},
    {KAFKA_API_DESCRIBE_LOG_DIRS, 0, 4, api_describe_log_dirs},
    {KAFKA_API_FIND_COORDINATOR, 0, 6, api_find_coordinator},
    {KAFKA_API_JOIN_GROUP, 0, 9, api_join_group},
    {KAFKA_API_SYNC_GROUP, 0, 5, api_sync_group},
    {KAFKA_API_HEARTBEAT, 0, 4, api_heartbeat},
    {KAFKA_API_LEAVE_GROUP, 0, 5, api_leave_group},
    {KAFKA_API_OFFSET_COMMIT, 0, 9, api_offset_commit},
    {KAFKA_API_OFFSET_FETCH, 0, 9, api_offset_fetch},
    {KAFKA_API_DESCRIBE_GROUPS, 0, 5, api_describe_groups},
    {KAFKA_API_LIST_GROUPS, 0, 5, api_list_groups},
    {KAFKA_API_DELETE_GROUPS, 0, 2, api_delete_groups},
    {KAFKA_API_OFFSET_DELETE, 0, 0, api_offset_delete},
    {KAFKA_API_CONSUMER_GROUP_HEARTBEAT, 0, 1, api_consumer_group_heartbeat},
    {KAFKA_API_CONSUMER_GROUP_DESCRIBE, 0, 0, api_consumer_group_describe},
    {KAFKA_API_VOTE, 0, 2, api_quorum},
    {KAFKA_API_BEGIN_QUORUM_EPOCH, 0, 1, api_quorum},
    {KAFKA_API_END_QUORUM_EPOCH, 0, 1, api_quorum},
    {KAFKA_API_DESCRIBE_QUORUM, 0, 2, api_quorum},
    {KAFKA_API_FETCH_SNAPSHOT, 0, 1, api_quorum},
    {KAFKA_API_BROKER_REGISTRATION, 0, 4, api_broker_registration},
    {KAFKA_API_BROKER_HEARTBEAT, 0, 1, api_broker_heartbeat},
    {KAFKA_API_ALTER_PARTITION, 0, 3, api_alter_partition},
    {KAFKA_API_INIT_PRODUCER_ID, 0, 5, api_init_producer_id},
    {KAFKA_API_ADD_PARTITIONS_TO_TXN, 0, 4, api_add_partitions_to_txn},
    {KAFKA_API_ADD_OFFSETS_TO_TXN, 0, 4, api_add_offsets_to_txn},
    {KAFKA_API_END_TXN, 0, 4, api_end_txn},
    {KAFKA_API_WRITE_TXN_MARKERS, 0, 1, api_write_txn_markers},
    {KAFKA_API_TXN_OFFSET_COMMIT, 0, 4, api_txn_offset_commit},
    {KAFKA_API_DESCRIBE_TRANSACTIONS, 0, 0, api_describe_transactions},
    {KAFKA_API_LIST_TRANSACTIONS, 0, 1, api_list_transactions},
    {KAFKA_API_DESCRIBE_PRODUCERS, 0, 0, api_describe_producers},
    {KAFKA_API_ALLOCATE_PRODUCER_IDS, 0, 0, api_allocate_producer_ids},
    {KAFKA_API_SASL_HANDSHAKE, 0, 1, api_sasl_handshake},
    {KAFKA_API_SASL_AUTHENTICATE, 0, 2, api_sasl_authenticate},
    {KAFKA_API_DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0, api_describe_user_scram_credentials},
    {KAFKA_API_ALTER_USER_SCRAM_CREDENTIALS, 0, 0, api_alter_user_scram_credentials},
    {KAFKA_API_DESCRIBE_ACLS, 0, 3, api_describe_acls},
    {KAFKA_API_CREATE_ACLS, 0, 3, api_create_acls},
    {KAFKA_API_DELETE_ACLS, 0, 3, api_delete_acls},
    {KAFKA_API_DESCRIBE_CLIENT_QUOTAS, 0, 1, api_describe_client_quotas},
    {KAFKA_API_ALTER_CLIENT_QUOTAS, 0, 1, api_alter_client_quotas},
};

const broker_api *broker_api_lookup(int16_t key) {
    for (size_t i = 0; i < sizeof broker_apis / sizeof broker_apis[0]; i++)
        if (broker_apis[i].key == key)
            return &broker_apis[i];
    return NULL;
}

bool broker_api_range(int16_t key, int16_t *min, int16_t *max) {
    const broker_api *a = broker_api_lookup(key);
    if (a == NULL)
        return false;
    *min = a->min_version;
    *max = a->max_version;
    return true;
}

bool broker_api_filter(const kafka_api_info *api, void *ctx, int16_t *min, int16_t *max) {
    (void)ctx;
    int16_t lo, hi;
    if (!broker_api_range(api->key, &lo, &hi))
        return false;
    /* Never offer more than the codec can speak. */
    if (lo > *min)
        *min = lo;
    if (hi < *max)
        *max = hi;
    return true;
}

bool breq_should_stop(const breq *r) {
    return atomic_load_explicit(&r->b->draining, memory_order_relaxed) || clock_mono_ns() > r->deadline_ns;
}

void *breq_alloc(breq *r, size_t n) { return arena_alloc(&r->mem, n); }

void *breq_calloc(breq *r, size_t count, size_t size) { return arena_calloc(&r->mem, count, size); }

bool breq_reserve_response(breq *r, size_t n) { return net_request_reserve(r->net, n); }

void breq_unreserve_response(breq *r, size_t n) { net_request_unreserve(r->net, n); }

bool breq_attach_file(breq *r, int fd, int64_t off, size_t len, net_release_fn release, void *arg) {
    if (r->n_files == r->cap_files) {
        int ncap = r->cap_files ? r->cap_files * 2 : 16;
        breq_file_range *nf =
            ncap <= BREQ_MAX_FILE_RANGES ? arena_calloc(&r->mem, (size_t)ncap, sizeof *nf) : NULL;
        if (nf == NULL) {
            if (release)
                release(arg);
            return false;
        }
        if (r->n_files)
            memcpy(nf, r->files, (size_t)r->n_files * sizeof *nf);
        r->files = nf;
        r->cap_files = ncap;
    }
    r->files[r->n_files++] = (breq_file_range){fd, off, len, release, arg};
    return true;
}

static void breq_free(breq *r) {
    bauthz_release(r);
    /* File ranges never handed to the network layer are released here. */
    for (int i = 0; i < r->n_files; i++)
        if (r->files[i].release)
            r->files[i].release(r->files[i].arg);
    arena_reset(&r->mem);
    free(r);
}

static void breq_close(breq *r, bool respond_close) {
    if (respond_close)
        net_respond(r->net, NULL, true);
    breq_free(r);
}

/* ---- encoding with spliced file ranges -------------------------------- */

typedef struct splice_cut {
    size_t at;      /* offset in the memory buffer */
    int first, end; /* file ranges [first, end) go here */
} splice_cut;

typedef struct splice_state {
    breq *r;
    int next_file;
    splice_cut *cuts;
    int n_cuts, cap_cuts;
    bool bad;
} splice_state;

static bool splice_hook(void *ctx, const kbytes *b, size_t at) {
    splice_state *st = ctx;
    if (b->ptr != NULL)
        return false;
    breq *r = st->r;
    size_t want = (size_t)b->len, got = 0;
    int first = st->next_file;
    while (got < want && st->next_file < r->n_files)
        got += r->files[st->next_file++].len;
    if (got != want || st->n_cuts == st->cap_cuts) {
        st->bad = true;
        return false; /* the writer then fails with WIRE_EINVAL */
    }
    st->cuts[st->n_cuts++] = (splice_cut){at, first, st->next_file};
    return true;
}

/* Encodes r->resp into a net_response, splicing attached file ranges. */
static net_response *encode_response(breq *r) {
    int16_t key = r->hdr.api_key, ver = r->hdr.api_version;
    size_t hdr = proto_response_header_size(key, ver);
    size_t body = r->api->response_size(ver, r->resp);
    size_t spliced = 0;
    for (int i = 0; i < r->n_files; i++)
        spliced += r->files[i].len;
    if (hdr + body > INT32_MAX || spliced > body) {
        LOG_ERROR("broker", "%s v%d response to %s is too large (%zu bytes)", r->api->name, ver, r->net->peer,
                  hdr + body);
        return NULL;
    }
    size_t mem_len = 4 + hdr + body - spliced;
    uint8_t *buf = malloc(mem_len);
    net_response *out = net_response_new();
    splice_state st = {.r = r};
    if (r->n_files) {
        st.cap_cuts = r->n_files;
        st.cuts = arena_calloc(&r->mem, (size_t)st.cap_cuts, sizeof *st.cuts);
    }
    if (buf == NULL || out == NULL || (r->n_files && st.cuts == NULL))
        goto err;
    wire_writer w;
    wire_writer_init(&w, buf, mem_len);
    if (r->n_files) {
        w.splice = splice_hook;
        w.splice_ctx = &st;
    }
    wire_write_i32(&w, (int32_t)(hdr + body));
    proto_response_header_write(&w, key, ver, r->hdr.correlation_id);
    int rc = r->api->response_encode(&w, ver, r->resp);
    if (rc == WIRE_OK)
        rc = w.err;
    if (rc != WIRE_OK || st.bad || w.len != mem_len || st.next_file != r->n_files) {
        LOG_ERROR("broker", "encoding %s v%d response to %s failed: %s", r->api->name, ver, r->net->peer,
                  st.bad ? "file ranges do not match records fields" : wire_strerror(rc ? rc : WIRE_EINVAL));
        goto err;
    }
    /* Memory pieces between the cuts, file ranges at them. The first piece
     * owns buf; the others point into it. */
    size_t pos = 0;
    const uint8_t *base = buf; /* stays valid: out owns it after the first piece */
    for (int c = 0; c <= st.n_cuts; c++) {
        size_t end = c < st.n_cuts ? st.cuts[c].at : mem_len;
        bool ok = pos == 0 ? net_response_append_owned(out, buf, end)
                           : net_response_append_ref(out, base + pos, end - pos);
        if (pos == 0)
            buf = NULL; /* owned by out now, even on failure */
        if (!ok)
            goto err;
        pos = end;
        if (c < st.n_cuts) {
            for (int f = st.cuts[c].first; f < st.cuts[c].end; f++) {
                breq_file_range *fr = &r->files[f];
                net_release_fn rel = fr->release;
                fr->release = NULL; /* handed over: the response releases it */
                if (!net_response_append_file(out, fr->fd, fr->off, fr->len, rel, fr->arg))
                    goto err;
            }
        }
    }
    return out;
err:
    free(buf);
    net_response_free(out);
    return NULL;
}

void breq_parked(breq *r) { r->local_end_ns = clock_mono_ns(); }

static kstr client_id_of(const breq *r);

/* Slow requests: a client can cause them at will (huge requests), so the
 * lines are rate-limited. */
static log_ratelimit slow_rl = LOG_RATELIMIT_DEFAULT;

/* Counts a request answered (or closed) now in the latency metrics, and
 * logs it when the broker's own time on it passed sluice.request.slow.log.ms. */
static void account(breq *r, int64_t now, bool closed) {
    const obs_metrics *m = r->b->metrics;
    int64_t slow_ms = r->b->cfg ? r->b->cfg->request_slow_log_ms : 0;
    if ((m == NULL || !m->enabled) && slow_ms <= 0)
        return;
    /* -1: answered by the handler itself (local until now, encoding
     * included); 0: parked without breq_parked (all remote). */
    int64_t local_end = r->local_end_ns < 0 ? now : r->local_end_ns ? r->local_end_ns : r->start_ns;
    int64_t received = r->net->received_ns ? r->net->received_ns : r->start_ns;
    int64_t queue = r->start_ns - received, local = local_end - r->start_ns, remote = now - local_end;
    obs_request_done(r->b->metrics, r->hdr.api_key, queue, local, remote, now - received, closed);
    if (slow_ms > 0 && queue + local > slow_ms * 1000000) {
        kstr cid = client_id_of(r);
        LOG_WARN_LIMITED(&slow_rl, "broker",
                         "slow request: %s v%d from %s (client '%.*s', correlation %d) took %.1f ms: queue "
                         "%.1f ms, local %.1f ms, remote %.1f ms%s",
                         r->api ? r->api->name : "?", r->hdr.api_version, r->net->peer, cid.len, cid.ptr,
                         r->hdr.correlation_id, (double)(now - received) / 1e6, (double)queue / 1e6,
                         (double)local / 1e6, (double)remote / 1e6, closed ? "; connection closed" : "");
    }
}

static bool inter_node_api(int16_t key);

static bool follower_fetch(const breq *r) {
    const kafka_fetch_request *req = r->req;
    return (r->hdr.api_version >= 15 ? req->replica_state.replica_id : req->replica_id) >= 0;
}

/* The quota user: the principal's name without "User:" (ANONYMOUS). */
static const char *quota_user(breq *r) {
    const char *p = bsasl_principal(r);
    return strncmp(p, "User:", 5) == 0 ? p + 5 : p;
}

static kstr quota_client(const breq *r) { return r->hdr.client_id.len > 0 ? r->hdr.client_id : kstr_c(""); }

static bool mutation_quota_applies(const breq *r) {
    return r->b->quota != NULL && r->b->meta != NULL && !r->controller_listener &&
           bmeta_has_quotas(r->b->meta);
}

bool breq_mutation_refused(breq *r, bool strict) {
    if (!strict || !mutation_quota_applies(r))
        return false;
    md_image *img = bmeta_image(r->b->meta);
    int64_t now = clock_mono_ns() / 1000000;
    bool over = bquota_mutation_exceeded(r->b->quota, img, quota_user(r), quota_client(r), now);
    if (over) {
        int64_t wait = bquota_mutation_wait_ms(r->b->quota, img, quota_user(r), quota_client(r), now);
        if (wait > r->throttle_ms)
            r->throttle_ms = wait;
    }
    md_image_unref(img);
    return over;
}

void breq_mutation_done(breq *r, int32_t n) {
    if (n <= 0 || !mutation_quota_applies(r))
        return;
    md_image *img = bmeta_image(r->b->meta);
    int64_t t = bquota_record(r->b->quota, img, BQUOTA_MUTATION, quota_user(r), quota_client(r), (double)n,
                              clock_mono_ns() / 1000000);
    md_image_unref(img);
    if (t > r->throttle_ms)
        r->throttle_ms = t;
}

/* Client quotas (quota.h): records r against the quotas of its user and
 * client id and returns the throttle time, the largest any of them earns.
 * Produce counts the request's bytes, a consumer's Fetch the response's,
 * every request its handler time (request_percentage). Exempt, as in
 * Kafka: the controller listener, the quorum's and brokers' own APIs, and
 * follower fetches (replication has its own quotas in Kafka). */
static int64_t quota_throttle(breq *r) {
    if (r->b->quota == NULL || r->b->meta == NULL || r->controller_listener || r->api == NULL ||
        inter_node_api(r->hdr.api_key) || !bmeta_has_quotas(r->b->meta))
        return 0;
    md_image *img = bmeta_image(r->b->meta);
    if (img == NULL)
        return 0;
    if (md_quota_set_count(md_image_quotas(img)) == 0) {
        md_image_unref(img);
        return 0;
    }
    const char *user = quota_user(r);
    kstr cid = quota_client(r);
    int64_t now_ns = clock_mono_ns(), now = now_ns / 1000000, t = 0, x;
    int16_t key = r->hdr.api_key;
    if (key == KAFKA_API_PRODUCE) {
        x = bquota_record(r->b->quota, img, BQUOTA_PRODUCE, user, cid, (double)r->net->len, now);
        t = x > t ? x : t;
    } else if (key == KAFKA_API_FETCH && r->req != NULL && !follower_fetch(r)) {
        double bytes = r->resp ? (double)r->api->response_size(r->hdr.api_version, r->resp) : 0;
        x = bquota_record(r->b->quota, img, BQUOTA_FETCH, user, cid, bytes, now);
        t = x > t ? x : t;
    } else if (key == KAFKA_API_FETCH) {
        md_image_unref(img);
        return 0;
    }
    /* The handler's own time, a long poll's wait left out. */
    int64_t end = r->local_end_ns > 0 ? r->local_end_ns : now_ns;
    double pct = (double)(end - r->start_ns) * 100.0 / 1e9;
    x = bquota_record(r->b->quota, img, BQUOTA_REQUEST, user, cid, pct > 0 ? pct : 0, now);
    t = x > t ? x : t;
    md_image_unref(img);
    return t > INT32_MAX ? INT32_MAX : t;
}

void breq_complete(breq *r) {
    int64_t throttle = quota_throttle(r);
    if (r->throttle_ms > throttle)
        throttle = r->throttle_ms > INT32_MAX ? INT32_MAX : r->throttle_ms;
    if (throttle > 0)
        bquota_set_throttle_field(r->hdr.api_key, r->hdr.api_version, r->resp, (int32_t)throttle);
    net_response *out = encode_response(r);
    int64_t now = clock_mono_ns();
    if (r->b->metrics != NULL && r->b->metrics->enabled)
        net_response_set_tag(out, r->hdr.api_key);
    account(r, now, out == NULL);
    int64_t us = (now - r->start_ns) / 1000;
    LOG_DEBUG("broker", "%s v%d from %s (client %.*s, correlation %d) took %lld us", r->api->name,
              r->hdr.api_version, r->net->peer, r->hdr.client_id.len > 0 ? r->hdr.client_id.len : 0,
              r->hdr.client_id.len > 0 ? r->hdr.client_id.ptr : "", r->hdr.correlation_id, (long long)us);
    if (throttle > 0 && out != NULL)
        net_request_mute(r->net, throttle);
    net_respond(r->net, out, out == NULL || r->close_after_response);
    breq_free(r);
}

void breq_abort(breq *r) { breq_close(r, true); }

/* ---- dispatch --------------------------------------------------------- */

static void answer_unsupported_api_versions(breq *r) {
    size_t cap = 4096;
    uint8_t *buf = malloc(cap);
    net_response *out = net_response_new();
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i32(&w, 0);
    int rc = buf && out ? proto_api_versions_write_unsupported(&w, r->hdr.correlation_id, &r->mem,
                                                               broker_api_filter, NULL)
                        : WIRE_ENOMEM;
    if (rc != WIRE_OK || w.err != WIRE_OK) {
        free(buf);
        net_response_free(out);
        breq_close(r, true);
        return;
    }
    wire_put_be32(buf, (uint32_t)(w.len - 4));
    if (!net_response_append_owned(out, buf, w.len)) {
        net_response_free(out);
        breq_close(r, true);
        return;
    }
    net_respond(r->net, out, false);
    breq_free(r);
}

/* Requests for APIs or versions the broker does not serve: a client that
 * keeps retrying one must not flood the log. */
static log_ratelimit refused_api_rl = LOG_RATELIMIT_DEFAULT;
/* Requests that do not parse: as easy to send in a loop. */
static log_ratelimit malformed_rl = LOG_RATELIMIT_DEFAULT;

static kstr client_id_of(const breq *r) { return r->hdr.client_id.len > 0 ? r->hdr.client_id : kstr_c(""); }

/* ---- forwarding to the active controller -------------------------------------------- */

static bool forwarded_api(int16_t key) {
    return key == KAFKA_API_CREATE_TOPICS || key == KAFKA_API_DELETE_TOPICS ||
           key == KAFKA_API_CREATE_PARTITIONS || key == KAFKA_API_ALTER_CONFIGS ||
           key == KAFKA_API_INCREMENTAL_ALTER_CONFIGS || key == KAFKA_API_ELECT_LEADERS ||
           key == KAFKA_API_UNREGISTER_BROKER || key == KAFKA_API_ALTER_USER_SCRAM_CREDENTIALS ||
           key == KAFKA_API_UPDATE_FEATURES || key == KAFKA_API_CREATE_ACLS || key == KAFKA_API_DELETE_ACLS ||
           key == KAFKA_API_ALTER_CLIENT_QUOTAS;
}

static bool inter_node_api(int16_t key) {
    return key == KAFKA_API_VOTE || key == KAFKA_API_BEGIN_QUORUM_EPOCH ||
           key == KAFKA_API_END_QUORUM_EPOCH || key == KAFKA_API_FETCH_SNAPSHOT ||
           key == KAFKA_API_BROKER_REGISTRATION || key == KAFKA_API_BROKER_HEARTBEAT ||
           key == KAFKA_API_DESCRIBE_QUORUM;
}

static log_ratelimit forward_rl = LOG_RATELIMIT_DEFAULT;

static int32_t created_topics(breq *r, const uint8_t *frame, size_t len, kstr **out);

/* A quorum member that is not the active controller sends a client's admin
 * request, as the client framed it, to the active controller's controller
 * listener and relays the answer (Kafka 4 forwards them too). True when
 * answered; false to answer here (NOT_CONTROLLER while none is elected or
 * the controller cannot be reached: clients retry it). */
static bool forward(breq *r) {
    int32_t id;
    char host[256];
    uint16_t port;
    if (!bmeta_controller_address(r->b->meta, &id, host, sizeof host, &port))
        return false;
    net_client c;
    net_client_init(&c, host, port);
    c.cancel = &r->b->draining; /* a shutdown does not wait for the controller */
    int timeout = r->b->cfg->quorum_request_timeout_ms + 30000;
    int rc = brpc_call_raw(&c, r->net->frame, r->net->len, timeout);
    if (rc != 0) {
        LOG_WARN_LIMITED(
            &forward_rl, "broker",
            "forwarding %s from %s to the active controller (node %d at %s:%u) failed: %s; answered "
            "here",
            r->api->name, r->net->peer, id, host, port, strerror(-rc));
        net_client_free(&c);
        return false;
    }
    /* The topics a forwarded CreateTopics created (copied: the answer's
     * bytes go to the client). */
    kstr *made = NULL;
    int32_t n_made = 0;
    if (r->hdr.api_key == KAFKA_API_CREATE_TOPICS &&
        !((const kafka_create_topics_request *)r->req)->validate_only)
        n_made = created_topics(r, c.buf, c.len, &made);
    net_response *out = net_response_new();
    uint8_t sz[4];
    wire_put_be32(sz, (uint32_t)c.len);
    bool ok = out && net_response_append(out, sz, 4) && net_response_append_owned(out, c.buf, c.len);
    c.buf = NULL;
    net_client_free(&c);
    if (!ok) {
        net_response_free(out);
        return false;
    }
    /* A created topic is in this node's next Metadata answer, as when it is
     * created here. */
    bmeta_wait_topics(r->b->meta, made, n_made);
    net_respond(r->net, out, false);
    breq_free(r);
    return true;
}

/* The names a CreateTopics answer (frame after the size prefix) reports
 * created, copied into r's arena; their count (0 when none or undecodable). */
static int32_t created_topics(breq *r, const uint8_t *frame, size_t len, kstr **out) {
    wire_reader rd;
    wire_reader_init(&rd, frame, len);
    (void)wire_read_i32(&rd);
    if (proto_response_header_version(r->hdr.api_key, r->hdr.api_version) >= 1) {
        uint32_t tags = wire_read_uvarint(&rd);
        for (uint32_t i = 0; i < tags && rd.err == WIRE_OK; i++) {
            (void)wire_read_uvarint(&rd);
            wire_skip(&rd, wire_read_uvarint(&rd));
        }
    }
    kafka_create_topics_response *cr = breq_alloc(r, sizeof *cr);
    if (cr == NULL || rd.err != WIRE_OK)
        return 0;
    kafka_create_topics_response_init(cr);
    if (kafka_create_topics_response_decode(&rd, r->hdr.api_version, &r->mem, cr) != WIRE_OK ||
        cr->topics_count <= 0)
        return 0;
    kstr *v = breq_calloc(r, (size_t)cr->topics_count, sizeof *v);
    int32_t n = 0;
    for (int32_t i = 0; v && i < cr->topics_count; i++)
        if (cr->topics[i].error_code == 0)
            v[n++] = api_kstr_dup(r, cr->topics[i].name);
    *out = v;
    return v ? n : 0;
}

static void handle(broker *b, net_request *nr, bool controller_listener);

void broker_handle_request(void *ctx, net_request *nr) { handle(ctx, nr, false); }
void broker_handle_controller_request(void *ctx, net_request *nr) { handle(ctx, nr, true); }

static void handle(broker *b, net_request *nr, bool controller_listener) {
    /* A raw SASL token (SaslHandshake v0 framing) is not a request. */
    if (nr->sasl && bsasl_intercept(b, nr))
        return;
    breq *r = calloc(1, sizeof *r);
    if (r == NULL) {
        net_respond(nr, NULL, true);
        return;
    }
    r->b = b;
    r->controller_listener = controller_listener;
    r->net = nr;
    r->start_ns = clock_mono_ns();
    int64_t work_ms = r->b->cfg ? r->b->cfg->request_work_max_ms : 5000;
    r->deadline_ns = r->start_ns + work_ms * 1000000;
    size_t limit = BREQ_ARENA_BASE + nr->len * BREQ_ARENA_PER_BYTE;
    arena_init(&r->mem, limit > BREQ_ARENA_MAX ? BREQ_ARENA_MAX : limit);

    wire_reader rd;
    wire_reader_init(&rd, nr->frame, nr->len);
    int rc = proto_request_header_parse(&rd, &r->hdr);
    if (rc != WIRE_OK) {
        LOG_WARN_LIMITED(&malformed_rl, "broker", "closing connection from %s: malformed request header (%s)",
                         nr->peer, wire_strerror(rc));
        obs_malformed(r->b->metrics);
        breq_close(r, true);
        return;
    }
    const broker_api *ba = broker_api_lookup(r->hdr.api_key);
    r->api = r->hdr.api;
    if (ba == NULL || r->api == NULL) {
        kstr cid = client_id_of(r);
        LOG_INFO_LIMITED(
            &refused_api_rl, "broker",
            "refused api key %d (%s) v%d from %s (client '%.*s'): not served; closing the connection",
            r->hdr.api_key, r->api ? r->api->name : "unknown", r->hdr.api_version, nr->peer, cid.len,
            cid.ptr);
        obs_malformed(r->b->metrics);
        breq_close(r, true);
        return;
    }
    if (!bsasl_gate(r)) {
        obs_malformed(r->b->metrics);
        breq_close(r, true);
        return;
    }
    int16_t ver = r->hdr.api_version;
    if (ver < ba->min_version || ver > ba->max_version || !proto_version_supported(r->hdr.api_key, ver)) {
        kstr cid = client_id_of(r);
        bool av = r->hdr.api_key == KAFKA_API_API_VERSIONS;
        LOG_INFO_LIMITED(
            &refused_api_rl, "broker", "refused %s v%d from %s (client '%.*s'): served v%d-%d; %s",
            r->api->name, ver, nr->peer, cid.len, cid.ptr, ba->min_version, ba->max_version,
            av ? "answered UNSUPPORTED_VERSION with the supported ranges" : "closing the connection");
        r->local_end_ns = -1;
        account(r, clock_mono_ns(), !av);
        if (av) {
            answer_unsupported_api_versions(r);
            return;
        }
        breq_close(r, true);
        return;
    }
    r->req = arena_alloc(&r->mem, r->api->request_struct_size);
    r->resp = arena_alloc(&r->mem, r->api->response_struct_size);
    if (r->req == NULL || r->resp == NULL) {
        breq_close(r, true);
        return;
    }
    rc = r->api->request_decode(&rd, ver, &r->mem, r->req);
    if (rc != WIRE_OK) {
        LOG_WARN_LIMITED(&malformed_rl, "broker",
                         "closing connection from %s: cannot decode %s v%d request (correlation %d): %s",
                         nr->peer, r->api->name, ver, r->hdr.correlation_id, wire_strerror(rc));
        r->local_end_ns = -1;
        account(r, clock_mono_ns(), true);
        breq_close(r, true);
        return;
    }
    r->api->response_init(r->resp);
    if (!r->controller_listener && forwarded_api(r->hdr.api_key) && r->b->meta &&
        bmeta_is_quorum_member(r->b->meta) && bauthz_forwardable(r) && forward(r))
        return;

    /* The quorum's and the brokers' own APIs on a client listener: only a
     * principal with CLUSTER_ACTION (a broker) may send them. */
    if (bauthz_on(r) && inter_node_api(r->hdr.api_key) && !bauthz_cluster(r, ACL_OP_CLUSTER_ACTION)) {
        breq_close(r, true);
        return;
    }
    /* An asynchronous request may be completed (and freed) by another
     * thread before fn returns: r is not touched after BREQ_ASYNC. Until
     * the handler calls breq_parked, its time counts as remote. */
    r->local_end_ns = 0;
    breq_status st = ba->fn(r);
    if (st != BREQ_ASYNC) {
        r->local_end_ns = -1;
        if (st != BREQ_DONE)
            account(r, clock_mono_ns(), st == BREQ_CLOSE);
    }
    switch (st) {
    case BREQ_DONE:
        breq_complete(r);
        break;
    case BREQ_NO_RESPONSE: {
        /* acks=0: nothing to tell the client; the mute alone throttles it. */
        int64_t throttle = quota_throttle(r);
        if (throttle > 0)
            net_request_mute(nr, throttle);
        net_respond(nr, NULL, false);
        breq_free(r);
        break;
    }
    case BREQ_CLOSE:
        breq_close(r, true);
        break;
    case BREQ_ASYNC:
        break;
    }
}
