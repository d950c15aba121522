/*
 * broker/sasl.h - SASL authentication on the broker's SASL_PLAINTEXT and
 * SASL_SSL listeners: the per-connection session, Kafka's two framings
 * (SaslHandshake v1 + SaslAuthenticate, and the old v0 framing where raw
 * size-prefixed SASL tokens follow SaslHandshake v0), the gate that keeps
 * other APIs out until authentication succeeds, and the credentials:
 * PLAIN's users from the listener's JAAS text, SCRAM's from the metadata
 * image (UserScramCredentialRecord). The mechanisms themselves are in
 * security/sasl.h.
 *
 * As in Kafka: before authentication only ApiVersions, SaslHandshake and
 * SaslAuthenticate are served on a SASL listener; any other request closes
 * the connection (with a log line). A failed authentication is answered
 * with SASL_AUTHENTICATION_FAILED (v1 framing) and the connection closed;
 * with the v0 framing the connection is just closed. Every failure is
 * logged (rate-limited) with the peer, listener, mechanism and user, never
 * the password. The authenticated principal ("User:<name>") stays with the
 * connection (bsasl_principal) for authorization.
 *
 * Threads: a session is touched only by the handler of its connection's
 * current request (net_request_session); the broker-wide state is read-only
 * after bsasl_create.
 */
#ifndef SLUICE_BROKER_SASL_H
#define SLUICE_BROKER_SASL_H

#include <stdbool.h>

#include "broker/config.h"
#include "broker/request.h"

typedef struct bsasl bsasl;

/* The SASL configuration of listener l (its mechanisms and PLAIN users).
 * NULL, logged, when its keys are invalid. */
bsasl *bsasl_create(const broker_config *cfg, const config_listener *l);
void bsasl_destroy(bsasl *s);

/* net_config.session_free for SASL listeners. */
void bsasl_session_free(void *ctx, void *session);

/* Called first for every frame on a SASL listener: true if the frame was a
 * raw SASL token (v0 framing) and has been answered. */
bool bsasl_intercept(broker *b, net_request *nr);
/* After the header is parsed: false if the request may not be served now
 * (the caller closes the connection; the reason is logged). */
bool bsasl_gate(breq *r);
/* The authenticated principal of r's connection: "User:alice" after SASL,
 * "User:<certificate subject>" for an SSL client with a certificate,
 * "User:ANONYMOUS" otherwise. Lives as long as r. */
const char *bsasl_principal(breq *r);

breq_status api_sasl_handshake(breq *r);
breq_status api_sasl_authenticate(breq *r);

#endif
