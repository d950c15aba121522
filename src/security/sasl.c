/*
 * security/sasl.c - PLAIN, SCRAM and JAAS parsing; the SCRAM server steps.
 * See sasl.h. Hashes come from OpenSSL (EVP, HMAC, PKCS5_PBKDF2_HMAC).
 */
#include "security/sasl.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void fmt(char *out, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *out, size_t n, const char *f, ...) {
    if (n == 0)
        return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(out, n, f, ap);
    va_end(ap);
}

bool sasl_secret_eq(const void *a, size_t an, const void *b, size_t bn) {
    /* Compare against a itself when lengths differ, so the time depends on
     * the lengths only. */
    const void *other = an == bn ? b : a;
    return CRYPTO_memcmp(a, other, an) == 0 && an == bn;
}

/* ---- PLAIN ----------------------------------------------------------------------- */

int sasl_plain_parse(const uint8_t *tok, size_t n, sasl_plain_token *out, char *why, size_t whyn) {
    memset(out, 0, sizeof *out);
    const uint8_t *nul1 = memchr(tok, 0, n);
    if (nul1 == NULL) {
        fmt(why, whyn, "invalid PLAIN message: no NUL separator");
        return -1;
    }
    size_t rest = n - (size_t)(nul1 + 1 - tok);
    const uint8_t *nul2 = memchr(nul1 + 1, 0, rest);
    if (nul2 == NULL) {
        fmt(why, whyn, "invalid PLAIN message: expected authzid NUL user NUL password");
        return -1;
    }
    out->authzid = (const char *)tok;
    out->authzid_n = (size_t)(nul1 - tok);
    out->user = (const char *)nul1 + 1;
    out->user_n = (size_t)(nul2 - nul1 - 1);
    out->pass = (const char *)nul2 + 1;
    out->pass_n = n - (size_t)(nul2 + 1 - tok);
    if (memchr(out->pass, 0, out->pass_n) != NULL) {
        fmt(why, whyn, "invalid PLAIN message: more than two NUL separators");
        return -1;
    }
    if (out->user_n == 0 || out->pass_n == 0) {
        fmt(why, whyn, "invalid PLAIN message: empty %s", out->user_n == 0 ? "user name" : "password");
        return -1;
    }
    if (out->user_n > SASL_NAME_MAX || out->pass_n > SASL_NAME_MAX || out->authzid_n > SASL_NAME_MAX) {
        fmt(why, whyn, "invalid PLAIN message: a field is longer than %d bytes", SASL_NAME_MAX);
        return -1;
    }
    return 0;
}

/* ---- JAAS ------------------------------------------------------------------------ */

