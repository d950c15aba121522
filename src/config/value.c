/*
 * config/value.c - a row's values (see schema.h): text to typed value and
 * back, generic over a row. Parsing checks, in order, the length, the type
 * (a 32-bit field refuses what does not fit in 32 bits), the bounds, the
 * allowed values, then the row's own check; a message always says what is
 * allowed. Storing converts durations to milliseconds (saturating; negative
 * means unlimited, -1) and copies list items into the owner's arena.
 */
#include "config/schema.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/text.h"

const char *const config_bool_values[] = {"true", "false", NULL};
const char *const config_cleanup_values[] = {"delete", "compact", NULL};
const char *const config_timestamp_values[] = {"CreateTime", "LogAppendTime", NULL};
/* Order matches config_compression. */
const char *const config_compression_values[] = {"uncompressed", "gzip",     "snappy", "lz4",
                                                 "zstd",         "producer", NULL};

config_kafka_type config_def_kafka_type(const config_def *d) {
    switch (d->type) {
    case CONFIG_INT:
        return (d->flags & CONFIG_F_SHORT) ? CONFIG_KTYPE_SHORT : CONFIG_KTYPE_INT;
    case CONFIG_LONG:
        return CONFIG_KTYPE_LONG;
    case CONFIG_BOOL:
        return CONFIG_KTYPE_BOOLEAN;
    case CONFIG_DOUBLE:
        return CONFIG_KTYPE_DOUBLE;
    case CONFIG_STRING:
    case CONFIG_ENUM:
        return CONFIG_KTYPE_STRING;
    case CONFIG_LIST:
        return CONFIG_KTYPE_LIST;
    case CONFIG_DURATION:
        /* Kafka declares the hours and minutes forms as int, the ms form as long. */
        return d->unit_ms == 1 ? CONFIG_KTYPE_LONG : CONFIG_KTYPE_INT;
    }
    return CONFIG_KTYPE_UNKNOWN;
}

/* ---- parsing ------------------------------------------------------------------------ */

/* A parsed scalar. Which member is meaningful depends on the row's type. */
typedef struct cvalue {
    int64_t i;      /* INT, LONG, DURATION (in the key's unit) */
    double d;       /* DOUBLE */
    bool b;         /* BOOL */
    int idx;        /* ENUM */
    unsigned flags; /* LIST with allowed values */
} cvalue;

/* Whether the row's values are Kafka ints (32 bits): INT, and the hours
 * and minutes forms of a duration (their field holds milliseconds). */
static bool is_32bit(const config_def *d) {
    return d->type == CONFIG_INT || (d->type == CONFIG_DURATION && d->unit_ms != 1);
}

