/*
 * observe.c - /metrics, /health, /ready, the console's JSON and page. See
 * observe.h; the metric names and labels are listed in docs/metrics.md.
 */
#include "broker/observe.h"

#include <assert.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/partitions.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/version.h"
#include "obs/console.h"
#include "obs/http.h"
#include "proto/gen/kafka_msgs.h"

typedef struct sample {
    int64_t t_ms;
    uint64_t messages_in, bytes_in, bytes_out;
} sample;

/* Idle time of a thread pool at the previous scrape, for the idle ratios. */
typedef struct idle_mark {
    int64_t at_ns;
    uint64_t net_idle_ns, io_idle_ns;
} idle_mark;

struct observe {
    obs_http *http;
    pthread_mutex_t mu; /* the ring */
    sample ring[OBSERVE_RING];
    int ring_head, ring_len;
    int64_t next_sample_ms;
    idle_mark idle;                /* the HTTP thread only */
    atomic_uint_fast64_t requests; /* pages asked for */
    int64_t start_mono_ns;
};

int observe_create(broker *b) {
    struct observe *o = calloc(1, sizeof *o);
    if (o == NULL)
        return -1;
    pthread_mutex_init(&o->mu, NULL);
    o->start_mono_ns = clock_mono_ns();
    o->idle.at_ns = o->start_mono_ns;
    b->observe = o;
    return 0;
}

void observe_destroy(broker *b) {
    struct observe *o = b->observe;
    if (o == NULL)
        return;
    observe_stop(b);
    pthread_mutex_destroy(&o->mu);
    free(o);
    b->observe = NULL;
}

uint16_t observe_port(const broker *b) { return b->observe ? obs_http_port(b->observe->http) : 0; }

void observe_sample(broker *b, int64_t now) {
    struct observe *o = b->observe;
    if (o == NULL || b->metrics == NULL || now < o->next_sample_ms)
        return;
    o->next_sample_ms = now + OBSERVE_SAMPLE_MS;
    obs_counters c;
    obs_totals(b->metrics, &c, NULL);
    pthread_mutex_lock(&o->mu);
    int at = (o->ring_head + o->ring_len) % OBSERVE_RING;
    if (o->ring_len == OBSERVE_RING)
        o->ring_head = (o->ring_head + 1) % OBSERVE_RING;
    else
        o->ring_len++;
    o->ring[at] = (sample){now, c.messages_in, c.bytes_in, c.bytes_out};
    pthread_mutex_unlock(&o->mu);
}

/* ---- gathering state ------------------------------------------------------------------ */

/* One partition as the pages show it. */
typedef struct pinfo {
    const char *topic; /* points into the image */
    int32_t index;
    const md_partition *mp; /* in the image; NULL if the image no longer has it */
    bool internal;          /* __consumer_offsets and the like: listed after the others */
    bool online;
    int role; /* replica_role */
    int64_t hw, leo, log_start, size;
    int segments;
    int waiters;
} pinfo;

typedef struct pwalk {
    md_image *img;
    pinfo *v;
    int n, cap, max;
    int64_t dropped;
    const char *only_topic; /* NULL: every partition */
} pwalk;

static bool walk_part(void *ctx, rpart *p) {
    pwalk *w = ctx;
    if (atomic_load(&p->removed))
        return true;
    if (w->only_topic != NULL && strcmp(p->topic, w->only_topic) != 0)
        return true;
    if (w->n == w->max) {
        w->dropped++;
        return true;
    }
    if (w->n == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 256;
        pinfo *nv = realloc(w->v, (size_t)ncap * sizeof *nv);
        if (nv == NULL) {
            w->dropped++;
            return true;
        }
        w->v = nv;
        w->cap = ncap;
    }
    const md_topic *t = md_image_topic_by_id(w->img, p->topic_id);
    if (t == NULL)
        return true; /* not in this image: gone, or newer than it */
    pinfo *e = &w->v[w->n++];
    memset(e, 0, sizeof *e);
    e->topic = t->name;
    e->index = p->index;
    e->internal = p->internal;
    e->mp = md_topic_partition(t, p->index);
    rpart_lock(p);
    const replica_state *st = replica_get_state(p->r);
    e->role = st->role;
    e->hw = st->hw;
    e->leo = st->leo;
    e->log_start = st->log_start;
    plog *l = atomic_load(&p->log);
    e->online = l != NULL && !plog_is_offline(l);
    if (l != NULL) {
        e->size = plog_size_bytes(l);
        e->segments = plog_segment_count(l);
    }
    rpart_unlock(p);
    e->waiters = atomic_load(&p->waiters);
    return true;
}

