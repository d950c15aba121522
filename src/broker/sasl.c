/*
 * broker/sasl.c - SASL sessions, framing and the pre-authentication gate.
 * See sasl.h.
 */
#include "broker/sasl.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/meta.h"
#include "core/clock.h"
#include "core/log.h"
#include "security/sasl.h"

#define MECH_PLAIN 0x1u
#define MECH_S256  0x2u
#define MECH_S512  0x4u

struct bsasl {
    char listener[CONFIG_LISTENER_NAME_MAX];
    unsigned mechs; /* MECH_* enabled */
    sasl_jaas_user *plain;
    int n_plain;
    int64_t reauth_ms; /* connections.max.reauth.ms; 0: none */
};

typedef enum session_state {
    SESS_START = 0,    /* nothing yet, or authenticated and free to re-authenticate */
    SESS_RAW,          /* after SaslHandshake v0: raw tokens follow */
    SESS_AUTHENTICATE, /* after SaslHandshake v1: SaslAuthenticate follows */
} session_state;

typedef struct bsasl_session {
    session_state state;
    unsigned mech; /* MECH_* of the exchange under way */
    sasl_scram_server scram;
    bool authenticated;
    int64_t expires_ms; /* monotonic; 0: never (KIP-368) */
    char user[SASL_NAME_MAX + 1];
    char principal[SASL_NAME_MAX + 8];
} bsasl_session;

static log_ratelimit fail_rl = LOG_RATELIMIT_INIT(10, 1000);
static log_ratelimit gate_rl = LOG_RATELIMIT_INIT(10, 1000);

static unsigned mech_bit(const char *name, size_t n) {
    if (n == 5 && memcmp(name, "PLAIN", 5) == 0)
        return MECH_PLAIN;
    if (n == 13 && memcmp(name, "SCRAM-SHA-256", 13) == 0)
        return MECH_S256;
    if (n == 13 && memcmp(name, "SCRAM-SHA-512", 13) == 0)
        return MECH_S512;
    return 0;
}

static const char *mech_name(unsigned bit) {
    return bit == MECH_PLAIN  ? "PLAIN"
           : bit == MECH_S256 ? "SCRAM-SHA-256"
           : bit == MECH_S512 ? "SCRAM-SHA-512"
                              : "?";
}

bsasl *bsasl_create(const broker_config *cfg, const config_listener *l) {
    bsasl *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->listener, sizeof s->listener, "%s", l->name);
    const char *mechs = config_listener_value(cfg, l->name, "sasl.enabled.mechanisms");
    for (const char *p = mechs ? mechs : ""; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        s->mechs |= mech_bit(p, (size_t)(e - p));
        p = e;
    }
    if (s->mechs == 0) {
        LOG_ERROR("broker", "listener %s: sasl.enabled.mechanisms names no mechanism", l->name);
        goto err;
    }
    const char *jaas = config_listener_mech_value(cfg, l->name, "plain", "sasl.jaas.config");
    if (jaas != NULL) {
        char why[256];
        s->plain = calloc(SASL_JAAS_USERS_MAX, sizeof *s->plain);
        if (s->plain == NULL ||
            sasl_jaas_users(jaas, s->plain, SASL_JAAS_USERS_MAX, &s->n_plain, why, sizeof why) != 0) {
            LOG_ERROR("broker", "listener.name.%s.plain.sasl.jaas.config: %s", l->name,
                      s->plain ? why : "out of memory");
            goto err;
        }
    } else if (s->mechs & MECH_PLAIN) {
        LOG_WARN(
            "broker",
            "listener %s offers PLAIN but has no listener.name.%s.plain.sasl.jaas.config: no PLAIN user can "
            "log in",
            l->name, l->name);
    }
    const char *reauth = config_listener_value(cfg, l->name, "connections.max.reauth.ms");
    s->reauth_ms = reauth ? strtoll(reauth, NULL, 10) : 0;
    LOG_INFO("broker", "listener %s: SASL with %s%s%s%s (%d PLAIN users)", l->name,
             s->mechs & MECH_PLAIN ? "PLAIN " : "", s->mechs & MECH_S256 ? "SCRAM-SHA-256 " : "",
             s->mechs & MECH_S512 ? "SCRAM-SHA-512 " : "", s->reauth_ms > 0 ? "with re-authentication" : "",
             s->n_plain);
    return s;
err:
    bsasl_destroy(s);
    return NULL;
}

void bsasl_destroy(bsasl *s) {
    if (s == NULL)
        return;
    if (s->plain) {
        OPENSSL_cleanse(s->plain, SASL_JAAS_USERS_MAX * sizeof *s->plain);
        free(s->plain);
    }
    free(s);
}

