/*
 * fuzz_mm2.c - libFuzzer target for the decoders of MirrorMaker 2's internal
 * records (tools/mm2.h: offset syncs, checkpoints, heartbeats), which
 * `sluice mirror` reads back from topics anyone may write. The input is
 * split into a key and a value at a position its first byte names; each
 * decoder must accept or refuse it without over-reading, and what it
 * accepts must re-encode to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/mm2.h"

#define BUF_MAX 4096

static void roundtrip_sync(const mm2_offset_sync *s, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen) {
    char topic[BUF_MAX];
    if (s->topic.len < 0 || (size_t)s->topic.len >= sizeof topic)
        return;
    memcpy(topic, s->topic.ptr, (size_t)s->topic.len);
    topic[s->topic.len] = '\0';
    if (memchr(topic, '\0', (size_t)s->topic.len) != NULL)
        return; /* a C string cannot carry it: nothing to compare */
    uint8_t k[BUF_MAX], v[64];
    size_t kn = mm2_offset_sync_key(k, sizeof k, topic, s->partition);
    size_t vn = mm2_offset_sync_value(v, sizeof v, s->upstream, s->downstream);
    if (kn == klen && memcmp(k, key, kn) != 0)
        abort();
    if (vn == vlen && memcmp(v, val, vn) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t split = data[0] < size ? data[0] : size - 1;
    const uint8_t *key = data + 1, *val = data + 1 + (split > 0 ? split - 1 : 0);
    size_t klen = split > 0 ? split - 1 : 0;
    size_t vlen = size - 1 - klen;
    /* Copies so that a read past either part is caught by the sanitizer. */
    uint8_t *k = malloc(klen ? klen : 1), *v = malloc(vlen ? vlen : 1);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return 0;
    }
    memcpy(k, key, klen);
    memcpy(v, val, vlen);
    mm2_offset_sync s;
    if (mm2_offset_sync_decode(k, klen, v, vlen, &s))
        roundtrip_sync(&s, k, klen, v, vlen);
    mm2_checkpoint c;
    (void)mm2_checkpoint_decode(k, klen, v, vlen, &c);
    mm2_heartbeat h;
    (void)mm2_heartbeat_decode(k, klen, v, vlen, &h);
    free(k);
    free(v);
    return 0;
}
