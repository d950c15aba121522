/*
 * broker.c - broker lifecycle. See broker.h.
 */
#include "broker/broker.h"
#include "broker/producer_ids.h"
#include "core/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/driver.h"
#include "broker/fetch.h"
#include "broker/replication.h"
#include "broker/groups.h"
#include "broker/txns.h"
#include "broker/log_cleaner.h"
#include "broker/observe.h"
#include "broker/request.h"
#include "broker/authz.h"
#include "broker/quota.h"
#include "broker/sasl.h"
#include "core/log.h"
#include "net/tls.h"
#include "obs/metrics.h"

/* mkdir -p for a log directory; logs and returns -1 on failure. */
static int ensure_dir(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) {
        LOG_ERROR("broker", "log directory path '%s' is empty or too long", path);
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            goto err;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        goto err;
    return 0;
err:
    LOG_ERROR("broker", "cannot create log directory '%s': %s", tmp, strerror(errno));
    return -1;
}

/* A client went away while its request waits: a parked fetch is answered
 * now (into the void) rather than holding its waiter until max_wait_ms. */
static void request_abandoned(void *ctx, uint64_t conn_id) {
    broker *b = ctx;
    fetch_abandon(b, conn_id);
}

const config_listener *broker_net_config(const broker_config *cfg, net_config *nc) {
    const config_listener *l = NULL;
    for (int i = 0; i < cfg->n_listeners; i++)
        if (!cfg->listeners[i].controller) {
            l = &cfg->listeners[i];
            break;
        }
    net_config_defaults(nc);
    if (l != NULL) {
        nc->host = l->host;
        nc->port = l->port;
    }
    nc->net_threads = cfg->num_network_threads;
    nc->io_threads = cfg->num_io_threads;
    nc->queued_max_requests = cfg->queued_max_requests;
    nc->max_request_bytes = (size_t)cfg->socket_request_max_bytes;
    /* -1 is "no limit"; the defaults come from net/server.h (the table prints them). */
    nc->max_request_bytes_inflight =
        cfg->queued_max_request_bytes < 0 ? SIZE_MAX : (size_t)cfg->queued_max_request_bytes;
    nc->max_response_bytes_held =
        cfg->queued_max_response_bytes < 0 ? SIZE_MAX : (size_t)cfg->queued_max_response_bytes;
    nc->max_connections = cfg->max_connections;
    nc->max_connections_per_ip = cfg->max_connections_per_ip;
    nc->max_connections_per_ip_overrides = cfg->max_connections_per_ip_overrides;
    nc->idle_timeout_ms = cfg->connections_max_idle_ms;
    nc->request_read_timeout_ms = cfg->request_read_timeout_ms;
    nc->zero_copy = cfg->fetch_zero_copy;
    nc->abandoned = request_abandoned;
    return l;
}

/* The TLS context of an SSL listener, from its ssl.* keys (each may be set
 * for the listener alone as listener.name.<name>.ssl.*). NULL, logged, if
 * they do not make one. */
static tls_server *listener_tls(const broker_config *cfg, const config_listener *l) {
    const char *n = l->name;
    char err[512];
    const char *auth = config_listener_value(cfg, n, "ssl.client.auth");
    const char *reload = config_listener_value(cfg, n, "sluice.ssl.reload.check.ms");
    tls_config tc = {
        .listener = n,
        .keystore_type = config_listener_value(cfg, n, "ssl.keystore.type"),
        .keystore_location = config_listener_value(cfg, n, "ssl.keystore.location"),
        .keystore_chain = config_listener_value(cfg, n, "ssl.keystore.certificate.chain"),
        .keystore_key = config_listener_value(cfg, n, "ssl.keystore.key"),
        .key_password = config_listener_value(cfg, n, "ssl.key.password"),
        .truststore_type = config_listener_value(cfg, n, "ssl.truststore.type"),
        .truststore_location = config_listener_value(cfg, n, "ssl.truststore.location"),
        .truststore_certificates = config_listener_value(cfg, n, "ssl.truststore.certificates"),
        .client_auth = auth == NULL                         ? TLS_CLIENT_AUTH_NONE
                       : strcasecmp(auth, "required") == 0  ? TLS_CLIENT_AUTH_REQUIRED
                       : strcasecmp(auth, "requested") == 0 ? TLS_CLIENT_AUTH_REQUESTED
                                                            : TLS_CLIENT_AUTH_NONE,
        .enabled_protocols = config_listener_value(cfg, n, "ssl.enabled.protocols"),
        .cipher_suites = config_listener_value(cfg, n, "ssl.cipher.suites"),
        .reload_check_ms = reload ? strtoll(reload, NULL, 10) : 0,
    };
    tls_server *t = tls_server_create(&tc, err, sizeof err);
    if (t == NULL)
        LOG_ERROR("broker", "listener %s (SSL): %s", n, err);
    else
        LOG_INFO("broker", "listener %s: TLS ready (client certificates %s)", n, auth ? auth : "none");
    return t;
}

