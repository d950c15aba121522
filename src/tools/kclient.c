/*
 * kclient.c - librdkafka plumbing shared by the broker-facing subcommands.
 * See kclient.h.
 */
#include "tools/kclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KC_DEFAULT_TIMEOUT_MS 15000
#define KC_MAX_LINE           4096

int kc_add_prop(kc_opts *o, const char *kv) {
    if (strchr(kv, '=') == NULL || kv[0] == '=')
        return cli_usage_err(o->cmd, "property '%s' is not key=value", kv);
    if (o->nprops >= KC_MAX_PROPS)
        return cli_usage_err(o->cmd, "more than %d properties", KC_MAX_PROPS);
    o->props[o->nprops++] = kv;
    return CLI_OK;
}

int kc_common_opt(kc_opts *o, int ch, const char *arg, bool *json) {
    int64_t v;
    switch (ch) {
    case KC_OPT_BOOTSTRAP:
        o->bootstrap = arg;
        return 1;
    case KC_OPT_COMMAND_CONFIG:
        o->config_file = arg;
        return 1;
    case KC_OPT_TIMEOUT:
        if (!cli_parse_i64(arg, 1, 3600000, &v)) {
            cli_usage_err(o->cmd, "--timeout-ms: expected 1..3600000, got '%s'", arg);
            return -CLI_EUSAGE;
        }
        o->timeout_ms = (int)v;
        return 1;
    case KC_OPT_JSON:
        if (json)
            *json = true;
        return 1;
    }
    return 0;
}

int kc_check(const kc_opts *o) {
    if (o->bootstrap == NULL || o->bootstrap[0] == '\0')
        return cli_usage_err(o->cmd, "--bootstrap-server is required");
    return CLI_OK;
}

/* Connects to host:port within ms. 0, or an errno value. */
static int try_connect(const char *host, const char *port, int ms) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? errno : EHOSTUNREACH;
    int err = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            err = 0;
        } else if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int pr = poll(&pfd, 1, ms);
            socklen_t sl = sizeof err;
            if (pr == 0)
                err = ETIMEDOUT;
            else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
                err = errno;
        }
        close(fd);
        if (err == 0)
            break;
    }
    freeaddrinfo(res);
    return err;
}

int kc_probe(const kc_opts *o) {
    char list[CLI_ARG_MAX], why[CLI_ARG_MAX + 128] = "";
    if (strlen(o->bootstrap) >= sizeof list)
        return cli_usage_err(o->cmd, "--bootstrap-server: list too long");
    strcpy(list, o->bootstrap);
    int ms = o->timeout_ms > 0 && o->timeout_ms < 3000 ? o->timeout_ms : 3000;
    size_t wl = 0;
    for (char *save = NULL, *hp = strtok_r(list, ",", &save); hp; hp = strtok_r(NULL, ",", &save)) {
        /* Accept PLAINTEXT://host:port as Kafka's tools do. */
        char *s = strstr(hp, "://");
        s = s ? s + 3 : hp;
        char *colon = strrchr(s, ':');
        if (colon == NULL || colon[1] == '\0')
            return cli_usage_err(o->cmd, "--bootstrap-server: '%s' is not host:port", hp);
        *colon = '\0';
        char *host = s;
        if (host[0] == '[') { /* [v6]:port */
            host++;
            size_t hl = strlen(host);
            if (hl && host[hl - 1] == ']')
                host[hl - 1] = '\0';
        }
        int err = try_connect(host, colon + 1, ms);
        if (err == 0)
            return CLI_OK;
        int n = snprintf(why + wl, sizeof why - wl, "%s%s:%s: %s", wl ? "; " : "", host, colon + 1,
                         strerror(err));
        if (n > 0 && (size_t)n < sizeof why - wl)
            wl += (size_t)n;
    }
    cli_err(o->cmd, "cannot connect to the broker (%s)", why);
    return CLI_EUNREACH;
}

/* librdkafka's own log lines are dropped unless SLUICE_DEBUG is set: every
 * failure the operator needs reaches them as this tool's one-line message. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (getenv("SLUICE_DEBUG"))
        fprintf(stderr, "librdkafka %d %s: %s\n", level, fac, buf);
}

static bool set(const kc_opts *o, rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        cli_usage_err(o->cmd, "client setting %s=%s: %s", k, v, err);
        return false;
    }
    return true;
}

/* Applies one "key=value" string (whitespace around both trimmed). */
static bool set_kv(const kc_opts *o, rd_kafka_conf_t *conf, const char *kv) {
    char buf[KC_MAX_LINE];
    const char *k, *v;
    if (!cli_split_kv(kv, '=', buf, sizeof buf, &k, &v)) {
        cli_usage_err(o->cmd, "client setting '%s' is not key=value", kv);
        return false;
    }
    char *ke = (char *)k + strlen(k);
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
        *--ke = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    return set(o, conf, k, v);
}

