/*
 * Unit tests for src/net/server.c over real loopback sockets: framing,
 * ordering of pipelined requests, limits (frame size, connections, idle
 * time), back-pressure on slow readers, and both file-range paths; memory
 * charged as frame bytes arrive, the request-read deadline, per-address
 * connection limits, the held-response budget, and accept() when the
 * process runs out of descriptors.
 */
#include "net/server.h"
#include "core/log.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Handler modes, chosen by the first byte of each request. */
enum {
    ECHO = 'e',
    BIG = 'b',
    NONE = 'n',
    CLOSE = 'c',
    FILE_RANGE = 'f',
    SLOW = 's',
    RESERVE = 'r',
    MUTE = 'm'
};

/* What a RESERVE request asks of the held-response budget. */
#define RESERVE_BYTES (600 * 1024)

static int g_file_fd = -1;
static atomic_int g_released;

static void release_cb(void *arg) {
    (void)arg;
    atomic_fetch_add(&g_released, 1);
}

static void handler(void *ctx, net_request *req) {
    (void)ctx;
    net_response *r = net_response_new();
    uint8_t mode = req->len ? req->frame[0] : ECHO;
    if (mode == MUTE) { /* echo, then the connection is muted for 300 ms */
        net_request_mute(req, 300);
        mode = ECHO;
    }
    if (mode == SLOW) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        mode = ECHO;
    }
    uint8_t hdr[4];
    switch (mode) {
    case NONE:
        net_response_free(r);
        net_respond(req, NULL, false);
        return;
    case BIG: {
        size_t n = 1 << 20;
        uint8_t *big = calloc(1, n + 4);
        big[0] = (uint8_t)(n >> 24), big[1] = (uint8_t)(n >> 16), big[2] = (uint8_t)(n >> 8),
        big[3] = (uint8_t)n;
        net_response_append_owned(r, big, n + 4);
        break;
    }
    case RESERVE: {
        /* Answers 1 if the budget had room, then keeps the reservation until
         * net_respond() turns it into the size of this small answer. */
        uint8_t ans[5] = {0, 0, 0, 1, net_request_reserve(req, RESERVE_BYTES) ? 1 : 0};
        net_response_append(r, ans, 5);
        break;
    }
    case FILE_RANGE: {
        /* 4-byte size, then 100000 bytes of the file starting at offset 7. */
        size_t n = 100000;
        hdr[0] = 0, hdr[1] = (uint8_t)(n >> 16), hdr[2] = (uint8_t)(n >> 8), hdr[3] = (uint8_t)n;
        net_response_append(r, hdr, 4);
        net_response_append_file(r, g_file_fd, 7, n, release_cb, NULL);
        break;
    }
    default:
        hdr[0] = (uint8_t)(req->len >> 24), hdr[1] = (uint8_t)(req->len >> 16);
        hdr[2] = (uint8_t)(req->len >> 8), hdr[3] = (uint8_t)req->len;
        net_response_append(r, hdr, 4);
        net_response_append(r, req->frame, req->len);
        break;
    }
    net_respond(req, r, mode == CLOSE);
}

static net_server *start(net_config *cfg) {
    net_server *s = net_server_create(cfg, handler, NULL);
    if (s && net_server_start(s) != 0) {
        net_server_stop(s, 0);
        net_server_destroy(s);
        return NULL;
    }
    return s;
}

static void stop(net_server *s) {
    net_server_stop(s, 2000);
    net_server_destroy(s);
}

/* Connects to port from the loopback address 127.0.0.<host> (any of
 * 127.0.0.0/8 reaches the listener, and each is a client address of its own). */
static int dial_from(uint16_t port, int host) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
    src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)host);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int dial(uint16_t port) { return dial_from(port, 1); }

