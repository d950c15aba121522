/*
 * fuzz_request.c - libFuzzer target for the request path of the protocol codec.
 *
 * Input: one request frame body (what follows the int32 size prefix). The
 * target parses the request header, looks the API up, and decodes the body at
 * the header's version into an arena bounded by a small multiple of the input
 * size, exactly as the broker would. When decoding succeeds it re-encodes and
 * checks that size() equals the bytes written and that a second decode/encode
 * cycle reproduces the same bytes. The same body is also decoded as the
 * API's response, which covers the response decoders with no extra target.
 *
 * Seeds: tests/fuzz/corpus/request (regenerate with make_request_corpus.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "proto/header.h"

/* Decoding may allocate at most this multiple of the input (plus a floor),
 * the same kind of bound the broker puts on a frame's arena. */
#define FUZZ_ARENA_FACTOR 32
#define FUZZ_ARENA_FLOOR  4096

static void check(int cond) {
    if (!cond)
        abort();
}

static void roundtrip(const kafka_api_info *api, bool req, int16_t v, const uint8_t *body, size_t len) {
    size_t ssize = req ? api->request_struct_size : api->response_struct_size;
    int (*dec)(wire_reader *, int16_t, arena *, void *) = req ? api->request_decode : api->response_decode;
    int (*enc)(wire_writer *, int16_t, const void *) = req ? api->request_encode : api->response_encode;
    size_t (*size)(int16_t, const void *) = req ? api->request_size : api->response_size;

    arena a;
    arena_init(&a, FUZZ_ARENA_FLOOR + len * FUZZ_ARENA_FACTOR);
    void *m = malloc(ssize);
    void *m2 = malloc(ssize);
    uint8_t *out = NULL, *out2 = NULL;
    check(m && m2);

    wire_reader r;
    wire_reader_init(&r, body, len);
    if (dec(&r, v, &a, m) != WIRE_OK)
        goto done;
    check(a.used <= a.limit);

    size_t n = size(v, m);
    out = malloc(n ? n : 1);
    out2 = malloc(n ? n : 1);
    check(out && out2);
    wire_writer w;
    wire_writer_init(&w, out, n);
    check(enc(&w, v, m) == WIRE_OK);
    check(w.len == n);

    /* The bytes we write must read back to a message that writes them again. */
    wire_reader_init(&r, out, n);
    check(dec(&r, v, &a, m2) == WIRE_OK || r.err == WIRE_ENOMEM);
    if (r.err == WIRE_OK) {
        check(wire_remaining(&r) == 0);
        check(size(v, m2) == n);
        wire_writer_init(&w, out2, n);
        check(enc(&w, v, m2) == WIRE_OK && w.len == n);
        check(memcmp(out, out2, n) == 0);
    }
done:
    free(out);
    free(out2);
    free(m);
    free(m2);
    arena_reset(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wire_reader r;
    wire_reader_init(&r, data, size);
    proto_request_header h;
    if (proto_request_header_parse(&r, &h) != WIRE_OK || h.api == NULL)
        return 0;
    if (!proto_version_supported(h.api_key, h.api_version))
        return 0;
    const uint8_t *body = r.p;
    size_t len = wire_remaining(&r);
    roundtrip(h.api, true, h.api_version, body, len);
    roundtrip(h.api, false, h.api_version, body, len);
    return 0;
}
