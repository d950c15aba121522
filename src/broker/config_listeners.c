/*
 * config_listeners.c - listeners: the NAME://host:port syntax of listeners
 * and advertised.listeners, the NAME:PROTOCOL pairs of
 * listener.security.protocol.map, and their resolution when a configuration
 * is finished (which listeners are for controllers, what is advertised to
 * clients, and the checks that involve several keys).
 *
 * Every protocol is served to clients, but a controller or inter-broker
 * listener must be PLAINTEXT (the broker's own client connections speak
 * plaintext only): anything else is an error that says so. A wildcard or empty advertised host is
 * replaced by this machine's host name (gethostname), since no client can connect to it.
 */
#include "broker/config.h"

#include <assert.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "broker/config_internal.h"
#include "config/text.h"

static const char *const protocol_names[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", NULL};

const char *config_protocol_name(config_protocol p) {
    return (unsigned)p < 4 ? protocol_names[p] : "UNKNOWN";
}

static int protocol_from(config_span s, config_protocol *out) {
    for (int i = 0; protocol_names[i] != NULL; i++) {
        if (config_span_eq(s, protocol_names[i], true)) {
            *out = (config_protocol)i;
            return 0;
        }
    }
    return -1;
}

static bool valid_listener_name(config_span s) {
    if (s.n == 0 || s.n >= CONFIG_LISTENER_NAME_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!isalnum((unsigned char)s.p[i]) && s.p[i] != '_' && s.p[i] != '-')
            return false;
    return true;
}

/* Splits a map entry "NAME:PROTOCOL" at its first colon into trimmed
 * halves; false when there is no colon. */
static bool split_pair(config_span item, config_span *k, config_span *v) {
    const char *colon = memchr(item.p, ':', item.n);
    if (colon == NULL)
        return false;
    config_trim(item.p, (size_t)(colon - item.p), &k->p, &k->n);
    config_trim(colon + 1, (size_t)(item.p + item.n - colon - 1), &v->p, &v->n);
    return true;
}

/* Looks name up in a NAME:PROTO,... map. Returns 0 on a hit. */
static int map_lookup(const char *map, const char *name, config_protocol *out, char *why, size_t whyn) {
    config_span items[CONFIG_LIST_MAX];
    int n = config_split_list(map, items, CONFIG_LIST_MAX, why, whyn);
    for (int i = 0; i < n; i++) {
        config_span k, v;
        if (!split_pair(items[i], &k, &v))
            continue;
        if (config_span_eq(k, name, true))
            return protocol_from(v, out) == 0 ? 0 : -1;
    }
    return -1;
}

int config_check_protocol_map(const char *v, char *why, size_t whyn) {
    config_span items[CONFIG_LIST_MAX];
    int n = config_split_list(v, items, CONFIG_LIST_MAX, why, whyn);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        config_span k, pv;
        config_protocol p;
        int shown = (int)(items[i].n > 64 ? 64 : items[i].n);
        if (!split_pair(items[i], &k, &pv)) {
            config_fmt(why, whyn, "entry '%.*s' is not of the form NAME:PROTOCOL", shown, items[i].p);
            return -1;
        }
        if (!valid_listener_name(k) || protocol_from(pv, &p) != 0) {
            config_fmt(why, whyn,
                       "entry '%.*s': expected NAME:PROTOCOL with PROTOCOL one of PLAINTEXT, SSL, "
                       "SASL_PLAINTEXT, SASL_SSL",
                       shown, items[i].p);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            config_span k2, v2;
            bool pair = split_pair(items[j], &k2, &v2); /* item j passed the checks above */
            assert(pair);
            (void)pair;
            if (k2.n == k.n && strncasecmp(k2.p, k.p, k.n) == 0) {
                config_fmt(why, whyn, "listener name '%.*s' is mapped twice", (int)k.n, k.p);
                return -1;
            }
        }
    }
    return 0;
}

/* 1 to 5 decimal digits, at most 65535; -1 otherwise. */
static int parse_port(const char *p, size_t n) {
    unsigned port = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (!isdigit((unsigned char)p[k]))
            return -1;
        port = port * 10 + (unsigned)(p[k] - '0');
    }
    return port > 65535 ? -1 : (int)port;
}

