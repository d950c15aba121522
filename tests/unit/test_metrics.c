/*
 * test_metrics.c - the metric registry (obs/metrics.c) and the HTTP
 * listener (obs/http.c): histogram buckets at their boundaries, counts that
 * stay exact under concurrent bumps from more threads than shards, the
 * topic table's cap and its concurrent first inserts, a disabled registry
 * counting nothing, the text buffer's hard limit, Prometheus and JSON
 * escaping, URL parsing, and the listener answering, refusing methods and
 * stopping cleanly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "obs/http.h"
#include "obs/metrics.h"
#include "unit.h"

static void test_buckets(void) {
    /* Bucket i holds durations up to 2^(i-3) ms. */
    CHECK_EQ_INT(obs_bucket_of(0), 0);
    CHECK_EQ_INT(obs_bucket_of(125000), 0);
    CHECK_EQ_INT(obs_bucket_of(125001), 1);
    CHECK_EQ_INT(obs_bucket_of(250000), 1);
    CHECK_EQ_INT(obs_bucket_of(250001), 2);
    CHECK_EQ_INT(obs_bucket_of(1000000), 3); /* 1 ms */
    CHECK_EQ_INT(obs_bucket_of(1000001), 4);
    CHECK_EQ_INT(obs_bucket_of(INT64_C(32768) * 1000000), OBS_HIST_FINITE - 1);
    CHECK_EQ_INT(obs_bucket_of(INT64_C(32768) * 1000000 + 1), OBS_HIST_FINITE);
    CHECK_EQ_INT(obs_bucket_of(INT64_MAX), OBS_HIST_FINITE);
    /* Every duration lands in the first bucket whose bound holds it. */
    for (int64_t ns = 1; ns < INT64_C(40000) * 1000000; ns = ns * 3 / 2 + 1) {
        int b = obs_bucket_of(ns);
        if (b < OBS_HIST_FINITE)
            CHECK((double)ns <= obs_bucket_le_ms(b) * 1e6);
        if (b > 0)
            CHECK((double)ns > obs_bucket_le_ms(b - 1) * 1e6);
    }
}

#define THREADS 40 /* more than OBS_SHARDS: the shared shard is used too */
#define BUMPS   20000

static obs_metrics *shared;

static void *bumper(void *arg) {
    (void)arg;
    obs_topic *t = obs_topic_get(shared, "hot", 3);
    for (int i = 0; i < BUMPS; i++) {
        obs_request_done(shared, 0, 1000, 2000000, 0, 2001000, i % 10 == 0);
        obs_produced(shared, t, 2, 100, false);
        obs_fetched(shared, t, 50, i % 4 == 0);
    }
    return NULL;
}

static void test_concurrent_counts(void) {
    shared = obs_metrics_create(true, 10);
    REQUIRE(shared != NULL);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, bumper, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    uint64_t n, closed;
    obs_api_counts(shared, 0, &n, &closed);
    CHECK_EQ_INT(n, THREADS * BUMPS);
    CHECK_EQ_INT(closed, THREADS * BUMPS / 10);
    obs_hist_snap h;
    obs_api_hist(shared, 0, OBS_STAGE_LOCAL, &h);
    CHECK_EQ_INT(h.count, THREADS * BUMPS);
    CHECK_EQ_INT(h.bucket[obs_bucket_of(2000000)], THREADS * BUMPS);
    CHECK_EQ_INT(h.sum_ns, (uint64_t)THREADS * BUMPS * 2000000);
    obs_counters c;
    obs_totals(shared, &c, NULL);
    CHECK_EQ_INT(c.messages_in, 2 * THREADS * BUMPS);
    CHECK_EQ_INT(c.bytes_in, 100 * THREADS * BUMPS);
    CHECK_EQ_INT(c.bytes_out, 50 * THREADS * BUMPS);
    CHECK_EQ_INT(c.fetch_failed, THREADS * BUMPS / 4);
    obs_topic *t = obs_topic_get(shared, "hot", 3);
    REQUIRE(t != NULL);
    obs_topic_counters(t, &c);
    CHECK_EQ_INT(c.messages_in, 2 * THREADS * BUMPS);
    CHECK_EQ_INT(c.produce_requests, THREADS * BUMPS);
    obs_metrics_destroy(shared);
}

static void *inserter(void *arg) {
    int base = *(int *)arg;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "t%d", (base + i) % 150);
        obs_topic *t = obs_topic_get(shared, name, strlen(name));
        if (t != NULL)
            obs_add(&t->stripe[base % OBS_TOPIC_STRIPES].messages_in, 1);
    }
    return NULL;
}

