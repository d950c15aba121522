/*
 * storage_tmp_batch.h - TEMPORARY stand-in for src/proto/batch.c and
 * src/core/crc32c.c, used by the storage tests only until the batch module
 * lands on main. Shallow validation only; record iteration reports an error
 * (so timestamp lookups fall back to batch granularity). Delete this file and
 * its includes once the real implementation is merged.
 */
#ifndef SLUICE_TESTS_STORAGE_TMP_BATCH_H
#define SLUICE_TESTS_STORAGE_TMP_BATCH_H

#include "core/crc32c.h"
#include "proto/batch.h"
#include "proto/wire.h"

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t n) {
    const uint8_t *p = buf;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}
uint32_t crc32c(uint32_t crc, const void *buf, size_t n) { return crc32c_portable(crc, buf, n); }
const char *crc32c_impl(void) { return "test-stub"; }

int batch_parse_header(const uint8_t *buf, size_t len, batch_header *h) {
    if (len < BATCH_HEADER_SIZE)
        return BATCH_ETRUNC;
    h->base_offset = (int64_t)wire_be64(buf);
    h->batch_length = (int32_t)wire_be32(buf + 8);
    h->partition_leader_epoch = (int32_t)wire_be32(buf + 12);
    h->magic = (int8_t)buf[16];
    h->crc = wire_be32(buf + 17);
    h->attributes = (int16_t)wire_be16(buf + 21);
    h->last_offset_delta = (int32_t)wire_be32(buf + 23);
    h->base_timestamp = (int64_t)wire_be64(buf + 27);
    h->max_timestamp = (int64_t)wire_be64(buf + 35);
    h->producer_id = (int64_t)wire_be64(buf + 43);
    h->producer_epoch = (int16_t)wire_be16(buf + 51);
    h->base_sequence = (int32_t)wire_be32(buf + 53);
    h->record_count = (int32_t)wire_be32(buf + 57);
    if (h->magic != 2)
        return BATCH_EMAGIC;
    if (h->batch_length < 49)
        return BATCH_EMALFORMED;
    if ((size_t)h->batch_length + 12 > len)
        return BATCH_ETRUNC;
    return BATCH_OK;
}
bool batch_crc_ok(const uint8_t *buf, size_t n) {
    return n >= BATCH_HEADER_SIZE && crc32c(0, buf + 21, n - 21) == wire_be32(buf + 17);
}
int batch_validate(const uint8_t *buf, size_t n, bool deep, size_t max_unc) {
    (void)deep;
    (void)max_unc;
    batch_header h;
    int e = batch_parse_header(buf, n, &h);
    if (e)
        return e;
    return batch_crc_ok(buf, n) ? BATCH_OK : BATCH_ECRC;
}
void batch_set_base_offset(uint8_t *buf, int64_t o) { wire_put_be64(buf, (uint64_t)o); }
void batch_set_leader_epoch(uint8_t *buf, int32_t e) { wire_put_be32(buf + 12, (uint32_t)e); }
void batch_set_log_append_time(uint8_t *buf, size_t n, int64_t ts) {
    wire_put_be64(buf + 35, (uint64_t)ts);
    wire_put_be16(buf + 21, (uint16_t)(wire_be16(buf + 21) | BATCH_ATTR_LOG_APPEND_TIME));
    wire_put_be32(buf + 17, crc32c(0, buf + 21, n - 21));
}
int batch_iter_init(batch_iter *it, const uint8_t *buf, size_t n, arena *a) {
    (void)buf;
    (void)n;
    (void)a;
    it->err = BATCH_ECODEC;
    return BATCH_ECODEC;
}
bool batch_iter_next(batch_iter *it, batch_record *rec) {
    (void)it;
    (void)rec;
    return false;
}

#endif
