/*
 * server.c - epoll network threads, framing, the handler queue and response
 * writing. See server.h for the model (one request per connection in the
 * handler, responses in order, back-pressure instead of buffering, memory
 * charged as bytes arrive, per-address limits, descriptor reserve).
 *
 * Threading: a connection belongs to exactly one network thread for its
 * whole life; only that thread touches its socket and its fields, with two
 * exceptions guarded by the thread's mutex: the completion list (responses
 * handed over by net_respond from any thread) and the connection's refcount
 * (atomic). A connection is freed when its socket is closed and no request
 * of it is in the handler any more.
 *
 * Shared across threads: the byte budgets (atomics, charged with
 * compare-and-swap so a check and its charge are one step) and the table of
 * client addresses (s->ipmu), whose entries count their open connections and
 * live as long as a connection struct points at them.
 */
#include "net/server.h"
#include "core/clock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "net/tls.h"

#define NET_MAX_EVENTS     64
#define NET_ACCEPT_BURST   64
#define NET_IOV_MAX        64
#define NET_COPY_CHUNK     (256 * 1024)
#define NET_STALL_RETRY_MS 10
#define NET_IP_BUCKETS     1024
/* accept() back-off after running out of descriptors or memory. */
#define NET_ACCEPT_BACKOFF_MIN_MS 10
#define NET_ACCEPT_BACKOFF_MAX_MS 1000
/* At most one line per this interval for each kind of client-caused line. */
#define NET_LOG_INTERVAL_MS 1000

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
    size_t mem;          /* bytes of the in-memory pieces */
    atomic_size_t *held; /* the server budget charged with held_n bytes, from net_respond() on */
    size_t held_n;
    /* For the `sent` callback (net_response_set_tag): -1 when untagged. */
    int tag;
    int64_t queued_ns, start_ns; /* handed over by net_respond; taken by the network thread */
};

net_response *net_response_new(void) {
    net_response *r = calloc(1, sizeof(net_response));
    if (r != NULL)
        r->tag = -1;
    return r;
}

void net_response_set_tag(net_response *r, int tag) {
    if (r != NULL)
        r->tag = tag;
}

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
    if (p.mem)
        r->mem += p.len;
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
    if (r->held)
        atomic_fetch_sub(r->held, r->held_n);
    free(r->pieces);
    free(r);
}

/* ---- server structures ------------------------------------------------ */

typedef struct net_thread net_thread;

/* A client address: 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6. */
typedef struct net_ip_key {
    uint8_t len;
    uint8_t b[16];
} net_ip_key;

/* One entry of max_connections_per_ip_overrides, names resolved. */
typedef struct net_ip_limit {
    net_ip_key key;
    int limit;
} net_ip_limit;

/* A client address with open connections (s->ip_table). */
typedef struct net_ip {
    net_ip_key key;
    int limit;                 /* connections allowed from it */
    int conns;                 /* open sockets (s->ipmu) */
    int refs;                  /* connection structs pointing here (s->ipmu) */
    atomic_size_t frame_bytes; /* frame memory its connections hold */
    struct net_ip *next;
} net_ip;

/* A request travels as one allocation: this header, then the frame bytes. */
typedef struct request_box {
    net_request req;
    struct request_box *next; /* completion list / handler queue link */
    net_response *resp;
    bool close_after;
    size_t frame_cap;     /* bytes allocated behind the header, charged to both budgets */
    size_t resp_reserved; /* response budget reserved by the handler (net_request_reserve) */
    int64_t mute_ms;      /* net_request_mute: the connection is not read this long after */
} request_box;

struct net_conn {
    net_thread *t;
    int fd;
    uint64_t id;
    char peer[64];
    net_ip *ip;
    tls_conn *tls;        /* NULL on a plaintext listener, and before the ClientHello came */
    char *tls_subject;    /* the client certificate's subject, once the handshake is done; NULL: none */
    void *session;        /* the handler's (net_request_session) */
    bool tls_handshaking; /* a TLS listener's connection whose handshake is not done */
    int64_t accepted_ms;
    atomic_int refs; /* 1 while the socket is open + 1 while a request is in the handler */

    /* reading */
    uint8_t size_buf[4];
    size_t size_got;
    int32_t frame_size;     /* -1 while reading the size prefix */
    request_box *box;       /* the frame being read or waiting to be dispatched */
    size_t body_got;        /* <= box->frame_cap <= frame_size */
    int64_t frame_start_ms; /* first byte of the frame being read; 0 if none */
    bool stalled;           /* on t->stalled: waits for memory or queue space */
    bool in_handler;        /* a request of ours is with the handler */
    int64_t muted_until_ms; /* throttled (net_request_mute): not read before; 0: not muted */

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
    int spare_fd; /* held for accept() to close when descriptors run out; -1 if lost */
    pthread_t tid;
    bool started;
    bool listening;            /* listen_fd is in epfd */
    int64_t accept_resume_ms;  /* accepting paused until then; 0 if not paused */
    int64_t accept_backoff_ms; /* the next pause; 0 after a successful accept */
    pthread_mutex_t mu;
    request_box *done_head, *done_tail; /* completions from net_respond */
    net_conn *conns;
    net_conn *stalled;
    net_conn *graveyard; /* closed and unreferenced; freed after each epoll batch */
    uint8_t *copy_buf;   /* for the copying file path */
    bool tls_ready;      /* a stalled TLS connection has bytes buffered: retry without waiting */
};

struct net_server {
    net_config cfg;
    net_handler_fn handler;
    void *ctx;
    uint16_t port;
    int listen_fd;
    net_thread *threads;
    int nthreads;
    int max_conns;    /* effective connection limit (net_max_connections) */
    size_t ip_share;  /* request bytes one address may hold */
    int64_t sweep_ms; /* period of the idle and read-deadline sweep */

    /* handler queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcond;
    request_box **queue;
    int qcap, qhead, qlen;
    pthread_t *io;
    int nio;

    /* client addresses */
    pthread_mutex_t ipmu;
    net_ip *ip_table[NET_IP_BUCKETS];
    net_ip_limit *overrides;
    int n_overrides;

