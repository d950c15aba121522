/*
 * tls.c - TLS contexts and connections on OpenSSL. See tls.h.
 *
 * Key material is read into memory and parsed from there, whether it came
 * from a file or an inline value, so both go through one path (and a file
 * rewritten while we read it fails as a whole, keeping the old context).
 */
#include "net/tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* What identifies a version of a file: a change of any re-reads it. */
typedef struct file_stamp {
    bool present;
    int64_t mtime_ns;
    int64_t size;
    uint64_t ino;
} file_stamp;

struct tls_server {
    pthread_mutex_t mu;
    SSL_CTX *ctx; /* current context (mu) */
    uint64_t generation;
    int64_t last_check_ms;
    file_stamp key_stamp, trust_stamp;   /* of the files ctx was built from */
    file_stamp failed_key, failed_trust; /* of files that failed: logged once */
    bool has_failed;
    /* copies of the configuration */
    char *listener, *keystore_location, *keystore_chain, *keystore_key, *key_password, *truststore_location,
        *truststore_certificates, *enabled_protocols, *cipher_suites;
    tls_client_auth client_auth;
    int64_t reload_check_ms;
};

struct tls_conn {
    SSL *ssl;
    bool want_write;
};

static void fmt(char *out, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *out, size_t n, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(out, n, f, ap);
    va_end(ap);
}

static char *dup_or_null(const char *s) { return s && s[0] ? strdup(s) : NULL; }

/* The first error of OpenSSL's queue as text, and the queue emptied. */
static void ssl_reason(char *out, size_t n, const char *fallback) {
    unsigned long e = ERR_get_error();
    if (e == 0) {
        fmt(out, n, "%s", fallback);
        return;
    }
    const char *r = ERR_reason_error_string(e);
    if (r != NULL)
        fmt(out, n, "%s", r);
    else
        ERR_error_string_n(e, out, n);
    ERR_clear_error();
}

/* ---- PEM text ----------------------------------------------------------- */

static bool is_b64(int ch) { return isalnum(ch) || ch == '+' || ch == '/' || ch == '='; }

