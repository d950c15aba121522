/*
 * test_acl.c - security/acl.h: binding validation, sets (add, remove,
 * copy, order), the decision (literal, wildcard and prefixed resources,
 * principal and host wildcards, implied operations, DENY winning, super
 * users, allow.everyone.if.no.acl.found), filters (ANY, MATCH, exact) and
 * the name tables.
 */
#include <string.h>

#include "security/acl.h"
#include "unit.h"

static kuuid id_of(int n) {
    kuuid u;
    memset(&u, 0, sizeof u);
    u.b[15] = (uint8_t)n;
    u.b[14] = (uint8_t)(n >> 8);
    return u;
}

static acl_spec spec(int8_t type, const char *name, int8_t pattern, const char *principal, const char *host,
                     int8_t op, int8_t perm) {
    return (acl_spec){type,
                      pattern,
                      op,
                      perm,
                      name ? kstr_c(name) : KSTR_NULL,
                      principal ? kstr_c(principal) : KSTR_NULL,
                      host ? kstr_c(host) : KSTR_NULL};
}

static int add(acl_set *s, int id, int8_t type, const char *name, int8_t pattern, const char *principal,
               const char *host, int8_t op, int8_t perm) {
    acl_spec b = spec(type, name, pattern, principal, host, op, perm);
    return acl_set_add(s, id_of(id), &b);
}

static acl_policy none;

static bool may(const acl_set *s, const acl_policy *p, const char *principal, const char *host, int8_t op,
                int8_t type, const char *name) {
    return acl_authorize(s, p, principal, host, op, type, kstr_c(name));
}