    atomic_bool stopping;         /* no new connections */
    atomic_bool io_stop;          /* handler threads drain the queue and exit */
    atomic_bool net_stop;         /* set once the handlers are gone: network threads exit */
    atomic_size_t inflight_bytes; /* frame memory, all connections */
    atomic_size_t resp_held;      /* response memory and reservations, all connections */
    atomic_int nconns;
    atomic_uint_fast64_t next_conn_id;
    atomic_int busy; /* requests in handlers or queued */

    struct {
        atomic_uint_fast64_t accepted, rejected, rejected_per_ip, accept_errors, requests, oversize,
            idle_closed, read_timeouts, tls_failures, tls_mismatch, bytes_in, bytes_out, reserve_refused,
            muted;
        /* time the threads spent waiting for work (metrics: idle ratios) */
        atomic_uint_fast64_t net_idle_ns, io_idle_ns;
    } st;
    /* Per handler thread: since when it waits for a request (0: busy), so
     * that a scrape counts the idle time of a thread still asleep. */
    _Atomic int64_t *io_idle_since;
    atomic_int io_seq;
    /* client-caused log lines, one limiter per kind */
    log_ratelimit lim_refused, lim_refused_ip, lim_accept, lim_read_timeout, lim_reserve, lim_tls;
};

void net_config_defaults(net_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "localhost";
    c->port = 9092;
    c->net_threads = 2;
    c->io_threads = 4;
    c->queued_max_requests = 500;
    c->max_request_bytes = 100 * 1024 * 1024;
    c->max_request_bytes_inflight = NET_DEFAULT_MAX_REQUEST_BYTES_INFLIGHT;
    c->max_response_bytes_held = NET_DEFAULT_MAX_RESPONSE_BYTES_HELD;
    c->max_connections = 10000;
    c->max_connections_per_ip = INT_MAX;
    c->max_connections_per_ip_overrides = NULL;
    c->idle_timeout_ms = 600000;
    c->request_read_timeout_ms = NET_DEFAULT_REQUEST_READ_TIMEOUT_MS;
    c->zero_copy = false;
}

/* ---- descriptors ------------------------------------------------------ */

/* The server's own descriptors: the listener, and per network thread its
 * epoll, its eventfd and its spare. */
static int own_fds(const net_config *cfg) { return 1 + 3 * (cfg->net_threads > 0 ? cfg->net_threads : 1); }

int net_max_connections(const net_config *cfg) {
    long long limit = cfg->max_connections > 0 ? cfg->max_connections : 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long long share = (long long)rl.rlim_cur / NET_FD_SHARE_DIVISOR;
        if (share < 1)
            share = 1;
        if (share < limit)
            limit = share;
    }
    return (int)limit;
}

int net_max_fds(const net_config *cfg) { return net_max_connections(cfg) + own_fds(cfg); }

/* ---- client addresses ------------------------------------------------- */

static void ip_key_of(const struct sockaddr_storage *ss, net_ip_key *k) {
    memset(k, 0, sizeof *k);
    if (ss->ss_family == AF_INET) {
        k->len = 4;
        memcpy(k->b, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            k->len = 4;
            memcpy(k->b, a->s6_addr + 12, 4);
        } else {
            k->len = 16;
            memcpy(k->b, a->s6_addr, 16);
        }
    }
}

static bool ip_key_eq(const net_ip_key *a, const net_ip_key *b) {
    return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

static unsigned ip_bucket(const net_ip_key *k) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < k->len; i++)
        h = (h ^ k->b[i]) * 16777619u;
    return h % NET_IP_BUCKETS;
}

static int ip_limit_for(const net_server *s, const net_ip_key *k) {
    for (int i = 0; i < s->n_overrides; i++)
        if (ip_key_eq(&s->overrides[i].key, k))
            return s->overrides[i].limit;
    return s->cfg.max_connections_per_ip;
}

/* Counts a new connection from k. NULL if its address is at its limit
 * (*over set) or memory ran out. */
static net_ip *ip_acquire(net_server *s, const net_ip_key *k, bool *over, int *limit) {
    *over = false;
    unsigned h = ip_bucket(k);
    pthread_mutex_lock(&s->ipmu);
    net_ip *e = s->ip_table[h];
    while (e && !ip_key_eq(&e->key, k))
        e = e->next;
    if (e == NULL) {
        int lim = ip_limit_for(s, k);
        if (lim <= 0 || (e = calloc(1, sizeof *e)) == NULL) {
            pthread_mutex_unlock(&s->ipmu);
            *over = lim <= 0;
            *limit = lim;
            return NULL;
        }
        e->key = *k;
        e->limit = lim;
        atomic_init(&e->frame_bytes, 0);
        e->next = s->ip_table[h];
        s->ip_table[h] = e;
    }
    *limit = e->limit;
    if (e->conns >= e->limit) {
        *over = true;
        e = NULL;
    } else {
        e->conns++;
        e->refs++;
    }
    pthread_mutex_unlock(&s->ipmu);
    return e;
}

/* The connection's socket closed: its slot is free. */
static void ip_close(net_server *s, net_ip *e) {
    pthread_mutex_lock(&s->ipmu);
    assert(e->conns > 0);
    e->conns--;
    pthread_mutex_unlock(&s->ipmu);
}

/* The connection struct is freed: the entry goes with its last one. */
static void ip_release(net_server *s, net_ip *e) {
    pthread_mutex_lock(&s->ipmu);
    assert(e->refs > e->conns);
    if (--e->refs == 0) {
        assert(e->conns == 0 && atomic_load(&e->frame_bytes) == 0);
        net_ip **pp = &s->ip_table[ip_bucket(&e->key)];
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&s->ipmu);
}

/* Parses "host:count,host:count". With out == NULL only the syntax is
 * checked; otherwise each host is resolved and every address it has becomes
 * an entry of out (cap entries). Returns 0, or -1 with why filled. */
