/*
 * test_mm2.c - MirrorMaker 2 conventions (tools/mm2.c): the byte layouts of
 * offset syncs, checkpoints and heartbeats against hand-written expected
 * bytes (so a change in the encoding cannot pass unnoticed), decoders'
 * rejection of truncated input and unknown versions, topic naming and loop
 * detection, and the offset map's promise: a translated position never lies
 * past the copy of the first record the group has not consumed.
 */
#include <stdint.h>
#include <string.h>

#include "tools/mm2.h"
#include "unit.h"

static void test_checkpoint_layout(void) {
    uint8_t k[64], v[64];
    size_t kl = mm2_checkpoint_key(k, sizeof k, "g", "A.t", 3);
    static const uint8_t want_k[] = {0, 1, 'g', 0, 3, 'A', '.', 't', 0, 0, 0, 3};
    CHECK_EQ_INT(kl, sizeof want_k);
    CHECK(memcmp(k, want_k, sizeof want_k) == 0);
    size_t vl = mm2_checkpoint_value(v, sizeof v, 0x0102030405060708LL, 42, "md");
    static const uint8_t want_v[] = {0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 42, 0, 2, 'm', 'd'};
    CHECK_EQ_INT(vl, sizeof want_v);
    CHECK(memcmp(v, want_v, sizeof want_v) == 0);
    mm2_checkpoint c;
    REQUIRE(mm2_checkpoint_decode(k, kl, v, vl, &c));
    CHECK(c.group.len == 1 && c.group.ptr[0] == 'g');
    CHECK(c.topic.len == 3 && memcmp(c.topic.ptr, "A.t", 3) == 0);
    CHECK_EQ_INT(c.partition, 3);
    CHECK_EQ_INT(c.upstream, 0x0102030405060708LL);
    CHECK_EQ_INT(c.downstream, 42);
    CHECK(c.metadata.len == 2);
    /* every truncation is refused */
    for (size_t cut = 0; cut < vl; cut++)
        CHECK(!mm2_checkpoint_decode(k, kl, v, cut, &c));
    for (size_t cut = 0; cut < kl; cut++)
        CHECK(!mm2_checkpoint_decode(k, cut, v, vl, &c));
    v[1] = 1; /* version 1 is unknown */
    CHECK(!mm2_checkpoint_decode(k, kl, v, vl, &c));
    CHECK_EQ_INT(mm2_checkpoint_key(k, 5, "g", "A.t", 3), 0); /* too small */
}

static void test_offset_sync_and_heartbeat_layout(void) {
    uint8_t k[64], v[64];
    size_t kl = mm2_offset_sync_key(k, sizeof k, "t", 1);
    size_t vl = mm2_offset_sync_value(v, sizeof v, 7, 9);
    static const uint8_t want_k[] = {0, 1, 't', 0, 0, 0, 1};
    static const uint8_t want_v[] = {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9};
    CHECK_EQ_INT(kl, sizeof want_k);
    CHECK(memcmp(k, want_k, kl) == 0);
    CHECK_EQ_INT(vl, sizeof want_v);
    CHECK(memcmp(v, want_v, vl) == 0);
    mm2_offset_sync s;
    REQUIRE(mm2_offset_sync_decode(k, kl, v, vl, &s));
    CHECK(s.partition == 1 && s.upstream == 7 && s.downstream == 9);
    CHECK(!mm2_offset_sync_decode(k, kl, v, vl - 1, &s));
    CHECK(!mm2_offset_sync_decode(NULL, 0, v, vl, &s));

    kl = mm2_heartbeat_key(k, sizeof k, "A", "B");
    vl = mm2_heartbeat_value(v, sizeof v, 1000);
    static const uint8_t want_hk[] = {0, 1, 'A', 0, 1, 'B'};
    static const uint8_t want_hv[] = {0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8};
    CHECK_EQ_INT(kl, sizeof want_hk);
    CHECK(memcmp(k, want_hk, kl) == 0);
    CHECK_EQ_INT(vl, sizeof want_hv);
    CHECK(memcmp(v, want_hv, vl) == 0);
    mm2_heartbeat h;
    REQUIRE(mm2_heartbeat_decode(k, kl, v, vl, &h));
    CHECK(h.timestamp_ms == 1000 && h.source_alias.len == 1 && h.target_alias.ptr[0] == 'B');
}

