/*
 * observe_prom.c - /metrics: the counters of obs/metrics.h and the state
 * copied by observe_state.c in the Prometheus text format, named as
 * docs/metrics.md lists them.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/observe_internal.h"
#include "broker/quota.h"
#include "broker/txns.h"
#include "core/clock.h"
#include "core/version.h"
#include "proto/gen/kafka_msgs.h"

static void gauge(obs_buf *o, const char *name, const char *help, double v) {
    obs_prom_family(o, name, "gauge", help);
    obs_buf_printf(o, "%s %.17g\n", name, v);
}

static void counter(obs_buf *o, const char *name, const char *help, uint64_t v) {
    obs_prom_family(o, name, "counter", help);
    obs_buf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* topic="...",partition="N" */
static void tp_labels(obs_buf *o, const char *topic, int32_t partition) {
    obs_buf_puts(o, "{topic=\"");
    obs_prom_escape(o, topic, strlen(topic));
    obs_buf_printf(o, "\",partition=\"%d\"}", partition);
}

typedef struct topic_ctx {
    obs_buf *o;
    md_image *img;
    int which; /* field index into obs_counters */
} topic_ctx;

static uint64_t counter_field(const obs_counters *c, int which) {
    switch (which) {
    case 0:
        return c->messages_in;
    case 1:
        return c->bytes_in;
    case 2:
        return c->bytes_out;
    case 3:
        return c->produce_requests;
    case 4:
        return c->produce_failed;
    case 5:
        return c->fetch_requests;
    default:
        return c->fetch_failed;
    }
}

static bool write_topic_counter(void *ctx, obs_topic *t) {
    topic_ctx *tc = ctx;
    if (md_image_topic(tc->img, (kstr){t->name, (int32_t)t->len}) == NULL)
        return true; /* deleted: Kafka drops its series too */
    obs_counters c;
    obs_topic_counters(t, &c);
    static const char *const names[] = {"messagesin",
                                        "bytesin",
                                        "bytesout",
                                        "totalproducerequests",
                                        "failedproducerequests",
                                        "totalfetchrequests",
                                        "failedfetchrequests"};
    obs_buf_printf(tc->o, "kafka_server_brokertopicmetrics_%s_total{topic=\"", names[tc->which]);
    obs_prom_escape(tc->o, t->name, t->len);
    obs_buf_printf(tc->o, "\"} %llu\n", (unsigned long long)counter_field(&c, tc->which));
    return !tc->o->full;
}

static void write_topic_metrics(broker *b, obs_buf *o, md_image *img) {
    static const char *const names[] = {"messagesin",
                                        "bytesin",
                                        "bytesout",
                                        "totalproducerequests",
                                        "failedproducerequests",
                                        "totalfetchrequests",
                                        "failedfetchrequests"};
    static const char *const helps[] = {
        "Records appended by produce requests (no topic label: all topics).",
        "Record bytes appended by produce requests.",
        "Record bytes returned by fetch requests (consumers and followers).",
        "Produce requests per topic: one per topic entry of a Produce request.",
        "Produce topic entries with at least one refused partition.",
        "Fetch requests per topic: one per topic of a Fetch answer.",
        "Fetch topic entries with at least one partition answered with an error.",
    };
    obs_counters all;
    obs_totals(b->metrics, &all, NULL);
    for (int w = 0; w < 7; w++) {
        char name[96];
        snprintf(name, sizeof name, "kafka_server_brokertopicmetrics_%s_total", names[w]);
        obs_prom_family(o, name, "counter", helps[w]);
        obs_buf_printf(o, "%s %llu\n", name, (unsigned long long)counter_field(&all, w));
        topic_ctx tc = {o, img, w};
        obs_topics_each(b->metrics, write_topic_counter, &tc);
    }
}

