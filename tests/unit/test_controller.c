/*
 * test_controller.c - the controller state machine with a fake owner: the
 * owner applies appended records to an image and commits them at once (the
 * single-node path) or later (as a quorum would), or refuses appends. Covers
 * CreateTopics / DeleteTopics / CreatePartitions / AlterConfigs rules and
 * messages, the view of uncommitted proposals, request timeouts, and replica
 * placement (spread, rack awareness).
 */
#include "unit.h"

#include <stdint.h>

#include "controller/controller.h"
#include "proto/gen/kafka_msgs.h"

/* ---- the fake owner ------------------------------------------------------------ */

#define MAX_REPLIES 64

typedef struct owner {
    md_image *img;
    bool sync_commit;   /* commit inside the append call */
    int16_t append_err; /* refuse appends with this */
    int64_t next_offset;
    int64_t staged_last; /* async: appended but not committed */
    md_delta *staged;    /* async: records applied here until commit */
    controller *c;
    ctrl_item_result replies[MAX_REPLIES][8];
    int n_items[MAX_REPLIES];
    int64_t reply_offset[MAX_REPLIES];
    int n_replies;
    int appends;
} owner;

static ctrl_append_result o_append(void *ctx, const mdrec *recs, int n) {
    owner *o = ctx;
    o->appends++;
    if (o->append_err)
        return (ctrl_append_result){o->append_err, -1};
    if (o->staged == NULL)
        o->staged = md_delta_begin(o->img);
    char err[256];
    for (int i = 0; i < n; i++) {
        int rc = md_apply(o->staged, &recs[i], err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "record %d (%s) did not apply: %s\n", i, mdrec_type_name(recs[i].type), err);
            abort();
        }
    }
    o->next_offset += n;
    o->staged_last = o->next_offset - 1;
    ctrl_append_result r = {0, o->staged_last};
    if (o->sync_commit) {
        md_image *next = md_delta_publish(o->staged, o->staged_last, 0);
        o->staged = NULL;
        md_image_unref(o->img);
        o->img = next;
        ctrl_commit(o->c, o->img, 0);
    }
    return r;
}

static void commit_now(owner *o) {
    if (o->staged == NULL)
        return;
    md_image *next = md_delta_publish(o->staged, o->staged_last, 0);
    o->staged = NULL;
    md_image_unref(o->img);
    o->img = next;
    ctrl_commit(o->c, o->img, 0);
}

static void o_reply(void *ctx, void *token, const ctrl_result *res) {
    owner *o = ctx;
    int k = (int)(intptr_t)token;
    REQUIRE(k >= 0 && k < MAX_REPLIES);
    REQUIRE(o->n_items[k] == 0); /* exactly once */
    o->n_items[k] = res->n > 0 ? res->n : -1;
    for (int i = 0; i < res->n && i < 8; i++)
        o->replies[k][i] = res->items[i];
    o->reply_offset[k] = res->last_offset;
    o->n_replies++;
}

/* Fake config table: "cleanup.policy" is a list (default "delete"), a few
 * others are scalars, "bad.value" values must not be "x". */
static int f_key_kind(void *ctx, const char *key) {
    (void)ctx;
    if (strcmp(key, "cleanup.policy") == 0)
        return 1;
    if (strcmp(key, "retention.ms") == 0 || strcmp(key, "segment.bytes") == 0 ||
        strcmp(key, "bad.value") == 0)
        return 0;
    return -1;
}

static int f_check(void *ctx, const char *topic, const char *const *keys, const char *const *values, int n,
                   char *msg, size_t msgn) {
    (void)ctx;
    (void)topic;
    for (int i = 0; i < n; i++) {
        if (f_key_kind(NULL, keys[i]) < 0) {
            snprintf(msg, msgn, "Unknown topic config name: %s", keys[i]);
            return KAFKA_ERR_INVALID_CONFIG;
        }
        if (strcmp(keys[i], "bad.value") == 0 && strcmp(values[i], "x") == 0) {
            snprintf(msg, msgn, "bad.value may not be x");
            return KAFKA_ERR_INVALID_CONFIG;
        }
    }
    return 0;
}

