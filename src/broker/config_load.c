/*
 * config_load.c - loading a broker configuration: the sources (a properties
 * file, SLUICE_LOG_LEVEL, --override flags) and the resolution of what they
 * set into broker_config's typed fields.
 *
 * Setting a key only validates its text and keeps it in the key's slot
 * (with its origin); config_finish() then resolves every field at once:
 * among synonyms the highest-ranked key that was set wins, else the
 * highest-ranked default, and the checks that involve several keys run
 * last. So the order in which sources set synonyms never matters, only
 * their precision. The text of every key lives in the config's arena.
 */
#include "broker/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/config_internal.h"
#include "config/text.h"

void config_init(broker_config *c) {
    char err[CONFIG_ERR_MAX];
    memset(c, 0, sizeof *c);
    arena_init(&c->mem_, CONFIG_ARENA_LIMIT);
    /* The defaults are valid by construction (a unit test proves it), so
     * finishing an empty configuration cannot fail. */
    int rc = config_finish(c, err);
    assert(rc == 0);
    (void)rc;
}

void config_free(broker_config *c) {
    arena_reset(&c->mem_);
    memset(c->slot_, 0, sizeof c->slot_);
    c->n_lkeys_ = 0;
}

int config_warning_count(const broker_config *c) { return c->warnings_; }
const char *config_last_warning(const broker_config *c) { return c->last_warning_; }

/* ---- setting a key ------------------------------------------------------------------ */

static void warn(broker_config *c, const char *where, const char *key) {
    c->warnings_++;
    config_fmt(c->last_warning_, sizeof c->last_warning_, "%s: unknown configuration key '%.128s' ignored",
               where, key);
    LOG_WARN("config", "%s", c->last_warning_);
}

/* Keys that may be set for one listener (listener.name.<name>.<key>). */
static bool per_listener_key(const char *key) {
    return strncmp(key, "ssl.", 4) == 0 || strcmp(key, "sasl.enabled.mechanisms") == 0;
}

/* "<mechanism>.sasl.jaas.config": the mechanism's length (copied lower-cased
 * into mech), or 0. */
static size_t mech_key(const char *rest, char mech[16]) {
    static const char *const mechs[] = {"plain.", "scram-sha-256.", "scram-sha-512.", NULL};
    for (int i = 0; mechs[i]; i++) {
        size_t n = strlen(mechs[i]);
        if (strncasecmp(rest, mechs[i], n) == 0 && strcmp(rest + n, "sasl.jaas.config") == 0) {
            memcpy(mech, mechs[i], n - 1);
            mech[n - 1] = '\0';
            return n;
        }
    }
    return 0;
}

/* listener.name.<name>.<key>=value: validated like <key>, kept for that
 * listener. 1 if key is not of that form, 0 when stored, -1 on error. */