void bsasl_session_free(void *ctx, void *session) {
    (void)ctx;
    if (session) {
        OPENSSL_cleanse(session, sizeof(bsasl_session));
        free(session);
    }
}

static bsasl_session *session_of(net_request *nr) {
    void **slot = net_request_session(nr);
    if (*slot == NULL)
        *slot = calloc(1, sizeof(bsasl_session));
    return *slot;
}

/* A user name as it may appear in a log line: printable ASCII only. */
static void printable(const char *in, size_t n, char *out, size_t outn) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outn; i++)
        out[o++] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[o] = '\0';
}

static void log_failure(broker *b, net_request *nr, const bsasl_session *s, const char *user,
                        const char *why) {
    (void)b;
    uint64_t held;
    if (log_ratelimit_allow(&fail_rl, &held))
        LOG_WARN(
            "broker",
            "SASL authentication of user '%s' from %s (%s) failed: %s; closing the connection (%llu similar "
            "lines held back)",
            user[0] ? user : "?", nr->peer, mech_name(s->mech), why, (unsigned long long)held);
}

typedef enum step_result { STEP_CONTINUE, STEP_DONE, STEP_FAIL } step_result;

/* A re-authentication (KIP-368) must keep the principal. */
static bool same_user(const bsasl_session *s, const char *user, size_t n) {
    return !s->authenticated || (strlen(s->user) == n && memcmp(s->user, user, n) == 0);
}

/* One client token of the exchange under way. out receives the server's
 * token (out_n bytes). */
static step_result step(broker *b, net_request *nr, bsasl_session *s, const uint8_t *in, size_t n,
                        uint8_t *out, size_t outn, size_t *out_n) {
    char why[256] = "", user[SASL_NAME_MAX + 1] = "";
    *out_n = 0;
    if (s->mech == MECH_PLAIN) {
        sasl_plain_token t;
        if (sasl_plain_parse(in, n, &t, why, sizeof why) != 0)
            goto fail;
        printable(t.user, t.user_n, user, sizeof user);
        if (t.authzid_n > 0 && (t.authzid_n != t.user_n || memcmp(t.authzid, t.user, t.user_n) != 0)) {
            snprintf(why, sizeof why, "the authorization id differs from the user name");
            goto fail;
        }
        const bsasl *cfg = b->sasl;
        bool ok = false;
        for (int i = 0; cfg != NULL && i < cfg->n_plain && !ok; i++) {
            const sasl_jaas_user *u = &cfg->plain[i];
            if (strlen(u->name) == t.user_n && memcmp(u->name, t.user, t.user_n) == 0)
                ok = sasl_secret_eq(u->pass, strlen(u->pass), t.pass, t.pass_n);
        }
        if (!ok) {
            snprintf(why, sizeof why, "invalid user name or password");
            goto fail;
        }
        if (!same_user(s, t.user, t.user_n)) {
            snprintf(why, sizeof why, "re-authentication as another user is not allowed");
            goto fail;
        }
        memcpy(s->user, t.user, t.user_n);
        s->user[t.user_n] = '\0';
        return STEP_DONE;
    }
    int mech = s->mech == MECH_S256 ? SASL_SCRAM_SHA_256 : SASL_SCRAM_SHA_512;
    if (s->scram.state == SASL_SCRAM_START) {
        sasl_scram_server_init(&s->scram, mech);
        if (sasl_scram_parse_first(in, n, &s->scram.first, why, sizeof why) != 0)
            goto fail;
        printable(s->scram.first.user, strlen(s->scram.first.user), user, sizeof user);
        if (s->scram.first.tokenauth) {
            snprintf(why, sizeof why, "delegation tokens are not supported");
            goto fail;
        }
        sasl_scram_cred cred;
        uint8_t rnd[18];
        char nonce[32];
        bool found =
            b->meta != NULL && bmeta_scram_credential(b->meta, s->scram.first.user, mech, &cred) == 0;
        if (RAND_bytes(rnd, sizeof rnd) != 1 || sasl_b64_encode(rnd, sizeof rnd, nonce, sizeof nonce) < 0) {
            snprintf(why, sizeof why, "no random bytes for the nonce");
            goto fail;
        }
        if (sasl_scram_server_first(&s->scram, found ? &cred : NULL, nonce, why, sizeof why) != 0) {
            if (!found)
                snprintf(why, sizeof why, "no %s credential for this user", sasl_scram_mech_name(mech));
            OPENSSL_cleanse(&cred, sizeof cred);
            goto fail;
        }
        OPENSSL_cleanse(&cred, sizeof cred);
        if (s->scram.server_first_n > outn) {
            snprintf(why, sizeof why, "server-first message too long");
            goto fail;
        }
        memcpy(out, s->scram.server_first, s->scram.server_first_n);
        *out_n = s->scram.server_first_n;
        return STEP_CONTINUE;
    }
    printable(s->scram.first.user, strlen(s->scram.first.user), user, sizeof user);
    if (sasl_scram_server_final(&s->scram, in, n, (char *)out, outn, out_n, why, sizeof why) != 0)
        goto fail;
    if (!same_user(s, s->scram.first.user, strlen(s->scram.first.user))) {
        snprintf(why, sizeof why, "re-authentication as another user is not allowed");
        goto fail;
    }
    snprintf(s->user, sizeof s->user, "%s", s->scram.first.user);
    return STEP_DONE;
fail:
    log_failure(b, nr, s, user, why);
    s->state = SESS_START;
    s->authenticated = false;
    memset(&s->scram, 0, sizeof s->scram);
    return STEP_FAIL;
}

