/*
 * fuzz_config.c - libFuzzer target for the properties parser and the broker
 * configuration built from it: arbitrary bytes as a server.properties file
 * must never crash, over-read or leak, whatever they contain. The same bytes,
 * split at the first '=', are also fed to topic config validation.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "broker/config.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    broker_config c;
    char err[CONFIG_ERR_MAX];
    char kv[512];

    log_set_level(LOG_LEVEL_ERROR); /* unknown keys would flood stderr with warnings */
    config_init(&c);
    if (config_load_text(&c, "fuzz", (const char *)data, size, err) == 0 && config_finish(&c, err) == 0) {
        topic_config tc;
        topic_config_init(&tc, &c);
    }
    config_free(&c);

    size_t n = size < sizeof kv - 1 ? size : sizeof kv - 1;
    memcpy(kv, data, n);
    kv[n] = '\0';
    char *eq = strchr(kv, '=');
    if (eq != NULL) {
        char msg[256];
        *eq = '\0';
        topic_config_validate(kv, eq + 1, msg, sizeof msg);
    }
    return 0;
}
