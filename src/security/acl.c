/*
 * security/acl.c - ACL bindings, filters and the authorization decision.
 * See acl.h.
 */
#include "security/acl.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct acl_set {
    atomic_int refs;
    /* by (type, pattern, name, principal, host, op, perm) */
    acl_entry **items;
    /* the same entries by id */
    acl_entry **by_id;
    int32_t n, cap;
};

/* ---- strings ------------------------------------------------------------------------ */

static bool ks_null(kstr s) { return s.len < 0 || s.ptr == NULL; }

static bool ks_eq(kstr a, const char *b) {
    size_t n = strlen(b);
    return !ks_null(a) && (size_t)a.len == n && (n == 0 || memcmp(a.ptr, b, n) == 0);
}

/* strcmp of a kstr (not null) against a C string. */
static int ks_cmp(kstr a, const char *b) {
    size_t n = strlen(b), an = (size_t)a.len, m = an < n ? an : n;
    int c = m ? memcmp(a.ptr, b, m) : 0;
    if (c != 0)
        return c;
    return an < n ? -1 : an > n ? 1 : 0;
}

static bool ks_starts_with(kstr s, const char *prefix) {
    size_t n = strlen(prefix);
    return !ks_null(s) && (size_t)s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

/* "<type>:<name>" with both parts non-empty. */
static bool principal_ok(kstr p) {
    if (ks_null(p) || p.len < 3)
        return false;
    const char *colon = memchr(p.ptr, ':', (size_t)p.len);
    return colon != NULL && colon != p.ptr && colon != p.ptr + p.len - 1;
}

/* ---- validity ----------------------------------------------------------------------- */

static bool res_concrete(int8_t t) { return t >= ACL_RES_TOPIC && t <= ACL_RES_USER; }
static bool op_concrete(int8_t op) { return op >= ACL_OP_ALL && op <= ACL_OP_DESCRIBE_TOKENS; }

const char *acl_binding_invalid(const acl_spec *s) {
    if (!res_concrete(s->resource_type))
        return "Invalid resource type: an ACL binding needs a concrete resource type";
    if (s->pattern_type != ACL_PAT_LITERAL && s->pattern_type != ACL_PAT_PREFIXED)
        return "Invalid pattern type: an ACL binding is LITERAL or PREFIXED";
    if (!op_concrete(s->operation))
        return "Invalid operation: an ACL binding needs a concrete operation";
    if (s->permission != ACL_PERM_ALLOW && s->permission != ACL_PERM_DENY)
        return "Invalid permission type: an ACL binding is ALLOW or DENY";
    if (ks_null(s->name) || s->name.len == 0)
        return "Resource name must not be empty";
    if (s->name.len > ACL_NAME_MAX || (!ks_null(s->principal) && s->principal.len > ACL_NAME_MAX) ||
        (!ks_null(s->host) && s->host.len > ACL_NAME_MAX))
        return "Resource name, principal or host is too long";
    if (s->resource_type == ACL_RES_CLUSTER && !ks_eq(s->name, ACL_CLUSTER_NAME))
        return "The only valid name for the CLUSTER resource is " ACL_CLUSTER_NAME;
    if (!principal_ok(s->principal))
        return "Invalid principal: expected <type>:<name>, such as User:alice";
    if (ks_null(s->host) || s->host.len == 0)
        return "Host must not be empty (use * for any host)";
    return NULL;
}

const char *acl_filter_invalid(const acl_spec *f) {
    if (f->resource_type < ACL_RES_ANY || f->resource_type > ACL_RES_USER)
        return "Invalid resource type filter";
    if (f->pattern_type < ACL_PAT_ANY || f->pattern_type > ACL_PAT_PREFIXED)
        return "Invalid pattern type filter";
    if (f->operation < ACL_OP_ANY || f->operation > ACL_OP_DESCRIBE_TOKENS)
        return "Invalid operation filter";
    if (f->permission < ACL_PERM_ANY || f->permission > ACL_PERM_ALLOW)
        return "Invalid permission type filter";
    return NULL;
}

bool acl_filter_matches(const acl_spec *f, const acl_entry *e) {
    if (f->resource_type != ACL_RES_ANY && f->resource_type != e->resource_type)
        return false;
    if (f->pattern_type != ACL_PAT_ANY && f->pattern_type != ACL_PAT_MATCH &&
        f->pattern_type != e->pattern_type)
        return false;
    if (!ks_null(f->name)) {
        if (f->pattern_type == ACL_PAT_MATCH) {
            bool hit = e->pattern_type == ACL_PAT_LITERAL
                           ? ks_eq(f->name, e->name) || strcmp(e->name, ACL_WILDCARD) == 0
                           : ks_starts_with(f->name, e->name);
            if (!hit)
                return false;
        } else if (!ks_eq(f->name, e->name)) {
            return false;
        }
    }
    if (!ks_null(f->principal) && !ks_eq(f->principal, e->principal))
        return false;
    if (!ks_null(f->host) && !ks_eq(f->host, e->host))
        return false;
    if (f->operation != ACL_OP_ANY && f->operation != e->operation)
        return false;
    if (f->permission != ACL_PERM_ANY && f->permission != e->permission)
        return false;
    return true;
}

bool acl_entry_is(const acl_entry *e, const acl_spec *s) {
    return e->resource_type == s->resource_type && e->pattern_type == s->pattern_type &&
           e->operation == s->operation && e->permission == s->permission && ks_eq(s->name, e->name) &&
           ks_eq(s->principal, e->principal) && ks_eq(s->host, e->host);
}

/* ---- ordering ----------------------------------------------------------------------- */

/* Order of the index against a key (type, pattern, name); the rest of the
 * fields order entries of the same resource. */
static int key_cmp(const acl_entry *e, int8_t type, int8_t pattern, kstr name) {
    if (e->resource_type != type)
        return e->resource_type < type ? -1 : 1;
    if (e->pattern_type != pattern)
        return e->pattern_type < pattern ? -1 : 1;
    return -ks_cmp(name, e->name);
}

static int spec_cmp(const acl_entry *e, const acl_spec *s) {
    int c = key_cmp(e, s->resource_type, s->pattern_type, s->name);
    if (c == 0)
        c = -ks_cmp(s->principal, e->principal);
    if (c == 0)
        c = -ks_cmp(s->host, e->host);
    if (c == 0 && e->operation != s->operation)
        c = e->operation < s->operation ? -1 : 1;
    if (c == 0 && e->permission != s->permission)
        c = e->permission < s->permission ? -1 : 1;
    return c;
}

/* First index whose key is >= (type, pattern, name). */
static int32_t lower_bound(const acl_set *s, int8_t type, int8_t pattern, kstr name) {
    int32_t lo = 0, hi = s->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (key_cmp(s->items[mid], type, pattern, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index whose (type, pattern) is >= the given one. */
static int32_t type_bound(const acl_set *s, int8_t type, int8_t pattern) {
    int32_t lo = 0, hi = s->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const acl_entry *e = s->items[mid];
        if (e->resource_type < type || (e->resource_type == type && e->pattern_type < pattern))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int id_cmp(kuuid a, kuuid b) { return memcmp(a.b, b.b, 16); }

static int32_t id_bound(const acl_set *s, kuuid id) {
    int32_t lo = 0, hi = s->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (id_cmp(s->by_id[mid]->id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#ifdef SLUICE_DEEP_CHECKS
static void check_set(const acl_set *s) {
    for (int32_t i = 1; i < s->n; i++) {
        assert(id_cmp(s->by_id[i - 1]->id, s->by_id[i]->id) < 0);
        const acl_entry *a = s->items[i - 1], *b = s->items[i];
        acl_spec bs = {b->resource_type, b->pattern_type,      b->operation,   b->permission,
                       kstr_c(b->name),  kstr_c(b->principal), kstr_c(b->host)};
        assert(spec_cmp(a, &bs) <= 0);
    }
}
#else
static void check_set(const acl_set *s) { (void)s; }
#endif

/* ---- sets --------------------------------------------------------------------------- */

acl_set *acl_set_new(void) {
    acl_set *s = calloc(1, sizeof *s);
    if (s != NULL)
        atomic_init(&s->refs, 1);
    return s;
}

static void entry_free(acl_entry *e) {
    if (e == NULL)
        return;
    free(e->name);
    free(e->principal);
    free(e->host);
    free(e);
}

static char *dup_n(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s != NULL) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static acl_entry *entry_new(kuuid id, int8_t type, int8_t pattern, int8_t op, int8_t perm, const char *name,
                            size_t name_n, const char *principal, size_t principal_n, const char *host,
                            size_t host_n) {
    acl_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    *e = (acl_entry){
        id, type, pattern, op, perm, dup_n(name, name_n), dup_n(principal, principal_n), dup_n(host, host_n)};
    if (!e->name || !e->principal || !e->host) {
        entry_free(e);
        return NULL;
    }
    return e;
}

static bool grow(acl_set *s) {
    if (s->n < s->cap)
        return true;
    int32_t ncap = s->cap ? s->cap * 2 : 16;
    acl_entry **ni = realloc(s->items, (size_t)ncap * sizeof *ni);
    if (ni == NULL)
        return false;
    s->items = ni;
    acl_entry **nb = realloc(s->by_id, (size_t)ncap * sizeof *nb);
    if (nb == NULL)
        return false;
    s->by_id = nb;
    s->cap = ncap;
    return true;
}

static int by_id_cmp(const void *a, const void *b) {
    return id_cmp((*(acl_entry *const *)a)->id, (*(acl_entry *const *)b)->id);
}

acl_set *acl_set_copy(const acl_set *src) {
    acl_set *s = acl_set_new();
    if (s == NULL || src == NULL)
        return s;
    s->items = calloc((size_t)(src->n ? src->n : 1), sizeof *s->items);
    s->by_id = calloc((size_t)(src->n ? src->n : 1), sizeof *s->by_id);
    if (!s->items || !s->by_id) {
        acl_set_unref(s);
        return NULL;
    }
    s->cap = src->n ? src->n : 1;
    for (int32_t i = 0; i < src->n; i++) {
        const acl_entry *e = src->items[i];
        acl_entry *c =
            entry_new(e->id, e->resource_type, e->pattern_type, e->operation, e->permission, e->name,
                      strlen(e->name), e->principal, strlen(e->principal), e->host, strlen(e->host));
        if (c == NULL) {
            acl_set_unref(s);
            return NULL;
        }
        s->items[s->n++] = c;
    }
    memcpy(s->by_id, s->items, (size_t)s->n * sizeof *s->by_id);
    qsort(s->by_id, (size_t)s->n, sizeof *s->by_id, by_id_cmp);
    check_set(s);
    return s;
}

acl_set *acl_set_ref(acl_set *s) {
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void acl_set_unref(acl_set *s) {
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int32_t i = 0; i < s->n; i++)
        entry_free(s->items[i]);
    free(s->items);
    free(s->by_id);
    free(s);
}

int acl_set_add(acl_set *s, kuuid id, const acl_spec *b) {
    check_set(s);
    if (acl_binding_invalid(b) != NULL)
        return -4;
    int32_t ib = id_bound(s, id);
    if (ib < s->n && id_cmp(s->by_id[ib]->id, id) == 0)
        return -1;
    if (s->n >= ACL_BINDINGS_MAX)
        return -2;
    if (!grow(s))
        return -3;
    acl_entry *e = entry_new(id, b->resource_type, b->pattern_type, b->operation, b->permission, b->name.ptr,
                             (size_t)b->name.len, b->principal.ptr, (size_t)b->principal.len, b->host.ptr,
                             (size_t)b->host.len);
    if (e == NULL)
        return -3;
    int32_t lo = 0, hi = s->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (spec_cmp(s->items[mid], b) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(&s->items[lo + 1], &s->items[lo], (size_t)(s->n - lo) * sizeof *s->items);
    s->items[lo] = e;
    memmove(&s->by_id[ib + 1], &s->by_id[ib], (size_t)(s->n - ib) * sizeof *s->by_id);
    s->by_id[ib] = e;
    s->n++;
    check_set(s);
    return 0;
}

int acl_set_remove(acl_set *s, kuuid id) {
    check_set(s);
    int32_t ib = id_bound(s, id);
    if (ib >= s->n || id_cmp(s->by_id[ib]->id, id) != 0)
        return -1;
    acl_entry *e = s->by_id[ib];
    int32_t at = lower_bound(s, e->resource_type, e->pattern_type, kstr_c(e->name));
    while (at < s->n && s->items[at] != e)
        at++;
    assert(at < s->n);
    memmove(&s->items[at], &s->items[at + 1], (size_t)(s->n - at - 1) * sizeof *s->items);
    memmove(&s->by_id[ib], &s->by_id[ib + 1], (size_t)(s->n - ib - 1) * sizeof *s->by_id);
    s->n--;
    entry_free(e);
    check_set(s);
    return 0;
}

const acl_entry *acl_set_by_id(const acl_set *s, kuuid id) {
    if (s == NULL)
        return NULL;
    int32_t ib = id_bound(s, id);
    return ib < s->n && id_cmp(s->by_id[ib]->id, id) == 0 ? s->by_id[ib] : NULL;
}

const acl_entry *acl_set_find(const acl_set *s, const acl_spec *b) {
    if (s == NULL || ks_null(b->name))
        return NULL;
    for (int32_t i = lower_bound(s, b->resource_type, b->pattern_type, b->name);
         i < s->n && key_cmp(s->items[i], b->resource_type, b->pattern_type, b->name) == 0; i++)
        if (acl_entry_is(s->items[i], b))
            return s->items[i];
    return NULL;
}

int32_t acl_set_count(const acl_set *s) { return s ? s->n : 0; }
const acl_entry *acl_set_at(const acl_set *s, int32_t i) { return s->items[i]; }

/* ---- policy ------------------------------------------------------------------------- */

int acl_policy_init(acl_policy *p, const char *super_users, bool allow_if_no_acl, char *err, size_t errn) {
    memset(p, 0, sizeof *p);
    p->allow_if_no_acl = allow_if_no_acl;
    if (super_users == NULL)
        return 0;
    size_t cap = 1;
    for (const char *c = super_users; *c; c++)
        cap += *c == ';';
    p->super_users = calloc(cap, sizeof *p->super_users);
    if (p->super_users == NULL) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    const char *c = super_users;
    while (*c) {
        const char *end = strchr(c, ';');
        if (end == NULL)
            end = c + strlen(c);
        const char *a = c, *z = end;
        while (a < z && isspace((unsigned char)*a))
            a++;
        while (z > a && isspace((unsigned char)z[-1]))
            z--;
        if (z > a) {
            kstr k = {a, (int32_t)(z - a)};
            if (!principal_ok(k) || k.len > ACL_NAME_MAX) {
                snprintf(err, errn, "super.users: '%.*s' is not a principal of the form User:<name>", k.len,
                         k.ptr);
                acl_policy_free(p);
                return -1;
            }
            char *s = dup_n(a, (size_t)(z - a));
            if (s == NULL) {
                snprintf(err, errn, "out of memory");
                acl_policy_free(p);
                return -1;
            }
            p->super_users[p->n_super++] = s;
        }
        c = *end ? end + 1 : end;
    }
    return 0;
}

void acl_policy_free(acl_policy *p) {
    for (int32_t i = 0; i < p->n_super; i++)
        free(p->super_users[i]);
    free(p->super_users);
    p->super_users = NULL;
    p->n_super = 0;
}

bool acl_is_super(const acl_policy *p, const char *principal) {
    for (int32_t i = 0; i < p->n_super; i++)
        if (strcmp(p->super_users[i], principal) == 0)
            return true;
    return false;
}

/* ---- the decision ------------------------------------------------------------------- */

/* Whether an ALLOW of granted covers op. */
static bool implies(int8_t granted, int8_t op) {
    if (granted == op || granted == ACL_OP_ALL)
        return true;
    if (op == ACL_OP_DESCRIBE)
        return granted == ACL_OP_READ || granted == ACL_OP_WRITE || granted == ACL_OP_DELETE ||
               granted == ACL_OP_ALTER;
    if (op == ACL_OP_DESCRIBE_CONFIGS)
        return granted == ACL_OP_ALTER_CONFIGS;
    return false;
}

typedef struct verdict {
    bool any_acl; /* some binding is on the resource (for anyone) */
    bool allowed;
    bool denied;
} verdict;

static void consider(const acl_entry *e, const char *principal, const char *host, int8_t op, verdict *v) {
    v->any_acl = true;
    if (strcmp(e->principal, principal) != 0 && strcmp(e->principal, ACL_ANY_PRINCIPAL) != 0)
        return;
    if (strcmp(e->host, host) != 0 && strcmp(e->host, ACL_WILDCARD) != 0)
        return;
    if (e->permission == ACL_PERM_DENY) {
        if (e->operation == op || e->operation == ACL_OP_ALL)
            v->denied = true;
    } else if (implies(e->operation, op)) {
        v->allowed = true;
    }
}

static void scan_key(const acl_set *s, int8_t type, int8_t pattern, kstr name, const char *principal,
                     const char *host, int8_t op, verdict *v) {
    for (int32_t i = lower_bound(s, type, pattern, name);
         i < s->n && !v->denied && key_cmp(s->items[i], type, pattern, name) == 0; i++)
        consider(s->items[i], principal, host, op, v);
}

bool acl_authorize(const acl_set *s, const acl_policy *p, const char *principal, const char *host, int8_t op,
                   int8_t resource_type, kstr name) {
    if (acl_is_super(p, principal))
        return true;
    verdict v = {false, false, false};
    if (s != NULL && s->n > 0 && !ks_null(name)) {
        scan_key(s, resource_type, ACL_PAT_LITERAL, name, principal, host, op, &v);
        if (!ks_eq(name, ACL_WILDCARD))
            scan_key(s, resource_type, ACL_PAT_LITERAL, kstr_c(ACL_WILDCARD), principal, host, op, &v);
        int32_t first = type_bound(s, resource_type, ACL_PAT_PREFIXED);
        bool has_prefixed = first < s->n && s->items[first]->resource_type == resource_type &&
                            s->items[first]->pattern_type == ACL_PAT_PREFIXED;
        for (int32_t k = 1; has_prefixed && k <= name.len && !v.denied; k++)
            scan_key(s, resource_type, ACL_PAT_PREFIXED, (kstr){name.ptr, k}, principal, host, op, &v);
    }
    if (v.denied)
        return false;
    if (v.allowed)
        return true;
    return !v.any_acl && p->allow_if_no_acl;
}

bool acl_any_allowed(const acl_set *s, const acl_policy *p, const char *principal, const char *host,
                     int8_t op, int8_t resource_type) {
    if (acl_is_super(p, principal))
        return true;
    bool any = false;
    for (int32_t i = 0; s != NULL && i < s->n; i++) {
        const acl_entry *e = s->items[i];
        if (e->resource_type != resource_type)
            continue;
        any = true;
        verdict v = {false, false, false};
        consider(e, principal, host, op, &v);
        if (v.allowed && !v.denied &&
            acl_authorize(s, p, principal, host, op, resource_type, kstr_c(e->name)))
            return true;
    }
    return !any && p->allow_if_no_acl;
}

int32_t acl_authorized_ops(const acl_set *s, const acl_policy *p, const char *principal, const char *host,
                           int8_t resource_type, kstr name) {
    static const int8_t topic_ops[] = {
        ACL_OP_READ,  ACL_OP_WRITE,    ACL_OP_CREATE,           ACL_OP_DELETE,
        ACL_OP_ALTER, ACL_OP_DESCRIBE, ACL_OP_DESCRIBE_CONFIGS, ACL_OP_ALTER_CONFIGS};
    static const int8_t group_ops[] = {ACL_OP_READ, ACL_OP_DESCRIBE, ACL_OP_DELETE};
    static const int8_t cluster_ops[] = {
        ACL_OP_CREATE,           ACL_OP_ALTER,         ACL_OP_DESCRIBE,        ACL_OP_CLUSTER_ACTION,
        ACL_OP_DESCRIBE_CONFIGS, ACL_OP_ALTER_CONFIGS, ACL_OP_IDEMPOTENT_WRITE};
    const int8_t *ops = topic_ops;
    size_t n = sizeof topic_ops;
    if (resource_type == ACL_RES_GROUP) {
        ops = group_ops;
        n = sizeof group_ops;
    } else if (resource_type == ACL_RES_CLUSTER) {
        ops = cluster_ops;
        n = sizeof cluster_ops;
    }
    int32_t bits = 0;
    for (size_t i = 0; i < n; i++)
        if (acl_authorize(s, p, principal, host, ops[i], resource_type, name))
            bits |= (int32_t)1 << ops[i];
    return bits;
}

/* ---- names -------------------------------------------------------------------------- */

static const char *const res_names[] = {
    "UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"};
static const char *const pat_names[] = {"UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"};
static const char *const op_names[] = {"UNKNOWN",
                                       "ANY",
                                       "ALL",
                                       "READ",
                                       "WRITE",
                                       "CREATE",
                                       "DELETE",
                                       "ALTER",
                                       "DESCRIBE",
                                       "CLUSTER_ACTION",
                                       "DESCRIBE_CONFIGS",
                                       "ALTER_CONFIGS",
                                       "IDEMPOTENT_WRITE",
                                       "CREATE_TOKENS",
                                       "DESCRIBE_TOKENS"};
static const char *const perm_names[] = {"UNKNOWN", "ANY", "DENY", "ALLOW"};

#define NAME_OF(tab, v) ((v) >= 0 && (size_t)(v) < sizeof tab / sizeof tab[0] ? tab[v] : "UNKNOWN")

const char *acl_resource_type_name(int8_t t) { return NAME_OF(res_names, t); }
const char *acl_pattern_type_name(int8_t t) { return NAME_OF(pat_names, t); }
const char *acl_operation_name(int8_t op) { return NAME_OF(op_names, op); }
const char *acl_permission_name(int8_t p) { return NAME_OF(perm_names, p); }

/* Case-insensitive, with '-' and '_' ignored (kafka-acls accepts
 * IdempotentWrite and idempotent_write alike). */
static bool name_eq(const char *a, const char *b) {
    for (;;) {
        while (*a == '_' || *a == '-')
            a++;
        while (*b == '_' || *b == '-')
            b++;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        if (toupper((unsigned char)*a) != toupper((unsigned char)*b))
            return false;
        a++;
        b++;
    }
}

static int parse_in(const char *const *tab, size_t n, const char *s) {
    for (size_t i = 1; i < n; i++)
        if (name_eq(s, tab[i]))
            return (int)i;
    return -1;
}

int acl_resource_type_parse(const char *s) {
    return parse_in(res_names, sizeof res_names / sizeof *res_names, s);
}
int acl_pattern_type_parse(const char *s) {
    return parse_in(pat_names, sizeof pat_names / sizeof *pat_names, s);
}
int acl_operation_parse(const char *s) { return parse_in(op_names, sizeof op_names / sizeof *op_names, s); }