static void test_validation(void) {
    acl_spec ok = spec(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    CHECK(acl_binding_invalid(&ok) == NULL);
    acl_spec b = ok;
    b.resource_type = ACL_RES_ANY;
    CHECK(acl_binding_invalid(&b) != NULL);
    b = ok;
    b.pattern_type = ACL_PAT_MATCH;
    CHECK(acl_binding_invalid(&b) != NULL);
    b = ok;
    b.operation = ACL_OP_ANY;
    CHECK(acl_binding_invalid(&b) != NULL);
    b = ok;
    b.permission = ACL_PERM_ANY;
    CHECK(acl_binding_invalid(&b) != NULL);
    b = ok;
    b.principal = kstr_c("alice");
    CHECK(acl_binding_invalid(&b) != NULL);
    b.principal = kstr_c("User:");
    CHECK(acl_binding_invalid(&b) != NULL);
    b = ok;
    b.name = kstr_c("");
    CHECK(acl_binding_invalid(&b) != NULL);
    b = ok;
    b.host = KSTR_NULL;
    CHECK(acl_binding_invalid(&b) != NULL);
    b = spec(ACL_RES_CLUSTER, "other", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_ALTER, ACL_PERM_ALLOW);
    CHECK(acl_binding_invalid(&b) != NULL);
    b.name = kstr_c("kafka-cluster");
    CHECK(acl_binding_invalid(&b) == NULL);
    acl_spec f = spec(ACL_RES_ANY, NULL, ACL_PAT_ANY, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY);
    CHECK(acl_filter_invalid(&f) == NULL);
    f.operation = ACL_OP_UNKNOWN;
    CHECK(acl_filter_invalid(&f) != NULL);
}

static void test_set(void) {
    acl_set *s = acl_set_new();
    REQUIRE(s != NULL);
    CHECK(add(s, 3, ACL_RES_TOPIC, "b", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW) == 0);
    CHECK(add(s, 1, ACL_RES_GROUP, "g", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW) == 0);
    CHECK(add(s, 2, ACL_RES_TOPIC, "a", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW) == 0);
    CHECK(add(s, 2, ACL_RES_TOPIC, "z", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW) == -1);
    CHECK(add(s, 9, ACL_RES_ANY, "z", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW) == -4);
    REQUIRE(acl_set_count(s) == 3);
    CHECK(strcmp(acl_set_at(s, 0)->name, "a") == 0);
    CHECK(strcmp(acl_set_at(s, 1)->name, "b") == 0);
    CHECK(strcmp(acl_set_at(s, 2)->name, "g") == 0);
    acl_spec want = spec(ACL_RES_TOPIC, "b", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    const acl_entry *e = acl_set_find(s, &want);
    REQUIRE(e != NULL);
    CHECK(e->id.b[15] == 3);
    CHECK(acl_set_by_id(s, id_of(1)) != NULL && acl_set_by_id(s, id_of(1))->resource_type == ACL_RES_GROUP);
    acl_set *c = acl_set_copy(s);
    REQUIRE(c != NULL);
    CHECK(acl_set_remove(s, id_of(3)) == 0);
    CHECK(acl_set_remove(s, id_of(3)) == -1);
    CHECK(acl_set_count(s) == 2 && acl_set_find(s, &want) == NULL);
    /* the copy is independent */
    CHECK(acl_set_count(c) == 3 && acl_set_find(c, &want) != NULL && acl_set_by_id(c, id_of(3)) != NULL);
    acl_set_unref(c);
    acl_set *r = acl_set_ref(s);
    acl_set_unref(r);
    CHECK(acl_set_count(s) == 2);
    acl_set_unref(s);
    CHECK(acl_set_count(NULL) == 0);
}

static void test_decision(void) {
    acl_set *s = acl_set_new();
    REQUIRE(s != NULL);
    add(s, 1, ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:alice", "*", ACL_OP_WRITE, ACL_PERM_ALLOW);
    add(s, 2, ACL_RES_TOPIC, "logs-", ACL_PAT_PREFIXED, "User:bob", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    add(s, 3, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:carol", "*", ACL_OP_ALL, ACL_PERM_ALLOW);
    add(s, 4, ACL_RES_TOPIC, "logs-secret", ACL_PAT_LITERAL, "User:*", "*", ACL_OP_READ, ACL_PERM_DENY);
    add(s, 5, ACL_RES_GROUP, "g1", ACL_PAT_LITERAL, "User:dave", "10.0.0.1", ACL_OP_READ, ACL_PERM_ALLOW);
    add(s, 6, ACL_RES_TOPIC, "cfg", ACL_PAT_LITERAL, "User:erin", "*", ACL_OP_ALTER_CONFIGS, ACL_PERM_ALLOW);
    add(s, 7, ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:frank", "*", ACL_OP_ALL, ACL_PERM_DENY);
    add(s, 8, ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:frank", "*", ACL_OP_READ, ACL_PERM_ALLOW);

    /* literal, and WRITE implies DESCRIBE but not READ */
    CHECK(may(s, &none, "User:alice", "1.2.3.4", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    CHECK(may(s, &none, "User:alice", "1.2.3.4", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "orders"));
    CHECK(!may(s, &none, "User:alice", "1.2.3.4", ACL_OP_READ, ACL_RES_TOPIC, "orders"));
    CHECK(!may(s, &none, "User:alice", "1.2.3.4", ACL_OP_WRITE, ACL_RES_TOPIC, "orders2"));
    CHECK(!may(s, &none, "User:alice", "1.2.3.4", ACL_OP_WRITE, ACL_RES_GROUP, "orders"));
    /* prefixed */
    CHECK(may(s, &none, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs-app"));
    CHECK(may(s, &none, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs-"));
    CHECK(!may(s, &none, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs"));
    CHECK(!may(s, &none, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "xlogs-app"));
    /* DENY for User:* wins over bob's prefixed ALLOW and over carol's ALL */
    CHECK(!may(s, &none, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs-secret"));
    CHECK(!may(s, &none, "User:carol", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs-secret"));
    /* a DENY of READ does not deny DESCRIBE (implication is for ALLOW only) */
    CHECK(may(s, &none, "User:bob", "h", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "logs-secret"));
    /* the wildcard resource */
    CHECK(may(s, &none, "User:carol", "h", ACL_OP_DELETE, ACL_RES_TOPIC, "anything"));
    CHECK(may(s, &none, "User:carol", "h", ACL_OP_CREATE, ACL_RES_TOPIC, "orders"));
    /* hosts */
    CHECK(may(s, &none, "User:dave", "10.0.0.1", ACL_OP_READ, ACL_RES_GROUP, "g1"));
    CHECK(!may(s, &none, "User:dave", "10.0.0.2", ACL_OP_READ, ACL_RES_GROUP, "g1"));
    /* ALTER_CONFIGS implies DESCRIBE_CONFIGS, not DESCRIBE */
    CHECK(may(s, &none, "User:erin", "h", ACL_OP_DESCRIBE_CONFIGS, ACL_RES_TOPIC, "cfg"));
    CHECK(!may(s, &none, "User:erin", "h", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "cfg"));
    /* DENY ALL beats an ALLOW READ */
    CHECK(!may(s, &none, "User:frank", "h", ACL_OP_READ, ACL_RES_TOPIC, "orders"));
    /* no binding for the resource: allow.everyone.if.no.acl.found decides */
    acl_policy open = {NULL, 0, true};
    CHECK(!may(s, &none, "User:zed", "h", ACL_OP_READ, ACL_RES_GROUP, "nobody-has-acls"));
    CHECK(may(s, &open, "User:zed", "h", ACL_OP_READ, ACL_RES_GROUP, "nobody-has-acls"));
    /* ... but not when the resource has bindings for someone else */
    CHECK(!may(s, &open, "User:zed", "h", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    CHECK(may(NULL, &open, "User:zed", "h", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    CHECK(!may(NULL, &none, "User:zed", "h", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    /* super users */
    acl_policy su;
    char err[128];
    REQUIRE(acl_policy_init(&su, " User:admin ; User:CN=broker,O=x;", false, err, sizeof err) == 0);
    CHECK(su.n_super == 2);
    CHECK(may(s, &su, "User:admin", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs-secret"));
    CHECK(may(s, &su, "User:CN=broker,O=x", "h", ACL_OP_CLUSTER_ACTION, ACL_RES_CLUSTER, "kafka-cluster"));
    CHECK(!may(s, &su, "User:admin2", "h", ACL_OP_READ, ACL_RES_TOPIC, "logs-secret"));
    acl_policy_free(&su);
    CHECK(acl_policy_init(&su, "admin", false, err, sizeof err) == -1);
    CHECK(strstr(err, "admin") != NULL);
    /* some topic WRITE (InitProducerId without IDEMPOTENT_WRITE) */
    CHECK(acl_any_allowed(s, &none, "User:alice", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    CHECK(acl_any_allowed(s, &none, "User:carol", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    CHECK(!acl_any_allowed(s, &none, "User:bob", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    CHECK(!acl_any_allowed(s, &none, "User:zed", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    CHECK(!acl_any_allowed(s, &open, "User:zed", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    CHECK(acl_any_allowed(s, &open, "User:zed", "h", ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID));
    /* authorized operations: alice has WRITE and (implied) DESCRIBE */
    int32_t bits = acl_authorized_ops(s, &none, "User:alice", "h", ACL_RES_TOPIC, kstr_c("orders"));
    CHECK_EQ_INT(bits, (1 << ACL_OP_WRITE) | (1 << ACL_OP_DESCRIBE));
    acl_set_unref(s);
}

static void test_filters(void) {
    acl_set *s = acl_set_new();
    REQUIRE(s != NULL);
    add(s, 1, ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    add(s, 2, ACL_RES_TOPIC, "ord", ACL_PAT_PREFIXED, "User:b", "*", ACL_OP_WRITE, ACL_PERM_DENY);
    add(s, 3, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:c", "h1", ACL_OP_READ, ACL_PERM_ALLOW);
    add(s, 4, ACL_RES_GROUP, "orders", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    struct {
        acl_spec f;
        int want; /* bit i: binding id i+1 */
    } cases[] = {
        {spec(ACL_RES_ANY, NULL, ACL_PAT_ANY, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0xf},
        {spec(ACL_RES_TOPIC, NULL, ACL_PAT_ANY, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x7},
        {spec(ACL_RES_ANY, "orders", ACL_PAT_ANY, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x9},
        {spec(ACL_RES_TOPIC, "orders", ACL_PAT_MATCH, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x7},
        {spec(ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x1},
        {spec(ACL_RES_TOPIC, "ord", ACL_PAT_PREFIXED, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x2},
        {spec(ACL_RES_TOPIC, NULL, ACL_PAT_PREFIXED, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x2},
        {spec(ACL_RES_ANY, NULL, ACL_PAT_ANY, "User:a", NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x9},
        {spec(ACL_RES_ANY, NULL, ACL_PAT_ANY, NULL, "h1", ACL_OP_ANY, ACL_PERM_ANY), 0x4},
        {spec(ACL_RES_ANY, NULL, ACL_PAT_ANY, NULL, NULL, ACL_OP_WRITE, ACL_PERM_ANY), 0x2},
        {spec(ACL_RES_ANY, NULL, ACL_PAT_ANY, NULL, NULL, ACL_OP_ANY, ACL_PERM_ALLOW), 0xd},
        {spec(ACL_RES_TOPIC, "other", ACL_PAT_MATCH, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY), 0x4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int got = 0;
        for (int32_t i = 0; i < acl_set_count(s); i++)
            if (acl_filter_matches(&cases[c].f, acl_set_at(s, i)))
                got |= 1 << (acl_set_at(s, i)->id.b[15] - 1);
        if (got != cases[c].want)
            fprintf(stderr, "filter case %zu: got 0x%x want 0x%x\n", c, got, cases[c].want);
        CHECK(got == cases[c].want);
    }
    acl_set_unref(s);
}

static void test_names(void) {
    CHECK(strcmp(acl_operation_name(ACL_OP_IDEMPOTENT_WRITE), "IDEMPOTENT_WRITE") == 0);
    CHECK(strcmp(acl_operation_name(99), "UNKNOWN") == 0);
    CHECK(acl_operation_parse("IdempotentWrite") == ACL_OP_IDEMPOTENT_WRITE);
    CHECK(acl_operation_parse("read") == ACL_OP_READ);
    CHECK(acl_operation_parse("describe-configs") == ACL_OP_DESCRIBE_CONFIGS);
    CHECK(acl_operation_parse("nope") == -1);
    CHECK(acl_resource_type_parse("transactional_id") == ACL_RES_TRANSACTIONAL_ID);
    CHECK(acl_pattern_type_parse("Prefixed") == ACL_PAT_PREFIXED);
    CHECK(strcmp(acl_permission_name(ACL_PERM_DENY), "DENY") == 0);
    CHECK(strcmp(acl_resource_type_name(ACL_RES_CLUSTER), "CLUSTER") == 0);
}

int main(void) {
    UNIT_RUN(test_validation);
    UNIT_RUN(test_set);
    UNIT_RUN(test_decision);
    UNIT_RUN(test_filters);
    UNIT_RUN(test_names);
    return UNIT_END("test_acl");
}