/* The housekeeping task: rolls, flushes, retention, offline retries and
 * metadata snapshots, about once a second. */
static int64_t housekeeping_step(void *arg) {
    broker *b = arg;
    int64_t now = clock_wall_ms();
    bmeta_tick(b->meta, now);
    observe_sample(b, now);
    return 1000;
}

/* A tagged response (its API key) was written whole. */
static void response_sent(void *ctx, int tag, int64_t queue_ns, int64_t send_ns) {
    broker *b = ctx;
    obs_response_sent(b->metrics, tag, queue_ns, send_ns);
}

/* First thing on each network and handler thread. */
static void bind_env(void *ctx) {
    broker *b = ctx;
    sl_env_bind(&b->env);
}

/* A partition's HW, log start, role or existence changed: long polls on
 * it may be answerable. */
static void partition_changed(void *ctx, rpart *p) {
    fetch_notify(ctx, p);
    groups_partition_changed(ctx, p);
}

broker *broker_create(const broker_config *cfg) {
    broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cfg = cfg;
    sl_env_init_real(&b->env);
    b->env.node_id = cfg->node_id;
    sl_env_bind(&b->env); /* the creating thread logs for this broker too */
    b->driver = driver_new(&b->env);
    if (b->driver == NULL)
        goto err;
    b->metrics = obs_metrics_create(cfg->metrics_enable, cfg->metrics_topics_max);
    if (b->metrics == NULL || observe_create(b) != 0)
        goto err;
    if ((b->pids = producer_ids_create()) == NULL)
        goto err;
    for (int i = 0; i < cfg->log_dirs.n; i++)
        if (ensure_dir(cfg->log_dirs.items[i]) != 0)
            goto err;
    b->storage = storage_ctx_new(b->env.vfs, STORAGE_FD_LIMIT_DEFAULT);
    if (b->storage == NULL)
        goto err;
    /* Before the metadata opens: its quorum threads apply records from
     * the start, and each applied change wakes long polls through it. */
    if (fetch_mgr_start(b) != 0)
        goto err;
    if (bauthz_create(cfg, &b->authz) != 0)
        goto err;
    b->quota = bquota_create(cfg->quota_window_num, (int64_t)cfg->quota_window_size_seconds * 1000);
    if (b->quota == NULL)
        goto err;
    bmeta_hooks hooks = {&b->env, b, partition_changed};
    b->meta = bmeta_open(cfg, b->storage, &hooks);
    if (b->meta == NULL)
        goto err;

    net_config nc;
    bool is_broker = (cfg->process_roles & CONFIG_ROLE_BROKER) != 0;
    const config_listener *client_l = broker_net_config(cfg, &nc);
    if (client_l == NULL && is_broker) {
        LOG_ERROR("broker", "no client listener configured (listeners)");
        goto err;
    }
    nc.thread_init = bind_env;
    /* A controller-only node serves its controller listener alone. */
    if (cfg->metrics_enable)
        nc.sent = response_sent;
    config_protocol proto = client_l ? client_l->protocol : CONFIG_PROTOCOL_PLAINTEXT;
    if (is_broker && (proto == CONFIG_PROTOCOL_SSL || proto == CONFIG_PROTOCOL_SASL_SSL)) {
        if ((b->tls = listener_tls(cfg, client_l)) == NULL)
            goto err;
        nc.tls = b->tls;
    }
    if (is_broker && (proto == CONFIG_PROTOCOL_SASL_PLAINTEXT || proto == CONFIG_PROTOCOL_SASL_SSL)) {
        if ((b->sasl = bsasl_create(cfg, client_l)) == NULL)
            goto err;
        nc.sasl = true;
        nc.session_free = bsasl_session_free;
    }
    nc.listener = client_l ? client_l->name : NULL;
    if (is_broker && (b->net = net_server_create(&nc, broker_handle_request, b)) == NULL)
        goto err;
    /* A quorum member also serves its controller listener: the quorum's
     * RPCs, registrations and forwarded admin requests. */
    const config_listener *cl = NULL;
    for (int i = 0; i < cfg->n_listeners && cl == NULL; i++)
        if (cfg->listeners[i].controller)
            cl = &cfg->listeners[i];
    if (cfg->controller_quorum_voters.n > 0 && (cfg->process_roles & CONFIG_ROLE_CONTROLLER)) {
        if (cl == NULL) {
            LOG_ERROR(
                "broker",
                "controller.quorum.voters is set, but no listener is named in controller.listener.names");
            goto err;
        }
        net_config cc = nc;
        cc.host = cl->host;
        cc.port = (uint16_t)cl->port;
        cc.tls = NULL; /* controller listeners are PLAINTEXT (config_listeners.c) */
        cc.sasl = false;
        cc.session_free = NULL;
        cc.listener = cl->name;
        b->ctl_net = net_server_create(&cc, broker_handle_controller_request, b);
        if (b->ctl_net == NULL)
            goto err;
    }
    if (groups_mgr_start(b) != 0)
        goto err;
    if (txns_mgr_start(b) != 0)
        goto err;
    if (brepl_start(b) != 0)
        goto err;
    if (driver_add(b->driver, "housekeeping", housekeeping_step, b) < 0)
        goto err;
    /* Last, and before clients are served: the pages read the state set up
     * above, and an HTTP address that cannot be bound stops the start. */
    if (observe_start(b) != 0)
        goto err;
    return b;
err:
    broker_destroy(b);
    return NULL;
}