static bool f_effective(void *ctx, const char *const *keys, const char *const *values, int n, const char *key,
                        char *out, size_t outn) {
    (void)ctx;
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0) {
            snprintf(out, outn, "%s", values[i]);
            return true;
        }
    if (strcmp(key, "cleanup.policy") == 0) {
        snprintf(out, outn, "delete");
        return true;
    }
    return false;
}

static void owner_init(owner *o, bool sync, int brokers, const char *const *racks) {
    memset(o, 0, sizeof *o);
    o->img = md_image_empty();
    o->sync_commit = true;
    ctrl_config cfg;
    ctrl_config_default(&cfg);
    cfg.seed = 42;
    cfg.default_partitions = 3;
    cfg.configs = (ctrl_config_ops){NULL, f_check, f_key_kind, f_effective, NULL};
    ctrl_sink sink = {o, o_append, o_reply};
    o->c = ctrl_create(&cfg, &sink, o->img);
    for (int b = 0; b < brokers; b++) {
        ctrl_broker_reg reg = {b + 1,       {{(uint8_t)(b + 1)}}, "PLAINTEXT",
                               "127.0.0.1", (uint16_t)(9092 + b), racks ? racks[b] : NULL};
        ctrl_register_broker(o->c, &reg, (void *)(intptr_t)(MAX_REPLIES - 1), 0);
        o->n_items[MAX_REPLIES - 1] = 0; /* reuse the slot */
        o->n_replies--;
    }
    o->sync_commit = sync;
}

static void owner_free(owner *o) {
    ctrl_destroy(o->c, KAFKA_ERR_NOT_CONTROLLER);
    if (o->staged)
        md_delta_abort(o->staged);
    md_image_unref(o->img);
}