static int cmp_pinfo(const void *a, const void *b) {
    const pinfo *x = a, *y = b;
    if (x->internal != y->internal)
        return x->internal ? 1 : -1;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The partitions this broker holds (at most max), sorted by topic and
 * index, internal topics last (so a series cap shows the users' topics
 * first); w->img is referenced (release with walk_done). */
static void walk_parts(broker *b, pwalk *w, int max, const char *only_topic) {
    memset(w, 0, sizeof *w);
    w->img = bmeta_image(b->meta);
    w->max = max;
    w->only_topic = only_topic;
    parts_each(bmeta_parts(b->meta), walk_part, w);
    if (w->n > 1)
        qsort(w->v, (size_t)w->n, sizeof *w->v, cmp_pinfo);
}

static void walk_done(pwalk *w) {
    free(w->v);
    md_image_unref(w->img);
}

/* One committed offset of a group, copied out of its shard. */
typedef struct goff {
    char *group;
    char *topic;
    int32_t partition;
    int64_t offset;
    int64_t end; /* the partition's high watermark, -1 unknown */
} goff;

typedef struct ginfo {
    char *group;
    const char *state;
    char *protocol_type, *protocol;
    int32_t generation;
    int members;
    int64_t lag; /* over its offsets with a known end */
    int first_off, n_off;
} ginfo;

typedef struct gwalk {
    ginfo *g;
    int n, cap;
    goff *o;
    int no, capo, maxo;
    int64_t dropped;
    bool failed;
} gwalk;

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

static bool walk_group(void *ctx, const gcoord_group *g) {
    gwalk *w = ctx;
    if (w->n == OBSERVE_LIST_MAX) {
        w->dropped++;
        return true;
    }
    if (w->n == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 64;
        ginfo *ng = realloc(w->g, (size_t)ncap * sizeof *ng);
        if (ng == NULL) {
            w->failed = true;
            return false;
        }
        w->g = ng;
        w->cap = ncap;
    }
    ginfo *e = &w->g[w->n++];
    memset(e, 0, sizeof *e);
    e->group = dupn(g->id);
    e->state = gcoord_state_name(g->state);
    e->protocol_type = dupn(g->protocol_type);
    e->protocol = dupn(g->protocol);
    e->generation = g->generation;
    e->members = g->n_members;
    e->first_off = w->no;
    for (int32_t bkt = 0; bkt < g->n_obuckets; bkt++) {
        for (const gcoord_offset_entry *oe = g->obuckets[bkt]; oe != NULL; oe = oe->next) {
            if (w->no == w->maxo) {
                w->dropped++;
                continue;
            }
            if (w->no == w->capo) {
                int ncap = w->capo ? w->capo * 2 : 256;
                goff *no = realloc(w->o, (size_t)ncap * sizeof *no);
                if (no == NULL) {
                    w->dropped++;
                    continue;
                }
                w->o = no;
                w->capo = ncap;
            }
            goff *x = &w->o[w->no++];
            x->group = e->group;
            x->topic = dupn(oe->topic);
            x->partition = oe->partition;
            x->offset = oe->offset;
            x->end = -1;
        }
    }
    e->n_off = w->no - e->first_off;
    return true;
}

static int cmp_goff(const void *a, const void *b) {
    const goff *x = a, *y = b;
    int c = strcmp(x->topic ? x->topic : "", y->topic ? y->topic : "");
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Every live group with its committed offsets (at most max_offsets in
 * all), each offset with its partition's end. */
static void walk_groups(broker *b, gwalk *w, int max_offsets) {
    memset(w, 0, sizeof *w);
    w->maxo = max_offsets;
    int32_t n = groups_shard_count(b);
    for (int32_t i = 0; i < n; i++) {
        groups_shard *s = groups_lock_index(b, i);
        if (s == NULL)
            continue;
        if (s->sm != NULL && gcoord_active(s->sm))
            gcoord_each_group(s->sm, walk_group, w);
        groups_unlock(s);
        if (w->failed)
            break;
    }
    /* The ends: one image, one partition lookup per offset. */
    md_image *img = bmeta_image(b->meta);
    parts *ps = bmeta_parts(b->meta);
    for (int gi = 0; gi < w->n; gi++) {
        ginfo *g = &w->g[gi];
        goff *o = w->o + g->first_off;
        if (g->n_off > 1)
            qsort(o, (size_t)g->n_off, sizeof *o, cmp_goff);
        for (int k = 0; k < g->n_off; k++) {
            if (o[k].topic == NULL)
                continue;
            const md_topic *t = md_image_topic(img, kstr_c(o[k].topic));
            rpart *p = t ? parts_get(ps, t->id, o[k].partition) : NULL;
            if (p == NULL)
                continue;
            rpart_lock(p);
            o[k].end = replica_get_state(p->r)->hw;
            rpart_unlock(p);
            rpart_release(p);
            if (o[k].offset >= 0 && o[k].end > o[k].offset)
                g->lag += o[k].end - o[k].offset;
        }
    }
    md_image_unref(img);
}

static void walk_groups_done(gwalk *w) {
    for (int i = 0; i < w->no; i++)
        free(w->o[i].topic);
    for (int i = 0; i < w->n; i++) {
        free(w->g[i].group);
        free(w->g[i].protocol_type);
        free(w->g[i].protocol);
    }
    free(w->o);
    free(w->g);
}

/* Process figures from /proc/self. */
typedef struct procinfo {
    double cpu_s;
    uint64_t rss, vsize;
    int64_t open_fds, max_fds, threads;
    double start_s; /* since the epoch */
} procinfo;

static void read_proc(procinfo *pi) {
    memset(pi, 0, sizeof *pi);
    pi->open_fds = pi->threads = -1;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* Fields after the command name (which may hold spaces) start
         * after the last ')': state is field 3. */
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0, vsize = 0;
        long rss = 0, threads = 0;
        unsigned long long starttime = 0;
        if (p != NULL && sscanf(p + 2,
                                "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d "
                                "%llu %lu %ld",
                                &utime, &stime, &threads, &starttime, &vsize, &rss) == 6) {
            pi->cpu_s = (double)(utime + stime) / (double)tick;
            pi->vsize = vsize;
            pi->rss = (uint64_t)rss * (uint64_t)page;
            pi->threads = threads;
            /* starttime is in ticks since boot. */
            FILE *u = fopen("/proc/uptime", "r");
            double up = 0;
            if (u != NULL) {
                if (fscanf(u, "%lf", &up) != 1)
                    up = 0;
                fclose(u);
            }
            double now = (double)clock_wall_ms() / 1000.0;
            if (up > 0)
                pi->start_s = now - up + (double)starttime / (double)tick;
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        int64_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        pi->open_fds = n - 1; /* the directory's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        pi->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur;
}

/* ---- /metrics ---------------------------------------------------------------------------- */

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
    walk_parts(b, &w, INT32_MAX, NULL);
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
    walk_done(&w);
}

static void write_group_metrics(broker *b, obs_buf *o, int64_t *dropped) {
    /* Every offset (up to OBSERVE_OFFSETS_MAX) counts in the groups' lag
     * sums; only the first `cap` get series of their own. */
    int cap = b->cfg->metrics_group_lag_series_max;
    gwalk w;
    walk_groups(b, &w, OBSERVE_OFFSETS_MAX > cap ? OBSERVE_OFFSETS_MAX : cap);
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
    walk_groups_done(&w);
}

static void write_process_metrics(broker *b, obs_buf *o) {
    procinfo pi;
    read_proc(&pi);
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

/* ---- JSON ------------------------------------------------------------------------------ */

static void json_key(obs_buf *o, const char *k) { obs_buf_printf(o, "\"%s\":", k); }

static void json_ids(obs_buf *o, const md_ids *ids) {
    obs_buf_puts(o, "[");
    for (int32_t i = 0; i < ids->n; i++)
        obs_buf_printf(o, "%s%d", i ? "," : "", ids->ids[i]);
    obs_buf_puts(o, "]");
}

static void api_cluster(broker *b, obs_buf *o) {
    md_image *img = bmeta_image(b->meta);
    obs_counters c;
    obs_totals(b->metrics, &c, NULL);
    net_stats ns;
    net_server_stats(b->net, &ns);
    int64_t offline = 0, under = 0;
    for (int32_t i = 0; i < md_image_topic_count(img); i++) {
        const md_topic *t = md_image_topic_at(img, i);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            if (t->partitions[j].leader < 0)
                offline++;
            else if (t->partitions[j].isr.n < t->partitions[j].replicas.n)
                under++;
        }
    }
    obs_buf_puts(o, "{");
    json_key(o, "cluster_id");
    const char *cid = bmeta_cluster_id(b->meta);
    obs_json_str(o, cid ? cid : "", cid ? strlen(cid) : 0);
    obs_buf_printf(o, ",\"node_id\":%d,\"controller_id\":%d,\"version\":", b->cfg->node_id,
                   (b->cfg->process_roles & CONFIG_ROLE_CONTROLLER) ? b->cfg->node_id : -1);
    obs_json_str(o, sluice_version(), strlen(sluice_version()));
    obs_buf_printf(o,
                   ",\"uptime_ms\":%lld,\"topics\":%d,\"partitions\":%lld,\"under_replicated\":%lld,"
                   "\"offline\":%lld,\"connections\":%llu,\"messages_in\":%llu,\"bytes_in\":%llu,"
                   "\"bytes_out\":%llu,\"metadata_offset\":%lld,\"brokers\":[",
                   (long long)((clock_mono_ns() - b->observe->start_mono_ns) / 1000000),
                   md_image_topic_count(img), (long long)md_image_partition_count(img), (long long)under,
                   (long long)offline, (unsigned long long)ns.open, (unsigned long long)c.messages_in,
                   (unsigned long long)c.bytes_in, (unsigned long long)c.bytes_out,
                   (long long)md_image_offset(img));
    for (int32_t i = 0; i < md_image_broker_count(img) && i < OBSERVE_LIST_MAX; i++) {
        const md_broker *br = md_image_broker_at(img, i);
        obs_buf_printf(o, "%s{\"id\":%d,\"fenced\":%s,\"rack\":", i ? "," : "", br->id,
                       br->fenced ? "true" : "false");
        if (br->rack)
            obs_json_str(o, br->rack, strlen(br->rack));
        else
            obs_buf_puts(o, "null");
        obs_buf_puts(o, ",\"endpoints\":[");
        for (int32_t e = 0; e < br->n_endpoints; e++) {
            obs_buf_printf(o, "%s{\"name\":", e ? "," : "");
            obs_json_str(o, br->endpoints[e].name, strlen(br->endpoints[e].name));
            obs_buf_puts(o, ",\"host\":");
            obs_json_str(o, br->endpoints[e].host, strlen(br->endpoints[e].host));
            obs_buf_printf(o, ",\"port\":%u}", br->endpoints[e].port);
        }
        obs_buf_puts(o, "]}");
    }
    obs_buf_puts(o, "]}");
    md_image_unref(img);
}

static void api_topics(broker *b, obs_buf *o) {
    pwalk w;
    walk_parts(b, &w, INT32_MAX, NULL);
    obs_buf_puts(o, "[");
    int32_t nt = md_image_topic_count(w.img);
    int shown = 0;
    for (int32_t i = 0; i < nt && shown < OBSERVE_LIST_MAX; i++) {
        const md_topic *t = md_image_topic_at(w.img, i);
        int64_t size = 0, end = 0, start = 0;
        int under = 0, offline = 0;
        for (int32_t j = 0; j < t->n_partitions; j++) {
            if (t->partitions[j].leader < 0)
                offline++;
            else if (t->partitions[j].isr.n < t->partitions[j].replicas.n)
                under++;
        }
        /* w.v is sorted as cmp_pinfo says: find this topic's run by
         * binary search. */
        pinfo key = {
            .topic = t->name, .index = -1, .internal = ctrl_internal_topic((kstr){t->name, t->name_len})};
        int lo = 0, hi = w.n;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cmp_pinfo(&w.v[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int k = lo; k < w.n && strcmp(w.v[k].topic, t->name) == 0; k++) {
            size += w.v[k].size;
            end += w.v[k].hw;
            start += w.v[k].log_start;
        }
        obs_counters c = {0};
        obs_topic *ot = obs_topic_find(b->metrics, t->name, (size_t)t->name_len);
        if (ot)
            obs_topic_counters(ot, &c);
        obs_buf_puts(o, shown++ ? ",{\"name\":" : "{\"name\":");
        obs_json_str(o, t->name, (size_t)t->name_len);
        obs_buf_printf(o,
                       ",\"internal\":%s,\"partitions\":%d,\"replication_factor\":%d,\"size\":%lld,"
                       "\"records\":%lld,\"under_replicated\":%d,\"offline\":%d,\"messages_in\":%llu,"
                       "\"bytes_in\":%llu,\"bytes_out\":%llu}",
                       ctrl_internal_topic((kstr){t->name, t->name_len}) ? "true" : "false", t->n_partitions,
                       t->n_partitions ? t->partitions[0].replicas.n : 0, (long long)size,
                       (long long)(end - start), under, offline, (unsigned long long)c.messages_in,
                       (unsigned long long)c.bytes_in, (unsigned long long)c.bytes_out);
    }
    obs_buf_puts(o, "]");
    walk_done(&w);
}

static bool api_topic(broker *b, const char *name, obs_buf *o) {
    pwalk w;
    walk_parts(b, &w, OBSERVE_LIST_MAX, name);
    const md_topic *t = md_image_topic(w.img, kstr_c(name));
    if (t == NULL) {
        walk_done(&w);
        return false;
    }
    obs_buf_puts(o, "{\"name\":");
    obs_json_str(o, t->name, (size_t)t->name_len);
    obs_buf_puts(o, ",\"configs\":{");
    const md_resource *res = md_image_resource(w.img, MD_RESOURCE_TOPIC, t->name);
    for (int32_t i = 0; res != NULL && i < res->n; i++) {
        if (i)
            obs_buf_puts(o, ",");
        obs_json_str(o, res->items[i].key, strlen(res->items[i].key));
        obs_buf_puts(o, ":");
        const char *v = res->items[i].value ? res->items[i].value : "";
        obs_json_str(o, v, strlen(v));
    }
    obs_buf_puts(o, "},\"partitions\":[");
    int k = 0;
    for (int32_t j = 0; j < t->n_partitions && j < OBSERVE_LIST_MAX; j++) {
        const md_partition *mp = &t->partitions[j];
        while (k < w.n && w.v[k].index < mp->id)
            k++;
        const pinfo *e = k < w.n && w.v[k].index == mp->id ? &w.v[k] : NULL;
        obs_buf_printf(o, "%s{\"partition\":%d,\"leader\":%d,\"leader_epoch\":%d,\"replicas\":", j ? "," : "",
                       mp->id, mp->leader, mp->leader_epoch);
        json_ids(o, &mp->replicas);
        obs_buf_puts(o, ",\"isr\":");
        json_ids(o, &mp->isr);
        if (e != NULL)
            obs_buf_printf(o,
                           ",\"local\":true,\"online\":%s,\"log_start\":%lld,\"high_watermark\":%lld,"
                           "\"log_end\":%lld,\"size\":%lld,\"segments\":%d}",
                           e->online ? "true" : "false", (long long)e->log_start, (long long)e->hw,
                           (long long)e->leo, (long long)e->size, e->segments);
        else
            obs_buf_puts(o, ",\"local\":false}");
    }
    obs_buf_puts(o, "]}");
    walk_done(&w);
    return true;
}

static void api_groups(broker *b, obs_buf *o) {
    gwalk w;
    walk_groups(b, &w, OBSERVE_OFFSETS_MAX);
    obs_buf_puts(o, "[");
    for (int i = 0; i < w.n && !o->full; i++) {
        ginfo *g = &w.g[i];
        obs_buf_puts(o, i ? ",{\"group\":" : "{\"group\":");
        obs_json_str(o, g->group, strlen(g->group));
        obs_buf_puts(o, ",\"state\":");
        obs_json_str(o, g->state, strlen(g->state));
        obs_buf_puts(o, ",\"protocol_type\":");
        if (g->protocol_type)
            obs_json_str(o, g->protocol_type, strlen(g->protocol_type));
        else
            obs_buf_puts(o, "null");
        obs_buf_puts(o, ",\"protocol\":");
        if (g->protocol)
            obs_json_str(o, g->protocol, strlen(g->protocol));
        else
            obs_buf_puts(o, "null");
        obs_buf_printf(o, ",\"generation\":%d,\"members\":%d,\"lag\":%lld,\"offsets\":[", g->generation,
                       g->members, (long long)g->lag);
        for (int k = 0; k < g->n_off; k++) {
            goff *x = &w.o[g->first_off + k];
            obs_buf_puts(o, k ? ",{\"topic\":" : "{\"topic\":");
            obs_json_str(o, x->topic ? x->topic : "", x->topic ? strlen(x->topic) : 0);
            obs_buf_printf(o, ",\"partition\":%d,\"committed\":%lld,\"end\":%lld,\"lag\":", x->partition,
                           (long long)x->offset, (long long)x->end);
            if (x->end < 0)
                obs_buf_puts(o, "null}");
            else
                obs_buf_printf(o, "%lld}",
                               (long long)(x->offset >= 0 && x->end > x->offset ? x->end - x->offset : 0));
        }
        obs_buf_puts(o, "]}");
    }
    obs_buf_puts(o, "]");
    walk_groups_done(&w);
}

static void api_history(broker *b, obs_buf *o) {
    struct observe *ob = b->observe;
    obs_buf_printf(o, "{\"interval_ms\":%d,\"samples\":[", OBSERVE_SAMPLE_MS);
    pthread_mutex_lock(&ob->mu);
    for (int i = 0; i < ob->ring_len; i++) {
        const sample *s = &ob->ring[(ob->ring_head + i) % OBSERVE_RING];
        obs_buf_printf(o, "%s[%lld,%llu,%llu,%llu]", i ? "," : "", (long long)s->t_ms,
                       (unsigned long long)s->messages_in, (unsigned long long)s->bytes_in,
                       (unsigned long long)s->bytes_out);
    }
    pthread_mutex_unlock(&ob->mu);
    /* The current values, so a chart has a point now. */
    obs_counters c;
    obs_totals(b->metrics, &c, NULL);
    obs_buf_printf(o, "],\"now\":[%lld,%llu,%llu,%llu]}", (long long)clock_wall_ms(),
                   (unsigned long long)c.messages_in, (unsigned long long)c.bytes_in,
                   (unsigned long long)c.bytes_out);
}

/* ---- health ---------------------------------------------------------------------------- */

/* Ready: serving, and every partition led here is online. why gets the
 * first reason it is not. */
static bool ready(broker *b, char *why, size_t whyn) {
    if (atomic_load(&b->draining)) {
        snprintf(why, whyn, "shutting down");
        return false;
    }
    pwalk w;
    walk_parts(b, &w, INT32_MAX, NULL);
    bool ok = true;
    for (int i = 0; i < w.n && ok; i++)
        if (!w.v[i].online && w.v[i].mp != NULL && w.v[i].mp->leader == b->cfg->node_id) {
            snprintf(why, whyn, "partition %s-%d led here is offline", w.v[i].topic, w.v[i].index);
            ok = false;
        }
    walk_done(&w);
    return ok;
}

/* ---- the handler ---------------------------------------------------------------------- */

static void reply_buf(obs_http_reply *out, obs_buf *o, const char *ctype) {
    out->content_type = ctype;
    out->body = obs_buf_take(o, &out->len);
    if (out->body == NULL) {
        out->status = 503;
        out->static_body = "out of memory\n";
        out->len = strlen(out->static_body);
        out->content_type = "text/plain; charset=utf-8";
    }
}

static log_ratelimit cut_rl = LOG_RATELIMIT_DEFAULT;

static void handle(void *ctx, const char *path, const char *query, obs_http_reply *out) {
    broker *b = ctx;
    sl_env_bind(&b->env);
    atomic_fetch_add_explicit(&b->observe->requests, 1, memory_order_relaxed);
    obs_buf o;
    obs_buf_init(&o, (size_t)b->cfg->http_response_max_bytes);
    const char *json = "application/json; charset=utf-8";
    if (strcmp(path, "/metrics") == 0) {
        observe_write_metrics(b, &o);
        reply_buf(out, &o, "text/plain; version=0.0.4; charset=utf-8");
    } else if (strcmp(path, "/health") == 0) {
        bool up = !atomic_load(&b->draining);
        out->status = up ? 200 : 503;
        out->static_body = up ? "ok\n" : "shutting down\n";
        out->len = strlen(out->static_body);
    } else if (strcmp(path, "/ready") == 0) {
        char why[512];
        if (ready(b, why, sizeof why)) {
            out->static_body = "ready\n";
            out->len = strlen(out->static_body);
        } else {
            out->status = 503;
            obs_buf_printf(&o, "not ready: %s\n", why);
            reply_buf(out, &o, "text/plain; charset=utf-8");
            out->status = 503;
        }
    } else if (strcmp(path, "/api/cluster") == 0) {
        api_cluster(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/api/topics") == 0) {
        api_topics(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/api/topic") == 0) {
        if (!api_topic(b, query, &o)) {
            out->status = 404;
            obs_buf_free(&o);
            obs_buf_init(&o, 4096);
            obs_buf_puts(&o, "{\"error\":\"no such topic\"}");
        }
        int st = out->status;
        reply_buf(out, &o, json);
        if (out->status == 200)
            out->status = st;
    } else if (strcmp(path, "/api/groups") == 0) {
        api_groups(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/api/history") == 0) {
        api_history(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/") == 0 || strcmp(path, "/console") == 0) {
        out->content_type = "text/html; charset=utf-8";
        out->static_body = obs_console_html;
        out->len = obs_console_html_len;
        out->cache_control = "no-cache";
    } else {
        out->status = 404;
        out->static_body = "not found: try /metrics, /health, /ready or / (the console)\n";
        out->len = strlen(out->static_body);
    }
    if (out->body != NULL && o.full && out->content_type == json) {
        /* Cut JSON does not parse: say why instead. */
        LOG_WARN_LIMITED(&cut_rl, "http",
                         "%s answer passed sluice.http.response.max.bytes=%lld; answered 503", path,
                         (long long)b->cfg->http_response_max_bytes);
        free(out->body);
        out->body = NULL;
        out->status = 503;
        out->static_body = "{\"error\":\"the answer is larger than sluice.http.response.max.bytes\"}";
        out->len = strlen(out->static_body);
    }
    obs_buf_free(&o);
}

int observe_start(broker *b) {
    struct observe *ob = b->observe;
    const char *url = b->cfg->http_listeners;
    if (ob == NULL || url == NULL || url[0] == 0) {
        LOG_INFO("http", "no HTTP listener (sluice.http.listeners is empty)");
        return 0;
    }
    char host[256], why[256];
    obs_http_config hc = {
        .host = host,
        .max_connections = b->cfg->http_max_connections,
        .max_per_ip = b->cfg->http_max_connections_per_ip,
        .max_request_bytes = (size_t)b->cfg->http_request_max_bytes,
        .timeout_s = (b->cfg->http_connection_timeout_ms + 999) / 1000,
    };
    if (obs_http_parse_url(url, host, sizeof host, &hc.port, why, sizeof why) != 0) {
        LOG_ERROR("http", "sluice.http.listeners: %s", why);
        return -1;
    }
    ob->http = obs_http_start(&hc, handle, b);
    if (ob->http == NULL) {
        config_entry e;
        bool dflt = config_broker_entry(b->cfg, "sluice.http.listeners", &e) == 0 &&
                    e.source == CONFIG_SOURCE_DEFAULT_CONFIG;
        if (dflt) {
            LOG_WARN("http",
                     "running without the HTTP listener: the default %s cannot be bound (set "
                     "sluice.http.listeners to another address, or to empty)",
                     url);
            return 0;
        }
        return -1;
    }
    LOG_INFO("http", "metrics at http://%s%s%s:%u/metrics, console at /", strchr(host, ':') ? "[" : "",
             host[0] ? host : "0.0.0.0", strchr(host, ':') ? "]" : "", obs_http_port(ob->http));
    return 0;
}

void observe_stop(broker *b) {
    struct observe *ob = b->observe;
    if (ob == NULL || ob->http == NULL)
        return;
    obs_http_stop(ob->http);
    ob->http = NULL;
}
