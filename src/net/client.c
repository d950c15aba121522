/*
 * client.c - a blocking connection for the broker's own requests. See client.h.
 */
#include "net/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void net_client_init(net_client *c, const char *host, uint16_t port) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
}

void net_client_close(net_client *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void net_client_free(net_client *c) {
    net_client_close(c);
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = 0;
}

static int wait_fd(int fd, short ev, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, ev, 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & ev) ? -EIO : 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int net_client_connect(net_client *c, int timeout_ms) {
    if (c->fd >= 0)
        return 0;
    char port[8];
    snprintf(port, sizeof port, "%u", c->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    int gr = getaddrinfo(c->host[0] ? c->host : "127.0.0.1", port, &hints, &res);
    if (gr != 0 || res == NULL)
        return -EHOSTUNREACH;
    int64_t deadline = mono_ms() + timeout_ms;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = res; a && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
            rc = -soerr;
        if (rc != 0) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
    }
    freeaddrinfo(res);
    return c->fd >= 0 ? 0 : rc;
}

static int write_all(net_client *c, const uint8_t *p, size_t n, int64_t deadline) {
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
    return 0;
}

static int read_all(net_client *c, uint8_t *p, size_t n, int64_t deadline) {
    while (n > 0) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c->fd, POLLIN, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        return -errno;
    }
    return 0;
}

int net_client_send(net_client *c, const uint8_t *frame, size_t len, int timeout_ms) {
    if (c->fd < 0)
        return -ENOTCONN;
    if (len > INT32_MAX)
        return -EMSGSIZE;
    int64_t deadline = mono_ms() + timeout_ms;
    uint8_t sz[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    int rc = write_all(c, sz, 4, deadline);
    if (rc == 0)
        rc = write_all(c, frame, len, deadline);
    if (rc != 0)
        net_client_close(c);
    return rc;
}

int net_client_recv(net_client *c, size_t max_frame, int timeout_ms) {
    if (c->fd < 0)
        return -ENOTCONN;
    int64_t deadline = mono_ms() + timeout_ms;
    uint8_t sz[4];
    int rc = read_all(c, sz, 4, deadline);
    uint32_t n = rc == 0 ? ((uint32_t)sz[0] << 24 | (uint32_t)sz[1] << 16 | (uint32_t)sz[2] << 8 | sz[3]) : 0;
    if (rc == 0 && (n > max_frame || n > INT32_MAX))
        rc = -EMSGSIZE;
    if (rc == 0 && n > c->cap) {
        uint8_t *nb = realloc(c->buf, n);
        if (nb == NULL) {
            rc = -ENOMEM;
        } else {
            c->buf = nb;
            c->cap = n;
        }
    }
    if (rc == 0)
        rc = read_all(c, c->buf, n, deadline);
    if (rc != 0) {
        net_client_close(c);
        return rc;
    }
    c->len = n;
    return 0;
}
