/*
 * rpc.h - one Kafka request from this broker to another node, over a
 * net_client connection, with the generated codecs: the quorum's RPCs,
 * broker registration, and admin requests forwarded to the active
 * controller.
 */
#ifndef SLUICE_BROKER_RPC_H
#define SLUICE_BROKER_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "net/client.h"
#include "proto/wire.h"

#define BRPC_FRAME_MAX (64 << 20)

/* Encodes req (the api's request struct) behind a request header, sends it,
 * reads the response and decodes it from a into *resp (the response
 * struct, allocated from a). 0, or -errno (transport) / -EPROTO (a response
 * that does not decode or answers another correlation id). */
int brpc_call(net_client *c, int16_t api_key, int16_t version, int32_t corr, const char *client_id,
              const void *req, arena *a, void **resp, int timeout_ms);

/* Sends an already framed request body (header + body, as a client sent
 * it) and reads the response frame into c->buf/c->len. 0 or -errno. */
int brpc_call_raw(net_client *c, const uint8_t *frame, size_t len, int timeout_ms);

#endif
