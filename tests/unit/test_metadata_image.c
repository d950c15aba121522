/*
 * test_metadata_image.c - the metadata image and the record framing:
 * lookups, epochs, config resources, refusals that leave a delta unchanged,
 * structural sharing between images, and a seeded model test in which
 * random record sequences are applied in random batches, checked against a
 * model, then written as a snapshot and reloaded into an equal image.
 * SLUICE_SEED=<n> replays the model test with one seed.
 */
#include "unit.h"

#include <stdint.h>
#include <string.h>

#include "metadata/image.h"
#include "metadata/records.h"

/* ---- helpers ---------------------------------------------------------------- */

static kuuid uid(int n) {
    kuuid u = {{0}};
    u.b[0] = 0x5c;
    u.b[14] = (uint8_t)(n >> 8);
    u.b[15] = (uint8_t)n;
    return u;
}

static int apply_topic(md_delta *d, const char *name, kuuid id) {
    kafka_topic_record r;
    kafka_topic_record_init(&r);
    r.name = kstr_c(name);
    r.topic_id = id;
    mdrec m = {KAFKA_MREC_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_TOPIC), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

static int apply_partition(md_delta *d, kuuid id, int32_t p, const int32_t *replicas, int n, int32_t leader) {
    kafka_partition_record r;
    kafka_partition_record_init(&r);
    r.topic_id = id;
    r.partition_id = p;
    r.replicas = (int32_t *)replicas;
    r.replicas_count = n;
    r.isr = (int32_t *)replicas;
    r.isr_count = n;
    r.removing_replicas_count = 0;
    r.adding_replicas_count = 0;
    r.leader = leader;
    r.leader_epoch = 0;
    r.partition_epoch = 0;
    mdrec m = {KAFKA_MREC_PARTITION, 2, kafka_metadata_record_lookup(KAFKA_MREC_PARTITION), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

static int apply_change(md_delta *d, kuuid id, int32_t p, int32_t leader, const int32_t *isr, int n_isr) {
    kafka_partition_change_record r;
    kafka_partition_change_record_init(&r);
    r.topic_id = id;
    r.partition_id = p;
    r.leader = leader;
    r.isr = (int32_t *)isr;
    r.isr_count = isr ? n_isr : -1;
    mdrec m = {KAFKA_MREC_PARTITION_CHANGE, 0, kafka_metadata_record_lookup(KAFKA_MREC_PARTITION_CHANGE), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

static int apply_config(md_delta *d, int8_t type, const char *res, const char *key, const char *value) {
    kafka_config_record r;
    kafka_config_record_init(&r);
    r.resource_type = type;
    r.resource_name = kstr_c(res);
    r.name = kstr_c(key);
    r.value = value ? kstr_c(value) : KSTR_NULL;
    mdrec m = {KAFKA_MREC_CONFIG, 0, kafka_metadata_record_lookup(KAFKA_MREC_CONFIG), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

static int apply_remove(md_delta *d, kuuid id) {
    kafka_remove_topic_record r;
    kafka_remove_topic_record_init(&r);
    r.topic_id = id;
    mdrec m = {KAFKA_MREC_REMOVE_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_REMOVE_TOPIC), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

/* ---- basic behaviour ---------------------------------------------------------- */

static void test_topics_partitions_configs(void) {
    md_image *empty = md_image_empty();
    REQUIRE(empty);
    CHECK_EQ_INT(md_image_offset(empty), -1);
    md_delta *d = md_delta_begin(empty);
    REQUIRE(d);
    CHECK_EQ_INT(apply_topic(d, "orders", uid(1)), MD_OK);
    const int32_t reps[] = {1};
    for (int p = 0; p < 3; p++)
        CHECK_EQ_INT(apply_partition(d, uid(1), p, reps, 1, 1), MD_OK);
    CHECK_EQ_INT(apply_config(d, MD_RESOURCE_TOPIC, "orders", "retention.ms", "1000"), MD_OK);
    CHECK_EQ_INT(apply_config(d, MD_RESOURCE_TOPIC, "orders", "cleanup.policy", "compact"), MD_OK);
    CHECK_EQ_INT(apply_config(d, MD_RESOURCE_BROKER, "", "log.retention.ms", "5000"), MD_OK);
    /* Refusals leave the delta as it was. */
    CHECK_EQ_INT(apply_topic(d, "orders", uid(2)), MD_EEXISTS);
    CHECK_EQ_INT(apply_topic(d, "other", uid(1)), MD_EEXISTS);
    CHECK_EQ_INT(apply_topic(d, "", uid(3)), MD_EINVAL);
    CHECK_EQ_INT(apply_partition(d, uid(9), 0, reps, 1, 1), MD_ENOENT);
    CHECK_EQ_INT(apply_partition(d, uid(1), 1, reps, 1, 1), MD_EEXISTS);
    CHECK_EQ_INT(apply_change(d, uid(1), 7, 1, NULL, 0), MD_ENOENT);
    CHECK_EQ_INT(apply_remove(d, uid(9)), MD_ENOENT);
    /* A NUL byte inside a name or value would be cut off as C text (found by
     * fuzz_metadata: the snapshot then disagreed with the log). */
    {
        kafka_config_record r;
        kafka_config_record_init(&r);
        r.resource_type = MD_RESOURCE_BROKER;
        r.resource_name = kstr_c("");
        r.name = (kstr){"\0x.retention.ms", 15};
        r.value = kstr_c("5");
        mdrec m = {KAFKA_MREC_CONFIG, 0, kafka_metadata_record_lookup(KAFKA_MREC_CONFIG), &r};
        char err[256];
        CHECK_EQ_INT(md_apply(d, &m, err, sizeof err), MD_EINVAL);
        r.name = kstr_c("retention.ms");
        r.value = (kstr){"10\0", 3};
        CHECK_EQ_INT(md_apply(d, &m, err, sizeof err), MD_EINVAL);
        kafka_topic_record tr;
        kafka_topic_record_init(&tr);
        tr.name = (kstr){"a\0b", 3};
        tr.topic_id = uid(4);
        mdrec tm = {KAFKA_MREC_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_TOPIC), &tr};
        CHECK_EQ_INT(md_apply(d, &tm, err, sizeof err), MD_EINVAL);
    }
    CHECK_EQ_INT(md_delta_count(d), 7);
    CHECK(md_delta_topic(d, kstr_c("orders")) != NULL);
    md_image *a = md_delta_publish(d, 10, 1);
    REQUIRE(a);
    CHECK_EQ_INT(md_image_offset(a), 10);
    CHECK_EQ_INT(md_image_epoch(a), 1);
    CHECK_EQ_INT(md_image_topic_count(a), 1);
    CHECK_EQ_INT(md_image_partition_count(a), 3);
    const md_topic *t = md_image_topic(a, kstr_c("orders"));
    REQUIRE(t);
    CHECK(md_image_topic_by_id(a, uid(1)) == t);
    CHECK(md_image_topic(a, kstr_c("order")) == NULL);
    const md_partition *p1 = md_topic_partition(t, 1);
    REQUIRE(p1);
    CHECK_EQ_INT(p1->leader, 1);
    CHECK_EQ_INT(p1->replicas.n, 1);
    CHECK(md_topic_partition(t, 3) == NULL);
    CHECK(strcmp(md_image_config(a, MD_RESOURCE_TOPIC, "orders", "retention.ms"), "1000") == 0);
    CHECK(md_image_config(a, MD_RESOURCE_TOPIC, "orders", "segment.ms") == NULL);
    CHECK(strcmp(md_image_config(a, MD_RESOURCE_BROKER, "", "log.retention.ms"), "5000") == 0);

    /* A change: new leader and ISR bump the epochs; the old image is untouched. */
    d = md_delta_begin(a);
    const int32_t isr2[] = {1, 2};
    CHECK_EQ_INT(apply_change(d, uid(1), 1, 2, isr2, 2), MD_OK);
    CHECK_EQ_INT(apply_change(d, uid(1), 2, -2, isr2, 2), MD_OK); /* ISR only */
    CHECK_EQ_INT(apply_config(d, MD_RESOURCE_TOPIC, "orders", "retention.ms", NULL), MD_OK);
    md_image *b = md_delta_publish(d, 11, 1);
    REQUIRE(b);
    const md_partition *q1 = md_topic_partition(md_image_topic(b, kstr_c("orders")), 1);
    const md_partition *q2 = md_topic_partition(md_image_topic(b, kstr_c("orders")), 2);
    CHECK_EQ_INT(q1->leader, 2);
    CHECK_EQ_INT(q1->leader_epoch, 1);
    CHECK_EQ_INT(q1->partition_epoch, 1);
    CHECK_EQ_INT(q1->isr.n, 2);
    CHECK_EQ_INT(q2->leader, 1);
    CHECK_EQ_INT(q2->leader_epoch, 0);
    CHECK_EQ_INT(q2->partition_epoch, 1);
    CHECK_EQ_INT(p1->leader, 1); /* a's view */
    CHECK_EQ_INT(p1->leader_epoch, 0);
    CHECK(md_image_config(b, MD_RESOURCE_TOPIC, "orders", "retention.ms") == NULL);
    CHECK(strcmp(md_image_config(a, MD_RESOURCE_TOPIC, "orders", "retention.ms"), "1000") == 0);

    /* Removing the topic removes its configs; the name can come back. */
    d = md_delta_begin(b);
    CHECK_EQ_INT(apply_remove(d, uid(1)), MD_OK);
    CHECK(md_delta_topic(d, kstr_c("orders")) == NULL);
    CHECK_EQ_INT(apply_topic(d, "orders", uid(5)), MD_OK);
    md_image *c = md_delta_publish(d, 12, 2);
    REQUIRE(c);
    CHECK_EQ_INT(md_image_topic_count(c), 1);
    CHECK(md_image_topic_by_id(c, uid(5)) != NULL);
    CHECK(md_image_topic_by_id(c, uid(1)) == NULL);
    CHECK(md_image_resource(c, MD_RESOURCE_TOPIC, "orders") == NULL);
    CHECK(md_image_resource(c, MD_RESOURCE_BROKER, "") != NULL);
    md_image_unref(c);
    md_image_unref(b);
    md_image_unref(a);
    md_image_unref(empty);
}

static void test_unchanged_topics_are_shared(void) {
    md_image *e = md_image_empty();
    md_delta *d = md_delta_begin(e);
    const int32_t reps[] = {0};
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "t%d", i);
        CHECK_EQ_INT(apply_topic(d, name, uid(i + 1)), MD_OK);
        CHECK_EQ_INT(apply_partition(d, uid(i + 1), 0, reps, 1, 0), MD_OK);
    }
    md_image *a = md_delta_publish(d, 1, 0);
    d = md_delta_begin(a);
    CHECK_EQ_INT(apply_change(d, uid(8), 0, 0, NULL, 0), MD_OK);
    md_image *b = md_delta_publish(d, 2, 0);
    CHECK(md_image_topic(a, kstr_c("t3")) == md_image_topic(b, kstr_c("t3")));
    CHECK(md_image_topic(a, kstr_c("t7")) != md_image_topic(b, kstr_c("t7"))); /* uid(8) is t7 */
    /* An aborted delta changes nothing. */
    d = md_delta_begin(b);
    CHECK_EQ_INT(apply_remove(d, uid(1)), MD_OK);
    md_delta_abort(d);
    CHECK(md_image_topic(b, kstr_c("t0")) != NULL);
    md_image_unref(a); /* b still works without a */
    CHECK_EQ_INT(md_topic_partition(md_image_topic(b, kstr_c("t7")), 0)->leader_epoch, 1);
    md_image_unref(b);
    md_image_unref(e);
}

static void test_framing(void) {
    kafka_topic_record r;
    kafka_topic_record_init(&r);
    r.name = kstr_c("t1");
    r.topic_id = uid(1);
    mdrec m = {KAFKA_MREC_TOPIC, 0, kafka_metadata_record_lookup(KAFKA_MREC_TOPIC), &r};
    arena a;
    arena_init(&a, 1 << 16);
    uint8_t *buf;
    size_t len;
    CHECK_EQ_INT(mdrec_encode_alloc(&m, &a, &buf, &len), MDREC_OK);
    CHECK_EQ_INT(len, 3 + 1 + 2 + 16 + 1);
    CHECK(buf[0] == 1 && buf[1] == KAFKA_MREC_TOPIC && buf[2] == 0);
    mdrec out;
    CHECK_EQ_INT(mdrec_decode(buf, len, &a, &out), MDREC_OK);
    CHECK_EQ_INT(out.type, KAFKA_MREC_TOPIC);
    CHECK(kstr_eq(((kafka_topic_record *)out.body)->name, kstr_c("t1")));
    uint8_t bad[64];
    memcpy(bad, buf, len);
    bad[0] = 2;
    CHECK_EQ_INT(mdrec_decode(bad, len, &a, &out), MDREC_EFRAME);
    bad[0] = 1;
    bad[1] = 6; /* no record has type 6 */
    CHECK_EQ_INT(mdrec_decode(bad, len, &a, &out), MDREC_ETYPE);
    bad[1] = KAFKA_MREC_TOPIC;
    bad[2] = 1; /* TopicRecord has only version 0 */
    CHECK_EQ_INT(mdrec_decode(bad, len, &a, &out), MDREC_EVERSION);
    bad[2] = 0;
    bad[len] = 0;
    CHECK_EQ_INT(mdrec_decode(bad, len + 1, &a, &out), MDREC_EBODY); /* trailing byte */
    for (size_t k = 0; k < len; k++)
        CHECK(mdrec_decode(buf, k, &a, &out) != MDREC_OK);
    CHECK(strcmp(mdrec_type_name(KAFKA_MREC_PARTITION_CHANGE), "PartitionChangeRecord") == 0);
    arena_reset(&a);
}

/* ---- seeded model test ---------------------------------------------------------- */

#define M_TOPICS 40
#define M_PARTS  6

typedef struct mtopic {
    bool live;
    char name[16];
    kuuid id;
    int nparts;
    int32_t leader[M_PARTS], leader_epoch[M_PARTS], pepoch[M_PARTS];
    char retention[16]; /* "" none */
} mtopic;

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static bool model_matches(const md_image *img, const mtopic *m, int nid, char *why, size_t whyn) {
    int live = 0;
    for (int i = 0; i < nid; i++) {
        const md_topic *t = md_image_topic_by_id(img, m[i].id);
        if (!m[i].live) {
            if (t) {
                snprintf(why, whyn, "removed topic %s is still there", m[i].name);
                return false;
            }
            continue;
        }
        live++;
        if (t == NULL || md_image_topic(img, kstr_c(m[i].name)) != t || t->n_partitions != m[i].nparts) {
            snprintf(why, whyn, "topic %s missing or wrong", m[i].name);
            return false;
        }
        for (int p = 0; p < m[i].nparts; p++) {
            const md_partition *pp = md_topic_partition(t, p);
            if (!pp || pp->leader != m[i].leader[p] || pp->leader_epoch != m[i].leader_epoch[p] ||
                pp->partition_epoch != m[i].pepoch[p]) {
                snprintf(why, whyn, "topic %s partition %d differs from the model", m[i].name, p);
                return false;
            }
        }
        const char *v = md_image_config(img, MD_RESOURCE_TOPIC, m[i].name, "retention.ms");
        if ((v == NULL) != (m[i].retention[0] == 0) || (v && strcmp(v, m[i].retention))) {
            snprintf(why, whyn, "topic %s retention.ms differs", m[i].name);
            return false;
        }
    }
    if (md_image_topic_count(img) != live) {
        snprintf(why, whyn, "%d topics, the model has %d", md_image_topic_count(img), live);
        return false;
    }
    return true;
}

typedef struct reload_ctx {
    md_delta *d;
    arena *a;
    int n, failed;
    char err[256];
} reload_ctx;

/* Encodes each snapshot record, decodes it and applies it: the full path a
 * snapshot file takes. */
static int reload_one(void *ctx, const mdrec *rec) {
    reload_ctx *rc = ctx;
    uint8_t *buf;
    size_t len;
    mdrec back;
    if (mdrec_encode_alloc(rec, rc->a, &buf, &len) != MDREC_OK ||
        mdrec_decode(buf, len, rc->a, &back) != MDREC_OK ||
        md_apply(rc->d, &back, rc->err, sizeof rc->err) != MD_OK) {
        rc->failed++;
        return 1;
    }
    rc->n++;
    return 0;
}

static bool model_run(uint64_t seed) {
    uint64_t s = seed;
    mtopic m[M_TOPICS];
    memset(m, 0, sizeof m);
    int nid = 0;
    md_image *img = md_image_empty();
    int64_t offset = 0;
    char why[512];
    bool ok = true;
    for (int batch = 0; batch < 60 && ok; batch++) {
        md_delta *d = md_delta_begin(img);
        mtopic saved[M_TOPICS];
        memcpy(saved, m, sizeof m);
        int saved_nid = nid;
        int nrec = 1 + (int)(rng_next(&s) % 12);
        for (int k = 0; k < nrec; k++) {
            uint64_t op = rng_next(&s) % 100;
            int i = nid ? (int)(rng_next(&s) % (uint64_t)nid) : 0;
            if (op < 20 && nid < M_TOPICS) {
                mtopic *t = &m[nid];
                snprintf(t->name, sizeof t->name, "t%d", (int)(rng_next(&s) % 30));
                t->id = uid(1000 + nid);
                bool taken = false;
                for (int j = 0; j < nid; j++)
                    taken |= m[j].live && strcmp(m[j].name, t->name) == 0;
                int rc = apply_topic(d, t->name, t->id);
                if (rc != (taken ? MD_EEXISTS : MD_OK)) {
                    snprintf(why, sizeof why, "create %s gave %d", t->name, rc);
                    ok = false;
                }
                if (!taken) {
                    t->live = true;
                    nid++;
                }
            } else if (op < 45 && nid) {
                mtopic *t = &m[i];
                int32_t reps[3] = {0, 1, 2};
                int rc = apply_partition(d, t->id, t->nparts, reps, 1 + (int)(rng_next(&s) % 3), 0);
                bool can = t->live && t->nparts < M_PARTS;
                if (t->nparts >= M_PARTS && t->live) {
                    /* beyond the model: allowed by the image; undo by not counting */
                    if (rc != MD_OK) {
                        snprintf(why, sizeof why, "partition past model gave %d", rc);
                        ok = false;
                    }
                    md_delta_abort(d);
                    d = md_delta_begin(img);
                    memcpy(m, saved, sizeof m);
                    nid = saved_nid;
                    continue;
                }
                if (rc != (can ? MD_OK : MD_ENOENT)) {
                    snprintf(why, sizeof why, "partition of %s gave %d", t->name, rc);
                    ok = false;
                }
                if (can) {
                    t->leader[t->nparts] = 0;
                    t->leader_epoch[t->nparts] = 0;
                    t->pepoch[t->nparts] = 0;
                    t->nparts++;
                }
            } else if (op < 65 && nid) {
                mtopic *t = &m[i];
                int p = (int)(rng_next(&s) % M_PARTS);
                int32_t leader = (int32_t)(rng_next(&s) % 4) - 2; /* -2 keeps it */
                int rc = apply_change(d, t->id, p, leader, NULL, 0);
                bool can = t->live && p < t->nparts;
                if (rc != (can ? MD_OK : MD_ENOENT)) {
                    snprintf(why, sizeof why, "change of %s-%d gave %d", t->name, p, rc);
                    ok = false;
                }
                if (can) {
                    if (leader != -2) {
                        t->leader[p] = leader;
                        t->leader_epoch[p]++;
                    }
                    t->pepoch[p]++;
                }
            } else if (op < 85 && nid) {
                mtopic *t = &m[i];
                bool del = rng_next(&s) % 3 == 0;
                char v[16];
                snprintf(v, sizeof v, "%d", (int)(rng_next(&s) % 100000));
                /* Configs of names that are not live topics are allowed too
                 * (Kafka keeps them), so write only to live ones here. */
                if (!t->live)
                    continue;
                CHECK_EQ_INT(apply_config(d, MD_RESOURCE_TOPIC, t->name, "retention.ms", del ? NULL : v),
                             MD_OK);
                snprintf(t->retention, sizeof t->retention, "%s", del ? "" : v);
            } else if (nid) {
                mtopic *t = &m[i];
                int rc = apply_remove(d, t->id);
                if (rc != (t->live ? MD_OK : MD_ENOENT)) {
                    snprintf(why, sizeof why, "remove %s gave %d", t->name, rc);
                    ok = false;
                }
                if (t->live) {
                    t->live = false;
                    t->retention[0] = '\0';
                }
            }
        }
        if (rng_next(&s) % 5 == 0) {
            md_delta_abort(d); /* a failed append: the model goes back too */
            memcpy(m, saved, sizeof m);
            nid = saved_nid;
            continue;
        }
        md_image *next = md_delta_publish(d, ++offset, 0);
        REQUIRE(next);
        /* The previous image still matches the previous model. */
        if (ok && !model_matches(img, saved, saved_nid, why, sizeof why))
            ok = false;
        md_image_unref(img);
        img = next;
        if (ok && !model_matches(img, m, nid, why, sizeof why))
            ok = false;
    }
    if (ok) {
        /* Snapshot round trip. */
        md_image *e = md_image_empty();
        arena a;
        arena_init(&a, 1 << 24);
        reload_ctx rc = {md_delta_begin(e), &a, 0, 0, ""};
        md_image_records(img, reload_one, &rc);
        md_image *back = md_delta_publish(rc.d, offset, 0);
        if (rc.failed) {
            snprintf(why, sizeof why, "snapshot record %d did not reload: %s", rc.n, rc.err);
            ok = false;
        } else if (!md_image_equal(img, back, why, sizeof why)) {
            ok = false;
        }
        md_image_unref(back);
        md_image_unref(e);
        arena_reset(&a);
    }
    if (!ok)
        fprintf(stderr, "model seed %llu: %s\n", (unsigned long long)seed, why);
    md_image_unref(img);
    return ok;
}

static int apply_scram(md_delta *d, const char *name, int8_t mech, uint8_t fill, int32_t iterations) {
    uint8_t salt[16], key[64];
    memset(salt, fill, sizeof salt);
    memset(key, fill + 1, sizeof key);
    kafka_user_scram_credential_record r;
    kafka_user_scram_credential_record_init(&r);
    r.name = kstr_c(name);
    r.mechanism = mech;
    r.salt = (kbytes){salt, 16};
    r.stored_key = (kbytes){key, mech == 1 ? 32 : 64};
    r.server_key = (kbytes){key, mech == 1 ? 32 : 64};
    r.iterations = iterations;
    mdrec m = {KAFKA_MREC_USER_SCRAM_CREDENTIAL, 0,
               kafka_metadata_record_lookup(KAFKA_MREC_USER_SCRAM_CREDENTIAL), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

static int apply_remove_scram(md_delta *d, const char *name, int8_t mech) {
    kafka_remove_user_scram_credential_record r;
    kafka_remove_user_scram_credential_record_init(&r);
    r.name = kstr_c(name);
    r.mechanism = mech;
    mdrec m = {KAFKA_MREC_REMOVE_USER_SCRAM_CREDENTIAL, 0,
               kafka_metadata_record_lookup(KAFKA_MREC_REMOVE_USER_SCRAM_CREDENTIAL), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

/* SCRAM credentials: upserts sorted by (name, mechanism), replacement,
 * removal, refusal of bad records, images unchanged by later deltas, and a
 * snapshot round trip. */
static void test_scram_credentials(void) {
    md_image *e = md_image_empty();
    md_delta *d = md_delta_begin(e);
    CHECK(apply_scram(d, "zoe", 2, 1, 4096) == MD_OK);
    CHECK(apply_scram(d, "amy", 1, 2, 4096) == MD_OK);
    CHECK(apply_scram(d, "amy", 2, 3, 8192) == MD_OK);
    CHECK(apply_scram(d, "amy", 1, 4, 5000) == MD_OK); /* replaces */
    CHECK(apply_scram(d, "bad", 3, 1, 4096) == MD_EINVAL);
    CHECK(apply_scram(d, "", 1, 1, 4096) == MD_EINVAL);
    CHECK(apply_remove_scram(d, "nobody", 1) == MD_ENOENT);
    md_image *one = md_delta_publish(d, 1, 0);
    REQUIRE(one != NULL);
    CHECK(md_image_scram_count(one) == 3);
    CHECK(strcmp(md_image_scram_at(one, 0)->name, "amy") == 0 && md_image_scram_at(one, 0)->mechanism == 1);
    CHECK(strcmp(md_image_scram_at(one, 2)->name, "zoe") == 0);
    const md_scram *c = md_image_scram(one, "amy", 1);
    CHECK(c != NULL && c->iterations == 5000 && c->salt[0] == 4 && c->key_n == 32);
    CHECK(md_image_scram(one, "amy", 3) == NULL && md_image_scram(e, "amy", 1) == NULL);

    d = md_delta_begin(one);
    CHECK(apply_remove_scram(d, "amy", 2) == MD_OK);
    md_image *two = md_delta_publish(d, 2, 0);
    REQUIRE(two != NULL);
    CHECK(md_image_scram_count(two) == 2 && md_image_scram(two, "amy", 2) == NULL);
    CHECK(md_image_scram_count(one) == 3 && md_image_scram(one, "amy", 2) != NULL); /* unchanged */
    char why[256];
    CHECK(!md_image_equal(one, two, why, sizeof why));

    arena a;
    arena_init(&a, 1 << 20);
    reload_ctx rc = {md_delta_begin(e), &a, 0, 0, ""};
    CHECK(md_image_records(two, reload_one, &rc) == 0 && rc.failed == 0);
    md_image *back = md_delta_publish(rc.d, 2, 0);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(two, back, why, sizeof why));
    md_image_unref(back);
    arena_reset(&a);
    md_image_unref(two);
    md_image_unref(one);
    md_image_unref(e);
}

static int apply_acl(md_delta *d, int id, int8_t type, const char *name, const char *principal, int8_t op) {
    kafka_access_control_entry_record r;
    kafka_access_control_entry_record_init(&r);
    memset(&r.id, 0, sizeof r.id);
    r.id.b[15] = (uint8_t)id;
    r.resource_type = type;
    r.resource_name = kstr_c(name);
    r.pattern_type = ACL_PAT_LITERAL;
    r.principal = kstr_c(principal);
    r.host = kstr_c("*");
    r.operation = op;
    r.permission_type = ACL_PERM_ALLOW;
    mdrec m = {KAFKA_MREC_ACCESS_CONTROL_ENTRY, 0,
               kafka_metadata_record_lookup(KAFKA_MREC_ACCESS_CONTROL_ENTRY), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

static int apply_remove_acl(md_delta *d, int id) {
    kafka_remove_access_control_entry_record r;
    kafka_remove_access_control_entry_record_init(&r);
    memset(&r.id, 0, sizeof r.id);
    r.id.b[15] = (uint8_t)id;
    mdrec m = {KAFKA_MREC_REMOVE_ACCESS_CONTROL_ENTRY, 0,
               kafka_metadata_record_lookup(KAFKA_MREC_REMOVE_ACCESS_CONTROL_ENTRY), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

/* ACLs: added and removed by id, bad records refused, earlier images
 * unchanged, and a snapshot round trip. */
static void test_acls(void) {
    md_image *e = md_image_empty();
    md_delta *d = md_delta_begin(e);
    CHECK(apply_acl(d, 1, ACL_RES_TOPIC, "orders", "User:alice", ACL_OP_WRITE) == MD_OK);
    CHECK(apply_acl(d, 2, ACL_RES_GROUP, "g", "User:alice", ACL_OP_READ) == MD_OK);
    CHECK(apply_acl(d, 2, ACL_RES_GROUP, "h", "User:alice", ACL_OP_READ) == MD_EEXISTS);
    CHECK(apply_acl(d, 3, ACL_RES_ANY, "h", "User:alice", ACL_OP_READ) == MD_EINVAL);
    CHECK(apply_acl(d, 3, ACL_RES_TOPIC, "h", "alice", ACL_OP_READ) == MD_EINVAL);
    CHECK(apply_remove_acl(d, 9) == MD_ENOENT);
    md_image *one = md_delta_publish(d, 1, 0);
    REQUIRE(one != NULL);
    CHECK(acl_set_count(md_image_acls(one)) == 2 && acl_set_count(md_image_acls(e)) == 0);
    acl_policy p = {NULL, 0, false};
    CHECK(acl_authorize(md_image_acls(one), &p, "User:alice", "h", ACL_OP_WRITE, ACL_RES_TOPIC,
                        kstr_c("orders")));
    d = md_delta_begin(one);
    CHECK(apply_remove_acl(d, 1) == MD_OK);
    md_image *two = md_delta_publish(d, 2, 0);
    REQUIRE(two != NULL);
    CHECK(acl_set_count(md_image_acls(two)) == 1 && acl_set_count(md_image_acls(one)) == 2);
    CHECK(!acl_authorize(md_image_acls(two), &p, "User:alice", "h", ACL_OP_WRITE, ACL_RES_TOPIC,
                         kstr_c("orders")));
    char why[256];
    CHECK(!md_image_equal(one, two, why, sizeof why));
    arena a;
    arena_init(&a, 1 << 20);
    reload_ctx rc = {md_delta_begin(e), &a, 0, 0, ""};
    CHECK(md_image_records(one, reload_one, &rc) == 0 && rc.failed == 0);
    md_image *back = md_delta_publish(rc.d, 2, 0);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(one, back, why, sizeof why));
    CHECK(acl_set_by_id(md_image_acls(back), acl_set_at(md_image_acls(one), 0)->id) != NULL);
    md_image_unref(back);
    arena_reset(&a);
    md_image_unref(two);
    md_image_unref(one);
    md_image_unref(e);
}

static int apply_quota(md_delta *d, const char *user, bool has_user, const char *client, bool has_client,
                       const char *key, double value, bool remove) {
    kafka_client_quota_record_entity_data ent[2];
    int n = 0;
    if (has_user) {
        kafka_client_quota_record_entity_data_init(&ent[n]);
        ent[n].entity_type = kstr_c("user");
        ent[n++].entity_name = user ? kstr_c(user) : KSTR_NULL;
    }
    if (has_client) {
        kafka_client_quota_record_entity_data_init(&ent[n]);
        ent[n].entity_type = kstr_c("client-id");
        ent[n++].entity_name = client ? kstr_c(client) : KSTR_NULL;
    }
    kafka_client_quota_record r;
    kafka_client_quota_record_init(&r);
    r.entity = ent;
    r.entity_count = n;
    r.key = kstr_c(key);
    r.value = value;
    r.remove = remove;
    mdrec m = {KAFKA_MREC_CLIENT_QUOTA, 0, kafka_metadata_record_lookup(KAFKA_MREC_CLIENT_QUOTA), &r};
    char err[256];
    return md_apply(d, &m, err, sizeof err);
}

/* Client quotas: set, replaced and removed per key, default entities kept
 * apart from named ones, bad records refused, earlier images unchanged,
 * and a snapshot round trip. */
static void test_client_quotas(void) {
    md_image *e = md_image_empty();
    md_delta *d = md_delta_begin(e);
    CHECK(apply_quota(d, "alice", true, NULL, false, "producer_byte_rate", 1024, false) == MD_OK);
    CHECK(apply_quota(d, "alice", true, NULL, false, "producer_byte_rate", 2048, false) == MD_OK);
    CHECK(apply_quota(d, "alice", true, NULL, false, "request_percentage", 50, false) == MD_OK);
    CHECK(apply_quota(d, NULL, true, "app", true, "consumer_byte_rate", 10, false) == MD_OK);
    CHECK(apply_quota(d, NULL, false, NULL, true, "consumer_byte_rate", 20, false) == MD_OK);
    CHECK(apply_quota(d, NULL, false, "", true, "consumer_byte_rate", 30, false) == MD_OK); /* "" is a name */
    CHECK(apply_quota(d, NULL, false, NULL, false, "consumer_byte_rate", 30, false) == MD_EINVAL);
    CHECK(apply_quota(d, "a\x01b", true, NULL, false, "consumer_byte_rate", 30, false) == MD_EINVAL);
    CHECK(apply_quota(d, "bob", true, NULL, false, "", 30, false) == MD_EINVAL);
    CHECK(apply_quota(d, "bob", true, NULL, false, "x", 1.0 / 0.0, false) == MD_EINVAL);
    CHECK(apply_quota(d, "nobody", true, NULL, false, "producer_byte_rate", 0, true) == MD_OK); /* no-op */
    md_image *one = md_delta_publish(d, 1, 0);
    REQUIRE(one != NULL);
    const md_quota_set *qs = md_image_quotas(one);
    CHECK_EQ_INT(md_quota_set_count(qs), 4);
    CHECK_EQ_INT(md_quota_set_count(md_image_quotas(e)), 0);
    md_quota_comp alice = {kstr_c("user"), kstr_c("alice")};
    char ek[MD_QUOTA_EKEY_MAX];
    REQUIRE(md_quota_key(&alice, 1, ek) > 0);
    double v = 0;
    CHECK(md_quota_get(md_quota_set_find(qs, ek), "producer_byte_rate", &v) && v == 2048);
    md_quota_comp both[2] = {{kstr_c("client-id"), kstr_c("app")}, {kstr_c("user"), KSTR_NULL}};
    REQUIRE(md_quota_key(both, 2, ek) > 0);
    const md_quota *q = md_quota_set_find(qs, ek);
    REQUIRE(q != NULL);
    CHECK(q->n_parts == 2 && strcmp(q->parts[0].type, "client-id") == 0 && q->parts[1].name == NULL);
    d = md_delta_begin(one);
    CHECK(apply_quota(d, "alice", true, NULL, false, "producer_byte_rate", 0, true) == MD_OK);
    CHECK(apply_quota(d, "alice", true, NULL, false, "request_percentage", 0, true) == MD_OK);
    md_image *two = md_delta_publish(d, 2, 0);
    REQUIRE(two != NULL);
    CHECK_EQ_INT(md_quota_set_count(md_image_quotas(two)), 3); /* alice has no key left */
    CHECK_EQ_INT(md_quota_set_count(md_image_quotas(one)), 4);
    char why[256];
    CHECK(!md_image_equal(one, two, why, sizeof why));
    arena a;
    arena_init(&a, 1 << 20);
    reload_ctx rc = {md_delta_begin(e), &a, 0, 0, ""};
    CHECK(md_image_records(one, reload_one, &rc) == 0 && rc.failed == 0);
    CHECK_EQ_INT(rc.n, 5);
    md_image *back = md_delta_publish(rc.d, 2, 0);
    REQUIRE(back != NULL);
    CHECK(md_image_equal(one, back, why, sizeof why));
    md_image_unref(back);
    arena_reset(&a);
    md_image_unref(two);
    md_image_unref(one);
    md_image_unref(e);
}

static void test_model(void) {
    const char *one = getenv("SLUICE_SEED");
    if (one && *one) {
        CHECK(model_run(strtoull(one, NULL, 0)));
        return;
    }
    for (uint64_t seed = 1; seed <= 300; seed++)
        if (!model_run(seed)) {
            CHECK(false);
            break;
        }
}

int main(void) {
    UNIT_RUN(test_topics_partitions_configs);
    UNIT_RUN(test_unchanged_topics_are_shared);
    UNIT_RUN(test_framing);
    UNIT_RUN(test_scram_credentials);
    UNIT_RUN(test_acls);
    UNIT_RUN(test_client_quotas);
    UNIT_RUN(test_model);
    return UNIT_END("test_metadata_image");
}
