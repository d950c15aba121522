/*
 * test_fetch.c - the fetch module on its own: long-poll waiters (woken by
 * fetch_notify, expired by their deadline, answered at shutdown, bounded) and
 * the fetch session cache (upsert, forget keeping order, LRU eviction,
 * limits). Partitions are bare structs; no logs, no network.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/driver.h"
#include "broker/fetch.h"
#include "unit.h"

/* The fetch module's task runs on a driver, as in the broker. */
static void start(broker *b) {
    b->driver = driver_new(NULL);
    REQUIRE(b->driver != NULL);
    REQUIRE(fetch_mgr_start(b) == 0);
    REQUIRE(driver_start(b->driver) == 0);
}

static void stop(broker *b) {
    driver_stop(b->driver);
    fetch_mgr_destroy(b);
    driver_free(b->driver);
    b->driver = NULL;
}

typedef struct probe_state {
    atomic_int ready;    /* what the probe answers */
    atomic_int probes;   /* how often it was asked */
    atomic_int finished; /* 1 once finish ran */
    atomic_int expired;
    int64_t finished_ms;
} probe_state;

static bool probe(breq *r, void *arg) {
    (void)r;
    probe_state *s = arg;
    atomic_fetch_add(&s->probes, 1);
    return atomic_load(&s->ready) != 0;
}

static void finish(breq *r, void *arg, bool expired) {
    (void)r;
    probe_state *s = arg;
    s->finished_ms = fetch_now_ms();
    atomic_store(&s->expired, expired);
    atomic_store(&s->finished, 1);
}

static bool wait_for(atomic_int *flag, int64_t ms) {
    for (int64_t t = 0; t < ms; t++) {
        if (atomic_load(flag))
            return true;
        usleep(1000);
    }
    return atomic_load(flag) != 0;
}

static void test_notify_wakes_waiter(void) {
    broker b = {0};
    start(&b);
    rpart p1 = {0}, p2 = {0};
    rpart *parts[] = {&p1, &p2};
    probe_state s = {0};
    REQUIRE(fetch_wait(&b, NULL, parts, 2, fetch_now_ms() + 5000, probe, finish, &s));
    /* probed once right after linking, not ready */
    CHECK(wait_for(&s.probes, 1000));
    CHECK(atomic_load(&p1.waiters) != 0 && atomic_load(&p2.waiters) != 0);
    usleep(20000);
    CHECK_EQ_INT(atomic_load(&s.finished), 0);
    int64_t t0 = fetch_now_ms();
    atomic_store(&s.ready, 1);
    fetch_notify(&b, &p2);
    CHECK(wait_for(&s.finished, 1000));
    CHECK(s.finished_ms - t0 < 500);
    CHECK_EQ_INT(atomic_load(&s.expired), 0);
    /* unlinked from both partitions */
    CHECK(atomic_load(&p1.waiters) == 0 && atomic_load(&p2.waiters) == 0);
    /* a notify on a partition nobody waits on is harmless */
    fetch_notify(&b, &p1);
    stop(&b);
}

static void test_deadline_and_shutdown(void) {
    broker b = {0};
    start(&b);
    rpart p = {0};
    rpart *parts[] = {&p};
    probe_state quick = {0}, slow = {0};
    int64_t t0 = fetch_now_ms();
    REQUIRE(fetch_wait(&b, NULL, parts, 1, t0 + 50, probe, finish, &quick));
    REQUIRE(fetch_wait(&b, NULL, parts, 1, t0 + 60000, probe, finish, &slow));
    CHECK(wait_for(&quick.finished, 2000));
    CHECK(quick.finished_ms - t0 >= 50);
    CHECK_EQ_INT(atomic_load(&quick.expired), 1);
    CHECK_EQ_INT(atomic_load(&slow.finished), 0);
    /* shutdown answers the one left at once */
    fetch_mgr_shutdown(&b);
    CHECK_EQ_INT(atomic_load(&slow.finished), 1);
    CHECK_EQ_INT(atomic_load(&slow.expired), 1);
    CHECK(fetch_now_ms() - t0 < 5000);
    CHECK(atomic_load(&p.waiters) == 0);
    /* after shutdown nobody may wait */
    probe_state late = {0};
    CHECK(!fetch_wait(&b, NULL, parts, 1, t0 + 60000, probe, finish, &late));
    stop(&b);
    CHECK(b.fetch == NULL);
}

/* A client that disconnects takes its waiting fetch with it at once, long
 * before the deadline; the others keep waiting. */
static void test_abandon_finishes_at_once(void) {
    broker b = {0};
    start(&b);
    rpart p = {0};
    rpart *parts[] = {&p};
    probe_state gone = {0};
    int64_t t0 = fetch_now_ms();
    REQUIRE(fetch_wait(&b, NULL, parts, 1, t0 + 60000, probe, finish, &gone)); /* conn id 0 */
    CHECK(wait_for(&gone.probes, 1000));
    CHECK_EQ_INT(atomic_load(&p.waiters), 1);
    fetch_abandon(&b, 12345); /* another connection: nothing happens */
    usleep(20000);
    CHECK_EQ_INT(atomic_load(&gone.finished), 0);
    fetch_abandon(&b, 0);
    CHECK(wait_for(&gone.finished, 1000));
    CHECK_EQ_INT(atomic_load(&gone.expired), 1);
    CHECK(fetch_now_ms() - t0 < 5000);
    CHECK_EQ_INT(atomic_load(&p.waiters), 0);
    stop(&b);
}

