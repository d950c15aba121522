/*
 * kraw.h - a minimal blocking Kafka client over one plain TCP socket, built on
 * Sluice's own protocol codec (proto/gen/kafka_msgs.h, proto/header.h,
 * proto/wire.h). The `sluice` tools use it only for calls librdkafka 2.0
 * lacks (IncrementalAlterConfigs, DescribeLogDirs); everything else goes
 * through librdkafka.
 *
 * One request at a time: write a frame, read the matching response frame.
 * Frames read are bounded by KRAW_MAX_FRAME and every socket operation by the
 * connection's timeout, so a silent or hostile peer costs at most that.
 * The connection owns its socket, its receive buffer and an arena for decoded
 * responses; kraw_close frees all three.
 */
#ifndef SLUICE_TOOLS_KRAW_H
#define SLUICE_TOOLS_KRAW_H

#include <stdint.h>

#include "core/arena.h"
#include "proto/wire.h"
#include "tools/kclient.h"

#define KRAW_MAX_FRAME (16 * 1024 * 1024)

typedef struct kraw {
    int fd;
    int timeout_ms;
    int32_t next_corr;
    uint8_t *rbuf; /* last response frame */
    size_t rcap;
    arena a;                  /* decoded responses; reset by each call */
    int16_t max_version[128]; /* from ApiVersions; -1 = not served */
} kraw;

/* Connects to the first bootstrap server that accepts and reads its
 * ApiVersions. CLI_OK, or an exit code after a message. */
int kraw_open(kraw *c, const kc_opts *o);
void kraw_close(kraw *c);

/* Highest version of api_key the broker serves that is also <= want, or -1. */
int16_t kraw_version(const kraw *c, int16_t api_key, int16_t want);

/* Sends body (already encoded for api_key/version) with the right request
 * header and reads the response; on success r is positioned at the response
 * body (after the response header). CLI_OK or an exit code after a message. */
int kraw_call(kraw *c, const kc_opts *o, int16_t api_key, int16_t version, const uint8_t *body,
              size_t body_len, wire_reader *r);

/* Connects, reads ApiVersions and checks that the broker serves every API in
 * keys[0..n); if not, prints "the broker does not serve <names>, needed for
 * <what>" and returns CLI_EFAIL. librdkafka would otherwise retry the
 * missing call until its timeout, which reads as a slow broker. */
int kraw_require(const kc_opts *o, const int16_t *keys, int n, const char *what);

#endif
