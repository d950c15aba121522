/*
 * http.c - the HTTP listener over libmicrohttpd. See http.h.
 */
#include "obs/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"

struct obs_http {
    struct MHD_Daemon *d;
    obs_http_handler fn;
    void *ctx;
    uint16_t port;
    atomic_uint_fast64_t requests;
};

static log_ratelimit mhd_rl = LOG_RATELIMIT_DEFAULT;

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    LOG_WARN_LIMITED(&mhd_rl, "http", "%s", msg);
}

int obs_http_parse_url(const char *url, char *host, size_t hostn, uint16_t *port, char *why, size_t whyn) {
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        snprintf(why, whyn, "'%s' does not start with http://", url);
        return -1;
    }
    p += 7;
    const char *hs = p, *he;
    if (*p == '[') {
        hs = p + 1;
        he = strchr(hs, ']');
        if (he == NULL) {
            snprintf(why, whyn, "'%s': IPv6 address without ']'", url);
            return -1;
        }
        p = he + 1;
    } else {
        he = strrchr(p, ':');
        if (he == NULL) {
            snprintf(why, whyn, "'%s' has no :port", url);
            return -1;
        }
        p = he;
    }
    if (*p != ':') {
        snprintf(why, whyn, "'%s' has no :port", url);
        return -1;
    }
    p++;
    if ((size_t)(he - hs) >= hostn) {
        snprintf(why, whyn, "'%s': host too long", url);
        return -1;
    }
    char *end;
    long v = strtol(p, &end, 10);
    if (*p == 0 || *end != 0 || v < 0 || v > 65535) {
        /* A trailing '/' is allowed. */
        if (!(end != p && strcmp(end, "/") == 0 && v >= 0 && v <= 65535)) {
            snprintf(why, whyn, "'%s': port must be 0-65535", url);
            return -1;
        }
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = 0;
    *port = (uint16_t)v;
    return 0;
}

static enum MHD_Result queue(struct MHD_Connection *c, int status, const char *ctype, const char *cache,
                             struct MHD_Response *r) {
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", cache ? cache : "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result plain(struct MHD_Connection *c, int status, const char *text) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    return queue(c, status, "text/plain; charset=utf-8", NULL, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **req_cls) {
    (void)version;
    (void)upload_data;
    obs_http *h = cls;
    /* The first call is for the headers only; a body (which GET has none
     * of) would come in later calls and is dropped. */
    if (*req_cls == NULL) {
        *req_cls = h;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return plain(c, 405, "only GET and HEAD are served\n");
    if (strlen(url) > OBS_HTTP_PATH_MAX)
        return plain(c, 414, "path too long\n");
    /* libmicrohttpd gives the path without the query; rebuild the one
     * argument the handlers use from the arguments it parsed. */
    char query[256] = "";
    const char *v;
    if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name")) != NULL)
        snprintf(query, sizeof query, "%s", v);
    obs_http_reply out = {.status = 200, .content_type = "text/plain; charset=utf-8"};
    h->fn(h->ctx, url, query, &out);
    struct MHD_Response *r;
    if (out.body != NULL)
        r = MHD_create_response_from_buffer(out.len, out.body, MHD_RESPMEM_MUST_FREE);
    else
        r = MHD_create_response_from_buffer(out.len, (void *)(out.static_body ? out.static_body : ""),
                                            MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        free(out.body);
    return queue(c, out.status, out.content_type, out.cache_control, r);
}

obs_http *obs_http_start(const obs_http_config *cfg, obs_http_handler fn, void *ctx) {
    obs_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->fn = fn;
    h->ctx = ctx;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    const char *host = cfg->host ? cfg->host : "";
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(cfg->port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            LOG_ERROR("http", "cannot listen on [%s]:%u: not an IPv6 address", host, cfg->port);
            goto err;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(cfg->port);
        if (host[0] == 0)
            a->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            LOG_ERROR("http",
                      "cannot listen on %s:%u: not an IPv4 address (use a numeric address or localhost)",
                      host, cfg->port);
            goto err;
        }
    }
    h->d = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        cfg->max_request_bytes, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s, MHD_OPTION_END);
    if (h->d == NULL) {
        LOG_ERROR("http", "cannot listen on %s%s%s:%u (address in use or not local?)",
                  strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", cfg->port);
        goto err;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->port;
    return h;
err:
    free(h);
    return NULL;
}

uint16_t obs_http_port(const obs_http *h) { return h ? h->port : 0; }

uint64_t obs_http_requests(const obs_http *h) { return h ? atomic_load(&h->requests) : 0; }

void obs_http_stop(obs_http *h) {
    if (h == NULL)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