static bool write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *p, size_t n) {
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static bool send_frame(int fd, const void *body, uint32_t n) {
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    return write_all(fd, h, 4) && write_all(fd, body, n);
}

/* Reads one size-prefixed response into buf (cap bytes); returns its size or -1. */
static long recv_frame(int fd, uint8_t *buf, size_t cap) {
    uint8_t h[4];
    if (!read_all(fd, h, 4))
        return -1;
    uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    if (n > cap || !read_all(fd, buf, n))
        return -1;
    return (long)n;
}

/* True if the peer closed the connection within 3 s. */
static bool closed_by_peer(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 3000) <= 0)
        return false;
    uint8_t b[64];
    ssize_t r = read(fd, b, sizeof b);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* True if an ECHO request on fd is answered. */
static bool echoes(int fd) {
    uint8_t e[2] = {ECHO, 7}, buf[8];
    return fd >= 0 && send_frame(fd, e, 2) && recv_frame(fd, buf, sizeof buf) == 2 && buf[1] == 7;
}

static net_config base_config(void) {
    net_config c;
    net_config_defaults(&c);
    c.host = "127.0.0.1";
    c.port = 0;
    c.net_threads = 2;
    c.io_threads = 2;
    return c;
}

static void test_echo_and_pipelining(void) {
    net_config cfg = base_config();
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s));
    REQUIRE(fd >= 0);
    /* 200 requests in one burst; responses must come back in order. */
    uint8_t out[200 * 12];
    size_t off = 0;
    for (uint32_t i = 0; i < 200; i++) {
        uint8_t *p = out + off;
        p[0] = 0, p[1] = 0, p[2] = 0, p[3] = 8;
        p[4] = i % 3 == 0 ? SLOW : ECHO;
        p[5] = 0, p[6] = 0, p[7] = 0;
        p[8] = (uint8_t)(i >> 24), p[9] = (uint8_t)(i >> 16), p[10] = (uint8_t)(i >> 8), p[11] = (uint8_t)i;
        off += 12;
    }
    REQUIRE(write_all(fd, out, off));
    for (uint32_t i = 0; i < 200; i++) {
        uint8_t buf[16];
        long n = recv_frame(fd, buf, sizeof buf);
        REQUIRE(n == 8);
        uint32_t got = ((uint32_t)buf[4] << 24) | ((uint32_t)buf[5] << 16) | ((uint32_t)buf[6] << 8) | buf[7];
        CHECK_EQ_INT(got, i);
    }
    close(fd);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.requests, 200);
    stop(s);
}

static void test_no_response_then_next(void) {
    net_config cfg = base_config();
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s));
    uint8_t none = NONE, echo[3] = {ECHO, 'h', 'i'};
    REQUIRE(send_frame(fd, &none, 1));
    REQUIRE(send_frame(fd, echo, 3));
    uint8_t buf[8];
    CHECK_EQ_INT(recv_frame(fd, buf, sizeof buf), 3);
    CHECK(memcmp(buf, echo, 3) == 0);
    close(fd);
    stop(s);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A muted connection gets its response at once, then its next request is
 * not read until the mute ends (KIP-219 throttling); others are not held. */
static void test_mute_after_response(void) {
    net_config cfg = base_config();
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s)), other = dial(net_server_port(s));
    REQUIRE(fd >= 0 && other >= 0);
    uint8_t mute[2] = {MUTE, 1}, buf[8];
    int64_t t0 = now_ms();
    REQUIRE(send_frame(fd, mute, 2));
    REQUIRE(recv_frame(fd, buf, sizeof buf) == 2);
    CHECK(now_ms() - t0 < 250); /* the response is not delayed */
    CHECK(echoes(other));       /* nor is another connection */
    CHECK(now_ms() - t0 < 250);
    CHECK(echoes(fd)); /* sent at once, read after the mute */
    int64_t took = now_ms() - t0;
    CHECK(took >= 290 && took < 2000);
    CHECK(echoes(fd)); /* the mute is over */
    CHECK(now_ms() - t0 - took < 250);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.muted, 1);
    close(fd);
    close(other);
    stop(s);
}