static bool sum_topics(void *ctx, obs_topic *t) {
    uint64_t *sum = ctx;
    obs_counters c;
    obs_topic_counters(t, &c);
    sum[0] += c.messages_in;
    sum[1]++;
    return true;
}

static void test_topic_table(void) {
    /* Room for 100 topics; 150 names race in from 8 threads. */
    shared = obs_metrics_create(true, 100);
    REQUIRE(shared != NULL);
    pthread_t th[8];
    int base[8];
    for (int i = 0; i < 8; i++) {
        base[i] = i * 37;
        REQUIRE(pthread_create(&th[i], NULL, inserter, &base[i]) == 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    uint64_t sum[2] = {0, 0};
    obs_topics_each(shared, sum_topics, sum);
    CHECK_EQ_INT(sum[1], 100); /* exactly the cap, each name once */
    CHECK_EQ_INT(atomic_load(&shared->n_topics), 100);
    /* Bumps that found an entry plus refused look-ups are all of them. */
    CHECK_EQ_INT(sum[0] + atomic_load(&shared->topics_dropped), 8 * 200);
    /* The same name always gives the same entry; find never creates. */
    obs_topic *a = obs_topic_get(shared, "t7", 2);
    if (a != NULL) {
        CHECK(obs_topic_get(shared, "t7", 2) == a);
        CHECK(obs_topic_find(shared, "t7", 2) == a);
    }
    CHECK(obs_topic_find(shared, "never", 5) == NULL);
    CHECK_EQ_INT(atomic_load(&shared->n_topics), 100);
    /* Names too long for an entry are not tracked. */
    char longname[300];
    memset(longname, 'x', sizeof longname);
    CHECK(obs_topic_get(shared, longname, sizeof longname) == NULL);
    obs_metrics_destroy(shared);

    /* Disabled: nothing is counted, no entries exist. */
    obs_metrics *off = obs_metrics_create(false, 100);
    REQUIRE(off != NULL);
    CHECK(obs_topic_get(off, "a", 1) == NULL);
    obs_produced(off, NULL, 5, 5, true);
    obs_request_done(off, 0, 1, 1, 1, 1, false);
    obs_counters c;
    obs_totals(off, &c, NULL);
    CHECK_EQ_INT(c.messages_in, 0);
    uint64_t n, closed;
    obs_api_counts(off, 0, &n, &closed);
    CHECK_EQ_INT(n, 0);
    obs_metrics_destroy(off);
    /* NULL registries are no-ops. */
    obs_produced(NULL, NULL, 1, 1, false);
    obs_request_done(NULL, 0, 1, 1, 1, 1, false);
}

static void test_buffer_and_escaping(void) {
    obs_buf b;
    obs_buf_init(&b, 64);
    obs_buf_puts(&b, "0123456789");
    CHECK(!b.full);
    for (int i = 0; i < 10; i++)
        obs_buf_printf(&b, "%s", "abcdefghij");
    CHECK(b.full);
    CHECK(b.len < 64);
    CHECK_EQ_INT(strlen(b.p), b.len);
    size_t n;
    char *p = obs_buf_take(&b, &n);
    CHECK(p != NULL && n < 64);
    free(p);
    obs_buf_free(&b);

    /* A long formatted line (beyond printf's stack buffer) is whole. */
    obs_buf_init(&b, 1 << 20);
    char big[2000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    obs_buf_printf(&b, "<%s>", big);
    CHECK_EQ_INT(b.len, sizeof big + 1);
    obs_buf_free(&b);

    obs_buf_init(&b, 1 << 20);
    obs_prom_escape(&b, "a\"b\\c\nd", 7);
    CHECK(strcmp(b.p, "a\\\"b\\\\c\\nd") == 0);
    obs_buf_free(&b);

    obs_buf_init(&b, 1 << 20);
    obs_json_str(&b, "q\"\\\x01z", 5);
    CHECK(strcmp(b.p, "\"q\\\"\\\\\\u0001z\"") == 0);
    obs_buf_free(&b);

    /* Bytes that are not UTF-8 become U+FFFD; valid sequences stay. */
    obs_buf_init(&b, 1 << 20);
    obs_prom_escape(&b, "a\xff\xc3\xa9\xed\xa0\x80z", 8);
    CHECK(strcmp(b.p, "a\xEF\xBF\xBD\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz") == 0);
    obs_buf_free(&b);
    obs_buf_init(&b, 1 << 20);
    obs_json_str(&b, "\xe2\x82\xac\xc0\xaf\xf4\x90\x80\x80", 9);
    CHECK(
        strcmp(b.p,
               "\"\xe2\x82\xac\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"") ==
        0);
    obs_buf_free(&b);

    obs_hist_snap h = {0};
    h.bucket[0] = 1;
    h.bucket[3] = 2;
    h.bucket[OBS_HIST_FINITE] = 1;
    h.count = 4;
    h.sum_ns = 1500000;
    obs_buf_init(&b, 1 << 20);
    obs_prom_hist(&b, "x", "request=\"P\"", &h);
    CHECK(strstr(b.p, "x_bucket{request=\"P\",le=\"0.125\"} 1\n") != NULL);
    CHECK(strstr(b.p, "x_bucket{request=\"P\",le=\"1\"} 3\n") != NULL);
    CHECK(strstr(b.p, "x_bucket{request=\"P\",le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(b.p, "x_sum{request=\"P\"} 1.500000\n") != NULL);
    CHECK(strstr(b.p, "x_count{request=\"P\"} 4\n") != NULL);
    obs_buf_free(&b);
}

static void test_parse_url(void) {
    char host[64], why[128];
    uint16_t port;
    CHECK(obs_http_parse_url("http://127.0.0.1:9644", host, sizeof host, &port, why, sizeof why) == 0);
    CHECK(strcmp(host, "127.0.0.1") == 0 && port == 9644);
    CHECK(obs_http_parse_url("http://:0", host, sizeof host, &port, why, sizeof why) == 0);
    CHECK(host[0] == 0 && port == 0);
    CHECK(obs_http_parse_url("http://[::1]:80/", host, sizeof host, &port, why, sizeof why) == 0);
    CHECK(strcmp(host, "::1") == 0 && port == 80);
    CHECK(obs_http_parse_url("https://a:1", host, sizeof host, &port, why, sizeof why) < 0);
    CHECK(obs_http_parse_url("http://a", host, sizeof host, &port, why, sizeof why) < 0);
    CHECK(obs_http_parse_url("http://a:70000", host, sizeof host, &port, why, sizeof why) < 0);
    CHECK(obs_http_parse_url("http://a:x", host, sizeof host, &port, why, sizeof why) < 0);
    CHECK(obs_http_parse_url("http://[::1:80", host, sizeof host, &port, why, sizeof why) < 0);
    CHECK(strlen(why) > 0);
}

static void handler(void *ctx, const char *path, const char *query, obs_http_reply *out) {
    (*(int *)ctx)++;
    if (strcmp(path, "/q") == 0) {
        size_t n = strlen(query);
        out->body = malloc(n + 1);
        memcpy(out->body, query, n + 1);
        out->len = n;
        return;
    }
    out->static_body = "hello\n";
    out->len = 6;
}

/* One request over a fresh connection; the reply's first bytes in buf. */
static int roundtrip(uint16_t port, const char *req, char *buf, size_t n) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd, buf + got, n - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    close(fd);
    return (int)got;
}

static void test_http(void) {
    int calls = 0;
    obs_http_config cfg = {.host = "127.0.0.1",
                           .port = 0,
                           .max_connections = 8,
                           .max_per_ip = 8,
                           .max_request_bytes = 8192,
                           .timeout_s = 5};
    obs_http *h = obs_http_start(&cfg, handler, &calls);
    REQUIRE(h != NULL);
    uint16_t port = obs_http_port(h);
    CHECK(port != 0);
    char buf[4096];
    CHECK(roundtrip(port, "GET /x HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
    CHECK(strncmp(buf, "HTTP/1.0 200", 12) == 0 || strncmp(buf, "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(buf, "\r\n\r\nhello\n") != NULL);
    CHECK(strstr(buf, "Cache-Control: no-store") != NULL);
    CHECK(roundtrip(port, "GET /q?name=abc HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
    CHECK(strstr(buf, "\r\n\r\nabc") != NULL);
    CHECK(roundtrip(port, "DELETE /x HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
    CHECK(strstr(buf, " 405 ") != NULL);
    CHECK_EQ_INT(calls, 2);
    CHECK_EQ_INT(obs_http_requests(h), 3);
    /* The port is taken while it runs. */
    cfg.port = port;
    obs_http *again = obs_http_start(&cfg, handler, &calls);
    CHECK(again == NULL);
    obs_http_stop(again);
    obs_http_stop(h);
    /* Stopped: the port is free again. */
    CHECK(roundtrip(port, "GET /x HTTP/1.0\r\n\r\n", buf, sizeof buf) < 0);
    /* Bad hosts are refused, not crashed on. */
    cfg.port = 0;
    cfg.host = "not-an-address";
    CHECK(obs_http_start(&cfg, handler, &calls) == NULL);
}

int main(void) {
    UNIT_RUN(test_buckets);
    UNIT_RUN(test_concurrent_counts);
    UNIT_RUN(test_topic_table);
    UNIT_RUN(test_buffer_and_escaping);
    UNIT_RUN(test_parse_url);
    UNIT_RUN(test_http);
    return UNIT_END("test_metrics");
}
