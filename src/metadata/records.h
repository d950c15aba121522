/*
 * records.h - the framing of KRaft metadata records in __cluster_metadata.
 *
 * A metadata record is the value of an ordinary magic-2 record (key null):
 *
 *   uvarint frameVersion (always 1)
 *   uvarint apiKey       (the record type: KAFKA_MREC_*)
 *   uvarint version      (the record schema's version)
 *   body                 (the schema's flexible encoding)
 *
 * This module turns a typed record (one of the generated kafka_*_record
 * structs of proto/gen/kafka_records.h) into those bytes and back. It knows
 * nothing of logs or images: metadata/image.h applies decoded records,
 * metadata/mdlog.h stores encoded ones.
 *
 * Decoding never trusts the input: an unknown frame version, an unknown
 * record type, a version outside the schema's range, a body that does not
 * decode or bytes left after the body are errors (MDREC_E*), never a
 * partially filled record.
 */
#ifndef SLUICE_METADATA_RECORDS_H
#define SLUICE_METADATA_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/gen/kafka_records.h"

#define MDREC_FRAME_VERSION 1

typedef enum mdrec_err {
    MDREC_OK = 0,
    MDREC_EFRAME = -1,   /* frame version is not 1, or the header is truncated */
    MDREC_ETYPE = -2,    /* no metadata record has this type */
    MDREC_EVERSION = -3, /* the type exists but not at this version */
    MDREC_EBODY = -4,    /* the body does not decode, or bytes remain after it */
    MDREC_ENOMEM = -5,
} mdrec_err;

const char *mdrec_strerror(int err);

/* A decoded (or to-be-encoded) metadata record. */
typedef struct mdrec {
    int16_t type;    /* KAFKA_MREC_* */
    int16_t version; /* schema version */
    const kafka_record_info *info;
    void *body; /* the kafka_<type>_record struct */
} mdrec;

/* The version Sluice writes for each type (the newest it understands;
 * metadata.version gating comes with the quorum). */
int16_t mdrec_write_version(int16_t type);

/* Exact size of the framed record. */
size_t mdrec_size(const mdrec *r);
/* Writes the framed record into w. Returns a wire_err. */
int mdrec_encode(const mdrec *r, wire_writer *w);
/* Encodes into memory from arena a: *out / *len. Returns 0 or MDREC_ENOMEM
 * or MDREC_EBODY (the struct does not encode at that version). */
int mdrec_encode_alloc(const mdrec *r, arena *a, uint8_t **out, size_t *len);
/* Decodes one framed record; the body struct and its arrays come from a,
 * strings point into p. Returns MDREC_OK or an MDREC_E* code. */
int mdrec_decode(const uint8_t *p, size_t n, arena *a, mdrec *out);

/* The name of a record type ("TopicRecord"), or "unknown". */
const char *mdrec_type_name(int16_t type);

#endif