static void test_oversize_and_garbage(void) {
    net_config cfg = base_config();
    cfg.max_request_bytes = 1024;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    uint16_t port = net_server_port(s);
    /* Frame size over the limit. */
    int fd = dial(port);
    uint8_t h[4] = {0, 0, 0x10, 0};
    REQUIRE(write_all(fd, h, 4));
    CHECK(closed_by_peer(fd));
    close(fd);
    /* Negative size and zero size. */
    uint8_t neg[4] = {0xff, 0xff, 0xff, 0xfe}, zero[4] = {0, 0, 0, 0};
    fd = dial(port);
    REQUIRE(write_all(fd, neg, 4));
    CHECK(closed_by_peer(fd));
    close(fd);
    fd = dial(port);
    REQUIRE(write_all(fd, zero, 4));
    CHECK(closed_by_peer(fd));
    close(fd);
    /* The server still serves others. */
    fd = dial(port);
    uint8_t e[2] = {ECHO, 1};
    REQUIRE(send_frame(fd, e, 2));
    uint8_t buf[8];
    CHECK_EQ_INT(recv_frame(fd, buf, sizeof buf), 2);
    close(fd);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.oversize_frames, 3);
    stop(s);
}

static void test_close_after(void) {
    net_config cfg = base_config();
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s));
    uint8_t c = CLOSE;
    REQUIRE(send_frame(fd, &c, 1));
    uint8_t buf[8];
    CHECK_EQ_INT(recv_frame(fd, buf, sizeof buf), 1);
    CHECK(closed_by_peer(fd));
    close(fd);
    stop(s);
}

static void test_max_connections(void) {
    net_config cfg = base_config();
    cfg.max_connections = 4;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = dial(net_server_port(s));
        uint8_t e[1] = {ECHO}, buf[4];
        REQUIRE(send_frame(fds[i], e, 1));
        CHECK_EQ_INT(recv_frame(fds[i], buf, sizeof buf), 1);
    }
    int extra = dial(net_server_port(s));
    REQUIRE(extra >= 0);
    CHECK(closed_by_peer(extra));
    close(extra);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.rejected, 1);
    stop(s);
}

static void test_idle_timeout(void) {
    net_config cfg = base_config();
    cfg.idle_timeout_ms = 300;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s));
    CHECK(closed_by_peer(fd)); /* swept within about a second */
    close(fd);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.idle_closed, 1);
    stop(s);
}

/* A client that sends many requests for big responses and never reads:
 * the server must stop reading from it instead of buffering. */
static void test_slow_reader_bounded(void) {
    net_config cfg = base_config();
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s));
    int rcv = 256 * 1024; /* small enough to fill, big enough to drain fast */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    for (int i = 0; i < 32; i++) {
        uint8_t b = BIG;
        REQUIRE(send_frame(fd, &b, 1));
    }
    struct timespec ts = {0, 500 * 1000000};
    nanosleep(&ts, NULL);
    net_stats st;
    net_server_stats(s, &st);
    /* Socket buffers hold a few MiB at most; far fewer than 32 responses. */
    CHECK(st.requests < 16);
    /* Reading now drains everything in order. */
    uint8_t *buf = malloc(1 << 20);
    for (int i = 0; i < 32; i++)
        REQUIRE(recv_frame(fd, buf, 1 << 20) == (1 << 20));
    free(buf);
    close(fd);
    stop(s);
}

static void file_range_case(bool zero_copy) {
    net_config cfg = base_config();
    cfg.zero_copy = zero_copy;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    atomic_store(&g_released, 0);
    int fd = dial(net_server_port(s));
    uint8_t *buf = malloc(200000);
    for (int i = 0; i < 5; i++) {
        uint8_t f = FILE_RANGE;
        REQUIRE(send_frame(fd, &f, 1));
        REQUIRE(recv_frame(fd, buf, 200000) == 100000);
        bool same = true;
        for (int k = 0; k < 100000; k++)
            same &= buf[k] == (uint8_t)((k + 7) * 31);
        CHECK(same);
    }
    free(buf);
    close(fd);
    stop(s);
    CHECK_EQ_INT(atomic_load(&g_released), 5);
}

