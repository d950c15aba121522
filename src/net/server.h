/*
 * server.h - the network layer: accepts TCP connections, cuts the byte
 * stream into size-prefixed Kafka frames, hands each frame to a request
 * handler on a pool of I/O threads, and writes the responses back.
 *
 * Threads. `net_threads` network threads each run their own epoll loop over
 * one shared listening socket (EPOLLEXCLUSIVE wakes one thread per new
 * connection, which then owns it). `io_threads` handler threads take frames from one bounded queue
 * (`queued_max_requests` long) and call the handler.
 *
 * Ordering and back-pressure. As in Kafka, a connection has at most one
 * request in the handler at a time: the next frame is not read until the
 * response to the previous one has been queued for writing. Responses
 * therefore go out in request order, a pipelining client is served one
 * request after another, and a client that never reads its responses stops
 * being read from: its memory stays bounded by one request plus one response.
 * When the handler queue is full, frames wait on their connection (which
 * stops being read) instead of piling up. The bytes held by frames across
 * all connections are capped by `max_request_bytes_inflight`.
 *
 * Responses are an ordered list of pieces: bytes in memory (owned by the
 * response) and file ranges (fd, offset, length). File ranges go out with
 * sendfile(2) when `zero_copy` is set, or are read into a buffer and written
 * otherwise. Each file range may carry a release callback, called once when
 * the range is no longer needed (sent or dropped), so the storage layer can
 * hold a segment open exactly as long as a response needs it.
 *
 * Lifetime. net_respond() may be called from any thread, at any later time
 * (a long-polling fetch answers when data arrives). If the connection has
 * closed meanwhile, the response is dropped and its resources released.
 */
#ifndef SLUICE_NET_SERVER_H
#define SLUICE_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct net_server net_server;
typedef struct net_conn net_conn;

typedef struct net_config {
    const char *host;                  /* address to bind; "localhost" and "" allowed */
    uint16_t port;                     /* 0 picks a free port (see net_server_port) */
    int net_threads;                   /* num.network.threads */
    int io_threads;                    /* num.io.threads */
    int queued_max_requests;           /* queued.max.requests */
    size_t max_request_bytes;          /* socket.request.max.bytes */
    size_t max_request_bytes_inflight; /* all frames held at once, across connections */
    int max_connections;               /* max.connections */
    int64_t idle_timeout_ms;           /* connections.max.idle.ms; <= 0 disables */
    bool zero_copy;                    /* sendfile for file ranges */
} net_config;

void net_config_defaults(net_config *c);

/* A request as the handler sees it. frame/len is the request without its
 * size prefix; it stays valid until net_respond() is called for it. */
typedef struct net_request {
    net_conn *conn;
    uint64_t conn_id; /* unique per connection, for logs */
    const char *peer; /* "ip:port" of the client */
    uint8_t *frame;
    size_t len;
    int64_t received_ns; /* CLOCK_MONOTONIC when the frame was complete */
} net_request;

typedef void (*net_release_fn)(void *arg);

/* A response under construction. Build it with net_response_*; hand it to
 * net_respond(), which takes ownership. */
typedef struct net_response net_response;

net_response *net_response_new(void);
/* Appends a copy of n bytes. Returns false on allocation failure. */
bool net_response_append(net_response *r, const void *p, size_t n);
/* Appends n bytes at p without copying; p must stay valid until the response
 * is freed (e.g. it points into a piece appended with _owned). */
bool net_response_append_ref(net_response *r, const void *p, size_t n);
/* Appends n bytes the response takes ownership of (freed with free()),
 * also when this call fails. */
bool net_response_append_owned(net_response *r, void *p, size_t n);
/* Appends a range of an open file. release(arg) is called exactly once when
 * the range is no longer needed, also if this call fails. */
bool net_response_append_file(net_response *r, int fd, int64_t off, size_t len, net_release_fn release,
                              void *arg);
size_t net_response_length(const net_response *r);
void net_response_free(net_response *r);

/* The handler: called on an I/O thread for each frame. It must eventually
 * call net_respond() exactly once for req, from any thread. */
typedef void (*net_handler_fn)(void *ctx, net_request *req);

/* Sends resp (may be NULL: no response, e.g. Produce with acks=0) and lets
 * the connection go on to its next request. close_after closes the
 * connection once resp is written (e.g. after a malformed request). Frees
 * req. */
void net_respond(net_request *req, net_response *resp, bool close_after);

/* Creates the server and binds its sockets. Returns NULL and logs why on
 * failure (address in use, bad host). */
net_server *net_server_create(const net_config *cfg, net_handler_fn handler, void *ctx);
uint16_t net_server_port(const net_server *s);
/* Starts the network and I/O threads. */
int net_server_start(net_server *s);
/* Stops accepting, lets in-flight requests finish (up to timeout_ms), then
 * closes every connection and joins the threads. */
void net_server_stop(net_server *s, int64_t timeout_ms);
void net_server_destroy(net_server *s);

/* Counters for metrics and tests. */
typedef struct net_stats {
    uint64_t accepted;
    uint64_t rejected; /* over max_connections */
    uint64_t open;
    uint64_t requests;
    uint64_t oversize_frames;
    uint64_t idle_closed;
    uint64_t bytes_in;
    uint64_t bytes_out;
} net_stats;

void net_server_stats(net_server *s, net_stats *out);

#endif