long tls_pem_normalize(const char *in, size_t n, char *out, size_t outn) {
    static const char begin[] = "-----BEGIN ", dashes[] = "-----";
    size_t o = 0, i = 0;
#define PUT(ch)                \
    do {                       \
        if (o + 1 >= outn)     \
            return -1;         \
        out[o++] = (char)(ch); \
    } while (0)
    for (;;) {
        /* the next BEGIN line */
        const char *b = NULL;
        for (size_t k = i; k + sizeof begin - 1 <= n; k++)
            if (memcmp(in + k, begin, sizeof begin - 1) == 0) {
                b = in + k;
                break;
            }
        if (b == NULL)
            break;
        size_t lab = (size_t)(b - in) + sizeof begin - 1, labend = lab;
        while (labend < n && in[labend] != '-' && in[labend] != '\n' && labend - lab < 64)
            labend++;
        if (labend + 5 > n || memcmp(in + labend, dashes, 5) != 0 || labend == lab)
            return -1;
        size_t label_n = labend - lab;
        const char *label = in + lab;
        for (const char *p = begin; *p; p++)
            PUT(*p);
        for (size_t k = 0; k < label_n; k++)
            PUT(label[k]);
        for (const char *p = dashes; *p; p++)
            PUT(*p);
        PUT('\n');
        /* the body up to the matching END line */
        i = labend + 5;
        int col = 0;
        bool ended = false;
        while (i < n) {
            if (in[i] == '-') {
                char end_line[96];
                int el = snprintf(end_line, sizeof end_line, "-----END %.*s-----", (int)label_n, label);
                if (el <= 0 || (size_t)el > n - i || memcmp(in + i, end_line, (size_t)el) != 0)
                    return -1;
                if (col > 0)
                    PUT('\n');
                for (int k = 0; k < el; k++)
                    PUT(end_line[k]);
                PUT('\n');
                i += (size_t)el;
                ended = true;
                break;
            }
            unsigned char ch = (unsigned char)in[i++];
            if (isspace(ch) || ch == '\\')
                continue; /* line breaks, and continuations left by a properties file */
            if (!is_b64(ch))
                return -1;
            PUT(ch);
            if (++col == 64) {
                PUT('\n');
                col = 0;
            }
        }
        if (!ended)
            return -1;
    }
#undef PUT
    if (o == 0 || outn == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

/* Reads a whole file (at most TLS_PEM_MAX bytes). NULL with err filled. */
static char *read_file(const char *path, size_t *len, const char *key, char *err, size_t errn) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fmt(err, errn, "%s: cannot open %s: %s", key, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TLS_PEM_MAX + 1);
    size_t got = 0;
    while (buf != NULL && got < TLS_PEM_MAX) {
        ssize_t r = read(fd, buf + got, TLS_PEM_MAX - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fmt(err, errn, "%s: cannot read %s: %s", key, path, strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL)
        return NULL;
    if (got == TLS_PEM_MAX) {
        fmt(err, errn, "%s: %s is larger than %u bytes", key, path, TLS_PEM_MAX);
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* A memory BIO over text in standard PEM form, or NULL with err filled. */
static BIO *pem_bio(const char *text, size_t n, const char *key, char **hold, char *err, size_t errn) {
    size_t cap = n * 2 + 256;
    char *norm = malloc(cap);
    long len = norm ? tls_pem_normalize(text, n, norm, cap) : -1;
    if (len < 0) {
        fmt(err, errn, "%s: not PEM text (no complete -----BEGIN ...----- / -----END ...----- block)", key);
        free(norm);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(norm, (int)len);
    if (bio == NULL) {
        free(norm);
        fmt(err, errn, "%s: out of memory", key);
        return NULL;
    }
    *hold = norm;
    return bio;
}

/* Loads the key store (a file, or the inline chain and key) into ctx. */
static int load_keystore(const tls_server *s, SSL_CTX *ctx, char *err, size_t errn) {
    char *file = NULL, *hold = NULL;
    size_t flen = 0;
    BIO *kbio = NULL, *cbio = NULL;
    X509 *leaf = NULL;
    EVP_PKEY *pkey = NULL;
    int rc = -1;
    const char *ckey = "ssl.keystore.certificate.chain", *kkey = "ssl.keystore.key";
    if (s->keystore_location != NULL) {
        ckey = kkey = "ssl.keystore.location";
        if ((file = read_file(s->keystore_location, &flen, ckey, err, errn)) == NULL)
            return -1;
        if ((kbio = pem_bio(file, flen, ckey, &hold, err, errn)) == NULL)
            goto out;
        cbio = kbio;
    } else if (s->keystore_chain != NULL && s->keystore_key != NULL) {
        char *hold2 = NULL;
        if ((cbio = pem_bio(s->keystore_chain, strlen(s->keystore_chain), ckey, &hold, err, errn)) == NULL)
            goto out;
        if ((kbio = pem_bio(s->keystore_key, strlen(s->keystore_key), kkey, &hold2, err, errn)) == NULL)
            goto out;
        /* hold2 is freed with kbio below: keep both buffers alive. */
        free(file);
        file = hold2;
    } else {
        fmt(err, errn,
            "an SSL listener needs ssl.keystore.location, or ssl.keystore.certificate.chain and "
            "ssl.keystore.key");
        return -1;
    }
    ERR_clear_error();
    pkey = PEM_read_bio_PrivateKey(kbio, NULL, NULL, s->key_password ? s->key_password : (void *)"");
    if (pkey == NULL) {
        char why[160];
        ssl_reason(why, sizeof why, "no private key found");
        fmt(err, errn, "%s: cannot read the private key (%s)%s", kkey, why,
            s->key_password ? "" : "; if it is encrypted, set ssl.key.password");
        goto out;
    }
    if (cbio == kbio && BIO_reset(cbio) <= 0)
        goto out;
    leaf = PEM_read_bio_X509(cbio, NULL, NULL, NULL);
    if (leaf == NULL) {
        fmt(err, errn, "%s: no certificate found", ckey);
        goto out;
    }
    if (X509_check_private_key(leaf, pkey) != 1) {
        ERR_clear_error();
        fmt(err, errn, "%s: the private key does not match the certificate", kkey);
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
        char why[160];
        ssl_reason(why, sizeof why, "rejected");
        fmt(err, errn, "%s: certificate or key rejected: %s", ckey, why);
        goto out;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(cbio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            fmt(err, errn, "%s: cannot add a chain certificate", ckey);
            goto out;
        }
    }
    ERR_clear_error(); /* the end of the certificates */
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fmt(err, errn, "%s: the private key does not match the certificate", kkey);
        goto out;
    }
    rc = 0;
out:
    X509_free(leaf);
    EVP_PKEY_free(pkey);
    if (cbio != kbio)
        BIO_free(cbio);
    BIO_free(kbio);
    free(hold);
    free(file);
    return rc;
}

/* Loads the trust store into ctx: the CAs client certificates are checked
 * against, also named to clients as acceptable issuers. */
static int load_truststore(const tls_server *s, SSL_CTX *ctx, char *err, size_t errn) {
    const char *key = s->truststore_location ? "ssl.truststore.location" : "ssl.truststore.certificates";
    char *file = NULL, *hold = NULL;
    size_t len = 0;
    const char *text = s->truststore_certificates;
    if (s->truststore_location == NULL && text == NULL)
        return 0;
    if (s->truststore_location != NULL) {
        if ((file = read_file(s->truststore_location, &len, key, err, errn)) == NULL)
            return -1;
        text = file;
    } else {
        len = strlen(text);
    }
    int rc = -1, count = 0;
    BIO *bio = pem_bio(text, len, key, &hold, err, errn);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    if (bio == NULL || names == NULL)
        goto out;
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL)
            break;
        X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));
        if (X509_STORE_add_cert(store, x) != 1 || nm == NULL || !sk_X509_NAME_push(names, nm)) {
            X509_NAME_free(nm);
            X509_free(x);
            fmt(err, errn, "%s: cannot add a certificate", key);
            goto out;
        }
        X509_free(x);
        count++;
    }
    ERR_clear_error();
    if (count == 0) {
        fmt(err, errn, "%s: no certificate found", key);
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    names = NULL;
    rc = 0;
out:
    if (names)
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    BIO_free(bio);
    free(hold);
    free(file);
    return rc;
}

static int proto_version(const char *name, size_t n) {
    static const struct {
        const char *name;
        int v;
    } t[] = {{"TLSv1.3", TLS1_3_VERSION},
             {"TLSv1.2", TLS1_2_VERSION},
             {"TLSv1.1", TLS1_1_VERSION},
             {"TLSv1", TLS1_VERSION}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strlen(t[i].name) == n && strncasecmp(t[i].name, name, n) == 0)
            return t[i].v;
    return 0;
}

/* Calls fn for each trimmed, non-empty item of a comma list. */
static int each_item(const char *list, int (*fn)(void *, const char *, size_t), void *arg) {
    const char *p = list ? list : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *q = p;
        while (n > 0 && isspace((unsigned char)*q))
            q++, n--;
        while (n > 0 && isspace((unsigned char)q[n - 1]))
            n--;
        if (n > 0 && fn(arg, q, n) != 0)
            return -1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

struct proto_acc {
    int min, max;
    char *err;
    size_t errn;
};

static int proto_item(void *arg, const char *s, size_t n) {
    struct proto_acc *a = arg;
    int v = proto_version(s, n);
    if (v == 0) {
        fmt(a->err, a->errn, "ssl.enabled.protocols: unknown protocol '%.*s' (expected TLSv1.2, TLSv1.3)",
            (int)(n > 32 ? 32 : n), s);
        return -1;
    }
    if (a->min == 0 || v < a->min)
        a->min = v;
    if (v > a->max)
        a->max = v;
    return 0;
}

struct cipher_acc {
    char tls12[2048], tls13[1024];
};

static void append(char *buf, size_t cap, const char *s, size_t n) {
    size_t have = strlen(buf);
    if (have + n + 2 >= cap)
        return;
    if (have)
        buf[have++] = ':';
    memcpy(buf + have, s, n);
    buf[have + n] = '\0';
}

/* A suite by its IANA name (Kafka's form) or OpenSSL's. TLS 1.3 suites are
 * set apart from the older ones, as OpenSSL wants them. */
static int cipher_item(void *arg, const char *s, size_t n) {
    struct cipher_acc *a = arg;
    char name[128];
    if (n >= sizeof name)
        return 0;
    memcpy(name, s, n);
    name[n] = '\0';
    if (strncmp(name, "TLS_AES_", 8) == 0 || strncmp(name, "TLS_CHACHA20_", 13) == 0) {
        append(a->tls13, sizeof a->tls13, name, n);
        return 0;
    }
    const char *ossl = OPENSSL_cipher_name(name);
    if (ossl != NULL && strcmp(ossl, "(NONE)") != 0)
        append(a->tls12, sizeof a->tls12, ossl, strlen(ossl));
    else
        append(a->tls12, sizeof a->tls12, name, n);
    return 0;
}

static SSL_CTX *build_ctx(const tls_server *s, char *err, size_t errn) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        fmt(err, errn, "cannot create a TLS context");
        return NULL;
    }
    struct proto_acc pa = {0, 0, err, errn};
    if (each_item(s->enabled_protocols, proto_item, &pa) != 0)
        goto err;
    if (pa.min == 0) {
        pa.min = TLS1_2_VERSION;
        pa.max = TLS1_3_VERSION;
    }
    SSL_CTX_set_min_proto_version(ctx, pa.min);
    SSL_CTX_set_max_proto_version(ctx, pa.max);
    if (s->cipher_suites != NULL) {
        struct cipher_acc ca;
        ca.tls12[0] = ca.tls13[0] = '\0';
        each_item(s->cipher_suites, cipher_item, &ca);
        /* Only the kinds named are narrowed: a list of TLS 1.2 suites
         * leaves TLS 1.3's defaults alone, as Kafka (Java) does. */
        if ((ca.tls12[0] && SSL_CTX_set_cipher_list(ctx, ca.tls12) != 1) ||
            (ca.tls13[0] && SSL_CTX_set_ciphersuites(ctx, ca.tls13) != 1) || (!ca.tls12[0] && !ca.tls13[0])) {
            ERR_clear_error();
            fmt(err, errn, "ssl.cipher.suites: no cipher suite of '%.200s' is known to OpenSSL",
                s->cipher_suites);
            goto err;
        }
    }
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* Read several records per read(2); the buffer goes when it is empty. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
    /* Bounds what a client's certificate chain may make us hold. */
    SSL_CTX_set_max_cert_list(ctx, TLS_PEER_CHAIN_MAX);
    static const unsigned char sid[] = "sluice";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    if (load_keystore(s, ctx, err, errn) != 0 || load_truststore(s, ctx, err, errn) != 0)
        goto err;
    int mode = SSL_VERIFY_NONE;
    if (s->client_auth == TLS_CLIENT_AUTH_REQUESTED)
        mode = SSL_VERIFY_PEER;
    else if (s->client_auth == TLS_CLIENT_AUTH_REQUIRED)
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    if (mode != SSL_VERIFY_NONE && s->truststore_location == NULL && s->truststore_certificates == NULL) {
        fmt(err, errn,
            "ssl.client.auth=%s needs a trust store (ssl.truststore.location or "
            "ssl.truststore.certificates) to check client certificates against",
            s->client_auth == TLS_CLIENT_AUTH_REQUIRED ? "required" : "requested");
        goto err;
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    return ctx;
err:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- the server context ------------------------------------------------- */

static file_stamp stamp_of(const char *path) {
    file_stamp st = {0};
    struct stat sb;
    if (path != NULL && stat(path, &sb) == 0) {
        st.present = true;
        st.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        st.size = (int64_t)sb.st_size;
        st.ino = (uint64_t)sb.st_ino;
    }
    return st;
}

static bool stamp_eq(file_stamp a, file_stamp b) {
    return a.present == b.present && a.mtime_ns == b.mtime_ns && a.size == b.size && a.ino == b.ino;
}

tls_server *tls_server_create(const tls_config *cfg, char *err, size_t errn) {
    if (cfg->keystore_type != NULL && cfg->keystore_type[0] && strcasecmp(cfg->keystore_type, "PEM") != 0) {
        fmt(err, errn, "ssl.keystore.type=%s is not supported: Sluice reads PEM key stores only",
            cfg->keystore_type);
        return NULL;
    }
    if (cfg->truststore_type != NULL && cfg->truststore_type[0] &&
        strcasecmp(cfg->truststore_type, "PEM") != 0) {
        fmt(err, errn, "ssl.truststore.type=%s is not supported: Sluice reads PEM trust stores only",
            cfg->truststore_type);
        return NULL;
    }
    tls_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        fmt(err, errn, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->listener = strdup(cfg->listener ? cfg->listener : "?");
    s->keystore_location = dup_or_null(cfg->keystore_location);
    s->keystore_chain = dup_or_null(cfg->keystore_chain);
    s->keystore_key = dup_or_null(cfg->keystore_key);
    s->key_password = dup_or_null(cfg->key_password);
    s->truststore_location = dup_or_null(cfg->truststore_location);
    s->truststore_certificates = dup_or_null(cfg->truststore_certificates);
    s->enabled_protocols = dup_or_null(cfg->enabled_protocols);
    s->cipher_suites = dup_or_null(cfg->cipher_suites);
    s->client_auth = cfg->client_auth;
    s->reload_check_ms = cfg->reload_check_ms;
    s->key_stamp = stamp_of(s->keystore_location);
    s->trust_stamp = stamp_of(s->truststore_location);
    s->ctx = build_ctx(s, err, errn);
    if (s->ctx == NULL) {
        tls_server_destroy(s);
        return NULL;
    }
    s->generation = 1;
    return s;
}

void tls_server_destroy(tls_server *s) {
    if (s == NULL)
        return;
    SSL_CTX_free(s->ctx);
    free(s->listener);
    free(s->keystore_location);
    free(s->keystore_chain);
    if (s->keystore_key)
        OPENSSL_cleanse(s->keystore_key, strlen(s->keystore_key));
    free(s->keystore_key);
    if (s->key_password)
        OPENSSL_cleanse(s->key_password, strlen(s->key_password));
    free(s->key_password);
    free(s->truststore_location);
    free(s->truststore_certificates);
    free(s->enabled_protocols);
    free(s->cipher_suites);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* With s->mu held. */
static int reload_locked(tls_server *s, int64_t now_ms) {
    s->last_check_ms = now_ms;
    if (s->keystore_location == NULL && s->truststore_location == NULL)
        return 0;
    file_stamp k = stamp_of(s->keystore_location), t = stamp_of(s->truststore_location);
    if (stamp_eq(k, s->key_stamp) && stamp_eq(t, s->trust_stamp))
        return 0;
    if (s->has_failed && stamp_eq(k, s->failed_key) && stamp_eq(t, s->failed_trust))
        return -1; /* already tried and logged */
    char err[512];
    SSL_CTX *ctx = build_ctx(s, err, sizeof err);
    if (ctx == NULL) {
        s->has_failed = true;
        s->failed_key = k;
        s->failed_trust = t;
        LOG_WARN("tls",
                 "listener %s: the changed key or trust store is not usable, new connections keep the "
                 "previous one: %s",
                 s->listener, err);
        return -1;
    }
    SSL_CTX_free(s->ctx); /* connections made with it hold their own reference */
    s->ctx = ctx;
    s->key_stamp = k;
    s->trust_stamp = t;
    s->has_failed = false;
    s->generation++;
    LOG_INFO("tls",
             "listener %s: reloaded the key and trust stores (generation %llu); new connections use them",
             s->listener, (unsigned long long)s->generation);
    return 1;
}

int tls_server_reload(tls_server *s, int64_t now_ms) {
    pthread_mutex_lock(&s->mu);
    int rc = reload_locked(s, now_ms);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t tls_server_generation(tls_server *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t g = s->generation;
    pthread_mutex_unlock(&s->mu);
    return g;
}

/* ---- connections -------------------------------------------------------- */

tls_conn *tls_conn_new(tls_server *s, int fd, int64_t now_ms) {
    tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    pthread_mutex_lock(&s->mu);
    if (s->reload_check_ms > 0 && now_ms - s->last_check_ms >= s->reload_check_ms)
        reload_locked(s, now_ms);
    c->ssl = SSL_new(s->ctx);
    pthread_mutex_unlock(&s->mu);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    SSL_set_accept_state(c->ssl);
    return c;
}

void tls_conn_free(tls_conn *c) {
    if (c == NULL)
        return;
    if (SSL_is_init_finished(c->ssl))
        SSL_shutdown(c->ssl); /* one non-blocking try at a close_notify */
    ERR_clear_error();
    SSL_free(c->ssl);
    free(c);
}

bool tls_conn_wants_write(const tls_conn *c) { return c->want_write; }

int tls_conn_handshake(tls_conn *c, char *why, size_t whyn) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->want_write = false;
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->want_write = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    if (e == SSL_ERROR_SSL) {
        long vr = SSL_get_verify_result(c->ssl);
        char reason[200];
        ssl_reason(reason, sizeof reason, "TLS error");
        if (vr != X509_V_OK)
            fmt(why, whyn, "%s (client certificate: %s)", reason, X509_verify_cert_error_string(vr));
        else
            fmt(why, whyn, "%s", reason);
    } else if (e == SSL_ERROR_SYSCALL && errno != 0) {
        fmt(why, whyn, "%s", strerror(errno));
    } else {
        fmt(why, whyn, "peer closed the connection during the handshake");
    }
    ERR_clear_error();
    return -1;
}

/* Maps an SSL_read/SSL_write result onto read(2)'s conventions. */
static ssize_t io_result(tls_conn *c, int r) {
    if (r > 0) {
        c->want_write = false;
        return r;
    }
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->want_write = false;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0 || errno == EAGAIN)
            return 0; /* the peer went away without a close_notify */
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t tls_conn_read(tls_conn *c, void *buf, size_t n) {
    ERR_clear_error();
    errno = 0;
    return io_result(c, SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
}

ssize_t tls_conn_peek(tls_conn *c, void *buf, size_t n) {
    ERR_clear_error();
    errno = 0;
    return io_result(c, SSL_peek(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
}

ssize_t tls_conn_write(tls_conn *c, const void *buf, size_t n) {
    ERR_clear_error();
    errno = 0;
    return io_result(c, SSL_write(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
}

size_t tls_conn_pending(const tls_conn *c) {
    int p = SSL_pending(c->ssl);
    return p > 0 ? (size_t)p : 0;
}

bool tls_conn_has_pending(const tls_conn *c) { return SSL_has_pending(c->ssl) == 1; }

void tls_conn_describe(const tls_conn *c, char *out, size_t n) {
    fmt(out, n, "%s %s", SSL_get_version(c->ssl), SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
}

void tls_conn_peer_subject(const tls_conn *c, char *out, size_t n) {
    if (n == 0)
        return;
    out[0] = '\0';
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    if (x == NULL)
        return;
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        int len = BIO_read(b, out, (int)(n - 1));
        out[len > 0 ? len : 0] = '\0';
    }
    BIO_free(b);
    X509_free(x);
}
