/*
 * kraw.c - the tools' own-codec Kafka client. See kraw.h.
 */
#include "tools/kraw.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/gen/kafka_msgs.h"
#include "proto/header.h"

#define KRAW_CLIENT_ID "sluice-cli"
#define KRAW_ARENA     (64 * 1024 * 1024)

/* cli_err unless the caller asked for a quiet, best-effort call. */
static void kraw_err(const kc_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kraw_err(const kc_opts *o, const char *fmt, ...) {
    if (o->quiet)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_err(o->cmd, "%s", msg);
}

/* Waits until fd is ready for events, up to ms. 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do {
        r = poll(&p, 1, ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return -ETIMEDOUT;
    return r < 0 ? -errno : 0;
}

static int write_all(kraw *c, const uint8_t *p, size_t n) {
    while (n > 0) {
        int w = wait_fd(c->fd, POLLOUT, c->timeout_ms);
        if (w < 0)
            return w;
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EPIPE;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_all(kraw *c, uint8_t *p, size_t n) {
    while (n > 0) {
        int w = wait_fd(c->fd, POLLIN, c->timeout_ms);
        if (w < 0)
            return w;
        ssize_t k = recv(c->fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -ECONNRESET;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Connects to one "host:port" (non-blocking socket). fd or -errno. */
static int connect_one(char *hp, int ms) {
    char *s = strstr(hp, "://");
    s = s ? s + 3 : hp;
    char *colon = strrchr(s, ':');
    if (colon == NULL)
        return -EINVAL;
    *colon = '\0';
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(s, colon + 1, &hints, &res) != 0)
        return -EHOSTUNREACH;
    int fd = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            fd = -errno;
            continue;
        }
        int err = 0;
        socklen_t sl = sizeof err;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
            (errno != EINPROGRESS || wait_fd(fd, POLLOUT, ms) != 0 ||
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 || err != 0)) {
            close(fd);
            fd = -(err ? err : ECONNREFUSED);
        }
    }
    freeaddrinfo(res);
    return fd;
}

int16_t kraw_version(const kraw *c, int16_t api_key, int16_t want) {
    if (api_key < 0 || api_key >= 128 || c->max_version[api_key] < 0)
        return -1;
    return c->max_version[api_key] < want ? c->max_version[api_key] : want;
}

int kraw_call(kraw *c, const kc_opts *o, int16_t api_key, int16_t version, const uint8_t *body,
              size_t body_len, wire_reader *r) {
    uint8_t hdr[256];
    wire_writer w;
    int32_t corr = c->next_corr++;
    int hv = proto_request_header_version(api_key, version);
    wire_writer_init(&w, hdr, sizeof hdr);
    wire_write_i32(&w, 0); /* frame size, patched below */
    wire_write_i16(&w, api_key);
    wire_write_i16(&w, version);
    wire_write_i32(&w, corr);
    if (hv >= 1)
        wire_write_string(&w, kstr_c(KRAW_CLIENT_ID), false, true);
    if (hv >= 2)
        wire_write_uvarint(&w, 0); /* no tagged fields */
    if (w.err != WIRE_OK || body_len > KRAW_MAX_FRAME) {
        kraw_err(o, "request too large");
        return CLI_EUSAGE;
    }
    wire_put_be32(hdr, (uint32_t)(w.len - 4 + body_len));
    int e = write_all(c, hdr, w.len);
    if (e == 0)
        e = write_all(c, body, body_len);
    uint8_t sz[4];
    if (e == 0)
        e = read_all(c, sz, 4);
    if (e != 0)
        goto io_err;
    uint32_t n = wire_be32(sz);
    if (n < 4 || n > KRAW_MAX_FRAME) {
        kraw_err(o, "broker sent a frame of %u bytes", n);
        return CLI_EFAIL;
    }
    if (n > c->rcap) {
        uint8_t *nb = realloc(c->rbuf, n);
        if (nb == NULL)
            return CLI_EFAIL;
        c->rbuf = nb;
        c->rcap = n;
    }
    if ((e = read_all(c, c->rbuf, n)) != 0)
        goto io_err;
    wire_reader_init(r, c->rbuf, n);
    if (wire_read_i32(r) != corr) {
        kraw_err(o, "broker answered out of order");
        return CLI_EFAIL;
    }
    if (proto_response_header_version(api_key, version) >= 1) {
        uint32_t tags = wire_read_uvarint(r);
        for (uint32_t i = 0; i < tags && r->err == WIRE_OK; i++) {
            (void)wire_read_uvarint(r);
            wire_skip(r, wire_read_uvarint(r));
        }
    }
    if (r->err != WIRE_OK) {
        kraw_err(o, "malformed response header: %s", wire_strerror(r->err));
        return CLI_EFAIL;
    }
    arena_reset(&c->a);
    return CLI_OK;
io_err:
    kraw_err(o, "request to the broker failed: %s", strerror(-e));
    return CLI_EUNREACH;
}

int kraw_open(kraw *c, const kc_opts *o) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->next_corr = 1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 15000;
    arena_init(&c->a, KRAW_ARENA);
    for (int i = 0; i < 128; i++)
        c->max_version[i] = -1;
    char list[CLI_ARG_MAX];
    if (strlen(o->bootstrap) >= sizeof list) {
        kraw_err(o, "--bootstrap-server: list too long");
        return CLI_EUSAGE;
    }
    strcpy(list, o->bootstrap);
    int fd = -ECONNREFUSED;
    for (char *save = NULL, *hp = strtok_r(list, ",", &save); hp && fd < 0; hp = strtok_r(NULL, ",", &save))
        fd = connect_one(hp, c->timeout_ms < 3000 ? c->timeout_ms : 3000);
    if (fd < 0) {
        kraw_err(o, "cannot connect to the broker (%s)", strerror(-fd));
        return CLI_EUNREACH;
    }
    c->fd = fd;
    /* ApiVersions v0: understood by every broker, no flexible encoding. */
    wire_reader r;
    int rc = kraw_call(c, o, KAFKA_API_API_VERSIONS, 0, NULL, 0, &r);
    if (rc != CLI_OK)
        return rc;
    kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    if (kafka_api_versions_response_decode(&r, 0, &c->a, &resp) != WIRE_OK || resp.error_code != 0) {
        kraw_err(o, "cannot read the broker's ApiVersions");
        return CLI_EFAIL;
    }
    for (int32_t i = 0; i < resp.api_keys_count; i++) {
        int16_t k = resp.api_keys[i].api_key;
        if (k >= 0 && k < 128)
            c->max_version[k] = resp.api_keys[i].max_version;
    }
    return CLI_OK;
}

void kraw_close(kraw *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->rbuf);
    c->rbuf = NULL;
    arena_reset(&c->a);
}

int kraw_require(const kc_opts *o, const int16_t *keys, int n, const char *what) {
    kraw c;
    int rc = kraw_open(&c, o);
    if (rc == CLI_OK) {
        char missing[512] = "";
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            if (kraw_version(&c, keys[i], INT16_MAX) >= 0)
                continue;
            const kafka_api_info *api = kafka_api_lookup(keys[i]);
            int k = snprintf(missing + used, sizeof missing - used, "%s%s (%d)", used ? ", " : "",
                             api ? api->name : "?", keys[i]);
            if (k > 0 && (size_t)k < sizeof missing - used)
                used += (size_t)k;
        }
        if (used > 0) {
            kraw_err(o, "the broker does not serve %s, needed for %s", missing, what);
            rc = CLI_EFAIL;
        }
    }
    kraw_close(&c);
    return rc;
}