static int parse_ip_overrides(const char *text, net_ip_limit *out, int cap, int *n, char *why, size_t whyn) {
    *n = 0;
    const char *p = text ? text : "";
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[300];
        while (len > 0 && isspace((unsigned char)*p))
            p++, len--;
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (len == 0 || len >= sizeof item) {
            snprintf(why, whyn, "expected host:count entries separated by commas, got an %s entry",
                     len == 0 ? "empty" : "overlong");
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strrchr(item, ':');
        if (colon == NULL || colon == item || colon[1] == '\0') {
            snprintf(why, whyn, "entry '%s' is not host:count", item);
            return -1;
        }
        *colon = '\0';
        char *host = item, *num = colon + 1, *stop = NULL;
        errno = 0;
        long long v = strtoll(num, &stop, 10);
        if (errno != 0 || *stop != '\0' || v < 0 || v > INT_MAX || !isdigit((unsigned char)num[0])) {
            snprintf(why, whyn, "count '%s' of host '%s' is not a number from 0 to 2147483647", num, host);
            return -1;
        }
        size_t hl = strlen(host);
        if (host[0] == '[') {
            if (hl < 3 || host[hl - 1] != ']') {
                snprintf(why, whyn, "host '%s' has an unclosed bracket", host);
                return -1;
            }
            host[hl - 1] = '\0';
            host++;
        } else if (strchr(host, ':') != NULL) {
            snprintf(why, whyn, "IPv6 host '%s' must be written in brackets", host);
            return -1;
        }
        if (out != NULL) {
            struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
            struct addrinfo *res = NULL;
            int rc = getaddrinfo(host, NULL, &hints, &res);
            if (rc != 0) {
                snprintf(why, whyn, "cannot resolve host '%s': %s", host, gai_strerror(rc));
                return -1;
            }
            for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                struct sockaddr_storage ss;
                memset(&ss, 0, sizeof ss);
                memcpy(&ss, ai->ai_addr, ai->ai_addrlen < sizeof ss ? ai->ai_addrlen : sizeof ss);
                net_ip_key k;
                ip_key_of(&ss, &k);
                bool dup = false;
                for (int i = 0; i < *n && !dup; i++)
                    if (ip_key_eq(&out[i].key, &k)) {
                        out[i].limit = (int)v; /* a later entry for the same address wins */
                        dup = true;
                    }
                if (dup || k.len == 0)
                    continue;
                if (*n == cap) {
                    freeaddrinfo(res);
                    snprintf(why, whyn, "more than %d addresses", cap);
                    return -1;
                }
                out[(*n)++] = (net_ip_limit){k, (int)v};
            }
            freeaddrinfo(res);
        } else if (++*n > cap) {
            snprintf(why, whyn, "more than %d entries", cap);
            return -1;
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

int net_ip_overrides_check(const char *text, char *why, size_t whyn) {
    int n;
    return parse_ip_overrides(text, NULL, NET_IP_OVERRIDES_MAX, &n, why, whyn);
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
    if (s->cfg.thread_init)
        s->cfg.thread_init(s->ctx);
    int me = atomic_fetch_add(&s->io_seq, 1);
    _Atomic int64_t *since = s->io_idle_since && me < s->cfg.io_threads ? &s->io_idle_since[me] : NULL;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        if (s->qlen == 0 && !atomic_load(&s->io_stop)) {
            /* Two clock reads only when the thread is about to sleep. The
             * idle time is added under qmu, where net_server_stats reads
             * it with `since`, so a scrape never counts it twice. */
            int64_t idle_from = clock_mono_ns();
            if (since)
                atomic_store_explicit(since, idle_from, memory_order_relaxed);
            while (s->qlen == 0 && !atomic_load(&s->io_stop))
                pthread_cond_wait(&s->qcond, &s->qmu);
            atomic_fetch_add_explicit(&s->st.io_idle_ns, (uint64_t)(clock_mono_ns() - idle_from),
                                      memory_order_relaxed);
            if (since)
                atomic_store_explicit(since, 0, memory_order_relaxed);
        }
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
        ip_release(t->s, c->ip);
        if (c->session != NULL && t->s->cfg.session_free != NULL)
            t->s->cfg.session_free(t->s->ctx, c->session);
        free(c->tls_subject);
        free(c);
    }
}

/* Charges more bytes of frame memory for c (which holds have bytes now) to
 * its address's share and to the server's budget. Refused if either would
 * pass its limit, unless c's frame is all that it holds. */
static bool frame_charge(net_conn *c, size_t have, size_t more) {
    net_server *s = c->t->s;
    size_t cur = atomic_load(&c->ip->frame_bytes);
    do {
        if (cur + more > s->ip_share && cur != have)
            return false;
    } while (!atomic_compare_exchange_weak(&c->ip->frame_bytes, &cur, cur + more));
    cur = atomic_load(&s->inflight_bytes);
    do {
        if (cur + more > s->cfg.max_request_bytes_inflight && cur != have) {
            atomic_fetch_sub(&c->ip->frame_bytes, more);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&s->inflight_bytes, &cur, cur + more));
    return true;
}

static void frame_uncharge(net_server *s, net_ip *ip, size_t n) {
    size_t was = atomic_fetch_sub(&ip->frame_bytes, n);
    assert(was >= n);
    was = atomic_fetch_sub(&s->inflight_bytes, n);
    assert(was >= n);
    (void)was;
}

static void box_free(net_server *s, request_box *b) {
    if (b == NULL)
        return;
    frame_uncharge(s, b->req.conn->ip, b->frame_cap);
    assert(b->resp_reserved == 0);
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
    tls_conn_free(c->tls);
    c->tls = NULL;
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
    ip_close(s, c->ip);
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
    c->frame_start_ms = 0;
    /* No reading until the response is queued, but a hang-up is seen. */
    set_interest(c, EPOLLRDHUP);
}

/* Makes room for more of the frame: first for the bytes already received
 * (avail, at least NET_FRAME_MIN), then twice what the buffer holds, never
 * more than the declared size. False if a budget or malloc says no (the
 * connection then waits on the stalled list). */
static bool conn_grow_frame(net_conn *c, size_t avail) {
    net_server *s = c->t->s;
    size_t frame = (size_t)c->frame_size;
    size_t have = c->box ? c->box->frame_cap : 0;
    size_t want = have ? have * 2 : (avail > NET_FRAME_MIN ? avail : NET_FRAME_MIN);
    if (want > frame || (have && have > frame / 2))
        want = frame;
    assert(want > have && want <= frame && c->body_got == have);
    if (!frame_charge(c, have, want - have))
        return false;
    request_box *b = realloc(c->box, sizeof *b + want);
    if (b == NULL) {
        frame_uncharge(s, c->ip, want - have);
        return false;
    }
    if (have == 0) {
        memset(b, 0, sizeof *b);
        b->req.conn = c;
        b->req.conn_id = c->id;
        b->req.peer = c->peer;
        b->req.len = frame;
        b->req.sasl = s->cfg.sasl;
        b->req.tls = c->tls != NULL;
        b->req.tls_subject = c->tls_subject;
    }
    b->req.frame = (uint8_t *)(b + 1);
    b->frame_cap = want;
    c->box = b;
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

/* After a read that returned n: true if bytes came; otherwise closes the
 * connection at end of stream or on an error (not on EAGAIN or EINTR). */
static bool read_ok(net_conn *c, ssize_t n, const char *eof_why) {
    if (n > 0)
        return true;
    if (n == 0)
        conn_close(c, eof_why);
    else if (errno != EAGAIN && errno != EINTR)
        conn_close(c, errno == EPROTO && c->tls ? "TLS error" : strerror(errno));
    else if (c->tls)
        /* TLS may need to write before it can read on (a key update). */
        set_interest(c, tls_conn_wants_write(c->tls) ? EPOLLOUT : EPOLLIN);
    return false;
}

static ssize_t conn_recv(net_conn *c, void *buf, size_t n) {
    return c->tls ? tls_conn_read(c->tls, buf, n) : read(c->fd, buf, n);
}

/* Closes a connection of a TLS listener that could not start TLS, with a
 * line that names the peer and why. */
static void tls_refuse(net_conn *c, const char *why) {
    net_server *s = c->t->s;
    atomic_fetch_add(&s->st.tls_failures, 1);
    uint64_t held;
    if (log_ratelimit_allow(&s->lim_tls, &held))
        LOG_WARN("net",
                 "TLS handshake with %s on listener %s failed: %s; connection closed (%llu similar lines "
                 "held back)",
                 c->peer, s->cfg.listener ? s->cfg.listener : "?", why, (unsigned long long)held);
    conn_close(c, NULL);
}

/* Drives the TLS handshake of a new connection. True once it is done (the
 * connection's frames can be read); false while it waits for the socket or
 * after it failed (the connection is then closed). */
static bool conn_handshake(net_conn *c) {
    net_server *s = c->t->s;
    char why[320];
    if (c->tls == NULL) {
        /* Before OpenSSL sees a byte: a client that speaks plaintext Kafka
         * (or anything but TLS) is named as such, not as a TLS error. */
        uint8_t first;
        ssize_t n = recv(c->fd, &first, 1, MSG_PEEK);
        if (n == 0) {
            conn_close(c, "peer closed before the TLS handshake");
            return false;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                conn_close(c, strerror(errno));
            return false;
        }
        if (first != 0x16) { /* a TLS handshake record */
            tls_refuse(c, first == 0x00 ? "the client sent a plaintext Kafka request, not a TLS ClientHello "
                                          "(is it configured with security.protocol=SSL?)"
                                        : "the client's first bytes are not a TLS ClientHello");
            return false;
        }
        c->tls = tls_conn_new(s->cfg.tls, c->fd, clock_mono_ms());
        if (c->tls == NULL) {
            conn_close(c, "out of memory for TLS");
            return false;
        }
    }
    int r = tls_conn_handshake(c->tls, why, sizeof why);
    if (r == 0) {
        set_interest(c, tls_conn_wants_write(c->tls) ? EPOLLOUT : EPOLLIN);
        return false;
    }
    if (r < 0) {
        tls_refuse(c, why);
        return false;
    }
    c->tls_handshaking = false;
    c->last_active_ms = clock_mono_ms();
    char subject[512];
    tls_conn_peer_subject(c->tls, subject, sizeof subject);
    if (subject[0] != '\0')
        c->tls_subject = strdup(subject); /* NULL on failure: treated as no certificate */
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char desc[128];
        tls_conn_describe(c->tls, desc, sizeof desc);
        LOG_DEBUG("net", "connection %llu from %s: TLS established (%s), client certificate '%s'",
                  (unsigned long long)c->id, c->peer, desc, subject);
    }
    set_interest(c, EPOLLIN);
    return true;
}

/* Bytes of the frame the socket holds, to size its first buffer by; 0 if
 * none have come yet or the connection closed. */
static size_t socket_holds(net_conn *c) {
    if (c->tls) {
        /* Decrypted bytes plus what the socket holds (ciphertext: a few
         * percent more than the plaintext it carries). */
        size_t p = tls_conn_pending(c->tls);
        if (p == 0) {
            uint8_t peek; /* decrypts the next record, if one is whole */
            if (!read_ok(c, tls_conn_peek(c->tls, &peek, 1), "peer closed mid-request"))
                return 0;
            p = tls_conn_pending(c->tls);
        }
        int raw = 0;
        if (ioctl(c->fd, FIONREAD, &raw) == 0 && raw > 0)
            p += (size_t)raw;
        return p > 0 ? p : 1;
    }
    int queued = 0;
    if (ioctl(c->fd, FIONREAD, &queued) != 0)
        return NET_FRAME_MIN;
    if (queued > 0)
        return (size_t)queued;
    uint8_t peek; /* FIONREAD says 0 at end of stream too */
    return read_ok(c, recv(c->fd, &peek, 1, MSG_PEEK), "peer closed mid-request") ? 1 : 0;
}

static void conn_read(net_conn *c) {
    net_server *s = c->t->s;
    if (c->tls_handshaking && (c->closed || !conn_handshake(c)))
        return;
    /* A throttled client's next request waits for the end of its throttle
     * time (KIP-219): the connection sits on the stalled list, retried
     * every NET_STALL_RETRY_MS, with no read interest. */
    if (c->muted_until_ms != 0) {
        if (clock_mono_ms() < c->muted_until_ms) {
            conn_stall(c);
            return;
        }
        c->muted_until_ms = 0;
        set_interest(c, EPOLLIN);
    }
    /* TLS hands over one record (at most 16 KiB) per read: more rounds. */
    int max_rounds = c->tls ? 64 : 16;
    for (int rounds = 0; rounds < max_rounds && !c->closed && !c->in_handler && !c->stalled; rounds++) {
        if (c->frame_size < 0) {
            ssize_t n = conn_recv(c, c->size_buf + c->size_got, 4 - c->size_got);
            if (!read_ok(c, n, c->size_got ? "peer closed mid-request" : "peer closed"))
                return;
            atomic_fetch_add(&s->st.bytes_in, (uint64_t)n);
            c->last_active_ms = clock_mono_ms();
            if (c->size_got == 0)
                c->frame_start_ms = c->last_active_ms; /* the read deadline starts */
            c->size_got += (size_t)n;
            if (c->size_got < 4)
                continue;
            int32_t size = (int32_t)(((uint32_t)c->size_buf[0] << 24) | ((uint32_t)c->size_buf[1] << 16) |
                                     ((uint32_t)c->size_buf[2] << 8) | c->size_buf[3]);
            if (c->tls == NULL && c->size_buf[0] == 0x16 && c->size_buf[1] == 0x03 &&
                c->size_buf[2] <= 0x04) {
                /* A TLS record header (handshake, version 3.x), not a size. */
                atomic_fetch_add(&s->st.tls_mismatch, 1);
                uint64_t held;
                if (log_ratelimit_allow(&s->lim_tls, &held))
                    LOG_WARN("net",
                             "closing connection %llu from %s: the client opened a TLS handshake on the "
                             "plaintext listener %s (is it configured with security.protocol=SSL for a "
                             "PLAINTEXT port?) (%llu similar lines held back)",
                             (unsigned long long)c->id, c->peer, s->cfg.listener ? s->cfg.listener : "?",
                             (unsigned long long)held);
                conn_close(c, NULL);
                return;
            }
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
            c->body_got = 0;
            assert(c->box == NULL);
        }
        /* Memory is taken as the bytes come, never for a size only declared:
         * the first buffer is sized by what the socket holds. */
        size_t avail = 0;
        if (c->box == NULL && (size_t)c->frame_size > NET_FRAME_MIN && (avail = socket_holds(c)) == 0)
            return; /* nothing yet (EPOLLIN brings us back), or closed */
        if ((c->box == NULL || c->body_got == c->box->frame_cap) && !conn_grow_frame(c, avail)) {
            conn_stall(c);
            return;
        }
        size_t want = c->box->frame_cap - c->body_got;
        ssize_t n = conn_recv(c, c->box->req.frame + c->body_got, want);
        if (!read_ok(c, n, "peer closed mid-request"))
            return;
        atomic_fetch_add(&s->st.bytes_in, (uint64_t)n);
        c->last_active_ms = clock_mono_ms();
        c->body_got += (size_t)n;
        assert(c->body_got <= c->box->frame_cap);
        if (c->body_got == (size_t)c->frame_size) {
            c->box->req.received_ns = clock_mono_ns();
            conn_dispatch(c);
            return;
        }
    }
    /* Out of rounds with decrypted bytes left: the socket may never become
     * readable for them, so the connection is retried after this batch. */
    if (c->tls && !c->closed && !c->in_handler && !c->stalled && tls_conn_has_pending(c->tls)) {
        conn_stall(c);
        c->t->tls_ready = true;
    }
}

/* Copies up to cap bytes of c's response from its current position into
 * buf, reading file ranges. The same position always gives the same bytes,
 * as a TLS write retried after EAGAIN needs. -1 (connection closed) if a
 * file read fails. */
static ssize_t tls_gather(net_conn *c, uint8_t *buf, size_t cap) {
    net_response *r = c->out;
    size_t got = 0, off = c->out_off;
    for (int i = c->out_piece; i < r->count && got < cap; i++, off = 0) {
        net_piece *p = &r->pieces[i];
        size_t want = p->len - off;
        if (want > cap - got)
            want = cap - got;
        if (p->mem) {
            memcpy(buf + got, p->mem + off, want);
        } else {
            ssize_t n = pread(p->fd, buf + got, want, (off_t)(p->off + (int64_t)off));
            if (n != (ssize_t)want) {
                LOG_ERROR("net", "reading response data for connection %llu failed: %s",
                          (unsigned long long)c->id, n < 0 ? strerror(errno) : "file shorter than expected");
                conn_close(c, NULL);
                return -1;
            }
        }
        got += want;
    }
    return (ssize_t)got;
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
        if (c->tls) {
            ssize_t len = tls_gather(c, t->copy_buf, NET_TLS_CHUNK);
            if (len < 0)
                return false;
            n = tls_conn_write(c->tls, t->copy_buf, (size_t)len);
            if (n < 0 && errno == EAGAIN) {
                /* Retried with the same bytes when the socket is ready. */
                set_interest(c, tls_conn_wants_write(c->tls) ? EPOLLOUT : EPOLLIN);
                return true;
            }
            if (n <= 0) {
                conn_close(c, n == 0 ? "peer closed" : errno == EPROTO ? "TLS error" : strerror(errno));
                return false;
            }
        } else if (p->mem) {
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
    if (r->tag >= 0 && s->cfg.sent != NULL)
        s->cfg.sent(s->ctx, r->tag, r->start_ns - r->queued_ns, clock_mono_ns() - r->start_ns);
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
    int64_t mute_ms = b->mute_ms;
    box_free(s, b);
    if (c->closed) {
        net_response_free(resp);
        conn_unref(c);
        return;
    }
    c->in_handler = false;
    conn_unref(c);
    c->close_after_write = close_after;
    if (mute_ms > 0) {
        c->muted_until_ms = clock_mono_ms() + mute_ms;
        atomic_fetch_add(&s->st.muted, 1);
    }
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
    if (resp->tag >= 0)
        resp->start_ns = clock_mono_ns();
    if (conn_write(c) && c->out == NULL)
        conn_read(c);
}

void **net_request_session(net_request *req) { return &req->conn->session; }

bool net_request_reserve(net_request *req, size_t n) {
    request_box *b = (request_box *)req;
    net_server *s = req->conn->t->s;
    size_t cur = atomic_load(&s->resp_held);
    do {
        if (cur + n > s->cfg.max_response_bytes_held && cur != b->resp_reserved) {
            atomic_fetch_add(&s->st.reserve_refused, 1);
            uint64_t held;
            if (log_ratelimit_allow(&s->lim_reserve, &held))
                LOG_WARN("net",
                         "%zu bytes of responses wait in memory for their clients (budget %zu, "
                         "sluice.queued.max.response.bytes): the answer to %s carries less "
                         "(%llu similar refusals held back)",
                         cur, s->cfg.max_response_bytes_held, req->peer, (unsigned long long)held);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&s->resp_held, &cur, cur + n));
    b->resp_reserved += n;
    return true;
}

void net_request_unreserve(net_request *req, size_t n) {
    request_box *b = (request_box *)req;
    assert(n <= b->resp_reserved);
    b->resp_reserved -= n;
    atomic_fetch_sub(&req->conn->t->s->resp_held, n);
}

void net_request_mute(net_request *req, int64_t ms) {
    request_box *b = (request_box *)req;
    b->mute_ms = ms > 0 ? ms : 0;
}

void net_respond(net_request *req, net_response *resp, bool close_after) {
    request_box *b = (request_box *)req;
    net_thread *t = req->conn->t;
    net_server *s = t->s;
    /* The reservation becomes the response's exact in-memory size, held
     * until the response is written or dropped (net_response_free). */
    size_t mem = resp ? resp->mem : 0;
    if (mem > b->resp_reserved)
        atomic_fetch_add(&s->resp_held, mem - b->resp_reserved);
    else
        atomic_fetch_sub(&s->resp_held, b->resp_reserved - mem);
    b->resp_reserved = 0;
    if (resp) {
        assert(resp->held == NULL);
        resp->held = &s->resp_held;
        resp->held_n = mem;
        if (resp->tag >= 0)
            resp->queued_ns = clock_mono_ns();
    }
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

/* Stops accepting on t for a back-off that doubles with each failure in a
 * row (a successful accept resets it). The listening socket stays readable
 * while connections wait, so without the pause epoll would wake at once. */
static void accept_pause(net_thread *t) {
    net_server *s = t->s;
    t->accept_backoff_ms = t->accept_backoff_ms ? t->accept_backoff_ms * 2 : NET_ACCEPT_BACKOFF_MIN_MS;
    if (t->accept_backoff_ms > NET_ACCEPT_BACKOFF_MAX_MS)
        t->accept_backoff_ms = NET_ACCEPT_BACKOFF_MAX_MS;
    t->accept_resume_ms = clock_mono_ms() + t->accept_backoff_ms;
    if (t->listening && epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL) == 0)
        t->listening = false;
}

static void accept_resume(net_thread *t) {
    t->accept_resume_ms = 0;
    if (t->listening || atomic_load(&t->s->stopping))
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->listen_fd};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->listen_fd, &ev) == 0)
        t->listening = true;
    else
        accept_pause(t); /* try again later */
}

