/*
 * bench_metrics.c - what the metric hooks cost one produce request: the
 * accounting request.c does (obs_request_done: a count and four latency
 * histograms) plus api_produce's per-topic look-up and counters
 * (obs_topic_of, obs_produced) and the network thread's response times
 * (obs_response_sent), timed on 1 and 4 threads bumping the same
 * topic (the worst case: one cache line shared by all). Baselines measured
 * in the same run: one uncontended mutex lock/unlock pair (what a
 * lock-per-request registry would cost at the least) and one clock read
 * (the request path already does several per request; the metrics add three
 * on the network thread for the response times, not counted here).
 *
 * Under callgrind (valgrind --tool=callgrind bench_metrics --calls) it runs
 * a fixed number of requests on one thread so the instruction count per
 * request can be read off the totals.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "obs/metrics.h"

#define ITERS 2000000

static obs_metrics *m;

static inline void one_request(int i) {
    obs_topic *t = obs_topic_of(m, "orders", 6);
    obs_produced(m, t, 10, 1000, false);
    obs_request_done(m, 0, 20000 + i % 1000, 150000, 0, 171000, false);
    obs_response_sent(m, 0, 3000, 9000 + i % 500);
}

static void *worker(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++)
        one_request((int)i);
    return NULL;
}

static double run_threads(int threads, long per) {
    pthread_t th[16];
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, (void *)per);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return (double)(clock_mono_ns() - t0) / (double)per; /* ns per request per thread */
}

int main(int argc, char **argv) {
    bool calls = argc > 1 && strcmp(argv[1], "--calls") == 0;
    m = obs_metrics_create(true, 100);
    if (m == NULL)
        return 1;
    if (calls) {
        /* Fixed work for callgrind: 100,000 requests. */
        worker((void *)100000L);
        obs_metrics_destroy(m);
        return 0;
    }
    /* Baselines. */
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int64_t t0 = clock_mono_ns();
    volatile int sink = 0;
    for (int i = 0; i < ITERS; i++) {
        pthread_mutex_lock(&mu);
        sink++;
        pthread_mutex_unlock(&mu);
    }
    double lock_ns = (double)(clock_mono_ns() - t0) / ITERS;
    t0 = clock_mono_ns();
    int64_t acc = 0;
    for (int i = 0; i < ITERS; i++)
        acc += clock_mono_ns();
    double clock_ns = (double)(clock_mono_ns() - t0) / ITERS;
    (void)acc;

    double one = run_threads(1, ITERS);
    double four = run_threads(4, ITERS / 4);
    printf("metric hooks per produce request: %.1f ns on 1 thread, %.1f ns on 4 threads sharing a topic\n",
           one, four);
    printf("baselines: mutex lock+unlock %.1f ns, clock read %.1f ns\n", lock_ns, clock_ns);
    printf("ratio hooks/mutex: %.2f (1 thread), %.2f (4 threads); hooks/clock read: %.2f\n", one / lock_ns,
           four / lock_ns, one / clock_ns);
    uint64_t n, closed;
    obs_api_counts(m, 0, &n, &closed);
    if (n != (uint64_t)ITERS * 2) {
        fprintf(stderr, "bench_metrics: counted %llu requests, expected %d\n", (unsigned long long)n,
                ITERS * 2);
        return 1;
    }
    obs_metrics_destroy(m);
    return 0;
}