static void write_request_metrics(broker *b, obs_buf *o) {
    obs_prom_family(o, "kafka_network_requestmetrics_requests_total", "counter",
                    "Requests answered, per API (request label: Kafka's API name).");
    for (int k = 0; k < OBS_API_KEYS - 1; k++) {
        uint64_t n, closed;
        obs_api_counts(b->metrics, k, &n, &closed);
        const kafka_api_info *api = kafka_api_lookup((int16_t)k);
        if (n == 0 || api == NULL)
            continue;
        obs_buf_printf(o, "kafka_network_requestmetrics_requests_total{request=\"%s\"} %llu\n", api->name,
                       (unsigned long long)n);
    }
    obs_prom_family(o, "sluice_network_requests_closed_total", "counter",
                    "Requests answered by closing the connection (undecodable, refused, out of memory).");
    for (int k = 0; k < OBS_API_KEYS - 1; k++) {
        uint64_t n, closed;
        obs_api_counts(b->metrics, k, &n, &closed);
        const kafka_api_info *api = kafka_api_lookup((int16_t)k);
        if (closed == 0 || api == NULL)
            continue;
        obs_buf_printf(o, "sluice_network_requests_closed_total{request=\"%s\"} %llu\n", api->name,
                       (unsigned long long)closed);
    }
    static const char *const stage_names[OBS_STAGES] = {"kafka_network_requestmetrics_requestqueuetimems",
                                                        "kafka_network_requestmetrics_localtimems",
                                                        "kafka_network_requestmetrics_remotetimems",
                                                        "kafka_network_requestmetrics_totaltimems",
                                                        "kafka_network_requestmetrics_responsequeuetimems",
                                                        "kafka_network_requestmetrics_responsesendtimems"};
    static const char *const stage_help[OBS_STAGES] = {
        "Milliseconds a request waited for a handler thread (histogram).",
        "Milliseconds a handler worked on a request (histogram).",
        "Milliseconds a request was parked: long-poll fetch, rebalance (histogram).",
        "Milliseconds from a request's last byte to its response being queued for sending (histogram).",
        "Milliseconds a response waited for its network thread to take it (histogram).",
        "Milliseconds writing a response to its client took (histogram; a slow reader shows here)."};
    for (int s = 0; s < OBS_STAGES; s++) {
        obs_prom_family(o, stage_names[s], "histogram", stage_help[s]);
        for (int k = 0; k < OBS_API_KEYS - 1; k++) {
            const kafka_api_info *api = kafka_api_lookup((int16_t)k);
            if (api == NULL)
                continue;
            obs_hist_snap h;
            obs_api_hist(b->metrics, k, (obs_stage)s, &h);
            if (h.count == 0)
                continue;
            char labels[96];
            snprintf(labels, sizeof labels, "request=\"%s\"", api->name);
            obs_prom_hist(o, stage_names[s], labels, &h);
        }
    }
}

