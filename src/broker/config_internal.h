/*
 * config_internal.h - what the broker's configuration files
 * (src/broker/config_*.c) share with each other and nobody else: the row
 * checks the broker table names, the index of a key in the table (which is
 * also its slot in broker_config), the synonym chain of a row, and the
 * steps of config_finish() that live beside their concept.
 */
#ifndef SLUICE_BROKER_CONFIG_INTERNAL_H
#define SLUICE_BROKER_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/config.h"

#define CONFIG_HOUR_MS   3600000
#define CONFIG_MINUTE_MS 60000

/* config_keys.c: the row's index in the broker table (= its slot in
 * broker_config.slot_), or -1 for an unknown name. */
int config_broker_index(const char *name);

/* config_keys.c: the broker keys that share d's setting (its synonyms, d
 * included), highest rank first. Returns the count (<= max). */
size_t config_broker_chain(const config_def *d, const config_def **out, size_t max);

/* config_load.c: whether a key was set explicitly, and its current text
 * (the default if not set; NULL for null). name must be a broker key. */
bool config_is_set(const broker_config *c, const char *name);
const char *config_text_of(const broker_config *c, const char *name);

/* config_listeners.c: the checks of the listeners and protocol map rows. */
int config_check_listeners(const char *v, char *why, size_t whyn);
int config_check_protocol_map(const char *v, char *why, size_t whyn);

/* config_listeners.c: the part of config_finish() for listeners: parses
 * listeners and advertised.listeners with the protocol map, marks
 * controller listeners, replaces wildcard advertised hosts with this host's
 * name, and checks what involves several keys. 0, or -1 with err filled. */
int config_resolve_listeners(broker_config *c, char err[CONFIG_ERR_MAX]);

#endif