static int set_listener_key(broker_config *c, const char *key, const char *value, const char *where,
                            char err[CONFIG_ERR_MAX]) {
    static const char prefix[] = "listener.name.";
    char why[256];
    if (strncmp(key, prefix, sizeof prefix - 1) != 0)
        return 1;
    const char *name = key + sizeof prefix - 1, *dot = strchr(name, '.');
    if (dot == NULL || dot == name || (size_t)(dot - name) >= CONFIG_LISTENER_NAME_MAX)
        return 1;
    char mech[16] = "";
    size_t ml = mech_key(dot + 1, mech);
    const char *base = dot + 1 + ml;
    int idx = config_broker_index(base);
    if (idx < 0 || (ml == 0 && !per_listener_key(base)))
        return 1;
    char lname[CONFIG_LISTENER_NAME_MAX];
    size_t ln = (size_t)(dot - name);
    for (size_t k = 0; k < ln; k++)
        lname[k] = (char)toupper((unsigned char)name[k]);
    lname[ln] = '\0';
    const char *copy = NULL;
    if (value != NULL) {
        const char *s;
        size_t n;
        config_trim(value, strlen(value), &s, &n);
        if (n > CONFIG_VALUE_MAX) {
            config_fmt(err, CONFIG_ERR_MAX, "%s: value of %s is longer than %d bytes", where, key,
                       CONFIG_VALUE_MAX);
            return -1;
        }
        if ((copy = config_strndup(&c->mem_, s, n)) == NULL) {
            config_fmt(err, CONFIG_ERR_MAX, "%s: configuration exceeds %u bytes of memory", where,
                       CONFIG_ARENA_LIMIT);
            return -1;
        }
        if (config_validate_value(config_find_broker(base), copy, why, sizeof why) != 0) {
            config_fmt(err, CONFIG_ERR_MAX, "%s: invalid value '%.96s' for %s: %s", where, copy, key, why);
            return -1;
        }
    }
    for (int i = 0; i < c->n_lkeys_; i++) {
        if (c->lkeys_[i].index == idx && strcmp(c->lkeys_[i].listener, lname) == 0 &&
            strcmp(c->lkeys_[i].mech, mech) == 0) {
            c->lkeys_[i].text = copy;
            return 0;
        }
    }
    if (c->n_lkeys_ == CONFIG_LISTENER_KEYS_MAX) {
        config_fmt(err, CONFIG_ERR_MAX, "%s: more than %d listener.name.* keys", where,
                   CONFIG_LISTENER_KEYS_MAX);
        return -1;
    }
    struct config_listener_key *e = &c->lkeys_[c->n_lkeys_++];
    memcpy(e->listener, lname, ln + 1);
    memcpy(e->mech, mech, sizeof e->mech);
    e->index = idx;
    e->text = copy;
    return 0;
}

const char *config_listener_value(const broker_config *c, const char *listener, const char *key) {
    int idx = config_broker_index(key);
    assert(idx >= 0);
    for (int i = 0; listener != NULL && i < c->n_lkeys_; i++)
        if (c->lkeys_[i].index == idx && c->lkeys_[i].mech[0] == '\0' &&
            strcasecmp(c->lkeys_[i].listener, listener) == 0 && c->lkeys_[i].text != NULL)
            return c->lkeys_[i].text;
    return config_text_of(c, key);
}

const char *config_listener_mech_value(const broker_config *c, const char *listener, const char *mech,
                                       const char *key) {
    int idx = config_broker_index(key);
    assert(idx >= 0);
    for (int i = 0; i < c->n_lkeys_; i++)
        if (c->lkeys_[i].index == idx && strcasecmp(c->lkeys_[i].mech, mech) == 0 &&
            strcasecmp(c->lkeys_[i].listener, listener) == 0)
            return c->lkeys_[i].text;
    return NULL;
}

/* where: "file:line", "--override" or the environment variable's name. */
static int set_at(broker_config *c, const char *key, const char *value, config_origin origin,
                  const char *where, char err[CONFIG_ERR_MAX]) {
    char why[256];
    const char *s;
    size_t n;
    int i = config_broker_index(key);
    if (i < 0) {
        int lr = set_listener_key(c, key, value, where, err);
        if (lr <= 0)
            return lr;
        warn(c, where, key);
        return 0;
    }
    if (value == NULL) {
        c->slot_[i].text = NULL;
        c->slot_[i].origin = CONFIG_ORIGIN_DEFAULT;
        return 0;
    }
    config_trim(value, strlen(value), &s, &n);
    if (n > CONFIG_VALUE_MAX) {
        config_fmt(err, CONFIG_ERR_MAX, "%s: value of %s is longer than %d bytes", where, key,
                   CONFIG_VALUE_MAX);
        return -1;
    }
    const char *copy = config_strndup(&c->mem_, s, n);
    if (copy == NULL) {
        config_fmt(err, CONFIG_ERR_MAX, "%s: configuration exceeds %u bytes of memory", where,
                   CONFIG_ARENA_LIMIT);
        return -1;
    }
    if (config_validate_value(config_find_broker(key), copy, why, sizeof why) != 0) {
        config_fmt(err, CONFIG_ERR_MAX, "%s: invalid value '%.96s' for %s: %s", where, copy, key, why);
        return -1;
    }
    c->slot_[i].text = copy;
    c->slot_[i].origin = (uint8_t)origin;
    return 0;
}