static void write_network_metrics(broker *b, obs_buf *o) {
    net_stats ns;
    net_server_stats(b->net, &ns);
    const char *lname = b->cfg->n_listeners > 0 ? b->cfg->listeners[0].name : "PLAINTEXT";
    for (int i = 0; i < b->cfg->n_listeners; i++)
        if (!b->cfg->listeners[i].controller) {
            lname = b->cfg->listeners[i].name;
            break;
        }
    char lab[96];
    snprintf(lab, sizeof lab, "{listener=\"%s\"}", lname);
    obs_prom_family(o, "kafka_server_socket_server_metrics_connection_count", "gauge",
                    "Open client connections.");
    obs_buf_printf(o, "kafka_server_socket_server_metrics_connection_count%s %llu\n", lab,
                   (unsigned long long)ns.open);
    obs_prom_family(o, "kafka_server_socket_server_metrics_connection_creation_total", "counter",
                    "Client connections accepted (including those closed at once over a limit).");
    obs_buf_printf(o, "kafka_server_socket_server_metrics_connection_creation_total%s %llu\n", lab,
                   (unsigned long long)ns.accepted);
    obs_prom_family(o, "kafka_server_socket_server_metrics_incoming_byte_total", "counter",
                    "Bytes read from client connections.");
    obs_buf_printf(o, "kafka_server_socket_server_metrics_incoming_byte_total%s %llu\n", lab,
                   (unsigned long long)ns.bytes_in);
    obs_prom_family(o, "kafka_server_socket_server_metrics_outgoing_byte_total", "counter",
                    "Bytes written to client connections.");
    obs_buf_printf(o, "kafka_server_socket_server_metrics_outgoing_byte_total%s %llu\n", lab,
                   (unsigned long long)ns.bytes_out);
    obs_prom_family(o, "kafka_server_socket_server_metrics_request_total", "counter",
                    "Request frames received.");
    obs_buf_printf(o, "kafka_server_socket_server_metrics_request_total%s %llu\n", lab,
                   (unsigned long long)ns.requests);
    obs_prom_family(
        o, "sluice_network_connections_refused_total", "counter",
        "Connections closed at accept by a limit (reason: max_connections, max_connections_per_ip).");
    obs_buf_printf(o, "sluice_network_connections_refused_total{reason=\"max_connections\"} %llu\n",
                   (unsigned long long)ns.rejected);
    obs_buf_printf(o, "sluice_network_connections_refused_total{reason=\"max_connections_per_ip\"} %llu\n",
                   (unsigned long long)ns.rejected_per_ip);
    counter(o, "sluice_network_idle_closed_total",
            "Connections closed for being idle (connections.max.idle.ms).", ns.idle_closed);
    counter(o, "sluice_network_read_timeouts_total",
            "Connections closed because a request did not arrive whole in time.", ns.read_timeouts);
    counter(o, "sluice_network_oversize_frames_total", "Frames refused for passing socket.request.max.bytes.",
            ns.oversize_frames);
    gauge(o, "sluice_network_max_connections", "The effective connection limit.", ns.max_connections);
    gauge(o, "sluice_network_request_bytes_held", "Request frame memory held now.",
          (double)ns.request_bytes_held);
    gauge(o, "sluice_network_response_bytes_held", "Response memory held now.",
          (double)ns.response_bytes_held);
    gauge(o, "kafka_network_requestchannel_requestqueuesize", "Requests waiting for a handler thread.",
          (double)ns.queued);

    /* Idle ratios since the previous scrape (the first: since start). */
    struct observe *ob = b->observe;
    int64_t now = clock_mono_ns();
    double dt = (double)(now - ob->idle.at_ns);
    double net_idle = 1, io_idle = 1;
    if (dt > 0 && ns.net_threads > 0 && ns.io_threads > 0) {
        net_idle = (double)(ns.net_idle_ns - ob->idle.net_idle_ns) / (dt * ns.net_threads);
        io_idle = (double)(ns.io_idle_ns - ob->idle.io_idle_ns) / (dt * ns.io_threads);
    }
    net_idle = net_idle < 0 ? 0 : net_idle > 1 ? 1 : net_idle;
    io_idle = io_idle < 0 ? 0 : io_idle > 1 ? 1 : io_idle;
    ob->idle = (idle_mark){now, ns.net_idle_ns, ns.io_idle_ns};
    gauge(o, "kafka_network_socketserver_networkprocessoravgidlepercent",
          "Share of time the network threads waited for events, since the previous scrape (0-1).", net_idle);
    gauge(o, "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent",
          "Share of time the request handler threads waited for requests, since the previous scrape (0-1).",
          io_idle);
    obs_prom_family(o, "sluice_thread_idle_seconds_total", "counter",
                    "Seconds the threads of a pool spent waiting for work (rate() of it over threads: idle "
                    "share).");
    obs_buf_printf(o, "sluice_thread_idle_seconds_total{pool=\"network\"} %.6f\n",
                   (double)ns.net_idle_ns / 1e9);
    obs_buf_printf(o, "sluice_thread_idle_seconds_total{pool=\"request_handler\"} %.6f\n",
                   (double)ns.io_idle_ns / 1e9);
}

