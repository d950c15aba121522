/*
 * fuzz_metrics_text.c - libFuzzer target for the text the metrics pages
 * write from names clients choose (obs/metrics.c): arbitrary bytes as a
 * label value and as a JSON string must come out as valid UTF-8 with
 * nothing that ends the value early (a raw quote, a newline, a control
 * character), and must never crash or over-read. The same bytes, as a
 * listener address, go through obs_http_parse_url.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/http.h"
#include "obs/metrics.h"

/* Whether s[0..n) is valid UTF-8 (the strict form: no overlongs,
 * surrogates or values past U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        if (len == 0 || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))
            return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    obs_buf b;
    obs_buf_init(&b, 64 * size + 64);
    obs_prom_escape(&b, (const char *)data, size);
    if (b.p != NULL) {
        if (!valid_utf8((const unsigned char *)b.p, b.len) || memchr(b.p, '\n', b.len) != NULL)
            abort();
        for (size_t i = 0; i < b.len; i++)
            if (b.p[i] == '"' && (i == 0 || b.p[i - 1] != '\\'))
                abort();
    }
    obs_buf_free(&b);

    obs_buf_init(&b, 64 * size + 64);
    obs_json_str(&b, (const char *)data, size);
    if (b.p == NULL || b.len < 2 || b.p[0] != '"' || b.p[b.len - 1] != '"')
        abort();
    if (!valid_utf8((const unsigned char *)b.p, b.len))
        abort();
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.p[i] < 0x20)
            abort();
    obs_buf_free(&b);

    char url[512], host[256], why[256];
    size_t n = size < sizeof url - 1 ? size : sizeof url - 1;
    memcpy(url, data, n);
    url[n] = 0;
    uint16_t port;
    if (obs_http_parse_url(url, host, sizeof host, &port, why, sizeof why) == 0 &&
        strlen(host) >= sizeof host)
        abort();
    return 0;
}