/* The exchange ended well: the connection is authenticated as s->user. */
static void authenticated(broker *b, net_request *nr, bsasl_session *s) {
    s->authenticated = true;
    s->state = SESS_START;
    memset(&s->scram, 0, sizeof s->scram);
    snprintf(s->principal, sizeof s->principal, "User:%s", s->user);
    int64_t reauth = b->sasl ? b->sasl->reauth_ms : 0;
    s->expires_ms = reauth > 0 ? clock_mono_ms() + reauth : 0;
    char shown[SASL_NAME_MAX + 1];
    printable(s->user, strlen(s->user), shown, sizeof shown);
    LOG_DEBUG("broker", "%s authenticated as %s with %s", nr->peer, shown, mech_name(s->mech));
}

bool bsasl_intercept(broker *b, net_request *nr) {
    if (!nr->sasl)
        return false;
    bsasl_session *s = session_of(nr);
    if (s == NULL) {
        net_respond(nr, NULL, true);
        return true;
    }
    if (s->state != SESS_RAW)
        return false;
    /* v0 framing: the frame is a SASL token; the answer is the server's
     * token behind a size prefix. A failure closes the connection. */
    uint8_t out[4 + SASL_SCRAM_MSG_MAX];
    size_t out_n = 0;
    step_result r = step(b, nr, s, nr->frame, nr->len, out + 4, sizeof out - 4, &out_n);
    if (r == STEP_FAIL) {
        net_respond(nr, NULL, true);
        return true;
    }
    if (r == STEP_DONE)
        authenticated(b, nr, s);
    out[0] = (uint8_t)(out_n >> 24);
    out[1] = (uint8_t)(out_n >> 16);
    out[2] = (uint8_t)(out_n >> 8);
    out[3] = (uint8_t)out_n;
    net_response *resp = net_response_new();
    if (resp == NULL || !net_response_append(resp, out, 4 + out_n)) {
        net_response_free(resp);
        net_respond(nr, NULL, true);
        return true;
    }
    net_respond(nr, resp, false);
    return true;
}

bool bsasl_gate(breq *r) {
    net_request *nr = r->net;
    if (!nr->sasl)
        return true;
    int16_t key = r->hdr.api_key;
    bsasl_session *s = session_of(nr);
    if (s == NULL)
        return false;
    if (key == KAFKA_API_API_VERSIONS || key == KAFKA_API_SASL_HANDSHAKE ||
        key == KAFKA_API_SASL_AUTHENTICATE)
        return true;
    const char *why = NULL;
    if (!s->authenticated)
        why = "before SASL authentication";
    else if (s->state != SESS_START)
        why = "during SASL re-authentication";
    else if (s->expires_ms > 0 && clock_mono_ms() > s->expires_ms)
        why = "after its SASL session expired (connections.max.reauth.ms) without re-authentication";
    if (why == NULL)
        return true;
    uint64_t held;
    if (log_ratelimit_allow(&gate_rl, &held))
        LOG_INFO("broker", "closing connection from %s: %s request %s (%llu similar lines held back)",
                 nr->peer, r->api ? r->api->name : "unknown", why, (unsigned long long)held);
    return false;
}

const char *bsasl_principal(breq *r) {
    if (r->net->sasl) {
        bsasl_session *s = *net_request_session(r->net);
        return s && s->authenticated ? s->principal : "User:ANONYMOUS";
    }
    /* An SSL client with a certificate is its subject, as Kafka's default
     * principal builder has it (ssl.principal.mapping.rules=DEFAULT). */
    if (r->net->tls_subject != NULL) {
        size_t n = strlen(r->net->tls_subject);
        char *p = breq_alloc(r, n + 6);
        if (p != NULL) {
            memcpy(p, "User:", 5);
            memcpy(p + 5, r->net->tls_subject, n + 1);
            return p;
        }
    }
    return "User:ANONYMOUS";
}

