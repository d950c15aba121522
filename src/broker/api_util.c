/*
 * api_util.c - helpers for the admin API handlers. See api_util.h.
 */
#include "broker/api_util.h"
#include "broker/meta.h"

#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

char *api_cstr(breq *r, kstr s) {
    if (s.len < 0)
        return NULL;
    char *out = breq_alloc(r, (size_t)s.len + 1);
    if (out == NULL)
        return NULL;
    if (s.len > 0)
        memcpy(out, s.ptr, (size_t)s.len);
    out[s.len] = '\0';
    return out;
}

kstr api_kstr(breq *r, const char *s) {
    if (s == NULL)
        return KSTR_NULL;
    return api_kstr_dup(r, kstr_c(s));
}

kstr api_kstr_dup(breq *r, kstr s) {
    if (s.len < 0)
        return KSTR_NULL;
    if (s.len == 0)
        return (kstr){"", 0};
    char *p = breq_alloc(r, (size_t)s.len);
    if (p == NULL)
        return (kstr){"", 0};
    memcpy(p, s.ptr, (size_t)s.len);
    return (kstr){p, s.len};
}

typedef struct named {
    kstr name;
    int32_t index;
} named;

static int cmp_named(const void *a, const void *b) {
    const named *x = a, *y = b;
    int32_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n > 0 ? memcmp(x->name.ptr, y->name.ptr, (size_t)n) : 0;
    return c != 0 ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

bool *api_dup_flags(breq *r, const void *base, size_t stride, int32_t n) {
    if (n <= 0)
        return NULL;
    bool *flags = breq_calloc(r, (size_t)n, sizeof *flags);
    named *v = breq_calloc(r, (size_t)n, sizeof *v);
    if (flags == NULL || v == NULL)
        return NULL;
    for (int32_t i = 0; i < n; i++) {
        memcpy(&v[i].name, (const char *)base + (size_t)i * stride, sizeof(kstr));
        v[i].index = i;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_named);
    for (int32_t i = 1; i < n; i++)
        if (cmp_named(&v[i - 1], &v[i]) == 0)
            flags[v[i - 1].index] = flags[v[i].index] = true;
    return flags;
}

void api_endpoint(const breq *r, const char **host, int32_t *port) {
    const broker_config *c = r->b->cfg;
    const config_listener *l = NULL;
    for (int i = 0; i < c->n_advertised && l == NULL; i++)
        if (!c->advertised[i].controller)
            l = &c->advertised[i];
    /* config_finish guarantees a client listener; fall back defensively. */
    *host = l ? l->host : "localhost";
    *port = l && l->port != 0 ? l->port : (int32_t)broker_port(r->b);
}

int32_t api_brokers(breq *r, const md_image *img, api_broker **out) {
    broker *b = r->b;
    int32_t n = bmeta_is_quorum_member(b->meta) ? md_image_broker_count(img) : 0;
    api_broker *v = breq_calloc(r, (size_t)(n + 1), sizeof *v);
    if (v == NULL)
        return -1;
    const char *host;
    int32_t port;
    api_endpoint(r, &host, &port);
    int32_t k = 0;
    v[k++] = (api_broker){b->cfg->node_id, kstr_c(host), port, api_rack(r)};
    for (int32_t i = 0; i < n; i++) {
        const md_broker *mb = md_image_broker_at(img, i);
        if (mb->id == b->cfg->node_id || mb->fenced || mb->n_endpoints == 0)
            continue;
        /* copies: the image may be released before the answer is encoded */
        v[k++] = (api_broker){mb->id, api_kstr(r, mb->endpoints[0].host), mb->endpoints[0].port,
                              mb->rack ? api_kstr(r, mb->rack) : KSTR_NULL};
    }
    *out = v;
    return k;
}

int32_t api_controller_id(const breq *r) {
    int32_t id;
    char host[256];
    uint16_t port;
    bmeta *m = r->b->meta;
    if (!bmeta_is_quorum_member(m))
        return r->b->cfg->node_id;
    if (!bmeta_controller_address(m, &id, host, sizeof host, &port))
        return bmeta_is_active_controller(m) ? r->b->cfg->node_id : -1;
    /* A controller-only node is no broker clients can reach: name this one
     * instead (as Kafka does), which forwards their admin requests. */
    md_image *img = bmeta_image(m);
    const md_broker *mb = md_image_broker(img, id);
    bool reachable = mb != NULL && !mb->fenced;
    md_image_unref(img);
    return reachable ? id : r->b->cfg->node_id;
}

kstr api_rack(const breq *r) {
    const char *rack = r->b->cfg->broker_rack;
    return rack ? kstr_c(rack) : KSTR_NULL;
}

void api_uuid_text(kuuid id, char buf[23]) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int o = 0;
    /* 16 bytes = five 3-byte groups and one byte left over (2 characters). */
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)id.b[i] << 16 | (uint32_t)id.b[i + 1] << 8 | id.b[i + 2];
        buf[o++] = alphabet[(v >> 18) & 63];
        buf[o++] = alphabet[(v >> 12) & 63];
        buf[o++] = alphabet[(v >> 6) & 63];
        buf[o++] = alphabet[v & 63];
    }
    uint32_t last = id.b[15];
    buf[o++] = alphabet[(last >> 2) & 63];
    buf[o++] = alphabet[(last << 4) & 63];
    buf[o] = '\0';
}
