/*
 * config/rows.h - shorthands for writing key table rows (config_def, see
 * schema.h). Include it only from a file that defines a table
 * (src/broker/config_keys.c, config/topic_keys.c): the names are short on
 * purpose and would collide anywhere else.
 */
#ifndef SLUICE_CONFIG_ROWS_H
#define SLUICE_CONFIG_ROWS_H

#include <stdint.h>

#include "config/schema.h"

#define I32MAX        INT32_MAX
#define I64MAX        INT64_MAX
#define LONG_MAX_TEXT "9223372036854775807"
#define INT_MAX_TEXT  "2147483647"

/* Row builders: the struct is wide, most rows use few of its fields. */
#define ROW(n, ty, d, lo, hi, fld, fl, dc)                                                               \
    {                                                                                                    \
        .name = (n), .type = (ty), .dflt = (d), .min = (lo), .max = (hi), .field = (fld), .flags = (fl), \
        .doc = (dc)                                                                                      \
    }
#define INT(n, d, lo, hi, fld, fl, dc)  ROW(n, CONFIG_INT, d, lo, hi, fld, fl, dc)
#define LONG(n, d, lo, hi, fld, fl, dc) ROW(n, CONFIG_LONG, d, lo, hi, fld, fl, dc)
#define BOOL(n, d, fld, fl, dc)         ROW(n, CONFIG_BOOL, d, 0, 0, fld, fl, dc)
#define STR(n, d, fld, fl, dc)          ROW(n, CONFIG_STRING, d, 0, 0, fld, fl, dc)
#define DUR(n, d, lo, hi, unit, rk, fld, fl, dc)                                                        \
    {                                                                                                   \
        .name = (n), .type = CONFIG_DURATION, .dflt = (d), .min = (lo), .max = (hi), .unit_ms = (unit), \
        .rank = (rk), .field = (fld), .flags = (fl), .doc = (dc)                                        \
    }
#define ENUM(n, d, vals, fld, fl, dc)                                                                    \
    {                                                                                                    \
        .name = (n), .type = CONFIG_ENUM, .dflt = (d), .allowed = (vals), .field = (fld), .flags = (fl), \
        .doc = (dc)                                                                                      \
    }
#define LIST(n, d, vals, fld, fl, dc)                                                                    \
    {                                                                                                    \
        .name = (n), .type = CONFIG_LIST, .dflt = (d), .allowed = (vals), .field = (fld), .flags = (fl), \
        .doc = (dc)                                                                                      \
    }

/* compression.gzip.level is the same key in both tables: one spec. */
#define GZIP_LEVEL_ROW(fld, dc)                                                                  \
    {                                                                                            \
        .name = "compression.gzip.level", .type = CONFIG_INT, .dflt = "-1", .min = -1, .max = 9, \
        .field = (fld), .check = config_check_gzip_level, .valid = "-1, or 1 to 9", .doc = (dc)  \
    }

#endif
