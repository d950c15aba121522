/*
 * security/sasl.h - the SASL mechanisms' wire formats and the server side
 * of their exchanges, without I/O, clocks or threads: bytes in, bytes and a
 * verdict out. The broker (broker/sasl.c) owns the connection state, the
 * Kafka framing and the credentials; this module only decodes what a client
 * sent, which is untrusted (tests/fuzz/fuzz_sasl.c feeds it anything).
 *
 *   PLAIN (RFC 4616): one message, [authzid] NUL authcid NUL passwd.
 *   SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677): client-first,
 *     server-first, client-final, server-final; the server keeps only the
 *     stored key and server key of a user (Kafka's UserScramCredentialRecord).
 *   Kafka's JAAS configuration text, from which PLAIN's users are read:
 *     `<LoginModule class> <flag> key="value" ... ;` (several modules may
 *     follow each other).
 *
 * Limits: names and passwords at most SASL_NAME_MAX bytes, a JAAS text at
 * most SASL_JAAS_USERS_MAX users, SCRAM iterations 4096..16384 as Kafka.
 */
#ifndef SLUICE_SECURITY_SASL_H
#define SLUICE_SECURITY_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SASL_NAME_MAX        255
#define SASL_JAAS_USERS_MAX  1024
#define SASL_SCRAM_NONCE_MAX 255
#define SASL_SCRAM_SALT_MAX  128
#define SASL_SCRAM_HASH_MAX  64 /* SHA-512 */
#define SASL_SCRAM_ITER_MIN  4096
#define SASL_SCRAM_ITER_MAX  16384
#define SASL_SCRAM_MSG_MAX   1024 /* most bytes of one SCRAM message */

/* ---- PLAIN ------------------------------------------------------------------- */

typedef struct sasl_plain_token {
    const char *authzid, *user, *pass; /* point into the token; not NUL-terminated */
    size_t authzid_n, user_n, pass_n;
} sasl_plain_token;

/* Splits a PLAIN message. 0, or -1 with why filled (missing separators,
 * empty user or password, a field over SASL_NAME_MAX, NUL in the password). */
int sasl_plain_parse(const uint8_t *tok, size_t n, sasl_plain_token *out, char *why, size_t whyn);

/* Compares a and b in time that depends only on their lengths. */
bool sasl_secret_eq(const void *a, size_t an, const void *b, size_t bn);

/* ---- JAAS configuration text ---------------------------------------------------- */

typedef struct sasl_jaas_user {
    char name[SASL_NAME_MAX + 1];
    char pass[SASL_NAME_MAX + 1];
} sasl_jaas_user;

/* The user_<name>="<password>" options of a JAAS text; other options are
 * checked for syntax and skipped. out has room for max users; *n gets the
 * count. 0, or -1 with why filled (never quoting a password). */
int sasl_jaas_users(const char *text, sasl_jaas_user *out, int max, int *n, char *why, size_t whyn);

/* ---- SCRAM ---------------------------------------------------------------------- */

typedef enum sasl_scram_mech {
    SASL_SCRAM_SHA_256 = 1, /* Kafka's ScramMechanism numbering */
    SASL_SCRAM_SHA_512 = 2,
} sasl_scram_mech;

/* "SCRAM-SHA-256" -> SASL_SCRAM_SHA_256; 0 if neither. */
int sasl_scram_mech_of(const char *name);
const char *sasl_scram_mech_name(int mech);
size_t sasl_scram_hash_len(int mech);

/* What the server stores for a user and mechanism. */
typedef struct sasl_scram_cred {
    uint8_t salt[SASL_SCRAM_SALT_MAX];
    size_t salt_n;
    uint8_t stored_key[SASL_SCRAM_HASH_MAX];
    uint8_t server_key[SASL_SCRAM_HASH_MAX];
    int32_t iterations;
} sasl_scram_cred;

/* Derives a credential from a password (SaltedPassword = PBKDF2(...)).
 * 0, or -1 on a bad mechanism, salt or iteration count. */
int sasl_scram_derive(int mech, const char *pass, size_t pass_n, const uint8_t *salt, size_t salt_n,
                      int32_t iterations, sasl_scram_cred *out);
