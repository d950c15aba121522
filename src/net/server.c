/*
 * server.c - epoll network threads, framing, the handler queue and response
 * writing. See server.h for the model (one request per connection in the
 * handler, responses in order, back-pressure instead of buffering).
 *
 * Threading: a connection belongs to exactly one network thread for its
 * whole life; only that thread touches its socket and its fields, with two
 * exceptions guarded by the thread's mutex: the completion list (responses
 * handed over by net_respond from any thread) and the connection's refcount
 * (atomic). A connection is freed when its socket is closed and no request
 * of it is in the handler any more.
 */
#include "net/server.h"
#include "core/clock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define NET_MAX_EVENTS     64
#define NET_ACCEPT_BURST   64
#define NET_IOV_MAX        64
#define NET_COPY_CHUNK     (256 * 1024)
#define NET_STALL_RETRY_MS 10

/* ---- responses -------------------------------------------------------- */

typedef struct net_piece {
    const uint8_t *mem; /* NULL for a file range */
    bool owned;
    int fd;
    int64_t off;
    size_t len;
    net_release_fn release;
    void *arg;
} net_piece;

struct net_response {
    net_piece *pieces;
    int count;
    int cap;
    size_t total;
};

net_response *net_response_new(void) { return calloc(1, sizeof(net_response)); }

static bool add_piece(net_response *r, net_piece p) {
    if (r->count == r->cap) {
        int ncap = r->cap ? r->cap * 2 : 8;
        net_piece *np = realloc(r->pieces, (size_t)ncap * sizeof *np);
        if (np == NULL)
            return false;
        r->pieces = np;
        r->cap = ncap;
    }
    r->pieces[r->count++] = p;
    r->total += p.len;
    return true;
}

bool net_response_append(net_response *r, const void *p, size_t n) {
    if (n == 0)
        return true;
    void *copy = malloc(n);
    if (copy == NULL)
        return false;
    memcpy(copy, p, n);
    return net_response_append_owned(r, copy, n);
}

bool net_response_append_ref(net_response *r, const void *p, size_t n) {
    if (n == 0)
        return true;
    return add_piece(r, (net_piece){.mem = p, .owned = false, .fd = -1, .len = n});
}

bool net_response_append_owned(net_response *r, void *p, size_t n) {
    if (n == 0) {
        free(p);
        return true;
    }
    if (!add_piece(r, (net_piece){.mem = p, .owned = true, .fd = -1, .len = n})) {
        free(p);
        return false;
    }
    return true;
}

bool net_response_append_file(net_response *r, int fd, int64_t off, size_t len, net_release_fn release,
                              void *arg) {
    if (len == 0 ||
        !add_piece(r, (net_piece){.fd = fd, .off = off, .len = len, .release = release, .arg = arg})) {
        if (release)
            release(arg);
        return len == 0;
    }
    return true;
}

size_t net_response_length(const net_response *r) { return r->total; }

void net_response_free(net_response *r) {
    if (r == NULL)
        return;
    for (int i = 0; i < r->count; i++) {
        net_piece *p = &r->pieces[i];
        if (p->mem && p->owned)
            free((void *)p->mem);
        if (!p->mem && p->release)
            p->release(p->arg);
    }
    free(r->pieces);
    free(r);
}

/* ---- server structures ------------------------------------------------ */

typedef struct net_thread net_thread;

/* A request travels as one allocation: this header, then the frame bytes. */
typedef struct request_box {
    net_request req;
    struct request_box *next; /* completion list / handler queue link */
    net_response *resp;
    bool close_after;
    size_t frame_cap;
} request_box;

struct net_conn {
    net_thread *t;
    int fd;
    uint64_t id;
    char peer[64];
    atomic_int refs; /* 1 while the socket is open + 1 while a request is in the handler */

    /* reading */
    uint8_t size_buf[4];
    size_t size_got;
    int32_t frame_size; /* -1 while reading the size prefix */
    request_box *box;   /* the frame being read or waiting to be dispatched */
    size_t body_got;
    bool stalled;    /* on t->stalled: waits for memory or queue space */
    bool in_handler; /* a request of ours is with the handler */

