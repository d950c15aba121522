/*
 * fuzz_txn_records.c - libFuzzer target for the `__transaction_state`
 * records a transaction coordinator reads while it loads (trec_decode_key,
 * trec_decode_value, tcoord_load_record): the partition's log can hold any
 * bytes.
 *
 * Invariants: no crash, no sanitizer report, no leak; a value that decodes
 * holds at most TREC_PARTITIONS_MAX partitions and re-encodes (as v0) to
 * bytes that decode to the same fields; a machine fed the record (as key
 * and value both split from the input) loads and serves without tripping
 * its invariants.
 *
 * Input layout: byte 0 is the key's length (at most the rest); then the
 * key, then the value.
 *
 * FUZZ_WRITE_SEEDS=<dir> writes seeds (an Empty id, an Ongoing transaction
 * of three partitions, a tombstone) there and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/coordinator.h"
#include "txn/records.h"

static void write_seed(const char *dir, const char *name, kbytes k, kbytes v) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return;
    fputc(k.len, f);
    fwrite(k.ptr, 1, (size_t)k.len, f);
    if (v.len > 0)
        fwrite(v.ptr, 1, (size_t)v.len, f);
    fclose(f);
}

static void write_seeds(const char *dir) {
    arena a;
    arena_init(&a, 1 << 20);
    kbytes k, v;
    trec_encode_key(&a, kstr_c("my-txn"), &k);
    trec_value e = {7, 0, 60000, TREC_EMPTY, NULL, 0, 1700000000000, -1};
    trec_encode_value(&a, &e, &v);
    write_seed(dir, "empty", k, v);
    trec_tp parts[] = {{{"orders", 6}, 0}, {{"orders", 6}, 1}, {{"__consumer_offsets", 18}, 12}};
    trec_value o = {7, 3, 60000, TREC_ONGOING, parts, 3, 1700000000000, 1699999999000};
    trec_encode_value(&a, &o, &v);
    write_seed(dir, "ongoing", k, v);
    write_seed(dir, "tombstone", k, (kbytes){NULL, 0});
    arena_reset(&a);
}

static int16_t f_append(void *ctx, kbytes key, kbytes value) {
    (void)ctx;
    (void)key;
    (void)value;
    return 0;
}
static int16_t f_markers(void *ctx, kstr id, int64_t pid, int16_t epoch, bool commit, const trec_tp *p,
                         int32_t n) {
    (void)ctx;
    (void)id;
    (void)pid;
    (void)epoch;
    (void)commit;
    (void)p;
    (void)n;
    return 0;
}
static int16_t f_pid(void *ctx, int64_t *pid) {
    (void)ctx;
    *pid = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int seeded;
    if (!seeded) {
        seeded = 1;
        const char *dir = getenv("FUZZ_WRITE_SEEDS");
        if (dir != NULL) {
            write_seeds(dir);
            exit(0);
        }
    }
    if (size == 0)
        return 0;
    size_t klen = data[0] < size - 1 ? data[0] : size - 1;
    kbytes key = {data + 1, (int32_t)klen};
    kbytes val = {data + 1 + klen, (int32_t)(size - 1 - klen)};
    arena a;
    arena_init(&a, 64u << 20);
    kstr id;
    (void)trec_decode_key(key, &id);
    trec_value v;
    if (trec_decode_value(val, &a, &v) == 0) {
        if (v.n_parts > TREC_PARTITIONS_MAX || v.n_parts < 0)
            abort();
        kbytes re;
        trec_value w;
        if (trec_encode_value(&a, &v, &re) != 0 || trec_decode_value(re, &a, &w) != 0)
            abort();
        if (w.producer_id != v.producer_id || w.epoch != v.epoch || w.status != v.status ||
            w.n_parts != v.n_parts || w.start_ms != v.start_ms || w.update_ms != v.update_ms)
            abort();
        for (int32_t i = 0; i < v.n_parts; i++)
            if (w.parts[i].partition != v.parts[i].partition || !kstr_eq(w.parts[i].topic, v.parts[i].topic))
                abort();
    }
    tcoord_config cfg;
    tcoord_config_default(&cfg);
    tcoord_sink sink = {NULL, f_append, f_markers, f_pid};
    tcoord *c = tcoord_create(&cfg, &sink);
    if (c == NULL)
        abort();
    tcoord_load_begin(c, 0, 0);
    (void)tcoord_load_record(c, key, val);
    (void)tcoord_load_record(c, key, (kbytes){NULL, -1});
    (void)tcoord_load_record(c, key, val);
    tcoord_load_end(c, 0);
    tcoord_tick(c, INT64_MAX / 2);
    tcoord_destroy(c);
    arena_reset(&a);
    return 0;
}