static void test_file_ranges(void) {
    char path[] = "/tmp/sluice-net-XXXXXX";
    g_file_fd = mkstemp(path);
    REQUIRE(g_file_fd >= 0);
    unlink(path);
    uint8_t *data = malloc(200000);
    for (int k = 0; k < 200000; k++)
        data[k] = (uint8_t)(k * 31);
    REQUIRE(write_all(g_file_fd, data, 200000));
    free(data);
    file_range_case(true);
    file_range_case(false);
    close(g_file_fd);
}

/* One handler thread and a queue of one: many clients still all get answers. */
static void *client_main(void *arg) {
    uint16_t port = (uint16_t)(uintptr_t)arg;
    int fd = dial(port);
    long ok = 0;
    for (int i = 0; i < 5 && fd >= 0; i++) {
        uint8_t b[2] = {SLOW, (uint8_t)i}, buf[4];
        if (send_frame(fd, b, 2) && recv_frame(fd, buf, sizeof buf) == 2 && buf[1] == i)
            ok++;
    }
    if (fd >= 0)
        close(fd);
    return (void *)ok;
}

static void test_queue_backpressure(void) {
    net_config cfg = base_config();
    cfg.io_threads = 1;
    cfg.queued_max_requests = 1;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, client_main, (void *)(uintptr_t)net_server_port(s));
    long total = 0;
    for (int i = 0; i < 6; i++) {
        void *r;
        pthread_join(th[i], &r);
        total += (long)r;
    }
    CHECK_EQ_INT(total, 30);
    stop(s);
}

/* A declared size reserves nothing: the frame's memory follows the bytes that
 * arrived (first what the socket holds, at least NET_FRAME_MIN, then doubling),
 * and goes back when it closes. */
static void test_frame_memory_follows_bytes(void) {
    net_config cfg = base_config();
    cfg.max_request_bytes = 64 << 20;
    cfg.max_request_bytes_inflight = 1 << 20; /* far less than the declared frame */
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int only_size = dial(net_server_port(s));
    uint8_t pre[4 + 100] = {0x03, 0x20, 0, 0}; /* 50 MiB declared */
    REQUIRE(write_all(only_size, pre, 4));
    sleep_ms(100);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.request_bytes_held, 0); /* a size alone takes nothing */
    int fd = dial(net_server_port(s));
    REQUIRE(write_all(fd, pre, sizeof pre));
    sleep_ms(100);
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.request_bytes_held, NET_FRAME_MIN); /* 100 bytes of body */
    static uint8_t more[20000];
    REQUIRE(write_all(fd, more, sizeof more));
    sleep_ms(100);
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.request_bytes_held, 64 * NET_FRAME_MIN); /* 20100 bytes: doubled up to 32 KiB */
    /* Others are served meanwhile. */
    int other = dial(net_server_port(s));
    CHECK(echoes(other));
    close(other);
    close(fd);
    close(only_size);
    for (int i = 0; i < 50 && (net_server_stats(s, &st), st.request_bytes_held != 0); i++)
        sleep_ms(20);
    CHECK_EQ_INT(st.request_bytes_held, 0);
    stop(s);
}

/* A frame must arrive whole in time, however often bytes trickle in. */
static void test_request_read_deadline(void) {
    net_config cfg = base_config();
    cfg.request_read_timeout_ms = 300;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    int fd = dial(net_server_port(s));
    uint8_t pre[5] = {0, 0, 0, 100, ECHO};
    REQUIRE(write_all(fd, pre, sizeof pre));
    bool closed = false;
    for (int i = 0; i < 30 && !closed; i++) { /* one byte every 100 ms, at most 3 s */
        uint8_t b = 0;
        closed = write(fd, &b, 1) != 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (!closed && poll(&p, 1, 100) > 0)
            closed = true;
    }
    CHECK(closed);
    close(fd);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.read_timeouts, 1);
    /* A whole frame is unaffected. */
    fd = dial(net_server_port(s));
    CHECK(echoes(fd));
    close(fd);
    stop(s);
}