static void write_partition_metrics(broker *b, obs_buf *o, int64_t *dropped) {
    pwalk w;
    observe_walk_parts(b, &w, INT32_MAX, NULL);
    int32_t me = b->cfg->node_id;
    int64_t leaders = 0, under = 0, offline_here = 0, under_min_isr = 0, waiters = 0;
    for (int i = 0; i < w.n; i++) {
        pinfo *e = &w.v[i];
        waiters += e->waiters;
        if (!e->online)
            offline_here++;
        if (e->mp != NULL && e->mp->leader == me) {
            leaders++;
            if (e->mp->isr.n < e->mp->replicas.n)
                under++;
            if (e->mp->isr.n < b->cfg->min_insync_replicas)
                under_min_isr++;
        }
    }
    gauge(o, "kafka_server_replicamanager_partitioncount", "Partitions with a replica on this broker.", w.n);
    gauge(o, "kafka_server_replicamanager_leadercount", "Partitions this broker leads.", (double)leaders);
    gauge(o, "kafka_server_replicamanager_underreplicatedpartitions",
          "Partitions led here whose ISR is smaller than their replica set.", (double)under);
    gauge(o, "kafka_server_replicamanager_underminisrpartitioncount",
          "Partitions led here with fewer in-sync replicas than min.insync.replicas.", (double)under_min_isr);
    gauge(o, "kafka_server_replicamanager_offlinereplicacount",
          "Replicas on this broker whose log cannot be used (disk error, unusable config).",
          (double)offline_here);
    counter(o, "kafka_server_replicamanager_isrshrinks_total", "ISR shrinks of partitions led here.", 0);
    counter(o, "kafka_server_replicamanager_isrexpands_total", "ISR expands of partitions led here.", 0);
    obs_prom_family(o, "kafka_server_delayedoperationpurgatory_purgatorysize", "gauge",
                    "Waiting operations, counted once per partition they watch.");
    obs_buf_printf(o,
                   "kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation=\"Fetch\"} %lld\n",
                   (long long)waiters);

    /* Cluster-wide, as the active controller reports them. */
    int64_t offline = 0;
    for (int32_t i = 0; i < md_image_topic_count(w.img); i++) {
        const md_topic *t = md_image_topic_at(w.img, i);
        for (int32_t j = 0; j < t->n_partitions; j++)
            if (t->partitions[j].leader < 0)
                offline++;
    }
    bool controller = (b->cfg->process_roles & CONFIG_ROLE_CONTROLLER) != 0;
    gauge(o, "kafka_controller_kafkacontroller_activecontrollercount",
          "1 on the node that is the active controller.", controller ? 1 : 0);
    gauge(o, "kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions without a leader.",
          (double)offline);
    gauge(o, "kafka_controller_kafkacontroller_globaltopiccount", "Topics in the cluster.",
          md_image_topic_count(w.img));
    gauge(o, "kafka_controller_kafkacontroller_globalpartitioncount", "Partitions in the cluster.",
          (double)md_image_partition_count(w.img));

    /* Per partition, up to the cap. */
    int max = b->cfg->metrics_partition_series_max;
    int shown = w.n < max ? w.n : max;
    *dropped += w.n - shown;
    static const char *const pn[] = {"kafka_log_log_size",
                                     "kafka_log_log_numlogsegments",
                                     "kafka_log_log_logstartoffset",
                                     "kafka_log_log_logendoffset",
                                     "sluice_partition_high_watermark",
                                     "kafka_cluster_partition_underreplicated",
                                     "kafka_cluster_partition_insyncreplicascount",
                                     "kafka_cluster_partition_replicascount"};
    static const char *const ph[] = {"Bytes of the partition's log on disk.",
                                     "Segments of the partition's log.",
                                     "First offset of the partition's log.",
                                     "Offset the next appended record gets.",
                                     "Offset up to which records are committed and readable by consumers.",
                                     "1 when the partition's ISR is smaller than its replica set.",
                                     "In-sync replicas of the partition.",
                                     "Replicas of the partition."};
    for (int m = 0; m < 8 && shown > 0; m++) {
        obs_prom_family(o, pn[m], "gauge", ph[m]);
        for (int i = 0; i < shown && !o->full; i++) {
            pinfo *e = &w.v[i];
            int64_t v;
            switch (m) {
            case 0:
                v = e->size;
                break;
            case 1:
                v = e->segments;
                break;
            case 2:
                v = e->log_start;
                break;
            case 3:
                v = e->leo;
                break;
            case 4:
                v = e->hw;
                break;
            case 5:
                v = e->mp ? e->mp->isr.n < e->mp->replicas.n : 0;
                break;
            case 6:
                v = e->mp ? e->mp->isr.n : 0;
                break;
            default:
                v = e->mp ? e->mp->replicas.n : 0;
                break;
            }
            obs_buf_puts(o, pn[m]);
            tp_labels(o, e->topic, e->index);
            obs_buf_printf(o, " %lld\n", (long long)v);
        }
    }
    observe_walk_done(&w);
}

