/*
 * config/schema.h - the vocabulary of configuration keys: one row
 * (config_def) per key says its name, value type, default, bounds, allowed
 * values, extra check, where its typed value lives in its owner's struct,
 * its flags and a one-line doc. Two tables are written in it: the broker
 * keys (src/broker/config_keys.c, loaded by the broker from its file and
 * flags) and the topic keys (config/topic_keys.c, see topic_config.h).
 * Everything else is driven by the rows: validation, the typed fields,
 * the types DescribeConfigs reports and docs/configuration.md.
 *
 * This header also owns the conversions between a row's text and its typed
 * field, generic over a row (config/value.c): a value is trimmed, checked
 * against the row's type, range, allowed values and check, then stored.
 * Errors say what is allowed ("expected an integer from 1 to 17").
 *
 * Layer: src/config sits below the broker and the controller and above
 * storage. It includes storage/log.h (the limits the rows share with the
 * partition logs) and core only, never broker/, so whoever validates topic
 * configuration (the controller, the tools) can do so without the broker's
 * loading code. Nothing here keeps state: the tables are const.
 */
#ifndef SLUICE_CONFIG_SCHEMA_H
#define SLUICE_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

/* ---- limits --------------------------------------------------------------- */

#define CONFIG_VALUE_MAX 4096 /* bytes in one value */
#define CONFIG_LIST_MAX  32   /* items in one list value */
#define CONFIG_ERR_MAX   512  /* size of error message buffers */

/* Kafka's INVALID_CONFIG error code, returned by topic config validation. */
#define CONFIG_KAFKA_INVALID_CONFIG 40

/* ---- value types ---------------------------------------------------------- */

typedef enum config_type {
    CONFIG_INT,      /* int32_t field */
    CONFIG_LONG,     /* int64_t field */
    CONFIG_BOOL,     /* bool field; "true"/"false", any case */
    CONFIG_DOUBLE,   /* double field */
    CONFIG_STRING,   /* const char * field (NULL when the value is null) */
    CONFIG_ENUM,     /* int field: index into allowed[] */
    CONFIG_LIST,     /* config_list field, or unsigned bitmask of allowed[] if allowed is set */
    CONFIG_DURATION, /* int64_t field in milliseconds; the key's unit is unit_ms */
} config_type;

/* DescribeConfigs ConfigSource codes (Kafka's numbering). */
typedef enum config_source {
    CONFIG_SOURCE_UNKNOWN = 0,
    CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG = 1,
    CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG = 2,
    CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG = 3,
    CONFIG_SOURCE_STATIC_BROKER_CONFIG = 4,
    CONFIG_SOURCE_DEFAULT_CONFIG = 5,
    CONFIG_SOURCE_DYNAMIC_BROKER_LOGGER_CONFIG = 6,
} config_source;

/* DescribeConfigs ConfigType codes (Kafka's numbering, v3+). */
typedef enum config_kafka_type {
    CONFIG_KTYPE_UNKNOWN = 0,
    CONFIG_KTYPE_BOOLEAN = 1,
    CONFIG_KTYPE_STRING = 2,
    CONFIG_KTYPE_INT = 3,
    CONFIG_KTYPE_SHORT = 4,
    CONFIG_KTYPE_LONG = 5,
    CONFIG_KTYPE_DOUBLE = 6,
    CONFIG_KTYPE_LIST = 7,
} config_kafka_type;

/* Row flags. */
#define CONFIG_F_ACTIVE    0x01u /* the broker acts on this key (else: parsed and validated only) */
#define CONFIG_F_SHORT     0x02u /* reported to clients as SHORT (replication factors) */
#define CONFIG_F_ICASE     0x04u /* enum values match case-insensitively */
#define CONFIG_F_NULLABLE  0x08u /* "null"/unset is a meaningful value */
#define CONFIG_F_SENSITIVE 0x10u /* never shown in DescribeConfigs */
#define CONFIG_F_SLUICE    0x20u /* Sluice's own key (Kafka has none) */
#define CONFIG_F_DEVIATES  0x40u /* Sluice's default differs from Kafka's on purpose (see doc) */

#define CONFIG_NO_FIELD ((size_t)-1)

