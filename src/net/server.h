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
 * being read from. When the handler queue is full, frames wait on their
 * connection (which stops being read) instead of piling up. A handler may
 * also mute a connection for a while after its response
 * (net_request_mute): client quota throttling, as Kafka mutes a throttled
 * client's channel.
 *
 * Request memory. A frame's buffer grows as its bytes arrive: it is first
 * sized by the bytes the socket holds (at least NET_FRAME_MIN), then doubles
 * up to the declared size, so it holds at most twice what was received plus
 * NET_FRAME_MIN. What it holds is charged to two budgets at each step: the server's (all frames being read or
 * waiting for a handler, `max_request_bytes_inflight`) and its client
 * address's (at most 1/NET_IP_SHARE_DIVISOR of the server's). A declared size
 * reserves nothing, so a client holds memory only for bytes it really sent.
 * A connection whose next step would pass a budget stops being read until
 * memory is freed (it is retried every NET_STALL_RETRY_MS); the one frame of
 * a connection whose address (or the whole server) holds nothing else is
 * always admitted, so a budget smaller than one frame still makes progress.
 * A frame must arrive whole within `request_read_timeout_ms` of its first
 * byte, or the connection is closed: that bounds how long a slow or stalled
 * sender holds its bytes and its connection. (Several large frames can fill
 * the budget half-read and wait for each other; the deadline breaks that,
 * oldest first. A client would have given up on such a request anyway:
 * clients time requests out after about as long.)
 *
 * Response memory. A response's in-memory pieces are charged, from
 * net_respond() until they are written or dropped, to the server's budget for
 * held responses (`max_response_bytes_held`); file ranges cost no memory.
 * The charge is not refused at net_respond(): handlers that can answer with
 * less (a down-converting Fetch) ask first with net_request_reserve() and
 * shrink their answer when it says no. A connection whose response makes no
 * write progress for `idle_timeout_ms` is closed like an idle one, which
 * bounds how long a client that never reads holds its response.
 *
 * Connections and descriptors. Each connection takes one descriptor. The
 * server accepts at most net_max_connections() of them: `max_connections`,
 * lowered so that connections use at most 1/NET_FD_SHARE_DIVISOR of
 * RLIMIT_NOFILE. The rest is storage's (active segments, the segment
 * descriptor cache, the metadata log, files opened briefly), so accepted
 * clients can never take the descriptors that the partitions, and the
 * requests of clients already connected, need. At most
 * `max_connections_per_ip` come from one address unless
 * `max_connections_per_ip_overrides` ("host:count,...") says otherwise. Over
 * a limit, a new connection is accepted and closed at once. If accept()
 * itself fails for lack of descriptors or memory, the thread closes its spare
 * descriptor to accept and close one waiting connection, then stops accepting
 * for a back-off (10 ms doubling to 1 s): never a busy loop. Log lines that
 * clients can cause at will are rate-limited (log_ratelimit).
 *
 * Responses are an ordered list of pieces: bytes in memory (owned by the
 * response) and file ranges (fd, offset, length). File ranges go out with
 * sendfile(2) when `zero_copy` is set, or are read into a buffer and written
 * otherwise. Each file range may carry a release callback, called once when
 * the range is no longer needed (sent or dropped), so the storage layer can
 * hold a segment open exactly as long as a response needs it.
 *
 * TLS. With `tls` set, each connection first completes a TLS handshake
 * (within NET_TLS_HANDSHAKE_MS of its accept, or it is closed) before its
 * first frame is read; frames and responses then travel through the TLS
 * layer. A handshake that fails, a client that speaks plaintext to a TLS
 * listener, and a client that opens a TLS handshake on a plaintext listener
 * are each closed with a rate-limited line naming the peer, the listener
 * and the reason. Responses are encrypted from a per-thread buffer of at
 * most NET_TLS_CHUNK bytes at a time, so a slow TLS reader holds no more
 * memory than a plaintext one.
 *
 * Lifetime. net_respond() may be called from any thread, at any later time
 * (a long-polling fetch answers when data arrives). If the connection has
 * closed meanwhile, the response is dropped and its resources released.
 * While a request is with the handler the connection is not read, but a
 * hang-up by the client is still seen (EPOLLRDHUP): the connection closes
 * and the `abandoned` callback tells the handler.
 */