int broker_start(broker *b) {
    if (driver_start(b->driver) != 0)
        return -1;
    b->cleaners = cleaners_start(b->cfg, bmeta_parts(b->meta), &b->env);
    if ((b->net && net_server_start(b->net) != 0) || (b->ctl_net && net_server_start(b->ctl_net) != 0)) {
        LOG_ERROR("broker", "cannot start network threads");
        return -1;
    }
    if (b->net)
        LOG_INFO("broker", "node %d serving on port %u", b->cfg->node_id, net_server_port(b->net));
    else
        LOG_INFO("broker", "node %d (controller only) serving the quorum on port %u", b->cfg->node_id,
                 net_server_port(b->ctl_net));
    return 0;
}

uint16_t broker_port(const broker *b) { return net_server_port(b->net ? b->net : b->ctl_net); }

uint16_t broker_http_port(const broker *b) { return observe_port(b); }

void broker_shutdown(broker *b) {
    /* Handlers in the middle of long work wrap up with what they have, so
     * the drain below waits for them for milliseconds, not their deadline. */
    atomic_store(&b->draining, true);
    /* No page reads the state torn down below. */
    observe_stop(b);
    /* A quorum member leaves the cluster's metadata first (fenced), so
     * clients are sent elsewhere while it finishes. */
    if (b->meta)
        bmeta_controlled_shutdown(b->meta);
    /* Long-polling fetches are answered first, so that the network layer's
     * drain of in-flight requests does not wait out their max_wait_ms. */
    fetch_mgr_shutdown(b);
    /* Parked JoinGroup/SyncGroup requests are answered first, so that the
     * network layer's drain does not wait for rebalances. */
    groups_mgr_shutdown(b);
    txns_mgr_shutdown(b);
    if (b->meta)
        bmeta_quiesce(b->meta);
    /* Followers stop appending before the logs close. */
    brepl_stop(b);
    if (b->net)
        net_server_stop(b->net, 5000);
    if (b->ctl_net)
        net_server_stop(b->ctl_net, 5000);
    /* No more timer work: every task's state is torn down below. */
    driver_stop(b->driver);
    /* Passes in progress are abandoned before the logs close. */
    cleaners_stop(b->cleaners);
    b->cleaners = NULL;
    /* The coordinators hold references on their topics' partitions. */
    txns_mgr_destroy(b);
    groups_mgr_destroy(b);
    /* Closing the registry flushes every log and marks the dirs clean. */
    int n_dirs = b->cfg->log_dirs.n;
    int not_marked = bmeta_close(b->meta);
    b->meta = NULL;
    if (not_marked == 0)
        LOG_INFO("broker", "shut down cleanly (every log directory is marked clean)");
    else
        LOG_WARN("broker",
                 "shut down, but %d of %d log directories could not be marked clean (see above): their logs "
                 "are recovered at the next start",
                 not_marked, n_dirs);
}

void broker_destroy(broker *b) {
    if (b == NULL)
        return;
    driver_stop(b->driver);
    cleaners_stop(b->cleaners);
    b->cleaners = NULL;
    observe_stop(b);
    brepl_stop(b);
    txns_mgr_destroy(b);
    groups_mgr_destroy(b);
    /* A broker that never started cleanly leaves its dirs unclean. Its
     * quorum threads end here, before the fetch manager they notify. */
    if (b->meta)
        bmeta_close(b->meta);
    b->meta = NULL;
    /* Before the network layer goes: answering a parked fetch needs it. */
    fetch_mgr_destroy(b);
    if (b->net)
        net_server_destroy(b->net);
    if (b->ctl_net)
        net_server_destroy(b->ctl_net);
    brepl_free(b);
    tls_server_destroy(b->tls); /* after the servers that used it */
    bsasl_destroy(b->sasl);
    bauthz_destroy(b->authz);
    bquota_destroy(b->quota);
    storage_ctx_free(b->storage);
    driver_free(b->driver);
    observe_destroy(b);
    obs_metrics_destroy(b->metrics);
    producer_ids_destroy(b->pids);
    if (sl_env_bound() == &b->env)
        sl_env_bind(NULL);
    free(b);
}

static atomic_bool stopped_fatally;

void broker_stop_fatally(void) {
    atomic_store(&stopped_fatally, true);
    kill(getpid(), SIGTERM);
}

bool broker_stopped_fatally(void) { return atomic_load(&stopped_fatally); }
