/*
 * bench_groups.c - OffsetCommit latency with 500 groups committing at once,
 * against an in-process broker on loopback, beside a baseline measured in
 * the same run: ApiVersions round trips with the same concurrency (same
 * connections, same threads), which costs the broker nothing but the
 * request path. The ratio p99(commit) / p99(baseline) is what to watch: it
 * is the coordinator's cost (shard lock, record encoding, the append to
 * `__consumer_offsets`) independent of the machine.
 *
 * Each group has its own connection; T threads each drive groups/T
 * connections: send one request on each, then read each answer (so all 500
 * are in flight together), for R rounds.
 *
 * Three alternating runs of each; the medians are printed.
 *
 *   bench_groups [groups, default 500] [rounds, default 40]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "core/log.h"
#include "proto/wire.h"

#define THREADS    10
#define MAX_GROUPS 2000

static int g_groups = 500, g_rounds = 40;
static uint16_t g_port;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int dial(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k <= 0) {
            perror("write");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

static void read_all(int fd, uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k <= 0) {
            perror("read");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Builds a request frame (size prefix, header v1, body) into buf; returns its length. */
static size_t frame(uint8_t *buf, size_t cap, int16_t key, int16_t ver, int32_t corr, int group,
                    int64_t offset) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i32(&w, 0);
    wire_write_i16(&w, key);
    wire_write_i16(&w, ver);
    wire_write_i32(&w, corr);
    wire_write_string(&w, kstr_c("bench"), false, true);
    if (key == 8) { /* OffsetCommit v2 */
        char gid[32];
        snprintf(gid, sizeof gid, "bench-group-%d", group);
        wire_write_string(&w, kstr_c(gid), false, false);
        wire_write_i32(&w, -1);                          /* generation: simple consumer */
        wire_write_string(&w, kstr_c(""), false, false); /* member id */
        wire_write_i64(&w, -1);                          /* retention */
        wire_write_i32(&w, 1);
        wire_write_string(&w, kstr_c("bench"), false, false);
        wire_write_i32(&w, 1);
        wire_write_i32(&w, group % 4); /* partition */
        wire_write_i64(&w, offset);
        wire_write_string(&w, kstr_c(""), false, true);
    }
    wire_put_be32(buf, (uint32_t)(w.len - 4));
    return w.err == WIRE_OK ? w.len : 0;
}

typedef struct worker {
    int16_t key, ver;
    int first, n; /* groups [first, first + n) */
    int *fds;
    int64_t *lat; /* n * rounds latencies, ns */
    int errors;
} worker;

static void *worker_main(void *arg) {
    worker *wk = arg;
    uint8_t buf[512], in[4096];
    int64_t *sent = calloc((size_t)wk->n, sizeof *sent);
    for (int r = 0; r < g_rounds; r++) {
        for (int i = 0; i < wk->n; i++) {
            size_t len = frame(buf, sizeof buf, wk->key, wk->ver, r, wk->first + i, r + 1);
            sent[i] = now_ns();
            write_all(wk->fds[i], buf, len);
        }
        for (int i = 0; i < wk->n; i++) {
            read_all(wk->fds[i], in, 4);
            uint32_t n = wire_be32(in);
            if (n > sizeof in) {
                fprintf(stderr, "response too large\n");
                exit(1);
            }
            read_all(wk->fds[i], in, n);
            wk->lat[(size_t)r * (size_t)wk->n + (size_t)i] = now_ns() - sent[i];
            if (wk->key == 8) {
                /* corr, topics count, name, partitions count, partition, error */
                size_t at = 4 + 4 + 2 + 5 + 4 + 4;
                if (n < at + 2 || wire_be16(in + at) != 0)
                    wk->errors++;
            }
        }
    }
    free(sent);
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs one measurement; returns p50 and p99 in microseconds. */
static void run(int16_t key, int16_t ver, int **fds, double *p50, double *p99, double *secs, int *errors) {
    worker w[THREADS];
    pthread_t th[THREADS];
    int per = g_groups / THREADS;
    int64_t t0 = now_ns();
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){key, ver, t * per, t == THREADS - 1 ? g_groups - t * per : per, fds[t], NULL, 0};
        w[t].lat = calloc((size_t)w[t].n * (size_t)g_rounds, sizeof *w[t].lat);
        pthread_create(&th[t], NULL, worker_main, &w[t]);
    }
    size_t total = (size_t)g_groups * (size_t)g_rounds, k = 0;
    int64_t *all = calloc(total, sizeof *all);
    *errors = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        memcpy(all + k, w[t].lat, (size_t)w[t].n * (size_t)g_rounds * sizeof *all);
        k += (size_t)w[t].n * (size_t)g_rounds;
        *errors += w[t].errors;
        free(w[t].lat);
    }
    *secs = (double)(now_ns() - t0) / 1e9;
    qsort(all, total, sizeof *all, cmp64);
    *p50 = (double)all[total / 2] / 1e3;
    *p99 = (double)all[total * 99 / 100] / 1e3;
    free(all);
}