    /* writing */
    net_response *out;
    int out_piece;
    size_t out_off; /* bytes of out->pieces[out_piece] already sent */
    bool close_after_write;

    bool closed;
    uint32_t events; /* current epoll interest */
    int64_t last_active_ms;
    net_conn *prev, *next; /* t->conns */
    net_conn *stall_next;
    net_conn *dead_next; /* t->graveyard */
};

struct net_thread {
    net_server *s;
    int index;
    int epfd;
    int listen_fd;
    int wake_fd;
    pthread_t tid;
    bool started;
    pthread_mutex_t mu;
    request_box *done_head, *done_tail; /* completions from net_respond */
    net_conn *conns;
    net_conn *stalled;
    net_conn *graveyard; /* closed and unreferenced; freed after each epoll batch */
    uint8_t *copy_buf;   /* for the copying file path */
};

struct net_server {
    net_config cfg;
    net_handler_fn handler;
    void *ctx;
    uint16_t port;
    int listen_fd;
    net_thread *threads;
    int nthreads;

    /* handler queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcond;
    request_box **queue;
    int qcap, qhead, qlen;
    pthread_t *io;
    int nio;

    atomic_bool stopping; /* no new connections */
    atomic_bool io_stop;  /* handler threads drain the queue and exit */
    atomic_bool net_stop; /* set once the handlers are gone: network threads exit */
    atomic_size_t inflight_bytes;
    atomic_int nconns;
    atomic_uint_fast64_t next_conn_id;
    atomic_int busy; /* requests in handlers or queued */

    struct {
        atomic_uint_fast64_t accepted, rejected, requests, oversize, idle_closed, bytes_in, bytes_out;
    } st;
};

void net_config_defaults(net_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "localhost";
    c->port = 9092;
    c->net_threads = 2;
    c->io_threads = 4;
    c->queued_max_requests = 500;
    c->max_request_bytes = 100 * 1024 * 1024;
    c->max_request_bytes_inflight = 512 * 1024 * 1024;
    c->max_connections = 10000;
    c->idle_timeout_ms = 600000;
    c->zero_copy = false;
}

/* ---- handler queue ---------------------------------------------------- */

static bool queue_try_push(net_server *s, request_box *b) {
    pthread_mutex_lock(&s->qmu);
    bool ok = s->qlen < s->qcap;
    if (ok) {
        s->queue[(s->qhead + s->qlen) % s->qcap] = b;
        s->qlen++;
        pthread_cond_signal(&s->qcond);
    }
    pthread_mutex_unlock(&s->qmu);
    return ok;
}

static void *io_main(void *arg) {
    net_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (s->qlen == 0 && !atomic_load(&s->io_stop))
            pthread_cond_wait(&s->qcond, &s->qmu);
        if (s->qlen == 0) {
            pthread_mutex_unlock(&s->qmu);
            return NULL;
        }
        request_box *b = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
        pthread_mutex_unlock(&s->qmu);
        s->handler(s->ctx, &b->req);
    }
}

/* ---- connections ------------------------------------------------------ */

static void wake(net_thread *t) {
    uint64_t one = 1;
    ssize_t n = write(t->wake_fd, &one, sizeof one);
    (void)n; /* a full eventfd counter still wakes the thread */
}

