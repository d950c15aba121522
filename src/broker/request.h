/*
 * request.h - one Kafka request inside the broker, from frame to response.
 *
 * The network layer hands the broker a frame (net_request). request.c turns
 * it into a breq: it parses the header, checks the version, decodes the body
 * with the generated codec into memory from the request's own arena, and
 * calls the API's handler. The handler fills the response struct; request.c
 * encodes it behind the response header and the size prefix and gives it back
 * to the network layer. Everything the request allocated lives in its arena
 * and goes away with it.
 *
 * Handlers return at once (BREQ_DONE), or keep the request and finish it later
 * from any thread with breq_complete() (BREQ_ASYNC: long-polling fetches,
 * acks=all produces), or ask for no response (acks=0 produce) or for the
 * connection to be closed.
 *
 * Time: every request has a work deadline (sluice.request.work.max.ms after
 * it reached a handler). Handlers whose work is not bounded by the request's
 * size check breq_should_stop() as they go and answer with what they have
 * (partial answers are legal where they use it: Fetch may return fewer
 * bytes); a broker that shuts down makes them stop at once.
 *
 * Bad input: an unknown API key, a body that does not decode, or an
 * unsupported version of an API other than ApiVersions closes the connection
 * with a log line naming the client, as Kafka does; ApiVersions at an
 * unsupported version is answered with UNSUPPORTED_VERSION and the supported
 * ranges so the client can retry.
 */
#ifndef SLUICE_BROKER_REQUEST_H
#define SLUICE_BROKER_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "net/server.h"
#include "proto/gen/kafka_msgs.h"
#include "proto/header.h"
#include "proto/wire.h"

typedef struct broker broker;

/* A piece of a response that is sent from a file instead of from memory
 * (records of a Fetch response). */
typedef struct breq_file_range {
    int fd;
    int64_t off;
    size_t len;
    net_release_fn release;
    void *arg;
} breq_file_range;

#define BREQ_MAX_FILE_RANGES 4096

typedef struct breq {
    broker *b;
    net_request *net;
    proto_request_header hdr;
    const kafka_api_info *api;
    arena mem;  /* everything this request allocates */
    void *req;  /* decoded request struct */
    void *resp; /* response struct, initialised to defaults */
    int64_t start_ns;
    int64_t deadline_ns; /* start + sluice.request.work.max.ms: see breq_should_stop */
    /* For the latency metrics: when the handler parked the request
     * (breq_parked); -1 once the handler answered it itself; 0 until then. */
    int64_t local_end_ns;
    /* file ranges to splice into the encoded response (see wire_splice_fn) */
    breq_file_range *files;
    int n_files, cap_files;
    bool controller_listener;  /* arrived on a controller listener (never forwarded again) */
    bool close_after_response; /* BREQ_DONE, then close the connection (a failed SASL exchange) */
    /* Authorization (authz.h): the image whose ACLs decide, the principal
     * and the host, taken at the first check; NULL until then. */
    struct md_image *authz_img;
    const char *authz_principal;
    char authz_host[64];
    /* Throttle time a handler earned for r (the controller mutation quota);
     * request.c answers with the largest of it and the other quotas'. */
    int64_t throttle_ms;
} breq;

typedef enum breq_status {
    BREQ_DONE = 0,        /* resp is filled: encode and send it */
    BREQ_NO_RESPONSE = 1, /* send nothing (Produce with acks=0) */
    BREQ_ASYNC = 2,       /* the handler calls breq_complete() later */
    BREQ_CLOSE = 3,       /* close the connection without answering */
} breq_status;

typedef breq_status (*broker_api_fn)(breq *r);

/* One row of the broker's API table: what it answers, at which versions. */
typedef struct broker_api {
    int16_t key;
    int16_t min_version, max_version;
    broker_api_fn fn;
} broker_api;

/* The APIs the broker serves (api_*.c register theirs in request.c's table). */
const broker_api *broker_api_lookup(int16_t key);
/* Filter for ApiVersions: only the served APIs, with the served ranges. */
bool broker_api_filter(const kafka_api_info *api, void *ctx, int16_t *min, int16_t *max);
/* Served version range of a key; false if the broker does not serve it. */
bool broker_api_range(int16_t key, int16_t *min, int16_t *max);

/* The network layer's handler: ctx is the broker. */
void broker_handle_request(void *ctx, net_request *nr);
/* The same for a controller listener (controller.listener.names). */
void broker_handle_controller_request(void *ctx, net_request *nr);

/* The controller mutation quota (broker/quota.h) for CreateTopics,
 * CreatePartitions and DeleteTopics, where the request is handled (a
 * request forwarded to the active controller arrives there on the
 * controller listener, which quotas do not cover: see docs/security.md).
 * breq_mutation_refused: with strict (the versions that know
 * THROTTLING_QUOTA_EXCEEDED), whether the quota is exceeded now; the topic
 * is then refused and r throttled until it is not. breq_mutation_done:
 * records n partitions created or deleted, throttling r if that passes the
 * quota. Neither counts validate-only requests (the caller skips them). */
bool breq_mutation_refused(breq *r, bool strict);
void breq_mutation_done(breq *r, int32_t n);

/* Finishes an asynchronous request: encodes r->resp and sends it, then frees r. */
void breq_complete(breq *r);
/* Drops an asynchronous request without answering (connection closes). */
void breq_abort(breq *r);
/* Marks the end of a handler's own work on r just before it parks r to be
 * answered later (a long poll): the time until breq_complete() counts as
 * the request's remote time in the latency metrics. A request parked
 * without it counts all its time after the queue as remote. */
void breq_parked(breq *r);

/* Whether a handler doing long work for r (a loop whose cost the request's
 * size does not bound, such as down-conversion) must stop now and answer
 * with what it has: the request's work deadline has passed or the broker is
 * shutting down. Cheap enough to call once per batch. */
bool breq_should_stop(const breq *r);

/* Allocation from the request's arena (zeroed); NULL when the request's
 * memory limit is reached. */
void *breq_alloc(breq *r, size_t n);
void *breq_calloc(breq *r, size_t count, size_t size);

/* Reserves n bytes of the network layer's budget for responses held in
 * memory (net_request_reserve) before building that many response bytes in
 * memory; false when the budget is spent, and the handler then answers with
 * less. breq_unreserve_response gives back what was not used. */
bool breq_reserve_response(breq *r, size_t n);
void breq_unreserve_response(breq *r, size_t n);

/* Queues a file range to be sent in place of response bytes. A records field
 * that should come from files is set to (kbytes){NULL, total}: the encoder
 * then takes, in encoding order, as many queued ranges as add up to total.
 * So attach ranges in the order their fields appear in the response.
 * release(arg) runs exactly once, also on error. Returns false when the
 * per-request limit is reached. */
bool breq_attach_file(breq *r, int fd, int64_t off, size_t len, net_release_fn release, void *arg);

#endif
