/*
 * test_quota.c - client quota arithmetic and resolution: core/rate.h's
 * sampled windows and throttle time against hand-computed values (Kafka's
 * formulas), a client held to its throttle times converging on the bound,
 * and broker/quota.h's precedence order of the eight entity combinations.
 */
#include "unit.h"

#include <math.h>
#include <stdint.h>

#include "broker/quota.h"
#include "core/rate.h"
#include "metadata/image.h"
#include "metadata/records.h"

/* A burst into a fresh rate is measured over samples - 1 whole windows. */
static void test_span_and_rate(void) {
    rate r;
    rate_init(&r, 11, 1000, 0);
    rate_record(&r, 1000, 0);
    CHECK_EQ_INT(rate_span_ms(&r, 0), 10000);
    CHECK(fabs(rate_per_second(&r, 0) - 100.0) < 1e-9);
    /* 500 ms later: still within the first window; span 10500 ms. */
    rate_record(&r, 1000, 500);
    CHECK_EQ_INT(rate_span_ms(&r, 500), 10500);
    /* Windows roll: after 12 s the first sample has expired. */
    for (int64_t t = 1000; t <= 12000; t += 1000)
        rate_record(&r, 100, t);
    double v = rate_per_second(&r, 12000);
    CHECK(v > 90 && v < 120);
    /* Long idle: everything expires, the rate is 0. */
    CHECK(rate_per_second(&r, 100000) == 0);
}

/* (rate - bound) / bound * span, rounded; 0 within the bound; capped. */
static void test_throttle_formula(void) {
    rate r;
    rate_init(&r, 11, 1000, 0);
    /* 2000 over a 10 s span is 200/s: bound 100 -> (200-100)/100 * 10000. */
    CHECK_EQ_INT(rate_record_throttle(&r, 2000, 100, 0, 0), 10000);
    rate_init(&r, 11, 1000, 0);
    CHECK_EQ_INT(rate_record_throttle(&r, 1000, 100, 0, 0), 0); /* exactly at the bound */
    rate_init(&r, 11, 1000, 0);
    CHECK_EQ_INT(rate_record_throttle(&r, 2000, 100, 1000, 0), 1000); /* the request quota's cap */
    rate_init(&r, 11, 1000, 0);
    CHECK_EQ_INT(rate_record_throttle(&r, 1e12, 0, 0, 0), 0); /* no bound */
    rate_init(&r, 2, 1000, 0);
    /* 2 samples: span at least 1 s; 300 at bound 100 -> 2000 ms. */
    CHECK_EQ_INT(rate_record_throttle(&r, 300, 100, 0, 0), 2000);
}

/* A client that sends as fast as it may and waits out each throttle time
 * achieves about the bound over a long run. */
static void test_client_converges(void) {
    const double bound = 100000, chunk = 16384;
    for (int samples = 2; samples <= 11; samples += 9) {
        rate r;
        rate_init(&r, samples, 1000, 0);
        int64_t now = 0;
        double sent = 0;
        int throttled = 0;
        for (int i = 0; i < 20000 && now < 120000; i++) {
            int64_t t = rate_record_throttle(&r, chunk, bound, 0, now);
            sent += chunk;
            throttled += t > 0;
            now += t > 0 ? t : 1;
        }
        double achieved = sent * 1000.0 / (double)now;
        CHECK(throttled > 0);
        CHECK(achieved < bound * 1.2 && achieved > bound * 0.8);
    }
}

/* The controller mutation quota's token bucket: full at first, below 0
 * after a large mutation, throttle -tokens / bound, refilled over time. */
static void test_token_bucket(void) {
    rate_tokens t = {0};
    /* bound 1/s, burst 3 (3 windows of 1 s) */
    CHECK(!rate_tokens_exceeded(&t, 1, 3, 0));
    CHECK_EQ_INT(rate_tokens_record(&t, 2, 1, 3, 0), 0);
    CHECK_EQ_INT(rate_tokens_record(&t, 5, 1, 3, 0), 4000); /* 1 - 5 = -4 tokens at 1/s */
    CHECK(rate_tokens_exceeded(&t, 1, 3, 3999));
    CHECK(!rate_tokens_exceeded(&t, 1, 3, 4000));
    CHECK(!rate_tokens_exceeded(&t, 1, 3, 100000));
    CHECK(t.tokens == 3);                                  /* refilled to the burst, no further */
    CHECK_EQ_INT(rate_tokens_record(&t, 1e9, 0, 3, 0), 0); /* no bound */
}

static md_delta *d_;

