/*
 * bench_net.c - how fast the network layer sends file ranges (the Fetch
 * path), with sendfile (zero copy) and with pread+write (copying), each as a
 * ratio of plain loopback TCP measured in the same run: a thread writing
 * from memory to a socket as fast as it can.
 *
 * Also prints CPU seconds per GiB sent (user+sys of the whole process), which
 * is where zero copy pays off on a real NIC even when loopback hides it.
 *
 *   bench_net [total MiB per run, default 2048]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "net/server.h"

#define RANGE_BYTES (8u << 20) /* one response = one 8 MiB file range */
#define FILE_BYTES  (64u << 20)

static int g_fd = -1;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void handler(void *ctx, net_request *req) {
    (void)ctx;
    static _Atomic unsigned next;
    unsigned i = next++;
    int64_t off = (int64_t)(i % (FILE_BYTES / RANGE_BYTES)) * RANGE_BYTES;
    uint8_t hdr[4] = {(uint8_t)(RANGE_BYTES >> 24), (uint8_t)(RANGE_BYTES >> 16), (uint8_t)(RANGE_BYTES >> 8),
                      (uint8_t)RANGE_BYTES};
    net_response *r = net_response_new();
    net_response_append(r, hdr, 4);
    net_response_append_file(r, g_fd, off, RANGE_BYTES, NULL, NULL);
    net_respond(req, r, false);
}

static int dial(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void read_n(int fd, uint8_t *buf, size_t cap, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, buf, n < cap ? n : cap);
        if (r <= 0) {
            perror("read");
            exit(1);
        }
        n -= (size_t)r;
    }
}

/* Requests `count` ranges one after another and reads them; returns GiB/s. */
static double run_server(bool zero_copy, int count, double *cpu_per_gib) {
    net_config cfg;
    net_config_defaults(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.net_threads = 1;
    cfg.io_threads = 1;
    cfg.zero_copy = zero_copy;
    net_server *s = net_server_create(&cfg, handler, NULL);
    if (!s || net_server_start(s) != 0) {
        fprintf(stderr, "cannot start server\n");
        exit(1);
    }
    int fd = dial(net_server_port(s));
    uint8_t req[4 + 8] = {0, 0, 0, 8};
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < count; i++) {
        if (write(fd, req, sizeof req) != (ssize_t)sizeof req) {
            perror("write");
            exit(1);
        }
        read_n(fd, buf, cap, 4 + RANGE_BYTES);
    }
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    double gib = (double)count * RANGE_BYTES / (1u << 30);
    close(fd);
    free(buf);
    net_server_stop(s, 1000);
    net_server_destroy(s);
    *cpu_per_gib = cpu / gib;
    return gib / secs;
}

/* Baseline: a thread writes from memory into a loopback socket. */
typedef struct pump {
    int fd;
    size_t total;
} pump;

static void *pump_main(void *arg) {
    pump *p = arg;
    size_t chunk = 1 << 20;
    uint8_t *buf = calloc(1, chunk);
    size_t left = p->total;
    while (left > 0) {
        ssize_t w = write(p->fd, buf, left < chunk ? left : chunk);
        if (w <= 0)
            break;
        left -= (size_t)w;
    }
    free(buf);
    return NULL;
}

static double run_baseline(size_t total, double *cpu_per_gib) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
        perror("baseline listen");
        exit(1);
    }
    int cfd = dial(ntohs(a.sin_port));
    int sfd = accept(ls, NULL, NULL);
    pump p = {sfd, total};
    pthread_t th;
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    double t0 = now_s(), c0 = cpu_s();
    pthread_create(&th, NULL, pump_main, &p);
    read_n(cfd, buf, cap, total);
    pthread_join(th, NULL);
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    free(buf);
    close(cfd);
    close(sfd);
    close(ls);
    double gib = (double)total / (1u << 30);
    *cpu_per_gib = cpu / gib;
    return gib / secs;
}

int main(int argc, char **argv) {
    log_set_level(LOG_LEVEL_WARN);
    size_t total_mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 2048;
    int count = (int)(total_mib * (1u << 20) / RANGE_BYTES);
    if (count < 1)
        count = 1;
    char path[] = "/tmp/sluice-bench-net-XXXXXX";
    g_fd = mkstemp(path);
    if (g_fd < 0) {
        perror("mkstemp");
        return 1;
    }
    unlink(path);
    uint8_t *block = malloc(1 << 20);
    for (size_t i = 0; i < (1u << 20); i++)
        block[i] = (uint8_t)(i * 131);
    for (size_t off = 0; off < FILE_BYTES; off += 1u << 20)
        if (write(g_fd, block, 1u << 20) != (ssize_t)(1u << 20)) {
            perror("write");
            return 1;
        }
    free(block);
    /* Warm the page cache so both paths read from memory. */
    {
        double ignore;
        run_server(false, 8, &ignore);
    }
    double base_cpu, zc_cpu, cp_cpu;
    double base = run_baseline((size_t)count * RANGE_BYTES, &base_cpu);
    double zc = run_server(true, count, &zc_cpu);
    double cp = run_server(false, count, &cp_cpu);
    printf("bench_net: %d responses of %u MiB each from a cached file, over loopback\n", count,
           RANGE_BYTES >> 20);
    printf("  %-34s %8.2f GiB/s  %6.2f CPU s/GiB\n", "baseline: memory -> socket write()", base, base_cpu);
    printf("  %-34s %8.2f GiB/s  %6.2f CPU s/GiB  ratio %.2f\n", "zero copy: sendfile()", zc, zc_cpu,
           zc / base);
    printf("  %-34s %8.2f GiB/s  %6.2f CPU s/GiB  ratio %.2f\n", "copying: pread() + write()", cp, cp_cpu,
           cp / base);
    close(g_fd);
    return 0;
}