static const char *skip_ws(const char *p) {
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* A word: letters, digits and . _ - $ */
static const char *word_end(const char *p) {
    while (*p && (isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-' || *p == '$'))
        p++;
    return p;
}

int sasl_jaas_users(const char *text, sasl_jaas_user *out, int max, int *n, char *why, size_t whyn) {
    *n = 0;
    const char *p = skip_ws(text ? text : "");
    int modules = 0;
    while (*p) {
        /* LoginModuleClass flag */
        const char *e = word_end(p);
        if (e == p) {
            fmt(why, whyn, "expected a login module class name at offset %d", (int)(p - text));
            return -1;
        }
        p = skip_ws(e);
        e = word_end(p);
        size_t fl = (size_t)(e - p);
        if (!((fl == 8 && strncmp(p, "required", 8) == 0) || (fl == 9 && strncmp(p, "requisite", 9) == 0) ||
              (fl == 10 && strncmp(p, "sufficient", 10) == 0) ||
              (fl == 8 && strncmp(p, "optional", 8) == 0))) {
            fmt(why, whyn,
                "expected required, requisite, sufficient or optional after the login module at offset %d",
                (int)(p - text));
            return -1;
        }
        p = skip_ws(e);
        /* key=value ... ; */
        while (*p && *p != ';') {
            const char *k = p;
            e = word_end(p);
            if (e == p) {
                fmt(why, whyn, "expected an option name at offset %d", (int)(p - text));
                return -1;
            }
            size_t kn = (size_t)(e - k);
            p = skip_ws(e);
            if (*p != '=') {
                fmt(why, whyn, "expected '=' after option '%.*s'", (int)(kn > 64 ? 64 : kn), k);
                return -1;
            }
            p = skip_ws(p + 1);
            char val[SASL_NAME_MAX + 1];
            size_t vn = 0;
            if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    char ch = *p++;
                    if (ch == '\\' && *p)
                        ch = *p++;
                    if (vn == SASL_NAME_MAX) {
                        fmt(why, whyn, "the value of option '%.*s' is longer than %d bytes",
                            (int)(kn > 64 ? 64 : kn), k, SASL_NAME_MAX);
                        return -1;
                    }
                    val[vn++] = ch;
                }
                if (*p != '"') {
                    fmt(why, whyn, "unterminated quoted value of option '%.*s'", (int)(kn > 64 ? 64 : kn), k);
                    return -1;
                }
                p++;
            } else {
                const char *v = p;
                e = word_end(p);
                if (e == p) {
                    fmt(why, whyn, "expected a value for option '%.*s'", (int)(kn > 64 ? 64 : kn), k);
                    return -1;
                }
                vn = (size_t)(e - v);
                if (vn > SASL_NAME_MAX) {
                    fmt(why, whyn, "the value of option '%.*s' is too long", (int)(kn > 64 ? 64 : kn), k);
                    return -1;
                }
                memcpy(val, v, vn);
                p = e;
            }
            val[vn] = '\0';
            if (kn > 5 && strncmp(k, "user_", 5) == 0) {
                if (kn - 5 > SASL_NAME_MAX) {
                    fmt(why, whyn, "a user name is longer than %d bytes", SASL_NAME_MAX);
                    return -1;
                }
                int at = -1;
                for (int i = 0; i < *n; i++)
                    if (strlen(out[i].name) == kn - 5 && memcmp(out[i].name, k + 5, kn - 5) == 0)
                        at = i; /* a later entry for the same user wins */
                if (at < 0) {
                    if (*n == max) {
                        fmt(why, whyn, "more than %d users", max);
                        return -1;
                    }
                    at = (*n)++;
                }
                memcpy(out[at].name, k + 5, kn - 5);
                out[at].name[kn - 5] = '\0';
                memcpy(out[at].pass, val, vn + 1);
            }
            OPENSSL_cleanse(val, sizeof val);
            p = skip_ws(p);
        }
        if (*p != ';') {
            fmt(why, whyn, "missing ';' at the end of the login module");
            return -1;
        }
        modules++;
        p = skip_ws(p + 1);
    }
    if (modules == 0) {
        fmt(why, whyn, "empty: expected '<LoginModule> required user_<name>=\"<password>\" ...;'");
        return -1;
    }
    return 0;
}

/* ---- base64 --------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t outn) {
    size_t need = (n + 2) / 3 * 4;
    if (need + 1 > outn)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}

static int b64_val(char ch) {
    const char *p = ch ? strchr(b64, ch) : NULL;
    return p ? (int)(p - b64) : -1;
}

long sasl_b64_decode(const char *in, size_t n, uint8_t *out, size_t outn) {
    if (n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad)
                    return -1; /* data after padding */
                v[k] = b64_val(in[i + k]);
                if (v[k] < 0)
                    return -1;
            }
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > outn)
            return -1;
        out[o++] = (uint8_t)(w >> 16);
        if (bytes > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (bytes > 2)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

/* ---- SCRAM ------------------------------------------------------------------------ */

int sasl_scram_mech_of(const char *name) {
    if (name == NULL)
        return 0;
    if (strcmp(name, "SCRAM-SHA-256") == 0)
        return SASL_SCRAM_SHA_256;
    if (strcmp(name, "SCRAM-SHA-512") == 0)
        return SASL_SCRAM_SHA_512;
    return 0;
}

const char *sasl_scram_mech_name(int mech) {
    return mech == SASL_SCRAM_SHA_256 ? "SCRAM-SHA-256" : mech == SASL_SCRAM_SHA_512 ? "SCRAM-SHA-512" : "?";
}

static const EVP_MD *md_of(int mech) {
    return mech == SASL_SCRAM_SHA_256 ? EVP_sha256() : mech == SASL_SCRAM_SHA_512 ? EVP_sha512() : NULL;
}

size_t sasl_scram_hash_len(int mech) {
    return mech == SASL_SCRAM_SHA_256 ? 32 : mech == SASL_SCRAM_SHA_512 ? 64 : 0;
}

static bool hmac(int mech, const uint8_t *key, size_t kn, const void *msg, size_t mn, uint8_t *out) {
    unsigned int len = 0;
    return HMAC(md_of(mech), key, (int)kn, msg, mn, out, &len) != NULL && len == sasl_scram_hash_len(mech);
}

static bool hash(int mech, const uint8_t *in, size_t n, uint8_t *out) {
    unsigned int len = 0;
    return EVP_Digest(in, n, out, &len, md_of(mech), NULL) == 1 && len == sasl_scram_hash_len(mech);
}

int sasl_scram_from_salted(int mech, const uint8_t *salted, size_t salted_n, const uint8_t *salt,
                           size_t salt_n, int32_t iterations, sasl_scram_cred *out) {
    size_t hl = sasl_scram_hash_len(mech);
    uint8_t client_key[SASL_SCRAM_HASH_MAX];
    if (hl == 0 || salted_n != hl || salt_n == 0 || salt_n > SASL_SCRAM_SALT_MAX ||
        iterations < SASL_SCRAM_ITER_MIN || iterations > SASL_SCRAM_ITER_MAX)
        return -1;
    memset(out, 0, sizeof *out);
    memcpy(out->salt, salt, salt_n);
    out->salt_n = salt_n;
    out->iterations = iterations;
    bool ok = hmac(mech, salted, hl, "Client Key", 10, client_key) &&
              hash(mech, client_key, hl, out->stored_key) &&
              hmac(mech, salted, hl, "Server Key", 10, out->server_key);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return ok ? 0 : -1;
}

int sasl_scram_from_keys(int mech, const uint8_t *salt, size_t salt_n, const uint8_t *stored_key,
                         const uint8_t *server_key, size_t key_n, int32_t iterations, sasl_scram_cred *out) {
    if (key_n == 0 || key_n != sasl_scram_hash_len(mech) || salt_n == 0 || salt_n > SASL_SCRAM_SALT_MAX ||
        iterations <= 0)
        return -1;
    memset(out, 0, sizeof *out);
    memcpy(out->salt, salt, salt_n);
    out->salt_n = salt_n;
    memcpy(out->stored_key, stored_key, key_n);
    memcpy(out->server_key, server_key, key_n);
    out->iterations = iterations;
    return 0;
}

int sasl_scram_derive(int mech, const char *pass, size_t pass_n, const uint8_t *salt, size_t salt_n,
                      int32_t iterations, sasl_scram_cred *out) {
    size_t hl = sasl_scram_hash_len(mech);
    uint8_t salted[SASL_SCRAM_HASH_MAX];
    if (hl == 0 || salt_n == 0 || salt_n > SASL_SCRAM_SALT_MAX || iterations < SASL_SCRAM_ITER_MIN ||
        iterations > SASL_SCRAM_ITER_MAX)
        return -1;
    if (PKCS5_PBKDF2_HMAC(pass, (int)pass_n, salt, (int)salt_n, iterations, md_of(mech), (int)hl, salted) !=
        1)
        return -1;
    int rc = sasl_scram_from_salted(mech, salted, hl, salt, salt_n, iterations, out);
    OPENSSL_cleanse(salted, sizeof salted);
    return rc;
}

/* Decodes a saslname (=2C is ',', =3D is '='; a bare '=' is invalid). */
static int saslname(const char *p, size_t n, char *out, size_t outn) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '=') {
            if (i + 2 >= n)
                return -1;
            if (p[i + 1] == '2' && p[i + 2] == 'C')
                ch = ',';
            else if (p[i + 1] == '3' && p[i + 2] == 'D')
                ch = '=';
            else
                return -1;
            i += 2;
        } else if (ch == ',' || ch == '\0') {
            return -1;
        }
        if (o + 1 >= outn)
            return -1;
        out[o++] = ch;
    }
    if (o == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

static bool printable_nonce(const char *p, size_t n) {
    if (n == 0 || n > SASL_SCRAM_NONCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return false;
    return true;
}

int sasl_scram_parse_first(const uint8_t *msg, size_t n, sasl_scram_first *out, char *why, size_t whyn) {
    const char *m = (const char *)msg;
    memset(out, 0, sizeof *out);
    if (n > SASL_SCRAM_MSG_MAX || memchr(m, 0, n) != NULL) {
        fmt(why, whyn, "invalid SCRAM client-first message (too long or has NUL)");
        return -1;
    }
    /* gs2-header: cbind-flag "," [authzid] "," */
    if (n < 3 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',') {
        fmt(why, whyn, "invalid SCRAM client-first message: %s",
            n >= 1 && m[0] == 'p' ? "channel binding is not supported" : "bad gs2 header");
        return -1;
    }
    const char *c2 = memchr(m + 2, ',', n - 2);
    if (c2 == NULL) {
        fmt(why, whyn, "invalid SCRAM client-first message: bad gs2 header");
        return -1;
    }
    char authzid[SASL_NAME_MAX + 1] = "";
    size_t an = (size_t)(c2 - (m + 2));
    if (an > 0) {
        if (an < 3 || m[2] != 'a' || m[3] != '=' || saslname(m + 4, an - 2, authzid, sizeof authzid) != 0) {
            fmt(why, whyn, "invalid SCRAM client-first message: bad authzid");
            return -1;
        }
    }
    out->gs2_n = (size_t)(c2 + 1 - m);
    if (out->gs2_n > sizeof out->gs2) {
        fmt(why, whyn, "invalid SCRAM client-first message: gs2 header too long");
        return -1;
    }
    memcpy(out->gs2, m, out->gs2_n);
    out->bare_n = n - out->gs2_n;
    memcpy(out->bare, c2 + 1, out->bare_n);
    /* n=user,r=nonce[,ext=...] */
    const char *p = c2 + 1, *end = m + n;
    if (end - p < 2 || p[0] != 'n' || p[1] != '=') {
        fmt(why, whyn, "invalid SCRAM client-first message: expected n=<user>");
        return -1;
    }
    const char *ue = memchr(p, ',', (size_t)(end - p));
    if (ue == NULL || saslname(p + 2, (size_t)(ue - p - 2), out->user, sizeof out->user) != 0) {
        fmt(why, whyn, "invalid SCRAM client-first message: bad user name");
        return -1;
    }
    p = ue + 1;
    if (end - p < 2 || p[0] != 'r' || p[1] != '=') {
        fmt(why, whyn, "invalid SCRAM client-first message: expected r=<nonce>");
        return -1;
    }
    const char *ne = memchr(p, ',', (size_t)(end - p));
    if (ne == NULL)
        ne = end;
    if (!printable_nonce(p + 2, (size_t)(ne - p - 2))) {
        fmt(why, whyn, "invalid SCRAM client-first message: bad nonce");
        return -1;
    }
    memcpy(out->nonce, p + 2, (size_t)(ne - p - 2));
    out->nonce[ne - p - 2] = '\0';
    /* extensions: key=value, only tokenauth is understood */
    p = ne;
    while (p < end) {
        p++; /* ',' */
        const char *xe = memchr(p, ',', (size_t)(end - p));
        if (xe == NULL)
            xe = end;
        const char *eq = memchr(p, '=', (size_t)(xe - p));
        if (eq == NULL || eq == p) {
            fmt(why, whyn, "invalid SCRAM client-first message: bad extension");
            return -1;
        }
        if (eq - p == 9 && memcmp(p, "tokenauth", 9) == 0 && xe - eq - 1 == 4 &&
            memcmp(eq + 1, "true", 4) == 0)
            out->tokenauth = true;
        p = xe;
    }
    if (authzid[0] != '\0' && strcmp(authzid, out->user) != 0) {
        fmt(why, whyn, "SCRAM authorization id differs from the user name");
        return -1;
    }
    return 0;
}

int sasl_scram_parse_final(const uint8_t *msg, size_t n, sasl_scram_final *out, char *why, size_t whyn) {
    const char *m = (const char *)msg, *end = m + n;
    memset(out, 0, sizeof *out);
    if (n > SASL_SCRAM_MSG_MAX || memchr(m, 0, n) != NULL) {
        fmt(why, whyn, "invalid SCRAM client-final message (too long or has NUL)");
        return -1;
    }
    if (n < 2 || m[0] != 'c' || m[1] != '=') {
        fmt(why, whyn, "invalid SCRAM client-final message: expected c=<channel binding>");
        return -1;
    }
    const char *ce = memchr(m, ',', n);
    if (ce == NULL) {
        fmt(why, whyn, "invalid SCRAM client-final message: truncated");
        return -1;
    }
    long cb = sasl_b64_decode(m + 2, (size_t)(ce - m - 2), out->channel, sizeof out->channel);
    if (cb < 0) {
        fmt(why, whyn, "invalid SCRAM client-final message: bad channel binding");
        return -1;
    }
    out->channel_n = (size_t)cb;
    const char *p = ce + 1;
    if (end - p < 2 || p[0] != 'r' || p[1] != '=') {
        fmt(why, whyn, "invalid SCRAM client-final message: expected r=<nonce>");
        return -1;
    }
    const char *ne = memchr(p, ',', (size_t)(end - p));
    if (ne == NULL || (size_t)(ne - p - 2) >= sizeof out->nonce) {
        fmt(why, whyn, "invalid SCRAM client-final message: bad nonce");
        return -1;
    }
    memcpy(out->nonce, p + 2, (size_t)(ne - p - 2));
    out->nonce[ne - p - 2] = '\0';
    /* extensions, then p=proof last */
    p = ne + 1;
    for (;;) {
        const char *xe = memchr(p, ',', (size_t)(end - p));
        if (end - p >= 2 && p[0] == 'p' && p[1] == '=' && xe == NULL) {
            out->without_proof_n = (size_t)(p - 1 - m);
            long pl = sasl_b64_decode(p + 2, (size_t)(end - p - 2), out->proof, sizeof out->proof);
            if (pl <= 0) {
                fmt(why, whyn, "invalid SCRAM client-final message: bad proof");
                return -1;
            }
            out->proof_n = (size_t)pl;
            return 0;
        }
        if (xe == NULL) {
            fmt(why, whyn, "invalid SCRAM client-final message: expected p=<proof> last");
            return -1;
        }
        p = xe + 1;
    }
}

void sasl_scram_server_init(sasl_scram_server *s, int mech) {
    memset(s, 0, sizeof *s);
    s->mech = mech;
    s->state = SASL_SCRAM_START;
}

int sasl_scram_server_first(sasl_scram_server *s, const sasl_scram_cred *cred, const char *server_nonce,
                            char *why, size_t whyn) {
    if (s->state != SASL_SCRAM_START || cred == NULL) {
        s->state = SASL_SCRAM_FAILED;
        fmt(why, whyn, cred == NULL ? "unknown user" : "unexpected SCRAM message");
        return -1;
    }
    s->cred = *cred;
    s->have_cred = true;
    int nl = snprintf(s->nonce, sizeof s->nonce, "%s%s", s->first.nonce, server_nonce);
    if (nl <= 0 || (size_t)nl >= sizeof s->nonce) {
        s->state = SASL_SCRAM_FAILED;
        fmt(why, whyn, "nonce too long");
        return -1;
    }
    char salt[SASL_SCRAM_SALT_MAX * 2];
    if (sasl_b64_encode(cred->salt, cred->salt_n, salt, sizeof salt) < 0) {
        s->state = SASL_SCRAM_FAILED;
        fmt(why, whyn, "bad salt");
        return -1;
    }
    int n = snprintf(s->server_first, sizeof s->server_first, "r=%s,s=%s,i=%d", s->nonce, salt,
                     (int)cred->iterations);
    if (n <= 0 || (size_t)n >= sizeof s->server_first) {
        s->state = SASL_SCRAM_FAILED;
        fmt(why, whyn, "server-first message too long");
        return -1;
    }
    s->server_first_n = (size_t)n;
    s->state = SASL_SCRAM_WAIT_FINAL;
    return 0;
}

int sasl_scram_server_final(sasl_scram_server *s, const uint8_t *msg, size_t n, char *out, size_t outn,
                            size_t *out_n, char *why, size_t whyn) {
    sasl_scram_final f;
    size_t hl = sasl_scram_hash_len(s->mech);
    if (s->state != SASL_SCRAM_WAIT_FINAL) {
        fmt(why, whyn, "unexpected SCRAM message");
        s->state = SASL_SCRAM_FAILED;
        return -1;
    }
    s->state = SASL_SCRAM_FAILED; /* until proven otherwise */
    if (sasl_scram_parse_final(msg, n, &f, why, whyn) != 0)
        return -1;
    /* The nonce must end with ours, as Kafka checks it (librdkafka 2.0
     * sends its own nonce in front of the combined one). */
    size_t fn = strlen(f.nonce), sn = strlen(s->nonce);
    if (fn < sn || memcmp(f.nonce + fn - sn, s->nonce, sn) != 0) {
        fmt(why, whyn, "the SCRAM nonce does not match");
        return -1;
    }
    if (f.channel_n != s->first.gs2_n || memcmp(f.channel, s->first.gs2, f.channel_n) != 0) {
        fmt(why, whyn, "the SCRAM channel binding does not match the gs2 header");
        return -1;
    }
    if (f.proof_n != hl) {
        fmt(why, whyn, "the SCRAM proof has the wrong length");
        return -1;
    }
    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    char auth[SASL_SCRAM_MSG_MAX * 3 + 3];
    size_t an = 0;
    memcpy(auth + an, s->first.bare, s->first.bare_n);
    an += s->first.bare_n;
    auth[an++] = ',';
    memcpy(auth + an, s->server_first, s->server_first_n);
    an += s->server_first_n;
    auth[an++] = ',';
    memcpy(auth + an, msg, f.without_proof_n);
    an += f.without_proof_n;
    uint8_t sig[SASL_SCRAM_HASH_MAX], client_key[SASL_SCRAM_HASH_MAX], stored[SASL_SCRAM_HASH_MAX];
    if (!hmac(s->mech, s->cred.stored_key, hl, auth, an, sig)) {
        fmt(why, whyn, "hash failure");
        return -1;
    }
    for (size_t i = 0; i < hl; i++)
        client_key[i] = f.proof[i] ^ sig[i];
    bool ok = hash(s->mech, client_key, hl, stored) && CRYPTO_memcmp(stored, s->cred.stored_key, hl) == 0;
    OPENSSL_cleanse(client_key, sizeof client_key);
    if (!ok) {
        fmt(why, whyn, "invalid credentials");
        return -1;
    }
    uint8_t server_sig[SASL_SCRAM_HASH_MAX];
    char sig64[SASL_SCRAM_HASH_MAX * 2];
    if (!hmac(s->mech, s->cred.server_key, hl, auth, an, server_sig) ||
        sasl_b64_encode(server_sig, hl, sig64, sizeof sig64) < 0) {
        fmt(why, whyn, "hash failure");
        return -1;
    }
    int w = snprintf(out, outn, "v=%s", sig64);
    if (w <= 0 || (size_t)w >= outn) {
        fmt(why, whyn, "output too small");
        return -1;
    }
    *out_n = (size_t)w;
    s->state = SASL_SCRAM_DONE;
    return 0;
}
