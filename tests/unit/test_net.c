/*
 * Unit tests for src/net/server.c over real loopback sockets: framing,
 * ordering of pipelined requests, limits (frame size, connections, idle
 * time), back-pressure on slow readers, and both file-range paths.
 */
#include "net/server.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Handler modes, chosen by the first byte of each request. */
enum { ECHO = 'e', BIG = 'b', NONE = 'n', CLOSE = 'c', FILE_RANGE = 'f', SLOW = 's' };

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

static int dial(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

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

int main(void) {
    UNIT_RUN(test_echo_and_pipelining);
    UNIT_RUN(test_no_response_then_next);
    UNIT_RUN(test_oversize_and_garbage);
    UNIT_RUN(test_close_after);
    UNIT_RUN(test_max_connections);
    UNIT_RUN(test_idle_timeout);
    UNIT_RUN(test_slow_reader_bounded);
    UNIT_RUN(test_file_ranges);
    UNIT_RUN(test_queue_backpressure);
    return UNIT_END("test_net");
}