/* accept() failed with err (not a transient "nothing to accept"). */
static void accept_failed(net_thread *t, int err) {
    net_server *s = t->s;
    atomic_fetch_add(&s->st.accept_errors, 1);
    int dropped = 0;
    if ((err == EMFILE || err == ENFILE) && t->spare_fd >= 0) {
        /* Free a descriptor to take the first waiting connection off the
         * queue and close it: its client learns at once instead of waiting
         * in the backlog. */
        close(t->spare_fd);
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            dropped = 1;
        }
        t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    accept_pause(t);
    uint64_t held;
    if (log_ratelimit_allow(&s->lim_accept, &held)) {
        struct rlimit rl = {0, 0};
        getrlimit(RLIMIT_NOFILE, &rl);
        LOG_WARN("net",
                 "accept failed: %s (%d connections open, RLIMIT_NOFILE %llu); %snot accepting for %lld ms "
                 "(%llu similar lines held back)",
                 strerror(err), atomic_load(&s->nconns), (unsigned long long)rl.rlim_cur,
                 dropped ? "closed one waiting connection, " : "", (long long)t->accept_backoff_ms,
                 (unsigned long long)held);
    }
}

static void refuse(int fd, const struct sockaddr_storage *ss, log_ratelimit *lim, const char *why,
                   int limit) {
    close(fd);
    uint64_t held;
    if (log_ratelimit_allow(lim, &held)) {
        char peer[64];
        format_peer(ss, peer, sizeof peer);
        LOG_WARN("net", "refusing connection from %s: %s (%d) reached (%llu similar lines held back)", peer,
                 why, limit, (unsigned long long)held);
    }
}