static void write_group_metrics(broker *b, obs_buf *o, int64_t *dropped) {
    /* Every offset (up to OBSERVE_OFFSETS_MAX) counts in the groups' lag
     * sums; only the first `cap` get series of their own. */
    int cap = b->cfg->metrics_group_lag_series_max;
    gwalk w;
    observe_walk_groups(b, &w, OBSERVE_OFFSETS_MAX > cap ? OBSERVE_OFFSETS_MAX : cap);
    *dropped += w.dropped;
    int shown = w.no < cap ? w.no : cap;
    *dropped += w.no - shown;
    obs_prom_family(o, "kafka_consumergroup_members", "gauge", "Members of a consumer group.");
    for (int i = 0; i < w.n && !o->full; i++) {
        obs_buf_puts(o, "kafka_consumergroup_members{consumergroup=\"");
        obs_prom_escape(o, w.g[i].group, strlen(w.g[i].group));
        obs_buf_printf(o, "\"} %d\n", w.g[i].members);
    }
    static const char *const names[] = {"kafka_consumergroup_current_offset", "kafka_consumergroup_lag"};
    static const char *const helps[] = {
        "Offset a consumer group committed for a partition.",
        "Records between a group's committed offset and the partition's high watermark."};
    for (int m = 0; m < 2; m++) {
        obs_prom_family(o, names[m], "gauge", helps[m]);
        for (int i = 0; i < shown && !o->full; i++) {
            goff *x = &w.o[i];
            if (x->topic == NULL || (m == 1 && x->end < 0))
                continue;
            int64_t v = m == 0 ? x->offset : (x->offset >= 0 && x->end > x->offset ? x->end - x->offset : 0);
            obs_buf_printf(o, "%s{consumergroup=\"", names[m]);
            obs_prom_escape(o, x->group, strlen(x->group));
            obs_buf_puts(o, "\",topic=\"");
            obs_prom_escape(o, x->topic, strlen(x->topic));
            obs_buf_printf(o, "\",partition=\"%d\"} %lld\n", x->partition, (long long)v);
        }
    }
    obs_prom_family(o, "kafka_consumergroup_lag_sum", "gauge",
                    "Lag of a consumer group over all its partitions.");
    for (int i = 0; i < w.n && !o->full; i++) {
        obs_buf_puts(o, "kafka_consumergroup_lag_sum{consumergroup=\"");
        obs_prom_escape(o, w.g[i].group, strlen(w.g[i].group));
        obs_buf_printf(o, "\"} %lld\n", (long long)w.g[i].lag);
    }
    observe_walk_groups_done(&w);
}

static void write_process_metrics(broker *b, obs_buf *o) {
    procinfo pi;
    observe_read_proc(&pi);
    obs_prom_family(o, "process_cpu_seconds_total", "counter", "User and system CPU time of the process.");
    obs_buf_printf(o, "process_cpu_seconds_total %.3f\n", pi.cpu_s);
    gauge(o, "process_resident_memory_bytes", "Resident memory of the process.", (double)pi.rss);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory of the process.", (double)pi.vsize);
    gauge(o, "process_open_fds", "Open file descriptors.", (double)pi.open_fds);
    gauge(o, "process_max_fds", "The descriptor limit (RLIMIT_NOFILE; -1: none).", (double)pi.max_fds);
    gauge(o, "process_threads", "Threads of the process.", (double)pi.threads);
    gauge(o, "process_start_time_seconds", "When the process started, in seconds since the epoch.",
          pi.start_s);
    obs_prom_family(o, "sluice_build_info", "gauge", "The version running (always 1).");
    obs_buf_printf(o, "sluice_build_info{version=\"%s\",node_id=\"%d\"} 1\n", sluice_version(),
                   b->cfg->node_id);
    gauge(o, "sluice_uptime_seconds", "Seconds since the broker started.",
          (double)(clock_mono_ns() - b->observe->start_mono_ns) / 1e9);
}

/* Client quota throttling (quota.h), named after Kafka's JMX types
 * Produce, Fetch, Request and ControllerMutation (throttle-time). */