#ifndef SLUICE_NET_SERVER_H
#define SLUICE_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct net_server net_server;
typedef struct net_conn net_conn;

/* Defaults. The configuration table (broker/config.c) prints these as its
 * defaults, so they must stay plain decimal literals. */
#define NET_DEFAULT_MAX_REQUEST_BYTES_INFLIGHT 536870912 /* 512 MiB */
#define NET_DEFAULT_MAX_RESPONSE_BYTES_HELD    268435456 /* 256 MiB */
#define NET_DEFAULT_REQUEST_READ_TIMEOUT_MS    30000

/* One client address may hold at most this fraction (1/N) of the request
 * budget, so one address cannot take all of it. */
#define NET_IP_SHARE_DIVISOR 2
/* Smallest first buffer of a frame (unless the frame is smaller). */
#define NET_FRAME_MIN 512
/* Connections may hold at most 1/N of RLIMIT_NOFILE (storage counts its
 * partitions against the rest). */
#define NET_FD_SHARE_DIVISOR 4
/* A TLS handshake must finish within this long of the accept. */
#define NET_TLS_HANDSHAKE_MS 10000
/* Most response bytes encrypted in one go. */
#define NET_TLS_CHUNK (64 * 1024)
/* Most entries in max_connections_per_ip_overrides (after resolving names). */
#define NET_IP_OVERRIDES_MAX 1024

typedef struct net_config {
    const char *host;                  /* address to bind; "localhost" and "" allowed */
    uint16_t port;                     /* 0 picks a free port (see net_server_port) */
    int net_threads;                   /* num.network.threads */
    int io_threads;                    /* num.io.threads */
    int queued_max_requests;           /* queued.max.requests */
    size_t max_request_bytes;          /* socket.request.max.bytes */
    size_t max_request_bytes_inflight; /* frame bytes held at once, across connections; SIZE_MAX: no limit */
    size_t max_response_bytes_held;    /* in-memory response bytes not yet written; SIZE_MAX: no limit */
    int max_connections;               /* max.connections (before the descriptor limit) */
    int max_connections_per_ip;        /* max.connections.per.ip */
    const char *max_connections_per_ip_overrides; /* "host:count,..."; NULL or "" for none */
    int64_t idle_timeout_ms;                      /* connections.max.idle.ms; <= 0 disables */
    int64_t request_read_timeout_ms;              /* a frame arrives whole within this; <= 0 disables */
    bool zero_copy;                               /* sendfile for file ranges */
    /* TLS for every connection of this server (net/tls.h), owned by the
     * caller and outliving the server; NULL: plaintext. TLS connections take
     * the copying path for file ranges, never sendfile. */
    struct tls_server *tls;
    const char *listener; /* listener name for log lines ("PLAINTEXT", "SSL"); NULL: none */
    /* The listener authenticates with SASL: the handler sees it on every
     * request (net_request.sasl) and keeps its state in the connection's
     * session (net_request_session). */
    bool sasl;
    /* Frees a connection's session (with the handler's ctx) once the
     * connection is gone and none of its requests is with the handler.
     * NULL: sessions are not used. */
    void (*session_free)(void *ctx, void *session);
    /* Called (with the handler's ctx, on a network thread) when a client
     * closes its connection while its request is still with the handler,
     * e.g. a long-polling fetch: the handler may answer it at once (the
     * answer is dropped) instead of holding its resources. NULL: none. */
    void (*abandoned)(void *ctx, uint64_t conn_id);
    /* Called (with the handler's ctx) first thing on every network and
     * handler thread, e.g. to bind the broker's environment. NULL: none. */
    void (*thread_init)(void *ctx);
    /* Called (with the handler's ctx, on the network thread) when a tagged
     * response (net_response_set_tag) has been written whole: how long it
     * waited between net_respond() and the network thread taking it
     * (queue_ns), and how long writing it took (send_ns). Not called for
     * responses dropped with their connection. NULL: none. */
    void (*sent)(void *ctx, int tag, int64_t queue_ns, int64_t send_ns);
} net_config;

void net_config_defaults(net_config *c);

/* The connections a server made from cfg accepts at most: max_connections,
 * lowered to RLIMIT_NOFILE / NET_FD_SHARE_DIVISOR, at least 1. Reads the
 * process's current limit. */