static void do_accept(net_thread *t) {
    net_server *s = t->s;
    for (int i = 0; i < NET_ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(t->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED &&
                errno != EPROTO)
                accept_failed(t, errno);
            return;
        }
        t->accept_backoff_ms = 0;
        if (t->spare_fd < 0)
            t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (atomic_fetch_add(&s->nconns, 1) >= s->max_conns) {
            atomic_fetch_sub(&s->nconns, 1);
            atomic_fetch_add(&s->st.rejected, 1);
            refuse(fd, &ss, &s->lim_refused,
                   s->max_conns < s->cfg.max_connections ? "the connection limit left by RLIMIT_NOFILE"
                                                         : "max.connections",
                   s->max_conns);
            continue;
        }
        net_ip_key key;
        ip_key_of(&ss, &key);
        bool over;
        int limit;
        net_ip *ip = ip_acquire(s, &key, &over, &limit);
        if (ip == NULL) {
            atomic_fetch_sub(&s->nconns, 1);
            if (over) {
                atomic_fetch_add(&s->st.rejected_per_ip, 1);
                refuse(fd, &ss, &s->lim_refused_ip, "max.connections.per.ip", limit);
            } else {
                close(fd);
            }
            continue;
        }
        net_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            atomic_fetch_sub(&s->nconns, 1);
            ip_close(s, ip);
            ip_release(s, ip);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->t = t;
        c->fd = fd;
        c->ip = ip;
        c->id = atomic_fetch_add(&s->next_conn_id, 1);
        format_peer(&ss, c->peer, sizeof c->peer);
        atomic_init(&c->refs, 1);
        c->frame_size = -1;
        c->last_active_ms = clock_mono_ms();
        c->accepted_ms = c->last_active_ms;
        c->tls_handshaking = s->cfg.tls != NULL;
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            atomic_fetch_sub(&s->nconns, 1);
            ip_close(s, ip);
            ip_release(s, ip);
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
    t->tls_ready = false;
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

static bool frame_complete(const net_conn *c) {
    return c->box != NULL && c->body_got == (size_t)c->frame_size;
}

/* Closes connections idle for idle_timeout_ms (no request, or a response
 * that could not be written any further for that long) and connections whose
 * frame has not arrived whole within request_read_timeout_ms of its first
 * byte, whether the client sends slowly or the connection waits for memory. */
static void sweep(net_thread *t, int64_t now) {
    net_server *s = t->s;
    int64_t idle = s->cfg.idle_timeout_ms, deadline = s->cfg.request_read_timeout_ms;
    net_conn *c = t->conns;
    while (c) {
        net_conn *next = c->next;
        if (c->in_handler) {
            c = next;
            continue;
        }
        if (c->tls_handshaking && now - c->accepted_ms > NET_TLS_HANDSHAKE_MS) {
            char why[96];
            snprintf(why, sizeof why, "the handshake did not finish within %d ms", NET_TLS_HANDSHAKE_MS);
            tls_refuse(c, why);
        } else if (deadline > 0 && c->frame_start_ms != 0 && !frame_complete(c) &&
                   now - c->frame_start_ms > deadline) {
            atomic_fetch_add(&s->st.read_timeouts, 1);
            uint64_t held;
            if (log_ratelimit_allow(&s->lim_read_timeout, &held))
                LOG_WARN("net",
                         "closing connection %llu from %s: request not received within %lld ms "
                         "(sluice.request.read.timeout.ms), %zu of %d bytes arrived (%llu similar lines "
                         "held back)",
                         (unsigned long long)c->id, c->peer, (long long)deadline, c->body_got + c->size_got,
                         c->frame_size < 0 ? 4 : c->frame_size + 4, (unsigned long long)held);
            conn_close(c, NULL);
        } else if (idle > 0 && now - c->last_active_ms > idle) {
            atomic_fetch_add(&s->st.idle_closed, 1);
            conn_close(c, c->out ? "no write progress (connections.max.idle.ms)"
                                 : "idle timeout (connections.max.idle.ms)");
        }
        c = next;
    }
}

static void *net_main(void *arg) {
    net_thread *t = arg;
    if (t->s->cfg.thread_init)
        t->s->cfg.thread_init(t->s->ctx);
    net_server *s = t->s;
    struct epoll_event evs[NET_MAX_EVENTS];
    int64_t last_sweep = clock_mono_ms();
    for (;;) {
        if (atomic_load(&s->stopping)) {
            if (t->listening) {
                epoll_ctl(t->epfd, EPOLL_CTL_DEL, t->listen_fd, NULL);
                t->listening = false;
            }
            t->accept_resume_ms = 0;
            if (atomic_load(&s->net_stop))
                break;
        }
        if (t->stalled == NULL)
            t->tls_ready = false; /* its connection closed meanwhile */
        int timeout = t->tls_ready ? 0 : t->stalled ? NET_STALL_RETRY_MS : 200;
        if (t->accept_resume_ms) {
            int64_t until = t->accept_resume_ms - clock_mono_ms();
            if (until < timeout)
                timeout = until > 0 ? (int)until : 0;
        }
        int64_t idle_from = clock_mono_ns();
        int n = epoll_wait(t->epfd, evs, NET_MAX_EVENTS, timeout);
        atomic_fetch_add_explicit(&s->st.net_idle_ns, (uint64_t)(clock_mono_ns() - idle_from),
                                  memory_order_relaxed);
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &t->listen_fd) {
                if (t->listening)
                    do_accept(t);
            } else if (ptr == &t->wake_fd) {
                drain_completions(t);
            } else {
                net_conn *c = ptr;
                if (c->closed)
                    continue;
                if (c->in_handler && (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
                    /* The client left while its request waits (a long poll). */
                    uint64_t id = c->id;
                    conn_close(c, "the client closed the connection while its request was handled");
                    if (s->cfg.abandoned)
                        s->cfg.abandoned(s->ctx, id);
                    continue;
                }
                if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                    if (!(evs[i].events & EPOLLIN)) {
                        conn_close(c, "socket error or hang-up");
                        continue;
                    }
                }
                /* (A TLS connection may wait for the socket's other
                 * direction: a handshake, or a write that must read.) */
                if (c->tls_handshaking) {
                    conn_read(c);
                } else if (c->out && (evs[i].events & (EPOLLOUT | EPOLLIN))) {
                    if (!conn_write(c) || c->out)
                        continue;
                    conn_read(c);
                } else if (evs[i].events & (EPOLLIN | EPOLLOUT)) {
                    conn_read(c);
                }
            }
        }
        free_graveyard(t);
        if (t->stalled)
            retry_stalled(t);
        int64_t now = clock_mono_ms();
        if (t->accept_resume_ms && now >= t->accept_resume_ms) {
            accept_resume(t);
            if (t->listening)
                do_accept(t);
        }
        if (now - last_sweep >= s->sweep_ms) {
            sweep(t, now);
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
    if (s != NULL) {
        /* Lines a client can trigger at will: one a second per kind. */
        const log_ratelimit one = LOG_RATELIMIT_INIT(1, NET_LOG_INTERVAL_MS);
        s->lim_refused = s->lim_refused_ip = s->lim_accept = s->lim_read_timeout = s->lim_reserve = one;
        s->lim_tls = (log_ratelimit)LOG_RATELIMIT_INIT(5, NET_LOG_INTERVAL_MS);
    }
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
    s->cfg.max_connections_per_ip_overrides = NULL; /* parsed below; the text need not outlive this call */
    s->max_conns = net_max_connections(&s->cfg);
    if (s->max_conns < s->cfg.max_connections) {
        struct rlimit rl = {0, 0};
        getrlimit(RLIMIT_NOFILE, &rl);
        LOG_INFO("net",
                 "accepting at most %d connections (max.connections is %d): RLIMIT_NOFILE is %llu, and "
                 "connections may use 1/%d of it (the rest is for partitions)",
                 s->max_conns, s->cfg.max_connections, (unsigned long long)rl.rlim_cur, NET_FD_SHARE_DIVISOR);
    }
    s->ip_share = s->cfg.max_request_bytes_inflight / NET_IP_SHARE_DIVISOR;
    s->sweep_ms = 1000;
    if (s->cfg.idle_timeout_ms > 0 && s->cfg.idle_timeout_ms / 4 < s->sweep_ms)
        s->sweep_ms = s->cfg.idle_timeout_ms / 4;
    if (s->cfg.request_read_timeout_ms > 0 && s->cfg.request_read_timeout_ms / 4 < s->sweep_ms)
        s->sweep_ms = s->cfg.request_read_timeout_ms / 4;
    if (s->sweep_ms < 10)
        s->sweep_ms = 10;
    s->handler = handler;
    s->ctx = ctx;
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->ipmu, NULL);
    const char *ov = cfg->max_connections_per_ip_overrides;
    if (ov && ov[0]) {
        char why[256];
        s->overrides = calloc(NET_IP_OVERRIDES_MAX, sizeof *s->overrides);
        if (s->overrides == NULL)
            goto err;
        if (parse_ip_overrides(ov, s->overrides, NET_IP_OVERRIDES_MAX, &s->n_overrides, why, sizeof why) !=
            0) {
            LOG_ERROR("net", "invalid max.connections.per.ip.overrides '%s': %s", ov, why);
            goto err;
        }
    }
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
        t->epfd = t->wake_fd = t->listen_fd = t->spare_fd = -1;
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
        t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        t->copy_buf = malloc(NET_COPY_CHUNK);
        if (t->epfd < 0 || t->wake_fd < 0 || t->spare_fd < 0 || !t->copy_buf)
            goto err;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->listen_fd};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &t->wake_fd};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->listen_fd, &ev) != 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &wev) != 0)
            goto err;
        t->listening = true;
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
    s->io_idle_since = calloc((size_t)s->nio, sizeof *s->io_idle_since);
    if (s->io == NULL || s->io_idle_since == NULL)
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
        if (t->spare_fd >= 0)
            close(t->spare_fd);
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
    /* Once every request has come back, every connection is gone and with
     * it every charge. (A stop that timed out may leave some behind.) */
    if (atomic_load(&s->busy) == 0) {
        for (int i = 0; i < NET_IP_BUCKETS; i++)
            assert(s->ip_table[i] == NULL);
        assert(atomic_load(&s->inflight_bytes) == 0 && atomic_load(&s->resp_held) == 0);
    }
    free(s->overrides);
    free(s->threads);
    free(s->queue);
    free(s->io);
    free(s->io_idle_since);
    pthread_mutex_destroy(&s->ipmu);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcond);
    free(s);
}