int config_set(broker_config *c, const char *key, const char *value, config_origin origin,
               char err[CONFIG_ERR_MAX]) {
    const char *where = origin == CONFIG_ORIGIN_OVERRIDE ? "--override"
                        : origin == CONFIG_ORIGIN_ENV    ? "environment"
                                                         : "config";
    return set_at(c, key, value, origin, where, err);
}

/* ---- the sources: a file, the environment, overrides ------------------------------------ */

struct file_ctx {
    broker_config *c;
    const char *name;
    char *err;
};

static int file_pair(void *ctx, const char *key, const char *value, int line) {
    struct file_ctx *f = ctx;
    char where[160];
    config_fmt(where, sizeof where, "%.128s:%d", f->name, line);
    if (key[0] == '\0') {
        config_fmt(f->err, CONFIG_ERR_MAX, "%s: missing key before the value", where);
        return 1;
    }
    /* 1, not -1: config_props_parse keeps -1 for its own syntax errors. */
    return set_at(f->c, key, value, CONFIG_ORIGIN_FILE, where, f->err) == 0 ? 0 : 1;
}

int config_load_text(broker_config *c, const char *name, const char *text, size_t len,
                     char err[CONFIG_ERR_MAX]) {
    struct file_ctx f = {c, name, err};
    char perr[CONFIG_ERR_MAX];
    int rc = config_props_parse(text, len, file_pair, &f, perr);
    if (rc == -1)
        config_fmt(err, CONFIG_ERR_MAX, "%.128s: %s", name, perr);
    return rc == 0 ? 0 : -1;
}