static void set_interest(net_conn *c, uint32_t events) {
    if (c->closed || c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(c->t->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

/* The last reference puts the connection on its thread's graveyard rather
 * than freeing it: later events of the same epoll batch may still name it.
 * The graveyard is emptied after each batch. */
static void conn_unref(net_conn *c) {
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        assert(c->closed);
        c->dead_next = c->t->graveyard;
        c->t->graveyard = c;
    }
}

static void free_graveyard(net_thread *t) {
    while (t->graveyard) {
        net_conn *c = t->graveyard;
        t->graveyard = c->dead_next;
        free(c);
    }
}

static void box_free(net_server *s, request_box *b) {
    if (b == NULL)
        return;
    atomic_fetch_sub(&s->inflight_bytes, b->frame_cap);
    free(b);
}

static void unstall(net_conn *c) {
    if (!c->stalled)
        return;
    net_conn **pp = &c->t->stalled;
    while (*pp && *pp != c)
        pp = &(*pp)->stall_next;
    if (*pp)
        *pp = c->stall_next;
    c->stalled = false;
    c->stall_next = NULL;
}

static void conn_close(net_conn *c, const char *why) {
    if (c->closed)
        return;
    net_thread *t = c->t;
    net_server *s = t->s;
    if (why)
        LOG_DEBUG("net", "closing connection %llu from %s: %s", (unsigned long long)c->id, c->peer, why);
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->closed = true;
    unstall(c);
    /* A frame being read or waiting for dispatch is ours to drop; one in the
     * handler is freed when its response comes back. */
    if (!c->in_handler) {
        box_free(s, c->box);
        c->box = NULL;
    }
    net_response_free(c->out);
    c->out = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&s->nconns, 1);
    conn_unref(c);
}

/* Hands the complete frame to the handler queue, or parks the connection. */
static void conn_dispatch(net_conn *c) {
    net_server *s = c->t->s;
    request_box *b = c->box;
    assert(b && c->frame_size >= 0 && c->body_got == (size_t)c->frame_size);
    c->in_handler = true;
    atomic_fetch_add(&c->refs, 1);
    atomic_fetch_add(&s->busy, 1);
    if (!queue_try_push(s, b)) {
        c->in_handler = false;
        atomic_fetch_sub(&c->refs, 1);
        atomic_fetch_sub(&s->busy, 1);
        if (!c->stalled) {
            c->stalled = true;
            c->stall_next = c->t->stalled;
            c->t->stalled = c;
        }
        set_interest(c, 0);
        return;
    }
    atomic_fetch_add(&s->st.requests, 1);
    c->box = NULL;
    c->frame_size = -1;
    c->size_got = 0;
    c->body_got = 0;
    set_interest(c, 0); /* no reading until the response is queued */
}

/* Allocates the frame buffer once the size is known; false if the global
 * budget is exhausted (the connection then waits on the stalled list). */
static bool conn_alloc_frame(net_conn *c) {
    net_server *s = c->t->s;
    size_t need = (size_t)c->frame_size;
    size_t cur = atomic_load(&s->inflight_bytes);
    do {
        if (cur + need > s->cfg.max_request_bytes_inflight && cur != 0)
            return false;
    } while (!atomic_compare_exchange_weak(&s->inflight_bytes, &cur, cur + need));
    request_box *b = malloc(sizeof *b + need);
    if (b == NULL) {
        atomic_fetch_sub(&s->inflight_bytes, need);
        return false;
    }
    memset(b, 0, sizeof *b);
    b->frame_cap = need;
    b->req.conn = c;
    b->req.conn_id = c->id;
    b->req.peer = c->peer;
    b->req.frame = (uint8_t *)(b + 1);
    b->req.len = need;
    c->box = b;
    c->body_got = 0;
    return true;
}

static void conn_stall(net_conn *c) {
    if (!c->stalled) {
        c->stalled = true;
        c->stall_next = c->t->stalled;
        c->t->stalled = c;
    }
    set_interest(c, 0);
}

static void conn_read(net_conn *c) {
    net_server *s = c->t->s;
    for (int rounds = 0; rounds < 16 && !c->closed && !c->in_handler && !c->stalled; rounds++) {
        if (c->frame_size < 0) {
            ssize_t n = read(c->fd, c->size_buf + c->size_got, 4 - c->size_got);
            if (n == 0) {
                conn_close(c, "peer closed");
                return;
            }
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    conn_close(c, strerror(errno));
                return;
            }
            atomic_fetch_add(&s->st.bytes_in, (uint64_t)n);
            c->last_active_ms = clock_mono_ms();
            c->size_got += (size_t)n;
            if (c->size_got < 4)
                continue;
            int32_t size = (int32_t)(((uint32_t)c->size_buf[0] << 24) | ((uint32_t)c->size_buf[1] << 16) |
                                     ((uint32_t)c->size_buf[2] << 8) | c->size_buf[3]);
            if (size <= 0 || (size_t)size > s->cfg.max_request_bytes) {
                atomic_fetch_add(&s->st.oversize, 1);
                LOG_WARN("net",
                         "closing connection %llu from %s: request size %d outside 1..%zu "
                         "(socket.request.max.bytes)",
                         (unsigned long long)c->id, c->peer, size, s->cfg.max_request_bytes);
                conn_close(c, NULL);
                return;
            }
            c->frame_size = size;
            if (!conn_alloc_frame(c)) {
                conn_stall(c);
                return;
            }
        }
        if (c->box == NULL && !conn_alloc_frame(c)) {
            conn_stall(c);
            return;
        }
        size_t want = (size_t)c->frame_size - c->body_got;
        ssize_t n = read(c->fd, c->box->req.frame + c->body_got, want);
        if (n == 0) {
            conn_close(c, "peer closed mid-request");
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                conn_close(c, strerror(errno));
            return;
        }
        atomic_fetch_add(&s->st.bytes_in, (uint64_t)n);
        c->last_active_ms = clock_mono_ms();
        c->body_got += (size_t)n;
        if (c->body_got == (size_t)c->frame_size) {
            c->box->req.received_ns = clock_mono_ns();
            conn_dispatch(c);
            return;
        }
    }
}