int net_max_connections(const net_config *cfg);
/* The most descriptors such a server holds at once (connections plus its
 * listener, epoll, wake and spare descriptors), for storage to count its
 * partitions against what RLIMIT_NOFILE leaves. */
int net_max_fds(const net_config *cfg);

/* Checks the syntax of a max_connections_per_ip_overrides value without
 * resolving host names: comma-separated host:count entries, count 0 to
 * 2147483647, IPv6 literals in brackets. Returns 0, or -1 with why filled. */
int net_ip_overrides_check(const char *text, char *why, size_t whyn);

/* A request as the handler sees it. frame/len is the request without its
 * size prefix; it stays valid until net_respond() is called for it. */
typedef struct net_request {
    net_conn *conn;
    uint64_t conn_id; /* unique per connection, for logs */
    const char *peer; /* "ip:port" of the client */
    uint8_t *frame;
    size_t len;
    int64_t received_ns; /* CLOCK_MONOTONIC when the frame was complete */
    bool sasl;           /* the listener's `sasl` */
    bool tls;            /* the connection is TLS */
    /* The client certificate's subject (RFC 2253) on a TLS connection that
     * presented one, else NULL. Lives as long as the connection. */
    const char *tls_subject;
} net_request;

/* The connection's session slot for the handler: NULL until the handler
 * stores something there, freed with session_free. Only the handler of the
 * connection's current request touches it (a connection has one request in
 * the handler at a time), so it needs no lock. */
void **net_request_session(net_request *req);

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
/* Tags r for the `sent` callback (e.g. with its API key); tag >= 0. */
void net_response_set_tag(net_response *r, int tag);
void net_response_free(net_response *r);

/* The handler: called on an I/O thread for each frame. It must eventually
 * call net_respond() exactly once for req, from any thread. */
typedef void (*net_handler_fn)(void *ctx, net_request *req);

/* Sends resp (may be NULL: no response, e.g. Produce with acks=0) and lets
 * the connection go on to its next request. close_after closes the
 * connection once resp is written (e.g. after a malformed request). Frees
 * req. */
void net_respond(net_request *req, net_response *resp, bool close_after);

/* Mutes req's connection for ms once its response is queued: the
 * connection's next frame is not read before then (KIP-219: a throttled
 * client is answered at once, with throttle_time_ms, and its channel is
 * muted after). A hang-up while muted is seen when the mute ends. Call
 * before net_respond(). */
void net_request_mute(net_request *req, int64_t ms);

/* Reserves n bytes of the server's budget for held responses for the
 * response req will get. False if that would pass the budget (unless nothing
 * but req's own reservation is held, so a budget below one answer still makes
 * progress); the caller then answers with less. At net_respond() the
 * reservation becomes the response's exact in-memory size. Any thread. */
bool net_request_reserve(net_request *req, size_t n);
/* Gives back n bytes of req's reservation (n <= what req reserved). */
void net_request_unreserve(net_request *req, size_t n);

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
    uint64_t rejected;        /* over the connection limit */
    uint64_t rejected_per_ip; /* over the limit of their address */
    uint64_t accept_errors;   /* accept() failures other than "nothing to accept" (EMFILE, ...) */
    uint64_t open;
    uint64_t requests;
    uint64_t oversize_frames;
    uint64_t idle_closed;
    uint64_t read_timeouts; /* closed: a frame did not arrive within request_read_timeout_ms */
    uint64_t tls_failures;  /* TLS handshakes that failed or timed out, plaintext on a TLS listener */
    uint64_t tls_mismatch;  /* TLS handshakes opened on a plaintext listener */
    uint64_t muted;         /* connections muted for a throttle (net_request_mute) */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t request_bytes_held;  /* now: frame memory charged */
    uint64_t response_bytes_held; /* now: response memory charged (reservations included) */
    uint64_t response_reserve_refused;
    int max_connections; /* the effective limit (see net_max_connections) */
    /* Time the network threads spent in epoll_wait and the handler threads
     * waiting for a request, summed over the threads (idle ratios). */
    uint64_t net_idle_ns, io_idle_ns;
    int net_threads, io_threads;
    int queued; /* requests waiting for a handler thread now */
} net_stats;

void net_server_stats(net_server *s, net_stats *out);

#endif
