/*
 * observe.c - the observe module's lifecycle (the listener, the history
 * ring), /health and /ready, and the routing of pages to observe_prom.c
 * and observe_json.c. See observe.h and observe_internal.h.
 */
#include "broker/observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/observe_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "obs/console.h"

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

/* ---- health ---------------------------------------------------------------------------- */

/* Ready: serving, and every partition led here is online. why gets the
 * first reason it is not. */
static bool ready(broker *b, char *why, size_t whyn) {
    if (atomic_load(&b->draining)) {
        snprintf(why, whyn, "shutting down");
        return false;
    }
    pwalk w;
    observe_walk_parts(b, &w, INT32_MAX, NULL);
    bool ok = true;
    for (int i = 0; i < w.n && ok; i++)
        if (!w.v[i].online && w.v[i].mp != NULL && w.v[i].mp->leader == b->cfg->node_id) {
            snprintf(why, whyn, "partition %s-%d led here is offline", w.v[i].topic, w.v[i].index);
            ok = false;
        }
    observe_walk_done(&w);
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
        observe_api_cluster(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/api/topics") == 0) {
        observe_api_topics(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/api/topic") == 0) {
        if (!observe_api_topic(b, query, &o)) {
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
        observe_api_groups(b, &o);
        reply_buf(out, &o, json);
    } else if (strcmp(path, "/api/history") == 0) {
        observe_api_history(b, &o);
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