int config_load_file(broker_config *c, const char *path, char err[CONFIG_ERR_MAX]) {
    char *buf = NULL;
    struct stat st;
    size_t got = 0;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        config_fmt(err, CONFIG_ERR_MAX, "cannot open configuration file %.256s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        config_fmt(err, CONFIG_ERR_MAX, "%.256s is not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)CONFIG_FILE_MAX) {
        config_fmt(err, CONFIG_ERR_MAX, "%.256s is larger than %u bytes", path, CONFIG_FILE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        config_fmt(err, CONFIG_ERR_MAX, "out of memory reading %.256s", path);
        goto out;
    }
    /* Bounded by the size seen at fstat; a file that grows meanwhile is cut. */
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            config_fmt(err, CONFIG_ERR_MAX, "cannot read %.256s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    err[0] = '\0';
    rc = config_load_text(c, path, buf, got, err);
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

int config_apply_override(broker_config *c, const char *kv, char err[CONFIG_ERR_MAX]) {
    const char *eq = strchr(kv, '=');
    const char *k = NULL;
    size_t kn = 0;
    char key[256];
    if (eq != NULL)
        config_trim(kv, (size_t)(eq - kv), &k, &kn);
    if (kn == 0 || kn >= sizeof key) {
        config_fmt(err, CONFIG_ERR_MAX, "--override '%.128s': expected key=value", kv);
        return -1;
    }
    memcpy(key, k, kn);
    key[kn] = '\0';
    return set_at(c, key, eq + 1, CONFIG_ORIGIN_OVERRIDE, "--override", err);
}

int config_load(broker_config *c, const char *path, const char *const *overrides, size_t n_overrides,
                char err[CONFIG_ERR_MAX]) {
    const char *env = getenv(LOG_ENV_LEVEL);
    err[0] = '\0';
    if (n_overrides > CONFIG_OVERRIDES_MAX) {
        config_fmt(err, CONFIG_ERR_MAX, "more than %d --override flags", CONFIG_OVERRIDES_MAX);
        return -1;
    }
    if (path != NULL && config_load_file(c, path, err) != 0)
        return -1;
    if (env != NULL && env[0] != '\0' &&
        set_at(c, "log.level", env, CONFIG_ORIGIN_ENV, LOG_ENV_LEVEL, err) != 0)
        return -1;
    for (size_t i = 0; i < n_overrides; i++)
        if (config_apply_override(c, overrides[i], err) != 0)
            return -1;
    if (config_finish(c, err) != 0)
        return -1;
    log_set_level((log_level)c->log_level);
    return 0;
}

/* ---- resolution into typed fields ------------------------------------------------- */

bool config_is_set(const broker_config *c, const char *name) {
    int i = config_broker_index(name);
    assert(i >= 0);
    return c->slot_[i].text != NULL;
}

const char *config_text_of(const broker_config *c, const char *name) {
    int i = config_broker_index(name);
    assert(i >= 0);
    return c->slot_[i].text ? c->slot_[i].text : config_find_broker(name)->dflt;
}

int config_finish(broker_config *c, char err[CONFIG_ERR_MAX]) {
    size_t n_broker;
    const config_def *broker_defs = config_broker_defs(&n_broker);
    bool done[CONFIG_KEYS_MAX] = {false};

    assert(n_broker <= CONFIG_KEYS_MAX);
    err[0] = '\0';
    for (size_t i = 0; i < n_broker; i++) {
        const config_def *d = &broker_defs[i];
        int win = -1, dflt = -1;
        if (d->field == CONFIG_NO_FIELD || done[i])
            continue;
        /* Every key sharing this field is a synonym: the highest-ranked one
         * that was set wins; if none was, the highest-ranked default. */
        for (size_t j = i; j < n_broker; j++) {
            const config_def *e = &broker_defs[j];
            if (e->field != d->field)
                continue;
            assert(config_field_compatible(e, d));
            done[j] = true;
            if (c->slot_[j].text != NULL && (win < 0 || e->rank > broker_defs[win].rank))
                win = (int)j;
            if (e->dflt != NULL && (dflt < 0 || e->rank > broker_defs[dflt].rank))
                dflt = (int)j;
        }
        const config_def *wd = win >= 0 ? &broker_defs[win] : dflt >= 0 ? &broker_defs[dflt] : d;
        const char *text = win >= 0 ? c->slot_[win].text : wd->dflt;
        if (config_field_store(c, wd, text, &c->mem_) != 0) {
            config_fmt(err, CONFIG_ERR_MAX, "configuration exceeds %u bytes of memory", CONFIG_ARENA_LIMIT);
            return -1;
        }
    }

    /* Checks that involve more than one key, or a resolved value. */
    if (!config_is_set(c, "log.flush.interval.ms"))
        c->log_flush_interval_ms = c->log_flush_scheduler_interval_ms;
    if (config_is_set(c, "node.id") && config_is_set(c, "broker.id") &&
        strtoll(config_text_of(c, "node.id"), NULL, 10) !=
            strtoll(config_text_of(c, "broker.id"), NULL, 10)) {
        config_fmt(err, CONFIG_ERR_MAX, "node.id=%s and broker.id=%s disagree; set only node.id",
                   config_text_of(c, "node.id"), config_text_of(c, "broker.id"));
        return -1;
    }
    if (c->log_retention_ms == 0) {
        config_fmt(
            err, CONFIG_ERR_MAX,
            "log.retention.hours/minutes/ms resolve to 0 ms; use -1 for unlimited retention or at least 1 "
            "ms");
        return -1;
    }
    if (c->log_dirs.n == 0) {
        config_fmt(err, CONFIG_ERR_MAX, "log.dirs is empty: at least one data directory is required");
        return -1;
    }
    if (c->group_min_session_timeout_ms > c->group_max_session_timeout_ms) {
        config_fmt(err, CONFIG_ERR_MAX,
                   "group.min.session.timeout.ms (%d) is larger than group.max.session.timeout.ms (%d)",
                   (int)c->group_min_session_timeout_ms, (int)c->group_max_session_timeout_ms);
        return -1;
    }
    if (c->log_cleaner_min_compaction_lag_ms > c->log_cleaner_max_compaction_lag_ms) {
        config_fmt(err, CONFIG_ERR_MAX,
                   "log.cleaner.min.compaction.lag.ms is larger than log.cleaner.max.compaction.lag.ms");
        return -1;
    }
    if (config_resolve_listeners(c, err) != 0)
        return -1;
    /* Three event-loop threads on a one- or two-CPU machine only compete
     * with the I/O threads; use no more than there are CPUs unless told. */
    if (!config_is_set(c, "num.network.threads")) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu >= 1 && ncpu < c->num_network_threads)
            c->num_network_threads = (int32_t)ncpu;
    }
    assert(c->n_listeners >= 1 && c->log_dirs.n >= 1);
    return 0;
}
