/*
 * mirror_settings.c - `sluice mirror` settings: MirrorMaker 2 names and defaults, --set and
 * --mirror-config parsing, and the name patterns (POSIX extended regexes
 * anchored to the whole name, as MM2 matches its Java patterns).
 * See tools/mirror.h for how the modules fit together.
 */
#include <errno.h>
#include <string.h>

#include "tools/mirror.h"

/* ---- settings --------------------------------------------------------- */

void mirror_settings_defaults(mirror_settings *s) {
    memset(s, 0, sizeof *s);
    strcpy(s->source_alias, "source");
    strcpy(s->target_alias, "target");
    strcpy(s->topics, ".*");
    strcpy(s->topics_exclude, ".*[-.]internal,.*\\.replica,__.*");
    strcpy(s->groups, ".*");
    strcpy(s->groups_exclude, "console-consumer-.*,connect-.*,__.*");
    strcpy(s->config_exclude, "follower\\.replication\\.throttled\\.replicas,"
                              "leader\\.replication\\.throttled\\.replicas,"
                              "message\\.timestamp\\.difference\\.max\\.ms,message\\.timestamp\\.type,"
                              "unclean\\.leader\\.election\\.enable,min\\.insync\\.replicas");
    strcpy(s->policy.separator, ".");
    s->refresh_topics = s->sync_configs = s->emit_checkpoints = s->emit_heartbeats = true;
    s->refresh_topics_s = 600;
    s->sync_configs_s = 600;
    s->emit_checkpoints_s = 60;
    s->sync_groups_s = 60;
    s->heartbeats_s = 1;
    s->offset_lag_max = 100;
    s->replication_factor = -1;
    s->flush_timeout_ms = 60000;
    s->status_ms = 10000;
}