static void quota(const char *user, bool hu, const char *client, bool hc, const char *key, double v) {
    kafka_client_quota_record_entity_data ent[2];
    int n = 0;
    if (hu) {
        kafka_client_quota_record_entity_data_init(&ent[n]);
        ent[n].entity_type = kstr_c("user");
        ent[n++].entity_name = user ? kstr_c(user) : KSTR_NULL;
    }
    if (hc) {
        kafka_client_quota_record_entity_data_init(&ent[n]);
        ent[n].entity_type = kstr_c("client-id");
        ent[n++].entity_name = client ? kstr_c(client) : KSTR_NULL;
    }
    kafka_client_quota_record r;
    kafka_client_quota_record_init(&r);
    r.entity = ent;
    r.entity_count = n;
    r.key = kstr_c(key);
    r.value = v;
    mdrec m = {KAFKA_MREC_CLIENT_QUOTA, 0, kafka_metadata_record_lookup(KAFKA_MREC_CLIENT_QUOTA), &r};
    char err[256];
    CHECK(md_apply(d_, &m, err, sizeof err) == MD_OK);
}

/* Each of Kafka's eight levels wins over those below it; the tags say
 * what shares a rate. */
static void test_precedence(void) {
    const char *k = QUOTA_KEY_PRODUCER_BYTE_RATE;
    md_image *img = md_image_empty();
    double b;
    char tu[64], tc[64];
    CHECK(!bquota_resolve(img, BQUOTA_PRODUCE, "alice", kstr_c("app"), &b, tu, sizeof tu, tc, sizeof tc));
    /* Added from the lowest level up; each must take over. */
    struct {
        const char *u;
        bool hu;
        const char *c;
        bool hc;
        const char *tag_u, *tag_c;
    } lv[8] = {
        {NULL, false, NULL, true, "", "app"},      /* /config/clients/<default> */
        {NULL, false, "app", true, "", "app"},     /* /config/clients/app */
        {NULL, true, NULL, false, "alice", ""},    /* /config/users/<default> */
        {NULL, true, NULL, true, "alice", "app"},  /* /config/users/<default>/clients/<default> */
        {NULL, true, "app", true, "alice", "app"}, /* /config/users/<default>/clients/app */
        {"alice", true, NULL, false, "alice", ""}, /* /config/users/alice */
        {"alice", true, NULL, true, "alice", "app"}, {"alice", true, "app", true, "alice", "app"},
    };
    for (int i = 0; i < 8; i++) {
        d_ = md_delta_begin(img);
        quota(lv[i].u, lv[i].hu, lv[i].c, lv[i].hc, k, 100 + i);
        md_image *next = md_delta_publish(d_, i, 0);
        REQUIRE(next != NULL);
        md_image_unref(img);
        img = next;
        CHECK(bquota_resolve(img, BQUOTA_PRODUCE, "alice", kstr_c("app"), &b, tu, sizeof tu, tc, sizeof tc));
        CHECK(b == 100 + i);
        CHECK(strcmp(tu, lv[i].tag_u) == 0 && strcmp(tc, lv[i].tag_c) == 0);
        /* Another user and client fall to the defaults. */
        CHECK(bquota_resolve(img, BQUOTA_PRODUCE, "bob", kstr_c("other"), &b, tu, sizeof tu, tc, sizeof tc));
    }
    /* Keys resolve separately: a consumer quota only at the bottom level. */
    d_ = md_delta_begin(img);
    quota(NULL, false, NULL, true, QUOTA_KEY_CONSUMER_BYTE_RATE, 7);
    md_image *next = md_delta_publish(d_, 9, 0);
    md_image_unref(img);
    img = next;
    CHECK(bquota_resolve(img, BQUOTA_FETCH, "alice", kstr_c("app"), &b, tu, sizeof tu, tc, sizeof tc) &&
          b == 7);
    CHECK(strcmp(tu, "") == 0 && strcmp(tc, "app") == 0);
    CHECK(!bquota_resolve(img, BQUOTA_REQUEST, "alice", kstr_c("app"), &b, tu, sizeof tu, tc, sizeof tc));

    /* Rates follow the tags: two client ids of one user under a user
     * quota share one rate. */
    bquota *q = bquota_create(2, 1000);
    REQUIRE(q != NULL);
    d_ = md_delta_begin(img);
    quota("carol", true, NULL, false, k, 1000);
    next = md_delta_publish(d_, 10, 0);
    md_image_unref(img);
    img = next;
    CHECK_EQ_INT(bquota_record(q, img, BQUOTA_PRODUCE, "carol", kstr_c("a"), 1000, 0), 0);
    CHECK(bquota_record(q, img, BQUOTA_PRODUCE, "carol", kstr_c("b"), 1000, 0) > 0);
    bquota_stats st;
    bquota_get_stats(q, &st);
    CHECK_EQ_INT(st.rates, 1);
    CHECK_EQ_INT(st.throttled[BQUOTA_PRODUCE], 1);
    bquota_destroy(q);
    md_image_unref(img);
}

int main(void) {
    UNIT_RUN(test_span_and_rate);
    UNIT_RUN(test_throttle_formula);
    UNIT_RUN(test_client_converges);
    UNIT_RUN(test_token_bucket);
    UNIT_RUN(test_precedence);
    return UNIT_END("test_quota");
}