static void test_connections_per_address(void) {
    char why[256];
    CHECK(net_ip_overrides_check("", why, sizeof why) == 0);
    CHECK(net_ip_overrides_check("127.0.0.2:3, [::1]:0,localhost:7", why, sizeof why) == 0);
    CHECK(net_ip_overrides_check("127.0.0.2", why, sizeof why) != 0);
    CHECK(net_ip_overrides_check("127.0.0.2:x", why, sizeof why) != 0);
    CHECK(net_ip_overrides_check("127.0.0.2:-1", why, sizeof why) != 0);
    CHECK(net_ip_overrides_check("::1:3", why, sizeof why) != 0);
    CHECK(net_ip_overrides_check("a:1,,b:2", why, sizeof why) != 0);
    CHECK(net_ip_overrides_check("a:99999999999", why, sizeof why) != 0);

    net_config cfg = base_config();
    cfg.max_connections_per_ip = 2;
    cfg.max_connections_per_ip_overrides = "127.0.0.2:3,127.0.0.3:0";
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    uint16_t port = net_server_port(s);
    int fds[5];
    for (int i = 0; i < 2; i++) {
        fds[i] = dial_from(port, 1);
        CHECK(echoes(fds[i]));
    }
    int extra = dial_from(port, 1);
    CHECK(closed_by_peer(extra));
    close(extra);
    int two[3];
    for (int i = 0; i < 3; i++) {
        two[i] = dial_from(port, 2);
        CHECK(echoes(two[i]));
    }
    extra = dial_from(port, 2);
    CHECK(closed_by_peer(extra));
    close(extra);
    extra = dial_from(port, 3); /* 0: none at all */
    CHECK(closed_by_peer(extra));
    close(extra);
    /* A closed connection frees its slot. */
    close(fds[0]);
    bool again = false;
    for (int i = 0; i < 50 && !again; i++) {
        sleep_ms(20);
        int fd = dial_from(port, 1);
        again = echoes(fd);
        if (fd >= 0)
            close(fd);
    }
    CHECK(again);
    net_stats st;
    net_server_stats(s, &st);
    CHECK(st.rejected_per_ip >= 3);
    close(fds[1]);
    for (int i = 0; i < 3; i++)
        close(two[i]);
    stop(s);
}

/* Responses waiting for a client that does not read count against the
 * held-response budget; a handler asking to reserve is refused while they
 * wait and served once they are written. */