static ctrl_new_topic nt(const char *name, int32_t parts, int16_t rf) {
    return (ctrl_new_topic){kstr_c(name), parts, rf, NULL, 0, NULL, 0, false};
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_create_topics(void) {
    owner o;
    owner_init(&o, true, 1, NULL);
    ctrl_kv cfgs[] = {{kstr_c("retention.ms"), kstr_c("1000")}};
    ctrl_new_topic t1 = nt("orders", -1, -1);
    t1.configs = cfgs;
    t1.n_configs = 1;
    ctrl_new_topic req[] = {t1,
                            nt("orders", 1, 1), /* listed twice */
                            nt("bad name!", 1, 1),
                            nt("__consumer_offsets", 1, 1),
                            nt("__cluster_metadata", 1, 1),
                            nt("x-stray", 1, 1),
                            nt("rf3", 1, 3),
                            nt("zero", 0, 1)};
    /* "orders" twice: both copies refused, as Kafka does. */
    ctrl_create_topics(o.c, req, 8, false, (void *)1, 0);
    REQUIRE(o.n_items[1] == 8);
    const ctrl_item_result *r = o.replies[1];
    CHECK_EQ_INT(r[0].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[1].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[2].error, KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(r[3].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[4].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[5].error, KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(r[6].error, KAFKA_ERR_INVALID_REPLICATION_FACTOR);
    CHECK(strstr(r[6].message, "single broker") != NULL);
    CHECK_EQ_INT(r[7].error, KAFKA_ERR_INVALID_PARTITIONS);
    CHECK(md_image_topic(o.img, kstr_c("orders")) == NULL);

    ctrl_create_topics(o.c, &t1, 1, false, (void *)2, 0);
    REQUIRE(o.n_items[2] == 1);
    CHECK_EQ_INT(o.replies[2][0].error, 0);
    CHECK_EQ_INT(o.replies[2][0].partitions, 3);
    CHECK_EQ_INT(o.replies[2][0].replication_factor, 1);
    const md_topic *t = md_image_topic(o.img, kstr_c("orders"));
    REQUIRE(t);
    CHECK(memcmp(t->id.b, o.replies[2][0].topic_id.b, 16) == 0);
    CHECK_EQ_INT(t->n_partitions, 3);
    CHECK_EQ_INT(md_topic_partition(t, 2)->leader, 1);
    CHECK(strcmp(md_image_config(o.img, MD_RESOURCE_TOPIC, "orders", "retention.ms"), "1000") == 0);
    CHECK(o.reply_offset[2] == md_image_offset(o.img));

    /* Exists, collides, bad config, validate_only. */
    ctrl_kv bad[] = {{kstr_c("bad.value"), kstr_c("x")}};
    ctrl_new_topic t_bad = nt("b", 1, 1);
    t_bad.configs = bad;
    t_bad.n_configs = 1;
    ctrl_kv nul[] = {{kstr_c("retention.ms"), KSTR_NULL}};
    ctrl_new_topic t_nul = nt("n", 1, 1);
    t_nul.configs = nul;
    t_nul.n_configs = 1;
    ctrl_new_topic req2[] = {nt("orders", 1, 1), nt("a.b", 1, 1), nt("a_b", 1, 1), t_bad, t_nul};
    ctrl_create_topics(o.c, req2, 5, false, (void *)3, 0);
    r = o.replies[3];
    CHECK_EQ_INT(r[0].error, KAFKA_ERR_TOPIC_ALREADY_EXISTS);
    CHECK_EQ_INT(r[1].error, 0);
    CHECK_EQ_INT(r[2].error, KAFKA_ERR_INVALID_TOPIC_EXCEPTION); /* collides with a.b from the same request */
    CHECK(strstr(r[2].message, "collides") != NULL);
    CHECK_EQ_INT(r[3].error, KAFKA_ERR_INVALID_CONFIG);
    CHECK_EQ_INT(r[4].error, KAFKA_ERR_INVALID_CONFIG);
    CHECK(md_image_topic(o.img, kstr_c("a.b")) != NULL);
    int32_t before = md_image_topic_count(o.img);
    ctrl_new_topic v = nt("vo", 5, 1);
    ctrl_create_topics(o.c, &v, 1, true, (void *)4, 0);
    CHECK_EQ_INT(o.replies[4][0].error, 0);
    CHECK_EQ_INT(o.replies[4][0].partitions, 5);
    CHECK_EQ_INT(md_image_topic_count(o.img), before);
    /* And the name is still free. */
    ctrl_create_topics(o.c, &v, 1, false, (void *)5, 0);
    CHECK_EQ_INT(o.replies[5][0].error, 0);
    owner_free(&o);
}

static void test_delete_and_partitions(void) {
    owner o;
    owner_init(&o, true, 1, NULL);
    ctrl_new_topic req[] = {
        nt("a", 2, 1), nt("b", 1, 1), {kstr_c("__consumer_offsets"), 4, 1, NULL, 0, NULL, 0, true}};
    ctrl_create_topics(o.c, req, 3, false, (void *)1, 0);
    CHECK_EQ_INT(o.replies[1][0].error, 0);
    CHECK_EQ_INT(o.replies[1][2].error, 0); /* the broker's own internal topic */
    kuuid bid = md_image_topic(o.img, kstr_c("b"))->id;

    ctrl_new_partitions cp[] = {{kstr_c("a"), 5, NULL, -1}, {kstr_c("a"), 6, NULL, -1}};
    ctrl_create_partitions(o.c, cp, 2, false, (void *)2, 0);
    CHECK_EQ_INT(o.replies[2][0].error, KAFKA_ERR_INVALID_REQUEST); /* listed twice */
    ctrl_create_partitions(o.c, cp, 1, false, (void *)3, 0);
    CHECK_EQ_INT(o.replies[3][0].error, 0);
    CHECK_EQ_INT(md_image_topic(o.img, kstr_c("a"))->n_partitions, 5);
    ctrl_new_partitions cp2[] = {{kstr_c("a"), 5, NULL, -1},
                                 {kstr_c("a"), 4, NULL, -1},
                                 {kstr_c("nope"), 4, NULL, -1},
                                 {kstr_c("__consumer_offsets"), 8, NULL, -1}};
    for (int i = 0; i < 4; i++)
        ctrl_create_partitions(o.c, &cp2[i], 1, false, (void *)(intptr_t)(10 + i), 0);
    CHECK_EQ_INT(o.replies[10][0].error, KAFKA_ERR_INVALID_PARTITIONS);
    CHECK(strstr(o.replies[10][0].message, "already has 5") != NULL);
    CHECK_EQ_INT(o.replies[11][0].error, KAFKA_ERR_INVALID_PARTITIONS);
    CHECK_EQ_INT(o.replies[12][0].error, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ_INT(o.replies[13][0].error, KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    /* Assignments: wrong count, unknown broker. */
    int32_t b1[] = {1}, b9[] = {9};
    ctrl_assignment as1[] = {{0, b1, 1}, {0, b1, 1}};
    ctrl_assignment as9[] = {{0, b9, 1}};
    ctrl_new_partitions cp3[] = {
        {kstr_c("b"), 2, as1, 2}, {kstr_c("b"), 2, as9, 1}, {kstr_c("b"), 2, as1, 1}};
    for (int i = 0; i < 3; i++)
        ctrl_create_partitions(o.c, &cp3[i], 1, false, (void *)(intptr_t)(20 + i), 0);
    CHECK_EQ_INT(o.replies[20][0].error, KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT);
    CHECK_EQ_INT(o.replies[21][0].error, KAFKA_ERR_INVALID_REPLICA_ASSIGNMENT);
    CHECK(strstr(o.replies[21][0].message, "only broker is 1") != NULL);
    CHECK_EQ_INT(o.replies[22][0].error, 0);

    ctrl_topic_ref dr[] = {{kstr_c("a"), {{0}}},
                           {kstr_c("a"), {{0}}},
                           {KSTR_NULL, bid},
                           {kstr_c("b"), bid},
                           {kstr_c("__consumer_offsets"), {{0}}},
                           {kstr_c("ghost"), {{0}}},
                           {KSTR_NULL, {{7}}}};
    ctrl_delete_topics(o.c, dr, 7, (void *)30, 0);
    const ctrl_item_result *r = o.replies[30];
    CHECK_EQ_INT(r[0].error, KAFKA_ERR_INVALID_REQUEST); /* listed twice */
    CHECK_EQ_INT(r[1].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[2].error, 0);
    CHECK(strcmp(r[2].name, "b") == 0);
    CHECK_EQ_INT(r[3].error, KAFKA_ERR_INVALID_REQUEST); /* name and id */
    CHECK_EQ_INT(r[4].error, KAFKA_ERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ_INT(r[5].error, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ_INT(r[6].error, KAFKA_ERR_UNKNOWN_TOPIC_ID);
    CHECK(md_image_topic(o.img, kstr_c("b")) == NULL);
    CHECK(md_image_topic(o.img, kstr_c("a")) != NULL);
    owner_free(&o);
}

static void test_alter_configs(void) {
    owner o;
    owner_init(&o, true, 1, NULL);
    ctrl_new_topic t = nt("t", 1, 1);
    ctrl_create_topics(o.c, &t, 1, false, (void *)1, 0);
    ctrl_alter inc[] = {{kstr_c("cleanup.policy"), CTRL_APPEND, kstr_c("compact")},
                        {kstr_c("retention.ms"), CTRL_SET, kstr_c("77")}};
    ctrl_resource res = {MD_RESOURCE_TOPIC, kstr_c("t"), inc, 2};
    ctrl_alter_configs(o.c, &res, 1, true, false, (void *)2, 0);
    CHECK_EQ_INT(o.replies[2][0].error, 0);
    CHECK(strcmp(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "cleanup.policy"), "delete,compact") == 0);
    CHECK(strcmp(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "retention.ms"), "77") == 0);
    ctrl_alter sub[] = {{kstr_c("cleanup.policy"), CTRL_SUBTRACT, kstr_c("delete")},
                        {kstr_c("retention.ms"), CTRL_DELETE, KSTR_NULL}};
    res.alters = sub;
    ctrl_alter_configs(o.c, &res, 1, true, false, (void *)3, 0);
    CHECK_EQ_INT(o.replies[3][0].error, 0);
    CHECK(strcmp(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "cleanup.policy"), "compact") == 0);
    CHECK(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "retention.ms") == NULL);
    /* AlterConfigs replaces the whole set. */
    ctrl_alter rep[] = {{kstr_c("segment.bytes"), 0, kstr_c("1048576")}};
    res.alters = rep;
    res.n = 1;
    ctrl_alter_configs(o.c, &res, 1, false, false, (void *)4, 0);
    CHECK_EQ_INT(o.replies[4][0].error, 0);
    CHECK(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "cleanup.policy") == NULL);
    CHECK(strcmp(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "segment.bytes"), "1048576") == 0);
    /* Errors. */
    ctrl_alter e1[] = {{kstr_c("nope"), CTRL_SET, kstr_c("1")}};
    ctrl_alter e2[] = {{kstr_c("retention.ms"), CTRL_APPEND, kstr_c("1")}};
    ctrl_alter e3[] = {{kstr_c("bad.value"), CTRL_SET, kstr_c("x")}};
    ctrl_alter e4[] = {{kstr_c("retention.ms"), CTRL_SET, kstr_c("1")},
                       {kstr_c("retention.ms"), CTRL_SET, kstr_c("2")}};
    ctrl_resource rs[] = {{MD_RESOURCE_TOPIC, kstr_c("t"), e1, 1},
                          {MD_RESOURCE_TOPIC, kstr_c("t"), e2, 1},
                          {MD_RESOURCE_TOPIC, kstr_c("t"), e3, 1},
                          {MD_RESOURCE_TOPIC, kstr_c("t"), e4, 2},
                          {MD_RESOURCE_TOPIC, kstr_c("gone"), e1, 1},
                          {MD_RESOURCE_BROKER, kstr_c("1"), e1, 1},
                          {7, kstr_c("x"), e1, 1}};
    ctrl_alter_configs(o.c, rs, 7, true, false, (void *)5, 0);
    const ctrl_item_result *r = o.replies[5];
    CHECK_EQ_INT(r[0].error, KAFKA_ERR_INVALID_CONFIG);
    CHECK_EQ_INT(r[1].error, KAFKA_ERR_INVALID_CONFIG);
    CHECK_EQ_INT(r[2].error, KAFKA_ERR_INVALID_CONFIG);
    CHECK_EQ_INT(r[3].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[4].error, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ_INT(r[5].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK_EQ_INT(r[6].error, KAFKA_ERR_INVALID_REQUEST);
    CHECK(strcmp(md_image_config(o.img, MD_RESOURCE_TOPIC, "t", "segment.bytes"), "1048576") == 0);
    owner_free(&o);
}

/* A quorum-like owner: commits later. The view sees proposals; replies wait
 * for the commit; a refused append rolls the view back; a slow commit times
 * the request out. */
static void test_async_commit_and_view(void) {
    owner o;
    owner_init(&o, false, 1, NULL);
    ctrl_new_topic t = nt("x", 1, 1);
    ctrl_create_topics(o.c, &t, 1, false, (void *)1, 1000);
    CHECK_EQ_INT(o.n_items[1], 0); /* not committed yet */
    ctrl_create_topics(o.c, &t, 1, false, (void *)2, 1001);
    CHECK_EQ_INT(o.n_items[2], 1); /* refused at once: the view has x */
    CHECK_EQ_INT(o.replies[2][0].error, KAFKA_ERR_TOPIC_ALREADY_EXISTS);
    CHECK(ctrl_next_deadline(o.c) == 1000 + 30000);
    commit_now(&o);
    CHECK_EQ_INT(o.n_items[1], 1);
    CHECK_EQ_INT(o.replies[1][0].error, 0);
    CHECK(md_image_topic(o.img, kstr_c("x")) != NULL);
    /* A refused append. */
    o.append_err = KAFKA_ERR_NOT_CONTROLLER;
    ctrl_new_topic y = nt("y", 1, 1);
    ctrl_create_topics(o.c, &y, 1, false, (void *)3, 2000);
    CHECK_EQ_INT(o.replies[3][0].error, KAFKA_ERR_NOT_CONTROLLER);
    o.append_err = 0;
    ctrl_create_topics(o.c, &y, 1, false, (void *)4, 2001); /* the view forgot y */
    CHECK_EQ_INT(o.n_items[4], 0);
    /* Not committed in time. */
    ctrl_tick(o.c, 2001 + 30000);
    CHECK_EQ_INT(o.n_items[4], 1);
    CHECK_EQ_INT(o.replies[4][0].error, KAFKA_ERR_REQUEST_TIMED_OUT);
    commit_now(&o); /* committed after all: y exists */
    CHECK(md_image_topic(o.img, kstr_c("y")) != NULL);
    /* Shutdown answers what waits. */
    ctrl_new_topic z = nt("z", 1, 1);
    ctrl_create_topics(o.c, &z, 1, false, (void *)5, 3000);
    ctrl_destroy(o.c, KAFKA_ERR_NOT_CONTROLLER);
    o.c = NULL;
    CHECK_EQ_INT(o.n_items[5], 1);
    CHECK_EQ_INT(o.replies[5][0].error, KAFKA_ERR_NOT_CONTROLLER);
    if (o.staged)
        md_delta_abort(o.staged);
    md_image_unref(o.img);
}

static void test_placement(void) {
    int32_t ids[6] = {1, 2, 3, 4, 5, 6};
    int32_t out[600 * 3];
    uint64_t rng = 7;
    CHECK_EQ_INT(ctrl_place_replicas(ids, NULL, 6, 600, 3, 0, &rng, out), 0);
    int leaders[7] = {0};
    for (int p = 0; p < 600; p++) {
        int32_t *r = &out[p * 3];
        CHECK(r[0] != r[1] && r[0] != r[2] && r[1] != r[2]);
        leaders[r[0]]++;
    }
    for (int b = 1; b <= 6; b++)
        CHECK_EQ_INT(leaders[b], 100); /* leaders spread evenly */
    /* Racks: a, a, b, b, c, c -> every partition in three racks. */
    const char *racks[6] = {"a", "a", "b", "b", "c", "c"};
    CHECK_EQ_INT(ctrl_place_replicas(ids, racks, 6, 300, 3, 0, &rng, out), 0);
    for (int p = 0; p < 300; p++) {
        int32_t *r = &out[p * 3];
        const char *x = racks[r[0] - 1], *y = racks[r[1] - 1], *z = racks[r[2] - 1];
        CHECK(strcmp(x, y) && strcmp(x, z) && strcmp(y, z));
    }
    /* rf 4 over three racks: all racks used, brokers distinct. */
    CHECK_EQ_INT(ctrl_place_replicas(ids, racks, 6, 60, 4, 0, &rng, out), 0);
    for (int p = 0; p < 60; p++) {
        int32_t *r = &out[p * 4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < i; j++)
                CHECK(r[i] != r[j]);
    }
    CHECK_EQ_INT(ctrl_place_replicas(ids, NULL, 6, 1, 7, 0, &rng, out), -1);
    /* Rack-aware CreateTopics through the controller. */
    owner o;
    owner_init(&o, true, 6, racks);
    ctrl_new_topic t = nt("r", 12, 3);
    ctrl_create_topics(o.c, &t, 1, false, (void *)1, 0);
    CHECK_EQ_INT(o.replies[1][0].error, 0);
    const md_topic *tp = md_image_topic(o.img, kstr_c("r"));
    REQUIRE(tp && tp->n_partitions == 12);
    for (int p = 0; p < 12; p++) {
        const md_partition *pp = md_topic_partition(tp, p);
        CHECK_EQ_INT(pp->replicas.n, 3);
        CHECK_EQ_INT(pp->leader, pp->replicas.ids[0]);
        const char *x = racks[pp->replicas.ids[0] - 1], *y = racks[pp->replicas.ids[1] - 1],
                   *z = racks[pp->replicas.ids[2] - 1];
        CHECK(strcmp(x, y) && strcmp(x, z) && strcmp(y, z));
    }
    owner_free(&o);
}

/* Applies one record to the owner's committed image (as another writer's
 * committed change would arrive) and tells the controller. */
static void commit_record(owner *o, int16_t type, void *body) {
    const kafka_record_info *ri = kafka_metadata_record_lookup(type);
    mdrec rec = {type, mdrec_write_version(type), ri, body};
    md_delta *d = md_delta_begin(o->img);
    char err[256];
    REQUIRE(md_apply(d, &rec, err, sizeof err) == MD_OK);
    o->next_offset++;
    md_image *next = md_delta_publish(d, o->next_offset - 1, 0);
    md_image_unref(o->img);
    o->img = next;
    ctrl_commit(o->c, o->img, 0);
}

static const md_partition *part0(owner *o, const char *name) {
    const md_topic *t = md_image_topic(o->img, kstr_c(name));
    REQUIRE(t);
    return md_topic_partition(t, 0);
}

static void beat(owner *o, int32_t id, int64_t now) {
    const md_broker *b = md_image_broker(o->img, id);
    bool fenced, shut;
    if (b)
        ctrl_broker_heartbeat(o->c, id, b->epoch, false, now, &fenced, &shut);
}

static void test_isr_elections_unregister(void) {
    owner o;
    owner_init(&o, true, 4, NULL);
    int32_t ids[] = {2, 3, 4};
    ctrl_assignment as = {0, ids, 3};
    ctrl_new_topic t = nt("t", -1, -1);
    t.assignments = &as;
    t.n_assignments = 1;
    ctrl_create_topics(o.c, &t, 1, false, (void *)1, 0);
    REQUIRE(o.n_items[1] == 1);
    CHECK_EQ_INT(o.replies[1][0].error, 0);
    /* Nobody replicates yet: the ISR is the leader alone. */
    const md_partition *p = part0(&o, "t");
    CHECK_EQ_INT(p->leader, 2);
    CHECK_EQ_INT(p->isr.n, 1);
    CHECK_EQ_INT(p->isr.ids[0], 2);

    /* As replication will: every replica in sync. */
    kafka_partition_change_record pc;
    kafka_partition_change_record_init(&pc);
    pc.topic_id = md_image_topic(o.img, kstr_c("t"))->id;
    pc.partition_id = 0;
    pc.isr = ids;
    pc.isr_count = 3;
    commit_record(&o, KAFKA_MREC_PARTITION_CHANGE, &pc);
    CHECK_EQ_INT(part0(&o, "t")->isr.n, 3);

    /* Preferred: the first replica leads already. */
    ctrl_partition_ref refs[] = {{kstr_c("t"), 0}, {kstr_c("t"), 5}, {kstr_c("nope"), 0}};
    ctrl_elect_leaders(o.c, CTRL_ELECT_PREFERRED, refs, 3, (void *)2, 0);
    REQUIRE(o.n_items[2] == 3);
    CHECK_EQ_INT(o.replies[2][0].error, KAFKA_ERR_ELECTION_NOT_NEEDED);
    CHECK_EQ_INT(o.replies[2][1].error, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ_INT(o.replies[2][2].error, KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    ctrl_elect_leaders(o.c, 9, refs, 1, (void *)3, 0);
    CHECK_EQ_INT(o.replies[3][0].error, KAFKA_ERR_INVALID_REQUEST);

    /* Broker 2 falls silent: it leaves the ISR and 3 leads. */
    int64_t now = 0;
    for (int i = 0; i < 20; i++) {
        now += 1000;
        beat(&o, 3, now);
        beat(&o, 4, now);
        ctrl_tick(o.c, now);
    }
    p = part0(&o, "t");
    CHECK(md_image_broker(o.img, 2)->fenced);
    CHECK_EQ_INT(p->leader, 3);
    CHECK_EQ_INT(p->isr.n, 2);
    CHECK_EQ_INT(p->isr.ids[0], 3);
    CHECK_EQ_INT(p->isr.ids[1], 4);
    /* The preferred replica is fenced (and out of the ISR). */
    ctrl_elect_leaders(o.c, CTRL_ELECT_PREFERRED, refs, 1, (void *)4, now);
    CHECK_EQ_INT(o.replies[4][0].error, KAFKA_ERR_PREFERRED_LEADER_NOT_AVAILABLE);
    /* Unclean: a live leader exists. */
    ctrl_elect_leaders(o.c, CTRL_ELECT_UNCLEAN, refs, 1, (void *)5, now);
    CHECK_EQ_INT(o.replies[5][0].error, KAFKA_ERR_ELECTION_NOT_NEEDED);

    /* 3 and 4 fall silent together: with no live member the ISR stays as
     * it was (each has every committed record; whichever returns first
     * leads cleanly), and nobody leads. */
    for (int i = 0; i < 20; i++) {
        now += 1000;
        ctrl_tick(o.c, now);
    }
    p = part0(&o, "t");
    CHECK_EQ_INT(p->leader, -1);
    CHECK_EQ_INT(p->isr.n, 2);
    ctrl_elect_leaders(o.c, CTRL_ELECT_UNCLEAN, refs, 1, (void *)6, now);
    CHECK_EQ_INT(o.replies[6][0].error, KAFKA_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE);

    /* Broker 2 returns (unfenced by its heartbeat); it is not in the ISR,
     * so the partition stays leaderless until an unclean election. */
    beat(&o, 2, now);
    for (int i = 0; i < 3; i++) {
        now += 100;
        beat(&o, 2, now);
        ctrl_tick(o.c, now);
    }
    CHECK(!md_image_broker(o.img, 2)->fenced);
    CHECK_EQ_INT(part0(&o, "t")->leader, -1);
    ctrl_elect_leaders(o.c, CTRL_ELECT_PREFERRED, refs, 1, (void *)7, now);
    CHECK_EQ_INT(o.replies[7][0].error, KAFKA_ERR_PREFERRED_LEADER_NOT_AVAILABLE);
    CHECK(strstr(o.replies[7][0].message, "not in the ISR") != NULL);
    ctrl_elect_leaders(o.c, CTRL_ELECT_UNCLEAN, refs, 1, (void *)8, now);
    CHECK_EQ_INT(o.replies[8][0].error, 0);
    p = part0(&o, "t");
    CHECK_EQ_INT(p->leader, 2);
    CHECK_EQ_INT(p->isr.n, 1);
    CHECK_EQ_INT(p->isr.ids[0], 2);

    /* Unregister: unknown, self, a fenced broker (twice). */
    ctrl_unregister_broker(o.c, 42, (void *)9, now);
    CHECK_EQ_INT(o.replies[9][0].error, KAFKA_ERR_BROKER_ID_NOT_REGISTERED);
    ctrl_unregister_broker(o.c, 1, (void *)10, now);
    CHECK_EQ_INT(o.replies[10][0].error, KAFKA_ERR_INVALID_REQUEST);
    ctrl_unregister_broker(o.c, 4, (void *)11, now);
    CHECK_EQ_INT(o.replies[11][0].error, 0);
    CHECK(md_image_broker(o.img, 4) == NULL);
    ctrl_unregister_broker(o.c, 4, (void *)12, now);
    CHECK_EQ_INT(o.replies[12][0].error, KAFKA_ERR_BROKER_ID_NOT_REGISTERED);
    /* The replica list keeps the unregistered broker, as Kafka's does. */
    CHECK_EQ_INT(part0(&o, "t")->replicas.n, 3);
    owner_free(&o);
}

int main(void) {
    UNIT_RUN(test_create_topics);
    UNIT_RUN(test_delete_and_partitions);
    UNIT_RUN(test_alter_configs);
    UNIT_RUN(test_async_commit_and_view);
    UNIT_RUN(test_placement);
    UNIT_RUN(test_isr_elections_unregister);
    return UNIT_END("test_controller");
}
