/*
 * records.c - `__transaction_state` keys and values. See records.h.
 */
#include "txn/records.h"

#include <string.h>

int trec_encode_key(arena *a, kstr txn_id, kbytes *out) {
    if (txn_id.len < 0)
        return -1;
    size_t n = 2 + wire_string_size(txn_id, false);
    uint8_t *buf = arena_alloc(a, n);
    if (buf == NULL)
        return -1;
    wire_writer w;
    wire_writer_init(&w, buf, n);
    wire_write_i16(&w, 0);
    wire_write_string(&w, txn_id, false, false);
    out->ptr = buf;
    out->len = (int32_t)n;
    return w.err == WIRE_OK ? 0 : -1;
}

/* Runs of one topic among consecutive entries. */
static int32_t topic_run(const trec_value *v, int32_t i) {
    int32_t j = i + 1;
    while (j < v->n_parts && kstr_eq(v->parts[j].topic, v->parts[i].topic))
        j++;
    return j - i;
}

int trec_encode_value(arena *a, const trec_value *v, kbytes *out) {
    size_t n = 2 + 8 + 2 + 4 + 1 + 4 + 8 + 8;
    int32_t topics = 0;
    for (int32_t i = 0; i < v->n_parts; i += topic_run(v, i)) {
        n += wire_string_size(v->parts[i].topic, false) + 4 + 4 * (size_t)topic_run(v, i);
        topics++;
    }
    if (n > INT32_MAX)
        return -1;
    uint8_t *buf = arena_alloc(a, n);
    if (buf == NULL)
        return -1;
    wire_writer w;
    wire_writer_init(&w, buf, n);
    wire_write_i16(&w, 0);
    wire_write_i64(&w, v->producer_id);
    wire_write_i16(&w, v->epoch);
    wire_write_i32(&w, v->timeout_ms);
    wire_write_i8(&w, v->status);
    wire_write_i32(&w, topics);
    for (int32_t i = 0; i < v->n_parts;) {
        int32_t k = topic_run(v, i);
        wire_write_string(&w, v->parts[i].topic, false, false);
        wire_write_i32(&w, k);
        for (int32_t j = 0; j < k; j++)
            wire_write_i32(&w, v->parts[i + j].partition);
        i += k;
    }
    wire_write_i64(&w, v->update_ms);
    wire_write_i64(&w, v->start_ms);
    out->ptr = buf;
    out->len = (int32_t)n;
    return w.err == WIRE_OK && w.len == n ? 0 : -1;
}

int trec_decode_key(kbytes in, kstr *txn_id) {
    if (in.len < 2)
        return -1;
    wire_reader r;
    wire_reader_init(&r, in.ptr, (size_t)in.len);
    if (wire_read_i16(&r) != 0)
        return -1;
    *txn_id = wire_read_string(&r, false, false);
    return r.err == WIRE_OK && txn_id->len >= 0 ? 0 : -1;
}

/* Skips a tagged-field section (flexible versions). */
static void skip_tags(wire_reader *r) {
    uint32_t n = wire_read_uvarint(r);
    for (uint32_t i = 0; i < n && r->err == WIRE_OK; i++) {
        (void)wire_read_uvarint(r);
        uint32_t size = wire_read_uvarint(r);
        if (wire_skip(r, size) == NULL)
            return;
    }
}

int trec_decode_value(kbytes in, arena *a, trec_value *out) {
    memset(out, 0, sizeof *out);
    if (in.len < 2)
        return -1;
    wire_reader r;
    wire_reader_init(&r, in.ptr, (size_t)in.len);
    int16_t ver = wire_read_i16(&r);
    if (ver != 0 && ver != 1)
        return -1;
    bool flex = ver >= 1;
    out->producer_id = wire_read_i64(&r);
    out->epoch = wire_read_i16(&r);
    out->timeout_ms = wire_read_i32(&r);
    out->status = wire_read_i8(&r);
    int32_t topics = wire_read_array_len(&r, flex, true);
    if (r.err != WIRE_OK || topics > TREC_PARTITIONS_MAX)
        return -1;
    int32_t cap = 0;
    for (int32_t t = 0; t < topics && r.err == WIRE_OK; t++) {
        kstr topic = wire_read_string(&r, flex, false);
        int32_t np = wire_read_array_len(&r, flex, false);
        /* Each partition is 4 bytes: a count past what remains is a lie. */
        if (r.err != WIRE_OK || np < 0 || (size_t)np > wire_remaining(&r) / 4 ||
            out->n_parts + np > TREC_PARTITIONS_MAX)
            return -1;
        if (out->n_parts + np > cap) {
            int32_t ncap = cap * 2 > out->n_parts + np ? cap * 2 : out->n_parts + np + 8;
            trec_tp *nv = arena_alloc(a, (size_t)ncap * sizeof *nv);
            if (nv == NULL)
                return -1;
            if (out->n_parts > 0)
                memcpy(nv, out->parts, (size_t)out->n_parts * sizeof *nv);
            out->parts = nv;
            cap = ncap;
        }
        for (int32_t j = 0; j < np; j++)
            out->parts[out->n_parts++] = (trec_tp){topic, wire_read_i32(&r)};
        if (flex)
            skip_tags(&r);
    }
    out->update_ms = wire_read_i64(&r);
    out->start_ms = wire_read_i64(&r);
    if (flex)
        skip_tags(&r);
    if (r.err != WIRE_OK || out->status < TREC_EMPTY || out->status > TREC_PREPARE_EPOCH_FENCE)
        return -1;
    return 0;
}

const char *trec_status_name(int8_t status) {
    static const char *const names[] = {"Empty",        "Ongoing",          "PrepareCommit",
                                        "PrepareAbort", "CompleteCommit",   "CompleteAbort",
                                        "Dead",         "PrepareEpochFence"};
    return status >= 0 && status <= TREC_PREPARE_EPOCH_FENCE ? names[status] : "Unknown";
}