static void test_held_response_budget(void) {
    net_config cfg = base_config();
    cfg.max_response_bytes_held = 1 << 20;
    net_server *s = start(&cfg);
    REQUIRE(s != NULL);
    uint16_t port = net_server_port(s);
    int asker = dial(port);
    uint8_t req = RESERVE, buf[8];
    REQUIRE(send_frame(asker, &req, 1) && recv_frame(asker, buf, sizeof buf) == 1);
    CHECK_EQ_INT(buf[0], 1); /* room */
    int hog = dial(port);
    int rcv = 256 * 1024; /* small enough to fill, big enough to drain fast */
    setsockopt(hog, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    /* Requests for 1 MiB answers that are never read: once the socket
     * buffers are full, one answer (1 MiB + 4 bytes) waits in memory. */
    for (int i = 0; i < 32; i++) {
        uint8_t big = BIG;
        REQUIRE(send_frame(hog, &big, 1));
    }
    sleep_ms(300);
    net_stats st;
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.response_bytes_held, (1 << 20) + 4);
    REQUIRE(send_frame(asker, &req, 1) && recv_frame(asker, buf, sizeof buf) == 1);
    CHECK_EQ_INT(buf[0], 0); /* refused while the hog's response waits */
    uint8_t *whole = malloc(1 << 20);
    for (int i = 0; i < 32; i++)
        REQUIRE(recv_frame(hog, whole, 1 << 20) == 1 << 20);
    free(whole);
    sleep_ms(50);
    REQUIRE(send_frame(asker, &req, 1) && recv_frame(asker, buf, sizeof buf) == 1);
    CHECK_EQ_INT(buf[0], 1);
    close(hog);
    close(asker);
    sleep_ms(50);
    net_server_stats(s, &st);
    CHECK_EQ_INT(st.response_bytes_held, 0);
    CHECK_EQ_INT(st.response_reserve_refused, 1);
    stop(s);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* With no descriptor left, accept() fails with EMFILE while connections wait:
 * the server must back off instead of spinning on the readable listener,
 * write few log lines, and serve again once descriptors are free. */
static void test_descriptor_exhaustion_backs_off(void) {
    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit low = {256, old.rlim_max};
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    net_config cfg = base_config();
    net_server *s = start(&cfg);
    if (s == NULL) {
        setrlimit(RLIMIT_NOFILE, &old);
        REQUIRE(s != NULL);
    }
    uint16_t port = net_server_port(s);
    int served = dial(port);
    CHECK(echoes(served));
    /* Take every free descriptor but four, then fill those with clients
     * that wait in the listen backlog. */
    static int fill[256];
    int nfill = 0;
    while (nfill < 256 && (fill[nfill] = dup(0)) >= 0)
        nfill++;
    int waiting[4], nwait = 0;
    for (int i = 0; i < 4 && nfill > 0; i++)
        close(fill[--nfill]);
    for (int i = 0; i < 4; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0)
            break;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connect(fd, (struct sockaddr *)&a, sizeof a); /* in progress or done: the kernel queues it */
        waiting[nwait++] = fd;
    }
    uint64_t lines0 = log_lines_written();
    double cpu0 = cpu_seconds();
    sleep_ms(1000);
    double cpu = cpu_seconds() - cpu0;
    uint64_t lines = log_lines_written() - lines0;
    net_stats st;
    net_server_stats(s, &st);
    CHECK(st.accept_errors > 0);
    CHECK(cpu < 0.25);     /* a spinning thread takes about 1 s of CPU here */
    CHECK(lines <= 3);     /* rate-limited: one line per second */
    CHECK(echoes(served)); /* connected clients are still served */
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    for (int i = 0; i < nwait; i++)
        close(waiting[i]);
    bool again = false;
    for (int i = 0; i < 100 && !again; i++) { /* back-off is at most 1 s */
        int fd = dial(port);
        again = echoes(fd);
        if (fd >= 0)
            close(fd);
        if (!again)
            sleep_ms(30);
    }
    CHECK(again);
    close(served);
    stop(s);
    setrlimit(RLIMIT_NOFILE, &old);
    fprintf(stderr, "test_descriptor_exhaustion_backs_off: %.3f s CPU and %llu log lines in 1 s\n", cpu,
            (unsigned long long)lines);
}

/* The connection limit leaves three quarters of the descriptors to storage. */
static void test_connection_limit_follows_nofile(void) {
    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit low = {300, old.rlim_max};
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    net_config cfg = base_config(); /* 2 threads: 7 descriptors of its own */
    int mc = net_max_connections(&cfg), fds = net_max_fds(&cfg);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK_EQ_INT(mc, 300 / NET_FD_SHARE_DIVISOR);
    CHECK_EQ_INT(fds, mc + 7);
    cfg.max_connections = 5;
    CHECK_EQ_INT(net_max_connections(&cfg), 5);
}

int main(void) {
    UNIT_RUN(test_echo_and_pipelining);
    UNIT_RUN(test_no_response_then_next);
    UNIT_RUN(test_mute_after_response);
    UNIT_RUN(test_oversize_and_garbage);
    UNIT_RUN(test_close_after);
    UNIT_RUN(test_max_connections);
    UNIT_RUN(test_idle_timeout);
    UNIT_RUN(test_slow_reader_bounded);
    UNIT_RUN(test_file_ranges);
    UNIT_RUN(test_queue_backpressure);
    UNIT_RUN(test_frame_memory_follows_bytes);
    UNIT_RUN(test_request_read_deadline);
    UNIT_RUN(test_connections_per_address);
    UNIT_RUN(test_held_response_budget);
    UNIT_RUN(test_descriptor_exhaustion_backs_off);
    UNIT_RUN(test_connection_limit_follows_nofile);
    return UNIT_END("test_net");
}
