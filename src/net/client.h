/*
 * client.h - a blocking connection to another node for the broker's own
 * requests (the Raft quorum's RPCs, forwarded admin requests, broker
 * registration): connect, write one size-prefixed frame, read one back.
 *
 * Every operation is bounded by a timeout, and a frame read by max_frame,
 * so a silent or hostile peer costs the caller at most the timeout and
 * that much memory. Not thread-safe: one thread uses a connection at a time.
 */
#ifndef SLUICE_NET_CLIENT_H
#define SLUICE_NET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct net_client {
    int fd; /* -1: not connected */
    char host[256];
    uint16_t port;
    uint8_t *buf; /* the last frame read (without its size prefix) */
    size_t cap, len;
} net_client;

void net_client_init(net_client *c, const char *host, uint16_t port);
/* Connects if not connected. 0, or -errno. */
int net_client_connect(net_client *c, int timeout_ms);
void net_client_close(net_client *c);
/* Writes frame[0..len) behind its int32 size prefix. 0, or -errno (the
 * connection is closed). */
int net_client_send(net_client *c, const uint8_t *frame, size_t len, int timeout_ms);
/* Reads one frame into c->buf/c->len. 0, or -errno (-EMSGSIZE over
 * max_frame, -ETIMEDOUT); the connection is closed on error. */
int net_client_recv(net_client *c, size_t max_frame, int timeout_ms);
void net_client_free(net_client *c);

#endif
