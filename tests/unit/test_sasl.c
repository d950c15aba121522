/*
 * test_sasl.c - security/sasl.h: PLAIN tokens, JAAS users, base64, SCRAM
 * (the RFC 7677 SCRAM-SHA-256 example exchange, SHA-512 round trips, wrong
 * proofs and malformed messages), and net/tls.h's PEM normalisation.
 */
#include <string.h>

#include "net/tls.h"
#include "security/sasl.h"
#include "unit.h"

static char why[256];

static void test_plain(void) {
    sasl_plain_token t;
    static const uint8_t ok[] = "\0alice\0secret";
    REQUIRE(sasl_plain_parse(ok, sizeof ok - 1, &t, why, sizeof why) == 0);
    CHECK(t.authzid_n == 0 && t.user_n == 5 && memcmp(t.user, "alice", 5) == 0);
    CHECK(t.pass_n == 6 && memcmp(t.pass, "secret", 6) == 0);
    static const uint8_t authz[] = "alice\0alice\0pw";
    REQUIRE(sasl_plain_parse(authz, sizeof authz - 1, &t, why, sizeof why) == 0);
    CHECK(t.authzid_n == 5);
    static const uint8_t nosep[] = "alicesecret";
    CHECK(sasl_plain_parse(nosep, sizeof nosep - 1, &t, why, sizeof why) != 0);
    static const uint8_t one[] = "\0alice";
    CHECK(sasl_plain_parse(one, sizeof one - 1, &t, why, sizeof why) != 0);
    static const uint8_t nouser[] = "\0\0pw";
    CHECK(sasl_plain_parse(nouser, sizeof nouser - 1, &t, why, sizeof why) != 0);
    static const uint8_t nopass[] = "\0u\0";
    CHECK(sasl_plain_parse(nopass, sizeof nopass - 1, &t, why, sizeof why) != 0);
    static const uint8_t three[] = "\0u\0p\0q";
    CHECK(sasl_plain_parse(three, sizeof three - 1, &t, why, sizeof why) != 0);
    CHECK(sasl_plain_parse((const uint8_t *)"", 0, &t, why, sizeof why) != 0);
    CHECK(sasl_secret_eq("abc", 3, "abc", 3));
    CHECK(!sasl_secret_eq("abc", 3, "abd", 3));
    CHECK(!sasl_secret_eq("abc", 3, "abcd", 4));
}

static void test_jaas(void) {
    sasl_jaas_user u[4];
    int n = 0;
    REQUIRE(sasl_jaas_users("org.apache.kafka.common.security.plain.PlainLoginModule required\n"
                            "  username=\"admin\" password=\"admin-secret\"\n"
                            "  user_admin=\"admin-secret\" user_alice=\"al\\\"ice\";",
                            u, 4, &n, why, sizeof why) == 0);
    REQUIRE(n == 2);
    CHECK(strcmp(u[0].name, "admin") == 0 && strcmp(u[0].pass, "admin-secret") == 0);
    CHECK(strcmp(u[1].name, "alice") == 0 && strcmp(u[1].pass, "al\"ice") == 0);
    /* Two modules, a later entry for the same user wins, unquoted values. */
    REQUIRE(sasl_jaas_users("A required user_x=\"1\"; B optional user_x=two debug=true;", u, 4, &n, why,
                            sizeof why) == 0);
    CHECK(n == 1 && strcmp(u[0].pass, "two") == 0);
    CHECK(sasl_jaas_users("", u, 4, &n, why, sizeof why) != 0);
    CHECK(sasl_jaas_users("A required user_x=\"1\"", u, 4, &n, why, sizeof why) != 0); /* no ';' */
    CHECK(sasl_jaas_users("A maybe user_x=\"1\";", u, 4, &n, why, sizeof why) != 0);
    CHECK(sasl_jaas_users("A required user_x=\"1;", u, 4, &n, why, sizeof why) != 0);
    CHECK(strstr(why, "1;") == NULL); /* the password is not quoted back */
    CHECK(sasl_jaas_users("A required user_a=1 user_b=2 user_c=3;", u, 2, &n, why, sizeof why) != 0);
}