static void test_waiter_limit(void) {
    broker b = {0};
    start(&b);
    rpart p = {0};
    rpart *parts[] = {&p};
    probe_state *st = calloc(FETCH_WAITERS_DEFAULT + 1, sizeof *st);
    REQUIRE(st != NULL);
    int accepted = 0;
    for (int i = 0; i < FETCH_WAITERS_DEFAULT + 1; i++)
        accepted += fetch_wait(&b, NULL, parts, 1, fetch_now_ms() + 60000, probe, finish, &st[i]);
    CHECK_EQ_INT(accepted, FETCH_WAITERS_DEFAULT);
    fetch_mgr_shutdown(&b);
    int done = 0;
    for (int i = 0; i < FETCH_WAITERS_DEFAULT + 1; i++)
        done += atomic_load(&st[i].finished);
    CHECK_EQ_INT(done, FETCH_WAITERS_DEFAULT);
    stop(&b);
    free(st);
}

static fetch_session_part key(const char *topic, int32_t partition) {
    fetch_session_part k;
    memset(&k, 0, sizeof k);
    snprintf(k.topic, sizeof k.topic, "%s", topic);
    k.topic_id.b[0] = (uint8_t)topic[0];
    k.partition = partition;
    return k;
}

static void test_session_parts(void) {
    broker b = {0};
    start(&b);
    fetch_sessions_lock(&b);
    fetch_session *s = fetch_session_new(&b, 3);
    REQUIRE(s != NULL);
    CHECK(s->id > 0);
    CHECK_EQ_INT(s->epoch, 1);
    fetch_session_part k;
    for (int i = 0; i < 3; i++) {
        k = key("a", i);
        fetch_session_part *e = fetch_session_upsert(&b, s, &k, false);
        REQUIRE(e != NULL);
        CHECK_EQ_INT(e->sent_hw, -2);
    }
    k = key("a", 1);
    CHECK(fetch_session_upsert(&b, s, &k, false) == &s->parts[1]); /* found, not added */
    CHECK_EQ_INT(s->n, 3);
    kuuid id = {{'a'}};
    fetch_session_forget(&b, s, "", id, 0, true); /* by id */
    REQUIRE(s->n == 2);
    CHECK_EQ_INT(s->parts[0].partition, 1); /* order kept */
    CHECK_EQ_INT(s->parts[1].partition, 2);
    fetch_session_forget(&b, s, "a", id, 7, false); /* absent: no change */
    CHECK_EQ_INT(s->n, 2);
    CHECK(fetch_session_find(&b, s->id) == s);
    int32_t sid = s->id;
    fetch_session_remove(&b, sid);
    CHECK(fetch_session_find(&b, sid) == NULL);
    /* too many partitions for one session */
    CHECK(fetch_session_new(&b, FETCH_SESSION_PARTITIONS_MAX + 1) == NULL);
    fetch_sessions_unlock(&b);
    CHECK_EQ_INT(fetch_next_epoch(1), 2);
    CHECK_EQ_INT(fetch_next_epoch(INT32_MAX), 1);
    stop(&b);
}

static void test_session_lru_eviction(void) {
    broker b = {0};
    start(&b);
    fetch_sessions_lock(&b);
    int32_t ids[FETCH_SESSIONS_MAX];
    for (int i = 0; i < FETCH_SESSIONS_MAX; i++) {
        fetch_session *s = fetch_session_new(&b, 0);
        REQUIRE(s != NULL);
        s->last_used_ms = 1000 + i; /* session 0 is the oldest */
        ids[i] = s->id;
    }
    /* session 0 used recently: session 1 is now the least recently used */
    fetch_session_find(&b, ids[0])->last_used_ms = 1000000;
    fetch_session *s = fetch_session_new(&b, 0);
    REQUIRE(s != NULL);
    CHECK(fetch_session_find(&b, ids[0]) != NULL);
    CHECK(fetch_session_find(&b, ids[1]) == NULL);
    CHECK(fetch_session_find(&b, ids[2]) != NULL);
    /* a big session evicts as many as it needs for its partitions */
    fetch_session *big = fetch_session_new(&b, FETCH_SESSION_PARTITIONS_MAX);
    REQUIRE(big != NULL);
    for (int i = 0; i < FETCH_SESSION_PARTITIONS_MAX; i++) {
        fetch_session_part k = key("t", i);
        REQUIRE(fetch_session_upsert(&b, big, &k, false) != NULL);
    }
    fetch_session_part k = key("t", FETCH_SESSION_PARTITIONS_MAX);
    CHECK(fetch_session_upsert(&b, big, &k, false) == NULL); /* per-session limit */
    fetch_sessions_unlock(&b);
    stop(&b);
}

int main(void) {
    UNIT_RUN(test_notify_wakes_waiter);
    UNIT_RUN(test_deadline_and_shutdown);
    UNIT_RUN(test_abandon_finishes_at_once);
    UNIT_RUN(test_waiter_limit);
    UNIT_RUN(test_session_parts);
    UNIT_RUN(test_session_lru_eviction);
    return UNIT_END("test_fetch");
}
