/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of Kafka's magic-2 record
 * batches.
 *
 * Uses the SSE4.2 crc32 instruction on x86-64 and the CRC32C instructions on
 * aarch64 when the CPU has them (detected once at run time), and a portable
 * slicing-by-8 table otherwise. All paths give identical results.
 */
#ifndef SLUICE_CORE_CRC32C_H
#define SLUICE_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes and returns the new value. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t n);

/* The portable implementation, exposed so tests can compare it with the
 * accelerated one. */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t n);

/* Name of the implementation crc32c() uses on this CPU ("sse4.2", "armv8",
 * "portable"). */
const char *crc32c_impl(void);

#endif
