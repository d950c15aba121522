/*
 * tls.h - TLS for the network layer, on OpenSSL: a listener's TLS context
 * (its certificate, key, trust store and policy, built from Kafka's PEM
 * configuration keys) and the TLS state of one connection over a
 * non-blocking socket.
 *
 * The context. tls_server_create() builds an SSL_CTX from a tls_config and
 * checks it (a key that does not match its certificate, an unreadable file,
 * an unknown protocol or cipher suite is an error that names the key). The
 * key store and trust store files are checked for a change of mtime or size
 * at most every reload_check_ms, when a connection is accepted; a change
 * builds a new context that connections accepted from then on use, while
 * established ones keep theirs. A new context that fails to build is logged
 * once and the old one stays. The context is shared by the server's network
 * threads: its swap is under a mutex, and every connection holds its own
 * reference (OpenSSL's), so a swap never pulls a context from under one.
 *
 * A connection. tls_conn wraps one accepted socket. Its calls never block
 * and follow read(2)/write(2): > 0 bytes moved, 0 at the end of the stream,
 * -1 with errno EAGAIN when the socket must become readable or writable
 * first (tls_conn_wants_write() says which), -1 with another errno (EPROTO
 * for a TLS error) when the connection is beyond use. A write that returned
 * EAGAIN must be retried with the same bytes and length (the buffer may
 * move). OpenSSL's read and write buffers are released whenever they are
 * empty (SSL_MODE_RELEASE_BUFFERS), so an idle TLS connection costs little
 * more than a plain one.
 *
 * Threads: a tls_conn belongs to its connection's network thread; the
 * tls_server may be used from any thread.
 */
#ifndef SLUICE_NET_TLS_H
#define SLUICE_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum tls_client_auth {
    TLS_CLIENT_AUTH_NONE = 0,
    TLS_CLIENT_AUTH_REQUESTED,
    TLS_CLIENT_AUTH_REQUIRED,
} tls_client_auth;

/* Kafka's ssl.* keys for one listener. Strings may be NULL (unset); the
 * server copies what it needs. */
typedef struct tls_config {
    const char *listener;                /* name, for log lines */
    const char *keystore_type;           /* "PEM" (the only type supported) */
    const char *keystore_location;       /* PEM file: private key and certificate chain */
    const char *keystore_chain;          /* inline PEM certificate chain */
    const char *keystore_key;            /* inline PEM private key */
    const char *key_password;            /* for an encrypted (PKCS#8) key */
    const char *truststore_type;         /* "PEM" */
    const char *truststore_location;     /* PEM file of trusted CA certificates */
    const char *truststore_certificates; /* inline PEM CA certificates */
    tls_client_auth client_auth;
    const char *enabled_protocols; /* "TLSv1.2,TLSv1.3"; NULL or "": both */
    const char *cipher_suites;     /* comma list of IANA or OpenSSL names; NULL or "": OpenSSL's default */
    int64_t reload_check_ms;       /* how often files are checked for changes; <= 0: never */
} tls_config;

typedef struct tls_server tls_server;
typedef struct tls_conn tls_conn;

/* OpenSSL's read buffer per connection while it holds data: records are
 * read ahead, several per read(2). */
#define TLS_READ_BUFFER (64 * 1024)

/* Most bytes of a client's certificate chain (OpenSSL's default is 100 KiB). */
#define TLS_PEER_CHAIN_MAX (64 * 1024)

/* Most bytes of a PEM text (a file or an inline value) read. */
#define TLS_PEM_MAX (1u << 20)

/* Builds the context. NULL with err filled on failure. */
tls_server *tls_server_create(const tls_config *cfg, char *err, size_t errn);
void tls_server_destroy(tls_server *s);
/* Checks the files now (as a connection accepted at now_ms would): 1 if a
 * new context was built, 0 if nothing changed, -1 if the changed files do
 * not make a valid context (the old one stays; logged). */
int tls_server_reload(tls_server *s, int64_t now_ms);
/* Contexts built so far (1 after creation, +1 per reload), for tests. */
uint64_t tls_server_generation(tls_server *s);

/* A connection over fd (non-blocking, owned by the caller, who closes it
 * after tls_conn_free). NULL on allocation failure. */
tls_conn *tls_conn_new(tls_server *s, int fd, int64_t now_ms);
/* Sends a close_notify if it can without waiting, and frees the state. */
void tls_conn_free(tls_conn *c);

/* Advances the handshake: 1 done, 0 in progress (wait for the socket, see
 * tls_conn_wants_write), -1 failed with why filled (OpenSSL's reason, or
 * "peer closed the connection during the handshake"). */
int tls_conn_handshake(tls_conn *c, char *why, size_t whyn);
bool tls_conn_wants_write(const tls_conn *c);
ssize_t tls_conn_read(tls_conn *c, void *buf, size_t n);
/* Like tls_conn_read, but leaves the bytes to be read again. */
ssize_t tls_conn_peek(tls_conn *c, void *buf, size_t n);
ssize_t tls_conn_write(tls_conn *c, const void *buf, size_t n);
/* Decrypted bytes waiting in the connection (readable without the socket). */
size_t tls_conn_pending(const tls_conn *c);
/* Whether bytes (decrypted, or records read ahead from the socket) wait in
 * the connection: then a read may succeed without the socket turning
 * readable. */
bool tls_conn_has_pending(const tls_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" after the handshake, for logs. */
void tls_conn_describe(const tls_conn *c, char *out, size_t n);
/* The client certificate's subject as an RFC 2253 distinguished name
 * ("CN=alice,O=Example"), or "" when the client sent none. */
void tls_conn_peer_subject(const tls_conn *c, char *out, size_t n);

/* Rewrites PEM text whose line breaks were lost (Kafka's inline values are
 * often written on one line) into standard PEM: each BEGIN/END block with
 * its base64 body on lines of 64 characters. Text outside blocks is dropped.
 * Returns the length written (< outn, NUL-terminated), or -1 if a block is
 * unterminated, its body is not base64 or out is too small. */
long tls_pem_normalize(const char *in, size_t n, char *out, size_t outn);

#endif
