/*
 * broker.h - the broker: owns the configuration, the network server, the
 * metadata (meta.h: log, image, controller, partitions), and ties them to the
 * request handlers.
 *
 * Lifecycle: broker_create() validates and opens everything it needs (log
 * directories, listeners) and fails with a log line naming the problem;
 * broker_start() starts serving; broker_shutdown() stops accepting, lets
 * in-flight requests finish (long work inside them, such as down-conversion,
 * stops at once: see `draining`), flushes and closes cleanly.
 */
#ifndef SLUICE_BROKER_BROKER_H
#define SLUICE_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/meta.h"
#include "core/env.h"
#include "net/server.h"

/* Opaque here: defined and owned by fetch.c, groups.c and driver.c. */
struct fetch_mgr;
struct groups_mgr;
struct txns_mgr;
struct driver;
struct obs_metrics;
struct observe;
struct tls_server;
struct bsasl;
struct bauthz;
struct bquota;

struct broker {
    const broker_config *cfg;
    /* Clocks, random source, file operations and node id of this broker;
     * bound to every thread it starts, so log lines carry its node. */
    sl_env env;
    net_server *net;
    net_server *ctl_net;    /* the controller listener of a quorum member; NULL otherwise */
    struct tls_server *tls; /* the client listener's TLS context if it is SSL; NULL otherwise */
    struct bsasl *sasl;     /* the client listener's SASL setup if it is SASL_*; NULL otherwise */
    struct bauthz *authz;   /* the authorizer (authz.h); NULL without authorizer.class.name */
    struct bquota *quota;   /* client quota rates (quota.h) */
    storage_ctx *storage;   /* files and segment descriptor cache of every log */
    /* The metadata log, image, controller and partitions (meta.h). */
    bmeta *meta;
    /* Owned by the fetch module (long polls, fetch sessions); NULL until set. */
    struct fetch_mgr *fetch;
    /* Owned by the group coordinator (groups.h); NULL until started. */
    struct groups_mgr *groups;
    /* Owned by the transaction coordinator (txns.h); NULL until started. */
    struct txns_mgr *txns;
    /* The one timer thread: long polls, group shards, housekeeping (roll,
     * flush, retention, metadata snapshots) as tasks. */
    struct driver *driver;
    /* Follower fetchers and ISR proposals (replication.h); NULL until started. */
    struct brepl *repl;
    /* The log cleaner threads (log_cleaner.h); NULL when disabled. */
    struct cleaners *cleaners;
    /* Set first thing on shutdown: handlers still working on a request
     * (breq_should_stop) answer with what they have instead of finishing. */
    atomic_bool draining;
    /* Counters and latency histograms the request path bumps (obs/metrics.h). */
    struct obs_metrics *metrics;
    /* The HTTP listener, the history ring (observe.h); NULL until created. */
    struct observe *observe;
    /* The producer id block InitProducerId hands ids from (producer_ids.h). */
    struct producer_ids *pids;
};

typedef struct broker broker;

/* Creates a broker for cfg (which must outlive it). NULL on failure, logged. */
broker *broker_create(const broker_config *cfg);
int broker_start(broker *b);
/* The port of the HTTP listener (metrics, console); 0 when there is none. */
uint16_t broker_http_port(const broker *b);
/* The port the first client listener is bound to (useful with port 0). */
uint16_t broker_port(const broker *b);
void broker_shutdown(broker *b);
void broker_destroy(broker *b);

/* A part of the broker that cannot go on (a voter's metadata log cannot be
 * written, a committed record does not apply) stops the whole process: the
 * caller has logged why; this starts the clean shutdown (as SIGTERM does)
 * and makes broker_stopped_fatally() true, so sluiced exits 1 and a service
 * manager sees a failure rather than an orderly stop. */
void broker_stop_fatally(void);
bool broker_stopped_fatally(void);

/* The network layer's configuration for cfg's first client listener (NULL
 * if it has none). Storage can ask net_max_fds() of it how many descriptors
 * connections may take. The strings point into cfg. */
const config_listener *broker_net_config(const broker_config *cfg, net_config *out);

#endif