/* Writes as much of c->out as the socket takes. Returns false if the
 * connection was closed. */
static bool conn_write(net_conn *c) {
    net_thread *t = c->t;
    net_server *s = t->s;
    net_response *r = c->out;
    while (r && c->out_piece < r->count) {
        net_piece *p = &r->pieces[c->out_piece];
        ssize_t n;
        if (p->mem) {
            struct iovec iov[NET_IOV_MAX];
            int k = 0;
            for (int i = c->out_piece; i < r->count && k < NET_IOV_MAX && r->pieces[i].mem; i++, k++) {
                size_t skip = i == c->out_piece ? c->out_off : 0;
                iov[k].iov_base = (void *)(r->pieces[i].mem + skip);
                iov[k].iov_len = r->pieces[i].len - skip;
            }
            n = writev(c->fd, iov, k);
        } else if (s->cfg.zero_copy) {
            off_t off = (off_t)(p->off + (int64_t)c->out_off);
            n = sendfile(c->fd, p->fd, &off, p->len - c->out_off);
        } else {
            size_t want = p->len - c->out_off;
            if (want > NET_COPY_CHUNK)
                want = NET_COPY_CHUNK;
            ssize_t got = pread(p->fd, t->copy_buf, want, (off_t)(p->off + (int64_t)c->out_off));
            if (got <= 0) {
                LOG_ERROR("net", "reading response data for connection %llu failed: %s",
                          (unsigned long long)c->id,
                          got < 0 ? strerror(errno) : "file shorter than expected");
                conn_close(c, NULL);
                return false;
            }
            n = write(c->fd, t->copy_buf, (size_t)got);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                set_interest(c, EPOLLOUT);
                return true;
            }
            if (!p->mem && s->cfg.zero_copy && (errno == EINVAL || errno == ENOSYS))
                LOG_ERROR("net", "sendfile failed: %s", strerror(errno));
            conn_close(c, strerror(errno));
            return false;
        }
        if (n == 0 && !p->mem) {
            LOG_ERROR("net", "response file range for connection %llu ended early",
                      (unsigned long long)c->id);
            conn_close(c, NULL);
            return false;
        }
        atomic_fetch_add(&s->st.bytes_out, (uint64_t)n);
        c->last_active_ms = clock_mono_ms();
        /* Advance over what was written. */
        size_t left = (size_t)n;
        while (left > 0 && c->out_piece < r->count) {
            net_piece *q = &r->pieces[c->out_piece];
            size_t rest = q->len - c->out_off;
            if (left < rest) {
                c->out_off += left;
                left = 0;
            } else {
                left -= rest;
                c->out_piece++;
                c->out_off = 0;
            }
        }
    }
    /* Response complete. */
    net_response_free(r);
    c->out = NULL;
    c->out_piece = 0;
    c->out_off = 0;
    if (c->close_after_write) {
        conn_close(c, "closed after response");
        return false;
    }
    set_interest(c, EPOLLIN);
    return true;
}