breq_status api_sasl_handshake(breq *r) {
    const kafka_sasl_handshake_request *req = r->req;
    kafka_sasl_handshake_response *resp = r->resp;
    const bsasl *cfg = r->b->sasl;
    if (!r->net->sasl || cfg == NULL) {
        resp->error_code = KAFKA_ERR_ILLEGAL_SASL_STATE;
        return BREQ_DONE;
    }
    bsasl_session *s = session_of(r->net);
    if (s == NULL)
        return BREQ_CLOSE;
    kstr *names = breq_calloc(r, 3, sizeof *names);
    int n = 0;
    for (unsigned bit = MECH_PLAIN; bit <= MECH_S512 && names; bit <<= 1)
        if (cfg->mechs & bit)
            names[n++] = kstr_c(mech_name(bit));
    resp->mechanisms = names;
    resp->mechanisms_count = names ? n : 0;
    if (s->state != SESS_START) {
        resp->error_code = KAFKA_ERR_ILLEGAL_SASL_STATE;
        r->close_after_response = true;
        return BREQ_DONE;
    }
    unsigned bit = mech_bit(req->mechanism.ptr ? req->mechanism.ptr : "",
                            (size_t)(req->mechanism.len > 0 ? req->mechanism.len : 0));
    if ((bit & cfg->mechs) == 0) {
        char shown[64];
        printable(req->mechanism.ptr ? req->mechanism.ptr : "",
                  (size_t)(req->mechanism.len > 0 ? req->mechanism.len : 0), shown, sizeof shown);
        uint64_t held;
        if (log_ratelimit_allow(&fail_rl, &held))
            LOG_WARN("broker",
                     "SASL handshake from %s asked for mechanism '%s', which listener %s does not offer; "
                     "closing the connection (%llu similar lines held back)",
                     r->net->peer, shown, cfg->listener, (unsigned long long)held);
        resp->error_code = KAFKA_ERR_UNSUPPORTED_SASL_MECHANISM;
        r->close_after_response = true;
        return BREQ_DONE;
    }
    if (s->authenticated && (bit != s->mech || r->hdr.api_version == 0)) {
        /* KIP-368: a re-authentication keeps the mechanism, with v1 framing. */
        resp->error_code = KAFKA_ERR_ILLEGAL_SASL_STATE;
        r->close_after_response = true;
        return BREQ_DONE;
    }
    s->mech = bit;
    memset(&s->scram, 0, sizeof s->scram);
    s->state = r->hdr.api_version == 0 ? SESS_RAW : SESS_AUTHENTICATE;
    return BREQ_DONE;
}

breq_status api_sasl_authenticate(breq *r) {
    const kafka_sasl_authenticate_request *req = r->req;
    kafka_sasl_authenticate_response *resp = r->resp;
    bsasl_session *s = r->net->sasl ? session_of(r->net) : NULL;
    if (s == NULL || s->state != SESS_AUTHENTICATE) {
        resp->error_code = KAFKA_ERR_ILLEGAL_SASL_STATE;
        resp->error_message = kstr_c("SaslAuthenticate without a SaslHandshake v1 first");
        r->close_after_response = true;
        return BREQ_DONE;
    }
    uint8_t *out = breq_alloc(r, SASL_SCRAM_MSG_MAX);
    if (out == NULL)
        return BREQ_CLOSE;
    size_t out_n = 0;
    const uint8_t *in = req->auth_bytes.ptr ? req->auth_bytes.ptr : (const uint8_t *)"";
    size_t in_n = req->auth_bytes.len > 0 ? (size_t)req->auth_bytes.len : 0;
    step_result st = step(r->b, r->net, s, in, in_n, out, SASL_SCRAM_MSG_MAX, &out_n);
    if (st == STEP_FAIL) {
        resp->error_code = KAFKA_ERR_SASL_AUTHENTICATION_FAILED;
        resp->error_message = kstr_c(
            s->mech == MECH_PLAIN ? "Authentication failed: Invalid username or password"
                                  : "Authentication failed during authentication due to invalid credentials "
                                    "with SASL mechanism SCRAM");
        r->close_after_response = true;
        return BREQ_DONE;
    }
    resp->auth_bytes = (kbytes){out, (int32_t)out_n};
    if (st == STEP_DONE) {
        authenticated(r->b, r->net, s);
        if (r->b->sasl && r->b->sasl->reauth_ms > 0)
            resp->session_lifetime_ms = r->b->sasl->reauth_ms;
    }
    return BREQ_DONE;
}
