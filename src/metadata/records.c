/*
 * records.c - framing of metadata records. See records.h.
 */
#include "metadata/records.h"

#include <string.h>

const char *mdrec_strerror(int err) {
    switch (err) {
    case MDREC_OK:
        return "ok";
    case MDREC_EFRAME:
        return "bad frame header";
    case MDREC_ETYPE:
        return "unknown record type";
    case MDREC_EVERSION:
        return "unsupported record version";
    case MDREC_EBODY:
        return "malformed record body";
    case MDREC_ENOMEM:
        return "out of memory";
    }
    return "unknown error";
}

int16_t mdrec_write_version(int16_t type) {
    const kafka_record_info *ri = kafka_metadata_record_lookup(type);
    return ri ? ri->max_version : -1;
}

const char *mdrec_type_name(int16_t type) {
    const kafka_record_info *ri = kafka_metadata_record_lookup(type);
    return ri ? ri->name : "unknown";
}

size_t mdrec_size(const mdrec *r) {
    return wire_uvarint_size(MDREC_FRAME_VERSION) + wire_uvarint_size((uint32_t)r->type) +
           wire_uvarint_size((uint32_t)r->version) + r->info->size(r->version, r->body);
}

int mdrec_encode(const mdrec *r, wire_writer *w) {
    wire_write_uvarint(w, MDREC_FRAME_VERSION);
    wire_write_uvarint(w, (uint32_t)r->type);
    wire_write_uvarint(w, (uint32_t)r->version);
    r->info->encode(w, r->version, r->body);
    return w->err;
}

int mdrec_encode_alloc(const mdrec *r, arena *a, uint8_t **out, size_t *len) {
    size_t n = mdrec_size(r);
    uint8_t *buf = arena_alloc(a, n ? n : 1);
    if (buf == NULL)
        return MDREC_ENOMEM;
    wire_writer w;
    wire_writer_init(&w, buf, n);
    if (mdrec_encode(r, &w) != WIRE_OK || w.len != n)
        return MDREC_EBODY;
    *out = buf;
    *len = n;
    return MDREC_OK;
}

int mdrec_decode(const uint8_t *p, size_t n, arena *a, mdrec *out) {
    memset(out, 0, sizeof *out);
    wire_reader r;
    wire_reader_init(&r, p, n);
    uint32_t frame = wire_read_uvarint(&r);
    uint32_t type = wire_read_uvarint(&r);
    uint32_t version = wire_read_uvarint(&r);
    if (r.err != WIRE_OK || frame != MDREC_FRAME_VERSION)
        return MDREC_EFRAME;
    const kafka_record_info *ri = type <= INT16_MAX ? kafka_metadata_record_lookup((int16_t)type) : NULL;
    if (ri == NULL)
        return MDREC_ETYPE;
    if (version > (uint32_t)ri->max_version || (int32_t)version < ri->min_version)
        return MDREC_EVERSION;
    void *body = arena_alloc(a, ri->struct_size);
    if (body == NULL)
        return MDREC_ENOMEM;
    if (ri->decode(&r, (int16_t)version, a, body) != WIRE_OK)
        return r.err == WIRE_ENOMEM ? MDREC_ENOMEM : MDREC_EBODY;
    if (wire_remaining(&r) != 0)
        return MDREC_EBODY;
    *out = (mdrec){(int16_t)type, (int16_t)version, ri, body};
    return MDREC_OK;
}