static void conn_complete(net_thread *t, request_box *b) {
    net_conn *c = b->req.conn;
    net_server *s = t->s;
    atomic_fetch_sub(&s->busy, 1);
    net_response *resp = b->resp;
    bool close_after = b->close_after;
    box_free(s, b);
    if (c->closed) {
        net_response_free(resp);
        conn_unref(c);
        return;
    }
    c->in_handler = false;
    conn_unref(c);
    c->close_after_write = close_after;
    if (resp == NULL || resp->count == 0) {
        net_response_free(resp);
        if (close_after) {
            conn_close(c, "closed by handler");
            return;
        }
        set_interest(c, EPOLLIN);
        conn_read(c);
        return;
    }
    c->out = resp;
    c->out_piece = 0;
    c->out_off = 0;
    if (conn_write(c) && c->out == NULL)
        conn_read(c);
}

void net_respond(net_request *req, net_response *resp, bool close_after) {
    request_box *b = (request_box *)req;
    net_thread *t = req->conn->t;
    b->resp = resp;
    b->close_after = close_after;
    b->next = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->done_tail)
        t->done_tail->next = b;
    else
        t->done_head = b;
    t->done_tail = b;
    pthread_mutex_unlock(&t->mu);
    wake(t);
}

/* ---- network thread --------------------------------------------------- */

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t n) {
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, n, "%s:%d", host, port);
}

static void do_accept(net_thread *t) {
    net_server *s = t->s;
    for (int i = 0; i < NET_ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(t->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                LOG_WARN("net", "accept failed: %s", strerror(errno));
            return;
        }
        if (atomic_fetch_add(&s->nconns, 1) >= s->cfg.max_connections) {
            atomic_fetch_sub(&s->nconns, 1);
            atomic_fetch_add(&s->st.rejected, 1);
            char peer[64];
            format_peer(&ss, peer, sizeof peer);
            LOG_WARN("net", "refusing connection from %s: max.connections (%d) reached", peer,
                     s->cfg.max_connections);
            close(fd);
            continue;
        }
        net_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            atomic_fetch_sub(&s->nconns, 1);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->t = t;
        c->fd = fd;
        c->id = atomic_fetch_add(&s->next_conn_id, 1);
        format_peer(&ss, c->peer, sizeof c->peer);
        atomic_init(&c->refs, 1);
        c->frame_size = -1;
        c->last_active_ms = clock_mono_ms();
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            atomic_fetch_sub(&s->nconns, 1);
            close(fd);
            free(c);
            continue;
        }
        c->next = t->conns;
        if (t->conns)
            t->conns->prev = c;
        t->conns = c;
        atomic_fetch_add(&s->st.accepted, 1);
    }
}

static void drain_completions(net_thread *t) {
    uint64_t v;
    ssize_t n = read(t->wake_fd, &v, sizeof v);
    (void)n;
    pthread_mutex_lock(&t->mu);
    request_box *b = t->done_head;
    t->done_head = t->done_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (b) {
        request_box *next = b->next;
        conn_complete(t, b);
        b = next;
    }
}

static void retry_stalled(net_thread *t) {
    net_conn *list = t->stalled;
    t->stalled = NULL;
    while (list) {
        net_conn *c = list;
        list = c->stall_next;
        c->stalled = false;
        c->stall_next = NULL;
        if (c->closed)
            continue;
        if (c->box && c->body_got == (size_t)c->frame_size) {
            conn_dispatch(c);
        } else {
            set_interest(c, EPOLLIN);
            conn_read(c);
        }
    }
}