static int parse_i64(const char *v, int64_t *out) {
    char *end;
    if (*v == '\0' || config_is_ws(*v))
        return -1;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

/* Docs say "at least N" when the upper bound is just the type's limit;
 * error messages always give both bounds so a 32-bit overflow is explained
 * too. */
void config_range_text(const config_def *d, bool docs, char *buf, size_t n) {
    if (d->max == INT64_MAX || (docs && is_32bit(d) && d->max == INT32_MAX))
        config_fmt(buf, n, "at least %lld", (long long)d->min);
    else
        config_fmt(buf, n, "from %lld to %lld", (long long)d->min, (long long)d->max);
}

/* Parses text (already trimmed) against d. out may be NULL to validate only. */
static int parse_value(const config_def *d, const char *v, cvalue *out, char *why, size_t whyn) {
    cvalue tmp = {0};
    char buf[256];
    config_span items[CONFIG_LIST_MAX];

    if (strlen(v) > CONFIG_VALUE_MAX) {
        config_fmt(why, whyn, "value longer than %d bytes", CONFIG_VALUE_MAX);
        return -1;
    }
    switch (d->type) {
    case CONFIG_INT:
    case CONFIG_LONG:
    case CONFIG_DURATION: {
        config_range_text(d, false, buf, sizeof buf);
        if (parse_i64(v, &tmp.i) != 0 || (is_32bit(d) && (tmp.i < INT32_MIN || tmp.i > INT32_MAX))) {
            config_fmt(why, whyn, "expected an integer %s", buf);
            return -1;
        }
        if (tmp.i < d->min || tmp.i > d->max) {
            config_fmt(why, whyn, "out of range: expected an integer %s", buf);
            return -1;
        }
        break;
    }
    case CONFIG_DOUBLE: {
        char *end;
        errno = 0;
        tmp.d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(tmp.d)) {
            config_fmt(why, whyn, "expected a number from %lld to %lld", (long long)d->min,
                       (long long)d->max);
            return -1;
        }
        if (tmp.d < (double)d->min || tmp.d > (double)d->max) {
            config_fmt(why, whyn, "out of range: expected a number from %lld to %lld", (long long)d->min,
                       (long long)d->max);
            return -1;
        }
        break;
    }
    case CONFIG_BOOL:
        if (strcasecmp(v, "true") == 0) {
            tmp.b = true;
        } else if (strcasecmp(v, "false") == 0) {
            tmp.b = false;
        } else {
            config_fmt(why, whyn, "expected true or false");
            return -1;
        }
        break;
    case CONFIG_ENUM: {
        int i;
        for (i = 0; d->allowed[i] != NULL; i++) {
            if ((d->flags & CONFIG_F_ICASE) ? strcasecmp(v, d->allowed[i]) == 0
                                            : strcmp(v, d->allowed[i]) == 0)
                break;
        }
        if (d->allowed[i] == NULL) {
            config_join(d->allowed, buf, sizeof buf);
            config_fmt(why, whyn, "expected one of: %s", buf);
            return -1;
        }
        tmp.idx = i;
        break;
    }
    case CONFIG_LIST: {
        int n = config_split_list(v, items, CONFIG_LIST_MAX, why, whyn);
        if (n < 0)
            return -1;
        for (int k = 0; d->allowed != NULL && k < n; k++) {
            int i;
            for (i = 0; d->allowed[i] != NULL; i++)
                if (config_span_eq(items[k], d->allowed[i], false))
                    break;
            if (d->allowed[i] == NULL) {
                config_join(d->allowed, buf, sizeof buf);
                config_fmt(why, whyn, "list item '%.*s' is not one of: %s",
                           (int)(items[k].n > 64 ? 64 : items[k].n), items[k].p, buf);
                return -1;
            }
            tmp.flags |= 1u << i;
        }
        if (d->allowed != NULL && n == 0) {
            config_join(d->allowed, buf, sizeof buf);
            config_fmt(why, whyn, "expected one or more of: %s", buf);
            return -1;
        }
        break;
    }
    case CONFIG_STRING:
        break;
    }
    if (d->check != NULL && d->check(v, why, whyn) != 0)
        return -1;
    if (out != NULL)
        *out = tmp;
    return 0;
}