/* One table row. */
typedef struct config_def {
    const char *name;
    config_type type;
    const char *dflt;           /* default as a user would write it; NULL = null */
    int64_t min, max;           /* inclusive bounds for INT, LONG, DOUBLE, DURATION (key's unit) */
    const char *const *allowed; /* ENUM and LIST: NULL-terminated allowed values */
    int64_t unit_ms;            /* DURATION: milliseconds per unit of this key */
    int rank;                   /* among keys sharing a field: the highest explicitly set wins */
    size_t field;               /* offsetof into the owner's struct, or CONFIG_NO_FIELD */
    /* Extra check beyond type and range: returns 0, or -1 with why filled. */
    int (*check)(const char *value, char *why, size_t whyn);
    /* For the docs' "Valid values" column when check narrows or shapes what
     * type and range say ("-1, or 1 to 9"); NULL: derived from the row. */
    const char *valid;
    unsigned flags;
    const char *section; /* non-NULL on the first row of a docs section: its title */
    const char *doc;     /* one line, for docs and DescribeConfigs documentation */
} config_def;

/* A list value; items live in the owning config's arena. */
typedef struct config_list {
    int n;
    const char *items[CONFIG_LIST_MAX];
} config_list;

/* ---- values shared by broker and topic keys ---------------------------------- */

/* Compression codes match the record batch attribute bits 0-2; PRODUCER
 * means "keep what the producer sent". */
typedef enum config_compression {
    CONFIG_COMPRESSION_UNCOMPRESSED = 0,
    CONFIG_COMPRESSION_GZIP = 1,
    CONFIG_COMPRESSION_SNAPPY = 2,
    CONFIG_COMPRESSION_LZ4 = 3,
    CONFIG_COMPRESSION_ZSTD = 4,
    CONFIG_COMPRESSION_PRODUCER = 5,
} config_compression;

typedef enum config_timestamp_type {
    CONFIG_TIMESTAMP_CREATE_TIME = 0,
    CONFIG_TIMESTAMP_LOG_APPEND_TIME = 1,
} config_timestamp_type;

/* Bits of cleanup.policy / log.cleanup.policy. */
#define CONFIG_CLEANUP_DELETE  0x1u
#define CONFIG_CLEANUP_COMPACT 0x2u

/* Allowed values, NULL-terminated, in the order of the enums and bits above. */
extern const char *const config_bool_values[];
extern const char *const config_cleanup_values[];
extern const char *const config_timestamp_values[];
extern const char *const config_compression_values[];

/* The check of compression.gzip.level (both tables): 0 is not a level. */
int config_check_gzip_level(const char *v, char *why, size_t whyn);

/* ---- a row's values (config/value.c) -------------------------------------------- */

/* The type a client sees in DescribeConfigs. */
config_kafka_type config_def_kafka_type(const config_def *d);

/* Validates text against a row's type, range, allowed values and check.
 * Returns 0, or -1 with why filled ("expected an integer between 1 and ..."). */
int config_validate_value(const config_def *d, const char *value, char *why, size_t whyn);

/* Copies value, trimmed, into buf. Returns 0, or -1 (why filled) when the
 * trimmed value is longer than CONFIG_VALUE_MAX. */
int config_value_copy(const char *value, char buf[CONFIG_VALUE_MAX + 1], char *why, size_t whyn);

/* Stores validated, trimmed text (NULL for null) into d's field of base.
 * Strings are not copied: text must live as long as base (a static default
 * or the owner's arena, where list items are copied). Returns -1 only if the
 * arena is exhausted. */
int config_field_store(void *base, const config_def *d, const char *text, arena *a);

/* Formats d's field of base as a client would see it. Scalar kinds only
 * (every topic key, most broker keys): not STRING or item LISTs. */
void config_field_format(const void *base, const config_def *d, char *buf, size_t n);

/* Whether two rows' fields have the same C type (synonyms must). */
bool config_field_compatible(const config_def *a, const config_def *b);

/* Copies sd's field of src into dd's field of dst; the rows must be
 * compatible and scalar. */
void config_field_copy(void *dst, const config_def *dd, const void *src, const config_def *sd);

/* The range of a numeric row in words: "from 1 to 17", or "at least 1" when
 * the upper bound is the type's limit (for docs, also the 32-bit limit). */
void config_range_text(const config_def *d, bool docs, char *buf, size_t n);

#endif