bool kc_conf_apply_file(const kc_opts *o, rd_kafka_conf_t *conf, const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        cli_err(o->cmd, "%s: %s", path, strerror(errno));
        return false;
    }
    char line[KC_MAX_LINE];
    bool ok = true;
    for (int n = 0; ok && n < 10000 && fgets(line, sizeof line, f); n++) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#' || *p == '!')
            continue;
        ok = set_kv(o, conf, p);
    }
    fclose(f);
    return ok;
}

rd_kafka_conf_t *kc_conf(const kc_opts *o) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!set(o, conf, "bootstrap.servers", o->bootstrap) || !set(o, conf, "client.id", "sluice-cli"))
        goto err;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (o->config_file && !kc_conf_apply_file(o, conf, o->config_file))
        goto err;
    for (int i = 0; i < o->nprops; i++) {
        if (!set_kv(o, conf, o->props[i]))
            goto err;
    }
    return conf;
err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *kc_new(const kc_opts *o, rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        cli_err(o->cmd, "cannot create the client: %s", err);
    }
    return rk;
}

static int timeout_of(const kc_opts *o) { return o->timeout_ms > 0 ? o->timeout_ms : KC_DEFAULT_TIMEOUT_MS; }

rd_kafka_AdminOptions_t *kc_admin_options(const kc_opts *o, rd_kafka_t *rk, rd_kafka_admin_op_t op) {
    char err[256];
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, op);
    int t = timeout_of(o);
    rd_kafka_AdminOptions_set_request_timeout(ao, t, err, sizeof err);
    /* Operation timeouts apply only to the topic-changing calls. */
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
        op == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS)
        rd_kafka_AdminOptions_set_operation_timeout(ao, t, err, sizeof err);
    return ao;
}

int kc_exit_for(rd_kafka_resp_err_t err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return CLI_OK;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR__UNKNOWN_GROUP:
        return CLI_ENOTFOUND;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
        return CLI_EUNREACH;
    default:
        return CLI_EFAIL;
    }
}

rd_kafka_event_t *kc_wait(const kc_opts *o, rd_kafka_queue_t *q, rd_kafka_event_type_t want, int *rc_out) {
    int64_t deadline = cli_now_us() + (int64_t)timeout_of(o) * 1000 + 2000000;
    while (cli_now_us() < deadline && !cli_stop) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 200);
        if (ev == NULL)
            continue;
        if (rd_kafka_event_type(ev) != want) {
            rd_kafka_event_destroy(ev);
            continue;
        }
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            cli_err(o->cmd, "%s", rd_kafka_event_error_string(ev));
            *rc_out = kc_exit_for(err);
            rd_kafka_event_destroy(ev);
            return NULL;
        }
        return ev;
    }
    if (cli_stop) {
        *rc_out = CLI_EINTERRUPT;
        return NULL;
    }
    cli_err(o->cmd, "no answer from the broker within %d ms", timeout_of(o));
    *rc_out = CLI_EUNREACH;
    return NULL;
}

const struct rd_kafka_metadata *kc_metadata(const kc_opts *o, rd_kafka_t *rk, int *rc_out) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_of(o));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cli_err(o->cmd, "metadata request failed: %s", rd_kafka_err2str(err));
        *rc_out = kc_exit_for(err);
        return NULL;
    }
    return md;
}

const rd_kafka_metadata_topic_t *kc_find_topic(const struct rd_kafka_metadata *md, const char *topic) {
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0)
            return &md->topics[i];
    }
    return NULL;
}

const rd_kafka_metadata_topic_t *kc_wait_topic(const kc_opts *o, rd_kafka_t *rk, const char *topic,
                                               const struct rd_kafka_metadata **md_out, int *rc_out) {
    *md_out = NULL;
    for (int attempt = 0; attempt < 4; attempt++) {
        if (attempt > 0)
            usleep(300000);
        const struct rd_kafka_metadata *md = kc_metadata(o, rk, rc_out);
        if (md == NULL)
            return NULL;
        const rd_kafka_metadata_topic_t *t = kc_find_topic(md, topic);
        if (t != NULL && t->err == 0) {
            *md_out = md;
            return t;
        }
        rd_kafka_metadata_destroy(md);
    }
    cli_err(o->cmd, "topic '%s' does not exist", topic);
    *rc_out = CLI_ENOTFOUND;
    return NULL;
}