static void sweep_idle(net_thread *t, int64_t now) {
    net_server *s = t->s;
    if (s->cfg.idle_timeout_ms <= 0)
        return;
    net_conn *c = t->conns;
    while (c) {
        net_conn *next = c->next;
        if (!c->in_handler && c->out == NULL && now - c->last_active_ms > s->cfg.idle_timeout_ms) {
            atomic_fetch_add(&s->st.idle_closed, 1);
            conn_close(c, "idle timeout (connections.max.idle.ms)");
        }
        c = next;
    }
}

static void *net_main(void *arg) {
    net_thread *t = arg;
    net_server *s = t->s;
    struct epoll_event evs[NET_MAX_EVENTS];
    int64_t last_sweep = clock_mono_ms();
    bool listening = true;
    for (;;) {
        if (atomic_load(&s->stopping)) {
            if (listening) {
                epoll_ctl(t->epfd, EPOLL_CTL_DEL, t->listen_fd, NULL);
                listening = false;
            }
            if (atomic_load(&s->net_stop))
                break;
        }
        int timeout = t->stalled ? NET_STALL_RETRY_MS : 200;
        int n = epoll_wait(t->epfd, evs, NET_MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &t->listen_fd) {
                do_accept(t);
            } else if (ptr == &t->wake_fd) {
                drain_completions(t);
            } else {
                net_conn *c = ptr;
                if (c->closed)
                    continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                    if (!(evs[i].events & EPOLLIN) || c->in_handler) {
                        conn_close(c, "socket error or hang-up");
                        continue;
                    }
                }
                if ((evs[i].events & EPOLLOUT) && c->out) {
                    if (!conn_write(c) || c->out)
                        continue;
                    conn_read(c);
                } else if (evs[i].events & EPOLLIN) {
                    conn_read(c);
                }
            }
        }
        free_graveyard(t);
        if (t->stalled)
            retry_stalled(t);
        int64_t now = clock_mono_ms();
        if (now - last_sweep >= 1000) {
            sweep_idle(t, now);
            last_sweep = now;
        }
    }
    /* Final completions, then close everything still open. */
    drain_completions(t);
    while (t->conns)
        conn_close(t->conns, NULL);
    free_graveyard(t);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------- */

static int bind_listener(const net_config *cfg, uint16_t port, uint16_t *bound) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    const char *host = (cfg->host && cfg->host[0]) ? cfg->host : NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        LOG_ERROR("net", "cannot resolve listener host '%s': %s", host ? host : "*", gai_strerror(rc));
        return -1;
    }
    /* Prefer IPv4 for names like localhost that resolve to both. */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    int fd = socket(pick->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto err;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, pick->ai_addr, pick->ai_addrlen) != 0 || listen(fd, 1024) != 0)
        goto err;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                           : ((struct sockaddr_in6 *)&ss)->sin6_port);
    freeaddrinfo(res);
    return fd;