int config_value_copy(const char *value, char buf[CONFIG_VALUE_MAX + 1], char *why, size_t whyn) {
    const char *s;
    size_t n;
    config_trim(value, strlen(value), &s, &n);
    if (n > CONFIG_VALUE_MAX) {
        config_fmt(why, whyn, "value longer than %d bytes", CONFIG_VALUE_MAX);
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

int config_validate_value(const config_def *d, const char *value, char *why, size_t whyn) {
    char buf[CONFIG_VALUE_MAX + 1];
    if (value == NULL) {
        config_fmt(why, whyn, "a value is required");
        return -1;
    }
    if (config_value_copy(value, buf, why, whyn) != 0)
        return -1;
    return parse_value(d, buf, NULL, why, whyn);
}

int config_check_gzip_level(const char *v, char *why, size_t whyn) {
    if (strcmp(v, "0") == 0) {
        config_fmt(why, whyn, "expected -1 or a level from 1 to 9");
        return -1;
    }
    return 0;
}

/* ---- typed fields ------------------------------------------------------------------ */

typedef enum fkind { FK_I32, FK_I64, FK_BOOL, FK_DBL, FK_STR, FK_IDX, FK_FLAGS, FK_LIST } fkind;

static fkind field_kind(const config_def *d) {
    switch (d->type) {
    case CONFIG_INT:
        return FK_I32;
    case CONFIG_LONG:
    case CONFIG_DURATION:
        return FK_I64;
    case CONFIG_BOOL:
        return FK_BOOL;
    case CONFIG_DOUBLE:
        return FK_DBL;
    case CONFIG_STRING:
        return FK_STR;
    case CONFIG_ENUM:
        return FK_IDX;
    case CONFIG_LIST:
        return d->allowed ? FK_FLAGS : FK_LIST;
    }
    return FK_STR;
}

bool config_field_compatible(const config_def *a, const config_def *b) {
    return field_kind(a) == field_kind(b);
}

/* See schema.h; list items are copied into a. */
int config_field_store(void *base, const config_def *d, const char *text, arena *a) {
    void *f = (char *)base + d->field;
    cvalue v = {0};
    char why[64];
    assert(d->field != CONFIG_NO_FIELD);
    if (text != NULL) {
        int rc = parse_value(d, text, &v, why, sizeof why);
        assert(rc == 0); /* callers validate before storing */
        (void)rc;
    }
    switch (field_kind(d)) {
    case FK_I32:
        *(int32_t *)f = (int32_t)v.i;
        break;
    case FK_I64:
        if (d->type == CONFIG_DURATION && text != NULL) {
            assert(d->unit_ms >= 1);
            /* Negative durations mean "unlimited" (-1), as in Kafka. */
            v.i = v.i < 0 ? -1 : v.i > INT64_MAX / d->unit_ms ? INT64_MAX : v.i * d->unit_ms;
        }
        *(int64_t *)f = v.i;
        break;
    case FK_BOOL:
        *(bool *)f = v.b;
        break;
    case FK_DBL:
        *(double *)f = v.d;
        break;
    case FK_IDX:
        *(int *)f = v.idx;
        break;
    case FK_FLAGS:
        *(unsigned *)f = v.flags;
        break;
    case FK_STR:
        *(const char **)f = text;
        break;
    case FK_LIST: {
        config_list *l = f;
        config_span items[CONFIG_LIST_MAX];
        int n = text ? config_split_list(text, items, CONFIG_LIST_MAX, why, sizeof why) : 0;
        assert(n >= 0);
        l->n = 0;
        for (int i = 0; i < n; i++) {
            l->items[i] = config_strndup(a, items[i].p, items[i].n);
            if (l->items[i] == NULL)
                return -1;
        }
        l->n = n;
        break;
    }
    }
    return 0;
}

/* Scalar kinds only: see schema.h. */
void config_field_format(const void *base, const config_def *d, char *buf, size_t n) {
    const void *f = (const char *)base + d->field;
    switch (field_kind(d)) {
    case FK_I32:
        config_fmt(buf, n, "%d", (int)*(const int32_t *)f);
        break;
    case FK_I64:
        config_fmt(buf, n, "%lld", (long long)*(const int64_t *)f);
        break;
    case FK_BOOL:
        config_fmt(buf, n, "%s", *(const bool *)f ? "true" : "false");
        break;
    case FK_DBL:
        config_fmt(buf, n, "%g", *(const double *)f);
        break;
    case FK_IDX:
        config_fmt(buf, n, "%s", d->allowed[*(const int *)f]);
        break;
    case FK_FLAGS: {
        size_t used = 0;
        buf[0] = '\0';
        for (int i = 0; d->allowed[i] != NULL; i++) {
            if ((*(const unsigned *)f & (1u << i)) && used < n) {
                int r = snprintf(buf + used, n - used, "%s%s", used ? "," : "", d->allowed[i]);
                used += r > 0 ? (size_t)r : 0;
            }
        }
        break;
    }
    case FK_STR:
    case FK_LIST:
        /* Only scalar fields are formatted (every topic key and its broker synonyms). */
        assert(0);
        buf[0] = '\0';
        break;
    }
}

void config_field_copy(void *dst, const config_def *dd, const void *src, const config_def *sd) {
    fkind k = field_kind(dd);
    assert(config_field_compatible(dd, sd) && k != FK_STR && k != FK_LIST);
    size_t size = k == FK_I32    ? sizeof(int32_t)
                  : k == FK_I64  ? sizeof(int64_t)
                  : k == FK_BOOL ? sizeof(bool)
                  : k == FK_DBL  ? sizeof(double)
                  : k == FK_IDX  ? sizeof(int)
                                 : sizeof(unsigned);
    memcpy((char *)dst + dd->field, (const char *)src + sd->field, size);
}
