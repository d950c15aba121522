/*
 * fuzz_sasl.c - libFuzzer target for what a SASL client sends and what the
 * broker's security configuration holds: the PLAIN message, SCRAM's
 * client-first and client-final messages (also as a whole exchange against
 * a fixed credential), base64, the JAAS text and PEM normalisation. The
 * first byte picks the decoder; none may crash, over-read or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"
#include "security/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sasl_scram_cred cred;
    static int have_cred;
    char why[256];
    if (size == 0)
        return 0;
    uint8_t kind = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (!have_cred) {
        static const uint8_t salt[] = "fuzz-salt-16byte";
        have_cred = sasl_scram_derive(SASL_SCRAM_SHA_256, "pw", 2, salt, 16, 4096, &cred) == 0;
    }
    switch (kind % 6) {
    case 0: {
        sasl_plain_token t;
        sasl_plain_parse(p, n, &t, why, sizeof why);
        break;
    }
    case 1: {
        sasl_scram_first f;
        sasl_scram_parse_first(p, n, &f, why, sizeof why);
        break;
    }
    case 2: {
        sasl_scram_final f;
        sasl_scram_parse_final(p, n, &f, why, sizeof why);
        break;
    }
    case 3: {
        /* A whole exchange: client-first, then the rest as client-final. */
        const uint8_t *nl = memchr(p, '\n', n);
        size_t first_n = nl ? (size_t)(nl - p) : n;
        sasl_scram_server s;
        sasl_scram_server_init(&s, SASL_SCRAM_SHA_256);
        if (sasl_scram_parse_first(p, first_n, &s.first, why, sizeof why) == 0 &&
            sasl_scram_server_first(&s, &cred, "servernonce", why, sizeof why) == 0 && nl != NULL) {
            char out[256];
            size_t on;
            sasl_scram_server_final(&s, nl + 1, n - first_n - 1, out, sizeof out, &on, why, sizeof why);
        }
        break;
    }
    case 4: {
        uint8_t out[512];
        sasl_b64_decode((const char *)p, n, out, sizeof out);
        char *text = malloc(n + 1);
        if (text) {
            memcpy(text, p, n);
            text[n] = '\0';
            sasl_jaas_user users[4];
            int nu;
            sasl_jaas_users(text, users, 4, &nu, why, sizeof why);
            free(text);
        }
        break;
    }
    default: {
        char out[4096];
        tls_pem_normalize((const char *)p, n, out, sizeof out);
        break;
    }
    }
    return 0;
}