err:
    LOG_ERROR("net", "cannot listen on %s:%u: %s", host ? host : "*", port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

net_server *net_server_create(const net_config *cfg, net_handler_fn handler, void *ctx) {
    net_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->listen_fd = -1;
    s->cfg = *cfg;
    if (s->cfg.net_threads < 1)
        s->cfg.net_threads = 1;
    if (s->cfg.io_threads < 1)
        s->cfg.io_threads = 1;
    if (s->cfg.queued_max_requests < 1)
        s->cfg.queued_max_requests = 1;
    s->handler = handler;
    s->ctx = ctx;
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcond, NULL);
    s->qcap = s->cfg.queued_max_requests;
    s->queue = calloc((size_t)s->qcap, sizeof *s->queue);
    s->nthreads = s->cfg.net_threads;
    s->threads = calloc((size_t)s->nthreads, sizeof *s->threads);
    if (!s->queue || !s->threads)
        goto err;
    for (int i = 0; i < s->nthreads; i++) {
        net_thread *t = &s->threads[i];
        t->s = s;
        t->index = i;
        t->epfd = t->wake_fd = t->listen_fd = -1;
        pthread_mutex_init(&t->mu, NULL);
    }
    /* One listening socket shared by every network thread; EPOLLEXCLUSIVE
     * wakes one of them per connection. (Per-thread SO_REUSEPORT sockets
     * would let a second broker silently share the port.) */
    uint16_t port = 0;
    s->listen_fd = bind_listener(&s->cfg, cfg->port, &port);
    if (s->listen_fd < 0)
        goto err;
    for (int i = 0; i < s->nthreads; i++) {
        net_thread *t = &s->threads[i];
        t->listen_fd = s->listen_fd;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        t->copy_buf = malloc(NET_COPY_CHUNK);
        if (t->epfd < 0 || t->wake_fd < 0 || !t->copy_buf)
            goto err;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->listen_fd};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &t->wake_fd};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->listen_fd, &ev) != 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &wev) != 0)
            goto err;
    }
    s->port = port;
    atomic_init(&s->next_conn_id, 1);
    return s;
err:
    net_server_destroy(s);
    return NULL;
}

uint16_t net_server_port(const net_server *s) { return s->port; }

int net_server_start(net_server *s) {
    s->nio = s->cfg.io_threads;
    s->io = calloc((size_t)s->nio, sizeof *s->io);
    if (s->io == NULL)
        return -1;
    for (int i = 0; i < s->nio; i++)
        if (pthread_create(&s->io[i], NULL, io_main, s) != 0) {
            s->nio = i;
            return -1;
        }
    for (int i = 0; i < s->nthreads; i++) {
        if (pthread_create(&s->threads[i].tid, NULL, net_main, &s->threads[i]) != 0)
            return -1;
        s->threads[i].started = true;
    }
    return 0;
}

void net_server_stop(net_server *s, int64_t timeout_ms) {
    atomic_store(&s->stopping, true);
    /* Let requests already with the handlers finish and be written. */
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (atomic_load(&s->busy) > 0 && clock_mono_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&s->qmu);
    atomic_store(&s->io_stop, true);
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qmu);
    for (int i = 0; i < s->nio; i++)
        pthread_join(s->io[i], NULL);
    s->nio = 0;
    atomic_store(&s->net_stop, true);
    for (int i = 0; i < s->nthreads; i++) {
        if (s->threads[i].started) {
            wake(&s->threads[i]);
            pthread_join(s->threads[i].tid, NULL);
            s->threads[i].started = false;
        }
    }
}

void net_server_destroy(net_server *s) {
    if (s == NULL)
        return;
    for (int i = 0; s->threads && i < s->nthreads; i++) {
        net_thread *t = &s->threads[i];
        assert(!t->started);
        if (t->epfd >= 0)
            close(t->epfd);
        if (t->wake_fd >= 0)
            close(t->wake_fd);
        free(t->copy_buf);
        pthread_mutex_destroy(&t->mu);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    /* Requests still queued (never handled) belong to closed connections. */
    for (int i = 0; i < s->qlen; i++) {
        request_box *b = s->queue[(s->qhead + i) % s->qcap];
        net_conn *c = b->req.conn;
        box_free(s, b);
        conn_unref(c);
    }
    for (int i = 0; s->threads && i < s->nthreads; i++)
        free_graveyard(&s->threads[i]);
    free(s->threads);
    free(s->queue);
    free(s->io);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcond);
    free(s);
}

void net_server_stats(net_server *s, net_stats *out) {
    out->accepted = atomic_load(&s->st.accepted);
    out->rejected = atomic_load(&s->st.rejected);
    out->open = (uint64_t)atomic_load(&s->nconns);
    out->requests = atomic_load(&s->st.requests);
    out->oversize_frames = atomic_load(&s->st.oversize);
    out->idle_closed = atomic_load(&s->st.idle_closed);
    out->bytes_in = atomic_load(&s->st.bytes_in);
    out->bytes_out = atomic_load(&s->st.bytes_out);
}
