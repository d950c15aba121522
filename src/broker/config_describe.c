/*
 * config_describe.c - the configuration as DescribeConfigs reports it: one
 * entry per key with its current value, where that value came from
 * (config_source), its type and its default; and the synonyms of a key in
 * precedence order.
 *
 * Sources: a broker key is STATIC_BROKER_CONFIG when a file, the
 * environment or an override set it, else DEFAULT_CONFIG (no dynamic broker
 * configuration yet, so every broker key is read-only). A topic key is
 * DYNAMIC_TOPIC_CONFIG when the topic overrides it, else its broker
 * synonym's source, with the broker's value in the topic key's unit.
 * Sensitive values are never given out.
 */
#include "broker/config.h"

#include <assert.h>
#include <string.h>

#include "broker/config_internal.h"

int config_broker_entry(const broker_config *c, const char *name, config_entry *out) {
    size_t n_broker;
    int i = config_broker_index(name);
    if (i < 0)
        return -1;
    const config_def *d = &config_broker_defs(&n_broker)[i];
    out->name = d->name;
    out->value = c->slot_[i].text ? c->slot_[i].text : d->dflt;
    out->dflt = d->dflt;
    out->source = c->slot_[i].text ? CONFIG_SOURCE_STATIC_BROKER_CONFIG : CONFIG_SOURCE_DEFAULT_CONFIG;
    out->type = config_def_kafka_type(d);
    out->read_only = true;
    out->sensitive = (d->flags & CONFIG_F_SENSITIVE) != 0;
    if (out->sensitive)
        out->value = NULL;
    out->def = d;
    return 0;
}

void config_describe_broker(const broker_config *c, config_visit_fn fn, void *ctx) {
    size_t n_broker;
    const config_def *broker_defs = config_broker_defs(&n_broker);
    for (size_t i = 0; i < n_broker; i++) {
        config_entry e;
        int rc = config_broker_entry(c, broker_defs[i].name, &e);
        assert(rc == 0);
        (void)rc;
        if (fn(ctx, &e) != 0)
            return;
    }
}

size_t config_synonyms(const char *name, bool topic, const config_def **out, size_t max) {
    if (max == 0)
        return 0;
    if (!topic) {
        const config_def *d = config_find_broker(name);
        return d ? config_broker_chain(d, out, max) : 0;
    }
    const config_def *td = config_find_topic(name);
    if (td == NULL)
        return 0;
    out[0] = td;
    return 1 + config_broker_chain(config_topic_broker_synonym(td), out + 1, max - 1);
}

void config_describe_topic(const broker_config *bc, const char *const *keys, const char *const *values,
                           size_t n, config_visit_fn fn, void *ctx) {
    size_t n_topic, n_broker;
    const config_def *topic_defs = config_topic_defs(&n_topic);
    const config_def *broker_defs = config_broker_defs(&n_broker);
    for (size_t i = 0; i < n_topic; i++) {
        const config_def *td = &topic_defs[i];
        const config_def *chain[8];
        char buf[128];
        config_entry e = {.name = td->name, .dflt = td->dflt, .type = config_def_kafka_type(td), .def = td};
        const char *ov = NULL;
        for (size_t k = 0; k < n; k++)
            if (keys[k] != NULL && values[k] != NULL && strcmp(keys[k], td->name) == 0)
                ov = values[k]; /* the last one wins, as topic_config_overlay applies them */
        if (ov != NULL) {
            e.value = ov;
            e.source = CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
        } else {
            const config_def *bd = config_topic_broker_synonym(td);
            size_t cn = config_broker_chain(bd, chain, 8);
            e.source = CONFIG_SOURCE_DEFAULT_CONFIG;
            for (size_t k = 0; k < cn; k++)
                if (bc->slot_[chain[k] - broker_defs].text != NULL) /* index = slot */
                    e.source = CONFIG_SOURCE_STATIC_BROKER_CONFIG;
            config_field_format(bc, bd, buf, sizeof buf);
            e.value = buf;
        }
        if (fn(ctx, &e) != 0)
            return;
    }
}