int config_parse_listeners(const char *text, const char *map, config_listener *out, int max, int *n,
                           char *why, size_t whyn) {
    config_span items[CONFIG_LIST_MAX];
    int count;
    *n = 0;
    count = config_split_list(text, items, CONFIG_LIST_MAX, why, whyn);
    if (count < 0)
        return -1;
    if (count == 0) {
        config_fmt(why, whyn, "at least one listener is required");
        return -1;
    }
    if (count > max) {
        config_fmt(why, whyn, "more than %d listeners", max);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        config_span it = items[i];
        config_listener *l = &out[i];
        int shown = (int)(it.n > 96 ? 96 : it.n);
        const char *sep = NULL;
        for (size_t k = 0; k + 3 <= it.n; k++) {
            if (memcmp(it.p + k, "://", 3) == 0) {
                sep = it.p + k;
                break;
            }
        }
        memset(l, 0, sizeof *l);
        if (sep == NULL) {
            config_fmt(why, whyn, "'%.*s' is not of the form NAME://host:port", shown, it.p);
            return -1;
        }
        config_span name = {it.p, (size_t)(sep - it.p)};
        if (!valid_listener_name(name)) {
            config_fmt(why, whyn, "'%.*s': listener name must be letters, digits, '_' or '-'", shown, it.p);
            return -1;
        }
        for (size_t k = 0; k < name.n; k++)
            l->name[k] = (char)toupper((unsigned char)name.p[k]);
        const char *hp = sep + 3, *end = it.p + it.n, *colon;
        config_span host;
        if (hp < end && *hp == '[') {
            const char *rb = memchr(hp, ']', (size_t)(end - hp));
            if (rb == NULL || rb + 1 >= end || rb[1] != ':') {
                config_fmt(why, whyn, "'%.*s': expected [ipv6-address]:port", shown, it.p);
                return -1;
            }
            host = (config_span){hp + 1, (size_t)(rb - hp - 1)};
            colon = rb + 1;
        } else {
            colon = NULL;
            for (const char *q = hp; q < end; q++)
                if (*q == ':')
                    colon = q;
            if (colon == NULL) {
                config_fmt(why, whyn, "'%.*s': missing :port", shown, it.p);
                return -1;
            }
            host = (config_span){hp, (size_t)(colon - hp)};
            if (memchr(host.p, ':', host.n) != NULL) {
                config_fmt(why, whyn, "'%.*s': IPv6 addresses must be written in brackets", shown, it.p);
                return -1;
            }
        }
        if (host.n >= CONFIG_HOST_MAX) {
            config_fmt(why, whyn, "'%.*s': host name too long", shown, it.p);
            return -1;
        }
        for (size_t k = 0; k < host.n; k++) {
            unsigned char c = (unsigned char)host.p[k];
            if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '%') {
                config_fmt(why, whyn, "'%.*s': invalid character in host", shown, it.p);
                return -1;
            }
        }
        memcpy(l->host, host.p, host.n);
        int port = parse_port(colon + 1, (size_t)(end - colon - 1));
        if (port < 0) {
            config_fmt(why, whyn, "'%.*s': port must be a number from 0 to 65535", shown, it.p);
            return -1;
        }
        l->port = (uint16_t)port;
        for (int j = 0; j < i; j++) {
            if (strcmp(out[j].name, l->name) == 0) {
                config_fmt(why, whyn, "listener name %s is used twice", l->name);
                return -1;
            }
        }
        l->protocol = CONFIG_PROTOCOL_PLAINTEXT;
        if (map != NULL) {
            if (map_lookup(map, l->name, &l->protocol, why, whyn) != 0) {
                config_fmt(why, whyn, "listener name %s has no entry in listener.security.protocol.map",
                           l->name);
                return -1;
            }
        }
    }
    *n = count;
    return 0;
}

int config_check_listeners(const char *v, char *why, size_t whyn) {
    config_listener tmp[CONFIG_LISTENERS_MAX];
    int n;
    return config_parse_listeners(v, NULL, tmp, CONFIG_LISTENERS_MAX, &n, why, whyn);
}

/* Marks the listeners named in controller.listener.names. */
static void mark_controllers(const config_list *names, config_listener *ls, int n) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < names->n; k++)
            if (strcasecmp(names->items[k], ls[i].name) == 0)
                ls[i].controller = true;
}