static void write_quota_metrics(broker *b, obs_buf *o) {
    static const char *const jmx[BQUOTA_KINDS] = {"produce", "fetch", "request", "controllermutation"};
    bquota_stats st;
    bquota_get_stats(b->quota, &st);
    char name[96], help[160];
    for (int k = 0; k < BQUOTA_KINDS; k++) {
        const char *what = bquota_kind_name((bquota_kind)k);
        snprintf(name, sizeof name, "kafka_server_%s_throttle_time_ms_total", jmx[k]);
        snprintf(help, sizeof help, "Throttle time handed to clients over their %s quota (ms).", what);
        counter(o, name, help, st.throttle_ms[k]);
        snprintf(name, sizeof name, "kafka_server_%s_throttled_total", jmx[k]);
        snprintf(help, sizeof help, "Responses throttled by the %s quota.", what);
        counter(o, name, help, st.throttled[k]);
        snprintf(name, sizeof name, "kafka_server_%s_throttle_time_max_ms", jmx[k]);
        snprintf(help, sizeof help, "Largest throttle time the %s quota handed out since the start (ms).",
                 what);
        gauge(o, name, help, (double)st.max_ms[k]);
    }
    gauge(o, "sluice_quota_rates", "Quota rates kept (one per quota kind and user or client id measured).",
          (double)st.rates);
    if (b->net != NULL) {
        net_stats ns;
        net_server_stats(b->net, &ns);
        counter(o, "sluice_network_throttle_mutes_total",
                "Times a throttled client's connection was muted for its throttle time.", ns.muted);
    }
}

static void write_txn_metrics(broker *b, obs_buf *o) {
    txns_stats st;
    txns_get_stats(b, &st);
    gauge(o, "sluice_txn_coordinator_partitions",
          "__transaction_state partitions this broker coordinates (loaded and serving).",
          (double)st.shards_serving);
    gauge(o, "sluice_txn_markers_pending",
          "Transaction markers queued or in flight to partition leaders (WriteTxnMarkers).",
          (double)st.markers_pending);
    counter(o, "sluice_txn_markers_delivered_total",
            "Transaction markers the partitions' leaders acknowledged.", st.markers_delivered);
    counter(o, "sluice_txn_markers_failed_total",
            "Transaction marker sends refused or unanswered (each is retried).", st.markers_failed);
    gauge(o, "sluice_txn_pending_offsets",
          "Offsets of open transactions (TxnOffsetCommit) waiting for their COMMIT or ABORT marker.",
          (double)st.pending_offsets);
}

void observe_write_metrics(broker *b, obs_buf *o) {
    assert(b->observe != NULL && b->metrics != NULL);
    int64_t t0 = clock_mono_ns();
    int64_t dropped = 0;
    md_image *img = bmeta_image(b->meta);
    write_topic_metrics(b, o, img);
    md_image_unref(img);
    write_request_metrics(b, o);
    write_network_metrics(b, o);
    write_partition_metrics(b, o, &dropped);
    write_group_metrics(b, o, &dropped);
    write_process_metrics(b, o);
    write_quota_metrics(b, o);
    write_txn_metrics(b, o);
    uint64_t malformed;
    obs_counters all;
    obs_totals(b->metrics, &all, &malformed);
    counter(o, "sluice_network_malformed_requests_total",
            "Frames closed before dispatch: a header that does not parse or an API not served.", malformed);
    counter(o, "sluice_metrics_topics_dropped_total",
            "Topic counter look-ups refused because sluice.metrics.topics.max entries exist.",
            atomic_load(&b->metrics->topics_dropped));
    gauge(o, "sluice_metrics_series_dropped",
          "Series this scrape left out (sluice.metrics.partition.series.max, "
          "sluice.metrics.group.lag.series.max).",
          (double)dropped);
    counter(o, "sluice_http_requests_total",
            "HTTP requests served by this listener (refused methods not counted).",
            atomic_load(&b->observe->requests));
    gauge(o, "sluice_metrics_scrape_seconds", "Time this scrape took to build.",
          (double)(clock_mono_ns() - t0) / 1e9);
    /* Last: whether the answer is whole. A full buffer may end inside a
     * line (a series is written in pieces): cut back to the last whole
     * line, then make room for the marker (the limit applies to the
     * series, not to it). */
    bool full = o->full;
    if (full) {
        while (o->len > 0 && o->p[o->len - 1] != '\n')
            o->len--;
        if (o->p != NULL)
            o->p[o->len] = 0;
        o->full = false;
        o->max = o->len + 512;
    }
    gauge(o, "sluice_metrics_truncated", "1 when this answer passed sluice.http.response.max.bytes.",
          full ? 1 : 0);
}