bool mirror_set_str(char *dst, size_t cap, const char *v) {
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

static bool parse_bool(const char *v, bool *out) {
    if (strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* Applies one MirrorMaker 2 setting. CLI_OK or CLI_EUSAGE after a message. */
int mirror_apply_setting(mirror_settings *s, const char *k, const char *v) {
    struct {
        const char *name;
        bool *b;
        int64_t *i;
        int64_t min, max;
        char *str;
        size_t cap;
    } tab[] = {
        {"refresh.topics.enabled", &s->refresh_topics, NULL, 0, 0, NULL, 0},
        {"sync.topic.configs.enabled", &s->sync_configs, NULL, 0, 0, NULL, 0},
        {"emit.checkpoints.enabled", &s->emit_checkpoints, NULL, 0, 0, NULL, 0},
        {"sync.group.offsets.enabled", &s->sync_groups, NULL, 0, 0, NULL, 0},
        {"emit.heartbeats.enabled", &s->emit_heartbeats, NULL, 0, 0, NULL, 0},
        {"refresh.topics.interval.seconds", NULL, &s->refresh_topics_s, 1, 86400, NULL, 0},
        {"sync.topic.configs.interval.seconds", NULL, &s->sync_configs_s, 1, 86400, NULL, 0},
        {"emit.checkpoints.interval.seconds", NULL, &s->emit_checkpoints_s, 1, 86400, NULL, 0},
        {"sync.group.offsets.interval.seconds", NULL, &s->sync_groups_s, 1, 86400, NULL, 0},
        {"emit.heartbeats.interval.seconds", NULL, &s->heartbeats_s, 1, 86400, NULL, 0},
        {"offset.lag.max", NULL, &s->offset_lag_max, 1, INT32_MAX, NULL, 0},
        {"replication.factor", NULL, &s->replication_factor, -1, 32767, NULL, 0},
        {"flush.timeout.ms", NULL, &s->flush_timeout_ms, 1000, 3600000, NULL, 0},
        {"transaction.timeout.ms", NULL, &s->txn_timeout_ms, 1000, 3600000, NULL, 0},
        {"topics", NULL, NULL, 0, 0, s->topics, sizeof s->topics},
        {"topics.exclude", NULL, NULL, 0, 0, s->topics_exclude, sizeof s->topics_exclude},
        {"groups", NULL, NULL, 0, 0, s->groups, sizeof s->groups},
        {"groups.exclude", NULL, NULL, 0, 0, s->groups_exclude, sizeof s->groups_exclude},
        {"config.properties.exclude", NULL, NULL, 0, 0, s->config_exclude, sizeof s->config_exclude},
        {"mirror.group.id", NULL, NULL, 0, 0, s->mirror_group, sizeof s->mirror_group},
        {"source.cluster.alias", NULL, NULL, 0, 0, s->source_alias, sizeof s->source_alias},
        {"target.cluster.alias", NULL, NULL, 0, 0, s->target_alias, sizeof s->target_alias},
        {"replication.policy.separator", NULL, NULL, 0, 0, s->policy.separator, sizeof s->policy.separator},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(k, tab[i].name) != 0)
            continue;
        int64_t n;
        if (tab[i].b && !parse_bool(v, tab[i].b))
            return cli_usage_err("mirror", "%s: expected true or false, got '%s'", k, v);
        if (tab[i].i) {
            if (!cli_parse_i64(v, tab[i].min, tab[i].max, &n))
                return cli_usage_err("mirror", "%s: expected %lld..%lld, got '%s'", k, (long long)tab[i].min,
                                     (long long)tab[i].max, v);
            *tab[i].i = n;
        }
        if (tab[i].str && !mirror_set_str(tab[i].str, tab[i].cap, v))
            return cli_usage_err("mirror", "%s: value too long", k);
        return CLI_OK;
    }
    if (strcmp(k, "replication.policy.class") == 0) {
        const char *dot = strrchr(v, '.');
        const char *cls = dot ? dot + 1 : v;
        if (strcmp(cls, "DefaultReplicationPolicy") == 0 || strcmp(v, "default") == 0)
            s->policy.identity = false;
        else if (strcmp(cls, "IdentityReplicationPolicy") == 0 || strcmp(v, "identity") == 0)
            s->policy.identity = true;
        else
            return cli_usage_err("mirror",
                                 "%s: expected DefaultReplicationPolicy or IdentityReplicationPolicy", k);
        return CLI_OK;
    }
    if (strcmp(k, "exactly.once.source.support") == 0) {
        /* Connect's key and its values enabled/disabled ("preparing" is a
         * rolling-upgrade step of a Connect cluster, meaningless here);
         * auto is Sluice's: transactions if the target allows them. */
        if (strcmp(v, "enabled") == 0)
            s->eos = MIRROR_EOS_ENABLED;
        else if (strcmp(v, "disabled") == 0)
            s->eos = MIRROR_EOS_DISABLED;
        else if (strcmp(v, "auto") == 0)
            s->eos = MIRROR_EOS_AUTO;
        else
            return cli_usage_err("mirror", "%s: expected enabled, disabled or auto, got '%s'", k, v);
        return CLI_OK;
    }
    if (strcmp(k, "offset-syncs.topic.location") == 0) {
        if (strcmp(v, "source") && strcmp(v, "target"))
            return cli_usage_err("mirror", "%s: expected source or target", k);
        s->syncs_on_target = strcmp(v, "target") == 0;
        return CLI_OK;
    }
    return cli_usage_err("mirror", "unknown setting '%s'", k);
}

int mirror_apply_kv(mirror_settings *s, const char *kv) {
    char buf[CLI_ARG_MAX];
    const char *k, *v;
    if (!cli_split_kv(kv, '=', buf, sizeof buf, &k, &v))
        return cli_usage_err("mirror", "setting '%s' is not key=value", kv);
    char *ke = (char *)k + strlen(k);
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
        *--ke = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    return mirror_apply_setting(s, k, v);
}

int mirror_apply_file(mirror_settings *s, const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cli_usage_err("mirror", "--mirror-config %s: %s", path, strerror(errno));
    char line[CLI_ARG_MAX];
    int rc = CLI_OK;
    for (int n = 0; rc == CLI_OK && n < 10000 && fgets(line, sizeof line, f); n++) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#' && *p != '!')
            rc = mirror_apply_kv(s, p);
    }
    fclose(f);
    return rc;
}

/* Compiles a comma-separated list of regexes, each matched against the whole
 * name (as MM2's Java patterns are). */
int mirror_compile_patterns(patterns *ps, const char *what, const char *list) {
    char buf[CLI_ARG_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    ps->n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            continue;
        if (ps->n == MIRROR_MAX_PATTERNS)
            return cli_usage_err("mirror", "%s: more than %d patterns", what, MIRROR_MAX_PATTERNS);
        char anchored[CLI_ARG_MAX + 8];
        snprintf(anchored, sizeof anchored, "^(%s)$", p);
        if (regcomp(&ps->re[ps->n], anchored, REG_EXTENDED | REG_NOSUB) != 0)
            return cli_usage_err("mirror", "%s: '%s' is not a valid regular expression", what, p);
        ps->n++;
    }
    return CLI_OK;
}

bool mirror_matches(const patterns *ps, const char *name) {
    for (int i = 0; i < ps->n; i++) {
        if (regexec(&ps->re[i], name, 0, NULL, 0) == 0)
            return true;
    }
    return false;
}

void mirror_free_patterns(patterns *ps) {
    for (int i = 0; i < ps->n; i++)
        regfree(&ps->re[i]);
    ps->n = 0;
}