static bool wildcard_host(const char *h) {
    return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

int config_resolve_listeners(broker_config *c, char err[CONFIG_ERR_MAX]) {
    char why[256];
    const char *map = c->listener_security_protocol_map;
    const char *adv = config_text_of(c, "advertised.listeners");

    if (config_parse_listeners(config_text_of(c, "listeners"), map, c->listeners, CONFIG_LISTENERS_MAX,
                               &c->n_listeners, why, sizeof why) != 0) {
        config_fmt(err, CONFIG_ERR_MAX, "invalid listeners '%.128s': %s", config_text_of(c, "listeners"),
                   why);
        return -1;
    }
    mark_controllers(&c->controller_listener_names, c->listeners, c->n_listeners);
    for (int i = 0; i < c->n_listeners; i++) {
        const config_listener *l = &c->listeners[i];
        for (int j = 0; j < i && l->port != 0; j++) {
            if (c->listeners[j].port == l->port) {
                config_fmt(err, CONFIG_ERR_MAX, "invalid listeners: %s and %s both use port %u",
                           c->listeners[j].name, l->name, l->port);
                return -1;
            }
        }
    }

    if (adv != NULL) {
        if (config_parse_listeners(adv, map, c->advertised, CONFIG_LISTENERS_MAX, &c->n_advertised, why,
                                   sizeof why) != 0) {
            config_fmt(err, CONFIG_ERR_MAX, "invalid advertised.listeners '%.128s': %s", adv, why);
            return -1;
        }
        for (int i = 0; i < c->n_advertised; i++) {
            const char *h = c->advertised[i].host;
            if (h[0] != '\0' && wildcard_host(h)) {
                config_fmt(
                    err, CONFIG_ERR_MAX,
                    "invalid advertised.listeners: %s advertises the wildcard address %s, which clients "
                    "cannot connect to",
                    c->advertised[i].name, h);
                return -1;
            }
        }
        /* Kafka 4.0 files advertise the controller listener too; mark it so
         * client metadata can leave it out. */
        mark_controllers(&c->controller_listener_names, c->advertised, c->n_advertised);
    } else {
        c->n_advertised = 0;
        for (int i = 0; i < c->n_listeners; i++)
            if (!c->listeners[i].controller)
                c->advertised[c->n_advertised++] = c->listeners[i];
    }
    /* A wildcard bind address is no use to a client: advertise our name. */
    for (int i = 0; i < c->n_advertised; i++) {
        config_listener *l = &c->advertised[i];
        if (wildcard_host(l->host)) {
            if (gethostname(l->host, sizeof l->host) != 0 || l->host[0] == '\0')
                config_fmt(l->host, sizeof l->host, "localhost");
            l->host[sizeof l->host - 1] = '\0';
        }
    }
    if (c->process_roles & CONFIG_ROLE_BROKER) {
        bool client_listener = false;
        for (int i = 0; i < c->n_listeners; i++)
            client_listener = client_listener || !c->listeners[i].controller;
        if (!client_listener) {
            config_fmt(
                err, CONFIG_ERR_MAX,
                "listeners: every listener is a controller listener, but process.roles includes broker and "
                "clients need one");
            return -1;
        }
    }
    for (int i = 0; i < c->n_listeners; i++) {
        const config_listener *l = &c->listeners[i];
        bool inter =
            c->inter_broker_listener_name != NULL && strcasecmp(l->name, c->inter_broker_listener_name) == 0;
        if (l->protocol != CONFIG_PROTOCOL_PLAINTEXT && (l->controller || inter)) {
            config_fmt(
                err, CONFIG_ERR_MAX,
                "listener %s uses %s, but as the %s listener it must be PLAINTEXT for now (brokers and "
                "controllers connect to each other in plaintext)",
                l->name, config_protocol_name(l->protocol), l->controller ? "controller" : "inter-broker");
            return -1;
        }
    }
    if (c->inter_broker_listener_name != NULL) {
        bool found = false;
        for (int i = 0; i < c->n_listeners; i++)
            found = found || strcasecmp(c->listeners[i].name, c->inter_broker_listener_name) == 0;
        if (!found) {
            config_fmt(err, CONFIG_ERR_MAX,
                       "inter.broker.listener.name '%.64s' does not name one of listeners",
                       c->inter_broker_listener_name);
            return -1;
        }
    }
    return 0;
}
