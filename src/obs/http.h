/*
 * http.h - the broker's HTTP listener (metrics, health, the console),
 * built on GNU libmicrohttpd (docs/dependencies.md says why).
 *
 * One libmicrohttpd thread polls every connection and runs the handler, so
 * requests are served one after another: a scrape or a console page can
 * never take more than one CPU from the broker, and the handler needs no
 * locking of its own. Only GET and HEAD are served (anything else: 405).
 *
 * Limits: at most `max_connections` connections (`max_per_ip` from one
 * address); a request's headers and body must fit in `max_request_bytes`
 * (libmicrohttpd answers 431 or closes the connection beyond it); a
 * connection idle for `timeout_s` seconds is closed; the path is at most
 * OBS_HTTP_PATH_MAX bytes (414 beyond). Answers are built whole in memory
 * by the handler, which bounds them itself.
 *
 * Lifetime: obs_http_start() binds and starts the thread (NULL and a log
 * line naming the address when the bind fails); obs_http_stop() stops it,
 * waiting for a request being handled to finish.
 */
#ifndef SLUICE_OBS_HTTP_H
#define SLUICE_OBS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OBS_HTTP_PATH_MAX 2048

typedef struct obs_http obs_http;

typedef struct obs_http_config {
    const char *host; /* "" or "0.0.0.0": every IPv4 interface; "::" or an IPv6 literal: IPv6 */
    uint16_t port;    /* 0: the kernel picks (see obs_http_port) */
    int max_connections;
    int max_per_ip;
    size_t max_request_bytes;
    int timeout_s;
} obs_http_config;

/* What the handler answers. body is malloc'd and taken by the server, or
 * static_body (not freed) is used when body is NULL. */
typedef struct obs_http_reply {
    int status;
    const char *content_type;
    char *body;
    const char *static_body;
    size_t len;
    const char *cache_control; /* NULL: "no-store" */
} obs_http_reply;

/* path has no query; query is the text after '?' ("" if none). */
typedef void (*obs_http_handler)(void *ctx, const char *path, const char *query, obs_http_reply *out);

/* Parses "http://host:port" (host may be empty or an IPv6 literal in
 * brackets). Returns 0, or -1 with why filled. host gets at most hostn - 1
 * bytes. */
int obs_http_parse_url(const char *url, char *host, size_t hostn, uint16_t *port, char *why, size_t whyn);

obs_http *obs_http_start(const obs_http_config *cfg, obs_http_handler fn, void *ctx);
uint16_t obs_http_port(const obs_http *h);
void obs_http_stop(obs_http *h);

/* Requests answered and refused (405, 414) so far. */
uint64_t obs_http_requests(const obs_http *h);

#endif