void net_server_stats(net_server *s, net_stats *out) {
    out->accepted = atomic_load(&s->st.accepted);
    out->rejected = atomic_load(&s->st.rejected);
    out->rejected_per_ip = atomic_load(&s->st.rejected_per_ip);
    out->accept_errors = atomic_load(&s->st.accept_errors);
    out->open = (uint64_t)atomic_load(&s->nconns);
    out->requests = atomic_load(&s->st.requests);
    out->oversize_frames = atomic_load(&s->st.oversize);
    out->idle_closed = atomic_load(&s->st.idle_closed);
    out->read_timeouts = atomic_load(&s->st.read_timeouts);
    out->tls_failures = atomic_load(&s->st.tls_failures);
    out->tls_mismatch = atomic_load(&s->st.tls_mismatch);
    out->muted = atomic_load(&s->st.muted);
    out->bytes_in = atomic_load(&s->st.bytes_in);
    out->bytes_out = atomic_load(&s->st.bytes_out);
    out->request_bytes_held = atomic_load(&s->inflight_bytes);
    out->response_bytes_held = atomic_load(&s->resp_held);
    out->response_reserve_refused = atomic_load(&s->st.reserve_refused);
    out->max_connections = s->max_conns;
    out->net_idle_ns = atomic_load(&s->st.net_idle_ns);
    out->io_idle_ns = atomic_load(&s->st.io_idle_ns);
    out->net_threads = s->nthreads;
    out->io_threads = s->cfg.io_threads;
    pthread_mutex_lock(&s->qmu);
    out->queued = s->qlen;
    /* Threads asleep now: their idle time so far. */
    int64_t now = clock_mono_ns();
    out->io_idle_ns = atomic_load(&s->st.io_idle_ns);
    for (int i = 0; s->io_idle_since != NULL && i < s->cfg.io_threads; i++) {
        int64_t since = atomic_load_explicit(&s->io_idle_since[i], memory_order_relaxed);
        if (since > 0 && now > since)
            out->io_idle_ns += (uint64_t)(now - since);
    }
    pthread_mutex_unlock(&s->qmu);
}