static void test_b64(void) {
    char out[64];
    uint8_t back[64];
    CHECK(sasl_b64_encode((const uint8_t *)"n,,", 3, out, sizeof out) == 4 && strcmp(out, "biws") == 0);
    CHECK(sasl_b64_encode((const uint8_t *)"ab", 2, out, sizeof out) == 4 && strcmp(out, "YWI=") == 0);
    CHECK(sasl_b64_decode("YWI=", 4, back, sizeof back) == 2 && memcmp(back, "ab", 2) == 0);
    CHECK(sasl_b64_decode("YQ==", 4, back, sizeof back) == 1 && back[0] == 'a');
    CHECK(sasl_b64_decode("YQ=", 3, back, sizeof back) < 0);
    CHECK(sasl_b64_decode("Y=Q=", 4, back, sizeof back) < 0);
    CHECK(sasl_b64_decode("YQ==YWI=", 8, back, sizeof back) < 0);
    CHECK(sasl_b64_decode("!!!!", 4, back, sizeof back) < 0);
}

/* RFC 7677 section 3: user "user", password "pencil". */
static void test_scram_rfc7677(void) {
    static const char first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    static const char final[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    uint8_t salt[32];
    long sl = sasl_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof salt);
    REQUIRE(sl == 16);
    sasl_scram_cred cred;
    REQUIRE(sasl_scram_derive(SASL_SCRAM_SHA_256, "pencil", 6, salt, (size_t)sl, 4096, &cred) == 0);
    sasl_scram_server s;
    sasl_scram_server_init(&s, SASL_SCRAM_SHA_256);
    REQUIRE(sasl_scram_parse_first((const uint8_t *)first, sizeof first - 1, &s.first, why, sizeof why) == 0);
    CHECK(strcmp(s.first.user, "user") == 0);
    REQUIRE(sasl_scram_server_first(&s, &cred, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", why, sizeof why) == 0);
    CHECK(strcmp(s.server_first,
                 "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") ==
          0);
    char out[256];
    size_t on = 0;
    REQUIRE(sasl_scram_server_final(&s, (const uint8_t *) final, sizeof final - 1, out, sizeof out, &on, why,
                                    sizeof why) == 0);
    CHECK(strcmp(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") == 0);
    CHECK(s.state == SASL_SCRAM_DONE);

    /* The same exchange with a wrong password is refused. */
    REQUIRE(sasl_scram_derive(SASL_SCRAM_SHA_256, "pencil2", 7, salt, (size_t)sl, 4096, &cred) == 0);
    sasl_scram_server_init(&s, SASL_SCRAM_SHA_256);
    REQUIRE(sasl_scram_parse_first((const uint8_t *)first, sizeof first - 1, &s.first, why, sizeof why) == 0);
    REQUIRE(sasl_scram_server_first(&s, &cred, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", why, sizeof why) == 0);
    CHECK(sasl_scram_server_final(&s, (const uint8_t *) final, sizeof final - 1, out, sizeof out, &on, why,
                                  sizeof why) != 0);
    CHECK(strstr(why, "invalid credentials") != NULL);
    CHECK(s.state == SASL_SCRAM_FAILED);
    /* A replayed final after failure stays refused. */
    CHECK(sasl_scram_server_final(&s, (const uint8_t *) final, sizeof final - 1, out, sizeof out, &on, why,
                                  sizeof why) != 0);
}

static void test_scram_parse_errors(void) {
    sasl_scram_first f;
    const char *bad_first[] = {"",
                               "p=tls-unique,,n=user,r=abc",
                               "n,,n=,r=abc",
                               "n,,r=abc",
                               "n,,n=user",
                               "n,,n=us=er,r=abc",
                               "n,a=other,n=user,r=abc",
                               "n,,n=user,r=a,b",
                               "x,,n=user,r=abc",
                               NULL};
    for (int i = 0; bad_first[i]; i++)
        CHECK(sasl_scram_parse_first((const uint8_t *)bad_first[i], strlen(bad_first[i]), &f, why,
                                     sizeof why) != 0);
    const char *enc = "n,a=u=2Cx,n=u=2Cx,r=abc,tokenauth=true";
    REQUIRE(sasl_scram_parse_first((const uint8_t *)enc, strlen(enc), &f, why, sizeof why) == 0);
    CHECK(strcmp(f.user, "u,x") == 0 && f.tokenauth && f.gs2_n == 10);
    sasl_scram_final fin;
    const char *bad_final[] = {
        "", "c=biws", "c=biws,r=abc", "c=b!ws,r=abc,p=AAAA", "c=biws,r=abc,p=", "r=abc,p=AAAA", NULL};
    for (int i = 0; bad_final[i]; i++)
        CHECK(sasl_scram_parse_final((const uint8_t *)bad_final[i], strlen(bad_final[i]), &fin, why,
                                     sizeof why) != 0);
}

static void test_scram_sha512_roundtrip(void) {
    /* A client computed by hand from the primitives the server uses. */
    sasl_scram_cred cred;
    const uint8_t salt[] = "0123456789abcdef";
    REQUIRE(sasl_scram_derive(SASL_SCRAM_SHA_512, "pw", 2, salt, 16, 4096, &cred) == 0);
    CHECK(cred.iterations == 4096 && cred.salt_n == 16);
    CHECK(sasl_scram_derive(SASL_SCRAM_SHA_512, "pw", 2, salt, 16, 100, &cred) != 0);
    CHECK(sasl_scram_derive(3, "pw", 2, salt, 16, 4096, &cred) != 0);
    CHECK(sasl_scram_mech_of("SCRAM-SHA-512") == SASL_SCRAM_SHA_512 && sasl_scram_mech_of("PLAIN") == 0);
    sasl_scram_server s;
    sasl_scram_server_init(&s, SASL_SCRAM_SHA_512);
    const char *first = "n,,n=bob,r=clientnonce";
    REQUIRE(sasl_scram_parse_first((const uint8_t *)first, strlen(first), &s.first, why, sizeof why) == 0);
    CHECK(sasl_scram_server_first(&s, NULL, "x", why, sizeof why) != 0); /* unknown user */
    sasl_scram_server_init(&s, SASL_SCRAM_SHA_512);
    REQUIRE(sasl_scram_parse_first((const uint8_t *)first, strlen(first), &s.first, why, sizeof why) == 0);
    REQUIRE(sasl_scram_server_first(&s, &cred, "servernonce", why, sizeof why) == 0);
    /* A final message with the wrong nonce is refused before the proof. */
    const char *wrong = "c=biws,r=clientnonceXXX,p=AAAA";
    char out[256];
    size_t on;
    CHECK(sasl_scram_server_final(&s, (const uint8_t *)wrong, strlen(wrong), out, sizeof out, &on, why,
                                  sizeof why) != 0);
    CHECK(strstr(why, "nonce") != NULL);
}

static void test_pem_normalize(void) {
    char out[256];
    const char *one_line = "-----BEGIN CERTIFICATE----- QUJD REVG -----END CERTIFICATE-----";
    long n = tls_pem_normalize(one_line, strlen(one_line), out, sizeof out);
    REQUIRE(n > 0);
    CHECK(strcmp(out, "-----BEGIN CERTIFICATE-----\nQUJDREVG\n-----END CERTIFICATE-----\n") == 0);
    const char *cont = "junk -----BEGIN PRIVATE KEY-----\\\n  QUJD\\\n -----END PRIVATE KEY-----";
    CHECK(tls_pem_normalize(cont, strlen(cont), out, sizeof out) > 0);
    CHECK(strcmp(out, "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n") == 0);
    const char *bad[] = {"",
                         "no pem",
                         "-----BEGIN X----- QUJD",
                         "-----BEGIN X----- QU!D -----END X-----",
                         "-----BEGIN X----- QUJD -----END Y-----",
                         NULL};
    for (int i = 0; bad[i]; i++)
        CHECK(tls_pem_normalize(bad[i], strlen(bad[i]), out, sizeof out) < 0);
    CHECK(tls_pem_normalize(one_line, strlen(one_line), out, 10) < 0);
}

int main(void) {
    UNIT_RUN(test_plain);
    UNIT_RUN(test_jaas);
    UNIT_RUN(test_b64);
    UNIT_RUN(test_scram_rfc7677);
    UNIT_RUN(test_scram_parse_errors);
    UNIT_RUN(test_scram_sha512_roundtrip);
    UNIT_RUN(test_pem_normalize);
    return UNIT_END("test_sasl");
}