static double median3(const double *v) {
    double a = v[0], b = v[1], c = v[2];
    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    return c < a ? a : c > b ? b : c;
}

int main(int argc, char **argv) {
    if (argc > 1)
        g_groups = atoi(argv[1]);
    if (argc > 2)
        g_rounds = atoi(argv[2]);
    if (g_groups < THREADS || g_groups > MAX_GROUPS || g_rounds < 1) {
        fprintf(stderr, "usage: bench_groups [groups %d..%d] [rounds >= 1]\n", THREADS, MAX_GROUPS);
        return 2;
    }
    char dir[] = "/tmp/bench_groups.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char logdirs[128];
    snprintf(logdirs, sizeof logdirs, "log.dirs=%s", dir);
    const char *ovr[] = {logdirs, "listeners=PLAINTEXT://127.0.0.1:0", "num.io.threads=2"};
    broker_config cfg;
    char err[CONFIG_ERR_MAX];
    config_init(&cfg);
    if (config_load(&cfg, NULL, ovr, 3, err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    log_set_level(LOG_LEVEL_WARN);
    broker *b = broker_create(&cfg);
    if (b == NULL || broker_start(b) != 0)
        return 1;
    g_port = broker_port(b);
    ctrl_new_topic nt = {kstr_c("bench"), 4, 1, NULL, 0, NULL, 0, false};
    ctrl_item_result res;
    bmeta_create_topics(b->meta, &nt, 1, false, &res);
    if (res.error != 0) {
        fprintf(stderr, "create topic: %s\n", res.message);
        return 1;
    }
    usleep(300000); /* let the coordinator load its (empty) shards */

    int *fds[THREADS];
    int per = g_groups / THREADS;
    for (int i = 0; i < THREADS; i++) {
        int n = i == THREADS - 1 ? g_groups - i * per : per;
        fds[i] = calloc((size_t)n, sizeof *fds[i]);
        for (int j = 0; j < n; j++)
            fds[i][j] = dial(g_port);
    }
    /* Alternate the two measurements and keep the median of each, so a
     * burst of noise on a shared machine hits both alike. */
    double b50s[3], b99s[3], bss[3], c50s[3], c99s[3], css[3];
    int berr, cerr = 0, e;
    run(18, 0, fds, &b50s[0], &b99s[0], &bss[0], &berr); /* warm up the connections */
    for (int i = 0; i < 3; i++) {
        run(18, 0, fds, &b50s[i], &b99s[i], &bss[i], &berr);
        run(8, 2, fds, &c50s[i], &c99s[i], &css[i], &e);
        cerr += e;
    }
    double b50 = median3(b50s), b99 = median3(b99s), bs = median3(bss);
    double c50 = median3(c50s), c99 = median3(c99s), cs = median3(css);
    double n = (double)g_groups * g_rounds;
    printf("bench_groups: %d groups committing concurrently, %d rounds, %d client threads\n", g_groups,
           g_rounds, THREADS);
    printf("  baseline ApiVersions  p50 %8.0f us  p99 %8.0f us  %8.0f req/s\n", b50, b99, n / bs);
    printf("  OffsetCommit          p50 %8.0f us  p99 %8.0f us  %8.0f req/s  (%d errors)\n", c50, c99, n / cs,
           cerr);
    printf("  ratio commit/baseline p50 %.2fx  p99 %.2fx\n", c50 / b50, c99 / b99);
    for (int i = 0; i < THREADS; i++) {
        int k = i == THREADS - 1 ? g_groups - i * per : per;
        for (int j = 0; j < k; j++)
            close(fds[i][j]);
        free(fds[i]);
    }
    broker_shutdown(b);
    broker_destroy(b);
    config_free(&cfg);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return cerr ? 1 : 0;
}