static void test_naming_and_loops(void) {
    mm2_policy def = {.identity = false, .separator = "."};
    mm2_policy id = {.identity = true, .separator = "."};
    char out[MM2_NAME_MAX + 1], alias[64];
    CHECK(mm2_remote_topic(&def, "A", "orders", out, sizeof out) && strcmp(out, "A.orders") == 0);
    CHECK(mm2_remote_topic(&id, "A", "orders", out, sizeof out) && strcmp(out, "orders") == 0);
    CHECK(mm2_remote_topic(&id, "A", "heartbeats", out, sizeof out) && strcmp(out, "A.heartbeats") == 0);
    char longname[MM2_NAME_MAX + 1];
    memset(longname, 'x', MM2_NAME_MAX);
    longname[MM2_NAME_MAX] = '\0';
    CHECK(!mm2_remote_topic(&def, "A", longname, out, sizeof out)); /* over Kafka's limit */
    CHECK(mm2_topic_source(&def, "B.orders", alias, sizeof alias) && strcmp(alias, "B") == 0);
    CHECK(!mm2_topic_source(&def, "orders", alias, sizeof alias));
    CHECK(!mm2_topic_source(&id, "B.orders", alias, sizeof alias));
    /* active-active A<->B: on A, "B.orders" came from B; "C.B.orders" too (two hops) */
    CHECK(mm2_is_cycle(&def, "B.orders", "B"));
    CHECK(mm2_is_cycle(&def, "C.B.orders", "B"));
    CHECK(!mm2_is_cycle(&def, "C.orders", "B"));
    CHECK(!mm2_is_cycle(&def, "orders", "B"));
    CHECK(mm2_is_internal("mm2-offset-syncs.B.internal"));
    CHECK(mm2_is_internal("A.checkpoints.internal"));
    CHECK(mm2_is_internal("__consumer_offsets"));
    CHECK(!mm2_is_internal("orders"));
    CHECK(mm2_is_heartbeats(&def, "heartbeats") && mm2_is_heartbeats(&def, "A.heartbeats"));
    CHECK(!mm2_is_heartbeats(&def, "myheartbeats"));
}

static uint64_t rnd(uint64_t *seed) {
    *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return *seed >> 33;
}

/* A model: N source records at offsets with gaps (compaction, transaction
 * markers), copied in order to a target log, with restarts that re-copy from
 * an earlier record (duplicates). For every upstream position U (any offset,
 * a gap included), reading the target from the translated position must
 * yield every source record at or after U that was copied. */
static void test_translation_never_skips(void) {
    enum { N = 3000, CAP = 20000 };
    static int64_t src[N];      /* record index -> source offset */
    static int target_rec[CAP]; /* target offset -> record index */
    static char seen[N];
    uint64_t seed = 12345;
    for (int round = 0; round < 20; round++) {
        int64_t off = 0;
        for (int i = 0; i < N; i++) {
            src[i] = off;
            off += 1 + (rnd(&seed) % 4 == 0); /* a gap before a quarter of the records */
        }
        mm2_runs m = {0};
        int64_t tn = 0;
        int next = 0;
        while (next < N && tn < CAP - 500) {
            int stretch = 1 + (int)(rnd(&seed) % 400);
            for (int i = 0; i < stretch && next < N; i++, next++) {
                target_rec[tn] = next;
                mm2_runs_add(&m, src[next], tn);
                tn++;
            }
            int back = (int)(rnd(&seed) % 50); /* a restart goes back up to 50 records */
            next = next > back ? next - back : 0;
        }
        CHECK(m.n <= MM2_RUNS_MAX);
        int copied = 0; /* records [0, copied) were copied at least once */
        for (int64_t t = 0; t < tn; t++)
            copied = target_rec[t] + 1 > copied ? target_rec[t] + 1 : copied;
        for (int64_t U = 0; U <= src[copied - 1] + 1; U++) {
            int64_t d = mm2_runs_translate(&m, U);
            if (d < 0)
                continue;
            memset(seen, 0, sizeof seen);
            for (int64_t t = d; t < tn; t++)
                seen[target_rec[t]] = 1;
            for (int i = 0; i < copied; i++) {
                if (src[i] >= U && !seen[i]) {
                    fprintf(stderr, "round %d: U=%lld -> %lld skips source offset %lld\n", round,
                            (long long)U, (long long)d, (long long)src[i]);
                    REQUIRE(0);
                }
            }
        }
        /* exact for the newest copy */
        CHECK_EQ_INT(mm2_runs_translate(&m, src[target_rec[tn - 1]]), tn - 1);
    }
}

int main(void) {
    UNIT_RUN(test_checkpoint_layout);
    UNIT_RUN(test_offset_sync_and_heartbeat_layout);
    UNIT_RUN(test_naming_and_loops);
    UNIT_RUN(test_translation_never_skips);
    return UNIT_END("test_mm2");
}
