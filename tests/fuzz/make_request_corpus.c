/*
 * make_request_corpus.c - writes the seed corpus of fuzz_request: one valid
 * request frame body (header + body, no size prefix) per API at its highest
 * version, plus the lowest and first flexible versions of a few core APIs.
 * Bodies are init()'ed structs, so every field holds its schema default.
 *
 * Not built by CMake; run from the repository root after a release build:
 *   cc -std=c17 -Isrc tests/fuzz/make_request_corpus.c build/rel/libsluice.a -o build/mkcorpus
 *   ./build/mkcorpus tests/fuzz/corpus/request
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/header.h"

static int write_one(const char *dir, const kafka_api_info *api, int16_t v) {
    static uint8_t buf[4096];
    void *m = calloc(1, api->request_struct_size);
    if (m == NULL)
        return -1;
    api->request_init(m);
    wire_writer w;
    wire_writer_init(&w, buf, sizeof buf);
    int hv = proto_request_header_version(api->key, v);
    wire_write_i16(&w, api->key);
    wire_write_i16(&w, v);
    wire_write_i32(&w, 1);
    if (hv >= 1)
        wire_write_string(&w, kstr_c("seed"), false, true);
    if (hv >= 2)
        wire_write_uvarint(&w, 0);
    int rc = api->request_encode(&w, v, m);
    free(m);
    if (rc != WIRE_OK) {
        fprintf(stderr, "%s v%d: %s\n", api->name, v, wire_strerror(rc));
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s_v%d", dir, api->name, v);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, w.len, f) != w.len) {
        perror(path);
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    int bad = 0, n = 0;
    for (int key = 0; key <= KAFKA_API_MAX_KEY; key++) {
        const kafka_api_info *api = kafka_api_lookup((int16_t)key);
        if (api == NULL)
            continue;
        bad |= write_one(argv[1], api, api->max_version) != 0;
        n++;
        bool core = key == KAFKA_API_PRODUCE || key == KAFKA_API_FETCH || key == KAFKA_API_METADATA ||
                    key == KAFKA_API_API_VERSIONS || key == KAFKA_API_LIST_OFFSETS ||
                    key == KAFKA_API_JOIN_GROUP || key == KAFKA_API_OFFSET_COMMIT;
        if (core) {
            bad |= write_one(argv[1], api, api->min_version) != 0;
            n++;
            if (api->flexible_min > api->min_version && api->flexible_min < api->max_version) {
                bad |= write_one(argv[1], api, api->flexible_min) != 0;
                n++;
            }
        }
    }
    printf("wrote %d seeds\n", n);
    return bad ? 1 : 0;
}