/* From the SaltedPassword Kafka's AlterUserScramCredentials carries. */
int sasl_scram_from_salted(int mech, const uint8_t *salted, size_t salted_n, const uint8_t *salt,
                           size_t salt_n, int32_t iterations, sasl_scram_cred *out);

/* From stored keys (the metadata log's UserScramCredentialRecord); any
 * positive iteration count is accepted here. 0, or -1 on bad lengths. */
int sasl_scram_from_keys(int mech, const uint8_t *salt, size_t salt_n, const uint8_t *stored_key,
                         const uint8_t *server_key, size_t key_n, int32_t iterations, sasl_scram_cred *out);

/* client-first-message, parsed: gs2 header "n,," (channel binding is not
 * offered; "y,," is accepted, "p=" refused; an authzid must equal the user),
 * then n=<user>,r=<nonce>[,extensions]. The user is decoded (=2C, =3D). */
typedef struct sasl_scram_first {
    char user[SASL_NAME_MAX + 1];
    char nonce[SASL_SCRAM_NONCE_MAX + 1];
    char bare[SASL_SCRAM_MSG_MAX]; /* client-first-message-bare (a copy: AuthMessage needs it later) */
    size_t bare_n;
    char gs2[SASL_NAME_MAX + 16]; /* the gs2 header, echoed in c= of the final message */
    size_t gs2_n;
    bool tokenauth; /* tokenauth=true extension (delegation tokens) */
} sasl_scram_first;

int sasl_scram_parse_first(const uint8_t *msg, size_t n, sasl_scram_first *out, char *why, size_t whyn);

/* client-final-message, parsed: c=<base64 gs2 header>,r=<nonce>[,...],p=<base64 proof>.
 * The server accepts a nonce that ends with the combined nonce, as Kafka
 * does (librdkafka 2.0 repeats its own nonce in front). */
typedef struct sasl_scram_final {
    uint8_t channel[SASL_NAME_MAX + 16];
    size_t channel_n;
    char nonce[2 * SASL_SCRAM_NONCE_MAX + 2];
    uint8_t proof[SASL_SCRAM_HASH_MAX];
    size_t proof_n;
    size_t without_proof_n; /* length of client-final-message-without-proof */
} sasl_scram_final;

int sasl_scram_parse_final(const uint8_t *msg, size_t n, sasl_scram_final *out, char *why, size_t whyn);

/* One SCRAM exchange, server side. */
typedef enum sasl_scram_state {
    SASL_SCRAM_START = 0,
    SASL_SCRAM_WAIT_FINAL, /* server-first sent */
    SASL_SCRAM_DONE,       /* authenticated */
    SASL_SCRAM_FAILED,
} sasl_scram_state;

typedef struct sasl_scram_server {
    int mech;
    sasl_scram_state state;
    sasl_scram_first first;
    char server_first[SASL_SCRAM_MSG_MAX];
    size_t server_first_n;
    char nonce[2 * SASL_SCRAM_NONCE_MAX + 2]; /* client nonce + server nonce */
    sasl_scram_cred cred;
    bool have_cred; /* false: an unknown user, who fails at the final step */
} sasl_scram_server;

void sasl_scram_server_init(sasl_scram_server *s, int mech);
/* Step 1: after the caller parsed client-first (sasl_scram_parse_first into
 * s->first) and looked the user up (cred NULL if unknown: the exchange goes
 * on with a made-up salt, so an unknown user is not told apart from a wrong
 * password), builds server-first into s->server_first. server_nonce is
 * random printable text from the caller (no ',' ). */
int sasl_scram_server_first(sasl_scram_server *s, const sasl_scram_cred *cred, const char *server_nonce,
                            char *why, size_t whyn);
/* Step 2: checks client-final. On success (0) writes server-final
 * ("v=<signature>") into out (outn >= 128) and sets *out_n; -1 with why
 * filled when the proof, nonce or channel binding is wrong. */
int sasl_scram_server_final(sasl_scram_server *s, const uint8_t *msg, size_t n, char *out, size_t outn,
                            size_t *out_n, char *why, size_t whyn);

/* Base64 (RFC 4648, padded). Encode returns the length written (< outn,
 * NUL-terminated) or -1; decode the bytes written or -1 on bad input. */
long sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t outn);
long sasl_b64_decode(const char *in, size_t n, uint8_t *out, size_t outn);

#endif
